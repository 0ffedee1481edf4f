/* Unit tests for the connection pool (pool.h) against the fake driver.
 *
 * Timing bounds are generous on purpose (loaded 2-core machines, valgrind).
 * Assertions are made on the main thread only: worker threads record what
 * they saw and the test checks it after joining them.
 *
 * SQLGATE_SOAK_ITERS (or SOAK_ITERATIONS, which the valgrind test setup
 * sets) sets the iterations per soak thread (default 2000, 1500 for the
 * handoff soak; use a few hundred under valgrind).
 *
 * test_release_wakes_one_waiter reads the kernel's per-thread context switch
 * counts from /proc (Linux only, like the project).
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "check_main.h"
#include "fake_driver.h"
#include "sqlgate/pool.h"

#include "../../src/lib/util.h"

#define DB "t"

static sg_pool *make_pool(const sg_db_config *cfg)
{
    sg_err err;
    sg_pool *p = sg_pool_new(&fake_driver, cfg, &err);
    ck_assert_msg(p != NULL, "sg_pool_new: %s", err.message);
    return p;
}

static sg_pool_conn *must_acquire(sg_pool *p, int64_t wait_ms)
{
    sg_err err;
    sg_pool_conn *pc = sg_pool_acquire(p, sg_clock_ms() + wait_ms, &err);
    ck_assert_msg(pc != NULL, "acquire failed: %s %s", sg_code_name(err.code), err.message);
    return pc;
}

static sg_pool_stats stats_of(sg_pool *p)
{
    sg_pool_stats s;
    sg_pool_stats_get(p, &s);
    return s;
}

static uint64_t conn_id(sg_pool_conn *pc)
{
    return fake_conn_id(sg_pool_conn_driver(pc));
}

/* Polls until `waiting` callers are blocked in acquire; false on timeout. */
static bool wait_for_waiters(sg_pool *p, unsigned waiting, int64_t timeout_ms)
{
    int64_t end = sg_clock_ms() + timeout_ms;
    while (sg_clock_ms() < end) {
        if (stats_of(p).waiting >= waiting)
            return true;
        sg_sleep_ms(5);
    }
    return false;
}

/* Polls until n fake statements run on DB; false on timeout. */
static bool wait_for_running(uint64_t n, int64_t timeout_ms)
{
    int64_t end = sg_clock_ms() + timeout_ms;
    while (sg_clock_ms() < end) {
        fake_counts c;
        fake_driver_counts(DB, &c);
        if (c.running >= n)
            return true;
        sg_sleep_ms(5);
    }
    return false;
}

/* Shuts the pool down and checks that no fake connection was leaked. */
static void close_and_free(sg_pool *p)
{
    unsigned cancelled = 99;
    ck_assert_int_eq(sg_pool_close(p, sg_clock_ms() + 5000, &cancelled), 0);
    ck_assert_uint_eq(cancelled, 0);
    sg_pool_free(p);
    ck_assert_uint_eq(fake_driver_live(DB), 0);
}

static void setup(void)
{
    fake_driver_reset();
}

/* --- A thread that acquires, optionally runs a statement, releases -------- */

typedef struct borrower {
    sg_pool *pool;
    int64_t wait_ms; /* acquire deadline from start */
    const char *sql; /* NULL: no statement */
    int64_t exec_ms; /* statement deadline from its start */
    int64_t hold_ms; /* sleep before release */
    pthread_t thread;
    /* results */
    bool got;
    sg_err err;
    int exec_rc;
    sg_err exec_err;
    uint64_t id;
    int64_t elapsed_ms; /* of the acquire */
} borrower;

static void *borrower_main(void *arg)
{
    borrower *b = arg;
    int64_t t0 = sg_clock_ms();
    sg_pool_conn *pc = sg_pool_acquire(b->pool, t0 + b->wait_ms, &b->err);
    b->elapsed_ms = sg_clock_ms() - t0;
    if (pc == NULL)
        return NULL;
    b->got = true;
    b->id = conn_id(pc);
    bool reusable = true;
    if (b->sql != NULL) {
        sg_driver_conn *dc = sg_pool_conn_driver(pc);
        b->exec_rc =
            fake_driver.exec(dc, b->sql, NULL, 0, sg_clock_ms() + b->exec_ms, &b->exec_err);
        if (b->exec_rc == 0)
            reusable = fake_driver.finish(dc) == 0;
    }
    if (b->hold_ms > 0)
        sg_sleep_ms(b->hold_ms);
    sg_pool_release(b->pool, pc, reusable);
    return NULL;
}

static void borrower_start(borrower *b)
{
    ck_assert_int_eq(pthread_create(&b->thread, NULL, borrower_main, b), 0);
}

static void borrower_join(borrower *b)
{
    ck_assert_int_eq(pthread_join(b->thread, NULL), 0);
}

/* --- Basics --------------------------------------------------------------- */

START_TEST(test_acquire_release_basic)
{
    sg_db_config cfg = fake_db_config(DB, 2);
    sg_pool *p = make_pool(&cfg);
    sg_pool_stats s = stats_of(p);
    ck_assert_uint_eq(s.max, 2);
    ck_assert_uint_eq(s.open, 0);
    ck_assert_uint_eq(fake_driver_live(DB), 0);

    sg_pool_conn *a = must_acquire(p, 1000);
    ck_assert_ptr_nonnull(sg_pool_conn_driver(a));
    s = stats_of(p);
    ck_assert_uint_eq(s.open, 1);
    ck_assert_uint_eq(s.in_use, 1);
    ck_assert_uint_eq(s.idle, 0);
    ck_assert_uint_eq(s.opened_total, 1);

    /* The statement runs through the pooled driver connection. */
    sg_err err;
    sg_driver_conn *dc = sg_pool_conn_driver(a);
    ck_assert_int_eq(fake_driver.exec(dc, "SELECT n", NULL, 0, sg_clock_ms() + 1000, &err), 0);
    const sg_column *cols;
    size_t ncols;
    ck_assert_int_eq(fake_driver.next_result(dc, &cols, &ncols, &err), 1);
    ck_assert_str_eq(cols[0].name, "n");
    const sg_value *v;
    ck_assert_int_eq(fake_driver.next_row(dc, &v, &err), 1);
    ck_assert_int_eq(v[0].u.i, 1);
    ck_assert_int_eq(fake_driver.next_row(dc, &v, &err), 0);
    ck_assert_int_eq(fake_driver.finish(dc), 0);

    uint64_t id = conn_id(a);
    sg_pool_release(p, a, true);
    s = stats_of(p);
    ck_assert_uint_eq(s.open, 1);
    ck_assert_uint_eq(s.in_use, 0);
    ck_assert_uint_eq(s.idle, 1);

    /* Reused, not reopened. */
    a = must_acquire(p, 1000);
    ck_assert_uint_eq(conn_id(a), id);
    sg_pool_conn *b = must_acquire(p, 1000);
    ck_assert_uint_ne(conn_id(b), id);
    s = stats_of(p);
    ck_assert_uint_eq(s.open, 2);
    ck_assert_uint_eq(s.in_use, 2);
    ck_assert_uint_eq(s.opened_total, 2);
    ck_assert_uint_eq(fake_driver_live(DB), 2);

    /* LIFO: the connection released last is handed out first. */
    uint64_t idb = conn_id(b);
    sg_pool_release(p, a, true);
    sg_pool_release(p, b, true);
    a = must_acquire(p, 1000);
    ck_assert_uint_eq(conn_id(a), idb);
    sg_pool_release(p, a, true);

    close_and_free(p);
}
END_TEST

START_TEST(test_free_null_and_idle)
{
    sg_pool_free(NULL);
    sg_db_config cfg = fake_db_config(DB, 3);
    sg_pool *p = make_pool(&cfg);
    sg_pool_conn *a = must_acquire(p, 1000);
    sg_pool_conn *b = must_acquire(p, 1000);
    sg_pool_release(p, a, true);
    sg_pool_release(p, b, true);
    ck_assert_uint_eq(fake_driver_live(DB), 2);
    /* Free without close closes what is idle. */
    sg_pool_free(p);
    ck_assert_uint_eq(fake_driver_live(DB), 0);
}
END_TEST

/* --- Bounds under concurrency --------------------------------------------- */

typedef struct hammer {
    sg_pool *pool;
    unsigned iters;
    atomic_uint *borrowed;
    atomic_uint *max_borrowed;
    unsigned failures;
    pthread_t thread;
} hammer;

static void *hammer_main(void *arg)
{
    hammer *h = arg;
    for (unsigned i = 0; i < h->iters; i++) {
        sg_err err;
        sg_pool_conn *pc = sg_pool_acquire(h->pool, sg_clock_ms() + 10000, &err);
        if (pc == NULL) {
            h->failures++;
            continue;
        }
        unsigned now = atomic_fetch_add(h->borrowed, 1) + 1;
        unsigned max = atomic_load(h->max_borrowed);
        while (now > max && !atomic_compare_exchange_weak(h->max_borrowed, &max, now)) {
        }
        if (i % 3 == 0)
            sg_sleep_ms(1);
        atomic_fetch_sub(h->borrowed, 1);
        sg_pool_release(h->pool, pc, i % 17 != 0);
    }
    return NULL;
}

START_TEST(test_bounds_under_threads)
{
    enum { THREADS = 8, POOL_MAX = 3 };
    sg_db_config cfg = fake_db_config(DB, POOL_MAX);
    sg_pool *p = make_pool(&cfg);
    atomic_uint borrowed = 0, max_borrowed = 0;
    hammer h[THREADS];
    for (int i = 0; i < THREADS; i++) {
        h[i] =
            (hammer){.pool = p, .iters = 300, .borrowed = &borrowed, .max_borrowed = &max_borrowed};
        ck_assert_int_eq(pthread_create(&h[i].thread, NULL, hammer_main, &h[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        ck_assert_int_eq(pthread_join(h[i].thread, NULL), 0);
        ck_assert_uint_eq(h[i].failures, 0);
    }
    fake_counts fc;
    fake_driver_counts(DB, &fc);
    ck_assert_uint_le(fc.max_live, POOL_MAX);
    ck_assert_uint_le(atomic_load(&max_borrowed), POOL_MAX);
    ck_assert_uint_ge(atomic_load(&max_borrowed), 2); /* there was contention */
    ck_assert_uint_gt(fc.closed, 0);                  /* non-reusable releases closed */
    sg_pool_stats s = stats_of(p);
    ck_assert_uint_eq(s.in_use, 0);
    ck_assert_uint_eq(s.waiting, 0);
    ck_assert_uint_le(s.open, POOL_MAX);
    ck_assert_uint_eq(s.open, fc.live);
    ck_assert_uint_eq(s.opened_total, fc.opened);
    ck_assert_uint_eq(s.closed_total, fc.closed);
    close_and_free(p);
}
END_TEST

/* --- Waiting -------------------------------------------------------------- */

START_TEST(test_acquire_timeout)
{
    sg_db_config cfg = fake_db_config(DB, 1);
    sg_pool *p = make_pool(&cfg);
    sg_pool_conn *held = must_acquire(p, 1000);

    sg_err err;
    int64_t t0 = sg_clock_ms();
    sg_pool_conn *pc = sg_pool_acquire(p, t0 + 300, &err);
    int64_t elapsed = sg_clock_ms() - t0;
    ck_assert_ptr_null(pc);
    ck_assert_int_eq(err.code, SG_POOL_EXHAUSTED);
    ck_assert_int_ge(elapsed, 250);
    ck_assert_int_lt(elapsed, 2300);
    ck_assert_str_eq(err.message, "no connection of database t became free within 300 ms");
    sg_pool_stats s = stats_of(p);
    ck_assert_uint_eq(s.acquire_timeouts, 1);
    ck_assert_uint_eq(s.waiting, 0);
    ck_assert_uint_eq(s.open, 1);

    /* A deadline already past answers at once. */
    t0 = sg_clock_ms();
    ck_assert_ptr_null(sg_pool_acquire(p, t0 - 10, &err));
    ck_assert_int_eq(err.code, SG_POOL_EXHAUSTED);
    ck_assert_int_lt(sg_clock_ms() - t0, 1000);
    ck_assert_uint_eq(stats_of(p).acquire_timeouts, 2);

    sg_pool_release(p, held, true);
    close_and_free(p);
}
END_TEST

START_TEST(test_waiter_gets_released_conn)
{
    sg_db_config cfg = fake_db_config(DB, 1);
    sg_pool *p = make_pool(&cfg);
    sg_pool_conn *held = must_acquire(p, 1000);
    uint64_t id = conn_id(held);

    borrower b = {.pool = p, .wait_ms = 10000};
    borrower_start(&b);
    ck_assert(wait_for_waiters(p, 1, 5000));
    sg_pool_release(p, held, true);
    borrower_join(&b);
    ck_assert_msg(b.got, "waiter failed: %s", b.err.message);
    ck_assert_uint_eq(b.id, id);
    ck_assert_int_lt(b.elapsed_ms, 9000);
    sg_pool_stats s = stats_of(p);
    ck_assert_uint_eq(s.opened_total, 1);
    ck_assert_uint_eq(s.waiting, 0);
    ck_assert_uint_eq(s.acquire_timeouts, 0);
    close_and_free(p);
}
END_TEST

START_TEST(test_waiter_gets_freed_slot)
{
    /* A connection closed on release frees its slot: the waiter opens anew. */
    sg_db_config cfg = fake_db_config(DB, 1);
    sg_pool *p = make_pool(&cfg);
    sg_pool_conn *held = must_acquire(p, 1000);
    uint64_t id = conn_id(held);

    borrower b = {.pool = p, .wait_ms = 10000};
    borrower_start(&b);
    ck_assert(wait_for_waiters(p, 1, 5000));
    sg_pool_release(p, held, false);
    borrower_join(&b);
    ck_assert_msg(b.got, "waiter failed: %s", b.err.message);
    ck_assert_uint_ne(b.id, id);
    ck_assert_uint_eq(stats_of(p).opened_total, 2);
    close_and_free(p);
}
END_TEST

/* --- Open failures -------------------------------------------------------- */

START_TEST(test_open_failure_no_slot_leak)
{
    sg_db_config cfg = fake_db_config(DB, 2);
    sg_pool *p = make_pool(&cfg);
    fake_driver_set(DB, FAKE_FAIL_OPEN, FAKE_ALWAYS);
    for (int i = 0; i < 5; i++) {
        sg_err err;
        int64_t t0 = sg_clock_ms();
        ck_assert_ptr_null(sg_pool_acquire(p, t0 + 3000, &err));
        ck_assert_int_eq(err.code, SG_DB_UNAVAILABLE);
        ck_assert_str_eq(err.message, "fake: connection refused");
        ck_assert_int_lt(sg_clock_ms() - t0, 2000); /* fails fast, does not wait */
    }
    sg_pool_stats s = stats_of(p);
    ck_assert_uint_eq(s.connect_errors, 5);
    ck_assert_uint_eq(s.open, 0);
    ck_assert_uint_eq(s.acquire_timeouts, 0);

    fake_driver_set(DB, FAKE_FAIL_OPEN, 0);
    sg_pool_conn *a = must_acquire(p, 1000);
    sg_pool_conn *b = must_acquire(p, 1000);
    ck_assert_uint_eq(stats_of(p).open, 2);
    sg_pool_release(p, a, true);
    sg_pool_release(p, b, true);
    close_and_free(p);
}
END_TEST

START_TEST(test_open_timeout_uses_deadline)
{
    sg_db_config cfg = fake_db_config(DB, 1);
    cfg.connect_timeout_ms = 200;
    sg_pool *p = make_pool(&cfg);
    fake_driver_set(DB, FAKE_OPEN_DELAY_MS, 60000);
    sg_err err;
    int64_t t0 = sg_clock_ms();
    ck_assert_ptr_null(sg_pool_acquire(p, t0 + 10000, &err));
    int64_t elapsed = sg_clock_ms() - t0;
    ck_assert_int_eq(err.code, SG_DB_UNAVAILABLE);
    ck_assert_str_eq(err.message, "fake: login timed out");
    ck_assert_int_ge(elapsed, 150);
    ck_assert_int_lt(elapsed, 2200);
    ck_assert_uint_eq(stats_of(p).open, 0);
    close_and_free(p);
}
END_TEST

START_TEST(test_recovery_after_failures)
{
    sg_db_config cfg = fake_db_config(DB, 2);
    sg_pool *p = make_pool(&cfg);
    fake_driver_set(DB, FAKE_FAIL_OPEN, 3);
    sg_err err;
    for (int i = 0; i < 3; i++) {
        ck_assert_ptr_null(sg_pool_acquire(p, sg_clock_ms() + 1000, &err));
        ck_assert_int_eq(err.code, SG_DB_UNAVAILABLE);
    }
    sg_pool_conn *a = must_acquire(p, 1000);
    sg_pool_stats s = stats_of(p);
    ck_assert_uint_eq(s.connect_errors, 3);
    ck_assert_uint_eq(s.open, 1);
    fake_counts fc;
    fake_driver_counts(DB, &fc);
    ck_assert_uint_eq(fc.open_failures, 3);
    sg_pool_release(p, a, true);
    close_and_free(p);
}
END_TEST

/* --- Validation and replacement ------------------------------------------- */

START_TEST(test_validation_after_idle)
{
    sg_db_config cfg = fake_db_config(DB, 1);
    sg_pool *p = make_pool(&cfg);
    fake_counts fc;

    sg_pool_conn *a = must_acquire(p, 1000);
    uint64_t id = conn_id(a);
    sg_pool_release(p, a, true);
    a = must_acquire(p, 1000); /* idle for moments: no ping */
    fake_driver_counts(DB, &fc);
    ck_assert_uint_eq(fc.pings, 0);
    sg_pool_release(p, a, true);

    sg_sleep_ms(SG_POOL_VALIDATE_IDLE_MS + 150);
    a = must_acquire(p, 3000);
    fake_driver_counts(DB, &fc);
    ck_assert_uint_eq(fc.pings, 1);
    ck_assert_uint_eq(conn_id(a), id);
    sg_pool_release(p, a, true);

    /* A failing ping: the connection is closed and replaced. */
    sg_sleep_ms(SG_POOL_VALIDATE_IDLE_MS + 150);
    fake_driver_set(DB, FAKE_FAIL_PING, 1);
    a = must_acquire(p, 3000);
    fake_driver_counts(DB, &fc);
    ck_assert_uint_eq(fc.pings, 2);
    ck_assert_uint_eq(fc.ping_failures, 1);
    ck_assert_uint_ne(conn_id(a), id);
    ck_assert_uint_eq(fc.closed, 1);
    ck_assert_uint_eq(fc.live, 1);
    sg_pool_stats s = stats_of(p);
    ck_assert_uint_eq(s.open, 1);
    ck_assert_uint_eq(s.opened_total, 2);
    ck_assert_uint_eq(s.closed_total, 1);
    sg_pool_release(p, a, true);
    close_and_free(p);
}
END_TEST

START_TEST(test_broken_idle_not_handed_out)
{
    sg_db_config cfg = fake_db_config(DB, 2);
    sg_pool *p = make_pool(&cfg);
    sg_pool_conn *a = must_acquire(p, 1000);
    uint64_t id = conn_id(a);
    sg_pool_release(p, a, true);
    fake_driver_break_all(DB); /* the server went away while it was idle */
    a = must_acquire(p, 1000);
    ck_assert_uint_ne(conn_id(a), id);
    ck_assert_uint_eq(fake_driver_live(DB), 1);
    sg_pool_release(p, a, true);
    close_and_free(p);
}
END_TEST

START_TEST(test_release_not_reusable_closes)
{
    sg_db_config cfg = fake_db_config(DB, 2);
    sg_pool *p = make_pool(&cfg);
    fake_counts fc;

    sg_pool_conn *a = must_acquire(p, 1000);
    sg_pool_release(p, a, false);
    fake_driver_counts(DB, &fc);
    ck_assert_uint_eq(fc.closed, 1);
    ck_assert_uint_eq(stats_of(p).open, 0);

    /* Reported unusable by the driver, although released as reusable. */
    a = must_acquire(p, 1000);
    fake_conn_break(sg_pool_conn_driver(a));
    sg_pool_release(p, a, true);
    fake_driver_counts(DB, &fc);
    ck_assert_uint_eq(fc.closed, 2);
    ck_assert_uint_eq(stats_of(p).open, 0);

    /* Broken by a failed statement. */
    a = must_acquire(p, 1000);
    sg_err err;
    ck_assert_int_eq(
        fake_driver.exec(sg_pool_conn_driver(a), "fake:break", NULL, 0, sg_clock_ms() + 1000, &err),
        -1);
    ck_assert_int_eq(err.code, SG_DB_UNAVAILABLE);
    sg_pool_release(p, a, true);
    fake_driver_counts(DB, &fc);
    ck_assert_uint_eq(fc.closed, 3);

    /* A plain SQL error leaves the connection usable: kept. */
    a = must_acquire(p, 1000);
    ck_assert_int_eq(
        fake_driver.exec(sg_pool_conn_driver(a), "fake:error", NULL, 0, sg_clock_ms() + 1000, &err),
        -1);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    ck_assert(err.has_sql);
    ck_assert_int_eq(err.sql.number, 208);
    sg_pool_release(p, a, true);
    fake_driver_counts(DB, &fc);
    ck_assert_uint_eq(fc.closed, 3);
    sg_pool_stats s = stats_of(p);
    ck_assert_uint_eq(s.idle, 1);
    ck_assert_uint_eq(s.closed_total, 3);
    close_and_free(p);
}
END_TEST

START_TEST(test_lifetime_expiry)
{
    sg_db_config cfg = fake_db_config(DB, 2);
    cfg.max_lifetime_ms = 200;
    sg_pool *p = make_pool(&cfg);

    /* An idle connection past its lifetime is replaced on acquire. */
    sg_pool_conn *a = must_acquire(p, 1000);
    uint64_t id = conn_id(a);
    sg_pool_release(p, a, true);
    sg_sleep_ms(300);
    a = must_acquire(p, 1000);
    ck_assert_uint_ne(conn_id(a), id);
    fake_counts fc;
    fake_driver_counts(DB, &fc);
    ck_assert_uint_eq(fc.closed, 1);

    /* A borrowed connection past its lifetime is closed on release. */
    sg_sleep_ms(300);
    sg_pool_release(p, a, true);
    fake_driver_counts(DB, &fc);
    ck_assert_uint_eq(fc.closed, 2);
    ck_assert_uint_eq(stats_of(p).open, 0);

    /* And maintain closes idle ones past their lifetime. */
    a = must_acquire(p, 1000);
    sg_pool_release(p, a, true);
    sg_sleep_ms(300);
    sg_pool_maintain(p);
    ck_assert_uint_eq(stats_of(p).open, 0);
    ck_assert_uint_eq(fake_driver_live(DB), 0);
    close_and_free(p);
}
END_TEST

START_TEST(test_idle_timeout_keeps_min)
{
    sg_db_config cfg = fake_db_config(DB, 4);
    cfg.pool_min = 1;
    cfg.idle_timeout_ms = 100;
    sg_pool *p = make_pool(&cfg);
    sg_pool_conn *c[3];
    for (int i = 0; i < 3; i++)
        c[i] = must_acquire(p, 1000);
    uint64_t last = conn_id(c[2]);
    for (int i = 0; i < 3; i++)
        sg_pool_release(p, c[i], true);
    ck_assert_uint_eq(stats_of(p).idle, 3);

    sg_pool_maintain(p); /* nothing idle long enough yet */
    ck_assert_uint_eq(stats_of(p).idle, 3);

    sg_sleep_ms(250);
    sg_pool_maintain(p);
    sg_pool_stats s = stats_of(p);
    ck_assert_uint_eq(s.open, 1);
    ck_assert_uint_eq(s.idle, 1);
    ck_assert_uint_eq(s.closed_total, 2);
    ck_assert_uint_eq(fake_driver_live(DB), 1);
    /* The one kept is the most recently used. */
    sg_pool_conn *a = must_acquire(p, 1000);
    ck_assert_uint_eq(conn_id(a), last);
    sg_pool_release(p, a, true);

    sg_sleep_ms(250);
    sg_pool_maintain(p); /* never below pool_min */
    ck_assert_uint_eq(stats_of(p).open, 1);
    close_and_free(p);
}
END_TEST

START_TEST(test_maintain_opens_min)
{
    sg_db_config cfg = fake_db_config(DB, 5);
    cfg.pool_min = 3;
    sg_pool *p = make_pool(&cfg);

    /* Stops at the first failure and counts it. */
    fake_driver_set(DB, FAKE_FAIL_OPEN, 1);
    sg_pool_maintain(p);
    sg_pool_stats s = stats_of(p);
    ck_assert_uint_eq(s.open, 0);
    ck_assert_uint_eq(s.connect_errors, 1);
    fake_counts fc;
    fake_driver_counts(DB, &fc);
    ck_assert_uint_eq(fc.open_failures, 1);

    /* Paused: opens nothing. */
    sg_pool_pause(p);
    sg_pool_maintain(p);
    ck_assert_uint_eq(stats_of(p).open, 0);
    sg_pool_resume(p);

    sg_pool_maintain(p);
    s = stats_of(p);
    ck_assert_uint_eq(s.open, 3);
    ck_assert_uint_eq(s.idle, 3);
    ck_assert_uint_eq(fake_driver_live(DB), 3);

    /* Borrowed ones count toward pool_min. */
    sg_pool_conn *a = must_acquire(p, 1000);
    sg_pool_maintain(p);
    ck_assert_uint_eq(stats_of(p).open, 3);
    sg_pool_release(p, a, false);
    ck_assert_uint_eq(stats_of(p).open, 2);
    sg_pool_maintain(p);
    ck_assert_uint_eq(stats_of(p).open, 3);
    close_and_free(p);
}
END_TEST

/* The refill does not wait for a login turn, but the login it starts gets
 * the whole connect timeout: a server that takes a moment to answer is not a
 * failed refill. */
START_TEST(test_maintain_login_gets_connect_timeout)
{
    sg_db_config cfg = fake_db_config(DB, 2);
    cfg.pool_min = 1;
    sg_pool *p = make_pool(&cfg);
    fake_driver_set(DB, FAKE_OPEN_DELAY_MS, 50);
    sg_pool_maintain(p);
    sg_pool_stats s = stats_of(p);
    ck_assert_uint_eq(s.open, 1);
    ck_assert_uint_eq(s.connect_errors, 0);
    close_and_free(p);
}
END_TEST

START_TEST(test_evict)
{
    sg_db_config cfg = fake_db_config(DB, 3);
    sg_pool *p = make_pool(&cfg);
    sg_pool_conn *a = must_acquire(p, 1000);
    sg_pool_conn *b = must_acquire(p, 1000);
    uint64_t ida = conn_id(a), idb = conn_id(b);
    sg_pool_release(p, b, true);
    ck_assert_uint_eq(stats_of(p).idle, 1);

    sg_pool_evict(p);
    fake_counts fc;
    fake_driver_counts(DB, &fc);
    ck_assert_uint_eq(fc.closed, 1); /* the idle one, at once */
    sg_pool_stats s = stats_of(p);
    ck_assert_uint_eq(s.idle, 0);
    ck_assert_uint_eq(s.in_use, 1);

    sg_pool_release(p, a, true); /* borrowed before the evict: closed */
    fake_driver_counts(DB, &fc);
    ck_assert_uint_eq(fc.closed, 2);
    ck_assert_uint_eq(stats_of(p).open, 0);

    a = must_acquire(p, 1000);
    ck_assert_uint_ne(conn_id(a), ida);
    ck_assert_uint_ne(conn_id(a), idb);
    sg_pool_release(p, a, true); /* opened after the evict: kept */
    ck_assert_uint_eq(stats_of(p).idle, 1);
    close_and_free(p);
}
END_TEST

/* --- Pause ---------------------------------------------------------------- */

START_TEST(test_pause_resume)
{
    sg_db_config cfg = fake_db_config(DB, 2);
    sg_pool *p = make_pool(&cfg);
    sg_pool_conn *a = must_acquire(p, 1000);
    sg_pool_release(p, a, true);

    sg_pool_pause(p);
    ck_assert(stats_of(p).paused);
    sg_err err;
    int64_t t0 = sg_clock_ms();
    ck_assert_ptr_null(sg_pool_acquire(p, t0 + 300, &err));
    int64_t elapsed = sg_clock_ms() - t0;
    ck_assert_int_eq(err.code, SG_DB_PAUSED);
    ck_assert_str_eq(err.message, "database t is paused");
    ck_assert_int_ge(elapsed, 250);
    ck_assert_int_lt(elapsed, 2300);
    ck_assert_uint_eq(stats_of(p).acquire_timeouts, 1);

    borrower b = {.pool = p, .wait_ms = 10000};
    borrower_start(&b);
    ck_assert(wait_for_waiters(p, 1, 5000));
    sg_sleep_ms(50);
    sg_pool_resume(p);
    borrower_join(&b);
    ck_assert_msg(b.got, "waiter failed: %s", b.err.message);
    ck_assert_int_lt(b.elapsed_ms, 9000);
    sg_pool_stats s = stats_of(p);
    ck_assert(!s.paused);
    ck_assert_uint_eq(s.acquire_timeouts, 1);
    close_and_free(p);
}
END_TEST

START_TEST(test_pause_lets_borrowed_finish)
{
    sg_db_config cfg = fake_db_config(DB, 2);
    sg_pool *p = make_pool(&cfg);
    sg_pool_conn *a = must_acquire(p, 1000);
    sg_pool_pause(p);
    sg_pool_release(p, a, true); /* goes back idle, not closed */
    sg_pool_stats s = stats_of(p);
    ck_assert_uint_eq(s.idle, 1);
    ck_assert_uint_eq(s.closed_total, 0);
    sg_pool_resume(p);
    a = must_acquire(p, 1000);
    sg_pool_release(p, a, true);
    close_and_free(p);
}
END_TEST

/* --- Close ---------------------------------------------------------------- */

START_TEST(test_close_drains)
{
    sg_db_config cfg = fake_db_config(DB, 2);
    sg_pool *p = make_pool(&cfg);
    sg_pool_conn *idle = must_acquire(p, 1000);
    borrower b = {.pool = p, .wait_ms = 1000, .hold_ms = 300};
    borrower_start(&b);
    /* b holds its connection for 300 ms */
    int64_t end = sg_clock_ms() + 5000;
    while (stats_of(p).in_use < 2 && sg_clock_ms() < end)
        sg_sleep_ms(5);
    ck_assert_uint_eq(stats_of(p).in_use, 2);
    sg_pool_release(p, idle, true);

    unsigned cancelled = 99;
    int64_t t0 = sg_clock_ms();
    ck_assert_int_eq(sg_pool_close(p, t0 + 10000, &cancelled), 0);
    ck_assert_uint_eq(cancelled, 0);
    ck_assert_int_lt(sg_clock_ms() - t0, 8000);
    borrower_join(&b);
    ck_assert(b.got);
    ck_assert_uint_eq(fake_driver_live(DB), 0);
    sg_pool_stats s = stats_of(p);
    ck_assert_uint_eq(s.open, 0);
    ck_assert_uint_eq(s.in_use, 0);
    fake_counts fc;
    fake_driver_counts(DB, &fc);
    ck_assert_uint_eq(fc.interrupts, 0);

    sg_err err;
    ck_assert_ptr_null(sg_pool_acquire(p, sg_clock_ms() + 1000, &err));
    ck_assert_int_eq(err.code, SG_SHUTTING_DOWN);

    /* Idempotent and quick the second time. */
    t0 = sg_clock_ms();
    ck_assert_int_eq(sg_pool_close(p, t0 + 10000, &cancelled), 0);
    ck_assert_uint_eq(cancelled, 0);
    ck_assert_int_lt(sg_clock_ms() - t0, 1000);
    sg_pool_maintain(p); /* no-op once closed */
    ck_assert_uint_eq(stats_of(p).open, 0);
    sg_pool_free(p);
    ck_assert_uint_eq(fake_driver_live(DB), 0);
}
END_TEST

START_TEST(test_close_interrupts_stuck)
{
    sg_db_config cfg = fake_db_config(DB, 2);
    sg_pool *p = make_pool(&cfg);
    borrower b = {.pool = p, .wait_ms = 1000, .sql = "fake:hang", .exec_ms = 60000};
    borrower_start(&b);
    ck_assert(wait_for_running(1, 5000));

    unsigned cancelled = 0;
    int64_t t0 = sg_clock_ms();
    ck_assert_int_eq(sg_pool_close(p, t0 + 200, &cancelled), -1);
    int64_t elapsed = sg_clock_ms() - t0;
    ck_assert_uint_eq(cancelled, 1);
    ck_assert_int_ge(elapsed, 150);
    ck_assert_int_lt(elapsed, 200 + SG_POOL_CANCEL_GRACE_MS + 2000);
    borrower_join(&b);
    ck_assert_int_eq(b.exec_rc, -1);
    ck_assert_int_eq(b.exec_err.code, SG_QUERY_TIMEOUT);
    ck_assert_str_eq(b.exec_err.message, "fake: statement cancelled");
    fake_counts fc;
    fake_driver_counts(DB, &fc);
    ck_assert_uint_ge(fc.interrupts, 1);
    ck_assert_uint_eq(fc.live, 0);

    /* Second call: quick, same answer, nothing counted twice. */
    t0 = sg_clock_ms();
    ck_assert_int_eq(sg_pool_close(p, t0 + 5000, &cancelled), -1);
    ck_assert_uint_eq(cancelled, 0);
    ck_assert_int_lt(sg_clock_ms() - t0, 1000);
    sg_pool_free(p);
    ck_assert_uint_eq(fake_driver_live(DB), 0);
}
END_TEST

START_TEST(test_close_bounded_when_interrupt_ignored)
{
    /* The server never acknowledges the cancel: close still returns after
     * deadline + grace, and the straggler is closed when it comes back. */
    sg_db_config cfg = fake_db_config(DB, 2);
    sg_pool *p = make_pool(&cfg);
    fake_driver_set(DB, FAKE_IGNORE_INTERRUPT, 1);
    borrower b = {.pool = p, .wait_ms = 1000, .sql = "fake:hang", .exec_ms = 2500};
    borrower_start(&b);
    ck_assert(wait_for_running(1, 5000));

    unsigned cancelled = 0;
    int64_t t0 = sg_clock_ms();
    ck_assert_int_eq(sg_pool_close(p, t0 + 100, &cancelled), -1);
    int64_t elapsed = sg_clock_ms() - t0;
    ck_assert_uint_eq(cancelled, 1);
    ck_assert_int_ge(elapsed, 100 + SG_POOL_CANCEL_GRACE_MS - 50);
    ck_assert_int_lt(elapsed, 100 + SG_POOL_CANCEL_GRACE_MS + 1500);
    ck_assert_uint_eq(stats_of(p).in_use, 1);
    ck_assert_uint_eq(fake_driver_live(DB), 1);

    borrower_join(&b);
    ck_assert_int_eq(b.exec_err.code, SG_QUERY_TIMEOUT);
    ck_assert_uint_eq(stats_of(p).in_use, 0);
    ck_assert_uint_eq(fake_driver_live(DB), 0);
    sg_pool_free(p);
}
END_TEST

START_TEST(test_close_wakes_waiters)
{
    sg_db_config cfg = fake_db_config(DB, 1);
    sg_pool *p = make_pool(&cfg);
    sg_pool_conn *held = must_acquire(p, 1000);
    borrower b = {.pool = p, .wait_ms = 30000};
    borrower_start(&b);
    ck_assert(wait_for_waiters(p, 1, 5000));

    unsigned cancelled = 0;
    int64_t t0 = sg_clock_ms();
    /* Our own connection is idle in our hands: it gets interrupted too. */
    ck_assert_int_eq(sg_pool_close(p, t0, &cancelled), -1);
    ck_assert_uint_eq(cancelled, 1);
    borrower_join(&b);
    ck_assert(!b.got);
    ck_assert_int_eq(b.err.code, SG_SHUTTING_DOWN);
    ck_assert_int_lt(b.elapsed_ms, 20000);
    ck_assert_int_lt(sg_clock_ms() - t0, 20000);
    ck_assert_uint_eq(stats_of(p).waiting, 0);

    sg_pool_release(p, held, true); /* closed on release */
    ck_assert_uint_eq(fake_driver_live(DB), 0);
    ck_assert_uint_eq(stats_of(p).open, 0);
    sg_pool_free(p);
}
END_TEST

START_TEST(test_close_while_opening)
{
    /* An open in flight when close starts is closed when it completes. */
    sg_db_config cfg = fake_db_config(DB, 1);
    sg_pool *p = make_pool(&cfg);
    fake_driver_set(DB, FAKE_OPEN_DELAY_MS, 300);
    borrower b = {.pool = p, .wait_ms = 5000};
    borrower_start(&b);
    int64_t end = sg_clock_ms() + 5000;
    while (stats_of(p).open < 1 && sg_clock_ms() < end)
        sg_sleep_ms(5);
    ck_assert_uint_eq(stats_of(p).open, 1); /* the slot being opened */
    unsigned cancelled = 99;
    ck_assert_int_eq(sg_pool_close(p, sg_clock_ms() + 5000, &cancelled), 0);
    ck_assert_uint_eq(cancelled, 0);
    borrower_join(&b);
    ck_assert(!b.got);
    ck_assert_int_eq(b.err.code, SG_SHUTTING_DOWN);
    ck_assert_uint_eq(fake_driver_live(DB), 0);
    sg_pool_free(p);
}
END_TEST

/* --- Soak ----------------------------------------------------------------- */

/* Iterations per soak thread: SQLGATE_SOAK_ITERS, else SOAK_ITERATIONS (set
 * by the valgrind test setup), else dflt. */
static unsigned soak_iters(unsigned dflt)
{
    const char *env = getenv("SQLGATE_SOAK_ITERS");
    if (env == NULL)
        env = getenv("SOAK_ITERATIONS");
    if (env != NULL && atoi(env) > 0)
        return (unsigned)atoi(env);
    return dflt;
}

typedef struct soak {
    sg_pool *pool;
    unsigned iters;
    uint64_t rng;
    pthread_t thread;
    /* results */
    unsigned acquired;
    unsigned acquire_failures;
    unsigned unexpected; /* acquire or exec answers outside the expected set */
    sg_err last_unexpected;
    unsigned bad_rows;
} soak;

static uint64_t soak_rand(soak *s)
{
    uint64_t x = s->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s->rng = x;
    return x;
}

static bool expected_acquire_code(sg_code c)
{
    return c == SG_POOL_EXHAUSTED || c == SG_DB_UNAVAILABLE || c == SG_DB_PAUSED;
}

static bool expected_exec_code(sg_code c)
{
    return c == SG_SQL_ERROR || c == SG_DB_UNAVAILABLE || c == SG_QUERY_TIMEOUT;
}

/* Reads a whole batch; returns false if the rows were not 1..K. */
static bool soak_drain(sg_driver_conn *dc, sg_err *err)
{
    const sg_column *cols;
    size_t ncols;
    int r;
    while ((r = fake_driver.next_result(dc, &cols, &ncols, err)) == 1) {
        const sg_value *v;
        int64_t expect = 1;
        while ((r = fake_driver.next_row(dc, &v, err)) == 1) {
            if (ncols != 1 || v[0].type != SG_V_INT || v[0].u.i != expect)
                return false;
            expect++;
        }
        if (r < 0)
            return true;
    }
    return true;
}

static void *soak_main(void *arg)
{
    static const char *const sqls[] = {"SELECT n",   "fake:rows=3", "fake:error",
                                       "fake:break", "fake:hang",   "fake:sleep=2"};
    soak *s = arg;
    for (unsigned i = 0; i < s->iters; i++) {
        unsigned r = (unsigned)(soak_rand(s) % 100);
        if (r < 3)
            fake_driver_set(DB, FAKE_FAIL_OPEN, 1 + (int64_t)(soak_rand(s) % 2));
        else if (r < 4)
            fake_driver_set(DB, FAKE_FAIL_PING, 1);
        else if (r < 5)
            sg_pool_evict(s->pool);
        else if (r < 7)
            sg_pool_maintain(s->pool);
        else if (r < 8) {
            sg_pool_pause(s->pool);
            sg_sleep_ms(1);
            sg_pool_resume(s->pool);
        } else if (r < 9)
            fake_driver_break_all(DB);
        else if (r < 10)
            fake_driver_set(DB, FAKE_OPEN_DELAY_MS, (int64_t)(soak_rand(s) % 3));

        sg_err err;
        int64_t wait = 5 + (int64_t)(soak_rand(s) % 100);
        sg_pool_conn *pc = sg_pool_acquire(s->pool, sg_clock_ms() + wait, &err);
        if (pc == NULL) {
            s->acquire_failures++;
            if (!expected_acquire_code(err.code)) {
                s->unexpected++;
                s->last_unexpected = err;
            }
            continue;
        }
        s->acquired++;
        sg_driver_conn *dc = sg_pool_conn_driver(pc);
        const char *sql = sqls[soak_rand(s) % (sizeof sqls / sizeof sqls[0])];
        int64_t deadline = sg_clock_ms() + 1 + (int64_t)(soak_rand(s) % 10);
        bool reusable = true;
        if (fake_driver.exec(dc, sql, NULL, 0, deadline, &err) == 0) {
            if (!soak_drain(dc, &err))
                s->bad_rows++;
            reusable = fake_driver.finish(dc) == 0;
        } else if (!expected_exec_code(err.code)) {
            s->unexpected++;
            s->last_unexpected = err;
        }
        if (soak_rand(s) % 25 == 0)
            reusable = false;
        sg_pool_release(s->pool, pc, reusable);
    }
    return NULL;
}

typedef struct watcher {
    sg_pool *pool;
    atomic_bool stop;
    unsigned violations;
    unsigned samples;
    pthread_t thread;
} watcher;

static void *watcher_main(void *arg)
{
    watcher *w = arg;
    while (!atomic_load(&w->stop)) {
        sg_pool_stats s;
        sg_pool_stats_get(w->pool, &s);
        if (s.open > s.max || s.idle + s.in_use > s.open)
            w->violations++;
        w->samples++;
        sg_sleep_ms(1);
    }
    return NULL;
}

START_TEST(test_soak)
{
    enum { THREADS = 6, POOL_MAX = 4 };
    unsigned iters = soak_iters(2000);

    sg_db_config cfg = fake_db_config(DB, POOL_MAX);
    cfg.pool_min = 1;
    cfg.max_lifetime_ms = 40;
    cfg.idle_timeout_ms = 10;
    cfg.connect_timeout_ms = 50;
    sg_pool *p = make_pool(&cfg);

    watcher w = {.pool = p};
    atomic_init(&w.stop, false);
    ck_assert_int_eq(pthread_create(&w.thread, NULL, watcher_main, &w), 0);
    soak s[THREADS];
    for (int i = 0; i < THREADS; i++) {
        s[i] = (soak){.pool = p, .iters = iters, .rng = 0x1234567ULL * (uint64_t)(i + 1)};
        ck_assert_int_eq(pthread_create(&s[i].thread, NULL, soak_main, &s[i]), 0);
    }
    unsigned acquired = 0;
    for (int i = 0; i < THREADS; i++) {
        ck_assert_int_eq(pthread_join(s[i].thread, NULL), 0);
        ck_assert_msg(s[i].unexpected == 0, "unexpected answer: %s %s",
                      sg_code_name(s[i].last_unexpected.code), s[i].last_unexpected.message);
        ck_assert_uint_eq(s[i].bad_rows, 0);
        acquired += s[i].acquired;
    }
    atomic_store(&w.stop, true);
    ck_assert_int_eq(pthread_join(w.thread, NULL), 0);
    ck_assert_uint_eq(w.violations, 0);
    ck_assert_uint_gt(w.samples, 0);
    ck_assert_uint_gt(acquired, iters); /* most acquires succeed */

    fake_counts fc;
    fake_driver_counts(DB, &fc);
    sg_pool_stats st = stats_of(p);
    ck_assert_uint_le(fc.max_live, POOL_MAX);
    ck_assert_uint_eq(st.in_use, 0);
    ck_assert_uint_eq(st.waiting, 0);
    ck_assert(!st.paused);
    ck_assert_uint_eq(st.open, st.idle);
    ck_assert_uint_eq(st.open, fc.live);
    ck_assert_uint_eq(st.opened_total, fc.opened);
    ck_assert_uint_eq(st.closed_total, fc.closed);
    ck_assert_uint_eq(st.connect_errors, fc.open_failures);
    ck_assert_uint_gt(st.closed_total, 0);

    /* Still healthy afterwards. */
    fake_driver_set(DB, FAKE_FAIL_OPEN, 0);
    fake_driver_set(DB, FAKE_OPEN_DELAY_MS, 0);
    sg_pool_conn *a = must_acquire(p, 2000);
    sg_pool_release(p, a, true);
    close_and_free(p);
}
END_TEST

/* --- Handoff: a release serves the oldest waiter, and only it ------------- */

/* A thread that acquires once, records in which order it was served, holds
 * the connection until the test sets `release` (or at once when it is set
 * before the start), then releases it as `reusable` says. */
typedef struct queued {
    sg_pool *pool;
    int64_t wait_ms; /* acquire deadline from its start */
    bool reusable;
    atomic_uint *served; /* shared: incremented by each one served */
    atomic_bool release;
    pthread_t thread;
    /* results; read by the test once `done` is seen */
    atomic_int tid; /* kernel thread id, for /proc */
    atomic_bool done;
    bool got;
    unsigned order; /* value of *served when it was served */
    uint64_t id;
    sg_err err;
    int64_t elapsed_ms; /* of the acquire */
} queued;

static void *queued_main(void *arg)
{
    queued *q = arg;
    atomic_store(&q->tid, (int)syscall(SYS_gettid));
    int64_t t0 = sg_clock_ms();
    sg_pool_conn *pc = sg_pool_acquire(q->pool, t0 + q->wait_ms, &q->err);
    q->elapsed_ms = sg_clock_ms() - t0;
    if (pc != NULL) {
        q->order = atomic_fetch_add(q->served, 1);
        q->id = conn_id(pc);
        q->got = true;
    }
    atomic_store(&q->done, true);
    if (pc == NULL)
        return NULL;
    while (!atomic_load(&q->release))
        sg_sleep_ms(1);
    sg_pool_release(q->pool, pc, q->reusable);
    return NULL;
}

static void queued_init(queued *q, sg_pool *p, int64_t wait_ms, atomic_uint *served)
{
    memset(q, 0, sizeof *q);
    q->pool = p;
    q->wait_ms = wait_ms;
    q->reusable = true;
    q->served = served;
    atomic_init(&q->release, false);
    atomic_init(&q->tid, 0);
    atomic_init(&q->done, false);
}

/* Starts the threads one by one, each once the previous one is blocked in
 * acquire (`waiting` counts it), so the pool queues them in array order.
 * `already` callers are blocked before. */
static void queued_start_in_order(queued *q, unsigned n, unsigned already)
{
    for (unsigned i = 0; i < n; i++) {
        ck_assert_int_eq(pthread_create(&q[i].thread, NULL, queued_main, &q[i]), 0);
        ck_assert_msg(wait_for_waiters(q[i].pool, already + i + 1, 10000),
                      "waiter %u never blocked", i);
    }
}

/* Polls until q has an answer from acquire; false on timeout. */
static bool queued_wait_done(queued *q, int64_t timeout_ms)
{
    int64_t end = sg_clock_ms() + timeout_ms;
    while (!atomic_load(&q->done)) {
        if (sg_clock_ms() >= end)
            return false;
        sg_sleep_ms(1);
    }
    return true;
}

/* State letter and voluntary context switches of one of our threads, read
 * from /proc (Linux). False when unreadable. */
static bool task_sched(int tid, char *state, long long *vcsw)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    char line[256];
    bool have_state = false, have_vcsw = false;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "State:", 6) == 0)
            have_state = sscanf(line + 6, " %c", state) == 1;
        else if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0)
            have_vcsw = sscanf(line + 24, "%lld", vcsw) == 1;
    }
    fclose(f);
    return have_state && have_vcsw;
}

/* A blocked thread's voluntary context switch count once it sleeps and stays
 * asleep (the same count on three reads 20 ms apart). Each time a sleeping
 * waiter is woken and goes back to sleep, the count grows by at least one.
 * -1 when it does not settle within 10 s or /proc is unreadable. */
static long long settled_switches(int tid)
{
    int64_t end = sg_clock_ms() + 10000;
    long long last = -1;
    int same = 0;
    while (sg_clock_ms() < end) {
        char state;
        long long n;
        if (!task_sched(tid, &state, &n))
            return -1;
        if (state == 'S' && n == last) {
            if (++same == 2)
                return n;
        } else {
            same = 0;
        }
        last = n;
        sg_sleep_ms(20);
    }
    return -1;
}

START_TEST(test_waiters_served_fifo)
{
    enum { N = 8 };
    sg_db_config cfg = fake_db_config(DB, 1);
    sg_pool *p = make_pool(&cfg);
    sg_pool_conn *held = must_acquire(p, 1000);
    uint64_t id = conn_id(held);

    atomic_uint served = 0;
    queued q[N];
    for (unsigned i = 0; i < N; i++) {
        queued_init(&q[i], p, 30000, &served);
        atomic_store(&q[i].release, true); /* each passes it on at once */
    }
    queued_start_in_order(q, N, 0);
    ck_assert_uint_eq(stats_of(p).waiting, N);

    /* One release starts the chain: each release hands the one connection
     * to the oldest waiter left. */
    sg_pool_release(p, held, true);
    for (unsigned i = 0; i < N; i++)
        ck_assert_int_eq(pthread_join(q[i].thread, NULL), 0);
    for (unsigned i = 0; i < N; i++) {
        ck_assert_msg(q[i].got, "waiter %u: %s", i, q[i].err.message);
        ck_assert_msg(q[i].order == i, "waiter %u (queued %u-th) was served %u-th", i, i,
                      q[i].order);
        ck_assert_uint_eq(q[i].id, id);
    }
    sg_pool_stats s = stats_of(p);
    ck_assert_uint_eq(s.waiting, 0);
    ck_assert_uint_eq(s.in_use, 0);
    ck_assert_uint_eq(s.idle, 1);
    ck_assert_uint_eq(s.opened_total, 1);
    ck_assert_uint_eq(s.acquire_timeouts, 0);
    close_and_free(p);
}
END_TEST

START_TEST(test_release_wakes_one_waiter)
{
    /* Each step frees one connection: a reusable release (handed over) or a
     * closing one (its slot freed: the woken waiter opens anew). Exactly the
     * oldest waiter must run; the others must not even wake up, which the
     * kernel's count of their voluntary context switches shows. */
    enum { N = 5 };
    sg_db_config cfg = fake_db_config(DB, 1);
    sg_pool *p = make_pool(&cfg);
    sg_pool_conn *held = must_acquire(p, 1000);

    atomic_uint served = 0;
    queued q[N];
    for (unsigned i = 0; i < N; i++) {
        queued_init(&q[i], p, 60000, &served);
        q[i].reusable = i % 2 == 0;
    }
    queued_start_in_order(q, N, 0);

    for (unsigned k = 0; k < N; k++) {
        long long before[N];
        for (unsigned j = k; j < N; j++) {
            before[j] = settled_switches(atomic_load(&q[j].tid));
            ck_assert_msg(before[j] >= 0, "waiter %u does not settle asleep", j);
        }
        if (k == 0)
            sg_pool_release(p, held, true);
        else
            atomic_store(&q[k - 1].release, true);
        int served_one = -1;
        int64_t end = sg_clock_ms() + 10000;
        while (served_one < 0 && sg_clock_ms() < end) {
            for (unsigned j = k; j < N; j++)
                if (atomic_load(&q[j].done))
                    served_one = (int)j;
            sg_sleep_ms(1);
        }
        ck_assert_msg(served_one >= 0, "step %u: nobody was served", k);
        for (unsigned j = k; j < N; j++) {
            if ((int)j == served_one)
                continue;
            long long after = settled_switches(atomic_load(&q[j].tid));
            ck_assert(!atomic_load(&q[j].done));
            ck_assert_msg(after == before[j],
                          "step %u: waiter %u woke up %lld time(s) for a connection not its own", k,
                          j, after - before[j]);
        }
        ck_assert_msg(served_one == (int)k, "step %u: waiter %d was served first", k, served_one);
        ck_assert_uint_eq(stats_of(p).waiting, N - 1 - k);
    }
    atomic_store(&q[N - 1].release, true);
    /* Plain result fields are read after the join (helgrind knows no atomics). */
    for (unsigned i = 0; i < N; i++) {
        ck_assert_int_eq(pthread_join(q[i].thread, NULL), 0);
        ck_assert_msg(q[i].got, "waiter %u: %s", i, q[i].err.message);
        ck_assert_uint_eq(q[i].order, i);
    }
    sg_pool_stats s = stats_of(p);
    ck_assert_uint_eq(s.waiting, 0);
    ck_assert_uint_eq(s.in_use, 0);
    /* Waiters 1 and 3 closed theirs; 2 and 4 opened one each. */
    ck_assert_uint_eq(s.opened_total, 3);
    ck_assert_uint_eq(s.closed_total, 2);
    close_and_free(p);
}
END_TEST

START_TEST(test_timeout_racing_handoff_loses_nothing)
{
    /* Waiters whose deadlines fall around the moment the connection is
     * released: each either gets it (and passes it on) or times out, and the
     * one connection is never lost, leaked, closed or duplicated. */
    enum { W = 3 };
    unsigned iters = getenv("SQLGATE_UNDER_VALGRIND") != NULL ? 40 : 200;
    sg_db_config cfg = fake_db_config(DB, 1);
    sg_pool *p = make_pool(&cfg);
    sg_pool_conn *held = must_acquire(p, 1000);
    uint64_t id = conn_id(held);
    unsigned got = 0, timed_out = 0;

    for (unsigned i = 0; i < iters; i++) {
        borrower b[W];
        for (unsigned j = 0; j < W; j++) {
            b[j] = (borrower){.pool = p, .wait_ms = 10 + (int64_t)j};
            borrower_start(&b[j]);
        }
        sg_sleep_ms(8 + (int64_t)(i % 6));
        sg_pool_release(p, held, true);
        for (unsigned j = 0; j < W; j++) {
            borrower_join(&b[j]);
            if (b[j].got) {
                got++;
                ck_assert_uint_eq(b[j].id, id);
            } else {
                timed_out++;
                ck_assert_msg(b[j].err.code == SG_POOL_EXHAUSTED, "iteration %u: %s %s", i,
                              sg_code_name(b[j].err.code), b[j].err.message);
            }
        }
        sg_pool_stats s = stats_of(p);
        ck_assert_uint_eq(s.in_use, 0);
        ck_assert_uint_eq(s.waiting, 0);
        ck_assert_uint_eq(s.idle, 1);
        ck_assert_uint_eq(s.open, 1);
        held = must_acquire(p, 1000);
        ck_assert_uint_eq(conn_id(held), id);
    }
    ck_assert_uint_eq(got + timed_out, iters * W);
    sg_pool_release(p, held, true);
    sg_pool_stats s = stats_of(p);
    ck_assert_uint_eq(s.opened_total, 1);
    ck_assert_uint_eq(s.closed_total, 0);
    ck_assert_uint_eq(s.acquire_timeouts, timed_out);
    ck_assert_uint_eq(fake_driver_live(DB), 1);
    close_and_free(p);
}
END_TEST

START_TEST(test_freed_slot_wake_not_lost)
{
    /* A waiter woken for a freed slot may find it taken (by a caller that
     * was not waiting) or may be handed a connection instead. Either way the
     * next freed slot, or the one still free, must wake a sleeper: each
     * waiter here has 30 s, and must be served within 10 s. Races are
     * timing-dependent, so each case runs many times. */
    unsigned iters = getenv("SQLGATE_UNDER_VALGRIND") != NULL ? 10 : 40;
    sg_db_config cfg = fake_db_config(DB, 2);
    sg_pool *p = make_pool(&cfg);
    atomic_uint served = 0;

    for (unsigned i = 0; i < iters; i++) {
        /* A waiter kicked for a slot that the test takes first. */
        sg_pool_conn *a = must_acquire(p, 1000);
        sg_pool_conn *b = must_acquire(p, 1000);
        queued w0;
        queued_init(&w0, p, 30000, &served);
        atomic_store(&w0.release, true);
        queued_start_in_order(&w0, 1, 0);
        sg_pool_release(p, a, false);
        a = must_acquire(p, 10000);
        sg_sleep_ms(5); /* time for w0 to wake up and find the slot taken */
        sg_pool_release(p, a, false);
        ck_assert_msg(queued_wait_done(&w0, 10000), "iteration %u: waiter slept through", i);
        ck_assert_int_eq(pthread_join(w0.thread, NULL), 0);
        ck_assert_msg(w0.got, "%s", w0.err.message);

        /* A waiter kicked for a slot, then handed a connection: the slot
         * still free must go to the next one. Both hold what they get until
         * both are served. */
        a = must_acquire(p, 1000);
        ck_assert_uint_eq(stats_of(p).in_use, 2);
        queued w[2];
        for (unsigned j = 0; j < 2; j++)
            queued_init(&w[j], p, 30000, &served);
        queued_start_in_order(w, 2, 0);
        sg_pool_release(p, a, false);
        sg_pool_release(p, b, true);
        for (unsigned j = 0; j < 2; j++)
            ck_assert_msg(queued_wait_done(&w[j], 10000), "iteration %u: waiter %u slept through",
                          i, j);
        for (unsigned j = 0; j < 2; j++) {
            atomic_store(&w[j].release, true);
            ck_assert_int_eq(pthread_join(w[j].thread, NULL), 0);
            ck_assert_msg(w[j].got, "%s", w[j].err.message);
        }
        sg_pool_stats s = stats_of(p);
        ck_assert_uint_eq(s.in_use, 0);
        ck_assert_uint_eq(s.waiting, 0);
    }
    ck_assert_uint_eq(stats_of(p).acquire_timeouts, 0);
    close_and_free(p);
}
END_TEST

typedef struct closer {
    sg_pool *pool;
    int64_t deadline_ms;
    pthread_t thread;
    atomic_bool done;
    int rc;
    unsigned cancelled;
} closer;

static void *closer_main(void *arg)
{
    closer *c = arg;
    c->rc = sg_pool_close(c->pool, c->deadline_ms, &c->cancelled);
    atomic_store(&c->done, true);
    return NULL;
}

START_TEST(test_pause_and_close_with_queue)
{
    enum { N = 4 };
    sg_db_config cfg = fake_db_config(DB, 1);
    sg_pool *p = make_pool(&cfg);
    sg_pool_conn *held = must_acquire(p, 1000);
    uint64_t id = conn_id(held);
    atomic_uint served = 0;
    queued q[N];
    for (unsigned i = 0; i < N; i++)
        queued_init(&q[i], p, 30000, &served);
    q[1].wait_ms = 400; /* gives up while paused, from the middle of the queue */
    queued_start_in_order(q, N, 0);

    /* Paused: a release is not handed over, it goes back idle. */
    sg_pool_pause(p);
    sg_pool_release(p, held, true);
    sg_pool_stats s = stats_of(p);
    ck_assert_uint_eq(s.idle, 1);
    ck_assert_uint_eq(s.in_use, 0);
    ck_assert_uint_eq(s.waiting, N);
    ck_assert_int_eq(pthread_join(q[1].thread, NULL), 0);
    ck_assert(!q[1].got);
    ck_assert_int_eq(q[1].err.code, SG_DB_PAUSED);
    ck_assert_uint_eq(stats_of(p).waiting, N - 1);
    ck_assert(!atomic_load(&q[0].done));

    /* Resume: the oldest waiter takes the idle connection, the rest wait. */
    sg_pool_resume(p);
    ck_assert(queued_wait_done(&q[0], 10000));
    s = stats_of(p);
    ck_assert_uint_eq(s.waiting, 2);
    ck_assert_uint_eq(s.in_use, 1);
    ck_assert(!atomic_load(&q[2].done));
    ck_assert(!atomic_load(&q[3].done));

    /* Close: the queue empties at once, the borrowed connection drains. */
    closer c = {.pool = p, .deadline_ms = sg_clock_ms() + 20000};
    atomic_init(&c.done, false);
    ck_assert_int_eq(pthread_create(&c.thread, NULL, closer_main, &c), 0);
    for (unsigned i = 2; i < N; i++) {
        ck_assert_int_eq(pthread_join(q[i].thread, NULL), 0);
        ck_assert(!q[i].got);
        ck_assert_int_eq(q[i].err.code, SG_SHUTTING_DOWN);
        ck_assert_int_lt(q[i].elapsed_ms, 25000);
    }
    ck_assert_uint_eq(stats_of(p).waiting, 0);
    ck_assert(!atomic_load(&c.done)); /* still waiting for q[0]'s connection */
    atomic_store(&q[0].release, true);
    ck_assert_int_eq(pthread_join(q[0].thread, NULL), 0);
    ck_assert_msg(q[0].got, "%s", q[0].err.message);
    ck_assert_uint_eq(q[0].id, id);
    ck_assert_int_eq(pthread_join(c.thread, NULL), 0);
    ck_assert_int_eq(c.rc, 0);
    ck_assert_uint_eq(c.cancelled, 0);
    s = stats_of(p);
    ck_assert_uint_eq(s.open, 0);
    ck_assert_uint_eq(s.in_use, 0);
    ck_assert_uint_eq(fake_driver_live(DB), 0);
    sg_pool_free(p);
}
END_TEST

/* A thread that acquires with random deadlines, holds briefly, releases
 * (sometimes as not reusable), until its iterations are done or the pool
 * shuts down. */
typedef struct churn {
    sg_pool *pool;
    unsigned iters;
    uint64_t rng;
    pthread_t thread;
    /* results */
    unsigned got, exhausted, paused, shut, open_timeouts;
    unsigned long_timeouts; /* a 20 s wait that timed out: a lost wake-up */
    unsigned unexpected;
    sg_err last_unexpected;
} churn;

#define CHURN_LONG_WAIT_MS 20000

static uint64_t churn_rand(churn *c)
{
    uint64_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c->rng = x;
    return x;
}

static void *churn_main(void *arg)
{
    churn *c = arg;
    for (unsigned i = 0; i < c->iters; i++) {
        int64_t wait = churn_rand(c) % 5 == 0 ? CHURN_LONG_WAIT_MS : (int64_t)(churn_rand(c) % 30);
        sg_err err;
        sg_pool_conn *pc = sg_pool_acquire(c->pool, sg_clock_ms() + wait, &err);
        if (pc == NULL) {
            if (err.code == SG_SHUTTING_DOWN) {
                c->shut++;
                return NULL;
            }
            if (err.code == SG_POOL_EXHAUSTED) {
                c->exhausted++;
                if (wait == CHURN_LONG_WAIT_MS)
                    c->long_timeouts++;
            } else if (err.code == SG_DB_PAUSED) {
                c->paused++;
            } else if (err.code == SG_DB_UNAVAILABLE &&
                       strcmp(err.message, "fake: login timed out") == 0) {
                /* A slot found free at (or past) a short deadline: the open
                 * gets no time left. */
                c->open_timeouts++;
            } else {
                c->unexpected++;
                c->last_unexpected = err;
            }
            continue;
        }
        c->got++;
        if (churn_rand(c) % 4 == 0)
            sg_sleep_ms((int64_t)(churn_rand(c) % 3));
        sg_pool_release(c->pool, pc, churn_rand(c) % 10 != 0);
    }
    return NULL;
}

/* Pauses, evicts and runs housekeeping now and then until stopped. */
typedef struct chaos {
    sg_pool *pool;
    atomic_bool stop;
    pthread_t thread;
} chaos;

static void *chaos_main(void *arg)
{
    chaos *x = arg;
    for (unsigned i = 0; !atomic_load(&x->stop); i++) {
        switch (i % 4) {
        case 0:
            sg_pool_pause(x->pool);
            sg_sleep_ms(1);
            sg_pool_resume(x->pool);
            break;
        case 1:
            sg_pool_evict(x->pool);
            break;
        default:
            sg_pool_maintain(x->pool);
            break;
        }
        sg_sleep_ms(3);
    }
    return NULL;
}

START_TEST(test_soak_handoff)
{
    enum { THREADS = 12, POOL_MAX = 3 };
    unsigned iters = soak_iters(1500);
    sg_db_config cfg = fake_db_config(DB, POOL_MAX);
    cfg.pool_min = 1;
    cfg.max_lifetime_ms = 50; /* stale ones retired on release and on pick */
    cfg.idle_timeout_ms = 10;
    sg_pool *p = make_pool(&cfg);

    watcher w = {.pool = p};
    atomic_init(&w.stop, false);
    ck_assert_int_eq(pthread_create(&w.thread, NULL, watcher_main, &w), 0);
    chaos x = {.pool = p};
    atomic_init(&x.stop, false);
    ck_assert_int_eq(pthread_create(&x.thread, NULL, chaos_main, &x), 0);
    churn c[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        c[i] = (churn){.pool = p, .iters = iters, .rng = 0x9e3779b9ULL * (i + 1)};
        ck_assert_int_eq(pthread_create(&c[i].thread, NULL, churn_main, &c[i]), 0);
    }
    unsigned got = 0;
    for (unsigned i = 0; i < THREADS; i++) {
        ck_assert_int_eq(pthread_join(c[i].thread, NULL), 0);
        ck_assert_msg(c[i].unexpected == 0, "unexpected answer: %s %s",
                      sg_code_name(c[i].last_unexpected.code), c[i].last_unexpected.message);
        ck_assert_msg(c[i].long_timeouts == 0, "thread %u: %u long waits timed out", i,
                      c[i].long_timeouts);
        ck_assert_uint_eq(c[i].shut, 0);
        ck_assert_uint_eq(c[i].got + c[i].exhausted + c[i].paused + c[i].open_timeouts, iters);
        got += c[i].got;
    }
    atomic_store(&x.stop, true);
    ck_assert_int_eq(pthread_join(x.thread, NULL), 0);
    atomic_store(&w.stop, true);
    ck_assert_int_eq(pthread_join(w.thread, NULL), 0);
    ck_assert_uint_eq(w.violations, 0);
    ck_assert_uint_gt(got, iters);

    fake_counts fc;
    fake_driver_counts(DB, &fc);
    sg_pool_stats st = stats_of(p);
    ck_assert_uint_le(fc.max_live, POOL_MAX);
    ck_assert_uint_eq(st.in_use, 0);
    ck_assert_uint_eq(st.waiting, 0);
    ck_assert(!st.paused);
    ck_assert_uint_eq(st.open, st.idle);
    ck_assert_uint_eq(st.open, fc.live);
    ck_assert_uint_eq(st.opened_total, fc.opened);
    ck_assert_uint_eq(st.closed_total, fc.closed);
    ck_assert_uint_eq(st.connect_errors, fc.open_failures);

    sg_pool_conn *a = must_acquire(p, 2000);
    sg_pool_release(p, a, true);
    close_and_free(p);
}
END_TEST

START_TEST(test_close_under_load)
{
    /* sg_pool_close while connections are being handed from one waiter to
     * the next: everything drains in time, every thread is told
     * SHUTTING_DOWN, nothing is left open. */
    enum { THREADS = 10, POOL_MAX = 2 };
    sg_db_config cfg = fake_db_config(DB, POOL_MAX);
    sg_pool *p = make_pool(&cfg);
    churn c[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        c[i] = (churn){.pool = p, .iters = UINT32_MAX, .rng = 0x51ed27ULL * (i + 1)};
        ck_assert_int_eq(pthread_create(&c[i].thread, NULL, churn_main, &c[i]), 0);
    }
    int64_t end = sg_clock_ms() + 10000;
    while (stats_of(p).waiting < 3 && sg_clock_ms() < end)
        sg_sleep_ms(1);
    sg_sleep_ms(100);
    unsigned cancelled = 99;
    ck_assert_int_eq(sg_pool_close(p, sg_clock_ms() + 15000, &cancelled), 0);
    ck_assert_uint_eq(cancelled, 0);
    unsigned got = 0;
    for (unsigned i = 0; i < THREADS; i++) {
        ck_assert_int_eq(pthread_join(c[i].thread, NULL), 0);
        ck_assert_msg(c[i].unexpected == 0, "unexpected answer: %s %s",
                      sg_code_name(c[i].last_unexpected.code), c[i].last_unexpected.message);
        ck_assert_uint_eq(c[i].long_timeouts, 0);
        ck_assert_uint_eq(c[i].shut, 1);
        got += c[i].got;
    }
    ck_assert_uint_gt(got, 0);
    sg_pool_stats s = stats_of(p);
    ck_assert_uint_eq(s.open, 0);
    ck_assert_uint_eq(s.in_use, 0);
    ck_assert_uint_eq(s.waiting, 0);
    ck_assert_uint_eq(fake_driver_live(DB), 0);
    sg_pool_free(p);
}
END_TEST

/* --- Fake driver sanity (its own contract, used by other suites) ---------- */

START_TEST(test_fake_driver_knobs)
{
    sg_db_config cfg = fake_db_config("other", 1);
    ck_assert_str_eq(cfg.name, "other");
    ck_assert_str_eq(cfg.prefix, "OTHER_DB_");
    sg_err err;
    fake_driver_set("other", FAKE_EXEC_ROWS, 4);
    fake_driver_set("other", FAKE_EXEC_RESULTS, 2);
    fake_driver_set("other", FAKE_ROWS_AFFECTED, 7);
    ck_assert_int_eq(fake_driver_get("other", FAKE_EXEC_ROWS), 4);
    ck_assert_int_eq(fake_driver_get(DB, FAKE_EXEC_ROWS), 1); /* per database */

    sg_driver_conn *c = fake_driver.open(&cfg, sg_clock_ms() + 1000, &err);
    ck_assert_ptr_nonnull(c);
    sg_param prm = {.name = "id", .value = {.type = SG_V_INT, .u.i = 1}};
    ck_assert_int_eq(fake_driver.exec(c, "SELECT @id", &prm, 1, sg_clock_ms() + 1000, &err), 0);
    int results = 0, rows = 0;
    const sg_column *cols;
    size_t ncols;
    while (fake_driver.next_result(c, &cols, &ncols, &err) == 1) {
        results++;
        const sg_value *v;
        while (fake_driver.next_row(c, &v, &err) == 1)
            rows++;
    }
    ck_assert_int_eq(results, 2);
    ck_assert_int_eq(rows, 8);
    ck_assert_int_eq(fake_driver.rows_affected(c), 7);
    ck_assert_int_eq(fake_driver.finish(c), 0);
    char sql[64];
    size_t np;
    fake_driver_last_exec("other", sql, sizeof sql, &np);
    ck_assert_str_eq(sql, "SELECT @id");
    ck_assert_uint_eq(np, 1);

    /* Timed-out statement and interrupt outside a statement. */
    int64_t t0 = sg_clock_ms();
    ck_assert_int_eq(fake_driver.exec(c, "fake:hang", NULL, 0, t0 + 100, &err), -1);
    ck_assert_int_eq(err.code, SG_QUERY_TIMEOUT);
    ck_assert_str_eq(err.message, "fake: statement timed out");
    ck_assert_int_ge(sg_clock_ms() - t0, 90);
    /* Nothing runs: kept for the next statement until finish(). */
    ck_assert_int_eq(fake_driver.finish(c), 0);
    fake_driver.interrupt(c);
    ck_assert_int_eq(fake_driver.exec(c, "fake:sleep=1", NULL, 0, sg_clock_ms() + 1000, &err), -1);
    ck_assert_str_eq(err.message, "fake: statement cancelled");
    ck_assert_int_eq(fake_driver.finish(c), 0);
    ck_assert_int_eq(fake_driver.exec(c, "fake:sleep=1", NULL, 0, sg_clock_ms() + 1000, &err), 0);
    ck_assert_int_eq(fake_driver.finish(c), 0);

    ck_assert(!fake_driver.unusable(c));
    fake_driver_break_all("other");
    ck_assert(fake_driver.unusable(c));
    ck_assert_int_eq(fake_driver.ping(c, "SELECT 1", sg_clock_ms() + 1000, &err), -1);
    ck_assert_int_eq(fake_driver.exec(c, "SELECT 1", NULL, 0, sg_clock_ms() + 1000, &err), -1);
    ck_assert_int_eq(err.code, SG_DB_UNAVAILABLE);

    fake_counts fc;
    fake_driver_counts("other", &fc);
    ck_assert_uint_eq(fc.live, 1);
    ck_assert_uint_eq(fc.interrupts, 1);
    ck_assert_uint_eq(fake_driver_live(DB), 0);
    ck_assert_uint_eq(fake_driver_live(NULL), 1);
    fake_driver.close(c);
    fake_driver.close(NULL);
    ck_assert_uint_eq(fake_driver_live(NULL), 0);
}
END_TEST

/* --- Login rate limit ------------------------------------------------------ */

typedef struct login_churner {
    sg_pool *pool;
    int64_t until;
    atomic_uint got, refused, other;
} login_churner;

/* Acquires and closes its connection every time: each acquire needs a login. */
static void *login_churn_main(void *arg)
{
    login_churner *c = arg;
    while (sg_clock_ms() < c->until) {
        sg_err err;
        sg_pool_conn *pc = sg_pool_acquire(c->pool, sg_clock_ms() + 150, &err);
        if (pc != NULL) {
            atomic_fetch_add(&c->got, 1);
            sg_pool_release(c->pool, pc, false);
        } else if (err.code == SG_POOL_EXHAUSTED && strstr(err.message, "MAX_LOGINS_PER_SEC")) {
            atomic_fetch_add(&c->refused, 1);
        } else if (err.code != SG_POOL_EXHAUSTED) {
            fprintf(stderr, "acquire: %s %s\n", sg_code_name(err.code), err.message);
            atomic_fetch_add(&c->other, 1);
        }
    }
    return NULL;
}

START_TEST(test_login_rate_bounded)
{
    /* Eight threads that need a fresh login for every acquire: without the
     * limit they open thousands of connections a second. */
    sg_db_config cfg = fake_db_config(DB, 8);
    cfg.max_logins_per_sec = 10;
    sg_pool *p = make_pool(&cfg);
    login_churner c = {.pool = p};
    int64_t start = sg_clock_ms();
    c.until = start + 1500;
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, login_churn_main, &c), 0);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    double secs = (double)(sg_clock_ms() - start) / 1000.0;
    fake_counts fc;
    fake_driver_counts(DB, &fc);
    /* A full bucket (10) at once, then 10 a second; +1 for rounding. */
    double bound = 10 + 10 * secs + 1;
    ck_assert_msg((double)(fc.opened + fc.open_failures) <= bound,
                  "%llu logins in %.2f s, bound %.0f",
                  (unsigned long long)(fc.opened + fc.open_failures), secs, bound);
    ck_assert_uint_ge(fc.opened, 10); /* the limit is not a wall */
    ck_assert_uint_gt(atomic_load(&c.refused), 0);
    ck_assert_uint_eq(atomic_load(&c.other), 0);
    sg_pool_stats st = stats_of(p);
    ck_assert_uint_eq(st.logins_total, fc.opened + fc.open_failures);
    ck_assert_uint_gt(st.logins_refused, 0);
    ck_assert_uint_ge(st.acquire_timeouts, st.logins_refused);
    ck_assert_uint_eq(st.open, 0);
    close_and_free(p);
}
END_TEST

START_TEST(test_login_wait_within_deadline)
{
    /* Rate 5: the bucket holds 5; the 6th login waits about 200 ms for its
     * turn when its deadline allows, and is refused at once when not. */
    sg_db_config cfg = fake_db_config(DB, 10);
    cfg.max_logins_per_sec = 5;
    sg_pool *p = make_pool(&cfg);
    sg_err err;
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(sg_pool_login_wait(p, sg_clock_ms(), &err), 0);
    int64_t t0 = sg_clock_ms();
    ck_assert_int_ne(sg_pool_login_wait(p, t0 + 50, &err), 0);
    ck_assert_int_eq(err.code, SG_POOL_EXHAUSTED);
    ck_assert_int_lt(sg_clock_ms() - t0, 50);
    ck_assert_int_eq(sg_pool_login_wait(p, sg_clock_ms() + 2000, &err), 0);
    int64_t waited = sg_clock_ms() - t0;
    ck_assert_msg(waited >= 150 && waited < 1500, "waited %lld ms", (long long)waited);
    /* unlimited: never waits */
    sg_db_config free_cfg = fake_db_config(DB, 10);
    sg_pool *q = make_pool(&free_cfg);
    t0 = sg_clock_ms();
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(sg_pool_login_wait(q, t0, &err), 0);
    close_and_free(q);
    close_and_free(p);
}
END_TEST

static Suite *pool_suite(void)
{
    Suite *s = suite_create("pool");

    TCase *tc = tcase_create("basic");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_acquire_release_basic);
    tcase_add_test(tc, test_free_null_and_idle);
    tcase_add_test(tc, test_fake_driver_knobs);
    suite_add_tcase(s, tc);

    tc = tcase_create("waiting");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_bounds_under_threads);
    tcase_add_test(tc, test_acquire_timeout);
    tcase_add_test(tc, test_waiter_gets_released_conn);
    tcase_add_test(tc, test_waiter_gets_freed_slot);
    suite_add_tcase(s, tc);

    tc = tcase_create("failures");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_open_failure_no_slot_leak);
    tcase_add_test(tc, test_open_timeout_uses_deadline);
    tcase_add_test(tc, test_recovery_after_failures);
    suite_add_tcase(s, tc);

    tc = tcase_create("lifecycle");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_validation_after_idle);
    tcase_add_test(tc, test_broken_idle_not_handed_out);
    tcase_add_test(tc, test_release_not_reusable_closes);
    tcase_add_test(tc, test_lifetime_expiry);
    tcase_add_test(tc, test_idle_timeout_keeps_min);
    tcase_add_test(tc, test_maintain_opens_min);
    tcase_add_test(tc, test_maintain_login_gets_connect_timeout);
    tcase_add_test(tc, test_evict);
    tcase_add_test(tc, test_pause_resume);
    tcase_add_test(tc, test_pause_lets_borrowed_finish);
    suite_add_tcase(s, tc);

    tc = tcase_create("close");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_close_drains);
    tcase_add_test(tc, test_close_interrupts_stuck);
    tcase_add_test(tc, test_close_bounded_when_interrupt_ignored);
    tcase_add_test(tc, test_close_wakes_waiters);
    tcase_add_test(tc, test_close_while_opening);
    suite_add_tcase(s, tc);

    tc = tcase_create("handoff");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_waiters_served_fifo);
    tcase_add_test(tc, test_release_wakes_one_waiter);
    tcase_add_test(tc, test_timeout_racing_handoff_loses_nothing);
    tcase_add_test(tc, test_freed_slot_wake_not_lost);
    tcase_add_test(tc, test_pause_and_close_with_queue);
    tcase_add_test(tc, test_close_under_load);
    suite_add_tcase(s, tc);

    tc = tcase_create("logins");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_login_rate_bounded);
    tcase_add_test(tc, test_login_wait_within_deadline);
    suite_add_tcase(s, tc);

    tc = tcase_create("soak");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_soak);
    tcase_add_test(tc, test_soak_handoff);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(pool_suite());
}
