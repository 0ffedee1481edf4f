/* T-SQL emulation on SQLite: see tds_exec.h. */
#include "tds_exec.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sqlite3.h>

#define SERVER_NAME "sqlgate-tds"
#define VERSION_TEXT                                                                               \
    "Microsoft SQL Server 2022 (sqlgate TDS test server on SQLite " SQLITE_VERSION ")"
/* Rows buffered before COLMETADATA to infer the types of untyped columns. */
#define PREFETCH_ROWS 1000
/* How often (rows) a long result checks for ATTENTION. */
#define CANCEL_CHECK_ROWS 64

struct tds_session {
    sqlite3 *db;
    uint32_t ver;
    char *dbname; /* the login's database */
    char *login;  /* SUSER_NAME(); NULL until set */
    int spid;
    /* Session state that sp_reset_connection puts back to the login's
     * (besides temporary objects, which it drops). */
    char curdb[130];   /* USE: dbname, "master" or "tempdb" */
    char language[64]; /* SET LANGUAGE, @@LANGUAGE */
    long lock_timeout; /* SET LOCK_TIMEOUT, @@LOCK_TIMEOUT; -1: wait forever */
    bool nocount;      /* SET NOCOUNT ON: DONE tokens carry no count */
    tds_writer *w;
    tds_exec_hooks hooks;
    int trancount;
    uint64_t tran_desc;
    int64_t last_rowcount;
    int last_error;

    /* Per request. */
    bool rpc;
    bool pending;
    uint16_t pend_status;
    uint64_t pend_count;
    bool any_error;
    const tds_exec_faults *faults;
    bool fault_fired;
    const tds_param *params;
    size_t nparams;
    char **decl_names; /* names from the @params declaration, by position */
    size_t ndecl;
    tds_param *vars; /* DECLAREd by the request; owned, freed at its end */
    size_t nvars;
    /* The batch being run, original and rewritten (same offsets), and the span
     * of the current statement in them. */
    const char *orig;
    const char *rw;
    size_t stmt_start, stmt_end;
};

typedef enum step_result {
    STEP_NEXT,  /* go on with the next statement */
    STEP_ABORT, /* error that ends the batch */
    STEP_CANCEL,
    STEP_CLOSE,
} step_result;

/* ---- lexing helpers ------------------------------------------------------------ */

static bool is_ident(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '@' || c == '#' || c == '$' ||
           (unsigned char)c >= 0x80;
}

static size_t skip_ws(const char *s, size_t len, size_t pos)
{
    while (pos < len) {
        if (isspace((unsigned char)s[pos])) {
            pos++;
        } else if (s[pos] == '-' && pos + 1 < len && s[pos + 1] == '-') {
            while (pos < len && s[pos] != '\n')
                pos++;
        } else if (s[pos] == '/' && pos + 1 < len && s[pos + 1] == '*') {
            pos += 2;
            while (pos < len && !(s[pos] == '*' && pos + 1 < len && s[pos + 1] == '/'))
                pos++;
            pos = pos < len ? pos + 2 : len;
        } else {
            break;
        }
    }
    return pos;
}

static size_t word_end(const char *s, size_t len, size_t pos)
{
    while (pos < len && is_ident(s[pos]))
        pos++;
    return pos;
}

static bool word_eq(const char *s, size_t a, size_t b, const char *kw)
{
    size_t n = strlen(kw);
    return b - a == n && strncasecmp(s + a, kw, n) == 0;
}

static const char *const stmt_keywords[] = {
    "SELECT",  "INSERT",  "UPDATE",  "DELETE",   "WITH",      "CREATE",  "DROP",      "ALTER",
    "REPLACE", "BEGIN",   "COMMIT",  "ROLLBACK", "SET",       "WAITFOR", "RAISERROR", "THROW",
    "PRINT",   "EXEC",    "EXECUTE", "IF",       "DECLARE",   "USE",     "SAVE",      "TRUNCATE",
    "PRAGMA",  "ANALYZE", "VACUUM",  "REINDEX",  "SAVEPOINT", "RELEASE", "END",       "GO",
};

static bool is_stmt_keyword(const char *s, size_t a, size_t b)
{
    for (size_t i = 0; i < sizeof(stmt_keywords) / sizeof(stmt_keywords[0]); i++)
        if (word_eq(s, a, b, stmt_keywords[i]))
            return true;
    return false;
}

/* End of a simple statement: the next ';' or statement keyword at the top level
 * (outside strings and parentheses). */
static size_t simple_stmt_end(const char *s, size_t len, size_t pos)
{
    int depth = 0;
    while (pos < len) {
        pos = skip_ws(s, len, pos);
        if (pos >= len)
            break;
        char c = s[pos];
        if (c == ';' && depth == 0)
            return pos;
        if (c == '\'') {
            pos++;
            while (pos < len && !(s[pos] == '\'' && !(pos + 1 < len && s[pos + 1] == '\'')))
                pos += s[pos] == '\'' ? 2 : 1;
            pos = pos < len ? pos + 1 : len;
        } else if (c == '(') {
            depth++;
            pos++;
        } else if (c == ')') {
            depth--;
            pos++;
        } else if (is_ident(c)) {
            size_t e = word_end(s, len, pos);
            if (depth <= 0 && is_stmt_keyword(s, pos, e))
                return pos;
            pos = e;
        } else {
            pos++;
        }
    }
    return len;
}

/* Reads a string literal ([N]'...', '' as a quote) into new UTF-8. */
static char *read_string(const char *s, size_t len, size_t *pos)
{
    size_t p = *pos;
    if (p < len && (s[p] == 'N' || s[p] == 'n') && p + 1 < len && s[p + 1] == '\'')
        p++;
    if (p >= len || s[p] != '\'')
        return NULL;
    p++;
    char *out = malloc(len - p + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    while (p < len) {
        if (s[p] == '\'') {
            if (p + 1 < len && s[p + 1] == '\'') {
                out[o++] = '\'';
                p += 2;
                continue;
            }
            break;
        }
        out[o++] = s[p++];
    }
    if (p >= len) {
        free(out);
        return NULL;
    }
    out[o] = '\0';
    *pos = p + 1;
    return out;
}

static unsigned line_at(const char *s, size_t pos)
{
    unsigned line = 1;
    for (size_t i = 0; i < pos; i++)
        line += s[i] == '\n';
    return line;
}

/* In "AS <type>)" (a CAST target), SQLite would turn dates and GUIDs into
 * numbers (NUMERIC affinity) and binary into numbers too: the type word is
 * replaced by TEXT or BLOB in o, padded with spaces. The result column gets its
 * SQL Server type back from the original text (column_cast). */
static void cast_target(const char *s, size_t len, size_t pos, char *o)
{
    static const char *const as_text[] = {
        "DATE",     "TIME",          "DATETIME2",       "DATETIMEOFFSET",
        "DATETIME", "SMALLDATETIME", "UNIQUEIDENTIFIER"};
    size_t a = skip_ws(s, len, pos);
    size_t e = word_end(s, len, a);
    size_t q = skip_ws(s, len, e);
    if (q < len && s[q] == '(') {
        while (q < len && s[q] != ')')
            q++;
        q = skip_ws(s, len, q + 1);
    }
    if (q >= len || s[q] != ')')
        return;
    const char *repl = NULL;
    for (size_t i = 0; i < sizeof(as_text) / sizeof(as_text[0]); i++)
        if (word_eq(s, a, e, as_text[i]))
            repl = "TEXT";
    if (word_eq(s, a, e, "VARBINARY") || word_eq(s, a, e, "BINARY") || word_eq(s, a, e, "IMAGE"))
        repl = "BLOB";
    if (repl == NULL)
        return;
    memset(o + a, ' ', e - a);
    memcpy(o + a, repl, 4);
}

/* Rewrites T-SQL spellings SQLite lacks, keeping every offset: N'x' -> ' x',
 * @@NAME -> __v(k), dbo. / [dbo]. -> spaces. */
static char *rewrite(const char *s, size_t len)
{
    static const struct {
        const char *name;
        const char *repl;
    } globals[] = {
        {"@@VERSION", "__v(0)"},    {"@@TRANCOUNT", "__v(1)"}, {"@@SPID", "__v(2)"},
        {"@@ROWCOUNT", "__v(3)"},   {"@@IDENTITY", "__v(4)"},  {"@@ERROR", "__v(5)"},
        {"@@SERVERNAME", "__v(6)"}, {"@@LANGUAGE", "__v(7)"},  {"@@LOCK_TIMEOUT", "__v(8)"},
    };
    char *o = malloc(len + 1);
    if (o == NULL)
        return NULL;
    memcpy(o, s, len);
    o[len] = '\0';
    size_t p = 0;
    while (p < len) {
        char c = s[p];
        bool boundary = p == 0 || (!is_ident(s[p - 1]) && s[p - 1] != '.');
        if (c == '\'' || c == '"') {
            char q = c;
            p++;
            while (p < len && s[p] != q)
                p++;
            p++;
        } else if (c == '-' && p + 1 < len && s[p + 1] == '-') {
            while (p < len && s[p] != '\n')
                p++;
        } else if (c == '/' && p + 1 < len && s[p + 1] == '*') {
            p += 2;
            while (p + 1 < len && !(s[p] == '*' && s[p + 1] == '/'))
                p++;
            p += 2;
        } else if (c == '[') {
            if (boundary && len - p >= 6 && strncasecmp(s + p, "[dbo].", 6) == 0) {
                memset(o + p, ' ', 6);
                p += 6;
                continue;
            }
            while (p < len && s[p] != ']')
                p++;
            p++;
        } else if (c == '(' && len - p >= 5 && strncasecmp(s + p + 1, "MAX", 3) == 0 &&
                   s[p + 4] == ')') {
            /* NVARCHAR(MAX): SQLite wants a number; tds_type_parse reads -1 as MAX. */
            memcpy(o + p, "(-1) ", 5);
            p += 5;
        } else if (c == '#' && boundary && p + 1 < len && is_ident(s[p + 1])) {
            /* #temp table names (see create_hash_table) */
            o[p] = '_';
            p++;
        } else if ((c == 'N' || c == 'n') && boundary && p + 1 < len && s[p + 1] == '\'') {
            o[p] = ' ';
            p++;
        } else if (c == '@' && p + 1 < len && s[p + 1] == '@') {
            size_t e = word_end(s, len, p + 2);
            for (size_t i = 0; i < sizeof(globals) / sizeof(globals[0]); i++) {
                if (word_eq(s, p, e, globals[i].name)) {
                    size_t rl = strlen(globals[i].repl);
                    memset(o + p, ' ', e - p);
                    memcpy(o + p, globals[i].repl, rl);
                    break;
                }
            }
            p = e;
        } else if (boundary && is_ident(c)) {
            size_t e = word_end(s, len, p);
            if (word_eq(s, p, e, "AS")) {
                cast_target(s, len, e, o);
                p = e;
                continue;
            }
            if (word_eq(s, p, e, "dbo") && e < len && s[e] == '.') {
                memset(o + p, ' ', 4);
                p = e + 1;
                continue;
            }
            p = e;
        } else {
            p++;
        }
    }
    return o;
}

/* ---- token helpers ---------------------------------------------------------------- */

static void flush_pending(tds_session *s)
{
    if (!s->pending)
        return;
    tds_tok_done(&s->w->tok, s->rpc ? TDS_TOK_DONEINPROC : TDS_TOK_DONE,
                 (uint16_t)(s->pend_status | TDS_DONE_MORE), 0xC1, s->pend_count, s->ver);
    s->pending = false;
}

static void emit_done(tds_session *s, uint16_t status, uint64_t count)
{
    flush_pending(s);
    if (s->nocount) {
        /* SQL Server clears DONE_COUNT; the count field is then meaningless. */
        status &= (uint16_t)~TDS_DONE_COUNT;
        count = 0;
    }
    s->pending = true;
    s->pend_status = status;
    s->pend_count = count;
}

static void emit_message(tds_session *s, int number, int cls, int state, const char *msg,
                         unsigned line)
{
    flush_pending(s);
    tds_tok_message(&s->w->tok, cls > 10 ? TDS_TOK_ERROR : TDS_TOK_INFO, number, (uint8_t)state,
                    (uint8_t)cls, msg, SERVER_NAME, "", line, s->ver);
    if (cls > 10) {
        s->any_error = true;
        s->last_error = number;
    }
}

/* An error ends its statement with DONE(ERROR). */
static void emit_error(tds_session *s, int number, const char *msg, unsigned line)
{
    emit_message(s, number, 16, 1, msg, line);
    emit_done(s, TDS_DONE_ERROR, 0);
}

static step_result flush_rows(tds_session *s)
{
    if (tds_writer_flush(s->w, TDS_FLUSH_FULL) != 0)
        return STEP_CLOSE;
    return STEP_NEXT;
}

/* Close-type faults fire once per request, after the first row of the first
 * result (or at the end of a request without rows). */
static step_result fire_fault(tds_session *s)
{
    if (s->fault_fired || s->faults == NULL)
        return STEP_NEXT;
    if (s->faults->garbage_token) {
        s->fault_fired = true;
        static const uint8_t garbage[] = {0x00, 0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0x00, 0x00};
        tds_buf_put(&s->w->tok, garbage, sizeof(garbage));
        (void)tds_writer_flush(s->w, TDS_FLUSH_EOM);
        return STEP_CLOSE;
    }
    if (s->faults->close_mid_result) {
        s->fault_fired = true;
        (void)tds_writer_flush(s->w, TDS_FLUSH_ALL);
        return STEP_CLOSE;
    }
    return STEP_NEXT;
}

/* ---- SQLite functions --------------------------------------------------------------- */

static void fn_global(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    tds_session *s = sqlite3_user_data(ctx);
    (void)argc;
    switch (sqlite3_value_int(argv[0])) {
    case 0:
        sqlite3_result_text(ctx, VERSION_TEXT, -1, SQLITE_STATIC);
        break;
    case 1:
        sqlite3_result_int(ctx, s->trancount);
        break;
    case 2:
        sqlite3_result_int(ctx, s->spid);
        break;
    case 3:
        sqlite3_result_int64(ctx, s->last_rowcount);
        break;
    case 4:
        if (sqlite3_last_insert_rowid(s->db) == 0)
            sqlite3_result_null(ctx);
        else
            sqlite3_result_int64(ctx, sqlite3_last_insert_rowid(s->db));
        break;
    case 5:
        sqlite3_result_int(ctx, s->last_error);
        break;
    case 6:
        sqlite3_result_text(ctx, SERVER_NAME, -1, SQLITE_STATIC);
        break;
    case 8:
        sqlite3_result_int64(ctx, s->lock_timeout);
        break;
    default:
        sqlite3_result_text(ctx, s->language, -1, SQLITE_TRANSIENT);
        break;
    }
}

static void fn_now(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    (void)argv;
    intptr_t mode = (intptr_t)sqlite3_user_data(ctx); /* 0 local ms, 1 local 7, 2 utc ms, 3 utc 7 */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    time_t t = ts.tv_sec;
    if (mode >= 2)
        gmtime_r(&t, &tm);
    else
        localtime_r(&t, &tm);
    char out[64];
    if (mode % 2 == 0)
        snprintf(out, sizeof(out), "%04d-%02d-%02d %02d:%02d:%02d.%03ld", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    else
        snprintf(out, sizeof(out), "%04d-%02d-%02d %02d:%02d:%02d.%07ld", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 100);
    sqlite3_result_text(ctx, out, -1, SQLITE_TRANSIENT);
}

static void fn_newid(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    (void)argv;
    unsigned char r[16];
    sqlite3_randomness(16, r);
    r[6] = (unsigned char)((r[6] & 0x0F) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3F) | 0x80);
    char out[37];
    snprintf(out, sizeof(out),
             "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
             r[15]);
    sqlite3_result_text(ctx, out, -1, SQLITE_TRANSIENT);
}

static void fn_isnull(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    sqlite3_result_value(ctx, sqlite3_value_type(argv[0]) == SQLITE_NULL ? argv[1] : argv[0]);
}

static void fn_len(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    const unsigned char *t = sqlite3_value_text(argv[0]);
    int n = sqlite3_value_bytes(argv[0]);
    while (n > 0 && t[n - 1] == ' ')
        n--;
    sqlite3_int64 chars = 0;
    for (int i = 0; i < n; i++)
        chars += (t[i] & 0xC0) != 0x80;
    sqlite3_result_int64(ctx, chars);
}

static void fn_datalength(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    int type = sqlite3_value_type(argv[0]);
    if (type == SQLITE_NULL) {
        sqlite3_result_null(ctx);
    } else if (type == SQLITE_BLOB) {
        sqlite3_result_int(ctx, sqlite3_value_bytes(argv[0]));
    } else if (type == SQLITE_TEXT) {
        /* nvarchar: two bytes per UTF-16 unit */
        sqlite3_result_int64(
            ctx, (sqlite3_int64)tds_utf16_units((const char *)sqlite3_value_text(argv[0]),
                                                (size_t)sqlite3_value_bytes(argv[0])) *
                     2);
    } else {
        sqlite3_result_int(ctx, type == SQLITE_INTEGER ? 4 : 8);
    }
}

static void fn_identity(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    (void)argv;
    tds_session *s = sqlite3_user_data(ctx);
    sqlite3_result_int64(ctx, sqlite3_last_insert_rowid(s->db));
}

static void fn_dbname(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    (void)argv;
    tds_session *s = sqlite3_user_data(ctx);
    sqlite3_result_text(ctx, s->curdb, -1, SQLITE_TRANSIENT);
}

static void fn_login(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    (void)argv;
    tds_session *s = sqlite3_user_data(ctx);
    sqlite3_result_text(ctx, s->login ? s->login : "", -1, SQLITE_TRANSIENT);
}

static int progress(void *ctx)
{
    tds_session *s = ctx;
    return s->hooks.cancelled(s->hooks.ctx) ? 1 : 0;
}

static int register_functions(tds_session *s)
{
    int f = SQLITE_UTF8;
    int rc = 0;
    rc |= sqlite3_create_function(s->db, "__v", 1, f, s, fn_global, NULL, NULL);
    rc |= sqlite3_create_function(s->db, "GETDATE", 0, f, (void *)0, fn_now, NULL, NULL);
    rc |= sqlite3_create_function(s->db, "SYSDATETIME", 0, f, (void *)1, fn_now, NULL, NULL);
    rc |= sqlite3_create_function(s->db, "GETUTCDATE", 0, f, (void *)2, fn_now, NULL, NULL);
    rc |= sqlite3_create_function(s->db, "SYSUTCDATETIME", 0, f, (void *)3, fn_now, NULL, NULL);
    rc |= sqlite3_create_function(s->db, "NEWID", 0, f, NULL, fn_newid, NULL, NULL);
    rc |= sqlite3_create_function(s->db, "ISNULL", 2, f | SQLITE_DETERMINISTIC, NULL, fn_isnull,
                                  NULL, NULL);
    rc |= sqlite3_create_function(s->db, "LEN", 1, f | SQLITE_DETERMINISTIC, NULL, fn_len, NULL,
                                  NULL);
    rc |= sqlite3_create_function(s->db, "DATALENGTH", 1, f | SQLITE_DETERMINISTIC, NULL,
                                  fn_datalength, NULL, NULL);
    rc |= sqlite3_create_function(s->db, "SCOPE_IDENTITY", 0, f, s, fn_identity, NULL, NULL);
    rc |= sqlite3_create_function(s->db, "DB_NAME", 0, f, s, fn_dbname, NULL, NULL);
    rc |= sqlite3_create_function(s->db, "SUSER_NAME", 0, f, s, fn_login, NULL, NULL);
    rc |= sqlite3_create_function(s->db, "SUSER_SNAME", 0, f, s, fn_login, NULL, NULL);
    return rc;
}

/* ---- session ------------------------------------------------------------------------ */

/* The session state of a fresh login. */
static void session_defaults(tds_session *s)
{
    snprintf(s->curdb, sizeof s->curdb, "%s", s->dbname);
    snprintf(s->language, sizeof s->language, "us_english");
    s->lock_timeout = -1;
    s->nocount = false;
}

tds_session *tds_session_new(const char *path, uint32_t ver, const char *dbname, int spid,
                             tds_writer *w, const tds_exec_hooks *hooks, char *err, size_t errlen)
{
    tds_session *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->ver = ver;
    s->spid = spid;
    s->w = w;
    s->hooks = *hooks;
    s->dbname = strdup(dbname ? dbname : "");
    if (s->dbname == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    session_defaults(s);
    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open SQLite database: %s",
                 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 5000);
    sqlite3_extended_result_codes(s->db, 1);
    if (register_functions(s) != SQLITE_OK) {
        snprintf(err, errlen, "cannot register SQL functions");
        goto fail;
    }
    sqlite3_progress_handler(s->db, 2000, progress, s);
    return s;
fail:
    tds_session_free(s);
    return NULL;
}

void tds_session_free(tds_session *s)
{
    if (s == NULL)
        return;
    if (s->db != NULL) {
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close_v2(s->db);
    }
    free(s->dbname);
    free(s->login);
    free(s);
}

int tds_session_set_login(tds_session *s, const char *login, bool read_only)
{
    free(s->login);
    s->login = strdup(login);
    if (s->login == NULL)
        return -1;
    if (read_only && sqlite3_exec(s->db, "PRAGMA query_only = 1", NULL, NULL, NULL) != SQLITE_OK)
        return -1;
    return 0;
}

int tds_session_trancount(const tds_session *s)
{
    return s->trancount;
}

/* ---- errors from SQLite ------------------------------------------------------------- */

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Maps a SQLite error to a SQL Server number and message; returns true when
 * SQL Server would abort the whole batch. */
static bool map_sqlite_error(sqlite3 *db, int rc, int *number, char *msg, size_t msglen)
{
    const char *m = sqlite3_errmsg(db);
    int ext = sqlite3_extended_errcode(db);
    (void)rc;
    if (starts(m, "no such table: ")) {
        *number = 208;
        snprintf(msg, msglen, "Invalid object name '%s'.", m + 15);
        return true;
    }
    if (starts(m, "no such column: ")) {
        *number = 207;
        snprintf(msg, msglen, "Invalid column name '%s'.", m + 16);
        return true;
    }
    if (starts(m, "near \"")) {
        const char *q = strchr(m + 6, '"');
        *number = 102;
        snprintf(msg, msglen, "Incorrect syntax near '%.*s'.", q ? (int)(q - (m + 6)) : 0, m + 6);
        return true;
    }
    if (strstr(m, "incomplete input") != NULL || strstr(m, "syntax error") != NULL) {
        *number = 102;
        snprintf(msg, msglen, "Incorrect syntax near the end of the statement.");
        return true;
    }
    if (starts(m, "table ") && strstr(m, " already exists") != NULL) {
        *number = 2714;
        snprintf(msg, msglen, "There is already an object named '%.*s' in the database.",
                 (int)(strstr(m, " already exists") - (m + 6)), m + 6);
        return true;
    }
    if (starts(m, "no such function: ")) {
        *number = 195;
        snprintf(msg, msglen, "'%s' is not a recognized built-in function name.", m + 18);
        return true;
    }
    if ((ext & 0xff) == SQLITE_READONLY) {
        /* A read-only login's session (PRAGMA query_only) that tried to write. */
        *number = 229;
        snprintf(msg, msglen, "The permission was denied: the login has read rights only.");
        return true;
    }
    switch (ext) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
        *number = 2627;
        snprintf(msg, msglen,
                 "Violation of UNIQUE KEY constraint. Cannot insert duplicate key (%s).", m);
        return false;
    case SQLITE_CONSTRAINT_NOTNULL:
        *number = 515;
        snprintf(msg, msglen, "Cannot insert the value NULL into column (%s).", m);
        return false;
    case SQLITE_CONSTRAINT_CHECK:
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        *number = 547;
        snprintf(msg, msglen, "The statement conflicted with a constraint (%s).", m);
        return false;
    case SQLITE_BUSY:
    case SQLITE_BUSY_SNAPSHOT:
    case SQLITE_LOCKED:
        *number = 1222;
        snprintf(msg, msglen, "Lock request time out period exceeded.");
        return false;
    default:
        break;
    }
    *number = 50000;
    snprintf(msg, msglen, "SQLite: %s", m);
    return false;
}

static void sync_trancount(tds_session *s)
{
    /* SQLite may end a transaction on its own (e.g. after some errors). */
    if (s->trancount > 0 && sqlite3_get_autocommit(s->db)) {
        s->trancount = 0;
        tds_tok_env_tran(&s->w->tok, TDS_ENV_ROLLBACK, s->tran_desc);
    }
}

/* ---- emulated statements ----------------------------------------------------------------- */

static step_result tran_begin(tds_session *s, unsigned line)
{
    if (s->trancount == 0) {
        char *e = NULL;
        if (sqlite3_exec(s->db, "BEGIN", NULL, NULL, &e) != SQLITE_OK) {
            char msg[300];
            snprintf(msg, sizeof(msg), "SQLite: %s", e ? e : "BEGIN failed");
            sqlite3_free(e);
            emit_error(s, 50000, msg, line);
            return STEP_NEXT;
        }
        flush_pending(s);
        s->tran_desc++;
        tds_tok_env_tran(&s->w->tok, TDS_ENV_BEGINTRAN, s->tran_desc);
    }
    s->trancount++;
    return STEP_NEXT;
}

static step_result tran_end(tds_session *s, bool commit, unsigned line)
{
    if (s->trancount == 0) {
        if (commit)
            emit_error(s, 3902,
                       "The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION.",
                       line);
        else
            emit_error(s, 3903,
                       "The ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION.",
                       line);
        return STEP_NEXT;
    }
    if (commit && s->trancount > 1) {
        s->trancount--;
        return STEP_NEXT;
    }
    char *e = NULL;
    int rc = sqlite3_exec(s->db, commit ? "COMMIT" : "ROLLBACK", NULL, NULL, &e);
    if (rc != SQLITE_OK) {
        char msg[300];
        snprintf(msg, sizeof(msg), "SQLite: %s", e ? e : "COMMIT failed");
        sqlite3_free(e);
        emit_error(s, rc == SQLITE_BUSY ? 1222 : 50000, msg, line);
        sync_trancount(s);
        return STEP_NEXT;
    }
    s->trancount = 0;
    flush_pending(s);
    tds_tok_env_tran(&s->w->tok, commit ? TDS_ENV_COMMIT : TDS_ENV_ROLLBACK, s->tran_desc);
    return STEP_NEXT;
}

/* After BEGIN/COMMIT/ROLLBACK: optional TRAN/TRANSACTION/WORK and a name. */
static size_t skip_tran_words(const char *s, size_t len, size_t pos)
{
    size_t p = skip_ws(s, len, pos);
    size_t e = word_end(s, len, p);
    if (word_eq(s, p, e, "DEFERRED") || word_eq(s, p, e, "IMMEDIATE") ||
        word_eq(s, p, e, "EXCLUSIVE")) {
        p = skip_ws(s, len, e);
        e = word_end(s, len, p);
    }
    if (word_eq(s, p, e, "TRAN") || word_eq(s, p, e, "TRANSACTION") || word_eq(s, p, e, "WORK")) {
        pos = e;
        p = skip_ws(s, len, e);
        e = word_end(s, len, p);
        if (e > p && !is_stmt_keyword(s, p, e))
            pos = e; /* transaction name */
    }
    return pos;
}

/* RAISERROR message with %d/%i/%u/%s substituted from the arguments. */
static void format_raiserror(const char *fmt, char **args, size_t nargs, char *out, size_t outlen)
{
    size_t o = 0, ai = 0;
    for (size_t i = 0; fmt[i] != '\0' && o + 1 < outlen; i++) {
        if (fmt[i] == '%' && fmt[i + 1] != '\0') {
            size_t j = i + 1;
            while (fmt[j] != '\0' && strchr("-+ #0123456789.lhI", fmt[j]) != NULL)
                j++;
            if (fmt[j] != '\0' && strchr("disuxXo", fmt[j]) != NULL) {
                const char *a = ai < nargs ? args[ai] : "(null)";
                ai++;
                size_t al = strlen(a);
                if (al > outlen - 1 - o)
                    al = outlen - 1 - o;
                memcpy(out + o, a, al);
                o += al;
                i = j;
                continue;
            }
            if (fmt[i + 1] == '%') {
                out[o++] = '%';
                i++;
                continue;
            }
        }
        out[o++] = fmt[i];
    }
    out[o] = '\0';
}

/* Parses a comma-separated argument list of literals (strings, numbers) up to
 * `end`; each argument as new text. */
static int parse_args(const char *s, size_t pos, size_t end, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    for (size_t guard = 0; guard < 64; guard++) {
        pos = skip_ws(s, end, pos);
        if (pos >= end)
            return 0;
        char *a = NULL;
        if (s[pos] == '\'' ||
            ((s[pos] == 'N' || s[pos] == 'n') && pos + 1 < end && s[pos + 1] == '\'')) {
            a = read_string(s, end, &pos);
        } else {
            size_t st = pos;
            while (pos < end && s[pos] != ',')
                pos++;
            size_t e = pos;
            while (e > st && isspace((unsigned char)s[e - 1]))
                e--;
            a = malloc(e - st + 1);
            if (a) {
                memcpy(a, s + st, e - st);
                a[e - st] = '\0';
            }
        }
        if (a == NULL)
            return -1;
        char **na = realloc(*out, (*n + 1) * sizeof(char *));
        if (na == NULL) {
            free(a);
            return -1;
        }
        *out = na;
        na[(*n)++] = a;
        pos = skip_ws(s, end, pos);
        if (pos < end && s[pos] == ',')
            pos++;
        else
            return pos >= end ? 0 : -1;
    }
    return -1;
}

static void free_args(char **a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(a[i]);
    free(a);
}

static step_result emulate_raiserror(tds_session *s, const char *sql, size_t len, size_t pos,
                                     size_t end, unsigned line)
{
    pos = skip_ws(sql, len, pos);
    /* RAISERROR ( args ) [WITH options] */
    if (pos >= end || sql[pos] != '(') {
        emit_error(s, 102, "Incorrect syntax near 'RAISERROR'.", line);
        return STEP_ABORT;
    }
    int depth = 0;
    size_t close = pos;
    for (size_t p = pos; p < end; p++) {
        if (sql[p] == '\'') {
            p++;
            while (p < end && !(sql[p] == '\'' && !(p + 1 < end && sql[p + 1] == '\'')))
                p += sql[p] == '\'' ? 2 : 1;
            continue;
        }
        if (sql[p] == '(')
            depth++;
        if (sql[p] == ')' && --depth == 0) {
            close = p;
            break;
        }
    }
    char **args;
    size_t n;
    if (close == pos || parse_args(sql, pos + 1, close, &args, &n) != 0 || n < 3) {
        if (close != pos)
            free_args(args, n);
        emit_error(s, 102, "Incorrect syntax near 'RAISERROR'.", line);
        return STEP_ABORT;
    }
    char msg[2048];
    int number = 50000;
    char *endp;
    long num = strtol(args[0], &endp, 10);
    bool quoted = sql[skip_ws(sql, close, pos + 1)] == '\'' ||
                  sql[skip_ws(sql, close, pos + 1)] == 'N' ||
                  sql[skip_ws(sql, close, pos + 1)] == 'n';
    if (!quoted && *endp == '\0' && num > 0) {
        number = (int)num;
        snprintf(msg, sizeof(msg), "Error %ld raised.", num);
    } else {
        format_raiserror(args[0], args + 3, n - 3, msg, sizeof(msg));
    }
    long sev = strtol(args[1], NULL, 10), state = strtol(args[2], NULL, 10);
    if (sev < 0)
        sev = 0;
    if (sev > 25)
        sev = 25;
    if (state < 0 || state > 255)
        state = 1;
    free_args(args, n);
    emit_message(s, number, (int)sev, (int)state, msg, line);
    if (sev > 10)
        emit_done(s, TDS_DONE_ERROR, 0);
    return STEP_NEXT;
}

static step_result emulate_throw(tds_session *s, const char *sql, size_t pos, size_t end,
                                 unsigned line)
{
    char **args;
    size_t n;
    if (parse_args(sql, pos, end, &args, &n) != 0 || n != 3) {
        if (n)
            free_args(args, n);
        emit_error(s, 102, "Incorrect syntax near 'THROW' (rethrow is not supported).", line);
        return STEP_ABORT;
    }
    long number = strtol(args[0], NULL, 10);
    long state = strtol(args[2], NULL, 10);
    if (number < 50000)
        number = 35100; /* SQL Server: error_number must be >= 50000 */
    emit_message(s, (int)number, 16, (int)(state < 0 || state > 255 ? 1 : state), args[1], line);
    emit_done(s, TDS_DONE_ERROR, 0);
    free_args(args, n);
    return STEP_ABORT;
}

/* WAITFOR DELAY 'hh:mm[:ss[.mmm]]' */
static step_result emulate_waitfor(tds_session *s, const char *sql, size_t len, size_t pos,
                                   unsigned line, size_t *next)
{
    size_t p = skip_ws(sql, len, pos);
    size_t e = word_end(sql, len, p);
    if (!word_eq(sql, p, e, "DELAY")) {
        emit_error(s, 50000, "sqlgate TDS test server: only WAITFOR DELAY is supported.", line);
        return STEP_ABORT;
    }
    p = skip_ws(sql, len, e);
    char *lit = read_string(sql, len, &p);
    tds_datetime dt;
    if (lit == NULL || tds_datetime_parse(lit, strlen(lit), &dt) != 0 || dt.has_date) {
        free(lit);
        emit_error(s, 148, "Incorrect time syntax in time string used with WAITFOR.", line);
        return STEP_ABORT;
    }
    free(lit);
    *next = p;
    long ms = ((long)dt.hour * 3600 + dt.minute * 60 + dt.second) * 1000 + (long)(dt.frac / 10000);
    if (tds_writer_flush(s->w, TDS_FLUSH_FULL) != 0)
        return STEP_CLOSE;
    if (s->hooks.wait(s->hooks.ctx, ms))
        return STEP_CANCEL;
    return STEP_NEXT;
}

static step_result emulate_exec(tds_session *s, const char *sql, size_t len, size_t pos, size_t end,
                                unsigned line)
{
    size_t p = skip_ws(sql, len, pos);
    size_t e = p;
    while (e < end && (is_ident(sql[e]) || sql[e] == '.' || sql[e] == '[' || sql[e] == ']'))
        e++;
    char name[128];
    snprintf(name, sizeof(name), "%.*s", (int)(e - p), sql + p);
    const char *base = strrchr(name, '.');
    base = base ? base + 1 : name;
    if (strcasecmp(base, "sqlgate_test_knob") == 0) {
        char **args;
        size_t n;
        if (parse_args(sql, e, end, &args, &n) != 0 || n != 2) {
            if (n)
                free_args(args, n);
            emit_error(s, 201, "Procedure sqlgate_test_knob expects 'name', value.", line);
            return STEP_NEXT;
        }
        char *endp;
        long v = strtol(args[1], &endp, 10);
        if (*endp != '\0' || s->hooks.set_knob(s->hooks.ctx, args[0], v) != 0) {
            char msg[256];
            snprintf(msg, sizeof(msg), "sqlgate_test_knob: unknown knob '%s' or bad value.",
                     args[0]);
            emit_error(s, 50000, msg, line);
        } else {
            emit_done(s, 0, 0);
        }
        free_args(args, n);
        return STEP_NEXT;
    }
    char msg[256];
    snprintf(msg, sizeof(msg), "Could not find stored procedure '%s'.", name);
    emit_error(s, 2812, msg, line);
    return STEP_ABORT;
}

static step_result step_error(tds_session *s, int rc, unsigned line);

/* SET options the session keeps (others are accepted and ignored): the value
 * is the rest of the statement between pos and end. */
static void emulate_set(tds_session *s, const char *sql, size_t len, size_t pos, size_t end)
{
    size_t oe = word_end(sql, len, pos);
    size_t v = skip_ws(sql, len, oe);
    size_t ve = end;
    while (ve > v && isspace((unsigned char)sql[ve - 1]))
        ve--;
    char value[64];
    snprintf(value, sizeof value, "%.*s", (int)(ve - v), sql + v);
    if (word_eq(sql, pos, oe, "LANGUAGE")) {
        char *q = value;
        size_t n = strlen(q);
        if (n >= 2 && (q[0] == '\'' || q[0] == '[')) {
            q[n - 1] = '\0';
            q++;
        }
        snprintf(s->language, sizeof s->language, "%s", q);
    } else if (word_eq(sql, pos, oe, "LOCK_TIMEOUT")) {
        s->lock_timeout = strtol(value, NULL, 10);
    } else if (word_eq(sql, pos, oe, "NOCOUNT")) {
        s->nocount = strncasecmp(value, "ON", 2) == 0;
    }
}

/* CREATE TABLE #name (...): a temporary table, private to the session and
 * dropped by sp_reset_connection or at logout, as on SQL Server. rewrite()
 * turns every "#name" into "_name", so later statements find it (SQLite
 * looks in the temp schema first); only the CREATE needs TEMP added, which
 * rewrite() cannot do in place. Returns false when the statement is not one. */
static bool create_hash_table(tds_session *s, const char *sql, size_t len, size_t e, unsigned line,
                              size_t *next, step_result *res)
{
    size_t p = skip_ws(sql, len, e);
    size_t te = word_end(sql, len, p);
    if (!word_eq(sql, p, te, "TABLE"))
        return false;
    size_t h = skip_ws(sql, len, te);
    if (h >= len || sql[h] != '#')
        return false;
    *next = simple_stmt_end(s->rw, len, h);
    size_t n = *next - h;
    char *stmt = malloc(n + 32);
    if (stmt == NULL) {
        emit_error(s, 701, "There is insufficient system memory to run this query.", line);
        *res = STEP_ABORT;
        return true;
    }
    snprintf(stmt, n + 32, "CREATE TEMP TABLE %.*s", (int)n, s->rw + h);
    int rc = sqlite3_exec(s->db, stmt, NULL, NULL, NULL);
    free(stmt);
    if (rc != SQLITE_OK) {
        *res = step_error(s, rc, line);
        return true;
    }
    emit_done(s, 0, 0);
    return true;
}

static const tds_param *find_param(tds_session *s, const char *name);

static void free_vars(tds_session *s)
{
    for (size_t i = 0; i < s->nvars; i++) {
        free(s->vars[i].name);
        free((void *)s->vars[i].value.p);
    }
    free(s->vars);
    s->vars = NULL;
    s->nvars = 0;
}

/* The literal at sql[p..end) as a value: [N]'text', 0x<hex>, NULL or a
 * number. Text and blobs are new memory (v->p). Returns 0 or -1. */
static int read_literal(const char *sql, size_t p, size_t end, tds_value *v)
{
    memset(v, 0, sizeof *v);
    while (end > p && isspace((unsigned char)sql[end - 1]))
        end--;
    if (p < end && (sql[p] == '\'' ||
                    ((sql[p] == 'N' || sql[p] == 'n') && p + 1 < end && sql[p + 1] == '\''))) {
        size_t q = p;
        char *t = read_string(sql, end, &q);
        if (t == NULL || q != end) {
            free(t);
            return -1;
        }
        v->kind = TDS_V_TEXT;
        v->p = (const uint8_t *)t;
        v->n = strlen(t);
        return 0;
    }
    if (end - p >= 2 && sql[p] == '0' && (sql[p + 1] == 'x' || sql[p + 1] == 'X')) {
        size_t digits = end - p - 2;
        if (digits % 2 != 0)
            return -1;
        uint8_t *b = malloc(digits / 2 + 1);
        if (b == NULL)
            return -1;
        for (size_t i = 0; i < digits / 2; i++) {
            char hx[3] = {sql[p + 2 + 2 * i], sql[p + 3 + 2 * i], '\0'};
            char *stop;
            b[i] = (uint8_t)strtoul(hx, &stop, 16);
            if (*stop != '\0') {
                free(b);
                return -1;
            }
        }
        v->kind = TDS_V_BLOB;
        v->p = b;
        v->n = digits / 2;
        return 0;
    }
    if (word_eq(sql, p, end, "NULL"))
        return 0;
    char num[64];
    if (end - p == 0 || end - p >= sizeof num)
        return -1;
    snprintf(num, sizeof num, "%.*s", (int)(end - p), sql + p);
    char *stop;
    errno = 0;
    long long i = strtoll(num, &stop, 10);
    if (*stop == '\0' && errno == 0) {
        v->kind = TDS_V_INT;
        v->i = i;
        return 0;
    }
    double d = strtod(num, &stop);
    if (*stop != '\0')
        return -1;
    v->kind = TDS_V_REAL;
    v->d = d;
    return 0;
}

/* DECLARE @name [AS] type [= literal] [, ...]: variables for the rest of
 * the request, found like sp_executesql's parameters (SET @x and
 * expressions as initial values are not supported). */
static step_result emulate_declare(tds_session *s, const char *sql, size_t pos, size_t end,
                                   unsigned line)
{
    size_t p = skip_ws(sql, end, pos);
    for (;;) {
        if (p >= end || sql[p] != '@')
            goto unsupported;
        size_t ne = word_end(sql, end, p);
        char *name = strndup(sql + p, ne - p);
        if (name == NULL)
            goto unsupported;
        if (find_param(s, name) != NULL) {
            char msg[400];
            snprintf(msg, sizeof msg,
                     "The variable name '%.200s' has already been declared. Variable names must "
                     "be unique within a query batch or stored procedure.",
                     name);
            free(name);
            emit_error(s, 134, msg, line);
            return STEP_ABORT;
        }
        p = skip_ws(sql, end, ne);
        size_t we = word_end(sql, end, p);
        if (word_eq(sql, p, we, "AS"))
            p = skip_ws(sql, end, we);
        /* The type runs to a top-level '=' or ','. */
        size_t te = p;
        int depth = 0;
        while (te < end && !(depth == 0 && (sql[te] == '=' || sql[te] == ','))) {
            depth += sql[te] == '(' ? 1 : sql[te] == ')' ? -1 : 0;
            te++;
        }
        tds_param v;
        memset(&v, 0, sizeof v);
        v.name = name;
        if (tds_type_parse(sql + p, te - p, &v.type) != 0) {
            free(name);
            goto unsupported;
        }
        p = te;
        if (p < end && sql[p] == '=') {
            /* The literal runs to a ',' outside quotes. */
            size_t ls = skip_ws(sql, end, p + 1), le = ls;
            bool quoted = false;
            while (le < end && (quoted || sql[le] != ',')) {
                if (sql[le] == '\'')
                    quoted = !quoted;
                le++;
            }
            if (read_literal(sql, ls, le, &v.value) != 0) {
                free(name);
                goto unsupported;
            }
            p = le;
        }
        tds_param *nv = realloc(s->vars, (s->nvars + 1) * sizeof *nv);
        if (nv == NULL) {
            free(name);
            free((void *)v.value.p);
            goto unsupported;
        }
        s->vars = nv;
        s->vars[s->nvars++] = v;
        p = skip_ws(sql, end, p);
        if (p >= end)
            return STEP_NEXT;
        if (sql[p] != ',')
            goto unsupported;
        p = skip_ws(sql, end, p + 1);
    }
unsupported:
    emit_error(s, 50000,
               "sqlgate TDS test server: only DECLARE @name type [= literal] [, ...] is "
               "supported.",
               line);
    return STEP_ABORT;
}

/* Handles statements SQLite cannot run. Returns true if the word at pos was one
 * (then *next is set and *res is the outcome). */
static bool emulate(tds_session *s, const char *sql, size_t len, size_t pos, unsigned line,
                    size_t *next, step_result *res)
{
    size_t e = word_end(sql, len, pos);
    *res = STEP_NEXT;
    if (word_eq(sql, pos, e, "SET")) {
        size_t p = skip_ws(sql, len, e);
        if (p < len && sql[p] == '@') {
            emit_error(s, 50000, "sqlgate TDS test server: variables are not supported.", line);
            *res = STEP_ABORT;
        }
        *next = simple_stmt_end(sql, len, e);
        emulate_set(s, sql, len, p, *next);
        return true;
    }
    if (word_eq(sql, pos, e, "CREATE") && create_hash_table(s, sql, len, e, line, next, res))
        return true;
    if (word_eq(sql, pos, e, "GO")) {
        *next = e;
        return true;
    }
    if (word_eq(sql, pos, e, "WAITFOR")) {
        *next = simple_stmt_end(sql, len, e);
        *res = emulate_waitfor(s, sql, len, e, line, next);
        return true;
    }
    if (word_eq(sql, pos, e, "RAISERROR")) {
        *next = simple_stmt_end(sql, len, e);
        *res = emulate_raiserror(s, sql, len, e, *next, line);
        return true;
    }
    if (word_eq(sql, pos, e, "THROW")) {
        *next = simple_stmt_end(sql, len, e);
        *res = emulate_throw(s, sql, e, *next, line);
        return true;
    }
    if (word_eq(sql, pos, e, "PRINT")) {
        *next = simple_stmt_end(sql, len, e);
        size_t p = skip_ws(sql, len, e);
        char *m = read_string(sql, len, &p);
        if (m == NULL) {
            char tmp[256];
            snprintf(tmp, sizeof(tmp), "%.*s", (int)(*next - p), sql + p);
            emit_message(s, 0, 0, 1, tmp, line);
        } else {
            emit_message(s, 0, 0, 1, m, line);
            free(m);
        }
        return true;
    }
    if (word_eq(sql, pos, e, "BEGIN")) {
        size_t p = skip_ws(sql, len, e);
        size_t we = word_end(sql, len, p);
        if (p >= len || sql[p] == ';' || word_eq(sql, p, we, "TRAN") ||
            word_eq(sql, p, we, "TRANSACTION") || word_eq(sql, p, we, "DEFERRED") ||
            word_eq(sql, p, we, "IMMEDIATE") || word_eq(sql, p, we, "EXCLUSIVE")) {
            *next = skip_tran_words(sql, len, e);
            *res = tran_begin(s, line);
        } else {
            emit_error(s, 50000, "sqlgate TDS test server: BEGIN ... END blocks are not supported.",
                       line);
            *next = len;
            *res = STEP_ABORT;
        }
        return true;
    }
    if (word_eq(sql, pos, e, "COMMIT") || word_eq(sql, pos, e, "ROLLBACK") ||
        word_eq(sql, pos, e, "END")) {
        size_t p = skip_ws(sql, len, e);
        size_t we = word_end(sql, len, p);
        if (word_eq(sql, pos, e, "ROLLBACK") && word_eq(sql, p, we, "TO")) {
            return false; /* SQLite's ROLLBACK TO savepoint */
        }
        if (word_eq(sql, pos, e, "END") && !word_eq(sql, p, we, "TRAN") &&
            !word_eq(sql, p, we, "TRANSACTION")) {
            emit_error(s, 102, "Incorrect syntax near 'END'.", line);
            *next = len;
            *res = STEP_ABORT;
            return true;
        }
        *next = skip_tran_words(sql, len, e);
        *res = tran_end(s, !word_eq(sql, pos, e, "ROLLBACK"), line);
        return true;
    }
    if (word_eq(sql, pos, e, "IF")) {
        /* Only IF @@TRANCOUNT > 0 COMMIT|ROLLBACK [TRAN] */
        size_t p = skip_ws(sql, len, e);
        size_t we = word_end(sql, len, p);
        bool ok = word_eq(sql, p, we, "@@TRANCOUNT");
        p = skip_ws(sql, len, we);
        ok = ok && p < len && sql[p] == '>';
        p = skip_ws(sql, len, p + 1);
        ok = ok && p < len && sql[p] == '0';
        p = skip_ws(sql, len, p + 1);
        we = word_end(sql, len, p);
        bool commit = word_eq(sql, p, we, "COMMIT");
        ok = ok && (commit || word_eq(sql, p, we, "ROLLBACK"));
        if (!ok) {
            emit_error(s, 50000,
                       "sqlgate TDS test server: only IF @@TRANCOUNT > 0 COMMIT|ROLLBACK is "
                       "supported.",
                       line);
            *next = len;
            *res = STEP_ABORT;
            return true;
        }
        *next = skip_tran_words(sql, len, we);
        if (s->trancount > 0)
            *res = tran_end(s, commit, line);
        return true;
    }
    if (word_eq(sql, pos, e, "EXEC") || word_eq(sql, pos, e, "EXECUTE")) {
        *next = simple_stmt_end(sql, len, e);
        *res = emulate_exec(s, sql, len, e, *next, line);
        return true;
    }
    if (word_eq(sql, pos, e, "USE")) {
        *next = simple_stmt_end(sql, len, e);
        size_t p = skip_ws(sql, len, e);
        size_t q = *next;
        while (q > p && isspace((unsigned char)sql[q - 1]))
            q--;
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(q - p), sql + p);
        char *n = name;
        size_t nl = strlen(n);
        if (nl >= 2 && n[0] == '[' && n[nl - 1] == ']') {
            n[nl - 1] = '\0';
            n++;
        }
        if (strcasecmp(n, s->dbname) != 0 && strcasecmp(n, "master") != 0 &&
            strcasecmp(n, "tempdb") != 0) {
            char msg[400];
            snprintf(msg, sizeof(msg),
                     "Database '%.200s' does not exist. Make sure that the name is entered "
                     "correctly.",
                     n);
            emit_error(s, 911, msg, line);
            *res = STEP_ABORT;
        } else {
            flush_pending(s);
            char old[sizeof s->curdb];
            snprintf(old, sizeof old, "%s", s->curdb);
            snprintf(s->curdb, sizeof s->curdb, "%.*s", (int)sizeof s->curdb - 1,
                     strcasecmp(n, s->dbname) == 0 ? s->dbname : n);
            tds_tok_env_str(&s->w->tok, TDS_ENV_DATABASE, s->curdb, old);
            emit_done(s, 0, 0);
        }
        return true;
    }
    if (word_eq(sql, pos, e, "DECLARE")) {
        *next = simple_stmt_end(sql, len, e);
        *res = emulate_declare(s, sql, e, *next, line);
        return true;
    }
    return false;
}

/* ---- SQLite statements ---------------------------------------------------------------- */

static const tds_param *find_param(tds_session *s, const char *name)
{
    for (size_t i = 0; i < s->nvars; i++)
        if (strcasecmp(s->vars[i].name, name) == 0)
            return &s->vars[i];
    for (size_t i = 2; i < s->nparams; i++) {
        const char *pn = s->params[i].name;
        if ((pn == NULL || pn[0] == '\0') && i - 2 < s->ndecl)
            pn = s->decl_names[i - 2];
        if (pn != NULL && strcasecmp(pn, name) == 0)
            return &s->params[i];
    }
    return NULL;
}

static int bind_params(tds_session *s, sqlite3_stmt *st, char *missing, size_t mlen)
{
    int n = sqlite3_bind_parameter_count(st);
    for (int i = 1; i <= n; i++) {
        const char *name = sqlite3_bind_parameter_name(st, i);
        const tds_param *p = name ? find_param(s, name) : NULL;
        if (p == NULL) {
            snprintf(missing, mlen, "%s", name ? name : "?");
            return -1;
        }
        const tds_value *v = &p->value;
        int rc;
        switch (v->kind) {
        case TDS_V_INT:
            rc = sqlite3_bind_int64(st, i, v->i);
            break;
        case TDS_V_REAL:
            rc = sqlite3_bind_double(st, i, v->d);
            break;
        case TDS_V_TEXT:
            rc = sqlite3_bind_text64(st, i, (const char *)v->p, v->n, SQLITE_STATIC, SQLITE_UTF8);
            break;
        case TDS_V_BLOB:
            rc = sqlite3_bind_blob64(st, i, v->p, v->n, SQLITE_STATIC);
            break;
        default:
            rc = sqlite3_bind_null(st, i);
            break;
        }
        if (rc != SQLITE_OK) {
            snprintf(missing, mlen, "%s", name);
            return -1;
        }
    }
    return 0;
}

static tds_value value_of(sqlite3_value *sv)
{
    tds_value v;
    memset(&v, 0, sizeof(v));
    switch (sqlite3_value_type(sv)) {
    case SQLITE_INTEGER:
        v.kind = TDS_V_INT;
        v.i = sqlite3_value_int64(sv);
        break;
    case SQLITE_FLOAT:
        v.kind = TDS_V_REAL;
        v.d = sqlite3_value_double(sv);
        break;
    case SQLITE_TEXT:
        v.kind = TDS_V_TEXT;
        v.p = sqlite3_value_text(sv);
        v.n = (size_t)sqlite3_value_bytes(sv);
        break;
    case SQLITE_BLOB:
        v.kind = TDS_V_BLOB;
        v.p = sqlite3_value_blob(sv);
        v.n = (size_t)sqlite3_value_bytes(sv);
        if (v.p == NULL)
            v.p = (const uint8_t *)"";
        break;
    default:
        v.kind = TDS_V_NULL;
        break;
    }
    return v;
}

/* Looks for "AS <name>" in sql[0..len): an expression column with an alias
 * keeps its name, one without gets "" as in SQL Server. On a match, *as_off is
 * the offset of AS. */
static bool find_alias(const char *sql, size_t len, const char *name, size_t *as_off)
{
    size_t nl = strlen(name);
    if (nl == 0)
        return false;
    for (size_t p = 0; p + 2 < len; p++) {
        if (strncasecmp(sql + p, "AS", 2) != 0 || (p > 0 && is_ident(sql[p - 1])) ||
            !isspace((unsigned char)sql[p + 2]))
            continue;
        size_t q = skip_ws(sql, len, p + 2);
        bool quoted =
            q < len && (sql[q] == '[' || sql[q] == '"' || sql[q] == '\'' || sql[q] == '`');
        if (quoted)
            q++;
        if (len - q < nl || strncasecmp(sql + q, name, nl) != 0)
            continue;
        size_t after = q + nl;
        if (quoted ? (after < len && strchr("]\"'`", sql[after]) != NULL)
                   : (after >= len || !is_ident(sql[after]))) {
            *as_off = p;
            return true;
        }
    }
    return false;
}

/* Finds name (exact bytes) in sql[0..len); returns its offset or len. */
static size_t find_text(const char *sql, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (size_t p = 0; nl > 0 && p + nl <= len; p++)
        if (memcmp(sql + p, name, nl) == 0)
            return p;
    return len;
}

/* If orig[a..b) is "CAST(... AS type)", parses the type as written. */
static bool cast_type(const char *orig, size_t a, size_t b, tds_type *out)
{
    while (b > a && isspace((unsigned char)orig[b - 1]))
        b--;
    a = skip_ws(orig, b, a);
    size_t e = word_end(orig, b, a);
    if (!word_eq(orig, a, e, "CAST") || b - a < 8 || orig[b - 1] != ')')
        return false;
    /* The type runs from the last top-level " AS " to the closing parenthesis. */
    for (size_t p = b - 1; p > e + 2; p--) {
        if ((orig[p] == 'S' || orig[p] == 's') && (orig[p - 1] == 'A' || orig[p - 1] == 'a') &&
            isspace((unsigned char)orig[p - 2]) && p + 1 < b && isspace((unsigned char)orig[p + 1]))
            return tds_type_parse(orig + p + 1, b - 1 - (p + 1), out) == 0;
    }
    return false;
}

/* The expression of a column without a table origin, through the original
 * text: returns true with the type if it is a CAST to a SQL Server type. */
static bool column_cast(tds_session *s, const char *name, bool alias, size_t as_off, tds_type *out)
{
    if (s->orig == NULL)
        return false;
    const char *rw = s->rw + s->stmt_start;
    size_t len = s->stmt_end - s->stmt_start;
    size_t a, b;
    if (alias) {
        /* expression ends before AS; starts at its CAST */
        b = as_off;
        while (b > 0 && isspace((unsigned char)rw[b - 1]))
            b--;
        if (b == 0 || rw[b - 1] != ')')
            return false;
        int depth = 0;
        size_t p = b;
        while (p > 0) {
            p--;
            if (rw[p] == ')')
                depth++;
            else if (rw[p] == '(' && --depth == 0)
                break;
        }
        if (depth != 0)
            return false;
        a = p;
        while (a > 0 && is_ident(rw[a - 1]))
            a--;
    } else {
        a = find_text(rw, len, name);
        if (a == len)
            return false;
        b = a + strlen(name);
    }
    return cast_type(s->orig + s->stmt_start, a, b, out);
}

typedef struct col_stats {
    bool has_int, has_real, has_text, has_blob, int_wide;
    size_t max_units, max_bytes;
} col_stats;

static void stats_add(col_stats *c, sqlite3_value *v)
{
    switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER: {
        sqlite3_int64 x = sqlite3_value_int64(v);
        c->has_int = true;
        if (x < INT32_MIN || x > INT32_MAX)
            c->int_wide = true;
        break;
    }
    case SQLITE_FLOAT:
        c->has_real = true;
        break;
    case SQLITE_TEXT: {
        c->has_text = true;
        const char *t = (const char *)sqlite3_value_text(v);
        size_t u = tds_utf16_units(t, (size_t)sqlite3_value_bytes(v));
        if (u > c->max_units)
            c->max_units = u;
        break;
    }
    case SQLITE_BLOB:
        c->has_blob = true;
        if ((size_t)sqlite3_value_bytes(v) > c->max_bytes)
            c->max_bytes = (size_t)sqlite3_value_bytes(v);
        break;
    default:
        break;
    }
}

static tds_type infer_type(const col_stats *c)
{
    tds_type t;
    memset(&t, 0, sizeof(t));
    if (c->has_text || (!c->has_blob && !c->has_real && !c->has_int)) {
        t.st = TDS_ST_NVARCHAR;
        t.len = 4000;
        t.is_max = c->max_units > 4000;
    } else if (c->has_blob) {
        t.st = TDS_ST_VARBINARY;
        t.len = 8000;
        t.is_max = c->max_bytes > 8000;
    } else if (c->has_real) {
        t.st = TDS_ST_FLOAT;
    } else {
        t.st = c->int_wide ? TDS_ST_BIGINT : TDS_ST_INT;
    }
    return t;
}

/* Writes one row; on a conversion error rolls the buffer back to the row start. */
static int write_row(tds_session *s, const tds_column *cols, int ncol, sqlite3_value **vals,
                     int *errnum, char *msg, size_t msglen)
{
    tds_buf *b = &s->w->tok;
    size_t start = b->len;
    tds_buf_u8(b, TDS_TOK_ROW);
    for (int i = 0; i < ncol; i++) {
        tds_value v = value_of(vals[i]);
        if (tds_value_write(b, &cols[i].type, &v, s->ver, errnum, msg, msglen) != 0) {
            b->len = start < b->len ? start : b->len;
            return -1;
        }
    }
    return 0;
}

static bool is_dml(const char *sql)
{
    size_t len = strlen(sql);
    size_t p = skip_ws(sql, len, 0);
    size_t e = word_end(sql, len, p);
    return word_eq(sql, p, e, "INSERT") || word_eq(sql, p, e, "UPDATE") ||
           word_eq(sql, p, e, "DELETE") || word_eq(sql, p, e, "REPLACE") ||
           word_eq(sql, p, e, "WITH");
}

static step_result step_error(tds_session *s, int rc, unsigned line)
{
    if (rc == SQLITE_INTERRUPT)
        return STEP_CANCEL;
    int number;
    char msg[600];
    bool abort_batch = map_sqlite_error(s->db, rc, &number, msg, sizeof(msg));
    emit_error(s, number, msg, line);
    sync_trancount(s);
    return abort_batch ? STEP_ABORT : STEP_NEXT;
}

static void free_rows(sqlite3_value ***rows, size_t nrows, int ncol)
{
    for (size_t r = 0; r < nrows; r++) {
        for (int c = 0; c < ncol; c++)
            sqlite3_value_free(rows[r][c]);
        free(rows[r]);
    }
    free(rows);
}

static step_result run_result_set(tds_session *s, sqlite3_stmt *st, unsigned line)
{
    int ncol = sqlite3_column_count(st);
    step_result res = STEP_NEXT;
    sqlite3_value ***rows = calloc(PREFETCH_ROWS, sizeof(*rows));
    tds_column *cols = calloc((size_t)ncol, sizeof(*cols));
    col_stats *stats = calloc((size_t)ncol, sizeof(*stats));
    sqlite3_value **cur = calloc((size_t)ncol, sizeof(*cur));
    size_t nrows = 0;
    int rc = SQLITE_ROW;
    if (rows == NULL || cols == NULL || stats == NULL || cur == NULL) {
        emit_error(s, 701, "There is insufficient system memory to run this query.", line);
        res = STEP_ABORT;
        goto done;
    }
    while (nrows < PREFETCH_ROWS && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rows[nrows] = calloc((size_t)ncol, sizeof(sqlite3_value *));
        if (rows[nrows] == NULL) {
            emit_error(s, 701, "There is insufficient system memory to run this query.", line);
            res = STEP_ABORT;
            goto done;
        }
        nrows++;
        for (int c = 0; c < ncol; c++) {
            rows[nrows - 1][c] = sqlite3_value_dup(sqlite3_column_value(st, c));
            if (rows[nrows - 1][c] == NULL) {
                emit_error(s, 701, "There is insufficient system memory to run this query.", line);
                res = STEP_ABORT;
                goto done;
            }
            stats_add(&stats[c], rows[nrows - 1][c]);
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        res = step_error(s, rc, line);
        goto done;
    }
    const char *text = s->rw + s->stmt_start;
    size_t text_len = s->stmt_end - s->stmt_start;
    for (int c = 0; c < ncol; c++) {
        const char *decl = sqlite3_column_decltype(st, c);
        const char *name = sqlite3_column_name(st, c);
        bool from_table = sqlite3_column_table_name(st, c) != NULL;
        size_t as_off = 0;
        bool alias = !from_table && name != NULL && find_alias(text, text_len, name, &as_off);
        /* For "@p AS x" the word before AS names the parameter. */
        char before[128] = "";
        if (alias) {
            size_t b = as_off;
            while (b > 0 && isspace((unsigned char)text[b - 1]))
                b--;
            size_t a = b;
            while (a > 0 && is_ident(text[a - 1]))
                a--;
            snprintf(before, sizeof(before), "%.*s", (int)(b - a), text + a);
        }
        const tds_param *p = NULL;
        if (!from_table && name != NULL)
            p = find_param(s, alias && before[0] == '@' ? before : name);
        if (decl != NULL && tds_type_parse(decl, strlen(decl), &cols[c].type) == 0) {
            /* declared type */
        } else if (!from_table && name != NULL &&
                   column_cast(s, name, alias, as_off, &cols[c].type)) {
            /* CAST(... AS type) */
        } else if (p != NULL && p->value.kind != TDS_V_NULL) {
            cols[c].type = p->type;
        } else {
            cols[c].type = infer_type(&stats[c]);
        }
        cols[c].name = (from_table || alias) ? (char *)name : (char *)"";
    }
    flush_pending(s);
    tds_tok_colmetadata(&s->w->tok, cols, (size_t)ncol, s->ver);
    uint64_t sent = 0;
    int errnum = 0;
    char msg[300];
    for (size_t r = 0; r < nrows; r++) {
        if (write_row(s, cols, ncol, rows[r], &errnum, msg, sizeof(msg)) != 0)
            goto conv_error;
        sent++;
        if (sent == 1 && (res = fire_fault(s)) != STEP_NEXT)
            goto done;
        if (s->w->tok.len >= s->w->packet_size && (res = flush_rows(s)) != STEP_NEXT)
            goto done;
        if (sent % CANCEL_CHECK_ROWS == 0 && s->hooks.cancelled(s->hooks.ctx)) {
            res = STEP_CANCEL;
            goto done;
        }
    }
    if (nrows == PREFETCH_ROWS) {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            for (int c = 0; c < ncol; c++)
                cur[c] = sqlite3_column_value(st, c);
            if (write_row(s, cols, ncol, cur, &errnum, msg, sizeof(msg)) != 0)
                goto conv_error;
            sent++;
            if (s->w->tok.len >= s->w->packet_size && (res = flush_rows(s)) != STEP_NEXT)
                goto done;
            if (sent % CANCEL_CHECK_ROWS == 0 && s->hooks.cancelled(s->hooks.ctx)) {
                res = STEP_CANCEL;
                goto done;
            }
        }
        if (rc != SQLITE_DONE) {
            res = step_error(s, rc, line);
            goto done;
        }
    }
    s->last_rowcount = (int64_t)sent;
    emit_done(s, TDS_DONE_COUNT, sent);
    goto done;
conv_error:
    emit_message(s, errnum, 16, 1, msg, line);
    emit_done(s, TDS_DONE_ERROR | TDS_DONE_COUNT, sent);
    res = STEP_ABORT;
done:
    if (rows != NULL)
        free_rows(rows, nrows, ncol);
    free(cols);
    free(stats);
    free(cur);
    return res;
}

static step_result run_statement(tds_session *s, sqlite3_stmt *st, unsigned line)
{
    if (sqlite3_column_count(st) > 0)
        return run_result_set(s, st, line);
    int rc;
    /* Statements without columns never yield rows; the bound is belt and braces. */
    for (int guard = 0; guard < 1000000 && (rc = sqlite3_step(st)) == SQLITE_ROW; guard++)
        ;
    if (rc != SQLITE_DONE)
        return step_error(s, rc, line);
    sync_trancount(s);
    if (is_dml(sqlite3_sql(st))) {
        s->last_rowcount = sqlite3_changes64(s->db);
        /* NOCOUNT's purpose: inside a procedure (sp_executesql) SQL Server
         * sends no DONEINPROC at all for a statement without results. */
        if (!(s->nocount && s->rpc))
            emit_done(s, TDS_DONE_COUNT, (uint64_t)s->last_rowcount);
    } else {
        s->last_rowcount = 0;
        emit_done(s, 0, 0);
    }
    return STEP_NEXT;
}

/* Prepares the next SQLite statement at rw+pos; splits a T-SQL batch without
 * semicolons where SQLite stops at a statement keyword. */
static int prepare_next(tds_session *s, const char *rw, size_t len, size_t pos, sqlite3_stmt **st,
                        size_t *next, size_t *err_off)
{
    const char *tail = NULL;
    *err_off = pos;
    int rc = sqlite3_prepare_v3(s->db, rw + pos, (int)(len - pos), 0, st, &tail);
    if (rc == SQLITE_OK) {
        *next = tail ? (size_t)(tail - rw) : len;
        return SQLITE_OK;
    }
    int off = sqlite3_error_offset(s->db);
    if (off > 0 && (size_t)off < len - pos) {
        size_t a = pos + (size_t)off;
        size_t e = word_end(rw, len, a);
        if (e > a && is_stmt_keyword(rw, a, e)) {
            const char *t2 = NULL;
            sqlite3_stmt *st2 = NULL;
            if (sqlite3_prepare_v3(s->db, rw + pos, off, 0, &st2, &t2) == SQLITE_OK && st2) {
                *st = st2;
                *next = a;
                return SQLITE_OK;
            }
            sqlite3_finalize(st2);
            /* restore the first error message */
            sqlite3_finalize(*st);
            *st = NULL;
            rc = sqlite3_prepare_v3(s->db, rw + pos, (int)(len - pos), 0, st, &tail);
            off = sqlite3_error_offset(s->db);
        }
    }
    *err_off = off >= 0 ? pos + (size_t)off : pos;
    return rc;
}

static step_result run_text(tds_session *s, const char *sql)
{
    size_t len = strlen(sql);
    char *rw = rewrite(sql, len);
    if (rw == NULL) {
        emit_error(s, 701, "There is insufficient system memory to run this query.", 1);
        return STEP_ABORT;
    }
    step_result res = STEP_NEXT;
    size_t pos = 0;
    s->orig = sql;
    s->rw = rw;
    for (size_t guard = 0; guard <= len; guard++) {
        pos = skip_ws(sql, len, pos);
        while (pos < len && sql[pos] == ';')
            pos = skip_ws(sql, len, pos + 1);
        if (pos >= len)
            break;
        if (s->hooks.cancelled(s->hooks.ctx)) {
            res = STEP_CANCEL;
            break;
        }
        unsigned line = line_at(sql, pos);
        size_t next = len;
        if (emulate(s, sql, len, pos, line, &next, &res)) {
            if (res != STEP_NEXT)
                break;
            pos = next > pos ? next : pos + 1;
            continue;
        }
        sqlite3_stmt *st = NULL;
        size_t err_off;
        int rc = prepare_next(s, rw, len, pos, &st, &next, &err_off);
        if (rc != SQLITE_OK) {
            res = step_error(s, rc, line_at(sql, err_off));
            sqlite3_finalize(st);
            if (res != STEP_NEXT)
                break;
            pos = len;
            break;
        }
        if (st == NULL) {
            pos = next > pos ? next : len;
            continue;
        }
        char missing[128];
        if (bind_params(s, st, missing, sizeof(missing)) != 0) {
            char msg[200];
            snprintf(msg, sizeof(msg), "Must declare the scalar variable \"%s\".", missing);
            emit_error(s, 137, msg, line);
            sqlite3_finalize(st);
            res = STEP_ABORT;
            break;
        }
        s->stmt_start = pos;
        s->stmt_end = next;
        res = run_statement(s, st, line);
        sqlite3_finalize(st);
        if (res != STEP_NEXT)
            break;
        pos = next > pos ? next : len;
    }
    s->orig = NULL;
    s->rw = NULL;
    free(rw);
    return res;
}

/* ---- requests ---------------------------------------------------------------------------- */

static void begin_request(tds_session *s, bool rpc, const tds_exec_faults *f)
{
    s->rpc = rpc;
    s->pending = false;
    s->any_error = false;
    s->faults = f;
    s->fault_fired = false;
    s->params = NULL;
    s->nparams = 0;
    s->decl_names = NULL;
    s->ndecl = 0;
}

static tds_exec_status end_request(tds_session *s, step_result res)
{
    free_vars(s);
    if (res == STEP_CLOSE)
        return TDS_EXEC_CLOSE;
    if (res == STEP_CANCEL)
        return TDS_EXEC_CANCELLED;
    if (fire_fault(s) == STEP_CLOSE)
        return TDS_EXEC_CLOSE;
    if (s->rpc) {
        flush_pending(s);
        tds_tok_returnstatus(&s->w->tok, s->any_error ? -6 : 0);
        tds_tok_done(&s->w->tok, TDS_TOK_DONEPROC, s->any_error ? TDS_DONE_ERROR : 0, 0xE0, 0,
                     s->ver);
    } else if (s->pending) {
        tds_tok_done(&s->w->tok, TDS_TOK_DONE, s->pend_status, 0xC1, s->pend_count, s->ver);
        s->pending = false;
    } else {
        tds_tok_done(&s->w->tok, TDS_TOK_DONE, s->any_error ? TDS_DONE_ERROR : 0, 0, 0, s->ver);
    }
    return TDS_EXEC_OK;
}

static bool injected_error(tds_session *s, const tds_exec_faults *f)
{
    if (f == NULL || f->raise_error == 0)
        return false;
    char msg[128];
    snprintf(msg, sizeof(msg), "Injected error %d (sqlgate TDS test server knob raise_error).",
             f->raise_error);
    emit_error(s, f->raise_error, msg, 1);
    return true;
}

tds_exec_status tds_session_batch(tds_session *s, const char *sql, const tds_exec_faults *f)
{
    begin_request(s, false, f);
    step_result res = STEP_NEXT;
    if (!injected_error(s, f))
        res = run_text(s, sql);
    return end_request(s, res);
}

bool tds_rpc_is_reset(const tds_rpc *rpc)
{
    if (rpc->proc_name == NULL)
        return false;
    const char *dot = strrchr(rpc->proc_name, '.');
    return strcasecmp(dot != NULL ? dot + 1 : rpc->proc_name, "sp_reset_connection") == 0;
}

/* Every temporary object (#tables, TEMP views, triggers, ...) is dropped. */
int tds_session_reset(tds_session *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    s->trancount = 0;
    for (;;) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(s->db,
                               "SELECT type, name FROM temp.sqlite_master "
                               "WHERE type IN ('table', 'view', 'trigger') LIMIT 1",
                               -1, &st, NULL) != SQLITE_OK)
            return -1;
        char drop[400] = "";
        if (sqlite3_step(st) == SQLITE_ROW) {
            const char *type = (const char *)sqlite3_column_text(st, 0);
            const char *name = (const char *)sqlite3_column_text(st, 1);
            char *q = sqlite3_mprintf("DROP %s temp.\"%w\"", type, name);
            if (q != NULL)
                snprintf(drop, sizeof drop, "%s", q);
            sqlite3_free(q);
        }
        sqlite3_finalize(st);
        if (drop[0] == '\0')
            break;
        if (sqlite3_exec(s->db, drop, NULL, NULL, NULL) != SQLITE_OK)
            return -1;
    }
    session_defaults(s);
    s->last_rowcount = 0;
    s->last_error = 0;
    return 0;
}

/* Parameter names from an sp_executesql declaration ("@a int, @b nvarchar(10)"). */
static int parse_decl(const char *decl, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    size_t len = strlen(decl);
    int depth = 0;
    bool expect_name = true;
    for (size_t p = 0; p < len;) {
        char c = decl[p];
        if (c == '(') {
            depth++;
        } else if (c == ')') {
            depth--;
        } else if (c == ',' && depth == 0) {
            expect_name = true;
        } else if (c == '@' && expect_name) {
            size_t e = word_end(decl, len, p);
            char **nn = realloc(*names, (*n + 1) * sizeof(char *));
            if (nn == NULL)
                return -1;
            *names = nn;
            nn[*n] = strndup(decl + p, e - p);
            if (nn[*n] == NULL)
                return -1;
            (*n)++;
            expect_name = false;
            p = e;
            continue;
        }
        p++;
    }
    return 0;
}

tds_exec_status tds_session_rpc(tds_session *s, const tds_rpc *rpc, const tds_exec_faults *f)
{
    begin_request(s, true, f);
    step_result res = STEP_NEXT;
    bool is_exec = rpc->proc_name == NULL ? rpc->proc_id == 10 : false;
    if (rpc->proc_name != NULL) {
        const char *n = rpc->proc_name;
        const char *dot = strrchr(n, '.');
        is_exec = strcasecmp(dot ? dot + 1 : n, "sp_executesql") == 0;
    }
    if (tds_rpc_is_reset(rpc)) {
        /* Query knobs never act on it (tds_server.c): no injected error. */
        if (tds_session_reset(s) != 0) {
            emit_error(s, 701, "sp_reset_connection failed.", 1);
            res = STEP_ABORT;
        }
        return end_request(s, res);
    }
    if (injected_error(s, f))
        return end_request(s, res);
    if (!is_exec) {
        char msg[300];
        if (rpc->proc_name)
            snprintf(msg, sizeof(msg), "Could not find stored procedure '%s'.", rpc->proc_name);
        else
            snprintf(msg, sizeof(msg), "Procedure id %u is not supported.", rpc->proc_id);
        emit_error(s, 2812, msg, 1);
        return end_request(s, res);
    }
    if (rpc->nparams < 1 || rpc->params[0].value.kind != TDS_V_TEXT) {
        emit_error(s, 214,
                   "Procedure expects parameter '@statement' of type 'ntext/nchar/nvarchar'.", 1);
        return end_request(s, res);
    }
    s->params = rpc->params;
    s->nparams = rpc->nparams;
    if (rpc->nparams >= 2 && rpc->params[1].value.kind == TDS_V_TEXT &&
        parse_decl((const char *)rpc->params[1].value.p, &s->decl_names, &s->ndecl) != 0) {
        emit_error(s, 701, "There is insufficient system memory to run this query.", 1);
        res = STEP_ABORT;
    } else {
        res = run_text(s, (const char *)rpc->params[0].value.p);
    }
    for (size_t i = 0; i < s->ndecl; i++)
        free(s->decl_names[i]);
    free(s->decl_names);
    s->decl_names = NULL;
    s->ndecl = 0;
    tds_exec_status st = end_request(s, res);
    s->params = NULL;
    s->nparams = 0;
    return st;
}
