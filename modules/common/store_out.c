/*
 * The local stores' buffered writer (store_out.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store_out.h"

void
store_out_start(store_out *o, int fd)
{
    o->fd = fd;
    o->err = 0;
    o->total = 0;
    o->lines = 0;
    o->len = 0;
}

void
store_out_flush(store_out *o)
{
    size_t done = 0;

    while (o->err == 0 && done < o->len) {
        ssize_t w = write(o->fd, o->buf + done, o->len - done);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            o->err = errno;
        else
            done += (size_t)w;
    }
    o->total += (long long)done;
    o->len = 0;
}

void
store_out_put(store_out *o, const char *s, size_t n)
{
    const char *p = s;

    while ((p = memchr(p, '\n', n - (size_t)(p - s))) != NULL) {
        o->lines++;
        p++;
    }
    while (n > 0 && o->err == 0) {
        size_t take = sizeof(o->buf) - o->len;

        if (take == 0) {
            store_out_flush(o);
            continue;
        }
        if (take > n)
            take = n;
        memcpy(o->buf + o->len, s, take);
        o->len += take;
        s += take;
        n -= take;
    }
}

void
store_out_puts(store_out *o, const char *s)
{
    store_out_put(o, s, strlen(s));
}

char
store_addr_char(unsigned char c, int no_space)
{
    if (c < 0x20 || c == 0x7f || (no_space && c == ' '))
        return '_';
    return (char)c;
}

void
store_out_put_addr(store_out *o, const char *s, int no_space)
{
    for (; *s != '\0'; s++) {
        char out = store_addr_char((unsigned char)*s, no_space);

        store_out_put(o, &out, 1);
    }
}

void
store_out_delivery_headers(store_out *o, const char *sender,
                           const char *orcpt, const char *rcpt)
{
    store_out_puts(o, "Return-Path: <");
    store_out_put_addr(o, sender, 0);
    store_out_puts(o, ">\n");
    if (orcpt != NULL && orcpt[0] != '\0') {
        store_out_puts(o, "X-Original-To: ");
        store_out_put_addr(o, orcpt, 0);
        store_out_puts(o, "\n");
    }
    store_out_puts(o, "Delivered-To: ");
    store_out_put_addr(o, rcpt, 0);
    store_out_puts(o, "\n");
}

void
store_why(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (why == NULL || len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}
