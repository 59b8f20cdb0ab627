/* accept_guard.h - what a listener does when accept(2) fails for want of
 * file descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM).
 *
 * Left alone, a libevent listener at EMFILE retries at once (the pending
 * connection keeps the socket readable): the loop spins at full CPU and
 * logs without end, and the clients in the backlog wait for nothing. The
 * guard instead (1) sheds one pending connection using a reserve fd kept
 * open for this (close the reserve, accept, close, reopen: the client sees
 * a clean close instead of hanging), (2) disables the listener and enables
 * it again after a back-off (100 ms, doubling to 1 s while the errors go
 * on), and (3) logs at most once a second, with the count it held back.
 *
 * One guard serves any number of listeners on one event_base (loop thread
 * only). Other accept errors (ECONNABORTED, EINTR, ...) are ignored.
 */
#ifndef PGF_ACCEPT_GUARD_H
#define PGF_ACCEPT_GUARD_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct evconnlistener;

typedef struct pgf_accept_guard pgf_accept_guard;

/* May the listener be enabled again after the back-off? (e.g. false while
 * the server was told to stop listening). NULL = always. */
typedef bool (*pgf_accept_guard_may_enable_fn)(void *arg);

/* what: log prefix, e.g. "[server]" (copied). NULL on ENOMEM. */
pgf_accept_guard *pgf_accept_guard_new(struct event_base *base, const char *what,
                                       pgf_accept_guard_may_enable_fn may_enable, void *arg);
/* NULL is a no-op. Listeners it disabled stay as they are. */
void pgf_accept_guard_free(pgf_accept_guard *g);
/* Forget a listener about to be freed. */
void pgf_accept_guard_forget(pgf_accept_guard *g, struct evconnlistener *l);
/* Call from the listener's error callback (evconnlistener_set_error_cb). */
void pgf_accept_guard_on_error(pgf_accept_guard *g, struct evconnlistener *l);
/* Out-of-fd errors seen so far. */
uint64_t pgf_accept_guard_errors(const pgf_accept_guard *g);

#endif
