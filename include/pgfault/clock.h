/* clock.h - monotonic time for deadlines and wall time for reports. */
#ifndef PGF_CLOCK_H
#define PGF_CLOCK_H

#include <stdint.h>

/* Monotonic nanoseconds (CLOCK_MONOTONIC). Use for every deadline. */
uint64_t pgf_now_ns(void);
/* Wall-clock microseconds since the epoch, for reports only. */
uint64_t pgf_wall_us(void);
/* ISO-8601 UTC ("2026-11-26T23:45:37.123Z") into buf (>= 32 bytes). */
void pgf_wall_iso8601(uint64_t wall_us, char *buf, unsigned len);

/* The next value of the process-wide event sequence (atomic; starts at 1).
 * Session events and fault records share it, so a run's history has one
 * total order however many threads produced it. */
uint64_t pgf_seq_next(void);
/* The last value handed out (0 after a reset), taking none: a recorder
 * created now expects its first record at pgf_seq_peek() + 1. */
uint64_t pgf_seq_peek(void);
/* Start the sequence again at 1. Only between runs, when no thread records:
 * each scenario of a suite numbers its history from 1, so it gives the same
 * digest as the same scenario run alone (exact replays). */
void pgf_seq_reset(void);

#define PGF_MS_NS(ms) ((uint64_t)(ms)*1000000ULL)

#endif
