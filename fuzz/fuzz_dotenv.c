/* libFuzzer target: the .env parser (sg_dotenv_parse), then the
 * configuration loader reading through the parsed file.
 *
 * Input: the text of a .env file. Checks: exactly one of a set and errors;
 * error lines start with the origin and never exceed the documented count;
 * for each simple line KEY=VALUE (no blanks, quotes or '#') whose key no
 * later line mentions, sg_dotenv_lookup gives VALUE back exactly; then the
 * set is fed to sg_config_load as in fuzz_config.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

#define ORIGIN "fuzz.env"

static bool key_start(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool key_char(uint8_t c)
{
    return key_start(c) || (c >= '0' && c <= '9');
}

static bool plain_value_char(uint8_t c)
{
    return key_char(c) || c == '.' || c == ':' || c == '/' || c == '@' || c == ',' || c == '-';
}

static bool mentions(const uint8_t *p, const uint8_t *end, const uint8_t *key, size_t klen)
{
    for (; p + klen <= end; p++) {
        if (memcmp(p, key, klen) == 0)
            return true;
    }
    return false;
}

/* Checks every simple assignment against sg_dotenv_lookup. */
static void check_simple_lines(const sg_dotenv *env, const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    if (size >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *e = nl != NULL ? nl : end;
        const uint8_t *k = p;
        while (k < e && key_char(*k))
            k++;
        bool simple = k > p && key_start(*p) && k < e && *k == '=';
        for (const uint8_t *c = k + 1; simple && c < e; c++)
            simple = plain_value_char(*c);
        const uint8_t *next = nl != NULL ? nl + 1 : end;
        if (simple && !mentions(next, end, p, (size_t)(k - p))) {
            char key[256], want[4096];
            size_t klen = (size_t)(k - p), vlen = (size_t)(e - k - 1);
            if (klen < sizeof key && vlen < sizeof want) {
                memcpy(key, p, klen);
                key[klen] = '\0';
                memcpy(want, k + 1, vlen);
                want[vlen] = '\0';
                const char *got = sg_dotenv_lookup((void *)env, key);
                FUZZ_CHECK(got != NULL && strcmp(got, want) == 0, "%s: expected \"%s\", got \"%s\"",
                           key, want, got ? got : "(unset)");
            }
        }
        p = next;
    }
}

static const char *dotenv_config_lookup(void *ud, const char *name)
{
    return fuzz_config_value(name, sg_dotenv_lookup(ud, name));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *errors = NULL;
    sg_dotenv *env = sg_dotenv_parse((const char *)data, size, ORIGIN, &errors);
    if (env == NULL) {
        FUZZ_CHECK(errors != NULL && errors[0] != '\0', "no set and no errors");
        size_t lines = 0;
        for (const char *l = errors; *l != '\0'; lines++) {
            FUZZ_CHECK(strncmp(l, ORIGIN ":", strlen(ORIGIN) + 1) == 0,
                       "error line without its origin: %s", l);
            const char *nl = strchr(l, '\n');
            FUZZ_CHECK(nl != NULL, "error text does not end with a newline");
            l = nl + 1;
        }
        FUZZ_CHECK(lines <= 51, "%zu error lines (50 + a summary at most)", lines);
        free(errors);
        return 0;
    }
    FUZZ_CHECK(errors == NULL, "a set and errors at once");
    check_simple_lines(env, data, size);
    /* Any marker in the file shows up in values the loader may quote. */
    bool marker = mentions(data, data + size, (const uint8_t *)FUZZ_SECRET, strlen(FUZZ_SECRET));
    fuzz_check_config(dotenv_config_lookup, env, marker);
    sg_dotenv_free(env);
    return 0;
}
