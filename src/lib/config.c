/* sqlgate configuration loader (CONTRACT.md section 2).
 *
 * Two tables drive it: service_vars (SQLGATE_*) and db_vars (the suffixes read
 * after a database's prefix, "CORE_DB_" or "DB_"). An entry gives a variable's
 * type, default, bounds and whether its value is a secret. Loading reads every
 * variable once and parses it by its entry, then applies the rules that span
 * variables (mode, driver choice, URL merging, pool bounds, the anonymous
 * listen rule). A problem adds one line "NAME: what is wrong" to the error
 * text and loading goes on, so one run reports everything. Values of secret
 * variables, of a URL (it may hold a password) and of secret files are never
 * echoed; other values are echoed quoted, escaped and truncated.
 *
 * Decisions where the contract is silent:
 * - An empty value counts as unset (compose files and systemd write `VAR=`
 *   for "nothing"); this includes SQLGATE_DATABASES.
 * - Embedded mode (nothing configured): CORE_DB_* and APP_DB_* still apply on
 *   top of the built-in databases. "./var/<name>.db" is only the default PATH,
 *   used when none of HOST, URL, PATH is set, so CORE_DB_PATH moves the file,
 *   CORE_DB_POOL_MAX resizes the pool and CORE_DB_URL=mssql://... turns core
 *   into a SQL Server database.
 * - Named mode ignores unprefixed DB_* variables; legacy mode is entered as
 *   soon as any DB_<suffix> from db_vars is set.
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
 * - URL forms: see parse_url. In the ADO.NET form Encrypt True/Yes/Strict/
 *   Mandatory means require and False/No/Optional means request (SqlClient
 *   also lets the server insist on TLS then); Connection Timeout (seconds)
 *   becomes CONNECT_TIMEOUT_MS unless that is set; ApplicationIntent=ReadOnly
 *   means READ_ONLY. Keys known to be harmless here are ignored, any other
 *   key is an error naming it, except right after an unquoted password: a
 *   password with an unquoted ';' spills into what looks like the next key,
 *   so that key is described without being named.
 */
#include "sqlgate/config.h"

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

#define ERRORS_CAP           (256 * 1024) /* bytes of error text; later lines are counted only */
#define ECHO_MAX             64           /* bytes of a value quoted back in an error */
#define MS_MAX               86400000     /* one day */
#define DB_COUNT_MAX         128
#define POOL_CAP             1000
#define BODY_MAX             (1024 * 1024 * 1024)
#define RESULT_BYTES_MAX     (INT64_C(1) << 40) /* 1 TiB: the value and response caps */
#define APP_NAME_MAX         128
#define HOST_MAX             253
#define VAR_NAME_MAX         96
#define SECRET_FILE_MAX      (64 * 1024)
#define TOKENS_FILE_MAX      (1024 * 1024)
#define CONNS_PER_CLIENT_MAX 100000
#define ALLOWED_HOSTS_MAX    64

/* --- Tables ---------------------------------------------------------------- */

typedef enum vkind { K_STRING, K_INT, K_BOOL, K_WORD } vkind;

typedef struct word {
    const char *text;
    int value;
} word;

typedef struct var_def {
    const char *name; /* full name (service) or suffix (per database) */
    vkind kind;
    const char *def;   /* default as a user would write it; NULL = none or computed */
    int64_t min, max;  /* K_INT bounds, inclusive */
    const word *words; /* K_WORD: list ending with {NULL, 0} */
    bool secret;       /* never echo the value */
} var_def;

enum { DRV_NONE = -1, DRV_FREETDS, DRV_SQLITE };
static const word driver_words[] = {{"freetds", DRV_FREETDS}, {"sqlite", DRV_SQLITE}, {NULL, 0}};

static const word encrypt_words[] = {{"off", SG_ENCRYPT_OFF},
                                     {"request", SG_ENCRYPT_REQUEST},
                                     {"require", SG_ENCRYPT_REQUIRE},
                                     {NULL, 0}};

static const char *const tds_names[] = {"auto", "7.1", "7.2", "7.3", "7.4"};
static const word tds_words[] = {{"auto", 0}, {"7.1", 1}, {"7.2", 2},
                                 {"7.3", 3},  {"7.4", 4}, {NULL, 0}};

static const word level_words[] = {{"debug", SG_LOG_DEBUG},
                                   {"info", SG_LOG_INFO},
                                   {"warn", SG_LOG_WARN},
                                   {"error", SG_LOG_ERROR},
                                   {NULL, 0}};

static const word format_words[] = {{"json", 1}, {"text", 0}, {NULL, 0}};

static const word metrics_access_words[] = {
    {"open", SG_METRICS_OPEN}, {"token", SG_METRICS_TOKEN}, {NULL, 0}};

static const word health_details_words[] = {{"always", SG_HEALTH_DETAILS_ALWAYS},
                                            {"authorized", SG_HEALTH_DETAILS_AUTHORIZED},
                                            {"never", SG_HEALTH_DETAILS_NEVER},
                                            {NULL, 0}};

enum db_var {
    DV_DRIVER,
    DV_HOST,
    DV_PORT,
    DV_NAME,
    DV_USER,
    DV_PASSWORD,
    DV_PASSWORD_FILE,
    DV_URL,
    DV_PATH,
    DV_ENCRYPT,
    DV_CA_FILE,
    DV_TDS_VERSION,
    DV_APP_NAME,
    DV_POOL_MAX,
    DV_POOL_MIN,
    DV_ACQUIRE_TIMEOUT_MS,
    DV_CONNECT_TIMEOUT_MS,
    DV_QUERY_TIMEOUT_MS,
    DV_IDLE_TIMEOUT_MS,
    DV_MAX_LIFETIME_MS,
    DV_RETRY_MAX_MS,
    DV_CRITICAL,
    DV_READ_ONLY,
    DV_HEALTH_QUERY,
    DV_HEALTH_INTERVAL_MS,
    DV_HEALTH_TIMEOUT_MS,
    DV_MAX_LOGINS_PER_SEC,
    DV_READONLY_USER,
    DV_READONLY_PASSWORD,
    DV_READONLY_PASSWORD_FILE,
    DV_COUNT_
};

#define DB_MS(suffix, dflt)                                                                        \
    [DV_##suffix] = {.name = #suffix, .kind = K_INT, .def = dflt, .min = 1, .max = MS_MAX}

/* Per-database suffixes. DRIVER's default depends on HOST/URL/PATH and
 * APP_NAME's on the database name; both are computed in load_db. */
static const var_def db_vars[DV_COUNT_] = {
    [DV_DRIVER] = {.name = "DRIVER", .kind = K_WORD, .words = driver_words},
    [DV_HOST] = {.name = "HOST", .kind = K_STRING},
    [DV_PORT] = {.name = "PORT", .kind = K_INT, .def = "1433", .min = 1, .max = 65535},
    [DV_NAME] = {.name = "NAME", .kind = K_STRING},
    [DV_USER] = {.name = "USER", .kind = K_STRING},
    [DV_PASSWORD] = {.name = "PASSWORD", .kind = K_STRING, .secret = true},
    [DV_PASSWORD_FILE] = {.name = "PASSWORD_FILE", .kind = K_STRING},
    [DV_URL] = {.name = "URL", .kind = K_STRING, .secret = true},
    [DV_PATH] = {.name = "PATH", .kind = K_STRING},
    [DV_ENCRYPT] = {.name = "ENCRYPT", .kind = K_WORD, .def = "request", .words = encrypt_words},
    [DV_CA_FILE] = {.name = "CA_FILE", .kind = K_STRING},
    [DV_TDS_VERSION] = {.name = "TDS_VERSION", .kind = K_WORD, .def = "auto", .words = tds_words},
    [DV_APP_NAME] = {.name = "APP_NAME", .kind = K_STRING},
    [DV_POOL_MAX] = {.name = "POOL_MAX", .kind = K_INT, .def = "10", .min = 1, .max = POOL_CAP},
    [DV_POOL_MIN] = {.name = "POOL_MIN", .kind = K_INT, .def = "0", .min = 0, .max = POOL_CAP},
    DB_MS(ACQUIRE_TIMEOUT_MS, "5000"),
    DB_MS(CONNECT_TIMEOUT_MS, "15000"),
    DB_MS(QUERY_TIMEOUT_MS, "15000"),
    DB_MS(IDLE_TIMEOUT_MS, "30000"),
    DB_MS(MAX_LIFETIME_MS, "1800000"),
    DB_MS(RETRY_MAX_MS, "5000"),
    [DV_CRITICAL] = {.name = "CRITICAL", .kind = K_BOOL, .def = "true"},
    [DV_READ_ONLY] = {.name = "READ_ONLY", .kind = K_BOOL, .def = "false"},
    [DV_HEALTH_QUERY] = {.name = "HEALTH_QUERY", .kind = K_STRING, .def = "SELECT 1"},
    DB_MS(HEALTH_INTERVAL_MS, "5000"),
    DB_MS(HEALTH_TIMEOUT_MS, "2000"),
    [DV_MAX_LOGINS_PER_SEC] =
        {.name = "MAX_LOGINS_PER_SEC", .kind = K_INT, .def = "20", .min = 1, .max = 100000},
    [DV_READONLY_USER] = {.name = "READONLY_USER", .kind = K_STRING},
    [DV_READONLY_PASSWORD] = {.name = "READONLY_PASSWORD", .kind = K_STRING, .secret = true},
    [DV_READONLY_PASSWORD_FILE] = {.name = "READONLY_PASSWORD_FILE", .kind = K_STRING},
};

enum sv_var {
    SV_DATABASES,
    SV_DEFAULT_DATABASE,
    SV_LISTEN,
    SV_API_TOKENS,
    SV_API_TOKENS_FILE,
    SV_ALLOW_ANONYMOUS,
    SV_SHUTDOWN_DELAY_MS,
    SV_DRAIN_TIMEOUT_MS,
    SV_MAX_BODY_BYTES,
    SV_MAX_ROWS,
    SV_MAX_VALUE_BYTES,
    SV_MAX_RESPONSE_BYTES,
    SV_LOG_LEVEL,
    SV_LOG_FORMAT,
    SV_TLS_CERT_FILE,
    SV_TLS_KEY_FILE,
    SV_TOKENS_FILE,
    SV_METRICS_ACCESS,
    SV_HEALTH_DETAILS,
    SV_ALLOWED_HOSTS,
    SV_HEADER_TIMEOUT_MS,
    SV_IDLE_TIMEOUT_MS,
    SV_WRITE_GRACE_MS,
    SV_MAX_CONNECTIONS_PER_CLIENT,
    SV_ENV_FILE,
    SV_COUNT_
};

/* Service-wide variables. The K_STRING ones are checked by their own
 * functions below (list syntax, address syntax, files). */
static const var_def service_vars[SV_COUNT_] = {
    [SV_DATABASES] = {.name = "SQLGATE_DATABASES", .kind = K_STRING},
    [SV_DEFAULT_DATABASE] = {.name = "SQLGATE_DEFAULT_DATABASE", .kind = K_STRING},
    [SV_LISTEN] = {.name = "SQLGATE_LISTEN", .kind = K_STRING, .def = "127.0.0.1:8080"},
    [SV_API_TOKENS] = {.name = "SQLGATE_API_TOKENS", .kind = K_STRING, .secret = true},
    [SV_API_TOKENS_FILE] = {.name = "SQLGATE_API_TOKENS_FILE", .kind = K_STRING},
    [SV_ALLOW_ANONYMOUS] = {.name = "SQLGATE_ALLOW_ANONYMOUS", .kind = K_BOOL, .def = "false"},
    [SV_SHUTDOWN_DELAY_MS] =
        {.name = "SQLGATE_SHUTDOWN_DELAY_MS", .kind = K_INT, .def = "0", .min = 0, .max = MS_MAX},
    [SV_DRAIN_TIMEOUT_MS] = {.name = "SQLGATE_DRAIN_TIMEOUT_MS",
                             .kind = K_INT,
                             .def = "25000",
                             .min = 1,
                             .max = MS_MAX},
    [SV_MAX_BODY_BYTES] = {.name = "SQLGATE_MAX_BODY_BYTES",
                           .kind = K_INT,
                           .def = "1048576",
                           .min = 1,
                           .max = BODY_MAX},
    [SV_MAX_ROWS] =
        {.name = "SQLGATE_MAX_ROWS", .kind = K_INT, .def = "10000", .min = 1, .max = INT32_MAX},
    [SV_MAX_VALUE_BYTES] = {.name = "SQLGATE_MAX_VALUE_BYTES",
                            .kind = K_INT,
                            .def = "16777216",
                            .min = 1,
                            .max = RESULT_BYTES_MAX},
    [SV_MAX_RESPONSE_BYTES] = {.name = "SQLGATE_MAX_RESPONSE_BYTES",
                               .kind = K_INT,
                               .def = "268435456",
                               .min = 1,
                               .max = RESULT_BYTES_MAX},
    [SV_LOG_LEVEL] = {.name = "SQLGATE_LOG_LEVEL",
                      .kind = K_WORD,
                      .def = "info",
                      .words = level_words},
    [SV_LOG_FORMAT] = {.name = "SQLGATE_LOG_FORMAT",
                       .kind = K_WORD,
                       .def = "json",
                       .words = format_words},
    [SV_TLS_CERT_FILE] = {.name = "SQLGATE_TLS_CERT_FILE", .kind = K_STRING},
    [SV_TLS_KEY_FILE] = {.name = "SQLGATE_TLS_KEY_FILE", .kind = K_STRING},
    [SV_TOKENS_FILE] = {.name = "SQLGATE_TOKENS_FILE", .kind = K_STRING},
    [SV_METRICS_ACCESS] = {.name = "SQLGATE_METRICS_ACCESS",
                           .kind = K_WORD,
                           .def = "open",
                           .words = metrics_access_words},
    [SV_HEALTH_DETAILS] = {.name = "SQLGATE_HEALTH_DETAILS",
                           .kind = K_WORD,
                           .def = "authorized",
                           .words = health_details_words},
    [SV_ALLOWED_HOSTS] = {.name = "SQLGATE_ALLOWED_HOSTS", .kind = K_STRING},
    [SV_HEADER_TIMEOUT_MS] = {.name = "SQLGATE_HEADER_TIMEOUT_MS",
                              .kind = K_INT,
                              .def = "10000",
                              .min = 1,
                              .max = MS_MAX},
    [SV_IDLE_TIMEOUT_MS] =
        {.name = "SQLGATE_IDLE_TIMEOUT_MS", .kind = K_INT, .def = "75000", .min = 1, .max = MS_MAX},
    [SV_WRITE_GRACE_MS] =
        {.name = "SQLGATE_WRITE_GRACE_MS", .kind = K_INT, .def = "5000", .min = 1, .max = MS_MAX},
    [SV_MAX_CONNECTIONS_PER_CLIENT] = {.name = "SQLGATE_MAX_CONNECTIONS_PER_CLIENT",
                                       .kind = K_INT,
                                       .def = "256",
                                       .min = 1,
                                       .max = CONNS_PER_CLIENT_MAX},
    /* Read by the service before it loads the file itself (from the real
     * environment only); listed here so --help and the docs know it. */
    [SV_ENV_FILE] = {.name = "SQLGATE_ENV_FILE", .kind = K_STRING, .def = ".env"},
};

/* What --help and the docs say about each variable, indexed like the tables
 * above so that the list cannot drift from what the loader reads. def_text
 * describes a default that is computed (the table's def is NULL then). */
typedef struct var_help {
    const char *def_text;
    const char *meaning;
} var_help;

static const var_help service_help[SV_COUNT_] = {
    [SV_DATABASES] = {NULL, "Comma-separated database names, e.g. core,app; name n reads N_DB_*"},
    [SV_DEFAULT_DATABASE] = {"the only database", "Which database the `default` alias points to"},
    [SV_LISTEN] = {NULL,
                   "Address and port of the HTTP server (ipv4:port, [v6]:port, localhost:port; "
                   "names are not resolved; port 0 = any)"},
    [SV_API_TOKENS] = {NULL, "Comma-separated bearer tokens required on /v1/*"},
    [SV_API_TOKENS_FILE] = {NULL, "File holding the API tokens (instead of SQLGATE_API_TOKENS)"},
    [SV_ALLOW_ANONYMOUS] = {NULL, "Allow a non-loopback SQLGATE_LISTEN without API tokens"},
    [SV_SHUTDOWN_DELAY_MS] = {NULL, "After a stop signal, readiness fails but requests are "
                                    "served this long"},
    [SV_DRAIN_TIMEOUT_MS] = {NULL, "After that delay, in-flight requests get this long before "
                                   "they are cancelled"},
    [SV_MAX_BODY_BYTES] = {NULL, "Larger request bodies get 413"},
    [SV_MAX_ROWS] = {NULL, "Cap on rows per result set (a request may ask for fewer)"},
    [SV_MAX_VALUE_BYTES] = {NULL, "Largest text or binary value a query may return, in bytes "
                                  "as the database sends it; larger: PAYLOAD_TOO_LARGE"},
    [SV_MAX_RESPONSE_BYTES] = {NULL, "Largest query response body, in bytes; larger: "
                                     "PAYLOAD_TOO_LARGE, or the stream is cut"},
    [SV_LOG_LEVEL] = {NULL, "debug, info, warn or error"},
    [SV_LOG_FORMAT] = {NULL, "json (one object per line) or text; logs go to stderr"},
    [SV_TLS_CERT_FILE] = {NULL, "PEM certificate; with SQLGATE_TLS_KEY_FILE the listener speaks "
                                "HTTPS only"},
    [SV_TLS_KEY_FILE] = {NULL, "PEM private key for SQLGATE_TLS_CERT_FILE"},
    [SV_TOKENS_FILE] = {NULL, "Scoped tokens, one a line: token (or sha256:<hex>) then db=NAMES, "
                              "ro/rw, admin, metrics"},
    [SV_METRICS_ACCESS] = {NULL, "open, or token (GET /metrics needs the metrics scope)"},
    [SV_HEALTH_DETAILS] = {NULL, "always, authorized or never: who sees errors, latency and pool "
                                 "figures in /health"},
    [SV_ALLOWED_HOSTS] = {NULL, "Without tokens: Host names (host or host:port, comma-separated) "
                                "accepted besides the listen address and localhost"},
    [SV_HEADER_TIMEOUT_MS] = {NULL, "A connection must send complete request headers within "
                                    "this, or it is closed"},
    [SV_IDLE_TIMEOUT_MS] = {NULL, "A kept-alive connection with no new request within this is "
                                  "closed"},
    [SV_WRITE_GRACE_MS] = {NULL, "A query's response must be sent within its query timeout "
                                 "plus this, or it is cut and the statement cancelled"},
    [SV_MAX_CONNECTIONS_PER_CLIENT] = {NULL, "Most open connections from one client address "
                                             "(idle ones are closed first)"},
    [SV_ENV_FILE] = {NULL, "The .env file read at start and on every reload (from the real "
                           "environment only)"},
};

static const var_help db_help[DV_COUNT_] = {
    [DV_DRIVER] = {"from HOST/URL/PATH", "freetds (SQL Server, Azure SQL, Sybase) or sqlite"},
    [DV_HOST] = {NULL, "SQL Server host name or address"},
    [DV_PORT] = {NULL, "SQL Server TCP port"},
    [DV_NAME] = {NULL, "Database (catalog) to use; unset = the login's default"},
    [DV_USER] = {NULL, "SQL Server login name"},
    [DV_PASSWORD] = {NULL, "SQL Server password"},
    [DV_PASSWORD_FILE] = {NULL, "File holding the password (instead of PASSWORD)"},
    [DV_URL] = {NULL, "mssql://user:pass@host:port/db?encrypt=require, an ADO.NET string or "
                      "sqlite:///abs/path.db"},
    [DV_PATH] = {NULL, "SQLite file (created unless READ_ONLY) or :memory:; embedded: "
                       "./var/<name>.db"},
    [DV_ENCRYPT] = {NULL, "TLS to SQL Server: off, request or require"},
    [DV_CA_FILE] = {NULL, "CA bundle (PEM) that verifies the server's certificate and host name, "
                          "or system (the OS trust store); unset: not verified"},
    [DV_TDS_VERSION] = {NULL, "auto, 7.1, 7.2, 7.3 or 7.4"},
    [DV_APP_NAME] = {"sqlgate:<name>", "Application name shown to the server's administrators"},
    [DV_POOL_MAX] = {NULL, "Most connections in the pool"},
    [DV_POOL_MIN] = {NULL, "Connections kept open even when idle (<= POOL_MAX)"},
    [DV_ACQUIRE_TIMEOUT_MS] = {NULL, "Longest wait for a free connection, then POOL_EXHAUSTED"},
    [DV_CONNECT_TIMEOUT_MS] = {NULL, "Longest time to open a connection"},
    [DV_QUERY_TIMEOUT_MS] = {NULL, "Longest run of a statement (a request may ask for less)"},
    [DV_IDLE_TIMEOUT_MS] = {NULL, "Idle connections above POOL_MIN close after this"},
    [DV_MAX_LIFETIME_MS] = {NULL, "Every connection is replaced before this age"},
    [DV_RETRY_MAX_MS] = {NULL, "Cap of the reconnect backoff while the database is down"},
    [DV_CRITICAL] = {NULL, "When this database is down, the service is unready"},
    [DV_READ_ONLY] = {NULL, "Open read-only (SQL Server: ApplicationIntent=ReadOnly)"},
    [DV_HEALTH_QUERY] = {NULL, "Statement of the background health check"},
    [DV_HEALTH_INTERVAL_MS] = {NULL, "Time between health checks"},
    [DV_HEALTH_TIMEOUT_MS] = {NULL, "A health check slower than this counts as down"},
    [DV_MAX_LOGINS_PER_SEC] = {NULL, "Logins to the database per second at most (pool, health "
                                     "checks, reconnects together; bursts up to the same)"},
    [DV_READONLY_USER] = {NULL, "SQL Server login with read rights only, for ro tokens' queries"},
    [DV_READONLY_PASSWORD] = {NULL, "Password of READONLY_USER"},
    [DV_READONLY_PASSWORD_FILE] = {NULL, "File holding READONLY_PASSWORD"},
};

/* --- Loader state -------------------------------------------------------- */

/* The snapshot handed out is box->pub; box also owns every string the
 * snapshot points to, so the last sg_config_unref releases them in one
 * place. refs counts the holders (sg_config_ref); a reload leaves the old
 * snapshot alive for as long as a request or a database still points into it. */
typedef struct cfg_box {
    sg_config pub;     /* first member: sg_config * and cfg_box * convert */
    sg_tokens *tokens; /* owned; pub.tokens */
    atomic_uint refs;
    void **owned;
    size_t n_owned, cap_owned;
} cfg_box;

typedef struct strbuf {
    char *data;
    size_t len, cap;
} strbuf;

typedef struct loader {
    sg_lookup_fn lookup;
    void *ud;
    cfg_box *box;
    strbuf errs;
    size_t n_errors;
    size_t n_dropped; /* problems past ERRORS_CAP, reported as a count */
    bool oom;
} loader;

/* One variable after reading: text is borrowed from the lookup (valid during
 * load only); num holds the parsed number, bool or word value, or the
 * default's when the variable is unset or wrong. */
typedef struct value {
    const char *text;
    int64_t num;
    bool ok;
} value;

static void wipe(void *p, size_t n)
{
    volatile unsigned char *b = p;
    while (n-- > 0)
        *b++ = 0;
}

static void free_secret(char *s)
{
    if (s == NULL)
        return;
    wipe(s, strlen(s));
    free(s);
}

static bool sb_append(strbuf *sb, const char *s, size_t n)
{
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 256;
        while (cap < sb->len + n + 1)
            cap *= 2;
        char *p = realloc(sb->data, cap);
        if (p == NULL)
            return false;
        sb->data = p;
        sb->cap = cap;
    }
    memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
    return true;
}

static void add_error(loader *ld, const char *var, const char *fmt, ...) SG_PRINTF(3, 4);

static void add_error(loader *ld, const char *var, const char *fmt, ...)
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
    if (!sb_append(&ld->errs, var, vlen) || !sb_append(&ld->errs, ": ", 2) ||
        !sb_append(&ld->errs, msg, mlen) || !sb_append(&ld->errs, "\n", 1))
        ld->oom = true;
}

/* Writes `"value"` into buf, escaping quotes, backslashes and control bytes
 * so that an error stays on one line, and cutting it at ECHO_MAX bytes. */
static const char *quote(char *buf, size_t size, const char *s)
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

#define QUOTE_BUF (ECHO_MAX * 4 + 8)

static void *owned_add(loader *ld, void *p)
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
static const char *keep(loader *ld, const char *s)
{
    if (s == NULL)
        return NULL;
    return owned_add(ld, strdup(s));
}

static const char *get(loader *ld, const char *name)
{
    const char *v = ld->lookup(ld->ud, name);
    return (v != NULL && v[0] != '\0') ? v : NULL;
}

/* --- Scalar parsing ---------------------------------------------------------- */

/* Decimal only: optional '-', digits, nothing else; overflow is an error. */
static int parse_int(const char *s, int64_t *out)
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

static int parse_bool(const char *s, bool *out)
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

static int parse_word(const word *words, const char *s, int *out)
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
        snprintf(got, sizeof got, " (got %s)", quote(q, sizeof q, text));

    switch (def->kind) {
    case K_STRING:
        return 0;
    case K_INT: {
        int64_t v;
        if (parse_int(text, &v) != 0 || v < def->min) {
            add_error(ld, var, "must be an integer >= %lld%s", (long long)def->min, got);
            return -1;
        }
        if (v > def->max) {
            add_error(ld, var, "must be an integer <= %lld%s", (long long)def->max, got);
            return -1;
        }
        *num = v;
        return 0;
    }
    case K_BOOL: {
        bool b;
        if (parse_bool(text, &b) != 0) {
            add_error(ld, var, "must be true or false (also 1/0, yes/no)%s", got);
            return -1;
        }
        *num = b;
        return 0;
    }
    case K_WORD: {
        int w;
        if (parse_word(def->words, text, &w) != 0) {
            char list[128];
            word_list(def->words, list, sizeof list);
            /* A value other drivers know (TDS 8.0: TLS before PRELOGIN). */
            bool strict = def->words == encrypt_words && strcasecmp(text, "strict") == 0;
            add_error(ld, var, "must be %s%s%s", list, got,
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

static void read_var(loader *ld, const char *var, const var_def *def, value *out)
{
    out->text = get(ld, var);
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

/* Reads a whole regular file of at most cap bytes into a new NUL-terminated
 * buffer (caller frees). Returns 0; -1 with errno set; -2 when larger than
 * cap; -3 when not a regular file; -4 when it contains a NUL byte. The buffer
 * is wiped on failure because the file may hold a secret. */
static int read_file(const char *path, size_t cap, char **out, size_t *len)
{
    int rc = -1, saved = 0;
    char *buf = NULL;
    size_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0)
        goto fail;
    if (!S_ISREG(st.st_mode)) {
        rc = -3;
        goto fail;
    }
    if ((uintmax_t)st.st_size > cap) {
        rc = -2;
        goto fail;
    }
    /* One byte more than allowed shows a file that grew while we read it. */
    buf = malloc(cap + 1);
    if (buf == NULL)
        goto fail;
    for (;;) {
        if (n == cap + 1) {
            rc = -2;
            goto fail;
        }
        ssize_t r = read(fd, buf + n, cap + 1 - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > cap) {
        rc = -2;
        goto fail;
    }
    if (memchr(buf, '\0', n) != NULL) {
        rc = -4;
        goto fail;
    }
    buf[n] = '\0';
    close(fd);
    *out = buf;
    *len = n;
    return 0;
fail:
    saved = errno;
    if (buf != NULL) {
        wipe(buf, n);
        free(buf);
    }
    close(fd);
    errno = saved;
    return rc;
}

/* err is the errno of a read_file (or open) that returned rc == -1. */
static void file_error(loader *ld, const char *var, const char *path, int rc, int err, size_t cap)
{
    char q[QUOTE_BUF];
    quote(q, sizeof q, path);
    switch (rc) {
    case -2:
        add_error(ld, var, "file %s is larger than %zu bytes", q, cap);
        break;
    case -3:
        add_error(ld, var, "%s is not a regular file", q);
        break;
    case -4:
        add_error(ld, var, "file %s contains a NUL byte", q);
        break;
    default:
        if (err == ENOMEM)
            ld->oom = true;
        add_error(ld, var, "cannot read %s: %s", q, strerror(err));
        break;
    }
}

/* A file the service opens later (certificates): checked now so that a typo
 * is reported with the rest instead of at the first connection. */
static void check_readable(loader *ld, const char *var, const char *path)
{
    int rc = -3, err = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        err = errno;
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
            rc = 0;
        close(fd);
    } else {
        rc = -1;
    }
    if (rc != 0)
        file_error(ld, var, path, rc, err, 0);
}

/* --- Hosts and addresses ------------------------------------------------------ */

static bool is_ipv6(const char *s)
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
static bool host_ok(const char *h, bool allow_v6)
{
    size_t n = strlen(h);
    if (n == 0 || n > HOST_MAX)
        return false;
    if (strchr(h, ':') != NULL)
        return allow_v6 && is_ipv6(h);
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
static int parse_port(const char *s, size_t n, int min, int *out)
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

/* --- URLs -------------------------------------------------------------------- */

typedef enum url_kind { URL_NONE, URL_MSSQL, URL_SQLITE } url_kind;

/* What a URL contributed; strings are malloc'ed and freed by url_clear (the
 * password is wiped first). has_* say whether the URL gave that part. */
typedef struct url_parts {
    url_kind kind;
    char *host, *database, *user, *password, *app_name, *path;
    int port;
    bool has_port;
    int encrypt;
    bool has_encrypt;
    int tds;
    bool has_tds;
    bool read_only;
    bool has_read_only;
    int64_t connect_timeout_ms;
    bool has_connect_timeout;
} url_parts;

static void url_clear(url_parts *u)
{
    free(u->host);
    free(u->database);
    free(u->user);
    free_secret(u->password);
    free(u->app_name);
    free(u->path);
    memset(u, 0, sizeof *u);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes n bytes into a new string. Returns 0, -1 on a bad or %00
 * escape, -2 on OOM. */
static int pct_decode(const char *s, size_t n, char **out)
{
    char *d = malloc(n + 1);
    size_t o = 0;
    if (d == NULL)
        return -2;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            d[o++] = s[i];
            continue;
        }
        int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
        int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            wipe(d, o);
            free(d);
            return -1;
        }
        d[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    d[o] = '\0';
    *out = d;
    return 0;
}

/* Decodes a URL part into *dst (replacing it); reports under var as `what`. */
static int url_part(loader *ld, const char *var, const char *what, const char *s, size_t n,
                    char **dst)
{
    char *d = NULL;
    int rc = pct_decode(s, n, &d);
    if (rc == -2) {
        ld->oom = true;
        return -1;
    }
    if (rc == -1) {
        add_error(ld, var, "bad percent-encoding in the %s", what);
        return -1;
    }
    free_secret(*dst);
    *dst = d;
    return 0;
}

static char *dup_range(loader *ld, const char *s, size_t n)
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

static void set_string(loader *ld, char **dst, const char *s, size_t n)
{
    char *d = dup_range(ld, s, n);
    if (d == NULL)
        return;
    free_secret(*dst);
    *dst = d;
}

/* The query part of an mssql:// URL (or sqlite: with only read_only):
 * key=value pairs separated by '&', both percent-decoded. */
static void parse_query(loader *ld, const char *var, const char *q, bool sqlite, url_parts *u)
{
    while (*q != '\0') {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        char *key = NULL, *val = NULL;
        char kq[QUOTE_BUF];
        if (n == 0)
            goto next;
        if (eq == NULL) {
            char *k = dup_range(ld, q, n);
            if (k != NULL)
                add_error(ld, var, "query parameter %s has no value", quote(kq, sizeof kq, k));
            free(k);
            goto next;
        }
        if (url_part(ld, var, "query", q, (size_t)(eq - q), &key) != 0 ||
            url_part(ld, var, "query", eq + 1, n - (size_t)(eq - q) - 1, &val) != 0)
            goto next;
        bool b;
        int w;
        if (strcasecmp(key, "read_only") == 0) {
            if (parse_bool(val, &b) != 0)
                add_error(ld, var, "read_only must be true or false");
            else {
                u->read_only = b;
                u->has_read_only = true;
            }
        } else if (sqlite) {
            add_error(ld, var, "unknown query parameter %s (a sqlite URL knows only read_only)",
                      quote(kq, sizeof kq, key));
        } else if (strcasecmp(key, "encrypt") == 0) {
            if (parse_word(encrypt_words, val, &w) == 0) {
                u->encrypt = w;
            } else if (parse_bool(val, &b) == 0) {
                u->encrypt = b ? SG_ENCRYPT_REQUIRE : SG_ENCRYPT_REQUEST;
            } else {
                add_error(ld, var, "encrypt must be off, request or require (or true/false)");
                goto next;
            }
            u->has_encrypt = true;
        } else if (strcasecmp(key, "app_name") == 0) {
            free(u->app_name);
            u->app_name = val;
            val = NULL;
        } else if (strcasecmp(key, "tds_version") == 0) {
            if (parse_word(tds_words, val, &w) != 0) {
                add_error(ld, var, "tds_version must be auto, 7.1, 7.2, 7.3 or 7.4");
            } else {
                u->tds = w;
                u->has_tds = true;
            }
        } else {
            add_error(ld, var,
                      "unknown query parameter %s (known: encrypt, app_name, tds_version, "
                      "read_only)",
                      quote(kq, sizeof kq, key));
        }
    next:
        free(key);
        free(val);
        q += n;
        if (*q == '&')
            q++;
    }
}

/* mssql://[user[:password]@]host[:port][/database][?key=value&...]
 * (also sqlserver://). The authority ends at the first '/', '?' or '#'; the
 * user information at the last '@' inside it, so an unencoded '@' in a
 * password works but '/', '?' and '#' must be percent-encoded. */
static void parse_mssql_url(loader *ld, const char *var, const char *s, url_parts *u)
{
    u->kind = URL_MSSQL;
    size_t alen = strcspn(s, "/?#");
    const char *auth_end = s + alen;
    const char *at = NULL;
    for (const char *p = s; p < auth_end; p++) {
        if (*p == '@')
            at = p;
    }
    const char *hp = s;
    if (at != NULL) {
        const char *colon = memchr(s, ':', (size_t)(at - s));
        size_t ulen = colon != NULL ? (size_t)(colon - s) : (size_t)(at - s);
        if (ulen > 0)
            url_part(ld, var, "user name", s, ulen, &u->user);
        if (colon != NULL)
            url_part(ld, var, "password", colon + 1, (size_t)(at - colon - 1), &u->password);
        hp = at + 1;
    }

    const char *port = NULL;
    if (*hp == '[') {
        const char *close = memchr(hp, ']', (size_t)(auth_end - hp));
        if (close == NULL) {
            add_error(ld, var, "unterminated '[' in the host");
            goto path;
        }
        set_string(ld, &u->host, hp + 1, (size_t)(close - hp - 1));
        if (u->host != NULL && !is_ipv6(u->host))
            add_error(ld, var, "the host in brackets is not an IPv6 address");
        if (close + 1 < auth_end) {
            if (close[1] != ':')
                add_error(ld, var, "unexpected text after the IPv6 address");
            else
                port = close + 2;
        }
    } else {
        const char *colon = memchr(hp, ':', (size_t)(auth_end - hp));
        size_t hlen = colon != NULL ? (size_t)(colon - hp) : (size_t)(auth_end - hp);
        if (hlen > 0) {
            set_string(ld, &u->host, hp, hlen);
            if (u->host != NULL && !host_ok(u->host, false))
                add_error(ld, var,
                          "the host is not a valid name or address (IPv6 goes in brackets; "
                          "percent-encode special characters in the user name and password)");
        }
        if (colon != NULL)
            port = colon + 1;
    }
    if (port != NULL) {
        if (parse_port(port, (size_t)(auth_end - port), 1, &u->port) != 0)
            add_error(ld, var,
                      "the port must be an integer from 1 to 65535 (percent-encode special "
                      "characters in the user name and password)");
        else
            u->has_port = true;
    }

path:
    s = auth_end;
    if (*s == '/') {
        size_t n = strcspn(s + 1, "?#");
        if (n > 0)
            url_part(ld, var, "database name", s + 1, n, &u->database);
        s += 1 + n;
    }
    if (*s == '?') {
        size_t n = strcspn(s + 1, "#");
        char *q = dup_range(ld, s + 1, n);
        if (q != NULL)
            parse_query(ld, var, q, false, u);
        free(q);
        s += 1 + n;
    }
    if (*s == '#')
        add_error(ld, var, "unexpected '#' (percent-encode it as %%23 in a password)");
}

/* sqlite:///abs/path.db, sqlite:relative/path.db, sqlite::memory:, each with
 * an optional ?read_only=true. */
static void parse_sqlite_url(loader *ld, const char *var, const char *s, url_parts *u)
{
    u->kind = URL_SQLITE;
    if (strncmp(s, "//", 2) == 0) {
        if (s[2] != '/') {
            add_error(ld, var, "a sqlite URL takes no host (write sqlite:///absolute/path.db)");
            return;
        }
        s += 2;
    }
    size_t n = strcspn(s, "?");
    if (n == 0 || (n == 1 && s[0] == '/')) {
        add_error(ld, var, "the sqlite URL has no path");
    } else {
        url_part(ld, var, "path", s, n, &u->path);
    }
    if (s[n] == '?')
        parse_query(ld, var, s + n + 1, true, u);
}

/* An ADO.NET / ODBC value after '=': "quoted" or 'quoted' with the quote
 * doubled inside, {braced} with }} inside, or bare up to ';' and trimmed.
 * Copies into out (as large as the input); returns the position after the
 * value, or NULL when a quote is not closed. */
static const char *ado_value(const char *p, char *out, bool *quoted)
{
    size_t o = 0;
    *quoted = false;
    if (*p == '"' || *p == '\'' || *p == '{') {
        char close = *p == '{' ? '}' : *p;
        *quoted = true;
        for (p++;; p++) {
            if (*p == '\0')
                return NULL;
            if (*p == close) {
                if (p[1] != close)
                    break;
                p++;
            }
            out[o++] = *p;
        }
        out[o] = '\0';
        return p + 1;
    }
    const char *end = p + strcspn(p, ";");
    const char *e = end;
    while (e > p && isspace((unsigned char)e[-1]))
        e--;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = '\0';
    return end;
}

enum ado_field {
    ADO_IGNORE,
    ADO_SERVER,
    ADO_DATABASE,
    ADO_USER,
    ADO_PASSWORD,
    ADO_ENCRYPT,
    ADO_APP_NAME,
    ADO_INTENT,
    ADO_TIMEOUT,
    ADO_INTEGRATED
};

/* Keys compare lower-cased with spaces and '_' removed ("User Id" = "userid"). */
static const struct {
    const char *key;
    enum ado_field field;
} ado_keys[] = {
    {"server", ADO_SERVER},
    {"datasource", ADO_SERVER},
    {"address", ADO_SERVER},
    {"addr", ADO_SERVER},
    {"networkaddress", ADO_SERVER},
    {"database", ADO_DATABASE},
    {"initialcatalog", ADO_DATABASE},
    {"userid", ADO_USER},
    {"uid", ADO_USER},
    {"user", ADO_USER},
    {"username", ADO_USER},
    {"password", ADO_PASSWORD},
    {"pwd", ADO_PASSWORD},
    {"encrypt", ADO_ENCRYPT},
    {"applicationname", ADO_APP_NAME},
    {"app", ADO_APP_NAME},
    {"applicationintent", ADO_INTENT},
    {"connecttimeout", ADO_TIMEOUT},
    {"connectiontimeout", ADO_TIMEOUT},
    {"timeout", ADO_TIMEOUT},
    {"logintimeout", ADO_TIMEOUT},
    {"integratedsecurity", ADO_INTEGRATED},
    {"trustedconnection", ADO_INTEGRATED},
    /* Harmless here: TLS verification is CA_FILE's job, the rest are client
     * features sqlgate has no use for. */
    {"trustservercertificate", ADO_IGNORE},
    {"hostnameincertificate", ADO_IGNORE},
    {"persistsecurityinfo", ADO_IGNORE},
    {"multipleactiveresultsets", ADO_IGNORE},
    {"marsconnection", ADO_IGNORE},
    {"driver", ADO_IGNORE},
    {"provider", ADO_IGNORE},
    {"pooling", ADO_IGNORE},
    {"packetsize", ADO_IGNORE},
    {"connectretrycount", ADO_IGNORE},
    {"connectretryinterval", ADO_IGNORE},
    {"workstationid", ADO_IGNORE},
    {"wsid", ADO_IGNORE},
    {"multisubnetfailover", ADO_IGNORE},
};

static int ado_key(const char *k, size_t n, enum ado_field *out)
{
    char norm[40];
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)k[i];
        if (c == ' ' || c == '\t' || c == '_')
            continue;
        if (o + 1 >= sizeof norm)
            return -1;
        norm[o++] = (char)tolower(c);
    }
    norm[o] = '\0';
    for (size_t i = 0; i < sizeof ado_keys / sizeof ado_keys[0]; i++) {
        if (strcmp(ado_keys[i].key, norm) == 0) {
            *out = ado_keys[i].field;
            return 0;
        }
    }
    return -1;
}

/* Server=[tcp:]host[,port]; host may be [v6] or a bare IPv6 address. */
static void ado_server(loader *ld, const char *var, const char *v, url_parts *u)
{
    if (strncasecmp(v, "tcp:", 4) == 0) {
        v += 4;
    } else if (strncasecmp(v, "np:", 3) == 0 || strncasecmp(v, "lpc:", 4) == 0 ||
               strncasecmp(v, "admin:", 6) == 0) {
        add_error(ld, var, "only TCP servers are supported (Server=tcp:host,port)");
        return;
    }
    const char *comma = strrchr(v, ',');
    size_t hlen = comma != NULL ? (size_t)(comma - v) : strlen(v);
    while (hlen > 0 && isspace((unsigned char)v[hlen - 1]))
        hlen--;
    if (comma != NULL) {
        const char *p = comma + 1;
        while (isspace((unsigned char)*p))
            p++;
        size_t plen = strlen(p);
        while (plen > 0 && isspace((unsigned char)p[plen - 1]))
            plen--;
        if (parse_port(p, plen, 1, &u->port) != 0)
            add_error(ld, var, "the port after ',' in Server must be an integer from 1 to 65535");
        else
            u->has_port = true;
    }
    if (hlen >= 2 && v[0] == '[' && v[hlen - 1] == ']') {
        v++;
        hlen -= 2;
    }
    if (memchr(v, '\\', hlen) != NULL) {
        add_error(ld, var,
                  "named instances (host\\instance) are not supported; give Server=host,port");
        return;
    }
    if ((hlen == 7 && strncasecmp(v, "(local)", 7) == 0) || (hlen == 1 && v[0] == '.')) {
        v = "localhost";
        hlen = strlen(v);
    }
    set_string(ld, &u->host, v, hlen);
    if (u->host != NULL && !host_ok(u->host, true))
        add_error(ld, var, "Server is not a valid host name or address");
}

static void ado_field_set(loader *ld, const char *var, enum ado_field f, const char *key,
                          const char *v, url_parts *u)
{
    bool b;
    int64_t n;
    switch (f) {
    case ADO_IGNORE:
        break;
    case ADO_SERVER:
        ado_server(ld, var, v, u);
        break;
    case ADO_DATABASE:
        set_string(ld, &u->database, v, strlen(v));
        break;
    case ADO_USER:
        set_string(ld, &u->user, v, strlen(v));
        break;
    case ADO_PASSWORD:
        set_string(ld, &u->password, v, strlen(v));
        break;
    case ADO_APP_NAME:
        set_string(ld, &u->app_name, v, strlen(v));
        break;
    case ADO_ENCRYPT:
        if (strcasecmp(v, "strict") == 0 || strcasecmp(v, "mandatory") == 0 ||
            (parse_bool(v, &b) == 0 && b)) {
            u->encrypt = SG_ENCRYPT_REQUIRE;
        } else if (strcasecmp(v, "optional") == 0 || parse_bool(v, &b) == 0) {
            u->encrypt = SG_ENCRYPT_REQUEST;
        } else {
            add_error(ld, var, "%s must be True, False, Strict, Mandatory or Optional", key);
            break;
        }
        u->has_encrypt = true;
        break;
    case ADO_INTENT:
        if (strcasecmp(v, "readonly") == 0) {
            u->read_only = true;
        } else if (strcasecmp(v, "readwrite") == 0) {
            u->read_only = false;
        } else {
            add_error(ld, var, "%s must be ReadOnly or ReadWrite", key);
            break;
        }
        u->has_read_only = true;
        break;
    case ADO_TIMEOUT:
        if (parse_int(v, &n) != 0 || n < 1 || n > MS_MAX / 1000) {
            add_error(ld, var, "%s must be a number of seconds from 1 to %d", key, MS_MAX / 1000);
            break;
        }
        u->connect_timeout_ms = n * 1000;
        u->has_connect_timeout = true;
        break;
    case ADO_INTEGRATED:
        if (parse_bool(v, &b) != 0 || b)
            add_error(ld, var,
                      "integrated (Windows) authentication is not supported; give a "
                      "user and password");
        break;
    }
}

/* Key=Value;Key=Value as cloud portals hand out (ADO.NET, also ODBC braces). */
static void parse_ado(loader *ld, const char *var, const char *s, url_parts *u)
{
    char *val = malloc(strlen(s) + 1);
    char kq[QUOTE_BUF];
    /* A password with an unquoted ';' spills into the next "key"; such a
     * fragment is never named in an error, only described. */
    bool after_password = false;
    if (val == NULL) {
        ld->oom = true;
        return;
    }
    u->kind = URL_MSSQL;
    const char *p = s;
    while (*p != '\0') {
        while (*p == ';' || isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        const char *k = p;
        p += strcspn(p, "=;");
        if (*p != '=') {
            add_error(ld, var,
                      after_password ? "text after the password is not Key=Value (quote a password "
                                       "containing ';' as Password=\"...\")"
                                     : "an entry is not Key=Value (entries are separated by ';')");
            continue;
        }
        size_t klen = (size_t)(p - k);
        while (klen > 0 && isspace((unsigned char)k[klen - 1]))
            klen--;
        char *key = dup_range(ld, k, klen);
        if (key == NULL)
            break;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        bool quoted;
        const char *next = ado_value(p, val, &quoted);
        if (next == NULL) {
            add_error(ld, var, "the value of %s has no closing quote", quote(kq, sizeof kq, key));
            free(key);
            break;
        }
        p = next;
        if (quoted) {
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p != '\0' && *p != ';') {
                add_error(ld, var, "unexpected text after the quoted value of %s",
                          quote(kq, sizeof kq, key));
                p += strcspn(p, ";");
            }
        }
        enum ado_field f;
        if (klen == 0) {
            add_error(ld, var, "an entry has no key");
        } else if (ado_key(key, klen, &f) != 0) {
            if (after_password)
                add_error(ld, var,
                          "unknown key right after the password, not named here as it may be "
                          "part of the password (quote a password containing ';' as "
                          "Password=\"...\")");
            else
                add_error(ld, var, "unknown key %s in the connection string",
                          quote(kq, sizeof kq, key));
            after_password = false;
        } else {
            ado_field_set(ld, var, f, key, val, u);
            after_password = f == ADO_PASSWORD && !quoted;
        }
        free(key);
    }
    wipe(val, strlen(s) + 1);
    free(val);
}

/* Recognises the URL form and fills *u; errors name var and never echo the
 * URL (it may carry a password). */
static void parse_url(loader *ld, const char *var, const char *s, url_parts *u)
{
    const char *sep = strstr(s, "://");
    if (strncasecmp(s, "sqlite:", 7) == 0) {
        parse_sqlite_url(ld, var, s + 7, u);
    } else if (strncasecmp(s, "mssql://", 8) == 0) {
        parse_mssql_url(ld, var, s + 8, u);
    } else if (strncasecmp(s, "sqlserver://", 12) == 0) {
        parse_mssql_url(ld, var, s + 12, u);
    } else if (sep != NULL && (strchr(s, '=') == NULL || strchr(s, '=') > sep)) {
        add_error(ld, var,
                  "unknown URL scheme (expected mssql://, sqlserver://, sqlite: or an ADO.NET "
                  "Key=Value;... string)");
    } else if (strchr(s, '=') != NULL) {
        parse_ado(ld, var, s, u);
    } else {
        add_error(ld, var,
                  "not a URL (expected mssql://, sqlserver://, sqlite: or an ADO.NET "
                  "Key=Value;... string)");
    }
}

/* --- One database ------------------------------------------------------------ */

/* Reads PASSWORD_FILE: one trailing "\n" or "\r\n" is dropped (editors add
 * it); the content is never echoed. Returns a new string or NULL. */
static char *read_password_file(loader *ld, const char *var, const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = read_file(path, SECRET_FILE_MAX, &buf, &len);
    if (rc != 0) {
        file_error(ld, var, path, rc, errno, SECRET_FILE_MAX);
        return NULL;
    }
    if (len > 0 && buf[len - 1] == '\n') {
        buf[--len] = '\0';
        if (len > 0 && buf[len - 1] == '\r')
            buf[--len] = '\0';
    }
    if (len == 0) {
        char q[QUOTE_BUF];
        add_error(ld, var, "file %s is empty", quote(q, sizeof q, path));
        free(buf);
        return NULL;
    }
    return buf;
}

static void name_upper(char *dst, size_t size, const char *name)
{
    size_t i = 0;
    for (; name[i] != '\0' && i + 1 < size; i++)
        dst[i] = (char)toupper((unsigned char)name[i]);
    dst[i] = '\0';
}

/* The read-only login of a SQL Server database: kept as a second database
 * configuration, the same but for the login, so that its pool is an ordinary
 * sg_db (db.h). */
static void load_readonly(loader *ld, sg_db_config *db, const value *v, char var[][VAR_NAME_MAX],
                          int drv)
{
    const char *user = v[DV_READONLY_USER].text;
    const char *pass = v[DV_READONLY_PASSWORD].text;
    const char *file = v[DV_READONLY_PASSWORD_FILE].text;
    if (user == NULL) {
        if (pass != NULL || file != NULL)
            add_error(ld, var[pass != NULL ? DV_READONLY_PASSWORD : DV_READONLY_PASSWORD_FILE],
                      "is set without %s", var[DV_READONLY_USER]);
        return;
    }
    if (drv == DRV_SQLITE) {
        add_error(ld, var[DV_READONLY_USER],
                  "is for SQL Server; SQLite enforces read-only tokens itself");
        return;
    }
    if (pass != NULL && file != NULL) {
        add_error(ld, var[DV_READONLY_PASSWORD_FILE], "cannot be combined with %s; set one of them",
                  var[DV_READONLY_PASSWORD]);
        return;
    }
    char *from_file = NULL;
    if (file != NULL &&
        (from_file = read_password_file(ld, var[DV_READONLY_PASSWORD_FILE], file)) == NULL)
        return;
    db->readonly_user = keep(ld, user);
    db->readonly_password = keep(ld, from_file != NULL ? from_file : pass);
    free_secret(from_file);
    sg_db_config *ro = owned_add(ld, malloc(sizeof *ro));
    if (ro == NULL)
        return;
    *ro = *db;
    ro->user = db->readonly_user;
    ro->password = db->readonly_password;
    ro->readonly_user = NULL;
    ro->readonly_password = NULL;
    ro->readonly = NULL;
    ro->pool_min = 0; /* opened on demand: most setups query it less */
    db->readonly = ro;
}

/* Loads the database `name` whose variables start with `prefix`.
 * embedded_path is the built-in SQLite file in embedded mode, else NULL. */
static void load_db(loader *ld, sg_db_config *db, const char *name, const char *prefix,
                    const char *embedded_path)
{
    value v[DV_COUNT_];
    char var[DV_COUNT_][VAR_NAME_MAX];
    url_parts u;
    char *password = NULL;
    char q[QUOTE_BUF];

    memset(&u, 0, sizeof u);
    snprintf(db->name, sizeof db->name, "%s", name);
    snprintf(db->prefix, sizeof db->prefix, "%s", prefix);
    for (size_t i = 0; i < DV_COUNT_; i++) {
        snprintf(var[i], sizeof var[i], "%s%s", prefix, db_vars[i].name);
        read_var(ld, var[i], &db_vars[i], &v[i]);
    }
    size_t errors_before = ld->n_errors;
    if (v[DV_URL].text != NULL)
        parse_url(ld, var[DV_URL], v[DV_URL].text, &u);
    bool url_failed = ld->n_errors != errors_before;

    /* Driver: explicit, else what HOST/URL/PATH imply, else the embedded file. */
    const char *host_text = v[DV_HOST].text;
    const char *path_text = v[DV_PATH].text;
    bool hint_ft = host_text != NULL || u.kind == URL_MSSQL;
    bool hint_sq = path_text != NULL || u.kind == URL_SQLITE;
    int drv = DRV_NONE;
    if (v[DV_DRIVER].text != NULL) {
        if (v[DV_DRIVER].ok)
            drv = (int)v[DV_DRIVER].num;
    } else if (hint_ft && hint_sq) {
        if (path_text != NULL && host_text != NULL)
            add_error(ld, var[DV_PATH],
                      "cannot be combined with %s (a database is either SQLite with a path or "
                      "SQL Server with a host)",
                      var[DV_HOST]);
        else if (path_text != NULL)
            add_error(ld, var[DV_PATH], "cannot be combined with a SQL Server %s", var[DV_URL]);
        else
            add_error(ld, var[DV_HOST], "cannot be combined with a SQLite %s", var[DV_URL]);
    } else if (hint_ft) {
        drv = DRV_FREETDS;
    } else if (hint_sq || embedded_path != NULL) {
        drv = DRV_SQLITE;
    } else if (v[DV_URL].text == NULL) {
        /* (a URL that gave nothing usable has been reported already) */
        add_error(ld, var[DV_HOST],
                  "no database given: set %s or %s for SQL Server, or %s for SQLite", var[DV_HOST],
                  var[DV_URL], var[DV_PATH]);
    }

    if (drv == DRV_FREETDS) {
        if (path_text != NULL)
            add_error(ld, var[DV_PATH], "is for SQLite; the driver of %s is freetds", name);
        if (u.kind == URL_SQLITE)
            add_error(ld, var[DV_URL], "is a SQLite URL; the driver of %s is freetds", name);
    } else if (drv == DRV_SQLITE) {
        if (host_text != NULL)
            add_error(ld, var[DV_HOST], "is for SQL Server; the driver of %s is sqlite", name);
        if (u.kind == URL_MSSQL)
            add_error(ld, var[DV_URL], "is a SQL Server URL; the driver of %s is sqlite", name);
    }
    /* "none" only reaches a snapshot that is thrown away with the errors. */
    db->driver = drv == DRV_SQLITE ? "sqlite" : drv == DRV_FREETDS ? "freetds" : "none";

    /* Explicit variables win over URL parts, URL parts over defaults. */
    if (host_text != NULL) {
        size_t n = strlen(host_text);
        bool bracketed = n >= 2 && host_text[0] == '[' && host_text[n - 1] == ']';
        char *h = bracketed ? dup_range(ld, host_text + 1, n - 2) : dup_range(ld, host_text, n);
        if (h != NULL && strchr(h, '\\') != NULL)
            add_error(ld, var[DV_HOST],
                      "named instances (host\\instance) are not supported; set %s instead",
                      var[DV_PORT]);
        else if (h != NULL && !host_ok(h, true))
            add_error(ld, var[DV_HOST], "is not a valid host name or address (got %s)",
                      quote(q, sizeof q, host_text));
        if (drv == DRV_FREETDS)
            db->host = owned_add(ld, h);
        else
            free(h);
    } else if (drv == DRV_FREETDS) {
        db->host = keep(ld, u.host);
    }
    if (drv == DRV_FREETDS && db->host == NULL && !ld->oom && !url_failed)
        add_error(ld, var[DV_HOST], "is required for the freetds driver (or give the host in %s)",
                  var[DV_URL]);

    db->port = (int)v[DV_PORT].num;
    if (v[DV_PORT].text == NULL && u.has_port)
        db->port = u.port;
    db->database = keep(ld, v[DV_NAME].text != NULL ? v[DV_NAME].text : u.database);
    db->user = keep(ld, v[DV_USER].text != NULL ? v[DV_USER].text : u.user);

    if (v[DV_PASSWORD].text != NULL && v[DV_PASSWORD_FILE].text != NULL) {
        add_error(ld, var[DV_PASSWORD_FILE], "cannot be combined with %s; set one of them",
                  var[DV_PASSWORD]);
    } else if (v[DV_PASSWORD_FILE].text != NULL) {
        password = read_password_file(ld, var[DV_PASSWORD_FILE], v[DV_PASSWORD_FILE].text);
        if (password != NULL)
            db->password = keep(ld, password);
    } else {
        db->password = keep(ld, v[DV_PASSWORD].text != NULL ? v[DV_PASSWORD].text : u.password);
    }

    db->encrypt = (sg_encrypt)v[DV_ENCRYPT].num;
    if (v[DV_ENCRYPT].text == NULL && u.has_encrypt)
        db->encrypt = (sg_encrypt)u.encrypt;
    if (v[DV_CA_FILE].text != NULL) {
        if (strcmp(v[DV_CA_FILE].text, "system") != 0)
            check_readable(ld, var[DV_CA_FILE], v[DV_CA_FILE].text);
        db->ca_file = keep(ld, v[DV_CA_FILE].text);
    }
    int tds = (int)v[DV_TDS_VERSION].num;
    if (v[DV_TDS_VERSION].text == NULL && u.has_tds)
        tds = u.tds;
    db->tds_version = tds_names[tds];

    const char *app = v[DV_APP_NAME].text != NULL ? v[DV_APP_NAME].text : u.app_name;
    if (app != NULL) {
        if (strlen(app) > APP_NAME_MAX)
            add_error(ld, v[DV_APP_NAME].text != NULL ? var[DV_APP_NAME] : var[DV_URL],
                      "the application name must be at most %d bytes", APP_NAME_MAX);
        db->app_name = keep(ld, app);
    } else {
        char def[SG_NAME_MAX + 16];
        snprintf(def, sizeof def, "sqlgate:%s", name);
        db->app_name = keep(ld, def);
    }

    if (drv == DRV_SQLITE) {
        const char *path = path_text != NULL ? path_text : u.path;
        if (path == NULL && u.kind != URL_SQLITE)
            path = embedded_path;
        if (path == NULL && u.kind != URL_SQLITE)
            add_error(ld, var[DV_PATH],
                      "is required for the sqlite driver (or give a sqlite:/// "
                      "%s)",
                      var[DV_URL]);
        db->path = keep(ld, path);
    }

    db->read_only = v[DV_READ_ONLY].num != 0;
    if (v[DV_READ_ONLY].text == NULL && u.has_read_only)
        db->read_only = u.read_only;
    db->critical = v[DV_CRITICAL].num != 0;
    if (drv == DRV_SQLITE && db->read_only && db->path != NULL && strcmp(db->path, ":memory:") == 0)
        add_error(ld, v[DV_READ_ONLY].text != NULL ? var[DV_READ_ONLY] : var[DV_URL],
                  "a read-only :memory: database would always be empty");

    db->pool_max = (unsigned)v[DV_POOL_MAX].num;
    db->pool_min = (unsigned)v[DV_POOL_MIN].num;
    if (v[DV_POOL_MAX].ok && v[DV_POOL_MIN].ok && db->pool_min > db->pool_max)
        add_error(ld, var[DV_POOL_MIN], "must be <= %s (%u) (got %u)", var[DV_POOL_MAX],
                  db->pool_max, db->pool_min);

    db->acquire_timeout_ms = v[DV_ACQUIRE_TIMEOUT_MS].num;
    db->connect_timeout_ms = v[DV_CONNECT_TIMEOUT_MS].num;
    if (v[DV_CONNECT_TIMEOUT_MS].text == NULL && u.has_connect_timeout)
        db->connect_timeout_ms = u.connect_timeout_ms;
    db->query_timeout_ms = v[DV_QUERY_TIMEOUT_MS].num;
    db->idle_timeout_ms = v[DV_IDLE_TIMEOUT_MS].num;
    db->max_lifetime_ms = v[DV_MAX_LIFETIME_MS].num;
    db->retry_max_ms = v[DV_RETRY_MAX_MS].num;
    db->health_query = keep(ld, v[DV_HEALTH_QUERY].text != NULL ? v[DV_HEALTH_QUERY].text
                                                                : db_vars[DV_HEALTH_QUERY].def);
    db->health_interval_ms = v[DV_HEALTH_INTERVAL_MS].num;
    db->health_timeout_ms = v[DV_HEALTH_TIMEOUT_MS].num;
    db->max_logins_per_sec = (unsigned)v[DV_MAX_LOGINS_PER_SEC].num;

    load_readonly(ld, db, v, var, drv);
    free_secret(password);
    url_clear(&u);
}

/* --- Databases and modes ------------------------------------------------------ */

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n > SG_NAME_MAX || s[0] < 'a' || s[0] > 'z')
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
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
            add_error(ld, var, "item %zu is empty", item);
        } else if (!name_ok(s, len)) {
            add_error(ld, var,
                      "%s is not a valid database name (a lower-case letter, then up to 62 of "
                      "a-z, 0-9, _)",
                      quote(q, sizeof q, tmp));
        } else if (reserved(tmp)) {
            add_error(ld, var, "%s is a reserved name (default, live and ready are taken)",
                      quote(q, sizeof q, tmp));
        } else {
            bool dup = false;
            for (size_t i = 0; i < count; i++)
                dup = dup || strcmp(names[i], tmp) == 0;
            if (dup) {
                add_error(ld, var, "%s is listed more than once", quote(q, sizeof q, tmp));
            } else if (count == DB_COUNT_MAX) {
                add_error(ld, var, "more than %d databases", DB_COUNT_MAX);
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
        snprintf(var, sizeof var, "DB_%s", db_vars[i].name);
        if (get(ld, var) != NULL)
            return true;
    }
    return false;
}

static void load_databases(loader *ld, const value *sv)
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
        n = parse_names(ld, service_vars[SV_DATABASES].name, list, names);
    } else if (legacy_set(ld)) {
        cfg->mode = SG_MODE_LEGACY;
        n = 1;
    } else {
        cfg->mode = SG_MODE_EMBEDDED;
        n = 2;
    }
    if (n > 0) {
        cfg->databases = owned_add(ld, calloc(n, sizeof *cfg->databases));
        if (cfg->databases == NULL)
            goto done;
    }

    switch (cfg->mode) {
    case SG_MODE_NAMED:
        for (size_t i = 0; i < n; i++) {
            char prefix[SG_NAME_MAX + 8];
            name_upper(prefix, sizeof prefix, names[i]);
            memcpy(prefix + strlen(names[i]), "_DB_", 5);
            load_db(ld, &cfg->databases[i], names[i], prefix, NULL);
        }
        break;
    case SG_MODE_LEGACY:
        load_db(ld, &cfg->databases[0], "default", "DB_", NULL);
        break;
    case SG_MODE_EMBEDDED:
        load_db(ld, &cfg->databases[0], "core", "CORE_DB_", "./var/core.db");
        load_db(ld, &cfg->databases[1], "app", "APP_DB_", "./var/app.db");
        break;
    }
    cfg->n_databases = n;
done:
    free(names);
}

static void load_default(loader *ld, const value *sv)
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
    add_error(ld, service_vars[SV_DEFAULT_DATABASE].name,
              "%s is not a configured database (configured: %s)", quote(q, sizeof q, want),
              cfg->n_databases ? names : "none");
}

/* --- Service-wide ------------------------------------------------------------- */

/* host:port, [v6]:port; the host is kept without brackets. */
static void load_listen(loader *ld, const value *sv)
{
    sg_config *cfg = &ld->box->pub;
    const char *var = service_vars[SV_LISTEN].name;
    const char *s = sv[SV_LISTEN].text != NULL ? sv[SV_LISTEN].text : service_vars[SV_LISTEN].def;
    char q[QUOTE_BUF];
    const char *host, *port;
    size_t hlen;

    quote(q, sizeof q, s);
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            add_error(ld, var, "must be host:port or [ipv6]:port (got %s)", q);
            return;
        }
        host = s + 1;
        hlen = (size_t)(close - host);
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL) {
            add_error(ld, var, "must be host:port, e.g. 127.0.0.1:8080 (got %s)", q);
            return;
        }
        host = s;
        hlen = (size_t)(colon - s);
        port = colon + 1;
        if (memchr(host, ':', hlen) != NULL) {
            add_error(ld, var, "an IPv6 address goes in brackets, e.g. [::1]:8080 (got %s)", q);
            return;
        }
    }
    if (parse_port(port, strlen(port), 0, &cfg->listen_port) != 0)
        add_error(ld, var, "the port must be an integer from 0 to 65535 (got %s)", q);
    if (hlen == 0) {
        add_error(ld, var, "the host is missing; use 0.0.0.0:PORT for every interface (got %s)", q);
        return;
    }
    char *h = dup_range(ld, host, hlen);
    if (h == NULL)
        return;
    bool ok = s[0] == '[' ? is_ipv6(h) : (is_ipv4(h) || host_ok(h, false));
    if (!ok) {
        /* listen_host stays NULL, which also keeps the anonymous rule quiet. */
        add_error(ld, var, "the host is not a valid name or address (got %s)", q);
        free(h);
        return;
    }
    /* The listener binds an address and never resolves a name, so a start
     * and --check-config (both built on this loader) refuse one alike. */
    if (s[0] != '[' && !is_ipv4(h) && strcasecmp(h, "localhost") != 0) {
        add_error(ld, var,
                  "a host name is not resolved; give an IP address (0.0.0.0 for every "
                  "interface), [IPv6] or localhost (got %s)",
                  q);
        free(h);
        return;
    }
    cfg->listen_loopback = is_loopback(h);
    cfg->listen_host = owned_add(ld, h);
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
        add_error(ld, var, "contains no tokens");
        return false;
    }
    char **tokens = owned_add(ld, calloc(count, sizeof *tokens));
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
            add_error(ld, var, "token %zu is empty", item);
            ok = false;
        } else if (!clean) {
            add_error(ld, var, "token %zu contains a space, control or non-ASCII character", item);
            ok = false;
        } else if ((weak = sg_token_weakness(s, (size_t)(e - s))) != NULL) {
            add_error(ld, var, "token %zu %s; generate one with e.g. `openssl rand -hex 32`", item,
                      weak);
            ok = false;
        } else {
            char *t = dup_range(ld, s, (size_t)(e - s));
            if (t == NULL || owned_add(ld, t) == NULL)
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
static bool load_tokens(loader *ld, const value *sv)
{
    const char *inline_tokens = sv[SV_API_TOKENS].text;
    const char *file = sv[SV_API_TOKENS_FILE].text;
    const char *file_var = service_vars[SV_API_TOKENS_FILE].name;
    if (inline_tokens != NULL && file != NULL) {
        add_error(ld, file_var, "cannot be combined with %s; set one of them",
                  service_vars[SV_API_TOKENS].name);
        return false;
    }
    if (inline_tokens != NULL)
        return split_tokens(ld, service_vars[SV_API_TOKENS].name, inline_tokens);
    if (file == NULL)
        return true;
    char *buf = NULL;
    size_t len = 0;
    int rc = read_file(file, TOKENS_FILE_MAX, &buf, &len);
    if (rc != 0) {
        file_error(ld, file_var, file, rc, errno, TOKENS_FILE_MAX);
        return false;
    }
    bool ok = split_tokens(ld, file_var, buf);
    wipe(buf, len);
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
static bool load_scoped_tokens(loader *ld, const value *sv)
{
    sg_config *cfg = &ld->box->pub;
    const char *var = service_vars[SV_TOKENS_FILE].name;
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
                add_error(ld, service_vars[SV_API_TOKENS].name, "token %zu is given twice", i + 1);
            ok = false;
        }
    }
    /* From here on only the digests exist: the plain tokens are wiped. */
    for (size_t i = 0; i < cfg->n_api_tokens; i++)
        wipe(cfg->api_tokens[i], strlen(cfg->api_tokens[i]));
    cfg->api_tokens = NULL;
    const char *file = sv[SV_TOKENS_FILE].text;
    if (file == NULL)
        return ok;
    char *buf = NULL, *errors = NULL;
    size_t len = 0;
    int rc = read_file(file, TOKENS_FILE_MAX, &buf, &len);
    if (rc != 0) {
        file_error(ld, var, file, rc, errno, TOKENS_FILE_MAX);
        return false;
    }
    rc = sg_tokens_parse(ld->box->tokens, buf, len, file, resolve_db, cfg, &errors);
    wipe(buf, len);
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
        add_error(ld, var, "%s", line);
        if (nl == NULL)
            break;
        line = nl + 1;
    }
    free(errors);
    return false;
}

/* SQLGATE_ALLOWED_HOSTS: host, host:port, [v6] or [v6]:port, comma-separated;
 * kept lower-case so that the HTTP layer compares bytes. */
static void load_allowed_hosts(loader *ld, const value *sv)
{
    sg_config *cfg = &ld->box->pub;
    const char *var = service_vars[SV_ALLOWED_HOSTS].name;
    const char *text = sv[SV_ALLOWED_HOSTS].text;
    if (text == NULL)
        return;
    char **hosts = owned_add(ld, calloc(ALLOWED_HOSTS_MAX, sizeof *hosts));
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
        char *item = owned_add(ld, dup_range(ld, b, (size_t)(e - b)));
        if (item == NULL)
            return;
        quote(q, sizeof q, item);
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
                ok = is_ipv6(host);
            }
        } else {
            const char *colon = strchr(item, ':');
            size_t hl = colon != NULL ? (size_t)(colon - item) : strlen(item);
            ok = hl < sizeof host;
            if (ok) {
                memcpy(host, item, hl);
                host[hl] = '\0';
                port = colon != NULL ? colon + 1 : NULL;
                ok = host_ok(host, false);
            }
        }
        int portnum;
        if (ok && port != NULL)
            ok = parse_port(port, strlen(port), 1, &portnum) == 0;
        if (!ok) {
            add_error(ld, var, "%s is not a host name, host:port or [ipv6]:port", q);
            continue;
        }
        if (n == ALLOWED_HOSTS_MAX) {
            add_error(ld, var, "more than %d hosts", ALLOWED_HOSTS_MAX);
            return;
        }
        hosts[n++] = item;
    }
    cfg->allowed_hosts = n > 0 ? hosts : NULL;
    cfg->n_allowed_hosts = n;
}

static void load_tls(loader *ld, const value *sv)
{
    sg_config *cfg = &ld->box->pub;
    const char *cert = sv[SV_TLS_CERT_FILE].text, *key = sv[SV_TLS_KEY_FILE].text;
    const char *cert_var = service_vars[SV_TLS_CERT_FILE].name;
    const char *key_var = service_vars[SV_TLS_KEY_FILE].name;
    if (cert != NULL && key == NULL)
        add_error(ld, key_var, "must be set together with %s", cert_var);
    if (key != NULL && cert == NULL)
        add_error(ld, cert_var, "must be set together with %s", key_var);
    if (cert != NULL)
        check_readable(ld, cert_var, cert);
    if (key != NULL)
        check_readable(ld, key_var, key);
    cfg->tls_cert_file = keep(ld, cert);
    cfg->tls_key_file = keep(ld, key);
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
        read_var(&ld, service_vars[i].name, &service_vars[i], &sv[i]);

    load_databases(&ld, sv);
    load_default(&ld, sv);
    load_listen(&ld, sv);
    bool tokens_ok = load_tokens(&ld, sv);
    tokens_ok = load_scoped_tokens(&ld, sv) && tokens_ok;
    load_tls(&ld, sv);
    cfg->metrics_access = (sg_metrics_access)sv[SV_METRICS_ACCESS].num;
    cfg->health_details = (sg_health_details)sv[SV_HEALTH_DETAILS].num;
    load_allowed_hosts(&ld, sv);

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
        add_error(&ld, service_vars[SV_LISTEN].name,
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
            if (!sb_append(&ld.errs, more, (size_t)w))
                goto oom;
        }
        *errors = ld.errs.data;
        sg_config_free(cfg);
        return NULL;
    }
    free(ld.errs.data);
    return cfg;

oom:
    free(ld.errs.data);
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
            wipe((char *)cfg->databases[i].password, strlen(cfg->databases[i].password));
        if (cfg->databases[i].readonly_password != NULL)
            wipe((char *)cfg->databases[i].readonly_password,
                 strlen(cfg->databases[i].readonly_password));
    }
    sg_tokens_free(box->tokens);
    for (size_t i = 0; cfg->api_tokens != NULL && i < cfg->n_api_tokens; i++)
        wipe(cfg->api_tokens[i], strlen(cfg->api_tokens[i]));
    for (size_t i = 0; i < box->n_owned; i++)
        free(box->owned[i]);
    free(box->owned);
    free(box);
}

void sg_config_free(sg_config *cfg)
{
    sg_config_unref(cfg);
}

size_t sg_config_variable_count(void)
{
    return SV_COUNT_ + DV_COUNT_;
}

bool sg_config_variable(size_t i, sg_var_info *out)
{
    const var_def *d;
    const var_help *h;
    if (i < SV_COUNT_) {
        d = &service_vars[i];
        h = &service_help[i];
        out->scope = SG_VAR_SERVICE;
    } else if (i < SV_COUNT_ + DV_COUNT_) {
        d = &db_vars[i - SV_COUNT_];
        h = &db_help[i - SV_COUNT_];
        out->scope = SG_VAR_DATABASE;
    } else {
        return false;
    }
    out->name = d->name;
    out->def = d->def != NULL ? d->def : h->def_text;
    /* A variable added to the loader without help text shows up in --help
     * (and fails the CLI test) instead of crashing a printer. */
    out->meaning = h->meaning != NULL ? h->meaning : "(no description)";
    out->secret = d->secret;
    return true;
}

/* NULL-safe string equality: both unset, or both set and equal. */
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
