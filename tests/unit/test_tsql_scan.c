/* Unit tests of the T-SQL batch scan (src/lib/drivers/tsql_scan.c) that
 * decides, for each batch the SQL Server driver runs, whether the pooled
 * connection must be reset, closed or checked for an open transaction. The
 * FreeTDS suite (test_freetds.c) shows the same decisions on the wire. */
#include <check.h>
#include <stdbool.h>
#include <stdlib.h>

#include "check_main.h"
#include "tsql_scan.h"

typedef struct {
    const char *sql;
    bool changes_session, unresettable, may_open_tran, tran_options;
} scan_case;

static const scan_case cases[] = {
    /* Plain reads: nothing to undo. */
    {"SELECT id, name, score FROM small WHERE id = @id", false, false, false, false},
    {"  (select 1)", false, false, false, false},
    {"WITH t AS (SELECT 1 AS x) SELECT x FROM t", false, false, false, false},
    {"select @set, @insert from t", false, false, false, false},
    {"SELECT settings, useful, opened FROM t", false, false, false, false},
    /* Anything else before or in the batch: reset. */
    {"", true, false, false, false},
    {"   ", true, false, false, false},
    {"-- note\nSELECT 1", true, false, false, false},
    {"/* x */ SELECT 1", true, false, false, false},
    {"SELECT * INTO t2 FROM t", true, false, false, false},
    {"SELECT * FROM #tmp", true, false, false, false},
    {"SELECT 1; SET NOCOUNT ON", true, false, false, false},
    {"select 1 waitfor delay '00:00:01'", true, false, false, false},
    {"UPDATE t SET a = 1", true, false, false, false},
    {"INSERT INTO t VALUES (1)", true, false, false, false},
    {"@x", true, false, false, false},
    {"SELECTx 1", true, false, false, false},
    /* Transactions: checked afterwards. */
    {"BEGIN TRAN", true, false, true, false},
    {"begin transaction; update t set a = 1", true, false, true, false},
    {"SELECT * FROM transfers", false, false, true, false},
    {"EXEC dbo.p", true, false, true, false},
    {"SET IMPLICIT_TRANSACTIONS ON", true, false, true, true},
    {"set ansi_defaults on", true, false, false, true},
    /* What sp_reset_connection does not undo: the connection is closed. */
    {"EXECUTE AS USER = 'x'", true, true, true, false},
    {"exec\n\tas login = 'x'", true, true, true, false},
    {"SELECT 1 EXEC AS USER = 'x'", true, true, true, false},
    {"x$exec as user", true, true, true, false},
    {"EXEC ASx", true, false, true, false},
    {"EXEC AS_x", true, false, true, false},
    {"EXECAS user", true, false, true, false},
    {"EXEC(AS)", true, false, true, false},
    {"@exec as", true, false, true, false},
    {"SETUSER 'x'", true, true, false, false},
    {"EXEC sp_setapprole 'r', 'p'", true, true, true, false},
    {"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", true, true, true, false},
    {"SELECT isolation FROM t", false, true, false, false},
};

START_TEST(scan_table)
{
    const scan_case *c = &cases[_i];
    tsql_traits t;
    tsql_scan(c->sql, &t);
    ck_assert_msg(t.changes_session == c->changes_session, "changes_session of [%s]", c->sql);
    ck_assert_msg(t.unresettable == c->unresettable, "unresettable of [%s]", c->sql);
    ck_assert_msg(t.may_open_tran == c->may_open_tran, "may_open_tran of [%s]", c->sql);
    ck_assert_msg(t.tran_options == c->tran_options, "tran_options of [%s]", c->sql);
}
END_TEST

START_TEST(scan_non_ascii_is_not_a_word)
{
    /* Bytes above 0x7f end a word: "s\xc3\xa9t" is not SET, and UTF-8
     * letters before the first word are something unusual. */
    tsql_traits t;
    tsql_scan("SELECT s\xc3\xa9t FROM t", &t);
    ck_assert(!t.changes_session);
    tsql_scan("\xc3\xa9 SELECT 1", &t);
    ck_assert(t.changes_session);
}
END_TEST

START_TEST(scan_counts_dml_words)
{
    static const struct {
        const char *sql;
        unsigned dml;
    } c[] = {
        {"SELECT 1", 0},
        {"UPDATE t SET a = @update WHERE b = 1", 1},
        {"INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)", 2},
        {"insert into t values (@x) update t set a=1 delete from t merge t using s on 1=1", 4},
        {"SELECT inserted, updates, deleted FROM t", 0},
        {"SELECT 'insert' + N'update'", 2}, /* lexical: words in strings count too */
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        tsql_traits t;
        tsql_scan(c[i].sql, &t);
        ck_assert_msg(t.dml_words == c[i].dml, "dml_words of [%s]: %u, expected %u", c[i].sql,
                      (unsigned)t.dml_words, c[i].dml);
    }
}
END_TEST

static Suite *tsql_scan_suite(void)
{
    Suite *s = suite_create("tsql_scan");
    TCase *tc = tcase_create("scan");
    tcase_add_loop_test(tc, scan_table, 0, (int)(sizeof cases / sizeof cases[0]));
    tcase_add_test(tc, scan_non_ascii_is_not_a_word);
    tcase_add_test(tc, scan_counts_dml_words);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(tsql_scan_suite());
}
