/* Helpers of the fuzz targets: see fuzz_common.h. */
#include "fuzz_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz check failed: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

uint8_t fuzz_u8(fuzz_in *in)
{
    if (in->left == 0)
        return 0;
    in->left--;
    return *in->p++;
}

uint64_t fuzz_u64(fuzz_in *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | fuzz_u8(in);
    return v;
}

const uint8_t *fuzz_bytes(fuzz_in *in, size_t max, size_t *len)
{
    size_t n = fuzz_u8(in);
    if (n > max)
        n = max;
    if (n > in->left)
        n = in->left;
    const uint8_t *p = in->p;
    in->p += n;
    in->left -= n;
    *len = n;
    return p;
}

/* --- Files for *_FILE variables ----------------------------------------------
 *
 * libFuzzer calls the target over and over in one process, so the directory
 * is made once and its paths kept in this process-wide table (the only
 * mutable state here); an atexit handler removes it. */

enum { FF_SECRET, FF_EMPTY, FF_NUL, FF_BIG, FF_TOKENS, FF_DIR, FF_MISSING, FF_COUNT };

static const char *const ff_names[FF_COUNT] = {"secret", "empty", "nul",    "big",
                                               "tokens", "dir",   "missing"};
static char ff_root[256];
static char ff_paths[FF_COUNT][300];

static void ff_cleanup(void)
{
    for (int i = 0; i < FF_COUNT; i++) {
        if (i != FF_DIR)
            unlink(ff_paths[i]);
    }
    rmdir(ff_paths[FF_DIR]);
    rmdir(ff_root);
}

static void ff_write(int which, const char *data, size_t len)
{
    FILE *f = fopen(ff_paths[which], "wb");
    FUZZ_CHECK(f != NULL, "cannot create %s", ff_paths[which]);
    FUZZ_CHECK(fwrite(data, 1, len, f) == len, "cannot write %s", ff_paths[which]);
    fclose(f);
}

static void ff_init(void)
{
    if (ff_root[0] != '\0')
        return;
    const char *tmp = getenv("TMPDIR");
    snprintf(ff_root, sizeof ff_root, "%s/sqlgate-fuzz-XXXXXX", tmp ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(ff_root) != NULL, "mkdtemp %s", ff_root);
    for (int i = 0; i < FF_COUNT; i++)
        snprintf(ff_paths[i], sizeof ff_paths[i], "%s/%s", ff_root, ff_names[i]);
    ff_write(FF_SECRET, FUZZ_SECRET "file\n", strlen(FUZZ_SECRET "file\n"));
    ff_write(FF_EMPTY, "", 0);
    ff_write(FF_NUL, "ab\0cd", 5);
    static const char tokens[] = FUZZ_SECRET "t1-padding," FUZZ_SECRET "t2-padding\n";
    ff_write(FF_TOKENS, tokens, sizeof tokens - 1);
    size_t big = 70 * 1024;
    char *b = malloc(big);
    FUZZ_CHECK(b != NULL, "out of memory");
    memset(b, 'x', big);
    ff_write(FF_BIG, b, big);
    free(b);
    FUZZ_CHECK(mkdir(ff_paths[FF_DIR], 0700) == 0, "mkdir %s", ff_paths[FF_DIR]);
    atexit(ff_cleanup);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The marked secret values live in one reused buffer per call. */
static char secret_buf[4096];

const char *fuzz_config_value(const char *name, const char *value)
{
    if (value == NULL)
        return NULL;
    if (ends_with(name, "_FILE")) {
        ff_init();
        for (int i = 0; i < FF_COUNT; i++) {
            if (strcmp(value, ff_names[i]) == 0)
                return ff_paths[i];
        }
        unsigned h = 0;
        for (const char *c = value; *c != '\0'; c++)
            h = h * 31u + (unsigned char)*c;
        return ff_paths[h % FF_COUNT];
    }
    if (ends_with(name, "_PASSWORD") || strcmp(name, "SQLGATE_API_TOKENS") == 0) {
        snprintf(secret_buf, sizeof secret_buf, "%s%s", FUZZ_SECRET, value);
        return secret_buf;
    }
    return value;
}

/* --- Checking a load -------------------------------------------------------- */

typedef struct asked {
    sg_lookup_fn inner;
    void *inner_ud;
    char **names;
    size_t n, cap;
    /* A lookup may hand out secret_buf; copies keep every value alive until
     * sg_config_load returns, as sg_lookup_fn promises. */
    char **values;
    size_t n_values, cap_values;
} asked;

static void keep(char ***arr, size_t *n, size_t *cap, char *s)
{
    FUZZ_CHECK(s != NULL, "out of memory");
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *arr = realloc(*arr, *cap * sizeof **arr);
        FUZZ_CHECK(*arr != NULL, "out of memory");
    }
    (*arr)[(*n)++] = s;
}

static const char *recording_lookup(void *ud, const char *name)
{
    asked *a = ud;
    bool seen = false;
    for (size_t i = 0; i < a->n && !seen; i++)
        seen = strcmp(a->names[i], name) == 0;
    if (!seen)
        keep(&a->names, &a->n, &a->cap, strdup(name));
    const char *v = a->inner(a->inner_ud, name);
    if (v == NULL)
        return NULL;
    char *copy = strdup(v);
    keep(&a->values, &a->n_values, &a->cap_values, copy);
    return copy;
}

static bool name_ok(const char *s, bool legacy)
{
    if (legacy)
        return strcmp(s, "default") == 0;
    size_t n = strlen(s);
    if (n == 0 || n > SG_NAME_MAX || s[0] < 'a' || s[0] > 'z')
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return strcmp(s, "default") != 0 && strcmp(s, "live") != 0 && strcmp(s, "ready") != 0;
}

static void check_snapshot(const sg_config *cfg)
{
    FUZZ_CHECK(cfg->n_databases >= 1 && cfg->databases != NULL, "a snapshot without databases");
    for (size_t i = 0; i < cfg->n_databases; i++) {
        const sg_db_config *d = &cfg->databases[i];
        FUZZ_CHECK(name_ok(d->name, cfg->mode == SG_MODE_LEGACY), "bad database name \"%s\"",
                   d->name);
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(cfg->databases[j].name, d->name) != 0, "database %s twice", d->name);
        FUZZ_CHECK(sg_config_find(cfg, d->name) == d, "sg_config_find(%s) misses", d->name);
        FUZZ_CHECK(d->driver != NULL &&
                       (strcmp(d->driver, "sqlite") == 0 || strcmp(d->driver, "freetds") == 0),
                   "%s: driver %s", d->name, d->driver ? d->driver : "(null)");
        if (strcmp(d->driver, "sqlite") == 0) {
            FUZZ_CHECK(d->path != NULL && d->path[0] != '\0', "%s: sqlite without a path", d->name);
        } else {
            FUZZ_CHECK(d->host != NULL && d->host[0] != '\0', "%s: freetds without a host",
                       d->name);
            FUZZ_CHECK(d->port >= 1 && d->port <= 65535, "%s: port %d", d->name, d->port);
        }
        FUZZ_CHECK(d->pool_max >= 1 && d->pool_min <= d->pool_max, "%s: pool %u..%u", d->name,
                   d->pool_min, d->pool_max);
        const int64_t ms[] = {d->acquire_timeout_ms, d->connect_timeout_ms, d->query_timeout_ms,
                              d->idle_timeout_ms,    d->max_lifetime_ms,    d->retry_max_ms,
                              d->health_interval_ms, d->health_timeout_ms};
        for (size_t k = 0; k < sizeof ms / sizeof ms[0]; k++)
            FUZZ_CHECK(ms[k] >= 1, "%s: a *_MS value below 1 (%lld)", d->name, (long long)ms[k]);
        FUZZ_CHECK(d->tds_version != NULL && d->app_name != NULL && d->health_query != NULL,
                   "%s: a string without its default", d->name);
    }
    if (cfg->default_name != NULL)
        FUZZ_CHECK(sg_config_find(cfg, cfg->default_name) != NULL, "default %s is not configured",
                   cfg->default_name);
    if (cfg->n_databases == 1 && cfg->mode != SG_MODE_EMBEDDED)
        FUZZ_CHECK(cfg->default_name != NULL, "a single database without a default");
    FUZZ_CHECK(cfg->listen_host != NULL && cfg->listen_port >= 0 && cfg->listen_port <= 65535,
               "listen address");
    FUZZ_CHECK(cfg->api_tokens == NULL, "plain API tokens kept after loading");
    FUZZ_CHECK(sg_tokens_count(cfg->tokens) >= cfg->n_api_tokens, "api tokens and count");
    FUZZ_CHECK(cfg->listen_loopback || cfg->n_api_tokens > 0 || cfg->allow_anonymous,
               "listens on %s without tokens or SQLGATE_ALLOW_ANONYMOUS", cfg->listen_host);
    FUZZ_CHECK((cfg->tls_cert_file == NULL) == (cfg->tls_key_file == NULL), "half a TLS pair");
    FUZZ_CHECK(cfg->shutdown_delay_ms >= 0 && cfg->drain_timeout_ms >= 1, "shutdown timings");
    FUZZ_CHECK(cfg->max_body_bytes >= 1 && cfg->max_rows >= 1, "limits");
}

static void check_errors(const char *errors, const asked *a, bool secrets_may_show)
{
    FUZZ_CHECK(errors[0] != '\0', "failure with an empty error text");
    FUZZ_CHECK(secrets_may_show || strstr(errors, FUZZ_SECRET) == NULL,
               "a secret value shows in the errors:\n%s", errors);
    const char *line = errors;
    while (*line != '\0') {
        const char *nl = strchr(line, '\n');
        FUZZ_CHECK(nl != NULL, "the last error line has no newline:\n%s", errors);
        size_t len = (size_t)(nl - line);
        const char *colon = memchr(line, ':', len);
        bool named = false;
        for (size_t i = 0; colon != NULL && i < a->n && !named; i++) {
            size_t k = strlen(a->names[i]);
            named = k == (size_t)(colon - line) && memcmp(line, a->names[i], k) == 0;
        }
        bool summary = len > 1 && line[0] == '(' && strstr(line, "more problems") != NULL;
        FUZZ_CHECK(named || summary, "error line does not start with a variable: %.*s", (int)len,
                   line);
        line = nl + 1;
    }
}

void fuzz_check_config(sg_lookup_fn lookup, void *ud, bool secrets_may_show)
{
    asked a = {.inner = lookup, .inner_ud = ud};
    static char unset; /* tells "errors left alone" from any real answer */
    char *errors = &unset;
    sg_config *cfg = sg_config_load(recording_lookup, &a, &errors);
    if (cfg != NULL) {
        FUZZ_CHECK(errors == NULL, "a snapshot and errors at once");
        check_snapshot(cfg);
        sg_config_free(cfg);
    } else {
        FUZZ_CHECK(errors != NULL && errors != &unset, "no snapshot and no errors");
        check_errors(errors, &a, secrets_may_show);
        free(errors);
    }
    for (size_t i = 0; i < a.n; i++)
        free(a.names[i]);
    for (size_t i = 0; i < a.n_values; i++)
        free(a.values[i]);
    free(a.names);
    free(a.values);
}
