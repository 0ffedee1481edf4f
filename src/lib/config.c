/* sqlgate configuration loader (docs/configuration.md).
 *
 * Two tables drive it (config_vars.c): cfg_service_vars (SQLGATE_*) and
 * cfg_db_vars (the suffixes read after a database's prefix, "CORE_DB_" or
 * "DB_"). An entry gives a variable's type, default, bounds, whether its value
 * is a secret and its help text. Loading reads every
 * variable once and parses it by its entry, then applies the rules that span
 * variables (mode, driver choice, URL merging, pool bounds, the anonymous
 * listen rule). A problem adds one line "NAME: what is wrong" to the error
 * text and loading goes on, so one run reports everything. Values of secret
 * variables, of a URL (it may hold a password) and of secret files are never
 * echoed; other values are echoed quoted, escaped and truncated.
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
 * - CA_FILE, PASSWORD_FILE and the TLS files must be readable regular files.
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
            cfg_add_error(ld, var, "must be %s%s", list, got);
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

static bool is_ipv4(const char *s)
{
    unsigned char buf[4];
    return inet_pton(AF_INET, s, buf) == 1;
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

static bool is_loopback(const char *h)
{
    unsigned char a[16];
    if (strcasecmp(h, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, h, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, h, a) == 1) {
        static const unsigned char one[16] = {[15] = 1};
        static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
        return memcmp(a, one, 16) == 0 || (memcmp(a, mapped, 12) == 0 && a[12] == 127);
    }
    return false;
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

/* --- Databases and modes ------------------------------------------------------ */

static void name_upper(char *dst, size_t size, const char *name)
{
    size_t i = 0;
    for (; name[i] != '\0' && i + 1 < size; i++)
        dst[i] = (char)toupper((unsigned char)name[i]);
    dst[i] = '\0';
}

static bool reserved(const char *s)
{
    return strcmp(s, "default") == 0 || strcmp(s, "live") == 0 || strcmp(s, "ready") == 0;
}

typedef char db_name[SG_NAME_MAX + 1];

/* Splits SQLGATE_DATABASES into names[]; returns how many are usable. Bad
 * items are reported and left out, so the good ones still get checked. */
static size_t parse_names(loader *ld, const char *var, const char *list, db_name *names)
{
    size_t count = 0, item = 0;
    const char *p = list;
    char q[QUOTE_BUF];
    for (;;) {
        size_t n = strcspn(p, ",");
        const char *s = p;
        size_t len = n;
        item++;
        while (len > 0 && isspace((unsigned char)*s)) {
            s++;
            len--;
        }
        while (len > 0 && isspace((unsigned char)s[len - 1]))
            len--;
        char tmp[ECHO_MAX + 1];
        snprintf(tmp, sizeof tmp, "%.*s", (int)(len < ECHO_MAX ? len : ECHO_MAX), s);
        if (len == 0) {
            cfg_add_error(ld, var, "item %zu is empty", item);
        } else if (!sg_name_valid(s, len)) {
            cfg_add_error(ld, var,
                          "%s is not a valid database name (a lower-case letter, then up to 62 of "
                          "a-z, 0-9, _)",
                          cfg_quote(q, sizeof q, tmp));
        } else if (reserved(tmp)) {
            cfg_add_error(ld, var, "%s is a reserved name (default, live and ready are taken)",
                          cfg_quote(q, sizeof q, tmp));
        } else {
            bool dup = false;
            for (size_t i = 0; i < count; i++)
                dup = dup || strcmp(names[i], tmp) == 0;
            if (dup) {
                cfg_add_error(ld, var, "%s is listed more than once", cfg_quote(q, sizeof q, tmp));
            } else if (count == DB_COUNT_MAX) {
                cfg_add_error(ld, var, "more than %d databases", DB_COUNT_MAX);
                break;
            } else {
                memcpy(names[count++], tmp, len + 1);
            }
        }
        if (p[n] == '\0')
            break;
        p += n + 1;
    }
    return count;
}

static bool legacy_set(loader *ld)
{
    char var[VAR_NAME_MAX];
    for (size_t i = 0; i < DV_COUNT_; i++) {
        snprintf(var, sizeof var, "DB_%s", cfg_db_vars[i].name);
        if (cfg_get(ld, var) != NULL)
            return true;
    }
    return false;
}

void cfg_load_databases(loader *ld, const value *sv)
{
    sg_config *cfg = &ld->box->pub;
    const char *list = sv[SV_DATABASES].text;
    db_name *names = NULL;
    size_t n = 0;

    if (list != NULL) {
        cfg->mode = SG_MODE_NAMED;
        names = calloc(DB_COUNT_MAX, sizeof *names);
        if (names == NULL) {
            ld->oom = true;
            return;
        }
        n = parse_names(ld, cfg_service_vars[SV_DATABASES].name, list, names);
    } else if (legacy_set(ld)) {
        cfg->mode = SG_MODE_LEGACY;
        n = 1;
    } else {
        cfg->mode = SG_MODE_EMBEDDED;
        n = 2;
    }
    if (n > 0) {
        cfg->databases = cfg_owned_add(ld, calloc(n, sizeof *cfg->databases));
        if (cfg->databases == NULL)
            goto done;
    }

    switch (cfg->mode) {
    case SG_MODE_NAMED:
        for (size_t i = 0; i < n; i++) {
            char prefix[SG_NAME_MAX + 8];
            name_upper(prefix, sizeof prefix, names[i]);
            memcpy(prefix + strlen(names[i]), "_DB_", 5);
            cfg_load_db(ld, &cfg->databases[i], names[i], prefix, NULL);
        }
        break;
    case SG_MODE_LEGACY:
        cfg_load_db(ld, &cfg->databases[0], "default", "DB_", NULL);
        break;
    case SG_MODE_EMBEDDED:
        cfg_load_db(ld, &cfg->databases[0], "core", "CORE_DB_", "./var/core.db");
        cfg_load_db(ld, &cfg->databases[1], "app", "APP_DB_", "./var/app.db");
        break;
    }
    cfg->n_databases = n;
done:
    free(names);
}

void cfg_load_default(loader *ld, const value *sv)
{
    sg_config *cfg = &ld->box->pub;
    const char *want = sv[SV_DEFAULT_DATABASE].text;
    char q[QUOTE_BUF];

    if (want == NULL) {
        if (cfg->n_databases == 1 || cfg->mode == SG_MODE_EMBEDDED)
            cfg->default_name = cfg->databases[0].name;
        return;
    }
    for (size_t i = 0; i < cfg->n_databases; i++) {
        if (strcmp(cfg->databases[i].name, want) == 0) {
            cfg->default_name = cfg->databases[i].name;
            return;
        }
    }
    char names[512];
    size_t o = 0;
    names[0] = '\0';
    for (size_t i = 0; i < cfg->n_databases && o < sizeof names; i++) {
        int w =
            snprintf(names + o, sizeof names - o, "%s%s", i ? ", " : "", cfg->databases[i].name);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    cfg_add_error(ld, cfg_service_vars[SV_DEFAULT_DATABASE].name,
                  "%s is not a configured database (configured: %s)", cfg_quote(q, sizeof q, want),
                  cfg->n_databases ? names : "none");
}

/* --- Service-wide ------------------------------------------------------------- */

/* host:port, [v6]:port; the host is kept without brackets. */
void cfg_load_listen(loader *ld, const value *sv)
{
    sg_config *cfg = &ld->box->pub;
    const char *var = cfg_service_vars[SV_LISTEN].name;
    const char *s =
        sv[SV_LISTEN].text != NULL ? sv[SV_LISTEN].text : cfg_service_vars[SV_LISTEN].def;
    char q[QUOTE_BUF];
    const char *host, *port;
    size_t hlen;

    cfg_quote(q, sizeof q, s);
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            cfg_add_error(ld, var, "must be host:port or [ipv6]:port (got %s)", q);
            return;
        }
        host = s + 1;
        hlen = (size_t)(close - host);
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL) {
            cfg_add_error(ld, var, "must be host:port, e.g. 127.0.0.1:8080 (got %s)", q);
            return;
        }
        host = s;
        hlen = (size_t)(colon - s);
        port = colon + 1;
        if (memchr(host, ':', hlen) != NULL) {
            cfg_add_error(ld, var, "an IPv6 address goes in brackets, e.g. [::1]:8080 (got %s)", q);
            return;
        }
    }
    if (cfg_parse_port(port, strlen(port), 0, &cfg->listen_port) != 0)
        cfg_add_error(ld, var, "the port must be an integer from 0 to 65535 (got %s)", q);
    if (hlen == 0) {
        cfg_add_error(ld, var, "the host is missing; use 0.0.0.0:PORT for every interface (got %s)",
                      q);
        return;
    }
    char *h = cfg_dup_range(ld, host, hlen);
    if (h == NULL)
        return;
    bool ok = s[0] == '[' ? cfg_is_ipv6(h) : (is_ipv4(h) || cfg_host_ok(h, false));
    if (!ok) {
        /* listen_host stays NULL, which also keeps the anonymous rule quiet. */
        cfg_add_error(ld, var, "the host is not a valid name or address (got %s)", q);
        free(h);
        return;
    }
    /* The listener binds an address and never resolves a name, so a start
     * and --check-config (both built on this loader) refuse one alike. */
    if (s[0] != '[' && !is_ipv4(h) && strcasecmp(h, "localhost") != 0) {
        cfg_add_error(ld, var,
                      "a host name is not resolved; give an IP address (0.0.0.0 for every "
                      "interface), [IPv6] or localhost (got %s)",
                      q);
        free(h);
        return;
    }
    cfg->listen_loopback = is_loopback(h);
    cfg->listen_host = cfg_owned_add(ld, h);
}

/* Words that mark a token as a placeholder copied from an example file
 * (.env.example, the docs): such a token is public, whatever its length. */
/* Splits comma-separated tokens into cfg->api_tokens. Tokens are secrets:
 * problems are described by position only. Returns false after an error. */
static bool split_tokens(loader *ld, const char *var, const char *text)
{
    sg_config *cfg = &ld->box->pub;
    size_t count = 1;
    bool ok = true;
    for (const char *p = text; *p != '\0'; p++)
        count += *p == ',';
    while (isspace((unsigned char)*text))
        text++;
    size_t total = strlen(text);
    while (total > 0 && isspace((unsigned char)text[total - 1]))
        total--;
    if (total == 0) {
        cfg_add_error(ld, var, "contains no tokens");
        return false;
    }
    char **tokens = cfg_owned_add(ld, calloc(count, sizeof *tokens));
    if (tokens == NULL)
        return false;
    size_t n = 0, item = 0;
    const char *p = text, *end = text + total;
    while (p <= end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *e = c != NULL ? c : end;
        const char *s = p;
        const char *weak;
        item++;
        while (s < e && isspace((unsigned char)*s))
            s++;
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        bool clean = true;
        for (const char *t = s; t < e; t++)
            clean = clean && *t > 0x20 && *t < 0x7f;
        if (s == e) {
            cfg_add_error(ld, var, "token %zu is empty", item);
            ok = false;
        } else if (!clean) {
            cfg_add_error(ld, var, "token %zu contains a space, control or non-ASCII character",
                          item);
            ok = false;
        } else if ((weak = sg_token_weakness(s, (size_t)(e - s))) != NULL) {
            cfg_add_error(ld, var, "token %zu %s; generate one with e.g. `openssl rand -hex 32`",
                          item, weak);
            ok = false;
        } else {
            char *t = cfg_dup_range(ld, s, (size_t)(e - s));
            if (t == NULL || cfg_owned_add(ld, t) == NULL)
                return false;
            tokens[n++] = t;
        }
        if (c == NULL)
            break;
        p = c + 1;
    }
    cfg->api_tokens = n > 0 ? tokens : NULL;
    cfg->n_api_tokens = n;
    return ok;
}

/* Returns false when the token settings are wrong (the anonymous rule is
 * then not judged: the operator clearly meant to set tokens). */
bool cfg_load_tokens(loader *ld, const value *sv)
{
    const char *inline_tokens = sv[SV_API_TOKENS].text;
    const char *file = sv[SV_API_TOKENS_FILE].text;
    const char *file_var = cfg_service_vars[SV_API_TOKENS_FILE].name;
    if (inline_tokens != NULL && file != NULL) {
        cfg_add_error(ld, file_var, "cannot be combined with %s; set one of them",
                      cfg_service_vars[SV_API_TOKENS].name);
        return false;
    }
    if (inline_tokens != NULL)
        return split_tokens(ld, cfg_service_vars[SV_API_TOKENS].name, inline_tokens);
    if (file == NULL)
        return true;
    char *buf = NULL;
    size_t len = 0;
    int rc = sg_file_read(file, TOKENS_FILE_MAX, true, &buf, &len);
    if (rc != 0) {
        cfg_file_error(ld, file_var, file, rc, errno, TOKENS_FILE_MAX);
        return false;
    }
    bool ok = split_tokens(ld, file_var, buf);
    sg_wipe(buf, len);
    free(buf);
    return ok;
}

/* The `default` alias and database names as a token's db= may write them. */
static const char *resolve_db(void *ud, const char *name)
{
    const sg_config *cfg = ud;
    if (strcmp(name, "default") == 0 && sg_config_find(cfg, name) == NULL)
        return cfg->default_name;
    const sg_db_config *db = sg_config_find(cfg, name);
    return db != NULL ? db->name : NULL;
}

/* Builds cfg->tokens from the API tokens (every scope) and the scoped tokens
 * file. Returns false after an error. */
bool cfg_load_scoped_tokens(loader *ld, const value *sv)
{
    sg_config *cfg = &ld->box->pub;
    const char *var = cfg_service_vars[SV_TOKENS_FILE].name;
    ld->box->tokens = sg_tokens_new();
    cfg->tokens = ld->box->tokens;
    if (ld->box->tokens == NULL) {
        ld->oom = true;
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < cfg->n_api_tokens; i++) {
        sg_err err;
        const char *t = cfg->api_tokens[i];
        if (sg_tokens_add(ld->box->tokens, t, strlen(t), SG_SCOPE_EVERY, &err) != 0) {
            if (err.code == SG_INTERNAL)
                ld->oom = true;
            else
                cfg_add_error(ld, cfg_service_vars[SV_API_TOKENS].name, "token %zu is given twice",
                              i + 1);
            ok = false;
        }
    }
    /* From here on only the digests exist: the plain tokens are wiped. */
    for (size_t i = 0; i < cfg->n_api_tokens; i++)
        sg_wipe(cfg->api_tokens[i], strlen(cfg->api_tokens[i]));
    cfg->api_tokens = NULL;
    const char *file = sv[SV_TOKENS_FILE].text;
    if (file == NULL)
        return ok;
    char *buf = NULL, *errors = NULL;
    size_t len = 0;
    int rc = sg_file_read(file, TOKENS_FILE_MAX, true, &buf, &len);
    if (rc != 0) {
        cfg_file_error(ld, var, file, rc, errno, TOKENS_FILE_MAX);
        return false;
    }
    rc = sg_tokens_parse(ld->box->tokens, buf, len, file, resolve_db, cfg, &errors);
    sg_wipe(buf, len);
    free(buf);
    if (rc == 0)
        return ok;
    if (errors == NULL) {
        ld->oom = true;
        return false;
    }
    for (char *line = errors; *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        cfg_add_error(ld, var, "%s", line);
        if (nl == NULL)
            break;
        line = nl + 1;
    }
    free(errors);
    return false;
}

/* SQLGATE_ALLOWED_HOSTS: host, host:port, [v6] or [v6]:port, comma-separated;
 * kept lower-case so that the HTTP layer compares bytes. */
void cfg_load_allowed_hosts(loader *ld, const value *sv)
{
    sg_config *cfg = &ld->box->pub;
    const char *var = cfg_service_vars[SV_ALLOWED_HOSTS].name;
    const char *text = sv[SV_ALLOWED_HOSTS].text;
    if (text == NULL)
        return;
    char **hosts = cfg_owned_add(ld, calloc(ALLOWED_HOSTS_MAX, sizeof *hosts));
    if (hosts == NULL)
        return;
    size_t n = 0;
    for (const char *p = text; *p != '\0';) {
        const char *c = strchr(p, ',');
        const char *e = c != NULL ? c : p + strlen(p);
        const char *b = p;
        p = c != NULL ? c + 1 : e;
        while (b < e && isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            e--;
        if (b == e)
            continue;
        char q[QUOTE_BUF];
        char *item = cfg_owned_add(ld, cfg_dup_range(ld, b, (size_t)(e - b)));
        if (item == NULL)
            return;
        cfg_quote(q, sizeof q, item);
        for (char *t = item; *t != '\0'; t++)
            *t = (char)tolower((unsigned char)*t);
        /* Split off an optional port, then judge the host part. */
        char host[HOST_MAX + 3];
        const char *port = NULL;
        bool ok;
        if (item[0] == '[') {
            const char *close = strchr(item, ']');
            ok = close != NULL && (close[1] == '\0' || close[1] == ':') &&
                 (size_t)(close - item - 1) < sizeof host;
            if (ok) {
                memcpy(host, item + 1, (size_t)(close - item - 1));
                host[close - item - 1] = '\0';
                port = close[1] == ':' ? close + 2 : NULL;
                ok = cfg_is_ipv6(host);
            }
        } else {
            const char *colon = strchr(item, ':');
            size_t hl = colon != NULL ? (size_t)(colon - item) : strlen(item);
            ok = hl < sizeof host;
            if (ok) {
                memcpy(host, item, hl);
                host[hl] = '\0';
                port = colon != NULL ? colon + 1 : NULL;
                ok = cfg_host_ok(host, false);
            }
        }
        int portnum;
        if (ok && port != NULL)
            ok = cfg_parse_port(port, strlen(port), 1, &portnum) == 0;
        if (!ok) {
            cfg_add_error(ld, var, "%s is not a host name, host:port or [ipv6]:port", q);
            continue;
        }
        if (n == ALLOWED_HOSTS_MAX) {
            cfg_add_error(ld, var, "more than %d hosts", ALLOWED_HOSTS_MAX);
            return;
        }
        hosts[n++] = item;
    }
    cfg->allowed_hosts = n > 0 ? hosts : NULL;
    cfg->n_allowed_hosts = n;
}

void cfg_load_tls(loader *ld, const value *sv)
{
    sg_config *cfg = &ld->box->pub;
    const char *cert = sv[SV_TLS_CERT_FILE].text, *key = sv[SV_TLS_KEY_FILE].text;
    const char *cert_var = cfg_service_vars[SV_TLS_CERT_FILE].name;
    const char *key_var = cfg_service_vars[SV_TLS_KEY_FILE].name;
    if (cert != NULL && key == NULL)
        cfg_add_error(ld, key_var, "must be set together with %s", cert_var);
    if (key != NULL && cert == NULL)
        cfg_add_error(ld, cert_var, "must be set together with %s", key_var);
    if (cert != NULL)
        cfg_check_readable(ld, cert_var, cert);
    if (key != NULL)
        cfg_check_readable(ld, key_var, key);
    cfg->tls_cert_file = cfg_keep(ld, cert);
    cfg->tls_key_file = cfg_keep(ld, key);
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
