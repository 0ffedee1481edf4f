/* jkeys: see jkeys.h. */
#include "jkeys.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

void jkeys_init(jkeys *ks)
{
    ks->n = 0;
    ks->slots = NULL;
    ks->mask = 0;
}

void jkeys_free(jkeys *ks)
{
    free(ks->slots);
    ks->slots = NULL;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void sip_round(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = ROTL(v[1], 13) ^ v[0];
    v[0] = ROTL(v[0], 32);
    v[2] += v[3];
    v[3] = ROTL(v[3], 16) ^ v[2];
    v[0] += v[3];
    v[3] = ROTL(v[3], 21) ^ v[0];
    v[2] += v[1];
    v[1] = ROTL(v[1], 17) ^ v[2];
    v[2] = ROTL(v[2], 32);
}

uint64_t jkeys_siphash13(uint64_t k0, uint64_t k1, const char *in, size_t len)
{
    uint64_t v[4] = {k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
                     k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL};
    const unsigned char *p = (const unsigned char *)in;
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = 0;
        for (int j = 7; j >= 0; j--)
            m = m << 8 | p[i + (size_t)j];
        v[3] ^= m;
        sip_round(v);
        v[0] ^= m;
    }
    uint64_t last = (uint64_t)len << 56;
    for (size_t j = 0; whole + j < len; j++)
        last |= (uint64_t)p[whole + j] << (8 * j);
    v[3] ^= last;
    sip_round(v);
    v[0] ^= last;
    v[2] ^= 0xff;
    sip_round(v);
    sip_round(v);
    sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

static jkey_ref *key_slot(const jkeys *ks, const char *s, uint32_t len, uint32_t obj)
{
    /* the serial goes through a multiplicative mix so equal keys in
     * different objects land apart */
    uint64_t h = jkeys_siphash13(ks->k0, ks->k1, s, len) ^ (obj * 0x9E3779B97F4A7C15ULL);
    for (size_t i = (size_t)h & ks->mask;; i = (i + 1) & ks->mask) {
        jkey_ref *r = &ks->slots[i];
        if (r->s == NULL || (r->obj == obj && r->len == len && memcmp(r->s, s, len) == 0))
            return r;
    }
}

/* Doubles the table (the first time: makes it from few[]). */
static int grow(jkeys *ks)
{
    size_t old_n = ks->slots ? ks->mask + 1 : 0, n = ks->slots ? 2 * old_n : 4 * JKEYS_FEW;
    jkey_ref *old = ks->slots, *slots = calloc(n, sizeof *slots);
    if (slots == NULL)
        return -1;
    if (old == NULL) {
        uint64_t seed[2];
        if (getrandom(seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
            /* no entropy yet (early boot): weaker, but still unknown to a client */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            seed[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)ks;
            seed[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)slots;
        }
        ks->k0 = seed[0];
        ks->k1 = seed[1];
    }
    ks->slots = slots;
    ks->mask = n - 1;
    const jkey_ref *from = old ? old : ks->few;
    for (size_t i = 0; i < (old ? old_n : ks->n); i++) {
        if (from[i].s != NULL)
            *key_slot(ks, from[i].s, from[i].len, from[i].obj) = from[i];
    }
    free(old);
    return 0;
}

int jkeys_add(jkeys *ks, const char *s, uint32_t len, uint32_t obj, bool *dup)
{
    jkey_ref ref = {.s = s, .len = len, .obj = obj};
    *dup = false;
    if (ks->slots == NULL) {
        for (size_t i = 0; i < ks->n; i++) {
            const jkey_ref *r = &ks->few[i];
            if (r->obj == obj && r->len == len && memcmp(r->s, s, len) == 0) {
                *dup = true;
                return 0;
            }
        }
        if (ks->n < JKEYS_FEW) {
            ks->few[ks->n++] = ref;
            return 0;
        }
    }
    if ((ks->slots == NULL || 2 * (ks->n + 1) > ks->mask + 1) && grow(ks) != 0)
        return -1;
    jkey_ref *r = key_slot(ks, s, len, obj);
    if (r->s != NULL) {
        *dup = true;
        return 0;
    }
    *r = ref;
    ks->n++;
    return 0;
}
