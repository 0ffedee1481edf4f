/* cli: see cli.h. */
#include "cli.h"

#include <inttypes.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <string.h>

#include "sqlgate/driver.h"
#include "sqlgate/sqlgate.h"

#define VALUE_MAX    512
#define VAR_NAME_CAP 96

static const char REDACTED[] = "(set, redacted)";
static const char NOT_SET[] = "(not set)";

cli_action cli_parse(int argc, char **argv)
{
    bool help = false, version = false, check = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help = true;
        } else if (strcmp(argv[i], "--version") == 0) {
            version = true;
        } else if (strcmp(argv[i], "--check-config") == 0) {
            check = true;
        } else {
            /* The argument is echoed: it is on the caller's own command line. */
            fprintf(stderr, "sqlgate: unknown option '%s'\n", argv[i]);
            cli_usage(stderr);
            return CLI_BAD_USAGE;
        }
    }
    if (help)
        return CLI_HELP;
    if (version)
        return CLI_VERSION;
    if (check)
        return CLI_CHECK_CONFIG;
    return CLI_RUN;
}

void cli_usage(FILE *f)
{
    fprintf(f, "usage: sqlgate [--help] [--version] [--check-config]\n"
               "Serves named SQL databases over HTTP. Configuration comes from the\n"
               "environment and ./.env; `sqlgate --help` lists every variable.\n");
}

void cli_version(FILE *f)
{
    fprintf(f, "sqlgate %s\n", SQLGATE_VERSION);
}

static void help_vars(FILE *f, sg_var_scope scope)
{
    size_t n = sg_config_variable_count();
    for (size_t i = 0; i < n; i++) {
        sg_var_info v;
        if (!sg_config_variable(i, &v) || v.scope != scope)
            continue;
        fprintf(f, "  %s%s (%s%s%s)\n      %s\n", scope == SG_VAR_DATABASE ? "<N>_DB_" : "", v.name,
                v.def != NULL ? "default " : "no default", v.def != NULL ? v.def : "",
                v.secret ? "; secret" : "", v.meaning);
    }
}

void cli_help(FILE *f)
{
    fprintf(f, "usage: sqlgate [--help] [--version] [--check-config]\n"
               "\n"
               "sqlgate serves named SQL databases (\"core\", \"app\", ...) over HTTP, each with\n"
               "its own connection pool and health, behind one door.\n"
               "\n"
               "Options:\n"
               "  --help, -h      print this help and exit\n"
               "  --version       print \"sqlgate <version>\" and exit\n"
               "  --check-config  load the configuration exactly like a start, print the\n"
               "                  effective settings with secrets redacted and exit 0, or\n"
               "                  print every problem and exit 2; never opens a database\n"
               "                  and never listens\n"
               "\n"
               "Configuration comes from the environment and from ./.env (the real\n"
               "environment wins). Booleans: true/false, 1/0, yes/no. Empty counts as unset.\n"
               "With SQLGATE_DATABASES unset, DB_<SUFFIX> variables without a prefix configure\n"
               "one database named \"default\"; with neither set, sqlgate serves two embedded\n"
               "SQLite databases, core (the default) and app, from ./var/.\n"
               "\n"
               "Service-wide variables:\n");
    help_vars(f, SG_VAR_SERVICE);
    fprintf(f, "\n"
               "Per-database variables (<N> is the database name upper-cased, e.g. CORE_DB_HOST\n"
               "for \"core\"):\n");
    help_vars(f, SG_VAR_DATABASE);
    fprintf(f, "\n"
               "Exit status: 0 after a clean shutdown or a valid --check-config, 1 when\n"
               "shutdown had to cancel work, 2 for a bad configuration or command line.\n"
               "Documentation: README.md, docs/configuration.md, docs/api.md,\n"
               "docs/deployment.md.\n");
}

int cli_check(const sg_config *cfg, cli_finding_fn fn, void *ud)
{
    int errors = 0;
    cli_finding f;
    for (size_t i = 0; i < cfg->n_databases; i++) {
        const sg_db_config *d = &cfg->databases[i];
        f = (cli_finding){.db = d};
        if (sg_driver_find(d->driver) == NULL) {
            f.error = true;
            snprintf(f.text, sizeof f.text, "%sDRIVER: driver \"%s\" is not built into sqlgate",
                     d->prefix, d->driver);
        } else if (strcmp(d->driver, "freetds") == 0 && d->encrypt == SG_ENCRYPT_REQUIRE &&
                   d->ca_file == NULL) {
            snprintf(f.text, sizeof f.text,
                     "%sENCRYPT is require but %sCA_FILE is not set: the server's certificate "
                     "is not verified",
                     d->prefix, d->prefix);
            f.log = "TLS is required but the server's certificate is not verified (set the "
                    "CA_FILE variable)";
            f.variable = "CA_FILE";
        } else {
            continue;
        }
        errors += f.error;
        if (fn != NULL)
            fn(ud, &f);
    }
    if (cfg->tls_cert_file != NULL && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        f = (cli_finding){.error = true};
        snprintf(f.text, sizeof f.text,
                 "SQLGATE_TLS_CERT_FILE: this libmicrohttpd was built without TLS");
        errors++;
        if (fn != NULL)
            fn(ud, &f);
    }
    return errors;
}

static void print_error(void *ud, const cli_finding *f)
{
    if (f->error)
        fprintf(ud, "sqlgate: configuration error: %s\n", f->text);
}

int cli_check_extra(FILE *f, const sg_config *cfg)
{
    return cli_check(cfg, print_error, f);
}

/* --- Effective values --------------------------------------------------------- */

static const char *lookup_set(sg_lookup_fn lookup, void *ud, const char *name)
{
    const char *v = lookup(ud, name);
    return (v != NULL && v[0] != '\0') ? v : NULL;
}

static const char *or_not_set(const char *s)
{
    return s != NULL ? s : NOT_SET;
}

static const char *yes_no(bool b)
{
    return b ? "true" : "false";
}

static const char *num(char *buf, int64_t v)
{
    snprintf(buf, VALUE_MAX, "%" PRId64, v);
    return buf;
}

static const char *encrypt_name(sg_encrypt e)
{
    switch (e) {
    case SG_ENCRYPT_OFF:
        return "off";
    case SG_ENCRYPT_REQUEST:
        return "request";
    case SG_ENCRYPT_REQUIRE:
        return "require";
    }
    return "?";
}

static const char *level_name(sg_log_level l)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    return (unsigned)l < 4 ? names[l] : "?";
}

static const char *db_list(const sg_config *cfg, char *buf)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < cfg->n_databases && o < VALUE_MAX; i++) {
        int w = snprintf(buf + o, VALUE_MAX - o, "%s%s", i ? "," : "", cfg->databases[i].name);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    return buf;
}

/* A variable this printer has no rule for (added to the loader later) is
 * still listed: its raw value, or its default, secrets redacted. */
static const char *fallback(const sg_var_info *v, const char *var, sg_lookup_fn lookup, void *ud)
{
    const char *raw = lookup_set(lookup, ud, var);
    if (v->secret)
        return raw != NULL ? REDACTED : NOT_SET;
    if (raw != NULL)
        return raw;
    return v->def != NULL ? v->def : NOT_SET;
}

static const char *service_value(const sg_config *cfg, const sg_var_info *v, sg_lookup_fn lookup,
                                 void *ud, char *buf)
{
    const char *n = v->name;
    if (strcmp(n, "SQLGATE_DATABASES") == 0) {
        if (cfg->mode == SG_MODE_NAMED)
            return db_list(cfg, buf);
        return NOT_SET;
    }
    if (strcmp(n, "SQLGATE_DEFAULT_DATABASE") == 0)
        return cfg->default_name != NULL ? cfg->default_name : "(none: no default database)";
    if (strcmp(n, "SQLGATE_LISTEN") == 0) {
        bool v6 = cfg->listen_host != NULL && strchr(cfg->listen_host, ':') != NULL;
        snprintf(buf, VALUE_MAX, "%s%s%s:%d", v6 ? "[" : "",
                 cfg->listen_host ? cfg->listen_host : "?", v6 ? "]" : "", cfg->listen_port);
        return buf;
    }
    if (strcmp(n, "SQLGATE_API_TOKENS") == 0)
        return lookup_set(lookup, ud, n) != NULL && cfg->n_api_tokens > 0 ? REDACTED : NOT_SET;
    if (strcmp(n, "SQLGATE_API_TOKENS_FILE") == 0)
        return or_not_set(lookup_set(lookup, ud, n));
    if (strcmp(n, "SQLGATE_ALLOW_ANONYMOUS") == 0)
        return yes_no(cfg->allow_anonymous);
    if (strcmp(n, "SQLGATE_SHUTDOWN_DELAY_MS") == 0)
        return num(buf, cfg->shutdown_delay_ms);
    if (strcmp(n, "SQLGATE_DRAIN_TIMEOUT_MS") == 0)
        return num(buf, cfg->drain_timeout_ms);
    if (strcmp(n, "SQLGATE_MAX_BODY_BYTES") == 0)
        return num(buf, (int64_t)cfg->max_body_bytes);
    if (strcmp(n, "SQLGATE_MAX_ROWS") == 0)
        return num(buf, cfg->max_rows);
    if (strcmp(n, "SQLGATE_LOG_LEVEL") == 0)
        return level_name(cfg->log_level);
    if (strcmp(n, "SQLGATE_LOG_FORMAT") == 0)
        return cfg->log_json ? "json" : "text";
    if (strcmp(n, "SQLGATE_TLS_CERT_FILE") == 0)
        return or_not_set(cfg->tls_cert_file);
    if (strcmp(n, "SQLGATE_TLS_KEY_FILE") == 0)
        return or_not_set(cfg->tls_key_file);
    return fallback(v, n, lookup, ud);
}

static const char *db_value(const sg_db_config *d, const sg_var_info *v, const char *var,
                            sg_lookup_fn lookup, void *ud, char *buf)
{
    const char *n = v->name;
    if (strcmp(n, "DRIVER") == 0)
        return d->driver;
    if (strcmp(n, "HOST") == 0)
        return or_not_set(d->host);
    if (strcmp(n, "PORT") == 0)
        return num(buf, d->port);
    if (strcmp(n, "NAME") == 0)
        return d->database != NULL ? d->database : "(not set: the login's default)";
    if (strcmp(n, "USER") == 0)
        return or_not_set(d->user);
    /* From PASSWORD, PASSWORD_FILE or the URL: what counts is what is used. */
    if (strcmp(n, "PASSWORD") == 0)
        return d->password != NULL ? REDACTED : NOT_SET;
    if (strcmp(n, "PASSWORD_FILE") == 0)
        return or_not_set(lookup_set(lookup, ud, var));
    if (strcmp(n, "URL") == 0)
        return lookup_set(lookup, ud, var) != NULL ? REDACTED : NOT_SET;
    if (strcmp(n, "PATH") == 0)
        return or_not_set(d->path);
    if (strcmp(n, "ENCRYPT") == 0)
        return encrypt_name(d->encrypt);
    if (strcmp(n, "CA_FILE") == 0)
        return or_not_set(d->ca_file);
    if (strcmp(n, "TDS_VERSION") == 0)
        return d->tds_version;
    if (strcmp(n, "APP_NAME") == 0)
        return d->app_name;
    if (strcmp(n, "POOL_MAX") == 0)
        return num(buf, d->pool_max);
    if (strcmp(n, "POOL_MIN") == 0)
        return num(buf, d->pool_min);
    if (strcmp(n, "ACQUIRE_TIMEOUT_MS") == 0)
        return num(buf, d->acquire_timeout_ms);
    if (strcmp(n, "CONNECT_TIMEOUT_MS") == 0)
        return num(buf, d->connect_timeout_ms);
    if (strcmp(n, "QUERY_TIMEOUT_MS") == 0)
        return num(buf, d->query_timeout_ms);
    if (strcmp(n, "IDLE_TIMEOUT_MS") == 0)
        return num(buf, d->idle_timeout_ms);
    if (strcmp(n, "MAX_LIFETIME_MS") == 0)
        return num(buf, d->max_lifetime_ms);
    if (strcmp(n, "RETRY_MAX_MS") == 0)
        return num(buf, d->retry_max_ms);
    if (strcmp(n, "CRITICAL") == 0)
        return yes_no(d->critical);
    if (strcmp(n, "READ_ONLY") == 0)
        return yes_no(d->read_only);
    if (strcmp(n, "HEALTH_QUERY") == 0)
        return d->health_query;
    if (strcmp(n, "HEALTH_INTERVAL_MS") == 0)
        return num(buf, d->health_interval_ms);
    if (strcmp(n, "HEALTH_TIMEOUT_MS") == 0)
        return num(buf, d->health_timeout_ms);
    return fallback(v, var, lookup, ud);
}

/* One "  NAME  value" line; control bytes in the value are escaped so that
 * every setting stays on its own line. */
static void print_setting(FILE *f, const char *name, const char *value)
{
    fprintf(f, "  %-34s ", name);
    for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
    fputc('\n', f);
}

static const char *mode_text(sg_config_mode m)
{
    switch (m) {
    case SG_MODE_NAMED:
        return "named databases (SQLGATE_DATABASES)";
    case SG_MODE_LEGACY:
        return "legacy single database \"default\" (DB_* variables)";
    case SG_MODE_EMBEDDED:
        return "embedded SQLite databases core and app (nothing configured)";
    }
    return "?";
}

static void print_warning(void *ud, const cli_finding *f)
{
    if (!f->error)
        fprintf(ud, "warning: %s\n", f->text);
}

void cli_print_config(FILE *f, const sg_config *cfg, sg_lookup_fn lookup, void *ud)
{
    char buf[VALUE_MAX];
    char var[VAR_NAME_CAP];
    size_t n = sg_config_variable_count();

    fprintf(f, "sqlgate %s: the configuration is valid\n", SQLGATE_VERSION);
    fprintf(f, "mode: %s\n", mode_text(cfg->mode));
    fprintf(f, "default database: %s\n", cfg->default_name != NULL ? cfg->default_name : "(none)");
    size_t n_tokens = sg_tokens_count(cfg->tokens);
    if (n_tokens > 0)
        fprintf(f, "authentication: %zu API token%s on /v1/*\n", n_tokens,
                n_tokens == 1 ? "" : "s");
    else
        fprintf(f, "authentication: none (anonymous)\n");
    cli_check(cfg, print_warning, f);

    fprintf(f, "\nservice:\n");
    for (size_t i = 0; i < n; i++) {
        sg_var_info v;
        if (!sg_config_variable(i, &v) || v.scope != SG_VAR_SERVICE)
            continue;
        print_setting(f, v.name, service_value(cfg, &v, lookup, ud, buf));
    }
    for (size_t k = 0; k < cfg->n_databases; k++) {
        const sg_db_config *d = &cfg->databases[k];
        fprintf(f, "\ndatabase %s (%s*):\n", d->name, d->prefix);
        for (size_t i = 0; i < n; i++) {
            sg_var_info v;
            if (!sg_config_variable(i, &v) || v.scope != SG_VAR_DATABASE)
                continue;
            snprintf(var, sizeof var, "%s%s", d->prefix, v.name);
            print_setting(f, var, db_value(d, &v, var, lookup, ud, buf));
        }
    }
}
