/* The driver contract (driver_contract.h) run over every driver: SQLite on
 * real files in a mkdtemp() directory, FreeTDS against the TDS test server
 * (tests/tds, backed by SQLite) started in-process for each case at TDS 7.4
 * and 7.1, and the fake driver of the pool and registry suites.
 *
 * `test_driver_contract NAME` runs one target's suite; without an argument,
 * all of them.
 */
#include "check_main.h"
#include "driver_contract.h"
#include "fake_driver.h"
#include "tds_server.h"

#include <check.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* One column n holding 1..n_rows, n_results times: a recursive CTE that
 * both SQLite and the TDS test server run. */
static void cte_results_sql(char *buf, size_t cap, int n_results, int n_rows)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n_results && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len,
                                "%sWITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c "
                                "WHERE n < %d) SELECT n AS n FROM c WHERE n <= %d",
                                i > 0 ? ";\n" : "", n_rows, n_rows);
    ck_assert_msg(len < cap, "results_sql: %zu bytes do not fit in %zu", len, cap);
}

/* --- SQLite --------------------------------------------------------------------- */

static char tmpdir[256];
static char db_path[512];
static char missing_path[512];

static void sqlite_setup(sg_db_config *cfg)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sqlgate-test-contract-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(db_path, sizeof db_path, "%s/contract.db", tmpdir);
    dc_cfg_defaults(cfg, "sqlite");
    cfg->path = db_path;
}

/* The cases only create plain files directly in tmpdir. */
static void sqlite_teardown(void)
{
    dc_remove_dir(tmpdir);
}

static void sqlite_unreachable(sg_db_config *cfg)
{
    snprintf(missing_path, sizeof missing_path, "%s/no-such-dir/x.db", tmpdir);
    cfg->path = missing_path;
}

/* A full disk: SQLite stops the connection from being used again. The page
 * limit goes through ping, the trusted path (callers may not set it). */
static void sqlite_break(sg_driver_conn *c)
{
    const sg_driver *d = &sg_driver_sqlite;
    sg_err err = {0};
    ck_assert_int_eq(
        d->exec(c, "CREATE TABLE dc_full (b BLOB)", NULL, 0, sg_clock_ms() + DC_LONG_MS, &err), 0);
    ck_assert_int_eq(dc_drain(d, c, &err), 0);
    ck_assert_int_eq(d->finish(c), 0);
    ck_assert_msg(d->ping(c, "PRAGMA max_page_count = 4", sg_clock_ms() + DC_LONG_MS, &err) == 0,
                  "%s", err.message);
    ck_assert_int_eq(d->exec(c, "INSERT INTO dc_full VALUES (zeroblob(100000))", NULL, 0,
                             sg_clock_ms() + DC_LONG_MS, &err),
                     0);
    ck_assert_int_eq(dc_drain(d, c, &err), -1);
    ck_assert_msg(err.code == SG_DB_UNAVAILABLE, "%s", err.message);
    ck_assert_int_eq(d->finish(c), -1);
}

static const dc_target sqlite_target = {
    .name = "sqlite",
    .driver = &sg_driver_sqlite,
    .built_in = true,
    .setup = sqlite_setup,
    .teardown = sqlite_teardown,
    .make_unreachable = sqlite_unreachable,
    .results_sql = cte_results_sql,
    .slow_sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                "SELECT count(*) FROM c",
    .bad_sql = "SELECT * FROM no_such_table",
    .begin_sql = "BEGIN",
    .values_table_sql =
        "CREATE TABLE dc_v (id INTEGER, i BIGINT, f REAL, b BOOLEAN, t TEXT, bin BLOB)",
    .break_connection = sqlite_break,
};

/* --- FreeTDS against the TDS test server --------------------------------------------- */

#define TDS_USER     "sa"
#define TDS_PASSWORD "Pw-SECRET-7731!"
#define TDS_DBNAME   "testdb"

static tds_server *srv;

static void freetds_setup_version(sg_db_config *cfg, const char *version)
{
    tds_server_options o = {.user = TDS_USER,
                            .password = TDS_PASSWORD,
                            .database = TDS_DBNAME,
                            .sqlite_path = ":memory:",
                            .port = 0};
    char why[256] = "";
    srv = tds_server_start(&o, why, sizeof why);
    ck_assert_msg(srv != NULL, "TDS test server did not start: %s", why);
    dc_cfg_defaults(cfg, "freetds");
    cfg->host = "127.0.0.1";
    cfg->port = tds_server_port(srv);
    cfg->database = TDS_DBNAME;
    cfg->user = TDS_USER;
    cfg->password = TDS_PASSWORD;
    cfg->encrypt = SG_ENCRYPT_REQUEST;
    cfg->tds_version = version;
    cfg->app_name = "sqlgate:core";
}

static void freetds_setup(sg_db_config *cfg)
{
    freetds_setup_version(cfg, "7.4");
}

static void freetds71_setup(sg_db_config *cfg)
{
    freetds_setup_version(cfg, "7.1");
}

static void freetds_teardown(void)
{
    tds_server_stop(srv);
    srv = NULL;
}

/* A loopback port nothing listens on (bound, then closed). */
static void freetds_unreachable(sg_db_config *cfg)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    cfg->port = ntohs(sa.sin_port);
}

/* The server goes away. */
static void freetds_break(sg_driver_conn *c)
{
    (void)c;
    tds_server_stop(srv);
    srv = NULL;
}

#define FREETDS_TARGET(target_name, setup_fn)                                                      \
    {                                                                                              \
        .name = target_name, .driver = &sg_driver_freetds, .built_in = true, .setup = setup_fn,    \
        .teardown = freetds_teardown, .make_unreachable = freetds_unreachable,                     \
        .results_sql = cte_results_sql, .slow_sql = "WAITFOR DELAY '00:00:20'",                    \
        .bad_sql = "SELECT * FROM no_such_table", .begin_sql = "BEGIN TRAN",                       \
        .values_table_sql = "CREATE TABLE dc_v (id INT, i BIGINT, f FLOAT, b BIT, "                \
                            "t NVARCHAR(200), bin VARBINARY(200))",                                \
        .break_connection = freetds_break,                                                         \
        .skip = {[DC_DEADLINE_PAST] = "db-lib checks the deadline only while it waits for the "    \
                                      "server: a batch that answers at once still succeeds"},      \
    }

static const dc_target freetds_target = FREETDS_TARGET("freetds", freetds_setup);
static const dc_target freetds71_target = FREETDS_TARGET("freetds-7.1", freetds71_setup);

/* --- The fake driver ------------------------------------------------------------ */

static void fake_setup(sg_db_config *cfg)
{
    fake_driver_reset();
    *cfg = fake_db_config("core", 4);
}

/* Every case closes what it opened. */
static void fake_teardown(void)
{
    ck_assert_uint_eq(fake_driver_live(NULL), 0);
}

static void fake_unreachable(sg_db_config *cfg)
{
    fake_driver_set(cfg->name, FAKE_FAIL_OPEN, FAKE_ALWAYS);
}

static void fake_results_sql(char *buf, size_t cap, int n_results, int n_rows)
{
    snprintf(buf, cap, "fake:results=%d,rows=%d", n_results, n_rows);
}

static void fake_break(sg_driver_conn *c)
{
    fake_conn_break(c);
}

#define FAKE_RUNS_NO_SQL "the fake runs no SQL: no tables, DML or values other than SG_V_INT 1..K"

static const dc_target fake_target = {
    .name = "fake",
    .driver = &fake_driver,
    .built_in = false,
    .setup = fake_setup,
    .teardown = fake_teardown,
    .make_unreachable = fake_unreachable,
    .results_sql = fake_results_sql,
    .slow_sql = "fake:hang",
    .bad_sql = "fake:error",
    .begin_sql = NULL,
    .values_table_sql = NULL,
    .break_connection = fake_break,
    .skip =
        {
            [DC_MIXED_BATCH] = FAKE_RUNS_NO_SQL,
            [DC_ROWS_AFFECTED] = "the fake's rows_affected is a knob (FAKE_ROWS_AFFECTED), not "
                                 "counted from statements",
            [DC_PARAMETER_VALUES] = FAKE_RUNS_NO_SQL,
            [DC_INJECTION_STAYS_DATA] = FAKE_RUNS_NO_SQL,
            [DC_SQL_ERROR_LATER] = "the fake fails a whole batch at exec() (fake:error), never "
                                   "a later statement",
            [DC_PING_DEADLINE] = "the fake's ping ignores its SQL (FAKE_PING_DELAY_MS and "
                                 "FAKE_FAIL_PING script it)",
            [DC_OPEN_TRANSACTION] = "the fake has no transactions",
        },
};

static const dc_target *const targets[] = {&sqlite_target, &freetds_target, &freetds71_target,
                                           &fake_target};

int main(int argc, char **argv)
{
    /* Before db-lib or anything else reads it. */
    setenv("FREETDSCONF", "/dev/null", 1);
    const char *only = argc > 1 ? argv[1] : NULL;
    int ran = 0, failed = 0;
    /* One runner per target: dc_suite() sets the file state its cases read. */
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        if (only != NULL && strcmp(only, targets[i]->name) != 0)
            continue;
        if (check_run(dc_suite(targets[i])) != EXIT_SUCCESS)
            failed++;
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "no target named %s\n", only);
        return EXIT_FAILURE;
    }
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
