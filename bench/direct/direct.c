/* direct: the baseline sqlgate is measured against -- the same statements
 * run straight through FreeTDS db-lib (or SQLite), with no HTTP in between.
 *
 *   direct loop  --server H:P --user U --password P --database D
 *                --threads N --seconds S --sql SQL [--int-param NAME=V]
 *       N threads, each with its own DBPROCESS, run SQL in a loop for S
 *       seconds (all threads start together after their logins) and read
 *       every column of every row. With --int-param the statement goes as
 *       sp_executesql with one bigint parameter, exactly as sqlgate sends a
 *       request with {"params": {NAME: V}}.
 *   direct fetch --server H:P ... --sql SQL      (or --sqlite PATH --sql SQL)
 *       Runs SQL once and reads every column of every row: the driver's own
 *       fetch rate, and the time to the first row.
 *
 * Prints one JSON object on stdout. Exit status 1 on any database error.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sybfront.h>
#include <sybdb.h>
#include <time.h>

typedef struct options {
    const char *mode;
    const char *server;
    const char *user;
    const char *password;
    const char *database;
    const char *sqlite_path;
    const char *sql;
    const char *param_name; /* with '@', or NULL */
    long long param_value;
    int threads;
    double seconds;
} options;

typedef struct worker {
    const options *opt;
    DBPROCESS *dbp;
    pthread_barrier_t *start;
    double stop_at;
    uint64_t done;
    uint64_t checksum; /* keeps the reads from being optimised away */
    bool failed;
} worker;

static atomic_bool any_failed;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int on_error(DBPROCESS *dbp, int severity, int dberr, int oserr, char *dberrstr,
                    char *oserrstr)
{
    fprintf(stderr, "direct: db-lib error %d: %s\n", dberr, dberrstr ? dberrstr : "");
    atomic_store(&any_failed, true);
    return INT_CANCEL;
}

static int on_message(DBPROCESS *dbp, DBINT msgno, int msgstate, int severity, char *msgtext,
                      char *srvname, char *procname, int line)
{
    if (severity > 10) {
        fprintf(stderr, "direct: server error %ld: %s\n", (long)msgno, msgtext ? msgtext : "");
        atomic_store(&any_failed, true);
    }
    return 0;
}

static DBPROCESS *login(const options *opt)
{
    LOGINREC *l = dblogin();
    if (l == NULL)
        return NULL;
    DBSETLUSER(l, opt->user);
    DBSETLPWD(l, opt->password);
    DBSETLAPP(l, "sqlgate-bench-direct");
    DBSETLCHARSET(l, "UTF-8");
    DBSETLVERSION(l, DBVERSION_74);
    if (opt->database != NULL)
        DBSETLDBNAME(l, opt->database);
    DBPROCESS *dbp = dbopen(l, opt->server);
    dbloginfree(l);
    return dbp;
}

/* Sends the statement: a plain batch, or sp_executesql with one bigint. */
static bool send(DBPROCESS *dbp, const options *opt)
{
    if (opt->param_name == NULL)
        return dbcmd(dbp, opt->sql) != FAIL && dbsqlexec(dbp) != FAIL;
    char decl[160];
    snprintf(decl, sizeof decl, "%s bigint", opt->param_name);
    DBBIGINT v = opt->param_value;
    return dbrpcinit(dbp, "sp_executesql", 0) != FAIL &&
           dbrpcparam(dbp, "@stmt", 0, SYBVARCHAR, -1, (DBINT)strlen(opt->sql), (BYTE *)opt->sql) !=
               FAIL &&
           dbrpcparam(dbp, "@params", 0, SYBVARCHAR, -1, (DBINT)strlen(decl), (BYTE *)decl) !=
               FAIL &&
           dbrpcparam(dbp, (char *)opt->param_name, 0, SYBINT8, -1, -1, (BYTE *)&v) != FAIL &&
           dbrpcsend(dbp) != FAIL && dbsqlok(dbp) != FAIL;
}

/* Reads every column of every row of every result; returns the row count
 * or -1. *first_row receives the time the first row arrived (if not NULL). */
static long long drain(DBPROCESS *dbp, uint64_t *checksum, double *first_row)
{
    long long rows = 0;
    RETCODE rc;
    while ((rc = dbresults(dbp)) == SUCCEED) {
        int n = dbnumcols(dbp);
        STATUS st;
        while ((st = dbnextrow(dbp)) != NO_MORE_ROWS) {
            if (st == FAIL)
                return -1;
            if (rows == 0 && first_row != NULL)
                *first_row = now_s();
            for (int c = 1; c <= n; c++) {
                BYTE *d = dbdata(dbp, c);
                DBINT len = dbdatlen(dbp, c);
                if (d != NULL && len > 0)
                    *checksum += d[0] + (uint64_t)len;
            }
            rows++;
        }
    }
    return rc == FAIL ? -1 : rows;
}

static void *loop_worker(void *arg)
{
    worker *w = arg;
    pthread_barrier_wait(w->start);
    while (now_s() < w->stop_at) {
        if (!send(w->dbp, w->opt) || drain(w->dbp, &w->checksum, NULL) < 0) {
            w->failed = true;
            break;
        }
        w->done++;
    }
    return NULL;
}

static int run_loop(const options *opt)
{
    int n = opt->threads;
    worker *ws = calloc((size_t)n, sizeof *ws);
    pthread_t *tids = calloc((size_t)n, sizeof *tids);
    pthread_barrier_t start;
    if (ws == NULL || tids == NULL || pthread_barrier_init(&start, NULL, (unsigned)n + 1) != 0) {
        fprintf(stderr, "direct: out of memory\n");
        return 1;
    }
    for (int i = 0; i < n; i++) {
        ws[i].opt = opt;
        ws[i].start = &start;
        ws[i].dbp = login(opt);
        if (ws[i].dbp == NULL) {
            fprintf(stderr, "direct: login %d failed\n", i);
            return 1;
        }
    }
    double began = now_s();
    for (int i = 0; i < n; i++) {
        ws[i].stop_at = began + opt->seconds;
        pthread_create(&tids[i], NULL, loop_worker, &ws[i]);
    }
    pthread_barrier_wait(&start);
    began = now_s();
    uint64_t total = 0, sum = 0;
    bool failed = false;
    for (int i = 0; i < n; i++) {
        pthread_join(tids[i], NULL);
        total += ws[i].done;
        sum += ws[i].checksum;
        failed |= ws[i].failed;
        dbclose(ws[i].dbp);
    }
    double took = now_s() - began;
    printf("{\"mode\":\"loop\",\"threads\":%d,\"requests\":%llu,\"seconds\":%.3f,"
           "\"rps\":%.1f,\"checksum\":%llu}\n",
           n, (unsigned long long)total, took, (double)total / took, (unsigned long long)sum);
    pthread_barrier_destroy(&start);
    free(ws);
    free(tids);
    return failed ? 1 : 0;
}

static int run_fetch_tds(const options *opt)
{
    DBPROCESS *dbp = login(opt);
    if (dbp == NULL) {
        fprintf(stderr, "direct: login failed\n");
        return 1;
    }
    uint64_t sum = 0;
    double first = 0;
    double began = now_s();
    long long rows = send(dbp, opt) ? drain(dbp, &sum, &first) : -1;
    double took = now_s() - began;
    dbclose(dbp);
    if (rows < 0)
        return 1;
    printf("{\"mode\":\"fetch\",\"driver\":\"freetds\",\"rows\":%lld,\"seconds\":%.3f,"
           "\"rows_per_s\":%.0f,\"first_row_ms\":%.3f,\"checksum\":%llu}\n",
           rows, took, (double)rows / took, rows ? (first - began) * 1000 : 0.0,
           (unsigned long long)sum);
    return 0;
}

static int run_fetch_sqlite(const options *opt)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open_v2(opt->sqlite_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf(stderr, "direct: cannot open %s\n", opt->sqlite_path);
        sqlite3_close(db);
        return 1;
    }
    double began = now_s(), first = 0;
    if (sqlite3_prepare_v2(db, opt->sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "direct: %s\n", sqlite3_errmsg(db));
        sqlite3_close(db);
        return 1;
    }
    int n = sqlite3_column_count(st);
    long long rows = 0;
    uint64_t sum = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (rows == 0)
            first = now_s();
        for (int c = 0; c < n; c++) {
            switch (sqlite3_column_type(st, c)) {
            case SQLITE_INTEGER:
                sum += (uint64_t)sqlite3_column_int64(st, c);
                break;
            case SQLITE_FLOAT:
                sum += (uint64_t)sqlite3_column_double(st, c);
                break;
            case SQLITE_NULL:
                break;
            default:
                sum += (uint64_t)sqlite3_column_bytes(st, c) + sqlite3_column_text(st, c)[0];
                break;
            }
        }
        rows++;
    }
    double took = now_s() - began;
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (rc != SQLITE_DONE)
        return 1;
    printf("{\"mode\":\"fetch\",\"driver\":\"sqlite\",\"rows\":%lld,\"seconds\":%.3f,"
           "\"rows_per_s\":%.0f,\"first_row_ms\":%.3f,\"checksum\":%llu}\n",
           rows, took, (double)rows / took, rows ? (first - began) * 1000 : 0.0,
           (unsigned long long)sum);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: direct loop|fetch (--server H:P --user U --password P "
                    "[--database D] | --sqlite PATH)\n"
                    "       --sql SQL [--int-param NAME=V] [--threads N] [--seconds S]\n");
}

static int parse(int argc, char **argv, options *opt, char *pname, size_t pname_len)
{
    if (argc < 2)
        return -1;
    *opt = (options){.mode = argv[1], .threads = 1, .seconds = 5};
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--server") == 0)
            opt->server = v;
        else if (strcmp(k, "--user") == 0)
            opt->user = v;
        else if (strcmp(k, "--password") == 0)
            opt->password = v;
        else if (strcmp(k, "--database") == 0)
            opt->database = v;
        else if (strcmp(k, "--sqlite") == 0)
            opt->sqlite_path = v;
        else if (strcmp(k, "--sql") == 0)
            opt->sql = v;
        else if (strcmp(k, "--threads") == 0)
            opt->threads = atoi(v);
        else if (strcmp(k, "--seconds") == 0)
            opt->seconds = atof(v);
        else if (strcmp(k, "--int-param") == 0) {
            const char *eq = strchr(v, '=');
            if (eq == NULL || (size_t)(eq - v) + 2 > pname_len)
                return -1;
            pname[0] = '@';
            memcpy(pname + 1, v, (size_t)(eq - v));
            pname[eq - v + 1] = '\0';
            opt->param_name = pname;
            opt->param_value = atoll(eq + 1);
        } else
            return -1;
    }
    if (opt->sql == NULL || opt->threads < 1 || opt->seconds <= 0)
        return -1;
    if (opt->sqlite_path == NULL && (opt->server == NULL || opt->user == NULL))
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    options opt;
    char pname[130];
    if (parse(argc, argv, &opt, pname, sizeof pname) != 0) {
        usage();
        return 2;
    }
    if (opt.sqlite_path != NULL)
        return strcmp(opt.mode, "fetch") == 0 ? run_fetch_sqlite(&opt) : 2;
    if (dbinit() == FAIL)
        return 1;
    dberrhandle(on_error);
    dbmsghandle(on_message);
    int rc = 2;
    if (strcmp(opt.mode, "loop") == 0)
        rc = run_loop(&opt);
    else if (strcmp(opt.mode, "fetch") == 0)
        rc = run_fetch_tds(&opt);
    dbexit();
    return rc || atomic_load(&any_failed) ? (rc ? rc : 1) : 0;
}
