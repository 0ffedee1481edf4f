/* The project's TDS test server ($TDS_TESTSERVER, tests/tds) as a child of
 * the test process, for the integration suites that put a SQL Server
 * database behind sqlgate. The child gets PR_SET_PDEATHSIG, so it dies with
 * the test even when Check ends a failed test with _exit(); tds_child_stop
 * ends it otherwise. Every function fails the running test on a problem. */
#ifndef SQLGATE_TDS_CHILD_H
#define SQLGATE_TDS_CHILD_H

#include <stddef.h>
#include <sys/types.h>

typedef struct tds_child {
    pid_t pid;     /* 0: not running */
    int port;      /* TDS */
    int cport;     /* control channel */
    char log[700]; /* its stdout and stderr */
} tds_child;

/* Starts the server with args (borrowed, NULL-terminated: its options, e.g.
 * "--user", "sa", ...; this adds the port files) and waits (10 s, scaled)
 * until it has written its ports. Its files go in dir, named per start.
 * When args hold "--port N" with N > 0, the port must be N. */
void tds_child_start(tds_child *t, const char *dir, const char *const *args);

/* SIGTERM, then SIGKILL after 5 s; fails the test when the server printed a
 * sanitizer report. Does nothing when t is not running; leaves t zeroed. */
void tds_child_stop(tds_child *t);

/* Sends one control command; the reply line (without the newline) in out
 * must start with "OK". */
void tds_child_ctl(const tds_child *t, const char *cmd, char *out, size_t cap);

/* One counter from the control channel's STATS. */
long tds_child_stat(const tds_child *t, const char *name);

/* The fixture of the suites with a TDS server behind sqlgate: the harness's
 * (fixture_dir, fixture_svc) plus this server, which the test starts. */
extern tds_child fixture_tds;

/* Checked setup: fixture_setup, and fixture_tds not running. */
void fixture_tds_setup(void);

/* Stops the service, then the server, then removes the directory. */
void fixture_tds_teardown(void);

#endif
