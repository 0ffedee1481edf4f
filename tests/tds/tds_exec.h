/* T-SQL emulation on SQLite for the TDS test server.
 *
 * A session is one client's SQL state: its own SQLite connection (so BEGIN
 * TRAN maps onto SQLite transactions), its transaction count, the last row
 * count. A batch runs statement by statement (sqlite3_prepare_v2 tail loop;
 * a T-SQL batch without semicolons is split where SQLite reports a syntax
 * error at a statement keyword). Emulated: WAITFOR DELAY, SET (LANGUAGE and
 * LOCK_TIMEOUT kept, others ignored), CREATE TABLE #temp, sp_reset_connection,
 * BEGIN TRAN/COMMIT/ROLLBACK, IF @@TRANCOUNT > 0 ROLLBACK|COMMIT, RAISERROR,
 * THROW, PRINT, USE, EXEC sqlgate_test_knob, SET NOCOUNT, DECLARE @v type = literal,
 * @@VERSION/@@TRANCOUNT/@@SPID/
 * @@ROWCOUNT/@@IDENTITY/@@ERROR, N'...' literals, "dbo." prefixes, (MAX) lengths, and the
 * functions GETDATE, SYSDATETIME, SYSUTCDATETIME, GETUTCDATE, NEWID, ISNULL,
 * LEN, DATALENGTH, SCOPE_IDENTITY, DB_NAME.
 *
 * Tokens go into the session's writer; full packets are sent as rows are
 * produced; the caller sends the final packet (EOM).
 */
#ifndef SQLGATE_TDS_EXEC_H
#define SQLGATE_TDS_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tds_wire.h"

typedef struct tds_session tds_session;

/* What the session needs from the connection that owns it. */
typedef struct tds_exec_hooks {
    void *ctx; /* borrowed, passed back to each hook */
    /* Non-blocking: true once the client sent ATTENTION or the connection is
     * closing. */
    bool (*cancelled)(void *ctx);
    /* Waits ms milliseconds (forever if ms < 0); returns true if cancelled
     * meanwhile. */
    bool (*wait)(void *ctx, long ms);
    /* EXEC sqlgate_test_knob 'name', value: returns 0, or -1 if unknown. */
    int (*set_knob)(void *ctx, const char *name, long value);
} tds_exec_hooks;

/* Faults for one request (read from the server's knobs when it started). */
typedef struct tds_exec_faults {
    bool close_mid_result; /* after the first row (or at the end): close the socket */
    bool garbage_token;    /* after the first row (or at the end): an invalid token */
    int raise_error;       /* != 0: answer with this error number instead of running */
} tds_exec_faults;

typedef enum tds_exec_status {
    TDS_EXEC_OK,        /* response complete in the writer, caller flushes with EOM */
    TDS_EXEC_CANCELLED, /* the client sent ATTENTION: caller acknowledges it */
    TDS_EXEC_CLOSE,     /* the connection must be closed now (fault or send failure) */
} tds_exec_status;

/* Opens a session on the SQLite file at path. `w` and `hooks->ctx` are
 * borrowed for the session's life. Returns NULL with a reason in err. */
tds_session *tds_session_new(const char *path, uint32_t ver, const char *dbname, int spid,
                             tds_writer *w, const tds_exec_hooks *hooks, char *err, size_t errlen);
/* Records the session's login (SUSER_NAME(), SUSER_SNAME()); a read-only
 * login's session refuses writes with error 229. 0, or -1 on failure. */
int tds_session_set_login(tds_session *s, const char *login, bool read_only);
/* Rolls back an open transaction and closes; s may be NULL. */
void tds_session_free(tds_session *s);

/* Runs a SQL batch (UTF-8). */
tds_exec_status tds_session_batch(tds_session *s, const char *sql, const tds_exec_faults *f);
/* Runs an RPC request (sp_executesql by name or procedure id 10). */
tds_exec_status tds_session_rpc(tds_session *s, const tds_rpc *rpc, const tds_exec_faults *f);
/* Puts the session back to the state of a fresh login, as SQL Server does
 * for sp_reset_connection and the RESETCONNECTION packet status bit: open
 * transaction rolled back, temporary objects dropped, SET LANGUAGE and
 * LOCK_TIMEOUT and the current database (USE) back to the login's. 0 or -1. */
int tds_session_reset(tds_session *s);
/* True for an RPC of sp_reset_connection (also sys.sp_reset_connection). */
bool tds_rpc_is_reset(const tds_rpc *rpc);
/* Number of open transactions (@@TRANCOUNT). */
int tds_session_trancount(const tds_session *s);

#endif
