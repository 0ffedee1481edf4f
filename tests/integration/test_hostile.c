/* Integration: bad input and hostile clients (the catalogue).
 *
 * One sqlgate (embedded "core" and "app", a bearer token, the default 1 MB
 * body limit) serves the whole suite; an unchecked fixture starts it in the
 * runner process. The tests send:
 *   - every malformed request docs/errors.md names (BAD_REQUEST, UNAUTHORIZED,
 *     UNKNOWN_DATABASE, NOT_FOUND, METHOD_NOT_ALLOWED, PAYLOAD_TOO_LARGE,
 *     UNSUPPORTED_MEDIA_TYPE), deeply nested JSON (100000 levels), NUL bytes
 *     and invalid UTF-8 in sql, parameters, names and other members: each
 *     must get its documented error body;
 *   - transport abuse on raw sockets (garbage, a TLS hello, bad request
 *     lines, header and URL floods, bad lengths and chunking): each must get
 *     a 4xx (or 505) answer or a closed connection, or, for the few that are
 *     a valid prefix of a request, nothing yet;
 *   - a client that never finishes its body and one that never finishes its
 *     headers, and 300 idle connections: others are served meanwhile;
 * and after each group a normal query still works. Last, a few thousand bad
 * requests must leave the service's file descriptors and resident memory
 * where they were (within a small slack for fds and SQLGATE_RSS_SLACK_MB,
 * default 8, for memory: memory tools raise it, they report leaks
 * themselves). Under valgrind (SQLGATE_UNDER_VALGRIND) that run is shorter.
 */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "harness.h"

#define TOKEN  "hostile-token-7Qx"
#define AUTH   "Authorization: Bearer " TOKEN
#define JSON   "Content-Type: application/json"
#define CORE_Q "/v1/databases/core/query"

#define DEEP_LEVELS   100000
#define BIG_BODY      (2u * 1024u * 1024u) /* over the default 1 MB limit */
#define IDLE_CONNS    300
#define FD_SLACK      4
#define RAW_REPLY     8192
#define LEAK_REQUESTS 3000

static void setup_service(void)
{
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", "SQLGATE_API_TOKENS=" TOKEN,
                                      NULL};
    fixture_start_unchecked(env, true);
}

/* --- The HTTP catalogue ------------------------------------------------------- */

/* Bodies too big to write out. */
typedef enum gen_body {
    GEN_NONE,
    GEN_DEEP_ARRAYS,  /* [[[[... 100000 levels, never closed */
    GEN_DEEP_IN_KEY,  /* {"sql":"SELECT 1","x":[[...]]} closed, 100000 levels */
    GEN_DEEP_OBJECTS, /* {"a":{"a":... 100000 levels */
    GEN_BIG,          /* a valid query padded to BIG_BODY bytes */
} gen_body;

typedef struct bad_req {
    const char *what;
    const char *method;
    const char *path;
    const char *hdr[4]; /* NULL-terminated */
    const char *body;   /* NULL: none, unless gen says */
    size_t len;         /* 0: strlen(body) */
    gen_body gen;
    bool chunked;
    long status;
    const char *code;
} bad_req;

#define Q(path, body)         "POST", path, {AUTH, JSON, NULL}, body, 0, GEN_NONE, false
#define QN(path, body, n)     "POST", path, {AUTH, JSON, NULL}, body, n, GEN_NONE, false
#define QG(path, gen)         "POST", path, {AUTH, JSON, NULL}, NULL, 0, gen, false
#define BAD                   400, "BAD_REQUEST"
#define RAW_NUL_OUTSIDE       "{\"sql\":\"SELECT 1\"}\0garbage"
#define RAW_NUL_IN_SQL        "{\"sql\":\"SELECT 1\0; DELETE FROM users\"}"
#define RAW_NUL_IN_PARAM      "{\"sql\":\"SELECT @a\",\"params\":{\"a\":\"x\0y\"}}"
#define RAW_NUL_IN_PARAM_NAME "{\"sql\":\"SELECT 1\",\"params\":{\"a\0b\":1}}"

static const bad_req CATALOGUE[] = {
    /* BAD_REQUEST: malformed JSON, wrong types, missing sql, unsupported values */
    {"malformed JSON", Q(CORE_Q, "{"), BAD},
    {"empty body", Q(CORE_Q, ""), BAD},
    {"trailing garbage", Q(CORE_Q, "{\"sql\":\"SELECT 1\"} x"), BAD},
    {"two documents", Q(CORE_Q, "{\"sql\":\"SELECT 1\"}{\"sql\":\"SELECT 2\"}"), BAD},
    {"array body", Q(CORE_Q, "[]"), BAD},
    {"string body", Q(CORE_Q, "\"SELECT 1\""), BAD},
    {"null body", Q(CORE_Q, "null"), BAD},
    {"missing sql", Q(CORE_Q, "{}"), BAD},
    {"empty sql", Q(CORE_Q, "{\"sql\":\"\"}"), BAD},
    {"sql number", Q(CORE_Q, "{\"sql\":1}"), BAD},
    {"sql array", Q(CORE_Q, "{\"sql\":[\"SELECT 1\"]}"), BAD},
    {"duplicate sql key", Q(CORE_Q, "{\"sql\":\"SELECT 1\",\"sql\":\"SELECT 2\"}"), BAD},
    {"params array", Q(CORE_Q, "{\"sql\":\"SELECT 1\",\"params\":[1]}"), BAD},
    {"param object", Q(CORE_Q, "{\"sql\":\"SELECT @a\",\"params\":{\"a\":{\"x\":1}}}"), BAD},
    {"param array", Q(CORE_Q, "{\"sql\":\"SELECT @a\",\"params\":{\"a\":[1]}}"), BAD},
    {"param name digit", Q(CORE_Q, "{\"sql\":\"SELECT 1\",\"params\":{\"1a\":1}}"), BAD},
    {"param name with @", Q(CORE_Q, "{\"sql\":\"SELECT 1\",\"params\":{\"@a\":1}}"), BAD},
    {"max_rows 0", Q(CORE_Q, "{\"sql\":\"SELECT 1\",\"max_rows\":0}"), BAD},
    {"max_rows string", Q(CORE_Q, "{\"sql\":\"SELECT 1\",\"max_rows\":\"10\"}"), BAD},
    {"max_rows huge", Q(CORE_Q, "{\"sql\":\"SELECT 1\",\"max_rows\":1e999}"), BAD},
    {"timeout_ms negative", Q(CORE_Q, "{\"sql\":\"SELECT 1\",\"timeout_ms\":-5}"), BAD},
    {"rows_as unknown", Q(CORE_Q, "{\"sql\":\"SELECT 1\",\"rows_as\":\"rows\"}"), BAD},
    {"operation number", Q(CORE_Q, "{\"sql\":\"SELECT 1\",\"operation\":5}"), BAD},
    {"database number", Q("/v1/query", "{\"sql\":\"SELECT 1\",\"database\":5}"), BAD},
    {"UTF-8 BOM before the body", Q(CORE_Q, "\xEF\xBB\xBF{\"sql\":\"SELECT 1\"}"), BAD},
    {"UTF-16 body", QN(CORE_Q, "\xFF\xFE{\0}\0", 6), BAD},

    /* Deeply nested JSON */
    {"100000 open arrays", QG(CORE_Q, GEN_DEEP_ARRAYS), BAD},
    {"100000 nested arrays in a member", QG(CORE_Q, GEN_DEEP_IN_KEY), BAD},
    {"100000 nested objects", QG(CORE_Q, GEN_DEEP_OBJECTS), BAD},

    /* NUL bytes */
    {"raw NUL after the body", QN(CORE_Q, RAW_NUL_OUTSIDE, sizeof RAW_NUL_OUTSIDE - 1), BAD},
    {"raw NUL in sql", QN(CORE_Q, RAW_NUL_IN_SQL, sizeof RAW_NUL_IN_SQL - 1), BAD},
    {"raw NUL in a parameter", QN(CORE_Q, RAW_NUL_IN_PARAM, sizeof RAW_NUL_IN_PARAM - 1), BAD},
    {"raw NUL in a parameter name",
     QN(CORE_Q, RAW_NUL_IN_PARAM_NAME, sizeof RAW_NUL_IN_PARAM_NAME - 1), BAD},
    {"escaped NUL in sql", Q(CORE_Q, "{\"sql\":\"SELECT 1\\u0000; DELETE FROM users\"}"), BAD},
    {"escaped NUL in a parameter",
     Q(CORE_Q, "{\"sql\":\"SELECT @a\",\"params\":{\"a\":\"\\u0000\"}}"), BAD},
    {"escaped NUL in a parameter name",
     Q(CORE_Q, "{\"sql\":\"SELECT 1\",\"params\":{\"a\\u0000\":1}}"), BAD},
    {"escaped NUL in database", Q("/v1/query", "{\"sql\":\"SELECT 1\",\"database\":\"co\\u0000\"}"),
     BAD},
    {"control byte in sql", Q(CORE_Q, "{\"sql\":\"SELECT 1\x01\"}"), BAD},

    /* Invalid UTF-8 */
    {"invalid UTF-8 in sql", Q(CORE_Q, "{\"sql\":\"SELECT '\xff'\"}"), BAD},
    {"truncated sequence in sql", Q(CORE_Q, "{\"sql\":\"SELECT '\xe2\x82'\"}"), BAD},
    {"overlong encoding in sql", Q(CORE_Q, "{\"sql\":\"SELECT '\xc0\xaf'\"}"), BAD},
    {"five-byte sequence in sql", Q(CORE_Q, "{\"sql\":\"SELECT '\xf8\x88\x80\x80\x80'\"}"), BAD},
    {"encoded surrogate in sql", Q(CORE_Q, "{\"sql\":\"SELECT '\xed\xa0\x80'\"}"), BAD},
    {"escaped lone surrogate in sql", Q(CORE_Q, "{\"sql\":\"SELECT '\\ud800'\"}"), BAD},
    {"invalid UTF-8 in a parameter",
     Q(CORE_Q, "{\"sql\":\"SELECT @a\",\"params\":{\"a\":\"\xc3\x28\"}}"), BAD},
    {"escaped lone surrogate in a parameter",
     Q(CORE_Q, "{\"sql\":\"SELECT @a\",\"params\":{\"a\":\"\\udc00\"}}"), BAD},
    {"invalid UTF-8 in a parameter name",
     Q(CORE_Q, "{\"sql\":\"SELECT 1\",\"params\":{\"\xff\":1}}"), BAD},
    {"invalid UTF-8 in operation", Q(CORE_Q, "{\"sql\":\"SELECT 1\",\"operation\":\"\xc3\x28\"}"),
     BAD},
    {"invalid UTF-8 in database", Q("/v1/query", "{\"sql\":\"SELECT 1\",\"database\":\"\xff\"}"),
     BAD},
    {"invalid UTF-8 in an ignored member", Q(CORE_Q, "{\"sql\":\"SELECT 1\",\"x\":\"\xfe\"}"), BAD},

    /* UNAUTHORIZED */
    {"no token",
     "POST",
     CORE_Q,
     {JSON, NULL},
     "{\"sql\":\"SELECT 1\"}",
     0,
     GEN_NONE,
     false,
     401,
     "UNAUTHORIZED"},
    {"wrong token",
     "POST",
     CORE_Q,
     {"Authorization: Bearer nope", JSON, NULL},
     "{\"sql\":\"SELECT 1\"}",
     0,
     GEN_NONE,
     false,
     401,
     "UNAUTHORIZED"},
    {"token with a suffix",
     "POST",
     CORE_Q,
     {AUTH "x", JSON, NULL},
     "{\"sql\":\"SELECT 1\"}",
     0,
     GEN_NONE,
     false,
     401,
     "UNAUTHORIZED"},
    {"empty bearer",
     "POST",
     CORE_Q,
     {"Authorization: Bearer ", JSON, NULL},
     "{\"sql\":\"SELECT 1\"}",
     0,
     GEN_NONE,
     false,
     401,
     "UNAUTHORIZED"},
    {"basic scheme",
     "POST",
     CORE_Q,
     {"Authorization: Basic aG9zdGlsZTp4", JSON, NULL},
     "{\"sql\":\"SELECT 1\"}",
     0,
     GEN_NONE,
     false,
     401,
     "UNAUTHORIZED"},
    {"token on the databases list",
     "GET",
     "/v1/databases",
     {"Authorization: Bearer x", NULL},
     NULL,
     0,
     GEN_NONE,
     false,
     401,
     "UNAUTHORIZED"},

    /* UNKNOWN_DATABASE */
    {"unknown database in the path", Q("/v1/databases/nope/query", "{\"sql\":\"SELECT 1\"}"), 404,
     "UNKNOWN_DATABASE"},
    {"unknown database in the body", Q("/v1/query", "{\"sql\":\"SELECT 1\",\"database\":\"nope\"}"),
     404, "UNKNOWN_DATABASE"},
    {"database name not ASCII",
     Q("/v1/query", "{\"sql\":\"SELECT 1\",\"database\":\"C\xc3\xb6re\"}"), 404,
     "UNKNOWN_DATABASE"},
    {"invalid UTF-8 database in the path", Q("/v1/databases/%ff/query", "{\"sql\":\"SELECT 1\"}"),
     404, "UNKNOWN_DATABASE"},
    {"unknown database health",
     "GET",
     "/health/nope",
     {NULL},
     NULL,
     0,
     GEN_NONE,
     false,
     404,
     "UNKNOWN_DATABASE"},

    /* NOT_FOUND */
    {"no such route", "GET", "/nope", {AUTH, NULL}, NULL, 0, GEN_NONE, false, 404, "NOT_FOUND"},
    {"route with a tail", Q(CORE_Q "/extra", "{\"sql\":\"SELECT 1\"}"), 404, "NOT_FOUND"},
    {"doubled slashes", Q("//v1//query", "{\"sql\":\"SELECT 1\"}"), 404, "NOT_FOUND"},

    /* METHOD_NOT_ALLOWED */
    {"GET on a query route",
     "GET",
     "/v1/query",
     {AUTH, NULL},
     NULL,
     0,
     GEN_NONE,
     false,
     405,
     "METHOD_NOT_ALLOWED"},
    {"DELETE on a query route",
     "DELETE",
     CORE_Q,
     {AUTH, NULL},
     NULL,
     0,
     GEN_NONE,
     false,
     405,
     "METHOD_NOT_ALLOWED"},
    {"PUT on health",
     "PUT",
     "/health",
     {NULL},
     "{}",
     0,
     GEN_NONE,
     false,
     405,
     "METHOD_NOT_ALLOWED"},

    /* PAYLOAD_TOO_LARGE */
    {"2 MB body", QG(CORE_Q, GEN_BIG), 413, "PAYLOAD_TOO_LARGE"},
    {"2 MB chunked body",
     "POST",
     CORE_Q,
     {AUTH, JSON, NULL},
     NULL,
     0,
     GEN_BIG,
     true,
     413,
     "PAYLOAD_TOO_LARGE"},

    /* UNSUPPORTED_MEDIA_TYPE */
    {"text/plain",
     "POST",
     CORE_Q,
     {AUTH, "Content-Type: text/plain", NULL},
     "{\"sql\":\"SELECT 1\"}",
     0,
     GEN_NONE,
     false,
     415,
     "UNSUPPORTED_MEDIA_TYPE"},
    {"no content type",
     "POST",
     CORE_Q,
     {AUTH, "Content-Type:", NULL},
     "{\"sql\":\"SELECT 1\"}",
     0,
     GEN_NONE,
     false,
     415,
     "UNSUPPORTED_MEDIA_TYPE"},
    {"application/jsonx",
     "POST",
     CORE_Q,
     {AUTH, "Content-Type: application/jsonx", NULL},
     "{\"sql\":\"SELECT 1\"}",
     0,
     GEN_NONE,
     false,
     415,
     "UNSUPPORTED_MEDIA_TYPE"},
    {"form",
     "POST",
     CORE_Q,
     {AUTH, "Content-Type: application/x-www-form-urlencoded", NULL},
     "sql=SELECT+1",
     0,
     GEN_NONE,
     false,
     415,
     "UNSUPPORTED_MEDIA_TYPE"},
};

#define N_CATALOGUE ((int)(sizeof CATALOGUE / sizeof CATALOGUE[0]))

/* The body of e as a new buffer (length in *len); NULL when e has none. */
static char *make_body(const bad_req *e, size_t *len)
{
    static const char key_head[] = "{\"sql\":\"SELECT 1\",\"x\":";
    static const char obj_level[] = "{\"a\":";
    char *b = NULL;
    size_t n = 0;
    switch (e->gen) {
    case GEN_NONE:
        if (e->body == NULL) {
            *len = 0;
            return NULL;
        }
        n = e->len != 0 ? e->len : strlen(e->body);
        b = malloc(n + 1);
        ck_assert_ptr_nonnull(b);
        memcpy(b, e->body, n);
        break;
    case GEN_DEEP_ARRAYS:
        n = DEEP_LEVELS;
        b = malloc(n + 1);
        ck_assert_ptr_nonnull(b);
        memset(b, '[', n);
        break;
    case GEN_DEEP_IN_KEY:
        n = sizeof key_head - 1 + 2 * (size_t)DEEP_LEVELS + 1;
        b = malloc(n + 1);
        ck_assert_ptr_nonnull(b);
        memcpy(b, key_head, sizeof key_head - 1);
        memset(b + sizeof key_head - 1, '[', DEEP_LEVELS);
        memset(b + sizeof key_head - 1 + DEEP_LEVELS, ']', DEEP_LEVELS);
        b[n - 1] = '}';
        break;
    case GEN_DEEP_OBJECTS:
        n = (sizeof obj_level - 1) * DEEP_LEVELS + 1 + DEEP_LEVELS;
        b = malloc(n + 1);
        ck_assert_ptr_nonnull(b);
        for (size_t i = 0; i < DEEP_LEVELS; i++) {
            memcpy(b + i * (sizeof obj_level - 1), obj_level, sizeof obj_level - 1);
        }
        b[(sizeof obj_level - 1) * DEEP_LEVELS] = '1';
        memset(b + (sizeof obj_level - 1) * DEEP_LEVELS + 1, '}', DEEP_LEVELS);
        break;
    case GEN_BIG: {
        static const char head[] = "{\"sql\":\"SELECT 1\"";
        n = BIG_BODY;
        b = malloc(n + 1);
        ck_assert_ptr_nonnull(b);
        memset(b, ' ', n);
        memcpy(b, head, sizeof head - 1);
        b[n - 1] = '}';
        break;
    }
    }
    b[n] = '\0';
    *len = n;
    return b;
}

/* Sends e (on handle h when not NULL, else a new connection) into *r. */
static void send_bad(const bad_req *e, CURL *h, http_resp *r)
{
    char url[512];
    proc_url(fixture_service(), e->path, url, sizeof url);
    size_t len;
    char *body = make_body(e, &len);
    http_req rq = {.method = e->method,
                   .url = url,
                   .headers = e->hdr,
                   .body = body,
                   .body_len = len,
                   .chunked = e->chunked,
                   .handle = h};
    http_do(&rq, r);
    free(body);
}

static bool error_ok(const bad_req *e, const http_resp *r, char *why, size_t cap)
{
    if (!check_error_resp(r, e->status, e->code, why, cap)) {
        return false;
    }
    const char *allow = http_header_get(r, "Allow");
    const char *auth = http_header_get(r, "WWW-Authenticate");
    if (e->status == 405 && (allow == NULL || allow[0] == '\0')) {
        snprintf(why, cap, "405 without an Allow header");
        return false;
    }
    if (e->status == 401 && (auth == NULL || strncasecmp(auth, "Bearer", 6) != 0)) {
        snprintf(why, cap, "401 without WWW-Authenticate: Bearer");
        return false;
    }
    return true;
}

static void assert_serving(void)
{
    http_resp r;
    http_get(fixture_service(), "/health/live", &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
    static const char *const hdr[] = {AUTH, JSON, NULL};
    static const char q[] = "{\"sql\":\"SELECT count(*) AS n FROM users\"}";
    http_send(fixture_service(), "POST", CORE_Q, hdr, q, sizeof q - 1, &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.n", -1), 3);
    http_resp_free(&r);
}

START_TEST(catalogue)
{
    const bad_req *e = &CATALOGUE[_i];
    http_resp r;
    send_bad(e, NULL, &r);
    char why[1024];
    ck_assert_msg(error_ok(e, &r, why, sizeof why), "%s (%s %s): %s", e->what, e->method, e->path,
                  why);
    http_resp_free(&r);
    assert_serving();
}
END_TEST

/* --- Transport abuse on raw sockets --------------------------------------------- */

typedef enum outcome {
    OUT_ANSWERED = 1, /* an HTTP status line came back */
    OUT_CLOSED = 2,   /* closed or reset without an answer */
    OUT_PENDING = 4,  /* nothing yet: the bytes are the start of a valid request */
} outcome;

typedef struct raw_case {
    const char *what;
    const char *data; /* NULL: generated (see raw_data) */
    size_t len;       /* 0: strlen(data) */
    int gen;
    unsigned allowed; /* outcome bits */
} raw_case;

enum { RAW_GEN_NONE, RAW_GEN_BINARY, RAW_GEN_HUGE_URL, RAW_GEN_HUGE_HEADER, RAW_GEN_MANY_HEADERS };

#define R_REQ(x) x " HTTP/1.1\r\nHost: h\r\n"
#define R_POST   R_REQ("POST " CORE_Q) AUTH "\r\n" JSON "\r\n"
#define TLS_HELLO                                                                                  \
    "\x16\x03\x01\x00\x2e\x01\x00\x00\x2a\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"

static const raw_case RAW[] = {
    {"garbage line", "hello\r\n\r\n", 0, RAW_GEN_NONE, OUT_ANSWERED | OUT_CLOSED},
    {"binary garbage", NULL, 0, RAW_GEN_BINARY, OUT_ANSWERED | OUT_CLOSED},
    {"TLS hello on plain HTTP", TLS_HELLO, sizeof TLS_HELLO - 1, RAW_GEN_NONE,
     OUT_ANSWERED | OUT_CLOSED | OUT_PENDING},
    {"request line without a version", "GET /health/live\r\n\r\n", 0, RAW_GEN_NONE,
     OUT_ANSWERED | OUT_CLOSED},
    {"HTTP/9.9", "GET /health/live HTTP/9.9\r\nHost: h\r\n\r\n", 0, RAW_GEN_NONE,
     OUT_ANSWERED | OUT_CLOSED},
    {"control byte in the method", "G\x01T /health/live HTTP/1.1\r\nHost: h\r\n\r\n", 0,
     RAW_GEN_NONE, OUT_ANSWERED | OUT_CLOSED},
    {"header without a colon", R_REQ("GET /health/live") "Broken\r\n\r\n", 0, RAW_GEN_NONE,
     OUT_ANSWERED | OUT_CLOSED},
    {"Content-Length not a number", R_POST "Content-Length: abc\r\n\r\n{}", 0, RAW_GEN_NONE,
     OUT_ANSWERED | OUT_CLOSED},
    {"negative Content-Length", R_POST "Content-Length: -1\r\n\r\n{}", 0, RAW_GEN_NONE,
     OUT_ANSWERED | OUT_CLOSED},
    {"Content-Length overflow", R_POST "Content-Length: 99999999999999999999999\r\n\r\n{}", 0,
     RAW_GEN_NONE, OUT_ANSWERED | OUT_CLOSED},
    {"bad chunk size", R_POST "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 0,
     RAW_GEN_NONE, OUT_ANSWERED | OUT_CLOSED},
    {"chunk size overflow",
     R_POST "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffffffff\r\n{}\r\n0\r\n\r\n", 0,
     RAW_GEN_NONE, OUT_ANSWERED | OUT_CLOSED},
    {"unknown transfer coding", R_POST "Transfer-Encoding: gzip\r\n\r\n{}", 0, RAW_GEN_NONE,
     OUT_ANSWERED | OUT_CLOSED | OUT_PENDING},
    {"100 KB URL", NULL, 0, RAW_GEN_HUGE_URL, OUT_ANSWERED | OUT_CLOSED},
    {"100 KB header", NULL, 0, RAW_GEN_HUGE_HEADER, OUT_ANSWERED | OUT_CLOSED},
    {"10000 headers", NULL, 0, RAW_GEN_MANY_HEADERS, OUT_ANSWERED | OUT_CLOSED},
};

#define N_RAW ((int)(sizeof RAW / sizeof RAW[0]))

static char *raw_data(const raw_case *c, size_t *len)
{
    char *b;
    size_t n = 0;
    switch (c->gen) {
    case RAW_GEN_BINARY:
        n = 4096 + 4;
        b = malloc(n + 1);
        ck_assert_ptr_nonnull(b);
        for (size_t i = 0; i < 4096; i++) {
            b[i] = (char)(i * 7 + 1);
        }
        memcpy(b + 4096, "\r\n\r\n", 4);
        break;
    case RAW_GEN_HUGE_URL:
    case RAW_GEN_HUGE_HEADER: {
        static const char url_head[] = "GET /";
        static const char url_tail[] = " HTTP/1.1\r\nHost: h\r\n\r\n";
        static const char hdr_head[] = "GET /health/live HTTP/1.1\r\nHost: h\r\nX-Big: ";
        static const char hdr_tail[] = "\r\n\r\n";
        bool url = c->gen == RAW_GEN_HUGE_URL;
        const char *head = url ? url_head : hdr_head;
        const char *tail = url ? url_tail : hdr_tail;
        size_t fill = 100 * 1024;
        n = strlen(head) + fill + strlen(tail);
        b = malloc(n + 1);
        ck_assert_ptr_nonnull(b);
        memcpy(b, head, strlen(head));
        memset(b + strlen(head), 'a', fill);
        memcpy(b + strlen(head) + fill, tail, strlen(tail));
        break;
    }
    case RAW_GEN_MANY_HEADERS: {
        static const char head[] = "GET /health/live HTTP/1.1\r\nHost: h\r\n";
        size_t cap = sizeof head + 10000 * 16 + 8;
        b = malloc(cap);
        ck_assert_ptr_nonnull(b);
        n = sizeof head - 1;
        memcpy(b, head, n);
        for (int i = 0; i < 10000; i++) {
            n += (size_t)snprintf(b + n, cap - n, "X-%d: v\r\n", i);
        }
        memcpy(b + n, "\r\n", 2);
        n += 2;
        break;
    }
    default:
        n = c->len != 0 ? c->len : strlen(c->data);
        b = malloc(n + 1);
        ck_assert_ptr_nonnull(b);
        memcpy(b, c->data, n);
        break;
    }
    b[n] = '\0';
    *len = n;
    return b;
}

static int raw_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)proc_port(fixture_service()))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect: %s",
                  strerror(errno));
    return fd;
}

/* Sends what it can (the server may close early: that is an outcome too). */
static void raw_send(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Case-insensitive strstr (strcasestr is a GNU extension). */
static const char *find_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; *p != '\0'; p++) {
        if (strncasecmp(p, needle, n) == 0) {
            return p;
        }
    }
    return NULL;
}

/* Reads until a whole answer (head and Content-Length body), a close, or
 * timeout_ms of silence. Returns the outcome; *status gets the status code. */
static outcome raw_read(int fd, int timeout_ms, long *status)
{
    char buf[RAW_REPLY];
    size_t len = 0;
    *status = 0;
    int64_t deadline = now_ms() + scaled_ms(timeout_ms);
    for (;;) {
        const char *end = len > 0 ? strstr(buf, "\r\n\r\n") : NULL;
        if (end != NULL) {
            sscanf(buf, "HTTP/1.%*d %ld", status);
            const char *cl = find_ci(buf, "\r\nContent-Length:");
            size_t want = cl != NULL && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
            if (*status > 0 && len - (size_t)(end + 4 - buf) >= want) {
                return OUT_ANSWERED;
            }
        }
        int left = (int)(deadline - now_ms());
        if (left <= 0) {
            return *status > 0 ? OUT_ANSWERED : OUT_PENDING;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, left);
        if (pr < 0 && errno == EINTR) {
            continue;
        }
        if (pr == 0) {
            continue;
        }
        ssize_t r = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (r <= 0 || len + (size_t)r >= sizeof buf - 1) {
            if (r > 0) {
                len += (size_t)r; /* a long answer: its status line is in */
                buf[len] = '\0';
                sscanf(buf, "HTTP/1.%*d %ld", status);
            }
            return *status > 0 ? OUT_ANSWERED : OUT_CLOSED;
        }
        len += (size_t)r;
        buf[len] = '\0';
    }
}

static const char *outcome_name(outcome o)
{
    return o == OUT_ANSWERED ? "an answer" : o == OUT_CLOSED ? "a close" : "nothing";
}

/* One raw case: its outcome must be allowed, an answer a 4xx or 505. */
static void raw_case_run(const raw_case *c, int timeout_ms)
{
    size_t len;
    char *data = raw_data(c, &len);
    int fd = raw_connect();
    raw_send(fd, data, len);
    free(data);
    long status;
    outcome o = raw_read(fd, timeout_ms, &status);
    close(fd);
    ck_assert_msg((c->allowed & o) != 0, "%s: got %s (status %ld)", c->what, outcome_name(o),
                  status);
    if (o == OUT_ANSWERED) {
        ck_assert_msg((status >= 400 && status < 500) || status == 505,
                      "%s: answered with status %ld", c->what, status);
    }
}

START_TEST(transport_abuse)
{
    raw_case_run(&RAW[_i], 3000);
    assert_serving();
}
END_TEST

/* --- Slow and many clients ---------------------------------------------------- */

START_TEST(slow_clients)
{
    /* A body that never ends, and headers that never end. */
    static const char body_head[] = R_POST "Content-Length: 1000\r\n\r\n{\"sql\":\"SE";
    static const char partial_head[] = "POST " CORE_Q " HTTP/1.1\r\nHost: h\r\nX-Slow: ";
    int slow_body = raw_connect();
    int slow_head = raw_connect();
    raw_send(slow_body, body_head, sizeof body_head - 1);
    raw_send(slow_head, partial_head, sizeof partial_head - 1);
    sleep_ms(200);
    for (int i = 0; i < 20; i++) {
        assert_serving();
    }
    /* A second round of bytes that still does not finish either. */
    raw_send(slow_body, "LECT", 4);
    raw_send(slow_head, "more", 4);
    for (int i = 0; i < 5; i++) {
        assert_serving();
    }
    close(slow_body);
    close(slow_head);
    assert_serving();
}
END_TEST

START_TEST(many_connections)
{
    int fds[IDLE_CONNS];
    for (int i = 0; i < IDLE_CONNS; i++) {
        fds[i] = raw_connect();
        if (i % 2 == 1) {
            /* half of them start a request and stall */
            raw_send(fds[i], "GET /health/live HTTP/1.1\r\n", 27);
        }
    }
    sleep_ms(scaled_ms(300));
    static const char *const hdr[] = {AUTH, JSON, NULL};
    static const char q[] = "{\"sql\":\"SELECT 1 AS one\"}";
    for (int i = 0; i < 5; i++) {
        http_resp r;
        http_send(fixture_service(), "POST", CORE_Q, hdr, q, sizeof q - 1, &r);
        if (r.status == 503) {
            ASSERT_ERROR(&r, 503, "OVERLOADED");
        } else {
            ASSERT_STATUS(&r, 200);
            ck_assert_int_eq(jint(r.json, "results.0.rows.0.one", -1), 1);
        }
        http_resp_free(&r);
    }
    for (int i = 0; i < IDLE_CONNS; i++) {
        close(fds[i]);
    }
    assert_serving();
}
END_TEST

/* --- No growth --------------------------------------------------------------- */

static int count_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    ck_assert_msg(d != NULL, "cannot open %s: %s", path, strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n;
}

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    long kb = -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
        }
    }
    fclose(f);
    ck_assert_msg(kb > 0, "no VmRSS in %s", path);
    return kb;
}

/* Waits for the service's descriptors to come down to at most `limit`
 * (connection threads close theirs a moment after the client). */
static int settled_fds(pid_t pid, int limit)
{
    int64_t deadline = now_ms() + scaled_ms(10000);
    int n = count_fds(pid);
    while (n > limit && now_ms() < deadline) {
        sleep_ms(50);
        n = count_fds(pid);
    }
    return n;
}

/* One pass over the catalogue (on a kept-alive handle) and the raw cases
 * that get an answer or a close. Returns the number of requests made. */
static int bad_round(CURL *h)
{
    int n = 0;
    for (int i = 0; i < N_CATALOGUE; i++) {
        http_resp r;
        send_bad(&CATALOGUE[i], h, &r);
        ck_assert_msg(r.status == CATALOGUE[i].status, "%s: status %ld", CATALOGUE[i].what,
                      r.status);
        http_resp_free(&r);
        n++;
    }
    for (int i = 0; i < N_RAW; i++) {
        if ((RAW[i].allowed & OUT_PENDING) == 0) {
            raw_case_run(&RAW[i], 3000);
            n++;
        }
    }
    return n;
}

START_TEST(no_growth)
{
    pid_t pid = proc_pid(fixture_service());
    const char *vg = getenv("SQLGATE_UNDER_VALGRIND");
    const char *slack_env = getenv("SQLGATE_RSS_SLACK_MB");
    long slack_kb = (slack_env != NULL ? strtol(slack_env, NULL, 10) : 8) * 1024;
    int total = vg != NULL && vg[0] == '1' ? LEAK_REQUESTS / 5 : LEAK_REQUESTS;
    CURL *h = curl_easy_init();
    ck_assert_ptr_nonnull(h);

    /* Warm up: pools, allocator arenas, thread stacks reach their steady size. */
    int done = 0;
    for (int i = 0; i < 3; i++) {
        done += bad_round(h);
    }
    assert_serving();
    curl_easy_cleanup(h);
    h = curl_easy_init();
    ck_assert_ptr_nonnull(h);
    sleep_ms(scaled_ms(500));
    int fd0 = count_fds(pid);
    long rss0 = rss_kb(pid);

    int sent = 0;
    while (sent < total) {
        sent += bad_round(h);
    }
    assert_serving();
    curl_easy_cleanup(h);

    int fd1 = settled_fds(pid, fd0 + FD_SLACK);
    long rss1 = rss_kb(pid);
    ck_assert_msg(fd1 <= fd0 + FD_SLACK, "descriptors grew from %d to %d over %d bad requests", fd0,
                  fd1, sent);
    ck_assert_msg(rss1 - rss0 <= slack_kb,
                  "resident memory grew from %ld KB to %ld KB over %d bad requests (slack %ld KB)",
                  rss0, rss1, sent, slack_kb);
    fprintf(stderr, "no_growth: %d + %d bad requests; fds %d -> %d; VmRSS %ld -> %ld KB\n", done,
            sent, fd0, fd1, rss0, rss1);
}
END_TEST

START_TEST(nothing_ran)
{
    /* The NUL-injected DELETEs of the catalogue must not have run, and the
     * log must not show a crash or an internal error. */
    assert_serving();
    char *log = proc_stderr(fixture_service());
    ck_assert_ptr_nonnull(log);
    static const char *const kv[] = {"level", "error", NULL};
    json_t *err = log_find(log, kv);
    ck_assert_msg(err == NULL, "the service logged an error: %s",
                  err != NULL ? json_string_value(json_object_get(err, "msg")) : "");
    json_decref(err);
    free(log);
}
END_TEST

/* ============================================================================= */

static Suite *hostile_suite(void)
{
    Suite *s = suite_create("hostile");
    TCase *tc = tcase_create("hostile");
    tcase_add_unchecked_fixture(tc, setup_service, fixture_teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_loop_test(tc, catalogue, 0, N_CATALOGUE);
    tcase_add_loop_test(tc, transport_abuse, 0, N_RAW);
    tcase_add_test(tc, slow_clients);
    tcase_add_test(tc, many_connections);
    tcase_add_test(tc, no_growth);
    tcase_add_test(tc, nothing_ran);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    harness_init();
    return check_run(hostile_suite());
}
