/* qstream: encodes a running query's results as the JSON response of
 * docs/api.md, a piece at a time, so that a result of any size streams out in
 * constant memory (one reused buffer, rows encoded as they are fetched). */
#ifndef SQLGATE_QSTREAM_H
#define SQLGATE_QSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sqlgate/db.h"
#include "sqlgate/error.h"

typedef struct qstream qstream;

/* Most bytes one step of the encoder appends (a piece of a large value). */
#define QSTREAM_PIECE_MAX (32 * 1024)

typedef struct qstream_options {
    const char *database;  /* real name, echoed (copied) */
    const char *operation; /* echoed when not NULL (copied) */
    int64_t max_rows;      /* rows per result set, >= 1 */
    bool rows_as_arrays;
    int64_t start_us; /* when the request arrived (sg_clock_us), for elapsed_ms */
    /* Caps (0: none). A text or binary value longer than max_value_bytes (as
     * the database returns it, before encoding), or a response body longer
     * than max_response_bytes, fails the stream with SG_PAYLOAD_TOO_LARGE;
     * a value that would cross the response cap fails before any of it is
     * encoded. */
    uint64_t max_value_bytes;
    uint64_t max_response_bytes;
    /* Input bytes per piece of a large value, and the size past which a
     * value is written in pieces; 0: the defaults (4 KiB of text, 16 KiB of
     * binary, pieces past 4 KiB). At most 4096. Tests and the fuzzer make it
     * small so that pieces end everywhere. */
    size_t value_piece_bytes;
} qstream_options;

/* Takes over the query (steals q, also on failure, when it is ended).
 * NULL with err SG_INTERNAL on allocation failure. */
qstream *qstream_new(sg_query *q, const qstream_options *opt, sg_err *err);

/* Encodes until at least `want` bytes are buffered or the response is
 * complete. A large text or binary value is encoded a piece at a time, so
 * what is buffered stays below want + QSTREAM_PIECE_MAX whatever the size of
 * a value. Returns 1 while more is to come, 0 once the response is complete
 * (the query has then been ended and its connection returned), -1 on error
 * (err set; the stream can produce nothing more). */
int qstream_fill(qstream *s, size_t want, sg_err *err);

/* True once the whole response has been encoded. */
bool qstream_finished(const qstream *s);

/* The bytes buffered so far (borrowed until the next fill or consume). */
const char *qstream_data(const qstream *s, size_t *len);
void qstream_consume(qstream *s, size_t n);

/* Hands the buffered bytes over (caller frees with free()). */
char *qstream_steal(qstream *s, size_t *len);

/* Ends the query if it is still running (cancelling what is left of it) and
 * frees everything. Accepts NULL. */
void qstream_free(qstream *s);

#endif
