/* api: the HTTP API's handlers (docs/api.md) and its route table.
 * The dispatcher in http.c has already checked route, method, token and body
 * limits; handlers only do their endpoint's work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "httperr.h"
#include "log.h"
#include "qreq.h"
#include "qstream.h"
#include "reload.h"
#include "sqlgate/clock.h"

/* Bytes encoded before the status is chosen: an error within them is still
 * answered with its own status; past them the response streams. */
#define PREBUFFER_BYTES (64 * 1024)

extern const unsigned char sg_openapi_json[];
extern const size_t sg_openapi_json_len;
extern const unsigned char sg_status_html[];
extern const size_t sg_status_html_len;

/* --- Health ---------------------------------------------------------------- */

static json_t *pool_json(const sg_pool_stats *p)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I}", "max", (json_int_t)p->max, "open",
                     (json_int_t)p->open, "in_use", (json_int_t)p->in_use, "idle",
                     (json_int_t)p->idle, "waiting", (json_int_t)p->waiting);
}

static json_t *iso_time(int64_t wall_ms)
{
    if (wall_ms <= 0)
        return json_null();
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char buf[40];
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(wall_ms % 1000));
    return json_string(buf);
}

/* details false: only healthy, critical and state (SQLGATE_HEALTH_DETAILS):
 * error text, timings and pool figures describe the infrastructure. */
static json_t *health_entry(const sg_db_health *h, bool with_pool, bool details)
{
    json_t *e = json_pack("{s:b,s:b,s:s}", "healthy", h->healthy, "critical", h->critical, "state",
                          sg_db_state_name(h->state));
    if (e == NULL || !details)
        return e;
    json_object_set_new(e, "latency_ms",
                        h->latency_ms >= 0 ? json_real(h->latency_ms) : json_null());
    json_object_set_new(e, "checked_at", iso_time(h->checked_at_ms));
    json_object_set_new(e, "error",
                        h->error.code == SG_OK
                            ? json_null()
                            : json_pack("{s:s,s:s}", "code", sg_code_name(h->error.code), "message",
                                        h->error.message));
    if (with_pool)
        json_object_set_new(e, "pool", pool_json(&h->pool));
    return e;
}

/* The whole report; *healthy receives the top-level verdict. */
static json_t *health_report(app *a, bool with_pool, bool details, bool *healthy)
{
    json_t *dbs = json_object();
    bool all_critical_ok = true, any_degraded = false;
    size_t n;
    sg_db **list = sg_registry_acquire_all(a->reg, &n);
    for (size_t i = 0; dbs != NULL && i < n; i++) {
        sg_db *db = list[i];
        sg_db_health h;
        sg_db_health_get(db, &h);
        if (!h.healthy && h.critical)
            all_critical_ok = false;
        if (!h.healthy || h.state == SG_STATE_PAUSED)
            any_degraded = true;
        json_object_set_new(dbs, sg_db_name(db), health_entry(&h, with_pool, details));
    }
    sg_registry_release_all(a->reg, list, n);
    bool draining = atomic_load(&a->draining);
    *healthy = all_critical_ok && !draining;
    const char *status = draining       ? "draining"
                         : !*healthy    ? "down"
                         : any_degraded ? "degraded"
                                        : "up";
    return json_pack("{s:b,s:s,s:o}", "healthy", *healthy, "status", status, "databases", dbs);
}

static void reply_health(http_req *req, json_t *body, bool healthy)
{
    http_reply_json(req, healthy ? 200 : 503, body);
    if (!healthy)
        http_reply_header(req, "Retry-After", "1");
}

static bool details_allowed(http_req *req)
{
    return http_req_details_allowed(req, http_req_config(req)->health_details);
}

static void h_health(http_req *req, void *ud)
{
    bool healthy;
    json_t *body = health_report(ud, true, details_allowed(req), &healthy);
    reply_health(req, body, healthy);
}

static void h_ready(http_req *req, void *ud)
{
    bool healthy;
    json_t *body = health_report(ud, false, details_allowed(req), &healthy);
    reply_health(req, body, healthy);
}

static void h_live(http_req *req, void *ud)
{
    static const char live[] = "{\"status\":\"live\"}";
    http_reply_static(req, 200, "application/json", live, sizeof live - 1);
}

/* The database `name` names (NULL: the default) once the token's db= scope
 * allows it: a reference the handler gives back with sg_registry_release, or
 * NULL after a FORBIDDEN or UNKNOWN_DATABASE reply. The scope is judged on
 * the real name, so `default` counts as the database it names. */
static sg_db *scoped_db(http_req *req, app *a, const char *name)
{
    sg_err err;
    sg_db *db = sg_registry_acquire(a->reg, name, &err);
    if (!http_req_allow_db(req, db != NULL ? sg_db_name(db) : name ? name : SG_DEFAULT_ALIAS)) {
        if (db != NULL)
            sg_registry_release(a->reg, db);
        return NULL;
    }
    if (db == NULL)
        http_reply_error(req, &err);
    else
        http_req_set_db(req, sg_db_name(db));
    return db;
}

/* The database named by the path's {name} (routes with HTTP_SCOPE_DB), as
 * scoped_db. */
static sg_db *path_db(http_req *req, app *a)
{
    return scoped_db(req, a, http_req_param(req, "name"));
}

/* The same for the open health route: no scope needed (a reference). */
static sg_db *health_db(http_req *req, app *a)
{
    sg_err err;
    sg_db *db = sg_registry_acquire(a->reg, http_req_param(req, "name"), &err);
    if (db == NULL)
        http_reply_error(req, &err);
    else
        http_req_set_db(req, sg_db_name(db));
    return db;
}

static void h_health_one(http_req *req, void *ud)
{
    app *a = ud;
    sg_db *db = health_db(req, a);
    if (db == NULL)
        return;
    sg_db_health h;
    sg_db_health_get(db, &h);
    json_t *e = health_entry(&h, true, details_allowed(req));
    if (e != NULL)
        json_object_set_new(e, "name", json_string(sg_db_name(db)));
    sg_registry_release(a->reg, db);
    reply_health(req, e, h.healthy);
}

/* --- Databases ------------------------------------------------------------- */

static json_t *db_entry(sg_db *db)
{
    const sg_db_config *c = sg_db_config_of(db);
    sg_db_health h;
    sg_db_health_get(db, &h);
    json_t *pool = pool_json(&h.pool);
    if (pool != NULL) {
        json_object_set_new(pool, "acquire_timeouts",
                            json_integer((json_int_t)h.pool.acquire_timeouts));
        json_object_set_new(pool, "connect_errors",
                            json_integer((json_int_t)h.pool.connect_errors));
        json_object_set_new(pool, "opened_total", json_integer((json_int_t)h.pool.opened_total));
        json_object_set_new(pool, "closed_total", json_integer((json_int_t)h.pool.closed_total));
    }
    return json_pack("{s:s,s:s,s:s,s:b,s:b,s:o}", "name", c->name, "driver", c->driver, "state",
                     sg_db_state_name(h.state), "critical", c->critical, "read_only", c->read_only,
                     "pool", pool);
}

static void h_databases(http_req *req, void *ud)
{
    app *a = ud;
    const sg_token *t = http_req_token(req);
    json_t *list = json_array();
    size_t n;
    sg_db **dbs = sg_registry_acquire_all(a->reg, &n);
    for (size_t i = 0; list != NULL && i < n; i++) {
        if (sg_token_may_db(t, sg_db_name(dbs[i])))
            json_array_append_new(list, db_entry(dbs[i]));
    }
    sg_registry_release_all(a->reg, dbs, n);
    /* The default's name is shown only to a token that may query it: like
     * the list, it tells nobody which databases they cannot reach. */
    char def[SG_NAME_MAX + 1];
    bool has_def = sg_registry_default_copy(a->reg, def) && sg_token_may_db(t, def);
    http_reply_json(req, 200,
                    json_pack("{s:o,s:o}", "default", has_def ? json_string(def) : json_null(),
                              "databases", list));
}

static void h_database(http_req *req, void *ud)
{
    app *a = ud;
    sg_db *db = path_db(req, a);
    if (db != NULL)
        http_reply_json(req, 200, db_entry(db));
    sg_registry_release(a->reg, db);
}

static void h_reconnect(http_req *req, void *ud)
{
    app *a = ud;
    sg_db *db = path_db(req, a);
    if (db == NULL)
        return;
    /* A call that joins a pending reconnect is still accepted (202). */
    bool started = sg_db_reconnect(db);
    http_audit(req, sg_db_name(db), 202,
               started ? "reconnect" : "reconnect (joined a pending one)");
    http_reply_json(req, 202, db_entry(db));
    sg_registry_release(a->reg, db);
}

static void h_pause(http_req *req, void *ud)
{
    app *a = ud;
    sg_db *db = path_db(req, a);
    if (db == NULL)
        return;
    sg_db_pause(db);
    http_audit(req, sg_db_name(db), 202, "paused");
    http_reply_json(req, 202, db_entry(db));
    sg_registry_release(a->reg, db);
}

static void h_resume(http_req *req, void *ud)
{
    app *a = ud;
    sg_db *db = path_db(req, a);
    if (db == NULL)
        return;
    sg_db_resume(db);
    http_audit(req, sg_db_name(db), 202, "resumed");
    http_reply_json(req, 202, db_entry(db));
    sg_registry_release(a->reg, db);
}

/* --- Queries --------------------------------------------------------------- */

/* A streamed answer: the stream plus what its completion is counted against. */
typedef struct streamed {
    qstream *s; /* owned */
    app *a;
    sg_db *db; /* a reference, given back when the stream is done */
    int64_t start_us;
    sg_code outcome;                          /* SG_OK until the stream fails or is cut short */
    char request_id[HTTP_REQUEST_ID_MAX + 1]; /* the request may be gone when it fails */
    char trace_id[HTTP_TRACE_ID_MAX + 1];     /* "" without a traceparent */
} streamed;

static double seconds_since(int64_t start_us)
{
    return (double)(sg_clock_us() - start_us) / 1e6;
}

/* Copies a database's error message into out (cap bytes) with every quoted
 * span, '...' or "...", replaced by the quotes around an ellipsis. The
 * servers quote pieces of the caller's SQL in their messages (SQLite: near
 * "'sk_live_...'", SQL Server: converting the varchar value '...'): the
 * caller gets them in the response, the log keeps only the shape. A quote
 * left open hides the rest of the message. */
static void redact_quoted(const char *in, char *out, size_t cap)
{
    static const char hidden[] = "\xE2\x80\xA6"; /* U+2026 */
    size_t o = 0;
    for (const char *p = in; *p != '\0' && o + 1 < cap;) {
        char q = *p;
        if (q != '\'' && q != '"') {
            out[o++] = *p++;
            continue;
        }
        /* Skip to the closing quote; a doubled quote is part of the text. */
        const char *e = p + 1;
        for (; *e != '\0'; e++) {
            if (*e == q && e[1] == q)
                e++;
            else if (*e == q)
                break;
        }
        if (o + sizeof hidden + 2 > cap)
            break;
        out[o++] = q;
        memcpy(out + o, hidden, sizeof hidden - 1);
        o += sizeof hidden - 1;
        if (*e == '\0') {
            out[o++] = q;
            break;
        }
        out[o++] = q;
        p = e + 1;
    }
    out[o] = '\0';
}

/* msg: "query failed", or "query failed while streaming" once the headers
 * are gone. operation and trace_id may be NULL. The message is redacted (redact_quoted);
 * the caller's response carries it whole. */
static void log_query_error(const char *msg, const char *request_id, const char *trace_id,
                            const char *db, const char *operation, const sg_err *err)
{
    sg_log_level level = err->code == SG_INTERNAL ? SG_LOG_ERROR : SG_LOG_INFO;
    char redacted[3 * SG_ERR_MESSAGE_MAX + 8]; /* '' grows to 5 bytes: never cut */
    redact_quoted(err->message, redacted, sizeof redacted);
    log_field f[6] = {log_str("request_id", request_id), log_str("db", db),
                      log_str("code", sg_code_name(err->code)), log_str("message", redacted)};
    size_t n = 4;
    if (operation != NULL)
        f[n++] = log_str("operation", operation);
    if (trace_id != NULL && trace_id[0] != '\0')
        f[n++] = log_str("trace_id", trace_id);
    log_line(level, msg, f, n);
}

/* A read-only query that SQL Server refused for want of rights (its
 * read-only login: 229/230 permission denied on an object, 262 CREATE
 * denied, 3906 read-only database) is a scope refusal, decided by the
 * server: FORBIDDEN, with the server's words. */
static void read_only_refusal(sg_err *err)
{
    if (err->code != SG_SQL_ERROR)
        return;
    long n = err->sql.number;
    if (n != 229 && n != 230 && n != 262 && n != 3906)
        return;
    char server[SG_ERR_MESSAGE_MAX];
    snprintf(server, sizeof server, "%s", err->message);
    sg_err_set(
        err, SG_FORBIDDEN,
        "this token is read-only (needs rw); the database refused its read-only login: %.300s",
        server);
}

static ssize_t stream_fill(void *cls, char *buf, size_t max)
{
    streamed *st = cls;
    qstream *s = st->s;
    size_t len;
    qstream_data(s, &len);
    if (len < max) {
        sg_err err;
        sg_err_clear(&err);
        if (qstream_fill(s, max, &err) < 0) {
            /* Headers are gone: the only honest signal left is to cut the
             * transfer, so the client never takes partial rows as complete. */
            st->outcome = err.code;
            log_query_error("query failed while streaming", st->request_id, st->trace_id,
                            sg_db_name(st->db), NULL, &err);
            return HTTP_STREAM_ERROR;
        }
    }
    const char *data = qstream_data(s, &len);
    if (len == 0)
        return HTTP_STREAM_END;
    size_t n = len < max ? len : max;
    memcpy(buf, data, n);
    qstream_consume(s, n);
    return (ssize_t)n;
}

static void stream_done(void *cls)
{
    streamed *st = cls;
    /* A client that went away mid-stream leaves the query unfinished. */
    if (st->outcome == SG_OK && !qstream_finished(st->s))
        st->outcome = SG_INTERNAL;
    metrics_query(st->a->metrics, st->db, st->outcome, seconds_since(st->start_us));
    qstream_free(st->s); /* ends the query: the connection goes back first */
    sg_registry_release(st->a->reg, st->db);
    free(st);
}

/* Runs q on db, answering req. db is a reference that this function gives
 * back, or hands to the streamed body, which gives it back when done. */
static void run_query_on(http_req *req, app *a, sg_db *db, qreq *q);

static void run_query(http_req *req, app *a, const char *name, qreq *q)
{
    sg_err err;
    sg_err_clear(&err);
    sg_db *db = scoped_db(req, a, name);
    if (db == NULL)
        return;
    run_query_on(req, a, db, q);
}

static void run_query_on(http_req *req, app *a, sg_db *db, qreq *q)
{
    sg_err err;
    sg_err_clear(&err);
    const char *real = sg_db_name(db);
    http_req_set_operation(req, q->operation);
    sg_query_opts qo = {
        .timeout_ms = q->timeout_ms,
        .read_only = !(sg_token_scopes(http_req_token(req)) & SG_SCOPE_RW),
    };
    sg_query *query = sg_db_query_begin_opts(db, q->sql, q->params, q->n_params, &qo, &err);
    if (query == NULL && qo.read_only)
        read_only_refusal(&err);
    if (query == NULL) {
        log_query_error("query failed", http_req_id(req), http_req_trace_id(req), real,
                        q->operation, &err);
        metrics_query(a->metrics, db, err.code, seconds_since(http_req_start_us(req)));
        http_reply_error(req, &err);
        sg_registry_release(a->reg, db);
        return;
    }
    /* A client that stops reading must not hold the statement (and its
     * pooled connection) past the query timeout: the response gets that
     * long plus SQLGATE_WRITE_GRACE_MS, then the connection is cut. */
    int64_t limit_ms = sg_db_config_of(db)->query_timeout_ms;
    if (q->timeout_ms > 0 && q->timeout_ms < limit_ms)
        limit_ms = q->timeout_ms;
    http_req_limit_response(req, limit_ms);
    const sg_config *cfg = http_req_config(req);
    int64_t cap = cfg->max_rows;
    qstream_options opt = {
        .database = real,
        .operation = q->operation,
        .max_rows = q->max_rows > 0 && q->max_rows < cap ? q->max_rows : cap,
        .rows_as_arrays = q->rows_as_arrays,
        .start_us = http_req_start_us(req),
        .max_value_bytes = cfg->max_value_bytes,
        .max_response_bytes = cfg->max_response_bytes,
    };
    qstream *s = qstream_new(query, &opt, &err);
    int rc = s ? qstream_fill(s, PREBUFFER_BYTES, &err) : -1;
    if (rc < 0 && qo.read_only)
        read_only_refusal(&err);
    if (rc < 0) {
        log_query_error("query failed", http_req_id(req), http_req_trace_id(req), real,
                        q->operation, &err);
        metrics_query(a->metrics, db, err.code, seconds_since(http_req_start_us(req)));
        qstream_free(s);
        http_reply_error(req, &err);
        sg_registry_release(a->reg, db);
        return;
    }
    if (rc == 0) {
        size_t len;
        char *data = qstream_steal(s, &len);
        qstream_free(s);
        metrics_query(a->metrics, db, SG_OK, seconds_since(http_req_start_us(req)));
        http_reply_bytes(req, 200, "application/json", data, len);
        sg_registry_release(a->reg, db);
        return;
    }
    streamed *st = malloc(sizeof *st);
    if (st == NULL) {
        qstream_free(s);
        sg_err_set(&err, SG_INTERNAL, "out of memory");
        http_reply_error(req, &err);
        sg_registry_release(a->reg, db);
        return;
    }
    *st = (streamed){.s = s, .a = a, .db = db, .start_us = http_req_start_us(req)};
    snprintf(st->request_id, sizeof st->request_id, "%s", http_req_id(req));
    const char *trace_id = http_req_trace_id(req);
    snprintf(st->trace_id, sizeof st->trace_id, "%s", trace_id != NULL ? trace_id : "");
    http_reply_stream(req, 200, "application/json", stream_fill, stream_done, st);
}

static void query_common(http_req *req, app *a, const char *path_name)
{
    size_t len;
    const char *body = http_req_body(req, &len);
    qreq q;
    sg_err err;
    if (qreq_parse(&q, body, len, &err) != 0) {
        http_reply_error(req, &err);
        return;
    }
    const char *name = path_name ? path_name : q.database;
    if (path_name != NULL && q.database != NULL && strcmp(q.database, path_name) != 0) {
        sg_err_set(&err, SG_BAD_REQUEST,
                   "database in the body differs from the one in the path; leave it out");
        http_reply_error(req, &err);
    } else {
        run_query(req, a, name, &q);
    }
    qreq_free(&q);
}

static void h_query_named(http_req *req, void *ud)
{
    query_common(req, ud, http_req_param(req, "name"));
}

static void h_query(http_req *req, void *ud)
{
    query_common(req, ud, NULL);
}

/* --- Documents ------------------------------------------------------------- */

/* Appends the counts of connections the HTTP layer closed itself to text
 * (from malloc; realloc'd). NULL, with text freed, when memory runs out. */
static char *append_conn_counts(app *a, char *text, size_t *len)
{
    http_conn_counts c;
    http_conn_stats(a->srv, &c);
    char more[768];
    int n = snprintf(more, sizeof more,
                     "# HELP sqlgate_http_connections_closed_total Client connections sqlgate "
                     "closed itself: past a deadline (timeout), idle ones closed to make room "
                     "(evicted), refused at a client's cap (refused), or answered 503 past "
                     "SQLGATE_MAX_CONNECTIONS (over_limit).\n"
                     "# TYPE sqlgate_http_connections_closed_total counter\n"
                     "sqlgate_http_connections_closed_total{reason=\"timeout\"} %lu\n"
                     "sqlgate_http_connections_closed_total{reason=\"evicted\"} %lu\n"
                     "sqlgate_http_connections_closed_total{reason=\"refused\"} %lu\n"
                     "sqlgate_http_connections_closed_total{reason=\"over_limit\"} %lu\n",
                     c.timed_out, c.evicted, c.refused, c.over_limit);
    if (n < 0 || (size_t)n >= sizeof more) {
        free(text);
        return NULL;
    }
    char *grown = realloc(text, *len + (size_t)n + 1);
    if (grown == NULL) {
        free(text);
        return NULL;
    }
    memcpy(grown + *len, more, (size_t)n + 1);
    *len += (size_t)n;
    return grown;
}

static void h_metrics(http_req *req, void *ud)
{
    app *a = ud;
    size_t len;
    char *text = metrics_render(a->metrics, http_inflight(a->srv), &len);
    if (text != NULL)
        text = append_conn_counts(a, text, &len);
    if (text == NULL) {
        sg_err err;
        sg_err_set(&err, SG_INTERNAL, "out of memory");
        http_reply_error(req, &err);
        return;
    }
    http_reply_bytes(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

/* --- Reload ------------------------------------------------------------------ */

static void h_reload(http_req *req, void *ud)
{
    app *a = ud;
    json_t *report = NULL, *errors = NULL;
    sg_err err;
    sg_err_clear(&err);
    log_at(SG_LOG_INFO, "reload requested", log_str("request_id", http_req_id(req)));
    if (app_reload(a, "http", &report, &errors, &err) == 0) {
        http_audit(req, NULL, 200, "reload");
        http_reply_json(req, 200, report);
        return;
    }
    http_audit(req, NULL, httperr_status(err.code),
               err.code == SG_CONFIG_INVALID ? "reload refused: configuration invalid"
                                             : "reload refused");
    if (err.code != SG_CONFIG_INVALID) {
        json_decref(errors);
        http_reply_error(req, &err);
        return;
    }
    /* The error document (docs/errors.md) plus the list of problems. */
    http_reply_json(req, 400,
                    json_pack("{s:{s:s,s:s,s:s,s:o}}", "error", "code", sg_code_name(err.code),
                              "message", err.message, "request_id", http_req_id(req), "errors",
                              errors != NULL ? errors : json_array()));
}

static void h_status_page(http_req *req, void *ud)
{
    http_reply_static(req, 200, "text/html; charset=utf-8", sg_status_html, sg_status_html_len);
}

void api_observe(void *ud, const http_route *route, int status, int64_t duration_us)
{
    app *a = ud;
    metrics_http(a->metrics, route, status, duration_us);
}

static void h_openapi(http_req *req, void *ud)
{
    http_reply_static(req, 200, "application/json", sg_openapi_json, sg_openapi_json_len);
}

const http_route api_routes[] = {
    {"GET", "/", h_status_page, HTTP_INLINE},
    {"GET", "/metrics", h_metrics, HTTP_SCOPE_METRICS | HTTP_INLINE},
    {"GET", "/health", h_health, HTTP_INLINE},
    {"GET", "/health/live", h_live, HTTP_INLINE},
    {"GET", "/health/ready", h_ready, HTTP_INLINE},
    {"GET", "/health/{name}", h_health_one, HTTP_INLINE},
    {"GET", "/openapi.json", h_openapi, HTTP_INLINE},
    {"GET", "/v1/databases", h_databases, HTTP_AUTH},
    {"GET", "/v1/databases/{name}", h_database, HTTP_AUTH | HTTP_SCOPE_DB},
    {"POST", "/v1/databases/{name}/query", h_query_named,
     HTTP_AUTH | HTTP_SCOPE_DB | HTTP_JSON_BODY},
    {"POST", "/v1/databases/{name}/reconnect", h_reconnect,
     HTTP_AUTH | HTTP_SCOPE_ADMIN | HTTP_SCOPE_DB},
    {"POST", "/v1/databases/{name}/pause", h_pause, HTTP_AUTH | HTTP_SCOPE_ADMIN | HTTP_SCOPE_DB},
    {"POST", "/v1/databases/{name}/resume", h_resume, HTTP_AUTH | HTTP_SCOPE_ADMIN | HTTP_SCOPE_DB},
    {"POST", "/v1/query", h_query, HTTP_AUTH | HTTP_SCOPE_DB | HTTP_JSON_BODY},
    {"POST", "/v1/admin/reload", h_reload, HTTP_AUTH | HTTP_SCOPE_ADMIN | HTTP_SCOPE_ALL_DBS},
};
const size_t api_n_routes = sizeof api_routes / sizeof api_routes[0];
