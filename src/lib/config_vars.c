/* config_vars: the variable tables of the configuration loader.
 *
 * One entry per variable: type, default, bounds, whether its value is a
 * secret, and what --help and the docs say about it. cfg_service_vars holds
 * the SQLGATE_* variables, cfg_db_vars the suffixes read after a database's
 * prefix ("CORE_DB_", "DB_"). The loader (config.c and its parts, see
 * config_int.h) reads every variable through these tables, and
 * sg_config_variable lists them, so --help cannot drift from what is read.
 */
#include "config_int.h"

#include <stddef.h>
#include <stdint.h>

static const word driver_words[] = {{"freetds", DRV_FREETDS}, {"sqlite", DRV_SQLITE}, {NULL, 0}};

const word cfg_encrypt_words[] = {{"off", SG_ENCRYPT_OFF},
                                  {"request", SG_ENCRYPT_REQUEST},
                                  {"require", SG_ENCRYPT_REQUIRE},
                                  {NULL, 0}};

const char *const cfg_tds_names[] = {"auto", "7.1", "7.2", "7.3", "7.4"};
const word cfg_tds_words[] = {{"auto", 0}, {"7.1", 1}, {"7.2", 2},
                              {"7.3", 3},  {"7.4", 4}, {NULL, 0}};

static const word level_words[] = {{"debug", SG_LOG_DEBUG},
                                   {"info", SG_LOG_INFO},
                                   {"warn", SG_LOG_WARN},
                                   {"error", SG_LOG_ERROR},
                                   {NULL, 0}};

static const word conn_model_words[] = {
    {"threads", SG_CONN_THREADS}, {"events", SG_CONN_EVENTS}, {NULL, 0}};

static const word format_words[] = {{"json", 1}, {"text", 0}, {NULL, 0}};

static const word metrics_access_words[] = {
    {"open", SG_METRICS_OPEN}, {"token", SG_METRICS_TOKEN}, {NULL, 0}};

static const word health_details_words[] = {{"always", SG_HEALTH_DETAILS_ALWAYS},
                                            {"authorized", SG_HEALTH_DETAILS_AUTHORIZED},
                                            {"never", SG_HEALTH_DETAILS_NEVER},
                                            {NULL, 0}};

#define DB_MS(suffix, dflt, text)                                                                  \
    [DV_##suffix] = {                                                                              \
        .name = #suffix, .kind = K_INT, .def = dflt, .min = 1, .max = MS_MAX, .help = text}

/* Per-database suffixes. DRIVER's default depends on HOST/URL/PATH and
 * APP_NAME's on the database name; both are computed in config_db.c. */
const var_def cfg_db_vars[DV_COUNT_] = {
    [DV_DRIVER] = {.name = "DRIVER",
                   .kind = K_WORD,
                   .words = driver_words,
                   .def_text = "from HOST/URL/PATH",
                   .help = "freetds (SQL Server, Azure SQL, Sybase) or sqlite"},
    [DV_HOST] = {.name = "HOST", .kind = K_STRING, .help = "SQL Server host name or address"},
    [DV_PORT] = {.name = "PORT",
                 .kind = K_INT,
                 .def = "1433",
                 .min = 1,
                 .max = 65535,
                 .help = "SQL Server TCP port"},
    [DV_NAME] = {.name = "NAME",
                 .kind = K_STRING,
                 .help = "Database (catalog) to use; unset = the login's default"},
    [DV_USER] = {.name = "USER", .kind = K_STRING, .help = "SQL Server login name"},
    [DV_PASSWORD] = {.name = "PASSWORD",
                     .kind = K_STRING,
                     .secret = true,
                     .help = "SQL Server password"},
    [DV_PASSWORD_FILE] = {.name = "PASSWORD_FILE",
                          .kind = K_STRING,
                          .help = "File holding the password (instead of PASSWORD)"},
    [DV_URL] = {.name = "URL",
                .kind = K_STRING,
                .secret = true,
                .help = "mssql://user:pass@host:port/db?encrypt=require, an ADO.NET string or "
                        "sqlite:///abs/path.db"},
    [DV_PATH] = {.name = "PATH",
                 .kind = K_STRING,
                 .help = "SQLite file (created unless READ_ONLY) or :memory:; embedded: "
                         "./var/<name>.db"},
    [DV_ENCRYPT] = {.name = "ENCRYPT",
                    .kind = K_WORD,
                    .def = "request",
                    .words = cfg_encrypt_words,
                    .help = "TLS to SQL Server: off, request or require"},
    [DV_CA_FILE] = {.name = "CA_FILE",
                    .kind = K_STRING,
                    .help = "CA bundle (PEM) that verifies the server's certificate and host name, "
                            "or system (the OS trust store); unset: not verified"},
    [DV_TDS_VERSION] = {.name = "TDS_VERSION",
                        .kind = K_WORD,
                        .def = "auto",
                        .words = cfg_tds_words,
                        .help = "auto, 7.1, 7.2, 7.3 or 7.4"},
    [DV_APP_NAME] = {.name = "APP_NAME",
                     .kind = K_STRING,
                     .def_text = "sqlgate:<name>",
                     .help = "Application name shown to the server's administrators"},
    [DV_POOL_MAX] = {.name = "POOL_MAX",
                     .kind = K_INT,
                     .def = "10",
                     .min = 1,
                     .max = POOL_CAP,
                     .help = "Most connections in the pool"},
    [DV_POOL_MIN] = {.name = "POOL_MIN",
                     .kind = K_INT,
                     .def = "0",
                     .min = 0,
                     .max = POOL_CAP,
                     .help = "Connections kept open even when idle (<= POOL_MAX)"},
    DB_MS(ACQUIRE_TIMEOUT_MS, "5000", "Longest wait for a free connection, then POOL_EXHAUSTED"),
    DB_MS(CONNECT_TIMEOUT_MS, "15000", "Longest time to open a connection"),
    DB_MS(QUERY_TIMEOUT_MS, "15000", "Longest run of a statement (a request may ask for less)"),
    DB_MS(IDLE_TIMEOUT_MS, "30000", "Idle connections above POOL_MIN close after this"),
    DB_MS(MAX_LIFETIME_MS, "1800000", "Every connection is replaced before this age"),
    DB_MS(RETRY_MAX_MS, "5000", "Cap of the reconnect backoff while the database is down"),
    [DV_CRITICAL] = {.name = "CRITICAL",
                     .kind = K_BOOL,
                     .def = "true",
                     .help = "When this database is down, the service is unready"},
    [DV_READ_ONLY] = {.name = "READ_ONLY",
                      .kind = K_BOOL,
                      .def = "false",
                      .help = "Open read-only (SQL Server: ApplicationIntent=ReadOnly)"},
    [DV_HEALTH_QUERY] = {.name = "HEALTH_QUERY",
                         .kind = K_STRING,
                         .def = "SELECT 1",
                         .help = "Statement of the background health check"},
    DB_MS(HEALTH_INTERVAL_MS, "5000", "Time between health checks"),
    DB_MS(HEALTH_TIMEOUT_MS, "2000", "A health check slower than this counts as down"),
    [DV_MAX_LOGINS_PER_SEC] = {.name = "MAX_LOGINS_PER_SEC",
                               .kind = K_INT,
                               .def = "20",
                               .min = 1,
                               .max = 100000,
                               .help = "Logins to the database per second at most (pool, health "
                                       "checks, reconnects together; bursts up to the same)"},
    [DV_READONLY_USER] = {.name = "READONLY_USER",
                          .kind = K_STRING,
                          .help = "SQL Server login with read rights only, for ro tokens' queries"},
    [DV_READONLY_PASSWORD] = {.name = "READONLY_PASSWORD",
                              .kind = K_STRING,
                              .secret = true,
                              .help = "Password of READONLY_USER"},
    [DV_READONLY_PASSWORD_FILE] = {.name = "READONLY_PASSWORD_FILE",
                                   .kind = K_STRING,
                                   .help = "File holding READONLY_PASSWORD"},
};

/* Service-wide variables. The K_STRING ones are checked by their own
 * functions in config_rules.c (list syntax, address syntax, files). */
const var_def cfg_service_vars[SV_COUNT_] = {
    [SV_DATABASES] = {.name = "SQLGATE_DATABASES",
                      .kind = K_STRING,
                      .help = "Comma-separated database names, e.g. core,app; name n reads N_DB_*"},
    [SV_DEFAULT_DATABASE] = {.name = "SQLGATE_DEFAULT_DATABASE",
                             .kind = K_STRING,
                             .def_text = "the only database",
                             .help = "Which database the `default` alias points to"},
    [SV_LISTEN] = {.name = "SQLGATE_LISTEN",
                   .kind = K_STRING,
                   .def = "127.0.0.1:8080",
                   .help =
                       "Address and port of the HTTP server (ipv4:port, [v6]:port, localhost:port; "
                       "names are not resolved; port 0 = any)"},
    [SV_API_TOKENS] = {.name = "SQLGATE_API_TOKENS",
                       .kind = K_STRING,
                       .secret = true,
                       .help = "Comma-separated bearer tokens required on /v1/*"},
    [SV_API_TOKENS_FILE] = {.name = "SQLGATE_API_TOKENS_FILE",
                            .kind = K_STRING,
                            .help = "File holding the API tokens (instead of SQLGATE_API_TOKENS)"},
    [SV_ALLOW_ANONYMOUS] = {.name = "SQLGATE_ALLOW_ANONYMOUS",
                            .kind = K_BOOL,
                            .def = "false",
                            .help = "Allow a non-loopback SQLGATE_LISTEN without API tokens"},
    [SV_SHUTDOWN_DELAY_MS] = {.name = "SQLGATE_SHUTDOWN_DELAY_MS",
                              .kind = K_INT,
                              .def = "0",
                              .min = 0,
                              .max = MS_MAX,
                              .help = "After a stop signal, readiness fails but requests are "
                                      "served this long"},
    [SV_DRAIN_TIMEOUT_MS] = {.name = "SQLGATE_DRAIN_TIMEOUT_MS",
                             .kind = K_INT,
                             .def = "25000",
                             .min = 1,
                             .max = MS_MAX,
                             .help = "After that delay, in-flight requests get this long before "
                                     "they are cancelled"},
    [SV_MAX_BODY_BYTES] = {.name = "SQLGATE_MAX_BODY_BYTES",
                           .kind = K_INT,
                           .def = "1048576",
                           .min = 1,
                           .max = BODY_MAX,
                           .help = "Larger request bodies get 413"},
    [SV_MAX_ROWS] = {.name = "SQLGATE_MAX_ROWS",
                     .kind = K_INT,
                     .def = "10000",
                     .min = 1,
                     .max = INT32_MAX,
                     .help = "Cap on rows per result set (a request may ask for fewer)"},
    [SV_MAX_VALUE_BYTES] = {.name = "SQLGATE_MAX_VALUE_BYTES",
                            .kind = K_INT,
                            .def = "16777216",
                            .min = 1,
                            .max = RESULT_BYTES_MAX,
                            .help = "Largest text or binary value a query may return, in bytes "
                                    "as the database sends it; larger: PAYLOAD_TOO_LARGE"},
    [SV_MAX_RESPONSE_BYTES] = {.name = "SQLGATE_MAX_RESPONSE_BYTES",
                               .kind = K_INT,
                               .def = "268435456",
                               .min = 1,
                               .max = RESULT_BYTES_MAX,
                               .help = "Largest query response body, in bytes; larger: "
                                       "PAYLOAD_TOO_LARGE, or the stream is cut"},
    [SV_LOG_LEVEL] = {.name = "SQLGATE_LOG_LEVEL",
                      .kind = K_WORD,
                      .def = "info",
                      .words = level_words,
                      .help = "debug, info, warn or error"},
    [SV_LOG_FORMAT] = {.name = "SQLGATE_LOG_FORMAT",
                       .kind = K_WORD,
                       .def = "json",
                       .words = format_words,
                       .help = "json (one object per line) or text; logs go to stderr"},
    [SV_TLS_CERT_FILE] = {.name = "SQLGATE_TLS_CERT_FILE",
                          .kind = K_STRING,
                          .help = "PEM certificate; with SQLGATE_TLS_KEY_FILE the listener speaks "
                                  "HTTPS only"},
    [SV_TLS_KEY_FILE] = {.name = "SQLGATE_TLS_KEY_FILE",
                         .kind = K_STRING,
                         .help = "PEM private key for SQLGATE_TLS_CERT_FILE"},
    [SV_TOKENS_FILE] = {.name = "SQLGATE_TOKENS_FILE",
                        .kind = K_STRING,
                        .help = "Scoped tokens, one a line: token (or sha256:<hex>) then db=NAMES, "
                                "ro/rw, admin, metrics"},
    [SV_METRICS_ACCESS] = {.name = "SQLGATE_METRICS_ACCESS",
                           .kind = K_WORD,
                           .def = "open",
                           .words = metrics_access_words,
                           .help = "open, or token (GET /metrics needs the metrics scope)"},
    [SV_HEALTH_DETAILS] = {.name = "SQLGATE_HEALTH_DETAILS",
                           .kind = K_WORD,
                           .def = "authorized",
                           .words = health_details_words,
                           .help = "always, authorized or never: who sees errors, latency and pool "
                                   "figures in /health"},
    [SV_ALLOWED_HOSTS] = {.name = "SQLGATE_ALLOWED_HOSTS",
                          .kind = K_STRING,
                          .help = "Without tokens: Host names (host or host:port, comma-separated) "
                                  "accepted besides the listen address and localhost"},
    [SV_HEADER_TIMEOUT_MS] = {.name = "SQLGATE_HEADER_TIMEOUT_MS",
                              .kind = K_INT,
                              .def = "10000",
                              .min = 1,
                              .max = MS_MAX,
                              .help = "A connection must send complete request headers within "
                                      "this, or it is closed"},
    [SV_IDLE_TIMEOUT_MS] = {.name = "SQLGATE_IDLE_TIMEOUT_MS",
                            .kind = K_INT,
                            .def = "75000",
                            .min = 1,
                            .max = MS_MAX,
                            .help = "A kept-alive connection with no new request within this is "
                                    "closed"},
    [SV_WRITE_GRACE_MS] = {.name = "SQLGATE_WRITE_GRACE_MS",
                           .kind = K_INT,
                           .def = "5000",
                           .min = 1,
                           .max = MS_MAX,
                           .help = "A query's response must be sent within its query timeout "
                                   "plus this, or it is cut and the statement cancelled"},
    [SV_MAX_CONNECTIONS_PER_CLIENT] = {.name = "SQLGATE_MAX_CONNECTIONS_PER_CLIENT",
                                       .kind = K_INT,
                                       .def = "256",
                                       .min = 1,
                                       .max = CONNS_PER_CLIENT_MAX,
                                       .help = "Most open connections from one client address "
                                               "(idle ones are closed first)"},
    [SV_MAX_CONNECTIONS] = {.name = "SQLGATE_MAX_CONNECTIONS",
                            .kind = K_INT,
                            .def = "16384",
                            .min = 16,
                            .max = CONNS_MAX,
                            .help = "Most open client connections in all (idle ones are closed "
                                    "first, then 503); lowered to fit the open-file limit"},
    [SV_CONNECTION_MODEL] = {.name = "SQLGATE_CONNECTION_MODEL",
                             .kind = K_WORD,
                             .def = "threads",
                             .words = conn_model_words,
                             .help = "threads (a thread per client connection, at most 1024: "
                                     "the least CPU per request) or events (thousands of idle "
                                     "connections, a few threads)"},
    [SV_CONNECTION_BUFFER_BYTES] = {.name = "SQLGATE_CONNECTION_BUFFER_BYTES",
                                    .kind = K_INT,
                                    .def = "32768",
                                    .min = 4096,
                                    .max = 1048576,
                                    .help = "Memory each open client connection holds; request "
                                            "headers may use half of it"},
    /* Read by the service before it loads the file itself (from the real
     * environment only); listed here so --help and the docs know it. */
    [SV_ENV_FILE] = {.name = "SQLGATE_ENV_FILE",
                     .kind = K_STRING,
                     .def = ".env",
                     .help = "The .env file read at start and on every reload (from the real "
                             "environment only)"},
};

/* --- Public ------------------------------------------------------------------ */

size_t sg_config_variable_count(void)
{
    return SV_COUNT_ + DV_COUNT_;
}

bool sg_config_variable(size_t i, sg_var_info *out)
{
    const var_def *d;
    if (i < SV_COUNT_) {
        d = &cfg_service_vars[i];
        out->scope = SG_VAR_SERVICE;
    } else if (i < SV_COUNT_ + DV_COUNT_) {
        d = &cfg_db_vars[i - SV_COUNT_];
        out->scope = SG_VAR_DATABASE;
    } else {
        return false;
    }
    out->name = d->name;
    out->def = d->def != NULL ? d->def : d->def_text;
    /* A variable added to the loader without help text shows up in --help
     * (and fails the CLI test) instead of crashing a printer. */
    out->meaning = d->help != NULL ? d->help : "(no description)";
    out->secret = d->secret;
    return true;
}
