/* trace: see trace.h. */
#include "trace.h"

#include <string.h>

static bool lower_hex(const char *s, size_t n, bool *all_zero)
{
    *all_zero = true;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        if (c != '0')
            *all_zero = false;
    }
    return true;
}

bool trace_parent_parse(const char *value, char out[TRACE_PARENT_LEN + 1])
{
    out[0] = '\0';
    size_t n = strnlen(value, TRACE_PARENT_LEN + 1);
    if (n < TRACE_PARENT_LEN)
        return false;
    bool zero;
    if (!lower_hex(value, 2, &zero) || memcmp(value, "ff", 2) == 0)
        return false;
    bool v00 = memcmp(value, "00", 2) == 0;
    /* Version 00 has exactly four fields; a later one may add fields after a '-'. */
    if (n > TRACE_PARENT_LEN && (v00 || value[TRACE_PARENT_LEN] != '-'))
        return false;
    if (value[2] != '-' || value[35] != '-' || value[52] != '-')
        return false;
    if (!lower_hex(value + TRACE_ID_OFFSET, TRACE_ID_LEN, &zero) || zero)
        return false;
    if (!lower_hex(value + 36, 16, &zero) || zero)
        return false;
    if (!lower_hex(value + 53, 2, &zero))
        return false;
    memcpy(out, value, TRACE_PARENT_LEN);
    out[TRACE_PARENT_LEN] = '\0';
    return true;
}
