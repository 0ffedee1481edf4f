/* TDS wire layer of the test server: byte buffers, bounded readers, packet
 * framing, UTF-16LE conversion, token writers, PRELOGIN/LOGIN7/SQL batch/RPC
 * parsing.
 *
 * Everything here is pure: no sockets, no threads, no SQLite. Parsers take
 * untrusted client bytes: every length is checked against the bytes actually
 * present and nothing is read past a buffer; a malformed message yields an
 * error, never a crash (this module gets a libFuzzer target).
 *
 * Versions are kept as the client's 32-bit LOGIN7 value (e.g. 0x74000004);
 * TDS_VER(v) gives the major/minor byte (0x71..0x74) used for comparisons.
 */
#ifndef SQLGATE_TDS_WIRE_H
#define SQLGATE_TDS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tds_types.h"

/* Packet types (header byte 0). */
#define TDS_PKT_SQL_BATCH 0x01
#define TDS_PKT_PRETDS7   0x02
#define TDS_PKT_RPC       0x03
#define TDS_PKT_REPLY     0x04
#define TDS_PKT_ATTENTION 0x06
#define TDS_PKT_BULK      0x07
#define TDS_PKT_TM        0x0E
#define TDS_PKT_LOGIN7    0x10
#define TDS_PKT_PRELOGIN  0x12

#define TDS_STATUS_EOM   0x01
#define TDS_STATUS_RESET 0x08
#define TDS_HEADER_SIZE  8

/* Tokens written by the server. */
#define TDS_TOK_RETURNSTATUS 0x79
#define TDS_TOK_COLMETADATA  0x81
#define TDS_TOK_ERROR        0xAA
#define TDS_TOK_INFO         0xAB
#define TDS_TOK_LOGINACK     0xAD
#define TDS_TOK_ROW          0xD1
#define TDS_TOK_ENVCHANGE    0xE3
#define TDS_TOK_DONE         0xFD
#define TDS_TOK_DONEPROC     0xFE
#define TDS_TOK_DONEINPROC   0xFF

/* DONE status bits. */
#define TDS_DONE_FINAL 0x00
#define TDS_DONE_MORE  0x01
#define TDS_DONE_ERROR 0x02
#define TDS_DONE_COUNT 0x10
#define TDS_DONE_ATTN  0x20

/* ENVCHANGE types. */
#define TDS_ENV_DATABASE  1
#define TDS_ENV_LANGUAGE  2
#define TDS_ENV_PACKETSZ  4
#define TDS_ENV_COLLATION 7
#define TDS_ENV_BEGINTRAN 8
#define TDS_ENV_COMMIT    9
#define TDS_ENV_ROLLBACK  10

#define TDS_VER(v) ((unsigned)((v) >> 24) & 0xFFu)

/* Largest message the server accepts from a client (all packets together). */
#define TDS_MAX_MESSAGE (64u * 1024u * 1024u)

/* The collation announced at login and put in every character TYPE_INFO:
 * LCID 0x0409, SQL_Latin1_General_CP1_CI_AS (code page 1252). */
extern const uint8_t tds_collation[5];

/* ---- growable output buffer ------------------------------------------- */

/* A byte buffer that grows up to `max` bytes. A failed append (cap or OOM)
 * sets `failed` and every later append is ignored, so writers check once at
 * the end. */
typedef struct tds_buf {
    uint8_t *data; /* owned */
    size_t len;
    size_t cap;
    size_t max;
    bool failed;
} tds_buf;

/* Starts an empty buffer that refuses to grow past max bytes. */
void tds_buf_init(tds_buf *b, size_t max);
/* Frees the storage; b may be NULL. */
void tds_buf_free(tds_buf *b);
/* Empties the buffer and clears `failed`, keeping the storage. */
void tds_buf_reset(tds_buf *b);
/* Drops the first n bytes (n <= len). */
void tds_buf_consume(tds_buf *b, size_t n);
void tds_buf_put(tds_buf *b, const void *p, size_t n);
void tds_buf_u8(tds_buf *b, uint8_t v);
void tds_buf_u16le(tds_buf *b, uint16_t v);
void tds_buf_u32le(tds_buf *b, uint32_t v);
void tds_buf_u64le(tds_buf *b, uint64_t v);
void tds_buf_u16be(tds_buf *b, uint16_t v);
void tds_buf_u32be(tds_buf *b, uint32_t v);
/* Overwrites 2 bytes at pos (a length known only later); ignored if out of range. */
void tds_buf_patch_u16le(tds_buf *b, size_t pos, uint16_t v);
/* Appends UTF-8 text as UTF-16LE (invalid sequences become U+FFFD), at most
 * max_units code units (a surrogate pair is never split); returns the number of
 * code units written. */
size_t tds_buf_utf16(tds_buf *b, const char *s, size_t len, size_t max_units);
/* B_VARCHAR: 1-byte count of UTF-16 units (text cut at 255), then the text. */
void tds_buf_bvarchar(tds_buf *b, const char *s);
/* US_VARCHAR: 2-byte count of UTF-16 units (cut at 65535), then the text. */
void tds_buf_usvarchar(tds_buf *b, const char *s);

/* Number of UTF-16 code units the UTF-8 text converts to. */
size_t tds_utf16_units(const char *s, size_t len);
/* Converts n bytes of UTF-16LE to new NUL-terminated UTF-8 in *out (caller
 * frees); unpaired surrogates become U+FFFD. Returns 0, or -1 on OOM or odd n. */
int tds_utf16_to_utf8(const uint8_t *p, size_t n, char **out, size_t *outlen);

/* ---- bounded reader ----------------------------------------------------- */

/* Reads from a borrowed byte range. Reading past the end sets `err`, returns
 * zeros/NULL, and every later read fails too. */
typedef struct tds_rd {
    const uint8_t *p;
    size_t len;
    size_t pos;
    bool err;
} tds_rd;

void tds_rd_init(tds_rd *r, const void *p, size_t len);
size_t tds_rd_left(const tds_rd *r);
uint8_t tds_rd_u8(tds_rd *r);
uint16_t tds_rd_u16le(tds_rd *r);
uint32_t tds_rd_u32le(tds_rd *r);
uint64_t tds_rd_u64le(tds_rd *r);
uint16_t tds_rd_u16be(tds_rd *r);
/* Returns a pointer to the next n bytes (borrowed from the input), or NULL. */
const uint8_t *tds_rd_bytes(tds_rd *r, size_t n);
/* Reads n UTF-16 units into new UTF-8 (*out, caller frees). 0 or -1. */
int tds_rd_utf16(tds_rd *r, size_t units, char **out);

/* ---- packets ------------------------------------------------------------ */

typedef struct tds_header {
    uint8_t type;
    uint8_t status;
    uint16_t length; /* header included */
    uint16_t spid;
    uint8_t id;
    uint8_t window;
} tds_header;

/* Decodes the 8-byte header at p. Returns 0, or -1 if n < 8 or the length is
 * smaller than the header. */
int tds_header_parse(const uint8_t *p, size_t n, tds_header *h);

/* Sends bytes to the client: returns 0, or -1 if the connection is gone. */
typedef int (*tds_send_fn)(void *ctx, const uint8_t *p, size_t n);

typedef enum tds_flush {
    TDS_FLUSH_FULL, /* only whole packets; keeps the remainder */
    TDS_FLUSH_ALL,  /* everything buffered, last packet without EOM */
    TDS_FLUSH_EOM,  /* everything, last packet with EOM (sent even if empty) */
} tds_flush;

/* Frames a reply message into packets of the negotiated size. Tokens are
 * appended to `tok` with the token writers below. */
typedef struct tds_writer {
    tds_buf tok;
    size_t packet_size; /* header included, 512..32767 */
    uint8_t type;
    uint8_t packet_id;
    uint16_t spid;
    bool sent_any; /* a packet of the current message was sent */
    tds_send_fn send;
    void *send_ctx; /* borrowed */
    bool failed;    /* a send failed: the connection is gone */
} tds_writer;

void tds_writer_init(tds_writer *w, size_t packet_size, uint16_t spid, tds_send_fn send, void *ctx);
void tds_writer_free(tds_writer *w);
/* Returns 0, or -1 if sending failed or the token buffer overflowed. */
int tds_writer_flush(tds_writer *w, tds_flush mode);
/* Drops buffered tokens not yet sent. */
void tds_writer_discard(tds_writer *w);

/* ---- token writers (append to b; `ver` is the client's TDS version) ----- */

void tds_tok_env_str(tds_buf *b, uint8_t type, const char *newv, const char *oldv);
void tds_tok_env_collation(tds_buf *b);
/* Transaction ENVCHANGE (begin/commit/rollback) with an 8-byte descriptor. */
void tds_tok_env_tran(tds_buf *b, uint8_t type, uint64_t descriptor);
void tds_tok_loginack(tds_buf *b, uint32_t ver, const char *progname);
void tds_tok_done(tds_buf *b, uint8_t token, uint16_t status, uint16_t curcmd, uint64_t count,
                  uint32_t ver);
/* ERROR (token 0xAA) or INFO (0xAB). Text is UTF-8. */
void tds_tok_message(tds_buf *b, uint8_t token, int32_t number, uint8_t state, uint8_t cls,
                     const char *msg, const char *server, const char *proc, uint32_t line,
                     uint32_t ver);
void tds_tok_returnstatus(tds_buf *b, int32_t value);
/* COLMETADATA for n columns. */
void tds_tok_colmetadata(tds_buf *b, const tds_column *cols, size_t n, uint32_t ver);

/* ---- client messages ------------------------------------------------------ */

/* PRELOGIN ENCRYPTION values (MS-TDS 2.2.6.5). */
#define TDS_ENCRYPT_OFF     0x00
#define TDS_ENCRYPT_ON      0x01
#define TDS_ENCRYPT_NOT_SUP 0x02
#define TDS_ENCRYPT_REQ     0x03

typedef struct tds_prelogin {
    bool has_encryption;
    uint8_t encryption;
} tds_prelogin;

/* Parses a PRELOGIN payload. Returns 0 or -1 (malformed). */
int tds_prelogin_parse(const uint8_t *p, size_t n, tds_prelogin *out);
/* Appends the server's PRELOGIN reply payload: VERSION, ENCRYPTION, INSTOPT,
 * THREADID, MARS=0, terminator. */
void tds_prelogin_reply(tds_buf *b, uint8_t encryption);

typedef struct tds_login7 {
    uint32_t tds_version; /* as sent, e.g. 0x74000004 */
    uint32_t packet_size;
    char *hostname; /* each new UTF-8, never NULL after a successful parse */
    char *username;
    char *password; /* de-obfuscated; never logged */
    char *appname;
    char *servername;
    char *library;
    char *language;
    char *database;
} tds_login7;

/* Parses a LOGIN7 payload into *out (fields owned by out: tds_login7_free).
 * Returns 0, or -1 with a reason in err (which never contains the password). */
int tds_login7_parse(const uint8_t *p, size_t n, tds_login7 *out, char *err, size_t errlen);
/* Frees the fields (wiping the password); l may be NULL. */
void tds_login7_free(tds_login7 *l);

/* Returns the SQL text of a SQL_BATCH payload as new UTF-8 (*sql, caller
 * frees), skipping ALL_HEADERS from TDS 7.2. Returns 0 or -1. */
int tds_batch_parse(const uint8_t *p, size_t n, uint32_t ver, char **sql, char *err, size_t errlen);

/* One RPC parameter. */
typedef struct tds_param {
    char *name; /* new UTF-8 with its '@', "" when unnamed */
    uint8_t status;
    tds_type type;
    tds_value value; /* owns its text/blob */
} tds_param;

typedef struct tds_rpc {
    char *proc_name; /* new UTF-8; NULL when sent as a procedure id */
    uint16_t proc_id;
    uint16_t flags;
    tds_param *params; /* owned */
    size_t nparams;
} tds_rpc;

/* Parses the first RPC of an RPC payload. Returns 0, or -1 with a reason. */
int tds_rpc_parse(const uint8_t *p, size_t n, uint32_t ver, tds_rpc *out, char *err, size_t errlen);
/* Frees everything owned by r; r may be NULL. */
void tds_rpc_free(tds_rpc *r);

#endif
