/* httperr: see httperr.h. */
#include "httperr.h"

/* A switch with no default: a code added to SG_CODE_LIST without a status
 * here is a -Wswitch warning, which -Dwerror makes a build failure. */
int httperr_status(sg_code code)
{
    switch (code) {
    case SG_OK:
        return 200;
    case SG_BAD_REQUEST:
    case SG_SQL_ERROR:
    case SG_CONFIG_INVALID:
        return 400;
    case SG_UNAUTHORIZED:
        return 401;
    case SG_FORBIDDEN:
        return 403;
    case SG_UNKNOWN_DATABASE:
    case SG_NOT_FOUND:
        return 404;
    case SG_METHOD_NOT_ALLOWED:
        return 405;
    case SG_PAYLOAD_TOO_LARGE:
        return 413;
    case SG_UNSUPPORTED_MEDIA_TYPE:
        return 415;
    case SG_POOL_EXHAUSTED:
    case SG_DB_UNAVAILABLE:
    case SG_DB_PAUSED:
    case SG_OVERLOADED:
    case SG_SHUTTING_DOWN:
        return 503;
    case SG_QUERY_TIMEOUT:
        return 504;
    case SG_INTERNAL:
    case SG_CODE_COUNT_:
        break;
    }
    return 500;
}

httperr_policy httperr_policy_of(sg_code code)
{
    httperr_policy p = {.status = httperr_status(code)};
    /* A database that is down takes longer to come back than a full pool or
     * a pause: clients are asked to wait longer before they retry. */
    if (p.status == 503)
        p.retry_after = code == SG_DB_UNAVAILABLE ? "5" : "1";
    if (code == SG_UNAUTHORIZED)
        p.www_authenticate = "Bearer";
    p.close = code == SG_SHUTTING_DOWN;
    return p;
}
