/* service.c - see service.h. posix_spawnp (a failed exec or chdir is an
 * error of the start, with its errno); waitpid(pid) only, never a process
 * group or a name: pgfault stops exactly the process it started. */
#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pgfault/clock.h"

/* Start argv with stdin/stdout/stderr = in_fd/out_fd/err_fd (in_fd -1:
 * /dev/null). The fds are the caller's; the child's copies are made by
 * dup2, everything else is close-on-exec.
 *
 * posix_spawn, not fork + exec: the run has threads (the fake server's
 * loops, the workers), and a forked child runs with whatever locks those
 * threads held at the fork; any call of ours or of a sanitizer's
 * interceptor before exec could wait on one for ever, and so would the
 * parent, reading the pipe that reports exec's errno. glibc's posix_spawn
 * runs only its own async-signal-safe steps in the child and reports the
 * errno of a failed chdir or exec as its return value. The child starts
 * with every signal unblocked and SIGPIPE at its default (pgfault ignores
 * it): the service gets the signals a shell would give it. */
static int spawn(pgf_service *s, char *const argv[], char *const envp[], const char *dir, int in_fd,
                 int out_fd, int err_fd, char *err, size_t errlen)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int e = posix_spawn_file_actions_init(&fa);
    if (e != 0) {
        snprintf(err, errlen, "cannot start '%s': %s", argv[0], strerror(e));
        return PGF_ENOMEM;
    }
    if ((e = posix_spawnattr_init(&at)) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        snprintf(err, errlen, "cannot start '%s': %s", argv[0], strerror(e));
        return PGF_ENOMEM;
    }
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE);
    e = in_fd >= 0 ? posix_spawn_file_actions_adddup2(&fa, in_fd, 0)
                   : posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (e == 0)
        e = posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    if (e == 0)
        e = posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
    if (e == 0)
        e = posix_spawn_file_actions_addchdir_np(&fa, dir);
    if (e == 0)
        e = posix_spawnattr_setsigmask(&at, &none);
    if (e == 0)
        e = posix_spawnattr_setsigdefault(&at, &dfl);
    if (e == 0)
        e = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = 0;
    if (e == 0)
        e = posix_spawnp(&pid, argv[0], &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (e != 0) {
        snprintf(err, errlen, "cannot start '%s' in %s: %s", argv[0], dir, strerror(e));
        return PGF_ENOTFOUND;
    }
    s->pid = pid;
    return 0;
}

int pgf_service_start(pgf_service *s, char *const argv[], char *const envp[], const char *dir,
                      const char *out_path, const char *err_path, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int efd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc;
    if (out < 0 || efd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", out < 0 ? out_path : err_path,
                 strerror(errno));
        rc = PGF_EIO;
    } else {
        rc = spawn(s, argv, envp, dir, -1, out, efd, err, errlen);
    }
    if (out >= 0)
        close(out);
    if (efd >= 0)
        close(efd);
    return rc;
}

int pgf_service_start_piped(pgf_service *s, char *const argv[], char *const envp[], const char *dir,
                            const char *err_path, int *to_child, int *from_child, char *err,
                            size_t errlen)
{
    memset(s, 0, sizeof *s);
    *to_child = *from_child = -1;
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    int efd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = 0;
    if (efd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", err_path, strerror(errno));
        return PGF_EIO;
    }
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        rc = PGF_EIO;
        goto done;
    }
    rc = spawn(s, argv, envp, dir, in[0], out[1], efd, err, errlen);
    if (rc == 0) {
        *to_child = in[1];
        *from_child = out[0];
        in[1] = out[0] = -1;
    }
done:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (out[i] >= 0)
            close(out[i]);
    }
    close(efd);
    return rc;
}

bool pgf_service_poll(pgf_service *s)
{
    if (s->pid == 0 || s->exited)
        return s->exited;
    int st;
    pid_t r = waitpid(s->pid, &st, WNOHANG);
    if (r == s->pid) {
        s->exited = true;
        s->status = st;
    }
    return s->exited;
}

void pgf_service_stop(pgf_service *s, unsigned grace_ms)
{
    if (s->pid == 0 || pgf_service_poll(s))
        return;
    s->we_stopped = true;
    kill(s->pid, SIGTERM);
    uint64_t deadline = pgf_now_ns() + (uint64_t)grace_ms * 1000000ULL;
    while (!pgf_service_poll(s) && pgf_now_ns() < deadline) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (!s->exited) {
        s->killed = true;
        kill(s->pid, SIGKILL);
        int st;
        if (waitpid(s->pid, &st, 0) == s->pid) {
            s->exited = true;
            s->status = st;
        }
    }
}

void pgf_service_describe(const pgf_service *s, char *buf, size_t len)
{
    if (!s->exited)
        snprintf(buf, len, "still running (pid %d)", (int)s->pid);
    else if (WIFEXITED(s->status))
        snprintf(buf, len, "pid %d exited with status %d", (int)s->pid, WEXITSTATUS(s->status));
    else if (WIFSIGNALED(s->status))
        snprintf(buf, len, "pid %d killed by signal %d (%s)", (int)s->pid, WTERMSIG(s->status),
                 strsignal(WTERMSIG(s->status)));
    else
        snprintf(buf, len, "pid %d ended (status 0x%x)", (int)s->pid, s->status);
}
