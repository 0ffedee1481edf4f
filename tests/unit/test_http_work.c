/* Unit tests for the worker threads of the HTTP server (src/service/http_work.c):
 * a job does not wait for long behind others that block, threads start on
 * demand up to the maximum and leave when idle, and freeing runs what is
 * queued. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "../../src/lib/util.h"
#include "check_main.h"
#include "http_work.h"
#include "sqlgate/clock.h"

/* A job that blocks until the gate opens. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* monotonic */
    bool open;
    unsigned inside; /* jobs waiting at the gate */
    atomic_uint done;
} gate;

typedef struct gated_job {
    http_job job; /* first: the job is the struct */
    gate *g;
} gated_job;

static void gate_init(gate *g)
{
    pthread_mutex_init(&g->mu, NULL);
    ck_assert_int_eq(sg_cond_init_monotonic(&g->cv), 0);
    g->open = false;
    g->inside = 0;
    atomic_init(&g->done, 0);
}

static void gate_destroy(gate *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

static void gated_run(http_job *job)
{
    gate *g = ((gated_job *)job)->g;
    pthread_mutex_lock(&g->mu);
    g->inside++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    atomic_fetch_add(&g->done, 1);
}

static void gate_open(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* Waits (bounded) until n jobs are inside the gate; returns how many are. */
static unsigned gate_wait_inside(gate *g, unsigned n)
{
    int64_t deadline = sg_clock_ms() + 10000;
    pthread_mutex_lock(&g->mu);
    while (g->inside < n && sg_clock_ms() < deadline)
        sg_cond_wait_until(&g->cv, &g->mu, deadline);
    unsigned inside = g->inside;
    pthread_mutex_unlock(&g->mu);
    return inside;
}

static void wait_done(gate *g, unsigned n)
{
    int64_t deadline = sg_clock_ms() + 10000;
    while (atomic_load(&g->done) < n && sg_clock_ms() < deadline)
        sg_sleep_ms(5);
    ck_assert_uint_eq(atomic_load(&g->done), n);
}

static void submit_all(http_work *w, gated_job *jobs, int n, gate *g)
{
    for (int i = 0; i < n; i++) {
        jobs[i] = (gated_job){.job.run = gated_run, .g = g};
        ck_assert(http_work_submit(w, &jobs[i].job));
    }
}

/* Jobs submitted while others block all run at once: each gets a thread. */
START_TEST(test_blocked_jobs_do_not_hold_up_others)
{
    enum { N = 24 };
    http_work *w = http_work_new(64, 2, 256 * 1024, 60000);
    ck_assert_ptr_nonnull(w);
    gate g;
    gate_init(&g);
    gated_job jobs[N];
    submit_all(w, jobs, N, &g);
    ck_assert_uint_eq(gate_wait_inside(&g, N), N);
    ck_assert_uint_eq(http_work_threads(w), N);
    gate_open(&g);
    wait_done(&g, N);
    /* Idle threads are reused, not multiplied. */
    gate g2;
    gate_init(&g2);
    gate_open(&g2);
    gated_job more[N];
    for (int r = 0; r < 3; r++) {
        submit_all(w, more, N, &g2);
        wait_done(&g2, (unsigned)(N * (r + 1)));
    }
    ck_assert_uint_le(http_work_threads(w), N);
    http_work_free(w);
    gate_destroy(&g);
    gate_destroy(&g2);
}
END_TEST

/* With every running thread blocked (a hung database), a quick job queued
 * behind them still runs: the monitor lets another thread take it. */
START_TEST(test_quick_job_passes_blocked_ones)
{
    enum { BASE = 2 };
    http_work *w = http_work_new(64, BASE, 256 * 1024, 60000);
    ck_assert_ptr_nonnull(w);
    gate stuck;
    gate_init(&stuck);
    gated_job blocked[BASE];
    submit_all(w, blocked, BASE, &stuck);
    ck_assert_uint_eq(gate_wait_inside(&stuck, BASE), BASE);
    gate quick;
    gate_init(&quick);
    gate_open(&quick);
    gated_job q = {.job.run = gated_run, .g = &quick};
    ck_assert(http_work_submit(w, &q.job));
    wait_done(&quick, 1); /* within 10 s; a monitor tick is 1-2 ms */
    ck_assert_uint_eq(atomic_load(&stuck.done), 0);
    gate_open(&stuck);
    wait_done(&stuck, BASE);
    http_work_free(w);
    gate_destroy(&stuck);
    gate_destroy(&quick);
}
END_TEST

/* At the maximum, further jobs queue and run as threads free up. */
START_TEST(test_maximum_queues_the_rest)
{
    enum { MAX = 4, N = 12 };
    http_work *w = http_work_new(MAX, 2, 256 * 1024, 60000);
    ck_assert_ptr_nonnull(w);
    gate g;
    gate_init(&g);
    gated_job jobs[N];
    submit_all(w, jobs, N, &g);
    ck_assert_uint_eq(gate_wait_inside(&g, MAX), MAX);
    sg_sleep_ms(50);
    pthread_mutex_lock(&g.mu);
    ck_assert_uint_eq(g.inside, MAX); /* no fifth thread */
    pthread_mutex_unlock(&g.mu);
    ck_assert_uint_eq(http_work_threads(w), MAX);
    gate_open(&g);
    wait_done(&g, N);
    http_work_free(w);
    gate_destroy(&g);
}
END_TEST

/* Idle threads leave after the linger time; a later job starts a new one. */
START_TEST(test_idle_threads_leave)
{
    enum { N = 8 };
    http_work *w = http_work_new(16, 2, 256 * 1024, 50);
    ck_assert_ptr_nonnull(w);
    gate g;
    gate_init(&g);
    gate_open(&g);
    gated_job jobs[N];
    submit_all(w, jobs, N, &g);
    wait_done(&g, N);
    int64_t deadline = sg_clock_ms() + 10000;
    while (http_work_threads(w) > 0 && sg_clock_ms() < deadline)
        sg_sleep_ms(10);
    ck_assert_uint_eq(http_work_threads(w), 0);
    gated_job again = {.job.run = gated_run, .g = &g};
    ck_assert(http_work_submit(w, &again.job));
    wait_done(&g, N + 1);
    http_work_free(w);
    gate_destroy(&g);
}
END_TEST

static void *open_later(void *arg)
{
    sg_sleep_ms(50);
    gate_open(arg);
    return NULL;
}

/* Freeing runs the jobs still queued before it returns: with one thread
 * held at a gate, the others are still queued when the free begins. */
START_TEST(test_free_runs_queued_jobs)
{
    enum { N = 10 };
    http_work *w = http_work_new(1, 1, 256 * 1024, 60000);
    ck_assert_ptr_nonnull(w);
    gate hold, g;
    gate_init(&hold);
    gate_init(&g);
    gate_open(&g);
    gated_job first, jobs[N];
    submit_all(w, &first, 1, &hold);
    ck_assert_uint_eq(gate_wait_inside(&hold, 1), 1);
    submit_all(w, jobs, N, &g);
    ck_assert_uint_eq(atomic_load(&g.done), 0); /* queued behind the held one */
    pthread_t opener;
    ck_assert_int_eq(pthread_create(&opener, NULL, open_later, &hold), 0);
    http_work_free(w);
    ck_assert_uint_eq(atomic_load(&g.done), N);
    pthread_join(opener, NULL);
    gate_destroy(&hold);
    gate_destroy(&g);
}
END_TEST

static Suite *http_work_suite(void)
{
    Suite *s = suite_create("http_work");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_blocked_jobs_do_not_hold_up_others);
    tcase_add_test(tc, test_quick_job_passes_blocked_ones);
    tcase_add_test(tc, test_maximum_queues_the_rest);
    tcase_add_test(tc, test_idle_threads_leave);
    tcase_add_test(tc, test_free_runs_queued_jobs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(http_work_suite());
}
