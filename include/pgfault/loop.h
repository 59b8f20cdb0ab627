/* loop.h - libevent set up once for threads.
 *
 * The fake server runs on its own thread and is stopped from others; the
 * session manager marshals calls from any thread onto its loop. Both need
 * libevent's pthreads locking turned on before the first event_base is
 * made; this is the one place that does it.
 */
#ifndef PGF_LOOP_H
#define PGF_LOOP_H

struct event_base;

/* evthread_use_pthreads(), once per process; any thread, idempotent.
 * Returns 0, or PGF_EINTERNAL when libevent refused. */
int pgf_loop_threads_init(void);
/* A new event_base that other threads may wake (pgf_loop_threads_init()
 * first). Caller frees with event_base_free(). NULL on failure. */
struct event_base *pgf_loop_base_new(void);

#endif
