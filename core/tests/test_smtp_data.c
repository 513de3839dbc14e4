/* Unit tests of the DATA reader (smtp_data.c): dot-stuffing, the end of
 * data, every SMTP smuggling variant, the size limit, header parsing. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <files.h>

#include "conn_priv.h"
#include "ctx_priv.h"
#include "queue.h"
#include "smtp_data.h"

#define PRE "Received: from x\r\n\tby y; now\r\n"

struct fx {
    char spool[64];
    queue *q;
    modmta_host *host;
    /* one run */
    struct smtp_data d;
    modmta_ctx *ctx;
    char content[400000];
    size_t clen;
    char rest[64];             /* what follows the end of data */
};

struct writer {
    int fd;
    const char *buf;
    size_t len;
    int bytewise;
};

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    modmta_err err;

    modmta_test_tmpdir(fx->spool, sizeof(fx->spool), "test_smtp_data");
    fx->q = queue_open(fx->spool, &err);
    assert_non_null(fx->q);
    fx->host = modmta_host_new("core", "$", "mx.test", fx->spool, NULL, 0);
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;

    queue_close(fx->q);
    modmta_host_free(fx->host);
    modmta_test_rmtree(fx->spool);
    free(fx);
    return 0;
}

static void *
writer_main(void *arg)
{
    struct writer *w = arg;
    size_t i, step = w->bytewise ? 1 : w->len;

    for (i = 0; i < w->len; i += step)
        if (send(w->fd, w->buf + i, w->len - i < step ? w->len - i : step,
                 MSG_NOSIGNAL) < 0)
            break;
    shutdown(w->fd, SHUT_WR);
    return NULL;
}

/* Feed `in` to the reader; fills fx->d, fx->content, fx->rest. */
static int
run(struct fx *fx, const char *in, size_t inlen, long long limit,
    int bytewise)
{
    struct writer w;
    pthread_t t;
    modmta_conn *c;
    queue_writer *qw;
    modmta_err err;
    const char *p;
    ssize_t n;
    FILE *f;
    int sv[2], rc;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    w.fd = sv[1];
    w.buf = in;
    w.len = inlen;
    w.bytewise = bytewise;
    assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
    c = modmta_conn_new(sv[0], NULL);
    qw = queue_writer_new(fx->q, &err);
    assert_non_null(qw);
    modmta_ctx_free(fx->ctx);
    fx->ctx = modmta_ctx_new(fx->host);
    memset(&fx->d, 0, sizeof(fx->d));
    fx->d.conn = c;
    fx->d.w = qw;
    fx->d.ctx = fx->ctx;
    fx->d.limit = limit;
    fx->d.timeout_ms = 10000;
    rc = smtp_data_read(&fx->d, PRE, strlen(PRE));
    smtp_data_done(&fx->d);
    f = fopen(queue_writer_path(qw), "rb");
    assert_non_null(f);
    fx->clen = fread(fx->content, 1, sizeof(fx->content) - 1, f);
    fx->content[fx->clen] = '\0';
    fclose(f);
    queue_writer_abort(qw);
    /* what is left for the command reader */
    fx->rest[0] = '\0';
    if (rc == 0) {
        size_t got = 0;

        while ((n = modmta_conn_peek(c, &p, 10000)) > 0
               && got + (size_t)n < sizeof(fx->rest)) {
            memcpy(fx->rest + got, p, (size_t)n);
            got += (size_t)n;
            modmta_conn_consume(c, (size_t)n);
        }
        fx->rest[got] = '\0';
    }
    pthread_join(t, NULL);
    modmta_conn_free(c);
    close(sv[1]);
    return rc;
}

static int
run_str(struct fx *fx, const char *in, long long limit)
{
    return run(fx, in, strlen(in), limit, 0);
}

static void
test_basic(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(run_str(fx, "Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n",
                             0), 0);
    assert_false(fx->d.bad_eol);
    assert_false(fx->d.too_big);
    assert_string_equal(fx->content, PRE "Subject: hi\r\n\r\nbody\r\n");
    assert_string_equal(fx->rest, "QUIT\r\n");
    assert_int_equal(fx->d.size, strlen("Subject: hi\r\n\r\nbody\r\n"));
    assert_int_equal(fx->d.hdr_len, strlen(PRE "Subject: hi\r\n"));
    assert_int_equal(modmta_hdr_count(fx->ctx), 2);
    assert_string_equal(modmta_hdr_get(fx->ctx, "received", 0),
                        "from x\r\n\tby y; now");
    assert_string_equal(modmta_hdr_get(fx->ctx, "Subject", 0), "hi");
    modmta_ctx_free(fx->ctx);
    fx->ctx = NULL;
}

static void
test_empty_and_dots(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(run_str(fx, ".\r\n", 0), 0);
    assert_string_equal(fx->content, PRE);
    assert_int_equal(fx->d.size, 0);

    assert_int_equal(run_str(fx, "\r\n..x\r\n.y\r\n..\r\n...\r\na.b\r\n"
                             ".\r\n", 0), 0);
    assert_false(fx->d.bad_eol);
    assert_string_equal(fx->content, PRE "\r\n.x\r\ny\r\n.\r\n..\r\na.b\r\n");
    modmta_ctx_free(fx->ctx);
    fx->ctx = NULL;
}

/* Each variant is a fake end of data some MTA might accept: none may end
 * the message here, and the message is marked bad. The real end follows;
 * "NEXT" after it must be left for the command reader. */
static void
test_smuggling(void **state)
{
    static const char *const v[] = {
        "\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r", "\r.\r\n", "\r\n.\r",
        "\n.\r", "\r.\n", "\r\n.\rX", ".\n", "\r\n\n.\r\n",
        "a\rb", "a\nb", "\r\n.\r\r\n",
    };
    struct fx *fx = *state;
    char in[256];
    size_t i;
    int bw;

    for (bw = 0; bw < 2; bw++) {
        for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
            snprintf(in, sizeof(in), "Subject: x\r\n\r\nbody%sMAIL FROM:<e@"
                     "vil>\r\nRCPT TO:<v@x>\r\nDATA\r\nsmuggled\r\n.\r\nNEXT",
                     v[i]);
            assert_int_equal(run(fx, in, strlen(in), 0, bw), 0);
            if (!fx->d.bad_eol)
                fail_msg("variant %zu not caught", i);
            assert_string_equal(fx->rest, "NEXT");
        }
    }
    /* a bare CR/LF in the headers too */
    assert_int_equal(run_str(fx, "Subject: a\nb\r\n\r\nx\r\n.\r\n", 0), 0);
    assert_true(fx->d.bad_eol);
    modmta_ctx_free(fx->ctx);
    fx->ctx = NULL;
}

static void
test_crlf_dot_crlf_only(void **state)
{
    struct fx *fx = *state;

    /* ".\r\n" inside a line is not an end; "\r\n.\r\n" is. */
    assert_int_equal(run_str(fx, "a.\r\nb\r\n.\r\nNEXT", 0), 0);
    assert_false(fx->d.bad_eol);
    assert_string_equal(fx->content, PRE "\r\na.\r\nb\r\n");
    assert_string_equal(fx->rest, "NEXT");
    /* byte by byte, same result */
    assert_int_equal(run(fx, "a.\r\nb\r\n.\r\nNEXT", 15, 0, 1), 0);
    assert_string_equal(fx->content, PRE "\r\na.\r\nb\r\n");
    assert_string_equal(fx->rest, "NEXT");
    modmta_ctx_free(fx->ctx);
    fx->ctx = NULL;
}

static void
test_size_limit(void **state)
{
    struct fx *fx = *state;
    static char big[150000];
    size_t i;

    assert_int_equal(run_str(fx, "0123456789\r\n.\r\n", 12), 0);
    assert_false(fx->d.too_big);
    assert_int_equal(run_str(fx, "0123456789x\r\n.\r\nNEXT", 12), 0);
    assert_true(fx->d.too_big);
    assert_string_equal(fx->rest, "NEXT");
    /* a large message over several reads, limit crossed mid-way */
    for (i = 0; i + 100 < sizeof(big) - 10; i += 100) {
        memset(big + i, 'x', 98);
        memcpy(big + i + 98, "\r\n", 2);
    }
    memcpy(big + i, ".\r\nNEXT", 8);
    assert_int_equal(run(fx, big, strlen(big), 100000, 0), 0);
    assert_true(fx->d.too_big);
    assert_string_equal(fx->rest, "NEXT");
    assert_true(fx->clen < 100000 + 65536 * 2);
    assert_int_equal(run(fx, big, strlen(big), 0, 0), 0);
    assert_false(fx->d.too_big);
    assert_int_equal(fx->d.size, i);
    assert_int_equal(fx->clen, strlen(PRE) + 2 + i); /* + the empty line */
    modmta_ctx_free(fx->ctx);
    fx->ctx = NULL;
}

static void
test_headers(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(run_str(fx, "X-A: 1\r\n 2\r\nX-B:3\r\nnot a header\r\n"
                             "Y: 4\r\n.\r\n", 0), 0);
    assert_int_equal(modmta_hdr_count(fx->ctx), 3);
    assert_string_equal(modmta_hdr_get(fx->ctx, "X-A", 0), "1\r\n 2");
    assert_string_equal(modmta_hdr_get(fx->ctx, "x-b", 0), "3");
    assert_null(modmta_hdr_get(fx->ctx, "Y", 0));
    assert_int_equal(fx->d.hdr_len, strlen(PRE "X-A: 1\r\n 2\r\nX-B:3\r\n"));
    /* no body, no blank line: the whole content is the header block */
    assert_int_equal(run_str(fx, "A: b\r\n.\r\n", 0), 0);
    assert_int_equal(fx->d.hdr_len, strlen(PRE "A: b\r\n"));
    assert_int_equal(modmta_hdr_count(fx->ctx), 2);
    /* a body line first, even one that looks folded: only the prepended
     * header, then the empty line that ends it */
    assert_int_equal(run_str(fx, " folded?\r\n.\r\n", 0), 0);
    assert_int_equal(modmta_hdr_count(fx->ctx), 1);
    assert_string_equal(modmta_hdr_get(fx->ctx, "received", 0),
                        "from x\r\n\tby y; now");
    assert_string_equal(fx->content, PRE "\r\n folded?\r\n");
    assert_int_equal(fx->d.hdr_len, strlen(PRE));
    modmta_ctx_free(fx->ctx);
    fx->ctx = NULL;
}

/* A message that starts with its body gets the empty line that ends the
 * header block after our Received: header; one that starts with a header
 * field or with the empty line is stored as sent, whatever the reads. */
static void
test_body_first(void **state)
{
    struct fx *fx = *state;
    static const char *const in[] = {
        "text\r\n.\r\n", "Subject: s\r\n\r\ntext\r\n.\r\n",
        "\r\ntext\r\n.\r\n", "From x\r\n.\r\n", ".\r\n",
    };
    static const char *const want[] = {
        PRE "\r\ntext\r\n", PRE "Subject: s\r\n\r\ntext\r\n",
        PRE "\r\ntext\r\n", PRE "\r\nFrom x\r\n", PRE,
    };
    size_t i;
    int bytewise;

    for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        for (bytewise = 0; bytewise < 2; bytewise++) {
            assert_int_equal(run(fx, in[i], strlen(in[i]), 0, bytewise), 0);
            assert_string_equal(fx->content, want[i]);
            assert_int_equal(fx->d.size, strlen(in[i]) - 3);
        }
    }
    modmta_ctx_free(fx->ctx);
    fx->ctx = NULL;
}

/* A first line bigger than the header buffer: body too, after the empty
 * line; our Received: header still reaches the hooks. Whole or in
 * pieces (the overflow may come with the first chunk or a later one). */
static void
test_huge_first_line(void **state)
{
    struct fx *fx = *state;
    size_t len = 300000, i;
    char *in = malloc(len + 8);
    int bytewise;

    assert_non_null(in);
    for (i = 0; i < len; i++)
        in[i] = (char)('a' + i % 26);
    memcpy(in + len, "\r\n.\r\n", 6);
    for (bytewise = 0; bytewise < 2; bytewise++) {
        assert_int_equal(run(fx, in, len + 5, 0, bytewise), 0);
        assert_int_equal(fx->clen, strlen(PRE) + 2 + len + 2);
        assert_memory_equal(fx->content, PRE "\r\n", strlen(PRE) + 2);
        assert_memory_equal(fx->content + strlen(PRE) + 2, in, len + 2);
        assert_int_equal(fx->d.hdr_len, strlen(PRE));
        assert_string_equal(modmta_hdr_get(fx->ctx, "received", 0),
                            "from x\r\n\tby y; now");
    }
    free(in);
    modmta_ctx_free(fx->ctx);
    fx->ctx = NULL;
}

/* A NUL anywhere makes the message bad; the content after it is not
 * written and no header reaches the hooks. */
static void
test_nul_rejected(void **state)
{
    struct fx *fx = *state;
    static const char in[] = "X: a\0b\r\n\r\nbody\r\n.\r\nNEXT";

    assert_int_equal(run(fx, in, sizeof(in) - 1, 0, 0), 0);
    assert_true(fx->d.bad_nul);
    assert_string_equal(fx->rest, "NEXT");
    assert_int_equal(modmta_hdr_count(fx->ctx), 0);
    assert_int_equal(run_str(fx, "X: a\r\n\r\nbody\r\n.\r\n", 0), 0);
    assert_false(fx->d.bad_nul);
    modmta_ctx_free(fx->ctx);
    fx->ctx = NULL;
}

/* Past SMTP_DATA_HDR_FIELDS fields the rest is body for the hooks. */
static void
test_header_field_cap(void **state)
{
    struct fx *fx = *state;
    size_t n = SMTP_DATA_HDR_FIELDS + 50, i, len = 0;
    char *in = malloc(n * 8 + 16);

    assert_non_null(in);
    for (i = 0; i < n; i++)
        len += (size_t)sprintf(in + len, "H%04zu:\r\n", i % 10000);
    memcpy(in + len, ".\r\n", 4);
    len += 4;
    assert_int_equal(run(fx, in, len, 0, 0), 0);
    /* the prepended Received: counts as the first field */
    assert_int_equal(modmta_hdr_count(fx->ctx), SMTP_DATA_HDR_FIELDS);
    free(in);
    modmta_ctx_free(fx->ctx);
    fx->ctx = NULL;
}

static void
test_received(void **state)
{
    char *r;

    r = smtp_data_received("helo.example", "unknown", "192.0.2.1",
                           "mx.test", "ESMTPS", "TLSv1.3", "TLS_AES_256",
                           "QID1", "a@b.c");
    assert_non_null(r);
    assert_memory_equal(r, "Received: from helo.example (unknown "
                        "[192.0.2.1])\r\n\tby mx.test (modmta) with ESMTPS "
                        "(TLSv1.3 with cipher TLS_AES_256) id QID1\r\n\t"
                        "for <a@b.c>; ", 113);
    assert_string_equal(r + strlen(r) - 2, "\r\n");
    free(r);
    r = smtp_data_received("h", "n", "::1", "mx", "SMTP", NULL, NULL, "Q",
                           NULL);
    assert_non_null(strstr(r, "with SMTP id Q; "));
    assert_null(strstr(r, "for <"));
    free(r);
}

static void
test_received_local(void **state)
{
    static const char want[] = "Received: by mx.test (modmta invoked by "
                               "uid 1000)\r\n\tid QID1\r\n\tfor <a@b.c>; ";
    char *r = smtp_data_received_local("mx.test", 1000, "QID1", "a@b.c");

    assert_non_null(r);
    assert_memory_equal(r, want, strlen(want));
    assert_string_equal(r + strlen(r) - 2, "\r\n");
    free(r);
    r = smtp_data_received_local("mx", 0, "Q", NULL);
    assert_non_null(strstr(r, "(modmta invoked by uid 0)\r\n\tid Q; "));
    free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_received_local),
        cmocka_unit_test(test_empty_and_dots),
        cmocka_unit_test(test_smuggling),
        cmocka_unit_test(test_crlf_dot_crlf_only),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_body_first),
        cmocka_unit_test(test_huge_first_line),
        cmocka_unit_test(test_received),
        cmocka_unit_test(test_nul_rejected),
        cmocka_unit_test(test_header_field_cap),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
