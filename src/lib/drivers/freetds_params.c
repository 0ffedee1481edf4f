/* freetds_params: how a batch's parameters travel to SQL Server.
 *
 * Normally as an RPC call of sp_executesql: the statement, its parameter
 * declarations and each value as a typed RPC parameter, so a value is never
 * part of the SQL text. db-lib cannot send an empty string or binary as a
 * parameter, so those are declared as constants in the statement instead.
 * A batch of several DML statements (and no string holding a NUL byte) runs
 * as a plain batch whose parameters are declared in it with their values as
 * T-SQL literals (see ft_exec for why). Either way what is added goes on the statement's first
 * line, so the server's error line numbers stay the caller's.
 */
#include "freetds_int.h"
#include "../util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *declared_type(const sg_value *v)
{
    switch (v->type) {
    case SG_V_INT:
        return "bigint";
    case SG_V_FLOAT:
        return "float";
    case SG_V_BOOL:
        return "bit";
    case SG_V_BINARY:
        return "varbinary(max)";
    default:
        return "nvarchar(max)";
    }
}

/* db-lib sends a value of length 0 as NULL (dbrpcparam: "datalen 0 is a
 * NULL"), so an empty string or binary cannot travel as a parameter value. */
static bool is_empty(const sg_value *v)
{
    return (v->type == SG_V_TEXT || v->type == SG_V_BINARY) && v->u.s.len == 0;
}

/* sp_executesql's parameter list, e.g. "@id bigint,@name nvarchar(max)",
 * without the empty values. */
static char *declarations(const sg_param *params, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(params[i].name) + strlen(declared_type(&params[i].value)) + 3;
    char *d = malloc(len);
    if (d == NULL)
        return NULL;
    size_t used = 0;
    for (size_t i = 0; i < n; i++)
        if (!is_empty(&params[i].value))
            used += (size_t)snprintf(d + used, len - used, "%s@%s %s", used ? "," : "",
                                     params[i].name, declared_type(&params[i].value));
    d[used] = '\0';
    return d;
}

/* The statement sp_executesql runs: the empty values are declared in it as
 * constants ("DECLARE @p nvarchar(max) = N'';"), on the statement's first
 * line so that the server's error line numbers stay the caller's. Only the
 * parameter's name (an identifier) and a constant are added to the text,
 * never a value. New string; NULL when out of memory. */
static char *statement(const char *sql, const sg_param *params, size_t n)
{
    size_t len = strlen(sql) + 1;
    bool any = false;
    for (size_t i = 0; i < n; i++)
        if (is_empty(&params[i].value)) {
            len += strlen(params[i].name) + 40;
            any = true;
        }
    char *st = malloc(len + 16);
    if (st == NULL)
        return NULL;
    size_t used = 0;
    for (size_t i = 0; any && i < n; i++)
        if (is_empty(&params[i].value))
            used += (size_t)snprintf(
                st + used, len + 16 - used, "%s@%s %s", used ? ", " : "DECLARE ", params[i].name,
                params[i].value.type == SG_V_TEXT ? "nvarchar(max) = N''" : "varbinary(max) = 0x");
    snprintf(st + used, len + 16 - used, "%s%s", any ? "; " : "", sql);
    return st;
}

/* Appends the T-SQL literal of v to b: a number, N'text' (quotes doubled),
 * 0x hex, or NULL. Text holding a NUL byte never comes here (ft_inlinable). */
static bool put_literal(sg_buf *b, const sg_value *v)
{
    char num[40];
    switch (v->type) {
    case SG_V_INT:
        snprintf(num, sizeof num, "%lld", (long long)v->u.i);
        return sg_buf_append(b, num, strlen(num));
    case SG_V_FLOAT:
        snprintf(num, sizeof num, "%.17g", v->u.f);
        return sg_buf_append(b, num, strlen(num));
    case SG_V_BOOL:
        return sg_buf_append(b, v->u.b ? "1" : "0", 1);
    case SG_V_TEXT: {
        if (!sg_buf_append(b, "N'", 2))
            return false;
        for (size_t i = 0; i < v->u.s.len; i++) {
            char ch = v->u.s.ptr[i];
            bool ok = ch == '\'' ? sg_buf_append(b, "''", 2) : sg_buf_append(b, &ch, 1);
            if (!ok)
                return false;
        }
        return sg_buf_append(b, "'", 1);
    }
    case SG_V_BINARY: {
        static const char hex[] = "0123456789ABCDEF";
        if (!sg_buf_append(b, "0x", 2))
            return false;
        for (size_t i = 0; i < v->u.s.len; i++) {
            unsigned char byte = (unsigned char)v->u.s.ptr[i];
            char two[2] = {hex[byte >> 4], hex[byte & 15]};
            if (!sg_buf_append(b, two, 2))
                return false;
        }
        return true;
    }
    default:
        return sg_buf_append(b, "NULL", 4);
    }
}

/* Whether every value can be written into a batch's text: db-lib takes the
 * text as a C string, so a NUL byte in a string could not travel. */
bool ft_inlinable(const sg_param *params, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (params[i].value.type == SG_V_TEXT &&
            memchr(params[i].value.u.s.ptr, '\0', params[i].value.u.s.len) != NULL)
            return false;
    return true;
}

/* The batch run instead of sp_executesql when the statement holds several
 * DML statements (see ft_exec): the parameters declared as local variables
 * with their values as literals, "DECLARE @id bigint = 7, @s nvarchar(max)
 * = N'x'; ", on the first line so that error line numbers stay the caller's.
 * Each value is a literal of its declared type, so it stays data. New
 * string; NULL when out of memory. */
char *ft_inline_batch(const char *sql, const sg_param *params, size_t n)
{
    sg_buf b = {0};
    bool ok = sg_buf_append(&b, "DECLARE ", 8);
    for (size_t i = 0; ok && i < n; i++) {
        const char *type = declared_type(&params[i].value);
        ok = (i == 0 || sg_buf_append(&b, ", ", 2)) && sg_buf_append(&b, "@", 1) &&
             sg_buf_append(&b, params[i].name, strlen(params[i].name)) &&
             sg_buf_append(&b, " ", 1) && sg_buf_append(&b, type, strlen(type)) &&
             sg_buf_append(&b, " = ", 3) && put_literal(&b, &params[i].value);
    }
    ok = ok && sg_buf_append(&b, "; ", 2) && sg_buf_append(&b, sql, strlen(sql));
    if (!ok) {
        sg_buf_free(&b);
        return NULL;
    }
    size_t len;
    return sg_buf_steal(&b, &len);
}

/* db-lib sends SYBVARCHAR as NVARCHAR only up to 4000 bytes; longer text
 * would go as VARCHAR(8000) in the server's code page (cut at 8000 bytes,
 * characters outside the code page refused), so it goes as NTEXT. The
 * statement and the declarations follow the same rule as parameters. */
static int text_type(size_t len)
{
    return len > 4000 ? SYBNTEXT : SYBVARCHAR;
}

/* Values of the scalar parameters, which db-lib copies at dbrpcsend. */
typedef union param_slot {
    DBBIGINT i;
    DBFLT8 f;
    DBBIT b;
} param_slot;

int ft_send_rpc(sg_driver_conn *c, const char *sql, const sg_param *params, size_t n, sg_err *err)
{
    char *decl = declarations(params, n);
    char *stmt = statement(sql, params, n);
    param_slot *slots = calloc(n, sizeof *slots);
    char(*names)[140] = calloc(n, sizeof *names);
    int rc = -1;
    if (decl == NULL || stmt == NULL || slots == NULL || names == NULL) {
        sg_err_set(err, SG_INTERNAL, "out of memory");
        goto done;
    }
    /* A half-built RPC stays in the DBPROCESS until a dbrpcsend succeeds,
     * and every later dbrpcinit would fail: a connection whose RPC could not
     * be built is not reused. Without a declaration (every value was empty)
     * @params is left out, as sp_executesql allows. */
    if (dbrpcinit(c->dbp, "sp_executesql", 0) == FAIL ||
        dbrpcparam(c->dbp, "@stmt", 0, text_type(strlen(stmt)), -1, (DBINT)strlen(stmt),
                   (BYTE *)stmt) == FAIL ||
        (decl[0] != '\0' && dbrpcparam(c->dbp, "@params", 0, text_type(strlen(decl)), -1,
                                       (DBINT)strlen(decl), (BYTE *)decl) == FAIL)) {
        c->dead = true;
        ft_batch_error(c, err);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const sg_value *v = &params[i].value;
        if (is_empty(v))
            continue;
        snprintf(names[i], sizeof names[i], "@%s", params[i].name);
        RETCODE r;
        switch (v->type) {
        case SG_V_INT:
            slots[i].i = v->u.i;
            r = dbrpcparam(c->dbp, names[i], 0, SYBINT8, -1, -1, (BYTE *)&slots[i].i);
            break;
        case SG_V_FLOAT:
            slots[i].f = v->u.f;
            r = dbrpcparam(c->dbp, names[i], 0, SYBFLT8, -1, -1, (BYTE *)&slots[i].f);
            break;
        case SG_V_BOOL:
            slots[i].b = v->u.b ? 1 : 0;
            r = dbrpcparam(c->dbp, names[i], 0, SYBBIT, -1, -1, (BYTE *)&slots[i].b);
            break;
        case SG_V_TEXT:
            r = dbrpcparam(c->dbp, names[i], 0, text_type(v->u.s.len), -1, (DBINT)v->u.s.len,
                           (BYTE *)v->u.s.ptr);
            break;
        case SG_V_BINARY:
            /* VARBINARY is cut at 8000 bytes; IMAGE carries any length. */
            r = dbrpcparam(c->dbp, names[i], 0, v->u.s.len > 8000 ? SYBIMAGE : SYBVARBINARY, -1,
                           (DBINT)v->u.s.len, (BYTE *)v->u.s.ptr);
            break;
        default:
            r = dbrpcparam(c->dbp, names[i], 0, SYBVARCHAR, -1, 0, NULL);
            break;
        }
        if (r == FAIL) {
            c->dead = true;
            ft_batch_error(c, err);
            goto done;
        }
    }
    if (dbrpcsend(c->dbp) == FAIL || dbsqlok(c->dbp) == FAIL) {
        ft_batch_error(c, err);
        goto done;
    }
    rc = 0;
done:
    free(decl);
    free(stmt);
    free(slots);
    free(names);
    return rc;
}
