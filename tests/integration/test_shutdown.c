/* Integration: signals and the ordered shutdown (docs/operations.md).
 *
 * Slow statements are SQLite recursive CTEs whose length is calibrated on the
 * running service at the start of each test, so a "4 s query" takes about
 * 4 s on this machine. Every test starts its own service (embedded default
 * databases) in a fresh directory.
 */
#include <check.h>
#include <ctype.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "check_main.h"
#include "harness.h"

#define CORE_Q "/v1/databases/core/query"

static void count_body(long n, char *buf, size_t cap)
{
    snprintf(buf, cap,
             "{\"sql\":\"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
             "WHERE x < %ld) SELECT count(*) AS n FROM c\"}",
             n);
}

/* Runs the counting query for n rows; returns its wall time in ms. */
static int64_t time_count(proc *p, long n)
{
    char body[256];
    count_body(n, body, sizeof body);
    http_resp r;
    int64_t t0 = now_ms();
    http_post(p, CORE_Q, body, &r);
    int64_t took = now_ms() - t0;
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), n);
    http_resp_free(&r);
    return took > 0 ? took : 1;
}

/* Calibrated statements must never meet the query timeout, however loaded
 * the machine is: these tests are about shutdown, not timeouts. */
#define SLOW_QUERY_TIMEOUT "CORE_DB_QUERY_TIMEOUT_MS=300000"

/* Row count for a counting query that takes about target_ms here. */
static long calibrate(proc *p, int target_ms)
{
    long n = 100000;
    int64_t t = time_count(p, n);
    while (t < 200 && n < 100000000L) {
        n *= 4;
        t = time_count(p, n);
    }
    /* the fastest of three: a burst of load elsewhere must not make the
     * slow queries shorter than intended */
    for (int i = 0; i < 2; i++) {
        int64_t again = time_count(p, n);
        if (again < t) {
            t = again;
        }
    }
    double scaled = (double)n * target_ms / (double)t;
    if (scaled > 2000000000.0) {
        scaled = 2000000000.0;
    }
    long rows = scaled > (double)n ? (long)scaled : n;
    fprintf(stderr, "calibration: %ld rows in %lld ms; %ld rows for ~%d ms\n", n, (long long)t,
            rows, target_ms);
    return rows;
}

static http_async *start_count(proc *p, long n)
{
    char url[128], body[256];
    proc_url(p, CORE_Q, url, sizeof url);
    count_body(n, body, sizeof body);
    static const char *const hdr[] = {"Content-Type: application/json", NULL};
    http_req rq = {.method = "POST",
                   .url = url,
                   .headers = hdr,
                   .body = body,
                   .body_len = strlen(body),
                   .timeout_ms = 60000};
    http_async *a = http_async_start(&rq);
    ck_assert_ptr_nonnull(a);
    return a;
}

static void check_draining_ready(proc *p)
{
    http_resp r;
    http_get(p, "/health/ready", &r);
    ASSERT_STATUS(&r, 503);
    ck_assert(json_is_false(jget(r.json, "healthy")));
    ck_assert_str_eq(jstr(r.json, "status"), "draining");
    const char *ra = http_header_get(&r, "Retry-After");
    ck_assert_msg(ra != NULL && isdigit((unsigned char)ra[0]), "Retry-After '%s'",
                  ra ? ra : "(none)");
    http_resp_free(&r);

    http_get(p, "/health", &r);
    ASSERT_STATUS(&r, 503);
    ck_assert(json_is_false(jget(r.json, "healthy")));
    ck_assert_str_eq(jstr(r.json, "status"), "draining");
    ck_assert_msg(http_header_get(&r, "Retry-After") != NULL, "no Retry-After on /health 503");
    http_resp_free(&r);

    http_get(p, "/health/live", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "status"), "live");
    http_resp_free(&r);
}

/* Waits (up to 3 s: the signal thread may be slow to run on a loaded
 * machine) until /health/ready says the stop began, then checks the three
 * health routes. */
static void wait_draining_ready(proc *p)
{
    int64_t until = now_ms() + 3000;
    for (;;) {
        http_resp r;
        http_get(p, "/health/ready", &r);
        int status = r.status;
        http_resp_free(&r);
        if (status == 503 || now_ms() >= until)
            break;
        sleep_ms(20);
    }
    check_draining_ready(p);
}

START_TEST(graceful_sigterm)
{
    /* The delay is long enough for the checks below to run inside it on a
     * loaded machine, and the slow queries outlast it; the drain timeout is
     * far above their length, which a sanitizer build on a busy machine can
     * stretch well past the calibration (the default 25 s was once not
     * enough). */
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", SLOW_QUERY_TIMEOUT,
                                      "SQLGATE_SHUTDOWN_DELAY_MS=3000",
                                      "SQLGATE_DRAIN_TIMEOUT_MS=180000", NULL};
    proc *p = fixture_start(env, true);
    long n = calibrate(p, 8000);

    /* a keep-alive connection opened before the signal */
    CURL *ka = curl_easy_init();
    ck_assert_ptr_nonnull(ka);
    char live_url[128];
    proc_url(p, "/health/live", live_url, sizeof live_url);
    http_req live = {.method = "GET", .url = live_url, .handle = ka, .timeout_ms = 5000};
    http_resp r;
    http_do(&live, &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);

    http_async *slow1 = start_count(p, n);
    http_async *slow2 = start_count(p, n);
    sleep_ms(400);

    int64_t t_sig = now_ms();
    ck_assert_int_eq(proc_signal(p, SIGTERM), 0);

    /* during the delay: not ready, still live, still serving */
    wait_draining_ready(p);
    http_postf(p, CORE_Q, &r, "{s:s}", "sql", "SELECT count(*) AS n FROM users");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), 3);
    http_resp_free(&r);
    int64_t in_delay = now_ms() - t_sig;
    ck_assert_msg(in_delay < 3000, "the delay checks ran too late (%lld ms after the signal)",
                  (long long)in_delay);
    ck_assert_msg(proc_running(p), "exited during the delay");

    /* after the delay: no new connections; open ones get SHUTTING_DOWN */
    sleep_ms((int)(3500 - (now_ms() - t_sig)));
    char url[128];
    proc_url(p, "/health/live", url, sizeof url);
    http_req fresh = {.method = "GET", .url = url, .timeout_ms = 3000};
    http_do(&fresh, &r);
    char d[600];
    ck_assert_msg(r.status == 0 && r.curl_code == CURLE_COULDNT_CONNECT,
                  "a new connection was not refused after the delay: %s",
                  resp_desc(&r, d, sizeof d));
    http_resp_free(&r);

    http_do(&live, &r);
    ASSERT_ERROR(&r, 503, "SHUTTING_DOWN");
    ck_assert_msg(r.new_conns == 0, "the keep-alive connection was not reused");
    const char *conn = http_header_get(&r, "Connection");
    ck_assert_msg(conn != NULL && strcasecmp(conn, "close") == 0, "Connection: '%s'",
                  conn ? conn : "(none)");
    http_resp_free(&r);
    curl_easy_cleanup(ka);

    /* in-flight queries finish normally */
    http_async_join(slow1, &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), n);
    http_resp_free(&r);
    http_async_join(slow2, &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), n);
    http_resp_free(&r);

    int code = proc_wait_exit(p, 30000);
    int64_t took = now_ms() - t_sig;
    ck_assert_msg(code == 0, "exit status %d after a clean drain", code);
    ck_assert_msg(took >= 3000, "exited %lld ms after the signal, before the delay ended",
                  (long long)took);
}
END_TEST

START_TEST(idle_sigterm_exits_zero)
{
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", SLOW_QUERY_TIMEOUT, NULL};
    proc *p = fixture_start(env, true);
    int64_t t0 = now_ms();
    ck_assert_int_eq(proc_signal(p, SIGTERM), 0);
    int code = proc_wait_exit(p, 10000);
    ck_assert_msg(code == 0, "exit status %d", code);
    ck_assert_msg(now_ms() - t0 < 5000, "took %lld ms to stop", (long long)(now_ms() - t0));
}
END_TEST

START_TEST(drain_timeout_cancels)
{
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", SLOW_QUERY_TIMEOUT,
                                      "SQLGATE_DRAIN_TIMEOUT_MS=300", NULL};
    proc *p = fixture_start(env, true);
    long n = calibrate(p, 10000);
    http_async *slow = start_count(p, n);
    sleep_ms(500);

    int64_t t_sig = now_ms();
    ck_assert_int_eq(proc_signal(p, SIGTERM), 0);
    int code = proc_wait_exit(p, 15000);
    int64_t took = now_ms() - t_sig;
    ck_assert_msg(code == 1, "exit status %d, expected 1 after cancelling", code);
    ck_assert_msg(took < 5000, "exited %lld ms after the signal (drain 300 ms)", (long long)took);

    http_resp r;
    http_async_join(slow, &r);
    ck_assert_msg(r.status != 200, "the cancelled query answered 200");
    http_resp_free(&r);

    char *err = proc_stderr(p);
    json_int_t cancelled = log_max_int(err, "cancelled");
    ck_assert_msg(cancelled >= 1, "no log line with \"cancelled\" >= 1:\n%s", err);
    free(err);
}
END_TEST

START_TEST(second_signal_exits_at_once)
{
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", SLOW_QUERY_TIMEOUT,
                                      "SQLGATE_DRAIN_TIMEOUT_MS=20000", NULL};
    proc *p = fixture_start(env, true);
    long n = calibrate(p, 10000);
    http_async *slow = start_count(p, n);
    sleep_ms(500);

    ck_assert_int_eq(proc_signal(p, SIGTERM), 0);
    sleep_ms(700);
    ck_assert_msg(proc_running(p), "exited before the drain finished");
    int64_t t0 = now_ms();
    ck_assert_int_eq(proc_signal(p, SIGTERM), 0);
    int code = proc_wait_exit(p, 5000);
    ck_assert_msg(code == 1, "exit status %d after a second signal", code);
    ck_assert_msg(now_ms() - t0 < 3000, "took %lld ms after the second signal",
                  (long long)(now_ms() - t0));

    http_resp r;
    http_async_join(slow, &r);
    http_resp_free(&r);
}
END_TEST

START_TEST(sigint_like_sigterm)
{
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", SLOW_QUERY_TIMEOUT,
                                      "SQLGATE_SHUTDOWN_DELAY_MS=3000", NULL};
    proc *p = fixture_start(env, true);
    long n = calibrate(p, 2500);
    http_async *slow = start_count(p, n);
    sleep_ms(300);

    int64_t t_sig = now_ms();
    ck_assert_int_eq(proc_signal(p, SIGINT), 0);
    wait_draining_ready(p);

    http_resp r;
    http_async_join(slow, &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), n);
    http_resp_free(&r);

    int code = proc_wait_exit(p, 30000);
    ck_assert_msg(code == 0, "exit status %d after SIGINT", code);
    ck_assert_msg(now_ms() - t_sig >= 3000, "exited before the delay ended");
}
END_TEST

START_TEST(second_signal_mixed)
{
    /* SIGINT then SIGTERM counts as two signals */
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", SLOW_QUERY_TIMEOUT,
                                      "SQLGATE_SHUTDOWN_DELAY_MS=20000", NULL};
    proc *p = fixture_start(env, true);
    ck_assert_int_eq(proc_signal(p, SIGINT), 0);
    wait_draining_ready(p);
    ck_assert_msg(proc_running(p), "exited during the delay");
    ck_assert_int_eq(proc_signal(p, SIGTERM), 0);
    int code = proc_wait_exit(p, 5000);
    ck_assert_msg(code == 1, "exit status %d after a second signal", code);
}
END_TEST

/* Files named sqlgate-freetds-* in dir (the generated freetds.conf). */
static int generated_confs(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
        n += strncmp(e->d_name, "sqlgate-freetds-", 16) == 0;
    closedir(d);
    return n;
}

/* A hard exit (the second signal) skips atexit handlers; the freetds.conf
 * generated for ENCRYPT must not be left behind in TMPDIR all the same. */
START_TEST(hard_exit_removes_generated_conf)
{
    char tmp[512], tmp_env[600], core_env[600];
    snprintf(tmp, sizeof tmp, "%s/tmp", fixture_dir);
    ck_assert_int_eq(mkdir(tmp, 0700), 0);
    snprintf(tmp_env, sizeof tmp_env, "TMPDIR=%s", tmp);
    snprintf(core_env, sizeof core_env, "CORE_DB_PATH=%s/core.db", fixture_dir);
    /* tds: nothing listens on port 1; not critical, so sqlgate gets ready */
    const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0",
                               "SQLGATE_DATABASES=core,tds",
                               core_env,
                               "TDS_DB_HOST=127.0.0.1",
                               "TDS_DB_PORT=1",
                               "TDS_DB_USER=u",
                               "TDS_DB_PASSWORD=p",
                               "TDS_DB_NAME=x",
                               "TDS_DB_ENCRYPT=off",
                               "TDS_DB_CRITICAL=false",
                               "SQLGATE_SHUTDOWN_DELAY_MS=60000",
                               tmp_env,
                               NULL};
    proc *p = fixture_start(env, true);
    ck_assert_int_eq(generated_confs(tmp), 1);
    ck_assert_int_eq(proc_signal(p, SIGTERM), 0);
    ck_assert(proc_stderr_wait(p, "shutdown started", 30000));
    ck_assert_int_eq(proc_signal(p, SIGTERM), 0);
    int code = proc_wait_exit(p, 30000);
    ck_assert_msg(code == 1, "exit status %d after a second signal", code);
    ck_assert_int_eq(generated_confs(tmp), 0);
}
END_TEST

static Suite *shutdown_suite(void)
{
    Suite *s = suite_create("shutdown");
    TCase *tc = tcase_create("signals");
    /* Promises about time (delays, drain deadlines): not run under memcheck's
     * slowdown (meson.build, setup memcheck); ASan covers their memory. */
    tcase_set_tags(tc, "timing");
    tcase_add_checked_fixture(tc, fixture_setup, fixture_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, graceful_sigterm);
    tcase_add_test(tc, idle_sigterm_exits_zero);
    tcase_add_test(tc, drain_timeout_cancels);
    tcase_add_test(tc, second_signal_exits_at_once);
    tcase_add_test(tc, sigint_like_sigterm);
    tcase_add_test(tc, second_signal_mixed);
    suite_add_tcase(s, tc);
    /* No promise about time: runs under memcheck too. */
    TCase *files = tcase_create("files");
    tcase_add_checked_fixture(files, fixture_setup, fixture_teardown);
    tcase_set_timeout(files, 120);
    tcase_add_test(files, hard_exit_removes_generated_conf);
    suite_add_tcase(s, files);
    return s;
}

int main(void)
{
    harness_init();
    return check_run(shutdown_suite());
}
