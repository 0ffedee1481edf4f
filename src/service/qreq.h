/* qreq: decodes a query request body (CONTRACT.md section 3) into the values
 * a database call takes. Every problem is SG_BAD_REQUEST naming the field. */
#ifndef SQLGATE_QREQ_H
#define SQLGATE_QREQ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sqlgate/driver.h"
#include "sqlgate/error.h"

#define QREQ_MAX_PARAMS    2100 /* SQL Server's limit for one statement */
#define QREQ_MAX_NAME      128
#define QREQ_MAX_OPERATION 200

typedef struct qreq {
    json_t *root;         /* owned: the parsed body; the strings below point into it */
    const char *sql;      /* borrowed from root */
    const char *database; /* "database" member, or NULL */
    const char *operation;
    sg_param *params; /* owned array of n_params; names and text borrowed from root */
    size_t n_params;
    int64_t max_rows;   /* 0: not given */
    int64_t timeout_ms; /* 0: not given */
    bool rows_as_arrays;
} qreq;

/* Parses body (len bytes, need not be NUL-terminated). On success fills q
 * (release with qreq_free) and returns 0; on failure returns -1 with err
 * SG_BAD_REQUEST and q left empty. */
int qreq_parse(qreq *q, const char *body, size_t len, sg_err *err) SG_MUST_USE;

void qreq_free(qreq *q); /* accepts a zeroed or parsed q */

#endif
