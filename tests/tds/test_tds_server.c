/* Check suite for the TDS test server, driven through FreeTDS db-lib (a client
 * the project did not write) plus raw sockets for malformed input, and direct
 * calls for the pure wire/type functions.
 *
 * db-lib's handlers are process-wide; each connection's messages go to the
 * `rec` in its user data. During dbopen the DBPROCESS has no user data yet, so
 * login-time messages go to a thread-local record (the one mutable global,
 * forced by db-lib's design).
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sybdb.h>

#include "check_main.h"
#include "tds_server.h"
#include "tds_types.h"
#include "tds_wire.h"

#define USER     "sa"
#define PASSWORD "Secret1!"
#define DBNAME   "testdb"
/* db-lib reports uniqueidentifier columns as this type; sybdb.h has no name for it. */
#define TEST_SYBUNIQUE 36

typedef struct rec {
    int msgno; /* last server message with severity > 10 */
    int severity;
    int state;
    int line;
    char msg[512];
    int nerrors;
    int dberr; /* last db-lib error */
    int timeouts;
    int timeout_limit; /* 20003 answers INT_TIMEOUT this many times, then INT_CANCEL */
} rec;

static _Thread_local rec login_rec;

static rec *rec_of(DBPROCESS *p)
{
    rec *r = p ? (rec *)dbgetuserdata(p) : NULL;
    return r ? r : &login_rec;
}

static int err_handler(DBPROCESS *p, int severity, int dberr, int oserr, char *dberrstr,
                       char *oserrstr)
{
    (void)severity;
    (void)oserr;
    (void)dberrstr;
    (void)oserrstr;
    rec *r = rec_of(p);
    r->dberr = dberr;
    if (dberr == SYBETIME) {
        r->timeouts++;
        if (r == &login_rec || r->timeouts > r->timeout_limit)
            return INT_CANCEL;
        return INT_TIMEOUT;
    }
    return INT_CANCEL;
}

static int msg_handler(DBPROCESS *p, DBINT msgno, int state, int severity, char *text, char *server,
                       char *proc, int line)
{
    (void)server;
    (void)proc;
    rec *r = rec_of(p);
    if (severity > 10) {
        r->msgno = msgno;
        r->severity = severity;
        r->state = state;
        r->line = line;
        snprintf(r->msg, sizeof(r->msg), "%s", text);
        r->nerrors++;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static tds_server *start_server(void)
{
    tds_server_options o = {.user = USER,
                            .password = PASSWORD,
                            .database = DBNAME,
                            .sqlite_path = ":memory:",
                            .port = 0};
    char err[256];
    tds_server *s = tds_server_start(&o, err, sizeof(err));
    ck_assert_msg(s != NULL, "server start: %s", err);
    ck_assert_int_gt(tds_server_port(s), 0);
    return s;
}

static DBPROCESS *connect_as(tds_server *s, const char *user, const char *pw, const char *db,
                             BYTE ver)
{
    LOGINREC *l = dblogin();
    ck_assert_ptr_nonnull(l);
    DBSETLUSER(l, user);
    DBSETLPWD(l, pw);
    DBSETLAPP(l, "test_tds_server");
    DBSETLCHARSET(l, "UTF-8");
    dbsetlversion(l, ver);
    if (db)
        DBSETLDBNAME(l, db);
    char host[64];
    snprintf(host, sizeof(host), "127.0.0.1:%d", tds_server_port(s));
    memset(&login_rec, 0, sizeof(login_rec));
    DBPROCESS *p = dbopen(l, host);
    dbloginfree(l);
    if (p != NULL) {
        rec *r = calloc(1, sizeof(*r));
        ck_assert_ptr_nonnull(r);
        r->timeout_limit = 5;
        dbsetuserdata(p, (BYTE *)r);
    }
    return p;
}

static DBPROCESS *connect_ok(tds_server *s, BYTE ver)
{
    DBPROCESS *p = connect_as(s, USER, PASSWORD, DBNAME, ver);
    ck_assert_msg(p != NULL, "login failed: %d %s", login_rec.msgno, login_rec.msg);
    return p;
}

static void disconnect(DBPROCESS *p)
{
    if (p == NULL)
        return;
    rec *r = (rec *)dbgetuserdata(p);
    dbclose(p);
    free(r);
}

static RETCODE run(DBPROCESS *p, const char *sql)
{
    if (dbcmd(p, sql) != SUCCEED)
        return FAIL;
    return dbsqlexec(p);
}

/* Runs sql, drains every result; returns FAIL if any step failed. */
static RETCODE run_all(DBPROCESS *p, const char *sql)
{
    RETCODE rc = run(p, sql);
    if (rc != SUCCEED)
        return rc;
    RETCODE r;
    for (int guard = 0; guard < 100 && (r = dbresults(p)) != NO_MORE_RESULTS; guard++) {
        if (r == FAIL)
            return FAIL;
        while (dbnextrow(p) != NO_MORE_ROWS)
            ;
    }
    return SUCCEED;
}

/* Column value as text through db-lib's own conversion. */
static void col_text(DBPROCESS *p, int col, char *out, size_t n)
{
    BYTE *d = dbdata(p, col);
    DBINT len = dbdatlen(p, col);
    if (d == NULL) {
        snprintf(out, n, "NULL");
        return;
    }
    int type = dbcoltype(p, col);
    if (type == SYBCHAR || type == SYBVARCHAR || type == SYBTEXT) {
        snprintf(out, n, "%.*s", (int)len, (const char *)d);
        return;
    }
    DBINT got = dbconvert(p, type, d, len, SYBCHAR, (BYTE *)out, (DBINT)n - 1);
    ck_assert_int_ge(got, 0);
    out[got] = '\0';
}

/* First column of the first row of sql, as text. */
static void query_text(DBPROCESS *p, const char *sql, char *out, size_t n)
{
    ck_assert_msg(run(p, sql) == SUCCEED, "%s: %d %s", sql, rec_of(p)->msgno, rec_of(p)->msg);
    ck_assert_int_eq(dbresults(p), SUCCEED);
    ck_assert_int_eq(dbnextrow(p), REG_ROW);
    col_text(p, 1, out, n);
    while (dbnextrow(p) != NO_MORE_ROWS)
        ;
    while (dbresults(p) != NO_MORE_RESULTS)
        while (dbnextrow(p) != NO_MORE_ROWS)
            ;
}

static const BYTE versions[] = {DBVERSION_71, DBVERSION_72, DBVERSION_73, DBVERSION_74};

/* ---- login ----------------------------------------------------------------------------- */

START_TEST(login_each_version)
{
    tds_server *s = start_server();
    DBPROCESS *p = connect_ok(s, versions[_i]);
    char v[256];
    query_text(p, "SELECT 1", v, sizeof(v));
    ck_assert_str_eq(v, "1");
    query_text(p, "SELECT @@VERSION", v, sizeof(v));
    ck_assert_ptr_nonnull(strstr(v, "sqlgate TDS test server"));
    ck_assert_str_eq(dbname(p), DBNAME);
    disconnect(p);
    tds_server_stats st;
    tds_server_get_stats(s, &st);
    ck_assert_uint_eq(st.logins, 1);
    tds_server_stop(s);
}
END_TEST

START_TEST(login_rejected)
{
    tds_server *s = start_server();
    ck_assert_ptr_null(connect_as(s, USER, "wrong", DBNAME, DBVERSION_74));
    ck_assert_int_eq(login_rec.msgno, 18456);
    ck_assert_int_eq(login_rec.severity, 14);
    ck_assert_ptr_null(strstr(login_rec.msg, "wrong"));
    ck_assert_ptr_null(connect_as(s, "nobody", PASSWORD, DBNAME, DBVERSION_74));
    ck_assert_int_eq(login_rec.msgno, 18456);
    ck_assert_ptr_null(connect_as(s, USER, PASSWORD, "otherdb", DBVERSION_74));
    ck_assert_int_eq(login_rec.msgno, 4060);
    /* An empty database name means the server's. */
    DBPROCESS *p = connect_as(s, USER, PASSWORD, NULL, DBVERSION_74);
    ck_assert_ptr_nonnull(p);
    disconnect(p);
    tds_server_stats st;
    tds_server_get_stats(s, &st);
    ck_assert_uint_eq(st.login_failures, 3);
    ck_assert_uint_eq(st.logins, 1);
    tds_server_stop(s);
}
END_TEST

/* ---- types ------------------------------------------------------------------------------- */

static const char *create_types =
    "CREATE TABLE t (i INT, bi BIGINT, si SMALLINT, ti TINYINT, b BIT, f FLOAT, r REAL, "
    "d DECIMAL(10,2), n NUMERIC(20,5), m MONEY, nv NVARCHAR(20), v VARCHAR(20), "
    "nm NVARCHAR(MAX), vb VARBINARY(10), dt DATE, tm TIME(3), d2 DATETIME2, "
    "dto DATETIMEOFFSET, g UNIQUEIDENTIFIER, od DATETIME)";
static const char *insert_types =
    "INSERT INTO t VALUES (1, 9000000000, -5, 200, 1, 1.5, 2.25, 123.45, -1.00001, 12.3456, "
    "N'h\xc3\xa9llo', 'abc', 'long text', X'DEADBEEF', '2024-01-31', '12:34:56.789', "
    "'2024-01-31 12:34:56.1234567', '2024-01-31 12:34:56 +02:00', "
    "'6F9619FF-8B86-D011-B42D-00C04FC964FF', '2024-01-31 01:02:03.123');"
    "INSERT INTO t (i) VALUES (NULL)";

START_TEST(types_round_trip)
{
    BYTE ver = versions[_i];
    bool dates = ver >= DBVERSION_73;
    tds_server *s = start_server();
    DBPROCESS *p = connect_ok(s, ver);
    ck_assert_int_eq(run_all(p, create_types), SUCCEED);
    ck_assert_int_eq(run_all(p, insert_types), SUCCEED);
    ck_assert_int_eq(run(p, "SELECT * FROM t ORDER BY i DESC"), SUCCEED);
    ck_assert_int_eq(dbresults(p), SUCCEED);
    ck_assert_int_eq(dbnumcols(p), 20);
    ck_assert_int_eq(dbnextrow(p), REG_ROW);
    char v[256];
    ck_assert_str_eq(dbcolname(p, 1), "i");
    ck_assert_int_eq(dbcoltype(p, 1), SYBINT4);
    ck_assert_int_eq(*(DBINT *)dbdata(p, 1), 1);
    ck_assert_int_eq(dbcoltype(p, 2), SYBINT8);
    ck_assert(*(DBBIGINT *)dbdata(p, 2) == 9000000000LL);
    ck_assert_int_eq(dbcoltype(p, 3), SYBINT2);
    ck_assert_int_eq(*(DBSMALLINT *)dbdata(p, 3), -5);
    ck_assert_int_eq(dbcoltype(p, 4), SYBINT1);
    ck_assert_int_eq(*(DBTINYINT *)dbdata(p, 4), 200);
    ck_assert_int_eq(dbcoltype(p, 5), SYBBIT);
    ck_assert_int_eq(*(DBBIT *)dbdata(p, 5), 1);
    ck_assert_int_eq(dbcoltype(p, 6), SYBFLT8);
    ck_assert(*(DBFLT8 *)dbdata(p, 6) == 1.5);
    ck_assert_int_eq(dbcoltype(p, 7), SYBREAL);
    ck_assert(*(DBREAL *)dbdata(p, 7) == 2.25f);
    ck_assert_int_eq(dbcoltype(p, 8), SYBDECIMAL);
    col_text(p, 8, v, sizeof(v));
    ck_assert_str_eq(v, "123.45");
    ck_assert_int_eq(dbcoltype(p, 9), SYBNUMERIC);
    col_text(p, 9, v, sizeof(v));
    ck_assert_str_eq(v, "-1.00001");
    ck_assert_int_eq(dbcoltype(p, 10), SYBMONEY);
    DBMONEY *mny = (DBMONEY *)dbdata(p, 10);
    ck_assert(((int64_t)mny->mnyhigh << 32 | mny->mnylow) == 123456);
    col_text(p, 11, v, sizeof(v));
    ck_assert_str_eq(v, "h\xc3\xa9llo");
    col_text(p, 12, v, sizeof(v));
    ck_assert_str_eq(v, "abc");
    col_text(p, 13, v, sizeof(v));
    ck_assert_str_eq(v, "long text");
    ck_assert_int_eq(dbcoltype(p, 14), SYBBINARY);
    ck_assert_int_eq(dbdatlen(p, 14), 4);
    ck_assert_int_eq(memcmp(dbdata(p, 14), "\xDE\xAD\xBE\xEF", 4), 0);
    int64_t days1900 = tds_days_from_civil(2024, 1, 31) - tds_days_from_civil(1900, 1, 1);
    if (dates) {
        ck_assert_int_eq(dbcoltype(p, 15), SYBMSDATE);
        DBDATETIMEALL *dt = (DBDATETIMEALL *)dbdata(p, 15);
        ck_assert_int_eq(dt->date, days1900);
        ck_assert_int_eq(dbcoltype(p, 16), SYBMSTIME);
        dt = (DBDATETIMEALL *)dbdata(p, 16);
        ck_assert(dt->time == (uint64_t)(12 * 3600 + 34 * 60 + 56) * 10000000u + 7890000u);
        ck_assert_int_eq(dbcoltype(p, 17), SYBMSDATETIME2);
        dt = (DBDATETIMEALL *)dbdata(p, 17);
        ck_assert_int_eq(dt->date, days1900);
        ck_assert(dt->time == (uint64_t)(12 * 3600 + 34 * 60 + 56) * 10000000u + 1234567u);
        ck_assert_int_eq(dbcoltype(p, 18), SYBMSDATETIMEOFFSET);
        dt = (DBDATETIMEALL *)dbdata(p, 18);
        ck_assert_int_eq(dt->offset, 120);
    } else {
        /* Below TDS 7.3 dates travel as text, as SQL Server does. */
        col_text(p, 15, v, sizeof(v));
        ck_assert_str_eq(v, "2024-01-31");
        col_text(p, 16, v, sizeof(v));
        ck_assert_str_eq(v, "12:34:56.789");
        col_text(p, 17, v, sizeof(v));
        ck_assert_str_eq(v, "2024-01-31 12:34:56.1234567");
        col_text(p, 18, v, sizeof(v));
        ck_assert_str_eq(v, "2024-01-31 12:34:56.0000000 +02:00");
    }
    ck_assert_int_eq(dbcoltype(p, 19), TEST_SYBUNIQUE);
    col_text(p, 19, v, sizeof(v));
    ck_assert_str_eq(v, "6F9619FF-8B86-D011-B42D-00C04FC964FF");
    ck_assert_int_eq(dbcoltype(p, 20), SYBDATETIME);
    DBDATETIME *odt = (DBDATETIME *)dbdata(p, 20);
    ck_assert_int_eq(odt->dtdays, days1900);
    ck_assert_int_eq(odt->dttime, (1 * 3600 + 2 * 60 + 3) * 300 + 37);
    /* The NULL row: every column NULL. */
    ck_assert_int_eq(dbnextrow(p), REG_ROW);
    for (int c = 1; c <= 20; c++) {
        ck_assert_msg(dbdata(p, c) == NULL, "column %d not NULL", c);
        ck_assert_int_eq(dbdatlen(p, c), 0);
    }
    ck_assert_int_eq(dbnextrow(p), NO_MORE_ROWS);
    ck_assert_int_eq(dbresults(p), NO_MORE_RESULTS);
    disconnect(p);
    tds_server_stop(s);
}
END_TEST

START_TEST(inferred_types_and_names)
{
    tds_server *s = start_server();
    DBPROCESS *p = connect_ok(s, DBVERSION_74);
    ck_assert_int_eq(run(p, "SELECT 1 AS a, 5000000000 AS big, 2.5, 'x' AS [my col], X'01', NULL"),
                     SUCCEED);
    ck_assert_int_eq(dbresults(p), SUCCEED);
    ck_assert_str_eq(dbcolname(p, 1), "a");
    ck_assert_int_eq(dbcoltype(p, 1), SYBINT4);
    ck_assert_int_eq(dbcoltype(p, 2), SYBINT8);
    ck_assert_int_eq(dbcoltype(p, 3), SYBFLT8);
    ck_assert_str_eq(dbcolname(p, 3), ""); /* unnamed, as SQL Server sends it */
    ck_assert_str_eq(dbcolname(p, 4), "my col");
    ck_assert_int_eq(dbcoltype(p, 5), SYBBINARY);
    ck_assert_int_eq(dbnextrow(p), REG_ROW);
    ck_assert(dbdata(p, 6) == NULL);
    ck_assert_int_eq(dbnextrow(p), NO_MORE_ROWS);
    ck_assert_int_eq(dbresults(p), NO_MORE_RESULTS);
    /* A long text (PLP over several packets) and many rows. */
    char v[64];
    ck_assert_int_eq(run_all(p, "CREATE TABLE big (s NVARCHAR(MAX));"
                                "INSERT INTO big VALUES (replace(hex(zeroblob(10000)), '00', "
                                "'ab'))"),
                     SUCCEED);
    ck_assert_int_eq(run(p, "SELECT s FROM big"), SUCCEED);
    ck_assert_int_eq(dbresults(p), SUCCEED);
    ck_assert_int_eq(dbnextrow(p), REG_ROW);
    ck_assert_int_eq(dbdatlen(p, 1), 20000);
    ck_assert_int_eq(memcmp(dbdata(p, 1), "abab", 4), 0);
    while (dbnextrow(p) != NO_MORE_ROWS)
        ;
    ck_assert_int_eq(dbresults(p), NO_MORE_RESULTS);
    ck_assert_int_eq(run(p, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                            "WHERE x < 5000) SELECT x, 'row ' || x AS label FROM c"),
                     SUCCEED);
    ck_assert_int_eq(dbresults(p), SUCCEED);
    int rows = 0;
    while (dbnextrow(p) == REG_ROW) {
        rows++;
        ck_assert_int_eq(*(DBINT *)dbdata(p, 1), rows);
    }
    ck_assert_int_eq(rows, 5000);
    ck_assert_int_eq(DBCOUNT(p), 5000);
    ck_assert_int_eq(dbresults(p), NO_MORE_RESULTS);
    query_text(p, "SELECT LEN(N'abc  ') + DATALENGTH(N'ab')", v, sizeof(v));
    ck_assert_str_eq(v, "7");
    /* CAST to a SQL Server type types the column. */
    ck_assert_int_eq(run(p,
                         "SELECT CAST('2024-01-31' AS DATE) AS d, CAST('12.5' AS DECIMAL(5,2)), "
                         "CAST(N'6F9619FF-8B86-D011-B42D-00C04FC964FF' AS UNIQUEIDENTIFIER) AS g, "
                         "CAST(7 AS SMALLINT) AS s"),
                     SUCCEED);
    ck_assert_int_eq(dbresults(p), SUCCEED);
    ck_assert_int_eq(dbnextrow(p), REG_ROW);
    ck_assert_int_eq(dbcoltype(p, 1), SYBMSDATE);
    ck_assert_int_eq(dbcoltype(p, 2), SYBDECIMAL);
    col_text(p, 2, v, sizeof(v));
    ck_assert_str_eq(v, "12.50");
    ck_assert_int_eq(dbcoltype(p, 3), TEST_SYBUNIQUE);
    ck_assert_int_eq(dbcoltype(p, 4), SYBINT2);
    ck_assert_int_eq(dbnextrow(p), NO_MORE_ROWS);
    ck_assert_int_eq(dbresults(p), NO_MORE_RESULTS);
    disconnect(p);
    tds_server_stop(s);
}
END_TEST

/* ---- sp_executesql ------------------------------------------------------------------------- */

START_TEST(rpc_parameters)
{
    tds_server *s = start_server();
    DBPROCESS *p = connect_ok(s, versions[_i]);
    ck_assert_int_eq(
        run_all(p, "CREATE TABLE pt (i INT, d2 DATETIME2(3), m MONEY, s NVARCHAR(50))"), SUCCEED);
    const char *stmt = "INSERT INTO pt VALUES (@i, @when, @amount, @s); "
                       "SELECT @i AS i, @big AS big, @f AS f, @s AS s, @vb AS vb, @nothing AS "
                       "none, @bit AS bit; SELECT i, d2, m, s FROM pt";
    const char *decl = "@i int, @big bigint, @f float, @s nvarchar(50), @vb varbinary(10), "
                       "@nothing int, @bit bit, @when datetime, @amount money";
    DBINT i = 42;
    DBBIGINT big = 9000000000LL;
    DBFLT8 f = 2.5;
    const char *str = "h\xc3\xa9llo";
    BYTE vb[3] = {1, 2, 3};
    DBBIT bit = 1;
    DBDATETIME when;
    DBMONEY amount;
    ck_assert_int_gt(dbconvert(p, SYBCHAR, (BYTE *)"2024-01-31 12:34:56.500", -1, SYBDATETIME,
                               (BYTE *)&when, sizeof(when)),
                     0);
    ck_assert_int_gt(
        dbconvert(p, SYBCHAR, (BYTE *)"12.5", -1, SYBMONEY, (BYTE *)&amount, sizeof(amount)), 0);
    ck_assert_int_eq(dbrpcinit(p, "sp_executesql", 0), SUCCEED);
    ck_assert_int_eq(dbrpcparam(p, "@stmt", 0, SYBVARCHAR, -1, (DBINT)strlen(stmt), (BYTE *)stmt),
                     SUCCEED);
    ck_assert_int_eq(dbrpcparam(p, "@params", 0, SYBVARCHAR, -1, (DBINT)strlen(decl), (BYTE *)decl),
                     SUCCEED);
    ck_assert_int_eq(dbrpcparam(p, "@i", 0, SYBINT4, -1, -1, (BYTE *)&i), SUCCEED);
    ck_assert_int_eq(dbrpcparam(p, "@big", 0, SYBINT8, -1, -1, (BYTE *)&big), SUCCEED);
    ck_assert_int_eq(dbrpcparam(p, "@f", 0, SYBFLT8, -1, -1, (BYTE *)&f), SUCCEED);
    ck_assert_int_eq(dbrpcparam(p, "@s", 0, SYBVARCHAR, -1, (DBINT)strlen(str), (BYTE *)str),
                     SUCCEED);
    ck_assert_int_eq(dbrpcparam(p, "@vb", 0, SYBVARBINARY, -1, 3, vb), SUCCEED);
    ck_assert_int_eq(dbrpcparam(p, "@nothing", 0, SYBINT4, -1, 0, NULL), SUCCEED);
    ck_assert_int_eq(dbrpcparam(p, "@bit", 0, SYBBIT, -1, -1, &bit), SUCCEED);
    ck_assert_int_eq(dbrpcparam(p, "@when", 0, SYBDATETIME, -1, -1, (BYTE *)&when), SUCCEED);
    ck_assert_int_eq(dbrpcparam(p, "@amount", 0, SYBMONEY, -1, -1, (BYTE *)&amount), SUCCEED);
    ck_assert_int_eq(dbrpcsend(p), SUCCEED);
    ck_assert_msg(dbsqlok(p) == SUCCEED, "%d %s", rec_of(p)->msgno, rec_of(p)->msg);
    /* db-lib skips the INSERT's DONEINPROC (no columns) inside an RPC. */
    ck_assert_int_eq(dbresults(p), SUCCEED);
    ck_assert_int_eq(dbnumcols(p), 7);
    ck_assert_int_eq(dbnextrow(p), REG_ROW);
    char v[128];
    ck_assert_int_eq(dbcoltype(p, 1), SYBINT4);
    ck_assert_int_eq(*(DBINT *)dbdata(p, 1), 42);
    ck_assert_int_eq(dbcoltype(p, 2), SYBINT8);
    ck_assert(*(DBBIGINT *)dbdata(p, 2) == 9000000000LL);
    ck_assert_int_eq(dbcoltype(p, 3), SYBFLT8);
    ck_assert(*(DBFLT8 *)dbdata(p, 3) == 2.5);
    col_text(p, 4, v, sizeof(v));
    ck_assert_str_eq(v, str);
    ck_assert_int_eq(dbdatlen(p, 5), 3);
    ck_assert_int_eq(memcmp(dbdata(p, 5), vb, 3), 0);
    ck_assert(dbdata(p, 6) == NULL);
    ck_assert_int_eq(dbcoltype(p, 7), SYBBIT);
    ck_assert_int_eq(*(DBBIT *)dbdata(p, 7), 1);
    ck_assert_int_eq(dbnextrow(p), NO_MORE_ROWS);
    ck_assert_int_eq(dbresults(p), SUCCEED);
    ck_assert_int_eq(dbnextrow(p), REG_ROW);
    ck_assert_int_eq(*(DBINT *)dbdata(p, 1), 42);
    col_text(p, 2, v, sizeof(v));
    if (versions[_i] >= DBVERSION_73)
        ck_assert_int_eq(dbcoltype(p, 2), SYBMSDATETIME2);
    else
        ck_assert_str_eq(v, "2024-01-31 12:34:56.500");
    ck_assert_int_eq(dbcoltype(p, 3), SYBMONEY);
    DBMONEY *m = (DBMONEY *)dbdata(p, 3);
    ck_assert(((int64_t)m->mnyhigh << 32 | m->mnylow) == 125000);
    col_text(p, 4, v, sizeof(v));
    ck_assert_str_eq(v, str);
    ck_assert_int_eq(dbnextrow(p), NO_MORE_ROWS);
    ck_assert_int_eq(dbresults(p), NO_MORE_RESULTS);
    ck_assert(dbhasretstat(p));
    ck_assert_int_eq(dbretstatus(p), 0);
    disconnect(p);
    tds_server_stop(s);
}
END_TEST

START_TEST(rpc_errors)
{
    tds_server *s = start_server();
    DBPROCESS *p = connect_ok(s, DBVERSION_74);
    /* A parameter the statement uses but the call does not pass. */
    const char *stmt = "SELECT @missing";
    ck_assert_int_eq(dbrpcinit(p, "sp_executesql", 0), SUCCEED);
    ck_assert_int_eq(dbrpcparam(p, NULL, 0, SYBVARCHAR, -1, (DBINT)strlen(stmt), (BYTE *)stmt),
                     SUCCEED);
    ck_assert_int_eq(dbrpcsend(p), SUCCEED);
    ck_assert_int_eq(dbsqlok(p), FAIL);
    ck_assert_int_eq(rec_of(p)->msgno, 137);
    while (dbresults(p) == SUCCEED)
        ;
    /* An unknown procedure. */
    ck_assert_int_eq(dbrpcinit(p, "sp_nothing", 0), SUCCEED);
    ck_assert_int_eq(dbrpcsend(p), SUCCEED);
    ck_assert_int_eq(dbsqlok(p), FAIL);
    ck_assert_int_eq(rec_of(p)->msgno, 2812);
    while (dbresults(p) == SUCCEED)
        ;
    char v[16];
    query_text(p, "SELECT 7", v, sizeof(v));
    ck_assert_str_eq(v, "7");
    disconnect(p);
    tds_server_stop(s);
}
END_TEST

/* ---- batches: results, counts, errors, transactions --------------------------------------------
 */

START_TEST(multiple_results_and_counts)
{
    tds_server *s = start_server();
    DBPROCESS *p = connect_ok(s, versions[_i]);
    ck_assert_int_eq(run(p, "CREATE TABLE c (x INT); INSERT INTO c VALUES (1), (2), (3)\n"
                            "UPDATE c SET x = x + 10 WHERE x > 1\n"
                            "SELECT x FROM c ORDER BY x SELECT 'a' AS a, 'b' AS b\nDELETE FROM c"),
                     SUCCEED);
    int results = 0, counts[8], cols[8];
    RETCODE r;
    while ((r = dbresults(p)) != NO_MORE_RESULTS) {
        ck_assert_int_eq(r, SUCCEED);
        ck_assert_int_lt(results, 8);
        cols[results] = dbnumcols(p);
        while (dbnextrow(p) != NO_MORE_ROWS)
            ;
        counts[results++] = DBCOUNT(p);
    }
    /* CREATE (no count), INSERT 3, UPDATE 2, SELECT 3 rows, SELECT 1 row, DELETE 3 */
    ck_assert_int_eq(results, 6);
    ck_assert_int_eq(counts[1], 3);
    ck_assert_int_eq(counts[2], 2);
    ck_assert_int_eq(cols[3], 1);
    ck_assert_int_eq(counts[3], 3);
    ck_assert_int_eq(cols[4], 2);
    ck_assert_int_eq(counts[5], 3);
    disconnect(p);
    tds_server_stop(s);
}
END_TEST

/* DECLARE with a literal gives request-scoped variables read like
 * parameters; a second declaration of a name is error 134, as on SQL Server. */
START_TEST(declare_variables)
{
    tds_server *s = start_server();
    DBPROCESS *p = connect_ok(s, DBVERSION_74);
    ck_assert_int_eq(run(p, "DECLARE @a nvarchar(10) = N'x''y', @b varbinary(max) = 0x, "
                            "@c INT = -7, @d bigint; SELECT @a AS a, DATALENGTH(@b) AS b, "
                            "@c AS c, COALESCE(@d, 'null') AS d"),
                     SUCCEED);
    ck_assert_int_eq(dbresults(p), SUCCEED);
    ck_assert_int_eq(dbnextrow(p), REG_ROW);
    static const char *const want[] = {"x'y", "0", "-7", "null"};
    char v[64];
    for (int i = 0; i < 4; i++) {
        col_text(p, i + 1, v, sizeof(v));
        ck_assert_str_eq(v, want[i]);
    }
    ck_assert_str_eq(dbcolname(p, 1), "a");
    while (dbnextrow(p) != NO_MORE_ROWS)
        ;
    while (dbresults(p) != NO_MORE_RESULTS)
        ;
    query_text(p, "DECLARE @e nvarchar(max) = N''; SELECT LEN(@e) + DATALENGTH(@e)", v, sizeof(v));
    ck_assert_str_eq(v, "0");
    /* Gone with the request. */
    ck_assert_int_eq(run_all(p, "SELECT @a"), FAIL);
    ck_assert_int_eq(rec_of(p)->msgno, 137);
    ck_assert_int_eq(run_all(p, "DECLARE @a INT = 1, @a INT = 2"), FAIL);
    ck_assert_int_eq(rec_of(p)->msgno, 134);
    ck_assert_int_eq(run_all(p, "DECLARE @a INT = 1 + 1"), FAIL);
    ck_assert_int_eq(rec_of(p)->msgno, 50000);
    disconnect(p);
    tds_server_stop(s);
}
END_TEST

START_TEST(errors_number_severity_line)
{
    tds_server *s = start_server();
    DBPROCESS *p = connect_ok(s, versions[_i]);
    rec *r = rec_of(p);
    /* A failing later statement fails only its own dbresults. */
    ck_assert_int_eq(run(p, "SELECT 1\nSELECT * FROM nosuch"), SUCCEED);
    ck_assert_int_eq(dbresults(p), SUCCEED);
    while (dbnextrow(p) != NO_MORE_ROWS)
        ;
    ck_assert_int_eq(dbresults(p), FAIL);
    while (dbresults(p) != NO_MORE_RESULTS)
        ;
    ck_assert_int_eq(r->msgno, 208);
    ck_assert_int_eq(r->severity, 16);
    ck_assert_int_eq(r->line, 2);
    ck_assert_str_eq(r->msg, "Invalid object name 'nosuch'.");
    ck_assert_int_eq(run(p, "SELEC 1"), FAIL);
    ck_assert_int_eq(r->msgno, 102);
    ck_assert_int_eq(run(p, "\n\nRAISERROR('custom %s', 15, 3, 'text')"), FAIL);
    ck_assert_int_eq(r->msgno, 50000);
    ck_assert_int_eq(r->severity, 15);
    ck_assert_int_eq(r->state, 3);
    ck_assert_int_eq(r->line, 3);
    ck_assert_str_eq(r->msg, "custom text");
    ck_assert_int_eq(run(p, "THROW 50001, N'thrown', 2"), FAIL);
    ck_assert_int_eq(r->msgno, 50001);
    ck_assert_int_eq(r->severity, 16);
    ck_assert_int_eq(r->state, 2);
    ck_assert_str_eq(r->msg, "thrown");
    ck_assert_int_eq(run_all(p, "CREATE TABLE u (x INT PRIMARY KEY)"), SUCCEED);
    ck_assert_int_eq(run(p, "INSERT INTO u VALUES (1); INSERT INTO u VALUES (1)"), SUCCEED);
    ck_assert_int_eq(dbresults(p), SUCCEED);
    ck_assert_int_eq(dbresults(p), FAIL);
    ck_assert_int_eq(r->msgno, 2627);
    while (dbresults(p) != NO_MORE_RESULTS)
        ;
    ck_assert(!dbdead(p));
    char v[16];
    query_text(p, "SELECT @@ERROR", v, sizeof(v));
    ck_assert_str_eq(v, "2627");
    disconnect(p);
    tds_server_stop(s);
}
END_TEST

START_TEST(transactions)
{
    tds_server *s = start_server();
    DBPROCESS *p = connect_ok(s, DBVERSION_74);
    char v[16];
    ck_assert_int_eq(run_all(p, "CREATE TABLE tr (x INT)"), SUCCEED);
    ck_assert_int_eq(run_all(p, "BEGIN TRANSACTION; INSERT INTO tr VALUES (1)"), SUCCEED);
    query_text(p, "SELECT @@TRANCOUNT", v, sizeof(v));
    ck_assert_str_eq(v, "1");
    ck_assert_int_eq(run_all(p, "BEGIN TRAN"), SUCCEED);
    query_text(p, "SELECT @@TRANCOUNT", v, sizeof(v));
    ck_assert_str_eq(v, "2");
    ck_assert_int_eq(run_all(p, "IF @@TRANCOUNT > 0 ROLLBACK TRAN"), SUCCEED);
    query_text(p, "SELECT @@TRANCOUNT", v, sizeof(v));
    ck_assert_str_eq(v, "0");
    query_text(p, "SELECT COUNT(*) FROM tr", v, sizeof(v));
    ck_assert_str_eq(v, "0");
    ck_assert_int_eq(run_all(p, "BEGIN TRAN INSERT INTO tr VALUES (2) COMMIT"), SUCCEED);
    query_text(p, "SELECT COUNT(*) FROM dbo.tr", v, sizeof(v));
    ck_assert_str_eq(v, "1");
    ck_assert_int_eq(run(p, "COMMIT"), FAIL);
    ck_assert_int_eq(rec_of(p)->msgno, 3902);
    disconnect(p);
    tds_server_stop(s);
}
END_TEST

/* ---- cancel ---------------------------------------------------------------------------------- */

START_TEST(cancel_with_dbcancel)
{
    tds_server *s = start_server();
    DBPROCESS *p = connect_ok(s, versions[_i]);
    ck_assert_int_eq(dbcmd(p, "WAITFOR DELAY '00:00:30'; SELECT 1"), SUCCEED);
    ck_assert_int_eq(dbsqlsend(p), SUCCEED);
    usleep(200 * 1000);
    double t0 = now_s();
    ck_assert_int_eq(dbcancel(p), SUCCEED);
    ck_assert_double_lt(now_s() - t0, 15.0);
    ck_assert(!dbdead(p));
    char v[16];
    query_text(p, "SELECT 2", v, sizeof(v));
    ck_assert_str_eq(v, "2");
    tds_server_stats st;
    tds_server_get_stats(s, &st);
    ck_assert_uint_eq(st.attentions, 1);
    disconnect(p);
    tds_server_stop(s);
}
END_TEST

START_TEST(cancel_on_timeout)
{
    tds_server *s = start_server();
    DBPROCESS *p = connect_ok(s, DBVERSION_74);
    dbsettime(1);
    double t0 = now_s();
    ck_assert_int_eq(run(p, "WAITFOR DELAY '00:00:30'"), FAIL);
    ck_assert_double_lt(now_s() - t0, 15.0);
    int first = rec_of(p)->timeouts;
    ck_assert_int_ge(first, 1);
    ck_assert(!dbdead(p));
    char v[16];
    query_text(p, "SELECT 3", v, sizeof(v));
    ck_assert_str_eq(v, "3");
    /* query_hang: only ATTENTION ends it. */
    ck_assert_int_eq(tds_server_set_knob(s, TDS_KNOB_QUERY_HANG, 1), 0);
    ck_assert_int_eq(run(p, "SELECT 4"), FAIL);
    ck_assert_int_gt(rec_of(p)->timeouts, first);
    ck_assert(!dbdead(p));
    ck_assert_int_eq(tds_server_set_knob(s, TDS_KNOB_QUERY_HANG, 0), 0);
    query_text(p, "SELECT 5", v, sizeof(v));
    ck_assert_str_eq(v, "5");
    dbsettime(0);
    disconnect(p);
    tds_server_stop(s);
}
END_TEST

START_TEST(knob_ignore_attention)
{
    tds_server *s = start_server();
    DBPROCESS *p = connect_ok(s, DBVERSION_74);
    rec_of(p)->timeout_limit = 2;
    ck_assert_int_eq(tds_server_set_knob(s, TDS_KNOB_IGNORE_ATTENTION, 1), 0);
    ck_assert_int_eq(tds_server_set_knob(s, TDS_KNOB_QUERY_HANG, 1), 0);
    dbsettime(1);
    double t0 = now_s();
    ck_assert_int_eq(run(p, "SELECT 1"), FAIL);
    ck_assert_double_lt(now_s() - t0, 20.0);
    /* Two unanswered ATTENTIONs, then INT_CANCEL gave up on the connection. */
    ck_assert_int_eq(rec_of(p)->timeouts, 3);
    ck_assert(dbdead(p));
    dbsettime(0);
    disconnect(p);
    tds_server_stop(s);
}
END_TEST

/* ---- knobs ------------------------------------------------------------------------------------
 */

START_TEST(knob_login_faults)
{
    tds_server *s = start_server();
    ck_assert_int_eq(tds_server_set_knob(s, TDS_KNOB_REFUSE_LOGIN, 1), 0);
    ck_assert_ptr_null(connect_as(s, USER, PASSWORD, DBNAME, DBVERSION_74));
    ck_assert_int_eq(login_rec.msgno, 18456);
    ck_assert_int_eq(tds_server_set_knob(s, TDS_KNOB_REFUSE_LOGIN, 0), 0);

    ck_assert_int_eq(tds_server_set_knob(s, TDS_KNOB_LOGIN_DELAY_MS, 1200), 0);
    double t0 = now_s();
    DBPROCESS *p = connect_ok(s, DBVERSION_74);
    ck_assert_double_ge(now_s() - t0, 1.1);
    disconnect(p);
    ck_assert_int_eq(tds_server_set_knob(s, TDS_KNOB_LOGIN_DELAY_MS, 0), 0);

    ck_assert_int_eq(tds_server_set_knob(s, TDS_KNOB_LOGIN_HANG, 1), 0);
    dbsetlogintime(1);
    t0 = now_s();
    ck_assert_ptr_null(connect_as(s, USER, PASSWORD, DBNAME, DBVERSION_74));
    ck_assert_double_lt(now_s() - t0, 15.0);
    ck_assert_int_ge(login_rec.timeouts, 1);
    dbsetlogintime(0);
    tds_server_reset_knobs(s);
    p = connect_ok(s, DBVERSION_74);
    disconnect(p);
    tds_server_stop(s);
}
END_TEST

START_TEST(knob_query_faults)
{
    tds_server *s = start_server();
    DBPROCESS *p = connect_ok(s, DBVERSION_74);
    char v[32];
    ck_assert_int_eq(tds_server_set_knob(s, TDS_KNOB_QUERY_DELAY_MS, 1200), 0);
    double t0 = now_s();
    query_text(p, "SELECT 1", v, sizeof(v));
    ck_assert_double_ge(now_s() - t0, 1.1);
    ck_assert_int_eq(tds_server_set_knob(s, TDS_KNOB_QUERY_DELAY_MS, 0), 0);

    ck_assert_int_eq(tds_server_set_knob(s, TDS_KNOB_RAISE_ERROR, 50123), 0);
    ck_assert_int_eq(run(p, "SELECT 1"), FAIL);
    ck_assert_int_eq(rec_of(p)->msgno, 50123);
    ck_assert(!dbdead(p));
    /* The filter limits query knobs to matching SQL. */
    ck_assert_int_eq(tds_server_set_query_filter(s, "magic"), 0);
    query_text(p, "SELECT 8", v, sizeof(v));
    ck_assert_str_eq(v, "8");
    ck_assert_int_eq(run(p, "SELECT 'magic'"), FAIL);
    tds_server_reset_knobs(s);
    query_text(p, "SELECT 'magic'", v, sizeof(v));
    ck_assert_str_eq(v, "magic");

    /* Knobs over TDS itself. */
    ck_assert_int_eq(run_all(p, "EXEC sqlgate_test_knob 'query_delay_ms', 5"), SUCCEED);
    ck_assert_int_eq(tds_server_get_knob(s, TDS_KNOB_QUERY_DELAY_MS), 5);
    ck_assert_int_eq(run_all(p, "EXEC sqlgate_test_knob 'reset', 0"), SUCCEED);
    ck_assert_int_eq(tds_server_get_knob(s, TDS_KNOB_QUERY_DELAY_MS), 0);
    ck_assert_int_eq(run(p, "EXEC sqlgate_test_knob 'nope', 1"), FAIL);

    ck_assert_int_eq(run_all(p, "CREATE TABLE k (x INT); INSERT INTO k VALUES (1), (2), (3)"),
                     SUCCEED);
    ck_assert_int_eq(tds_server_set_knob(s, TDS_KNOB_CLOSE_MID_RESULT, 1), 0);
    ck_assert_int_eq(run(p, "SELECT x FROM k"), SUCCEED);
    ck_assert_int_eq(dbresults(p), SUCCEED);
    ck_assert_int_eq(dbnextrow(p), REG_ROW);
    ck_assert_int_eq(dbnextrow(p), FAIL);
    ck_assert_int_eq(rec_of(p)->dberr, SYBESEOF);
    ck_assert(dbdead(p));
    disconnect(p);
    tds_server_reset_knobs(s);

    p = connect_ok(s, DBVERSION_74);
    ck_assert_int_eq(tds_server_set_knob(s, TDS_KNOB_GARBAGE_TOKEN, 1), 0);
    RETCODE rc = run(p, "SELECT x FROM k");
    if (rc == SUCCEED && dbresults(p) == SUCCEED)
        while (dbnextrow(p) == REG_ROW)
            ;
    ck_assert_int_eq(rec_of(p)->dberr, SYBEBTOK);
    ck_assert(dbdead(p));
    disconnect(p);
    tds_server_stop(s);
}
END_TEST

START_TEST(stats_count_connections)
{
    tds_server *s = start_server();
    DBPROCESS *p[3];
    for (int i = 0; i < 3; i++)
        p[i] = connect_ok(s, DBVERSION_74);
    tds_server_stats st;
    tds_server_get_stats(s, &st);
    ck_assert_uint_eq(st.connections_opened, 3);
    ck_assert_uint_eq(st.connections_active, 3);
    ck_assert_uint_eq(st.logins, 3);
    for (int i = 0; i < 3; i++)
        disconnect(p[i]);
    /* The server sees the close asynchronously. */
    for (int i = 0; i < 100; i++) {
        tds_server_get_stats(s, &st);
        if (st.connections_active == 0)
            break;
        usleep(50 * 1000);
    }
    ck_assert_uint_eq(st.connections_active, 0);
    ck_assert_uint_eq(st.connections_closed, 3);
    tds_server_stop(s);
}
END_TEST

/* ---- concurrency and stop
 * ------------------------------------------------------------------------ */

typedef struct worker {
    tds_server *srv;
    int id;
    int ok;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    DBPROCESS *p = connect_as(w->srv, USER, PASSWORD, DBNAME, DBVERSION_74);
    if (p == NULL)
        return NULL;
    char sql[128];
    for (int i = 0; i < 30; i++) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO conc VALUES (%d, %d); SELECT COUNT(*) FROM conc "
                 "WHERE w = %d",
                 w->id, i, w->id);
        if (dbcmd(p, sql) != SUCCEED || dbsqlexec(p) != SUCCEED)
            break;
        int n = -1;
        while (dbresults(p) == SUCCEED)
            while (dbnextrow(p) == REG_ROW)
                n = *(DBINT *)dbdata(p, 1);
        if (n == i + 1)
            w->ok++;
    }
    disconnect(p);
    return NULL;
}

START_TEST(concurrent_clients)
{
    tds_server *s = start_server();
    DBPROCESS *p = connect_ok(s, DBVERSION_74);
    ck_assert_int_eq(run_all(p, "CREATE TABLE conc (w INT, i INT)"), SUCCEED);
    enum { N = 8 };
    worker w[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        w[i] = (worker){.srv = s, .id = i, .ok = 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(w[i].ok, 30);
    }
    char v[16];
    query_text(p, "SELECT COUNT(*) FROM conc", v, sizeof(v));
    ck_assert_str_eq(v, "240");
    disconnect(p);
    tds_server_stop(s);
}
END_TEST

typedef struct hung {
    DBPROCESS *p;
    RETCODE rc;
} hung;

static void *hung_main(void *arg)
{
    hung *h = arg;
    h->rc = run(h->p, "SELECT 1");
    return NULL;
}

START_TEST(stop_closes_busy_clients)
{
    tds_server *s = start_server();
    DBPROCESS *p = connect_ok(s, DBVERSION_74);
    ck_assert_int_eq(tds_server_set_knob(s, TDS_KNOB_QUERY_HANG, 1), 0);
    hung h = {.p = p, .rc = SUCCEED};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, hung_main, &h), 0);
    for (int i = 0; i < 100; i++) {
        tds_server_stats st;
        tds_server_get_stats(s, &st);
        if (st.requests == 1)
            break;
        usleep(20 * 1000);
    }
    double t0 = now_s();
    tds_server_stop(s);
    ck_assert_double_lt(now_s() - t0, 10.0);
    pthread_join(th, NULL);
    ck_assert_int_eq(h.rc, FAIL);
    ck_assert(dbdead(p));
    disconnect(p);
}
END_TEST

/* ---- malformed input --------------------------------------------------------------------------
 */

static int raw_connect(tds_server *s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)tds_server_port(s))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Reads until the server closes; returns the bytes seen (bounded). */
static size_t drain(int fd)
{
    char buf[4096];
    size_t total = 0;
    for (int i = 0; i < 1000; i++) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0)
            break;
        total += (size_t)n;
    }
    return total;
}

START_TEST(malformed_packets)
{
    tds_server *s = start_server();
    /* A header whose length is smaller than the header. */
    int fd = raw_connect(s);
    static const uint8_t bad_header[8] = {0x12, 0x01, 0x00, 0x04, 0, 0, 1, 0};
    ck_assert_int_eq(send(fd, bad_header, 8, MSG_NOSIGNAL), 8);
    ck_assert_uint_eq(drain(fd), 0);
    close(fd);
    /* A LOGIN7 whose offsets point past the message. */
    fd = raw_connect(s);
    uint8_t login[8 + 94];
    memset(login, 0, sizeof(login));
    login[0] = 0x10;
    login[1] = 0x01;
    login[3] = sizeof(login);
    login[8] = 94;
    login[8 + 4] = 0x04;
    login[8 + 7] = 0x74;
    login[8 + 40] = 90;  /* user name offset */
    login[8 + 42] = 200; /* 200 characters: past the end */
    ck_assert_int_eq(send(fd, login, sizeof(login), MSG_NOSIGNAL), (ssize_t)sizeof(login));
    ck_assert_uint_gt(drain(fd), 8); /* an error reply, then close */
    close(fd);
    /* Random bytes. */
    unsigned seed = 12345;
    for (int k = 0; k < 20; k++) {
        fd = raw_connect(s);
        uint8_t junk[300];
        for (size_t i = 0; i < sizeof(junk); i++)
            junk[i] = (uint8_t)(rand_r(&seed) >> 8);
        junk[0] = k % 2 ? 0x10 : 0x12;
        (void)send(fd, junk, sizeof(junk), MSG_NOSIGNAL);
        shutdown(fd, SHUT_WR);
        (void)drain(fd);
        close(fd);
    }
    /* Still serving. */
    DBPROCESS *p = connect_ok(s, DBVERSION_74);
    char v[16];
    query_text(p, "SELECT 9", v, sizeof(v));
    ck_assert_str_eq(v, "9");
    disconnect(p);
    tds_server_stop(s);
}
END_TEST

START_TEST(too_many_clients)
{
    tds_server *s = start_server();
    int fds[TDS_SERVER_MAX_CLIENTS + 1];
    for (int i = 0; i < TDS_SERVER_MAX_CLIENTS + 1; i++)
        fds[i] = raw_connect(s);
    /* The extra one is closed at once. */
    ck_assert_uint_eq(drain(fds[TDS_SERVER_MAX_CLIENTS]), 0);
    tds_server_stats st;
    tds_server_get_stats(s, &st);
    ck_assert_uint_eq(st.connections_refused, 1);
    ck_assert_uint_eq(st.connections_active, TDS_SERVER_MAX_CLIENTS);
    for (int i = 0; i < TDS_SERVER_MAX_CLIENTS + 1; i++)
        close(fds[i]);
    tds_server_stop(s);
}
END_TEST

/* Parsers fed random and truncated input must fail cleanly (valgrind checks reads). */
START_TEST(parsers_survive_garbage)
{
    unsigned seed = 777;
    for (int k = 0; k < 3000; k++) {
        size_t n = (size_t)(rand_r(&seed) % 300);
        uint8_t *b = malloc(n ? n : 1);
        ck_assert_ptr_nonnull(b);
        for (size_t i = 0; i < n; i++)
            b[i] = (uint8_t)(rand_r(&seed) >> 8);
        if (n > 4 && k % 3 == 0) {
            /* plausible ALL_HEADERS and a short name, to reach parameter parsing */
            b[0] = 4;
            b[1] = b[2] = b[3] = 0;
            b[4] = 0xFF;
            if (n > 5)
                b[5] = 0xFF;
        }
        char err[128];
        tds_login7 l;
        if (tds_login7_parse(b, n, &l, err, sizeof(err)) == 0)
            tds_login7_free(&l);
        tds_prelogin pl;
        (void)tds_prelogin_parse(b, n, &pl);
        char *sql = NULL;
        if (tds_batch_parse(b, n, 0x74000004, &sql, err, sizeof(err)) == 0)
            free(sql);
        tds_rpc rpc;
        if (tds_rpc_parse(b, n, k % 2 ? 0x74000004 : 0x71000001, &rpc, err, sizeof(err)) == 0)
            tds_rpc_free(&rpc);
        free(b);
    }
}
END_TEST

START_TEST(rpc_parse_typed_values)
{
    /* sp_executesql by id, with INTN, NVARCHAR, DECIMALN, DATEN and a NULL. */
    tds_buf b;
    tds_buf_init(&b, 4096);
    tds_buf_u32le(&b, 22); /* ALL_HEADERS: one 18-byte transaction header */
    tds_buf_u32le(&b, 18);
    tds_buf_u16le(&b, 2);
    tds_buf_u64le(&b, 0);
    tds_buf_u32le(&b, 1);
    tds_buf_u16le(&b, 0xFFFF);
    tds_buf_u16le(&b, 10);
    tds_buf_u16le(&b, 0);
    tds_buf_u8(&b, 0); /* unnamed @stmt */
    tds_buf_u8(&b, 0);
    tds_buf_u8(&b, 0xE7);
    tds_buf_u16le(&b, 100);
    tds_buf_put(&b, tds_collation, 5);
    tds_buf_u16le(&b, 2);
    tds_buf_u16le(&b, 'x');
    tds_buf_u8(&b, 2);
    tds_buf_utf16(&b, "@a", 2, 10);
    tds_buf_u8(&b, 0);
    tds_buf_u8(&b, 0x26);
    tds_buf_u8(&b, 4);
    tds_buf_u8(&b, 4);
    tds_buf_u32le(&b, (uint32_t)-7);
    tds_buf_u8(&b, 2);
    tds_buf_utf16(&b, "@d", 2, 10);
    tds_buf_u8(&b, 0);
    tds_buf_u8(&b, 0x6A); /* DECIMALN(10,2) = -123.45 */
    tds_buf_u8(&b, 9);
    tds_buf_u8(&b, 10);
    tds_buf_u8(&b, 2);
    tds_buf_u8(&b, 5);
    tds_buf_u8(&b, 0);
    tds_buf_u32le(&b, 12345);
    tds_buf_u8(&b, 2);
    tds_buf_utf16(&b, "@t", 2, 10);
    tds_buf_u8(&b, 0);
    tds_buf_u8(&b, 0x28); /* DATEN 2024-01-31 */
    tds_buf_u8(&b, 3);
    uint32_t days = (uint32_t)tds_days_from_civil(2024, 1, 31);
    tds_buf_u8(&b, (uint8_t)days);
    tds_buf_u8(&b, (uint8_t)(days >> 8));
    tds_buf_u8(&b, (uint8_t)(days >> 16));
    tds_buf_u8(&b, 2);
    tds_buf_utf16(&b, "@n", 2, 10);
    tds_buf_u8(&b, 0);
    tds_buf_u8(&b, 0x26);
    tds_buf_u8(&b, 8);
    tds_buf_u8(&b, 0);
    ck_assert(!b.failed);
    tds_rpc rpc;
    char err[128];
    ck_assert_msg(tds_rpc_parse(b.data, b.len, 0x74000004, &rpc, err, sizeof(err)) == 0, "%s", err);
    ck_assert_ptr_null(rpc.proc_name);
    ck_assert_uint_eq(rpc.proc_id, 10);
    ck_assert_uint_eq(rpc.nparams, 5);
    ck_assert_int_eq(rpc.params[0].value.kind, TDS_V_TEXT);
    ck_assert_str_eq((const char *)rpc.params[0].value.p, "x");
    ck_assert_str_eq(rpc.params[1].name, "@a");
    ck_assert_int_eq(rpc.params[1].value.i, -7);
    ck_assert_str_eq((const char *)rpc.params[2].value.p, "-123.45");
    ck_assert_int_eq(rpc.params[2].type.st, TDS_ST_DECIMAL);
    ck_assert_str_eq((const char *)rpc.params[3].value.p, "2024-01-31");
    ck_assert_int_eq(rpc.params[4].value.kind, TDS_V_NULL);
    ck_assert_int_eq(rpc.params[4].type.st, TDS_ST_BIGINT);
    tds_rpc_free(&rpc);
    /* Every truncation of it fails cleanly. */
    for (size_t n = 0; n < b.len; n++) {
        if (tds_rpc_parse(b.data, n, 0x74000004, &rpc, err, sizeof(err)) == 0)
            tds_rpc_free(&rpc);
    }
    tds_buf_free(&b);
}
END_TEST

START_TEST(type_names_and_conversions)
{
    tds_type t;
    ck_assert_int_eq(tds_type_parse("decimal(10, 2)", 14, &t), 0);
    ck_assert_int_eq(t.st, TDS_ST_DECIMAL);
    ck_assert_int_eq(t.precision, 10);
    ck_assert_int_eq(t.scale, 2);
    ck_assert_int_eq(tds_type_parse("NVARCHAR(MAX)", 13, &t), 0);
    ck_assert(t.is_max);
    ck_assert_int_eq(tds_type_parse("nvarchar(-1)", 12, &t), 0);
    ck_assert(t.is_max);
    ck_assert_int_eq(tds_type_parse("float(10)", 9, &t), 0);
    ck_assert_int_eq(t.st, TDS_ST_REAL);
    ck_assert_int_eq(tds_type_parse("VARCHAR(9000)", 13, &t), -1);
    ck_assert_int_eq(tds_type_parse("decimal(39)", 11, &t), -1);
    ck_assert_int_eq(tds_type_parse("geography", 9, &t), -1);
    /* The legacy types are themselves, not NVARCHAR(MAX). */
    ck_assert_int_eq(tds_type_parse("TEXT", 4, &t), 0);
    ck_assert(t.st == TDS_ST_VARCHAR && t.is_max && t.form == TDS_FORM_LEGACY);
    ck_assert_str_eq(tds_type_fullname(&t), "text");
    ck_assert_int_eq(tds_type_parse("ntext", 5, &t), 0);
    ck_assert_str_eq(tds_type_fullname(&t), "ntext");
    ck_assert_int_eq(tds_type_parse("Image", 5, &t), 0);
    ck_assert_str_eq(tds_type_fullname(&t), "image");
    ck_assert_int_eq(tds_type_parse("xml", 3, &t), 0);
    ck_assert(t.form == TDS_FORM_XML && t.is_max);
    ck_assert_int_eq(tds_type_parse("sql_variant", 11, &t), 0);
    ck_assert_str_eq(tds_type_fullname(&t), "sql_variant");
    ck_assert_int_eq(tds_type_parse("xml(10)", 7, &t), -1);
    ck_assert_int_eq(tds_type_parse("BLOB", 4, &t), 0);
    ck_assert(t.st == TDS_ST_VARBINARY && t.is_max && t.form == TDS_FORM_PLAIN);
    bool neg;
    uint32_t mag[4];
    char out[64];
    ck_assert_int_eq(tds_decimal_from_text("-12.345", 7, 10, 2, &neg, mag), 0);
    tds_decimal_to_text(neg, mag, 2, out, sizeof(out));
    ck_assert_str_eq(out, "-12.35");
    ck_assert_int_eq(tds_decimal_from_text("1e3", 3, 10, 1, &neg, mag), 0);
    tds_decimal_to_text(neg, mag, 1, out, sizeof(out));
    ck_assert_str_eq(out, "1000.0");
    ck_assert_int_eq(
        tds_decimal_from_text("12345678901234567890123456789012345678", 38, 38, 0, &neg, mag), 0);
    tds_decimal_to_text(neg, mag, 0, out, sizeof(out));
    ck_assert_str_eq(out, "12345678901234567890123456789012345678");
    ck_assert_int_eq(tds_decimal_from_text("123", 3, 4, 2, &neg, mag), -2);
    ck_assert_int_eq(tds_decimal_from_text("abc", 3, 4, 2, &neg, mag), -1);
    tds_datetime dt;
    ck_assert_int_eq(tds_datetime_parse("2024-02-29T23:59:59.1234567-05:30", 33, &dt), 0);
    ck_assert_int_eq(dt.tz_minutes, -330);
    ck_assert_uint_eq(dt.frac, 1234567);
    ck_assert_int_eq(tds_datetime_parse("2023-02-29", 10, &dt), -1);
    ck_assert_int_eq(tds_datetime_parse("25:00", 5, &dt), -1);
    int y, m, d;
    tds_civil_from_days(tds_days_from_civil(1, 1, 1), &y, &m, &d);
    ck_assert_int_eq(y * 10000 + m * 100 + d, 10101);
    ck_assert_int_eq(tds_days_from_civil(1, 1, 1), 0);
    tds_civil_from_days(tds_days_from_civil(9999, 12, 31), &y, &m, &d);
    ck_assert_int_eq(y * 10000 + m * 100 + d, 99991231);
    /* UTF-8 -> UTF-16 -> UTF-8, with a surrogate pair. */
    const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    tds_buf b;
    tds_buf_init(&b, 100);
    ck_assert_uint_eq(tds_buf_utf16(&b, s, strlen(s), 100), 5);
    char *back;
    size_t blen;
    ck_assert_int_eq(tds_utf16_to_utf8(b.data, b.len, &back, &blen), 0);
    ck_assert_str_eq(back, s);
    free(back);
    tds_buf_free(&b);
}
END_TEST

/* ---- session reset ------------------------------------------------------------------------------
 */

/* Appends s as UTF-16LE (ASCII only) to buf at *n; obfuscated as a LOGIN7
 * password when pw. */
static void put_utf16(uint8_t *buf, size_t *n, const char *s, bool pw)
{
    for (; *s != '\0'; s++) {
        uint8_t u[2] = {(uint8_t)*s, 0};
        for (int i = 0; i < 2; i++) {
            uint8_t b = u[i];
            if (pw)
                b = (uint8_t)(((b << 4) | (b >> 4)) ^ 0xA5);
            buf[(*n)++] = b;
        }
    }
}

/* Sends one message of `type` (one packet) with `status`; payload len bytes. */
static void send_packet(int fd, uint8_t type, uint8_t status, const uint8_t *payload, size_t len)
{
    uint8_t pkt[4096];
    ck_assert_uint_le(len + 8, sizeof(pkt));
    size_t total = len + 8;
    pkt[0] = type;
    pkt[1] = status;
    pkt[2] = (uint8_t)(total >> 8);
    pkt[3] = (uint8_t)total;
    pkt[4] = pkt[5] = 0;
    pkt[6] = 1;
    pkt[7] = 0;
    memcpy(pkt + 8, payload, len);
    ck_assert_int_eq(send(fd, pkt, total, MSG_NOSIGNAL), (ssize_t)total);
}

/* Reads one whole reply message into out; returns its payload length. */
static size_t read_reply(int fd, uint8_t *out, size_t cap)
{
    size_t used = 0;
    for (;;) {
        uint8_t hdr[8];
        size_t got = 0;
        while (got < 8) {
            ssize_t r = recv(fd, hdr + got, 8 - got, 0);
            ck_assert_msg(r > 0, "the server closed the connection");
            got += (size_t)r;
        }
        size_t n = ((size_t)hdr[2] << 8 | hdr[3]) - 8;
        ck_assert_uint_le(used + n, cap);
        got = 0;
        while (got < n) {
            ssize_t r = recv(fd, out + used + got, n - got, 0);
            ck_assert_msg(r > 0, "the server closed the connection");
            got += (size_t)r;
        }
        used += n;
        if (hdr[1] & 0x01)
            return used;
    }
}

/* A raw TDS 7.4 login (no PRELOGIN) as USER into DBNAME. */
static int raw_login(tds_server *s)
{
    int fd = raw_connect(s);
    uint8_t l[512];
    memset(l, 0, sizeof(l));
    l[4] = 0x04; /* TDS 7.4, little-endian 0x74000004 */
    l[7] = 0x74;
    size_t n = 94;
    /* Fields 1 (user), 2 (password) and 8 (database): offset, characters. */
    static const int field[] = {1, 2, 8};
    const char *value[] = {USER, PASSWORD, DBNAME};
    for (int i = 0; i < 3; i++) {
        size_t at = 36 + 4 * (size_t)field[i];
        l[at] = (uint8_t)n;
        l[at + 1] = (uint8_t)(n >> 8);
        l[at + 2] = (uint8_t)strlen(value[i]);
        put_utf16(l, &n, value[i], i == 1);
    }
    l[0] = (uint8_t)n;
    l[1] = (uint8_t)(n >> 8);
    send_packet(fd, 0x10, 0x01, l, n);
    uint8_t reply[8192];
    size_t got = read_reply(fd, reply, sizeof(reply));
    bool ack = false;
    for (size_t i = 0; i < got; i++)
        ack |= reply[i] == 0xAD; /* LOGINACK */
    ck_assert_msg(ack, "no LOGINACK");
    return fd;
}

/* Runs sql as a SQL batch with `status` on its packet; true when the reply
 * holds an ERROR token. */
static bool raw_batch(int fd, const char *sql, uint8_t status)
{
    uint8_t b[2048];
    /* ALL_HEADERS: total 22, one transaction descriptor header (18 bytes). */
    static const uint8_t hdrs[22] = {22, 0, 0, 0, 18, 0, 0, 0, 2, 0, 0,
                                     0,  0, 0, 0, 0,  0, 0, 1, 0, 0, 0};
    memcpy(b, hdrs, sizeof(hdrs));
    size_t n = sizeof(hdrs);
    put_utf16(b, &n, sql, false);
    send_packet(fd, 0x01, status, b, n);
    uint8_t reply[8192];
    size_t got = read_reply(fd, reply, sizeof(reply));
    /* The ERROR token's text "Invalid object name" in UTF-16LE. */
    uint8_t needle[40];
    size_t nn = 0;
    put_utf16(needle, &nn, "Invalid object", false);
    for (size_t i = 0; i + nn <= got; i++)
        if (memcmp(reply + i, needle, nn) == 0)
            return true;
    return false;
}

/* The RESETCONNECTION status bit (0x08) on a request's first packet resets
 * the session before the request runs, as on SQL Server. */
START_TEST(resetconnection_status_bit)
{
    tds_server *s = start_server();
    int fd = raw_login(s);
    ck_assert(!raw_batch(fd, "CREATE TABLE #kept (a INT); INSERT INTO #kept VALUES (1)", 0x01));
    ck_assert(!raw_batch(fd, "SELECT a FROM #kept", 0x01));
    ck_assert(raw_batch(fd, "SELECT a FROM #kept", 0x01 | 0x08));
    close(fd);
    tds_server_stats st;
    tds_server_get_stats(s, &st);
    ck_assert_uint_eq(st.resets, 1);
    tds_server_stop(s);
}
END_TEST

/* sp_reset_connection as an RPC, through db-lib. */
START_TEST(sp_reset_connection_rpc)
{
    tds_server *s = start_server();
    DBPROCESS *p = connect_ok(s, DBVERSION_74);
    ck_assert_int_eq(run_all(p, "CREATE TABLE #t (a INT); SET LANGUAGE Deutsch; USE tempdb"),
                     SUCCEED);
    char v[64];
    query_text(p, "SELECT @@LANGUAGE", v, sizeof(v));
    ck_assert_str_eq(v, "Deutsch");
    query_text(p, "SELECT DB_NAME()", v, sizeof(v));
    ck_assert_str_eq(v, "tempdb");
    ck_assert_int_eq(dbrpcinit(p, "sp_reset_connection", 0), SUCCEED);
    ck_assert_int_eq(dbrpcsend(p), SUCCEED);
    ck_assert_int_eq(dbsqlok(p), SUCCEED);
    while (dbresults(p) == SUCCEED)
        while (dbnextrow(p) != NO_MORE_ROWS)
            ;
    query_text(p, "SELECT @@LANGUAGE", v, sizeof(v));
    ck_assert_str_eq(v, "us_english");
    query_text(p, "SELECT DB_NAME()", v, sizeof(v));
    ck_assert_str_eq(v, DBNAME);
    ck_assert_int_eq(run_all(p, "SELECT a FROM #t"), FAIL);
    tds_server_stats st;
    tds_server_get_stats(s, &st);
    ck_assert_uint_eq(st.resets, 1);
    disconnect(p);
    tds_server_stop(s);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tds_server");
    TCase *tc = tcase_create("login");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, login_each_version, 0, 4);
    tcase_add_test(tc, login_rejected);
    suite_add_tcase(s, tc);

    tc = tcase_create("types");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, types_round_trip, 0, 4);
    tcase_add_test(tc, inferred_types_and_names);
    tcase_add_loop_test(tc, rpc_parameters, 0, 4);
    tcase_add_test(tc, rpc_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("batches");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, multiple_results_and_counts, 0, 4);
    tcase_add_test(tc, declare_variables);
    tcase_add_loop_test(tc, errors_number_severity_line, 0, 4);
    tcase_add_test(tc, transactions);
    suite_add_tcase(s, tc);

    tc = tcase_create("cancel");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, cancel_with_dbcancel, 0, 4);
    tcase_add_test(tc, cancel_on_timeout);
    tcase_add_test(tc, knob_ignore_attention);
    suite_add_tcase(s, tc);

    tc = tcase_create("knobs");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, knob_login_faults);
    tcase_add_test(tc, knob_query_faults);
    tcase_add_test(tc, stats_count_connections);
    suite_add_tcase(s, tc);

    tc = tcase_create("reset");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, resetconnection_status_bit);
    tcase_add_test(tc, sp_reset_connection_rpc);
    suite_add_tcase(s, tc);

    tc = tcase_create("server");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, concurrent_clients);
    tcase_add_test(tc, stop_closes_busy_clients);
    tcase_add_test(tc, malformed_packets);
    tcase_add_test(tc, too_many_clients);
    suite_add_tcase(s, tc);

    tc = tcase_create("wire");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, parsers_survive_garbage);
    tcase_add_test(tc, rpc_parse_typed_values);
    tcase_add_test(tc, type_names_and_conversions);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    setenv("FREETDSCONF", "/dev/null", 0);
    if (dbinit() == FAIL) {
        fprintf(stderr, "dbinit failed\n");
        return 1;
    }
    dberrhandle(err_handler);
    dbmsghandle(msg_handler);
    int status = check_run(suite());
    dbexit();
    return status;
}
