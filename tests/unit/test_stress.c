/* Randomized stress test of the pool and the database lifecycle, and the
 * races it was written to catch.
 *
 * A run: STRESS_THREADS threads for SG_STRESS_SECONDS (default 3) drive one
 * sg_db (or, for the strict accounting run, one sg_pool) with a random mix of
 * queries (quick, slow, timing out, failing, breaking their connection),
 * pause/resume, reconnect and health reads, while a chaos thread makes the
 * fake driver slow, fail its opens and then recover. Then the database is
 * closed while all of that still runs. Each thread draws its choices from
 * its own generator seeded from the run's seed, printed at the start
 * ("stress: seed N"); SG_STRESS_SEED=N replays the same choices (the thread
 * interleaving is the scheduler's, so a replay is likely, not certain, to
 * meet the same failure; run it under scripts/test-tsan for the races).
 *
 * Invariants checked after every run:
 * - every request returned exactly once, with OK or a code docs/errors.md
 *   gives a query (never INTERNAL, never an unknown code);
 * - no connection leaked or closed twice: the driver's open and close counts
 *   equal the pool's opened/closed totals (pool run), and every driver
 *   connection is closed once the database is freed (db runs);
 * - no waiter left asleep and nothing left borrowed;
 * - the pause is one truth: every health snapshot says paused exactly when
 *   the pool does;
 * - the close returned within its drain deadline plus SG_DB_CLOSE_GRACE_MS
 *   (plus scheduling slack).
 */
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check_main.h"
#include "fake_driver.h"
#include "sqlgate/db.h"
#include "sqlgate/pool.h"

#include "../../src/lib/util.h"

#define STRESS_THREADS 16
#define DRAIN_MS       200
/* Scheduling noise on a loaded 2-core machine, under TSan's slowdown. */
#define SLACK_MS 3000

static uint64_t g_seed;
static int64_t g_run_ms;

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static unsigned rng_below(uint64_t *s, unsigned n)
{
    return (unsigned)(rng_next(s) % n);
}

static uint64_t thread_seed(unsigned i)
{
    uint64_t s = g_seed ^ (0x9e3779b97f4a7c15ULL * (i + 1));
    return s != 0 ? s : 1;
}

static void stress_init(void)
{
    const char *env = getenv("SG_STRESS_SEED");
    g_seed = env != NULL && env[0] != '\0' ? strtoull(env, NULL, 10)
                                           : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    if (g_seed == 0)
        g_seed = 1;
    const char *secs = getenv("SG_STRESS_SECONDS");
    double s = secs != NULL ? atof(secs) : 3.0;
    if (s <= 0 || s > 600)
        s = 3.0;
    g_run_ms = (int64_t)(s * 1000.0);
    printf("stress: seed %" PRIu64 " (replay with SG_STRESS_SEED=%" PRIu64 "), %lld ms per run\n",
           g_seed, g_seed, (long long)g_run_ms);
    fflush(stdout);
}

/* --- What every run records ------------------------------------------------ */

typedef struct tally {
    atomic_ulong started;
    atomic_ulong answered;
    atomic_ulong by_code[SG_CODE_COUNT_];
    atomic_ulong bad_code;       /* a code no query may answer with */
    atomic_ulong pause_mismatch; /* a health snapshot disagreeing with its pool */
} tally;

/* The codes docs/errors.md gives a query, from the library. */
static bool query_code_ok(sg_code c)
{
    switch (c) {
    case SG_OK:
    case SG_SQL_ERROR:
    case SG_POOL_EXHAUSTED:
    case SG_DB_UNAVAILABLE:
    case SG_DB_PAUSED:
    case SG_QUERY_TIMEOUT:
    case SG_SHUTTING_DOWN:
        return true;
    default:
        return false;
    }
}

static void tally_answer(tally *t, sg_code c)
{
    atomic_fetch_add(&t->answered, 1);
    if ((unsigned)c < SG_CODE_COUNT_)
        atomic_fetch_add(&t->by_code[c], 1);
    if (!query_code_ok(c))
        atomic_fetch_add(&t->bad_code, 1);
}

static void tally_check(tally *t, const char *what)
{
    unsigned long started = atomic_load(&t->started), answered = atomic_load(&t->answered);
    printf("stress %s: %lu requests:", what, started);
    for (unsigned c = 0; c < SG_CODE_COUNT_; c++)
        if (atomic_load(&t->by_code[c]) > 0)
            printf(" %s %lu", sg_code_name((sg_code)c), atomic_load(&t->by_code[c]));
    printf("\n");
    fflush(stdout);
    ck_assert_msg(started > 0, "%s: no request ran", what);
    ck_assert_msg(started == answered, "%s: %lu requests started, %lu answered (seed %" PRIu64 ")",
                  what, started, answered, g_seed);
    ck_assert_msg(atomic_load(&t->bad_code) == 0,
                  "%s: %lu answers with a code outside the contract (INTERNAL: %lu; seed %" PRIu64
                  ")",
                  what, atomic_load(&t->bad_code), atomic_load(&t->by_code[SG_INTERNAL]), g_seed);
    ck_assert_msg(atomic_load(&t->pause_mismatch) == 0,
                  "%s: %lu health snapshots disagreed with the pool on the pause (seed %" PRIu64
                  ")",
                  what, atomic_load(&t->pause_mismatch), g_seed);
}

/* --- Database runs ----------------------------------------------------------- */

typedef enum kind { KIND_FAKE, KIND_SQLITE } kind;

typedef struct db_run {
    kind kind;
    sg_db *db;
    atomic_bool stop;
    tally t;
} db_run;

typedef struct worker {
    db_run *run;
    unsigned index;
} worker;

static const sg_sink empty_sink = {0};

static const char *pick_sql(kind k, uint64_t *s, int64_t *timeout_ms)
{
    static const char *const fake_sql[] = {"SELECT 1",      "SELECT 1",    "fake:sleep=5",
                                           "fake:sleep=30", "fake:hang",   "fake:error",
                                           "fake:break",    "fake:rows=50"};
    static const char *const sqlite_sql[] = {
        "SELECT 1", "SELECT count(*) FROM t", "INSERT INTO t(v) VALUES (1)",
        "SELECT * FROM no_such_table",
        /* long enough to meet its small timeout */
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        "BEGIN; SELECT 1", /* leaves a transaction open: the pool closes it */
    };
    *timeout_ms = 0;
    if (k == KIND_FAKE) {
        const char *sql = fake_sql[rng_below(s, sizeof fake_sql / sizeof fake_sql[0])];
        if (strcmp(sql, "fake:hang") == 0 || rng_below(s, 4) == 0)
            *timeout_ms = 10 + rng_below(s, 40);
        return sql;
    }
    unsigned i = rng_below(s, sizeof sqlite_sql / sizeof sqlite_sql[0]);
    if (i == 4)
        *timeout_ms = 10 + rng_below(s, 40);
    return sqlite_sql[i];
}

/* A health snapshot must say paused exactly when its pool does. */
static void check_health(db_run *r)
{
    sg_db_health h;
    sg_db_health_get(r->db, &h);
    bool says_paused = h.state == SG_STATE_PAUSED;
    bool serving = h.state == SG_STATE_READY || h.state == SG_STATE_STARTING;
    if ((says_paused && !h.pool.paused) || (serving && h.pool.paused))
        atomic_fetch_add(&r->t.pause_mismatch, 1);
}

static void run_query(db_run *r, uint64_t *s)
{
    int64_t timeout_ms;
    const char *sql = pick_sql(r->kind, s, &timeout_ms);
    sg_err err;
    sg_err_clear(&err);
    atomic_fetch_add(&r->t.started, 1);
    if (rng_below(s, 2) == 0) {
        int64_t affected = 0;
        int rc = sg_db_execute(r->db, sql, NULL, 0, timeout_ms, &empty_sink, NULL, &affected, &err);
        tally_answer(&r->t, rc == 0 ? SG_OK : err.code);
        return;
    }
    /* Pull style, sometimes ended early (a client that goes away). */
    sg_query *q = sg_db_query_begin(r->db, sql, NULL, 0, timeout_ms, &err);
    if (q == NULL) {
        tally_answer(&r->t, err.code);
        return;
    }
    sg_code code = SG_OK;
    const sg_column *cols;
    size_t n_cols;
    int more;
    bool early = rng_below(s, 4) == 0;
    while (!early && (more = sg_query_next_result(q, &cols, &n_cols, &err)) != 0) {
        if (more < 0) {
            code = err.code;
            break;
        }
        const sg_value *v;
        int got;
        while ((got = sg_query_next_row(q, &v, &err)) > 0)
            ;
        if (got < 0) {
            code = err.code;
            break;
        }
    }
    sg_query_end(q);
    tally_answer(&r->t, code);
}

static void *db_worker(void *arg)
{
    worker *w = arg;
    db_run *r = w->run;
    uint64_t s = thread_seed(w->index);
    while (!atomic_load(&r->stop)) {
        unsigned op = rng_below(&s, 1000);
        if (op < 750) {
            run_query(r, &s);
        } else if (op < 900) {
            check_health(r);
        } else if (op < 960) {
            sg_db_pause(r->db);
            sg_sleep_ms(rng_below(&s, 5));
            check_health(r);
            sg_db_resume(r->db);
        } else if (op < 965) {
            sg_db_reconnect(r->db); /* rare: it drops every idle connection */
        } else {
            sg_sleep_ms(rng_below(&s, 3));
        }
    }
    return NULL;
}

/* Fake only: slow opens, then opens that fail, then recovery, at random. */
static void *chaos(void *arg)
{
    db_run *r = arg;
    uint64_t s = thread_seed(STRESS_THREADS + 1);
    while (!atomic_load(&r->stop)) {
        const char *name = sg_db_name(r->db);
        /* Mostly healthy: outages are short and rarer than recoveries. */
        switch (rng_below(&s, 20)) {
        case 0:
            fake_driver_set(name, FAKE_FAIL_OPEN, FAKE_ALWAYS);
            break;
        case 1:
        case 2:
        case 3:
            fake_driver_set(name, FAKE_FAIL_OPEN, 0); /* recovers */
            break;
        case 4:
            fake_driver_set(name, FAKE_FAIL_PING, 1);
            break;
        case 5:
        case 6:
            fake_driver_set(name, FAKE_OPEN_DELAY_MS, rng_below(&s, 20));
            break;
        default:
            fake_driver_set(name, FAKE_EXEC_DELAY_MS, rng_below(&s, 5));
            break;
        }
        sg_sleep_ms(10 + rng_below(&s, 40));
    }
    fake_driver_set(sg_db_name(r->db), FAKE_FAIL_OPEN, 0);
    return NULL;
}

static sg_db_config g_cfg;
static char g_path[256];

static void stress_config(kind k)
{
    g_cfg = fake_db_config(k == KIND_FAKE ? "stress" : "stress_sqlite", 4);
    g_cfg.pool_min = 1;
    g_cfg.acquire_timeout_ms = 40;
    g_cfg.connect_timeout_ms = 100;
    g_cfg.query_timeout_ms = 200;
    g_cfg.idle_timeout_ms = 50;
    g_cfg.max_lifetime_ms = 300;
    g_cfg.retry_max_ms = 50;
    g_cfg.health_interval_ms = 20;
    g_cfg.health_timeout_ms = 100;
    if (k == KIND_SQLITE) {
        snprintf(g_path, sizeof g_path, "/tmp/sqlgate-stress-%d.db", (int)getpid());
        unlink(g_path);
        g_cfg.driver = "sqlite";
        g_cfg.path = g_path;
    }
}

static void stress_db(kind k)
{
    fake_driver_reset();
    stress_config(k);
    const sg_driver *drv = k == KIND_FAKE ? &fake_driver : sg_driver_find("sqlite");
    ck_assert_ptr_nonnull(drv);
    sg_err err;
    if (k == KIND_SQLITE) {
        sg_driver_conn *c = drv->open(&g_cfg, sg_clock_ms() + 5000, &err);
        ck_assert_msg(c != NULL, "%s", err.message);
        ck_assert_int_eq(
            drv->exec(c, "CREATE TABLE t(v INTEGER)", NULL, 0, sg_clock_ms() + 5000, &err), 0);
        ck_assert_int_eq(drv->finish(c), 0);
        drv->close(c);
    }
    static db_run r;
    memset(&r, 0, sizeof r);
    r.kind = k;
    r.db = sg_db_new(&g_cfg, drv, &err);
    ck_assert_msg(r.db != NULL, "%s", err.message);
    ck_assert_int_eq(sg_db_open(r.db, &err), 0);

    pthread_t th[STRESS_THREADS], chaos_th;
    worker w[STRESS_THREADS];
    for (unsigned i = 0; i < STRESS_THREADS; i++) {
        w[i] = (worker){.run = &r, .index = i};
        ck_assert_int_eq(pthread_create(&th[i], NULL, db_worker, &w[i]), 0);
    }
    bool with_chaos = k == KIND_FAKE;
    if (with_chaos)
        ck_assert_int_eq(pthread_create(&chaos_th, NULL, chaos, &r), 0);

    sg_sleep_ms(g_run_ms);
    /* Shutdown while everything above still runs. */
    int64_t t0 = sg_clock_ms();
    unsigned cancelled = 0;
    (void)sg_db_close(r.db, t0 + DRAIN_MS, &cancelled);
    int64_t took = sg_clock_ms() - t0;
    sg_sleep_ms(50); /* a little traffic against the closed database */
    atomic_store(&r.stop, true);
    for (unsigned i = 0; i < STRESS_THREADS; i++)
        pthread_join(th[i], NULL);
    if (with_chaos)
        pthread_join(chaos_th, NULL);

    ck_assert_msg(took <= DRAIN_MS + SG_DB_CLOSE_GRACE_MS + SLACK_MS,
                  "close took %lld ms (drain %d + grace %d; seed %" PRIu64 ")", (long long)took,
                  DRAIN_MS, SG_DB_CLOSE_GRACE_MS, g_seed);
    ck_assert_msg(!sg_db_abandoned(r.db), "the background thread was abandoned (seed %" PRIu64 ")",
                  g_seed);
    tally_check(&r.t, k == KIND_FAKE ? "db/fake" : "db/sqlite");

    sg_db_health h;
    sg_db_health_get(r.db, &h);
    ck_assert_int_eq(h.state, SG_STATE_CLOSED);
    ck_assert_msg(h.pool.waiting == 0, "%u waiters left asleep", h.pool.waiting);
    ck_assert_msg(h.pool.in_use == 0, "%u connections left borrowed", h.pool.in_use);
    ck_assert_msg(h.pool.open == 0, "%u connections left open after close", h.pool.open);
    ck_assert_msg(h.pool.opened_total == h.pool.closed_total,
                  "pool opened %" PRIu64 ", closed %" PRIu64, h.pool.opened_total,
                  h.pool.closed_total);
    sg_db_free(r.db);
    if (k == KIND_FAKE) {
        fake_counts n;
        fake_driver_counts(NULL, &n);
        /* The driver also counts the health connections (outside the pool). */
        ck_assert_msg(n.opened == n.closed, "driver opened %" PRIu64 ", closed %" PRIu64, n.opened,
                      n.closed);
        ck_assert_msg(n.opened >= h.pool.opened_total && n.closed >= h.pool.closed_total,
                      "the pool counted more connections than the driver opened");
        ck_assert_uint_eq(n.live, 0);
    } else {
        unlink(g_path);
        char side[300];
        snprintf(side, sizeof side, "%s-wal", g_path);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", g_path);
        unlink(side);
    }
}

START_TEST(stress_db_fake)
{
    stress_db(KIND_FAKE);
}
END_TEST

START_TEST(stress_db_sqlite)
{
    stress_db(KIND_SQLITE);
}
END_TEST

/* --- Pool run: strict accounting against the driver ------------------------- */

typedef struct pool_run {
    sg_pool *pool;
    atomic_bool stop;
    tally t;
} pool_run;

typedef struct pool_worker {
    pool_run *run;
    unsigned index;
} pool_worker;

static void *pool_worker_main(void *arg)
{
    pool_worker *w = arg;
    pool_run *r = w->run;
    uint64_t s = thread_seed(100 + w->index);
    while (!atomic_load(&r->stop)) {
        unsigned op = rng_below(&s, 100);
        if (op < 80) {
            sg_err err;
            sg_err_clear(&err);
            atomic_fetch_add(&r->t.started, 1);
            sg_pool_conn *pc =
                sg_pool_acquire(r->pool, sg_clock_ms() + 1 + rng_below(&s, 30), &err);
            if (pc == NULL) {
                tally_answer(&r->t, err.code);
                continue;
            }
            sg_driver_conn *c = sg_pool_conn_driver(pc);
            int64_t tmo = 5 + rng_below(&s, 20);
            const char *sql = rng_below(&s, 8) == 0 ? "fake:hang" : "fake:sleep=2";
            sg_code code = SG_OK;
            if (fake_driver.exec(c, sql, NULL, 0, sg_clock_ms() + tmo, &err) != 0)
                code = err.code;
            bool reusable = fake_driver.finish(c) == 0 && rng_below(&s, 10) != 0;
            sg_pool_release(r->pool, pc, reusable);
            tally_answer(&r->t, code);
        } else if (op < 88) {
            sg_pool_pause(r->pool);
            sg_sleep_ms(rng_below(&s, 3));
            sg_pool_resume(r->pool);
        } else if (op < 92) {
            sg_pool_evict(r->pool);
        } else if (op < 96) {
            sg_pool_maintain(r->pool);
        } else {
            fake_driver_set("stress_pool", FAKE_FAIL_OPEN, rng_below(&s, 2) ? 0 : 2);
        }
    }
    return NULL;
}

START_TEST(stress_pool_accounting)
{
    fake_driver_reset();
    g_cfg = fake_db_config("stress_pool", 3);
    g_cfg.pool_min = 1;
    g_cfg.idle_timeout_ms = 20;
    g_cfg.max_lifetime_ms = 100;
    fake_driver_set("stress_pool", FAKE_OPEN_DELAY_MS, 1);
    sg_err err;
    static pool_run r;
    memset(&r, 0, sizeof r);
    r.pool = sg_pool_new(&fake_driver, &g_cfg, &err);
    ck_assert_ptr_nonnull(r.pool);

    pthread_t th[STRESS_THREADS];
    pool_worker w[STRESS_THREADS];
    for (unsigned i = 0; i < STRESS_THREADS; i++) {
        w[i] = (pool_worker){.run = &r, .index = i};
        ck_assert_int_eq(pthread_create(&th[i], NULL, pool_worker_main, &w[i]), 0);
    }
    sg_sleep_ms(g_run_ms);
    int64_t t0 = sg_clock_ms();
    (void)sg_pool_close(r.pool, t0 + DRAIN_MS, NULL);
    int64_t took = sg_clock_ms() - t0;
    atomic_store(&r.stop, true);
    for (unsigned i = 0; i < STRESS_THREADS; i++)
        pthread_join(th[i], NULL);
    ck_assert_msg(took <= DRAIN_MS + SG_POOL_CANCEL_GRACE_MS + SLACK_MS, "close took %lld ms",
                  (long long)took);
    tally_check(&r.t, "pool");

    sg_pool_stats st;
    sg_pool_stats_get(r.pool, &st);
    fake_counts n;
    fake_driver_counts("stress_pool", &n);
    ck_assert_msg(st.waiting == 0 && st.in_use == 0 && st.open == 0,
                  "left: %u waiting, %u in use, %u open", st.waiting, st.in_use, st.open);
    ck_assert_msg(st.opened_total == n.opened && st.closed_total == n.closed,
                  "pool opened %" PRIu64 "/closed %" PRIu64 ", driver opened %" PRIu64
                  "/closed %" PRIu64 " (seed %" PRIu64 ")",
                  st.opened_total, st.closed_total, n.opened, n.closed, g_seed);
    ck_assert_uint_eq(n.live, 0);
    ck_assert_uint_eq(st.connect_errors, n.open_failures);
    sg_pool_free(r.pool);
}
END_TEST

/* --- The races, one test each ------------------------------------------------ */

typedef struct toggler {
    sg_db *db;
    unsigned index;
    atomic_bool *stop;
    atomic_ulong *mismatch;
} toggler;

static void *pause_toggler(void *arg)
{
    toggler *t = arg;
    uint64_t s = thread_seed(200 + t->index);
    while (!atomic_load(t->stop)) {
        if (rng_below(&s, 2))
            sg_db_pause(t->db);
        else
            sg_db_resume(t->db);
        sg_db_health h;
        sg_db_health_get(t->db, &h);
        bool says_paused = h.state == SG_STATE_PAUSED;
        if (says_paused != h.pool.paused)
            atomic_fetch_add(t->mismatch, 1);
    }
    return NULL;
}

/* Pause had two stores (the database's and its pool's), set one after the
 * other: racing pause and resume calls left them disagreeing, and a health
 * snapshot read one and then the other. */
START_TEST(pause_is_one_truth)
{
    fake_driver_reset();
    g_cfg = fake_db_config("pause_truth", 2);
    sg_err err;
    sg_db *db = sg_db_new(&g_cfg, &fake_driver, &err);
    ck_assert_ptr_nonnull(db);
    ck_assert_int_eq(sg_db_open(db, &err), 0);
    sg_db_health h;
    int64_t until = sg_clock_ms() + 5000;
    do {
        sg_db_health_get(db, &h);
        sg_sleep_ms(5);
    } while (h.state != SG_STATE_READY && sg_clock_ms() < until);
    ck_assert_int_eq(h.state, SG_STATE_READY);

    enum { N = 8 };
    atomic_bool stop = false;
    atomic_ulong mismatch = 0;
    pthread_t th[N];
    toggler t[N];
    for (unsigned i = 0; i < N; i++) {
        t[i] = (toggler){.db = db, .index = i, .stop = &stop, .mismatch = &mismatch};
        ck_assert_int_eq(pthread_create(&th[i], NULL, pause_toggler, &t[i]), 0);
    }
    sg_sleep_ms(g_run_ms < 1500 ? g_run_ms : 1500);
    atomic_store(&stop, true);
    for (unsigned i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    /* At rest as well, after the last racing pair. */
    sg_db_health_get(db, &h);
    ck_assert_msg((h.state == SG_STATE_PAUSED) == h.pool.paused, "at rest: state %s, pool %s",
                  sg_db_state_name(h.state), h.pool.paused ? "paused" : "not paused");
    ck_assert_msg(atomic_load(&mismatch) == 0, "%lu snapshots disagreed on the pause",
                  atomic_load(&mismatch));
    sg_db_free(db);
}
END_TEST

/* A waiter woken at its deadline to a free slot opened a connection with no
 * time left and answered DB_UNAVAILABLE although the database was up. */
START_TEST(acquire_at_deadline_answers_for_the_pool)
{
    fake_driver_reset();
    g_cfg = fake_db_config("deadline", 1);
    fake_driver_set("deadline", FAKE_OPEN_DELAY_MS, 20);
    sg_err err;
    sg_pool *p = sg_pool_new(&fake_driver, &g_cfg, &err);
    ck_assert_ptr_nonnull(p);

    /* No time left and a free slot: the pool's answer, no driver call. */
    sg_pool_conn *pc = sg_pool_acquire(p, sg_clock_ms(), &err);
    ck_assert_ptr_null(pc);
    ck_assert_msg(err.code == SG_POOL_EXHAUSTED, "%s: %s", sg_code_name(err.code), err.message);
    fake_counts n;
    fake_driver_counts("deadline", &n);
    ck_assert_uint_eq(n.opened + n.open_failures, 0);
    sg_pool_pause(p);
    ck_assert_ptr_null(sg_pool_acquire(p, sg_clock_ms(), &err));
    ck_assert_int_eq(err.code, SG_DB_PAUSED);
    sg_pool_resume(p);

    /* With time left it opens as usual. */
    pc = sg_pool_acquire(p, sg_clock_ms() + 2000, &err);
    ck_assert_msg(pc != NULL, "%s", err.message);
    sg_pool_release(p, pc, true);
    (void)sg_pool_close(p, sg_clock_ms(), NULL);
    sg_pool_free(p);
}
END_TEST

/* The background thread stuck in a login (an open no interrupt reaches):
 * close used to join it, so the shutdown waited for the login's timeout. */
START_TEST(close_abandons_thread_stuck_in_login)
{
    fake_driver_reset();
    g_cfg = fake_db_config("stuck_login", 2);
    g_cfg.connect_timeout_ms = 60000;
    g_cfg.health_timeout_ms = 60000;
    enum { LOGIN_MS = 4000 };
    fake_driver_set("stuck_login", FAKE_OPEN_DELAY_MS, LOGIN_MS);
    sg_err err;
    sg_db *db = sg_db_new(&g_cfg, &fake_driver, &err);
    ck_assert_ptr_nonnull(db);
    ck_assert_int_eq(sg_db_open(db, &err), 0);
    sg_sleep_ms(100); /* the background thread is logging in */

    int64_t t0 = sg_clock_ms();
    int rc = sg_db_close(db, t0 + DRAIN_MS, NULL);
    int64_t took = sg_clock_ms() - t0;
    ck_assert_msg(took >= DRAIN_MS - 20 && took <= DRAIN_MS + SG_DB_CLOSE_GRACE_MS + 1000,
                  "close took %lld ms (drain %d, grace %d)", (long long)took, DRAIN_MS,
                  SG_DB_CLOSE_GRACE_MS);
    ck_assert_int_eq(rc, -1);
    ck_assert(sg_db_abandoned(db));
    sg_db_health h;
    sg_db_health_get(db, &h);
    ck_assert_int_eq(h.state, SG_STATE_CLOSED);

    /* The abandoned thread ends on its own when the login returns; its
     * connection is closed, nothing is recorded after the stop. */
    int64_t until = sg_clock_ms() + LOGIN_MS + 5000;
    fake_counts n;
    do {
        sg_sleep_ms(20);
        fake_driver_counts("stuck_login", &n);
    } while ((n.opened == 0 || n.closed < n.opened) && sg_clock_ms() < until);
    ck_assert_uint_eq(n.opened, 1);
    ck_assert_uint_eq(n.closed, 1);
    sg_sleep_ms(100); /* past its last unlock */
    sg_db_health_get(db, &h);
    ck_assert_int_eq(h.state, SG_STATE_CLOSED);
    sg_db_free(db);
}
END_TEST

/* A health check in progress is interrupted by close: close does not wait
 * for the check's own timeout. */
START_TEST(close_interrupts_health_check)
{
    fake_driver_reset();
    g_cfg = fake_db_config("slow_check", 2);
    g_cfg.health_timeout_ms = 60000;
    g_cfg.health_interval_ms = 20;
    sg_err err;
    sg_db *db = sg_db_new(&g_cfg, &fake_driver, &err);
    ck_assert_ptr_nonnull(db);
    ck_assert_int_eq(sg_db_open(db, &err), 0);
    int64_t until = sg_clock_ms() + 5000;
    sg_db_health h;
    do {
        sg_sleep_ms(5);
        sg_db_health_get(db, &h);
    } while (h.state != SG_STATE_READY && sg_clock_ms() < until);
    ck_assert_int_eq(h.state, SG_STATE_READY);
    fake_driver_set("slow_check", FAKE_PING_DELAY_MS, 60000);
    fake_counts n;
    uint64_t pings;
    fake_driver_counts("slow_check", &n);
    pings = n.pings;
    do {
        sg_sleep_ms(5);
        fake_driver_counts("slow_check", &n);
    } while (n.pings == pings && sg_clock_ms() < until);
    ck_assert_uint_gt(n.pings, pings); /* a check is hanging now */

    int64_t t0 = sg_clock_ms();
    int rc = sg_db_close(db, t0, NULL);
    int64_t took = sg_clock_ms() - t0;
    ck_assert_int_eq(rc, 0);
    ck_assert(!sg_db_abandoned(db));
    ck_assert_msg(took <= SG_DB_CLOSE_GRACE_MS, "close took %lld ms", (long long)took);
    sg_db_health_get(db, &h);
    ck_assert_int_eq(h.state, SG_STATE_CLOSED);
    sg_db_free(db);
    ck_assert_uint_eq(fake_driver_live("slow_check"), 0);
}
END_TEST

static Suite *stress_suite(void)
{
    Suite *s = suite_create("stress");
    TCase *tc = tcase_create("races");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, pause_is_one_truth);
    tcase_add_test(tc, acquire_at_deadline_answers_for_the_pool);
    tcase_add_test(tc, close_abandons_thread_stuck_in_login);
    tcase_add_test(tc, close_interrupts_health_check);
    suite_add_tcase(s, tc);
    tc = tcase_create("stress");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, stress_pool_accounting);
    tcase_add_test(tc, stress_db_fake);
    tcase_add_test(tc, stress_db_sqlite);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    stress_init();
    return check_run(stress_suite());
}
