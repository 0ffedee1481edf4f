/* Integration: configuration at start (docs/configuration.md) as seen from
 * outside: exit status 2 with every problem named, secrets never printed,
 * the legacy, single and multi-database modes, the `default` alias, .env,
 * and databases that are down at start.
 *
 * Every test runs its own service in a fresh directory (checked fixture).
 */
#include <check.h>
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check_main.h"
#include "harness.h"

#define EXIT_CONFIG 2

/* Runs a configuration that must be refused: exit status 2 within 10 s and
 * no listening line. Returns the child's stderr (caller frees). */
static char *run_refused(const char *const *env)
{
    proc *p = proc_spawn(env, fixture_dir);
    ck_assert_ptr_nonnull(p);
    int code = proc_wait_exit(p, 10000);
    char *err = proc_stderr(p);
    proc_free(p);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(code == EXIT_CONFIG, "exit status %d, expected 2; stderr:\n%s", code, err);
    ck_assert_msg(strstr(err, "\"listening\"") == NULL, "it listened before exiting:\n%s", err);
    return err;
}

#define ASSERT_NAMES(err, var)                                                                     \
    ck_assert_msg(strstr((err), (var)) != NULL, "stderr does not name %s:\n%s", (var), (err))

#define ASSERT_NO_SECRET(text, secret)                                                             \
    ck_assert_msg(strstr((text), (secret)) == NULL, "the secret %s was printed:\n%s", (secret),    \
                  (text))

static char *path_in_dir(const char *name, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s", fixture_dir, name);
    return buf;
}

/* ===== refused configurations ============================================== */

START_TEST(every_problem_reported)
{
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", "SQLGATE_DATABASES=core,app",
                                      "CORE_DB_PATH=./core.db", "CORE_DB_POOL_MAX=abc", NULL};
    char *err = run_refused(env);
    ASSERT_NAMES(err, "CORE_DB_POOL_MAX");
    ASSERT_NAMES(err, "APP_DB_"); /* app has neither PATH nor HOST nor URL */
    free(err);
}
END_TEST

START_TEST(every_problem_reported_service_wide)
{
    static const char *const env[] = {"SQLGATE_LISTEN=nonsense",
                                      "SQLGATE_DATABASES=core",
                                      "CORE_DB_PATH=./core.db",
                                      "SQLGATE_MAX_ROWS=0",
                                      "SQLGATE_DRAIN_TIMEOUT_MS=abc",
                                      "SQLGATE_MAX_BODY_BYTES=-1",
                                      "SQLGATE_LOG_LEVEL=loud",
                                      "CORE_DB_CRITICAL=maybe",
                                      "CORE_DB_POOL_MAX=2",
                                      "CORE_DB_POOL_MIN=5",
                                      "CORE_DB_QUERY_TIMEOUT_MS=0",
                                      "CORE_DB_HEALTH_INTERVAL_MS=1.5",
                                      NULL};
    char *err = run_refused(env);
    static const char *const vars[] = {
        "SQLGATE_LISTEN",         "SQLGATE_MAX_ROWS",         "SQLGATE_DRAIN_TIMEOUT_MS",
        "SQLGATE_MAX_BODY_BYTES", "SQLGATE_LOG_LEVEL",        "CORE_DB_CRITICAL",
        "CORE_DB_POOL_MIN",       "CORE_DB_QUERY_TIMEOUT_MS", "CORE_DB_HEALTH_INTERVAL_MS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        ASSERT_NAMES(err, vars[i]);
    }
    free(err);
}
END_TEST

/* --check-config used to accept a host name that the start then refused
 * (exit 1, "not an IPv4 address"): both now refuse it as a configuration
 * error naming SQLGATE_LISTEN. */
START_TEST(listen_host_name_refused)
{
    static const char *const env[] = {"SQLGATE_LISTEN=somehost:8080", "SQLGATE_API_TOKENS=t1",
                                      "SQLGATE_DATABASES=core", "CORE_DB_PATH=./core.db", NULL};
    char *err = run_refused(env);
    ASSERT_NAMES(err, "SQLGATE_LISTEN: a host name is not resolved");
    free(err);
    /* localhost, in any case, is the one name taken (as 127.0.0.1). */
    static const char *const local[] = {"SQLGATE_LISTEN=LocalHost:0", "SQLGATE_DATABASES=core",
                                        "CORE_DB_PATH=./core.db", NULL};
    proc *p = proc_start(local, fixture_dir, false);
    ck_assert_msg(p != NULL, "a start with SQLGATE_LISTEN=LocalHost:0 failed");
    proc_free(p);
}
END_TEST

START_TEST(bad_database_names)
{
    static const char *const reserved[] = {"SQLGATE_LISTEN=127.0.0.1:0",
                                           "SQLGATE_DATABASES=core,ready", "CORE_DB_PATH=./c.db",
                                           "READY_DB_PATH=./r.db", NULL};
    char *err = run_refused(reserved);
    ASSERT_NAMES(err, "SQLGATE_DATABASES");
    free(err);

    static const char *const bad[] = {"SQLGATE_LISTEN=127.0.0.1:0", "SQLGATE_DATABASES=Core-1",
                                      NULL};
    err = run_refused(bad);
    ASSERT_NAMES(err, "SQLGATE_DATABASES");
    free(err);

    static const char *const dflt[] = {"SQLGATE_LISTEN=127.0.0.1:0", "SQLGATE_DATABASES=default",
                                       "DEFAULT_DB_PATH=./d.db", NULL};
    err = run_refused(dflt);
    ASSERT_NAMES(err, "SQLGATE_DATABASES");
    free(err);
}
END_TEST

START_TEST(default_must_name_a_database)
{
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", "SQLGATE_DATABASES=a",
                                      "A_DB_PATH=./a.db", "SQLGATE_DEFAULT_DATABASE=zzz", NULL};
    char *err = run_refused(env);
    ASSERT_NAMES(err, "SQLGATE_DEFAULT_DATABASE");
    free(err);
}
END_TEST

START_TEST(secret_token_file_not_printed)
{
    ck_assert_int_eq(write_file(fixture_dir, "tokens", "filetok-SECRET-9876\n"), 0);
    char tokens[600], var[700];
    snprintf(var, sizeof var, "SQLGATE_API_TOKENS_FILE=%s",
             path_in_dir("tokens", tokens, sizeof tokens));
    const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0",
                               "SQLGATE_DATABASES=core",
                               "CORE_DB_PATH=./core.db",
                               "CORE_DB_POOL_MAX=abc",
                               var,
                               NULL};
    char *err = run_refused(env);
    ASSERT_NAMES(err, "CORE_DB_POOL_MAX");
    ASSERT_NO_SECRET(err, "SECRET-9876");
    free(err);
}
END_TEST

START_TEST(secret_in_url_not_printed)
{
    static const char *const mssql[] = {
        "SQLGATE_LISTEN=127.0.0.1:0", "SQLGATE_DATABASES=core",
        "CORE_DB_URL=mssql://user:pw-SECRET-5555@db.example:notaport/app", NULL};
    char *err = run_refused(mssql);
    ASSERT_NAMES(err, "CORE_DB_URL");
    ASSERT_NO_SECRET(err, "SECRET-5555");
    free(err);

    static const char *const ado[] = {
        "SQLGATE_LISTEN=127.0.0.1:0", "SQLGATE_DATABASES=core",
        "CORE_DB_URL=Server=tcp:db.example,notaport;Database=x;User Id=u;"
        "Password=pw-SECRET-8888;Encrypt=True",
        NULL};
    err = run_refused(ado);
    ASSERT_NAMES(err, "CORE_DB_URL");
    ASSERT_NO_SECRET(err, "SECRET-8888");
    free(err);
}
END_TEST

START_TEST(secret_password_not_printed)
{
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0",
                                      "SQLGATE_DATABASES=core",
                                      "CORE_DB_HOST=db.example",
                                      "CORE_DB_USER=u",
                                      "CORE_DB_PASSWORD=pw-SECRET-7777",
                                      "CORE_DB_PORT=99999",
                                      NULL};
    char *err = run_refused(env);
    ASSERT_NAMES(err, "CORE_DB_PORT");
    ASSERT_NO_SECRET(err, "SECRET-7777");
    free(err);

    static const char *const missing_file[] = {"SQLGATE_LISTEN=127.0.0.1:0",
                                               "SQLGATE_DATABASES=core",
                                               "CORE_DB_HOST=db.example",
                                               "CORE_DB_USER=u",
                                               "CORE_DB_PASSWORD_FILE=/nonexistent-dir/pw",
                                               NULL};
    err = run_refused(missing_file);
    ASSERT_NAMES(err, "CORE_DB_PASSWORD_FILE");
    free(err);
}
END_TEST

START_TEST(non_loopback_needs_tokens)
{
    static const char *const env[] = {"SQLGATE_LISTEN=0.0.0.0:0", NULL};
    char *err = run_refused(env);
    ck_assert_msg(strstr(err, "SQLGATE_API_TOKENS") != NULL ||
                      strstr(err, "SQLGATE_ALLOW_ANONYMOUS") != NULL ||
                      strstr(err, "SQLGATE_LISTEN") != NULL,
                  "stderr does not say what to set:\n%s", err);
    free(err);

    static const char *const anon[] = {"SQLGATE_LISTEN=0.0.0.0:0", "SQLGATE_ALLOW_ANONYMOUS=1",
                                       NULL};
    proc *p = fixture_start(anon, true);
    http_resp r;
    http_get(p, "/v1/databases", &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
    ck_assert_int_eq(proc_signal(p, SIGTERM), 0);
    ck_assert_int_eq(proc_wait_exit(p, 15000), 0);

    static const char *const tokens[] = {"SQLGATE_LISTEN=0.0.0.0:0",
                                         "SQLGATE_API_TOKENS=tok-SECRET-4444-ab", NULL};
    p = fixture_start(tokens, true);
    http_get(p, "/v1/databases", &r);
    ASSERT_ERROR(&r, 401, "UNAUTHORIZED");
    http_resp_free(&r);
}
END_TEST

START_TEST(token_file_works)
{
    ck_assert_int_eq(write_file(fixture_dir, "tokens", "filetok-SECRET-9876\n"), 0);
    char tokens[600], var[700];
    snprintf(var, sizeof var, "SQLGATE_API_TOKENS_FILE=%s",
             path_in_dir("tokens", tokens, sizeof tokens));
    const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", "SQLGATE_LOG_LEVEL=debug", var, NULL};
    proc *p = fixture_start(env, true);
    http_resp r;
    http_get(p, "/v1/databases", &r);
    ASSERT_ERROR(&r, 401, "UNAUTHORIZED");
    http_resp_free(&r);
    static const char *const hdr[] = {"Authorization: Bearer filetok-SECRET-9876", NULL};
    http_send(p, "GET", "/v1/databases", hdr, NULL, 0, &r);
    ASSERT_STATUS(&r, 200);
    ASSERT_NO_SECRET(r.body, "SECRET-9876");
    http_resp_free(&r);
    char *err = proc_stderr(p);
    ASSERT_NO_SECRET(err, "SECRET-9876");
    free(err);
}
END_TEST

/* ===== modes and the default alias ========================================== */

START_TEST(legacy_single_database)
{
    char db[600], var[700];
    snprintf(var, sizeof var, "DB_PATH=%s", path_in_dir("x.db", db, sizeof db));
    const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", var, NULL};
    proc *p = fixture_start(env, true);
    http_resp r;
    http_get(p, "/v1/databases", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "default"), "default");
    ck_assert_int_eq(json_array_size(jget(r.json, "databases")), 1);
    ck_assert_str_eq(jstr(r.json, "databases.0.name"), "default");
    ck_assert_str_eq(jstr(r.json, "databases.0.driver"), "sqlite");
    http_resp_free(&r);

    http_postf(p, "/v1/query", &r, "{s:s}", "sql", "SELECT 1 AS one");
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "database"), "default");
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.one", -1), 1);
    http_resp_free(&r);

    http_postf(p, "/v1/databases/default/query", &r, "{s:s}", "sql",
               "CREATE TABLE IF NOT EXISTS t (x INTEGER)");
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);

    http_get(p, "/health", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(json_object_size(jget(r.json, "databases")), 1);
    ck_assert(json_is_object(jget(r.json, "databases.default")));
    http_resp_free(&r);
    ck_assert_msg(file_exists(NULL, db), "%s was not created", db);
    ck_assert_msg(!file_exists(fixture_dir, "var"), "embedded databases created in legacy mode");
}
END_TEST

START_TEST(single_named_is_default)
{
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", "SQLGATE_DATABASES=main",
                                      "MAIN_DB_PATH=./main.db", NULL};
    proc *p = fixture_start(env, true);
    http_resp r;
    http_get(p, "/v1/databases", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "default"), "main");
    ck_assert_int_eq(json_array_size(jget(r.json, "databases")), 1);
    ck_assert_str_eq(jstr(r.json, "databases.0.name"), "main");
    http_resp_free(&r);

    http_postf(p, "/v1/query", &r, "{s:s}", "sql", "SELECT 1 AS one");
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "database"), "main");
    http_resp_free(&r);

    http_get(p, "/health/default", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "state"), "ready");
    http_resp_free(&r);
    ck_assert(file_exists(fixture_dir, "main.db"));
}
END_TEST

START_TEST(two_without_default)
{
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", "SQLGATE_DATABASES=a,b",
                                      "A_DB_PATH=./a.db", "B_DB_PATH=./b.db", NULL};
    proc *p = fixture_start(env, true);
    http_resp r;
    http_get(p, "/v1/databases", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_msg(json_is_null(jget(r.json, "default")), "default is not null");
    ck_assert_int_eq(json_array_size(jget(r.json, "databases")), 2);
    ck_assert_str_eq(jstr(r.json, "databases.0.name"), "a");
    ck_assert_str_eq(jstr(r.json, "databases.1.name"), "b");
    http_resp_free(&r);

    http_postf(p, "/v1/query", &r, "{s:s}", "sql", "SELECT 1");
    ASSERT_ERROR(&r, 404, "UNKNOWN_DATABASE");
    http_resp_free(&r);
    http_postf(p, "/v1/query", &r, "{s:s, s:s}", "sql", "SELECT 1", "database", "default");
    ASSERT_ERROR(&r, 404, "UNKNOWN_DATABASE");
    http_resp_free(&r);
    http_postf(p, "/v1/databases/default/query", &r, "{s:s}", "sql", "SELECT 1");
    ASSERT_ERROR(&r, 404, "UNKNOWN_DATABASE");
    http_resp_free(&r);
    http_get(p, "/health/default", &r);
    ASSERT_ERROR(&r, 404, "UNKNOWN_DATABASE");
    http_resp_free(&r);
    http_get(p, "/v1/databases/default", &r);
    ASSERT_ERROR(&r, 404, "UNKNOWN_DATABASE");
    http_resp_free(&r);

    http_postf(p, "/v1/query", &r, "{s:s, s:s}", "sql", "SELECT 1 AS one", "database", "b");
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "database"), "b");
    http_resp_free(&r);

    http_get(p, "/health", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(json_object_size(jget(r.json, "databases")), 2);
    ck_assert(json_is_object(jget(r.json, "databases.a")));
    ck_assert(json_is_object(jget(r.json, "databases.b")));
    http_resp_free(&r);
}
END_TEST

START_TEST(explicit_default)
{
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", "SQLGATE_DATABASES=a,b",
                                      "A_DB_PATH=./a.db",           "B_DB_PATH=./b.db",
                                      "SQLGATE_DEFAULT_DATABASE=b", NULL};
    proc *p = fixture_start(env, true);
    http_resp r;
    http_get(p, "/v1/databases", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "default"), "b");
    http_resp_free(&r);
    http_get(p, "/health/default", &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
    http_postf(p, "/v1/query", &r, "{s:s}", "sql", "SELECT 1 AS one");
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "database"), "b");
    http_resp_free(&r);
    http_get(p, "/v1/databases/default", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "name"), "b");
    http_resp_free(&r);
}
END_TEST

START_TEST(dotenv_read_and_env_wins)
{
    ck_assert_int_eq(write_file(fixture_dir, ".env",
                                "# settings for the test\n"
                                "export SQLGATE_DATABASES=envdb\n"
                                "ENVDB_DB_PATH=\"./env.db\"\n"
                                "SQLGATE_MAX_ROWS=1\n"
                                "SQLGATE_LISTEN=127.0.0.1:1\n"
                                "\n"),
                     0);
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", "SQLGATE_MAX_ROWS=2", NULL};
    proc *p = fixture_start(env, true);
    http_resp r;
    http_get(p, "/v1/databases", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "default"), "envdb");
    ck_assert_str_eq(jstr(r.json, "databases.0.name"), "envdb");
    http_resp_free(&r);
    http_postf(p, "/v1/query", &r, "{s:s}", "sql",
               "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5) "
               "SELECT x FROM c");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.row_count", -1), 2);
    http_resp_free(&r);
    ck_assert(file_exists(fixture_dir, "env.db"));
}
END_TEST

START_TEST(sqlite_url_and_memory)
{
    char db[600], var[700];
    snprintf(var, sizeof var, "CORE_DB_URL=sqlite://%s", path_in_dir("u.db", db, sizeof db));
    const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", "SQLGATE_DATABASES=core,mem", var,
                               "MEM_DB_PATH=:memory:", NULL};
    proc *p = fixture_start(env, true);
    http_resp r;
    http_get(p, "/v1/databases/core", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "driver"), "sqlite");
    http_resp_free(&r);
    http_postf(p, "/v1/databases/mem/query", &r, "{s:s}", "sql", "SELECT 40 + 2 AS v");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.v", -1), 42);
    http_resp_free(&r);
    ck_assert_msg(file_exists(NULL, db), "%s was not created", db);
}
END_TEST

START_TEST(read_only_database)
{
    static const char *const rw[] = {"SQLGATE_LISTEN=127.0.0.1:0", "SQLGATE_DATABASES=ro",
                                     "RO_DB_PATH=./ro.db", NULL};
    proc *p = fixture_start(rw, true);
    http_resp r;
    http_postf(p, "/v1/query", &r, "{s:s}", "sql",
               "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (7)");
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
    ck_assert_int_eq(proc_signal(p, SIGTERM), 0);
    ck_assert_int_eq(proc_wait_exit(p, 15000), 0);

    static const char *const ro[] = {"SQLGATE_LISTEN=127.0.0.1:0", "SQLGATE_DATABASES=ro",
                                     "RO_DB_PATH=./ro.db", "RO_DB_READ_ONLY=YES", NULL};
    p = fixture_start(ro, true);
    http_get(p, "/v1/databases/ro", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert(json_is_true(jget(r.json, "read_only")));
    http_resp_free(&r);
    http_postf(p, "/v1/query", &r, "{s:s}", "sql", "SELECT x FROM t");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.x", -1), 7);
    http_resp_free(&r);
    http_postf(p, "/v1/query", &r, "{s:s}", "sql", "INSERT INTO t VALUES (8)");
    ASSERT_ERROR(&r, 400, "SQL_ERROR");
    http_resp_free(&r);
}
END_TEST

/* ===== databases down at start ============================================== */

static void check_down_entry(const json_t *e, bool critical)
{
    ck_assert_msg(json_is_object(e), "no entry for the down database");
    ck_assert(json_is_false(jget(e, "healthy")));
    ck_assert_str_eq(jstr(e, "state"), "down");
    ck_assert(critical ? json_is_true(jget(e, "critical")) : json_is_false(jget(e, "critical")));
    ck_assert_str_eq(jstr(e, "error.code"), "DB_UNAVAILABLE");
    ck_assert_msg(jstr(e, "error.message") != NULL && jstr(e, "error.message")[0] != '\0',
                  "no reason given");
    ck_assert_msg(json_is_object(jget(e, "pool")), "no pool figures");
}

static void check_db_unavailable(proc *p)
{
    http_resp r;
    int64_t t0 = now_ms();
    http_postf(p, "/v1/databases/b/query", &r, "{s:s}", "sql", "SELECT 1");
    int64_t took = now_ms() - t0;
    ASSERT_ERROR(&r, 503, "DB_UNAVAILABLE");
    assert_retry_after_seconds(&r);
    ck_assert_msg(took < 3000, "did not fail fast: %lld ms", (long long)took);
    http_resp_free(&r);

    http_postf(p, "/v1/databases/a/query", &r, "{s:s}", "sql", "SELECT 1 AS one");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.one", -1), 1);
    http_resp_free(&r);
}

START_TEST(down_at_start_non_critical)
{
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0",
                                      "SQLGATE_DATABASES=a,b",
                                      "A_DB_PATH=./a.db",
                                      "B_DB_PATH=/nonexistent-dir/x.db",
                                      "B_DB_CRITICAL=false",
                                      "SQLGATE_DEFAULT_DATABASE=a",
                                      NULL};
    proc *p = fixture_start(env, true);
    json_t *report = proc_wait_db_state(p, "b", "down", 10000);
    ck_assert_msg(report != NULL, "b never reported down");
    json_decref(report);

    http_resp r;
    http_get(p, "/health", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert(json_is_true(jget(r.json, "healthy")));
    ck_assert_str_eq(jstr(r.json, "status"), "degraded");
    ck_assert_str_eq(jstr(r.json, "databases.a.state"), "ready");
    check_down_entry(jget(r.json, "databases.b"), false);
    http_resp_free(&r);

    http_get(p, "/health/ready", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "status"), "degraded");
    http_resp_free(&r);

    http_get(p, "/health/b", &r);
    ASSERT_STATUS(&r, 503);
    ck_assert_str_eq(jstr(r.json, "state"), "down");
    ck_assert_str_eq(jstr(r.json, "error.code"), "DB_UNAVAILABLE");
    assert_retry_after_seconds(&r);
    http_resp_free(&r);

    http_get(p, "/v1/databases/b", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "state"), "down");
    http_resp_free(&r);

    check_db_unavailable(p);
}
END_TEST

START_TEST(down_at_start_critical)
{
    static const char *const env[] = {
        "SQLGATE_LISTEN=127.0.0.1:0",      "SQLGATE_DATABASES=a,b",      "A_DB_PATH=./a.db",
        "B_DB_PATH=/nonexistent-dir/x.db", "SQLGATE_DEFAULT_DATABASE=a", NULL};
    proc *p = fixture_start(env, false);
    json_t *report = proc_wait_db_state(p, "b", "down", 10000);
    ck_assert_msg(report != NULL, "b never reported down");
    json_decref(report);

    http_resp r;
    http_get(p, "/health", &r);
    ASSERT_STATUS(&r, 503);
    assert_retry_after_seconds(&r);
    ck_assert(json_is_false(jget(r.json, "healthy")));
    ck_assert_str_eq(jstr(r.json, "status"), "down");
    check_down_entry(jget(r.json, "databases.b"), true);
    http_resp_free(&r);

    http_get(p, "/health/ready", &r);
    ASSERT_STATUS(&r, 503);
    ck_assert(json_is_false(jget(r.json, "healthy")));
    ck_assert(json_is_object(jget(r.json, "databases.b")));
    ck_assert_msg(jget(r.json, "databases.b.pool") == NULL, "pool figures in /health/ready");
    assert_retry_after_seconds(&r);
    http_resp_free(&r);

    http_get(p, "/health/live", &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);

    check_db_unavailable(p);
}
END_TEST

/* ===== embedded default and logs ============================================= */

START_TEST(embedded_default_and_json_logs)
{
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", NULL};
    proc *p = fixture_start(env, true);
    ck_assert(file_exists(fixture_dir, "var/core.db"));
    ck_assert(file_exists(fixture_dir, "var/app.db"));
    http_resp r;
    http_postf(p, "/v1/query", &r, "{s:s}", "sql", "SELECT count(*) AS n FROM users");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), 3);
    http_resp_free(&r);

    char *err = proc_stderr(p);
    ck_assert_ptr_nonnull(err);
    size_t lines = 0;
    char *save = NULL;
    for (char *line = strtok_r(err, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        json_t *obj = json_loads(line, 0, NULL);
        ck_assert_msg(json_is_object(obj), "log line is not a JSON object: %s", line);
        ck_assert_msg(json_is_string(json_object_get(obj, "time")), "no time: %s", line);
        ck_assert_msg(json_is_string(json_object_get(obj, "level")), "no level: %s", line);
        ck_assert_msg(json_is_string(json_object_get(obj, "msg")), "no msg: %s", line);
        json_decref(obj);
        lines++;
    }
    ck_assert_uint_gt(lines, 0);
    free(err);

    /* the log says that the embedded databases are used */
    err = proc_stderr(p);
    bool says = false;
    for (const char *s = err; *s != '\0' && !says; s++) {
        says = strncasecmp(s, "embedded", 8) == 0 || strncmp(s, "var/core.db", 11) == 0;
    }
    ck_assert_msg(says, "the log does not mention the embedded databases:\n%s", err);
    free(err);
}
END_TEST

START_TEST(embedded_data_persists)
{
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", NULL};
    proc *p = fixture_start(env, true);
    http_resp r;
    http_postf(p, "/v1/query", &r, "{s:s}", "sql",
               "INSERT INTO users(id, name, email) VALUES (4, 'Edsger Dijkstra', NULL)");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "rows_affected", -1), 1);
    http_resp_free(&r);
    ck_assert_int_eq(proc_signal(p, SIGTERM), 0);
    ck_assert_int_eq(proc_wait_exit(p, 15000), 0);

    /* second start in the same directory: no new demo rows, ours kept */
    p = fixture_start(env, true);
    http_postf(p, "/v1/query", &r, "{s:s}", "sql", "SELECT count(*) AS n FROM users");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), 4);
    http_resp_free(&r);
    http_postf(p, "/v1/query", &r, "{s:s, s:s}", "sql", "SELECT count(*) AS n FROM orders",
               "database", "app");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), 3);
    http_resp_free(&r);
}
END_TEST

/* ===== TLS ==================================================================== */

/* A self-signed certificate for 127.0.0.1 and localhost, valid 2000-2999,
 * made for these tests only. */
static const char TEST_CERT[] = "-----BEGIN CERTIFICATE-----\n"
                                "MIIBYDCCAQegAwIBAgIUbRpHNInYe0VXQMnXY9h+th2zMGIwCgYIKoZIzj0EAwIw\n"
                                "FzEVMBMGA1UEAwwMc3FsZ2F0ZS10ZXN0MCAXDTAwMDEwMTAwMDAwMFoYDzI5OTkx\n"
                                "MjMxMDAwMDAwWjAXMRUwEwYDVQQDDAxzcWxnYXRlLXRlc3QwWTATBgcqhkjOPQIB\n"
                                "BggqhkjOPQMBBwNCAAQ8VGvZxmDdMdx1hTB/OIJmKD7+Z9Qek3sc8srJRrg9rjhQ\n"
                                "wmX16R7MfEs7Genm9g/1GLOwaYj1/OrXLGz88lLloy8wLTAaBgNVHREEEzARhwR/\n"
                                "AAABgglsb2NhbGhvc3QwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBE\n"
                                "AiB9Ecu7egBxIlYgTAfs/r7UU2Fj9cUF+4VkGijDQVK3/AIgYFp7O+Ou48AIfmnx\n"
                                "QZCxEr4Ww2+c418YHUtLRC7rfAk=\n"
                                "-----END CERTIFICATE-----\n";

#define TEST_KEY_SECRET_LINE "LsydEmOHRm8efev3GVWW/h89zB2hRANCAAQ8VGvZxmDdMdx1hTB/OIJmKD7+Z9Qe"

static const char TEST_KEY[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQghWMC9mAkP2sQn8C9\n" TEST_KEY_SECRET_LINE "\n"
    "k3sc8srJRrg9rjhQwmX16R7MfEs7Genm9g/1GLOwaYj1/OrXLGz88lLl\n"
    "-----END PRIVATE KEY-----\n";

static int https_get(proc *p, const char *path, http_resp *r)
{
    char url[256];
    snprintf(url, sizeof url, "https://127.0.0.1:%d%s", proc_port(p), path);
    http_req rq = {.method = "GET", .url = url, .ca_pem = TEST_CERT, .timeout_ms = 5000};
    return http_do(&rq, r);
}

START_TEST(tls_listener)
{
    ck_assert_int_eq(write_file(fixture_dir, "cert.pem", TEST_CERT), 0);
    ck_assert_int_eq(write_file(fixture_dir, "key.pem", TEST_KEY), 0);
    char cert[600], key[600], v1[700], v2[700];
    snprintf(v1, sizeof v1, "SQLGATE_TLS_CERT_FILE=%s", path_in_dir("cert.pem", cert, sizeof cert));
    snprintf(v2, sizeof v2, "SQLGATE_TLS_KEY_FILE=%s", path_in_dir("key.pem", key, sizeof key));
    const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", v1, v2, NULL};
    proc *p = fixture_start(env, false);

    http_resp r;
    int64_t deadline = now_ms() + 15000;
    for (;;) {
        https_get(p, "/health/ready", &r);
        if (r.status == 200 || now_ms() >= deadline) {
            break;
        }
        http_resp_free(&r);
        sleep_ms(100);
    }
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);

    https_get(p, "/v1/databases", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "default"), "core");
    http_resp_free(&r);

    /* HTTPS only: plain HTTP gets no answer */
    http_get(p, "/health/live", &r);
    ck_assert_msg(r.status != 200, "plain HTTP was served");
    http_resp_free(&r);

    char *err = proc_stderr(p);
    ASSERT_NO_SECRET(err, TEST_KEY_SECRET_LINE);
    free(err);
}
END_TEST

START_TEST(tls_needs_both_files)
{
    ck_assert_int_eq(write_file(fixture_dir, "cert.pem", TEST_CERT), 0);
    char cert[600], v1[700];
    snprintf(v1, sizeof v1, "SQLGATE_TLS_CERT_FILE=%s", path_in_dir("cert.pem", cert, sizeof cert));
    const char *const only_cert[] = {"SQLGATE_LISTEN=127.0.0.1:0", v1, NULL};
    char *err = run_refused(only_cert);
    ASSERT_NAMES(err, "SQLGATE_TLS_");
    free(err);

    const char *const missing_key[] = {"SQLGATE_LISTEN=127.0.0.1:0", v1,
                                       "SQLGATE_TLS_KEY_FILE=/nonexistent-dir/key.pem", NULL};
    err = run_refused(missing_key);
    ASSERT_NAMES(err, "SQLGATE_TLS_KEY_FILE");
    free(err);
}
END_TEST

START_TEST(tls_unusable_files)
{
    /* Readable files that are not a PEM certificate and key: refused before
     * listening, as a configuration error naming the variables. */
    ck_assert_int_eq(write_file(fixture_dir, "cert.pem", "not a certificate\n"), 0);
    ck_assert_int_eq(write_file(fixture_dir, "key.pem", "not a key\n"), 0);
    char cert[600], key[600], v1[700], v2[700];
    snprintf(v1, sizeof v1, "SQLGATE_TLS_CERT_FILE=%s", path_in_dir("cert.pem", cert, sizeof cert));
    snprintf(v2, sizeof v2, "SQLGATE_TLS_KEY_FILE=%s", path_in_dir("key.pem", key, sizeof key));
    const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", v1, v2, NULL};
    char *err = run_refused(env);
    ASSERT_NAMES(err, "SQLGATE_TLS_CERT_FILE");
    free(err);
}
END_TEST

static Suite *config_start_suite(void)
{
    Suite *s = suite_create("config_start");

    TCase *tc = tcase_create("refused");
    tcase_add_checked_fixture(tc, fixture_setup, fixture_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, every_problem_reported);
    tcase_add_test(tc, every_problem_reported_service_wide);
    tcase_add_test(tc, bad_database_names);
    tcase_add_test(tc, listen_host_name_refused);
    tcase_add_test(tc, default_must_name_a_database);
    tcase_add_test(tc, secret_token_file_not_printed);
    tcase_add_test(tc, secret_in_url_not_printed);
    tcase_add_test(tc, secret_password_not_printed);
    tcase_add_test(tc, non_loopback_needs_tokens);
    tcase_add_test(tc, token_file_works);
    tcase_add_test(tc, tls_needs_both_files);
    tcase_add_test(tc, tls_unusable_files);
    suite_add_tcase(s, tc);

    tc = tcase_create("modes");
    tcase_add_checked_fixture(tc, fixture_setup, fixture_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, legacy_single_database);
    tcase_add_test(tc, single_named_is_default);
    tcase_add_test(tc, two_without_default);
    tcase_add_test(tc, explicit_default);
    tcase_add_test(tc, dotenv_read_and_env_wins);
    tcase_add_test(tc, sqlite_url_and_memory);
    tcase_add_test(tc, read_only_database);
    tcase_add_test(tc, embedded_default_and_json_logs);
    tcase_add_test(tc, embedded_data_persists);
    tcase_add_test(tc, tls_listener);
    suite_add_tcase(s, tc);

    tc = tcase_create("down_at_start");
    tcase_add_checked_fixture(tc, fixture_setup, fixture_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, down_at_start_non_critical);
    tcase_add_test(tc, down_at_start_critical);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    harness_init();
    return check_run(config_start_suite());
}
