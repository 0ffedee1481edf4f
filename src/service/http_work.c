/* http_work: see http_work.h.
 *
 * Handing a job to a sleeping thread costs a wake-up and a context switch,
 * which on a busy machine cost more than the job itself (a one-row query):
 * with a thread per job in flight, the CPU per request doubled. So only
 * `target` threads run jobs at once, at first one per CPU: a thread that
 * finishes a job takes the next one without sleeping, and the others sleep.
 * A job that waits on a database holds its thread, though, and must not
 * hold up the others: while jobs are queued, a monitor thread looks every
 * tick at how many running jobs are long (past LONG_JOB_US: waiting on
 * something, most likely) and lets that many more threads run, waking or
 * starting them. When the queue runs dry the target falls back the same
 * way: one per CPU plus the long jobs. Threads that leave (after linger_ms
 * idle) are joined by the next submit or by http_work_stop, so none is ever
 * detached. */
#include "http_work.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "../lib/util.h"
#include "sqlgate/clock.h"

#define MONITOR_TICK_MS 1
#define LONG_JOB_US     500

/* A worker running a job, listed for the monitor (on the worker's stack). */
typedef struct running_job {
    struct running_job *next, *prev;
    int64_t since_us;
} running_job;

struct http_work {
    pthread_mutex_t mu;
    pthread_cond_t work_cv;    /* monotonic: workers sleep here */
    pthread_cond_t monitor_cv; /* monotonic: the monitor sleeps here */
    pthread_cond_t gone_cv;    /* a thread left */
    http_job *head, *tail;     /* borrowed jobs, oldest first */
    unsigned queued;
    unsigned max_threads, threads, running, waking;
    unsigned base, target; /* threads allowed to run jobs at once */
    running_job *jobs;     /* the running ones */
    size_t stack_bytes;
    int64_t linger_ms;
    bool stopping;
    pthread_t monitor;
    bool monitor_started;
    pthread_t *exited; /* threads that left and are not joined yet */
    unsigned n_exited;
};

static void *worker_main(void *arg);

/* Starts a worker; lock held. */
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

/* Wakes or starts threads while jobs wait and the target allows; lock held. */
static void balance(http_work *w)
{
    if (w->waking > w->threads - w->running)
        w->waking = w->threads - w->running; /* a wake-up that went to another waiter */
    while (w->queued > w->waking && w->running + w->waking < w->target) {
        unsigned sleeping = w->threads - w->running - w->waking;
        if (sleeping > 0)
            pthread_cond_signal(&w->work_cv);
        else if (w->threads >= w->max_threads || !start_thread(w))
            return;
        w->waking++;
    }
}

/* Threads that may run jobs: the base plus one per long job; lock held. */
static unsigned wanted_target(const http_work *w)
{
    int64_t long_before = sg_clock_us() - LONG_JOB_US;
    unsigned t = w->base;
    for (const running_job *r = w->jobs; r != NULL; r = r->next)
        t += r->since_us < long_before;
    return t < w->max_threads ? t : w->max_threads;
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
    if (w->waking > 0)
        w->waking--; /* started for a job (balance) */
    for (;;) {
        int64_t linger_until = sg_clock_ms() + w->linger_ms;
        while (!w->stopping && (w->head == NULL || w->running >= w->target) &&
               sg_clock_ms() < linger_until) {
            sg_cond_wait_until(&w->work_cv, &w->mu, linger_until);
            if (w->waking > 0)
                w->waking--; /* woken for a job (or timed out: balance corrects) */
        }
        http_job *job = w->head;
        if (job == NULL || (!w->stopping && w->running >= w->target))
            break; /* lingered long enough, or stopping with nothing left */
        w->head = job->next;
        if (w->head == NULL)
            w->tail = NULL;
        w->queued--;
        w->running++;
        running_job me = {.next = w->jobs, .since_us = sg_clock_us()};
        if (w->jobs != NULL)
            w->jobs->prev = &me;
        w->jobs = &me;
        pthread_mutex_unlock(&w->mu);
        job->run(job); /* may free job */
        pthread_mutex_lock(&w->mu);
        if (me.prev != NULL)
            me.prev->next = me.next;
        else
            w->jobs = me.next;
        if (me.next != NULL)
            me.next->prev = me.prev;
        w->running--;
        if (w->head == NULL)
            w->target = wanted_target(w); /* dry: back to the base plus the long jobs */
    }
    w->exited[w->n_exited++] = pthread_self();
    w->threads--;
    pthread_cond_broadcast(&w->gone_cv);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void *monitor_main(void *arg)
{
    http_work *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stopping) {
        if (w->queued == 0) {
            pthread_cond_wait(&w->monitor_cv, &w->mu);
            continue;
        }
        sg_cond_wait_until(&w->monitor_cv, &w->mu, sg_clock_ms() + MONITOR_TICK_MS + 1);
        if (w->queued == 0)
            continue;
        /* A long job is most likely waiting (on a database): it does not
         * count against the threads that may run. */
        unsigned t = wanted_target(w);
        if (t > w->target)
            w->target = t;
        balance(w); /* also for a thread that left while jobs waited */
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

http_work *http_work_new(unsigned max_threads, unsigned base, size_t stack_bytes, int64_t linger_ms)
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
    if (sg_cond_init_monotonic(&w->monitor_cv) != 0) {
        pthread_cond_destroy(&w->work_cv);
        free(w->exited);
        free(w);
        return NULL;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->gone_cv, NULL);
    w->max_threads = max_threads;
    w->base = base < 1 ? 1 : base > max_threads ? max_threads : base;
    w->target = w->base;
    w->stack_bytes = stack_bytes;
    w->linger_ms = linger_ms;
    if (pthread_create(&w->monitor, NULL, monitor_main, w) != 0) {
        http_work_free(w);
        return NULL;
    }
    w->monitor_started = true;
    return w;
}

bool http_work_submit(http_work *w, http_job *job)
{
    pthread_mutex_lock(&w->mu);
    if (w->stopping) {
        pthread_mutex_unlock(&w->mu);
        return false;
    }
    join_exited(w);
    job->next = NULL;
    if (w->tail != NULL)
        w->tail->next = job;
    else
        w->head = job;
    w->tail = job;
    w->queued++;
    balance(w);
    if (w->threads == 0) {
        /* No thread runs and none could be started: take the job back. */
        w->head = w->tail = NULL;
        w->queued = 0;
        pthread_mutex_unlock(&w->mu);
        return false;
    }
    if (w->queued == 1)
        pthread_cond_signal(&w->monitor_cv);
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

void http_work_stop(http_work *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->work_cv);
    pthread_cond_broadcast(&w->monitor_cv);
    while (w->threads > 0)
        pthread_cond_wait(&w->gone_cv, &w->mu);
    join_exited(w);
    bool join_monitor = w->monitor_started;
    w->monitor_started = false;
    pthread_mutex_unlock(&w->mu);
    if (join_monitor)
        pthread_join(w->monitor, NULL);
}

void http_work_free(http_work *w)
{
    if (w == NULL)
        return;
    http_work_stop(w);
    pthread_cond_destroy(&w->gone_cv);
    pthread_cond_destroy(&w->monitor_cv);
    pthread_cond_destroy(&w->work_cv);
    pthread_mutex_destroy(&w->mu);
    free(w->exited);
    free(w);
}
