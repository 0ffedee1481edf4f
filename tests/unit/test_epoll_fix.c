/* Unit tests for src/service/epoll_fix.c, on real epoll and eventfd
 * descriptors. Its epoll_wait: a wait that follows a full batch on the same
 * thread and descriptor does not wait; any other wait keeps its timeout, so
 * a loop that polls after a full batch blocks again on its next wait. Its
 * epoll_ctl: removing a descriptor that is not in the set succeeds; every
 * other call and failure is the kernel's. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "check_main.h"
#include "epoll_fix.h"
#include "sqlgate/clock.h"

/* An epoll set of n eventfds. */
typedef struct epset {
    int ep;
    int fds[4];
    int n;
} epset;

static void epset_open(epset *s, int n)
{
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    ck_assert_int_ge(s->ep, 0);
    s->n = n;
    for (int i = 0; i < n; i++) {
        s->fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        ck_assert_int_ge(s->fds[i], 0);
        /* edge-triggered, as libmicrohttpd registers connections */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = s->fds[i]};
        ck_assert_int_eq(epoll_ctl(s->ep, EPOLL_CTL_ADD, s->fds[i], &ev), 0);
    }
}

/* Makes the first k eventfds readable. */
static void epset_signal(epset *s, int k)
{
    for (int i = 0; i < k; i++) {
        uint64_t one = 1;
        ck_assert_int_eq(write(s->fds[i], &one, sizeof one), (ssize_t)sizeof one);
    }
}

/* Makes every eventfd unreadable again. */
static void epset_drain(epset *s)
{
    for (int i = 0; i < s->n; i++) {
        uint64_t v;
        (void)!read(s->fds[i], &v, sizeof v);
    }
}

static void epset_close(epset *s)
{
    for (int i = 0; i < s->n; i++)
        close(s->fds[i]);
    close(s->ep);
}

/* epoll_wait on s with room for max events and timeout_ms; *waited_ms (if
 * not NULL) is how long it took. */
static int wait_on(epset *s, int max, int timeout_ms, int64_t *waited_ms)
{
    struct epoll_event ev[4];
    int64_t t0 = sg_clock_us();
    int n = epoll_wait(s->ep, ev, max, timeout_ms);
    if (waited_ms != NULL)
        *waited_ms = (sg_clock_us() - t0) / 1000;
    return n;
}

/* Both bounds are far from what they separate: a wait that is skipped takes
 * microseconds, one that is not takes its whole 300 ms (a timeout never ends
 * early), and the one that must not happen would take 30 s. */
enum { SHORT_MS = 300, LONG_MS = 30000, SKIPPED_MAX_MS = 10000 };

/* A wait on s (room for max events) with nothing ready takes its whole
 * SHORT_MS: it was not shortened. */
static void assert_waits(epset *s, int max)
{
    int64_t ms;
    ck_assert_int_eq(wait_on(s, max, SHORT_MS, &ms), 0);
    ck_assert_int_ge(ms, SHORT_MS - 20);
}

START_TEST(wait_after_full_batch_does_not_wait)
{
    epset s;
    epset_open(&s, 2);
    epset_signal(&s, 2);
    int64_t ms;
    uint64_t before = epoll_fix_skipped_waits();
    ck_assert_int_eq(wait_on(&s, 2, LONG_MS, NULL), 2); /* a full batch */
    epset_drain(&s);
    ck_assert_int_eq(wait_on(&s, 2, LONG_MS, &ms), 0);
    ck_assert_int_lt(ms, SKIPPED_MAX_MS);
    ck_assert_uint_eq(epoll_fix_skipped_waits(), before + 1);
    /* Nothing was ready then: the next wait waits again. */
    assert_waits(&s, 2);
    ck_assert_uint_eq(epoll_fix_skipped_waits(), before + 1);
    epset_close(&s);
}
END_TEST

START_TEST(wait_after_full_batch_returns_what_is_ready)
{
    /* A full batch of 2 out of 3 ready: the wait after it returns the rest
     * at once, and since that batch is not full the next one waits. */
    epset s;
    epset_open(&s, 3);
    epset_signal(&s, 3);
    ck_assert_int_eq(wait_on(&s, 2, LONG_MS, NULL), 2);
    ck_assert_int_eq(wait_on(&s, 2, LONG_MS, NULL), 1);
    epset_drain(&s);
    assert_waits(&s, 2);
    epset_close(&s);
}
END_TEST

START_TEST(partial_batch_keeps_the_timeout)
{
    epset s;
    epset_open(&s, 2);
    epset_signal(&s, 1);
    ck_assert_int_eq(wait_on(&s, 2, LONG_MS, NULL), 1);
    epset_drain(&s);
    assert_waits(&s, 2);
    epset_close(&s);
}
END_TEST

START_TEST(other_descriptor_keeps_the_timeout)
{
    epset a, b;
    epset_open(&a, 1);
    epset_open(&b, 1);
    epset_signal(&a, 1);
    ck_assert_int_eq(wait_on(&a, 1, LONG_MS, NULL), 1); /* full, on a */
    assert_waits(&b, 1);
    epset_close(&a);
    epset_close(&b);
}
END_TEST

static void *full_batch_thread(void *arg)
{
    epset *s = arg;
    return (void *)(intptr_t)wait_on(s, 1, LONG_MS, NULL);
}

START_TEST(other_thread_keeps_the_timeout)
{
    epset s;
    epset_open(&s, 1);
    epset_signal(&s, 1);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, full_batch_thread, &s), 0);
    void *n;
    ck_assert_int_eq(pthread_join(t, &n), 0);
    ck_assert_int_eq((int)(intptr_t)n, 1); /* full, on the other thread */
    epset_drain(&s);
    assert_waits(&s, 1);
    epset_close(&s);
}
END_TEST

START_TEST(second_removal_succeeds)
{
    /* What MHD_quiesce_daemon and an event thread both do to the listening
     * socket: the second removal finds it gone. */
    epset s;
    epset_open(&s, 2);
    uint64_t before = epoll_fix_repeated_removals();
    ck_assert_int_eq(epoll_ctl(s.ep, EPOLL_CTL_DEL, s.fds[0], NULL), 0);
    ck_assert_uint_eq(epoll_fix_repeated_removals(), before);
    ck_assert_int_eq(epoll_ctl(s.ep, EPOLL_CTL_DEL, s.fds[0], NULL), 0);
    ck_assert_uint_eq(epoll_fix_repeated_removals(), before + 1);
    /* It is out of the set: signalled, it is not reported; the other is. */
    epset_signal(&s, 2);
    struct epoll_event ev[2];
    ck_assert_int_eq(epoll_wait(s.ep, ev, 2, 0), 1);
    ck_assert_int_eq(ev[0].data.fd, s.fds[1]);
    epset_close(&s);
}
END_TEST

START_TEST(other_failures_are_kept)
{
    epset s;
    epset_open(&s, 1);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = s.fds[0]};
    uint64_t before = epoll_fix_repeated_removals();
    /* Adding twice, or changing what is not there: still errors. */
    errno = 0;
    ck_assert_int_eq(epoll_ctl(s.ep, EPOLL_CTL_ADD, s.fds[0], &ev), -1);
    ck_assert_int_eq(errno, EEXIST);
    ck_assert_int_eq(epoll_ctl(s.ep, EPOLL_CTL_DEL, s.fds[0], NULL), 0);
    errno = 0;
    ck_assert_int_eq(epoll_ctl(s.ep, EPOLL_CTL_MOD, s.fds[0], &ev), -1);
    ck_assert_int_eq(errno, ENOENT);
    /* Removing a closed descriptor: EBADF, as ever. */
    int gone = eventfd(0, EFD_CLOEXEC);
    ck_assert_int_ge(gone, 0);
    close(gone);
    errno = 0;
    ck_assert_int_eq(epoll_ctl(s.ep, EPOLL_CTL_DEL, gone, NULL), -1);
    ck_assert_int_eq(errno, EBADF);
    ck_assert_uint_eq(epoll_fix_repeated_removals(), before);
    epset_close(&s);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("epoll_fix");
    TCase *tc = tcase_create("epoll_fix");
    tcase_add_test(tc, wait_after_full_batch_does_not_wait);
    tcase_add_test(tc, wait_after_full_batch_returns_what_is_ready);
    tcase_add_test(tc, partial_batch_keeps_the_timeout);
    tcase_add_test(tc, other_descriptor_keeps_the_timeout);
    tcase_add_test(tc, other_thread_keeps_the_timeout);
    tcase_add_test(tc, second_removal_succeeds);
    tcase_add_test(tc, other_failures_are_kept);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(suite());
}
