/* httpresp: see httpresp.h. */
#define _GNU_SOURCE /* memmem */
#include "httpresp.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

size_t httpresp_chunked_len(const char *p, size_t n)
{
    size_t off = 0;
    for (;;) {
        const char *eol = memmem(p + off, n - off, "\r\n", 2);
        if (eol == NULL)
            return 0;
        size_t size = strtoul(p + off, NULL, 16);
        off = (size_t)(eol - p) + 2;
        if (size == 0) {
            /* Trailers end with an empty line. */
            const char *end = memmem(p + off, n - off, "\r\n", 2);
            while (end != NULL && end != p + off) {
                off = (size_t)(end - p) + 2;
                end = memmem(p + off, n - off, "\r\n", 2);
            }
            return end == NULL ? 0 : off + 2;
        }
        if (n - off < size + 2)
            return 0;
        off += size + 2;
    }
}

long httpresp_len(const char *buf, size_t len, int *status)
{
    const char *hdr_end = memmem(buf, len, "\r\n\r\n", 4);
    if (hdr_end == NULL)
        return 0;
    size_t hlen = (size_t)(hdr_end - buf) + 4;
    if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0)
        return -1;
    *status = atoi(buf + 9);
    const char *p = buf;
    long content_len = -1;
    bool chunked = false;
    while (p < hdr_end) {
        const char *eol = memmem(p, (size_t)(hdr_end - p) + 2, "\r\n", 2);
        if (eol == NULL)
            break;
        if (strncasecmp(p, "Content-Length:", 15) == 0)
            content_len = atol(p + 15);
        else if (strncasecmp(p, "Transfer-Encoding:", 18) == 0 && strstr(p, "chunked") < eol)
            chunked = true;
        p = eol + 2;
    }
    if (chunked) {
        size_t b = httpresp_chunked_len(buf + hlen, len - hlen);
        return b == 0 ? 0 : (long)(hlen + b);
    }
    if (content_len < 0)
        content_len = 0;
    return len >= hlen + (size_t)content_len ? (long)(hlen + (size_t)content_len) : 0;
}
