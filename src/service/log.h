/* log: one line per event on stderr, JSON objects (default) or text.
 *
 * The edges of the program (HTTP handlers, main) log; library modules do not.
 * Thread-safe: each line is written with one call under a lock.
 */
#ifndef SQLGATE_LOG_H
#define SQLGATE_LOG_H

#include <jansson.h>
#include <stdbool.h>

#include "sqlgate/config.h"

/* Sets the threshold and format; before this call: info, JSON. */
void log_setup(sg_log_level level, bool json);

bool log_enabled(sg_log_level level);

/* Writes one event. fields (steals; may be NULL) is a JSON object whose
 * members follow "time", "level" and "msg". Callers never put secrets in it. */
void log_event(sg_log_level level, const char *msg, json_t *fields);

/* One field of a line written by log_line; every pointer is borrowed for the
 * call. The hot path (the access log) uses this form: no JSON tree. */
typedef enum log_kind {
    LOG_STR,  /* s, len bytes of UTF-8 */
    LOG_INT,  /* i */
    LOG_MS,   /* i microseconds, written as milliseconds with 3 decimals */
    LOG_BOOL, /* b */
    LOG_JSON, /* s, len bytes of compact JSON text, written as they are */
} log_kind;

typedef struct log_field {
    const char *key; /* a plain word: letters, digits, '_' */
    log_kind kind;
    const char *s;
    size_t len;
    int64_t i;
    bool b;
} log_field;

/* Writes one event with n fields in order, after "time", "level" and "msg". */
void log_line(sg_log_level level, const char *msg, const log_field *fields, size_t n);

#define log_info(msg, fields)  log_event(SG_LOG_INFO, (msg), (fields))
#define log_warn(msg, fields)  log_event(SG_LOG_WARN, (msg), (fields))
#define log_error(msg, fields) log_event(SG_LOG_ERROR, (msg), (fields))
#define log_debug(msg, fields) log_event(SG_LOG_DEBUG, (msg), (fields))

#endif
