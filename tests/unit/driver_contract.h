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

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/* Starts a batch that must start (deadline far away). */
void dc_exec_ok(const sg_driver *d, sg_driver_conn *c, const char *sql, const sg_param *params,
                size_t n);

/* Runs a whole batch that must succeed and leave the connection reusable;
 * its rows_affected(). */
int64_t dc_run_ok(const sg_driver *d, sg_driver_conn *c, const char *sql, const sg_param *params,
                  size_t n);

/* Moves to the next result, which must exist; its columns (borrowed). */
const sg_column *dc_result_ok(const sg_driver *d, sg_driver_conn *c, size_t *n_cols);

/* Fetches the next row, which must exist; its values (borrowed). */
const sg_value *dc_row_ok(const sg_driver *d, sg_driver_conn *c);

/* The current result, or the batch, must be at its end. */
void dc_no_more_rows(const sg_driver *d, sg_driver_conn *c);
void dc_no_more_results(const sg_driver *d, sg_driver_conn *c);

/* Zeroes *c and sets what every driver suite opens with: name "core",
 * `driver` (static), pool and timeouts as the pool would pass them, health
 * query "SELECT 1". The caller adds where the database is. */
void dc_cfg_defaults(sg_db_config *c, const char *driver);

/* Removes the plain files directly in dir, then dir. */
void dc_remove_dir(const char *dir);

/* Calls d->interrupt(c) from another thread delay_ms after
 * dc_interrupt_start(); dc_interrupt_join() waits for that thread. */
typedef struct dc_interrupter {
    const sg_driver *d;
    sg_driver_conn *c;
    int delay_ms;
    pthread_t thread;
} dc_interrupter;

void dc_interrupt_start(dc_interrupter *it);
void dc_interrupt_join(dc_interrupter *it);

/* A timing margin in ms, times $SQLGATE_TIMEOUT_SCALE (1..100) so the suites
 * keep their meaning under valgrind; deadlines themselves never scale. */
int64_t dc_slack_ms(int64_t ms);

/* Value assertions naming the expression that failed. */
#define DC_ASSERT_INT(v, expected)                                                                 \
    do {                                                                                           \
        const sg_value *v_ = (v);                                                                  \
        int64_t e_ = (expected);                                                                   \
        ck_assert_msg(v_->type == SG_V_INT, "%s: type %d, expected int", #v, (int)v_->type);       \
        ck_assert_msg(v_->u.i == e_, "%s: %lld, expected %lld", #v, (long long)v_->u.i,            \
                      (long long)e_);                                                              \
    } while (0)

#define DC_ASSERT_FLOAT(v, expected)                                                               \
    do {                                                                                           \
        const sg_value *v_ = (v);                                                                  \
        ck_assert_msg(v_->type == SG_V_FLOAT, "%s: type %d, expected float", #v, (int)v_->type);   \
        ck_assert_msg(v_->u.f == (expected), "%s: %.17g, expected %.17g", #v, v_->u.f,             \
                      (double)(expected));                                                         \
    } while (0)

#define DC_ASSERT_BOOL(v, expected)                                                                \
    do {                                                                                           \
        const sg_value *v_ = (v);                                                                  \
        ck_assert_msg(v_->type == SG_V_BOOL, "%s: type %d, expected bool", #v, (int)v_->type);     \
        ck_assert_msg(v_->u.b == (expected), "%s: %d", #v, (int)v_->u.b);                          \
    } while (0)

#define DC_ASSERT_NULL(v)                                                                          \
    ck_assert_msg((v)->type == SG_V_NULL, "%s: type %d, expected NULL", #v, (int)(v)->type)

/* Text or binary (vtype) holding exactly the n bytes at `bytes`. */
#define DC_ASSERT_BYTES(v, vtype, bytes, n)                                                        \
    do {                                                                                           \
        const sg_value *v_ = (v);                                                                  \
        size_t n_ = (n);                                                                           \
        ck_assert_msg(v_->type == (vtype), "%s: type %d, expected %d", #v, (int)v_->type,          \
                      (int)(vtype));                                                               \
        ck_assert_msg(v_->u.s.len == n_ && (n_ == 0 || memcmp(v_->u.s.ptr, (bytes), n_) == 0),     \
                      "%s: '%.*s' (%zu bytes) differs", #v, (int)v_->u.s.len, v_->u.s.ptr,         \
                      v_->u.s.len);                                                                \
    } while (0)

#define DC_ASSERT_TEXT(v, s)          DC_ASSERT_BYTES(v, SG_V_TEXT, s, strlen(s))
#define DC_ASSERT_BINARY(v, bytes, n) DC_ASSERT_BYTES(v, SG_V_BINARY, bytes, n)

#endif
