/* sqlite_values: values into and out of a SQLite connection.
 *
 * In: a batch's parameters, copied into one arena the batch owns (later
 * statements are prepared long after the caller's borrowed params are gone)
 * and bound to each statement by name. Out: a result's column description,
 * its types mapped from the declared type, and each row's values, borrowed
 * from the statement until the next step.
 */
#include "sqlite_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- Parameters ------------------------------------------------------------ */

/* Copies params into one owned arena: the bparam array, then "@name\0"
 * strings, then text/binary bytes (NUL-terminated so that empty values still
 * have a non-NULL pointer). */
int sl_copy_params(sg_driver_conn *c, const sg_param *params, size_t n, sg_err *err)
{
    if (n == 0)
        return 0;
    if (n > SIZE_MAX / sizeof(bparam))
        return sg_err_set(err, SG_BAD_REQUEST, "too many parameters");
    size_t size = n * sizeof(bparam);
    for (size_t i = 0; i < n; i++) {
        if (params[i].name == NULL || params[i].name[0] == '\0')
            return sg_err_set(err, SG_BAD_REQUEST, "a parameter has no name");
        size_t add = strlen(params[i].name) + 2;
        const sg_value *v = &params[i].value;
        if (v->type == SG_V_TEXT || v->type == SG_V_BINARY) {
            if (v->u.s.len > SIZE_MAX - add - 1)
                return sg_err_set(err, SG_BAD_REQUEST, "parameter @%s is too large",
                                  params[i].name);
            add += v->u.s.len + 1;
        }
        if (add > SIZE_MAX - size)
            return sg_err_set(err, SG_BAD_REQUEST, "parameters are too large");
        size += add;
    }
    bparam *bp = malloc(size);
    if (bp == NULL)
        return sg_err_set(err, SG_INTERNAL, "out of memory copying parameters");
    char *out = (char *)(bp + n);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(params[i].name);
        out[0] = '@';
        memcpy(out + 1, params[i].name, len + 1);
        bp[i].name = out;
        out += len + 2;
        bp[i].value = params[i].value;
        sg_value *v = &bp[i].value;
        if (v->type == SG_V_TEXT || v->type == SG_V_BINARY) {
            if (v->u.s.len > 0)
                memcpy(out, v->u.s.ptr, v->u.s.len);
            out[v->u.s.len] = '\0';
            v->u.s.ptr = out;
            out += v->u.s.len + 1;
        }
    }
    c->params = bp;
    c->n_params = n;
    return 0;
}

/* The param for placeholder "@name": an exact match first, else an ASCII
 * case-insensitive one (SQL Server compares variable names that way under
 * its usual collations, and both drivers should accept the same requests). */
static const bparam *find_param(const sg_driver_conn *c, const char *name)
{
    for (size_t i = c->n_params; i-- > 0;)
        if (strcmp(c->params[i].name, name) == 0)
            return &c->params[i];
    for (size_t i = c->n_params; i-- > 0;)
        if (strcasecmp(c->params[i].name, name) == 0)
            return &c->params[i];
    return NULL;
}

static int bind_value(sqlite3_stmt *st, int idx, const sg_value *v)
{
    /* SQLITE_STATIC: the arena outlives every statement of the batch. */
    switch (v->type) {
    case SG_V_INT:
        return sqlite3_bind_int64(st, idx, v->u.i);
    case SG_V_FLOAT:
        return sqlite3_bind_double(st, idx, v->u.f);
    case SG_V_BOOL:
        return sqlite3_bind_int(st, idx, v->u.b ? 1 : 0);
    case SG_V_TEXT:
        return sqlite3_bind_text64(st, idx, v->u.s.ptr, v->u.s.len, SQLITE_STATIC, SQLITE_UTF8);
    case SG_V_BINARY:
        if (v->u.s.len == 0)
            return sqlite3_bind_zeroblob(st, idx, 0);
        return sqlite3_bind_blob64(st, idx, v->u.s.ptr, v->u.s.len, SQLITE_STATIC);
    case SG_V_NULL:
    default:
        return sqlite3_bind_null(st, idx);
    }
}

/* Binds every placeholder of c->stmt; one that no param provides is an error
 * rather than a silent NULL. */
int sl_bind_all(sg_driver_conn *c, sg_err *err)
{
    int n = sqlite3_bind_parameter_count(c->stmt);
    for (int i = 1; i <= n; i++) {
        const char *name = sqlite3_bind_parameter_name(c->stmt, i);
        if (name == NULL)
            return sl_sql_error(err, SQLITE_RANGE, c->stmt_line,
                                "positional parameter ? is not supported; write @name");
        const bparam *p = name[0] == '@' ? find_param(c, name) : NULL;
        if (p == NULL) {
            char msg[SG_ERR_MESSAGE_MAX];
            snprintf(msg, sizeof msg, "parameter %.*s is not given%s", 200, name,
                     name[0] == '@' ? "" : " (parameters are written @name)");
            return sl_sql_error(err, SQLITE_RANGE, c->stmt_line, msg);
        }
        int rc = bind_value(c->stmt, i, &p->value);
        if (rc != SQLITE_OK)
            return sl_map_error(c, rc, c->stmt_line, err);
    }
    return 0;
}

/* --- Results --------------------------------------------------------------- */

static void lower_type(char *s)
{
    char *paren = strchr(s, '(');
    if (paren != NULL)
        *paren = '\0';
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    for (char *p = s; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
}

static col_kind kind_of(const char *type)
{
    if (strcmp(type, "bool") == 0 || strcmp(type, "boolean") == 0 || strcmp(type, "bit") == 0)
        return KIND_BOOL;
    if (strncmp(type, "decimal", 7) == 0 || strncmp(type, "numeric", 7) == 0 ||
        strncmp(type, "money", 5) == 0)
        return KIND_DECIMAL;
    return KIND_PLAIN;
}

static const char *storage_name(int type)
{
    switch (type) {
    case SQLITE_INTEGER:
        return "integer";
    case SQLITE_FLOAT:
        return "real";
    case SQLITE_TEXT:
        return "text";
    case SQLITE_BLOB:
        return "blob";
    default:
        return "null";
    }
}

/* Fills cols/kinds for c->stmt, whose first row (if any) has been stepped.
 * Names and types are copied: SQLite's own strings may change on re-prepare. */
int sl_describe(sg_driver_conn *c, size_t n, sg_err *err)
{
    if (n > c->cols_cap) {
        sg_column *cols = realloc(c->cols, n * sizeof *cols);
        if (cols == NULL)
            return sg_err_set(err, SG_INTERNAL, "out of memory");
        c->cols = cols;
        col_kind *kinds = realloc(c->kinds, n * sizeof *kinds);
        if (kinds == NULL)
            return sg_err_set(err, SG_INTERNAL, "out of memory");
        c->kinds = kinds;
        sg_value *values = realloc(c->values, n * sizeof *values);
        if (values == NULL)
            return sg_err_set(err, SG_INTERNAL, "out of memory");
        c->values = values;
        c->cols_cap = n;
    }
    size_t need = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = sqlite3_column_name(c->stmt, (int)i);
        const char *decl = sqlite3_column_decltype(c->stmt, (int)i);
        if (decl == NULL)
            decl =
                storage_name(c->pending_row ? sqlite3_column_type(c->stmt, (int)i) : SQLITE_NULL);
        need += (name != NULL ? strlen(name) : 0) + strlen(decl) + 2;
    }
    if (need > c->names_cap) {
        char *names = realloc(c->names, need);
        if (names == NULL)
            return sg_err_set(err, SG_INTERNAL, "out of memory");
        c->names = names;
        c->names_cap = need;
    }
    char *out = c->names;
    for (size_t i = 0; i < n; i++) {
        const char *name = sqlite3_column_name(c->stmt, (int)i);
        if (name == NULL)
            name = "";
        size_t len = strlen(name);
        memcpy(out, name, len + 1);
        c->cols[i].name = out;
        out += len + 1;

        const char *decl = sqlite3_column_decltype(c->stmt, (int)i);
        bool declared = decl != NULL;
        if (!declared)
            decl =
                storage_name(c->pending_row ? sqlite3_column_type(c->stmt, (int)i) : SQLITE_NULL);
        len = strlen(decl);
        memcpy(out, decl, len + 1);
        lower_type(out);
        c->cols[i].type = out;
        c->cols[i].precision = 0; /* the declared type keeps its (p,s) as written */
        c->cols[i].scale = 0;
        c->kinds[i] = declared ? kind_of(out) : KIND_PLAIN;
        out += len + 1;
    }
    return 0;
}

void sl_convert_row(sg_driver_conn *c)
{
    int n = sqlite3_column_count(c->stmt);
    for (int i = 0; i < n; i++) {
        sg_value *v = &c->values[i];
        int type = sqlite3_column_type(c->stmt, i);
        if (type != SQLITE_NULL && c->kinds[i] == KIND_DECIMAL)
            type = SQLITE_TEXT; /* exact text as stored, never via double */
        switch (type) {
        case SQLITE_INTEGER:
            if (c->kinds[i] == KIND_BOOL) {
                v->type = SG_V_BOOL;
                v->u.b = sqlite3_column_int64(c->stmt, i) != 0;
            } else {
                v->type = SG_V_INT;
                v->u.i = sqlite3_column_int64(c->stmt, i);
            }
            break;
        case SQLITE_FLOAT:
            v->type = SG_V_FLOAT;
            v->u.f = sqlite3_column_double(c->stmt, i);
            break;
        case SQLITE_TEXT: {
            const unsigned char *s = sqlite3_column_text(c->stmt, i);
            v->type = SG_V_TEXT;
            v->u.s.len = (size_t)sqlite3_column_bytes(c->stmt, i);
            v->u.s.ptr = s != NULL ? (const char *)s : "";
            break;
        }
        case SQLITE_BLOB: {
            const void *b = sqlite3_column_blob(c->stmt, i);
            v->type = SG_V_BINARY;
            v->u.s.len = (size_t)sqlite3_column_bytes(c->stmt, i);
            v->u.s.ptr = b != NULL ? b : "";
            break;
        }
        default:
            v->type = SG_V_NULL;
            break;
        }
    }
}
