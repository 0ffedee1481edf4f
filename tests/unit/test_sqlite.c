/* Unit suite for the SQLite driver, against real SQLite files in a mkdtemp()
 * directory and shared in-memory databases. */
#include "check_main.h"
#include "driver_contract.h"
#include "sqlgate/db.h"
#include "sqlgate/driver.h"

#include <check.h>
#include <sqlite3.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LONG_MS 30000 /* a deadline that a correct test never reaches */

static const sg_driver *const D = &sg_driver_sqlite;

/* Check fixtures take no arguments, so the temporary directory is file state. */
static char tmpdir[256];

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sqlgate-test-sqlite-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

/* The tests only create plain files directly in tmpdir. */
static void teardown(void)
{
    dc_remove_dir(tmpdir);
}

static void tmp_path(char *out, size_t cap, const char *file)
{
    snprintf(out, cap, "%s/%s", tmpdir, file);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void cfg_init(sg_db_config *cfg, const char *name, const char *path, bool read_only)
{
    dc_cfg_defaults(cfg, "sqlite");
    snprintf(cfg->name, sizeof cfg->name, "%s", name);
    cfg->path = path;
    cfg->read_only = read_only;
}

static sg_driver_conn *open_ok(const sg_db_config *cfg)
{
    sg_err err = {0};
    sg_driver_conn *c = D->open(cfg, sg_clock_ms() + LONG_MS, &err);
    ck_assert_msg(c != NULL, "open failed: %s", err.message);
    return c;
}

static int drain(sg_driver_conn *c, sg_err *err)
{
    return dc_drain(D, c, err);
}

/* Runs a whole batch that must succeed and leave the connection reusable. */
static void run_ok(sg_driver_conn *c, const char *sql)
{
    sg_err err = {0};
    int rc = D->exec(c, sql, NULL, 0, sg_clock_ms() + LONG_MS, &err);
    ck_assert_msg(rc == 0, "exec(%s): %s", sql, err.message);
    rc = drain(c, &err);
    ck_assert_msg(rc == 0, "drain(%s): %s", sql, err.message);
    ck_assert_int_eq(D->finish(c), 0);
}

/* Starts `sql` and moves to the first row of its first result. The batch is
 * left open: the caller calls finish(). */
static const sg_value *first_row(sg_driver_conn *c, const char *sql, const sg_param *params,
                                 size_t n_params, const sg_column **cols, size_t *n_cols)
{
    sg_err err = {0};
    const sg_column *cl;
    size_t ncl;
    const sg_value *vals = NULL;
    ck_assert_msg(D->exec(c, sql, params, n_params, sg_clock_ms() + LONG_MS, &err) == 0,
                  "exec(%s): %s", sql, err.message);
    ck_assert_msg(D->next_result(c, &cl, &ncl, &err) == 1, "next_result(%s): %s", sql, err.message);
    ck_assert_msg(D->next_row(c, &vals, &err) == 1, "next_row(%s): %s", sql, err.message);
    if (cols != NULL)
        *cols = cl;
    if (n_cols != NULL)
        *n_cols = ncl;
    return vals;
}

/* The single integer that `sql` returns. */
static int64_t query_int(sg_driver_conn *c, const char *sql)
{
    const sg_value *v = first_row(c, sql, NULL, 0, NULL, NULL);
    ck_assert_int_eq(v[0].type, SG_V_INT);
    int64_t r = v[0].u.i;
    ck_assert_int_eq(D->finish(c), 0);
    return r;
}

static void assert_text(const sg_value *v, const char *want)
{
    ck_assert_int_eq(v->type, SG_V_TEXT);
    ck_assert_uint_eq(v->u.s.len, strlen(want));
    ck_assert(memcmp(v->u.s.ptr, want, v->u.s.len) == 0);
}

/* The message names the timeout: the time from exec() to the deadline, which
 * may be a millisecond or two short of what the test asked for. */
static void assert_timeout_ms(const sg_err *err, long want)
{
    const char *p = strstr(err->message, "exceeded its timeout of ");
    ck_assert_msg(p != NULL, "%s", err->message);
    long got = strtol(p + strlen("exceeded its timeout of "), NULL, 10);
    ck_assert_msg(got <= want && got >= want - 20, "%s", err->message);
}

/* --- open ---------------------------------------------------------------- */

START_TEST(test_open_creates_file)
{
    char path[512];
    tmp_path(path, sizeof path, "new.db");
    sg_db_config cfg;
    cfg_init(&cfg, "core", path, false);
    ck_assert(!exists(path));
    sg_driver_conn *c = open_ok(&cfg);
    ck_assert(exists(path));
    ck_assert_str_eq(D->name, "sqlite");
    ck_assert(!D->unusable(c));

    const sg_value *v = first_row(c, "PRAGMA journal_mode", NULL, 0, NULL, NULL);
    assert_text(&v[0], "wal");
    ck_assert_int_eq(D->finish(c), 0);
    ck_assert_int_eq(query_int(c, "PRAGMA foreign_keys"), 1);
    D->close(c);
}
END_TEST

START_TEST(test_open_missing_parent_fails)
{
    char dir[512], path[600];
    tmp_path(dir, sizeof dir, "nodir");
    snprintf(path, sizeof path, "%s/x.db", dir);
    sg_db_config cfg;
    cfg_init(&cfg, "core", path, false);
    sg_err err = {0};
    ck_assert_ptr_null(D->open(&cfg, sg_clock_ms() + LONG_MS, &err));
    ck_assert_int_eq(err.code, SG_DB_UNAVAILABLE);
    ck_assert_ptr_nonnull(strstr(err.message, path));
    ck_assert(!exists(dir));
}
END_TEST

START_TEST(test_open_read_only_missing_fails)
{
    char path[512];
    tmp_path(path, sizeof path, "missing.db");
    sg_db_config cfg;
    cfg_init(&cfg, "core", path, true);
    sg_err err = {0};
    ck_assert_ptr_null(D->open(&cfg, sg_clock_ms() + LONG_MS, &err));
    ck_assert_int_eq(err.code, SG_DB_UNAVAILABLE);
    ck_assert_ptr_nonnull(strstr(err.message, path));
    ck_assert(!exists(path));
}
END_TEST

START_TEST(test_open_not_a_database)
{
    char path[512];
    tmp_path(path, sizeof path, "junk.db");
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 64; i++)
        fputs("this is certainly not an SQLite database file. ", f);
    fclose(f);
    sg_db_config cfg;
    cfg_init(&cfg, "core", path, false);
    sg_err err = {0};
    ck_assert_ptr_null(D->open(&cfg, sg_clock_ms() + LONG_MS, &err));
    ck_assert_int_eq(err.code, SG_DB_UNAVAILABLE);
    ck_assert_ptr_nonnull(strstr(err.message, path));
    cfg.read_only = true;
    ck_assert_ptr_null(D->open(&cfg, sg_clock_ms() + LONG_MS, &err));
    ck_assert_int_eq(err.code, SG_DB_UNAVAILABLE);
}
END_TEST

/* A read-only batch (read_only_next): the engine judges every statement before
 * the first one runs; nothing is written, the mode lasts one exec(). */
static int exec_ro(sg_driver_conn *c, const char *sql, sg_err *err)
{
    D->read_only_next(c);
    int rc = D->exec(c, sql, NULL, 0, sg_clock_ms() + LONG_MS, err);
    if (rc == 0)
        rc = drain(c, err);
    D->finish(c);
    return rc;
}

START_TEST(test_read_only_batch_refused_before_running)
{
    char path[512];
    tmp_path(path, sizeof path, "robatch.db");
    sg_db_config cfg;
    cfg_init(&cfg, "core", path, false);
    sg_driver_conn *c = open_ok(&cfg);
    run_ok(c, "CREATE TABLE t(a INTEGER); CREATE TABLE log(n INTEGER); INSERT INTO t VALUES (1)");

    static const char *const writes[] = {
        "INSERT INTO t VALUES (2)",
        "UPDATE t SET a = 5",
        "DELETE FROM t",
        "CREATE TABLE u(x)",
        "DROP TABLE log",
        "CREATE TEMP TABLE tt(x)",
        "REPLACE INTO t VALUES (9)", /* a PRAGMA that writes is refused by the allow-list */
        /* A write after reads, and one inside a transaction. */
        "SELECT a FROM t; INSERT INTO log VALUES (1)",
        "BEGIN; INSERT INTO log VALUES (1); COMMIT",
        "SELECT 1; SELECT 2; UPDATE t SET a = a + 1 WHERE a > 0",
        "INSERT INTO log SELECT a FROM t RETURNING n",
        "WITH x AS (SELECT 1) INSERT INTO log SELECT * FROM x",
    };
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
        sg_err err = {0};
        ck_assert_msg(exec_ro(c, writes[i], &err) == -1, "%s was allowed", writes[i]);
        ck_assert_msg(err.code == SG_FORBIDDEN, "%s: %s", writes[i], err.message);
        ck_assert_ptr_nonnull(strstr(err.message, "needs rw"));
        ck_assert(!D->unusable(c));
    }
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM log"), 0);
    ck_assert_int_eq(query_int(c, "SELECT a FROM t"), 1);
    ck_assert_int_eq(query_int(c, "PRAGMA user_version"), 0);
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM sqlite_master WHERE name = 'u'"), 0);

    /* Reads pass; the line of the refused statement is named. */
    sg_err err = {0};
    ck_assert_int_eq(exec_ro(c, "SELECT a FROM t; SELECT count(*) FROM log", &err), 0);
    ck_assert_int_eq(exec_ro(c, "SELECT 1;\n\nDELETE FROM t", &err), -1);
    ck_assert_ptr_nonnull(strstr(err.message, "line 3"));

    /* A batch the whole-batch scan cannot prepare stops at its first
     * error: the write after it never runs. */
    ck_assert_int_eq(exec_ro(c, "SELECT * FROM nosuch; DELETE FROM t", &err), -1);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM t"), 1);

    /* One exec only: the next batch may write again. */
    run_ok(c, "INSERT INTO log VALUES (9)");
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM log"), 1);
    D->close(c);
}
END_TEST

START_TEST(test_read_only_cached_statement)
{
    char path[512];
    tmp_path(path, sizeof path, "rocache.db");
    sg_db_config cfg;
    cfg_init(&cfg, "core", path, false);
    sg_driver_conn *c = open_ok(&cfg);
    run_ok(c, "CREATE TABLE t(a INTEGER)");
    /* The same text is now a cached prepared statement. */
    run_ok(c, "INSERT INTO t VALUES (1)");
    sg_err err = {0};
    ck_assert_int_eq(exec_ro(c, "INSERT INTO t VALUES (1)", &err), -1);
    ck_assert_int_eq(err.code, SG_FORBIDDEN);
    run_ok(c, "INSERT INTO t VALUES (1)");
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM t"), 2);
    run_ok(c, "SELECT count(*) FROM t");
    ck_assert_int_eq(exec_ro(c, "SELECT count(*) FROM t", &err), 0);
    D->close(c);
}
END_TEST

START_TEST(test_read_only_write_is_sql_error)
{
    char path[512];
    tmp_path(path, sizeof path, "ro.db");
    sg_db_config rw, ro;
    cfg_init(&rw, "core", path, false);
    cfg_init(&ro, "core", path, true);
    sg_driver_conn *w = open_ok(&rw);
    run_ok(w, "CREATE TABLE t(a INTEGER); INSERT INTO t VALUES (7)");
    D->close(w);

    sg_driver_conn *c = open_ok(&ro);
    ck_assert_int_eq(query_int(c, "SELECT a FROM t"), 7);
    sg_err err = {0};
    int rc = D->exec(c, "INSERT INTO t VALUES (8)", NULL, 0, sg_clock_ms() + LONG_MS, &err);
    if (rc == 0)
        rc = drain(c, &err);
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    ck_assert(err.has_sql);
    ck_assert_int_eq(err.sql.number & 0xff, 8 /* SQLITE_READONLY */);
    ck_assert_int_eq(D->finish(c), 0);
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM t"), 1);
    D->close(c);
}
END_TEST

START_TEST(test_memory_shared_by_name)
{
    sg_db_config a, b;
    cfg_init(&a, "mema", ":memory:", false);
    cfg_init(&b, "memb", ":memory:", false);
    sg_driver_conn *a1 = open_ok(&a);
    sg_driver_conn *a2 = open_ok(&a);
    sg_driver_conn *b1 = open_ok(&b);
    run_ok(a1, "CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (1), (2), (3)");
    ck_assert_int_eq(query_int(a2, "SELECT sum(x) FROM t"), 6);

    sg_err err = {0};
    int rc = D->exec(b1, "SELECT x FROM t", NULL, 0, sg_clock_ms() + LONG_MS, &err);
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    ck_assert_ptr_nonnull(strstr(err.message, "no such table"));
    D->close(b1);

    /* The database lives while one of its connections is open. */
    D->close(a1);
    ck_assert_int_eq(query_int(a2, "SELECT count(*) FROM t"), 3);
    D->close(a2);
    sg_driver_conn *a3 = open_ok(&a);
    ck_assert_int_eq(query_int(a3, "SELECT count(*) FROM sqlite_master"), 0);
    D->close(a3);
}
END_TEST

/* --- values and columns -------------------------------------------------- */

START_TEST(test_value_types)
{
    char path[512];
    tmp_path(path, sizeof path, "types.db");
    sg_db_config cfg;
    cfg_init(&cfg, "core", path, false);
    sg_driver_conn *c = open_ok(&cfg);
    run_ok(c, "CREATE TABLE v(i INTEGER, big BIGINT, r REAL, b BOOLEAN, bt BIT, "
              "d DECIMAL(10, 2), n NUMERIC, m MONEY, t TEXT, s VARCHAR (20), bl BLOB, z INT, "
              "ub UNSIGNED BIG INT, bn bool);"
              "INSERT INTO v VALUES (42, 9007199254740993, 1.5, 1, 0, 12.34, 100, "
              "9007199254740993, 'h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac', 'abc', "
              "x'00ff10', NULL, -9223372036854775808, NULL)");

    const sg_column *cols;
    size_t n;
    const sg_value *v = first_row(c, "SELECT * FROM v", NULL, 0, &cols, &n);
    ck_assert_uint_eq(n, 14);
    static const char *const names[] = {"i", "big", "r", "b",  "bt", "d",  "n",
                                        "m", "t",   "s", "bl", "z",  "ub", "bn"};
    static const char *const types[] = {
        "integer", "bigint", "real",    "boolean", "bit", "decimal",          "numeric",
        "money",   "text",   "varchar", "blob",    "int", "unsigned big int", "bool"};
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(cols[i].name, names[i]);
        ck_assert_str_eq(cols[i].type, types[i]);
    }
    ck_assert_int_eq(v[0].type, SG_V_INT);
    ck_assert_int_eq(v[0].u.i, 42);
    ck_assert_int_eq(v[1].type, SG_V_INT);
    ck_assert(v[1].u.i == INT64_C(9007199254740993));
    ck_assert_int_eq(v[2].type, SG_V_FLOAT);
    ck_assert(v[2].u.f == 1.5);
    ck_assert_int_eq(v[3].type, SG_V_BOOL);
    ck_assert(v[3].u.b);
    ck_assert_int_eq(v[4].type, SG_V_BOOL);
    ck_assert(!v[4].u.b);
    assert_text(&v[5], "12.34");
    assert_text(&v[6], "100");
    assert_text(&v[7], "9007199254740993"); /* exact: never through a double */
    assert_text(&v[8], "h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac");
    assert_text(&v[9], "abc");
    ck_assert_int_eq(v[10].type, SG_V_BINARY);
    ck_assert_uint_eq(v[10].u.s.len, 3);
    ck_assert(memcmp(v[10].u.s.ptr, "\x00\xff\x10", 3) == 0);
    ck_assert_int_eq(v[11].type, SG_V_NULL);
    ck_assert_int_eq(v[12].type, SG_V_INT);
    ck_assert(v[12].u.i == INT64_MIN);
    ck_assert_int_eq(v[13].type, SG_V_NULL);
    sg_err err = {0};
    ck_assert_int_eq(D->next_row(c, &v, &err), 0);
    ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 0);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

START_TEST(test_expression_columns)
{
    sg_db_config cfg;
    cfg_init(&cfg, "mem", ":memory:", false);
    sg_driver_conn *c = open_ok(&cfg);
    run_ok(c, "CREATE TABLE t(a INTEGER, d DECIMAL(5,1)); CREATE TABLE u(x); "
              "INSERT INTO u VALUES (5)");

    /* A table column declared without a type reports its value's class. */
    const sg_column *ucols;
    size_t un;
    first_row(c, "SELECT x FROM u", NULL, 0, &ucols, &un);
    ck_assert_str_eq(ucols[0].type, "integer");
    ck_assert_int_eq(D->finish(c), 0);

    const sg_column *cols;
    size_t n;
    const sg_value *v = first_row(
        c, "SELECT 1 + 1, 'x' AS s, 2.5 AS f, x'0102' AS b, NULL AS z, 7 AS \"\", 1 = 1 AS cmp",
        NULL, 0, &cols, &n);
    ck_assert_uint_eq(n, 7);
    ck_assert_str_eq(cols[0].name, "1 + 1");
    ck_assert_str_eq(cols[0].type, "integer");
    ck_assert_str_eq(cols[1].name, "s");
    ck_assert_str_eq(cols[1].type, "text");
    ck_assert_str_eq(cols[2].type, "real");
    ck_assert_str_eq(cols[3].type, "blob");
    ck_assert_str_eq(cols[4].type, "null");
    ck_assert_str_eq(cols[5].name, "");
    ck_assert_str_eq(cols[5].type, "integer");
    ck_assert_int_eq(v[0].u.i, 2);
    ck_assert_int_eq(v[5].u.i, 7);
    ck_assert_int_eq(v[6].type, SG_V_INT); /* no declared type: stays an integer */
    ck_assert_int_eq(D->finish(c), 0);

    /* No rows: declared types are still known, expressions are "null". */
    sg_err err = {0};
    ck_assert_int_eq(
        D->exec(c, "SELECT a, d, a + 1 AS e FROM t", NULL, 0, sg_clock_ms() + LONG_MS, &err), 0);
    ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 1);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(cols[0].type, "integer");
    ck_assert_str_eq(cols[1].type, "decimal");
    ck_assert_str_eq(cols[2].type, "null");
    ck_assert_int_eq(D->next_row(c, &v, &err), 0);
    ck_assert_int_eq(D->next_row(c, &v, &err), 0);
    ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 0);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

/* --- batches ------------------------------------------------------------- */

/* rows_affected() counts the statements without columns run so far. */
START_TEST(test_rows_affected_so_far)
{
    sg_db_config cfg;
    cfg_init(&cfg, "mem", ":memory:", false);
    sg_driver_conn *c = open_ok(&cfg);
    sg_err err = {0};
    const char *sql = "CREATE TABLE t(a INTEGER, b TEXT);\n"
                      "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');\n"
                      "SELECT a FROM t ORDER BY a;\n"
                      "UPDATE t SET b = 'z' WHERE a >= 2;\n"
                      "CREATE INDEX ti ON t(b);\n"
                      "SELECT b, count(*) AS n FROM t GROUP BY b ORDER BY b;\n"
                      "DELETE FROM t WHERE a = 1;";
    ck_assert_int_eq(D->exec(c, sql, NULL, 0, sg_clock_ms() + LONG_MS, &err), 0);
    ck_assert_int_eq(D->rows_affected(c), 0);

    const sg_column *cols;
    size_t n;
    const sg_value *v;
    ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 1);
    ck_assert_int_eq(D->rows_affected(c), 3);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(cols[0].name, "a");
    for (int64_t want = 1; want <= 3; want++) {
        ck_assert_int_eq(D->next_row(c, &v, &err), 1);
        ck_assert_int_eq(v[0].u.i, want);
    }
    ck_assert_int_eq(D->next_row(c, &v, &err), 0);

    ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 1);
    ck_assert_int_eq(D->rows_affected(c), 5); /* the index is not counted again */
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(cols[1].name, "n");
    ck_assert_int_eq(D->next_row(c, &v, &err), 1);
    assert_text(&v[0], "a");
    ck_assert_int_eq(v[1].u.i, 1);
    ck_assert_int_eq(D->next_row(c, &v, &err), 1);
    assert_text(&v[0], "z");
    ck_assert_int_eq(v[1].u.i, 2);
    ck_assert_int_eq(D->next_row(c, &v, &err), 0);

    ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 0);
    ck_assert_int_eq(D->rows_affected(c), 6);
    ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 0);
    ck_assert_int_eq(D->finish(c), 0);
    ck_assert_int_eq(D->rows_affected(c), 6); /* still readable after finish */

    D->close(c);
}
END_TEST

START_TEST(test_empty_batch_and_returning)
{
    sg_db_config cfg;
    cfg_init(&cfg, "mem", ":memory:", false);
    sg_driver_conn *c = open_ok(&cfg);
    sg_err err = {0};
    const sg_column *cols;
    size_t n;
    const sg_value *v;
    /* Only whitespace, comments and semicolons: a batch without results. */
    ck_assert_int_eq(D->exec(c, "  -- nothing here\n /* or here */ ;\n ; ", NULL, 0,
                             sg_clock_ms() + LONG_MS, &err),
                     0);
    ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 0);
    ck_assert_int_eq(D->rows_affected(c), 0);
    ck_assert_int_eq(D->finish(c), 0);
    ck_assert_int_eq(D->exec(c, "", NULL, 0, sg_clock_ms() + LONG_MS, &err), 0);
    ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 0);
    ck_assert_int_eq(D->finish(c), 0);

    /* RETURNING makes a statement with columns: a result, not a count. */
    run_ok(c, "CREATE TABLE t(id INTEGER PRIMARY KEY, s TEXT)");
    v = first_row(c, "INSERT INTO t(s) VALUES ('a'), ('b') RETURNING id", NULL, 0, &cols, &n);
    ck_assert_int_eq(v[0].u.i, 1);
    ck_assert_int_eq(D->rows_affected(c), 0);
    ck_assert_int_eq(D->finish(c), 0);
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM t"), 2);
    D->close(c);
}
END_TEST

/* --- parameters ---------------------------------------------------------- */

/* Parameter names match case-insensitively when there is no exact match. */
START_TEST(test_param_names_case_insensitive)
{
    sg_db_config cfg;
    cfg_init(&cfg, "mem", ":memory:", false);
    sg_driver_conn *c = open_ok(&cfg);
    sg_param upper = {"ID", {.type = SG_V_INT, .u.i = 77}};
    const sg_value *v = first_row(c, "SELECT @id + 1", &upper, 1, NULL, NULL);
    ck_assert_int_eq(v[0].u.i, 78);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

START_TEST(test_missing_parameter)
{
    sg_db_config cfg;
    cfg_init(&cfg, "mem", ":memory:", false);
    sg_driver_conn *c = open_ok(&cfg);
    sg_param given = {"a", {.type = SG_V_INT, .u.i = 1}};
    static const struct {
        const char *sql;
        const char *needle;
    } cases[] = {
        {"SELECT @a, @x", "@x is not given"},
        {"SELECT :a", ":a is not given"},
        {"SELECT $a", "$a is not given"},
        {"SELECT ?", "positional parameter ? is not supported; write @name"},
        {"SELECT ?2", "write @name"},
    };
    sg_err err = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_int_eq(D->exec(c, cases[i].sql, &given, 1, sg_clock_ms() + LONG_MS, &err), -1);
        ck_assert_int_eq(err.code, SG_SQL_ERROR);
        ck_assert(err.has_sql);
        ck_assert_int_eq(err.sql.line, 1);
        ck_assert_msg(strstr(err.message, cases[i].needle) != NULL, "%s: %s", cases[i].sql,
                      err.message);
        /* exec() failed: the connection is at rest without finish(). */
        ck_assert(!D->unusable(c));
    }
    ck_assert_int_eq(query_int(c, "SELECT 3"), 3);

    /* In a later statement the error comes from next_result(). */
    const sg_column *cols;
    size_t n;
    ck_assert_int_eq(D->exec(c, "SELECT @a;\nSELECT @b", &given, 1, sg_clock_ms() + LONG_MS, &err),
                     0);
    ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 1);
    ck_assert_int_eq(D->next_result(c, &cols, &n, &err), -1);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    ck_assert_int_eq(err.sql.line, 2);
    ck_assert_ptr_nonnull(strstr(err.message, "@b is not given"));
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

/* --- SQL errors ---------------------------------------------------------- */

START_TEST(test_syntax_errors)
{
    sg_db_config cfg;
    cfg_init(&cfg, "mem", ":memory:", false);
    sg_driver_conn *c = open_ok(&cfg);
    sg_err err = {0};
    ck_assert_int_eq(D->exec(c, "\n\n  SELEC 1", NULL, 0, sg_clock_ms() + LONG_MS, &err), -1);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    ck_assert(err.has_sql);
    ck_assert_int_eq(err.sql.number, 1 /* SQLITE_ERROR */);
    ck_assert_int_eq(err.sql.severity, 16);
    ck_assert_int_eq(err.sql.state, 1);
    ck_assert_int_eq(err.sql.line, 3);
    ck_assert_ptr_nonnull(strstr(err.message, "syntax error"));
    ck_assert_int_eq(query_int(c, "SELECT 1"), 1);

    const sg_column *cols;
    size_t n;
    const sg_value *v;
    const char *sql = "SELECT 1;\nSELECT 2; -- fine\n\n /* next */\n  SELEC 3;\nSELECT 4";
    ck_assert_int_eq(D->exec(c, sql, NULL, 0, sg_clock_ms() + LONG_MS, &err), 0);
    ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 1);
    ck_assert_int_eq(D->next_row(c, &v, &err), 1);
    ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 1);
    ck_assert_int_eq(D->next_result(c, &cols, &n, &err), -1);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    ck_assert_int_eq(err.sql.line, 5);
    ck_assert_ptr_nonnull(strstr(err.message, "syntax error"));
    /* The batch stays failed until finish(). */
    sg_err again = {0};
    ck_assert_int_eq(D->next_result(c, &cols, &n, &again), -1);
    ck_assert_int_eq(again.code, SG_SQL_ERROR);
    ck_assert_int_eq(D->finish(c), 0);

    /* A runtime error in a statement without columns. */
    run_ok(c, "CREATE TABLE t(a INTEGER NOT NULL)");
    ck_assert_int_eq(D->exec(c, "INSERT INTO t VALUES (1);\nINSERT INTO t VALUES (NULL)", NULL, 0,
                             sg_clock_ms() + LONG_MS, &err),
                     0);
    ck_assert_int_eq(D->next_result(c, &cols, &n, &err), -1);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    ck_assert_int_eq(err.sql.number, 1299 /* SQLITE_CONSTRAINT_NOTNULL */);
    ck_assert_int_eq(err.sql.line, 2);
    ck_assert_int_eq(D->finish(c), 0);
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM t"), 1);

    /* Foreign keys are enforced. */
    run_ok(c, "CREATE TABLE parent(id INTEGER PRIMARY KEY);"
              "CREATE TABLE child(p INTEGER REFERENCES parent(id))");
    ck_assert_int_eq(
        D->exec(c, "INSERT INTO child VALUES (5)", NULL, 0, sg_clock_ms() + LONG_MS, &err), 0);
    ck_assert_int_eq(D->next_result(c, &cols, &n, &err), -1);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

START_TEST(test_attach_denied)
{
    char path[512], other[512];
    tmp_path(path, sizeof path, "main.db");
    tmp_path(other, sizeof other, "other.db");
    sg_db_config cfg;
    cfg_init(&cfg, "core", path, false);
    sg_driver_conn *c = open_ok(&cfg);
    char sql[1200];
    snprintf(sql, sizeof sql, "ATTACH '%s' AS o", other);
    sg_err err = {0};
    ck_assert_int_eq(D->exec(c, sql, NULL, 0, sg_clock_ms() + LONG_MS, &err), -1);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    snprintf(sql, sizeof sql, "VACUUM INTO '%s'", other);
    ck_assert_int_eq(D->exec(c, sql, NULL, 0, sg_clock_ms() + LONG_MS, &err), 0);
    ck_assert_int_eq(drain(c, &err), -1);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    ck_assert_int_eq(D->finish(c), 0);
    ck_assert(!exists(other));
    /* VACUUM attaches a temporary copy by itself; a caller may not attach
     * even an in-memory database (it would outlive the request). */
    run_ok(c, "CREATE TABLE t(a); VACUUM");
    ck_assert_int_eq(
        D->exec(c, "ATTACH ':memory:' AS scratch", NULL, 0, sg_clock_ms() + LONG_MS, &err), -1);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    ck_assert_ptr_nonnull(strstr(err.message, "ATTACH is not allowed"));
    ck_assert_int_eq(D->exec(c, "DETACH main", NULL, 0, sg_clock_ms() + LONG_MS, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.message, "DETACH is not allowed"));
    ck_assert(!D->unusable(c));
    D->close(c);
}
END_TEST

/* --- deadlines, interrupts, transactions, locks -------------------------- */

static const char *const endless =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
    "SELECT count(*) FROM c";

/* The timeout message names the time from exec() to the deadline. */
START_TEST(test_deadline_message)
{
    sg_db_config cfg;
    cfg_init(&cfg, "mem", ":memory:", false);
    sg_driver_conn *c = open_ok(&cfg);
    sg_err err = {0};
    int64_t t0 = sg_clock_ms();
    int rc = D->exec(c, endless, NULL, 0, t0 + 200, &err);
    if (rc == 0) {
        const sg_column *cols;
        size_t n;
        rc = D->next_result(c, &cols, &n, &err);
    }
    int64_t elapsed = sg_clock_ms() - t0;
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(err.code, SG_QUERY_TIMEOUT);
    assert_timeout_ms(&err, 200);
    ck_assert_msg(elapsed >= 150 && elapsed < 5000, "elapsed %lld ms", (long long)elapsed);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

START_TEST(test_finish_mid_result)
{
    char path[512];
    tmp_path(path, sizeof path, "mid.db");
    sg_db_config cfg;
    cfg_init(&cfg, "core", path, false);
    sg_driver_conn *c = open_ok(&cfg);
    sg_driver_conn *w = open_ok(&cfg);
    run_ok(c, "CREATE TABLE t(a INTEGER);"
              "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 500) "
              "INSERT INTO t SELECT x FROM r");
    const sg_value *v =
        first_row(c, "SELECT a FROM t ORDER BY a; DELETE FROM t", NULL, 0, NULL, NULL);
    ck_assert_int_eq(v[0].u.i, 1);
    ck_assert_int_eq(D->finish(c), 0);
    ck_assert(!D->unusable(c));
    /* The rest of the batch did not run, and no lock is left behind. */
    run_ok(w, "INSERT INTO t VALUES (501)");
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM t"), 501);
    D->close(w);
    D->close(c);
}
END_TEST

START_TEST(test_busy_file_times_out)
{
    char path[512];
    tmp_path(path, sizeof path, "busy.db");
    sg_db_config cfg;
    cfg_init(&cfg, "core", path, false);
    sg_driver_conn *c = open_ok(&cfg);
    sg_driver_conn *holder = open_ok(&cfg);
    run_ok(c, "CREATE TABLE t(a INTEGER)");

    sg_err err = {0};
    ck_assert_int_eq(D->exec(holder, "BEGIN IMMEDIATE", NULL, 0, sg_clock_ms() + LONG_MS, &err), 0);
    ck_assert_int_eq(drain(holder, &err), 0);
    ck_assert_int_eq(D->finish(holder), -1); /* holds the write lock */

    int64_t t0 = sg_clock_ms();
    int rc = D->exec(c, "INSERT INTO t VALUES (1)", NULL, 0, t0 + 300, &err);
    if (rc == 0)
        rc = drain(c, &err);
    int64_t elapsed = sg_clock_ms() - t0;
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(err.code, SG_QUERY_TIMEOUT);
    assert_timeout_ms(&err, 300);
    ck_assert_msg(elapsed >= 250 && elapsed < 5000, "elapsed %lld ms", (long long)elapsed);
    ck_assert_int_eq(D->finish(c), 0);

    /* Readers are not blocked by a writer in WAL mode. */
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM t"), 0);
    D->close(holder);
    run_ok(c, "INSERT INTO t VALUES (1)");
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM t"), 1);
    D->close(c);
}
END_TEST

START_TEST(test_busy_memory_times_out)
{
    sg_db_config cfg;
    cfg_init(&cfg, "locks", ":memory:", false);
    sg_driver_conn *c = open_ok(&cfg);
    sg_driver_conn *holder = open_ok(&cfg);
    run_ok(c, "CREATE TABLE t(a INTEGER); INSERT INTO t VALUES (1)");

    sg_err err = {0};
    ck_assert_int_eq(
        D->exec(holder, "BEGIN; INSERT INTO t VALUES (2)", NULL, 0, sg_clock_ms() + LONG_MS, &err),
        0);
    ck_assert_int_eq(drain(holder, &err), 0);
    ck_assert_int_eq(D->finish(holder), -1);

    int64_t t0 = sg_clock_ms();
    int rc = D->exec(c, "SELECT count(*) FROM t", NULL, 0, t0 + 300, &err);
    if (rc == 0)
        rc = drain(c, &err);
    int64_t elapsed = sg_clock_ms() - t0;
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(err.code == SG_QUERY_TIMEOUT, "%s", err.message);
    ck_assert_msg(elapsed >= 250 && elapsed < 5000, "elapsed %lld ms", (long long)elapsed);
    ck_assert_int_eq(D->finish(c), 0);

    D->close(holder); /* rolls back the held insert */
    ck_assert_int_eq(query_int(c, "SELECT count(*) FROM t"), 1);
    D->close(c);
}
END_TEST

START_TEST(test_disk_full_is_unavailable)
{
    char path[512];
    tmp_path(path, sizeof path, "full.db");
    sg_db_config cfg;
    cfg_init(&cfg, "core", path, false);
    sg_driver_conn *c = open_ok(&cfg);
    run_ok(c, "CREATE TABLE t(b BLOB)");
    sg_err err = {0};
    /* Callers may not run this PRAGMA; the health query (sqlgate's own) may. */
    ck_assert_msg(D->ping(c, "PRAGMA max_page_count = 4", sg_clock_ms() + LONG_MS, &err) == 0, "%s",
                  err.message);
    ck_assert_int_eq(D->exec(c, "INSERT INTO t VALUES (zeroblob(100000))", NULL, 0,
                             sg_clock_ms() + LONG_MS, &err),
                     0);
    ck_assert_int_eq(drain(c, &err), -1);
    ck_assert_int_eq(err.code, SG_DB_UNAVAILABLE);
    ck_assert_ptr_nonnull(strstr(err.message, path));
    ck_assert_int_eq(D->finish(c), -1);
    ck_assert(D->unusable(c));
    ck_assert_int_eq(D->exec(c, "SELECT 1", NULL, 0, sg_clock_ms() + LONG_MS, &err), -1);
    ck_assert_int_eq(err.code, SG_DB_UNAVAILABLE);
    D->close(c);
}
END_TEST

/* --- statement cache ----------------------------------------------------- */

/* The single integer of a one-statement batch with one parameter @p. */
static int64_t query_int_p(sg_driver_conn *c, const char *sql, int64_t p)
{
    sg_param param = {"p", {.type = SG_V_INT, .u.i = p}};
    const sg_value *v = first_row(c, sql, &param, 1, NULL, NULL);
    ck_assert_int_eq(v[0].type, SG_V_INT);
    int64_t r = v[0].u.i;
    ck_assert_int_eq(D->finish(c), 0);
    return r;
}

/* Runs a one-statement batch without columns; returns rows_affected. */
static int64_t run_affected(sg_driver_conn *c, const char *sql, const sg_param *params, size_t n)
{
    sg_err err = {0};
    ck_assert_msg(D->exec(c, sql, params, n, sg_clock_ms() + LONG_MS, &err) == 0, "exec(%s): %s",
                  sql, err.message);
    const sg_column *cols;
    size_t nc;
    ck_assert_msg(D->next_result(c, &cols, &nc, &err) == 0, "next_result(%s): %s", sql,
                  err.message);
    int64_t affected = D->rows_affected(c);
    ck_assert_int_eq(D->finish(c), 0);
    return affected;
}

START_TEST(test_cache_reuse_with_new_params)
{
    sg_db_config cfg;
    cfg_init(&cfg, "mem", ":memory:", false);
    sg_driver_conn *c = open_ok(&cfg);
    run_ok(c, "CREATE TABLE t(a INTEGER PRIMARY KEY, s TEXT)");
    for (int64_t i = 1; i <= 20; i++) {
        char text[32];
        snprintf(text, sizeof text, "row %lld", (long long)i);
        sg_param p[] = {{"a", {.type = SG_V_INT, .u.i = i}},
                        {"s", {.type = SG_V_TEXT, .u.s = {text, strlen(text)}}}};
        ck_assert_int_eq(run_affected(c, "INSERT INTO t VALUES (@a, @s)", p, 2), 1);
        memset(text, '#', sizeof text); /* the batch owns its copy */
    }
    for (int64_t i = 20; i >= 1; i--) {
        sg_param p = {"a", {.type = SG_V_INT, .u.i = i}};
        const sg_value *v = first_row(c, "SELECT a, s FROM t WHERE a = @a", &p, 1, NULL, NULL);
        ck_assert_int_eq(v[0].u.i, i);
        char want[32];
        snprintf(want, sizeof want, "row %lld", (long long)i);
        assert_text(&v[1], want);
        sg_err err = {0};
        ck_assert_int_eq(D->next_row(c, &v, &err), 0);
        ck_assert_int_eq(D->finish(c), 0);
    }
    sg_param even = {"m", {.type = SG_V_INT, .u.i = 2}};
    sg_param third = {"m", {.type = SG_V_INT, .u.i = 3}};
    ck_assert_int_eq(run_affected(c, "UPDATE t SET s = 'x' WHERE a % @m = 0", &even, 1), 10);
    ck_assert_int_eq(run_affected(c, "UPDATE t SET s = 'x' WHERE a % @m = 0", &third, 1), 6);

    /* A parameter that the next exec() does not give is missing, not the
     * previous value; the one after that binds again. */
    sg_param one = {"q", {.type = SG_V_TEXT, .u.s = {"first", 5}}};
    const sg_value *v = first_row(c, "SELECT @q", &one, 1, NULL, NULL);
    assert_text(&v[0], "first");
    ck_assert_int_eq(D->finish(c), 0);
    sg_err err = {0};
    ck_assert_int_eq(D->exec(c, "SELECT @q", NULL, 0, sg_clock_ms() + LONG_MS, &err), -1);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    ck_assert_ptr_nonnull(strstr(err.message, "@q is not given"));
    sg_param two = {"q", {.type = SG_V_BINARY, .u.s = {"\x01\x02", 2}}};
    v = first_row(c, "SELECT @q", &two, 1, NULL, NULL);
    ck_assert_int_eq(v[0].type, SG_V_BINARY);
    ck_assert_uint_eq(v[0].u.s.len, 2);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

/* The expression fails with "integer overflow" on the row where a = @bad;
 * rows come in insertion order (no sort, which would read them all first). */
static const char *const overflow_at =
    "SELECT CASE WHEN a = @bad THEN abs(a - a - 9223372036854775807 - 1) ELSE a END AS v "
    "FROM t";

/* Reads `sql` (params @bad) to its end; the number of rows read before the
 * end, or before the error when *err is set. */
static int read_rows(sg_driver_conn *c, const char *sql, int64_t bad, sg_err *err)
{
    sg_param p = {"bad", {.type = SG_V_INT, .u.i = bad}};
    ck_assert_int_eq(D->exec(c, sql, &p, 1, sg_clock_ms() + LONG_MS, err), 0);
    const sg_column *cols;
    size_t n;
    const sg_value *v;
    int rows = 0;
    int rc = D->next_result(c, &cols, &n, err);
    while (rc == 1 && (rc = D->next_row(c, &v, err)) == 1) {
        rows++;
        ck_assert_int_eq(v[0].u.i, rows);
    }
    if (rc == 0) {
        ck_assert_int_eq(D->next_result(c, &cols, &n, err), 0);
        err->code = SG_OK;
    }
    ck_assert_int_eq(D->finish(c), 0);
    return rows;
}

START_TEST(test_cache_reuse_after_error)
{
    sg_db_config cfg;
    cfg_init(&cfg, "mem", ":memory:", false);
    sg_driver_conn *c = open_ok(&cfg);
    run_ok(c, "CREATE TABLE t(a INTEGER);"
              "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 10) "
              "INSERT INTO t SELECT x FROM r");
    sg_err err = {0};
    for (int round = 0; round < 3; round++) {
        ck_assert_int_eq(read_rows(c, overflow_at, 0, &err), 10);
        ck_assert_int_eq(err.code, SG_OK);
        /* Mid-stream: two rows, then the error. */
        ck_assert_int_eq(read_rows(c, overflow_at, 3, &err), 2);
        ck_assert_int_eq(err.code, SG_SQL_ERROR);
        ck_assert_ptr_nonnull(strstr(err.message, "integer overflow"));
        /* On the first step: next_result() fails. */
        ck_assert_int_eq(read_rows(c, overflow_at, 1, &err), 0);
        ck_assert_int_eq(err.code, SG_SQL_ERROR);
        ck_assert_int_eq(err.sql.line, 1);
        ck_assert(!D->unusable(c));
    }
    /* A constraint error, then the same INSERT succeeding. */
    run_ok(c, "CREATE TABLE u(k INTEGER PRIMARY KEY)");
    sg_param k = {"k", {.type = SG_V_INT, .u.i = 1}};
    ck_assert_int_eq(run_affected(c, "INSERT INTO u VALUES (@k)", &k, 1), 1);
    ck_assert_int_eq(D->exec(c, "INSERT INTO u VALUES (@k)", &k, 1, sg_clock_ms() + LONG_MS, &err),
                     0);
    const sg_column *cols;
    size_t n;
    ck_assert_int_eq(D->next_result(c, &cols, &n, &err), -1);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    ck_assert_int_eq(err.sql.number, 1555 /* SQLITE_CONSTRAINT_PRIMARYKEY */);
    ck_assert_int_eq(D->finish(c), 0);
    k.value.u.i = 2;
    ck_assert_int_eq(run_affected(c, "INSERT INTO u VALUES (@k)", &k, 1), 1);
    ck_assert_int_eq(query_int(c, "SELECT sum(k) FROM u"), 3);
    D->close(c);
}
END_TEST

START_TEST(test_cache_eviction)
{
    sg_db_config cfg;
    cfg_init(&cfg, "mem", ":memory:", false);
    sg_driver_conn *c = open_ok(&cfg);
    /* Texts of equal length that differ only in digits, more of them than
     * any cache holds; then all again in both orders. */
    char sql[64];
    for (int pass = 0; pass < 3; pass++) {
        for (int k = 0; k < 100; k++) {
            int i = pass == 1 ? 99 - k : k;
            snprintf(sql, sizeof sql, "SELECT %d + 1000 * @p", 100 + i);
            ck_assert_int_eq(query_int_p(c, sql, pass), 100 + i + 1000 * pass);
        }
        snprintf(sql, sizeof sql, "SELECT %d + 1000 * @p", 100);
        ck_assert_int_eq(query_int_p(c, sql, 7), 7100);
    }
    /* A few hot statements between many cold ones. */
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(query_int_p(c, "SELECT @p * 2", i), 2 * i);
        snprintf(sql, sizeof sql, "SELECT %d + @p", 1000 + i);
        ck_assert_int_eq(query_int_p(c, sql, 1), 1001 + i);
        ck_assert_int_eq(query_int(c, "SELECT 42"), 42);
    }
    D->close(c);
}
END_TEST

START_TEST(test_cache_schema_change)
{
    char path[512];
    tmp_path(path, sizeof path, "schema.db");
    sg_db_config cfg;
    cfg_init(&cfg, "core", path, false);
    sg_driver_conn *c = open_ok(&cfg);
    sg_driver_conn *other = open_ok(&cfg);
    run_ok(c, "CREATE TABLE t(a INTEGER); INSERT INTO t VALUES (1)");
    const char *all = "SELECT * FROM t";
    const sg_column *cols;
    size_t n;
    const sg_value *v = first_row(c, all, NULL, 0, &cols, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(D->finish(c), 0);

    /* Changed on the same connection. */
    run_ok(c, "ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'bee'");
    v = first_row(c, all, NULL, 0, &cols, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(cols[0].name, "a");
    ck_assert_str_eq(cols[1].name, "b");
    ck_assert_str_eq(cols[1].type, "text");
    ck_assert_int_eq(v[0].u.i, 1);
    assert_text(&v[1], "bee");
    ck_assert_int_eq(D->finish(c), 0);

    /* Changed by another connection. */
    run_ok(other, "ALTER TABLE t ADD COLUMN flag BOOLEAN DEFAULT 1");
    v = first_row(c, all, NULL, 0, &cols, &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(cols[2].name, "flag");
    ck_assert_str_eq(cols[2].type, "boolean");
    ck_assert_int_eq(v[2].type, SG_V_BOOL);
    ck_assert(v[2].u.b);
    ck_assert_int_eq(D->finish(c), 0);

    /* DML cached before DDL still runs after it. */
    sg_param p = {"a", {.type = SG_V_INT, .u.i = 2}};
    ck_assert_int_eq(run_affected(c, "INSERT INTO t(a) VALUES (@a)", &p, 1), 1);
    run_ok(other, "ALTER TABLE t ADD COLUMN d DECIMAL(5,2) DEFAULT 1.50");
    p.value.u.i = 3;
    ck_assert_int_eq(run_affected(c, "INSERT INTO t(a) VALUES (@a)", &p, 1), 1);
    v = first_row(c, "SELECT * FROM t WHERE a = 3", NULL, 0, &cols, &n);
    ck_assert_uint_eq(n, 4);
    assert_text(&v[3], "1.5");
    ck_assert_int_eq(D->finish(c), 0);

    /* A cached statement whose table is gone fails as SQL; then works
     * again once the table is back. */
    run_ok(other, "DROP TABLE t");
    sg_err err = {0};
    int rc = D->exec(c, all, NULL, 0, sg_clock_ms() + LONG_MS, &err);
    if (rc == 0)
        rc = D->next_result(c, &cols, &n, &err);
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    ck_assert_ptr_nonnull(strstr(err.message, "no such table"));
    ck_assert_int_eq(D->finish(c), 0);
    run_ok(other, "CREATE TABLE t(x TEXT, y TEXT); INSERT INTO t VALUES ('p', 'q')");
    v = first_row(c, all, NULL, 0, &cols, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(cols[0].name, "x");
    assert_text(&v[1], "q");
    ck_assert_int_eq(D->finish(c), 0);

    /* DDL run twice: the second fails as before. */
    run_ok(c, "CREATE TABLE twice(a)");
    rc = D->exec(c, "CREATE TABLE twice(a)", NULL, 0, sg_clock_ms() + LONG_MS, &err);
    if (rc == 0)
        rc = D->next_result(c, &cols, &n, &err);
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    ck_assert_ptr_nonnull(strstr(err.message, "already exists"));
    ck_assert_int_eq(D->finish(c), 0);
    D->close(other);
    D->close(c);
}
END_TEST

/* Some pragmas act while they are prepared, not when they run: every run
 * must read the value anew (SQLite also re-prepares a PRAGMA on each run by
 * itself). Callers may only read; the value changes through the trusted
 * health-query path. */
START_TEST(test_cache_pragmas_act_every_time)
{
    sg_db_config cfg;
    cfg_init(&cfg, "mem", ":memory:", false);
    sg_driver_conn *c = open_ok(&cfg);
    sg_err err = {0};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(D->ping(c, "PRAGMA user_version = 1234", sg_clock_ms() + LONG_MS, &err),
                         0);
        ck_assert_int_eq(query_int(c, "PRAGMA user_version"), 1234);
        ck_assert_int_eq(D->ping(c, "PRAGMA user_version = 777", sg_clock_ms() + LONG_MS, &err), 0);
        ck_assert_int_eq(query_int(c, "PRAGMA user_version"), 777);
    }
    D->close(c);
}
END_TEST

/* Reads the first row of a 500-row result, then stops the way the service
 * does: finish() (client gone) or next_result() (max_rows reached). */
static void stop_after_first_row(sg_driver_conn *c, bool by_finish)
{
    const sg_value *v = first_row(c, "SELECT a FROM t ORDER BY a", NULL, 0, NULL, NULL);
    ck_assert_int_eq(v[0].u.i, 1);
    if (!by_finish) {
        const sg_column *cols;
        size_t n;
        sg_err err = {0};
        ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 0);
    }
    ck_assert_int_eq(D->finish(c), 0);
}

static const char *const fill_500 =
    "CREATE TABLE t(a INTEGER);"
    "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 500) "
    "INSERT INTO t SELECT x FROM r";

START_TEST(test_cache_stopped_early_releases_file)
{
    char path[512];
    tmp_path(path, sizeof path, "early.db");
    sg_db_config cfg;
    cfg_init(&cfg, "core", path, false);
    sg_driver_conn *r = open_ok(&cfg);
    sg_driver_conn *w = open_ok(&cfg);
    run_ok(w, fill_500);
    for (int i = 0; i < 4; i++) {
        stop_after_first_row(r, i % 2 == 0);
        sg_err err = {0};
        ck_assert_int_eq(D->exec(w, "UPDATE t SET a = a + 1000 WHERE a = 2", NULL, 0,
                                 sg_clock_ms() + 2000, &err),
                         0);
        ck_assert_msg(drain(w, &err) == 0, "%s", err.message);
        ck_assert_int_eq(D->rows_affected(w), 1);
        ck_assert_int_eq(D->finish(w), 0);
        /* A reader still inside its snapshot would keep the WAL from being
         * reset: the checkpoint would wait out its deadline and report busy. */
        /* Callers may not run wal_checkpoint: a connection of the test's own. */
        sqlite3 *raw = NULL;
        ck_assert_int_eq(sqlite3_open_v2(path, &raw, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
        int ck = sqlite3_wal_checkpoint_v2(raw, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        sqlite3_close(raw);
        ck_assert_msg(ck == SQLITE_OK, "checkpoint blocked by a reader (%d)", ck);
        run_ok(w, "UPDATE t SET a = a - 1000 WHERE a = 1002");
        /* An interrupt at rest stops the next batch; after its finish() the
         * cached statement runs again (SQLite forgets its own interrupt only
         * once no statement of the connection is active). */
        D->interrupt(r);
        ck_assert_int_eq(D->exec(r, "SELECT count(*) FROM t", NULL, 0, sg_clock_ms() + 1000, &err),
                         -1);
        ck_assert_int_eq(err.code, SG_QUERY_TIMEOUT);
        ck_assert_int_eq(D->finish(r), 0);
        ck_assert_int_eq(query_int(r, "SELECT count(*) FROM t"), 500);
    }
    D->close(w);
    D->close(r);
}
END_TEST

START_TEST(test_cache_stopped_early_releases_memory)
{
    sg_db_config cfg;
    cfg_init(&cfg, "early", ":memory:", false);
    sg_driver_conn *r = open_ok(&cfg);
    sg_driver_conn *w = open_ok(&cfg);
    run_ok(w, fill_500);
    for (int i = 0; i < 4; i++) {
        stop_after_first_row(r, i % 2 == 0);
        /* A shared-cache table lock left by the reader would fail this
         * writer with a timeout. */
        sg_err err = {0};
        ck_assert_int_eq(
            D->exec(w, "UPDATE t SET a = a WHERE a <= 2", NULL, 0, sg_clock_ms() + 2000, &err), 0);
        ck_assert_msg(drain(w, &err) == 0, "%s", err.message);
        ck_assert_int_eq(D->rows_affected(w), 2);
        ck_assert_int_eq(D->finish(w), 0);
    }
    D->close(w);
    D->close(r);
}
END_TEST

static const char *const count_to_p =
    "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < @p) "
    "SELECT count(*) FROM r";

START_TEST(test_cache_deadline_and_interrupt)
{
    sg_db_config cfg;
    cfg_init(&cfg, "mem", ":memory:", false);
    sg_driver_conn *c = open_ok(&cfg);
    const int64_t forever = INT64_C(1) << 50;
    sg_param p = {"p", {.type = SG_V_INT, .u.i = forever}};
    const sg_column *cols;
    size_t n;
    sg_err err = {0};
    for (int round = 0; round < 2; round++) {
        ck_assert_int_eq(query_int_p(c, count_to_p, 10), 10);

        int64_t t0 = sg_clock_ms();
        ck_assert_int_eq(D->exec(c, count_to_p, &p, 1, t0 + 200, &err), 0);
        ck_assert_int_eq(D->next_result(c, &cols, &n, &err), -1);
        ck_assert_int_eq(err.code, SG_QUERY_TIMEOUT);
        assert_timeout_ms(&err, 200);
        ck_assert_int_eq(D->finish(c), 0);
        ck_assert_int_eq(query_int_p(c, count_to_p, 5), 5);

        ck_assert_int_eq(D->exec(c, count_to_p, &p, 1, sg_clock_ms() + LONG_MS, &err), 0);
        dc_interrupter it = {.d = D, .c = c, .delay_ms = 100};
        dc_interrupt_start(&it);
        int rc = D->next_result(c, &cols, &n, &err);
        dc_interrupt_join(&it);
        ck_assert_int_eq(rc, -1);
        ck_assert_int_eq(err.code, SG_QUERY_TIMEOUT);
        ck_assert_ptr_nonnull(strstr(err.message, "cancelled"));
        ck_assert_int_eq(D->finish(c), 0);
        ck_assert_int_eq(query_int_p(c, count_to_p, 7), 7);

        sg_param small = {"p", {.type = SG_V_INT, .u.i = 3}};
        ck_assert_int_eq(D->exec(c, count_to_p, &small, 1, sg_clock_ms() - 1, &err), -1);
        ck_assert_int_eq(err.code, SG_QUERY_TIMEOUT);
        ck_assert_ptr_nonnull(strstr(err.message, "timed out before it started"));
    }
    ck_assert(!D->unusable(c));
    D->close(c);
}
END_TEST

/* The clock is read every few rows, not every row: a caller that reads slowly
 * past the deadline still gets the timeout within a bounded number of rows. */
START_TEST(test_deadline_while_streaming)
{
    sg_db_config cfg;
    cfg_init(&cfg, "mem", ":memory:", false);
    sg_driver_conn *c = open_ok(&cfg);
    /* A plain scan takes few VM steps per row: the progress handler alone
     * would let a few hundred rows through. */
    run_ok(c, "CREATE TABLE t(x INTEGER);"
              "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 5000) "
              "INSERT INTO t SELECT x FROM r");
    sg_param p = {"p", {.type = SG_V_INT, .u.i = 5000}};
    const char *sql = "SELECT x FROM t WHERE x <= @p";
    sg_err err = {0};
    const sg_column *cols;
    size_t n;
    const sg_value *v;
    for (int round = 0; round < 2; round++) {
        ck_assert_int_eq(D->exec(c, sql, &p, 1, sg_clock_ms() + 300, &err), 0);
        ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 1);
        int64_t rows = 0;
        for (; rows < 10; rows++)
            ck_assert_int_eq(D->next_row(c, &v, &err), 1);
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 400 * 1000000L};
        nanosleep(&ts, NULL);
        int rc;
        while ((rc = D->next_row(c, &v, &err)) == 1)
            rows++;
        ck_assert_int_eq(rc, -1);
        ck_assert_int_eq(err.code, SG_QUERY_TIMEOUT);
        assert_timeout_ms(&err, 300);
        ck_assert_msg(rows < 10 + 64, "%lld rows after the deadline", (long long)rows - 10);
        /* The batch stays failed until finish(). */
        ck_assert_int_eq(D->next_row(c, &v, &err), -1);
        ck_assert_int_eq(D->finish(c), 0);
    }
    /* With time left every row arrives. */
    sg_param few = {"p", {.type = SG_V_INT, .u.i = 1000}};
    ck_assert_int_eq(D->exec(c, sql, &few, 1, sg_clock_ms() + LONG_MS, &err), 0);
    ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 1);
    int64_t rows = 0;
    while (D->next_row(c, &v, &err) == 1)
        ck_assert_int_eq(v[0].u.i, ++rows);
    ck_assert_int_eq(rows, 1000);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

/* Only a batch of one statement is cached; longer ones run statement by
 * statement every time, and one that merely starts with a cached text is a
 * different batch. */
START_TEST(test_cache_multi_statement_batches)
{
    sg_db_config cfg;
    cfg_init(&cfg, "mem", ":memory:", false);
    sg_driver_conn *c = open_ok(&cfg);
    sg_err err = {0};
    const sg_column *cols;
    size_t n;
    const sg_value *v;
    for (int round = 0; round < 3; round++) {
        run_ok(c, "DROP TABLE IF EXISTS t; CREATE TABLE t(a INTEGER); INSERT INTO t VALUES (1)");
        ck_assert_int_eq(query_int(c, "SELECT a FROM t"), 1);
        ck_assert_int_eq(D->exec(c,
                                 "SELECT a FROM t; INSERT INTO t VALUES (2); SELECT sum(a) FROM t",
                                 NULL, 0, sg_clock_ms() + LONG_MS, &err),
                         0);
        ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 1);
        ck_assert_int_eq(D->next_row(c, &v, &err), 1);
        ck_assert_int_eq(v[0].u.i, 1);
        ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 1);
        ck_assert_int_eq(D->rows_affected(c), 1);
        ck_assert_int_eq(D->next_row(c, &v, &err), 1);
        ck_assert_int_eq(v[0].u.i, 3);
        ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 0);
        ck_assert_int_eq(D->finish(c), 0);

        /* Trailing separators: still one statement, one result. */
        ck_assert_int_eq(D->exec(c, "SELECT count(*) FROM t ; -- done\n ; /* end */ ", NULL, 0,
                                 sg_clock_ms() + LONG_MS, &err),
                         0);
        ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 1);
        ck_assert_int_eq(D->next_row(c, &v, &err), 1);
        ck_assert_int_eq(v[0].u.i, 2);
        ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 0);
        ck_assert_int_eq(D->finish(c), 0);

        /* A tail that is not only separators fails after the first result. */
        ck_assert_int_eq(D->exec(c, "SELECT 1;\v", NULL, 0, sg_clock_ms() + LONG_MS, &err), 0);
        ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 1);
        ck_assert_int_eq(D->next_result(c, &cols, &n, &err), -1);
        ck_assert_int_eq(err.code, SG_SQL_ERROR);
        ck_assert_int_eq(D->finish(c), 0);

        /* An error in the second statement stays where it was. */
        ck_assert_int_eq(
            D->exec(c, "SELECT 1;\nSELECT nothing FROM t", NULL, 0, sg_clock_ms() + LONG_MS, &err),
            0);
        ck_assert_int_eq(D->next_result(c, &cols, &n, &err), 1);
        ck_assert_int_eq(D->next_result(c, &cols, &n, &err), -1);
        ck_assert_int_eq(err.sql.line, 2);
        ck_assert_int_eq(D->finish(c), 0);
    }
    /* The line of a cached statement after leading blank lines. */
    for (int round = 0; round < 2; round++) {
        ck_assert_int_eq(
            D->exec(c, "\n\n  SELECT nothing FROM t", NULL, 0, sg_clock_ms() + LONG_MS, &err), -1);
        ck_assert_int_eq(err.sql.line, 3);
        ck_assert_int_eq(
            D->exec(c, "\n\n  SELECT 1 + abs(@p)", NULL, 0, sg_clock_ms() + LONG_MS, &err), -1);
        ck_assert_int_eq(err.sql.line, 3);
    }
    D->close(c);
}
END_TEST

/* --- Hostile SQL (issue 17): process and session state ------------------ */

/* Runs sql expecting SG_SQL_ERROR whose message contains `want`; the batch
 * may fail at exec() or at its first result. */
static void refused(sg_driver_conn *c, const char *sql, const char *want)
{
    sg_err err = {0};
    int rc = D->exec(c, sql, NULL, 0, sg_clock_ms() + LONG_MS, &err);
    if (rc == 0) {
        rc = drain(c, &err);
        D->finish(c);
    }
    ck_assert_msg(rc == -1, "%s was not refused", sql);
    ck_assert_int_eq(err.code, SG_SQL_ERROR);
    ck_assert_msg(strstr(err.message, want) != NULL, "%s: message \"%s\" lacks \"%s\"", sql,
                  err.message, want);
}

START_TEST(test_pragma_allow_list)
{
    char path[512];
    tmp_path(path, sizeof path, "pragma.db");
    sg_db_config cfg;
    cfg_init(&cfg, "core", path, false);
    sg_driver_conn *c = open_ok(&cfg);
    sqlite3_int64 heap = sqlite3_hard_heap_limit64(-1);
    run_ok(c, "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);"
              "CREATE INDEX users_name ON users(name)");
    /* Reads of the schema and of settings work, also as table-valued functions. */
    run_ok(c, "PRAGMA table_info(users); PRAGMA table_list; PRAGMA index_list(users);"
              "PRAGMA index_info(users_name); PRAGMA foreign_key_list(users);"
              "PRAGMA user_version; PRAGMA page_size; PRAGMA journal_mode");
    run_ok(c, "SELECT name FROM pragma_table_info('users')");
    /* Process-wide settings, connection settings and setter forms do not. */
    refused(c, "PRAGMA hard_heap_limit=200000", "PRAGMA hard_heap_limit is not allowed");
    refused(c, "PRAGMA soft_heap_limit=1", "PRAGMA soft_heap_limit is not allowed");
    refused(c, "PRAGMA temp_store_directory='/tmp'", "PRAGMA temp_store_directory");
    refused(c, "PRAGMA data_store_directory='/tmp'", "PRAGMA data_store_directory");
    refused(c, "PRAGMA threads=8", "PRAGMA threads");
    refused(c, "PRAGMA mmap_size=1000000", "PRAGMA mmap_size");
    refused(c, "PRAGMA cache_size=-1000000", "PRAGMA cache_size");
    refused(c, "PRAGMA journal_mode=DELETE", "PRAGMA journal_mode");
    refused(c, "PRAGMA foreign_keys=OFF", "PRAGMA foreign_keys");
    refused(c, "PRAGMA query_only=1", "PRAGMA query_only");
    refused(c, "SELECT * FROM pragma_hard_heap_limit", "PRAGMA hard_heap_limit");
    refused(c, "SELECT load_extension('/tmp/x')", "function load_extension is not allowed");
    ck_assert(sqlite3_hard_heap_limit64(-1) == heap);
    ck_assert_int_eq(query_int(c, "PRAGMA foreign_keys"), 1);
    ck_assert(!D->unusable(c));
    D->close(c);
}
END_TEST

/* A temporary object would shadow a main table for the next caller of the
 * connection: the connection is not reused. */
START_TEST(test_temp_objects_discard_connection)
{
    static const char *const attacks[] = {
        "CREATE TEMP VIEW users AS SELECT 666 AS id, 'attacker' AS name",
        "CREATE TEMPORARY TABLE users(id, name)",
        "CREATE TABLE temp.users(id, name)",
        "CREATE TEMP TRIGGER tr AFTER INSERT ON main.users BEGIN SELECT 1; END",
    };
    sg_db_config cfg;
    cfg_init(&cfg, "tmpobj", ":memory:", false);
    sg_driver_conn *keep = open_ok(&cfg); /* keeps the shared memory database */
    run_ok(keep, "CREATE TABLE users(id INTEGER, name TEXT); INSERT INTO users VALUES (1, 'Ada')");
    for (size_t i = 0; i < sizeof attacks / sizeof attacks[0]; i++) {
        sg_driver_conn *c = open_ok(&cfg);
        sg_err err = {0};
        ck_assert_int_eq(D->exec(c, attacks[i], NULL, 0, sg_clock_ms() + LONG_MS, &err), 0);
        ck_assert_msg(drain(c, &err) == 0, "%s: %s", attacks[i], err.message);
        ck_assert_msg(D->finish(c) == -1, "%s: connection kept", attacks[i]);
        ck_assert(D->unusable(c));
        D->close(c);
    }
    /* Plain queries leave the connection reusable. */
    ck_assert_int_eq(query_int(keep, "SELECT id FROM users"), 1);
    ck_assert(!D->unusable(keep));
    D->close(keep);
}
END_TEST

START_TEST(test_last_insert_rowid_not_shared)
{
    sg_db_config cfg;
    cfg_init(&cfg, "rowid", ":memory:", false);
    sg_driver_conn *c = open_ok(&cfg);
    run_ok(c, "CREATE TABLE t(id INTEGER PRIMARY KEY, a); INSERT INTO t(id, a) VALUES (4242, 1)");
    ck_assert_int_eq(query_int(c, "SELECT last_insert_rowid()"), 0);
    D->close(c);
}
END_TEST

/* A process out of SQLite heap cannot serve queries: the health check says
 * so even on a connection opened before (whose "SELECT 1" needs no heap). */
START_TEST(test_ping_detects_out_of_memory)
{
    char path[512];
    tmp_path(path, sizeof path, "oom.db");
    sg_db_config cfg;
    cfg_init(&cfg, "core", path, false);
    sg_driver_conn *c = open_ok(&cfg);
    sg_err err = {0};
    ck_assert_int_eq(D->ping(c, "SELECT 1", sg_clock_ms() + LONG_MS, &err), 0);
    sqlite3_int64 before = sqlite3_hard_heap_limit64(-1);
    sqlite3_hard_heap_limit64(sqlite3_memory_used() + 1024);
    int rc = D->ping(c, "SELECT 1", sg_clock_ms() + LONG_MS, &err);
    bool unusable = D->unusable(c);
    sqlite3_hard_heap_limit64(before);
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(err.code, SG_DB_UNAVAILABLE);
    ck_assert_ptr_nonnull(strstr(err.message, "memory"));
    ck_assert(unusable);
    D->close(c);
    /* Once memory is back, a new connection serves again. */
    c = open_ok(&cfg);
    ck_assert_int_eq(D->ping(c, "SELECT 1", sg_clock_ms() + LONG_MS, &err), 0);
    D->close(c);
}
END_TEST

START_TEST(test_limits_set_at_open)
{
    sg_db_config cfg;
    cfg_init(&cfg, "lim", ":memory:", false);
    sg_driver_conn *c = open_ok(&cfg);
    /* 2100 variables at most, as SQL Server. */
    char sql[16];
    snprintf(sql, sizeof sql, "SELECT ?2101");
    refused(c, sql, "variable number must be between");
    /* A value over 512 MiB is refused before it is built. */
    refused(c, "SELECT length(zeroblob(600000000))", "too big");
    D->close(c);
}
END_TEST

static sg_db_state wait_state(sg_db *db, sg_db_state want, int64_t limit_ms)
{
    sg_db_health h;
    int64_t deadline = sg_clock_ms() + limit_ms;
    for (;;) {
        sg_db_health_get(db, &h);
        if (h.state == want || sg_clock_ms() >= deadline)
            return h.state;
        struct timespec ts = {.tv_nsec = 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* The background check, not only ping(), turns a process out of SQLite
 * heap into "down", and back to "ready" once memory is there again. */
START_TEST(test_health_down_when_out_of_memory)
{
    char path[512];
    tmp_path(path, sizeof path, "health.db");
    sg_db_config cfg;
    cfg_init(&cfg, "core", path, false);
    cfg.health_interval_ms = 100;
    cfg.retry_max_ms = 200;
    sg_err err = {0};
    sg_db *db = sg_db_new(&cfg, D, &err);
    ck_assert_msg(db != NULL, "%s", err.message);
    ck_assert_msg(sg_db_open(db, &err) == 0, "%s", err.message);
    ck_assert_str_eq(sg_db_state_name(wait_state(db, SG_STATE_READY, 10000)), "ready");
    sqlite3_int64 before = sqlite3_hard_heap_limit64(-1);
    sqlite3_hard_heap_limit64(sqlite3_memory_used() + 1024);
    sg_db_state down = wait_state(db, SG_STATE_DOWN, 10000);
    sqlite3_hard_heap_limit64(before);
    ck_assert_str_eq(sg_db_state_name(down), "down");
    ck_assert_str_eq(sg_db_state_name(wait_state(db, SG_STATE_READY, 10000)), "ready");
    ck_assert_int_eq(sg_db_close(db, sg_clock_ms() + 5000, NULL), 0);
    sg_db_free(db);
}
END_TEST

static Suite *sqlite_suite(void)
{
    Suite *s = suite_create("sqlite");
    TCase *tc = tcase_create("driver");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_open_creates_file);
    tcase_add_test(tc, test_open_missing_parent_fails);
    tcase_add_test(tc, test_open_read_only_missing_fails);
    tcase_add_test(tc, test_open_not_a_database);
    tcase_add_test(tc, test_read_only_write_is_sql_error);
    tcase_add_test(tc, test_read_only_batch_refused_before_running);
    tcase_add_test(tc, test_read_only_cached_statement);
    tcase_add_test(tc, test_memory_shared_by_name);
    tcase_add_test(tc, test_value_types);
    tcase_add_test(tc, test_expression_columns);
    tcase_add_test(tc, test_rows_affected_so_far);
    tcase_add_test(tc, test_empty_batch_and_returning);
    tcase_add_test(tc, test_param_names_case_insensitive);
    tcase_add_test(tc, test_missing_parameter);
    tcase_add_test(tc, test_syntax_errors);
    tcase_add_test(tc, test_attach_denied);
    tcase_add_test(tc, test_deadline_message);
    tcase_add_test(tc, test_finish_mid_result);
    tcase_add_test(tc, test_busy_file_times_out);
    tcase_add_test(tc, test_busy_memory_times_out);
    tcase_add_test(tc, test_disk_full_is_unavailable);
    tcase_add_test(tc, test_cache_reuse_with_new_params);
    tcase_add_test(tc, test_cache_reuse_after_error);
    tcase_add_test(tc, test_cache_eviction);
    tcase_add_test(tc, test_cache_schema_change);
    tcase_add_test(tc, test_cache_pragmas_act_every_time);
    tcase_add_test(tc, test_cache_stopped_early_releases_file);
    tcase_add_test(tc, test_cache_stopped_early_releases_memory);
    tcase_add_test(tc, test_cache_deadline_and_interrupt);
    tcase_add_test(tc, test_deadline_while_streaming);
    tcase_add_test(tc, test_cache_multi_statement_batches);
    tcase_add_test(tc, test_pragma_allow_list);
    tcase_add_test(tc, test_temp_objects_discard_connection);
    tcase_add_test(tc, test_last_insert_rowid_not_shared);
    tcase_add_test(tc, test_ping_detects_out_of_memory);
    tcase_add_test(tc, test_health_down_when_out_of_memory);
    tcase_add_test(tc, test_limits_set_at_open);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(sqlite_suite());
}
