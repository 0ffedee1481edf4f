/* sqlgate error helpers: the code table of docs/errors.md in one place. */
#include "sqlgate/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int status;
} code_table[SG_CODE_COUNT_] = {
    [SG_OK] = {"OK", 200},
    [SG_BAD_REQUEST] = {"BAD_REQUEST", 400},
    [SG_UNAUTHORIZED] = {"UNAUTHORIZED", 401},
    [SG_FORBIDDEN] = {"FORBIDDEN", 403},
    [SG_UNKNOWN_DATABASE] = {"UNKNOWN_DATABASE", 404},
    [SG_NOT_FOUND] = {"NOT_FOUND", 404},
    [SG_METHOD_NOT_ALLOWED] = {"METHOD_NOT_ALLOWED", 405},
    [SG_PAYLOAD_TOO_LARGE] = {"PAYLOAD_TOO_LARGE", 413},
    [SG_UNSUPPORTED_MEDIA_TYPE] = {"UNSUPPORTED_MEDIA_TYPE", 415},
    [SG_SQL_ERROR] = {"SQL_ERROR", 400},
    [SG_POOL_EXHAUSTED] = {"POOL_EXHAUSTED", 503},
    [SG_DB_UNAVAILABLE] = {"DB_UNAVAILABLE", 503},
    [SG_DB_PAUSED] = {"DB_PAUSED", 503},
    [SG_OVERLOADED] = {"OVERLOADED", 503},
    [SG_QUERY_TIMEOUT] = {"QUERY_TIMEOUT", 504},
    [SG_SHUTTING_DOWN] = {"SHUTTING_DOWN", 503},
    [SG_CONFIG_INVALID] = {"CONFIG_INVALID", 400},
    [SG_INTERNAL] = {"INTERNAL", 500},
};

int sg_err_set(sg_err *err, sg_code code, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    err->code = code;
    err->has_sql = false;
    memset(&err->sql, 0, sizeof err->sql);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

void sg_err_clear(sg_err *err)
{
    if (err == NULL)
        return;
    memset(err, 0, sizeof *err);
}

void sg_err_copy(sg_err *dst, const sg_err *src)
{
    if (dst == NULL || dst == src)
        return;
    memcpy(dst, src, sizeof *dst);
}

const char *sg_code_name(sg_code code)
{
    if ((unsigned)code >= SG_CODE_COUNT_)
        return "INTERNAL";
    return code_table[code].name;
}

int sg_code_http_status(sg_code code)
{
    if ((unsigned)code >= SG_CODE_COUNT_)
        return 500;
    return code_table[code].status;
}
