/* sqlgate registry (the plan's DatabaseRegistry): names to databases.
 *
 * Holds the sg_db objects it is given and one optional `default` alias. The
 * registry is filled before serving starts and not changed while requests run,
 * so look-ups take no lock.
 */
#ifndef SQLGATE_REGISTRY_H
#define SQLGATE_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "db.h"
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

/* Points the `default` alias at a registered name (NULL removes it).
 * SG_UNKNOWN_DATABASE when the name is not registered. */
int sg_registry_set_default(sg_registry *reg, const char *name, sg_err *err) SG_MUST_USE;

/* Name the alias points to, or NULL. Borrowed. */
const char *sg_registry_default_name(const sg_registry *reg);

/* Look-up by name; NULL or "default" means the default. Borrowed, or NULL
 * with err SG_UNKNOWN_DATABASE (err may be NULL). */
sg_db *sg_registry_get(const sg_registry *reg, const char *name, sg_err *err);

size_t sg_registry_count(const sg_registry *reg);
sg_db *sg_registry_at(const sg_registry *reg, size_t i); /* borrowed, i < count */

/* Builds a registry from a configuration: one sg_db per configured database
 * with its driver, the default alias, and opens every database (a database
 * that is down at start is reported down and retried; the others serve).
 * on_state (may be NULL) is installed on every database before it opens
 * (sg_db_set_state_fn). cfg is borrowed and must outlive the registry. */
sg_registry *sg_registry_from_config(const sg_config *cfg, sg_db_state_fn on_state, void *ud,
                                     sg_err *err) SG_MUST_USE;

/* Facade for single-database call sites: sg_db_execute on the named database
 * (NULL = default). */
int sg_registry_execute(sg_registry *reg, const char *name, const char *sql, const sg_param *params,
                        size_t n_params, const sg_sink *sink, void *ud, int64_t *rows_affected,
                        sg_err *err) SG_MUST_USE;

/* Closes every database in parallel against one deadline (sg_db_close).
 * *cancelled (may be NULL) receives the total interrupted. 0 when nothing
 * had to be interrupted, else -1. */
int sg_registry_shutdown_all(sg_registry *reg, int64_t deadline_ms, unsigned *cancelled);

/* Frees the registry and every database in it. Accepts NULL. */
void sg_registry_free(sg_registry *reg);

#ifdef __cplusplus
}
#endif
#endif
