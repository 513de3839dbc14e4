/*
 * A client connection, plain or TLS: buffered line input with strict CRLF,
 * batched output, poll()-based deadlines (see conn_priv.h for the model).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "budget_priv.h"
#include "conn_priv.h"

#define CONN_BUF 16384
/* Longest wait in one poll() while an interrupt flag is watched. */
#define CONN_SLICE_MS 1000

struct modmta_conn {
    int fd;
    SSL_CTX *tls_ctx;
    SSL *ssl;
    int dead;                      /* a write or the handshake failed */
    int tls_verified;              /* client: certificate and name checked */
    int wtimeout_ms;
    const volatile sig_atomic_t *interrupt;
    int interrupt_writes;          /* the flag ends writes too (clients) */
    size_t rpos, rlen;
    size_t wlen;
    char rbuf[CONN_BUF];
    char wbuf[CONN_BUF];
};

static long long conn_deadline(int timeout_ms);
static int conn_wait(modmta_conn *c, short events, long long deadline);
static void conn_tls_why(int err, char *why, size_t whylen);
static int conn_tls_wait(modmta_conn *c, int ret, long long deadline,
                         char *why, size_t whylen);
static int conn_send(modmta_conn *c, const char *buf, size_t len,
                     long long deadline);
static ssize_t conn_recv(modmta_conn *c, char *buf, size_t len,
                         long long deadline);
static int conn_fill(modmta_conn *c, long long deadline);
static int conn_handshake_run(modmta_conn *c, int timeout_ms, char *why,
                              size_t whylen);
static int conn_handshake(modmta_conn *c, int timeout_ms);
static void conn_linger(modmta_conn *c);

/* Inside a hook, no wait outlasts the hook's deadline. */
static long long
conn_deadline(int timeout_ms)
{
    return budget_cut(budget_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms));
}

/* Wait for events on the fd until the deadline: 0, or MODMTA_E_TIMEOUT /
 * MODMTA_E_IO. Reads (and writes on a client connection) also stop early
 * when the interrupt flag is set. */
static int
conn_wait(modmta_conn *c, short events, long long deadline)
{
    struct pollfd p;
    long long left;
    int n, slice;

    for (;;) {
        if (((events & POLLIN) || c->interrupt_writes)
            && c->interrupt != NULL && *c->interrupt)
            return MODMTA_E_TIMEOUT;
        left = deadline - budget_now_ms();
        if (left <= 0) {
            budget_spent();
            return MODMTA_E_TIMEOUT;
        }
        slice = left > CONN_SLICE_MS && c->interrupt != NULL
                    ? CONN_SLICE_MS : (int)left;
        p.fd = c->fd;
        p.events = events;
        p.revents = 0;
        n = poll(&p, 1, slice);
        if (n < 0 && errno != EINTR)
            return MODMTA_E_IO;
        if (n > 0)
            return 0; /* POLLERR/POLLHUP: the next I/O call reports it */
    }
}

/* Why an SSL call failed with SSL_get_error() == err (before the error
 * queue is cleared). */
static void
conn_tls_why(int err, char *why, size_t whylen)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

    if (reason != NULL)
        snprintf(why, whylen, "%s", reason);
    else if (e != 0)
        ERR_error_string_n(e, why, whylen);
    else if (err == SSL_ERROR_SYSCALL && errno != 0)
        snprintf(why, whylen, "%s", strerror(errno));
    else
        snprintf(why, whylen, "connection closed by the peer");
}

/* After an SSL call returned ret <= 0: wait as OpenSSL asks (0, then
 * retry) or report the error, with OpenSSL's reason in why (if not NULL). */
static int
conn_tls_wait(modmta_conn *c, int ret, long long deadline, char *why,
              size_t whylen)
{
    int err = SSL_get_error(c->ssl, ret), rc;

    switch (err) {
    case SSL_ERROR_WANT_READ:
        rc = conn_wait(c, POLLIN, deadline);
        break;
    case SSL_ERROR_WANT_WRITE:
        rc = conn_wait(c, POLLOUT, deadline);
        break;
    default:
        if (why != NULL)
            conn_tls_why(err, why, whylen);
        ERR_clear_error();
        return MODMTA_E_IO;
    }
    if (rc == MODMTA_E_TIMEOUT && why != NULL)
        snprintf(why, whylen, "timed out");
    return rc;
}

static int
conn_send(modmta_conn *c, const char *buf, size_t len, long long deadline)
{
    ssize_t n;
    int rc;

    while (len > 0) {
        if (c->ssl != NULL) {
            n = SSL_write(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
            if (n <= 0) {
                if ((rc = conn_tls_wait(c, (int)n, deadline, NULL, 0)) < 0)
                    return rc;
                continue;
            }
        } else {
            n = send(c->fd, buf, len, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK)
                    return MODMTA_E_IO;
                if ((rc = conn_wait(c, POLLOUT, deadline)) < 0)
                    return rc;
                continue;
            }
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Read what is available (> 0 octets), flushing queued output before any
 * wait. 0 never returned: a closed peer is MODMTA_E_IO. */
static ssize_t
conn_recv(modmta_conn *c, char *buf, size_t len, long long deadline)
{
    ssize_t n;
    int rc;

    for (;;) {
        if (c->ssl != NULL) {
            n = SSL_read(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
            if (n > 0)
                return n;
            /* Decide before flushing: SSL_write resets the SSL's state. */
            switch (SSL_get_error(c->ssl, (int)n)) {
            case SSL_ERROR_WANT_READ:
                if (c->wlen > 0 && (rc = modmta_conn_flush(c)) < 0)
                    return rc;
                rc = conn_wait(c, POLLIN, deadline);
                break;
            case SSL_ERROR_WANT_WRITE:
                rc = conn_wait(c, POLLOUT, deadline);
                break;
            default:
                ERR_clear_error();
                rc = MODMTA_E_IO;
                break;
            }
            if (rc < 0)
                return rc;
            continue;
        }
        n = recv(c->fd, buf, len, 0);
        if (n > 0)
            return n;
        if (n == 0)
            return MODMTA_E_IO;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return MODMTA_E_IO;
        if (c->wlen > 0 && (rc = modmta_conn_flush(c)) < 0)
            return rc;
        if ((rc = conn_wait(c, POLLIN, deadline)) < 0)
            return rc;
    }
}

/* Append more input to the read buffer. */
static int
conn_fill(modmta_conn *c, long long deadline)
{
    ssize_t n;

    if (c->rpos == c->rlen) {
        c->rpos = c->rlen = 0;
    } else if (c->rlen == sizeof(c->rbuf)) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    n = conn_recv(c, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen, deadline);
    if (n < 0)
        return (int)n; /* writes may still work (a half-closed peer) */
    c->rlen += (size_t)n;
    return 0;
}

modmta_conn *
modmta_conn_new(int fd, SSL_CTX *tls)
{
    modmta_conn *c;
    int fl;

    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->tls_ctx = tls;
    c->wtimeout_ms = 300000;
    fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    return c;
}

/* Closing with unread input makes the kernel send a reset, which can
 * destroy the last reply still in flight (early talkers, pipelined input
 * after STARTTLS): shut our side, drain briefly, then close. */
static void
conn_linger(modmta_conn *c)
{
    struct pollfd p;
    long long deadline;
    size_t total = 0;
    char buf[4096];
    ssize_t n;
    int left;

    p.fd = c->fd;
    p.events = POLLIN;
    p.revents = 0;
    if (poll(&p, 1, 0) <= 0)
        return;
    shutdown(c->fd, SHUT_WR);
    deadline = budget_now_ms() + 500;
    while (total < 65536) {
        left = (int)(deadline - budget_now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        n = recv(c->fd, buf, sizeof(buf), 0);
        if (n <= 0)
            break;
        total += (size_t)n;
    }
}

void
modmta_conn_free(modmta_conn *c)
{
    if (c == NULL)
        return;
    if (c->ssl != NULL) {
        if (!c->dead)
            (void)SSL_shutdown(c->ssl); /* one try: close_notify only */
        SSL_free(c->ssl);
        ERR_clear_error();
    }
    conn_linger(c);
    close(c->fd);
    free(c);
}

void
modmta_conn_set_write_timeout(modmta_conn *c, int timeout_ms)
{
    c->wtimeout_ms = timeout_ms;
}

void
modmta_conn_set_interrupt(modmta_conn *c, const volatile sig_atomic_t *flag)
{
    c->interrupt = flag;
    c->interrupt_writes = 0;
}

void
modmta_conn_set_interrupt_all(modmta_conn *c,
                              const volatile sig_atomic_t *flag)
{
    c->interrupt = flag;
    c->interrupt_writes = 1;
}

int
modmta_conn_fd(const modmta_conn *c)
{
    return c->fd;
}

ssize_t
modmta_conn_readline(modmta_conn *c, char *buf, size_t len, int timeout_ms)
{
    long long deadline = conn_deadline(timeout_ms);
    size_t n = 0;
    int cr = 0, bad = 0, toolong = 0, rc;
    char ch;

    if (len == 0)
        return MODMTA_E_INVAL;
    for (;;) {
        if (c->rpos == c->rlen && (rc = conn_fill(c, deadline)) < 0)
            return rc;
        while (c->rpos < c->rlen) {
            ch = c->rbuf[c->rpos++];
            if (cr) {
                cr = 0;
                if (ch == '\n')
                    goto done;
                bad = 1; /* the CR before ch was bare */
            }
            if (ch == '\r') {
                cr = 1;
                continue;
            }
            if (ch == '\n') {
                bad = 1;
                continue;
            }
            if (n < len - 1)
                buf[n++] = ch;
            else
                toolong = 1;
        }
    }
done:
    buf[n] = '\0';
    if (bad)
        return MODMTA_E_INVAL;
    if (toolong)
        return MODMTA_E_LIMIT;
    return (ssize_t)n;
}

ssize_t
modmta_conn_peek(modmta_conn *c, const char **buf_r, int timeout_ms)
{
    int rc;

    if (c->rpos == c->rlen
        && (rc = conn_fill(c, conn_deadline(timeout_ms))) < 0)
        return rc;
    *buf_r = c->rbuf + c->rpos;
    return (ssize_t)(c->rlen - c->rpos);
}

void
modmta_conn_consume(modmta_conn *c, size_t n)
{
    if (n > c->rlen - c->rpos)
        n = c->rlen - c->rpos;
    c->rpos += n;
}

int
modmta_conn_input_ready(modmta_conn *c, int timeout_ms)
{
    struct pollfd p;
    char ch;
    int n;

    if (modmta_conn_pending(c) > 0)
        return 1;
    if (c->dead)
        return MODMTA_E_IO;
    p.fd = c->fd;
    p.events = POLLIN;
    p.revents = 0;
    do
        n = poll(&p, 1, timeout_ms);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return MODMTA_E_IO;
    if (n == 0)
        return 0;
    if (c->ssl == NULL)
        return recv(c->fd, &ch, 1, MSG_PEEK) > 0;
    /* TLS: only decrypted application data counts. */
    if (c->rpos == c->rlen)
        c->rpos = c->rlen = 0;
    n = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(sizeof(c->rbuf) - c->rlen));
    if (n > 0) {
        c->rlen += (size_t)n;
        return 1;
    }
    n = SSL_get_error(c->ssl, n);
    ERR_clear_error();
    return n == SSL_ERROR_WANT_READ || n == SSL_ERROR_WANT_WRITE
               ? 0 : MODMTA_E_IO;
}

int
modmta_conn_write(modmta_conn *c, const void *buf, size_t len)
{
    int rc;

    if (c->dead)
        return MODMTA_E_IO;
    if (len > sizeof(c->wbuf) - c->wlen) {
        if ((rc = modmta_conn_flush(c)) < 0)
            return rc;
        if (len > sizeof(c->wbuf)) {
            rc = conn_send(c, buf, len, conn_deadline(c->wtimeout_ms));
            if (rc < 0)
                c->dead = 1;
            return rc;
        }
    }
    memcpy(c->wbuf + c->wlen, buf, len);
    c->wlen += len;
    return 0;
}

int
modmta_conn_printf(modmta_conn *c, const char *fmt, ...)
{
    char small[1024], *big;
    va_list ap;
    int n, rc;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return MODMTA_E_INVAL;
    if ((size_t)n < sizeof(small))
        return modmta_conn_write(c, small, (size_t)n);
    big = malloc((size_t)n + 1);
    if (big == NULL)
        return MODMTA_E_NOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    rc = modmta_conn_write(c, big, (size_t)n);
    free(big);
    return rc;
}

int
modmta_conn_flush(modmta_conn *c)
{
    int rc;

    if (c->dead)
        return MODMTA_E_IO;
    if (c->wlen == 0)
        return 0;
    rc = conn_send(c, c->wbuf, c->wlen, conn_deadline(c->wtimeout_ms));
    c->wlen = 0;
    if (rc < 0)
        c->dead = 1;
    return rc;
}

size_t
modmta_conn_pending(const modmta_conn *c)
{
    size_t n = c->rlen - c->rpos;

    if (c->ssl != NULL)
        n += (size_t)SSL_pending(c->ssl);
    return n;
}

/* The handshake of c->ssl (its side already set) on c's socket. */
static int
conn_handshake_run(modmta_conn *c, int timeout_ms, char *why, size_t whylen)
{
    long long deadline = conn_deadline(timeout_ms);
    int n, rc;

    if (SSL_set_fd(c->ssl, c->fd) != 1) {
        ERR_clear_error();
        c->dead = 1;
        return MODMTA_E_NOMEM;
    }
    for (;;) {
        errno = 0; /* SSL_ERROR_SYSCALL with errno 0: the peer closed */
        if ((n = SSL_do_handshake(c->ssl)) == 1)
            break;
        if ((rc = conn_tls_wait(c, n, deadline, why, whylen)) < 0) {
            c->dead = 1;
            return rc;
        }
    }
    return 0;
}

static int
conn_handshake(modmta_conn *c, int timeout_ms)
{
    c->ssl = SSL_new(c->tls_ctx);
    if (c->ssl == NULL) {
        ERR_clear_error();
        c->dead = 1;
        return MODMTA_E_NOMEM;
    }
    SSL_set_accept_state(c->ssl);
    return conn_handshake_run(c, timeout_ms, NULL, 0);
}

int
modmta_conn_starttls(modmta_conn *c, int timeout_ms)
{
    int rc;

    if (c->ssl != NULL)
        return MODMTA_E_STATE;
    if (c->tls_ctx == NULL)
        return MODMTA_E_UNSUPPORTED;
    /* The "ready to start TLS" reply goes out in clear first. */
    if ((rc = modmta_conn_flush(c)) < 0)
        return rc;
    /* Anything read in clear must never be taken as sent under TLS. */
    c->rpos = c->rlen = 0;
    return conn_handshake(c, timeout_ms);
}

int
modmta_conn_tls_accept(modmta_conn *c, int timeout_ms)
{
    if (c->ssl != NULL)
        return MODMTA_E_STATE;
    if (c->tls_ctx == NULL)
        return MODMTA_E_UNSUPPORTED;
    c->rpos = c->rlen = 0;
    return conn_handshake(c, timeout_ms);
}

int
modmta_conn_tls_connect(modmta_conn *c, SSL *ssl, int timeout_ms, char *why,
                        size_t whylen)
{
    int rc;

    if (c->ssl != NULL) {
        SSL_free(ssl);
        return MODMTA_E_STATE;
    }
    /* Whatever is queued (STARTTLS) goes out in clear. */
    rc = modmta_conn_flush(c);
    c->ssl = ssl;
    c->tls_verified = 0;
    if (rc < 0)
        return rc;
    /* RFC 3207 4.2: what the server sent in clear is forgotten. */
    c->rpos = c->rlen = 0;
    SSL_set_connect_state(ssl);
    return conn_handshake_run(c, timeout_ms, why, whylen);
}

void
modmta_conn_set_tls_verified(modmta_conn *c, int verified)
{
    c->tls_verified = verified;
}

int
modmta_conn_tls_verified(const modmta_conn *c)
{
    return c->ssl != NULL && c->tls_verified;
}

int
modmta_conn_is_tls(const modmta_conn *c)
{
    return c->ssl != NULL;
}

const char *
modmta_conn_tls_version(const modmta_conn *c)
{
    return c->ssl != NULL ? SSL_get_version(c->ssl) : NULL;
}

const char *
modmta_conn_tls_cipher(const modmta_conn *c)
{
    return c->ssl != NULL ? SSL_get_cipher_name(c->ssl) : NULL;
}

int
modmta_conn_tls_bits(const modmta_conn *c)
{
    return c->ssl != NULL ? SSL_get_cipher_bits(c->ssl, NULL) : 0;
}

int
modmta_conn_tls_available(const modmta_conn *c)
{
    return c->tls_ctx != NULL && c->ssl == NULL;
}
