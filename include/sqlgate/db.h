/* sqlgate named database (docs/architecture.md: one per configured name).
 *
 * One object per configured database. It owns its pool, its background
 * thread (health checks, reconnect backoff, pool housekeeping) and its state.
 * Queries borrow a pooled connection for the length of one batch. Nothing here
 * blocks on another database, and reading the health state never waits on the
 * database.
 */
#ifndef SQLGATE_DB_H
#define SQLGATE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "driver.h"
#include "error.h"
#include "pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sg_db_state {
    SG_STATE_STARTING, /* before its first check */
    SG_STATE_READY,
    SG_STATE_DOWN,
    SG_STATE_PAUSED,
    SG_STATE_DRAINING,
    SG_STATE_CLOSED
} sg_db_state;

/* "starting", "ready", ... (static). */
const char *sg_db_state_name(sg_db_state state);

typedef struct sg_db sg_db;

/* A snapshot of the database's health, taken without touching the database. */
typedef struct sg_db_health {
    sg_db_state state;
    bool healthy; /* ready or paused */
    bool critical;
    double latency_ms;       /* last successful check; < 0 when none yet */
    int64_t checked_at_ms;   /* wall clock of the last finished check; 0: none */
    sg_err error;            /* why it is down; code SG_OK when it is not */
    uint64_t reconnects;     /* recoveries from down plus sg_db_reconnect calls */
    uint64_t check_failures; /* health checks that failed */
    sg_pool_stats pool;
} sg_db_health;

/* New database object; starts nothing. cfg and drv are borrowed and must
 * outlive it. NULL with err on allocation failure. When cfg->readonly is set
 * the object also owns a second database for that read-only login (same
 * name, not in any registry): it opens, pauses, resumes, reconnects, closes
 * and is freed with this one; its health is not part of this one's. */
sg_db *sg_db_new(const sg_db_config *cfg, const sg_driver *drv, sg_err *err) SG_MUST_USE;

/* Called on the database's background thread when a health check moves it
 * between starting, ready and down. why is the reason when it went down, else
 * NULL (borrowed for the call). Must not block or call back into db. */
typedef void (*sg_db_state_fn)(void *ud, const sg_db *db, sg_db_state from, sg_db_state to,
                               const sg_err *why);

/* Installs the state listener (fn may be NULL). Call before sg_db_open. */
void sg_db_set_state_fn(sg_db *db, sg_db_state_fn fn, void *ud);

/* Starts the background thread, which checks the database at once. A database
 * that is down is not a failure here: it is reported down and retried with
 * exponential backoff up to retry_max_ms. Fails only when the thread cannot
 * start. */
int sg_db_open(sg_db *db, sg_err *err) SG_MUST_USE;

const char *sg_db_name(const sg_db *db);              /* borrowed */
const sg_db_config *sg_db_config_of(const sg_db *db); /* borrowed */

void sg_db_health_get(sg_db *db, sg_db_health *out);

/* Timings of the database's pooled connections since it was created (its
 * read-only login's pool included), for latency histograms: */
typedef struct sg_db_timings {
    sg_hist_snap acquire;  /* waits in the pool for a connection, successful or not */
    sg_hist_snap usage;    /* from a connection's borrow to its release */
    sg_hist_snap creation; /* driver opens that succeeded */
} sg_db_timings;
void sg_db_timings_get(sg_db *db, sg_db_timings *out);

/* Closes every pooled connection (borrowed ones when they come back) and
 * replaces the health connection, checking the database again at once.
 * Reconnects coalesce: while one is pending or its check has not started,
 * a call joins it (returns false, nothing more happens); at most one starts
 * per SG_DB_RECONNECT_INTERVAL_MS, a later one waits for its turn on the
 * background thread. Returns true when this call asked for a new one. The
 * logins that follow go through the login rate limit (sg_pool_login_wait). */
#define SG_DB_RECONNECT_INTERVAL_MS 1000
bool sg_db_reconnect(sg_db *db);

/* PgBouncer-style PAUSE/RESUME: while paused no new statement starts. */
void sg_db_pause(sg_db *db);
void sg_db_resume(sg_db *db);

/* --- Queries ------------------------------------------------------------- */

typedef struct sg_query sg_query;

/* Borrows a connection (waiting at most acquire_timeout_ms) and starts the
 * batch. timeout_ms (0 = the database's query timeout; larger values are
 * clamped to it) bounds the whole batch, from start to sg_query_end.
 * params are borrowed for the call. Fails fast with SG_DB_UNAVAILABLE while
 * the database is known down, SG_SHUTTING_DOWN once it drains. Returns a new
 * query to be ended with sg_query_end, or NULL with err set. */
sg_query *sg_db_query_begin(sg_db *db, const char *sql, const sg_param *params, size_t n_params,
                            int64_t timeout_ms, sg_err *err) SG_MUST_USE;

typedef struct sg_query_opts {
    int64_t timeout_ms; /* as for sg_db_query_begin */
    /* For a read-only token, enforced by the database:
     * a database with a read-only login (cfg->readonly, SQL Server) runs the
     * batch through that login's own pool; else the driver's read-only mode
     * (driver.h read_only_next: SQLite) refuses, before anything runs, a
     * batch with a statement that would write; else the query is refused.
     * Refusals are SG_FORBIDDEN naming "needs rw". */
    bool read_only;
} sg_query_opts;

/* sg_db_query_begin with options (opts borrowed for the call). */
sg_query *sg_db_query_begin_opts(sg_db *db, const char *sql, const sg_param *params,
                                 size_t n_params, const sg_query_opts *opts,
                                 sg_err *err) SG_MUST_USE;

/* As the driver's next_result / next_row (driver.h); borrowed outputs. */
int sg_query_next_result(sg_query *q, const sg_column **cols, size_t *n_cols, sg_err *err);
int sg_query_next_row(sg_query *q, const sg_value **values, sg_err *err);
int64_t sg_query_rows_affected(sg_query *q);

/* Ends the query (at any point: unread rows are cancelled), gives the
 * connection back to the pool or closes it if it is no longer usable, and
 * frees q. Accepts NULL. */
void sg_query_end(sg_query *q);

/* Push-style facade over the calls above, for callers that do not stream. */
typedef struct sg_sink {
    int (*result_begin)(void *ud, const sg_column *cols, size_t n_cols);
    int (*row)(void *ud, const sg_value *values, size_t n_cols);
    int (*result_end)(void *ud);
} sg_sink;

/* Runs the batch, calling the sink for each result and row. A sink callback
 * returning non-zero stops the batch (err SG_INTERNAL "stopped by caller").
 * *rows_affected (may be NULL) receives the total for statements without
 * columns. */
int sg_db_execute(sg_db *db, const char *sql, const sg_param *params, size_t n_params,
                  int64_t timeout_ms, const sg_sink *sink, void *ud, int64_t *rows_affected,
                  sg_err *err) SG_MUST_USE;

/* --- Shutdown ------------------------------------------------------------ */

/* How long past its deadline (or past the call, when the deadline has passed)
 * sg_db_close may take: the pool's cancel grace, during which the background
 * thread ends too. */
#define SG_DB_CLOSE_GRACE_MS SG_POOL_CANCEL_GRACE_MS

/* State becomes draining (new queries: SG_SHUTTING_DOWN), the background
 * thread is told to stop (a health check in progress is interrupted),
 * borrowed connections get until deadline_ms, then are interrupted (counted
 * in *cancelled, may be NULL); state becomes closed. Returns within
 * SG_DB_CLOSE_GRACE_MS of max(deadline_ms, now): a background thread still
 * inside a driver call then (a login to a server that never answers) is
 * detached, not waited for, and the database is abandoned (sg_db_abandoned).
 * Returns 0 if nothing had to be interrupted or abandoned, else -1.
 * Idempotent. */
int sg_db_close(sg_db *db, int64_t deadline_ms, unsigned *cancelled);

/* True once sg_db_close has abandoned the background thread. That thread
 * still uses the database, its pool and its configuration until its driver
 * call returns, so until then sg_db_free frees nothing and the caller must
 * keep the configuration too: the process is expected to exit. */
bool sg_db_abandoned(sg_db *db);

/* Frees the database (closing it first with an immediate deadline if that was
 * not done); frees nothing of an abandoned one (above). Accepts NULL. */
void sg_db_free(sg_db *db);

#ifdef __cplusplus
}
#endif
#endif
