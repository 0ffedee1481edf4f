/* holdconns: many kept-alive HTTP/1.1 connections at once, a few of them busy.
 *
 *   holdconns --host 127.0.0.1 --port PORT [--connections N] [--active K]
 *             [--query-path P --body JSON] [--probe-rate R] [--idle-rate R]
 *             [--seconds S] [--warmup S] [--ramp-timeout S] [--max-connecting M]
 *
 * One thread, one epoll set, every socket non-blocking. Three kinds of
 * connections:
 *   held   N - K of them. Each connects, sends one GET /health/live (so that the
 *          server sees a request, not a silent socket it may close at its header
 *          timeout) and then stays open. During the measurement they send
 *          GET /health/live now and then: --idle-rate requests a second in all,
 *          round robin; one found closed is reconnected first (a real client would).
 *   active K of them: closed-loop POSTs of --body to --query-path, the next request
 *          as soon as the answer is in; reconnect when closed.
 *   probe  2 connections: GET /health at a fixed --probe-rate, latency counted
 *          from when each probe was due (no coordinated omission, as loadgen).
 *
 * Phases: the ramp opens the held connections (at most --max-connecting
 * connects in flight) until every one has its first answer or failed, or
 * --ramp-timeout passes; then the active clients and probes start, --warmup
 * seconds unrecorded, then --seconds measured. At the end it counts how many
 * held connections are still open.
 *
 * The outcome of every held connection's first request is counted once:
 * answered (by status class, a 503 on its own), closed or reset before the
 * answer, connect refused / failed / timed out, or never finished. Server
 * closes of held connections after their answer are counted as dropped.
 *
 * Prints one JSON object on stdout. Exit status 0 when it ran (whatever the
 * server did), 2 on bad arguments, 1 when the event loop itself failed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "httpresp.h"

#define MAX_STATUS  600
#define N_PROBES    2
#define REQ_MAX     8192
#define DRAIN_S     5.0
#define READ_CHUNK  16384
#define EVENTS_MAX  256
#define MAX_CONNS_N 200000

typedef enum kind { K_HELD, K_ACTIVE, K_PROBE } kind;

typedef enum state {
    S_NEW,        /* not connected yet */
    S_CONNECTING, /* non-blocking connect in flight */
    S_OPEN,       /* connected, no request in flight */
    S_BUSY,       /* a request in flight */
    S_CLOSED,     /* closed by the server or failed */
} state;

/* What became of a held connection's first request. */
typedef enum first {
    F_PENDING,
    F_2XX,
    F_503,
    F_OTHER,
    F_CLOSED,          /* EOF before the answer */
    F_RESET,           /* ECONNRESET / EPIPE before the answer */
    F_REFUSED,         /* connect: ECONNREFUSED */
    F_CONNECT_FAILED,  /* connect: another error */
    F_CONNECT_TIMEOUT, /* connect did not complete within --ramp-timeout */
    F_COUNT
} first;

static const char *const first_names[F_COUNT] = {
    "never_finished",  "answered_2xx",         "answered_503",
    "answered_other",  "closed_before_answer", "reset_before_answer",
    "connect_refused", "connect_failed",       "connect_timeout"};

typedef struct conn {
    int fd;
    uint8_t kind;
    uint8_t state;
    uint8_t first;     /* held only */
    bool send_on_open; /* a request waits for the connect to complete */
    bool record;
    double due; /* of the request in flight (probe: when it was due) */
    char *buf;  /* response bytes so far; freed between answers */
    uint32_t len, cap;
} conn;

/* Counters of one kind of request. */
typedef struct counts {
    uint64_t sent, completed, failed, reconnects;
    uint64_t status[MAX_STATUS];
} counts;

typedef struct run {
    struct sockaddr_in addr;
    int ep;
    conn *conns;
    int n, n_active, n_held;
    int max_connecting, connecting;

    char req_live[REQ_MAX], req_query[REQ_MAX], req_health[REQ_MAX];
    size_t len_live, len_query, len_health;

    double probe_rate, idle_rate, seconds, warmup, ramp_timeout;
    bool measuring;           /* active clients and probes run */
    double rec_from, rec_end; /* the measured window */

    counts ramp_req, held_req, active_req, probe_req;
    uint64_t first_outcome[F_COUNT];
    uint64_t held_dropped; /* server closed a held connection after its answer */
    uint64_t held_dropped_in_window;
    uint64_t active_in_window; /* 2xx answers to active clients inside the window */

    double *lat;
    size_t n_lat, cap_lat;
} run;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The held connections' first requests (the ramp) are counted apart from
 * their requests during the measurement. */
static counts *counts_of(run *r, const conn *c)
{
    if (c->kind == K_HELD)
        return r->measuring ? &r->held_req : &r->ramp_req;
    return c->kind == K_ACTIVE ? &r->active_req : &r->probe_req;
}

static void conn_drop(run *r, conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(r->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    if (c->state == S_CONNECTING)
        r->connecting--;
    c->fd = -1;
    c->state = S_CLOSED;
    c->len = 0;
    free(c->buf);
    c->buf = NULL;
    c->cap = 0;
}

static void set_first(run *r, conn *c, first f)
{
    if (c->kind != K_HELD || c->first != F_PENDING)
        return;
    c->first = (uint8_t)f;
    r->first_outcome[f]++;
}

/* Starts a non-blocking connect; the outcome arrives as EPOLLOUT. */
static void conn_start(run *r, conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->state = S_CLOSED;
        set_first(r, c, F_CONNECT_FAILED);
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = connect(c->fd, (struct sockaddr *)&r->addr, sizeof r->addr);
    if (rc != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(c->fd);
        c->fd = -1;
        c->state = S_CLOSED;
        set_first(r, c, e == ECONNREFUSED ? F_REFUSED : F_CONNECT_FAILED);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &ev);
    c->state = S_CONNECTING;
    r->connecting++;
}

static void request_of(const run *r, const conn *c, const char **req, size_t *len)
{
    if (c->kind == K_ACTIVE) {
        *req = r->req_query;
        *len = r->len_query;
    } else if (c->kind == K_PROBE) {
        *req = r->req_health;
        *len = r->len_health;
    } else {
        *req = r->req_live;
        *len = r->len_live;
    }
}

/* Small requests on loopback: a short write is retried at once rather than
 * tracked, as loadgen does. */
static bool conn_send(run *r, conn *c, double due, bool rec)
{
    const char *req;
    size_t len, off = 0;
    request_of(r, c, &req, &len);
    while (off < len) {
        ssize_t n = send(c->fd, req + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        return false;
    }
    c->state = S_BUSY;
    c->due = due;
    c->record = rec;
    counts_of(r, c)->sent++;
    return true;
}

/* A connection that failed in flight: counted, then reconnected when its
 * kind keeps going (active, probe), or left closed (held). */
static void conn_failed(run *r, conn *c, bool reset)
{
    bool busy = c->state == S_BUSY;
    if (busy)
        counts_of(r, c)->failed++;
    if (c->kind == K_HELD) {
        if (c->first == F_PENDING)
            set_first(r, c, reset ? F_RESET : F_CLOSED);
        else if (!busy) {
            r->held_dropped++;
            r->held_dropped_in_window += r->measuring;
        }
    }
    conn_drop(r, c); /* active clients and probes reconnect from the main loop */
}

static void record_latency(run *r, double ms)
{
    if (r->n_lat == r->cap_lat) {
        size_t cap = r->cap_lat ? r->cap_lat * 2 : 4096;
        double *l = realloc(r->lat, cap * sizeof *l);
        if (l == NULL)
            return;
        r->lat = l;
        r->cap_lat = cap;
    }
    r->lat[r->n_lat++] = ms;
}

static void on_answer(run *r, conn *c, int status)
{
    counts *k = counts_of(r, c);
    k->completed++;
    if (status >= 0 && status < MAX_STATUS)
        k->status[status]++;
    c->state = S_OPEN;
    if (c->kind == K_HELD)
        set_first(r, c, status == 503 ? F_503 : status >= 200 && status < 300 ? F_2XX : F_OTHER);
    else if (c->kind == K_PROBE && c->record)
        record_latency(r, (now_s() - c->due) * 1000.0);
    else if (c->kind == K_ACTIVE) {
        double now = now_s();
        if (now >= r->rec_from && now < r->rec_end && status >= 200 && status < 300)
            r->active_in_window++;
        if (r->measuring && !conn_send(r, c, now_s(), true))
            conn_failed(r, c, true);
    }
}

static void on_connected(run *r, conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    r->connecting--;
    if (err != 0) {
        c->state = S_OPEN; /* so that conn_drop does not count it again */
        if (c->kind != K_HELD || c->first != F_PENDING)
            counts_of(r, c)->failed++; /* a reconnect that failed */
        set_first(r, c, err == ECONNREFUSED ? F_REFUSED : F_CONNECT_FAILED);
        conn_drop(r, c);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->state = S_OPEN;
    bool send_now = c->kind == K_HELD ? c->first == F_PENDING || c->send_on_open : c->send_on_open;
    c->send_on_open = false;
    if (send_now && !conn_send(r, c, now_s(), r->measuring))
        conn_failed(r, c, true);
}

static void on_readable(run *r, conn *c)
{
    for (;;) {
        if (c->cap - c->len < READ_CHUNK / 2) {
            uint32_t cap = c->cap ? c->cap * 2 : READ_CHUNK;
            char *b = realloc(c->buf, cap);
            if (b == NULL)
                return;
            c->buf = b;
            c->cap = cap;
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n > 0) {
            c->len += (uint32_t)n;
            /* Answers are parsed below; whatever ends the connection after
             * them is seen at the next read. */
            if (c->state == S_BUSY) {
                int status = 0;
                long whole = httpresp_len(c->buf, c->len, &status);
                if (whole < 0) {
                    conn_failed(r, c, false);
                    return;
                }
                if (whole > 0) {
                    memmove(c->buf, c->buf + whole, c->len - (size_t)whole);
                    c->len -= (uint32_t)whole;
                    on_answer(r, c, status);
                    if (c->state == S_CLOSED)
                        return;
                }
            }
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0 && errno == EINTR)
            continue;
        conn_failed(r, c, n < 0);
        return;
    }
    if (c->len == 0 && c->kind == K_HELD && c->state != S_BUSY) {
        free(c->buf); /* ten thousand idle buffers would be the load generator's RSS */
        c->buf = NULL;
        c->cap = 0;
    }
}

static void on_event(run *r, conn *c, uint32_t events)
{
    if (c->state == S_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            on_connected(r, c);
        if (c->state != S_OPEN && c->state != S_BUSY)
            return;
        if (!(events & (EPOLLIN | EPOLLRDHUP)))
            return;
    }
    if (c->fd >= 0)
        on_readable(r, c);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const run *r, double p)
{
    if (r->n_lat == 0)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)(r->n_lat - 1) + 0.5);
    return r->lat[i];
}

static void poll_once(run *r, double wait_s)
{
    struct epoll_event evs[EVENTS_MAX];
    if (wait_s < 0)
        wait_s = 0;
    struct timespec ts = {.tv_sec = (time_t)wait_s,
                          .tv_nsec = (long)((wait_s - (double)(time_t)wait_s) * 1e9)};
    int got = epoll_pwait2(r->ep, evs, EVENTS_MAX, &ts, NULL);
    for (int i = 0; i < got; i++)
        on_event(r, evs[i].data.ptr, evs[i].events);
}

static int build_request(char *out, size_t cap, const char *method, const char *path,
                         const char *host, int port, const char *body)
{
    int n;
    if (body != NULL)
        n = snprintf(out, cap,
                     "%s %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, path, host, port, strlen(body), body);
    else
        n = snprintf(out, cap, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n", method, path, host, port);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

static void print_counts(const char *name, const counts *k, bool comma)
{
    printf("\"%s\":{\"sent\":%llu,\"completed\":%llu,\"failed\":%llu,\"reconnects\":%llu,"
           "\"statuses\":{",
           name, (unsigned long long)k->sent, (unsigned long long)k->completed,
           (unsigned long long)k->failed, (unsigned long long)k->reconnects);
    bool first_one = true;
    for (int s = 0; s < MAX_STATUS; s++) {
        if (k->status[s] == 0)
            continue;
        printf("%s\"%d\":%llu", first_one ? "" : ",", s, (unsigned long long)k->status[s]);
        first_one = false;
    }
    printf("}}%s", comma ? "," : "");
}

static void usage(void)
{
    fprintf(stderr,
            "usage: holdconns --port PORT [--host IP] [--connections N] [--active K]\n"
            "                 [--query-path PATH --body JSON] [--probe-rate R] [--idle-rate R]\n"
            "                 [--seconds S] [--warmup S] [--ramp-timeout S] "
            "[--max-connecting M]\n");
}

int main(int argc, char **argv)
{
    static run r;
    const char *host = "127.0.0.1", *query_path = "/v1/query", *body = NULL;
    int port = 0, n = 10000, active = 64;
    r.probe_rate = 100;
    r.idle_rate = 50;
    r.seconds = 10;
    r.warmup = 1;
    r.ramp_timeout = 60;
    r.max_connecting = 256;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--host") == 0)
            host = v;
        else if (strcmp(k, "--port") == 0)
            port = atoi(v);
        else if (strcmp(k, "--connections") == 0)
            n = atoi(v);
        else if (strcmp(k, "--active") == 0)
            active = atoi(v);
        else if (strcmp(k, "--query-path") == 0)
            query_path = v;
        else if (strcmp(k, "--body") == 0)
            body = v;
        else if (strcmp(k, "--probe-rate") == 0)
            r.probe_rate = atof(v);
        else if (strcmp(k, "--idle-rate") == 0)
            r.idle_rate = atof(v);
        else if (strcmp(k, "--seconds") == 0)
            r.seconds = atof(v);
        else if (strcmp(k, "--warmup") == 0)
            r.warmup = atof(v);
        else if (strcmp(k, "--ramp-timeout") == 0)
            r.ramp_timeout = atof(v);
        else if (strcmp(k, "--max-connecting") == 0)
            r.max_connecting = atoi(v);
        else {
            usage();
            return 2;
        }
    }
    if (argc % 2 == 0 || port <= 0 || port > 65535 || n < 1 || n > MAX_CONNS_N || active < 0 ||
        active > n || body == NULL || r.probe_rate <= 0 || r.idle_rate < 0 || r.seconds <= 0 ||
        r.warmup < 0 || r.ramp_timeout <= 0 || r.max_connecting < 1) {
        usage();
        return 2;
    }
    r.addr.sin_family = AF_INET;
    r.addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &r.addr.sin_addr) != 1) {
        usage();
        return 2;
    }
    int a = build_request(r.req_live, REQ_MAX, "GET", "/health/live", host, port, NULL);
    int b = build_request(r.req_query, REQ_MAX, "POST", query_path, host, port, body);
    int c = build_request(r.req_health, REQ_MAX, "GET", "/health", host, port, NULL);
    if (a < 0 || b < 0 || c < 0) {
        fprintf(stderr, "holdconns: request too large\n");
        return 2;
    }
    r.len_live = (size_t)a;
    r.len_query = (size_t)b;
    r.len_health = (size_t)c;
    signal(SIGPIPE, SIG_IGN);

    struct rlimit nofile;
    getrlimit(RLIMIT_NOFILE, &nofile);
    if (nofile.rlim_cur != RLIM_INFINITY && (rlim_t)n + N_PROBES + 64 > nofile.rlim_cur) {
        fprintf(stderr, "holdconns: %d connections need more descriptors than RLIMIT_NOFILE %llu\n",
                n, (unsigned long long)nofile.rlim_cur);
        return 2;
    }

    r.n = n + N_PROBES;
    r.n_active = active;
    r.n_held = n - active;
    r.conns = calloc((size_t)r.n, sizeof *r.conns);
    r.ep = epoll_create1(EPOLL_CLOEXEC);
    if (r.conns == NULL || r.ep < 0) {
        fprintf(stderr, "holdconns: out of memory\n");
        return 1;
    }
    /* Held first, then active, then the probes. */
    for (int i = 0; i < r.n; i++) {
        conn *x = &r.conns[i];
        x->fd = -1;
        x->state = S_NEW;
        x->kind = i < r.n_held ? K_HELD : i < n ? K_ACTIVE : K_PROBE;
    }

    /* Ramp: every held connection gets its first answer, or fails. */
    const double t0 = now_s();
    int next = 0;
    for (;;) {
        while (next < r.n_held && r.connecting < r.max_connecting)
            conn_start(&r, &r.conns[next++]);
        bool pending = next < r.n_held;
        for (int i = 0; i < r.n_held && !pending; i++)
            pending = r.conns[i].first == F_PENDING;
        if (!pending || now_s() - t0 > r.ramp_timeout)
            break;
        poll_once(&r, 0.01);
    }
    const double ramp_s = now_s() - t0;
    for (int i = 0; i < r.n_held; i++) {
        conn *x = &r.conns[i];
        if (x->first == F_PENDING && x->state == S_CONNECTING) {
            set_first(&r, x, F_CONNECT_TIMEOUT);
            conn_drop(&r, x);
        }
    }
    uint64_t open_after_ramp = 0;
    for (int i = 0; i < r.n_held; i++)
        open_after_ramp += r.conns[i].state == S_OPEN || r.conns[i].state == S_BUSY;

    /* Measurement: active clients and probes start together. */
    r.measuring = true;
    for (int i = r.n_held; i < r.n; i++) {
        r.conns[i].send_on_open = r.conns[i].kind == K_ACTIVE;
        conn_start(&r, &r.conns[i]);
    }
    const double start = now_s();
    const double rec_from = start + r.warmup;
    const double end = rec_from + r.seconds;
    r.rec_from = rec_from;
    r.rec_end = end;
    const double p_int = 1.0 / r.probe_rate;
    const double i_int = r.idle_rate > 0 ? 1.0 / r.idle_rate : 0;
    uint64_t p_sched = 0, p_disp = 0, i_sched = 0;
    int cursor = 0;
    for (;;) {
        double now = now_s();
        for (int i = r.n_held; i < r.n && now < end; i++) {
            conn *x = &r.conns[i];
            if (x->state != S_CLOSED)
                continue;
            counts_of(&r, x)->reconnects++;
            x->send_on_open = x->kind == K_ACTIVE;
            conn_start(&r, x);
        }
        while (start + (double)p_sched * p_int <= now && start + (double)p_sched * p_int < end)
            p_sched++;
        for (int i = n; i < r.n && p_disp < p_sched; i++) {
            conn *x = &r.conns[i];
            if (x->state != S_OPEN)
                continue;
            double due = start + (double)p_disp * p_int;
            if (!conn_send(&r, x, due, due >= rec_from))
                conn_failed(&r, x, true);
            p_disp++;
        }
        /* Now-and-then requests of the held connections, round robin. */
        while (r.n_held > 0 && i_int > 0 && start + (double)i_sched * i_int <= now && now < end) {
            i_sched++;
            conn *x = &r.conns[cursor];
            cursor = (cursor + 1) % r.n_held;
            if (x->state == S_OPEN) {
                if (!conn_send(&r, x, now, true))
                    conn_failed(&r, x, true);
            } else if (x->state == S_CLOSED) {
                r.held_req.reconnects++;
                x->send_on_open = true;
                conn_start(&r, x);
            }
        }
        if (now >= end) {
            bool inflight = false;
            for (int i = r.n_held; i < r.n && !inflight; i++)
                inflight = r.conns[i].state == S_BUSY && r.conns[i].kind == K_PROBE;
            if ((!inflight && p_disp == p_sched) || now >= end + DRAIN_S)
                break;
        }
        double wait = start + (double)p_sched * p_int - now;
        if (p_disp < p_sched || wait < 0)
            wait = 0.0005;
        if (wait > 0.005)
            wait = 0.005;
        poll_once(&r, wait);
    }
    r.measuring = false;

    uint64_t open_at_end = 0;
    for (int i = 0; i < r.n_held; i++)
        open_at_end += r.conns[i].state == S_OPEN || r.conns[i].state == S_BUSY;
    uint64_t probe_unanswered = 0;
    for (int i = n; i < r.n; i++)
        probe_unanswered += r.conns[i].state == S_BUSY;

    qsort(r.lat, r.n_lat, sizeof *r.lat, cmp_double);
    printf("{\"connections\":%d,\"held\":%d,\"active\":%d,\"ramp_s\":%.3f,"
           "\"held_open_after_ramp\":%llu,\"held_open_at_end\":%llu,\"held_dropped\":%llu,"
           "\"held_dropped_in_window\":%llu,\"first_request\":{",
           n, r.n_held, active, ramp_s, (unsigned long long)open_after_ramp,
           (unsigned long long)open_at_end, (unsigned long long)r.held_dropped,
           (unsigned long long)r.held_dropped_in_window);
    for (int f = 0; f < F_COUNT; f++)
        printf("%s\"%s\":%llu", f ? "," : "", first_names[f],
               (unsigned long long)r.first_outcome[f]);
    printf("},\"seconds\":%.3f,\"active_2xx_in_window\":%llu,\"query_rps\":%.1f,", r.seconds,
           (unsigned long long)r.active_in_window, (double)r.active_in_window / r.seconds);
    print_counts("active_requests", &r.active_req, true);
    print_counts("ramp_requests", &r.ramp_req, true);
    print_counts("held_requests", &r.held_req, true);
    print_counts("probe_requests", &r.probe_req, true);
    printf("\"probe_rate\":%.1f,\"probe_recorded\":%zu,\"probe_unanswered\":%llu,"
           "\"probe_never_sent\":%llu,\"probe_p50_ms\":%.3f,\"probe_p90_ms\":%.3f,"
           "\"probe_p99_ms\":%.3f,\"probe_max_ms\":%.3f}\n",
           r.probe_rate, r.n_lat, (unsigned long long)probe_unanswered,
           (unsigned long long)(p_sched - p_disp), pct(&r, 50), pct(&r, 90), pct(&r, 99),
           r.n_lat ? r.lat[r.n_lat - 1] : 0.0);
    for (int i = 0; i < r.n; i++)
        conn_drop(&r, &r.conns[i]);
    free(r.conns);
    free(r.lat);
    close(r.ep);
    return 0;
}
