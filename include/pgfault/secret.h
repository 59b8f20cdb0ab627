/* secret.h - the process's known secrets, blanked from everything it writes.
 *
 * Masking a conninfo (config.h) hides a password where it is expected; this
 * catches it where it is not: a server error that quotes a database name
 * that was really a whole conninfo, a libpq message, a debug log line.
 * The CLI registers every password it is given (serve's roles, url's
 * DATABASE_URL, a scenario's server.external) before any thread starts; the
 * logger, the report model and the run's history then overwrite every
 * occurrence with '*' of the same length (in place: the text keeps its
 * length, so any buffer can be scrubbed).
 *
 * What this does not do: register anything by itself, or hide secrets
 * shorter than PGF_SECRET_MIN bytes (masking every "pw" in every log line
 * would garble them and hide nothing useful).
 */
#ifndef PGF_SECRET_H
#define PGF_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#define PGF_SECRET_MIN 4
#define PGF_SECRET_MAX 32 /* registered at most; more are ignored (and said so by the return) */

/* Register s (copied). 0; 1 when s is too short or already known; -1 when
 * the table is full or out of memory. Call before starting threads. */
int pgf_secret_add(const char *s);
/* Overwrite every registered secret in s (NUL-terminated) with '*'. */
void pgf_secret_scrub(char *s);
/* The same on s[0..n). */
void pgf_secret_scrub_n(char *s, size_t n);
/* Whether any registered secret occurs in s (NUL-terminated): for text that
 * must not be written to (a string literal), scrub a copy when true. */
bool pgf_secret_found(const char *s);
/* How many secrets are registered (0: nothing to scrub; a caller on a hot
 * path checks this once instead of scanning each text). */
size_t pgf_secret_count(void);
/* Forget every secret (tests). */
void pgf_secret_clear(void);

#endif
