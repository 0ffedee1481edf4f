/* app: what the HTTP handlers share, owned by main. */
#ifndef SQLGATE_APP_H
#define SQLGATE_APP_H

#include <stdatomic.h>

#include "http.h"
#include "metrics.h"
#include "sqlgate/config.h"
#include "sqlgate/registry.h"

typedef struct app {
    const sg_config *cfg; /* borrowed from main */
    sg_registry *reg;     /* borrowed from main */
    metrics *metrics;     /* borrowed from main */
    http_server *srv;     /* borrowed from main; set once listening */
    atomic_bool draining; /* shutdown began: readiness fails */
} app;

/* http_observe_fn for the server: counts requests in the metrics. */
void api_observe(void *app, const http_route *route, int status);

/* The route table of the HTTP API (static). */
extern const http_route api_routes[];
extern const size_t api_n_routes;

#endif
