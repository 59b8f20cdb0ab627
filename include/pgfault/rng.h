/* rng.h - seeded, splittable random streams.
 *
 * Every random decision in pgfault is drawn from a stream derived from
 * (run seed, stream ids...), never from a shared generator, so a decision
 * for connection 17 does not depend on how other connections were
 * scheduled (FoundationDB's rule). Generator: xoshiro256**, seeded through
 * splitmix64. Not cryptographic: SCRAM nonces and cancel keys that must
 * be unguessable use OpenSSL's RAND_bytes instead.
 */
#ifndef PGF_RNG_H
#define PGF_RNG_H

#include <stdint.h>

typedef struct pgf_rng {
    uint64_t s[4];
} pgf_rng;

/* A stream for (seed, a, b): same inputs, same sequence, on every machine. */
void pgf_rng_init(pgf_rng *r, uint64_t seed, uint64_t a, uint64_t b);
uint64_t pgf_rng_next(pgf_rng *r);
/* Uniform in [0, n) without modulo bias; n == 0 returns 0. */
uint64_t pgf_rng_below(pgf_rng *r, uint64_t n);
/* Uniform double in [0, 1). */
double pgf_rng_unit(pgf_rng *r);
/* splitmix64 mixing step, exposed for hashing ids into seeds. */
uint64_t pgf_mix64(uint64_t x);
/* Stable 64-bit hash of a string (FNV-1a then mixed), for rule names. */
uint64_t pgf_hash_str(const char *s);

#endif
