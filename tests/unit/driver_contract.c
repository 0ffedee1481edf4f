/* The driver contract cases (driver_contract.h).
 *
 * Check cases take no arguments: the target of the running suite and the
 * configuration its setup filled are file state, set by the fixture.
 */
#include "driver_contract.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const dc_target *T; /* the suite being built or run */
static const sg_driver *D; /* T->driver */
static sg_db_config cfg;   /* filled by T->setup for each case */

/* --- Helpers -------------------------------------------------------------- */

int dc_drain(const sg_driver *d, sg_driver_conn *c, sg_err *err)
{
    const sg_column *cols;
    size_t n;
    const sg_value *vals;
    int rc;
    while ((rc = d->next_result(c, &cols, &n, err)) == 1) {
        while ((rc = d->next_row(c, &vals, err)) == 1)
            ;
        if (rc < 0)
            return -1;
    }
    return rc;
}

int64_t dc_slack_ms(int64_t ms)
{
    const char *s = getenv("SQLGATE_TIMEOUT_SCALE");
    long scale = s != NULL ? strtol(s, NULL, 10) : 1;
    return ms * (scale < 1 ? 1 : scale > 100 ? 100 : scale);
}

void dc_exec_ok(const sg_driver *d, sg_driver_conn *c, const char *sql, const sg_param *params,
                size_t n)
{
    sg_err err = {0};
    int rc = d->exec(c, sql, params, n, sg_clock_ms() + DC_LONG_MS, &err);
    ck_assert_msg(rc == 0, "exec(%s): %s %s", sql, sg_code_name(err.code), err.message);
}

int64_t dc_run_ok(const sg_driver *d, sg_driver_conn *c, const char *sql, const sg_param *params,
                  size_t n)
{
    sg_err err = {0};
    dc_exec_ok(d, c, sql, params, n);
    int rc = dc_drain(d, c, &err);
    ck_assert_msg(rc == 0, "drain(%s): %s %s", sql, sg_code_name(err.code), err.message);
    int64_t affected = d->rows_affected(c);
    ck_assert_msg(d->finish(c) == 0, "finish after %s says the connection is unusable", sql);
    ck_assert(!d->unusable(c));
    return affected;
}

const sg_column *dc_result_ok(const sg_driver *d, sg_driver_conn *c, size_t *n_cols)
{
    sg_err err = {0};
    const sg_column *cols = NULL;
    int rc = d->next_result(c, &cols, n_cols, &err);
    ck_assert_msg(rc == 1, "next_result gave %d: %s %s", rc, sg_code_name(err.code), err.message);
    ck_assert_ptr_nonnull(cols);
    return cols;
}

const sg_value *dc_row_ok(const sg_driver *d, sg_driver_conn *c)
{
    sg_err err = {0};
    const sg_value *v = NULL;
    int rc = d->next_row(c, &v, &err);
    ck_assert_msg(rc == 1, "next_row gave %d: %s %s", rc, sg_code_name(err.code), err.message);
    ck_assert_ptr_nonnull(v);
    return v;
}

void dc_no_more_rows(const sg_driver *d, sg_driver_conn *c)
{
    sg_err err = {0};
    const sg_value *v;
    int rc = d->next_row(c, &v, &err);
    ck_assert_msg(rc == 0, "next_row gave %d, expected the end: %s", rc, err.message);
}

void dc_no_more_results(const sg_driver *d, sg_driver_conn *c)
{
    sg_err err = {0};
    const sg_column *cols;
    size_t n;
    int rc = d->next_result(c, &cols, &n, &err);
    ck_assert_msg(rc == 0, "next_result gave %d, expected the end: %s", rc, err.message);
}

void dc_cfg_defaults(sg_db_config *c, const char *driver)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "core");
    snprintf(c->prefix, sizeof c->prefix, "CORE_DB_");
    c->driver = driver;
    c->critical = true;
    c->pool_max = 4;
    c->acquire_timeout_ms = 5000;
    c->connect_timeout_ms = 5000;
    c->query_timeout_ms = 5000;
    c->idle_timeout_ms = 30000;
    c->max_lifetime_ms = 1800000;
    c->retry_max_ms = 5000;
    c->health_query = "SELECT 1";
    c->health_interval_ms = 5000;
    c->health_timeout_ms = 2000;
}

void dc_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static void *interrupter_main(void *arg)
{
    dc_interrupter *it = arg;
    struct timespec ts = {it->delay_ms / 1000, (long)(it->delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    it->d->interrupt(it->c);
    return NULL;
}

void dc_interrupt_start(dc_interrupter *it)
{
    ck_assert_int_eq(pthread_create(&it->thread, NULL, interrupter_main, it), 0);
}

void dc_interrupt_join(dc_interrupter *it)
{
    pthread_join(it->thread, NULL);
}

static sg_driver_conn *open_ok(void)
{
    sg_err err = {0};
    sg_driver_conn *c = D->open(&cfg, sg_clock_ms() + DC_LONG_MS, &err);
    ck_assert_msg(c != NULL, "%s: open failed: %s %s", T->name, sg_code_name(err.code),
                  err.message);
    ck_assert(!D->unusable(c));
    return c;
}

/* Runs a batch that must fail somewhere (exec, a result or a row); finishes
 * it and returns the error in *err. */
static void run_fails(sg_driver_conn *c, const char *sql, int64_t deadline_ms, sg_err *err)
{
    int rc = D->exec(c, sql, NULL, 0, deadline_ms, err);
    if (rc == 0) {
        rc = dc_drain(D, c, err);
        D->finish(c);
    }
    ck_assert_msg(rc == -1, "%s did not fail", sql);
}

/* The shared helpers, on the target's driver. */
#define exec_ok(c, sql, params, n) dc_exec_ok(D, c, sql, params, n)
#define run_ok(c, sql, params, n)  dc_run_ok(D, c, sql, params, n)
#define result_ok(c, n_cols)       dc_result_ok(D, c, n_cols)
#define row_ok(c)                  dc_row_ok(D, c)
#define no_more_rows(c)            dc_no_more_rows(D, c)
#define no_more_results(c)         dc_no_more_results(D, c)
#define ASSERT_INT                 DC_ASSERT_INT
#define ASSERT_TEXT                DC_ASSERT_TEXT

/* The single integer of the first row of `sql`; the batch is finished. */
static int64_t query_int(sg_driver_conn *c, const char *sql)
{
    exec_ok(c, sql, NULL, 0);
    size_t nc;
    result_ok(c, &nc);
    const sg_value *v = row_ok(c);
    ck_assert_int_eq(v[0].type, SG_V_INT);
    int64_t r = v[0].u.i;
    ck_assert_int_eq(D->finish(c), 0);
    return r;
}

/* Reads a result that must hold the integers 1..n in column 0, then its end. */
static void rows_one_to(sg_driver_conn *c, int n)
{
    for (int i = 1; i <= n; i++)
        ASSERT_INT(&row_ok(c)[0], i);
    no_more_rows(c);
}

/* The connection answers a fresh batch with exactly that batch's rows. */
static void still_serves(sg_driver_conn *c)
{
    char sql[512];
    T->results_sql(sql, sizeof sql, 1, 2);
    exec_ok(c, sql, NULL, 0);
    size_t nc;
    result_ok(c, &nc);
    rows_one_to(c, 2);
    no_more_results(c);
    ck_assert_int_eq(D->finish(c), 0);
    ck_assert(!D->unusable(c));
}

/* --- Open and close --------------------------------------------------------- */

START_TEST(open_close)
{
    ck_assert_ptr_nonnull(D->name);
    ck_assert_ptr_eq(sg_driver_find(D->name), T->built_in ? D : NULL);
    sg_driver_conn *c = open_ok();
    sg_driver_conn *c2 = open_ok();
    D->close(c);
    still_serves(c2);
    D->close(c2);
    D->close(NULL);
}
END_TEST

START_TEST(open_failure)
{
    T->make_unreachable(&cfg);
    sg_err err = {0};
    int64_t t0 = sg_clock_ms();
    ck_assert_ptr_null(D->open(&cfg, t0 + DC_LONG_MS, &err));
    ck_assert_msg(sg_clock_ms() - t0 < dc_slack_ms(10000), "a refused open took %lld ms",
                  (long long)(sg_clock_ms() - t0));
    ck_assert_msg(err.code == SG_DB_UNAVAILABLE, "%s %s", sg_code_name(err.code), err.message);
    ck_assert_msg(err.message[0] != '\0', "no reason given");
    if (cfg.password != NULL && cfg.password[0] != '\0')
        ck_assert_msg(strstr(err.message, cfg.password) == NULL, "the password leaked: %s",
                      err.message);
}
END_TEST

/* --- Results ---------------------------------------------------------------- */

START_TEST(one_result)
{
    sg_driver_conn *c = open_ok();
    char sql[512];
    T->results_sql(sql, sizeof sql, 1, 1);
    exec_ok(c, sql, NULL, 0);
    size_t nc;
    const sg_column *cols = result_ok(c, &nc);
    ck_assert_uint_eq(nc, 1);
    ck_assert_str_eq(cols[0].name, "n");
    ck_assert_ptr_nonnull(cols[0].type);
    ASSERT_INT(&row_ok(c)[0], 1);
    no_more_rows(c);
    no_more_rows(c); /* the end stays the end */
    no_more_results(c);
    no_more_results(c);
    ck_assert_int_eq(D->rows_affected(c), 0);
    ck_assert_int_eq(D->finish(c), 0);
    ck_assert(!D->unusable(c));
    /* The same batch again on the same connection. */
    still_serves(c);
    D->close(c);
}
END_TEST

START_TEST(rows_in_order)
{
    sg_driver_conn *c = open_ok();
    char sql[512];
    T->results_sql(sql, sizeof sql, 1, 5000);
    exec_ok(c, sql, NULL, 0);
    size_t nc;
    result_ok(c, &nc);
    rows_one_to(c, 5000);
    no_more_results(c);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

START_TEST(empty_result)
{
    sg_driver_conn *c = open_ok();
    char sql[512];
    T->results_sql(sql, sizeof sql, 1, 0);
    exec_ok(c, sql, NULL, 0);
    size_t nc;
    const sg_column *cols = result_ok(c, &nc);
    ck_assert_uint_eq(nc, 1);
    ck_assert_str_eq(cols[0].name, "n");
    no_more_rows(c);
    no_more_results(c);
    ck_assert_int_eq(D->finish(c), 0);
    still_serves(c);
    D->close(c);
}
END_TEST

START_TEST(several_results)
{
    sg_driver_conn *c = open_ok();
    char sql[1024];
    T->results_sql(sql, sizeof sql, 3, 3);
    exec_ok(c, sql, NULL, 0);
    size_t nc;
    result_ok(c, &nc);
    rows_one_to(c, 3);
    /* A result left half read is skipped by the next next_result(). */
    result_ok(c, &nc);
    ASSERT_INT(&row_ok(c)[0], 1);
    result_ok(c, &nc);
    ck_assert_uint_eq(nc, 1);
    rows_one_to(c, 3);
    no_more_results(c);
    ck_assert_int_eq(D->finish(c), 0);
    still_serves(c);
    D->close(c);
}
END_TEST

START_TEST(mixed_batch)
{
    sg_driver_conn *c = open_ok();
    exec_ok(c,
            "CREATE TABLE dc (n INT);\n"
            "INSERT INTO dc (n) VALUES (1), (2), (3);\n"
            "SELECT n FROM dc ORDER BY n;\n"
            "UPDATE dc SET n = n + 10 WHERE n > 1;\n"
            "SELECT 'a' AS a, 'b' AS b;\n"
            "SELECT n FROM dc WHERE n < 0;\n"
            "DELETE FROM dc WHERE n = 1",
            NULL, 0);
    size_t nc;
    const sg_column *cols = result_ok(c, &nc);
    ck_assert_uint_eq(nc, 1);
    ck_assert_str_eq(cols[0].name, "n");
    rows_one_to(c, 3);
    cols = result_ok(c, &nc);
    ck_assert_uint_eq(nc, 2);
    ck_assert_str_eq(cols[0].name, "a");
    ck_assert_str_eq(cols[1].name, "b");
    const sg_value *v = row_ok(c);
    ASSERT_TEXT(&v[0], "a");
    ASSERT_TEXT(&v[1], "b");
    no_more_rows(c);
    result_ok(c, &nc); /* a SELECT without rows is still a result */
    ck_assert_uint_eq(nc, 1);
    no_more_rows(c);
    no_more_results(c);
    ck_assert_int_eq(D->rows_affected(c), 3 + 2 + 1); /* INSERT + UPDATE + DELETE */
    ck_assert_int_eq(D->finish(c), 0);
    ck_assert_int_eq(query_int(c, "SELECT COUNT(*) AS n FROM dc"), 2);
    D->close(c);
}
END_TEST

START_TEST(rows_affected)
{
    sg_driver_conn *c = open_ok();
    ck_assert_int_eq(run_ok(c, "CREATE TABLE dc (n INT)", NULL, 0), 0);
    ck_assert_int_eq(run_ok(c, "INSERT INTO dc (n) VALUES (1), (2), (3), (4)", NULL, 0), 4);
    ck_assert_int_eq(
        run_ok(c, "UPDATE dc SET n = n * 10 WHERE n > 2; INSERT INTO dc (n) VALUES (5)", NULL, 0),
        3);
    ck_assert_int_eq(run_ok(c, "UPDATE dc SET n = 0 WHERE n < 0", NULL, 0), 0);
    sg_param p[] = {{.name = "lo", .value = {.type = SG_V_INT, .u.i = 10}}};
    ck_assert_int_eq(run_ok(c, "UPDATE dc SET n = n + 1 WHERE n >= @lo", p, 1), 2);
    ck_assert_int_eq(run_ok(c, "DELETE FROM dc WHERE n < @lo", p, 1), 3);
    /* A batch that only reads affects nothing. */
    ck_assert_int_eq(run_ok(c, "SELECT n FROM dc", NULL, 0), 0);
    D->close(c);
}
END_TEST

/* --- Values and parameters -------------------------------------------------- */

#define NONASCII "h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 '\"; --"

START_TEST(parameter_values)
{
    sg_driver_conn *c = open_ok();
    run_ok(c, T->values_table_sql, NULL, 0);
    static const char bin[] = {0, 1, 2, (char)0xff, 0};
    sg_param full[] = {
        {"id", {.type = SG_V_INT, .u.i = 1}},
        {"i", {.type = SG_V_INT, .u.i = INT64_C(-9007199254740993)}},
        {"f", {.type = SG_V_FLOAT, .u.f = -0.25}},
        {"b", {.type = SG_V_BOOL, .u.b = true}},
        {"t", {.type = SG_V_TEXT, .u.s = {NONASCII, sizeof NONASCII - 1}}},
        {"bin", {.type = SG_V_BINARY, .u.s = {bin, sizeof bin}}},
        {"unused", {.type = SG_V_INT, .u.i = 5}},
        {"n", {.type = SG_V_NULL}},
    };
    sg_param nulls[] = {
        {"id", {.type = SG_V_INT, .u.i = 2}}, {"i", {.type = SG_V_NULL}},
        {"f", {.type = SG_V_NULL}},           {"b", {.type = SG_V_NULL}},
        {"t", {.type = SG_V_NULL}},           {"bin", {.type = SG_V_NULL}},
    };
    /* Empty text and binary stay empty: not NULL. */
    sg_param empty[] = {
        {"id", {.type = SG_V_INT, .u.i = 3}},
        {"i", {.type = SG_V_INT, .u.i = INT64_MAX}},
        {"f", {.type = SG_V_FLOAT, .u.f = 1e300}},
        {"b", {.type = SG_V_BOOL, .u.b = false}},
        {"t", {.type = SG_V_TEXT, .u.s = {"", 0}}},
        {"bin", {.type = SG_V_BINARY, .u.s = {NULL, 0}}}, /* no bytes, no pointer */
    };
    static const char insert[] = "INSERT INTO dc_v (id, i, f, b, t, bin) "
                                 "VALUES (@id, @i, @f, @b, @t, @bin)";
    ck_assert_int_eq(run_ok(c, insert, full, sizeof full / sizeof full[0]), 1);
    ck_assert_int_eq(run_ok(c, insert, nulls, sizeof nulls / sizeof nulls[0]), 1);

    /* Parameters are borrowed for the exec() call only: a later statement
     * of the batch still sees their values. */
    sg_param copy[sizeof empty / sizeof empty[0]];
    memcpy(copy, empty, sizeof empty);
    char sql[] = "INSERT INTO dc_v (id, i, f, b, t, bin) VALUES (@id, @i, @f, @b, @t, @bin);\n"
                 "SELECT COUNT(*) AS n FROM dc_v WHERE id = @id";
    exec_ok(c, sql, copy, sizeof copy / sizeof copy[0]);
    memset(sql, 'x', sizeof sql - 1);
    memset(copy, 0, sizeof copy);
    size_t nc;
    result_ok(c, &nc);
    ASSERT_INT(&row_ok(c)[0], 1);
    no_more_rows(c);
    no_more_results(c);
    ck_assert_int_eq(D->finish(c), 0);

    exec_ok(c, "SELECT id, i, f, b, t, bin FROM dc_v ORDER BY id", NULL, 0);
    const sg_column *cols = result_ok(c, &nc);
    ck_assert_uint_eq(nc, 6);
    ck_assert_str_eq(cols[5].name, "bin");
    const sg_value *v = row_ok(c);
    ASSERT_INT(&v[0], 1);
    ASSERT_INT(&v[1], INT64_C(-9007199254740993));
    ck_assert_int_eq(v[2].type, SG_V_FLOAT);
    ck_assert(v[2].u.f == -0.25);
    ck_assert_int_eq(v[3].type, SG_V_BOOL);
    ck_assert(v[3].u.b);
    ASSERT_TEXT(&v[4], NONASCII);
    DC_ASSERT_BINARY(&v[5], bin, sizeof bin);
    v = row_ok(c);
    ASSERT_INT(&v[0], 2);
    for (int i = 1; i < 6; i++)
        ck_assert_msg(v[i].type == SG_V_NULL, "column %s: type %d, expected NULL", cols[i].name,
                      (int)v[i].type);
    v = row_ok(c);
    ASSERT_INT(&v[0], 3);
    ASSERT_INT(&v[1], INT64_MAX);
    ck_assert_int_eq(v[2].type, SG_V_FLOAT);
    ck_assert(v[2].u.f == 1e300);
    ck_assert_int_eq(v[3].type, SG_V_BOOL);
    ck_assert(!v[3].u.b);
    ASSERT_TEXT(&v[4], "");
    DC_ASSERT_BINARY(&v[5], "", 0);
    no_more_rows(c);
    no_more_results(c);
    ck_assert_int_eq(D->finish(c), 0);

    /* Parameters as values of a SELECT, without a table's declared types. */
    exec_ok(c, "SELECT @i AS i, @f AS f, @t AS t, @bin AS bin, @n AS n, @i + 1 AS plus", full,
            sizeof full / sizeof full[0]);
    cols = result_ok(c, &nc);
    ck_assert_uint_eq(nc, 6);
    ck_assert_str_eq(cols[5].name, "plus");
    v = row_ok(c);
    ASSERT_INT(&v[0], INT64_C(-9007199254740993));
    ck_assert_int_eq(v[1].type, SG_V_FLOAT);
    ck_assert(v[1].u.f == -0.25);
    ASSERT_TEXT(&v[2], NONASCII);
    DC_ASSERT_BINARY(&v[3], bin, sizeof bin);
    DC_ASSERT_NULL(&v[4]);
    ASSERT_INT(&v[5], INT64_C(-9007199254740992));
    no_more_rows(c);
    no_more_results(c);
    ck_assert_int_eq(D->finish(c), 0);

    /* Parameters in a WHERE clause select rows; one used twice. */
    sg_param q[] = {{"t", {.type = SG_V_TEXT, .u.s = {NONASCII, sizeof NONASCII - 1}}}};
    exec_ok(c, "SELECT id FROM dc_v WHERE t = @t AND t IS NOT NULL AND @t = t", q, 1);
    result_ok(c, &nc);
    ASSERT_INT(&row_ok(c)[0], 1);
    no_more_rows(c);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

START_TEST(injection_stays_data)
{
    sg_driver_conn *c = open_ok();
    run_ok(c, T->values_table_sql, NULL, 0);
    static const char *const evil[] = {
        "O'Brien",      "x'); DROP TABLE dc_v; --",
        "x' OR '1'='1", "\"; DELETE FROM dc_v; SELECT \"",
        "@other",       "a\\'b",
    };
    size_t n = sizeof evil / sizeof evil[0];
    for (size_t i = 0; i < n; i++) {
        sg_param p[] = {
            {"id", {.type = SG_V_INT, .u.i = (int64_t)i}},
            {"t", {.type = SG_V_TEXT, .u.s = {evil[i], strlen(evil[i])}}},
            {"other", {.type = SG_V_TEXT, .u.s = {"other", 5}}},
        };
        ck_assert_int_eq(run_ok(c, "INSERT INTO dc_v (id, t) VALUES (@id, @t)", p, 3), 1);
    }
    exec_ok(c, "SELECT id, t FROM dc_v ORDER BY id", NULL, 0);
    size_t nc;
    result_ok(c, &nc);
    for (size_t i = 0; i < n; i++) {
        const sg_value *v = row_ok(c);
        ASSERT_INT(&v[0], (int64_t)i);
        ASSERT_TEXT(&v[1], evil[i]);
    }
    no_more_rows(c);
    ck_assert_int_eq(D->finish(c), 0);
    D->close(c);
}
END_TEST

/* --- Errors ------------------------------------------------------------------ */

START_TEST(sql_error)
{
    sg_driver_conn *c = open_ok();
    for (int round = 0; round < 2; round++) {
        sg_err err = {0};
        run_fails(c, T->bad_sql, sg_clock_ms() + DC_LONG_MS, &err);
        ck_assert_msg(err.code == SG_SQL_ERROR, "%s: %s %s", T->bad_sql, sg_code_name(err.code),
                      err.message);
        ck_assert(err.has_sql);
        ck_assert_int_eq(err.sql.line, 1);
        ck_assert_msg(err.message[0] != '\0', "no message");
        ck_assert_int_eq(D->finish(c), 0);
        ck_assert(!D->unusable(c));
        still_serves(c);
    }
    D->close(c);
}
END_TEST

START_TEST(sql_error_later)
{
    sg_driver_conn *c = open_ok();
    char first[512], sql[1200];
    T->results_sql(first, sizeof first, 1, 2);
    snprintf(sql, sizeof sql, "%s;\n%s;\n%s", first, T->bad_sql, first);
    exec_ok(c, sql, NULL, 0);
    size_t nc;
    result_ok(c, &nc);
    rows_one_to(c, 2);
    sg_err err = {0};
    const sg_column *cols;
    ck_assert_int_eq(D->next_result(c, &cols, &nc, &err), -1);
    ck_assert_msg(err.code == SG_SQL_ERROR, "%s %s", sg_code_name(err.code), err.message);
    ck_assert(err.has_sql);
    ck_assert_int_eq(err.sql.line, 2);
    ck_assert_int_eq(D->finish(c), 0);
    ck_assert(!D->unusable(c));
    still_serves(c);

    /* The error after a first row, the rest of that result unread. */
    T->results_sql(first, sizeof first, 1, 50);
    snprintf(sql, sizeof sql, "%s;\n%s", first, T->bad_sql);
    exec_ok(c, sql, NULL, 0);
    result_ok(c, &nc);
    ASSERT_INT(&row_ok(c)[0], 1);
    sg_err_clear(&err);
    ck_assert_int_eq(D->next_result(c, &cols, &nc, &err), -1);
    ck_assert_msg(err.code == SG_SQL_ERROR, "%s %s", sg_code_name(err.code), err.message);
    ck_assert_int_eq(D->finish(c), 0);
    still_serves(c);
    D->close(c);
}
END_TEST

/* --- finish, deadlines, interrupts ------------------------------------------- */

START_TEST(finish_mid_result)
{
    sg_driver_conn *c = open_ok();
    char sql[1024];
    T->results_sql(sql, sizeof sql, 2, 5000);
    exec_ok(c, sql, NULL, 0);
    size_t nc;
    result_ok(c, &nc);
    ASSERT_INT(&row_ok(c)[0], 1);
    ASSERT_INT(&row_ok(c)[0], 2);
    ck_assert_int_eq(D->finish(c), 0);
    ck_assert(!D->unusable(c));
    /* Nothing of the abandoned batch leaks into the next one. */
    still_serves(c);

    /* finish before the first result was looked at. */
    exec_ok(c, sql, NULL, 0);
    ck_assert_int_eq(D->finish(c), 0);
    still_serves(c);
    /* finish twice is harmless. */
    ck_assert_int_eq(D->finish(c), 0);
    still_serves(c);
    D->close(c);
}
END_TEST

START_TEST(query_deadline)
{
    sg_driver_conn *c = open_ok();
    for (int round = 0; round < 2; round++) {
        sg_err err = {0};
        int64_t deadline = sg_clock_ms() + 500;
        run_fails(c, T->slow_sql, deadline, &err);
        int64_t now = sg_clock_ms();
        ck_assert_msg(err.code == SG_QUERY_TIMEOUT, "%s %s", sg_code_name(err.code), err.message);
        ck_assert_msg(now >= deadline - 50, "timed out %lld ms early", (long long)(deadline - now));
        ck_assert_msg(now <= deadline + dc_slack_ms(3000), "answered %lld ms after the deadline",
                      (long long)(now - deadline));
        ck_assert_int_eq(D->finish(c), 0);
        ck_assert(!D->unusable(c));
        still_serves(c);
    }
    D->close(c);
}
END_TEST

/* A deadline already past fails even a batch that would answer at once. */
START_TEST(deadline_past)
{
    sg_driver_conn *c = open_ok();
    char sql[512];
    T->results_sql(sql, sizeof sql, 1, 1);
    sg_err err = {0};
    int64_t t0 = sg_clock_ms();
    run_fails(c, sql, t0 - 1, &err);
    ck_assert_msg(err.code == SG_QUERY_TIMEOUT, "%s %s", sg_code_name(err.code), err.message);
    ck_assert_msg(sg_clock_ms() - t0 < dc_slack_ms(2000), "took %lld ms",
                  (long long)(sg_clock_ms() - t0));
    ck_assert_int_eq(D->finish(c), 0);
    ck_assert(!D->unusable(c));
    still_serves(c);
    D->close(c);
}
END_TEST

START_TEST(interrupt_at_rest)
{
    sg_driver_conn *c = open_ok();
    /* Nothing runs (a shutdown between acquire and exec): the interrupt is
     * kept for the next batch, and for the one after a ping, until finish(). */
    sg_err err = {0};
    D->interrupt(c);
    ck_assert_int_eq(D->ping(c, cfg.health_query, sg_clock_ms() + DC_LONG_MS, &err), -1);
    ck_assert_msg(err.code == SG_QUERY_TIMEOUT, "%s %s", sg_code_name(err.code), err.message);
    char sql[512];
    T->results_sql(sql, sizeof sql, 1, 1);
    sg_err_clear(&err);
    run_fails(c, sql, sg_clock_ms() + DC_LONG_MS, &err);
    ck_assert_msg(err.code == SG_QUERY_TIMEOUT && strstr(err.message, "cancelled") != NULL, "%s %s",
                  sg_code_name(err.code), err.message);
    ck_assert_int_eq(D->finish(c), 0);
    ck_assert(!D->unusable(c));
    still_serves(c);
    D->close(c);
}
END_TEST

START_TEST(interrupt_from_thread)
{
    sg_driver_conn *c = open_ok();
    for (int round = 0; round < 2; round++) {
        dc_interrupter it = {.d = D, .c = c, .delay_ms = 300};
        dc_interrupt_start(&it);
        sg_err err = {0};
        int64_t t0 = sg_clock_ms();
        run_fails(c, T->slow_sql, t0 + DC_LONG_MS, &err);
        int64_t took = sg_clock_ms() - t0;
        dc_interrupt_join(&it);
        /* "cancelled" proves the interrupt, not the far deadline, stopped it;
         * the bound is loose: valgrind may starve the interrupting thread. */
        ck_assert_msg(err.code == SG_QUERY_TIMEOUT && strstr(err.message, "cancelled") != NULL,
                      "%s %s", sg_code_name(err.code), err.message);
        ck_assert_msg(took < DC_LONG_MS / 2, "the interrupt took %lld ms to act", (long long)took);
        ck_assert_int_eq(D->finish(c), 0);
        ck_assert(!D->unusable(c));
        still_serves(c);
    }
    D->close(c);
}
END_TEST

/* --- Ping --------------------------------------------------------------------- */

START_TEST(ping)
{
    sg_driver_conn *c = open_ok();
    sg_err err = {0};
    for (int i = 0; i < 3; i++)
        ck_assert_msg(D->ping(c, cfg.health_query, sg_clock_ms() + DC_LONG_MS, &err) == 0,
                      "ping: %s", err.message);
    /* A health query of several results is read to its end. */
    char sql[1024];
    T->results_sql(sql, sizeof sql, 2, 3);
    ck_assert_msg(D->ping(c, sql, sg_clock_ms() + DC_LONG_MS, &err) == 0, "ping: %s", err.message);
    ck_assert(!D->unusable(c));
    still_serves(c);
    ck_assert_int_eq(D->ping(c, cfg.health_query, sg_clock_ms() + DC_LONG_MS, &err), 0);
    D->close(c);
}
END_TEST

START_TEST(ping_deadline)
{
    sg_driver_conn *c = open_ok();
    sg_err err = {0};
    ck_assert_int_eq(D->ping(c, T->bad_sql, sg_clock_ms() + DC_LONG_MS, &err), -1);
    ck_assert_msg(err.code == SG_SQL_ERROR, "%s %s", sg_code_name(err.code), err.message);
    ck_assert(!D->unusable(c));
    int64_t deadline = sg_clock_ms() + 500;
    sg_err_clear(&err);
    ck_assert_int_eq(D->ping(c, T->slow_sql, deadline, &err), -1);
    int64_t now = sg_clock_ms();
    ck_assert_msg(err.code == SG_QUERY_TIMEOUT, "%s %s", sg_code_name(err.code), err.message);
    ck_assert_msg(now <= deadline + dc_slack_ms(3000), "answered %lld ms after the deadline",
                  (long long)(now - deadline));
    ck_assert(!D->unusable(c));
    ck_assert_int_eq(D->ping(c, cfg.health_query, sg_clock_ms() + DC_LONG_MS, &err), 0);
    still_serves(c);
    D->close(c);
}
END_TEST

/* --- Unusable connections ----------------------------------------------------- */

START_TEST(open_transaction)
{
    sg_driver_conn *c = open_ok();
    run_ok(c, "CREATE TABLE dc (n INT)", NULL, 0);
    char sql[256];
    snprintf(sql, sizeof sql, "%s; INSERT INTO dc (n) VALUES (1); COMMIT", T->begin_sql);
    ck_assert_int_eq(run_ok(c, sql, NULL, 0), 1);

    snprintf(sql, sizeof sql, "%s; INSERT INTO dc (n) VALUES (2)", T->begin_sql);
    exec_ok(c, sql, NULL, 0);
    sg_err err = {0};
    ck_assert_int_eq(dc_drain(D, c, &err), 0);
    ck_assert_int_eq(D->finish(c), -1);
    ck_assert(D->unusable(c));
    D->close(c); /* rolls back */

    c = open_ok();
    ck_assert_int_eq(query_int(c, "SELECT COUNT(*) AS n FROM dc"), 1);
    D->close(c);
}
END_TEST

START_TEST(broken_connection)
{
    sg_driver_conn *c = open_ok();
    still_serves(c);
    T->break_connection(c);
    char sql[512];
    T->results_sql(sql, sizeof sql, 1, 1);
    sg_err err = {0};
    int rc = D->exec(c, sql, NULL, 0, sg_clock_ms() + DC_LONG_MS, &err);
    if (rc == 0)
        rc = dc_drain(D, c, &err);
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(err.code == SG_DB_UNAVAILABLE, "%s %s", sg_code_name(err.code), err.message);
    ck_assert(D->unusable(c));
    ck_assert_int_eq(D->finish(c), -1);
    sg_err_clear(&err);
    ck_assert_int_eq(D->ping(c, cfg.health_query, sg_clock_ms() + DC_LONG_MS, &err), -1);
    ck_assert_msg(err.code == SG_DB_UNAVAILABLE, "%s %s", sg_code_name(err.code), err.message);
    ck_assert(D->unusable(c));
    D->close(c);
}
END_TEST

/* --- The suite ---------------------------------------------------------------- */

static void setup(void)
{
    memset(&cfg, 0, sizeof cfg);
    T->setup(&cfg);
}

static void teardown(void)
{
    T->teardown();
}

int dc_case_count(const dc_target *t)
{
    int n = 0;
    for (int i = 0; i < DC_CASE_COUNT_; i++)
        n += t->skip[i] == NULL;
    return n;
}

Suite *dc_suite(const dc_target *t)
{
    T = t;
    D = t->driver;
    /* Check test pointers are variables, not constants: a table built here. */
    const struct {
        const char *name;
        const TTest *test;
    } cases[DC_CASE_COUNT_] = {
        [DC_OPEN_CLOSE] = {"open_close", open_close},
        [DC_OPEN_FAILURE] = {"open_failure", open_failure},
        [DC_ONE_RESULT] = {"one_result", one_result},
        [DC_ROWS_IN_ORDER] = {"rows_in_order", rows_in_order},
        [DC_EMPTY_RESULT] = {"empty_result", empty_result},
        [DC_SEVERAL_RESULTS] = {"several_results", several_results},
        [DC_MIXED_BATCH] = {"mixed_batch", mixed_batch},
        [DC_ROWS_AFFECTED] = {"rows_affected", rows_affected},
        [DC_PARAMETER_VALUES] = {"parameter_values", parameter_values},
        [DC_INJECTION_STAYS_DATA] = {"injection_stays_data", injection_stays_data},
        [DC_SQL_ERROR] = {"sql_error", sql_error},
        [DC_SQL_ERROR_LATER] = {"sql_error_later", sql_error_later},
        [DC_FINISH_MID_RESULT] = {"finish_mid_result", finish_mid_result},
        [DC_DEADLINE] = {"deadline", query_deadline},
        [DC_DEADLINE_PAST] = {"deadline_past", deadline_past},
        [DC_INTERRUPT_AT_REST] = {"interrupt_at_rest", interrupt_at_rest},
        [DC_INTERRUPT_FROM_THREAD] = {"interrupt_from_thread", interrupt_from_thread},
        [DC_PING] = {"ping", ping},
        [DC_PING_DEADLINE] = {"ping_deadline", ping_deadline},
        [DC_OPEN_TRANSACTION] = {"open_transaction", open_transaction},
        [DC_BROKEN_CONNECTION] = {"broken_connection", broken_connection},
    };
    Suite *s = suite_create(t->name);
    TCase *tc = tcase_create("contract");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    for (int i = 0; i < DC_CASE_COUNT_; i++) {
        if (t->skip[i] != NULL) {
            printf("contract %s: %s SKIPPED: %s\n", t->name, cases[i].name, t->skip[i]);
            continue;
        }
        tcase_add_test(tc, cases[i].test);
    }
    printf("contract %s: %d of %d cases run\n", t->name, dc_case_count(t), DC_CASE_COUNT_);
    fflush(stdout);
    suite_add_tcase(s, tc);
    return s;
}
