/* Integration: sqlgate's encryption to SQL Server (TLS inside TDS, through
 * FreeTDS db-lib) against the project's TDS test server speaking TLS as SQL
 * Server does (tests/tds, --encrypt off|on|req|notsup).
 *
 * The certificates are made once per run by tests/tds/make-test-certs.sh
 * ($TDS_MAKE_CERTS) in a temporary directory: a CA, a server certificate it
 * signed for localhost/127.0.0.1, one it signed for another host name, and one
 * signed by another CA. What travelled encrypted is asserted from the server
 * side, with its STATS counters: after a login, a session in TLS sends only
 * TLS records, a clear or login-only session only TDS packets.
 *
 * Every test gets its own tds-testserver and sqlgate (FREETDSCONF=/dev/null,
 * TMPDIR in the test's directory, where sqlgate writes its freetds.conf).
 * The TDS password contains SECRET; no log, health report or error shows it.
 */
#include <check.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "harness.h"
#include "tds_child.h"

#define TDS_USER     "sa"
#define TDS_PASSWORD "Pw-SECRET-8642"
#define TDS_DB       "testdb"
#define CORE_Q       "/v1/databases/core/query"

/* Made once in main, before the tests fork. */
static char g_certs[600];

/* --- The TDS test server ------------------------------------------------------- */

/* Starts tds-testserver with `encrypt` (off|on|req|notsup) and the
 * certificate `cert` (<cert>.pem / <cert>.key in g_certs); waits for its
 * port files. */
static void tds_start(tds_child *t, const char *encrypt, const char *cert)
{
    char cert_file[700], key_file[700];
    snprintf(cert_file, sizeof cert_file, "%s/%s.pem", g_certs, cert);
    snprintf(key_file, sizeof key_file, "%s/%s.key", g_certs, cert);
    const char *const args[] = {"--user", TDS_USER,    "--password", TDS_PASSWORD, "--database",
                                TDS_DB,   "--encrypt", encrypt,      "--cert",     cert_file,
                                "--key",  key_file,    NULL};
    tds_child_start(t, fixture_dir, args);
}

static void tds_cmd(const tds_child *t, const char *cmd)
{
    char reply[256];
    tds_child_ctl(t, cmd, reply, sizeof reply);
}

/* --- The service ------------------------------------------------------------------ */

/* core on the TDS server, with up to three more variables (NULL ends). */
static proc *start_svc(bool wait_ready, const char *const *extra)
{
    env_list e;
    memset(&e, 0, sizeof e);
    env_add(&e, "SQLGATE_LISTEN=127.0.0.1:0");
    env_add(&e, "SQLGATE_DATABASES=core");
    env_add(&e, "SQLGATE_LOG_LEVEL=debug");
    env_add(&e, "FREETDSCONF=/dev/null");
    env_add(&e, "TMPDIR=%s", fixture_dir);
    env_add(&e, "CORE_DB_HOST=127.0.0.1");
    env_add(&e, "CORE_DB_PORT=%d", fixture_tds.port);
    env_add(&e, "CORE_DB_USER=" TDS_USER);
    env_add(&e, "CORE_DB_PASSWORD=" TDS_PASSWORD);
    env_add(&e, "CORE_DB_NAME=" TDS_DB);
    env_add(&e, "CORE_DB_TDS_VERSION=7.4");
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        env_add(&e, "%s", extra[i]);
    return fixture_start_env(&e, wait_ready);
}

/* "CORE_DB_CA_FILE=<certs>/<name>.pem" in buf. */
static const char *ca_var(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "CORE_DB_CA_FILE=%s/%s.pem", g_certs, name);
    return buf;
}

#define ASSERT_NO_SECRET(text)                                                                     \
    ck_assert_msg(strstr((text), "SECRET") == NULL, "a password was shown:\n%s", (text))

/* A query that must work, and what it returned. */
static void query_ok(const proc *p)
{
    http_resp r;
    http_postf(p, CORE_Q, &r, "{s:s}", "sql", "SELECT 40 + 2 AS v, DB_NAME() AS db");
    ASSERT_STATUS(&r, 200);
    ck_assert_int_eq(jint(r.json, "results.0.rows.0.v", -1), 42);
    ck_assert_str_eq(jstr(r.json, "results.0.rows.0.db"), TDS_DB);
    http_resp_free(&r);
}

/* core is down; /health and a query both give DB_UNAVAILABLE with a message
 * containing `why` (and no secret). */
static void assert_core_down_because(const proc *p, const char *why)
{
    json_t *report = proc_wait_db_state(p, "core", "down", scaled_ms(20000));
    ck_assert_msg(report != NULL, "core was never reported down");
    json_decref(report);
    http_resp r;
    http_get(p, "/health", &r);
    ASSERT_STATUS(&r, 503);
    ck_assert_str_eq(jstr(r.json, "databases.core.error.code"), "DB_UNAVAILABLE");
    const char *msg = jstr(r.json, "databases.core.error.message");
    ck_assert_msg(msg != NULL && strstr(msg, why) != NULL, "/health says '%s', wanted '%s'",
                  msg ? msg : "(none)", why);
    ASSERT_NO_SECRET(r.body);
    http_resp_free(&r);

    http_postf(p, CORE_Q, &r, "{s:s}", "sql", "SELECT 1 AS one");
    ASSERT_ERROR(&r, 503, "DB_UNAVAILABLE");
    msg = jstr(r.json, "error.message");
    ck_assert_msg(msg != NULL && strstr(msg, why) != NULL, "the query's error says '%s'",
                  msg ? msg : "(none)");
    ASSERT_NO_SECRET(r.body);
    http_resp_free(&r);
}

/* ===== Tests ======================================================================= */

/* SQL Server out of the box (ENCRYPT_OFF, a certificate): with `request` (the
 * default) only LOGIN7 travels in TLS, then the session is clear. */
START_TEST(request_gets_login_only_encryption)
{
    tds_start(&fixture_tds, "off", "server");
    proc *p = start_svc(true, NULL);
    query_ok(p);
    ck_assert_int_ge(tds_child_stat(&fixture_tds, "sessions_login_only"), 1);
    ck_assert_int_eq(tds_child_stat(&fixture_tds, "login7_encrypted"),
                     tds_child_stat(&fixture_tds, "logins"));
    ck_assert_int_eq(tds_child_stat(&fixture_tds, "sessions_encrypted"), 0);
    ck_assert_int_eq(tds_child_stat(&fixture_tds, "tls_records_after_login"), 0);
    ck_assert_int_gt(tds_child_stat(&fixture_tds, "clear_packets_after_login"), 0);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

/* `request` with CA_FILE: FreeTDS verifies the certificate of the login-only
 * handshake too. */
START_TEST(request_with_ca_file_verifies_login_only_tls)
{
    tds_start(&fixture_tds, "off", "server");
    char ca[700];
    const char *extra[] = {ca_var(ca, sizeof ca, "ca"), NULL};
    proc *p = start_svc(true, extra);
    query_ok(p);
    ck_assert_int_ge(tds_child_stat(&fixture_tds, "sessions_login_only"), 1);
    ck_assert_int_eq(tds_child_stat(&fixture_tds, "tls_records_after_login"), 0);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

/* `off` sends ENCRYPT_NOT_SUP: against SQL Server's default the whole
 * session, login included, is clear (MS-TDS 2.2.6.5). */
START_TEST(off_is_clear_against_default_server)
{
    tds_start(&fixture_tds, "off", "server");
    const char *extra[] = {"CORE_DB_ENCRYPT=off", NULL};
    proc *p = start_svc(true, extra);
    query_ok(p);
    ck_assert_int_eq(tds_child_stat(&fixture_tds, "tls_handshakes"), 0);
    ck_assert_int_eq(tds_child_stat(&fixture_tds, "login7_encrypted"), 0);
    ck_assert_int_gt(tds_child_stat(&fixture_tds, "clear_packets_after_login"), 0);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

/* `require` with CA_FILE against SQL Server's default: the whole session is
 * TLS, and nothing but TLS records arrives after the login. */
START_TEST(require_encrypts_whole_session)
{
    tds_start(&fixture_tds, "off", "server");
    char ca[700];
    const char *extra[] = {"CORE_DB_ENCRYPT=require", ca_var(ca, sizeof ca, "ca"), NULL};
    proc *p = start_svc(true, extra);
    for (int i = 0; i < 3; i++)
        query_ok(p);
    ck_assert_int_ge(tds_child_stat(&fixture_tds, "sessions_encrypted"), 1);
    ck_assert_int_eq(tds_child_stat(&fixture_tds, "sessions_login_only"), 0);
    ck_assert_int_ge(tds_child_stat(&fixture_tds, "tls_records_after_login"), 3);
    ck_assert_int_eq(tds_child_stat(&fixture_tds, "clear_packets_after_login"), 0);
    /* The warning about an unverified certificate is for require without a CA. */
    char *err = proc_stderr(p);
    ck_assert_msg(strstr(err, "not verified") == NULL, "%s", err);
    free(err);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

/* A server that forces encryption (ENCRYPT_ON / ENCRYPT_REQ) gets a whole
 * encrypted session from `request`, certificate unverified without CA_FILE. */
START_TEST(forcing_server_encrypts_request_session)
{
    tds_start(&fixture_tds, _i == 0 ? "on" : "req", "server");
    proc *p = start_svc(true, NULL);
    query_ok(p);
    ck_assert_int_ge(tds_child_stat(&fixture_tds, "sessions_encrypted"), 1);
    ck_assert_int_gt(tds_child_stat(&fixture_tds, "tls_records_after_login"), 0);
    ck_assert_int_eq(tds_child_stat(&fixture_tds, "clear_packets_after_login"), 0);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

/* A certificate from another CA (0), or for another host name (1), with
 * require; from another CA with request (2: the login-only handshake is
 * verified too); the test CA's, with CA_FILE=system (3: the OS trust store
 * does not know the test CA): DB_UNAVAILABLE saying the certificate was not
 * trusted, and no LOGIN7 reached the server. */
START_TEST(untrusted_certificate_fails)
{
    static const char *const certs[] = {"other", "wronghost", "other", "server"};
    tds_start(&fixture_tds, "off", certs[_i]);
    char ca[700];
    if (_i == 3)
        snprintf(ca, sizeof ca, "CORE_DB_CA_FILE=system");
    else
        ca_var(ca, sizeof ca, "ca");
    const char *extra[] = {ca, "CORE_DB_RETRY_MAX_MS=500",
                           _i == 2 ? "CORE_DB_ENCRYPT=request" : "CORE_DB_ENCRYPT=require", NULL};
    proc *p = start_svc(false, extra);
    assert_core_down_because(p, "certificate was not trusted");
    ck_assert_int_ge(tds_child_stat(&fixture_tds, "tls_failures"), 1);
    ck_assert_int_eq(tds_child_stat(&fixture_tds, "logins"), 0);
    ck_assert_int_eq(tds_child_stat(&fixture_tds, "login7_encrypted"), 0);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

START_TEST(require_against_server_without_tls)
{
    tds_start(&fixture_tds, "notsup", "server");
    const char *extra[] = {"CORE_DB_ENCRYPT=require", NULL};
    proc *p = start_svc(false, extra);
    assert_core_down_because(p, "server does not support it");
    ck_assert_int_eq(tds_child_stat(&fixture_tds, "logins"), 0);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

START_TEST(off_against_server_that_requires_tls)
{
    tds_start(&fixture_tds, "on", "server");
    const char *extra[] = {"CORE_DB_ENCRYPT=off", NULL};
    proc *p = start_svc(false, extra);
    assert_core_down_because(p, "server requires encryption");
    ck_assert_int_ge(tds_child_stat(&fixture_tds, "tls_refused"), 1);
    ck_assert_int_eq(tds_child_stat(&fixture_tds, "logins"), 0);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

/* A handshake the server never answers ends at the connect timeout (plus
 * db-lib's one-second tick), not later: the health check's login has
 * max(CONNECT_TIMEOUT_MS, HEALTH_TIMEOUT_MS), here the former. */
START_TEST(stalled_handshake_bounded_by_connect_timeout)
{
    tds_start(&fixture_tds, "off", "server");
    tds_cmd(&fixture_tds, "SET tls_stall 1");
    const char *extra[] = {"CORE_DB_ENCRYPT=require", "CORE_DB_CONNECT_TIMEOUT_MS=1500",
                           "CORE_DB_HEALTH_TIMEOUT_MS=1000", "CORE_DB_RETRY_MAX_MS=60000", NULL};
    int64_t t0 = now_ms();
    proc *p = start_svc(false, extra);
    json_t *report = proc_wait_db_state(p, "core", "down", scaled_ms(20000));
    int64_t took = now_ms() - t0;
    ck_assert_msg(report != NULL, "core was never reported down");
    const char *why = jstr(report, "databases.core.error.message");
    ck_assert_msg(why != NULL &&
                      (strstr(why, "timed out") != NULL || strstr(why, "in time") != NULL),
                  "/health says '%s'", why ? why : "(none)");
    json_decref(report);
    ck_assert_msg(took < 1500 + 1000 + scaled_ms(4000), "down after %lld ms", (long long)took);
    ck_assert_int_eq(tds_child_stat(&fixture_tds, "logins"), 0);
    ck_assert_int_eq(tds_child_stat(&fixture_tds, "login7_encrypted"), 0);

    t0 = now_ms();
    http_resp r;
    http_postf(p, CORE_Q, &r, "{s:s}", "sql", "SELECT 1 AS one");
    ASSERT_ERROR(&r, 503, "DB_UNAVAILABLE");
    http_resp_free(&r);
    took = now_ms() - t0;
    ck_assert_msg(took < 1500 + 1000 + scaled_ms(4000), "a query waited %lld ms", (long long)took);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

/* A server that drops the connection mid-handshake is a down server: retried
 * with backoff (not in a tight loop), and the database comes back once the
 * server behaves. */
START_TEST(dropped_handshake_retried_with_backoff)
{
    tds_start(&fixture_tds, "off", "server");
    tds_cmd(&fixture_tds, "SET tls_drop 1");
    const char *extra[] = {"CORE_DB_ENCRYPT=require", "CORE_DB_RETRY_MAX_MS=400",
                           "CORE_DB_HEALTH_INTERVAL_MS=300", NULL};
    proc *p = start_svc(false, extra);
    assert_core_down_because(p, "EOF");
    long before = tds_child_stat(&fixture_tds, "tls_failures");
    sleep_ms(2000);
    long tries = tds_child_stat(&fixture_tds, "tls_failures") - before;
    /* Backoff capped at 400 ms: a few tries in 2 s, never a tight loop. */
    ck_assert_msg(tries >= 2 && tries <= 40, "%ld handshakes in 2 s", tries);
    ck_assert_int_eq(tds_child_stat(&fixture_tds, "logins"), 0);

    tds_cmd(&fixture_tds, "RESET");
    json_t *report = proc_wait_db_state(p, "core", "ready", 400 + 300 + scaled_ms(5000));
    ck_assert_msg(report != NULL, "core did not recover once the handshake worked");
    json_decref(report);
    query_ok(p);
    ck_assert_int_ge(tds_child_stat(&fixture_tds, "sessions_encrypted"), 1);
    assert_stderr_lacks(p, "SECRET");
}
END_TEST

static Suite *tls_suite(void)
{
    Suite *s = suite_create("integration_tls");
    TCase *tc = tcase_create("tls");
    tcase_add_checked_fixture(tc, fixture_tds_setup, fixture_tds_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, request_gets_login_only_encryption);
    tcase_add_test(tc, request_with_ca_file_verifies_login_only_tls);
    tcase_add_test(tc, off_is_clear_against_default_server);
    tcase_add_test(tc, require_encrypts_whole_session);
    tcase_add_loop_test(tc, forcing_server_encrypts_request_session, 0, 2);
    tcase_add_loop_test(tc, untrusted_certificate_fails, 0, 4);
    tcase_add_test(tc, require_against_server_without_tls);
    tcase_add_test(tc, off_against_server_that_requires_tls);
    suite_add_tcase(s, tc);
    /* Bounds in time (a login of 1.5 s, tries per second) cannot hold at
     * memcheck's slowdown; the sanitizer runs check their memory. */
    tc = tcase_create("tls_timing");
    tcase_add_checked_fixture(tc, fixture_tds_setup, fixture_tds_teardown);
    tcase_set_timeout(tc, 120);
    tcase_set_tags(tc, "timing");
    tcase_add_test(tc, stalled_handshake_bounded_by_connect_timeout);
    tcase_add_test(tc, dropped_handshake_retried_with_backoff);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    harness_init();
    const char *script = getenv("TDS_MAKE_CERTS");
    char *dir = tmp_dir_new();
    if (script == NULL || dir == NULL) {
        fprintf(stderr, "TDS_MAKE_CERTS is not set or no temporary directory\n");
        return EXIT_FAILURE;
    }
    snprintf(g_certs, sizeof g_certs, "%s/certs", dir);
    char cmd[1500];
    snprintf(cmd, sizeof cmd, "'%s' '%s'", script, g_certs);
    if (system(cmd) != 0) {
        fprintf(stderr, "%s failed: cannot make the test certificates\n", cmd);
        return EXIT_FAILURE;
    }
    int status = check_run(tls_suite());
    tmp_dir_free(dir);
    return status;
}
