/* Check suite for the number writers of src/service/jsonw.c, which avoid
 * printf on the row path.
 * - jw_double: the shortest text that reads back as the same double. Its fast
 *   path (no printf, no strtod) must print exactly what the reference --
 *   %.15g, %.16g or %.17g, whichever reads back first, with ".0" on integral
 *   values -- prints, for every double.
 * - jw_int: what "%lld" prints, quoted beyond +-2^53 (docs/api.md); jw_i64
 *   never quoted.
 * - jw_ms: microseconds as "%.3f" of milliseconds.
 * - jw_str: against a plain byte-at-a-time reference, across its chunks. */
#include <check.h>
#include <stdbool.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "jsonw.h"

/* The reference: jw_double as it was before the fast path. */
static void reference(double v, char *out, size_t n)
{
    if (!isfinite(v)) {
        snprintf(out, n, "null");
        return;
    }
    int len = 0;
    for (int prec = 15; prec <= 17; prec++) {
        len = snprintf(out, n, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    if (strpbrk(out, ".eEn") == NULL && (size_t)len + 2 < n)
        snprintf(out + len, n - (size_t)len, ".0");
}

/* jw_double's text for v, into out. */
static void encoded(double v, char *out, size_t n)
{
    jw_buf b;
    jw_init(&b, 0);
    jw_double(&b, v);
    ck_assert(!b.failed);
    snprintf(out, n, "%.*s", (int)b.len, b.data);
    jw_free(&b);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t next_random(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}

static unsigned long mismatches;

static void same_as_reference(double v)
{
    char want[48], got[48];
    reference(v, want, sizeof want);
    encoded(v, got, sizeof got);
    if (strcmp(want, got) != 0 && mismatches++ < 10)
        fprintf(stderr, "jw_double(%.17g): \"%s\", reference \"%s\"\n", v, got, want);
}

START_TEST(known_values)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0.0, "0.0"},
        {-0.0, "-0.0"},
        {1.0, "1.0"},
        {-1.0, "-1.0"},
        {0.5, "0.5"},
        {0.1, "0.1"},
        {0.3, "0.3"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1.0 / 3.0, "0.3333333333333333"},
        {12.25, "12.25"},
        {63.0, "63.0"},
        {1e-4, "0.0001"},
        {0.000123, "0.000123"},
        {1e-5, "1e-05"},
        {123456789012345.0, "123456789012345.0"},
        {999999999999999.0, "999999999999999.0"},
        {1e15, "1e+15"},
        {12345678901234.5, "12345678901234.5"},
        {-2.5e-3, "-0.0025"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {5e-324, "4.94065645841247e-324"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char got[48];
        encoded(cases[i].v, got, sizeof got);
        ck_assert_msg(strcmp(got, cases[i].text) == 0, "jw_double(%.17g) = \"%s\", want \"%s\"",
                      cases[i].v, got, cases[i].text);
    }
}
END_TEST

START_TEST(non_finite_is_null)
{
    char got[48];
    encoded(NAN, got, sizeof got);
    ck_assert_str_eq(got, "null");
    encoded(INFINITY, got, sizeof got);
    ck_assert_str_eq(got, "null");
    encoded(-INFINITY, got, sizeof got);
    ck_assert_str_eq(got, "null");
}
END_TEST

START_TEST(matches_reference)
{
    /* Fewer values under valgrind, which is ~50 times slower here. */
    int n = getenv("SQLGATE_UNDER_VALGRIND") != NULL ? 10000 : 100000;
    mismatches = 0;
    /* Any bit pattern. */
    for (int i = 0; i < 3 * n; i++) {
        uint64_t bits = next_random();
        double v;
        memcpy(&v, &bits, sizeof v);
        same_as_reference(v);
    }
    /* Decimals with up to 15 digits and 0 to 19 decimals, both signs: the
     * fast path's domain and its edges. */
    for (int i = 0; i < 3 * n; i++) {
        double m = (double)(next_random() % 1000000000000000ULL);
        double v = m / pow(10, (double)(next_random() % 20));
        same_as_reference(next_random() & 1 ? v : -v);
    }
    /* Short decimals and binary fractions, as table columns hold them. */
    for (int i = 0; i < 2 * n; i++) {
        same_as_reference((double)(next_random() % 4000000) * 0.25);
        same_as_reference((double)(next_random() % 100000) / 100.0);
        same_as_reference((double)(next_random() % 100000) / 3.0);
    }
    /* Neighbours of powers of ten and of the fast path's limits. */
    for (int e = -30; e <= 30; e++) {
        double p = pow(10, e);
        for (int k = 1; k < 1000; k += 7) {
            double v = p * k;
            same_as_reference(v);
            same_as_reference(nextafter(v, 0));
            same_as_reference(nextafter(v, INFINITY));
        }
    }
    static const double edges[] = {1e-4,
                                   9.9999999999999e-5,
                                   1e15,
                                   999999999999999.4,
                                   999999999999999.5,
                                   99999999999999.99,
                                   4503599627370496.0,
                                   9007199254740993.0};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        same_as_reference(edges[i]);
        same_as_reference(-edges[i]);
        same_as_reference(nextafter(edges[i], 0));
        same_as_reference(nextafter(edges[i], INFINITY));
    }
    ck_assert_msg(mismatches == 0, "%lu values differ from the reference", mismatches);
}
END_TEST

/* The writer's text for one call, into out. */
#define WRITTEN(call, out)                                                                         \
    do {                                                                                           \
        jw_buf b_;                                                                                 \
        jw_init(&b_, 0);                                                                           \
        call;                                                                                      \
        ck_assert(!b_.failed);                                                                     \
        snprintf((out), sizeof(out), "%.*s", (int)b_.len, b_.data);                                \
        jw_free(&b_);                                                                              \
    } while (0)

static void int_as_printf(int64_t v)
{
    char want[32], got[32];
    const int64_t exact = 9007199254740992LL; /* 2^53 */
    if (v >= -exact && v <= exact)
        snprintf(want, sizeof want, "%" PRId64, v);
    else
        snprintf(want, sizeof want, "\"%" PRId64 "\"", v);
    WRITTEN(jw_int(&b_, v), got);
    ck_assert_msg(strcmp(want, got) == 0, "jw_int(%" PRId64 "): %s, want %s", v, got, want);
    snprintf(want, sizeof want, "%" PRId64, v); /* jw_i64: never quoted */
    WRITTEN(jw_i64(&b_, v), got);
    ck_assert_msg(strcmp(want, got) == 0, "jw_i64(%" PRId64 "): %s, want %s", v, got, want);
}

START_TEST(int_matches_printf)
{
    const int64_t edges[] = {0,
                             1,
                             -1,
                             9,
                             10,
                             -10,
                             99,
                             100,
                             9007199254740991LL,
                             9007199254740992LL,
                             9007199254740993LL,
                             -9007199254740992LL,
                             -9007199254740993LL,
                             INT64_MAX,
                             INT64_MIN,
                             INT64_MIN + 1};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        int_as_printf(edges[i]);
    for (int i = 0; i < 200000; i++) {
        uint64_t r = next_random();
        int_as_printf((int64_t)(r >> (r % 64))); /* every magnitude */
        int_as_printf(-(int64_t)(r >> (1 + r % 63)));
    }
}
END_TEST

static void ms_as_printf(int64_t us)
{
    char want[48], got[48];
    /* Integer arithmetic: a double would round beyond 2^53 microseconds. */
    uint64_t mag = us < 0 ? (uint64_t)0 - (uint64_t)us : (uint64_t)us;
    snprintf(want, sizeof want, "%s%" PRIu64 ".%03u", us < 0 ? "-" : "", mag / 1000,
             (unsigned)(mag % 1000));
    WRITTEN(jw_ms(&b_, us), got);
    ck_assert_msg(strcmp(want, got) == 0, "jw_ms(%" PRId64 "): %s, want %s", us, got, want);
}

START_TEST(ms_three_decimals)
{
    char got[48];
    WRITTEN(jw_ms(&b_, 1250), got);
    ck_assert_str_eq(got, "1.250");
    WRITTEN(jw_ms(&b_, 7), got);
    ck_assert_str_eq(got, "0.007");
    WRITTEN(jw_ms(&b_, -7), got);
    ck_assert_str_eq(got, "-0.007");
    WRITTEN(jw_ms(&b_, 0), got);
    ck_assert_str_eq(got, "0.000");
    WRITTEN(jw_ms(&b_, 25000000), got);
    ck_assert_str_eq(got, "25000.000");
    const int64_t edges[] = {INT64_MAX, INT64_MIN, INT64_MIN + 1, 999, 1000, 1001, -999, -1000};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        ms_as_printf(edges[i]);
    for (int i = 0; i < 100000; i++) {
        uint64_t r = next_random();
        ms_as_printf((int64_t)(r >> (r % 64)));
        ms_as_printf(-(int64_t)(r >> (1 + r % 63)));
    }
}
END_TEST

static int put_u_escape(char *o, unsigned char c, const char *hex)
{
    o[0] = '\\';
    o[1] = 'u';
    o[2] = '0';
    o[3] = '0';
    o[4] = hex[c >> 4];
    o[5] = hex[c & 0xF];
    return 6;
}

/* The reference for jw_str: JSON escaping of UTF-8 bytes, each invalid
 * byte as U+FFFD, written the plain way (one byte at a time into a large
 * enough array). */
static size_t str_reference(const unsigned char *p, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    *o++ = '"';
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        const char *esc = c == '"'    ? "\\\""
                          : c == '\\' ? "\\\\"
                          : c == '\n' ? "\\n"
                          : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t"
                          : c == '\b' ? "\\b"
                          : c == '\f' ? "\\f"
                                      : NULL;
        if (esc != NULL) {
            memcpy(o, esc, 2);
            o += 2;
            i++;
        } else if (c < 0x20) {
            o += put_u_escape(o, c, hex);
            i++;
        } else if (c < 0x80) {
            *o++ = (char)c;
            i++;
        } else {
            /* a valid sequence decodes to a scalar value of its length */
            size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            bool ok = c >= 0xC2 && c <= 0xF4 && i + n <= len;
            uint32_t cp = c & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
            for (size_t k = 1; ok && k < n; k++) {
                ok = (p[i + k] & 0xC0) == 0x80;
                cp = cp << 6 | (p[i + k] & 0x3F);
            }
            ok = ok && !(n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) &&
                 !(n == 4 && (cp < 0x10000 || cp > 0x10FFFF));
            if (ok) {
                memcpy(o, p + i, n);
                o += n;
                i += n;
            } else {
                memcpy(o, "\xEF\xBF\xBD", 3);
                o += 3;
                i++;
            }
        }
    }
    *o++ = '"';
    return (size_t)(o - out);
}

START_TEST(str_across_chunks)
{
    /* pieces placed at every offset around the writer's 4096-byte chunks */
    static const char *const pieces[] = {"a",    "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80",
                                         "\"",   "\\",       "\n",           "\x01",
                                         "\xFF", "\xE2\x82"};
    const size_t n_pieces = sizeof pieces / sizeof pieces[0];
    size_t cap = 3 * 4096 + 64;
    unsigned char *in = malloc(cap);
    char *want = malloc(cap * 6 + 2);
    ck_assert(in != NULL && want != NULL);
    for (int round = 0; round < 400; round++) {
        size_t len = 0;
        while (len + 4 < cap - 16) {
            uint64_t r = next_random();
            const char *piece = round % 2 == 0 && r % 3 != 0 ? "x" : pieces[r % n_pieces];
            size_t n = strlen(piece);
            memcpy(in + len, piece, n);
            len += n;
        }
        size_t want_len = str_reference(in, len, want);
        jw_buf b;
        jw_init(&b, 0);
        jw_str(&b, (const char *)in, len);
        ck_assert(!b.failed);
        ck_assert_msg(b.len == want_len && memcmp(b.data, want, want_len) == 0,
                      "round %d: %zu bytes, reference %zu", round, b.len, want_len);
        jw_free(&b);
    }
    free(in);
    free(want);
}
END_TEST

/* Whole span written into a buffer drained after every piece; checks that
 * no piece outgrows its documented bound and returns the concatenation. */
static size_t span_pieces(jw_span_kind kind, const unsigned char *in, size_t len, size_t in_max,
                          char *out)
{
    jw_span sp;
    jw_span_init(&sp, kind, in, len);
    jw_buf b;
    jw_init(&b, 0);
    size_t n = 0;
    size_t bound = kind == JW_SPAN_STR ? 6 * ((in_max ? in_max : 1) + 3) + 2
                                       : 4 * (in_max < 3 ? 3 : in_max) / 3 + 6;
    bool done;
    size_t pieces = 0;
    do {
        done = jw_span_write(&b, &sp, in_max);
        ck_assert(!b.failed);
        ck_assert_msg(b.len <= bound, "piece of %zu bytes, bound %zu (in_max %zu)", b.len, bound,
                      in_max);
        memcpy(out + n, b.data, b.len);
        n += b.len;
        jw_consume(&b, b.len);
        ck_assert_uint_lt(++pieces, len + 4);
    } while (!done);
    /* done is sticky and writes nothing more */
    ck_assert(jw_span_write(&b, &sp, in_max));
    ck_assert_uint_eq(b.len, 0);
    jw_free(&b);
    return n;
}

static const size_t piece_sizes[] = {0, 1, 2, 3, 4, 5, 6, 7, 64, 1000, 4095, 4096, 4097, 1 << 20};

START_TEST(span_str_equals_whole)
{
    /* multibyte sequences, escapes and invalid bytes land on every piece edge */
    static const char *const pieces[] = {"a",    "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80",
                                         "\"",   "\\",       "\n",           "\x01",
                                         "\xFF", "\xE2\x82", "\xF0\x9F"};
    const size_t n_pieces = sizeof pieces / sizeof pieces[0];
    size_t cap = 2 * 4096 + 64;
    unsigned char *in = malloc(cap);
    char *want = malloc(cap * 6 + 2);
    char *got = malloc(cap * 6 + 2);
    ck_assert(in != NULL && want != NULL && got != NULL);
    for (int round = 0; round < 60; round++) {
        size_t len = 0;
        size_t target = round < 20 ? (size_t)round : cap - 16;
        while (len + 4 < target) {
            uint64_t r = next_random();
            const char *piece = pieces[r % n_pieces];
            size_t n = strlen(piece);
            memcpy(in + len, piece, n);
            len += n;
        }
        size_t want_len = str_reference(in, len, want);
        for (size_t k = 0; k < sizeof piece_sizes / sizeof piece_sizes[0]; k++) {
            size_t got_len = span_pieces(JW_SPAN_STR, in, len, piece_sizes[k], got);
            ck_assert_msg(got_len == want_len && memcmp(got, want, want_len) == 0,
                          "round %d, pieces of %zu: %zu bytes, whole %zu", round, piece_sizes[k],
                          got_len, want_len);
        }
        /* and the same as jw_str in one call */
        jw_buf b;
        jw_init(&b, 0);
        jw_str(&b, (const char *)in, len);
        ck_assert(b.len == want_len && memcmp(b.data, want, want_len) == 0);
        jw_free(&b);
    }
    free(in);
    free(want);
    free(got);
}
END_TEST

/* RFC 4648 section 4, bit by bit: independent of the writer's table walk. */
static size_t base64_reference(const unsigned char *p, size_t len, char *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    out[o++] = '"';
    unsigned acc = 0, bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | p[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = tbl[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = tbl[(acc << (6 - bits)) & 63];
    while ((o - 1) % 4 != 0)
        out[o++] = '=';
    out[o++] = '"';
    return o;
}

START_TEST(span_base64_equals_whole)
{
    size_t cap = 3 * 16384 + 7;
    unsigned char *in = malloc(cap);
    char *want = malloc(cap * 2 + 8);
    char *got = malloc(cap * 2 + 8);
    ck_assert(in != NULL && want != NULL && got != NULL);
    for (size_t i = 0; i < cap; i++)
        in[i] = (unsigned char)next_random();
    static const size_t lens[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 100, 4095, 4096, 4097, 16384, 16385};
    for (size_t l = 0; l <= sizeof lens / sizeof lens[0]; l++) {
        size_t len = l < sizeof lens / sizeof lens[0] ? lens[l] : cap;
        size_t want_len = base64_reference(in, len, want);
        jw_buf b;
        jw_init(&b, 0);
        jw_base64(&b, in, len);
        ck_assert_msg(b.len == want_len && memcmp(b.data, want, want_len) == 0, "whole, %zu bytes",
                      len);
        jw_free(&b);
        for (size_t k = 0; k < sizeof piece_sizes / sizeof piece_sizes[0]; k++) {
            size_t got_len = span_pieces(JW_SPAN_BASE64, in, len, piece_sizes[k], got);
            ck_assert_msg(got_len == want_len && memcmp(got, want, want_len) == 0,
                          "%zu bytes in pieces of %zu: %zu bytes, whole %zu", len, piece_sizes[k],
                          got_len, want_len);
        }
        ck_assert_uint_eq(jw_span_min_len(JW_SPAN_BASE64, len), want_len);
    }
    ck_assert_uint_eq(jw_span_min_len(JW_SPAN_STR, 10), 12);
    free(in);
    free(want);
    free(got);
}
END_TEST

/* A span over a capped buffer fails (sticky) instead of growing past it. */
START_TEST(span_respects_buffer_cap)
{
    static unsigned char in[10000];
    memset(in, 'a', sizeof in);
    jw_buf b;
    jw_init(&b, 5000);
    jw_span sp;
    jw_span_init(&sp, JW_SPAN_STR, in, sizeof in);
    bool done = false;
    for (int i = 0; i < 100 && !done && !b.failed; i++)
        done = jw_span_write(&b, &sp, 1024);
    ck_assert(!done);
    ck_assert(b.failed);
    ck_assert_uint_le(b.len, 5000);
    jw_free(&b);
}
END_TEST

static Suite *jsonw_suite(void)
{
    Suite *s = suite_create("jsonw");
    TCase *tc = tcase_create("double");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, known_values);
    tcase_add_test(tc, non_finite_is_null);
    tcase_add_test(tc, matches_reference);
    suite_add_tcase(s, tc);
    TCase *ints = tcase_create("integers");
    tcase_add_test(ints, int_matches_printf);
    tcase_add_test(ints, ms_three_decimals);
    suite_add_tcase(s, ints);
    TCase *strs = tcase_create("strings");
    tcase_add_test(strs, str_across_chunks);
    tcase_add_test(strs, span_str_equals_whole);
    tcase_add_test(strs, span_base64_equals_whole);
    tcase_add_test(strs, span_respects_buffer_cap);
    suite_add_tcase(s, strs);
    return s;
}

int main(void)
{
    return check_run(jsonw_suite());
}
