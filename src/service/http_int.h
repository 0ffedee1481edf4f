/* http_int: what the parts of the HTTP server share: http.c (libmicrohttpd's
 * callbacks, the request's life, routing, the server's start and stop),
 * http_reply.c (replies and the request accessors handlers use),
 * http_guard.c (tokens and scopes, framing, Host/Origin checks) and
 * http_conns.c (connection deadlines, caps and the reaper). Internal to
 * src/service; handlers see only http.h. */
#ifndef SQLGATE_HTTP_INT_H
#define SQLGATE_HTTP_INT_H

#include "http.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http_work.h"
#include "jsonw.h"
#include "log.h"
#include "trace.h"

#define MAX_SEGMENTS         8
#define CONNECTION_HEADROOM  64  /* past SQLGATE_MAX_CONNECTIONS: answered 503, then closed */
#define FD_RESERVE           256 /* descriptors kept for databases, files and logs */
#define CONNECTION_TIMEOUT_S 120 /* libmicrohttpd's inactivity backstop */
#define REAPER_PERIOD_MS     100
#define THREAD_STACK_BYTES   (256 * 1024)
#define EVENT_THREADS_MAX    4
#define WORKER_LINGER_MS     10000               /* an idle worker thread leaves after this */
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
    bool over_limit;     /* opened past SQLGATE_MAX_CONNECTIONS: its request gets 503 */
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
    int quiesced_fd;      /* owned: the listening socket after http_refuse_new, or -1 */
    atomic_bool stopping; /* http_stop began: streams are cut */
    atomic_uint inflight;
    bool events;             /* SQLGATE_CONNECTION_MODEL=events */
    http_work *work;         /* owned (events only): runs handlers that may wait, streams */
    unsigned max_conns;      /* SQLGATE_MAX_CONNECTIONS, as the descriptor limit allows */
    pthread_mutex_t idle_mu; /* with idle_cv: the last request in flight is done */
    pthread_cond_t idle_cv;  /* monotonic; http_wait_idle waits on it */

    pthread_mutex_t conns_lock;
    conn_entry *conns; /* live connections, newest first */
    unsigned n_live;   /* listed and not cut */
    pthread_t reaper;
    bool reaper_started;
    atomic_bool reaper_stop;
    atomic_ulong n_timed_out, n_evicted, n_refused, n_over_limit;

    pthread_mutex_t cfg_mu;   /* guards current */
    const sg_config *current; /* a reference: what requests beginning now see */
};

struct http_req {
    http_server *srv;
    const sg_config *cfg; /* a reference taken when the request began */
    struct MHD_Connection *conn;
    const http_route *route;
    const char *method;
    http_job job;               /* runs the handler on a worker (not HTTP_INLINE) */
    bool on_worker;             /* the handler runs on a worker */
    atomic_bool handled;        /* the worker is done with the handler: queue the reply */
    struct http_stream *stream; /* a streamed body, run by the worker after the handler */
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

/* --- Shared between the parts ---------------------------------------------- */

/* http.c */
/* Replaces the reply being built (resp owned from here; NULL: none) and adds
 * the headers every reply carries. */
void http_set_response(http_req *req, int status, struct MHD_Response *resp);
/* The trace id field of the request's traceparent into *f: 1, or 0 without. */
size_t http_trace_field(const http_req *req, log_field *f);
/* An error reply with code's status and message (static or copied). */
void http_reply_code(http_req *req, sg_code code, const char *message);
/* A reference to the configuration requests beginning now see (new ref). */
const sg_config *http_config_ref_current(http_server *srv);

/* http_stream.c: a streamed body (http_reply_stream). Produces it on the
 * calling worker until it is complete or nobody reads it, then drops the
 * worker's reference (s is not used afterwards). */
typedef struct http_stream http_stream;
void http_stream_run(http_stream *s);

/* http_guard.c */
/* One audit line (warn): a refusal or an admin action, with the token's
 * fingerprint; db and reason may be NULL. */
void http_audit_line(http_req *req, const char *db, int status, const char *outcome,
                     const char *reason);
/* How logs name the request's token: its fingerprint, that of an unknown
 * token presented, or "none" (static or the request's). */
const char *http_token_name(const http_req *req);
/* Finds the request's token (once the route is known). */
void http_guard_identify(const http_server *srv, http_req *req);
/* The route's token and scope checks; leaves a 401/403 reply on refusal. */
void http_guard_check_access(const http_server *srv, http_req *req);
/* Why the request's framing is ambiguous (static message), or NULL. */
const char *http_guard_framing_problem(struct MHD_Connection *conn);
/* Why a request without tokens configured is refused (static message), or
 * NULL. */
const char *http_guard_browser_problem(const http_server *srv, const http_req *req);

/* http_conns.c: libmicrohttpd's accept and connection callbacks, the phase
 * a connection is in (with its deadline, 0: none), and the reaper thread. */
enum MHD_Result http_conns_on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);
void http_conns_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe);
void http_conn_phase_set(http_server *srv, struct MHD_Connection *conn, conn_phase phase,
                         int64_t deadline_us);
/* Was conn opened past SQLGATE_MAX_CONNECTIONS (its requests get 503)? */
bool http_conn_over_limit(struct MHD_Connection *conn);
void *http_conns_reaper(void *arg);

#endif
