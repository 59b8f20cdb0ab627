/* net.c - "HOST:PORT" parsing, TCP listeners and address text shared by
 * the fake server and the proxy; see net.h. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "pgfault/net.h"

int pgf_net_split_hostport(const char *spec, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon;
    if (spec[0] == '[') {
        const char *close_br = strchr(spec, ']');
        if (close_br == NULL || close_br[1] != ':')
            return -1;
        snprintf(host, hostlen, "%.*s", (int)(close_br - spec - 1), spec + 1);
        colon = close_br + 1;
    } else {
        colon = strrchr(spec, ':');
        if (colon == NULL)
            return -1;
        snprintf(host, hostlen, "%.*s", (int)(colon - spec), spec);
    }
    snprintf(port, portlen, "%s", colon + 1);
    char *end;
    long pn = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || pn < 0 || pn > 65535)
        return -1;
    return 0;
}

int pgf_net_format_addr(const struct sockaddr *sa, int salen, char *out, size_t outlen, int *port)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int p;
    if (sa == NULL)
        return -1;
    if (sa->sa_family == AF_INET && salen >= (int)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        p = ntohs(in->sin_port);
        snprintf(out, outlen, "%s:%d", host, p);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        p = ntohs(in6->sin6_port);
        snprintf(out, outlen, "[%s]:%d", host, p);
    } else {
        return -1;
    }
    if (port != NULL)
        *port = p;
    return 0;
}

int pgf_net_listen_tcp(struct event_base *base, const char *spec, const char *example,
                       evconnlistener_cb cb, void *arg, struct evconnlistener **out, char *addr,
                       size_t addrlen, int *port, char *err, size_t errlen)
{
    char host[256], ports[16];
    *out = NULL;
    if (pgf_net_split_hostport(spec, host, sizeof host, ports, sizeof ports) != 0) {
        snprintf(err, errlen, "--listen '%s': expected HOST:PORT (e.g. %s)", spec, example);
        return PGF_EINVAL;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int gai = getaddrinfo(host[0] ? host : NULL, ports, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "--listen '%s': %s", spec, gai_strerror(gai));
        return PGF_EINVAL;
    }
    struct evconnlistener *l = evconnlistener_new_bind(
        base, cb, arg, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 4096,
        res->ai_addr, (int)res->ai_addrlen);
    freeaddrinfo(res);
    if (l == NULL) {
        snprintf(err, errlen, "cannot listen on %s: %s", spec, strerror(errno));
        return PGF_EBIND;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char text[INET6_ADDRSTRLEN + 16] = "?";
    *port = 0;
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&ss, &sl);
    pgf_net_format_addr((struct sockaddr *)&ss, (int)sl, text, sizeof text, port);
    snprintf(addr, addrlen, "tcp %s", text);
    *out = l;
    return 0;
}
