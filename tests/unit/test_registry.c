/* Unit tests of the registry and the named database (sg_db) against the fake
 * driver: default alias rules, names, health states, fail-fast, recovery,
 * pause, reconnect, drain and cancel on close, and a soak that checks no
 * connection leaks. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check_main.h"
#include "fake_driver.h"
#include "sqlgate/db.h"
#include "sqlgate/registry.h"

#include "../../src/lib/util.h"

#define WAIT_LIMIT_MS 5000

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
        sg_sleep_ms(10);
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
        sg_sleep_ms(10);
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
        sg_sleep_ms(20);
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
        sg_sleep_ms(r->hold_ms);
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
    sg_sleep_ms(50);
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
    sg_sleep_ms(100);
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

/* --- Live registry: register, unregister, replace, apply -------------------- */

/* Configs for the live tests: one slot per database object ever created in a
 * test, because a retired database still reads its config until freed. */
#define LIVE_SLOTS 96
static sg_db_config live_cfgs[LIVE_SLOTS];
static size_t live_next;

static sg_db *live_db(const char *name)
{
    ck_assert_uint_lt(live_next, LIVE_SLOTS);
    sg_db_config *cfg = &live_cfgs[live_next++];
    *cfg = fake_db_config(name, 2);
    cfg->health_interval_ms = 50;
    cfg->acquire_timeout_ms = 2000;
    sg_db *db = new_db(cfg);
    sg_err err;
    ck_assert_int_eq(sg_db_open(db, &err), 0);
    return db;
}

static void live_setup(void)
{
    fake_driver_reset();
    live_next = 0;
}

/* Waits until the registry has freed every retired database. */
static size_t wait_retired_gone(sg_registry *reg)
{
    int64_t until = sg_clock_ms() + WAIT_LIMIT_MS;
    while (sg_registry_retired_count(reg) > 0 && sg_clock_ms() < until)
        sg_sleep_ms(10);
    return sg_registry_retired_count(reg);
}

START_TEST(unregister_stops_lookups_and_waits_for_the_borrower)
{
    sg_err err;
    sg_registry *reg = sg_registry_new(&err);
    ck_assert_int_eq(sg_registry_register(reg, live_db("core"), NULL, &err), 0);
    ck_assert_int_eq(sg_registry_register(reg, live_db("app"), NULL, &err), 0);
    ck_assert_int_eq(sg_registry_set_default(reg, "app", &err), 0);

    sg_db *held = sg_registry_acquire(reg, "app", &err);
    ck_assert_ptr_nonnull(held);
    ck_assert_int_eq(wait_state(held, SG_STATE_READY), SG_STATE_READY);
    ck_assert_int_eq(sg_registry_unregister(reg, "app", sg_clock_ms() + 10000, &err), 0);

    /* Gone for new look-ups, the default with it. */
    ck_assert_ptr_null(sg_registry_acquire(reg, "app", &err));
    ck_assert_int_eq(err.code, SG_UNKNOWN_DATABASE);
    ck_assert_ptr_null(sg_registry_acquire(reg, NULL, &err));
    ck_assert_int_eq(err.code, SG_UNKNOWN_DATABASE);
    ck_assert_uint_eq(sg_registry_count(reg), 1);
    ck_assert_int_ne(sg_registry_unregister(reg, "app", sg_clock_ms(), &err), 0);

    /* The borrower still works on it: the drain waits for it. */
    struct counter c = {0};
    ck_assert_int_eq(
        sg_db_execute(held, "fake:sleep=200", NULL, 0, 0, &counting_sink, &c, NULL, &err), 0);
    sg_db_health h;
    sg_db_health_get(held, &h);
    ck_assert_int_eq(h.state, SG_STATE_READY);
    ck_assert_uint_eq(sg_registry_retired_count(reg), 1);

    sg_registry_release(reg, held);
    ck_assert_uint_eq(wait_retired_gone(reg), 0);
    ck_assert_uint_eq(fake_driver_live("app"), 0);
    ck_assert_uint_gt(fake_driver_live("core"), 0);
    sg_registry_free(reg);
    ck_assert_uint_eq(fake_driver_live(NULL), 0);
}
END_TEST

START_TEST(removed_db_freed_only_after_its_last_borrower)
{
    sg_err err;
    sg_registry *reg = sg_registry_new(&err);
    ck_assert_int_eq(sg_registry_register(reg, live_db("app"), NULL, &err), 0);
    sg_db *a = sg_registry_acquire(reg, "app", &err);
    sg_db *b = sg_registry_acquire(reg, "app", &err);
    ck_assert_ptr_eq(a, b);
    /* A drain deadline that passes while both are still held. */
    ck_assert_int_eq(sg_registry_unregister(reg, "app", sg_clock_ms() + 100, &err), 0);
    ck_assert_int_eq(wait_state(a, SG_STATE_CLOSED), SG_STATE_CLOSED);
    /* Closed but referenced: not freed (ASan/valgrind would catch a use
     * after free in the calls below). */
    sg_sleep_ms(100);
    ck_assert_uint_eq(sg_registry_retired_count(reg), 1);
    sg_db_health h;
    sg_db_health_get(a, &h);
    ck_assert_int_eq(h.state, SG_STATE_CLOSED);
    ck_assert_ptr_null(sg_db_query_begin(a, "SELECT 1", NULL, 0, 0, &err));
    ck_assert_int_eq(err.code, SG_SHUTTING_DOWN);

    sg_registry_release(reg, a);
    ck_assert_uint_eq(sg_registry_retired_count(reg), 1);
    ck_assert_str_eq(sg_db_name(b), "app");
    sg_registry_release(reg, b);
    ck_assert_uint_eq(sg_registry_retired_count(reg), 0);
    sg_registry_free(reg);
    ck_assert_uint_eq(fake_driver_live(NULL), 0);
}
END_TEST

/* The drain deadline interrupts what still runs on a retired database. */
struct slow_query {
    sg_registry *reg;
    sg_db *db;
    const char *sql;
    int rc;
    sg_err err;
};

static void *run_slow(void *arg)
{
    struct slow_query *q = arg;
    struct counter c = {0};
    q->rc = sg_db_execute(q->db, q->sql, NULL, 0, 0, &counting_sink, &c, NULL, &q->err);
    sg_registry_release(q->reg, q->db);
    return NULL;
}

START_TEST(retired_db_in_flight_finishes_or_is_cut_at_the_deadline)
{
    sg_err err;
    sg_registry *reg = sg_registry_new(&err);
    ck_assert_int_eq(sg_registry_register(reg, live_db("fast"), NULL, &err), 0);
    ck_assert_int_eq(sg_registry_register(reg, live_db("stuck"), NULL, &err), 0);
    struct slow_query fine = {.reg = reg, .sql = "fake:sleep=400"};
    struct slow_query stuck = {.reg = reg, .sql = "fake:hang"};
    fine.db = sg_registry_acquire(reg, "fast", &err);
    stuck.db = sg_registry_acquire(reg, "stuck", &err);
    ck_assert_int_eq(wait_state(fine.db, SG_STATE_READY), SG_STATE_READY);
    ck_assert_int_eq(wait_state(stuck.db, SG_STATE_READY), SG_STATE_READY);
    pthread_t t1, t2;
    pthread_create(&t1, NULL, run_slow, &fine);
    pthread_create(&t2, NULL, run_slow, &stuck);
    sg_sleep_ms(100);
    ck_assert_int_eq(sg_registry_unregister(reg, "fast", sg_clock_ms() + 10000, &err), 0);
    ck_assert_int_eq(sg_registry_unregister(reg, "stuck", sg_clock_ms() + 300, &err), 0);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    ck_assert_msg(fine.rc == 0, "the in-flight query failed: %s", fine.err.message);
    ck_assert_int_eq(stuck.rc, -1);
    ck_assert_int_eq(stuck.err.code, SG_QUERY_TIMEOUT);
    ck_assert_uint_eq(wait_retired_gone(reg), 0);
    sg_registry_free(reg);
    ck_assert_uint_eq(fake_driver_live(NULL), 0);
}
END_TEST

/* Threads that look "core" (and the default) up without pause. */
struct hammer {
    sg_registry *reg;
    const char *name;
    _Atomic bool *stop;
    unsigned long gets, misses;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    while (!atomic_load(h->stop)) {
        sg_err err;
        sg_db *db = sg_registry_acquire(h->reg, h->name, &err);
        h->gets++;
        if (db == NULL || strcmp(sg_db_name(db), "core") != 0) {
            h->misses++;
        } else {
            sg_db_health hl;
            sg_db_health_get(db, &hl);
        }
        sg_registry_release(h->reg, db);
    }
    return NULL;
}

START_TEST(concurrent_gets_during_add_remove_replace)
{
    sg_err err;
    sg_registry *reg = sg_registry_new(&err);
    ck_assert_int_eq(sg_registry_register(reg, live_db("core"), NULL, &err), 0);
    ck_assert_int_eq(sg_registry_set_default(reg, "core", &err), 0);
    _Atomic bool stop = false;
    struct hammer h[3] = {
        {reg, "core", &stop, 0, 0}, {reg, NULL, &stop, 0, 0}, {reg, "default", &stop, 0, 0}};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, hammer_main, &h[i]);
    for (int round = 0; round < 20; round++) {
        sg_db *before = sg_registry_get(reg, "core", &err);
        ck_assert_int_eq(
            sg_registry_replace(reg, live_db("core"), NULL, sg_clock_ms() + 2000, &err), 0);
        ck_assert_ptr_ne(sg_registry_get(reg, "core", &err), before);
        /* The alias follows the replacement. */
        ck_assert_ptr_eq(sg_registry_get(reg, NULL, &err), sg_registry_get(reg, "core", &err));
        ck_assert_int_eq(sg_registry_register(reg, live_db("side"), NULL, &err), 0);
        sg_sleep_ms(5);
        ck_assert_int_eq(sg_registry_unregister(reg, "side", sg_clock_ms() + 2000, &err), 0);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        ck_assert_uint_gt(h[i].gets, 0);
        ck_assert_uint_eq(h[i].misses, 0);
    }
    ck_assert_int_ne(sg_registry_replace(reg, live_db("nosuch"), NULL, sg_clock_ms(), &err), 0);
    ck_assert_int_eq(err.code, SG_UNKNOWN_DATABASE);
    ck_assert_uint_eq(wait_retired_gone(reg), 0);
    ck_assert_uint_eq(sg_registry_count(reg), 1);
    sg_registry_free(reg);
    ck_assert_uint_eq(fake_driver_live(NULL), 0);
}
END_TEST

/* --- sg_registry_apply with real configuration snapshots --- */

typedef struct kv {
    const char *k, *v;
} kv;

static const char *kv_lookup(void *ud, const char *name)
{
    for (const kv *p = ud; p->k != NULL; p++)
        if (strcmp(p->k, name) == 0)
            return p->v;
    return NULL;
}

static sg_config *fake_config(const kv *vars)
{
    char *errors = NULL;
    sg_config *cfg = sg_config_load(kv_lookup, (void *)vars, &errors);
    ck_assert_msg(cfg != NULL, "config: %s", errors ? errors : "?");
    /* The loader knows only built-in drivers; the tests run the fake one. */
    for (size_t i = 0; i < cfg->n_databases; i++) {
        cfg->databases[i].driver = "fake";
        cfg->databases[i].health_interval_ms = 50;
    }
    return cfg;
}

static const sg_driver *find_fake(const char *name)
{
    return strcmp(name, "fake") == 0 ? &fake_driver : NULL;
}

struct changes {
    char text[512];
};

static void note_change(void *ud, const char *name, sg_registry_change change)
{
    struct changes *c = ud;
    size_t n = strlen(c->text);
    snprintf(c->text + n, sizeof c->text - n, "%s%s=%s", n ? " " : "", name,
             sg_registry_change_name(change));
}

START_TEST(apply_adds_removes_changes_and_keeps)
{
    static const kv v1[] = {{"SQLGATE_DATABASES", "core,old,moved"},
                            {"SQLGATE_DEFAULT_DATABASE", "old"},
                            {"CORE_DB_PATH", ":memory:"},
                            {"OLD_DB_PATH", ":memory:"},
                            {"MOVED_DB_PATH", ":memory:"},
                            {"MOVED_DB_POOL_MAX", "2"},
                            {NULL, NULL}};
    static const kv v2[] = {{"SQLGATE_DATABASES", "core,moved,fresh"},
                            {"SQLGATE_DEFAULT_DATABASE", "fresh"},
                            {"CORE_DB_PATH", ":memory:"},
                            {"MOVED_DB_PATH", ":memory:"},
                            {"MOVED_DB_POOL_MAX", "3"},
                            {"FRESH_DB_PATH", ":memory:"},
                            {NULL, NULL}};
    sg_config *c1 = fake_config(v1);
    sg_config *c2 = fake_config(v2);
    sg_err err;
    sg_registry *reg = sg_registry_new(&err);
    struct changes ch = {""};
    ck_assert_int_eq(sg_registry_apply(reg, c1, find_fake, NULL, NULL, sg_clock_ms() + 2000,
                                       note_change, &ch, &err),
                     0);
    ck_assert_str_eq(ch.text, "core=added old=added moved=added");
    /* The registry holds its own references: the caller's may go. */
    sg_config_free(c1);
    char def[SG_NAME_MAX + 1];
    ck_assert(sg_registry_default_copy(reg, def));
    ck_assert_str_eq(def, "old");
    sg_db *core = sg_registry_get(reg, "core", &err);
    sg_db *moved = sg_registry_get(reg, "moved", &err);
    ck_assert_int_eq(wait_state(core, SG_STATE_READY), SG_STATE_READY);
    fake_counts before;
    fake_driver_counts("core", &before);

    /* What would change, without changing anything. */
    ch.text[0] = '\0';
    sg_registry_compare(reg, c2, note_change, &ch);
    ck_assert_str_eq(ch.text, "core=unchanged moved=changed fresh=added old=removed");
    ck_assert_ptr_nonnull(sg_registry_get(reg, "old", &err));

    ch.text[0] = '\0';
    ck_assert_int_eq(sg_registry_apply(reg, c2, find_fake, NULL, NULL, sg_clock_ms() + 2000,
                                       note_change, &ch, &err),
                     0);
    ck_assert_str_eq(ch.text, "core=unchanged moved=changed fresh=added old=removed");
    ck_assert_ptr_eq(sg_registry_get(reg, "core", &err), core);
    ck_assert_ptr_ne(sg_registry_get(reg, "moved", &err), moved);
    ck_assert_uint_eq(sg_db_config_of(sg_registry_get(reg, "moved", &err))->pool_max, 3);
    ck_assert_ptr_null(sg_registry_get(reg, "old", &err));
    ck_assert_ptr_nonnull(sg_registry_get(reg, "fresh", &err));
    ck_assert(sg_registry_default_copy(reg, def));
    ck_assert_str_eq(def, "fresh");
    ck_assert_uint_eq(sg_registry_count(reg), 3);
    ck_assert_str_eq(sg_db_name(sg_registry_at(reg, 2)), "fresh");
    /* The unchanged database kept its connections. */
    fake_counts after;
    fake_driver_counts("core", &after);
    ck_assert_uint_eq(after.opened, before.opened);
    ck_assert_uint_eq(after.closed, before.closed);
    ck_assert_uint_eq(wait_retired_gone(reg), 0);
    ck_assert_uint_eq(fake_driver_live("old"), 0);

    /* A driver that does not exist: refused, nothing changed. */
    sg_config *c3 = fake_config(v1);
    c3->databases[1].driver = "nosuch";
    ck_assert_int_ne(
        sg_registry_apply(reg, c3, find_fake, NULL, NULL, sg_clock_ms(), NULL, NULL, &err), 0);
    ck_assert_ptr_nonnull(strstr(err.message, "nosuch"));
    ck_assert_ptr_nonnull(sg_registry_get(reg, "fresh", &err));
    ck_assert_ptr_null(sg_registry_get(reg, "old", &err));
    ck_assert_uint_eq(sg_registry_retired_count(reg), 0);
    sg_config_free(c3);
    sg_config_free(c2);
    sg_registry_free(reg);
    ck_assert_uint_eq(fake_driver_live(NULL), 0);
}
END_TEST

START_TEST(apply_under_concurrent_gets_keeps_the_unchanged)
{
    static const kv v1[] = {{"SQLGATE_DATABASES", "core,side"},
                            {"SQLGATE_DEFAULT_DATABASE", "core"},
                            {"CORE_DB_PATH", ":memory:"},
                            {"SIDE_DB_PATH", ":memory:"},
                            {NULL, NULL}};
    static const kv v2[] = {{"SQLGATE_DATABASES", "other,core"},
                            {"SQLGATE_DEFAULT_DATABASE", "core"},
                            {"CORE_DB_PATH", ":memory:"},
                            {"OTHER_DB_PATH", ":memory:"},
                            {NULL, NULL}};
    sg_config *c[2] = {fake_config(v1), fake_config(v2)};
    sg_err err;
    sg_registry *reg = sg_registry_new(&err);
    ck_assert_int_eq(
        sg_registry_apply(reg, c[0], find_fake, NULL, NULL, sg_clock_ms(), NULL, NULL, &err), 0);
    sg_db *core = sg_registry_get(reg, "core", &err);
    _Atomic bool stop = false;
    struct hammer h[2] = {{reg, "core", &stop, 0, 0}, {reg, NULL, &stop, 0, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, hammer_main, &h[i]);
    for (int round = 0; round < 20; round++) {
        ck_assert_int_eq(sg_registry_apply(reg, c[(round + 1) % 2], find_fake, NULL, NULL,
                                           sg_clock_ms() + 1000, NULL, NULL, &err),
                         0);
        ck_assert_ptr_eq(sg_registry_get(reg, "core", &err), core);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        ck_assert_uint_eq(h[i].misses, 0);
    }
    sg_config_free(c[0]);
    sg_config_free(c[1]);
    ck_assert_uint_eq(wait_retired_gone(reg), 0);
    sg_registry_free(reg);
    ck_assert_uint_eq(fake_driver_live(NULL), 0);
}
END_TEST

START_TEST(shutdown_cuts_a_retired_drain)
{
    sg_err err;
    sg_registry *reg = sg_registry_new(&err);
    ck_assert_int_eq(sg_registry_register(reg, live_db("core"), NULL, &err), 0);
    ck_assert_int_eq(sg_registry_register(reg, live_db("app"), NULL, &err), 0);
    struct slow_query stuck = {.reg = reg, .sql = "fake:hang"};
    stuck.db = sg_registry_acquire(reg, "app", &err);
    ck_assert_int_eq(wait_state(stuck.db, SG_STATE_READY), SG_STATE_READY);
    pthread_t t;
    pthread_create(&t, NULL, run_slow, &stuck);
    sg_sleep_ms(100);
    /* A drain far beyond the shutdown's deadline. */
    ck_assert_int_eq(sg_registry_unregister(reg, "app", sg_clock_ms() + 60000, &err), 0);
    int64_t began = sg_clock_ms();
    unsigned cancelled = 0;
    ck_assert_int_ne(sg_registry_shutdown_all(reg, sg_clock_ms() + 200, &cancelled), 0);
    ck_assert_int_lt(sg_clock_ms() - began, 5000);
    ck_assert_uint_eq(cancelled, 1);
    pthread_join(t, NULL);
    ck_assert_int_eq(stuck.err.code, SG_QUERY_TIMEOUT);
    /* A configuration applied after the shutdown would escape it. */
    static const kv late[] = {
        {"SQLGATE_DATABASES", "late"}, {"LATE_DB_PATH", ":memory:"}, {NULL, NULL}};
    sg_config *c = fake_config(late);
    ck_assert_int_ne(
        sg_registry_apply(reg, c, find_fake, NULL, NULL, sg_clock_ms(), NULL, NULL, &err), 0);
    ck_assert_int_eq(err.code, SG_SHUTTING_DOWN);
    ck_assert_ptr_null(sg_registry_get(reg, "late", &err));
    sg_config_free(c);
    sg_registry_free(reg);
    ck_assert_uint_eq(fake_driver_live(NULL), 0);
}
END_TEST

START_TEST(config_equal_compares_every_field)
{
    sg_db_config a = fake_db_config("core", 4);
    sg_db_config b = a;
    ck_assert(sg_db_config_equal(&a, &b));
    char pw1[] = "secret-1", pw2[] = "secret-1";
    a.password = pw1;
    b.password = pw2; /* equal text, different storage */
    ck_assert(sg_db_config_equal(&a, &b));
    pw2[7] = '2';
    ck_assert(!sg_db_config_equal(&a, &b));
    b = a;
    b.password = NULL;
    ck_assert(!sg_db_config_equal(&a, &b));
    b = a;
    b.health_timeout_ms++;
    ck_assert(!sg_db_config_equal(&a, &b));
    b = a;
    b.critical = !a.critical;
    ck_assert(!sg_db_config_equal(&a, &b));
    b = a;
    b.ca_file = "/etc/ca.pem";
    ck_assert(!sg_db_config_equal(&a, &b));
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

    TCase *live = tcase_create("live");
    tcase_add_checked_fixture(live, live_setup, NULL);
    tcase_set_timeout(live, 60);
    tcase_add_test(live, unregister_stops_lookups_and_waits_for_the_borrower);
    tcase_add_test(live, removed_db_freed_only_after_its_last_borrower);
    tcase_add_test(live, retired_db_in_flight_finishes_or_is_cut_at_the_deadline);
    tcase_add_test(live, concurrent_gets_during_add_remove_replace);
    tcase_add_test(live, apply_adds_removes_changes_and_keeps);
    tcase_add_test(live, apply_under_concurrent_gets_keeps_the_unchanged);
    tcase_add_test(live, shutdown_cuts_a_retired_drain);
    tcase_add_test(live, config_equal_compares_every_field);
    suite_add_tcase(s, live);
    return s;
}

int main(void)
{
    return check_run(registry_suite());
}
