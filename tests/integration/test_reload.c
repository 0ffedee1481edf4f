/* Integration: reload without restart (docs/api.md, "Reload"), on the real
 * binary over real sockets.
 *
 * The service starts from an env file (SQLGATE_ENV_FILE) in the test's own
 * directory; each test edits that file and sends SIGHUP or POST
 * /v1/admin/reload. Databases are SQLite files there too. The unchanged
 * database has POOL_MAX=1: its one connection must never be reopened (its
 * pool's opened_total must not move) and its queries never fail.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "check_main.h"
#include "harness.h"

#define TOKEN_A "tok-alpha-5d1e-0001" /* stays across the reload */
#define TOKEN_B "tok-bravo-77c2-0002" /* removed by the reload */
#define TOKEN_C "tok-charlie-0b9f-03" /* added by the reload */

/* Writes the env file from printf-style text with "%1$s" for the directory. */
static void write_env(const char *text)
{
    char buf[4096];
    /* Every %s in text is the test directory. */
    size_t o = 0;
    for (const char *p = text; *p != '\0' && o + 1 < sizeof buf; p++) {
        if (p[0] == '%' && p[1] == 's') {
            o += (size_t)snprintf(buf + o, sizeof buf - o, "%s", fixture_dir);
            p++;
        } else {
            buf[o++] = *p;
        }
    }
    buf[o] = '\0';
    ck_assert_int_eq(write_file(fixture_dir, "sqlgate.env", buf), 0);
}

static proc *start_service(void)
{
    char env_file[512];
    snprintf(env_file, sizeof env_file, "SQLGATE_ENV_FILE=%s/sqlgate.env", fixture_dir);
    const char *env[] = {env_file, NULL};
    return fixture_start(env, true);
}

/* SIGTERM, and exit status 0; on anything else the child's last words. */
static void stop_cleanly(void)
{
    ck_assert_int_eq(proc_signal(fixture_svc, SIGTERM), 0);
    int status = proc_wait_exit(fixture_svc, scaled_ms(20000));
    if (status != 0) {
        char *log = proc_stderr(fixture_svc);
        size_t len = strlen(log);
        fprintf(stderr, "sqlgate exited with %d; the end of its stderr:\n%s\n", status,
                log + (len > 6000 ? len - 6000 : 0));
        free(log);
    }
    ck_assert_int_eq(status, 0);
}

/* POST path with a bearer token and a JSON body (NULL: none). */
static int post_auth(const char *path, const char *token, const char *json, http_resp *r)
{
    char auth[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    const char *hdr[] = {"Content-Type: application/json", auth, NULL};
    return http_send(fixture_svc, "POST", path, hdr, json, json ? strlen(json) : 0, r);
}

static int get_auth(const char *path, const char *token, http_resp *r)
{
    char auth[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    const char *hdr[] = {auth, NULL};
    return http_send(fixture_svc, "GET", path, hdr, NULL, 0, r);
}

static json_int_t pool_figure(const char *db, const char *figure)
{
    char path[128], key[64];
    snprintf(path, sizeof path, "/v1/databases/%s", db);
    snprintf(key, sizeof key, "pool.%s", figure);
    http_resp r;
    get_auth(path, TOKEN_A, &r);
    ASSERT_STATUS(&r, 200);
    json_int_t v = jint(r.json, key, -1);
    http_resp_free(&r);
    return v;
}

/* Names in a JSON array, joined with ',' (for compact assertions). */
static const char *names(const json_t *arr, char *buf, size_t cap)
{
    buf[0] = '\0';
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        size_t n = strlen(buf);
        snprintf(buf + n, cap - n, "%s%s", n ? "," : "", json_string_value(v));
    }
    return buf;
}

/* --- Load on the unchanged database ------------------------------------------ */

typedef struct hammer {
    atomic_bool stop;
    unsigned long sent, failed;
    char first_failure[600];
} hammer;

static void *hammer_main(void *arg)
{
    hammer *h = arg;
    char url[128];
    proc_url(fixture_svc, "/v1/databases/core/query", url, sizeof url);
    static const char body[] = "{\"sql\":\"SELECT count(*) AS n FROM marker\"}";
    const char *hdr[] = {"Content-Type: application/json", "Authorization: Bearer " TOKEN_A, NULL};
    CURL *handle = curl_easy_init();
    while (!atomic_load(&h->stop)) {
        http_req rq = {.method = "POST",
                       .url = url,
                       .headers = hdr,
                       .body = body,
                       .body_len = sizeof body - 1,
                       .handle = handle,
                       .timeout_ms = 30000};
        http_resp r;
        http_do(&rq, &r);
        h->sent++;
        if (r.status != 200 || jint(r.json, "results.0.rows.0.n", -1) != 1) {
            if (h->failed++ == 0)
                resp_desc(&r, h->first_failure, sizeof h->first_failure);
        }
        http_resp_free(&r);
    }
    curl_easy_cleanup(handle);
    return NULL;
}

/* --- A slow statement on the database the reload removes ----------------------- */

static void count_body(long n, char *buf, size_t cap)
{
    snprintf(buf, cap,
             "{\"sql\":\"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
             "WHERE x < %ld) SELECT count(*) AS n FROM c\"}",
             n);
}

/* Rows for a counting query of about target_ms on database db. */
static long calibrate(const char *db, int target_ms)
{
    char path[128], body[256];
    snprintf(path, sizeof path, "/v1/databases/%s/query", db);
    long n = 100000;
    int64_t took = 0;
    for (;;) {
        count_body(n, body, sizeof body);
        http_resp r;
        int64_t t0 = now_ms();
        post_auth(path, TOKEN_A, body, &r);
        took = now_ms() - t0;
        ASSERT_STATUS(&r, 200);
        http_resp_free(&r);
        if (took >= 200 || n >= 100000000L)
            break;
        n *= 4;
    }
    double rows = (double)n * target_ms / (double)(took > 0 ? took : 1);
    return rows > 2e9 ? 2000000000L : (long)rows;
}

typedef struct slow_query {
    const char *db;
    long rows;
    http_resp r;
} slow_query;

static void *slow_main(void *arg)
{
    slow_query *q = arg;
    char path[128], body[256];
    snprintf(path, sizeof path, "/v1/databases/%s/query", q->db);
    count_body(q->rows, body, sizeof body);
    post_auth(path, TOKEN_A, body, &q->r);
    return NULL;
}

static const char env_before[] = "SQLGATE_LISTEN=127.0.0.1:0\n"
                                 "SQLGATE_DATABASES=core,gone,moved\n"
                                 "SQLGATE_DEFAULT_DATABASE=gone\n"
                                 "SQLGATE_API_TOKENS_FILE=%s/tokens.txt\n"
                                 "SQLGATE_DRAIN_TIMEOUT_MS=120000\n"
                                 "CORE_DB_PATH=%s/core.db\n"
                                 "CORE_DB_POOL_MAX=1\n"
                                 "GONE_DB_PATH=%s/gone.db\n"
                                 "GONE_DB_QUERY_TIMEOUT_MS=300000\n"
                                 "MOVED_DB_PATH=%s/moved.db\n"
                                 "MOVED_DB_POOL_MAX=2\n";

static const char env_after[] = "SQLGATE_LISTEN=127.0.0.1:0\n"
                                "SQLGATE_DATABASES=core,moved,fresh\n"
                                "SQLGATE_DEFAULT_DATABASE=fresh\n"
                                "SQLGATE_API_TOKENS_FILE=%s/tokens.txt\n"
                                "SQLGATE_DRAIN_TIMEOUT_MS=120000\n"
                                "CORE_DB_PATH=%s/core.db\n"
                                "CORE_DB_POOL_MAX=1\n"
                                "MOVED_DB_PATH=%s/moved.db\n"
                                "MOVED_DB_POOL_MAX=3\n"
                                "FRESH_DB_PATH=%s/fresh.db\n";

static void reload_under_load(bool by_signal)
{
    write_env(env_before);
    ck_assert_int_eq(write_file(fixture_dir, "tokens.txt", TOKEN_A "," TOKEN_B "\n"), 0);
    start_service();

    /* core's only connection must stay open across the reload: its pool's
     * opened_total is checked below. (A TEMP table can no longer mark the
     * connection: a connection holding one is never reused.) */
    http_resp r;
    post_auth("/v1/databases/core/query", TOKEN_A,
              "{\"sql\":\"CREATE TABLE marker(x); INSERT INTO marker VALUES (1)\"}", &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
    json_int_t core_opened = pool_figure("core", "opened_total");
    ck_assert_int_eq(core_opened, 1);
    ck_assert_int_eq(pool_figure("moved", "max"), 2);

    long rows = calibrate("gone", 3000);
    hammer h = {0};
    atomic_init(&h.stop, false);
    pthread_t ht;
    pthread_create(&ht, NULL, hammer_main, &h);
    slow_query slow = {.db = "gone", .rows = rows};
    pthread_t st;
    pthread_create(&st, NULL, slow_main, &slow);
    sleep_ms(scaled_ms(300));

    write_env(env_after);
    ck_assert_int_eq(write_file(fixture_dir, "tokens.txt", TOKEN_A "," TOKEN_C "\n"), 0);
    json_t *report = NULL;
    if (by_signal) {
        ck_assert_int_eq(proc_signal(fixture_svc, SIGHUP), 0);
        ck_assert(proc_stderr_wait(fixture_svc, "configuration reloaded", scaled_ms(10000)));
    } else {
        post_auth("/v1/admin/reload", TOKEN_A, NULL, &r);
        ASSERT_STATUS(&r, 200);
        report = json_incref(r.json);
        http_resp_free(&r);
    }
    char *log = proc_stderr(fixture_svc);
    static const char *const kv[] = {"msg", "configuration reloaded", NULL};
    json_t *line = log_find(log, kv);
    free(log);
    ck_assert_ptr_nonnull(line);
    if (report == NULL)
        report = json_incref(line);
    char buf[256];
    ck_assert_str_eq(names(jget(report, "added"), buf, sizeof buf), "fresh");
    ck_assert_str_eq(names(jget(report, "removed"), buf, sizeof buf), "gone");
    ck_assert_str_eq(names(jget(report, "changed"), buf, sizeof buf), "moved");
    ck_assert_str_eq(names(jget(report, "unchanged"), buf, sizeof buf), "core");
    /* The log line carries the same four lists. */
    for (size_t i = 0; i < 4; i++) {
        static const char *const keys[] = {"added", "removed", "changed", "unchanged"};
        ck_assert(json_equal(jget(report, keys[i]), jget(line, keys[i])));
    }
    json_decref(line);
    json_decref(report);

    /* The removed database takes no new request... */
    post_auth("/v1/databases/gone/query", TOKEN_A, "{\"sql\":\"SELECT 1\"}", &r);
    ASSERT_ERROR(&r, 404, "UNKNOWN_DATABASE");
    http_resp_free(&r);
    /* ...the changed one has a new pool, the new one serves, the default moved. */
    ck_assert_int_eq(pool_figure("moved", "max"), 3);
    post_auth("/v1/query", TOKEN_A, "{\"sql\":\"SELECT 7 AS n\"}", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "database"), "fresh");
    http_resp_free(&r);
    /* Tokens rotate at once. */
    get_auth("/v1/databases", TOKEN_B, &r);
    ASSERT_ERROR(&r, 401, "UNAUTHORIZED");
    http_resp_free(&r);
    get_auth("/v1/databases", TOKEN_C, &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "default"), "fresh");
    http_resp_free(&r);

    /* Metrics follow the registry: the new database is there, the removed
     * one is gone, the unchanged one kept counting. */
    http_get(fixture_svc, "/metrics", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "sqlgate_db_up{db=\"fresh\"}"));
    ck_assert_ptr_null(strstr(r.body, "{db=\"gone\""));
    ck_assert_ptr_nonnull(strstr(r.body, "sqlgate_queries_total{db=\"core\",outcome=\"ok\"}"));
    http_resp_free(&r);

    /* ...while its in-flight statement finishes normally. */
    pthread_join(st, NULL);
    ck_assert_msg(slow.r.status == 200, "the in-flight query on the removed database: %s",
                  resp_desc(&slow.r, buf, sizeof buf));
    ck_assert_int_eq(jint(slow.r.json, "results.0.rows.0.n", -1), rows);
    http_resp_free(&slow.r);
    ck_assert(proc_stderr_wait(fixture_svc,
                               "\"msg\":\"retired database drained and closed\",\"db\":\"gone\"",
                               scaled_ms(10000)));

    sleep_ms(scaled_ms(200));
    atomic_store(&h.stop, true);
    pthread_join(ht, NULL);
    ck_assert_uint_gt(h.sent, 10);
    ck_assert_msg(h.failed == 0, "%lu of %lu queries on the unchanged database failed; first: %s",
                  h.failed, h.sent, h.first_failure);
    /* Same connection: the TEMP table answered every time, nothing reopened. */
    ck_assert_int_eq(pool_figure("core", "opened_total"), core_opened);

    /* No secret in any log line. */
    log = proc_stderr(fixture_svc);
    ck_assert_ptr_null(strstr(log, TOKEN_A));
    ck_assert_ptr_null(strstr(log, TOKEN_B));
    ck_assert_ptr_null(strstr(log, TOKEN_C));
    free(log);

    stop_cleanly();
}

START_TEST(sighup_reload_under_load)
{
    reload_under_load(true);
}
END_TEST

START_TEST(http_reload_under_load)
{
    reload_under_load(false);
}
END_TEST

/* --- Refused reloads ---------------------------------------------------------- */

static bool errors_mention(const json_t *errors, const char *needle)
{
    size_t i;
    json_t *v;
    json_array_foreach(errors, i, v) if (strstr(json_string_value(v), needle) != NULL) return true;
    return false;
}

START_TEST(bad_reload_changes_nothing)
{
    static const char good[] = "SQLGATE_LISTEN=127.0.0.1:0\n"
                               "SQLGATE_DATABASES=core\n"
                               "SQLGATE_API_TOKENS=" TOKEN_A "\n"
                               "CORE_DB_PATH=%s/core.db\n";
    write_env(good);
    start_service();
    json_int_t opened = pool_figure("core", "opened_total");

    /* A bad value, a bad secret file, and a new database: all reported. */
    write_env("SQLGATE_LISTEN=127.0.0.1:0\n"
              "SQLGATE_DATABASES=core,extra\n"
              "SQLGATE_API_TOKENS=" TOKEN_B "\n"
              "CORE_DB_PATH=%s/core.db\n"
              "CORE_DB_POOL_MAX=zero\n"
              "EXTRA_DB_HOST=db.example\n"
              "EXTRA_DB_PASSWORD_FILE=%s/no-such-file\n");
    http_resp r;
    post_auth("/v1/admin/reload", TOKEN_A, NULL, &r);
    ASSERT_ERROR(&r, 400, "CONFIG_INVALID");
    json_t *errors = jget(r.json, "error.errors");
    ck_assert(json_is_array(errors));
    ck_assert_msg(errors_mention(errors, "CORE_DB_POOL_MAX"), "%s", r.body);
    ck_assert_msg(errors_mention(errors, "EXTRA_DB_PASSWORD_FILE"), "%s", r.body);
    ck_assert_ptr_null(strstr(r.body, TOKEN_B));
    http_resp_free(&r);

    /* Nothing changed: the old token still works, the new one does not. */
    get_auth("/v1/databases", TOKEN_B, &r);
    ASSERT_ERROR(&r, 401, "UNAUTHORIZED");
    http_resp_free(&r);
    get_auth("/v1/databases", TOKEN_A, &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(json_array_size(jget(r.json, "databases")), 1);
    http_resp_free(&r);

    /* A new listen address needs a restart: refused as a whole. */
    write_env("SQLGATE_LISTEN=127.0.0.1:1\n"
              "SQLGATE_DATABASES=core,extra\n"
              "SQLGATE_API_TOKENS=" TOKEN_A "\n"
              "CORE_DB_PATH=%s/core.db\n"
              "EXTRA_DB_PATH=%s/extra.db\n");
    post_auth("/v1/admin/reload", TOKEN_A, NULL, &r);
    ASSERT_ERROR(&r, 400, "CONFIG_INVALID");
    errors = jget(r.json, "error.errors");
    ck_assert_msg(errors_mention(errors, "SQLGATE_LISTEN") && errors_mention(errors, "restart"),
                  "%s", r.body);
    http_resp_free(&r);
    post_auth("/v1/databases/extra/query", TOKEN_A, "{\"sql\":\"SELECT 1\"}", &r);
    ASSERT_ERROR(&r, 404, "UNKNOWN_DATABASE");
    http_resp_free(&r);

    /* SIGHUP with a bad file: logged, the process serves on unchanged. */
    write_env("SQLGATE_LISTEN=127.0.0.1:0\n"
              "SQLGATE_DATABASES=core\n"
              "SQLGATE_API_TOKENS=" TOKEN_A "\n"
              "CORE_DB_PATH=%s/core.db\n"
              "SQLGATE_MAX_ROWS=-5\n");
    ck_assert_int_eq(proc_signal(fixture_svc, SIGHUP), 0);
    ck_assert(proc_stderr_wait(fixture_svc, "SQLGATE_MAX_ROWS", scaled_ms(10000)));
    char *log = proc_stderr(fixture_svc);
    static const char *const kv[] = {"msg", "reload refused; nothing changed", "trigger", "SIGHUP",
                                     NULL};
    json_t *line = log_find(log, kv);
    ck_assert_msg(line != NULL, "no refusal line in:\n%s", log);
    ck_assert_str_eq(jstr(line, "code"), "CONFIG_INVALID");
    ck_assert(json_array_size(jget(line, "errors")) > 0);
    json_decref(line);
    ck_assert_ptr_null(strstr(log, TOKEN_A));
    ck_assert_ptr_null(strstr(log, TOKEN_B));
    free(log);
    ck_assert(proc_running(fixture_svc));
    post_auth("/v1/databases/core/query", TOKEN_A, "{\"sql\":\"SELECT 1 AS one\"}", &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
    ck_assert_int_eq(pool_figure("core", "opened_total"), opened > 0 ? opened : 1);

    /* The exit status is untouched by refused reloads. */
    stop_cleanly();
}
END_TEST

START_TEST(reload_route_needs_a_token)
{
    write_env("SQLGATE_LISTEN=127.0.0.1:0\n"
              "SQLGATE_DATABASES=core\n"
              "SQLGATE_API_TOKENS=" TOKEN_A "\n"
              "CORE_DB_PATH=%s/core.db\n");
    start_service();
    http_resp r;
    http_send(fixture_svc, "POST", "/v1/admin/reload", NULL, NULL, 0, &r);
    ASSERT_ERROR(&r, 401, "UNAUTHORIZED");
    http_resp_free(&r);
    get_auth("/v1/admin/reload", TOKEN_A, &r);
    ASSERT_ERROR(&r, 405, "METHOD_NOT_ALLOWED");
    http_resp_free(&r);
    /* Nothing changed in the file: everything is unchanged. */
    post_auth("/v1/admin/reload", TOKEN_A, NULL, &r);
    ASSERT_STATUS(&r, 200);
    char buf[128];
    ck_assert_str_eq(names(jget(r.json, "unchanged"), buf, sizeof buf), "core");
    ck_assert_int_eq(json_array_size(jget(r.json, "added")), 0);
    http_resp_free(&r);
}
END_TEST

START_TEST(freetds_tls_settings_need_a_restart)
{
    write_env("SQLGATE_LISTEN=127.0.0.1:0\n"
              "SQLGATE_DATABASES=core\n"
              "SQLGATE_API_TOKENS=" TOKEN_A "\n"
              "CORE_DB_PATH=%s/core.db\n");
    start_service();
    /* Its encryption setting lives in the freetds.conf written at start. */
    write_env("SQLGATE_LISTEN=127.0.0.1:0\n"
              "SQLGATE_DATABASES=core,mssql\n"
              "SQLGATE_API_TOKENS=" TOKEN_A "\n"
              "CORE_DB_PATH=%s/core.db\n"
              "MSSQL_DB_HOST=127.0.0.1\n"
              "MSSQL_DB_PORT=9\n"
              "MSSQL_DB_ENCRYPT=require\n");
    http_resp r;
    post_auth("/v1/admin/reload", TOKEN_A, NULL, &r);
    ASSERT_ERROR(&r, 400, "CONFIG_INVALID");
    json_t *errors = jget(r.json, "error.errors");
    ck_assert_msg(errors_mention(errors, "MSSQL_DB_ENCRYPT") && errors_mention(errors, "restart"),
                  "%s", r.body);
    http_resp_free(&r);
    /* With the default encryption it needs nothing from that file: added
     * (and reported down, nothing listens on port 9). */
    write_env("SQLGATE_LISTEN=127.0.0.1:0\n"
              "SQLGATE_DATABASES=core,mssql\n"
              "SQLGATE_API_TOKENS=" TOKEN_A "\n"
              "CORE_DB_PATH=%s/core.db\n"
              "MSSQL_DB_HOST=127.0.0.1\n"
              "MSSQL_DB_PORT=9\n"
              "MSSQL_DB_CRITICAL=false\n"
              "MSSQL_DB_CONNECT_TIMEOUT_MS=1000\n");
    post_auth("/v1/admin/reload", TOKEN_A, NULL, &r);
    ASSERT_STATUS(&r, 200);
    char buf[128];
    ck_assert_str_eq(names(jget(r.json, "added"), buf, sizeof buf), "mssql");
    http_resp_free(&r);
    stop_cleanly();
}
END_TEST

/* systemd's side of NOTIFY_SOCKET: a datagram socket in the test directory. */
START_TEST(systemd_hears_reloading_then_ready)
{
    char sock_path[256], notify_env[300], env_file[512];
    snprintf(sock_path, sizeof sock_path, "%s/notify.sock", fixture_dir);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    ck_assert_uint_lt(strlen(sock_path), sizeof addr.sun_path);
    memcpy(addr.sun_path, sock_path, strlen(sock_path));
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    struct timeval tv = {.tv_sec = scaled_ms(10000) / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

    write_env("SQLGATE_LISTEN=127.0.0.1:0\n"
              "SQLGATE_DATABASES=core\n"
              "CORE_DB_PATH=%s/core.db\n");
    snprintf(notify_env, sizeof notify_env, "NOTIFY_SOCKET=%s", sock_path);
    snprintf(env_file, sizeof env_file, "SQLGATE_ENV_FILE=%s/sqlgate.env", fixture_dir);
    const char *env[] = {env_file, notify_env, NULL};
    fixture_svc = proc_start(env, fixture_dir, true);
    ck_assert_ptr_nonnull(fixture_svc);
    /* The start's READY=1 first: a reload before it tells systemd nothing
     * (reload_before_ready_sends_no_ready in test_ops.c). */
    bool started = false;
    for (int i = 0; i < 50 && !started; i++) {
        char msg[512];
        ssize_t n = recv(fd, msg, sizeof msg - 1, 0);
        if (n < 0)
            break;
        msg[n] = '\0';
        started = strstr(msg, "READY=1") != NULL;
    }
    ck_assert_msg(started, "the start's READY=1 never came");
    ck_assert_int_eq(proc_signal(fixture_svc, SIGHUP), 0);

    /* Other messages (WATCHDOG=1) may come too; in order, RELOADING=1 with
     * MONOTONIC_USEC, then READY=1. */
    bool reloading = false, ready_after = false;
    for (int i = 0; i < 50 && !ready_after; i++) {
        char msg[512];
        ssize_t n = recv(fd, msg, sizeof msg - 1, 0);
        if (n < 0)
            break;
        msg[n] = '\0';
        if (strstr(msg, "RELOADING=1") != NULL) {
            ck_assert_ptr_nonnull(strstr(msg, "MONOTONIC_USEC="));
            reloading = true;
        } else if (reloading && strstr(msg, "READY=1") != NULL) {
            ready_after = true;
        }
    }
    close(fd);
    ck_assert_msg(reloading && ready_after, "RELOADING=1 then READY=1 not received");
    ck_assert(proc_stderr_wait(fixture_svc, "configuration reloaded", scaled_ms(10000)));
    stop_cleanly();
}
END_TEST

static Suite *reload_suite(void)
{
    Suite *s = suite_create("reload");
    TCase *tc = tcase_create("reload");
    tcase_add_checked_fixture(tc, fixture_setup, fixture_teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, sighup_reload_under_load);
    tcase_add_test(tc, http_reload_under_load);
    tcase_add_test(tc, bad_reload_changes_nothing);
    tcase_add_test(tc, reload_route_needs_a_token);
    tcase_add_test(tc, freetds_tls_settings_need_a_restart);
    tcase_add_test(tc, systemd_hears_reloading_then_ready);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    harness_init();
    return check_run(reload_suite());
}
