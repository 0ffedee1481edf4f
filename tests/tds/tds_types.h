/* SQL Server data types for the TDS test server: the type model, parsing of
 * type names ("DECIMAL(10,2)", "NVARCHAR(MAX)"), TYPE_INFO and row value
 * encoding per TDS version, and decoding of typed RPC parameter values.
 *
 * Values travel between SQLite and the wire as tds_value, SQLite's five
 * storage classes. Types SQLite has no class for (dates, decimals, money,
 * GUIDs) are text in canonical form: "2024-01-31", "12:30:00.1234567",
 * "2024-01-31 12:30:00.5", "2024-01-31 12:30:00 +02:00", "-12.3400",
 * "6F9619FF-8B86-D011-B42D-00C04FC964FF".
 */
#ifndef SQLGATE_TDS_TYPES_H
#define SQLGATE_TDS_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tds_buf tds_buf;
typedef struct tds_rd tds_rd;

typedef enum tds_sqltype {
    TDS_ST_TINYINT,
    TDS_ST_SMALLINT,
    TDS_ST_INT,
    TDS_ST_BIGINT,
    TDS_ST_BIT,
    TDS_ST_REAL,
    TDS_ST_FLOAT,
    TDS_ST_DECIMAL,
    TDS_ST_NUMERIC,
    TDS_ST_SMALLMONEY,
    TDS_ST_MONEY,
    TDS_ST_CHAR,
    TDS_ST_VARCHAR,
    TDS_ST_NCHAR,
    TDS_ST_NVARCHAR,
    TDS_ST_BINARY,
    TDS_ST_VARBINARY,
    TDS_ST_DATE,
    TDS_ST_TIME,
    TDS_ST_DATETIME2,
    TDS_ST_DATETIMEOFFSET,
    TDS_ST_DATETIME,
    TDS_ST_SMALLDATETIME,
    TDS_ST_UNIQUEIDENTIFIER,
} tds_sqltype;

/* How a type travels besides its family: the legacy large types TEXT,
 * NTEXT and IMAGE (a text pointer before every value, at every TDS version),
 * XML (an NVARCHAR(MAX) with its own TYPE_INFO), SQL_VARIANT (each value
 * carries its own base type), ROWVERSION/TIMESTAMP (a BINARY(8) column whose
 * COLMETADATA UserType is 80). */
typedef enum tds_form {
    TDS_FORM_PLAIN,
    TDS_FORM_LEGACY,     /* st VARCHAR/NVARCHAR/VARBINARY with is_max */
    TDS_FORM_XML,        /* st NVARCHAR with is_max */
    TDS_FORM_VARIANT,    /* st NVARCHAR (the family text values take) */
    TDS_FORM_ROWVERSION, /* st BINARY(8), marked by UserType 80 in COLMETADATA */
} tds_form;

/* A logical column or parameter type. */
typedef struct tds_type {
    tds_sqltype st;
    tds_form form;
    uint32_t len;      /* char/binary types: characters (N types: UTF-16 units) or bytes */
    bool is_max;       /* (N)VARCHAR(MAX), VARBINARY(MAX) */
    uint8_t precision; /* DECIMAL/NUMERIC */
    uint8_t scale;     /* DECIMAL/NUMERIC; fractional digits of TIME/DATETIME2/DATETIMEOFFSET */
} tds_type;

typedef struct tds_column {
    char *name; /* UTF-8; owned by whoever built the array */
    tds_type type;
} tds_column;

typedef enum tds_vkind {
    TDS_V_NULL,
    TDS_V_INT,
    TDS_V_REAL,
    TDS_V_TEXT, /* UTF-8, p/n */
    TDS_V_BLOB, /* bytes, p/n */
} tds_vkind;

/* A value; p is borrowed unless a container says otherwise. */
typedef struct tds_value {
    tds_vkind kind;
    int64_t i;
    double d;
    const uint8_t *p;
    size_t n;
} tds_value;

/* Parses a SQL Server type name, case-insensitive, with optional (n|MAX) or
 * (p[,s]); INTEGER is accepted as INT, BLOB as VARBINARY(MAX). TEXT, NTEXT
 * and IMAGE are SQL Server's legacy types, as on a real server. Returns 0, or
 * -1 if the name is not a supported type. */
int tds_type_parse(const char *s, size_t len, tds_type *out);
/* Lower-case SQL Server name of the type family ("nvarchar"). */
const char *tds_type_name(tds_sqltype st);
/* Lower-case SQL Server name of t itself ("ntext", "xml", "sql_variant"). */
const char *tds_type_fullname(const tds_type *t);

/* Appends the TYPE_INFO the client sees for t at version ver (date/time types
 * go as NVARCHAR below 7.3, MAX types and XML as NTEXT/TEXT/IMAGE below 7.2),
 * including the table name of legacy text types (COLMETADATA only). */
void tds_typeinfo_write(tds_buf *b, const tds_type *t, uint32_t ver);

/* Appends v converted to t as ROW data. On a conversion failure appends
 * nothing and returns -1 with SQL Server's error number and message. */
int tds_value_write(tds_buf *b, const tds_type *t, const tds_value *v, uint32_t ver, int *errnum,
                    char *msg, size_t msglen);

/* The TYPE_INFO of an RPC parameter as sent by the client. */
typedef struct tds_wiretype {
    uint8_t id;
    uint32_t maxlen;
    bool plp;
    uint8_t precision;
    uint8_t scale;
} tds_wiretype;

/* Reads a parameter TYPE_INFO; fills the wire form and the logical type.
 * Returns 0, or -1 if malformed or unsupported (reason in err). */
int tds_typeinfo_read(tds_rd *r, tds_wiretype *wt, tds_type *t, char *err, size_t errlen);
/* Reads a parameter value of type wt. Text and blobs are new memory returned
 * in *owned (caller frees; v->p points into it). Returns 0 or -1. */
int tds_value_read(tds_rd *r, const tds_wiretype *wt, tds_value *v, uint8_t **owned, char *err,
                   size_t errlen);

/* ---- conversions, exposed for tests ------------------------------------ */

/* Parsed date and/or time. */
typedef struct tds_datetime {
    bool has_date;
    bool has_time;
    bool has_tz;
    int year, month, day;
    int hour, minute, second;
    uint32_t frac; /* 100 ns units, 0..9999999 */
    int tz_minutes;
} tds_datetime;

/* Parses "YYYY-MM-DD", "hh:mm[:ss[.f]]", or both separated by ' ' or 'T',
 * optionally followed by "Z" or "+hh:mm". Returns 0 or -1. */
int tds_datetime_parse(const char *s, size_t len, tds_datetime *out);
/* Days from 0001-01-01 (proleptic Gregorian). */
int64_t tds_days_from_civil(int y, int m, int d);
void tds_civil_from_days(int64_t days, int *y, int *m, int *d);

/* Converts a decimal text ("-12.5", "3e2") to a magnitude scaled by 10^scale,
 * rounded half away from zero, as four little-endian 32-bit words. Returns 0,
 * -1 if not a number, -2 if more than `precision` digits are needed. */
int tds_decimal_from_text(const char *s, size_t len, uint8_t precision, uint8_t scale,
                          bool *negative, uint32_t mag[4]);
/* Writes the decimal text of a scaled magnitude into out (NUL-terminated). */
void tds_decimal_to_text(bool negative, const uint32_t mag[4], uint8_t scale, char *out,
                         size_t outlen);

#endif
