/* Server-side TLS on memory BIOs for the TDS test server (see tds_tls.h). */
#include "tds_tls.h"

#include <stdio.h>
#include <stdlib.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

struct tds_tls_ctx {
    SSL_CTX *ssl;
};

struct tds_tls {
    SSL *ssl;
    BIO *in;  /* from the client; owned by ssl */
    BIO *out; /* to the client; owned by ssl */
};

/* OpenSSL's last queued error as text, or `fallback`. */
static void last_error(char *err, size_t errlen, const char *what, const char *fallback)
{
    unsigned long e = ERR_get_error();
    char buf[256];
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, errlen, "%s: %s", what, e != 0 ? buf : fallback);
    ERR_clear_error();
}

tds_tls_ctx *tds_tls_ctx_new(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    tds_tls_ctx *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ctx->ssl = SSL_CTX_new(TLS_server_method());
    if (ctx->ssl == NULL) {
        last_error(err, errlen, "SSL_CTX_new", "failed");
        goto fail;
    }
    /* TDS 7.x: TLS 1.2 at most (see the header). */
    if (SSL_CTX_set_min_proto_version(ctx->ssl, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx->ssl, TLS1_2_VERSION) != 1) {
        last_error(err, errlen, "TLS version", "cannot be set");
        goto fail;
    }
    SSL_CTX_set_session_cache_mode(ctx->ssl, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx->ssl, SSL_OP_NO_TICKET);
    if (SSL_CTX_use_certificate_chain_file(ctx->ssl, cert_file) != 1) {
        last_error(err, errlen, cert_file, "cannot load the certificate");
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx->ssl, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx->ssl) != 1) {
        last_error(err, errlen, key_file, "cannot load the private key");
        goto fail;
    }
    return ctx;
fail:
    tds_tls_ctx_free(ctx);
    return NULL;
}

void tds_tls_ctx_free(tds_tls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    SSL_CTX_free(ctx->ssl);
    free(ctx);
}

tds_tls *tds_tls_new(tds_tls_ctx *ctx)
{
    tds_tls *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->ssl = SSL_new(ctx->ssl);
    t->in = BIO_new(BIO_s_mem());
    t->out = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->in == NULL || t->out == NULL) {
        BIO_free(t->in);
        BIO_free(t->out);
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return NULL;
    }
    /* An empty input BIO means "wait for more", not end of file. */
    BIO_set_mem_eof_return(t->in, -1);
    BIO_set_mem_eof_return(t->out, -1);
    SSL_set_bio(t->ssl, t->in, t->out);
    SSL_set_accept_state(t->ssl);
    return t;
}

void tds_tls_free(tds_tls *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl); /* frees both BIOs */
    free(t);
    ERR_clear_error();
}

int tds_tls_feed(tds_tls *t, const uint8_t *p, size_t n)
{
    while (n > 0) {
        int chunk = n > 1u << 30 ? 1 << 30 : (int)n;
        int w = BIO_write(t->in, p, chunk);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int tds_tls_handshake(tds_tls *t, char *err, size_t errlen)
{
    int r = SSL_do_handshake(t->ssl);
    if (r == 1)
        return 1;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    last_error(err, errlen, "TLS handshake", "the client broke it off");
    return -1;
}

size_t tds_tls_take(tds_tls *t, tds_buf *out)
{
    size_t total = 0;
    uint8_t chunk[4096];
    int n;
    while ((n = BIO_read(t->out, chunk, sizeof(chunk))) > 0) {
        tds_buf_put(out, chunk, (size_t)n);
        total += (size_t)n;
    }
    return total;
}

int tds_tls_write(tds_tls *t, const uint8_t *p, size_t n, tds_buf *out)
{
    while (n > 0) {
        int chunk = n > 16384 ? 16384 : (int)n;
        int w = SSL_write(t->ssl, p, chunk);
        if (w <= 0) {
            ERR_clear_error();
            return -1;
        }
        p += w;
        n -= (size_t)w;
        tds_tls_take(t, out);
    }
    return out->failed ? -1 : 0;
}

int tds_tls_read(tds_tls *t, tds_buf *out)
{
    uint8_t chunk[16384];
    for (;;) {
        int n = SSL_read(t->ssl, chunk, sizeof(chunk));
        if (n > 0) {
            tds_buf_put(out, chunk, (size_t)n);
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        ERR_clear_error();
        if (e == SSL_ERROR_WANT_READ)
            return out->failed ? -1 : 0;
        return -1;
    }
}

int tds_tls_record_header(const uint8_t *p, size_t *len)
{
    if (p[0] < 20 || p[0] > 23 || p[1] != 3)
        return -1;
    *len = ((size_t)p[3] << 8) | p[4];
    return *len <= TDS_TLS_RECORD_MAX ? 0 : -1;
}
