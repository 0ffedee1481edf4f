/* metrics: see metrics.h.
 *
 * Per-database counters are kept by name, not by registry position: a reload
 * adds, removes and replaces databases, and a replaced database (same name)
 * keeps counting where the old one stopped. A name's counters, once created,
 * live until metrics_free (so a pointer to them never dangles); only the
 * databases registered at render time are written out. */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "histogram.h"
#include "procstat.h"
#include "sqlgate/sqlgate.h"

/* Query outcomes are counted by code and shown by the code's outcome label
 * (sg_code_outcome, from SG_CODE_LIST): codes that share a label are summed. */
#define N_OUTCOMES SG_CODE_COUNT_

static const int statuses[] = {200, 202, 400, 401, 403, 404, 405, 413, 415, 500, 503, 504, 0};
#define N_STATUSES (sizeof statuses / sizeof statuses[0]) /* 0: any other */

/* HTTP duration by status class: 1xx .. 5xx (anything else counts as 5xx). */
#define N_CLASSES 5

/* Per-database counters, on a list that only grows (pushed at the head under
 * mu, read without it): recording a query never takes a lock. */
typedef struct db_metrics {
    char name[SG_NAME_MAX + 1];
    atomic_uint_fast64_t outcome[N_OUTCOMES];
    sg_hist query;
    struct db_metrics *next; /* set before the entry is published */
} db_metrics;

struct metrics {
    sg_registry *reg;         /* borrowed */
    const http_route *routes; /* borrowed */
    size_t n_routes;
    pthread_mutex_t mu;         /* serializes additions to dbs */
    _Atomic(db_metrics *) dbs;  /* owned list, each name once */
    atomic_uint_fast64_t *http; /* owned, (n_routes + 1) x N_STATUSES */
    sg_hist *http_hist;         /* owned, (n_routes + 1) x N_CLASSES */
};

metrics *metrics_new(sg_registry *reg, const http_route *routes, size_t n_routes)
{
    metrics *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->reg = reg;
    m->routes = routes;
    m->n_routes = n_routes;
    pthread_mutex_init(&m->mu, NULL);
    atomic_init(&m->dbs, NULL);
    m->http = calloc((n_routes + 1) * N_STATUSES, sizeof *m->http);
    m->http_hist = calloc((n_routes + 1) * N_CLASSES, sizeof *m->http_hist);
    if (m->http == NULL || m->http_hist == NULL) {
        metrics_free(m);
        return NULL;
    }
    return m;
}

void metrics_free(metrics *m)
{
    if (m == NULL)
        return;
    for (db_metrics *d = atomic_load(&m->dbs), *next; d != NULL; d = next) {
        next = d->next;
        free(d);
    }
    free(m->http);
    free(m->http_hist);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static db_metrics *db_find(db_metrics *d, const char *name)
{
    while (d != NULL && strcmp(d->name, name) != 0)
        d = d->next;
    return d;
}

/* The counters of database `name`, created on first use; NULL only when
 * memory ran out (the sample is then lost, the request is not). Finding
 * existing counters takes no lock. */
static db_metrics *db_slot(metrics *m, const char *name)
{
    db_metrics *d = db_find(atomic_load_explicit(&m->dbs, memory_order_acquire), name);
    if (d != NULL)
        return d;
    pthread_mutex_lock(&m->mu);
    db_metrics *head = atomic_load_explicit(&m->dbs, memory_order_relaxed);
    d = db_find(head, name); /* added meanwhile? */
    if (d == NULL && (d = calloc(1, sizeof *d)) != NULL) {
        snprintf(d->name, sizeof d->name, "%s", name);
        d->next = head;
        atomic_store_explicit(&m->dbs, d, memory_order_release);
    }
    pthread_mutex_unlock(&m->mu);
    return d;
}

void metrics_query(metrics *m, const sg_db *db, sg_code outcome, double seconds)
{
    db_metrics *d = db_slot(m, sg_db_name(db));
    if (d == NULL)
        return;
    size_t o = (unsigned)outcome < N_OUTCOMES ? (size_t)outcome : (size_t)SG_INTERNAL;
    atomic_fetch_add(&d->outcome[o], 1);
    sg_hist_observe_ns(&d->query, (int64_t)(seconds * 1e9));
}

void metrics_http(metrics *m, const http_route *route, int status, int64_t duration_us)
{
    size_t r = route ? (size_t)(route - m->routes) : m->n_routes;
    if (r > m->n_routes)
        r = m->n_routes;
    size_t s = 0;
    while (s + 1 < N_STATUSES && statuses[s] != status)
        s++;
    atomic_fetch_add(&m->http[r * N_STATUSES + s], 1);
    int c = status >= 100 && status < 600 ? status / 100 - 1 : N_CLASSES - 1;
    sg_hist_observe_ns(&m->http_hist[r * N_CLASSES + (size_t)c], duration_us * 1000);
}

/* One line per outcome label, summing the codes that share it; "error" (the
 * codes without a label of their own) last. */
static void queries_total(FILE *f, const char *db, db_metrics *d)
{
    for (int pass = 0; pass < 2; pass++) {
        for (size_t c = 0; c < N_OUTCOMES; c++) {
            const char *label = sg_code_outcome((sg_code)c);
            if ((strcmp(label, "error") == 0) != (pass == 1))
                continue;
            size_t first = 0;
            while (strcmp(sg_code_outcome((sg_code)first), label) != 0)
                first++;
            if (first != c)
                continue; /* counted with the first code of its label */
            unsigned long long sum = 0;
            for (size_t k = c; k < N_OUTCOMES; k++)
                if (strcmp(sg_code_outcome((sg_code)k), label) == 0)
                    sum += (unsigned long long)atomic_load(&d->outcome[k]);
            fprintf(f, "sqlgate_queries_total{db=\"%s\",outcome=\"%s\"} %llu\n", db, label, sum);
        }
    }
}

static void help(FILE *f, const char *name, const char *type, const char *text)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* A pool or health figure for every database; NAN when there is no sample
 * yet (the line is left out: never a -1 sentinel). */
typedef double (*figure_fn)(const sg_db_health *h);

static double f_max(const sg_db_health *h)
{
    return h->pool.max;
}
static double f_min(const sg_db_health *h)
{
    return h->pool.min;
}
static double f_open(const sg_db_health *h)
{
    return h->pool.open;
}
static double f_in_use(const sg_db_health *h)
{
    return h->pool.in_use;
}
static double f_idle(const sg_db_health *h)
{
    return h->pool.idle;
}
static double f_waiting(const sg_db_health *h)
{
    return h->pool.waiting;
}
static double f_timeouts(const sg_db_health *h)
{
    return (double)h->pool.acquire_timeouts;
}
static double f_errors(const sg_db_health *h)
{
    return (double)h->pool.connect_errors;
}
static double f_opened(const sg_db_health *h)
{
    return (double)h->pool.opened_total;
}
static double f_closed(const sg_db_health *h)
{
    return (double)h->pool.closed_total;
}
static double f_logins(const sg_db_health *h)
{
    return (double)h->pool.logins_total;
}
static double f_logins_refused(const sg_db_health *h)
{
    return (double)h->pool.logins_refused;
}
static double f_check_failures(const sg_db_health *h)
{
    return (double)h->check_failures;
}
static double f_reconnects(const sg_db_health *h)
{
    return (double)h->reconnects;
}
static double f_up(const sg_db_health *h)
{
    return h->healthy;
}
static double f_critical(const sg_db_health *h)
{
    return h->critical;
}
static double f_latency(const sg_db_health *h)
{
    return h->latency_ms < 0 ? NAN : h->latency_ms / 1000;
}

static const struct {
    const char *name, *type, *help;
    figure_fn fn;
} figures[] = {
    {"sqlgate_pool_max_connections", "gauge", "Pool size bound (POOL_MAX).", f_max},
    {"sqlgate_pool_open_connections", "gauge", "Pooled connections open.", f_open},
    {"sqlgate_pool_in_use_connections", "gauge", "Pooled connections borrowed by a query.",
     f_in_use},
    {"sqlgate_pool_idle_connections", "gauge", "Pooled connections idle.", f_idle},
    {"sqlgate_pool_waiting_requests", "gauge", "Requests waiting for a connection.", f_waiting},
    {"sqlgate_pool_acquire_timeouts_total", "counter", "Waits for a connection that timed out.",
     f_timeouts},
    {"sqlgate_pool_connection_errors_total", "counter", "Failed attempts to open a connection.",
     f_errors},
    {"sqlgate_pool_connections_opened_total", "counter", "Connections opened by the pool.",
     f_opened},
    {"sqlgate_pool_connections_closed_total", "counter", "Connections closed by the pool.",
     f_closed},
    {"sqlgate_db_logins_total", "counter",
     "Logins to the database (pool and health check), within MAX_LOGINS_PER_SEC.", f_logins},
    {"sqlgate_db_logins_refused_total", "counter",
     "Logins refused by the rate limit: the caller's deadline came before its turn.",
     f_logins_refused},
    {"sqlgate_db_health_check_failures_total", "counter",
     "Health checks that failed (the database did not answer, refused the login, ...).",
     f_check_failures},
    {"sqlgate_db_reconnects_total", "counter", "Recoveries from down plus reconnect requests.",
     f_reconnects},
    {"sqlgate_db_up", "gauge", "1 when the database is healthy (ready or paused).", f_up},
    {"sqlgate_db_critical", "gauge", "1 when the database is critical for readiness.", f_critical},
    {"sqlgate_db_health_check_latency_seconds", "gauge",
     "Duration of the last successful health check (absent: none yet, or down).", f_latency},
    /* The same pool figures under HikariCP's names (docs/metrics.md). */
    {"sqlgate_pool_connections", "gauge", "Pooled connections open (hikaricp_connections).",
     f_open},
    {"sqlgate_pool_connections_active", "gauge",
     "Pooled connections borrowed by a query (hikaricp_connections_active).", f_in_use},
    {"sqlgate_pool_connections_idle", "gauge",
     "Pooled connections idle (hikaricp_connections_idle).", f_idle},
    {"sqlgate_pool_connections_pending", "gauge",
     "Requests waiting for a connection (hikaricp_connections_pending).", f_waiting},
    {"sqlgate_pool_connections_max", "gauge", "POOL_MAX (hikaricp_connections_max).", f_max},
    {"sqlgate_pool_connections_min", "gauge", "POOL_MIN (hikaricp_connections_min).", f_min},
    {"sqlgate_pool_connections_timeout_total", "counter",
     "Waits for a connection that timed out (hikaricp_connections_timeout_total).", f_timeouts},
};

/* Per-database timing histograms, from the database object (sg_db_timings). */
static const struct {
    const char *name, *help;
    size_t offset;
} timings[] = {
    {"sqlgate_pool_acquire_seconds",
     "Wait for a pooled connection, successful or not (hikaricp_connections_acquire_seconds).",
     offsetof(sg_db_timings, acquire)},
    {"sqlgate_pool_connections_usage_seconds",
     "Time a connection stays borrowed by a query (hikaricp_connections_usage_seconds).",
     offsetof(sg_db_timings, usage)},
    {"sqlgate_pool_connections_creation_seconds",
     "Time to open a new connection, login included (hikaricp_connections_creation_seconds).",
     offsetof(sg_db_timings, creation)},
};

static const char *const class_names[N_CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

char *metrics_render(metrics *m, unsigned inflight, size_t *len)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (f == NULL)
        return NULL;
    size_t n;
    sg_db **dbs = sg_registry_acquire_all(m->reg, &n);
    sg_db_health *h = calloc(n ? n : 1, sizeof *h);
    db_metrics **dm = calloc(n ? n : 1, sizeof *dm);
    sg_db_timings *t = calloc(n ? n : 1, sizeof *t);
    bool slots_ok = true;
    for (size_t i = 0; dm != NULL && i < n; i++)
        slots_ok &= (dm[i] = db_slot(m, sg_db_name(dbs[i]))) != NULL;
    if (h == NULL || dm == NULL || t == NULL || !slots_ok) {
        sg_registry_release_all(m->reg, dbs, n);
        free(h);
        free(dm);
        free(t);
        fclose(f);
        free(text);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        sg_db_health_get(dbs[i], &h[i]);
        sg_db_timings_get(dbs[i], &t[i]);
    }

    help(f, "sqlgate_build_info", "gauge", "Version of this sqlgate.");
    fprintf(f, "sqlgate_build_info{version=\"%s\"} 1\n", SQLGATE_VERSION);

    for (size_t k = 0; k < sizeof figures / sizeof figures[0]; k++) {
        help(f, figures[k].name, figures[k].type, figures[k].help);
        for (size_t i = 0; i < n; i++) {
            double v = figures[k].fn(&h[i]);
            if (!isnan(v))
                fprintf(f, "%s{db=\"%s\"} %.17g\n", figures[k].name, sg_db_name(dbs[i]), v);
        }
    }
    for (size_t k = 0; k < sizeof timings / sizeof timings[0]; k++) {
        help(f, timings[k].name, "histogram", timings[k].help);
        for (size_t i = 0; i < n; i++) {
            char labels[SG_NAME_MAX + 8];
            snprintf(labels, sizeof labels, "db=\"%s\"", sg_db_name(dbs[i]));
            hist_write(f, timings[k].name, labels,
                       (const sg_hist_snap *)((const char *)&t[i] + timings[k].offset));
        }
    }
    help(f, "sqlgate_db_state", "gauge", "1 for the state the database is in, 0 for the others.");
    for (size_t i = 0; i < n; i++)
        for (sg_db_state s = SG_STATE_STARTING; s <= SG_STATE_CLOSED; s++)
            fprintf(f, "sqlgate_db_state{db=\"%s\",state=\"%s\"} %d\n", sg_db_name(dbs[i]),
                    sg_db_state_name(s), h[i].state == s);

    help(f, "sqlgate_queries_total", "counter", "Queries by database and outcome.");
    for (size_t i = 0; i < n; i++)
        queries_total(f, sg_db_name(dbs[i]), dm[i]);

    help(f, "sqlgate_query_duration_seconds", "histogram",
         "Time from request arrival to the last byte of the result, by database.");
    for (size_t i = 0; i < n; i++) {
        char labels[SG_NAME_MAX + 8];
        snprintf(labels, sizeof labels, "db=\"%s\"", sg_db_name(dbs[i]));
        sg_hist_snap snap;
        sg_hist_snapshot(&dm[i]->query, &snap);
        hist_write(f, "sqlgate_query_duration_seconds", labels, &snap);
    }

    help(f, "sqlgate_http_requests_total", "counter", "HTTP requests by route and status.");
    for (size_t r = 0; r <= m->n_routes; r++) {
        for (size_t s = 0; s < N_STATUSES; s++) {
            unsigned long long c = atomic_load(&m->http[r * N_STATUSES + s]);
            if (c == 0)
                continue;
            char status[8];
            if (statuses[s] != 0)
                snprintf(status, sizeof status, "%d", statuses[s]);
            else
                snprintf(status, sizeof status, "other");
            fprintf(f,
                    "sqlgate_http_requests_total{method=\"%s\",route=\"%s\",status=\"%s\"} %llu\n",
                    r < m->n_routes ? m->routes[r].method : "",
                    r < m->n_routes ? m->routes[r].pattern : "unmatched", status, c);
        }
    }
    help(f, "sqlgate_http_requests_in_flight", "gauge", "HTTP requests being served.");
    fprintf(f, "sqlgate_http_requests_in_flight %u\n", inflight);

    /* Only the (route, class) pairs that had a request: the set is bounded
     * by the route table, never by what clients send. */
    help(f, "sqlgate_http_request_duration_seconds", "histogram",
         "Time from a request's arrival to the last byte of its answer, by route template and "
         "status class.");
    for (size_t r = 0; r <= m->n_routes; r++) {
        for (size_t c = 0; c < N_CLASSES; c++) {
            sg_hist_snap snap;
            sg_hist_snapshot(&m->http_hist[r * N_CLASSES + c], &snap);
            if (snap.count == 0)
                continue;
            char labels[160];
            snprintf(labels, sizeof labels, "route=\"%s\",code=\"%s\"",
                     r < m->n_routes ? m->routes[r].pattern : "unmatched", class_names[c]);
            hist_write(f, "sqlgate_http_request_duration_seconds", labels, &snap);
        }
    }
    procstat_write(f);
    sg_registry_release_all(m->reg, dbs, n);
    free(h);
    free(dm);
    free(t);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    *len = size;
    return text;
}
