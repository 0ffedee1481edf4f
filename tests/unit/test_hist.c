/* Unit tests for the latency histogram (sqlgate/hist.h), the pool's creation
 * timings against the fake driver, and traceparent validation
 * (src/service/trace.c). */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "fake_driver.h"
#include "sqlgate/hist.h"
#include "sqlgate/pool.h"
#include "trace.h"

START_TEST(test_bounds_ascending_from_100us)
{
    ck_assert(sg_hist_bounds[0] == 0.0001);
    ck_assert(sg_hist_bounds[SG_HIST_BOUNDS - 1] == 10);
    for (unsigned b = 1; b < SG_HIST_BOUNDS; b++)
        ck_assert(sg_hist_bounds[b] > sg_hist_bounds[b - 1]);
}
END_TEST

/* A sample equal to a bound counts in that bucket (le is "less or equal"). */
START_TEST(test_sample_lands_in_its_bucket)
{
    sg_hist *h = calloc(1, sizeof *h);
    ck_assert_ptr_nonnull(h);
    sg_hist_observe_ns(h, -5);            /* a clock step back: 0 */
    sg_hist_observe_ns(h, 100000);        /* exactly 100 µs: first bucket */
    sg_hist_observe_ns(h, 100001);        /* just above: second */
    sg_hist_observe_ns(h, 1000000000);    /* 1 s: the "1" bucket */
    sg_hist_observe_ns(h, 60000000000LL); /* a minute: +Inf only */
    sg_hist_snap s;
    sg_hist_snapshot(h, &s);
    ck_assert_uint_eq(s.count, 5);
    ck_assert_uint_eq(s.cumulative[0], 2);
    ck_assert_uint_eq(s.cumulative[1], 3);
    unsigned one = 12; /* index of le="1" */
    ck_assert(sg_hist_bounds[one] == 1);
    ck_assert_uint_eq(s.cumulative[one - 1], 3);
    ck_assert_uint_eq(s.cumulative[one], 4);
    ck_assert_uint_eq(s.cumulative[SG_HIST_BOUNDS - 1], 4);
    ck_assert_uint_eq(s.cumulative[SG_HIST_BOUNDS], 5);
    double want = (100000 + 100001 + 1000000000 + 60000000000.0) / 1e9;
    ck_assert_double_eq_tol(s.sum_seconds, want, 1e-9);
    free(h);
}
END_TEST

#define THREADS 4
#define PER     20000

static void *observer(void *arg)
{
    sg_hist *h = arg;
    for (int i = 0; i < PER; i++)
        sg_hist_observe_ns(h, (int64_t)(i % 7) * 300000);
    return NULL;
}

/* Concurrent recording loses nothing, and every snapshot is cumulative with
 * +Inf equal to the count. */
START_TEST(test_concurrent_observers)
{
    sg_hist *h = calloc(1, sizeof *h);
    ck_assert_ptr_nonnull(h);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, observer, h), 0);
    for (int k = 0; k < 200; k++) {
        sg_hist_snap s;
        sg_hist_snapshot(h, &s);
        for (unsigned b = 1; b <= SG_HIST_BOUNDS; b++)
            ck_assert_uint_ge(s.cumulative[b], s.cumulative[b - 1]);
        ck_assert_uint_eq(s.cumulative[SG_HIST_BOUNDS], s.count);
    }
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    sg_hist_snap s;
    sg_hist_snapshot(h, &s);
    ck_assert_uint_eq(s.count, THREADS * PER);
    free(h);
}
END_TEST

/* Each successful open is timed, the login included; failed ones are not. */
START_TEST(test_pool_times_opens)
{
    fake_driver_reset();
    fake_driver_set("t", FAKE_OPEN_DELAY_MS, 30);
    sg_db_config cfg = fake_db_config("t", 2);
    sg_err err;
    sg_pool *p = sg_pool_new(&fake_driver, &cfg, &err);
    ck_assert_ptr_nonnull(p);
    sg_pool_conn *a = sg_pool_acquire(p, sg_clock_ms() + 5000, &err);
    sg_pool_conn *b = sg_pool_acquire(p, sg_clock_ms() + 5000, &err);
    ck_assert(a != NULL && b != NULL);
    sg_pool_release(p, a, true);
    sg_pool_release(p, b, false);
    fake_driver_set("t", FAKE_FAIL_OPEN, FAKE_ALWAYS);
    sg_pool_conn *c = sg_pool_acquire(p, sg_clock_ms() + 5000, &err); /* the idle one */
    ck_assert_ptr_nonnull(c);
    sg_pool_conn *d = sg_pool_acquire(p, sg_clock_ms() + 5000, &err); /* an open that fails */
    ck_assert_ptr_null(d);
    sg_pool_release(p, c, true);
    sg_hist_snap s;
    sg_pool_creation_get(p, &s);
    ck_assert_uint_eq(s.count, 2);
    ck_assert_uint_eq(s.cumulative[7], 0); /* le="0.025": none faster than 30 ms */
    ck_assert(s.sum_seconds >= 0.059 && s.sum_seconds < 30);
    sg_pool_stats st;
    sg_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.min, cfg.pool_min);
    ck_assert_int_eq(sg_pool_close(p, sg_clock_ms() + 5000, NULL), 0);
    sg_pool_free(p);
}
END_TEST

START_TEST(test_traceparent)
{
    char out[TRACE_PARENT_LEN + 1];
    static const char ok[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    ck_assert(trace_parent_parse(ok, out));
    ck_assert_str_eq(out, ok);
    ck_assert(trace_parent_parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x", out));
    ck_assert_str_eq(out, "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    static const char *const bad[] = {
        "",
        "00",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0G",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736x00f067aa0ba902b7-01",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(!trace_parent_parse(bad[i], out), "accepted bad %zu", i);
        ck_assert_str_eq(out, "");
    }
}
END_TEST

static Suite *hist_suite(void)
{
    Suite *s = suite_create("hist");
    TCase *tc = tcase_create("hist");
    tcase_add_test(tc, test_bounds_ascending_from_100us);
    tcase_add_test(tc, test_sample_lands_in_its_bucket);
    tcase_add_test(tc, test_concurrent_observers);
    tcase_add_test(tc, test_pool_times_opens);
    tcase_add_test(tc, test_traceparent);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(hist_suite());
}
