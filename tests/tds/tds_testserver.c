/* tds-testserver: the TDS test server as a standalone program, for the
 * integration and benchmark suites and the conformance scripts.
 *
 *   tds-testserver --user U --password P [--port N] [--database D]
 *                  [--sqlite PATH|:memory:] [--port-file F]
 *                  [--control-port N] [--control-port-file F]
 *                  [--readonly-user U2 --readonly-password P2]
 *                  [--encrypt off|on|req|notsup --cert F --key F]
 *
 * --encrypt is what PRELOGIN answers (tds_server.h, tds_server_encrypt):
 * notsup (the default) never encrypts; off is SQL Server's default
 * (login-only encryption for a client that can, the whole session for one
 * that asks); on and req encrypt the whole session and refuse a client that
 * cannot. --cert and --key are PEM files.
 *
 * Prints "listening on 127.0.0.1:PORT" and "control on 127.0.0.1:CPORT" on
 * stdout, writes the ports to the files if asked (written whole, then
 * renamed), and stops on SIGTERM or SIGINT (exit 0).
 *
 * Control channel: a line protocol on the second loopback port, one command
 * per line, one reply line each ("OK ..." or "ERR reason"):
 *   SET <knob> <value>   knobs: refuse_login login_delay_ms login_hang
 *                        query_delay_ms query_hang close_mid_result
 *                        garbage_token raise_error ignore_attention
 *                        tls_stall tls_drop
 *   GET <knob>           -> OK <value>
 *   RESET                every knob to 0, filter cleared
 *   FILTER [substring]   query knobs only for SQL containing it (none: all)
 *   STATS                -> OK connections_opened=N connections_closed=N
 *                           connections_active=N connections_refused=N logins=N
 *                           login_failures=N requests=N attentions=N resets=N
 *                           tls_handshakes=N tls_failures=N tls_refused=N
 *                           login7_encrypted=N sessions_login_only=N
 *                           sessions_encrypted=N tls_records_after_login=N
 *                           clear_packets_after_login=N
 *   PING                 -> OK
 * e.g. from a shell: exec 3<>/dev/tcp/127.0.0.1/$CPORT; echo "SET query_hang 1" >&3;
 * read -r reply <&3. Knobs can also be set over TDS itself with
 * EXEC sqlgate_test_knob 'query_hang', 1 (and 'reset', 0).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tds_server.h"

#define MAX_CONTROL  16
#define LINE_MAX_LEN 1024

/* The signal handler's only way out: written by the handler, read by main. */
static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    ssize_t w = write(signal_pipe[1], "s", 1);
    (void)w;
    errno = saved;
}

typedef struct control_conn {
    int fd;
    char buf[LINE_MAX_LEN];
    size_t len;
} control_conn;

static void usage(void)
{
    fprintf(stderr, "usage: tds-testserver --user U --password P [--port N] [--database D]\n"
                    "       [--sqlite PATH|:memory:] [--port-file F] [--control-port N]\n"
                    "       [--control-port-file F]\n"
                    "       [--readonly-user U2 --readonly-password P2]\n"
                    "       [--encrypt off|on|req|notsup --cert F --key F]\n");
}

static int write_port_file(const char *path, int port)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

static int parse_port(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0 || v > 65535)
        return -1;
    *out = (int)v;
    return 0;
}

static int control_listen(int port, int *bound)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sa);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        close(fd);
        return -1;
    }
    *bound = ntohs(sa.sin_port);
    return fd;
}

static void reply(int fd, const char *line)
{
    size_t n = strlen(line), off = 0;
    while (off < n) {
        ssize_t w = send(fd, line + off, n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        off += (size_t)w;
    }
}

static void command(tds_server *srv, int fd, char *line)
{
    char out[1024];
    char *save = NULL;
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' '))
        line[--n] = '\0';
    char *rest = line;
    char *verb = strtok_r(line, " ", &save);
    if (verb == NULL) {
        reply(fd, "ERR empty command\n");
        return;
    }
    if (strcmp(verb, "PING") == 0) {
        reply(fd, "OK\n");
    } else if (strcmp(verb, "RESET") == 0) {
        tds_server_reset_knobs(srv);
        reply(fd, "OK\n");
    } else if (strcmp(verb, "FILTER") == 0) {
        rest = line + strlen(verb) + (n > strlen(verb) ? 1 : 0);
        reply(fd, tds_server_set_query_filter(srv, rest) == 0 ? "OK\n" : "ERR out of memory\n");
    } else if (strcmp(verb, "SET") == 0 || strcmp(verb, "GET") == 0) {
        char *name = strtok_r(NULL, " ", &save);
        char *value = strtok_r(NULL, " ", &save);
        tds_knob k;
        if (name == NULL || tds_knob_from_name(name, &k) != 0) {
            reply(fd, "ERR unknown knob\n");
            return;
        }
        if (verb[0] == 'G') {
            snprintf(out, sizeof(out), "OK %ld\n", tds_server_get_knob(srv, k));
            reply(fd, out);
            return;
        }
        char *end;
        long v = value ? strtol(value, &end, 10) : -1;
        if (value == NULL || *end != '\0' || tds_server_set_knob(srv, k, v) != 0) {
            reply(fd, "ERR bad value\n");
            return;
        }
        reply(fd, "OK\n");
    } else if (strcmp(verb, "STATS") == 0) {
        tds_server_stats st;
        tds_server_get_stats(srv, &st);
        snprintf(
            out, sizeof(out),
            "OK connections_opened=%llu connections_closed=%llu connections_active=%llu "
            "connections_refused=%llu logins=%llu login_failures=%llu requests=%llu "
            "attentions=%llu resets=%llu tls_handshakes=%llu tls_failures=%llu "
            "tls_refused=%llu login7_encrypted=%llu sessions_login_only=%llu "
            "sessions_encrypted=%llu tls_records_after_login=%llu "
            "clear_packets_after_login=%llu\n",
            (unsigned long long)st.connections_opened, (unsigned long long)st.connections_closed,
            (unsigned long long)st.connections_active, (unsigned long long)st.connections_refused,
            (unsigned long long)st.logins, (unsigned long long)st.login_failures,
            (unsigned long long)st.requests, (unsigned long long)st.attentions,
            (unsigned long long)st.resets, (unsigned long long)st.tls_handshakes,
            (unsigned long long)st.tls_failures, (unsigned long long)st.tls_refused,
            (unsigned long long)st.login7_encrypted, (unsigned long long)st.sessions_login_only,
            (unsigned long long)st.sessions_encrypted,
            (unsigned long long)st.tls_records_after_login,
            (unsigned long long)st.clear_packets_after_login);
        reply(fd, out);
    } else {
        reply(fd, "ERR unknown command\n");
    }
}

/* Reads what is available; runs each complete line. Returns -1 to close. */
static int control_input(tds_server *srv, control_conn *cc)
{
    ssize_t r = recv(cc->fd, cc->buf + cc->len, sizeof(cc->buf) - 1 - cc->len, 0);
    if (r < 0 && errno == EINTR)
        return 0;
    if (r <= 0)
        return -1;
    cc->len += (size_t)r;
    cc->buf[cc->len] = '\0';
    char *nl;
    while ((nl = memchr(cc->buf, '\n', cc->len)) != NULL) {
        *nl = '\0';
        command(srv, cc->fd, cc->buf);
        size_t used = (size_t)(nl - cc->buf) + 1;
        memmove(cc->buf, nl + 1, cc->len - used);
        cc->len -= used;
        cc->buf[cc->len] = '\0';
    }
    if (cc->len >= sizeof(cc->buf) - 1) {
        reply(cc->fd, "ERR line too long\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    tds_server_options opt = {.database = "sqlgate", .sqlite_path = ":memory:"};
    const char *port_file = NULL, *control_file = NULL;
    int control_port = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            usage();
            return 2;
        }
        i++;
        if (strcmp(a, "--port") == 0) {
            if (parse_port(v, &opt.port) != 0) {
                usage();
                return 2;
            }
        } else if (strcmp(a, "--control-port") == 0) {
            if (parse_port(v, &control_port) != 0) {
                usage();
                return 2;
            }
        } else if (strcmp(a, "--user") == 0) {
            opt.user = v;
        } else if (strcmp(a, "--password") == 0) {
            opt.password = v;
        } else if (strcmp(a, "--readonly-user") == 0) {
            opt.readonly_user = v;
        } else if (strcmp(a, "--readonly-password") == 0) {
            opt.readonly_password = v;
        } else if (strcmp(a, "--database") == 0) {
            opt.database = v;
        } else if (strcmp(a, "--sqlite") == 0) {
            opt.sqlite_path = v;
        } else if (strcmp(a, "--port-file") == 0) {
            port_file = v;
        } else if (strcmp(a, "--control-port-file") == 0) {
            control_file = v;
        } else if (strcmp(a, "--encrypt") == 0) {
            static const char *const modes[] = {"notsup", "off", "on", "req"};
            size_t m = 0;
            while (m < 4 && strcmp(v, modes[m]) != 0)
                m++;
            if (m == 4) {
                usage();
                return 2;
            }
            opt.encrypt = (tds_server_encrypt)m;
        } else if (strcmp(a, "--cert") == 0) {
            opt.cert_file = v;
        } else if (strcmp(a, "--key") == 0) {
            opt.key_file = v;
        } else {
            usage();
            return 2;
        }
    }
    if (opt.user == NULL || opt.password == NULL) {
        usage();
        return 2;
    }
    if (pipe(signal_pipe) != 0) {
        perror("pipe");
        return 1;
    }
    (void)fcntl(signal_pipe[1], F_SETFL, O_NONBLOCK);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512];
    tds_server *srv = tds_server_start(&opt, err, sizeof(err));
    if (srv == NULL) {
        fprintf(stderr, "tds-testserver: %s\n", err);
        return 1;
    }
    int cport = 0;
    int cfd = control_listen(control_port, &cport);
    if (cfd < 0) {
        fprintf(stderr, "tds-testserver: control port %d: %s\n", control_port, strerror(errno));
        tds_server_stop(srv);
        return 1;
    }
    int port = tds_server_port(srv);
    if ((port_file && write_port_file(port_file, port) != 0) ||
        (control_file && write_port_file(control_file, cport) != 0)) {
        fprintf(stderr, "tds-testserver: cannot write a port file: %s\n", strerror(errno));
        close(cfd);
        tds_server_stop(srv);
        return 1;
    }
    printf("listening on 127.0.0.1:%d\ncontrol on 127.0.0.1:%d\n", port, cport);
    fflush(stdout);

    control_conn conns[MAX_CONTROL];
    size_t nconns = 0;
    for (;;) {
        struct pollfd pf[MAX_CONTROL + 2];
        pf[0] = (struct pollfd){.fd = signal_pipe[0], .events = POLLIN};
        pf[1] = (struct pollfd){.fd = cfd, .events = POLLIN};
        for (size_t i = 0; i < nconns; i++)
            pf[i + 2] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
        int n = poll(pf, nconns + 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || pf[0].revents)
            break;
        for (size_t i = nconns; i > 0; i--) {
            if (pf[i + 1].revents && control_input(srv, &conns[i - 1]) != 0) {
                close(conns[i - 1].fd);
                conns[i - 1] = conns[--nconns];
            }
        }
        if (pf[1].revents & POLLIN) {
            int fd = accept(cfd, NULL, NULL);
            if (fd >= 0 && nconns < MAX_CONTROL) {
                conns[nconns].fd = fd;
                conns[nconns].len = 0;
                nconns++;
            } else if (fd >= 0) {
                reply(fd, "ERR too many control connections\n");
                close(fd);
            }
        }
    }
    for (size_t i = 0; i < nconns; i++)
        close(conns[i].fd);
    close(cfd);
    tds_server_stop(srv);
    return 0;
}
