/* sqlgate connection pool (pool.h).
 *
 * Locking: one mutex guards every field of sg_pool and of every queued waiter.
 *
 * Waiting: a caller of sg_pool_acquire that finds nothing to take (no idle
 * connection and no free slot, or the pool paused) queues a `waiter` that
 * lives on its own stack and sleeps on the waiter's own condition variable
 * (CLOCK_MONOTONIC, so waits end at sg_clock_ms() deadlines). A waiter is in
 * the queue only while it sleeps or holds the lock; it keeps its place, oldest
 * first, across wake-ups that bring it nothing, and leaves when it takes
 * something, gives up, or releases the lock for a driver call (it queues again
 * at the tail if it must sleep again, which only follows a failed check).
 * Nobody is woken for nothing:
 * - Handoff: a released connection that may be reused goes straight to the
 *   oldest waiter (offer()), which wakes up owning it; nobody else wakes. The
 *   releaser makes the checks acquire makes on an idle connection (offer()).
 *   A waiter whose deadline passes as it is handed one keeps it: none is lost.
 * - Kick: whatever else a waiter could take (a slot freed by a close or a
 *   failed open, idle connections on resume) wakes the oldest waiters not yet
 *   woken, one per thing to take (wake_waiters()). Whenever the lock is free,
 *       p->kicked >= min(available(p), p->waiters.n)
 *   so a free slot is never left unused while someone sleeps. A waiter only
 *   sleeps when available() is 0, which keeps that true as it drops its own
 *   kick; it gives up at its deadline, making no driver call then (it answers
 *   for the pool, never with a doomed open), and passes on what it leaves
 *   with wake_waiters().
 * - sg_pool_close and sg_pool_free kick every waiter. Pause wakes nobody: a
 *   waiter's answer at its deadline reads `paused` when it comes.
 * A caller arriving meanwhile may take a freed slot before the kicked waiter
 * runs; that waiter then sleeps again in its old place. `changed` is only for
 * sg_pool_close and sg_pool_free, which wait for the pool to empty; it is
 * broadcast only once shutting_down is set (notify_drainers()).
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
 * Borrowed connections (including one being validated for an acquirer, and
 * one handed to a waiter that has not woken up yet) sit on their own list so
 * that sg_pool_close can interrupt them. A borrowed connection is unlinked
 * under the lock before its driver connection is closed, so interrupting
 * every borrowed one under the lock is safe.
 */
#include "sqlgate/pool.h"
#include "sqlgate/clock.h"
#include "util.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sg_pool_conn {
    sg_driver_conn *dc;        /* owned */
    sg_pool_conn *prev, *next; /* links in the list that holds it */
    int64_t created_at;        /* monotonic ms */
    int64_t last_used;         /* when it was last released (or opened) */
    int64_t expires_at;        /* created_at + lifetime minus jitter */
    uint64_t generation;       /* pool generation when it was opened */
    int64_t open_ns;           /* how long the driver open took */
};

typedef struct conn_list {
    sg_pool_conn *head, *tail;
    unsigned n;
} conn_list;

/* A caller blocked in sg_pool_acquire; lives on that caller's stack. Others
 * touch it only under the lock and only while it is linked in p->waiters
 * (offer() sets handed, offer() and kick() signal cond), so once it is
 * unlinked and the lock released its owner may destroy cond. */
typedef struct waiter {
    pthread_cond_t cond;        /* its own; initialised before its first sleep */
    bool cond_ready;            /* cond needs pthread_cond_destroy */
    bool queued;                /* linked in p->waiters */
    bool kicked;                /* told to look again; counted in p->kicked */
    sg_pool_conn *handed;       /* given by offer(): the waiter's, on p->borrowed */
    struct waiter *prev, *next; /* links in p->waiters */
} waiter;

typedef struct waiter_list {
    waiter *head, *tail; /* head = oldest */
    unsigned n;
} waiter_list;

struct sg_pool {
    const sg_driver *drv;    /* borrowed */
    const sg_db_config *cfg; /* borrowed */
    pthread_mutex_t mu;
    pthread_condattr_t cond_attr; /* CLOCK_MONOTONIC; for `changed` and every waiter */
    pthread_cond_t changed;       /* sg_pool_close and sg_pool_free wait on it */

    conn_list idle;      /* head = most recently released */
    conn_list borrowed;  /* handed out, being validated, or handed to a waiter */
    unsigned opening;    /* slots reserved for a driver open() in progress */
    unsigned closing;    /* slots whose driver close() is in progress */
    waiter_list waiters; /* callers blocked in acquire, oldest first */
    unsigned kicked;     /* queued waiters with `kicked` set */
    unsigned handed;     /* connections handed to a waiter that has not run yet */

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
    sg_hist creation; /* driver open durations; atomics, no lock needed */

    /* Login rate limit (sg_pool_login_wait): its own lock, never held across
     * a sleep or a driver call, so a throttled login stalls no other caller. */
    pthread_mutex_t login_mu;
    int64_t login_tat_us; /* GCRA theoretical arrival time of the next login */
    uint64_t logins_total;
    uint64_t logins_refused;
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

/* --- Waiters -------------------------------------------------------------- */

static void waiter_enqueue(sg_pool *p, waiter *w)
{
    w->prev = p->waiters.tail;
    w->next = NULL;
    if (p->waiters.tail != NULL)
        p->waiters.tail->next = w;
    else
        p->waiters.head = w;
    p->waiters.tail = w;
    p->waiters.n++;
    w->queued = true;
}

/* Takes w out of the queue, dropping its kick if it had one. */
static void waiter_unlink(sg_pool *p, waiter *w)
{
    if (!w->queued)
        return;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        p->waiters.head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        p->waiters.tail = w->prev;
    w->prev = w->next = NULL;
    p->waiters.n--;
    w->queued = false;
    if (w->kicked) {
        w->kicked = false;
        p->kicked--;
    }
}

static void kick(sg_pool *p, waiter *w)
{
    w->kicked = true;
    p->kicked++;
    pthread_cond_signal(&w->cond);
}

/* What a waiter could take right now: idle connections and free slots. */
static unsigned available(const sg_pool *p)
{
    if (p->paused || p->shutting_down)
        return 0;
    unsigned used = slots_used(p);
    unsigned free_slots = used < p->cfg->pool_max ? p->cfg->pool_max - used : 0;
    return p->idle.n + free_slots;
}

/* Restores the kick invariant (top of file): wakes the oldest waiters not
 * yet woken, one per thing they could take. */
static void wake_waiters(sg_pool *p)
{
    unsigned want = available(p);
    for (waiter *w = p->waiters.head; w != NULL && p->kicked < want; w = w->next)
        if (!w->kicked)
            kick(p, w);
}

/* Close and free: every waiter must leave. */
static void wake_all_waiters(sg_pool *p)
{
    for (waiter *w = p->waiters.head; w != NULL; w = w->next)
        if (!w->kicked)
            kick(p, w);
}

/* sg_pool_close and sg_pool_free wait on `changed` for the counts of
 * has_activity() to drop; they only run once shutting_down is set. */
static void notify_drainers(sg_pool *p)
{
    if (p->shutting_down)
        pthread_cond_broadcast(&p->changed);
}

/* Gives pc (on no list) to the oldest waiter, or else to the idle list.
 *
 * The caller has just made, under the lock, the checks acquire makes on an
 * idle connection it picks: the pool is not shutting down, pc is not stale,
 * its driver does not call it unusable (asked by its owner just before), and
 * it was used just now, so no check ping is due (pc->last_used is now). Not
 * paused is checked here. So the handoff is the acquisition, exactly like a
 * pick from the idle list: a pause or evict that comes before the waiter runs
 * is treated as one that comes while an acquirer pings the connection it
 * picked (it is returned; an evicted one is closed on release). Only close
 * differs: the waiter gives it back (acquire_locked), since sg_pool_free may
 * follow. */
static void offer(sg_pool *p, sg_pool_conn *pc)
{
    waiter *w = p->waiters.head;
    if (w == NULL || p->paused) {
        list_push_head(&p->idle, pc);
        return;
    }
    waiter_unlink(p, w);
    list_push_head(&p->borrowed, pc);
    w->handed = pc;
    p->handed++;
    pthread_cond_signal(&w->cond);
    /* w may have been kicked for a slot that is still free. */
    wake_waiters(p);
}

/* --- Connections ---------------------------------------------------------- */

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
    wake_waiters(p); /* n slots are free to open new connections */
    notify_drainers(p);
}

/* Opens one connection for a slot already counted in p->opening. Called
 * WITHOUT the lock. The login's turn (sg_pool_login_wait) must come by
 * login_by_ms; the driver then gets until deadline_ms. On failure returns
 * NULL with err set; *driver_failed tells a failed driver open (counted as a
 * connect error) from an allocation failure or a refused turn. */
static sg_pool_conn *open_conn(sg_pool *p, int64_t login_by_ms, int64_t deadline_ms, sg_err *err,
                               bool *driver_failed)
{
    *driver_failed = false;
    sg_pool_conn *pc = calloc(1, sizeof *pc);
    if (pc == NULL) {
        sg_err_set(err, SG_INTERNAL, "out of memory opening a connection of database %s",
                   p->cfg->name);
        return NULL;
    }
    sg_err_clear(err);
    if (sg_pool_login_wait(p, login_by_ms, err) != 0) {
        free(pc);
        return NULL;
    }
    int64_t open_started = sg_clock_us();
    pc->dc = p->drv->open(p->cfg, deadline_ms, err);
    pc->open_ns = (sg_clock_us() - open_started) * 1000;
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
    sg_hist_observe_ns(&p->creation, pc->open_ns);
}

/* A failed open gave its slot back; lock held. */
static void open_failed(sg_pool *p, bool driver_failed)
{
    if (driver_failed)
        p->connect_errors++;
    wake_waiters(p);
    notify_drainers(p);
}

/* --- Login rate limit ------------------------------------------------------ */

/* A token bucket of max_logins_per_sec tokens refilled at that rate, kept as
 * GCRA (one timestamp): each login reserves the next slot, so waiters are
 * served in order and none has to be woken. A reservation is made only when
 * its slot comes before the caller's deadline; a caller refused takes
 * nothing from the others. */
int sg_pool_login_wait(sg_pool *p, int64_t deadline_ms, sg_err *err)
{
    unsigned rate = p->cfg->max_logins_per_sec;
    int64_t now = sg_clock_us();
    int64_t at = now;
    pthread_mutex_lock(&p->login_mu);
    if (rate != 0) {
        int64_t interval = 1000000 / rate;
        int64_t burst = 1000000 - interval; /* `rate` logins at once from a full bucket */
        int64_t tat = p->login_tat_us > now ? p->login_tat_us : now;
        at = tat - burst > now ? tat - burst : now;
        /* A turn that leaves the login itself no time is no use. */
        if (at > now && at > (deadline_ms - SG_POOL_LOGIN_MIN_MS) * 1000) {
            p->logins_refused++;
            pthread_mutex_unlock(&p->login_mu);
            return sg_err_set(err, SG_POOL_EXHAUSTED,
                              "database %s: login rate limit (%u per second, MAX_LOGINS_PER_SEC) "
                              "reached; no connection in time",
                              p->cfg->name, rate);
        }
        p->login_tat_us = tat + interval;
    }
    if (at == now) {
        p->logins_total++;
        pthread_mutex_unlock(&p->login_mu);
        return 0;
    }
    pthread_mutex_unlock(&p->login_mu);
    struct timespec ts = {.tv_sec = (time_t)(at / 1000000),
                          .tv_nsec = (long)(at % 1000000) * 1000L};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
    }
    /* Woken too late (a loaded machine oversleeps): the login would start
     * at or past the caller's deadline, bound to fail as the database's
     * fault. It is the limit's answer instead; its slot goes unused. */
    bool late = sg_clock_ms() >= deadline_ms;
    pthread_mutex_lock(&p->login_mu);
    if (late)
        p->logins_refused++;
    else
        p->logins_total++;
    pthread_mutex_unlock(&p->login_mu);
    if (late)
        return sg_err_set(err, SG_POOL_EXHAUSTED,
                          "database %s: login rate limit (%u per second, MAX_LOGINS_PER_SEC) "
                          "reached; no connection in time",
                          p->cfg->name, rate);
    return 0;
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
    if (pthread_mutex_init(&p->login_mu, NULL) != 0)
        goto fail_login_mutex;
    if (sg_condattr_init_monotonic(&p->cond_attr) != 0)
        goto fail_attr;
    if (pthread_cond_init(&p->changed, &p->cond_attr) != 0)
        goto fail_cond;
    return p;

fail_cond:
    pthread_condattr_destroy(&p->cond_attr);
fail_attr:
    pthread_mutex_destroy(&p->login_mu);
fail_login_mutex:
    pthread_mutex_destroy(&p->mu);
fail_mutex:
    free(p);
fail_alloc:
    sg_err_set(err, SG_INTERNAL, "cannot create the pool of database %s", cfg->name);
    return NULL;
}

/* The body of sg_pool_acquire: called with the lock held, returns with it
 * released. w is the caller's waiter: queued while the caller sleeps, and
 * unlinked (by the caller, or by offer() for a handoff) before it returns.
 * After the last unlock only cfg is read, never p, so that sg_pool_close +
 * sg_pool_free may follow at once (cfg outlives the pool). */
static sg_pool_conn *acquire_locked(sg_pool *p, waiter *w, int64_t start, int64_t deadline_ms,
                                    sg_err *err)
{
    const sg_db_config *cfg = p->cfg;
    sg_err e;
    sg_err_clear(&e);

    for (;;) {
        if (w->handed != NULL) {
            /* offer() unlinked us and put it on the borrowed list: ours. Also
             * when our deadline passed meanwhile: taking it loses nothing. */
            sg_pool_conn *pc = w->handed;
            w->handed = NULL;
            p->handed--;
            if (!p->shutting_down) {
                pthread_mutex_unlock(&p->mu);
                return pc;
            }
            /* Closing: give it back, the pool may be freed once we leave. */
            conn_list batch = {0};
            retire(p, &p->borrowed, pc, &batch);
            close_batch(p, &batch);
            continue;
        }
        if (p->shutting_down) {
            /* sg_pool_close and sg_pool_free wait for waiters to leave. */
            waiter_unlink(p, w);
            notify_drainers(p);
            pthread_mutex_unlock(&p->mu);
            sg_err_set(err, SG_SHUTTING_DOWN, "database %s is shutting down", cfg->name);
            return NULL;
        }
        int64_t now = sg_clock_ms();
        /* At the deadline (a waiter woken just then, or a caller with no
         * time at all) a driver call is bound to miss it: the answer is the
         * pool's (POOL_EXHAUSTED or DB_PAUSED below), not the database's.
         * An idle connection that needs no check is still taken. */
        bool late = now >= deadline_ms;

        if (!p->paused && p->idle.head != NULL &&
            !(late && now - p->idle.head->last_used > SG_POOL_VALIDATE_IDLE_MS &&
              !is_stale(p, p->idle.head, now))) {
            sg_pool_conn *pc = p->idle.head;
            conn_list batch = {0};
            /* Out of the queue before the lock is released for a driver call
             * (a waiter is queued only while asleep or holding the lock). If
             * it must sleep again, it queues again at the tail. */
            waiter_unlink(p, w);
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

        if (!p->paused && !late && slots_used(p) < cfg->pool_max) {
            waiter_unlink(p, w);
            p->opening++;
            pthread_mutex_unlock(&p->mu);
            bool driver_failed;
            int64_t open_deadline = min64(deadline_ms, add_ms(now, cfg->connect_timeout_ms));
            sg_pool_conn *pc = open_conn(p, open_deadline, open_deadline, &e, &driver_failed);
            pthread_mutex_lock(&p->mu);
            p->opening--;
            if (pc == NULL) {
                if (e.code == SG_POOL_EXHAUSTED)
                    p->acquire_timeouts++; /* refused by the login rate limit */
                open_failed(p, driver_failed);
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

        /* Nothing to take, or too late to take it: available(p) is 0 from
         * here on unless late. */
        if (late) {
            bool paused = p->paused;
            p->acquire_timeouts++;
            waiter_unlink(p, w);
            /* What this waiter leaves (a free slot, an idle connection to
             * check) goes to the next one: the kick invariant holds again. */
            wake_waiters(p);
            pthread_mutex_unlock(&p->mu);
            if (paused)
                sg_err_set(err, SG_DB_PAUSED, "database %s is paused", cfg->name);
            else
                sg_err_set(err, SG_POOL_EXHAUSTED,
                           "no connection of database %s became free within %lld ms", cfg->name,
                           (long long)(deadline_ms > start ? deadline_ms - start : 0));
            return NULL;
        }
        if (!w->queued) {
            /* First sleep, or again after a failed check of an idle one. */
            if (!w->cond_ready) {
                if (pthread_cond_init(&w->cond, &p->cond_attr) != 0) {
                    pthread_mutex_unlock(&p->mu);
                    sg_err_set(err, SG_INTERNAL, "cannot wait for a connection of database %s",
                               cfg->name);
                    return NULL;
                }
                w->cond_ready = true;
            }
            waiter_enqueue(p, w);
        } else if (w->kicked) {
            /* We looked and found nothing: the kick is spent. */
            w->kicked = false;
            p->kicked--;
        }
        sg_cond_wait_until(&w->cond, &p->mu, deadline_ms);
    }
}

sg_pool_conn *sg_pool_acquire(sg_pool *p, int64_t deadline_ms, sg_err *err)
{
    const int64_t start = sg_clock_ms();
    waiter w;
    memset(&w, 0, sizeof w);
    pthread_mutex_lock(&p->mu);
    sg_pool_conn *pc = acquire_locked(p, &w, start, deadline_ms, err);
    /* w is unlinked and the lock released: nobody signals w.cond any more. */
    if (w.cond_ready)
        pthread_cond_destroy(&w.cond);
    return pc;
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
        offer(p, pc);
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
        /* Only a login that may go now: the background thread that runs this
         * does not sleep on the rate limit; the next round tries again. The
         * login itself gets the whole connect timeout. */
        int64_t now_ms = sg_clock_ms();
        sg_pool_conn *pc =
            open_conn(p, now_ms, add_ms(now_ms, p->cfg->connect_timeout_ms), &e, &driver_failed);
        pthread_mutex_lock(&p->mu);
        p->opening--;
        if (pc == NULL) {
            open_failed(p, driver_failed);
            break;
        }
        publish_new(p, pc);
        if (p->shutting_down) {
            list_push_head(&p->idle, pc);
            retire(p, &p->idle, pc, &batch);
            close_batch(p, &batch);
            break;
        }
        /* New, so it passes every check a handoff needs (see offer()). */
        offer(p, pc);
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
    close_batch(p, &batch); /* wakes waiters for the slots it frees */
    pthread_mutex_unlock(&p->mu);
}

void sg_pool_pause(sg_pool *p)
{
    /* Wakes nobody: waiters keep sleeping until their deadline (or resume). */
    pthread_mutex_lock(&p->mu);
    p->paused = true;
    pthread_mutex_unlock(&p->mu);
}

void sg_pool_resume(sg_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->paused = false;
    wake_waiters(p); /* idle connections and free slots are takeable again */
    pthread_mutex_unlock(&p->mu);
}

bool sg_pool_paused(sg_pool *p)
{
    pthread_mutex_lock(&p->mu);
    bool paused = p->paused;
    pthread_mutex_unlock(&p->mu);
    return paused;
}

void sg_pool_stats_get(sg_pool *p, sg_pool_stats *out)
{
    pthread_mutex_lock(&p->mu);
    out->max = p->cfg->pool_max;
    out->min = p->cfg->pool_min;
    out->open = slots_used(p);
    out->in_use = p->borrowed.n;
    out->idle = p->idle.n;
    out->waiting = p->waiters.n;
    out->paused = p->paused;
    out->acquire_timeouts = p->acquire_timeouts;
    out->connect_errors = p->connect_errors;
    out->opened_total = p->opened_total;
    out->closed_total = p->closed_total;
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_lock(&p->login_mu);
    out->logins_total = p->logins_total;
    out->logins_refused = p->logins_refused;
    pthread_mutex_unlock(&p->login_mu);
}

void sg_pool_creation_get(sg_pool *p, sg_hist_snap *out)
{
    sg_hist_snapshot(&p->creation, out);
}

/* True while some caller is still inside the pool or holds a connection (a
 * connection handed to a waiter that has not run yet is on borrowed). */
static bool has_activity(const sg_pool *p)
{
    return p->borrowed.n + p->opening + p->closing + p->waiters.n > 0;
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
    wake_all_waiters(p);

    while (p->idle.head != NULL)
        retire(p, &p->idle, p->idle.head, &batch);
    close_batch(p, &batch);

    /* Drain: borrowed connections come back and are closed by release. */
    while (has_activity(p) && sg_clock_ms() < deadline_ms)
        sg_cond_wait_until(&p->changed, &p->mu, deadline_ms);

    unsigned n = 0;
    for (sg_pool_conn *pc = p->borrowed.head; pc != NULL; pc = pc->next) {
        p->drv->interrupt(pc->dc);
        n++;
    }
    if (n > 0) {
        int64_t grace = add_ms(sg_clock_ms(), SG_POOL_CANCEL_GRACE_MS);
        while (has_activity(p) && sg_clock_ms() < grace)
            sg_cond_wait_until(&p->changed, &p->mu, grace);
    }
    /* Waiters leave at once (no driver call on their way out; one that was
     * handed a connection passes it to closing first); none may be left
     * inside when the caller goes on to sg_pool_free. */
    while (p->waiters.n + p->handed > 0)
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
    wake_all_waiters(p);
    notify_drainers(p);
    while (p->opening + p->closing + p->waiters.n + p->handed > 0)
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
    pthread_condattr_destroy(&p->cond_attr);
    pthread_mutex_destroy(&p->login_mu);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
