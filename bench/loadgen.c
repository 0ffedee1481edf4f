/* loadgen: a small fixed-rate (open-loop) HTTP/1.1 load generator for
 * latency percentiles, where wrk's closed loop would hide queueing.
 *
 *   loadgen --url http://127.0.0.1:PORT/path --rate R --seconds S
 *           [--connections C] [--method GET|POST] [--body TEXT]
 *           [--warmup S] [--interval S]
 *
 * Request i is due at start + i/R. A due request goes out on the first idle
 * keep-alive connection; when none is idle it waits, and its latency still
 * counts from when it was due (so a stalled server shows up in the
 * percentiles instead of slowing the load down: no coordinated omission).
 * Latency ends with the last byte of the response (Content-Length or chunked).
 * Requests due during the warm-up are sent but not recorded.
 *
 * Prints one JSON object on stdout: counts, statuses and percentiles in ms.
 * With --interval, first one line per interval of the measured time (after
 * the warm-up) with the percentiles of the requests that completed in it, so
 * that a long run on the same connections shows whether latency drifts.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "httpresp.h"

#define MAX_CONNS  256
#define MAX_STATUS 600
#define DRAIN_S    5.0 /* after the run, how long answers are awaited */
#define REQ_MAX    65536

typedef struct conn {
    int fd;
    bool busy;
    bool connected;
    double due; /* of the request in flight */
    bool record;
    char *buf;
    size_t len, cap;
} conn;

typedef struct run {
    struct sockaddr_in addr;
    char req[REQ_MAX];
    size_t req_len;
    double rate, seconds, warmup, interval;
    int n_conns;
    conn conns[MAX_CONNS];
    int ep;

    double *lat; /* ms, recorded requests */
    size_t n_lat, cap_lat;
    uint64_t sent, completed, errors, reconnects;
    uint64_t status[MAX_STATUS];
    uint64_t not_ok; /* answers other than 2xx, for the interval lines */
} run;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int conn_open(run *r, conn *c)
{
    /* Blocking connect (loopback: immediate), then non-blocking I/O. */
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&r->addr, sizeof r->addr) != 0 ||
        fcntl(c->fd, F_SETFL, O_NONBLOCK) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &ev);
    c->connected = true;
    c->busy = false;
    c->len = 0;
    return 0;
}

static void conn_close(run *r, conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(r->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->connected = false;
    c->busy = false;
    c->len = 0;
}

static void record(run *r, conn *c, int status)
{
    r->completed++;
    if (status >= 0 && status < MAX_STATUS)
        r->status[status]++;
    r->not_ok += status < 200 || status >= 300;
    if (!c->record)
        return;
    if (r->n_lat == r->cap_lat) {
        size_t cap = r->cap_lat ? r->cap_lat * 2 : 4096;
        double *l = realloc(r->lat, cap * sizeof *l);
        if (l == NULL)
            return;
        r->lat = l;
        r->cap_lat = cap;
    }
    r->lat[r->n_lat++] = (now_s() - c->due) * 1000.0;
}

static void on_readable(run *r, conn *c)
{
    for (;;) {
        if (c->cap - c->len < 16384) {
            size_t cap = c->cap ? c->cap * 2 : 32768;
            char *b = realloc(c->buf, cap);
            if (b == NULL)
                return;
            c->buf = b;
            c->cap = cap;
        }
        ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
        if (n > 0) {
            c->len += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        /* Closed or failed: a request in flight is an error. */
        if (c->busy)
            r->errors++;
        conn_close(r, c);
        r->reconnects++;
        conn_open(r, c);
        return;
    }
    if (!c->busy)
        return;
    int status = 0;
    long len = httpresp_len(c->buf, c->len, &status);
    if (len < 0) {
        r->errors++;
        conn_close(r, c);
        conn_open(r, c);
        return;
    }
    if (len == 0)
        return;
    record(r, c, status);
    c->busy = false;
    memmove(c->buf, c->buf + len, c->len - (size_t)len);
    c->len -= (size_t)len;
}

static bool send_req(run *r, conn *c, double due, bool rec)
{
    size_t off = 0;
    while (off < r->req_len) {
        ssize_t n = write(c->fd, r->req + off, r->req_len - off);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue; /* small requests: spin briefly rather than track */
        return false;
    }
    c->busy = true;
    c->due = due;
    c->record = rec;
    r->sent++;
    return true;
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

/* One --interval line: the requests recorded since index from. */
static void interval_line(run *r, int index, size_t from, uint64_t errors, uint64_t not_ok)
{
    size_t n = r->n_lat - from;
    double *l = n ? malloc(n * sizeof *l) : NULL;
    if (n && l == NULL)
        return;
    if (n)
        memcpy(l, r->lat + from, n * sizeof *l);
    qsort(l, n, sizeof *l, cmp_double);
    printf("{\"interval\":%d,\"completed\":%zu,\"errors\":%llu,\"not_ok\":%llu,"
           "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
           index, n, (unsigned long long)errors, (unsigned long long)not_ok,
           n ? l[(size_t)(0.50 * (double)(n - 1) + 0.5)] : 0.0,
           n ? l[(size_t)(0.90 * (double)(n - 1) + 0.5)] : 0.0,
           n ? l[(size_t)(0.99 * (double)(n - 1) + 0.5)] : 0.0, n ? l[n - 1] : 0.0);
    fflush(stdout);
    free(l);
}

static int parse_url(run *r, const char *url, char *path, size_t path_len)
{
    if (strncmp(url, "http://", 7) != 0)
        return -1;
    const char *host = url + 7;
    const char *colon = strchr(host, ':');
    const char *slash = strchr(host, '/');
    if (colon == NULL || slash == NULL || colon > slash)
        return -1;
    char h[64];
    size_t hl = (size_t)(colon - host);
    if (hl >= sizeof h)
        return -1;
    memcpy(h, host, hl);
    h[hl] = '\0';
    r->addr.sin_family = AF_INET;
    r->addr.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, h, &r->addr.sin_addr) != 1)
        return -1;
    snprintf(path, path_len, "%s", slash);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen --url http://IP:PORT/path --rate R --seconds S "
                    "[--connections C] [--method M] [--body TEXT] [--warmup S] "
                    "[--interval S]\n");
}

int main(int argc, char **argv)
{
    static run r;
    const char *url = NULL, *method = "GET", *body = NULL;
    r.n_conns = 4;
    r.seconds = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--url") == 0)
            url = v;
        else if (strcmp(k, "--rate") == 0)
            r.rate = atof(v);
        else if (strcmp(k, "--seconds") == 0)
            r.seconds = atof(v);
        else if (strcmp(k, "--warmup") == 0)
            r.warmup = atof(v);
        else if (strcmp(k, "--interval") == 0)
            r.interval = atof(v);
        else if (strcmp(k, "--connections") == 0)
            r.n_conns = atoi(v);
        else if (strcmp(k, "--method") == 0)
            method = v;
        else if (strcmp(k, "--body") == 0)
            body = v;
        else {
            usage();
            return 2;
        }
    }
    char path[2048];
    if (url == NULL || r.rate <= 0 || r.seconds <= 0 || r.n_conns < 1 || r.n_conns > MAX_CONNS ||
        parse_url(&r, url, path, sizeof path) != 0) {
        usage();
        return 2;
    }
    char host[80];
    inet_ntop(AF_INET, &r.addr.sin_addr, host, sizeof host);
    int n;
    if (body != NULL)
        n = snprintf(r.req, sizeof r.req,
                     "%s %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, path, host, ntohs(r.addr.sin_port), strlen(body), body);
    else
        n = snprintf(r.req, sizeof r.req, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n", method, path,
                     host, ntohs(r.addr.sin_port));
    if (n < 0 || (size_t)n >= sizeof r.req) {
        fprintf(stderr, "loadgen: request too large\n");
        return 2;
    }
    r.req_len = (size_t)n;
    signal(SIGPIPE, SIG_IGN);

    r.ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < r.n_conns; i++) {
        r.conns[i].fd = -1;
        if (conn_open(&r, &r.conns[i]) != 0) {
            fprintf(stderr, "loadgen: cannot connect\n");
            return 1;
        }
    }
    const double start = now_s();
    const double end = start + r.warmup + r.seconds;
    const double interval = 1.0 / r.rate;
    uint64_t scheduled = 0, dispatched = 0;
    int n_interval = 0;
    bool warm_done = false;
    size_t interval_from = 0;
    uint64_t interval_errors = 0, interval_not_ok = 0;
    for (;;) {
        double now = now_s();
        if (!warm_done && now >= start + r.warmup) {
            warm_done = true;
            interval_errors = r.errors;
            interval_not_ok = r.not_ok;
        }
        if (r.interval > 0 && now >= start + r.warmup + (n_interval + 1) * r.interval &&
            n_interval + 1 <= (int)(r.seconds / r.interval + 1e-9)) {
            interval_line(&r, n_interval, interval_from, r.errors - interval_errors,
                          r.not_ok - interval_not_ok);
            n_interval++;
            interval_from = r.n_lat;
            interval_errors = r.errors;
            interval_not_ok = r.not_ok;
        }
        while (start + (double)scheduled * interval <= now &&
               start + (double)scheduled * interval < end)
            scheduled++;
        /* Due requests, oldest first, onto idle connections. */
        for (int i = 0; i < r.n_conns && dispatched < scheduled; i++) {
            conn *c = &r.conns[i];
            if (c->busy || !c->connected)
                continue;
            double due = start + (double)dispatched * interval;
            if (!send_req(&r, c, due, due >= start + r.warmup)) {
                r.errors++;
                conn_close(&r, c);
                conn_open(&r, c);
            }
            dispatched++;
        }
        bool inflight = false;
        for (int i = 0; i < r.n_conns; i++)
            inflight |= r.conns[i].busy;
        if (now >= end && dispatched == scheduled && !inflight)
            break;
        if (now >= end + DRAIN_S)
            break;
        double next = start + (double)scheduled * interval;
        double wait = next - now;
        if (wait < 0 || dispatched < scheduled)
            wait = 0.0005; /* something is due: poll soon */
        if (wait > 0.05)
            wait = 0.05;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(wait * 1e9)};
        struct epoll_event evs[64];
        int got = epoll_pwait2(r.ep, evs, 64, &ts, NULL);
        for (int i = 0; i < got; i++)
            on_readable(&r, evs[i].data.ptr);
    }
    double took = now_s() - start - r.warmup;
    uint64_t unanswered = 0;
    for (int i = 0; i < r.n_conns; i++)
        unanswered += r.conns[i].busy;
    uint64_t never_sent = scheduled - dispatched;
    qsort(r.lat, r.n_lat, sizeof *r.lat, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < r.n_lat; i++)
        sum += r.lat[i];
    printf("{\"rate\":%.1f,\"seconds\":%.3f,\"sent\":%llu,\"completed\":%llu,\"recorded\":%zu,"
           "\"errors\":%llu,\"unanswered\":%llu,\"never_sent\":%llu,\"statuses\":{",
           r.rate, took, (unsigned long long)r.sent, (unsigned long long)r.completed, r.n_lat,
           (unsigned long long)r.errors, (unsigned long long)unanswered,
           (unsigned long long)never_sent);
    bool first = true;
    for (int s = 0; s < MAX_STATUS; s++) {
        if (r.status[s] == 0)
            continue;
        printf("%s\"%d\":%llu", first ? "" : ",", s, (unsigned long long)r.status[s]);
        first = false;
    }
    printf("},\"mean_ms\":%.3f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
           "\"max_ms\":%.3f}\n",
           r.n_lat ? sum / (double)r.n_lat : 0.0, pct(&r, 50), pct(&r, 90), pct(&r, 99),
           pct(&r, 99.9), r.n_lat ? r.lat[r.n_lat - 1] : 0.0);
    for (int i = 0; i < r.n_conns; i++) {
        conn_close(&r, &r.conns[i]);
        free(r.conns[i].buf);
    }
    free(r.lat);
    close(r.ep);
    return 0;
}
