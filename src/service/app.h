/* app: what the HTTP handlers share, owned by main. */
#ifndef SQLGATE_APP_H
#define SQLGATE_APP_H

#include <pthread.h>
#include <stdatomic.h>

#include "http.h"
#include "metrics.h"
#include "sqlgate/config.h"
#include "sqlgate/registry.h"

typedef struct app_env app_env;   /* reload.h */
typedef struct reloader reloader; /* reload.h */

/* Configuration in force: a reload (reload.c) loads a new snapshot and swaps
 * it in; nothing else changes it. Code that reads settings takes a reference
 * for as long as it uses them: a request through http_req_config(req) (the
 * snapshot it began with), anything else through app_config_acquire. Never
 * keep a pointer to the current snapshot without a reference. */
typedef struct app {
    sg_registry *reg;           /* borrowed from main; live (databases come and go) */
    metrics *metrics;           /* borrowed from main */
    http_server *srv;           /* borrowed from main; set once listening */
    atomic_bool draining;       /* shutdown began: readiness fails, reloads are refused */
    atomic_bool notified_ready; /* the start's READY=1 went to systemd (notify.c) */

    pthread_mutex_t cfg_mu;       /* guards cfg_current */
    const sg_config *cfg_current; /* a reference; swapped by a reload */
    const sg_config *boot;        /* a reference to the start's snapshot: the
                                     listen address, TLS files and freetds.conf
                                     that cannot change without a restart */
    const app_env *env;           /* borrowed from main: the environment at start */
    pthread_mutex_t reload_mu;    /* one reload at a time */
    reloader *reloader;           /* SIGHUP's worker; owned by main */
    sg_db_state_fn on_state;      /* installed on every database, also a reload's */
} app;

/* A new reference to the configuration in force; give it back with
 * app_config_release. Thread-safe. */
const sg_config *app_config_acquire(app *a);
void app_config_release(const sg_config *cfg); /* accepts NULL */

/* http_observe_fn for the server: counts requests in the metrics. */
void api_observe(void *app, const http_route *route, int status, int64_t duration_us);

/* The route table of the HTTP API (static). */
extern const http_route api_routes[];
extern const size_t api_n_routes;

#endif
