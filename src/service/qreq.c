/* qreq: see qreq.h.
 *
 * One pass over the body with an explicit stack of the open arrays and
 * objects (no recursion: a hostile body cannot exhaust the thread's stack).
 * Every value is lexed and validated where it stands, whatever its depth;
 * what the request needs (the top-level members, the parameters) is noted
 * on the way, and the field checks run after the pass, in the order the
 * jansson-based decoder had: a syntax error anywhere wins over a field
 * problem, and among field problems the first check reports.
 *
 * Strings are unescaped into `out`, one buffer of len + 1 bytes: an
 * unescaped string plus its NUL never takes more room than its quoted form
 * (a 6-byte \uXXXX gives at most 3 bytes, a 12-byte surrogate pair 4), so
 * the bytes of out in use never pass the read position. Strings the request
 * keeps (and every key, which the duplicate check refers to) stay; others
 * are overwritten by the next one. */
#include "qreq.h"

#include "../lib/util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define NUL_MESSAGE "the body contains a NUL character (\\u0000), which is not allowed"

/* Value kinds as jansson types them: a number with a fraction or an
 * exponent is real (1e2 too), any other number is an integer (-0 too). */
typedef enum jtype {
    J_ABSENT,
    J_OBJECT,
    J_ARRAY,
    J_STRING,
    J_INTEGER,
    J_REAL,
    J_TRUE,
    J_FALSE,
    J_NULL,
} jtype;

typedef struct jval {
    jtype type;
    const char *s; /* J_STRING: unescaped and NUL-terminated, in out */
    size_t len;
    int64_t i; /* J_INTEGER */
    double f;  /* J_REAL */
} jval;

/* The top-level members the request reads; other keys are checked and skipped. */
enum member { M_SQL, M_PARAMS, M_DATABASE, M_OPERATION, M_ROWS_AS, M_MAX_ROWS, M_TIMEOUT_MS, M_N };
static const char *const MEMBER_NAMES[M_N] = {
    "sql", "params", "database", "operation", "rows_as", "max_rows", "timeout_ms",
};
static const unsigned char MEMBER_LENGTHS[M_N] = {3, 6, 8, 9, 7, 8, 10};

/* What the value about to be read is to the request: a member (>= 0) or one of these. */
enum { ROLE_IGNORED = -1, ROLE_PARAM = -2, ROLE_BODY = -3 };

/* An open array or object. The body's own object and the "params" object in
 * it give their keys a meaning; other objects only have their keys checked. */
typedef enum fkind { F_ARRAY, F_OBJECT, F_BODY, F_PARAMS } fkind;

typedef struct frame {
    uint32_t obj; /* objects: serial number, which scopes the duplicate-key check */
    fkind kind;
} frame;

/* Duplicate keys (jansson's JSON_REJECT_DUPLICATES) are found as each key
 * arrives. The first FEW_KEYS keys of the body are compared one by one (a
 * request has a handful); past that every key goes into a hash table keyed
 * by (object serial, key). Its hash is SipHash with a random key drawn for
 * that table, so that a client cannot make its keys collide. */
#define FEW_KEYS 16

typedef struct key_ref {
    const char *s; /* in out; NULL: a free slot */
    uint32_t len;
    uint32_t obj;
} key_ref;

typedef struct keyset {
    key_ref few[FEW_KEYS]; /* while slots is NULL */
    size_t n;
    key_ref *slots; /* owned; mask + 1 slots, at most half in use */
    size_t mask;
    uint64_t k0, k1;
} keyset;

typedef struct parser {
    const unsigned char *start, *p, *end;
    char *out; /* owned until handed to the qreq */
    size_t w;  /* bytes of out kept */
    frame stack[QREQ_MAX_DEPTH];
    size_t depth;
    uint32_t objects;
    keyset keys;
    jtype body;
    jval member[M_N];
    sg_param *params; /* owned until handed to the qreq; the first QREQ_MAX_PARAMS entries */
    size_t n_params;  /* entries of the params object, also those past QREQ_MAX_PARAMS */
    size_t cap_params;
    const char *param_name; /* the entry being read */
    /* The first parameter with a problem, reported after the other fields:
     * bad_type J_ABSENT means its name is the problem. */
    const char *bad_param;
    jtype bad_type;
    sg_err *err;
} parser;

/* --- Errors ------------------------------------------------------------------ */

/* Line and column (1-based; the column counts characters) of at. Only
 * errors pay for this. */
static void position(const parser *ps, const unsigned char *at, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (const unsigned char *c = ps->start; c < at; c++) {
        if (*c == '\n') {
            ++*line;
            *col = 1;
        } else if ((*c & 0xC0) != 0x80) {
            ++*col;
        }
    }
}

static int syntax_error(const parser *ps, const unsigned char *at, const char *fmt, ...)
    SG_PRINTF(3, 4);

static int syntax_error(const parser *ps, const unsigned char *at, const char *fmt, ...)
{
    char why[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    size_t line, col;
    position(ps, at, &line, &col);
    return sg_err_set(ps->err, SG_BAD_REQUEST,
                      "the body is not valid JSON (line %zu, column %zu): %s", line, col, why);
}

/* "the end of the body", "'x'" or "byte 0xNN", for "unexpected ..." messages. */
static const char *describe(const parser *ps, const unsigned char *at, char *buf, size_t n)
{
    if (at >= ps->end)
        return "the end of the body";
    if (*at > 0x20 && *at < 0x7F)
        snprintf(buf, n, "'%c'", *at);
    else
        snprintf(buf, n, "byte 0x%02X", *at);
    return buf;
}

static int unexpected(const parser *ps, const unsigned char *at, const char *wanted)
{
    char buf[16];
    return syntax_error(ps, at, "expected %s, found %s", wanted, describe(ps, at, buf, sizeof buf));
}

static int out_of_memory(const parser *ps)
{
    return sg_err_set(ps->err, SG_INTERNAL, "out of memory");
}

/* --- Lexing ------------------------------------------------------------------ */

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static void skip_space(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
        ps->p++;
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

/* Reads the string whose opening quote is at ps->p, unescaped into out at w
 * (w is not advanced: the caller keeps the string or not). A \u0000 is
 * reported once the whole string is read, as jansson does (a syntax error
 * later in the same string wins). */
static int read_string(parser *ps, jval *v)
{
    const unsigned char *s = ps->p + 1, *end = ps->end;
    char *o = ps->out + ps->w;
    bool nul = false;
    for (;;) {
        const unsigned char *run = s;
        while (s < end && PLAIN[*s])
            s++;
        memcpy(o, run, (size_t)(s - run));
        o += s - run;
        if (s == end)
            return syntax_error(ps, s, "a string is not closed before the end of the body");
        if (*s == '"')
            break;
        if (*s < 0x20)
            return syntax_error(ps, s, "control character 0x%02X in a string (it must be escaped)",
                                *s);
        if (*s >= 0x80) {
            size_t n = sg_utf8_len(s, (size_t)(end - s));
            if (n == 0)
                return syntax_error(ps, s, "invalid UTF-8 (byte 0x%02X)", *s);
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
            return syntax_error(ps, s, "invalid escape in a string");
        const unsigned char *esc = s;
        s += 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return syntax_error(ps, esc, "\\u%04lX is half of a surrogate pair, alone", cp);
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            long lo = end - s >= 2 && s[0] == '\\' && s[1] == 'u' ? hex4(s + 2, end) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF)
                return syntax_error(ps, esc, "\\u%04lX is half of a surrogate pair, alone", cp);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            s += 6;
        }
        nul |= cp == 0;
        o += utf8_put(o, (uint32_t)cp);
    }
    *o = '\0';
    ps->p = s + 1;
    if (nul)
        return sg_err_set(ps->err, SG_BAD_REQUEST, NUL_MESSAGE);
    v->type = J_STRING;
    v->s = ps->out + ps->w;
    v->len = (size_t)(o - v->s);
    return 0;
}

/* RFC 8259's number grammar, typed the way jansson types it. */
static int read_number(parser *ps, jval *v)
{
    const unsigned char *begin = ps->p, *s = begin, *end = ps->end;
    bool neg = *s == '-';
    s += neg;
    if (s == end || !is_digit(*s))
        return unexpected(ps, s, "a digit");
    if (*s == '0') {
        s++;
        if (s < end && is_digit(*s))
            return syntax_error(ps, begin, "a number must not start with 0");
    } else {
        while (s < end && is_digit(*s))
            s++;
    }
    const unsigned char *int_end = s;
    bool real = false;
    if (s < end && *s == '.') {
        s++;
        if (s == end || !is_digit(*s))
            return unexpected(ps, s, "a digit after '.'");
        while (s < end && is_digit(*s))
            s++;
        real = true;
    }
    if (s < end && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < end && (*s == '+' || *s == '-'))
            s++;
        if (s == end || !is_digit(*s))
            return unexpected(ps, s, "a digit in the exponent");
        while (s < end && is_digit(*s))
            s++;
        real = true;
    }
    ps->p = s;
    if (!real) {
        uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, mag = 0;
        for (const unsigned char *d = begin + neg; d < int_end; d++) {
            unsigned digit = (unsigned)(*d - '0');
            if (mag > (limit - digit) / 10)
                return syntax_error(ps, begin, "the integer does not fit in 64 bits");
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
    char *copy = ps->out + ps->w, *stop;
    memcpy(copy, begin, n);
    copy[n] = '\0';
    errno = 0;
    double f = strtod(copy, &stop);
    if (stop != copy + n)
        return syntax_error(ps, begin, "the number cannot be read");
    if (isinf(f) && errno == ERANGE)
        return syntax_error(ps, begin, "the number is too large");
    v->type = J_REAL;
    v->f = f;
    return 0;
}

static int read_literal(parser *ps, jval *v)
{
    static const struct {
        const char *text;
        size_t len;
        jtype type;
    } WORDS[] = {{"true", 4, J_TRUE}, {"false", 5, J_FALSE}, {"null", 4, J_NULL}};
    for (size_t i = 0; i < sizeof WORDS / sizeof WORDS[0]; i++) {
        if ((size_t)(ps->end - ps->p) >= WORDS[i].len &&
            memcmp(ps->p, WORDS[i].text, WORDS[i].len) == 0) {
            ps->p += WORDS[i].len;
            v->type = WORDS[i].type;
            return 0;
        }
    }
    return unexpected(ps, ps->p, "a value");
}

/* --- Duplicate keys ------------------------------------------------------------ */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void sip_round(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = ROTL(v[1], 13) ^ v[0];
    v[0] = ROTL(v[0], 32);
    v[2] += v[3];
    v[3] = ROTL(v[3], 16) ^ v[2];
    v[0] += v[3];
    v[3] = ROTL(v[3], 21) ^ v[0];
    v[2] += v[1];
    v[1] = ROTL(v[1], 17) ^ v[2];
    v[2] = ROTL(v[2], 32);
}

/* SipHash-1-3 (as in CPython and Rust's HashMap). */
static uint64_t siphash13(uint64_t k0, uint64_t k1, const char *in, size_t len)
{
    uint64_t v[4] = {k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
                     k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL};
    const unsigned char *p = (const unsigned char *)in;
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = 0;
        for (int j = 7; j >= 0; j--)
            m = m << 8 | p[i + (size_t)j];
        v[3] ^= m;
        sip_round(v);
        v[0] ^= m;
    }
    uint64_t last = (uint64_t)len << 56;
    for (size_t j = 0; whole + j < len; j++)
        last |= (uint64_t)p[whole + j] << (8 * j);
    v[3] ^= last;
    sip_round(v);
    v[0] ^= last;
    v[2] ^= 0xff;
    sip_round(v);
    sip_round(v);
    sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

static key_ref *key_slot(const keyset *ks, const char *s, uint32_t len, uint32_t obj)
{
    /* the serial goes through a multiplicative mix so equal keys in
     * different objects land apart */
    uint64_t h = siphash13(ks->k0, ks->k1, s, len) ^ (obj * 0x9E3779B97F4A7C15ULL);
    for (size_t i = (size_t)h & ks->mask;; i = (i + 1) & ks->mask) {
        key_ref *r = &ks->slots[i];
        if (r->s == NULL || (r->obj == obj && r->len == len && memcmp(r->s, s, len) == 0))
            return r;
    }
}

/* Doubles the table (the first time: makes it from few[]). */
static int keys_grow(keyset *ks)
{
    size_t old_n = ks->slots ? ks->mask + 1 : 0, n = ks->slots ? 2 * old_n : 4 * FEW_KEYS;
    key_ref *old = ks->slots, *slots = calloc(n, sizeof *slots);
    if (slots == NULL)
        return -1;
    if (old == NULL) {
        uint64_t seed[2];
        if (getrandom(seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
            /* no entropy yet (early boot): weaker, but still unknown to a client */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            seed[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)ks;
            seed[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)slots;
        }
        ks->k0 = seed[0];
        ks->k1 = seed[1];
    }
    ks->slots = slots;
    ks->mask = n - 1;
    const key_ref *from = old ? old : ks->few;
    for (size_t i = 0; i < (old ? old_n : ks->n); i++) {
        if (from[i].s != NULL)
            *key_slot(ks, from[i].s, from[i].len, from[i].obj) = from[i];
    }
    free(old);
    return 0;
}

/* Adds the key k of object obj; *dup tells whether obj already had it. */
static int keys_add(keyset *ks, const jval *k, uint32_t obj, bool *dup)
{
    uint32_t len = (uint32_t)k->len; /* < the body's length, itself < 4 GiB */
    key_ref ref = {.s = k->s, .len = len, .obj = obj};
    *dup = false;
    if (ks->slots == NULL) {
        for (size_t i = 0; i < ks->n; i++) {
            const key_ref *r = &ks->few[i];
            if (r->obj == obj && r->len == len && memcmp(r->s, k->s, len) == 0) {
                *dup = true;
                return 0;
            }
        }
        if (ks->n < FEW_KEYS) {
            ks->few[ks->n++] = ref;
            return 0;
        }
    }
    if ((ks->slots == NULL || 2 * (ks->n + 1) > ks->mask + 1) && keys_grow(ks) != 0)
        return -1;
    key_ref *r = key_slot(ks, k->s, len, obj);
    if (r->s != NULL) {
        *dup = true;
        return 0;
    }
    *r = ref;
    ks->n++;
    return 0;
}

/* --- What the request takes from the values -------------------------------------- */

static bool identifier(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > QREQ_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && (i == 0 || c < '0' || c > '9'))
            return false;
    }
    return true;
}

static int member_of(const jval *key)
{
    for (int m = 0; m < M_N; m++) {
        if (MEMBER_LENGTHS[m] == key->len && memcmp(MEMBER_NAMES[m], key->s, key->len) == 0)
            return m;
    }
    return ROLE_IGNORED;
}

/* A key of the params object: a new entry. Entries past QREQ_MAX_PARAMS are
 * only counted (the count is the error), so memory stays bounded. */
static int param_entry(parser *ps, const char *name)
{
    ps->param_name = name;
    if (ps->bad_param == NULL && !identifier(name)) {
        ps->bad_param = name;
        ps->bad_type = J_ABSENT;
    }
    if (ps->n_params++ >= QREQ_MAX_PARAMS)
        return 0;
    if (ps->n_params > ps->cap_params) {
        size_t cap = ps->cap_params ? 2 * ps->cap_params : 4;
        cap = cap < QREQ_MAX_PARAMS ? cap : QREQ_MAX_PARAMS;
        sg_param *p = ps->params ? realloc(ps->params, cap * sizeof *p) : malloc(cap * sizeof *p);
        if (p == NULL)
            return out_of_memory(ps);
        ps->params = p;
        ps->cap_params = cap;
    }
    ps->params[ps->n_params - 1] = (sg_param){.name = name};
    return 0;
}

static void param_value(parser *ps, const jval *v)
{
    if (v->type == J_OBJECT || v->type == J_ARRAY) {
        if (ps->bad_param == NULL) {
            ps->bad_param = ps->param_name;
            ps->bad_type = v->type;
        }
        return;
    }
    if (ps->n_params > QREQ_MAX_PARAMS)
        return;
    sg_value *val = &ps->params[ps->n_params - 1].value;
    switch (v->type) {
    case J_INTEGER:
        val->type = SG_V_INT;
        val->u.i = v->i;
        break;
    case J_REAL:
        val->type = SG_V_FLOAT;
        val->u.f = v->f;
        break;
    case J_STRING:
        val->type = SG_V_TEXT;
        val->u.s.ptr = v->s;
        val->u.s.len = v->len;
        break;
    case J_TRUE:
    case J_FALSE:
        val->type = SG_V_BOOL;
        val->u.b = v->type == J_TRUE;
        break;
    default:
        val->type = SG_V_NULL;
        break;
    }
}

/* Notes value v (a scalar, or a container as it opens) for its role. */
static void note(parser *ps, int role, const jval *v)
{
    if (role >= 0)
        ps->member[role] = *v;
    else if (role == ROLE_BODY)
        ps->body = v->type;
    else if (role == ROLE_PARAM)
        param_value(ps, v);
}

/* --- The pass -------------------------------------------------------------------- */

static int open_container(parser *ps, int role)
{
    bool object = *ps->p == '{';
    if (ps->depth == QREQ_MAX_DEPTH) {
        size_t line, col;
        position(ps, ps->p, &line, &col);
        return sg_err_set(ps->err, SG_BAD_REQUEST,
                          "the body nests arrays and objects more than %d levels deep (line %zu, "
                          "column %zu)",
                          QREQ_MAX_DEPTH, line, col);
    }
    note(ps, role, &(jval){.type = object ? J_OBJECT : J_ARRAY});
    frame *f = &ps->stack[ps->depth++];
    f->kind = !object             ? F_ARRAY
              : role == ROLE_BODY ? F_BODY
              : role == M_PARAMS  ? F_PARAMS
                                  : F_OBJECT;
    f->obj = object ? ++ps->objects : 0;
    ps->p++;
    return 0;
}

static int read_scalar(parser *ps, int role)
{
    jval v = {.type = J_ABSENT};
    int rc;
    int c = ps->p < ps->end ? *ps->p : -1;
    if (c == '"')
        rc = read_string(ps, &v);
    else if (c == '-' || is_digit(c))
        rc = read_number(ps, &v);
    else
        rc = read_literal(ps, &v);
    if (rc != 0)
        return rc;
    note(ps, role, &v);
    if (v.type == J_STRING && role != ROLE_IGNORED)
        ps->w += v.len + 1;
    return 0;
}

/* Reads a key of the innermost object and the ':' after it; *role is what
 * the key's value will be to the request. */
static int read_key(parser *ps, int *role)
{
    const frame *f = &ps->stack[ps->depth - 1];
    const unsigned char *at = ps->p;
    jval k;
    bool dup;
    if (read_string(ps, &k) != 0)
        return -1;
    ps->w += k.len + 1; /* keys stay: the duplicate check refers to them */
    if (keys_add(&ps->keys, &k, f->obj, &dup) != 0)
        return out_of_memory(ps);
    if (dup) {
        /* cut at a character boundary so the message stays UTF-8 */
        size_t n = k.len < 60 ? k.len : 60;
        while (n < k.len && (k.s[n] & 0xC0) == 0x80)
            n--;
        return syntax_error(ps, at, "duplicate key \"%.*s\"", (int)n, k.s);
    }
    *role = ROLE_IGNORED;
    if (f->kind == F_BODY) {
        *role = member_of(&k);
    } else if (f->kind == F_PARAMS) {
        *role = ROLE_PARAM;
        if (param_entry(ps, k.s) != 0)
            return -1;
    }
    skip_space(ps);
    if (ps->p == ps->end || *ps->p != ':')
        return unexpected(ps, ps->p, "':' after a key");
    ps->p++;
    return 0;
}

static int parse_body(parser *ps)
{
    enum { ST_VALUE, ST_FIRST_ELEMENT, ST_FIRST_KEY, ST_KEY, ST_AFTER_VALUE } st = ST_VALUE;
    int role = ROLE_BODY;
    skip_space(ps);
    if (ps->p == ps->end || (*ps->p != '{' && *ps->p != '['))
        return unexpected(ps, ps->p, "a JSON object ('{')");
    for (;;) {
        skip_space(ps);
        int c = ps->p < ps->end ? *ps->p : -1;
        switch (st) {
        case ST_VALUE:
            if (c == '{' || c == '[') {
                if (open_container(ps, role) != 0)
                    return -1;
                st = c == '{' ? ST_FIRST_KEY : ST_FIRST_ELEMENT;
            } else {
                if (read_scalar(ps, role) != 0)
                    return -1;
                st = ST_AFTER_VALUE;
            }
            break;
        case ST_FIRST_ELEMENT:
            if (c == ']') {
                ps->p++;
                ps->depth--;
                st = ST_AFTER_VALUE;
            } else {
                role = ROLE_IGNORED; /* no array holds anything the request reads */
                st = ST_VALUE;
            }
            break;
        case ST_FIRST_KEY:
            if (c == '}') {
                ps->p++;
                ps->depth--;
                st = ST_AFTER_VALUE;
                break;
            }
            /* fall through */
        case ST_KEY:
            if (c != '"')
                return unexpected(ps, ps->p, "a key (a string)");
            if (read_key(ps, &role) != 0)
                return -1;
            st = ST_VALUE;
            break;
        case ST_AFTER_VALUE:
            if (ps->depth == 0) {
                if (c != -1)
                    return unexpected(ps, ps->p, "the end of the body after its object");
                return 0;
            }
            bool object = ps->stack[ps->depth - 1].kind != F_ARRAY;
            if (c == ',') {
                ps->p++;
                role = ROLE_IGNORED;
                st = object ? ST_KEY : ST_VALUE;
            } else if (c == (object ? '}' : ']')) {
                ps->p++;
                ps->depth--;
            } else {
                return unexpected(ps, ps->p, object ? "',' or '}'" : "',' or ']'");
            }
            break;
        }
    }
}

/* --- Field checks, in the jansson-based decoder's order ------------------------------ */

static const char *type_name(jtype t)
{
    switch (t) {
    case J_OBJECT:
        return "an object";
    case J_ARRAY:
        return "an array";
    case J_STRING:
        return "a string";
    case J_INTEGER:
        return "an integer";
    case J_REAL:
        return "a number";
    case J_TRUE:
    case J_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* A positive integer member, or 0 when absent. */
static int positive(const parser *ps, int m, int64_t *out, sg_err *err)
{
    const jval *v = &ps->member[m];
    *out = 0;
    if (v->type == J_ABSENT || v->type == J_NULL)
        return 0;
    if (v->type != J_INTEGER)
        return sg_err_set(err, SG_BAD_REQUEST, "%s must be an integer >= 1, not %s",
                          MEMBER_NAMES[m], type_name(v->type));
    if (v->i < 1)
        return sg_err_set(err, SG_BAD_REQUEST, "%s must be an integer >= 1", MEMBER_NAMES[m]);
    *out = v->i;
    return 0;
}

static int optional_string(const parser *ps, int m, const char **out, sg_err *err)
{
    const jval *v = &ps->member[m];
    *out = NULL;
    if (v->type == J_ABSENT || v->type == J_NULL)
        return 0;
    if (v->type != J_STRING)
        return sg_err_set(err, SG_BAD_REQUEST, "%s must be a string, not %s", MEMBER_NAMES[m],
                          type_name(v->type));
    *out = v->s;
    return 0;
}

static int check_params(const parser *ps, sg_err *err)
{
    jtype t = ps->member[M_PARAMS].type;
    if (t == J_ABSENT || t == J_NULL)
        return 0;
    if (t != J_OBJECT)
        return sg_err_set(err, SG_BAD_REQUEST, "params must be an object, not %s", type_name(t));
    if (ps->n_params > QREQ_MAX_PARAMS)
        return sg_err_set(err, SG_BAD_REQUEST, "params has %zu entries; at most %d are allowed",
                          ps->n_params, QREQ_MAX_PARAMS);
    if (ps->bad_param != NULL && ps->bad_type == J_ABSENT)
        return sg_err_set(err, SG_BAD_REQUEST,
                          "params: \"%.64s\" is not a parameter name (letters, digits and _, "
                          "not starting with a digit, without '@')",
                          ps->bad_param);
    if (ps->bad_param != NULL)
        return sg_err_set(err, SG_BAD_REQUEST,
                          "params.%s: %s is not a supported value (use a string, number, "
                          "boolean or null)",
                          ps->bad_param, type_name(ps->bad_type));
    return 0;
}

static int check_fields(const parser *ps, qreq *q, sg_err *err)
{
    if (ps->body != J_OBJECT)
        return sg_err_set(err, SG_BAD_REQUEST, "the body must be a JSON object, not %s",
                          type_name(ps->body));
    const jval *sql = &ps->member[M_SQL];
    if (sql->type == J_ABSENT)
        return sg_err_set(err, SG_BAD_REQUEST, "sql is required");
    if (sql->type != J_STRING)
        return sg_err_set(err, SG_BAD_REQUEST, "sql must be a string, not %s",
                          type_name(sql->type));
    if (sql->len == 0)
        return sg_err_set(err, SG_BAD_REQUEST, "sql must not be empty");
    q->sql = sql->s;

    const char *rows_as;
    if (optional_string(ps, M_DATABASE, &q->database, err) != 0 ||
        optional_string(ps, M_OPERATION, &q->operation, err) != 0 ||
        optional_string(ps, M_ROWS_AS, &rows_as, err) != 0 ||
        positive(ps, M_MAX_ROWS, &q->max_rows, err) != 0 ||
        positive(ps, M_TIMEOUT_MS, &q->timeout_ms, err) != 0)
        return -1;
    if (q->operation != NULL && ps->member[M_OPERATION].len > QREQ_MAX_OPERATION)
        return sg_err_set(err, SG_BAD_REQUEST, "operation is longer than %d bytes",
                          QREQ_MAX_OPERATION);
    if (rows_as != NULL) {
        if (strcmp(rows_as, "arrays") == 0)
            q->rows_as_arrays = true;
        else if (strcmp(rows_as, "objects") != 0)
            return sg_err_set(err, SG_BAD_REQUEST, "rows_as must be \"objects\" or \"arrays\"");
    }
    return check_params(ps, err);
}

int qreq_parse(qreq *q, const char *body, size_t len, sg_err *err)
{
    memset(q, 0, sizeof *q);
    /* key lengths and object serials are 32-bit; the HTTP layer caps bodies
     * far below this */
    if (len >= UINT32_MAX)
        return sg_err_set(err, SG_BAD_REQUEST, "the body is too large to read");
    parser ps;
    ps.start = ps.p = (const unsigned char *)body;
    ps.end = ps.start + len;
    ps.w = 0;
    ps.depth = 0;
    ps.objects = 0;
    ps.keys.n = 0;
    ps.keys.slots = NULL;
    ps.body = J_ABSENT;
    for (int m = 0; m < M_N; m++)
        ps.member[m].type = J_ABSENT;
    ps.params = NULL;
    ps.n_params = ps.cap_params = 0;
    ps.param_name = ps.bad_param = NULL;
    ps.bad_type = J_ABSENT;
    ps.err = err;
    ps.out = malloc(len + 1);
    if (ps.out == NULL)
        return out_of_memory(&ps);

    int rc = parse_body(&ps);
    free(ps.keys.slots);
    if (rc == 0)
        rc = check_fields(&ps, q, err);
    if (rc != 0) {
        free(ps.params);
        free(ps.out);
        memset(q, 0, sizeof *q);
        return -1;
    }
    q->strings = ps.out;
    q->params = ps.params;
    q->n_params = ps.n_params;
    return 0;
}

void qreq_free(qreq *q)
{
    free(q->params);
    free(q->strings);
    memset(q, 0, sizeof *q);
}
