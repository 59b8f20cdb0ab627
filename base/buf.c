/* buf.c - growable byte buffer (see buf.h). */
#include "pgfault/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pgf_buf_init(pgf_buf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = false;
}

void pgf_buf_free(pgf_buf *b)
{
    free(b->data);
    pgf_buf_init(b);
}

void pgf_buf_reset(pgf_buf *b)
{
    b->len = 0;
    b->failed = false;
}

bool pgf_buf_reserve(pgf_buf *b, size_t extra)
{
    if (b->failed)
        return false;
    if (extra > SIZE_MAX / 2 - b->len) {
        b->failed = true;
        return false;
    }
    size_t need = b->len + extra;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void pgf_buf_put(pgf_buf *b, const void *p, size_t n)
{
    if (n == 0 || !pgf_buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void pgf_buf_put_u8(pgf_buf *b, uint8_t v)
{
    pgf_buf_put(b, &v, 1);
}

void pgf_buf_put_be16(pgf_buf *b, uint16_t v)
{
    uint8_t t[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    pgf_buf_put(b, t, 2);
}

void pgf_buf_put_be32(pgf_buf *b, uint32_t v)
{
    uint8_t t[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    pgf_buf_put(b, t, 4);
}

void pgf_buf_put_cstr(pgf_buf *b, const char *s)
{
    pgf_buf_put(b, s, strlen(s) + 1);
}

void pgf_buf_printf(pgf_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if (!pgf_buf_reserve(b, (size_t)n + 1))
        return;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void pgf_buf_patch_be32(pgf_buf *b, size_t off, uint32_t v)
{
    if (b->failed || off + 4 > b->len)
        return;
    b->data[off] = (uint8_t)(v >> 24);
    b->data[off + 1] = (uint8_t)(v >> 16);
    b->data[off + 2] = (uint8_t)(v >> 8);
    b->data[off + 3] = (uint8_t)v;
}

void pgf_buf_consume(pgf_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}
