/* Check suite for the configuration loader and .env parsing (config.c,
 * dotenv.c). Most cases are rows in tables: an environment (key/value pairs
 * read through an in-memory lookup) and what the snapshot must hold, or which
 * error lines must appear. Values may use two expansions:
 *   @DIR@       the test's temporary directory (files made by the fixture)
 *   @REP:c:N@   the character c repeated N times
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "sqlgate/config.h"

#define KV_MAX  40
#define VAL_MAX 2048

typedef struct kv {
    const char *key;
    const char *value;
} kv;

#define ENV(...)    ((const kv[]){__VA_ARGS__, {NULL, NULL}})
#define EMPTY_ENV   ((const kv[]){{NULL, NULL}})
#define LIST(...)   ((const char *const[]){__VA_ARGS__, NULL})
#define NO_STRINGS  ((const char *const[]){NULL})
#define SECRET      "SuperSecret9"
#define SECRET_FILE "file-secret-77"
#define TOKEN_A     "tok-alpha-1234-ab"
#define TOKEN_B     "tok-beta-5678-abc"
#define SCOPED_A    "tok-scoped-alpha-0001" /* tokens-file tokens: 16 characters or more */
#define SCOPED_B    "tok-scoped-beta-00002"

/* The fixture's temporary directory. The fixture is unchecked (made once per
 * test case in the runner's process) so that the directory is removed even
 * when a forked test fails; tests only read it, except the dotenv file test
 * which writes names the teardown knows. */
static char tmpdir[256];

/* --- Fixture ------------------------------------------------------------------- */

static void write_file(const char *name, const char *content, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(content, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static void write_text(const char *name, const char *content)
{
    write_file(name, content, strlen(content));
}

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/sqlgate-config-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_msg(mkdtemp(tmpdir) != NULL, "mkdtemp: %s", strerror(errno));
    write_text("pw", SECRET_FILE "\n");
    write_text("pw_crlf", SECRET_FILE "\r\n");
    write_text("pw_plain", SECRET_FILE);
    write_text("pw_two_nl", SECRET_FILE "\n\n");
    write_text("pw_empty", "");
    write_text("pw_nl_only", "\n");
    write_file("pw_nul", "nul-left\0nul-right", 18);
    write_text("tokens", "  " TOKEN_A " , " TOKEN_B "\n");
    write_text("tokens_one", TOKEN_A "\n");
    write_text("tokens_blank", "  \n\n");
    write_text("tokens_empty_item", TOKEN_A ",," TOKEN_B "\n");
    write_text("tokens_lines", TOKEN_A "\n" TOKEN_B "\n");
    /* Scoped tokens (SQLGATE_TOKENS_FILE): TOKEN_A plain, TOKEN_B by its SHA-256. */
    write_text("scoped", SCOPED_A
               " db=core rw\n# "
               "comment\n\nsha256:cb798be8c463b12cc189e487a1fae50e68647b390a82cd3337fd93045dc501e9 "
               "db=default admin\n");
    write_text("scoped_bad", "# first\n" SCOPED_B " db=core sideways\n");
    write_text("tokens_short", TOKEN_A ",shorty\n");
    write_text("cert.pem", "-----BEGIN CERTIFICATE-----\n");
    write_text("key.pem", "-----BEGIN PRIVATE KEY-----\n");
    write_text("ca.pem", "-----BEGIN CERTIFICATE-----\n");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/subdir", tmpdir);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
}

static void teardown(void)
{
    static const char *const names[] = {
        "pw",
        "pw_crlf",
        "pw_plain",
        "pw_two_nl",
        "pw_empty",
        "pw_nl_only",
        "pw_nul",
        "tokens",
        "tokens_one",
        "tokens_blank",
        "tokens_empty_item",
        "tokens_lines",
        "tokens_short",
        "cert.pem",
        "key.pem",
        "ca.pem",
        "env1",
        "big.env",
        "bad.env",
        "scoped",
        "scoped_bad",
    };
    char path[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/subdir", tmpdir);
    rmdir(path);
    ck_assert_msg(rmdir(tmpdir) == 0, "rmdir %s: %s", tmpdir, strerror(errno));
}

/* --- In-memory lookup ------------------------------------------------------ */

/* Values are expanded into buffers the test scribbles over after loading, so
 * every row also checks that the snapshot copied what it keeps. */
typedef struct lookup_ctx {
    const kv *env;
    char vals[KV_MAX][VAL_MAX];
    size_t calls;
} lookup_ctx;

static void expand(const char *in, char *out, size_t size)
{
    size_t o = 0;
    while (*in != '\0') {
        /* plain checks: a Check assertion per byte is slow without fork */
        if (o + 1 >= size)
            ck_abort_msg("expanded value too long");
        if (strncmp(in, "@DIR@", 5) == 0) {
            size_t n = strlen(tmpdir);
            if (o + n >= size)
                ck_abort_msg("expanded value too long");
            memcpy(out + o, tmpdir, n);
            o += n;
            in += 5;
        } else if (strncmp(in, "@REP:", 5) == 0) {
            char c = in[5];
            char *end;
            long n = strtol(in + 7, &end, 10);
            if (in[6] != ':' || *end != '@' || n <= 0 || o + (size_t)n >= size)
                ck_abort_msg("bad @REP:c:N@ in %s", in);
            memset(out + o, c, (size_t)n);
            o += (size_t)n;
            in = end + 1;
        } else {
            out[o++] = *in++;
        }
    }
    out[o] = '\0';
}

static const char *ctx_lookup(void *ud, const char *name)
{
    lookup_ctx *c = ud;
    c->calls++;
    char key[VAL_MAX];
    for (size_t i = 0; c->env != NULL && c->env[i].key != NULL; i++) {
        if (i >= KV_MAX)
            ck_abort_msg("more than %d variables in a row", KV_MAX);
        expand(c->env[i].key, key, sizeof key);
        if (strcmp(key, name) == 0) {
            expand(c->env[i].value, c->vals[i], sizeof c->vals[i]);
            return c->vals[i];
        }
    }
    return NULL;
}

static sg_config *load_env(lookup_ctx *ctx, const kv *env, char **errors)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->env = env;
    *errors = (char *)"not touched";
    sg_config *cfg = sg_config_load(ctx_lookup, ctx, errors);
    for (size_t i = 0; i < KV_MAX; i++)
        memset(ctx->vals[i], 'X', sizeof ctx->vals[i] - 1);
    return cfg;
}

/* --- Rendering a snapshot field as text ------------------------------------- */

static const char *str_or_null(const char *s)
{
    return s != NULL ? s : "(null)";
}

static const char *db_field(const sg_db_config *db, const char *f, char *buf, size_t size)
{
    static const char *const enc[] = {"off", "request", "require"};
#define STR(name, expr)                                                                            \
    if (strcmp(f, name) == 0)                                                                      \
        return str_or_null(expr);
#define NUM(name, expr)                                                                            \
    if (strcmp(f, name) == 0) {                                                                    \
        snprintf(buf, size, "%lld", (long long)(expr));                                            \
        return buf;                                                                                \
    }
#define BOOL(name, expr)                                                                           \
    if (strcmp(f, name) == 0)                                                                      \
        return (expr) ? "true" : "false";
    STR("name", db->name)
    STR("prefix", db->prefix)
    STR("driver", db->driver)
    STR("host", db->host)
    NUM("port", db->port)
    STR("database", db->database)
    STR("user", db->user)
    STR("password", db->password)
    if (strcmp(f, "encrypt") == 0) {
        ck_assert_uint_le((unsigned)db->encrypt, 2);
        return enc[db->encrypt];
    }
    STR("ca_file", db->ca_file)
    STR("tds_version", db->tds_version)
    STR("app_name", db->app_name)
    STR("path", db->path)
    BOOL("read_only", db->read_only)
    BOOL("critical", db->critical)
    NUM("pool_max", db->pool_max)
    NUM("pool_min", db->pool_min)
    NUM("acquire_timeout_ms", db->acquire_timeout_ms)
    NUM("connect_timeout_ms", db->connect_timeout_ms)
    NUM("query_timeout_ms", db->query_timeout_ms)
    NUM("idle_timeout_ms", db->idle_timeout_ms)
    NUM("max_lifetime_ms", db->max_lifetime_ms)
    NUM("retry_max_ms", db->retry_max_ms)
    STR("health_query", db->health_query)
    NUM("health_interval_ms", db->health_interval_ms)
    NUM("health_timeout_ms", db->health_timeout_ms)
    STR("readonly_user", db->readonly_user)
    STR("readonly_password", db->readonly_password)
    if (strncmp(f, "readonly.", 9) == 0) {
        if (db->readonly == NULL)
            return "(no read-only login)";
        return db_field(db->readonly, f + 9, buf, size);
    }
    ck_abort_msg("unknown database field %s", f);
    return NULL;
}

static const char *cfg_field(const sg_config *cfg, const char *key, char *buf, size_t size)
{
    static const char *const modes[] = {"named", "legacy", "embedded"};
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    const char *f = key;
    const char *dot = strchr(key, '.');
    if (dot != NULL) {
        char name[SG_NAME_MAX + 1];
        snprintf(name, sizeof name, "%.*s", (int)(dot - key), key);
        const sg_db_config *db = sg_config_find(cfg, name);
        if (db == NULL)
            return "(no such database)";
        return db_field(db, dot + 1, buf, size);
    }
    if (strcmp(f, "mode") == 0)
        return modes[cfg->mode];
    NUM("n_databases", cfg->n_databases)
    if (strcmp(f, "dbs") == 0) {
        size_t o = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < cfg->n_databases; i++)
            o += (size_t)snprintf(buf + o, size - o, "%s%s", i ? "," : "", cfg->databases[i].name);
        return buf;
    }
    STR("default", cfg->default_name)
    STR("listen_host", cfg->listen_host)
    NUM("listen_port", cfg->listen_port)
    BOOL("listen_loopback", cfg->listen_loopback)
    if (strcmp(f, "tokens") == 0) {
        /* Only digests are kept: the API tokens are listed by how many there
         * are; check_expect looks each expected one up in cfg->tokens. */
        ck_assert_ptr_null(cfg->api_tokens);
        if (cfg->n_api_tokens == 0)
            return "(null)";
        snprintf(buf, size, "%zu API tokens", cfg->n_api_tokens);
        return buf;
    }
    BOOL("allow_anonymous", cfg->allow_anonymous)
    NUM("shutdown_delay_ms", cfg->shutdown_delay_ms)
    NUM("drain_timeout_ms", cfg->drain_timeout_ms)
    NUM("max_body_bytes", cfg->max_body_bytes)
    NUM("max_rows", cfg->max_rows)
    if (strcmp(f, "log_level") == 0)
        return levels[cfg->log_level];
    BOOL("log_json", cfg->log_json)
    STR("tls_cert_file", cfg->tls_cert_file)
    STR("tls_key_file", cfg->tls_key_file)
    NUM("n_tokens", sg_tokens_count(cfg->tokens))
    if (strcmp(f, "metrics_access") == 0)
        return cfg->metrics_access == SG_METRICS_TOKEN ? "token" : "open";
    if (strcmp(f, "health_details") == 0)
        return cfg->health_details == SG_HEALTH_DETAILS_ALWAYS       ? "always"
               : cfg->health_details == SG_HEALTH_DETAILS_AUTHORIZED ? "authorized"
                                                                     : "never";
    if (strcmp(f, "allowed_hosts") == 0) {
        size_t o = 0;
        if (cfg->allowed_hosts == NULL) {
            ck_assert_uint_eq(cfg->n_allowed_hosts, 0);
            return "(null)";
        }
        buf[0] = '\0';
        for (size_t i = 0; i < cfg->n_allowed_hosts; i++)
            o += (size_t)snprintf(buf + o, size - o, "%s%s", i ? "," : "", cfg->allowed_hosts[i]);
        return buf;
    }
    NUM("header_timeout_ms", cfg->header_timeout_ms)
    NUM("idle_timeout_ms", cfg->idle_timeout_ms)
    NUM("write_grace_ms", cfg->write_grace_ms)
    NUM("max_conns_per_client", cfg->max_conns_per_client)
    ck_abort_msg("unknown field %s", f);
    return NULL;
#undef STR
#undef NUM
#undef BOOL
}

/* Checks "field=value" expectations (value expanded like env values). */
static void check_expect(const sg_config *cfg, const char *row, const char *const *expect)
{
    char buf[VAL_MAX], want[VAL_MAX], raw[128], key[128];
    for (size_t i = 0; expect[i] != NULL; i++) {
        const char *eq = strchr(expect[i], '=');
        ck_assert_msg(eq != NULL, "bad expectation %s", expect[i]);
        snprintf(raw, sizeof raw, "%.*s", (int)(eq - expect[i]), expect[i]);
        expand(raw, key, sizeof key);
        expand(eq + 1, want, sizeof want);
        if (strcmp(key, "tokens") == 0 && strcmp(want, "(null)") != 0) {
            /* "tokens=A,B": that many API tokens, each found by its digest
             * with every scope. */
            size_t n = 0;
            for (char *t = want, *next; t != NULL; t = next, n++) {
                next = strchr(t, ',');
                if (next != NULL)
                    *next++ = '\0';
                const sg_token *tok = sg_tokens_find(cfg->tokens, t, strlen(t));
                ck_assert_msg(tok != NULL, "[%s] token %s not found", row, t);
                ck_assert_uint_eq(sg_token_scopes(tok), SG_SCOPE_EVERY);
            }
            ck_assert_msg(cfg->n_api_tokens == n, "[%s] %zu API tokens, want %zu", row,
                          cfg->n_api_tokens, n);
            ck_assert_ptr_null(cfg->api_tokens);
            continue;
        }
        const char *got = cfg_field(cfg, key, buf, sizeof buf);
        ck_assert_msg(strcmp(got, want) == 0, "[%s] %s: want \"%s\", got \"%s\"", row, key, want,
                      got);
    }
}

/* --- Error text helpers ---------------------------------------------------- */

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

/* pat is matched at the start of the line; each '*' skips any text. */
static bool line_matches(const char *line, size_t len, const char *pat)
{
    char seg[512];
    const char *p = pat;
    size_t pos = 0;
    bool first = true;
    for (;;) {
        size_t n = strcspn(p, "*");
        snprintf(seg, sizeof seg, "%.*s", (int)n, p);
        if (first) {
            if (n > len || memcmp(line, seg, n) != 0)
                return false;
            pos = n;
            first = false;
        } else if (n > 0) {
            bool found = false;
            for (size_t i = pos; i + n <= len; i++) {
                if (memcmp(line + i, seg, n) == 0) {
                    pos = i + n;
                    found = true;
                    break;
                }
            }
            if (!found)
                return false;
        }
        if (p[n] == '\0')
            return true;
        p += n + 1;
    }
}

static bool has_line(const char *text, const char *pat)
{
    for (const char *l = text; *l != '\0';) {
        const char *nl = strchr(l, '\n');
        size_t len = nl ? (size_t)(nl - l) : strlen(l);
        if (line_matches(l, len, pat))
            return true;
        if (nl == NULL)
            break;
        l = nl + 1;
    }
    return false;
}

/* Every line: "NAME: text\n" with NAME an environment variable name. */
static void check_error_format(const char *row, const char *text)
{
    ck_assert_msg(text[0] != '\0', "[%s] empty error text", row);
    ck_assert_msg(text[strlen(text) - 1] == '\n', "[%s] last line not terminated", row);
    for (const char *l = text; *l != '\0';) {
        const char *nl = strchr(l, '\n');
        size_t n = strspn(l, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
        ck_assert_msg(n > 0 && l[n] == ':' && l[n + 1] == ' ' && l + n + 2 < nl,
                      "[%s] malformed error line: %.*s", row, (int)(nl - l), l);
        l = nl + 1;
    }
}

/* --- Rows: loads that succeed ------------------------------------------------ */

typedef struct ok_case {
    const char *name;
    const kv *env;
    const char *const *expect;
} ok_case;

#define ONE_CORE(...) ENV({"SQLGATE_DATABASES", "core"}, __VA_ARGS__)

static const ok_case ok_cases[] = {
    {"embedded: every default", EMPTY_ENV,
     LIST("mode=embedded", "n_databases=2", "dbs=core,app", "default=core", "listen_host=127.0.0.1",
          "listen_port=8080", "listen_loopback=true", "tokens=(null)", "allow_anonymous=false",
          "shutdown_delay_ms=0", "drain_timeout_ms=25000", "max_body_bytes=1048576",
          "max_rows=10000", "log_level=info", "log_json=true", "tls_cert_file=(null)",
          "tls_key_file=(null)", "allowed_hosts=(null)", "header_timeout_ms=10000",
          "idle_timeout_ms=75000", "write_grace_ms=5000", "max_conns_per_client=256",
          "core.driver=sqlite", "core.path=./var/core.db", "core.host=(null)",
          "core.prefix=CORE_DB_", "core.app_name=sqlgate:core", "core.pool_max=10",
          "core.pool_min=0", "core.read_only=false", "core.critical=true",
          "core.health_query=SELECT 1", "app.driver=sqlite", "app.path=./var/app.db",
          "app.prefix=APP_DB_", "app.app_name=sqlgate:app", "app.critical=true")},
    {"embedded: per-database variables apply on top",
     ENV({"CORE_DB_POOL_MAX", "3"}, {"CORE_DB_PATH", "/srv/core.db"}, {"APP_DB_CRITICAL", "no"},
         {"APP_DB_READ_ONLY", "yes"}, {"APP_DB_HEALTH_INTERVAL_MS", "750"}),
     LIST("mode=embedded", "core.pool_max=3", "core.path=/srv/core.db", "app.critical=false",
          "app.read_only=true", "app.path=./var/app.db", "app.health_interval_ms=750",
          "default=core")},
    {"embedded: a URL turns core into SQL Server",
     ENV({"CORE_DB_URL", "mssql://u:p@sql.example.com/core"}),
     LIST("mode=embedded", "core.driver=freetds", "core.host=sql.example.com", "core.path=(null)",
          "core.database=core", "app.driver=sqlite")},
    {"embedded: SQLGATE_DEFAULT_DATABASE picks app", ENV({"SQLGATE_DEFAULT_DATABASE", "app"}),
     LIST("mode=embedded", "default=app")},
    {"embedded: empty values count as unset",
     ENV({"SQLGATE_DATABASES", ""}, {"SQLGATE_LISTEN", ""}, {"CORE_DB_POOL_MAX", ""},
         {"DB_HOST", ""}),
     LIST("mode=embedded", "listen_port=8080", "core.pool_max=10")},

    {"named: one freetds database, every default", ONE_CORE({"CORE_DB_HOST", "sql.example.com"}),
     LIST("mode=named", "n_databases=1", "dbs=core", "default=core", "core.driver=freetds",
          "core.prefix=CORE_DB_", "core.host=sql.example.com", "core.port=1433",
          "core.database=(null)", "core.user=(null)", "core.password=(null)",
          "core.encrypt=request", "core.ca_file=(null)", "core.tds_version=auto",
          "core.app_name=sqlgate:core", "core.path=(null)", "core.read_only=false",
          "core.critical=true", "core.pool_max=10", "core.pool_min=0",
          "core.acquire_timeout_ms=5000", "core.connect_timeout_ms=15000",
          "core.query_timeout_ms=15000", "core.idle_timeout_ms=30000",
          "core.max_lifetime_ms=1800000", "core.retry_max_ms=5000", "core.health_query=SELECT 1",
          "core.health_interval_ms=5000", "core.health_timeout_ms=2000")},
    {"named: list is trimmed, order kept, no default with two",
     ENV({"SQLGATE_DATABASES", " core ,  app\t"}, {"CORE_DB_HOST", "h1"},
         {"APP_DB_PATH", ":memory:"}),
     LIST("mode=named", "dbs=core,app", "default=(null)", "core.driver=freetds",
          "app.driver=sqlite", "app.path=:memory:", "app.host=(null)", "app.prefix=APP_DB_")},
    {"named: explicit default",
     ENV({"SQLGATE_DATABASES", "core,app"}, {"SQLGATE_DEFAULT_DATABASE", "app"},
         {"CORE_DB_HOST", "h1"}, {"APP_DB_HOST", "h2"}),
     LIST("default=app", "app.host=h2", "core.host=h1")},
    {"named: names with digits and underscores, longest name",
     ENV({"SQLGATE_DATABASES", "a1,b_2_x,@REP:z:63@"}, {"A1_DB_PATH", "a.db"},
         {"B_2_X_DB_PATH", "b.db"}, {"@REP:Z:63@_DB_PATH", "z.db"}),
     LIST("dbs=a1,b_2_x,@REP:z:63@", "a1.path=a.db", "b_2_x.path=b.db", "b_2_x.prefix=B_2_X_DB_",
          "@REP:z:63@.path=z.db", "@REP:z:63@.prefix=@REP:Z:63@_DB_",
          "@REP:z:63@.app_name=sqlgate:@REP:z:63@")},
    {"named: unprefixed DB_ variables are ignored",
     ONE_CORE({"CORE_DB_PATH", "c.db"}, {"DB_HOST", "legacy-host"}, {"DB_POOL_MAX", "junk"}),
     LIST("mode=named", "n_databases=1", "core.path=c.db")},
    {"named: every per-database variable",
     ONE_CORE({"CORE_DB_DRIVER", "FreeTDS"}, {"CORE_DB_HOST", "10.1.2.3"}, {"CORE_DB_PORT", "1533"},
              {"CORE_DB_NAME", "Sales"}, {"CORE_DB_USER", "svc"}, {"CORE_DB_PASSWORD", SECRET},
              {"CORE_DB_ENCRYPT", "Require"}, {"CORE_DB_CA_FILE", "@DIR@/ca.pem"},
              {"CORE_DB_TDS_VERSION", "7.3"}, {"CORE_DB_APP_NAME", "billing"},
              {"CORE_DB_POOL_MAX", "1000"}, {"CORE_DB_POOL_MIN", "1000"},
              {"CORE_DB_ACQUIRE_TIMEOUT_MS", "1"}, {"CORE_DB_CONNECT_TIMEOUT_MS", "2"},
              {"CORE_DB_QUERY_TIMEOUT_MS", "3"}, {"CORE_DB_IDLE_TIMEOUT_MS", "4"},
              {"CORE_DB_MAX_LIFETIME_MS", "86400000"}, {"CORE_DB_RETRY_MAX_MS", "6"},
              {"CORE_DB_CRITICAL", "FALSE"}, {"CORE_DB_READ_ONLY", "1"},
              {"CORE_DB_HEALTH_QUERY", "SELECT 42"}, {"CORE_DB_HEALTH_INTERVAL_MS", "7"},
              {"CORE_DB_HEALTH_TIMEOUT_MS", "8"}),
     LIST("core.driver=freetds", "core.host=10.1.2.3", "core.port=1533", "core.database=Sales",
          "core.user=svc", "core.password=" SECRET, "core.encrypt=require",
          "core.ca_file=@DIR@/ca.pem", "core.tds_version=7.3", "core.app_name=billing",
          "core.pool_max=1000", "core.pool_min=1000", "core.acquire_timeout_ms=1",
          "core.connect_timeout_ms=2", "core.query_timeout_ms=3", "core.idle_timeout_ms=4",
          "core.max_lifetime_ms=86400000", "core.retry_max_ms=6", "core.critical=false",
          "core.read_only=true", "core.health_query=SELECT 42", "core.health_interval_ms=7",
          "core.health_timeout_ms=8")},
    {"named: sqlite driver given explicitly",
     ONE_CORE({"CORE_DB_DRIVER", "SQLITE"}, {"CORE_DB_PATH", "x.db"}),
     LIST("core.driver=sqlite", "core.path=x.db", "core.host=(null)")},
    {"named: ENCRYPT off, TDS 7.1 and 7.4 words",
     ENV({"SQLGATE_DATABASES", "a,b"}, {"A_DB_HOST", "h"}, {"A_DB_ENCRYPT", "off"},
         {"A_DB_TDS_VERSION", "7.1"}, {"B_DB_HOST", "h"}, {"B_DB_TDS_VERSION", "7.4"},
         {"B_DB_TDS_VERSION", "7.4"}),
     LIST("a.encrypt=off", "a.tds_version=7.1", "b.tds_version=7.4", "b.encrypt=request")},
    {"named: CA_FILE system (the OS trust store) needs no file",
     ONE_CORE({"CORE_DB_HOST", "h"}, {"CORE_DB_ENCRYPT", "require"}, {"CORE_DB_CA_FILE", "system"}),
     LIST("core.encrypt=require", "core.ca_file=system")},
    {"named: HOST in brackets is stored without them", ONE_CORE({"CORE_DB_HOST", "[2001:db8::5]"}),
     LIST("core.host=2001:db8::5")},
    {"named: bare IPv6 HOST", ONE_CORE({"CORE_DB_HOST", "::1"}), LIST("core.host=::1")},
    {"named: sqlite :memory: read-write", ONE_CORE({"CORE_DB_PATH", ":memory:"}),
     LIST("core.path=:memory:", "core.read_only=false")},
    {"named: sqlite read-only file",
     ONE_CORE({"CORE_DB_PATH", "ro.db"}, {"CORE_DB_READ_ONLY", "true"}),
     LIST("core.read_only=true")},

    {"legacy: unprefixed DB_ variables configure default",
     ENV({"DB_HOST", "legacy.example.com"}, {"DB_USER", "sa"}, {"DB_PASSWORD", SECRET},
         {"DB_NAME", "master"}, {"DB_PORT", "1444"}),
     LIST("mode=legacy", "n_databases=1", "dbs=default", "default=default", "default.prefix=DB_",
          "default.host=legacy.example.com", "default.user=sa", "default.password=" SECRET,
          "default.database=master", "default.port=1444", "default.app_name=sqlgate:default",
          "default.driver=freetds")},
    {"legacy: DB_PATH alone", ENV({"DB_PATH", ":memory:"}),
     LIST("mode=legacy", "default.driver=sqlite", "default.path=:memory:", "default=default")},
    {"legacy: DB_URL alone", ENV({"DB_URL", "sqlite:///var/lib/x.db"}),
     LIST("mode=legacy", "default.driver=sqlite", "default.path=/var/lib/x.db")},
    {"legacy: explicit default naming it",
     ENV({"DB_PATH", "x.db"}, {"SQLGATE_DEFAULT_DATABASE", "default"}), LIST("default=default")},

    {"service: every service-wide variable",
     ONE_CORE({"CORE_DB_PATH", "c.db"}, {"SQLGATE_LISTEN", "0.0.0.0:0"},
              {"SQLGATE_API_TOKENS", TOKEN_A "," TOKEN_B}, {"SQLGATE_ALLOW_ANONYMOUS", "Yes"},
              {"SQLGATE_SHUTDOWN_DELAY_MS", "86400000"}, {"SQLGATE_DRAIN_TIMEOUT_MS", "1"},
              {"SQLGATE_MAX_BODY_BYTES", "1073741824"}, {"SQLGATE_MAX_ROWS", "1"},
              {"SQLGATE_LOG_LEVEL", "DEBUG"}, {"SQLGATE_LOG_FORMAT", "Text"},
              {"SQLGATE_TLS_CERT_FILE", "@DIR@/cert.pem"},
              {"SQLGATE_TLS_KEY_FILE", "@DIR@/key.pem"}),
     LIST("listen_host=0.0.0.0", "listen_port=0", "listen_loopback=false",
          "tokens=" TOKEN_A "," TOKEN_B, "allow_anonymous=true", "shutdown_delay_ms=86400000",
          "drain_timeout_ms=1", "max_body_bytes=1073741824", "max_rows=1", "log_level=debug",
          "log_json=false", "tls_cert_file=@DIR@/cert.pem", "tls_key_file=@DIR@/key.pem")},
    {"service: log words warn/error/json",
     ENV({"SQLGATE_LOG_LEVEL", "warn"}, {"SQLGATE_LOG_FORMAT", "JSON"}),
     LIST("log_level=warn", "log_json=true")},
    {"service: log level error", ENV({"SQLGATE_LOG_LEVEL", "Error"}), LIST("log_level=error")},
    {"service: shutdown delay 0 explicitly", ENV({"SQLGATE_SHUTDOWN_DELAY_MS", "0"}),
     LIST("shutdown_delay_ms=0")},
    {"listen: [::1] is loopback, brackets dropped", ENV({"SQLGATE_LISTEN", "[::1]:9000"}),
     LIST("listen_host=::1", "listen_port=9000", "listen_loopback=true")},
    {"listen: localhost is loopback", ENV({"SQLGATE_LISTEN", "LocalHost:65535"}),
     LIST("listen_host=LocalHost", "listen_port=65535", "listen_loopback=true")},
    {"listen: all of 127/8 is loopback", ENV({"SQLGATE_LISTEN", "127.1.2.3:80"}),
     LIST("listen_host=127.1.2.3", "listen_loopback=true")},
    {"listen: v4-mapped loopback", ENV({"SQLGATE_LISTEN", "[::ffff:127.0.0.1]:80"}),
     LIST("listen_loopback=true")},
    {"listen: public address with tokens",
     ENV({"SQLGATE_LISTEN", "[::]:8443"}, {"SQLGATE_API_TOKENS", TOKEN_A}),
     LIST("listen_host=::", "listen_loopback=false", "tokens=" TOKEN_A)},
    {"listen: public address allowed anonymously",
     ENV({"SQLGATE_LISTEN", "10.0.0.7:80"}, {"SQLGATE_ALLOW_ANONYMOUS", "TRUE"}),
     LIST("listen_host=10.0.0.7", "listen_loopback=false", "allow_anonymous=true",
          "tokens=(null)")},
    {"tokens: inline, trimmed", ENV({"SQLGATE_API_TOKENS", "  " TOKEN_A " ,\t" TOKEN_B "  "}),
     LIST("tokens=" TOKEN_A "," TOKEN_B)},
    {"tokens: from a file",
     ENV({"SQLGATE_API_TOKENS_FILE", "@DIR@/tokens"}, {"SQLGATE_LISTEN", "0.0.0.0:8080"}),
     LIST("tokens=" TOKEN_A "," TOKEN_B, "listen_loopback=false")},
    {"scoped tokens: file plus API tokens, defaults of the access settings",
     ONE_CORE({"CORE_DB_PATH", "c.db"}, {"SQLGATE_API_TOKENS", "tok-gamma-9999-xyz"},
              {"SQLGATE_TOKENS_FILE", "@DIR@/scoped"}),
     LIST("n_tokens=3", "tokens=tok-gamma-9999-xyz", "metrics_access=open",
          "health_details=authorized")},
    {"scoped tokens: a public address needs no API token",
     ONE_CORE({"CORE_DB_PATH", "c.db"}, {"SQLGATE_LISTEN", "0.0.0.0:80"},
              {"SQLGATE_TOKENS_FILE", "@DIR@/scoped"}),
     LIST("n_tokens=2", "tokens=(null)", "listen_loopback=false")},
    {"service: no tokens at all", ENV({"SQLGATE_LOG_LEVEL", "info"}), LIST("n_tokens=0")},
    {"service: metrics access and health details words",
     ENV({"SQLGATE_METRICS_ACCESS", "Token"}, {"SQLGATE_HEALTH_DETAILS", "NEVER"}),
     LIST("metrics_access=token", "health_details=never")},
    {"service: health details always", ENV({"SQLGATE_HEALTH_DETAILS", "always"}),
     LIST("health_details=always")},
    {"readonly login: a second configuration with its login",
     ONE_CORE({"CORE_DB_HOST", "h"}, {"CORE_DB_USER", "svc"}, {"CORE_DB_PASSWORD", SECRET},
              {"CORE_DB_POOL_MIN", "2"}, {"CORE_DB_READONLY_USER", "reader"},
              {"CORE_DB_READONLY_PASSWORD_FILE", "@DIR@/pw"}),
     LIST("core.user=svc", "core.password=" SECRET, "core.readonly_user=reader",
          "core.readonly.user=reader", "core.readonly.password=" SECRET_FILE,
          "core.readonly.host=h", "core.readonly.name=core", "core.readonly.pool_min=0",
          "core.readonly.pool_max=10", "core.readonly.readonly_user=(null)")},
    {"readonly login: none by default", ONE_CORE({"CORE_DB_HOST", "h"}),
     LIST("core.readonly.user=(no read-only login)", "core.readonly_user=(null)")},
    {"allowed hosts: names, ports, IPv6, trimmed and lower-cased",
     ENV({"SQLGATE_ALLOWED_HOSTS", " App.Local , gw.example:8443,[::1]:9000,10.1.2.3 ,"}),
     LIST("allowed_hosts=app.local,gw.example:8443,[::1]:9000,10.1.2.3")},
    {"connection limits set",
     ENV({"SQLGATE_HEADER_TIMEOUT_MS", "1500"}, {"SQLGATE_IDLE_TIMEOUT_MS", "2500"},
         {"SQLGATE_WRITE_GRACE_MS", "700"}, {"SQLGATE_MAX_CONNECTIONS_PER_CLIENT", "8"}),
     LIST("header_timeout_ms=1500", "idle_timeout_ms=2500", "write_grace_ms=700",
          "max_conns_per_client=8")},
    {"tokens: file with one token and a newline",
     ENV({"SQLGATE_API_TOKENS_FILE", "@DIR@/tokens_one"}), LIST("tokens=" TOKEN_A)},

    {"password file: trailing LF dropped",
     ONE_CORE({"CORE_DB_HOST", "h"}, {"CORE_DB_PASSWORD_FILE", "@DIR@/pw"}),
     LIST("core.password=" SECRET_FILE)},
    {"password file: trailing CRLF dropped",
     ONE_CORE({"CORE_DB_HOST", "h"}, {"CORE_DB_PASSWORD_FILE", "@DIR@/pw_crlf"}),
     LIST("core.password=" SECRET_FILE)},
    {"password file: no newline",
     ONE_CORE({"CORE_DB_HOST", "h"}, {"CORE_DB_PASSWORD_FILE", "@DIR@/pw_plain"}),
     LIST("core.password=" SECRET_FILE)},
    {"password file: only one newline dropped",
     ONE_CORE({"CORE_DB_HOST", "h"}, {"CORE_DB_PASSWORD_FILE", "@DIR@/pw_two_nl"}),
     LIST("core.password=" SECRET_FILE "\n")},

    {"url: mssql with every part, percent-decoded",
     ONE_CORE({"CORE_DB_URL", "mssql://us%40er:p%40ss%3Aw%2F@db.example.com:1444/my%20db"
                              "?encrypt=require&app_name=my%20app&tds_version=7.4&read_only=true"}),
     LIST("core.driver=freetds", "core.host=db.example.com", "core.port=1444",
          "core.database=my db", "core.user=us@er", "core.password=p@ss:w/", "core.encrypt=require",
          "core.app_name=my app", "core.tds_version=7.4", "core.read_only=true",
          "core.path=(null)")},
    {"url: sqlserver scheme, minimal", ONE_CORE({"CORE_DB_URL", "sqlserver://sql.example.com"}),
     LIST("core.driver=freetds", "core.host=sql.example.com", "core.port=1433", "core.user=(null)",
          "core.password=(null)", "core.database=(null)", "core.encrypt=request",
          "core.app_name=sqlgate:core")},
    {"url: scheme in any case, user without password",
     ONE_CORE({"CORE_DB_URL", "MSSQL://reader@h/db"}),
     LIST("core.user=reader", "core.password=(null)", "core.host=h", "core.database=db")},
    {"url: IPv6 host in brackets", ONE_CORE({"CORE_DB_URL", "mssql://u:p@[2001:db8::1]:1500/db"}),
     LIST("core.host=2001:db8::1", "core.port=1500", "core.database=db")},
    {"url: unencoded @ in the password", ONE_CORE({"CORE_DB_URL", "mssql://u:p@ss@h/db"}),
     LIST("core.password=p@ss", "core.user=u", "core.host=h")},
    {"url: encrypt=true means require", ONE_CORE({"CORE_DB_URL", "mssql://h/?encrypt=true"}),
     LIST("core.encrypt=require", "core.database=(null)")},
    {"url: encrypt=false means request", ONE_CORE({"CORE_DB_URL", "mssql://h?encrypt=false"}),
     LIST("core.encrypt=request")},
    {"url: encrypt=off", ONE_CORE({"CORE_DB_URL", "mssql://h?encrypt=OFF&read_only=no"}),
     LIST("core.encrypt=off", "core.read_only=false")},
    {"url: explicit variables override every URL part",
     ONE_CORE({"CORE_DB_URL", "mssql://uu:" SECRET "@uhost:1444/udb?encrypt=require&app_name=ua"
                              "&tds_version=7.4&read_only=true"},
              {"CORE_DB_HOST", "xhost"}, {"CORE_DB_PORT", "2000"}, {"CORE_DB_NAME", "xdb"},
              {"CORE_DB_USER", "xu"}, {"CORE_DB_PASSWORD", "xpw"}, {"CORE_DB_ENCRYPT", "off"},
              {"CORE_DB_APP_NAME", "xa"}, {"CORE_DB_TDS_VERSION", "7.2"},
              {"CORE_DB_READ_ONLY", "false"}),
     LIST("core.host=xhost", "core.port=2000", "core.database=xdb", "core.user=xu",
          "core.password=xpw", "core.encrypt=off", "core.app_name=xa", "core.tds_version=7.2",
          "core.read_only=false")},
    {"url: URL parts fill what variables leave out",
     ONE_CORE({"CORE_DB_URL", "mssql://uu:pp@uhost:1444/udb"}, {"CORE_DB_NAME", "other"}),
     LIST("core.host=uhost", "core.port=1444", "core.database=other", "core.user=uu",
          "core.password=pp")},
    {"url: PASSWORD_FILE overrides the URL password",
     ONE_CORE({"CORE_DB_URL", "mssql://u:" SECRET "@h/db"}, {"CORE_DB_PASSWORD_FILE", "@DIR@/pw"}),
     LIST("core.password=" SECRET_FILE, "core.user=u")},
    {"url: host without userinfo given by HOST",
     ONE_CORE({"CORE_DB_URL", "mssql:///db"}, {"CORE_DB_HOST", "h"}),
     LIST("core.host=h", "core.database=db")},

    {"ado: Azure portal string",
     ONE_CORE({"CORE_DB_URL",
               "Server=tcp:myserver.database.windows.net,1433;Initial Catalog=mydb;Persist "
               "Security Info=False;User ID=admin1;Password=" SECRET
               ";MultipleActiveResultSets=False;Encrypt=True;TrustServerCertificate=False;"
               "Connection Timeout=30;"}),
     LIST("core.driver=freetds", "core.host=myserver.database.windows.net", "core.port=1433",
          "core.database=mydb", "core.user=admin1", "core.password=" SECRET, "core.encrypt=require",
          "core.connect_timeout_ms=30000")},
    {"ado: synonyms, braces, intent, app name",
     ONE_CORE({"CORE_DB_URL", "data source = h2 , 1500 ; DATABASE=d;uid=u;PWD={p;w}}x};"
                              "Encrypt=no;Application Name=app1;ApplicationIntent=ReadOnly"}),
     LIST("core.host=h2", "core.port=1500", "core.database=d", "core.user=u", "core.password=p;w}x",
          "core.encrypt=request", "core.app_name=app1", "core.read_only=true")},
    {"ado: double-quoted password with doubled quote",
     ONE_CORE({"CORE_DB_URL", "Server=h;Password=\"a;b\"\"c\" ;User Id=u"}),
     LIST("core.password=a;b\"c", "core.user=u", "core.port=1433")},
    {"ado: single-quoted password", ONE_CORE({"CORE_DB_URL", "Server=h;Pwd='x''y;z'"}),
     LIST("core.password=x'y;z")},
    {"ado: Encrypt=Strict", ONE_CORE({"CORE_DB_URL", "Server=h;Encrypt=Strict"}),
     LIST("core.encrypt=require")},
    {"ado: Encrypt=Mandatory", ONE_CORE({"CORE_DB_URL", "Server=h;Encrypt=Mandatory"}),
     LIST("core.encrypt=require")},
    {"ado: Encrypt=Optional", ONE_CORE({"CORE_DB_URL", "Server=h;Encrypt=Optional"}),
     LIST("core.encrypt=request")},
    {"ado: Encrypt=yes (ODBC style string)",
     ONE_CORE({"CORE_DB_URL", "Driver={ODBC Driver 18 for SQL Server};Server=tcp:h,1433;Uid=u;"
                              "Pwd={" SECRET "};Encrypt=yes;TrustServerCertificate=no;"
                              "Connection Timeout=30;"}),
     LIST("core.host=h", "core.user=u", "core.password=" SECRET, "core.encrypt=require")},
    {"ado: ApplicationIntent=ReadWrite, Integrated Security=False ignored",
     ONE_CORE({"CORE_DB_URL", "Server=h;ApplicationIntent=ReadWrite;Integrated Security=False"}),
     LIST("core.read_only=false")},
    {"ado: (local) and default port", ONE_CORE({"CORE_DB_URL", "Server=(local)"}),
     LIST("core.host=localhost", "core.port=1433")},
    {"ado: IPv6 server", ONE_CORE({"CORE_DB_URL", "Server=tcp:[::1],1500"}),
     LIST("core.host=::1", "core.port=1500")},
    {"ado: explicit CONNECT_TIMEOUT_MS beats Connection Timeout",
     ONE_CORE({"CORE_DB_URL", "Server=h;Connect Timeout=30"},
              {"CORE_DB_CONNECT_TIMEOUT_MS", "1234"}),
     LIST("core.connect_timeout_ms=1234")},
    {"ado: explicit variables override parts",
     ONE_CORE({"CORE_DB_URL", "Server=h,1500;Database=d;User Id=u;Password=p;Encrypt=True"},
              {"CORE_DB_PORT", "1600"}, {"CORE_DB_USER", "v"}, {"CORE_DB_ENCRYPT", "off"}),
     LIST("core.port=1600", "core.user=v", "core.password=p", "core.encrypt=off",
          "core.database=d")},

    {"sqlite url: absolute path", ONE_CORE({"CORE_DB_URL", "sqlite:///abs/path.db"}),
     LIST("core.driver=sqlite", "core.path=/abs/path.db", "core.host=(null)")},
    {"sqlite url: memory", ONE_CORE({"CORE_DB_URL", "sqlite::memory:"}),
     LIST("core.driver=sqlite", "core.path=:memory:")},
    {"sqlite url: percent-decoded path", ONE_CORE({"CORE_DB_URL", "SQLite:///tmp/a%20b.db"}),
     LIST("core.path=/tmp/a b.db")},
    {"sqlite url: relative path", ONE_CORE({"CORE_DB_URL", "sqlite:var/rel.db"}),
     LIST("core.path=var/rel.db")},
    {"sqlite url: read_only query", ONE_CORE({"CORE_DB_URL", "sqlite:///x.db?read_only=true"}),
     LIST("core.path=/x.db", "core.read_only=true")},
    {"sqlite url: PATH overrides",
     ONE_CORE({"CORE_DB_URL", "sqlite:///x.db"}, {"CORE_DB_PATH", "y.db"}), LIST("core.path=y.db")},
};

START_TEST(test_ok_rows)
{
    const ok_case *c = &ok_cases[_i];
    lookup_ctx ctx;
    char *errors;
    sg_config *cfg = load_env(&ctx, c->env, &errors);
    ck_assert_msg(cfg != NULL, "[%s] load failed:\n%s", c->name, errors ? errors : "(null)");
    ck_assert_msg(errors == NULL, "[%s] errors not NULL on success", c->name);
    ck_assert_uint_gt(ctx.calls, 0);
    check_expect(cfg, c->name, c->expect);
    sg_config_free(cfg);
}
END_TEST

/* --- Rows: loads that fail ------------------------------------------------------- */

typedef struct err_case {
    const char *name;
    const kv *env;
    size_t n_lines;            /* exact number of error lines */
    const char *const *lines;  /* each must match a line (see line_matches) */
    const char *const *absent; /* strings that must not appear (secrets) */
} err_case;

#define LOCAL ENV
#define ERR_ROW(name, env, n, ...)                                                                 \
    {                                                                                              \
        name, env, n, LIST(__VA_ARGS__), NO_STRINGS                                                \
    }
#define CORE_HOST(...) ONE_CORE({"CORE_DB_HOST", "h"}, __VA_ARGS__)
#define URL_ROW(name, url, n, ...)                                                                 \
    {                                                                                              \
        name, ONE_CORE({"CORE_DB_URL", url}), n, LIST(__VA_ARGS__), LIST(SECRET, "Secret9")        \
    }

static const err_case err_cases[] = {
    /* integers */
    ERR_ROW("int: not a number", CORE_HOST({"CORE_DB_POOL_MAX", "abc"}), 1,
            "CORE_DB_POOL_MAX: must be an integer >= 1 (got \"abc\")"),
    ERR_ROW("int: zero below minimum", CORE_HOST({"CORE_DB_POOL_MAX", "0"}), 1,
            "CORE_DB_POOL_MAX: must be an integer >= 1 (got \"0\")"),
    ERR_ROW("int: above the sanity cap", CORE_HOST({"CORE_DB_POOL_MAX", "1001"}), 1,
            "CORE_DB_POOL_MAX: must be an integer <= 1000 (got \"1001\")"),
    ERR_ROW("int: trailing junk", CORE_HOST({"CORE_DB_POOL_MAX", "10x"}), 1,
            "CORE_DB_POOL_MAX: must be an integer"),
    ERR_ROW("int: leading space", CORE_HOST({"CORE_DB_POOL_MAX", " 10"}), 1,
            "CORE_DB_POOL_MAX: must be an integer"),
    ERR_ROW("int: plus sign", CORE_HOST({"CORE_DB_POOL_MAX", "+5"}), 1,
            "CORE_DB_POOL_MAX: must be an integer"),
    ERR_ROW("int: hex", CORE_HOST({"CORE_DB_POOL_MAX", "0x10"}), 1,
            "CORE_DB_POOL_MAX: must be an integer"),
    ERR_ROW("int: negative", CORE_HOST({"CORE_DB_POOL_MIN", "-1"}), 1,
            "CORE_DB_POOL_MIN: must be an integer >= 0 (got \"-1\")"),
    ERR_ROW("int: overflow", CORE_HOST({"CORE_DB_QUERY_TIMEOUT_MS", "99999999999999999999"}), 1,
            "CORE_DB_QUERY_TIMEOUT_MS: must be an integer >= 1"),
    ERR_ROW("int: int64 max is above the cap",
            CORE_HOST({"CORE_DB_QUERY_TIMEOUT_MS", "9223372036854775807"}), 1,
            "CORE_DB_QUERY_TIMEOUT_MS: must be an integer <= 86400000"),
    ERR_ROW("int: POOL_MIN above POOL_MAX", CORE_HOST({"CORE_DB_POOL_MIN", "11"}), 1,
            "CORE_DB_POOL_MIN: must be <= CORE_DB_POOL_MAX (10)"),
    ERR_ROW("int: POOL_MIN above explicit POOL_MAX",
            CORE_HOST({"CORE_DB_POOL_MIN", "3"}, {"CORE_DB_POOL_MAX", "2"}), 1,
            "CORE_DB_POOL_MIN: must be <= CORE_DB_POOL_MAX (2)"),
    ERR_ROW("int: PORT 0", CORE_HOST({"CORE_DB_PORT", "0"}), 1,
            "CORE_DB_PORT: must be an integer >= 1"),
    ERR_ROW("int: PORT 65536", CORE_HOST({"CORE_DB_PORT", "65536"}), 1,
            "CORE_DB_PORT: must be an integer <= 65535"),
    ERR_ROW("int: SHUTDOWN_DELAY_MS negative", ENV({"SQLGATE_SHUTDOWN_DELAY_MS", "-1"}), 1,
            "SQLGATE_SHUTDOWN_DELAY_MS: must be an integer >= 0"),
    ERR_ROW("int: SHUTDOWN_DELAY_MS above a day", ENV({"SQLGATE_SHUTDOWN_DELAY_MS", "86400001"}), 1,
            "SQLGATE_SHUTDOWN_DELAY_MS: must be an integer <= 86400000"),
    ERR_ROW("int: DRAIN_TIMEOUT_MS 0", ENV({"SQLGATE_DRAIN_TIMEOUT_MS", "0"}), 1,
            "SQLGATE_DRAIN_TIMEOUT_MS: must be an integer >= 1"),
    ERR_ROW("int: MAX_BODY_BYTES 0", ENV({"SQLGATE_MAX_BODY_BYTES", "0"}), 1,
            "SQLGATE_MAX_BODY_BYTES: must be an integer >= 1"),
    ERR_ROW("int: MAX_BODY_BYTES above 1 GiB", ENV({"SQLGATE_MAX_BODY_BYTES", "1073741825"}), 1,
            "SQLGATE_MAX_BODY_BYTES: must be an integer <= 1073741824"),
    ERR_ROW("int: MAX_ROWS 0", ENV({"SQLGATE_MAX_ROWS", "0"}), 1,
            "SQLGATE_MAX_ROWS: must be an integer >= 1"),
    ERR_ROW("int: MAX_ROWS words", ENV({"SQLGATE_MAX_ROWS", "many"}), 1,
            "SQLGATE_MAX_ROWS: must be an integer >= 1 (got \"many\")"),
    ERR_ROW("echo: control characters are escaped", CORE_HOST({"CORE_DB_POOL_MAX", "1\n2"}), 1,
            "CORE_DB_POOL_MAX: must be an integer >= 1 (got \"1\\x0a2\")"),
    ERR_ROW("echo: long values are cut", CORE_HOST({"CORE_DB_POOL_MAX", "@REP:9:300@"}), 1,
            "CORE_DB_POOL_MAX: must be an integer >= 1 (got \"@REP:9:64@...\")"),

    /* booleans and words */
    ERR_ROW("bool: CRITICAL maybe", CORE_HOST({"CORE_DB_CRITICAL", "maybe"}), 1,
            "CORE_DB_CRITICAL: must be true or false*(got \"maybe\")"),
    ERR_ROW("bool: READ_ONLY 2", CORE_HOST({"CORE_DB_READ_ONLY", "2"}), 1,
            "CORE_DB_READ_ONLY: must be true or false"),
    ERR_ROW("bool: ALLOW_ANONYMOUS on", ENV({"SQLGATE_ALLOW_ANONYMOUS", "on"}), 1,
            "SQLGATE_ALLOW_ANONYMOUS: must be true or false"),
    ERR_ROW("word: ENCRYPT", CORE_HOST({"CORE_DB_ENCRYPT", "maybe"}), 1,
            "CORE_DB_ENCRYPT: must be off, request or require (got \"maybe\")"),
    ERR_ROW("word: TDS_VERSION", CORE_HOST({"CORE_DB_TDS_VERSION", "8.0"}), 1,
            "CORE_DB_TDS_VERSION: must be auto, 7.1, 7.2, 7.3 or 7.4 (got \"8.0\")"),
    ERR_ROW("word: DRIVER", CORE_HOST({"CORE_DB_DRIVER", "postgres"}), 1,
            "CORE_DB_DRIVER: must be freetds or sqlite (got \"postgres\")"),
    ERR_ROW("word: LOG_LEVEL", ENV({"SQLGATE_LOG_LEVEL", "trace"}), 1,
            "SQLGATE_LOG_LEVEL: must be debug, info, warn or error (got \"trace\")"),
    ERR_ROW("word: LOG_FORMAT", ENV({"SQLGATE_LOG_FORMAT", "xml"}), 1,
            "SQLGATE_LOG_FORMAT: must be json or text (got \"xml\")"),

    /* SQLGATE_DATABASES and the default */
    ERR_ROW("names: upper case", ENV({"SQLGATE_DATABASES", "Core"}), 1,
            "SQLGATE_DATABASES: \"Core\" is not a valid database name"),
    ERR_ROW("names: digit first", ENV({"SQLGATE_DATABASES", "1abc"}), 1,
            "SQLGATE_DATABASES: \"1abc\" is not a valid database name"),
    ERR_ROW("names: dash", ENV({"SQLGATE_DATABASES", "a-b"}), 1,
            "SQLGATE_DATABASES: \"a-b\" is not a valid database name"),
    ERR_ROW("names: 64 characters", ENV({"SQLGATE_DATABASES", "@REP:a:64@"}), 1,
            "SQLGATE_DATABASES: \"@REP:a:64@\" is not a valid database name"),
    ERR_ROW("names: reserved", ENV({"SQLGATE_DATABASES", "default,live,ready"}), 3,
            "SQLGATE_DATABASES: \"default\" is a reserved name",
            "SQLGATE_DATABASES: \"live\" is a reserved name",
            "SQLGATE_DATABASES: \"ready\" is a reserved name"),
    ERR_ROW("names: duplicate", ENV({"SQLGATE_DATABASES", "core, core"}, {"CORE_DB_PATH", "x"}), 1,
            "SQLGATE_DATABASES: \"core\" is listed more than once"),
    ERR_ROW("names: empty items",
            ENV({"SQLGATE_DATABASES", "core,,app,"}, {"CORE_DB_PATH", "x"}, {"APP_DB_PATH", "y"}),
            2, "SQLGATE_DATABASES: item 2 is empty", "SQLGATE_DATABASES: item 4 is empty"),
    ERR_ROW("names: only blanks", ENV({"SQLGATE_DATABASES", " , "}), 2,
            "SQLGATE_DATABASES: item 1 is empty", "SQLGATE_DATABASES: item 2 is empty"),
    ERR_ROW("names: only spaces", ENV({"SQLGATE_DATABASES", "   "}), 1,
            "SQLGATE_DATABASES: item 1 is empty"),
    ERR_ROW(
        "default: unknown name",
        ENV({"SQLGATE_DATABASES", "core,app"}, {"CORE_DB_PATH", "x"}, {"APP_DB_PATH", "y"},
            {"SQLGATE_DEFAULT_DATABASE", "nope"}),
        1,
        "SQLGATE_DEFAULT_DATABASE: \"nope\" is not a configured database (configured: core, app)"),
    ERR_ROW("default: the alias itself in named mode",
            ONE_CORE({"CORE_DB_PATH", "x"}, {"SQLGATE_DEFAULT_DATABASE", "default"}), 1,
            "SQLGATE_DEFAULT_DATABASE: \"default\" is not a configured database"),
    ERR_ROW(
        "default: unknown in embedded mode", ENV({"SQLGATE_DEFAULT_DATABASE", "main"}), 1,
        "SQLGATE_DEFAULT_DATABASE: \"main\" is not a configured database (configured: core, app)"),

    /* drivers and their variables */
    ERR_ROW("driver: nothing given", ENV({"SQLGATE_DATABASES", "core"}), 1,
            "CORE_DB_HOST: no database given*CORE_DB_PATH"),
    ERR_ROW("driver: legacy with only DB_NAME", ENV({"DB_NAME", "x"}), 1,
            "DB_HOST: no database given"),
    ERR_ROW("driver: HOST and PATH", ONE_CORE({"CORE_DB_HOST", "h"}, {"CORE_DB_PATH", "p"}), 1,
            "CORE_DB_PATH: cannot be combined with CORE_DB_HOST"),
    ERR_ROW("driver: freetds with PATH",
            ONE_CORE({"CORE_DB_DRIVER", "freetds"}, {"CORE_DB_HOST", "h"}, {"CORE_DB_PATH", "p"}),
            1, "CORE_DB_PATH: is for SQLite"),
    ERR_ROW("driver: sqlite with HOST",
            ONE_CORE({"CORE_DB_DRIVER", "sqlite"}, {"CORE_DB_HOST", "h"}, {"CORE_DB_PATH", "p"}), 1,
            "CORE_DB_HOST: is for SQL Server"),
    ERR_ROW("driver: SQL Server URL and PATH",
            ONE_CORE({"CORE_DB_URL", "mssql://h/db"}, {"CORE_DB_PATH", "p"}), 1,
            "CORE_DB_PATH: cannot be combined with a SQL Server CORE_DB_URL"),
    ERR_ROW("driver: SQLite URL and HOST",
            ONE_CORE({"CORE_DB_URL", "sqlite:///x.db"}, {"CORE_DB_HOST", "h"}), 1,
            "CORE_DB_HOST: cannot be combined with a SQLite CORE_DB_URL"),
    ERR_ROW("driver: sqlite with a SQL Server URL",
            ONE_CORE({"CORE_DB_DRIVER", "sqlite"}, {"CORE_DB_URL", "mssql://h/db"}), 2,
            "CORE_DB_URL: is a SQL Server URL", "CORE_DB_PATH: is required for the sqlite driver"),
    ERR_ROW("driver: freetds with a SQLite URL",
            ONE_CORE({"CORE_DB_DRIVER", "freetds"}, {"CORE_DB_URL", "sqlite:///x.db"}), 2,
            "CORE_DB_URL: is a SQLite URL", "CORE_DB_HOST: is required for the freetds driver"),
    ERR_ROW("driver: freetds without host", ONE_CORE({"CORE_DB_DRIVER", "freetds"}), 1,
            "CORE_DB_HOST: is required for the freetds driver"),
    ERR_ROW("driver: sqlite without path", ONE_CORE({"CORE_DB_DRIVER", "sqlite"}), 1,
            "CORE_DB_PATH: is required for the sqlite driver"),
    ERR_ROW("driver: URL without a host", ONE_CORE({"CORE_DB_URL", "mssql://u:p@/db"}), 1,
            "CORE_DB_HOST: is required for the freetds driver"),
    ERR_ROW("sqlite: read-only :memory:",
            ONE_CORE({"CORE_DB_PATH", ":memory:"}, {"CORE_DB_READ_ONLY", "true"}), 1,
            "CORE_DB_READ_ONLY: a read-only :memory: database"),
    ERR_ROW("sqlite: read-only :memory: from the URL",
            ONE_CORE({"CORE_DB_URL", "sqlite::memory:?read_only=1"}), 1,
            "CORE_DB_URL: a read-only :memory: database"),
    ERR_ROW("embedded: read-only :memory: on app",
            ENV({"APP_DB_PATH", ":memory:"}, {"APP_DB_READ_ONLY", "yes"}), 1,
            "APP_DB_READ_ONLY: a read-only :memory: database"),
    ERR_ROW("host: spaces", ONE_CORE({"CORE_DB_HOST", "bad host"}), 1,
            "CORE_DB_HOST: is not a valid host name or address (got \"bad host\")"),
    ERR_ROW("host: named instance", ONE_CORE({"CORE_DB_HOST", "srv\\inst"}), 1,
            "CORE_DB_HOST: named instances*CORE_DB_PORT"),
    ERR_ROW("host: bad IPv6", ONE_CORE({"CORE_DB_HOST", "[zz::1]"}), 1,
            "CORE_DB_HOST: is not a valid host name or address"),
    ERR_ROW("app name: too long", CORE_HOST({"CORE_DB_APP_NAME", "@REP:n:129@"}), 1,
            "CORE_DB_APP_NAME: the application name must be at most 128 bytes"),
    ERR_ROW("encrypt: strict is not for FreeTDS 1.3", CORE_HOST({"CORE_DB_ENCRYPT", "strict"}), 1,
            "CORE_DB_ENCRYPT: must be off, request or require (got \"strict\"): FreeTDS 1.3 "
            "cannot do strict (TDS 8.0); require encrypts the whole session"),
    ERR_ROW("ca file: missing", CORE_HOST({"CORE_DB_CA_FILE", "@DIR@/nope.pem"}), 1,
            "CORE_DB_CA_FILE: cannot read \"@DIR@/nope.pem\": No such file or directory"),
    ERR_ROW("ca file: a directory", CORE_HOST({"CORE_DB_CA_FILE", "@DIR@/subdir"}), 1,
            "CORE_DB_CA_FILE: \"@DIR@/subdir\" is not a regular file"),

    /* passwords */
    {"password: both PASSWORD and PASSWORD_FILE",
     CORE_HOST({"CORE_DB_PASSWORD", SECRET}, {"CORE_DB_PASSWORD_FILE", "@DIR@/pw"}), 1,
     LIST("CORE_DB_PASSWORD_FILE: cannot be combined with CORE_DB_PASSWORD"),
     LIST(SECRET, SECRET_FILE)},
    {"password file: missing", CORE_HOST({"CORE_DB_PASSWORD_FILE", "@DIR@/missing"}), 1,
     LIST("CORE_DB_PASSWORD_FILE: cannot read \"@DIR@/missing\": No such file or directory"),
     NO_STRINGS},
    {"password file: a directory", CORE_HOST({"CORE_DB_PASSWORD_FILE", "@DIR@/subdir"}), 1,
     LIST("CORE_DB_PASSWORD_FILE: \"@DIR@/subdir\" is not a regular file"), NO_STRINGS},
    {"password file: empty", CORE_HOST({"CORE_DB_PASSWORD_FILE", "@DIR@/pw_empty"}), 1,
     LIST("CORE_DB_PASSWORD_FILE: file \"@DIR@/pw_empty\" is empty"), NO_STRINGS},
    {"password file: only a newline", CORE_HOST({"CORE_DB_PASSWORD_FILE", "@DIR@/pw_nl_only"}), 1,
     LIST("CORE_DB_PASSWORD_FILE: file \"@DIR@/pw_nl_only\" is empty"), NO_STRINGS},
    {"password file: NUL byte", CORE_HOST({"CORE_DB_PASSWORD_FILE", "@DIR@/pw_nul"}), 1,
     LIST("CORE_DB_PASSWORD_FILE: file \"@DIR@/pw_nul\" contains a NUL byte"),
     LIST("nul-left", "nul-right")},

    /* scoped tokens and read-only logins */
    {"scoped tokens: a bad line names file and line, not the token",
     ONE_CORE({"CORE_DB_PATH", "c.db"}, {"SQLGATE_TOKENS_FILE", "@DIR@/scoped_bad"}), 1,
     LIST("SQLGATE_TOKENS_FILE: @DIR@/scoped_bad:2: word 3 is not a scope"), LIST(SCOPED_B)},
    {"scoped tokens: missing file", ENV({"SQLGATE_TOKENS_FILE", "@DIR@/missing"}), 1,
     LIST("SQLGATE_TOKENS_FILE: cannot read \"@DIR@/missing\""), NO_STRINGS},
    {"scoped tokens: db= names an unknown database",
     ENV({"SQLGATE_DATABASES", "app,other"}, {"APP_DB_PATH", "a.db"}, {"OTHER_DB_PATH", "o.db"},
         {"SQLGATE_TOKENS_FILE", "@DIR@/scoped"}),
     2,
     LIST("SQLGATE_TOKENS_FILE: @DIR@/scoped:1: db= names \"core\", which is not a configured",
          "SQLGATE_TOKENS_FILE: @DIR@/scoped:4: db= names \"default\""),
     LIST(SCOPED_A)},
    {"scoped tokens: the same token as an API token",
     ONE_CORE({"CORE_DB_PATH", "c.db"}, {"SQLGATE_API_TOKENS", SCOPED_A},
              {"SQLGATE_TOKENS_FILE", "@DIR@/scoped"}),
     1, LIST("SQLGATE_TOKENS_FILE: @DIR@/scoped:1: the same token is given earlier"),
     LIST(SCOPED_A)},
    {"access words: wrong values",
     ENV({"SQLGATE_METRICS_ACCESS", "closed"}, {"SQLGATE_HEALTH_DETAILS", "some"}), 2,
     LIST("SQLGATE_METRICS_ACCESS: must be open or token", "SQLGATE_HEALTH_DETAILS: must be"),
     NO_STRINGS},
    {"readonly login: not for sqlite",
     ONE_CORE({"CORE_DB_PATH", "x.db"}, {"CORE_DB_READONLY_USER", "r"}), 1,
     LIST("CORE_DB_READONLY_USER: is for SQL Server"), NO_STRINGS},
    {"readonly login: password without user", CORE_HOST({"CORE_DB_READONLY_PASSWORD", SECRET}), 1,
     LIST("CORE_DB_READONLY_PASSWORD: is set without CORE_DB_READONLY_USER"), LIST(SECRET)},
    {"readonly login: password and file",
     CORE_HOST({"CORE_DB_READONLY_USER", "r"}, {"CORE_DB_READONLY_PASSWORD", SECRET},
               {"CORE_DB_READONLY_PASSWORD_FILE", "@DIR@/pw"}),
     1, LIST("CORE_DB_READONLY_PASSWORD_FILE: cannot be combined with CORE_DB_READONLY_PASSWORD"),
     LIST(SECRET, SECRET_FILE)},

    /* tokens and the anonymous rule */
    {"tokens: both inline and file",
     ENV({"SQLGATE_API_TOKENS", TOKEN_A}, {"SQLGATE_API_TOKENS_FILE", "@DIR@/tokens"}), 1,
     LIST("SQLGATE_API_TOKENS_FILE: cannot be combined with SQLGATE_API_TOKENS"),
     LIST(TOKEN_A, TOKEN_B)},
    {"tokens: empty item", ENV({"SQLGATE_API_TOKENS", TOKEN_A ",," TOKEN_B}), 1,
     LIST("SQLGATE_API_TOKENS: token 2 is empty"), LIST(TOKEN_A, TOKEN_B)},
    {"tokens: trailing comma", ENV({"SQLGATE_API_TOKENS", TOKEN_A ","}), 1,
     LIST("SQLGATE_API_TOKENS: token 2 is empty"), LIST(TOKEN_A)},
    {"tokens: only a comma", ENV({"SQLGATE_API_TOKENS", " , "}), 2,
     LIST("SQLGATE_API_TOKENS: token 1 is empty", "SQLGATE_API_TOKENS: token 2 is empty"),
     NO_STRINGS},
    {"tokens: inner space", ENV({"SQLGATE_API_TOKENS", TOKEN_A "," TOKEN_B " x"}), 1,
     LIST("SQLGATE_API_TOKENS: token 2 contains a space"), LIST(TOKEN_A, TOKEN_B)},
    {"tokens: only blanks", ENV({"SQLGATE_API_TOKENS", "   "}), 1,
     LIST("SQLGATE_API_TOKENS: contains no tokens"), NO_STRINGS},
    {"tokens: one character", ENV({"SQLGATE_API_TOKENS", "a"}), 1,
     LIST("SQLGATE_API_TOKENS: token 1 is shorter than 16 characters"), NO_STRINGS},
    {"tokens: 15 characters", ENV({"SQLGATE_API_TOKENS", TOKEN_A ",abcdefghijk-015"}), 1,
     LIST("SQLGATE_API_TOKENS: token 2 is shorter than 16 characters"),
     LIST(TOKEN_A, "abcdefghijk-015")},
    {"tokens: the old .env.example placeholder",
     ENV({"SQLGATE_API_TOKENS", "change-me-to-a-long-random-token"}), 1,
     LIST("SQLGATE_API_TOKENS: token 1 is a placeholder"), LIST("change-me-to")},
    {"tokens: the .env.example placeholder",
     ENV({"SQLGATE_API_TOKENS", "REPLACE-ME-with-openssl-rand-hex-32"}), 1,
     LIST("SQLGATE_API_TOKENS: token 1 is a placeholder"), LIST("REPLACE-ME-with")},
    {"tokens file: short token", ENV({"SQLGATE_API_TOKENS_FILE", "@DIR@/tokens_short"}), 1,
     LIST("SQLGATE_API_TOKENS_FILE: token 2 is shorter than 16 characters"),
     LIST(TOKEN_A, "shorty")},
    {"allowed hosts: bad entries",
     ENV({"SQLGATE_ALLOWED_HOSTS", "ok.example,bad host,x:99999,[nope]:80,http://x"}), 4,
     LIST("SQLGATE_ALLOWED_HOSTS: \"bad host\" is not a host name",
          "SQLGATE_ALLOWED_HOSTS: \"x:99999\" is not",
          "SQLGATE_ALLOWED_HOSTS: \"[nope]:80\" is not",
          "SQLGATE_ALLOWED_HOSTS: \"http://x\" is not"),
     NO_STRINGS},
    {"tokens file: missing", ENV({"SQLGATE_API_TOKENS_FILE", "@DIR@/missing"}), 1,
     LIST("SQLGATE_API_TOKENS_FILE: cannot read \"@DIR@/missing\""), NO_STRINGS},
    {"tokens file: blank", ENV({"SQLGATE_API_TOKENS_FILE", "@DIR@/tokens_blank"}), 1,
     LIST("SQLGATE_API_TOKENS_FILE: contains no tokens"), NO_STRINGS},
    {"tokens file: empty item", ENV({"SQLGATE_API_TOKENS_FILE", "@DIR@/tokens_empty_item"}), 1,
     LIST("SQLGATE_API_TOKENS_FILE: token 2 is empty"), LIST(TOKEN_A, TOKEN_B)},
    {"tokens file: one per line is not the format",
     ENV({"SQLGATE_API_TOKENS_FILE", "@DIR@/tokens_lines"}), 1,
     LIST("SQLGATE_API_TOKENS_FILE: token 1 contains a space, control"), LIST(TOKEN_A, TOKEN_B)},
    ERR_ROW("anonymous: public listen without tokens", ENV({"SQLGATE_LISTEN", "0.0.0.0:8080"}), 1,
            "SQLGATE_LISTEN: 0.0.0.0 is not a loopback address and no API tokens*"
            "SQLGATE_ALLOW_ANONYMOUS"),
    ERR_ROW("anonymous: explicitly not allowed",
            ENV({"SQLGATE_LISTEN", "[::]:8080"}, {"SQLGATE_ALLOW_ANONYMOUS", "false"}), 1,
            "SQLGATE_LISTEN: :: is not a loopback address"),
    ERR_ROW("anonymous: host names other than localhost", ENV({"SQLGATE_LISTEN", "myhost:8080"}), 1,
            "SQLGATE_LISTEN: a host name is not resolved"),
    ERR_ROW("anonymous: a bad ALLOW_ANONYMOUS is reported alone",
            ENV({"SQLGATE_LISTEN", "0.0.0.0:8080"}, {"SQLGATE_ALLOW_ANONYMOUS", "sure"}), 1,
            "SQLGATE_ALLOW_ANONYMOUS: must be true or false"),
    {"anonymous: bad tokens are reported alone",
     ENV({"SQLGATE_LISTEN", "0.0.0.0:8080"}, {"SQLGATE_API_TOKENS", ","}), 2,
     LIST("SQLGATE_API_TOKENS: token 1 is empty", "SQLGATE_API_TOKENS: token 2 is empty"),
     NO_STRINGS},

    /* listen syntax */
    ERR_ROW("listen: no port", ENV({"SQLGATE_LISTEN", "8080"}), 1,
            "SQLGATE_LISTEN: must be host:port*(got \"8080\")"),
    ERR_ROW("listen: IPv6 without brackets", ENV({"SQLGATE_LISTEN", "::1:8080"}), 1,
            "SQLGATE_LISTEN: an IPv6 address goes in brackets"),
    ERR_ROW("listen: bracket without port", ENV({"SQLGATE_LISTEN", "[::1]8080"}), 1,
            "SQLGATE_LISTEN: must be host:port or [ipv6]:port"),
    ERR_ROW("listen: port too large", ENV({"SQLGATE_LISTEN", "127.0.0.1:65536"}), 1,
            "SQLGATE_LISTEN: the port must be an integer from 0 to 65535"),
    ERR_ROW("listen: empty port", ENV({"SQLGATE_LISTEN", "127.0.0.1:"}), 1,
            "SQLGATE_LISTEN: the port must be an integer"),
    ERR_ROW("listen: port words", ENV({"SQLGATE_LISTEN", "127.0.0.1:http"}), 1,
            "SQLGATE_LISTEN: the port must be an integer"),
    ERR_ROW("listen: host missing", ENV({"SQLGATE_LISTEN", ":8080"}), 1,
            "SQLGATE_LISTEN: the host is missing"),
    ERR_ROW("listen: IPv4 in brackets", ENV({"SQLGATE_LISTEN", "[1.2.3.4]:80"}), 1,
            "SQLGATE_LISTEN: the host is not a valid name or address"),
    ERR_ROW("listen: junk host", ENV({"SQLGATE_LISTEN", "bad host!:80"}), 1,
            "SQLGATE_LISTEN: the host is not a valid name or address"),
    /* A start would have to resolve it: refused by the loader, so by
     * --check-config and a start alike. */
    ERR_ROW("listen: host name",
            ENV({"SQLGATE_LISTEN", "api.internal:8080"}, {"SQLGATE_API_TOKENS", TOKEN_A}), 1,
            "SQLGATE_LISTEN: a host name is not resolved"),

    /* TLS */
    ERR_ROW("tls: cert without key", ENV({"SQLGATE_TLS_CERT_FILE", "@DIR@/cert.pem"}), 1,
            "SQLGATE_TLS_KEY_FILE: must be set together with SQLGATE_TLS_CERT_FILE"),
    ERR_ROW("tls: key without cert", ENV({"SQLGATE_TLS_KEY_FILE", "@DIR@/key.pem"}), 1,
            "SQLGATE_TLS_CERT_FILE: must be set together with SQLGATE_TLS_KEY_FILE"),
    ERR_ROW(
        "tls: unreadable files",
        ENV({"SQLGATE_TLS_CERT_FILE", "@DIR@/nocert"}, {"SQLGATE_TLS_KEY_FILE", "@DIR@/subdir"}), 2,
        "SQLGATE_TLS_CERT_FILE: cannot read \"@DIR@/nocert\"",
        "SQLGATE_TLS_KEY_FILE: \"@DIR@/subdir\" is not a regular file"),

    /* mssql URLs: the URL (and its password) is never echoed */
    URL_ROW("url: unknown scheme", "postgres://u:" SECRET "@h/db", 1,
            "CORE_DB_URL: unknown URL scheme"),
    URL_ROW("url: not a URL", "just-" SECRET, 1, "CORE_DB_URL: not a URL"),
    URL_ROW("url: port out of range", "mssql://u:" SECRET "@h:99999/db", 1,
            "CORE_DB_URL: the port must be an integer from 1 to 65535"),
    URL_ROW("url: unknown query key", "mssql://u:" SECRET "@h/db?encrypt=require&foo=1", 1,
            "CORE_DB_URL: unknown query parameter \"foo\""),
    URL_ROW("url: query key without value", "mssql://u:" SECRET "@h/db?novalue", 1,
            "CORE_DB_URL: query parameter \"novalue\" has no value"),
    URL_ROW("url: bad encrypt", "mssql://u:" SECRET "@h/db?encrypt=maybe", 1,
            "CORE_DB_URL: encrypt must be off, request or require"),
    URL_ROW("url: bad tds_version", "mssql://u:" SECRET "@h/db?tds_version=9", 1,
            "CORE_DB_URL: tds_version must be"),
    URL_ROW("url: bad read_only", "mssql://u:" SECRET "@h/db?read_only=perhaps", 1,
            "CORE_DB_URL: read_only must be true or false"),
    URL_ROW("url: bad percent-encoding in the password", "mssql://u:Super%zzSecret9@h/db", 1,
            "CORE_DB_URL: bad percent-encoding in the password"),
    URL_ROW("url: %00 in the user", "mssql://a%00b:" SECRET "@h/db", 1,
            "CORE_DB_URL: bad percent-encoding in the user name"),
    URL_ROW("url: truncated escape in the database", "mssql://u:" SECRET "@h/db%2", 1,
            "CORE_DB_URL: bad percent-encoding in the database name"),
    URL_ROW("url: unterminated bracket", "mssql://u:" SECRET "@[::1/db", 1,
            "CORE_DB_URL: unterminated '['"),
    URL_ROW("url: brackets around a non-IPv6", "mssql://u:" SECRET "@[nothex]:1/db", 1,
            "CORE_DB_URL: the host in brackets is not an IPv6 address"),
    URL_ROW("url: text after the IPv6 address", "mssql://u:" SECRET "@[::1]x/db", 1,
            "CORE_DB_URL: unexpected text after the IPv6 address"),
    URL_ROW("url: '#' in the password", "mssql://u:" SECRET "#x@h/db", 2,
            "CORE_DB_URL: the port must be an integer", "CORE_DB_URL: unexpected '#'"),
    URL_ROW("url: '/' in the password", "mssql://u:Super/Secret9@h/db", 1,
            "CORE_DB_URL: the port must be an integer"),
    URL_ROW("url: bad host", "mssql://u:" SECRET "@bad_host!/db", 1,
            "CORE_DB_URL: the host is not a valid name or address"),
    URL_ROW("url: sqlite with a host", "sqlite://" SECRET "/x.db", 1,
            "CORE_DB_URL: a sqlite URL takes no host"),
    URL_ROW("url: sqlite without a path", "sqlite:///", 1,
            "CORE_DB_URL: the sqlite URL has no path"),
    URL_ROW("url: sqlite unknown query key", "sqlite:///x.db?mode=ro", 1,
            "CORE_DB_URL: unknown query parameter \"mode\""),
    URL_ROW("url: sqlite bad escape", "sqlite:///x%4.db", 1,
            "CORE_DB_URL: bad percent-encoding in the path"),

    /* ADO.NET strings */
    URL_ROW("ado: unknown key", "Server=h;Foo Bar=1;Password=" SECRET, 1,
            "CORE_DB_URL: unknown key \"Foo Bar\""),
    {"ado: an unknown key right after an unquoted password is not named",
     ONE_CORE({"CORE_DB_URL", "Server=h;Password=" SECRET ";Foo Bar=1"}), 1,
     LIST("CORE_DB_URL: unknown key right after the password"), LIST(SECRET, "Foo Bar")},
    URL_ROW("ado: after a quoted password keys are named again",
            "Server=h;Password='" SECRET "';Foo Bar=1", 1, "CORE_DB_URL: unknown key \"Foo Bar\""),
    URL_ROW("ado: unknown pool key", "Server=h;Max Pool Size=5", 1,
            "CORE_DB_URL: unknown key \"Max Pool Size\""),
    URL_ROW("ado: password spilling into a key", "Server=h;Password=Super;Secret9=x", 1,
            "CORE_DB_URL: unknown key right after the password"),
    URL_ROW("ado: password spilling into an entry", "Server=h;Password=Super;Secret9", 1,
            "CORE_DB_URL: text after the password is not Key=Value"),
    URL_ROW("ado: entry without '='", "Server=h;Secret9;Database=d", 1,
            "CORE_DB_URL: an entry is not Key=Value"),
    URL_ROW("ado: unterminated quote", "Server=h;Password=\"" SECRET, 1,
            "CORE_DB_URL: the value of \"Password\" has no closing quote"),
    URL_ROW("ado: unterminated brace", "Server=h;Pwd={" SECRET, 1,
            "CORE_DB_URL: the value of \"Pwd\" has no closing quote"),
    URL_ROW("ado: text after a quoted value", "Server=h;Password='" SECRET "'x", 1,
            "CORE_DB_URL: unexpected text after the quoted value of \"Password\""),
    URL_ROW("ado: named pipes", "Server=np:h;Password=" SECRET, 1,
            "CORE_DB_URL: only TCP servers are supported"),
    URL_ROW("ado: named instance", "Server=h\\SQLEXPRESS;Password=" SECRET, 1,
            "CORE_DB_URL: named instances"),
    URL_ROW("ado: bad port", "Server=h,99999;Password=" SECRET, 1,
            "CORE_DB_URL: the port after ',' in Server"),
    URL_ROW("ado: bad server", "Server=bad host!;Password=" SECRET, 1,
            "CORE_DB_URL: Server is not a valid host name or address"),
    URL_ROW("ado: bad Encrypt", "Server=h;Encrypt=maybe;Password=" SECRET, 1,
            "CORE_DB_URL: Encrypt must be True, False, Strict, Mandatory or Optional"),
    URL_ROW("ado: bad ApplicationIntent", "Server=h;ApplicationIntent=Write", 1,
            "CORE_DB_URL: ApplicationIntent must be ReadOnly or ReadWrite"),
    URL_ROW("ado: zero timeout", "Server=h;Connection Timeout=0", 1,
            "CORE_DB_URL: Connection Timeout must be a number of seconds"),
    URL_ROW("ado: integrated security", "Server=h;Integrated Security=SSPI", 1,
            "CORE_DB_URL: integrated (Windows) authentication is not supported"),
    URL_ROW("ado: entry without a key", "Server=h;=x", 1, "CORE_DB_URL: an entry has no key"),
    URL_ROW("ado: no server", "Database=d;Password=" SECRET, 1,
            "CORE_DB_HOST: is required for the freetds driver"),
    URL_ROW("ado: several problems at once",
            "Server=h,0;Encrypt=maybe;Nope=1;Password=" SECRET ";Connection Timeout=x", 4,
            "CORE_DB_URL: the port after ','", "CORE_DB_URL: Encrypt must be",
            "CORE_DB_URL: unknown key \"Nope\"", "CORE_DB_URL: Connection Timeout must be"),

    /* one pass reports everything; secrets stay out */
    {"many: every problem at once",
     ENV({"SQLGATE_DATABASES", "core,app,Bad,core"}, {"CORE_DB_POOL_MAX", "abc"},
         {"CORE_DB_HOST", "h"}, {"CORE_DB_PASSWORD", SECRET}, {"APP_DB_PORT", "0"},
         {"APP_DB_HOST", "h2"}, {"APP_DB_QUERY_TIMEOUT_MS", "0"}, {"SQLGATE_LISTEN", "x"},
         {"SQLGATE_LOG_LEVEL", "loud"}, {"SQLGATE_API_TOKENS", TOKEN_A ",,"},
         {"SQLGATE_TLS_KEY_FILE", "@DIR@/key.pem"}, {"SQLGATE_DEFAULT_DATABASE", "zzz"}),
     11,
     LIST("SQLGATE_DATABASES: \"Bad\" is not a valid database name",
          "SQLGATE_DATABASES: \"core\" is listed more than once",
          "CORE_DB_POOL_MAX: must be an integer >= 1 (got \"abc\")",
          "APP_DB_PORT: must be an integer >= 1", "APP_DB_QUERY_TIMEOUT_MS: must be an integer",
          "SQLGATE_LISTEN: must be host:port", "SQLGATE_LOG_LEVEL: must be debug",
          "SQLGATE_API_TOKENS: token 2 is empty", "SQLGATE_API_TOKENS: token 3 is empty",
          "SQLGATE_TLS_CERT_FILE: must be set together",
          "SQLGATE_DEFAULT_DATABASE: \"zzz\" is not a configured database"),
     LIST(SECRET, TOKEN_A)},
    {"many: legacy errors name DB_ variables",
     ENV({"DB_HOST", "h"}, {"DB_PORT", "x"}, {"DB_PASSWORD", SECRET}, {"DB_ENCRYPT", "yes"},
         {"DB_POOL_MIN", "20"}),
     3,
     LIST("DB_PORT: must be an integer", "DB_ENCRYPT: must be off, request or require",
          "DB_POOL_MIN: must be <= DB_POOL_MAX"),
     LIST(SECRET)},
    {"many: both embedded databases",
     ENV({"CORE_DB_POOL_MAX", "x"}, {"APP_DB_POOL_MAX", "y"}, {"APP_DB_PASSWORD", SECRET}), 2,
     LIST("CORE_DB_POOL_MAX: must be", "APP_DB_POOL_MAX: must be"), LIST(SECRET)},
};

START_TEST(test_err_rows)
{
    const err_case *c = &err_cases[_i];
    lookup_ctx ctx;
    char *errors;
    char pat[VAL_MAX];
    sg_config *cfg = load_env(&ctx, c->env, &errors);
    ck_assert_msg(cfg == NULL, "[%s] load succeeded", c->name);
    ck_assert_msg(errors != NULL, "[%s] no error text", c->name);
    check_error_format(c->name, errors);
    for (size_t i = 0; c->lines[i] != NULL; i++) {
        expand(c->lines[i], pat, sizeof pat);
        ck_assert_msg(has_line(errors, pat), "[%s] no line matching\n  %s\nin:\n%s", c->name, pat,
                      errors);
    }
    ck_assert_msg(count_lines(errors) == c->n_lines, "[%s] want %zu lines, got:\n%s", c->name,
                  c->n_lines, errors);
    for (size_t i = 0; c->absent[i] != NULL; i++)
        ck_assert_msg(strstr(errors, c->absent[i]) == NULL, "[%s] secret \"%s\" leaked:\n%s",
                      c->name, c->absent[i], errors);
    free(errors);
}
END_TEST

/* Every *_MS per database: >= 1 and <= one day, named in the error. */
static const char *const ms_suffixes[] = {
    "ACQUIRE_TIMEOUT_MS", "CONNECT_TIMEOUT_MS", "QUERY_TIMEOUT_MS",   "IDLE_TIMEOUT_MS",
    "MAX_LIFETIME_MS",    "RETRY_MAX_MS",       "HEALTH_INTERVAL_MS", "HEALTH_TIMEOUT_MS",
};

START_TEST(test_ms_bounds)
{
    static const char *const bad[] = {"0", "86400001", "-5", "1.5", "1e3"};
    char var[64], want[128];
    snprintf(var, sizeof var, "APP_DB_%s", ms_suffixes[_i]);
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        lookup_ctx ctx;
        char *errors;
        kv env[] = {
            {"SQLGATE_DATABASES", "app"}, {"APP_DB_HOST", "h"}, {var, bad[b]}, {NULL, NULL}};
        sg_config *cfg = load_env(&ctx, env, &errors);
        ck_assert_msg(cfg == NULL, "%s=%s accepted", var, bad[b]);
        snprintf(want, sizeof want, "%s: must be an integer", var);
        ck_assert_msg(strncmp(errors, want, strlen(want)) == 0, "%s=%s: %s", var, bad[b], errors);
        ck_assert_uint_eq(count_lines(errors), 1);
        free(errors);
    }
    /* the bounds themselves are fine */
    static const char *const good[] = {"1", "86400000"};
    for (size_t g = 0; g < 2; g++) {
        lookup_ctx ctx;
        char *errors;
        kv env[] = {
            {"SQLGATE_DATABASES", "app"}, {"APP_DB_HOST", "h"}, {var, good[g]}, {NULL, NULL}};
        sg_config *cfg = load_env(&ctx, env, &errors);
        ck_assert_msg(cfg != NULL, "%s=%s rejected: %s", var, good[g], errors);
        sg_config_free(cfg);
    }
}
END_TEST

/* Boolean words in any case, for a per-database and a service variable. */
START_TEST(test_bool_words)
{
    static const struct {
        const char *text;
        bool value;
    } words[] = {{"true", true}, {"TRUE", true}, {"True", true},   {"1", true},
                 {"yes", true},  {"YeS", true},  {"false", false}, {"FALSE", false},
                 {"0", false},   {"no", false},  {"NO", false}};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        lookup_ctx ctx;
        char *errors;
        kv env[] = {{"CORE_DB_CRITICAL", words[i].text},
                    {"SQLGATE_ALLOW_ANONYMOUS", words[i].text},
                    {NULL, NULL}};
        sg_config *cfg = load_env(&ctx, env, &errors);
        ck_assert_msg(cfg != NULL, "%s rejected: %s", words[i].text, errors);
        ck_assert_int_eq(sg_config_find(cfg, "core")->critical, words[i].value);
        ck_assert_int_eq(cfg->allow_anonymous, words[i].value);
        sg_config_free(cfg);
    }
}
END_TEST

/* --- API edges ------------------------------------------------------------------ */

START_TEST(test_find)
{
    lookup_ctx ctx;
    char *errors;
    sg_config *cfg = load_env(
        &ctx, ENV({"SQLGATE_DATABASES", "core,app"}, {"CORE_DB_PATH", "c"}, {"APP_DB_PATH", "a"}),
        &errors);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_ptr_eq(sg_config_find(cfg, "core"), &cfg->databases[0]);
    ck_assert_ptr_eq(sg_config_find(cfg, "app"), &cfg->databases[1]);
    ck_assert_ptr_null(sg_config_find(cfg, "default"));
    ck_assert_ptr_null(sg_config_find(cfg, "Core"));
    ck_assert_ptr_null(sg_config_find(cfg, ""));
    ck_assert_ptr_null(sg_config_find(cfg, NULL));
    ck_assert_ptr_null(sg_config_find(NULL, "core"));
    ck_assert_ptr_null(cfg->default_name);
    sg_config_free(cfg);
    sg_config_free(NULL);
}
END_TEST

START_TEST(test_default_points_into_snapshot)
{
    lookup_ctx ctx;
    char *errors;
    sg_config *cfg = load_env(&ctx, ENV({"DB_PATH", "x.db"}), &errors);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_ptr_eq(cfg->default_name, cfg->databases[0].name);
    sg_config_free(cfg);
}
END_TEST

/* A reload keeps old snapshots alive for as long as someone holds them. */
START_TEST(test_snapshot_references)
{
    lookup_ctx ctx;
    char *errors;
    sg_config *cfg = load_env(
        &ctx, ENV({"SQLGATE_DATABASES", "core"}, {"CORE_DB_HOST", "h"}, {"CORE_DB_PASSWORD", "pw"}),
        &errors);
    ck_assert_ptr_nonnull(cfg);
    const sg_config *held = sg_config_ref(cfg);
    ck_assert_ptr_eq(held, cfg);
    const sg_db_config *core = sg_config_find(held, "core");
    sg_config_free(cfg); /* the loader's reference */
    /* Still whole for the holder (ASan/valgrind see a use after free). */
    ck_assert_str_eq(core->host, "h");
    ck_assert_str_eq(core->password, "pw");
    ck_assert_ptr_null(sg_config_ref(NULL));
    sg_config_unref(held);
    sg_config_unref(NULL);
}
END_TEST

/* Two loads of the same variables are equal database by database; any
 * variable or secret that differs makes them unequal. */
START_TEST(test_db_config_equal_across_loads)
{
    lookup_ctx c1, c2, c3;
    char *errors;
    sg_config *a = load_env(
        &c1, ENV({"SQLGATE_DATABASES", "core"}, {"CORE_DB_HOST", "h"}, {"CORE_DB_PASSWORD", "pw1"}),
        &errors);
    sg_config *b = load_env(
        &c2, ENV({"SQLGATE_DATABASES", "core"}, {"CORE_DB_HOST", "h"}, {"CORE_DB_PASSWORD", "pw1"}),
        &errors);
    sg_config *c = load_env(
        &c3, ENV({"SQLGATE_DATABASES", "core"}, {"CORE_DB_HOST", "h"}, {"CORE_DB_PASSWORD", "pw2"}),
        &errors);
    ck_assert(a && b && c);
    ck_assert(sg_db_config_equal(&a->databases[0], &b->databases[0]));
    ck_assert(!sg_db_config_equal(&a->databases[0], &c->databases[0]));
    sg_config_free(a);
    sg_config_free(b);
    sg_config_free(c);
}
END_TEST

static const char *null_lookup(void *ud, const char *name)
{
    (void)ud;
    (void)name;
    return NULL;
}

START_TEST(test_bad_arguments)
{
    char *errors = (char *)"untouched";
    ck_assert_ptr_null(sg_config_load(null_lookup, NULL, NULL));
    ck_assert_ptr_null(sg_config_load(NULL, NULL, &errors));
    ck_assert_ptr_nonnull(errors);
    ck_assert(errors[0] != '\0');
    free(errors);
    sg_config *cfg = sg_config_load(null_lookup, NULL, &errors);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_ptr_null(errors);
    ck_assert_int_eq(cfg->mode, SG_MODE_EMBEDDED);
    sg_config_free(cfg);
}
END_TEST

/* The loader reads every service-wide variable even when the first is wrong
 * (one pass), and asks only for names it documents. */
static const char *recording_lookup(void *ud, const char *name)
{
    size_t *seen = ud;
    if (strcmp(name, "SQLGATE_DATABASES") == 0)
        return "Bad";
    if (strcmp(name, "SQLGATE_TLS_KEY_FILE") == 0)
        (*seen)++;
    if (strcmp(name, "SQLGATE_MAX_ROWS") == 0)
        (*seen)++;
    return NULL;
}

START_TEST(test_one_pass_reads_everything)
{
    size_t seen = 0;
    char *errors = NULL;
    sg_config *cfg = sg_config_load(recording_lookup, &seen, &errors);
    ck_assert_ptr_null(cfg);
    ck_assert_ptr_nonnull(errors);
    ck_assert_uint_ge(seen, 2);
    free(errors);
}
END_TEST

/* A generated list of databases: ud points at the SQLGATE_DATABASES value;
 * every database gets a PATH, or every other variable gets junk. */
typedef struct many_ctx {
    const char *list;
    bool junk;
} many_ctx;

static const char *many_lookup(void *ud, const char *name)
{
    const many_ctx *m = ud;
    size_t n = strlen(name);
    if (strcmp(name, "SQLGATE_DATABASES") == 0)
        return m->list;
    if (strncmp(name, "SQLGATE_", 8) == 0)
        return NULL;
    if (n > 8 && strcmp(name + n - 8, "_DB_PATH") == 0)
        return "x.db";
    return m->junk ? "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@" : NULL;
}

static void make_list(char *buf, size_t size, size_t count)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < count; i++)
        o += (size_t)snprintf(buf + o, size - o, "%sdb%zu", i ? "," : "", i);
}

START_TEST(test_database_count_cap)
{
    char list[2048], *errors = NULL;
    many_ctx m = {list, false};

    make_list(list, sizeof list, 128);
    sg_config *cfg = sg_config_load(many_lookup, &m, &errors);
    ck_assert_msg(cfg != NULL, "%s", errors);
    ck_assert_uint_eq(cfg->n_databases, 128);
    ck_assert_str_eq(cfg->databases[127].name, "db127");
    ck_assert_str_eq(cfg->databases[127].prefix, "DB127_DB_");
    sg_config_free(cfg);

    make_list(list, sizeof list, 129);
    ck_assert_ptr_null(sg_config_load(many_lookup, &m, &errors));
    ck_assert_msg(has_line(errors, "SQLGATE_DATABASES: more than 128 databases"), "%s", errors);
    ck_assert_uint_eq(count_lines(errors), 1);
    free(errors);
}
END_TEST

START_TEST(test_error_text_cap)
{
    /* 128 databases with junk in every variable: far more than the error
     * text may hold; the rest is summarised in a last line. */
    char list[2048], *errors = NULL;
    many_ctx m = {list, true};
    make_list(list, sizeof list, 128);
    ck_assert_ptr_null(sg_config_load(many_lookup, &m, &errors));
    ck_assert_ptr_nonnull(errors);
    size_t len = strlen(errors);
    ck_assert_uint_le(len, 256 * 1024 + 100);
    ck_assert_uint_gt(len, 200 * 1024);
    ck_assert(has_line(errors, "DB0_DB_PORT: must be an integer"));
    const char *last = errors + len - 1;
    while (last > errors && last[-1] != '\n')
        last--;
    ck_assert_msg(line_matches(last, strlen(last), "(* more problems not shown)"), "%s", last);
    free(errors);
}
END_TEST

/* --- dotenv ------------------------------------------------------------------------ */

typedef struct dotenv_case {
    const char *name;
    const char *text;
    const kv *expect; /* value NULL: the key must be absent */
} dotenv_case;

static const dotenv_case dotenv_ok[] = {
    {"basic", "A=1\nB=two words\n", ENV({"A", "1"}, {"B", "two words"}, {"C", NULL})},
    {"comments and blanks", "# top\n\n   # indented\n\t\nA=1\n  B = 2  \n",
     ENV({"A", "1"}, {"B", "2"})},
    {"export prefix", "export A=1\nexport\tB=2\nexportC=3\nexport=4\n",
     ENV({"A", "1"}, {"B", "2"}, {"exportC", "3"}, {"export", "4"})},
    {"inline comments", "A=val # note\nB=a#b\nC= # only a comment\nD=\nE=x\t#tab comment\n",
     ENV({"A", "val"}, {"B", "a#b"}, {"C", ""}, {"D", ""}, {"E", "x"})},
    {"single quotes are literal", "A='a\\nb #x'\nB='  spaced  '\nC=''\n",
     ENV({"A", "a\\nb #x"}, {"B", "  spaced  "}, {"C", ""})},
    {"double quotes and escapes",
     "A=\"a\\nb\"\nB=\"q\\\"x\"\nC=\"back\\\\slash\"\nD=\"C:\\path\"\nE=\"x\" # comment\n"
     "F=\"it's # not a comment\"\n",
     ENV({"A", "a\nb"}, {"B", "q\"x"}, {"C", "back\\slash"}, {"D", "C:\\path"}, {"E", "x"},
         {"F", "it's # not a comment"})},
    {"CRLF line ends", "A=1\r\nB=\"q\"\r\nC= x \r\n", ENV({"A", "1"}, {"B", "q"}, {"C", "x"})},
    {"byte order mark",
     "\xEF\xBB\xBF"
     "A=1\n",
     ENV({"A", "1"})},
    {"later duplicates win", "K=1\nK=2\nexport K=3\n", ENV({"K", "3"})},
    {"no newline at the end", "A=1\nB=2", ENV({"A", "1"}, {"B", "2"})},
    {"names", "_A1=x\nabc_DEF_9=y\n", ENV({"_A1", "x"}, {"abc_DEF_9", "y"})},
    {"unquoted keeps inner quotes and equals", "A=a\"b'c\nB=x=y\n",
     ENV({"A", "a\"b'c"}, {"B", "x=y"})},
    {"empty text", "", ENV({"A", NULL})},
};

START_TEST(test_dotenv_ok_rows)
{
    const dotenv_case *c = &dotenv_ok[_i];
    char *errors = (char *)"untouched";
    sg_dotenv *env = sg_dotenv_parse(c->text, strlen(c->text), "t.env", &errors);
    ck_assert_msg(env != NULL, "[%s] parse failed:\n%s", c->name, errors);
    ck_assert_ptr_null(errors);
    for (size_t i = 0; c->expect[i].key != NULL; i++) {
        const char *got = sg_dotenv_lookup(env, c->expect[i].key);
        if (c->expect[i].value == NULL) {
            ck_assert_msg(got == NULL, "[%s] %s should be absent", c->name, c->expect[i].key);
        } else {
            ck_assert_msg(got != NULL && strcmp(got, c->expect[i].value) == 0,
                          "[%s] %s: want \"%s\", got \"%s\"", c->name, c->expect[i].key,
                          c->expect[i].value, got ? got : "(null)");
        }
    }
    sg_dotenv_free(env);
}
END_TEST

typedef struct dotenv_err_case {
    const char *name;
    const char *text;
    size_t len; /* 0: strlen(text) */
    size_t n_lines;
    const char *const *lines;
} dotenv_err_case;

static const dotenv_err_case dotenv_err[] = {
    {"name starts with a digit", "1ABC=x\n", 0, 1, LIST("t.env:1: expected KEY=VALUE")},
    {"no equals sign", "A=1\nNOEQUALS\n", 0, 1, LIST("t.env:2: expected '='")},
    {"space inside a name", "A B=x\n", 0, 1, LIST("t.env:1: expected '='")},
    {"dash inside a name", "A-B=1\n", 0, 1, LIST("t.env:1: expected '='")},
    {"export alone", "export\n", 0, 1, LIST("t.env:1: expected '='")},
    {"equals first", "=x\n", 0, 1, LIST("t.env:1: expected KEY=VALUE")},
    {"unterminated single quote", "A='" SECRET "\n", 0, 1,
     LIST("t.env:1: unterminated single quote")},
    {"unterminated double quote", "A=\"" SECRET "\\\"\n", 0, 1,
     LIST("t.env:1: unterminated double quote")},
    {"text after quote", "A=\"" SECRET "\" junk\n", 0, 1,
     LIST("t.env:1: unexpected text after the closing quote")},
    {"every bad line reported", "A=1\nbad\nB=2\n'x'\n\n  -y=1\n", 0, 3,
     LIST("t.env:2: ", "t.env:4: ", "t.env:6: ")},
    {"NUL byte", "A=1\nB=x\0y\nC=3\n", 14, 1, LIST("t.env:2: contains a NUL byte")},
};

START_TEST(test_dotenv_err_rows)
{
    const dotenv_err_case *c = &dotenv_err[_i];
    char *errors = NULL;
    size_t len = c->len ? c->len : strlen(c->text);
    sg_dotenv *env = sg_dotenv_parse(c->text, len, "t.env", &errors);
    ck_assert_msg(env == NULL, "[%s] parse succeeded", c->name);
    ck_assert_ptr_nonnull(errors);
    for (size_t i = 0; c->lines[i] != NULL; i++)
        ck_assert_msg(has_line(errors, c->lines[i]), "[%s] no line %s in:\n%s", c->name,
                      c->lines[i], errors);
    ck_assert_msg(count_lines(errors) == c->n_lines, "[%s] want %zu lines:\n%s", c->name,
                  c->n_lines, errors);
    ck_assert_msg(strstr(errors, SECRET) == NULL, "[%s] value echoed:\n%s", c->name, errors);
    free(errors);
}
END_TEST

START_TEST(test_dotenv_many_errors_capped)
{
    /* 200 bad lines: the report is bounded and says how many were left out. */
    char text[200 * 4 + 1];
    for (size_t i = 0; i < 200; i++)
        memcpy(text + i * 4, "bad\n", 4);
    text[800] = '\0';
    char *errors = NULL;
    ck_assert_ptr_null(sg_dotenv_parse(text, 800, "t.env", &errors));
    ck_assert_ptr_nonnull(errors);
    ck_assert(has_line(errors, "t.env:1: "));
    ck_assert(has_line(errors, "t.env: 150 more malformed lines"));
    ck_assert_uint_eq(count_lines(errors), 51);
    free(errors);
}
END_TEST

START_TEST(test_dotenv_load_files)
{
    char path[512], *errors = (char *)"untouched";

    /* missing file: an empty set */
    snprintf(path, sizeof path, "%s/absent.env", tmpdir);
    sg_dotenv *env = sg_dotenv_load(path, &errors);
    ck_assert_ptr_nonnull(env);
    ck_assert_ptr_null(errors);
    ck_assert_ptr_null(sg_dotenv_lookup(env, "A"));
    sg_dotenv_free(env);

    /* a real file */
    write_text("env1", "# settings\nSQLGATE_MAX_ROWS=55\nPASSWORD='p w'\n");
    snprintf(path, sizeof path, "%s/env1", tmpdir);
    env = sg_dotenv_load(path, &errors);
    ck_assert_ptr_nonnull(env);
    ck_assert_ptr_null(errors);
    ck_assert_str_eq(sg_dotenv_lookup(env, "SQLGATE_MAX_ROWS"), "55");
    ck_assert_str_eq(sg_dotenv_lookup(env, "PASSWORD"), "p w");
    sg_dotenv_free(env);

    /* malformed: errors name the path and the line */
    write_text("bad.env", "A=1\nB='" SECRET "\n");
    snprintf(path, sizeof path, "%s/bad.env", tmpdir);
    ck_assert_ptr_null(sg_dotenv_load(path, &errors));
    ck_assert_ptr_nonnull(errors);
    char want[600];
    snprintf(want, sizeof want, "%s:2: unterminated single quote", path);
    ck_assert_msg(has_line(errors, want), "%s", errors);
    ck_assert_ptr_null(strstr(errors, SECRET));
    free(errors);

    /* larger than 1 MiB */
    size_t big = 1024 * 1024 + 1;
    char *buf = malloc(big);
    ck_assert_ptr_nonnull(buf);
    memset(buf, '#', big);
    write_file("big.env", buf, big);
    free(buf);
    snprintf(path, sizeof path, "%s/big.env", tmpdir);
    ck_assert_ptr_null(sg_dotenv_load(path, &errors));
    ck_assert_ptr_nonnull(errors);
    ck_assert_msg(strstr(errors, "larger than") != NULL && strstr(errors, path) != NULL, "%s",
                  errors);
    free(errors);

    /* exactly 1 MiB is fine */
    buf = malloc(big - 1);
    ck_assert_ptr_nonnull(buf);
    memset(buf, '#', big - 1);
    write_file("big.env", buf, big - 1);
    free(buf);
    env = sg_dotenv_load(path, &errors);
    ck_assert_ptr_nonnull(env);
    sg_dotenv_free(env);

    /* a directory */
    snprintf(path, sizeof path, "%s/subdir", tmpdir);
    ck_assert_ptr_null(sg_dotenv_load(path, &errors));
    ck_assert_ptr_nonnull(errors);
    ck_assert_msg(strstr(errors, "not a regular file") != NULL, "%s", errors);
    free(errors);
}
END_TEST

START_TEST(test_dotenv_null_ud)
{
    ck_assert_ptr_null(sg_dotenv_lookup(NULL, "A"));
    sg_dotenv_free(NULL);
    char *errors = (char *)"untouched";
    sg_dotenv *env = sg_dotenv_parse(NULL, 0, "t.env", &errors);
    ck_assert_ptr_nonnull(env);
    ck_assert_ptr_null(errors);
    sg_dotenv_free(env);
}
END_TEST

START_TEST(test_env_lookup_precedence)
{
    char *errors = NULL;
    const char *text = "SG_TEST_BOTH=from-file\nSG_TEST_FILE_ONLY=file\nSG_TEST_EMPTY=file\n";
    sg_dotenv *env = sg_dotenv_parse(text, strlen(text), "t.env", &errors);
    ck_assert_ptr_nonnull(env);
    ck_assert_int_eq(setenv("SG_TEST_BOTH", "from-env", 1), 0);
    ck_assert_int_eq(setenv("SG_TEST_EMPTY", "", 1), 0);
    unsetenv("SG_TEST_FILE_ONLY");
    unsetenv("SG_TEST_NOWHERE");

    ck_assert_str_eq(sg_env_lookup(env, "SG_TEST_BOTH"), "from-env");
    ck_assert_str_eq(sg_env_lookup(env, "SG_TEST_FILE_ONLY"), "file");
    ck_assert_str_eq(sg_env_lookup(env, "SG_TEST_EMPTY"), ""); /* the real environment wins */
    ck_assert_ptr_null(sg_env_lookup(env, "SG_TEST_NOWHERE"));
    ck_assert_str_eq(sg_env_lookup(NULL, "SG_TEST_BOTH"), "from-env");
    ck_assert_ptr_null(sg_env_lookup(NULL, "SG_TEST_FILE_ONLY"));

    unsetenv("SG_TEST_BOTH");
    ck_assert_str_eq(sg_env_lookup(env, "SG_TEST_BOTH"), "from-file");
    unsetenv("SG_TEST_EMPTY");
    sg_dotenv_free(env);
}
END_TEST

/* The config read through sg_env_lookup; names other than two are hidden so
 * that the machine's own environment cannot change the outcome. */
static const char *two_names_lookup(void *ud, const char *name)
{
    if (strcmp(name, "SQLGATE_MAX_ROWS") != 0 && strcmp(name, "SQLGATE_LOG_LEVEL") != 0)
        return NULL;
    return sg_env_lookup(ud, name);
}

START_TEST(test_config_through_env_and_dotenv)
{
    char *errors = NULL;
    const char *text = "SQLGATE_MAX_ROWS=55\nSQLGATE_LOG_LEVEL=debug\n";
    sg_dotenv *env = sg_dotenv_parse(text, strlen(text), "t.env", &errors);
    ck_assert_ptr_nonnull(env);
    ck_assert_int_eq(setenv("SQLGATE_MAX_ROWS", "77", 1), 0);
    sg_config *cfg = sg_config_load(two_names_lookup, env, &errors);
    unsetenv("SQLGATE_MAX_ROWS");
    ck_assert_msg(cfg != NULL, "%s", errors);
    ck_assert_uint_eq(cfg->max_rows, 77);
    ck_assert_int_eq(cfg->log_level, SG_LOG_DEBUG);
    sg_config_free(cfg);
    sg_dotenv_free(env);
}
END_TEST

/* --- Suite ------------------------------------------------------------------------ */

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");

    TCase *tc = tcase_create("load");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_ok_rows, 0, N(ok_cases));
    tcase_add_loop_test(tc, test_err_rows, 0, N(err_cases));
    tcase_add_loop_test(tc, test_ms_bounds, 0, N(ms_suffixes));
    tcase_add_test(tc, test_bool_words);
    tcase_add_test(tc, test_find);
    tcase_add_test(tc, test_default_points_into_snapshot);
    tcase_add_test(tc, test_snapshot_references);
    tcase_add_test(tc, test_db_config_equal_across_loads);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_one_pass_reads_everything);
    tcase_add_test(tc, test_database_count_cap);
    tcase_add_test(tc, test_error_text_cap);
    suite_add_tcase(s, tc);

    tc = tcase_create("dotenv");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_dotenv_ok_rows, 0, N(dotenv_ok));
    tcase_add_loop_test(tc, test_dotenv_err_rows, 0, N(dotenv_err));
    tcase_add_test(tc, test_dotenv_many_errors_capped);
    tcase_add_test(tc, test_dotenv_load_files);
    tcase_add_test(tc, test_dotenv_null_ud);
    tcase_add_test(tc, test_env_lookup_precedence);
    tcase_add_test(tc, test_config_through_env_and_dotenv);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(config_suite());
}
