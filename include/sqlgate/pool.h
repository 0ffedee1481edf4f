/* sqlgate connection pool: bounded set of driver connections for one database.
 *
 * Thread-safe. Knows nothing of health or HTTP; the named database (db.h)
 * drives it: acquire/release per statement, sg_pool_maintain() from its
 * background thread, sg_pool_close() at shutdown.
 *
 * Rules it keeps:
 * - at most cfg->pool_max connections exist (idle + in use + being opened);
 * - acquire waits at most until its deadline (SG_POOL_EXHAUSTED), never longer;
 * - a connection idle for more than SG_POOL_VALIDATE_IDLE_MS is pinged before
 *   it is handed out; one that fails is closed and another is tried;
 * - a connection released as not reusable, reported unusable by its driver,
 *   past its lifetime, or older than the last sg_pool_evict() is closed, never
 *   handed out again;
 * - no driver call (open, ping, close) is made while the pool's lock is held,
 *   so one slow connection never stalls the others.
 */
#ifndef SQLGATE_POOL_H
#define SQLGATE_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "driver.h"
#include "error.h"
#include "hist.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SG_POOL_VALIDATE_IDLE_MS 1000

typedef struct sg_pool sg_pool;
typedef struct sg_pool_conn sg_pool_conn;

typedef struct sg_pool_stats {
    unsigned max;
    unsigned min;  /* POOL_MIN */
    unsigned open; /* idle + in_use (+ being opened) */
    unsigned in_use;
    unsigned idle;
    unsigned waiting; /* callers blocked in acquire */
    bool paused;
    uint64_t acquire_timeouts; /* SG_POOL_EXHAUSTED and SG_DB_PAUSED answers */
    uint64_t connect_errors;   /* failed driver opens */
    uint64_t opened_total;
    uint64_t closed_total;
    uint64_t logins_total;   /* driver opens let through the login rate limit */
    uint64_t logins_refused; /* opens refused by it (the caller's deadline came first) */
} sg_pool_stats;

/* New pool; opens nothing yet. drv and cfg are borrowed and must outlive the
 * pool. Returns NULL with err SG_INTERNAL on allocation failure. */
sg_pool *sg_pool_new(const sg_driver *drv, const sg_db_config *cfg, sg_err *err) SG_MUST_USE;

/* Borrows a connection, waiting until deadline_ms (monotonic) at most.
 * Failures (NULL, err set):
 *   SG_POOL_EXHAUSTED  none became free in time
 *   SG_DB_PAUSED       the pool stayed paused until the deadline
 *   SG_DB_UNAVAILABLE  opening a new connection failed (driver's message); a
 *                      caller found at its deadline makes no driver call and
 *                      gets one of the two above instead
 *   SG_SHUTTING_DOWN   the pool is closing
 * The result must go back through sg_pool_release exactly once. */
sg_pool_conn *sg_pool_acquire(sg_pool *pool, int64_t deadline_ms, sg_err *err) SG_MUST_USE;

/* The driver connection inside; borrowed, valid until released. */
sg_driver_conn *sg_pool_conn_driver(sg_pool_conn *pc);

/* Gives the connection back (steals pc). reusable=false closes it. */
void sg_pool_release(sg_pool *pool, sg_pool_conn *pc, bool reusable);

/* Housekeeping, called periodically: closes idle connections above pool_min
 * idle longer than idle_timeout_ms and idle ones past their lifetime, then
 * opens connections up to pool_min (unless paused or closing). Open failures
 * are counted, not returned. */
void sg_pool_maintain(sg_pool *pool);

/* Login rate limit of the database, shared by every driver open: the
 * pool's own (acquire, maintain) and the health check's (db.c). With
 * cfg->max_logins_per_sec = R (0: unlimited), at most R logins go at once
 * and R per second after that, whatever the callers do. Reserves the next
 * login slot and sleeps until it when it comes before deadline_ms
 * (monotonic) by at least SG_POOL_LOGIN_MIN_MS (a login needs time of its
 * own; a login that may go at once always does); else returns -1 at once,
 * with err SG_POOL_EXHAUSTED and nothing reserved. A caller woken at or
 * past deadline_ms (an oversleep) gets the same answer rather than a login
 * bound to time out. Never call with the pool's lock held. */
#define SG_POOL_LOGIN_MIN_MS 50
int sg_pool_login_wait(sg_pool *pool, int64_t deadline_ms, sg_err *err) SG_MUST_USE;
/* Soft reconnect: idle connections close now, in-use ones when released. */
void sg_pool_evict(sg_pool *pool);

/* Paused: no new acquire succeeds until resumed (waiters keep waiting until
 * their deadline, then get SG_DB_PAUSED); borrowed connections finish. */
void sg_pool_pause(sg_pool *pool);
void sg_pool_resume(sg_pool *pool);

/* Whether the pool is paused: the one place the pause is kept (sg_db reads
 * it from here). */
bool sg_pool_paused(sg_pool *pool);

void sg_pool_stats_get(sg_pool *pool, sg_pool_stats *out);

/* Durations of the driver opens that succeeded (the login's rate-limit wait
 * excluded), since the pool was created; lock-free. */
void sg_pool_creation_get(sg_pool *pool, sg_hist_snap *out);

/* Drains and closes: from now on acquire fails with SG_SHUTTING_DOWN; waits
 * until every borrowed connection is back or deadline_ms passes; then
 * interrupts the ones still borrowed (counted in *cancelled, may be NULL),
 * waits up to SG_POOL_CANCEL_GRACE_MS more for them, and closes everything
 * that came back. Connections still borrowed after that are closed when
 * released. Returns 0 when nothing had to be interrupted, else -1. */
#define SG_POOL_CANCEL_GRACE_MS 500
int sg_pool_close(sg_pool *pool, int64_t deadline_ms, unsigned *cancelled);

/* Frees the pool, closing whatever is idle. Every borrowed connection must
 * have been released before. Accepts NULL. */
void sg_pool_free(sg_pool *pool);

#ifdef __cplusplus
}
#endif
#endif
