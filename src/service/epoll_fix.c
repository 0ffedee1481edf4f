/* epoll_fix: see epoll_fix.h. */
#include "epoll_fix.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The epoll descriptor whose last wait on this thread returned a full
 * batch, or -1. */
static _Thread_local int full_batch_fd = -1;
static atomic_uint_fast64_t skipped;
static atomic_uint_fast64_t repeated_removals;

/* ThreadSanitizer's own epoll_ctl, in a program built with it (NULL
 * otherwise): its record of which thread registered what must see every
 * call. */
extern int __interceptor_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
    __attribute__((weak));

int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
    if (full_batch_fd == epfd && timeout != 0) {
        timeout = 0;
        atomic_fetch_add_explicit(&skipped, 1, memory_order_relaxed);
    }
    int n = epoll_pwait(epfd, events, maxevents, timeout, NULL);
    full_batch_fd = n > 0 && n == maxevents ? epfd : -1;
    return n;
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    int rc = __interceptor_epoll_ctl != NULL ? __interceptor_epoll_ctl(epfd, op, fd, ev)
                                             : (int)syscall(SYS_epoll_ctl, epfd, op, fd, ev);
    if (rc != 0 && op == EPOLL_CTL_DEL && errno == ENOENT) {
        atomic_fetch_add_explicit(&repeated_removals, 1, memory_order_relaxed);
        return 0;
    }
    return rc;
}

uint64_t epoll_fix_skipped_waits(void)
{
    return atomic_load_explicit(&skipped, memory_order_relaxed);
}

uint64_t epoll_fix_repeated_removals(void)
{
    return atomic_load_explicit(&repeated_removals, memory_order_relaxed);
}
