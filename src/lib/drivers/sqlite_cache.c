/* sqlite_cache: a SQLite connection's cache of prepared statements.
 *
 * A batch of exactly one statement keeps its prepared statement in a small
 * per-connection cache keyed by the batch text, so the next batch with the
 * same text skips the parser. A cached statement at rest
 * is reset and unbound: it holds no read transaction (which would block WAL
 * checkpoints, and writers of a shared-cache database) and no pointer into a
 * freed batch. The authorizer decides from the text alone (the same text is
 * allowed or denied on every prepare; trusted statements are never cached),
 * and SQLite prepares a statement again by itself when the schema or a
 * setting it was compiled against changed, running the authorizer again. A
 * statement whose batch failed is dropped rather than reused. A PRAGMA is
 * never cached (some act while prepared, not when run), and multi-statement
 * batches are prepared statement by statement as they run.
 */
#include "sqlite_int.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a of the batch text; also measures it. */
uint64_t sl_sql_hash(const char *sql, size_t *len)
{
    const unsigned char *p = (const unsigned char *)sql;
    uint64_t h = UINT64_C(14695981039346656037);
    for (; *p != '\0'; p++) {
        h ^= *p;
        h *= UINT64_C(1099511628211);
    }
    *len = (size_t)(p - (const unsigned char *)sql);
    return h;
}

cache_entry *sl_cache_find(sg_driver_conn *c, const char *sql, size_t len, uint64_t hash)
{
    for (size_t i = 0; i < CACHE_SIZE; i++) {
        cache_entry *e = &c->cache[i];
        if (e->sql != NULL && e->hash == hash && e->len == len && memcmp(e->sql, sql, len) == 0) {
            e->used = ++c->cache_tick;
            return e;
        }
    }
    return NULL;
}

void sl_cache_drop(cache_entry *e)
{
    sqlite3_finalize(e->stmt);
    free(e->sql);
    memset(e, 0, sizeof *e);
}

/* Gives `st`, prepared from the whole batch text `sql`, to the cache, evicting
 * the least recently used entry when it is full. Returns the new entry, or
 * NULL when out of memory: then st stays the batch's own. */
cache_entry *sl_cache_add(sg_driver_conn *c, const char *sql, size_t len, uint64_t hash,
                          sqlite3_stmt *st, int line)
{
    char *key = malloc(len + 1);
    if (key == NULL)
        return NULL;
    memcpy(key, sql, len + 1);
    cache_entry *victim = NULL;
    for (size_t i = 0; i < CACHE_SIZE; i++) {
        cache_entry *e = &c->cache[i];
        if (e->sql == NULL) {
            victim = e;
            break;
        }
        if (victim == NULL || e->used < victim->used)
            victim = e;
    }
    /* No batch is using the victim: the only batch is this one, and its
     * statement is not in the cache yet. */
    if (victim->sql != NULL)
        sl_cache_drop(victim);
    *victim = (cache_entry){
        .sql = key, .len = len, .hash = hash, .stmt = st, .line = line, .used = ++c->cache_tick};
    return victim;
}

/* Ends the batch's use of c->stmt. A cached statement goes back to its entry
 * reset (ending its read transaction and releasing its locks) and without
 * bindings (they point into the batch's parameter arena), or, when `keep` is
 * false because the batch failed, is dropped from the cache. The batch's own
 * statement is finalized. */
void sl_stmt_release(sg_driver_conn *c, bool keep)
{
    if (c->entry != NULL) {
        if (keep) {
            sqlite3_reset(c->stmt);
            sqlite3_clear_bindings(c->stmt);
        } else {
            sl_cache_drop(c->entry);
        }
        c->entry = NULL;
    } else {
        sqlite3_finalize(c->stmt);
    }
    c->stmt = NULL;
}
