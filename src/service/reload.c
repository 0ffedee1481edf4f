/* reload: see reload.h. */
#include "reload.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "../lib/util.h"
#include "notify.h"

#define CONFIG_ERROR_PREFIX "sqlgate: configuration error: "

/* --- The environment at start ---------------------------------------------- */

struct app_env {
    char **vars; /* owned "NAME=value" copies */
    size_t n;
};

app_env *app_env_capture(char **environ_)
{
    app_env *env = calloc(1, sizeof *env);
    if (env == NULL)
        return NULL;
    size_t n = 0;
    while (environ_ != NULL && environ_[n] != NULL)
        n++;
    env->vars = calloc(n ? n : 1, sizeof *env->vars);
    if (env->vars == NULL) {
        free(env);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        env->vars[i] = strdup(environ_[i]);
        if (env->vars[i] == NULL) {
            app_env_free(env);
            return NULL;
        }
        env->n = i + 1;
    }
    return env;
}

void app_env_free(app_env *env)
{
    if (env == NULL)
        return;
    /* The environment may hold secrets (passwords, tokens). */
    for (size_t i = 0; i < env->n; i++)
        sg_free_secret(env->vars[i]);
    free(env->vars);
    free(env);
}

const char *app_env_lookup(void *ud, const char *name)
{
    const app_env *env = ud;
    if (env == NULL || name == NULL)
        return NULL;
    size_t len = strlen(name);
    for (size_t i = 0; i < env->n; i++)
        if (strncmp(env->vars[i], name, len) == 0 && env->vars[i][len] == '=')
            return env->vars[i] + len + 1;
    return NULL;
}

const char *app_env_file(const app_env *env)
{
    const char *path = app_env_lookup((void *)env, "SQLGATE_ENV_FILE");
    return path != NULL && path[0] != '\0' ? path : ".env";
}

/* The start's environment first, then the .env file. */
typedef struct env_chain {
    const app_env *env;
    sg_dotenv *dotenv;
} env_chain;

static const char *chain_lookup(void *ud, const char *name)
{
    env_chain *c = ud;
    const char *v = app_env_lookup((void *)c->env, name);
    return v != NULL ? v : sg_dotenv_lookup(c->dotenv, name);
}

/* --- Loading --------------------------------------------------------------- */

/* Appends each line of text (without a leading `prefix`) to errors. */
static void add_lines(json_t *errors, const char *text, const char *prefix)
{
    size_t plen = prefix ? strlen(prefix) : 0;
    for (const char *line = text; line != NULL && *line != '\0';) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (plen > 0 && len >= plen && strncmp(line, prefix, plen) == 0) {
            line += plen;
            len -= plen;
        }
        if (len > 0)
            json_array_append_new(errors, json_stringn(line, len));
        line = nl ? nl + 1 : NULL;
    }
}

sg_config *reload_load_config(const app_env *env, json_t **errors)
{
    *errors = json_array();
    if (*errors == NULL)
        return NULL;
    char *text = NULL;
    sg_dotenv *dotenv = sg_dotenv_load(app_env_file(env), &text);
    if (dotenv == NULL) {
        add_lines(*errors, text ? text : "the .env file cannot be read\n", NULL);
        free(text);
        return NULL;
    }
    env_chain chain = {env, dotenv};
    sg_config *cfg = sg_config_load(chain_lookup, &chain, &text);
    sg_dotenv_free(dotenv);
    if (cfg == NULL) {
        add_lines(*errors, text ? text : "out of memory\n", NULL);
        free(text);
        return NULL;
    }
    /* The checks a start adds to the loader's (cli_check_extra prints them). */
    char *extra = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&extra, &size);
    int problems = f != NULL ? cli_check_extra(f, cfg) : 0;
    if (f != NULL)
        fclose(f);
    if (problems > 0)
        add_lines(*errors, extra, CONFIG_ERROR_PREFIX);
    free(extra);
    if (problems > 0) {
        sg_config_free(cfg);
        return NULL;
    }
    json_decref(*errors);
    *errors = NULL;
    return cfg;
}

/* --- Checks only a running service makes -------------------------------------- */

static bool same_str(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

/* The FreeTDS driver writes one freetds.conf at start for databases whose
 * encryption or CA file db-lib takes only from there (the rule of its
 * needs_section), and exports FREETDSCONF, which a running process cannot
 * safely change. Such a database may be added or changed by a reload only
 * when its section would read exactly as the one written at start. */
static bool needs_conf_section(const sg_db_config *d)
{
    return strcmp(d->driver, "freetds") == 0 &&
           (d->encrypt != SG_ENCRYPT_REQUEST || d->ca_file != NULL);
}

static bool conf_section_same(const sg_db_config *now, const sg_db_config *boot)
{
    return boot != NULL && needs_conf_section(boot) && same_str(now->host, boot->host) &&
           now->port == boot->port && now->encrypt == boot->encrypt &&
           same_str(now->ca_file, boot->ca_file);
}

/* A setting the HTTP server takes at start only: a change is a problem. */
static void restart_number(json_t *errors, const char *name, size_t now, size_t boot)
{
    if (now == boot)
        return;
    char line[192];
    snprintf(line, sizeof line,
             "%s: cannot change while running; restart sqlgate to use %zu (it uses %zu)", name, now,
             boot);
    json_array_append_new(errors, json_string(line));
}

/* Problems with applying cfg to this process; appended to errors. */
static void restart_checks(const app *a, const sg_config *cfg, json_t *errors)
{
    const sg_config *boot = a->boot;
    char line[512];
    if (!same_str(cfg->listen_host, boot->listen_host) || cfg->listen_port != boot->listen_port) {
        snprintf(line, sizeof line,
                 "SQLGATE_LISTEN: the listen address cannot change while running; restart "
                 "sqlgate to listen on %s port %d (it listens on %s port %d)",
                 cfg->listen_host, cfg->listen_port, boot->listen_host, boot->listen_port);
        json_array_append_new(errors, json_string(line));
    }
    restart_number(errors, "SQLGATE_MAX_CONNECTIONS", cfg->max_connections, boot->max_connections);
    restart_number(errors, "SQLGATE_CONNECTION_BUFFER_BYTES", cfg->connection_buffer_bytes,
                   boot->connection_buffer_bytes);
    if (cfg->connection_model != boot->connection_model)
        json_array_append_new(errors, json_string("SQLGATE_CONNECTION_MODEL: cannot change while "
                                                  "running; restart sqlgate"));
    if (!same_str(cfg->tls_cert_file, boot->tls_cert_file))
        json_array_append_new(errors, json_string("SQLGATE_TLS_CERT_FILE: the TLS files cannot "
                                                  "change while running; restart sqlgate"));
    if (!same_str(cfg->tls_key_file, boot->tls_key_file))
        json_array_append_new(errors, json_string("SQLGATE_TLS_KEY_FILE: the TLS files cannot "
                                                  "change while running; restart sqlgate"));
    for (size_t i = 0; i < cfg->n_databases; i++) {
        const sg_db_config *d = &cfg->databases[i];
        if (!needs_conf_section(d))
            continue;
        /* A database the reload leaves unchanged keeps its connections. */
        sg_db *running = sg_registry_acquire(a->reg, d->name, NULL);
        bool unchanged = running != NULL && sg_db_config_equal(sg_db_config_of(running), d);
        sg_registry_release(a->reg, running);
        if (unchanged || conf_section_same(d, sg_config_find(boot, d->name)))
            continue;
        snprintf(line, sizeof line,
                 "%sENCRYPT/%sCA_FILE: the TLS settings of a SQL Server database go into the "
                 "freetds.conf written at start; restart sqlgate to add or change them",
                 d->prefix, d->prefix);
        json_array_append_new(errors, json_string(line));
    }
}

/* --- Applying -------------------------------------------------------------- */

typedef struct change_report {
    json_t *lists[4]; /* by sg_registry_change */
} change_report;

static void note_change(void *ud, const char *name, sg_registry_change change)
{
    change_report *r = ud;
    if ((unsigned)change < 4)
        json_array_append_new(r->lists[change], json_string(name));
}

/* errors (borrowed; may be NULL) goes into the line as it goes into the
 * HTTP response. */
static void log_refused(const char *trigger, const sg_err *err, const json_t *errors)
{
    log_field f[4] = {log_str("trigger", trigger), log_str("code", sg_code_name(err->code)),
                      log_str("message", err->message)};
    size_t n = 3;
    char *text = errors != NULL ? json_dumps(errors, JSON_COMPACT) : NULL;
    if (text != NULL)
        f[n++] = log_json("errors", text, strlen(text));
    log_line(SG_LOG_ERROR, "reload refused; nothing changed", f, n);
    free(text);
}

/* The names by outcome, as the HTTP response lists them, then the trigger. */
static void log_reloaded(const change_report *r, const char *trigger)
{
    static const struct {
        const char *key;
        sg_registry_change change;
    } lists[4] = {{"added", SG_REG_ADDED},
                  {"removed", SG_REG_REMOVED},
                  {"changed", SG_REG_CHANGED},
                  {"unchanged", SG_REG_UNCHANGED}};
    char *text[4];
    log_field f[5];
    size_t n = 0;
    for (size_t i = 0; i < 4; i++) {
        text[i] = json_dumps(r->lists[lists[i].change], JSON_COMPACT);
        if (text[i] != NULL)
            f[n++] = log_json(lists[i].key, text[i], strlen(text[i]));
    }
    f[n++] = log_str("trigger", trigger);
    log_line(SG_LOG_INFO, "configuration reloaded", f, n);
    for (size_t i = 0; i < 4; i++)
        free(text[i]);
}

typedef struct warn_filter {
    json_t *added, *changed; /* borrowed name arrays; both NULL: every database */
} warn_filter;

static bool listed(json_t *names, const char *name)
{
    size_t k;
    json_t *v;
    json_array_foreach(names, k, v) if (strcmp(json_string_value(v), name) == 0) return true;
    return false;
}

static void log_warning(void *ud, const cli_finding *f)
{
    const warn_filter *only = ud;
    if (f->error || f->log == NULL)
        return;
    if (only->added != NULL || only->changed != NULL) {
        if (f->db == NULL ||
            !(listed(only->added, f->db->name) || listed(only->changed, f->db->name)))
            return;
    }
    if (f->db != NULL)
        log_at(SG_LOG_WARN, f->log, log_str("db", f->db->name), log_str("variable", f->variable));
    else
        log_at(SG_LOG_WARN, f->log, log_str("variable", f->variable));
}

void reload_log_warnings(const sg_config *cfg, json_t *added, json_t *changed)
{
    warn_filter only = {added, changed};
    cli_check(cfg, log_warning, &only);
}

static int reload_locked(app *a, const char *trigger, json_t **out, json_t **errors, sg_err *err)
{
    if (atomic_load(&a->draining))
        return sg_err_set(err, SG_SHUTTING_DOWN, "the service is shutting down");

    sg_config *cfg = reload_load_config(a->env, errors);
    if (cfg == NULL) {
        if (*errors == NULL)
            return sg_err_set(err, SG_INTERNAL, "out of memory");
        return sg_err_set(err, SG_CONFIG_INVALID,
                          "the new configuration is invalid; nothing changed");
    }
    *errors = json_array();
    if (*errors == NULL) {
        sg_config_free(cfg);
        return sg_err_set(err, SG_INTERNAL, "out of memory");
    }
    restart_checks(a, cfg, *errors);
    if (json_array_size(*errors) > 0) {
        sg_config_free(cfg);
        return sg_err_set(err, SG_CONFIG_INVALID,
                          "the new configuration needs a restart; nothing changed");
    }
    json_decref(*errors);
    *errors = NULL;

    change_report r = {{json_array(), json_array(), json_array(), json_array()}};
    json_t *body = json_pack("{s:o,s:o,s:o,s:o}", "added", r.lists[SG_REG_ADDED], "removed",
                             r.lists[SG_REG_REMOVED], "changed", r.lists[SG_REG_CHANGED],
                             "unchanged", r.lists[SG_REG_UNCHANGED]);
    if (body == NULL) {
        sg_config_free(cfg);
        return sg_err_set(err, SG_INTERNAL, "out of memory");
    }
    /* Retired databases drain as a shutdown would let requests drain. */
    int64_t drain_deadline = sg_clock_ms() + cfg->drain_timeout_ms;
    if (sg_registry_apply(a->reg, cfg, NULL, a->on_state, NULL, drain_deadline, note_change, &r,
                          err) != 0) {
        sg_config_free(cfg);
        json_decref(body);
        if (err->code == SG_BAD_REQUEST) {
            *errors = json_pack("[s]", err->message);
            err->code = SG_CONFIG_INVALID;
        }
        return -1;
    }

    pthread_mutex_lock(&a->cfg_mu);
    const sg_config *old = a->cfg_current;
    a->cfg_current = cfg; /* steals the load's reference */
    pthread_mutex_unlock(&a->cfg_mu);
    http_set_config(a->srv, cfg);
    sg_config_unref(old);

    if (cfg->log_level != a->boot->log_level || cfg->log_json != a->boot->log_json)
        log_msg(SG_LOG_WARN, "SQLGATE_LOG_LEVEL and SQLGATE_LOG_FORMAT keep their start values "
                             "until a restart");
    reload_log_warnings(cfg, r.lists[SG_REG_ADDED], r.lists[SG_REG_CHANGED]);
    log_reloaded(&r, trigger);
    *out = body;
    return 0;
}

/* RELOADING=1 carries the monotonic time, as Type=notify-reload requires. */
static void notify_reloading(const app *a)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char msg[96];
    snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
    notify_send(a->env, msg);
}

int app_reload(app *a, const char *trigger, json_t **report_out, json_t **errors, sg_err *err)
{
    *report_out = NULL;
    *errors = NULL;
    pthread_mutex_lock(&a->reload_mu);
    /* A refused reload still ends with READY=1: the service goes on serving.
     * Before the start's READY=1 (the databases' first checks are not all
     * done) and once shutdown began (STOPPING=1) systemd hears nothing from
     * here: its READY=1 would announce a service that is not ready yet. */
    bool tell = atomic_load(&a->notified_ready) && !atomic_load(&a->draining);
    if (tell)
        notify_reloading(a);
    int rc = reload_locked(a, trigger, report_out, errors, err);
    if (tell)
        notify_send(a->env, "READY=1");
    pthread_mutex_unlock(&a->reload_mu);
    if (rc != 0)
        log_refused(trigger, err, *errors);
    return rc;
}

void reload_fence(app *a)
{
    pthread_mutex_lock(&a->reload_mu);
    pthread_mutex_unlock(&a->reload_mu);
}

/* --- The SIGHUP worker ------------------------------------------------------- */

struct reloader {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool pending; /* guarded by mu */
    bool stop;    /* guarded by mu */
    pthread_t thread;
    app *a;
};

static void *worker_main(void *arg)
{
    reloader *rl = arg;
    pthread_mutex_lock(&rl->mu);
    for (;;) {
        while (!rl->pending && !rl->stop)
            pthread_cond_wait(&rl->cv, &rl->mu);
        if (rl->stop)
            break;
        rl->pending = false;
        pthread_mutex_unlock(&rl->mu);
        json_t *report = NULL, *errors = NULL;
        sg_err err;
        sg_err_clear(&err);
        (void)app_reload(rl->a, "SIGHUP", &report, &errors, &err);
        json_decref(report);
        json_decref(errors);
        pthread_mutex_lock(&rl->mu);
    }
    pthread_mutex_unlock(&rl->mu);
    return NULL;
}

int reload_worker_start(app *a, sg_err *err)
{
    reloader *rl = calloc(1, sizeof *rl);
    if (rl == NULL)
        return sg_err_set(err, SG_INTERNAL, "out of memory");
    rl->a = a;
    pthread_mutex_init(&rl->mu, NULL);
    pthread_cond_init(&rl->cv, NULL);
    if (pthread_create(&rl->thread, NULL, worker_main, rl) != 0) {
        pthread_cond_destroy(&rl->cv);
        pthread_mutex_destroy(&rl->mu);
        free(rl);
        return sg_err_set(err, SG_INTERNAL, "cannot start the reload thread");
    }
    a->reloader = rl;
    return 0;
}

void reload_kick(app *a)
{
    reloader *rl = a->reloader;
    if (rl == NULL)
        return;
    pthread_mutex_lock(&rl->mu);
    rl->pending = true;
    pthread_cond_signal(&rl->cv);
    pthread_mutex_unlock(&rl->mu);
}

void reload_worker_stop(app *a)
{
    reloader *rl = a->reloader;
    if (rl == NULL)
        return;
    pthread_mutex_lock(&rl->mu);
    rl->stop = true;
    pthread_cond_signal(&rl->cv);
    pthread_mutex_unlock(&rl->mu);
    pthread_join(rl->thread, NULL);
    pthread_cond_destroy(&rl->cv);
    pthread_mutex_destroy(&rl->mu);
    free(rl);
    a->reloader = NULL;
}

/* --- app.h ----------------------------------------------------------------- */

const sg_config *app_config_acquire(app *a)
{
    pthread_mutex_lock(&a->cfg_mu);
    const sg_config *cfg = sg_config_ref(a->cfg_current);
    pthread_mutex_unlock(&a->cfg_mu);
    return cfg;
}

void app_config_release(const sg_config *cfg)
{
    sg_config_unref(cfg);
}
