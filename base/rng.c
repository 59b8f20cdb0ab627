/* rng.c - xoshiro256** streams seeded by splitmix64 (public-domain algorithms
 * by Blackman and Vigna; written from their description). */
#include "pgfault/rng.h"

uint64_t pgf_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t pgf_hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 0x100000001b3ULL;
    }
    return pgf_mix64(h);
}

void pgf_rng_init(pgf_rng *r, uint64_t seed, uint64_t a, uint64_t b)
{
    uint64_t x = pgf_mix64(seed) ^ pgf_mix64(a + 0x632be59bd9b4e019ULL) ^
                 pgf_mix64(b * 0x9e3779b97f4a7c15ULL + 1);
    for (int i = 0; i < 4; i++) {
        x += 0x9e3779b97f4a7c15ULL;
        r->s[i] = pgf_mix64(x);
    }
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0)
        r->s[0] = 1;
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t pgf_rng_next(pgf_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t pgf_rng_below(pgf_rng *r, uint64_t n)
{
    if (n == 0)
        return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do {
        v = pgf_rng_next(r);
    } while (v >= limit);
    return v % n;
}

double pgf_rng_unit(pgf_rng *r)
{
    return (double)(pgf_rng_next(r) >> 11) * 0x1.0p-53;
}
