/*
 * The SMTP session state machine (core/smtp_session.c) fed arbitrary
 * client octets through a real connection (a socketpair): the command
 * reader and parser, pipelined batches, RSET, the error limit, DATA
 * and the queue commit (a real queue), STARTTLS (the input that follows
 * it is the TLS handshake), and AUTH through the real auth_sasl module
 * (session_chain.c). BDAT is not implemented (502): only its refusal
 * runs. The first input octet sets the session up:
 *   bits 0-1  listener TLS: none, STARTTLS, STARTTLS required (no
 *             certificate: the handshake always fails, the transition
 *             runs)
 *   bit 2     a local submission (sendmail -bs: authenticated, may talk
 *             before the greeting)
 *   bit 3     the streaming hooks on (smtp_stream.c)
 *   bit 4     helo_required, bit 5 strict_envelopes
 * A client thread waits for the greeting, sends the rest of the input,
 * closes its sending side and reads every reply until the session ends.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <modmta/log.h>

#include "ctx_priv.h"
#include "fuzz_input.h"
#include "log_priv.h"
#include "generation.h"
#include "queue.h"
#include "session_chain.h"
#include "smtp_session.h"

static char *domains[] = {"mx.test", NULL};
static struct config cfg;
static struct config_listener lst;
static generation gen;
static queue *q;

struct client {
    int fd;
    const uint8_t *data;
    size_t size;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
setup(void)
{
    const char *dir = fuzz_tmpdir("smtp_session");
    modmta_err err;

    modmta_log_setup(MODMTA_LOG_ERR, 0, NULL); /* not a line per session */
    signal(SIGPIPE, SIG_IGN);
    q = queue_open(dir, &err);
    cfg.hostname = "mx.test";
    cfg.spool = (char *)dir;
    cfg.local_domains = domains;
    cfg.limits.message_size = 100000;
    cfg.limits.recipients = 20;
    cfg.limits.command_timeout = 10;
    cfg.limits.data_timeout = 10;
    cfg.limits.errors = 20;
    cfg.limits.max_hops = 50;
    lst.name = "mx";
    lst.protocol = "smtp";
    gen.cfg = &cfg;
    gen.refs = 1;
    gen.host = modmta_host_new("core", "$", cfg.hostname, dir, domains, 0);
    gen.tls = SSL_CTX_new(TLS_server_method());
    if (q == NULL || gen.host == NULL || gen.tls == NULL)
        abort();
    session_chain_init(dir, cfg.hostname);
}

static int
remove_one(const queue_env *env, void *arg)
{
    queue_remove(arg, env->id);
    return 0;
}

/* The client: after the greeting's first line, everything at once. */
static void *
client_main(void *arg)
{
    struct client *c = arg;
    size_t sent = 0;
    char buf[4096];
    ssize_t n;
    int greeted = 0;

    while (!greeted && (n = recv(c->fd, buf, sizeof(buf), 0)) > 0)
        greeted = memchr(buf, '\n', (size_t)n) != NULL;
    while (greeted && sent < c->size) {
        n = send(c->fd, c->data + sent, c->size - sent, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the session closed: the rest is not read */
        sent += (size_t)n;
    }
    shutdown(c->fd, SHUT_WR);
    while (recv(c->fd, buf, sizeof(buf), 0) > 0)
        ;
    return NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum config_tls_mode tls[] = {
        TLS_NONE, TLS_STARTTLS, TLS_STARTTLS_REQUIRED, TLS_NONE};
    struct smtp_session_args a;
    struct sockaddr_in *sin = (struct sockaddr_in *)&a.peer;
    struct client c;
    pthread_t t;
    int sv[2];

    if (q == NULL)
        setup();
    if (size < 1)
        return 0;
    lst.tls = tls[data[0] & 3];
    session_chain_set_streams(data[0] & 8);
    cfg.smtp.helo_required = (data[0] >> 4) & 1;
    cfg.smtp.strict_envelopes = (data[0] >> 5) & 1;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        abort();
    memset(&a, 0, sizeof(a));
    sin->sin_family = AF_INET;
    sin->sin_port = htons(40000);
    inet_pton(AF_INET, "127.0.0.1", &sin->sin_addr);
    a.peerlen = sizeof(*sin);
    a.gen = &gen;
    a.fd = sv[0];
    a.listener = &lst;
    a.queue = q;
    a.session_id = "FUZZ";
    a.no_rdns = 1;
    if (data[0] & 4) {
        a.local_user = "fuzz";
        a.local_uid = 1000;
    }
    c.fd = sv[1];
    c.data = data + 1;
    c.size = size - 1;
    if (pthread_create(&t, NULL, client_main, &c) != 0)
        abort();
    smtp_session_run(&a);
    pthread_join(t, NULL);
    close(sv[1]);
    if (session_chain_queued())
        queue_foreach(q, remove_one, q);
    return 0;
}
