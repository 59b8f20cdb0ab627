/* overtime.c - see overtime.h. */
#include "overtime.h"

#include <stdlib.h>
#include <string.h>

void pgf_ot_init(pgf_overtime *ot, size_t cap, uint64_t seed, uint64_t stream)
{
    memset(ot, 0, sizeof *ot);
    ot->bin_ns = PGF_OT_BIN0_NS;
    ot->capdots = cap;
    pgf_rng_init(&ot->rng, seed, stream, 0x07E5A3D1ULL);
}

/* Bins f times wider: new bin j holds old bins j*f .. j*f+f-1. In place,
 * as j*f >= j. */
static void fold(pgf_overtime *ot, uint32_t f)
{
    uint32_t n = (ot->nbins + f - 1) / f;
    for (uint32_t j = 0; j < n; j++) {
        uint64_t ok = 0, bad = 0;
        for (uint32_t i = j * f; i < j * f + f && i < ot->nbins; i++) {
            ok += ot->ok[i];
            bad += ot->bad[i];
        }
        ot->ok[j] = ok;
        ot->bad[j] = bad;
    }
    memset(ot->ok + n, 0, (PGF_OT_BINS - n) * sizeof *ot->ok);
    memset(ot->bad + n, 0, (PGF_OT_BINS - n) * sizeof *ot->bad);
    ot->nbins = n;
    ot->bin_ns *= f;
}

static bool bins_ready(pgf_overtime *ot)
{
    if (ot->ok != NULL)
        return true;
    if (ot->failed)
        return false;
    ot->ok = calloc(PGF_OT_BINS, sizeof *ot->ok);
    ot->bad = calloc(PGF_OT_BINS, sizeof *ot->bad);
    if (ot->ok == NULL || ot->bad == NULL) {
        free(ot->ok);
        free(ot->bad);
        ot->ok = ot->bad = NULL;
        ot->failed = true;
        return false;
    }
    return true;
}

static void count(pgf_overtime *ot, uint64_t t_ns, uint64_t ok, uint64_t bad)
{
    if (!bins_ready(ot))
        return;
    while (t_ns / ot->bin_ns >= PGF_OT_BINS)
        fold(ot, 10);
    uint64_t k = t_ns / ot->bin_ns;
    ot->ok[k] += ok;
    ot->bad[k] += bad;
    if (k + 1 > ot->nbins)
        ot->nbins = (uint32_t)k + 1;
}

static void keep_dot(pgf_overtime *ot, const pgf_ot_dot *d)
{
    ot->seen++;
    if (ot->capdots == 0)
        return;
    if (ot->dots == NULL && !ot->failed) {
        ot->dots = malloc(ot->capdots * sizeof *ot->dots);
        if (ot->dots == NULL)
            ot->failed = true;
    }
    if (ot->dots == NULL)
        return;
    if (ot->ndots < ot->capdots) {
        ot->dots[ot->ndots++] = *d;
        return;
    }
    /* Algorithm R: the seen-th check replaces a kept one with chance
     * cap/seen, so every check is kept with the same chance. */
    uint64_t j = pgf_rng_below(&ot->rng, ot->seen);
    if (j < ot->capdots)
        ot->dots[j] = *d;
}

void pgf_ot_add(pgf_overtime *ot, bool healthy, unsigned reason, uint64_t t_ns, uint64_t latency_ns)
{
    count(ot, t_ns, healthy ? 1 : 0, healthy ? 0 : 1);
    keep_dot(ot, &(pgf_ot_dot){t_ns, latency_ns, (uint8_t)reason});
}

int pgf_ot_merge(pgf_overtime *dst, pgf_overtime *const *parts, int n)
{
    uint64_t seen = 0, width = dst->bin_ns;
    size_t have = 0;
    for (int p = 0; p < n; p++) {
        seen += parts[p]->seen;
        have += parts[p]->ndots;
        if (parts[p]->bin_ns > width)
            width = parts[p]->bin_ns;
        dst->failed |= parts[p]->failed;
    }
    /* bins: every part's widths are 1 ms x 10^k, so the widest is a whole
     * multiple of each and their bins nest in its bins exactly */
    while (dst->bin_ns < width) {
        if (!bins_ready(dst))
            break;
        fold(dst, 10);
    }
    for (int p = 0; p < n; p++)
        for (uint32_t i = 0; i < parts[p]->nbins; i++)
            if (parts[p]->ok[i] + parts[p]->bad[i] > 0)
                count(dst, (uint64_t)i * parts[p]->bin_ns, parts[p]->ok[i], parts[p]->bad[i]);

    /* dots: each part's reservoir is uniform over its own checks; take
     * from each in proportion to its checks, chosen at random within it
     * (a partial Fisher-Yates shuffle), so the whole is uniform too */
    size_t m = have < dst->capdots ? have : dst->capdots;
    if (m > 0 && dst->dots == NULL) {
        dst->dots = malloc(dst->capdots * sizeof *dst->dots);
        if (dst->dots == NULL) {
            dst->failed = true;
            return PGF_ENOMEM;
        }
    }
    for (int p = 0; p < n && m > 0; p++) {
        pgf_overtime *src = parts[p];
        size_t take = seen > 0 ? (size_t)((double)m * (double)src->seen / (double)seen + 0.5) : 0;
        if (take > src->ndots)
            take = src->ndots;
        if (take > dst->capdots - dst->ndots)
            take = dst->capdots - dst->ndots;
        for (size_t i = 0; i < take; i++) {
            size_t j = i + (size_t)pgf_rng_below(&dst->rng, src->ndots - i);
            pgf_ot_dot t = src->dots[i];
            src->dots[i] = src->dots[j];
            src->dots[j] = t;
            dst->dots[dst->ndots++] = src->dots[i];
        }
    }
    dst->seen += seen;
    return dst->failed ? PGF_ENOMEM : 0;
}

void pgf_ot_free(pgf_overtime *ot)
{
    free(ot->ok);
    free(ot->bad);
    free(ot->dots);
    ot->ok = ot->bad = NULL;
    ot->dots = NULL;
    ot->nbins = 0;
    ot->ndots = 0;
}
