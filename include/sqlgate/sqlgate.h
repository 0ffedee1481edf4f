/* sqlgate: named SQL databases behind one door. Umbrella header of the library. */
#ifndef SQLGATE_SQLGATE_H
#define SQLGATE_SQLGATE_H

#include "config.h"
#include "db.h"
#include "driver.h"
#include "error.h"
#include "hist.h"
#include "pool.h"
#include "registry.h"
#include "sha256.h"
#include "tokens.h"

#define SQLGATE_VERSION "0.1.0"

#endif
