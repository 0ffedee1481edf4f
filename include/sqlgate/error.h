/* sqlgate: one error convention for the whole library.
 *
 * Functions that can fail return int (0 ok, -1 failure) or a pointer (NULL on
 * failure) and fill a caller-owned sg_err. The codes are the API's error
 * codes (docs/errors.md), so the HTTP edge renders an sg_err without
 * translating it. Messages never contain secrets.
 */
#ifndef SQLGATE_ERROR_H
#define SQLGATE_ERROR_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SG_MUST_USE        __attribute__((warn_unused_result))
#define SG_PRINTF(fmt, va) __attribute__((format(printf, fmt, va)))
#else
#define SG_MUST_USE
#define SG_PRINTF(fmt, va)
#endif

typedef enum sg_code {
    SG_OK = 0,
    SG_BAD_REQUEST,
    SG_UNAUTHORIZED,
    SG_FORBIDDEN,
    SG_UNKNOWN_DATABASE,
    SG_NOT_FOUND,
    SG_METHOD_NOT_ALLOWED,
    SG_PAYLOAD_TOO_LARGE,
    SG_UNSUPPORTED_MEDIA_TYPE,
    SG_SQL_ERROR,
    SG_POOL_EXHAUSTED,
    SG_DB_UNAVAILABLE,
    SG_DB_PAUSED,
    SG_OVERLOADED,
    SG_QUERY_TIMEOUT,
    SG_SHUTTING_DOWN,
    SG_CONFIG_INVALID, /* a reload's new configuration is invalid; nothing changed */
    SG_INTERNAL,
    SG_CODE_COUNT_
} sg_code;

/* Details a server attaches to SQL_ERROR (number, severity, state, line). */
typedef struct sg_sql_info {
    long number;
    int severity;
    int state;
    int line;
} sg_sql_info;

#define SG_ERR_MESSAGE_MAX 512

typedef struct sg_err {
    sg_code code;
    bool has_sql; /* sql is meaningful (code is SG_SQL_ERROR) */
    sg_sql_info sql;
    char message[SG_ERR_MESSAGE_MAX];
} sg_err;

/* Sets code and a printf-formatted message; returns -1 so that a failing
 * function can `return sg_err_set(err, ...)`. err may be NULL. */
int sg_err_set(sg_err *err, sg_code code, const char *fmt, ...) SG_PRINTF(3, 4);

/* Resets err to SG_OK with an empty message. err may be NULL. */
void sg_err_clear(sg_err *err);

/* Copies src into dst (both may alias). dst may be NULL. */
void sg_err_copy(sg_err *dst, const sg_err *src);

/* Static string: "BAD_REQUEST", ...; "OK" for SG_OK. */
const char *sg_code_name(sg_code code);

/* The HTTP status docs/errors.md gives the code (200 for SG_OK). */
int sg_code_http_status(sg_code code);

#ifdef __cplusplus
}
#endif
#endif
