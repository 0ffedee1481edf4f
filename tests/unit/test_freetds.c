/* Unit suite for the FreeTDS db-lib driver, against the project's TDS test
 * server (tests/tds, backed by SQLite) started in-process for each test, on a
 * free loopback port. The driver is called directly through its function
 * table with a hand-built sg_db_config, as the pool would call it.
 *
 * main sets FREETDSCONF=/dev/null before anything, so no freetds.conf of the
 * machine changes what db-lib does.
 */
#include "check_main.h"
#include "driver_contract.h"
#include "sqlgate/driver.h"

#include <check.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tds_server.h"

#define USER     "sa"
#define PASSWORD "Pw-SECRET-7731!"
#define DBNAME   "testdb"
#define LONG_MS  30000 /* a deadline that a correct test never reaches */

static const sg_driver *const D = &sg_driver_freetds;

static int64_t slack_ms(int64_t ms)
{
    return dc_slack_ms(ms);
}

static const char *const versions[] = {"7.1", "7.2", "7.3", "7.4"};

/* Check fixtures take no arguments: the server of the running test and the
 * configuration pointing at it are file state. */
static tds_server *srv;
static sg_db_config cfg;

static void cfg_init(sg_db_config *c, int port, const char *version)
{
    dc_cfg_defaults(c, "freetds");
    c->host = "127.0.0.1";
    c->port = port;
    c->database = DBNAME;
    c->user = USER;
    c->password = PASSWORD;
    c->encrypt = SG_ENCRYPT_REQUEST;
    c->tds_version = version;
    c->app_name = "sqlgate:core";
}

static void setup(void)
{
    tds_server_options o = {.user = USER,
                            .password = PASSWORD,
                            .database = DBNAME,
                            .sqlite_path = ":memory:",
                            .port = 0};
    char why[256] = "";
    srv = tds_server_start(&o, why, sizeof why);
    ck_assert_msg(srv != NULL, "TDS test server did not start: %s", why);
    cfg_init(&cfg, tds_server_port(srv), "7.4");
}

static void teardown(void)
{
    tds_server_stop(srv);
    srv = NULL;
}

/* --- Helpers ------------------------------------------------------------------ */

static sg_driver_conn *open_ok(void)
{
    sg_err err = {0};
    sg_driver_conn *c = D->open(&cfg, sg_clock_ms() + LONG_MS, &err);
    ck_assert_msg(c != NULL, "open (TDS %s) failed: %s", cfg.tds_version, err.message);
    ck_assert(!D->unusable(c));
    return c;
}

static void exec_ok(sg_driver_conn *c, const char *sql, const sg_param *params, size_t n)
{
    dc_exec_ok(D, c, sql, params, n);
}

static int drain(sg_driver_conn *c, sg_err *err)
{
    return dc_drain(D, c, err);
}

static int64_t run_ok(sg_driver_conn *c, const char *sql, const sg_param *params, size_t n)
{
    return dc_run_ok(D, c, sql, params, n);
}

static const sg_column *result_ok(sg_driver_conn *c, size_t *n_cols)
{
    return dc_result_ok(D, c, n_cols);
}

static const sg_value *row_ok(sg_driver_conn *c)
{
    return dc_row_ok(D, c);
}

static void no_more_rows(sg_driver_conn *c)
{
    dc_no_more_rows(D, c);
}

static void no_more_results(sg_driver_conn *c)
{
    dc_no_more_results(D, c);
}

/* The single value of `sql` (one result, one row, one column); the batch is
 * left open on the row (caller calls finish). */
static const sg_value *scalar_of(sg_driver_conn *c, const char *sql, const sg_param *params,
                                 size_t n)
{
    exec_ok(c, sql, params, n);
    size_t nc;
    result_ok(c, &nc);
    ck_assert_uint_eq(nc, 1);
    return row_ok(c);
}

#define ASSERT_TEXT   DC_ASSERT_TEXT
#define ASSERT_INT    DC_ASSERT_INT
#define ASSERT_FLOAT  DC_ASSERT_FLOAT
#define ASSERT_BOOL   DC_ASSERT_BOOL
#define ASSERT_NULL   DC_ASSERT_NULL
#define ASSERT_BINARY DC_ASSERT_BINARY

#define ASSERT_NO_PASSWORD(text)                                                                   \
    ck_assert_msg(strstr((text), "SECRET") == NULL, "the password leaked: %s", (text))

/* --- Login ---------------------------------------------------------------------- */

START_TEST(login_ok)
{
    cfg.tds_version = versions[_i];
    sg_driver_conn *c = open_ok();
    sg_err err = {0};
    ck_assert_msg(D->ping(c, "SELECT 1", sg_clock_ms() + LONG_MS, &err) == 0, "ping: %s",
                  err.message);
    const sg_value *v = scalar_of(c, "SELECT DB_NAME() AS db", NULL, 0);
    ASSERT_TEXT(v, DBNAME);
    ck_assert_int_eq(D->finish(c), 0);
    v = scalar_of(c, "SELECT @@VERSION AS v", NULL, 0);
    ck_assert_int_eq(v->type, SG_V_TEXT);
    char version[512];
    snprintf(version, sizeof version, "%.*s", (int)v->u.s.len, v->u.s.ptr);
    ck_assert_msg(strstr(version, "TDS test server") != NULL, "@@VERSION: %s", version);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
    tds_server_stats st;
    tds_server_get_stats(srv, &st);
    ck_assert_uint_eq(st.logins, 1);
}
END_TEST

START_TEST(login_wrong_password)
{
    cfg.password = "Wrong-SECRET-pw";
    sg_err err = {0};
    int64_t t0 = sg_clock_ms();
    sg_driver_conn *c = D->open(&cfg, t0 + LONG_MS, &err);
    ck_assert_ptr_null(c);
    ck_assert_msg(sg_clock_ms() - t0 < slack_ms(10000), "a refused login took %lld ms",
                  (long long)(sg_clock_ms() - t0));
    ck_assert_int_eq(err.code, SG_DB_UNAVAILABLE);
    ck_assert_msg(err.message[0] != '\0', "no reason given");
    ck_assert_msg(strstr(err.message, "18456") != NULL, "the server's error is not named: %s",
                  err.message);
    ASSERT_NO_PASSWORD(err.message);
    tds_server_stats st;
    tds_server_get_stats(srv, &st);
    ck_assert_uint_eq(st.login_failures, 1);

    /* The refuse_login knob gives the same answer to the right password. */
    cfg.password = PASSWORD;
    ck_assert_int_eq(tds_server_set_knob(srv, TDS_KNOB_REFUSE_LOGIN, 1), 0);
    sg_err_clear(&err);
    ck_assert_ptr_null(D->open(&cfg, sg_clock_ms() + LONG_MS, &err));
    ck_assert_int_eq(err.code, SG_DB_UNAVAILABLE);
    ASSERT_NO_PASSWORD(err.message);
    tds_server_reset_knobs(srv);
    D->close(open_ok());
}
END_TEST

START_TEST(login_hang_gives_up_at_deadline)
{
    ck_assert_int_eq(tds_server_set_knob(srv, TDS_KNOB_LOGIN_HANG, 1), 0);
    sg_err err = {0};
    int64_t deadline = sg_clock_ms() + 1500;
    ck_assert_ptr_null(D->open(&cfg, deadline, &err));
    int64_t now = sg_clock_ms();
    ck_assert_msg(now <= deadline + slack_ms(2500), "open returned %lld ms after its deadline",
                  (long long)(now - deadline));
    ck_assert_msg(now >= deadline, "open gave up %lld ms before its deadline",
                  (long long)(deadline - now));
    ck_assert_int_eq(err.code, SG_DB_UNAVAILABLE);
    ck_assert_msg(strstr(err.message, "timed out") != NULL, "reason: %s", err.message);
    ASSERT_NO_PASSWORD(err.message);

    /* A slow login that answers before its deadline succeeds. */
    tds_server_reset_knobs(srv);
    ck_assert_int_eq(tds_server_set_knob(srv, TDS_KNOB_LOGIN_DELAY_MS, 1300), 0);
    int64_t t0 = sg_clock_ms();
    sg_driver_conn *c = D->open(&cfg, t0 + 6000, &err);
    ck_assert_msg(c != NULL, "a login delayed 1.3 s failed: %s", err.message);
    ck_assert_int_ge(sg_clock_ms() - t0, 1200);
    D->close(c);
}
END_TEST

/* --- Types ------------------------------------------------------------------------ */

static const char *const create_types =
    "CREATE TABLE t (id INT PRIMARY KEY, i INT, bi BIGINT, si SMALLINT, ti TINYINT, b BIT, "
    "f FLOAT, r REAL, d DECIMAL(12,2), n NUMERIC(20,5), m MONEY, sm SMALLMONEY, "
    "nv NVARCHAR(50), nm NVARCHAR(MAX), vb VARBINARY(16), dt DATE, tm TIME(3), "
    "d2 DATETIME2, dto DATETIMEOFFSET, g UNIQUEIDENTIFIER, od DATETIME)";

#define NONASCII "h\xc3\xa9llo w\xc3\xb6rld \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80"

static const char *const insert_types =
    "INSERT INTO t VALUES (1, 2147483647, 9007199254740993, -32768, 255, 1, 1.5, 2.25, "
    "1234567.89, -1.00001, 12.3456, -3.5, N'" NONASCII "', N'short', X'00DEADBEEF00', "
    "'2024-02-29', '23:59:58.123', '2024-01-31 12:34:56.1234567', "
    "'2024-01-31 12:34:56.5 +01:00', '6F9619FF-8B86-D011-B42D-00C04FC964FF', "
    "'2024-01-31 01:02:03.123');"
    "INSERT INTO t (id, i, bi, si, ti, b, f, dto) VALUES (2, -2147483648, "
    "-9223372036854775807, 32767, 0, 0, -0.125, '1999-12-31 23:00:00 -05:30');"
    "INSERT INTO t (id) VALUES (3)";

static const char *const type_names[] = {
    "int",     "int",        "bigint",    "smallint",       "tinyint",
    "bit",     "float",      "real",      "decimal",        "numeric",
    "money",   "smallmoney", "nvarchar",  NULL /* nm */,    "varbinary",
    "date",    "time",       "datetime2", "datetimeoffset", "uniqueidentifier",
    "datetime"};

START_TEST(types_round_trip)
{
    sg_driver_conn *c = open_ok();
    run_ok(c, create_types, NULL, 0);
    ck_assert_int_eq(run_ok(c, insert_types, NULL, 0), 3);

    exec_ok(c, "SELECT * FROM t ORDER BY id", NULL, 0);
    size_t nc;
    const sg_column *cols = result_ok(c, &nc);
    ck_assert_uint_eq(nc, 21);
    ck_assert_str_eq(cols[0].name, "id");
    ck_assert_str_eq(cols[13].name, "nm");
    for (size_t i = 0; i < nc; i++) {
        if (type_names[i] != NULL)
            ck_assert_msg(strcmp(cols[i].type, type_names[i]) == 0, "column %s: type %s, not %s",
                          cols[i].name, cols[i].type, type_names[i]);
    }
    ck_assert_msg(strcmp(cols[13].type, "nvarchar") == 0 || strcmp(cols[13].type, "ntext") == 0,
                  "NVARCHAR(MAX) column typed %s", cols[13].type);

    const sg_value *v = row_ok(c);
    ASSERT_INT(&v[0], 1);
    ASSERT_INT(&v[1], 2147483647);
    ASSERT_INT(&v[2], 9007199254740993LL);
    ASSERT_INT(&v[3], -32768);
    ASSERT_INT(&v[4], 255);
    ASSERT_BOOL(&v[5], true);
    ASSERT_FLOAT(&v[6], 1.5);
    ASSERT_FLOAT(&v[7], 2.25);
    ASSERT_TEXT(&v[8], "1234567.89");
    ASSERT_TEXT(&v[9], "-1.00001");
    ASSERT_TEXT(&v[10], "12.3456");
    ASSERT_TEXT(&v[11], "-3.5000");
    ASSERT_TEXT(&v[12], NONASCII);
    ASSERT_TEXT(&v[13], "short");
    ASSERT_BINARY(&v[14], "\x00\xde\xad\xbe\xef\x00", 6);
    ASSERT_TEXT(&v[15], "2024-02-29");
    ASSERT_TEXT(&v[16], "23:59:58.123");
    ASSERT_TEXT(&v[17], "2024-01-31T12:34:56.1234567");
    ASSERT_TEXT(&v[18], "2024-01-31T12:34:56.5000000+01:00");
    ASSERT_TEXT(&v[19], "6F9619FF-8B86-D011-B42D-00C04FC964FF");
    ASSERT_TEXT(&v[20], "2024-01-31T01:02:03.123");

    v = row_ok(c);
    ASSERT_INT(&v[0], 2);
    ASSERT_INT(&v[1], -2147483647 - 1);
    ASSERT_INT(&v[2], -9223372036854775807LL);
    ASSERT_INT(&v[3], 32767);
    ASSERT_INT(&v[4], 0);
    ASSERT_BOOL(&v[5], false);
    ASSERT_FLOAT(&v[6], -0.125);
    ASSERT_TEXT(&v[18], "1999-12-31T23:00:00.0000000-05:30");

    v = row_ok(c);
    ASSERT_INT(&v[0], 3);
    for (size_t i = 1; i < nc; i++)
        ck_assert_msg(v[i].type == SG_V_NULL, "column %s of the NULL row has type %d", cols[i].name,
                      (int)v[i].type);
    no_more_rows(c);
    no_more_results(c);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

/* Below TDS 7.3 SQL Server sends date and time types as text; every other
 * type must come through each version unchanged. */
START_TEST(types_each_version)
{
    cfg.tds_version = versions[_i];
    sg_driver_conn *c = open_ok();
    run_ok(c, create_types, NULL, 0);
    run_ok(c, insert_types, NULL, 0);
    exec_ok(c,
            "SELECT i, bi, b, f, d, n, m, nv, vb, g, dt, d2, dto FROM t WHERE id = 1 "
            "SELECT nm FROM t WHERE id = 3",
            NULL, 0);
    size_t nc;
    const sg_column *cols = result_ok(c, &nc);
    ck_assert_uint_eq(nc, 13);
    ck_assert_str_eq(cols[1].type, "bigint");
    ck_assert_str_eq(cols[4].type, "decimal");
    ck_assert_str_eq(cols[9].type, "uniqueidentifier");
    const sg_value *v = row_ok(c);
    ASSERT_INT(&v[0], 2147483647);
    ASSERT_INT(&v[1], 9007199254740993LL);
    ASSERT_BOOL(&v[2], true);
    ASSERT_FLOAT(&v[3], 1.5);
    ASSERT_TEXT(&v[4], "1234567.89");
    ASSERT_TEXT(&v[5], "-1.00001");
    ASSERT_TEXT(&v[6], "12.3456");
    ASSERT_TEXT(&v[7], NONASCII);
    ASSERT_BINARY(&v[8], "\x00\xde\xad\xbe\xef\x00", 6);
    ASSERT_TEXT(&v[9], "6F9619FF-8B86-D011-B42D-00C04FC964FF");
    if (strcmp(cfg.tds_version, "7.3") >= 0) {
        ck_assert_str_eq(cols[10].type, "date");
        ASSERT_TEXT(&v[10], "2024-02-29");
        ASSERT_TEXT(&v[11], "2024-01-31T12:34:56.1234567");
        ASSERT_TEXT(&v[12], "2024-01-31T12:34:56.5000000+01:00");
    } else {
        ck_assert_str_eq(cols[10].type, "nvarchar");
        ASSERT_TEXT(&v[10], "2024-02-29");
        ASSERT_TEXT(&v[11], "2024-01-31 12:34:56.1234567");
        ASSERT_TEXT(&v[12], "2024-01-31 12:34:56.5000000 +01:00");
    }
    no_more_rows(c);
    result_ok(c, &nc);
    v = row_ok(c);
    ASSERT_NULL(&v[0]);
    no_more_rows(c);
    no_more_results(c);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

/* "x'y" + count copies of unit + "z": a new string, *len set. */
static char *make_text(const char *unit, size_t count, size_t *len)
{
    size_t u = strlen(unit);
    *len = 3 + count * u + 1;
    char *t = malloc(*len + 1);
    ck_assert_ptr_nonnull(t);
    memcpy(t, "x'y", 3);
    for (size_t i = 0; i < count; i++)
        memcpy(t + 3 + i * u, unit, u);
    t[*len - 1] = 'z';
    t[*len] = '\0';
    return t;
}

/* Stores text through a parameter and reads it back byte for byte, with its
 * length in characters. */
static void text_round_trip(sg_driver_conn *c, int id, const char *unit, size_t count,
                            int64_t chars)
{
    size_t n;
    char *text = make_text(unit, count, &n);
    sg_param p[] = {{.name = "id", .value = {.type = SG_V_INT, .u.i = id}},
                    {.name = "s", .value = {.type = SG_V_TEXT, .u.s = {text, n}}}};
    ck_assert_int_eq(run_ok(c, "INSERT INTO big (id, s) VALUES (@id, @s)", p, 2), 1);
    exec_ok(c, "SELECT s, LEN(s) AS n FROM big WHERE id = @id", p, 1);
    size_t nc;
    result_ok(c, &nc);
    const sg_value *v = row_ok(c);
    ck_assert_int_eq(v[0].type, SG_V_TEXT);
    ck_assert_msg(v[0].u.s.len == n && memcmp(v[0].u.s.ptr, text, n) == 0,
                  "%zu bytes of text (%zu x '%s') came back as %zu bytes", n, count, unit,
                  v[0].u.s.len);
    ASSERT_INT(&v[1], chars);
    ck_assert_int_eq(D->finish(c), 0);
    free(text);
}

static void binary_round_trip(sg_driver_conn *c, int id, size_t n)
{
    char *bin = malloc(n);
    ck_assert_ptr_nonnull(bin);
    for (size_t i = 0; i < n; i++)
        bin[i] = (char)(i * 7);
    sg_param p[] = {{.name = "id", .value = {.type = SG_V_INT, .u.i = id}},
                    {.name = "b", .value = {.type = SG_V_BINARY, .u.s = {bin, n}}}};
    ck_assert_int_eq(run_ok(c, "INSERT INTO big (id, b) VALUES (@id, @b)", p, 2), 1);
    const sg_value *v = scalar_of(c, "SELECT b FROM big WHERE id = @id", p, 1);
    ck_assert_int_eq(v->type, SG_V_BINARY);
    ck_assert_msg(v->u.s.len == n && memcmp(v->u.s.ptr, bin, n) == 0,
                  "%zu bytes of binary came back as %zu bytes", n, v->u.s.len);
    ck_assert_int_eq(D->finish(c), 0);
    free(bin);
}

/* NVARCHAR(MAX) and VARBINARY(MAX) beyond 8000 bytes, with text outside
 * Latin-1, both as stored data and as parameters. */
START_TEST(long_values)
{
    cfg.tds_version = versions[_i];
    sg_driver_conn *c = open_ok();
    run_ok(c, "CREATE TABLE big (id INT, s NVARCHAR(MAX), b VARBINARY(MAX))", NULL, 0);
    run_ok(c,
           "INSERT INTO big (id, s) VALUES (0, replace(hex(zeroblob(5000)), '00', N'\xc3\xa9"
           "b'))",
           NULL, 0);
    const sg_value *v = scalar_of(c, "SELECT s FROM big WHERE id = 0", NULL, 0);
    ck_assert_int_eq(v->type, SG_V_TEXT);
    ck_assert_uint_eq(v->u.s.len, 5000 * 3);
    for (size_t i = 0; i < 5000; i++)
        ck_assert_int_eq(memcmp(v->u.s.ptr + 3 * i,
                                "\xc3\xa9"
                                "b",
                                3),
                         0);
    ck_assert_int_eq(D->finish(c), 0);

    text_round_trip(c, 1, "\xc3\xa9", 9000, 9004);         /* 18004 bytes */
    text_round_trip(c, 2, "\xe6\x97\xa5", 2000, 2004);     /* 6004 bytes, not in any code page */
    text_round_trip(c, 3, "\xf0\x9f\x98\x80", 3000, 3004); /* surrogate pairs */
    text_round_trip(c, 4, "a", 3996, 4000);                /* 4000 bytes */
    text_round_trip(c, 5, "a", 3997, 4001);
    text_round_trip(c, 6, "a", 20000, 20004);
    binary_round_trip(c, 10, 8000);
    binary_round_trip(c, 11, 8001);
    binary_round_trip(c, 12, 100000);
    D->close(c);
}
END_TEST

START_TEST(column_names_and_types)
{
    sg_driver_conn *c = open_ok();
    exec_ok(c,
            "SELECT 1 AS a, 5000000000 AS big, 2.5, 'x' AS [my col], X'01' AS bin, NULL AS nul, "
            "CAST('12.5' AS DECIMAL(5,2)) AS dec, CAST(7 AS SMALLINT) AS s, "
            "CAST(3 AS TINYINT) AS t, CAST(1 AS BIT) AS bt, CAST('2024-01-31' AS DATE) AS dt",
            NULL, 0);
    size_t nc;
    const sg_column *cols = result_ok(c, &nc);
    ck_assert_uint_eq(nc, 11);
    static const char *const names[] = {"a",   "big", "",  "my col", "bin", "nul",
                                        "dec", "s",   "t", "bt",     "dt"};
    static const char *const types[] = {"int",       "bigint",   "float",   "nvarchar",
                                        "varbinary", "nvarchar", "decimal", "smallint",
                                        "tinyint",   "bit",      "date"};
    for (size_t i = 0; i < nc; i++) {
        ck_assert_msg(strcmp(cols[i].name, names[i]) == 0, "column %zu named '%s', not '%s'", i,
                      cols[i].name, names[i]);
        ck_assert_msg(strcmp(cols[i].type, types[i]) == 0, "column %zu typed '%s', not '%s'", i,
                      cols[i].type, types[i]);
    }
    const sg_value *v = row_ok(c);
    ASSERT_INT(&v[0], 1);
    ASSERT_INT(&v[1], 5000000000LL);
    ASSERT_FLOAT(&v[2], 2.5);
    ASSERT_TEXT(&v[3], "x");
    ASSERT_BINARY(&v[4], "\x01", 1);
    ASSERT_NULL(&v[5]);
    ASSERT_TEXT(&v[6], "12.50");
    ASSERT_INT(&v[7], 7);
    ASSERT_INT(&v[8], 3);
    ASSERT_BOOL(&v[9], true);
    ASSERT_TEXT(&v[10], "2024-01-31");
    no_more_rows(c);
    no_more_results(c);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

/* Column types by the server's own names (the declaration FreeTDS rebuilds
 * from the wire), with the precision and scale of decimal and numeric; at
 * TDS 7.1 and 7.2 SQL Server sends date and time types as nvarchar, and
 * below 7.2 the MAX types and xml as ntext, text and image. */
START_TEST(server_type_names)
{
    cfg.tds_version = versions[_i];
    bool v73 = _i >= 2, v72 = _i >= 1;
    sg_driver_conn *c = open_ok();
    run_ok(c,
           "CREATE TABLE tn (vc VARCHAR(10), nv NVARCHAR(10), ch CHAR(3), nc NCHAR(3), tx TEXT, "
           "nt NTEXT, vb VARBINARY(4), bn BINARY(2), im IMAGE, g UNIQUEIDENTIFIER, "
           "dto DATETIMEOFFSET(3), d2 DATETIME2, sdt SMALLDATETIME, dt DATETIME, d DATE, "
           "t TIME(2), m MONEY, sm SMALLMONEY, de DECIMAL(10,2), nu NUMERIC(38,10), b BIT, "
           "ti TINYINT, si SMALLINT, i INT, bi BIGINT, r REAL, f FLOAT, x XML, "
           "vm VARCHAR(MAX), nm NVARCHAR(MAX), bm VARBINARY(MAX), rv ROWVERSION)",
           NULL, 0);
    exec_ok(c, "SELECT * FROM tn", NULL, 0);
    size_t nc;
    const sg_column *cols = result_ok(c, &nc);
    const char *dates = v73 ? NULL : "nvarchar";
    const struct {
        const char *type;
        int precision, scale;
    } want[] = {
        {"varchar", 0, 0},
        {"nvarchar", 0, 0},
        {"char", 0, 0},
        {"nchar", 0, 0},
        {"text", 0, 0},
        {"ntext", 0, 0},
        {"varbinary", 0, 0},
        {"binary", 0, 0},
        {"image", 0, 0},
        {"uniqueidentifier", 0, 0},
        {dates ? dates : "datetimeoffset", 0, 0},
        {dates ? dates : "datetime2", 0, 0},
        {"smalldatetime", 0, 0},
        {"datetime", 0, 0},
        {dates ? dates : "date", 0, 0},
        {dates ? dates : "time", 0, 0},
        {"money", 0, 0},
        {"smallmoney", 0, 0},
        {"decimal", 10, 2},
        {"numeric", 38, 10},
        {"bit", 0, 0},
        {"tinyint", 0, 0},
        {"smallint", 0, 0},
        {"int", 0, 0},
        {"bigint", 0, 0},
        {"real", 0, 0},
        {"float", 0, 0},
        {v72 ? "xml" : "ntext", 0, 0},
        {v72 ? "varchar" : "text", 0, 0},
        {v72 ? "nvarchar" : "ntext", 0, 0},
        {v72 ? "varbinary" : "image", 0, 0},
        {"timestamp", 0, 0},
    };
    ck_assert_uint_eq(nc, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < nc; i++) {
        ck_assert_msg(strcmp(cols[i].type, want[i].type) == 0,
                      "TDS %s: column %s typed '%s', not '%s'", cfg.tds_version, cols[i].name,
                      cols[i].type, want[i].type);
        ck_assert_msg(cols[i].precision == want[i].precision && cols[i].scale == want[i].scale,
                      "column %s: precision %d scale %d, not %d, %d", cols[i].name,
                      cols[i].precision, cols[i].scale, want[i].precision, want[i].scale);
    }
    no_more_rows(c);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

/* Values of the large and legacy types: xml and ntext as text, image as
 * bytes, text in the server's code page. */
START_TEST(xml_and_legacy_values)
{
    cfg.tds_version = versions[_i];
    sg_driver_conn *c = open_ok();
    run_ok(c, "CREATE TABLE lg (id INT, x XML, tx TEXT, nt NTEXT, im IMAGE)", NULL, 0);
    run_ok(c,
           "INSERT INTO lg VALUES (1, N'<a b=\"1\">\xc3\xa9\xe6\x97\xa5</a>', 'caf\xc3\xa9', "
           "N'\xe6\x97\xa5\xe6\x9c\xac', X'00FF10'), (2, NULL, NULL, NULL, NULL)",
           NULL, 0);
    exec_ok(c, "SELECT x, tx, nt, im FROM lg ORDER BY id", NULL, 0);
    size_t nc;
    result_ok(c, &nc);
    ck_assert_uint_eq(nc, 4);
    const sg_value *v = row_ok(c);
    ASSERT_TEXT(&v[0], "<a b=\"1\">\xc3\xa9\xe6\x97\xa5</a>");
    ASSERT_TEXT(&v[1], "caf\xc3\xa9");
    ASSERT_TEXT(&v[2], "\xe6\x97\xa5\xe6\x9c\xac");
    ASSERT_BINARY(&v[3], "\x00\xff\x10", 3);
    v = row_ok(c);
    for (int i = 0; i < 4; i++)
        ASSERT_NULL(&v[i]);
    no_more_rows(c);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

/* db-lib keeps a sql_variant's base type to itself: the column is refused
 * by name, before any row, and the pool gets a connection it can reuse or
 * knows to close. */
START_TEST(sql_variant_refused)
{
    sg_driver_conn *c = open_ok();
    run_ok(c, "CREATE TABLE sv (id INT, v SQL_VARIANT); INSERT INTO sv VALUES (1, 42), (2, 'x')",
           NULL, 0);
    exec_ok(c, "SELECT id, v AS val FROM sv", NULL, 0);
    sg_err err = {0};
    const sg_column *cols;
    size_t nc;
    ck_assert_int_eq(D->next_result(c, &cols, &nc, &err), -1);
    ck_assert_int_eq(err.code, SG_BAD_REQUEST);
    ck_assert_msg(strstr(err.message, "val") != NULL && strstr(err.message, "sql_variant") != NULL,
                  "message: %s", err.message);
    if (D->finish(c) == 0) {
        const sg_value *v =
            scalar_of(c, "SELECT CAST(v AS NVARCHAR(10)) AS s FROM sv WHERE id = 2", NULL, 0);
        ASSERT_TEXT(v, "x");
        ck_assert_int_eq(D->finish(c), 0);
    }
    D->close(c);
}
END_TEST

/* --- Batches ---------------------------------------------------------------------- */

/* The same counts when the batch has parameters (sp_executesql), where each
 * statement's count travels in a DONEINPROC token. */
START_TEST(rows_affected_with_params)
{
    cfg.tds_version = versions[_i];
    sg_driver_conn *c = open_ok();
    run_ok(c, "CREATE TABLE ra (x INT, s NVARCHAR(20))", NULL, 0);
    run_ok(c, "INSERT INTO ra (x) VALUES (1), (2), (30), (40)", NULL, 0);
    sg_param p[] = {{.name = "lo", .value = {.type = SG_V_INT, .u.i = 10}},
                    {.name = "s", .value = {.type = SG_V_TEXT, .u.s = {"tag", 3}}}};
    ck_assert_int_eq(run_ok(c, "UPDATE ra SET s = @s WHERE x >= @lo", p, 2), 2);
    ck_assert_int_eq(run_ok(c, "UPDATE ra SET s = @s WHERE x < 0", p, 2), 0);
    /* One statement per batch is counted exactly. Inside sp_executesql,
     * db-lib hides the counts of all but the batch's last DONE, so a
     * parameterized batch of several statements may under-report (README,
     * "Limits"); batches without parameters are counted statement by
     * statement (the rows_affected test). */
    ck_assert_int_eq(run_ok(c, "INSERT INTO ra (x, s) VALUES (@lo, @s)", p, 2), 1);
    ck_assert_int_eq(run_ok(c, "DELETE FROM ra WHERE s = @s", p, 2), 3);
    /* Inside sp_executesql db-lib 1.3's dbresults() passes over the
     * DONEINPROC tokens of statements without results, so only the last
     * count would reach dbcount(): a batch of several DML statements runs
     * as a plain batch with its parameters declared in it, counted
     * statement by statement (1 + 2). */
    ck_assert_int_eq(
        run_ok(c, "INSERT INTO ra (x) VALUES (@lo); INSERT INTO ra (x) VALUES (@lo), (@lo)", p, 2),
        3);
    ck_assert_int_eq(
        run_ok(c, "UPDATE ra SET s = @s WHERE x = @lo; DELETE FROM ra WHERE x = 1", p, 2), 4);
    /* Every type of value is declared with its own literal. */
    sg_param all[] = {{.name = "i", .value = {.type = SG_V_INT, .u.i = -9007199254740993LL}},
                      {.name = "f", .value = {.type = SG_V_FLOAT, .u.f = 0.1}},
                      {.name = "b", .value = {.type = SG_V_BOOL, .u.b = true}},
                      {.name = "t", .value = {.type = SG_V_TEXT, .u.s = {"it's", 4}}},
                      {.name = "e", .value = {.type = SG_V_TEXT, .u.s = {"", 0}}},
                      {.name = "n", .value = {.type = SG_V_NULL}}};
    ck_assert_int_eq(
        run_ok(c,
               "INSERT INTO ra (x, s) VALUES (1, @t); "
               "UPDATE ra SET s = @t WHERE s = @t AND @e = '' AND @n IS NULL AND @b = 1 "
               "AND @i < 0 AND @f > 0.09",
               all, 6),
        2);
    exec_ok(c, "SELECT s FROM ra WHERE x = 1", NULL, 0);
    size_t nc;
    result_ok(c, &nc);
    ASSERT_TEXT(&row_ok(c)[0], "it's");
    no_more_rows(c);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

/* SET NOCOUNT ON: SQL Server reports no counts (DONE without its count bit;
 * inside sp_executesql no DONEINPROC at all), so rows_affected is 0; the
 * session reset puts NOCOUNT back for the next batch. */
START_TEST(nocount)
{
    sg_driver_conn *c = open_ok();
    run_ok(c, "CREATE TABLE nc (x INT)", NULL, 0);
    ck_assert_int_eq(
        run_ok(c, "SET NOCOUNT ON; INSERT INTO nc VALUES (1), (2); DELETE FROM nc", NULL, 0), 0);
    sg_param p[] = {{.name = "x", .value = {.type = SG_V_INT, .u.i = 5}}};
    ck_assert_int_eq(
        run_ok(c, "SET NOCOUNT ON; INSERT INTO nc VALUES (@x); INSERT INTO nc VALUES (@x)", p, 1),
        0);
    /* A result set still comes back whole. */
    exec_ok(c, "SET NOCOUNT ON; SELECT x FROM nc", NULL, 0);
    size_t nc;
    result_ok(c, &nc);
    ASSERT_INT(&row_ok(c)[0], 5);
    ASSERT_INT(&row_ok(c)[0], 5);
    no_more_rows(c);
    no_more_results(c);
    ck_assert_int_eq(D->finish(c), 0);
    ck_assert_int_eq(run_ok(c, "UPDATE nc SET x = 6", NULL, 0), 2);
    D->close(c);
}
END_TEST

/* --- Parameters -------------------------------------------------------------------- */

START_TEST(injection_stays_data)
{
    sg_driver_conn *c = open_ok();
    run_ok(c, "CREATE TABLE victims (id INT, s NVARCHAR(200))", NULL, 0);
    static const char *const evil[] = {
        "O'Brien",
        "'); DROP TABLE victims; --",
        "x' OR '1'='1",
        "\"; DELETE FROM victims; SELECT \"",
        "N'; EXEC sqlgate_test_knob 'raise_error', 50001; --",
        "@other",
        "a\\'b",
    };
    size_t n = sizeof evil / sizeof evil[0];
    for (size_t i = 0; i < n; i++) {
        sg_param p[] = {
            {.name = "id", .value = {.type = SG_V_INT, .u.i = (int64_t)i}},
            {.name = "s", .value = {.type = SG_V_TEXT, .u.s = {evil[i], strlen(evil[i])}}}};
        /* Every other value also goes through the plain batch that a
         * batch of several DML statements becomes (its values declared as
         * literals in the text). */
        if (i % 2 == 0)
            ck_assert_int_eq(run_ok(c, "INSERT INTO victims (id, s) VALUES (@id, @s)", p, 2), 1);
        else
            ck_assert_int_eq(run_ok(c,
                                    "INSERT INTO victims (id, s) VALUES (@id, @s); "
                                    "UPDATE victims SET s = @s WHERE id = @id AND s = @s",
                                    p, 2),
                             2);
    }
    ck_assert_int_eq(tds_server_get_knob(srv, TDS_KNOB_RAISE_ERROR), 0);
    exec_ok(c, "SELECT id, s FROM victims ORDER BY id", NULL, 0);
    size_t nc;
    result_ok(c, &nc);
    for (size_t i = 0; i < n; i++) {
        const sg_value *v = row_ok(c);
        ASSERT_INT(&v[0], (int64_t)i);
        ASSERT_TEXT(&v[1], evil[i]);
    }
    no_more_rows(c);
    ck_assert_int_eq(D->finish(c), 0);
    /* Matching on the quoted value finds exactly that row. */
    sg_param q[] = {{.name = "s", .value = {.type = SG_V_TEXT, .u.s = {evil[2], strlen(evil[2])}}}};
    const sg_value *v = scalar_of(c, "SELECT COUNT(*) AS n FROM victims WHERE s = @s", q, 1);
    ASSERT_INT(v, 1);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

/* db-lib sends a value of length 0 as NULL; the driver declares empty
 * values inside the statement instead, so "" arrives as "" (and 0x as 0x),
 * beside ordinary parameters, alone, and as the only parameters. */
START_TEST(empty_string_parameter)
{
    cfg.tds_version = versions[_i];
    sg_driver_conn *c = open_ok();
    sg_param p[] = {{.name = "ok", .value = {.type = SG_V_INT, .u.i = 1}},
                    {.name = "blank", .value = {.type = SG_V_TEXT, .u.s = {"", 0}}},
                    {.name = "nul", .value = {.type = SG_V_NULL}},
                    {.name = "empty", .value = {.type = SG_V_BINARY, .u.s = {"", 0}}}};
    exec_ok(c,
            "SELECT @ok AS ok, @blank AS blank, @nul AS nul, @empty AS empty, "
            "LEN(@blank) AS n, DATALENGTH(@empty) AS bytes",
            p, 4);
    size_t nc;
    result_ok(c, &nc);
    ck_assert_uint_eq(nc, 6);
    const sg_value *v = row_ok(c);
    ASSERT_INT(&v[0], 1);
    ASSERT_TEXT(&v[1], "");
    ASSERT_NULL(&v[2]);
    ASSERT_BINARY(&v[3], "", 0);
    ASSERT_INT(&v[4], 0);
    ASSERT_INT(&v[5], 0);
    no_more_rows(c);
    no_more_results(c);
    ck_assert_int_eq(D->finish(c), 0);

    /* Stored and matched as an empty string, not as NULL. */
    run_ok(c, "CREATE TABLE es (id INT, s NVARCHAR(10))", NULL, 0);
    ck_assert_int_eq(run_ok(c, "INSERT INTO es VALUES (1, @blank)", &p[1], 1), 1);
    v = scalar_of(c, "SELECT COUNT(*) AS n FROM es WHERE s = @blank AND s IS NOT NULL", &p[1], 1);
    ASSERT_INT(v, 1);
    ck_assert_int_eq(D->finish(c), 0);

    /* An error keeps the caller's line number. */
    sg_err err = {0};
    ck_assert_int_eq(D->exec(c, "SELECT @blank AS b\nSELECT * FROM no_such_table", &p[1], 1,
                             sg_clock_ms() + LONG_MS, &err) == 0 &&
                         drain(c, &err) == 0,
                     0);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    ck_assert_int_eq(err.sql.number, 208);
    ck_assert_int_eq(err.sql.line, 2);
    ck_assert_int_eq(D->finish(c), 0);
    ck_assert(!D->unusable(c));
    D->close(c);
}
END_TEST

/* --- Errors ----------------------------------------------------------------------- */

static void expect_sql_error(sg_driver_conn *c, const char *sql, long number, int severity,
                             int state, int line)
{
    sg_err err = {0};
    int rc = D->exec(c, sql, NULL, 0, sg_clock_ms() + LONG_MS, &err);
    if (rc == 0) {
        rc = drain(c, &err);
        ck_assert_int_eq(D->finish(c), 0);
    }
    ck_assert_msg(rc == -1, "%s did not fail", sql);
    ck_assert_msg(err.code == SG_SQL_ERROR, "%s: %s %s", sql, sg_code_name(err.code), err.message);
    ck_assert(err.has_sql);
    ck_assert_int_eq(err.sql.number, number);
    if (severity >= 0)
        ck_assert_int_eq(err.sql.severity, severity);
    else
        ck_assert_int_gt(err.sql.severity, 10);
    if (state >= 0)
        ck_assert_int_eq(err.sql.state, state);
    ck_assert_int_eq(err.sql.line, line);
    ck_assert_msg(err.message[0] != '\0', "no message");
    ck_assert(!D->unusable(c));
}

START_TEST(sql_errors)
{
    cfg.tds_version = versions[_i];
    sg_driver_conn *c = open_ok();
    expect_sql_error(c, "SELECT * FROM nosuch", 208, 16, -1, 1);
    /* SQL Server gives 102 severity 15; the test server sends 16. */
    expect_sql_error(c, "SELEC 1", 102, -1, -1, 1);
    expect_sql_error(c, "\n\nRAISERROR('custom %s', 15, 3, 'text')", 50000, 15, 3, 3);
    expect_sql_error(c, "THROW 50001, N'thrown', 2", 50001, 16, 2, 1);
    sg_err err = {0};
    ck_assert_int_eq(D->exec(c, "SELECT * FROM nosuch", NULL, 0, sg_clock_ms() + LONG_MS, &err),
                     -1);
    ck_assert_msg(strstr(err.message, "nosuch") != NULL, "message: %s", err.message);
    /* The same through sp_executesql. */
    sg_param p[] = {{.name = "x", .value = {.type = SG_V_INT, .u.i = 1}}};
    sg_err_clear(&err);
    int rc = D->exec(c, "SELECT @x FROM nosuch", p, 1, sg_clock_ms() + LONG_MS, &err);
    if (rc == 0) {
        rc = drain(c, &err);
        ck_assert_int_eq(D->finish(c), 0);
    }
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    ck_assert_int_eq(err.sql.number, 208);
    const sg_value *v = scalar_of(c, "SELECT 7 AS seven", NULL, 0);
    ASSERT_INT(v, 7);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

START_TEST(constraint_error_after_rows)
{
    sg_driver_conn *c = open_ok();
    sg_err err = {0};
    const sg_column *cols;
    size_t nc;
    const sg_value *v;
    /* An error after rows were read, with unread rows skipped by next_result. */
    run_ok(c, "CREATE TABLE u (x INT PRIMARY KEY); INSERT INTO u VALUES (1), (2)", NULL, 0);
    exec_ok(c, "SELECT x FROM u\nINSERT INTO u VALUES (1)", NULL, 0);
    result_ok(c, &nc);
    ASSERT_INT(&row_ok(c)[0], 1);
    sg_err_clear(&err);
    ck_assert_int_eq(D->next_result(c, &cols, &nc, &err), -1);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    ck_assert_int_eq(err.sql.number, 2627);
    ck_assert_int_eq(D->finish(c), 0);
    v = scalar_of(c, "SELECT COUNT(*) AS n FROM u", NULL, 0);
    ASSERT_INT(v, 2);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

/* --- Timeouts and cancellation ------------------------------------------------------- */

START_TEST(query_timeout)
{
    cfg.tds_version = versions[_i];
    sg_driver_conn *c = open_ok();
    sg_err err = {0};
    const sg_value *v;
    /* A timeout after a first result was read, with parameters. */
    sg_param p[] = {{.name = "x", .value = {.type = SG_V_INT, .u.i = 12}}};
    int64_t deadline = sg_clock_ms() + 1000;
    int rc = D->exec(c, "SELECT @x AS x; WAITFOR DELAY '00:00:10'; SELECT 13 AS y", p, 1, deadline,
                     &err);
    if (rc == 0) {
        size_t nc;
        const sg_column *cols;
        rc = D->next_result(c, &cols, &nc, &err);
        if (rc == 1)
            rc = drain(c, &err);
    }
    int64_t now = sg_clock_ms();
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(err.code == SG_QUERY_TIMEOUT, "%s %s", sg_code_name(err.code), err.message);
    ck_assert_msg(now <= deadline + slack_ms(2500), "answered %lld ms after the deadline",
                  (long long)(now - deadline));
    ck_assert_int_eq(D->finish(c), 0);
    v = scalar_of(c, "SELECT 14 AS x", NULL, 0);
    ASSERT_INT(v, 14);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

START_TEST(query_timeout_attention_ignored)
{
    sg_driver_conn *c = open_ok();
    ck_assert_int_eq(tds_server_set_knob(srv, TDS_KNOB_IGNORE_ATTENTION, 1), 0);
    sg_err err = {0};
    int64_t deadline = sg_clock_ms() + 1000;
    int rc = D->exec(c, "WAITFOR DELAY '00:00:10'", NULL, 0, deadline, &err);
    if (rc == 0)
        rc = drain(c, &err);
    int64_t now = sg_clock_ms();
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(err.code == SG_QUERY_TIMEOUT, "%s %s", sg_code_name(err.code), err.message);
    ck_assert_msg(now <= deadline + slack_ms(3000), "answered %lld ms after the deadline",
                  (long long)(now - deadline));
    ck_assert_int_eq(D->finish(c), -1);
    ck_assert(D->unusable(c));
    sg_err_clear(&err);
    ck_assert_int_eq(D->exec(c, "SELECT 1", NULL, 0, sg_clock_ms() + LONG_MS, &err), -1);
    ck_assert_int_eq(err.code, SG_DB_UNAVAILABLE);
    D->close(c);
}
END_TEST

START_TEST(query_hang_times_out)
{
    sg_driver_conn *c = open_ok();
    ck_assert_int_eq(tds_server_set_knob(srv, TDS_KNOB_QUERY_HANG, 1), 0);
    sg_err err = {0};
    int64_t deadline = sg_clock_ms() + 1000;
    ck_assert_int_eq(D->ping(c, "SELECT 1", deadline, &err), -1);
    int64_t now = sg_clock_ms();
    ck_assert_msg(err.code == SG_QUERY_TIMEOUT, "%s %s", sg_code_name(err.code), err.message);
    ck_assert_msg(now <= deadline + slack_ms(2500), "answered %lld ms after the deadline",
                  (long long)(now - deadline));
    tds_server_reset_knobs(srv);
    ck_assert(!D->unusable(c));
    sg_err_clear(&err);
    ck_assert_msg(D->ping(c, "SELECT 1", sg_clock_ms() + LONG_MS, &err) == 0, "ping: %s",
                  err.message);
    D->close(c);
}
END_TEST

/* --- Broken connections and server faults -------------------------------------------- */

static void fill_rows(sg_driver_conn *c)
{
    run_ok(c, "CREATE TABLE k (x INT); INSERT INTO k VALUES (1), (2), (3)", NULL, 0);
}

START_TEST(close_mid_result)
{
    sg_driver_conn *c = open_ok();
    fill_rows(c);
    ck_assert_int_eq(tds_server_set_knob(srv, TDS_KNOB_CLOSE_MID_RESULT, 1), 0);
    sg_err err = {0};
    int rc = D->exec(c, "SELECT x FROM k", NULL, 0, sg_clock_ms() + LONG_MS, &err);
    if (rc == 0) {
        size_t nc;
        const sg_column *cols;
        rc = D->next_result(c, &cols, &nc, &err);
        if (rc == 1) {
            const sg_value *v;
            rc = D->next_row(c, &v, &err);
            if (rc == 1) {
                ASSERT_INT(&v[0], 1);
                rc = drain(c, &err);
                if (rc == 0)
                    rc = D->next_row(c, &v, &err);
            }
        }
    }
    ck_assert_msg(rc == -1, "the broken result ended with %d", rc);
    ck_assert_msg(err.code == SG_DB_UNAVAILABLE, "%s %s", sg_code_name(err.code), err.message);
    ASSERT_NO_PASSWORD(err.message);
    ck_assert(D->unusable(c));
    ck_assert_int_eq(D->finish(c), -1);
    sg_err_clear(&err);
    ck_assert_int_eq(D->ping(c, "SELECT 1", sg_clock_ms() + LONG_MS, &err), -1);
    ck_assert_int_eq(err.code, SG_DB_UNAVAILABLE);
    D->close(c);
}
END_TEST

START_TEST(garbage_token)
{
    sg_driver_conn *c = open_ok();
    fill_rows(c);
    ck_assert_int_eq(tds_server_set_knob(srv, TDS_KNOB_GARBAGE_TOKEN, 1), 0);
    sg_err err = {0};
    int rc = D->exec(c, "SELECT x FROM k", NULL, 0, sg_clock_ms() + LONG_MS, &err);
    if (rc == 0)
        rc = drain(c, &err);
    ck_assert_msg(rc == -1, "a garbage token went unnoticed");
    ck_assert_msg(err.code != SG_OK && err.message[0] != '\0', "no error set");
    ck_assert(D->unusable(c));
    ck_assert_int_eq(D->finish(c), -1);
    D->close(c);
}
END_TEST

START_TEST(raise_error_knob)
{
    sg_driver_conn *c = open_ok();
    ck_assert_int_eq(tds_server_set_knob(srv, TDS_KNOB_RAISE_ERROR, 50123), 0);
    sg_err err = {0};
    int rc = D->exec(c, "SELECT 1", NULL, 0, sg_clock_ms() + LONG_MS, &err);
    if (rc == 0) {
        rc = drain(c, &err);
        ck_assert_int_eq(D->finish(c), 0);
    }
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(err.code == SG_SQL_ERROR, "%s %s", sg_code_name(err.code), err.message);
    ck_assert_int_eq(err.sql.number, 50123);
    ck_assert(!D->unusable(c));
    /* Through sp_executesql too. */
    sg_param p[] = {{.name = "x", .value = {.type = SG_V_INT, .u.i = 1}}};
    sg_err_clear(&err);
    rc = D->exec(c, "SELECT @x", p, 1, sg_clock_ms() + LONG_MS, &err);
    if (rc == 0) {
        rc = drain(c, &err);
        ck_assert_int_eq(D->finish(c), 0);
    }
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    ck_assert_int_eq(err.sql.number, 50123);
    tds_server_reset_knobs(srv);
    const sg_value *v = scalar_of(c, "SELECT 1 AS one", NULL, 0);
    ASSERT_INT(v, 1);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

/* --- Transactions and finish ----------------------------------------------------------- */

START_TEST(open_transaction_not_reused)
{
    sg_driver_conn *c = open_ok();
    run_ok(c, "CREATE TABLE tr (x INT)", NULL, 0);
    D->close(c);
    sg_err err = {0};

    /* Through sp_executesql, and with the lower-case keyword. */
    c = open_ok();
    sg_param p[] = {{.name = "x", .value = {.type = SG_V_INT, .u.i = 2}}};
    exec_ok(c, "begin transaction; INSERT INTO tr VALUES (@x)", p, 1);
    ck_assert_int_eq(drain(c, &err), 0);
    ck_assert_int_eq(D->finish(c), -1);
    D->close(c);

    /* A batch that commits leaves the connection reusable. */
    c = open_ok();
    exec_ok(c, "BEGIN TRAN; INSERT INTO tr VALUES (3); COMMIT", NULL, 0);
    ck_assert_int_eq(drain(c, &err), 0);
    ck_assert_int_eq(D->finish(c), 0);
    ck_assert(!D->unusable(c));
    const sg_value *v = scalar_of(c, "SELECT COUNT(*) AS n FROM tr", NULL, 0);
    ASSERT_INT(v, 1); /* the other was rolled back when its connection closed */
    ck_assert_int_eq(D->finish(c), 0);
    v = scalar_of(c, "SELECT @@TRANCOUNT AS n", NULL, 0);
    ASSERT_INT(v, 0);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

/* --- Concurrency ------------------------------------------------------------------------ */

typedef struct worker {
    const sg_db_config *cfg;
    int id;
    int ok;
    char why[300];
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    sg_err err = {0};
    sg_driver_conn *c = D->open(w->cfg, sg_clock_ms() + LONG_MS, &err);
    if (c == NULL) {
        snprintf(w->why, sizeof w->why, "open: %.200s", err.message);
        return NULL;
    }
    for (int i = 0; i < 40; i++) {
        sg_param p[] = {{.name = "w", .value = {.type = SG_V_INT, .u.i = w->id}},
                        {.name = "i", .value = {.type = SG_V_INT, .u.i = i}}};
        if (D->exec(c,
                    "INSERT INTO conc VALUES (@w, @i); "
                    "SELECT COUNT(*) AS n, @w * 1000 + @i AS tag FROM conc WHERE w = @w",
                    p, 2, sg_clock_ms() + LONG_MS, &err) != 0) {
            snprintf(w->why, sizeof w->why, "exec %d: %.200s", i, err.message);
            break;
        }
        const sg_column *cols;
        size_t nc;
        const sg_value *v;
        bool good = D->next_result(c, &cols, &nc, &err) == 1 && nc == 2 &&
                    D->next_row(c, &v, &err) == 1 && v[0].type == SG_V_INT && v[0].u.i == i + 1 &&
                    v[1].type == SG_V_INT && v[1].u.i == (int64_t)w->id * 1000 + i;
        if (D->finish(c) != 0) {
            snprintf(w->why, sizeof w->why, "finish %d failed", i);
            break;
        }
        if (!good) {
            snprintf(w->why, sizeof w->why, "wrong answer at %d: %.200s", i, err.message);
            break;
        }
        w->ok++;
    }
    D->close(c);
    return NULL;
}

START_TEST(concurrent_connections)
{
    sg_driver_conn *c = open_ok();
    run_ok(c, "CREATE TABLE conc (w INT, i INT)", NULL, 0);
    enum { N = 6 };
    worker w[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        w[i] = (worker){.cfg = &cfg, .id = i};
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    /* A slow statement on the main connection meanwhile blocks nobody. */
    const sg_value *v = scalar_of(c, "WAITFOR DELAY '00:00:01'; SELECT 1 AS one", NULL, 0);
    ASSERT_INT(v, 1);
    ck_assert_int_eq(D->finish(c), 0);
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(w[i].ok == 40, "worker %d: %d ok, %s", i, w[i].ok, w[i].why);
    }
    v = scalar_of(c, "SELECT COUNT(*) AS n FROM conc", NULL, 0);
    ASSERT_INT(v, N * 40);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

/* --- Session reset (issue 17) ------------------------------------------------ */

/* The text value of `sql`, compared with want; the batch is finished. */
static void expect_text(sg_driver_conn *c, const char *sql, const char *want)
{
    const sg_value *v = scalar_of(c, sql, NULL, 0);
    ASSERT_TEXT(v, want);
    ck_assert_int_eq(D->finish(c), 0);
}

static void expect_int(sg_driver_conn *c, const char *sql, int64_t want)
{
    const sg_value *v = scalar_of(c, sql, NULL, 0);
    ASSERT_INT(v, want);
    ck_assert_int_eq(D->finish(c), 0);
}

/* What one batch leaves in the session is gone for the next one on the same
 * connection: temporary objects, #temp tables, SET options, USE. */
START_TEST(session_reset_between_batches)
{
    cfg_init(&cfg, tds_server_port(srv), versions[_i]);
    sg_driver_conn *c = open_ok();
    run_ok(c,
           "CREATE TABLE users (id INT, name NVARCHAR(50)); INSERT INTO users VALUES (1, N'Ada')",
           NULL, 0);

    run_ok(c, "CREATE TEMP VIEW users AS SELECT 666 AS id, 'attacker' AS name", NULL, 0);
    expect_int(c, "SELECT id FROM users", 1);

    expect_int(c,
               "CREATE TABLE #scratch (a INT); INSERT INTO #scratch VALUES (5); "
               "SELECT a FROM #scratch",
               5);
    expect_sql_error(c, "SELECT a FROM #scratch", 208, -1, -1, 1);

    expect_text(c, "SET LANGUAGE Deutsch; SELECT @@LANGUAGE AS l", "Deutsch");
    expect_text(c, "SELECT @@LANGUAGE AS l", "us_english");
    expect_int(c, "SET LOCK_TIMEOUT 10; SELECT @@LOCK_TIMEOUT AS t", 10);
    expect_int(c, "SELECT @@LOCK_TIMEOUT AS t", -1);

    expect_text(c, "USE tempdb; SELECT DB_NAME() AS d", "tempdb");
    expect_text(c, "SELECT DB_NAME() AS d", DBNAME);
    /* Through sp_executesql too. */
    sg_param p[] = {{.name = "x", .value = {.type = SG_V_INT, .u.i = 3}}};
    exec_ok(c, "SET LOCK_TIMEOUT 20; SELECT @x AS x", p, 1);
    sg_err err = {0};
    ck_assert_int_eq(drain(c, &err), 0);
    ck_assert_int_eq(D->finish(c), 0);
    expect_int(c, "SELECT @@LOCK_TIMEOUT AS t", -1);

    tds_server_stats st;
    tds_server_get_stats(srv, &st);
    ck_assert_msg(st.resets >= 8, "%llu resets", (unsigned long long)st.resets);
    ck_assert(!D->unusable(c));
    D->close(c);
}
END_TEST

/* Plain reads leave nothing in the session: no reset round trip for them. */
START_TEST(session_reset_skipped_for_plain_reads)
{
    sg_driver_conn *c = open_ok();
    run_ok(c, "CREATE TABLE users (id INT, name NVARCHAR(50))", NULL, 0);
    tds_server_stats before, after;
    tds_server_get_stats(srv, &before);
    expect_int(c, "SELECT COUNT(*) AS n FROM users", 0);
    expect_int(c, "\n  select 1 AS one", 1);
    sg_param p[] = {{.name = "settings", .value = {.type = SG_V_INT, .u.i = 3}}};
    exec_ok(c, "WITH x AS (SELECT @settings AS v) SELECT v FROM x", p, 1);
    sg_err err = {0};
    ck_assert_int_eq(drain(c, &err), 0);
    ck_assert_int_eq(D->finish(c), 0);
    tds_server_get_stats(srv, &after);
    ck_assert_uint_eq(after.resets, before.resets);
    /* A word that sets state anywhere in the batch, or a '#', brings it back. */
    expect_int(c, "SELECT 1 AS one; SET LOCK_TIMEOUT 5", 1);
    expect_int(c, "SELECT COUNT(*) AS n FROM users WHERE name <> '#'", 0);
    expect_int(c, "/* comment first */ SELECT 1 AS one", 1);
    tds_server_get_stats(srv, &after);
    ck_assert_uint_eq(after.resets, before.resets + 3);
    D->close(c);
}
END_TEST

/* A batch that fails before its first result (dbsqlexec fails, finish() is
 * not called) is reset too. */
START_TEST(session_reset_after_failed_batch)
{
    sg_driver_conn *c = open_ok();
    sg_err err = {0};
    int rc = D->exec(c, "USE tempdb; SET LANGUAGE Deutsch; SELECT * FROM no_such_table", NULL, 0,
                     sg_clock_ms() + LONG_MS, &err);
    if (rc == 0) {
        rc = drain(c, &err);
        D->finish(c);
    }
    ck_assert_int_eq(rc, -1);
    ck_assert(!D->unusable(c));
    expect_text(c, "SELECT DB_NAME() AS d", DBNAME);
    expect_text(c, "SELECT @@LANGUAGE AS l", "us_english");
    D->close(c);
}
END_TEST

/* What sp_reset_connection does not undo (an impersonation WITH NO REVERT,
 * an application role, the isolation level on older servers): the
 * connection is closed, never handed to the next caller. */
START_TEST(impersonation_not_reused)
{
    static const char *const batches[] = {
        "EXECUTE AS USER = 'app_reader'",
        "exec\n  as login = 'sa' WITH NO REVERT",
        "SETUSER 'guest'",
        "EXEC sp_setapprole 'reporting', 'pw'",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    };
    for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++) {
        sg_driver_conn *c = open_ok();
        sg_err err = {0};
        if (D->exec(c, batches[i], NULL, 0, sg_clock_ms() + LONG_MS, &err) == 0)
            drain(c, &err);
        D->finish(c);
        ck_assert_msg(D->unusable(c), "%s: connection kept", batches[i]);
        D->close(c);
    }
    /* Words that only look alike do not. */
    sg_driver_conn *c = open_ok();
    run_ok(c, "SELECT 1 AS executed_as_planned", NULL, 0);
    ck_assert(!D->unusable(c));
    D->close(c);
}
END_TEST

static Suite *freetds_suite(void)
{
    Suite *s = suite_create("freetds");
    TCase *tc = tcase_create("login");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, login_ok, 0, 4);
    tcase_add_test(tc, login_wrong_password);
    tcase_add_test(tc, login_hang_gives_up_at_deadline);
    suite_add_tcase(s, tc);

    tc = tcase_create("types");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, types_round_trip);
    tcase_add_loop_test(tc, types_each_version, 0, 4);
    tcase_add_loop_test(tc, long_values, 0, 4);
    tcase_add_test(tc, column_names_and_types);
    tcase_add_loop_test(tc, server_type_names, 0, 4);
    tcase_add_loop_test(tc, xml_and_legacy_values, 0, 4);
    tcase_add_test(tc, sql_variant_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("batches");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, rows_affected_with_params, 0, 4);
    tcase_add_test(tc, injection_stays_data);
    tcase_add_loop_test(tc, empty_string_parameter, 0, 4);
    tcase_add_test(tc, nocount);
    tcase_add_loop_test(tc, sql_errors, 0, 4);
    tcase_add_test(tc, constraint_error_after_rows);
    tcase_add_test(tc, open_transaction_not_reused);
    suite_add_tcase(s, tc);

    tc = tcase_create("faults");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_loop_test(tc, query_timeout, 0, 4);
    tcase_add_test(tc, query_timeout_attention_ignored);
    tcase_add_test(tc, query_hang_times_out);
    tcase_add_test(tc, close_mid_result);
    tcase_add_test(tc, garbage_token);
    tcase_add_test(tc, raise_error_knob);
    tcase_add_test(tc, concurrent_connections);
    suite_add_tcase(s, tc);

    tc = tcase_create("session");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, session_reset_between_batches, 0, 4);
    tcase_add_test(tc, session_reset_after_failed_batch);
    tcase_add_test(tc, session_reset_skipped_for_plain_reads);
    tcase_add_test(tc, impersonation_not_reused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* Before db-lib or anything else reads it. */
    setenv("FREETDSCONF", "/dev/null", 1);
    return check_run(freetds_suite());
}
