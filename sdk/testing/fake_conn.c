/* libmodmta-test: a client connection for verb handlers and serve(): a
 * real modmta_conn on one end of a socketpair, the test on the other. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn_priv.h"
#include "fake.h"

/* How long the client waits for a line before the test fails: a bound
 * on a hung handler, not a timing the test relies on. */
#define FAKE_CONN_WAIT_MS 30000

struct modmta_test_conn {
    modmta_conn *conn;      /* the server's side */
    int client;             /* the test's side */
    char *in;               /* read from the server, not returned yet */
    size_t inlen, incap;
    char *result;           /* the last line or output returned */
};

static void fake_conn_append(modmta_test_conn *tc, const char *p, size_t n);
static int fake_conn_receive(modmta_test_conn *tc, int timeout_ms);
static const char *fake_conn_take(modmta_test_conn *tc, size_t n);

modmta_test_conn *
modmta_test_conn_new(const char *input)
{
    modmta_test_conn *tc = calloc(1, sizeof(*tc));
    int sv[2];

    if (tc == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        fail_msg("modmta_test_conn_new: %s", strerror(errno));
    tc->client = sv[1];
    tc->conn = modmta_conn_new(sv[0], NULL);
    if (tc->conn == NULL)
        fail_msg("modmta_test_conn_new: out of memory");
    if (input != NULL)
        modmta_test_conn_send(tc, input);
    return tc;
}

modmta_conn *
modmta_test_conn_get(modmta_test_conn *tc)
{
    return tc->conn;
}

void
modmta_test_conn_send(modmta_test_conn *tc, const char *text)
{
    size_t len = strlen(text), off = 0;
    ssize_t n;

    while (off < len) {
        n = write(tc->client, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail_msg("modmta_test_conn_send: %s", strerror(errno));
        off += (size_t)n;
    }
}

void
modmta_test_conn_hangup(modmta_test_conn *tc)
{
    if (shutdown(tc->client, SHUT_WR) < 0)
        fail_msg("modmta_test_conn_hangup: %s", strerror(errno));
}

const char *
modmta_test_conn_read_line(modmta_test_conn *tc)
{
    struct timespec start, now;
    char *lf;
    long waited;

    clock_gettime(CLOCK_MONOTONIC, &start);
    while (tc->inlen == 0 ||
           (lf = memchr(tc->in, '\n', tc->inlen)) == NULL) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        waited = (now.tv_sec - start.tv_sec) * 1000 +
                 (now.tv_nsec - start.tv_nsec) / 1000000;
        if (waited >= FAKE_CONN_WAIT_MS)
            fail_msg("modmta_test_conn_read_line: no line from the server "
                     "in %d ms", FAKE_CONN_WAIT_MS);
        if (fake_conn_receive(tc, FAKE_CONN_WAIT_MS - (int)waited) == 0)
            fail_msg("modmta_test_conn_read_line: the server closed the "
                     "connection");
    }
    return fake_conn_take(tc, (size_t)(lf - tc->in) + 1);
}

const char *
modmta_test_conn_output(modmta_test_conn *tc)
{
    int rc = modmta_conn_flush(tc->conn);

    if (rc < 0)
        fail_msg("modmta_test_conn_output: flush: %s", modmta_strerror(rc));
    while (fake_conn_receive(tc, 0) > 0)
        ;
    return fake_conn_take(tc, tc->inlen);
}

void
modmta_test_conn_free(modmta_test_conn *tc)
{
    if (tc == NULL)
        return;
    modmta_conn_free(tc->conn);
    close(tc->client);
    free(tc->in);
    free(tc->result);
    free(tc);
}

static void
fake_conn_append(modmta_test_conn *tc, const char *p, size_t n)
{
    if (tc->inlen + n + 1 > tc->incap) {
        size_t cap = (tc->inlen + n + 1) * 2;

        tc->in = realloc(tc->in, cap);
        if (tc->in == NULL)
            fail_msg("modmta_test_conn: out of memory");
        tc->incap = cap;
    }
    memcpy(tc->in + tc->inlen, p, n);
    tc->inlen += n;
}

/* Read what the server sent within timeout_ms: > 0 bytes read, -1 none
 * yet, 0 the server closed. */
static int
fake_conn_receive(modmta_test_conn *tc, int timeout_ms)
{
    struct pollfd pfd = { .fd = tc->client, .events = POLLIN };
    char buf[4096];
    ssize_t n;

    if (poll(&pfd, 1, timeout_ms) <= 0)
        return -1;
    n = recv(tc->client, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? -1 : 0;
    fake_conn_append(tc, buf, (size_t)n);
    return n > 0 ? 1 : 0;
}

/* The first n octets received, as a string owned by tc. */
static const char *
fake_conn_take(modmta_test_conn *tc, size_t n)
{
    free(tc->result);
    tc->result = malloc(n + 1);
    if (tc->result == NULL)
        fail_msg("modmta_test_conn: out of memory");
    if (n > 0) {
        memcpy(tc->result, tc->in, n);
        memmove(tc->in, tc->in + n, tc->inlen - n);
        tc->inlen -= n;
    }
    tc->result[n] = '\0';
    return tc->result;
}
