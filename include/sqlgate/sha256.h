/* sqlgate SHA-256 (FIPS 180-4): enough to store API tokens as digests.
 *
 * Our own small implementation, so the library needs no crypto dependency for
 * one hash. Not for bulk data: it favours plainness over speed.
 */
#ifndef SQLGATE_SHA256_H
#define SQLGATE_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SG_SHA256_BYTES 32

typedef struct sg_sha256_ctx {
    uint32_t h[8];
    uint64_t total; /* bytes hashed so far */
    unsigned char block[64];
    size_t used; /* bytes waiting in block */
} sg_sha256_ctx;

void sg_sha256_init(sg_sha256_ctx *s);
void sg_sha256_update(sg_sha256_ctx *s, const void *data, size_t len);
/* Writes the digest and wipes the state. */
void sg_sha256_final(sg_sha256_ctx *s, unsigned char out[SG_SHA256_BYTES]);

/* One-shot digest of data. */
void sg_sha256(const void *data, size_t len, unsigned char out[SG_SHA256_BYTES]);

/* Lower-case hex of a digest into out (65 bytes with the NUL). */
void sg_sha256_hex(const unsigned char digest[SG_SHA256_BYTES], char out[2 * SG_SHA256_BYTES + 1]);

/* Compares two digests in constant time. */
bool sg_sha256_equal(const unsigned char a[SG_SHA256_BYTES],
                     const unsigned char b[SG_SHA256_BYTES]);

#ifdef __cplusplus
}
#endif
#endif
