/* http: see http.h.
 *
 * Per-request state (http_req) is created on the first call of the access
 * handler and freed in one place, on_completed(), which libmicrohttpd calls
 * when the request is over, whether it was answered, streamed or abandoned by
 * the client. A streamed body owns its own state (http_stream.c).
 *
 * With a thread per connection every handler runs on the connection's
 * thread. With event threads, a handler that may wait (every route but
 * HTTP_INLINE ones) runs on a worker: on_access suspends the connection and queues the request's
 * job; the worker runs the handler, marks the request handled and resumes the connection, and
 * libmicrohttpd calls on_access again, which queues the reply. From the resume on, the worker no
 * longer touches the request (on_completed may free it at once); it only runs the streamed body, if
 * the handler made one.
 */
#define _GNU_SOURCE /* sched_getaffinity */
#include "http_int.h"

#include <arpa/inet.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/util.h"
#include "epoll_fix.h"
#include "sqlgate/clock.h"

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

void http_set_response(http_req *req, int status, struct MHD_Response *resp)
{
    if (req->response != NULL)
        MHD_destroy_response(req->response);
    req->response = resp;
    req->status = status;
    if (resp == NULL)
        return;
    MHD_add_response_header(resp, "X-Request-Id", req->id);
    if (req->traceparent[0] != '\0')
        MHD_add_response_header(resp, "traceparent", req->traceparent);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
}

/* The trace id of the request's traceparent, as log fields go. */
size_t http_trace_field(const http_req *req, log_field *f)
{
    if (req->traceparent[0] == '\0')
        return 0;
    *f = log_strn("trace_id", req->traceparent + TRACE_ID_OFFSET, TRACE_ID_LEN);
    return 1;
}

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    (void)value;
    if (strcasecmp(key, "traceparent") == 0)
        (*(unsigned *)cls)++;
    return MHD_YES;
}

/* A traceparent the request carries once and validly; anything else
 * (several, malformed) is ignored, as the specification asks. */
static void take_traceparent(http_req *req)
{
    const char *tp = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "traceparent");
    if (tp == NULL)
        return;
    unsigned n = 0;
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, count_header, &n);
    if (n == 1 && trace_parent_parse(tp, req->traceparent)) {
        memcpy(req->trace_id, req->traceparent + TRACE_ID_OFFSET, TRACE_ID_LEN);
        req->trace_id[TRACE_ID_LEN] = '\0';
    }
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

void http_reply_code(http_req *req, sg_code code, const char *message)
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
    http_reply_code(req, SG_PAYLOAD_TOO_LARGE, msg);
}

/* --- Configuration in force --------------------------------------------------- */

/* A new reference to the snapshot requests beginning now are served with. */
const sg_config *http_config_ref_current(http_server *srv)
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

static void worker_job(http_job *job);

static http_req *req_new(http_server *srv, struct MHD_Connection *conn, const char *url,
                         const char *method)
{
    http_req *req = calloc(1, sizeof *req);
    if (req == NULL)
        return NULL;
    req->srv = srv;
    req->cfg = http_config_ref_current(srv);
    req->conn = conn;
    req->method = method;
    jw_init(&req->body, 0); /* body_append enforces the cap */
    req->job.run = worker_job;
    atomic_init(&req->handled, false);
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
    take_traceparent(req);
    return req;
}

static enum MHD_Result add_header_bytes(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value)
{
    (void)kind;
    *(size_t *)cls += strlen(key) + (value != NULL ? strlen(value) : 0) + 4; /* ": ", CRLF */
    return MHD_YES;
}

/* The request line and headers as received (near enough: the path is
 * unescaped by now). */
static size_t header_bytes(const http_req *req)
{
    size_t n = strlen(req->method) + strlen(req->path) + 12; /* " HTTP/1.1\r\n" */
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, add_header_bytes, &n);
    return n;
}

/* Checks made once the headers are in, before any body is read. Leaves a
 * reply on req when the request is refused. */
static void screen_request(http_server *srv, http_req *req, unsigned inflight)
{
    char allow[128];
    const char *why = http_guard_framing_problem(req->conn);
    if (why != NULL) {
        http_reply_code(req, SG_BAD_REQUEST, why);
        http_reply_header(req, MHD_HTTP_HEADER_CONNECTION, "close");
        return;
    }
    if (header_bytes(req) > srv->cfg->connection_buffer_bytes / 2) {
        /* Answered before the body: it would not fit beside them. */
        char msg[128];
        snprintf(msg, sizeof msg,
                 "the request headers are larger than %zu bytes (half of "
                 "SQLGATE_CONNECTION_BUFFER_BYTES)",
                 srv->cfg->connection_buffer_bytes / 2);
        http_reply_code(req, SG_BAD_REQUEST, msg);
        http_reply_header(req, MHD_HTTP_HEADER_CONNECTION, "close");
        return;
    }
    if (atomic_load(&srv->refusing)) {
        http_reply_code(req, SG_SHUTTING_DOWN, "the service is shutting down");
        return;
    }
    if (!split_path(req)) {
        http_reply_code(req, SG_NOT_FOUND, "no such route");
        return;
    }
    req->route = route_find(srv, req, allow, sizeof allow);
    /* Health probes touch no database and answer from kept state, so a load
     * balancer still sees the service live (and ready or not) at the limit. */
    bool probe = req->route != NULL && strncmp(req->route->pattern, "/health", 7) == 0;
    if (inflight > HTTP_MAX_INFLIGHT && !probe) {
        http_reply_code(req, SG_OVERLOADED, "too many requests in flight; retry shortly");
        return;
    }
    if (!probe && http_conn_over_limit(req->conn)) {
        atomic_fetch_add(&srv->n_over_limit, 1);
        http_reply_code(req, SG_OVERLOADED,
                        "too many open connections (SQLGATE_MAX_CONNECTIONS); retry shortly");
        http_reply_header(req, MHD_HTTP_HEADER_CONNECTION, "close");
        return;
    }
    if (req->route == NULL) {
        if (allow[0] != '\0') {
            char msg[96];
            snprintf(msg, sizeof msg, "method %.16s is not allowed here", req->method);
            http_reply_code(req, SG_METHOD_NOT_ALLOWED, msg);
            http_reply_header(req, MHD_HTTP_HEADER_ALLOW, allow);
        } else {
            http_reply_code(req, SG_NOT_FOUND, "no such route");
        }
        return;
    }
    /* Without tokens only the browser checks stand between a web page and
     * the databases (docs/security.md). */
    if ((req->route->flags & HTTP_AUTH) && sg_tokens_count(req->cfg->tokens) == 0 &&
        (why = http_guard_browser_problem(srv, req)) != NULL) {
        http_reply_code(req, SG_FORBIDDEN, why);
        return;
    }
    http_guard_identify(srv, req);
    http_guard_check_access(srv, req);
    if (req->response != NULL)
        return;
    if (req->route->flags & HTTP_JSON_BODY) {
        if (!content_type_is_json(http_req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE))) {
            http_reply_code(req, SG_UNSUPPORTED_MEDIA_TYPE, "the body must be application/json");
            return;
        }
        /* A body over the cap is read and dropped (up to DISCARD_LIMIT) and
         * then answered with 413: answered at once, a client still sending
         * it would meet a reset connection instead of the answer. */
        const char *cl = http_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long declared = cl != NULL ? strtoull(cl, NULL, 10) : 0;
        if (declared > DISCARD_LIMIT)
            reply_too_large(req);
        else if (declared > req->cfg->max_body_bytes)
            req->body_too_large = true;
    }
}

static enum MHD_Result queue_reply(http_req *req)
{
    if (req->response == NULL) {
        /* A reply could not be built (out of memory): drop the connection. */
        return MHD_NO;
    }
    req->queued = true;
    int64_t deadline = req->response_deadline_us;
    if (deadline == 0)
        deadline = sg_clock_us() + req->cfg->idle_timeout_ms * 1000;
    http_conn_phase_set(req->srv, req->conn, CP_RESPONDING, deadline);
    enum MHD_Result rc = MHD_queue_response(req->conn, (unsigned)req->status, req->response);
    MHD_destroy_response(req->response);
    req->response = NULL;
    return rc;
}

static void run_handler(http_server *srv, http_req *req);

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
        /* The body, if any, must follow its headers as promptly. */
        http_conn_phase_set(srv, conn, CP_BODY, req->start_us + req->cfg->header_timeout_ms * 1000);
        unsigned inflight = atomic_fetch_add(&srv->inflight, 1) + 1;
        screen_request(srv, req, inflight);
        /* Refused before the body: answer now, without reading it. */
        return req->response != NULL ? queue_reply(req) : MHD_YES;
    }
    if (req->queued) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->on_worker)
        return atomic_load(&req->handled) ? queue_reply(req) : MHD_YES;
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
    http_conn_phase_set(srv, conn, CP_HANDLING, 0);
    if (!srv->events || (req->route->flags & HTTP_INLINE)) {
        /* On the connection's own thread, or a route that never waits. */
        run_handler(srv, req);
        return queue_reply(req);
    }
    req->on_worker = true;
    MHD_suspend_connection(conn);
    if (!http_work_submit(srv->work, &req->job)) {
        /* The server stops, or no worker thread could be started: answered
         * here, queued when libmicrohttpd calls again after the resume. */
        if (atomic_load(&srv->stopping))
            http_reply_code(req, SG_SHUTTING_DOWN, "the service is shutting down");
        else
            http_reply_code(req, SG_OVERLOADED, "no worker thread is available; retry shortly");
        atomic_store(&req->handled, true);
        MHD_resume_connection(conn);
    }
    return MHD_YES;
}

/* On a worker: the handler, then (after the resume) its streamed body. */
static void worker_job(http_job *job)
{
    http_req *req = (http_req *)((char *)job - offsetof(http_req, job));
    run_handler(req->srv, req);
    http_stream *stream = req->stream; /* req may be freed once resumed */
    struct MHD_Connection *conn = req->conn;
    atomic_store(&req->handled, true);
    MHD_resume_connection(conn);
    if (stream != NULL)
        http_stream_run(stream);
}

static void run_handler(http_server *srv, http_req *req)
{
    req->route->handler(req, srv->app);
    if (req->response == NULL && req->status == 0) {
        sg_err err;
        sg_err_set(&err, SG_INTERNAL, "the handler gave no answer");
        http_reply_error(req, &err);
    } else if ((req->route->flags & HTTP_SCOPE_DB) && !req->db_checked && req->status < 400) {
        /* A handler that forgot http_req_allow_db fails closed. */
        sg_err err;
        sg_err_set(&err, SG_INTERNAL, "the database scope was not checked");
        http_reply_error(req, &err);
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server *srv = cls;
    http_req *req = *con_cls;
    if (req == NULL)
        return;
    *con_cls = NULL;
    http_conn_phase_set(srv, conn, CP_IDLE, sg_clock_us() + req->cfg->idle_timeout_ms * 1000);
    if (log_enabled(SG_LOG_INFO)) {
        const char *route = req->route ? req->route->pattern : "-";
        log_field f[10]; /* not zeroed: only the first n are read */
        size_t n = 0;
        f[n++] = log_str("request_id", req->id);
        n += http_trace_field(req, &f[n]);
        f[n++] = log_str("method", req->method);
        f[n++] = log_str("route", route);
        f[n++] = log_int("status", req->status);
        f[n++] = log_ms("duration_ms", sg_clock_us() - req->start_us);
        if (req->db[0] != '\0')
            f[n++] = log_str("db", req->db);
        if (req->operation != NULL)
            f[n++] = log_str("operation", req->operation);
        if (req->presented || (req->token != NULL && req->token != sg_token_anonymous()))
            f[n++] = log_str("token", http_token_name(req));
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
            f[n++] = log_bool("aborted", true);
        log_line(SG_LOG_INFO, "request", f, n);
    }
    if (srv->observe != NULL)
        srv->observe(srv->app, req->route, req->status, sg_clock_us() - req->start_us);
    if (req->response != NULL)
        MHD_destroy_response(req->response);
    jw_free(&req->body);
    free(req->operation);
    free(req->path);
    sg_config_unref(req->cfg);
    free(req);
    if (atomic_fetch_sub(&srv->inflight, 1) == 1) {
        /* Under the lock: a waiter that saw a request in flight is asleep
         * by now, or has not looked yet and will see none. */
        pthread_mutex_lock(&srv->idle_mu);
        pthread_cond_broadcast(&srv->idle_cv);
        pthread_mutex_unlock(&srv->idle_mu);
    }
}

/* Decodes %HH in the path and query, except %00: a NUL would cut the path
 * short ("/health%00/live" read as "/health"), so it stays as written and
 * matches no route. */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    char *out = s;
    for (const char *in = s; *in != '\0';) {
        int hi, lo;
        if (in[0] == '%' && (hi = sg_hex_value(in[1])) >= 0 && (lo = sg_hex_value(in[2])) >= 0 &&
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
    log_at(SG_LOG_DEBUG, "libmicrohttpd", log_strn("detail", msg, n));
}

/* --- Server lifecycle ------------------------------------------------------ */

#define TLS_FILE_MAX (1024 * 1024)

/* Whole file as a NUL-terminated string (new), or NULL (also when empty). */
static char *read_small_file(const char *path)
{
    char *data = NULL;
    size_t n = 0;
    if (sg_file_read(path, TLS_FILE_MAX, false, &data, &n) != 0)
        return NULL;
    if (n == 0) {
        free(data);
        return NULL;
    }
    return data;
}

/* Frees what http_start set up besides the daemon. */
static void server_free(http_server *srv)
{
    /* Only now that libmicrohttpd's threads have ended: until then they may
     * still use it (http_refuse_new; docs/reliability.md, "Listening socket
     * at shutdown"). */
    if (srv->quiesced_fd >= 0)
        close(srv->quiesced_fd);
    http_work_free(srv->work);
    sg_config_unref(srv->current);
    pthread_mutex_destroy(&srv->cfg_mu);
    pthread_mutex_destroy(&srv->conns_lock);
    pthread_cond_destroy(&srv->idle_cv);
    pthread_mutex_destroy(&srv->idle_mu);
    free(srv);
}

/* The CPUs this process may run on (a container's cpuset, taskset), not
 * all the machine has. */
static unsigned cpu_count(void)
{
    cpu_set_t set;
    long n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
                                                         : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 1024 ? 1024 : (unsigned)n;
}

/* Event threads: one per CPU, at most EVENT_THREADS_MAX; they only parse,
 * route and copy bytes, so more would only contend. */
static unsigned event_threads(void)
{
    unsigned n = cpu_count();
    return n > EVENT_THREADS_MAX ? EVENT_THREADS_MAX : n;
}

/* SQLGATE_MAX_CONNECTIONS as the open-file limit allows: the soft limit is
 * raised to the hard one first (every connection is a descriptor), and what
 * still does not fit lowers the cap, with a warning. */
static unsigned connection_cap(unsigned wanted)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return wanted;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit raised = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl.rlim_cur = rl.rlim_max;
    }
    if (rl.rlim_cur == RLIM_INFINITY ||
        (rlim_t)wanted + CONNECTION_HEADROOM + FD_RESERVE <= rl.rlim_cur)
        return wanted;
    unsigned fit = rl.rlim_cur > CONNECTION_HEADROOM + FD_RESERVE + 16
                       ? (unsigned)(rl.rlim_cur - CONNECTION_HEADROOM - FD_RESERVE)
                       : 16;
    log_at(SG_LOG_WARN, "SQLGATE_MAX_CONNECTIONS lowered to what the open-file limit allows",
           log_int("wanted", wanted), log_int("allowed", fit),
           log_int("nofile_limit", (long long)rl.rlim_cur));
    return fit;
}

http_server *http_start(const sg_config *cfg, const http_route *routes, size_t n_routes, void *app,
                        http_observe_fn observe, sg_err *err)
{
    http_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        sg_err_set(err, SG_INTERNAL, "out of memory");
        return NULL;
    }
    srv->quiesced_fd = -1;
    if (sg_cond_init_monotonic(&srv->idle_cv) != 0) {
        free(srv);
        sg_err_set(err, SG_INTERNAL, "cannot create a condition variable");
        return NULL;
    }
    pthread_mutex_init(&srv->idle_mu, NULL);
    srv->cfg = cfg;
    pthread_mutex_init(&srv->cfg_mu, NULL);
    srv->current = sg_config_ref(cfg);
    srv->routes = routes;
    srv->n_routes = n_routes;
    srv->app = app;
    srv->observe = observe;
    atomic_init(&srv->refusing, false);
    atomic_init(&srv->inflight, 0);
    atomic_init(&srv->port, cfg->listen_port);
    atomic_init(&srv->reaper_stop, false);
    atomic_init(&srv->n_timed_out, 0);
    atomic_init(&srv->n_evicted, 0);
    atomic_init(&srv->n_refused, 0);
    atomic_init(&srv->n_over_limit, 0);
    atomic_init(&srv->stopping, false);
    pthread_mutex_init(&srv->conns_lock, NULL);
    bool events = cfg->connection_model == SG_CONN_EVENTS;
    srv->events = events;
    /* A thread per connection: no more than requests may be in flight. */
    unsigned wanted = events || cfg->max_connections < HTTP_MAX_INFLIGHT ? cfg->max_connections
                                                                         : HTTP_MAX_INFLIGHT;
    srv->max_conns = connection_cap(wanted);
    if (events) {
        srv->work = http_work_new(HTTP_MAX_INFLIGHT + CONNECTION_HEADROOM, cpu_count(),
                                  THREAD_STACK_BYTES, WORKER_LINGER_MS);
        if (srv->work == NULL) {
            server_free(srv);
            sg_err_set(err, SG_INTERNAL, "out of memory");
            return NULL;
        }
    }

    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    unsigned flags =
        events ? MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME
               : MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC;
    flags |= MHD_USE_ERROR_LOG;
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
            strcasecmp(cfg->listen_host, "localhost") == 0 ? "127.0.0.1" : cfg->listen_host;
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
            sg_free_secret(cert);
            sg_free_secret(key);
            server_free(srv);
            sg_err_set(err, SG_BAD_REQUEST, "%s: cannot be read",
                       cert == NULL ? "SQLGATE_TLS_CERT_FILE" : "SQLGATE_TLS_KEY_FILE");
            return NULL;
        }
        flags |= MHD_USE_TLS;
        tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, cert};
        tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, key};
    }

    /* libmicrohttpd's inactivity timeout stays as a backstop behind the
     * reaper; it must not cut a kept-alive connection before ours does. */
    int64_t longest_ms = cfg->idle_timeout_ms > cfg->header_timeout_ms ? cfg->idle_timeout_ms
                                                                       : cfg->header_timeout_ms;
    unsigned backstop_s = (unsigned)(longest_ms / 1000 + 2);
    if (backstop_s < CONNECTION_TIMEOUT_S)
        backstop_s = CONNECTION_TIMEOUT_S;
    /* The thread pool only with event threads: libmicrohttpd warns on stderr
     * about a pool size of 0 given with a thread per connection. */
    struct MHD_OptionItem pool[2] = {{MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL}};
    if (events)
        pool[0] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, event_threads(), NULL};
    srv->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->listen_port, http_conns_on_accept, srv, on_access, srv,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION,
        http_conns_on_connection, srv, MHD_OPTION_CONNECTION_LIMIT,
        srv->max_conns + CONNECTION_HEADROOM, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        cfg->connection_buffer_bytes, MHD_OPTION_CONNECTION_TIMEOUT, backstop_s,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)THREAD_STACK_BYTES, MHD_OPTION_UNESCAPE_CALLBACK,
        unescape, srv, MHD_OPTION_ARRAY, pool, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
    sg_free_secret(cert);
    sg_free_secret(key);
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
    atomic_store(&srv->port, info ? info->port : cfg->listen_port);
    if (pthread_create(&srv->reaper, NULL, http_conns_reaper, srv) != 0) {
        http_stop(srv);
        sg_err_set(err, SG_INTERNAL, "cannot start the connection reaper thread");
        return NULL;
    }
    srv->reaper_started = true;
    return srv;
}

int http_port(const http_server *srv)
{
    return atomic_load(&((http_server *)srv)->port);
}

void http_refuse_new(http_server *srv)
{
    atomic_store(&srv->refusing, true);
    MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
    if (fd == MHD_INVALID_SOCKET)
        return;
    /* The socket stops listening, so new connections are refused at once,
     * but it stays open: until libmicrohttpd's threads notice the quiesce
     * they may still use it. An event thread takes it out of its epoll set,
     * and 0.9.75 aborts if that fails on a closed descriptor; the listening
     * thread polls it, and would poll whatever file got its number next.
     * server_free closes it. */
    shutdown(fd, SHUT_RDWR);
    srv->quiesced_fd = fd;
}

void http_conn_stats(const http_server *srv, http_conn_counts *out)
{
    http_server *s = (http_server *)srv;
    out->timed_out = atomic_load(&s->n_timed_out);
    out->evicted = atomic_load(&s->n_evicted);
    out->refused = atomic_load(&s->n_refused);
    out->over_limit = atomic_load(&s->n_over_limit);
}

unsigned http_inflight(const http_server *srv)
{
    return atomic_load(&((http_server *)srv)->inflight);
}

unsigned http_wait_idle(http_server *srv, int64_t deadline_ms)
{
    pthread_mutex_lock(&srv->idle_mu);
    while (atomic_load(&srv->inflight) > 0 && sg_clock_ms() < deadline_ms)
        sg_cond_wait_until(&srv->idle_cv, &srv->idle_mu, deadline_ms);
    pthread_mutex_unlock(&srv->idle_mu);
    return atomic_load(&srv->inflight);
}

void http_stop(http_server *srv)
{
    if (srv == NULL)
        return;
    /* Streams are cut and the workers finish first: libmicrohttpd cannot
     * stop with a connection suspended, and a worker resumes its own. */
    atomic_store(&srv->stopping, true);
    http_work_stop(srv->work);
    if (srv->reaper_started) {
        atomic_store(&srv->reaper_stop, true);
        pthread_join(srv->reaper, NULL);
    }
    MHD_stop_daemon(srv->daemon);
    if (srv->events) {
        log_field f[] = {
            log_int("skipped_waits", (int64_t)epoll_fix_skipped_waits()),
            log_int("repeated_removals", (int64_t)epoll_fix_repeated_removals()),
        };
        log_line(SG_LOG_DEBUG, "event threads: epoll calls mended (src/service/epoll_fix.c)", f, 2);
    }
    server_free(srv);
}
