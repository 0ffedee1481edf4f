/* TDS test server: listener, client threads, login, request dispatch, knobs.
 * Wire encoding lives in tds_wire.c, SQL in tds_exec.c.
 *
 * Threads: one accept thread and one thread per client. Every blocking wait
 * polls the client socket together with the server's stop pipe, so stop wakes
 * them all; a client blocked in send() is woken by shutdown() of its socket.
 */
#include "tds_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "tds_exec.h"
#include "tds_tls.h"
#include "tds_wire.h"

#define DEFAULT_PACKET 4096
/* A client that starts a packet must finish it within this time. */
#define PACKET_TIMEOUT_MS 30000
/* A connection must log in within this time. */
#define LOGIN_TIMEOUT_MS 60000
#define FIRST_SPID       51

typedef struct client {
    struct tds_server *srv;
    int fd;
    int slot;
    pthread_t thread;
    bool done; /* thread finished; guarded by srv->mu */
    uint16_t spid;
    uint32_t ver;
    tds_writer w;
    tds_session *sess;
    bool attention;   /* ATTENTION received, not yet acknowledged */
    bool closed;      /* peer gone, protocol error or server stopping */
    bool ignore_attn; /* knob snapshot of the current request */
    /* Encryption: while tls is set, the client's bytes are TLS records and
     * what is read comes out of `plain`. */
    tds_tls *tls;
    tds_buf plain;   /* decrypted, not yet read */
    tds_buf cipher;  /* scratch for records to send */
    bool login_only; /* TLS ends once LOGIN7 is read */
    bool logged_in;
} client;

struct tds_server {
    pthread_mutex_t mu;
    char *user;
    char *password;
    char *ro_user;     /* the read-only login, or NULL */
    char *ro_password; /* its password, or NULL */
    char *database;
    char *sqlite_path;
    char *tmpdir; /* set when the database is a private temporary file */
    int listen_fd;
    int port;
    int stop_pipe[2];
    atomic_bool stopping;
    bool accept_started;
    pthread_t accept_thread;
    client *clients[TDS_SERVER_MAX_CLIENTS];
    long knobs[TDS_KNOB_COUNT];
    char *filter;
    tds_server_stats stats;
    uint16_t next_spid;
    tds_server_encrypt encrypt;
    tds_tls_ctx *tls_ctx; /* NULL when encrypt is NOTSUP */
    /* Counted per packet or record, so without the lock (benchmarks). */
    atomic_uint_fast64_t tls_records_after_login;
    atomic_uint_fast64_t clear_packets_after_login;
};

static const char *const knob_names[TDS_KNOB_COUNT] = {
    "refuse_login",     "login_delay_ms",   "login_hang",    "query_delay_ms",
    "query_hang",       "close_mid_result", "garbage_token", "raise_error",
    "ignore_attention", "tls_stall",        "tls_drop",
};

const char *tds_knob_name(tds_knob knob)
{
    return (unsigned)knob < TDS_KNOB_COUNT ? knob_names[knob] : NULL;
}

int tds_knob_from_name(const char *name, tds_knob *out)
{
    for (int i = 0; i < TDS_KNOB_COUNT; i++) {
        if (name != NULL && strcmp(name, knob_names[i]) == 0) {
            *out = (tds_knob)i;
            return 0;
        }
    }
    return -1;
}

int tds_server_set_knob(tds_server *s, tds_knob knob, long value)
{
    if ((unsigned)knob >= TDS_KNOB_COUNT || value < 0)
        return -1;
    pthread_mutex_lock(&s->mu);
    s->knobs[knob] = value;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

long tds_server_get_knob(tds_server *s, tds_knob knob)
{
    if ((unsigned)knob >= TDS_KNOB_COUNT)
        return 0;
    pthread_mutex_lock(&s->mu);
    long v = s->knobs[knob];
    pthread_mutex_unlock(&s->mu);
    return v;
}

void tds_server_reset_knobs(tds_server *s)
{
    pthread_mutex_lock(&s->mu);
    memset(s->knobs, 0, sizeof(s->knobs));
    free(s->filter);
    s->filter = NULL;
    pthread_mutex_unlock(&s->mu);
}

int tds_server_set_query_filter(tds_server *s, const char *substring)
{
    char *copy = NULL;
    if (substring != NULL && substring[0] != '\0') {
        copy = strdup(substring);
        if (copy == NULL)
            return -1;
    }
    pthread_mutex_lock(&s->mu);
    free(s->filter);
    s->filter = copy;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void tds_server_get_stats(tds_server *s, tds_server_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    out->connections_active = s->stats.connections_opened - s->stats.connections_closed;
    out->tls_records_after_login = atomic_load(&s->tls_records_after_login);
    out->clear_packets_after_login = atomic_load(&s->clear_packets_after_login);
    pthread_mutex_unlock(&s->mu);
}

int tds_server_port(const tds_server *s)
{
    return s->port;
}

static void count(tds_server *s, uint64_t *counter)
{
    pthread_mutex_lock(&s->mu);
    (*counter)++;
    pthread_mutex_unlock(&s->mu);
}

/* ---- socket I/O ------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef enum wait_result { W_READABLE, W_TIMEOUT, W_STOP, W_ERROR } wait_result;

/* Waits until the client socket is readable, the server stops, or timeout_ms
 * passes (< 0: no timeout). */
static wait_result wait_readable(client *c, long timeout_ms)
{
    int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : 0;
    for (;;) {
        if (atomic_load(&c->srv->stopping))
            return W_STOP;
        struct pollfd pf[2] = {{.fd = c->fd, .events = POLLIN},
                               {.fd = c->srv->stop_pipe[0], .events = POLLIN}};
        int t = -1;
        if (timeout_ms >= 0) {
            int64_t left = deadline - now_ms();
            if (left <= 0)
                return W_TIMEOUT;
            t = left > 1000000 ? 1000000 : (int)left;
        }
        int n = poll(pf, 2, t);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return W_ERROR;
        }
        if (n == 0) {
            if (timeout_ms >= 0)
                continue; /* re-check the deadline */
            continue;
        }
        if (pf[1].revents)
            return W_STOP;
        if (pf[0].revents)
            return W_READABLE;
    }
}

/* Reads exactly n bytes from the socket; first_timeout applies to the first
 * byte, then PACKET_TIMEOUT_MS. Returns 0, or -1 (closed, timeout, stop,
 * error). */
static int raw_read_full(client *c, uint8_t *p, size_t n, long first_timeout)
{
    size_t got = 0;
    while (got < n) {
        wait_result wr = wait_readable(c, got == 0 ? first_timeout : PACKET_TIMEOUT_MS);
        if (wr != W_READABLE)
            return -1;
        ssize_t r = recv(c->fd, p + got, n - got, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* Reads one TLS record from the socket and decrypts it into c->plain. One
 * record at a time, so that after a login-only LOGIN7 nothing of the clear
 * stream that follows has been taken. */
static int read_tls_record(client *c, long timeout)
{
    uint8_t rec[TDS_TLS_RECORD_HEADER + TDS_TLS_RECORD_MAX];
    size_t len;
    if (raw_read_full(c, rec, TDS_TLS_RECORD_HEADER, timeout) != 0 ||
        tds_tls_record_header(rec, &len) != 0 ||
        raw_read_full(c, rec + TDS_TLS_RECORD_HEADER, len, PACKET_TIMEOUT_MS) != 0)
        return -1;
    if (c->logged_in)
        atomic_fetch_add_explicit(&c->srv->tls_records_after_login, 1, memory_order_relaxed);
    if (tds_tls_feed(c->tls, rec, TDS_TLS_RECORD_HEADER + len) != 0 ||
        tds_tls_read(c->tls, &c->plain) != 0)
        return -1;
    return 0;
}

/* Reads exactly n bytes of the TDS stream, through TLS when it is on. */
static int read_full(client *c, uint8_t *p, size_t n, long first_timeout)
{
    if (c->tls == NULL)
        return raw_read_full(c, p, n, first_timeout);
    size_t got = 0;
    while (got < n) {
        if (c->plain.len > 0) {
            size_t k = c->plain.len < n - got ? c->plain.len : n - got;
            memcpy(p + got, c->plain.data, k);
            tds_buf_consume(&c->plain, k);
            got += k;
        } else if (read_tls_record(c, got == 0 ? first_timeout : PACKET_TIMEOUT_MS) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Reads one message (all packets up to EOM) into body. Returns 0 with its
 * type, or -1 when the connection must end. */
static int read_message(client *c, uint8_t *type, uint8_t *status, tds_buf *body,
                        long first_timeout)
{
    tds_buf_reset(body);
    bool first = true;
    /* Each packet carries at least one byte... or none; the cap on the message
     * size and on the packet count bounds the loop. */
    for (size_t npk = 0; npk < TDS_MAX_MESSAGE / 8; npk++) {
        uint8_t hdr[TDS_HEADER_SIZE];
        if (read_full(c, hdr, sizeof(hdr), first ? first_timeout : PACKET_TIMEOUT_MS) != 0)
            return -1;
        tds_header h;
        if (tds_header_parse(hdr, sizeof(hdr), &h) != 0)
            return -1;
        if (c->logged_in && c->tls == NULL)
            atomic_fetch_add_explicit(&c->srv->clear_packets_after_login, 1, memory_order_relaxed);
        if (first) {
            *type = h.type;
            *status = h.status;
        } else if (h.type != *type) {
            return -1;
        }
        first = false;
        size_t n = h.length - TDS_HEADER_SIZE;
        if (n > 0) {
            uint8_t buf[65536];
            if (read_full(c, buf, n, PACKET_TIMEOUT_MS) != 0)
                return -1;
            tds_buf_put(body, buf, n);
            if (body->failed)
                return -1;
        }
        if (h.status & TDS_STATUS_EOM)
            return 0;
    }
    return -1;
}

static int raw_send(client *c, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t r = send(c->fd, p + off, n - off, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            c->closed = true;
            return -1;
        }
        off += (size_t)r;
    }
    return 0;
}

/* The writer's way out: through TLS when it is on. */
static int send_all(void *ctx, const uint8_t *p, size_t n)
{
    client *c = ctx;
    if (c->tls == NULL)
        return raw_send(c, p, n);
    tds_buf_reset(&c->cipher);
    if (tds_tls_write(c->tls, p, n, &c->cipher) != 0) {
        c->closed = true;
        return -1;
    }
    return raw_send(c, c->cipher.data, c->cipher.len);
}

/* Reads what the client sent while a request runs: only ATTENTION is legal.
 * Called when the socket is readable. */
static void take_client_input(client *c)
{
    uint8_t type = 0, status = 0;
    tds_buf body;
    tds_buf_init(&body, 65536);
    if (read_message(c, &type, &status, &body, PACKET_TIMEOUT_MS) != 0 ||
        type != TDS_PKT_ATTENTION) {
        c->closed = true;
    } else {
        count(c->srv, &c->srv->stats.attentions);
        if (!c->ignore_attn)
            c->attention = true;
    }
    tds_buf_free(&body);
}

static bool hook_cancelled(void *ctx)
{
    client *c = ctx;
    if (c->closed || c->attention)
        return true;
    if (atomic_load(&c->srv->stopping)) {
        c->closed = true;
        return true;
    }
    struct pollfd pf = {.fd = c->fd, .events = POLLIN};
    if (poll(&pf, 1, 0) > 0)
        take_client_input(c);
    return c->closed || c->attention;
}

static bool hook_wait(void *ctx, long ms)
{
    client *c = ctx;
    int64_t deadline = ms >= 0 ? now_ms() + ms : 0;
    for (;;) {
        if (c->closed || c->attention)
            return true;
        long left = -1;
        if (ms >= 0) {
            int64_t l = deadline - now_ms();
            if (l <= 0)
                return false;
            left = (long)l;
        }
        wait_result wr = wait_readable(c, left);
        if (wr == W_TIMEOUT)
            return false;
        if (wr != W_READABLE) {
            c->closed = true;
            return true;
        }
        take_client_input(c);
    }
}

static int hook_set_knob(void *ctx, const char *name, long value)
{
    client *c = ctx;
    if (strcmp(name, "reset") == 0) {
        tds_server_reset_knobs(c->srv);
        return 0;
    }
    tds_knob k;
    if (tds_knob_from_name(name, &k) != 0)
        return -1;
    return tds_server_set_knob(c->srv, k, value);
}

/* ---- login -------------------------------------------------------------------------- */

static int send_login_error(client *c, int number, const char *msg, uint32_t ver)
{
    tds_writer_discard(&c->w);
    tds_tok_message(&c->w.tok, TDS_TOK_ERROR, number, 1, 14, msg, "sqlgate-tds", "", 1, ver);
    tds_tok_done(&c->w.tok, TDS_TOK_DONE, TDS_DONE_ERROR, 0, 0, ver);
    /* Counted before the reply, so a client that saw it sees the count too. */
    count(c->srv, &c->srv->stats.login_failures);
    (void)tds_writer_flush(&c->w, TDS_FLUSH_EOM);
    return -1;
}

/* Sends TLS handshake bytes to the client inside PRELOGIN packets. */
static int send_handshake(client *c, const tds_buf *out)
{
    if (out->len == 0)
        return 0;
    c->w.type = TDS_PKT_PRELOGIN;
    tds_buf_put(&c->w.tok, out->data, out->len);
    int rc = tds_writer_flush(&c->w, TDS_FLUSH_EOM);
    c->w.type = TDS_PKT_REPLY;
    return rc;
}

/* Runs the server side of the TLS handshake, carried inside PRELOGIN packets
 * both ways. Returns 0 with c->tls set, or -1 to hang up. */
static int tls_handshake(client *c, tds_buf *body)
{
    tds_server *s = c->srv;
    pthread_mutex_lock(&s->mu);
    bool stall = s->knobs[TDS_KNOB_TLS_STALL] != 0;
    bool drop = s->knobs[TDS_KNOB_TLS_DROP] != 0;
    pthread_mutex_unlock(&s->mu);
    tds_tls *t = tds_tls_new(s->tls_ctx);
    tds_buf out;
    tds_buf_init(&out, 1024 * 1024);
    int rc = -1, hs = 0;
    while (t != NULL && hs == 0) {
        uint8_t type, status;
        if (read_message(c, &type, &status, body, LOGIN_TIMEOUT_MS) != 0 ||
            type != TDS_PKT_PRELOGIN)
            break;
        if (stall) {
            /* The ClientHello stays unanswered until the client gives up. */
            while (wait_readable(c, -1) == W_READABLE) {
                uint8_t tmp[512];
                if (recv(c->fd, tmp, sizeof(tmp), 0) <= 0)
                    break;
            }
            break;
        }
        if (drop)
            break;
        char why[256];
        if (tds_tls_feed(t, body->data, body->len) != 0)
            break;
        hs = tds_tls_handshake(t, why, sizeof(why));
        tds_buf_reset(&out);
        tds_tls_take(t, &out);
        /* Even a failed handshake has its alert to send. */
        if (out.failed || send_handshake(c, &out) != 0 || hs < 0)
            break;
    }
    if (hs == 1) {
        c->tls = t;
        t = NULL;
        count(s, &s->stats.tls_handshakes);
        rc = 0;
    } else {
        count(s, &s->stats.tls_failures);
    }
    tds_tls_free(t);
    tds_buf_free(&out);
    return rc;
}

/* Answers PRELOGIN's ENCRYPTION as SQL Server does (MS-TDS 2.2.6.5) and sets
 * up the TLS that was agreed. Returns 0 to go on with LOGIN7, -1 to hang up. */
static int negotiate_encryption(client *c, const tds_prelogin *pl, tds_buf *body)
{
    tds_server *s = c->srv;
    uint8_t want = pl->has_encryption ? pl->encryption : TDS_ENCRYPT_NOT_SUP;
    bool can = want != TDS_ENCRYPT_NOT_SUP;
    uint8_t answer = TDS_ENCRYPT_NOT_SUP;
    bool tls = false, refuse = false;
    switch (s->encrypt) {
    case TDS_SERVER_ENCRYPT_NOTSUP:
        break;
    case TDS_SERVER_ENCRYPT_OFF:
        if (can) {
            answer = want == TDS_ENCRYPT_OFF ? TDS_ENCRYPT_OFF : TDS_ENCRYPT_ON;
            tls = true;
            c->login_only = want == TDS_ENCRYPT_OFF;
        }
        break;
    case TDS_SERVER_ENCRYPT_ON:
    case TDS_SERVER_ENCRYPT_REQ:
        answer = s->encrypt == TDS_SERVER_ENCRYPT_ON && can ? TDS_ENCRYPT_ON : TDS_ENCRYPT_REQ;
        tls = can;
        refuse = !can;
        break;
    }
    tds_prelogin_reply(&c->w.tok, answer);
    if (tds_writer_flush(&c->w, TDS_FLUSH_EOM) != 0)
        return -1;
    if (refuse) {
        /* SQL Server sends no TDS error here: it logs 17835 and closes. */
        count(s, &s->stats.tls_refused);
        return -1;
    }
    return tls ? tls_handshake(c, body) : 0;
}

/* Handles PRELOGIN and LOGIN7. Returns 0 when logged in. */
static int do_login(client *c)
{
    tds_server *s = c->srv;
    tds_buf body;
    tds_buf_init(&body, 1024 * 1024);
    uint8_t type, status;
    int rc = -1;
    tds_login7 login;
    memset(&login, 0, sizeof(login));
    if (read_message(c, &type, &status, &body, LOGIN_TIMEOUT_MS) != 0)
        goto done;
    if (type == TDS_PKT_PRELOGIN) {
        tds_prelogin pl;
        if (tds_prelogin_parse(body.data, body.len, &pl) != 0)
            goto done;
        if (negotiate_encryption(c, &pl, &body) != 0)
            goto done;
        if (read_message(c, &type, &status, &body, LOGIN_TIMEOUT_MS) != 0)
            goto done;
    }
    if (c->tls != NULL) {
        count(s, &s->stats.login7_encrypted);
        /* Login-only: both sides drop TLS after LOGIN7, without a goodbye. */
        if (c->login_only) {
            if (c->plain.len != 0)
                goto done;
            tds_tls_free(c->tls);
            c->tls = NULL;
        }
    }
    if (type != TDS_PKT_LOGIN7)
        goto done; /* TDS 4.2/5.0 logins and anything else: hang up */
    char why[160];
    if (tds_login7_parse(body.data, body.len, &login, why, sizeof(why)) != 0) {
        send_login_error(c, 18456, "Login failed: malformed LOGIN7.", 0x74000004);
        goto done;
    }
    uint32_t ver = login.tds_version;
    if (TDS_VER(ver) < 0x71 || TDS_VER(ver) > 0x74) {
        send_login_error(c, 18456, "Login failed: TDS version not supported (7.1 to 7.4 only).",
                         TDS_VER(ver) < 0x71 ? 0x71000001 : 0x74000004);
        goto done;
    }
    c->ver = ver;
    pthread_mutex_lock(&s->mu);
    long hang = s->knobs[TDS_KNOB_LOGIN_HANG];
    long delay = s->knobs[TDS_KNOB_LOGIN_DELAY_MS];
    long refuse = s->knobs[TDS_KNOB_REFUSE_LOGIN];
    pthread_mutex_unlock(&s->mu);
    if (hang) {
        /* Until the client gives up (or sends anything). */
        while (wait_readable(c, -1) == W_READABLE) {
            uint8_t tmp[512];
            if (recv(c->fd, tmp, sizeof(tmp), 0) <= 0)
                break;
        }
        goto done;
    }
    if (delay > 0 && wait_readable(c, delay) != W_TIMEOUT)
        goto done;
    char msg[300];
    snprintf(msg, sizeof(msg), "Login failed for user '%.100s'.", login.username);
    bool main_login =
        strcmp(login.username, s->user) == 0 && strcmp(login.password, s->password) == 0;
    bool ro_login = s->ro_user != NULL && strcmp(login.username, s->ro_user) == 0 &&
                    strcmp(login.password, s->ro_password) == 0;
    if (refuse || (!main_login && !ro_login)) {
        send_login_error(c, 18456, msg, ver);
        goto done;
    }
    if (login.database[0] != '\0' && strcasecmp(login.database, s->database) != 0) {
        snprintf(msg, sizeof(msg),
                 "Cannot open database \"%.100s\" requested by the login. The login failed.",
                 login.database);
        send_login_error(c, 4060, msg, ver);
        goto done;
    }
    tds_exec_hooks hooks = {
        .ctx = c, .cancelled = hook_cancelled, .wait = hook_wait, .set_knob = hook_set_knob};
    c->sess =
        tds_session_new(s->sqlite_path, ver, s->database, c->spid, &c->w, &hooks, why, sizeof(why));
    if (c->sess == NULL || tds_session_set_login(c->sess, login.username, ro_login) != 0) {
        send_login_error(c, 4060, c->sess == NULL ? why : "cannot set up the login", ver);
        goto done;
    }
    uint32_t psize = login.packet_size;
    if (psize < 512 || psize > 32767)
        psize = DEFAULT_PACKET;
    char ps[16];
    snprintf(ps, sizeof(ps), "%u", psize);
    tds_buf *b = &c->w.tok;
    tds_tok_env_str(b, TDS_ENV_DATABASE, s->database, "master");
    tds_tok_env_collation(b);
    tds_tok_env_str(b, TDS_ENV_LANGUAGE, "us_english", "");
    tds_tok_env_str(b, TDS_ENV_PACKETSZ, ps, ps);
    tds_tok_loginack(b, ver, "Microsoft SQL Server");
    tds_tok_done(b, TDS_TOK_DONE, 0, 0, 0, ver);
    count(s, &s->stats.logins);
    if (c->tls != NULL)
        count(s, &s->stats.sessions_encrypted);
    else if (c->login_only)
        count(s, &s->stats.sessions_login_only);
    if (tds_writer_flush(&c->w, TDS_FLUSH_EOM) != 0)
        goto done;
    c->logged_in = true;
    c->w.packet_size = psize;
    rc = 0;
done:
    tds_login7_free(&login);
    tds_buf_free(&body);
    return rc;
}

/* ---- requests ----------------------------------------------------------------------- */

/* Acknowledges an ATTENTION. Mid-request, the cut response is ended first by
 * its own message (an empty one if nothing was produced): tedious reads one
 * response message before it looks for the acknowledgement in the next. */
static int ack_attention(client *c, bool mid_request)
{
    if (c->closed)
        return -1;
    if (mid_request && tds_writer_flush(&c->w, TDS_FLUSH_EOM) != 0)
        return -1;
    tds_tok_done(&c->w.tok, TDS_TOK_DONE, TDS_DONE_ATTN, 0, 0, c->ver);
    c->attention = false;
    return tds_writer_flush(&c->w, TDS_FLUSH_EOM);
}

static int send_request_error(client *c, const char *why)
{
    char msg[300];
    snprintf(msg, sizeof(msg), "sqlgate TDS test server: malformed request: %s", why);
    tds_writer_discard(&c->w);
    tds_tok_message(&c->w.tok, TDS_TOK_ERROR, 50000, 1, 16, msg, "sqlgate-tds", "", 1, c->ver);
    tds_tok_done(&c->w.tok, TDS_TOK_DONE, TDS_DONE_ERROR, 0, 0, c->ver);
    return tds_writer_flush(&c->w, TDS_FLUSH_EOM);
}

/* Runs one SQL batch or RPC. Returns 0 to go on, -1 to close. */
static int do_request(client *c, uint8_t type, const tds_buf *body)
{
    tds_server *s = c->srv;
    char why[200];
    char *sql = NULL;
    tds_rpc rpc;
    memset(&rpc, 0, sizeof(rpc));
    if (type == TDS_PKT_SQL_BATCH) {
        if (tds_batch_parse(body->data, body->len, c->ver, &sql, why, sizeof(why)) != 0)
            return send_request_error(c, why);
    } else if (tds_rpc_parse(body->data, body->len, c->ver, &rpc, why, sizeof(why)) != 0) {
        return send_request_error(c, why);
    }
    /* A pool's session reset is bookkeeping, not the query a test aims its
     * knobs at: counted apart, and no knob acts on it. */
    bool reset = type == TDS_PKT_RPC && tds_rpc_is_reset(&rpc);
    count(s, reset ? &s->stats.resets : &s->stats.requests);
    const char *text = sql;
    if (text == NULL && rpc.nparams > 0 && rpc.params[0].value.kind == TDS_V_TEXT)
        text = (const char *)rpc.params[0].value.p;
    pthread_mutex_lock(&s->mu);
    bool match = !reset && (s->filter == NULL || (text != NULL && strstr(text, s->filter) != NULL));
    long hang = match ? s->knobs[TDS_KNOB_QUERY_HANG] : 0;
    long delay = match ? s->knobs[TDS_KNOB_QUERY_DELAY_MS] : 0;
    tds_exec_faults f = {
        .close_mid_result = match && s->knobs[TDS_KNOB_CLOSE_MID_RESULT] != 0,
        .garbage_token = match && s->knobs[TDS_KNOB_GARBAGE_TOKEN] != 0,
        .raise_error = match ? (int)s->knobs[TDS_KNOB_RAISE_ERROR] : 0,
    };
    c->ignore_attn = s->knobs[TDS_KNOB_IGNORE_ATTENTION] != 0;
    pthread_mutex_unlock(&s->mu);
    c->attention = false;
    tds_exec_status st;
    if ((hang && hook_wait(c, -1)) || (delay > 0 && hook_wait(c, delay)))
        st = TDS_EXEC_CANCELLED;
    else if (type == TDS_PKT_SQL_BATCH)
        st = tds_session_batch(c->sess, sql, &f);
    else
        st = tds_session_rpc(c->sess, &rpc, &f);
    free(sql);
    tds_rpc_free(&rpc);
    if (c->closed)
        return -1;
    switch (st) {
    case TDS_EXEC_OK:
        return tds_writer_flush(&c->w, TDS_FLUSH_EOM);
    case TDS_EXEC_CANCELLED:
        return ack_attention(c, true);
    default:
        return -1;
    }
}

static void serve(client *c)
{
    if (do_login(c) != 0)
        return;
    tds_buf body;
    tds_buf_init(&body, TDS_MAX_MESSAGE);
    /* One message per iteration; ends when the client goes or the server stops. */
    for (;;) {
        uint8_t type, status;
        if (read_message(c, &type, &status, &body, -1) != 0)
            break;
        int rc;
        switch (type) {
        case TDS_PKT_SQL_BATCH:
        case TDS_PKT_RPC:
            /* RESETCONNECTION (MS-TDS 2.2.3.1.2): reset, then run the request. */
            if (status & TDS_STATUS_RESET) {
                count(c->srv, &c->srv->stats.resets);
                if (tds_session_reset(c->sess) != 0) {
                    rc = -1;
                    break;
                }
            }
            rc = do_request(c, type, &body);
            break;
        case TDS_PKT_ATTENTION:
            /* Arrived after the response was complete. */
            count(c->srv, &c->srv->stats.attentions);
            pthread_mutex_lock(&c->srv->mu);
            c->ignore_attn = c->srv->knobs[TDS_KNOB_IGNORE_ATTENTION] != 0;
            pthread_mutex_unlock(&c->srv->mu);
            rc = c->ignore_attn ? 0 : ack_attention(c, false);
            break;
        default:
            rc = send_request_error(c, "unsupported packet type");
            break;
        }
        if (rc != 0)
            break;
    }
    tds_buf_free(&body);
}

static void *client_main(void *arg)
{
    client *c = arg;
    tds_server *s = c->srv;
    serve(c);
    tds_session_free(c->sess);
    c->sess = NULL;
    tds_writer_free(&c->w);
    tds_tls_free(c->tls);
    c->tls = NULL;
    tds_buf_free(&c->plain);
    tds_buf_free(&c->cipher);
    pthread_mutex_lock(&s->mu);
    close(c->fd);
    c->fd = -1;
    c->done = true;
    s->stats.connections_closed++;
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- listener ------------------------------------------------------------------------- */

/* Joins finished client threads; called with s->mu held. */
static void reap_locked(tds_server *s)
{
    for (int i = 0; i < TDS_SERVER_MAX_CLIENTS; i++) {
        client *c = s->clients[i];
        if (c != NULL && c->done) {
            pthread_join(c->thread, NULL);
            free(c);
            s->clients[i] = NULL;
        }
    }
}

static void start_client(tds_server *s, int fd)
{
    pthread_mutex_lock(&s->mu);
    reap_locked(s);
    int slot = -1;
    for (int i = 0; i < TDS_SERVER_MAX_CLIENTS && slot < 0; i++)
        if (s->clients[i] == NULL)
            slot = i;
    client *c = slot >= 0 ? calloc(1, sizeof(*c)) : NULL;
    if (c == NULL) {
        s->stats.connections_refused++;
        pthread_mutex_unlock(&s->mu);
        close(fd);
        return;
    }
    c->srv = s;
    c->fd = fd;
    c->slot = slot;
    c->spid = s->next_spid++;
    if (s->next_spid > 30000)
        s->next_spid = FIRST_SPID;
    tds_writer_init(&c->w, DEFAULT_PACKET, c->spid, send_all, c);
    tds_buf_init(&c->plain, 1024 * 1024);
    tds_buf_init(&c->cipher, 1024 * 1024);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1024 * 1024);
    if (pthread_create(&c->thread, &attr, client_main, c) != 0) {
        pthread_attr_destroy(&attr);
        tds_writer_free(&c->w);
        free(c);
        s->stats.connections_refused++;
        pthread_mutex_unlock(&s->mu);
        close(fd);
        return;
    }
    pthread_attr_destroy(&attr);
    s->clients[slot] = c;
    s->stats.connections_opened++;
    pthread_mutex_unlock(&s->mu);
}

static void *accept_main(void *arg)
{
    tds_server *s = arg;
    while (!atomic_load(&s->stopping)) {
        struct pollfd pf[2] = {{.fd = s->listen_fd, .events = POLLIN},
                               {.fd = s->stop_pipe[0], .events = POLLIN}};
        int n = poll(pf, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || pf[1].revents)
            break;
        if (!(pf[0].revents & POLLIN))
            continue;
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        start_client(s, fd);
    }
    return NULL;
}

static void remove_tmpdir(tds_server *s)
{
    if (s->tmpdir == NULL || s->sqlite_path == NULL) {
        if (s->tmpdir != NULL)
            (void)rmdir(s->tmpdir);
        return;
    }
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        char p[4200];
        snprintf(p, sizeof(p), "%s%s", s->sqlite_path, suffixes[i]);
        (void)unlink(p);
    }
    (void)rmdir(s->tmpdir);
}

static int prepare_database(tds_server *s, const char *path, char *err, size_t errlen)
{
    if (path == NULL || strcmp(path, ":memory:") == 0) {
        const char *tmp = getenv("TMPDIR");
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s/tds-testserver-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (mkdtemp(dir) == NULL) {
            snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
            return -1;
        }
        s->tmpdir = strdup(dir);
        size_t n = strlen(dir) + 16;
        s->sqlite_path = malloc(n);
        if (s->tmpdir == NULL || s->sqlite_path == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        snprintf(s->sqlite_path, n, "%s/db.sqlite", dir);
    } else {
        s->sqlite_path = strdup(path);
        if (s->sqlite_path == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(s->sqlite_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK && s->tmpdir != NULL)
        rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open SQLite database %s: %s", s->sqlite_path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return -1;
    }
    sqlite3_close(db);
    return 0;
}

tds_server *tds_server_start(const tds_server_options *opt, char *err, size_t errlen)
{
    char dummy[8];
    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    if (opt == NULL || opt->user == NULL || opt->password == NULL || opt->port < 0 ||
        opt->port > 65535) {
        snprintf(err, errlen, "tds_server_start: user, password and a port 0..65535 are needed");
        return NULL;
    }
    tds_server *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->listen_fd = -1;
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
    s->next_spid = FIRST_SPID;
    atomic_init(&s->stopping, false);
    atomic_init(&s->tls_records_after_login, 0);
    atomic_init(&s->clear_packets_after_login, 0);
    pthread_mutex_init(&s->mu, NULL);
    s->user = strdup(opt->user);
    s->password = strdup(opt->password);
    s->database = strdup(opt->database ? opt->database : "master");
    if (opt->readonly_user != NULL && opt->readonly_password != NULL) {
        s->ro_user = strdup(opt->readonly_user);
        s->ro_password = strdup(opt->readonly_password);
        if (s->ro_user == NULL || s->ro_password == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    if (s->user == NULL || s->password == NULL || s->database == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    s->encrypt = opt->encrypt;
    if (s->encrypt != TDS_SERVER_ENCRYPT_NOTSUP) {
        if (opt->cert_file == NULL || opt->key_file == NULL) {
            snprintf(err, errlen, "encryption needs a certificate and a private key file");
            goto fail;
        }
        s->tls_ctx = tds_tls_ctx_new(opt->cert_file, opt->key_file, err, errlen);
        if (s->tls_ctx == NULL)
            goto fail;
    }
    if (prepare_database(s, opt->sqlite_path, err, errlen) != 0)
        goto fail;
    if (pipe(s->stop_pipe) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    (void)fcntl(s->stop_pipe[0], F_SETFD, FD_CLOEXEC);
    (void)fcntl(s->stop_pipe[1], F_SETFD, FD_CLOEXEC);
    s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (s->listen_fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        goto fail;
    }
    (void)fcntl(s->listen_fd, F_SETFD, FD_CLOEXEC);
    int one = 1;
    (void)setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)opt->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        snprintf(err, errlen, "bind 127.0.0.1:%d: %s", opt->port, strerror(errno));
        goto fail;
    }
    if (listen(s->listen_fd, 128) != 0) {
        snprintf(err, errlen, "listen: %s", strerror(errno));
        goto fail;
    }
    socklen_t sl = sizeof(sa);
    if (getsockname(s->listen_fd, (struct sockaddr *)&sa, &sl) != 0) {
        snprintf(err, errlen, "getsockname: %s", strerror(errno));
        goto fail;
    }
    s->port = ntohs(sa.sin_port);
    if (pthread_create(&s->accept_thread, NULL, accept_main, s) != 0) {
        snprintf(err, errlen, "cannot start the accept thread");
        goto fail;
    }
    s->accept_started = true;
    return s;
fail:
    tds_server_stop(s);
    return NULL;
}

void tds_server_stop(tds_server *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->stopping, true);
    if (s->stop_pipe[1] >= 0) {
        ssize_t w;
        do {
            w = write(s->stop_pipe[1], "x", 1);
        } while (w < 0 && errno == EINTR);
    }
    if (s->accept_started)
        pthread_join(s->accept_thread, NULL);
    /* Wake clients blocked in send(); the others see the stop pipe. */
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < TDS_SERVER_MAX_CLIENTS; i++)
        if (s->clients[i] != NULL && !s->clients[i]->done)
            shutdown(s->clients[i]->fd, SHUT_RDWR);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < TDS_SERVER_MAX_CLIENTS; i++) {
        if (s->clients[i] != NULL) {
            pthread_join(s->clients[i]->thread, NULL);
            free(s->clients[i]);
            s->clients[i] = NULL;
        }
    }
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->stop_pipe[0] >= 0)
        close(s->stop_pipe[0]);
    if (s->stop_pipe[1] >= 0)
        close(s->stop_pipe[1]);
    remove_tmpdir(s);
    tds_tls_ctx_free(s->tls_ctx);
    pthread_mutex_destroy(&s->mu);
    free(s->user);
    free(s->password);
    free(s->ro_user);
    free(s->ro_password);
    free(s->database);
    free(s->sqlite_path);
    free(s->tmpdir);
    free(s->filter);
    free(s);
}
