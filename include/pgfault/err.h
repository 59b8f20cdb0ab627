/* err.h - pgfault error codes.
 *
 * Every fallible pgfault function returns 0 (or a non-negative value) on
 * success and a negative PGF_E* code on failure. The codes come from one
 * table, PGF_ERRNO_MAP, which also gives pgf_strerror() and pgf_err_name(),
 * so adding an error is one line (libuv's uv-errno pattern).
 */
#ifndef PGF_ERR_H
#define PGF_ERR_H

#include <stdarg.h>
#include <stddef.h>

#define PGF_ERRNO_MAP(X)                                            \
    X(EINVAL, "invalid argument")                                   \
    X(ENOMEM, "out of memory")                                      \
    X(EILLEGAL_STATE, "operation not allowed in the current state") \
    X(ECANCELED, "operation canceled")                              \
    X(ETIMEDOUT, "operation timed out")                             \
    X(EIO, "input/output error")                                    \
    X(EPROTO, "protocol violation")                                 \
    X(ECLOSED, "object is closed")                                  \
    X(EBUSY, "resource busy")                                       \
    X(EAGAIN, "resource temporarily unavailable")                   \
    X(EPARSE, "parse error")                                        \
    X(EBIND, "cannot bind or listen")                               \
    X(ENOTFOUND, "not found")                                       \
    X(EEXIST, "already exists")                                     \
    X(ECONNECT, "connection failed")                                \
    X(EAUTH, "authentication failed")                               \
    X(ESERVER, "server reported an error")                          \
    X(ETOOBIG, "message too large")                                 \
    X(EUSAGE, "bad usage")                                          \
    X(EINTERNAL, "internal error")

/* Positions in the table, starting at 1; the public codes are their negation. */
enum pgf__err_index {
    PGF__ERR_INDEX_NONE = 0,
#define PGF__ERR_IDX(name, msg) PGF__ERR_INDEX_##name,
    PGF_ERRNO_MAP(PGF__ERR_IDX)
#undef PGF__ERR_IDX
        PGF__ERR_INDEX_MAX
};

typedef enum pgf_err {
    PGF_OK = 0,
#define PGF__ERR_DEF(name, msg) PGF_##name = -PGF__ERR_INDEX_##name,
    PGF_ERRNO_MAP(PGF__ERR_DEF)
#undef PGF__ERR_DEF
} pgf_err;

/* Human message for a code ("unknown error" for anything not in the table). */
const char *pgf_strerror(int code);
/* Symbolic name: "PGF_EINVAL". */
const char *pgf_err_name(int code);

#if defined(__GNUC__)
#define PGF_NODISCARD    __attribute__((warn_unused_result))
#define PGF_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PGF_NODISCARD
#define PGF_PRINTF(f, a)
#endif

/* The one error-buffer formatter: writes the message into err (truncated to
 * errlen; err NULL or errlen 0 discards it) and returns `code`, so a
 * fallible function can `return pgf_err_printf(err, errlen, PGF_EPARSE,
 * "%s:%d: ...", ...)`. pgf_err_vprintf puts "where: " first when where is
 * not NULL. */
int pgf_err_printf(char *err, size_t errlen, int code, const char *fmt, ...) PGF_PRINTF(4, 5);
int pgf_err_vprintf(char *err, size_t errlen, int code, const char *where, const char *fmt,
                    va_list ap) PGF_PRINTF(5, 0);

#endif
