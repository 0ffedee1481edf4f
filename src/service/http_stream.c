/* http_stream: a streamed response body.
 *
 * With a thread per connection (SQLGATE_CONNECTION_MODEL=threads) the body
 * is direct: libmicrohttpd calls the handler's fill function on the
 * connection's thread, which may wait on the database, and the response's
 * free callback calls done.
 *
 * With event threads, the handler's fill function runs
 * on the worker thread that ran the handler (it reads rows from a database
 * and may wait on it); libmicrohttpd's event thread only copies out what
 * is ready. Between them sits one buffer:
 *
 *   - the worker fills buf[len..] (never more than STREAM_CHUNK at a time)
 *     without the lock, since only it moves len, and publishes under it;
 *   - the event thread copies buf[off..len) out under the lock; with
 *     nothing ready it suspends the connection, and the worker resumes it
 *     when there is (both under the lock, so a resume never comes first);
 *   - with the buffer full the worker waits: a client that reads slowly
 *     slows its query down instead of filling memory.
 *
 * Two references keep the stream: the response's (dropped when
 * libmicrohttpd destroys it: sent, or the connection closed) and the
 * worker's. The worker calls done (which ends the query) once the body is
 * complete or nobody reads it any more; the last reference frees. */
#include "http_int.h"

#include <stdlib.h>
#include <string.h>

#include "../lib/util.h"
#include "sqlgate/clock.h"

#define STREAM_CHUNK   (32 * 1024)
#define STREAM_BUF     (2 * STREAM_CHUNK)
#define STREAM_TICK_MS 200 /* a waiting worker looks at the server's stop flag */

struct http_stream {
    pthread_mutex_t mu;
    pthread_cond_t space_cv; /* monotonic: the reader took bytes, or left */
    char buf[STREAM_BUF];
    size_t off, len;     /* unsent: buf[off..len) */
    bool ended, failed;  /* the worker is done (failed: cut the transfer) */
    bool reader_gone;    /* the response was destroyed */
    bool reader_waiting; /* the connection is suspended until there is data */
    int refs;
    struct MHD_Connection *conn;
    const atomic_bool *stopping; /* the server's */
    http_stream_fill_fn fill;
    http_stream_done_fn done;
    void *cls;
};

static void stream_unref(http_stream *s)
{
    pthread_mutex_lock(&s->mu);
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (!last)
        return;
    pthread_cond_destroy(&s->space_cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* libmicrohttpd's content reader, on its event thread. */
static ssize_t stream_reader(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    http_stream *s = cls;
    pthread_mutex_lock(&s->mu);
    if (s->len > s->off) {
        size_t n = s->len - s->off < max ? s->len - s->off : max;
        memcpy(out, s->buf + s->off, n);
        s->off += n;
        pthread_cond_signal(&s->space_cv);
        pthread_mutex_unlock(&s->mu);
        return (ssize_t)n;
    }
    if (s->ended) {
        bool failed = s->failed;
        pthread_mutex_unlock(&s->mu);
        return failed ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
    }
    /* Nothing yet: libmicrohttpd asks again once resumed. */
    s->reader_waiting = true;
    MHD_suspend_connection(s->conn);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* The response was destroyed (on the event thread). */
static void stream_reader_free(void *cls)
{
    http_stream *s = cls;
    pthread_mutex_lock(&s->mu);
    s->reader_gone = true;
    pthread_cond_signal(&s->space_cv);
    pthread_mutex_unlock(&s->mu);
    stream_unref(s);
}

/* Lock held. */
static void wake_reader(http_stream *s)
{
    if (s->reader_waiting) {
        s->reader_waiting = false;
        MHD_resume_connection(s->conn);
    }
}

/* --- Event threads: produced on the worker ----------------------------------------- */

void http_stream_run(http_stream *s)
{
    pthread_mutex_lock(&s->mu);
    while (!s->reader_gone) {
        if (atomic_load(s->stopping)) {
            s->ended = s->failed = true; /* the server stops: cut it */
            break;
        }
        if (s->off == s->len)
            s->off = s->len = 0;
        if (STREAM_BUF - s->len < STREAM_CHUNK) {
            if (s->off > 0) {
                memmove(s->buf, s->buf + s->off, s->len - s->off);
                s->len -= s->off;
                s->off = 0;
            } else {
                sg_cond_wait_until(&s->space_cv, &s->mu, sg_clock_ms() + STREAM_TICK_MS);
            }
            continue;
        }
        size_t at = s->len;
        pthread_mutex_unlock(&s->mu);
        ssize_t n = s->fill(s->cls, s->buf + at, STREAM_CHUNK);
        pthread_mutex_lock(&s->mu);
        if (n < 0) {
            s->ended = true;
            s->failed = n != HTTP_STREAM_END;
        } else {
            s->len += (size_t)n;
        }
        wake_reader(s);
        if (s->ended)
            break;
    }
    wake_reader(s);
    pthread_mutex_unlock(&s->mu);
    s->done(s->cls);
    stream_unref(s);
}

/* --- Direct: a thread per connection ------------------------------------------ */

typedef struct direct_stream {
    http_stream_fill_fn fill;
    http_stream_done_fn done;
    void *cls;
} direct_stream;

static ssize_t direct_reader(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    direct_stream *d = cls;
    ssize_t n = d->fill(d->cls, out, max);
    if (n == HTTP_STREAM_END)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (n < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    return n;
}

static void direct_free(void *cls)
{
    direct_stream *d = cls;
    d->done(d->cls);
    free(d);
}

/* --- Either --------------------------------------------------------------------- */

/* Sets req's reply to a body read through reader (cls freed by free_cb);
 * false when it cannot be made (nothing was taken). */
static bool set_stream_response(http_req *req, int status, const char *content_type,
                                MHD_ContentReaderCallback reader,
                                MHD_ContentReaderFreeCallback free_cb, void *cls)
{
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_CHUNK, reader, cls, free_cb);
    if (resp == NULL)
        return false;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    http_set_response(req, status, resp);
    return true;
}

static void refuse_stream(http_req *req, const char *why, http_stream_done_fn done, void *cls)
{
    done(cls);
    sg_err err;
    sg_err_set(&err, SG_INTERNAL, "%s", why);
    http_reply_error(req, &err);
}

void http_reply_stream(http_req *req, int status, const char *content_type,
                       http_stream_fill_fn fill, http_stream_done_fn done, void *cls)
{
    static const char cannot[] = "cannot create a streamed response";
    if (!req->srv->events) {
        direct_stream *d = malloc(sizeof *d);
        if (d != NULL)
            *d = (direct_stream){.fill = fill, .done = done, .cls = cls};
        if (d == NULL ||
            !set_stream_response(req, status, content_type, direct_reader, direct_free, d)) {
            free(d);
            refuse_stream(req, cannot, done, cls);
        }
        return;
    }
    if (!req->on_worker || req->stream != NULL) {
        /* Only a worker can feed a body (http.h); one per request. */
        refuse_stream(req, "a streamed response outside a worker", done, cls);
        return;
    }
    http_stream *s = calloc(1, sizeof *s);
    if (s != NULL && sg_cond_init_monotonic(&s->space_cv) != 0) {
        free(s);
        s = NULL;
    }
    if (s == NULL) {
        refuse_stream(req, cannot, done, cls);
        return;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->refs = 2;
    s->conn = req->conn;
    s->stopping = &req->srv->stopping;
    s->fill = fill;
    s->done = done;
    s->cls = cls;
    if (!set_stream_response(req, status, content_type, stream_reader, stream_reader_free, s)) {
        pthread_cond_destroy(&s->space_cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        refuse_stream(req, cannot, done, cls);
        return;
    }
    req->stream = s; /* the worker runs it once the reply is on its way */
}
