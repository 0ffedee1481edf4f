/* sqlgate: named SQL databases behind one door. Umbrella header of the library. */
#ifndef SQLGATE_SQLGATE_H
#define SQLGATE_SQLGATE_H

#include "clock.h"
#include "config.h"
#include "db.h"
#include "driver.h"
#include "error.h"
#include "hist.h"
#include "pool.h"
#include "registry.h"
#include "sha256.h"
#include "tokens.h"

#include "sqlgate/version.h" /* SQLGATE_VERSION, generated from meson.build */

#endif
