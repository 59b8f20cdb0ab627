/* idle_conns.c - hold K idle libpq connections open, for memory measurements.
 *
 * Opens K connections with PQconnectStart/PQconnectPoll (non-blocking, at
 * most -p of them in flight at once so the server's accept backlog is
 * never the limit), and when all K are established prints "ready K" on
 * stdout (followed by this process's VmRSS in kB before the first connect,
 * so the caller can tell libpq's cost per connection from the process
 * baseline) and waits until stdin reaches EOF or gives a line; then finishes
 * every connection and exits. The caller reads the server's VmRSS while
 * we wait. Exit 0 when all K connected, 1 when one failed (its message on
 * stderr), 2 bad usage.
 *
 * What it does not do: send queries; every connection stays idle.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* This process's resident set in kB, or -1. */
static long self_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: idle_conns -d CONNINFO -n K [-p PARALLEL] [-t TIMEOUT_S]\n"
               "Open K idle connections, print 'ready K', wait for stdin, close them.\n");
}

int main(int argc, char **argv)
{
    const char *conninfo = NULL;
    int k = 0, parallel = 64;
    double timeout = 120;
    int opt;
    while ((opt = getopt(argc, argv, "d:n:p:t:h")) != -1) {
        switch (opt) {
        case 'd':
            conninfo = optarg;
            break;
        case 'n':
            k = atoi(optarg);
            break;
        case 'p':
            parallel = atoi(optarg);
            break;
        case 't':
            timeout = atof(optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (conninfo == NULL || k < 1 || k > 1000000 || parallel < 1 || timeout <= 0) {
        usage(stderr);
        return 2;
    }

    PGconn **conns = calloc((size_t)k, sizeof *conns);
    PostgresPollingStatusType *want = calloc((size_t)k, sizeof *want);
    struct pollfd *pfds = calloc((size_t)parallel, sizeof *pfds);
    int *pidx = calloc((size_t)parallel, sizeof *pidx);
    if (conns == NULL || want == NULL || pfds == NULL || pidx == NULL) {
        fprintf(stderr, "idle_conns: out of memory\n");
        return 1;
    }
    PGconn *probe = PQconnectStart(""); /* load libpq's lazy state into the baseline */
    PQfinish(probe);
    long rss_start = self_rss_kb();
    int rc = 1;
    int started = 0, done = 0, first_pending = 0;
    double deadline = now_s() + timeout;
    while (done < k) {
        /* keep up to `parallel` connects in flight */
        while (started < k && started - done < parallel) {
            PGconn *c = PQconnectStart(conninfo);
            if (c == NULL || PQstatus(c) == CONNECTION_BAD) {
                fprintf(stderr, "idle_conns: connection %d: %s", started,
                        c ? PQerrorMessage(c) : "out of memory\n");
                PQfinish(c);
                goto out;
            }
            conns[started] = c;
            want[started] = PGRES_POLLING_WRITING;
            started++;
        }
        int np = 0;
        for (int i = first_pending; i < started && np < parallel; i++) {
            if (want[i] == PGRES_POLLING_OK)
                continue;
            pfds[np].fd = PQsocket(conns[i]);
            pfds[np].events = want[i] == PGRES_POLLING_READING ? POLLIN : POLLOUT;
            pfds[np].revents = 0;
            pidx[np++] = i;
        }
        double left = deadline - now_s();
        if (left <= 0) {
            fprintf(stderr, "idle_conns: timed out with %d of %d connected\n", done, k);
            goto out;
        }
        int n = poll(pfds, (nfds_t)np, left > 1 ? 1000 : (int)(left * 1000) + 1);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "idle_conns: poll: %s\n", strerror(errno));
            goto out;
        }
        for (int j = 0; j < np && n > 0; j++) {
            if (pfds[j].revents == 0)
                continue;
            int i = pidx[j];
            want[i] = PQconnectPoll(conns[i]);
            if (want[i] == PGRES_POLLING_FAILED) {
                fprintf(stderr, "idle_conns: connection %d: %s", i, PQerrorMessage(conns[i]));
                goto out;
            }
            if (want[i] == PGRES_POLLING_OK)
                done++;
        }
        while (first_pending < started && want[first_pending] == PGRES_POLLING_OK)
            first_pending++;
    }
    printf("ready %d %ld\n", k, rss_start);
    fflush(stdout);
    char line[64];
    if (fgets(line, sizeof line, stdin) == NULL) {
        /* EOF: the caller is done too */
    }
    rc = 0;
out:
    for (int i = 0; i < started; i++)
        PQfinish(conns[i]);
    free(conns);
    free(want);
    free(pfds);
    free(pidx);
    return rc;
}
