/* testutil.h - helpers shared by the CUnit suites: temp dirs, child
 * processes with deadlines (a `pgfault serve` under test), transcript
 * vectors. Everything a helper starts, the matching stop function ends. */
#ifndef PGF_TESTUTIL_H
#define PGF_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A fresh private directory under $TMPDIR (or /tmp); caller frees the string
 * and removes the tree with pgf_t_rmtree(). NULL on failure. */
char *pgf_t_mkdtemp(const char *tag);
void pgf_t_rmtree(const char *dir);

/* A started child process whose stdout we read line by line. */
typedef struct pgf_t_child {
    pid_t pid;
    int out_fd; /* child's stdout, read end */
    char line[512];
} pgf_t_child;

/* Start argv[0] (a path) with argv; stdout piped to us, stderr inherited.
 * Returns 0 or -1. */
int pgf_t_spawn(pgf_t_child *c, char *const argv[]);
/* Read one line of the child's stdout into c->line within timeout_ms.
 * Returns 0, or -1 on EOF/timeout. */
int pgf_t_readline(pgf_t_child *c, int timeout_ms);
/* SIGTERM, wait up to timeout_ms, then SIGKILL. Returns the exit status as
 * from waitpid (or -1). */
int pgf_t_stop(pgf_t_child *c, int timeout_ms);

/* Start `pgfault serve` with extra args (NULL-terminated) on 127.0.0.1:0
 * and parse the "listening tcp 127.0.0.1:PORT" line; returns the port or -1. */
int pgf_t_serve(pgf_t_child *c, const char *const *extra_args);

/* One message of a .hex transcript (tests/data/transcripts). */
typedef struct pgf_t_msg {
    char dir; /* 'C' client->server, 'S' server->client */
    uint8_t *bytes;
    size_t len;
} pgf_t_msg;

/* Load NAME.hex; returns the number of messages (>= 0) or -1.
 * Caller frees with pgf_t_msgs_free. */
int pgf_t_load_hex(const char *name, pgf_t_msg **out);
void pgf_t_msgs_free(pgf_t_msg *msgs, int n);

#endif
