/* TLS for the TDS test server, as SQL Server does it inside TDS 7.x (MS-TDS
 * PRELOGIN ENCRYPTION): the server side of a TLS session with no socket of
 * its own. Bytes from the client are fed in, bytes for the client are taken
 * out, so the caller can carry the handshake inside PRELOGIN packets and then
 * put the records on the socket as they are.
 *
 * OpenSSL through memory BIOs. TLS is capped at 1.2: TDS 7.x clients do not
 * expect the post-handshake messages of TLS 1.3 (session tickets), which
 * would arrive after the handshake's last PRELOGIN packet.
 *
 * Thread safety: a tds_tls_ctx may be shared by any number of threads once
 * made; a tds_tls belongs to one thread at a time.
 */
#ifndef SQLGATE_TDS_TLS_H
#define SQLGATE_TDS_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "tds_wire.h"

/* Size of a TLS record header (type, version, length). */
#define TDS_TLS_RECORD_HEADER 5
/* Largest record body TLS 1.2 allows (2^14 plus expansion). */
#define TDS_TLS_RECORD_MAX (16384 + 2048)

typedef struct tds_tls_ctx tds_tls_ctx;
typedef struct tds_tls tds_tls;

/* Server credentials from PEM files (certificate chain, private key).
 * Returns a new context, or NULL with a reason in err. */
tds_tls_ctx *tds_tls_ctx_new(const char *cert_file, const char *key_file, char *err, size_t errlen);
/* Frees the context; ctx may be NULL. Every session made from it must be
 * freed first. */
void tds_tls_ctx_free(tds_tls_ctx *ctx);

/* A new server-side session using ctx (borrowed, must outlive it), or NULL
 * (out of memory). */
tds_tls *tds_tls_new(tds_tls_ctx *ctx);
/* Frees the session without sending anything; t may be NULL. */
void tds_tls_free(tds_tls *t);

/* Feeds n bytes received from the client. Returns 0 or -1 (out of memory). */
int tds_tls_feed(tds_tls *t, const uint8_t *p, size_t n);

/* Advances the handshake with what was fed. Returns 1 when it is complete,
 * 0 when it needs more input, -1 when it failed (reason in err). Output for
 * the client may be waiting in every case: see tds_tls_take. */
int tds_tls_handshake(tds_tls *t, char *err, size_t errlen);

/* Appends every byte waiting for the client to out. Returns the count. */
size_t tds_tls_take(tds_tls *t, tds_buf *out);

/* Encrypts n bytes into records appended to out. Returns 0 or -1. */
int tds_tls_write(tds_tls *t, const uint8_t *p, size_t n, tds_buf *out);

/* Decrypts what was fed, appending the plaintext to out. Returns 0 (possibly
 * with nothing new, when a record is incomplete or carried no data), or -1
 * (a bad record or an alert from the client: the session is over). */
int tds_tls_read(tds_tls *t, tds_buf *out);

/* Whether the 5 bytes at p can start a TLS record (content type 20..23,
 * version 3.x) and, if so, its body length in *len. */
int tds_tls_record_header(const uint8_t *p, size_t *len);

#endif
