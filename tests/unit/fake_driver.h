/* A scriptable sg_driver for unit tests, named "fake".
 *
 * Use `&fake_driver` wherever an sg_driver is needed (sg_pool_new, sg_db_new).
 * It is not one of the built-in drivers, so sg_driver_find("fake") is NULL.
 *
 * Behaviour is scripted per database: each connection belongs to the database
 * named by cfg->name of the sg_db_config it was opened with, and every
 * database has its own knobs and counters (so a registry test can keep "core"
 * up while "app" is down). The driver interface carries no user pointer, so
 * this state lives in one process-wide table guarded by a mutex; every
 * function here is thread-safe. Call fake_driver_reset() at the start of each
 * test, when no fake connection is open.
 *
 * What a connection does:
 * - open:  waits FAKE_OPEN_DELAY_MS, then fails if FAKE_FAIL_OPEN says so
 *          ("fake: connection refused"); if the delay would pass the deadline
 *          it waits until the deadline and fails ("fake: login timed out").
 *          Failures are SG_DB_UNAVAILABLE.
 * - ping:  waits FAKE_PING_DELAY_MS (deadline and interrupt honoured), fails
 *          if FAKE_FAIL_PING says so or the connection is broken.
 * - exec:  the SQL text may start with a directive, else FAKE_EXEC_MODE says:
 *            "fake:hang"      waits for the deadline or an interrupt
 *                             (SG_QUERY_TIMEOUT "timed out" / "cancelled")
 *            "fake:error"     SG_SQL_ERROR with sql info {208, 16, 1, 1}
 *            "fake:break"     SG_DB_UNAVAILABLE; the connection becomes broken
 *            "fake:sleep=MS"  waits MS (deadline and interrupt honoured), then ok
 *            "fake:rows=K"    ok, K rows instead of FAKE_EXEC_ROWS
 *            "fake:results=R" ok, R results instead of FAKE_EXEC_RESULTS
 *          Items combine with ',' ("fake:results=2,rows=3"); the last
 *          mode named wins.
 *          Otherwise, after FAKE_EXEC_DELAY_MS, a successful batch has
 *          FAKE_EXEC_RESULTS results, each with one column {"n", "int"} and
 *          FAKE_EXEC_ROWS rows holding SG_V_INT 1..K; rows_affected() gives
 *          FAKE_ROWS_AFFECTED. A broken connection fails every exec.
 * - next_result / next_row fail with SG_QUERY_TIMEOUT "cancelled" once the
 *   connection is interrupted while the batch runs.
 * - finish: returns -1 when the connection is broken, else 0.
 * - interrupt: counted; wakes a waiting exec/ping (unless
 *   FAKE_IGNORE_INTERRUPT is set, for stuck-server tests). As the real
 *   drivers, it is never lost: until finish(), later exec and ping calls fail
 *   with SG_QUERY_TIMEOUT "cancelled" at once.
 * - unusable: true once broken (by "fake:break", FAKE_EXEC_BROKEN,
 *   fake_conn_break or fake_driver_break_all).
 */
#ifndef SQLGATE_FAKE_DRIVER_H
#define SQLGATE_FAKE_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#include "sqlgate/config.h"
#include "sqlgate/driver.h"

/* The driver table. */
extern const sg_driver fake_driver;

/* For count knobs (FAKE_FAIL_OPEN, FAKE_FAIL_PING): every call fails. */
#define FAKE_ALWAYS (-1)

typedef enum fake_exec_mode {
    FAKE_EXEC_OK,
    FAKE_EXEC_SQL_ERROR,
    FAKE_EXEC_BROKEN, /* SG_DB_UNAVAILABLE and the connection becomes unusable */
    FAKE_EXEC_HANG    /* until the deadline or an interrupt: SG_QUERY_TIMEOUT */
} fake_exec_mode;

typedef enum fake_knob {
    FAKE_FAIL_OPEN,        /* N > 0: the next N opens fail; FAKE_ALWAYS: all; 0 (default): none */
    FAKE_OPEN_DELAY_MS,    /* default 0 */
    FAKE_FAIL_PING,        /* as FAKE_FAIL_OPEN, for pings */
    FAKE_PING_DELAY_MS,    /* default 0 */
    FAKE_EXEC_MODE,        /* fake_exec_mode, default FAKE_EXEC_OK */
    FAKE_EXEC_DELAY_MS,    /* default 0 */
    FAKE_EXEC_RESULTS,     /* results per successful batch, default 1 */
    FAKE_EXEC_ROWS,        /* rows per result, default 1 */
    FAKE_ROWS_AFFECTED,    /* default 0 */
    FAKE_IGNORE_INTERRUPT, /* non-zero: waits ignore interrupt(); default 0 */
    FAKE_KNOB_COUNT_
} fake_knob;

typedef struct fake_counts {
    uint64_t opened;        /* successful opens */
    uint64_t closed;        /* close() calls on a connection */
    uint64_t live;          /* opened - closed */
    uint64_t max_live;      /* highest `live` seen since the reset */
    uint64_t open_failures; /* failed opens */
    uint64_t pings;
    uint64_t ping_failures;
    uint64_t execs;
    uint64_t interrupts; /* interrupt() calls, whether or not something ran */
    uint64_t running;    /* connections inside exec..finish or ping right now */
} fake_counts;

/* Every knob back to its default, every counter to 0, every database
 * forgotten. Call when no fake connection is open. */
void fake_driver_reset(void);

/* Sets one knob of database `db`; db NULL sets it for every database, present
 * and future. Takes effect for calls that start afterwards. */
void fake_driver_set(const char *db, fake_knob knob, int64_t value);

/* Current value of a knob (db NULL: the value new databases start with). */
int64_t fake_driver_get(const char *db, fake_knob knob);

/* Counters of database `db`, or totals over all databases when db is NULL. */
void fake_driver_counts(const char *db, fake_counts *out);

/* Shortcut: fake connections of `db` (NULL: all) open right now. */
uint64_t fake_driver_live(const char *db);

/* Marks every open connection of `db` (NULL: all) broken, as if the server
 * had gone away: unusable() turns true, exec and ping fail. */
void fake_driver_break_all(const char *db);

/* SQL text (truncated to size - 1 bytes, NUL-terminated) and parameter count
 * of the last exec on `db`; "" and 0 when there was none. buf may be NULL when
 * size is 0; n_params may be NULL. */
void fake_driver_last_exec(const char *db, char *buf, size_t size, size_t *n_params);

/* One connection: mark it broken; its process-unique id (1, 2, ... in the
 * order connections were opened; ids are not reused, also not by a reset). */
void fake_conn_break(sg_driver_conn *c);
uint64_t fake_conn_id(sg_driver_conn *c);

/* A database configuration with the documented defaults (pool_min 0,
 * acquire 5000 ms, connect/query 15000 ms, idle 30000 ms, lifetime
 * 1800000 ms, retry 5000 ms, health "SELECT 1" every 5000 ms with a 2000 ms
 * timeout, critical, not read-only), driver "fake" and the given name (copied,
 * truncated to SG_NAME_MAX) and pool_max. Every string in it is static. */
sg_db_config fake_db_config(const char *name, unsigned pool_max);

#endif
