/* SQL Server types for the TDS test server: see tds_types.h. */
#include "tds_types.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../src/lib/util.h"
#include "tds_wire.h"

/* Wire type ids [MS-TDS 2.2.5.4]. */
enum {
    XT_NULL = 0x1F,
    XT_IMAGE = 0x22,
    XT_TEXT = 0x23,
    XT_GUID = 0x24,
    XT_VARBINARY = 0x25,
    XT_INTN = 0x26,
    XT_VARCHAR = 0x27,
    XT_DATEN = 0x28,
    XT_TIMEN = 0x29,
    XT_DATETIME2N = 0x2A,
    XT_DATETIMEOFFSETN = 0x2B,
    XT_BINARY = 0x2D,
    XT_CHAR = 0x2F,
    XT_INT1 = 0x30,
    XT_BIT = 0x32,
    XT_INT2 = 0x34,
    XT_DECIMAL = 0x37,
    XT_INT4 = 0x38,
    XT_DATETIM4 = 0x3A,
    XT_FLT4 = 0x3B,
    XT_MONEY = 0x3C,
    XT_DATETIME = 0x3D,
    XT_FLT8 = 0x3E,
    XT_NUMERIC = 0x3F,
    XT_SSVARIANT = 0x62,
    XT_NTEXT = 0x63,
    XT_BITN = 0x68,
    XT_DECIMALN = 0x6A,
    XT_NUMERICN = 0x6C,
    XT_FLTN = 0x6D,
    XT_MONEYN = 0x6E,
    XT_DATETIMN = 0x6F,
    XT_MONEY4 = 0x7A,
    XT_INT8 = 0x7F,
    XT_BIGVARBIN = 0xA5,
    XT_BIGVARCHR = 0xA7,
    XT_BIGBINARY = 0xAD,
    XT_BIGCHAR = 0xAF,
    XT_UDT = 0xF0,
    XT_XML = 0xF1,
    XT_NVARCHAR = 0xE7,
    XT_NCHAR = 0xEF,
};

#define PLP_NULL    0xFFFFFFFFFFFFFFFFull
#define TICKS_DAY   864000000000ll /* 100 ns units per day */
#define MAX_TEXT_IN (64u * 1024u * 1024u)

/* ---- names ------------------------------------------------------------------ */

static const struct {
    const char *name;
    tds_sqltype st;
} type_names[] = {
    {"tinyint", TDS_ST_TINYINT},
    {"smallint", TDS_ST_SMALLINT},
    {"int", TDS_ST_INT},
    {"integer", TDS_ST_INT},
    {"bigint", TDS_ST_BIGINT},
    {"bit", TDS_ST_BIT},
    {"boolean", TDS_ST_BIT},
    {"real", TDS_ST_REAL},
    {"float", TDS_ST_FLOAT},
    {"double", TDS_ST_FLOAT},
    {"decimal", TDS_ST_DECIMAL},
    {"dec", TDS_ST_DECIMAL},
    {"numeric", TDS_ST_NUMERIC},
    {"smallmoney", TDS_ST_SMALLMONEY},
    {"money", TDS_ST_MONEY},
    {"char", TDS_ST_CHAR},
    {"varchar", TDS_ST_VARCHAR},
    {"nchar", TDS_ST_NCHAR},
    {"nvarchar", TDS_ST_NVARCHAR},
    {"sysname", TDS_ST_NVARCHAR},
    {"text", TDS_ST_VARCHAR},
    {"ntext", TDS_ST_NVARCHAR},
    {"xml", TDS_ST_NVARCHAR},
    {"sql_variant", TDS_ST_NVARCHAR},
    {"rowversion", TDS_ST_BINARY},
    {"timestamp", TDS_ST_BINARY},
    {"binary", TDS_ST_BINARY},
    {"varbinary", TDS_ST_VARBINARY},
    {"image", TDS_ST_VARBINARY},
    {"blob", TDS_ST_VARBINARY},
    {"date", TDS_ST_DATE},
    {"time", TDS_ST_TIME},
    {"datetime2", TDS_ST_DATETIME2},
    {"datetimeoffset", TDS_ST_DATETIMEOFFSET},
    {"datetime", TDS_ST_DATETIME},
    {"smalldatetime", TDS_ST_SMALLDATETIME},
    {"uniqueidentifier", TDS_ST_UNIQUEIDENTIFIER},
};

const char *tds_type_name(tds_sqltype st)
{
    switch (st) {
    case TDS_ST_TINYINT:
        return "tinyint";
    case TDS_ST_SMALLINT:
        return "smallint";
    case TDS_ST_INT:
        return "int";
    case TDS_ST_BIGINT:
        return "bigint";
    case TDS_ST_BIT:
        return "bit";
    case TDS_ST_REAL:
        return "real";
    case TDS_ST_FLOAT:
        return "float";
    case TDS_ST_DECIMAL:
        return "decimal";
    case TDS_ST_NUMERIC:
        return "numeric";
    case TDS_ST_SMALLMONEY:
        return "smallmoney";
    case TDS_ST_MONEY:
        return "money";
    case TDS_ST_CHAR:
        return "char";
    case TDS_ST_VARCHAR:
        return "varchar";
    case TDS_ST_NCHAR:
        return "nchar";
    case TDS_ST_NVARCHAR:
        return "nvarchar";
    case TDS_ST_BINARY:
        return "binary";
    case TDS_ST_VARBINARY:
        return "varbinary";
    case TDS_ST_DATE:
        return "date";
    case TDS_ST_TIME:
        return "time";
    case TDS_ST_DATETIME2:
        return "datetime2";
    case TDS_ST_DATETIMEOFFSET:
        return "datetimeoffset";
    case TDS_ST_DATETIME:
        return "datetime";
    case TDS_ST_SMALLDATETIME:
        return "smalldatetime";
    case TDS_ST_UNIQUEIDENTIFIER:
        return "uniqueidentifier";
    }
    return "?";
}

const char *tds_type_fullname(const tds_type *t)
{
    switch (t->form) {
    case TDS_FORM_LEGACY:
        return t->st == TDS_ST_VARCHAR ? "text" : t->st == TDS_ST_NVARCHAR ? "ntext" : "image";
    case TDS_FORM_XML:
        return "xml";
    case TDS_FORM_VARIANT:
        return "sql_variant";
    case TDS_FORM_ROWVERSION:
        return "timestamp";
    default:
        return tds_type_name(t->st);
    }
}

static bool parse_uint(const char **s, const char *end, unsigned long *out)
{
    const char *p = *s;
    unsigned long v = 0;
    if (p >= end || !isdigit((unsigned char)*p))
        return false;
    while (p < end && isdigit((unsigned char)*p)) {
        v = v * 10 + (unsigned long)(*p - '0');
        if (v > 1000000)
            return false;
        p++;
    }
    *s = p;
    *out = v;
    return true;
}

static void skip_sp(const char **s, const char *end)
{
    while (*s < end && isspace((unsigned char)**s))
        (*s)++;
}

int tds_type_parse(const char *s, size_t len, tds_type *out)
{
    const char *end = s + len;
    memset(out, 0, sizeof(*out));
    skip_sp(&s, end);
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    const char *w = s;
    while (s < end && (isalnum((unsigned char)*s) || *s == '_'))
        s++;
    size_t wl = (size_t)(s - w);
    /* "DOUBLE PRECISION" */
    bool found = false;
    for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++) {
        if (strlen(type_names[i].name) == wl && strncasecmp(type_names[i].name, w, wl) == 0) {
            out->st = type_names[i].st;
            found = true;
            if ((wl == 4 && strncasecmp(w, "text", 4) == 0) ||
                (wl == 5 && (strncasecmp(w, "ntext", 5) == 0 || strncasecmp(w, "image", 5) == 0))) {
                out->is_max = true;
                out->form = TDS_FORM_LEGACY;
            }
            if (wl == 3 && strncasecmp(w, "xml", 3) == 0) {
                out->is_max = true;
                out->form = TDS_FORM_XML;
            }
            if (wl == 11 && strncasecmp(w, "sql_variant", 11) == 0) {
                out->len = 4000;
                out->form = TDS_FORM_VARIANT;
            }
            if ((wl == 10 && strncasecmp(w, "rowversion", 10) == 0) ||
                (wl == 9 && strncasecmp(w, "timestamp", 9) == 0)) {
                out->len = 8;
                out->form = TDS_FORM_ROWVERSION;
            }
            if (wl == 4 && strncasecmp(w, "blob", 4) == 0)
                out->is_max = true;
            if (wl == 7 && strncasecmp(w, "sysname", 7) == 0)
                out->len = 128;
            break;
        }
    }
    if (!found)
        return -1;
    skip_sp(&s, end);
    if (out->st == TDS_ST_FLOAT && end - s >= 9 && strncasecmp(s, "precision", 9) == 0)
        s += 9;
    unsigned long a = 0, b = 0;
    bool has_a = false, has_b = false, is_max = false;
    skip_sp(&s, end);
    if (s < end && *s == '(') {
        s++;
        skip_sp(&s, end);
        if (end - s >= 3 && strncasecmp(s, "max", 3) == 0) {
            is_max = true;
            s += 3;
        } else if (end - s >= 2 && strncmp(s, "-1", 2) == 0) {
            is_max = true; /* the rewritten (MAX), see tds_exec.c */
            s += 2;
        } else if (parse_uint(&s, end, &a)) {
            has_a = true;
            skip_sp(&s, end);
            if (s < end && *s == ',') {
                s++;
                skip_sp(&s, end);
                if (!parse_uint(&s, end, &b))
                    return -1;
                has_b = true;
            }
        } else {
            return -1;
        }
        skip_sp(&s, end);
        if (s >= end || *s != ')')
            return -1;
        s++;
    }
    skip_sp(&s, end);
    if (out->form != TDS_FORM_PLAIN)
        return has_a || is_max ? -1 : 0;
    /* Trailing words (e.g. "NOT NULL" never reaches here; "PRIMARY KEY" might). */
    switch (out->st) {
    case TDS_ST_FLOAT:
        if (has_a && a >= 1 && a <= 24)
            out->st = TDS_ST_REAL;
        else if (has_a && (a < 1 || a > 53))
            return -1;
        break;
    case TDS_ST_DECIMAL:
    case TDS_ST_NUMERIC:
        out->precision = has_a ? (uint8_t)(a > 255 ? 0 : a) : 18;
        out->scale = has_b ? (uint8_t)(b > 255 ? 255 : b) : 0;
        if (is_max || out->precision < 1 || out->precision > 38 || out->scale > out->precision)
            return -1;
        break;
    case TDS_ST_CHAR:
    case TDS_ST_VARCHAR:
    case TDS_ST_BINARY:
    case TDS_ST_VARBINARY:
        if (is_max) {
            if (out->st == TDS_ST_CHAR || out->st == TDS_ST_BINARY)
                return -1;
            out->is_max = true;
        } else if (!out->is_max) {
            out->len = has_a                                                  ? (uint32_t)a
                       : (out->st == TDS_ST_CHAR || out->st == TDS_ST_BINARY) ? 1
                                                                              : 8000;
            if (out->len < 1 || out->len > 8000)
                return -1;
        }
        break;
    case TDS_ST_NCHAR:
    case TDS_ST_NVARCHAR:
        if (is_max) {
            if (out->st == TDS_ST_NCHAR)
                return -1;
            out->is_max = true;
        } else if (!out->is_max && out->len == 0) {
            out->len = has_a ? (uint32_t)a : out->st == TDS_ST_NCHAR ? 1 : 4000;
            if (out->len < 1 || out->len > 4000)
                return -1;
        }
        break;
    case TDS_ST_TIME:
    case TDS_ST_DATETIME2:
    case TDS_ST_DATETIMEOFFSET:
        out->scale = has_a ? (uint8_t)(a > 7 ? 255 : a) : 7;
        if (out->scale > 7 || is_max)
            return -1;
        break;
    default:
        if (has_a || is_max)
            return -1;
        break;
    }
    return 0;
}

/* ---- TYPE_INFO ----------------------------------------------------------------- */

static bool is_date_family(tds_sqltype st)
{
    return st == TDS_ST_DATE || st == TDS_ST_TIME || st == TDS_ST_DATETIME2 ||
           st == TDS_ST_DATETIMEOFFSET;
}

/* Width of the text a date/time type becomes for clients below TDS 7.3. */
static uint32_t date_text_len(const tds_type *t)
{
    uint32_t frac = t->scale ? (uint32_t)t->scale + 1 : 0;
    switch (t->st) {
    case TDS_ST_DATE:
        return 10;
    case TDS_ST_TIME:
        return 8 + frac;
    case TDS_ST_DATETIME2:
        return 19 + frac;
    default:
        return 26 + frac;
    }
}

/* The type actually put on the wire for this client version. */
static tds_type wire_form(const tds_type *t, uint32_t ver)
{
    tds_type w = *t;
    if (is_date_family(t->st) && TDS_VER(ver) < 0x73) {
        w.st = TDS_ST_NVARCHAR;
        w.len = date_text_len(t);
        w.is_max = false;
    }
    return w;
}

static uint8_t decimal_bytes(uint8_t precision)
{
    if (precision <= 9)
        return 5;
    if (precision <= 19)
        return 9;
    if (precision <= 28)
        return 13;
    return 17;
}

static uint8_t time_bytes(uint8_t scale)
{
    return scale <= 2 ? 3 : scale <= 4 ? 4 : 5;
}

static void legacy_table_name(tds_buf *b, uint32_t ver)
{
    if (TDS_VER(ver) >= 0x72)
        tds_buf_u8(b, 0); /* NumParts */
    else
        tds_buf_u16le(b, 0);
}

void tds_typeinfo_write(tds_buf *b, const tds_type *orig, uint32_t ver)
{
    tds_type t = wire_form(orig, ver);
    bool legacy_max = t.is_max && (TDS_VER(ver) < 0x72 || t.form == TDS_FORM_LEGACY);
    if (t.form == TDS_FORM_VARIANT) {
        tds_buf_u8(b, XT_SSVARIANT);
        tds_buf_u32le(b, 8009); /* SQL Server's maximum for sql_variant */
        return;
    }
    if (t.form == TDS_FORM_XML && !legacy_max) {
        tds_buf_u8(b, XT_XML);
        tds_buf_u8(b, 0); /* no schema collection */
        return;
    }
    switch (t.st) {
    case TDS_ST_TINYINT:
    case TDS_ST_SMALLINT:
    case TDS_ST_INT:
    case TDS_ST_BIGINT:
        tds_buf_u8(b, XT_INTN);
        tds_buf_u8(b, t.st == TDS_ST_TINYINT    ? 1
                      : t.st == TDS_ST_SMALLINT ? 2
                      : t.st == TDS_ST_INT      ? 4
                                                : 8);
        break;
    case TDS_ST_BIT:
        tds_buf_u8(b, XT_BITN);
        tds_buf_u8(b, 1);
        break;
    case TDS_ST_REAL:
    case TDS_ST_FLOAT:
        tds_buf_u8(b, XT_FLTN);
        tds_buf_u8(b, t.st == TDS_ST_REAL ? 4 : 8);
        break;
    case TDS_ST_DECIMAL:
    case TDS_ST_NUMERIC:
        tds_buf_u8(b, t.st == TDS_ST_DECIMAL ? XT_DECIMALN : XT_NUMERICN);
        tds_buf_u8(b, decimal_bytes(t.precision));
        tds_buf_u8(b, t.precision);
        tds_buf_u8(b, t.scale);
        break;
    case TDS_ST_SMALLMONEY:
    case TDS_ST_MONEY:
        tds_buf_u8(b, XT_MONEYN);
        tds_buf_u8(b, t.st == TDS_ST_MONEY ? 8 : 4);
        break;
    case TDS_ST_CHAR:
    case TDS_ST_VARCHAR:
        if (legacy_max) {
            tds_buf_u8(b, XT_TEXT);
            tds_buf_u32le(b, 0x7FFFFFFF);
            tds_buf_put(b, tds_collation, 5);
            legacy_table_name(b, ver);
            break;
        }
        tds_buf_u8(b, t.st == TDS_ST_CHAR ? XT_BIGCHAR : XT_BIGVARCHR);
        tds_buf_u16le(b, t.is_max ? 0xFFFF : (uint16_t)t.len);
        tds_buf_put(b, tds_collation, 5);
        break;
    case TDS_ST_NCHAR:
    case TDS_ST_NVARCHAR:
        if (legacy_max) {
            tds_buf_u8(b, XT_NTEXT);
            tds_buf_u32le(b, 0x7FFFFFFE);
            tds_buf_put(b, tds_collation, 5);
            legacy_table_name(b, ver);
            break;
        }
        tds_buf_u8(b, t.st == TDS_ST_NCHAR ? XT_NCHAR : XT_NVARCHAR);
        tds_buf_u16le(b, t.is_max ? 0xFFFF : (uint16_t)(t.len * 2));
        tds_buf_put(b, tds_collation, 5);
        break;
    case TDS_ST_BINARY:
    case TDS_ST_VARBINARY:
        if (legacy_max) {
            tds_buf_u8(b, XT_IMAGE);
            tds_buf_u32le(b, 0x7FFFFFFF);
            legacy_table_name(b, ver);
            break;
        }
        tds_buf_u8(b, t.st == TDS_ST_BINARY ? XT_BIGBINARY : XT_BIGVARBIN);
        tds_buf_u16le(b, t.is_max ? 0xFFFF : (uint16_t)t.len);
        break;
    case TDS_ST_DATE:
        tds_buf_u8(b, XT_DATEN);
        break;
    case TDS_ST_TIME:
        tds_buf_u8(b, XT_TIMEN);
        tds_buf_u8(b, t.scale);
        break;
    case TDS_ST_DATETIME2:
        tds_buf_u8(b, XT_DATETIME2N);
        tds_buf_u8(b, t.scale);
        break;
    case TDS_ST_DATETIMEOFFSET:
        tds_buf_u8(b, XT_DATETIMEOFFSETN);
        tds_buf_u8(b, t.scale);
        break;
    case TDS_ST_DATETIME:
    case TDS_ST_SMALLDATETIME:
        tds_buf_u8(b, XT_DATETIMN);
        tds_buf_u8(b, t.st == TDS_ST_DATETIME ? 8 : 4);
        break;
    case TDS_ST_UNIQUEIDENTIFIER:
        tds_buf_u8(b, XT_GUID);
        tds_buf_u8(b, 16);
        break;
    }
}

/* ---- calendar ------------------------------------------------------------------- */

/* Howard Hinnant's days_from_civil, shifted to day 0 = 0001-01-01. */
int64_t tds_days_from_civil(int y, int m, int d)
{
    int64_t yy = (int64_t)y - (m <= 2);
    int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
    int64_t yoe = yy - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 306; /* 0000-03-01 based -> 0001-01-01 based */
}

void tds_civil_from_days(int64_t days, int *y, int *m, int *d)
{
    int64_t z = days + 306;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t dd = doy - (153 * mp + 2) / 5 + 1;
    int64_t mm = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (mm <= 2));
    *m = (int)mm;
    *d = (int)dd;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

static bool digits(const char **s, const char *end, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (*s >= end || !isdigit((unsigned char)**s))
            return false;
        v = v * 10 + (**s - '0');
        (*s)++;
    }
    *out = v;
    return true;
}

static bool parse_time_part(const char **ps, const char *end, tds_datetime *dt)
{
    const char *s = *ps;
    if (!digits(&s, end, 2, &dt->hour) || s >= end || *s != ':' || (s++, false) ||
        !digits(&s, end, 2, &dt->minute))
        return false;
    dt->second = 0;
    dt->frac = 0;
    if (s < end && *s == ':') {
        s++;
        if (!digits(&s, end, 2, &dt->second))
            return false;
        if (s < end && *s == '.') {
            s++;
            uint32_t f = 0;
            int n = 0;
            if (s >= end || !isdigit((unsigned char)*s))
                return false;
            while (s < end && isdigit((unsigned char)*s)) {
                if (n < 7) {
                    f = f * 10 + (uint32_t)(*s - '0');
                    n++;
                }
                s++;
            }
            while (n++ < 7)
                f *= 10;
            dt->frac = f;
        }
    }
    if (dt->hour > 23 || dt->minute > 59 || dt->second > 59)
        return false;
    dt->has_time = true;
    *ps = s;
    return true;
}

int tds_datetime_parse(const char *s, size_t len, tds_datetime *dt)
{
    const char *end = s + len;
    memset(dt, 0, sizeof(*dt));
    skip_sp(&s, end);
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    if (end - s >= 5 && s[2] == ':') {
        if (!parse_time_part(&s, end, dt))
            return -1;
    } else {
        if (!digits(&s, end, 4, &dt->year) || s >= end || *s++ != '-' ||
            !digits(&s, end, 2, &dt->month) || s >= end || *s++ != '-' ||
            !digits(&s, end, 2, &dt->day))
            return -1;
        if (dt->year < 1 || dt->month < 1 || dt->month > 12 || dt->day < 1 ||
            dt->day > days_in_month(dt->year, dt->month))
            return -1;
        dt->has_date = true;
        if (s < end && (*s == ' ' || *s == 'T')) {
            s++;
            skip_sp(&s, end);
            if (!parse_time_part(&s, end, dt))
                return -1;
        }
    }
    skip_sp(&s, end);
    if (s < end && (*s == 'Z' || *s == 'z')) {
        dt->has_tz = true;
        s++;
    } else if (s < end && (*s == '+' || *s == '-')) {
        int sign = *s == '-' ? -1 : 1, h, m = 0;
        s++;
        if (!digits(&s, end, 2, &h))
            return -1;
        if (s < end && *s == ':')
            s++;
        if (s < end && !digits(&s, end, 2, &m))
            return -1;
        if (h > 14 || m > 59 || h * 60 + m > 14 * 60)
            return -1;
        dt->has_tz = true;
        dt->tz_minutes = sign * (h * 60 + m);
    }
    return s == end ? 0 : -1;
}

static int64_t time_ticks(const tds_datetime *dt)
{
    return ((int64_t)dt->hour * 3600 + dt->minute * 60 + dt->second) * 10000000ll + dt->frac;
}

/* Formats fractional 100ns ticks with `scale` digits (truncating). */
static void fmt_frac(char *out, size_t outlen, uint32_t frac, uint8_t scale)
{
    if (scale == 0) {
        out[0] = '\0';
        return;
    }
    char f[8];
    snprintf(f, sizeof(f), "%07u", frac % 10000000u);
    snprintf(out, outlen, ".%.*s", (int)scale, f);
}

static void fmt_dt(char *out, size_t outlen, tds_sqltype st, int64_t days, int64_t ticks,
                   uint8_t scale, int tz)
{
    int y = 1, m = 1, d = 1;
    tds_civil_from_days(days, &y, &m, &d);
    int64_t secs = ticks / 10000000ll;
    char frac[10];
    fmt_frac(frac, sizeof(frac), (uint32_t)(ticks % 10000000ll), scale);
    int hh = (int)(secs / 3600), mi = (int)(secs / 60 % 60), ss = (int)(secs % 60);
    switch (st) {
    case TDS_ST_DATE:
        snprintf(out, outlen, "%04d-%02d-%02d", y, m, d);
        break;
    case TDS_ST_TIME:
        snprintf(out, outlen, "%02d:%02d:%02d%s", hh, mi, ss, frac);
        break;
    case TDS_ST_DATETIMEOFFSET: {
        int a = tz < 0 ? -tz : tz;
        snprintf(out, outlen, "%04d-%02d-%02d %02d:%02d:%02d%s %c%02d:%02d", y, m, d, hh, mi, ss,
                 frac, tz < 0 ? '-' : '+', a / 60, a % 60);
        break;
    }
    default:
        snprintf(out, outlen, "%04d-%02d-%02d %02d:%02d:%02d%s", y, m, d, hh, mi, ss, frac);
        break;
    }
}

/* ---- decimals ----------------------------------------------------------------- */

static void mag_mul_add(uint32_t mag[4], uint32_t mul, uint32_t add, bool *overflow)
{
    uint64_t carry = add;
    for (int i = 0; i < 4; i++) {
        uint64_t v = (uint64_t)mag[i] * mul + carry;
        mag[i] = (uint32_t)v;
        carry = v >> 32;
    }
    if (carry)
        *overflow = true;
}

static uint32_t mag_div(uint32_t mag[4], uint32_t div)
{
    uint64_t rem = 0;
    for (int i = 3; i >= 0; i--) {
        uint64_t cur = (rem << 32) | mag[i];
        mag[i] = (uint32_t)(cur / div);
        rem = cur % div;
    }
    return (uint32_t)rem;
}

static bool mag_zero(const uint32_t mag[4])
{
    return (mag[0] | mag[1] | mag[2] | mag[3]) == 0;
}

int tds_decimal_from_text(const char *s, size_t len, uint8_t precision, uint8_t scale,
                          bool *negative, uint32_t mag[4])
{
    const char *end = s + len;
    memset(mag, 0, 4 * sizeof(uint32_t));
    *negative = false;
    skip_sp(&s, end);
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    if (s < end && (*s == '-' || *s == '+')) {
        *negative = *s == '-';
        s++;
    }
    /* Collect digits; the exponent moves the decimal point. */
    const char *ip = s;
    size_t nint = 0, nfrac = 0;
    while (s < end && isdigit((unsigned char)*s)) {
        s++;
        nint++;
    }
    const char *fp = NULL;
    if (s < end && *s == '.') {
        s++;
        fp = s;
        while (s < end && isdigit((unsigned char)*s)) {
            s++;
            nfrac++;
        }
    }
    if (nint + nfrac == 0)
        return -1;
    long exp = 0;
    if (s < end && (*s == 'e' || *s == 'E')) {
        s++;
        int esign = 1;
        if (s < end && (*s == '-' || *s == '+')) {
            esign = *s == '-' ? -1 : 1;
            s++;
        }
        if (s >= end || !isdigit((unsigned char)*s))
            return -1;
        while (s < end && isdigit((unsigned char)*s)) {
            if (exp < 100000)
                exp = exp * 10 + (*s - '0');
            s++;
        }
        exp *= esign;
    }
    if (s != end)
        return -1;
    /* Digit k (0-based over int then frac digits) has weight 10^(nint-1-k+exp);
     * we want value * 10^scale: keep digits with weight >= 10^-scale. */
    long keep = (long)nint + exp + scale; /* number of leading digits to keep */
    size_t total = nint + nfrac;
    bool overflow = false;
    int digits_used = 0;
    bool leading = true;
    for (long k = 0; k < keep; k++) {
        int dgt = 0;
        if ((size_t)k < total) {
            const char *c = (size_t)k < nint ? ip + k : fp + (k - (long)nint);
            dgt = *c - '0';
        }
        if (leading && dgt == 0)
            continue;
        leading = false;
        mag_mul_add(mag, 10, (uint32_t)dgt, &overflow);
        if (++digits_used > precision || overflow)
            return -2;
        if (keep - k > 80)
            return -2;
    }
    /* Round half away from zero on the first dropped digit. */
    if (keep >= 0 && (size_t)keep < total) {
        const char *c = (size_t)keep < nint ? ip + keep : fp + (keep - (long)nint);
        if (*c >= '5') {
            mag_mul_add(mag, 1, 1, &overflow);
            uint32_t tmp[4];
            memcpy(tmp, mag, sizeof(tmp));
            int n = 0;
            while (!mag_zero(tmp)) {
                mag_div(tmp, 10);
                n++;
            }
            if (n > precision || overflow)
                return -2;
        }
    }
    if (mag_zero(mag))
        *negative = false;
    return 0;
}

void tds_decimal_to_text(bool negative, const uint32_t mag_in[4], uint8_t scale, char *out,
                         size_t outlen)
{
    char digs[48];
    size_t n = 0;
    uint32_t mag[4];
    memcpy(mag, mag_in, sizeof(mag));
    while (!mag_zero(mag) && n < sizeof(digs))
        digs[n++] = (char)('0' + mag_div(mag, 10));
    while (n <= scale && n < sizeof(digs))
        digs[n++] = '0';
    char tmp[64];
    size_t o = 0;
    if (negative)
        tmp[o++] = '-';
    for (size_t i = n; i > 0; i--) {
        if (i == scale && scale > 0)
            tmp[o++] = '.';
        tmp[o++] = digs[i - 1];
        if (o >= sizeof(tmp) - 2)
            break;
    }
    tmp[o] = '\0';
    snprintf(out, outlen, "%s", tmp);
}

/* ---- code page 1252 ------------------------------------------------------------ */

static const uint16_t cp1252_hi[32] = {
    0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0xFFFD, 0x017D, 0xFFFD, 0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178,
};

static uint8_t to_cp1252(uint32_t cp)
{
    if (cp < 0x80 || (cp >= 0xA0 && cp <= 0xFF))
        return (uint8_t)cp;
    for (int i = 0; i < 32; i++)
        if (cp1252_hi[i] == cp && cp != 0xFFFD)
            return (uint8_t)(0x80 + i);
    return '?';
}

/* UTF-8 to code page 1252, at most max bytes; appended to b; returns bytes. */
static size_t put_cp1252(tds_buf *b, const uint8_t *s, size_t len, size_t max, bool write)
{
    size_t i = 0, n = 0;
    while (i < len && n < max) {
        uint32_t cp;
        unsigned char c = s[i];
        size_t need = c < 0x80 ? 0 : c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
        if (c >= 0x80 && need == 0) {
            cp = 0xFFFD;
            i++;
        } else if (need > len - i - 1) {
            cp = 0xFFFD;
            i = len;
        } else {
            cp = need ? (uint32_t)(c & (0x3F >> need)) : c;
            for (size_t k = 1; k <= need; k++)
                cp = (cp << 6) | (s[i + k] & 0x3F);
            i += need + 1;
        }
        if (write)
            tds_buf_u8(b, to_cp1252(cp));
        n++;
    }
    return n;
}

static int cp1252_to_utf8(const uint8_t *p, size_t n, uint8_t **out, size_t *outlen)
{
    uint8_t *s = malloc(n * 3 + 1);
    if (s == NULL)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = p[i] >= 0x80 && p[i] < 0xA0 ? cp1252_hi[p[i] - 0x80] : p[i];
        if (cp < 0x80) {
            s[o++] = (uint8_t)cp;
        } else if (cp < 0x800) {
            s[o++] = (uint8_t)(0xC0 | (cp >> 6));
            s[o++] = (uint8_t)(0x80 | (cp & 0x3F));
        } else {
            s[o++] = (uint8_t)(0xE0 | (cp >> 12));
            s[o++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            s[o++] = (uint8_t)(0x80 | (cp & 0x3F));
        }
    }
    s[o] = 0;
    *out = s;
    *outlen = o;
    return 0;
}

/* ---- GUID ---------------------------------------------------------------------- */

/* Canonical text to SQL Server's byte order (first three groups little-endian). */
static int guid_parse(const char *s, size_t len, uint8_t out[16])
{
    const char *end = s + len;
    skip_sp(&s, end);
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    if (end - s == 38 && *s == '{' && end[-1] == '}') {
        s++;
        end--;
    }
    if (end - s != 36)
        return -1;
    uint8_t be[16];
    int k = 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return -1;
            continue;
        }
        int hi = sg_hex_value((unsigned char)s[i]), lo = sg_hex_value((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        be[k++] = (uint8_t)(hi << 4 | lo);
        i++;
    }
    static const int order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
    for (int i = 0; i < 16; i++)
        out[i] = be[order[i]];
    return 0;
}

static void guid_format(const uint8_t g[16], char out[37])
{
    static const int order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
    static const char hex[] = "0123456789ABCDEF";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[g[order[i]] >> 4];
        out[o++] = hex[g[order[i]] & 15];
    }
    out[o] = '\0';
}

/* ---- row values ------------------------------------------------------------------ */

/* Sets a SQL Server error number and message; returns -1 for the caller. */
__attribute__((format(printf, 5, 6))) static int conv_fail(int *errnum, char *msg, size_t msglen,
                                                           int num, const char *fmt, ...)
{
    va_list ap;
    *errnum = num;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Text form of numbers, for character targets. */
static const char *num_text(const tds_value *v, char *tmp, size_t n, size_t *len)
{
    if (v->kind == TDS_V_INT) {
        snprintf(tmp, n, "%lld", (long long)v->i);
    } else {
        snprintf(tmp, n, "%.15g", v->d);
        if (strtod(tmp, NULL) != v->d)
            snprintf(tmp, n, "%.17g", v->d);
        if (strspn(tmp, "-0123456789") == strlen(tmp) && strlen(tmp) < n - 2)
            memcpy(tmp + strlen(tmp), ".0", 3);
    }
    *len = strlen(tmp);
    return tmp;
}

static bool text_to_i64(const uint8_t *p, size_t n, int64_t *out)
{
    char tmp[64];
    if (n == 0 || n >= sizeof(tmp))
        return false;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(tmp, &end, 10);
    while (*end && isspace((unsigned char)*end))
        end++;
    if (errno != 0 || *end != '\0' || end == tmp)
        return false;
    *out = v;
    return true;
}

static bool text_to_double(const uint8_t *p, size_t n, double *out)
{
    char tmp[128];
    if (n == 0 || n >= sizeof(tmp))
        return false;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    char *end;
    double v = strtod(tmp, &end);
    while (*end && isspace((unsigned char)*end))
        end++;
    if (*end != '\0' || end == tmp || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static void put_plp(tds_buf *b, const tds_value *v, bool unicode, size_t total)
{
    tds_buf_u64le(b, total);
    if (total > 0) {
        tds_buf_u32le(b, (uint32_t)total);
        if (unicode)
            tds_buf_utf16(b, (const char *)v->p, v->n, SIZE_MAX);
        else
            put_cp1252(b, v->p, v->n, SIZE_MAX, true);
    }
    tds_buf_u32le(b, 0);
}

static void put_legacy_text_header(tds_buf *b, size_t total)
{
    static const uint8_t textptr[16] = {0};
    static const uint8_t timestamp[8] = {0};
    tds_buf_u8(b, 16);
    tds_buf_put(b, textptr, 16);
    tds_buf_put(b, timestamp, 8);
    tds_buf_u32le(b, (uint32_t)total);
}

/* Character and binary targets: v is text/blob (numbers already rendered). */
static int write_chars(tds_buf *b, const tds_type *t, const tds_value *v, uint32_t ver)
{
    bool legacy = t->is_max && (TDS_VER(ver) < 0x72 || t->form == TDS_FORM_LEGACY);
    bool unicode = t->st == TDS_ST_NCHAR || t->st == TDS_ST_NVARCHAR;
    bool binary = t->st == TDS_ST_BINARY || t->st == TDS_ST_VARBINARY;
    bool fixed = t->st == TDS_ST_NCHAR || t->st == TDS_ST_CHAR || t->st == TDS_ST_BINARY;
    if (t->is_max) {
        size_t total;
        if (unicode)
            total = tds_utf16_units((const char *)v->p, v->n) * 2;
        else if (binary)
            total = v->n;
        else
            total = put_cp1252(b, v->p, v->n, SIZE_MAX, false);
        if (total > 0x7FFFFFFE)
            return -1;
        if (legacy) {
            put_legacy_text_header(b, total);
            if (unicode)
                tds_buf_utf16(b, (const char *)v->p, v->n, SIZE_MAX);
            else if (binary)
                tds_buf_put(b, v->p, v->n);
            else
                put_cp1252(b, v->p, v->n, SIZE_MAX, true);
            return 0;
        }
        if (binary) {
            tds_buf_u64le(b, total);
            if (total > 0) {
                tds_buf_u32le(b, (uint32_t)total);
                tds_buf_put(b, v->p, v->n);
            }
            tds_buf_u32le(b, 0);
        } else {
            put_plp(b, v, unicode, total);
        }
        return 0;
    }
    size_t pos = b->len;
    tds_buf_u16le(b, 0);
    size_t bytes;
    if (unicode) {
        size_t units = tds_buf_utf16(b, (const char *)v->p, v->n, t->len);
        if (fixed)
            for (; units < t->len; units++)
                tds_buf_u16le(b, ' ');
        bytes = units * 2;
    } else if (binary) {
        bytes = v->n < t->len ? v->n : t->len;
        tds_buf_put(b, v->p, bytes);
        if (fixed)
            for (; bytes < t->len; bytes++)
                tds_buf_u8(b, 0);
    } else {
        bytes = put_cp1252(b, v->p, v->n, t->len, true);
        if (fixed)
            for (; bytes < t->len; bytes++)
                tds_buf_u8(b, ' ');
    }
    tds_buf_patch_u16le(b, pos, (uint16_t)bytes);
    return 0;
}

static void write_null(tds_buf *b, const tds_type *orig, uint32_t ver)
{
    tds_type t = wire_form(orig, ver);
    if (t.form == TDS_FORM_VARIANT) {
        tds_buf_u32le(b, 0);
        return;
    }
    if (t.form == TDS_FORM_LEGACY) {
        tds_buf_u8(b, 0); /* no text pointer */
        return;
    }
    switch (t.st) {
    case TDS_ST_CHAR:
    case TDS_ST_VARCHAR:
    case TDS_ST_NCHAR:
    case TDS_ST_NVARCHAR:
    case TDS_ST_BINARY:
    case TDS_ST_VARBINARY:
        if (t.is_max && TDS_VER(ver) < 0x72)
            tds_buf_u8(b, 0); /* no text pointer */
        else if (t.is_max)
            tds_buf_u64le(b, PLP_NULL);
        else
            tds_buf_u16le(b, 0xFFFF);
        return;
    default:
        tds_buf_u8(b, 0);
        return;
    }
}

static int64_t int_min(tds_sqltype st)
{
    return st == TDS_ST_TINYINT    ? 0
           : st == TDS_ST_SMALLINT ? -32768
           : st == TDS_ST_INT      ? INT32_MIN
                                   : INT64_MIN;
}

static int64_t int_max(tds_sqltype st)
{
    return st == TDS_ST_TINYINT    ? 255
           : st == TDS_ST_SMALLINT ? 32767
           : st == TDS_ST_INT      ? INT32_MAX
                                   : INT64_MAX;
}

/* Decimal text of a numeric or text value, for decimal/money targets. */
static int value_decimal(const tds_value *v, uint8_t precision, uint8_t scale, bool *neg,
                         uint32_t mag[4])
{
    char tmp[64];
    size_t n;
    if (v->kind == TDS_V_INT) {
        snprintf(tmp, sizeof(tmp), "%lld", (long long)v->i);
        return tds_decimal_from_text(tmp, strlen(tmp), precision, scale, neg, mag);
    }
    if (v->kind == TDS_V_REAL) {
        if (!isfinite(v->d) || fabs(v->d) >= 1e38)
            return -2;
        snprintf(tmp, sizeof(tmp), "%.*f", scale > 20 ? 20 : scale, v->d);
        n = strlen(tmp);
        return tds_decimal_from_text(tmp, n, precision, scale, neg, mag);
    }
    if (v->kind == TDS_V_TEXT)
        return tds_decimal_from_text((const char *)v->p, v->n, precision, scale, neg, mag);
    return -1;
}

/* A sql_variant value: its length, then the base type SQL Server would
 * give the SQLite value (int or bigint, float, nvarchar, varbinary), its
 * property bytes and the data [MS-TDS 2.2.5.5.4]. */
static int write_variant(tds_buf *b, const tds_value *v)
{
    size_t pos = b->len;
    tds_buf_u32le(b, 0);
    size_t start = b->len;
    switch (v->kind) {
    case TDS_V_INT:
        if (v->i >= INT32_MIN && v->i <= INT32_MAX) {
            tds_buf_u8(b, XT_INT4);
            tds_buf_u8(b, 0);
            tds_buf_u32le(b, (uint32_t)(int32_t)v->i);
        } else {
            tds_buf_u8(b, XT_INT8);
            tds_buf_u8(b, 0);
            tds_buf_u64le(b, (uint64_t)v->i);
        }
        break;
    case TDS_V_REAL: {
        uint64_t bits;
        memcpy(&bits, &v->d, sizeof bits);
        tds_buf_u8(b, XT_FLT8);
        tds_buf_u8(b, 0);
        tds_buf_u64le(b, bits);
        break;
    }
    case TDS_V_TEXT: {
        size_t units = tds_utf16_units((const char *)v->p, v->n);
        if (units > 4000)
            return -1;
        tds_buf_u8(b, XT_NVARCHAR);
        tds_buf_u8(b, 7); /* collation and maximum length */
        tds_buf_put(b, tds_collation, 5);
        tds_buf_u16le(b, 8000);
        tds_buf_utf16(b, (const char *)v->p, v->n, SIZE_MAX);
        break;
    }
    default:
        if (v->n > 8000)
            return -1;
        tds_buf_u8(b, XT_BIGVARBIN);
        tds_buf_u8(b, 2);
        tds_buf_u16le(b, 8000);
        tds_buf_put(b, v->p, v->n);
        break;
    }
    uint32_t len = (uint32_t)(b->len - start);
    tds_buf_patch_u16le(b, pos, (uint16_t)(len & 0xFFFF));
    tds_buf_patch_u16le(b, pos + 2, (uint16_t)(len >> 16));
    return 0;
}

int tds_value_write(tds_buf *b, const tds_type *orig, const tds_value *v, uint32_t ver, int *errnum,
                    char *msg, size_t msglen)
{
    const char *tn = tds_type_fullname(orig);
    if (v->kind == TDS_V_NULL) {
        write_null(b, orig, ver);
        return 0;
    }
    if (orig->form == TDS_FORM_VARIANT) {
        if (write_variant(b, v) != 0)
            return conv_fail(errnum, msg, msglen, 8152,
                             "String or binary data would be truncated (%s).", tn);
        return 0;
    }
    tds_type t = *orig;
    char tmp[96];
    switch (t.st) {
    case TDS_ST_TINYINT:
    case TDS_ST_SMALLINT:
    case TDS_ST_INT:
    case TDS_ST_BIGINT:
    case TDS_ST_BIT: {
        int64_t x = 0;
        if (v->kind == TDS_V_INT) {
            x = v->i;
        } else if (v->kind == TDS_V_REAL) {
            if (!isfinite(v->d) || v->d >= 9.2e18 || v->d <= -9.2e18)
                return conv_fail(errnum, msg, msglen, 8115,
                                 "Arithmetic overflow error converting expression to data type "
                                 "%s.",
                                 tn);
            x = (int64_t)v->d;
            if (t.st == TDS_ST_BIT && v->d != 0)
                x = 1;
        } else if (v->kind == TDS_V_TEXT && t.st == TDS_ST_BIT && v->n > 0 &&
                   (strncasecmp((const char *)v->p, "true", v->n) == 0 ||
                    strncasecmp((const char *)v->p, "false", v->n) == 0)) {
            x = (v->p[0] == 't' || v->p[0] == 'T');
        } else if (v->kind != TDS_V_TEXT || !text_to_i64(v->p, v->n, &x)) {
            snprintf(tmp, sizeof(tmp), "%.*s", (int)(v->n > 40 ? 40 : v->n),
                     v->kind == TDS_V_TEXT ? (const char *)v->p : "(binary)");
            *errnum = 245;
            snprintf(msg, msglen,
                     "Conversion failed when converting the value '%s' to data type %s.", tmp, tn);
            return -1;
        }
        if (t.st == TDS_ST_BIT) {
            tds_buf_u8(b, 1);
            tds_buf_u8(b, x != 0);
            return 0;
        }
        if (x < int_min(t.st) || x > int_max(t.st))
            return conv_fail(errnum, msg, msglen, 8115,
                             "Arithmetic overflow error converting expression to data type %s.",
                             tn);
        size_t w = t.st == TDS_ST_TINYINT    ? 1
                   : t.st == TDS_ST_SMALLINT ? 2
                   : t.st == TDS_ST_INT      ? 4
                                             : 8;
        tds_buf_u8(b, (uint8_t)w);
        for (size_t i = 0; i < w; i++)
            tds_buf_u8(b, (uint8_t)((uint64_t)x >> (8 * i)));
        return 0;
    }
    case TDS_ST_REAL:
    case TDS_ST_FLOAT: {
        double d;
        if (v->kind == TDS_V_INT)
            d = (double)v->i;
        else if (v->kind == TDS_V_REAL)
            d = v->d;
        else if (v->kind != TDS_V_TEXT || !text_to_double(v->p, v->n, &d))
            return conv_fail(errnum, msg, msglen, 8114, "Error converting data type %s to float.",
                             v->kind == TDS_V_TEXT ? "nvarchar" : "varbinary");
        if (t.st == TDS_ST_REAL) {
            float f = (float)d;
            uint32_t u;
            memcpy(&u, &f, 4);
            tds_buf_u8(b, 4);
            tds_buf_u32le(b, u);
        } else {
            uint64_t u;
            memcpy(&u, &d, 8);
            tds_buf_u8(b, 8);
            tds_buf_u64le(b, u);
        }
        return 0;
    }
    case TDS_ST_DECIMAL:
    case TDS_ST_NUMERIC: {
        bool neg;
        uint32_t mag[4];
        int rc = value_decimal(v, t.precision, t.scale, &neg, mag);
        if (rc == -2)
            return conv_fail(errnum, msg, msglen, 8115,
                             "Arithmetic overflow error converting expression to data type %s.",
                             tn);
        if (rc != 0)
            return conv_fail(errnum, msg, msglen, 8114,
                             "Error converting data type nvarchar to %s.", tn);
        uint8_t w = decimal_bytes(t.precision);
        tds_buf_u8(b, w);
        tds_buf_u8(b, neg ? 0 : 1);
        for (uint8_t i = 0; i + 1 < w; i++)
            tds_buf_u8(b, (uint8_t)(mag[i / 4] >> (8 * (i % 4))));
        return 0;
    }
    case TDS_ST_SMALLMONEY:
    case TDS_ST_MONEY: {
        bool neg;
        uint32_t mag[4];
        int rc = value_decimal(v, 19, 4, &neg, mag);
        uint64_t m = (uint64_t)mag[0] | ((uint64_t)mag[1] << 32);
        bool small = t.st == TDS_ST_SMALLMONEY;
        if (rc == -2 || mag[2] || mag[3] || m > (small ? 2147483648ull : 9223372036854775808ull) ||
            (!neg && m == (small ? 2147483648ull : 9223372036854775808ull)))
            return conv_fail(errnum, msg, msglen, 8115,
                             "Arithmetic overflow error converting expression to data type %s.",
                             tn);
        if (rc != 0)
            return conv_fail(errnum, msg, msglen, 235,
                             "Cannot convert a char value to %s. The char value has incorrect "
                             "syntax.",
                             tn);
        int64_t x = neg ? (int64_t)(0 - m) : (int64_t)m;
        if (small) {
            tds_buf_u8(b, 4);
            tds_buf_u32le(b, (uint32_t)(int32_t)x);
        } else {
            tds_buf_u8(b, 8);
            tds_buf_u32le(b, (uint32_t)((uint64_t)x >> 32));
            tds_buf_u32le(b, (uint32_t)x);
        }
        return 0;
    }
    case TDS_ST_CHAR:
    case TDS_ST_VARCHAR:
    case TDS_ST_NCHAR:
    case TDS_ST_NVARCHAR:
    case TDS_ST_BINARY:
    case TDS_ST_VARBINARY: {
        tds_value tv = *v;
        if (v->kind == TDS_V_INT || v->kind == TDS_V_REAL) {
            size_t n;
            tv.p = (const uint8_t *)num_text(v, tmp, sizeof(tmp), &n);
            tv.n = n;
            tv.kind = TDS_V_TEXT;
        }
        if (write_chars(b, &t, &tv, ver) != 0)
            return conv_fail(errnum, msg, msglen, 7119, "Value too large for %s.", tn);
        return 0;
    }
    case TDS_ST_DATE:
    case TDS_ST_TIME:
    case TDS_ST_DATETIME2:
    case TDS_ST_DATETIMEOFFSET:
    case TDS_ST_DATETIME:
    case TDS_ST_SMALLDATETIME: {
        tds_datetime dt;
        if (v->kind != TDS_V_TEXT || tds_datetime_parse((const char *)v->p, v->n, &dt) != 0 ||
            (t.st != TDS_ST_TIME && !dt.has_date))
            return conv_fail(errnum, msg, msglen, 241,
                             "Conversion failed when converting date and/or time from character "
                             "string.%s",
                             "");
        int64_t days = dt.has_date ? tds_days_from_civil(dt.year, dt.month, dt.day) : 0;
        int64_t ticks = dt.has_time ? time_ticks(&dt) : 0;
        int tz = dt.has_tz ? dt.tz_minutes : 0;
        if (t.st == TDS_ST_DATETIMEOFFSET) {
            /* The wire carries UTC plus the offset. */
            int64_t all = days * TICKS_DAY + ticks - (int64_t)tz * 60 * 10000000ll;
            if (all < 0)
                all = 0;
            days = all / TICKS_DAY;
            ticks = all % TICKS_DAY;
        }
        if (is_date_family(t.st) && TDS_VER(ver) < 0x73) {
            char text[64];
            int64_t ld = days, lt = ticks;
            if (t.st == TDS_ST_DATETIMEOFFSET) {
                int64_t all = days * TICKS_DAY + ticks + (int64_t)tz * 60 * 10000000ll;
                ld = all / TICKS_DAY;
                lt = all % TICKS_DAY;
            }
            fmt_dt(text, sizeof(text), t.st, ld, lt, t.scale, tz);
            tds_value tv = {.kind = TDS_V_TEXT, .p = (const uint8_t *)text, .n = strlen(text)};
            tds_type nt = wire_form(&t, ver);
            return write_chars(b, &nt, &tv, ver);
        }
        if (t.st == TDS_ST_DATETIME || t.st == TDS_ST_SMALLDATETIME) {
            int64_t d1900 = days - tds_days_from_civil(1900, 1, 1);
            if (t.st == TDS_ST_SMALLDATETIME) {
                int64_t mins = (ticks + 300000000ll) / 600000000ll;
                if (d1900 < 0 || d1900 > 65535)
                    return conv_fail(errnum, msg, msglen, 242,
                                     "The conversion of a varchar data type to a %s data type "
                                     "resulted in an out-of-range value.",
                                     tn);
                tds_buf_u8(b, 4);
                tds_buf_u16le(b, (uint16_t)d1900);
                tds_buf_u16le(b, (uint16_t)mins);
                return 0;
            }
            if (d1900 < -53690)
                return conv_fail(errnum, msg, msglen, 242,
                                 "The conversion of a varchar data type to a %s data type "
                                 "resulted in an out-of-range value.",
                                 tn);
            /* 1/300 s ticks, rounded. */
            int64_t t300 = (ticks * 3 + 50000) / 100000;
            tds_buf_u8(b, 8);
            tds_buf_u32le(b, (uint32_t)(int32_t)d1900);
            tds_buf_u32le(b, (uint32_t)t300);
            return 0;
        }
        uint8_t tb = time_bytes(t.scale);
        int64_t units = ticks;
        for (int i = t.scale; i < 7; i++)
            units /= 10;
        uint8_t len = t.st == TDS_ST_DATE        ? 3
                      : t.st == TDS_ST_TIME      ? tb
                      : t.st == TDS_ST_DATETIME2 ? (uint8_t)(tb + 3)
                                                 : (uint8_t)(tb + 5);
        tds_buf_u8(b, len);
        if (t.st != TDS_ST_DATE)
            for (int i = 0; i < tb; i++)
                tds_buf_u8(b, (uint8_t)((uint64_t)units >> (8 * i)));
        if (t.st != TDS_ST_TIME)
            for (int i = 0; i < 3; i++)
                tds_buf_u8(b, (uint8_t)((uint64_t)days >> (8 * i)));
        if (t.st == TDS_ST_DATETIMEOFFSET)
            tds_buf_u16le(b, (uint16_t)(int16_t)tz);
        return 0;
    }
    case TDS_ST_UNIQUEIDENTIFIER: {
        uint8_t g[16];
        if (v->kind == TDS_V_BLOB && v->n == 16) {
            memcpy(g, v->p, 16);
        } else if (v->kind != TDS_V_TEXT || guid_parse((const char *)v->p, v->n, g) != 0) {
            return conv_fail(errnum, msg, msglen, 8169,
                             "Conversion failed when converting from a character string to "
                             "uniqueidentifier.%s",
                             "");
        }
        tds_buf_u8(b, 16);
        tds_buf_put(b, g, 16);
        return 0;
    }
    }
    return conv_fail(errnum, msg, msglen, 50000, "unsupported type %s", tn);
}

/* ---- RPC parameters ------------------------------------------------------------ */

static int rd_fail(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s", what);
    return -1;
}

int tds_typeinfo_read(tds_rd *r, tds_wiretype *wt, tds_type *t, char *err, size_t errlen)
{
    memset(wt, 0, sizeof(*wt));
    memset(t, 0, sizeof(*t));
    wt->id = tds_rd_u8(r);
    switch (wt->id) {
    case XT_NULL:
        t->st = TDS_ST_NVARCHAR;
        t->len = 1;
        break;
    case XT_INT1:
    case XT_INT2:
    case XT_INT4:
    case XT_INT8:
    case XT_BIT:
    case XT_FLT4:
    case XT_FLT8:
    case XT_MONEY:
    case XT_MONEY4:
    case XT_DATETIME:
    case XT_DATETIM4:
        wt->maxlen =
            wt->id == XT_INT1 || wt->id == XT_BIT ? 1
            : wt->id == XT_INT2                   ? 2
            : wt->id == XT_INT4 || wt->id == XT_FLT4 || wt->id == XT_MONEY4 || wt->id == XT_DATETIM4
                ? 4
                : 8;
        t->st = wt->id == XT_INT1       ? TDS_ST_TINYINT
                : wt->id == XT_INT2     ? TDS_ST_SMALLINT
                : wt->id == XT_INT4     ? TDS_ST_INT
                : wt->id == XT_INT8     ? TDS_ST_BIGINT
                : wt->id == XT_BIT      ? TDS_ST_BIT
                : wt->id == XT_FLT4     ? TDS_ST_REAL
                : wt->id == XT_FLT8     ? TDS_ST_FLOAT
                : wt->id == XT_MONEY    ? TDS_ST_MONEY
                : wt->id == XT_MONEY4   ? TDS_ST_SMALLMONEY
                : wt->id == XT_DATETIME ? TDS_ST_DATETIME
                                        : TDS_ST_SMALLDATETIME;
        break;
    case XT_INTN:
    case XT_BITN:
    case XT_FLTN:
    case XT_MONEYN:
    case XT_DATETIMN:
    case XT_GUID:
        wt->maxlen = tds_rd_u8(r);
        if (wt->id == XT_INTN) {
            if (wt->maxlen != 1 && wt->maxlen != 2 && wt->maxlen != 4 && wt->maxlen != 8)
                return rd_fail(err, errlen, "bad INTN length");
            t->st = wt->maxlen == 1   ? TDS_ST_TINYINT
                    : wt->maxlen == 2 ? TDS_ST_SMALLINT
                    : wt->maxlen == 4 ? TDS_ST_INT
                                      : TDS_ST_BIGINT;
        } else if (wt->id == XT_BITN) {
            if (wt->maxlen != 1)
                return rd_fail(err, errlen, "bad BITN length");
            t->st = TDS_ST_BIT;
        } else if (wt->id == XT_FLTN) {
            if (wt->maxlen != 4 && wt->maxlen != 8)
                return rd_fail(err, errlen, "bad FLTN length");
            t->st = wt->maxlen == 4 ? TDS_ST_REAL : TDS_ST_FLOAT;
        } else if (wt->id == XT_MONEYN) {
            if (wt->maxlen != 4 && wt->maxlen != 8)
                return rd_fail(err, errlen, "bad MONEYN length");
            t->st = wt->maxlen == 4 ? TDS_ST_SMALLMONEY : TDS_ST_MONEY;
        } else if (wt->id == XT_DATETIMN) {
            if (wt->maxlen != 4 && wt->maxlen != 8)
                return rd_fail(err, errlen, "bad DATETIMN length");
            t->st = wt->maxlen == 4 ? TDS_ST_SMALLDATETIME : TDS_ST_DATETIME;
        } else {
            if (wt->maxlen != 16 && wt->maxlen != 0)
                return rd_fail(err, errlen, "bad GUID length");
            t->st = TDS_ST_UNIQUEIDENTIFIER;
        }
        break;
    case XT_DECIMALN:
    case XT_NUMERICN:
    case XT_DECIMAL:
    case XT_NUMERIC:
        wt->maxlen = tds_rd_u8(r);
        wt->precision = tds_rd_u8(r);
        wt->scale = tds_rd_u8(r);
        if (wt->precision < 1 || wt->precision > 38 || wt->scale > wt->precision ||
            wt->maxlen < 2 || wt->maxlen > 17)
            return rd_fail(err, errlen, "bad decimal precision/scale");
        t->st = (wt->id == XT_DECIMALN || wt->id == XT_DECIMAL) ? TDS_ST_DECIMAL : TDS_ST_NUMERIC;
        t->precision = wt->precision;
        t->scale = wt->scale;
        break;
    case XT_DATEN:
        t->st = TDS_ST_DATE;
        break;
    case XT_TIMEN:
    case XT_DATETIME2N:
    case XT_DATETIMEOFFSETN:
        wt->scale = tds_rd_u8(r);
        if (wt->scale > 7)
            return rd_fail(err, errlen, "bad time scale");
        t->st = wt->id == XT_TIMEN        ? TDS_ST_TIME
                : wt->id == XT_DATETIME2N ? TDS_ST_DATETIME2
                                          : TDS_ST_DATETIMEOFFSET;
        t->scale = wt->scale;
        break;
    case XT_VARCHAR:
    case XT_CHAR:
    case XT_VARBINARY:
    case XT_BINARY:
        wt->maxlen = tds_rd_u8(r);
        t->st = wt->id == XT_VARCHAR  ? TDS_ST_VARCHAR
                : wt->id == XT_CHAR   ? TDS_ST_CHAR
                : wt->id == XT_BINARY ? TDS_ST_BINARY
                                      : TDS_ST_VARBINARY;
        t->len = wt->maxlen ? wt->maxlen : 1;
        break;
    case XT_BIGVARCHR:
    case XT_BIGCHAR:
    case XT_NVARCHAR:
    case XT_NCHAR:
    case XT_BIGVARBIN:
    case XT_BIGBINARY:
        wt->maxlen = tds_rd_u16le(r);
        if (wt->id != XT_BIGVARBIN && wt->id != XT_BIGBINARY)
            (void)tds_rd_bytes(r, 5); /* collation */
        wt->plp = wt->maxlen == 0xFFFF;
        t->st = wt->id == XT_BIGVARCHR   ? TDS_ST_VARCHAR
                : wt->id == XT_BIGCHAR   ? TDS_ST_CHAR
                : wt->id == XT_NVARCHAR  ? TDS_ST_NVARCHAR
                : wt->id == XT_NCHAR     ? TDS_ST_NCHAR
                : wt->id == XT_BIGBINARY ? TDS_ST_BINARY
                                         : TDS_ST_VARBINARY;
        if (wt->plp) {
            t->is_max = true;
            if (t->st == TDS_ST_CHAR || t->st == TDS_ST_NCHAR || t->st == TDS_ST_BINARY)
                return rd_fail(err, errlen, "MAX on a fixed-length type");
        } else {
            t->len =
                (t->st == TDS_ST_NVARCHAR || t->st == TDS_ST_NCHAR) ? wt->maxlen / 2 : wt->maxlen;
            if (t->len == 0)
                t->len = 1;
        }
        break;
    case XT_TEXT:
    case XT_NTEXT:
    case XT_IMAGE:
        wt->maxlen = tds_rd_u32le(r);
        if (wt->id != XT_IMAGE)
            (void)tds_rd_bytes(r, 5);
        t->st = wt->id == XT_TEXT    ? TDS_ST_VARCHAR
                : wt->id == XT_NTEXT ? TDS_ST_NVARCHAR
                                     : TDS_ST_VARBINARY;
        t->is_max = true;
        break;
    case XT_XML: {
        uint8_t schema = tds_rd_u8(r);
        if (schema) {
            uint8_t n1 = tds_rd_u8(r);
            (void)tds_rd_bytes(r, (size_t)n1 * 2);
            uint8_t n2 = tds_rd_u8(r);
            (void)tds_rd_bytes(r, (size_t)n2 * 2);
            uint16_t n3 = tds_rd_u16le(r);
            (void)tds_rd_bytes(r, (size_t)n3 * 2);
        }
        wt->plp = true;
        t->st = TDS_ST_NVARCHAR;
        t->is_max = true;
        break;
    }
    default:
        snprintf(err, errlen, "unsupported parameter type 0x%02X", wt->id);
        return -1;
    }
    if (r->err)
        return rd_fail(err, errlen, "truncated TYPE_INFO");
    return 0;
}

static int set_text(tds_value *v, uint8_t **owned, const char *s)
{
    size_t n = strlen(s);
    uint8_t *p = malloc(n + 1);
    if (p == NULL)
        return -1;
    memcpy(p, s, n + 1);
    v->kind = TDS_V_TEXT;
    v->p = p;
    v->n = n;
    *owned = p;
    return 0;
}

static uint64_t le_uint(const uint8_t *p, size_t n)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++)
        x |= (uint64_t)p[i] << (8 * i);
    return x;
}

/* Reads a PLP value into new memory. */
static int read_plp(tds_rd *r, uint8_t **data, size_t *len, bool *is_null, char *err, size_t errlen)
{
    *data = NULL;
    *len = 0;
    uint64_t total = tds_rd_u64le(r);
    if (r->err)
        return rd_fail(err, errlen, "truncated PLP length");
    if (total == PLP_NULL) {
        *is_null = true;
        return 0;
    }
    *is_null = false;
    tds_buf acc;
    tds_buf_init(&acc, MAX_TEXT_IN);
    /* Each chunk consumes at least 4 bytes, so the loop ends with the input. */
    for (;;) {
        uint32_t n = tds_rd_u32le(r);
        if (r->err) {
            tds_buf_free(&acc);
            return rd_fail(err, errlen, "truncated PLP chunk");
        }
        if (n == 0)
            break;
        const uint8_t *p = tds_rd_bytes(r, n);
        if (p == NULL) {
            tds_buf_free(&acc);
            return rd_fail(err, errlen, "truncated PLP chunk");
        }
        tds_buf_put(&acc, p, n);
    }
    tds_buf_u8(&acc, 0);
    if (acc.failed) {
        tds_buf_free(&acc);
        return rd_fail(err, errlen, "PLP value too large");
    }
    *data = acc.data;
    *len = acc.len - 1;
    return 0;
}

/* Turns raw character/binary bytes into a value owned by *owned. */
static int chars_value(const tds_wiretype *wt, const uint8_t *p, size_t n, tds_value *v,
                       uint8_t **owned, char *err, size_t errlen)
{
    bool unicode =
        wt->id == XT_NVARCHAR || wt->id == XT_NCHAR || wt->id == XT_NTEXT || wt->id == XT_XML;
    bool binary = wt->id == XT_BIGVARBIN || wt->id == XT_BIGBINARY || wt->id == XT_IMAGE ||
                  wt->id == XT_VARBINARY || wt->id == XT_BINARY;
    if (unicode) {
        char *s;
        size_t len;
        if (n % 2 != 0 || tds_utf16_to_utf8(p, n, &s, &len) != 0)
            return rd_fail(err, errlen, "bad UTF-16 value");
        v->kind = TDS_V_TEXT;
        v->p = (const uint8_t *)s;
        v->n = len;
        *owned = (uint8_t *)s;
        return 0;
    }
    if (binary) {
        uint8_t *c = malloc(n + 1);
        if (c == NULL)
            return rd_fail(err, errlen, "out of memory");
        if (n)
            memcpy(c, p, n);
        v->kind = TDS_V_BLOB;
        v->p = c;
        v->n = n;
        *owned = c;
        return 0;
    }
    uint8_t *s;
    size_t len;
    if (cp1252_to_utf8(p, n, &s, &len) != 0)
        return rd_fail(err, errlen, "out of memory");
    v->kind = TDS_V_TEXT;
    v->p = s;
    v->n = len;
    *owned = s;
    return 0;
}

int tds_value_read(tds_rd *r, const tds_wiretype *wt, tds_value *v, uint8_t **owned, char *err,
                   size_t errlen)
{
    memset(v, 0, sizeof(*v));
    *owned = NULL;
    v->kind = TDS_V_NULL;
    size_t n;
    const uint8_t *p;
    char text[96];
    switch (wt->id) {
    case XT_NULL:
        return 0;
    case XT_INT1:
    case XT_INT2:
    case XT_INT4:
    case XT_INT8:
    case XT_BIT:
    case XT_FLT4:
    case XT_FLT8:
    case XT_MONEY:
    case XT_MONEY4:
    case XT_DATETIME:
    case XT_DATETIM4:
        n = wt->maxlen;
        break;
    case XT_BIGVARCHR:
    case XT_BIGCHAR:
    case XT_NVARCHAR:
    case XT_NCHAR:
    case XT_BIGVARBIN:
    case XT_BIGBINARY:
    case XT_XML:
        if (wt->plp) {
            uint8_t *data;
            size_t len;
            bool is_null;
            if (read_plp(r, &data, &len, &is_null, err, errlen) != 0)
                return -1;
            if (is_null)
                return 0;
            int rc = chars_value(wt, data, len, v, owned, err, errlen);
            free(data);
            return rc;
        }
        n = tds_rd_u16le(r);
        if (r->err)
            return rd_fail(err, errlen, "truncated value length");
        if (n == 0xFFFF)
            return 0;
        if (n > wt->maxlen)
            return rd_fail(err, errlen, "value longer than its declared length");
        p = tds_rd_bytes(r, n);
        if (p == NULL)
            return rd_fail(err, errlen, "truncated value");
        return chars_value(wt, p, n, v, owned, err, errlen);
    case XT_TEXT:
    case XT_NTEXT:
    case XT_IMAGE: {
        uint32_t len = tds_rd_u32le(r);
        if (r->err)
            return rd_fail(err, errlen, "truncated value length");
        if (len == 0xFFFFFFFFu)
            return 0;
        p = tds_rd_bytes(r, len);
        if (p == NULL)
            return rd_fail(err, errlen, "truncated value");
        return chars_value(wt, p, len, v, owned, err, errlen);
    }
    default:
        n = tds_rd_u8(r);
        if (r->err)
            return rd_fail(err, errlen, "truncated value length");
        if (n == 0)
            return 0;
        if (wt->id == XT_VARCHAR || wt->id == XT_CHAR || wt->id == XT_VARBINARY ||
            wt->id == XT_BINARY) {
            p = tds_rd_bytes(r, n);
            if (p == NULL)
                return rd_fail(err, errlen, "truncated value");
            return chars_value(wt, p, n, v, owned, err, errlen);
        }
        if (wt->id != XT_DATEN && wt->id != XT_TIMEN && wt->id != XT_DATETIME2N &&
            wt->id != XT_DATETIMEOFFSETN && n > wt->maxlen)
            return rd_fail(err, errlen, "value longer than its declared length");
        break;
    }
    p = tds_rd_bytes(r, n);
    if (p == NULL)
        return rd_fail(err, errlen, "truncated value");
    switch (wt->id) {
    case XT_INT1:
    case XT_INT2:
    case XT_INT4:
    case XT_INT8:
    case XT_INTN:
        if (n != 1 && n != 2 && n != 4 && n != 8)
            return rd_fail(err, errlen, "bad integer length");
        v->kind = TDS_V_INT;
        if (n == 1)
            v->i = p[0];
        else if (n == 2)
            v->i = (int16_t)le_uint(p, 2);
        else if (n == 4)
            v->i = (int32_t)le_uint(p, 4);
        else
            v->i = (int64_t)le_uint(p, 8);
        return 0;
    case XT_BIT:
    case XT_BITN:
        if (n != 1)
            return rd_fail(err, errlen, "bad bit length");
        v->kind = TDS_V_INT;
        v->i = p[0] != 0;
        return 0;
    case XT_FLT4:
    case XT_FLT8:
    case XT_FLTN:
        v->kind = TDS_V_REAL;
        if (n == 4) {
            uint32_t u = (uint32_t)le_uint(p, 4);
            float f;
            memcpy(&f, &u, 4);
            v->d = f;
        } else if (n == 8) {
            uint64_t u = le_uint(p, 8);
            memcpy(&v->d, &u, 8);
        } else {
            return rd_fail(err, errlen, "bad float length");
        }
        return 0;
    case XT_MONEY:
    case XT_MONEY4:
    case XT_MONEYN: {
        int64_t m;
        if (n == 4)
            m = (int32_t)le_uint(p, 4);
        else if (n == 8)
            m = (int64_t)((le_uint(p, 4) << 32) | le_uint(p + 4, 4));
        else
            return rd_fail(err, errlen, "bad money length");
        uint64_t a = m < 0 ? (uint64_t)0 - (uint64_t)m : (uint64_t)m;
        uint32_t mag[4] = {(uint32_t)a, (uint32_t)(a >> 32), 0, 0};
        tds_decimal_to_text(m < 0, mag, 4, text, sizeof(text));
        break;
    }
    case XT_DECIMALN:
    case XT_NUMERICN:
    case XT_DECIMAL:
    case XT_NUMERIC: {
        if (n < 2 || n > 17)
            return rd_fail(err, errlen, "bad decimal length");
        uint32_t mag[4] = {0, 0, 0, 0};
        for (size_t i = 1; i < n; i++)
            mag[(i - 1) / 4] |= (uint32_t)p[i] << (8 * ((i - 1) % 4));
        tds_decimal_to_text(p[0] == 0, mag, wt->scale, text, sizeof(text));
        break;
    }
    case XT_GUID:
        if (n != 16)
            return rd_fail(err, errlen, "bad GUID length");
        guid_format(p, text);
        break;
    case XT_DATETIMN:
    case XT_DATETIME:
    case XT_DATETIM4: {
        int64_t d1900 = tds_days_from_civil(1900, 1, 1);
        int64_t days, ticks;
        if (n == 4) {
            days = d1900 + (int64_t)le_uint(p, 2);
            ticks = (int64_t)le_uint(p + 2, 2) * 600000000ll;
        } else if (n == 8) {
            days = d1900 + (int32_t)le_uint(p, 4);
            ticks = ((int64_t)le_uint(p + 4, 4) * 100000 + 1) / 3;
        } else {
            return rd_fail(err, errlen, "bad datetime length");
        }
        if (days < 0 || ticks < 0 || ticks >= TICKS_DAY)
            return rd_fail(err, errlen, "datetime out of range");
        fmt_dt(text, sizeof(text), TDS_ST_DATETIME2, days, ticks, 3, 0);
        break;
    }
    case XT_DATEN:
    case XT_TIMEN:
    case XT_DATETIME2N:
    case XT_DATETIMEOFFSETN: {
        uint8_t tb = wt->id == XT_DATEN ? 0 : time_bytes(wt->scale);
        size_t want = wt->id == XT_DATEN        ? 3
                      : wt->id == XT_TIMEN      ? tb
                      : wt->id == XT_DATETIME2N ? (size_t)tb + 3
                                                : (size_t)tb + 5;
        if (n != want)
            return rd_fail(err, errlen, "bad date/time length");
        int64_t ticks = (int64_t)le_uint(p, tb);
        for (int i = wt->scale; i < 7; i++)
            ticks *= 10;
        int64_t days = wt->id == XT_TIMEN ? 0 : (int64_t)le_uint(p + tb, 3);
        if (ticks >= TICKS_DAY || days > 3652058)
            return rd_fail(err, errlen, "date/time out of range");
        int tz = 0;
        tds_sqltype st = wt->id == XT_DATEN        ? TDS_ST_DATE
                         : wt->id == XT_TIMEN      ? TDS_ST_TIME
                         : wt->id == XT_DATETIME2N ? TDS_ST_DATETIME2
                                                   : TDS_ST_DATETIMEOFFSET;
        if (st == TDS_ST_DATETIMEOFFSET) {
            tz = (int16_t)le_uint(p + tb + 3, 2);
            if (tz < -840 || tz > 840)
                return rd_fail(err, errlen, "bad time zone offset");
            int64_t all = days * TICKS_DAY + ticks + (int64_t)tz * 600000000ll;
            if (all < 0)
                all = 0;
            days = all / TICKS_DAY;
            ticks = all % TICKS_DAY;
        }
        fmt_dt(text, sizeof(text), st, days, ticks, wt->scale, tz);
        break;
    }
    default:
        return rd_fail(err, errlen, "unsupported value type");
    }
    if (set_text(v, owned, text) != 0)
        return rd_fail(err, errlen, "out of memory");
    return 0;
}
