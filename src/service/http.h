/* http: the libmicrohttpd server, one route table and one dispatcher.
 *
 * Threads: libmicrohttpd accepts on its own thread and gives every client
 * connection a thread of its own, so a request that waits on a database
 * (bounded by that database's acquire and query timeouts) never holds up
 * another request, a health probe or the accept loop.
 *
 * The dispatcher does, once for every route: request ids, route and method
 * matching (404/405 with Allow), bearer tokens (401), JSON body checks
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

typedef struct http_server http_server;
typedef struct http_req http_req;

typedef void (*http_handler_fn)(http_req *req, void *app);

enum http_route_flags {
    HTTP_AUTH = 1u << 0,      /* needs a bearer token when tokens are configured */
    HTTP_JSON_BODY = 1u << 1, /* has a JSON body: Content-Type checked, size capped */
};

typedef struct http_route {
    const char *method;  /* "GET" (also answers HEAD) or "POST" */
    const char *pattern; /* "/v1/databases/{name}/query": {x} matches one segment */
    http_handler_fn handler;
    unsigned flags;
} http_route;

/* Most concurrent requests served; more get OVERLOADED. */
#define HTTP_MAX_INFLIGHT 1024

/* Called once per completed request (on its connection thread) with the
 * matched route (NULL if none) and the status sent; for metrics. */
typedef void (*http_observe_fn)(void *app, const http_route *route, int status);

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

/* Shutdown step 2: closes the listening socket (new connections are refused)
 * and answers requests that still arrive on open connections with
 * SHUTTING_DOWN and "Connection: close". */
void http_refuse_new(http_server *srv);

/* Requests received and not yet completely answered. */
unsigned http_inflight(const http_server *srv);

/* Closes every connection, joins the server's threads and frees srv.
 * Accepts NULL. */
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
int64_t http_req_start_us(const http_req *req); /* monotonic, sg_clock_us */
const char *http_req_method(const http_req *req);
/* The configuration snapshot this request is served with (tokens, limits),
 * taken when it began; borrowed, valid during the handler (a streamed body
 * that needs it later takes its own reference with sg_config_ref). */
const sg_config *http_req_config(const http_req *req);
/* Records the database a request used, for the access log (copied). */
void http_req_set_db(http_req *req, const char *name);
/* Records the query's operation name, for the access log (copied, may be NULL). */
void http_req_set_operation(http_req *req, const char *operation);

/* Answers with a JSON document (steals body). */
void http_reply_json(http_req *req, int status, json_t *body);
/* Answers with the contract's error document for err (status from its code;
 * Retry-After on 503; "Connection: close" for SHUTTING_DOWN). */
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
 * called exactly once, also when the client goes away mid-stream. */
#define HTTP_STREAM_END   ((ssize_t)-1)
#define HTTP_STREAM_ERROR ((ssize_t)-2)
typedef ssize_t (*http_stream_fill_fn)(void *cls, char *buf, size_t max);
typedef void (*http_stream_done_fn)(void *cls);
void http_reply_stream(http_req *req, int status, const char *content_type,
                       http_stream_fill_fn fill, http_stream_done_fn done, void *cls);

#endif
