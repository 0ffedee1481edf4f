/* sqlgate SQLite driver: the sg_driver table over one sqlite3 handle.
 *
 * Connection states: at rest (no batch), or inside a batch between exec() and
 * finish(). Inside a batch the connection owns a copy of the SQL text and of
 * the parameters, because later statements are prepared lazily by
 * next_result() (a statement may depend on the DDL of an earlier one), long
 * after the caller's borrowed params are gone.
 *
 * Deadlines (the handlers are in sqlite_guard.c): a progress handler aborts a
 * running statement once the batch deadline has passed or interrupt() was
 * called; a busy handler waits for other connections' locks only until that
 * deadline. Shared-cache table locks (":memory:" databases) return
 * SQLITE_LOCKED without calling the busy handler, so a statement that failed
 * on its first step with BUSY/LOCKED in autocommit mode is reset and retried
 * until the deadline.
 *
 * Hardening and read-only batches (for read-only tokens): sqlite_guard.c.
 *
 * Statement cache: sqlite_cache.c.
 */
#include "sqlite_int.h"

#include "../util.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEADLINE_ROWS 64 /* rows between clock reads in next_row() */
#define SQL_SEVERITY  16 /* SQL Server's "user error" class */
#define SQL_STATE     1

#define PING_PROBE_BYTES (256 * 1024) /* what a query's page cache needs soon */

/* --- Errors ---------------------------------------------------------------- */

static int timeout_error(sg_driver_conn *c, sg_err *err, bool lock)
{
    if (atomic_load(&c->interrupted))
        return sg_err_set(err, SG_QUERY_TIMEOUT, "query cancelled");
    if (c->deadline_ms <= c->started_ms)
        return sg_err_set(err, SG_QUERY_TIMEOUT, "query timed out before it started");
    return sg_err_set(err, SG_QUERY_TIMEOUT, "query exceeded its timeout of %lld ms%s",
                      (long long)(c->deadline_ms - c->started_ms),
                      lock ? " waiting for a database lock" : "");
}

int sl_sql_error(sg_err *err, long number, int line, const char *msg)
{
    sg_err_set(err, SG_SQL_ERROR, "%s", msg);
    if (err != NULL) {
        err->has_sql = true;
        err->sql.number = number;
        err->sql.severity = SQL_SEVERITY;
        err->sql.state = SQL_STATE;
        err->sql.line = line;
    }
    return -1;
}

int sl_map_error(sg_driver_conn *c, int rc, int line, sg_err *err)
{
    int xrc = sqlite3_extended_errcode(c->db);
    const char *msg = sqlite3_errmsg(c->db);
    switch (rc & 0xff) {
    case SQLITE_INTERRUPT:
        return timeout_error(c, err, false);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        if (atomic_load(&c->interrupted) || sg_clock_ms() >= c->deadline_ms)
            return timeout_error(c, err, true);
        return sl_sql_error(err, xrc, line, msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_FULL:
        c->broken = true;
        return sg_err_set(err, SG_DB_UNAVAILABLE, "SQLite database \"%s\" failed: %s", c->path,
                          msg);
    case SQLITE_NOMEM:
        c->broken = true;
        return sg_err_set(err, SG_INTERNAL, "SQLite is out of memory");
    case SQLITE_MISUSE:
        return sg_err_set(err, SG_INTERNAL, "SQLite API misuse: %s", msg);
    default:
        /* A refused function fails with SQLITE_ERROR, other refusals with
         * SQLITE_AUTH; SQLite only says "not authorized" or "authorization
         * denied" (VACUUM INTO). */
        if (c->denied[0] != '\0' && strstr(msg, "authoriz") != NULL)
            msg = c->denied;
        return sl_sql_error(err, xrc, line, msg);
    }
}

/* Remembers a batch error so that later calls before finish() repeat it. */
static int batch_fail(sg_driver_conn *c, sg_err *err)
{
    c->failed = true;
    if (err != NULL)
        sg_err_copy(&c->last_err, err);
    else
        sg_err_set(&c->last_err, SG_INTERNAL, "batch failed");
    return -1;
}

/* --- Batch text ------------------------------------------------------------ */

/* Skips whitespace and SQL comments. */
static const char *skip_space(const char *p)
{
    for (;;) {
        while (*p != '\0' && isspace((unsigned char)*p))
            p++;
        if (p[0] == '-' && p[1] == '-') {
            while (*p != '\0' && *p != '\n')
                p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *end = strstr(p + 2, "*/");
            p = end != NULL ? end + 2 : p + strlen(p);
        } else {
            return p;
        }
    }
}

int sl_line_of(const sg_driver_conn *c, const char *start)
{
    const char *end = skip_space(start);
    int line = 1;
    for (const char *p = c->sql; p < end; p++)
        if (*p == '\n')
            line++;
    return line;
}

/* True when `p` (the text after a batch's first statement) holds no further
 * statement: only whitespace, comments and ';'. skip_space() also skips a
 * '\v', which SQLite's tokenizer rejects, so a tail with one is not taken for
 * empty. */
static bool only_separators(const char *p)
{
    if (p == NULL || strchr(p, '\v') != NULL)
        return false;
    for (p = skip_space(p); *p == ';'; p = skip_space(p + 1))
        ;
    return *p == '\0';
}

/* --- Statements ------------------------------------------------------------ */

static bool may_retry(sg_driver_conn *c, int rc)
{
    int prc = rc & 0xff;
    return (prc == SQLITE_BUSY || prc == SQLITE_LOCKED) && !atomic_load(&c->interrupted) &&
           sg_clock_ms() < c->deadline_ms;
}

/* Prepares the next non-empty statement of the batch with sqlite3_prepare_v3
 * `flags` and binds it. 1: c->stmt is ready; 0: no statements left; -1: error. */
static int prepare_next(sg_driver_conn *c, unsigned flags, sg_err *err)
{
    while (c->tail != NULL && *c->tail != '\0') {
        const char *start = c->tail;
        const char *next = NULL;
        sqlite3_stmt *st = NULL;
        bool dirty = c->session_dirty;
        int rc;
        int64_t wait = 1;
        for (;;) {
            rc = sqlite3_prepare_v3(c->db, start, -1, flags, &st, &next);
            if (rc == SQLITE_OK || !may_retry(c, rc))
                break;
            sg_sleep_ms(wait);
            wait = wait < 32 ? wait * 2 : wait;
        }
        c->stmt_line = sl_line_of(c, start);
        if (rc != SQLITE_OK) {
            sqlite3_finalize(st);
            c->tail = NULL;
            return sl_map_error(c, rc, c->stmt_line, err);
        }
        c->tail = next;
        if (st == NULL)
            continue; /* only whitespace, comments or ';' */
        c->stmt = st;
        if (c->read_only && !sqlite3_stmt_readonly(st)) {
            sl_stmt_release(c, false);
            c->tail = NULL;
            c->session_dirty = dirty; /* refused before it ran */
            return sl_read_only_refusal(c, c->stmt_line, err);
        }
        if (sl_bind_all(c, err) < 0) {
            sl_stmt_release(c, false);
            c->tail = NULL;
            return -1;
        }
        return 1;
    }
    return 0;
}

/* Steps c->stmt. `first` allows a retry of a statement that could not get
 * its lock, which is only sound outside an explicit transaction. */
static int step(sg_driver_conn *c, bool first)
{
    int64_t wait = 1;
    for (;;) {
        c->stepping = true;
        int rc = sqlite3_step(c->stmt);
        c->stepping = false;
        if (rc == SQLITE_ROW || rc == SQLITE_DONE)
            return rc;
        if (!first || !sqlite3_get_autocommit(c->db) || !may_retry(c, rc))
            return rc;
        sqlite3_reset(c->stmt);
        sg_sleep_ms(wait);
        wait = wait < 32 ? wait * 2 : wait;
    }
}

static int check_deadline(sg_driver_conn *c, sg_err *err)
{
    if (atomic_load(&c->interrupted) || sg_clock_ms() >= c->deadline_ms)
        return timeout_error(c, err, false);
    return 0;
}

/* Runs a statement without columns to its end and counts its changes. */
static int run_to_done(sg_driver_conn *c, sg_err *err)
{
    sqlite3_int64 before = sqlite3_total_changes64(c->db);
    int rc = step(c, true);
    while (rc == SQLITE_ROW)
        rc = step(c, false);
    if (rc != SQLITE_DONE)
        return sl_map_error(c, rc, c->stmt_line, err);
    /* sqlite3_changes() keeps the count of the last INSERT/UPDATE/DELETE even
     * across DDL, so only trust it when this statement changed something. */
    if (sqlite3_total_changes64(c->db) != before)
        c->rows_affected += sqlite3_changes64(c->db);
    return 0;
}

/* Returns the connection to rest: statements finalized, batch memory freed.
 * Result description buffers are kept for the next batch; rows_affected stays
 * readable until the next exec(). */
static void batch_end(sg_driver_conn *c)
{
    sl_stmt_release(c, !c->failed);
    free(c->sql);
    c->sql = NULL;
    c->tail = NULL;
    free(c->params);
    c->params = NULL;
    c->n_params = 0;
    c->in_batch = false;
    c->result_active = false;
    c->pending_row = false;
    c->result_done = false;
    c->failed = false;
}

/* --- Driver functions ------------------------------------------------------ */

static void sl_close(sg_driver_conn *c)
{
    if (c == NULL)
        return;
    batch_end(c);
    for (size_t i = 0; i < CACHE_SIZE; i++)
        if (c->cache[i].sql != NULL)
            sl_cache_drop(&c->cache[i]);
    if (c->db != NULL) {
        sqlite3_stmt *st;
        while ((st = sqlite3_next_stmt(c->db, NULL)) != NULL)
            sqlite3_finalize(st);
        /* Closing rolls back a transaction the last batch left open. */
        sqlite3_close_v2(c->db);
    }
    free(c->cols);
    free(c->kinds);
    free(c->values);
    free(c->names);
    free(c->path);
    free(c);
}

/* Runs a setup statement at open, stepping through its rows. */
static int setup_exec(sg_driver_conn *c, const char *sql, const char *path, sg_err *err)
{
    sqlite3_stmt *st = NULL;
    c->trusted = true;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    int64_t wait = 1;
    while (rc == SQLITE_OK) {
        do
            rc = sqlite3_step(st);
        while (rc == SQLITE_ROW);
        /* Shared-cache table locks do not call the busy handler. */
        if (rc == SQLITE_DONE || !may_retry(c, rc))
            break;
        sqlite3_reset(st);
        sg_sleep_ms(wait);
        wait = wait < 32 ? wait * 2 : wait;
        rc = SQLITE_OK;
    }
    c->trusted = false;
    if (rc == SQLITE_OK || rc == SQLITE_DONE) {
        sqlite3_finalize(st);
        return 0;
    }
    int prc = rc & 0xff;
    const char *reason = sqlite3_errmsg(c->db);
    if (prc == SQLITE_BUSY || prc == SQLITE_LOCKED || prc == SQLITE_INTERRUPT)
        reason = "timed out waiting for the database";
    char msg[SG_ERR_MESSAGE_MAX];
    snprintf(msg, sizeof msg, "%s", reason);
    sqlite3_finalize(st);
    return sg_err_set(err, SG_DB_UNAVAILABLE, "cannot open SQLite database \"%s\": %s", path, msg);
}

/* The URI of the shared in-memory database of `name`; characters outside
 * [A-Za-z0-9_-] are percent-encoded. */
static int memory_uri(const char *name, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    static const char prefix[] = "file:sqlgate-mem-";
    static const char suffix[] = "?mode=memory&cache=shared";
    size_t len = sizeof prefix - 1;
    memcpy(out, prefix, len);
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
        if (len + 3 >= cap)
            return -1;
        if (isalnum(*p) || *p == '_' || *p == '-') {
            out[len++] = (char)*p;
        } else {
            out[len++] = '%';
            out[len++] = hex[*p >> 4];
            out[len++] = hex[*p & 15];
        }
    }
    if (len + sizeof suffix > cap)
        return -1;
    memcpy(out + len, suffix, sizeof suffix);
    return 0;
}

/* ":memory:" gives one database per config name, shared by every connection
 * opened for it (pool connections see the same data) through SQLite's shared
 * cache. It lives only while at least one of those connections is open: when
 * the last closes, its data is gone. */
static sg_driver_conn *sl_open(const sg_db_config *cfg, int64_t deadline_ms, sg_err *err)
{
    if (cfg == NULL || cfg->path == NULL || cfg->path[0] == '\0') {
        sg_err_set(err, SG_DB_UNAVAILABLE, "SQLite database has no path");
        return NULL;
    }
    const char *path = cfg->path;
    bool memory = strcmp(path, ":memory:") == 0;
    char uri[3 * SG_NAME_MAX + 64];
    const char *target = path;
    int flags = SQLITE_OPEN_NOMUTEX;
    flags |= cfg->read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (memory) {
        if (memory_uri(cfg->name, uri, sizeof uri) < 0) {
            sg_err_set(err, SG_DB_UNAVAILABLE, "SQLite database name is too long");
            return NULL;
        }
        target = uri;
        flags |= SQLITE_OPEN_URI;
    }

    sl_guard_heap_limit();
    sg_driver_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        sg_err_set(err, SG_INTERNAL, "out of memory opening SQLite database");
        return NULL;
    }
    atomic_init(&c->interrupted, false);
    c->path = strdup(path);
    if (c->path == NULL) {
        sg_err_set(err, SG_INTERNAL, "out of memory opening SQLite database");
        goto fail;
    }
    c->started_ms = sg_clock_ms();
    c->deadline_ms = deadline_ms;

    int rc = sqlite3_open_v2(target, &c->db, flags, NULL);
    if (rc != SQLITE_OK) {
        const char *why = c->db != NULL ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc);
        sg_err_set(err, SG_DB_UNAVAILABLE, "cannot open SQLite database \"%s\": %s", path, why);
        goto fail;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sl_guard_install(c);

    /* The first statements read the file header, so a file that is not a
     * database fails here rather than on the first query. */
    if (!memory && !cfg->read_only && setup_exec(c, "PRAGMA journal_mode=WAL", path, err) < 0)
        goto fail;
    if (setup_exec(c, "PRAGMA foreign_keys=ON", path, err) < 0)
        goto fail;
    if (setup_exec(c, "SELECT count(*) FROM sqlite_master", path, err) < 0)
        goto fail;
    return c;

fail:
    sl_close(c);
    return NULL;
}

static int sl_exec(sg_driver_conn *c, const char *sql, const sg_param *params, size_t n_params,
                   int64_t deadline_ms, sg_err *err)
{
    c->read_only = c->read_only_next;
    c->read_only_next = false;
    if (c->in_batch)
        batch_end(c); /* a caller that skipped finish(); be safe */
    if (c->broken)
        return sg_err_set(err, SG_DB_UNAVAILABLE, "SQLite connection is broken");
    if (sql == NULL)
        return sg_err_set(err, SG_BAD_REQUEST, "sql is missing");
    c->denied[0] = '\0';
    c->started_ms = sg_clock_ms();
    c->deadline_ms = deadline_ms;
    c->rows_affected = 0;
    c->rows_unchecked = 0;
    c->in_batch = true;
    if (check_deadline(c, err) < 0)
        goto fail;
    size_t len;
    uint64_t hash = sl_sql_hash(sql, &len);
    cache_entry *e = c->trusted ? NULL : sl_cache_find(c, sql, len, hash);
    if (e != NULL) {
        /* The batch is this one statement: no text is left to prepare. */
        if (c->read_only && !sqlite3_stmt_readonly(e->stmt)) {
            sl_read_only_refusal(c, e->line, err);
            goto fail;
        }
        if (sl_copy_params(c, params, n_params, err) < 0)
            goto fail;
        c->entry = e;
        c->stmt = e->stmt;
        c->stmt_line = e->line;
        /* At rest it is reset and unbound (sl_stmt_release). */
        if (sl_bind_all(c, err) < 0)
            goto fail;
        return 0;
    }
    c->sql = strdup(sql);
    if (c->sql == NULL) {
        sg_err_set(err, SG_INTERNAL, "out of memory copying the batch");
        goto fail;
    }
    c->tail = c->sql;
    if (c->read_only && sl_read_only_scan(c, err) < 0)
        goto fail;
    if (sl_copy_params(c, params, n_params, err) < 0)
        goto fail;
    /* Only the first statement now: later ones may need its effects. A batch
     * of nothing but whitespace and comments has no statements and simply
     * yields no results. */
    c->saw_pragma = false;
    int rc = prepare_next(c, SQLITE_PREPARE_PERSISTENT, err);
    if (rc < 0)
        goto fail;
    if (rc == 1 && !c->saw_pragma && !c->trusted && only_separators(c->tail))
        c->entry = sl_cache_add(c, c->sql, len, hash, c->stmt, c->stmt_line);
    return 0;

fail:
    /* A cached statement is dropped here as after any failed batch. */
    sl_stmt_release(c, false);
    batch_end(c);
    return -1;
}

static void sl_read_only_next(sg_driver_conn *c)
{
    c->read_only_next = true;
}

static int sl_next_result(sg_driver_conn *c, const sg_column **cols, size_t *n_cols, sg_err *err)
{
    if (!c->in_batch)
        return 0;
    if (c->failed) {
        sg_err_copy(err, &c->last_err);
        return -1;
    }
    if (c->result_active) {
        /* Rows not read are discarded; a RETURNING statement has already
         * made all its changes on its first step. */
        sl_stmt_release(c, true);
        c->result_active = false;
        c->pending_row = false;
        c->result_done = false;
    }
    for (;;) {
        if (check_deadline(c, err) < 0)
            return batch_fail(c, err);
        if (c->stmt == NULL) {
            int rc = prepare_next(c, 0, err);
            if (rc < 0)
                return batch_fail(c, err);
            if (rc == 0)
                return 0;
        }
        int n = sqlite3_column_count(c->stmt);
        if (n == 0) {
            if (run_to_done(c, err) < 0)
                return batch_fail(c, err);
            sl_stmt_release(c, true);
            continue;
        }
        int rc = step(c, true);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            sl_map_error(c, rc, c->stmt_line, err);
            return batch_fail(c, err);
        }
        /* A statement that the step prepared again (the schema changed since
         * it was prepared: "SELECT *" after ADD COLUMN) has new columns. */
        n = sqlite3_column_count(c->stmt);
        c->pending_row = rc == SQLITE_ROW;
        c->result_done = rc == SQLITE_DONE;
        if (sl_describe(c, (size_t)n, err) < 0)
            return batch_fail(c, err);
        c->result_active = true;
        *cols = c->cols;
        *n_cols = (size_t)n;
        return 1;
    }
}

static int sl_next_row(sg_driver_conn *c, const sg_value **values, sg_err *err)
{
    if (c->failed) {
        sg_err_copy(err, &c->last_err);
        return -1;
    }
    if (!c->in_batch || !c->result_active || (c->result_done && !c->pending_row))
        return 0;
    /* Reading the clock for every row was a visible share of streaming; a
     * statement slow between two rows is stopped by the progress handler. */
    if (atomic_load(&c->interrupted) || ++c->rows_unchecked >= DEADLINE_ROWS) {
        c->rows_unchecked = 0;
        if (check_deadline(c, err) < 0)
            return batch_fail(c, err);
    }
    if (c->pending_row) {
        c->pending_row = false;
    } else {
        int rc = step(c, false);
        if (rc == SQLITE_DONE) {
            c->result_done = true;
            return 0;
        }
        if (rc != SQLITE_ROW) {
            sl_map_error(c, rc, c->stmt_line, err);
            return batch_fail(c, err);
        }
    }
    sl_convert_row(c);
    *values = c->values;
    return 1;
}

static int64_t sl_rows_affected(sg_driver_conn *c)
{
    return c->rows_affected;
}

/* A connection on which a caller may have left a temporary object (table,
 * view, trigger, index in the temp schema) is not handed to the next caller:
 * "CREATE TEMP VIEW users" would shadow main.users for everyone after. */
static bool sl_unusable(sg_driver_conn *c)
{
    return c->broken || c->session_dirty || !sqlite3_get_autocommit(c->db);
}

/* A batch that leaves a transaction open (e.g. "BEGIN; INSERT ...") makes the
 * connection unusable: the pool closes it, and closing rolls back. */
static int sl_finish(sg_driver_conn *c)
{
    batch_end(c);
    /* last_insert_rowid() would show the next caller this caller's row. */
    sqlite3_set_last_insert_rowid(c->db, 0);
    atomic_store(&c->interrupted, false);
    return sl_unusable(c) ? -1 : 0;
}

/* The health query runs as sqlgate's own statement (trusted, never cached,
 * so it is prepared anew and needs fresh memory each time). Before it, a
 * probe allocation: a statement needs page-cache memory that "SELECT 1" on an
 * open connection does not (its few small allocations come from the
 * connection's lookaside buffer), so without the probe a process out of
 * SQLite heap would still look healthy. */
static int sl_ping(sg_driver_conn *c, const char *sql, int64_t deadline_ms, sg_err *err)
{
    void *probe = sqlite3_malloc64(PING_PROBE_BYTES);
    if (probe == NULL) {
        c->broken = true;
        return sg_err_set(err, SG_DB_UNAVAILABLE,
                          "SQLite cannot allocate memory (the process reached its SQLite heap "
                          "limit)");
    }
    sqlite3_free(probe);
    c->trusted = true;
    int erc = sl_exec(c, sql, NULL, 0, deadline_ms, err);
    c->trusted = false;
    if (erc < 0)
        return -1;
    c->trusted = true;
    const sg_column *cols;
    size_t n_cols;
    const sg_value *values;
    int rc;
    while ((rc = sl_next_result(c, &cols, &n_cols, err)) == 1) {
        while ((rc = sl_next_row(c, &values, err)) == 1)
            ;
        if (rc < 0)
            break;
    }
    c->trusted = false;
    /* Not sl_finish: an interrupt that came during the check is for the
     * statement the connection's holder runs next. */
    batch_end(c);
    if (sl_unusable(c) && rc >= 0)
        return sg_err_set(err, SG_DB_UNAVAILABLE, "SQLite connection is unusable after ping");
    return rc < 0 ? -1 : 0;
}

/* Any thread may call this while the owner runs a statement. The caller
 * guarantees it never races with close() (the pool only interrupts a
 * connection that is borrowed, and closes only connections it holds). */
static void sl_interrupt(sg_driver_conn *c)
{
    if (c == NULL)
        return;
    atomic_store(&c->interrupted, true);
    sqlite3_interrupt(c->db);
}

const sg_driver sg_driver_sqlite = {
    .name = "sqlite",
    .open = sl_open,
    .ping = sl_ping,
    .read_only_next = sl_read_only_next,
    .exec = sl_exec,
    .next_result = sl_next_result,
    .next_row = sl_next_row,
    .rows_affected = sl_rows_affected,
    .finish = sl_finish,
    .interrupt = sl_interrupt,
    .unusable = sl_unusable,
    .close = sl_close,
};
