/* reload: loading the configuration the way a start does, and applying a
 * new one to the running service.
 *
 * What a reload reads: the environment as it was when the process started
 * (a copy taken then: a reload never sees variables the process or a library
 * set since, such as the FREETDSCONF the FreeTDS driver exports), then the
 * .env file (SQLGATE_ENV_FILE, read from that environment only), the token
 * files and every _FILE secret, read anew. The real environment wins over
 * the file, as at start.
 *
 * What it changes: databases (added, removed, changed, unchanged; see
 * sg_registry_apply) and every service-wide setting that is read per
 * request or at the moment of use (tokens, health details, body and row
 * caps, anonymous access, shutdown delay and drain timeout). Refused, with
 * nothing changed: SQLGATE_LISTEN, the TLS files, and a FreeTDS database
 * whose freetds.conf section (ENCRYPT other than request, CA_FILE) would
 * differ from the one written at start. Kept until a restart, with a
 * warning: SQLGATE_LOG_LEVEL and SQLGATE_LOG_FORMAT.
 */
#ifndef SQLGATE_RELOAD_H
#define SQLGATE_RELOAD_H

#include <jansson.h>

#include "app.h"
#include "sqlgate/config.h"
#include "sqlgate/error.h"

/* A copy of the process environment (new; NULL on allocation failure). */
app_env *app_env_capture(char **environ_);
void app_env_free(app_env *env); /* accepts NULL */

/* sg_lookup_fn over an app_env (ud is the app_env *). */
const char *app_env_lookup(void *ud, const char *name);

/* The .env path the environment names (SQLGATE_ENV_FILE), else ".env".
 * Borrowed from env. */
const char *app_env_file(const app_env *env);

/* Loads and validates the whole configuration as a start does: the .env
 * file, the loader's checks and the service's own (drivers built in, TLS
 * support). A new snapshot, or NULL with *errors set to a new JSON array of
 * strings, one problem each, each naming its variable (never a secret). */
sg_config *reload_load_config(const app_env *env, json_t **errors);

/* Logs the warnings cli_check finds in cfg (borrowed): for a start every
 * database's (added and changed NULL), for a reload those of the databases it
 * creates (names in added or changed, borrowed JSON arrays). */
void reload_log_warnings(const sg_config *cfg, json_t *added, json_t *changed);

/* Re-reads and applies the configuration; serialized. trigger ("SIGHUP",
 * "http") goes into the log lines. On success returns 0 and *report (new)
 * is {"added": [...], "removed": [...], "changed": [...], "unchanged": [...]},
 * also logged. On failure returns -1 with err set and nothing changed:
 * SG_CONFIG_INVALID with *errors (new array of strings, also logged),
 * SG_SHUTTING_DOWN once shutdown began, SG_INTERNAL otherwise. With
 * NOTIFY_SOCKET set at start, systemd hears RELOADING=1 (and MONOTONIC_USEC)
 * before and READY=1 after, whatever the outcome. */
int app_reload(app *a, const char *trigger, json_t **report, json_t **errors, sg_err *err);

/* Waits for a reload in progress to end. Called once draining is set, so
 * that no reload changes the registry while shutdown closes it. */
void reload_fence(app *a);

/* The SIGHUP worker: a thread that runs app_reload for reload_kick, so the
 * signal thread never waits on a reload. Kicks that arrive during a reload
 * are coalesced into one more. 0, or -1 with err. */
int reload_worker_start(app *a, sg_err *err);
void reload_kick(app *a);        /* async-signal-unsafe; from the signal thread */
void reload_worker_stop(app *a); /* joins; accepts a never-started worker */

#endif
