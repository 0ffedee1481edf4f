/* libFuzzer target: the query request decoder (qreq_parse), and the error
 * body the service renders from its message.
 *
 * Input: a request body. Checks: success gives an object with a non-empty
 * sql of valid UTF-8 without NUL, at most QREQ_MAX_PARAMS parameters with
 * identifier names, positive or absent max_rows/timeout_ms, and values of
 * the five supported kinds; failure is BAD_REQUEST (or INTERNAL for memory)
 * with a message, the qreq left empty, and the error body built from that
 * message the way http.c does is JSON that jansson reads back.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_utf8.h"
#include "jsonw.h"
#include "qreq.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qreq q;
    sg_err err;
    sg_err_clear(&err);
    if (qreq_parse(&q, (const char *)data, size, &err) != 0) {
        FUZZ_CHECK(err.code == SG_BAD_REQUEST || err.code == SG_INTERNAL, "failure with code %s",
                   sg_code_name(err.code));
        FUZZ_CHECK(err.message[0] != '\0', "failure without a message");
        FUZZ_CHECK(q.root == NULL && q.params == NULL && q.sql == NULL && q.n_params == 0,
                   "a failed parse left state behind");
        check_error_body(&err);
        qreq_free(&q);
        return 0;
    }
    FUZZ_CHECK(json_is_object(q.root), "success without an object");
    FUZZ_CHECK(q.sql != NULL && q.sql[0] != '\0', "success without sql");
    FUZZ_CHECK(fuzz_utf8_valid((const uint8_t *)q.sql, strlen(q.sql)), "sql is not UTF-8");
    const json_t *sql = json_object_get(q.root, "sql");
    FUZZ_CHECK(json_string_length(sql) == strlen(q.sql), "sql holds a NUL byte");
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
    qreq_free(&q);
    return 0;
}
