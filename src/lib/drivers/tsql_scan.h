/* tsql_scan: what a T-SQL batch may do to the session it runs in, read from
 * its words in one pass, so the SQL Server driver knows whether a pooled
 * connection must be reset, closed or checked for an open transaction after
 * it. Internal to the FreeTDS driver; pure, no allocation.
 *
 * The scan is lexical and errs one way only: a word inside a string literal,
 * a comment or a name can raise a flag needlessly (a reset or a new login
 * more), never hide one that the batch really sets.
 */
#ifndef SQLGATE_TSQL_SCAN_H
#define SQLGATE_TSQL_SCAN_H

#include <stdbool.h>

typedef struct tsql_traits {
    /* Anything but a batch that starts with SELECT or WITH and has no '#'
     * and none of the statement words that write or set session state:
     * the session must be reset (sp_reset_connection) before reuse. */
    bool changes_session;
    /* EXECUTE AS / EXEC AS, SETUSER, sp_setapprole or "isolation": state
     * that sp_reset_connection does not undo; the connection is closed. */
    bool unresettable;
    /* "tran" or "exec" anywhere: the batch may leave a transaction open. */
    bool may_open_tran;
    /* IMPLICIT_TRANSACTIONS or ANSI_DEFAULTS anywhere: after this batch any
     * statement may open a transaction. */
    bool tran_options;
    /* INSERT, UPDATE, DELETE and MERGE words (not variables), at most 255:
     * an estimate of the statements whose row counts the batch reports. */
    unsigned char dml_words;
} tsql_traits;

/* Fills *out from sql (borrowed, NUL-terminated). */
void tsql_scan(const char *sql, tsql_traits *out);

#endif
