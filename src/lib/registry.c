/* sqlgate registry: the live databases in registration order, the `default`
 * alias, and the retired databases still draining or still referenced.
 *
 * Locking: `mu` guards everything below it in struct sg_registry and every
 * entry's refs/retired/closed/deadline. It is held only for list and counter
 * work, never across a driver call, sg_db_open or sg_db_close, so a look-up
 * never waits on a database. `apply_mu` serializes changes that build new
 * databases (sg_registry_apply), so two reloads cannot interleave.
 *
 * Lifetime of an entry: live (in `live`) -> retired (in `retired`, a closer
 * thread waits for refs == 0 or the drain deadline, then sg_db_close) ->
 * closed -> freed by whichever comes last, the closer or the last
 * sg_registry_release. Entries are found by their sg_db pointer on release;
 * the lists are short (a few databases), so a scan is cheaper than a map.
 */
#include "sqlgate/registry.h"
#include "sqlgate/clock.h"
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct entry {
    sg_db *db;             /* owned */
    const sg_config *keep; /* a reference held for db's sg_db_config, or NULL */
    /* Guarded by reg->mu. */
    unsigned refs;           /* outstanding sg_registry_acquire references */
    bool retired;            /* unregistered or replaced: on reg->retired */
    bool closed;             /* its closer has closed it */
    int64_t drain_deadline;  /* when retired: monotonic ms */
    struct entry *next;      /* in reg->retired */
    struct sg_registry *reg; /* for the closer thread */
} entry;

struct sg_registry {
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* refs of a retired entry fell, closers fell, shutdown */
    pthread_mutex_t apply_mu; /* one sg_registry_apply at a time */

    /* Guarded by mu. */
    entry **live; /* owned entries, n of them, in registration order */
    size_t n;
    size_t cap;
    char def[SG_NAME_MAX + 1]; /* the default alias's target, "" for none */
    entry *retired;            /* owned list */
    unsigned closers;          /* closer threads not yet finished */
    bool shutting_down;        /* shutdown_all or free: cut drains to shutdown_deadline */
    int64_t shutdown_deadline;
    unsigned late_cancelled; /* interrupted by closers once shutting_down */

    sg_registry_retired_fn on_retired; /* set before use, then read-only */
    void *on_retired_ud;
};

sg_registry *sg_registry_new(sg_err *err)
{
    sg_registry *reg = calloc(1, sizeof *reg);
    if (reg == NULL) {
        sg_err_set(err, SG_INTERNAL, "out of memory");
        return NULL;
    }
    /* Drain deadlines are sg_clock_ms() values. */
    if (sg_cond_init_monotonic(&reg->cv) != 0) {
        free(reg);
        sg_err_set(err, SG_INTERNAL, "cannot create a condition variable");
        return NULL;
    }
    pthread_mutex_init(&reg->mu, NULL);
    pthread_mutex_init(&reg->apply_mu, NULL);
    return reg;
}

static void entry_free(entry *e)
{
    if (e == NULL)
        return;
    /* An abandoned database's thread still reads its configuration: both
     * stay allocated until the process ends (sg_db_free keeps the database). */
    bool abandoned = e->db != NULL && sg_db_abandoned(e->db);
    sg_db_free(e->db);
    if (!abandoned)
        sg_config_unref(e->keep);
    free(e);
}

/* Lock held. */
static size_t find_index(const sg_registry *reg, const char *name)
{
    for (size_t i = 0; i < reg->n; i++)
        if (strcmp(sg_db_name(reg->live[i]->db), name) == 0)
            return i;
    return reg->n;
}

/* Lock held. NULL or "default" is the alias. */
static entry *resolve(const sg_registry *reg, const char *name, sg_err *err)
{
    bool alias = name == NULL || strcmp(name, SG_DEFAULT_ALIAS) == 0;
    if (alias && reg->def[0] == '\0') {
        sg_err_set(err, SG_UNKNOWN_DATABASE,
                   "no default database is configured (set SQLGATE_DEFAULT_DATABASE or "
                   "name the database)");
        return NULL;
    }
    size_t i = find_index(reg, alias ? reg->def : name);
    if (i == reg->n) {
        sg_err_set(err, SG_UNKNOWN_DATABASE, "no database named \"%.64s\"",
                   alias ? reg->def : name);
        return NULL;
    }
    return reg->live[i];
}

/* Lock held. */
static bool grow(sg_registry *reg)
{
    if (reg->n < reg->cap)
        return true;
    size_t cap = reg->cap ? reg->cap * 2 : 4;
    entry **live = realloc(reg->live, cap * sizeof *live);
    if (live == NULL)
        return false;
    reg->live = live;
    reg->cap = cap;
    return true;
}

/* --- Retiring -------------------------------------------------------------- */

/* Lock held: moves e to the retired list. The caller starts its closer once
 * the lock is released (start_closer). */
static void retire(sg_registry *reg, entry *e, int64_t drain_deadline)
{
    e->retired = true;
    e->drain_deadline = drain_deadline;
    e->next = reg->retired;
    reg->retired = e;
    reg->closers++;
}

/* Lock held. */
static void unlink_retired(sg_registry *reg, entry *e)
{
    for (entry **p = &reg->retired; *p != NULL; p = &(*p)->next) {
        if (*p == e) {
            *p = e->next;
            return;
        }
    }
}

static void *closer_main(void *arg)
{
    entry *e = arg;
    sg_registry *reg = e->reg;

    pthread_mutex_lock(&reg->mu);
    for (;;) {
        int64_t deadline = e->drain_deadline;
        if (reg->shutting_down && reg->shutdown_deadline < deadline)
            deadline = reg->shutdown_deadline;
        if (e->refs == 0 || sg_clock_ms() >= deadline)
            break;
        sg_cond_wait_until(&reg->cv, &reg->mu, deadline);
    }
    pthread_mutex_unlock(&reg->mu);

    /* With no reference left nothing is borrowed and this is quick; at the
     * deadline it interrupts whatever still runs. Borrowed connections are
     * closed by the pool when their holders give them back. */
    unsigned cancelled = 0;
    sg_db_close(e->db, sg_clock_ms(), &cancelled);
    if (reg->on_retired != NULL)
        reg->on_retired(reg->on_retired_ud, sg_db_name(e->db), cancelled);

    pthread_mutex_lock(&reg->mu);
    e->closed = true;
    bool free_now = e->refs == 0;
    if (free_now)
        unlink_retired(reg, e);
    if (reg->shutting_down)
        reg->late_cancelled += cancelled;
    reg->closers--;
    pthread_cond_broadcast(&reg->cv);
    pthread_mutex_unlock(&reg->mu);
    /* Unlinked: the registry (and sg_registry_free) no longer sees e. */
    if (free_now)
        entry_free(e);
    return NULL;
}

/* Starts the closer of a retired entry; without a thread, closes on the
 * caller's thread (bounded by the drain deadline). */
static void start_closer(sg_registry *reg, entry *e)
{
    e->reg = reg;
    pthread_attr_t attr;
    pthread_t t;
    bool started = false;
    if (pthread_attr_init(&attr) == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        started = pthread_create(&t, &attr, closer_main, e) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!started)
        closer_main(e);
}

/* --- Registration ---------------------------------------------------------- */

static int add_entry(sg_registry *reg, sg_db *db, const sg_config *keep, sg_err *err)
{
    const char *name = sg_db_name(db);
    bool legacy_default = strcmp(name, SG_DEFAULT_ALIAS) == 0;
    if (!sg_name_valid(name, strlen(name)) || strcmp(name, "live") == 0 ||
        strcmp(name, "ready") == 0) {
        sg_db_free(db);
        return sg_err_set(err, SG_BAD_REQUEST, "database name \"%s\" is invalid or reserved", name);
    }
    entry *e = calloc(1, sizeof *e);
    if (e == NULL) {
        sg_db_free(db);
        return sg_err_set(err, SG_INTERNAL, "out of memory");
    }
    e->db = db;
    e->keep = sg_config_ref(keep);

    pthread_mutex_lock(&reg->mu);
    int rc = 0;
    if (legacy_default && reg->n > 0)
        rc = sg_err_set(err, SG_BAD_REQUEST,
                        "a database named \"default\" must be the only database");
    else if (find_index(reg, name) < reg->n ||
             (reg->n > 0 && find_index(reg, SG_DEFAULT_ALIAS) < reg->n))
        rc = sg_err_set(err, SG_BAD_REQUEST, "database \"%s\" is already registered", name);
    else if (!grow(reg))
        rc = sg_err_set(err, SG_INTERNAL, "out of memory");
    if (rc == 0) {
        reg->live[reg->n++] = e;
        if (legacy_default)
            snprintf(reg->def, sizeof reg->def, "%s", SG_DEFAULT_ALIAS);
    }
    pthread_mutex_unlock(&reg->mu);
    if (rc != 0)
        entry_free(e);
    return rc;
}

int sg_registry_add(sg_registry *reg, sg_db *db, sg_err *err)
{
    return add_entry(reg, db, NULL, err);
}

int sg_registry_register(sg_registry *reg, sg_db *db, const sg_config *keep, sg_err *err)
{
    return add_entry(reg, db, keep, err);
}

int sg_registry_unregister(sg_registry *reg, const char *name, int64_t drain_deadline_ms,
                           sg_err *err)
{
    pthread_mutex_lock(&reg->mu);
    size_t i = name != NULL ? find_index(reg, name) : reg->n;
    if (i == reg->n) {
        pthread_mutex_unlock(&reg->mu);
        return sg_err_set(err, SG_UNKNOWN_DATABASE, "no database named \"%.64s\"",
                          name ? name : "");
    }
    entry *e = reg->live[i];
    memmove(&reg->live[i], &reg->live[i + 1], (reg->n - i - 1) * sizeof *reg->live);
    reg->n--;
    if (strcmp(reg->def, name) == 0)
        reg->def[0] = '\0';
    retire(reg, e, drain_deadline_ms);
    pthread_mutex_unlock(&reg->mu);
    start_closer(reg, e);
    return 0;
}

int sg_registry_replace(sg_registry *reg, sg_db *db, const sg_config *keep,
                        int64_t drain_deadline_ms, sg_err *err)
{
    entry *e = calloc(1, sizeof *e);
    if (e == NULL) {
        sg_db_free(db);
        return sg_err_set(err, SG_INTERNAL, "out of memory");
    }
    e->db = db;
    e->keep = sg_config_ref(keep);
    pthread_mutex_lock(&reg->mu);
    size_t i = find_index(reg, sg_db_name(db));
    if (i == reg->n) {
        pthread_mutex_unlock(&reg->mu);
        sg_err_set(err, SG_UNKNOWN_DATABASE, "no database named \"%.64s\"", sg_db_name(db));
        entry_free(e);
        return -1;
    }
    entry *old = reg->live[i];
    reg->live[i] = e;
    retire(reg, old, drain_deadline_ms);
    pthread_mutex_unlock(&reg->mu);
    start_closer(reg, old);
    return 0;
}

int sg_registry_set_default(sg_registry *reg, const char *name, sg_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&reg->mu);
    if (name == NULL)
        reg->def[0] = '\0';
    else if (find_index(reg, name) == reg->n)
        rc = sg_err_set(err, SG_UNKNOWN_DATABASE, "no database named \"%.64s\"", name);
    else
        snprintf(reg->def, sizeof reg->def, "%s", name);
    pthread_mutex_unlock(&reg->mu);
    return rc;
}

bool sg_registry_default_copy(const sg_registry *reg, char buf[SG_NAME_MAX + 1])
{
    sg_registry *r = (sg_registry *)reg; /* the lock is not part of the value */
    pthread_mutex_lock(&r->mu);
    memcpy(buf, r->def, sizeof r->def);
    pthread_mutex_unlock(&r->mu);
    return buf[0] != '\0';
}

const char *sg_registry_default_name(const sg_registry *reg)
{
    sg_registry *r = (sg_registry *)reg;
    pthread_mutex_lock(&r->mu);
    entry *e = r->def[0] != '\0' ? resolve(r, NULL, NULL) : NULL;
    const char *name = e != NULL ? sg_db_name(e->db) : NULL;
    pthread_mutex_unlock(&r->mu);
    return name;
}

/* --- Look-ups -------------------------------------------------------------- */

sg_db *sg_registry_acquire(sg_registry *reg, const char *name, sg_err *err)
{
    pthread_mutex_lock(&reg->mu);
    entry *e = resolve(reg, name, err);
    if (e != NULL)
        e->refs++;
    pthread_mutex_unlock(&reg->mu);
    return e != NULL ? e->db : NULL;
}

void sg_registry_release(sg_registry *reg, sg_db *db)
{
    if (db == NULL)
        return;
    entry *free_now = NULL;
    pthread_mutex_lock(&reg->mu);
    entry *e = NULL;
    for (size_t i = 0; e == NULL && i < reg->n; i++)
        if (reg->live[i]->db == db)
            e = reg->live[i];
    for (entry *r = reg->retired; e == NULL && r != NULL; r = r->next)
        if (r->db == db)
            e = r;
    if (e != NULL && e->refs > 0) {
        e->refs--;
        if (e->retired && e->refs == 0) {
            if (e->closed) {
                unlink_retired(reg, e);
                free_now = e;
            } else {
                pthread_cond_broadcast(&reg->cv); /* its closer need not wait */
            }
        }
    }
    pthread_mutex_unlock(&reg->mu);
    entry_free(free_now);
}

sg_db **sg_registry_acquire_all(sg_registry *reg, size_t *n)
{
    *n = 0;
    pthread_mutex_lock(&reg->mu);
    sg_db **dbs = reg->n > 0 ? malloc(reg->n * sizeof *dbs) : NULL;
    for (size_t i = 0; dbs != NULL && i < reg->n; i++) {
        reg->live[i]->refs++;
        dbs[i] = reg->live[i]->db;
        *n = i + 1;
    }
    pthread_mutex_unlock(&reg->mu);
    return dbs;
}

void sg_registry_release_all(sg_registry *reg, sg_db **dbs, size_t n)
{
    for (size_t i = 0; dbs != NULL && i < n; i++)
        sg_registry_release(reg, dbs[i]);
    free(dbs);
}

sg_db *sg_registry_get(const sg_registry *reg, const char *name, sg_err *err)
{
    sg_registry *r = (sg_registry *)reg;
    pthread_mutex_lock(&r->mu);
    entry *e = resolve(r, name, err);
    pthread_mutex_unlock(&r->mu);
    return e != NULL ? e->db : NULL;
}

size_t sg_registry_count(const sg_registry *reg)
{
    sg_registry *r = (sg_registry *)reg;
    pthread_mutex_lock(&r->mu);
    size_t n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

sg_db *sg_registry_at(const sg_registry *reg, size_t i)
{
    sg_registry *r = (sg_registry *)reg;
    pthread_mutex_lock(&r->mu);
    sg_db *db = i < r->n ? r->live[i]->db : NULL;
    pthread_mutex_unlock(&r->mu);
    return db;
}

size_t sg_registry_retired_count(const sg_registry *reg)
{
    sg_registry *r = (sg_registry *)reg;
    size_t n = 0;
    pthread_mutex_lock(&r->mu);
    for (entry *e = r->retired; e != NULL; e = e->next)
        n++;
    pthread_mutex_unlock(&r->mu);
    return n;
}

void sg_registry_set_retired_fn(sg_registry *reg, sg_registry_retired_fn fn, void *ud)
{
    reg->on_retired = fn;
    reg->on_retired_ud = ud;
}

/* --- From a configuration -------------------------------------------------- */

sg_registry *sg_registry_from_config(const sg_config *cfg, sg_db_state_fn on_state, void *ud,
                                     sg_err *err)
{
    sg_registry *reg = sg_registry_new(err);
    if (reg == NULL)
        return NULL;
    const sg_driver *prepared[8];
    size_t n_prepared = 0;
    for (size_t i = 0; i < cfg->n_databases; i++) {
        const sg_db_config *dc = &cfg->databases[i];
        const sg_driver *drv = sg_driver_find(dc->driver);
        if (drv == NULL) {
            sg_err_set(err, SG_INTERNAL, "%sDRIVER: driver \"%s\" is not built into sqlgate",
                       dc->prefix, dc->driver);
            goto fail;
        }
        /* Each driver in use gets the whole configuration once, before any
         * database opens (and so before their threads start). */
        bool seen = false;
        for (size_t k = 0; k < n_prepared; k++)
            seen |= prepared[k] == drv;
        if (!seen && n_prepared < sizeof prepared / sizeof prepared[0]) {
            prepared[n_prepared++] = drv;
            if (drv->prepare != NULL && drv->prepare(cfg, err) != 0)
                goto fail;
        }
        sg_db *db = sg_db_new(dc, drv, err);
        if (db == NULL)
            goto fail;
        sg_db_set_state_fn(db, on_state, ud);
        if (add_entry(reg, db, cfg, err) != 0)
            goto fail;
    }
    if (cfg->default_name != NULL && sg_registry_set_default(reg, cfg->default_name, err) != 0)
        goto fail;
    for (size_t i = 0; i < reg->n; i++)
        if (sg_db_open(reg->live[i]->db, err) != 0)
            goto fail;
    return reg;
fail:
    sg_registry_free(reg);
    return NULL;
}

/* --- Applying a configuration ---------------------------------------------- */

const char *sg_registry_change_name(sg_registry_change change)
{
    switch (change) {
    case SG_REG_ADDED:
        return "added";
    case SG_REG_REMOVED:
        return "removed";
    case SG_REG_CHANGED:
        return "changed";
    case SG_REG_UNCHANGED:
        return "unchanged";
    }
    return "unknown";
}

/* Lock held. What happens to cfg's database dc. */
static sg_registry_change change_of(const sg_registry *reg, const sg_db_config *dc, size_t *index)
{
    size_t i = find_index(reg, dc->name);
    *index = i;
    if (i == reg->n)
        return SG_REG_ADDED;
    return sg_db_config_equal(sg_db_config_of(reg->live[i]->db), dc) ? SG_REG_UNCHANGED
                                                                     : SG_REG_CHANGED;
}

/* Names with their change, copied so that callbacks run without the lock. */
typedef struct change_list {
    struct {
        char name[SG_NAME_MAX + 1];
        sg_registry_change change;
    } * items;
    size_t n;
} change_list;

/* Lock held. NULL items on allocation failure (then nothing is reported). */
static void list_changes(const sg_registry *reg, const sg_config *cfg, change_list *out)
{
    out->n = 0;
    out->items = calloc(cfg->n_databases + reg->n + 1, sizeof *out->items);
    if (out->items == NULL)
        return;
    for (size_t i = 0; i < cfg->n_databases; i++) {
        size_t at;
        snprintf(out->items[out->n].name, sizeof out->items[0].name, "%s", cfg->databases[i].name);
        out->items[out->n++].change = change_of(reg, &cfg->databases[i], &at);
    }
    for (size_t i = 0; i < reg->n; i++) {
        const char *name = sg_db_name(reg->live[i]->db);
        if (sg_config_find(cfg, name) != NULL)
            continue;
        snprintf(out->items[out->n].name, sizeof out->items[0].name, "%s", name);
        out->items[out->n++].change = SG_REG_REMOVED;
    }
}

static void report_changes(change_list *list, sg_registry_change_fn fn, void *ud)
{
    for (size_t i = 0; fn != NULL && i < list->n; i++)
        fn(ud, list->items[i].name, list->items[i].change);
    free(list->items);
}

void sg_registry_compare(sg_registry *reg, const sg_config *cfg, sg_registry_change_fn fn, void *ud)
{
    change_list list;
    pthread_mutex_lock(&reg->mu);
    list_changes(reg, cfg, &list);
    pthread_mutex_unlock(&reg->mu);
    report_changes(&list, fn, ud);
}

int sg_registry_apply(sg_registry *reg, const sg_config *cfg, sg_driver_find_fn find,
                      sg_db_state_fn on_state, void *state_ud, int64_t drain_deadline_ms,
                      sg_registry_change_fn fn, void *ud, sg_err *err)
{
    if (find == NULL)
        find = sg_driver_find;
    size_t n_new = cfg->n_databases;
    pthread_mutex_lock(&reg->apply_mu);

    /* apply_mu keeps other applies out; register/unregister/replace running
     * meanwhile would make the plan stale, which the swap detects. */
    entry **fresh = calloc(n_new ? n_new : 1, sizeof *fresh);
    entry **next = calloc(n_new ? n_new : 1, sizeof *next);
    entry **gone = NULL;
    size_t n_gone = 0;
    change_list list = {0};
    int rc = -1;
    if (fresh == NULL || next == NULL) {
        sg_err_set(err, SG_INTERNAL, "out of memory");
        goto done;
    }

    /* 1. Build and open every new database, outside the lock. */
    for (size_t i = 0; i < n_new; i++) {
        const sg_db_config *dc = &cfg->databases[i];
        size_t at;
        pthread_mutex_lock(&reg->mu);
        sg_registry_change change = change_of(reg, dc, &at);
        pthread_mutex_unlock(&reg->mu);
        if (change == SG_REG_UNCHANGED)
            continue;
        if (!sg_name_valid(dc->name, strlen(dc->name)) || strcmp(dc->name, "live") == 0 ||
            strcmp(dc->name, "ready") == 0) {
            sg_err_set(err, SG_BAD_REQUEST, "database name \"%s\" is invalid or reserved",
                       dc->name);
            goto done;
        }
        const sg_driver *drv = find(dc->driver);
        if (drv == NULL) {
            sg_err_set(err, SG_BAD_REQUEST, "%sDRIVER: driver \"%s\" is not built into sqlgate",
                       dc->prefix, dc->driver);
            goto done;
        }
        fresh[i] = calloc(1, sizeof *fresh[i]);
        if (fresh[i] == NULL) {
            sg_err_set(err, SG_INTERNAL, "out of memory");
            goto done;
        }
        fresh[i]->db = sg_db_new(dc, drv, err);
        if (fresh[i]->db == NULL)
            goto done;
        fresh[i]->keep = sg_config_ref(cfg);
        sg_db_set_state_fn(fresh[i]->db, on_state, state_ud);
    }
    for (size_t i = 0; i < n_new; i++)
        if (fresh[i] != NULL && sg_db_open(fresh[i]->db, err) != 0)
            goto done;

    /* 2. Swap in one step. */
    pthread_mutex_lock(&reg->mu);
    if (reg->shutting_down) {
        /* Shutdown closes the databases it saw; new ones would escape it. */
        pthread_mutex_unlock(&reg->mu);
        sg_err_set(err, SG_SHUTTING_DOWN, "the registry is shutting down");
        goto done;
    }
    gone = calloc(reg->n + 1, sizeof *gone);
    if (gone == NULL) {
        pthread_mutex_unlock(&reg->mu);
        sg_err_set(err, SG_INTERNAL, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n_new; i++) {
        size_t at;
        bool kept = change_of(reg, &cfg->databases[i], &at) == SG_REG_UNCHANGED;
        if ((fresh[i] == NULL) != kept) {
            pthread_mutex_unlock(&reg->mu);
            sg_err_set(err, SG_INTERNAL, "the registry changed while a configuration was applied");
            goto done;
        }
    }
    list_changes(reg, cfg, &list);
    for (size_t i = 0; i < n_new; i++) {
        size_t at = find_index(reg, cfg->databases[i].name);
        if (fresh[i] != NULL) {
            next[i] = fresh[i];
            fresh[i] = NULL;
        } else {
            next[i] = reg->live[at];
        }
        if (at < reg->n && next[i] != reg->live[at])
            gone[n_gone++] = reg->live[at];
    }
    for (size_t i = 0; i < reg->n; i++)
        if (sg_config_find(cfg, sg_db_name(reg->live[i]->db)) == NULL)
            gone[n_gone++] = reg->live[i];
    free(reg->live);
    reg->live = next;
    reg->n = n_new;
    reg->cap = n_new ? n_new : 1;
    next = NULL;
    if (cfg->default_name != NULL)
        snprintf(reg->def, sizeof reg->def, "%s", cfg->default_name);
    else if (n_new == 1 && strcmp(cfg->databases[0].name, SG_DEFAULT_ALIAS) == 0)
        snprintf(reg->def, sizeof reg->def, "%s", SG_DEFAULT_ALIAS);
    else
        reg->def[0] = '\0';
    for (size_t i = 0; i < n_gone; i++)
        retire(reg, gone[i], drain_deadline_ms);
    pthread_mutex_unlock(&reg->mu);

    for (size_t i = 0; i < n_gone; i++)
        start_closer(reg, gone[i]);
    rc = 0;

done:
    /* On failure the new databases were never visible: close them here. */
    for (size_t i = 0; fresh != NULL && i < n_new; i++) {
        if (fresh[i] != NULL) {
            if (fresh[i]->db != NULL)
                sg_db_close(fresh[i]->db, sg_clock_ms(), NULL);
            entry_free(fresh[i]);
        }
    }
    free(fresh);
    free(next);
    free(gone);
    pthread_mutex_unlock(&reg->apply_mu);
    if (rc == 0)
        report_changes(&list, fn, ud);
    else
        free(list.items);
    return rc;
}

/* --- Queries and shutdown -------------------------------------------------- */

int sg_registry_execute(sg_registry *reg, const char *name, const char *sql, const sg_param *params,
                        size_t n_params, const sg_sink *sink, void *ud, int64_t *rows_affected,
                        sg_err *err)
{
    sg_db *db = sg_registry_acquire(reg, name, err);
    if (db == NULL)
        return -1;
    int rc = sg_db_execute(db, sql, params, n_params, 0, sink, ud, rows_affected, err);
    sg_registry_release(reg, db);
    return rc;
}

struct closer {
    sg_db *db;
    int64_t deadline;
    unsigned cancelled;
    int rc;
    pthread_t thread;
    bool started;
};

static void *close_one(void *arg)
{
    struct closer *c = arg;
    c->rc = sg_db_close(c->db, c->deadline, &c->cancelled);
    return NULL;
}

/* Lock not held: cuts every drain to `deadline` and waits for the closers. */
static void stop_closers(sg_registry *reg, int64_t deadline)
{
    pthread_mutex_lock(&reg->mu);
    if (!reg->shutting_down || deadline < reg->shutdown_deadline)
        reg->shutdown_deadline = deadline;
    reg->shutting_down = true;
    pthread_cond_broadcast(&reg->cv);
    while (reg->closers > 0)
        pthread_cond_wait(&reg->cv, &reg->mu);
    pthread_mutex_unlock(&reg->mu);
}

int sg_registry_shutdown_all(sg_registry *reg, int64_t deadline_ms, unsigned *cancelled)
{
    /* Live databases are closed here; retired ones by their closers, whose
     * drains are cut to this deadline. The set of live databases does not
     * change during a shutdown (the service refuses reloads by then). */
    pthread_mutex_lock(&reg->mu);
    if (!reg->shutting_down || deadline_ms < reg->shutdown_deadline)
        reg->shutdown_deadline = deadline_ms;
    reg->shutting_down = true;
    pthread_cond_broadcast(&reg->cv);
    size_t n = reg->n;
    struct closer *cl = calloc(n ? n : 1, sizeof *cl);
    sg_db **dbs = calloc(n ? n : 1, sizeof *dbs);
    for (size_t i = 0; dbs != NULL && i < n; i++)
        dbs[i] = reg->live[i]->db;
    pthread_mutex_unlock(&reg->mu);

    unsigned total = 0;
    int rc = 0;
    for (size_t i = 0; dbs != NULL && i < n; i++) {
        if (cl == NULL) {
            /* No memory for threads: one after another against the same
             * deadline still bounds the total wait. */
            unsigned k = 0;
            if (sg_db_close(dbs[i], deadline_ms, &k) != 0)
                rc = -1;
            total += k;
            continue;
        }
        cl[i] = (struct closer){.db = dbs[i], .deadline = deadline_ms};
        cl[i].started = pthread_create(&cl[i].thread, NULL, close_one, &cl[i]) == 0;
        if (!cl[i].started)
            close_one(&cl[i]);
    }
    for (size_t i = 0; cl != NULL && dbs != NULL && i < n; i++) {
        if (cl[i].started)
            pthread_join(cl[i].thread, NULL);
        if (cl[i].rc != 0)
            rc = -1;
        total += cl[i].cancelled;
    }
    free(cl);
    free(dbs);

    stop_closers(reg, deadline_ms);
    pthread_mutex_lock(&reg->mu);
    total += reg->late_cancelled;
    reg->late_cancelled = 0;
    pthread_mutex_unlock(&reg->mu);
    if (total > 0)
        rc = -1;
    if (cancelled != NULL)
        *cancelled = total;
    return rc;
}

void sg_registry_free(sg_registry *reg)
{
    if (reg == NULL)
        return;
    stop_closers(reg, sg_clock_ms());
    for (size_t i = 0; i < reg->n; i++)
        entry_free(reg->live[i]);
    while (reg->retired != NULL) {
        entry *e = reg->retired;
        reg->retired = e->next;
        entry_free(e);
    }
    free(reg->live);
    pthread_cond_destroy(&reg->cv);
    pthread_mutex_destroy(&reg->mu);
    pthread_mutex_destroy(&reg->apply_mu);
    free(reg);
}
