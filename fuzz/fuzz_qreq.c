/* libFuzzer target: the query request decoder (qreq_parse), differentially
 * against jansson, and the error body the service renders from its message.
 *
 * Input: a request body. The reference is what qreq did before it had its
 * own parser: json_loadb(JSON_REJECT_DUPLICATES), then the field checks on
 * the tree (ref_decode below, the old code). Checks:
 * - jansson rejects the body  => qreq rejects it, with the NUL message when
 *   jansson's error is about \u0000, else with a syntax message;
 * - jansson accepts it        => qreq gives what the reference gives: the
 *   same field error message, or the same sql, database, operation,
 *   max_rows, timeout_ms, rows_as and parameters (names, order, kinds and
 *   values, doubles bit for bit);
 * except for the two differences qreq.h documents: nesting deeper than
 * QREQ_MAX_DEPTH is rejected (jansson allows 2048), and a raw NUL byte right
 * after a number or true/false/null is a syntax error (jansson drops it).
 * Also: success gives non-empty UTF-8 sql without NUL, identifier names,
 * values of the five supported kinds; failure is BAD_REQUEST (or INTERNAL
 * for memory) with a message, the qreq left empty, and the error body built
 * from that message the way http.c does is JSON that jansson reads back.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_utf8.h"
#include "jsonw.h"
#include "qreq.h"

#define NUL_MESSAGE "the body contains a NUL character (\\u0000), which is not allowed"

static bool identifier(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > QREQ_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static void check_error_body(const sg_err *err)
{
    jw_buf b;
    jw_init(&b, 0);
    jw_lit(&b, "{\"error\":{\"code\":");
    jw_cstr(&b, sg_code_name(err->code));
    jw_lit(&b, ",\"message\":");
    jw_cstr(&b, err->message);
    jw_lit(&b, ",\"request_id\":\"fuzz\"}}");
    FUZZ_CHECK(!b.failed, "cannot render the error");
    json_error_t jerr;
    json_t *v = json_loadb(b.data, b.len, 0, &jerr);
    FUZZ_CHECK(v != NULL, "error body is not JSON (%s): %.*s", jerr.text, (int)b.len, b.data);
    FUZZ_CHECK(json_is_string(json_object_get(json_object_get(v, "error"), "message")),
               "error body without its message");
    json_decref(v);
    jw_free(&b);
}

/* --- The reference: the field checks of the jansson-based qreq ----------- */

typedef struct ref_req {
    const char *sql, *database, *operation;
    int64_t max_rows, timeout_ms;
    bool rows_as_arrays;
    const json_t *params; /* NULL when absent or null */
} ref_req;

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

static bool positive(const json_t *root, const char *key, int64_t *out, char *msg, size_t n)
{
    const json_t *v = json_object_get(root, key);
    *out = 0;
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_integer(v)) {
        snprintf(msg, n, "%s must be an integer >= 1, not %s", key, type_name(v));
        return false;
    }
    if (json_integer_value(v) < 1) {
        snprintf(msg, n, "%s must be an integer >= 1", key);
        return false;
    }
    *out = json_integer_value(v);
    return true;
}

static bool optional_string(const json_t *root, const char *key, const char **out, char *msg,
                            size_t n)
{
    const json_t *v = json_object_get(root, key);
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_string(v)) {
        snprintf(msg, n, "%s must be a string, not %s", key, type_name(v));
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool ref_params(const json_t *params, char *msg, size_t n)
{
    if (!json_is_object(params)) {
        snprintf(msg, n, "params must be an object, not %s", type_name(params));
        return false;
    }
    if (json_object_size(params) > QREQ_MAX_PARAMS) {
        snprintf(msg, n, "params has %zu entries; at most %d are allowed", json_object_size(params),
                 QREQ_MAX_PARAMS);
        return false;
    }
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)params, name, v)
    {
        if (!identifier(name)) {
            snprintf(msg, n,
                     "params: \"%.64s\" is not a parameter name (letters, digits and _, not "
                     "starting with a digit, without '@')",
                     name);
            return false;
        }
        if (json_is_object(v) || json_is_array(v)) {
            snprintf(msg, n,
                     "params.%s: %s is not a supported value (use a string, number, boolean or "
                     "null)",
                     name, type_name(v));
            return false;
        }
    }
    return true;
}

/* The old qreq_parse after json_loadb succeeded: true with r filled, or
 * false with its message in msg. */
static bool ref_decode(const json_t *root, ref_req *r, char *msg, size_t n)
{
    memset(r, 0, sizeof *r);
    if (!json_is_object(root)) {
        snprintf(msg, n, "the body must be a JSON object, not %s", type_name(root));
        return false;
    }
    const json_t *sql = json_object_get(root, "sql");
    if (sql == NULL) {
        snprintf(msg, n, "sql is required");
        return false;
    }
    if (!json_is_string(sql)) {
        snprintf(msg, n, "sql must be a string, not %s", type_name(sql));
        return false;
    }
    if (json_string_length(sql) == 0) {
        snprintf(msg, n, "sql must not be empty");
        return false;
    }
    r->sql = json_string_value(sql);
    const char *rows_as;
    if (!optional_string(root, "database", &r->database, msg, n) ||
        !optional_string(root, "operation", &r->operation, msg, n) ||
        !optional_string(root, "rows_as", &rows_as, msg, n) ||
        !positive(root, "max_rows", &r->max_rows, msg, n) ||
        !positive(root, "timeout_ms", &r->timeout_ms, msg, n))
        return false;
    if (r->operation != NULL && strlen(r->operation) > QREQ_MAX_OPERATION) {
        snprintf(msg, n, "operation is longer than %d bytes", QREQ_MAX_OPERATION);
        return false;
    }
    if (rows_as != NULL) {
        if (strcmp(rows_as, "arrays") == 0) {
            r->rows_as_arrays = true;
        } else if (strcmp(rows_as, "objects") != 0) {
            snprintf(msg, n, "rows_as must be \"objects\" or \"arrays\"");
            return false;
        }
    }
    const json_t *params = json_object_get(root, "params");
    if (params != NULL && !json_is_null(params)) {
        if (!ref_params(params, msg, n))
            return false;
        r->params = params;
    }
    return true;
}

/* --- Comparison ------------------------------------------------------------ */

/* Nesting of arrays and objects, as qreq counts it (the body's object is 1). */
static int depth_of(const json_t *v)
{
    int deepest = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)v, k, m)
        {
            int d = depth_of(m);
            deepest = d > deepest ? d : deepest;
        }
        return deepest + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m)
        {
            int d = depth_of(m);
            deepest = d > deepest ? d : deepest;
        }
        return deepest + 1;
    }
    return 0;
}

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void compare_success(const qreq *q, const ref_req *r)
{
    FUZZ_CHECK(strcmp(q->sql, r->sql) == 0, "sql \"%s\", jansson \"%s\"", q->sql, r->sql);
    FUZZ_CHECK(same_str(q->database, r->database), "database differs");
    FUZZ_CHECK(same_str(q->operation, r->operation), "operation differs");
    FUZZ_CHECK(q->max_rows == r->max_rows, "max_rows %lld, jansson %lld", (long long)q->max_rows,
               (long long)r->max_rows);
    FUZZ_CHECK(q->timeout_ms == r->timeout_ms, "timeout_ms differs");
    FUZZ_CHECK(q->rows_as_arrays == r->rows_as_arrays, "rows_as differs");
    size_t want = r->params ? json_object_size(r->params) : 0;
    FUZZ_CHECK(q->n_params == want, "%zu parameters, jansson %zu", q->n_params, want);
    FUZZ_CHECK(want > 0 || q->params == NULL, "an empty parameter array was kept");
    if (want == 0)
        return;
    size_t i = 0;
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)r->params, name, v)
    {
        const sg_param *p = &q->params[i++];
        FUZZ_CHECK(strcmp(p->name, name) == 0, "parameter %zu is %s, jansson %s", i, p->name, name);
        const sg_value *x = &p->value;
        switch (json_typeof(v)) {
        case JSON_INTEGER:
            FUZZ_CHECK(x->type == SG_V_INT && x->u.i == json_integer_value(v),
                       "parameter %s: not integer %lld", name, (long long)json_integer_value(v));
            break;
        case JSON_REAL: {
            double d = json_real_value(v);
            FUZZ_CHECK(x->type == SG_V_FLOAT && memcmp(&x->u.f, &d, sizeof d) == 0,
                       "parameter %s: %.17g, jansson %.17g", name, x->u.f, d);
            break;
        }
        case JSON_STRING:
            FUZZ_CHECK(x->type == SG_V_TEXT && x->u.s.len == json_string_length(v) &&
                           memcmp(x->u.s.ptr, json_string_value(v), x->u.s.len) == 0,
                       "parameter %s: text differs", name);
            break;
        case JSON_TRUE:
        case JSON_FALSE:
            FUZZ_CHECK(x->type == SG_V_BOOL && x->u.b == json_is_true(v),
                       "parameter %s: boolean differs", name);
            break;
        default:
            FUZZ_CHECK(x->type == SG_V_NULL, "parameter %s: not null", name);
            break;
        }
    }
}

/* jansson drops a raw NUL byte that ends a number or a literal (it "ungets"
 * the byte, which its stream then loses): such bodies may differ. */
static bool nul_after_token(const uint8_t *data, size_t size)
{
    for (size_t i = 1; i < size; i++) {
        uint8_t c = data[i - 1];
        if (data[i] == 0 &&
            ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return true;
    }
    return false;
}

static void differential(const uint8_t *data, size_t size, int rc, const qreq *q, const sg_err *err)
{
    const char *msg = rc != 0 ? err->message : "";
    bool syntax = strncmp(msg, "the body is not valid JSON (line ", 33) == 0;
    bool nul = strcmp(msg, NUL_MESSAGE) == 0;
    bool deep = strncmp(msg, "the body nests arrays and objects more than ", 44) == 0;
    bool quirk = nul_after_token(data, size);
    /* qreq's own NUL-byte error after a token, the one jansson lacks */
    bool nul_byte = syntax && strstr(msg, "found byte 0x00") != NULL;

    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        FUZZ_CHECK(rc != 0, "accepted a body jansson rejects (%s)", jerr.text);
        FUZZ_CHECK(syntax || nul || deep, "syntax error reported as \"%s\" (jansson: %s)", msg,
                   jerr.text);
        bool jnul = strstr(jerr.text, "\\u0000 is not allowed") != NULL ||
                    strstr(jerr.text, "NUL byte in object key") != NULL;
        if (!deep && !quirk)
            FUZZ_CHECK(nul == jnul, "\"%s\", jansson: %s", msg, jerr.text);
        if (deep) {
            size_t opens = 0;
            for (size_t i = 0; i < size; i++)
                opens += data[i] == '[' || data[i] == '{';
            FUZZ_CHECK(opens > QREQ_MAX_DEPTH, "\"%s\" with %zu brackets", msg, opens);
        }
        return;
    }
    int depth = depth_of(root);
    if (depth > QREQ_MAX_DEPTH) {
        FUZZ_CHECK(deep || (quirk && nul_byte), "depth %d gives \"%s\"", depth,
                   rc ? msg : "success");
    } else if (!(rc != 0 && quirk && nul_byte)) {
        FUZZ_CHECK(!deep && !syntax && !nul, "jansson accepts, qreq says \"%s\"", msg);
        ref_req r;
        char want[SG_ERR_MESSAGE_MAX];
        bool ok = ref_decode(root, &r, want, sizeof want);
        if (rc != 0) {
            FUZZ_CHECK(!ok, "rejected (\"%s\"), jansson's decode accepts", msg);
            FUZZ_CHECK(strcmp(msg, want) == 0, "\"%s\", jansson's decode \"%s\"", msg, want);
        } else {
            FUZZ_CHECK(ok, "accepted, jansson's decode says \"%s\"", want);
            compare_success(q, &r);
        }
    }
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qreq q;
    sg_err err;
    sg_err_clear(&err);
    int rc = qreq_parse(&q, (const char *)data, size, &err);
    if (rc != 0) {
        FUZZ_CHECK(err.code == SG_BAD_REQUEST || err.code == SG_INTERNAL, "failure with code %s",
                   sg_code_name(err.code));
        FUZZ_CHECK(err.message[0] != '\0', "failure without a message");
        FUZZ_CHECK(q.strings == NULL && q.params == NULL && q.sql == NULL && q.n_params == 0,
                   "a failed parse left state behind");
        check_error_body(&err);
        if (err.code == SG_INTERNAL) {
            qreq_free(&q);
            return 0;
        }
    } else {
        FUZZ_CHECK(q.sql != NULL && q.sql[0] != '\0', "success without sql");
        FUZZ_CHECK(fuzz_utf8_valid((const uint8_t *)q.sql, strlen(q.sql)), "sql is not UTF-8");
        FUZZ_CHECK(q.n_params <= QREQ_MAX_PARAMS, "%zu parameters", q.n_params);
        FUZZ_CHECK(q.max_rows >= 0 && q.timeout_ms >= 0, "negative limits");
        for (size_t i = 0; i < q.n_params; i++) {
            const sg_param *p = &q.params[i];
            FUZZ_CHECK(identifier(p->name), "parameter name \"%s\"", p->name);
            switch (p->value.type) {
            case SG_V_TEXT:
                FUZZ_CHECK(strlen(p->value.u.s.ptr) == p->value.u.s.len, "parameter %s holds a NUL",
                           p->name);
                FUZZ_CHECK(fuzz_utf8_valid((const uint8_t *)p->value.u.s.ptr, p->value.u.s.len),
                           "parameter %s is not UTF-8", p->name);
                break;
            case SG_V_NULL:
            case SG_V_INT:
            case SG_V_FLOAT:
            case SG_V_BOOL:
                break;
            default:
                fuzz_fail("parameter %s of type %d", p->name, (int)p->value.type);
            }
        }
    }
    differential(data, size, rc, &q, &err);
    qreq_free(&q);
    return 0;
}
