/*
 * Client connections: a non-blocking connect with a deadline, to a TCP
 * address or a UNIX socket, wrapped in a modmta_conn (conn.c). A ctx
 * links the connection to the daemon's stop flag, so a delivery notices a
 * shutdown within a second, while connecting as while waiting for a reply.
 * A connect in a hook ends by the hook's deadline too (budget_priv.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "budget_priv.h"
#include "conn_priv.h"
#include "ctx_priv.h"

/* Longest wait in one poll() or connect() while the stop flag is watched
 * (conn.c waits reads in the same slices). */
#define CONN_CLIENT_SLICE_MS 1000

typedef const volatile sig_atomic_t *conn_client_flag;

static void conn_client_where(const struct sockaddr *sa, char *buf,
                              size_t len);
static int conn_client_slice(long long deadline, conn_client_flag stop);
static int conn_client_wait(int fd, long long deadline,
                            conn_client_flag stop);
static int conn_client_unix(int fd, const struct sockaddr_un *sun,
                            long long deadline, conn_client_flag stop);
static const char *conn_client_why(int rc, int err);
static modmta_conn *conn_client_wrap(int fd, conn_client_flag stop,
                                     const char *where, modmta_err *err_r);

/* "192.0.2.1:25", "[2001:db8::1]:25". */
static void
conn_client_where(const struct sockaddr *sa, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
        snprintf(buf, len, "[%s]:%u", a, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
        snprintf(buf, len, "%s:%u", a, ntohs(s4->sin_port));
    }
}

/* How long the next wait may be: > 0 ms (at most a slice while the stop
 * flag is watched), or MODMTA_E_TIMEOUT (deadline), MODMTA_E_STATE (the
 * daemon is stopping). */
static int
conn_client_slice(long long deadline, conn_client_flag stop)
{
    long long left;

    if (stop != NULL && *stop)
        return MODMTA_E_STATE;
    left = deadline - budget_now_ms();
    if (left <= 0)
        return MODMTA_E_TIMEOUT;
    return left > CONN_CLIENT_SLICE_MS && stop != NULL ? CONN_CLIENT_SLICE_MS
                                                       : (int)left;
}

/* Wait for a connect in progress: 0 (then read SO_ERROR), or
 * MODMTA_E_TIMEOUT (deadline), MODMTA_E_STATE (the daemon is stopping),
 * MODMTA_E_IO (poll failed, errno set). */
static int
conn_client_wait(int fd, long long deadline, conn_client_flag stop)
{
    struct pollfd p;
    int n, left;

    for (;;) {
        if ((left = conn_client_slice(deadline, stop)) < 0)
            return left;
        p.fd = fd;
        p.events = POLLOUT;
        p.revents = 0;
        n = poll(&p, 1, left);
        if (n < 0 && errno != EINTR)
            return MODMTA_E_IO;
        if (n > 0)
            return 0;
    }
}

/* A UNIX stream connect does not go "in progress": with the listener's
 * backlog full it fails with EAGAIN at once, or, blocking, waits for room
 * up to SO_SNDTIMEO. So it blocks, in slices. 0, or as conn_client_wait
 * (MODMTA_E_IO with errno set). */
static int
conn_client_unix(int fd, const struct sockaddr_un *sun, long long deadline,
                 conn_client_flag stop)
{
    struct timeval tv;
    int left;

    for (;;) {
        if ((left = conn_client_slice(deadline, stop)) < 0)
            return left;
        tv.tv_sec = (time_t)(left / 1000);
        tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
            return MODMTA_E_IO;
        if (connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0)
            break;
        if (errno != EAGAIN && errno != EINTR && errno != EINPROGRESS)
            return MODMTA_E_IO;
    }
    tv.tv_sec = 0;
    tv.tv_usec = 0;
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return 0;
}

static modmta_conn *
conn_client_wrap(int fd, conn_client_flag stop, const char *where,
                 modmta_err *err_r)
{
    modmta_conn *c = modmta_conn_new(fd, NULL);

    if (c == NULL) {
        close(fd);
        modmta_err_set(err_r, NULL, "connect to %s: out of memory", where);
        return NULL;
    }
    modmta_conn_set_interrupt_all(c, stop);
    return c;
}

/* The reason of a failed wait, errno for MODMTA_E_IO. */
static const char *
conn_client_why(int rc, int err)
{
    switch (rc) {
    case MODMTA_E_TIMEOUT:
        return budget_spent() ? "timed out: the hook's time budget is spent"
                              : "timed out";
    case MODMTA_E_STATE:
        return "interrupted: the daemon is stopping";
    default:
        return strerror(err);
    }
}

modmta_conn *
modmta_conn_connect(modmta_ctx *ctx, const struct sockaddr *sa,
                    socklen_t salen, int timeout_ms, modmta_err *err_r)
{
    conn_client_flag stop = ctx != NULL ? ctx->interrupt : NULL;
    long long deadline = budget_cut(budget_now_ms()
                                    + (timeout_ms < 0 ? 0 : timeout_ms));
    char where[INET6_ADDRSTRLEN + 16];
    socklen_t len;
    int fd, rc, err;

    if (sa == NULL
        || (sa->sa_family == AF_INET && salen < sizeof(struct sockaddr_in))
        || (sa->sa_family == AF_INET6
            && salen < sizeof(struct sockaddr_in6))
        || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) {
        modmta_err_set(err_r, NULL, "connect: not an IPv4 or IPv6 address");
        return NULL;
    }
    conn_client_where(sa, where, sizeof(where));
    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    if (fd < 0) {
        modmta_err_set(err_r, NULL, "connect to %s: %s", where,
                       strerror(errno));
        return NULL;
    }
    rc = 0;
    err = 0;
    if (connect(fd, sa, salen) < 0) {
        if (errno == EINPROGRESS || errno == EINTR)
            rc = conn_client_wait(fd, deadline, stop);
        else
            rc = MODMTA_E_IO;
        err = errno;
        len = sizeof(err);
        if (rc == 0
            && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0
            && err != 0)
            rc = MODMTA_E_IO;
    }
    if (rc < 0) {
        close(fd);
        modmta_err_set(err_r, NULL, "connect to %s: %s", where,
                       conn_client_why(rc, err));
        return NULL;
    }
    return conn_client_wrap(fd, stop, where, err_r);
}

modmta_conn *
modmta_conn_connect_unix(modmta_ctx *ctx, const char *path, int timeout_ms,
                         modmta_err *err_r)
{
    conn_client_flag stop = ctx != NULL ? ctx->interrupt : NULL;
    long long deadline = budget_cut(budget_now_ms()
                                    + (timeout_ms < 0 ? 0 : timeout_ms));
    struct sockaddr_un sun;
    int fd, rc;

    if (path == NULL || *path == '\0') {
        modmta_err_set(err_r, NULL, "connect: no socket path");
        return NULL;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        modmta_err_set(err_r, NULL, "connect to %s: path too long", path);
        return NULL;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        modmta_err_set(err_r, NULL, "connect to %s: %s", path,
                       strerror(errno));
        return NULL;
    }
    if ((rc = conn_client_unix(fd, &sun, deadline, stop)) < 0) {
        modmta_err_set(err_r, NULL, "connect to %s: %s", path,
                       conn_client_why(rc, errno));
        close(fd);
        return NULL;
    }
    return conn_client_wrap(fd, stop, path, err_r);
}

void
modmta_conn_close(modmta_conn *c)
{
    modmta_conn_free(c);
}

void
modmta_conn_set_timeout(modmta_conn *c, int timeout_ms)
{
    modmta_conn_set_write_timeout(c, timeout_ms);
}
