/* httperr: how an error code meets HTTP.
 *
 * The library's codes (sqlgate/error.h) know nothing of HTTP; this is the one
 * place that gives each its status and the headers that go with it, for every
 * error reply (http_reply_error) and for the audit log.
 */
#ifndef SQLGATE_HTTPERR_H
#define SQLGATE_HTTPERR_H

#include <stdbool.h>

#include "sqlgate/error.h"

typedef struct httperr_policy {
    int status;                   /* 200 for SG_OK */
    const char *retry_after;      /* Retry-After value (static), or NULL */
    const char *www_authenticate; /* WWW-Authenticate challenge (static), or NULL */
    bool close;                   /* Connection: close (the server is going away) */
} httperr_policy;

/* The policy for code; SG_INTERNAL's for a value outside the list. */
httperr_policy httperr_policy_of(sg_code code);

/* The HTTP status alone (httperr_policy_of(code).status). */
int httperr_status(sg_code code);

#endif
