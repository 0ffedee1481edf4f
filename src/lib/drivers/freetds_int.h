/* freetds_int: what the parts of the FreeTDS driver share.
 *
 * Internal to src/lib/drivers/freetds*.c: not installed, not part of the
 * library's API. The driver is one module (sg_driver_freetds outside, ft_
 * inside) spread over files by concern:
 *   freetds.c           the driver table, db-lib's handlers, open and close,
 *                       batches (exec, results, rows, finish, ping), the
 *                       session reset
 *   freetds_prelogin.c  why a login's encryption negotiation failed: the
 *                       server asked again, with a PRELOGIN of our own
 *   freetds_conf.c      the private freetds.conf (encryption, CA file)
 *   freetds_params.c    parameters: the sp_executesql RPC, or a batch with
 *                       the values inlined as literals
 *   freetds_values.c    results: column types and metadata, values converted
 * The handlers and timeouts are described at the top of freetds.c.
 */
#ifndef SQLGATE_LIB_DRIVERS_FREETDS_INT_H
#define SQLGATE_LIB_DRIVERS_FREETDS_INT_H

#include "sqlgate/driver.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sybfront.h>
#include <sybdb.h>

#define CONV_MAX      72 /* converted text of one value: decimals, dates, guids */
#define TYPE_NAME_MAX 32 /* a column's type name: "datetimeoffset", "type241" */

struct sg_driver_conn {
    DBPROCESS *dbp;
    const sg_db_config *cfg; /* borrowed */
    char server[300];        /* what dbopen was given */

    /* Read by the handlers, on this connection's calling thread, except
     * `interrupted`, which any thread may set. */
    int64_t deadline;        /* of the running call sequence; 0: none */
    atomic_bool interrupted; /* cleared only by finish(), so never lost */
    int late_ticks;          /* timer ticks past the deadline in this batch */
    bool timed_out;          /* the batch hit its deadline or was interrupted */
    bool dead;               /* never hand out again */
    sg_err err;              /* first error reported in the batch */

    /* Batch. */
    bool in_batch;
    bool rows_pending; /* the current result has unread rows */
    bool tran_check;   /* the batch may have opened a transaction */
    bool always_check; /* a batch set a session option after which any statement may */
    bool needs_reset;  /* a batch ran since the session was last reset */
    bool no_reset;     /* a batch may have set what no reset undoes: never reuse */
    int64_t rows_affected;

    /* Current result; arrays sized for cap columns. */
    int n_cols;
    int cap;
    sg_column *cols;
    sg_value *values;
    char (*conv)[CONV_MAX];       /* per column scratch for converted values */
    char (*names)[TYPE_NAME_MAX]; /* per column type name */
    int *scales;
};

/* --- Batches (freetds.c) --------------------------------------------------- */

/* The error for a failed db-lib call, from what the handlers saw; returns
 * -1. */
int ft_batch_error(sg_driver_conn *c, sg_err *err);

/* --- Encryption diagnosis (freetds_prelogin.c) ----------------------------- */

/* Replaces err (a login that failed with SYBEFCON) with the reason: asks the
 * server cfg (borrowed) names, within deadline (monotonic ms; 0: none) and at
 * most a few seconds, what it answers to the PRELOGIN FreeTDS sent. */
void ft_explain_negotiation(const sg_db_config *cfg, int64_t deadline, sg_err *err);

/* --- Parameters (freetds_params.c) ----------------------------------------- */

/* Sends sql (borrowed) with params (borrowed) as an RPC call of
 * sp_executesql and waits for dbsqlok. 0, or -1 with err set (c is marked
 * dead when the RPC could not be built). */
int ft_send_rpc(sg_driver_conn *c, const char *sql, const sg_param *params, size_t n, sg_err *err);
/* Whether every value of params can be written into a batch's text. */
bool ft_inlinable(const sg_param *params, size_t n);
/* sql with params declared before it as literals. New string (caller
 * frees); NULL when out of memory. */
char *ft_inline_batch(const char *sql, const sg_param *params, size_t n);

/* --- Results (freetds_values.c) -------------------------------------------- */

/* Describes the current result's n columns into c->cols (growing the
 * per-column arrays). 0, or -1 with err set (out of memory, sql_variant). */
int ft_describe(sg_driver_conn *c, int n, sg_err *err);
/* Converts column i (0-based) of the current row into v; text and binary
 * point into db-lib's row buffer or c->conv[i], valid until the next row. */
void ft_convert_value(sg_driver_conn *c, int i, sg_value *v);

/* --- freetds.conf (freetds_conf.c) ----------------------------------------- */

/* Whether cfg (borrowed) needs a section of the private freetds.conf:
 * settings db-lib can only take from there (encryption, CA file). */
bool ft_needs_section(const sg_db_config *cfg);
/* The name of cfg's section, into out (n bytes). */
void ft_section_name(const sg_db_config *cfg, char *out, size_t n);
/* The driver's prepare(): writes the private freetds.conf when a database of
 * cfg (borrowed) needs a section, and points FREETDSCONF at it. 0 or -1. */
int ft_prepare(const sg_config *cfg, sg_err *err);
/* The driver's discard() and the atexit handler: unlinks the file, if any;
 * takes no lock and allocates nothing. */
void ft_remove_conf(void);

#endif
