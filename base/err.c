/* err.c - strings for the PGF_ERRNO_MAP table, and the one formatter of
 * caller-supplied error buffers. */
#include "pgfault/err.h"

#include <stdio.h>

const char *pgf_strerror(int code)
{
    switch (code) {
    case PGF_OK:
        return "success";
#define PGF__ERR_STR(name, msg) \
    case PGF_##name:            \
        return msg;
        PGF_ERRNO_MAP(PGF__ERR_STR)
#undef PGF__ERR_STR
    }
    return "unknown error";
}

const char *pgf_err_name(int code)
{
    switch (code) {
    case PGF_OK:
        return "PGF_OK";
#define PGF__ERR_NAME(name, msg) \
    case PGF_##name:             \
        return "PGF_" #name;
        PGF_ERRNO_MAP(PGF__ERR_NAME)
#undef PGF__ERR_NAME
    }
    return "PGF_EUNKNOWN";
}

int pgf_err_vprintf(char *err, size_t errlen, int code, const char *where, const char *fmt,
                    va_list ap)
{
    if (err == NULL || errlen == 0)
        return code;
    int k = where != NULL ? snprintf(err, errlen, "%s: ", where) : 0;
    if (k >= 0 && (size_t)k < errlen)
        vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
    return code;
}

int pgf_err_printf(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pgf_err_vprintf(err, errlen, code, NULL, fmt, ap);
    va_end(ap);
    return code;
}
