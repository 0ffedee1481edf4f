/* The TDS test server as a child process (tds_child.h). */
#include "tds_child.h"

#include <check.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "harness.h"

#define ARGS_MAX 48

static int read_port_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    int port = 0;
    if (fscanf(f, "%d", &port) != 1)
        port = 0;
    fclose(f);
    return port;
}

void tds_child_start(tds_child *t, const char *dir, const char *const *args)
{
    static int starts; /* names the files of each start in this process */
    const char *bin = getenv("TDS_TESTSERVER");
    ck_assert_msg(bin != NULL && access(bin, X_OK) == 0,
                  "TDS_TESTSERVER is not set to an executable (%s)", bin ? bin : "unset");
    ck_assert_msg(t->pid == 0, "the TDS test server is already running");
    int n = ++starts;
    char port_file[700], cport_file[700], out_file[700];
    snprintf(port_file, sizeof port_file, "%s/tds-port-%d", dir, n);
    snprintf(cport_file, sizeof cport_file, "%s/tds-cport-%d", dir, n);
    snprintf(out_file, sizeof out_file, "%s/tds-out-%d.log", dir, n);

    char *argv[ARGS_MAX + 6];
    size_t k = 0;
    int want_port = 0;
    argv[k++] = (char *)bin;
    for (size_t i = 0; args[i] != NULL; i++) {
        ck_assert_uint_lt(i, ARGS_MAX);
        if (strcmp(args[i], "--port") == 0 && args[i + 1] != NULL)
            want_port = atoi(args[i + 1]);
        argv[k++] = (char *)args[i];
    }
    argv[k++] = "--port-file";
    argv[k++] = port_file;
    argv[k++] = "--control-port-file";
    argv[k++] = cport_file;
    argv[k] = NULL;

    int out = open(out_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_int_ge(out, 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* Only async-signal-safe calls until execv. */
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
        if (getppid() != parent)
            _exit(127);
        if (dup2(out, 1) < 0 || dup2(out, 2) < 0)
            _exit(126);
        execv(bin, argv);
        _exit(127);
    }
    close(out);
    t->pid = pid;
    snprintf(t->log, sizeof t->log, "%s", out_file);
    int64_t deadline = now_ms() + scaled_ms(10000);
    while ((t->port = read_port_file(port_file)) == 0 ||
           (t->cport = read_port_file(cport_file)) == 0) {
        int st;
        ck_assert_msg(waitpid(pid, &st, WNOHANG) == 0, "tds-testserver exited at start (see %s)",
                      out_file);
        ck_assert_msg(now_ms() < deadline, "tds-testserver wrote no port files in time");
        sleep_ms(20);
    }
    if (want_port > 0)
        ck_assert_int_eq(t->port, want_port);
}

void tds_child_stop(tds_child *t)
{
    if (t->pid <= 0)
        return;
    kill(t->pid, SIGTERM);
    int64_t deadline = now_ms() + 5000;
    while (waitpid(t->pid, NULL, WNOHANG) == 0) {
        if (now_ms() >= deadline) {
            kill(t->pid, SIGKILL);
            waitpid(t->pid, NULL, 0);
            break;
        }
        sleep_ms(10);
    }
    bool reported = sanitizer_report_in_file(t->log, "tds-testserver");
    memset(t, 0, sizeof *t);
    ck_assert_msg(!reported, "tds-testserver printed a sanitizer report (above)");
}

void tds_child_ctl(const tds_child *t, const char *cmd, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)t->cport);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "control connect: %s",
                  strerror(errno));
    char line[256];
    int n = snprintf(line, sizeof line, "%s\n", cmd);
    ck_assert_int_eq(send(fd, line, (size_t)n, MSG_NOSIGNAL), n);
    size_t got = 0;
    while (got + 1 < cap) {
        ssize_t r = recv(fd, out + got, 1, 0);
        if (r <= 0 || out[got] == '\n')
            break;
        got++;
    }
    out[got] = '\0';
    close(fd);
    ck_assert_msg(strncmp(out, "OK", 2) == 0, "control %s: %s", cmd, out);
}

long tds_child_stat(const tds_child *t, const char *name)
{
    char reply[2048], key[64];
    tds_child_ctl(t, "STATS", reply, sizeof reply);
    snprintf(key, sizeof key, " %s=", name);
    const char *p = strstr(reply, key);
    ck_assert_msg(p != NULL, "STATS has no %s: %s", name, reply);
    return strtol(p + strlen(key), NULL, 10);
}

tds_child fixture_tds;

void fixture_tds_setup(void)
{
    fixture_setup();
    memset(&fixture_tds, 0, sizeof fixture_tds);
}

void fixture_tds_teardown(void)
{
    fixture_stop();
    tds_child_stop(&fixture_tds);
    fixture_teardown();
}
