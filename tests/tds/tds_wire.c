/* TDS wire layer: see tds_wire.h. Parsers here face untrusted bytes. */
#include "tds_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/lib/util.h"

const uint8_t tds_collation[5] = {0x09, 0x04, 0xD0, 0x00, 0x34};

/* ---- buffer --------------------------------------------------------------- */

void tds_buf_init(tds_buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void tds_buf_free(tds_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void tds_buf_reset(tds_buf *b)
{
    b->len = 0;
    b->failed = false;
}

/* The buffer as the library's capped buffer (sg_buf: the same fields, bytes
 * as char), so that its growth and consume rules are written once; the
 * results go back with buf_from. */
static sg_buf buf_view(const tds_buf *b)
{
    return (sg_buf){
        .data = (char *)b->data, .len = b->len, .cap = b->cap, .max = b->max, .failed = b->failed};
}

static void buf_from(tds_buf *b, const sg_buf *v)
{
    b->data = (uint8_t *)v->data;
    b->len = v->len;
    b->cap = v->cap;
    b->failed = v->failed;
}

void tds_buf_consume(tds_buf *b, size_t n)
{
    sg_buf v = buf_view(b);
    sg_buf_consume(&v, n);
    buf_from(b, &v);
}

/* Room for extra more bytes. */
static bool buf_grow(tds_buf *b, size_t extra)
{
    sg_buf v = buf_view(b);
    bool ok = sg_buf_reserve(&v, extra);
    buf_from(b, &v);
    return ok;
}

void tds_buf_put(tds_buf *b, const void *p, size_t n)
{
    if (n == 0 || !buf_grow(b, n))
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void tds_buf_u8(tds_buf *b, uint8_t v)
{
    tds_buf_put(b, &v, 1);
}

void tds_buf_u16le(tds_buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    tds_buf_put(b, x, 2);
}

void tds_buf_u32le(tds_buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    tds_buf_put(b, x, 4);
}

void tds_buf_u64le(tds_buf *b, uint64_t v)
{
    tds_buf_u32le(b, (uint32_t)v);
    tds_buf_u32le(b, (uint32_t)(v >> 32));
}

void tds_buf_u16be(tds_buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    tds_buf_put(b, x, 2);
}

void tds_buf_u32be(tds_buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    tds_buf_put(b, x, 4);
}

void tds_buf_patch_u16le(tds_buf *b, size_t pos, uint16_t v)
{
    if (b->failed || pos > b->len || b->len - pos < 2)
        return;
    b->data[pos] = (uint8_t)v;
    b->data[pos + 1] = (uint8_t)(v >> 8);
}

/* ---- UTF-8 / UTF-16 ----------------------------------------------------- */

/* Decodes one code point at s[*i]; invalid or truncated sequences and
 * surrogates yield U+FFFD and advance by one byte. */
static uint32_t utf8_next(const char *s, size_t len, size_t *i)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned char c = u[*i];
    uint32_t cp;
    size_t need;
    if (c < 0x80) {
        (*i)++;
        return c;
    } else if (c >= 0xC2 && c <= 0xDF) {
        cp = c & 0x1F;
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        cp = c & 0x0F;
        need = 2;
    } else if (c >= 0xF0 && c <= 0xF4) {
        cp = c & 0x07;
        need = 3;
    } else {
        (*i)++;
        return 0xFFFD;
    }
    if (len - *i < need + 1) {
        (*i)++;
        return 0xFFFD;
    }
    for (size_t k = 1; k <= need; k++) {
        unsigned char cc = u[*i + k];
        if ((cc & 0xC0) != 0x80) {
            (*i)++;
            return 0xFFFD;
        }
        cp = (cp << 6) | (cc & 0x3F);
    }
    if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
        (*i)++;
        return 0xFFFD;
    }
    *i += need + 1;
    return cp;
}

size_t tds_utf16_units(const char *s, size_t len)
{
    size_t i = 0, units = 0;
    while (i < len)
        units += utf8_next(s, len, &i) >= 0x10000 ? 2 : 1;
    return units;
}

size_t tds_buf_utf16(tds_buf *b, const char *s, size_t len, size_t max_units)
{
    size_t i = 0, units = 0;
    while (i < len) {
        size_t save = i;
        uint32_t cp = utf8_next(s, len, &i);
        if (cp >= 0x10000) {
            if (max_units - units < 2) {
                i = save;
                break;
            }
            cp -= 0x10000;
            tds_buf_u16le(b, (uint16_t)(0xD800 + (cp >> 10)));
            tds_buf_u16le(b, (uint16_t)(0xDC00 + (cp & 0x3FF)));
            units += 2;
        } else {
            if (max_units - units < 1) {
                i = save;
                break;
            }
            tds_buf_u16le(b, (uint16_t)cp);
            units++;
        }
    }
    return units;
}

void tds_buf_bvarchar(tds_buf *b, const char *s)
{
    size_t len = s ? strlen(s) : 0;
    size_t pos = b->len;
    tds_buf_u8(b, 0);
    size_t units = tds_buf_utf16(b, s ? s : "", len, 255);
    if (!b->failed)
        b->data[pos] = (uint8_t)units;
}

void tds_buf_usvarchar(tds_buf *b, const char *s)
{
    size_t len = s ? strlen(s) : 0;
    size_t pos = b->len;
    tds_buf_u16le(b, 0);
    size_t units = tds_buf_utf16(b, s ? s : "", len, 65535);
    tds_buf_patch_u16le(b, pos, (uint16_t)units);
}

int tds_utf16_to_utf8(const uint8_t *p, size_t n, char **out, size_t *outlen)
{
    *out = NULL;
    if (n % 2 != 0)
        return -1;
    /* Each unit gives at most 3 bytes (a pair gives 4 for 2 units). */
    size_t cap = (n / 2) * 3 + 1;
    char *s = malloc(cap);
    if (s == NULL)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        uint32_t cp = (uint32_t)p[i] | ((uint32_t)p[i + 1] << 8);
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 3 < n) {
            uint32_t lo = (uint32_t)p[i + 2] | ((uint32_t)p[i + 3] << 8);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 2;
            } else {
                cp = 0xFFFD;
            }
        } else if (cp >= 0xD800 && cp <= 0xDFFF) {
            cp = 0xFFFD;
        }
        if (cp < 0x80) {
            s[o++] = (char)cp;
        } else if (cp < 0x800) {
            s[o++] = (char)(0xC0 | (cp >> 6));
            s[o++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            s[o++] = (char)(0xE0 | (cp >> 12));
            s[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            s[o++] = (char)(0x80 | (cp & 0x3F));
        } else {
            s[o++] = (char)(0xF0 | (cp >> 18));
            s[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            s[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            s[o++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    s[o] = '\0';
    *out = s;
    if (outlen)
        *outlen = o;
    return 0;
}

/* ---- reader --------------------------------------------------------------- */

void tds_rd_init(tds_rd *r, const void *p, size_t len)
{
    r->p = p;
    r->len = p ? len : 0;
    r->pos = 0;
    r->err = false;
}

size_t tds_rd_left(const tds_rd *r)
{
    return r->err ? 0 : r->len - r->pos;
}

const uint8_t *tds_rd_bytes(tds_rd *r, size_t n)
{
    if (r->err || n > r->len - r->pos) {
        r->err = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->pos;
    r->pos += n;
    return p;
}

uint8_t tds_rd_u8(tds_rd *r)
{
    const uint8_t *p = tds_rd_bytes(r, 1);
    return p ? p[0] : 0;
}

uint16_t tds_rd_u16le(tds_rd *r)
{
    const uint8_t *p = tds_rd_bytes(r, 2);
    return p ? (uint16_t)(p[0] | (p[1] << 8)) : 0;
}

uint16_t tds_rd_u16be(tds_rd *r)
{
    const uint8_t *p = tds_rd_bytes(r, 2);
    return p ? (uint16_t)((p[0] << 8) | p[1]) : 0;
}

uint32_t tds_rd_u32le(tds_rd *r)
{
    const uint8_t *p = tds_rd_bytes(r, 4);
    return p ? (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
                   ((uint32_t)p[3] << 24)
             : 0;
}

uint64_t tds_rd_u64le(tds_rd *r)
{
    uint64_t lo = tds_rd_u32le(r);
    uint64_t hi = tds_rd_u32le(r);
    return lo | (hi << 32);
}

int tds_rd_utf16(tds_rd *r, size_t units, char **out)
{
    *out = NULL;
    if (units > SIZE_MAX / 2) {
        r->err = true;
        return -1;
    }
    const uint8_t *p = tds_rd_bytes(r, units * 2);
    if (p == NULL)
        return -1;
    return tds_utf16_to_utf8(p, units * 2, out, NULL);
}

/* ---- packets -------------------------------------------------------------- */

int tds_header_parse(const uint8_t *p, size_t n, tds_header *h)
{
    if (n < TDS_HEADER_SIZE)
        return -1;
    h->type = p[0];
    h->status = p[1];
    h->length = (uint16_t)((p[2] << 8) | p[3]);
    h->spid = (uint16_t)((p[4] << 8) | p[5]);
    h->id = p[6];
    h->window = p[7];
    return h->length < TDS_HEADER_SIZE ? -1 : 0;
}

void tds_writer_init(tds_writer *w, size_t packet_size, uint16_t spid, tds_send_fn send, void *ctx)
{
    memset(w, 0, sizeof(*w));
    tds_buf_init(&w->tok, 256u * 1024u * 1024u);
    if (packet_size < 512)
        packet_size = 512;
    if (packet_size > 32767)
        packet_size = 32767;
    w->packet_size = packet_size;
    w->type = TDS_PKT_REPLY;
    w->packet_id = 1;
    w->spid = spid;
    w->send = send;
    w->send_ctx = ctx;
}

void tds_writer_free(tds_writer *w)
{
    if (w != NULL)
        tds_buf_free(&w->tok);
}

void tds_writer_discard(tds_writer *w)
{
    tds_buf_reset(&w->tok);
}

static int send_packet(tds_writer *w, const uint8_t *p, size_t n, bool eom)
{
    uint8_t pkt[32768];
    size_t total = n + TDS_HEADER_SIZE;
    pkt[0] = w->type;
    pkt[1] = eom ? TDS_STATUS_EOM : 0;
    pkt[2] = (uint8_t)(total >> 8);
    pkt[3] = (uint8_t)total;
    pkt[4] = (uint8_t)(w->spid >> 8);
    pkt[5] = (uint8_t)w->spid;
    pkt[6] = w->packet_id++;
    pkt[7] = 0;
    if (n > 0)
        memcpy(pkt + TDS_HEADER_SIZE, p, n);
    if (w->send(w->send_ctx, pkt, total) != 0) {
        w->failed = true;
        return -1;
    }
    w->sent_any = true;
    return 0;
}

int tds_writer_flush(tds_writer *w, tds_flush mode)
{
    if (w->failed)
        return -1;
    if (w->tok.failed) {
        w->failed = true;
        return -1;
    }
    size_t room = w->packet_size - TDS_HEADER_SIZE;
    size_t off = 0;
    while (w->tok.len - off > room ||
           (w->tok.len - off == room && mode == TDS_FLUSH_FULL && room > 0)) {
        if (send_packet(w, w->tok.data + off, room, false) != 0)
            return -1;
        off += room;
    }
    if (mode != TDS_FLUSH_FULL && (w->tok.len - off > 0 || mode == TDS_FLUSH_EOM)) {
        if (send_packet(w, w->tok.data + off, w->tok.len - off, mode == TDS_FLUSH_EOM) != 0)
            return -1;
        off = w->tok.len;
    }
    tds_buf_consume(&w->tok, off);
    if (mode == TDS_FLUSH_EOM) {
        w->sent_any = false;
        w->packet_id = 1;
    }
    return 0;
}

/* ---- tokens --------------------------------------------------------------- */

/* Starts a token with a 2-byte length; returns the position to patch. */
static size_t tok_begin(tds_buf *b, uint8_t token)
{
    tds_buf_u8(b, token);
    size_t pos = b->len;
    tds_buf_u16le(b, 0);
    return pos;
}

static void tok_end(tds_buf *b, size_t pos)
{
    size_t n = b->len - pos - 2;
    if (n > 0xFFFF) {
        b->failed = true;
        return;
    }
    tds_buf_patch_u16le(b, pos, (uint16_t)n);
}

void tds_tok_env_str(tds_buf *b, uint8_t type, const char *newv, const char *oldv)
{
    size_t pos = tok_begin(b, TDS_TOK_ENVCHANGE);
    tds_buf_u8(b, type);
    tds_buf_bvarchar(b, newv);
    tds_buf_bvarchar(b, oldv);
    tok_end(b, pos);
}

void tds_tok_env_collation(tds_buf *b)
{
    size_t pos = tok_begin(b, TDS_TOK_ENVCHANGE);
    tds_buf_u8(b, TDS_ENV_COLLATION);
    tds_buf_u8(b, (uint8_t)sizeof(tds_collation));
    tds_buf_put(b, tds_collation, sizeof(tds_collation));
    tds_buf_u8(b, 0);
    tok_end(b, pos);
}

void tds_tok_env_tran(tds_buf *b, uint8_t type, uint64_t descriptor)
{
    size_t pos = tok_begin(b, TDS_TOK_ENVCHANGE);
    tds_buf_u8(b, type);
    if (type == TDS_ENV_BEGINTRAN) {
        tds_buf_u8(b, 8);
        tds_buf_u64le(b, descriptor);
        tds_buf_u8(b, 0);
    } else {
        tds_buf_u8(b, 0);
        tds_buf_u8(b, 8);
        tds_buf_u64le(b, descriptor);
    }
    tok_end(b, pos);
}

void tds_tok_loginack(tds_buf *b, uint32_t ver, const char *progname)
{
    size_t pos = tok_begin(b, TDS_TOK_LOGINACK);
    tds_buf_u8(b, 1); /* interface: SQL_TSQL */
    tds_buf_u32be(b, ver);
    tds_buf_bvarchar(b, progname);
    tds_buf_u8(b, 16); /* program version 16.0.1000 */
    tds_buf_u8(b, 0);
    tds_buf_u8(b, 0x03);
    tds_buf_u8(b, 0xE8);
    tok_end(b, pos);
}

void tds_tok_done(tds_buf *b, uint8_t token, uint16_t status, uint16_t curcmd, uint64_t count,
                  uint32_t ver)
{
    tds_buf_u8(b, token);
    tds_buf_u16le(b, status);
    tds_buf_u16le(b, curcmd);
    if (TDS_VER(ver) >= 0x72)
        tds_buf_u64le(b, count);
    else
        tds_buf_u32le(b, (uint32_t)count);
}

void tds_tok_message(tds_buf *b, uint8_t token, int32_t number, uint8_t state, uint8_t cls,
                     const char *msg, const char *server, const char *proc, uint32_t line,
                     uint32_t ver)
{
    size_t pos = tok_begin(b, token);
    tds_buf_u32le(b, (uint32_t)number);
    tds_buf_u8(b, state);
    tds_buf_u8(b, cls);
    tds_buf_usvarchar(b, msg);
    tds_buf_bvarchar(b, server);
    tds_buf_bvarchar(b, proc);
    if (TDS_VER(ver) >= 0x72)
        tds_buf_u32le(b, line);
    else
        tds_buf_u16le(b, (uint16_t)(line > 0xFFFF ? 0xFFFF : line));
    tok_end(b, pos);
}

void tds_tok_returnstatus(tds_buf *b, int32_t value)
{
    tds_buf_u8(b, TDS_TOK_RETURNSTATUS);
    tds_buf_u32le(b, (uint32_t)value);
}

void tds_tok_colmetadata(tds_buf *b, const tds_column *cols, size_t n, uint32_t ver)
{
    tds_buf_u8(b, TDS_TOK_COLMETADATA);
    tds_buf_u16le(b, (uint16_t)n);
    for (size_t i = 0; i < n; i++) {
        /* UserType: 0, except timestamp (80), as SQL Server sends it. */
        uint16_t user_type = cols[i].type.form == TDS_FORM_ROWVERSION ? 80 : 0;
        if (TDS_VER(ver) >= 0x72)
            tds_buf_u32le(b, user_type);
        else
            tds_buf_u16le(b, user_type);
        tds_buf_u16le(b, 0x0001 | 0x0008); /* nullable, updateable unknown */
        tds_typeinfo_write(b, &cols[i].type, ver);
        tds_buf_bvarchar(b, cols[i].name ? cols[i].name : "");
    }
}

/* ---- PRELOGIN --------------------------------------------------------------- */

#define PL_VERSION    0x00
#define PL_ENCRYPTION 0x01
#define PL_INSTOPT    0x02
#define PL_THREADID   0x03
#define PL_MARS       0x04
#define PL_TERMINATOR 0xFF

int tds_prelogin_parse(const uint8_t *p, size_t n, tds_prelogin *out)
{
    memset(out, 0, sizeof(*out));
    tds_rd r;
    tds_rd_init(&r, p, n);
    /* Each option entry is 5 bytes; bound the loop by the payload size. */
    for (size_t guard = 0; guard <= n / 5; guard++) {
        uint8_t tok = tds_rd_u8(&r);
        if (r.err)
            return -1;
        if (tok == PL_TERMINATOR)
            return 0;
        uint16_t off = tds_rd_u16be(&r);
        uint16_t len = tds_rd_u16be(&r);
        if (r.err || off > n || len > n - off)
            return -1;
        if (tok == PL_ENCRYPTION && len >= 1) {
            out->has_encryption = true;
            out->encryption = p[off];
        }
    }
    return -1;
}

void tds_prelogin_reply(tds_buf *b, uint8_t encryption)
{
    /* 5 options of 5 bytes + terminator = 26 bytes of table. */
    const uint16_t base = 26;
    tds_buf_u8(b, PL_VERSION);
    tds_buf_u16be(b, base);
    tds_buf_u16be(b, 6);
    tds_buf_u8(b, PL_ENCRYPTION);
    tds_buf_u16be(b, base + 6);
    tds_buf_u16be(b, 1);
    tds_buf_u8(b, PL_INSTOPT);
    tds_buf_u16be(b, base + 7);
    tds_buf_u16be(b, 1);
    tds_buf_u8(b, PL_THREADID);
    tds_buf_u16be(b, base + 8);
    tds_buf_u16be(b, 0);
    tds_buf_u8(b, PL_MARS);
    tds_buf_u16be(b, base + 8);
    tds_buf_u16be(b, 1);
    tds_buf_u8(b, PL_TERMINATOR);
    const uint8_t version[6] = {16, 0, 0x03, 0xE8, 0, 0};
    tds_buf_put(b, version, sizeof(version));
    tds_buf_u8(b, encryption);
    tds_buf_u8(b, 0); /* INSTOPT: instance name matches */
    tds_buf_u8(b, 0); /* MARS off */
}

/* ---- LOGIN7 ------------------------------------------------------------------ */

void tds_login7_free(tds_login7 *l)
{
    if (l == NULL)
        return;
    char **fields[] = {&l->hostname,   &l->username, &l->password, &l->appname,
                       &l->servername, &l->library,  &l->language, &l->database};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (*fields[i] != NULL && fields[i] == &l->password) {
            volatile char *v = *fields[i];
            for (size_t k = 0; v[k] != '\0'; k++)
                v[k] = 0;
        }
        free(*fields[i]);
        *fields[i] = NULL;
    }
}

/* Reads the UTF-16 field whose offset/length pair is at `at` in the fixed part. */
static int login_field(const uint8_t *p, size_t n, size_t at, bool password, char **out)
{
    *out = NULL;
    tds_rd r;
    tds_rd_init(&r, p, n);
    if (tds_rd_bytes(&r, at) == NULL)
        return -1;
    size_t off = tds_rd_u16le(&r);
    size_t units = tds_rd_u16le(&r);
    if (r.err || off > n || units * 2 > n - off)
        return -1;
    if (!password)
        return tds_utf16_to_utf8(p + off, units * 2, out, NULL);
    uint8_t *tmp = malloc(units * 2 + 1);
    if (tmp == NULL)
        return -1;
    for (size_t i = 0; i < units * 2; i++) {
        uint8_t c = p[off + i] ^ 0xA5;
        tmp[i] = (uint8_t)((c << 4) | (c >> 4));
    }
    int rc = tds_utf16_to_utf8(tmp, units * 2, out, NULL);
    memset(tmp, 0, units * 2);
    free(tmp);
    return rc;
}

int tds_login7_parse(const uint8_t *p, size_t n, tds_login7 *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    tds_rd r;
    tds_rd_init(&r, p, n);
    uint32_t total = tds_rd_u32le(&r);
    out->tds_version = tds_rd_u32le(&r);
    out->packet_size = tds_rd_u32le(&r);
    if (r.err || n < 94) {
        snprintf(err, errlen, "LOGIN7 shorter than its fixed part");
        return -1;
    }
    if (total > n) {
        snprintf(err, errlen, "LOGIN7 length %u larger than the message", total);
        return -1;
    }
    /* Fields by their offset/length position in the fixed part. */
    struct {
        size_t at;
        char **dst;
    } fields[] = {
        {36, &out->hostname},   {40, &out->username}, {44, &out->password}, {48, &out->appname},
        {52, &out->servername}, {60, &out->library},  {64, &out->language}, {68, &out->database},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (login_field(p, n, fields[i].at, fields[i].dst == &out->password, fields[i].dst) != 0) {
            snprintf(err, errlen, "LOGIN7 field at %zu out of range", fields[i].at);
            tds_login7_free(out);
            return -1;
        }
    }
    return 0;
}

/* ---- SQL batch ----------------------------------------------------------------- */

/* Skips ALL_HEADERS (TDS 7.2+). */
static int skip_all_headers(tds_rd *r, uint32_t ver)
{
    if (TDS_VER(ver) < 0x72)
        return 0;
    size_t start = r->pos;
    uint32_t total = tds_rd_u32le(r);
    if (r->err || total < 4 || total - 4 > tds_rd_left(r))
        return -1;
    /* Walk the headers so a lying total length is caught too. */
    size_t end = start + total;
    while (r->pos < end) {
        uint32_t hlen = tds_rd_u32le(r);
        if (r->err || hlen < 6 || hlen - 4 > end - r->pos)
            return -1;
        (void)tds_rd_bytes(r, hlen - 4);
    }
    return r->err ? -1 : 0;
}

int tds_batch_parse(const uint8_t *p, size_t n, uint32_t ver, char **sql, char *err, size_t errlen)
{
    *sql = NULL;
    tds_rd r;
    tds_rd_init(&r, p, n);
    if (skip_all_headers(&r, ver) != 0) {
        snprintf(err, errlen, "malformed ALL_HEADERS");
        return -1;
    }
    size_t left = tds_rd_left(&r);
    if (left % 2 != 0) {
        snprintf(err, errlen, "SQL text has an odd byte count");
        return -1;
    }
    if (tds_utf16_to_utf8(p + r.pos, left, sql, NULL) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- RPC ------------------------------------------------------------------------ */

void tds_rpc_free(tds_rpc *r)
{
    if (r == NULL)
        return;
    free(r->proc_name);
    for (size_t i = 0; i < r->nparams; i++) {
        free(r->params[i].name);
        free((void *)(uintptr_t)r->params[i].value.p);
    }
    free(r->params);
    memset(r, 0, sizeof(*r));
}

/* Upper bound on parameters: SQL Server allows 2100. */
#define RPC_MAX_PARAMS 2100

int tds_rpc_parse(const uint8_t *p, size_t n, uint32_t ver, tds_rpc *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    tds_rd r;
    tds_rd_init(&r, p, n);
    if (skip_all_headers(&r, ver) != 0) {
        snprintf(err, errlen, "malformed ALL_HEADERS");
        return -1;
    }
    uint16_t namelen = tds_rd_u16le(&r);
    if (namelen == 0xFFFF) {
        out->proc_id = tds_rd_u16le(&r);
    } else if (tds_rd_utf16(&r, namelen, &out->proc_name) != 0) {
        snprintf(err, errlen, "malformed procedure name");
        goto fail;
    }
    out->flags = tds_rd_u16le(&r);
    if (r.err) {
        snprintf(err, errlen, "RPC header truncated");
        goto fail;
    }
    while (tds_rd_left(&r) > 0) {
        uint8_t first = r.p[r.pos];
        if (first == 0x80 || first == 0xFF || first == 0xFE)
            break; /* batch separator: only the first RPC is served */
        if (out->nparams >= RPC_MAX_PARAMS) {
            snprintf(err, errlen, "too many parameters");
            goto fail;
        }
        tds_param *np = realloc(out->params, (out->nparams + 1) * sizeof(*np));
        if (np == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        out->params = np;
        tds_param *prm = &np[out->nparams];
        memset(prm, 0, sizeof(*prm));
        out->nparams++;
        uint8_t nl = tds_rd_u8(&r);
        if (r.err || tds_rd_utf16(&r, nl, &prm->name) != 0) {
            snprintf(err, errlen, "parameter %zu: malformed name", out->nparams);
            goto fail;
        }
        prm->status = tds_rd_u8(&r);
        tds_wiretype wt;
        char why[128];
        if (r.err || tds_typeinfo_read(&r, &wt, &prm->type, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "parameter %zu (%s): %s", out->nparams, prm->name,
                     r.err ? "truncated" : why);
            goto fail;
        }
        uint8_t *owned = NULL;
        if (tds_value_read(&r, &wt, &prm->value, &owned, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "parameter %zu (%s): %s", out->nparams, prm->name, why);
            goto fail;
        }
        (void)owned; /* value.p points into it; freed by tds_rpc_free */
    }
    return 0;
fail:
    tds_rpc_free(out);
    return -1;
}
