/* notify: systemd's service notification protocol (sd_notify(3)), spoken
 * without libsystemd: one datagram per message to the Unix socket named by
 * NOTIFY_SOCKET (a path, or "@name" for the abstract namespace) in the
 * environment the process started with. Without NOTIFY_SOCKET nothing is
 * sent and no thread runs.
 *
 * What systemd hears (docs/operations.md, "systemd notifications"):
 *   READY=1      once every database had its first health check (down
 *                counts: a database that is down does not hold the start);
 *   RELOADING=1  / READY=1 around a reload (reload.c, through notify_send);
 *   STOPPING=1   when the shutdown begins;
 *   WATCHDOG=1   every WATCHDOG_USEC / 2 from READY=1 until the HTTP server
 *                has stopped, when WATCHDOG_USEC is set and WATCHDOG_PID is
 *                unset or names this process; each after reading every
 *                database's health snapshot as /health does, so a deadlock
 *                on those locks stops it. It does not send an HTTP request to
 *                the service itself.
 */
#ifndef SQLGATE_NOTIFY_H
#define SQLGATE_NOTIFY_H

#include "app.h"
#include "sqlgate/error.h"

typedef struct notifier notifier;

/* Sends state (borrowed, "KEY=VALUE" lines) to env's NOTIFY_SOCKET. Best
 * effort: a message that cannot be sent only delays systemd's view, so
 * failures are ignored. Thread-safe. */
void notify_send(const app_env *env, const char *state);

/* Starts the notifier thread for a (borrowed; a->env and a->reg must outlive
 * it). Returns a new notifier, NULL with err SG_INTERNAL when its thread
 * cannot start; a notifier without NOTIFY_SOCKET starts no thread. */
notifier *notify_start(app *a, sg_err *err);

/* Shutdown began: STOPPING=1 (and READY=1 is never sent after it). */
void notify_stopping(notifier *n);

/* Ends the watchdog and joins the thread; frees n. Accepts NULL. */
void notify_stop(notifier *n);

#endif
