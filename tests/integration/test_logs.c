/* Integration: the logs of a running sqlgate (docs/operations.md,
 * SQLGATE_LOG_LEVEL / SQLGATE_LOG_FORMAT).
 *
 * JSON mode: every stderr line is a JSON object with time (ISO 8601 UTC),
 * level and msg; every request gets exactly one access line at info with its
 * request id (the X-Request-Id header), method, route template, status,
 * duration and, on database routes, the database's real name. The warn level
 * keeps info lines out; the text format gives one human line per event.
 * Secrets (bearer tokens, passwords from URLs and variables) never appear.
 *
 * The services here are configured with a SQL Server database that cannot be
 * reached (port 1 of the loopback) so that its password is in the
 * configuration and its failures are logged.
 */
#include <arpa/inet.h>
#include <check.h>
#include <ctype.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "harness.h"

#define URL_SECRET   "url-SECRET-pw1"
#define ENV_SECRET   "env-SECRET-pw2"
#define TOKEN_A      "tok-SECRET-aaa-0001"
#define TOKEN_B      "tok-SECRET-bbb-0002"
#define WRONG_SECRET "wrong-SECRET-ccc"

#define COMMON_ENV                                                                                 \
    "SQLGATE_DATABASES=core,mssql", "SQLGATE_DEFAULT_DATABASE=core", "CORE_DB_PATH=./core.db",     \
        "MSSQL_DB_URL=mssql://sa:" URL_SECRET "@127.0.0.1:1/db", "MSSQL_DB_PASSWORD=" ENV_SECRET,  \
        "MSSQL_DB_CRITICAL=false", "MSSQL_DB_CONNECT_TIMEOUT_MS=1000",                             \
        "MSSQL_DB_RETRY_MAX_MS=500", "SQLGATE_API_TOKENS=" TOKEN_A "," TOKEN_B

static const char *const SECRETS[] = {URL_SECRET, ENV_SECRET, TOKEN_A, TOKEN_B, WRONG_SECRET};

static int g_port;

static void setup_json(void)
{
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", "SQLGATE_LOG_LEVEL=debug",
                                      COMMON_ENV, NULL};
    fixture_start_unchecked(env, true);
    g_port = proc_port(fixture_svc);
}

static int send_to(const char *method, const char *path, const char *const *headers,
                   const char *body, http_resp *out);

/* Without info lines (warn level) or JSON (text format) the harness cannot
 * read the port from the log: listen on a chosen one and poll readiness. */
static void start_fixed_port(const char *extra1, const char *extra2)
{
    fixture_dir = tmp_dir_new();
    g_port = free_port();
    if (fixture_dir == NULL || g_port <= 0) {
        return;
    }
    char listen[64];
    snprintf(listen, sizeof listen, "SQLGATE_LISTEN=127.0.0.1:%d", g_port);
    const char *const env[] = {listen, extra1, extra2, COMMON_ENV, NULL};
    fixture_svc = proc_spawn(env, fixture_dir);
    int64_t deadline = now_ms() + scaled_ms(15000);
    while (fixture_svc != NULL) {
        http_resp r;
        int st = send_to("GET", "/health/ready", NULL, NULL, &r);
        http_resp_free(&r);
        if (st == 200) {
            return;
        }
        if (!proc_running(fixture_svc) || now_ms() >= deadline) {
            char *text = proc_stderr(fixture_svc);
            fprintf(stderr, "sqlgate did not become ready; its stderr:\n%s\n", text ? text : "");
            free(text);
            proc_free(fixture_svc);
            fixture_svc = NULL;
            return;
        }
        sleep_ms(50);
    }
}

static void teardown_svc(void)
{
    fixture_teardown();
    g_port = 0;
}

/* --- helpers ------------------------------------------------------------------ */

static int send_to(const char *method, const char *path, const char *const *headers,
                   const char *body, http_resp *out)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", g_port, path);
    http_req rq = {.method = method,
                   .url = url,
                   .headers = headers,
                   .body = body,
                   .body_len = body != NULL ? strlen(body) : 0};
    return http_do(&rq, out);
}

static bool is_iso8601_utc(const char *s)
{
    static const char pat[] = "dddd-dd-ddTdd:dd:dd";
    if (s == NULL || strlen(s) < sizeof pat) {
        return false;
    }
    for (size_t i = 0; i + 1 < sizeof pat; i++) {
        if (pat[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != pat[i]) {
            return false;
        }
    }
    const char *rest = s + sizeof pat - 1;
    if (*rest == '.') {
        rest++;
        while (isdigit((unsigned char)*rest)) {
            rest++;
        }
    }
    return strcmp(rest, "Z") == 0;
}

/* Calls fn on every complete line of text (the last one may be being written). */
static void each_line(const char *text, void (*fn)(const char *line, size_t n, void *ud), void *ud)
{
    const char *line = text;
    for (;;) {
        const char *nl = strchr(line, '\n');
        if (nl == NULL) {
            return;
        }
        fn(line, (size_t)(nl - line), ud);
        line = nl + 1;
    }
}

static void check_json_line(const char *line, size_t n, void *ud)
{
    size_t *count = ud;
    json_error_t jerr;
    json_t *obj = json_loadb(line, n, 0, &jerr);
    ck_assert_msg(json_is_object(obj), "stderr line is not a JSON object (%s): %.*s", jerr.text,
                  (int)n, line);
    const char *time = json_string_value(json_object_get(obj, "time"));
    const char *level = json_string_value(json_object_get(obj, "level"));
    const char *msg = json_string_value(json_object_get(obj, "msg"));
    ck_assert_msg(is_iso8601_utc(time), "time '%s' is not ISO 8601 UTC: %.*s", time ? time : "-",
                  (int)n, line);
    ck_assert_msg(level != NULL && (strcmp(level, "debug") == 0 || strcmp(level, "info") == 0 ||
                                    strcmp(level, "warn") == 0 || strcmp(level, "error") == 0),
                  "bad level: %.*s", (int)n, line);
    ck_assert_msg(msg != NULL && msg[0] != '\0', "no msg: %.*s", (int)n, line);
    json_decref(obj);
    (*count)++;
}

/* Waits (bounded) for the access line of request id and returns it (new
 * reference), after checking that it is the only one. */
static json_t *access_line(const char *id)
{
    const char *const kv[] = {"msg", "request", "request_id", id, NULL};
    json_t *found = proc_log_wait(fixture_service(), kv, scaled_ms(5000));
    char *text = proc_stderr(fixture_svc);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(found != NULL, "no access line for request %s in:\n%s", id, text);
    /* exactly one: the line after the first match must not match again */
    char needle[128];
    snprintf(needle, sizeof needle, "\"request_id\":\"%s\"", id);
    size_t lines = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p++) {
        const char *bol = p;
        while (bol > text && bol[-1] != '\n') {
            bol--;
        }
        const char *eol = strchr(p, '\n');
        json_t *obj = json_loadb(bol, eol ? (size_t)(eol - bol) : strlen(bol), 0, NULL);
        const char *msg = json_string_value(json_object_get(obj, "msg"));
        lines += msg != NULL && strcmp(msg, "request") == 0;
        json_decref(obj);
    }
    free(text);
    ck_assert_msg(lines == 1, "%zu access lines for request %s", lines, id);
    return found;
}

static void assert_no_secret(const char *text, const char *where)
{
    for (size_t i = 0; i < sizeof SECRETS / sizeof SECRETS[0]; i++) {
        ck_assert_msg(strstr(text, SECRETS[i]) == NULL, "%s contains the secret %s", where,
                      SECRETS[i]);
    }
}

#define AUTH_A        "Authorization: Bearer " TOKEN_A
#define JSON_CT       "Content-Type: application/json"
#define MULTILINE_OP  "inject\\nFAKE-LINE level=error msg=forged"
#define FORGED_PREFIX "FAKE-LINE"

/* The requests the access-line test makes: what the line must say. */
static const struct access_case {
    const char *method, *path, *body, *auth;
    long status;
    const char *route, *db; /* db NULL: no db field */
} CASES[] = {
    {"GET", "/health/live", NULL, NULL, 200, "/health/live", NULL},
    {"GET", "/health/default", NULL, NULL, 200, "/health/{name}", "core"},
    {"GET", "/v1/databases", NULL, AUTH_A, 200, "/v1/databases", NULL},
    {"GET", "/v1/databases/default", NULL, AUTH_A, 200, "/v1/databases/{name}", "core"},
    {"POST", "/v1/databases/core/query", "{\"sql\":\"SELECT 1 AS one\"}", AUTH_A, 200,
     "/v1/databases/{name}/query", "core"},
    {"POST", "/v1/databases/default/query", "{\"sql\":\"SELEC 1\"}", AUTH_A, 400,
     "/v1/databases/{name}/query", "core"},
    {"POST", "/v1/query", "{\"sql\":\"SELECT 2\",\"database\":\"core\"}", AUTH_A, 200, "/v1/query",
     "core"},
    {"POST", "/v1/databases/mssql/query", "{\"sql\":\"SELECT 1\"}", AUTH_A, 503,
     "/v1/databases/{name}/query", "mssql"},
    {"POST", "/v1/databases/core/reconnect", NULL, AUTH_A, 202, "/v1/databases/{name}/reconnect",
     "core"},
    {"GET", "/v1/databases", NULL, "Authorization: Bearer " WRONG_SECRET, 401, "/v1/databases",
     NULL},
    {"GET", "/metrics", NULL, NULL, 200, "/metrics", NULL},
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

static void do_case(const struct access_case *c, const char *id, http_resp *r)
{
    char rid[128];
    const char *headers[4] = {NULL};
    size_t h = 0;
    if (id != NULL) {
        snprintf(rid, sizeof rid, "X-Request-Id: %s", id);
        headers[h++] = rid;
    }
    if (c->auth != NULL) {
        headers[h++] = c->auth;
    }
    if (c->body != NULL) {
        headers[h++] = JSON_CT;
    }
    send_to(c->method, c->path, headers, c->body, r);
    ASSERT_STATUS(r, c->status);
}

/* ===== JSON ==================================================================== */

START_TEST(access_line_per_request)
{
    for (size_t i = 0; i < N_CASES; i++) {
        const struct access_case *c = &CASES[i];
        char id[64];
        snprintf(id, sizeof id, "logs-%zu-%d", i, (int)getpid());
        http_resp r;
        do_case(c, id, &r);
        const char *hdr_id = http_header_get(&r, "X-Request-Id");
        ck_assert_msg(hdr_id != NULL && strcmp(hdr_id, id) == 0, "X-Request-Id not echoed");
        json_t *line = access_line(id);
        const char *what = c->path;
        ck_assert_msg(strcmp(jstr(line, "level"), "info") == 0, "%s: level %s", what,
                      jstr(line, "level"));
        ck_assert_msg(jstr(line, "method") != NULL && strcmp(jstr(line, "method"), c->method) == 0,
                      "%s: method", what);
        ck_assert_msg(jstr(line, "route") != NULL && strcmp(jstr(line, "route"), c->route) == 0,
                      "%s: route '%s', want '%s'", what, jstr(line, "route"), c->route);
        ck_assert_msg(json_is_integer(jget(line, "status")) && jint(line, "status", 0) == c->status,
                      "%s: status", what);
        ck_assert_msg(json_is_number(jget(line, "duration_ms")) &&
                          jnum(line, "duration_ms", -1) >= 0,
                      "%s: duration_ms missing or negative", what);
        if (c->db != NULL) {
            ck_assert_msg(jstr(line, "db") != NULL && strcmp(jstr(line, "db"), c->db) == 0,
                          "%s: db '%s', want '%s'", what, jstr(line, "db") ? jstr(line, "db") : "-",
                          c->db);
        } else {
            ck_assert_msg(jget(line, "db") == NULL, "%s: unexpected db", what);
        }
        json_decref(line);
        http_resp_free(&r);
    }

    /* a generated request id is the one logged */
    http_resp r;
    do_case(&CASES[0], NULL, &r);
    const char *gen = http_header_get(&r, "X-Request-Id");
    ck_assert_ptr_nonnull(gen);
    json_t *line = access_line(gen);
    ck_assert_str_eq(jstr(line, "route"), "/health/live");
    json_decref(line);
    http_resp_free(&r);

    /* no route: still one line, with the status */
    static const char *const hdr[] = {"X-Request-Id: logs-noroute", NULL};
    send_to("GET", "/no/such/route", hdr, NULL, &r);
    ASSERT_STATUS(&r, 404);
    http_resp_free(&r);
    line = access_line("logs-noroute");
    ck_assert_int_eq(jint(line, "status", 0), 404);
    ck_assert_str_eq(jstr(line, "method"), "GET");
    ck_assert_ptr_nonnull(jstr(line, "route"));
    json_decref(line);
}
END_TEST

START_TEST(every_line_is_json)
{
    /* the operation's newline must not split the line */
    static const char *const hdr[] = {AUTH_A, JSON_CT, "X-Request-Id: logs-multiline", NULL};
    http_resp r;
    send_to("POST", "/v1/databases/core/query", hdr,
            "{\"sql\":\"SELECT 1\",\"operation\":\"" MULTILINE_OP "\"}", &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
    json_t *line = access_line("logs-multiline");
    ck_assert_str_eq(jstr(line, "operation"), "inject\nFAKE-LINE level=error msg=forged");
    json_decref(line);
    for (size_t i = 0; i < N_CASES; i++) {
        do_case(&CASES[i], NULL, &r);
        http_resp_free(&r);
    }
    static const char *const last[] = {"X-Request-Id: logs-last", NULL};
    send_to("GET", "/health/live", last, NULL, &r);
    http_resp_free(&r);
    json_decref(access_line("logs-last"));

    char *text = proc_stderr(fixture_service());
    ck_assert_ptr_nonnull(text);
    size_t count = 0;
    each_line(text, check_json_line, &count);
    ck_assert_msg(count >= N_CASES + 3, "only %zu log lines", count);
    /* the start-up line, and the query failure on the unreachable database */
    json_t *listening = log_find(text, (const char *const[]){"msg", "listening", NULL});
    ck_assert_msg(listening != NULL, "no listening line");
    ck_assert_str_eq(jstr(listening, "level"), "info");
    json_decref(listening);
    json_t *failed = log_find(text, (const char *const[]){"msg", "query failed", "db", "mssql",
                                                          "code", "DB_UNAVAILABLE", NULL});
    ck_assert_msg(failed != NULL, "no 'query failed' line for mssql");
    ck_assert_ptr_nonnull(jstr(failed, "request_id"));
    json_decref(failed);
    free(text);
}
END_TEST

/* SQLite names the missing table in its message, which the error struct cuts
 * at 511 bytes: here inside a two-byte character. The failure line keeps
 * every field (the cut character reads as U+FFFD). */
START_TEST(query_failed_line_cut_in_utf8)
{
    char body[1024] = "{\"sql\":\"SELECT * FROM x";
    for (int i = 0; i < 400; i++) {
        strcat(body, "\xC3\xA9"); /* U+00E9 */
    }
    strcat(body, "\"}");
    static const char *const hdr[] = {AUTH_A, JSON_CT, "X-Request-Id: logs-cut-utf8", NULL};
    http_resp r;
    send_to("POST", "/v1/databases/core/query", hdr, body, &r);
    ASSERT_STATUS(&r, 400);
    http_resp_free(&r);
    json_decref(access_line("logs-cut-utf8"));
    char *text = proc_stderr(fixture_service());
    ck_assert_ptr_nonnull(text);
    json_t *line = log_find(
        text, (const char *const[]){"msg", "query failed", "request_id", "logs-cut-utf8", NULL});
    if (line == NULL) {
        fprintf(stderr, "sqlgate's stderr:\n%s\n", text);
    }
    ck_assert_msg(line != NULL, "no 'query failed' line with its request id (stderr above)");
    ck_assert_str_eq(jstr(line, "db"), "core");
    ck_assert_str_eq(jstr(line, "code"), "SQL_ERROR");
    const char *msg = jstr(line, "message");
    ck_assert_msg(msg != NULL && strncmp(msg, "no such table: x\xC3\xA9", 18) == 0 &&
                      strstr(msg, "\xEF\xBF\xBD") != NULL,
                  "message: %s", msg ? msg : "(none)");
    json_decref(line);
    free(text);
}
END_TEST

START_TEST(secrets_never_logged)
{
    /* let the unreachable database fail its checks and retries a few times */
    int64_t deadline = now_ms() + scaled_ms(10000);
    for (;;) {
        http_resp r;
        /* Details (checked_at) are shown to a valid token. */
        send_to("GET", "/health/mssql", (const char *const[]){AUTH_A, NULL}, NULL, &r);
        bool checked = jstr(r.json, "checked_at") != NULL && jstr(r.json, "state") != NULL &&
                       strcmp(jstr(r.json, "state"), "down") == 0;
        http_resp_free(&r);
        if (checked || now_ms() >= deadline) {
            ck_assert_msg(checked, "mssql was never reported down");
            break;
        }
        sleep_ms(50);
    }
    for (size_t i = 0; i < N_CASES; i++) {
        http_resp r;
        do_case(&CASES[i], NULL, &r);
        assert_no_secret(r.body, CASES[i].path);
        http_resp_free(&r);
    }
    static const char *const paths[] = {"/health", "/health/mssql", "/metrics"};
    for (size_t i = 0; i < 3; i++) {
        http_resp r;
        send_to("GET", paths[i], NULL, NULL, &r);
        assert_no_secret(r.body, paths[i]);
        http_resp_free(&r);
    }
    sleep_ms(1500); /* a retry or two of mssql */
    static const char *const last[] = {"X-Request-Id: logs-secrets-last", NULL};
    http_resp r;
    send_to("GET", "/health/live", last, NULL, &r);
    http_resp_free(&r);
    json_decref(access_line("logs-secrets-last"));
    char *text = proc_stderr(fixture_service());
    char *out = proc_stdout(fixture_service());
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(out);
    assert_no_secret(text, "stderr");
    assert_no_secret(out, "stdout");
    /* the checks did log something about mssql, so the scan saw its lines */
    ck_assert_msg(strstr(text, "mssql") != NULL, "nothing was logged about mssql");
    free(text);
    free(out);
}
END_TEST

/* ===== warn level =============================================================== */

static void check_not_info(const char *line, size_t n, void *ud)
{
    size_t *warns = ud;
    json_t *obj = json_loadb(line, n, 0, NULL);
    ck_assert_msg(json_is_object(obj), "not JSON: %.*s", (int)n, line);
    const char *level = jstr(obj, "level");
    ck_assert_msg(level != NULL && (strcmp(level, "warn") == 0 || strcmp(level, "error") == 0),
                  "a %s line at SQLGATE_LOG_LEVEL=warn: %.*s", level ? level : "(no level)", (int)n,
                  line);
    *warns += strcmp(level, "warn") == 0;
    json_decref(obj);
}

/* The tests that stop their service start it themselves: only the process
 * that started a child can wait for its exit (Check forks each test). */

START_TEST(warn_level_suppresses_info)
{
    /* ENCRYPT=require without CA_FILE: a warning at start */
    start_fixed_port("SQLGATE_LOG_LEVEL=warn", "MSSQL_DB_ENCRYPT=require");
    for (size_t i = 0; i < N_CASES; i++) {
        http_resp r;
        do_case(&CASES[i], NULL, &r);
        http_resp_free(&r);
    }
    /* the whole log is written once the process is gone */
    ck_assert_int_eq(proc_signal(fixture_service(), SIGTERM), 0);
    ck_assert_int_eq(proc_wait_exit(fixture_service(), scaled_ms(30000)), 0);
    char *text = proc_stderr(fixture_service());
    ck_assert_ptr_nonnull(text);
    size_t warns = 0;
    each_line(text, check_not_info, &warns);
    ck_assert_msg(warns >= 1, "the start-up warning (ENCRYPT=require without CA_FILE) is missing");
    ck_assert_msg(strstr(text, "\"request\"") == NULL, "access lines at warn level");
    assert_no_secret(text, "stderr");
    free(text);
    teardown_svc();
}
END_TEST

/* ===== text format ================================================================ */

struct text_scan {
    size_t lines;
    bool listening, access;
    bool forged;
};

static void check_text_line(const char *line, size_t n, void *ud)
{
    struct text_scan *s = ud;
    json_t *obj = json_loadb(line, n, 0, NULL);
    ck_assert_msg(obj == NULL, "a JSON line in text format: %.*s", (int)n, line);
    char buf[2048];
    snprintf(buf, sizeof buf, "%.*s", (int)n, line);
    /* "<ISO time> <level> <message> key=value..." */
    char time[64] = "", level[16] = "";
    ck_assert_msg(sscanf(buf, "%63s %15s", time, level) == 2, "short line: %s", buf);
    ck_assert_msg(is_iso8601_utc(time) || strncmp(buf, FORGED_PREFIX, strlen(FORGED_PREFIX)) == 0,
                  "line does not start with the time: %s", buf);
    s->forged = s->forged || strncmp(buf, FORGED_PREFIX, strlen(FORGED_PREFIX)) == 0;
    if (!is_iso8601_utc(time)) {
        return;
    }
    ck_assert_msg(strcmp(level, "debug") == 0 || strcmp(level, "info") == 0 ||
                      strcmp(level, "warn") == 0 || strcmp(level, "error") == 0,
                  "no level in: %s", buf);
    s->lines++;
    s->listening =
        s->listening || (strcmp(level, "info") == 0 && strstr(buf, " listening") != NULL);
    s->access =
        s->access || (strstr(buf, " request ") != NULL && strstr(buf, "logs-text-1") != NULL &&
                      strstr(buf, "/health/live") != NULL && strstr(buf, "200") != NULL);
}

START_TEST(text_format_for_humans)
{
    start_fixed_port("SQLGATE_LOG_FORMAT=text", "SQLGATE_LOG_LEVEL=info");
    static const char *const hdr[] = {"X-Request-Id: logs-text-1", NULL};
    http_resp r;
    send_to("GET", "/health/live", hdr, NULL, &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
    for (size_t i = 0; i < N_CASES; i++) {
        do_case(&CASES[i], NULL, &r);
        http_resp_free(&r);
    }
    ck_assert_int_eq(proc_signal(fixture_service(), SIGTERM), 0);
    ck_assert_int_eq(proc_wait_exit(fixture_service(), scaled_ms(30000)), 0);
    char *text = proc_stderr(fixture_service());
    ck_assert_ptr_nonnull(text);
    struct text_scan s = {0};
    each_line(text, check_text_line, &s);
    ck_assert_msg(s.listening, "no info line saying 'listening':\n%s", text);
    ck_assert_msg(s.access, "no access line for logs-text-1:\n%s", text);
    ck_assert_msg(s.lines >= N_CASES + 2, "only %zu lines", s.lines);
    assert_no_secret(text, "stderr");
    free(text);
    teardown_svc();
}
END_TEST

/* A client-chosen value with a newline must not start a line of its own: a
 * forged line would pass for the service's. */
START_TEST(text_one_line_per_event)
{
    start_fixed_port("SQLGATE_LOG_FORMAT=text", "SQLGATE_LOG_LEVEL=info");
    static const char *const hdr[] = {AUTH_A, JSON_CT, NULL};
    http_resp r;
    send_to("POST", "/v1/databases/core/query", hdr,
            "{\"sql\":\"SELECT 1\",\"operation\":\"" MULTILINE_OP "\"}", &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
    ck_assert_int_eq(proc_signal(fixture_service(), SIGTERM), 0);
    ck_assert_int_eq(proc_wait_exit(fixture_service(), scaled_ms(30000)), 0);
    char *text = proc_stderr(fixture_service());
    ck_assert_ptr_nonnull(text);
    struct text_scan s = {0};
    each_line(text, check_text_line, &s);
    ck_assert_msg(!s.forged, "a client value started a log line of its own:\n%s", text);
    free(text);
    teardown_svc();
}
END_TEST

/* ================================================================================ */

static TCase *tcase(const char *name, void (*setup)(void))
{
    TCase *tc = tcase_create(name);
    tcase_add_unchecked_fixture(tc, setup, teardown_svc);
    tcase_set_timeout(tc, 120);
    return tc;
}

static Suite *logs_suite(void)
{
    Suite *s = suite_create("logs");
    TCase *tc = tcase("json", setup_json);
    tcase_add_test(tc, access_line_per_request);
    tcase_add_test(tc, every_line_is_json);
    tcase_add_test(tc, query_failed_line_cut_in_utf8);
    tcase_add_test(tc, secrets_never_logged);
    suite_add_tcase(s, tc);

    tc = tcase_create("levels_and_formats");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, warn_level_suppresses_info);
    tcase_add_test(tc, text_format_for_humans);
    tcase_add_test(tc, text_one_line_per_event);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    harness_init();
    return check_run(logs_suite());
}
