/* Integration: the HTTP API of a running sqlgate (docs/api.md).
 *
 * Each TCase starts its own service in a fresh directory through an
 * unchecked fixture (Check runs it once per TCase, in the runner process);
 * tests only talk HTTP to it. Most cases use the embedded default databases
 * "core" and "app" with their demo rows.
 */
#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check_main.h"
#include "harness.h"

#define CORE_Q "/v1/databases/core/query"
#define APP_Q  "/v1/databases/app/query"

#define MAX_BODY 65536

static void setup_default(void)
{
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", "SQLGATE_MAX_BODY_BYTES=65536",
                                      NULL};
    fixture_start_unchecked(env, true);
}

static void setup_auth(void)
{
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0",
                                      "SQLGATE_API_TOKENS=s3cr3t-tok-AAAA1111,s3cr3t-tok-BBBB2222",
                                      "SQLGATE_LOG_LEVEL=debug", NULL};
    fixture_start_unchecked(env, true);
}

/* Two named databases: "core" with a short query timeout, "busy" with a pool
 * of one and a short acquire timeout; a row cap of 2. */
static void setup_limits(void)
{
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0",
                                      "SQLGATE_DATABASES=core,busy",
                                      "SQLGATE_DEFAULT_DATABASE=core",
                                      "SQLGATE_MAX_ROWS=2",
                                      "CORE_DB_PATH=./core.db",
                                      "CORE_DB_QUERY_TIMEOUT_MS=500",
                                      "BUSY_DB_PATH=./busy.db",
                                      "BUSY_DB_POOL_MAX=1",
                                      "BUSY_DB_ACQUIRE_TIMEOUT_MS=300",
                                      "BUSY_DB_QUERY_TIMEOUT_MS=3000",
                                      NULL};
    fixture_start_unchecked(env, true);
}

/* --- helpers -------------------------------------------------------------- */

static bool is_iso8601_utc(const char *s)
{
    /* YYYY-MM-DDTHH:MM:SS[.fff]Z or +00:00 */
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
    return strcmp(rest, "Z") == 0 || strcmp(rest, "+00:00") == 0;
}

static bool is_request_id(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > 64) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-') {
            return false;
        }
    }
    return true;
}

static bool ctype_is(const http_resp *r, const char *type)
{
    const char *ct = http_header_get(r, "Content-Type");
    return ct != NULL && strncasecmp(ct, type, strlen(type)) == 0;
}

static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; p != NULL && *p != '\0'; p++) {
        if (strncasecmp(p, needle, n) == 0) {
            return true;
        }
    }
    return false;
}

static void check_pool(const json_t *pool, json_int_t max)
{
    ck_assert_msg(json_is_object(pool), "pool is not an object");
    static const char *const keys[] = {"max", "open", "in_use", "idle", "waiting"};
    for (size_t i = 0; i < 5; i++) {
        json_t *v = json_object_get(pool, keys[i]);
        ck_assert_msg(json_is_integer(v) && json_integer_value(v) >= 0,
                      "pool.%s missing or not a non-negative integer", keys[i]);
    }
    ck_assert_int_eq(jint(pool, "max", -1), max);
    ck_assert_int_eq(jint(pool, "open", -1), jint(pool, "in_use", -1) + jint(pool, "idle", -1));
    ck_assert_int_le(jint(pool, "open", -1), max);
}

/* A /health database entry of a healthy database. */
static void check_healthy_entry(const json_t *e, bool with_pool)
{
    ck_assert_msg(json_is_object(e), "database entry is not an object");
    ck_assert_msg(json_is_true(jget(e, "healthy")), "healthy is not true");
    ck_assert_msg(json_is_true(jget(e, "critical")), "critical is not true");
    ck_assert_str_eq(jstr(e, "state"), "ready");
    ck_assert_msg(json_is_number(jget(e, "latency_ms")) && jnum(e, "latency_ms", -1) >= 0,
                  "latency_ms is not a non-negative number");
    ck_assert_msg(is_iso8601_utc(jstr(e, "checked_at")), "checked_at '%s' is not ISO 8601 UTC",
                  jstr(e, "checked_at") ? jstr(e, "checked_at") : "(missing)");
    ck_assert_msg(json_is_null(jget(e, "error")), "error is not null");
    if (with_pool) {
        check_pool(jget(e, "pool"), 10);
    } else {
        ck_assert_msg(jget(e, "pool") == NULL, "unexpected pool figures");
    }
}

static void assert_request_id(const http_resp *r)
{
    const char *rid = http_header_get(r, "X-Request-Id");
    ck_assert_msg(is_request_id(rid), "X-Request-Id '%s' missing or malformed", rid ? rid : "-");
}

/* The three demo users, ordered by id. */
static void check_users(const json_t *rows)
{
    ck_assert_int_eq(json_array_size(rows), 3);
    static const char *const names[] = {"Ada Lovelace", "Grace Hopper", "Alan Turing"};
    static const char *const emails[] = {"ada@example.com", "grace@example.com",
                                         "alan@example.com"};
    for (size_t i = 0; i < 3; i++) {
        json_t *row = json_array_get(rows, i);
        ck_assert_int_eq(jint(row, "id", -1), (json_int_t)i + 1);
        ck_assert_str_eq(jstr(row, "name"), names[i]);
        ck_assert_str_eq(jstr(row, "email"), emails[i]);
    }
}

/* ===== health ================================================================ */

START_TEST(health_full_report)
{
    http_resp r;
    http_get(fixture_service(), "/health", &r);
    ASSERT_STATUS(&r, 200);
    assert_request_id(&r);
    ck_assert(ctype_is(&r, "application/json"));
    ck_assert(json_is_true(jget(r.json, "healthy")));
    ck_assert_str_eq(jstr(r.json, "status"), "up");
    json_t *dbs = jget(r.json, "databases");
    ck_assert_int_eq(json_object_size(dbs), 2);
    check_healthy_entry(jget(dbs, "core"), true);
    check_healthy_entry(jget(dbs, "app"), true);
    http_resp_free(&r);
}
END_TEST

START_TEST(health_live)
{
    http_resp r;
    http_get(fixture_service(), "/health/live", &r);
    ASSERT_STATUS(&r, 200);
    assert_request_id(&r);
    ck_assert(ctype_is(&r, "application/json"));
    ck_assert_str_eq(jstr(r.json, "status"), "live");
    http_resp_free(&r);
    /* The connection model is the one this suite runs under (the events
     * suite passes SQLGATE_CONNECTION_MODEL=events through). */
    const char *model = getenv("SQLGATE_CONNECTION_MODEL");
    char *err = proc_stderr(fixture_service());
    json_t *line = log_find(err, (const char *const[]){"msg", "listening", NULL});
    ck_assert_msg(line != NULL, "no listening line");
    ck_assert_str_eq(jstr(line, "connections"), model != NULL ? model : "threads");
    json_decref(line);
    free(err);
}
END_TEST

START_TEST(health_ready_has_no_pool)
{
    http_resp r;
    http_get(fixture_service(), "/health/ready", &r);
    ASSERT_STATUS(&r, 200);
    assert_request_id(&r);
    ck_assert(json_is_true(jget(r.json, "healthy")));
    ck_assert_str_eq(jstr(r.json, "status"), "up");
    ck_assert_int_eq(json_object_size(jget(r.json, "databases")), 2);
    check_healthy_entry(jget(r.json, "databases.core"), false);
    check_healthy_entry(jget(r.json, "databases.app"), false);
    http_resp_free(&r);
}
END_TEST

START_TEST(health_one_database)
{
    http_resp r;
    http_get(fixture_service(), "/health/core", &r);
    ASSERT_STATUS(&r, 200);
    assert_request_id(&r);
    check_healthy_entry(r.json, true);
    http_resp_free(&r);

    http_get(fixture_service(), "/health/app", &r);
    ASSERT_STATUS(&r, 200);
    check_healthy_entry(r.json, true);
    http_resp_free(&r);

    /* "default" is core */
    http_get(fixture_service(), "/health/default", &r);
    ASSERT_STATUS(&r, 200);
    check_healthy_entry(r.json, true);
    http_resp_free(&r);
}
END_TEST

START_TEST(health_unknown_database)
{
    http_resp r;
    http_get(fixture_service(), "/health/nope", &r);
    ASSERT_ERROR(&r, 404, "UNKNOWN_DATABASE");
    http_resp_free(&r);
}
END_TEST

/* ===== databases ============================================================= */

static void check_db_entry(const json_t *e, const char *name)
{
    ck_assert_msg(json_is_object(e), "entry for %s is not an object", name);
    ck_assert_str_eq(jstr(e, "name"), name);
    ck_assert_str_eq(jstr(e, "driver"), "sqlite");
    ck_assert_str_eq(jstr(e, "state"), "ready");
    ck_assert(json_is_true(jget(e, "critical")));
    ck_assert(json_is_false(jget(e, "read_only")));
    check_pool(jget(e, "pool"), 10);
}

START_TEST(databases_list)
{
    http_resp r;
    http_get(fixture_service(), "/v1/databases", &r);
    ASSERT_STATUS(&r, 200);
    assert_request_id(&r);
    ck_assert(ctype_is(&r, "application/json"));
    ck_assert_str_eq(jstr(r.json, "default"), "core");
    json_t *list = jget(r.json, "databases");
    ck_assert_int_eq(json_array_size(list), 2);
    check_db_entry(json_array_get(list, 0), "core");
    check_db_entry(json_array_get(list, 1), "app");
    http_resp_free(&r);
}
END_TEST

START_TEST(databases_one)
{
    http_resp r;
    http_get(fixture_service(), "/v1/databases/app", &r);
    ASSERT_STATUS(&r, 200);
    check_db_entry(r.json, "app");
    http_resp_free(&r);

    http_get(fixture_service(), "/v1/databases/default", &r);
    ASSERT_STATUS(&r, 200);
    check_db_entry(r.json, "core");
    http_resp_free(&r);

    http_get(fixture_service(), "/v1/databases/nope", &r);
    ASSERT_ERROR(&r, 404, "UNKNOWN_DATABASE");
    http_resp_free(&r);
}
END_TEST

/* ===== query ================================================================= */

START_TEST(query_users)
{
    http_resp r;
    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql",
               "SELECT id, name, email FROM users ORDER BY id");
    ASSERT_STATUS(&r, 200);
    assert_request_id(&r);
    ck_assert(ctype_is(&r, "application/json"));
    ck_assert_str_eq(jstr(r.json, "database"), "core");
    ck_assert_int_eq(json_array_size(jget(r.json, "results")), 1);
    json_t *rs = jget(r.json, "results.0");
    ck_assert_int_eq(json_array_size(jget(rs, "columns")), 3);
    ck_assert_str_eq(jstr(rs, "columns.0.name"), "id");
    ck_assert_str_eq(jstr(rs, "columns.0.type"), "integer");
    ck_assert_str_eq(jstr(rs, "columns.1.name"), "name");
    ck_assert_str_eq(jstr(rs, "columns.1.type"), "text");
    ck_assert_str_eq(jstr(rs, "columns.2.name"), "email");
    ck_assert_str_eq(jstr(rs, "columns.2.type"), "text");
    check_users(jget(rs, "rows"));
    ck_assert_int_eq(jint(rs, "row_count", -1), 3);
    ck_assert(json_is_false(jget(rs, "truncated")));
    ck_assert_int_eq(jint(r.json, "rows_affected", -1), 0);
    ck_assert(json_is_number(jget(r.json, "elapsed_ms")));
    ck_assert(jnum(r.json, "elapsed_ms", -1) >= 0);
    http_resp_free(&r);
}
END_TEST

START_TEST(query_default_alias_and_v1_query)
{
    http_resp r;
    http_postf(fixture_service(), "/v1/databases/default/query", &r, "{s:s}", "sql",
               "SELECT count(*) AS n FROM users");
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "database"), "core");
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), 3);
    http_resp_free(&r);

    /* no "database": the default */
    http_postf(fixture_service(), "/v1/query", &r, "{s:s}", "sql",
               "SELECT count(*) AS n FROM users");
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "database"), "core");
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), 3);
    http_resp_free(&r);

    http_postf(fixture_service(), "/v1/query", &r, "{s:s, s:s}", "database", "app", "sql",
               "SELECT count(*) AS n FROM orders");
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "database"), "app");
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), 3);
    http_resp_free(&r);

    http_postf(fixture_service(), "/v1/query", &r, "{s:s, s:s}", "database", "default", "sql",
               "SELECT count(*) AS n FROM users");
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "database"), "core");
    http_resp_free(&r);

    http_postf(fixture_service(), "/v1/query", &r, "{s:s, s:s}", "database", "nope", "sql",
               "SELECT 1");
    ASSERT_ERROR(&r, 404, "UNKNOWN_DATABASE");
    http_resp_free(&r);

    http_postf(fixture_service(), "/v1/databases/nope/query", &r, "{s:s}", "sql", "SELECT 1");
    ASSERT_ERROR(&r, 404, "UNKNOWN_DATABASE");
    http_resp_free(&r);
}
END_TEST

START_TEST(query_app_orders_types)
{
    http_resp r;
    http_postf(fixture_service(), APP_Q, &r, "{s:s}", "sql",
               "SELECT id, user_id, item, amount, paid FROM orders ORDER BY id");
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "database"), "app");
    json_t *rs = jget(r.json, "results.0");
    ck_assert_str_eq(jstr(rs, "columns.0.type"), "integer");
    ck_assert_str_eq(jstr(rs, "columns.1.type"), "integer");
    ck_assert_str_eq(jstr(rs, "columns.2.type"), "text");
    ck_assert_str_eq(jstr(rs, "columns.3.name"), "amount");
    ck_assert_str_eq(jstr(rs, "columns.3.type"), "decimal");
    ck_assert_str_eq(jstr(rs, "columns.4.name"), "paid");
    ck_assert_str_eq(jstr(rs, "columns.4.type"), "boolean");
    json_t *rows = jget(rs, "rows");
    ck_assert_int_eq(json_array_size(rows), 3);
    bool seen_user[3] = {false, false, false};
    for (size_t i = 0; i < 3; i++) {
        json_t *row = json_array_get(rows, i);
        json_int_t uid = jint(row, "user_id", -1);
        ck_assert_msg(uid == 1 || uid == 2, "user_id %lld", (long long)uid);
        seen_user[uid] = true;
        ck_assert(jstr(row, "item") != NULL && jstr(row, "item")[0] != '\0');
        /* decimal: an exact string such as "19.99" */
        const char *amount = jstr(row, "amount");
        ck_assert_msg(amount != NULL, "amount is not a string in row %zu", i);
        size_t k = amount[0] == '-' ? 1 : 0, digits = 0, dots = 0;
        for (; amount[k] != '\0'; k++) {
            if (isdigit((unsigned char)amount[k])) {
                digits++;
            } else if (amount[k] == '.') {
                dots++;
            } else {
                ck_abort_msg("amount '%s' is not a decimal string", amount);
            }
        }
        ck_assert_msg(digits > 0 && dots <= 1, "amount '%s' is not a decimal string", amount);
        ck_assert_msg(json_is_boolean(jget(row, "paid")), "paid is not a boolean in row %zu", i);
    }
    ck_assert(seen_user[1] && seen_user[2]);
    http_resp_free(&r);
}
END_TEST

START_TEST(query_params_bind)
{
    http_resp r;
    http_postf(fixture_service(), CORE_Q, &r, "{s:s, s:{s:i}}", "sql",
               "SELECT name FROM users WHERE id = @id", "params", "id", 2);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.row_count", -1), 1);
    ck_assert_str_eq(jstr(r.json, "results.0.rows.0.name"), "Grace Hopper");
    http_resp_free(&r);

    http_postf(fixture_service(), CORE_Q, &r, "{s:s, s:{s:i, s:s, s:n, s:f, s:b}}", "sql",
               "SELECT @i AS i, @s AS s, @n AS n, @f AS f, typeof(@i) AS ti, typeof(@s) AS ts,"
               " typeof(@n) AS tn, typeof(@f) AS tf, @b AS b",
               "params", "i", 7, "s", "x", "n", "f", 2.5, "b", 1);
    ASSERT_STATUS(&r, 200);
    json_t *row = jget(r.json, "results.0.rows.0");
    ck_assert_int_eq(jint(row, "i", -1), 7);
    ck_assert_str_eq(jstr(row, "s"), "x");
    ck_assert(json_is_null(jget(row, "n")));
    ck_assert(json_is_real(jget(row, "f")) || json_is_number(jget(row, "f")));
    ck_assert(jnum(row, "f", 0) == 2.5);
    ck_assert_str_eq(jstr(row, "ti"), "integer");
    ck_assert_str_eq(jstr(row, "ts"), "text");
    ck_assert_str_eq(jstr(row, "tn"), "null");
    ck_assert_str_eq(jstr(row, "tf"), "real");
    /* SQLite has no boolean storage: true binds as 1 */
    json_t *b = jget(row, "b");
    ck_assert_msg(json_is_true(b) || (json_is_integer(b) && json_integer_value(b) == 1),
                  "true bound as something else");
    http_resp_free(&r);

    /* a big integer parameter keeps all 64 bits */
    http_postf(fixture_service(), CORE_Q, &r, "{s:s, s:{s:I}}", "sql", "SELECT @v AS v", "params",
               "v", (json_int_t)9007199254740993LL);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "results.0.rows.0.v"), "9007199254740993");
    http_resp_free(&r);
}
END_TEST

START_TEST(query_params_are_not_pasted)
{
    const char *evil = "x'; DELETE FROM users; --";
    http_resp r;
    http_postf(fixture_service(), CORE_Q, &r, "{s:s, s:{s:s}}", "sql", "SELECT @v AS v", "params",
               "v", evil);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "results.0.rows.0.v"), evil);
    http_resp_free(&r);

    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql", "SELECT count(*) AS n FROM users");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), 3);
    http_resp_free(&r);
}
END_TEST

START_TEST(query_unicode_roundtrip)
{
    const char *text = "Zo\xc3\xab \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e "
                       "\xf0\x9f\x8e\x89";
    http_resp r;
    http_postf(fixture_service(), CORE_Q, &r, "{s:s, s:{s:s}}", "sql",
               "SELECT @t AS t, length(@t) AS chars, 'h\xc3\xa9llo' AS lit", "params", "t", text);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "results.0.rows.0.t"), text);
    /* Z o e-umlaut, space, dash, space, 3 CJK, space, emoji: 11 characters */
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.chars", -1), 11);
    ck_assert_str_eq(jstr(r.json, "results.0.rows.0.lit"), "h\xc3\xa9llo");
    http_resp_free(&r);
}
END_TEST

START_TEST(query_missing_param)
{
    http_resp r;
    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql",
               "SELECT name FROM users WHERE id = @id");
    ASSERT_ERROR(&r, 400, "SQL_ERROR");
    http_resp_free(&r);

    http_postf(fixture_service(), CORE_Q, &r, "{s:s, s:{s:i}}", "sql", "SELECT @a AS a, @b AS b",
               "params", "a", 1);
    ASSERT_ERROR(&r, 400, "SQL_ERROR");
    http_resp_free(&r);
}
END_TEST

static void check_sql_error_details(const http_resp *r)
{
    json_t *sql = jget(r->json, "error.sql");
    ck_assert_msg(json_is_object(sql), "error.sql missing");
    static const char *const keys[] = {"number", "severity", "state", "line"};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_msg(json_is_integer(json_object_get(sql, keys[i])),
                      "error.sql.%s is not an integer", keys[i]);
    }
}

START_TEST(query_sql_errors)
{
    http_resp r;
    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql", "SELECT * FROM no_such_table");
    ASSERT_ERROR(&r, 400, "SQL_ERROR");
    check_sql_error_details(&r);
    ck_assert_msg(strstr(jstr(r.json, "error.message"), "no_such_table") != NULL,
                  "message does not name the table: %s", jstr(r.json, "error.message"));
    http_resp_free(&r);

    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql", "SELEC 1");
    ASSERT_ERROR(&r, 400, "SQL_ERROR");
    check_sql_error_details(&r);
    http_resp_free(&r);

    /* constraint violation: name is NOT NULL */
    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql",
               "INSERT INTO users(id, name) VALUES (99, NULL)");
    ASSERT_ERROR(&r, 400, "SQL_ERROR");
    check_sql_error_details(&r);
    http_resp_free(&r);

    /* the database still answers */
    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql", "SELECT count(*) AS n FROM users");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), 3);
    http_resp_free(&r);
}
END_TEST

#define SLOW_CTE                                                                                   \
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "        \
    "SELECT count(*) AS n FROM c"

START_TEST(query_timeout)
{
    http_resp r;
    int64_t t0 = now_ms();
    http_postf(fixture_service(), CORE_Q, &r, "{s:s, s:i}", "sql", SLOW_CTE, "timeout_ms", 300);
    int64_t took = now_ms() - t0;
    ASSERT_ERROR(&r, 504, "QUERY_TIMEOUT");
    ck_assert_msg(took < 6000, "timeout answered after %lld ms", (long long)took);
    ck_assert_msg(took >= 250, "timeout answered too early: %lld ms", (long long)took);
    http_resp_free(&r);

    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql", "SELECT count(*) AS n FROM users");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), 3);
    http_resp_free(&r);
}
END_TEST

START_TEST(query_rows_as)
{
    http_resp r;
    http_postf(fixture_service(), CORE_Q, &r, "{s:s, s:s}", "sql",
               "SELECT id, name FROM users ORDER BY id", "rows_as", "arrays");
    ASSERT_STATUS(&r, 200);
    json_t *rows = jget(r.json, "results.0.rows");
    ck_assert_int_eq(json_array_size(rows), 3);
    json_t *row = json_array_get(rows, 0);
    ck_assert_msg(json_is_array(row), "row is not an array");
    ck_assert_int_eq(json_array_size(row), 2);
    ck_assert_int_eq(jint(row, "0", -1), 1);
    ck_assert_str_eq(jstr(row, "1"), "Ada Lovelace");
    ck_assert_str_eq(jstr(rows, "2.1"), "Alan Turing");
    ck_assert_str_eq(jstr(r.json, "results.0.columns.1.name"), "name");
    http_resp_free(&r);

    http_postf(fixture_service(), CORE_Q, &r, "{s:s, s:s}", "sql",
               "SELECT id FROM users ORDER BY id", "rows_as", "objects");
    ASSERT_STATUS(&r, 200);
    ck_assert(json_is_object(jget(r.json, "results.0.rows.0")));
    ck_assert_int_eq(jint(r.json, "results.0.rows.2.id", -1), 3);
    http_resp_free(&r);
}
END_TEST

START_TEST(query_max_rows)
{
    http_resp r;
    http_postf(fixture_service(), CORE_Q, &r, "{s:s, s:i}", "sql",
               "SELECT id FROM users ORDER BY id", "max_rows", 2);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(json_array_size(jget(r.json, "results.0.rows")), 2);
    ck_assert_int_eq(jint(r.json, "results.0.row_count", -1), 2);
    ck_assert(json_is_true(jget(r.json, "results.0.truncated")));
    ck_assert_int_eq(jint(r.json, "results.0.rows.1.id", -1), 2);
    http_resp_free(&r);

    /* exactly as many rows as allowed: not truncated */
    http_postf(fixture_service(), CORE_Q, &r, "{s:s, s:i}", "sql",
               "SELECT id FROM users ORDER BY id", "max_rows", 3);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.row_count", -1), 3);
    ck_assert(json_is_false(jget(r.json, "results.0.truncated")));
    http_resp_free(&r);

    /* the default cap (SQLGATE_MAX_ROWS = 10000) */
    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql",
               "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) "
               "SELECT x FROM c");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(json_array_size(jget(r.json, "results.0.rows")), 10000);
    ck_assert_int_eq(jint(r.json, "results.0.row_count", -1), 10000);
    ck_assert(json_is_true(jget(r.json, "results.0.truncated")));
    ck_assert_int_eq(jint(r.json, "results.0.rows.9999.x", -1), 10000);
    http_resp_free(&r);
}
END_TEST

START_TEST(query_column_names)
{
    http_resp r;
    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql",
               "SELECT 1 AS \"\", 2 AS a, 3 AS a, 4 AS a, 5 AS b, 6 AS \"\"");
    ASSERT_STATUS(&r, 200);
    json_t *rs = jget(r.json, "results.0");
    static const char *const names[] = {"column1", "a", "a_2", "a_3", "b", "column6"};
    ck_assert_int_eq(json_array_size(jget(rs, "columns")), 6);
    json_t *row = jget(rs, "rows.0");
    ck_assert_int_eq(json_object_size(row), 6);
    for (size_t i = 0; i < 6; i++) {
        char path[32];
        snprintf(path, sizeof path, "columns.%zu.name", i);
        ck_assert_str_eq(jstr(rs, path), names[i]);
        ck_assert_int_eq(jint(row, names[i], -1), (json_int_t)i + 1);
    }
    http_resp_free(&r);

    /* arrays show the same names in columns */
    http_postf(fixture_service(), CORE_Q, &r, "{s:s, s:s}", "sql", "SELECT 1 AS x, 2 AS x",
               "rows_as", "arrays");
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "results.0.columns.0.name"), "x");
    ck_assert_str_eq(jstr(r.json, "results.0.columns.1.name"), "x_2");
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.1", -1), 2);
    http_resp_free(&r);
}
END_TEST

START_TEST(query_declared_types)
{
    http_resp r;
    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql",
               "CREATE TABLE typed_t (a VARCHAR(20), b DOUBLE PRECISION, c NUMERIC(5), "
               "d DECIMAL(10, 2)); "
               "INSERT INTO typed_t VALUES ('x', 1.5, 3, 12.5); "
               "SELECT a, b, c, d FROM typed_t; "
               "DROP TABLE typed_t");
    ASSERT_STATUS(&r, 200);
    json_t *rs = jget(r.json, "results.0");
    ck_assert_str_eq(jstr(rs, "columns.0.type"), "varchar");
    ck_assert_str_eq(jstr(rs, "columns.1.type"), "double precision");
    ck_assert_str_eq(jstr(rs, "columns.2.type"), "numeric");
    ck_assert_str_eq(jstr(rs, "columns.3.type"), "decimal");
    ck_assert_str_eq(jstr(rs, "rows.0.a"), "x");
    ck_assert_msg(json_is_number(jget(rs, "rows.0.b")) && jnum(rs, "rows.0.b", 0) == 1.5,
                  "double is not the number 1.5");
    /* numeric and decimal are exact strings */
    ck_assert_str_eq(jstr(rs, "rows.0.c"), "3");
    ck_assert_msg(jstr(rs, "rows.0.d") != NULL && strncmp(jstr(rs, "rows.0.d"), "12.5", 4) == 0,
                  "decimal 12.5 came back as something else");
    http_resp_free(&r);
}
END_TEST

START_TEST(query_small_forms)
{
    http_resp r;
    /* trailing semicolon and whitespace: still one statement */
    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql", "SELECT 1 AS a;  \n ");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(json_array_size(jget(r.json, "results")), 1);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.a", -1), 1);
    http_resp_free(&r);

    /* one parameter used twice */
    http_postf(fixture_service(), CORE_Q, &r, "{s:s, s:{s:i}}", "sql", "SELECT @a + @a AS s",
               "params", "a", 2);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.s", -1), 4);
    http_resp_free(&r);

    /* a generated name never collides with a real one */
    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql", "SELECT 1 AS x, 2 AS x_2, 3 AS x");
    ASSERT_STATUS(&r, 200);
    json_t *cols = jget(r.json, "results.0.columns");
    ck_assert_int_eq(json_array_size(cols), 3);
    const char *n0 = jstr(cols, "0.name"), *n1 = jstr(cols, "1.name"), *n2 = jstr(cols, "2.name");
    ck_assert_str_eq(n0, "x");
    ck_assert_str_eq(n1, "x_2");
    ck_assert_msg(n2 != NULL && strcmp(n2, "x") != 0 && strcmp(n2, "x_2") != 0,
                  "third column named '%s' collides", n2 ? n2 : "(none)");
    ck_assert_int_eq(json_object_size(jget(r.json, "results.0.rows.0")), 3);
    http_resp_free(&r);
}
END_TEST

START_TEST(query_batch)
{
    http_resp r;
    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql",
               "UPDATE users SET email = email WHERE id <= 2; "
               "SELECT count(*) AS n FROM users; "
               "UPDATE users SET name = name WHERE id = 3; "
               "SELECT id FROM users WHERE id = 1");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(json_array_size(jget(r.json, "results")), 2);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), 3);
    ck_assert_str_eq(jstr(r.json, "results.0.columns.0.name"), "n");
    ck_assert_int_eq(jint(r.json, "results.1.rows.0.id", -1), 1);
    ck_assert_int_eq(jint(r.json, "rows_affected", -1), 3);
    http_resp_free(&r);
}
END_TEST

START_TEST(query_batch_with_ddl)
{
    http_resp r;
    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql",
               "CREATE TABLE batch_t (x INTEGER); "
               "INSERT INTO batch_t VALUES (1), (2), (3); "
               "UPDATE batch_t SET x = x + 10 WHERE x > 1; "
               "SELECT x FROM batch_t ORDER BY x; "
               "DROP TABLE batch_t");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(json_array_size(jget(r.json, "results")), 1);
    json_t *rows = jget(r.json, "results.0.rows");
    ck_assert_int_eq(json_array_size(rows), 3);
    ck_assert_int_eq(jint(rows, "0.x", -1), 1);
    ck_assert_int_eq(jint(rows, "1.x", -1), 12);
    ck_assert_int_eq(jint(rows, "2.x", -1), 13);
    /* 3 inserted + 2 updated; DDL affects no rows */
    ck_assert_int_eq(jint(r.json, "rows_affected", -1), 5);
    http_resp_free(&r);

    /* only DML: no result sets */
    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql",
               "INSERT INTO users(id, name, email) VALUES (100, 'Tmp', NULL); "
               "DELETE FROM users WHERE id = 100");
    ASSERT_STATUS(&r, 200);
    ck_assert_msg(json_is_array(jget(r.json, "results")), "results is not an array");
    ck_assert_int_eq(json_array_size(jget(r.json, "results")), 0);
    ck_assert_int_eq(jint(r.json, "rows_affected", -1), 2);
    http_resp_free(&r);
}
END_TEST

START_TEST(query_empty_result_and_operation)
{
    http_resp r;
    http_postf(fixture_service(), CORE_Q, &r, "{s:s, s:s}", "sql",
               "SELECT id, name FROM users WHERE id < 0", "operation", "users.none");
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "operation"), "users.none");
    json_t *rows = jget(r.json, "results.0.rows");
    ck_assert_msg(json_is_array(rows), "rows is not an array");
    ck_assert_int_eq(json_array_size(rows), 0);
    ck_assert_int_eq(jint(r.json, "results.0.row_count", -1), 0);
    ck_assert(json_is_false(jget(r.json, "results.0.truncated")));
    ck_assert_int_eq(json_array_size(jget(r.json, "results.0.columns")), 2);
    ck_assert_str_eq(jstr(r.json, "results.0.columns.0.name"), "id");
    http_resp_free(&r);
}
END_TEST

START_TEST(query_value_types)
{
    http_resp r;
    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql",
               "SELECT 9007199254740993 AS big, 9007199254740992 AS edge, "
               "-9007199254740993 AS nbig, -9007199254740992 AS nedge, 1.5 AS f, "
               "x'00ff' AS b, NULL AS n, 'txt' AS t, 0 AS zero");
    ASSERT_STATUS(&r, 200);
    json_t *row = jget(r.json, "results.0.rows.0");
    ck_assert_str_eq(jstr(row, "big"), "9007199254740993");
    ck_assert_msg(json_is_integer(jget(row, "edge")), "2^53 is not a JSON number");
    ck_assert(jint(row, "edge", 0) == 9007199254740992LL);
    ck_assert_str_eq(jstr(row, "nbig"), "-9007199254740993");
    ck_assert_msg(json_is_integer(jget(row, "nedge")), "-2^53 is not a JSON number");
    ck_assert(jint(row, "nedge", 0) == -9007199254740992LL);
    ck_assert_msg(json_is_number(jget(row, "f")) && jnum(row, "f", 0) == 1.5, "f is not 1.5");
    ck_assert_str_eq(jstr(row, "b"), "AP8=");
    ck_assert(json_is_null(jget(row, "n")));
    ck_assert_str_eq(jstr(row, "t"), "txt");
    ck_assert_msg(json_is_integer(jget(row, "zero")), "0 is not an integer");
    json_t *cols = jget(r.json, "results.0.columns");
    ck_assert_str_eq(jstr(cols, "0.type"), "integer");
    ck_assert_str_eq(jstr(cols, "4.type"), "real");
    ck_assert_str_eq(jstr(cols, "5.type"), "blob");
    ck_assert_str_eq(jstr(cols, "6.type"), "null");
    ck_assert_str_eq(jstr(cols, "7.type"), "text");
    http_resp_free(&r);
}
END_TEST

/* Waits (bounded) for a JSON log line holding all the given string pairs. */
static bool log_has(const char *const *kv)
{
    json_t *line = proc_log_wait(fixture_service(), kv, 3000);
    json_decref(line);
    return line != NULL;
}

START_TEST(query_logged_with_id_and_operation)
{
    static const char *const hdr_ok[] = {"Content-Type: application/json",
                                         "X-Request-Id: trace-log-ok-1", NULL};
    static const char ok_body[] =
        "{\"sql\":\"SELECT count(*) AS n FROM users\",\"operation\":\"users.count\"}";
    http_resp r;
    http_send(fixture_service(), "POST", CORE_Q, hdr_ok, ok_body, strlen(ok_body), &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "operation"), "users.count");
    http_resp_free(&r);
    static const char *const want_ok[] = {"request_id", "trace-log-ok-1", "operation",
                                          "users.count", NULL};
    ck_assert_msg(log_has(want_ok),
                  "no log line names request trace-log-ok-1 with its operation users.count");

    static const char *const hdr_err[] = {"Content-Type: application/json",
                                          "X-Request-Id: trace-log-err-1", NULL};
    static const char err_body[] = "{\"sql\":\"SELECT * FROM nope\",\"operation\":\"nope.read\"}";
    http_send(fixture_service(), "POST", CORE_Q, hdr_err, err_body, strlen(err_body), &r);
    ASSERT_ERROR(&r, 400, "SQL_ERROR");
    http_resp_free(&r);
    static const char *const want_err[] = {"request_id", "trace-log-err-1", "operation",
                                           "nope.read", NULL};
    ck_assert_msg(log_has(want_err),
                  "no log line names request trace-log-err-1 with its operation nope.read");
}
END_TEST

#define N_THREADS 8
#define N_ROUNDS  5

START_TEST(query_concurrent)
{
    char url_core[128], url_app[128];
    proc_url(fixture_service(), CORE_Q, url_core, sizeof url_core);
    proc_url(fixture_service(), APP_Q, url_app, sizeof url_app);
    static const char *const hdr[] = {"Content-Type: application/json", NULL};
    static const char core_body[] = "{\"sql\":\"SELECT count(*) AS n FROM users\"}";
    static const char app_body[] = "{\"sql\":\"SELECT count(*) AS n FROM orders\"}";
    for (int round = 0; round < N_ROUNDS; round++) {
        http_async *a[N_THREADS];
        for (int i = 0; i < N_THREADS; i++) {
            bool core = i % 2 == 0;
            http_req rq = {.method = "POST",
                           .url = core ? url_core : url_app,
                           .headers = hdr,
                           .body = core ? core_body : app_body,
                           .body_len = strlen(core ? core_body : app_body)};
            a[i] = http_async_start(&rq);
        }
        for (int i = 0; i < N_THREADS; i++) {
            http_resp r;
            ck_assert_ptr_nonnull(a[i]);
            http_async_join(a[i], &r);
            ASSERT_STATUS(&r, 200);
            ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), 3);
            ck_assert_str_eq(jstr(r.json, "database"), i % 2 == 0 ? "core" : "app");
            http_resp_free(&r);
        }
    }
}
END_TEST

/* ===== bad input ============================================================== */

typedef struct bad_body {
    const char *what;
    const char *body;
    size_t len; /* 0: strlen(body) */
} bad_body;

#define RAW_NUL "{\"sql\":\"SELECT 1\"}\0garbage"

static const bad_body BAD[] = {
    {"malformed JSON", "{", 0},
    {"empty body", "", 0},
    {"trailing garbage", "{\"sql\":\"SELECT 1\"} x", 0},
    {"array", "[]", 0},
    {"string", "\"SELECT 1\"", 0},
    {"null", "null", 0},
    {"number", "42", 0},
    {"missing sql", "{}", 0},
    {"missing sql with params", "{\"params\":{\"a\":1}}", 0},
    {"sql number", "{\"sql\":1}", 0},
    {"sql null", "{\"sql\":null}", 0},
    {"sql array", "{\"sql\":[\"SELECT 1\"]}", 0},
    {"params array", "{\"sql\":\"SELECT 1\",\"params\":[1]}", 0},
    {"params string", "{\"sql\":\"SELECT 1\",\"params\":\"x\"}", 0},
    {"param object", "{\"sql\":\"SELECT @a\",\"params\":{\"a\":{\"x\":1}}}", 0},
    {"param array", "{\"sql\":\"SELECT @a\",\"params\":{\"a\":[1]}}", 0},
    {"param name digit", "{\"sql\":\"SELECT 1\",\"params\":{\"1a\":1}}", 0},
    {"param name dash", "{\"sql\":\"SELECT 1\",\"params\":{\"a-b\":1}}", 0},
    {"param name empty", "{\"sql\":\"SELECT 1\",\"params\":{\"\":1}}", 0},
    {"param name with @", "{\"sql\":\"SELECT 1\",\"params\":{\"@a\":1}}", 0},
    {"param name space", "{\"sql\":\"SELECT 1\",\"params\":{\"a b\":1}}", 0},
    {"max_rows 0", "{\"sql\":\"SELECT 1\",\"max_rows\":0}", 0},
    {"max_rows negative", "{\"sql\":\"SELECT 1\",\"max_rows\":-1}", 0},
    {"max_rows real", "{\"sql\":\"SELECT 1\",\"max_rows\":1.5}", 0},
    {"max_rows string", "{\"sql\":\"SELECT 1\",\"max_rows\":\"10\"}", 0},
    {"max_rows huge", "{\"sql\":\"SELECT 1\",\"max_rows\":99999999999999999999999}", 0},
    {"timeout_ms 0", "{\"sql\":\"SELECT 1\",\"timeout_ms\":0}", 0},
    {"timeout_ms negative", "{\"sql\":\"SELECT 1\",\"timeout_ms\":-5}", 0},
    {"timeout_ms real", "{\"sql\":\"SELECT 1\",\"timeout_ms\":2.5}", 0},
    {"timeout_ms string", "{\"sql\":\"SELECT 1\",\"timeout_ms\":\"100\"}", 0},
    {"rows_as unknown", "{\"sql\":\"SELECT 1\",\"rows_as\":\"rows\"}", 0},
    {"rows_as number", "{\"sql\":\"SELECT 1\",\"rows_as\":1}", 0},
    {"operation number", "{\"sql\":\"SELECT 1\",\"operation\":5}", 0},
    {"invalid UTF-8 in sql", "{\"sql\":\"SELECT '\xff'\"}", 0},
    {"invalid UTF-8 in param", "{\"sql\":\"SELECT @a\",\"params\":{\"a\":\"\xc3\x28\"}}", 0},
    {"overlong UTF-8", "{\"sql\":\"SELECT '\xc0\xaf'\"}", 0},
    {"lone surrogate", "{\"sql\":\"SELECT '\\ud800'\"}", 0},
    {"NUL in sql", "{\"sql\":\"SELECT 1\\u0000; DELETE FROM users\"}", 0},
    {"raw NUL byte", RAW_NUL, sizeof RAW_NUL - 1},
};

static void post_bad(const char *path, int i)
{
    static const char *const hdr[] = {"Content-Type: application/json", NULL};
    const bad_body *b = &BAD[i];
    size_t len = b->len != 0 ? b->len : strlen(b->body);
    http_resp r;
    http_send(fixture_service(), "POST", path, hdr, b->body, len, &r);
    char why[800];
    ck_assert_msg(check_error_resp(&r, 400, "BAD_REQUEST", why, sizeof why), "%s on %s: %s",
                  b->what, path, why);
    http_resp_free(&r);
}

START_TEST(bad_input_named)
{
    post_bad(CORE_Q, _i);
}
END_TEST

START_TEST(bad_input_v1_query)
{
    post_bad("/v1/query", _i);
}
END_TEST

START_TEST(bad_database_type)
{
    http_resp r;
    http_post(fixture_service(), "/v1/query", "{\"sql\":\"SELECT 1\",\"database\":5}", &r);
    ASSERT_ERROR(&r, 400, "BAD_REQUEST");
    http_resp_free(&r);
}
END_TEST

START_TEST(deep_nesting_rejected)
{
    /* 20000 nested arrays in an ignored key: 40 KB, under the body limit */
    size_t depth = 20000;
    static const char head[] = "{\"sql\":\"SELECT 1\",\"x\":";
    size_t len = sizeof head - 1 + 2 * depth + 1;
    char *body = malloc(len + 1);
    ck_assert_ptr_nonnull(body);
    memcpy(body, head, sizeof head - 1);
    memset(body + sizeof head - 1, '[', depth);
    memset(body + sizeof head - 1 + depth, ']', depth);
    body[len - 1] = '}';
    body[len] = '\0';
    http_resp r;
    http_post(fixture_service(), CORE_Q, body, &r);
    free(body);
    ASSERT_ERROR(&r, 400, "BAD_REQUEST");
    http_resp_free(&r);
    http_get(fixture_service(), "/health/live", &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
}
END_TEST

START_TEST(unknown_keys_ignored)
{
    http_resp r;
    http_post(fixture_service(), CORE_Q,
              "{\"sql\":\"SELECT 1 AS one\",\"foo\":{\"bar\":[1,2]},\"x\":null}", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.one", -1), 1);
    http_resp_free(&r);
}
END_TEST

START_TEST(bad_input_ran_nothing)
{
    /* the NUL-injected DELETE of the bad-input cases must not have run */
    http_resp r;
    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql", "SELECT count(*) AS n FROM users");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), 3);
    http_resp_free(&r);
}
END_TEST

/* A body of exactly `size` bytes: a valid query padded with whitespace. */
static char *padded_body(size_t size)
{
    static const char head[] = "{\"sql\":\"SELECT 1 AS one\"";
    char *b = malloc(size + 1);
    ck_assert_ptr_nonnull(b);
    memset(b, ' ', size);
    memcpy(b, head, sizeof head - 1);
    b[size - 1] = '}';
    b[size] = '\0';
    return b;
}

static void send_sized(size_t size, bool chunked, http_resp *r)
{
    char url[128];
    proc_url(fixture_service(), CORE_Q, url, sizeof url);
    static const char *const hdr[] = {"Content-Type: application/json", NULL};
    char *body = padded_body(size);
    http_req rq = {.method = "POST",
                   .url = url,
                   .headers = hdr,
                   .body = body,
                   .body_len = size,
                   .chunked = chunked};
    http_do(&rq, r);
    free(body);
}

START_TEST(body_limit_content_length)
{
    http_resp r;
    send_sized(MAX_BODY, false, &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.one", -1), 1);
    http_resp_free(&r);

    send_sized(MAX_BODY + 1, false, &r);
    ASSERT_ERROR(&r, 413, "PAYLOAD_TOO_LARGE");
    http_resp_free(&r);

    send_sized(4 * 1024 * 1024, false, &r);
    ASSERT_ERROR(&r, 413, "PAYLOAD_TOO_LARGE");
    http_resp_free(&r);
}
END_TEST

START_TEST(body_limit_chunked)
{
    http_resp r;
    send_sized(1000, true, &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.one", -1), 1);
    http_resp_free(&r);

    send_sized(MAX_BODY, true, &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);

    send_sized(MAX_BODY + 1, true, &r);
    ASSERT_ERROR(&r, 413, "PAYLOAD_TOO_LARGE");
    http_resp_free(&r);

    send_sized(1024 * 1024, true, &r);
    ASSERT_ERROR(&r, 413, "PAYLOAD_TOO_LARGE");
    http_resp_free(&r);

    /* the service is fine afterwards */
    http_get(fixture_service(), "/health/live", &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
}
END_TEST

START_TEST(content_type)
{
    static const char body[] = "{\"sql\":\"SELECT 1 AS one\"}";
    static const char *const ok_types[] = {
        "Content-Type: application/json",
        "Content-Type: application/json; charset=utf-8",
        "Content-Type: application/json;charset=UTF-8",
        "Content-Type: Application/JSON",
    };
    for (size_t i = 0; i < sizeof ok_types / sizeof ok_types[0]; i++) {
        const char *hdr[] = {ok_types[i], NULL};
        http_resp r;
        http_send(fixture_service(), "POST", CORE_Q, hdr, body, strlen(body), &r);
        char d[600];
        ck_assert_msg(r.status == 200, "%s: %s", ok_types[i], resp_desc(&r, d, sizeof d));
        http_resp_free(&r);
    }
    static const char *const bad_types[] = {
        "Content-Type: text/plain",
        "Content-Type: application/x-www-form-urlencoded",
        "Content-Type: application/jsonx",
        "Content-Type: multipart/form-data; boundary=x",
        "Content-Type:", /* none at all */
    };
    for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++) {
        const char *hdr[] = {bad_types[i], NULL};
        http_resp r;
        http_send(fixture_service(), "POST", CORE_Q, hdr, body, strlen(body), &r);
        char why[800];
        ck_assert_msg(check_error_resp(&r, 415, "UNSUPPORTED_MEDIA_TYPE", why, sizeof why),
                      "%s: %s", bad_types[i], why);
        http_resp_free(&r);
    }
}
END_TEST

START_TEST(routes_not_found)
{
    static const char *const paths[] = {
        "/nope", "/v1/nope", "/v1", "/health/core/extra", "/v1/databases/core/nope", "/v2/query"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        http_resp r;
        http_get(fixture_service(), paths[i], &r);
        char why[800];
        ck_assert_msg(check_error_resp(&r, 404, "NOT_FOUND", why, sizeof why), "GET %s: %s",
                      paths[i], why);
        http_resp_free(&r);
    }
}
END_TEST

START_TEST(query_string_ignored)
{
    http_resp r;
    http_get(fixture_service(), "/health/live?probe=1", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "status"), "live");
    http_resp_free(&r);
    http_postf(fixture_service(), CORE_Q "?x=y", &r, "{s:s}", "sql", "SELECT 1 AS one");
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
}
END_TEST

START_TEST(routes_method_not_allowed)
{
    static const struct {
        const char *method, *path, *allow;
    } cases[] = {
        {"POST", "/health", "GET"},
        {"DELETE", "/health/live", "GET"},
        {"PUT", "/health/core", "GET"},
        {"DELETE", "/v1/databases", "GET"},
        {"POST", "/v1/databases/core", "GET"},
        {"GET", "/v1/databases/core/query", "POST"},
        {"GET", "/v1/query", "POST"},
        {"PUT", "/v1/query", "POST"},
        {"GET", "/v1/databases/core/reconnect", "POST"},
        {"DELETE", "/v1/databases/core/pause", "POST"},
        {"GET", "/v1/databases/core/resume", "POST"},
        {"POST", "/metrics", "GET"},
        {"POST", "/openapi.json", "GET"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_resp r;
        http_send(fixture_service(), cases[i].method, cases[i].path, NULL, NULL, 0, &r);
        char why[800];
        ck_assert_msg(check_error_resp(&r, 405, "METHOD_NOT_ALLOWED", why, sizeof why), "%s %s: %s",
                      cases[i].method, cases[i].path, why);
        const char *allow = http_header_get(&r, "Allow");
        ck_assert_msg(allow != NULL && strstr(allow, cases[i].allow) != NULL,
                      "%s %s: Allow is '%s', expected it to list %s", cases[i].method,
                      cases[i].path, allow ? allow : "(none)", cases[i].allow);
        http_resp_free(&r);
    }
}
END_TEST

START_TEST(request_id_echo)
{
    static const char *const good[] = {
        "abc.DEF_123-x", "a",
        "0123456789012345678901234567890123456789012345678901234567890123", /* 64 */
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char h[128];
        snprintf(h, sizeof h, "X-Request-Id: %s", good[i]);
        const char *hdr[] = {h, NULL};
        http_resp r;
        http_send(fixture_service(), "GET", "/health/live", hdr, NULL, 0, &r);
        ASSERT_STATUS(&r, 200);
        ck_assert_str_eq(http_header_get(&r, "X-Request-Id"), good[i]);
        http_resp_free(&r);

        /* and in an error body */
        http_send(fixture_service(), "GET", "/nope", hdr, NULL, 0, &r);
        ASSERT_ERROR(&r, 404, "NOT_FOUND");
        ck_assert_str_eq(jstr(r.json, "error.request_id"), good[i]);
        http_resp_free(&r);
    }
}
END_TEST

START_TEST(request_id_replaced)
{
    static const char *const bad[] = {
        "bad id",
        "semi;colon",
        "01234567890123456789012345678901234567890123456789012345678901234", /* 65 */
        "quote\"d",
        "slash/x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char h[128];
        snprintf(h, sizeof h, "X-Request-Id: %s", bad[i]);
        const char *hdr[] = {h, NULL};
        http_resp r;
        http_send(fixture_service(), "GET", "/nope", hdr, NULL, 0, &r);
        ASSERT_ERROR(&r, 404, "NOT_FOUND");
        const char *rid = http_header_get(&r, "X-Request-Id");
        ck_assert_msg(is_request_id(rid), "generated id '%s' malformed", rid ? rid : "-");
        ck_assert_str_ne(rid, bad[i]);
        ck_assert_msg(strstr(rid, bad[i]) == NULL, "id '%s' echoes the bad one", rid);
        http_resp_free(&r);
    }

    /* generated ids differ between requests */
    http_resp a, b;
    http_get(fixture_service(), "/health/live", &a);
    http_get(fixture_service(), "/health/live", &b);
    assert_request_id(&a);
    assert_request_id(&b);
    ck_assert_str_ne(http_header_get(&a, "X-Request-Id"), http_header_get(&b, "X-Request-Id"));
    http_resp_free(&a);
    http_resp_free(&b);
}
END_TEST

START_TEST(request_id_on_every_response)
{
    static const char *const paths[] = {"/health",     "/health/ready", "/health/live",
                                        "/health/app", "/v1/databases", "/metrics",
                                        "/",           "/openapi.json"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        http_resp r;
        http_get(fixture_service(), paths[i], &r);
        char d[600];
        ck_assert_msg(r.status == 200, "GET %s: %s", paths[i], resp_desc(&r, d, sizeof d));
        const char *rid = http_header_get(&r, "X-Request-Id");
        ck_assert_msg(is_request_id(rid), "GET %s: X-Request-Id '%s'", paths[i], rid ? rid : "-");
        http_resp_free(&r);
    }
    http_resp r;
    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql", "SELECT 1");
    ASSERT_STATUS(&r, 200);
    assert_request_id(&r);
    http_resp_free(&r);
}
END_TEST

/* ===== documents ============================================================= */

START_TEST(openapi_served)
{
    http_resp r;
    http_get(fixture_service(), "/openapi.json", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert(ctype_is(&r, "application/json"));
    ck_assert_msg(json_is_object(r.json), "not a JSON object");
    ck_assert_str_eq(jstr(r.json, "openapi"), "3.1.0");
    json_t *paths = jget(r.json, "paths");
    static const char *const want[] = {"/health",
                                       "/health/live",
                                       "/health/ready",
                                       "/health/{name}",
                                       "/v1/databases",
                                       "/v1/databases/{name}",
                                       "/v1/databases/{name}/query",
                                       "/v1/query",
                                       "/v1/databases/{name}/reconnect",
                                       "/v1/databases/{name}/pause",
                                       "/v1/databases/{name}/resume",
                                       "/metrics",
                                       "/",
                                       "/openapi.json"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ck_assert_msg(json_is_object(json_object_get(paths, want[i])), "path %s missing", want[i]);
    }
    json_t *schemas = jget(r.json, "components.schemas");
    static const char *const sch[] = {
        "HealthReport", "DatabaseHealth", "PoolStats", "DatabaseEntry", "DatabaseList",
        "QueryRequest", "QueryResponse",  "ResultSet", "Column",        "Error"};
    for (size_t i = 0; i < sizeof sch / sizeof sch[0]; i++) {
        ck_assert_msg(json_is_object(json_object_get(schemas, sch[i])), "schema %s missing",
                      sch[i]);
    }
    ck_assert_str_eq(jstr(r.json, "components.securitySchemes.bearerAuth.scheme"), "bearer");
    http_resp_free(&r);
}
END_TEST

START_TEST(status_page)
{
    http_resp r;
    http_get(fixture_service(), "/", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert(ctype_is(&r, "text/html"));
    ck_assert_msg(contains_ci(r.body, "<html"), "not an HTML document");
    /* Tiles may be rendered on the server or by a script from the health
     * report; either way the page names the databases or reads /health. */
    bool names = strstr(r.body, "core") != NULL && strstr(r.body, "app") != NULL;
    ck_assert_msg(names || strstr(r.body, "health") != NULL,
                  "the page neither names the databases nor reads the health report");
    ck_assert_msg(contains_ci(r.body, "http-equiv=\"refresh\"") ||
                      strstr(r.body, "setTimeout") != NULL || strstr(r.body, "setInterval") != NULL,
                  "the page does not refresh itself");
    http_resp_free(&r);
}
END_TEST

/* Family of a sample name: the name itself when it has a TYPE, else the name
 * without a histogram/summary suffix. */
static bool metric_family(const json_t *types, const char *name, char *fam, size_t cap)
{
    snprintf(fam, cap, "%s", name);
    if (json_object_get(types, fam) != NULL) {
        return true;
    }
    static const char *const suffixes[] = {"_bucket", "_sum", "_count", "_total", "_created"};
    size_t n = strlen(fam);
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t sl = strlen(suffixes[i]);
        if (n > sl && strcmp(fam + n - sl, suffixes[i]) == 0) {
            fam[n - sl] = '\0';
            if (json_object_get(types, fam) != NULL) {
                return true;
            }
            fam[n - sl] = suffixes[i][0];
        }
    }
    return false;
}

START_TEST(metrics_format)
{
    http_resp r;
    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql", "SELECT 1");
    http_resp_free(&r);
    http_get(fixture_service(), "/metrics", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert(ctype_is(&r, "text/plain"));
    assert_request_id(&r);

    json_t *help = json_object(), *types = json_object();
    size_t samples = 0, histograms = 0;
    bool core = false, app = false;
    /* first pass: HELP and TYPE lines */
    char *save = NULL;
    char *copy = strdup(r.body);
    for (char *line = strtok_r(copy, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char name[200], kind[40];
        if (sscanf(line, "# HELP %199s", name) == 1) {
            json_object_set_new(help, name, json_true());
        } else if (sscanf(line, "# TYPE %199s %39s", name, kind) == 2) {
            json_object_set_new(types, name, json_string(kind));
            if (strcmp(kind, "histogram") == 0) {
                histograms++;
            }
        }
    }
    free(copy);
    copy = strdup(r.body);
    for (char *line = strtok_r(copy, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == '\0') {
            continue;
        }
        size_t n = strcspn(line, "{ ");
        char name[200], fam[200];
        ck_assert_msg(n > 0 && n < sizeof name, "bad sample line: %s", line);
        memcpy(name, line, n);
        name[n] = '\0';
        ck_assert_msg(metric_family(types, name, fam, sizeof fam), "no # TYPE for %s", name);
        ck_assert_msg(json_object_get(help, fam) != NULL, "no # HELP for %s", fam);
        const char *value = strrchr(line, ' ');
        ck_assert_msg(value != NULL, "no value: %s", line);
        char *end;
        strtod(value + 1, &end);
        ck_assert_msg(end != value + 1, "value not a number: %s", line);
        core = core || strstr(line, "=\"core\"") != NULL;
        app = app || strstr(line, "=\"app\"") != NULL;
        samples++;
    }
    free(copy);
    ck_assert_msg(samples > 0, "no samples");
    ck_assert_msg(histograms > 0, "no histogram (query latency)");
    ck_assert_msg(core && app, "no per-database samples for core and app");
    json_decref(help);
    json_decref(types);
    http_resp_free(&r);
}
END_TEST

/* ===== lifecycle (own service) ================================================ */

START_TEST(reconnect_database)
{
    http_resp r;
    http_send(fixture_service(), "POST", "/v1/databases/core/reconnect", NULL, NULL, 0, &r);
    ASSERT_STATUS(&r, 202);
    assert_request_id(&r);
    ck_assert_str_eq(jstr(r.json, "name"), "core");
    ck_assert_str_eq(jstr(r.json, "driver"), "sqlite");
    ck_assert(jstr(r.json, "state") != NULL);
    ck_assert(json_is_boolean(jget(r.json, "critical")));
    ck_assert(json_is_boolean(jget(r.json, "read_only")));
    ck_assert_int_eq(jint(r.json, "pool.max", -1), 10);
    http_resp_free(&r);

    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql", "SELECT count(*) AS n FROM users");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), 3);
    http_resp_free(&r);

    /* default alias, and an empty JSON body is fine too */
    http_post(fixture_service(), "/v1/databases/default/reconnect", "{}", &r);
    ASSERT_STATUS(&r, 202);
    ck_assert_str_eq(jstr(r.json, "name"), "core");
    http_resp_free(&r);

    static const char *const verbs[] = {"reconnect", "pause", "resume"};
    for (size_t i = 0; i < 3; i++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/databases/nope/%s", verbs[i]);
        http_send(fixture_service(), "POST", path, NULL, NULL, 0, &r);
        char why[800];
        ck_assert_msg(check_error_resp(&r, 404, "UNKNOWN_DATABASE", why, sizeof why), "%s: %s",
                      path, why);
        http_resp_free(&r);
    }
}
END_TEST

/* Polls /health until status is `want` (bounded). */
static bool wait_health_status(const char *want, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        http_resp r;
        http_get(fixture_service(), "/health", &r);
        bool ok = jstr(r.json, "status") != NULL && strcmp(jstr(r.json, "status"), want) == 0;
        http_resp_free(&r);
        if (ok) {
            return true;
        }
        if (now_ms() >= deadline) {
            return false;
        }
        sleep_ms(100);
    }
}

START_TEST(pause_and_resume)
{
    http_resp r;
    http_send(fixture_service(), "POST", "/v1/databases/app/pause", NULL, NULL, 0, &r);
    ASSERT_STATUS(&r, 202);
    ck_assert_str_eq(jstr(r.json, "name"), "app");
    ck_assert_str_eq(jstr(r.json, "state"), "paused");
    http_resp_free(&r);

    http_get(fixture_service(), "/v1/databases/app", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "state"), "paused");
    http_resp_free(&r);

    /* a paused database counts as healthy; the service is degraded, still ready */
    http_get(fixture_service(), "/health", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert(json_is_true(jget(r.json, "healthy")));
    ck_assert_str_eq(jstr(r.json, "status"), "degraded");
    ck_assert_str_eq(jstr(r.json, "databases.app.state"), "paused");
    ck_assert(json_is_true(jget(r.json, "databases.app.healthy")));
    ck_assert_str_eq(jstr(r.json, "databases.core.state"), "ready");
    http_resp_free(&r);
    http_get(fixture_service(), "/health/ready", &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
    http_get(fixture_service(), "/health/app", &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);

    /* the other database is not affected */
    http_postf(fixture_service(), CORE_Q, &r, "{s:s}", "sql", "SELECT count(*) AS n FROM users");
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);

    /* a query waits while paused and runs after resume */
    char url[128];
    proc_url(fixture_service(), APP_Q, url, sizeof url);
    static const char *const hdr[] = {"Content-Type: application/json", NULL};
    static const char body[] = "{\"sql\":\"SELECT count(*) AS n FROM orders\"}";
    http_req rq = {
        .method = "POST", .url = url, .headers = hdr, .body = body, .body_len = sizeof body - 1};
    http_async *a = http_async_start(&rq);
    ck_assert_ptr_nonnull(a);
    sleep_ms(800);
    http_send(fixture_service(), "POST", "/v1/databases/app/resume", NULL, NULL, 0, &r);
    ASSERT_STATUS(&r, 202);
    ck_assert_str_eq(jstr(r.json, "name"), "app");
    ck_assert_str_ne(jstr(r.json, "state"), "paused");
    http_resp_free(&r);
    http_async_join(a, &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), 3);
    /* the transfer itself, not the test's own sleep: it must have lasted
     * until the resume */
    ck_assert_msg(r.elapsed_s >= 0.7, "the query did not wait for resume (%.0f ms)",
                  r.elapsed_s * 1000);
    http_resp_free(&r);

    ck_assert_msg(wait_health_status("up", 10000), "/health never went back to up");
}
END_TEST

START_TEST(paused_query_times_out)
{
    http_resp r;
    http_send(fixture_service(), "POST", "/v1/databases/app/pause", NULL, NULL, 0, &r);
    ASSERT_STATUS(&r, 202);
    http_resp_free(&r);

    int64_t t0 = now_ms();
    http_postf(fixture_service(), APP_Q, &r, "{s:s}", "sql", "SELECT 1");
    int64_t took = now_ms() - t0;
    ASSERT_ERROR(&r, 503, "DB_PAUSED");
    const char *ra = http_header_get(&r, "Retry-After");
    ck_assert_msg(ra != NULL && isdigit((unsigned char)ra[0]), "Retry-After '%s'",
                  ra ? ra : "(none)");
    /* ACQUIRE_TIMEOUT_MS defaults to 5000 */
    ck_assert_msg(took >= 3000 && took < 12000, "DB_PAUSED after %lld ms", (long long)took);
    http_resp_free(&r);

    http_send(fixture_service(), "POST", "/v1/databases/app/resume", NULL, NULL, 0, &r);
    ASSERT_STATUS(&r, 202);
    http_resp_free(&r);
    http_postf(fixture_service(), APP_Q, &r, "{s:s}", "sql", "SELECT 1 AS one");
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
}
END_TEST

/* ===== auth (own service) ===================================================== */

/* Collects every response's headers and body, to look for secrets later. */
static void remember(json_t *seen, const http_resp *r)
{
    json_array_append_new(seen, json_stringn(r->body, r->body_len));
    for (size_t i = 0; i < r->n_headers; i++) {
        json_array_append_new(seen, json_string(r->headers[i].value));
    }
}

static void auth_get(json_t *seen, const char *path, const char *auth, long want_status)
{
    const char *hdr[] = {auth, NULL};
    http_resp r;
    http_send(fixture_service(), "GET", path, auth != NULL ? hdr : NULL, NULL, 0, &r);
    char d[600];
    ck_assert_msg(r.status == want_status, "GET %s with '%s': expected %ld, got %s", path,
                  auth ? auth : "(no auth)", want_status, resp_desc(&r, d, sizeof d));
    if (want_status == 401) {
        ASSERT_ERROR(&r, 401, "UNAUTHORIZED");
        const char *www = http_header_get(&r, "WWW-Authenticate");
        ck_assert_msg(www != NULL && strncasecmp(www, "Bearer", 6) == 0, "WWW-Authenticate '%s'",
                      www ? www : "(none)");
    }
    remember(seen, &r);
    http_resp_free(&r);
}

START_TEST(auth_required_on_v1)
{
    json_t *seen = json_array();
    auth_get(seen, "/v1/databases", NULL, 401);
    auth_get(seen, "/v1/databases", "Authorization: Bearer wrong", 401);
    auth_get(seen, "/v1/databases", "Authorization: Bearer s3cr3t-tok-AAAA111", 401);
    auth_get(seen, "/v1/databases", "Authorization: Bearer s3cr3t-tok-AAAA11111", 401);
    auth_get(seen, "/v1/databases", "Authorization: Bearer ", 401);
    auth_get(seen, "/v1/databases", "Authorization: Basic czNjcjN0LXRvay1BQUFBMTExMTo=", 401);
    auth_get(seen, "/v1/databases", "Authorization: s3cr3t-tok-AAAA1111", 401);
    auth_get(seen, "/v1/databases/core", NULL, 401);
    auth_get(seen, "/v1/databases/nope", NULL, 401);
    auth_get(seen, "/v1/databases", "Authorization: Bearer s3cr3t-tok-AAAA1111", 200);
    auth_get(seen, "/v1/databases/core", "Authorization: Bearer s3cr3t-tok-BBBB2222", 200);

    static const char body[] = "{\"sql\":\"SELECT count(*) AS n FROM users\"}";
    const char *no_auth[] = {"Content-Type: application/json", NULL};
    http_resp r;
    http_send(fixture_service(), "POST", CORE_Q, no_auth, body, strlen(body), &r);
    ASSERT_ERROR(&r, 401, "UNAUTHORIZED");
    remember(seen, &r);
    http_resp_free(&r);
    http_send(fixture_service(), "POST", "/v1/query", no_auth, body, strlen(body), &r);
    ASSERT_ERROR(&r, 401, "UNAUTHORIZED");
    http_resp_free(&r);
    http_send(fixture_service(), "POST", "/v1/databases/core/pause", NULL, NULL, 0, &r);
    ASSERT_ERROR(&r, 401, "UNAUTHORIZED");
    http_resp_free(&r);

    const char *with_b[] = {"Content-Type: application/json",
                            "Authorization: Bearer s3cr3t-tok-BBBB2222", NULL};
    http_send(fixture_service(), "POST", CORE_Q, with_b, body, strlen(body), &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), 3);
    remember(seen, &r);
    http_resp_free(&r);

    /* the scheme name is case-insensitive (RFC 9110) */
    const char *lower[] = {"Content-Type: application/json",
                           "Authorization: bearer s3cr3t-tok-AAAA1111", NULL};
    http_send(fixture_service(), "POST", "/v1/query", lower, body, strlen(body), &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);

    /* no secrets in anything the service said */
    for (size_t i = 0; i < json_array_size(seen); i++) {
        const char *s = json_string_value(json_array_get(seen, i));
        ck_assert_msg(s == NULL || (strstr(s, "AAAA1111") == NULL && strstr(s, "BBBB2222") == NULL),
                      "a token appears in a response: %s", s);
    }
    json_decref(seen);
}
END_TEST

START_TEST(auth_not_on_health_and_docs)
{
    json_t *seen = json_array();
    static const char *const open_paths[] = {
        "/health", "/health/live", "/health/ready", "/health/core", "/openapi.json", "/metrics",
        "/"};
    for (size_t i = 0; i < sizeof open_paths / sizeof open_paths[0]; i++) {
        auth_get(seen, open_paths[i], NULL, 200);
        auth_get(seen, open_paths[i], "Authorization: Bearer wrong", 200);
    }
    for (size_t i = 0; i < json_array_size(seen); i++) {
        const char *s = json_string_value(json_array_get(seen, i));
        ck_assert_msg(s == NULL || (strstr(s, "AAAA1111") == NULL && strstr(s, "BBBB2222") == NULL),
                      "a token appears in a response: %s", s);
    }
    json_decref(seen);
}
END_TEST

START_TEST(auth_tokens_not_logged)
{
    char *err = proc_stderr(fixture_service());
    char *out = proc_stdout(fixture_service());
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(strlen(err) > 0, "no logs at all");
    ck_assert_msg(strstr(err, "AAAA1111") == NULL && strstr(err, "BBBB2222") == NULL,
                  "a token appears in the logs");
    ck_assert_msg(strstr(out, "AAAA1111") == NULL && strstr(out, "BBBB2222") == NULL,
                  "a token appears on stdout");
    free(err);
    free(out);
}
END_TEST

/* ===== limits (own service, named databases) ================================ */

#define FIVE_ROWS                                                                                  \
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5) SELECT x FROM c"

START_TEST(max_rows_clamped)
{
    http_resp r;
    http_postf(fixture_service(), "/v1/query", &r, "{s:s}", "sql", FIVE_ROWS);
    ASSERT_STATUS(&r, 200);
    ck_assert_str_eq(jstr(r.json, "database"), "core");
    ck_assert_int_eq(json_array_size(jget(r.json, "results.0.rows")), 2);
    ck_assert_int_eq(jint(r.json, "results.0.row_count", -1), 2);
    ck_assert(json_is_true(jget(r.json, "results.0.truncated")));
    http_resp_free(&r);

    http_postf(fixture_service(), "/v1/query", &r, "{s:s, s:i}", "sql", FIVE_ROWS, "max_rows", 100);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.row_count", -1), 2);
    ck_assert(json_is_true(jget(r.json, "results.0.truncated")));
    http_resp_free(&r);

    http_postf(fixture_service(), "/v1/query", &r, "{s:s, s:i}", "sql", FIVE_ROWS, "max_rows", 1);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.row_count", -1), 1);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.x", -1), 1);
    ck_assert(json_is_true(jget(r.json, "results.0.truncated")));
    http_resp_free(&r);
}
END_TEST

START_TEST(timeout_ms_clamped_to_database)
{
    /* CORE_DB_QUERY_TIMEOUT_MS=500: a larger timeout_ms cannot raise it */
    http_resp r;
    int64_t t0 = now_ms();
    http_postf(fixture_service(), "/v1/databases/core/query", &r, "{s:s, s:i}", "sql", SLOW_CTE,
               "timeout_ms", 60000);
    int64_t took = now_ms() - t0;
    ASSERT_ERROR(&r, 504, "QUERY_TIMEOUT");
    ck_assert_msg(took < 6000, "answered after %lld ms", (long long)took);
    http_resp_free(&r);

    t0 = now_ms();
    http_postf(fixture_service(), "/v1/databases/core/query", &r, "{s:s}", "sql", SLOW_CTE);
    took = now_ms() - t0;
    ASSERT_ERROR(&r, 504, "QUERY_TIMEOUT");
    ck_assert_msg(took < 6000, "answered after %lld ms", (long long)took);
    http_resp_free(&r);

    http_postf(fixture_service(), "/v1/databases/core/query", &r, "{s:s}", "sql",
               "SELECT 2 AS two");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.two", -1), 2);
    http_resp_free(&r);
}
END_TEST

START_TEST(pool_exhausted)
{
    /* busy: POOL_MAX=1, ACQUIRE_TIMEOUT_MS=300, QUERY_TIMEOUT_MS=3000 */
    char url[128];
    proc_url(fixture_service(), "/v1/databases/busy/query", url, sizeof url);
    static const char *const hdr[] = {"Content-Type: application/json", NULL};
    static const char body[] = "{\"sql\":\"" SLOW_CTE "\"}";
    http_req rq = {
        .method = "POST", .url = url, .headers = hdr, .body = body, .body_len = sizeof body - 1};
    http_async *slow = http_async_start(&rq);
    ck_assert_ptr_nonnull(slow);
    /* wait (bounded) until the slow query holds the only connection */
    http_resp r;
    json_int_t in_use = 0;
    for (int64_t end = now_ms() + scaled_ms(10000); in_use != 1 && now_ms() < end;) {
        http_get(fixture_service(), "/health/busy", &r);
        in_use = jint(r.json, "pool.in_use", -1);
        http_resp_free(&r);
        if (in_use != 1)
            sleep_ms(20);
    }
    ck_assert_msg(in_use == 1, "the slow query never took the connection");

    int64_t t0 = now_ms();
    http_postf(fixture_service(), "/v1/databases/busy/query", &r, "{s:s}", "sql", "SELECT 1");
    int64_t took = now_ms() - t0;
    ASSERT_ERROR(&r, 503, "POOL_EXHAUSTED");
    const char *ra = http_header_get(&r, "Retry-After");
    ck_assert_msg(ra != NULL && isdigit((unsigned char)ra[0]), "Retry-After '%s'",
                  ra ? ra : "(none)");
    ck_assert_msg(took >= 200 && took < 2000, "POOL_EXHAUSTED after %lld ms", (long long)took);
    http_resp_free(&r);

    /* a saturated pool is busy, not down, and health never waits on it */
    t0 = now_ms();
    http_get(fixture_service(), "/health/busy", &r);
    took = now_ms() - t0;
    ASSERT_STATUS(&r, 200);
    ck_assert_msg(took < 1000, "/health/busy took %lld ms", (long long)took);
    ck_assert(json_is_true(jget(r.json, "healthy")));
    ck_assert_int_eq(jint(r.json, "pool.in_use", -1), 1);
    ck_assert_int_eq(jint(r.json, "pool.max", -1), 1);
    http_resp_free(&r);

    /* the other database serves */
    http_postf(fixture_service(), "/v1/databases/core/query", &r, "{s:s}", "sql",
               "SELECT 1 AS one");
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);

    http_async_join(slow, &r);
    ASSERT_ERROR(&r, 504, "QUERY_TIMEOUT");
    http_resp_free(&r);

    /* the connection came back */
    http_postf(fixture_service(), "/v1/databases/busy/query", &r, "{s:s}", "sql",
               "SELECT 1 AS one");
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
}
END_TEST

/* ============================================================================= */

static TCase *tcase(const char *name, void (*setup)(void))
{
    TCase *tc = tcase_create(name);
    tcase_add_unchecked_fixture(tc, setup, fixture_teardown);
    tcase_set_timeout(tc, 120);
    return tc;
}

static Suite *http_api_suite(void)
{
    Suite *s = suite_create("http_api");

    TCase *tc = tcase("health", setup_default);
    tcase_add_test(tc, health_full_report);
    tcase_add_test(tc, health_live);
    tcase_add_test(tc, health_ready_has_no_pool);
    tcase_add_test(tc, health_one_database);
    tcase_add_test(tc, health_unknown_database);
    tcase_add_test(tc, databases_list);
    tcase_add_test(tc, databases_one);
    tcase_add_test(tc, openapi_served);
    tcase_add_test(tc, status_page);
    tcase_add_test(tc, metrics_format);
    suite_add_tcase(s, tc);

    tc = tcase("query", setup_default);
    tcase_add_test(tc, query_users);
    tcase_add_test(tc, query_default_alias_and_v1_query);
    tcase_add_test(tc, query_app_orders_types);
    tcase_add_test(tc, query_params_bind);
    tcase_add_test(tc, query_params_are_not_pasted);
    tcase_add_test(tc, query_unicode_roundtrip);
    tcase_add_test(tc, query_missing_param);
    tcase_add_test(tc, query_sql_errors);
    tcase_add_test(tc, query_timeout);
    tcase_add_test(tc, query_rows_as);
    tcase_add_test(tc, query_max_rows);
    tcase_add_test(tc, query_column_names);
    tcase_add_test(tc, query_declared_types);
    tcase_add_test(tc, query_small_forms);
    tcase_add_test(tc, query_batch);
    tcase_add_test(tc, query_batch_with_ddl);
    tcase_add_test(tc, query_empty_result_and_operation);
    tcase_add_test(tc, query_value_types);
    tcase_add_test(tc, query_concurrent);
    tcase_add_test(tc, query_logged_with_id_and_operation);
    suite_add_tcase(s, tc);

    tc = tcase("input", setup_default);
    int n_bad = (int)(sizeof BAD / sizeof BAD[0]);
    tcase_add_loop_test(tc, bad_input_named, 0, n_bad);
    tcase_add_loop_test(tc, bad_input_v1_query, 0, n_bad);
    tcase_add_test(tc, bad_database_type);
    tcase_add_test(tc, unknown_keys_ignored);
    tcase_add_test(tc, deep_nesting_rejected);
    tcase_add_test(tc, bad_input_ran_nothing);
    tcase_add_test(tc, body_limit_content_length);
    tcase_add_test(tc, body_limit_chunked);
    tcase_add_test(tc, content_type);
    tcase_add_test(tc, routes_not_found);
    tcase_add_test(tc, routes_method_not_allowed);
    tcase_add_test(tc, query_string_ignored);
    tcase_add_test(tc, request_id_echo);
    tcase_add_test(tc, request_id_replaced);
    tcase_add_test(tc, request_id_on_every_response);
    suite_add_tcase(s, tc);

    tc = tcase("lifecycle", setup_default);
    tcase_add_test(tc, reconnect_database);
    tcase_add_test(tc, pause_and_resume);
    tcase_add_test(tc, paused_query_times_out);
    suite_add_tcase(s, tc);

    tc = tcase("auth", setup_auth);
    tcase_add_test(tc, auth_required_on_v1);
    tcase_add_test(tc, auth_not_on_health_and_docs);
    tcase_add_test(tc, auth_tokens_not_logged);
    suite_add_tcase(s, tc);

    tc = tcase("limits", setup_limits);
    tcase_add_test(tc, max_rows_clamped);
    tcase_add_test(tc, timeout_ms_clamped_to_database);
    suite_add_tcase(s, tc);

    /* Its bounds are promises about time: not run under memcheck. */
    tc = tcase("limits_timing", setup_limits);
    tcase_set_tags(tc, "timing");
    tcase_add_test(tc, pool_exhausted);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    harness_init();
    return check_run(http_api_suite());
}
