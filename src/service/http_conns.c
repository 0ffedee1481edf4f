/* http_conns: every client connection from accept to close: per-client and
 * total caps (idle ones are evicted first), a deadline per phase (headers,
 * body, response, idle) and the reaper thread that cuts connections past
 * theirs. See http_int.h. */
#include "http_int.h"

#include <arpa/inet.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sqlgate/clock.h"

/* --- Connections: deadlines, caps and the reaper ------------------------------ */

/* libmicrohttpd only knows an inactivity timeout per connection, which a
 * client sending a byte now and then (or reading a byte now and then)
 * never trips. Every connection is therefore listed with the deadline of
 * its current phase, and a reaper thread shut()s down the socket of one past
 * it: its thread (the connection's, or its event thread) then sees the end
 * of the connection and closes it, which frees a streamed response and so
 * ends its query (cancel, connection back to its pool). The same list
 * enforces the per-client cap and SQLGATE_MAX_CONNECTIONS, by closing idle
 * connections first. */

static bool same_client(const conn_entry *e, const struct sockaddr *a)
{
    const struct sockaddr *b = (const struct sockaddr *)&e->addr;
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                      &((const struct sockaddr_in *)b)->sin_addr, sizeof(struct in_addr)) == 0;
    if (a->sa_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    return false;
}

/* Lock held. */
static void conn_cut(http_server *srv, conn_entry *e)
{
    shutdown(e->fd, SHUT_RDWR);
    e->cut = true;
    srv->n_live--;
}

/* The oldest connection that is waiting for a request (optionally from
 * client a only), or NULL. Lock held. */
static conn_entry *oldest_idle(http_server *srv, const struct sockaddr *a)
{
    conn_entry *best = NULL;
    for (conn_entry *e = srv->conns; e != NULL; e = e->next) {
        if (e->cut || (e->phase != CP_HEADERS && e->phase != CP_IDLE))
            continue;
        if (a != NULL && !same_client(e, a))
            continue;
        if (best == NULL || e->since_us <= best->since_us)
            best = e;
    }
    return best;
}

/* Accept policy, on the listening or an event thread: a client at its cap gives up its
 * oldest idle connection for the new one, or is refused when all of them
 * are busy; at SQLGATE_MAX_CONNECTIONS the oldest idle connection of anyone
 * makes room, so that probes and real requests still get in (when none is
 * idle, the new connection is marked over the limit: its requests get 503). */
enum MHD_Result http_conns_on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    http_server *srv = cls;
    enum MHD_Result rc = MHD_YES;
    pthread_mutex_lock(&srv->conns_lock);
    unsigned same = 0;
    for (conn_entry *e = srv->conns; e != NULL; e = e->next)
        same += !e->cut && same_client(e, addr);
    const sg_config *cur = http_config_ref_current(srv);
    unsigned cap = cur->max_conns_per_client;
    sg_config_unref(cur);
    if (same >= cap) {
        conn_entry *victim = oldest_idle(srv, addr);
        if (victim != NULL) {
            conn_cut(srv, victim);
            atomic_fetch_add(&srv->n_evicted, 1);
        } else {
            atomic_fetch_add(&srv->n_refused, 1);
            rc = MHD_NO;
        }
    }
    if (rc == MHD_YES && srv->n_live >= srv->max_conns) {
        conn_entry *victim = oldest_idle(srv, NULL);
        if (victim != NULL) {
            conn_cut(srv, victim);
            atomic_fetch_add(&srv->n_evicted, 1);
        }
    }
    pthread_mutex_unlock(&srv->conns_lock);
    return rc;
}

void http_conns_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe)
{
    http_server *srv = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ad =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        conn_entry *e = calloc(1, sizeof *e);
        if (e == NULL || fd == NULL) {
            free(e); /* untracked: only libmicrohttpd's own timeout applies */
            return;
        }
        e->fd = fd->connect_fd;
        if (ad != NULL && ad->client_addr != NULL) {
            e->addr_len = ad->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                 : sizeof(struct sockaddr_in);
            memcpy(&e->addr, ad->client_addr, e->addr_len);
        }
        e->phase = CP_HEADERS;
        e->since_us = sg_clock_us();
        const sg_config *cur = http_config_ref_current(srv);
        e->deadline_us = e->since_us + cur->header_timeout_ms * 1000;
        sg_config_unref(cur);
        pthread_mutex_lock(&srv->conns_lock);
        e->next = srv->conns;
        if (srv->conns != NULL)
            srv->conns->prev = e;
        srv->conns = e;
        srv->n_live++;
        e->over_limit = srv->n_live > srv->max_conns;
        pthread_mutex_unlock(&srv->conns_lock);
        *socket_context = e;
        return;
    }
    conn_entry *e = *socket_context;
    if (e == NULL)
        return;
    pthread_mutex_lock(&srv->conns_lock);
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        srv->conns = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    if (!e->cut)
        srv->n_live--;
    pthread_mutex_unlock(&srv->conns_lock);
    free(e);
    *socket_context = NULL;
}

/* Moves conn into phase with a deadline (0: none). */
void http_conn_phase_set(http_server *srv, struct MHD_Connection *conn, conn_phase phase,
                         int64_t deadline_us)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_entry *e = ci != NULL ? ci->socket_context : NULL;
    if (e == NULL)
        return;
    pthread_mutex_lock(&srv->conns_lock);
    e->phase = phase;
    e->since_us = sg_clock_us();
    e->deadline_us = deadline_us;
    pthread_mutex_unlock(&srv->conns_lock);
}

bool http_conn_over_limit(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    const conn_entry *e = ci != NULL ? ci->socket_context : NULL;
    return e != NULL && e->over_limit; /* set once, before any request */
}

void *http_conns_reaper(void *arg)
{
    http_server *srv = arg;
    while (!atomic_load(&srv->reaper_stop)) {
        poll(NULL, 0, REAPER_PERIOD_MS);
        int64_t now = sg_clock_us();
        unsigned cut = 0, responses = 0;
        pthread_mutex_lock(&srv->conns_lock);
        for (conn_entry *e = srv->conns; e != NULL; e = e->next) {
            if (!e->cut && e->deadline_us != 0 && now >= e->deadline_us) {
                responses += e->phase == CP_RESPONDING;
                conn_cut(srv, e);
                cut++;
            }
        }
        pthread_mutex_unlock(&srv->conns_lock);
        if (cut > 0)
            atomic_fetch_add(&srv->n_timed_out, cut);
        /* Idle and slow-header closes are routine (and an attacker's to
         * multiply); a response cut short is news to whoever sent it. */
        if (responses > 0)
            log_at(SG_LOG_INFO, "responses cut: the client did not read them in time",
                   log_int("count", responses));
    }
    return NULL;
}
