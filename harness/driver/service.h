/* service.h - the user's service as a child process: started in a given
 * directory with a given environment, its stdout/stderr captured in files,
 * watched for an early death, stopped with SIGTERM then SIGKILL after a
 * grace period. Only the PID this module started is ever signalled.
 * Driver-private (target_http.c is the user).
 */
#ifndef PGF_SERVICE_H
#define PGF_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "pgfault/err.h"

typedef struct pgf_service {
    pid_t pid;       /* 0 = not running */
    bool exited;     /* reaped (by pgf_service_poll or stop) */
    int status;      /* waitpid status once exited */
    bool we_stopped; /* the exit came after our SIGTERM/SIGKILL */
    bool killed;     /* SIGKILL was needed */
} pgf_service;

/* Start argv (argv[0] looked up in PATH) in dir, with envp as its whole
 * environment; stdout and stderr go to out_path/err_path (truncated).
 * Returns 0 or a PGF_E* code with err naming what failed (posix_spawnp
 * reports a failed exec or chdir, so a missing program is an error here,
 * not a silent early exit). */
int pgf_service_start(pgf_service *s, char *const argv[], char *const envp[], const char *dir,
                      const char *out_path, const char *err_path, char *err,
                      size_t errlen) PGF_NODISCARD;
/* The same with the child's stdin and stdout as pipes (an adapter
 * process): *to_child / *from_child are the parent's ends (close-on-exec,
 * caller closes); stderr goes to err_path. */
int pgf_service_start_piped(pgf_service *s, char *const argv[], char *const envp[], const char *dir,
                            const char *err_path, int *to_child, int *from_child, char *err,
                            size_t errlen) PGF_NODISCARD;
/* Has it exited? Non-blocking; reaps it. */
bool pgf_service_poll(pgf_service *s);
/* SIGTERM, wait up to grace_ms, then SIGKILL and reap. Idempotent. */
void pgf_service_stop(pgf_service *s, unsigned grace_ms);
/* "exited with status 1" / "killed by signal 9" into buf. */
void pgf_service_describe(const pgf_service *s, char *buf, size_t len);

#endif
