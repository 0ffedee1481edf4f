/* metrics: counters the service keeps, and GET /metrics in Prometheus text
 * format. Recording is lock-free (atomics), so it costs requests nothing
 * measurable; rendering reads pool and health figures from the registry. */
#ifndef SQLGATE_METRICS_H
#define SQLGATE_METRICS_H

#include <stddef.h>

#include "http.h"
#include "sqlgate/error.h"
#include "sqlgate/registry.h"

typedef struct metrics metrics;

/* New, all zero. reg and routes are borrowed and must outlive it (the route
 * table is needed to label HTTP counters). Databases may come and go in reg
 * (a reload): counters are kept by database name, and /metrics shows the
 * databases registered when it is rendered. NULL on allocation failure. */
metrics *metrics_new(sg_registry *reg, const http_route *routes, size_t n_routes);
void metrics_free(metrics *m); /* accepts NULL */

/* One query on database db (borrowed, held by the caller) ended with outcome code
 * after `seconds`. */
void metrics_query(metrics *m, const sg_db *db, sg_code outcome, double seconds);

/* One HTTP request answered after duration_us (arrival to the last byte sent);
 * route NULL when no route matched. Lock-free. */
void metrics_http(metrics *m, const http_route *route, int status, int64_t duration_us);

/* The exposition text (new, caller frees), or NULL on allocation failure.
 * inflight: requests being served right now. */
char *metrics_render(metrics *m, unsigned inflight, size_t *len);

#endif
