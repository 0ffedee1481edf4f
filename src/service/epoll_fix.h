/* epoll_fix: libmicrohttpd 0.9.75's event threads handle a full batch of
 * ready connections at once instead of waiting first (docs/reliability.md,
 * "Event batches").
 *
 * MHD_epoll reads its epoll set 128 events at a time, and after a read that
 * returns a full batch it reads again before handling what it read. 0.9.75
 * makes that second read with the timeout it computed before the first (the
 * nearest connection timeout, or none). When nothing else comes to that
 * thread, because each of those 128 clients is waiting for its answer, the
 * batch waits for the next event or for that timeout. Later libmicrohttpd
 * releases do not wait there; this module makes 0.9.75 behave the same.
 *
 * It defines epoll_wait for the whole process: the program's definition is
 * found before libc's when libmicrohttpd's calls are bound. A call made on
 * the same thread and epoll descriptor as a call that returned a full batch
 * does not wait (timeout 0); the wait after that one keeps its timeout, so
 * no loop spins. Every call goes to epoll_pwait with no signal mask, which
 * is what epoll_wait is. With a libmicrohttpd that already polls there,
 * nothing changes. */
#ifndef SQLGATE_EPOLL_FIX_H
#define SQLGATE_EPOLL_FIX_H

#include <stdint.h>

/* The waits that did not wait because they followed a full batch, so far
 * (all threads). */
uint64_t epoll_fix_skipped_waits(void);

#endif
