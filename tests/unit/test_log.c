/* Check suite for src/service/log.c: the exact text of a line in both
 * formats, field by field kind, as operators' log pipelines read it.
 * - JSON: {"time":..., "level":..., "msg":..., then the fields in order};
 *   text: "<time> <level padded to 5> <msg> key=value...", a plain word bare,
 *   any other string quoted and escaped as in JSON.
 * - LOG_REAL: what jansson wrote with JSON_REAL_PRECISION(9) before the
 *   logger took typed fields ("1234.0", "1e9").
 * - Bytes that are not UTF-8 read as U+FFFD, control characters escaped: no
 *   value can split a line.
 * - The threshold drops lower levels. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "log.h"

#define TIME_LEN 24 /* "2026-01-02T03:04:05.678Z" */

/* Runs the logging in fn with stderr sent to a temporary file; returns what
 * was written (new). */
static char *captured(void (*fn)(void))
{
    FILE *tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(dup2(fileno(tmp), STDERR_FILENO), 0);
    fn();
    ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
    close(saved);
    off_t len = lseek(fileno(tmp), 0, SEEK_END); /* the logger writes with write(2) */
    ck_assert_int_ge(len, 0);
    char *out = calloc((size_t)len + 1, 1);
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(pread(fileno(tmp), out, (size_t)len, 0), len);
    fclose(tmp);
    return out;
}

/* The line with its time replaced by "T" (after checking its shape). */
static void strip_time(char *line, bool json)
{
    char *t = json ? strstr(line, "\"time\":\"") : line;
    ck_assert_ptr_nonnull(t);
    if (json)
        t += strlen("\"time\":\"");
    ck_assert_msg(strlen(t) > TIME_LEN && t[4] == '-' && t[10] == 'T' && t[19] == '.' &&
                      t[23] == 'Z',
                  "no time in: %s", line);
    memmove(t + 1, t + TIME_LEN, strlen(t + TIME_LEN) + 1);
    t[0] = 'T';
}

static const char JSON_LIST[] = "[\"a\",\"b\"]";

static void every_kind(void)
{
    log_at(SG_LOG_INFO, "every kind", log_str("word", "core"), log_str("spaced", "a b"),
           log_str("quoted", "say \"hi\"\n"), log_str("empty", ""), log_str("none", NULL),
           log_strn("cut", "abcdef", 3), log_int("int", -42), log_ms("ms", 1250),
           log_ms("ms_neg", -5), log_real("real", 1234.0), log_real("big", 1e9),
           log_real("frac", 0.5), log_real("inf", INFINITY), log_bool("yes", true),
           log_bool("no", false), log_json("list", JSON_LIST, strlen(JSON_LIST)));
}

static void bad_bytes(void)
{
    log_at(SG_LOG_WARN, "bad bytes", log_strn("v", "x\xff\x01y\xC3", 5));
}

START_TEST(json_line)
{
    log_setup(SG_LOG_DEBUG, true);
    char *out = captured(every_kind);
    strip_time(out, true);
    ck_assert_str_eq(out, "{\"time\":\"T\",\"level\":\"info\",\"msg\":\"every kind\","
                          "\"word\":\"core\",\"spaced\":\"a b\",\"quoted\":\"say \\\"hi\\\"\\n\","
                          "\"empty\":\"\",\"none\":null,\"cut\":\"abc\",\"int\":-42,"
                          "\"ms\":1.250,\"ms_neg\":-0.005,\"real\":1234.0,\"big\":1e9,"
                          "\"frac\":0.5,\"inf\":null,\"yes\":true,\"no\":false,"
                          "\"list\":[\"a\",\"b\"]}\n");
    free(out);
}
END_TEST

START_TEST(text_line)
{
    log_setup(SG_LOG_DEBUG, false);
    char *out = captured(every_kind);
    strip_time(out, false);
    ck_assert_str_eq(out,
                     "T info  every kind word=core spaced=\"a b\" quoted=\"say \\\"hi\\\"\\n\" "
                     "empty=\"\" none=null cut=abc int=-42 ms=1.250 ms_neg=-0.005 "
                     "real=1234.0 big=1e9 frac=0.5 inf=null yes=true no=false "
                     "list=[\"a\",\"b\"]\n");
    free(out);
}
END_TEST

START_TEST(bytes_that_are_not_utf8)
{
    log_setup(SG_LOG_DEBUG, true);
    char *out = captured(bad_bytes);
    strip_time(out, true);
    ck_assert_str_eq(out, "{\"time\":\"T\",\"level\":\"warn\",\"msg\":\"bad bytes\","
                          "\"v\":\"x\xEF\xBF\xBD\\u0001y\xEF\xBF\xBD\"}\n");
    free(out);
    log_setup(SG_LOG_DEBUG, false);
    out = captured(bad_bytes);
    strip_time(out, false);
    ck_assert_str_eq(out, "T warn  bad bytes v=\"x\xEF\xBF\xBD\\u0001y\xEF\xBF\xBD\"\n");
    free(out);
}
END_TEST

static void one_per_level(void)
{
    log_msg(SG_LOG_DEBUG, "d");
    log_msg(SG_LOG_INFO, "i");
    log_msg(SG_LOG_WARN, "w");
    log_msg(SG_LOG_ERROR, "e");
}

START_TEST(threshold)
{
    log_setup(SG_LOG_WARN, false);
    ck_assert(!log_enabled(SG_LOG_INFO));
    ck_assert(log_enabled(SG_LOG_ERROR));
    char *out = captured(one_per_level);
    char *second = strchr(out, '\n');
    ck_assert_ptr_nonnull(second);
    *second++ = '\0';
    strip_time(out, false);
    strip_time(second, false);
    ck_assert_str_eq(out, "T warn  w");
    ck_assert_str_eq(second, "T error e\n");
    free(out);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("lines");
    tcase_add_test(tc, json_line);
    tcase_add_test(tc, text_line);
    tcase_add_test(tc, bytes_that_are_not_utf8);
    tcase_add_test(tc, threshold);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(log_suite());
}
