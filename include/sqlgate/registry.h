/* sqlgate registry: names to databases (docs/architecture.md).
 *
 * Holds the sg_db objects it is given and one optional `default` alias. The
 * registry is live: databases can be registered, unregistered and replaced
 * while requests run (a reload does exactly that), and every function here
 * is safe to call from any thread at any time, except sg_registry_free.
 *
 * Ownership and lifetime:
 * - The registry owns every sg_db in it, and for each one optionally a
 *   reference to the sg_config snapshot its sg_db_config lives in (`keep`),
 *   so that a database outlives the reload that replaced its configuration.
 * - A caller that uses a database across any other call takes a reference
 *   with sg_registry_acquire (or sg_registry_acquire_all) and gives it back
 *   with sg_registry_release. The sg_db stays valid, whatever happens to the
 *   registry meanwhile, until that release.
 * - A database that is removed or replaced is *retired*: look-ups stop
 *   finding it at once (UNKNOWN_DATABASE, or the replacement), the references
 *   already taken stay valid, and a closer thread of its own waits until they
 *   are all released or the drain deadline passes, then closes it
 *   (sg_db_close: whatever still runs is interrupted). The sg_db is freed
 *   only after its last release, so nothing ever waits on it from the
 *   caller's side: neither the HTTP loop nor the other databases.
 * - sg_registry_get and sg_registry_at hand out borrowed pointers without a
 *   reference. They are for code that runs while nothing is removed or
 *   replaced (start-up, tests); everything else acquires.
 */
#ifndef SQLGATE_REGISTRY_H
#define SQLGATE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "db.h"
#include "driver.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SG_DEFAULT_ALIAS "default"

typedef struct sg_registry sg_registry;

sg_registry *sg_registry_new(sg_err *err) SG_MUST_USE;

/* Adds db under its name (steals db, also on failure, when it is freed).
 * Fails with SG_BAD_REQUEST on a duplicate name or an invalid/reserved name
 * (`default`, `live`, `ready`), except that a database literally named
 * "default" (legacy mode) is allowed and becomes the default. */
int sg_registry_add(sg_registry *reg, sg_db *db, sg_err *err) SG_MUST_USE;

/* As sg_registry_add, and the registry also holds a reference to `keep`
 * (may be NULL: the caller guarantees db's sg_db_config outlives it) until
 * db is freed; it takes its own reference, keep stays the caller's. The
 * database becomes visible to look-ups at once; open it (sg_db_open) before
 * or after, as the caller prefers. */
int sg_registry_register(sg_registry *reg, sg_db *db, const sg_config *keep,
                         sg_err *err) SG_MUST_USE;

/* Retires the database called `name` (see above): it drains until
 * drain_deadline_ms (monotonic, sg_clock_ms), then closes. When it was the
 * default, there is no default afterwards. SG_UNKNOWN_DATABASE when there is
 * no such name. */
int sg_registry_unregister(sg_registry *reg, const char *name, int64_t drain_deadline_ms,
                           sg_err *err) SG_MUST_USE;

/* Puts db (steals it, also on failure) in the place of the registered
 * database with the same name, in one step: no look-up ever finds neither.
 * The old one is retired as by sg_registry_unregister; a default alias that
 * named it names db now. keep as for sg_registry_register.
 * SG_UNKNOWN_DATABASE when no database has db's name. */
int sg_registry_replace(sg_registry *reg, sg_db *db, const sg_config *keep,
                        int64_t drain_deadline_ms, sg_err *err) SG_MUST_USE;

/* Points the `default` alias at a registered name (NULL removes it).
 * SG_UNKNOWN_DATABASE when the name is not registered. */
int sg_registry_set_default(sg_registry *reg, const char *name, sg_err *err) SG_MUST_USE;

/* Copies the name the alias points to into buf (SG_NAME_MAX + 1 bytes);
 * false (buf "") when there is no default. */
bool sg_registry_default_copy(const sg_registry *reg, char buf[SG_NAME_MAX + 1]);

/* Name the alias points to, or NULL. Borrowed: valid until the default
 * database is replaced or removed (see the header comment). */
const char *sg_registry_default_name(const sg_registry *reg);

/* Look-up by name; NULL or "default" means the default. A new reference, to
 * be given back with sg_registry_release; or NULL with err
 * SG_UNKNOWN_DATABASE (err may be NULL). */
sg_db *sg_registry_acquire(sg_registry *reg, const char *name, sg_err *err) SG_MUST_USE;

/* Gives back a reference from sg_registry_acquire(_all). Accepts NULL. The
 * last release of a retired database may free it, on the caller's thread
 * (its pool is closed by then, so that is quick). */
void sg_registry_release(sg_registry *reg, sg_db *db);

/* Every registered database, in registration order, each with a new
 * reference: a new array of *n entries (NULL when *n is 0, or on allocation
 * failure, with *n 0). Give it back with sg_registry_release_all. */
sg_db **sg_registry_acquire_all(sg_registry *reg, size_t *n);

/* Releases every entry of dbs and frees the array. Accepts NULL. */
void sg_registry_release_all(sg_registry *reg, sg_db **dbs, size_t n);

/* Look-up without a reference (see the header comment); NULL or "default"
 * means the default. Borrowed, or NULL with err SG_UNKNOWN_DATABASE (err may
 * be NULL). */
sg_db *sg_registry_get(const sg_registry *reg, const char *name, sg_err *err);

size_t sg_registry_count(const sg_registry *reg);
sg_db *sg_registry_at(const sg_registry *reg, size_t i); /* borrowed, i < count */

/* Databases retired and not yet freed (draining, or closed and still
 * referenced). */
size_t sg_registry_retired_count(const sg_registry *reg);

/* Called on a retired database's closer thread once it is closed: its name
 * (borrowed for the call) and how many statements had to be interrupted at
 * the drain deadline. Must not call back into the registry. */
typedef void (*sg_registry_retired_fn)(void *ud, const char *name, unsigned cancelled);

/* Installs the listener (fn may be NULL). Call before anything is retired. */
void sg_registry_set_retired_fn(sg_registry *reg, sg_registry_retired_fn fn, void *ud);

/* Builds a registry from a configuration: one sg_db per configured database
 * with its driver, the default alias, and opens every database (a database
 * that is down at start is reported down and retried; the others serve).
 * on_state (may be NULL) is installed on every database before it opens
 * (sg_db_set_state_fn). The registry holds a reference to cfg (sg_config_ref)
 * for as long as one of these databases lives; cfg stays the caller's. */
sg_registry *sg_registry_from_config(const sg_config *cfg, sg_db_state_fn on_state, void *ud,
                                     sg_err *err) SG_MUST_USE;

/* --- Applying a new configuration to a live registry ---------------------- */

typedef enum sg_registry_change {
    SG_REG_ADDED,    /* in cfg, not registered */
    SG_REG_REMOVED,  /* registered, not in cfg */
    SG_REG_CHANGED,  /* both, sg_db_config_equal false: a new sg_db replaces it */
    SG_REG_UNCHANGED /* both, equal: the sg_db stays as it is, connections and all */
} sg_registry_change;

/* "added", "removed", "changed", "unchanged" (static). */
const char *sg_registry_change_name(sg_registry_change change);

/* Called once per name (borrowed for the call): cfg's databases in cfg's
 * order, then the removed ones in registration order. */
typedef void (*sg_registry_change_fn)(void *ud, const char *name, sg_registry_change change);

/* What sg_registry_apply would do with cfg, without doing it. */
void sg_registry_compare(sg_registry *reg, const sg_config *cfg, sg_registry_change_fn fn,
                         void *ud);

/* Finds the driver a database configuration names; NULL = not available. */
typedef const sg_driver *(*sg_driver_find_fn)(const char *name);

/* Makes the registry match cfg (borrowed; the registry takes a reference for
 * the databases it creates from it): new databases are created, opened
 * (state starting, checked at once) and registered; changed ones replace
 * theirs; removed ones are retired; unchanged ones are not touched; the
 * default alias follows cfg->default_name. Retired databases drain until
 * drain_deadline_ms. Every new sg_db is built and opened before anything
 * becomes visible, and the swap happens in one step under the registry's
 * lock, so on failure (err set: a driver is missing, memory, a thread)
 * nothing changed (SG_SHUTTING_DOWN once sg_registry_shutdown_all ran);
 * look-ups never see a half-applied state. Drivers'
 * prepare() is not called again: whether a new configuration needs that is
 * the caller's decision. find NULL means sg_driver_find; on_state as for
 * sg_registry_from_config; fn (may be NULL) reports each name as
 * sg_registry_compare does, after the change. Calls are serialized. */
int sg_registry_apply(sg_registry *reg, const sg_config *cfg, sg_driver_find_fn find,
                      sg_db_state_fn on_state, void *state_ud, int64_t drain_deadline_ms,
                      sg_registry_change_fn fn, void *ud, sg_err *err) SG_MUST_USE;

/* Facade for single-database call sites: sg_db_execute on the named database
 * (NULL = default), holding a reference for the call. */
int sg_registry_execute(sg_registry *reg, const char *name, const char *sql, const sg_param *params,
                        size_t n_params, const sg_sink *sink, void *ud, int64_t *rows_affected,
                        sg_err *err) SG_MUST_USE;

/* Closes every database in parallel against one deadline (sg_db_close),
 * retired ones included (their own drain deadline is cut to this one).
 * *cancelled (may be NULL) receives the total interrupted. 0 when nothing
 * had to be interrupted, else -1. */
int sg_registry_shutdown_all(sg_registry *reg, int64_t deadline_ms, unsigned *cancelled);

/* Frees the registry and every database in it, retired ones included, after
 * waiting for their closer threads. No reference may be outstanding. Accepts
 * NULL. */
void sg_registry_free(sg_registry *reg);

#ifdef __cplusplus
}
#endif
#endif
