/* secret.c - the registry of known secrets and the in-place scrubber (see
 * secret.h). A fixed table published through an atomic count: readers on
 * any thread see a prefix of the registered secrets, never a torn entry. */
#include "pgfault/secret.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static char *secrets[PGF_SECRET_MAX];
static size_t lens[PGF_SECRET_MAX];
static atomic_size_t count;

int pgf_secret_add(const char *s)
{
    if (s == NULL)
        return 1;
    size_t n = strlen(s);
    if (n < PGF_SECRET_MIN)
        return 1;
    size_t k = atomic_load(&count);
    for (size_t i = 0; i < k; i++)
        if (lens[i] == n && memcmp(secrets[i], s, n) == 0)
            return 1;
    if (k == PGF_SECRET_MAX)
        return -1;
    char *copy = strdup(s);
    if (copy == NULL)
        return -1;
    secrets[k] = copy;
    lens[k] = n;
    atomic_store(&count, k + 1);
    return 0;
}

void pgf_secret_scrub_n(char *s, size_t n)
{
    size_t k = atomic_load(&count);
    if (s == NULL || k == 0)
        return;
    for (size_t i = 0; i < k; i++) {
        char *at = s, *end = s + n;
        while ((at = memmem(at, (size_t)(end - at), secrets[i], lens[i])) != NULL) {
            memset(at, '*', lens[i]);
            at += lens[i];
        }
    }
}

bool pgf_secret_found(const char *s)
{
    size_t k = atomic_load(&count);
    if (s == NULL || k == 0)
        return false;
    for (size_t i = 0; i < k; i++)
        if (strstr(s, secrets[i]) != NULL)
            return true;
    return false;
}

size_t pgf_secret_count(void)
{
    return atomic_load(&count);
}

void pgf_secret_scrub(char *s)
{
    if (s != NULL && atomic_load(&count) > 0)
        pgf_secret_scrub_n(s, strlen(s));
}

void pgf_secret_clear(void)
{
    size_t k = atomic_exchange(&count, 0);
    for (size_t i = 0; i < k; i++) {
        free(secrets[i]);
        secrets[i] = NULL;
    }
}
