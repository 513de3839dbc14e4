/*
 * modmta SDK: a client connection, plain or TLS, with buffered line I/O.
 *
 * Used by verb handlers (AUTH challenges) and by serve() (POP3). Lines are
 * CRLF-terminated; a bare CR or bare LF is never taken as a line end.
 */
#ifndef MODMTA_CONN_H
#define MODMTA_CONN_H

#include <stddef.h>
#include <sys/types.h>

#include <modmta/module.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Read one line into buf (NUL-terminated, CRLF stripped); returns its
 * length (which may contain NULs: compare with the length), or:
 *   MODMTA_E_LIMIT   longer than len-1: the rest of the line is discarded
 *                    up to its CRLF (so the protocol can answer and go on),
 *   MODMTA_E_INVAL   the line holds a bare CR or bare LF (it is consumed),
 *   MODMTA_E_TIMEOUT nothing for timeout_ms,
 *   MODMTA_E_IO      peer closed or I/O error. */
ssize_t modmta_conn_readline(modmta_conn *c, char *buf, size_t len,
                             int timeout_ms);
/* Queue output; flushed by modmta_conn_flush (or when the buffer fills). */
int modmta_conn_write(modmta_conn *c, const void *buf, size_t len);
int modmta_conn_printf(modmta_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int modmta_conn_flush(modmta_conn *c);
/* Bytes received and not yet consumed (pipelined input). */
size_t modmta_conn_pending(const modmta_conn *c);
/* Server-side TLS handshake (STARTTLS, STLS). Fails with MODMTA_E_STATE
 * if already TLS, MODMTA_E_UNSUPPORTED if the listener has no
 * certificate. Input buffered before the handshake is discarded. */
int modmta_conn_starttls(modmta_conn *c, int timeout_ms);
int modmta_conn_is_tls(const modmta_conn *c);
/* "TLSv1.3", cipher name; NULL when not TLS. */
const char *modmta_conn_tls_version(const modmta_conn *c);
const char *modmta_conn_tls_cipher(const modmta_conn *c);
/* 1 if a TLS certificate is available for STARTTLS on this connection. */
int modmta_conn_tls_available(const modmta_conn *c);

#ifdef __cplusplus
}
#endif

#endif
