/* qreq: see qreq.h. */
#include "qreq.h"

#include <stdlib.h>
#include <string.h>

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

/* A positive integer member, or 0 when absent. */
static int positive(const json_t *root, const char *key, int64_t *out, sg_err *err)
{
    const json_t *v = json_object_get(root, key);
    *out = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return sg_err_set(err, SG_BAD_REQUEST, "%s must be an integer >= 1, not %s", key,
                          type_name(v));
    if (json_integer_value(v) < 1)
        return sg_err_set(err, SG_BAD_REQUEST, "%s must be an integer >= 1", key);
    *out = json_integer_value(v);
    return 0;
}

static int optional_string(const json_t *root, const char *key, const char **out, sg_err *err)
{
    const json_t *v = json_object_get(root, key);
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return sg_err_set(err, SG_BAD_REQUEST, "%s must be a string, not %s", key, type_name(v));
    *out = json_string_value(v);
    return 0;
}

static int parse_params(qreq *q, const json_t *params, sg_err *err)
{
    if (params == NULL || json_is_null(params))
        return 0;
    if (!json_is_object(params))
        return sg_err_set(err, SG_BAD_REQUEST, "params must be an object, not %s",
                          type_name(params));
    size_t n = json_object_size(params);
    if (n > QREQ_MAX_PARAMS)
        return sg_err_set(err, SG_BAD_REQUEST, "params has %zu entries; at most %d are allowed", n,
                          QREQ_MAX_PARAMS);
    if (n == 0)
        return 0;
    q->params = calloc(n, sizeof *q->params);
    if (q->params == NULL)
        return sg_err_set(err, SG_INTERNAL, "out of memory");
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)params, name, v)
    {
        if (!identifier(name))
            return sg_err_set(err, SG_BAD_REQUEST,
                              "params: \"%.64s\" is not a parameter name (letters, digits and _, "
                              "not starting with a digit, without '@')",
                              name);
        sg_param *p = &q->params[q->n_params++];
        p->name = name;
        switch (json_typeof(v)) {
        case JSON_INTEGER:
            p->value.type = SG_V_INT;
            p->value.u.i = json_integer_value(v);
            break;
        case JSON_REAL:
            p->value.type = SG_V_FLOAT;
            p->value.u.f = json_real_value(v);
            break;
        case JSON_STRING:
            p->value.type = SG_V_TEXT;
            p->value.u.s.ptr = json_string_value(v);
            p->value.u.s.len = json_string_length(v);
            break;
        case JSON_TRUE:
        case JSON_FALSE:
            p->value.type = SG_V_BOOL;
            p->value.u.b = json_is_true(v);
            break;
        case JSON_NULL:
            p->value.type = SG_V_NULL;
            break;
        default:
            return sg_err_set(err, SG_BAD_REQUEST,
                              "params.%s: %s is not a supported value (use a string, number, "
                              "boolean or null)",
                              name, type_name(v));
        }
    }
    return 0;
}

int qreq_parse(qreq *q, const char *body, size_t len, sg_err *err)
{
    memset(q, 0, sizeof *q);
    json_error_t jerr;
    q->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (q->root == NULL) {
        if (strstr(jerr.text, "\\u0000") != NULL)
            return sg_err_set(err, SG_BAD_REQUEST,
                              "the body contains a NUL character (\\u0000), which is not allowed");
        return sg_err_set(err, SG_BAD_REQUEST,
                          "the body is not valid JSON (line %d, column %d): %s", jerr.line,
                          jerr.column, jerr.text);
    }
    if (!json_is_object(q->root)) {
        sg_err_set(err, SG_BAD_REQUEST, "the body must be a JSON object, not %s",
                   type_name(q->root));
        goto fail;
    }
    const json_t *sql = json_object_get(q->root, "sql");
    if (sql == NULL) {
        sg_err_set(err, SG_BAD_REQUEST, "sql is required");
        goto fail;
    }
    if (!json_is_string(sql)) {
        sg_err_set(err, SG_BAD_REQUEST, "sql must be a string, not %s", type_name(sql));
        goto fail;
    }
    if (json_string_length(sql) == 0) {
        sg_err_set(err, SG_BAD_REQUEST, "sql must not be empty");
        goto fail;
    }
    q->sql = json_string_value(sql);

    const char *rows_as;
    if (optional_string(q->root, "database", &q->database, err) != 0 ||
        optional_string(q->root, "operation", &q->operation, err) != 0 ||
        optional_string(q->root, "rows_as", &rows_as, err) != 0 ||
        positive(q->root, "max_rows", &q->max_rows, err) != 0 ||
        positive(q->root, "timeout_ms", &q->timeout_ms, err) != 0)
        goto fail;
    if (q->operation != NULL && strlen(q->operation) > QREQ_MAX_OPERATION) {
        sg_err_set(err, SG_BAD_REQUEST, "operation is longer than %d bytes", QREQ_MAX_OPERATION);
        goto fail;
    }
    if (rows_as != NULL) {
        if (strcmp(rows_as, "arrays") == 0) {
            q->rows_as_arrays = true;
        } else if (strcmp(rows_as, "objects") != 0) {
            sg_err_set(err, SG_BAD_REQUEST, "rows_as must be \"objects\" or \"arrays\"");
            goto fail;
        }
    }
    if (parse_params(q, json_object_get(q->root, "params"), err) != 0)
        goto fail;
    return 0;
fail:
    qreq_free(q);
    return -1;
}

void qreq_free(qreq *q)
{
    free(q->params);
    json_decref(q->root);
    memset(q, 0, sizeof *q);
}
