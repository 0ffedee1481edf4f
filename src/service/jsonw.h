/* jsonw: append-only JSON text writer over a growable byte buffer.
 *
 * Used where building a jansson tree would cost memory in proportion to the
 * data (result rows): values are encoded one at a time into a buffer that is
 * drained and reused. Every string written is valid UTF-8 JSON: invalid
 * input bytes become U+FFFD, control characters are escaped.
 */
#ifndef SQLGATE_JSONW_H
#define SQLGATE_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/util.h"

/* The library's capped byte buffer: data, len, failed (sticky) as there. */
typedef sg_buf jw_buf;

/* Initialises an empty buffer that will not grow beyond max bytes (0: no cap). */
void jw_init(jw_buf *b, size_t max);
/* Frees the data; b may be reused after jw_init. */
void jw_free(jw_buf *b);
/* Drops the first n bytes (what was sent), keeping the rest. */
void jw_consume(jw_buf *b, size_t n);
/* Hands the data over (caller frees with free()); b is left empty. */
char *jw_steal(jw_buf *b, size_t *len);

void jw_raw(jw_buf *b, const char *s, size_t len);
void jw_lit(jw_buf *b, const char *s); /* NUL-terminated raw text */
void jw_char(jw_buf *b, char c);
/* A quoted JSON string from UTF-8 bytes (len bytes, may contain NUL). */
void jw_str(jw_buf *b, const char *s, size_t len);
void jw_cstr(jw_buf *b, const char *s);
/* Integers beyond +-2^53 are written as strings (docs/api.md, values). */
void jw_int(jw_buf *b, int64_t v);
/* Plain digits at any size (counts such as rows_affected, whose schema is an
 * integer). */
void jw_i64(jw_buf *b, int64_t v);
/* us microseconds as milliseconds with exactly three decimals ("1.250"). */
void jw_ms(jw_buf *b, int64_t us);
/* Shortest text that reads back to the same double; non-finite as null. */
void jw_double(jw_buf *b, double v);
void jw_bool(jw_buf *b, bool v);
void jw_null(jw_buf *b);
/* Quoted base64 (RFC 4648, with padding) of len bytes. */
void jw_base64(jw_buf *b, const unsigned char *p, size_t len);

/* --- Values written a piece at a time ------------------------------------
 *
 * A large text or binary value is encoded as the response is sent, so the
 * encoded copy is never held whole: each jw_span_write appends the encoding
 * of a bounded number of input bytes. The concatenated pieces are exactly
 * the text jw_str / jw_base64 write for the whole value, wherever the pieces
 * split it (also inside a UTF-8 sequence or a base64 group). */
typedef enum jw_span_kind {
    JW_SPAN_STR,    /* as jw_str: a JSON string from UTF-8 bytes */
    JW_SPAN_BASE64, /* as jw_base64 */
} jw_span_kind;

typedef struct jw_span {
    const unsigned char *p; /* borrowed: must stay valid until the span is done */
    size_t len;
    size_t pos; /* input bytes encoded so far */
    jw_span_kind kind;
    bool opened; /* the opening quote is written */
    bool done;   /* the closing quote is written */
} jw_span;

/* Starts a span over len bytes at p (borrowed); writes nothing yet. */
void jw_span_init(jw_span *sp, jw_span_kind kind, const void *p, size_t len);
/* Appends the next piece: the encoding of about in_max more input bytes
 * (at least one character or base64 group; a UTF-8 sequence is never split,
 * so up to 3 bytes more). Output per piece is at most 6 * (in_max + 3) + 2
 * bytes for text, 4 * in_max / 3 + 6 for base64. Returns true once the
 * closing quote has been written; false while more is to come or when the
 * buffer failed (b->failed). */
bool jw_span_write(jw_buf *b, jw_span *sp, size_t in_max);
/* The fewest bytes the whole encoding of len input bytes can take (exact
 * for base64, quotes included). */
size_t jw_span_min_len(jw_span_kind kind, size_t len);

#endif
