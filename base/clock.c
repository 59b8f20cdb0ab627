/* clock.c - clocks (see clock.h). */
#include "pgfault/clock.h"

#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

uint64_t pgf_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t pgf_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

void pgf_wall_iso8601(uint64_t wall_us, char *buf, unsigned len)
{
    time_t secs = (time_t)(wall_us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(wall_us % 1000000 / 1000));
}

static atomic_uint_fast64_t seq_counter;

uint64_t pgf_seq_next(void)
{
    return atomic_fetch_add(&seq_counter, 1) + 1;
}

uint64_t pgf_seq_peek(void)
{
    return atomic_load(&seq_counter);
}

void pgf_seq_reset(void)
{
    atomic_store(&seq_counter, 0);
}
