/* sqlgate registry: a fixed array of databases plus the `default` alias.
 *
 * Filled before serving starts and read-only afterwards, so look-ups take no
 * lock (registry.h). The registry owns every sg_db in it.
 */
#include "sqlgate/registry.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct sg_registry {
    sg_db **dbs; /* owned, n entries */
    size_t n;
    size_t cap;
    sg_db *default_db; /* borrowed from dbs, or NULL */
};

static bool name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > SG_NAME_MAX || name[0] < 'a' || name[0] > 'z')
        return false;
    for (size_t i = 1; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

sg_registry *sg_registry_new(sg_err *err)
{
    sg_registry *reg = calloc(1, sizeof *reg);
    if (reg == NULL)
        sg_err_set(err, SG_INTERNAL, "out of memory");
    return reg;
}

static sg_db *find(const sg_registry *reg, const char *name)
{
    for (size_t i = 0; i < reg->n; i++)
        if (strcmp(sg_db_name(reg->dbs[i]), name) == 0)
            return reg->dbs[i];
    return NULL;
}

int sg_registry_add(sg_registry *reg, sg_db *db, sg_err *err)
{
    const char *name = sg_db_name(db);
    bool legacy_default = strcmp(name, SG_DEFAULT_ALIAS) == 0;
    if (!name_valid(name) || strcmp(name, "live") == 0 || strcmp(name, "ready") == 0) {
        sg_db_free(db);
        return sg_err_set(err, SG_BAD_REQUEST, "database name \"%s\" is invalid or reserved", name);
    }
    if (legacy_default && reg->n > 0) {
        sg_db_free(db);
        return sg_err_set(err, SG_BAD_REQUEST,
                          "a database named \"default\" must be the only database");
    }
    if (find(reg, name) != NULL || (reg->n > 0 && find(reg, SG_DEFAULT_ALIAS) != NULL)) {
        sg_db_free(db);
        return sg_err_set(err, SG_BAD_REQUEST, "database \"%s\" is already registered", name);
    }
    if (reg->n == reg->cap) {
        size_t cap = reg->cap ? reg->cap * 2 : 4;
        sg_db **dbs = realloc(reg->dbs, cap * sizeof *dbs);
        if (dbs == NULL) {
            sg_db_free(db);
            return sg_err_set(err, SG_INTERNAL, "out of memory");
        }
        reg->dbs = dbs;
        reg->cap = cap;
    }
    reg->dbs[reg->n++] = db;
    if (legacy_default)
        reg->default_db = db;
    return 0;
}

int sg_registry_set_default(sg_registry *reg, const char *name, sg_err *err)
{
    if (name == NULL) {
        reg->default_db = NULL;
        return 0;
    }
    sg_db *db = find(reg, name);
    if (db == NULL)
        return sg_err_set(err, SG_UNKNOWN_DATABASE, "no database named \"%s\"", name);
    reg->default_db = db;
    return 0;
}

const char *sg_registry_default_name(const sg_registry *reg)
{
    return reg->default_db ? sg_db_name(reg->default_db) : NULL;
}

sg_db *sg_registry_get(const sg_registry *reg, const char *name, sg_err *err)
{
    if (name == NULL || strcmp(name, SG_DEFAULT_ALIAS) == 0) {
        if (reg->default_db == NULL)
            sg_err_set(err, SG_UNKNOWN_DATABASE,
                       "no default database is configured (set SQLGATE_DEFAULT_DATABASE or "
                       "name the database)");
        return reg->default_db;
    }
    sg_db *db = find(reg, name);
    if (db == NULL)
        sg_err_set(err, SG_UNKNOWN_DATABASE, "no database named \"%.64s\"", name);
    return db;
}

size_t sg_registry_count(const sg_registry *reg)
{
    return reg->n;
}

sg_db *sg_registry_at(const sg_registry *reg, size_t i)
{
    return i < reg->n ? reg->dbs[i] : NULL;
}

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
        if (sg_registry_add(reg, db, err) != 0)
            goto fail;
    }
    if (cfg->default_name != NULL && sg_registry_set_default(reg, cfg->default_name, err) != 0)
        goto fail;
    for (size_t i = 0; i < reg->n; i++)
        if (sg_db_open(reg->dbs[i], err) != 0)
            goto fail;
    return reg;
fail:
    sg_registry_free(reg);
    return NULL;
}

int sg_registry_execute(sg_registry *reg, const char *name, const char *sql, const sg_param *params,
                        size_t n_params, const sg_sink *sink, void *ud, int64_t *rows_affected,
                        sg_err *err)
{
    sg_db *db = sg_registry_get(reg, name, err);
    if (db == NULL)
        return -1;
    return sg_db_execute(db, sql, params, n_params, 0, sink, ud, rows_affected, err);
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

int sg_registry_shutdown_all(sg_registry *reg, int64_t deadline_ms, unsigned *cancelled)
{
    struct closer *cl = calloc(reg->n ? reg->n : 1, sizeof *cl);
    unsigned total = 0;
    int rc = 0;
    for (size_t i = 0; i < reg->n; i++) {
        if (cl == NULL) {
            /* No memory for threads: one after another against the same
             * deadline still bounds the total wait. */
            unsigned n = 0;
            if (sg_db_close(reg->dbs[i], deadline_ms, &n) != 0)
                rc = -1;
            total += n;
            continue;
        }
        cl[i] = (struct closer){.db = reg->dbs[i], .deadline = deadline_ms};
        cl[i].started = pthread_create(&cl[i].thread, NULL, close_one, &cl[i]) == 0;
        if (!cl[i].started)
            close_one(&cl[i]);
    }
    for (size_t i = 0; cl != NULL && i < reg->n; i++) {
        if (cl[i].started)
            pthread_join(cl[i].thread, NULL);
        if (cl[i].rc != 0)
            rc = -1;
        total += cl[i].cancelled;
    }
    free(cl);
    if (cancelled != NULL)
        *cancelled = total;
    return rc;
}

void sg_registry_free(sg_registry *reg)
{
    if (reg == NULL)
        return;
    for (size_t i = 0; i < reg->n; i++)
        sg_db_free(reg->dbs[i]);
    free(reg->dbs);
    free(reg);
}
