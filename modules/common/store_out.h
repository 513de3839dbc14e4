/*
 * Shared by the local stores: the buffered writer a message is copied
 * into a mailbox (mbox) or a Maildir file with, and the "why" text that
 * goes into logs and DSNs. A write error is kept, not returned at each
 * call: the copy goes on cheaply and the caller looks at `err` once.
 */
#ifndef MODULES_COMMON_STORE_OUT_H
#define MODULES_COMMON_STORE_OUT_H

#include <stddef.h>

#define STORE_OUT_SIZE 65536

typedef struct store_out {
    int fd;
    int err;         /* errno of the first failed write, else 0 */
    long long total; /* octets written to fd */
    long long lines; /* LFs put (a Maildir's W= counts them as CRLF) */
    size_t len;
    char buf[STORE_OUT_SIZE];
} store_out;

/* Start writing to fd, counters at zero. */
void store_out_start(store_out *o, int fd);
void store_out_put(store_out *o, const char *s, size_t n);
void store_out_puts(store_out *o, const char *s);
/* An envelope address in a header: control characters (and, with
 * no_space, spaces: an mbox From_ line) become '_' so it stays one line
 * (and one field). */
void store_out_put_addr(store_out *o, const char *s, int no_space);
/* That rule for one octet of an address (deliver_pipe's prefix). */
char store_addr_char(unsigned char c, int no_space);
/* The headers a local delivery adds, LF-terminated: Return-Path (<> for
 * a bounce), X-Original-To (orcpt, the recipient as the client gave it,
 * as Postfix's local(8); none when NULL or empty), Delivered-To. */
void store_out_delivery_headers(store_out *o, const char *sender,
                                const char *orcpt, const char *rcpt);
/* Write out what is buffered. */
void store_out_flush(store_out *o);

/* vsnprintf into why (NULL or len 0: nothing). */
void store_why(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
