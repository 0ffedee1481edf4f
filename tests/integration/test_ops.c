/* Integration: operations (docs/operations.md) with the real binary.
 *
 * W3C traceparent: a valid one comes back on the response and its trace id
 * is in the access line beside the request id; a malformed one, or two of
 * them, is ignored (the request is served, nothing is echoed or logged).
 *
 * systemd notification: the test binds the Unix datagram socket systemd
 * would (a path in the test directory, or an abstract name given as "@...")
 * and starts sqlgate with NOTIFY_SOCKET naming it. READY=1 comes once every
 * database had its first check (one database's check is held up by a server
 * that accepts TCP and never answers), WATCHDOG=1 comes again and again with
 * a small WATCHDOG_USEC, never when WATCHDOG_PID names another process, and
 * STOPPING=1 comes at SIGTERM.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "check_main.h"
#include "harness.h"

#define TRACE_ID "4bf92f3577b34da6a3ce929d0e0e4736"
#define TP_VALID "00-" TRACE_ID "-00f067aa0ba902b7-01"

static proc *start_plain(void)
{
    char core[600];
    snprintf(core, sizeof core, "CORE_DB_PATH=%s/core.db", fixture_dir);
    const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", "SQLGATE_DATABASES=core", core, NULL};
    return fixture_start(env, true);
}

/* The access line of request id `rid` (new reference), waiting for it: the
 * line is written once the response is out. */
static json_t *access_line(const char *rid)
{
    const char *const kv[] = {"msg", "request", "request_id", rid, NULL};
    return proc_log_wait(fixture_svc, kv, scaled_ms(5000));
}

/* GET path with the given extra headers; returns the response (caller frees). */
static void get_with(const char *path, const char *const *headers, http_resp *r)
{
    http_send(fixture_svc, "GET", path, headers, NULL, 0, r);
}

/* ===== traceparent =========================================================== */

START_TEST(traceparent_echoed_and_logged)
{
    start_plain();
    http_resp r;
    const char *const h[] = {"traceparent: " TP_VALID, "X-Request-Id: trace-test-1", NULL};
    get_with("/health/live", h, &r);
    ASSERT_STATUS(&r, 200);
    const char *echo = http_header_get(&r, "traceparent");
    ck_assert_msg(echo != NULL && strcmp(echo, TP_VALID) == 0, "traceparent echoed as '%s'",
                  echo ? echo : "(none)");
    ck_assert_str_eq(http_header_get(&r, "X-Request-Id"), "trace-test-1");
    http_resp_free(&r);

    json_t *line = access_line("trace-test-1");
    ck_assert_msg(line != NULL, "no access line for trace-test-1");
    ck_assert_str_eq(jstr(line, "trace_id"), TRACE_ID);
    json_decref(line);

    /* on an error answer and a query too */
    const char *const h2[] = {"traceparent: " TP_VALID, "X-Request-Id: trace-test-2",
                              "Content-Type: application/json", NULL};
    static const char body[] = "{\"sql\":\"SELEC 1\"}";
    http_send(fixture_svc, "POST", "/v1/databases/core/query", h2, body, strlen(body), &r);
    ASSERT_ERROR(&r, 400, "SQL_ERROR");
    ck_assert_str_eq(http_header_get(&r, "traceparent"), TP_VALID);
    http_resp_free(&r);
    line = access_line("trace-test-2");
    ck_assert_msg(line != NULL, "no access line for trace-test-2");
    ck_assert_str_eq(jstr(line, "trace_id"), TRACE_ID);
    ck_assert_str_eq(jstr(line, "db"), "core");
    json_decref(line);
    /* the query's own failure line names it too */
    char *text = proc_stderr(fixture_svc);
    line = log_find(
        text, (const char *const[]){"msg", "query failed", "request_id", "trace-test-2", NULL});
    free(text);
    ck_assert_msg(line != NULL, "no 'query failed' line for trace-test-2");
    ck_assert_str_eq(jstr(line, "trace_id"), TRACE_ID);
    json_decref(line);
}
END_TEST

START_TEST(traceparent_malformed_ignored)
{
    start_plain();
    static const char *const bad[] = {
        "00-" TRACE_ID "-00f067aa0ba902b7",                        /* no flags */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", /* uppercase */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", /* zero trace id */
        "00-" TRACE_ID "-0000000000000000-01",                     /* zero parent id */
        "ff-" TRACE_ID "-00f067aa0ba902b7-01",                     /* forbidden version */
        "00-" TRACE_ID "-00f067aa0ba902b7-01-extra",               /* 00 has four fields */
        "00_" TRACE_ID "-00f067aa0ba902b7-01",                     /* separator */
        "0-" TRACE_ID "-00f067aa0ba902b7-01",                      /* short version */
        "00-" TRACE_ID "0-00f067aa0ba902b7-01",                    /* long trace id */
        "01-" TRACE_ID "-00f067aa0ba902b7-01x",                    /* later version, no '-' */
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", /* not hex */
        "",                                                        /* empty */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char tp[200], rid[64], rid_h[96];
        snprintf(tp, sizeof tp, "traceparent: %s", bad[i]);
        snprintf(rid, sizeof rid, "bad-tp-%zu", i);
        snprintf(rid_h, sizeof rid_h, "X-Request-Id: %s", rid);
        const char *const h[] = {tp, rid_h, NULL};
        http_resp r;
        get_with("/health/live", h, &r);
        ASSERT_STATUS(&r, 200);
        ck_assert_msg(http_header_get(&r, "traceparent") == NULL, "bad traceparent %zu echoed", i);
        http_resp_free(&r);
        json_t *line = access_line(rid);
        ck_assert_msg(line != NULL, "no access line for %s", rid);
        ck_assert_msg(jget(line, "trace_id") == NULL, "bad traceparent %zu logged", i);
        json_decref(line);
    }
    /* two valid ones: which is the caller's? Neither. */
    const char *const two[] = {"traceparent: " TP_VALID,
                               "traceparent: 00-" TRACE_ID "-00f067aa0ba902b8-01",
                               "X-Request-Id: two-tp", NULL};
    http_resp r;
    get_with("/health/live", two, &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_ptr_null(http_header_get(&r, "traceparent"));
    http_resp_free(&r);
    json_t *line = access_line("two-tp");
    ck_assert_ptr_nonnull(line);
    ck_assert_ptr_null(jget(line, "trace_id"));
    json_decref(line);
}
END_TEST

/* A later version is read by the fields version 00 defines. */
START_TEST(traceparent_later_version)
{
    start_plain();
    const char *const h[] = {"traceparent: 01-" TRACE_ID "-00f067aa0ba902b7-01-more-fields",
                             "X-Request-Id: later-version", NULL};
    http_resp r;
    get_with("/health/live", h, &r);
    ASSERT_STATUS(&r, 200);
    const char *echo = http_header_get(&r, "traceparent");
    ck_assert_msg(echo != NULL && strcmp(echo, "01-" TRACE_ID "-00f067aa0ba902b7-01") == 0,
                  "echoed '%s'", echo ? echo : "(none)");
    http_resp_free(&r);
    json_t *line = access_line("later-version");
    ck_assert_ptr_nonnull(line);
    ck_assert_str_eq(jstr(line, "trace_id"), TRACE_ID);
    json_decref(line);
}
END_TEST

/* ===== systemd notification ================================================== */

/* systemd's side: a datagram socket bound to `name` ("@x": abstract). */
static int notify_bind(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    ck_assert_uint_lt(len, sizeof addr.sun_path);
    memcpy(addr.sun_path, name, len);
    if (name[0] == '@')
        addr.sun_path[0] = '\0';
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr,
                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)),
                     0);
    return fd;
}

/* The next message within timeout_ms into buf; false on timeout. */
static bool notify_recv(int fd, char *buf, size_t cap, int timeout_ms)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t n = recv(fd, buf, cap - 1, 0);
    if (n < 0)
        return false;
    buf[n] = '\0';
    return true;
}

/* Waits for a message containing `want`, up to timeout_ms; counts the
 * WATCHDOG=1 messages seen on the way in *watchdogs (may be NULL). */
static bool notify_wait(int fd, const char *want, int timeout_ms, int *watchdogs)
{
    int64_t deadline = now_ms() + timeout_ms;
    char msg[512];
    while (now_ms() < deadline) {
        int left = (int)(deadline - now_ms());
        if (!notify_recv(fd, msg, sizeof msg, left > 0 ? left : 1))
            return false;
        if (watchdogs != NULL && strstr(msg, "WATCHDOG=1") != NULL)
            (*watchdogs)++;
        if (strstr(msg, want) != NULL)
            return true;
    }
    return false;
}

/* A TCP listener that never accepts: a SQL Server login to it hangs until
 * its timeout (the kernel completes the handshake, nobody answers). */
static int silent_server(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Starts sqlgate with NOTIFY_SOCKET bound to a socket of its own (returned,
 * with the silent listener in *silent) and two databases: core (SQLite) and
 * slow, whose first check lasts its timeout of timeout_ms against a
 * listener that never answers (db-lib rounds to whole seconds). */
static int start_with_slow_db(const char *timeout_ms, int *silent)
{
    char sock[512], notify_env[600], core[600], slow_port[64];
    snprintf(sock, sizeof sock, "%s/notify.sock", fixture_dir);
    int fd = notify_bind(sock);
    int port;
    *silent = silent_server(&port);
    snprintf(notify_env, sizeof notify_env, "NOTIFY_SOCKET=%s", sock);
    snprintf(core, sizeof core, "CORE_DB_PATH=%s/core.db", fixture_dir);
    snprintf(slow_port, sizeof slow_port, "SLOW_DB_PORT=%d", port);
    char connect_timeout[64], health_timeout[64];
    snprintf(connect_timeout, sizeof connect_timeout, "SLOW_DB_CONNECT_TIMEOUT_MS=%s", timeout_ms);
    snprintf(health_timeout, sizeof health_timeout, "SLOW_DB_HEALTH_TIMEOUT_MS=%s", timeout_ms);
    const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0",
                               "SQLGATE_DATABASES=core,slow",
                               "SQLGATE_DEFAULT_DATABASE=core",
                               core,
                               "FREETDSCONF=/dev/null",
                               "SLOW_DB_HOST=127.0.0.1",
                               slow_port,
                               "SLOW_DB_USER=sa",
                               "SLOW_DB_PASSWORD=not-used-1",
                               "SLOW_DB_CRITICAL=false",
                               connect_timeout,
                               health_timeout,
                               notify_env,
                               NULL};
    fixture_svc = proc_spawn(env, fixture_dir);
    ck_assert_ptr_nonnull(fixture_svc);
    ck_assert_msg(proc_wait_listening(fixture_svc, scaled_ms(10000)) > 0, "sqlgate did not listen");
    return fd;
}

START_TEST(ready_after_first_checks)
{
    int silent;
    int fd = start_with_slow_db("1000", &silent);
    ck_assert_msg(notify_wait(fd, "READY=1", scaled_ms(20000), NULL), "READY=1 never came");
    /* at READY=1, no database is still waiting for its first check */
    http_resp r;
    http_get(fixture_svc, "/health", &r);
    ck_assert_msg(r.json != NULL, "GET /health: no JSON");
    ck_assert_str_ne(jstr(r.json, "databases.core.state"), "starting");
    const char *slow_state = jstr(r.json, "databases.slow.state");
    ck_assert_msg(slow_state != NULL && strcmp(slow_state, "starting") != 0,
                  "slow is '%s' at READY=1", slow_state ? slow_state : "-");
    http_resp_free(&r);
    /* slow's check failed (its login timed out): down, not starting */
    ck_assert(proc_stderr_wait(fixture_svc, "\"database is down\"", scaled_ms(5000)));

    ck_assert_int_eq(proc_signal(fixture_svc, SIGTERM), 0);
    ck_assert_msg(notify_wait(fd, "STOPPING=1", scaled_ms(10000), NULL), "STOPPING=1 never came");
    ck_assert_int_eq(proc_wait_exit(fixture_svc, scaled_ms(20000)), 0);
    close(silent);
    close(fd);
}
END_TEST

START_TEST(reload_before_ready_sends_no_ready)
{
    /* A SIGHUP while a database's first check is still running: the reload
     * must not announce READY=1 early; the first READY=1 still comes only
     * once every database had its first check. */
    int silent;
    int fd = start_with_slow_db("3000", &silent);
    ck_assert_int_eq(proc_signal(fixture_svc, SIGHUP), 0);
    ck_assert_msg(proc_stderr_wait(fixture_svc, "configuration reloaded", scaled_ms(5000)),
                  "the SIGHUP reload did not happen");
    /* The case at hand: the reload is over, slow's first check is not. */
    http_resp r;
    http_get(fixture_svc, "/health", &r);
    ck_assert_msg(r.json != NULL, "GET /health: no JSON");
    ck_assert_str_eq(jstr(r.json, "databases.slow.state"), "starting");
    http_resp_free(&r);
    ck_assert_msg(notify_wait(fd, "READY=1", scaled_ms(20000), NULL), "READY=1 never came");
    http_get(fixture_svc, "/health", &r);
    ck_assert_msg(r.json != NULL, "GET /health: no JSON");
    const char *slow_state = jstr(r.json, "databases.slow.state");
    ck_assert_msg(slow_state != NULL && strcmp(slow_state, "starting") != 0,
                  "READY=1 came while slow was '%s' (the reload's?)",
                  slow_state ? slow_state : "-");
    http_resp_free(&r);
    ck_assert_int_eq(proc_signal(fixture_svc, SIGTERM), 0);
    ck_assert_int_eq(proc_wait_exit(fixture_svc, scaled_ms(20000)), 0);
    close(silent);
    close(fd);
}
END_TEST

START_TEST(watchdog_repeats_then_stopping)
{
    char sock[512], notify_env[600], core[600];
    snprintf(sock, sizeof sock, "%s/notify.sock", fixture_dir);
    int fd = notify_bind(sock);
    snprintf(notify_env, sizeof notify_env, "NOTIFY_SOCKET=%s", sock);
    snprintf(core, sizeof core, "CORE_DB_PATH=%s/core.db", fixture_dir);
    /* every 100 ms */
    const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0",
                               "SQLGATE_DATABASES=core",
                               core,
                               "SQLGATE_SHUTDOWN_DELAY_MS=300",
                               "WATCHDOG_USEC=200000",
                               notify_env,
                               NULL};
    fixture_svc = proc_start(env, fixture_dir, false);
    ck_assert_ptr_nonnull(fixture_svc);
    int watchdogs = 0;
    ck_assert_msg(notify_wait(fd, "READY=1", scaled_ms(10000), &watchdogs), "READY=1 never came");
    int64_t until = now_ms() + scaled_ms(5000);
    while (watchdogs < 5 && now_ms() < until)
        notify_wait(fd, "WATCHDOG=1", (int)(until - now_ms()), &watchdogs);
    ck_assert_msg(watchdogs >= 5, "%d WATCHDOG=1 in 5 s at a 100 ms interval", watchdogs);

    ck_assert_int_eq(proc_signal(fixture_svc, SIGTERM), 0);
    ck_assert_msg(notify_wait(fd, "STOPPING=1", scaled_ms(10000), NULL), "STOPPING=1 never came");
    ck_assert_int_eq(proc_wait_exit(fixture_svc, scaled_ms(20000)), 0);
    close(fd);
}
END_TEST

/* WATCHDOG_PID names another process: the watchdog is not ours. Also an
 * abstract socket name. */
START_TEST(watchdog_for_another_pid_abstract_socket)
{
    char name[128], notify_env[200], core[600];
    snprintf(name, sizeof name, "@sqlgate-test-notify-%d-%lld", (int)getpid(), (long long)now_ms());
    int fd = notify_bind(name);
    snprintf(notify_env, sizeof notify_env, "NOTIFY_SOCKET=%s", name);
    snprintf(core, sizeof core, "CORE_DB_PATH=%s/core.db", fixture_dir);
    const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0",
                               "SQLGATE_DATABASES=core",
                               core,
                               "WATCHDOG_USEC=100000",
                               "WATCHDOG_PID=1",
                               notify_env,
                               NULL};
    fixture_svc = proc_start(env, fixture_dir, false);
    ck_assert_ptr_nonnull(fixture_svc);
    int watchdogs = 0;
    ck_assert_msg(notify_wait(fd, "READY=1", scaled_ms(10000), &watchdogs),
                  "READY=1 never came on the abstract socket");
    /* 20 intervals' worth of silence */
    notify_wait(fd, "WATCHDOG=1", 1000, &watchdogs);
    ck_assert_int_eq(watchdogs, 0);
    ck_assert_int_eq(proc_signal(fixture_svc, SIGTERM), 0);
    ck_assert_msg(notify_wait(fd, "STOPPING=1", scaled_ms(10000), &watchdogs),
                  "STOPPING=1 never came");
    ck_assert_int_eq(watchdogs, 0);
    ck_assert_int_eq(proc_wait_exit(fixture_svc, scaled_ms(20000)), 0);
    close(fd);
}
END_TEST

static Suite *ops_suite(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("traceparent");
    tcase_add_checked_fixture(tc, fixture_setup, fixture_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, traceparent_echoed_and_logged);
    tcase_add_test(tc, traceparent_malformed_ignored);
    tcase_add_test(tc, traceparent_later_version);
    suite_add_tcase(s, tc);

    tc = tcase_create("notify");
    tcase_add_checked_fixture(tc, fixture_setup, fixture_teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, ready_after_first_checks);
    tcase_add_test(tc, reload_before_ready_sends_no_ready);
    tcase_add_test(tc, watchdog_repeats_then_stopping);
    tcase_add_test(tc, watchdog_for_another_pid_abstract_socket);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    harness_init();
    return check_run(ops_suite());
}
