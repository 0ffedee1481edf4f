/* epoll_fix: see epoll_fix.h. */
#include "epoll_fix.h"

#include <stdatomic.h>
#include <stddef.h>
#include <sys/epoll.h>

/* The epoll descriptor whose last wait on this thread returned a full
 * batch, or -1. */
static _Thread_local int full_batch_fd = -1;
static atomic_uint_fast64_t skipped;

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

uint64_t epoll_fix_skipped_waits(void)
{
    return atomic_load_explicit(&skipped, memory_order_relaxed);
}
