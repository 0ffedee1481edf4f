/* httpresp: where an HTTP/1.1 response ends in a buffer, for the load
 * generators (loadgen, holdconns), which read responses off non-blocking
 * sockets and need to know when one is complete. Content-Length and
 * chunked bodies (with trailers); no allocation. */
#ifndef SQLGATE_BENCH_HTTPRESP_H
#define SQLGATE_BENCH_HTTPRESP_H

#include <stddef.h>

/* Bytes of a complete chunked body at p (n bytes), or 0 if incomplete. */
size_t httpresp_chunked_len(const char *p, size_t n);

/* Length of the complete response at the start of buf (len bytes): 0 when
 * more is needed, -1 when it is not an HTTP/1.x response. Sets *status
 * once the headers are in. */
long httpresp_len(const char *buf, size_t len, int *status);

#endif
