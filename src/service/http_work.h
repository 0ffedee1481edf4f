/* http_work: the threads that run what may block (a handler that waits on a
 * database, the body of a streamed response) so that libmicrohttpd's event
 * threads never do. A few threads run jobs back to back; when all of them
 * wait on something (a database) while jobs are queued, another is woken
 * or started within a couple of milliseconds, up to a maximum; a thread
 * leaves after a while without work. Idle kept-alive connections cost no
 * thread, and a burst's threads do not stay. */
#ifndef SQLGATE_HTTP_WORK_H
#define SQLGATE_HTTP_WORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct http_work http_work;

/* A job: owned by whoever submits it, which must keep it alive until run
 * has been called. run is called once, on a worker thread. */
typedef struct http_job {
    struct http_job *next; /* the queue's */
    void (*run)(struct http_job *job);
} http_job;

/* A pool of at most max_threads threads of stack_bytes each, base of them
 * running jobs at once while none waits on anything (one per CPU suits),
 * which leave after linger_ms without a job (new), or NULL when out of
 * memory. Its monitor thread starts now, workers with the first job. */
http_work *http_work_new(unsigned max_threads, unsigned base, size_t stack_bytes,
                         int64_t linger_ms);
/* Queues job (borrowed until run). False when no thread runs and none could
 * be started, or once http_work_stop began: the job was not queued. */
bool http_work_submit(http_work *w, http_job *job);
/* Threads running now (for tests). */
unsigned http_work_threads(http_work *w);
/* Runs every queued job and waits for the threads to finish; later submits
 * are refused. NULL is ignored. */
void http_work_stop(http_work *w);
/* Stops w (if not yet) and frees it. Nothing may submit from this call on.
 * NULL is ignored. */
void http_work_free(http_work *w);

#endif
