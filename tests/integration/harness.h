/* Integration harness: runs the real sqlgate binary and talks HTTP to it.
 *
 * The binary comes from $SQLGATE_BIN. Every child gets a controlled
 * environment (only PATH is inherited), a working directory chosen by the
 * test, and its stdout/stderr captured in files the harness owns, so logs can
 * be read from any process (Check forks a process per test) and never fill a
 * pipe. Every wait is bounded. A child still running when its proc is freed,
 * or when the test process exits (Check exits on a failed assertion without
 * running teardown), is killed with SIGKILL; it is also killed by the kernel
 * if the thread that started it dies (PR_SET_PDEATHSIG).
 *
 * HTTP goes through libcurl's easy API, one handle per request unless the
 * caller passes its own (keep-alive tests). Requests are safe to make from
 * several threads at once. With $SQLGATE_IT_RECORD set to a file name, every
 * exchange that got a response is appended to that file as one JSON line
 * (method, path, status, headers, body) for tests/openapi/validate.py.
 *
 * Memory tools (scripts/test-valgrind, scripts/test-sanitizers):
 *  - $SQLGATE_WRAPPER: a command prefix (words split at blanks) the binary is
 *    run under, e.g. "valgrind --error-exitcode=99 --leak-check=full
 *    --errors-for-leak-kinds=definite"; valgrind gets a --log-file in the
 *    child's log directory unless the words name one.
 *  - With a wrapper or SQLGATE_CHECK_CHILDREN=1, proc_free stops a running
 *    child with SIGTERM instead of SIGKILL and fails the test when the child
 *    had memory errors or definite leaks (see "Checked children" in harness.c).
 *  - ASAN_OPTIONS, UBSAN_OPTIONS and LSAN_OPTIONS pass through to children.
 *  - $SQLGATE_TIMEOUT_SCALE (integer >= 1) multiplies every wait of the
 *    harness (proc_wait_*, proc_stderr_wait, HTTP timeouts); scaled_ms gives
 *    tests the same factor for their own bounds.
 */
#ifndef SQLGATE_ITEST_HARNESS_H
#define SQLGATE_ITEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <curl/curl.h>
#include <jansson.h>

#if defined(__GNUC__)
#define HX_PRINTF(fmt, va) __attribute__((format(printf, fmt, va)))
#else
#define HX_PRINTF(fmt, va)
#endif

/* Call once from main before any test runs and before any thread starts:
 * initialises libcurl, creates the run's root directory for temporary files
 * and registers the exit-time cleanup of children and that root. */
void harness_init(void);

/* Monotonic clock in milliseconds. */
int64_t now_ms(void);

/* Sleeps ms milliseconds. */
void sleep_ms(int ms);

/* ms times $SQLGATE_TIMEOUT_SCALE (1 when unset; capped at 100). */
int scaled_ms(int ms);

/* --- Temporary directories ------------------------------------------------ */

/* Creates a new directory inside the run's root directory (made by
 * harness_init under $TMPDIR or /tmp). Returns a new string, or NULL on
 * failure. The directory is removed by tmp_dir_free, and in any case with the
 * root when the test runner exits. */
char *tmp_dir_new(void);

/* Removes dir and everything in it, then frees the string. Accepts NULL. */
void tmp_dir_free(char *dir);

/* Writes content to dir/name (created or truncated). 0 ok, -1 failure. */
int write_file(const char *dir, const char *name, const char *content);

/* True when dir/name exists (any type). dir may be NULL: name is a path. */
bool file_exists(const char *dir, const char *name);

/* A loopback port nothing listens on right now (bound, then closed): one to
 * listen on, or whose connections are refused. -1 when none could be had. */
int free_port(void);

/* --- Environments ------------------------------------------------------------ */

/* The environment of one sqlgate or helper run, built line by line: owned
 * strings, NULL-terminated in items, ready for proc_start. */
#define ENV_LIST_MAX 64
typedef struct env_list {
    char *items[ENV_LIST_MAX + 1];
    size_t n;
} env_list;

/* Appends one formatted "NAME=value" (at most 1,200 bytes); fails the test
 * past ENV_LIST_MAX. */
void env_add(env_list *e, const char *fmt, ...) HX_PRINTF(2, 3);
/* Sets key=value (value formatted, at most 511 bytes), replacing an
 * earlier value of key. */
void env_set(env_list *e, const char *key, const char *fmt, ...) HX_PRINTF(3, 4);
/* Frees the strings; e can be filled again. */
void env_free(env_list *e);

/* --- The service process ---------------------------------------------------- */

typedef struct proc proc;

/* Starts $SQLGATE_BIN with environment `env` (NULL-terminated "KEY=VALUE"
 * strings, borrowed; PATH is added from the test's own environment) in
 * directory `cwd` (borrowed). Does not wait for anything. Returns a new proc
 * (free with proc_free), or NULL when the binary is not set or the fork
 * failed (the reason is printed on the test's stderr). */
proc *proc_spawn(const char *const *env, const char *cwd);

/* Waits until the child logs {"msg":"listening","port":N}; returns N, or -1
 * when the child exited first or timeout_ms passed. */
int proc_wait_listening(proc *p, int timeout_ms);

/* Polls GET /health/ready until it answers 200; false on timeout or exit. */
bool proc_wait_ready(proc *p, int timeout_ms);

/* proc_spawn + proc_wait_listening (10 s) + proc_wait_ready (15 s) when
 * wait_ready. On failure prints the child's stderr, frees it and returns NULL. */
proc *proc_start(const char *const *env, const char *cwd, bool wait_ready);

/* The port from the "listening" line; 0 before it was seen. */
int proc_port(const proc *p);

pid_t proc_pid(const proc *p);

/* Sends sig to the child. 0 ok, -1 when it is gone. */
int proc_signal(proc *p, int sig);

/* Waits up to timeout_ms until every thread of process pid is stopped (a
 * SIGSTOP sent to it has taken effect in all of them, not only in the main
 * thread). False if they were not by then. */
bool pid_wait_all_stopped(pid_t pid, int timeout_ms);

/* Waits up to timeout_ms for the child to exit. Returns its exit status
 * (0..255), 128 + signal number when a signal killed it, or -1 on timeout.
 * Once reaped, later calls return the same value at once. */
int proc_wait_exit(proc *p, int timeout_ms);

/* True while the child has not exited (reaps it if it has). */
bool proc_running(proc *p);

/* Everything the child wrote to stderr (or stdout) so far: a new string the
 * caller frees with free(), never NULL except on allocation failure. */
char *proc_stderr(const proc *p);
char *proc_stdout(const proc *p);

/* Polls stderr until it contains needle; false on timeout. */
bool proc_stderr_wait(const proc *p, const char *needle, int timeout_ms);

/* Kills the child with SIGKILL if it still runs, reaps it, removes its log
 * files and frees p. Accepts NULL. */
void proc_free(proc *p);

/* For a helper process a test starts itself (tds-testserver) with its output
 * in the file at path: true when that output holds a sanitizer report
 * (AddressSanitizer, LeakSanitizer, UBSan, ThreadSanitizer), which is then
 * printed on stderr under `who`. A sanitized run passes its *_OPTIONS to such
 * processes through the environment, so they report as sqlgate does. */
bool sanitizer_report_in_file(const char *path, const char *who);

/* --- The per-test fixture ----------------------------------------------------- */

/* One test's directory and service. Check's fixture functions take no
 * argument, so this state is global to the test process; a checked fixture
 * makes it for each test, an unchecked one for each test case. */
extern char *fixture_dir; /* the test's temporary directory (tmp_dir_new) */
extern proc *fixture_svc; /* the service the test started, or NULL */

/* Checked setup: makes fixture_dir (fails the test when it cannot); no
 * service yet. */
void fixture_setup(void);

/* Teardown of both kinds of fixture: fixture_stop, then removes fixture_dir.
 * Either may be NULL (a setup that failed half-way). */
void fixture_teardown(void);

/* Frees fixture_svc (stopping it as proc_free does) and clears it; a
 * teardown with more to stop calls this first, then stops the rest, then
 * fixture_teardown. */
void fixture_stop(void);

/* Starts sqlgate in fixture_dir with env (borrowed) as proc_start does, after
 * freeing a service the test started before; fails the test when it does
 * not start. Returns fixture_svc. */
proc *fixture_start(const char *const *env, bool wait_ready);

/* fixture_start with the environment in e, whose strings it frees (e can be
 * filled again). */
proc *fixture_start_env(env_list *e, bool wait_ready);

/* For unchecked setups, which run in the runner process where a failed
 * assertion would end the whole suite: makes fixture_dir and starts sqlgate
 * in it; when either fails, fixture_svc stays NULL (the child's stderr is
 * printed) and each test of the case fails in fixture_service. */
void fixture_start_unchecked(const char *const *env, bool wait_ready);

/* fixture_svc (borrowed), failing the test when the service did not start. */
proc *fixture_service(void);

/* --- HTTP -------------------------------------------------------------------- */

typedef struct http_header {
    char *name;
    char *value;
} http_header;

typedef struct http_resp {
    long status;          /* 0 when no HTTP response arrived */
    int curl_code;        /* CURLcode of the transfer */
    char *body;           /* NUL-terminated (may hold other NULs); never NULL after http_do */
    size_t body_len;      /* bytes of body */
    http_header *headers; /* of the final response, in order */
    size_t n_headers;
    json_t *json;     /* the body parsed as JSON, or NULL; owned by the response */
    long new_conns;   /* connections opened for this request (0 = reused) */
    double elapsed_s; /* total time of the transfer */
    char errbuf[256]; /* curl's message when curl_code != 0 */
} http_resp;

typedef struct http_req {
    const char *method;         /* "GET", "POST", ...; borrowed */
    const char *url;            /* full URL; borrowed */
    const char *const *headers; /* NULL-terminated "Name: value", or NULL; borrowed.
                                   "Name:" with no value removes a curl default. */
    const char *body;           /* NULL: no body at all; borrowed */
    size_t body_len;            /* bytes of body */
    bool chunked;               /* send the body with Transfer-Encoding: chunked */
    long timeout_ms;            /* whole transfer; 0 means 15000 */
    CURL *handle;               /* borrowed handle to reuse (keep-alive), or NULL */
    const char *ca_pem;         /* https: the only trusted CA (PEM text), or NULL */
} http_req;

/* Performs the request. *out is always initialised (free with
 * http_resp_free). Returns the HTTP status, or -1 when no response came. */
int http_do(const http_req *rq, http_resp *out);

void http_resp_free(http_resp *r); /* accepts NULL; leaves r zeroed */

/* Value of the first header called name (case-insensitive), borrowed from r,
 * or NULL. */
const char *http_header_get(const http_resp *r, const char *name);

/* Writes "http://127.0.0.1:<port><path>" into buf; returns buf. */
char *proc_url(const proc *p, const char *path, char *buf, size_t cap);

/* Request to the service. body NULL = no body; headers as in http_req. */
int http_send(const proc *p, const char *method, const char *path, const char *const *headers,
              const char *body, size_t body_len, http_resp *out);

int http_get(const proc *p, const char *path, http_resp *out);

/* POST with Content-Type: application/json and body `json` (a C string). */
int http_post(const proc *p, const char *path, const char *json, http_resp *out);

/* POST with Content-Type: application/json and a body built by json_pack
 * (jansson's format, e.g. "{s:s, s:{s:i}}"). Returns -1 without sending
 * when the format does not pack. */
int http_postf(const proc *p, const char *path, http_resp *out, const char *fmt, ...);

/* A request running on its own thread; all request strings are copied. */
typedef struct http_async http_async;

http_async *http_async_start(const http_req *rq);

/* Waits for the request (bounded by its timeout) and moves its response
 * into *out; frees a. Returns the status as http_do. */
int http_async_join(http_async *a, http_resp *out);

/* Polls GET /health until databases.<db>.state is `state`; returns that
 * report (new reference), or NULL when timeout_ms passed first. */
json_t *proc_wait_db_state(const proc *p, const char *db, const char *state, int timeout_ms);

/* --- JSON --------------------------------------------------------------------- */

/* Follows a dotted path ("results.0.rows.1.name"; numeric parts index
 * arrays) from root; borrowed value or NULL. root may be NULL. */
json_t *jget(const json_t *root, const char *path);

/* String at path or NULL when absent or not a string. */
const char *jstr(const json_t *root, const char *path);

/* Integer at path, or def when absent or not an integer. */
json_int_t jint(const json_t *root, const char *path, json_int_t def);

/* Number (integer or real) at path, or def. */
double jnum(const json_t *root, const char *path, double def);

/* Parses each line of text as a JSON object and returns the first one for
 * which every (key, string value) pair in the NULL-terminated list matches,
 * as a new reference; NULL when none. */
json_t *log_find(const char *text, const char *const *kv);

/* The largest integer value of key among the JSON lines of text, or -1 when
 * no line holds one. */
json_int_t log_max_int(const char *text, const char *key);

/* Waits up to timeout_ms for a JSON line on p's stderr holding every (key,
 * string value) pair of kv (as log_find); returns it as a new reference, or
 * NULL on timeout. */
json_t *proc_log_wait(const proc *p, const char *const *kv, int timeout_ms);

/* --- Assertions (for Check tests) ------------------------------------------- */

/* Checks that r is an error response: status, JSON body with error.code ==
 * code, non-empty error.message, error.request_id equal to X-Request-Id and
 * application/json content. On mismatch writes why into buf and returns false. */
bool check_error_resp(const http_resp *r, long status, const char *code, char *buf, size_t cap);

/* Fails the test, showing the text, when p's stderr contains needle (the
 * suites put "SECRET" in every password they hand to sqlgate). */
void assert_stderr_lacks(const proc *p, const char *needle);

/* Fails the test unless r has a Retry-After header holding a whole number
 * of seconds. */
void assert_retry_after_seconds(const http_resp *r);

/* Renders "status N, curl C, body <first bytes>" for failure messages into buf. */
const char *resp_desc(const http_resp *r, char *buf, size_t cap);

#define ASSERT_STATUS(r, st)                                                                       \
    do {                                                                                           \
        char d_[600];                                                                              \
        ck_assert_msg((r)->status == (st), "expected HTTP %ld, got %s", (long)(st),                \
                      resp_desc((r), d_, sizeof d_));                                              \
    } while (0)

#define ASSERT_ERROR(r, st, code)                                                                  \
    do {                                                                                           \
        char w_[800];                                                                              \
        ck_assert_msg(check_error_resp((r), (st), (code), w_, sizeof w_), "%s", w_);               \
    } while (0)

#endif
