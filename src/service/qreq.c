/* qreq: see qreq.h.
 *
 * One pass over the body with an explicit stack of the open arrays and
 * objects (no recursion: a hostile body cannot exhaust the thread's stack).
 * Every value is lexed and validated where it stands, whatever its depth;
 * what the request needs (the top-level members, the parameters) is noted
 * on the way, and the field checks run after the pass, in the order the
 * jansson-based decoder had: a syntax error anywhere wins over a field
 * problem, and among field problems the first check reports.
 *
 * Strings are unescaped into `out`, one buffer of len + 1 bytes: an
 * unescaped string plus its NUL never takes more room than its quoted form
 * (a 6-byte \uXXXX gives at most 3 bytes, a 12-byte surrogate pair 4), so
 * the bytes of out in use never pass the read position. Strings the request
 * keeps (and every key, which the duplicate check refers to) stay; others
 * are overwritten by the next one. */
#include "qreq.h"

#include "jkeys.h"
#include "jlex.h"

#include <stdlib.h>
#include <string.h>

/* The top-level members the request reads; other keys are checked and skipped. */
enum member { M_SQL, M_PARAMS, M_DATABASE, M_OPERATION, M_ROWS_AS, M_MAX_ROWS, M_TIMEOUT_MS, M_N };
static const char *const MEMBER_NAMES[M_N] = {
    "sql", "params", "database", "operation", "rows_as", "max_rows", "timeout_ms",
};
static const unsigned char MEMBER_LENGTHS[M_N] = {3, 6, 8, 9, 7, 8, 10};

/* What the value about to be read is to the request: a member (>= 0) or one of these. */
enum { ROLE_IGNORED = -1, ROLE_PARAM = -2, ROLE_BODY = -3 };

/* An open array or object. The body's own object and the "params" object in
 * it give their keys a meaning; other objects only have their keys checked. */
typedef enum fkind { F_ARRAY, F_OBJECT, F_BODY, F_PARAMS } fkind;

typedef struct frame {
    uint32_t obj; /* objects: serial number, which scopes the duplicate-key check */
    fkind kind;
} frame;

typedef struct parser {
    jlex lx; /* lx.out is owned until handed to the qreq */
    frame stack[QREQ_MAX_DEPTH];
    size_t depth;
    uint32_t objects;
    jkeys keys; /* duplicate keys, found as each key arrives */
    jtype body;
    jval member[M_N];
    sg_param *params; /* owned until handed to the qreq; the first QREQ_MAX_PARAMS entries */
    size_t n_params;  /* entries of the params object, also those past QREQ_MAX_PARAMS */
    size_t cap_params;
    const char *param_name; /* the entry being read */
    /* The first parameter with a problem, reported after the other fields:
     * bad_type J_ABSENT means its name is the problem. */
    const char *bad_param;
    jtype bad_type;
    sg_err *err;
} parser;

/* --- What the request takes from the values -------------------------------------- */

static bool identifier(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > QREQ_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && (i == 0 || c < '0' || c > '9'))
            return false;
    }
    return true;
}

static int member_of(const jval *key)
{
    for (int m = 0; m < M_N; m++) {
        if (MEMBER_LENGTHS[m] == key->len && memcmp(MEMBER_NAMES[m], key->s, key->len) == 0)
            return m;
    }
    return ROLE_IGNORED;
}

/* A key of the params object: a new entry. Entries past QREQ_MAX_PARAMS are
 * only counted (the count is the error), so memory stays bounded. */
static int param_entry(parser *ps, const char *name)
{
    ps->param_name = name;
    if (ps->bad_param == NULL && !identifier(name)) {
        ps->bad_param = name;
        ps->bad_type = J_ABSENT;
    }
    if (ps->n_params++ >= QREQ_MAX_PARAMS)
        return 0;
    if (ps->n_params > ps->cap_params) {
        size_t cap = ps->cap_params ? 2 * ps->cap_params : 4;
        cap = cap < QREQ_MAX_PARAMS ? cap : QREQ_MAX_PARAMS;
        sg_param *p = ps->params ? realloc(ps->params, cap * sizeof *p) : malloc(cap * sizeof *p);
        if (p == NULL)
            return jlex_out_of_memory(&ps->lx);
        ps->params = p;
        ps->cap_params = cap;
    }
    ps->params[ps->n_params - 1] = (sg_param){.name = name};
    return 0;
}

static void param_value(parser *ps, const jval *v)
{
    if (v->type == J_OBJECT || v->type == J_ARRAY) {
        if (ps->bad_param == NULL) {
            ps->bad_param = ps->param_name;
            ps->bad_type = v->type;
        }
        return;
    }
    if (ps->n_params > QREQ_MAX_PARAMS)
        return;
    sg_value *val = &ps->params[ps->n_params - 1].value;
    switch (v->type) {
    case J_INTEGER:
        val->type = SG_V_INT;
        val->u.i = v->i;
        break;
    case J_REAL:
        val->type = SG_V_FLOAT;
        val->u.f = v->f;
        break;
    case J_STRING:
        val->type = SG_V_TEXT;
        val->u.s.ptr = v->s;
        val->u.s.len = v->len;
        break;
    case J_TRUE:
    case J_FALSE:
        val->type = SG_V_BOOL;
        val->u.b = v->type == J_TRUE;
        break;
    default:
        val->type = SG_V_NULL;
        break;
    }
}

/* Notes value v (a scalar, or a container as it opens) for its role. */
static void note(parser *ps, int role, const jval *v)
{
    if (role >= 0)
        ps->member[role] = *v;
    else if (role == ROLE_BODY)
        ps->body = v->type;
    else if (role == ROLE_PARAM)
        param_value(ps, v);
}

/* --- The pass -------------------------------------------------------------------- */

static int open_container(parser *ps, int role)
{
    bool object = *ps->lx.p == '{';
    if (ps->depth == QREQ_MAX_DEPTH) {
        size_t line, col;
        jlex_position(&ps->lx, ps->lx.p, &line, &col);
        return sg_err_set(ps->lx.err, SG_BAD_REQUEST,
                          "the body nests arrays and objects more than %d levels deep (line %zu, "
                          "column %zu)",
                          QREQ_MAX_DEPTH, line, col);
    }
    note(ps, role, &(jval){.type = object ? J_OBJECT : J_ARRAY});
    frame *f = &ps->stack[ps->depth++];
    f->kind = !object             ? F_ARRAY
              : role == ROLE_BODY ? F_BODY
              : role == M_PARAMS  ? F_PARAMS
                                  : F_OBJECT;
    f->obj = object ? ++ps->objects : 0;
    ps->lx.p++;
    return 0;
}

static int read_scalar(parser *ps, int role)
{
    jval v = {.type = J_ABSENT};
    int rc;
    int c = ps->lx.p < ps->lx.end ? *ps->lx.p : -1;
    if (c == '"')
        rc = jlex_string(&ps->lx, &v);
    else if (c == '-' || jlex_is_digit(c))
        rc = jlex_number(&ps->lx, &v);
    else
        rc = jlex_literal(&ps->lx, &v);
    if (rc != 0)
        return rc;
    note(ps, role, &v);
    if (v.type == J_STRING && role != ROLE_IGNORED)
        ps->lx.w += v.len + 1;
    return 0;
}

/* Reads a key of the innermost object and the ':' after it; *role is what
 * the key's value will be to the request. */
static int read_key(parser *ps, int *role)
{
    const frame *f = &ps->stack[ps->depth - 1];
    const unsigned char *at = ps->lx.p;
    jval k;
    bool dup;
    if (jlex_string(&ps->lx, &k) != 0)
        return -1;
    ps->lx.w += k.len + 1; /* keys stay: the duplicate check refers to them */
    /* k.len < the body's length, itself < 4 GiB */
    if (jkeys_add(&ps->keys, k.s, (uint32_t)k.len, f->obj, &dup) != 0)
        return jlex_out_of_memory(&ps->lx);
    if (dup) {
        /* cut at a character boundary so the message stays UTF-8 */
        size_t n = k.len < 60 ? k.len : 60;
        while (n < k.len && (k.s[n] & 0xC0) == 0x80)
            n--;
        return jlex_error(&ps->lx, at, "duplicate key \"%.*s\"", (int)n, k.s);
    }
    *role = ROLE_IGNORED;
    if (f->kind == F_BODY) {
        *role = member_of(&k);
    } else if (f->kind == F_PARAMS) {
        *role = ROLE_PARAM;
        if (param_entry(ps, k.s) != 0)
            return -1;
    }
    jlex_skip_space(&ps->lx);
    if (ps->lx.p == ps->lx.end || *ps->lx.p != ':')
        return jlex_unexpected(&ps->lx, ps->lx.p, "':' after a key");
    ps->lx.p++;
    return 0;
}

static int parse_body(parser *ps)
{
    enum { ST_VALUE, ST_FIRST_ELEMENT, ST_FIRST_KEY, ST_KEY, ST_AFTER_VALUE } st = ST_VALUE;
    int role = ROLE_BODY;
    jlex_skip_space(&ps->lx);
    if (ps->lx.p == ps->lx.end || (*ps->lx.p != '{' && *ps->lx.p != '['))
        return jlex_unexpected(&ps->lx, ps->lx.p, "a JSON object ('{')");
    for (;;) {
        jlex_skip_space(&ps->lx);
        int c = ps->lx.p < ps->lx.end ? *ps->lx.p : -1;
        switch (st) {
        case ST_VALUE:
            if (c == '{' || c == '[') {
                if (open_container(ps, role) != 0)
                    return -1;
                st = c == '{' ? ST_FIRST_KEY : ST_FIRST_ELEMENT;
            } else {
                if (read_scalar(ps, role) != 0)
                    return -1;
                st = ST_AFTER_VALUE;
            }
            break;
        case ST_FIRST_ELEMENT:
            if (c == ']') {
                ps->lx.p++;
                ps->depth--;
                st = ST_AFTER_VALUE;
            } else {
                role = ROLE_IGNORED; /* no array holds anything the request reads */
                st = ST_VALUE;
            }
            break;
        case ST_FIRST_KEY:
            if (c == '}') {
                ps->lx.p++;
                ps->depth--;
                st = ST_AFTER_VALUE;
                break;
            }
            /* fall through */
        case ST_KEY:
            if (c != '"')
                return jlex_unexpected(&ps->lx, ps->lx.p, "a key (a string)");
            if (read_key(ps, &role) != 0)
                return -1;
            st = ST_VALUE;
            break;
        case ST_AFTER_VALUE:
            if (ps->depth == 0) {
                if (c != -1)
                    return jlex_unexpected(&ps->lx, ps->lx.p,
                                           "the end of the body after its object");
                return 0;
            }
            bool object = ps->stack[ps->depth - 1].kind != F_ARRAY;
            if (c == ',') {
                ps->lx.p++;
                role = ROLE_IGNORED;
                st = object ? ST_KEY : ST_VALUE;
            } else if (c == (object ? '}' : ']')) {
                ps->lx.p++;
                ps->depth--;
            } else {
                return jlex_unexpected(&ps->lx, ps->lx.p, object ? "',' or '}'" : "',' or ']'");
            }
            break;
        }
    }
}

/* --- Field checks, in the jansson-based decoder's order ------------------------------ */

static const char *type_name(jtype t)
{
    switch (t) {
    case J_OBJECT:
        return "an object";
    case J_ARRAY:
        return "an array";
    case J_STRING:
        return "a string";
    case J_INTEGER:
        return "an integer";
    case J_REAL:
        return "a number";
    case J_TRUE:
    case J_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* A positive integer member, or 0 when absent. */
static int positive(const parser *ps, int m, int64_t *out, sg_err *err)
{
    const jval *v = &ps->member[m];
    *out = 0;
    if (v->type == J_ABSENT || v->type == J_NULL)
        return 0;
    if (v->type != J_INTEGER)
        return sg_err_set(err, SG_BAD_REQUEST, "%s must be an integer >= 1, not %s",
                          MEMBER_NAMES[m], type_name(v->type));
    if (v->i < 1)
        return sg_err_set(err, SG_BAD_REQUEST, "%s must be an integer >= 1", MEMBER_NAMES[m]);
    *out = v->i;
    return 0;
}

static int optional_string(const parser *ps, int m, const char **out, sg_err *err)
{
    const jval *v = &ps->member[m];
    *out = NULL;
    if (v->type == J_ABSENT || v->type == J_NULL)
        return 0;
    if (v->type != J_STRING)
        return sg_err_set(err, SG_BAD_REQUEST, "%s must be a string, not %s", MEMBER_NAMES[m],
                          type_name(v->type));
    *out = v->s;
    return 0;
}

static int check_params(const parser *ps, sg_err *err)
{
    jtype t = ps->member[M_PARAMS].type;
    if (t == J_ABSENT || t == J_NULL)
        return 0;
    if (t != J_OBJECT)
        return sg_err_set(err, SG_BAD_REQUEST, "params must be an object, not %s", type_name(t));
    if (ps->n_params > QREQ_MAX_PARAMS)
        return sg_err_set(err, SG_BAD_REQUEST, "params has %zu entries; at most %d are allowed",
                          ps->n_params, QREQ_MAX_PARAMS);
    if (ps->bad_param != NULL && ps->bad_type == J_ABSENT)
        return sg_err_set(err, SG_BAD_REQUEST,
                          "params: \"%.64s\" is not a parameter name (letters, digits and _, "
                          "not starting with a digit, without '@')",
                          ps->bad_param);
    if (ps->bad_param != NULL)
        return sg_err_set(err, SG_BAD_REQUEST,
                          "params.%s: %s is not a supported value (use a string, number, "
                          "boolean or null)",
                          ps->bad_param, type_name(ps->bad_type));
    return 0;
}

static int check_fields(const parser *ps, qreq *q, sg_err *err)
{
    if (ps->body != J_OBJECT)
        return sg_err_set(err, SG_BAD_REQUEST, "the body must be a JSON object, not %s",
                          type_name(ps->body));
    const jval *sql = &ps->member[M_SQL];
    if (sql->type == J_ABSENT)
        return sg_err_set(err, SG_BAD_REQUEST, "sql is required");
    if (sql->type != J_STRING)
        return sg_err_set(err, SG_BAD_REQUEST, "sql must be a string, not %s",
                          type_name(sql->type));
    if (sql->len == 0)
        return sg_err_set(err, SG_BAD_REQUEST, "sql must not be empty");
    q->sql = sql->s;

    const char *rows_as;
    if (optional_string(ps, M_DATABASE, &q->database, err) != 0 ||
        optional_string(ps, M_OPERATION, &q->operation, err) != 0 ||
        optional_string(ps, M_ROWS_AS, &rows_as, err) != 0 ||
        positive(ps, M_MAX_ROWS, &q->max_rows, err) != 0 ||
        positive(ps, M_TIMEOUT_MS, &q->timeout_ms, err) != 0)
        return -1;
    if (q->operation != NULL && ps->member[M_OPERATION].len > QREQ_MAX_OPERATION)
        return sg_err_set(err, SG_BAD_REQUEST, "operation is longer than %d bytes",
                          QREQ_MAX_OPERATION);
    if (rows_as != NULL) {
        if (strcmp(rows_as, "arrays") == 0)
            q->rows_as_arrays = true;
        else if (strcmp(rows_as, "objects") != 0)
            return sg_err_set(err, SG_BAD_REQUEST, "rows_as must be \"objects\" or \"arrays\"");
    }
    return check_params(ps, err);
}

int qreq_parse(qreq *q, const char *body, size_t len, sg_err *err)
{
    memset(q, 0, sizeof *q);
    /* key lengths and object serials are 32-bit; the HTTP layer caps bodies
     * far below this */
    if (len >= UINT32_MAX)
        return sg_err_set(err, SG_BAD_REQUEST, "the body is too large to read");
    parser ps;
    ps.lx.start = ps.lx.p = (const unsigned char *)body;
    ps.lx.end = ps.lx.start + len;
    ps.lx.w = 0;
    ps.depth = 0;
    ps.objects = 0;
    jkeys_init(&ps.keys);
    ps.body = J_ABSENT;
    for (int m = 0; m < M_N; m++)
        ps.member[m].type = J_ABSENT;
    ps.params = NULL;
    ps.n_params = ps.cap_params = 0;
    ps.param_name = ps.bad_param = NULL;
    ps.bad_type = J_ABSENT;
    ps.lx.err = err;
    ps.lx.out = malloc(len + 1);
    if (ps.lx.out == NULL)
        return jlex_out_of_memory(&ps.lx);

    int rc = parse_body(&ps);
    jkeys_free(&ps.keys);
    if (rc == 0)
        rc = check_fields(&ps, q, err);
    if (rc != 0) {
        free(ps.params);
        free(ps.lx.out);
        memset(q, 0, sizeof *q);
        return -1;
    }
    q->strings = ps.lx.out;
    q->params = ps.params;
    q->n_params = ps.n_params;
    return 0;
}

void qreq_free(qreq *q)
{
    free(q->params);
    free(q->strings);
    memset(q, 0, sizeof *q);
}
