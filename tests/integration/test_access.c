/* Integration: access control on the real binary.
 *
 * A table of token x route x database x read/write -> status drives every
 * scope decision; then the audit and access lines, the absence of every token
 * from the logs, health details under each SQLGATE_HEALTH_DETAILS setting,
 * metrics access and bad tokens-file lines. Read-only refusals are checked to
 * have written nothing by counting rows afterwards with a full token.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "harness.h"

#define EXIT_CONFIG 2

/* Tokens (>= 16 characters) and the first 8 hex digits of their SHA-256,
 * computed with sha256sum. */
#define T_FULL     "full-token-0123456789abc" /* SQLGATE_API_TOKENS: every scope */
#define T_APP_RW   "app-rw-token-0123456789"
#define T_APP_RO   "app-ro-token-hashed-0123" /* given as sha256: in the file */
#define T_DEF_RO   "def-ro-token-0123456789"
#define T_OPS      "ops-token-0123456789abc"
#define T_APPADMIN "appadmin-token-01234567"
#define T_METRICS  "metrics-only-token-0123"
#define T_UNKNOWN  "unknown-token-0123456789"

#define FP_APP_RO   "3f092626"
#define FP_APPADMIN "7db9bb8e"
#define FP_UNKNOWN  "fb8edaf6"

static const char tokens_file[] =
    "# scoped tokens for the access tests\n"
    "\n" T_APP_RW "   db=app rw\n"
    "sha256:3f0926266bf1b637bc514bd22714bc6b79e20ebeb0eff4fad527be8662e58658  db=app   # ro\n"
    "  " T_DEF_RO " db=default ro\n" T_OPS " db=* admin metrics\n" T_APPADMIN
    " db=app admin rw\n" T_METRICS " metrics\n";

static const char *const all_tokens[] = {T_FULL, T_APP_RW,   T_APP_RO,  T_DEF_RO,
                                         T_OPS,  T_APPADMIN, T_METRICS, T_UNKNOWN};

/* Starts the service with the tokens file and the extra variables. */
static void start_access(const char *details, const char *metrics)
{
    fixture_dir = tmp_dir_new();
    if (fixture_dir == NULL || write_file(fixture_dir, "tokens", tokens_file) != 0)
        return;
    char det[64], met[64];
    snprintf(det, sizeof det, "SQLGATE_HEALTH_DETAILS=%s", details);
    snprintf(met, sizeof met, "SQLGATE_METRICS_ACCESS=%s", metrics);
    const char *env[] = {"SQLGATE_LISTEN=127.0.0.1:0",
                         "SQLGATE_DATABASES=core,app,other",
                         "SQLGATE_DEFAULT_DATABASE=core",
                         "CORE_DB_PATH=./core.db",
                         "APP_DB_PATH=./app.db",
                         "OTHER_DB_PATH=./other.db",
                         "SQLGATE_API_TOKENS=" T_FULL,
                         "SQLGATE_TOKENS_FILE=./tokens",
                         det,
                         met,
                         NULL};
    fixture_svc = proc_start(env, fixture_dir, true);
}

static void setup_token_metrics(void)
{
    start_access("authorized", "token");
}

static void setup_details_always(void)
{
    start_access("always", "open");
}

static void setup_details_never(void)
{
    start_access("never", "open");
}

/* A request with an optional bearer token and JSON body. */
static int call(const char *token, const char *method, const char *path, const char *body,
                http_resp *r)
{
    char auth[128];
    const char *headers[3] = {NULL, NULL, NULL};
    size_t n = 0;
    if (token != NULL) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        headers[n++] = auth;
    }
    if (body != NULL)
        headers[n++] = "Content-Type: application/json";
    return http_send(fixture_service(), method, path, headers, body, body ? strlen(body) : 0, r);
}

static json_int_t count_rows(const char *db)
{
    char path[96];
    snprintf(path, sizeof path, "/v1/databases/%s/query", db);
    http_resp r;
    call(T_FULL, "POST", path, "{\"sql\":\"SELECT count(*) AS n FROM t\"}", &r);
    ASSERT_STATUS(&r, 200);
    json_int_t n = jint(r.json, "results.0.rows.0.n", -1);
    http_resp_free(&r);
    return n;
}

/* --- The decision table ------------------------------------------------------ */

#define RD  "{\"sql\":\"SELECT count(*) AS n FROM t\"}"
#define WR  "{\"sql\":\"INSERT INTO t VALUES (1)\"}"
#define WR2 "{\"sql\":\"SELECT 1 AS a; INSERT INTO t VALUES (2)\"}"
#define DDL "{\"sql\":\"CREATE TABLE IF NOT EXISTS t2 (y INTEGER)\"}"

#define Q(db)           "/v1/databases/" db "/query"
#define ADMIN(db, verb) "/v1/databases/" db "/" verb

typedef struct access_case {
    const char *token; /* NULL: no Authorization header */
    const char *method;
    const char *path;
    const char *body;
    long status;
    const char *code;    /* error code when status >= 400 */
    const char *message; /* part of the error message, or NULL */
    const char *wrote;   /* database that gains one row when it succeeds, or NULL */
} access_case;

static const access_case cases[] = {
    /* 401: no token, an unknown token, a malformed header */
    {NULL, "GET", "/v1/databases", NULL, 401, "UNAUTHORIZED", NULL, NULL},
    {NULL, "POST", Q("app"), RD, 401, "UNAUTHORIZED", NULL, NULL},
    {T_UNKNOWN, "POST", Q("app"), RD, 401, "UNAUTHORIZED", NULL, NULL},
    {T_UNKNOWN, "POST", ADMIN("app", "pause"), NULL, 401, "UNAUTHORIZED", NULL, NULL},
    {NULL, "GET", "/metrics", NULL, 401, "UNAUTHORIZED", NULL, NULL},
    {T_UNKNOWN, "GET", "/metrics", NULL, 401, "UNAUTHORIZED", NULL, NULL},

    /* every scope */
    {T_FULL, "POST", Q("core"), WR, 200, NULL, NULL, "core"},
    {T_FULL, "POST", "/v1/query", WR, 200, NULL, NULL, "core"},
    {T_FULL, "POST", ADMIN("core", "pause"), NULL, 202, NULL, NULL, NULL},
    {T_FULL, "POST", ADMIN("core", "resume"), NULL, 202, NULL, NULL, NULL},
    {T_FULL, "GET", "/v1/databases/nosuch", NULL, 404, "UNKNOWN_DATABASE", NULL, NULL},
    {T_FULL, "GET", "/metrics", NULL, 200, NULL, NULL, NULL},

    /* db=app rw */
    {T_APP_RW, "POST", Q("app"), RD, 200, NULL, NULL, NULL},
    {T_APP_RW, "POST", Q("app"), WR, 200, NULL, NULL, "app"},
    {T_APP_RW, "POST", Q("app"), WR2, 200, NULL, NULL, "app"},
    {T_APP_RW, "POST", "/v1/query", "{\"database\":\"app\",\"sql\":\"SELECT 1\"}", 200, NULL, NULL,
     NULL},
    {T_APP_RW, "POST", Q("core"), RD, 403, "FORBIDDEN", "no scope for database core", NULL},
    {T_APP_RW, "POST", Q("default"), RD, 403, "FORBIDDEN", "no scope for database core", NULL},
    {T_APP_RW, "POST", "/v1/query", RD, 403, "FORBIDDEN", "no scope for database core", NULL},
    {T_APP_RW, "POST", "/v1/query", "{\"database\":\"other\",\"sql\":\"SELECT 1\"}", 403,
     "FORBIDDEN", "no scope for database other", NULL},
    {T_APP_RW, "GET", "/v1/databases/app", NULL, 200, NULL, NULL, NULL},
    {T_APP_RW, "GET", "/v1/databases/core", NULL, 403, "FORBIDDEN", "database core", NULL},
    {T_APP_RW, "GET", "/v1/databases/nosuch", NULL, 403, "FORBIDDEN", "database nosuch", NULL},
    {T_APP_RW, "POST", Q("nosuch"), RD, 403, "FORBIDDEN", "database nosuch", NULL},
    {T_APP_RW, "POST", ADMIN("app", "pause"), NULL, 403, "FORBIDDEN", "needs admin", NULL},
    {T_APP_RW, "GET", "/metrics", NULL, 403, "FORBIDDEN", "needs metrics", NULL},

    /* db=app ro, given as its SHA-256 */
    {T_APP_RO, "POST", Q("app"), RD, 200, NULL, NULL, NULL},
    {T_APP_RO, "POST", Q("app"), WR, 403, "FORBIDDEN", "needs rw", NULL},
    {T_APP_RO, "POST", Q("app"), WR2, 403, "FORBIDDEN", "needs rw", NULL},
    {T_APP_RO, "POST", Q("app"), DDL, 403, "FORBIDDEN", "needs rw", NULL},
    {T_APP_RO, "POST", Q("core"), RD, 403, "FORBIDDEN", "database core", NULL},
    {T_APP_RO, "POST", ADMIN("app", "reconnect"), NULL, 403, "FORBIDDEN", "needs admin", NULL},

    /* db=default ro: default names core */
    {T_DEF_RO, "POST", Q("default"), RD, 200, NULL, NULL, NULL},
    {T_DEF_RO, "POST", Q("core"), RD, 200, NULL, NULL, NULL},
    {T_DEF_RO, "POST", "/v1/query", RD, 200, NULL, NULL, NULL},
    {T_DEF_RO, "POST", Q("core"), WR, 403, "FORBIDDEN", "needs rw", NULL},
    {T_DEF_RO, "POST", "/v1/query", WR, 403, "FORBIDDEN", "needs rw", NULL},
    {T_DEF_RO, "POST", Q("app"), RD, 403, "FORBIDDEN", "database app", NULL},
    {T_DEF_RO, "GET", "/v1/databases/default", NULL, 200, NULL, NULL, NULL},

    /* db=* admin metrics (ro) */
    {T_OPS, "POST", Q("other"), RD, 200, NULL, NULL, NULL},
    {T_OPS, "POST", Q("app"), WR, 403, "FORBIDDEN", "needs rw", NULL},
    {T_OPS, "POST", ADMIN("other", "pause"), NULL, 202, NULL, NULL, NULL},
    {T_OPS, "POST", ADMIN("other", "resume"), NULL, 202, NULL, NULL, NULL},
    {T_OPS, "POST", ADMIN("core", "reconnect"), NULL, 202, NULL, NULL, NULL},
    {T_OPS, "POST", ADMIN("nosuch", "pause"), NULL, 404, "UNKNOWN_DATABASE", NULL, NULL},
    {T_OPS, "GET", "/v1/databases/nosuch", NULL, 404, "UNKNOWN_DATABASE", NULL, NULL},
    {T_OPS, "GET", "/metrics", NULL, 200, NULL, NULL, NULL},

    /* db=app admin rw */
    {T_APPADMIN, "POST", ADMIN("app", "pause"), NULL, 202, NULL, NULL, NULL},
    {T_APPADMIN, "POST", ADMIN("app", "resume"), NULL, 202, NULL, NULL, NULL},
    {T_APPADMIN, "POST", ADMIN("core", "pause"), NULL, 403, "FORBIDDEN", "database core", NULL},
    {T_APPADMIN, "POST", ADMIN("default", "pause"), NULL, 403, "FORBIDDEN", "database core", NULL},
    {T_APPADMIN, "POST", Q("app"), WR, 200, NULL, NULL, "app"},

    /* metrics only: no database */
    {T_METRICS, "GET", "/metrics", NULL, 200, NULL, NULL, NULL},
    {T_METRICS, "GET", "/v1/databases", NULL, 200, NULL, NULL, NULL},
    {T_METRICS, "POST", Q("app"), RD, 403, "FORBIDDEN", "database app", NULL},
    {T_METRICS, "POST", ADMIN("app", "pause"), NULL, 403, "FORBIDDEN", "needs admin", NULL},

    /* the reload route: admin with db=*; nothing changed, so nothing moves */
    {NULL, "POST", "/v1/admin/reload", NULL, 401, "UNAUTHORIZED", NULL, NULL},
    {T_UNKNOWN, "POST", "/v1/admin/reload", NULL, 401, "UNAUTHORIZED", NULL, NULL},
    {T_APP_RW, "POST", "/v1/admin/reload", NULL, 403, "FORBIDDEN", "needs admin", NULL},
    {T_METRICS, "POST", "/v1/admin/reload", NULL, 403, "FORBIDDEN", "needs admin", NULL},
    {T_APPADMIN, "POST", "/v1/admin/reload", NULL, 403, "FORBIDDEN", "needs db=*", NULL},
    {T_OPS, "POST", "/v1/admin/reload", NULL, 200, NULL, NULL, NULL},
    {T_FULL, "POST", "/v1/admin/reload", NULL, 200, NULL, NULL, NULL},

    /* open routes stay open */
    {NULL, "GET", "/health", NULL, 200, NULL, NULL, NULL},
    {NULL, "GET", "/health/ready", NULL, 200, NULL, NULL, NULL},
    {NULL, "GET", "/health/app", NULL, 200, NULL, NULL, NULL},
    {T_UNKNOWN, "GET", "/health", NULL, 200, NULL, NULL, NULL},
    {NULL, "GET", "/openapi.json", NULL, 200, NULL, NULL, NULL},
};

#define N_CASES (sizeof cases / sizeof cases[0])

static void create_tables(void)
{
    static const char *const dbs[] = {"core", "app", "other"};
    for (size_t i = 0; i < 3; i++) {
        char path[96];
        snprintf(path, sizeof path, "/v1/databases/%s/query", dbs[i]);
        http_resp r;
        call(T_FULL, "POST", path, "{\"sql\":\"CREATE TABLE IF NOT EXISTS t (x INTEGER)\"}", &r);
        ASSERT_STATUS(&r, 200);
        http_resp_free(&r);
    }
}

START_TEST(scope_table)
{
    create_tables();
    json_int_t before_core = count_rows("core"), before_app = count_rows("app");
    json_int_t want_core = before_core, want_app = before_app;
    for (size_t i = 0; i < N_CASES; i++) {
        const access_case *c = &cases[i];
        http_resp r;
        call(c->token, c->method, c->path, c->body, &r);
        char d[600];
        ck_assert_msg(r.status == c->status, "case %zu (%s %s as %s): expected %ld, got %s", i,
                      c->method, c->path, c->token ? c->token : "nobody", c->status,
                      resp_desc(&r, d, sizeof d));
        if (c->code != NULL) {
            ASSERT_ERROR(&r, c->status, c->code);
            if (c->message != NULL)
                ck_assert_msg(strstr(jstr(r.json, "error.message"), c->message) != NULL,
                              "case %zu: message \"%s\" lacks \"%s\"", i,
                              jstr(r.json, "error.message"), c->message);
        }
        ck_assert_msg(r.body == NULL || c->token == NULL || strstr(r.body, c->token) == NULL,
                      "case %zu: the token is in the response", i);
        if (c->status < 300 && c->wrote != NULL) {
            if (strcmp(c->wrote, "core") == 0)
                want_core++;
            else
                want_app++;
        }
        http_resp_free(&r);
    }
    /* Read-only refusals wrote nothing; every allowed write landed. */
    ck_assert_int_eq(count_rows("core"), want_core);
    ck_assert_int_eq(count_rows("app"), want_app);
    http_resp r;
    call(T_FULL, "POST", Q("app"),
         "{\"sql\":\"SELECT count(*) AS n FROM sqlite_master WHERE "
         "name = 't2'\"}",
         &r);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), 0);
    http_resp_free(&r);
}
END_TEST

/* GET /v1/databases lists only what the token may query, and names the
 * default (core) only to a token that may query it. */
static void check_listing(const char *token, const char *want)
{
    http_resp r;
    call(token, "GET", "/v1/databases", NULL, &r);
    ASSERT_STATUS(&r, 200);
    json_t *def = jget(r.json, "default");
    bool sees_core = strncmp(want, "core", 4) == 0;
    ck_assert_msg(sees_core ? json_is_string(def) && strcmp(json_string_value(def), "core") == 0
                            : json_is_null(def),
                  "%s: default shown wrongly", token);
    char got[128] = "";
    json_t *list = jget(r.json, "databases");
    for (size_t i = 0; i < json_array_size(list); i++) {
        if (i > 0)
            strcat(got, ",");
        strcat(got, jstr(json_array_get(list, i), "name"));
    }
    ck_assert_msg(strcmp(got, want) == 0, "%s lists \"%s\", expected \"%s\"", token, got, want);
    http_resp_free(&r);
}

START_TEST(listing_follows_scope)
{
    check_listing(T_FULL, "core,app,other");
    check_listing(T_OPS, "core,app,other");
    check_listing(T_APP_RW, "app");
    check_listing(T_DEF_RO, "core");
    check_listing(T_METRICS, "");
}
END_TEST

START_TEST(audit_and_no_token_in_logs)
{
    http_resp r;
    call(T_APP_RO, "POST", Q("app"), WR, &r);
    ASSERT_STATUS(&r, 403);
    http_resp_free(&r);
    call(T_APPADMIN, "POST", ADMIN("app", "pause"), NULL, &r);
    ASSERT_STATUS(&r, 202);
    http_resp_free(&r);
    call(T_APPADMIN, "POST", ADMIN("app", "resume"), NULL, &r);
    ASSERT_STATUS(&r, 202);
    http_resp_free(&r);
    call(T_UNKNOWN, "GET", "/v1/databases", NULL, &r);
    ASSERT_STATUS(&r, 401);
    http_resp_free(&r);
    call(T_APP_RW, "POST", Q("core"), RD, &r);
    ASSERT_STATUS(&r, 403);
    http_resp_free(&r);
    ck_assert(proc_stderr_wait(fixture_service(), "\"outcome\":\"resumed\"", 5000));

    char *text = proc_stderr(fixture_service());
    json_t *l = log_find(text, (const char *const[]){"msg", "audit", "token", FP_APP_RO, "outcome",
                                                     "refused", "db", "app", NULL});
    ck_assert_msg(l != NULL, "no audit line for the read-only refusal:\n%s", text);
    ck_assert_int_eq(jint(l, "status", 0), 403);
    ck_assert_str_eq(jstr(l, "route"), "/v1/databases/{name}/query");
    ck_assert_msg(strstr(jstr(l, "reason"), "needs rw") != NULL, "%s", jstr(l, "reason"));
    json_decref(l);
    l = log_find(text, (const char *const[]){"msg", "audit", "token", FP_APPADMIN, "outcome",
                                             "paused", "db", "app", NULL});
    ck_assert_msg(l != NULL, "no audit line for the pause:\n%s", text);
    ck_assert_int_eq(jint(l, "status", 0), 202);
    json_decref(l);
    /* An unknown token is named by the fingerprint of what was presented. */
    l = log_find(text, (const char *const[]){"msg", "audit", "outcome", "refused", "route",
                                             "/v1/databases", "token", FP_UNKNOWN, NULL});
    ck_assert_msg(l != NULL, "no audit line for the 401:\n%s", text);
    ck_assert_int_eq(jint(l, "status", 0), 401);
    ck_assert(json_is_false(json_object_get(l, "known")));
    json_decref(l);
    l = log_find(text,
                 (const char *const[]){"msg", "audit", "outcome", "refused", "db", "core", NULL});
    ck_assert_msg(l != NULL, "no audit line for the database refusal:\n%s", text);
    json_decref(l);
    /* The access log names tokens by fingerprint. */
    l = log_find(text, (const char *const[]){"msg", "request", "token", FP_APPADMIN, NULL});
    ck_assert_msg(l != NULL, "no access line with the fingerprint:\n%s", text);
    json_decref(l);
    for (size_t i = 0; i < sizeof all_tokens / sizeof all_tokens[0]; i++)
        ck_assert_msg(strstr(text, all_tokens[i]) == NULL, "token %zu is in the log:\n%s", i, text);
    free(text);
}
END_TEST

/* --- Health details ----------------------------------------------------------- */

static const char *const detail_keys[] = {"error", "latency_ms", "checked_at", "pool"};

/* Checks every database entry of a health body: with or without details. */
static void check_entry(const json_t *e, bool details, const char *what)
{
    ck_assert_msg(json_is_boolean(json_object_get(e, "healthy")), "%s: no healthy", what);
    ck_assert_msg(json_is_boolean(json_object_get(e, "critical")), "%s: no critical", what);
    ck_assert_msg(json_is_string(json_object_get(e, "state")), "%s: no state", what);
    for (size_t k = 0; k < 4; k++) {
        bool pool_expected = strcmp(detail_keys[k], "pool") != 0 || strstr(what, "ready") == NULL;
        bool has = json_object_get(e, detail_keys[k]) != NULL;
        ck_assert_msg(has == (details && pool_expected), "%s: \"%s\" %s", what, detail_keys[k],
                      has ? "shown" : "missing");
    }
}

static void check_health(const char *token, bool details)
{
    static const char *const paths[] = {"/health", "/health/ready", "/health/app",
                                        "/health/default"};
    for (size_t i = 0; i < 4; i++) {
        http_resp r;
        call(token, "GET", paths[i], NULL, &r);
        ASSERT_STATUS(&r, 200);
        char what[128];
        snprintf(what, sizeof what, "%s as %s", paths[i], token ? token : "nobody");
        if (i < 2) {
            ck_assert(json_is_true(json_object_get(r.json, "healthy")));
            ck_assert_str_eq(jstr(r.json, "status"), "up");
            const char *key;
            json_t *e;
            json_object_foreach(jget(r.json, "databases"), key, e) check_entry(e, details, what);
        } else {
            check_entry(r.json, details, what);
        }
        http_resp_free(&r);
    }
}

START_TEST(details_authorized)
{
    check_health(NULL, false);
    check_health(T_UNKNOWN, false);
    check_health(T_METRICS, true);
    check_health(T_APP_RO, true);
}
END_TEST

START_TEST(details_always)
{
    check_health(NULL, true);
    check_health(T_FULL, true);
}
END_TEST

START_TEST(details_never)
{
    check_health(NULL, false);
    check_health(T_FULL, false);
}
END_TEST

START_TEST(metrics_open_by_default)
{
    http_resp r;
    call(NULL, "GET", "/metrics", NULL, &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
    /* Scopes still hold on the API. */
    call(T_METRICS, "POST", Q("app"), RD, &r);
    ASSERT_ERROR(&r, 403, "FORBIDDEN");
    http_resp_free(&r);
}
END_TEST

/* --- Bad token files ------------------------------------------------------------ */

static const struct {
    const char *line;
    const char *want;
} bad_files[] = {
    {T_APP_RW " db=app rw sideways", "word 4 is not a scope"},
    {T_APP_RW " db=nosuch", "db= names \"nosuch\", which is not a configured database"},
    {"sha256:1234 db=*", "sha256: must be followed by exactly 64 hex digits"},
    {T_APP_RW " " T_OPS, "word 2 is not a scope"},
};

START_TEST(bad_tokens_file)
{
    char *dir = tmp_dir_new();
    char text[256];
    snprintf(text, sizeof text, "# fine\n" T_METRICS " metrics\n%s\n", bad_files[_i].line);
    ck_assert_int_eq(write_file(dir, "tokens", text), 0);
    const char *env[] = {"SQLGATE_LISTEN=127.0.0.1:0", "SQLGATE_DATABASES=app",
                         "APP_DB_PATH=./app.db", "SQLGATE_TOKENS_FILE=./tokens", NULL};
    proc *p = proc_spawn(env, dir);
    ck_assert_ptr_nonnull(p);
    int code = proc_wait_exit(p, scaled_ms(10000));
    char *err = proc_stderr(p);
    ck_assert_msg(code == EXIT_CONFIG, "exit %d, stderr:\n%s", code, err);
    char want[160];
    snprintf(want, sizeof want, "SQLGATE_TOKENS_FILE: ./tokens:3: %s", bad_files[_i].want);
    ck_assert_msg(strstr(err, want) != NULL, "expected \"%s\" in:\n%s", want, err);
    for (size_t i = 0; i < sizeof all_tokens / sizeof all_tokens[0]; i++)
        ck_assert_msg(strstr(err, all_tokens[i]) == NULL, "a token is printed:\n%s", err);
    char *out = proc_stdout(p);
    for (size_t i = 0; i < sizeof all_tokens / sizeof all_tokens[0]; i++)
        ck_assert_msg(strstr(out, all_tokens[i]) == NULL, "a token is printed:\n%s", out);
    free(out);
    free(err);
    proc_free(p);
    tmp_dir_free(dir);
}
END_TEST

static Suite *access_suite(void)
{
    Suite *s = suite_create("access");
    TCase *tc = tcase_create("scopes");
    tcase_add_unchecked_fixture(tc, setup_token_metrics, fixture_teardown);
    tcase_add_test(tc, scope_table);
    tcase_add_test(tc, listing_follows_scope);
    tcase_add_test(tc, audit_and_no_token_in_logs);
    tcase_add_test(tc, details_authorized);
    suite_add_tcase(s, tc);

    tc = tcase_create("details_always");
    tcase_add_unchecked_fixture(tc, setup_details_always, fixture_teardown);
    tcase_add_test(tc, details_always);
    tcase_add_test(tc, metrics_open_by_default);
    suite_add_tcase(s, tc);

    tc = tcase_create("details_never");
    tcase_add_unchecked_fixture(tc, setup_details_never, fixture_teardown);
    tcase_add_test(tc, details_never);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad_file");
    tcase_add_loop_test(tc, bad_tokens_file, 0, (int)(sizeof bad_files / sizeof bad_files[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    harness_init();
    return check_run(access_suite());
}
