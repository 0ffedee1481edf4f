/* sqlgate: the service program. Loads the configuration, builds the registry,
 * serves HTTP, and runs the ordered shutdown (docs/operations.md):
 *
 *   1. a stop signal makes readiness fail at once; requests are still served
 *      for SQLGATE_SHUTDOWN_DELAY_MS;
 *   2. the listener closes; requests on open connections get SHUTTING_DOWN;
 *   3. in-flight requests get SQLGATE_DRAIN_TIMEOUT_MS to finish;
 *   4. every pool closes, in parallel; what still runs is interrupted;
 *   5. exit 0, or 1 if anything had to be cancelled.
 * SIGHUP reloads the configuration (reload.c) without stopping anything.
 * A second signal exits at once with status 1. The signal thread also acts as
 * a watchdog: should the sequence overrun its drain deadline by more than
 * WATCHDOG_GRACE_MS, the process exits with status 1 anyway. The steps after
 * the deadline fit in that grace by construction (CANCEL_SETTLE_MS below), so
 * the watchdog only fires when a driver call ignores its interruption; a
 * database's background thread stuck in a login does not hold the sequence
 * (sg_db_close abandons it; step 5 names it and exits 1).
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "cli.h"
#include "demo.h"
#include "http.h"
#include "jsonw.h"
#include "log.h"
#include "notify.h"
#include "reload.h"
#include "sqlgate/clock.h"
#include "sqlgate/sqlgate.h"

#include "../lib/util.h"

extern char **environ;

#define EXIT_CONFIG 2

/* After the drain deadline the sequence takes at most: closing the pools and
 * the background threads (SG_DB_CLOSE_GRACE_MS), letting interrupted requests
 * answer (CANCEL_SETTLE_MS), and stopping the HTTP server and freeing
 * (STOP_RESERVE_MS). The watchdog's grace is the documented one (1 s); the
 * settle time is what is left of it, so the watchdog never cuts an orderly
 * shutdown short. */
#define WATCHDOG_GRACE_MS 1000
#define STOP_RESERVE_MS   200
#define CANCEL_SETTLE_MS  (WATCHDOG_GRACE_MS - SG_DB_CLOSE_GRACE_MS - STOP_RESERVE_MS)
_Static_assert(CANCEL_SETTLE_MS >= 100, "the watchdog grace leaves no time to settle");

/* What the signal thread and main share. */
typedef struct stopper {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int signo;             /* first stop signal, 0 until one arrives */
    int64_t hard_deadline; /* watchdog, monotonic ms; 0 until known */
    unsigned cancelled;    /* requests still running at the drain deadline */
    bool done;             /* main has finished the shutdown: the thread ends */
    sigset_t set;
    app *app; /* for SIGHUP (reload_kick); NULL once main is done with it */
} stopper;

/* How often the signal thread looks at `done` and the watchdog deadline
 * while shutting down. */
#define SIGNAL_POLL_MS      100
#define HEAP_TRIM_PERIOD_MS 60000 /* main returns free heap pages to the system */

static void say(const char *text)
{
    ssize_t rc = write(STDERR_FILENO, text, strlen(text));
    (void)rc;
}

/* Ends the process now, without the shutdown sequence or atexit handlers;
 * the drivers' files on disk (a generated freetds.conf) go first. */
static _Noreturn void hard_exit(const char *line)
{
    say(line);
    sg_driver_discard_all();
    _exit(1);
}

/* Waits for signals. First: wakes main. Second: exits at once. Afterwards
 * also exits when main's shutdown overruns its hard deadline. Ends when main
 * sets `done`, which joins it: st lives on main's stack. */
static void *signal_thread(void *arg)
{
    stopper *st = arg;
    for (;;) {
        int signo = 0;
        pthread_mutex_lock(&st->mu);
        int64_t deadline = st->hard_deadline;
        unsigned cancelled = st->cancelled;
        bool first = st->signo == 0;
        bool done = st->done;
        pthread_mutex_unlock(&st->mu);
        if (done)
            break;
        if (first || deadline == 0) {
            struct timespec poll = {.tv_sec = 0, .tv_nsec = SIGNAL_POLL_MS * 1000000L};
            signo = sigtimedwait(&st->set, NULL, first ? NULL : &poll);
        } else {
            int64_t left = deadline - sg_clock_ms();
            if (left <= 0) {
                /* main may be stuck before its own line: count here too */
                char line[128];
                snprintf(line, sizeof line,
                         "{\"level\":\"error\",\"msg\":\"shutdown overran its deadline; "
                         "exiting\",\"cancelled\":%u}\n",
                         cancelled);
                hard_exit(line);
            }
            if (left > SIGNAL_POLL_MS)
                left = SIGNAL_POLL_MS;
            struct timespec ts = {.tv_sec = left / 1000, .tv_nsec = (left % 1000) * 1000000};
            signo = sigtimedwait(&st->set, NULL, &ts);
        }
        if (signo <= 0)
            continue;
        if (signo == SIGHUP) {
            /* A reload runs on its own thread: this one stays free for the
             * stop signals and the watchdog. */
            pthread_mutex_lock(&st->mu);
            if (st->app != NULL)
                reload_kick(st->app);
            pthread_mutex_unlock(&st->mu);
            continue;
        }
        pthread_mutex_lock(&st->mu);
        bool second = st->signo != 0;
        if (!second) {
            st->signo = signo;
            pthread_cond_signal(&st->cv);
        }
        pthread_mutex_unlock(&st->mu);
        if (second) {
            hard_exit("{\"level\":\"error\",\"msg\":\"second stop signal; exiting now\"}\n");
        }
    }
    return NULL;
}

static void print_config_errors(const char *errors)
{
    const char *line = errors;
    while (line && *line) {
        const char *nl = strchr(line, '\n');
        int len = nl ? (int)(nl - line) : (int)strlen(line);
        if (len > 0)
            fprintf(stderr, "sqlgate: configuration error: %.*s\n", len, line);
        line = nl ? nl + 1 : NULL;
    }
}

/* Loads .env and the environment, the one way both a start and
 * --check-config do it. Returns the snapshot, or NULL after printing the
 * errors. With dotenv_out the parsed .env is handed to the caller (who frees
 * it), else it is freed here. */
static sg_config *load_config(sg_dotenv **dotenv_out)
{
    char *errors = NULL;
    const char *env_file = getenv("SQLGATE_ENV_FILE");
    sg_dotenv *dotenv =
        sg_dotenv_load(env_file != NULL && env_file[0] ? env_file : ".env", &errors);
    if (dotenv == NULL) {
        print_config_errors(errors);
        free(errors);
        return NULL;
    }
    sg_config *cfg = sg_config_load(sg_env_lookup, dotenv, &errors);
    if (cfg == NULL) {
        print_config_errors(errors);
        free(errors);
        sg_dotenv_free(dotenv);
        return NULL;
    }
    if (dotenv_out != NULL)
        *dotenv_out = dotenv;
    else
        sg_dotenv_free(dotenv);
    return cfg;
}

/* --check-config: everything a start checks before it opens a database or
 * a socket, then the effective settings on stdout. */
static int check_config(void)
{
    sg_dotenv *dotenv = NULL;
    sg_config *cfg = load_config(&dotenv);
    if (cfg == NULL) {
        fprintf(stderr, "sqlgate: the configuration is invalid\n");
        return EXIT_CONFIG;
    }
    int status = 0;
    if (cli_check_extra(stderr, cfg) != 0) {
        fprintf(stderr, "sqlgate: the configuration is invalid\n");
        status = EXIT_CONFIG;
    } else {
        cli_print_config(stdout, cfg, sg_env_lookup, dotenv);
        if (fflush(stdout) != 0)
            status = 1;
    }
    sg_config_free(cfg);
    sg_dotenv_free(dotenv);
    return status;
}

/* The database names as a JSON array, into b (initialised by the caller). */
static void names_json(const sg_config *cfg, jw_buf *b)
{
    jw_char(b, '[');
    for (size_t i = 0; i < cfg->n_databases; i++) {
        if (i > 0)
            jw_char(b, ',');
        jw_cstr(b, cfg->databases[i].name);
    }
    jw_char(b, ']');
}

static void log_listening(const sg_config *cfg, const sg_registry *reg, const http_server *srv)
{
    jw_buf names;
    jw_init(&names, 0);
    names_json(cfg, &names);
    log_field f[6] = {log_str("address", cfg->listen_host), log_int("port", http_port(srv))};
    size_t n = 2;
    if (!names.failed) /* out of memory: the line goes without the names */
        f[n++] = log_json("databases", names.data, names.len);
    f[n++] = log_str("default", sg_registry_default_name(reg));
    f[n++] = log_bool("auth", sg_tokens_count(cfg->tokens) > 0);
    f[n++] = log_str("connections", cfg->connection_model == SG_CONN_EVENTS ? "events" : "threads");
    log_line(SG_LOG_INFO, "listening", f, n);
    jw_free(&names);
}

/* Start-up: the configuration as a reload will read it again (reload.h),
 * every problem printed. Returns a new snapshot, or NULL. */
static sg_config *load_run_config(const app_env *env)
{
    json_t *errors = NULL;
    sg_config *cfg = reload_load_config(env, &errors);
    if (cfg == NULL) {
        size_t i;
        json_t *line;
        json_array_foreach(errors, i, line)
            fprintf(stderr, "sqlgate: configuration error: %s\n", json_string_value(line));
        if (errors == NULL)
            fprintf(stderr, "sqlgate: out of memory while loading the configuration\n");
        json_decref(errors);
    }
    return cfg;
}

/* sg_registry_retired_fn: a database a reload removed or replaced is closed. */
static void log_retired(void *ud, const char *name, unsigned cancelled)
{
    log_at(cancelled > 0 ? SG_LOG_WARN : SG_LOG_INFO,
           cancelled > 0 ? "retired database closed; its drain timeout cancelled in-flight work"
                         : "retired database drained and closed",
           log_str("db", name), log_int("cancelled", cancelled));
}

/* The app's configuration and reload state; undone by app_reload_fini. */
static void app_reload_init(app *a, const sg_config *cfg, const app_env *env)
{
    pthread_mutex_init(&a->cfg_mu, NULL);
    pthread_mutex_init(&a->reload_mu, NULL);
    a->cfg_current = sg_config_ref(cfg);
    a->boot = sg_config_ref(cfg);
    a->env = env;
}

static void app_reload_fini(app *a)
{
    reload_worker_stop(a);
    sg_config_unref(a->cfg_current);
    sg_config_unref(a->boot);
    pthread_mutex_destroy(&a->cfg_mu);
    pthread_mutex_destroy(&a->reload_mu);
}

/* sg_db_state_fn: one log line when a database goes down or comes back. */
static void log_state_change(void *ud, const sg_db *db, sg_db_state from, sg_db_state to,
                             const sg_err *why)
{
    log_field f[4] = {log_str("db", sg_db_name(db)), log_str("from", sg_db_state_name(from)),
                      log_str("to", sg_db_state_name(to))};
    size_t n = 3;
    if (why != NULL)
        f[n++] = log_str("error", why->message);
    if (to == SG_STATE_DOWN)
        log_line(SG_LOG_WARN, "database is down", f, n);
    else
        log_line(SG_LOG_INFO, from == SG_STATE_DOWN ? "database is back" : "database is ready", f,
                 n);
}

/* Creates a new embedded database file readable by its owner only, before
 * SQLite opens it (SQLite would create it with the umask's 0644); SQLite
 * gives its -wal, -shm and -journal files the mode of the database file. An
 * empty file is a valid empty database. An existing file is left as it is. */
static void create_private(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    else if (errno != EEXIST)
        log_at(SG_LOG_ERROR, "cannot create an embedded database file", log_str("path", path),
               log_str("error", strerror(errno)));
}

/* Embedded mode: ./var/ (owner only) and the demo rows for files that are
 * new. */
static void embedded_prepare(const sg_config *cfg, bool *seed_core, bool *seed_app)
{
    if (mkdir("var", 0700) != 0 && errno != EEXIST)
        log_at(SG_LOG_ERROR, "cannot create ./var for the embedded databases",
               log_str("error", strerror(errno)));
    *seed_core = demo_needs_seed(cfg, "core");
    *seed_app = demo_needs_seed(cfg, "app");
    for (size_t i = 0; i < cfg->n_databases; i++)
        if (cfg->databases[i].path != NULL && strcmp(cfg->databases[i].path, ":memory:") != 0)
            create_private(cfg->databases[i].path);
    log_msg(SG_LOG_INFO, "no databases configured: serving the embedded SQLite databases core "
                         "(default) and app from ./var/");
}

static void embedded_seed(sg_registry *reg, bool seed_core, bool seed_app)
{
    const char *names[2] = {seed_core ? "core" : NULL, seed_app ? "app" : NULL};
    for (size_t i = 0; i < 2; i++) {
        if (names[i] == NULL)
            continue;
        sg_err err;
        if (demo_seed(reg, names[i], &err) != 0)
            log_at(SG_LOG_ERROR, "cannot create the demo rows", log_str("db", names[i]),
                   log_str("error", err.message));
        else
            log_at(SG_LOG_INFO, "created the demo schema and rows", log_str("db", names[i]));
    }
}

/* Steps 1 to 5 of the shutdown; returns the exit status. *abandoned_out is
 * the number of databases whose background thread was abandoned: the
 * registry and the configuration must then not be freed. */
static int shut_down(stopper *st, app *a, http_server *srv, notifier *nt, unsigned *abandoned_out)
{
    /* The delay and drain timeout in force now: a reload may have changed them. */
    const sg_config *cfg = app_config_acquire(a);
    int64_t began = sg_clock_ms();
    pthread_mutex_lock(&st->mu);
    int signo = st->signo;
    st->hard_deadline = began + cfg->shutdown_delay_ms + cfg->drain_timeout_ms + WATCHDOG_GRACE_MS;
    pthread_mutex_unlock(&st->mu);

    atomic_store(&a->draining, true);
    notify_stopping(nt);
    reload_fence(a);
    log_at(SG_LOG_INFO, "shutdown started", log_str("signal", strsignal(signo)),
           log_int("delay_ms", cfg->shutdown_delay_ms),
           log_int("drain_timeout_ms", cfg->drain_timeout_ms));
    sg_sleep_ms(cfg->shutdown_delay_ms);

    http_refuse_new(srv);
    int64_t deadline = sg_clock_ms() + cfg->drain_timeout_ms;
    pthread_mutex_lock(&st->mu);
    st->hard_deadline = deadline + WATCHDOG_GRACE_MS; /* the delay may have overslept */
    pthread_mutex_unlock(&st->mu);
    unsigned requests_cancelled = http_wait_idle(srv, deadline);
    unsigned statements_cancelled = 0;
    pthread_mutex_lock(&st->mu);
    st->cancelled = requests_cancelled;
    pthread_mutex_unlock(&st->mu);
    sg_registry_shutdown_all(a->reg, requests_cancelled ? sg_clock_ms() : deadline,
                             &statements_cancelled);
    unsigned abandoned = 0;
    for (size_t i = 0; i < sg_registry_count(a->reg); i++) {
        sg_db *db = sg_registry_at(a->reg, i);
        if (sg_db_abandoned(db)) {
            abandoned++;
            log_at(SG_LOG_ERROR,
                   "shutdown abandoned a database's background thread stuck in a driver call "
                   "(a login that does not answer)",
                   log_str("db", sg_db_name(db)));
        }
    }
    *abandoned_out = abandoned;
    /* Logged now, not after http_stop: a request stuck in a driver call that
     * ignores the interruption holds http_stop until the watchdog ends the
     * process, and the count must reach the log in that case too. */
    bool cancelled = requests_cancelled > 0 || statements_cancelled > 0;
    if (cancelled)
        log_at(SG_LOG_WARN, "shutdown cancelled in-flight work",
               log_int("cancelled", requests_cancelled > statements_cancelled
                                        ? requests_cancelled
                                        : statements_cancelled),
               log_int("requests", requests_cancelled), log_int("statements", statements_cancelled),
               log_real("duration_ms", (double)(sg_clock_ms() - began)));
    /* Interrupted requests answer with an error; give them a moment. */
    int64_t settle = sg_clock_ms() + CANCEL_SETTLE_MS;
    http_wait_idle(srv, settle);
    http_stop(srv);
    notify_stop(nt); /* the watchdog ends with the HTTP server */

    app_config_release(cfg);
    if (cancelled || abandoned > 0)
        return 1;
    log_at(SG_LOG_INFO, "shutdown complete",
           log_real("duration_ms", (double)(sg_clock_ms() - began)));
    return 0;
}

int main(int argc, char **argv)
{
    cli_action action = cli_parse(argc, argv);
    switch (action) {
    case CLI_BAD_USAGE:
        return CLI_EXIT_USAGE;
    case CLI_HELP:
        cli_help(stdout);
        return 0;
    case CLI_VERSION:
        cli_version(stdout);
        return 0;
    case CLI_CHECK_CONFIG:
        return check_config();
    case CLI_RUN:
        break;
    }

    /* Signals go to the signal thread only: block them before any thread
     * starts so that every thread inherits the mask. */
    /* The signal thread is joined before main returns (st.done). */
    stopper st = {.mu = PTHREAD_MUTEX_INITIALIZER};
    if (sg_cond_init_monotonic(&st.cv) != 0) {
        log_msg(SG_LOG_ERROR, "cannot create a condition variable");
        return 1;
    }
    sigemptyset(&st.set);
    sigaddset(&st.set, SIGINT);
    sigaddset(&st.set, SIGTERM);
    sigaddset(&st.set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &st.set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* What a reload reads again: the environment as it is now (reload.h). */
    app_env *env = app_env_capture(environ);
    if (env == NULL) {
        fprintf(stderr, "sqlgate: out of memory\n");
        return 1;
    }
    sg_config *cfg = load_run_config(env);
    if (cfg == NULL) {
        app_env_free(env);
        return EXIT_CONFIG;
    }
    log_setup(cfg->log_level, cfg->log_json);

    reload_log_warnings(cfg, NULL, NULL);
    bool seed_core = false, seed_app = false;
    if (cfg->mode == SG_MODE_EMBEDDED)
        embedded_prepare(cfg, &seed_core, &seed_app);

    int status = 1;
    sg_err err;
    sg_err_clear(&err);
    sg_registry *reg = sg_registry_from_config(cfg, log_state_change, NULL, &err);
    if (reg == NULL) {
        fprintf(stderr, "sqlgate: configuration error: %s\n", err.message);
        status = EXIT_CONFIG;
        goto fail_registry;
    }
    sg_registry_set_retired_fn(reg, log_retired, NULL);
    if (cfg->mode == SG_MODE_EMBEDDED)
        embedded_seed(reg, seed_core, seed_app);

    app a = {.reg = reg,
             .metrics = metrics_new(reg, api_routes, api_n_routes),
             .on_state = log_state_change};
    atomic_init(&a.draining, false);
    atomic_init(&a.notified_ready, false);
    app_reload_init(&a, cfg, env);
    st.app = &a;
    if (a.metrics == NULL) {
        log_msg(SG_LOG_ERROR, "out of memory");
        goto fail_metrics;
    }
    http_server *srv = http_start(cfg, api_routes, api_n_routes, &a, api_observe, &err);
    if (srv == NULL) {
        if (err.code == SG_BAD_REQUEST) {
            fprintf(stderr, "sqlgate: configuration error: %s\n", err.message);
            status = EXIT_CONFIG;
        } else {
            log_at(SG_LOG_ERROR, "cannot start the HTTP server", log_str("error", err.message));
        }
        goto fail_http;
    }
    a.srv = srv;
    log_listening(cfg, reg, srv);

    pthread_t sig_thread;
    notifier *nt = NULL;
    if (reload_worker_start(&a, &err) != 0 || (nt = notify_start(&a, &err)) == NULL ||
        pthread_create(&sig_thread, NULL, signal_thread, &st) != 0) {
        log_msg(SG_LOG_ERROR, "cannot start the signal, reload or systemd notification thread");
        goto fail_threads;
    }

    /* While it waits for a stop, main gives the pages glibc keeps after a
     * burst (a pool grown and shrunk again: its connections' buffers and
     * caches) back to the system, once a minute: otherwise they stay
     * resident, free but unreturned (docs/benchmarks.md, S3). */
    pthread_mutex_lock(&st.mu);
    int64_t next_trim = sg_clock_ms() + HEAP_TRIM_PERIOD_MS;
    while (st.signo == 0) {
        sg_cond_wait_until(&st.cv, &st.mu, next_trim);
        if (st.signo == 0 && sg_clock_ms() >= next_trim) {
            pthread_mutex_unlock(&st.mu);
            malloc_trim(0);
            pthread_mutex_lock(&st.mu);
            next_trim = sg_clock_ms() + HEAP_TRIM_PERIOD_MS;
        }
    }
    pthread_mutex_unlock(&st.mu);

    unsigned abandoned = 0;
    status = shut_down(&st, &a, srv, nt, &abandoned);
    /* No reload from here on: a SIGHUP now finds no app. */
    pthread_mutex_lock(&st.mu);
    st.app = NULL;
    pthread_mutex_unlock(&st.mu);
    app_reload_fini(&a);
    /* sg_registry_free leaves an abandoned database (its thread still uses
     * it) allocated, and the configuration is kept for that thread too. */
    sg_registry_free(reg);
    /* The watchdog stays on until here; joined, it no longer reads st. */
    pthread_mutex_lock(&st.mu);
    st.done = true;
    pthread_mutex_unlock(&st.mu);
    pthread_join(sig_thread, NULL);
    metrics_free(a.metrics);
    if (abandoned > 0) {
        /* An abandoned thread still reads cfg: it stays allocated, and in
         * reach on main's stack (exit runs in main's frame) for a leak
         * checker, until the process ends. */
        sg_config *volatile keep = cfg;
        (void)keep;
        exit(status);
    }
    goto out;

    /* A start that fails half-way undoes what it did, latest first. */
fail_threads:
    notify_stop(nt);
    http_stop(srv);
fail_http:
    sg_registry_shutdown_all(reg, sg_clock_ms(), NULL);
fail_metrics:
    app_reload_fini(&a);
    sg_registry_free(reg);
    metrics_free(a.metrics);
fail_registry:
out:
    sg_config_free(cfg);
    app_env_free(env);
    return status;
}
