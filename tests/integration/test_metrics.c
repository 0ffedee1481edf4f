/* Integration: GET /metrics of a running sqlgate (docs/api.md).
 *
 * The exposition text is parsed in full (Prometheus text format 0.0.4):
 * every sample line, every # HELP and # TYPE, names, labels and values,
 * counters ending in _total, histograms cumulative up to le="+Inf" equal to
 * their _count. Then the figures are checked per database against what the
 * test did: pool gauges against /v1/databases, query counters by outcome, the
 * latency histogram, acquire timeouts, connection errors, reconnects, the
 * health state of a database that is down, and HTTP requests by route
 * template and status. Then the latency histograms (pool acquire, usage and
 * creation, query, HTTP by route template and status class: buckets from
 * 100 µs, counts that match the requests made, sums bounded by the time the
 * test took), the HikariCP-named pool figures, the process_* metrics, and the
 * absence of any negative sentinel.
 *
 * Counters only grow and the service is shared by the tests of a TCase, so
 * every check compares two snapshots taken around the test's own requests.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "check_main.h"
#include "harness.h"

/* app: a pool of one, a short acquire timeout and a query timeout that
 * outlasts it, so that a slow query starves the next one (both scaled by
 * $SQLGATE_TIMEOUT_SCALE, for runs under memory tools). */
#define APP_ACQUIRE_MS 1500
#define APP_QUERY_MS   5000

#define SLOW_CTE                                                                                   \
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "        \
    "SELECT count(*) AS n FROM c"

static void setup_embedded(void)
{
    char acquire[64], query[64];
    snprintf(acquire, sizeof acquire, "APP_DB_ACQUIRE_TIMEOUT_MS=%d", scaled_ms(APP_ACQUIRE_MS));
    snprintf(query, sizeof query, "APP_DB_QUERY_TIMEOUT_MS=%d", scaled_ms(APP_QUERY_MS));
    const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0", "APP_DB_POOL_MAX=1", acquire, query,
                               NULL};
    fixture_start_unchecked(env, true);
}

/* core is fine; broken cannot be opened (its directory does not exist); ro
 * is read-only, with a file the test deletes to make the pool's next open
 * fail while the health check keeps its own connection. */
static void setup_down(void)
{
    static const char *const env[] = {"SQLGATE_LISTEN=127.0.0.1:0",
                                      "SQLGATE_DATABASES=core,broken,ro",
                                      "SQLGATE_DEFAULT_DATABASE=core",
                                      "CORE_DB_PATH=./core.db",
                                      "BROKEN_DB_PATH=./no/such/dir/broken.db",
                                      "BROKEN_DB_CRITICAL=false",
                                      "RO_DB_PATH=./ro.db",
                                      "RO_DB_READ_ONLY=true",
                                      "RO_DB_CRITICAL=false",
                                      "RO_DB_HEALTH_INTERVAL_MS=600000",
                                      NULL};
    fixture_dir = tmp_dir_new();
    /* an empty file is an empty SQLite database */
    if (fixture_dir != NULL && write_file(fixture_dir, "ro.db", "") != 0) {
        tmp_dir_free(fixture_dir);
        fixture_dir = NULL;
    }
    fixture_svc = fixture_dir != NULL ? proc_start(env, fixture_dir, false) : NULL;
}

/* --- Exposition parser ------------------------------------------------------ */

typedef struct family {
    char *name;
    char *type; /* NULL until # TYPE */
    bool help;
    bool had_samples;
} family;

typedef struct sample {
    char *name;
    size_t family;  /* index into expo.fams */
    json_t *labels; /* object of strings */
    double value;
} sample;

typedef struct expo {
    family *fams;
    size_t n_fams;
    sample *samples;
    size_t n_samples;
} expo;

static void expo_free(expo *e)
{
    for (size_t i = 0; i < e->n_fams; i++) {
        free(e->fams[i].name);
        free(e->fams[i].type);
    }
    for (size_t i = 0; i < e->n_samples; i++) {
        free(e->samples[i].name);
        json_decref(e->samples[i].labels);
    }
    free(e->fams);
    free(e->samples);
    memset(e, 0, sizeof *e);
}

static bool name_ok(const char *s, size_t n, bool colon)
{
    if (n == 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!(alpha || (colon && c == ':') || (i > 0 && c >= '0' && c <= '9'))) {
            return false;
        }
    }
    return true;
}

static long fam_find(const expo *e, const char *name)
{
    for (size_t i = 0; i < e->n_fams; i++) {
        if (strcmp(e->fams[i].name, name) == 0) {
            return (long)i;
        }
    }
    return -1;
}

static size_t fam_get(expo *e, const char *name, size_t len)
{
    char *n = strndup(name, len);
    long i = n != NULL ? fam_find(e, n) : -1;
    if (i >= 0) {
        free(n);
        return (size_t)i;
    }
    family *nf = realloc(e->fams, (e->n_fams + 1) * sizeof *nf);
    ck_assert_ptr_nonnull(nf);
    e->fams = nf;
    e->fams[e->n_fams] = (family){.name = n};
    return e->n_fams++;
}

static bool parse_value(const char *s, double *out, const char **end)
{
    if (strncmp(s, "+Inf", 4) == 0) {
        *out = INFINITY;
        *end = s + 4;
        return true;
    }
    if (strncmp(s, "-Inf", 4) == 0) {
        *out = -INFINITY;
        *end = s + 4;
        return true;
    }
    if (strncmp(s, "NaN", 3) == 0) {
        *out = NAN;
        *end = s + 3;
        return true;
    }
    char *e;
    *out = strtod(s, &e);
    *end = e;
    return e != s;
}

/* The family a sample name belongs to: itself when it has a TYPE, else
 * (histogram) the name without _bucket/_sum/_count. -1 when none. */
static long sample_family(const expo *e, const char *name)
{
    long f = fam_find(e, name);
    if (f >= 0) {
        return f;
    }
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    size_t n = strlen(name);
    for (size_t i = 0; i < 3; i++) {
        size_t sl = strlen(suffixes[i]);
        if (n > sl && strcmp(name + n - sl, suffixes[i]) == 0) {
            char base[256];
            snprintf(base, sizeof base, "%.*s", (int)(n - sl), name);
            f = fam_find(e, base);
            if (f >= 0 && e->fams[f].type != NULL &&
                (strcmp(e->fams[f].type, "histogram") == 0 ||
                 (strcmp(e->fams[f].type, "summary") == 0 && i > 0))) {
                return f;
            }
        }
    }
    return -1;
}

/* Labels "{a="x",b="y"}" starting at *pp; advances past the brace. */
static bool parse_labels(const char **pp, json_t *labels, char *why, size_t cap)
{
    const char *p = *pp + 1;
    while (*p != '}') {
        const char *eq = strchr(p, '=');
        if (eq == NULL || !name_ok(p, (size_t)(eq - p), false) || eq[1] != '"') {
            snprintf(why, cap, "bad label name");
            return false;
        }
        char lname[128];
        snprintf(lname, sizeof lname, "%.*s", (int)(eq - p), p);
        if (strncmp(lname, "__", 2) == 0 || json_object_get(labels, lname) != NULL) {
            snprintf(why, cap, "reserved or repeated label %s", lname);
            return false;
        }
        char value[512];
        size_t n = 0;
        const char *v = eq + 2;
        while (*v != '"') {
            if (*v == '\0' || *v == '\n' || n + 1 >= sizeof value) {
                snprintf(why, cap, "unterminated value of label %s", lname);
                return false;
            }
            if (*v == '\\') {
                v++;
                if (*v != '\\' && *v != '"' && *v != 'n') {
                    snprintf(why, cap, "bad escape in label %s", lname);
                    return false;
                }
                value[n++] = *v == 'n' ? '\n' : *v;
            } else {
                value[n++] = *v;
            }
            v++;
        }
        value[n] = '\0';
        json_object_set_new(labels, lname, json_string(value));
        p = v + 1;
        if (*p == ',') {
            p++;
        } else if (*p != '}') {
            snprintf(why, cap, "expected ',' or '}' after label %s", lname);
            return false;
        }
    }
    *pp = p + 1;
    return true;
}

static bool parse_sample(expo *e, const char *line, long *last_fam, char *why, size_t cap)
{
    size_t n = strcspn(line, "{ ");
    if (!name_ok(line, n, true)) {
        snprintf(why, cap, "bad metric name");
        return false;
    }
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)n, line);
    long f = sample_family(e, name);
    if (f < 0 || e->fams[f].type == NULL || !e->fams[f].help) {
        snprintf(why, cap, "sample %s before its # HELP and # TYPE", name);
        return false;
    }
    if (f != *last_fam && e->fams[f].had_samples) {
        snprintf(why, cap, "samples of %s are not grouped together", e->fams[f].name);
        return false;
    }
    *last_fam = f;
    e->fams[f].had_samples = true;
    json_t *labels = json_object();
    const char *p = line + n;
    if (*p == '{' && !parse_labels(&p, labels, why, cap)) {
        json_decref(labels);
        return false;
    }
    double value;
    const char *end;
    if (*p != ' ' || !parse_value(p + 1, &value, &end) || (*end != '\0' && *end != ' ')) {
        json_decref(labels);
        snprintf(why, cap, "bad value");
        return false;
    }
    if (*end == ' ') { /* optional timestamp, integer milliseconds */
        char *tend;
        strtoll(end + 1, &tend, 10);
        if (tend == end + 1 || *tend != '\0') {
            json_decref(labels);
            snprintf(why, cap, "bad timestamp");
            return false;
        }
    }
    for (size_t i = 0; i < e->n_samples; i++) {
        if (strcmp(e->samples[i].name, name) == 0 && json_equal(e->samples[i].labels, labels)) {
            json_decref(labels);
            snprintf(why, cap, "repeated series");
            return false;
        }
    }
    sample *ns = realloc(e->samples, (e->n_samples + 1) * sizeof *ns);
    ck_assert_ptr_nonnull(ns);
    e->samples = ns;
    e->samples[e->n_samples++] =
        (sample){.name = strdup(name), .family = (size_t)f, .labels = labels, .value = value};
    return true;
}

static bool parse_comment(expo *e, const char *line, char *why, size_t cap)
{
    bool is_help = strncmp(line, "# HELP ", 7) == 0;
    bool is_type = strncmp(line, "# TYPE ", 7) == 0;
    if (!is_help && !is_type) {
        return true; /* a plain comment */
    }
    const char *name = line + 7;
    size_t n = strcspn(name, " ");
    if (!name_ok(name, n, true) || name[n] != ' ' || name[n + 1] == '\0') {
        snprintf(why, cap, "malformed # HELP/# TYPE");
        return false;
    }
    size_t idx = fam_get(e, name, n); /* may move e->fams */
    family *f = &e->fams[idx];
    if (f->had_samples) {
        snprintf(why, cap, "# HELP/# TYPE of %s after its samples", f->name);
        return false;
    }
    if (is_help) {
        if (f->help) {
            snprintf(why, cap, "second # HELP for %s", f->name);
            return false;
        }
        f->help = true;
        return true;
    }
    const char *type = name + n + 1;
    static const char *const types[] = {"counter", "gauge", "histogram", "summary", "untyped"};
    bool known = false;
    for (size_t i = 0; i < 5; i++) {
        known = known || strcmp(type, types[i]) == 0;
    }
    if (f->type != NULL || !known) {
        snprintf(why, cap, "second or unknown # TYPE for %s", f->name);
        return false;
    }
    f->type = strdup(type);
    return true;
}

/* Histogram rules for family f: per label set, buckets with increasing le,
 * cumulative counts, the last le="+Inf" equal to _count, and a _sum. */
static bool check_histogram(const expo *e, size_t f, char *why, size_t cap)
{
    const char *fam = e->fams[f].name;
    char bname[256], cname[256], sname[256];
    snprintf(bname, sizeof bname, "%s_bucket", fam);
    snprintf(cname, sizeof cname, "%s_count", fam);
    snprintf(sname, sizeof sname, "%s_sum", fam);
    for (size_t i = 0; i < e->n_samples; i++) {
        const sample *c = &e->samples[i];
        if (strcmp(c->name, cname) != 0) {
            continue;
        }
        double prev_le = -INFINITY, prev_count = 0, inf_count = -1;
        size_t buckets = 0;
        for (size_t j = 0; j < e->n_samples; j++) {
            const sample *b = &e->samples[j];
            if (strcmp(b->name, bname) != 0) {
                continue;
            }
            json_t *rest = json_deep_copy(b->labels);
            const char *le = json_string_value(json_object_get(b->labels, "le"));
            json_object_del(rest, "le");
            bool same = json_equal(rest, c->labels);
            json_decref(rest);
            if (!same) {
                continue;
            }
            double lev;
            const char *end;
            if (le == NULL || !parse_value(le, &lev, &end) || *end != '\0' || lev <= prev_le ||
                b->value < prev_count || inf_count >= 0) {
                snprintf(why, cap, "%s: bucket le=%s out of order or not cumulative", fam,
                         le ? le : "(none)");
                return false;
            }
            prev_le = lev;
            prev_count = b->value;
            if (isinf(lev)) {
                inf_count = b->value;
            }
            buckets++;
        }
        if (buckets < 2 || inf_count < 0 || inf_count != c->value) {
            snprintf(why, cap, "%s: buckets do not end at le=\"+Inf\" equal to _count", fam);
            return false;
        }
        bool has_sum = false;
        double sum = 0;
        for (size_t j = 0; j < e->n_samples; j++) {
            if (strcmp(e->samples[j].name, sname) == 0 &&
                json_equal(e->samples[j].labels, c->labels)) {
                has_sum = true;
                sum = e->samples[j].value;
            }
        }
        if (!has_sum) {
            snprintf(why, cap, "%s: no _sum", fam);
            return false;
        }
        /* durations: never negative, and nothing to add up without a sample */
        if (!(sum >= 0) || (c->value == 0 && sum != 0)) {
            snprintf(why, cap, "%s: _sum %g does not fit _count %g", fam, sum, c->value);
            return false;
        }
    }
    return true;
}

/* Parses text into e (which the caller frees); false with why on a violation
 * of the format or of the naming conventions. */
static bool expo_parse(const char *text, expo *e, char *why, size_t cap)
{
    memset(e, 0, sizeof *e);
    char *copy = strdup(text);
    ck_assert_ptr_nonnull(copy);
    char lerr[400] = "";
    long last_fam = -1;
    size_t lineno = 0;
    bool ok = true;
    char *save = NULL;
    if (text[0] != '\0' && text[strlen(text) - 1] != '\n') {
        snprintf(why, cap, "the text does not end with a newline");
        free(copy);
        return false;
    }
    for (char *line = strtok_r(copy, "\n", &save); ok && line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (line[0] == '#') {
            ok = parse_comment(e, line, lerr, sizeof lerr);
        } else if (line[0] != '\0') {
            ok = parse_sample(e, line, &last_fam, lerr, sizeof lerr);
        }
        if (!ok) {
            snprintf(why, cap, "line %zu: %s: %.200s", lineno, lerr, line);
        }
    }
    free(copy);
    for (size_t f = 0; ok && f < e->n_fams; f++) {
        const family *fm = &e->fams[f];
        if (fm->type == NULL || !fm->help) {
            snprintf(why, cap, "%s lacks # HELP or # TYPE", fm->name);
            ok = false;
        } else if (strncmp(fm->name, "sqlgate_", 8) != 0 && strncmp(fm->name, "process_", 8) != 0) {
            /* process_* are the standard names every client library exports */
            snprintf(why, cap, "%s lacks the sqlgate_ prefix", fm->name);
            ok = false;
        } else if (strcmp(fm->type, "counter") == 0 &&
                   (strlen(fm->name) < 6 || strcmp(fm->name + strlen(fm->name) - 6, "_total"))) {
            snprintf(why, cap, "counter %s does not end in _total", fm->name);
            ok = false;
        } else if (strcmp(fm->type, "counter") != 0 && strlen(fm->name) > 6 &&
                   strcmp(fm->name + strlen(fm->name) - 6, "_total") == 0) {
            snprintf(why, cap, "%s ends in _total but is a %s", fm->name, fm->type);
            ok = false;
        } else if (strcmp(fm->type, "histogram") == 0) {
            ok = check_histogram(e, f, why, cap);
        }
    }
    for (size_t i = 0; ok && i < e->n_samples; i++) {
        const sample *s = &e->samples[i];
        if (strcmp(e->fams[s->family].type, "counter") == 0 && !(s->value >= 0)) {
            snprintf(why, cap, "counter %s is negative or NaN", s->name);
            ok = false;
        }
    }
    return ok;
}

/* Does sample s carry every (label, value) pair of kv? */
static bool labels_match(const sample *s, const char *const *kv)
{
    for (size_t i = 0; kv != NULL && kv[i] != NULL; i += 2) {
        const char *v = json_string_value(json_object_get(s->labels, kv[i]));
        if (v == NULL || strcmp(v, kv[i + 1]) != 0) {
            return false;
        }
    }
    return true;
}

static size_t expo_count(const expo *e, const char *name, const char *const *kv)
{
    size_t n = 0;
    for (size_t i = 0; i < e->n_samples; i++) {
        n += strcmp(e->samples[i].name, name) == 0 && labels_match(&e->samples[i], kv);
    }
    return n;
}

/* The only sample called name with the labels kv, or NULL. */
static const sample *expo_one(const expo *e, const char *name, const char *const *kv)
{
    const sample *found = NULL;
    for (size_t i = 0; i < e->n_samples; i++) {
        if (strcmp(e->samples[i].name, name) == 0 && labels_match(&e->samples[i], kv)) {
            if (found != NULL) {
                return NULL;
            }
            found = &e->samples[i];
        }
    }
    return found;
}

/* Value of the one series name{kv}; fails the test when absent or ambiguous. */
static double val(const expo *e, const char *name, const char *const *kv)
{
    const sample *s = expo_one(e, name, kv);
    char want[256] = "";
    for (size_t i = 0; kv != NULL && kv[i] != NULL; i += 2) {
        size_t used = strlen(want);
        snprintf(want + used, sizeof want - used, "%s%s=\"%s\"", used ? "," : "", kv[i], kv[i + 1]);
    }
    ck_assert_msg(s != NULL, "no single series %s{%s}", name, want);
    return s->value;
}

/* Value of a counter series that may be absent (HTTP counters appear with
 * their first request): 0 then. */
static double val0(const expo *e, const char *name, const char *const *kv)
{
    const sample *s = expo_one(e, name, kv);
    return s != NULL ? s->value : 0;
}

#define DB(d)           ((const char *const[]){"db", (d), NULL})
#define DB_OUT(d, o)    ((const char *const[]){"db", (d), "outcome", (o), NULL})
#define DB_STATE(d, st) ((const char *const[]){"db", (d), "state", (st), NULL})
#define HTTP(m, r, st)  ((const char *const[]){"method", (m), "route", (r), "status", (st), NULL})

/* GET /metrics, checked and parsed into e (freed by the caller). */
static void scrape(expo *e)
{
    http_resp r;
    http_get(fixture_service(), "/metrics", &r);
    if (r.status == 0) {
        char *log = proc_stderr(fixture_service());
        size_t n = log != NULL ? strlen(log) : 0;
        ck_abort_msg("GET /metrics got no answer (%s); the service's last log:\n%s", r.errbuf,
                     log != NULL ? log + (n > 2000 ? n - 2000 : 0) : "");
    }
    ASSERT_STATUS(&r, 200);
    const char *ct = http_header_get(&r, "Content-Type");
    ck_assert_msg(ct != NULL && strncasecmp(ct, "text/plain", 10) == 0 &&
                      strstr(ct, "version=0.0.4") != NULL,
                  "Content-Type '%s' is not the Prometheus text format", ct ? ct : "-");
    char why[800];
    bool ok = expo_parse(r.body, e, why, sizeof why);
    http_resp_free(&r);
    ck_assert_msg(ok, "exposition text: %s", why);
}

static void query(const char *db, const char *sql, long want)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/databases/%s/query", db);
    http_resp r;
    http_postf(fixture_service(), path, &r, "{s:s}", "sql", sql);
    ASSERT_STATUS(&r, want);
    http_resp_free(&r);
}

static const char *const OUTCOMES[] = {
    "ok",     "sql_error",     "timeout", "unavailable", "pool_exhausted",
    "paused", "shutting_down", "error"};
#define N_OUTCOMES (sizeof OUTCOMES / sizeof OUTCOMES[0])

/* ===== format ================================================================ */

START_TEST(exposition_well_formed)
{
    query("core", "SELECT 1", 200);
    expo e;
    scrape(&e);
    static const struct {
        const char *name, *type;
    } want[] = {
        {"sqlgate_pool_max_connections", "gauge"},
        {"sqlgate_pool_open_connections", "gauge"},
        {"sqlgate_pool_in_use_connections", "gauge"},
        {"sqlgate_pool_idle_connections", "gauge"},
        {"sqlgate_pool_waiting_requests", "gauge"},
        {"sqlgate_pool_acquire_timeouts_total", "counter"},
        {"sqlgate_pool_connection_errors_total", "counter"},
        {"sqlgate_db_reconnects_total", "counter"},
        {"sqlgate_db_up", "gauge"},
        {"sqlgate_db_state", "gauge"},
        {"sqlgate_queries_total", "counter"},
        {"sqlgate_query_duration_seconds", "histogram"},
        {"sqlgate_http_requests_total", "counter"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        long f = fam_find(&e, want[i].name);
        ck_assert_msg(f >= 0, "family %s missing", want[i].name);
        ck_assert_msg(strcmp(e.fams[f].type, want[i].type) == 0, "%s is a %s, not a %s",
                      want[i].name, e.fams[f].type, want[i].type);
    }
    /* one series per database for the per-database families, no more */
    static const char *const dbs[] = {"core", "app"};
    for (size_t d = 0; d < 2; d++) {
        for (size_t i = 0; i < 9; i++) {
            ck_assert_msg(expo_count(&e, want[i].name, DB(dbs[d])) == 1,
                          "%s{db=\"%s\"}: %zu series", want[i].name, dbs[d],
                          expo_count(&e, want[i].name, DB(dbs[d])));
        }
        /* exactly one state is current */
        double states = 0;
        for (size_t i = 0; i < e.n_samples; i++) {
            if (strcmp(e.samples[i].name, "sqlgate_db_state") == 0 &&
                labels_match(&e.samples[i], DB(dbs[d]))) {
                ck_assert(e.samples[i].value == 0 || e.samples[i].value == 1);
                states += e.samples[i].value;
            }
        }
        ck_assert_msg(states == 1, "db %s is in %g states", dbs[d], states);
        ck_assert(val(&e, "sqlgate_db_state", DB_STATE(dbs[d], "ready")) == 1);
        ck_assert(val(&e, "sqlgate_db_up", DB(dbs[d])) == 1);
        for (size_t o = 0; o < N_OUTCOMES; o++) {
            ck_assert_msg(expo_count(&e, "sqlgate_queries_total", DB_OUT(dbs[d], OUTCOMES[o])) == 1,
                          "sqlgate_queries_total{db=\"%s\",outcome=\"%s\"} missing", dbs[d],
                          OUTCOMES[o]);
        }
        ck_assert(expo_count(&e, "sqlgate_query_duration_seconds_count", DB(dbs[d])) == 1);
    }
    /* no series for a database that does not exist, and no "default" */
    ck_assert_int_eq(expo_count(&e, "sqlgate_db_up", DB("default")), 0);
    ck_assert(val(&e, "sqlgate_pool_max_connections", DB("core")) == 10);
    ck_assert(val(&e, "sqlgate_pool_max_connections", DB("app")) == 1);
    expo_free(&e);
}
END_TEST

/* The parser itself rejects what it must (a check that cannot fail proves
 * nothing). */
START_TEST(parser_rejects_bad_text)
{
    static const char *const bad[] = {
        "sqlgate_x_total 1\n",                                         /* no HELP/TYPE */
        "# TYPE sqlgate_x_total counter\nsqlgate_x_total 1\n",         /* no HELP */
        "# HELP sqlgate_x x\n# TYPE sqlgate_x counter\nsqlgate_x 1\n", /* counter w/o _total */
        "# HELP sqlgate_x x\n# TYPE sqlgate_x gauge\nsqlgate_x{a=\"1\"} one\n",
        "# HELP sqlgate_x x\n# TYPE sqlgate_x gauge\nsqlgate_x{a=1} 1\n",
        "# HELP sqlgate_x x\n# TYPE sqlgate_x gauge\nsqlgate_x 1\nsqlgate_x 2\n",
        "# HELP 9x x\n# TYPE 9x gauge\n9x 1\n",
        "# HELP sqlgate_h h\n# TYPE sqlgate_h histogram\n"
        "sqlgate_h_bucket{le=\"1\"} 2\nsqlgate_h_bucket{le=\"+Inf\"} 1\n"
        "sqlgate_h_sum 1\nsqlgate_h_count 1\n", /* not cumulative */
        "# HELP sqlgate_h h\n# TYPE sqlgate_h histogram\n"
        "sqlgate_h_bucket{le=\"1\"} 1\nsqlgate_h_bucket{le=\"+Inf\"} 2\n"
        "sqlgate_h_sum 1\nsqlgate_h_count 3\n", /* +Inf != count */
        "# HELP sqlgate_h h\n# TYPE sqlgate_h histogram\n"
        "sqlgate_h_bucket{le=\"1\"} 1\nsqlgate_h_bucket{le=\"2\"} 2\n"
        "sqlgate_h_sum 1\nsqlgate_h_count 2\n", /* no +Inf */
        ("# HELP sqlgate_a a\n# TYPE sqlgate_a gauge\n# HELP sqlgate_b b\n# TYPE sqlgate_b gauge\n"
         "sqlgate_a 1\nsqlgate_b 1\nsqlgate_a{x=\"y\"} 1\n"),      /* not grouped */
        "# HELP sqlgate_a a\n# TYPE sqlgate_a gauge\nsqlgate_a 1", /* no final newline */
        "# HELP sqlgate_h h\n# TYPE sqlgate_h histogram\n"
        "sqlgate_h_bucket{le=\"1\"} 0\nsqlgate_h_bucket{le=\"+Inf\"} 0\n"
        "sqlgate_h_sum 0.5\nsqlgate_h_count 0\n", /* a sum without a sample */
        "# HELP sqlgate_h h\n# TYPE sqlgate_h histogram\n"
        "sqlgate_h_bucket{le=\"1\"} 1\nsqlgate_h_bucket{le=\"+Inf\"} 1\n"
        "sqlgate_h_sum -1\nsqlgate_h_count 1\n",               /* negative duration */
        "# HELP other_x x\n# TYPE other_x gauge\nother_x 1\n", /* foreign prefix */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expo e;
        char why[800];
        ck_assert_msg(!expo_parse(bad[i], &e, why, sizeof why), "accepted bad text %zu", i);
        expo_free(&e);
    }
    static const char good[] =
        "# HELP sqlgate_h h\n# TYPE sqlgate_h histogram\n"
        "sqlgate_h_bucket{db=\"a\",le=\"0.5\"} 1\nsqlgate_h_bucket{db=\"a\",le=\"+Inf\"} 2\n"
        "sqlgate_h_sum{db=\"a\"} 1.5\nsqlgate_h_count{db=\"a\"} 2\n"
        "# HELP sqlgate_x_total x\n# TYPE sqlgate_x_total counter\n"
        "sqlgate_x_total{v=\"q\\\"\\\\\\n\"} 3 1700000000000\n";
    expo e;
    char why[800];
    ck_assert_msg(expo_parse(good, &e, why, sizeof why), "rejected good text: %s", why);
    ck_assert_str_eq(json_string_value(json_object_get(e.samples[4].labels, "v")), "q\"\\\n");
    expo_free(&e);
}
END_TEST

/* ===== per database ========================================================== */

START_TEST(pool_gauges_match_databases)
{
    for (int i = 0; i < 3; i++) {
        query("core", "SELECT 1", 200);
    }
    query("app", "SELECT 1", 200);
    http_resp r;
    http_get(fixture_service(), "/v1/databases", &r);
    ASSERT_STATUS(&r, 200);
    expo e;
    scrape(&e);
    json_t *list = jget(r.json, "databases");
    ck_assert_int_eq(json_array_size(list), 2);
    static const struct {
        const char *metric, *key;
    } gauges[] = {
        {"sqlgate_pool_max_connections", "max"},
        {"sqlgate_pool_open_connections", "open"},
        {"sqlgate_pool_in_use_connections", "in_use"},
        {"sqlgate_pool_idle_connections", "idle"},
        {"sqlgate_pool_waiting_requests", "waiting"},
        {"sqlgate_pool_acquire_timeouts_total", "acquire_timeouts"},
        {"sqlgate_pool_connection_errors_total", "connect_errors"},
    };
    for (size_t d = 0; d < json_array_size(list); d++) {
        json_t *entry = json_array_get(list, d);
        const char *name = jstr(entry, "name");
        ck_assert_ptr_nonnull(name);
        for (size_t g = 0; g < sizeof gauges / sizeof gauges[0]; g++) {
            json_int_t want = jint(jget(entry, "pool"), gauges[g].key, -1);
            ck_assert_msg(want >= 0, "/v1/databases: %s.pool.%s missing", name, gauges[g].key);
            double got = val(&e, gauges[g].metric, DB(name));
            ck_assert_msg(got == (double)want, "%s{db=\"%s\"} = %g, /v1/databases says %lld",
                          gauges[g].metric, name, got, (long long)want);
        }
        double open = val(&e, "sqlgate_pool_open_connections", DB(name));
        ck_assert(open >= 1); /* it just ran a query */
        ck_assert(open == val(&e, "sqlgate_pool_in_use_connections", DB(name)) +
                              val(&e, "sqlgate_pool_idle_connections", DB(name)));
        ck_assert(val(&e, "sqlgate_pool_in_use_connections", DB(name)) == 0);
    }
    ck_assert(val(&e, "sqlgate_pool_max_connections", DB("app")) == 1);
    expo_free(&e);
    http_resp_free(&r);
}
END_TEST

START_TEST(query_counts_by_outcome)
{
    expo a, b;
    scrape(&a);
    for (int i = 0; i < 3; i++) {
        query("core", "SELECT 1", 200);
    }
    query("core", "SELECT * FROM no_such_table", 400);
    query("core", "SELEC 1", 400);
    query("default", "SELECT 2", 200); /* the alias counts for core */
    query("app", "SELECT 1", 200);
    /* refused before any database is involved: not a query outcome */
    query("nope", "SELECT 1", 404);
    http_resp r;
    http_post(fixture_service(), "/v1/databases/core/query", "{\"sql\":5}", &r);
    ASSERT_STATUS(&r, 400);
    http_resp_free(&r);
    scrape(&b);

    struct {
        const char *db, *outcome;
        double delta;
    } want[] = {{"core", "ok", 4}, {"core", "sql_error", 2}, {"app", "ok", 1}};
    for (size_t d = 0; d < 2; d++) {
        const char *db = d == 0 ? "core" : "app";
        double total = 0;
        for (size_t o = 0; o < N_OUTCOMES; o++) {
            double delta = val(&b, "sqlgate_queries_total", DB_OUT(db, OUTCOMES[o])) -
                           val(&a, "sqlgate_queries_total", DB_OUT(db, OUTCOMES[o]));
            double expect = 0;
            for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
                if (strcmp(want[w].db, db) == 0 && strcmp(want[w].outcome, OUTCOMES[o]) == 0) {
                    expect = want[w].delta;
                }
            }
            ck_assert_msg(delta == expect,
                          "sqlgate_queries_total{db=\"%s\",outcome=\"%s\"} grew by %g, not %g", db,
                          OUTCOMES[o], delta, expect);
            total += delta;
        }
        /* every query is observed by the latency histogram */
        double count = val(&b, "sqlgate_query_duration_seconds_count", DB(db)) -
                       val(&a, "sqlgate_query_duration_seconds_count", DB(db));
        ck_assert_msg(count == total, "histogram count of %s grew by %g for %g queries", db, count,
                      total);
        const char *const inf[] = {"db", db, "le", "+Inf", NULL};
        ck_assert(val(&b, "sqlgate_query_duration_seconds_bucket", inf) -
                      val(&a, "sqlgate_query_duration_seconds_bucket", inf) ==
                  total);
        double sum = val(&b, "sqlgate_query_duration_seconds_sum", DB(db)) -
                     val(&a, "sqlgate_query_duration_seconds_sum", DB(db));
        /* a local SQLite query takes well under a minute each */
        ck_assert_msg(sum >= 0 && sum < 60 * total, "histogram sum of %s grew by %g", db, sum);
    }
    expo_free(&a);
    expo_free(&b);
}
END_TEST

/* Polls /metrics until name{kv} == want (bounded); the last value. */
static double wait_value(const char *name, const char *const *kv, double want, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        expo e;
        scrape(&e);
        double v = val(&e, name, kv);
        expo_free(&e);
        if (v == want || now_ms() >= deadline) {
            return v;
        }
        sleep_ms(20);
    }
}

START_TEST(pool_exhausted_counts)
{
    expo a, b;
    scrape(&a);
    char url[128];
    proc_url(fixture_service(), "/v1/databases/app/query", url, sizeof url);
    static const char *const hdr[] = {"Content-Type: application/json", NULL};
    static const char slow_body[] = "{\"sql\":\"" SLOW_CTE "\"}";
    static const char quick_body[] = "{\"sql\":\"SELECT 1\"}";
    http_req slow_rq = {.method = "POST",
                        .url = url,
                        .headers = hdr,
                        .body = slow_body,
                        .body_len = sizeof slow_body - 1,
                        .timeout_ms = scaled_ms(30000)};
    http_async *slow = http_async_start(&slow_rq);
    ck_assert_ptr_nonnull(slow);
    ck_assert_msg(wait_value("sqlgate_pool_in_use_connections", DB("app"), 1, scaled_ms(10000)) ==
                      1,
                  "the slow query never held app's only connection");

    /* a second query waits for the connection, then gives up */
    http_req quick_rq = {.method = "POST",
                         .url = url,
                         .headers = hdr,
                         .body = quick_body,
                         .body_len = sizeof quick_body - 1,
                         .timeout_ms = scaled_ms(30000)};
    http_async *starved = http_async_start(&quick_rq);
    ck_assert_ptr_nonnull(starved);
    ck_assert_msg(
        wait_value("sqlgate_pool_waiting_requests", DB("app"), 1, scaled_ms(APP_ACQUIRE_MS)) == 1,
        "sqlgate_pool_waiting_requests{db=\"app\"} never showed the waiting request");
    http_resp r;
    http_async_join(starved, &r);
    ASSERT_ERROR(&r, 503, "POOL_EXHAUSTED");
    http_resp_free(&r);
    http_async_join(slow, &r);
    ASSERT_ERROR(&r, 504, "QUERY_TIMEOUT");
    http_resp_free(&r);
    scrape(&b);

    ck_assert(val(&b, "sqlgate_pool_acquire_timeouts_total", DB("app")) -
                  val(&a, "sqlgate_pool_acquire_timeouts_total", DB("app")) ==
              1);
    ck_assert(val(&b, "sqlgate_pool_acquire_timeouts_total", DB("core")) ==
              val(&a, "sqlgate_pool_acquire_timeouts_total", DB("core")));
    ck_assert(val(&b, "sqlgate_queries_total", DB_OUT("app", "pool_exhausted")) -
                  val(&a, "sqlgate_queries_total", DB_OUT("app", "pool_exhausted")) ==
              1);
    ck_assert(val(&b, "sqlgate_queries_total", DB_OUT("app", "timeout")) -
                  val(&a, "sqlgate_queries_total", DB_OUT("app", "timeout")) ==
              1);
    ck_assert(val(&b, "sqlgate_pool_waiting_requests", DB("app")) == 0);
    ck_assert(val(&b, "sqlgate_pool_in_use_connections", DB("app")) == 0);
    /* a saturated pool is busy, not down */
    ck_assert(val(&b, "sqlgate_db_up", DB("app")) == 1);
    expo_free(&a);
    expo_free(&b);
}
END_TEST

START_TEST(reconnects_counted)
{
    expo a, b;
    scrape(&a);
    http_resp r;
    http_send(fixture_service(), "POST", "/v1/databases/core/reconnect", NULL, NULL, 0, &r);
    ASSERT_STATUS(&r, 202);
    http_resp_free(&r);
    scrape(&b);
    ck_assert(val(&b, "sqlgate_db_reconnects_total", DB("core")) -
                  val(&a, "sqlgate_db_reconnects_total", DB("core")) ==
              1);
    ck_assert(val(&b, "sqlgate_db_reconnects_total", DB("app")) ==
              val(&a, "sqlgate_db_reconnects_total", DB("app")));
    expo_free(&a);
    expo_free(&b);
}
END_TEST

/* Sum of the HTTP counters with status st, whatever their other labels. */
static double http_status_total(const expo *e, const char *st)
{
    double sum = 0;
    for (size_t i = 0; i < e->n_samples; i++) {
        if (strcmp(e->samples[i].name, "sqlgate_http_requests_total") == 0 &&
            labels_match(&e->samples[i], (const char *const[]){"status", st, NULL})) {
            sum += e->samples[i].value;
        }
    }
    return sum;
}

/* Polls /metrics until every listed HTTP series reached its target and a
 * 405 was counted; the service counts a request once its response is out,
 * which may trail the client's receipt of it by a moment. */
static void wait_http(const expo *before, const char *const *const *series, const double *deltas,
                      size_t n, expo *after)
{
    int64_t deadline = now_ms() + scaled_ms(5000);
    for (;;) {
        scrape(after);
        bool all = http_status_total(after, "405") > http_status_total(before, "405");
        for (size_t i = 0; i < n; i++) {
            all = all && val0(after, "sqlgate_http_requests_total", series[i]) -
                                 val0(before, "sqlgate_http_requests_total", series[i]) >=
                             deltas[i];
        }
        if (all || now_ms() >= deadline) {
            return;
        }
        expo_free(after);
        sleep_ms(20);
    }
}

START_TEST(http_requests_by_route_and_status)
{
    expo a, b;
    scrape(&a);
    http_resp r;
    for (int i = 0; i < 2; i++) {
        http_get(fixture_service(), "/health/live", &r);
        ASSERT_STATUS(&r, 200);
        http_resp_free(&r);
    }
    http_get(fixture_service(), "/v1/databases/nope-db", &r);
    ASSERT_STATUS(&r, 404);
    http_resp_free(&r);
    http_get(fixture_service(), "/v1/databases/app", &r);
    ASSERT_STATUS(&r, 200);
    http_resp_free(&r);
    query("core", "SELECT 1", 200);
    query("core", "SELEC 1", 400);
    http_send(fixture_service(), "DELETE", "/health/live", NULL, NULL, 0, &r);
    ASSERT_STATUS(&r, 405);
    http_resp_free(&r);

    const char *const *series[] = {
        HTTP("GET", "/health/live", "200"),
        HTTP("GET", "/v1/databases/{name}", "404"),
        HTTP("GET", "/v1/databases/{name}", "200"),
        HTTP("POST", "/v1/databases/{name}/query", "200"),
        HTTP("POST", "/v1/databases/{name}/query", "400"),
    };
    const double deltas[] = {2, 1, 1, 1, 1};
    size_t n = sizeof deltas / sizeof deltas[0];
    wait_http(&a, series, deltas, n, &b);
    for (size_t i = 0; i < n; i++) {
        double d = val0(&b, "sqlgate_http_requests_total", series[i]) -
                   val0(&a, "sqlgate_http_requests_total", series[i]);
        ck_assert_msg(d == deltas[i],
                      "sqlgate_http_requests_total{method=\"%s\",route=\"%s\",status=\"%s\"} "
                      "grew by %g, not %g",
                      series[i][1], series[i][3], series[i][5], d, deltas[i]);
    }
    /* the 405 is counted, whatever the labels of an unrouted request */
    ck_assert_msg(http_status_total(&b, "405") - http_status_total(&a, "405") >= 1,
                  "the 405 was not counted");
    for (size_t i = 0; i < b.n_samples; i++) {
        const sample *s = &b.samples[i];
        if (strcmp(s->name, "sqlgate_http_requests_total") != 0) {
            continue;
        }
        /* labels are route templates, never concrete paths */
        const char *route = json_string_value(json_object_get(s->labels, "route"));
        ck_assert_msg(route != NULL, "an HTTP series without a route label");
        ck_assert_msg(strstr(route, "nope-db") == NULL && strstr(route, "/app") == NULL &&
                          strstr(route, "/core") == NULL,
                      "route label '%s' is a concrete path", route);
        ck_assert_ptr_nonnull(json_object_get(s->labels, "status"));
    }
    expo_free(&a);
    expo_free(&b);
}
END_TEST

/* ===== a database that is down =============================================== */

START_TEST(down_database_state)
{
    /* not waiting for readiness: wait for the first checks instead */
    ck_assert_msg(wait_value("sqlgate_db_state", DB_STATE("broken", "down"), 1, scaled_ms(15000)) ==
                      1,
                  "broken never reported down");
    ck_assert_msg(wait_value("sqlgate_db_state", DB_STATE("core", "ready"), 1, scaled_ms(15000)) ==
                      1,
                  "core never reported ready");
    expo a, b;
    scrape(&a);
    ck_assert(val(&a, "sqlgate_db_up", DB("broken")) == 0);
    ck_assert(val(&a, "sqlgate_db_up", DB("core")) == 1);
    ck_assert(val(&a, "sqlgate_db_state", DB_STATE("broken", "ready")) == 0);
    ck_assert(val(&a, "sqlgate_db_critical", DB("broken")) == 0);
    ck_assert(val(&a, "sqlgate_db_critical", DB("core")) == 1);

    query("broken", "SELECT 1", 503);
    query("core", "SELECT 1", 200);
    scrape(&b);
    ck_assert(val(&b, "sqlgate_queries_total", DB_OUT("broken", "unavailable")) -
                  val(&a, "sqlgate_queries_total", DB_OUT("broken", "unavailable")) ==
              1);
    ck_assert(val(&b, "sqlgate_queries_total", DB_OUT("core", "ok")) -
                  val(&a, "sqlgate_queries_total", DB_OUT("core", "ok")) ==
              1);
    ck_assert(val(&b, "sqlgate_pool_open_connections", DB("broken")) == 0);
    expo_free(&a);
    expo_free(&b);
}
END_TEST

START_TEST(connection_errors_counted)
{
    ck_assert_msg(wait_value("sqlgate_db_state", DB_STATE("ro", "ready"), 1, scaled_ms(15000)) == 1,
                  "ro never reported ready");
    expo a, b;
    scrape(&a);
    /* the pool has not opened a connection yet (POOL_MIN 0); with the file
     * gone, a read-only open fails */
    ck_assert(val(&a, "sqlgate_pool_open_connections", DB("ro")) == 0);
    char path[512];
    snprintf(path, sizeof path, "%s/ro.db", fixture_dir);
    ck_assert_int_eq(unlink(path), 0);
    query("ro", "SELECT 1", 503);
    scrape(&b);
    ck_assert_msg(val(&b, "sqlgate_pool_connection_errors_total", DB("ro")) -
                          val(&a, "sqlgate_pool_connection_errors_total", DB("ro")) >=
                      1,
                  "a failed open of ro's pool was not counted");
    ck_assert(val(&b, "sqlgate_pool_connection_errors_total", DB("core")) ==
              val(&a, "sqlgate_pool_connection_errors_total", DB("core")));
    expo_free(&a);
    expo_free(&b);
}
END_TEST

/* ===== histograms, HikariCP names, process metrics =========================== */

#define N_BOUNDS 16 /* 100 µs .. 10 s, then +Inf */
static const char *const BOUNDS[N_BOUNDS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",   "0.1",     "0.25",   "0.5",   "1",      "2.5",   "5",    "10"};

/* The histogram family name{labels} has exactly the documented buckets. */
static void assert_buckets(const expo *e, const char *name, const char *db)
{
    char bname[128];
    snprintf(bname, sizeof bname, "%s_bucket", name);
    for (size_t i = 0; i < N_BOUNDS; i++) {
        const char *const kv[] = {"db", db, "le", BOUNDS[i], NULL};
        ck_assert_msg(expo_count(e, bname, kv) == 1, "%s{db=\"%s\",le=\"%s\"} missing", bname, db,
                      BOUNDS[i]);
    }
    ck_assert_msg(expo_count(e, bname, DB(db)) == N_BOUNDS + 1, "%s{db=\"%s\"}: %zu buckets", bname,
                  db, expo_count(e, bname, DB(db)));
}

static double delta(const expo *a, const expo *b, const char *name, const char *const *kv)
{
    return val(b, name, kv) - val(a, name, kv);
}

START_TEST(histograms_count_what_happened)
{
    expo a, b;
    scrape(&a);
    int64_t t0 = now_ms();
    for (int i = 0; i < 5; i++) {
        query("core", "SELECT 1", 200);
    }
    query("core", "SELEC 1", 400); /* fails in the database: still a borrow */
    double elapsed_s = (double)(now_ms() - t0) / 1000;
    scrape(&b);

    static const char *const per_db[] = {
        "sqlgate_pool_acquire_seconds", "sqlgate_pool_connections_usage_seconds",
        "sqlgate_pool_connections_creation_seconds", "sqlgate_query_duration_seconds"};
    for (size_t k = 0; k < sizeof per_db / sizeof per_db[0]; k++) {
        long f = fam_find(&b, per_db[k]);
        ck_assert_msg(f >= 0 && strcmp(b.fams[f].type, "histogram") == 0, "%s: no histogram",
                      per_db[k]);
        assert_buckets(&b, per_db[k], "core");
        assert_buckets(&b, per_db[k], "app");
    }
    char name[128];
    /* one acquire and one borrow per query, nothing else on core meanwhile
     * (health checks use their own connection) */
    for (size_t k = 0; k < 2; k++) {
        snprintf(name, sizeof name, "%s_count", per_db[k]);
        ck_assert_msg(delta(&a, &b, name, DB("core")) == 6, "%s{db=\"core\"} grew by %g, not 6",
                      name, delta(&a, &b, name, DB("core")));
        ck_assert_msg(delta(&a, &b, name, DB("app")) == 0, "%s{db=\"app\"} grew", name);
        /* the queries ran one after the other: their waits fit in the test's time */
        snprintf(name, sizeof name, "%s_sum", per_db[k]);
        double sum = delta(&a, &b, name, DB("core"));
        ck_assert_msg(sum >= 0 && sum <= elapsed_s + 0.01, "%s grew by %g s in %g s", name, sum,
                      elapsed_s);
    }
    /* a fast local query lands in the first buckets, not at +Inf only */
    const char *const le10[] = {"db", "core", "le", "10", NULL};
    ck_assert(delta(&a, &b, "sqlgate_pool_acquire_seconds_bucket", le10) == 6);
    /* the pool opened at least one connection since the start */
    ck_assert(val(&b, "sqlgate_pool_connections_creation_seconds_count", DB("core")) >= 1);
    expo_free(&a);
    expo_free(&b);
}
END_TEST

/* The HTTP duration histogram of the series labels kv, 0 when absent. */
static double http_hist_count(const expo *e, const char *route, const char *code)
{
    const char *const kv[] = {"route", route, "code", code, NULL};
    return val0(e, "sqlgate_http_request_duration_seconds_count", kv);
}

START_TEST(http_duration_by_route_template)
{
    expo a, b;
    scrape(&a);
    static const struct {
        const char *path, *route, *code;
        long status;
    } reqs[] = {
        {"/health/core", "/health/{name}", "2xx", 200},
        {"/health/app", "/health/{name}", "2xx", 200},
        {"/health/no-such-db", "/health/{name}", "4xx", 404},
        {"/no/such/route/x1", "unmatched", "4xx", 404},
    };
    size_t n = sizeof reqs / sizeof reqs[0];
    for (size_t i = 0; i < n; i++) {
        http_resp r;
        http_get(fixture_service(), reqs[i].path, &r);
        ASSERT_STATUS(&r, reqs[i].status);
        http_resp_free(&r);
    }
    /* a request is counted once its answer is out: poll for it */
    int64_t deadline = now_ms() + scaled_ms(5000);
    for (;;) {
        scrape(&b);
        bool all =
            http_hist_count(&b, "/health/{name}", "2xx") -
                    http_hist_count(&a, "/health/{name}", "2xx") >=
                2 &&
            http_hist_count(&b, "/health/{name}", "4xx") -
                    http_hist_count(&a, "/health/{name}", "4xx") >=
                1 &&
            http_hist_count(&b, "unmatched", "4xx") - http_hist_count(&a, "unmatched", "4xx") >= 1;
        if (all || now_ms() >= deadline) {
            break;
        }
        expo_free(&b);
        sleep_ms(20);
    }
    ck_assert(http_hist_count(&b, "/health/{name}", "2xx") -
                  http_hist_count(&a, "/health/{name}", "2xx") ==
              2);
    ck_assert(http_hist_count(&b, "/health/{name}", "4xx") -
                  http_hist_count(&a, "/health/{name}", "4xx") ==
              1);
    ck_assert(http_hist_count(&b, "unmatched", "4xx") - http_hist_count(&a, "unmatched", "4xx") >=
              1);
    long f = fam_find(&b, "sqlgate_http_request_duration_seconds");
    ck_assert(f >= 0 && strcmp(b.fams[f].type, "histogram") == 0);
    /* labels: route templates and status classes only, never what the client sent */
    for (size_t i = 0; i < b.n_samples; i++) {
        const sample *s = &b.samples[i];
        if (strncmp(s->name, "sqlgate_http_request_duration_seconds", 37) != 0) {
            continue;
        }
        const char *route = json_string_value(json_object_get(s->labels, "route"));
        const char *code = json_string_value(json_object_get(s->labels, "code"));
        ck_assert_msg(route != NULL && code != NULL, "%s without route or code", s->name);
        ck_assert_msg(strcmp(route, "unmatched") == 0 || route[0] == '/', "route '%s'", route);
        ck_assert_msg(strstr(route, "core") == NULL && strstr(route, "no-such") == NULL &&
                          strstr(route, "x1") == NULL,
                      "route label '%s' is a concrete path", route);
        ck_assert_msg(strlen(code) == 3 && code[0] >= '1' && code[0] <= '5' &&
                          strcmp(code + 1, "xx") == 0,
                      "code label '%s' is not a status class", code);
        size_t labels = json_object_size(s->labels);
        ck_assert_msg(labels == (strstr(s->name, "_bucket") != NULL ? 3u : 2u), "%s has %zu labels",
                      s->name, labels);
    }
    expo_free(&a);
    expo_free(&b);
}
END_TEST

START_TEST(hikaricp_names_match_ours)
{
    expo e;
    scrape(&e);
    static const char *const pairs[][2] = {
        {"sqlgate_pool_connections", "sqlgate_pool_open_connections"},
        {"sqlgate_pool_connections_active", "sqlgate_pool_in_use_connections"},
        {"sqlgate_pool_connections_idle", "sqlgate_pool_idle_connections"},
        {"sqlgate_pool_connections_pending", "sqlgate_pool_waiting_requests"},
        {"sqlgate_pool_connections_max", "sqlgate_pool_max_connections"},
        {"sqlgate_pool_connections_timeout_total", "sqlgate_pool_acquire_timeouts_total"},
    };
    static const char *const dbs[] = {"core", "app"};
    for (size_t d = 0; d < 2; d++) {
        for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
            ck_assert_msg(val(&e, pairs[i][0], DB(dbs[d])) == val(&e, pairs[i][1], DB(dbs[d])),
                          "%s != %s for %s", pairs[i][0], pairs[i][1], dbs[d]);
        }
        /* POOL_MIN defaults to 0 */
        ck_assert(val(&e, "sqlgate_pool_connections_min", DB(dbs[d])) == 0);
    }
    ck_assert(val(&e, "sqlgate_pool_connections_max", DB("app")) == 1);
    expo_free(&e);
}
END_TEST

/* A process figure: present once, with # TYPE type. */
static double proc_val(const expo *e, const char *name, const char *type)
{
    long f = fam_find(e, name);
    ck_assert_msg(f >= 0, "%s missing", name);
    ck_assert_msg(strcmp(e->fams[f].type, type) == 0, "%s is a %s", name, e->fams[f].type);
    return val(e, name, NULL);
}

START_TEST(process_metrics_sane)
{
    for (int i = 0; i < 20; i++) {
        query("core", "SELECT 1", 200);
    }
    expo a, b;
    scrape(&a);
    double cpu = proc_val(&a, "process_cpu_seconds_total", "counter");
    double rss = proc_val(&a, "process_resident_memory_bytes", "gauge");
    double fds = proc_val(&a, "process_open_fds", "gauge");
    double max_fds = proc_val(&a, "process_max_fds", "gauge");
    double start = proc_val(&a, "process_start_time_seconds", "gauge");
    double threads = proc_val(&a, "process_threads", "gauge");
    ck_assert_msg(cpu > 0 && cpu < 3600, "process_cpu_seconds_total %g", cpu);
    ck_assert_msg(rss > 1e6 && rss < 4e9, "process_resident_memory_bytes %g", rss);
    /* stdin/out/err at least, two SQLite databases, the listening socket */
    ck_assert_msg(fds >= 4 && fds <= max_fds, "process_open_fds %g of %g", fds, max_fds);
    ck_assert_msg(threads >= 2 && threads < 10000, "process_threads %g", threads);
    /* started by this test, a moment ago (the clock of /proc/stat's btime
     * is whole seconds) */
    double now = (double)time(NULL);
    ck_assert_msg(start > now - 600 && start < now + 5, "process_start_time_seconds %.0f, now %.0f",
                  start, now);
    /* the figures are live: CPU time never goes back */
    for (int i = 0; i < 20; i++) {
        query("core", "SELECT 1", 200);
    }
    scrape(&b);
    ck_assert(val(&b, "process_cpu_seconds_total", NULL) >= cpu);
    ck_assert(val(&b, "process_start_time_seconds", NULL) == start);
    expo_free(&a);
    expo_free(&b);
}
END_TEST

/* With a database down, nothing in the text is a negative sentinel: a figure
 * without a sample (broken's health-check latency) is left out. */
START_TEST(no_negative_sentinels)
{
    ck_assert_msg(wait_value("sqlgate_db_state", DB_STATE("broken", "down"), 1, scaled_ms(15000)) ==
                      1,
                  "broken never reported down");
    ck_assert_msg(wait_value("sqlgate_db_state", DB_STATE("core", "ready"), 1, scaled_ms(15000)) ==
                      1,
                  "core never reported ready");
    query("broken", "SELECT 1", 503);
    expo e;
    scrape(&e);
    for (size_t i = 0; i < e.n_samples; i++) {
        ck_assert_msg(e.samples[i].value >= 0, "%s is %g", e.samples[i].name, e.samples[i].value);
    }
    ck_assert_int_eq(expo_count(&e, "sqlgate_db_health_check_latency_seconds", DB("broken")), 0);
    ck_assert_int_eq(expo_count(&e, "sqlgate_db_health_check_latency_seconds", DB("core")), 1);
    /* the failed query still waited for nothing in broken's pool: no acquire */
    ck_assert(val(&e, "sqlgate_pool_acquire_seconds_count", DB("broken")) == 0);
    expo_free(&e);

    http_resp r;
    http_get(fixture_service(), "/metrics", &r);
    ASSERT_STATUS(&r, 200);
    ck_assert_msg(strstr(r.body, " -1\n") == NULL, "a -1 in /metrics");
    http_resp_free(&r);
}
END_TEST

/* ============================================================================= */

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");

    TCase *tc = tcase_create("parser");
    tcase_add_test(tc, parser_rejects_bad_text);
    suite_add_tcase(s, tc);

    tc = tcase_create("embedded");
    tcase_add_unchecked_fixture(tc, setup_embedded, fixture_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, exposition_well_formed);
    tcase_add_test(tc, pool_gauges_match_databases);
    tcase_add_test(tc, query_counts_by_outcome);
    tcase_add_test(tc, reconnects_counted);
    tcase_add_test(tc, http_requests_by_route_and_status);
    tcase_add_test(tc, histograms_count_what_happened);
    tcase_add_test(tc, http_duration_by_route_template);
    tcase_add_test(tc, hikaricp_names_match_ours);
    tcase_add_test(tc, process_metrics_sane);
    suite_add_tcase(s, tc);

    /* Exhaustion needs a query that outlasts the acquire timeout: a timing
     * promise, not run under memcheck's slowdown (tag `timing`). */
    tc = tcase_create("embedded_timing");
    tcase_set_tags(tc, "timing");
    tcase_add_unchecked_fixture(tc, setup_embedded, fixture_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, pool_exhausted_counts);
    suite_add_tcase(s, tc);

    tc = tcase_create("down");
    tcase_add_unchecked_fixture(tc, setup_down, fixture_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, down_database_state);
    tcase_add_test(tc, connection_errors_counted);
    tcase_add_test(tc, no_negative_sentinels);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    harness_init();
    return check_run(metrics_suite());
}
