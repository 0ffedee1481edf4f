/* log: one line per event on stderr, JSON objects (default) or text.
 *
 * The edges of the program (HTTP handlers, main) log; library modules do not.
 * Thread-safe: each line is written with one call under a lock.
 *
 * A line is a message and a list of typed fields, written in order after
 * "time", "level" and "msg". Callers build the fields on the stack from the
 * values they hold (log_str, log_int, ...): no JSON tree, no allocation
 * before the line is rendered. Callers never put secrets in them.
 */
#ifndef SQLGATE_LOG_H
#define SQLGATE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sqlgate/config.h"

/* Sets the threshold and format; before this call: info, JSON. */
void log_setup(sg_log_level level, bool json);

bool log_enabled(sg_log_level level);

/* How a field's value is written. In text lines a string that is a plain
 * word is bare, any other string quoted and escaped as in JSON; every other
 * kind is written as in JSON. */
typedef enum log_kind {
    LOG_STR,  /* s, len bytes of UTF-8 (an invalid byte reads as U+FFFD); s NULL: null */
    LOG_INT,  /* i */
    LOG_MS,   /* i microseconds, written as milliseconds with 3 decimals ("1.250") */
    LOG_REAL, /* d, 9 significant digits, always with a '.' or an exponent ("12.0");
                 not finite: null */
    LOG_BOOL, /* b */
    LOG_JSON, /* s, len bytes of compact JSON text, written as they are */
} log_kind;

/* One field of a line; every pointer is borrowed for the call. */
typedef struct log_field {
    const char *key; /* a plain word: letters, digits, '_' */
    log_kind kind;
    const char *s;
    size_t len;
    union {
        int64_t i;
        double d;
        bool b;
    };
} log_field;

/* Writes one event with n fields (borrowed) in order. */
void log_line(sg_log_level level, const char *msg, const log_field *fields, size_t n);

/* Field constructors. s is NUL-terminated, or NULL for a null value. */
static inline log_field log_str(const char *key, const char *s)
{
    return (log_field){.key = key, .kind = LOG_STR, .s = s, .len = s != NULL ? strlen(s) : 0};
}

static inline log_field log_strn(const char *key, const char *s, size_t len)
{
    return (log_field){.key = key, .kind = LOG_STR, .s = s, .len = len};
}

static inline log_field log_int(const char *key, int64_t v)
{
    return (log_field){.key = key, .kind = LOG_INT, .i = v};
}

static inline log_field log_ms(const char *key, int64_t us)
{
    return (log_field){.key = key, .kind = LOG_MS, .i = us};
}

static inline log_field log_real(const char *key, double v)
{
    return (log_field){.key = key, .kind = LOG_REAL, .d = v};
}

static inline log_field log_bool(const char *key, bool v)
{
    return (log_field){.key = key, .kind = LOG_BOOL, .b = v};
}

/* text: len bytes of compact JSON (an array of names, say) that the caller
 * has already encoded. */
static inline log_field log_json(const char *key, const char *text, size_t len)
{
    return (log_field){.key = key, .kind = LOG_JSON, .s = text, .len = len};
}

/* log_line with the fields given as arguments (at least one), for lines
 * whose fields are always the same:
 *     log_at(SG_LOG_WARN, "database is down", log_str("db", name), log_str("to", "down"));
 * The arguments are evaluated once, even when the level is off. */
#define log_at(level, msg, ...)                                                                    \
    log_line((level), (msg), (const log_field[]){__VA_ARGS__},                                     \
             sizeof((const log_field[]){__VA_ARGS__}) / sizeof(log_field))

/* A line without fields. */
#define log_msg(level, msg) log_line((level), (msg), NULL, 0)

#endif
