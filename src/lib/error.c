/* sqlgate error helpers: the tables SG_CODE_LIST generates (the codes are
 * documented in docs/errors.md). */
#include "sqlgate/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    const char *outcome;
} code_table[SG_CODE_COUNT_] = {
#define CODE_ROW(name, outcome) [SG_##name] = {#name, outcome},
    SG_CODE_LIST(CODE_ROW)
#undef CODE_ROW
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

const char *sg_code_outcome(sg_code code)
{
    if ((unsigned)code >= SG_CODE_COUNT_)
        return "error";
    return code_table[code].outcome;
}
