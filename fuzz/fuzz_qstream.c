/* libFuzzer target: the streaming row-to-JSON encoder (qstream + jsonw).
 *
 * The real qstream runs over a real sg_db whose driver ("fuzz", below) plays
 * back results decoded from the input: any number of result sets, columns
 * with empty, repeated, over-long or invalid UTF-8 names, and rows holding
 * every value kind (integers around +-2^53 and at the limits, any double
 * including NaN and infinities, text with NUL bytes and invalid UTF-8,
 * binary), plus an optional injected driver error. The response is pulled
 * out in chunks of varying sizes, as api.c does, and must then:
 *   - parse as JSON (jansson, duplicate keys rejected);
 *   - hold exactly the scripted results: column names unique and in order,
 *     rows capped at max_rows with `truncated` and `row_count` right, each
 *     value rendered as docs/api.md says (integers exact up to 2^53 and strings
 *     beyond, non-finite floats null, valid text unchanged, binary as base64
 *     of the same bytes), rows_affected echoed.
 * With an injected error the stream must fail cleanly instead.
 *
 * Input layout: 4 option bytes (rows_as, operation, steal and value piece
 * size; max_rows; chunk sizes),
 * then the driver script (see script_decode).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_utf8.h"
#include "qstream.h"
#include "sqlgate/db.h"

#define MAX_RESULTS 4
#define MAX_COLS    12
#define MAX_ROWS    24
#define EXACT_MAX   9007199254740992LL /* 2^53 */

/* --- The scripted driver ------------------------------------------------------ */

typedef struct fz_result {
    size_t n_cols;
    sg_column cols[MAX_COLS];
    char *names[MAX_COLS]; /* owned; cols[].name points here */
    char *types[MAX_COLS];
    size_t n_rows;
    sg_value values[MAX_ROWS][MAX_COLS]; /* text borrowed from the script copy */
    size_t fail_row;                     /* next_row fails here; SIZE_MAX: never */
} fz_result;

struct sg_driver_conn {
    uint8_t *script; /* owned copy of the exec parameter's bytes */
    fz_result results[MAX_RESULTS];
    size_t n_results;
    size_t fail_result; /* next_result fails when it reaches this; SIZE_MAX: never */
    int64_t rows_affected;
    size_t cur;  /* results handed out so far */
    size_t row;  /* rows of the current result handed out */
    bool failed; /* an injected error happened */
};

static char *dup_cstr(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    FUZZ_CHECK(s != NULL, "out of memory");
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static const int64_t special_ints[] = {
    0,         1,         -1,         EXACT_MAX,    -EXACT_MAX, EXACT_MAX + 1, -EXACT_MAX - 1,
    INT64_MAX, INT64_MIN, 2147483647, -2147483648LL};

static double special_double(uint8_t k)
{
    switch (k % 9) {
    case 0:
        return NAN;
    case 1:
        return INFINITY;
    case 2:
        return -INFINITY;
    case 3:
        return -0.0;
    case 4:
        return 1.7976931348623157e308;
    case 5:
        return 4.9406564584124654e-324;
    case 6:
        return 0.1;
    case 7:
        return 9007199254740993.0;
    default:
        return 1.0;
    }
}

static void decode_value(fuzz_in *in, const uint8_t *base, sg_value *v)
{
    uint8_t tag = fuzz_u8(in);
    uint64_t bits;
    size_t len;
    const uint8_t *p;
    memset(v, 0, sizeof *v);
    switch (tag % 8) {
    case 0:
        v->type = SG_V_NULL;
        break;
    case 1:
        v->type = SG_V_INT;
        v->u.i = (int64_t)fuzz_u64(in);
        break;
    case 2:
        v->type = SG_V_INT;
        v->u.i = special_ints[fuzz_u8(in) % (sizeof special_ints / sizeof special_ints[0])];
        break;
    case 3:
        v->type = SG_V_FLOAT;
        bits = fuzz_u64(in);
        memcpy(&v->u.f, &bits, sizeof v->u.f);
        break;
    case 4:
        v->type = SG_V_FLOAT;
        v->u.f = special_double(fuzz_u8(in));
        break;
    case 5:
        v->type = SG_V_BOOL;
        v->u.b = fuzz_u8(in) & 1;
        break;
    default:
        v->type = tag % 8 == 6 ? SG_V_TEXT : SG_V_BINARY;
        p = fuzz_bytes(in, 255, &len);
        /* An empty string may come from the end of the input: point into the
         * copy anyway, never at NULL. */
        v->u.s.ptr = (const char *)(len > 0 ? p : base);
        v->u.s.len = len;
        break;
    }
}

static void script_decode(sg_driver_conn *c, size_t size)
{
    fuzz_in in = {c->script, size};
    c->n_results = fuzz_u8(&in) % (MAX_RESULTS + 1);
    uint8_t f = fuzz_u8(&in);
    c->fail_result = f >= 0xF0 ? (size_t)(f - 0xF0) : SIZE_MAX;
    c->rows_affected = (int64_t)fuzz_u64(&in);
    for (size_t r = 0; r < c->n_results; r++) {
        fz_result *res = &c->results[r];
        res->n_cols = fuzz_u8(&in) % (MAX_COLS + 1);
        for (size_t k = 0; k < res->n_cols; k++) {
            size_t len;
            const uint8_t *p = fuzz_bytes(&in, 200, &len);
            res->names[k] = dup_cstr(p, len); /* a NUL inside cuts the name */
            p = fuzz_bytes(&in, 24, &len);
            res->types[k] = dup_cstr(p, len);
            res->cols[k].name = res->names[k];
            res->cols[k].type = res->types[k];
        }
        res->n_rows = fuzz_u8(&in) % (MAX_ROWS + 1);
        f = fuzz_u8(&in);
        res->fail_row = f >= 0xF0 ? (size_t)(f - 0xF0) : SIZE_MAX;
        for (size_t i = 0; i < res->n_rows; i++) {
            for (size_t k = 0; k < res->n_cols; k++)
                decode_value(&in, c->script, &res->values[i][k]);
        }
    }
}

static void fz_conn_reset(sg_driver_conn *c)
{
    for (size_t r = 0; r < MAX_RESULTS; r++) {
        for (size_t k = 0; k < MAX_COLS; k++) {
            free(c->results[r].names[k]);
            free(c->results[r].types[k]);
        }
    }
    free(c->script);
    memset(c, 0, sizeof *c);
}

static sg_driver_conn *fz_open(const sg_db_config *cfg, int64_t deadline_ms, sg_err *err)
{
    sg_driver_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        sg_err_set(err, SG_DB_UNAVAILABLE, "out of memory");
    return c;
}

static int fz_ping(sg_driver_conn *c, const char *sql, int64_t deadline_ms, sg_err *err)
{
    return 0;
}

static int fz_exec(sg_driver_conn *c, const char *sql, const sg_param *params, size_t n_params,
                   int64_t deadline_ms, sg_err *err)
{
    FUZZ_CHECK(n_params == 1 && params[0].value.type == SG_V_BINARY, "fuzz: unexpected exec");
    fz_conn_reset(c);
    size_t n = params[0].value.u.s.len;
    c->script = malloc(n + 1);
    FUZZ_CHECK(c->script != NULL, "out of memory");
    memcpy(c->script, params[0].value.u.s.ptr, n);
    script_decode(c, n);
    return 0;
}

static int fz_next_result(sg_driver_conn *c, const sg_column **cols, size_t *n_cols, sg_err *err)
{
    if (c->cur == c->fail_result) {
        c->failed = true;
        return sg_err_set(err, SG_SQL_ERROR, "fuzz: injected error before result %zu", c->cur);
    }
    if (c->cur == c->n_results)
        return 0;
    const fz_result *res = &c->results[c->cur++];
    c->row = 0;
    *cols = res->cols;
    *n_cols = res->n_cols;
    return 1;
}

static int fz_next_row(sg_driver_conn *c, const sg_value **values, sg_err *err)
{
    FUZZ_CHECK(c->cur > 0, "next_row before next_result");
    const fz_result *res = &c->results[c->cur - 1];
    if (c->row == res->fail_row) {
        c->failed = true;
        return sg_err_set(err, SG_DB_UNAVAILABLE, "fuzz: injected error at row %zu", c->row);
    }
    if (c->row == res->n_rows)
        return 0;
    *values = res->values[c->row++];
    return 1;
}

static int64_t fz_rows_affected(sg_driver_conn *c)
{
    return c->rows_affected;
}

static int fz_finish(sg_driver_conn *c)
{
    return 0;
}

static void fz_interrupt(sg_driver_conn *c) {}

static bool fz_unusable(sg_driver_conn *c)
{
    return false;
}

static void fz_close(sg_driver_conn *c)
{
    if (c == NULL)
        return;
    fz_conn_reset(c);
    free(c);
}

static const sg_driver fuzz_driver = {
    .name = "fuzz",
    .open = fz_open,
    .ping = fz_ping,
    .exec = fz_exec,
    .next_result = fz_next_result,
    .next_row = fz_next_row,
    .rows_affected = fz_rows_affected,
    .finish = fz_finish,
    .interrupt = fz_interrupt,
    .unusable = fz_unusable,
    .close = fz_close,
};

/* --- Checking the response ------------------------------------------------------ */

static int b64_val(char ch)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *at = ch != '\0' ? strchr(tbl, ch) : NULL;
    return at != NULL ? (int)(at - tbl) : -1;
}

/* Decodes padded base64 into out (cap bytes); returns the length or -1. */
static long b64_decode(const char *s, size_t n, uint8_t *out, size_t cap)
{
    if (n % 4 != 0)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        size_t pad = 0;
        for (int k = 0; k < 4; k++) {
            v[k] = s[i + k] == '=' && i + 4 == n && k >= 2 ? (pad++, 0) : b64_val(s[i + k]);
            if (v[k] < 0)
                return -1;
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        uint8_t bytes[3] = {(uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w};
        for (size_t k = 0; k < 3 - pad; k++) {
            if (o == cap)
                return -1;
            out[o++] = bytes[k];
        }
    }
    return (long)o;
}

static void check_value(const json_t *j, const sg_value *v, const char *where)
{
    char buf[32];
    uint8_t raw[256];
    switch (v->type) {
    case SG_V_NULL:
        FUZZ_CHECK(json_is_null(j), "%s: NULL is not null", where);
        break;
    case SG_V_INT:
        if (v->u.i >= -EXACT_MAX && v->u.i <= EXACT_MAX) {
            FUZZ_CHECK(json_is_integer(j) && json_integer_value(j) == v->u.i,
                       "%s: %lld is not that JSON integer", where, (long long)v->u.i);
        } else {
            snprintf(buf, sizeof buf, "%lld", (long long)v->u.i);
            FUZZ_CHECK(json_is_string(j) && strcmp(json_string_value(j), buf) == 0,
                       "%s: %lld beyond 2^53 is not the string \"%s\"", where, (long long)v->u.i,
                       buf);
        }
        break;
    case SG_V_FLOAT:
        if (!isfinite(v->u.f)) {
            FUZZ_CHECK(json_is_null(j), "%s: a non-finite float is not null", where);
        } else {
            FUZZ_CHECK(json_is_number(j) && json_number_value(j) == v->u.f,
                       "%s: float %.17g reads back as %.17g", where, v->u.f, json_number_value(j));
        }
        break;
    case SG_V_BOOL:
        FUZZ_CHECK(json_is_boolean(j) && json_is_true(j) == v->u.b, "%s: bool", where);
        break;
    case SG_V_TEXT:
        FUZZ_CHECK(json_is_string(j), "%s: text is not a string", where);
        if (fuzz_utf8_valid((const uint8_t *)v->u.s.ptr, v->u.s.len))
            FUZZ_CHECK(json_string_length(j) == v->u.s.len &&
                           memcmp(json_string_value(j), v->u.s.ptr, v->u.s.len) == 0,
                       "%s: valid UTF-8 text changed", where);
        break;
    case SG_V_BINARY: {
        FUZZ_CHECK(json_is_string(j), "%s: binary is not a string", where);
        long n = b64_decode(json_string_value(j), json_string_length(j), raw, sizeof raw);
        FUZZ_CHECK(n == (long)v->u.s.len && memcmp(raw, v->u.s.ptr, v->u.s.len) == 0,
                   "%s: base64 does not decode to the bytes", where);
        break;
    }
    }
}

static void check_response(const char *out, size_t len, const sg_driver_conn *c,
                           const qstream_options *opt)
{
    json_error_t jerr;
    json_t *root = json_loadb(out, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    FUZZ_CHECK(root != NULL, "response is not JSON (%s at %d): %.*s", jerr.text, jerr.position,
               (int)(len < 2000 ? len : 2000), out);
    FUZZ_CHECK(json_is_string(json_object_get(root, "database")) &&
                   strcmp(json_string_value(json_object_get(root, "database")), opt->database) == 0,
               "database not echoed");
    const json_t *op = json_object_get(root, "operation");
    FUZZ_CHECK((op != NULL) == (opt->operation != NULL), "operation echoed wrongly");
    const json_t *results = json_object_get(root, "results");
    FUZZ_CHECK(json_is_array(results) && json_array_size(results) == c->n_results,
               "%zu results expected", c->n_results);
    for (size_t r = 0; r < c->n_results; r++) {
        const fz_result *res = &c->results[r];
        const json_t *jr = json_array_get(results, r);
        const json_t *cols = json_object_get(jr, "columns");
        FUZZ_CHECK(json_is_array(cols) && json_array_size(cols) == res->n_cols,
                   "result %zu: %zu columns expected", r, res->n_cols);
        for (size_t k = 0; k < res->n_cols; k++) {
            const char *name = json_string_value(json_object_get(json_array_get(cols, k), "name"));
            FUZZ_CHECK(name != NULL && name[0] != '\0', "result %zu column %zu: no name", r, k);
            for (size_t m = 0; m < k; m++)
                FUZZ_CHECK(strcmp(name, json_string_value(
                                            json_object_get(json_array_get(cols, m), "name"))) != 0,
                           "result %zu: column name \"%s\" twice", r, name);
            if (res->names[k][0] != '\0' && strlen(res->names[k]) < 120 &&
                fuzz_utf8_valid((const uint8_t *)res->names[k], strlen(res->names[k])))
                FUZZ_CHECK(strncmp(name, res->names[k], strlen(res->names[k])) == 0,
                           "result %zu: column \"%s\" renamed to \"%s\"", r, res->names[k], name);
        }
        size_t want = res->n_rows < (size_t)opt->max_rows ? res->n_rows : (size_t)opt->max_rows;
        const json_t *rows = json_object_get(jr, "rows");
        FUZZ_CHECK(json_is_array(rows) && json_array_size(rows) == want,
                   "result %zu: %zu rows expected", r, want);
        FUZZ_CHECK(json_integer_value(json_object_get(jr, "row_count")) == (json_int_t)want,
                   "result %zu: row_count", r);
        FUZZ_CHECK(json_is_boolean(json_object_get(jr, "truncated")) &&
                       json_is_true(json_object_get(jr, "truncated")) ==
                           (res->n_rows > (size_t)opt->max_rows),
                   "result %zu: truncated", r);
        for (size_t i = 0; i < want; i++) {
            const json_t *row = json_array_get(rows, i);
            if (opt->rows_as_arrays)
                FUZZ_CHECK(json_is_array(row) && json_array_size(row) == res->n_cols,
                           "result %zu row %zu: not an array of %zu", r, i, res->n_cols);
            else
                FUZZ_CHECK(json_is_object(row) && json_object_size(row) == res->n_cols,
                           "result %zu row %zu: not an object of %zu", r, i, res->n_cols);
            for (size_t k = 0; k < res->n_cols; k++) {
                const char *name =
                    json_string_value(json_object_get(json_array_get(cols, k), "name"));
                const json_t *j =
                    opt->rows_as_arrays ? json_array_get(row, k) : json_object_get(row, name);
                char where[64];
                snprintf(where, sizeof where, "result %zu row %zu col %zu", r, i, k);
                FUZZ_CHECK(j != NULL, "%s: missing", where);
                check_value(j, &res->values[i][k], where);
            }
        }
    }
    FUZZ_CHECK(json_integer_value(json_object_get(root, "rows_affected")) == c->rows_affected,
               "rows_affected not echoed");
    FUZZ_CHECK(json_is_number(json_object_get(root, "elapsed_ms")), "elapsed_ms missing");
    json_decref(root);
}

/* Whether the stream reaches an injected error: it fetches rows 0 ..
 * min(n_rows, max_rows) of each result (one past the cap shows truncation,
 * the rest is skipped) and asks for one result past the last. */
static bool expect_failure(const sg_driver_conn *c, int64_t max_rows)
{
    for (size_t r = 0; r <= c->n_results; r++) {
        if (c->fail_result == r)
            return true;
        if (r == c->n_results)
            break;
        const fz_result *res = &c->results[r];
        size_t last = res->n_rows < (size_t)max_rows ? res->n_rows : (size_t)max_rows;
        if (res->fail_row <= last)
            return true;
    }
    return false;
}

/* --- The target ------------------------------------------------------------------- */

static const size_t chunk_sizes[] = {1, 3, 64, 1000, 4096, 65536};
static const int64_t row_caps[] = {1, 2, 3, 5, 8, 10000};
/* qstream_options.value_piece_bytes: 0 is the default (values past 4 KiB in
 * pieces, rarely reached here); the small ones cut every text and binary
 * value into pieces that end inside UTF-8 sequences and base64 groups. */
static const size_t value_pieces[] = {0, 1, 2, 3, 5, 64};

static void append(char **out, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *out = realloc(*out, *cap);
        FUZZ_CHECK(*out != NULL, "out of memory");
    }
    memcpy(*out + *len, p, n);
    *len += n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    qstream_options opt = {
        .database = "fuzz",
        .operation = data[0] & 2 ? "op.\"fuzz\"\n" : NULL,
        .max_rows = row_caps[data[1] % (sizeof row_caps / sizeof row_caps[0])],
        .rows_as_arrays = data[0] & 1,
        .start_us = sg_clock_us(),
        .value_piece_bytes =
            value_pieces[(data[0] >> 3) % (sizeof value_pieces / sizeof value_pieces[0])],
    };
    size_t want = chunk_sizes[data[2] % (sizeof chunk_sizes / sizeof chunk_sizes[0])];
    size_t take = chunk_sizes[data[3] % (sizeof chunk_sizes / sizeof chunk_sizes[0])];
    bool steal = data[0] & 4;

    sg_db_config cfg = {
        .driver = "fuzz",
        .pool_max = 1,
        .acquire_timeout_ms = 1000,
        .connect_timeout_ms = 1000,
        .query_timeout_ms = 60000,
        .idle_timeout_ms = 30000,
        .max_lifetime_ms = 1800000,
        .retry_max_ms = 5000,
        .health_query = "SELECT 1",
        .health_interval_ms = 5000,
        .health_timeout_ms = 2000,
        .critical = true,
    };
    snprintf(cfg.name, sizeof cfg.name, "fuzz");
    snprintf(cfg.prefix, sizeof cfg.prefix, "FUZZ_DB_");
    sg_err err;
    sg_db *db = sg_db_new(&cfg, &fuzz_driver, &err);
    FUZZ_CHECK(db != NULL, "sg_db_new: %s", err.message);
    sg_param script = {.name = "script", .value = {.type = SG_V_BINARY}};
    script.value.u.s.ptr = (const char *)data + 4;
    script.value.u.s.len = size - 4;
    sg_query *q = sg_db_query_begin(db, "fuzz", &script, 1, 0, &err);
    FUZZ_CHECK(q != NULL, "sg_db_query_begin: %s", err.message);
    qstream *s = qstream_new(q, &opt, &err);
    FUZZ_CHECK(s != NULL, "qstream_new: %s", err.message);

    char *out = NULL;
    size_t len = 0, cap = 0;
    int rc;
    for (;;) {
        rc = qstream_fill(s, want, &err);
        if (rc < 0)
            break;
        size_t have;
        const char *p = qstream_data(s, &have);
        if (rc == 0 && steal) {
            char *rest = qstream_steal(s, &have);
            append(&out, &len, &cap, rest, have);
            free(rest);
            break;
        }
        size_t n = have < take ? have : take;
        append(&out, &len, &cap, p, n);
        qstream_consume(s, n);
        if (rc == 0 && have == n)
            break;
    }
    qstream_free(s);
    sg_db_free(db);

    /* The same script decoded again is what the response must show. */
    sg_driver_conn ref = {0};
    ref.script = malloc(size - 4 + 1);
    FUZZ_CHECK(ref.script != NULL, "out of memory");
    memcpy(ref.script, data + 4, size - 4);
    script_decode(&ref, size - 4);
    bool fails = expect_failure(&ref, opt.max_rows);
    FUZZ_CHECK((rc < 0) == fails, "the stream %s, the script %s an error: %s",
               rc < 0 ? "failed" : "completed", fails ? "injects" : "has no", err.message);
    if (rc < 0)
        FUZZ_CHECK(err.code == SG_SQL_ERROR || err.code == SG_DB_UNAVAILABLE,
                   "failure with code %s: %s", sg_code_name(err.code), err.message);
    else
        check_response(out, len, &ref, &opt);
    fz_conn_reset(&ref);
    free(out);
    return 0;
}
