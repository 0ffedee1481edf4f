/* sqlgate configuration loader (docs/configuration.md).
 *
 * Two tables drive it (config_vars.c): cfg_service_vars (SQLGATE_*) and
 * cfg_db_vars (the suffixes read after a database's prefix, "CORE_DB_" or
 * "DB_"). An entry gives a variable's type, default, bounds, whether its value
 * is a secret and its help text. Loading reads every variable once and parses
 * it by its entry, then applies the rules that span variables (mode, driver
 * choice, URL merging, pool bounds, the anonymous listen rule). A problem adds
 * one line "NAME: what is wrong" to the error text and loading goes on, so one
 * run reports everything. Values of secret variables, of a URL (it may hold a
 * password) and of secret files are never echoed; other values are echoed
 * quoted, escaped and truncated.
 *
 * This file holds the loader state, errors, scalar parsing, files, hosts and
 * the public API; config_int.h lists the other parts (tables, URLs, one
 * database, the service-wide rules).
 *
 * Decisions beyond docs/configuration.md:
 * - An empty value counts as unset (compose files and systemd write `VAR=`
 *   for "nothing"); this includes SQLGATE_DATABASES.
 * - Embedded mode (nothing configured): CORE_DB_* and APP_DB_* still apply on
 *   top of the built-in databases. "./var/<name>.db" is only the default PATH,
 *   used when none of HOST, URL, PATH is set, so CORE_DB_PATH moves the file,
 *   CORE_DB_POOL_MAX resizes the pool and CORE_DB_URL=mssql://... turns core
 *   into a SQL Server database.
 * - Named mode ignores unprefixed DB_* variables; legacy mode is entered as
 *   soon as any DB_<suffix> from cfg_db_vars is set.
 * - Keywords (driver, encrypt, TDS version, log level and format) match in any
 *   case.
 * - Sanity caps: POOL_MAX and POOL_MIN <= 1000, every *_MS <= 86400000 (one
 *   day), MAX_BODY_BYTES <= 1 GiB, at most 128 databases, APP_NAME <= 128
 *   bytes (the TDS limit).
 * - SQLGATE_LISTEN port 0 means "any free port".
 * - API tokens are 1..N printable ASCII characters without spaces; the file
 *   form is trimmed as a whole, then split on commas like the inline form.
 * - CA_FILE, PASSWORD_FILE and the TLS files must be readable regular files;
 *   CA_FILE may instead be the word "system" (FreeTDS then verifies against
 *   the system's trust store).
 * - An empty PASSWORD_FILE is an error (almost always a broken mount).
 * - URL forms and the ADO.NET form: see config_url.c.
 */
#include "config_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdatomic.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- Loader state and errors ------------------------------------------------ */

void cfg_add_error(loader *ld, const char *var, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    ld->n_errors++;
    size_t vlen = strlen(var), mlen = strlen(msg);
    if (ld->errs.len + vlen + mlen + 3 > ERRORS_CAP) {
        ld->n_dropped++;
        return;
    }
    if (!sg_buf_append(&ld->errs, var, vlen) || !sg_buf_append(&ld->errs, ": ", 2) ||
        !sg_buf_append(&ld->errs, msg, mlen) || !sg_buf_append(&ld->errs, "\n", 1))
        ld->oom = true;
}

/* Writes `"value"` into buf, escaping quotes, backslashes and control bytes
 * so that an error stays on one line, and cutting it at ECHO_MAX bytes. */
const char *cfg_quote(char *buf, size_t size, const char *s)
{
    size_t o = 0;
    size_t i = 0;
    buf[o++] = '"';
    for (; s[i] != '\0' && i < ECHO_MAX && o + 6 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    if (s[i] != '\0' && o + 5 < size) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

void *cfg_owned_add(loader *ld, void *p)
{
    cfg_box *box = ld->box;
    if (p == NULL) {
        ld->oom = true;
        return NULL;
    }
    if (box->n_owned == box->cap_owned) {
        size_t cap = box->cap_owned ? box->cap_owned * 2 : 32;
        void **n = realloc(box->owned, cap * sizeof *n);
        if (n == NULL) {
            free(p);
            ld->oom = true;
            return NULL;
        }
        box->owned = n;
        box->cap_owned = cap;
    }
    box->owned[box->n_owned++] = p;
    return p;
}

/* A copy owned by the snapshot; NULL stays NULL. */
const char *cfg_keep(loader *ld, const char *s)
{
    if (s == NULL)
        return NULL;
    return cfg_owned_add(ld, strdup(s));
}

char *cfg_dup_range(loader *ld, const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d == NULL) {
        ld->oom = true;
        return NULL;
    }
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

const char *cfg_get(loader *ld, const char *name)
{
    const char *v = ld->lookup(ld->ud, name);
    return (v != NULL && v[0] != '\0') ? v : NULL;
}

/* --- Scalar parsing ---------------------------------------------------------- */

/* Decimal only: optional '-', digits, nothing else; overflow is an error. */
int cfg_parse_int(const char *s, int64_t *out)
{
    bool neg = false;
    int64_t v = 0;
    if (*s == '-') {
        neg = true;
        s++;
    }
    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        int d = *s - '0';
        if (v > (INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = neg ? -v : v;
    return 0;
}

int cfg_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes"};
    static const char *const no[] = {"false", "0", "no"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

int cfg_parse_word(const word *words, const char *s, int *out)
{
    for (; words->text != NULL; words++) {
        if (strcasecmp(words->text, s) == 0) {
            *out = words->value;
            return 0;
        }
    }
    return -1;
}

static void word_list(const word *words, char *buf, size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (const word *w = words; w->text != NULL && o < size; w++) {
        const char *sep = w == words ? "" : (w[1].text == NULL ? " or " : ", ");
        int n = snprintf(buf + o, size - o, "%s%s", sep, w->text);
        if (n < 0)
            break;
        o += (size_t)n;
    }
}

/* Parses text by def into *num. Returns 0, or -1 after reporting under var. */
static int parse_value(loader *ld, const char *var, const var_def *def, const char *text,
                       int64_t *num)
{
    char q[QUOTE_BUF], got[QUOTE_BUF + 8];
    got[0] = '\0';
    if (!def->secret)
        snprintf(got, sizeof got, " (got %s)", cfg_quote(q, sizeof q, text));

    switch (def->kind) {
    case K_STRING:
        return 0;
    case K_INT: {
        int64_t v;
        if (cfg_parse_int(text, &v) != 0 || v < def->min) {
            cfg_add_error(ld, var, "must be an integer >= %lld%s", (long long)def->min, got);
            return -1;
        }
        if (v > def->max) {
            cfg_add_error(ld, var, "must be an integer <= %lld%s", (long long)def->max, got);
            return -1;
        }
        *num = v;
        return 0;
    }
    case K_BOOL: {
        bool b;
        if (cfg_parse_bool(text, &b) != 0) {
            cfg_add_error(ld, var, "must be true or false (also 1/0, yes/no)%s", got);
            return -1;
        }
        *num = b;
        return 0;
    }
    case K_WORD: {
        int w;
        if (cfg_parse_word(def->words, text, &w) != 0) {
            char list[128];
            word_list(def->words, list, sizeof list);
            /* A value other drivers know (TDS 8.0: TLS before PRELOGIN). */
            bool strict = def->words == cfg_encrypt_words && strcasecmp(text, "strict") == 0;
            cfg_add_error(ld, var, "must be %s%s%s", list, got,
                          strict ? ": FreeTDS 1.3 cannot do strict (TDS 8.0); require encrypts the "
                                   "whole session"
                                 : "");
            return -1;
        }
        *num = w;
        return 0;
    }
    }
    return -1;
}

void cfg_read_var(loader *ld, const char *var, const var_def *def, value *out)
{
    out->text = cfg_get(ld, var);
    out->num = 0;
    out->ok = true;
    if (def->def != NULL && def->kind != K_STRING) {
        /* Table defaults always parse; a bad one would show up in the tests. */
        if (parse_value(ld, def->name, def, def->def, &out->num) != 0)
            out->ok = false;
    }
    if (out->text != NULL && parse_value(ld, var, def, out->text, &out->num) != 0)
        out->ok = false;
}

/* --- Files ------------------------------------------------------------------ */

/* err is the errno of an sg_file_read (or open) that returned SG_FILE_ERRNO. */
void cfg_file_error(loader *ld, const char *var, const char *path, int rc, int err, size_t cap)
{
    char q[QUOTE_BUF];
    cfg_quote(q, sizeof q, path);
    switch (rc) {
    case SG_FILE_TOO_LARGE:
        cfg_add_error(ld, var, "file %s is larger than %zu bytes", q, cap);
        break;
    case SG_FILE_NOT_REGULAR:
        cfg_add_error(ld, var, "%s is not a regular file", q);
        break;
    case SG_FILE_HAS_NUL:
        cfg_add_error(ld, var, "file %s contains a NUL byte", q);
        break;
    default:
        if (err == ENOMEM)
            ld->oom = true;
        cfg_add_error(ld, var, "cannot read %s: %s", q, strerror(err));
        break;
    }
}

/* A file the service opens later (certificates): checked now so that a typo
 * is reported with the rest instead of at the first connection. */
void cfg_check_readable(loader *ld, const char *var, const char *path)
{
    int rc = SG_FILE_NOT_REGULAR, err = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        err = errno;
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
            rc = 0;
        close(fd);
    } else {
        rc = SG_FILE_ERRNO;
    }
    if (rc != 0)
        cfg_file_error(ld, var, path, rc, err, 0);
}

/* --- Hosts and addresses ------------------------------------------------------ */

bool cfg_is_ipv6(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET6, s, buf) == 1;
}

/* A DNS name, an IPv4 address or (when allow_v6) a bare IPv6 address. */
bool cfg_host_ok(const char *h, bool allow_v6)
{
    size_t n = strlen(h);
    if (n == 0 || n > HOST_MAX)
        return false;
    if (strchr(h, ':') != NULL)
        return allow_v6 && cfg_is_ipv6(h);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!isalnum(c) && c != '.' && c != '-' && c != '_')
            return false;
    }
    return true;
}

/* Port text of n bytes: decimal, within [min, 65535]. */
int cfg_parse_port(const char *s, size_t n, int min, int *out)
{
    int v = 0;
    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > 65535)
        return -1;
    *out = v;
    return 0;
}

/* --- Public ------------------------------------------------------------------ */

sg_config *sg_config_load(sg_lookup_fn lookup, void *ud, char **errors)
{
    loader ld;
    value sv[SV_COUNT_];

    if (errors == NULL)
        return NULL;
    *errors = NULL;
    memset(&ld, 0, sizeof ld);
    ld.lookup = lookup;
    ld.ud = ud;
    if (lookup == NULL) {
        *errors = strdup("sg_config_load: no lookup function\n");
        return NULL;
    }
    ld.box = calloc(1, sizeof *ld.box);
    if (ld.box == NULL)
        goto oom;
    atomic_init(&ld.box->refs, 1);
    sg_config *cfg = &ld.box->pub;

    for (size_t i = 0; i < SV_COUNT_; i++)
        cfg_read_var(&ld, cfg_service_vars[i].name, &cfg_service_vars[i], &sv[i]);

    cfg_load_databases(&ld, sv);
    cfg_load_default(&ld, sv);
    cfg_load_listen(&ld, sv);
    bool tokens_ok = cfg_load_tokens(&ld, sv);
    tokens_ok = cfg_load_scoped_tokens(&ld, sv) && tokens_ok;
    cfg_load_tls(&ld, sv);
    cfg->metrics_access = (sg_metrics_access)sv[SV_METRICS_ACCESS].num;
    cfg->health_details = (sg_health_details)sv[SV_HEALTH_DETAILS].num;
    cfg_load_allowed_hosts(&ld, sv);

    cfg->allow_anonymous = sv[SV_ALLOW_ANONYMOUS].num != 0;
    cfg->shutdown_delay_ms = sv[SV_SHUTDOWN_DELAY_MS].num;
    cfg->drain_timeout_ms = sv[SV_DRAIN_TIMEOUT_MS].num;
    cfg->max_body_bytes = (size_t)sv[SV_MAX_BODY_BYTES].num;
    cfg->max_rows = (unsigned)sv[SV_MAX_ROWS].num;
    cfg->max_value_bytes = (uint64_t)sv[SV_MAX_VALUE_BYTES].num;
    cfg->max_response_bytes = (uint64_t)sv[SV_MAX_RESPONSE_BYTES].num;
    cfg->log_level = (sg_log_level)sv[SV_LOG_LEVEL].num;
    cfg->log_json = sv[SV_LOG_FORMAT].num != 0;
    cfg->header_timeout_ms = sv[SV_HEADER_TIMEOUT_MS].num;
    cfg->idle_timeout_ms = sv[SV_IDLE_TIMEOUT_MS].num;
    cfg->write_grace_ms = sv[SV_WRITE_GRACE_MS].num;
    cfg->max_conns_per_client = (unsigned)sv[SV_MAX_CONNECTIONS_PER_CLIENT].num;
    cfg->max_connections = (unsigned)sv[SV_MAX_CONNECTIONS].num;
    cfg->connection_buffer_bytes = (size_t)sv[SV_CONNECTION_BUFFER_BYTES].num;
    cfg->connection_model = (sg_conn_model)sv[SV_CONNECTION_MODEL].num;

    /* A wrong ALLOW_ANONYMOUS or token setting is reported on its own; the
     * rule is only judged when the operator's intent is clear. */
    if (tokens_ok && sv[SV_ALLOW_ANONYMOUS].ok && sg_tokens_count(cfg->tokens) == 0 &&
        cfg->listen_host != NULL && !cfg->listen_loopback && !cfg->allow_anonymous)
        cfg_add_error(&ld, cfg_service_vars[SV_LISTEN].name,
                      "%s is not a loopback address and no API tokens are configured; set "
                      "SQLGATE_API_TOKENS (or SQLGATE_API_TOKENS_FILE, SQLGATE_TOKENS_FILE), or "
                      "SQLGATE_ALLOW_ANONYMOUS=true to serve without authentication",
                      cfg->listen_host);

    if (ld.oom)
        goto oom;
    if (ld.n_errors > 0) {
        if (ld.n_dropped > 0) {
            char more[96];
            int w = snprintf(more, sizeof more, "(%zu more problems not shown)\n", ld.n_dropped);
            if (!sg_buf_append(&ld.errs, more, (size_t)w))
                goto oom;
        }
        *errors = ld.errs.data;
        sg_config_free(cfg);
        return NULL;
    }
    sg_buf_free(&ld.errs);
    return cfg;

oom:
    sg_buf_free(&ld.errs);
    if (ld.box != NULL)
        sg_config_free(&ld.box->pub);
    /* May be NULL too; the caller then has no text but still a failure. */
    *errors = strdup("out of memory while loading the configuration\n");
    return NULL;
}

const sg_config *sg_config_ref(const sg_config *cfg)
{
    if (cfg != NULL)
        atomic_fetch_add(&((cfg_box *)cfg)->refs, 1);
    return cfg;
}

void sg_config_unref(const sg_config *cfg)
{
    if (cfg == NULL)
        return;
    cfg_box *box = (cfg_box *)cfg;
    if (atomic_fetch_sub(&box->refs, 1) != 1)
        return;
    /* Secrets are wiped so that a later heap dump does not hold them. */
    for (size_t i = 0; cfg->databases != NULL && i < cfg->n_databases; i++) {
        if (cfg->databases[i].password != NULL)
            sg_wipe((char *)cfg->databases[i].password, strlen(cfg->databases[i].password));
        if (cfg->databases[i].readonly_password != NULL)
            sg_wipe((char *)cfg->databases[i].readonly_password,
                    strlen(cfg->databases[i].readonly_password));
    }
    sg_tokens_free(box->tokens);
    for (size_t i = 0; cfg->api_tokens != NULL && i < cfg->n_api_tokens; i++)
        sg_wipe(cfg->api_tokens[i], strlen(cfg->api_tokens[i]));
    for (size_t i = 0; i < box->n_owned; i++)
        free(box->owned[i]);
    free(box->owned);
    free(box);
}

void sg_config_free(sg_config *cfg)
{
    sg_config_unref(cfg);
}

static bool str_same(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* Every field, secrets included: a rotated password is a change. A field
 * added to sg_db_config must be compared here too; the size check below
 * (64-bit builds) fails the build until it is. */
#if UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(sg_db_config) == 344,
               "sg_db_config changed: compare the new field in sg_db_config_equal");
#endif

bool sg_db_config_equal(const sg_db_config *a, const sg_db_config *b)
{
    return strcmp(a->name, b->name) == 0 && strcmp(a->prefix, b->prefix) == 0 &&
           str_same(a->driver, b->driver) && str_same(a->host, b->host) && a->port == b->port &&
           str_same(a->database, b->database) && str_same(a->user, b->user) &&
           str_same(a->password, b->password) && a->encrypt == b->encrypt &&
           str_same(a->ca_file, b->ca_file) && str_same(a->tds_version, b->tds_version) &&
           str_same(a->app_name, b->app_name) && str_same(a->path, b->path) &&
           a->read_only == b->read_only && a->critical == b->critical &&
           a->pool_max == b->pool_max && a->pool_min == b->pool_min &&
           a->acquire_timeout_ms == b->acquire_timeout_ms &&
           a->connect_timeout_ms == b->connect_timeout_ms &&
           a->query_timeout_ms == b->query_timeout_ms && a->idle_timeout_ms == b->idle_timeout_ms &&
           a->max_lifetime_ms == b->max_lifetime_ms && a->retry_max_ms == b->retry_max_ms &&
           str_same(a->health_query, b->health_query) &&
           a->health_interval_ms == b->health_interval_ms &&
           a->health_timeout_ms == b->health_timeout_ms &&
           a->max_logins_per_sec == b->max_logins_per_sec &&
           str_same(a->readonly_user, b->readonly_user) &&
           str_same(a->readonly_password, b->readonly_password) &&
           /* readonly is derived from the fields above */
           (a->readonly == NULL) == (b->readonly == NULL);
}

const sg_db_config *sg_config_find(const sg_config *cfg, const char *name)
{
    if (cfg == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < cfg->n_databases; i++) {
        if (strcmp(cfg->databases[i].name, name) == 0)
            return &cfg->databases[i];
    }
    return NULL;
}
