/* sqlite_guard: what bounds a caller's SQL on a SQLite connection.
 *
 * Deadlines (see the top of sqlite.c): the busy and progress handlers stop
 * waiting for a lock and stop a running statement at the batch's deadline or
 * after interrupt().
 *
 * Hardening (docs/security.md): an authorizer on every connection lets a
 * caller's SQL run only read-only PRAGMAs and no ATTACH, DETACH (so no VACUUM
 * INTO), load_extension() or fts3_tokenizer(); sqlgate's own statements (setup,
 * health query) run trusted. Defensive mode is on, extension loading and the
 * two-argument tokenizer are off, per-connection limits are set at open and a
 * process-wide heap limit at the first open. A caller that touched the temp
 * schema leaves its connection dirty: it is closed, not reused, so no
 * temporary object reaches the next caller.
 *
 * Read-only batches (read_only_next, for read-only tokens): the engine, not
 * the SQL text, decides. Before the first statement runs, every statement of
 * the batch is prepared in turn and must satisfy sqlite3_stmt_readonly; one
 * that would write fails the batch with FORBIDDEN before anything ran. A
 * statement that cannot be prepared yet ends that scan (only read-only
 * statements precede it, so nothing has written when it fails the same way
 * later), and every statement is checked again as it is prepared to run, so
 * no statement that would write is ever stepped.
 */
#include "sqlite_int.h"

#include "../util.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define PROGRESS_STEPS 1000 /* VM steps between deadline checks */

/* Limits sqlgate sets (docs/security.md). Bytes of one string or blob: large
 * enough for the 256 MB values bench/run streams. */
#define SG_SQLITE_MAX_LENGTH     (512 * 1024 * 1024)
#define SG_SQLITE_MAX_SQL_LENGTH (16 * 1024 * 1024)       /* bytes of one statement */
#define SG_SQLITE_HEAP_LIMIT     ((sqlite3_int64)1 << 30) /* whole process, bytes */

/* Busy handler: wait for another connection's lock until the deadline, with a
 * short backoff so that interrupt() is noticed soon. */
static int busy_cb(void *ud, int count)
{
    sg_driver_conn *c = ud;
    if (atomic_load(&c->interrupted))
        return 0;
    int64_t left = c->deadline_ms - sg_clock_ms();
    if (left <= 0)
        return 0;
    static const int64_t backoff[] = {1, 2, 5, 10, 20, 50};
    size_t n = sizeof backoff / sizeof backoff[0];
    int64_t wait = count < 0 || (size_t)count >= n ? backoff[n - 1] : backoff[count];
    sg_sleep_ms(wait < left ? wait : left);
    return 1;
}

/* Progress handler: non-zero makes the running statement fail with
 * SQLITE_INTERRUPT. */
static int progress_cb(void *ud)
{
    sg_driver_conn *c = ud;
    return atomic_load(&c->interrupted) || sg_clock_ms() >= c->deadline_ms;
}

/* --- Authorizer: what callers' SQL may do ---------------------------------- */

/* PRAGMAs a caller may run with any argument: they only read the schema or
 * check the file, and change no setting of the connection or the process.
 * docs/security.md lists them with the reasons. */
static const char *const pragma_read[] = {
    "collation_list",   "compile_options", "database_list", "foreign_key_check",
    "foreign_key_list", "function_list",   "index_info",    "index_list",
    "index_xinfo",      "integrity_check", "module_list",   "pragma_list",
    "quick_check",      "table_info",      "table_list",    "table_xinfo",
};

/* PRAGMAs a caller may run only without a value: the plain form reads the
 * setting; any value would change it. SQLite's own modules run some of these
 * (fts5 reads data_version, rtree page_size) while a statement steps. */
static const char *const pragma_get[] = {
    "application_id", "auto_vacuum",    "data_version", "encoding",
    "foreign_keys",   "freelist_count", "journal_mode", "page_count",
    "page_size",      "schema_version", "user_version",
};

/* SQL functions refused whatever their arguments: they act on the process
 * (load a library, swap a tokenizer pointer) rather than on data. Both are
 * also switched off at open; this makes the refusal say why. */
static const char *const function_deny[] = {"fts3_tokenizer", "load_extension"};

static bool in_list(const char *name, const char *const *list, size_t n)
{
    if (name == NULL)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(name, list[i]) == 0)
            return true;
    return false;
}

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Refuses an action, keeping the reason for the error the caller will get
 * (SQLite itself only says "not authorized"). */
static int auth_deny(sg_driver_conn *c, const char *kind, const char *name, const char *why)
{
    if (c->denied[0] == '\0')
        snprintf(c->denied, sizeof c->denied, "%s%s is not allowed: %s", kind,
                 name != NULL ? name : "", why);
    return SQLITE_DENY;
}

/* Authorizer, on every connection. sqlgate's own statements (setup at open,
 * the health query) run with c->trusted and are not limited. A caller's
 * statement may not:
 *   - run a PRAGMA outside the two lists above: many change process-wide
 *     state (hard_heap_limit, soft_heap_limit, temp_store_directory) or
 *     connection settings that would outlive the request (cache_size,
 *     recursive_triggers, query_only, ...);
 *   - ATTACH or DETACH: a file anywhere on disk could be created or read.
 *     SQLite's VACUUM attaches a temporary database ('') while it steps;
 *     that alone is allowed, so a plain VACUUM works and VACUUM INTO a file
 *     does not;
 *   - call a function of function_deny.
 * Its decisions depend on the statement text and on c->trusted alone, so a
 * cached statement needs no new check (statements run trusted never enter
 * the cache). Every use of the temp schema marks the session dirty: the
 * connection is then discarded after the request (see sl_unusable). It also
 * notes that a PRAGMA was compiled: some act while they are prepared rather
 * than when they run, so they are never cached. */
static int auth_cb(void *ud, int action, const char *a1, const char *a2, const char *db,
                   const char *inner)
{
    sg_driver_conn *c = ud;
    (void)inner;
    if (!c->trusted && db != NULL && strcmp(db, "temp") == 0)
        c->session_dirty = true;
    switch (action) {
    case SQLITE_CREATE_TEMP_INDEX:
    case SQLITE_CREATE_TEMP_TABLE:
    case SQLITE_CREATE_TEMP_TRIGGER:
    case SQLITE_CREATE_TEMP_VIEW:
        c->session_dirty |= !c->trusted;
        return SQLITE_OK;
    case SQLITE_PRAGMA:
        c->saw_pragma = true;
        if (c->trusted || in_list(a1, pragma_read, COUNT_OF(pragma_read)) ||
            (a2 == NULL && in_list(a1, pragma_get, COUNT_OF(pragma_get))))
            return SQLITE_OK;
        return auth_deny(c, "PRAGMA ", a1,
                         "sqlgate runs only the read-only PRAGMAs listed in docs/security.md");
    case SQLITE_ATTACH:
        if (c->trusted || (c->stepping && a1 != NULL && a1[0] == '\0'))
            return SQLITE_OK;
        return auth_deny(c, "ATTACH", NULL, "a database is one file (ATTACH, VACUUM INTO)");
    case SQLITE_DETACH:
        if (c->trusted || c->stepping)
            return SQLITE_OK;
        return auth_deny(c, "DETACH", NULL, "a database is one file");
    case SQLITE_FUNCTION:
        if (!c->trusted && in_list(a2, function_deny, COUNT_OF(function_deny)))
            return auth_deny(c, "function ", a2, "it acts on the process, not on data");
        return SQLITE_OK;
    default:
        return SQLITE_OK;
    }
}

/* --- Limits ---------------------------------------------------------------- */

/* Per-connection limits, tighter than SQLite's compiled-in maxima where a
 * caller could otherwise make one statement cost a lot of memory or stack.
 * docs/security.md lists them. */
static void set_limits(sqlite3 *db)
{
    static const struct {
        int id;
        int value;
    } limits[] = {
        {SQLITE_LIMIT_LENGTH, SG_SQLITE_MAX_LENGTH},
        {SQLITE_LIMIT_SQL_LENGTH, SG_SQLITE_MAX_SQL_LENGTH},
        {SQLITE_LIMIT_COLUMN, 2000},
        {SQLITE_LIMIT_EXPR_DEPTH, 1000},
        {SQLITE_LIMIT_COMPOUND_SELECT, 500},
        {SQLITE_LIMIT_VDBE_OP, 25000000},
        {SQLITE_LIMIT_FUNCTION_ARG, 127},
        /* VACUUM needs one slot for its temporary copy; callers cannot ATTACH. */
        {SQLITE_LIMIT_ATTACHED, 1},
        {SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 50000},
        {SQLITE_LIMIT_VARIABLE_NUMBER, 2100},
        {SQLITE_LIMIT_TRIGGER_DEPTH, 100},
        {SQLITE_LIMIT_WORKER_THREADS, 0},
    };
    for (size_t i = 0; i < COUNT_OF(limits); i++)
        sqlite3_limit(db, limits[i].id, limits[i].value);
}

/* SQLite's heap limit is process-wide: set once, at the first open, and never
 * by a caller (PRAGMA hard_heap_limit is refused). A value within the limit
 * keeps the process from being swapped to death by one statement; past it,
 * SQLite fails allocations with SQLITE_NOMEM and the health check reports the
 * database down (sl_ping). */
static pthread_once_t heap_once = PTHREAD_ONCE_INIT;

static void set_heap_limit(void)
{
    sqlite3_hard_heap_limit64(SG_SQLITE_HEAP_LIMIT);
}

void sl_guard_heap_limit(void)
{
    pthread_once(&heap_once, set_heap_limit);
}

void sl_guard_install(sg_driver_conn *c)
{
    sqlite3_busy_handler(c->db, busy_cb, c);
    sqlite3_progress_handler(c->db, PROGRESS_STEPS, progress_cb, c);
    sqlite3_set_authorizer(c->db, auth_cb, c);
    set_limits(c->db);
    sqlite3_db_config(c->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    sqlite3_db_config(c->db, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, 0, (int *)NULL);
    sqlite3_db_config(c->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, (int *)NULL);
}

/* --- Read-only batches ----------------------------------------------------- */

int sl_read_only_refusal(const sg_driver_conn *c, int line, sg_err *err)
{
    return sg_err_set(err, SG_FORBIDDEN,
                      "this token is read-only (needs rw): the statement at line %d would write "
                      "to %s; nothing was run",
                      line, c->path);
}

static int read_only_scan_batch(sg_driver_conn *c, sg_err *err);

int sl_read_only_scan(sg_driver_conn *c, sg_err *err)
{
    /* Nothing runs here: what the authorizer notes while preparing (a temp
     * object named) is noted again when the statement really runs. */
    bool dirty = c->session_dirty;
    int rc = read_only_scan_batch(c, err);
    c->session_dirty = dirty;
    return rc;
}

static int read_only_scan_batch(sg_driver_conn *c, sg_err *err)
{
    const char *p = c->sql;
    while (p != NULL && *p != '\0') {
        sqlite3_stmt *st = NULL;
        const char *next = NULL;
        if (sqlite3_prepare_v3(c->db, p, -1, 0, &st, &next) != SQLITE_OK) {
            sqlite3_finalize(st);
            return 0;
        }
        bool writes = st != NULL && !sqlite3_stmt_readonly(st);
        sqlite3_finalize(st);
        if (writes)
            return sl_read_only_refusal(c, sl_line_of(c, p), err);
        p = next;
    }
    return 0;
}
