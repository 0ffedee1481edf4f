/* sqlgate connection pool (pool.h).
 *
 * Locking: one mutex guards every field of sg_pool. One condition variable
 * (CLOCK_MONOTONIC, so waits end at sg_clock_ms() deadlines) is broadcast on
 * every change a blocked caller may be waiting for: a connection back idle, a
 * slot freed, resume, close, the last borrowed connection back. Broadcast, not
 * signal: waiters are few (bounded by the HTTP threads), and a signal taken by
 * a waiter that times out at the same moment would be lost to the others.
 * Waiters are not served in FIFO order; each one is bounded by its deadline.
 *
 * Slots: every driver connection that exists, or is being opened or closed,
 * holds one slot, and slots never exceed cfg->pool_max. A slot is reserved
 * under the lock, the driver call (open, ping, close) runs outside it, and the
 * result is published under the lock again. So
 *   slots = idle.n + borrowed.n + opening + closing
 * at all times, and a connection that is being closed still counts until its
 * driver close() has returned.
 *
 * Idle connections are a LIFO stack: the most recently released one is at the
 * head and handed out first, which keeps a few hot connections busy and lets
 * the ones at the tail (least recently used) expire through idle_timeout_ms.
 *
 * Borrowed connections (including one being validated for an acquirer) sit on
 * their own list so that sg_pool_close can interrupt them. A borrowed
 * connection is unlinked under the lock before its driver connection is
 * closed, so interrupting every borrowed one under the lock is safe.
 */
#include "sqlgate/pool.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct sg_pool_conn {
    sg_driver_conn *dc;        /* owned */
    sg_pool_conn *prev, *next; /* links in the list that holds it */
    int64_t created_at;        /* monotonic ms */
    int64_t last_used;         /* when it was last released (or opened) */
    int64_t expires_at;        /* created_at + lifetime minus jitter */
    uint64_t generation;       /* pool generation when it was opened */
};

typedef struct conn_list {
    sg_pool_conn *head, *tail;
    unsigned n;
} conn_list;

struct sg_pool {
    const sg_driver *drv;    /* borrowed */
    const sg_db_config *cfg; /* borrowed */
    pthread_mutex_t mu;
    pthread_cond_t changed;

    conn_list idle;     /* head = most recently released */
    conn_list borrowed; /* handed out, or being validated for an acquirer */
    unsigned opening;   /* slots reserved for a driver open() in progress */
    unsigned closing;   /* slots whose driver close() is in progress */
    unsigned waiting;   /* callers blocked in acquire */

    bool paused;
    bool shutting_down; /* sg_pool_close was called: acquire fails */
    bool close_running; /* one sg_pool_close is in progress */
    bool close_done;    /* it has finished; close_rc is its answer */
    int close_rc;

    uint64_t generation; /* bumped by sg_pool_evict */
    uint64_t rng;        /* xorshift64 state for lifetime jitter */

    uint64_t acquire_timeouts;
    uint64_t connect_errors;
    uint64_t opened_total;
    uint64_t closed_total;
};

/* --- Lists ---------------------------------------------------------------- */

static void list_push_head(conn_list *l, sg_pool_conn *pc)
{
    pc->prev = NULL;
    pc->next = l->head;
    if (l->head != NULL)
        l->head->prev = pc;
    else
        l->tail = pc;
    l->head = pc;
    l->n++;
}

static void list_remove(conn_list *l, sg_pool_conn *pc)
{
    if (pc->prev != NULL)
        pc->prev->next = pc->next;
    else
        l->head = pc->next;
    if (pc->next != NULL)
        pc->next->prev = pc->prev;
    else
        l->tail = pc->prev;
    pc->prev = pc->next = NULL;
    l->n--;
}

/* --- Helpers (lock held unless said otherwise) ----------------------------- */

static unsigned slots_used(const sg_pool *p)
{
    return p->idle.n + p->borrowed.n + p->opening + p->closing;
}

static uint64_t next_random(sg_pool *p)
{
    uint64_t x = p->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p->rng = x;
    return x;
}

/* Lifetime of a new connection: max_lifetime_ms minus up to 2.5 % at random,
 * so connections opened together do not all expire together. */
static int64_t expiry_for(sg_pool *p, int64_t created_at)
{
    int64_t life = p->cfg->max_lifetime_ms;
    if (life <= 0)
        return INT64_MAX;
    int64_t span = life / 40;
    if (span > 0)
        life -= (int64_t)(next_random(p) % (uint64_t)(span + 1));
    if (life > INT64_MAX - created_at)
        return INT64_MAX;
    return created_at + life;
}

static bool is_stale(const sg_pool *p, const sg_pool_conn *pc, int64_t now)
{
    return now >= pc->expires_at || pc->generation != p->generation;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t add_ms(int64_t t, int64_t ms)
{
    if (ms > 0 && t > INT64_MAX - ms)
        return INT64_MAX;
    return t + ms;
}

static void wait_until(sg_pool *p, int64_t deadline_ms)
{
    if (deadline_ms < 0)
        deadline_ms = 0;
    struct timespec ts;
    ts.tv_sec = (time_t)(deadline_ms / 1000);
    ts.tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
    pthread_cond_timedwait(&p->changed, &p->mu, &ts);
}

/* Moves pc from `from` into `batch`, keeping its slot as a closing one. */
static void retire(sg_pool *p, conn_list *from, sg_pool_conn *pc, conn_list *batch)
{
    list_remove(from, pc);
    list_push_head(batch, pc);
    p->closing++;
}

/* Closes every connection in batch (retired before) with the lock released,
 * then frees their slots. Called and returns with the lock held. */
static void close_batch(sg_pool *p, conn_list *batch)
{
    unsigned n = batch->n;
    if (n == 0)
        return;
    sg_pool_conn *pc = batch->head;
    batch->head = batch->tail = NULL;
    batch->n = 0;
    pthread_mutex_unlock(&p->mu);
    while (pc != NULL) {
        sg_pool_conn *next = pc->next;
        p->drv->close(pc->dc);
        free(pc);
        pc = next;
    }
    pthread_mutex_lock(&p->mu);
    p->closing -= n;
    p->closed_total += n;
    pthread_cond_broadcast(&p->changed);
}

/* Opens one connection for a slot already counted in p->opening. Called
 * WITHOUT the lock. On failure returns NULL with err set; *driver_failed
 * tells a failed driver open (counted as a connect error) from an allocation
 * failure. */
static sg_pool_conn *open_conn(sg_pool *p, int64_t deadline_ms, sg_err *err, bool *driver_failed)
{
    *driver_failed = false;
    sg_pool_conn *pc = calloc(1, sizeof *pc);
    if (pc == NULL) {
        sg_err_set(err, SG_INTERNAL, "out of memory opening a connection of database %s",
                   p->cfg->name);
        return NULL;
    }
    sg_err_clear(err);
    pc->dc = p->drv->open(p->cfg, deadline_ms, err);
    if (pc->dc == NULL) {
        *driver_failed = true;
        if (err->code == SG_OK)
            sg_err_set(err, SG_DB_UNAVAILABLE, "cannot connect to database %s", p->cfg->name);
        free(pc);
        return NULL;
    }
    return pc;
}

/* Stamps a freshly opened connection; lock held. */
static void publish_new(sg_pool *p, sg_pool_conn *pc)
{
    int64_t now = sg_clock_ms();
    pc->created_at = now;
    pc->last_used = now;
    pc->expires_at = expiry_for(p, now);
    pc->generation = p->generation;
    p->opened_total++;
}

/* --- Public API ------------------------------------------------------------ */

sg_pool *sg_pool_new(const sg_driver *drv, const sg_db_config *cfg, sg_err *err)
{
    if (drv == NULL || cfg == NULL) {
        sg_err_set(err, SG_INTERNAL, "pool needs a driver and a configuration");
        return NULL;
    }
    sg_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        goto fail_alloc;
    p->drv = drv;
    p->cfg = cfg;
    p->rng = (uint64_t)sg_clock_ms() ^ (uint64_t)(uintptr_t)p ^ 0x9e3779b97f4a7c15ULL;
    if (p->rng == 0)
        p->rng = 0x9e3779b97f4a7c15ULL;

    if (pthread_mutex_init(&p->mu, NULL) != 0)
        goto fail_mutex;
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        goto fail_attr;
    if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&p->changed, &attr) != 0) {
        pthread_condattr_destroy(&attr);
        goto fail_attr;
    }
    pthread_condattr_destroy(&attr);
    return p;

fail_attr:
    pthread_mutex_destroy(&p->mu);
fail_mutex:
    free(p);
fail_alloc:
    sg_err_set(err, SG_INTERNAL, "cannot create the pool of database %s", cfg->name);
    return NULL;
}

sg_pool_conn *sg_pool_acquire(sg_pool *p, int64_t deadline_ms, sg_err *err)
{
    const int64_t start = sg_clock_ms();
    /* cfg outlives the pool; after the last unlock only cfg is read, never p,
     * so that sg_pool_close + sg_pool_free may follow at once. */
    const sg_db_config *cfg = p->cfg;
    sg_err e;
    sg_err_clear(&e);

    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->shutting_down) {
            /* sg_pool_close and sg_pool_free wait for waiters to leave. */
            pthread_cond_broadcast(&p->changed);
            pthread_mutex_unlock(&p->mu);
            sg_err_set(err, SG_SHUTTING_DOWN, "database %s is shutting down", cfg->name);
            return NULL;
        }
        int64_t now = sg_clock_ms();

        if (!p->paused && p->idle.head != NULL) {
            sg_pool_conn *pc = p->idle.head;
            conn_list batch = {0};
            if (is_stale(p, pc, now)) {
                retire(p, &p->idle, pc, &batch);
                close_batch(p, &batch);
                continue;
            }
            /* Ours from here; on the borrowed list while it is checked so that
             * sg_pool_close can interrupt a slow ping. */
            list_remove(&p->idle, pc);
            list_push_head(&p->borrowed, pc);
            bool validate = now - pc->last_used > SG_POOL_VALIDATE_IDLE_MS;
            pthread_mutex_unlock(&p->mu);

            bool ok = !p->drv->unusable(pc->dc);
            if (ok && validate) {
                const char *q = cfg->health_query ? cfg->health_query : "SELECT 1";
                int64_t ping_deadline =
                    min64(deadline_ms, add_ms(sg_clock_ms(), cfg->health_timeout_ms));
                ok = p->drv->ping(pc->dc, q, ping_deadline, &e) == 0;
            }
            if (ok)
                return pc;

            pthread_mutex_lock(&p->mu);
            retire(p, &p->borrowed, pc, &batch);
            close_batch(p, &batch);
            if (validate && sg_clock_ms() >= deadline_ms) {
                /* The check used up the wait: its failure is the answer,
                 * rather than an open that is bound to miss the deadline. */
                pthread_mutex_unlock(&p->mu);
                if (e.code == SG_OK || e.code == SG_QUERY_TIMEOUT)
                    sg_err_set(&e, SG_DB_UNAVAILABLE,
                               "database %s did not answer a connection check in time", cfg->name);
                sg_err_copy(err, &e);
                return NULL;
            }
            continue;
        }

        if (!p->paused && slots_used(p) < cfg->pool_max) {
            p->opening++;
            pthread_mutex_unlock(&p->mu);
            bool driver_failed;
            int64_t open_deadline = min64(deadline_ms, add_ms(now, cfg->connect_timeout_ms));
            sg_pool_conn *pc = open_conn(p, open_deadline, &e, &driver_failed);
            pthread_mutex_lock(&p->mu);
            p->opening--;
            if (pc == NULL) {
                if (driver_failed)
                    p->connect_errors++;
                pthread_cond_broadcast(&p->changed);
                pthread_mutex_unlock(&p->mu);
                sg_err_copy(err, &e);
                return NULL;
            }
            publish_new(p, pc);
            list_push_head(&p->borrowed, pc);
            if (p->shutting_down) {
                conn_list batch = {0};
                retire(p, &p->borrowed, pc, &batch);
                close_batch(p, &batch);
                continue;
            }
            pthread_mutex_unlock(&p->mu);
            return pc;
        }

        if (now >= deadline_ms) {
            bool paused = p->paused;
            p->acquire_timeouts++;
            pthread_mutex_unlock(&p->mu);
            if (paused)
                sg_err_set(err, SG_DB_PAUSED, "database %s is paused", cfg->name);
            else
                sg_err_set(err, SG_POOL_EXHAUSTED,
                           "no connection of database %s became free within %lld ms", cfg->name,
                           (long long)(deadline_ms > start ? deadline_ms - start : 0));
            return NULL;
        }
        p->waiting++;
        wait_until(p, deadline_ms);
        p->waiting--;
    }
}

sg_driver_conn *sg_pool_conn_driver(sg_pool_conn *pc)
{
    return pc != NULL ? pc->dc : NULL;
}

void sg_pool_release(sg_pool *p, sg_pool_conn *pc, bool reusable)
{
    if (pc == NULL)
        return;
    /* The caller still owns pc here, so asking the driver needs no lock. */
    bool keep = reusable && !p->drv->unusable(pc->dc);

    pthread_mutex_lock(&p->mu);
    int64_t now = sg_clock_ms();
    if (keep && !p->shutting_down && !is_stale(p, pc, now)) {
        list_remove(&p->borrowed, pc);
        pc->last_used = now;
        list_push_head(&p->idle, pc);
        pthread_cond_broadcast(&p->changed);
    } else {
        conn_list batch = {0};
        retire(p, &p->borrowed, pc, &batch);
        close_batch(p, &batch);
    }
    pthread_mutex_unlock(&p->mu);
}

void sg_pool_maintain(sg_pool *p)
{
    sg_err e;
    conn_list batch = {0};

    pthread_mutex_lock(&p->mu);
    if (p->shutting_down) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    int64_t now = sg_clock_ms();
    unsigned live = p->idle.n + p->borrowed.n + p->opening;
    /* From the tail: least recently used first. */
    for (sg_pool_conn *pc = p->idle.tail; pc != NULL;) {
        sg_pool_conn *prev = pc->prev;
        bool idle_long = live > p->cfg->pool_min && now - pc->last_used > p->cfg->idle_timeout_ms;
        if (is_stale(p, pc, now) || idle_long) {
            retire(p, &p->idle, pc, &batch);
            live--;
        }
        pc = prev;
    }
    close_batch(p, &batch);

    while (!p->shutting_down && !p->paused &&
           p->idle.n + p->borrowed.n + p->opening < p->cfg->pool_min &&
           slots_used(p) < p->cfg->pool_max) {
        p->opening++;
        pthread_mutex_unlock(&p->mu);
        bool driver_failed;
        sg_pool_conn *pc =
            open_conn(p, add_ms(sg_clock_ms(), p->cfg->connect_timeout_ms), &e, &driver_failed);
        pthread_mutex_lock(&p->mu);
        p->opening--;
        if (pc == NULL) {
            if (driver_failed)
                p->connect_errors++;
            pthread_cond_broadcast(&p->changed);
            break;
        }
        publish_new(p, pc);
        list_push_head(&p->idle, pc);
        if (p->shutting_down) {
            retire(p, &p->idle, pc, &batch);
            close_batch(p, &batch);
            break;
        }
        pthread_cond_broadcast(&p->changed);
    }
    pthread_mutex_unlock(&p->mu);
}

void sg_pool_evict(sg_pool *p)
{
    conn_list batch = {0};
    pthread_mutex_lock(&p->mu);
    p->generation++;
    while (p->idle.head != NULL)
        retire(p, &p->idle, p->idle.head, &batch);
    close_batch(p, &batch);
    pthread_mutex_unlock(&p->mu);
}

void sg_pool_pause(sg_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->paused = true;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
}

void sg_pool_resume(sg_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->paused = false;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
}

void sg_pool_stats_get(sg_pool *p, sg_pool_stats *out)
{
    pthread_mutex_lock(&p->mu);
    out->max = p->cfg->pool_max;
    out->open = slots_used(p);
    out->in_use = p->borrowed.n;
    out->idle = p->idle.n;
    out->waiting = p->waiting;
    out->paused = p->paused;
    out->acquire_timeouts = p->acquire_timeouts;
    out->connect_errors = p->connect_errors;
    out->opened_total = p->opened_total;
    out->closed_total = p->closed_total;
    pthread_mutex_unlock(&p->mu);
}

/* True while some caller is still inside the pool or holds a connection. */
static bool has_activity(const sg_pool *p)
{
    return p->borrowed.n + p->opening + p->closing + p->waiting > 0;
}

/* Idempotent: the first call does the work; a call made while it runs waits
 * for it; later calls return its result at once with *cancelled = 0, so that
 * totals summed over several calls stay right. */
int sg_pool_close(sg_pool *p, int64_t deadline_ms, unsigned *cancelled)
{
    conn_list batch = {0};
    if (cancelled != NULL)
        *cancelled = 0;

    pthread_mutex_lock(&p->mu);
    while (p->close_running)
        pthread_cond_wait(&p->changed, &p->mu);
    if (p->close_done) {
        int rc = p->close_rc;
        pthread_mutex_unlock(&p->mu);
        return rc;
    }
    p->shutting_down = true;
    p->close_running = true;
    pthread_cond_broadcast(&p->changed);

    while (p->idle.head != NULL)
        retire(p, &p->idle, p->idle.head, &batch);
    close_batch(p, &batch);

    /* Drain: borrowed connections come back and are closed by release. */
    while (has_activity(p) && sg_clock_ms() < deadline_ms)
        wait_until(p, deadline_ms);

    unsigned n = 0;
    for (sg_pool_conn *pc = p->borrowed.head; pc != NULL; pc = pc->next) {
        p->drv->interrupt(pc->dc);
        n++;
    }
    if (n > 0) {
        int64_t grace = add_ms(sg_clock_ms(), SG_POOL_CANCEL_GRACE_MS);
        while (has_activity(p) && sg_clock_ms() < grace)
            wait_until(p, grace);
    }
    /* Waiters leave at once (no driver call on their way out); none may be
     * left inside when the caller goes on to sg_pool_free. */
    while (p->waiting > 0)
        pthread_cond_wait(&p->changed, &p->mu);
    /* Whatever was released meanwhile was closed by sg_pool_release; ones
     * still borrowed are closed when they come back. */
    p->close_rc = n > 0 ? -1 : 0;
    p->close_done = true;
    p->close_running = false;
    pthread_cond_broadcast(&p->changed);
    int rc = p->close_rc;
    pthread_mutex_unlock(&p->mu);
    if (cancelled != NULL)
        *cancelled = n;
    return rc;
}

void sg_pool_free(sg_pool *p)
{
    if (p == NULL)
        return;
    /* Callers already inside the pool (waiting, opening or closing a
     * connection) are sent away and waited for: each of those steps is
     * bounded. Borrowed connections are the caller's to return first. */
    pthread_mutex_lock(&p->mu);
    p->shutting_down = true;
    pthread_cond_broadcast(&p->changed);
    while (p->opening + p->closing + p->waiting > 0)
        pthread_cond_wait(&p->changed, &p->mu);
    assert(p->borrowed.n == 0);
    pthread_mutex_unlock(&p->mu);
    sg_pool_conn *pc = p->idle.head;
    while (pc != NULL) {
        sg_pool_conn *next = pc->next;
        p->drv->close(pc->dc);
        free(pc);
        pc = next;
    }
    pthread_cond_destroy(&p->changed);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
