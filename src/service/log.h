/* log: one line per event on stderr, JSON objects (default) or text.
 *
 * The edges of the program (HTTP handlers, main) log; library modules do not.
 * Thread-safe: each line is written with one call under a lock.
 */
#ifndef SQLGATE_LOG_H
#define SQLGATE_LOG_H

#include <jansson.h>
#include <stdbool.h>

#include "sqlgate/config.h"

/* Sets the threshold and format; before this call: info, JSON. */
void log_setup(sg_log_level level, bool json);

bool log_enabled(sg_log_level level);

/* Writes one event. fields (steals; may be NULL) is a JSON object whose
 * members follow "time", "level" and "msg". Callers never put secrets in it. */
void log_event(sg_log_level level, const char *msg, json_t *fields);

#define log_info(msg, fields)  log_event(SG_LOG_INFO, (msg), (fields))
#define log_warn(msg, fields)  log_event(SG_LOG_WARN, (msg), (fields))
#define log_error(msg, fields) log_event(SG_LOG_ERROR, (msg), (fields))
#define log_debug(msg, fields) log_event(SG_LOG_DEBUG, (msg), (fields))

#endif
