/* loop.c - the one libevent-threads setup (loop.h). */
#include "pgfault/loop.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>

#include "pgfault/err.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int once_rc;

static void use_pthreads(void)
{
    once_rc = evthread_use_pthreads() == 0 ? 0 : PGF_EINTERNAL;
}

int pgf_loop_threads_init(void)
{
    pthread_once(&once, use_pthreads);
    return once_rc;
}

struct event_base *pgf_loop_base_new(void)
{
    if (pgf_loop_threads_init() != 0)
        return NULL;
    return event_base_new();
}
