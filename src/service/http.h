/* http: the libmicrohttpd server, one route table and one dispatcher.
 *
 * Threads, two models (SQLGATE_CONNECTION_MODEL):
 *   - threads (the default): libmicrohttpd gives every client connection a
 *     thread of its own (at most 1024), so a request that waits on a
 *     database never holds up another request, a health probe or the accept
 *     loop. The least CPU per request: the thread that reads a request runs
 *     it and writes the answer.
 *   - events: a few libmicrohttpd event threads (epoll) hold every client
 *     connection, so an idle kept-alive connection costs a few kilobytes and
 *     no thread (SQLGATE_MAX_CONNECTIONS of them). A request whose route may
 *     wait on a database is suspended and handed to a worker thread
 *     (http_work.h), so it never holds up another request, a health probe
 *     (HTTP_INLINE: answered on the event thread) or the accept loop; a
 *     streamed body is produced on that worker too (http_stream.c). The two
 *     hand-offs cost CPU per request (docs/benchmarks.md, S1).
 *
 * The dispatcher does, once for every route: request ids, route and method
 * matching (404/405 with Allow), bearer tokens (401) and the scopes its route
 * flags name (403; docs/security.md), JSON body checks
 * (415/413), the overload limit, the shutdown refusal, error rendering and
 * the access log. Handlers receive a request whose body is complete and
 * answer it with exactly one http_reply_* call.
 */
#ifndef SQLGATE_HTTP_H
#define SQLGATE_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sqlgate/config.h"
#include "sqlgate/error.h"
#include "sqlgate/tokens.h"

typedef struct http_server http_server;
typedef struct http_req http_req;

typedef void (*http_handler_fn)(http_req *req, void *app);

/* Access checks, made by the dispatcher before the body is read, except
 * HTTP_SCOPE_DB: the database is known only to the handler (the path's {name}
 * resolved through the registry, or the body's "database"), so the handler
 * calls http_req_allow_db, and the dispatcher answers INTERNAL for a
 * successful reply of such a route that never made that call. When no token
 * is configured every request carries every scope (sg_token_anonymous). */
enum http_route_flags {
    HTTP_AUTH = 1u << 0,          /* needs a valid bearer token when tokens are configured: 401 */
    HTTP_JSON_BODY = 1u << 1,     /* has a JSON body: Content-Type checked, size capped */
    HTTP_SCOPE_DB = 1u << 2,      /* the token needs db= scope for the target database: 403 */
    HTTP_SCOPE_ADMIN = 1u << 3,   /* the token needs admin: 403 "needs admin" */
    HTTP_SCOPE_ALL_DBS = 1u << 4, /* the token needs db=* (POST /v1/admin/reload: with
                                     HTTP_AUTH | HTTP_SCOPE_ADMIN) */
    HTTP_SCOPE_METRICS = 1u << 5, /* with SQLGATE_METRICS_ACCESS=token: a valid token (401)
                                     with the metrics scope (403); else open */
    HTTP_INLINE = 1u << 6,        /* answers from kept state, never waits: runs on the event
                                     thread; other handlers run on a worker thread */
};

typedef struct http_route {
    const char *method;  /* "GET" (also answers HEAD) or "POST" */
    const char *pattern; /* "/v1/databases/{name}/query": {x} matches one segment */
    http_handler_fn handler;
    unsigned flags;
} http_route;

/* Most concurrent requests served; more get OVERLOADED. */
#define HTTP_MAX_INFLIGHT 1024

/* Called once per completed request (on an event thread) with the
 * matched route (NULL if none), the status sent and the time from the
 * request's arrival to its completion; for metrics. */
typedef void (*http_observe_fn)(void *app, const http_route *route, int status,
                                int64_t duration_us);

/* Starts listening on cfg's address (HTTPS only when cfg has TLS files).
 * cfg is also the configuration requests are served with (tokens, body
 * limit; http_req_config) until http_set_config; the server takes its own
 * reference. routes (borrowed, static) and app (borrowed, passed to
 * handlers) must outlive the server. NULL with err: SG_BAD_REQUEST when the TLS files are
 * unusable (a configuration problem), SG_INTERNAL otherwise. */
http_server *http_start(const sg_config *cfg, const http_route *routes, size_t n_routes, void *app,
                        http_observe_fn observe, sg_err *err);

/* Requests that begin from now on are served with cfg (a reload): the
 * server takes a reference and drops the one it held. A request keeps the
 * snapshot it began with until it completes. Thread-safe. The listen
 * address and TLS files are the start's whatever cfg says. */
void http_set_config(http_server *srv, const sg_config *cfg);

/* The port actually bound (SQLGATE_LISTEN may say 0). */
int http_port(const http_server *srv);

/* Shutdown step 2: the listening socket stops listening (new connections
 * are refused; http_stop closes it) and requests that still arrive on open
 * connections are answered with SHUTTING_DOWN and "Connection: close". */
void http_refuse_new(http_server *srv);

/* Connections sqlgate closed itself, since the start. */
typedef struct http_conn_counts {
    unsigned long timed_out;  /* past SQLGATE_HEADER_TIMEOUT_MS, _IDLE_TIMEOUT_MS or a
                                 response deadline */
    unsigned long evicted;    /* idle, closed to make room (per-client cap, global limit) */
    unsigned long refused;    /* a client at SQLGATE_MAX_CONNECTIONS_PER_CLIENT, all busy */
    unsigned long over_limit; /* past SQLGATE_MAX_CONNECTIONS, none idle: answered 503 */
} http_conn_counts;
void http_conn_stats(const http_server *srv, http_conn_counts *out);

/* Requests received and not yet completely answered. */
unsigned http_inflight(const http_server *srv);

/* Sleeps until no request is in flight (woken by the last one's completion)
 * or deadline_ms (sg_clock_ms) has passed; returns the number still in
 * flight. */
unsigned http_wait_idle(http_server *srv, int64_t deadline_ms);

/* Cuts streamed bodies, waits for the workers (a handler still waiting on
 * a database holds this up), closes every connection, joins the server's
 * threads and frees srv. Accepts NULL. */
void http_stop(http_server *srv);

/* --- For handlers -------------------------------------------------------- */

/* Value of path parameter {name}; borrowed, valid during the handler. */
const char *http_req_param(const http_req *req, const char *name);
/* Request body (NUL-terminated; len may be NULL); borrowed. */
const char *http_req_body(const http_req *req, size_t *len);
/* Request header value, or NULL; borrowed. */
const char *http_req_header(const http_req *req, const char *name);
#define HTTP_REQUEST_ID_MAX 64 /* bytes of a request id */
const char *http_req_id(const http_req *req);
/* The trace id (32 lowercase hex digits) of the request's W3C traceparent,
 * or NULL when it carried no valid one; borrowed, valid during the request.
 * Log lines that name the request id name it too. */
#define HTTP_TRACE_ID_MAX 32
const char *http_req_trace_id(const http_req *req);
int64_t http_req_start_us(const http_req *req); /* monotonic, sg_clock_us */
const char *http_req_method(const http_req *req);
/* The request's token: the matching configured token, sg_token_anonymous()
 * when no token is configured, or NULL when none (or an unknown one) was
 * presented. Borrowed from the configuration snapshot the request was
 * screened against; valid until the request completes. */
const sg_token *http_req_token(const http_req *req);
/* True when the request may see health details under `setting`:
 * always; never; authorized = it carries a valid token (or none is
 * configured). */
bool http_req_details_allowed(const http_req *req, sg_health_details setting);
/* The one check of database scope (see HTTP_SCOPE_DB). `name` is the real
 * database name, or, when the name given does not exist, the name as given.
 * True when the token may use it. Otherwise answers 403 FORBIDDEN ("this
 * token has no scope for database <name>"; audited) and returns false: a
 * token without db=* gets 403 for unknown names too, so it cannot probe which
 * databases exist. */
bool http_req_allow_db(http_req *req, const char *name);
/* Writes an audit line: token fingerprint, method, route, db (may be NULL),
 * status and outcome ("ok", "refused", ...). Refusals (401, 403) are audited
 * by http_reply_error itself; handlers call this for admin actions (pause,
 * resume, reconnect; a reload route would call it with db NULL and its
 * outcome, after being declared with HTTP_AUTH | HTTP_SCOPE_ADMIN |
 * HTTP_SCOPE_ALL_DBS so that only an admin token with db=* reaches it). */
void http_audit(http_req *req, const char *db, int status, const char *outcome);
/* The configuration snapshot this request is served with (tokens, limits),
 * taken when it began; borrowed, valid during the handler (a streamed body
 * that needs it later takes its own reference with sg_config_ref). */
const sg_config *http_req_config(const http_req *req);
/* Records the database a request used, for the access log (copied). */
void http_req_set_db(http_req *req, const char *name);
/* The response must be sent completely within within_ms from now plus
 * SQLGATE_WRITE_GRACE_MS, else the connection is cut (a streamed body is then
 * freed, ending its query). Without it a response gets SQLGATE_IDLE_TIMEOUT_MS. */
void http_req_limit_response(http_req *req, int64_t within_ms);
/* Records the query's operation name, for the access log (copied, may be NULL). */
void http_req_set_operation(http_req *req, const char *operation);

/* Answers with a JSON document (steals body). */
void http_reply_json(http_req *req, int status, json_t *body);
/* Answers with the error document (docs/errors.md) for err (status from its code;
 * Retry-After on 503; "Connection: close" for SHUTTING_DOWN; an audit line
 * for UNAUTHORIZED and FORBIDDEN). */
void http_reply_error(http_req *req, const sg_err *err);
/* Answers with bytes (steals data, from malloc). */
void http_reply_bytes(http_req *req, int status, const char *content_type, char *data, size_t len);
/* Answers with bytes that outlive the server (not copied). */
void http_reply_static(http_req *req, int status, const char *content_type, const void *data,
                       size_t len);
/* Adds a header to the reply just made. */
void http_reply_header(http_req *req, const char *name, const char *value);

/* A streamed body. fill() writes up to max bytes into buf and returns the
 * count (> 0), HTTP_STREAM_END when done or HTTP_STREAM_ERROR to abort the
 * connection (the client sees a truncated transfer). done() frees cls; it is
 * called exactly once, also when the client goes away mid-stream. Both run
 * on the connection's thread (threads model) or on the handler's worker
 * after the handler returned (events model, where an HTTP_INLINE handler
 * may not stream). */
#define HTTP_STREAM_END   ((ssize_t)-1)
#define HTTP_STREAM_ERROR ((ssize_t)-2)
typedef ssize_t (*http_stream_fill_fn)(void *cls, char *buf, size_t max);
typedef void (*http_stream_done_fn)(void *cls);
void http_reply_stream(http_req *req, int status, const char *content_type,
                       http_stream_fill_fn fill, http_stream_done_fn done, void *cls);

#endif
