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
#include <ctype.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
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

#include "httperr.h"
#include "jsonw.h"
#include "log.h"
#include "../lib/util.h"
#include "sqlgate/clock.h"
#include "trace.h"

#define MAX_SEGMENTS         8
#define CONNECTION_LIMIT     (HTTP_MAX_INFLIGHT + 64)
#define CONNECTION_HEADROOM  64  /* past LIMIT - HEADROOM idle connections are closed */
#define CONNECTION_TIMEOUT_S 120 /* libmicrohttpd's inactivity backstop */
#define REAPER_PERIOD_MS     100
#define THREAD_STACK_BYTES   (256 * 1024)
#define DISCARD_LIMIT        (16u * 1024 * 1024) /* then the connection is dropped */

/* One client connection, from libmicrohttpd's STARTED notification to its
 * CLOSED one (which comes before the socket is closed, so fd stays valid
 * while the entry is listed). Guarded by http_server.conns_lock. */
typedef enum conn_phase {
    CP_HEADERS,    /* waiting for complete request headers: evictable */
    CP_BODY,       /* headers in, body arriving */
    CP_HANDLING,   /* the handler runs; bounded by database timeouts */
    CP_RESPONDING, /* the response is being sent */
    CP_IDLE,       /* kept alive between requests: evictable */
} conn_phase;

typedef struct conn_entry {
    struct conn_entry *prev, *next;
    int fd;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    conn_phase phase;
    int64_t since_us;    /* phase start (eviction picks the oldest) */
    int64_t deadline_us; /* 0: none */
    bool cut;            /* shut down by sqlgate; no longer counted */
} conn_entry;

struct http_server {
    struct MHD_Daemon *daemon;
    const sg_config *cfg; /* borrowed; the start's: address and TLS */
    const http_route *routes;
    size_t n_routes;
    void *app;
    http_observe_fn observe; /* may be NULL */
    atomic_int port;         /* connection threads read it (Host checks) */
    atomic_bool refusing;
    atomic_uint inflight;
    pthread_mutex_t idle_mu; /* with idle_cv: the last request in flight is done */
    pthread_cond_t idle_cv;  /* monotonic; http_wait_idle waits on it */

    pthread_mutex_t conns_lock;
    conn_entry *conns; /* live connections, newest first */
    unsigned n_live;   /* listed and not cut */
    pthread_t reaper;
    bool reaper_started;
    atomic_bool reaper_stop;
    atomic_ulong n_timed_out, n_evicted, n_refused;

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
    char traceparent[TRACE_PARENT_LEN + 1]; /* the caller's, validated, or "" */
    char trace_id[TRACE_ID_LEN + 1];        /* inside it, NUL-terminated, or "" */
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
    char *operation;              /* owned, or NULL */
    int64_t response_deadline_us; /* 0: none (http_req_limit_response) */

    const sg_token *token;                          /* http_req_token() */
    bool presented;                                 /* an Authorization: Bearer header came */
    char fingerprint[SG_TOKEN_FINGERPRINT_LEN + 1]; /* of what was presented, or "" */
    bool db_checked;                                /* http_req_allow_db ran */
};

static void audit_line(http_req *req, const char *db, int status, const char *outcome,
                       const char *reason);

static const sg_config *config_ref_current(http_server *srv);

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
    if (req->traceparent[0] != '\0')
        MHD_add_response_header(resp, "traceparent", req->traceparent);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
}

/* The trace id of the request's traceparent, as log fields go. */
static size_t add_trace_field(const http_req *req, log_field *f)
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
    httperr_policy policy = httperr_policy_of(err->code);
    int status = policy.status;
    if (b.failed) {
        jw_free(&b);
        set_response(req, 500, NULL);
        return;
    }
    size_t len;
    char *text = jw_steal(&b, &len);
    http_reply_bytes(req, status, "application/json", text, len);
    if (policy.retry_after != NULL)
        http_reply_header(req, MHD_HTTP_HEADER_RETRY_AFTER, policy.retry_after);
    if (policy.close)
        http_reply_header(req, MHD_HTTP_HEADER_CONNECTION, "close");
    if (policy.www_authenticate != NULL)
        http_reply_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, policy.www_authenticate);
    if (err->code == SG_UNAUTHORIZED || err->code == SG_FORBIDDEN)
        audit_line(req, req->db[0] != '\0' ? req->db : NULL, status, "refused", err->message);
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

const char *http_req_trace_id(const http_req *req)
{
    return req->trace_id[0] != '\0' ? req->trace_id : NULL;
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

void http_req_limit_response(http_req *req, int64_t within_ms)
{
    req->response_deadline_us =
        sg_clock_us() + (within_ms + req->cfg->write_grace_ms) * (int64_t)1000;
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

/* --- Authentication and scopes ----------------------------------------------- */

/* Identifies the request's token (once the route is known). The token is
 * hashed and looked up in the configuration's set (sg_tokens_find compares
 * digests in constant time). */
static void identify(const http_server *srv, http_req *req)
{
    const sg_tokens *set = req->cfg->tokens;
    const char *h = http_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0) {
        const char *tok = h + 7;
        while (*tok == ' ')
            tok++;
        size_t len = strlen(tok);
        req->presented = true;
        sg_token_fingerprint_of(tok, len, req->fingerprint);
        req->token = sg_tokens_find(set, tok, len);
    }
    if (sg_tokens_count(set) == 0)
        req->token = sg_token_anonymous();
}

static const char *token_name(const http_req *req)
{
    if (req->token != NULL)
        return sg_token_fingerprint(req->token);
    return req->presented ? req->fingerprint : "none";
}

static void audit_line(http_req *req, const char *db, int status, const char *outcome,
                       const char *reason)
{
    const char *route = req->route ? req->route->pattern : "-";
    const char *who = token_name(req);
    log_field f[10];
    size_t n = 0;
    f[n++] = log_str("request_id", req->id);
    n += add_trace_field(req, &f[n]);
    f[n++] = log_str("token", who);
    f[n++] = log_bool("known", req->token != NULL);
    f[n++] = log_str("method", req->method);
    f[n++] = log_str("route", route);
    f[n++] = log_int("status", status);
    f[n++] = log_str("outcome", outcome);
    if (db != NULL)
        f[n++] = log_str("db", db);
    if (reason != NULL)
        f[n++] = log_str("reason", reason);
    /* Warn: refusals and admin actions stay visible at SQLGATE_LOG_LEVEL=warn. */
    log_line(SG_LOG_WARN, "audit", f, n);
}

void http_audit(http_req *req, const char *db, int status, const char *outcome)
{
    audit_line(req, db, status, outcome, NULL);
}

const sg_token *http_req_token(const http_req *req)
{
    return req->token;
}

bool http_req_details_allowed(const http_req *req, sg_health_details setting)
{
    switch (setting) {
    case SG_HEALTH_DETAILS_ALWAYS:
        return true;
    case SG_HEALTH_DETAILS_AUTHORIZED:
        return req->token != NULL;
    default:
        return false;
    }
}

static void reply_code(http_req *req, sg_code code, const char *message);

bool http_req_allow_db(http_req *req, const char *name)
{
    req->db_checked = true;
    if (req->token != NULL && sg_token_may_db(req->token, name))
        return true;
    char msg[SG_NAME_MAX + 64];
    snprintf(msg, sizeof msg, "this token has no scope for database %.*s", SG_NAME_MAX, name);
    http_req_set_db(req, name);
    reply_code(req, SG_FORBIDDEN, msg);
    return false;
}

/* The route's token and scope checks; leaves a 401/403 reply on refusal. */
static void check_access(const http_server *srv, http_req *req)
{
    unsigned flags = req->route->flags;
    bool metrics_gated =
        (flags & HTTP_SCOPE_METRICS) && req->cfg->metrics_access == SG_METRICS_TOKEN;
    if (!(flags & HTTP_AUTH) && !metrics_gated)
        return;
    if (req->token == NULL) {
        reply_code(req, SG_UNAUTHORIZED, "a valid bearer token is required");
        return;
    }
    unsigned scopes = sg_token_scopes(req->token);
    const char *missing = NULL;
    if (metrics_gated && !(scopes & SG_SCOPE_METRICS))
        missing = "this token has no metrics scope (needs metrics)";
    else if ((flags & HTTP_SCOPE_ADMIN) && !(scopes & SG_SCOPE_ADMIN))
        missing = "this token has no admin scope (needs admin)";
    else if ((flags & HTTP_SCOPE_ALL_DBS) && !(scopes & SG_SCOPE_ALL_DBS))
        missing = "this token has no scope for every database (needs db=*)";
    if (missing != NULL)
        reply_code(req, SG_FORBIDDEN, missing);
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

/* --- Framing (RFC 9112 section 6.3) ------------------------------------------ */

/* libmicrohttpd picks one of Content-Length and Transfer-Encoding and reads
 * the body by it; a proxy in front may pick the other one, and the bytes one
 * of them leaves over become a second, smuggled request. So any request
 * whose framing two readers could disagree on is refused. */
typedef struct framing {
    unsigned n_length, n_coding;
    const char *length; /* first Content-Length value */
    bool length_conflict, length_bad, coding_bad;
} framing;

static enum MHD_Result framing_visit(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    framing *f = cls;
    const char *v = value != NULL ? value : "";
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (f->n_length++ == 0)
            f->length = v;
        else if (strcmp(f->length, v) != 0)
            f->length_conflict = true;
        f->length_bad |= v[0] == '\0' || strspn(v, "0123456789") != strlen(v);
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        f->n_coding++;
        f->coding_bad |= strcasecmp(v, "chunked") != 0;
    }
    return MHD_YES;
}

/* Why the request's framing is ambiguous (a static message), or NULL. */
static const char *framing_problem(struct MHD_Connection *conn)
{
    framing f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, framing_visit, &f);
    if (f.n_coding > 0 && f.n_length > 0)
        return "a request may not have both Content-Length and Transfer-Encoding";
    if (f.n_coding > 1 || f.coding_bad)
        return "the only Transfer-Encoding accepted is a single \"chunked\"";
    if (f.length_conflict)
        return "conflicting Content-Length headers";
    if (f.length_bad)
        return "Content-Length must be a decimal number";
    return NULL;
}

/* --- Browser-borne requests without tokens ------------------------------------ */

/* Without tokens the only guard of the /v1 routes is that the caller can reach the
 * address; a web page can too, through the user's browser: by DNS rebinding
 * (its own name resolving to 127.0.0.1, so the Host header names the
 * attacker) or by a plain cross-site form POST. Host must therefore name
 * this service, and a request that says it comes from another origin is
 * refused. With tokens configured a browser cannot attach one by itself, so
 * neither check applies. */

/* Is "host[:port]" (len bytes, any case) one of the names of this service? A
 * missing port means the scheme's default. */
static bool authority_allowed(const http_server *srv, const sg_config *cfg, const char *a,
                              size_t len, bool https)
{
    char buf[300];
    if (len == 0 || len >= sizeof buf)
        return false;
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)tolower((unsigned char)a[i]);
    buf[len] = '\0';
    /* Split off the port: after "]" for IPv6, else after the last ':'. */
    char *close = buf[0] == '[' ? strchr(buf, ']') : NULL;
    if (buf[0] == '[' && close == NULL)
        return false;
    char *colon = close != NULL ? (close[1] == ':' ? close + 1 : NULL) : strrchr(buf, ':');
    if (close != NULL && close[1] != '\0' && close[1] != ':')
        return false;
    long port = https ? 443 : 80;
    if (colon != NULL) {
        char *end;
        port = strtol(colon + 1, &end, 10);
        if (colon[1] == '\0' || *end != '\0')
            return false;
        *colon = '\0';
    }
    /* SQLGATE_ALLOWED_HOSTS: "name" matches any port, "name:port" only that. */
    for (size_t i = 0; i < cfg->n_allowed_hosts; i++) {
        const char *h = cfg->allowed_hosts[i];
        size_t hl = strlen(buf);
        if (strncmp(h, buf, hl) != 0)
            continue;
        if (h[hl] == '\0')
            return true;
        if (h[hl] == ':' && strtol(h + hl + 1, NULL, 10) == port)
            return true;
    }
    if (port != atomic_load(&((http_server *)srv)->port))
        return false;
    static const char *const loopback[] = {"127.0.0.1", "localhost", "[::1]"};
    for (size_t i = 0; i < sizeof loopback / sizeof loopback[0]; i++) {
        if (strcmp(buf, loopback[i]) == 0)
            return true;
    }
    const char *lh = cfg->listen_host;
    if (close != NULL)
        return strlen(lh) == (size_t)(close - buf - 1) &&
               strncasecmp(lh, buf + 1, (size_t)(close - buf - 1)) == 0;
    return strcasecmp(lh, buf) == 0;
}

/* Why a request without tokens configured is refused (a static message), or
 * NULL. */
static const char *browser_problem(const http_server *srv, const http_req *req)
{
    bool https = srv->cfg->tls_cert_file != NULL;
    const char *host = http_req_header(req, MHD_HTTP_HEADER_HOST);
    if (host == NULL || !authority_allowed(srv, req->cfg, host, strlen(host), https))
        return "the Host header does not name this service; without API tokens only "
               "localhost, the listen address and SQLGATE_ALLOWED_HOSTS are accepted";
    const char *site = http_req_header(req, "Sec-Fetch-Site");
    if (site != NULL && strcasecmp(site, "cross-site") == 0)
        return "a cross-site request from a web page (Sec-Fetch-Site: cross-site) is refused "
               "without API tokens";
    const char *origin = http_req_header(req, "Origin");
    if (origin != NULL) {
        const char *sep = strstr(origin, "://");
        bool origin_https = strncasecmp(origin, "https://", 8) == 0;
        if (sep == NULL || strchr(sep + 3, '/') != NULL ||
            !authority_allowed(srv, req->cfg, sep + 3, strlen(sep + 3), origin_https))
            return "the Origin header names another site; without API tokens only pages "
                   "served by this service may call it";
    }
    return NULL;
}

/* --- Connections: deadlines, caps and the reaper ------------------------------ */

/* libmicrohttpd only knows an inactivity timeout per connection, which a
 * client sending a byte now and then (or reading a byte now and then)
 * never trips. Every connection is therefore listed with the deadline of
 * its current phase, and a reaper thread shut()s down the socket of one past
 * it: its thread then sees the end of the connection and closes it, which
 * frees a streamed response and so ends its query (cancel, connection back
 * to its pool). The same list enforces the per-client cap and the headroom
 * below the global limit, by closing idle connections first. */

static bool same_client(const conn_entry *e, const struct sockaddr *a)
{
    const struct sockaddr *b = (const struct sockaddr *)&e->addr;
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                      &((const struct sockaddr_in *)b)->sin_addr, sizeof(struct in_addr)) == 0;
    if (a->sa_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    return false;
}

/* Lock held. */
static void conn_cut(http_server *srv, conn_entry *e)
{
    shutdown(e->fd, SHUT_RDWR);
    e->cut = true;
    srv->n_live--;
}

/* The oldest connection that is waiting for a request (optionally from
 * client a only), or NULL. Lock held. */
static conn_entry *oldest_idle(http_server *srv, const struct sockaddr *a)
{
    conn_entry *best = NULL;
    for (conn_entry *e = srv->conns; e != NULL; e = e->next) {
        if (e->cut || (e->phase != CP_HEADERS && e->phase != CP_IDLE))
            continue;
        if (a != NULL && !same_client(e, a))
            continue;
        if (best == NULL || e->since_us <= best->since_us)
            best = e;
    }
    return best;
}

/* Accept policy, on libmicrohttpd's listening thread: a client at its cap
 * gives up its oldest idle connection for the new one, or is refused when
 * all of them are busy; near the global limit the oldest idle connection of
 * anyone makes room, so that probes and real requests still get in. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    http_server *srv = cls;
    enum MHD_Result rc = MHD_YES;
    pthread_mutex_lock(&srv->conns_lock);
    unsigned same = 0;
    for (conn_entry *e = srv->conns; e != NULL; e = e->next)
        same += !e->cut && same_client(e, addr);
    const sg_config *cur = config_ref_current(srv);
    unsigned cap = cur->max_conns_per_client;
    sg_config_unref(cur);
    if (same >= cap) {
        conn_entry *victim = oldest_idle(srv, addr);
        if (victim != NULL) {
            conn_cut(srv, victim);
            atomic_fetch_add(&srv->n_evicted, 1);
        } else {
            atomic_fetch_add(&srv->n_refused, 1);
            rc = MHD_NO;
        }
    }
    if (rc == MHD_YES && srv->n_live >= CONNECTION_LIMIT - CONNECTION_HEADROOM) {
        conn_entry *victim = oldest_idle(srv, NULL);
        if (victim != NULL) {
            conn_cut(srv, victim);
            atomic_fetch_add(&srv->n_evicted, 1);
        }
    }
    pthread_mutex_unlock(&srv->conns_lock);
    return rc;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    http_server *srv = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ad =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        conn_entry *e = calloc(1, sizeof *e);
        if (e == NULL || fd == NULL) {
            free(e); /* untracked: only libmicrohttpd's own timeout applies */
            return;
        }
        e->fd = fd->connect_fd;
        if (ad != NULL && ad->client_addr != NULL) {
            e->addr_len = ad->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                 : sizeof(struct sockaddr_in);
            memcpy(&e->addr, ad->client_addr, e->addr_len);
        }
        e->phase = CP_HEADERS;
        e->since_us = sg_clock_us();
        const sg_config *cur = config_ref_current(srv);
        e->deadline_us = e->since_us + cur->header_timeout_ms * 1000;
        sg_config_unref(cur);
        pthread_mutex_lock(&srv->conns_lock);
        e->next = srv->conns;
        if (srv->conns != NULL)
            srv->conns->prev = e;
        srv->conns = e;
        srv->n_live++;
        pthread_mutex_unlock(&srv->conns_lock);
        *socket_context = e;
        return;
    }
    conn_entry *e = *socket_context;
    if (e == NULL)
        return;
    pthread_mutex_lock(&srv->conns_lock);
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        srv->conns = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    if (!e->cut)
        srv->n_live--;
    pthread_mutex_unlock(&srv->conns_lock);
    free(e);
    *socket_context = NULL;
}

/* Moves conn into phase with a deadline (0: none). */
static void conn_phase_set(http_server *srv, struct MHD_Connection *conn, conn_phase phase,
                           int64_t deadline_us)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_entry *e = ci != NULL ? ci->socket_context : NULL;
    if (e == NULL)
        return;
    pthread_mutex_lock(&srv->conns_lock);
    e->phase = phase;
    e->since_us = sg_clock_us();
    e->deadline_us = deadline_us;
    pthread_mutex_unlock(&srv->conns_lock);
}

static void *reaper_main(void *arg)
{
    http_server *srv = arg;
    while (!atomic_load(&srv->reaper_stop)) {
        poll(NULL, 0, REAPER_PERIOD_MS);
        int64_t now = sg_clock_us();
        unsigned cut = 0, responses = 0;
        pthread_mutex_lock(&srv->conns_lock);
        for (conn_entry *e = srv->conns; e != NULL; e = e->next) {
            if (!e->cut && e->deadline_us != 0 && now >= e->deadline_us) {
                responses += e->phase == CP_RESPONDING;
                conn_cut(srv, e);
                cut++;
            }
        }
        pthread_mutex_unlock(&srv->conns_lock);
        if (cut > 0)
            atomic_fetch_add(&srv->n_timed_out, cut);
        /* Idle and slow-header closes are routine (and an attacker's to
         * multiply); a response cut short is news to whoever sent it. */
        if (responses > 0)
            log_at(SG_LOG_INFO, "responses cut: the client did not read them in time",
                   log_int("count", responses));
    }
    return NULL;
}

/* --- libmicrohttpd callbacks ----------------------------------------------- */

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
    take_traceparent(req);
    return req;
}

/* Checks made once the headers are in, before any body is read. Leaves a
 * reply on req when the request is refused. */
static void screen_request(http_server *srv, http_req *req, unsigned inflight)
{
    char allow[128];
    const char *why = framing_problem(req->conn);
    if (why != NULL) {
        reply_code(req, SG_BAD_REQUEST, why);
        http_reply_header(req, MHD_HTTP_HEADER_CONNECTION, "close");
        return;
    }
    if (atomic_load(&srv->refusing)) {
        reply_code(req, SG_SHUTTING_DOWN, "the service is shutting down");
        return;
    }
    if (!split_path(req)) {
        reply_code(req, SG_NOT_FOUND, "no such route");
        return;
    }
    req->route = route_find(srv, req, allow, sizeof allow);
    /* Health probes touch no database and answer from kept state, so a load
     * balancer still sees the service live (and ready or not) at the limit. */
    if (inflight > HTTP_MAX_INFLIGHT &&
        !(req->route != NULL && strncmp(req->route->pattern, "/health", 7) == 0)) {
        reply_code(req, SG_OVERLOADED, "too many requests in flight; retry shortly");
        return;
    }
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
    /* Without tokens only the browser checks stand between a web page and
     * the databases (docs/security.md). */
    if ((req->route->flags & HTTP_AUTH) && sg_tokens_count(req->cfg->tokens) == 0 &&
        (why = browser_problem(srv, req)) != NULL) {
        reply_code(req, SG_FORBIDDEN, why);
        return;
    }
    identify(srv, req);
    check_access(srv, req);
    if (req->response != NULL)
        return;
    if (req->route->flags & HTTP_JSON_BODY) {
        if (!content_type_is_json(http_req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE))) {
            reply_code(req, SG_UNSUPPORTED_MEDIA_TYPE, "the body must be application/json");
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
    conn_phase_set(req->srv, req->conn, CP_RESPONDING, deadline);
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
        /* The body, if any, must follow its headers as promptly. */
        conn_phase_set(srv, conn, CP_BODY, req->start_us + req->cfg->header_timeout_ms * 1000);
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
    conn_phase_set(srv, conn, CP_HANDLING, 0);
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
    conn_phase_set(srv, conn, CP_IDLE, sg_clock_us() + req->cfg->idle_timeout_ms * 1000);
    if (log_enabled(SG_LOG_INFO)) {
        const char *route = req->route ? req->route->pattern : "-";
        log_field f[10]; /* not zeroed: only the first n are read */
        size_t n = 0;
        f[n++] = log_str("request_id", req->id);
        n += add_trace_field(req, &f[n]);
        f[n++] = log_str("method", req->method);
        f[n++] = log_str("route", route);
        f[n++] = log_int("status", req->status);
        f[n++] = log_ms("duration_ms", sg_clock_us() - req->start_us);
        if (req->db[0] != '\0')
            f[n++] = log_str("db", req->db);
        if (req->operation != NULL)
            f[n++] = log_str("operation", req->operation);
        if (req->presented || (req->token != NULL && req->token != sg_token_anonymous()))
            f[n++] = log_str("token", token_name(req));
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
    sg_config_unref(srv->current);
    pthread_mutex_destroy(&srv->cfg_mu);
    pthread_mutex_destroy(&srv->conns_lock);
    pthread_cond_destroy(&srv->idle_cv);
    pthread_mutex_destroy(&srv->idle_mu);
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
    pthread_mutex_init(&srv->conns_lock, NULL);

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
    srv->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->listen_port, on_accept, srv, on_access, srv, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT, backstop_s,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)THREAD_STACK_BYTES, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, srv, MHD_OPTION_UNESCAPE_CALLBACK, unescape, srv, MHD_OPTION_ARRAY, tls,
        MHD_OPTION_END);
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
    if (pthread_create(&srv->reaper, NULL, reaper_main, srv) != 0) {
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
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

void http_conn_stats(const http_server *srv, http_conn_counts *out)
{
    http_server *s = (http_server *)srv;
    out->timed_out = atomic_load(&s->n_timed_out);
    out->evicted = atomic_load(&s->n_evicted);
    out->refused = atomic_load(&s->n_refused);
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
    if (srv->reaper_started) {
        atomic_store(&srv->reaper_stop, true);
        pthread_join(srv->reaper, NULL);
    }
    MHD_stop_daemon(srv->daemon);
    server_free(srv);
}
