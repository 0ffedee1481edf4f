/* Unit tests of SHA-256 (FIPS 180-4 example vectors) and of the token set:
 * the tokens-file parser, scopes, hashed tokens, look-ups and fingerprints. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "sqlgate/sha256.h"
#include "sqlgate/tokens.h"

static void hex_of(const void *data, size_t len, char out[65])
{
    unsigned char d[SG_SHA256_BYTES];
    sg_sha256(data, len, d);
    sg_sha256_hex(d, out);
}

/* --- SHA-256 ----------------------------------------------------------------- */

START_TEST(sha_fips_examples)
{
    char hex[65];
    hex_of("abc", 3, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(two, strlen(two), hex);
    ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    hex_of("", 0, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *four = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnop"
                       "jklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    hex_of(four, strlen(four), hex);
    ck_assert_str_eq(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}
END_TEST

START_TEST(sha_million_a_in_pieces)
{
    /* One million 'a' fed in uneven pieces crosses every block boundary case. */
    static char chunk[997];
    memset(chunk, 'a', sizeof chunk);
    sg_sha256_ctx s;
    sg_sha256_init(&s);
    size_t left = 1000000;
    while (left > 0) {
        size_t n = left < sizeof chunk ? left : sizeof chunk;
        sg_sha256_update(&s, chunk, n);
        left -= n;
    }
    unsigned char d[SG_SHA256_BYTES];
    char hex[65];
    sg_sha256_final(&s, d);
    sg_sha256_hex(d, hex);
    ck_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}
END_TEST

START_TEST(sha_lengths_around_padding)
{
    /* 55, 56 and 64 bytes need one or two final blocks: byte-at-a-time
     * updates must give the one-shot digest. */
    char buf[64];
    memset(buf, 'x', sizeof buf);
    char hex55[65], hex56[65], hex64[65];
    hex_of(buf, 55, hex55);
    hex_of(buf, 56, hex56);
    hex_of(buf, 64, hex64);
    ck_assert_str_ne(hex55, hex56);
    ck_assert_str_ne(hex56, hex64);
    unsigned char a[SG_SHA256_BYTES], b[SG_SHA256_BYTES];
    sg_sha256(buf, 56, a);
    sg_sha256_ctx s;
    sg_sha256_init(&s);
    for (int i = 0; i < 56; i++)
        sg_sha256_update(&s, buf + i, 1);
    sg_sha256_final(&s, b);
    ck_assert(sg_sha256_equal(a, b));
    b[31] ^= 1;
    ck_assert(!sg_sha256_equal(a, b));
}
END_TEST

/* --- Tokens file ----------------------------------------------------------- */

#define TOK_APP   "app-service-7f3a-0123"
#define TOK_OPS   "ops-2f9c-long-enough-xx"
#define TOK_HASHD "hashed-token-for-tests-1"

static const char *resolve(void *ud, const char *name)
{
    if (strcmp(name, "default") == 0)
        return "core";
    if (strcmp(name, "core") == 0 || strcmp(name, "app") == 0)
        return name;
    return NULL;
}

static sg_tokens *parse_ok(const char *text)
{
    sg_tokens *set = sg_tokens_new();
    ck_assert_ptr_nonnull(set);
    char *errors = NULL;
    int rc = sg_tokens_parse(set, text, strlen(text), "tokens.txt", resolve, NULL, &errors);
    ck_assert_msg(rc == 0, "parse failed: %s", errors ? errors : "(no text)");
    ck_assert_ptr_null(errors);
    return set;
}

/* Parses text that must fail; returns the error text (caller frees). */
static char *parse_bad(const char *text)
{
    sg_tokens *set = sg_tokens_new();
    char *errors = NULL;
    int rc = sg_tokens_parse(set, text, strlen(text), "tokens.txt", resolve, NULL, &errors);
    sg_tokens_free(set);
    ck_assert_int_eq(rc, -1);
    ck_assert_ptr_nonnull(errors);
    return errors;
}

static const sg_token *find(const sg_tokens *set, const char *t)
{
    return sg_tokens_find(set, t, strlen(t));
}

START_TEST(file_scopes)
{
    char hex[65];
    hex_of(TOK_HASHD, strlen(TOK_HASHD), hex);
    char text[512];
    snprintf(text, sizeof text,
             "# token   scopes\n"
             "\n"
             "   \t\n" TOK_APP "   db=app rw\n"
             "sha256:%s  db=* ro metrics   # trailing comment\n" TOK_OPS " db=* admin metrics\n"
             "defaulted-token-abcdef db=default,core\n"
             "nothing-token-abcdefgh\n",
             hex);
    sg_tokens *set = parse_ok(text);
    ck_assert_uint_eq(sg_tokens_count(set), 5);

    const sg_token *app = find(set, TOK_APP);
    ck_assert_ptr_nonnull(app);
    ck_assert_uint_eq(sg_token_scopes(app), SG_SCOPE_RW);
    ck_assert(sg_token_may_db(app, "app"));
    ck_assert(!sg_token_may_db(app, "core"));

    const sg_token *h = find(set, TOK_HASHD);
    ck_assert_ptr_nonnull(h);
    ck_assert_uint_eq(sg_token_scopes(h), SG_SCOPE_ALL_DBS | SG_SCOPE_METRICS);
    ck_assert(sg_token_may_db(h, "anything"));
    ck_assert_ptr_null(find(set, hex)); /* the digest itself is no token */

    const sg_token *ops = find(set, TOK_OPS);
    ck_assert_uint_eq(sg_token_scopes(ops), SG_SCOPE_ALL_DBS | SG_SCOPE_ADMIN | SG_SCOPE_METRICS);

    const sg_token *d = find(set, "defaulted-token-abcdef");
    ck_assert(sg_token_may_db(d, "core"));
    ck_assert(!sg_token_may_db(d, "default"));
    ck_assert(!sg_token_may_db(d, "app"));

    const sg_token *none = find(set, "nothing-token-abcdefgh");
    ck_assert_uint_eq(sg_token_scopes(none), 0);
    ck_assert(!sg_token_may_db(none, "core"));

    ck_assert_ptr_null(find(set, TOK_APP "x"));
    ck_assert_ptr_null(find(set, ""));
    sg_tokens_free(set);
}
END_TEST

START_TEST(fingerprints)
{
    sg_tokens *set = parse_ok(TOK_APP " db=app\n");
    char hex[65], fp[SG_TOKEN_FINGERPRINT_LEN + 1];
    hex_of(TOK_APP, strlen(TOK_APP), hex);
    const char *got = sg_token_fingerprint(find(set, TOK_APP));
    ck_assert_uint_eq(strlen(got), SG_TOKEN_FINGERPRINT_LEN);
    ck_assert(strncmp(got, hex, SG_TOKEN_FINGERPRINT_LEN) == 0);
    sg_token_fingerprint_of(TOK_APP, strlen(TOK_APP), fp);
    ck_assert_str_eq(fp, got);
    ck_assert_str_eq(sg_token_fingerprint(sg_token_anonymous()), "anonymous");
    ck_assert_uint_eq(sg_token_scopes(sg_token_anonymous()), SG_SCOPE_EVERY);
    sg_tokens_free(set);
}
END_TEST

START_TEST(add_plain_and_duplicates)
{
    sg_tokens *set = sg_tokens_new();
    sg_err err;
    ck_assert_int_eq(sg_tokens_add(set, TOK_OPS, strlen(TOK_OPS), SG_SCOPE_EVERY, &err), 0);
    ck_assert_int_eq(sg_tokens_add(set, TOK_OPS, strlen(TOK_OPS), SG_SCOPE_EVERY, &err), -1);
    ck_assert_int_eq(err.code, SG_BAD_REQUEST);
    char *errors = NULL;
    const char *text = "x-first-line-token-1 db=*\n" TOK_OPS " db=app\n";
    ck_assert_int_eq(sg_tokens_parse(set, text, strlen(text), "f", NULL, NULL, &errors), -1);
    ck_assert_ptr_nonnull(strstr(errors, "f:2: the same token is given earlier"));
    ck_assert_ptr_null(strstr(errors, TOK_OPS));
    free(errors);
    sg_tokens_free(set);
}
END_TEST

/* Each bad line: the error names file and line, never the token. */
static const struct {
    const char *line;
    const char *want;
} bad_lines[] = {
    {TOK_APP " db=app rw wat", "tokens.txt:2: word 4 is not a scope"},
    {TOK_APP " " TOK_OPS, "tokens.txt:2: word 2 is not a scope"},
    {TOK_APP " db=", "tokens.txt:2: db= is empty"},
    {TOK_APP " db=app db=core", "tokens.txt:2: db= is given twice"},
    {TOK_APP " ro rw", "tokens.txt:2: ro/rw is given twice"},
    {TOK_APP " db=*,app", "tokens.txt:2: db=* cannot be combined"},
    {TOK_APP " db=app,", "tokens.txt:2: db= holds an invalid database name"},
    {TOK_APP " db=Core", "tokens.txt:2: db= holds an invalid database name"},
    {TOK_APP " db=nosuch", "tokens.txt:2: db= names \"nosuch\", which is not a configured"},
    {"sha256:abcd db=*", "tokens.txt:2: sha256: must be followed by exactly 64 hex digits"},
    {"sha256:zz0000000000000000000000000000000000000000000000000000000000000000 db=*",
     "tokens.txt:2: sha256: must be followed by exactly 64 hex digits"},
    {TOK_APP "\x01x db=*", "tokens.txt:2: the token contains a control or non-ASCII"},
    {TOK_APP "\xc3\xa9 db=*", "tokens.txt:2: the token contains a control or non-ASCII"},
    {"db=app rw", "tokens.txt:2: the line starts with a scope word"},
    {"short-tok-15chr db=app", "tokens.txt:2: the token is shorter than 16 characters"},
    {"  rw db=app", "tokens.txt:2: the line starts with a scope word"},
};

START_TEST(file_bad_line)
{
    char text[512];
    snprintf(text, sizeof text, "# first line is fine\n%s\nok-token-after-the-bad-1 db=app\n",
             bad_lines[_i].line);
    char *errors = parse_bad(text);
    ck_assert_msg(strncmp(errors, bad_lines[_i].want, strlen(bad_lines[_i].want)) == 0,
                  "line %s: got %s", bad_lines[_i].line, errors);
    ck_assert_msg(strstr(errors, TOK_APP) == NULL && strstr(errors, TOK_OPS) == NULL,
                  "a token leaked: %s", errors);
    /* One problem, one line: the good line after it adds nothing. */
    ck_assert_str_eq(strchr(errors, '\n'), "\n");
    free(errors);
}
END_TEST

START_TEST(file_many_errors_capped)
{
    size_t n = 80;
    char *text = malloc(n * 32);
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(text + o, n * 32 - o, "tok-%03zu-long-enough bad\n", i);
    sg_tokens *set = sg_tokens_new();
    char *errors = NULL;
    ck_assert_int_eq(sg_tokens_parse(set, text, o, "t", NULL, NULL, &errors), -1);
    size_t lines = 0;
    for (const char *p = errors; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    ck_assert_uint_eq(lines, 51);
    ck_assert_ptr_nonnull(strstr(errors, "(30 more problems not shown)"));
    free(errors);
    free(text);
    sg_tokens_free(set);
}
END_TEST

START_TEST(file_crlf_bom_and_empty)
{
    sg_tokens *set = parse_ok("\xEF\xBB\xBF" TOK_APP " db=app rw\r\n# c\r\n\r\n");
    ck_assert_uint_eq(sg_tokens_count(set), 1);
    ck_assert_uint_eq(sg_token_scopes(find(set, TOK_APP)), SG_SCOPE_RW);
    sg_tokens_free(set);
    set = parse_ok("");
    ck_assert_uint_eq(sg_tokens_count(set), 0);
    ck_assert_ptr_null(find(set, "x"));
    sg_tokens_free(set);
}
END_TEST

static Suite *tokens_suite(void)
{
    Suite *s = suite_create("tokens");
    TCase *tc = tcase_create("sha256");
    tcase_add_test(tc, sha_fips_examples);
    tcase_add_test(tc, sha_million_a_in_pieces);
    tcase_add_test(tc, sha_lengths_around_padding);
    suite_add_tcase(s, tc);
    tc = tcase_create("tokens");
    tcase_add_test(tc, file_scopes);
    tcase_add_test(tc, fingerprints);
    tcase_add_test(tc, add_plain_and_duplicates);
    tcase_add_loop_test(tc, file_bad_line, 0, (int)(sizeof bad_lines / sizeof bad_lines[0]));
    tcase_add_test(tc, file_many_errors_capped);
    tcase_add_test(tc, file_crlf_bom_and_empty);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(tokens_suite());
}
