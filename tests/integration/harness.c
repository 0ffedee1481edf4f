/* Integration harness: child process control, HTTP through libcurl, JSON
 * helpers. See harness.h for the contract of each function. */
#include "harness.h"

#include <check.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define HX_PATH_MAX       512
#define HX_MAX_TRACKED    64
#define HX_BODY_CAP       (64u * 1024u * 1024u)
#define HX_HEADERS_CAP    256
#define HX_DEFAULT_TMO_MS 15000L

/* --- Exit-time cleanup ---------------------------------------------------------
 *
 * Check's fork mode ends a failed test's process with _exit(), without its
 * teardown or atexit handlers; in no-fork mode a failed test skips the rest
 * of its body. So the harness keeps, in the only mutable globals it has:
 *  - one root directory per run, made by harness_init in the runner process;
 *    every temporary directory is created inside it and the runner removes
 *    the whole root when it exits;
 *  - the children each process started, killed by that process's atexit
 *    handler (a child whose starter dies without one is killed by the kernel
 *    through PR_SET_PDEATHSIG). Entries carry the pid of the process that
 *    made them: a forked test process inherits the runner's table and must
 *    not kill what it did not start.
 */
typedef struct tracked {
    pid_t owner;
    pid_t child;
} tracked;

static pthread_mutex_t g_track_lock = PTHREAD_MUTEX_INITIALIZER;
static tracked g_tracked[HX_MAX_TRACKED];
static char g_root[HX_PATH_MAX];
static pid_t g_root_owner;
/* Set in the runner process when a checked child (see "Checked children"
 * below) failed outside a forked test: the runner then exits with status 1. */
static volatile bool g_child_failed;

static void rm_tree(const char *path, int depth);

static void track_add(pid_t child)
{
    pthread_mutex_lock(&g_track_lock);
    for (size_t i = 0; i < HX_MAX_TRACKED; i++) {
        if (g_tracked[i].owner == 0) {
            g_tracked[i].owner = getpid();
            g_tracked[i].child = child;
            break;
        }
    }
    pthread_mutex_unlock(&g_track_lock);
}

static void track_del(pid_t child)
{
    pthread_mutex_lock(&g_track_lock);
    for (size_t i = 0; i < HX_MAX_TRACKED; i++) {
        if (g_tracked[i].owner == getpid() && g_tracked[i].child == child) {
            memset(&g_tracked[i], 0, sizeof g_tracked[i]);
            break;
        }
    }
    pthread_mutex_unlock(&g_track_lock);
}

static void cleanup_at_exit(void)
{
    pthread_mutex_lock(&g_track_lock);
    for (size_t i = 0; i < HX_MAX_TRACKED; i++) {
        tracked *t = &g_tracked[i];
        if (t->owner == getpid() && t->child > 0) {
            kill(t->child, SIGKILL);
            waitpid(t->child, NULL, 0);
            memset(t, 0, sizeof *t);
        }
    }
    pthread_mutex_unlock(&g_track_lock);
    if (g_root[0] != '\0' && g_root_owner == getpid()) {
        rm_tree(g_root, 0);
    }
    if (g_child_failed && g_root_owner == getpid()) {
        /* Check's summary may say all passed: the run still fails. */
        fprintf(stderr, "harness: a checked sqlgate process failed (see above)\n");
        fflush(NULL);
        _exit(1);
    }
}

void harness_init(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    int n = snprintf(g_root, sizeof g_root, "%s/sqlgate-it-XXXXXX", base);
    if (n < 0 || (size_t)n >= sizeof g_root || mkdtemp(g_root) == NULL) {
        fprintf(stderr, "harness: cannot create a directory under %s\n", base);
        g_root[0] = '\0';
    }
    g_root_owner = getpid();
    atexit(cleanup_at_exit);
}

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int scaled_ms(int ms)
{
    const char *s = getenv("SQLGATE_TIMEOUT_SCALE");
    long k = s != NULL ? strtol(s, NULL, 10) : 1;
    if (k <= 1) {
        return ms;
    }
    if (k > 100) {
        k = 100;
    }
    return ms > INT_MAX / (int)k ? INT_MAX : ms * (int)k;
}

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* --- Files -------------------------------------------------------------------- */

static void rm_tree(const char *path, int depth)
{
    struct stat st;
    if (depth > 32 || lstat(path, &st) != 0) {
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    DIR *d = opendir(path);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
                continue;
            }
            char sub[HX_PATH_MAX];
            int n = snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            if (n > 0 && (size_t)n < sizeof sub) {
                rm_tree(sub, depth + 1);
            }
        }
        closedir(d);
    }
    rmdir(path);
}

char *tmp_dir_new(void)
{
    const char *base = g_root;
    if (base[0] == '\0') {
        base = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
    }
    char tmpl[HX_PATH_MAX];
    int n = snprintf(tmpl, sizeof tmpl, "%s/d-XXXXXX", base);
    if (n < 0 || (size_t)n >= sizeof tmpl || mkdtemp(tmpl) == NULL) {
        return NULL;
    }
    char *dir = strdup(tmpl);
    if (dir == NULL) {
        rm_tree(tmpl, 0);
    }
    return dir;
}

void tmp_dir_free(char *dir)
{
    if (dir == NULL) {
        return;
    }
    rm_tree(dir, 0);
    free(dir);
}

int write_file(const char *dir, const char *name, const char *content)
{
    char path[HX_PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path) {
        return -1;
    }
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }
    size_t len = strlen(content);
    int rc = fwrite(content, 1, len, f) == len ? 0 : -1;
    if (fclose(f) != 0) {
        rc = -1;
    }
    return rc;
}

bool file_exists(const char *dir, const char *name)
{
    char path[HX_PATH_MAX];
    int n = dir != NULL ? snprintf(path, sizeof path, "%s/%s", dir, name)
                        : snprintf(path, sizeof path, "%s", name);
    struct stat st;
    return n > 0 && (size_t)n < sizeof path && stat(path, &st) == 0;
}

/* Whole file as a new NUL-terminated string; "" when it cannot be read. */
static char *read_all(const char *path)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (f != NULL) {
        for (;;) {
            if (cap - len < 2) {
                char *nb = realloc(buf, cap * 2);
                if (nb == NULL) {
                    break;
                }
                buf = nb;
                cap *= 2;
            }
            size_t got = fread(buf + len, 1, cap - len - 1, f);
            if (got == 0) {
                break;
            }
            len += got;
        }
        fclose(f);
    }
    buf[len] = '\0';
    return buf;
}

int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

/* --- Process ----------------------------------------------------------------- */

struct proc {
    pid_t pid;
    bool reaped;
    int exit_code; /* valid when reaped: status, or 128 + signal */
    int port;
    char *logdir; /* owns err_path and out_path */
    char err_path[HX_PATH_MAX];
    char out_path[HX_PATH_MAX];
    /* $SQLGATE_WRAPPER: the resolved program, the log option the harness
     * added, that log's path ("" when none) and the wrapper's
     * --error-exitcode (-1 when not given). */
    char wrap_exe[PATH_MAX];
    char wrap_logopt[HX_PATH_MAX + 16];
    char wrap_log[HX_PATH_MAX];
    int wrap_error_status;
    bool stop_timed_out; /* a graceful stop (checked children) had to SIGKILL */
};

/* Sanitizer settings reach the child as well: they change nothing in what
 * sqlgate does, only how a sanitized build reports. */
static const char *const HX_PASS_ENV[] = {
    "ASAN_OPTIONS=", "UBSAN_OPTIONS=", "LSAN_OPTIONS=", "TSAN_OPTIONS=",
    "SQLGATE_CONNECTION_MODEL=" /* the events suite runs suites under the other model */};
#define HX_N_PASS_ENV (sizeof HX_PASS_ENV / sizeof HX_PASS_ENV[0])
#define HX_WRAP_WORDS 32

extern char **environ;

/* The test's own "NAME=value" entry starting with prefix, or NULL. */
static char *own_env_entry(const char *prefix)
{
    size_t n = strlen(prefix);
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        if (strncmp(*e, prefix, n) == 0) {
            return *e;
        }
    }
    return NULL;
}

/* envp for the child: the caller's entries (borrowed) plus PATH, which is
 * the only string allocated here and is returned in *owned. */
static char **build_envp(const char *const *env, char **owned)
{
    size_t n = 0;
    bool has_path = false;
    *owned = NULL;
    for (; env != NULL && env[n] != NULL; n++) {
        if (strncmp(env[n], "PATH=", 5) == 0) {
            has_path = true;
        }
    }
    char **envp = calloc(n + HX_N_PASS_ENV + 2, sizeof *envp);
    if (envp == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        envp[i] = (char *)env[i];
    }
    size_t k = n;
    for (size_t j = 0; j < HX_N_PASS_ENV; j++) {
        bool given = false;
        for (size_t i = 0; i < n; i++) {
            given = given || strncmp(env[i], HX_PASS_ENV[j], strlen(HX_PASS_ENV[j])) == 0;
        }
        char *entry = own_env_entry(HX_PASS_ENV[j]);
        if (!given && entry != NULL) {
            envp[k++] = entry;
        }
    }
    if (!has_path) {
        const char *path = getenv("PATH");
        if (path == NULL) {
            path = "/usr/bin:/bin";
        }
        size_t len = strlen(path) + 6;
        *owned = malloc(len);
        if (*owned == NULL) {
            free(envp);
            return NULL;
        }
        snprintf(*owned, len, "PATH=%s", path);
        envp[k] = *owned;
    }
    return envp;
}

/* Finds a program named without a slash in $PATH; 0 or -1. */
static int resolve_program(const char *name, char *out, size_t cap)
{
    if (strchr(name, '/') != NULL) {
        int n = snprintf(out, cap, "%s", name);
        return n > 0 && (size_t)n < cap ? 0 : -1;
    }
    const char *path = getenv("PATH");
    path = path != NULL ? path : "/usr/bin:/bin";
    while (*path != '\0') {
        const char *colon = strchr(path, ':');
        size_t len = colon != NULL ? (size_t)(colon - path) : strlen(path);
        int n = snprintf(out, cap, "%.*s/%s", (int)len, path, name);
        if (len > 0 && n > 0 && (size_t)n < cap && access(out, X_OK) == 0) {
            return 0;
        }
        path += len;
        if (*path == ':') {
            path++;
        }
    }
    return -1;
}

/* argv for the child: the words of $SQLGATE_WRAPPER (split at blanks, no
 * quoting) when it is set, then bin. A valgrind wrapper without --log-file
 * gets one in the proc's log directory, read back by proc_free. The words
 * live in *store (new string, caller frees; NULL without a wrapper); the
 * rest is borrowed from p and bin. NULL on failure. */
static char **build_argv(proc *p, const char *bin, char **store)
{
    *store = NULL;
    p->wrap_error_status = -1;
    char **argv = calloc(HX_WRAP_WORDS + 3, sizeof *argv);
    if (argv == NULL) {
        return NULL;
    }
    size_t n = 0;
    const char *wrapper = getenv("SQLGATE_WRAPPER");
    if (wrapper != NULL && wrapper[0] != '\0') {
        *store = strdup(wrapper);
        if (*store == NULL) {
            free(argv);
            return NULL;
        }
        bool has_log = false;
        char *save = NULL;
        for (char *w = strtok_r(*store, " \t", &save); w != NULL && n < HX_WRAP_WORDS;
             w = strtok_r(NULL, " \t", &save)) {
            argv[n++] = w;
            has_log = has_log || strncmp(w, "--log-file=", 11) == 0;
            if (strncmp(w, "--error-exitcode=", 17) == 0) {
                p->wrap_error_status = atoi(w + 17);
            }
        }
        if (n == 0 || resolve_program(argv[0], p->wrap_exe, sizeof p->wrap_exe) != 0) {
            fprintf(stderr, "harness: SQLGATE_WRAPPER=%s: program not found\n", wrapper);
            free(*store);
            *store = NULL;
            free(argv);
            return NULL;
        }
        argv[0] = p->wrap_exe;
        const char *base = strrchr(p->wrap_exe, '/');
        base = base != NULL ? base + 1 : p->wrap_exe;
        if (!has_log && strncmp(base, "valgrind", 8) == 0) {
            snprintf(p->wrap_log, sizeof p->wrap_log, "%s/wrapper.log", p->logdir);
            snprintf(p->wrap_logopt, sizeof p->wrap_logopt, "--log-file=%s", p->wrap_log);
            argv[n++] = p->wrap_logopt;
        }
    }
    argv[n++] = (char *)bin;
    argv[n] = NULL;
    return argv;
}

/* Runs in the forked child: only async-signal-safe calls until execve. */
static void child_exec(char **argv, char **envp, const char *cwd, int out_fd, int err_fd,
                       int null_fd, pid_t parent)
{
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
        _exit(127);
    }
#else
    (void)parent;
#endif
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    if (chdir(cwd) != 0) {
        _exit(126);
    }
    if (dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) {
        _exit(126);
    }
    for (int fd = 3; fd < 1024; fd++) {
        close(fd);
    }
    execve(argv[0], argv, envp);
    _exit(127);
}

proc *proc_spawn(const char *const *env, const char *cwd)
{
    const char *bin = getenv("SQLGATE_BIN");
    if (bin == NULL || bin[0] == '\0') {
        fprintf(stderr, "harness: SQLGATE_BIN is not set\n");
        return NULL;
    }
    /* The child changes directory before execve: a relative path must not. */
    char abs_bin[PATH_MAX];
    if (realpath(bin, abs_bin) == NULL || access(abs_bin, X_OK) != 0) {
        fprintf(stderr, "harness: SQLGATE_BIN=%s is not executable: %s\n", bin, strerror(errno));
        return NULL;
    }
    bin = abs_bin;
    proc *p = calloc(1, sizeof *p);
    char **envp = NULL, **argv = NULL;
    char *env_path = NULL, *wrap_words = NULL;
    int out_fd = -1, err_fd = -1, null_fd = -1;
    if (p == NULL) {
        return NULL;
    }
    p->logdir = tmp_dir_new();
    if (p->logdir == NULL) {
        goto fail;
    }
    snprintf(p->err_path, sizeof p->err_path, "%s/stderr.log", p->logdir);
    snprintf(p->out_path, sizeof p->out_path, "%s/stdout.log", p->logdir);
    err_fd = open(p->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    out_fd = open(p->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    envp = build_envp(env, &env_path);
    argv = build_argv(p, bin, &wrap_words);
    if (err_fd < 0 || out_fd < 0 || null_fd < 0 || envp == NULL || argv == NULL) {
        goto fail;
    }
    pid_t parent = getpid();
    p->pid = fork();
    if (p->pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        goto fail;
    }
    if (p->pid == 0) {
        child_exec(argv, envp, cwd, out_fd, err_fd, null_fd, parent);
    }
    track_add(p->pid);
    free(envp);
    free(env_path);
    free(argv);
    free(wrap_words);
    close(err_fd);
    close(out_fd);
    close(null_fd);
    return p;

fail:
    free(envp);
    free(env_path);
    free(argv);
    free(wrap_words);
    if (err_fd >= 0) {
        close(err_fd);
    }
    if (out_fd >= 0) {
        close(out_fd);
    }
    if (null_fd >= 0) {
        close(null_fd);
    }
    tmp_dir_free(p->logdir);
    free(p);
    return NULL;
}

static void note_status(proc *p, int st)
{
    p->reaped = true;
    if (WIFEXITED(st)) {
        p->exit_code = WEXITSTATUS(st);
    } else if (WIFSIGNALED(st)) {
        p->exit_code = 128 + WTERMSIG(st);
    } else {
        p->exit_code = 255;
    }
    track_del(p->pid);
}

bool proc_running(proc *p)
{
    if (p == NULL || p->reaped) {
        return false;
    }
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
        note_status(p, st);
        return false;
    }
    return r == 0;
}

int proc_wait_exit(proc *p, int timeout_ms)
{
    int64_t deadline = now_ms() + scaled_ms(timeout_ms);
    for (;;) {
        if (!proc_running(p)) {
            return p != NULL && p->reaped ? p->exit_code : -1;
        }
        if (now_ms() >= deadline) {
            return -1;
        }
        sleep_ms(5);
    }
}

int proc_signal(proc *p, int sig)
{
    if (p == NULL || p->reaped) {
        return -1;
    }
    return kill(p->pid, sig) == 0 ? 0 : -1;
}

/* True when every thread of pid is in the stopped state. */
static bool all_threads_stopped(pid_t pid)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return false;
    }
    bool all = true;
    int n = 0;
    struct dirent *e;
    while (all && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char path[128], line[512];
        snprintf(path, sizeof path, "%s/%.32s/stat", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            continue; /* the thread ended */
        }
        char *got = fgets(line, sizeof line, f);
        fclose(f);
        /* "tid (comm) S ...": the state follows the last ')' */
        const char *paren = got != NULL ? strrchr(line, ')') : NULL;
        all = paren != NULL && paren[1] == ' ' && (paren[2] == 'T' || paren[2] == 't');
        n++;
    }
    closedir(d);
    return all && n > 0;
}

bool pid_wait_all_stopped(pid_t pid, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (!all_threads_stopped(pid)) {
        if (now_ms() >= deadline)
            return false;
        sleep_ms(2);
    }
    return true;
}

pid_t proc_pid(const proc *p)
{
    return p != NULL ? p->pid : -1;
}

int proc_port(const proc *p)
{
    return p != NULL ? p->port : 0;
}

char *proc_stderr(const proc *p)
{
    return read_all(p->err_path);
}

char *proc_stdout(const proc *p)
{
    return read_all(p->out_path);
}

bool proc_stderr_wait(const proc *p, const char *needle, int timeout_ms)
{
    int64_t deadline = now_ms() + scaled_ms(timeout_ms);
    for (;;) {
        char *text = proc_stderr(p);
        bool found = text != NULL && strstr(text, needle) != NULL;
        free(text);
        if (found) {
            return true;
        }
        if (now_ms() >= deadline) {
            return false;
        }
        sleep_ms(20);
    }
}

/* Port from the first complete {"msg":"listening","port":N} line, or 0. */
static int find_listening_port(const char *text)
{
    const char *line = text;
    while (line != NULL && *line != '\0') {
        const char *nl = strchr(line, '\n');
        if (nl == NULL) {
            break; /* the last line may still be being written */
        }
        json_t *obj = json_loadb(line, (size_t)(nl - line), 0, NULL);
        int port = 0;
        if (json_is_object(obj)) {
            const char *msg = json_string_value(json_object_get(obj, "msg"));
            json_t *jp = json_object_get(obj, "port");
            if (msg != NULL && strcmp(msg, "listening") == 0 && json_is_integer(jp)) {
                port = (int)json_integer_value(jp);
            }
        }
        json_decref(obj);
        if (port > 0) {
            return port;
        }
        line = nl + 1;
    }
    return 0;
}

int proc_wait_listening(proc *p, int timeout_ms)
{
    int64_t deadline = now_ms() + scaled_ms(timeout_ms);
    for (;;) {
        char *text = proc_stderr(p);
        int port = text != NULL ? find_listening_port(text) : 0;
        free(text);
        if (port > 0) {
            p->port = port;
            return port;
        }
        if (!proc_running(p) || now_ms() >= deadline) {
            return -1;
        }
        sleep_ms(20);
    }
}

bool proc_wait_ready(proc *p, int timeout_ms)
{
    int64_t deadline = now_ms() + scaled_ms(timeout_ms);
    char url[128];
    proc_url(p, "/health/ready", url, sizeof url);
    for (;;) {
        http_req rq = {.method = "GET", .url = url, .timeout_ms = 2000};
        http_resp r;
        int st = http_do(&rq, &r);
        http_resp_free(&r);
        if (st == 200) {
            return true;
        }
        if (!proc_running(p) || now_ms() >= deadline) {
            return false;
        }
        sleep_ms(50);
    }
}

proc *proc_start(const char *const *env, const char *cwd, bool wait_ready)
{
    proc *p = proc_spawn(env, cwd);
    if (p == NULL) {
        return NULL;
    }
    const char *what = NULL;
    if (proc_wait_listening(p, 10000) < 0) {
        what = "no \"listening\" log line";
    } else if (wait_ready && !proc_wait_ready(p, 15000)) {
        what = "/health/ready never answered 200";
    }
    if (what == NULL) {
        return p;
    }
    char *text = proc_stderr(p);
    int code = proc_running(p) ? -1 : p->exit_code;
    fprintf(stderr, "harness: sqlgate did not start (%s; exit %d); its stderr:\n%s\n", what, code,
            text != NULL ? text : "");
    free(text);
    proc_free(p);
    return NULL;
}

/* --- Checked children --------------------------------------------------------
 *
 * With $SQLGATE_WRAPPER set (e.g. valgrind) or SQLGATE_CHECK_CHILDREN=1 (a
 * sanitized build), proc_free stops a running child with SIGTERM, so that
 * its exit-time checks (memcheck's leak report, LeakSanitizer) run, and then
 * judges it: exit status equal to the wrapper's --error-exitcode, errors in
 * the wrapper's log, or a sanitizer report on its stderr fail the test. A
 * forked test process then exits with status 1 (Check reports it); the runner
 * (unchecked fixtures, or CK_FORK=no) finishes its tests and exits with 1.
 * Each verdict is appended as a line to $SQLGATE_CHECK_REPORT when it is set. */

static bool children_checked(void)
{
    const char *w = getenv("SQLGATE_WRAPPER");
    const char *c = getenv("SQLGATE_CHECK_CHILDREN");
    return (w != NULL && w[0] != '\0') || (c != NULL && strcmp(c, "1") == 0);
}

/* Number after the last "ERROR SUMMARY: " of a valgrind log, 0 when none. */
static long valgrind_errors(const char *log)
{
    long n = 0;
    for (const char *at = strstr(log, "ERROR SUMMARY: "); at != NULL;
         at = strstr(at + 1, "ERROR SUMMARY: ")) {
        n = strtol(at + 15, NULL, 10);
    }
    /* A child killed before its summary still shows the errors it met. */
    static const char *const kinds[] = {
        "== Invalid ",      "== Conditional jump", "== Use of uninitialised",
        "== Syscall param", "== Mismatched free",  "== Source and destination overlap"};
    for (size_t i = 0; n == 0 && i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strstr(log, kinds[i]) != NULL) {
            n = 1;
        }
    }
    const char *lost = strstr(log, "definitely lost: ");
    if (n == 0 && lost != NULL && strtol(lost + 17, NULL, 10) > 0) {
        n = 1;
    }
    return n;
}

static void report_line(const proc *p, const char *why)
{
    const char *file = getenv("SQLGATE_CHECK_REPORT");
    if (file == NULL || file[0] == '\0') {
        return;
    }
    FILE *f = fopen(file, "a");
    if (f != NULL) {
        fprintf(f, "%s pid %d%s%s\n", why[0] != '\0' ? "FAIL" : "ok", (int)p->pid,
                why[0] != '\0' ? ": " : "", why);
        fclose(f);
    }
}

/* The first sanitizer report in text, or NULL. */
static const char *sanitizer_report(const char *text)
{
    static const char *const markers[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                          ": runtime error: ", "WARNING: ThreadSanitizer"};
    const char *report = NULL;
    for (size_t i = 0; text != NULL && report == NULL && i < sizeof markers / sizeof markers[0];
         i++) {
        report = strstr(text, markers[i]);
    }
    return report;
}

bool sanitizer_report_in_file(const char *path, const char *who)
{
    char *text = read_all(path);
    const char *report = sanitizer_report(text);
    if (report != NULL) {
        fprintf(stderr, "harness: %s: sanitizer report in %s:\n%.65536s\n", who, path, report);
    }
    free(text);
    return report != NULL;
}

static void child_verdict(proc *p)
{
    char why[256] = "";
    char *err = proc_stderr(p);
    char *log = p->wrap_log[0] != '\0' ? read_all(p->wrap_log) : NULL;
    const char *report = sanitizer_report(err);
    long vg = log != NULL ? valgrind_errors(log) : 0;
    if (report != NULL) {
        snprintf(why, sizeof why, "sanitizer report on stderr");
    } else if (vg > 0) {
        snprintf(why, sizeof why, "%ld memcheck error(s) (definite leaks count as errors)", vg);
    } else if (p->reaped && p->wrap_error_status >= 0 && p->exit_code == p->wrap_error_status) {
        snprintf(why, sizeof why, "the wrapper exited with its error status %d", p->exit_code);
    } else if (p->stop_timed_out) {
        snprintf(why, sizeof why, "did not exit within %d ms of SIGTERM", scaled_ms(30000));
    }
    report_line(p, why);
    if (why[0] != '\0') {
        fprintf(stderr, "harness: sqlgate pid %d: %s\n", (int)p->pid, why);
        if (report != NULL) {
            fprintf(stderr, "%.65536s\n", report);
        }
        if (log != NULL) {
            fprintf(stderr, "--- %s ---\n%.262144s\n", p->wrap_log, log);
        }
    }
    free(err);
    free(log);
    if (why[0] != '\0') {
        if (getpid() != g_root_owner) {
            fflush(NULL);
            exit(1);
        }
        g_child_failed = true;
    }
}

void proc_free(proc *p)
{
    if (p == NULL) {
        return;
    }
    bool checked = children_checked() && p->pid > 0;
    if (checked && !p->reaped && kill(p->pid, SIGTERM) == 0 && proc_wait_exit(p, 30000) < 0) {
        p->stop_timed_out = true;
    }
    if (p->pid > 0 && !p->reaped) {
        kill(p->pid, SIGKILL);
        int st;
        if (waitpid(p->pid, &st, 0) == p->pid) {
            note_status(p, st);
        }
        track_del(p->pid);
    }
    if (checked) {
        child_verdict(p);
    }
    tmp_dir_free(p->logdir);
    free(p);
}

/* --- HTTP --------------------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
    bool overflow;
} buf;

static int buf_add(buf *b, const char *data, size_t n)
{
    if (b->len + n + 1 > HX_BODY_CAP) {
        b->overflow = true;
        return -1;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 1024;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            return -1;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    size_t n = size * nmemb;
    return buf_add(ud, ptr, n) == 0 ? n : 0;
}

static void headers_clear(http_resp *r)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    r->headers = NULL;
    r->n_headers = 0;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    http_resp *r = ud;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        headers_clear(r); /* a new response (after 100 Continue) starts */
        return n;
    }
    const char *colon = memchr(ptr, ':', n);
    if (colon == NULL || r->n_headers >= HX_HEADERS_CAP) {
        return n;
    }
    size_t name_len = (size_t)(colon - ptr);
    const char *v = colon + 1;
    const char *end = ptr + n;
    while (v < end && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) {
        end--;
    }
    http_header *nh = realloc(r->headers, (r->n_headers + 1) * sizeof *nh);
    if (nh == NULL) {
        return 0;
    }
    r->headers = nh;
    http_header *h = &r->headers[r->n_headers];
    h->name = strndup(ptr, name_len);
    h->value = strndup(v, (size_t)(end - v));
    if (h->name == NULL || h->value == NULL) {
        free(h->name);
        free(h->value);
        return 0;
    }
    r->n_headers++;
    return n;
}

typedef struct upload {
    const char *p;
    size_t len, off;
} upload;

/* Each return becomes one chunk; small pieces make the body truly chunked. */
static size_t on_read(char *dst, size_t size, size_t nmemb, void *ud)
{
    upload *u = ud;
    size_t room = size * nmemb;
    size_t left = u->len - u->off;
    size_t n = left < room ? left : room;
    if (n > 8192) {
        n = 8192;
    }
    memcpy(dst, u->p + u->off, n);
    u->off += n;
    return n;
}

/* --- Recording ------------------------------------------------------------------
 *
 * When $SQLGATE_IT_RECORD names a file, every exchange that got an HTTP
 * response is appended to it as one JSON line (tests/openapi/validate.py
 * checks them against the OpenAPI document). One write() per line on an
 * O_APPEND descriptor, under flock, keeps lines whole across the processes
 * Check forks and the threads of http_async. */
#define HX_RECORD_BODY_MAX (16u * 1024u * 1024u)

static void record_exchange(const http_req *rq, const http_resp *out)
{
    const char *file = getenv("SQLGATE_IT_RECORD");
    if (file == NULL || file[0] == '\0' || out->status <= 0) {
        return;
    }
    /* the path (with its query) is what follows "scheme://authority" */
    const char *path = strstr(rq->url, "://");
    path = path != NULL ? strchr(path + 3, '/') : rq->url;
    json_t *headers = json_array();
    for (size_t i = 0; headers != NULL && i < out->n_headers; i++) {
        json_array_append_new(headers,
                              json_pack("[s,s]", out->headers[i].name, out->headers[i].value));
    }
    json_t *line = json_pack(
        "{s:s,s:s,s:i,s:i,s:o,s:I,s:I}", "method", rq->method != NULL ? rq->method : "GET", "path",
        path != NULL ? path : "/", "status", (int)out->status, "curl_code", out->curl_code,
        "headers", headers, "body_len", (json_int_t)out->body_len, "pid", (json_int_t)getpid());
    if (line == NULL) {
        return;
    }
    json_t *body =
        out->body_len <= HX_RECORD_BODY_MAX ? json_stringn(out->body, out->body_len) : NULL;
    if (body != NULL) {
        json_object_set_new(line, "body", body);
    }
    char *text = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    int fd = text != NULL ? open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : -1;
    if (fd >= 0) {
        size_t len = strlen(text);
        text[len] = '\n'; /* replaces the terminator: the buffer is not a string any more */
        flock(fd, LOCK_EX);
        if (write(fd, text, len + 1) != (ssize_t)(len + 1)) {
            fprintf(stderr, "harness: cannot record to %s\n", file);
        }
        flock(fd, LOCK_UN);
        close(fd);
    }
    free(text);
}

int http_do(const http_req *rq, http_resp *out)
{
    memset(out, 0, sizeof *out);
    buf body = {0};
    upload up = {rq->body, rq->body_len, 0};
    struct curl_slist *hl = NULL;
    CURL *h = rq->handle != NULL ? rq->handle : curl_easy_init();
    if (h == NULL) {
        out->curl_code = CURLE_FAILED_INIT;
        goto done;
    }
    if (rq->handle != NULL) {
        curl_easy_reset(h); /* keeps live connections */
    }
    long tmo = scaled_ms(rq->timeout_ms > 0 ? (int)rq->timeout_ms : (int)HX_DEFAULT_TMO_MS);
    curl_easy_setopt(h, CURLOPT_URL, rq->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, tmo);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, tmo < 5000 ? tmo : 5000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, out->errbuf);
    if (rq->ca_pem != NULL) {
        struct curl_blob ca = {(void *)rq->ca_pem, strlen(rq->ca_pem), CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca);
    }

    hl = curl_slist_append(hl, "Expect:");
    for (size_t i = 0; rq->headers != NULL && rq->headers[i] != NULL; i++) {
        hl = curl_slist_append(hl, rq->headers[i]);
    }
    const char *method = rq->method != NULL ? rq->method : "GET";
    if (rq->body != NULL) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        if (rq->chunked) {
            hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
            curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(h, CURLOPT_READDATA, &up);
        } else {
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body);
        }
        if (strcmp(method, "POST") != 0) {
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        }
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);

    out->curl_code = (int)curl_easy_perform(h);
    long status = 0, conns = 0;
    double total = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &conns);
    curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &total);
    out->status = status;
    out->new_conns = conns;
    out->elapsed_s = total;
    /* The slist must outlive the transfer; the handle keeps no pointer to it
     * once reset or cleaned up. */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    if (rq->handle == NULL) {
        curl_easy_cleanup(h);
    }

done:
    curl_slist_free_all(hl);
    if (body.p == NULL) {
        body.p = calloc(1, 1);
    }
    out->body = body.p;
    out->body_len = body.len;
    if (out->body_len > 0) {
        out->json = json_loadb(out->body, out->body_len, JSON_DECODE_ANY, NULL);
    }
    record_exchange(rq, out);
    return out->status > 0 ? (int)out->status : -1;
}

void http_resp_free(http_resp *r)
{
    if (r == NULL) {
        return;
    }
    headers_clear(r);
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

const char *http_header_get(const http_resp *r, const char *name)
{
    for (size_t i = 0; r != NULL && i < r->n_headers; i++) {
        if (strcasecmp(r->headers[i].name, name) == 0) {
            return r->headers[i].value;
        }
    }
    return NULL;
}

char *proc_url(const proc *p, const char *path, char *buf_, size_t cap)
{
    snprintf(buf_, cap, "http://127.0.0.1:%d%s", proc_port(p), path);
    return buf_;
}

int http_send(const proc *p, const char *method, const char *path, const char *const *headers,
              const char *body, size_t body_len, http_resp *out)
{
    char url[1024];
    proc_url(p, path, url, sizeof url);
    http_req rq = {
        .method = method, .url = url, .headers = headers, .body = body, .body_len = body_len};
    return http_do(&rq, out);
}

int http_get(const proc *p, const char *path, http_resp *out)
{
    return http_send(p, "GET", path, NULL, NULL, 0, out);
}

int http_post(const proc *p, const char *path, const char *json, http_resp *out)
{
    static const char *const hdr[] = {"Content-Type: application/json", NULL};
    return http_send(p, "POST", path, hdr, json, strlen(json), out);
}

int http_postf(const proc *p, const char *path, http_resp *out, const char *fmt, ...)
{
    memset(out, 0, sizeof *out);
    va_list ap;
    va_start(ap, fmt);
    json_error_t jerr;
    json_t *v = json_vpack_ex(&jerr, 0, fmt, ap);
    va_end(ap);
    if (v == NULL) {
        fprintf(stderr, "harness: json_pack(\"%s\"): %s\n", fmt, jerr.text);
        out->body = calloc(1, 1);
        return -1;
    }
    char *text = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (text == NULL) {
        out->body = calloc(1, 1);
        return -1;
    }
    int rc = http_post(p, path, text, out);
    free(text);
    return rc;
}

struct http_async {
    pthread_t thread;
    char *method, *url, *body;
    char **headers;
    http_req rq;
    http_resp resp;
    int rc;
};

static void *async_main(void *arg)
{
    http_async *a = arg;
    a->rc = http_do(&a->rq, &a->resp);
    return NULL;
}

static void async_free(http_async *a)
{
    if (a == NULL) {
        return;
    }
    for (size_t i = 0; a->headers != NULL && a->headers[i] != NULL; i++) {
        free(a->headers[i]);
    }
    free(a->headers);
    free(a->method);
    free(a->url);
    free(a->body);
    free(a);
}

http_async *http_async_start(const http_req *rq)
{
    http_async *a = calloc(1, sizeof *a);
    if (a == NULL) {
        return NULL;
    }
    a->rq = *rq;
    a->method = strdup(rq->method != NULL ? rq->method : "GET");
    a->url = strdup(rq->url);
    if (a->method == NULL || a->url == NULL) {
        goto fail;
    }
    a->rq.method = a->method;
    a->rq.url = a->url;
    if (rq->body != NULL) {
        a->body = malloc(rq->body_len + 1);
        if (a->body == NULL) {
            goto fail;
        }
        memcpy(a->body, rq->body, rq->body_len);
        a->body[rq->body_len] = '\0';
        a->rq.body = a->body;
    }
    if (rq->headers != NULL) {
        size_t n = 0;
        while (rq->headers[n] != NULL) {
            n++;
        }
        a->headers = calloc(n + 1, sizeof *a->headers);
        if (a->headers == NULL) {
            goto fail;
        }
        for (size_t i = 0; i < n; i++) {
            a->headers[i] = strdup(rq->headers[i]);
            if (a->headers[i] == NULL) {
                goto fail;
            }
        }
        a->rq.headers = (const char *const *)a->headers;
    }
    if (pthread_create(&a->thread, NULL, async_main, a) != 0) {
        goto fail;
    }
    return a;

fail:
    async_free(a);
    return NULL;
}

int http_async_join(http_async *a, http_resp *out)
{
    if (a == NULL) {
        memset(out, 0, sizeof *out);
        out->body = calloc(1, 1);
        return -1;
    }
    pthread_join(a->thread, NULL);
    *out = a->resp;
    int rc = a->rc;
    async_free(a);
    return rc;
}

json_t *proc_wait_db_state(const proc *p, const char *db, const char *state, int timeout_ms)
{
    char path[128];
    snprintf(path, sizeof path, "databases.%s.state", db);
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        http_resp r;
        http_get(p, "/health", &r);
        const char *s = jstr(r.json, path);
        if (s != NULL && strcmp(s, state) == 0) {
            json_t *report = json_incref(r.json);
            http_resp_free(&r);
            return report;
        }
        http_resp_free(&r);
        if (now_ms() >= deadline) {
            return NULL;
        }
        sleep_ms(50);
    }
}

/* --- JSON --------------------------------------------------------------------- */

json_t *jget(const json_t *root, const char *path)
{
    json_t *cur = (json_t *)root;
    const char *s = path;
    while (cur != NULL && *s != '\0') {
        const char *dot = strchr(s, '.');
        size_t n = dot != NULL ? (size_t)(dot - s) : strlen(s);
        char key[256];
        if (n >= sizeof key) {
            return NULL;
        }
        memcpy(key, s, n);
        key[n] = '\0';
        if (json_is_array(cur)) {
            char *end;
            unsigned long idx = strtoul(key, &end, 10);
            cur = (n > 0 && *end == '\0') ? json_array_get(cur, idx) : NULL;
        } else if (json_is_object(cur)) {
            cur = json_object_get(cur, key);
        } else {
            cur = NULL;
        }
        s += n;
        if (*s == '.') {
            s++;
        }
    }
    return cur;
}

const char *jstr(const json_t *root, const char *path)
{
    return json_string_value(jget(root, path));
}

json_int_t jint(const json_t *root, const char *path, json_int_t def)
{
    json_t *v = jget(root, path);
    return json_is_integer(v) ? json_integer_value(v) : def;
}

double jnum(const json_t *root, const char *path, double def)
{
    json_t *v = jget(root, path);
    return json_is_number(v) ? json_number_value(v) : def;
}

json_t *log_find(const char *text, const char *const *kv)
{
    const char *line = text;
    while (line != NULL && *line != '\0') {
        const char *nl = strchr(line, '\n');
        size_t n = nl != NULL ? (size_t)(nl - line) : strlen(line);
        json_t *obj = json_loadb(line, n, 0, NULL);
        bool match = json_is_object(obj);
        for (size_t i = 0; match && kv != NULL && kv[i] != NULL && kv[i + 1] != NULL; i += 2) {
            const char *v = json_string_value(json_object_get(obj, kv[i]));
            match = v != NULL && strcmp(v, kv[i + 1]) == 0;
        }
        if (match) {
            return obj;
        }
        json_decref(obj);
        line = nl != NULL ? nl + 1 : NULL;
    }
    return NULL;
}

json_int_t log_max_int(const char *text, const char *key)
{
    json_int_t best = -1;
    const char *line = text;
    while (line != NULL && *line != '\0') {
        const char *nl = strchr(line, '\n');
        size_t n = nl != NULL ? (size_t)(nl - line) : strlen(line);
        json_t *obj = json_loadb(line, n, 0, NULL);
        json_t *v = json_object_get(obj, key);
        if (json_is_integer(v) && json_integer_value(v) > best) {
            best = json_integer_value(v);
        }
        json_decref(obj);
        line = nl != NULL ? nl + 1 : NULL;
    }
    return best;
}

json_t *proc_log_wait(const proc *p, const char *const *kv, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        char *text = proc_stderr(p);
        json_t *line = text != NULL ? log_find(text, kv) : NULL;
        free(text);
        if (line != NULL || now_ms() >= deadline) {
            return line;
        }
        sleep_ms(20);
    }
}

/* --- The per-test fixture ----------------------------------------------------- */

char *fixture_dir;
proc *fixture_svc;

void fixture_setup(void)
{
    fixture_dir = tmp_dir_new();
    ck_assert_ptr_nonnull(fixture_dir);
    fixture_svc = NULL;
}

void fixture_stop(void)
{
    proc_free(fixture_svc);
    fixture_svc = NULL;
}

void fixture_teardown(void)
{
    fixture_stop();
    tmp_dir_free(fixture_dir);
    fixture_dir = NULL;
}

proc *fixture_start(const char *const *env, bool wait_ready)
{
    fixture_stop();
    fixture_svc = proc_start(env, fixture_dir, wait_ready);
    return fixture_service();
}

proc *fixture_start_env(env_list *e, bool wait_ready)
{
    fixture_stop();
    fixture_svc = proc_start((const char *const *)e->items, fixture_dir, wait_ready);
    env_free(e);
    return fixture_service();
}

void fixture_start_unchecked(const char *const *env, bool wait_ready)
{
    fixture_dir = tmp_dir_new();
    fixture_svc = fixture_dir != NULL ? proc_start(env, fixture_dir, wait_ready) : NULL;
}

proc *fixture_service(void)
{
    ck_assert_msg(fixture_svc != NULL, "sqlgate did not start (its stderr is printed above)");
    return fixture_svc;
}

/* --- Assertions ------------------------------------------------------------- */

void assert_retry_after_seconds(const http_resp *r)
{
    const char *ra = http_header_get(r, "Retry-After");
    ck_assert_msg(ra != NULL && ra[0] != '\0' && strspn(ra, "0123456789") == strlen(ra),
                  "Retry-After '%s' is not a number of seconds", ra ? ra : "(none)");
}

void assert_stderr_lacks(const proc *p, const char *needle)
{
    char *text = proc_stderr(p);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, needle) == NULL, "sqlgate's stderr shows \"%s\":\n%s", needle, text);
    free(text);
}

const char *resp_desc(const http_resp *r, char *buf_, size_t cap)
{
    int n = snprintf(buf_, cap, "status %ld, curl %d (%s), body: %.400s", r->status, r->curl_code,
                     r->errbuf[0] != '\0' ? r->errbuf : curl_easy_strerror((CURLcode)r->curl_code),
                     r->body != NULL ? r->body : "(none)");
    if (n < 0 || (size_t)n >= cap) {
        /* a cut description is still a useful one */
        buf_[cap - 1] = '\0';
    }
    return buf_;
}

bool check_error_resp(const http_resp *r, long status, const char *code, char *buf_, size_t cap)
{
    char d[600];
    resp_desc(r, d, sizeof d);
    const char *ctype = http_header_get(r, "Content-Type");
    const char *rid = http_header_get(r, "X-Request-Id");
    const char *got_code = jstr(r->json, "error.code");
    const char *msg = jstr(r->json, "error.message");
    const char *body_rid = jstr(r->json, "error.request_id");
    const char *why = NULL;
    if (r->status != status) {
        why = "wrong status";
    } else if (ctype == NULL || strncasecmp(ctype, "application/json", 16) != 0) {
        why = "Content-Type is not application/json";
    } else if (!json_is_object(jget(r->json, "error"))) {
        why = "body has no error object";
    } else if (got_code == NULL || strcmp(got_code, code) != 0) {
        why = "wrong error.code";
    } else if (msg == NULL || msg[0] == '\0') {
        why = "error.message missing or empty";
    } else if (rid == NULL || rid[0] == '\0') {
        why = "no X-Request-Id header";
    } else if (body_rid == NULL || strcmp(body_rid, rid) != 0) {
        why = "error.request_id differs from X-Request-Id";
    }
    if (why == NULL) {
        return true;
    }
    int n = snprintf(buf_, cap, "expected %ld %s: %s (X-Request-Id %s); got %s", status, code, why,
                     rid != NULL ? rid : "-", d);
    if (n < 0 || (size_t)n >= cap) {
        buf_[cap - 1] = '\0';
    }
    return false;
}

/* --- Environments ------------------------------------------------------------ */

void env_add(env_list *e, const char *fmt, ...)
{
    ck_assert_uint_lt(e->n, ENV_LIST_MAX);
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    e->items[e->n] = strdup(line);
    ck_assert_ptr_nonnull(e->items[e->n]);
    e->n++;
    e->items[e->n] = NULL;
}

void env_set(env_list *e, const char *key, const char *fmt, ...)
{
    char value[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    size_t klen = strlen(key);
    size_t len = klen + strlen(value) + 2;
    char *kv = malloc(len);
    ck_assert_ptr_nonnull(kv);
    snprintf(kv, len, "%s=%s", key, value);
    for (size_t i = 0; i < e->n; i++) {
        if (strncmp(e->items[i], key, klen) == 0 && e->items[i][klen] == '=') {
            free(e->items[i]);
            e->items[i] = kv;
            return;
        }
    }
    ck_assert_uint_lt(e->n, ENV_LIST_MAX);
    e->items[e->n++] = kv;
    e->items[e->n] = NULL;
}

void env_free(env_list *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->items[i]);
    e->n = 0;
    e->items[0] = NULL;
}
