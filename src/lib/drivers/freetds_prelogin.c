/* freetds_prelogin: why a login's encryption negotiation failed.
 *
 * db-lib reports every failure of the encryption negotiation with the same
 * 20002 (SYBEFCON, "Adaptive Server connection failed") and no OS error: an
 * untrusted certificate, a host name that does not match it, a server without
 * TLS when it is required, a server that requires TLS when it is off. The
 * reason stays in FreeTDS's debug log (TDSDUMP). So the server is asked again,
 * without TLS, what it answered, and that tells which side gave up; a TLS
 * handshake that failed is the certificate's fault whenever a CA file was
 * given, since FreeTDS then verifies it (even with `request`).
 */
#include "freetds_int.h"
#include "../util.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

/* PRELOGIN ENCRYPTION values (MS-TDS 2.2.6.5). */
enum { ENC_OFF = 0x00, ENC_ON = 0x01, ENC_NOT_SUP = 0x02, ENC_REQ = 0x03 };

/* Longest time the question below may take, within the login's deadline. */
#define PROBE_TIMEOUT_MS 3000

/* Waits for events on fd until deadline; true when they came. */
static bool probe_wait(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - sg_clock_ms();
        if (left <= 0)
            return false;
        struct pollfd pf = {.fd = fd, .events = events};
        int n = poll(&pf, 1, (int)left);
        if (n > 0)
            return true;
        if (n < 0 && errno != EINTR)
            return false;
    }
}

/* Asks the server the PRELOGIN question FreeTDS asked (ENCRYPTION as
 * freetds.conf's `encryption` sends it) on a new connection and returns the
 * ENCRYPTION byte of its answer, or -1 (no answer before deadline). The
 * connection is closed without a login. */
static int prelogin_answer(const sg_db_config *cfg, int64_t deadline)
{
    static const uint8_t ask[] = {[SG_ENCRYPT_OFF] = ENC_NOT_SUP,
                                  [SG_ENCRYPT_REQUEST] = ENC_OFF,
                                  [SG_ENCRYPT_REQUIRE] = ENC_ON};
    /* Header, then the option table: VERSION (6 bytes at 11), ENCRYPTION
     * (1 byte at 17), terminator. */
    uint8_t pkt[26] = {0x12, 0x01, 0,  26, 0, 0,    1, 0, 0x00, 0, 11, 0, 6,
                       0x01, 0,    17, 0,  1, 0xFF, 0, 0, 0,    0, 0,  0, 0};
    pkt[25] = ask[cfg->encrypt];
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(cfg->host, port, &hints, &ai) != 0 || ai == NULL)
        return -1;
    int answer = -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        goto done;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 &&
        (errno != EINPROGRESS || !probe_wait(fd, POLLOUT, deadline)))
        goto done;
    if (send(fd, pkt, sizeof pkt, MSG_NOSIGNAL) != (ssize_t)sizeof pkt)
        goto done;
    uint8_t buf[512];
    size_t got = 0, want = 8;
    while (got < want) {
        if (!probe_wait(fd, POLLIN, deadline))
            goto done;
        ssize_t r = recv(fd, buf + got, want - got, 0);
        if (r <= 0) {
            if (r < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            goto done;
        }
        got += (size_t)r;
        if (got == 8) {
            want = (size_t)buf[2] << 8 | buf[3];
            if (buf[0] != 0x04 || want < 8 || want > sizeof buf)
                goto done;
        }
    }
    /* The option table: token, offset, length (big-endian), up to 0xFF. */
    const uint8_t *body = buf + 8;
    size_t n = want - 8;
    for (size_t i = 0; i + 5 <= n && body[i] != 0xFF; i += 5) {
        size_t off = (size_t)body[i + 1] << 8 | body[i + 2];
        size_t len = (size_t)body[i + 3] << 8 | body[i + 4];
        if (body[i] == 0x01 && len >= 1 && off < n)
            answer = body[off];
    }
done:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return answer;
}

void ft_explain_negotiation(const sg_db_config *cfg, int64_t deadline, sg_err *err)
{
    int64_t limit = sg_clock_ms() + PROBE_TIMEOUT_MS;
    int answer = prelogin_answer(cfg, deadline != 0 && deadline < limit ? deadline : limit);
    bool server_tls = answer == ENC_OFF || answer == ENC_ON || answer == ENC_REQ;
    if (answer == ENC_NOT_SUP && cfg->encrypt == SG_ENCRYPT_REQUIRE) {
        sg_err_set(err, SG_DB_UNAVAILABLE,
                   "encryption is required (%sENCRYPT=require) but the server does not support "
                   "it (it answered ENCRYPT_NOT_SUP)",
                   cfg->prefix);
    } else if ((answer == ENC_ON || answer == ENC_REQ) && cfg->encrypt == SG_ENCRYPT_OFF) {
        sg_err_set(err, SG_DB_UNAVAILABLE,
                   "the server requires encryption but %sENCRYPT is off; use request or require",
                   cfg->prefix);
    } else if (server_tls && cfg->encrypt != SG_ENCRYPT_OFF && cfg->ca_file != NULL) {
        sg_err_set(err, SG_DB_UNAVAILABLE,
                   "TLS handshake failed: the server's certificate was not trusted: it is not "
                   "signed by a CA in %sCA_FILE, or it was not issued for the host name '%s', "
                   "or it expired (FreeTDS does not say which)",
                   cfg->prefix, cfg->host);
    } else if (server_tls && cfg->encrypt != SG_ENCRYPT_OFF) {
        sg_err_set(err, SG_DB_UNAVAILABLE,
                   "TLS handshake with the server failed (no TLS version or cipher in common, "
                   "or the server broke it off)");
    } else {
        sg_err_set(err, SG_DB_UNAVAILABLE,
                   "the server broke off the login before it began (encryption negotiation "
                   "failed or the connection was refused)");
    }
}
