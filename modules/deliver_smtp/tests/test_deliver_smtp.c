/*
 * Unit tests of the deliver_smtp module under the SDK fakes: create()
 * (every key's errors with its JSON path, the defaults), route() (remote
 * and inbound domains, the transport table's lookup order and entries,
 * relayhost, a table outage), and deliver_msg() where no conversation
 * takes place: a bad destination, refused connections, the mail loop,
 * and the DNS outcomes (null MX, no domain, no address, a failure)
 * against a dnsmasq the test starts on loopback.
 */
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include <modmta/modmta.h>
#include <fake.h>
#include <files.h>
#include <servers.h>

extern const modmta_module modmta_descriptor;

struct fx {
    modmta_host *host;
    void *inst;
    modmta_ctx *ctx;
    char dir[256];
};

/* The group's DNS server and a port nobody listens on (a bound TCP
 * socket that never listens: every connection to it is refused). */
static struct {
    pid_t dnsmasq;
    char server[32];            /* "127.0.0.1@PORT" */
    int closed_fd, closed_port;
    int silent_fd[2];           /* a DNS server that never answers */
    char silent[32];
} env = { .closed_fd = -1, .silent_fd = { -1, -1 } };

/* ---- fixtures ---- */

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));

    if (fx == NULL)
        return -1;
    fx->host = modmta_test_host_new("deliver_smtp", "localhost",
                                    "example.com", NULL);
    *state = fx;
    return fx->host == NULL;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;

    modmta_test_release(&modmta_descriptor, fx->inst, fx->ctx, fx->host);
    if (fx->dir[0] != '\0')
        modmta_test_rmtree(fx->dir);
    free(fx);
    return 0;
}

static void
create(struct fx *fx, const char *conf)
{
    fx->inst = modmta_test_create_ok(&modmta_descriptor, conf, fx->host);
}

/* create() refuses conf with path, and its message says what. */
static void
create_fails(struct fx *fx, const char *conf, const char *path,
             const char *what)
{
    modmta_test_create_fails_with(&modmta_descriptor, conf, fx->host, path,
                                  what);
}

static modmta_ctx *
new_ctx(struct fx *fx, modmta_phase phase)
{
    if (fx->ctx != NULL)
        modmta_test_ctx_free(fx->ctx);
    fx->ctx = modmta_test_ctx_new(fx->host, NULL);
    assert_non_null(fx->ctx);
    modmta_test_set_delivery(fx->ctx, "QID1", "alice@example.com", 0);
    modmta_test_enter(fx->ctx, phase, &modmta_descriptor, fx->inst);
    return fx->ctx;
}

static modmta_verdict
route(struct fx *fx, const char *rcpt)
{
    modmta_ctx *ctx = new_ctx(fx, MODMTA_PHASE_ROUTE);

    return modmta_descriptor.route(fx->inst, ctx, rcpt);
}

/* rcpt is claimed for destination dest. */
static void
routes_to(struct fx *fx, const char *rcpt, const char *dest)
{
    modmta_verdict v = route(fx, rcpt);

    if (v != MODMTA_ACCEPT)
        fail_msg("<%s>: verdict %d, expected ACCEPT to %s", rcpt, v, dest);
    assert_non_null(modmta_test_route(fx->ctx));
    assert_string_equal(modmta_test_route(fx->ctx), dest);
}

/* rcpt gets verdict v with the reply code and esc. */
static void
routes_reply(struct fx *fx, const char *rcpt, modmta_verdict v, int code,
             const char *esc)
{
    assert_int_equal(route(fx, rcpt), v);
    assert_null(modmta_test_route(fx->ctx));
    assert_int_equal(modmta_test_reply_code(fx->ctx), code);
    assert_string_equal(modmta_test_reply_esc(fx->ctx), esc);
}

static void
continues(struct fx *fx, const char *rcpt)
{
    assert_int_equal(route(fx, rcpt), MODMTA_CONTINUE);
    assert_null(modmta_test_route(fx->ctx));
}

/* deliver_msg() of rcpts (NULL-terminated) to dest. */
static void
deliver(struct fx *fx, const char *dest, ...)
{
    const char *rcpts[8];
    size_t n = 0;
    va_list ap;
    modmta_ctx *ctx = new_ctx(fx, MODMTA_PHASE_DELIVER);

    va_start(ap, dest);
    while (n < 8 && (rcpts[n] = va_arg(ap, const char *)) != NULL)
        n++;
    va_end(ap);
    modmta_test_set_dlv_group(ctx, rcpts, n);
    modmta_descriptor.deliver_msg(fx->inst, ctx, dest);
}

/* Recipient i's result: status, no reply code (nothing was said), esc,
 * and a text containing what. */
static void
result_is(struct fx *fx, size_t i, modmta_dstatus status, const char *esc,
          const char *what)
{
    modmta_dstatus st;
    const char *e = NULL, *text = NULL;
    int code = -1;

    assert_int_equal(modmta_test_dlv_result(fx->ctx, i, &st, &code, &e,
                                            NULL, &text), 1);
    assert_non_null(text);
    if (st != status || code != 0 || e == NULL || strcmp(e, esc) != 0 ||
        strstr(text, what) == NULL)
        fail_msg("recipient %zu: %d %d %s \"%s\"; expected %d 0 %s \"...%s"
                 "...\"", i, st, code, e ? e : "-", text, status, esc,
                 what);
}

/* ---- create() ---- */

static const struct bad_conf {
    const char *conf;
    const char *path;           /* after "$.modules[0]" */
    const char *what;
} bad_confs[] = {
    { "{\"bogus\": 1}", ".bogus", "unknown key" },
    { "{\"port\": \"25\"}", ".port", "" },
    { "{\"port\": 0}", ".port", "0 is out of range 1..65535" },
    { "{\"port\": 65536}", ".port", "out of range 1..65535" },
    { "{\"cache_idle\": 0}", ".cache_idle", "0s is out of range 1s..1h" },
    { "{\"cache_idle\": 3601}", ".cache_idle", "out of range 1s..1h" },
    { "{\"cache_lifetime\": 86401}", ".cache_lifetime", "out of range 1s..1d" },
    { "{\"connect_timeout\": 0}", ".connect_timeout", "out of range 1s..1h" },
    { "{\"command_timeout\": 3601}", ".command_timeout", "out of range 1s..1h" },
    { "{\"data_timeout\": -1}", ".data_timeout", "expected a duration" },
    { "{\"max_addresses\": 65}", ".max_addresses", "out of range 1..64" },
    { "{\"max_sessions\": 0}", ".max_sessions", "out of range 1..64" },
    { "{\"connection_cache\": \"yes\"}", ".connection_cache", "" },
    { "{\"tls\": \"maybe\"}", ".tls", "\"none\", \"may\", \"encrypt\"" },
    { "{\"tls\": \"\"}", ".tls", "\"none\", \"may\", \"encrypt\"" },
    { "{\"tls\": 1}", ".tls", "" },
    { "{\"tls_ca_file\": \"/nonexistent/ca.pem\"}", ".tls_ca_file", "" },
    { "{\"relayhost\": \"[relay.test\"}", ".relayhost", "no closing ']'" },
    { "{\"relayhost\": \"relay.test:0\"}", ".relayhost", "bad port" },
    { "{\"relayhost\": \"relay host\"}", ".relayhost", "not a host name" },
    { "{\"relayhost\": \"\"}", ".relayhost", "expected \"[host]:port\"" },
    { "{\"relayhost\": \"smtp:\"}", ".relayhost", "expected \"[host]:port\"" },
    { "{\"relayhost\": \"lmtp:unix:/run/lmtp\"}", ".relayhost",
      "expected \"[host]:port\"" },
    { "{\"relayhost\": \"error:5.1.1 no\"}", ".relayhost",
      "expected \"[host]:port\"" },
    { "{\"relayhost\": \"local\"}", ".relayhost",
      "expected \"[host]:port\"" },
    { "{\"transport\": \"nosuch:/x\"}", ".transport", "" },
    { "{\"transport\": \"file:/nonexistent/transport\"}", ".transport", "" },
    { "{\"tls_policy\": 5}", ".tls_policy", "" },
    { "{\"helo_name\": \"mx.test\\r\\nRSET\"}", ".helo_name",
      "a host name" },
    { "{\"helo_name\": \"mx test\"}", ".helo_name", "a host name" },
    { "{\"helo_name\": \"\"}", ".helo_name", "a host name" },
};

static void
test_create_errors(void **state)
{
    struct fx *fx = *state;
    char path[100], conf[400], host[300];

    for (size_t i = 0; i < sizeof(bad_confs) / sizeof(bad_confs[0]); i++) {
        snprintf(path, sizeof(path), "$.modules[0]%s", bad_confs[i].path);
        create_fails(fx, bad_confs[i].conf, path, bad_confs[i].what);
    }
    /* a destination string is at most 255 octets: "[" host "]:port" */
    memset(host, 'h', sizeof(host));
    snprintf(conf, sizeof(conf), "{\"relayhost\": \"[%.250s]:587\"}", host);
    create_fails(fx, conf, "$.modules[0].relayhost", "too long");
    snprintf(conf, sizeof(conf), "{\"relayhost\": \"[%.249s]:587\"}", host);
    create(fx, conf);
}

/* Credentials readable by everyone are refused; 0600 and 0640 are not. */
static void
test_create_auth_file(void **state)
{
    struct fx *fx = *state;
    char file[300], conf[400];

    modmta_test_tmpdir(fx->dir, sizeof(fx->dir), "test_deliver_smtp");
    snprintf(file, sizeof(file), "%s/sasl_passwd", fx->dir);
    modmta_test_write_file(file, "[relay.test]:587 bob:secret\n");
    snprintf(conf, sizeof(conf), "{\"relayhost\": \"[relay.test]:587\", "
             "\"auth\": \"file:%s\"}", file);
    assert_int_equal(chmod(file, 0644), 0);
    create_fails(fx, conf, "$.modules[0].auth", "readable by everyone");
    assert_int_equal(chmod(file, 0604), 0);
    create_fails(fx, conf, "$.modules[0].auth", "readable by everyone");
    assert_int_equal(chmod(file, 0640), 0);
    create(fx, conf);
    modmta_descriptor.destroy(fx->inst);
    assert_int_equal(chmod(file, 0600), 0);
    create(fx, conf);
}

/* Every key at once, each in its range's bounds. */
static void
test_create_all_keys(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"relayhost\": \"[relay.test]:587\", \"transport\": {}, "
           "\"port\": 65535, \"helo_name\": \"out.example.com\", "
           "\"tls\": \"verify\", \"tls_policy\": {\"relay.test\": \"none\"}, "
           "\"auth\": {\"[relay.test]:587\": \"bob:pw\"}, "
           "\"connection_cache\": false, \"cache_idle\": 3600, "
           "\"cache_lifetime\": 86400, \"connect_timeout\": 1, "
           "\"command_timeout\": 3600, \"data_timeout\": 3600, "
           "\"max_addresses\": 64, \"max_sessions\": 1}");
    routes_to(fx, "bob@remote.test", "[relay.test]:587");
}

/* The defaults: no relayhost (MX lookup of the domain), port 25 (an MX
 * on this host's port 25 is a loop, found without any connection). */
static void
test_create_defaults(void **state)
{
    struct fx *fx = *state;

    create(fx, "{}");
    routes_to(fx, "bob@remote.test", "remote.test");
    assert_int_equal(modmta_test_host_add_own(fx->host, "127.0.0.1", 25), 0);
    deliver(fx, "[127.0.0.1]", "bob@remote.test", NULL);
    result_is(fx, 0, MODMTA_FAILED, "5.4.6", "loops back to myself");
    assert_false(modmta_test_dlv_dest_down(fx->ctx));
}

/* ---- route() ---- */

static void
test_route_remote(void **state)
{
    struct fx *fx = *state;

    create(fx, "{}");
    routes_to(fx, "bob@remote.test", "remote.test");
    routes_to(fx, "Bob@Remote.TEST", "remote.test");
    routes_to(fx, "\"a@b\"@sub.remote.test", "sub.remote.test");
    /* inbound: local_domains, any case */
    continues(fx, "bob@example.com");
    continues(fx, "bob@EXAMPLE.com");
    continues(fx, "bob@localhost");
    /* a bare local name is local */
    continues(fx, "postmaster");
    continues(fx, "bob@");
}

static const char *owned_domain = "virt.test";

static int
owns(void *inst, const char *domain)
{
    (void)inst;
    return strcasecmp(domain, owned_domain) == 0;
}

/* A domain another module receives for (owns_domain) is inbound too. */
static void
test_route_owner(void **state)
{
    struct fx *fx = *state;

    create(fx, "{}");
    routes_to(fx, "bob@virt.test", "virt.test");
    assert_int_equal(modmta_test_host_add_owner(fx->host, owns, NULL), 0);
    continues(fx, "bob@virt.test");
    continues(fx, "bob@VIRT.test");
    routes_to(fx, "bob@other.test", "other.test");
}

static void
test_route_relayhost(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"relayhost\": \"[smarthost.test]:587\", \"transport\": "
           "{\"table.test\": \"smtp:\", "
           "\"hop.test\": \"smtp:[hop.example]:2525\"}}");
    routes_to(fx, "bob@remote.test", "[smarthost.test]:587");
    continues(fx, "bob@example.com");
    /* the table's entries are not sent to the relayhost */
    routes_to(fx, "bob@table.test", "table.test");
    routes_to(fx, "bob@hop.test", "[hop.example]:2525");
    modmta_descriptor.destroy(fx->inst);
    /* a relayhost with MX lookup */
    create(fx, "{\"relayhost\": \"relay.example:26\"}");
    routes_to(fx, "bob@remote.test", "relay.example:26");
}

/* Postfix's transport(5) order: the address, the domain, each parent as
 * ".parent", then "*". */
static void
test_route_table_order(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"transport\": {"
           "\"bob@a.example.net\": \"smtp:[address.test]\", "
           "\"a.example.net\": \"smtp:[domain.test]\", "
           "\".example.net\": \"smtp:[parent.test]\", "
           "\".net\": \"smtp:[tld.test]\", "
           "\"*\": \"smtp:[star.test]\"}}");
    routes_to(fx, "bob@a.example.net", "[address.test]");
    routes_to(fx, "BOB@A.example.net", "[address.test]");
    routes_to(fx, "carol@a.example.net", "[domain.test]");
    routes_to(fx, "carol@b.a.example.net", "[parent.test]");
    routes_to(fx, "carol@example.net", "[tld.test]");
    routes_to(fx, "carol@x.y.example.net", "[parent.test]");
    routes_to(fx, "carol@other.org", "[star.test]");
    /* the table applies to inbound domains too */
    routes_to(fx, "bob@example.com", "[star.test]");
}

static void
test_route_table_entries(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"relayhost\": \"[smarthost.test]\", \"transport\": {"
           "\"local.test\": \"local\", "
           "\"gone.test\": \"error:5.1.2 gone.test moved away\", "
           "\"later.test\": \"error:4.4.1 not today\", "
           "\"dove.test\": \"lmtp:unix:/run/dovecot/lmtp\", "
           "\"lmtp.test\": \"lmtp:inet:[::1]:24\", "
           "\"mx.test\": \"smtp:mx.example:2525\", "
           "\"bad.test\": \"smtp:[broken\", "
           "\"typo.test\": \"smpt:relay.test\", "
           "\"example.com\": \"smtp:[inbound-relay.test]\"}}");
    /* local: not this transport, even for a remote domain */
    continues(fx, "bob@local.test");
    routes_reply(fx, "bob@gone.test", MODMTA_REJECT, 550, "5.1.2");
    assert_string_equal(modmta_test_reply_text(fx->ctx),
                        "gone.test moved away");
    routes_reply(fx, "bob@later.test", MODMTA_TEMPFAIL, 450, "4.4.1");
    assert_string_equal(modmta_test_reply_text(fx->ctx), "not today");
    routes_to(fx, "bob@dove.test", "lmtp:unix:/run/dovecot/lmtp");
    routes_to(fx, "bob@lmtp.test", "lmtp:inet:[::1]:24");
    routes_to(fx, "bob@mx.test", "mx.example:2525");
    /* a malformed entry defers, whatever the relayhost */
    routes_reply(fx, "bob@bad.test", MODMTA_TEMPFAIL, 451, "4.3.5");
    routes_reply(fx, "bob@typo.test", MODMTA_TEMPFAIL, 451, "4.3.5");
    /* an entry for an inbound domain sends its mail on */
    routes_to(fx, "bob@example.com", "[inbound-relay.test]");
    continues(fx, "bob@localhost");
}

/* A table that cannot be read defers every recipient with a domain,
 * remote or inbound (its entry could have said anything). */
static void
test_route_table_outage(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"transport\": \"failtest:x\", "
           "\"relayhost\": \"[smarthost.test]\"}");
    routes_reply(fx, "bob@remote.test", MODMTA_TEMPFAIL, 451, "4.3.0");
    routes_reply(fx, "bob@example.com", MODMTA_TEMPFAIL, 451, "4.3.0");
    continues(fx, "postmaster");
}

/* A table in a file, Postfix's format. */
static void
test_route_table_file(void **state)
{
    struct fx *fx = *state;
    char file[300], conf[400];

    modmta_test_tmpdir(fx->dir, sizeof(fx->dir), "test_deliver_smtp");
    snprintf(file, sizeof(file), "%s/transport", fx->dir);
    modmta_test_write_file(file,
                           "# comment\n"
                           "dove.test      lmtp:unix:/run/dovecot/lmtp\n"
                           ".partner.test  smtp:[gw.partner.test]:2525\n"
                           "old.test       error:5.1.6 moved to new.test\n");
    snprintf(conf, sizeof(conf), "{\"transport\": \"file:%s\"}", file);
    create(fx, conf);
    routes_to(fx, "bob@dove.test", "lmtp:unix:/run/dovecot/lmtp");
    routes_to(fx, "bob@x.partner.test", "[gw.partner.test]:2525");
    routes_to(fx, "bob@partner.test", "partner.test");
    routes_reply(fx, "bob@old.test", MODMTA_REJECT, 550, "5.1.6");
}

/* ---- deliver_msg() without a conversation ---- */

static void
test_deliver_bad_dest(void **state)
{
    struct fx *fx = *state;

    create(fx, "{}");
    deliver(fx, "[broken", "bob@remote.test", "carol@remote.test", NULL);
    result_is(fx, 0, MODMTA_DEFERRED, "4.3.5", "bad destination");
    result_is(fx, 1, MODMTA_DEFERRED, "4.3.5", "bad destination");
    deliver(fx, "error:5.1.1 x", "bob@remote.test", NULL);
    result_is(fx, 0, MODMTA_DEFERRED, "4.3.5", "bad destination");
    deliver(fx, "local", "bob@remote.test", NULL);
    result_is(fx, 0, MODMTA_DEFERRED, "4.3.5", "bad destination");
}

/* Nobody answers: every recipient deferred with the connect error, the
 * destination down. */
static void
test_deliver_refused(void **state)
{
    struct fx *fx = *state;
    char dest[64];

    create(fx, "{\"connect_timeout\": 5}");
    snprintf(dest, sizeof(dest), "[127.0.0.1]:%d", env.closed_port);
    deliver(fx, dest, "bob@remote.test", "carol@remote.test", NULL);
    for (size_t i = 0; i < 2; i++)
        result_is(fx, i, MODMTA_DEFERRED, "4.4.1", "127.0.0.1");
    assert_true(modmta_test_dlv_dest_down(fx->ctx));
    assert_null(modmta_test_dlv_remote(fx->ctx, 0, NULL, NULL));
}

static void
test_deliver_lmtp_no_socket(void **state)
{
    struct fx *fx = *state;

    create(fx, "{}");
    deliver(fx, "lmtp:unix:/nonexistent/lmtp", "bob@dove.test", NULL);
    result_is(fx, 0, MODMTA_DEFERRED, "4.4.1", "/nonexistent/lmtp");
    assert_true(modmta_test_dlv_dest_down(fx->ctx));
}

/* A next hop that is this daemon: the mail would come back. */
static void
test_deliver_loop(void **state)
{
    struct fx *fx = *state;
    char dest[64];

    create(fx, "{}");
    assert_int_equal(modmta_test_host_add_own(fx->host, "127.0.0.1", 2525),
                     0);
    deliver(fx, "[127.0.0.1]:2525", "bob@remote.test", NULL);
    result_is(fx, 0, MODMTA_FAILED, "5.4.6", "loops back to myself");
    /* another port of the same address is another server */
    snprintf(dest, sizeof(dest), "[127.0.0.1]:%d", env.closed_port);
    deliver(fx, dest, "bob@remote.test", NULL);
    result_is(fx, 0, MODMTA_DEFERRED, "4.4.1", "127.0.0.1");
}

/* ---- deliver_msg() and DNS (the dnsmasq of the group) ---- */

/* dnsmasq on port with the zones below, nothing forwarded anywhere. */
static pid_t
dnsmasq_start(int port)
{
    char a_port[32];
    char *argv[] = {
        DNSMASQ, "-d", "--conf-file=/dev/null", a_port,
        "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
        "--no-hosts", "--local=/test/",
        "--mx-host=nullmx.test,.,0",
        "--mx-host=noaddr.test,ghost.noaddr.test,10",
        "--mx-host=loop.test,mx.loop.test,10",
        "--host-record=mx.loop.test,127.0.0.1",
        /* the better MX refuses; the worse one is this host */
        "--mx-host=cut.test,mx1.cut.test,10",
        "--mx-host=cut.test,mx2.cut.test,20",
        "--host-record=mx1.cut.test,127.0.0.2",
        "--host-record=mx2.cut.test,127.0.0.1",
        /* no MX: the domain's own address */
        "--host-record=implicit.test,127.0.0.2",
        NULL
    };

    snprintf(a_port, sizeof(a_port), "--port=%d", port);
    return modmta_test_spawn(argv, port);
}

static int
dns_group_setup(void **state)
{
    int port;

    (void)state;
    if (modmta_test_register_failing_map() < 0)
        return -1;
    /* never listening: refused on every loopback address */
    env.closed_port = modmta_test_bind(SOCK_STREAM, INADDR_ANY, 0,
                                       &env.closed_fd);
    snprintf(env.silent, sizeof(env.silent), "127.0.0.1@%d",
             modmta_test_free_port(env.silent_fd));
    port = modmta_test_free_port(NULL);
    env.dnsmasq = dnsmasq_start(port);
    snprintf(env.server, sizeof(env.server), "127.0.0.1@%d", port);
    return env.closed_port > 0 ? 0 : -1;
}

static int
dns_group_teardown(void **state)
{
    (void)state;
    modmta_test_stop(env.dnsmasq);
    close(env.closed_fd);
    close(env.silent_fd[0]);
    close(env.silent_fd[1]);
    return 0;
}

/* create(conf) on a host asking the group's dnsmasq. */
static void
create_dns(struct fx *fx, const char *conf)
{
    assert_int_equal(modmta_test_host_set_dns(fx->host, env.server, 5), 0);
    create(fx, conf);
}

static void
test_dns_null_mx(void **state)
{
    struct fx *fx = *state;

    create_dns(fx, "{}");
    deliver(fx, "nullmx.test", "bob@nullmx.test", "carol@nullmx.test",
            NULL);
    result_is(fx, 0, MODMTA_FAILED, "5.1.10", "null MX");
    result_is(fx, 1, MODMTA_FAILED, "5.1.10", "null MX");
    assert_false(modmta_test_dlv_dest_down(fx->ctx));
}

static void
test_dns_no_domain(void **state)
{
    struct fx *fx = *state;

    create_dns(fx, "{}");
    deliver(fx, "gone.test", "bob@gone.test", NULL);
    result_is(fx, 0, MODMTA_FAILED, "5.1.2", "gone.test does not exist");
}

static void
test_dns_no_address(void **state)
{
    struct fx *fx = *state;

    create_dns(fx, "{}");
    deliver(fx, "noaddr.test", "bob@noaddr.test", NULL);
    result_is(fx, 0, MODMTA_FAILED, "5.4.4", "no mail server of noaddr.test");
    /* a host named without MX lookup */
    deliver(fx, "[ghost.noaddr.test]", "bob@noaddr.test", NULL);
    result_is(fx, 0, MODMTA_FAILED, "5.4.4", "ghost.noaddr.test has no "
              "address");
}

/* A DNS server that does not answer: deferred, not failed. */
static void
test_dns_temporary(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(modmta_test_host_set_dns(fx->host, env.silent, 1), 0);
    create(fx, "{}");
    deliver(fx, "remote.test", "bob@remote.test", NULL);
    result_is(fx, 0, MODMTA_DEFERRED, "4.4.3", "temporary failure looking "
              "up remote.test");
    deliver(fx, "[relay.remote.test]:587", "bob@remote.test", NULL);
    result_is(fx, 0, MODMTA_DEFERRED, "4.4.3", "temporary failure looking "
              "up relay.remote.test");
}

/* RFC 5321 5.1: an MX that is this host, and every worse one, is cut. */
static void
test_dns_mx_loop(void **state)
{
    struct fx *fx = *state;
    char conf[64];

    snprintf(conf, sizeof(conf), "{\"port\": %d}", env.closed_port);
    create_dns(fx, conf);
    assert_int_equal(modmta_test_host_add_own(fx->host, "127.0.0.1",
                                              env.closed_port), 0);
    deliver(fx, "loop.test", "bob@loop.test", NULL);
    result_is(fx, 0, MODMTA_FAILED, "5.4.6", "mail for loop.test loops "
              "back to myself");
    /* only the better MX is tried: it refuses */
    deliver(fx, "cut.test", "bob@cut.test", NULL);
    result_is(fx, 0, MODMTA_DEFERRED, "4.4.1", "mx1.cut.test[127.0.0.2]");
    assert_true(modmta_test_dlv_dest_down(fx->ctx));
}

/* No MX record: the domain itself is the server (its address). */
static void
test_dns_implicit_mx(void **state)
{
    struct fx *fx = *state;
    char conf[64];

    snprintf(conf, sizeof(conf), "{\"port\": %d}", env.closed_port);
    create_dns(fx, conf);
    deliver(fx, "implicit.test", "bob@implicit.test", NULL);
    result_is(fx, 0, MODMTA_DEFERRED, "4.4.1", "implicit.test[127.0.0.2]");
    assert_true(modmta_test_dlv_dest_down(fx->ctx));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_auth_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_create_all_keys, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_create_defaults, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_route_remote, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_relayhost, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_route_table_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_route_table_entries, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_route_table_outage, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_route_table_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliver_bad_dest, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliver_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliver_lmtp_no_socket, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliver_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dns_null_mx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dns_no_domain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dns_no_address, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dns_temporary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dns_mx_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dns_implicit_mx, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, dns_group_setup,
                                  dns_group_teardown);
}
