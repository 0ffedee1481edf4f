/* sqlgate FreeTDS db-lib driver: SQL Server, Azure SQL (and Sybase) over TDS.
 *
 * db-lib keeps its error and message handlers and its timers process-wide,
 * so they are installed once (pthread_once) and every callback is routed to
 * the connection it concerns through dbsetuserdata. While dbopen() runs there
 * is no connection object yet; the login in progress is found through a
 * thread-local pointer instead (the handlers run on the thread that called
 * dbopen).
 *
 * Timeouts: db-lib only knows whole seconds, process-wide. The timers are set
 * to one second and act as a tick; each tick during a wait calls the error
 * handler with SYBETIME, which compares the connection's own deadline:
 *   - before the deadline: keep waiting;
 *   - first tick after it (or after interrupt()): INT_TIMEOUT, which sends an
 *     ATTENTION; if the server acknowledges, the connection stays usable;
 *   - a later tick (the server ignored the ATTENTION): INT_CANCEL, which
 *     kills the connection.
 * So a statement past its timeout is answered within the timeout plus two
 * seconds, whatever the server does. A login past its deadline is cancelled at
 * the next tick.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sybfront.h>
#include <sybdb.h>

#include "freetds_int.h"
#include "../util.h"
#include "tsql_scan.h"

#define RESET_TIMEOUT_MS 5000 /* longest wait for sp_reset_connection */

typedef struct login_ctx {
    int64_t deadline;
    sg_err err; /* first problem reported during the login */
    int dberr;  /* db-lib's number for it; 0 when the server's message came first */
} login_ctx;

/* The login running on this thread, if any (see the header comment). */
static _Thread_local login_ctx *tl_login;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static bool init_ok;

/* --- Handlers ---------------------------------------------------------------- */

static sg_driver_conn *conn_of(DBPROCESS *dbp)
{
    return dbp != NULL ? (sg_driver_conn *)dbgetuserdata(dbp) : NULL;
}

static int on_error(DBPROCESS *dbp, int severity, int dberr, int oserr, char *dberrstr,
                    char *oserrstr)
{
    sg_driver_conn *c = conn_of(dbp);
    if (dberr == SYBETIME) {
        if (c == NULL) {
            if (tl_login == NULL || sg_clock_ms() < tl_login->deadline)
                return INT_TIMEOUT; /* keep waiting for the login */
            if (tl_login->err.code == SG_OK)
                sg_err_set(&tl_login->err, SG_DB_UNAVAILABLE, "login timed out");
            return INT_CANCEL;
        }
        bool late = c->deadline != 0 && sg_clock_ms() >= c->deadline;
        if (!late && !atomic_load(&c->interrupted))
            return INT_CONTINUE;
        c->timed_out = true;
        if (c->late_ticks++ == 0)
            return INT_TIMEOUT; /* ATTENTION; the connection survives an ack */
        c->dead = true;
        return INT_CANCEL;
    }
    sg_err *target = c != NULL ? &c->err : tl_login != NULL ? &tl_login->err : NULL;
    if (dberr == SYBESMSG)
        return INT_CANCEL; /* the server's message was recorded already */
    if (target != NULL && target->code == SG_OK) {
        if (c == NULL && tl_login != NULL)
            tl_login->dberr = dberr;
        const char *os = oserrstr != NULL && oserr != 0 ? oserrstr : NULL;
        sg_err_set(target, SG_DB_UNAVAILABLE, "%s%s%s", dberrstr ? dberrstr : "db-lib error",
                   os ? ": " : "", os ? os : "");
    }
    if (c != NULL && (dbdead(dbp) || dberr == SYBESEOF || dberr == SYBECONN))
        c->dead = true;
    return INT_CANCEL;
}

static int on_message(DBPROCESS *dbp, DBINT msgno, int msgstate, int severity, char *msgtext,
                      char *srvname, char *procname, int line)
{
    if (severity <= 10)
        return 0; /* informational: changed database, language, PRINT */
    sg_driver_conn *c = conn_of(dbp);
    sg_err *target = c != NULL ? &c->err : tl_login != NULL ? &tl_login->err : NULL;
    if (target == NULL || target->code != SG_OK)
        return 0;
    if (c == NULL) {
        /* A login refused by the server (18456 and friends). */
        sg_err_set(target, SG_DB_UNAVAILABLE, "server refused the login: %s (error %ld)",
                   msgtext ? msgtext : "", (long)msgno);
        return 0;
    }
    sg_err_set(target, SG_SQL_ERROR, "%s", msgtext ? msgtext : "SQL error");
    target->has_sql = true;
    target->sql.number = msgno;
    target->sql.severity = severity;
    target->sql.state = msgstate;
    target->sql.line = line;
    return 0;
}

static void global_init(void)
{
    if (dbinit() == FAIL)
        return;
    dberrhandle(on_error);
    dbmsghandle(on_message);
    dbsetlogintime(1);
    dbsettime(1);
    init_ok = true;
}

/* --- Open and close -------------------------------------------------------- */

static BYTE tds_version(const char *v)
{
    if (v != NULL && strcmp(v, "7.1") == 0)
        return DBVERSION_71;
    if (v != NULL && strcmp(v, "7.2") == 0)
        return DBVERSION_72;
    if (v != NULL && strcmp(v, "7.3") == 0)
        return DBVERSION_73;
    /* "auto": ask for 7.4; a server that speaks less answers with its own
     * version and db-lib follows it down. */
    return DBVERSION_74;
}

static void conn_free(sg_driver_conn *c)
{
    if (c == NULL)
        return;
    if (c->dbp != NULL)
        dbclose(c->dbp);
    free(c->cols);
    free(c->values);
    free(c->conv);
    free(c->names);
    free(c->scales);
    free(c);
}

static sg_driver_conn *ft_open(const sg_db_config *cfg, int64_t deadline_ms, sg_err *err)
{
    pthread_once(&init_once, global_init);
    if (!init_ok) {
        sg_err_set(err, SG_DB_UNAVAILABLE, "FreeTDS db-lib could not be initialised");
        return NULL;
    }
    sg_driver_conn *c = calloc(1, sizeof *c);
    LOGINREC *login = dblogin();
    if (c == NULL || login == NULL) {
        free(c);
        if (login != NULL)
            dbloginfree(login);
        sg_err_set(err, SG_INTERNAL, "out of memory");
        return NULL;
    }
    c->cfg = cfg;
    atomic_init(&c->interrupted, false);
    if (ft_needs_section(cfg))
        ft_section_name(cfg, c->server, sizeof c->server);
    else if (strchr(cfg->host, ':') != NULL)
        snprintf(c->server, sizeof c->server, "[%s]:%d", cfg->host, cfg->port);
    else
        snprintf(c->server, sizeof c->server, "%s:%d", cfg->host, cfg->port);

    if (cfg->user != NULL)
        DBSETLUSER(login, cfg->user);
    if (cfg->password != NULL)
        DBSETLPWD(login, cfg->password);
    DBSETLAPP(login, cfg->app_name);
    DBSETLCHARSET(login, "UTF-8");
    DBSETLVERSION(login, tds_version(cfg->tds_version));
    if (cfg->database != NULL)
        DBSETLDBNAME(login, cfg->database);
    if (cfg->read_only)
        DBSETLREADONLY(login, TRUE);

    login_ctx ctx = {.deadline = deadline_ms};
    tl_login = &ctx;
    c->dbp = dbopen(login, c->server);
    tl_login = NULL;
    /* The login record holds the password: wipe it before it is freed. */
    if (cfg->password != NULL)
        DBSETLPWD(login, "");
    dbloginfree(login);
    if (c->dbp == NULL) {
        if (ctx.err.code == SG_OK)
            sg_err_set(&ctx.err, SG_DB_UNAVAILABLE, "cannot connect");
        else if (ctx.dberr == SYBEFCON)
            ft_explain_negotiation(cfg, deadline_ms, &ctx.err);
        sg_err_set(err, SG_DB_UNAVAILABLE, "%s:%d: %s", cfg->host, cfg->port, ctx.err.message);
        conn_free(c);
        return NULL;
    }
    dbsetuserdata(c->dbp, (BYTE *)c);
    return c;
}

static void ft_close(sg_driver_conn *c)
{
    conn_free(c);
}

/* --- Batches ----------------------------------------------------------------- */

static void batch_reset(sg_driver_conn *c, int64_t deadline)
{
    c->deadline = deadline;
    c->late_ticks = 0;
    c->timed_out = false;
    sg_err_clear(&c->err);
    c->rows_affected = 0;
    c->rows_pending = false;
    c->n_cols = 0;
}

int ft_batch_error(sg_driver_conn *c, sg_err *err)
{
    if (c->timed_out) {
        if (atomic_load(&c->interrupted))
            return sg_err_set(err, SG_QUERY_TIMEOUT, "query cancelled");
        return sg_err_set(err, SG_QUERY_TIMEOUT, "query exceeded its timeout");
    }
    if (c->dead || dbdead(c->dbp)) {
        c->dead = true;
        if (c->err.code == SG_OK || c->err.code == SG_SQL_ERROR)
            return sg_err_set(err, SG_DB_UNAVAILABLE, "the connection to the server was lost%s%s",
                              c->err.code != SG_OK ? ": " : "", c->err.message);
        sg_err_copy(err, &c->err);
        err->code = SG_DB_UNAVAILABLE;
        return -1;
    }
    if (c->err.code != SG_OK) {
        sg_err_copy(err, &c->err);
        return -1;
    }
    return sg_err_set(err, SG_INTERNAL, "db-lib call failed without a reason");
}

/* Puts the session back to the state of a fresh login before the connection
 * serves another caller, as ADO.NET's pool does: an RPC call of
 * sp_reset_connection (db-lib cannot set the TDS RESETCONNECTION status bit
 * that ADO.NET uses; SQL Server runs the same procedure for both). The server
 * drops temporary objects (#tables), resets SET options to their defaults,
 * goes back to the login's database, aborts an open transaction and frees
 * cursors and locks. What it leaves is kept out by tsql_traits.unresettable. A
 * reset that fails or times out leaves the connection dead: it is closed,
 * never reused. 0 or -1. */
static int reset_session(sg_driver_conn *c, int64_t deadline_ms)
{
    int64_t limit = sg_clock_ms() + RESET_TIMEOUT_MS;
    c->deadline = deadline_ms != 0 && deadline_ms < limit ? deadline_ms : limit;
    atomic_store(&c->interrupted, false);
    c->late_ticks = 0;
    c->timed_out = false;
    sg_err_clear(&c->err);
    c->needs_reset = false;
    if (c->no_reset || dbrpcinit(c->dbp, "sp_reset_connection", 0) == FAIL ||
        dbrpcsend(c->dbp) == FAIL || dbsqlok(c->dbp) == FAIL) {
        c->dead = true;
        return -1;
    }
    RETCODE rc;
    while ((rc = dbresults(c->dbp)) == SUCCEED) {
        STATUS row;
        while ((row = dbnextrow(c->dbp)) != NO_MORE_ROWS && row != FAIL)
            ;
    }
    c->deadline = 0;
    if (rc != NO_MORE_RESULTS || c->err.code != SG_OK || c->timed_out || dbdead(c->dbp)) {
        c->dead = true;
        return -1;
    }
    /* IMPLICIT_TRANSACTIONS and ANSI_DEFAULTS are back to the login's. */
    c->always_check = false;
    return 0;
}

/* Brings the connection back to rest after a failure inside a batch. */
static void settle(sg_driver_conn *c)
{
    if (!c->dead && !dbdead(c->dbp) && dbcancel(c->dbp) == FAIL)
        c->dead = true;
    c->in_batch = false;
}

static int ft_exec(sg_driver_conn *c, const char *sql, const sg_param *params, size_t n_params,
                   int64_t deadline_ms, sg_err *err)
{
    if (c->dead)
        return sg_err_set(err, SG_DB_UNAVAILABLE, "the connection is broken");
    /* Interrupted between acquire and exec (shutdown): nothing is sent. The
     * flag stays set until finish(), so it is never lost. */
    if (atomic_load(&c->interrupted))
        return sg_err_set(err, SG_QUERY_TIMEOUT, "query cancelled");
    /* A batch that failed in exec() never reached finish(): reset now. */
    if (c->needs_reset && reset_session(c, deadline_ms) != 0)
        return sg_err_set(err, SG_DB_UNAVAILABLE, "the connection could not be reset");
    batch_reset(c, deadline_ms);
    /* What the batch may leave in the session (tsql_scan.h): a SELECT-only
     * batch is spared the reset's round trip and the @@TRANCOUNT check.
     * Once a batch set IMPLICIT_TRANSACTIONS or ANSI_DEFAULTS, every later
     * batch on the connection is checked for an open transaction. */
    tsql_traits t;
    tsql_scan(sql, &t);
    c->needs_reset = t.changes_session;
    if (t.unresettable)
        c->no_reset = true;
    if (t.tran_options)
        c->always_check = true;
    c->in_batch = true;
    c->tran_check = c->always_check || t.may_open_tran;
    int rc;
    if (n_params == 0) {
        rc = dbcmd(c->dbp, sql) == FAIL || dbsqlexec(c->dbp) == FAIL ? ft_batch_error(c, err) : 0;
    } else if (t.dml_words >= 2 && ft_inlinable(params, n_params)) {
        /* Inside sp_executesql db-lib reports only the last statement's row
         * count (it passes over the DONEINPROC tokens of statements without
         * results), so a batch of several DML statements runs as a plain
         * batch with its parameters declared in it, which db-lib counts
         * statement by statement. The price: SQL Server caches such a batch
         * by its text, values included. A string holding a NUL byte cannot
         * be written into the text: its batch goes by sp_executesql. */
        char *batch = ft_inline_batch(sql, params, n_params);
        if (batch == NULL)
            rc = sg_err_set(err, SG_INTERNAL, "out of memory");
        else
            rc = dbcmd(c->dbp, batch) == FAIL || dbsqlexec(c->dbp) == FAIL ? ft_batch_error(c, err)
                                                                           : 0;
        free(batch);
    } else {
        rc = ft_send_rpc(c, sql, params, n_params, err);
    }
    if (rc != 0) {
        settle(c);
        /* finish() will not be called: the reset cannot wait for it. */
        if (c->needs_reset && !c->dead && !dbdead(c->dbp))
            reset_session(c, 0);
    }
    return rc;
}

static int ft_next_result(sg_driver_conn *c, const sg_column **cols, size_t *n_cols, sg_err *err)
{
    if (!c->in_batch)
        return 0;
    if (c->rows_pending && dbcanquery(c->dbp) == FAIL) {
        c->rows_pending = false;
        return ft_batch_error(c, err);
    }
    c->rows_pending = false;
    for (;;) {
        RETCODE rc = dbresults(c->dbp);
        /* Inside sp_executesql, a statement that fails after a result set
         * reaches only the message handler: dbresults() passes over its
         * DONEINPROC and ends the batch without a FAIL. */
        if (rc == NO_MORE_RESULTS && c->err.code == SG_SQL_ERROR)
            return ft_batch_error(c, err);
        if (rc == NO_MORE_RESULTS)
            return 0;
        if (rc == FAIL)
            return ft_batch_error(c, err);
        int n = dbnumcols(c->dbp);
        if (n > 0) {
            if (ft_describe(c, n, err) != 0)
                return -1;
            c->rows_pending = true;
            *cols = c->cols;
            *n_cols = (size_t)n;
            return 1;
        }
        DBINT count = dbcount(c->dbp);
        if (count > 0)
            c->rows_affected += count;
    }
}

static int ft_next_row(sg_driver_conn *c, const sg_value **values, sg_err *err)
{
    if (!c->rows_pending)
        return 0;
    STATUS st = dbnextrow(c->dbp);
    if (st == NO_MORE_ROWS) {
        c->rows_pending = false;
        return 0;
    }
    if (st != REG_ROW) {
        if (st == FAIL) {
            c->rows_pending = false;
            return ft_batch_error(c, err);
        }
        return 0; /* compute rows are not part of the API (docs/api.md) */
    }
    for (int i = 0; i < c->n_cols; i++)
        ft_convert_value(c, i, &c->values[i]);
    *values = c->values;
    return 1;
}

static int64_t ft_rows_affected(sg_driver_conn *c)
{
    return c->rows_affected;
}

/* One integer from a statement run on c (after its batch ended). */
static int scalar(sg_driver_conn *c, const char *sql, long *out)
{
    if (dbcmd(c->dbp, sql) == FAIL || dbsqlexec(c->dbp) == FAIL)
        return -1;
    int rc = -1;
    while (dbresults(c->dbp) == SUCCEED) {
        while (dbnextrow(c->dbp) == REG_ROW) {
            BYTE *d = dbdata(c->dbp, 1);
            DBINT v = 0;
            if (d != NULL && dbconvert(c->dbp, dbcoltype(c->dbp, 1), d, dbdatlen(c->dbp, 1),
                                       SYBINT4, (BYTE *)&v, sizeof v) > 0) {
                *out = v;
                rc = 0;
            }
        }
    }
    return rc;
}

/* Ends the batch; clear_interrupt is false for the end of a ping, whose
 * interrupt belongs to the statement the holder runs next. */
static int batch_finish(sg_driver_conn *c, bool clear_interrupt)
{
    if (c->in_batch) {
        c->in_batch = false;
        c->rows_pending = false;
        if (!c->dead && !dbdead(c->dbp) && dbcancel(c->dbp) == FAIL)
            c->dead = true;
        if (!c->dead && c->tran_check) {
            long open = 0;
            /* A connection left inside a transaction is never reused. */
            if (scalar(c, "SELECT @@TRANCOUNT", &open) != 0 || open != 0)
                c->dead = true;
        }
        if (!c->dead && !dbdead(c->dbp) && c->needs_reset)
            reset_session(c, 0);
    }
    c->deadline = 0;
    if (clear_interrupt)
        atomic_store(&c->interrupted, false);
    if (c->dead || dbdead(c->dbp)) {
        c->dead = true;
        return -1;
    }
    return 0;
}

static int ft_finish(sg_driver_conn *c)
{
    return batch_finish(c, true);
}

static int ft_ping(sg_driver_conn *c, const char *sql, int64_t deadline_ms, sg_err *err)
{
    if (ft_exec(c, sql, NULL, 0, deadline_ms, err) != 0)
        return -1;
    int rc = 0;
    const sg_column *cols;
    size_t n;
    int more;
    while ((more = ft_next_result(c, &cols, &n, err)) > 0) {
        const sg_value *v;
        int got;
        while ((got = ft_next_row(c, &v, err)) > 0)
            ;
        if (got < 0) {
            rc = -1;
            break;
        }
    }
    if (more < 0)
        rc = -1;
    if (batch_finish(c, false) != 0 && rc == 0)
        rc = sg_err_set(err, SG_DB_UNAVAILABLE, "the connection broke during the check");
    return rc;
}

static void ft_interrupt(sg_driver_conn *c)
{
    atomic_store(&c->interrupted, true);
}

static bool ft_unusable(sg_driver_conn *c)
{
    return c->dead || c->no_reset || dbdead(c->dbp);
}

const sg_driver sg_driver_freetds = {
    .name = "freetds",
    .prepare = ft_prepare,
    .discard = ft_remove_conf,
    .open = ft_open,
    .ping = ft_ping,
    .exec = ft_exec,
    .next_result = ft_next_result,
    .next_row = ft_next_row,
    .rows_affected = ft_rows_affected,
    .finish = ft_finish,
    .interrupt = ft_interrupt,
    .unusable = ft_unusable,
    .close = ft_close,
};
