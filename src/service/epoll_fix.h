/* epoll_fix: two defects of libmicrohttpd 0.9.75's event threads, mended
 * from outside (docs/reliability.md, "Event batches" and "Listening socket
 * at shutdown"). The module defines epoll_wait and epoll_ctl for the whole
 * process: the program's definitions are found before libc's when
 * libmicrohttpd's calls are bound. With a libmicrohttpd that has neither
 * defect, nothing changes.
 *
 * A full batch waits. MHD_epoll reads its epoll set 128 events at a time,
 * and after a read that returns a full batch it reads again before handling
 * what it read. 0.9.75 makes that second read with the timeout it computed
 * before the first (the nearest connection timeout, or none). When nothing
 * else comes to that thread, because each of those 128 clients is waiting
 * for its answer, the batch waits for the next event or for that timeout.
 * Later releases do not wait there. Here a call made on the same thread and
 * epoll descriptor as a call that returned a full batch does not wait
 * (timeout 0); the wait after that one keeps its timeout, so no loop spins.
 * Every call goes to epoll_pwait with no signal mask, which is what
 * epoll_wait is.
 *
 * Quiescing can abort. MHD_quiesce_daemon takes the listening socket out of
 * each event thread's epoll set, while an event thread that has already seen
 * the quiesce may take it out of its own set too. Whichever comes second
 * fails with ENOENT, and in two of those three places 0.9.75 aborts the
 * process on any failure. Here removing a descriptor that is not in the set
 * succeeds: the set is as the caller asked. Other calls and failures are
 * unchanged (through ThreadSanitizer's interceptor in a build with it). */
#ifndef SQLGATE_EPOLL_FIX_H
#define SQLGATE_EPOLL_FIX_H

#include <stdint.h>

/* The waits that did not wait because they followed a full batch, so far
 * (all threads). */
uint64_t epoll_fix_skipped_waits(void);

/* The removals of a descriptor that was not in the epoll set, reported as
 * done, so far (all threads). */
uint64_t epoll_fix_repeated_removals(void);

#endif
