/* libFuzzer target: the configuration loader (sg_config_load).
 *
 * Input: lines "NAME=VALUE" ('\n' ends a line; the first '=' splits; a line
 * without '=' sets NAME to ""; a later line for the same name wins). The
 * lookup serves those values (through fuzz_config_value: *_FILE variables
 * pick a fixture file, secrets get a marker), everything else is unset.
 * Beyond "no crash, no leak, no undefined behaviour" fuzz_check_config
 * checks the loader's answer against docs/configuration.md.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

#define MAX_VARS 512

typedef struct vars {
    char *names[MAX_VARS];
    char *values[MAX_VARS];
    size_t n;
} vars;

static const char *vars_lookup(void *ud, const char *name)
{
    const vars *v = ud;
    for (size_t i = v->n; i-- > 0;) {
        if (strcmp(v->names[i], name) == 0)
            return fuzz_config_value(name, v->values[i]);
    }
    return NULL;
}

static char *dup_n(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    FUZZ_CHECK(s != NULL, "out of memory");
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vars v = {.n = 0};
    bool marker_in_plain_value = false;
    const uint8_t *p = data, *end = data + size;
    while (p < end && v.n < MAX_VARS) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *e = nl != NULL ? nl : end;
        const uint8_t *eq = memchr(p, '=', (size_t)(e - p));
        const uint8_t *name_end = eq != NULL ? eq : e;
        v.names[v.n] = dup_n(p, (size_t)(name_end - p));
        v.values[v.n] = eq != NULL ? dup_n(eq + 1, (size_t)(e - eq - 1)) : dup_n(p, 0);
        /* The values hold raw bytes; a NUL inside cuts them, as in a real
         * environment. A marker written by the input itself may show. */
        const char *shown = fuzz_config_value(v.names[v.n], v.values[v.n]);
        if (shown == v.values[v.n] && strstr(v.values[v.n], FUZZ_SECRET) != NULL)
            marker_in_plain_value = true;
        if (strstr(v.names[v.n], FUZZ_SECRET) != NULL)
            marker_in_plain_value = true;
        v.n++;
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    fuzz_check_config(vars_lookup, &v, marker_in_plain_value);
    for (size_t i = 0; i < v.n; i++) {
        free(v.names[i]);
        free(v.values[i]);
    }
    return 0;
}
