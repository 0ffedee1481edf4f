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

/* The error codes, once. X(NAME, outcome): the code is SG_NAME and its name
 * the string "NAME"; outcome is the label a query that ends with the code is
 * counted under in metrics (sqlgate_queries_total{outcome=...}); codes a
 * query cannot end with, or that need no label of their own, share "error".
 * Add a code here and everything indexed by it follows; its HTTP status is
 * the service's business (src/service/httperr.c), not the library's. */
#define SG_CODE_LIST(X)                                                                            \
    X(OK, "ok")                                                                                    \
    X(BAD_REQUEST, "error")                                                                        \
    X(UNAUTHORIZED, "error")                                                                       \
    X(FORBIDDEN, "forbidden")                                                                      \
    X(UNKNOWN_DATABASE, "error")                                                                   \
    X(NOT_FOUND, "error")                                                                          \
    X(METHOD_NOT_ALLOWED, "error")                                                                 \
    X(PAYLOAD_TOO_LARGE, "error")                                                                  \
    X(UNSUPPORTED_MEDIA_TYPE, "error")                                                             \
    X(SQL_ERROR, "sql_error")                                                                      \
    X(POOL_EXHAUSTED, "pool_exhausted")                                                            \
    X(DB_UNAVAILABLE, "unavailable")                                                               \
    X(DB_PAUSED, "paused")                                                                         \
    X(OVERLOADED, "error")                                                                         \
    X(QUERY_TIMEOUT, "timeout")                                                                    \
    X(SHUTTING_DOWN, "shutting_down")                                                              \
    X(CONFIG_INVALID, "error") /* a reload's new configuration is invalid; nothing changed */      \
    X(INTERNAL, "error")

typedef enum sg_code {
#define SG_CODE_ENUM_(name, outcome) SG_##name,
    SG_CODE_LIST(SG_CODE_ENUM_)
#undef SG_CODE_ENUM_
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

/* Static string: "BAD_REQUEST", ...; "OK" for SG_OK; "INTERNAL" for a value
 * outside the list. */
const char *sg_code_name(sg_code code);

/* Static string: the code's outcome label (SG_CODE_LIST); "error" for a value
 * outside the list. */
const char *sg_code_outcome(sg_code code);

#ifdef __cplusplus
}
#endif
#endif
