/* Unit tests of the milter module: the codec, the configuration, reply
 * codes and header values, and the hooks against a milter played by a
 * thread of this test over a UNIX socket (accept, reject, outage). */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <modmta/modmta.h>

#include <fake.h>
#include "milter_codec.h"
#include "milter_conf.h"
#include "milter_pool.h"
#include "milter_proto.h"
#include "milter_session.h"

extern const modmta_module modmta_descriptor;

/* ---- codec ---- */

static void
test_codec_roundtrip(void **state)
{
    struct milter_buf b = {0};
    struct milter_rd rd;
    const char *s;
    uint32_t v;

    (void)state;
    assert_int_equal(milter_pkt_begin(&b, MILTER_C_HEADER), 0);
    assert_int_equal(milter_pkt_str(&b, "Subject"), 0);
    assert_int_equal(milter_pkt_u32(&b, 0x01020304), 0);
    milter_pkt_end(&b);
    assert_int_equal(milter_pkt_empty(&b, MILTER_C_EOH), 0);
    assert_int_equal(b.len, 4 + 1 + 8 + 4 + 4 + 1);
    assert_memory_equal(b.data, "\0\0\0\15L", 5);
    assert_memory_equal(b.data + 17, "\0\0\0\1N", 5);
    assert_int_equal(milter_pkt_length(b.data, MILTER_PACKET_MAX), 13);

    rd.p = b.data + 5;
    rd.left = 12;
    assert_int_equal(milter_rd_str(&rd, &s), 0);
    assert_string_equal(s, "Subject");
    assert_int_equal(milter_rd_u32(&rd, &v), 0);
    assert_int_equal(v, 0x01020304);
    assert_int_equal(milter_rd_u32(&rd, &v), -1);
    milter_buf_free(&b);
}

static void
test_codec_malformed(void **state)
{
    unsigned char zero[4] = {0, 0, 0, 0}, huge[4] = {0x7f, 0xff, 0xff, 0xff};
    struct milter_rd rd = {.p = (const unsigned char *)"no nul", .left = 6};
    const char *s;

    (void)state;
    assert_int_equal(milter_pkt_length(zero, MILTER_PACKET_MAX), -1);
    assert_int_equal(milter_pkt_length(huge, MILTER_PACKET_MAX), -1);
    assert_int_equal(milter_rd_str(&rd, &s), -1);
}

/* ---- configuration ---- */

/* s split and resolved: its family, or -1 when malformed. Numeric
 * addresses only: nothing here may reach a resolver. */
static int
conf_socket(const char *s, struct sockaddr_storage *ss)
{
    struct milter_sockspec sp;
    socklen_t len;

    if (milter_conf_socket_split(s, &sp) < 0)
        return -1;
    assert_int_equal(milter_conf_resolve(&sp, ss, &len), 0);
    return ss->ss_family;
}

/* s split: "host port" (port in host order), or "" when malformed. */
static const char *
conf_split(const char *s)
{
    static char out[300];
    struct milter_sockspec sp;

    if (milter_conf_socket_split(s, &sp) < 0)
        return "";
    snprintf(out, sizeof(out), "%s %u", sp.host, (unsigned)ntohs(sp.port));
    return out;
}

static void
test_conf_sockets_numeric(void **state)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    struct sockaddr_un *un = (struct sockaddr_un *)&ss;
    char a[INET6_ADDRSTRLEN];

    (void)state;
    assert_int_equal(conf_socket("inet:127.0.0.1:8891", &ss), AF_INET);
    assert_int_equal(ntohs(in->sin_port), 8891);
    assert_string_equal(inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a)),
                        "127.0.0.1");
    assert_int_equal(conf_socket("inet:8892@127.0.0.2", &ss), AF_INET);
    assert_int_equal(ntohs(in->sin_port), 8892);
    assert_string_equal(inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a)),
                        "127.0.0.2");
    assert_int_equal(conf_socket("inet6:[::1]:8891", &ss), AF_INET6);
    assert_int_equal(ntohs(in6->sin6_port), 8891);
    assert_string_equal(inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a)),
                        "::1");
    /* Postfix's and Sendmail's IPv6 after inet: */
    assert_int_equal(conf_socket("inet:[::1]:8895", &ss), AF_INET6);
    assert_int_equal(ntohs(in6->sin6_port), 8895);
    assert_int_equal(conf_socket("inet:8896@[::1]", &ss), AF_INET6);
    assert_int_equal(conf_socket("inet:8897@::1", &ss), AF_INET6);
    assert_int_equal(ntohs(in6->sin6_port), 8897);
    assert_int_equal(conf_socket("inet6:8893@::1", &ss), AF_INET6);
    assert_int_equal(ntohs(in6->sin6_port), 8893);
    assert_int_equal(conf_socket("inet6:8894@[2001:db8::5]", &ss), AF_INET6);
    assert_int_equal(ntohs(in6->sin6_port), 8894);
    assert_string_equal(inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a)),
                        "2001:db8::5");
    assert_int_equal(conf_socket("unix:/run/x.sock", &ss), AF_UNIX);
    assert_string_equal(un->sun_path, "/run/x.sock");
    assert_int_equal(conf_socket("local:/run/y.sock", &ss), AF_UNIX);
    assert_string_equal(un->sun_path, "/run/y.sock");
}

static void
test_conf_sockets_split(void **state)
{
    (void)state;
    /* host names are kept for the lookup */
    assert_string_equal(conf_split("inet:localhost:8891"), "localhost 8891");
    assert_string_equal(conf_split("inet:8891@localhost"), "localhost 8891");
    assert_string_equal(conf_split("inet:25@mx-1.example.org"),
                        "mx-1.example.org 25");
    assert_string_equal(conf_split("inet6:[milter.example]:8891"),
                        "milter.example 8891");
    assert_string_equal(conf_split("inet6:8891@milter.example"),
                        "milter.example 8891");
    assert_string_equal(conf_split("inet6:8891@[milter.example]"),
                        "milter.example 8891");
    assert_string_equal(conf_split("inet6:8891@[::1]"), "::1 8891");
    assert_string_equal(conf_split("inet:65535@10.0.0.1"), "10.0.0.1 65535");
    /* ports */
    assert_string_equal(conf_split("inet:127.0.0.1:0"), "");
    assert_string_equal(conf_split("inet:127.0.0.1:65536"), "");
    assert_string_equal(conf_split("inet:localhost:99999"), "");
    assert_string_equal(conf_split("inet:0@localhost"), "");
    assert_string_equal(conf_split("inet:x@localhost"), "");
    assert_string_equal(conf_split("inet:+25@localhost"), "");
    assert_string_equal(conf_split("inet:@localhost"), "");
    assert_string_equal(conf_split("inet:localhost:"), "");
    assert_string_equal(conf_split("inet:localhost"), "");
    assert_string_equal(conf_split("inet6:[::1]:"), "");
    assert_string_equal(conf_split("inet6:[::1]"), "");
    assert_string_equal(conf_split("inet:99999999999999999999@localhost"),
                        "");
    /* hosts */
    assert_string_equal(conf_split("inet:8891@"), "");
    assert_string_equal(conf_split("inet::8891"), "");
    assert_string_equal(conf_split("inet6:[]:8891"), "");
    assert_string_equal(conf_split("inet6:8891@"), "");
    assert_string_equal(conf_split("inet6:8891@[]"), "");
    assert_string_equal(conf_split("inet6:8891@[::1"), "");
    assert_string_equal(conf_split("inet:8891@[127.0.0.1]"),
                        "127.0.0.1 8891");
    assert_string_equal(conf_split("inet:[127.0.0.1]:8891"),
                        "127.0.0.1 8891");
    assert_string_equal(conf_split("inet:[localhost]:8891"),
                        "localhost 8891");
    /* dotted quads only: inet_aton's forms are not what they seem */
    assert_string_equal(conf_split("inet:010.0.0.1:25"), "");
    assert_string_equal(conf_split("inet:127.1:25"), "");
    assert_string_equal(conf_split("inet:1:25"), "");
    assert_string_equal(conf_split("inet:0x7f000001:25"), "");
    assert_string_equal(conf_split("inet:0x7f.1:25"), "");
    assert_string_equal(conf_split("inet:example.123:25"), "");
    assert_string_equal(conf_split("inet:::1:25"), "");    /* [::1] */
    assert_string_equal(conf_split("inet:1and1.example:25"),
                        "1and1.example 25");
    assert_string_equal(conf_split("inet:25@dkim.example."),
                        "dkim.example. 25");
    /* names: no empty label, none of only '-' or '_' */
    assert_string_equal(conf_split("inet:a..b:25"), "");
    assert_string_equal(conf_split("inet:.a:25"), "");
    assert_string_equal(conf_split("inet:a..:25"), "");
    assert_string_equal(conf_split("inet:-:25"), "");
    assert_string_equal(conf_split("inet:8891@_.x"), "");
    assert_string_equal(conf_split("inet:8891@host@example"), "");
    assert_string_equal(conf_split("inet:8891@bad host"), "");
    assert_string_equal(conf_split("inet:300.1.1.1:25"), "");
    assert_string_equal(conf_split("inet6:::1:25"), "");
    assert_string_equal(conf_split("inet6:8891@127.0.0.1"), "");
    assert_string_equal(conf_split("inet6:[127.0.0.1]:8891"), "");
    assert_string_equal(conf_split("inet6:8891@1::2::3"), "");
    /* others */
    assert_string_equal(conf_split("unix:rel"), "");
    assert_string_equal(conf_split("local:rel"), "");
    assert_string_equal(conf_split("8891@127.0.0.1"), "");
    assert_string_equal(conf_split("tcp:127.0.0.1:25"), "");
}

static void
test_conf_durations(void **state)
{
    json_t *v;

    (void)state;
    v = json_string("500ms");
    assert_int_equal(milter_conf_duration(v), 500);
    json_decref(v);
    v = json_string("5m");
    assert_int_equal(milter_conf_duration(v), 300000);
    json_decref(v);
    v = json_integer(30);
    assert_int_equal(milter_conf_duration(v), 30000);
    json_decref(v);
    v = json_string("2h");
    assert_int_equal(milter_conf_duration(v), -1);
    json_decref(v);
    v = json_string("0s");
    assert_int_equal(milter_conf_duration(v), -1);
    json_decref(v);
}

static void
test_conf_errors(void **state)
{
    modmta_host *h = modmta_test_host_new("milter", NULL);

    (void)state;
    modmta_test_create_fails_with(&modmta_descriptor, "{}", h,
                                  "$.modules[0]", "milters");
    modmta_test_create_fails(&modmta_descriptor, "{\"milters\": []}", h,
                             "$.modules[0].milters");
    modmta_test_create_fails(&modmta_descriptor,
                             "{\"milters\": [{\"name\": \"x\"}]}", h,
                             "$.modules[0].milters[0].socket");
    modmta_test_create_fails_with(&modmta_descriptor,
                                  "{\"milters\": [{\"socket\": "
                                  "\"inet:8891@\"}]}", h,
                                  "$.modules[0].milters[0].socket",
                                  "\"inet:PORT@HOST\"");
    modmta_test_create_fails(
        &modmta_descriptor,
        "{\"milters\": [{\"socket\": \"inet:127.0.0.1:1\", "
        "\"timeouts\": {\"read\": \"1s\"}}]}",
        h, "$.modules[0].milters[0].timeouts.read");
    modmta_test_create_fails(
        &modmta_descriptor,
        "{\"milters\": [{\"socket\": \"inet:127.0.0.1:1\", "
        "\"protocol_steps\": [\"unknown\"]}]}",
        h, "$.modules[0].milters[0].protocol_steps[0]");
    modmta_test_create_fails(&modmta_descriptor,
                             "{\"milters\": [{\"socket\": \"inet:127.0.0.1:1"
                             "\"}], \"extra\": 1}",
                             h, "$.modules[0].extra");
    modmta_test_host_free(h);
}

/* ---- replies and header values ---- */

static void
test_replycode(void **state)
{
    modmta_host *h = modmta_test_host_new("milter", NULL);
    modmta_ctx *ctx = modmta_test_ctx_new(h, "192.0.2.1");
    char one[] = "550 5.7.1 go away";
    char multi[] = "451-4.7.1 first\r\n451 4.7.1 second";
    char bad[] = "250 fine";
    char mixed[] = "550-5.7.1 a\r\n451 4.7.1 b";
    const char *text;

    (void)state;
    modmta_test_enter(ctx, MODMTA_PHASE_RCPT, &modmta_descriptor, NULL);
    assert_int_equal(milter_replycode(ctx, one), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(ctx), 550);
    assert_string_equal(modmta_test_reply_esc(ctx), "5.7.1");
    assert_string_equal(modmta_test_reply_text(ctx), "go away");
    assert_int_equal(milter_replycode(ctx, multi), MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_lines(ctx, &text), 2);
    assert_string_equal(text, "first\nsecond");
    assert_int_equal(milter_replycode(ctx, bad), -1);
    assert_int_equal(milter_replycode(ctx, mixed), -1);
    /* RFC 3463, strictly: the reply's class, 1 to 3 digits twice; what is
     * not a code stays in the text */
    {
        static const char *const not_esc[] = {
            "5.........", "4.7.1", "5.1234.1", "5.1.1234", "5..1", "5.1.",
            "5.1.1.1", "5.x.1", "5.7.1x", "55.7.1",
        };
        char buf[64], want[64];

        for (size_t i = 0; i < sizeof(not_esc) / sizeof(not_esc[0]); i++) {
            snprintf(buf, sizeof(buf), "550 %s go away", not_esc[i]);
            snprintf(want, sizeof(want), "%s go away", not_esc[i]);
            assert_int_equal(milter_replycode(ctx, buf), MODMTA_REJECT);
            assert_string_equal(modmta_test_reply_text(ctx), want);
            assert_string_not_equal(modmta_test_reply_esc(ctx), not_esc[i]);
        }
        snprintf(buf, sizeof(buf), "550 5.123.456 fine");
        assert_int_equal(milter_replycode(ctx, buf), MODMTA_REJECT);
        assert_string_equal(modmta_test_reply_esc(ctx), "5.123.456");
        assert_string_equal(modmta_test_reply_text(ctx), "fine");
        snprintf(buf, sizeof(buf), "451 4.7.1");
        assert_int_equal(milter_replycode(ctx, buf), MODMTA_TEMPFAIL);
        assert_string_equal(modmta_test_reply_esc(ctx), "4.7.1");
    }
    modmta_test_ctx_free(ctx);
    modmta_test_host_free(h);
}

static void
test_header_value(void **state)
{
    char *v;

    (void)state;
    v = milter_header_value(0, "a=1;\n\tb=2");
    assert_string_equal(v, "a=1;\r\n\tb=2");
    free(v);
    /* a line break without white space after it stays in this header */
    v = milter_header_value(0, "x\r\nBcc: victim@example.net");
    assert_string_equal(v, "x\r\n\tBcc: victim@example.net");
    free(v);
    v = milter_header_value(MILTER_P_HDR_LEADSPC, " spaced");
    assert_string_equal(v, "spaced");
    free(v);
}

/* ---- hooks against a milter thread ---- */

struct fake {
    char path[108];
    int lfd;
    int mail_reply; /* reply code to MAIL */
    pthread_t thread;
};

static int
read_full(int fd, unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, p, n);

        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void
send_pkt(int fd, int code, const void *data, size_t n)
{
    unsigned char hdr[5] = {(unsigned char)((n + 1) >> 24),
                            (unsigned char)((n + 1) >> 16),
                            (unsigned char)((n + 1) >> 8),
                            (unsigned char)(n + 1), (unsigned char)code};

    assert_true(write(fd, hdr, 5) == 5);
    if (n > 0)
        assert_true(write(fd, data, n) == (ssize_t)n);
}

static void *
fake_serve(void *arg)
{
    struct fake *f = arg;
    unsigned char hdr[4], buf[65536];
    int fd = accept(f->lfd, NULL, NULL);
    uint32_t n;

    while (fd >= 0 && read_full(fd, hdr, 4) == 0) {
        n = (uint32_t)hdr[0] << 24 | hdr[1] << 16 | hdr[2] << 8 | hdr[3];
        if (n == 0 || n > sizeof(buf) || read_full(fd, buf, n) < 0)
            break;
        if (buf[0] == MILTER_C_OPTNEG) {
            unsigned char o[12] = {0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0};

            send_pkt(fd, MILTER_C_OPTNEG, o, sizeof(o));
        } else if (buf[0] == MILTER_C_QUIT) {
            break;
        } else if (buf[0] == MILTER_C_MAIL) {
            send_pkt(fd, f->mail_reply, NULL, 0);
        } else if (buf[0] != MILTER_C_MACRO && buf[0] != MILTER_C_ABORT) {
            send_pkt(fd, MILTER_R_CONTINUE, NULL, 0);
        }
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void
fake_start(struct fake *f, int mail_reply)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};

    snprintf(f->path, sizeof(f->path), "/tmp/test_milter.%d.sock",
             (int)getpid());
    unlink(f->path);
    snprintf(un.sun_path, sizeof(un.sun_path), "%s", f->path);
    f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&un, sizeof(un)), 0);
    assert_int_equal(listen(f->lfd, 1), 0);
    f->mail_reply = mail_reply;
    assert_int_equal(pthread_create(&f->thread, NULL, fake_serve, f), 0);
}

static void
fake_stop(struct fake *f)
{
    pthread_join(f->thread, NULL);
    close(f->lfd);
    unlink(f->path);
}

/* A session through connect, HELO and MAIL; the verdict of MAIL. */
static modmta_verdict
run_session(const char *conf, int *code_r)
{
    modmta_host *h = modmta_test_host_new("milter", "localhost", NULL);
    void *inst = modmta_test_create_ok(&modmta_descriptor, conf, h);
    modmta_ctx *ctx = modmta_test_ctx_new(h, "192.0.2.1");
    modmta_verdict v;

    modmta_test_enter(ctx, MODMTA_PHASE_CONNECT, &modmta_descriptor, inst);
    assert_int_equal(modmta_descriptor.on_connect(inst, ctx),
                     MODMTA_CONTINUE);
    modmta_test_enter(ctx, MODMTA_PHASE_HELO, &modmta_descriptor, inst);
    assert_int_equal(modmta_descriptor.on_helo(inst, ctx, "client.test"),
                     MODMTA_CONTINUE);
    modmta_test_set_sender(ctx, "QID1", "alice@example.org");
    modmta_test_enter(ctx, MODMTA_PHASE_MAIL, &modmta_descriptor, inst);
    v = modmta_descriptor.on_mail(inst, ctx, "alice@example.org");
    *code_r = modmta_test_reply_code(ctx);
    /* QUIT, through the session data */
    modmta_test_release(&modmta_descriptor, inst, ctx, h);
    return v;
}

/* A peer on one end of a socket pair, negotiated version 6. */
static void
pool_peer(struct milter_peer *p, const struct milter_spec *spec, int fd)
{
    memset(p, 0, sizeof(*p));
    p->spec = spec;
    p->conn.fd = fd;
    p->version = 6;
    p->actions = MILTER_A_ADDHDRS;
    p->chunk = MILTER_CHUNK_64K;
}

/* The idle pool: QUIT_NC only at rest; a pooled connection comes back
 * with what was negotiated on it; one the milter closed is dropped. */
static void
test_pool(void **state)
{
    struct milter_spec spec = {.pool_size = 2, .idle_ms = 60000};
    struct milter_pool pl;
    struct milter_peer p;
    unsigned char got[5];
    int sv[2];

    (void)state;
    assert_int_equal(milter_pool_init(&pl, &spec), 0);
    pool_peer(&p, &spec, -1);
    assert_int_equal(milter_pool_take(&pl, &p), 0);

    /* not at rest (an aborted or empty session): QUIT, closed */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pool_peer(&p, &spec, sv[0]);
    milter_pool_release(&pl, &p, 1000);
    assert_int_equal(p.conn.fd, -1);
    assert_int_equal(read(sv[1], got, 5), 5);
    assert_int_equal(got[4], MILTER_C_QUIT);
    assert_int_equal(read(sv[1], got, 1), 0); /* closed */
    close(sv[1]);

    /* at rest: QUIT_NC, pooled, taken back with its options */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pool_peer(&p, &spec, sv[0]);
    p.at_rest = 1;
    p.macros[MILTER_M_MAIL] = strdup("{mail_addr}");
    milter_pool_release(&pl, &p, 1000);
    assert_int_equal(p.conn.fd, -1);
    assert_null(p.macros[MILTER_M_MAIL]);
    assert_int_equal(read(sv[1], got, 5), 5);
    assert_int_equal(got[4], MILTER_C_QUIT_NC);
    pool_peer(&p, &spec, -1);
    p.version = p.actions = 0;
    assert_int_equal(milter_pool_take(&pl, &p), 1);
    assert_int_equal(p.conn.fd, sv[0]);
    assert_int_equal(p.version, 6);
    assert_int_equal(p.actions, MILTER_A_ADDHDRS);
    assert_string_equal(p.macros[MILTER_M_MAIL], "{mail_addr}");
    free(p.macros[MILTER_M_MAIL]);
    p.macros[MILTER_M_MAIL] = NULL;

    /* pooled again, then closed by the milter: not taken */
    p.at_rest = 1;
    milter_pool_release(&pl, &p, 1000);
    assert_int_equal(read(sv[1], got, 5), 5);
    close(sv[1]);
    pool_peer(&p, &spec, -1);
    assert_int_equal(milter_pool_take(&pl, &p), 0);
    assert_int_equal(pl.n, 0);
    milter_pool_free(&pl);
}

static void
test_hooks_accept_reject(void **state)
{
    struct fake f;
    char conf[256];
    int code;

    (void)state;
    fake_start(&f, MILTER_R_ACCEPT);
    snprintf(conf, sizeof(conf), "{\"milters\": [{\"socket\": \"unix:%s\"}]}",
             f.path);
    /* ACCEPT is no claim: CONTINUE */
    assert_int_equal(run_session(conf, &code), MODMTA_CONTINUE);
    fake_stop(&f);

    fake_start(&f, MILTER_R_REJECT);
    assert_int_equal(run_session(conf, &code), MODMTA_REJECT);
    assert_int_equal(code, 550);
    fake_stop(&f);
}

static void
test_hooks_outage(void **state)
{
    int code;

    (void)state;
    unlink("/tmp/test_milter.none.sock");
    assert_int_equal(run_session("{\"milters\": [{\"socket\": "
                                 "\"unix:/tmp/test_milter.none.sock\"}]}",
                                 &code),
                     MODMTA_TEMPFAIL);
    assert_int_equal(code, 451);
    assert_int_equal(run_session("{\"milters\": [{\"socket\": "
                                 "\"unix:/tmp/test_milter.none.sock\", "
                                 "\"default_action\": \"accept\"}]}",
                                 &code),
                     MODMTA_CONTINUE);
    assert_int_equal(run_session("{\"milters\": [{\"socket\": "
                                 "\"unix:/tmp/test_milter.none.sock\", "
                                 "\"default_action\": \"reject\"}]}",
                                 &code),
                     MODMTA_REJECT);
    assert_int_equal(code, 550);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_roundtrip),
        cmocka_unit_test(test_codec_malformed),
        cmocka_unit_test(test_conf_sockets_numeric),
        cmocka_unit_test(test_conf_sockets_split),
        cmocka_unit_test(test_conf_durations),
        cmocka_unit_test(test_conf_errors),
        cmocka_unit_test(test_replycode),
        cmocka_unit_test(test_header_value),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_hooks_accept_reject),
        cmocka_unit_test(test_hooks_outage),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
