/* libFuzzer target: the tokens-file parser (sg_tokens_parse).
 *
 * Input: the text of a tokens file. Checks: the result is exactly one of a
 * set and errors; error lines start with the origin and a line number within
 * the input, never exceed 50 + a summary, and never quote the token of the
 * line they describe (messages are fixed text but for quoted database names;
 * a quoted part may equal the token only when the same bytes appear again
 * later on that line, as in "tok db=tok"); on success every line that is neither blank nor a
 * comment added one token, and each plain token is found again by
 * sg_tokens_find with scopes that its words allow and an 8-hex fingerprint.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "sqlgate/tokens.h"

#define ORIGIN "fuzz.tokens"

static const char *resolve(void *ud, const char *name)
{
    (void)ud;
    if (strcmp(name, "default") == 0)
        return "core";
    if (strcmp(name, "core") == 0 || strcmp(name, "app") == 0)
        return name;
    return NULL;
}

static bool blank(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* One input line: its start, end and first word. */
typedef struct line {
    const uint8_t *s, *e;
    const uint8_t *w;
    size_t wlen;
    bool content; /* neither blank nor a comment */
} line;

static line line_at(const uint8_t *s, const uint8_t *end)
{
    line l = {.s = s};
    const uint8_t *nl = memchr(s, '\n', (size_t)(end - s));
    l.e = nl != NULL ? nl : end;
    const uint8_t *b = s;
    while (b < l.e && blank(*b))
        b++;
    l.content = b < l.e && *b != '#';
    l.w = b;
    while (b < l.e && !blank(*b))
        b++;
    l.wlen = (size_t)(b - l.w);
    return l;
}

static bool occurs(const uint8_t *hay, size_t n, const uint8_t *needle, size_t k)
{
    for (size_t i = 0; k > 0 && i + k <= n; i++) {
        if (memcmp(hay + i, needle, k) == 0)
            return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sg_tokens *set = sg_tokens_new();
    FUZZ_CHECK(set != NULL, "out of memory");
    char *errors = NULL;
    int rc = sg_tokens_parse(set, (const char *)data, size, ORIGIN, resolve, NULL, &errors);

    const uint8_t *p = data, *end = data + size;
    if (size >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    size_t n_lines = 0, n_content = 0;
    for (const uint8_t *q = p; q < end; n_lines++) {
        line l = line_at(q, end);
        n_content += l.content;
        q = l.e < end ? l.e + 1 : end;
    }

    if (rc != 0) {
        FUZZ_CHECK(errors != NULL && errors[0] != '\0', "failure without errors");
        size_t count = 0;
        for (const char *e = errors; *e != '\0'; count++) {
            FUZZ_CHECK(strncmp(e, ORIGIN ":", strlen(ORIGIN) + 1) == 0, "no origin: %s", e);
            char *after = NULL;
            unsigned long n = strtoul(e + strlen(ORIGIN) + 1, &after, 10);
            FUZZ_CHECK(n >= 1 && n <= n_lines && *after == ':', "bad line number: %s", e);
            const char *nl = strchr(e, '\n');
            FUZZ_CHECK(nl != NULL, "error text does not end with a newline");
            /* The line the error is about must not be quoted by its token. */
            const uint8_t *q = p;
            for (unsigned long i = 1; i < n; i++) {
                line l = line_at(q, end);
                q = l.e < end ? l.e + 1 : end;
            }
            line l = line_at(q, end);
            /* Messages are fixed text apart from quoted database names: a
             * quoted part must not be this line's token. */
            const uint8_t *rest = l.w + l.wlen;
            bool repeated = occurs(rest, (size_t)(l.e - rest), l.w, l.wlen);
            for (const char *qs = memchr(e, '"', (size_t)(nl - e)); qs != NULL && !repeated;) {
                const char *qe = memchr(qs + 1, '"', (size_t)(nl - qs - 1));
                if (qe == NULL)
                    break;
                FUZZ_CHECK((size_t)(qe - qs - 1) != l.wlen || memcmp(qs + 1, l.w, l.wlen) != 0,
                           "an error quotes the token of its line: %.*s", (int)(nl - e), e);
                qs = memchr(qe + 1, '"', (size_t)(nl - qe - 1));
            }
            e = nl + 1;
        }
        FUZZ_CHECK(count <= 51, "%zu error lines (50 + a summary at most)", count);
        free(errors);
        sg_tokens_free(set);
        return 0;
    }
    FUZZ_CHECK(errors == NULL, "success with errors");
    FUZZ_CHECK(sg_tokens_count(set) == n_content, "%zu tokens from %zu lines", sg_tokens_count(set),
               n_content);
    for (const uint8_t *q = p; q < end;) {
        line l = line_at(q, end);
        q = l.e < end ? l.e + 1 : end;
        if (!l.content || (l.wlen >= 7 && memcmp(l.w, "sha256:", 7) == 0))
            continue;
        const sg_token *t = sg_tokens_find(set, (const char *)l.w, l.wlen);
        FUZZ_CHECK(t != NULL, "token of a good line not found");
        unsigned scopes = sg_token_scopes(t);
        const uint8_t *rest = l.w + l.wlen;
        size_t rlen = (size_t)(l.e - rest);
        if (scopes & SG_SCOPE_RW)
            FUZZ_CHECK(occurs(rest, rlen, (const uint8_t *)"rw", 2), "rw from nowhere");
        if (scopes & SG_SCOPE_ADMIN)
            FUZZ_CHECK(occurs(rest, rlen, (const uint8_t *)"admin", 5), "admin from nowhere");
        if (scopes & SG_SCOPE_METRICS)
            FUZZ_CHECK(occurs(rest, rlen, (const uint8_t *)"metrics", 7), "metrics from nowhere");
        if (scopes & SG_SCOPE_ALL_DBS)
            FUZZ_CHECK(occurs(rest, rlen, (const uint8_t *)"db=*", 4), "db=* from nowhere");
        FUZZ_CHECK((scopes & SG_SCOPE_ALL_DBS) || !sg_token_may_db(t, "default"),
                   "the alias is stored, not the database");
        const char *fp = sg_token_fingerprint(t);
        FUZZ_CHECK(strlen(fp) == SG_TOKEN_FINGERPRINT_LEN &&
                       strspn(fp, "0123456789abcdef") == SG_TOKEN_FINGERPRINT_LEN,
                   "fingerprint %s", fp);
    }
    sg_tokens_free(set);
    return 0;
}
