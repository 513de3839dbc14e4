/*
 * modmta SDK: a client connection, plain or TLS, with buffered line I/O.
 *
 * Used by verb handlers (AUTH challenges), by serve() (POP3), and since
 * ABI 1.3 by modules that connect to other servers. Lines are
 * CRLF-terminated; a bare CR or bare LF is never taken as a line end.
 */
#ifndef MODMTA_CONN_H
#define MODMTA_CONN_H

#include <stddef.h>
#include <sys/socket.h>
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

/* ---- client connections (ABI 1.3) ----
 * For modules that talk to other servers (SMTP, LMTP, milters). A
 * connection made with a ctx gives up when the daemon stops: a connect, a
 * read, a write or a handshake that waits returns within about a second
 * (MODMTA_E_TIMEOUT for the I/O). The link is to the daemon's stop flag,
 * not to the ctx: the connection may outlive the ctx and move to another
 * thread (a connection cache). NULL: no link. A connection is used by one
 * thread at a time. */

/* Connect to sa (IPv4 or IPv6, port set) within timeout_ms. NULL with
 * err_r filled: "connect to 192.0.2.1:25: Connection refused",
 * "...: timed out", "...: interrupted: the daemon is stopping". */
modmta_conn *modmta_conn_connect(modmta_ctx *ctx, const struct sockaddr *sa,
                                 socklen_t salen, int timeout_ms,
                                 modmta_err *err_r);
/* The same for a UNIX stream socket. */
modmta_conn *modmta_conn_connect_unix(modmta_ctx *ctx, const char *path,
                                      int timeout_ms, modmta_err *err_r);
/* Close a connection made by modmta_conn_connect* (nothing is flushed;
 * a TLS close_notify is sent, best effort). NULL is ignored. */
void modmta_conn_close(modmta_conn *c);
/* The timeout of each write and flush on c (default 300 s); reads take
 * theirs as an argument. */
void modmta_conn_set_timeout(modmta_conn *c, int timeout_ms);

/* A TLS client context: the trust store and protocol floor every client
 * handshake made with it uses. Made in create() (its files are read
 * then), shared by threads, freed in destroy(). ca_file NULL: the
 * system's store (OpenSSL's default paths); min_version NULL: TLSv1.2. */
typedef struct modmta_tls_client modmta_tls_client;
modmta_tls_client *modmta_tls_client_new(const char *ca_file,
                                         const char *min_version,
                                         modmta_err *err_r);
void modmta_tls_client_free(modmta_tls_client *t);

/* TLS client levels, Postfix's smtp_tls_security_level. Append-only. */
typedef enum modmta_tls_verify {
    MODMTA_TLS_ENCRYPT = 0, /* encrypt; any certificate is accepted */
    MODMTA_TLS_VERIFY = 1,  /* the certificate must chain to the trust
                             * store and name peer_name (DNS-ID; a
                             * wildcard covers one label) */
} modmta_tls_verify;

/* Client-side TLS handshake on c (after the server's go-ahead, e.g. 220
 * to STARTTLS). peer_name: the name to verify and to send as SNI (NULL:
 * no SNI, and VERIFY fails). 0 on success; MODMTA_E_PERM when
 * verification failed, MODMTA_E_IO / MODMTA_E_TIMEOUT when the
 * handshake did; err_r says why ("certificate name mismatch: ...",
 * "unable to get local issuer certificate"). Buffered input is
 * discarded (RFC 3207 section 4.2: the client forgets what it knew). */
int modmta_conn_starttls_client(modmta_conn *c, modmta_tls_client *t,
                                const char *peer_name,
                                modmta_tls_verify verify, int timeout_ms,
                                modmta_err *err_r);
/* Was the peer's certificate verified (chain and name) by the last
 * handshake? 0 when not TLS or not verified. */
int modmta_conn_tls_verified(const modmta_conn *c);

#ifdef __cplusplus
}
#endif

#endif
