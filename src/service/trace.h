/* trace: the W3C Trace Context `traceparent` request header
 * (https://www.w3.org/TR/trace-context/#traceparent-header). sqlgate starts no
 * spans: it accepts a caller's traceparent, returns it on the response and
 * logs its trace id beside the request id, so one search finds a call in
 * both the caller's traces and sqlgate's logs. */
#ifndef SQLGATE_TRACE_H
#define SQLGATE_TRACE_H

#include <stdbool.h>

/* "vv-<32 hex trace id>-<16 hex parent id>-ff": the part every version shares. */
#define TRACE_PARENT_LEN 55
#define TRACE_ID_OFFSET  3
#define TRACE_ID_LEN     32

/* True when value (borrowed) is a valid traceparent: version 00 exactly as
 * the specification writes it; a later version (not ff) when its first 55
 * characters read as version 00 does, followed by nothing or by '-'.
 * Lowercase hex only; an all-zero trace id or parent id is invalid. On
 * success out holds the first 55 characters (NUL-terminated); on failure it
 * is left empty. */
bool trace_parent_parse(const char *value, char out[TRACE_PARENT_LEN + 1]);

#endif
