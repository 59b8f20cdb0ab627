/* service.c - see service.h. fork + exec with a close-on-exec pipe that
 * carries errno back when exec fails; waitpid(pid) only, never a process
 * group or a name: pgfault stops exactly the process it started. */
#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pgfault/clock.h"

/* Fork and exec with stdin/stdout/stderr = in_fd/out_fd/err_fd (in_fd -1:
 * /dev/null). The fds are the caller's; the child's copies are made by
 * dup2, everything else is close-on-exec. */
static int spawn(pgf_service *s, char *const argv[], char *const envp[], const char *dir, int in_fd,
                 int out_fd, int err_fd, char *err, size_t errlen)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return PGF_EIO;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        return PGF_EIO;
    }
    if (pid == 0) {
        /* child: only async-signal-safe calls until exec */
        int e = 0;
        int in = in_fd >= 0 ? in_fd : open("/dev/null", O_RDONLY);
        if (in < 0 || dup2(in, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
            e = errno;
        if (e == 0 && chdir(dir) != 0)
            e = errno;
        if (e == 0) {
            execvpe(argv[0], argv, envp);
            e = errno;
        }
        ssize_t w = write(pfd[1], &e, sizeof e);
        (void)w;
        _exit(127);
    }
    close(pfd[1]);
    int child_err = 0;
    ssize_t n;
    do
        n = read(pfd[0], &child_err, sizeof child_err);
    while (n < 0 && errno == EINTR);
    close(pfd[0]);
    if (n == (ssize_t)sizeof child_err) {
        waitpid(pid, NULL, 0);
        snprintf(err, errlen, "cannot start '%s' in %s: %s", argv[0], dir, strerror(child_err));
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
