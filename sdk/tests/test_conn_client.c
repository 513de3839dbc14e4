/* Unit tests of sdk/src/conn_client.c and tls_client.c: connecting (TCP,
 * UNIX, refused, timed out, the daemon's stop flag, a hook's time
 * budget) and the TLS client
 * (verification levels, names, wildcards, the trust store) against a
 * server thread on the other end of a socket pair, with certificates made
 * by the test. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <modmta/conn.h>

#include "budget_priv.h"
#include "conn_priv.h"
#include "ctx_priv.h"

static char tmpdir[] = "/tmp/modmta-conn-XXXXXX";

/* More than any socket buffers hold. */
#define BIG_WRITE (16 << 20)

/* ---- helpers: sockets ---- */

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A loopback TCP socket bound to a free port; listening with backlog
 * when backlog >= 0. */
static int
tcp_socket(int backlog, struct sockaddr_in *sin)
{
    socklen_t len = sizeof(*sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)sin, sizeof(*sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)sin, &len), 0);
    if (backlog >= 0)
        assert_int_equal(listen(fd, backlog), 0);
    return fd;
}

/* A listener whose accept queue is full: a connect to it gets no answer
 * (Linux drops the SYN). fills[] keeps the queued clients. */
static int
full_listener(struct sockaddr_in *sin, int fills[4])
{
    int fd = tcp_socket(0, sin), i;

    for (i = 0; i < 4; i++) {
        fills[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        assert_true(fills[i] >= 0);
        (void)connect(fills[i], (struct sockaddr *)sin, sizeof(*sin));
    }
    return fd;
}

static void
close_fills(int fills[4])
{
    int i;

    for (i = 0; i < 4; i++)
        close(fills[i]);
}

/* ---- connecting ---- */

static void
test_connect_tcp(void **state)
{
    struct sockaddr_in sin;
    int lfd = tcp_socket(4, &sin), afd;
    modmta_err err;
    modmta_conn *c;
    char line[64];

    c = modmta_conn_connect(NULL, (struct sockaddr *)&sin, sizeof(sin), 5000,
                            &err);
    assert_non_null(c);
    afd = accept(lfd, NULL, NULL);
    assert_true(afd >= 0);
    assert_int_equal(write(afd, "220 hi\r\n", 8), 8);
    assert_int_equal(modmta_conn_readline(c, line, sizeof(line), 5000), 6);
    assert_string_equal(line, "220 hi");
    assert_int_equal(modmta_conn_printf(c, "QUIT\r\n"), 0);
    modmta_conn_set_timeout(c, 5000);
    assert_int_equal(modmta_conn_flush(c), 0);
    assert_int_equal(read(afd, line, sizeof(line)), 6);
    assert_false(modmta_conn_is_tls(c));
    assert_false(modmta_conn_tls_verified(c));
    assert_null(modmta_conn_tls_version(c));
    modmta_conn_close(c);
    modmta_conn_close(NULL);
    close(afd);
    close(lfd);
}

static void
test_connect_refused(void **state)
{
    struct sockaddr_in sin;
    int fd = tcp_socket(-1, &sin); /* bound, not listening: RST */
    char want[128];
    modmta_err err;

    assert_null(modmta_conn_connect(NULL, (struct sockaddr *)&sin,
                                    sizeof(sin), 5000, &err));
    snprintf(want, sizeof(want), "connect to 127.0.0.1:%u: %s",
             ntohs(sin.sin_port), strerror(ECONNREFUSED));
    assert_string_equal(err.msg, want);
    close(fd);
}

static void
test_connect_timeout(void **state)
{
    struct sockaddr_in sin;
    int fills[4], fd = full_listener(&sin, fills);
    char want[128];
    modmta_err err;

    assert_null(modmta_conn_connect(NULL, (struct sockaddr *)&sin,
                                    sizeof(sin), 300, &err));
    snprintf(want, sizeof(want), "connect to 127.0.0.1:%u: timed out",
             ntohs(sin.sin_port));
    assert_string_equal(err.msg, want);
    close_fills(fills);
    close(fd);
}

/* Inside a hook's budget a connect and a read end by its deadline,
 * whatever their own timeouts (longer than the test may run: ignoring
 * the budget would hang it), and say the budget stopped them. */
static void
test_hook_budget(void **state)
{
    modmta_ctx *ctx = modmta_ctx_new(NULL);
    struct sockaddr_in sin;
    int fills[4], fd, lfd, afd;
    modmta_err err;
    modmta_conn *c;
    char line[64];

    fd = full_listener(&sin, fills);
    budget_begin(ctx, budget_now_ms() + 200);
    assert_null(modmta_conn_connect(ctx, (struct sockaddr *)&sin,
                                    sizeof(sin), 600000, &err));
    assert_int_equal(budget_end(ctx), 1);
    assert_non_null(strstr(err.msg, ": timed out: the hook's time budget "
                           "is spent"));
    close_fills(fills);
    close(fd);

    lfd = tcp_socket(4, &sin);
    c = modmta_conn_connect(ctx, (struct sockaddr *)&sin, sizeof(sin), 5000,
                            &err);
    assert_non_null(c);
    afd = accept(lfd, NULL, NULL);
    assert_true(afd >= 0);
    budget_begin(ctx, budget_now_ms() + 200);
    assert_int_equal(modmta_conn_readline(c, line, sizeof(line), 600000),
                     MODMTA_E_TIMEOUT);
    assert_int_equal(budget_end(ctx), 1);
    /* out of the hook, the connection's own timeouts apply again */
    assert_int_equal(write(afd, "250 ok\r\n", 8), 8);
    assert_int_equal(modmta_conn_readline(c, line, sizeof(line), 5000), 6);
    modmta_conn_close(c);
    close(afd);
    close(lfd);
    modmta_ctx_free(ctx);
}

static void
test_connect_bad_address(void **state)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct sockaddr_in6 s6;
    modmta_conn *c;
    modmta_err err;

    assert_null(modmta_conn_connect(NULL, (struct sockaddr *)&sun,
                                    sizeof(sun), 100, &err));
    assert_string_equal(err.msg, "connect: not an IPv4 or IPv6 address");
    memset(&s6, 0, sizeof(s6));
    s6.sin6_family = AF_INET6;
    assert_null(modmta_conn_connect(NULL, (struct sockaddr *)&s6,
                                    sizeof(struct sockaddr_in), 100, &err));
    /* an IPv6 address is written in brackets */
    s6.sin6_addr = in6addr_loopback;
    s6.sin6_port = htons(1);
    c = modmta_conn_connect(NULL, (struct sockaddr *)&s6, sizeof(s6), 1000,
                            &err);
    if (c == NULL)
        assert_non_null(strstr(err.msg, "connect to [::1]:1: "));
    modmta_conn_close(c);
}

static void
test_connect_unix(void **state)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char path[200], want[300], longpath[200];
    int lfd, afd;
    modmta_err err;
    modmta_conn *c;

    snprintf(path, sizeof(path), "%s/lmtp", tmpdir);
    assert_true(strlen(path) < sizeof(sun.sun_path));
    memcpy(sun.sun_path, path, strlen(path) + 1);
    lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    c = modmta_conn_connect_unix(NULL, path, 5000, &err);
    assert_non_null(c);
    afd = accept(lfd, NULL, NULL);
    assert_int_equal(write(afd, "220 lmtp\r\n", 10), 10);
    assert_int_equal(modmta_conn_readline(c, want, sizeof(want), 5000), 8);
    modmta_conn_close(c);
    close(afd);
    close(lfd);

    snprintf(path, sizeof(path), "%s/none", tmpdir);
    assert_null(modmta_conn_connect_unix(NULL, path, 5000, &err));
    snprintf(want, sizeof(want), "connect to %s: %s", path,
             strerror(ENOENT));
    assert_string_equal(err.msg, want);
    memset(longpath, 'x', sizeof(longpath) - 1);
    longpath[sizeof(longpath) - 1] = '\0';
    assert_null(modmta_conn_connect_unix(NULL, longpath, 5000, &err));
    assert_non_null(strstr(err.msg, ": path too long"));
    assert_null(modmta_conn_connect_unix(NULL, "", 5000, &err));
}

struct raiser {
    volatile sig_atomic_t *flag;
    int after_ms;
};

static void *
raise_later(void *arg)
{
    struct raiser *r = arg;
    struct timespec ts = {0, (long)r->after_ms * 1000000L};

    nanosleep(&ts, NULL);
    *r->flag = 1;
    return NULL;
}

/* The ctx's stop flag ends a connect, a read and a write in progress
 * within about a second, long before their timeouts. */
static void
test_stop_flag(void **state)
{
    static volatile sig_atomic_t stop;
    struct raiser r = {&stop, 200};
    struct sockaddr_in sin;
    int fills[4], fd, lfd, afd;
    modmta_ctx *ctx = modmta_ctx_new(NULL), *ctx2 = modmta_ctx_new(NULL);
    int small = 4096;
    char *big;
    long long t0;
    pthread_t th;
    modmta_err err;
    modmta_conn *c;
    char line[64];

    ctx->interrupt = &stop;
    ctx2->interrupt = &stop;
    stop = 0;
    fd = full_listener(&sin, fills);
    t0 = now_ms();
    assert_int_equal(pthread_create(&th, NULL, raise_later, &r), 0);
    assert_null(modmta_conn_connect(ctx, (struct sockaddr *)&sin,
                                    sizeof(sin), 30000, &err));
    pthread_join(th, NULL);
    assert_true(now_ms() - t0 < 10000);
    assert_non_null(strstr(err.msg, ": interrupted: the daemon is stopping"));
    close_fills(fills);
    close(fd);

    stop = 0;
    lfd = tcp_socket(4, &sin);
    c = modmta_conn_connect(ctx, (struct sockaddr *)&sin, sizeof(sin), 5000,
                            &err);
    assert_non_null(c);
    afd = accept(lfd, NULL, NULL);
    /* the link outlives the ctx */
    modmta_ctx_free(ctx);
    t0 = now_ms();
    assert_int_equal(pthread_create(&th, NULL, raise_later, &r), 0);
    assert_int_equal(modmta_conn_readline(c, line, sizeof(line), 30000),
                     MODMTA_E_TIMEOUT);
    pthread_join(th, NULL);
    assert_true(now_ms() - t0 < 10000);
    modmta_conn_close(c);
    close(afd);

    /* a write to a peer that reads nothing */
    stop = 0;
    c = modmta_conn_connect(ctx2, (struct sockaddr *)&sin, sizeof(sin), 5000,
                            &err);
    assert_non_null(c);
    afd = accept(lfd, NULL, NULL);
    assert_int_equal(setsockopt(afd, SOL_SOCKET, SO_RCVBUF, &small,
                                sizeof(small)), 0);
    assert_int_equal(setsockopt(modmta_conn_fd(c), SOL_SOCKET, SO_SNDBUF,
                                &small, sizeof(small)), 0);
    big = calloc(1, BIG_WRITE);
    assert_non_null(big);
    modmta_conn_set_timeout(c, 30000);
    t0 = now_ms();
    assert_int_equal(pthread_create(&th, NULL, raise_later, &r), 0);
    assert_int_equal(modmta_conn_write(c, big, BIG_WRITE), MODMTA_E_TIMEOUT);
    pthread_join(th, NULL);
    assert_true(now_ms() - t0 < 10000);
    free(big);
    modmta_conn_close(c);
    modmta_ctx_free(ctx2);
    close(afd);
    close(lfd);
}

/* ---- certificates ---- */

struct pki {
    EVP_PKEY *ca_key;
    X509 *ca;
    char ca_file[256];
};

static struct pki pki;

static void
add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v3, nid, value);

    assert_non_null(e);
    assert_int_equal(X509_add_ext(x, e, -1), 1);
    X509_EXTENSION_free(e);
}

/* A certificate for key with subject CN cn and subjectAltName san (or
 * none), signed by the test CA, or self-signed (and a CA) when self. */
static X509 *
cert_new(EVP_PKEY *key, const char *cn, const char *san, int self)
{
    static long serial = 1;
    X509 *x = X509_new();
    X509_NAME *name;
    X509V3_CTX v3;

    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, self ? name : X509_get_subject_name(pki.ca));
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, self ? x : pki.ca, x, NULL, NULL, 0);
    add_ext(x, &v3, NID_basic_constraints,
            self ? "critical,CA:TRUE" : "CA:FALSE");
    if (self)
        add_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
    if (san != NULL)
        add_ext(x, &v3, NID_subject_alt_name, san);
    assert_true(X509_sign(x, self ? key : pki.ca_key, EVP_sha256()) > 0);
    return x;
}

/* A server SSL_CTX with a new key and a certificate (see cert_new). */
static SSL_CTX *
server_ctx(const char *cn, const char *san, int self, int tls12)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x;

    assert_non_null(ctx);
    assert_non_null(key);
    x = cert_new(key, cn, san, self);
    assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
    if (tls12)
        SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    X509_free(x);
    EVP_PKEY_free(key);
    return ctx;
}

static int
setup(void **state)
{
    FILE *f;

    if (mkdtemp(tmpdir) == NULL)
        return -1;
    pki.ca_key = EVP_EC_gen("P-256");
    pki.ca = cert_new(pki.ca_key, "modmta test CA", NULL, 1);
    snprintf(pki.ca_file, sizeof(pki.ca_file), "%s/ca.pem", tmpdir);
    f = fopen(pki.ca_file, "w");
    if (f == NULL || PEM_write_X509(f, pki.ca) != 1)
        return -1;
    fclose(f);
    return 0;
}

static int
teardown(void **state)
{
    char cmd[300];

    X509_free(pki.ca);
    EVP_PKEY_free(pki.ca_key);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- the TLS client against a server thread ---- */

struct server {
    int fd;
    SSL_CTX *ctx;
    int handshake;       /* result of the server's handshake */
    char line[128];      /* the line the client sent under TLS */
};

/* Sends "220 go" and, in the same write, junk the client must forget;
 * then the handshake, "hello" under TLS, and reads one line. */
static void *
server_run(void *arg)
{
    struct server *s = arg;
    modmta_conn *c = modmta_conn_new(s->fd, s->ctx);
    ssize_t n;

    modmta_conn_set_write_timeout(c, 5000);
    modmta_conn_printf(c, "220 go\r\n250 JUNK\r\n");
    modmta_conn_flush(c);
    s->handshake = modmta_conn_tls_accept(c, 5000);
    if (s->handshake == 0) {
        modmta_conn_printf(c, "hello\r\n");
        modmta_conn_flush(c);
        n = modmta_conn_readline(c, s->line, sizeof(s->line), 5000);
        if (n < 0)
            s->line[0] = '\0';
    }
    modmta_conn_free(c);
    return NULL;
}

/* One STARTTLS-like exchange: the client reads "220 go", starts TLS with
 * t, name and level; on success reads "hello" and sends "bye". Returns
 * the handshake's result; verified_r says modmta_conn_tls_verified. */
static int
handshake(SSL_CTX *sctx, modmta_tls_client *t, const char *name,
          modmta_tls_verify level, int *verified_r, modmta_err *err)
{
    struct server s = {.ctx = sctx};
    int fds[2], rc;
    modmta_conn *c;
    pthread_t th;
    char line[128];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    s.fd = fds[1];
    assert_int_equal(pthread_create(&th, NULL, server_run, &s), 0);
    c = modmta_conn_new(fds[0], NULL);
    assert_non_null(c);
    assert_int_equal(modmta_conn_readline(c, line, sizeof(line), 5000), 6);
    assert_string_equal(line, "220 go");
    err->msg[0] = '\0';
    rc = modmta_conn_starttls_client(c, t, name, level, 5000, err);
    *verified_r = modmta_conn_tls_verified(c);
    if (rc == 0) {
        assert_true(modmta_conn_is_tls(c));
        assert_non_null(modmta_conn_tls_version(c));
        assert_non_null(modmta_conn_tls_cipher(c));
        /* the junk sent in clear was forgotten */
        assert_int_equal(modmta_conn_readline(c, line, sizeof(line), 5000),
                         5);
        assert_string_equal(line, "hello");
        assert_int_equal(modmta_conn_printf(c, "bye\r\n"), 0);
        assert_int_equal(modmta_conn_flush(c), 0);
        assert_int_equal(modmta_conn_starttls_client(c, t, name, level, 5000,
                                                     err),
                         MODMTA_E_STATE);
    }
    modmta_conn_close(c);
    pthread_join(th, NULL);
    if (rc == 0) {
        assert_int_equal(s.handshake, 0);
        assert_string_equal(s.line, "bye");
    }
    return rc;
}

static modmta_tls_client *
client(const char *ca_file, const char *min)
{
    modmta_err err;
    modmta_tls_client *t = modmta_tls_client_new(ca_file, min, &err);

    if (t == NULL)
        fail_msg("modmta_tls_client_new: %s", err.msg);
    return t;
}

/* ENCRYPT takes any certificate and tells whether it verified. */
static void
test_tls_encrypt(void **state)
{
    SSL_CTX *self = server_ctx("mx.remote.test", NULL, 1, 0);
    SSL_CTX *signd = server_ctx("mx1", "DNS:mx1.remote.test", 0, 0);
    modmta_tls_client *sys = client(NULL, NULL);
    modmta_tls_client *ca = client(pki.ca_file, "TLSv1.2");
    modmta_err err;
    int v;

    assert_int_equal(handshake(self, sys, "mx.remote.test",
                               MODMTA_TLS_ENCRYPT, &v, &err), 0);
    assert_false(v);
    assert_int_equal(handshake(signd, ca, "mx1.remote.test",
                               MODMTA_TLS_ENCRYPT, &v, &err), 0);
    assert_true(v);
    assert_int_equal(handshake(signd, ca, "mx2.remote.test",
                               MODMTA_TLS_ENCRYPT, &v, &err), 0);
    assert_false(v);
    assert_int_equal(handshake(signd, ca, NULL, MODMTA_TLS_ENCRYPT, &v,
                               &err), 0);
    assert_false(v); /* a chain alone, no name checked */
    modmta_tls_client_free(sys);
    modmta_tls_client_free(ca);
    SSL_CTX_free(self);
    SSL_CTX_free(signd);
}

/* VERIFY: chain to the trust store and the name, or MODMTA_E_PERM. */
static void
test_tls_verify(void **state)
{
    SSL_CTX *signd = server_ctx("mx1", "DNS:mx1.remote.test", 0, 0);
    SSL_CTX *cn_only = server_ctx("mx3.remote.test", NULL, 0, 0);
    modmta_tls_client *sys = client(NULL, NULL);
    modmta_tls_client *ca = client(pki.ca_file, NULL);
    modmta_err err;
    int v;

    assert_int_equal(handshake(signd, ca, "mx1.remote.test",
                               MODMTA_TLS_VERIFY, &v, &err), 0);
    assert_true(v);
    assert_int_equal(handshake(signd, ca, "MX1.Remote.Test.",
                               MODMTA_TLS_VERIFY, &v, &err), 0);
    assert_true(v);
    assert_int_equal(handshake(signd, ca, "mx2.remote.test",
                               MODMTA_TLS_VERIFY, &v, &err), MODMTA_E_PERM);
    assert_false(v);
    assert_string_equal(err.msg, "certificate name mismatch: the "
                        "certificate does not name mx2.remote.test");
    /* the CN counts when there is no DNS name */
    assert_int_equal(handshake(cn_only, ca, "mx3.remote.test",
                               MODMTA_TLS_VERIFY, &v, &err), 0);
    assert_true(v);
    /* not in the system's store */
    assert_int_equal(handshake(signd, sys, "mx1.remote.test",
                               MODMTA_TLS_VERIFY, &v, &err), MODMTA_E_PERM);
    assert_string_equal(err.msg, "certificate verification failed: "
                        "unable to get local issuer certificate");
    /* no name to verify: refused before the handshake */
    assert_int_equal(handshake(signd, ca, NULL, MODMTA_TLS_VERIFY, &v, &err),
                     MODMTA_E_PERM);
    modmta_tls_client_free(sys);
    modmta_tls_client_free(ca);
    SSL_CTX_free(signd);
    SSL_CTX_free(cn_only);
}

/* A wildcard covers one whole label; a partial one covers nothing. */
static void
test_tls_wildcards(void **state)
{
    SSL_CTX *wild = server_ctx("w", "DNS:*.remote.test", 0, 0);
    SSL_CTX *partial = server_ctx("p", "DNS:f*.remote.test", 0, 0);
    SSL_CTX *ip = server_ctx("ip", "IP:127.0.0.1", 0, 0);
    modmta_tls_client *ca = client(pki.ca_file, NULL);
    modmta_err err;
    int v;

    assert_int_equal(handshake(wild, ca, "mx1.remote.test",
                               MODMTA_TLS_VERIFY, &v, &err), 0);
    assert_int_equal(handshake(wild, ca, "a.mx1.remote.test",
                               MODMTA_TLS_VERIFY, &v, &err), MODMTA_E_PERM);
    assert_int_equal(handshake(wild, ca, "remote.test", MODMTA_TLS_VERIFY,
                               &v, &err), MODMTA_E_PERM);
    assert_int_equal(handshake(partial, ca, "foo.remote.test",
                               MODMTA_TLS_VERIFY, &v, &err), MODMTA_E_PERM);
    assert_int_equal(handshake(ip, ca, "[127.0.0.1]", MODMTA_TLS_VERIFY, &v,
                               &err), 0);
    assert_true(v);
    assert_int_equal(handshake(ip, ca, "127.0.0.2", MODMTA_TLS_VERIFY, &v,
                               &err), MODMTA_E_PERM);
    modmta_tls_client_free(ca);
    SSL_CTX_free(wild);
    SSL_CTX_free(partial);
    SSL_CTX_free(ip);
}

/* A handshake that fails for another reason than the certificate. */
static void
test_tls_handshake_failure(void **state)
{
    SSL_CTX *old = server_ctx("mx1", "DNS:mx1.remote.test", 0, 1);
    modmta_tls_client *t13 = client(pki.ca_file, "TLSv1.3");
    modmta_err err;
    int v;

    assert_int_equal(handshake(old, t13, "mx1.remote.test",
                               MODMTA_TLS_ENCRYPT, &v, &err), MODMTA_E_IO);
    assert_non_null(strstr(err.msg, "TLS handshake failed: "));
    modmta_tls_client_free(t13);
    SSL_CTX_free(old);
}

static void
test_tls_client_new_errors(void **state)
{
    char path[300];
    modmta_err err;
    FILE *f;

    assert_null(modmta_tls_client_new(NULL, "TLSv9", &err));
    assert_non_null(strstr(err.msg, "unknown TLS version \"TLSv9\""));
    snprintf(path, sizeof(path), "%s/missing.pem", tmpdir);
    assert_null(modmta_tls_client_new(path, NULL, &err));
    assert_non_null(strstr(err.msg, strerror(ENOENT)));
    assert_null(modmta_tls_client_new(tmpdir, NULL, &err));
    assert_non_null(strstr(err.msg, "not a regular file"));
    snprintf(path, sizeof(path), "%s/empty.pem", tmpdir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("no certificate here\n", f);
    fclose(f);
    assert_null(modmta_tls_client_new(path, NULL, &err));
    assert_non_null(strstr(err.msg, "no certificate in it"));
    modmta_tls_client_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_tcp),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_hook_budget),
        cmocka_unit_test(test_connect_bad_address),
        cmocka_unit_test(test_connect_unix),
        cmocka_unit_test(test_stop_flag),
        cmocka_unit_test(test_tls_encrypt),
        cmocka_unit_test(test_tls_verify),
        cmocka_unit_test(test_tls_wildcards),
        cmocka_unit_test(test_tls_handshake_failure),
        cmocka_unit_test(test_tls_client_new_errors),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
