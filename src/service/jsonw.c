/* jsonw: see jsonw.h. */
#include "jsonw.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JW_INT_EXACT_MAX 9007199254740992LL /* 2^53 */

void jw_init(jw_buf *b, size_t max)
{
    sg_buf_init(b, max);
}

void jw_free(jw_buf *b)
{
    sg_buf_free(b);
}

void jw_consume(jw_buf *b, size_t n)
{
    sg_buf_consume(b, n);
}

char *jw_steal(jw_buf *b, size_t *len)
{
    return sg_buf_steal(b, len);
}

void jw_raw(jw_buf *b, const char *s, size_t len)
{
    sg_buf_put(b, s, len);
}

void jw_lit(jw_buf *b, const char *s)
{
    jw_raw(b, s, strlen(s));
}

void jw_char(jw_buf *b, char c)
{
    /* One byte, the most frequent append (every brace, comma and quote):
     * stored without a call when there is room. */
    if (!b->failed && b->cap - b->len > 1 && (b->max == 0 || b->len < b->max)) {
        b->data[b->len++] = c;
        b->data[b->len] = '\0';
        return;
    }
    sg_buf_append(b, &c, 1);
}

/* Input bytes escaped per reservation: reserving for the worst case of a
 * whole string at once (6 output bytes per input byte) would ask for six
 * times the size of a large text cell. */
#define JW_STR_CHUNK 4096

/* Escapes input bytes from i until at least stop (a UTF-8 sequence that
 * starts before stop is kept whole, so it may end up to 3 bytes after it).
 * Returns the input position reached, or SIZE_MAX when the buffer could not
 * grow. Decisions depend only on the input from i onwards, never on where a
 * previous call stopped, so any split gives the same text as one call. */
static size_t str_escape(jw_buf *b, const unsigned char *p, size_t len, size_t i, size_t stop)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case: every byte becomes \u00XX or U+FFFD. */
    if (!sg_buf_reserve(b, (stop - i + 3) * 6))
        return SIZE_MAX;
    char *out = b->data + b->len;
    while (i < stop) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *out++ = (char)c;
            i++;
            continue;
        }
        if (c < 0x80) {
            *out++ = '\\';
            switch (c) {
            case '"':
                *out++ = '"';
                break;
            case '\\':
                *out++ = '\\';
                break;
            case '\n':
                *out++ = 'n';
                break;
            case '\r':
                *out++ = 'r';
                break;
            case '\t':
                *out++ = 't';
                break;
            case '\b':
                *out++ = 'b';
                break;
            case '\f':
                *out++ = 'f';
                break;
            default:
                *out++ = 'u';
                *out++ = '0';
                *out++ = '0';
                *out++ = hex[c >> 4];
                *out++ = hex[c & 0xF];
            }
            i++;
            continue;
        }
        size_t n = sg_utf8_len(p + i, len - i);
        if (n == 0) {
            memcpy(out, "\xEF\xBF\xBD", 3); /* U+FFFD for each invalid byte */
            out += 3;
            i++;
            continue;
        }
        memcpy(out, p + i, n);
        out += n;
        i += n;
    }
    b->len = (size_t)(out - b->data);
    b->data[b->len] = '\0';
    return i;
}

void jw_str(jw_buf *b, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    jw_char(b, '"');
    size_t i = 0;
    while (i < len) {
        size_t stop = len - i > JW_STR_CHUNK ? i + JW_STR_CHUNK : len;
        i = str_escape(b, p, len, i, stop);
        if (i == SIZE_MAX)
            return;
    }
    jw_char(b, '"');
}

void jw_cstr(jw_buf *b, const char *s)
{
    jw_str(b, s, strlen(s));
}

/* Decimal digits of v, written backwards from end; returns the first. On
 * the row path for every integer column, hence no printf. */
static char *format_int(char *end, int64_t v)
{
    /* Through uint64_t so that INT64_MIN negates without overflow. */
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char *p = end;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    return p;
}

void jw_int(jw_buf *b, int64_t v)
{
    char tmp[24];
    bool exact = v >= -JW_INT_EXACT_MAX && v <= JW_INT_EXACT_MAX;
    char *end = tmp + sizeof tmp;
    if (!exact)
        *--end = '"';
    char *p = format_int(end, v);
    if (!exact)
        *--p = '"';
    jw_raw(b, p, (size_t)(tmp + sizeof tmp - p));
}

void jw_i64(jw_buf *b, int64_t v)
{
    char tmp[24];
    char *p = format_int(tmp + sizeof tmp, v);
    jw_raw(b, p, (size_t)(tmp + sizeof tmp - p));
}

void jw_ms(jw_buf *b, int64_t us)
{
    char tmp[28];
    char *end = tmp + sizeof tmp;
    uint64_t frac = us < 0 ? (uint64_t)0 - (uint64_t)us : (uint64_t)us;
    for (int i = 0; i < 3; i++) {
        *--end = (char)('0' + frac % 10);
        frac /= 10;
    }
    *--end = '.';
    char *p = format_int(end, (int64_t)(frac));
    if (us < 0)
        *--p = '-';
    jw_raw(b, p, (size_t)(tmp + sizeof tmp - p));
}

/* 10^0 .. 10^22, each exactly representable as a double. */
static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The fast path of jw_double, without printf or strtod (which were most of
 * the cost of streaming a FLOAT column). It covers 1e-4 <= |v| < 1e15 with at
 * most 15 significant digits, where %.15g prints fixed notation. It looks for
 * the fewest decimals k such that an integer m < 10^15 has m / 10^k == v:
 * m and 10^k are exact doubles and IEEE division rounds correctly, so the
 * test is exactly "the text m * 10^-k reads back as v", and the first k that
 * passes gives the shortest such text -- the same digits %.15g prints (any
 * round-tripping text of <= 15 digits is within half a unit of its last
 * digit of v, so %.15g rounds to it). Writes the text with ".0" for integral
 * values, as jw_double does, and returns its length; 0 when v is outside the
 * fast path. */
static int short_fixed(double v, char *out)
{
    double a = fabs(v);
    if (!(a >= 1e-4 && a < 1e15))
        return 0;
    for (int k = 0; k < (int)(sizeof pow10_exact / sizeof pow10_exact[0]); k++) {
        double t = a * pow10_exact[k];
        if (t >= 1e15)
            return 0; /* would need more than 15 digits */
        double m = nearbyint(t);
        if (m / pow10_exact[k] != a)
            continue;
        uint64_t digits = (uint64_t)m;
        char rev[24];
        int n = 0;
        do {
            rev[n++] = (char)('0' + digits % 10);
            digits /= 10;
        } while (digits != 0);
        while (n <= k)
            rev[n++] = '0'; /* a 0 before the point */
        int len = 0;
        if (v < 0)
            out[len++] = '-';
        for (int i = n - 1; i >= k; i--)
            out[len++] = rev[i];
        out[len++] = '.';
        if (k == 0)
            out[len++] = '0';
        for (int i = k - 1; i >= 0; i--)
            out[len++] = rev[i];
        return len;
    }
    return 0;
}

void jw_double(jw_buf *b, double v)
{
    if (!isfinite(v)) {
        jw_null(b);
        return;
    }
    char tmp[40];
    int n = short_fixed(v, tmp);
    if (n > 0) {
        jw_raw(b, tmp, (size_t)n);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    /* A JSON number needs no suffix, but keep integral floats readable as
     * floats ("1.0" rather than "1") so clients see the column's type. */
    if (strpbrk(tmp, ".eEn") == NULL && n + 2 < (int)sizeof tmp) {
        tmp[n++] = '.';
        tmp[n++] = '0';
        tmp[n] = '\0';
    }
    jw_raw(b, tmp, (size_t)n);
}

void jw_bool(jw_buf *b, bool v)
{
    jw_lit(b, v ? "true" : "false");
}

void jw_null(jw_buf *b)
{
    jw_raw(b, "null", 4);
}

static const char b64_tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of p[from, to) where to - from is a multiple of 3, or to == len
 * (the padded tail); false when the buffer could not grow. */
static bool b64_encode(jw_buf *b, const unsigned char *p, size_t len, size_t from, size_t to)
{
    size_t n = to - from;
    if (!sg_buf_reserve(b, (n + 2) / 3 * 4))
        return false;
    char *out = b->data + b->len;
    size_t i = from;
    for (; i + 3 <= to; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *out++ = b64_tbl[v >> 18];
        *out++ = b64_tbl[(v >> 12) & 63];
        *out++ = b64_tbl[(v >> 6) & 63];
        *out++ = b64_tbl[v & 63];
    }
    if (i < to) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
        *out++ = b64_tbl[v >> 18];
        *out++ = b64_tbl[(v >> 12) & 63];
        *out++ = i + 1 < len ? b64_tbl[(v >> 6) & 63] : '=';
        *out++ = '=';
    }
    b->len = (size_t)(out - b->data);
    b->data[b->len] = '\0';
    return true;
}

void jw_base64(jw_buf *b, const unsigned char *p, size_t len)
{
    if (len > SIZE_MAX / 2 || !sg_buf_reserve(b, (len + 2) / 3 * 4 + 2))
        return;
    jw_char(b, '"');
    if (b64_encode(b, p, len, 0, len))
        jw_char(b, '"');
}

void jw_span_init(jw_span *sp, jw_span_kind kind, const void *p, size_t len)
{
    memset(sp, 0, sizeof *sp);
    sp->p = p;
    sp->len = len;
    sp->kind = kind;
}

size_t jw_span_min_len(jw_span_kind kind, size_t len)
{
    if (kind == JW_SPAN_BASE64)
        return len > SIZE_MAX / 2 ? SIZE_MAX : (len + 2) / 3 * 4 + 2;
    return len > SIZE_MAX - 2 ? SIZE_MAX : len + 2;
}

bool jw_span_write(jw_buf *b, jw_span *sp, size_t in_max)
{
    if (sp->done)
        return true;
    if (!sp->opened) {
        jw_char(b, '"');
        sp->opened = true;
    }
    if (in_max == 0)
        in_max = 1;
    size_t left = sp->len - sp->pos;
    if (left > 0) {
        size_t stop;
        if (sp->kind == JW_SPAN_BASE64) {
            /* Whole groups of 3, except for the padded tail. */
            size_t n = in_max < 3 ? 3 : in_max - in_max % 3;
            stop = left > n ? sp->pos + n : sp->len;
            if (!b64_encode(b, sp->p, sp->len, sp->pos, stop))
                return false;
        } else {
            stop =
                str_escape(b, sp->p, sp->len, sp->pos, left > in_max ? sp->pos + in_max : sp->len);
            if (stop == SIZE_MAX)
                return false;
        }
        sp->pos = stop;
    }
    if (sp->pos < sp->len || b->failed)
        return false;
    jw_char(b, '"');
    sp->done = !b->failed;
    return sp->done;
}
