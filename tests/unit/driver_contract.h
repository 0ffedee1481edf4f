/* The driver contract: what every sg_driver must do (include/sqlgate/driver.h),
 * written once as Check cases and run over several targets (SQLite files, the
 * FreeTDS driver against the TDS test server, the fake driver of the unit
 * tests; see test_driver_contract.c).
 *
 * A target names its driver, opens per test whatever the driver talks to, and
 * supplies the SQL where dialects differ. A case a target cannot run is
 * named in its `skip` table with the reason; dc_suite() leaves that case out
 * and prints the reason, so a skipped case never counts as passed.
 *
 * Also the small helpers that the driver-specific suites share.
 */
#ifndef SQLGATE_TEST_DRIVER_CONTRACT_H
#define SQLGATE_TEST_DRIVER_CONTRACT_H

#include <stddef.h>
#include <stdint.h>

#include <check.h>

#include "sqlgate/config.h"
#include "sqlgate/driver.h"

/* A deadline that a correct test never reaches. */
#define DC_LONG_MS 30000

/* The contract's cases, in the order they run. */
typedef enum dc_case {
    DC_OPEN_CLOSE,            /* open, usable, close; close(NULL); the driver's name */
    DC_OPEN_FAILURE,          /* an unreachable database: NULL, SG_DB_UNAVAILABLE */
    DC_ONE_RESULT,            /* one row of one column, then the ends */
    DC_ROWS_IN_ORDER,         /* many rows, streamed in order */
    DC_EMPTY_RESULT,          /* a result with columns and no row */
    DC_SEVERAL_RESULTS,       /* two results; a half-read one is skipped */
    DC_MIXED_BATCH,           /* DDL, DML and SELECTs in one batch; rows_affected sums */
    DC_ROWS_AFFECTED,         /* rows_affected of whole batches */
    DC_PARAMETER_VALUES,      /* NULL and every value type, through parameters and back */
    DC_INJECTION_STAYS_DATA,  /* a parameter is never SQL */
    DC_SQL_ERROR,             /* SG_SQL_ERROR, the connection still usable */
    DC_SQL_ERROR_LATER,       /* an error in the second statement, after a result */
    DC_FINISH_MID_RESULT,     /* finish() abandons the rest of a batch */
    DC_DEADLINE,              /* SG_QUERY_TIMEOUT at the deadline, then usable */
    DC_DEADLINE_PAST,         /* a deadline already past fails even a quick batch */
    DC_INTERRUPT_AT_REST,     /* an interrupt before exec() is kept until finish() */
    DC_INTERRUPT_FROM_THREAD, /* another thread stops a running statement */
    DC_PING,                  /* the health query */
    DC_PING_DEADLINE,         /* a ping that outlives its deadline */
    DC_OPEN_TRANSACTION,      /* a batch leaving a transaction open: unusable */
    DC_BROKEN_CONNECTION,     /* the database went away: unusable, finish() -1 */
    DC_CASE_COUNT_
} dc_case;

typedef struct dc_target {
    const char *name; /* "sqlite", "freetds", "fake", ...: the suite's name */
    const sg_driver *driver;
    bool built_in; /* sg_driver_find(driver->name) gives driver (else NULL) */

    /* Run around each case (in the forked child): start what the driver
     * talks to and fill *cfg, which stays valid until teardown. */
    void (*setup)(sg_db_config *cfg);
    void (*teardown)(void);

    /* Makes cfg point at a database that cannot be opened. */
    void (*make_unreachable)(sg_db_config *cfg);

    /* Writes into buf (cap bytes) a batch of n_results results, each one
     * column "n" holding the integers 1..n_rows in order. */
    void (*results_sql)(char *buf, size_t cap, int n_results, int n_rows);

    /* Runs until its deadline or an interrupt stops it. */
    const char *slow_sql;
    /* Fails as SQL (SG_SQL_ERROR) at once: a missing table. */
    const char *bad_sql;
    /* The words that start a transaction ("BEGIN", "BEGIN TRAN"). */
    const char *begin_sql;
    /* Creates table dc_v (id, i, f, b, t, bin): an integer key, a 64-bit
     * integer, a double, a boolean, a UTF-8 text and a binary column. */
    const char *values_table_sql;

    /* Makes c's database go away under it (the batch it may run to do so
     * is finished again): from now on every call on c fails. */
    void (*break_connection)(sg_driver_conn *c);

    /* Why a case does not apply to this target; NULL: it runs. */
    const char *skip[DC_CASE_COUNT_];
} dc_target;

/* A suite named after t holding every case t does not skip (printing one
 * line per skipped case and its reason). t is borrowed and must outlive the
 * run; one target's suite runs at a time. */
Suite *dc_suite(const dc_target *t);

/* The number of cases dc_suite(t) runs. */
int dc_case_count(const dc_target *t);

/* --- Shared by the driver suites ------------------------------------------ */

/* Reads every result and row left in the current batch of c; 0 or -1 (err
 * set). Does not call finish(). */
int dc_drain(const sg_driver *d, sg_driver_conn *c, sg_err *err);

/* A timing margin in ms, times $SQLGATE_TIMEOUT_SCALE (1..100) so the suites
 * keep their meaning under valgrind; deadlines themselves never scale. */
int64_t dc_slack_ms(int64_t ms);

#endif
