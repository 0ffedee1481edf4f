/* demo: the small schema and rows the embedded databases start with, so a
 * new user's first query returns real rows. */
#ifndef SQLGATE_DEMO_H
#define SQLGATE_DEMO_H

#include <stdbool.h>

#include "sqlgate/registry.h"

/* True when the embedded database file for `name` does not exist yet (call
 * before the registry opens it). */
bool demo_needs_seed(const sg_config *cfg, const char *name);

/* Creates the demo schema and rows in database `name` ("core" or "app").
 * Returns 0, or -1 with err set. */
int demo_seed(sg_registry *reg, const char *name, sg_err *err);

#endif
