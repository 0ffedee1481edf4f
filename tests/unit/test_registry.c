/* Unit tests of the registry and the named database (sg_db) against the fake
 * driver: default alias rules, names, health states, fail-fast, recovery,
 * pause, reconnect, drain and cancel on close, and a soak that checks no
 * connection leaks. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake_driver.h"
#include "sqlgate/db.h"
#include "sqlgate/registry.h"

#define WAIT_LIMIT_MS 5000

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Configs live in a static table: sg_db borrows its config. */
static sg_db_config cfgs[4];

static sg_db_config *quick_config(size_t slot, const char *name, unsigned pool_max)
{
    cfgs[slot] = fake_db_config(name, pool_max);
    cfgs[slot].health_interval_ms = 50;
    cfgs[slot].health_timeout_ms = 500;
    cfgs[slot].retry_max_ms = 100;
    cfgs[slot].acquire_timeout_ms = 300;
    cfgs[slot].query_timeout_ms = 2000;
    return &cfgs[slot];
}

static sg_db *new_db(sg_db_config *cfg)
{
    sg_err err;
    sg_db *db = sg_db_new(cfg, &fake_driver, &err);
    ck_assert_msg(db != NULL, "sg_db_new: %s", err.message);
    return db;
}

static sg_db *open_db(sg_db_config *cfg)
{
    sg_db *db = new_db(cfg);
    sg_err err;
    ck_assert_int_eq(sg_db_open(db, &err), 0);
    return db;
}

static sg_db_state wait_state(sg_db *db, sg_db_state want)
{
    sg_db_health h;
    int64_t until = sg_clock_ms() + WAIT_LIMIT_MS;
    do {
        sg_db_health_get(db, &h);
        if (h.state == want)
            return h.state;
        sleep_ms(10);
    } while (sg_clock_ms() < until);
    return h.state;
}

static void setup(void)
{
    fake_driver_reset();
}

/* --- Registry ---------------------------------------------------------------- */

START_TEST(default_alias_rules)
{
    sg_err err;
    sg_registry *reg = sg_registry_new(&err);
    ck_assert_ptr_nonnull(reg);
    ck_assert_int_eq(sg_registry_add(reg, new_db(quick_config(0, "core", 2)), &err), 0);
    ck_assert_int_eq(sg_registry_add(reg, new_db(quick_config(1, "app", 2)), &err), 0);
    ck_assert_uint_eq(sg_registry_count(reg), 2);

    /* Several databases and no explicit default: there is no default. */
    ck_assert_ptr_null(sg_registry_default_name(reg));
    ck_assert_ptr_null(sg_registry_get(reg, NULL, &err));
    ck_assert_int_eq(err.code, SG_UNKNOWN_DATABASE);
    ck_assert_ptr_null(sg_registry_get(reg, "default", &err));
    ck_assert_int_eq(err.code, SG_UNKNOWN_DATABASE);

    ck_assert_int_eq(sg_registry_set_default(reg, "app", &err), 0);
    ck_assert_str_eq(sg_registry_default_name(reg), "app");
    ck_assert_str_eq(sg_db_name(sg_registry_get(reg, NULL, &err)), "app");
    ck_assert_str_eq(sg_db_name(sg_registry_get(reg, "default", &err)), "app");
    ck_assert_str_eq(sg_db_name(sg_registry_get(reg, "core", &err)), "core");

    ck_assert_int_ne(sg_registry_set_default(reg, "nope", &err), 0);
    ck_assert_int_eq(err.code, SG_UNKNOWN_DATABASE);
    ck_assert_str_eq(sg_registry_default_name(reg), "app");

    ck_assert_int_eq(sg_registry_set_default(reg, NULL, &err), 0);
    ck_assert_ptr_null(sg_registry_default_name(reg));
    sg_registry_free(reg);
}
END_TEST

START_TEST(unknown_and_invalid_names)
{
    sg_err err;
    sg_registry *reg = sg_registry_new(&err);
    ck_assert_int_eq(sg_registry_add(reg, new_db(quick_config(0, "core", 1)), &err), 0);
    ck_assert_ptr_null(sg_registry_get(reg, "missing", &err));
    ck_assert_int_eq(err.code, SG_UNKNOWN_DATABASE);
    ck_assert_ptr_nonnull(strstr(err.message, "missing"));

    const char *bad[] = {"live", "ready", "Core", "9lives", "a-b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sg_err_clear(&err);
        ck_assert_int_ne(sg_registry_add(reg, new_db(quick_config(1, bad[i], 1)), &err), 0);
        ck_assert_int_eq(err.code, SG_BAD_REQUEST);
    }
    ck_assert_uint_eq(sg_registry_count(reg), 1);
    sg_registry_free(reg);
    ck_assert_uint_eq(fake_driver_live(NULL), 0);
}
END_TEST

START_TEST(duplicate_names_rejected)
{
    sg_err err;
    sg_registry *reg = sg_registry_new(&err);
    ck_assert_int_eq(sg_registry_add(reg, new_db(quick_config(0, "core", 1)), &err), 0);
    ck_assert_int_ne(sg_registry_add(reg, new_db(quick_config(1, "core", 1)), &err), 0);
    ck_assert_int_eq(err.code, SG_BAD_REQUEST);
    ck_assert_ptr_nonnull(strstr(err.message, "already"));
    ck_assert_uint_eq(sg_registry_count(reg), 1);
    ck_assert_ptr_eq(sg_db_config_of(sg_registry_get(reg, "core", &err)), &cfgs[0]);
    sg_registry_free(reg);
}
END_TEST

START_TEST(legacy_database_named_default)
{
    sg_err err;
    sg_registry *reg = sg_registry_new(&err);
    ck_assert_int_eq(sg_registry_add(reg, new_db(quick_config(0, "default", 1)), &err), 0);
    ck_assert_str_eq(sg_registry_default_name(reg), "default");
    ck_assert_ptr_nonnull(sg_registry_get(reg, NULL, &err));
    /* "default" must stay the only database. */
    ck_assert_int_ne(sg_registry_add(reg, new_db(quick_config(1, "core", 1)), &err), 0);
    ck_assert_uint_eq(sg_registry_count(reg), 1);
    sg_registry_free(reg);
}
END_TEST

/* --- Named database -------------------------------------------------------- */

struct counter {
    int results, rows, ends;
};

static int on_begin(void *ud, const sg_column *cols, size_t n)
{
    ((struct counter *)ud)->results++;
    return 0;
}

static int on_row(void *ud, const sg_value *v, size_t n)
{
    ((struct counter *)ud)->rows++;
    return 0;
}

static int on_end(void *ud)
{
    ((struct counter *)ud)->ends++;
    return 0;
}

static const sg_sink counting_sink = {on_begin, on_row, on_end};

START_TEST(starts_then_ready)
{
    sg_db *db = new_db(quick_config(0, "core", 2));
    sg_db_health h;
    sg_db_health_get(db, &h);
    ck_assert_int_eq(h.state, SG_STATE_STARTING);
    ck_assert(!h.healthy);
    ck_assert(h.latency_ms < 0);
    ck_assert_int_eq(h.checked_at_ms, 0);

    sg_err err;
    ck_assert_int_eq(sg_db_open(db, &err), 0);
    ck_assert_int_eq(wait_state(db, SG_STATE_READY), SG_STATE_READY);
    sg_db_health_get(db, &h);
    ck_assert(h.healthy);
    ck_assert(h.critical);
    ck_assert(h.latency_ms >= 0);
    ck_assert(h.checked_at_ms > 0);
    ck_assert_int_eq(h.error.code, SG_OK);
    ck_assert_uint_eq(h.pool.max, 2);
    sg_db_free(db);
    ck_assert_uint_eq(fake_driver_live(NULL), 0);
}
END_TEST

START_TEST(down_at_start_fails_fast_and_recovers)
{
    fake_driver_set("app", FAKE_FAIL_OPEN, FAKE_ALWAYS);
    sg_err err;
    sg_registry *reg = sg_registry_new(&err);
    sg_db *core = open_db(quick_config(0, "core", 2));
    sg_db *app = open_db(quick_config(1, "app", 2));
    ck_assert_int_eq(sg_registry_add(reg, core, &err), 0);
    ck_assert_int_eq(sg_registry_add(reg, app, &err), 0);

    ck_assert_int_eq(wait_state(app, SG_STATE_DOWN), SG_STATE_DOWN);
    ck_assert_int_eq(wait_state(core, SG_STATE_READY), SG_STATE_READY);
    sg_db_health h;
    sg_db_health_get(app, &h);
    ck_assert(!h.healthy);
    ck_assert_int_eq(h.error.code, SG_DB_UNAVAILABLE);
    ck_assert_ptr_nonnull(strstr(h.error.message, "refused"));

    /* Known down: fails at once, without waiting for the acquire timeout. */
    int64_t t0 = sg_clock_ms();
    sg_query *q = sg_db_query_begin(app, "SELECT 1", NULL, 0, 0, &err);
    ck_assert_ptr_null(q);
    ck_assert_int_eq(err.code, SG_DB_UNAVAILABLE);
    ck_assert_int_lt(sg_clock_ms() - t0, 250);

    /* The other database serves. */
    struct counter c = {0};
    ck_assert_int_eq(
        sg_registry_execute(reg, "core", "SELECT 1", NULL, 0, &counting_sink, &c, NULL, &err), 0);
    ck_assert_int_eq(c.rows, 1);

    /* The server comes back: the database recovers by itself. */
    fake_driver_set("app", FAKE_FAIL_OPEN, 0);
    ck_assert_int_eq(wait_state(app, SG_STATE_READY), SG_STATE_READY);
    c = (struct counter){0};
    ck_assert_int_eq(sg_db_execute(app, "SELECT 1", NULL, 0, 0, &counting_sink, &c, NULL, &err), 0);
    ck_assert_int_eq(c.results, 1);
    sg_registry_free(reg);
    ck_assert_uint_eq(fake_driver_live(NULL), 0);
}
END_TEST

START_TEST(outage_while_serving_flips_health)
{
    sg_db *db = open_db(quick_config(0, "core", 2));
    ck_assert_int_eq(wait_state(db, SG_STATE_READY), SG_STATE_READY);
    fake_driver_set("core", FAKE_FAIL_OPEN, FAKE_ALWAYS);
    fake_driver_set("core", FAKE_FAIL_PING, FAKE_ALWAYS);
    fake_driver_break_all("core");
    ck_assert_int_eq(wait_state(db, SG_STATE_DOWN), SG_STATE_DOWN);
    sg_err err;
    ck_assert_ptr_null(sg_db_query_begin(db, "SELECT 1", NULL, 0, 0, &err));
    ck_assert_int_eq(err.code, SG_DB_UNAVAILABLE);

    fake_driver_set("core", FAKE_FAIL_OPEN, 0);
    fake_driver_set("core", FAKE_FAIL_PING, 0);
    ck_assert_int_eq(wait_state(db, SG_STATE_READY), SG_STATE_READY);
    sg_query *q = sg_db_query_begin(db, "SELECT 1", NULL, 0, 0, &err);
    ck_assert_msg(q != NULL, "after recovery: %s", err.message);
    sg_query_end(q);
    sg_db_free(db);
    ck_assert_uint_eq(fake_driver_live(NULL), 0);
}
END_TEST

START_TEST(execute_reports_rows_and_affected)
{
    fake_driver_set("core", FAKE_EXEC_RESULTS, 2);
    fake_driver_set("core", FAKE_EXEC_ROWS, 5);
    fake_driver_set("core", FAKE_ROWS_AFFECTED, 7);
    sg_db *db = open_db(quick_config(0, "core", 2));
    struct counter c = {0};
    int64_t affected = -1;
    sg_err err;
    ck_assert_int_eq(sg_db_execute(db, "SELECT n", NULL, 0, 0, &counting_sink, &c, &affected, &err),
                     0);
    ck_assert_int_eq(c.results, 2);
    ck_assert_int_eq(c.ends, 2);
    ck_assert_int_eq(c.rows, 10);
    ck_assert_int_eq(affected, 7);

    ck_assert_int_ne(sg_db_execute(db, "fake:error", NULL, 0, 0, &counting_sink, &c, NULL, &err),
                     0);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    ck_assert(err.has_sql);
    ck_assert_int_eq(err.sql.number, 208);

    sg_db_health h;
    sg_db_health_get(db, &h);
    ck_assert_uint_eq(h.pool.in_use, 0);
    sg_db_free(db);
}
END_TEST

START_TEST(exhaustion_then_release)
{
    sg_db *db = open_db(quick_config(0, "core", 1));
    sg_err err;
    sg_query *held = sg_db_query_begin(db, "SELECT 1", NULL, 0, 0, &err);
    ck_assert_ptr_nonnull(held);
    int64_t t0 = sg_clock_ms();
    ck_assert_ptr_null(sg_db_query_begin(db, "SELECT 1", NULL, 0, 0, &err));
    int64_t waited = sg_clock_ms() - t0;
    ck_assert_int_eq(err.code, SG_POOL_EXHAUSTED);
    ck_assert_int_ge(waited, 250);
    ck_assert_int_lt(waited, 3000);
    sg_query_end(held);
    sg_query *q = sg_db_query_begin(db, "SELECT 1", NULL, 0, 0, &err);
    ck_assert_ptr_nonnull(q);
    sg_query_end(q);
    sg_db_health h;
    sg_db_health_get(db, &h);
    ck_assert_uint_eq(h.pool.in_use, 0);
    ck_assert_uint_eq(h.pool.acquire_timeouts, 1);
    sg_db_free(db);
}
END_TEST

START_TEST(query_timeout_clamped_and_pool_reusable)
{
    sg_db *db = open_db(quick_config(0, "core", 1));
    sg_err err;
    /* A larger timeout than the database's is clamped to it (2000 ms). */
    int64_t t0 = sg_clock_ms();
    ck_assert_ptr_null(sg_db_query_begin(db, "fake:hang", NULL, 0, 60000, &err));
    ck_assert_int_eq(err.code, SG_QUERY_TIMEOUT);
    ck_assert_int_lt(sg_clock_ms() - t0, 4500);
    t0 = sg_clock_ms();
    ck_assert_ptr_null(sg_db_query_begin(db, "fake:hang", NULL, 0, 100, &err));
    ck_assert_int_eq(err.code, SG_QUERY_TIMEOUT);
    ck_assert_int_lt(sg_clock_ms() - t0, 1500);
    sg_query *q = sg_db_query_begin(db, "SELECT 1", NULL, 0, 0, &err);
    ck_assert_msg(q != NULL, "pool unusable after timeout: %s", err.message);
    sg_query_end(q);
    sg_db_free(db);
    ck_assert_uint_eq(fake_driver_live(NULL), 0);
}
END_TEST

START_TEST(broken_connection_not_reused)
{
    sg_db *db = open_db(quick_config(0, "core", 1));
    ck_assert_int_eq(wait_state(db, SG_STATE_READY), SG_STATE_READY);
    sg_err err;
    ck_assert_ptr_null(sg_db_query_begin(db, "fake:break", NULL, 0, 0, &err));
    ck_assert_int_eq(err.code, SG_DB_UNAVAILABLE);
    sg_query *q = sg_db_query_begin(db, "SELECT 1", NULL, 0, 0, &err);
    ck_assert_msg(q != NULL, "%s", err.message);
    sg_query_end(q);
    fake_counts fc;
    fake_driver_counts("core", &fc);
    /* health connection + the broken one + its replacement */
    ck_assert_uint_ge(fc.opened, 3);
    sg_db_free(db);
    ck_assert_uint_eq(fake_driver_live(NULL), 0);
}
END_TEST

START_TEST(pause_and_resume)
{
    sg_db *db = open_db(quick_config(0, "core", 2));
    ck_assert_int_eq(wait_state(db, SG_STATE_READY), SG_STATE_READY);
    sg_db_pause(db);
    sg_db_health h;
    sg_db_health_get(db, &h);
    ck_assert_int_eq(h.state, SG_STATE_PAUSED);
    ck_assert(h.healthy);
    sg_err err;
    int64_t t0 = sg_clock_ms();
    ck_assert_ptr_null(sg_db_query_begin(db, "SELECT 1", NULL, 0, 0, &err));
    ck_assert_int_eq(err.code, SG_DB_PAUSED);
    ck_assert_int_ge(sg_clock_ms() - t0, 250);
    sg_db_resume(db);
    sg_db_health_get(db, &h);
    ck_assert_int_eq(h.state, SG_STATE_READY);
    sg_query *q = sg_db_query_begin(db, "SELECT 1", NULL, 0, 0, &err);
    ck_assert_ptr_nonnull(q);
    sg_query_end(q);
    sg_db_free(db);
}
END_TEST

START_TEST(reconnect_replaces_connections)
{
    sg_db *db = open_db(quick_config(0, "core", 2));
    ck_assert_int_eq(wait_state(db, SG_STATE_READY), SG_STATE_READY);
    sg_err err;
    sg_query *q = sg_db_query_begin(db, "SELECT 1", NULL, 0, 0, &err);
    ck_assert_ptr_nonnull(q);
    sg_query_end(q);
    fake_counts before;
    fake_driver_counts("core", &before);
    sg_db_reconnect(db);
    /* The idle pooled connection and the health connection are replaced. */
    int64_t until = sg_clock_ms() + WAIT_LIMIT_MS;
    fake_counts after;
    do {
        sleep_ms(10);
        fake_driver_counts("core", &after);
    } while (after.closed < before.closed + 2 && sg_clock_ms() < until);
    ck_assert_uint_ge(after.closed, before.closed + 2);
    ck_assert_int_eq(wait_state(db, SG_STATE_READY), SG_STATE_READY);
    sg_db_free(db);
    ck_assert_uint_eq(fake_driver_live(NULL), 0);
}
END_TEST

/* --- Reconnect storms -------------------------------------------------------- */

typedef struct stormer {
    sg_db *db;
    int64_t until;
    atomic_uint asked, calls;
} stormer;

static void *storm_main(void *arg)
{
    stormer *s = arg;
    while (sg_clock_ms() < s->until) {
        atomic_fetch_add(&s->calls, 1);
        if (sg_db_reconnect(s->db))
            atomic_fetch_add(&s->asked, 1);
        sg_err err;
        sg_query *q = sg_db_query_begin(s->db, "SELECT 1", NULL, 0, 0, &err);
        sg_query_end(q);
    }
    return NULL;
}

START_TEST(reconnect_storm_bounded)
{
    /* Eight threads reconnecting and querying in a loop: before coalescing
     * and the login limit this made thousands of logins a second. */
    sg_db_config *cfg = quick_config(0, "core", 4);
    cfg->max_logins_per_sec = 10;
    sg_db *db = open_db(cfg);
    ck_assert_int_eq(wait_state(db, SG_STATE_READY), SG_STATE_READY);
    fake_counts before;
    fake_driver_counts("core", &before);
    sg_db_health h0;
    sg_db_health_get(db, &h0);
    stormer st = {.db = db};
    int64_t start = sg_clock_ms();
    st.until = start + 2000;
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, storm_main, &st), 0);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    double secs = (double)(sg_clock_ms() - start) / 1000.0;
    fake_counts after;
    fake_driver_counts("core", &after);
    uint64_t logins = after.opened + after.open_failures - before.opened - before.open_failures;
    double bound = 10 + 10 * secs + 1;
    ck_assert_msg((double)logins <= bound, "%llu logins in %.2f s, bound %.0f",
                  (unsigned long long)logins, secs, bound);
    /* one reconnect a second at most; the rest joined */
    unsigned asked = atomic_load(&st.asked);
    ck_assert_msg(asked >= 1 && asked <= secs + 2, "%u reconnects started of %u calls", asked,
                  atomic_load(&st.calls));
    ck_assert_uint_gt(atomic_load(&st.calls), 100);
    sg_db_health h1;
    sg_db_health_get(db, &h1);
    ck_assert_uint_eq(h1.reconnects - h0.reconnects, asked);
    ck_assert_uint_ge(h1.pool.logins_total - h0.pool.logins_total, logins);
    /* the database stays in service */
    ck_assert_int_eq(wait_state(db, SG_STATE_READY), SG_STATE_READY);
    sg_err err;
    sg_query *q = sg_db_query_begin(db, "SELECT 1", NULL, 0, 0, &err);
    ck_assert_msg(q != NULL, "%s", err.message);
    sg_query_end(q);
    sg_db_free(db);
    ck_assert_uint_eq(fake_driver_live(NULL), 0);
}
END_TEST

START_TEST(reconnects_coalesce)
{
    sg_db *db = open_db(quick_config(0, "core", 2));
    ck_assert_int_eq(wait_state(db, SG_STATE_READY), SG_STATE_READY);
    int64_t t0 = sg_clock_ms();
    ck_assert(sg_db_reconnect(db));
    /* Within the interval: the first of these schedules the next one, the
     * others join one of the two. */
    unsigned started = 0;
    for (int i = 0; i < 1000; i++)
        started += sg_db_reconnect(db);
    if (sg_clock_ms() - t0 < SG_DB_RECONNECT_INTERVAL_MS)
        ck_assert_uint_le(started, 1);
    /* the pending one is carried out after the interval: the health
     * connection is replaced once more */
    fake_counts c0, c1;
    fake_driver_counts("core", &c0);
    sg_db_health h0;
    sg_db_health_get(db, &h0);
    int64_t until = t0 + SG_DB_RECONNECT_INTERVAL_MS + WAIT_LIMIT_MS;
    do {
        sleep_ms(20);
        fake_driver_counts("core", &c1);
    } while (sg_clock_ms() < until &&
             (started == 0 || c1.closed == c0.closed || sg_clock_ms() - t0 < 1100));
    if (started == 1)
        ck_assert_uint_gt(c1.closed, c0.closed);
    ck_assert_uint_le(h0.reconnects, 2 + 1);
    ck_assert_int_eq(wait_state(db, SG_STATE_READY), SG_STATE_READY);
    sg_db_free(db);
}
END_TEST

struct runner {
    sg_db *db;
    const char *sql;
    int64_t hold_ms;
    sg_code code;
};

static void *run_query(void *arg)
{
    struct runner *r = arg;
    sg_err err;
    sg_err_clear(&err);
    sg_query *q = sg_db_query_begin(r->db, r->sql, NULL, 0, 0, &err);
    if (q != NULL) {
        sleep_ms(r->hold_ms);
        const sg_column *cols;
        size_t n;
        while (sg_query_next_result(q, &cols, &n, &err) > 0) {
            const sg_value *v;
            while (sg_query_next_row(q, &v, &err) > 0)
                ;
        }
        sg_query_end(q);
    }
    r->code = err.code;
    return NULL;
}

START_TEST(close_drains_in_flight)
{
    sg_db *db = open_db(quick_config(0, "core", 2));
    struct runner r = {.db = db, .sql = "SELECT 1", .hold_ms = 200};
    pthread_t t;
    pthread_create(&t, NULL, run_query, &r);
    sleep_ms(50);
    unsigned cancelled = 99;
    ck_assert_int_eq(sg_db_close(db, sg_clock_ms() + 3000, &cancelled), 0);
    ck_assert_uint_eq(cancelled, 0);
    pthread_join(t, NULL);
    ck_assert_int_eq(r.code, SG_OK);
    sg_db_health h;
    sg_db_health_get(db, &h);
    ck_assert_int_eq(h.state, SG_STATE_CLOSED);
    sg_err err;
    ck_assert_ptr_null(sg_db_query_begin(db, "SELECT 1", NULL, 0, 0, &err));
    ck_assert_int_eq(err.code, SG_SHUTTING_DOWN);
    sg_db_free(db);
    ck_assert_uint_eq(fake_driver_live(NULL), 0);
}
END_TEST

START_TEST(shutdown_all_cancels_stuck_work)
{
    sg_err err;
    sg_registry *reg = sg_registry_new(&err);
    sg_db *core = open_db(quick_config(0, "core", 2));
    sg_db *app = open_db(quick_config(1, "app", 2));
    cfgs[0].query_timeout_ms = 60000;
    cfgs[1].query_timeout_ms = 60000;
    ck_assert_int_eq(sg_registry_add(reg, core, &err), 0);
    ck_assert_int_eq(sg_registry_add(reg, app, &err), 0);
    struct runner r1 = {.db = core, .sql = "fake:hang"}, r2 = {.db = app, .sql = "fake:hang"};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, run_query, &r1);
    pthread_create(&t2, NULL, run_query, &r2);
    sleep_ms(100);
    unsigned cancelled = 0;
    int64_t t0 = sg_clock_ms();
    ck_assert_int_ne(sg_registry_shutdown_all(reg, sg_clock_ms() + 200, &cancelled), 0);
    ck_assert_int_lt(sg_clock_ms() - t0, 5000);
    ck_assert_uint_eq(cancelled, 2);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    ck_assert_int_eq(r1.code, SG_QUERY_TIMEOUT);
    ck_assert_int_eq(r2.code, SG_QUERY_TIMEOUT);
    sg_registry_free(reg);
    ck_assert_uint_eq(fake_driver_live(NULL), 0);
}
END_TEST

struct soaker {
    sg_db *db;
    unsigned seed;
    int iterations;
};

static void *soak(void *arg)
{
    struct soaker *s = arg;
    static const char *const sqls[] = {"SELECT 1",    "fake:error",   "fake:break",
                                       "fake:rows=3", "fake:sleep=1", "SELECT 2"};
    for (int i = 0; i < s->iterations; i++) {
        const char *sql = sqls[rand_r(&s->seed) % (sizeof sqls / sizeof sqls[0])];
        sg_err err;
        sg_query *q = sg_db_query_begin(s->db, sql, NULL, 0, 0, &err);
        if (q == NULL)
            continue;
        const sg_column *cols;
        size_t n;
        /* Sometimes stop early: unread rows must not leak the connection. */
        if (rand_r(&s->seed) % 3 != 0 && sg_query_next_result(q, &cols, &n, &err) > 0) {
            const sg_value *v;
            while (sg_query_next_row(q, &v, &err) > 0)
                ;
        }
        sg_query_end(q);
    }
    return NULL;
}

START_TEST(soak_leaks_nothing)
{
    sg_db_config *cfg = quick_config(0, "core", 3);
    cfg->acquire_timeout_ms = 2000;
    sg_db *db = open_db(cfg);
    ck_assert_int_eq(wait_state(db, SG_STATE_READY), SG_STATE_READY);
    const char *env = getenv("SOAK_ITERATIONS");
    int iterations = env ? atoi(env) : 1500;
    struct soaker s[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        s[i] = (struct soaker){.db = db, .seed = (unsigned)i + 1, .iterations = iterations};
        pthread_create(&t[i], NULL, soak, &s[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    sg_db_health h;
    sg_db_health_get(db, &h);
    ck_assert_uint_eq(h.pool.in_use, 0);
    ck_assert_uint_eq(h.pool.waiting, 0);
    ck_assert_uint_le(h.pool.open, 3);
    fake_counts fc;
    fake_driver_counts("core", &fc);
    /* Everything open is either pooled or the health connection. */
    ck_assert_uint_le(fc.live, (uint64_t)h.pool.open + 1);
    ck_assert_uint_le(fc.max_live, 3 + 1);
    sg_db_free(db);
    ck_assert_uint_eq(fake_driver_live(NULL), 0);
}
END_TEST

/* --- Read-only queries (sg_db_query_begin_opts) ----------------------------- */

static int run_opts(sg_db *db, const char *sql, bool read_only, sg_err *err)
{
    sg_query_opts o = {.read_only = read_only};
    sg_query *q = sg_db_query_begin_opts(db, sql, NULL, 0, &o, err);
    if (q == NULL)
        return -1;
    const sg_column *cols;
    size_t n;
    int rc;
    while ((rc = sg_query_next_result(q, &cols, &n, err)) == 1) {
        const sg_value *v;
        while ((rc = sg_query_next_row(q, &v, err)) == 1)
            ;
        if (rc < 0)
            break;
    }
    sg_query_end(q);
    return rc < 0 ? -1 : 0;
}

START_TEST(read_only_without_login_or_driver_mode_is_forbidden)
{
    fake_driver_reset();
    sg_db *db = open_db(quick_config(0, "core", 2));
    ck_assert_int_eq(wait_state(db, SG_STATE_READY), SG_STATE_READY);
    sg_err err;
    /* The fake driver has no read-only mode of its own: fail closed. */
    ck_assert_int_eq(run_opts(db, "SELECT ro", true, &err), -1);
    ck_assert_int_eq(err.code, SG_FORBIDDEN);
    ck_assert_ptr_nonnull(strstr(err.message, "needs rw"));
    ck_assert_ptr_nonnull(strstr(err.message, "READONLY_USER"));
    fake_counts c;
    fake_driver_counts("core", &c);
    ck_assert_uint_eq(c.execs, 0);
    ck_assert_int_eq(run_opts(db, "SELECT rw", false, &err), 0);
    sg_db_free(db);
}
END_TEST

START_TEST(read_only_goes_to_the_read_only_login)
{
    fake_driver_reset();
    /* The read-only login's configuration gets its own name here only so
     * that the fake driver counts its connections apart. */
    sg_db_config *ro = quick_config(1, "core_ro", 2);
    sg_db_config *main_cfg = quick_config(0, "core", 2);
    main_cfg->readonly = ro;
    sg_db *db = open_db(main_cfg);
    ck_assert_int_eq(wait_state(db, SG_STATE_READY), SG_STATE_READY);
    sg_err err;
    ck_assert_int_eq(run_opts(db, "SELECT as_reader", true, &err), 0);
    ck_assert_int_eq(run_opts(db, "SELECT as_writer", false, &err), 0);
    char sql[64];
    fake_driver_last_exec("core_ro", sql, sizeof sql, NULL);
    ck_assert_str_eq(sql, "SELECT as_reader");
    fake_driver_last_exec("core", sql, sizeof sql, NULL);
    ck_assert_str_eq(sql, "SELECT as_writer");

    /* Pause, resume and close reach the read-only pool too. */
    sg_db_pause(db);
    int64_t t0 = sg_clock_ms();
    ck_assert_int_eq(run_opts(db, "SELECT paused", true, &err), -1);
    ck_assert_int_eq(err.code, SG_DB_PAUSED);
    ck_assert_int_ge(sg_clock_ms() - t0, 250);
    sg_db_resume(db);
    ck_assert_int_eq(run_opts(db, "SELECT resumed", true, &err), 0);
    sg_db_close(db, sg_clock_ms() + 1000, NULL);
    ck_assert_uint_eq(fake_driver_live("core_ro"), 0);
    ck_assert_int_eq(run_opts(db, "SELECT closed", true, &err), -1);
    ck_assert_int_eq(err.code, SG_SHUTTING_DOWN);
    sg_db_free(db);
    main_cfg->readonly = NULL;
}
END_TEST

START_TEST(read_only_login_down_is_named)
{
    fake_driver_reset();
    fake_driver_set("core_ro", FAKE_FAIL_OPEN, FAKE_ALWAYS);
    sg_db_config *ro = quick_config(1, "core_ro", 2);
    sg_db_config *main_cfg = quick_config(0, "core", 2);
    main_cfg->readonly = ro;
    sg_db *db = open_db(main_cfg);
    ck_assert_int_eq(wait_state(db, SG_STATE_READY), SG_STATE_READY);
    sg_err err;
    ck_assert_int_eq(run_opts(db, "SELECT as_reader", true, &err), -1);
    ck_assert_int_eq(err.code, SG_DB_UNAVAILABLE);
    ck_assert_msg(strstr(err.message, "read-only login") != NULL, "%s", err.message);
    /* The database itself serves on. */
    ck_assert_int_eq(run_opts(db, "SELECT as_writer", false, &err), 0);
    sg_db_free(db);
    main_cfg->readonly = NULL;
}
END_TEST

static Suite *registry_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *reg = tcase_create("registry");
    tcase_add_checked_fixture(reg, setup, NULL);
    tcase_add_test(reg, default_alias_rules);
    tcase_add_test(reg, unknown_and_invalid_names);
    tcase_add_test(reg, duplicate_names_rejected);
    tcase_add_test(reg, legacy_database_named_default);
    suite_add_tcase(s, reg);

    TCase *db = tcase_create("database");
    tcase_add_checked_fixture(db, setup, NULL);
    tcase_set_timeout(db, 60);
    tcase_add_test(db, starts_then_ready);
    tcase_add_test(db, down_at_start_fails_fast_and_recovers);
    tcase_add_test(db, outage_while_serving_flips_health);
    tcase_add_test(db, execute_reports_rows_and_affected);
    tcase_add_test(db, exhaustion_then_release);
    tcase_add_test(db, query_timeout_clamped_and_pool_reusable);
    tcase_add_test(db, broken_connection_not_reused);
    tcase_add_test(db, pause_and_resume);
    tcase_add_test(db, reconnect_replaces_connections);
    tcase_add_test(db, reconnect_storm_bounded);
    tcase_add_test(db, reconnects_coalesce);
    tcase_add_test(db, close_drains_in_flight);
    tcase_add_test(db, shutdown_all_cancels_stuck_work);
    tcase_add_test(db, soak_leaks_nothing);
    tcase_add_test(db, read_only_without_login_or_driver_mode_is_forbidden);
    tcase_add_test(db, read_only_goes_to_the_read_only_login);
    tcase_add_test(db, read_only_login_down_is_named);
    suite_add_tcase(s, db);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(registry_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
