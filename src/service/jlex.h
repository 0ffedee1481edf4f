/* jlex: the lexer of qreq's strict single-pass JSON parser (RFC 8259, as
 * jansson reads it): strings (UTF-8 checked, escapes and surrogate pairs
 * decoded, \u0000 refused), numbers typed as jansson types them (integers
 * must fit int64_t), literals, white space, and errors that name the line
 * and column. No tree: the caller drives it value by value.
 */
#ifndef SQLGATE_JLEX_H
#define SQLGATE_JLEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sqlgate/error.h"

/* Value kinds as jansson types them: a number with a fraction or an
 * exponent is real (1e2 too), any other number is an integer (-0 too). */
typedef enum jtype {
    J_ABSENT,
    J_OBJECT,
    J_ARRAY,
    J_STRING,
    J_INTEGER,
    J_REAL,
    J_TRUE,
    J_FALSE,
    J_NULL,
} jtype;

typedef struct jval {
    jtype type;
    const char *s; /* J_STRING: unescaped and NUL-terminated, in out */
    size_t len;
    int64_t i; /* J_INTEGER */
    double f;  /* J_REAL */
} jval;

/* Where the lexer reads and writes. Strings are unescaped into out at w, one
 * buffer of at least (end - start) + 1 bytes: an unescaped string plus its
 * NUL never takes more room than its quoted form, so the bytes of out in use
 * never pass the read position. The lexer never advances w: the caller keeps
 * a string (w += len + 1) or lets the next one overwrite it. */
typedef struct jlex {
    const unsigned char *start, *p, *end; /* borrowed text; p: the read position */
    char *out;                            /* borrowed */
    size_t w;                             /* bytes of out kept */
    sg_err *err;                          /* borrowed; where errors go */
} jlex;

/* Line and column (1-based; the column counts characters) of at. */
void jlex_position(const jlex *lx, const unsigned char *at, size_t *line, size_t *col);

/* SG_BAD_REQUEST "the body is not valid JSON (line L, column C): why"; -1. */
int jlex_error(const jlex *lx, const unsigned char *at, const char *fmt, ...) SG_PRINTF(3, 4);

/* jlex_error "expected <wanted>, found <what is at at>"; -1. */
int jlex_unexpected(const jlex *lx, const unsigned char *at, const char *wanted);

/* SG_INTERNAL "out of memory"; -1. */
int jlex_out_of_memory(const jlex *lx);

bool jlex_is_digit(int c);
void jlex_skip_space(jlex *lx);

/* Each reads the value at lx->p into *v and moves past it; 0 or -1 (err set).
 * jlex_string: the opening quote is at p; v->s points into out at w. */
int jlex_string(jlex *lx, jval *v);
int jlex_number(jlex *lx, jval *v);
int jlex_literal(jlex *lx, jval *v); /* true, false, null */

#endif
