/* freetds_values: a result's columns and values, from db-lib to sg_value.
 *
 * Column metadata: the server's own type name (from the declaration FreeTDS
 * rebuilds from the wire, else from db-lib's type number), precision and
 * scale. Values: integers, bits and floats as numbers; text and binary
 * borrowed from db-lib's row buffer; dates and times as ISO 8601 text;
 * decimal, money, uniqueidentifier and the rest as db-lib's exact text.
 * sql_variant is refused (db-lib cannot read it).
 */
#include "freetds_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* TDS type numbers db-lib reports but its header has no names for:
 * uniqueidentifier (dbcoltype), sql_variant (dbcoltype and server type),
 * XML (server type; dbcoltype says 175, its long character form). */
#define SG_SYBUNIQUE   36
#define SG_SYBVARIANT  98
#define SG_SYBLONGCHAR 175
#define SG_SYBMSXML    241

static const char *type_name(int type, char *buf, size_t n)
{
    switch (type) {
    case SYBINT1:
        return "tinyint";
    case SYBINT2:
        return "smallint";
    case SYBINT4:
        return "int";
    case SYBINT8:
        return "bigint";
    case SYBBIT:
    case SYBBITN:
        return "bit";
    case SYBFLT8:
        return "float";
    case SYBREAL:
        return "real";
    case SYBDECIMAL:
        return "decimal";
    case SYBNUMERIC:
        return "numeric";
    case SYBMONEY:
        return "money";
    case SYBMONEY4:
        return "smallmoney";
    case SYBCHAR:
    case SYBVARCHAR:
        return "nvarchar"; /* only when db-lib gives no declaration (server_type) */
    case SYBTEXT:
        return "ntext";
    case SYBBINARY:
    case SYBVARBINARY:
        return "varbinary";
    case SYBIMAGE:
        return "image";
    case SYBMSDATE:
        return "date";
    case SYBMSTIME:
        return "time";
    case SYBMSDATETIME2:
        return "datetime2";
    case SYBMSDATETIMEOFFSET:
        return "datetimeoffset";
    case SYBDATETIME:
        return "datetime";
    case SYBDATETIME4:
        return "smalldatetime";
    case SG_SYBUNIQUE:
        return "uniqueidentifier";
    default:
        snprintf(buf, n, "type%d", type);
        return buf;
    }
}

static int grow_columns(sg_driver_conn *c, int n, sg_err *err)
{
    if (n <= c->cap)
        return 0;
    sg_column *cols = realloc(c->cols, (size_t)n * sizeof *cols);
    if (cols != NULL)
        c->cols = cols;
    sg_value *values = realloc(c->values, (size_t)n * sizeof *values);
    if (values != NULL)
        c->values = values;
    char(*conv)[CONV_MAX] = realloc(c->conv, (size_t)n * sizeof *conv);
    if (conv != NULL)
        c->conv = conv;
    char(*names)[TYPE_NAME_MAX] = realloc(c->names, (size_t)n * sizeof *names);
    if (names != NULL)
        c->names = names;
    int *scales = realloc(c->scales, (size_t)n * sizeof *scales);
    if (scales != NULL)
        c->scales = scales;
    if (cols == NULL || values == NULL || conv == NULL || names == NULL || scales == NULL)
        return sg_err_set(err, SG_INTERNAL, "out of memory");
    c->cap = n;
    return 0;
}

/* The server's own name of column col's type, lower case, into out: the
 * first word of the declaration FreeTDS rebuilds from the wire TYPE_INFO
 * ("NVARCHAR(20)", "DECIMAL(10,2)", "XML"), which tells varchar from
 * nvarchar and char from nchar where dbcoltype() cannot. 0, or -1 when
 * db-lib gives no declaration. Sets the precision and scale of decimal and
 * numeric columns. */
static int server_type(sg_driver_conn *c, int col, sg_column *out, char *name, size_t n)
{
    DBCOL2 info;
    memset(&info, 0, sizeof info);
    info.SizeOfStruct = sizeof info;
    RETCODE rc = dbtablecolinfo(c->dbp, col, (DBCOL *)&info);
    /* FreeTDS 1.3 has no declaration for XML: it fails after filling in
     * the server type. */
    if (info.ServerType == SG_SYBMSXML || info.ServerType == SG_SYBVARIANT) {
        snprintf(name, n, "%s", info.ServerType == SG_SYBMSXML ? "xml" : "sql_variant");
        return 0;
    }
    if (rc == FAIL)
        return -1;
    size_t len = 0;
    const char *d = info.ServerTypeDeclaration;
    while (len + 1 < n && (isalnum((unsigned char)d[len]) || d[len] == '_')) {
        name[len] = (char)tolower((unsigned char)d[len]);
        len++;
    }
    name[len] = '\0';
    if (len == 0 || isalnum((unsigned char)d[len]) || d[len] == '_')
        return -1;
    /* rowversion travels as binary(8) marked by user type 80. */
    if (info.UserType == 80 && strcmp(name, "binary") == 0)
        snprintf(name, n, "timestamp");
    if (strcmp(name, "decimal") == 0 || strcmp(name, "numeric") == 0) {
        out->precision = info.Precision;
        out->scale = info.Scale;
    }
    return 0;
}

/* Whether db-lib's type alone names the column's type as the server
 * declares it: then dbtablecolinfo (which formats a declaration for every
 * call) is not needed. Strings, binaries, decimals and anything unusual
 * still ask for the declaration. */
static bool type_is_plain(int type)
{
    switch (type) {
    case SYBINT1:
    case SYBINT2:
    case SYBINT4:
    case SYBINT8:
    case SYBBIT:
    case SYBBITN:
    case SYBFLT8:
    case SYBREAL:
    case SYBMONEY:
    case SYBMONEY4:
    case SYBMSDATE:
    case SYBMSTIME:
    case SYBMSDATETIME2:
    case SYBMSDATETIMEOFFSET:
    case SYBDATETIME:
    case SYBDATETIME4:
    case SG_SYBUNIQUE:
        return true;
    default:
        return false;
    }
}

int ft_describe(sg_driver_conn *c, int n, sg_err *err)
{
    if (grow_columns(c, n, err) != 0)
        return -1;
    for (int i = 0; i < n; i++) {
        const char *name = dbcolname(c->dbp, i + 1);
        int type = dbcoltype(c->dbp, i + 1);
        c->cols[i].name = name ? name : "";
        c->cols[i].precision = 0;
        c->cols[i].scale = 0;
        if (!type_is_plain(type) &&
            server_type(c, i + 1, &c->cols[i], c->names[i], sizeof c->names[i]) == 0)
            c->cols[i].type = c->names[i];
        else
            c->cols[i].type = type_name(type, c->names[i], sizeof c->names[i]);
        DBTYPEINFO *ti = dbcoltypeinfo(c->dbp, i + 1);
        c->scales[i] = ti ? ti->scale : 7;
        if (type == SYBDATETIME)
            c->scales[i] = 3;
        if (type == SYBDATETIME4)
            c->scales[i] = 0; /* whole minutes */
        /* db-lib keeps a sql_variant value's base type to itself and cannot
         * convert it: refusing is better than answering with wrong bytes. */
        if (type == SG_SYBVARIANT)
            return sg_err_set(err, SG_BAD_REQUEST,
                              "column %d (%s) is sql_variant, which FreeTDS db-lib cannot read; "
                              "CAST it to a concrete type in the SQL",
                              i + 1, name != NULL && name[0] != '\0' ? name : "unnamed");
    }
    c->n_cols = n;
    return 0;
}

/* ISO 8601 text of a date/time value (db-lib's own text depends on locale). */
static int format_datetime(sg_driver_conn *c, int type, const BYTE *data, int scale, char *out)
{
    DBDATEREC2 r;
    memset(&r, 0, sizeof r);
    if (dbanydatecrack(c->dbp, &r, type, data) == FAIL)
        return -1;
    /* db-lib's record: year, quarter, month 0-11, day, ..., hour, minute,
     * second, nanosecond, offset in minutes. */
    const DBINT *f = (const DBINT *)&r;
    int year = f[0], month = f[2] + 1, day = f[3], hour = f[7], minute = f[8], second = f[9];
    long nanos = f[10];
    int tz = f[11];
    char frac[16] = "";
    if (scale > 0) {
        char digits[16];
        snprintf(digits, sizeof digits, "%09ld", nanos < 0 || nanos > 999999999 ? 0 : nanos);
        snprintf(frac, sizeof frac, ".%.*s", scale > 9 ? 9 : scale, digits);
    }
    switch (type) {
    case SYBMSDATE:
        snprintf(out, CONV_MAX, "%04d-%02d-%02d", year, month, day);
        break;
    case SYBMSTIME:
        snprintf(out, CONV_MAX, "%02d:%02d:%02d%s", hour, minute, second, frac);
        break;
    case SYBMSDATETIMEOFFSET:
        snprintf(out, CONV_MAX, "%04d-%02d-%02dT%02d:%02d:%02d%s%c%02d:%02d", year, month, day,
                 hour, minute, second, frac, tz < 0 ? '-' : '+', abs(tz) / 60, abs(tz) % 60);
        break;
    default:
        snprintf(out, CONV_MAX, "%04d-%02d-%02dT%02d:%02d:%02d%s", year, month, day, hour, minute,
                 second, frac);
        break;
    }
    return 0;
}

void ft_convert_value(sg_driver_conn *c, int i, sg_value *v)
{
    int col = i + 1;
    BYTE *data = dbdata(c->dbp, col);
    DBINT len = dbdatlen(c->dbp, col);
    int type = dbcoltype(c->dbp, col);
    if (data == NULL) {
        v->type = SG_V_NULL;
        return;
    }
    char *conv = c->conv[i];
    switch (type) {
    case SYBINT1:
        v->type = SG_V_INT, v->u.i = *(const DBTINYINT *)data;
        return;
    case SYBINT2:
        v->type = SG_V_INT, v->u.i = *(const DBSMALLINT *)data;
        return;
    case SYBINT4:
        v->type = SG_V_INT, v->u.i = *(const DBINT *)data;
        return;
    case SYBINT8: {
        DBBIGINT x;
        memcpy(&x, data, sizeof x);
        v->type = SG_V_INT, v->u.i = x;
        return;
    }
    case SYBBIT:
    case SYBBITN:
        v->type = SG_V_BOOL, v->u.b = *data != 0;
        return;
    case SYBFLT8: {
        DBFLT8 x;
        memcpy(&x, data, sizeof x);
        v->type = SG_V_FLOAT, v->u.f = x;
        return;
    }
    case SYBREAL: {
        DBREAL x;
        memcpy(&x, data, sizeof x);
        v->type = SG_V_FLOAT, v->u.f = x;
        return;
    }
    case SYBCHAR:
    case SYBVARCHAR:
    case SYBTEXT:
    case SYBNTEXT:
    case SG_SYBLONGCHAR: /* XML, already converted to UTF-8 */
        v->type = SG_V_TEXT, v->u.s.ptr = (const char *)data, v->u.s.len = (size_t)len;
        return;
    case SYBBINARY:
    case SYBVARBINARY:
    case SYBIMAGE:
        v->type = SG_V_BINARY, v->u.s.ptr = (const char *)data, v->u.s.len = (size_t)len;
        return;
    case SYBMSDATE:
    case SYBMSTIME:
    case SYBMSDATETIME2:
    case SYBMSDATETIMEOFFSET:
    case SYBDATETIME:
    case SYBDATETIME4:
        if (format_datetime(c, type, data, c->scales[i], conv) == 0) {
            v->type = SG_V_TEXT, v->u.s.ptr = conv, v->u.s.len = strlen(conv);
            return;
        }
        break;
    default:
        break;
    }
    /* Exact text for decimal, numeric, money, uniqueidentifier and the rest. */
    DBINT n = dbconvert(c->dbp, type, data, len, SYBCHAR, (BYTE *)conv, CONV_MAX - 1);
    if (n < 0) {
        v->type = SG_V_NULL;
        return;
    }
    conv[n] = '\0';
    while (n > 0 && conv[n - 1] == ' ')
        conv[--n] = '\0';
    v->type = SG_V_TEXT, v->u.s.ptr = conv, v->u.s.len = (size_t)n;
}
