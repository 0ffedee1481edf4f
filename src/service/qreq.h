/* qreq: decodes a query request body (docs/api.md) into the values
 * a database call takes. Every problem is SG_BAD_REQUEST naming the field.
 *
 * The body is read by a strict single-pass JSON parser (RFC 8259, as jansson
 * reads it with JSON_REJECT_DUPLICATES): the whole body must be valid JSON,
 * unknown members included; duplicate keys at any level, \u0000, lone
 * surrogates and invalid UTF-8 are rejected; integers must fit int64_t. No
 * tree is built: the strings the request needs are unescaped into one owned
 * buffer. Deliberate differences from jansson: nesting is capped at
 * QREQ_MAX_DEPTH arrays/objects (jansson: 2048 values), and a raw NUL byte
 * right after a number or true/false/null is an error (jansson skips it). */
#ifndef SQLGATE_QREQ_H
#define SQLGATE_QREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sqlgate/driver.h"
#include "sqlgate/error.h"

#define QREQ_MAX_PARAMS    2100 /* SQL Server's limit for one statement */
#define QREQ_MAX_NAME      128
#define QREQ_MAX_OPERATION 200
#define QREQ_MAX_DEPTH     64 /* nested arrays/objects; a request needs 2 */

typedef struct qreq {
    char *strings;        /* owned: the body's unescaped strings; the strings below point into it */
    const char *sql;      /* borrowed from strings; non-empty */
    const char *database; /* "database" member, or NULL */
    const char *operation;
    sg_param *params; /* owned array of n_params, in body order; names and text borrowed from
                         strings */
    size_t n_params;
    int64_t max_rows;   /* 0: not given */
    int64_t timeout_ms; /* 0: not given */
    bool rows_as_arrays;
} qreq;

/* Parses body (len bytes, need not be NUL-terminated; borrowed, not kept).
 * On success fills q (release with qreq_free) and returns 0; on failure
 * returns -1 with err SG_BAD_REQUEST (SG_INTERNAL when memory runs out) and q
 * left empty. */
int qreq_parse(qreq *q, const char *body, size_t len, sg_err *err) SG_MUST_USE;

void qreq_free(qreq *q); /* accepts a zeroed or parsed q */

#endif
