/* http_work: see http_work.h.
 *
 * The queue never holds more jobs than there are idle threads to take
 * them: a job that finds none starts a thread, so a request never waits
 * behind another one's slow query (only behind the maximum, which the
 * in-flight cap keeps out of reach). Threads that leave are joined by the
 * next submit or by http_work_free, so none is ever detached. */
#include "http_work.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "../lib/util.h"
#include "sqlgate/clock.h"

struct http_work {
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* monotonic: a job was queued, or stopping */
    pthread_cond_t gone_cv; /* a thread left */
    http_job *head, *tail;  /* borrowed jobs, oldest first */
    unsigned queued;
    unsigned max_threads, threads, idle;
    size_t stack_bytes;
    int64_t linger_ms;
    bool stopping;
    pthread_t *exited; /* threads that left and are not joined yet */
    unsigned n_exited;
};

http_work *http_work_new(unsigned max_threads, size_t stack_bytes, int64_t linger_ms)
{
    http_work *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->exited = calloc(max_threads, sizeof *w->exited);
    if (w->exited == NULL || sg_cond_init_monotonic(&w->work_cv) != 0) {
        free(w->exited);
        free(w);
        return NULL;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->gone_cv, NULL);
    w->max_threads = max_threads;
    w->stack_bytes = stack_bytes;
    w->linger_ms = linger_ms;
    return w;
}

/* Joins the threads that left; lock held (a leaving thread no longer needs
 * it once it is listed, so the join is short). */
static void join_exited(http_work *w)
{
    for (unsigned i = 0; i < w->n_exited; i++)
        pthread_join(w->exited[i], NULL);
    w->n_exited = 0;
}

static void *worker_main(void *arg)
{
    http_work *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        int64_t linger_until = sg_clock_ms() + w->linger_ms;
        while (w->head == NULL && !w->stopping && sg_clock_ms() < linger_until) {
            w->idle++;
            sg_cond_wait_until(&w->work_cv, &w->mu, linger_until);
            w->idle--;
        }
        http_job *job = w->head;
        if (job == NULL)
            break; /* lingered long enough, or stopping with nothing left */
        w->head = job->next;
        if (w->head == NULL)
            w->tail = NULL;
        w->queued--;
        pthread_mutex_unlock(&w->mu);
        job->run(job); /* may free job */
        pthread_mutex_lock(&w->mu);
    }
    w->exited[w->n_exited++] = pthread_self();
    w->threads--;
    pthread_cond_broadcast(&w->gone_cv);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Starts a thread; lock held. */
static bool start_thread(http_work *w)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, w->stack_bytes);
    pthread_t t;
    bool ok = pthread_create(&t, &attr, worker_main, w) == 0;
    pthread_attr_destroy(&attr);
    if (ok)
        w->threads++;
    return ok;
}

bool http_work_submit(http_work *w, http_job *job)
{
    pthread_mutex_lock(&w->mu);
    join_exited(w);
    /* One idle thread per queued job, or a new thread for this one. */
    if (w->queued + 1 > w->idle && w->threads < w->max_threads && !start_thread(w) &&
        w->threads == 0) {
        pthread_mutex_unlock(&w->mu);
        return false;
    }
    job->next = NULL;
    if (w->tail != NULL)
        w->tail->next = job;
    else
        w->head = job;
    w->tail = job;
    w->queued++;
    pthread_cond_signal(&w->work_cv);
    pthread_mutex_unlock(&w->mu);
    return true;
}

unsigned http_work_threads(http_work *w)
{
    pthread_mutex_lock(&w->mu);
    unsigned n = w->threads;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void http_work_free(http_work *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->work_cv);
    while (w->threads > 0)
        pthread_cond_wait(&w->gone_cv, &w->mu);
    join_exited(w);
    pthread_mutex_unlock(&w->mu);
    pthread_cond_destroy(&w->gone_cv);
    pthread_cond_destroy(&w->work_cv);
    pthread_mutex_destroy(&w->mu);
    free(w->exited);
    free(w);
}
