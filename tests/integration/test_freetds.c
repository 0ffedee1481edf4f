/* Integration: sqlgate with a SQL Server database through FreeTDS, against the
 * project's standalone TDS test server (tests/tds, SQLite behind TDS 7.x).
 *
 * Every test gets a fresh directory, its own tds-testserver ($TDS_TESTSERVER,
 * SQLite :memory:, ports from --port-file/--control-port-file) and its own
 * sqlgate with two databases: "core" on the TDS server and "app" on SQLite.
 * The TDS server is a child of the test process with PR_SET_PDEATHSIG, so it
 * dies with the test even when Check ends a failed test with _exit(); the
 * teardown stops it otherwise. sqlgate runs with FREETDSCONF=/dev/null and
 * TMPDIR in the test's directory.
 *
 * The password of the TDS login contains SECRET; no log line, health report or
 * error may ever show it.
 */
#include <check.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "harness.h"
#include "tds_child.h"

#define TDS_USER     "sa"
#define TDS_PASSWORD "Pw-SECRET-8642"
#define TDS_DB       "testdb"
#define TDS_RO_USER  "ro_reader" /* the server's read-only login */
#define TDS_RO_PASS  "Ro-SECRET-1357"
#define CORE_Q       "/v1/databases/core/query"
#define APP_Q        "/v1/databases/app/query"

/* --- The TDS test server as a child process ---------------------------------- */

/* Starts tds-testserver on `port` (0: a free one) in fixture_dir and waits (10 s)
 * until it has written both port files. */
static void tds_start(tds_child *t, int port)
{
    char port_arg[16];
    snprintf(port_arg, sizeof port_arg, "%d", port);
    const char *const args[] = {"--readonly-user",
                                TDS_RO_USER,
                                "--readonly-password",
                                TDS_RO_PASS,
                                "--user",
                                TDS_USER,
                                "--password",
                                TDS_PASSWORD,
                                "--database",
                                TDS_DB,
                                "--sqlite",
                                ":memory:",
                                "--port",
                                port_arg,
                                NULL};
    tds_child_start(t, fixture_dir, args);
}

/* --- The service ---------------------------------------------------------------- */

/* Service-wide settings and the app database; core is up to the caller. */
static void env_base(env_list *e)
{
    memset(e, 0, sizeof *e);
    env_add(e, "SQLGATE_LISTEN=127.0.0.1:0");
    env_add(e, "SQLGATE_DATABASES=core,app");
    env_add(e, "SQLGATE_LOG_LEVEL=debug");
    env_add(e, "APP_DB_PATH=%s/app.db", fixture_dir);
    env_add(e, "FREETDSCONF=/dev/null");
    env_add(e, "TMPDIR=%s", fixture_dir);
}

/* core on the TDS server at port, with the variables one by one. */
static void env_core(env_list *e, int port, const char *password)
{
    env_add(e, "CORE_DB_HOST=127.0.0.1");
    env_add(e, "CORE_DB_PORT=%d", port);
    env_add(e, "CORE_DB_USER=" TDS_USER);
    env_add(e, "CORE_DB_PASSWORD=%s", password);
    env_add(e, "CORE_DB_NAME=" TDS_DB);
    env_add(e, "CORE_DB_TDS_VERSION=7.4");
}

static proc *start_svc(env_list *e, bool wait_ready)
{
    return fixture_start_env(e, wait_ready);
}

/* The usual run: TDS server up, core and app configured, both ready. */
static proc *start_all(const char *extra)
{
    tds_start(&fixture_tds, 0);
    env_list e;
    env_base(&e);
    env_core(&e, fixture_tds.port, TDS_PASSWORD);
    if (extra != NULL)
        env_add(&e, "%s", extra);
    return start_svc(&e, true);
}

#define ASSERT_NO_SECRET(text)                                                                     \
    ck_assert_msg(strstr((text), "SECRET") == NULL, "a password was shown:\n%s", (text))

/* POSTs {"sql": sql} to path. */
static void post_sql(const proc *p, const char *path, const char *sql, http_resp *r)
{
    http_postf(p, path, r, "{s:s}", "sql", sql);
}

static void run_ok(const proc *p, const char *sql)
{
    http_resp r;
    post_sql(p, CORE_Q, sql, &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
}

/* core is down (critical), app is fine: the shape every failed login gives. */
static void assert_core_down(const proc *p)
{
    json_t *report = proc_wait_db_state(p, "core", "down", scaled_ms(20000));
    ck_assert_msg(report != NULL, "core was never reported down");
    json_decref(report);
    report = proc_wait_db_state(p, "app", "ready", scaled_ms(20000));
    ck_assert_msg(report != NULL, "app never became ready");
    json_decref(report);

    http_resp r;
    http_get(p, "/health", &r);
    ASSERT_STATUS(&r, 503);
    ck_assert(json_is_false(jget(r.json, "healthy")));
    ck_assert_str_eq(jstr(r.json, "status"), "down");
    json_t *core = jget(r.json, "databases.core");
    ck_assert(json_is_false(jget(core, "healthy")));
    ck_assert(json_is_true(jget(core, "critical")));
    ck_assert_str_eq(jstr(core, "error.code"), "DB_UNAVAILABLE");
    const char *why = jstr(core, "error.message");
    ck_assert_msg(why != NULL && why[0] != '\0', "core is down without a reason");
    ASSERT_NO_SECRET(r.body);
    ck_assert_str_eq(jstr(r.json, "databases.app.state"), "ready");
    ck_assert(json_is_true(jget(r.json, "databases.app.healthy")));
    http_resp_free(&r);

    http_get(p, "/health/core", &r);
    ASSERT_STATUS(&r, 503);
    ASSERT_NO_SECRET(r.body);
    http_resp_free(&r);

    int64_t t0 = now_ms();
    post_sql(p, CORE_Q, "SELECT 1 AS one", &r);
    ASSERT_ERROR(&r, 503, "DB_UNAVAILABLE");
    assert_retry_after_seconds(&r);
    ASSERT_NO_SECRET(r.body);
    ck_assert_msg(now_ms() - t0 < scaled_ms(5000), "a query to a down database took %lld ms",
                  (long long)(now_ms() - t0));
    http_resp_free(&r);

    post_sql(p, APP_Q, "SELECT 40 + 2 AS v", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.v", -1), 42);
    http_resp_free(&r);

    http_get(p, "/v1/databases/core", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "driver"), "freetds");
    ASSERT_NO_SECRET(r.body);
    http_resp_free(&r);
}

/* ===== Tests ======================================================================= */

START_TEST(health_both_ready)
{
    proc *p = start_all(NULL);
    http_resp r;
    http_get(p, "/health", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert(json_is_true(jget(r.json, "healthy")));
    ck_assert_str_eq(jstr(r.json, "status"), "up");
    ck_assert_str_eq(jstr(r.json, "databases.core.state"), "ready");
    ck_assert(json_is_true(jget(r.json, "databases.core.healthy")));
    ck_assert(json_is_null(jget(r.json, "databases.core.error")));
    ck_assert_str_eq(jstr(r.json, "databases.app.state"), "ready");
    ASSERT_NO_SECRET(r.body);
    http_resp_free(&r);

    http_get(p, "/v1/databases", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "databases.0.name"), "core");
    ck_assert_str_eq(jstr(r.json, "databases.0.driver"), "freetds");
    ck_assert_str_eq(jstr(r.json, "databases.1.driver"), "sqlite");
    ASSERT_NO_SECRET(r.body);
    http_resp_free(&r);

    post_sql(p, CORE_Q, "SELECT DB_NAME() AS db, @@VERSION AS v", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "results.0.rows.0.db"), TDS_DB);
    ck_assert_ptr_nonnull(strstr(jstr(r.json, "results.0.rows.0.v"), "TDS test server"));
    http_resp_free(&r);
    ck_assert_int_ge(tds_child_stat(&fixture_tds, "logins"), 1);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

/* --- Read-only tokens on SQL Server: the read-only login's own pool -------------- */

#define TOK_RW "freetds-rw-token-0001"
#define TOK_RO "freetds-ro-token-0001"

static int post_as(proc *p, const char *token, const char *path, const char *sql, http_resp *r)
{
    char auth[96], body[512];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    json_t *j = json_pack("{s:s}", "sql", sql);
    char *text = json_dumps(j, JSON_COMPACT);
    snprintf(body, sizeof body, "%s", text);
    free(text);
    json_decref(j);
    const char *headers[] = {auth, "Content-Type: application/json", NULL};
    return http_send(p, "POST", path, headers, body, strlen(body), r);
}

static const char *login_of(proc *p, const char *token)
{
    static char name[64];
    http_resp r;
    post_as(p, token, CORE_Q, "SELECT SUSER_NAME() AS u", &r);
    ASSERT_STATUS(&r, 200);
    snprintf(name, sizeof name, "%s", jstr(r.json, "results.0.rows.0.u"));
    http_resp_free(&r);
    return name;
}

static proc *start_with_tokens(bool readonly_login)
{
    ck_assert_int_eq(write_file(fixture_dir, "tokens", TOK_RW " db=* rw\n" TOK_RO " db=* ro\n"), 0);
    tds_start(&fixture_tds, 0);
    env_list e;
    env_base(&e);
    env_core(&e, fixture_tds.port, TDS_PASSWORD);
    env_add(&e, "SQLGATE_TOKENS_FILE=%s/tokens", fixture_dir);
    if (readonly_login) {
        env_add(&e, "CORE_DB_READONLY_USER=" TDS_RO_USER);
        env_add(&e, "CORE_DB_READONLY_PASSWORD=" TDS_RO_PASS);
    }
    return start_svc(&e, true);
}

START_TEST(readonly_login_pool)
{
    proc *p = start_with_tokens(true);
    /* Each token's queries run under the login its scope chooses. */
    ck_assert_str_eq(login_of(p, TOK_RW), TDS_USER);
    ck_assert_str_eq(login_of(p, TOK_RO), TDS_RO_USER);
    ck_assert_str_eq(login_of(p, TOK_RW), TDS_USER);

    http_resp r;
    post_as(p, TOK_RW, CORE_Q, "CREATE TABLE t (x INT)", &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
    post_as(p, TOK_RO, CORE_Q, "INSERT INTO t VALUES (1)", &r);
    ASSERT_ERROR(&r, 403, "FORBIDDEN");
    ck_assert_ptr_nonnull(strstr(jstr(r.json, "error.message"), "needs rw"));
    http_resp_free(&r);
    post_as(p, TOK_RO, CORE_Q, "CREATE TABLE t2 (y INT)", &r);
    ASSERT_ERROR(&r, 403, "FORBIDDEN");
    http_resp_free(&r);
    post_as(p, TOK_RW, CORE_Q, "INSERT INTO t VALUES (7)", &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
    /* The refused writes left nothing; reads through the read-only login work. */
    post_as(p, TOK_RO, CORE_Q, "SELECT count(*) AS n, SUM(x) AS s FROM t", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), 1);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.s", -1), 7);
    http_resp_free(&r);
    /* SQLite next door enforces read-only itself. */
    post_as(p, TOK_RO, APP_Q, "CREATE TABLE a (x INTEGER)", &r);
    ASSERT_ERROR(&r, 403, "FORBIDDEN");
    http_resp_free(&r);
    post_as(p, TOK_RO, APP_Q, "SELECT 1 AS one", &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
    assert_stderr_lacks(p, "SECRET");
    char *err = proc_stderr(p);
    ck_assert_msg(strstr(err, TOK_RO) == NULL && strstr(err, TOK_RW) == NULL, "a token is logged");
    free(err);
}
END_TEST

START_TEST(readonly_without_login_is_forbidden)
{
    proc *p = start_with_tokens(false);
    http_resp r;
    post_as(p, TOK_RO, CORE_Q, "SELECT 1 AS one", &r);
    ASSERT_ERROR(&r, 403, "FORBIDDEN");
    ck_assert_ptr_nonnull(strstr(jstr(r.json, "error.message"), "CORE_DB_READONLY_USER"));
    http_resp_free(&r);
    ck_assert_str_eq(login_of(p, TOK_RW), TDS_USER);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

#define NONASCII "h\xc3\xa9llo w\xc3\xb6rld \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80"

START_TEST(types_as_json)
{
    proc *p = start_all(NULL);
    run_ok(p, "CREATE TABLE t (id INT PRIMARY KEY, i INT, bi BIGINT, si SMALLINT, ti TINYINT, "
              "b BIT, f FLOAT, r REAL, d DECIMAL(12,2), n NUMERIC(20,5), m MONEY, sm SMALLMONEY, "
              "nv NVARCHAR(50), vb VARBINARY(16), dt DATE, tm TIME(3), d2 DATETIME2, "
              "dto DATETIMEOFFSET, g UNIQUEIDENTIFIER, od DATETIME)");
    run_ok(p, "INSERT INTO t VALUES (1, 2147483647, 9007199254740993, -32768, 255, 1, 1.5, "
              "2.25, 1234567.89, -1.00001, 12.3456, -3.5, N'" NONASCII "', X'00DEADBEEF00', "
              "'2024-02-29', '23:59:58.123', '2024-01-31 12:34:56.1234567', "
              "'2024-01-31 12:34:56.5 +01:00', '6F9619FF-8B86-D011-B42D-00C04FC964FF', "
              "'2024-01-31 01:02:03.123');"
              "INSERT INTO t (id, bi, b, dto) VALUES (2, 9007199254740992, 0, "
              "'1999-12-31 23:00:00 -05:30');"
              "INSERT INTO t (id, bi) VALUES (3, -9007199254740993);"
              "INSERT INTO t (id) VALUES (4)");
    http_resp r;
    post_sql(p, CORE_Q, "SELECT * FROM t ORDER BY id", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.row_count", -1), 4);
    static const char *const cols[][2] = {{"id", "int"},
                                          {"i", "int"},
                                          {"bi", "bigint"},
                                          {"si", "smallint"},
                                          {"ti", "tinyint"},
                                          {"b", "bit"},
                                          {"f", "float"},
                                          {"r", "real"},
                                          {"d", "decimal"},
                                          {"n", "numeric"},
                                          {"m", "money"},
                                          {"sm", "smallmoney"},
                                          {"nv", "nvarchar"},
                                          {"vb", "varbinary"},
                                          {"dt", "date"},
                                          {"tm", "time"},
                                          {"d2", "datetime2"},
                                          {"dto", "datetimeoffset"},
                                          {"g", "uniqueidentifier"},
                                          {"od", "datetime"}};
    json_t *columns = jget(r.json, "results.0.columns");
    ck_assert_uint_eq(json_array_size(columns), sizeof cols / sizeof cols[0]);
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        json_t *c = json_array_get(columns, i);
        ck_assert_str_eq(jstr(c, "name"), cols[i][0]);
        ck_assert_msg(strcmp(jstr(c, "type"), cols[i][1]) == 0, "column %s typed %s, not %s",
                      cols[i][0], jstr(c, "type"), cols[i][1]);
        bool exact = strcmp(cols[i][1], "decimal") == 0 || strcmp(cols[i][1], "numeric") == 0;
        ck_assert_msg(
            exact == (jget(c, "precision") != NULL) && exact == (jget(c, "scale") != NULL),
            "column %s: precision and scale belong to decimal and numeric only", cols[i][0]);
    }
    ck_assert_int_eq(jint(json_array_get(columns, 8), "precision", -1), 12);
    ck_assert_int_eq(jint(json_array_get(columns, 8), "scale", -1), 2);
    ck_assert_int_eq(jint(json_array_get(columns, 9), "precision", -1), 20);
    ck_assert_int_eq(jint(json_array_get(columns, 9), "scale", -1), 5);
    json_t *row = jget(r.json, "results.0.rows.0");
    ck_assert(json_is_integer(jget(row, "i")));
    ck_assert_int_eq(jint(row, "i", 0), 2147483647);
    ck_assert_str_eq(jstr(row, "bi"), "9007199254740993");
    ck_assert_int_eq(jint(row, "si", 0), -32768);
    ck_assert_int_eq(jint(row, "ti", 0), 255);
    ck_assert(json_is_true(jget(row, "b")));
    ck_assert(json_is_real(jget(row, "f")) && jnum(row, "f", 0) == 1.5);
    ck_assert(jnum(row, "r", 0) == 2.25);
    ck_assert_str_eq(jstr(row, "d"), "1234567.89");
    ck_assert_str_eq(jstr(row, "n"), "-1.00001");
    ck_assert_str_eq(jstr(row, "m"), "12.3456");
    ck_assert_str_eq(jstr(row, "sm"), "-3.5000");
    ck_assert_str_eq(jstr(row, "nv"), NONASCII);
    ck_assert_str_eq(jstr(row, "vb"), "AN6tvu8A");
    ck_assert_str_eq(jstr(row, "dt"), "2024-02-29");
    ck_assert_str_eq(jstr(row, "tm"), "23:59:58.123");
    ck_assert_str_eq(jstr(row, "d2"), "2024-01-31T12:34:56.1234567");
    ck_assert_str_eq(jstr(row, "dto"), "2024-01-31T12:34:56.5000000+01:00");
    ck_assert_str_eq(jstr(row, "g"), "6F9619FF-8B86-D011-B42D-00C04FC964FF");
    ck_assert_str_eq(jstr(row, "od"), "2024-01-31T01:02:03.123");

    row = jget(r.json, "results.0.rows.1");
    ck_assert_msg(json_is_integer(jget(row, "bi")), "2^53 is not a JSON number");
    ck_assert(jint(row, "bi", 0) == 9007199254740992LL);
    ck_assert(json_is_false(jget(row, "b")));
    ck_assert_str_eq(jstr(row, "dto"), "1999-12-31T23:00:00.0000000-05:30");
    ck_assert_str_eq(jstr(r.json, "results.0.rows.2.bi"), "-9007199254740993");

    row = jget(r.json, "results.0.rows.3");
    for (size_t i = 1; i < sizeof cols / sizeof cols[0]; i++)
        ck_assert_msg(json_is_null(jget(row, cols[i][0])), "%s of the NULL row is not null",
                      cols[i][0]);
    http_resp_free(&r);

    /* rows_as arrays keeps the same values. */
    http_postf(p, CORE_Q, &r, "{s:s, s:s}", "sql", "SELECT id, bi, vb FROM t WHERE id = 1",
               "rows_as", "arrays");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.0", -1), 1);
    ck_assert_str_eq(jstr(r.json, "results.0.rows.0.1"), "9007199254740993");
    ck_assert_str_eq(jstr(r.json, "results.0.rows.0.2"), "AN6tvu8A");
    http_resp_free(&r);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

START_TEST(parameters_round_trip)
{
    proc *p = start_all(NULL);
    http_resp r;
    http_postf(p, CORE_Q, &r, "{s:s, s:{s:i, s:I, s:f, s:s, s:b, s:b, s:n}}", "sql",
               "SELECT @i AS i, @big AS big, @f AS f, @t AS t, @yes AS yes, @no AS no, @nul AS nul",
               "params", "i", 42, "big", (json_int_t)-9007199254740993LL, "f", 2.5, "t", NONASCII,
               "yes", 1, "no", 0, "nul");
    ASSERT_STATUS(&r, 200);
    json_t *row = jget(r.json, "results.0.rows.0");
    ck_assert_int_eq(jint(row, "i", 0), 42);
    ck_assert_str_eq(jstr(row, "big"), "-9007199254740993");
    ck_assert(jnum(row, "f", 0) == 2.5);
    ck_assert_str_eq(jstr(row, "t"), NONASCII);
    ck_assert(json_is_true(jget(row, "yes")));
    ck_assert(json_is_false(jget(row, "no")));
    ck_assert(json_is_null(jget(row, "nul")));
    http_resp_free(&r);

    /* Non-ASCII text stored and read back, short and longer than 4000 bytes. */
    run_ok(p, "CREATE TABLE notes (id INT, s NVARCHAR(MAX))");
    size_t n = 3000;
    char *lng = malloc(n * 3 + 1);
    ck_assert_ptr_nonnull(lng);
    for (size_t i = 0; i < n; i++)
        memcpy(lng + 3 * i, "\xe6\x97\xa5", 3);
    lng[n * 3] = '\0';
    http_postf(p, CORE_Q, &r, "{s:s, s:{s:s, s:s}}", "sql",
               "INSERT INTO notes VALUES (1, @a); INSERT INTO notes VALUES (2, @b)", "params", "a",
               NONASCII, "b", lng);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
    post_sql(p, CORE_Q, "SELECT s, LEN(s) AS n FROM notes ORDER BY id", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "results.0.rows.0.s"), NONASCII);
    ck_assert_msg(jstr(r.json, "results.0.rows.1.s") != NULL &&
                      strcmp(jstr(r.json, "results.0.rows.1.s"), lng) == 0,
                  "a 9000-byte text parameter did not come back whole (%zu bytes)",
                  jstr(r.json, "results.0.rows.1.s") ? strlen(jstr(r.json, "results.0.rows.1.s"))
                                                     : 0);
    ck_assert_int_eq(jint(r.json, "results.0.rows.1.n", -1), (json_int_t)n);
    http_resp_free(&r);
    free(lng);

    /* An empty string is bound as an empty string (db-lib would send a
     * zero-length value as NULL: the driver declares it in the statement). */
    http_postf(p, CORE_Q, &r, "{s:s, s:{s:s, s:n, s:i}}", "sql",
               "SELECT @blank AS b, LEN(@blank) AS n, @nul AS nul, @i AS i", "params", "blank", "",
               "nul", "i", 7);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "results.0.rows.0.b"), "");
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), 0);
    ck_assert(json_is_null(jget(r.json, "results.0.rows.0.nul")));
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.i", -1), 7);
    http_resp_free(&r);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

START_TEST(injection_stays_data)
{
    proc *p = start_all(NULL);
    run_ok(p, "CREATE TABLE victims (id INT, s NVARCHAR(200))");
    static const char *const evil[] = {
        "O'Brien",
        "'); DROP TABLE victims; --",
        "x' OR '1'='1",
        "\"; DELETE FROM victims; SELECT \"",
        "N'; EXEC sqlgate_test_knob 'raise_error', 50001; --",
        "@id",
        "a\\'b",
        "]; DROP TABLE victims; --",
    };
    size_t n = sizeof evil / sizeof evil[0];
    http_resp r;
    for (size_t i = 0; i < n; i++) {
        http_postf(p, CORE_Q, &r, "{s:s, s:{s:i, s:s}}", "sql",
                   "INSERT INTO victims (id, s) VALUES (@id, @s)", "params", "id", (int)i, "s",
                   evil[i]);
        ASSERT_STATUS(&r, 200);
        http_resp_free(&r);
    }
    post_sql(p, CORE_Q, "SELECT id, s FROM victims ORDER BY id", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.row_count", -1), (json_int_t)n);
    for (size_t i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof path, "results.0.rows.%zu.s", i);
        ck_assert_msg(jstr(r.json, path) != NULL && strcmp(jstr(r.json, path), evil[i]) == 0,
                      "row %zu: %s, not %s", i, jstr(r.json, path), evil[i]);
    }
    http_resp_free(&r);
    /* The quoted value matches itself only; no knob was set by the text. */
    http_postf(p, CORE_Q, &r, "{s:s, s:{s:s}}", "sql",
               "SELECT COUNT(*) AS n FROM victims WHERE s = @s", "params", "s", evil[2]);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), 1);
    http_resp_free(&r);
    char reply[128];
    tds_child_ctl(&fixture_tds, "GET raise_error", reply, sizeof reply);
    ck_assert_str_eq(reply, "OK 0");
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

START_TEST(multiple_result_sets)
{
    proc *p = start_all(NULL);
    http_resp r;
    post_sql(p, CORE_Q,
             "CREATE TABLE m (x INT); INSERT INTO m VALUES (1), (2), (3);\n"
             "SELECT x FROM m ORDER BY x;\n"
             "UPDATE m SET x = x + 10 WHERE x > 1;\n"
             "SELECT 'a' AS a, 'b' AS b;\n"
             "SELECT x FROM m WHERE x < 0",
             &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(json_array_size(jget(r.json, "results")), 3);
    ck_assert_int_eq(jint(r.json, "results.0.row_count", -1), 3);
    ck_assert_int_eq(jint(r.json, "results.0.rows.2.x", -1), 3);
    ck_assert_str_eq(jstr(r.json, "results.1.rows.0.b"), "b");
    ck_assert_int_eq(json_array_size(jget(r.json, "results.2.rows")), 0);
    ck_assert_str_eq(jstr(r.json, "results.2.columns.0.name"), "x");
    ck_assert_int_eq(jint(r.json, "rows_affected", -1), 5);
    http_resp_free(&r);

    /* SET NOCOUNT ON: the server reports no counts, rows_affected is 0, and
     * the result still comes back whole; the next request counts again. */
    post_sql(p, CORE_Q, "SET NOCOUNT ON; INSERT INTO m VALUES (4); SELECT x FROM m WHERE x = 4",
             &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "rows_affected", -1), 0);
    ck_assert_int_eq(jint(r.json, "results.0.row_count", -1), 1);
    http_resp_free(&r);
    http_postf(p, CORE_Q, &r, "{s:s, s:{s:i}}", "sql",
               "SET NOCOUNT ON; UPDATE m SET x = @v WHERE x = 4", "params", "v", 5);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "rows_affected", -1), 0);
    http_resp_free(&r);
    post_sql(p, CORE_Q, "DELETE FROM m WHERE x = 5", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "rows_affected", -1), 1);
    http_resp_free(&r);

    /* Several DML statements with parameters: every count is added (the
     * batch travels with its parameters declared in it, docs/types.md). */
    http_postf(p, CORE_Q, &r, "{s:s, s:{s:i, s:s}}", "sql",
               "INSERT INTO m VALUES (@v); INSERT INTO m VALUES (@v), (@v);\n"
               "UPDATE m SET x = x + 1 WHERE x = @v AND @note = 'it''s'",
               "params", "v", 7, "note", "it's");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "rows_affected", -1), 6);
    http_resp_free(&r);

    /* A statement failing after a result inside sp_executesql is the
     * request's error, not a 200 with the first result. */
    http_postf(p, CORE_Q, &r, "{s:s, s:{s:i}}", "sql", "SELECT @v AS v\nSELECT * FROM nosuch",
               "params", "v", 1);
    ASSERT_ERROR(&r, 400, "SQL_ERROR");
    ck_assert_int_eq(jint(r.json, "error.sql.number", -1), 208);
    ck_assert_int_eq(jint(r.json, "error.sql.line", -1), 2);
    http_resp_free(&r);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

START_TEST(sql_errors)
{
    proc *p = start_all(NULL);
    http_resp r;
    post_sql(p, CORE_Q, "SELECT * FROM nosuch", &r);
    ASSERT_ERROR(&r, 400, "SQL_ERROR");
    ck_assert_int_eq(jint(r.json, "error.sql.number", -1), 208);
    ck_assert_int_eq(jint(r.json, "error.sql.severity", -1), 16);
    ck_assert_int_eq(jint(r.json, "error.sql.line", -1), 1);
    ck_assert_msg(json_is_integer(jget(r.json, "error.sql.state")), "no sql.state");
    ck_assert_ptr_nonnull(strstr(jstr(r.json, "error.message"), "nosuch"));
    http_resp_free(&r);

    post_sql(p, CORE_Q, "SELEC 1", &r);
    ASSERT_ERROR(&r, 400, "SQL_ERROR");
    ck_assert_int_eq(jint(r.json, "error.sql.number", -1), 102);
    http_resp_free(&r);

    post_sql(p, CORE_Q, "SELECT 1 AS one;\n\nRAISERROR('boom %d', 16, 7, 42)", &r);
    ASSERT_ERROR(&r, 400, "SQL_ERROR");
    ck_assert_int_eq(jint(r.json, "error.sql.number", -1), 50000);
    ck_assert_int_eq(jint(r.json, "error.sql.severity", -1), 16);
    ck_assert_int_eq(jint(r.json, "error.sql.state", -1), 7);
    ck_assert_int_eq(jint(r.json, "error.sql.line", -1), 3);
    ck_assert_str_eq(jstr(r.json, "error.message"), "boom 42");
    http_resp_free(&r);

    /* With parameters (sp_executesql) too; the connection stays usable. */
    http_postf(p, CORE_Q, &r, "{s:s, s:{s:i}}", "sql", "SELECT @x AS x FROM nosuch", "params", "x",
               1);
    ASSERT_ERROR(&r, 400, "SQL_ERROR");
    ck_assert_int_eq(jint(r.json, "error.sql.number", -1), 208);
    http_resp_free(&r);
    post_sql(p, CORE_Q, "SELECT 7 AS seven", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.seven", -1), 7);
    http_resp_free(&r);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

/* in_use of core's pool from /v1/databases/core once it is 0 (polled: the
 * connection goes back after the response is written); -1 if it never is. */
static json_int_t wait_pool_idle(const proc *p, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        http_resp r;
        http_get(p, "/v1/databases/core", &r);
        json_int_t in_use = jint(r.json, "pool.in_use", -1);
        http_resp_free(&r);
        if (in_use == 0)
            return 0;
        if (now_ms() >= deadline)
            return in_use;
        sleep_ms(20);
    }
}

START_TEST(query_timeout)
{
    proc *p = start_all("CORE_DB_QUERY_TIMEOUT_MS=20000");
    http_resp r;
    int64_t t0 = now_ms();
    http_postf(p, CORE_Q, &r, "{s:s, s:i}", "sql", "WAITFOR DELAY '00:00:10'", "timeout_ms", 1000);
    int64_t took = now_ms() - t0;
    ASSERT_ERROR(&r, 504, "QUERY_TIMEOUT");
    http_resp_free(&r);
    ck_assert_msg(took <= 1000 + scaled_ms(2500), "answered after %lld ms", (long long)took);
    ck_assert_msg(took >= 900, "timed out after only %lld ms", (long long)took);
    ck_assert_msg(tds_child_stat(&fixture_tds, "attentions") >= 1,
                  "the statement was not cancelled");

    post_sql(p, CORE_Q, "SELECT 1 AS one", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.one", -1), 1);
    http_resp_free(&r);
    ck_assert_int_eq(wait_pool_idle(p, scaled_ms(3000)), 0);

    /* The same with parameters, and once more to see the pool is sound. */
    t0 = now_ms();
    http_postf(p, CORE_Q, &r, "{s:s, s:i, s:{s:i}}", "sql",
               "SELECT @x AS x; WAITFOR DELAY '00:00:10'", "timeout_ms", 1000, "params", "x", 1);
    took = now_ms() - t0;
    ASSERT_ERROR(&r, 504, "QUERY_TIMEOUT");
    http_resp_free(&r);
    ck_assert_msg(took <= 1000 + scaled_ms(2500), "answered after %lld ms", (long long)took);
    post_sql(p, CORE_Q, "SELECT 2 AS two", &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
    ck_assert_int_eq(wait_pool_idle(p, scaled_ms(3000)), 0);
    http_get(p, "/health", &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

START_TEST(wrong_password)
{
    tds_start(&fixture_tds, 0);
    env_list e;
    env_base(&e);
    env_core(&e, fixture_tds.port, "Wrong-SECRET-pw-1234");
    proc *p = start_svc(&e, false);
    assert_core_down(p);
    http_resp r;
    http_get(p, "/health", &r);
    const char *why = jstr(r.json, "databases.core.error.message");
    ck_assert_msg(why != NULL && strstr(why, "Wrong") == NULL, "reason: %s", why ? why : "");
    http_resp_free(&r);
    ck_assert_int_ge(tds_child_stat(&fixture_tds, "login_failures"), 1);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

START_TEST(not_listening_then_recovers)
{
    int port = free_port();
    ck_assert_int_gt(port, 0);
    env_list e;
    env_base(&e);
    env_core(&e, port, TDS_PASSWORD);
    env_add(&e, "CORE_DB_RETRY_MAX_MS=500");
    env_add(&e, "CORE_DB_HEALTH_INTERVAL_MS=500");
    proc *p = start_svc(&e, false);
    assert_core_down(p);

    tds_start(&fixture_tds, port);
    int64_t t0 = now_ms();
    /* RETRY_MAX_MS + HEALTH_INTERVAL_MS, plus a generous margin. */
    json_t *report = proc_wait_db_state(p, "core", "ready", 500 + 500 + scaled_ms(5000));
    int64_t took = now_ms() - t0;
    ck_assert_msg(report != NULL, "core did not recover in time after the server started");
    json_decref(report);
    ck_assert_msg(took <= 500 + 500 + scaled_ms(5000), "recovered after %lld ms", (long long)took);

    http_resp r;
    http_get(p, "/health", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert(json_is_true(jget(r.json, "healthy")));
    http_resp_free(&r);
    post_sql(p, CORE_Q, "SELECT 5 AS five", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.five", -1), 5);
    http_resp_free(&r);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

START_TEST(url_form)
{
    tds_start(&fixture_tds, 0);
    env_list e;
    env_base(&e);
    env_add(&e,
            "CORE_DB_URL=mssql://" TDS_USER ":" TDS_PASSWORD "@127.0.0.1:%d/" TDS_DB
            "?tds_version=7.4",
            fixture_tds.port);
    proc *p = start_svc(&e, true);
    http_resp r;
    http_get(p, "/v1/databases/core", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "driver"), "freetds");
    ck_assert_str_eq(jstr(r.json, "state"), "ready");
    ASSERT_NO_SECRET(r.body);
    http_resp_free(&r);
    post_sql(p, CORE_Q, "SELECT DB_NAME() AS db", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "results.0.rows.0.db"), TDS_DB);
    http_resp_free(&r);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

START_TEST(encrypt_required_without_tls)
{
    tds_start(&fixture_tds, 0);
    env_list e;
    env_base(&e);
    env_core(&e, fixture_tds.port, TDS_PASSWORD);
    env_add(&e, "CORE_DB_ENCRYPT=require");
    proc *p = start_svc(&e, false);
    assert_core_down(p);
    ck_assert_msg(tds_child_stat(&fixture_tds, "connections_opened") >= 1,
                  "core never tried the server");
    ck_assert_int_eq(tds_child_stat(&fixture_tds, "logins"), 0);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

/* --- The type conformance table (docs/types.md) ----------------------------------- */

/* One SQL Server type: its declaration, a literal of it, and what the JSON
 * string stands for (strings only; numbers and booleans say so). Binary
 * literals are SQLite's X'..': the test server reads T-SQL's 0x.. as a
 * number (tests/tds/README.md). */
typedef struct type_case {
    const char *decl;
    const char *literal;
    const char *meaning;
} type_case;

static const type_case type_cases[] = {
    {"bit", "1", NULL},
    {"tinyint", "255", NULL},
    {"smallint", "-32768", NULL},
    {"int", "2147483647", NULL},
    {"bigint", "9007199254740992", NULL},
    {"bigint", "-9007199254740993", "beyond 2^53: decimal digits"},
    {"real", "2.25", NULL},
    {"float", "-1.5", NULL},
    {"decimal(10,2)", "1234567.89", "exact decimal"},
    {"numeric(12,5)", "-1.00001", "exact decimal"},
    {"money", "12.3456", "exact decimal, 4 places"},
    {"smallmoney", "-3.5", "exact decimal, 4 places"},
    {"char(4)", "'ab'", "padded to its length"},
    {"varchar(10)", "'caf\xc3\xa9'", NULL},
    {"varchar(max)", "'long text'", NULL},
    {"text", "'caf\xc3\xa9'", NULL},
    {"nchar(3)", "N'\xe6\x97\xa5'", "padded to its length"},
    {"nvarchar(10)", "N'\xe6\x97\xa5\xe6\x9c\xac'", NULL},
    {"nvarchar(max)", "N'\xf0\x9f\x98\x80'", NULL},
    {"ntext", "N'\xe6\x97\xa5\xe6\x9c\xac'", NULL},
    {"xml", "N'<a b=\"1\">\xc3\xa9</a>'", "the document"},
    {"binary(4)", "X'DEAD'", "base64, padded to its length"},
    {"varbinary(8)", "X'00FF10'", "base64"},
    {"varbinary(max)", "X'DEADBEEF'", "base64"},
    {"image", "X'0102'", "base64"},
    {"rowversion", "X'00000000000007D1'", "base64 of the 8 bytes"},
    {"uniqueidentifier", "'6F9619FF-8B86-D011-B42D-00C04FC964FF'", "upper case"},
    {"date", "'2024-02-29'", "ISO 8601 date"},
    {"time(3)", "'23:59:58.123'", "ISO 8601 time, the column's scale"},
    {"datetime2", "'2024-01-31 12:34:56.1234567'", "ISO 8601, no offset, the column's scale"},
    {"datetime2(0)", "'2024-01-31 12:34:56'", "ISO 8601, no offset, the column's scale"},
    {"datetimeoffset(3)", "'2024-01-31 12:34:56.5 -05:30'", "ISO 8601 with the offset kept"},
    {"datetime", "'2024-01-31 01:02:03.123'", "ISO 8601, milliseconds"},
    {"smalldatetime", "'2024-01-31 01:02:00'", "ISO 8601, to the minute"},
};

#define DOC_BEGIN "<!-- BEGIN GENERATED by tests/integration/test_freetds.c (types_doc) -->\n"
#define DOC_END   "<!-- END GENERATED -->\n"

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_addf(sbuf *b, const char *fmt, ...) HX_PRINTF(2, 3);

static void sb_addf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    if (b->len + (size_t)n + 1 > b->cap) {
        b->cap = (b->len + (size_t)n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* The JSON shape of a value, as the doc states it. */
static const char *shape_of(const json_t *v)
{
    if (json_is_true(v) || json_is_false(v))
        return "boolean";
    if (json_is_integer(v))
        return "number (integer)";
    if (json_is_real(v))
        return "number";
    if (json_is_string(v))
        return "string";
    return json_is_null(v) ? "null" : "?";
}

/* Markdown cell text of a compact JSON value (pipes escaped). */
static void add_json_cell(sbuf *b, const json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    ck_assert_ptr_nonnull(text);
    sb_addf(b, "`");
    for (const char *c = text; *c != '\0'; c++)
        sb_addf(b, *c == '|' ? "\\|" : "%c", *c);
    sb_addf(b, "`");
    free(text);
}

/* Runs every type through the real binary and the TDS test server (TDS 7.4)
 * and writes the generated part of docs/types.md: a NULL of every type is
 * null, and the parameters' declared types as the server sees them. The
 * values are asserted where the contract fixes them; the table itself is
 * compared with the file (SQLGATE_TYPES_DOC), or written to it when
 * SQLGATE_TYPES_DOC_WRITE=1. */
START_TEST(types_doc)
{
    const char *doc_path = getenv("SQLGATE_TYPES_DOC");
    ck_assert_msg(doc_path != NULL, "SQLGATE_TYPES_DOC (the path of docs/types.md) is not set");
    proc *p = start_all(NULL);
    size_t n = sizeof type_cases / sizeof type_cases[0];
    sbuf create = {0}, insert = {0}, nulls = {0};
    sb_addf(&create, "CREATE TABLE conf (id INT");
    sb_addf(&insert, "INSERT INTO conf VALUES (1");
    sb_addf(&nulls, "INSERT INTO conf (id) VALUES (2)");
    for (size_t i = 0; i < n; i++) {
        sb_addf(&create, ", c%zu %s", i, type_cases[i].decl);
        sb_addf(&insert, ", %s", type_cases[i].literal);
    }
    sb_addf(&create, ")");
    sb_addf(&insert, ")");
    run_ok(p, create.p);
    run_ok(p, insert.p);
    run_ok(p, nulls.p);
    http_resp r;
    post_sql(p, CORE_Q, "SELECT * FROM conf ORDER BY id", &r);
    ASSERT_STATUS(&r, 200);
    json_t *columns = jget(r.json, "results.0.columns");
    json_t *row = jget(r.json, "results.0.rows.0");
    json_t *null_row = jget(r.json, "results.0.rows.1");
    ck_assert_uint_eq(json_array_size(columns), n + 1);

    sbuf doc = {0};
    sb_addf(&doc, DOC_BEGIN);
    sb_addf(&doc, "\n| Declared as | `type` in `columns` | JSON value | Example |\n"
                  "| --- | --- | --- | --- |\n");
    for (size_t i = 0; i < n; i++) {
        json_t *col = json_array_get(columns, i + 1);
        char key[16];
        snprintf(key, sizeof key, "c%zu", i);
        json_t *v = json_object_get(row, key);
        ck_assert_ptr_nonnull(v);
        ck_assert_msg(json_is_null(json_object_get(null_row, key)), "a NULL %s is not null",
                      type_cases[i].decl);
        const char *type = jstr(col, "type");
        ck_assert_ptr_nonnull(type);
        /* What the contract fixes, asserted here as well as shown. */
        if (strncmp(type, "decimal", 7) == 0 || strncmp(type, "numeric", 7) == 0 ||
            strstr(type, "money") != NULL)
            ck_assert_msg(json_is_string(v), "%s is not a string", type_cases[i].decl);
        if (strcmp(type, "bit") == 0)
            ck_assert(json_is_boolean(v));
        if (strstr(type, "binary") != NULL || strcmp(type, "image") == 0)
            ck_assert(json_is_string(v));
        sb_addf(&doc, "| `%s` | `\"%s\"`", type_cases[i].decl, type);
        if (jget(col, "precision") != NULL)
            sb_addf(&doc, ", `precision` %lld, `scale` %lld", (long long)jint(col, "precision", -1),
                    (long long)jint(col, "scale", -1));
        sb_addf(&doc, " | %s", shape_of(v));
        if (json_is_string(v) && type_cases[i].meaning != NULL)
            sb_addf(&doc, " (%s)", type_cases[i].meaning);
        sb_addf(&doc, " | ");
        add_json_cell(&doc, v);
        sb_addf(&doc, " |\n");
    }
    ck_assert_str_eq(jstr(row, "c5"), "-9007199254740993");
    http_resp_free(&r);

    /* sql_variant: the answer itself. */
    run_ok(p, "CREATE TABLE conf_v (v SQL_VARIANT); INSERT INTO conf_v VALUES (1)");
    post_sql(p, CORE_Q, "SELECT v FROM conf_v", &r);
    ASSERT_ERROR(&r, 400, "BAD_REQUEST");
    sb_addf(&doc, "| `sql_variant` | | refused: `%s` | %s |\n", jstr(r.json, "error.code"),
            jstr(r.json, "error.message"));
    http_resp_free(&r);
    sb_addf(&doc, "\nEvery type's NULL is `null`.\n\n");

    /* Parameters: what the server sees each JSON value declared as. */
    sb_addf(&doc,
            "| JSON parameter | Declared to SQL Server as | Read back with `SELECT @p AS v` |\n"
            "| --- | --- | --- |\n");
    static const struct {
        const char *json;
        const char *body;
    } params[] = {
        {"`42`", "{\"sql\": \"SELECT @p AS v\", \"params\": {\"p\": 42}}"},
        {"`-9007199254740993`",
         "{\"sql\": \"SELECT @p AS v\", \"params\": {\"p\": -9007199254740993}}"},
        {"`2.5`", "{\"sql\": \"SELECT @p AS v\", \"params\": {\"p\": 2.5}}"},
        {"`true`", "{\"sql\": \"SELECT @p AS v\", \"params\": {\"p\": true}}"},
        {"`\"text\"`", "{\"sql\": \"SELECT @p AS v\", \"params\": {\"p\": \"text\"}}"},
        {"`\"\"`", "{\"sql\": \"SELECT @p AS v\", \"params\": {\"p\": \"\"}}"},
        {"`null`", "{\"sql\": \"SELECT @p AS v, @q AS w\", \"params\": {\"p\": null, \"q\": 1}}"},
    };
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        http_post(p, CORE_Q, params[i].body, &r);
        ASSERT_STATUS(&r, 200);
        json_t *v = jget(r.json, "results.0.rows.0.v");
        const char *type = jstr(r.json, "results.0.columns.0.type");
        bool is_null = json_is_null(v);
        sb_addf(&doc, "| %s | %s | ", params[i].json, is_null ? "NULL (no type of its own)" : type);
        add_json_cell(&doc, v);
        sb_addf(&doc, " |\n");
        http_resp_free(&r);
    }
    sb_addf(&doc, "\n" DOC_END);

    /* Compare with, or write into, the file. */
    FILE *f = fopen(doc_path, "r");
    ck_assert_msg(f != NULL, "cannot read %s", doc_path);
    sbuf file = {0};
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        sb_addf(&file, "%.*s", (int)got, chunk);
    fclose(f);
    ck_assert_ptr_nonnull(file.p);
    char *begin = strstr(file.p, DOC_BEGIN);
    char *end = begin != NULL ? strstr(begin, DOC_END) : NULL;
    ck_assert_msg(begin != NULL && end != NULL, "%s has no generated section markers", doc_path);
    end += strlen(DOC_END);
    size_t old_len = (size_t)(end - begin);
    bool same = old_len == doc.len && memcmp(begin, doc.p, doc.len) == 0;
    const char *write = getenv("SQLGATE_TYPES_DOC_WRITE");
    if (!same && write != NULL && strcmp(write, "1") == 0) {
        FILE *o = fopen(doc_path, "w");
        ck_assert_ptr_nonnull(o);
        fwrite(file.p, 1, (size_t)(begin - file.p), o);
        fwrite(doc.p, 1, doc.len, o);
        fputs(end, o);
        ck_assert_int_eq(fclose(o), 0);
    } else {
        ck_assert_msg(same,
                      "docs/types.md differs from what the types produce; regenerate it with:\n"
                      "  SQLGATE_TYPES_DOC_WRITE=1 meson test -C build types_doc\n"
                      "what the test produced:\n%s",
                      doc.p);
    }
    free(file.p);
    free(doc.p);
    free(create.p);
    free(insert.p);
    free(nulls.p);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

static Suite *freetds_suite(void)
{
    Suite *s = suite_create("integration_freetds");
    TCase *tc = tcase_create("freetds");
    tcase_add_checked_fixture(tc, fixture_tds_setup, fixture_tds_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, health_both_ready);
    tcase_add_test(tc, types_as_json);
    tcase_add_test(tc, parameters_round_trip);
    tcase_add_test(tc, injection_stays_data);
    tcase_add_test(tc, multiple_result_sets);
    tcase_add_test(tc, sql_errors);
    tcase_add_test(tc, query_timeout);
    tcase_add_test(tc, wrong_password);
    tcase_add_test(tc, not_listening_then_recovers);
    tcase_add_test(tc, url_form);
    tcase_add_test(tc, encrypt_required_without_tls);
    tcase_add_test(tc, readonly_login_pool);
    tcase_add_test(tc, readonly_without_login_is_forbidden);
    suite_add_tcase(s, tc);

    /* The meson test types_doc runs this binary with SQLGATE_TYPES_DOC (the
     * path of docs/types.md) and CK_RUN_CASE=types_doc; the other runs of
     * it (the freetds test, the memory tools, the OpenAPI recording) do not
     * have the case at all. Not a tag: CK_EXCLUDE_TAGS is the memory-tool
     * setups' (timing), and a test's own value would replace theirs. */
    if (getenv("SQLGATE_TYPES_DOC") != NULL) {
        tc = tcase_create("types_doc");
        tcase_add_checked_fixture(tc, fixture_tds_setup, fixture_tds_teardown);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, types_doc);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    harness_init();
    return check_run(freetds_suite());
}
