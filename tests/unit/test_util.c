/* Unit tests of the library's internal helpers (src/lib/util.h) and of the
 * public name rule (sg_name_valid): each replaced copies that callers relied
 * on, so the edges those copies handled are pinned here. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "../../src/lib/util.h"
#include "sqlgate/clock.h"
#include "sqlgate/config.h"
#include "sqlgate/error.h"

static char g_dir[] = "/tmp/sg_util_XXXXXX";

static void make_dir(void)
{
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static const char *path_of(const char *name)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    return p;
}

static void put(const char *name, const void *data, size_t len)
{
    FILE *f = fopen(path_of(name), "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* --- Files ---------------------------------------------------------------------- */

START_TEST(file_read_codes)
{
    make_dir();
    char *buf = NULL;
    size_t len = 0;

    put("ok", "abc\n", 4);
    ck_assert_int_eq(sg_file_read(path_of("ok"), 4, true, &buf, &len), 0);
    ck_assert_uint_eq(len, 4);
    ck_assert_str_eq(buf, "abc\n");
    free(buf);

    put("empty", "", 0);
    ck_assert_int_eq(sg_file_read(path_of("empty"), 4, true, &buf, &len), 0);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(buf, "");
    free(buf);

    buf = NULL;
    ck_assert_int_eq(sg_file_read(path_of("ok"), 3, true, &buf, &len), SG_FILE_TOO_LARGE);
    ck_assert_ptr_null(buf);

    put("nul", "a\0b", 3);
    ck_assert_int_eq(sg_file_read(path_of("nul"), 16, true, &buf, &len), SG_FILE_HAS_NUL);
    ck_assert_int_eq(sg_file_read(path_of("nul"), 16, false, &buf, &len), 0);
    ck_assert_uint_eq(len, 3);
    ck_assert_int_eq(memcmp(buf, "a\0b", 4), 0); /* NUL after the last byte too */
    free(buf);

    ck_assert_int_eq(sg_file_read(g_dir, 16, true, &buf, &len), SG_FILE_NOT_REGULAR);
    errno = 0;
    ck_assert_int_eq(sg_file_read(path_of("missing"), 16, true, &buf, &len), SG_FILE_ERRNO);
    ck_assert_int_eq(errno, ENOENT);

    unlink(path_of("ok"));
    unlink(path_of("empty"));
    unlink(path_of("nul"));
    rmdir(g_dir);
}
END_TEST

/* --- Buffer ------------------------------------------------------------------------- */

START_TEST(buf_cap_is_sticky)
{
    sg_buf b;
    sg_buf_init(&b, 5);
    ck_assert(sg_buf_append(&b, "abc", 3));
    ck_assert(!sg_buf_append(&b, "def", 3)); /* 6 > 5 */
    ck_assert(b.failed);
    ck_assert(!sg_buf_append(&b, "d", 1)); /* sticky even though it would fit */
    ck_assert_uint_eq(b.len, 3);
    ck_assert_str_eq(b.data, "abc");
    sg_buf_free(&b);
}
END_TEST

START_TEST(buf_zero_is_uncapped_and_consumes)
{
    sg_buf b = {0};
    char chunk[1000];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 100; i++)
        ck_assert(sg_buf_append(&b, chunk, sizeof chunk));
    ck_assert_uint_eq(b.len, 100000);
    sg_buf_consume(&b, 99998);
    ck_assert_uint_eq(b.len, 2);
    ck_assert_int_eq(memcmp(b.data, "xx", 2), 0);
    size_t len;
    char *d = sg_buf_steal(&b, &len);
    ck_assert_uint_eq(len, 2);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    free(d);
}
END_TEST

START_TEST(wipe_and_free_secret)
{
    char s[] = "secret";
    sg_wipe(s, sizeof s - 1);
    for (size_t i = 0; i < sizeof s; i++)
        ck_assert_int_eq(s[i], 0);
    sg_free_secret(NULL);
    sg_free_secret(strdup("password"));
}
END_TEST

/* --- Text ---------------------------------------------------------------------------- */

START_TEST(utf8_lengths)
{
    static const struct {
        const char *bytes;
        size_t n;
        size_t want;
    } cases[] = {
        {"a", 1, 1},
        {"\xC3\xA9", 2, 2},         /* é */
        {"\xE2\x82\xAC", 3, 3},     /* € */
        {"\xF0\x9F\x98\x80", 4, 4}, /* U+1F600 */
        {"\xF4\x8F\xBF\xBF", 4, 4}, /* U+10FFFF */
        {"\xC0\x80", 2, 0},         /* overlong NUL */
        {"\xC1\xBF", 2, 0},         /* overlong */
        {"\xE0\x9F\xBF", 3, 0},     /* overlong 3-byte */
        {"\xF0\x8F\xBF\xBF", 4, 0}, /* overlong 4-byte */
        {"\xED\xA0\x80", 3, 0},     /* surrogate D800 */
        {"\xF4\x90\x80\x80", 4, 0}, /* above U+10FFFF */
        {"\xF5\x80\x80\x80", 4, 0}, /* lead byte never valid */
        {"\x80", 1, 0},             /* lone continuation */
        {"\xE2\x82", 2, 0},         /* cut off */
        {"\xE2\x28\xA1", 3, 0},     /* bad continuation */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(sg_utf8_len((const unsigned char *)cases[i].bytes, cases[i].n) ==
                          cases[i].want,
                      "case %zu", i);
}
END_TEST

START_TEST(hex_values)
{
    ck_assert_int_eq(sg_hex_value('0'), 0);
    ck_assert_int_eq(sg_hex_value('9'), 9);
    ck_assert_int_eq(sg_hex_value('a'), 10);
    ck_assert_int_eq(sg_hex_value('F'), 15);
    ck_assert_int_eq(sg_hex_value('g'), -1);
    ck_assert_int_eq(sg_hex_value('/'), -1);
    ck_assert_int_eq(sg_hex_value((char)0xC3), -1);
}
END_TEST

START_TEST(name_rule)
{
    ck_assert(sg_name_valid("core", 4));
    ck_assert(sg_name_valid("a_1", 3));
    ck_assert(sg_name_valid("coreX", 4)); /* only n bytes count */
    ck_assert(!sg_name_valid("", 0));
    ck_assert(!sg_name_valid(NULL, 3));
    ck_assert(!sg_name_valid("1abc", 4));
    ck_assert(!sg_name_valid("_abc", 4));
    ck_assert(!sg_name_valid("Core", 4));
    ck_assert(!sg_name_valid("co-re", 5));
    char longest[SG_NAME_MAX + 2];
    memset(longest, 'a', sizeof longest);
    ck_assert(sg_name_valid(longest, SG_NAME_MAX));
    ck_assert(!sg_name_valid(longest, SG_NAME_MAX + 1));
}
END_TEST

/* --- Errors ------------------------------------------------------------------------- */

START_TEST(code_list_names_and_outcomes)
{
    ck_assert_str_eq(sg_code_name(SG_OK), "OK");
    ck_assert_str_eq(sg_code_name(SG_DB_UNAVAILABLE), "DB_UNAVAILABLE");
    ck_assert_str_eq(sg_code_name(SG_INTERNAL), "INTERNAL");
    ck_assert_str_eq(sg_code_name(SG_CODE_COUNT_), "INTERNAL");
    ck_assert_str_eq(sg_code_outcome(SG_OK), "ok");
    ck_assert_str_eq(sg_code_outcome(SG_QUERY_TIMEOUT), "timeout");
    ck_assert_str_eq(sg_code_outcome(SG_BAD_REQUEST), "error");
    ck_assert_str_eq(sg_code_outcome(SG_CODE_COUNT_), "error");
    for (int c = 0; c < SG_CODE_COUNT_; c++) {
        ck_assert_ptr_nonnull(sg_code_name((sg_code)c));
        ck_assert_ptr_nonnull(sg_code_outcome((sg_code)c));
    }
}
END_TEST

/* --- Time ----------------------------------------------------------------------------- */

START_TEST(sleep_and_deadline_wait)
{
    int64_t t0 = sg_clock_ms();
    sg_sleep_ms(30);
    ck_assert_int_ge(sg_clock_ms() - t0, 30);
    sg_sleep_ms(0);
    sg_sleep_ms(-5);

    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv;
    ck_assert_int_eq(sg_cond_init_monotonic(&cv), 0);
    pthread_mutex_lock(&mu);
    t0 = sg_clock_ms();
    /* Nobody signals: the wait ends at the deadline (spurious wake-ups loop). */
    while (sg_clock_ms() < t0 + 30)
        sg_cond_wait_until(&cv, &mu, t0 + 30);
    ck_assert_int_ge(sg_clock_ms() - t0, 30);
    sg_cond_wait_until(&cv, &mu, 0);  /* a deadline long past returns */
    sg_cond_wait_until(&cv, &mu, -1); /* so does a negative one */
    pthread_mutex_unlock(&mu);
    pthread_cond_destroy(&cv);
}
END_TEST

static Suite *util_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("util");
    tcase_add_test(tc, file_read_codes);
    tcase_add_test(tc, buf_cap_is_sticky);
    tcase_add_test(tc, buf_zero_is_uncapped_and_consumes);
    tcase_add_test(tc, wipe_and_free_secret);
    tcase_add_test(tc, utf8_lengths);
    tcase_add_test(tc, hex_values);
    tcase_add_test(tc, name_rule);
    tcase_add_test(tc, code_list_names_and_outcomes);
    tcase_add_test(tc, sleep_and_deadline_wait);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(util_suite());
}
