/* log.h - levelled logging to stderr.
 *
 * Messages are lower-case, prefixed by the object they concern
 * ("[conn 17 auth] ..."), and cost one branch when the level is off:
 * PGF_LOG evaluates its arguments only when the level is enabled.
 * Never pass a password to these functions.
 */
#ifndef PGF_LOG_H
#define PGF_LOG_H

#include "pgfault/err.h"

typedef enum pgf_log_level {
    PGF_LOG_ERROR = 0,
    PGF_LOG_WARN = 1,
    PGF_LOG_INFO = 2,
    PGF_LOG_DEBUG = 3,
    PGF_LOG_TRACE = 4,
} pgf_log_level;

/* Current level (atomic read); default PGF_LOG_WARN, or PGFAULT_LOG=debug etc. */
int pgf_log_level_get(void);
void pgf_log_level_set(int level);
/* Parse "error|warn|info|debug|trace"; returns level or PGF_EINVAL. */
int pgf_log_level_parse(const char *s);

void pgf_log_write(int level, const char *fmt, ...) PGF_PRINTF(2, 3);

#define PGF_LOG(level, ...)                      \
    do {                                         \
        if ((level) <= pgf_log_level_get())      \
            pgf_log_write((level), __VA_ARGS__); \
    } while (0)

#define pgf_log_error(...) PGF_LOG(PGF_LOG_ERROR, __VA_ARGS__)
#define pgf_log_warn(...)  PGF_LOG(PGF_LOG_WARN, __VA_ARGS__)
#define pgf_log_info(...)  PGF_LOG(PGF_LOG_INFO, __VA_ARGS__)
#define pgf_log_debug(...) PGF_LOG(PGF_LOG_DEBUG, __VA_ARGS__)
#define pgf_log_trace(...) PGF_LOG(PGF_LOG_TRACE, __VA_ARGS__)

#endif
