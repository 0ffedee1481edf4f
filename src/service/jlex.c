/* jlex: see jlex.h. */
#include "jlex.h"

#include "../lib/util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NUL_MESSAGE "the body contains a NUL character (\\u0000), which is not allowed"

/* Only errors pay for this. */
void jlex_position(const jlex *lx, const unsigned char *at, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (const unsigned char *c = lx->start; c < at; c++) {
        if (*c == '\n') {
            ++*line;
            *col = 1;
        } else if ((*c & 0xC0) != 0x80) {
            ++*col;
        }
    }
}

int jlex_error(const jlex *lx, const unsigned char *at, const char *fmt, ...)
{
    char why[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    size_t line, col;
    jlex_position(lx, at, &line, &col);
    return sg_err_set(lx->err, SG_BAD_REQUEST,
                      "the body is not valid JSON (line %zu, column %zu): %s", line, col, why);
}

/* "the end of the body", "'x'" or "byte 0xNN", for "unexpected ..." messages. */
static const char *describe(const jlex *lx, const unsigned char *at, char *buf, size_t n)
{
    if (at >= lx->end)
        return "the end of the body";
    if (*at > 0x20 && *at < 0x7F)
        snprintf(buf, n, "'%c'", *at);
    else
        snprintf(buf, n, "byte 0x%02X", *at);
    return buf;
}

int jlex_unexpected(const jlex *lx, const unsigned char *at, const char *wanted)
{
    char buf[16];
    return jlex_error(lx, at, "expected %s, found %s", wanted, describe(lx, at, buf, sizeof buf));
}

int jlex_out_of_memory(const jlex *lx)
{
    return sg_err_set(lx->err, SG_INTERNAL, "out of memory");
}

bool jlex_is_digit(int c)
{
    return c >= '0' && c <= '9';
}

void jlex_skip_space(jlex *lx)
{
    while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\n' || *lx->p == '\r' || *lx->p == '\t'))
        lx->p++;
}

static size_t utf8_put(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The 4 hex digits at s, or -1. */
static long hex4(const unsigned char *s, const unsigned char *end)
{
    if (end - s < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int d = sg_hex_value(s[i]);
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* The byte a two-character escape (\n, \", ...) stands for, or -1. */
static int short_escape(int c)
{
    switch (c) {
    case '"':
    case '\\':
    case '/':
        return c;
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return -1;
    }
}

/* Bytes a string holds as they are: printable ASCII but '"' and '\\'.
 * Scanning runs of them is the hot loop of the parser. */
static const unsigned char PLAIN[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x70 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x80 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x90 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xA0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xB0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xC0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xD0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xE0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xF0 */
};

/* Reads the string whose opening quote is at lx->p, unescaped into out at w
 * (w is not advanced: the caller keeps the string or not). A \u0000 is
 * reported once the whole string is read, as jansson does (a syntax error
 * later in the same string wins). */
int jlex_string(jlex *lx, jval *v)
{
    const unsigned char *s = lx->p + 1, *end = lx->end;
    char *o = lx->out + lx->w;
    bool nul = false;
    for (;;) {
        const unsigned char *run = s;
        while (s < end && PLAIN[*s])
            s++;
        memcpy(o, run, (size_t)(s - run));
        o += s - run;
        if (s == end)
            return jlex_error(lx, s, "a string is not closed before the end of the body");
        if (*s == '"')
            break;
        if (*s < 0x20)
            return jlex_error(lx, s, "control character 0x%02X in a string (it must be escaped)",
                              *s);
        if (*s >= 0x80) {
            size_t n = sg_utf8_len(s, (size_t)(end - s));
            if (n == 0)
                return jlex_error(lx, s, "invalid UTF-8 (byte 0x%02X)", *s);
            memcpy(o, s, n);
            o += n;
            s += n;
            continue;
        }
        /* a backslash */
        int e = end - s > 1 ? short_escape(s[1]) : -1;
        if (e >= 0) {
            *o++ = (char)e;
            s += 2;
            continue;
        }
        long cp = end - s > 1 && s[1] == 'u' ? hex4(s + 2, end) : -1;
        if (cp < 0)
            return jlex_error(lx, s, "invalid escape in a string");
        const unsigned char *esc = s;
        s += 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return jlex_error(lx, esc, "\\u%04lX is half of a surrogate pair, alone", cp);
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            long lo = end - s >= 2 && s[0] == '\\' && s[1] == 'u' ? hex4(s + 2, end) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF)
                return jlex_error(lx, esc, "\\u%04lX is half of a surrogate pair, alone", cp);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            s += 6;
        }
        nul |= cp == 0;
        o += utf8_put(o, (uint32_t)cp);
    }
    *o = '\0';
    lx->p = s + 1;
    if (nul)
        return sg_err_set(lx->err, SG_BAD_REQUEST, NUL_MESSAGE);
    v->type = J_STRING;
    v->s = lx->out + lx->w;
    v->len = (size_t)(o - v->s);
    return 0;
}

/* RFC 8259's number grammar, typed the way jansson types it. */
int jlex_number(jlex *lx, jval *v)
{
    const unsigned char *begin = lx->p, *s = begin, *end = lx->end;
    bool neg = *s == '-';
    s += neg;
    if (s == end || !jlex_is_digit(*s))
        return jlex_unexpected(lx, s, "a digit");
    if (*s == '0') {
        s++;
        if (s < end && jlex_is_digit(*s))
            return jlex_error(lx, begin, "a number must not start with 0");
    } else {
        while (s < end && jlex_is_digit(*s))
            s++;
    }
    const unsigned char *int_end = s;
    bool real = false;
    if (s < end && *s == '.') {
        s++;
        if (s == end || !jlex_is_digit(*s))
            return jlex_unexpected(lx, s, "a digit after '.'");
        while (s < end && jlex_is_digit(*s))
            s++;
        real = true;
    }
    if (s < end && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < end && (*s == '+' || *s == '-'))
            s++;
        if (s == end || !jlex_is_digit(*s))
            return jlex_unexpected(lx, s, "a digit in the exponent");
        while (s < end && jlex_is_digit(*s))
            s++;
        real = true;
    }
    lx->p = s;
    if (!real) {
        uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, mag = 0;
        for (const unsigned char *d = begin + neg; d < int_end; d++) {
            unsigned digit = (unsigned)(*d - '0');
            if (mag > (limit - digit) / 10)
                return jlex_error(lx, begin, "the integer does not fit in 64 bits");
            mag = mag * 10 + digit;
        }
        v->type = J_INTEGER;
        v->i = !neg ? (int64_t)mag : mag > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)mag;
        return 0;
    }
    /* strtod rounds correctly (jansson uses it too) but wants a terminated
     * string: the free part of out has room, as w never passes begin.
     * sqlgate never calls setlocale, so strtod reads '.'. */
    size_t n = (size_t)(s - begin);
    char *copy = lx->out + lx->w, *stop;
    memcpy(copy, begin, n);
    copy[n] = '\0';
    errno = 0;
    double f = strtod(copy, &stop);
    if (stop != copy + n)
        return jlex_error(lx, begin, "the number cannot be read");
    if (isinf(f) && errno == ERANGE)
        return jlex_error(lx, begin, "the number is too large");
    v->type = J_REAL;
    v->f = f;
    return 0;
}

int jlex_literal(jlex *lx, jval *v)
{
    static const struct {
        const char *text;
        size_t len;
        jtype type;
    } WORDS[] = {{"true", 4, J_TRUE}, {"false", 5, J_FALSE}, {"null", 4, J_NULL}};
    for (size_t i = 0; i < sizeof WORDS / sizeof WORDS[0]; i++) {
        if ((size_t)(lx->end - lx->p) >= WORDS[i].len &&
            memcmp(lx->p, WORDS[i].text, WORDS[i].len) == 0) {
            lx->p += WORDS[i].len;
            v->type = WORDS[i].type;
            return 0;
        }
    }
    return jlex_unexpected(lx, lx->p, "a value");
}
