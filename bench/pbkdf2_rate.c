/* pbkdf2_rate.c - the client-side ceiling of a SCRAM-SHA-256 connection rate.
 *
 * A SCRAM client must derive SaltedPassword = PBKDF2-HMAC-SHA256(password,
 * salt, 4096 iterations) on every connection (libpq does, pgbench -C
 * therefore does too); no server can make that faster. This program runs
 * that derivation (libcrypto, the same primitive libpq uses) in a loop on
 * THREADS threads for SECONDS and prints
 *   {"derivations": N, "seconds": S, "rate": R, "us_per_derivation": U, ...}
 * R is the rate on all cores right now (shared with whatever else runs);
 * U is CPU time per derivation, which other tenants barely change.
 *
 * What it does not do: the rest of SCRAM (a few HMACs, negligible).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#define ITERATIONS 4096 /* PostgreSQL's scram_iterations default */

static atomic_bool stop_flag;

typedef struct worker {
    pthread_t th;
    uint64_t done;
    double cpu_s; /* this thread's CPU time: robust to other tenants */
    bool failed;
} worker;

static void *work(void *p)
{
    worker *w = p;
    static const char pw[] = "bench_scram";
    static const unsigned char salt[16] = "0123456789abcdef";
    unsigned char out[32];
    while (!atomic_load(&stop_flag)) {
        if (PKCS5_PBKDF2_HMAC(pw, (int)sizeof pw - 1, salt, (int)sizeof salt, ITERATIONS,
                              EVP_sha256(), (int)sizeof out, out) != 1) {
            w->failed = true;
            break;
        }
        w->done++;
    }
    struct timespec cpu;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    w->cpu_s = (double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9;
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int threads = 2;
    double seconds = 2;
    int opt;
    while ((opt = getopt(argc, argv, "j:T:h")) != -1) {
        switch (opt) {
        case 'j':
            threads = atoi(optarg);
            break;
        case 'T':
            seconds = atof(optarg);
            break;
        default:
            fprintf(opt == 'h' ? stdout : stderr, "usage: pbkdf2_rate [-j THREADS] [-T SECONDS]\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    if (threads < 1 || threads > 256 || seconds <= 0 || seconds > 600) {
        fprintf(stderr, "pbkdf2_rate: need 1 <= THREADS <= 256 and 0 < SECONDS <= 600\n");
        return 2;
    }
    worker *w = calloc((size_t)threads, sizeof *w);
    if (w == NULL)
        return 3;
    double t0 = now_s();
    for (int i = 0; i < threads; i++)
        if (pthread_create(&w[i].th, NULL, work, &w[i]) != 0) {
            fprintf(stderr, "pbkdf2_rate: cannot start thread %d\n", i);
            return 3;
        }
    struct timespec ts = {.tv_sec = (time_t)seconds,
                          .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&stop_flag, true);
    uint64_t done = 0;
    double cpu_s = 0;
    bool failed = false;
    for (int i = 0; i < threads; i++) {
        pthread_join(w[i].th, NULL);
        done += w[i].done;
        cpu_s += w[i].cpu_s;
        failed |= w[i].failed;
    }
    double elapsed = now_s() - t0;
    free(w);
    if (failed) {
        fprintf(stderr, "pbkdf2_rate: PKCS5_PBKDF2_HMAC failed\n");
        return 3;
    }
    printf("{\"derivations\": %llu, \"seconds\": %.3f, \"rate\": %.1f, "
           "\"us_per_derivation\": %.1f, \"threads\": %d, \"iterations\": %d}\n",
           (unsigned long long)done, elapsed, (double)done / elapsed,
           done ? cpu_s * 1e6 / (double)done : 0.0, threads, ITERATIONS);
    return 0;
}
