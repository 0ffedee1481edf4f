/* jkeys: the set of object keys a JSON pass has seen, to reject duplicates
 * (jansson's JSON_REJECT_DUPLICATES) as each key arrives.
 *
 * The first JKEYS_FEW keys are compared one by one (a request has a
 * handful); past that every key goes into an open-addressing hash table
 * keyed by (object serial, key). Its hash is SipHash-1-3 with a random key
 * drawn for that table, so that a client cannot make its keys collide.
 */
#ifndef SQLGATE_JKEYS_H
#define SQLGATE_JKEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JKEYS_FEW 16

typedef struct jkey_ref {
    const char *s; /* borrowed from the caller's text; NULL: a free slot */
    uint32_t len;
    uint32_t obj;
} jkey_ref;

typedef struct jkeys {
    jkey_ref few[JKEYS_FEW]; /* while slots is NULL */
    size_t n;
    jkey_ref *slots; /* owned; mask + 1 slots, at most half in use */
    size_t mask;
    uint64_t k0, k1;
} jkeys;

/* An empty set (few[] is left as it is: only its first n entries count). */
void jkeys_init(jkeys *ks);

/* Adds key s (len bytes, borrowed: must stay valid and unchanged while ks is
 * used) of object obj; *dup tells whether obj already had it (then nothing is
 * added). Returns 0, or -1 when memory runs out. */
int jkeys_add(jkeys *ks, const char *s, uint32_t len, uint32_t obj, bool *dup);

/* Frees the table; ks may be reused after jkeys_init. */
void jkeys_free(jkeys *ks);

/* SipHash-1-3 of len bytes at in (as in CPython and Rust's HashMap). */
uint64_t jkeys_siphash13(uint64_t k0, uint64_t k1, const char *in, size_t len);

#endif
