/* http_guard: who may make a request and whether it is well formed: the
 * bearer token and its scopes (with the audit lines), ambiguous framing
 * (request smuggling) and, without tokens, browser-borne requests (Host and
 * Origin). See http_int.h. */
#include "http_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- Authentication and scopes ----------------------------------------------- */

/* Identifies the request's token (once the route is known). The token is
 * hashed and looked up in the configuration's set (sg_tokens_find compares
 * digests in constant time). */
void http_guard_identify(const http_server *srv, http_req *req)
{
    const sg_tokens *set = req->cfg->tokens;
    const char *h = http_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0) {
        const char *tok = h + 7;
        while (*tok == ' ')
            tok++;
        size_t len = strlen(tok);
        req->presented = true;
        sg_token_fingerprint_of(tok, len, req->fingerprint);
        req->token = sg_tokens_find(set, tok, len);
    }
    if (sg_tokens_count(set) == 0)
        req->token = sg_token_anonymous();
}

const char *http_token_name(const http_req *req)
{
    if (req->token != NULL)
        return sg_token_fingerprint(req->token);
    return req->presented ? req->fingerprint : "none";
}

void http_audit_line(http_req *req, const char *db, int status, const char *outcome,
                     const char *reason)
{
    const char *route = req->route ? req->route->pattern : "-";
    const char *who = http_token_name(req);
    log_field f[10];
    size_t n = 0;
    f[n++] = log_str("request_id", req->id);
    n += http_trace_field(req, &f[n]);
    f[n++] = log_str("token", who);
    f[n++] = log_bool("known", req->token != NULL);
    f[n++] = log_str("method", req->method);
    f[n++] = log_str("route", route);
    f[n++] = log_int("status", status);
    f[n++] = log_str("outcome", outcome);
    if (db != NULL)
        f[n++] = log_str("db", db);
    if (reason != NULL)
        f[n++] = log_str("reason", reason);
    /* Warn: refusals and admin actions stay visible at SQLGATE_LOG_LEVEL=warn. */
    log_line(SG_LOG_WARN, "audit", f, n);
}

void http_audit(http_req *req, const char *db, int status, const char *outcome)
{
    http_audit_line(req, db, status, outcome, NULL);
}

const sg_token *http_req_token(const http_req *req)
{
    return req->token;
}

bool http_req_details_allowed(const http_req *req, sg_health_details setting)
{
    switch (setting) {
    case SG_HEALTH_DETAILS_ALWAYS:
        return true;
    case SG_HEALTH_DETAILS_AUTHORIZED:
        return req->token != NULL;
    default:
        return false;
    }
}

bool http_req_allow_db(http_req *req, const char *name)
{
    req->db_checked = true;
    if (req->token != NULL && sg_token_may_db(req->token, name))
        return true;
    char msg[SG_NAME_MAX + 64];
    snprintf(msg, sizeof msg, "this token has no scope for database %.*s", SG_NAME_MAX, name);
    http_req_set_db(req, name);
    http_reply_code(req, SG_FORBIDDEN, msg);
    return false;
}

/* The route's token and scope checks; leaves a 401/403 reply on refusal. */
void http_guard_check_access(const http_server *srv, http_req *req)
{
    unsigned flags = req->route->flags;
    bool metrics_gated =
        (flags & HTTP_SCOPE_METRICS) && req->cfg->metrics_access == SG_METRICS_TOKEN;
    if (!(flags & HTTP_AUTH) && !metrics_gated)
        return;
    if (req->token == NULL) {
        http_reply_code(req, SG_UNAUTHORIZED, "a valid bearer token is required");
        return;
    }
    unsigned scopes = sg_token_scopes(req->token);
    const char *missing = NULL;
    if (metrics_gated && !(scopes & SG_SCOPE_METRICS))
        missing = "this token has no metrics scope (needs metrics)";
    else if ((flags & HTTP_SCOPE_ADMIN) && !(scopes & SG_SCOPE_ADMIN))
        missing = "this token has no admin scope (needs admin)";
    else if ((flags & HTTP_SCOPE_ALL_DBS) && !(scopes & SG_SCOPE_ALL_DBS))
        missing = "this token has no scope for every database (needs db=*)";
    if (missing != NULL)
        http_reply_code(req, SG_FORBIDDEN, missing);
}

/* --- Framing (RFC 9112 section 6.3) ------------------------------------------ */

/* libmicrohttpd picks one of Content-Length and Transfer-Encoding and reads
 * the body by it; a proxy in front may pick the other one, and the bytes one
 * of them leaves over become a second, smuggled request. So any request
 * whose framing two readers could disagree on is refused. */
typedef struct framing {
    unsigned n_length, n_coding;
    const char *length; /* first Content-Length value */
    bool length_conflict, length_bad, coding_bad;
} framing;

static enum MHD_Result framing_visit(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    framing *f = cls;
    const char *v = value != NULL ? value : "";
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (f->n_length++ == 0)
            f->length = v;
        else if (strcmp(f->length, v) != 0)
            f->length_conflict = true;
        f->length_bad |= v[0] == '\0' || strspn(v, "0123456789") != strlen(v);
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        f->n_coding++;
        f->coding_bad |= strcasecmp(v, "chunked") != 0;
    }
    return MHD_YES;
}

/* Why the request's framing is ambiguous (a static message), or NULL. */
const char *http_guard_framing_problem(struct MHD_Connection *conn)
{
    framing f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, framing_visit, &f);
    if (f.n_coding > 0 && f.n_length > 0)
        return "a request may not have both Content-Length and Transfer-Encoding";
    if (f.n_coding > 1 || f.coding_bad)
        return "the only Transfer-Encoding accepted is a single \"chunked\"";
    if (f.length_conflict)
        return "conflicting Content-Length headers";
    if (f.length_bad)
        return "Content-Length must be a decimal number";
    return NULL;
}

/* --- Browser-borne requests without tokens ------------------------------------ */

/* Without tokens the only guard of the /v1 routes is that the caller can reach the
 * address; a web page can too, through the user's browser: by DNS rebinding
 * (its own name resolving to 127.0.0.1, so the Host header names the
 * attacker) or by a plain cross-site form POST. Host must therefore name
 * this service, and a request that says it comes from another origin is
 * refused. With tokens configured a browser cannot attach one by itself, so
 * neither check applies. */

/* Is "host[:port]" (len bytes, any case) one of the names of this service? A
 * missing port means the scheme's default. */
static bool authority_allowed(const http_server *srv, const sg_config *cfg, const char *a,
                              size_t len, bool https)
{
    char buf[300];
    if (len == 0 || len >= sizeof buf)
        return false;
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)tolower((unsigned char)a[i]);
    buf[len] = '\0';
    /* Split off the port: after "]" for IPv6, else after the last ':'. */
    char *close = buf[0] == '[' ? strchr(buf, ']') : NULL;
    if (buf[0] == '[' && close == NULL)
        return false;
    char *colon = close != NULL ? (close[1] == ':' ? close + 1 : NULL) : strrchr(buf, ':');
    if (close != NULL && close[1] != '\0' && close[1] != ':')
        return false;
    long port = https ? 443 : 80;
    if (colon != NULL) {
        char *end;
        port = strtol(colon + 1, &end, 10);
        if (colon[1] == '\0' || *end != '\0')
            return false;
        *colon = '\0';
    }
    /* SQLGATE_ALLOWED_HOSTS: "name" matches any port, "name:port" only that. */
    for (size_t i = 0; i < cfg->n_allowed_hosts; i++) {
        const char *h = cfg->allowed_hosts[i];
        size_t hl = strlen(buf);
        if (strncmp(h, buf, hl) != 0)
            continue;
        if (h[hl] == '\0')
            return true;
        if (h[hl] == ':' && strtol(h + hl + 1, NULL, 10) == port)
            return true;
    }
    if (port != atomic_load(&((http_server *)srv)->port))
        return false;
    static const char *const loopback[] = {"127.0.0.1", "localhost", "[::1]"};
    for (size_t i = 0; i < sizeof loopback / sizeof loopback[0]; i++) {
        if (strcmp(buf, loopback[i]) == 0)
            return true;
    }
    const char *lh = cfg->listen_host;
    if (close != NULL)
        return strlen(lh) == (size_t)(close - buf - 1) &&
               strncasecmp(lh, buf + 1, (size_t)(close - buf - 1)) == 0;
    return strcasecmp(lh, buf) == 0;
}

/* Why a request without tokens configured is refused (a static message), or
 * NULL. */
const char *http_guard_browser_problem(const http_server *srv, const http_req *req)
{
    bool https = srv->cfg->tls_cert_file != NULL;
    const char *host = http_req_header(req, MHD_HTTP_HEADER_HOST);
    if (host == NULL || !authority_allowed(srv, req->cfg, host, strlen(host), https))
        return "the Host header does not name this service; without API tokens only "
               "localhost, the listen address and SQLGATE_ALLOWED_HOSTS are accepted";
    const char *site = http_req_header(req, "Sec-Fetch-Site");
    if (site != NULL && strcasecmp(site, "cross-site") == 0)
        return "a cross-site request from a web page (Sec-Fetch-Site: cross-site) is refused "
               "without API tokens";
    const char *origin = http_req_header(req, "Origin");
    if (origin != NULL) {
        const char *sep = strstr(origin, "://");
        bool origin_https = strncasecmp(origin, "https://", 8) == 0;
        if (sep == NULL || strchr(sep + 3, '/') != NULL ||
            !authority_allowed(srv, req->cfg, sep + 3, strlen(sep + 3), origin_https))
            return "the Origin header names another site; without API tokens only pages "
                   "served by this service may call it";
    }
    return NULL;
}
