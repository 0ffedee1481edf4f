/* The fake sg_driver for unit tests (fake_driver.h).
 *
 * All state sits in `fk`, one process-wide table behind one mutex: the driver
 * interface passes no user pointer to open(), so there is nowhere else to keep
 * it. One condition variable (CLOCK_MONOTONIC) is broadcast by interrupt() and
 * by knob changes; every simulated wait sleeps on it.
 */
#include "fake_driver.h"

#include "../../src/lib/util.h"

#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FAKE_MAX_DBS 32
#define FAKE_SQL_MAX 256

typedef struct fake_db {
    bool used;
    char name[SG_NAME_MAX + 1];
    int64_t knobs[FAKE_KNOB_COUNT_];
    fake_counts counts; /* live, running computed on demand */
    char last_sql[FAKE_SQL_MAX];
    size_t last_n_params;
} fake_db;

struct sg_driver_conn {
    fake_db *db; /* entry in fk.dbs; never moves */
    uint64_t id;
    struct sg_driver_conn *prev, *next; /* fk.live list */
    bool broken;
    bool busy;        /* inside exec..finish or ping */
    bool interrupted; /* interrupt() arrived; cleared by finish() only */
    int64_t results_left;
    int64_t rows;
    int64_t row_next;
    int64_t affected;
    sg_value value;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int64_t template_knobs[FAKE_KNOB_COUNT_];
    fake_db dbs[FAKE_MAX_DBS];
    fake_counts totals;
    sg_driver_conn *live;
    uint64_t next_id;
} fk = {.mu = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t fk_once = PTHREAD_ONCE_INIT;

static const sg_column fake_columns[1] = {{.name = "n", .type = "int"}};

static void default_knobs(int64_t *k)
{
    memset(k, 0, sizeof(int64_t) * FAKE_KNOB_COUNT_);
    k[FAKE_EXEC_MODE] = FAKE_EXEC_OK;
    k[FAKE_EXEC_RESULTS] = 1;
    k[FAKE_EXEC_ROWS] = 1;
}

static void fk_init_once(void)
{
    if (sg_cond_init_monotonic(&fk.cond) != 0)
        abort();
    default_knobs(fk.template_knobs);
}

static void fk_lock(void)
{
    pthread_once(&fk_once, fk_init_once);
    pthread_mutex_lock(&fk.mu);
}

static void fk_unlock(void)
{
    pthread_mutex_unlock(&fk.mu);
}

/* The entry for `name`, created from the template on first use; lock held.
 * NULL only when the table is full. */
static fake_db *db_get(const char *name)
{
    fake_db *free_slot = NULL;
    for (size_t i = 0; i < FAKE_MAX_DBS; i++) {
        fake_db *d = &fk.dbs[i];
        if (d->used && strcmp(d->name, name) == 0)
            return d;
        if (!d->used && free_slot == NULL)
            free_slot = d;
    }
    if (free_slot == NULL)
        return NULL;
    memset(free_slot, 0, sizeof *free_slot);
    free_slot->used = true;
    size_t len = strlen(name);
    if (len > SG_NAME_MAX)
        len = SG_NAME_MAX;
    memcpy(free_slot->name, name, len);
    free_slot->name[len] = '\0';
    memcpy(free_slot->knobs, fk.template_knobs, sizeof free_slot->knobs);
    return free_slot;
}

/* Consumes one failure from a count knob; lock held. */
static bool take_failure(int64_t *knob)
{
    if (*knob < 0)
        return true;
    if (*knob > 0) {
        (*knob)--;
        return true;
    }
    return false;
}

/* Sleeps (lock held) until until_ms, or until c is interrupted when
 * `interruptible`. Returns true when interrupted. */
static bool fk_sleep(sg_driver_conn *c, int64_t until_ms, bool interruptible)
{
    for (;;) {
        if (c != NULL && interruptible && c->interrupted)
            return true;
        if (sg_clock_ms() >= until_ms)
            return false;
        sg_cond_wait_until(&fk.cond, &fk.mu, until_ms);
    }
}

static int64_t clamp_until(int64_t now, int64_t delay_ms, int64_t deadline_ms, bool *timed_out)
{
    int64_t until = delay_ms > 0 && now > INT64_MAX - delay_ms ? INT64_MAX : now + delay_ms;
    *timed_out = until > deadline_ms;
    return *timed_out ? deadline_ms : until;
}

/* --- Driver functions ----------------------------------------------------- */

static sg_driver_conn *fake_open(const sg_db_config *cfg, int64_t deadline_ms, sg_err *err)
{
    fk_lock();
    fake_db *db = db_get(cfg->name);
    if (db == NULL) {
        fk_unlock();
        sg_err_set(err, SG_INTERNAL, "fake: too many databases");
        return NULL;
    }
    bool fail = take_failure(&db->knobs[FAKE_FAIL_OPEN]);
    bool timed_out;
    int64_t until =
        clamp_until(sg_clock_ms(), db->knobs[FAKE_OPEN_DELAY_MS], deadline_ms, &timed_out);
    fk_sleep(NULL, until, false);
    if (fail || timed_out) {
        db->counts.open_failures++;
        fk.totals.open_failures++;
        fk_unlock();
        sg_err_set(err, SG_DB_UNAVAILABLE,
                   timed_out ? "fake: login timed out" : "fake: connection refused");
        return NULL;
    }
    fk_unlock();

    sg_driver_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        sg_err_set(err, SG_INTERNAL, "fake: out of memory");
        return NULL;
    }
    fk_lock();
    c->db = db;
    c->id = ++fk.next_id;
    c->next = fk.live;
    if (fk.live != NULL)
        fk.live->prev = c;
    fk.live = c;
    db->counts.opened++;
    fk.totals.opened++;
    uint64_t live = db->counts.opened - db->counts.closed;
    if (live > db->counts.max_live)
        db->counts.max_live = live;
    live = fk.totals.opened - fk.totals.closed;
    if (live > fk.totals.max_live)
        fk.totals.max_live = live;
    fk_unlock();
    return c;
}

static int fake_ping(sg_driver_conn *c, const char *sql, int64_t deadline_ms, sg_err *err)
{
    (void)sql;
    fk_lock();
    fake_db *db = c->db;
    db->counts.pings++;
    fk.totals.pings++;
    c->busy = true;
    bool fail = take_failure(&db->knobs[FAKE_FAIL_PING]) || c->broken;
    bool timed_out;
    int64_t until =
        clamp_until(sg_clock_ms(), db->knobs[FAKE_PING_DELAY_MS], deadline_ms, &timed_out);
    bool intr = fk_sleep(c, until, db->knobs[FAKE_IGNORE_INTERRUPT] == 0);
    c->busy = false;
    if (fail || timed_out || intr) {
        db->counts.ping_failures++;
        fk.totals.ping_failures++;
        fk_unlock();
        return sg_err_set(err, intr ? SG_QUERY_TIMEOUT : SG_DB_UNAVAILABLE, "fake: ping %s",
                          intr        ? "cancelled"
                          : timed_out ? "timed out"
                                      : "failed");
    }
    fk_unlock();
    return 0;
}

/* Parses the "fake:" directive at the start of sql, one or more items joined
 * by ','; returns false if none. */
static bool parse_directive(const char *sql, int64_t *mode, int64_t *delay, int64_t *rows,
                            int64_t *results)
{
    static const char prefix[] = "fake:";
    if (sql == NULL || strncmp(sql, prefix, sizeof prefix - 1) != 0)
        return false;
    const char *d = sql + sizeof prefix - 1;
    for (;;) {
        if (strncmp(d, "hang", 4) == 0)
            *mode = FAKE_EXEC_HANG;
        else if (strncmp(d, "error", 5) == 0)
            *mode = FAKE_EXEC_SQL_ERROR;
        else if (strncmp(d, "break", 5) == 0)
            *mode = FAKE_EXEC_BROKEN;
        else if (strncmp(d, "sleep=", 6) == 0) {
            *mode = FAKE_EXEC_OK;
            *delay = strtoll(d + 6, NULL, 10);
        } else if (strncmp(d, "rows=", 5) == 0) {
            *mode = FAKE_EXEC_OK;
            *rows = strtoll(d + 5, NULL, 10);
        } else if (strncmp(d, "results=", 8) == 0) {
            *mode = FAKE_EXEC_OK;
            *results = strtoll(d + 8, NULL, 10);
        } else
            return false;
        d = strchr(d, ',');
        if (d == NULL)
            return true;
        d++;
    }
}

static int fake_exec(sg_driver_conn *c, const char *sql, const sg_param *params, size_t n_params,
                     int64_t deadline_ms, sg_err *err)
{
    (void)params;
    fk_lock();
    fake_db *db = c->db;
    db->counts.execs++;
    fk.totals.execs++;
    size_t len = sql != NULL ? strlen(sql) : 0;
    if (len >= FAKE_SQL_MAX)
        len = FAKE_SQL_MAX - 1;
    if (len > 0)
        memcpy(db->last_sql, sql, len);
    db->last_sql[len] = '\0';
    db->last_n_params = n_params;

    if (c->broken) {
        fk_unlock();
        return sg_err_set(err, SG_DB_UNAVAILABLE, "fake: connection is broken");
    }
    c->busy = true;

    int64_t mode = db->knobs[FAKE_EXEC_MODE];
    int64_t delay = db->knobs[FAKE_EXEC_DELAY_MS];
    int64_t rows = db->knobs[FAKE_EXEC_ROWS];
    int64_t results = db->knobs[FAKE_EXEC_RESULTS];
    parse_directive(sql, &mode, &delay, &rows, &results);

    bool timed_out;
    int64_t until;
    if (mode == FAKE_EXEC_HANG) {
        until = deadline_ms;
        timed_out = true;
    } else {
        until = clamp_until(sg_clock_ms(), delay, deadline_ms, &timed_out);
    }
    bool intr = fk_sleep(c, until, db->knobs[FAKE_IGNORE_INTERRUPT] == 0);
    if (intr || timed_out) {
        c->busy = false;
        fk_unlock();
        return sg_err_set(err, SG_QUERY_TIMEOUT, "fake: statement %s",
                          intr ? "cancelled" : "timed out");
    }
    switch (mode) {
    case FAKE_EXEC_SQL_ERROR:
        c->busy = false;
        fk_unlock();
        sg_err_set(err, SG_SQL_ERROR, "fake: Invalid object name 'nope'.");
        if (err != NULL) {
            err->has_sql = true;
            err->sql = (sg_sql_info){.number = 208, .severity = 16, .state = 1, .line = 1};
        }
        return -1;
    case FAKE_EXEC_BROKEN:
        c->busy = false;
        c->broken = true;
        fk_unlock();
        return sg_err_set(err, SG_DB_UNAVAILABLE, "fake: connection lost");
    default:
        break;
    }
    c->results_left = results;
    c->rows = rows;
    c->row_next = 0;
    c->affected = db->knobs[FAKE_ROWS_AFFECTED];
    fk_unlock();
    return 0;
}

/* Checks shared by next_result and next_row; lock held. */
static int batch_check(sg_driver_conn *c, sg_err *err)
{
    if (!c->busy)
        return sg_err_set(err, SG_INTERNAL, "fake: no batch is running");
    if (c->interrupted)
        return sg_err_set(err, SG_QUERY_TIMEOUT, "fake: statement cancelled");
    if (c->broken)
        return sg_err_set(err, SG_DB_UNAVAILABLE, "fake: connection lost");
    return 0;
}

static int fake_next_result(sg_driver_conn *c, const sg_column **cols, size_t *n_cols, sg_err *err)
{
    fk_lock();
    int rc = batch_check(c, err);
    if (rc == 0 && c->results_left > 0) {
        c->results_left--;
        c->row_next = 0;
        *cols = fake_columns;
        *n_cols = 1;
        rc = 1;
    }
    fk_unlock();
    return rc;
}

static int fake_next_row(sg_driver_conn *c, const sg_value **values, sg_err *err)
{
    fk_lock();
    int rc = batch_check(c, err);
    if (rc == 0 && c->row_next < c->rows) {
        c->row_next++;
        c->value.type = SG_V_INT;
        c->value.u.i = c->row_next;
        *values = &c->value;
        rc = 1;
    }
    fk_unlock();
    return rc;
}

static int64_t fake_rows_affected(sg_driver_conn *c)
{
    fk_lock();
    int64_t n = c->affected;
    fk_unlock();
    return n;
}

static int fake_finish(sg_driver_conn *c)
{
    fk_lock();
    c->busy = false;
    c->interrupted = false;
    c->results_left = 0;
    c->rows = 0;
    bool broken = c->broken;
    fk_unlock();
    return broken ? -1 : 0;
}

static void fake_interrupt(sg_driver_conn *c)
{
    fk_lock();
    c->db->counts.interrupts++;
    fk.totals.interrupts++;
    c->interrupted = true;
    pthread_cond_broadcast(&fk.cond);
    fk_unlock();
}

static bool fake_unusable(sg_driver_conn *c)
{
    fk_lock();
    bool broken = c->broken;
    fk_unlock();
    return broken;
}

static void fake_close(sg_driver_conn *c)
{
    if (c == NULL)
        return;
    fk_lock();
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        fk.live = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->db->counts.closed++;
    fk.totals.closed++;
    fk_unlock();
    free(c);
}

const sg_driver fake_driver = {
    .name = "fake",
    .open = fake_open,
    .ping = fake_ping,
    .exec = fake_exec,
    .next_result = fake_next_result,
    .next_row = fake_next_row,
    .rows_affected = fake_rows_affected,
    .finish = fake_finish,
    .interrupt = fake_interrupt,
    .unusable = fake_unusable,
    .close = fake_close,
};

/* --- Control API ---------------------------------------------------------- */

void fake_driver_reset(void)
{
    fk_lock();
    default_knobs(fk.template_knobs);
    memset(fk.dbs, 0, sizeof fk.dbs);
    memset(&fk.totals, 0, sizeof fk.totals);
    pthread_cond_broadcast(&fk.cond);
    fk_unlock();
}

void fake_driver_set(const char *db, fake_knob knob, int64_t value)
{
    if ((unsigned)knob >= FAKE_KNOB_COUNT_)
        return;
    fk_lock();
    if (db == NULL) {
        fk.template_knobs[knob] = value;
        for (size_t i = 0; i < FAKE_MAX_DBS; i++)
            if (fk.dbs[i].used)
                fk.dbs[i].knobs[knob] = value;
    } else {
        fake_db *d = db_get(db);
        if (d != NULL)
            d->knobs[knob] = value;
    }
    pthread_cond_broadcast(&fk.cond);
    fk_unlock();
}

int64_t fake_driver_get(const char *db, fake_knob knob)
{
    if ((unsigned)knob >= FAKE_KNOB_COUNT_)
        return 0;
    fk_lock();
    int64_t v = fk.template_knobs[knob];
    if (db != NULL) {
        fake_db *d = db_get(db);
        if (d != NULL)
            v = d->knobs[knob];
    }
    fk_unlock();
    return v;
}

void fake_driver_counts(const char *db, fake_counts *out)
{
    memset(out, 0, sizeof *out);
    fk_lock();
    const fake_db *d = NULL;
    if (db != NULL) {
        d = db_get(db);
        if (d != NULL)
            *out = d->counts;
    } else {
        *out = fk.totals;
    }
    out->live = out->opened - out->closed;
    out->running = 0;
    for (const sg_driver_conn *c = fk.live; c != NULL; c = c->next)
        if (c->busy && (db == NULL || c->db == d))
            out->running++;
    fk_unlock();
}

uint64_t fake_driver_live(const char *db)
{
    fake_counts n;
    fake_driver_counts(db, &n);
    return n.live;
}

void fake_driver_break_all(const char *db)
{
    fk_lock();
    for (sg_driver_conn *c = fk.live; c != NULL; c = c->next)
        if (db == NULL || strcmp(c->db->name, db) == 0)
            c->broken = true;
    pthread_cond_broadcast(&fk.cond);
    fk_unlock();
}

void fake_driver_last_exec(const char *db, char *buf, size_t size, size_t *n_params)
{
    fk_lock();
    const fake_db *d = db != NULL ? db_get(db) : NULL;
    const char *sql = d != NULL ? d->last_sql : "";
    if (size > 0) {
        size_t len = strlen(sql);
        if (len >= size)
            len = size - 1;
        memcpy(buf, sql, len);
        buf[len] = '\0';
    }
    if (n_params != NULL)
        *n_params = d != NULL ? d->last_n_params : 0;
    fk_unlock();
}

void fake_conn_break(sg_driver_conn *c)
{
    fk_lock();
    c->broken = true;
    fk_unlock();
}

uint64_t fake_conn_id(sg_driver_conn *c)
{
    fk_lock();
    uint64_t id = c->id;
    fk_unlock();
    return id;
}

sg_db_config fake_db_config(const char *name, unsigned pool_max)
{
    sg_db_config c;
    memset(&c, 0, sizeof c);
    size_t len = strlen(name);
    if (len > SG_NAME_MAX)
        len = SG_NAME_MAX;
    memcpy(c.name, name, len);
    c.name[len] = '\0';
    size_t i;
    for (i = 0; i < len; i++)
        c.prefix[i] = (char)toupper((unsigned char)name[i]);
    memcpy(c.prefix + i, "_DB_", sizeof "_DB_");
    c.driver = "fake";
    c.port = 1433;
    c.encrypt = SG_ENCRYPT_OFF;
    c.tds_version = "auto";
    c.app_name = "sqlgate:fake";
    c.read_only = false;
    c.critical = true;
    c.pool_max = pool_max;
    c.pool_min = 0;
    c.acquire_timeout_ms = 5000;
    c.connect_timeout_ms = 15000;
    c.query_timeout_ms = 15000;
    c.idle_timeout_ms = 30000;
    c.max_lifetime_ms = 1800000;
    c.retry_max_ms = 5000;
    c.health_query = "SELECT 1";
    c.health_interval_ms = 5000;
    c.health_timeout_ms = 2000;
    return c;
}
