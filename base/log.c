/* log.c - stderr logger; one write(2) per line so threads do not interleave. */
#include "pgfault/log.h"
#include "pgfault/secret.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static atomic_int log_level = -1;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

int pgf_log_level_parse(const char *s)
{
    if (s == NULL)
        return PGF_EINVAL;
    for (int i = 0; i < (int)(sizeof level_names / sizeof level_names[0]); i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    return PGF_EINVAL;
}

int pgf_log_level_get(void)
{
    int l = atomic_load_explicit(&log_level, memory_order_relaxed);
    if (l < 0) {
        int parsed = pgf_log_level_parse(getenv("PGFAULT_LOG"));
        l = parsed >= 0 ? parsed : PGF_LOG_WARN;
        atomic_store_explicit(&log_level, l, memory_order_relaxed);
    }
    return l;
}

void pgf_log_level_set(int level)
{
    atomic_store_explicit(&log_level, level, memory_order_relaxed);
}

void pgf_log_write(int level, const char *fmt, ...)
{
    char line[1024];
    int n =
        snprintf(line, sizeof line,
                 "pgfault: %s: ", level >= 0 && level <= PGF_LOG_TRACE ? level_names[level] : "?");
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    pgf_secret_scrub_n(line, len); /* a password quoted by a server or libpq, too */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
