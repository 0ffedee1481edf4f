/* util: small helpers the library and the service share.
 *
 * Internal: not installed, not part of the library's API. Each helper lives
 * here once so that a fix (a wipe the compiler may not drop, a file that grows
 * while it is read, an overlong UTF-8 form) is made in one place. The fuzz
 * oracles (fuzz/) keep their own UTF-8 check on purpose: an oracle that
 * shared this code would share its bugs.
 */
#ifndef SQLGATE_LIB_UTIL_H
#define SQLGATE_LIB_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* --- Secrets ---------------------------------------------------------------- */

/* Zeroes n bytes at p (borrowed) with stores the compiler may not drop. */
void sg_wipe(void *p, size_t n);

/* Wipes the NUL-terminated s, then frees it (steals s). Accepts NULL. */
void sg_free_secret(char *s);

/* --- Files ------------------------------------------------------------------ */

enum {
    SG_FILE_ERRNO = -1,       /* errno says why */
    SG_FILE_TOO_LARGE = -2,   /* more than cap bytes (also: grew while read) */
    SG_FILE_NOT_REGULAR = -3, /* a directory, a FIFO, a device... */
    SG_FILE_HAS_NUL = -4,     /* a NUL byte: not text */
};

/* Reads the whole regular file at path (borrowed), at most cap bytes, into a
 * new buffer with a NUL after the last byte (*out, caller frees; *len bytes).
 * With text, a NUL byte inside fails (SG_FILE_HAS_NUL); without, the caller
 * sees it (a parser that reports it by line). Returns 0 or one of SG_FILE_*,
 * with errno set for SG_FILE_ERRNO. On failure nothing is allocated, and what
 * was read is wiped first: the file may hold a secret. */
int sg_file_read(const char *path, size_t cap, bool text, char **out, size_t *len);

/* --- Growable byte buffer ---------------------------------------------------- */

/* A byte buffer with a cap: an append that would pass max, or that finds no
 * memory, fails and marks the buffer failed (sticky), so a writer can append
 * many pieces and look once at the end. A zero-initialised sg_buf is an empty
 * buffer with no cap. */
typedef struct sg_buf {
    char *data; /* owned; NUL-terminated after every successful append */
    size_t len;
    size_t cap;
    size_t max;  /* len never exceeds it (0 or SIZE_MAX: no cap) */
    bool failed; /* an append failed (out of memory or over max); sticky */
} sg_buf;

/* An empty buffer that never holds more than max bytes (0: no cap). */
void sg_buf_init(sg_buf *b, size_t max);
/* Frees the data; b may be reused after sg_buf_init. */
void sg_buf_free(sg_buf *b);
/* Room for extra more bytes and a NUL. False (and b->failed) when not. */
bool sg_buf_reserve(sg_buf *b, size_t extra);
/* Appends n bytes at s (borrowed). False (and b->failed) when it cannot. */
bool sg_buf_append(sg_buf *b, const void *s, size_t n);
/* sg_buf_append with its common case (room left, nothing failed) inline:
 * the JSON writer appends every token through it. */
static inline bool sg_buf_put(sg_buf *b, const void *s, size_t n)
{
    if (!b->failed && n < b->cap - b->len && (b->max == 0 || n <= b->max - b->len)) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = '\0';
        return true;
    }
    return sg_buf_append(b, s, n);
}
/* Drops the first n bytes, keeping the rest. */
void sg_buf_consume(sg_buf *b, size_t n);
/* Hands the data over (new: caller frees with free()); b is left empty. */
char *sg_buf_steal(sg_buf *b, size_t *len);

/* --- Text -------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (at most n bytes, n > 0): 1 for
 * ASCII, 0 when invalid (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF, not cut off by n). */
size_t sg_utf8_len(const unsigned char *p, size_t n);

/* The value of hex digit c (either case), or -1. */
int sg_hex_value(int c);

/* --- Time -------------------------------------------------------------------- */

/* Sleeps ms milliseconds (nothing for ms <= 0), resuming after signals. */
void sg_sleep_ms(int64_t ms);

/* Initialises attr (destroyed by the caller) for condition variables on the
 * monotonic clock: for a caller that makes many (one per pool waiter).
 * Returns 0, or -1 with nothing to destroy. */
int sg_condattr_init_monotonic(pthread_condattr_t *attr);

/* Initialises cv on the monotonic clock, so that sg_cond_wait_until takes
 * sg_clock_ms() deadlines (a wall-clock wait would jump with the clock).
 * Returns 0 or -1. */
int sg_cond_init_monotonic(pthread_cond_t *cv);

/* Waits on cv (initialised by sg_cond_init_monotonic or on a monotonic
 * attribute) with mu held, until signalled or deadline_ms (sg_clock_ms) has
 * passed. Spurious wake-ups happen: callers loop on their condition. */
void sg_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ms);

#endif
