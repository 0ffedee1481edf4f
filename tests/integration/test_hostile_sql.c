/* Integration: hostile SQL (issue 17, points 1, 4 and 9), on real sockets
 * with the real sqlgate binary.
 *
 * A caller with an ordinary query token tries to:
 *   - change process-wide SQLite settings (PRAGMA hard_heap_limit, ...),
 *     attach or write files (ATTACH, VACUUM INTO), load an extension: each is
 *     refused with SQL_ERROR naming what was refused, and every database
 *     keeps serving;
 *   - leave session state for the next caller of the same pooled connection
 *     (pool size 1): a TEMP VIEW shadowing a table on SQLite; TEMP objects,
 *     #temp tables, SET options, USE and EXECUTE AS on the SQL Server path
 *     (the TDS test server, tests/tds, which resets a session as SQL Server
 *     does for sp_reset_connection);
 *   - read secrets back from the logs: literals quoted in a database's error
 *     message are redacted in the log line (the caller's response keeps them).
 * And sqlgate itself: the private freetds.conf lands in a TMPDIR of any
 * length, and the embedded ./var/ and its database files are owner-only.
 *
 * Every test gets its own directory, sqlgate and, where needed, its own
 * tds-testserver ($TDS_TESTSERVER) as a child with PR_SET_PDEATHSIG.
 */
#include <check.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "harness.h"
#include "tds_child.h"

#define TOKEN_A      "hostile-sql-token-A-9f3k2q"
#define TOKEN_B      "hostile-sql-token-B-7q1m8w"
#define TDS_USER     "sqlgate_app"
#define TDS_PASSWORD "Pw-SECRET-5521"
#define TDS_DB       "testdb"
#define CORE_Q       "/v1/databases/core/query"
#define APP_Q        "/v1/databases/app/query"

/* --- The TDS test server as a child process ---------------------------------- */

/* Starts tds-testserver on a free port in fixture_dir. */
static void tds_start(tds_child *t)
{
    const char *const args[] = {
        "--user",   TDS_USER,   "--password", TDS_PASSWORD, "--database", TDS_DB,
        "--sqlite", ":memory:", "--port",     "0",          NULL};
    tds_child_start(t, fixture_dir, args);
}

/* --- Helpers ------------------------------------------------------------------ */

/* Listen address and the two tokens of every run. */
static void env_base(env_list *e)
{
    memset(e, 0, sizeof *e);
    env_add(e, "SQLGATE_LISTEN=127.0.0.1:0");
    env_add(e, "SQLGATE_API_TOKENS=" TOKEN_A "," TOKEN_B);
    env_add(e, "FREETDSCONF=/dev/null");
}

static proc *start_svc(env_list *e)
{
    return fixture_start_env(e, true);
}

/* The embedded databases core and app in fixture_dir/var. */
static proc *start_embedded(void)
{
    env_list e;
    env_base(&e);
    return start_svc(&e);
}

/* core on the TDS test server with one pooled connection (every request
 * reuses it), app on SQLite. extra: one more variable or NULL. */
static proc *start_tds(const char *extra)
{
    tds_start(&fixture_tds);
    env_list e;
    env_base(&e);
    env_add(&e, "SQLGATE_DATABASES=core,app");
    env_add(&e, "APP_DB_PATH=%s/app.db", fixture_dir);
    env_add(&e, "CORE_DB_HOST=127.0.0.1");
    env_add(&e, "CORE_DB_PORT=%d", fixture_tds.port);
    env_add(&e, "CORE_DB_USER=" TDS_USER);
    env_add(&e, "CORE_DB_PASSWORD=" TDS_PASSWORD);
    env_add(&e, "CORE_DB_NAME=" TDS_DB);
    env_add(&e, "CORE_DB_TDS_VERSION=7.4");
    env_add(&e, "CORE_DB_POOL_MAX=1");
    if (extra != NULL)
        env_add(&e, "%s", extra);
    else
        env_add(&e, "TMPDIR=%s", fixture_dir);
    return start_svc(&e);
}

/* POSTs {"sql": sql} to path with token. */
static int post_sql(const proc *p, const char *token, const char *path, const char *sql,
                    http_resp *r)
{
    json_t *body = json_pack("{s:s}", "sql", sql);
    ck_assert_ptr_nonnull(body);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    ck_assert_ptr_nonnull(text);
    char auth[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    const char *const headers[] = {auth, "Content-Type: application/json", NULL};
    int rc = http_send(p, "POST", path, headers, text, strlen(text), r);
    free(text);
    return rc;
}

static void run_ok(const proc *p, const char *token, const char *path, const char *sql)
{
    http_resp r;
    post_sql(p, token, path, sql, &r);
    char d[600];
    ck_assert_msg(r.status == 200, "%s: %s", sql, resp_desc(&r, d, sizeof d));
    http_resp_free(&r);
}

/* The SQL is refused with 400 SQL_ERROR whose message names `want`. */
static void refused(const proc *p, const char *path, const char *sql, const char *want)
{
    http_resp r;
    post_sql(p, TOKEN_A, path, sql, &r);
    char d[600];
    ck_assert_msg(r.status == 400, "%s was not refused: %s", sql, resp_desc(&r, d, sizeof d));
    ASSERT_ERROR(&r, 400, "SQL_ERROR");
    const char *msg = jstr(r.json, "error.message");
    ck_assert_msg(msg != NULL && strstr(msg, want) != NULL, "%s: message \"%s\" lacks \"%s\"", sql,
                  msg ? msg : "", want);
    http_resp_free(&r);
}

/* The first value of the first row of `sql`, run with token, as a new string
 * (numbers printed as integers). */
static char *first_value(const proc *p, const char *token, const char *path, const char *sql)
{
    http_resp r;
    post_sql(p, token, path, sql, &r);
    char d[600];
    ck_assert_msg(r.status == 200, "%s: %s", sql, resp_desc(&r, d, sizeof d));
    json_t *row = jget(r.json, "results.0.rows.0");
    ck_assert_msg(json_is_object(row), "%s: no row", sql);
    json_t *v = json_object_iter_value(json_object_iter(row));
    char *out = NULL;
    char num[32];
    if (json_is_string(v)) {
        out = strdup(json_string_value(v));
    } else if (json_is_integer(v)) {
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        out = strdup(num);
    }
    ck_assert_msg(out != NULL, "%s: first value is neither text nor an integer", sql);
    http_resp_free(&r);
    return out;
}

static void expect_value(const proc *p, const char *token, const char *path, const char *sql,
                         const char *want)
{
    char *got = first_value(p, token, path, sql);
    ck_assert_msg(strcmp(got, want) == 0, "%s gave %s, expected %s", sql, got, want);
    free(got);
}

/* --- 1. Process-wide settings from SQL ----------------------------------------- */

START_TEST(pragma_process_settings_refused)
{
    proc *p = start_embedded();
    static const struct {
        const char *sql;
        const char *want;
    } cases[] = {
        {"PRAGMA hard_heap_limit=200000", "PRAGMA hard_heap_limit is not allowed"},
        {"PRAGMA soft_heap_limit=1", "PRAGMA soft_heap_limit"},
        {"PRAGMA temp_store_directory='/tmp'", "PRAGMA temp_store_directory"},
        {"PRAGMA data_store_directory='/tmp'", "PRAGMA data_store_directory"},
        {"PRAGMA threads=8", "PRAGMA threads"},
        {"PRAGMA mmap_size=268435456", "PRAGMA mmap_size"},
        {"PRAGMA cache_size=-2000000", "PRAGMA cache_size"},
        {"PRAGMA foreign_keys=OFF", "PRAGMA foreign_keys"},
        {"SELECT * FROM pragma_hard_heap_limit", "PRAGMA hard_heap_limit"},
        {"SELECT load_extension('/tmp/evil')", "function load_extension is not allowed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        refused(p, CORE_Q, cases[i].sql, cases[i].want);

    /* Every database of the process still serves, and says so. */
    expect_value(p, TOKEN_B, APP_Q, "SELECT count(*) AS n FROM orders", "3");
    expect_value(p, TOKEN_B, CORE_Q, "SELECT count(*) AS n FROM users", "3");
    expect_value(p, TOKEN_B, APP_Q, "SELECT randomblob(4000000) IS NOT NULL AS ok", "1");
    http_resp r;
    http_get(p, "/health/ready", &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);

    /* Reading the schema is allowed. */
    expect_value(p, TOKEN_A, CORE_Q, "SELECT count(*) AS n FROM pragma_table_info('users')", "4");
    run_ok(p, TOKEN_A, CORE_Q, "PRAGMA table_info(users)");
    run_ok(p, TOKEN_A, CORE_Q, "PRAGMA index_list(users)");
}
END_TEST

START_TEST(attach_and_vacuum_into_refused)
{
    proc *p = start_embedded();
    char sql[1200], path[1100];
    snprintf(path, sizeof path, "%s/stolen.db", fixture_dir);
    snprintf(sql, sizeof sql, "ATTACH '%s' AS s", path);
    refused(p, CORE_Q, sql, "ATTACH is not allowed");
    refused(p, CORE_Q, "ATTACH ':memory:' AS s", "ATTACH is not allowed");
    snprintf(path, sizeof path, "%s/copy.db", fixture_dir);
    snprintf(sql, sizeof sql, "VACUUM INTO '%s'", path);
    refused(p, CORE_Q, sql, "ATTACH is not allowed");
    refused(p, CORE_Q, "DETACH main", "DETACH is not allowed");
    ck_assert(!file_exists(fixture_dir, "stolen.db"));
    ck_assert(!file_exists(fixture_dir, "copy.db"));
    run_ok(p, TOKEN_A, CORE_Q, "VACUUM");
    expect_value(p, TOKEN_A, CORE_Q, "SELECT count(*) AS n FROM users", "3");
}
END_TEST

/* --- 4. Session state between callers ------------------------------------------ */

START_TEST(sqlite_temp_objects_do_not_leak)
{
    env_list e;
    env_base(&e);
    env_add(&e, "SQLGATE_DATABASES=core");
    env_add(&e, "CORE_DB_PATH=%s/core.db", fixture_dir);
    env_add(&e, "CORE_DB_POOL_MAX=1");
    proc *p = start_svc(&e);
    run_ok(p, TOKEN_A, CORE_Q,
           "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);"
           "INSERT INTO users VALUES (1, 'Ada')");
    static const char *const attacks[] = {
        "CREATE TEMP VIEW users AS SELECT 666 AS id, 'attacker' AS name",
        "CREATE TEMP TABLE users (id, name); INSERT INTO users VALUES (666, 'attacker')",
        "CREATE TABLE temp.users AS SELECT 666 AS id, 'attacker' AS name",
    };
    for (size_t i = 0; i < sizeof attacks / sizeof attacks[0]; i++) {
        run_ok(p, TOKEN_A, CORE_Q, attacks[i]);
        expect_value(p, TOKEN_B, CORE_Q, "SELECT id, name FROM users", "1");
        expect_value(p, TOKEN_B, CORE_Q, "SELECT name FROM users", "Ada");
    }
    /* The last rowid one caller inserted is not shown to the next. */
    run_ok(p, TOKEN_A, CORE_Q, "INSERT INTO users VALUES (4242, 'Grace')");
    expect_value(p, TOKEN_B, CORE_Q, "SELECT last_insert_rowid() AS r", "0");
}
END_TEST

START_TEST(tds_session_does_not_leak)
{
    proc *p = start_tds(NULL);
    run_ok(p, TOKEN_A, CORE_Q,
           "CREATE TABLE users (id INT, name NVARCHAR(50)); INSERT INTO users VALUES (1, N'Ada')");
    char *spid = first_value(p, TOKEN_B, CORE_Q, "SELECT @@SPID AS spid");

    run_ok(p, TOKEN_A, CORE_Q, "CREATE TEMP VIEW users AS SELECT 666 AS id, 'attacker' AS name");
    expect_value(p, TOKEN_B, CORE_Q, "SELECT id, name FROM users", "1");

    run_ok(p, TOKEN_A, CORE_Q,
           "CREATE TABLE #stash (secret NVARCHAR(50)); INSERT INTO #stash VALUES (N'left-over')");
    http_resp r;
    post_sql(p, TOKEN_B, CORE_Q, "SELECT secret FROM #stash", &r);
    ASSERT_ERROR(&r, 400, "SQL_ERROR");
    ck_assert_int_eq(jint(r.json, "error.sql.number", 0), 208);
    http_resp_free(&r);

    run_ok(p, TOKEN_A, CORE_Q, "SET LANGUAGE Deutsch");
    expect_value(p, TOKEN_B, CORE_Q, "SELECT @@LANGUAGE AS l", "us_english");
    run_ok(p, TOKEN_A, CORE_Q, "SET LOCK_TIMEOUT 1");
    expect_value(p, TOKEN_B, CORE_Q, "SELECT @@LOCK_TIMEOUT AS t", "-1");
    run_ok(p, TOKEN_A, CORE_Q, "USE tempdb");
    expect_value(p, TOKEN_B, CORE_Q, "SELECT DB_NAME() AS d", TDS_DB);

    /* All of it on the one pooled connection: reset, not reconnected. */
    expect_value(p, TOKEN_B, CORE_Q, "SELECT @@SPID AS spid", spid);

    /* What a reset does not undo (here an impersonation) closes the
     * connection: a new session follows. */
    post_sql(p, TOKEN_A, CORE_Q, "EXECUTE AS USER = 'app_admin'", &r);
    http_resp_free(&r);
    char *after = first_value(p, TOKEN_B, CORE_Q, "SELECT @@SPID AS spid");
    ck_assert_msg(strcmp(after, spid) != 0, "the impersonated session (%s) was reused", spid);
    free(after);
    free(spid);
}
END_TEST

/* --- 9. Smaller leaks ------------------------------------------------------------ */

START_TEST(error_literals_redacted_in_log)
{
    proc *p = start_embedded();
    http_resp r;
    post_sql(p, TOKEN_A, CORE_Q,
             "SELECT * FROM users WHERE name = 'sk_live_SECRET123' 'sk_live_SECRET123'", &r);
    ASSERT_ERROR(&r, 400, "SQL_ERROR");
    /* The caller sees the server's message about its own SQL. */
    ck_assert_ptr_nonnull(strstr(jstr(r.json, "error.message"), "sk_live_SECRET123"));
    const char *id = jstr(r.json, "error.request_id");
    ck_assert_ptr_nonnull(id);
    char *rid = strdup(id);
    http_resp_free(&r);

    ck_assert(proc_stderr_wait(p, rid, scaled_ms(5000)));
    char *log = proc_stderr(p);
    const char *const kv[] = {"msg", "query failed", "request_id", rid, NULL};
    json_t *line = log_find(log, kv);
    ck_assert_msg(line != NULL, "no \"query failed\" line for %s in:\n%s", rid, log);
    const char *msg = jstr(line, "message");
    ck_assert_msg(msg != NULL && strstr(msg, "near \"\xE2\x80\xA6\"") != NULL, "logged message: %s",
                  msg ? msg : "(none)");
    ck_assert_msg(strstr(log, "SECRET123") == NULL, "a literal reached the log:\n%s", log);
    json_decref(line);
    free(log);
    free(rid);
}
END_TEST

START_TEST(freetds_conf_with_long_tmpdir)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp,
             "%s/a-temporary-directory-whose-name-is-much-longer-than-forty-characters",
             fixture_dir);
    ck_assert_int_eq(mkdir(tmp, 0700), 0);
    char extra[1200];
    snprintf(extra, sizeof extra, "TMPDIR=%s", tmp);
    /* ENCRYPT=off is only in freetds.conf: sqlgate must write its own. */
    tds_start(&fixture_tds);
    env_list e;
    env_base(&e);
    env_add(&e, "SQLGATE_DATABASES=core");
    env_add(&e, "CORE_DB_HOST=127.0.0.1");
    env_add(&e, "CORE_DB_PORT=%d", fixture_tds.port);
    env_add(&e, "CORE_DB_USER=" TDS_USER);
    env_add(&e, "CORE_DB_PASSWORD=" TDS_PASSWORD);
    env_add(&e, "CORE_DB_NAME=" TDS_DB);
    env_add(&e, "CORE_DB_TDS_VERSION=7.4");
    env_add(&e, "CORE_DB_ENCRYPT=off");
    env_add(&e, "%s", extra);
    proc *p = start_svc(&e);
    expect_value(p, TOKEN_A, CORE_Q, "SELECT 1 AS one", "1");
    DIR *d = opendir(tmp);
    ck_assert_ptr_nonnull(d);
    bool found = false;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        found |= strncmp(de->d_name, "sqlgate-freetds-", 16) == 0;
    closedir(d);
    ck_assert_msg(found, "no sqlgate-freetds-* file in %s", tmp);
}
END_TEST

static void assert_mode(const char *rel, mode_t want)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", fixture_dir, rel);
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0, "%s: %s", rel, strerror(errno));
    ck_assert_msg((st.st_mode & 0777) == want, "%s has mode %03o, expected %03o", rel,
                  (unsigned)(st.st_mode & 0777), (unsigned)want);
}

START_TEST(embedded_files_owner_only)
{
    umask(022); /* the usual umask, which gave 0755 and 0644 */
    proc *p = start_embedded();
    run_ok(p, TOKEN_A, CORE_Q, "INSERT INTO users (name) VALUES ('Edsger')");
    run_ok(p, TOKEN_A, APP_Q, "DELETE FROM orders WHERE id = 3");
    assert_mode("var", 0700);
    static const char *const files[] = {"var/core.db", "var/core.db-wal", "var/core.db-shm",
                                        "var/app.db",  "var/app.db-wal",  "var/app.db-shm"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        assert_mode(files[i], 0600);
    (void)p;
}
END_TEST

static Suite *hostile_sql_suite(void)
{
    Suite *s = suite_create("hostile_sql");
    TCase *tc = tcase_create("hostile_sql");
    tcase_add_checked_fixture(tc, fixture_tds_setup, fixture_tds_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, pragma_process_settings_refused);
    tcase_add_test(tc, attach_and_vacuum_into_refused);
    tcase_add_test(tc, sqlite_temp_objects_do_not_leak);
    tcase_add_test(tc, tds_session_does_not_leak);
    tcase_add_test(tc, error_literals_redacted_in_log);
    tcase_add_test(tc, freetds_conf_with_long_tmpdir);
    tcase_add_test(tc, embedded_files_owner_only);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    harness_init();
    return check_run(hostile_sql_suite());
}
