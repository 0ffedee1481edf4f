/* util: see util.h. */
#include "util.h"

#include "sqlgate/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* --- Secrets ---------------------------------------------------------------- */

void sg_wipe(void *p, size_t n)
{
    volatile unsigned char *b = p;
    while (n-- > 0)
        *b++ = 0;
}

void sg_free_secret(char *s)
{
    if (s == NULL)
        return;
    sg_wipe(s, strlen(s));
    free(s);
}

/* --- Files ------------------------------------------------------------------ */

int sg_file_read(const char *path, size_t cap, bool text, char **out, size_t *len)
{
    int rc = SG_FILE_ERRNO, saved = 0;
    char *buf = NULL;
    size_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return SG_FILE_ERRNO;
    struct stat st;
    if (fstat(fd, &st) != 0)
        goto fail;
    if (!S_ISREG(st.st_mode)) {
        rc = SG_FILE_NOT_REGULAR;
        goto fail;
    }
    if ((uintmax_t)st.st_size > cap) {
        rc = SG_FILE_TOO_LARGE;
        goto fail;
    }
    /* One byte more than allowed shows a file that grew while we read it. */
    buf = malloc(cap + 1);
    if (buf == NULL)
        goto fail;
    for (;;) {
        if (n == cap + 1) {
            rc = SG_FILE_TOO_LARGE;
            goto fail;
        }
        ssize_t r = read(fd, buf + n, cap + 1 - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > cap) {
        rc = SG_FILE_TOO_LARGE;
        goto fail;
    }
    if (text && memchr(buf, '\0', n) != NULL) {
        rc = SG_FILE_HAS_NUL;
        goto fail;
    }
    buf[n] = '\0';
    close(fd);
    *out = buf;
    *len = n;
    return 0;
fail:
    saved = errno;
    if (buf != NULL) {
        sg_wipe(buf, n);
        free(buf);
    }
    close(fd);
    errno = saved;
    return rc;
}

/* --- Growable byte buffer ---------------------------------------------------- */

void sg_buf_init(sg_buf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max ? max : SIZE_MAX;
}

void sg_buf_free(sg_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

bool sg_buf_reserve(sg_buf *b, size_t extra)
{
    if (b->failed)
        return false;
    size_t max = b->max ? b->max : SIZE_MAX;
    if (extra > max - b->len) {
        b->failed = true;
        return false;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *d = realloc(b->data, cap);
    if (d == NULL) {
        b->failed = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

bool sg_buf_append(sg_buf *b, const void *s, size_t n)
{
    if (!sg_buf_reserve(b, n))
        return false;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

void sg_buf_consume(sg_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

char *sg_buf_steal(sg_buf *b, size_t *len)
{
    char *d = b->data;
    *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

/* --- Text -------------------------------------------------------------------- */

size_t sg_utf8_len(const unsigned char *p, size_t n)
{
    size_t len;
    uint32_t cp, min;
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        len = 2, cp = p[0] & 0x1Fu, min = 0x80;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF)
        len = 3, cp = p[0] & 0x0Fu, min = 0x800;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4)
        len = 4, cp = p[0] & 0x07u, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

int sg_hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The one rule for database names (config, token scopes, the registry):
 * declared in sqlgate/config.h because callers outside the library need it. */
bool sg_name_valid(const char *s, size_t n)
{
    if (s == NULL || n == 0 || n > SG_NAME_MAX || s[0] < 'a' || s[0] > 'z')
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

/* --- Time -------------------------------------------------------------------- */

void sg_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int sg_condattr_init_monotonic(pthread_condattr_t *attr)
{
    if (pthread_condattr_init(attr) != 0)
        return -1;
    if (pthread_condattr_setclock(attr, CLOCK_MONOTONIC) != 0) {
        pthread_condattr_destroy(attr);
        return -1;
    }
    return 0;
}

int sg_cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    if (sg_condattr_init_monotonic(&attr) != 0)
        return -1;
    int rc = pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
    return rc == 0 ? 0 : -1;
}

void sg_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ms)
{
    if (deadline_ms < 0)
        deadline_ms = 0;
    struct timespec ts = {.tv_sec = (time_t)(deadline_ms / 1000),
                          .tv_nsec = (long)(deadline_ms % 1000) * 1000000L};
    pthread_cond_timedwait(cv, mu, &ts);
}
