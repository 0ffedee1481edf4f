/* notify: see notify.h. */
#include "notify.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "reload.h"
#include "sqlgate/sqlgate.h"

/* How often the thread looks whether every database had its first check. */
#define FIRST_CHECK_POLL_MS 20

struct notifier {
    app *a; /* borrowed */
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* CLOCK_MONOTONIC */
    bool stopping;       /* STOPPING=1 sent: no READY=1 after it */
    bool quit;           /* notify_stop: the thread ends */
    int64_t watchdog_us; /* interval between WATCHDOG=1; 0: none */
};

void notify_send(const app_env *env, const char *state)
{
    const char *path = app_env_lookup((void *)env, "NOTIFY_SOCKET");
    if (path == NULL || (path[0] != '/' && path[0] != '@'))
        return;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof addr.sun_path)
        return;
    memcpy(addr.sun_path, path, len);
    if (path[0] == '@')
        addr.sun_path[0] = '\0'; /* abstract namespace: the length says where it ends */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    ssize_t rc = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&addr,
                        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    (void)rc;
    close(fd);
}

/* WATCHDOG_USEC / 2 in microseconds when the watchdog is meant for this
 * process, else 0. */
static int64_t watchdog_interval(const app_env *env)
{
    const char *usec = app_env_lookup((void *)env, "WATCHDOG_USEC");
    if (usec == NULL || usec[0] == '\0')
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(usec, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0 || v > (unsigned long long)INT64_MAX)
        return 0;
    const char *pid = app_env_lookup((void *)env, "WATCHDOG_PID");
    if (pid != NULL && pid[0] != '\0') {
        unsigned long long p = strtoull(pid, &end, 10);
        if (*end != '\0' || p != (unsigned long long)getpid())
            return 0;
    }
    return (int64_t)(v / 2 > 0 ? v / 2 : 1);
}

/* True once no database is still waiting for its first check. Reads every
 * database's health snapshot (never waits on a database itself). */
static bool first_checks_done(sg_registry *reg)
{
    size_t n;
    sg_db **dbs = sg_registry_acquire_all(reg, &n);
    if (dbs == NULL && sg_registry_count(reg) > 0)
        return false; /* out of memory: look again */
    bool done = true;
    for (size_t i = 0; done && i < n; i++) {
        sg_db_health h;
        sg_db_health_get(dbs[i], &h);
        done = h.state != SG_STATE_STARTING;
    }
    sg_registry_release_all(reg, dbs, n);
    return done;
}

/* Sleeps until `until_us` (monotonic) or notify_stop; lock held. False when
 * told to quit. */
static bool wait_until(notifier *nt, int64_t until_us)
{
    while (!nt->quit) {
        int64_t now = sg_clock_us();
        if (now >= until_us)
            return true;
        struct timespec ts = {.tv_sec = (time_t)(until_us / 1000000),
                              .tv_nsec = (long)(until_us % 1000000) * 1000L};
        pthread_cond_timedwait(&nt->cv, &nt->mu, &ts);
    }
    return false;
}

static void *notify_main(void *arg)
{
    notifier *nt = arg;
    const app_env *env = nt->a->env;
    pthread_mutex_lock(&nt->mu);
    /* Start: READY=1 once the databases had their first checks. */
    bool ready = false;
    while (!ready && !nt->quit && !nt->stopping) {
        pthread_mutex_unlock(&nt->mu);
        ready = first_checks_done(nt->a->reg);
        pthread_mutex_lock(&nt->mu);
        if (ready && !nt->stopping) {
            atomic_store(&nt->a->notified_ready, true);
            notify_send(env, "READY=1");
        } else if (!ready)
            wait_until(nt, sg_clock_us() + FIRST_CHECK_POLL_MS * 1000);
    }
    /* Then the watchdog: the first WATCHDOG=1 goes with readiness, since
     * systemd's watchdog timer runs from the start, not from READY=1. Each
     * one first reads every database's health as /health does (the registry,
     * pool and database locks, in their order): a deadlock there stops the
     * watchdog and systemd restarts the service. */
    int64_t next = sg_clock_us();
    while (nt->watchdog_us > 0 && !nt->quit) {
        pthread_mutex_unlock(&nt->mu);
        (void)first_checks_done(nt->a->reg);
        pthread_mutex_lock(&nt->mu);
        if (nt->quit)
            break;
        notify_send(env, "WATCHDOG=1");
        next += nt->watchdog_us;
        if (next < sg_clock_us())
            next = sg_clock_us(); /* overslept (a stopped process): no burst */
        wait_until(nt, next);
    }
    pthread_mutex_unlock(&nt->mu);
    return NULL;
}

notifier *notify_start(app *a, sg_err *err)
{
    notifier *nt = calloc(1, sizeof *nt);
    if (nt == NULL)
        goto fail_alloc;
    nt->a = a;
    pthread_mutex_init(&nt->mu, NULL);
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        goto fail_attr;
    bool cv_ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
                 pthread_cond_init(&nt->cv, &attr) == 0;
    pthread_condattr_destroy(&attr);
    if (!cv_ok)
        goto fail_attr;
    const char *sock = app_env_lookup((void *)a->env, "NOTIFY_SOCKET");
    if (sock == NULL || sock[0] == '\0')
        return nt; /* not under systemd: nothing to do */
    nt->watchdog_us = watchdog_interval(a->env);
    if (pthread_create(&nt->thread, NULL, notify_main, nt) != 0)
        goto fail_thread;
    nt->started = true;
    return nt;

fail_thread:
    pthread_cond_destroy(&nt->cv);
fail_attr:
    pthread_mutex_destroy(&nt->mu);
    free(nt);
fail_alloc:
    sg_err_set(err, SG_INTERNAL, "cannot start the systemd notifier");
    return NULL;
}

void notify_stopping(notifier *nt)
{
    if (nt == NULL)
        return;
    pthread_mutex_lock(&nt->mu);
    nt->stopping = true;
    pthread_mutex_unlock(&nt->mu);
    notify_send(nt->a->env, "STOPPING=1");
}

void notify_stop(notifier *nt)
{
    if (nt == NULL)
        return;
    pthread_mutex_lock(&nt->mu);
    nt->quit = true;
    pthread_cond_signal(&nt->cv);
    pthread_mutex_unlock(&nt->mu);
    if (nt->started)
        pthread_join(nt->thread, NULL);
    pthread_cond_destroy(&nt->cv);
    pthread_mutex_destroy(&nt->mu);
    free(nt);
}
