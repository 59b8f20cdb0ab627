/* testutil.c - see testutil.h. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pgfault/clock.h"

char *pgf_t_mkdtemp(const char *tag)
{
    const char *base = getenv("TMPDIR");
    if (base == NULL || *base == '\0')
        base = "/tmp";
    size_t n = strlen(base) + strlen(tag) + 32;
    char *p = malloc(n);
    if (p == NULL)
        return NULL;
    snprintf(p, n, "%s/pgf-%s-XXXXXX", base, tag);
    if (mkdtemp(p) == NULL) {
        free(p);
        return NULL;
    }
    return p;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void pgf_t_rmtree(const char *dir)
{
    if (dir != NULL)
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int pgf_t_spawn(pgf_t_child *c, char *const argv[])
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    fcntl(p[0], F_SETFD, FD_CLOEXEC);
    c->pid = pid;
    c->out_fd = p[0];
    c->line[0] = '\0';
    return 0;
}

int pgf_t_readline(pgf_t_child *c, int timeout_ms)
{
    uint64_t deadline = pgf_now_ns() + PGF_MS_NS(timeout_ms);
    size_t n = 0;
    for (;;) {
        uint64_t now = pgf_now_ns();
        if (now >= deadline)
            return -1;
        struct pollfd pfd = {c->out_fd, POLLIN, 0};
        int r = poll(&pfd, 1, (int)((deadline - now) / 1000000 + 1));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        char ch;
        ssize_t got = read(c->out_fd, &ch, 1);
        if (got <= 0)
            return -1;
        if (ch == '\n') {
            c->line[n] = '\0';
            return 0;
        }
        if (n + 1 < sizeof c->line)
            c->line[n++] = ch;
    }
}

int pgf_t_stop(pgf_t_child *c, int timeout_ms)
{
    if (c->pid <= 0)
        return -1;
    kill(c->pid, SIGTERM);
    uint64_t deadline = pgf_now_ns() + PGF_MS_NS(timeout_ms);
    int status = -1;
    for (;;) {
        pid_t r = waitpid(c->pid, &status, WNOHANG);
        if (r == c->pid)
            break;
        if (r < 0) {
            status = -1;
            break;
        }
        if (pgf_now_ns() >= deadline) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &status, 0);
            status = -1;
            break;
        }
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL);
    }
    close(c->out_fd);
    c->pid = -1;
    c->out_fd = -1;
    return status;
}

int pgf_t_serve(pgf_t_child *c, const char *const *extra)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = PGF_BINARY_PATH;
    argv[n++] = "serve";
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    for (; extra != NULL && *extra != NULL && n < 62; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    if (pgf_t_spawn(c, (char *const *)argv) != 0)
        return -1;
    for (int i = 0; i < 8; i++) {
        if (pgf_t_readline(c, 10000) != 0)
            break;
        int port;
        if (sscanf(c->line, "listening tcp 127.0.0.1:%d", &port) == 1)
            return port;
    }
    pgf_t_stop(c, 2000);
    return -1;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int pgf_t_load_hex(const char *name, pgf_t_msg **out)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/transcripts/%s.hex", PGF_TEST_DATA_DIR, name);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    pgf_t_msg *msgs = NULL;
    int n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    while (getline(&line, &lcap, f) > 0) {
        if ((line[0] != 'C' && line[0] != 'S') || line[1] != '>' || line[3] != ' ')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            pgf_t_msg *m = realloc(msgs, (size_t)cap * sizeof *m);
            if (m == NULL)
                break;
            msgs = m;
        }
        const char *h = line + 4;
        size_t hl = strcspn(h, " \r\n");
        pgf_t_msg *m = &msgs[n];
        m->dir = line[0];
        m->len = hl / 2;
        m->bytes = malloc(m->len + 1);
        if (m->bytes == NULL)
            break;
        for (size_t i = 0; i < m->len; i++)
            m->bytes[i] = (uint8_t)(hexval(h[2 * i]) << 4 | hexval(h[2 * i + 1]));
        n++;
    }
    free(line);
    fclose(f);
    *out = msgs;
    return n;
}

void pgf_t_msgs_free(pgf_t_msg *msgs, int n)
{
    for (int i = 0; i < n; i++)
        free(msgs[i].bytes);
    free(msgs);
}
