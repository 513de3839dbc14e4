/*
 * The connection's core-only side (not installed): creation, implicit TLS,
 * and the raw buffer access the DATA reader uses.
 *
 * I/O model: the socket is put in non-blocking mode; every read and write
 * (plain or OpenSSL) that would block waits in poll() up to a deadline, so
 * a timeout covers a whole line, handshake or flush, not one syscall;
 * inside a budgeted hook no deadline is later than the hook's
 * (budget_priv.h).
 * Reads fill a 16 KiB buffer; writes are queued in a 16 KiB buffer and
 * sent when it fills, on modmta_conn_flush(), or right before a read that
 * has to wait for the peer (RFC 2920: a server never holds replies while it
 * blocks). A connection belongs to one thread.
 * The process must ignore SIGPIPE (OpenSSL writes with write(2)).
 */
#ifndef MODMTA_CONN_PRIV_H
#define MODMTA_CONN_PRIV_H

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>
#include <openssl/ssl.h>

#include <modmta/conn.h>

/* Wrap a connected socket; tls (borrowed, may be NULL) is the context for
 * STARTTLS or implicit TLS. NULL on allocation failure (fd left open). */
modmta_conn *modmta_conn_new(int fd, SSL_CTX *tls);
/* Flush nothing; best-effort TLS close_notify, close the fd, free. */
void modmta_conn_free(modmta_conn *c);
/* Implicit TLS (SMTPS, POP3S): handshake before any protocol byte. */
int modmta_conn_tls_accept(modmta_conn *c, int timeout_ms);
/* Timeout of flushes (default 300 s). */
void modmta_conn_set_write_timeout(modmta_conn *c, int timeout_ms);
/* While *flag is set, a read that waits returns MODMTA_E_TIMEOUT within
 * about a second (used to notice a shutdown between commands). NULL: off. */
void modmta_conn_set_interrupt(modmta_conn *c,
                               const volatile sig_atomic_t *flag);
/* The same for reads and writes: a client connection (conn_client.c),
 * whose delivery must give up at a stop even while the peer stalls. */
void modmta_conn_set_interrupt_all(modmta_conn *c,
                                   const volatile sig_atomic_t *flag);
/* Make input available: returns a pointer to the buffered octets and
 * their count (> 0), waiting up to timeout_ms if none is buffered
 * (flushing output first). Errors as modmta_conn_readline. */
ssize_t modmta_conn_peek(modmta_conn *c, const char **buf_r,
                         int timeout_ms);
/* Consume n octets of what modmta_conn_peek returned. */
void modmta_conn_consume(modmta_conn *c, size_t n);
/* 1 if input is buffered or arrives within timeout_ms, 0 if none, <0 on
 * error. A peer that closed counts as no input. Does not flush. */
int modmta_conn_input_ready(modmta_conn *c, int timeout_ms);
/* The socket (for logging / getsockname). */
int modmta_conn_fd(const modmta_conn *c);
/* The secret bits of the TLS session's cipher, 0 without TLS. */
int modmta_conn_tls_bits(const modmta_conn *c);

/* ---- the client side (conn_client.c, tls_client.c) ---- */
/* Client-side TLS handshake with ssl, configured by the caller (SNI,
 * verification) and owned by c from now on, even on failure: queued
 * output is flushed in clear, input read in clear is discarded (RFC 3207
 * section 4.2). On failure why holds OpenSSL's reason ("wrong version
 * number", "timed out"). MODMTA_E_STATE if c is TLS already (ssl is
 * freed then). */
int modmta_conn_tls_connect(modmta_conn *c, SSL *ssl, int timeout_ms,
                            char *why, size_t whylen);
/* OpenSSL's version number for "TLSv1" ... "TLSv1.3", 0 if unknown (the
 * min_version of both sides). */
int modmta_tls_version_parse(const char *name);
/* Record whether the handshake verified the peer (modmta_conn_tls_verified). */
void modmta_conn_set_tls_verified(modmta_conn *c, int verified);

#endif
