/* net.h - the address handling the fake server and the proxy share:
 * "HOST:PORT" parsing, binding a TCP listener, and writing a socket
 * address as text.
 *
 * Both fakes listen the same way (--listen HOST:PORT, [V6]:PORT or :PORT;
 * libevent listener, backlog 4096, SO_REUSEADDR) and name addresses the
 * same way ("127.0.0.1:5432", "[::1]:5432"), so the code lives here once.
 */
#ifndef PGF_NET_H
#define PGF_NET_H

#include <stddef.h>
#include <sys/socket.h>

#include <event2/listener.h>

#include "pgfault/err.h"

/* "HOST:PORT", "[V6]:PORT" or ":PORT" -> host (may be empty) and port (a
 * number 0..65535). Returns 0, or -1 if SPEC has no such shape. */
int pgf_net_split_hostport(const char *spec, char *host, size_t hostlen, char *port,
                           size_t portlen);

/* Writes an AF_INET address as "HOST:PORT" or an AF_INET6 one as
 * "[HOST]:PORT" into out, and its port into *port (if not NULL). Returns 0,
 * or -1 (out untouched) for any other family or a short AF_INET address. */
int pgf_net_format_addr(const struct sockaddr *sa, int salen, char *out, size_t outlen, int *port);

/* Binds a TCP listener on SPEC (as pgf_net_split_hostport; an empty host
 * is every address) calling cb(arg) for each connection. On success
 * *out is the listener, addr holds "tcp HOST:PORT" of the bound address
 * and *port the bound port (the one chosen for port 0). Errors, with a
 * message naming SPEC ("--listen 'SPEC': ..."; `example` is the address
 * the message suggests): PGF_EINVAL (bad SPEC or host), PGF_EBIND. */
int pgf_net_listen_tcp(struct event_base *base, const char *spec, const char *example,
                       evconnlistener_cb cb, void *arg, struct evconnlistener **out, char *addr,
                       size_t addrlen, int *port, char *err, size_t errlen);

#endif
