/* sqlite_int: what the parts of the SQLite driver share.
 *
 * Internal to src/lib/drivers/sqlite*.c: not installed, not part of the
 * library's API. The driver is one module (sg_driver_sqlite outside, sl_
 * inside) spread over files by concern:
 *   sqlite.c         the driver table, open and close, batches (exec, results,
 *                    rows, finish, ping) and their errors
 *   sqlite_guard.c   what bounds a caller's SQL: the deadline handlers, the
 *                    authorizer, the limits, the read-only scan
 *   sqlite_values.c  values in and out: parameters copied and bound, result
 *                    columns described, rows converted
 *   sqlite_cache.c   the per-connection cache of prepared statements
 * The connection's state is described at the top of sqlite.c.
 */
#ifndef SQLGATE_LIB_DRIVERS_SQLITE_INT_H
#define SQLGATE_LIB_DRIVERS_SQLITE_INT_H

#include "sqlgate/driver.h"

#include <sqlite3.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CACHE_SIZE 32 /* prepared single-statement batches per connection */

/* How a column's values are mapped, decided from its declared type. */
typedef enum col_kind { KIND_PLAIN, KIND_BOOL, KIND_DECIMAL } col_kind;

/* A parameter copied into the batch arena; name is "@name". */
typedef struct bparam {
    const char *name;
    sg_value value;
} bparam;

/* A cached statement; a free slot has sql == NULL. */
typedef struct cache_entry {
    char *sql; /* owned copy of the batch text, the key */
    size_t len;
    uint64_t hash;
    sqlite3_stmt *stmt; /* reset and unbound while no batch uses it */
    int line;           /* 1-based line where the statement starts in sql */
    uint64_t used;      /* cache tick of the last use, for LRU eviction */
} cache_entry;

struct sg_driver_conn {
    sqlite3 *db;
    char *path; /* owned copy of cfg->path, for error messages */
    /* Set by interrupt(), cleared only by finish() (and zero at open): one that
     * comes between a batch's exec() and the one before its finish() fails it,
     * and one that comes before exec() fails that exec, so none is lost. */
    atomic_bool interrupted;
    bool broken;        /* I/O, corruption: never reuse */
    bool trusted;       /* sqlgate's own statement: the authorizer allows all */
    bool stepping;      /* inside sqlite3_step() of a caller's statement */
    bool session_dirty; /* a temp object may exist: never reuse */
    char denied[160];   /* why the authorizer refused, for the error; "" if not */

    /* Current batch; all NULL/zero at rest. */
    bool in_batch;
    int64_t started_ms;
    int64_t deadline_ms; /* also read by the busy and progress handlers */
    char *sql;           /* owned copy of the batch text */
    const char *tail;    /* next statement to prepare, inside sql */
    bparam *params;      /* owned arena: params, names, text/binary bytes */
    size_t n_params;
    sqlite3_stmt *stmt;      /* current statement, prepared and bound, or NULL */
    cache_entry *entry;      /* the cache entry that owns stmt, or NULL: the batch does */
    int stmt_line;           /* 1-based line where stmt starts in sql */
    unsigned rows_unchecked; /* next_row() calls since the clock was last read */
    bool saw_pragma;         /* the authorizer saw a PRAGMA since exec() began */
    bool read_only;          /* this batch may not write (read_only_next) */
    bool read_only_next;     /* the next exec() is read-only */
    bool result_active;      /* stmt's columns were reported by next_result() */
    bool pending_row;        /* first row stepped by next_result(), not yet returned */
    bool result_done;        /* stmt returned SQLITE_DONE */
    bool failed;             /* the batch hit an error; last_err repeats it */
    sg_err last_err;
    int64_t rows_affected;

    /* Current result's description; reused across results. */
    sg_column *cols;
    col_kind *kinds;
    sg_value *values;
    size_t cols_cap;
    char *names; /* backing store for cols[].name and cols[].type */
    size_t names_cap;

    cache_entry cache[CACHE_SIZE];
    uint64_t cache_tick;
};

/* --- Batches (sqlite.c) ---------------------------------------------------- */

/* Fills err as SG_SQL_ERROR with SQLite's number and the statement's line;
 * returns -1. */
int sl_sql_error(sg_err *err, long number, int line, const char *msg);
/* Maps the connection's last SQLite failure `rc` to the API's codes and
 * marks the connection broken when the database itself failed; returns -1. */
int sl_map_error(sg_driver_conn *c, int rc, int line, sg_err *err);
/* 1-based line of the first token at or after `start` (borrowed, inside
 * c->sql) within c->sql. */
int sl_line_of(const sg_driver_conn *c, const char *start);

/* --- Guards (sqlite_guard.c) ----------------------------------------------- */

/* Sets SQLite's process-wide heap limit, once per process. */
void sl_guard_heap_limit(void);
/* Installs on c->db, just opened: the busy and progress handlers, the
 * authorizer, the per-connection limits, defensive mode, no extension
 * loading. */
void sl_guard_install(sg_driver_conn *c);
/* FORBIDDEN for a read-only batch whose statement at `line` would write;
 * returns -1. */
int sl_read_only_refusal(const sg_driver_conn *c, int line, sg_err *err);
/* The whole-batch scan of a read-only batch (c->sql) before anything runs:
 * 0, or -1 with sl_read_only_refusal's error. */
int sl_read_only_scan(sg_driver_conn *c, sg_err *err);

/* --- Values (sqlite_values.c) ---------------------------------------------- */

/* Copies params (borrowed) into c->params, an arena the batch owns until
 * batch_end. 0, or -1 with err set (nothing is kept then). */
int sl_copy_params(sg_driver_conn *c, const sg_param *params, size_t n, sg_err *err);
/* Binds every placeholder of c->stmt from c->params. 0 or -1. */
int sl_bind_all(sg_driver_conn *c, sg_err *err);
/* Describes the n columns of c->stmt into c->cols and c->kinds. 0 or -1. */
int sl_describe(sg_driver_conn *c, size_t n, sg_err *err);
/* Converts the current row of c->stmt into c->values; text and blob values
 * point into the statement, valid until its next step or reset. */
void sl_convert_row(sg_driver_conn *c);

/* --- Statement cache (sqlite_cache.c) -------------------------------------- */

/* FNV-1a of sql (borrowed); sets *len to its length. */
uint64_t sl_sql_hash(const char *sql, size_t *len);
/* The entry (borrowed, owned by c) for the batch text sql, or NULL. */
cache_entry *sl_cache_find(sg_driver_conn *c, const char *sql, size_t len, uint64_t hash);
/* Finalizes the entry's statement, frees its key and marks it free. */
void sl_cache_drop(cache_entry *e);
/* Gives st (steals it on success) to the cache under a copy of sql. The new
 * entry, or NULL when out of memory: then st stays the caller's. */
cache_entry *sl_cache_add(sg_driver_conn *c, const char *sql, size_t len, uint64_t hash,
                          sqlite3_stmt *st, int line);
/* Ends the batch's use of c->stmt: back to its cache entry (keep) or dropped,
 * or finalized when the batch owns it. */
void sl_stmt_release(sg_driver_conn *c, bool keep);

#endif
