/* http: see http.h.
 *
 * Per-request state (http_req) is created on the first call of the access
 * handler and freed in one place, on_completed(), which libmicrohttpd calls
 * when the request is over, whether it was answered, streamed or abandoned by
 * the client. A streamed body owns its own state and is freed by the
 * response's free callback (http_reply_stream).
 */
#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "jsonw.h"
#include "log.h"
#include "sqlgate/driver.h"

#define MAX_SEGMENTS         8
#define CONNECTION_LIMIT     (HTTP_MAX_INFLIGHT + 64)
#define CONNECTION_TIMEOUT_S 120
#define THREAD_STACK_BYTES   (256 * 1024)
#define DISCARD_LIMIT        (16u * 1024 * 1024) /* then the connection is dropped */

struct http_server {
    struct MHD_Daemon *daemon;
    const sg_config *cfg; /* borrowed; the start's: address and TLS */
    const http_route *routes;
    size_t n_routes;
    void *app;
    http_observe_fn observe; /* may be NULL */
    int port;
    atomic_bool refusing;
    atomic_uint inflight;
    pthread_mutex_t cfg_mu;   /* guards current */
    const sg_config *current; /* a reference: what requests beginning now see */
};

struct http_req {
    http_server *srv;
    const sg_config *cfg; /* a reference taken when the request began */
    struct MHD_Connection *conn;
    const http_route *route;
    const char *method;
    char id[HTTP_REQUEST_ID_MAX + 1];
    int64_t start_us;

    char *path; /* owned copy, split into segments in place */
    char *segments[MAX_SEGMENTS];
    size_t n_segments;

    jw_buf body; /* owned; capped at SQLGATE_MAX_BODY_BYTES */
    bool body_too_large;
    size_t discarded; /* body bytes dropped after the cap */

    struct MHD_Response *response; /* owned until queued */
    int status;
    bool queued;
    char db[SG_NAME_MAX + 1];
    char *operation; /* owned, or NULL */
};

/* --- Request ids --------------------------------------------------------- */

static bool request_id_acceptable(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > HTTP_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Request ids need to be unique, not secret: a per-thread xorshift64*
 * seeded once from getrandom saves a system call per request. */
static _Thread_local uint64_t id_state;

static void request_id_new(char *out)
{
    static const char hex[] = "0123456789abcdef";
    if (id_state == 0) {
        if (getrandom(&id_state, sizeof id_state, 0) != (ssize_t)sizeof id_state)
            id_state = (uint64_t)sg_clock_us() ^ (uint64_t)(uintptr_t)&id_state;
        id_state |= 1; /* xorshift never leaves 0 */
    }
    id_state ^= id_state >> 12;
    id_state ^= id_state << 25;
    id_state ^= id_state >> 27;
    uint64_t v = id_state * 0x2545F4914F6CDD1DULL;
    for (int i = 15; i >= 0; i--, v >>= 4)
        out[i] = hex[v & 15];
    out[16] = '\0';
}

/* --- Replies --------------------------------------------------------------- */

static void set_response(http_req *req, int status, struct MHD_Response *resp)
{
    if (req->response != NULL)
        MHD_destroy_response(req->response);
    req->response = resp;
    req->status = status;
    if (resp == NULL)
        return;
    MHD_add_response_header(resp, "X-Request-Id", req->id);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
}

void http_reply_bytes(http_req *req, int status, const char *content_type, char *data, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(data);
        set_response(req, 500, NULL);
        return;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    set_response(req, status, resp);
}

void http_reply_static(http_req *req, int status, const char *content_type, const void *data,
                       size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
    if (resp != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    set_response(req, status, resp);
}

void http_reply_json(http_req *req, int status, json_t *body)
{
    char *text =
        body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(body);
    if (text == NULL) {
        sg_err err;
        sg_err_set(&err, SG_INTERNAL, "cannot encode the response");
        http_reply_error(req, &err);
        return;
    }
    http_reply_bytes(req, status, "application/json", text, strlen(text));
}

void http_reply_header(http_req *req, const char *name, const char *value)
{
    if (req->response != NULL)
        MHD_add_response_header(req->response, name, value);
}

void http_reply_error(http_req *req, const sg_err *err)
{
    /* Rendered with jsonw: messages may quote client bytes that are not
     * valid UTF-8, which jsonw replaces rather than fails on. */
    jw_buf b;
    jw_init(&b, 0);
    jw_lit(&b, "{\"error\":{\"code\":");
    jw_cstr(&b, sg_code_name(err->code));
    jw_lit(&b, ",\"message\":");
    jw_cstr(&b, err->message);
    jw_lit(&b, ",\"request_id\":");
    jw_cstr(&b, req->id);
    if (err->has_sql) {
        char sql[160];
        snprintf(sql, sizeof sql,
                 ",\"sql\":{\"number\":%ld,\"severity\":%d,\"state\":%d,\"line\":%d}",
                 err->sql.number, err->sql.severity, err->sql.state, err->sql.line);
        jw_lit(&b, sql);
    }
    jw_lit(&b, "}}");
    int status = sg_code_http_status(err->code);
    if (b.failed) {
        jw_free(&b);
        set_response(req, 500, NULL);
        return;
    }
    size_t len;
    char *text = jw_steal(&b, &len);
    http_reply_bytes(req, status, "application/json", text, len);
    if (status == 503)
        http_reply_header(req, MHD_HTTP_HEADER_RETRY_AFTER,
                          err->code == SG_DB_UNAVAILABLE ? "5" : "1");
    if (err->code == SG_SHUTTING_DOWN)
        http_reply_header(req, MHD_HTTP_HEADER_CONNECTION, "close");
    if (err->code == SG_UNAUTHORIZED)
        http_reply_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
}

struct stream {
    http_stream_fill_fn fill;
    http_stream_done_fn done;
    void *cls;
};

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *s = cls;
    ssize_t n = s->fill(s->cls, buf, max);
    if (n == HTTP_STREAM_END)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (n < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    return n;
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    s->done(s->cls);
    free(s);
}

void http_reply_stream(http_req *req, int status, const char *content_type,
                       http_stream_fill_fn fill, http_stream_done_fn done, void *cls)
{
    struct stream *s = malloc(sizeof *s);
    struct MHD_Response *resp = NULL;
    if (s != NULL) {
        *s = (struct stream){.fill = fill, .done = done, .cls = cls};
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, stream_reader, s,
                                                 stream_free);
    }
    if (resp == NULL) {
        free(s);
        done(cls);
        sg_err err;
        sg_err_set(&err, SG_INTERNAL, "cannot create a streamed response");
        http_reply_error(req, &err);
        return;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    set_response(req, status, resp);
}

/* --- Request accessors ----------------------------------------------------- */

const char *http_req_param(const http_req *req, const char *name)
{
    if (req->route == NULL)
        return NULL;
    const char *p = req->route->pattern;
    size_t seg = 0;
    while (*p == '/' && seg < req->n_segments) {
        p++;
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 2 && p[0] == '{' && p[len - 1] == '}' && strlen(name) == len - 2 &&
            strncmp(p + 1, name, len - 2) == 0)
            return req->segments[seg];
        seg++;
        p += len;
    }
    return NULL;
}

const char *http_req_body(const http_req *req, size_t *len)
{
    if (len != NULL)
        *len = req->body.len;
    return req->body.data ? req->body.data : "";
}

const char *http_req_header(const http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_req_id(const http_req *req)
{
    return req->id;
}

int64_t http_req_start_us(const http_req *req)
{
    return req->start_us;
}

const char *http_req_method(const http_req *req)
{
    return req->method;
}

void http_req_set_db(http_req *req, const char *name)
{
    size_t len = strnlen(name, sizeof req->db - 1);
    memcpy(req->db, name, len);
    req->db[len] = '\0';
}

void http_req_set_operation(http_req *req, const char *operation)
{
    free(req->operation);
    req->operation = operation ? strdup(operation) : NULL;
}

/* --- Routing --------------------------------------------------------------- */

/* Does pattern match the request's segments? */
static bool pattern_matches(const char *pattern, char *const *segments, size_t n)
{
    const char *p = pattern;
    size_t seg = 0;
    if (strcmp(pattern, "/") == 0)
        return n == 0;
    while (*p == '/') {
        p++;
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (seg >= n)
            return false;
        bool param = len > 2 && p[0] == '{' && p[len - 1] == '}';
        if (param ? segments[seg][0] == '\0'
                  : (strlen(segments[seg]) != len || strncmp(segments[seg], p, len) != 0))
            return false;
        seg++;
        p += len;
    }
    return seg == n;
}

static bool method_matches(const char *route_method, const char *method)
{
    return strcmp(route_method, method) == 0 ||
           (strcmp(route_method, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

/* Finds the route; on a path match with the wrong method fills allow. */
static const http_route *route_find(const http_server *srv, http_req *req, char *allow,
                                    size_t allow_len)
{
    allow[0] = '\0';
    for (size_t i = 0; i < srv->n_routes; i++) {
        const http_route *r = &srv->routes[i];
        if (!pattern_matches(r->pattern, req->segments, req->n_segments))
            continue;
        if (method_matches(r->method, req->method))
            return r;
        size_t used = strlen(allow);
        if (strstr(allow, r->method) != NULL)
            continue;
        snprintf(allow + used, allow_len - used, "%s%s%s", used ? ", " : "", r->method,
                 strcmp(r->method, "GET") == 0 ? ", HEAD" : "");
    }
    return NULL;
}

/* Splits the path into segments (in the owned copy). False if too deep. */
static bool split_path(http_req *req)
{
    char *p = req->path;
    if (*p != '/')
        return false;
    if (p[1] == '\0')
        return true;
    while (*p == '/') {
        *p++ = '\0';
        if (req->n_segments == MAX_SEGMENTS)
            return false;
        req->segments[req->n_segments++] = p;
        while (*p != '\0' && *p != '/')
            p++;
    }
    return true;
}

/* --- Authentication -------------------------------------------------------- */

/* Constant time in the length of the longer input: no early exit on the first
 * differing byte, so response timing does not reveal a token prefix. */
static bool token_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen > blen ? alen : blen;
    unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < alen ? (unsigned char)a[i] : 0;
        unsigned char y = i < blen ? (unsigned char)b[i] : 0;
        diff |= x ^ y;
    }
    return diff == 0;
}

static bool authorized(const http_server *srv, const http_req *req)
{
    const sg_config *cfg = req->cfg;
    if (cfg->n_api_tokens == 0)
        return true;
    const char *h = http_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    size_t len = strlen(tok);
    bool ok = false;
    for (size_t i = 0; i < cfg->n_api_tokens; i++)
        ok |= token_equal(tok, len, cfg->api_tokens[i], strlen(cfg->api_tokens[i]));
    return ok;
}

/* --- Body ------------------------------------------------------------------ */

static bool content_type_is_json(const char *ct)
{
    if (ct == NULL)
        return false;
    while (*ct == ' ')
        ct++;
    static const char want[] = "application/json";
    if (strncasecmp(ct, want, sizeof want - 1) != 0)
        return false;
    char next = ct[sizeof want - 1];
    return next == '\0' || next == ';' || next == ' ';
}

/* False when the body is over the cap (body_too_large set) or memory ran
 * out (body.failed set). */
static bool body_append(http_req *req, const char *data, size_t len)
{
    if (req->body_too_large || len > req->cfg->max_body_bytes - req->body.len) {
        req->body_too_large = true;
        return false;
    }
    jw_raw(&req->body, data, len);
    return !req->body.failed;
}

/* --- libmicrohttpd callbacks ----------------------------------------------- */

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void reply_code(http_req *req, sg_code code, const char *message)
{
    sg_err err;
    sg_err_set(&err, code, "%s", message);
    http_reply_error(req, &err);
}

static void reply_too_large(http_req *req)
{
    char msg[96];
    snprintf(msg, sizeof msg, "the body is larger than %zu bytes (SQLGATE_MAX_BODY_BYTES)",
             req->cfg->max_body_bytes);
    reply_code(req, SG_PAYLOAD_TOO_LARGE, msg);
}

/* --- Configuration in force --------------------------------------------------- */

/* A new reference to the snapshot requests beginning now are served with. */
static const sg_config *config_ref_current(http_server *srv)
{
    pthread_mutex_lock(&srv->cfg_mu);
    const sg_config *cfg = sg_config_ref(srv->current);
    pthread_mutex_unlock(&srv->cfg_mu);
    return cfg;
}

void http_set_config(http_server *srv, const sg_config *cfg)
{
    const sg_config *ref = sg_config_ref(cfg);
    pthread_mutex_lock(&srv->cfg_mu);
    const sg_config *old = srv->current;
    srv->current = ref;
    pthread_mutex_unlock(&srv->cfg_mu);
    sg_config_unref(old);
}

const sg_config *http_req_config(const http_req *req)
{
    return req->cfg;
}

static http_req *req_new(http_server *srv, struct MHD_Connection *conn, const char *url,
                         const char *method)
{
    http_req *req = calloc(1, sizeof *req);
    if (req == NULL)
        return NULL;
    req->srv = srv;
    req->cfg = config_ref_current(srv);
    req->conn = conn;
    req->method = method;
    jw_init(&req->body, 0); /* body_append enforces the cap */
    req->start_us = sg_clock_us();
    req->path = strdup(url);
    if (req->path == NULL) {
        sg_config_unref(req->cfg);
        free(req);
        return NULL;
    }
    const char *given = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (given != NULL && request_id_acceptable(given))
        snprintf(req->id, sizeof req->id, "%s", given);
    else
        request_id_new(req->id);
    return req;
}

/* Checks made once the headers are in, before any body is read. Leaves a
 * reply on req when the request is refused. */
static void screen_request(http_server *srv, http_req *req, unsigned inflight)
{
    char allow[128];
    if (atomic_load(&srv->refusing)) {
        reply_code(req, SG_SHUTTING_DOWN, "the service is shutting down");
        return;
    }
    if (inflight > HTTP_MAX_INFLIGHT) {
        reply_code(req, SG_OVERLOADED, "too many requests in flight; retry shortly");
        return;
    }
    if (!split_path(req)) {
        reply_code(req, SG_NOT_FOUND, "no such route");
        return;
    }
    req->route = route_find(srv, req, allow, sizeof allow);
    if (req->route == NULL) {
        if (allow[0] != '\0') {
            char msg[96];
            snprintf(msg, sizeof msg, "method %.16s is not allowed here", req->method);
            reply_code(req, SG_METHOD_NOT_ALLOWED, msg);
            http_reply_header(req, MHD_HTTP_HEADER_ALLOW, allow);
        } else {
            reply_code(req, SG_NOT_FOUND, "no such route");
        }
        return;
    }
    if ((req->route->flags & HTTP_AUTH) && !authorized(srv, req)) {
        reply_code(req, SG_UNAUTHORIZED, "a valid bearer token is required");
        return;
    }
    if (req->route->flags & HTTP_JSON_BODY) {
        if (!content_type_is_json(http_req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE))) {
            reply_code(req, SG_UNSUPPORTED_MEDIA_TYPE, "the body must be application/json");
            return;
        }
        const char *cl = http_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl != NULL && strtoull(cl, NULL, 10) > req->cfg->max_body_bytes)
            reply_too_large(req);
    }
}

static enum MHD_Result queue_reply(http_req *req)
{
    if (req->response == NULL) {
        /* A reply could not be built (out of memory): drop the connection. */
        return MHD_NO;
    }
    req->queued = true;
    enum MHD_Result rc = MHD_queue_response(req->conn, (unsigned)req->status, req->response);
    MHD_destroy_response(req->response);
    req->response = NULL;
    return rc;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    http_server *srv = cls;
    http_req *req = *con_cls;
    if (req == NULL) {
        req = req_new(srv, conn, url, method);
        if (req == NULL)
            return MHD_NO;
        *con_cls = req;
        unsigned inflight = atomic_fetch_add(&srv->inflight, 1) + 1;
        screen_request(srv, req, inflight);
        /* Refused before the body: answer now, without reading it. */
        return req->response != NULL ? queue_reply(req) : MHD_YES;
    }
    if (req->queued) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (req->body_too_large) {
            /* libmicrohttpd cannot answer in the middle of a body: discard the
             * rest (bounded) and answer 413 once it is over. */
            req->discarded += n;
            return req->discarded > DISCARD_LIMIT ? MHD_NO : MHD_YES;
        }
        if (!body_append(req, upload_data, n) && !req->body_too_large)
            return MHD_NO; /* out of memory */
        return MHD_YES;
    }
    if (req->body_too_large) {
        reply_too_large(req);
        http_reply_header(req, MHD_HTTP_HEADER_CONNECTION, "close");
        return queue_reply(req);
    }
    req->route->handler(req, srv->app);
    if (req->response == NULL && req->status == 0) {
        sg_err err;
        sg_err_set(&err, SG_INTERNAL, "the handler gave no answer");
        http_reply_error(req, &err);
    }
    return queue_reply(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server *srv = cls;
    http_req *req = *con_cls;
    if (req == NULL)
        return;
    *con_cls = NULL;
    if (log_enabled(SG_LOG_INFO)) {
        const char *route = req->route ? req->route->pattern : "-";
        log_field f[8] = {
            {.key = "request_id", .kind = LOG_STR, .s = req->id, .len = strlen(req->id)},
            {.key = "method", .kind = LOG_STR, .s = req->method, .len = strlen(req->method)},
            {.key = "route", .kind = LOG_STR, .s = route, .len = strlen(route)},
            {.key = "status", .kind = LOG_INT, .i = req->status},
            {.key = "duration_ms", .kind = LOG_MS, .i = sg_clock_us() - req->start_us},
        };
        size_t n = 5;
        if (req->db[0] != '\0')
            f[n++] =
                (log_field){.key = "db", .kind = LOG_STR, .s = req->db, .len = strlen(req->db)};
        if (req->operation != NULL)
            f[n++] = (log_field){.key = "operation",
                                 .kind = LOG_STR,
                                 .s = req->operation,
                                 .len = strlen(req->operation)};
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
            f[n++] = (log_field){.key = "aborted", .kind = LOG_BOOL, .b = true};
        log_line(SG_LOG_INFO, "request", f, n);
    }
    if (srv->observe != NULL)
        srv->observe(srv->app, req->route, req->status);
    if (req->response != NULL)
        MHD_destroy_response(req->response);
    jw_free(&req->body);
    free(req->operation);
    free(req->path);
    sg_config_unref(req->cfg);
    free(req);
    atomic_fetch_sub(&srv->inflight, 1);
}

/* Decodes %HH in the path and query, except %00: a NUL would cut the path
 * short ("/health%00/live" read as "/health"), so it stays as written and
 * matches no route. */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    char *out = s;
    for (const char *in = s; *in != '\0';) {
        int hi, lo;
        if (in[0] == '%' && (hi = hex_digit(in[1])) >= 0 && (lo = hex_digit(in[2])) >= 0 &&
            (hi | lo) != 0) {
            *out++ = (char)(hi << 4 | lo);
            in += 3;
        } else {
            *out++ = *in++;
        }
    }
    *out = '\0';
    return (size_t)(out - s);
}

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_debug("libmicrohttpd", json_pack("{s:s}", "detail", msg));
}

/* --- Server lifecycle ------------------------------------------------------ */

#define TLS_FILE_MAX (1024 * 1024)

/* Whole file as a NUL-terminated string (new), or NULL. */
static char *read_small_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *data = malloc(TLS_FILE_MAX + 1);
    size_t n = data ? fread(data, 1, TLS_FILE_MAX + 1, f) : 0;
    fclose(f);
    if (data == NULL || n == 0 || n > TLS_FILE_MAX) {
        free(data);
        return NULL;
    }
    data[n] = '\0';
    return data;
}

/* Wipes a key's bytes before freeing them. Accepts NULL. */
static void free_secret(char *s)
{
    if (s == NULL)
        return;
    volatile char *p = s;
    while (*p != '\0')
        *p++ = '\0';
    free(s);
}

/* Frees what http_start set up besides the daemon. */
static void server_free(http_server *srv)
{
    sg_config_unref(srv->current);
    pthread_mutex_destroy(&srv->cfg_mu);
    free(srv);
}

http_server *http_start(const sg_config *cfg, const http_route *routes, size_t n_routes, void *app,
                        http_observe_fn observe, sg_err *err)
{
    http_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        sg_err_set(err, SG_INTERNAL, "out of memory");
        return NULL;
    }
    srv->cfg = cfg;
    pthread_mutex_init(&srv->cfg_mu, NULL);
    srv->current = sg_config_ref(cfg);
    srv->routes = routes;
    srv->n_routes = n_routes;
    srv->app = app;
    srv->observe = observe;
    atomic_init(&srv->refusing, false);
    atomic_init(&srv->inflight, 0);

    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    if (strchr(cfg->listen_host, ':') != NULL) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&addr;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)cfg->listen_port);
        if (inet_pton(AF_INET6, cfg->listen_host, &a6->sin6_addr) != 1) {
            server_free(srv);
            sg_err_set(err, SG_INTERNAL, "SQLGATE_LISTEN: \"%s\" is not an IPv6 address",
                       cfg->listen_host);
            return NULL;
        }
        flags |= MHD_USE_IPv6;
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&addr;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)cfg->listen_port);
        const char *host =
            strcmp(cfg->listen_host, "localhost") == 0 ? "127.0.0.1" : cfg->listen_host;
        if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) {
            server_free(srv);
            sg_err_set(err, SG_INTERNAL, "SQLGATE_LISTEN: \"%s\" is not an IPv4 address",
                       cfg->listen_host);
            return NULL;
        }
    }

    /* HTTPS: the key and certificate are read once here; libmicrohttpd
     * copies what it needs while starting, after which they are wiped. */
    char *cert = NULL, *key = NULL;
    struct MHD_OptionItem tls[3] = {{MHD_OPTION_END, 0, NULL}};
    if (cfg->tls_cert_file != NULL) {
        if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
            server_free(srv);
            sg_err_set(err, SG_BAD_REQUEST,
                       "SQLGATE_TLS_CERT_FILE: this libmicrohttpd was built without TLS");
            return NULL;
        }
        cert = read_small_file(cfg->tls_cert_file);
        key = read_small_file(cfg->tls_key_file);
        if (cert == NULL || key == NULL) {
            free_secret(cert);
            free_secret(key);
            server_free(srv);
            sg_err_set(err, SG_BAD_REQUEST, "%s: cannot be read",
                       cert == NULL ? "SQLGATE_TLS_CERT_FILE" : "SQLGATE_TLS_KEY_FILE");
            return NULL;
        }
        flags |= MHD_USE_TLS;
        tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, cert};
        tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, key};
    }

    srv->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->listen_port, NULL, NULL, on_access, srv, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_THREAD_STACK_SIZE, (size_t)THREAD_STACK_BYTES,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv, MHD_OPTION_UNESCAPE_CALLBACK, unescape, srv,
        MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
    free_secret(cert);
    free_secret(key);
    if (srv->daemon == NULL) {
        server_free(srv);
        if (cfg->tls_cert_file != NULL)
            sg_err_set(err, SG_BAD_REQUEST,
                       "SQLGATE_TLS_CERT_FILE/SQLGATE_TLS_KEY_FILE: not a usable PEM certificate "
                       "and matching key, or cannot listen on %s port %d",
                       cfg->listen_host, cfg->listen_port);
        else
            sg_err_set(err, SG_INTERNAL, "cannot listen on %s port %d (address in use?)",
                       cfg->listen_host, cfg->listen_port);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : cfg->listen_port;
    return srv;
}

int http_port(const http_server *srv)
{
    return srv->port;
}

void http_refuse_new(http_server *srv)
{
    atomic_store(&srv->refusing, true);
    MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

unsigned http_inflight(const http_server *srv)
{
    return atomic_load(&((http_server *)srv)->inflight);
}

void http_stop(http_server *srv)
{
    if (srv == NULL)
        return;
    MHD_stop_daemon(srv->daemon);
    server_free(srv);
}
