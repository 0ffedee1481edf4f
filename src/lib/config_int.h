/* config_int: what the parts of the configuration loader share.
 *
 * Internal to src/lib/config*.c: not installed, not part of the library's
 * API. The loader is one module (prefix sg_config_ outside, cfg_ inside)
 * spread over files by concern:
 *   config.c        the loader state, errors, scalar parsing, files, hosts,
 *                   sg_config_load and the rest of the public API
 *   config_vars.c   the variable tables (type, default, bounds, help text)
 *   config_url.c    a database's URL: mssql://, sqlite: and ADO.NET strings
 *   config_db.c     one database's variables (cfg_load_db)
 *   config_rules.c  the service-wide rules: databases and modes, listen,
 *                   tokens, scoped tokens, allowed hosts, TLS
 * A function that takes the loader reports a problem through cfg_add_error
 * and loading goes on, so one run reports everything; running out of memory
 * sets ld->oom instead.
 */
#ifndef SQLGATE_LIB_CONFIG_INT_H
#define SQLGATE_LIB_CONFIG_INT_H

#include "sqlgate/config.h"
#include "util.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits (the sanity caps of config.c's decisions among them). */
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
#define CONNS_MAX            1000000
#define ALLOWED_HOSTS_MAX    64

/* --- Tables (config_vars.c) ----------------------------------------------- */

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
    /* What --help and the docs say: in the entry the loader reads, so the
     * list cannot drift from it. def_text describes a default that is
     * computed (def is NULL then). */
    const char *def_text;
    const char *help; /* one line */
} var_def;

enum { DRV_NONE = -1, DRV_FREETDS, DRV_SQLITE };

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
    SV_MAX_CONNECTIONS,
    SV_CONNECTION_BUFFER_BYTES,
    SV_CONNECTION_MODEL,
    SV_ENV_FILE,
    SV_COUNT_
};

/* Indexed by enum db_var and enum sv_var. */
extern const var_def cfg_db_vars[DV_COUNT_];
extern const var_def cfg_service_vars[SV_COUNT_];

/* Word lists a URL's query and ADO.NET keys are parsed by too. */
extern const word cfg_encrypt_words[];
extern const word cfg_tds_words[];
/* TDS_VERSION's text by its word value. */
extern const char *const cfg_tds_names[];

/* --- Loader state (config.c) ---------------------------------------------- */

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

typedef struct loader {
    sg_lookup_fn lookup;
    void *ud;
    cfg_box *box;
    sg_buf errs; /* no cap of its own: cfg_add_error keeps it under ERRORS_CAP */
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

void cfg_add_error(loader *ld, const char *var, const char *fmt, ...) SG_PRINTF(3, 4);

#define QUOTE_BUF (ECHO_MAX * 4 + 8)

/* Writes `"s"` into buf (size bytes, QUOTE_BUF is enough), escaped and cut
 * for an error line; returns buf. */
const char *cfg_quote(char *buf, size_t size, const char *s);

/* Hands p (steals; NULL means out of memory) to the snapshot, which frees it
 * with itself. Returns p, or NULL (ld->oom) when p was NULL or could not be
 * recorded (p is freed then). */
void *cfg_owned_add(loader *ld, void *p);
/* A copy of s owned by the snapshot; NULL stays NULL. */
const char *cfg_keep(loader *ld, const char *s);
/* A new copy of n bytes at s (caller frees), or NULL (ld->oom). */
char *cfg_dup_range(loader *ld, const char *s, size_t n);
/* The variable's value (borrowed from the lookup), NULL when unset or empty. */
const char *cfg_get(loader *ld, const char *name);

/* --- Scalar parsing (config.c) -------------------------------------------- */

/* Each returns 0 with *out set, or -1 when s (borrowed) is not one; nothing
 * is reported. Integers are decimal only, booleans true/false, 1/0, yes/no,
 * words from the list; both in any case. */
int cfg_parse_int(const char *s, int64_t *out);
int cfg_parse_bool(const char *s, bool *out);
int cfg_parse_word(const word *words, const char *s, int *out);
/* Reads variable var by def into *out, reporting a bad value under var. */
void cfg_read_var(loader *ld, const char *var, const var_def *def, value *out);

/* --- Files (config.c) ----------------------------------------------------- */

/* Reports a failed sg_file_read (rc; err is its errno) of path under var. */
void cfg_file_error(loader *ld, const char *var, const char *path, int rc, int err, size_t cap);
/* Reports under var unless path is a readable regular file. */
void cfg_check_readable(loader *ld, const char *var, const char *path);

/* --- Hosts and addresses (config.c) --------------------------------------- */

bool cfg_is_ipv6(const char *s);
/* A DNS name, an IPv4 address or (when allow_v6) a bare IPv6 address. */
bool cfg_host_ok(const char *h, bool allow_v6);
/* Port text of n bytes: decimal, within [min, 65535]. */
int cfg_parse_port(const char *s, size_t n, int min, int *out);

/* --- A database's URL (config_url.c) -------------------------------------- */

typedef enum url_kind { URL_NONE, URL_MSSQL, URL_SQLITE } url_kind;

/* What a URL contributed; strings are malloc'ed and freed by cfg_url_clear (the
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

/* Recognises the URL form of s (borrowed) and fills *u (zeroed by the
 * caller); errors name var and never echo the URL (it may carry a password). */
void cfg_parse_url(loader *ld, const char *var, const char *s, url_parts *u);
/* Frees what *u holds (the password wiped first) and zeroes it. */
void cfg_url_clear(url_parts *u);

/* --- One database (config_db.c) ------------------------------------------- */

/* Loads the database `name` whose variables start with `prefix` into *db.
 * embedded_path is the built-in SQLite file in embedded mode, else NULL. */
void cfg_load_db(loader *ld, sg_db_config *db, const char *name, const char *prefix,
                 const char *embedded_path);

/* --- Service-wide rules (config_rules.c) ---------------------------------- */

/* Each reads the service variables sv (indexed by enum sv_var) into the
 * snapshot ld->box->pub. */
void cfg_load_databases(loader *ld, const value *sv);
void cfg_load_default(loader *ld, const value *sv);
void cfg_load_listen(loader *ld, const value *sv);
/* Both return false when the token settings are wrong (the anonymous rule is
 * then not judged: the operator clearly meant to set tokens). */
bool cfg_load_tokens(loader *ld, const value *sv);
bool cfg_load_scoped_tokens(loader *ld, const value *sv);
void cfg_load_allowed_hosts(loader *ld, const value *sv);
void cfg_load_tls(loader *ld, const value *sv);

#endif
