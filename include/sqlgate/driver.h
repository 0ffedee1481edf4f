/* sqlgate drivers: one small function table per database kind.
 *
 * The pool, the databases and the registry only see this interface; they never
 * include sqlite3.h or sybdb.h. A driver connection is used by one thread at a
 * time, except interrupt(), which any thread may call.
 *
 * Statement model (pull, so results can stream in constant memory):
 *   exec()        starts a batch (one or more statements) with bound parameters
 *   next_result() advances to the next statement that returns columns;
 *                 statements without columns add to rows_affected()
 *   next_row()    fetches the next row of the current result
 *   finish()      discards whatever is left of the batch (cancelling it on the
 *                 server when needed) so the connection is ready for the next one
 * Every call made between exec() and finish() stops at the batch deadline with
 * SG_QUERY_TIMEOUT.
 */
#ifndef SQLGATE_DRIVER_H
#define SQLGATE_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h" /* every deadline here is an sg_clock_ms() value */
#include "config.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sg_vtype {
    SG_V_NULL,
    SG_V_INT,    /* u.i */
    SG_V_FLOAT,  /* u.f */
    SG_V_BOOL,   /* u.b */
    SG_V_TEXT,   /* u.s: UTF-8 (decimal, money, dates, guids travel as text too) */
    SG_V_BINARY, /* u.s: raw bytes */
} sg_vtype;

/* A value. Text and binary bytes are borrowed from whoever produced the value:
 * for a row, valid until the next driver call on that connection. */
typedef struct sg_value {
    sg_vtype type;
    union {
        int64_t i;
        double f;
        bool b;
        struct {
            const char *ptr;
            size_t len;
        } s;
    } u;
} sg_value;

/* A named parameter, bound by the driver as `@name` (never pasted into SQL). */
typedef struct sg_param {
    const char *name; /* identifier without '@'; borrowed */
    sg_value value;
} sg_param;

/* One column of a result; strings borrowed, valid until the next next_result()
 * or finish(). `type` is the database's type name in lower case ("int",
 * "nvarchar", "text", ...). `name` is "" for an unnamed column. */
typedef struct sg_column {
    const char *name;
    const char *type;
    /* decimal and numeric columns: precision (1-38) and scale as the server
     * declares them; 0 and 0 for every other column (the response then leaves
     * them out). */
    int precision;
    int scale;
} sg_column;

typedef struct sg_driver_conn sg_driver_conn; /* defined by each driver */

typedef struct sg_driver {
    const char *name; /* "sqlite", "freetds" */

    /* Optional (may be NULL): called once with the whole configuration before
     * any connection is opened, while no other thread of the process reads the
     * environment (the FreeTDS driver may set FREETDSCONF). 0 or -1. */
    int (*prepare)(const sg_config *cfg, sg_err *err);

    /* Optional (may be NULL): removes what prepare() left on disk. Runs at
     * exit; also from any thread just before a hard _exit(), so it must not
     * take locks another thread may hold. */
    void (*discard)(void);

    /* Opens one connection; gives up at deadline_ms (monotonic, sg_clock_ms).
     * Failure: NULL, err SG_DB_UNAVAILABLE naming the cause (no secrets). */
    sg_driver_conn *(*open)(const sg_db_config *cfg, int64_t deadline_ms, sg_err *err);

    /* Runs `sql` (the health query) and discards its results. 0 or -1. */
    int (*ping)(sg_driver_conn *c, const char *sql, int64_t deadline_ms, sg_err *err);

    /* Optional (NULL: no read-only mode of its own). Makes the next exec() on
     * c, and that one only, read-only: a batch holding any statement that
     * would write fails with SG_FORBIDDEN ("needs rw") before any statement
     * of it runs, decided by the database engine, never from the SQL text. */
    void (*read_only_next)(sg_driver_conn *c);

    /* Starts a batch. params are borrowed for the duration of the call. On
     * failure the connection is back at rest (finish() is not needed). */
    int (*exec)(sg_driver_conn *c, const char *sql, const sg_param *params, size_t n_params,
                int64_t deadline_ms, sg_err *err);

    /* 1: a result with columns is current (*cols, *n_cols set, borrowed);
     * 0: the batch is done; -1: error (err set; call finish() next). */
    int (*next_result)(sg_driver_conn *c, const sg_column **cols, size_t *n_cols, sg_err *err);

    /* 1: *values points at n_cols values (borrowed until the next call);
     * 0: the current result has no more rows; -1: error (call finish() next). */
    int (*next_row)(sg_driver_conn *c, const sg_value **values, sg_err *err);

    /* Sum of rows affected by the batch's statements without columns so far. */
    int64_t (*rows_affected)(sg_driver_conn *c);

    /* Ends the batch, cancelling what is left. Returns 0 if the connection can
     * be reused, -1 if it must be closed. */
    int (*finish)(sg_driver_conn *c);

    /* Thread-safe: makes the statement running on c fail soon with
     * SG_QUERY_TIMEOUT ("cancelled"). It is never lost: until the next
     * finish() (not a ping's end), a later exec() or ping() fails the same way,
     * so one that lands between acquire and exec still stops the batch. */
    void (*interrupt)(sg_driver_conn *c);

    /* True when the connection may not be handed out again: broken, or left
     * inside an open transaction. */
    bool (*unusable)(sg_driver_conn *c);

    void (*close)(sg_driver_conn *c); /* accepts NULL */
} sg_driver;

/* The built-in driver called `name`, or NULL. Borrowed, static. */
const sg_driver *sg_driver_find(const char *name);

/* Calls every built-in driver's discard(): for a process about to _exit(),
 * which skips atexit handlers. */
void sg_driver_discard_all(void);

/* Built-in drivers. */
extern const sg_driver sg_driver_sqlite;
extern const sg_driver sg_driver_freetds;

#ifdef __cplusplus
}
#endif
#endif
