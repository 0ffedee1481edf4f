/* Integration: the command line of the real binary. --version, --help (every
 * variable with its default and meaning, compared against a list this test
 * keeps on its own), --check-config (exit 0 with the effective settings, exit
 * 2 naming every bad variable, secrets never printed, .env read like a start,
 * no socket and no database ever opened) and unknown options (exit 2).
 *
 * The binary runs with arguments, so this suite has its own small runner
 * (the harness starts the service without arguments); its outputs go to
 * files in a directory of their own, and every run is bounded in time. Like
 * the harness it honours $SQLGATE_WRAPPER (e.g. valgrind with
 * --error-exitcode=99, whose log goes beside the outputs, so a memory error
 * shows as a wrong exit status), passes the sanitizers' options through and
 * scales its bounds by $SQLGATE_TIMEOUT_SCALE.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"
#include "harness.h"

#define EXIT_CONFIG 2
#define RUN_TIMEOUT 20000 /* ms, scaled; --check-config returns in milliseconds */
#define ARGV_CAP    48
#define ENVP_CAP    64
#define PATH_CAP    512

/* --- What docs/configuration.md says the variables are ---------------------------- */

#define ANY_DEFAULT "*" /* a computed default, described in words */

typedef struct expected_var {
    const char *name; /* full name, or "<N>_DB_" + suffix */
    const char *def;  /* NULL: no default; ANY_DEFAULT; else the exact default */
} expected_var;

static const expected_var expected_vars[] = {
    {"SQLGATE_DATABASES", NULL},
    {"SQLGATE_DEFAULT_DATABASE", ANY_DEFAULT},
    {"SQLGATE_LISTEN", "127.0.0.1:8080"},
    {"SQLGATE_API_TOKENS", NULL},
    {"SQLGATE_API_TOKENS_FILE", NULL},
    {"SQLGATE_ALLOW_ANONYMOUS", "false"},
    {"SQLGATE_SHUTDOWN_DELAY_MS", "0"},
    {"SQLGATE_DRAIN_TIMEOUT_MS", "25000"},
    {"SQLGATE_MAX_BODY_BYTES", "1048576"},
    {"SQLGATE_MAX_ROWS", "10000"},
    {"SQLGATE_MAX_VALUE_BYTES", "16777216"},
    {"SQLGATE_MAX_RESPONSE_BYTES", "268435456"},
    {"SQLGATE_LOG_LEVEL", "info"},
    {"SQLGATE_LOG_FORMAT", "json"},
    {"SQLGATE_TLS_CERT_FILE", NULL},
    {"SQLGATE_TLS_KEY_FILE", NULL},
    {"SQLGATE_TOKENS_FILE", NULL},
    {"SQLGATE_METRICS_ACCESS", "open"},
    {"SQLGATE_HEALTH_DETAILS", "authorized"},
    {"SQLGATE_ALLOWED_HOSTS", NULL},
    {"SQLGATE_HEADER_TIMEOUT_MS", "10000"},
    {"SQLGATE_IDLE_TIMEOUT_MS", "75000"},
    {"SQLGATE_WRITE_GRACE_MS", "5000"},
    {"SQLGATE_MAX_CONNECTIONS_PER_CLIENT", "256"},
    {"SQLGATE_MAX_CONNECTIONS", "16384"},
    {"SQLGATE_CONNECTION_MODEL", "threads"},
    {"SQLGATE_CONNECTION_BUFFER_BYTES", "32768"},
    {"SQLGATE_ENV_FILE", ".env"},
    {"<N>_DB_DRIVER", ANY_DEFAULT},
    {"<N>_DB_HOST", NULL},
    {"<N>_DB_PORT", "1433"},
    {"<N>_DB_NAME", NULL},
    {"<N>_DB_USER", NULL},
    {"<N>_DB_PASSWORD", NULL},
    {"<N>_DB_PASSWORD_FILE", NULL},
    {"<N>_DB_URL", NULL},
    {"<N>_DB_PATH", NULL},
    {"<N>_DB_ENCRYPT", "request"},
    {"<N>_DB_CA_FILE", NULL},
    {"<N>_DB_TDS_VERSION", "auto"},
    {"<N>_DB_APP_NAME", "sqlgate:<name>"},
    {"<N>_DB_POOL_MAX", "10"},
    {"<N>_DB_POOL_MIN", "0"},
    {"<N>_DB_ACQUIRE_TIMEOUT_MS", "5000"},
    {"<N>_DB_CONNECT_TIMEOUT_MS", "15000"},
    {"<N>_DB_QUERY_TIMEOUT_MS", "15000"},
    {"<N>_DB_IDLE_TIMEOUT_MS", "30000"},
    {"<N>_DB_MAX_LIFETIME_MS", "1800000"},
    {"<N>_DB_RETRY_MAX_MS", "5000"},
    {"<N>_DB_CRITICAL", "true"},
    {"<N>_DB_READ_ONLY", "false"},
    {"<N>_DB_HEALTH_QUERY", "SELECT 1"},
    {"<N>_DB_HEALTH_INTERVAL_MS", "5000"},
    {"<N>_DB_HEALTH_TIMEOUT_MS", "2000"},
    {"<N>_DB_MAX_LOGINS_PER_SEC", "20"},
    {"<N>_DB_READONLY_USER", NULL},
    {"<N>_DB_READONLY_PASSWORD", NULL},
    {"<N>_DB_READONLY_PASSWORD_FILE", NULL},
};

#define N_EXPECTED (sizeof expected_vars / sizeof expected_vars[0])
#define DB_PREFIX  "<N>_DB_"

/* --- Runner ------------------------------------------------------------------ */

typedef struct run_result {
    int status; /* exit status, 128 + signal, or -1 on timeout */
    char *out;  /* stdout, never NULL after run_cli */
    char *err;  /* stderr, never NULL after run_cli */
    int64_t elapsed_ms;
} run_result;

/* The binary runs in fixture_dir; its stdout and stderr go in g_logs. */
static char *g_logs;

static void setup(void)
{
    fixture_setup();
    g_logs = tmp_dir_new();
    ck_assert_ptr_nonnull(g_logs);
}

static void teardown(void)
{
    tmp_dir_free(g_logs);
    g_logs = NULL;
    fixture_teardown();
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (f == NULL)
        return strdup("");
    for (;;) {
        if (len + 4096 + 1 > cap) {
            size_t ncap = cap ? cap * 2 : 8192;
            char *n = realloc(buf, ncap);
            if (n == NULL)
                break;
            buf = n;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0)
            break;
    }
    fclose(f);
    if (buf == NULL)
        return strdup("");
    buf[len] = '\0';
    return buf;
}

static void run_free(run_result *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

/* name itself when it holds a '/', else the first executable of that name
 * on $PATH, into out. */
static bool find_program(const char *name, char *out, size_t cap)
{
    if (strchr(name, '/') != NULL) {
        snprintf(out, cap, "%s", name);
        return true;
    }
    const char *path = getenv("PATH");
    for (const char *p = path != NULL ? path : "/usr/bin:/bin"; *p != '\0';) {
        size_t n = strcspn(p, ":");
        snprintf(out, cap, "%.*s/%s", (int)n, p, name);
        if (n > 0 && access(out, X_OK) == 0)
            return true;
        p += n + (p[n] == ':');
    }
    return false;
}

/* Runs $SQLGATE_BIN with args (NULL-terminated, borrowed) in fixture_dir with only
 * env and PATH in its environment; waits at most RUN_TIMEOUT. */
static void run_cli(const char *const *args, const char *const *env, run_result *r)
{
    static const char *const passed_through[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"};
    const char *bin = getenv("SQLGATE_BIN");
    const char *wrapper = getenv("SQLGATE_WRAPPER");
    char out_path[PATH_CAP], err_path[PATH_CAP], path_var[PATH_CAP];
    char words[PATH_CAP * 2], log_opt[PATH_CAP + 32];
    char *argv[ARGV_CAP];
    char *envp[ENVP_CAP];
    size_t na = 0, ne = 0;

    memset(r, 0, sizeof *r);
    ck_assert_msg(bin != NULL && bin[0] != '\0', "SQLGATE_BIN is not set");
    if (wrapper != NULL && wrapper[0] != '\0') {
        bool valgrind = false, has_log = false;
        char *save = NULL;
        snprintf(words, sizeof words, "%s", wrapper);
        for (char *w = strtok_r(words, " \t", &save); w != NULL && na + 8 < ARGV_CAP;
             w = strtok_r(NULL, " \t", &save)) {
            valgrind = valgrind || (na == 0 && strstr(w, "valgrind") != NULL);
            has_log = has_log || strncmp(w, "--log-file", 10) == 0;
            argv[na++] = w;
        }
        if (valgrind && !has_log) {
            snprintf(log_opt, sizeof log_opt, "--log-file=%s/valgrind.%%p.log", g_logs);
            argv[na++] = log_opt;
        }
    }
    argv[na++] = (char *)bin;
    for (; args != NULL && *args != NULL && na + 1 < ARGV_CAP; args++)
        argv[na++] = (char *)*args;
    argv[na] = NULL;
    for (; env != NULL && *env != NULL && ne + 6 < ENVP_CAP; env++)
        envp[ne++] = (char *)*env;
    const char *path = getenv("PATH");
    snprintf(path_var, sizeof path_var, "PATH=%s", path != NULL ? path : "/usr/bin:/bin");
    envp[ne++] = path_var;
    /* Pointers into our own environment, which lives as long as we do. */
    extern char **environ;
    for (char **e = environ; *e != NULL; e++) {
        for (size_t k = 0; k < sizeof passed_through / sizeof passed_through[0]; k++) {
            size_t n = strlen(passed_through[k]);
            if (strncmp(*e, passed_through[k], n) == 0 && (*e)[n] == '=' && ne + 1 < ENVP_CAP)
                envp[ne++] = *e;
        }
    }
    envp[ne] = NULL;
    char prog[PATH_CAP];
    ck_assert_msg(find_program(argv[0], prog, sizeof prog), "%s not found", argv[0]);

    snprintf(out_path, sizeof out_path, "%s/stdout", g_logs);
    snprintf(err_path, sizeof err_path, "%s/stderr", g_logs);
    int out_fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int err_fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_msg(out_fd >= 0 && err_fd >= 0, "cannot create the output files");

    int64_t start = now_ms();
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* The child holds no descriptor of the test beyond 0-2, in
         * particular no socket a test keeps open. */
        int null_fd = open("/dev/null", O_RDONLY);
        if (chdir(fixture_dir) != 0 || null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 ||
            dup2(err_fd, 2) < 0)
            _exit(126);
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        execve(prog, argv, envp);
        _exit(127);
    }
    close(out_fd);
    close(err_fd);

    int st = 0;
    r->status = -1;
    while (now_ms() - start < scaled_ms(RUN_TIMEOUT)) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) {
            r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        sleep_ms(10);
    }
    if (r->status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    r->elapsed_ms = now_ms() - start;
    r->out = slurp(out_path);
    r->err = slurp(err_path);
    ck_assert_ptr_nonnull(r->out);
    ck_assert_ptr_nonnull(r->err);
}

/* The value printed by --check-config for NAME ("  NAME   value"), as a new
 * string, or NULL when there is no such line. */
static char *setting(const char *out, const char *name)
{
    size_t n = strlen(name);
    for (const char *line = out; line != NULL && *line != '\0';) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len > n + 3 && strncmp(line, "  ", 2) == 0 && strncmp(line + 2, name, n) == 0 &&
            line[2 + n] == ' ') {
            const char *v = line + 2 + n;
            while (*v == ' ')
                v++;
            size_t vlen = len - (size_t)(v - line);
            char *copy = malloc(vlen + 1);
            if (copy == NULL)
                return NULL;
            memcpy(copy, v, vlen);
            copy[vlen] = '\0';
            return copy;
        }
        line = nl ? nl + 1 : NULL;
    }
    return NULL;
}

#define ASSERT_SETTING(out, name, want)                                                            \
    do {                                                                                           \
        char *got_ = setting((out), (name));                                                       \
        ck_assert_msg(got_ != NULL, "no line for %s in:\n%s", (name), (out));                      \
        ck_assert_msg(strcmp(got_, (want)) == 0, "%s is \"%s\", expected \"%s\"", (name), got_,    \
                      (want));                                                                     \
        free(got_);                                                                                \
    } while (0)

#define ASSERT_EXIT(r, code)                                                                       \
    ck_assert_msg((r)->status == (code), "exit status %d, expected %d\nstdout:\n%s\nstderr:\n%s",  \
                  (r)->status, (code), (r)->out, (r)->err)

#define ASSERT_CONTAINS(text, needle)                                                              \
    ck_assert_msg(strstr((text), (needle)) != NULL, "\"%s\" missing from:\n%s", (needle), (text))

#define ASSERT_NO_SECRET(r, secret)                                                                \
    ck_assert_msg(strstr((r)->out, (secret)) == NULL && strstr((r)->err, (secret)) == NULL,        \
                  "the secret %s was printed:\n%s\n%s", (secret), (r)->out, (r)->err)

static const char *const CHECK[] = {"--check-config", NULL};

/* Every variable of every database and of the service has a line. */
static void assert_all_settings(const char *out, const char *const *prefixes)
{
    for (size_t i = 0; i < N_EXPECTED; i++) {
        const char *name = expected_vars[i].name;
        if (strncmp(name, DB_PREFIX, strlen(DB_PREFIX)) != 0) {
            char *v = setting(out, name);
            ck_assert_msg(v != NULL && v[0] != '\0', "no value for %s in:\n%s", name, out);
            free(v);
            continue;
        }
        for (const char *const *p = prefixes; *p != NULL; p++) {
            char full[128];
            snprintf(full, sizeof full, "%s%s", *p, name + strlen(DB_PREFIX));
            char *v = setting(out, full);
            ck_assert_msg(v != NULL && v[0] != '\0', "no value for %s in:\n%s", full, out);
            free(v);
        }
    }
}

/* ===== --version, --help, usage =================================================== */

START_TEST(version_prints_name_and_version)
{
    static const char *const args[] = {"--version", NULL};
    run_result r;
    run_cli(args, NULL, &r);
    ASSERT_EXIT(&r, 0);
    unsigned a, b, c;
    char rest[8] = "";
    int n = sscanf(r.out, "sqlgate %u.%u.%u%7c", &a, &b, &c, rest);
    ck_assert_msg(n == 4 && strcmp(rest, "\n") == 0, "--version printed \"%s\"", r.out);
    ck_assert_msg(r.err[0] == '\0', "stderr not empty: %s", r.err);
    run_free(&r);
}
END_TEST

/* The "  NAME (default X)" or "  NAME (no default...)" line for name, and the
 * meaning on the next line. Fails the test when either is missing. */
static void assert_help_entry(const char *help, const expected_var *ev)
{
    char head[128];
    snprintf(head, sizeof head, "\n  %s (", ev->name);
    const char *at = strstr(help, head);
    ck_assert_msg(at != NULL, "--help does not list %s", ev->name);
    const char *paren = at + strlen(head);
    const char *eol = strchr(paren, '\n');
    ck_assert_ptr_nonnull(eol);
    char attrs[128];
    snprintf(attrs, sizeof attrs, "%.*s", (int)(eol - paren), paren);
    if (ev->def == NULL) {
        ck_assert_msg(strncmp(attrs, "no default", 10) == 0, "%s: expected no default, got (%s",
                      ev->name, attrs);
    } else if (strcmp(ev->def, ANY_DEFAULT) == 0) {
        ck_assert_msg(strncmp(attrs, "default ", 8) == 0 && strlen(attrs) > 9,
                      "%s: expected a described default, got (%s", ev->name, attrs);
    } else {
        char want[128];
        snprintf(want, sizeof want, "default %s", ev->def);
        size_t wl = strlen(want);
        ck_assert_msg(strncmp(attrs, want, wl) == 0 && (attrs[wl] == ')' || attrs[wl] == ';'),
                      "%s: expected (%s), got (%s", ev->name, want, attrs);
    }
    /* The meaning: the next line, indented six spaces, not empty. */
    const char *meaning = eol + 1;
    ck_assert_msg(strncmp(meaning, "      ", 6) == 0 && meaning[6] != ' ' && meaning[6] != '\n' &&
                      meaning[6] != '\0',
                  "%s has no line of meaning", ev->name);
}

START_TEST(help_lists_every_variable_with_default)
{
    static const char *const args[] = {"--help", NULL};
    run_result r;
    run_cli(args, NULL, &r);
    ASSERT_EXIT(&r, 0);
    for (size_t i = 0; i < N_EXPECTED; i++)
        assert_help_entry(r.out, &expected_vars[i]);

    /* No variable beyond the list: count the entries ("  NAME (" lines). */
    size_t entries = 0;
    for (const char *line = r.out; line != NULL && *line != '\0';) {
        const char *nl = strchr(line, '\n');
        if (strncmp(line, "  ", 2) == 0 && (line[2] == '<' || (line[2] >= 'A' && line[2] <= 'Z'))) {
            size_t len = nl ? (size_t)(nl - line) : strlen(line);
            const char *sp = memchr(line + 2, ' ', len - 2);
            if (sp != NULL && sp[1] == '(')
                entries++;
        }
        line = nl ? nl + 1 : NULL;
    }
    ck_assert_msg(entries == N_EXPECTED, "--help lists %zu variables, the contract has %zu:\n%s",
                  entries, N_EXPECTED, r.out);
    ck_assert_msg(strstr(r.out, "(no description)") == NULL, "a variable has no description");
    ASSERT_CONTAINS(r.out, "--check-config");
    ASSERT_CONTAINS(r.out, "--version");
    ASSERT_CONTAINS(r.out, "docs/configuration.md");
    /* The secret ones say so. */
    ASSERT_CONTAINS(r.out, "  SQLGATE_API_TOKENS (no default; secret)");
    ASSERT_CONTAINS(r.out, "  <N>_DB_PASSWORD (no default; secret)");
    ASSERT_CONTAINS(r.out, "  <N>_DB_URL (no default; secret)");
    run_free(&r);

    static const char *const short_args[] = {"-h", NULL};
    run_cli(short_args, NULL, &r);
    ASSERT_EXIT(&r, 0);
    ASSERT_CONTAINS(r.out, "  SQLGATE_DRAIN_TIMEOUT_MS (default 25000)");
    run_free(&r);
}
END_TEST

START_TEST(unknown_option_is_usage_error)
{
    static const char *const bad[][3] = {{"--bogus", NULL, NULL},
                                         {"serve", NULL, NULL},
                                         {"--check-config", "--verbose", NULL},
                                         {"-v", NULL, NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run_result r;
        run_cli(bad[i], NULL, &r);
        ASSERT_EXIT(&r, EXIT_CONFIG);
        ck_assert_msg(r.out[0] == '\0', "stdout not empty: %s", r.out);
        ASSERT_CONTAINS(r.err, "usage: sqlgate");
        ASSERT_CONTAINS(r.err, bad[i][1] != NULL ? bad[i][1] : bad[i][0]);
        ck_assert_msg(strstr(r.err, "\"listening\"") == NULL, "it started:\n%s", r.err);
        run_free(&r);
    }
}
END_TEST

/* ===== --check-config ============================================================== */

START_TEST(check_config_good_prints_effective_values)
{
    char app_path[PATH_CAP];
    snprintf(app_path, sizeof app_path, "APP_DB_PATH=%s/app.db", fixture_dir);
    const char *const env[] = {"SQLGATE_DATABASES=core,app",
                               "SQLGATE_DEFAULT_DATABASE=core",
                               "SQLGATE_LISTEN=127.0.0.1:18080",
                               "SQLGATE_DRAIN_TIMEOUT_MS=7000",
                               "SQLGATE_LOG_FORMAT=TEXT",
                               "CORE_DB_HOST=db1.example.com",
                               "CORE_DB_PORT=14330",
                               "CORE_DB_NAME=appdb",
                               "CORE_DB_USER=reporter",
                               "CORE_DB_POOL_MAX=4",
                               "CORE_DB_ENCRYPT=off",
                               app_path,
                               "APP_DB_CRITICAL=no",
                               "APP_DB_READ_ONLY=1",
                               NULL};
    run_result r;
    run_cli(CHECK, env, &r);
    ASSERT_EXIT(&r, 0);
    ASSERT_CONTAINS(r.out, "configuration is valid");
    static const char *const prefixes[] = {"CORE_DB_", "APP_DB_", NULL};
    assert_all_settings(r.out, prefixes);

    ASSERT_SETTING(r.out, "SQLGATE_DATABASES", "core,app");
    ASSERT_SETTING(r.out, "SQLGATE_DEFAULT_DATABASE", "core");
    ASSERT_SETTING(r.out, "SQLGATE_LISTEN", "127.0.0.1:18080");
    ASSERT_SETTING(r.out, "SQLGATE_DRAIN_TIMEOUT_MS", "7000");
    ASSERT_SETTING(r.out, "SQLGATE_SHUTDOWN_DELAY_MS", "0");
    ASSERT_SETTING(r.out, "SQLGATE_MAX_ROWS", "10000");
    ASSERT_SETTING(r.out, "SQLGATE_LOG_FORMAT", "text");
    ASSERT_SETTING(r.out, "SQLGATE_API_TOKENS", "(not set)");
    ASSERT_SETTING(r.out, "CORE_DB_DRIVER", "freetds");
    ASSERT_SETTING(r.out, "CORE_DB_HOST", "db1.example.com");
    ASSERT_SETTING(r.out, "CORE_DB_PORT", "14330");
    ASSERT_SETTING(r.out, "CORE_DB_NAME", "appdb");
    ASSERT_SETTING(r.out, "CORE_DB_USER", "reporter");
    ASSERT_SETTING(r.out, "CORE_DB_PASSWORD", "(not set)");
    ASSERT_SETTING(r.out, "CORE_DB_POOL_MAX", "4");
    ASSERT_SETTING(r.out, "CORE_DB_POOL_MIN", "0");
    ASSERT_SETTING(r.out, "CORE_DB_ENCRYPT", "off");
    ASSERT_SETTING(r.out, "CORE_DB_APP_NAME", "sqlgate:core");
    ASSERT_SETTING(r.out, "CORE_DB_HEALTH_QUERY", "SELECT 1");
    ASSERT_SETTING(r.out, "APP_DB_DRIVER", "sqlite");
    ASSERT_SETTING(r.out, "APP_DB_PATH", app_path + strlen("APP_DB_PATH="));
    ASSERT_SETTING(r.out, "APP_DB_CRITICAL", "false");
    ASSERT_SETTING(r.out, "APP_DB_READ_ONLY", "true");
    ASSERT_SETTING(r.out, "APP_DB_QUERY_TIMEOUT_MS", "15000");
    ASSERT_SETTING(r.out, "APP_DB_MAX_LIFETIME_MS", "1800000");
    ck_assert_msg(strstr(r.err, "\"listening\"") == NULL, "it listened:\n%s", r.err);
    /* A read-only SQLite file that does not exist was not created. */
    ck_assert(!file_exists(fixture_dir, "app.db"));
    run_free(&r);
}
END_TEST

START_TEST(check_config_reads_dotenv_like_a_start)
{
    ck_assert_int_eq(write_file(fixture_dir, ".env",
                                "# a comment\n"
                                "SQLGATE_DATABASES=sales\n"
                                "SALES_DB_PATH=:memory:\n"
                                "SALES_DB_POOL_MAX=3\n"
                                "export SALES_DB_HEALTH_QUERY=\"SELECT 2\"\n"
                                "SQLGATE_MAX_ROWS=500\n"),
                     0);
    /* The real environment wins over .env. */
    const char *const env[] = {"SQLGATE_MAX_ROWS=42", NULL};
    run_result r;
    run_cli(CHECK, env, &r);
    ASSERT_EXIT(&r, 0);
    static const char *const prefixes[] = {"SALES_DB_", NULL};
    assert_all_settings(r.out, prefixes);
    ASSERT_SETTING(r.out, "SQLGATE_DATABASES", "sales");
    ASSERT_SETTING(r.out, "SQLGATE_DEFAULT_DATABASE", "sales");
    ASSERT_SETTING(r.out, "SALES_DB_PATH", ":memory:");
    ASSERT_SETTING(r.out, "SALES_DB_POOL_MAX", "3");
    ASSERT_SETTING(r.out, "SALES_DB_HEALTH_QUERY", "SELECT 2");
    ASSERT_SETTING(r.out, "SQLGATE_MAX_ROWS", "42");
    run_free(&r);

    /* A malformed .env stops it like a start: exit 2, the file named. */
    ck_assert_int_eq(
        write_file(fixture_dir, ".env", "SQLGATE_DATABASES=core\nthis is not a pair\n"), 0);
    run_cli(CHECK, NULL, &r);
    ASSERT_EXIT(&r, EXIT_CONFIG);
    ASSERT_CONTAINS(r.err, ".env");
    ck_assert_msg(strstr(r.out, "configuration is valid") == NULL, "said valid:\n%s", r.out);
    run_free(&r);
}
END_TEST

START_TEST(check_config_embedded_and_legacy_modes)
{
    run_result r;
    run_cli(CHECK, NULL, &r);
    ASSERT_EXIT(&r, 0);
    static const char *const embedded[] = {"CORE_DB_", "APP_DB_", NULL};
    assert_all_settings(r.out, embedded);
    ASSERT_CONTAINS(r.out, "embedded");
    ASSERT_SETTING(r.out, "SQLGATE_DATABASES", "(not set)");
    ASSERT_SETTING(r.out, "SQLGATE_DEFAULT_DATABASE", "core");
    ASSERT_SETTING(r.out, "CORE_DB_PATH", "./var/core.db");
    ASSERT_SETTING(r.out, "APP_DB_PATH", "./var/app.db");
    /* Never opens a database: the embedded files and ./var are not made. */
    ck_assert_msg(!file_exists(fixture_dir, "var"), "--check-config created ./var");
    run_free(&r);

    const char *const legacy[] = {"DB_PATH=:memory:", "DB_POOL_MAX=2", NULL};
    run_cli(CHECK, legacy, &r);
    ASSERT_EXIT(&r, 0);
    static const char *const legacy_prefix[] = {"DB_", NULL};
    assert_all_settings(r.out, legacy_prefix);
    ASSERT_CONTAINS(r.out, "legacy");
    ASSERT_SETTING(r.out, "SQLGATE_DEFAULT_DATABASE", "default");
    ASSERT_SETTING(r.out, "DB_POOL_MAX", "2");
    run_free(&r);
}
END_TEST

START_TEST(check_config_never_prints_secrets)
{
    char pw_file[PATH_CAP], tokens_file[PATH_CAP];
    ck_assert_int_eq(write_file(fixture_dir, "pw", "FilePw-4431\n"), 0);
    ck_assert_int_eq(write_file(fixture_dir, "tokens", "FileTok-1-abcdefgh,FileTok-2-abcdefgh\n"),
                     0);
    snprintf(pw_file, sizeof pw_file, "OPS_DB_PASSWORD_FILE=%s/pw", fixture_dir);
    snprintf(tokens_file, sizeof tokens_file, "%s/tokens", fixture_dir);
    const char *const env[] = {
        "SQLGATE_DATABASES=core,app,ops,azure",
        "SQLGATE_LISTEN=0.0.0.0:8080",
        "SQLGATE_API_TOKENS=TokAlpha-77-xyzxyz,TokBeta-88-xyzxyzw",
        "CORE_DB_HOST=db1",
        "CORE_DB_USER=sa",
        "CORE_DB_PASSWORD=PlainPw-9931",
        "APP_DB_URL=mssql://appuser:UrlPw-5520@db2:1433/appdb?encrypt=require",
        "OPS_DB_HOST=db3",
        "OPS_DB_USER=ops",
        pw_file,
        "AZURE_DB_URL=Server=tcp:x.database.windows.net,1433;Database=d;User Id=u;"
        "Password=AdoPw-7781;Encrypt=True",
        NULL};
    run_result r;
    run_cli(CHECK, env, &r);
    ASSERT_EXIT(&r, 0);
    static const char *const secrets[] = {"PlainPw-9931",       "UrlPw-5520",
                                          "FilePw-4431",        "AdoPw-7781",
                                          "TokAlpha-77-xyzxyz", "TokBeta-88-xyzxyzw"};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        ASSERT_NO_SECRET(&r, secrets[i]);
    ASSERT_SETTING(r.out, "SQLGATE_API_TOKENS", "(set, redacted)");
    ASSERT_SETTING(r.out, "CORE_DB_PASSWORD", "(set, redacted)");
    ASSERT_SETTING(r.out, "CORE_DB_URL", "(not set)");
    ASSERT_SETTING(r.out, "APP_DB_URL", "(set, redacted)");
    ASSERT_SETTING(r.out, "APP_DB_PASSWORD", "(set, redacted)");
    ASSERT_SETTING(r.out, "APP_DB_USER", "appuser");
    ASSERT_SETTING(r.out, "APP_DB_HOST", "db2");
    ASSERT_SETTING(r.out, "APP_DB_ENCRYPT", "require");
    ASSERT_SETTING(r.out, "OPS_DB_PASSWORD", "(set, redacted)");
    ASSERT_SETTING(r.out, "OPS_DB_PASSWORD_FILE", pw_file + strlen("OPS_DB_PASSWORD_FILE="));
    ASSERT_SETTING(r.out, "AZURE_DB_URL", "(set, redacted)");
    ASSERT_SETTING(r.out, "AZURE_DB_PASSWORD", "(set, redacted)");
    ASSERT_SETTING(r.out, "AZURE_DB_HOST", "x.database.windows.net");
    run_free(&r);

    /* Tokens from a file: the path is shown, the tokens are not. */
    char tokens_var[PATH_CAP + 32];
    snprintf(tokens_var, sizeof tokens_var, "SQLGATE_API_TOKENS_FILE=%s", tokens_file);
    const char *const env2[] = {"SQLGATE_LISTEN=0.0.0.0:8080", tokens_var, NULL};
    run_cli(CHECK, env2, &r);
    ASSERT_EXIT(&r, 0);
    ASSERT_NO_SECRET(&r, "FileTok-1");
    ASSERT_NO_SECRET(&r, "FileTok-2");
    ASSERT_SETTING(r.out, "SQLGATE_API_TOKENS_FILE", tokens_file);
    ASSERT_SETTING(r.out, "SQLGATE_API_TOKENS", "(not set)");
    ASSERT_CONTAINS(r.out, "2 API tokens");
    run_free(&r);
}
END_TEST

START_TEST(check_config_bad_exits_2_naming_variables)
{
    const char *const env[] = {"SQLGATE_DATABASES=core,app,Bad",
                               "SQLGATE_MAX_ROWS=0",
                               "SQLGATE_LOG_LEVEL=loud",
                               "CORE_DB_HOST=db1",
                               "CORE_DB_POOL_MAX=2",
                               "CORE_DB_POOL_MIN=5",
                               "CORE_DB_PASSWORD=BadCfgPw-1234",
                               "APP_DB_URL=mssql://u:UrlPw-3321@db2:notaport/x",
                               NULL};
    run_result r;
    run_cli(CHECK, env, &r);
    ASSERT_EXIT(&r, EXIT_CONFIG);
    static const char *const named[] = {"SQLGATE_DATABASES", "SQLGATE_MAX_ROWS",
                                        "SQLGATE_LOG_LEVEL", "CORE_DB_POOL_MIN", "APP_DB_URL"};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        ASSERT_CONTAINS(r.err, named[i]);
    ASSERT_NO_SECRET(&r, "BadCfgPw-1234");
    ASSERT_NO_SECRET(&r, "UrlPw-3321");
    ck_assert_msg(strstr(r.out, "configuration is valid") == NULL, "said valid:\n%s", r.out);
    run_free(&r);

    /* The listen rule a start enforces is enforced here too. */
    const char *const open_listen[] = {"SQLGATE_LISTEN=0.0.0.0:8080", NULL};
    run_cli(CHECK, open_listen, &r);
    ASSERT_EXIT(&r, EXIT_CONFIG);
    ASSERT_CONTAINS(r.err, "SQLGATE_LISTEN");
    run_free(&r);

    /* A host name, which a start refuses (it binds an address and never
     * resolves), is refused here too, with the same words. */
    const char *const named_listen[] = {"SQLGATE_LISTEN=somehost:8080", "SQLGATE_API_TOKENS=t1",
                                        NULL};
    run_cli(CHECK, named_listen, &r);
    ASSERT_EXIT(&r, EXIT_CONFIG);
    ASSERT_CONTAINS(r.err, "SQLGATE_LISTEN: a host name is not resolved");
    run_free(&r);
}
END_TEST

/* A loopback TCP socket that listens on a free port; returns the fd. */
/* The shared start checks (cli_check) give --check-config the warning a start
 * logs: encryption required without a CA file verifies no certificate. */
START_TEST(check_config_warns_unverified_certificate)
{
    const char *const env[] = {"SQLGATE_DATABASES=core", "CORE_DB_HOST=db1.example.com",
                               "CORE_DB_ENCRYPT=require", NULL};
    run_result r;
    run_cli(CHECK, env, &r);
    ASSERT_EXIT(&r, 0);
    ASSERT_CONTAINS(r.out, "warning: CORE_DB_ENCRYPT is require but CORE_DB_CA_FILE is not set");
    run_free(&r);

    ck_assert_int_eq(write_file(fixture_dir, "ca.pem", "not checked here\n"), 0);
    char ca[PATH_CAP];
    snprintf(ca, sizeof ca, "CORE_DB_CA_FILE=%s/ca.pem", fixture_dir);
    const char *const env_ca[] = {"SQLGATE_DATABASES=core", "CORE_DB_HOST=db1.example.com",
                                  "CORE_DB_ENCRYPT=require", ca, NULL};
    run_cli(CHECK, env_ca, &r);
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(strstr(r.out, "warning:") == NULL, "warned with a CA file:\n%s", r.out);
    run_free(&r);
}
END_TEST

static int hold_port(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

START_TEST(check_config_never_listens_nor_connects)
{
    int port = 0;
    int fd = hold_port(&port);
    char listen_var[64], db_port[64];
    snprintf(listen_var, sizeof listen_var, "SQLGATE_LISTEN=127.0.0.1:%d", port);
    snprintf(db_port, sizeof db_port, "CORE_DB_PORT=%d", port);
    /* The service port is taken (a start would fail to listen and exit 1),
     * and the SQL Server database points at the same socket (a connection
     * attempt would show up in its accept queue). */
    const char *const env[] = {listen_var, "SQLGATE_DATABASES=core", "CORE_DB_HOST=127.0.0.1",
                               db_port, NULL};
    run_result r;
    run_cli(CHECK, env, &r);
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(r.elapsed_ms < scaled_ms(10000), "--check-config took %lld ms",
                  (long long)r.elapsed_ms);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    ASSERT_SETTING(r.out, "SQLGATE_LISTEN", want);
    ASSERT_SETTING(r.out, "CORE_DB_HOST", "127.0.0.1");
    ck_assert_msg(strstr(r.err, "\"listening\"") == NULL, "it listened:\n%s", r.err);

    int flags = fcntl(fd, F_GETFL);
    ck_assert_int_eq(fcntl(fd, F_SETFL, flags | O_NONBLOCK), 0);
    int c = accept(fd, NULL, NULL);
    int saved = errno;
    if (c >= 0)
        close(c);
    ck_assert_msg(c < 0 && (saved == EAGAIN || saved == EWOULDBLOCK),
                  "--check-config connected to the database port");
    close(fd);
    run_free(&r);
}
END_TEST

static Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, version_prints_name_and_version);
    tcase_add_test(tc, help_lists_every_variable_with_default);
    tcase_add_test(tc, unknown_option_is_usage_error);
    tcase_add_test(tc, check_config_good_prints_effective_values);
    tcase_add_test(tc, check_config_reads_dotenv_like_a_start);
    tcase_add_test(tc, check_config_embedded_and_legacy_modes);
    tcase_add_test(tc, check_config_never_prints_secrets);
    tcase_add_test(tc, check_config_bad_exits_2_naming_variables);
    tcase_add_test(tc, check_config_never_listens_nor_connects);
    tcase_add_test(tc, check_config_warns_unverified_certificate);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    harness_init();
    return check_run(cli_suite());
}
