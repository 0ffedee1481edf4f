/* qstream: see qstream.h.
 *
 * States, in order: the head ({"database":...,"results":[), then for each
 * result its columns and rows, then the tail (rows_affected, elapsed_ms).
 * Object keys of a result are escaped once, when its columns arrive.
 */
#include "qstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"

enum qs_state { QS_HEAD, QS_NEXT_RESULT, QS_ROWS, QS_ROW, QS_DONE, QS_FAILED };

/* Values up to this size are encoded in one go; larger ones piece by piece. */
#define QS_SMALL_VALUE 4096
/* Input bytes per piece: worst-case text output 6 * (4096 + 3) + 2 bytes,
 * base64 of 16 KiB 21.8 KiB; both within QSTREAM_PIECE_MAX. */
#define QS_TEXT_PIECE   4096
#define QS_BINARY_PIECE (16 * 1024)

struct qstream {
    sg_query *q; /* owned until the batch is over, then NULL */
    enum qs_state state;
    jw_buf out;
    char *database;  /* owned */
    char *operation; /* owned, or NULL */
    int64_t max_rows;
    bool arrays;
    int64_t start_us;

    /* Current result. */
    size_t n_results;
    size_t n_cols;
    jw_buf keys;     /* "name": for each column, concatenated */
    size_t *key_off; /* owned, n_cols + 1 offsets into keys */
    size_t key_off_cap;
    int64_t row_count;

    /* Current row (state QS_ROW): the driver's values stay valid until the
     * next driver call, which is made only once the row is written. */
    const sg_value *values; /* borrowed from the driver */
    size_t col;             /* next column to write */
    bool in_value;          /* span holds the value of column col, partly written */
    jw_span span;

    uint64_t max_value;
    uint64_t max_response;
    size_t small_value; /* larger values are written in pieces */
    size_t text_piece;  /* input bytes per piece */
    size_t binary_piece;
    uint64_t sent; /* bytes consumed from out so far */
};

qstream *qstream_new(sg_query *q, const qstream_options *opt, sg_err *err)
{
    qstream *s = calloc(1, sizeof *s);
    if (s == NULL)
        goto fail;
    s->q = q;
    s->database = strdup(opt->database);
    s->operation = opt->operation ? strdup(opt->operation) : NULL;
    if (s->database == NULL || (opt->operation && s->operation == NULL))
        goto fail;
    s->max_rows = opt->max_rows;
    s->arrays = opt->rows_as_arrays;
    s->start_us = opt->start_us;
    s->max_value = opt->max_value_bytes;
    s->max_response = opt->max_response_bytes;
    size_t piece = opt->value_piece_bytes < QS_TEXT_PIECE ? opt->value_piece_bytes : QS_TEXT_PIECE;
    s->small_value = piece ? piece : QS_SMALL_VALUE;
    s->text_piece = piece ? piece : QS_TEXT_PIECE;
    s->binary_piece = piece ? piece : QS_BINARY_PIECE;
    jw_init(&s->out, 0);
    jw_init(&s->keys, 0);
    return s;
fail:
    if (s != NULL)
        qstream_free(s);
    else
        sg_query_end(q);
    sg_err_set(err, SG_INTERNAL, "out of memory");
    return NULL;
}

/* Appends key i ("cand":) to s->keys; false, with nothing appended, when
 * one of the keys before it is the same. The quoted text is compared in
 * place, so trying a name costs no allocation. */
static bool key_add(qstream *s, size_t i, const char *cand)
{
    size_t start = s->keys.len;
    jw_cstr(&s->keys, cand);
    jw_char(&s->keys, ':');
    size_t len = s->keys.len - start;
    for (size_t k = 0; k < i && !s->keys.failed; k++) {
        if (s->key_off[k + 1] - s->key_off[k] == len &&
            memcmp(s->keys.data + s->key_off[k], s->keys.data + start, len) == 0) {
            s->keys.len = start;
            return false;
        }
    }
    s->key_off[i] = start;
    s->key_off[i + 1] = s->keys.len;
    return true;
}

/* Columns: unnamed ones are column<N>, repeated names get _2, _3, ... */
static int begin_result(qstream *s, const sg_column *cols, size_t n, sg_err *err)
{
    if (n + 1 > s->key_off_cap) {
        size_t *off = realloc(s->key_off, (n + 1) * sizeof *off);
        if (off == NULL)
            return sg_err_set(err, SG_INTERNAL, "out of memory");
        s->key_off = off;
        s->key_off_cap = n + 1;
    }
    s->keys.len = 0;
    s->n_cols = n;
    s->row_count = 0;
    jw_lit(&s->out, s->n_results++ ? ",{\"columns\":[" : "{\"columns\":[");
    for (size_t i = 0; i < n; i++) {
        char base[128];
        if (cols[i].name[0] != '\0') {
            size_t len = strnlen(cols[i].name, sizeof base - 1);
            memcpy(base, cols[i].name, len);
            base[len] = '\0';
        } else {
            snprintf(base, sizeof base, "column%zu", i + 1);
        }
        char cand[160];
        memcpy(cand, base, strlen(base) + 1);
        for (unsigned k = 2; !key_add(s, i, cand); k++)
            snprintf(cand, sizeof cand, "%s_%u", base, k);

        jw_lit(&s->out, i ? ",{\"name\":" : "{\"name\":");
        jw_cstr(&s->out, cand);
        jw_lit(&s->out, ",\"type\":");
        jw_cstr(&s->out, cols[i].type ? cols[i].type : "");
        if (cols[i].precision > 0) {
            jw_lit(&s->out, ",\"precision\":");
            jw_i64(&s->out, cols[i].precision);
            jw_lit(&s->out, ",\"scale\":");
            jw_i64(&s->out, cols[i].scale);
        }
        jw_char(&s->out, '}');
    }
    jw_lit(&s->out, "],\"rows\":[");
    if (s->keys.failed)
        return sg_err_set(err, SG_INTERNAL, "out of memory");
    return 0;
}

static void encode_value(jw_buf *b, const sg_value *v)
{
    switch (v->type) {
    case SG_V_INT:
        jw_int(b, v->u.i);
        break;
    case SG_V_FLOAT:
        jw_double(b, v->u.f);
        break;
    case SG_V_BOOL:
        jw_bool(b, v->u.b);
        break;
    case SG_V_TEXT:
        jw_str(b, v->u.s.ptr, v->u.s.len);
        break;
    case SG_V_BINARY:
        jw_base64(b, (const unsigned char *)v->u.s.ptr, v->u.s.len);
        break;
    default:
        jw_null(b);
        break;
    }
}

/* Bytes of the response so far, sent or buffered. */
static uint64_t produced(const qstream *s)
{
    return s->sent + s->out.len;
}

static int too_large(const qstream *s, sg_err *err)
{
    return sg_err_set(err, SG_PAYLOAD_TOO_LARGE,
                      "the result is larger than SQLGATE_MAX_RESPONSE_BYTES (%llu bytes); ask for "
                      "fewer rows or smaller values",
                      (unsigned long long)s->max_response);
}

/* Starts the value of column s->col: small ones are written whole, text
 * and binary past QS_SMALL_VALUE become the current span. */
static int begin_value(qstream *s, sg_err *err)
{
    const sg_value *v = &s->values[s->col];
    if (v->type != SG_V_TEXT && v->type != SG_V_BINARY) {
        encode_value(&s->out, v);
        s->col++;
        return 0;
    }
    if (s->max_value != 0 && v->u.s.len > s->max_value)
        return sg_err_set(err, SG_PAYLOAD_TOO_LARGE,
                          "a value of column %zu in row %lld is %zu bytes, larger than "
                          "SQLGATE_MAX_VALUE_BYTES (%llu bytes)",
                          s->col + 1, (long long)s->row_count + 1, v->u.s.len,
                          (unsigned long long)s->max_value);
    jw_span_kind kind = v->type == SG_V_TEXT ? JW_SPAN_STR : JW_SPAN_BASE64;
    /* Fail before any of a value that cannot fit is encoded. */
    if (s->max_response != 0 && jw_span_min_len(kind, v->u.s.len) > s->max_response - produced(s))
        return too_large(s, err);
    if (v->u.s.len <= s->small_value) {
        encode_value(&s->out, v);
        s->col++;
        return 0;
    }
    jw_span_init(&s->span, kind, v->u.s.ptr, v->u.s.len);
    s->in_value = true;
    return 0;
}

/* One step inside a row: a piece of a large value, or the columns up to the
 * next large value or the end of the row (small values go whole, so a row of
 * them takes one step). */
static int row_step(qstream *s, sg_err *err)
{
    jw_buf *b = &s->out;
    if (s->in_value) {
        size_t piece = s->span.kind == JW_SPAN_STR ? s->text_piece : s->binary_piece;
        if (jw_span_write(b, &s->span, piece)) {
            s->in_value = false;
            s->col++;
        }
        return 0;
    }
    while (s->col < s->n_cols) {
        if (s->col > 0)
            jw_char(b, ',');
        if (!s->arrays)
            jw_raw(b, s->keys.data + s->key_off[s->col],
                   s->key_off[s->col + 1] - s->key_off[s->col]);
        if (begin_value(s, err) != 0)
            return -1;
        if (s->in_value)
            return 0;
    }
    jw_char(b, s->arrays ? ']' : '}');
    s->row_count++;
    s->values = NULL;
    s->state = QS_ROWS;
    return 0;
}

static void end_result(qstream *s, bool truncated)
{
    jw_lit(&s->out, "],\"row_count\":");
    jw_i64(&s->out, s->row_count);
    jw_lit(&s->out, truncated ? ",\"truncated\":true}" : ",\"truncated\":false}");
}

static void write_head(qstream *s)
{
    jw_lit(&s->out, "{\"database\":");
    jw_cstr(&s->out, s->database);
    if (s->operation != NULL) {
        jw_lit(&s->out, ",\"operation\":");
        jw_cstr(&s->out, s->operation);
    }
    jw_lit(&s->out, ",\"results\":[");
}

static void write_tail(qstream *s)
{
    int64_t affected = sg_query_rows_affected(s->q);
    sg_query_end(s->q);
    s->q = NULL;
    jw_lit(&s->out, "],\"rows_affected\":");
    jw_i64(&s->out, affected);
    jw_lit(&s->out, ",\"elapsed_ms\":");
    jw_ms(&s->out, sg_clock_us() - s->start_us);
    jw_char(&s->out, '}');
}

/* One step of the state machine. */
static int step(qstream *s, sg_err *err)
{
    switch (s->state) {
    case QS_HEAD:
        write_head(s);
        s->state = QS_NEXT_RESULT;
        return 0;
    case QS_NEXT_RESULT: {
        const sg_column *cols;
        size_t n;
        int rc = sg_query_next_result(s->q, &cols, &n, err);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            write_tail(s);
            s->state = QS_DONE;
            return 0;
        }
        if (begin_result(s, cols, n, err) != 0)
            return -1;
        s->state = QS_ROWS;
        return 0;
    }
    case QS_ROWS: {
        const sg_value *values;
        int rc = sg_query_next_row(s->q, &values, err);
        if (rc < 0)
            return -1;
        if (rc == 0 || s->row_count == s->max_rows) {
            /* One row past the cap tells that the result was truncated; the
             * rest of it is skipped by the next next_result. */
            end_result(s, rc > 0);
            s->state = QS_NEXT_RESULT;
            return 0;
        }
        if (s->row_count > 0)
            jw_char(&s->out, ',');
        jw_char(&s->out, s->arrays ? '[' : '{');
        s->values = values;
        s->col = 0;
        s->state = QS_ROW;
        return row_step(s, err);
    }
    case QS_ROW:
        return row_step(s, err);
    default:
        return 0;
    }
}

int qstream_fill(qstream *s, size_t want, sg_err *err)
{
    if (s->state == QS_FAILED)
        return sg_err_set(err, SG_INTERNAL, "the stream already failed");
    while (s->state != QS_DONE && s->out.len < want) {
        int rc = step(s, err);
        if (rc == 0 && !s->out.failed && s->max_response != 0 && produced(s) > s->max_response)
            rc = too_large(s, err);
        if (rc != 0 || s->out.failed) {
            if (rc == 0)
                sg_err_set(err, SG_INTERNAL, "out of memory while encoding the result");
            s->state = QS_FAILED;
            return -1;
        }
    }
    return s->state == QS_DONE ? 0 : 1;
}

bool qstream_finished(const qstream *s)
{
    return s->state == QS_DONE;
}

const char *qstream_data(const qstream *s, size_t *len)
{
    *len = s->out.len;
    return s->out.data;
}

void qstream_consume(qstream *s, size_t n)
{
    s->sent += n < s->out.len ? n : s->out.len;
    jw_consume(&s->out, n);
}

char *qstream_steal(qstream *s, size_t *len)
{
    return jw_steal(&s->out, len);
}

void qstream_free(qstream *s)
{
    if (s == NULL)
        return;
    sg_query_end(s->q);
    jw_free(&s->out);
    jw_free(&s->keys);
    free(s->key_off);
    free(s->database);
    free(s->operation);
    free(s);
}
