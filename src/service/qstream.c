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

enum qs_state { QS_HEAD, QS_NEXT_RESULT, QS_ROWS, QS_DONE, QS_FAILED };

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

static void encode_row(qstream *s, const sg_value *values)
{
    jw_buf *b = &s->out;
    if (s->row_count > 0)
        jw_char(b, ',');
    jw_char(b, s->arrays ? '[' : '{');
    for (size_t i = 0; i < s->n_cols; i++) {
        if (i > 0)
            jw_char(b, ',');
        if (!s->arrays)
            jw_raw(b, s->keys.data + s->key_off[i], s->key_off[i + 1] - s->key_off[i]);
        encode_value(b, &values[i]);
    }
    jw_char(b, s->arrays ? ']' : '}');
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
        encode_row(s, values);
        s->row_count++;
        return 0;
    }
    default:
        return 0;
    }
}

int qstream_fill(qstream *s, size_t want, sg_err *err)
{
    if (s->state == QS_FAILED)
        return sg_err_set(err, SG_INTERNAL, "the stream already failed");
    while (s->state != QS_DONE && s->out.len < want) {
        if (step(s, err) != 0 || s->out.failed) {
            if (s->out.failed)
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
