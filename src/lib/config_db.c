/* config_db: one database's variables, CORE_DB_*, APP_DB_*, <NAME>_DB_* or DB_*.
 *
 * cfg_load_db reads the suffixes of cfg_db_vars after the database's prefix,
 * merges what its URL gave (config_url.c) under the explicit variables,
 * chooses the driver and checks the rules between the fields: explicit
 * variables win over URL parts, URL parts over defaults.
 */
#include "config_int.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads PASSWORD_FILE: one trailing "\n" or "\r\n" is dropped (editors add
 * it); the content is never echoed. Returns a new string or NULL. */
static char *read_password_file(loader *ld, const char *var, const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = sg_file_read(path, SECRET_FILE_MAX, true, &buf, &len);
    if (rc != 0) {
        cfg_file_error(ld, var, path, rc, errno, SECRET_FILE_MAX);
        return NULL;
    }
    if (len > 0 && buf[len - 1] == '\n') {
        buf[--len] = '\0';
        if (len > 0 && buf[len - 1] == '\r')
            buf[--len] = '\0';
    }
    if (len == 0) {
        char q[QUOTE_BUF];
        cfg_add_error(ld, var, "file %s is empty", cfg_quote(q, sizeof q, path));
        free(buf);
        return NULL;
    }
    return buf;
}

/* One database's variables while it loads: what was read (indexed by enum
 * db_var), under which full names, and what its URL gave. */
typedef struct db_input {
    const char *name; /* borrowed: the database's name */
    value v[DV_COUNT_];
    char var[DV_COUNT_][VAR_NAME_MAX];
    url_parts u;     /* owned: cfg_url_clear */
    bool url_failed; /* the URL was reported: its missing host is not reported again */
    int drv;         /* DRV_NONE when unknown (reported) */
} db_input;

/* Reads every suffix after prefix, and the URL. */
static void read_db(loader *ld, sg_db_config *db, db_input *in, const char *name,
                    const char *prefix)
{
    memset(&in->u, 0, sizeof in->u);
    in->name = name;
    snprintf(db->name, sizeof db->name, "%s", name);
    snprintf(db->prefix, sizeof db->prefix, "%s", prefix);
    for (size_t i = 0; i < DV_COUNT_; i++) {
        snprintf(in->var[i], sizeof in->var[i], "%s%s", prefix, cfg_db_vars[i].name);
        cfg_read_var(ld, in->var[i], &cfg_db_vars[i], &in->v[i]);
    }
    size_t errors_before = ld->n_errors;
    if (in->v[DV_URL].text != NULL)
        cfg_parse_url(ld, in->var[DV_URL], in->v[DV_URL].text, &in->u);
    in->url_failed = ld->n_errors != errors_before;
}

/* Driver: explicit, else what HOST/URL/PATH imply, else the embedded file.
 * Returns it (DRV_NONE after an error), sets db->driver and reports
 * variables of the other driver. */
static int choose_driver(loader *ld, sg_db_config *db, const db_input *in,
                         const char *embedded_path)
{
    const value *v = in->v;
    const char(*var)[VAR_NAME_MAX] = in->var;
    const url_parts *u = &in->u;
    const char *name = in->name;
    const char *host_text = v[DV_HOST].text;
    const char *path_text = v[DV_PATH].text;
    bool hint_ft = host_text != NULL || u->kind == URL_MSSQL;
    bool hint_sq = path_text != NULL || u->kind == URL_SQLITE;
    int drv = DRV_NONE;
    if (v[DV_DRIVER].text != NULL) {
        if (v[DV_DRIVER].ok)
            drv = (int)v[DV_DRIVER].num;
    } else if (hint_ft && hint_sq) {
        if (path_text != NULL && host_text != NULL)
            cfg_add_error(ld, var[DV_PATH],
                          "cannot be combined with %s (a database is either SQLite with a path or "
                          "SQL Server with a host)",
                          var[DV_HOST]);
        else if (path_text != NULL)
            cfg_add_error(ld, var[DV_PATH], "cannot be combined with a SQL Server %s", var[DV_URL]);
        else
            cfg_add_error(ld, var[DV_HOST], "cannot be combined with a SQLite %s", var[DV_URL]);
    } else if (hint_ft) {
        drv = DRV_FREETDS;
    } else if (hint_sq || embedded_path != NULL) {
        drv = DRV_SQLITE;
    } else if (v[DV_URL].text == NULL) {
        /* (a URL that gave nothing usable has been reported already) */
        cfg_add_error(ld, var[DV_HOST],
                      "no database given: set %s or %s for SQL Server, or %s for SQLite",
                      var[DV_HOST], var[DV_URL], var[DV_PATH]);
    }

    if (drv == DRV_FREETDS) {
        if (path_text != NULL)
            cfg_add_error(ld, var[DV_PATH], "is for SQLite; the driver of %s is freetds", name);
        if (u->kind == URL_SQLITE)
            cfg_add_error(ld, var[DV_URL], "is a SQLite URL; the driver of %s is freetds", name);
    } else if (drv == DRV_SQLITE) {
        if (host_text != NULL)
            cfg_add_error(ld, var[DV_HOST], "is for SQL Server; the driver of %s is sqlite", name);
        if (u->kind == URL_MSSQL)
            cfg_add_error(ld, var[DV_URL], "is a SQL Server URL; the driver of %s is sqlite", name);
    }
    /* "none" only reaches a snapshot that is thrown away with the errors. */
    db->driver = drv == DRV_SQLITE ? "sqlite" : drv == DRV_FREETDS ? "freetds" : "none";
    return drv;
}

/* SQL Server's address and login: HOST, PORT, NAME, USER, PASSWORD or
 * PASSWORD_FILE. Explicit variables win over URL parts, URL parts over
 * defaults (here and in the helpers below). */
static void load_server(loader *ld, sg_db_config *db, const db_input *in)
{
    const value *v = in->v;
    const char(*var)[VAR_NAME_MAX] = in->var;
    const url_parts *u = &in->u;
    const char *host_text = v[DV_HOST].text;
    int drv = in->drv;
    char *password = NULL;
    char q[QUOTE_BUF];

    if (host_text != NULL) {
        size_t n = strlen(host_text);
        bool bracketed = n >= 2 && host_text[0] == '[' && host_text[n - 1] == ']';
        char *h =
            bracketed ? cfg_dup_range(ld, host_text + 1, n - 2) : cfg_dup_range(ld, host_text, n);
        if (h != NULL && strchr(h, '\\') != NULL)
            cfg_add_error(ld, var[DV_HOST],
                          "named instances (host\\instance) are not supported; set %s instead",
                          var[DV_PORT]);
        else if (h != NULL && !cfg_host_ok(h, true))
            cfg_add_error(ld, var[DV_HOST], "is not a valid host name or address (got %s)",
                          cfg_quote(q, sizeof q, host_text));
        if (drv == DRV_FREETDS)
            db->host = cfg_owned_add(ld, h);
        else
            free(h);
    } else if (drv == DRV_FREETDS) {
        db->host = cfg_keep(ld, u->host);
    }
    if (drv == DRV_FREETDS && db->host == NULL && !ld->oom && !in->url_failed)
        cfg_add_error(ld, var[DV_HOST],
                      "is required for the freetds driver (or give the host in %s)", var[DV_URL]);

    db->port = (int)v[DV_PORT].num;
    if (v[DV_PORT].text == NULL && u->has_port)
        db->port = u->port;
    db->database = cfg_keep(ld, v[DV_NAME].text != NULL ? v[DV_NAME].text : u->database);
    db->user = cfg_keep(ld, v[DV_USER].text != NULL ? v[DV_USER].text : u->user);

    if (v[DV_PASSWORD].text != NULL && v[DV_PASSWORD_FILE].text != NULL) {
        cfg_add_error(ld, var[DV_PASSWORD_FILE], "cannot be combined with %s; set one of them",
                      var[DV_PASSWORD]);
    } else if (v[DV_PASSWORD_FILE].text != NULL) {
        password = read_password_file(ld, var[DV_PASSWORD_FILE], v[DV_PASSWORD_FILE].text);
        if (password != NULL)
            db->password = cfg_keep(ld, password);
    } else {
        db->password =
            cfg_keep(ld, v[DV_PASSWORD].text != NULL ? v[DV_PASSWORD].text : u->password);
    }
    sg_free_secret(password);
}

/* TLS to SQL Server and the protocol version: ENCRYPT, CA_FILE, TDS_VERSION. */
static void load_encryption(loader *ld, sg_db_config *db, const db_input *in)
{
    const value *v = in->v;
    const char(*var)[VAR_NAME_MAX] = in->var;
    const url_parts *u = &in->u;

    db->encrypt = (sg_encrypt)v[DV_ENCRYPT].num;
    if (v[DV_ENCRYPT].text == NULL && u->has_encrypt)
        db->encrypt = (sg_encrypt)u->encrypt;
    if (v[DV_CA_FILE].text != NULL) {
        if (strcmp(v[DV_CA_FILE].text, "system") != 0)
            cfg_check_readable(ld, var[DV_CA_FILE], v[DV_CA_FILE].text);
        db->ca_file = cfg_keep(ld, v[DV_CA_FILE].text);
    }
    int tds = (int)v[DV_TDS_VERSION].num;
    if (v[DV_TDS_VERSION].text == NULL && u->has_tds)
        tds = u->tds;
    db->tds_version = cfg_tds_names[tds];
}

/* APP_NAME, else the URL's, else "sqlgate:<name>". */
static void load_app_name(loader *ld, sg_db_config *db, const db_input *in)
{
    const value *v = in->v;
    const char(*var)[VAR_NAME_MAX] = in->var;
    const url_parts *u = &in->u;

    const char *app = v[DV_APP_NAME].text != NULL ? v[DV_APP_NAME].text : u->app_name;
    if (app != NULL) {
        if (strlen(app) > APP_NAME_MAX)
            cfg_add_error(ld, v[DV_APP_NAME].text != NULL ? var[DV_APP_NAME] : var[DV_URL],
                          "the application name must be at most %d bytes", APP_NAME_MAX);
        db->app_name = cfg_keep(ld, app);
    } else {
        char def[SG_NAME_MAX + 16];
        snprintf(def, sizeof def, "sqlgate:%s", in->name);
        db->app_name = cfg_keep(ld, def);
    }
}

/* SQLite's file: PATH, else the URL's path, else the embedded default. */
static void load_sqlite_path(loader *ld, sg_db_config *db, const db_input *in,
                             const char *embedded_path)
{
    const value *v = in->v;
    const char(*var)[VAR_NAME_MAX] = in->var;
    const url_parts *u = &in->u;
    const char *path_text = v[DV_PATH].text;

    if (in->drv != DRV_SQLITE)
        return;
    const char *path = path_text != NULL ? path_text : u->path;
    if (path == NULL && u->kind != URL_SQLITE)
        path = embedded_path;
    if (path == NULL && u->kind != URL_SQLITE)
        cfg_add_error(ld, var[DV_PATH],
                      "is required for the sqlite driver (or give a sqlite:/// "
                      "%s)",
                      var[DV_URL]);
    db->path = cfg_keep(ld, path);
}

/* READ_ONLY and CRITICAL. */
static void load_flags(loader *ld, sg_db_config *db, const db_input *in)
{
    const value *v = in->v;
    const char(*var)[VAR_NAME_MAX] = in->var;
    const url_parts *u = &in->u;
    int drv = in->drv;

    db->read_only = v[DV_READ_ONLY].num != 0;
    if (v[DV_READ_ONLY].text == NULL && u->has_read_only)
        db->read_only = u->read_only;
    db->critical = v[DV_CRITICAL].num != 0;
    if (drv == DRV_SQLITE && db->read_only && db->path != NULL && strcmp(db->path, ":memory:") == 0)
        cfg_add_error(ld, v[DV_READ_ONLY].text != NULL ? var[DV_READ_ONLY] : var[DV_URL],
                      "a read-only :memory: database would always be empty");
}

/* Pool bounds, timeouts and the health check. */
static void load_pool(loader *ld, sg_db_config *db, const db_input *in)
{
    const value *v = in->v;
    const char(*var)[VAR_NAME_MAX] = in->var;
    const url_parts *u = &in->u;

    db->pool_max = (unsigned)v[DV_POOL_MAX].num;
    db->pool_min = (unsigned)v[DV_POOL_MIN].num;
    if (v[DV_POOL_MAX].ok && v[DV_POOL_MIN].ok && db->pool_min > db->pool_max)
        cfg_add_error(ld, var[DV_POOL_MIN], "must be <= %s (%u) (got %u)", var[DV_POOL_MAX],
                      db->pool_max, db->pool_min);

    db->acquire_timeout_ms = v[DV_ACQUIRE_TIMEOUT_MS].num;
    db->connect_timeout_ms = v[DV_CONNECT_TIMEOUT_MS].num;
    if (v[DV_CONNECT_TIMEOUT_MS].text == NULL && u->has_connect_timeout)
        db->connect_timeout_ms = u->connect_timeout_ms;
    db->query_timeout_ms = v[DV_QUERY_TIMEOUT_MS].num;
    db->idle_timeout_ms = v[DV_IDLE_TIMEOUT_MS].num;
    db->max_lifetime_ms = v[DV_MAX_LIFETIME_MS].num;
    db->retry_max_ms = v[DV_RETRY_MAX_MS].num;
    db->health_query =
        cfg_keep(ld, v[DV_HEALTH_QUERY].text != NULL ? v[DV_HEALTH_QUERY].text
                                                     : cfg_db_vars[DV_HEALTH_QUERY].def);
    db->health_interval_ms = v[DV_HEALTH_INTERVAL_MS].num;
    db->health_timeout_ms = v[DV_HEALTH_TIMEOUT_MS].num;
    db->max_logins_per_sec = (unsigned)v[DV_MAX_LOGINS_PER_SEC].num;
}

/* The read-only login of a SQL Server database: kept as a second database
 * configuration, the same but for the login, so that its pool is an ordinary
 * sg_db (db.h). */
static void load_readonly_login(loader *ld, sg_db_config *db, const db_input *in)
{
    const value *v = in->v;
    const char(*var)[VAR_NAME_MAX] = in->var;
    const char *user = v[DV_READONLY_USER].text;
    const char *pass = v[DV_READONLY_PASSWORD].text;
    const char *file = v[DV_READONLY_PASSWORD_FILE].text;
    if (user == NULL) {
        if (pass != NULL || file != NULL)
            cfg_add_error(ld, var[pass != NULL ? DV_READONLY_PASSWORD : DV_READONLY_PASSWORD_FILE],
                          "is set without %s", var[DV_READONLY_USER]);
        return;
    }
    if (in->drv == DRV_SQLITE) {
        cfg_add_error(ld, var[DV_READONLY_USER],
                      "is for SQL Server; SQLite enforces read-only tokens itself");
        return;
    }
    if (pass != NULL && file != NULL) {
        cfg_add_error(ld, var[DV_READONLY_PASSWORD_FILE],
                      "cannot be combined with %s; set one of them", var[DV_READONLY_PASSWORD]);
        return;
    }
    char *from_file = NULL;
    if (file != NULL &&
        (from_file = read_password_file(ld, var[DV_READONLY_PASSWORD_FILE], file)) == NULL)
        return;
    db->readonly_user = cfg_keep(ld, user);
    db->readonly_password = cfg_keep(ld, from_file != NULL ? from_file : pass);
    sg_free_secret(from_file);
    sg_db_config *ro = cfg_owned_add(ld, malloc(sizeof *ro));
    if (ro == NULL)
        return;
    *ro = *db;
    ro->user = db->readonly_user;
    ro->password = db->readonly_password;
    ro->readonly_user = NULL;
    ro->readonly_password = NULL;
    ro->readonly = NULL;
    ro->pool_min = 0; /* opened on demand: most setups query it less */
    db->readonly = ro;
}

void cfg_load_db(loader *ld, sg_db_config *db, const char *name, const char *prefix,
                 const char *embedded_path)
{
    db_input in;

    /* In the order of the table, so that the error lines come in the order a
     * reader of the docs expects; later steps read what earlier ones set
     * (in.drv, db->path). */
    read_db(ld, db, &in, name, prefix);
    in.drv = choose_driver(ld, db, &in, embedded_path);
    load_server(ld, db, &in);
    load_encryption(ld, db, &in);
    load_app_name(ld, db, &in);
    load_sqlite_path(ld, db, &in, embedded_path);
    load_flags(ld, db, &in);
    load_pool(ld, db, &in);
    load_readonly_login(ld, db, &in);
    cfg_url_clear(&in.u);
}
