/* enum_names.h - the name/parse pair of an X-macro enum, written once.
 *
 * Every table of names in pgfault (fault phases and actions, health
 * reasons, report outcomes, history record types, ...) is an X-macro list
 * that gives both the enum and its strings. This macro defines, in one .c
 * file, the two functions every such table needs:
 *
 *   const char *NAME_FN(TYPE v);    the string, or `unknown` when out of range
 *   int PARSE_FN(const char *s);    the value, or -1 (s may be NULL)
 *
 * and fails to compile when the strings and the enum's COUNT disagree:
 *
 *   #define PHASE_STR(name, str) str,
 *   PGF_ENUM_NAMES(pgf_phase, pgf_phase_name, pgf_phase_parse, PGF_PHASE_COUNT, "?",
 *                  PGF_PHASE_MAP(PHASE_STR))
 */
#ifndef PGF_ENUM_NAMES_H
#define PGF_ENUM_NAMES_H

#include <string.h>

#define PGF_ENUM_NAMES(type, name_fn, parse_fn, count, unknown, ...)                  \
    static const char *const name_fn##_strings[] = {__VA_ARGS__};                     \
    _Static_assert(sizeof name_fn##_strings / sizeof name_fn##_strings[0] == (count), \
                   #name_fn ": one string per enum value");                           \
    const char *name_fn(type v)                                                       \
    {                                                                                 \
        return (unsigned)v < (unsigned)(count) ? name_fn##_strings[v] : (unknown);    \
    }                                                                                 \
    int parse_fn(const char *s)                                                       \
    {                                                                                 \
        for (int i = 0; s != NULL && i < (int)(count); i++)                           \
            if (strcmp(s, name_fn##_strings[i]) == 0)                                 \
                return i;                                                             \
        return -1;                                                                    \
    }

#endif
