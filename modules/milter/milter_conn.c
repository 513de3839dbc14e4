/* milter: one connection to a milter (milter_conn.h). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <modmta/err.h>

#include "milter_conn.h"
#include "milter_proto.h"

static long long
milter_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for `events` until deadline: 1 ready, 0 timed out, -1 error. */
static int
milter_wait(int fd, short events, long long deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    long long left;
    int r;

    for (;;) {
        left = deadline - milter_now_ms();
        if (left <= 0)
            return 0;
        r = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

int
milter_conn_open(struct milter_conn *c, const struct sockaddr *sa,
                 socklen_t salen, int timeout_ms, char *err, size_t errlen)
{
    long long deadline = milter_now_ms() + timeout_ms;
    int one = 1, soerr = 0, r;
    socklen_t len = sizeof(soerr);

    c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   0);
    if (c->fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return MODMTA_E_IO;
    }
    if (sa->sa_family != AF_UNIX)
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, sa, salen) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EAGAIN) {
        snprintf(err, errlen, "connect: %s", strerror(errno));
        milter_conn_close(c);
        return MODMTA_E_IO;
    }
    r = milter_wait(c->fd, POLLOUT, deadline);
    if (r == 0) {
        snprintf(err, errlen, "connect: timed out");
        milter_conn_close(c);
        return MODMTA_E_TIMEOUT;
    }
    if (r < 0 || getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 ||
        soerr != 0) {
        snprintf(err, errlen, "connect: %s",
                 strerror(soerr ? soerr : errno));
        milter_conn_close(c);
        return MODMTA_E_IO;
    }
    return 0;
}

int
milter_conn_flush(struct milter_conn *c, int timeout_ms)
{
    long long deadline = milter_now_ms() + timeout_ms;
    size_t off = 0;
    ssize_t n;
    int r;

    while (off < c->out.len) {
        n = send(c->fd, c->out.data + off, c->out.len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return MODMTA_E_IO;
        r = milter_wait(c->fd, POLLOUT, deadline);
        if (r <= 0)
            return r == 0 ? MODMTA_E_TIMEOUT : MODMTA_E_IO;
    }
    c->out.len = 0;
    return 0;
}

/* Read exactly n octets into p by the deadline, through the read-ahead
 * buffer. The reply is seldom there when asked for: wait first, then one
 * recv() takes what the milter sent. */
static int
milter_read_full(struct milter_conn *c, unsigned char *p, size_t n,
                 long long deadline)
{
    size_t take;
    ssize_t got;
    int r;

    while (n > 0) {
        if (c->in_pos < c->in_len) {
            take = c->in_len - c->in_pos < n ? c->in_len - c->in_pos : n;
            memcpy(p, c->in + c->in_pos, take);
            c->in_pos += take;
            p += take;
            n -= take;
            continue;
        }
        r = milter_wait(c->fd, POLLIN, deadline);
        if (r <= 0)
            return r == 0 ? MODMTA_E_TIMEOUT : MODMTA_E_IO;
        /* A large packet goes straight to its place. */
        if (n >= sizeof(c->in))
            got = recv(c->fd, p, n, 0);
        else
            got = recv(c->fd, c->in, sizeof(c->in), 0);
        if (got == 0)
            return MODMTA_E_IO;
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return MODMTA_E_IO;
        }
        if (n >= sizeof(c->in)) {
            p += got;
            n -= (size_t)got;
        } else {
            c->in_pos = 0;
            c->in_len = (size_t)got;
        }
    }
    return 0;
}

int
milter_conn_read(struct milter_conn *c, int timeout_ms)
{
    long long deadline = milter_now_ms() + timeout_ms;
    unsigned char hdr[5];
    long n;
    int r;

    r = milter_read_full(c, hdr, 4, deadline);
    if (r < 0)
        return r;
    n = milter_pkt_length(hdr, MILTER_PACKET_MAX);
    if (n < 0)
        return MODMTA_E_INVAL;
    r = milter_read_full(c, hdr + 4, 1, deadline);
    if (r < 0)
        return r;
    if ((size_t)n > c->cap) {
        unsigned char *p = realloc(c->data, (size_t)n);

        if (p == NULL)
            return MODMTA_E_IO;
        c->data = p;
        c->cap = (size_t)n;
    }
    c->code = hdr[4];
    c->len = (size_t)n - 1;
    r = milter_read_full(c, c->data, c->len, deadline);
    if (r < 0)
        return r;
    c->data[c->len] = '\0';
    return 0;
}

void
milter_conn_close(struct milter_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->in_pos = c->in_len = 0;
    milter_buf_free(&c->out);
    free(c->data);
    c->data = NULL;
    c->len = c->cap = 0;
}
