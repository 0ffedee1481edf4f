/* sqlgate named database: pool + background checker + state.
 *
 * Threads: callers run queries on their own threads through the pool; one
 * background thread per database runs the health check on its own connection
 * (outside pool_max), retries with exponential backoff while the database is
 * down, and does pool housekeeping. The state below is guarded by `mu`; no
 * driver call is ever made while `mu` is held (except interrupt(), which is
 * thread-safe and never blocks), so a hung database can delay only its own
 * background thread and its own callers. `mu` is never held while the pool's
 * lock is taken: the pause lives in the pool alone (sg_pool_paused).
 *
 * Shutdown (sg_db_close) never waits for the background thread without a
 * bound: it interrupts a health check in progress, and a thread still inside
 * a driver call at deadline + SG_DB_CLOSE_GRACE_MS (a login, which db-lib
 * cannot interrupt, to a server that never answers) is detached and the
 * database marked abandoned: its memory stays allocated, since that thread
 * still uses it, and the process is expected to exit (sg_db_abandoned).
 */
#include "sqlgate/db.h"
#include "sqlgate/clock.h"
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_FIRST_MS  100
#define MAINTAIN_EVERY_MS 1000

struct sg_db {
    const sg_db_config *cfg; /* borrowed */
    const sg_driver *drv;    /* borrowed */
    sg_pool *pool;           /* owned */
    sg_hist acquire_hist;    /* sg_pool_acquire waits, by query_begin */
    sg_hist usage_hist;      /* borrow to release, by the query */
    sg_db *ro;               /* owned: the read-only login's database (cfg->readonly), or NULL */

    pthread_mutex_t mu;
    pthread_cond_t wake;  /* wakes the background thread */
    pthread_cond_t ended; /* the background thread is about to return */
    pthread_t thread;
    bool thread_started;

    /* Guarded by mu. */
    sg_db_state state; /* starting, ready, down, draining, closed */
    bool stop;
    bool thread_ended; /* set by the background thread as it returns */
    bool abandoned;    /* sg_db_close detached a thread stuck in a driver call */
    /* The background thread's health connection while it is checked, so that
     * sg_db_close can interrupt the check; the thread unpublishes it before
     * closing it. */
    sg_driver_conn *health;
    bool check_now;
    bool reopen_health; /* reconnect asked: drop the health connection */
    /* Reconnects coalesce: one at a time, at most one per
     * SG_DB_RECONNECT_INTERVAL_MS; one asked sooner is pending until then,
     * and every call meanwhile joins it. */
    bool reconnect_pending;
    int64_t reconnect_due_ms;
    int64_t last_reconnect_ms; /* 0: never */
    double latency_ms;
    int64_t checked_at_ms;
    int64_t check_deadline_ms; /* deadline of the check running now; 0: none */
    sg_err last_error;
    unsigned failures; /* consecutive failed checks */
    uint64_t reconnects;
    uint64_t check_failures;

    sg_db_state_fn on_state; /* set before sg_db_open, then read-only */
    void *on_state_ud;
};

struct sg_query {
    sg_db *db;           /* borrowed */
    int64_t timeout_ms;  /* the batch's effective timeout */
    sg_pool_conn *pc;    /* borrowed from db->pool until sg_query_end */
    sg_driver_conn *c;   /* inside pc */
    int64_t acquired_us; /* when pc was borrowed (monotonic) */
};

static const char *const state_names[] = {
    [SG_STATE_STARTING] = "starting", [SG_STATE_READY] = "ready",
    [SG_STATE_DOWN] = "down",         [SG_STATE_PAUSED] = "paused",
    [SG_STATE_DRAINING] = "draining", [SG_STATE_CLOSED] = "closed",
};

const char *sg_db_state_name(sg_db_state state)
{
    if ((unsigned)state > SG_STATE_CLOSED)
        return "unknown";
    return state_names[state];
}

static int64_t add_grace(int64_t t)
{
    return t > INT64_MAX - SG_DB_CLOSE_GRACE_MS ? INT64_MAX : t + SG_DB_CLOSE_GRACE_MS;
}

sg_db *sg_db_new(const sg_db_config *cfg, const sg_driver *drv, sg_err *err)
{
    sg_db *db = calloc(1, sizeof *db);
    if (db == NULL) {
        sg_err_set(err, SG_INTERNAL, "out of memory");
        return NULL;
    }
    db->cfg = cfg;
    db->drv = drv;
    db->latency_ms = -1;
    if (pthread_mutex_init(&db->mu, NULL) != 0) {
        sg_err_set(err, SG_INTERNAL, "cannot create a mutex");
        goto fail_mutex;
    }
    if (sg_cond_init_monotonic(&db->wake) != 0) {
        sg_err_set(err, SG_INTERNAL, "cannot create a condition variable");
        goto fail_wake;
    }
    if (sg_cond_init_monotonic(&db->ended) != 0) {
        sg_err_set(err, SG_INTERNAL, "cannot create a condition variable");
        goto fail_ended;
    }
    db->pool = sg_pool_new(drv, cfg, err);
    if (db->pool == NULL)
        goto fail_pool;
    if (cfg->readonly != NULL && (db->ro = sg_db_new(cfg->readonly, drv, err)) == NULL) {
        sg_db_free(db); /* whole now: sg_db_free undoes it all */
        return NULL;
    }
    return db;

fail_pool:
    pthread_cond_destroy(&db->ended);
fail_ended:
    pthread_cond_destroy(&db->wake);
fail_wake:
    pthread_mutex_destroy(&db->mu);
fail_mutex:
    free(db);
    return NULL;
}

const char *sg_db_name(const sg_db *db)
{
    return db->cfg->name;
}

const sg_db_config *sg_db_config_of(const sg_db *db)
{
    return db->cfg;
}

/* A check that overran its deadline means the database is not answering,
 * whatever the stuck driver call will eventually say. Lock held. */
static bool check_overran(const sg_db *db)
{
    return db->check_deadline_ms != 0 && sg_clock_ms() > db->check_deadline_ms;
}

/* Asks the background thread to check now (a query saw the database fail). */
static void db_suspect(sg_db *db)
{
    pthread_mutex_lock(&db->mu);
    db->check_now = true;
    pthread_cond_signal(&db->wake);
    pthread_mutex_unlock(&db->mu);
}

/* Publishes (c) or unpublishes (NULL) the health connection for
 * sg_db_close. A connection opened after the stop is interrupted at once. */
static void health_publish(sg_db *db, sg_driver_conn *c)
{
    pthread_mutex_lock(&db->mu);
    db->health = c;
    if (c != NULL && db->stop)
        db->drv->interrupt(c);
    pthread_mutex_unlock(&db->mu);
}

/* One health check on the background thread's own connection. */
static int db_check(sg_db *db, sg_driver_conn **conn, int64_t deadline, sg_err *err)
{
    if (*conn == NULL) {
        /* The health connection's login counts against the same limit as
         * the pool's: the checks cannot add a flood of their own. */
        if (sg_pool_login_wait(db->pool, deadline, err) != 0) {
            err->code = SG_DB_UNAVAILABLE;
            return -1;
        }
        *conn = db->drv->open(db->cfg, deadline, err);
        if (*conn == NULL)
            return -1;
    }
    health_publish(db, *conn);
    if (db->drv->ping(*conn, db->cfg->health_query, deadline, err) != 0 ||
        db->drv->unusable(*conn)) {
        if (err->code == SG_OK)
            sg_err_set(err, SG_DB_UNAVAILABLE, "health check left the connection unusable");
        health_publish(db, NULL);
        db->drv->close(*conn);
        *conn = NULL;
        return -1;
    }
    health_publish(db, NULL);
    return 0;
}

static int64_t backoff_ms(const sg_db_config *cfg, unsigned failures)
{
    int64_t delay = BACKOFF_FIRST_MS;
    for (unsigned i = 1; i < failures && delay < cfg->retry_max_ms; i++)
        delay *= 2;
    return delay < cfg->retry_max_ms ? delay : cfg->retry_max_ms;
}

/* A reconnect begins: the health connection is replaced at the next check,
 * which comes at once. The caller evicts the pool after unlocking. Lock held. */
static void reconnect_start(sg_db *db, int64_t now)
{
    db->reconnect_pending = false;
    db->last_reconnect_ms = now;
    db->reopen_health = true;
    db->check_now = true;
    pthread_cond_signal(&db->wake);
}

static void *db_thread(void *arg)
{
    sg_db *db = arg;
    const sg_db_config *cfg = db->cfg;
    sg_driver_conn *conn = NULL; /* the health connection, this thread's own */
    int64_t next_check = 0;      /* check at once */
    int64_t next_maintain = sg_clock_ms() + MAINTAIN_EVERY_MS;

    pthread_mutex_lock(&db->mu);
    while (!db->stop) {
        int64_t now = sg_clock_ms();
        if (db->reconnect_pending && now >= db->reconnect_due_ms) {
            reconnect_start(db, now);
            pthread_mutex_unlock(&db->mu);
            sg_pool_evict(db->pool);
            pthread_mutex_lock(&db->mu);
            continue;
        }
        if (db->check_now || now >= next_check) {
            bool reopen = db->reopen_health;
            int64_t budget = cfg->health_timeout_ms;
            if (conn == NULL || reopen)
                budget = cfg->health_timeout_ms > cfg->connect_timeout_ms ? cfg->health_timeout_ms
                                                                          : cfg->connect_timeout_ms;
            db->check_now = false;
            db->reopen_health = false;
            db->check_deadline_ms = now + budget;
            pthread_mutex_unlock(&db->mu);

            if (reopen && conn != NULL) {
                db->drv->close(conn);
                conn = NULL;
            }
            sg_err err;
            sg_err_clear(&err);
            int64_t started_us = sg_clock_us();
            int rc = db_check(db, &conn, started_us / 1000 + budget, &err);
            int64_t finished_us = sg_clock_us();
            int64_t finished = finished_us / 1000;
            bool recovered = false;

            pthread_mutex_lock(&db->mu);
            db->check_deadline_ms = 0;
            if (db->stop)
                break; /* an interrupted check says nothing about the database */
            sg_db_state before = db->state;
            db->checked_at_ms = sg_clock_wall_ms();
            if (rc == 0) {
                recovered = db->state == SG_STATE_DOWN;
                db->reconnects += recovered;
                if (db->state == SG_STATE_STARTING || db->state == SG_STATE_DOWN)
                    db->state = SG_STATE_READY;
                db->latency_ms = (double)(finished_us - started_us) / 1000.0;
                db->failures = 0;
                sg_err_clear(&db->last_error);
                next_check = finished + cfg->health_interval_ms;
            } else {
                if (db->state == SG_STATE_STARTING || db->state == SG_STATE_READY)
                    db->state = SG_STATE_DOWN;
                if (err.code != SG_QUERY_TIMEOUT)
                    err.code = SG_DB_UNAVAILABLE;
                else
                    sg_err_set(&err, SG_DB_UNAVAILABLE, "health check timed out after %lld ms",
                               (long long)budget);
                sg_err_copy(&db->last_error, &err);
                db->failures++;
                db->check_failures++;
                next_check = finished + backoff_ms(cfg, db->failures);
            }
            sg_db_state after = db->state;
            pthread_mutex_unlock(&db->mu);
            /* Connections opened before an outage are likely dead. */
            if (recovered)
                sg_pool_evict(db->pool);
            if (before != after && db->on_state != NULL)
                db->on_state(db->on_state_ud, db, before, after, rc == 0 ? NULL : &err);
            pthread_mutex_lock(&db->mu);
            continue;
        }
        if (now >= next_maintain) {
            bool ready = db->state == SG_STATE_READY;
            pthread_mutex_unlock(&db->mu);
            if (ready && !sg_pool_paused(db->pool))
                sg_pool_maintain(db->pool);
            next_maintain = sg_clock_ms() + MAINTAIN_EVERY_MS;
            pthread_mutex_lock(&db->mu);
            continue;
        }
        int64_t wake_at = next_check < next_maintain ? next_check : next_maintain;
        if (db->reconnect_pending && db->reconnect_due_ms < wake_at)
            wake_at = db->reconnect_due_ms;
        sg_cond_wait_until(&db->wake, &db->mu, wake_at);
    }
    pthread_mutex_unlock(&db->mu);
    db->drv->close(conn);
    pthread_mutex_lock(&db->mu);
    db->thread_ended = true;
    pthread_cond_broadcast(&db->ended);
    pthread_mutex_unlock(&db->mu);
    return NULL;
}

void sg_db_set_state_fn(sg_db *db, sg_db_state_fn fn, void *ud)
{
    db->on_state = fn;
    db->on_state_ud = ud;
}

int sg_db_open(sg_db *db, sg_err *err)
{
    if (db->ro != NULL && sg_db_open(db->ro, err) != 0)
        return -1;
    pthread_mutex_lock(&db->mu);
    if (db->thread_started || db->state != SG_STATE_STARTING) {
        pthread_mutex_unlock(&db->mu);
        return 0;
    }
    int rc = pthread_create(&db->thread, NULL, db_thread, db);
    if (rc == 0)
        db->thread_started = true;
    pthread_mutex_unlock(&db->mu);
    if (rc != 0)
        return sg_err_set(err, SG_INTERNAL, "cannot start the background thread of database %s",
                          db->cfg->name);
    return 0;
}

void sg_db_health_get(sg_db *db, sg_db_health *out)
{
    memset(out, 0, sizeof *out);
    /* First, and outside mu: the pool's snapshot carries the pause. */
    sg_pool_stats_get(db->pool, &out->pool);
    pthread_mutex_lock(&db->mu);
    out->state = db->state;
    out->critical = db->cfg->critical;
    out->latency_ms = db->latency_ms;
    out->checked_at_ms = db->checked_at_ms;
    out->reconnects = db->reconnects;
    out->check_failures = db->check_failures;
    sg_err_copy(&out->error, &db->last_error);
    if (out->pool.paused && (db->state == SG_STATE_READY || db->state == SG_STATE_STARTING))
        out->state = SG_STATE_PAUSED;
    if (check_overran(db) && (out->state == SG_STATE_READY || out->state == SG_STATE_STARTING)) {
        out->state = SG_STATE_DOWN;
        sg_err_set(&out->error, SG_DB_UNAVAILABLE, "health check did not finish in time");
    }
    pthread_mutex_unlock(&db->mu);
    out->healthy = out->state == SG_STATE_READY || out->state == SG_STATE_PAUSED;
    if (out->state == SG_STATE_DOWN)
        out->latency_ms = -1;
}

static void snap_add(sg_hist_snap *to, const sg_hist_snap *from)
{
    for (unsigned b = 0; b <= SG_HIST_BOUNDS; b++)
        to->cumulative[b] += from->cumulative[b];
    to->count += from->count;
    to->sum_seconds += from->sum_seconds;
}

void sg_db_timings_get(sg_db *db, sg_db_timings *out)
{
    sg_hist_snapshot(&db->acquire_hist, &out->acquire);
    sg_hist_snapshot(&db->usage_hist, &out->usage);
    sg_pool_creation_get(db->pool, &out->creation);
    if (db->ro != NULL) {
        sg_db_timings ro;
        sg_db_timings_get(db->ro, &ro);
        snap_add(&out->acquire, &ro.acquire);
        snap_add(&out->usage, &ro.usage);
        snap_add(&out->creation, &ro.creation);
    }
}

bool sg_db_reconnect(sg_db *db)
{
    bool evict_now = false, joined = false;
    if (db->ro != NULL)
        (void)sg_db_reconnect(db->ro);
    pthread_mutex_lock(&db->mu);
    if (db->reconnect_pending || db->reopen_health) {
        /* One is pending, or its health check has not started yet. */
        joined = true;
    } else {
        int64_t now = sg_clock_ms();
        db->reconnects++;
        if (db->last_reconnect_ms == 0 ||
            now - db->last_reconnect_ms >= SG_DB_RECONNECT_INTERVAL_MS) {
            reconnect_start(db, now);
            evict_now = true;
        } else {
            db->reconnect_pending = true;
            db->reconnect_due_ms = db->last_reconnect_ms + SG_DB_RECONNECT_INTERVAL_MS;
            pthread_cond_signal(&db->wake);
        }
    }
    pthread_mutex_unlock(&db->mu);
    if (evict_now)
        sg_pool_evict(db->pool);
    return !joined;
}

void sg_db_pause(sg_db *db)
{
    if (db->ro != NULL)
        sg_db_pause(db->ro);
    sg_pool_pause(db->pool);
}

void sg_db_resume(sg_db *db)
{
    if (db->ro != NULL)
        sg_db_resume(db->ro);
    sg_pool_resume(db->pool);
}

/* --- Queries ------------------------------------------------------------- */

/* Common follow-up of a failed query call: a broken connection makes the
 * background thread check at once; a timeout says which timeout it was, in
 * the same words whatever the driver. */
static void query_note_error(sg_query *q, sg_err *err)
{
    if (err->code == SG_DB_UNAVAILABLE)
        db_suspect(q->db);
    if (err->code == SG_QUERY_TIMEOUT && q->timeout_ms > 0 &&
        strstr(err->message, "cancel") == NULL)
        sg_err_set(err, SG_QUERY_TIMEOUT, "query exceeded its timeout of %lld ms",
                   (long long)q->timeout_ms);
}

/* read_only: the driver refuses a batch that would write (read_only_next). */
static sg_query *query_begin(sg_db *db, const char *sql, const sg_param *params, size_t n_params,
                             int64_t timeout_ms, bool read_only, sg_err *err)
{
    const sg_db_config *cfg = db->cfg;
    bool paused = sg_pool_paused(db->pool);
    pthread_mutex_lock(&db->mu);
    sg_db_state state = db->state;
    sg_err down;
    sg_err_copy(&down, &db->last_error);
    /* Known down as soon as the health report says so (sg_db_health_get). */
    if (!paused && (state == SG_STATE_READY || state == SG_STATE_STARTING) && check_overran(db)) {
        state = SG_STATE_DOWN;
        sg_err_set(&down, SG_DB_UNAVAILABLE, "health check did not finish in time");
    }
    pthread_mutex_unlock(&db->mu);

    if (state == SG_STATE_DRAINING || state == SG_STATE_CLOSED) {
        sg_err_set(err, SG_SHUTTING_DOWN, "database %s is shutting down", cfg->name);
        return NULL;
    }
    if (state == SG_STATE_DOWN) {
        sg_err_set(err, SG_DB_UNAVAILABLE, "database %s is down: %s", cfg->name, down.message);
        return NULL;
    }

    sg_query *q = calloc(1, sizeof *q);
    if (q == NULL) {
        sg_err_set(err, SG_INTERNAL, "out of memory");
        return NULL;
    }
    q->db = db;
    /* Timed here rather than in the pool: after a failed acquire the pool
     * may already be gone (sg_pool_acquire's last unlock), db never is. */
    int64_t start_us = sg_clock_us();
    q->pc = sg_pool_acquire(db->pool, start_us / 1000 + cfg->acquire_timeout_ms, err);
    q->acquired_us = sg_clock_us();
    sg_hist_observe_ns(&db->acquire_hist, (q->acquired_us - start_us) * 1000);
    if (q->pc == NULL) {
        query_note_error(q, err);
        free(q);
        return NULL;
    }
    q->c = sg_pool_conn_driver(q->pc);

    if (timeout_ms <= 0 || timeout_ms > cfg->query_timeout_ms)
        timeout_ms = cfg->query_timeout_ms;
    q->timeout_ms = timeout_ms;
    if (read_only)
        db->drv->read_only_next(q->c);
    if (db->drv->exec(q->c, sql, params, n_params, sg_clock_ms() + timeout_ms, err) != 0) {
        query_note_error(q, err);
        sg_hist_observe_ns(&db->usage_hist, (sg_clock_us() - q->acquired_us) * 1000);
        sg_pool_release(db->pool, q->pc, true); /* the pool asks unusable() */
        free(q);
        return NULL;
    }
    return q;
}

sg_query *sg_db_query_begin(sg_db *db, const char *sql, const sg_param *params, size_t n_params,
                            int64_t timeout_ms, sg_err *err)
{
    return query_begin(db, sql, params, n_params, timeout_ms, false, err);
}

/* Read-only goes, in order of preference, to the read-only login (its rights
 * are the guarantee), to the driver's own read-only mode, or is refused. */
sg_query *sg_db_query_begin_opts(sg_db *db, const char *sql, const sg_param *params,
                                 size_t n_params, const sg_query_opts *opts, sg_err *err)
{
    if (!opts->read_only)
        return query_begin(db, sql, params, n_params, opts->timeout_ms, false, err);
    if (db->ro != NULL) {
        sg_query *q = query_begin(db->ro, sql, params, n_params, opts->timeout_ms, false, err);
        if (q == NULL && err != NULL && err->code == SG_DB_UNAVAILABLE) {
            /* Say which login: the database itself may be serving fine. */
            char why[SG_ERR_MESSAGE_MAX];
            snprintf(why, sizeof why, "%s", err->message);
            sg_err_set(err, SG_DB_UNAVAILABLE, "read-only login (%sREADONLY_USER): %.400s",
                       db->cfg->prefix, why);
        }
        return q;
    }
    if (db->drv->read_only_next != NULL)
        return query_begin(db, sql, params, n_params, opts->timeout_ms, true, err);
    sg_err_set(err, SG_FORBIDDEN,
               "this token is read-only (needs rw) and database %s has no read-only login "
               "(%sREADONLY_USER)",
               db->cfg->name, db->cfg->prefix);
    return NULL;
}

int sg_query_next_result(sg_query *q, const sg_column **cols, size_t *n_cols, sg_err *err)
{
    int rc = q->db->drv->next_result(q->c, cols, n_cols, err);
    if (rc < 0)
        query_note_error(q, err);
    return rc;
}

int sg_query_next_row(sg_query *q, const sg_value **values, sg_err *err)
{
    int rc = q->db->drv->next_row(q->c, values, err);
    if (rc < 0)
        query_note_error(q, err);
    return rc;
}

int64_t sg_query_rows_affected(sg_query *q)
{
    return q->db->drv->rows_affected(q->c);
}

void sg_query_end(sg_query *q)
{
    if (q == NULL)
        return;
    bool reusable = q->db->drv->finish(q->c) == 0;
    sg_hist_observe_ns(&q->db->usage_hist, (sg_clock_us() - q->acquired_us) * 1000);
    sg_pool_release(q->db->pool, q->pc, reusable);
    free(q);
}

int sg_db_execute(sg_db *db, const char *sql, const sg_param *params, size_t n_params,
                  int64_t timeout_ms, const sg_sink *sink, void *ud, int64_t *rows_affected,
                  sg_err *err)
{
    sg_query *q = sg_db_query_begin(db, sql, params, n_params, timeout_ms, err);
    if (q == NULL)
        return -1;
    int rc = 0;
    const sg_column *cols;
    size_t n_cols;
    int more;
    while (rc == 0 && (more = sg_query_next_result(q, &cols, &n_cols, err)) != 0) {
        if (more < 0 || (sink->result_begin && sink->result_begin(ud, cols, n_cols) != 0)) {
            rc = more < 0 ? -1 : sg_err_set(err, SG_INTERNAL, "stopped by caller");
            break;
        }
        const sg_value *values;
        int got;
        while ((got = sg_query_next_row(q, &values, err)) > 0) {
            if (sink->row && sink->row(ud, values, n_cols) != 0) {
                rc = sg_err_set(err, SG_INTERNAL, "stopped by caller");
                break;
            }
        }
        if (rc == 0 && got < 0)
            rc = -1;
        if (rc == 0 && sink->result_end && sink->result_end(ud) != 0)
            rc = sg_err_set(err, SG_INTERNAL, "stopped by caller");
    }
    if (rc == 0 && rows_affected != NULL)
        *rows_affected = sg_query_rows_affected(q);
    sg_query_end(q);
    return rc;
}

/* --- Shutdown ------------------------------------------------------------ */

int sg_db_close(sg_db *db, int64_t deadline_ms, unsigned *cancelled)
{
    unsigned ro_cancelled = 0;
    int ro_rc = db->ro != NULL ? sg_db_close(db->ro, deadline_ms, &ro_cancelled) : 0;
    int64_t start = sg_clock_ms();
    int64_t limit = add_grace(deadline_ms > start ? deadline_ms : start);
    pthread_mutex_lock(&db->mu);
    bool join = db->thread_started;
    db->thread_started = false;
    if (db->state != SG_STATE_CLOSED)
        db->state = SG_STATE_DRAINING;
    db->stop = true;
    pthread_cond_signal(&db->wake);
    /* A check in progress says nothing shutdown needs: stop it now. */
    if (db->health != NULL)
        db->drv->interrupt(db->health);
    pthread_mutex_unlock(&db->mu);

    int rc = sg_pool_close(db->pool, deadline_ms, cancelled);

    pthread_mutex_lock(&db->mu);
    while (join && !db->thread_ended && sg_clock_ms() < limit)
        sg_cond_wait_until(&db->ended, &db->mu, limit);
    bool ended = db->thread_ended;
    if (join && !ended) {
        /* Stuck in a driver call that cannot be interrupted (a login):
         * waiting longer would break the shutdown's deadline. */
        db->abandoned = true;
        rc = -1;
    }
    db->state = SG_STATE_CLOSED;
    pthread_mutex_unlock(&db->mu);
    if (join) {
        if (ended)
            pthread_join(db->thread, NULL);
        else
            pthread_detach(db->thread);
    }
    if (cancelled != NULL)
        *cancelled += ro_cancelled;
    return rc == 0 && ro_rc == 0 ? 0 : -1;
}

bool sg_db_abandoned(sg_db *db)
{
    pthread_mutex_lock(&db->mu);
    bool abandoned = db->abandoned;
    pthread_mutex_unlock(&db->mu);
    return abandoned || (db->ro != NULL && sg_db_abandoned(db->ro));
}

void sg_db_free(sg_db *db)
{
    if (db == NULL)
        return;
    sg_db_close(db, sg_clock_ms(), NULL);
    pthread_mutex_lock(&db->mu);
    bool in_use = db->abandoned && !db->thread_ended;
    pthread_mutex_unlock(&db->mu);
    if (in_use)
        return;         /* its detached thread still uses db, its pool and its config */
    sg_db_free(db->ro); /* kept in the same way if its own thread was abandoned */
    sg_pool_free(db->pool);
    pthread_cond_destroy(&db->ended);
    pthread_cond_destroy(&db->wake);
    pthread_mutex_destroy(&db->mu);
    free(db);
}
