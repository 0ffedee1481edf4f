/* sqlgate API tokens: see tokens.h.
 *
 * The set is a plain array searched linearly: token counts are small, and a
 * full scan with constant-time digest comparisons leaks neither which entry
 * matched nor how much of a digest did.
 */
#include "sqlgate/tokens.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sqlgate/config.h"
#include "sqlgate/sha256.h"
#include "util.h"

#define ERRORS_CAP 50
#define SHA_PREFIX "sha256:"

struct sg_token {
    unsigned char digest[SG_SHA256_BYTES];
    char fingerprint[SG_TOKEN_FINGERPRINT_LEN + 1];
    unsigned scopes;
    char **dbs; /* owned names, n_dbs of them; unused with SG_SCOPE_ALL_DBS */
    size_t n_dbs;
};

struct sg_tokens {
    sg_token **items; /* owned */
    size_t n, cap;
};

static const sg_token anonymous = {.fingerprint = "anonymous", .scopes = SG_SCOPE_EVERY};

static const char *const token_placeholders[] = {"change-me", "changeme",   "replace-me",
                                                 "replaceme", "your-token", "example-token"};

static bool contains_ci(const char *s, size_t n, const char *needle)
{
    size_t w = strlen(needle);
    for (size_t i = 0; i + w <= n; i++) {
        if (strncasecmp(s + i, needle, w) == 0)
            return true;
    }
    return false;
}

const char *sg_token_weakness(const char *token, size_t len)
{
    _Static_assert(SG_TOKEN_MIN_LEN == 16, "the message below names the minimum");
    if (len < SG_TOKEN_MIN_LEN)
        return "is shorter than 16 characters";
    for (size_t i = 0; i < sizeof token_placeholders / sizeof token_placeholders[0]; i++) {
        if (contains_ci(token, len, token_placeholders[i]))
            return "is a placeholder from an example file, not a secret";
    }
    return NULL;
}

sg_tokens *sg_tokens_new(void)
{
    return calloc(1, sizeof(sg_tokens));
}

static void token_free(sg_token *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_dbs; i++)
        free(t->dbs[i]);
    free(t->dbs);
    free(t);
}

void sg_tokens_free(sg_tokens *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->n; i++)
        token_free(set->items[i]);
    free(set->items);
    free(set);
}

static void fingerprint_from(const unsigned char digest[SG_SHA256_BYTES],
                             char out[SG_TOKEN_FINGERPRINT_LEN + 1])
{
    char hex[2 * SG_SHA256_BYTES + 1];
    sg_sha256_hex(digest, hex);
    memcpy(out, hex, SG_TOKEN_FINGERPRINT_LEN);
    out[SG_TOKEN_FINGERPRINT_LEN] = '\0';
}

/* Index of an entry with this digest, or -1. */
static long find_digest(const sg_tokens *set, const unsigned char digest[SG_SHA256_BYTES])
{
    long found = -1;
    for (size_t i = 0; i < set->n; i++) {
        if (sg_sha256_equal(set->items[i]->digest, digest))
            found = (long)i;
    }
    return found;
}

/* Takes t (steals it, also on failure). */
static int push(sg_tokens *set, sg_token *t)
{
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 8;
        sg_token **items = realloc(set->items, cap * sizeof *items);
        if (items == NULL) {
            token_free(t);
            return -1;
        }
        set->items = items;
        set->cap = cap;
    }
    fingerprint_from(t->digest, t->fingerprint);
    set->items[set->n++] = t;
    return 0;
}

int sg_tokens_add(sg_tokens *set, const char *token, size_t len, unsigned scopes, sg_err *err)
{
    sg_token *t = calloc(1, sizeof *t);
    if (t == NULL)
        return sg_err_set(err, SG_INTERNAL, "out of memory");
    sg_sha256(token, len, t->digest);
    t->scopes = scopes;
    if (find_digest(set, t->digest) >= 0) {
        token_free(t);
        return sg_err_set(err, SG_BAD_REQUEST, "the same token is given twice");
    }
    if (push(set, t) != 0)
        return sg_err_set(err, SG_INTERNAL, "out of memory");
    return 0;
}

/* --- Parsing ---------------------------------------------------------------- */

typedef struct parser {
    const char *origin;
    sg_tokens_db_fn resolve;
    void *ud;
    char *errs; /* owned */
    size_t len, cap;
    size_t n_errors;
    bool oom;
} parser;

static void problem(parser *p, size_t line, const char *fmt, ...) SG_PRINTF(3, 4);

static void append(parser *p, size_t line, const char *msg)
{
    char out[512];
    int n = snprintf(out, sizeof out, "%s:%zu: %s\n", p->origin, line, msg);
    if (n < 0)
        return;
    size_t need = (size_t)n < sizeof out ? (size_t)n : sizeof out - 1;
    if (p->len + need + 1 > p->cap) {
        size_t cap = (p->cap ? p->cap * 2 : 256) + need;
        char *e = realloc(p->errs, cap);
        if (e == NULL) {
            p->oom = true;
            return;
        }
        p->errs = e;
        p->cap = cap;
    }
    memcpy(p->errs + p->len, out, need);
    p->len += need;
    p->errs[p->len] = '\0';
}

static void problem(parser *p, size_t line, const char *fmt, ...)
{
    if (++p->n_errors > ERRORS_CAP)
        return;
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    append(p, line, msg);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Adds one name of db= to t. False after a problem was reported. */
static bool add_db(parser *p, size_t line, sg_token *t, const char *s, size_t n)
{
    char name[SG_NAME_MAX + 1];
    if (!sg_name_valid(s, n)) {
        problem(p, line,
                "db= holds an invalid database name (expected `*` or names like core,app)");
        return false;
    }
    memcpy(name, s, n);
    name[n] = '\0';
    const char *real = name;
    if (p->resolve != NULL && (real = p->resolve(p->ud, name)) == NULL) {
        problem(p, line, "db= names \"%s\", which is not a configured database", name);
        return false;
    }
    for (size_t i = 0; i < t->n_dbs; i++) {
        if (strcmp(t->dbs[i], real) == 0)
            return true; /* "core,default" with default = core */
    }
    char **dbs = realloc(t->dbs, (t->n_dbs + 1) * sizeof *dbs);
    if (dbs == NULL) {
        p->oom = true;
        return false;
    }
    t->dbs = dbs;
    if ((t->dbs[t->n_dbs] = strdup(real)) == NULL) {
        p->oom = true;
        return false;
    }
    t->n_dbs++;
    return true;
}

static bool parse_dbs(parser *p, size_t line, sg_token *t, const char *s, size_t n)
{
    if (n == 1 && s[0] == '*') {
        t->scopes |= SG_SCOPE_ALL_DBS;
        return true;
    }
    if (n == 0) {
        problem(p, line, "db= is empty (give `*` or database names)");
        return false;
    }
    const char *end = s + n;
    while (s <= end) {
        const char *c = memchr(s, ',', (size_t)(end - s));
        const char *e = c != NULL ? c : end;
        if (e - s == 1 && s[0] == '*') {
            problem(p, line, "db=* cannot be combined with database names");
            return false;
        }
        if (!add_db(p, line, t, s, (size_t)(e - s)))
            return false;
        if (c == NULL)
            break;
        s = c + 1;
    }
    return true;
}

/* Fills t->digest from the first word. False after a problem was reported. */
static bool parse_secret(parser *p, size_t line, sg_token *t, const char *s, size_t n)
{
    size_t plen = strlen(SHA_PREFIX);
    if (n >= plen && strncmp(s, SHA_PREFIX, plen) == 0) {
        if (n - plen != 2 * SG_SHA256_BYTES) {
            problem(p, line, "sha256: must be followed by exactly 64 hex digits");
            return false;
        }
        for (size_t i = 0; i < SG_SHA256_BYTES; i++) {
            int hi = sg_hex_value(s[plen + 2 * i]), lo = sg_hex_value(s[plen + 2 * i + 1]);
            if (hi < 0 || lo < 0) {
                problem(p, line, "sha256: must be followed by exactly 64 hex digits");
                return false;
            }
            t->digest[i] = (unsigned char)(hi << 4 | lo);
        }
        return true;
    }
    /* "db=app rw" without its token would otherwise make "db=app" a token. */
    if ((n >= 3 && strncmp(s, "db=", 3) == 0) || (n == 2 && strncmp(s, "ro", 2) == 0) ||
        (n == 2 && strncmp(s, "rw", 2) == 0) || (n == 5 && strncmp(s, "admin", 5) == 0) ||
        (n == 7 && strncmp(s, "metrics", 7) == 0)) {
        problem(p, line, "the line starts with a scope word; the token must come first");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f) {
            problem(p, line, "the token contains a control or non-ASCII character");
            return false;
        }
    }
    const char *weak = sg_token_weakness(s, n);
    if (weak != NULL) {
        problem(p, line, "the token %s", weak);
        return false;
    }
    sg_sha256(s, n, t->digest);
    return true;
}

/* Parses one line that is neither blank nor a comment. */
static void parse_line(parser *p, sg_tokens *set, size_t line, const char *s, const char *end)
{
    sg_token *t = calloc(1, sizeof *t);
    if (t == NULL) {
        p->oom = true;
        return;
    }
    bool ok = true, seen_db = false, seen_mode = false;
    size_t word = 0;
    while (ok) {
        while (s < end && is_blank(*s))
            s++;
        if (s == end || *s == '#')
            break;
        const char *w = s;
        while (s < end && !is_blank(*s))
            s++;
        size_t n = (size_t)(s - w);
        word++;
        if (word == 1) {
            ok = parse_secret(p, line, t, w, n);
        } else if (n > 3 && strncmp(w, "db=", 3) == 0) {
            if (seen_db) {
                problem(p, line, "db= is given twice");
                ok = false;
            } else {
                seen_db = true;
                ok = parse_dbs(p, line, t, w + 3, n - 3);
            }
        } else if (n == 3 && strncmp(w, "db=", 3) == 0) {
            problem(p, line, "db= is empty (give `*` or database names)");
            ok = false;
        } else if ((n == 2 && strncmp(w, "ro", 2) == 0) || (n == 2 && strncmp(w, "rw", 2) == 0)) {
            if (seen_mode) {
                problem(p, line, "ro/rw is given twice");
                ok = false;
            }
            seen_mode = true;
            if (w[1] == 'w')
                t->scopes |= SG_SCOPE_RW;
        } else if (n == 5 && strncmp(w, "admin", 5) == 0) {
            t->scopes |= SG_SCOPE_ADMIN;
        } else if (n == 7 && strncmp(w, "metrics", 7) == 0) {
            t->scopes |= SG_SCOPE_METRICS;
        } else {
            /* Never quoted: a token pasted into the wrong place would leak. */
            problem(p, line,
                    "word %zu is not a scope (expected db=NAMES, ro, rw, admin or metrics)", word);
            ok = false;
        }
    }
    if (ok && word == 0)
        ok = false; /* only a trailing comment: nothing to add */
    if (ok && find_digest(set, t->digest) >= 0) {
        problem(p, line, "the same token is given earlier (or in SQLGATE_API_TOKENS)");
        ok = false;
    }
    if (!ok) {
        token_free(t);
        return;
    }
    if (push(set, t) != 0)
        p->oom = true;
}

int sg_tokens_parse(sg_tokens *set, const char *text, size_t len, const char *origin,
                    sg_tokens_db_fn resolve, void *ud, char **errors)
{
    parser p = {.origin = origin ? origin : "tokens", .resolve = resolve, .ud = ud};
    *errors = NULL;
    const char *s = text, *end = text + len;
    if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    size_t line = 0;
    while (s < end && !p.oom) {
        line++;
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *e = nl != NULL ? nl : end;
        const char *b = s;
        while (b < e && is_blank(*b))
            b++;
        if (memchr(s, '\0', (size_t)(e - s)) != NULL)
            problem(&p, line, "the line contains a NUL byte");
        else if (b < e && *b != '#')
            parse_line(&p, set, line, b, e);
        s = nl != NULL ? nl + 1 : end;
    }
    if (p.n_errors > ERRORS_CAP && !p.oom) {
        char more[96];
        snprintf(more, sizeof more, "(%zu more problems not shown)", p.n_errors - ERRORS_CAP);
        append(&p, line, more);
    }
    if (p.oom) {
        free(p.errs);
        *errors = strdup("out of memory while reading the tokens\n");
        return -1;
    }
    if (p.n_errors > 0) {
        *errors = p.errs;
        return -1;
    }
    free(p.errs);
    return 0;
}

/* --- Look-ups ----------------------------------------------------------------- */

size_t sg_tokens_count(const sg_tokens *set)
{
    return set != NULL ? set->n : 0;
}

const sg_token *sg_tokens_find(const sg_tokens *set, const char *presented, size_t len)
{
    if (set == NULL || set->n == 0)
        return NULL;
    unsigned char digest[SG_SHA256_BYTES];
    sg_sha256(presented, len, digest);
    long i = find_digest(set, digest);
    return i >= 0 ? set->items[i] : NULL;
}

const sg_token *sg_token_anonymous(void)
{
    return &anonymous;
}

unsigned sg_token_scopes(const sg_token *t)
{
    return t->scopes;
}

bool sg_token_may_db(const sg_token *t, const char *name)
{
    if (t->scopes & SG_SCOPE_ALL_DBS)
        return true;
    for (size_t i = 0; name != NULL && i < t->n_dbs; i++) {
        if (strcmp(t->dbs[i], name) == 0)
            return true;
    }
    return false;
}

const char *sg_token_fingerprint(const sg_token *t)
{
    return t->fingerprint;
}

void sg_token_fingerprint_of(const char *presented, size_t len,
                             char out[SG_TOKEN_FINGERPRINT_LEN + 1])
{
    unsigned char digest[SG_SHA256_BYTES];
    sg_sha256(presented, len, digest);
    fingerprint_from(digest, out);
}
