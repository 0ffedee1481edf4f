/* sqlgate configuration (docs/configuration.md), loaded into an immutable snapshot.
 *
 * The loader reads variables through an injected lookup function, so tests
 * need no real environment. It validates everything in one pass and reports
 * every problem, one line per problem naming the variable. Values of secret
 * variables (passwords, tokens) never appear in those lines.
 */
#ifndef SQLGATE_CONFIG_H
#define SQLGATE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "tokens.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Returns the value of variable `name`, or NULL when it is not set. The
 * returned string is borrowed: it must stay valid until sg_config_load returns. */
typedef const char *(*sg_lookup_fn)(void *ud, const char *name);

typedef enum sg_encrypt { SG_ENCRYPT_OFF, SG_ENCRYPT_REQUEST, SG_ENCRYPT_REQUIRE } sg_encrypt;

#define SG_NAME_MAX 63 /* [a-z][a-z0-9_]{0,62} */

/* Whether the n bytes at s (borrowed; NULL is not valid) are a database name:
 * [a-z][a-z0-9_]*, at most SG_NAME_MAX bytes. The one rule for configured
 * names, token scopes and the registry. */
bool sg_name_valid(const char *s, size_t n);

/* One database's settings; every string is owned by the sg_config it came from
 * and never NULL unless the comment says so. */
typedef struct sg_db_config {
    char name[SG_NAME_MAX + 1];
    char prefix[SG_NAME_MAX + 8]; /* "CORE_DB_", or "DB_" in legacy mode */
    const char *driver;           /* "sqlite" or "freetds" */

    /* freetds */
    const char *host;     /* NULL for sqlite */
    int port;             /* default 1433 */
    const char *database; /* NAME; NULL = the login's default catalog */
    const char *user;     /* may be NULL */
    const char *password; /* secret; may be NULL */
    sg_encrypt encrypt;
    const char *ca_file;     /* may be NULL */
    const char *tds_version; /* "auto", "7.1" ... "7.4" */
    const char *app_name;    /* default "sqlgate:<name>" */

    /* sqlite */
    const char *path; /* file path or ":memory:"; NULL for freetds */

    bool read_only;
    bool critical;

    /* freetds: the read-only login (READONLY_USER / READONLY_PASSWORD[_FILE])
     * that queries of `ro` tokens use. `readonly` is this same configuration
     * with user and password replaced (and pool_min 0), owned by the snapshot;
     * NULL when no read-only login is configured. */
    const char *readonly_user;     /* may be NULL */
    const char *readonly_password; /* secret; may be NULL */
    const struct sg_db_config *readonly;

    unsigned pool_max; /* >= 1 */
    unsigned pool_min; /* <= pool_max */
    int64_t acquire_timeout_ms;
    int64_t connect_timeout_ms;
    int64_t query_timeout_ms;
    int64_t idle_timeout_ms;
    int64_t max_lifetime_ms;
    int64_t retry_max_ms;

    const char *health_query;
    int64_t health_interval_ms;
    int64_t health_timeout_ms;

    /* Logins (driver opens: pool, health check, reconnect) per second at
     * most, bursts up to the same count; 0 = unlimited (unit tests). */
    unsigned max_logins_per_sec;
} sg_db_config;

typedef enum sg_log_level { SG_LOG_DEBUG, SG_LOG_INFO, SG_LOG_WARN, SG_LOG_ERROR } sg_log_level;

typedef enum sg_conn_model {
    SG_CONN_THREADS, /* a thread per client connection (libmicrohttpd's) */
    SG_CONN_EVENTS,  /* event threads hold connections; workers run handlers */
} sg_conn_model;

typedef enum sg_metrics_access {
    SG_METRICS_OPEN, /* anyone who reaches the port */
    SG_METRICS_TOKEN /* a token with the metrics scope */
} sg_metrics_access;

typedef enum sg_health_details {
    SG_HEALTH_DETAILS_ALWAYS,
    SG_HEALTH_DETAILS_AUTHORIZED, /* to a valid token, or to all when no token is configured */
    SG_HEALTH_DETAILS_NEVER
} sg_health_details;

typedef enum sg_config_mode {
    SG_MODE_NAMED,   /* SQLGATE_DATABASES */
    SG_MODE_LEGACY,  /* unprefixed DB_* configure "default" */
    SG_MODE_EMBEDDED /* nothing set: core + app on SQLite in ./var/ */
} sg_config_mode;

/* The whole snapshot. Immutable after sg_config_load, and reference-counted:
 * whoever keeps a pointer past the life of the reference it was handed takes
 * one of its own (sg_config_ref) and drops it with sg_config_unref. A reload
 * loads a new snapshot beside the current one; the old one lives until its
 * last holder lets go (a request that began before the reload, a database
 * that the reload left unchanged and whose sg_db_config points into it). */
typedef struct sg_config {
    sg_config_mode mode;
    sg_db_config *databases; /* array of n_databases, in SQLGATE_DATABASES order */
    size_t n_databases;
    const char *default_name; /* NULL when there is no default */

    const char *listen_host; /* "127.0.0.1", "::1", "0.0.0.0" (no brackets) */
    int listen_port;
    bool listen_loopback; /* listen_host is a loopback address */

    /* NULL once loaded: the plain tokens of SQLGATE_API_TOKENS(_FILE) are
     * wiped as soon as they are hashed into `tokens`. n_api_tokens still
     * says how many there were. */
    char **api_tokens;
    size_t n_api_tokens;
    /* Every token (SQLGATE_API_TOKENS with every scope, then the lines of
     * SQLGATE_TOKENS_FILE), as digests; never NULL, empty when none is set.
     * Requests are checked against this set only. */
    const sg_tokens *tokens;
    bool allow_anonymous;
    sg_metrics_access metrics_access;
    sg_health_details health_details;

    int64_t shutdown_delay_ms; /* >= 0 */
    int64_t drain_timeout_ms;
    size_t max_body_bytes;
    unsigned max_rows;
    uint64_t max_value_bytes;    /* text/binary value, as the database returns it */
    uint64_t max_response_bytes; /* query response body */
    sg_log_level log_level;
    bool log_json;
    const char *tls_cert_file; /* both NULL or both set */
    const char *tls_key_file;

    /* Without tokens, Host values accepted besides the listen address and
     * localhost: lower-case "name" (any port) or "name:port", IPv6 in
     * brackets. NULL when none. */
    char **allowed_hosts;
    size_t n_allowed_hosts;
    int64_t header_timeout_ms; /* complete request headers within this */
    int64_t idle_timeout_ms;   /* a kept-alive connection without a request */
    int64_t write_grace_ms;    /* a query's response: its query timeout plus this */
    unsigned max_conns_per_client;
    unsigned max_connections;       /* open client connections in all (SQLGATE_MAX_CONNECTIONS) */
    size_t connection_buffer_bytes; /* held by each client connection; headers: half */
    sg_conn_model connection_model; /* SQLGATE_CONNECTION_MODEL */
} sg_config;

/* Loads and validates the configuration.
 * On success returns a new snapshot (free with sg_config_free) and sets
 * *errors to NULL. On failure returns NULL and sets *errors to a new string
 * (caller frees with free()) holding one line per problem, each starting with
 * the variable's name. `errors` must not be NULL. */
sg_config *sg_config_load(sg_lookup_fn lookup, void *ud, char **errors) SG_MUST_USE;

/* Adds a reference and returns cfg (thread-safe; NULL gives NULL). */
const sg_config *sg_config_ref(const sg_config *cfg);

/* Drops a reference; the last one frees the snapshot, wiping its secrets.
 * Thread-safe; accepts NULL. */
void sg_config_unref(const sg_config *cfg);

/* The same as sg_config_unref: drops the reference sg_config_load gave. */
void sg_config_free(sg_config *cfg);

/* True when the two describe the same database in every field, secrets
 * included (a changed password is a change). Both borrowed. */
bool sg_db_config_equal(const sg_db_config *a, const sg_db_config *b);

/* Looks a database up by name (not "default"); borrowed, or NULL. */
const sg_db_config *sg_config_find(const sg_config *cfg, const char *name);

/* --- The variables the loader knows ----------------------------------------- */

typedef enum sg_var_scope {
    SG_VAR_SERVICE, /* the full name, e.g. "SQLGATE_LISTEN" */
    SG_VAR_DATABASE /* a suffix read after a database's prefix, e.g. "POOL_MAX" */
} sg_var_scope;

/* One variable as --help and the docs describe it. Every string is static
 * (valid for the life of the process) and never NULL unless noted. */
typedef struct sg_var_info {
    const char *name;
    sg_var_scope scope;
    const char *def;     /* default as a user writes it ("10", "SELECT 1") or
                            describes it ("sqlgate:<name>"); NULL = no default */
    const char *meaning; /* one line */
    bool secret;         /* its value is never shown */
} sg_var_info;

/* Number of variables the loader reads: the service-wide ones, then the
 * per-database suffixes. */
size_t sg_config_variable_count(void);

/* Fills *out (not NULL) with variable i, 0 <= i < sg_config_variable_count(),
 * taken from the loader's own tables. Returns false when i is out of range. */
bool sg_config_variable(size_t i, sg_var_info *out);

/* --- Sources of variables ------------------------------------------------ */

/* A parsed .env file: KEY=VALUE lines, '#' comments, optional `export `,
 * single or double quotes (double quotes understand \n \" \\). */
typedef struct sg_dotenv sg_dotenv;

/* Reads and parses `path`. A missing file gives an empty set (not an error).
 * Returns a new object, or NULL with *errors set (new string, caller frees)
 * naming the file and line of each malformed line. */
sg_dotenv *sg_dotenv_load(const char *path, char **errors) SG_MUST_USE;

/* Parses text already in memory; `origin` names it in error lines. */
sg_dotenv *sg_dotenv_parse(const char *text, size_t len, const char *origin,
                           char **errors) SG_MUST_USE;

void sg_dotenv_free(sg_dotenv *env); /* accepts NULL */

/* sg_lookup_fn over a dotenv (ud is the sg_dotenv *). */
const char *sg_dotenv_lookup(void *ud, const char *name);

/* sg_lookup_fn that reads the real environment first and falls back to the
 * sg_dotenv passed as ud (which may be NULL). */
const char *sg_env_lookup(void *ud, const char *name);

#ifdef __cplusplus
}
#endif
#endif
