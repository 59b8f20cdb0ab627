/* err.c - strings for the PGF_ERRNO_MAP table. */
#include "pgfault/err.h"

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
