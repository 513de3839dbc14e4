/*
 * DATA reception (core/smtp_data.c): the octets after the 354, over a
 * real connection (a socketpair) into a real queue writer, as a session
 * reads them: dot-unstuffing, the end of data, bare CR/LF and NUL, the
 * size limit, the header block and its 256 KiB / 1000 field caps. The
 * first input octet picks the size limit (none, or a small one so that
 * the over-limit path runs too).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <modmta/log.h>

#include "conn_priv.h"
#include "ctx_priv.h"
#include "fuzz_input.h"
#include "log_priv.h"
#include "queue.h"
#include "smtp_data.h"

#define PRE "Received: from x\r\n\tby y; now\r\n"

static queue *q;
static modmta_host *host;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
setup(void)
{
    const char *dir = fuzz_tmpdir("smtp_data");
    modmta_err err;

    modmta_log_setup(MODMTA_LOG_ERR, 0, NULL); /* not a line per session */
    q = queue_open(dir, &err);
    host = modmta_host_new("core", "$", "mx.test", dir, NULL, 0);
    if (q == NULL || host == NULL)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long long limits[] = {0, 64, 1000, 300000};
    struct smtp_data d;
    queue_writer *w;
    modmta_conn *c;
    modmta_ctx *ctx;
    modmta_err err;
    int sv[2], bufsz = 1 << 20;
    size_t sent = 0;

    if (q == NULL)
        setup();
    if (size < 1)
        return 0;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        abort();
    /* the whole input fits in the socket: no writer thread needed */
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
    while (sent < size - 1) {
        ssize_t n = send(sv[1], data + 1 + sent, size - 1 - sent,
                         MSG_DONTWAIT | MSG_NOSIGNAL);

        if (n <= 0)
            break; /* longer than the socket holds: the rest is lost */
        sent += (size_t)n;
    }
    shutdown(sv[1], SHUT_WR);
    c = modmta_conn_new(sv[0], NULL);
    w = queue_writer_new(q, &err);
    ctx = modmta_ctx_new(host);
    if (c == NULL || w == NULL || ctx == NULL)
        abort();
    memset(&d, 0, sizeof(d));
    d.conn = c;
    d.w = w;
    d.ctx = ctx;
    d.limit = limits[data[0] % 4];
    d.timeout_ms = 10000;
    /* a good message is written whole: its header block in it */
    if (smtp_data_read(&d, PRE, strlen(PRE)) == 0 && !d.too_big &&
        !d.bad_eol && !d.bad_nul && !d.write_err &&
        (d.hdr_len > queue_writer_size(w) ||
         d.size > (long long)(size - 1)))
        abort();
    smtp_data_done(&d);
    queue_writer_abort(w);
    modmta_ctx_free(ctx);
    modmta_conn_free(c);
    close(sv[1]);
    return 0;
}
