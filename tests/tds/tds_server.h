/* A TDS (SQL Server protocol) test server backed by SQLite, for tests only.
 *
 * Speaks TDS 7.1 to 7.4 on 127.0.0.1, with TLS inside TDS as SQL Server does
 * it when given a certificate (see tds_server_encrypt; by default PRELOGIN
 * answers ENCRYPT_NOT_SUP): LOGIN7 with user and password checked, SQL batches, RPC
 * sp_executesql with typed parameters, ATTENTION. Every client connection gets
 * a thread (at most TDS_SERVER_MAX_CLIENTS at once; more are closed at accept)
 * and its own SQLite connection to the server's database. SQL semantics: see
 * tds_exec.h. Fault knobs let a test make the server misbehave.
 *
 * Thread safety: every function may be called from any thread while the server
 * runs, except tds_server_stop.
 */
#ifndef SQLGATE_TDS_SERVER_H
#define SQLGATE_TDS_SERVER_H

#include <stddef.h>
#include <stdint.h>

#define TDS_SERVER_MAX_CLIENTS 64

typedef struct tds_server tds_server;

/* What the server says about encryption in PRELOGIN (MS-TDS 2.2.6.5), and so
 * what a client gets. The handshake travels inside PRELOGIN packets. */
typedef enum tds_server_encrypt {
    /* ENCRYPT_NOT_SUP: never TLS; a client that requires it must give up. */
    TDS_SERVER_ENCRYPT_NOTSUP = 0,
    /* ENCRYPT_OFF, SQL Server's default: a client that can encrypt (OFF) gets
     * login-only encryption (LOGIN7 inside TLS, then clear); one that asks
     * for it (ON) gets the whole session in TLS; one that cannot (NOT_SUP)
     * stays clear. */
    TDS_SERVER_ENCRYPT_OFF,
    /* ENCRYPT_ON (SQL Server's "force encryption"): the whole session in TLS;
     * a client that cannot encrypt gets ENCRYPT_REQ and is disconnected. */
    TDS_SERVER_ENCRYPT_ON,
    /* As ON, but every answer is ENCRYPT_REQ. */
    TDS_SERVER_ENCRYPT_REQ,
} tds_server_encrypt;

typedef struct tds_server_options {
    const char *user;        /* login name clients must send; borrowed, copied at start */
    const char *password;    /* its password */
    const char *database;    /* database name (LOGIN7 database must be empty or this) */
    const char *sqlite_path; /* SQLite file, or ":memory:" (NULL too): a private file
                                in a temporary directory shared by this server's
                                clients, removed at stop */
    int port;                /* TCP port on 127.0.0.1; 0 picks a free one */
    /* Optional second login with read rights only: its sessions may not
     * write (SQL Server error 229). Both NULL: no such login. */
    const char *readonly_user;
    const char *readonly_password;
    /* Encryption (NOTSUP when zeroed). Any other mode needs the PEM
     * certificate chain and private key files, read at start. */
    tds_server_encrypt encrypt;
    const char *cert_file;
    const char *key_file;
} tds_server_options;

/* Fault knobs. Each applies to logins or requests that start after it is set,
 * and stays until set back to 0. */
typedef enum tds_knob {
    TDS_KNOB_REFUSE_LOGIN,     /* != 0: logins fail with error 18456 */
    TDS_KNOB_LOGIN_DELAY_MS,   /* wait this long before answering LOGIN7 */
    TDS_KNOB_LOGIN_HANG,       /* != 0: never answer LOGIN7 (until the client closes) */
    TDS_KNOB_QUERY_DELAY_MS,   /* wait this long before running a request (ATTENTION ends it) */
    TDS_KNOB_QUERY_HANG,       /* != 0: never answer requests (until ATTENTION or close) */
    TDS_KNOB_CLOSE_MID_RESULT, /* != 0: close the socket after the first row of a result */
    TDS_KNOB_GARBAGE_TOKEN,    /* != 0: send an invalid token after the first row */
    TDS_KNOB_RAISE_ERROR,      /* != 0: answer every request with this error number */
    TDS_KNOB_IGNORE_ATTENTION, /* != 0: read ATTENTION but never acknowledge it */
    TDS_KNOB_TLS_STALL,        /* != 0: take the TLS ClientHello, never answer (until close) */
    TDS_KNOB_TLS_DROP,         /* != 0: close the connection on the TLS ClientHello */
    TDS_KNOB_COUNT
} tds_knob;

/* Counters since start. */
typedef struct tds_server_stats {
    uint64_t connections_opened; /* TCP connections accepted (and served) */
    uint64_t connections_closed;
    uint64_t connections_active;  /* opened - closed */
    uint64_t connections_refused; /* closed at accept: too many clients */
    uint64_t logins;              /* successful logins */
    uint64_t login_failures;
    uint64_t requests;   /* SQL batches and RPCs received, but sp_reset_connection */
    uint64_t attentions; /* ATTENTION messages received */
    uint64_t resets;     /* sessions reset: sp_reset_connection or RESETCONNECTION bit */
    /* Encryption. A test proves what travelled encrypted from these: after a
     * login, a session in TLS counts only tls_records_after_login, a clear
     * (or login-only) one only clear_packets_after_login. */
    uint64_t tls_handshakes;            /* TLS handshakes completed */
    uint64_t tls_failures;              /* handshakes broken off (alert, bad record, close) */
    uint64_t tls_refused;               /* clients refused: they cannot encrypt (ENCRYPT_REQ) */
    uint64_t login7_encrypted;          /* LOGIN7 messages that arrived inside TLS */
    uint64_t sessions_login_only;       /* logins with login-only encryption */
    uint64_t sessions_encrypted;        /* logins with the whole session in TLS */
    uint64_t tls_records_after_login;   /* TLS records received from logged-in clients */
    uint64_t clear_packets_after_login; /* clear TDS packets received from logged-in clients */
} tds_server_stats;

/* Starts listening and serving. Returns a new server, or NULL with a reason in
 * err (err may be NULL if errlen is 0). Options are copied. */
tds_server *tds_server_start(const tds_server_options *opt, char *err, size_t errlen);

/* The port the server listens on. */
int tds_server_port(const tds_server *s);

/* Closes the listener and every client, joins every thread, removes a
 * temporary database and frees the server. s may be NULL. */
void tds_server_stop(tds_server *s);

/* Sets a knob. Returns 0, or -1 for an unknown knob or a negative value. */
int tds_server_set_knob(tds_server *s, tds_knob knob, long value);
/* Current value of a knob (0 for an unknown one). */
long tds_server_get_knob(tds_server *s, tds_knob knob);
/* Sets every knob back to 0 and clears the query filter. */
void tds_server_reset_knobs(tds_server *s);
/* Query knobs (delay, hang, close, garbage, raise_error) apply only to requests
 * whose SQL text contains `substring` (case-sensitive); NULL or "" = all.
 * Returns 0 or -1 (out of memory). The string is copied. */
int tds_server_set_query_filter(tds_server *s, const char *substring);

/* Name of a knob as used by the control channel and sqlgate_test_knob
 * ("refuse_login", ...), or NULL. */
const char *tds_knob_name(tds_knob knob);
/* Knob by name; returns 0 or -1. */
int tds_knob_from_name(const char *name, tds_knob *out);

/* Copies the counters into *out. */
void tds_server_get_stats(tds_server *s, tds_server_stats *out);

#endif
