/* http_reply: the replies a handler builds (bytes, JSON, errors, streams)
 * and the request accessors it reads; see http.h. */
#include "http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httperr.h"
#include "sqlgate/clock.h"

/* --- Replies --------------------------------------------------------------- */

void http_reply_bytes(http_req *req, int status, const char *content_type, char *data, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(data);
        http_set_response(req, 500, NULL);
        return;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    http_set_response(req, status, resp);
}

void http_reply_static(http_req *req, int status, const char *content_type, const void *data,
                       size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
    if (resp != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    http_set_response(req, status, resp);
}

void http_reply_json(http_req *req, int status, json_t *body)
{
    char *text =
        body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(body);
    if (text == NULL) {
        sg_err err;
        sg_err_set(&err, SG_INTERNAL, "cannot encode the response");
        http_reply_error(req, &err);
        return;
    }
    http_reply_bytes(req, status, "application/json", text, strlen(text));
}

void http_reply_header(http_req *req, const char *name, const char *value)
{
    if (req->response != NULL)
        MHD_add_response_header(req->response, name, value);
}

void http_reply_error(http_req *req, const sg_err *err)
{
    /* Rendered with jsonw: messages may quote client bytes that are not
     * valid UTF-8, which jsonw replaces rather than fails on. */
    jw_buf b;
    jw_init(&b, 0);
    jw_lit(&b, "{\"error\":{\"code\":");
    jw_cstr(&b, sg_code_name(err->code));
    jw_lit(&b, ",\"message\":");
    jw_cstr(&b, err->message);
    jw_lit(&b, ",\"request_id\":");
    jw_cstr(&b, req->id);
    if (err->has_sql) {
        char sql[160];
        snprintf(sql, sizeof sql,
                 ",\"sql\":{\"number\":%ld,\"severity\":%d,\"state\":%d,\"line\":%d}",
                 err->sql.number, err->sql.severity, err->sql.state, err->sql.line);
        jw_lit(&b, sql);
    }
    jw_lit(&b, "}}");
    httperr_policy policy = httperr_policy_of(err->code);
    int status = policy.status;
    if (b.failed) {
        jw_free(&b);
        http_set_response(req, 500, NULL);
        return;
    }
    size_t len;
    char *text = jw_steal(&b, &len);
    http_reply_bytes(req, status, "application/json", text, len);
    if (policy.retry_after != NULL)
        http_reply_header(req, MHD_HTTP_HEADER_RETRY_AFTER, policy.retry_after);
    if (policy.close)
        http_reply_header(req, MHD_HTTP_HEADER_CONNECTION, "close");
    if (policy.www_authenticate != NULL)
        http_reply_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, policy.www_authenticate);
    if (err->code == SG_UNAUTHORIZED || err->code == SG_FORBIDDEN)
        http_audit_line(req, req->db[0] != '\0' ? req->db : NULL, status, "refused", err->message);
}

/* --- Request accessors ----------------------------------------------------- */

const char *http_req_param(const http_req *req, const char *name)
{
    if (req->route == NULL)
        return NULL;
    const char *p = req->route->pattern;
    size_t seg = 0;
    while (*p == '/' && seg < req->n_segments) {
        p++;
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 2 && p[0] == '{' && p[len - 1] == '}' && strlen(name) == len - 2 &&
            strncmp(p + 1, name, len - 2) == 0)
            return req->segments[seg];
        seg++;
        p += len;
    }
    return NULL;
}

const char *http_req_body(const http_req *req, size_t *len)
{
    if (len != NULL)
        *len = req->body.len;
    return req->body.data ? req->body.data : "";
}

const char *http_req_header(const http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_req_id(const http_req *req)
{
    return req->id;
}

const char *http_req_trace_id(const http_req *req)
{
    return req->trace_id[0] != '\0' ? req->trace_id : NULL;
}

int64_t http_req_start_us(const http_req *req)
{
    return req->start_us;
}

const char *http_req_method(const http_req *req)
{
    return req->method;
}

void http_req_set_db(http_req *req, const char *name)
{
    size_t len = strnlen(name, sizeof req->db - 1);
    memcpy(req->db, name, len);
    req->db[len] = '\0';
}

void http_req_limit_response(http_req *req, int64_t within_ms)
{
    req->response_deadline_us =
        sg_clock_us() + (within_ms + req->cfg->write_grace_ms) * (int64_t)1000;
}

void http_req_set_operation(http_req *req, const char *operation)
{
    free(req->operation);
    req->operation = operation ? strdup(operation) : NULL;
}
