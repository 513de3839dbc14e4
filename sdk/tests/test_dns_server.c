/* Tests of the resolver (sdk/src/dns*.c) against real DNS servers the
 * test starts on loopback: a dnsmasq on a free port with the test zones
 * below (--no-resolv --no-hosts: nothing leaves the machine); a
 * "silent" server (a UDP socket never read, a TCP socket never accepted)
 * for timeouts and hook time budgets; dnssec_server.py, serving the
 * signed zone secure.test., for validation. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <modmta/dns.h>
#include <files.h>
#include <servers.h>

#include "budget_priv.h"
#include "ctx_priv.h"
#include "dns_priv.h"

/* usage 3, selector 1, matching type 1; 32 octets 2b 01 02 ... 1e 80 */
#define TLSA_HEX "0301012b0102030405060708090a0b0c0d0e0f"                   \
                 "101112131415161718191a1b1c1d1e80"

struct env {
    pid_t dnsmasq;
    int silent_udp, silent_tcp;
    char server[32];            /* dnsmasq, "127.0.0.1@PORT" */
    char silent[32];            /* the silent one */
    modmta_dns *dns;            /* asks dnsmasq, 5 s */
    modmta_dns *quick;          /* asks dnsmasq, 2 s: answers that fail */
    pid_t signer;               /* dnssec_server.py */
    char signed_server[32];
    char dir[256];
    char anchor[300];           /* secure.test.'s DS record */
};

static pid_t
dnsmasq_start(int port, int silent_port)
{
    char a_port[32], a_slow[64];
    char *argv[] = {
        /* -d: foreground, no pid file, no change of user (which would
         * clear the parent-death signal) */
        DNSMASQ, "-d", "--conf-file=/dev/null", a_port,
        "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
        "--no-hosts", "--local=/test/", a_slow,
        /* two equal preferences and a third */
        "--mx-host=multi.test,mx1.multi.test,10",
        "--mx-host=multi.test,mx2.multi.test,10",
        "--mx-host=multi.test,mx3.multi.test,20",
        "--host-record=mx1.multi.test,127.0.0.31",
        "--host-record=mx2.multi.test,127.0.0.32",
        "--host-record=mx3.multi.test,127.0.0.33,2001:db8::33",
        "--ptr-record=31.0.0.10.in-addr.arpa,mx1.multi.test",
        "--mx-host=nullmx.test,.,0",
        "--host-record=implicit.test,127.0.0.40,2001:db8::40",
        "--mx-host=noaddr.test,ghost.noaddr.test,10",
        "--mx-host=iplit.test,192.0.2.1,10",
        "--host-record=v6.test,2001:db8::6",
        "--txt-record=txt.test,v=spf1 -all",
        "--txt-record=long.test,part one,part two",
        "--cname=alias.test,mx1.multi.test",
        "--mx-host=cnamemx.test,alias.test,10",
        "--dns-rr=_25._tcp.mx1.multi.test,52," TLSA_HEX,
        /* a host whose addresses never come: slow.test is forwarded to
         * the silent server */
        "--mx-host=tempmx.test,ghost.slow.test,10",
        "--mx-host=halftemp.test,ghost.slow.test,10",
        "--mx-host=halftemp.test,mx1.multi.test,20",
        "--mx-host=many.test,h01.many.test,1",
        "--mx-host=many.test,h02.many.test,2",
        "--mx-host=many.test,h03.many.test,3",
        "--mx-host=many.test,h04.many.test,4",
        "--mx-host=many.test,h05.many.test,5",
        "--mx-host=many.test,h06.many.test,6",
        "--mx-host=many.test,h07.many.test,7",
        "--mx-host=many.test,h08.many.test,8",
        "--mx-host=many.test,h09.many.test,9",
        "--mx-host=many.test,h10.many.test,10",
        "--mx-host=many.test,h11.many.test,11",
        "--mx-host=many.test,h12.many.test,12",
        "--host-record=h01.many.test,h02.many.test,h03.many.test,"
        "h04.many.test,h05.many.test,h06.many.test,h07.many.test,"
        "h08.many.test,h09.many.test,h10.many.test,h11.many.test,"
        "h12.many.test,127.0.0.50",
        NULL
    };

    snprintf(a_port, sizeof(a_port), "--port=%d", port);
    snprintf(a_slow, sizeof(a_slow), "--server=/slow.test/127.0.0.1#%d",
             silent_port);
    /* ready when it takes TCP connections (it binds UDP first) */
    return modmta_test_spawn(argv, port);
}

/* dnssec_server.py, writing its trust anchor to anchor; its port. */
static pid_t
signer_start(const char *anchor, int *port_r)
{
    char *argv[] = { PYTHON3, DNSSEC_SERVER, (char *)anchor, NULL };
    char line[32];
    size_t len = 0;
    ssize_t n;
    int p[2];
    pid_t pid;

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        modmta_test_child_dies_with_parent();
        dup2(p[1], STDOUT_FILENO);
        execv(PYTHON3, argv);
        fprintf(stderr, "%s: %s\n", PYTHON3, strerror(errno));
        _exit(127);
    }
    close(p[1]);
    /* it prints its port once it listens */
    while (len < sizeof(line) - 1 && memchr(line, '\n', len) == NULL &&
           (n = read(p[0], line + len, sizeof(line) - 1 - len)) > 0)
        len += (size_t)n;
    close(p[0]);
    line[len] = '\0';
    *port_r = atoi(line);
    if (*port_r <= 0)
        fail_msg("dnssec_server.py did not start (package "
                 "python3-dnspython)");
    return pid;
}

static modmta_dns *
resolver(const char *server, long timeout_s, const char *trust_anchor)
{
    char *servers[] = { (char *)server, NULL };
    modmta_err err;
    modmta_dns *r = modmta_dns_new(servers, timeout_s, trust_anchor, &err);

    assert_non_null(r);
    return r;
}

static int
setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    int keep[2], port, silent, signer;

    assert_non_null(e);
    silent = modmta_test_free_port(keep);
    e->silent_udp = keep[0];
    e->silent_tcp = keep[1];
    assert_int_equal(listen(e->silent_tcp, 1), 0);
    port = modmta_test_free_port(NULL);
    e->dnsmasq = dnsmasq_start(port, silent);
    snprintf(e->server, sizeof(e->server), "127.0.0.1@%d", port);
    snprintf(e->silent, sizeof(e->silent), "127.0.0.1@%d", silent);
    e->dns = resolver(e->server, 5, NULL);
    e->quick = resolver(e->server, 2, NULL);
    modmta_test_tmpdir(e->dir, sizeof(e->dir), "test_dns");
    snprintf(e->anchor, sizeof(e->anchor), "%s/anchor", e->dir);
    e->signer = signer_start(e->anchor, &signer);
    snprintf(e->signed_server, sizeof(e->signed_server), "127.0.0.1@%d",
             signer);
    *state = e;
    return 0;
}

static int
teardown(void **state)
{
    struct env *e = *state;

    modmta_dns_free(e->dns);
    modmta_dns_free(e->quick);
    modmta_test_stop(e->dnsmasq);
    modmta_test_stop(e->signer);
    modmta_test_rmtree(e->dir);
    close(e->silent_udp);
    close(e->silent_tcp);
    free(e);
    return 0;
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Looks up name/type: the outcome must be want; the result (1, 0). */
static modmta_dns_result *
lookup(modmta_dns *r, const char *name, int type, int want)
{
    modmta_dns_result *res = (modmta_dns_result *)1;

    assert_int_equal(modmta_dns_lookup(r, name, type, &res), want);
    if (want < 0)
        assert_null(res);
    else
        assert_non_null(res);
    return res;
}

/* The one record of name/type as text. */
static void
text_is(modmta_dns *r, const char *name, int type, const char *want)
{
    modmta_dns_result *res = lookup(r, name, type, 1);

    assert_int_equal(modmta_dns_count(res), 1);
    assert_string_equal(modmta_dns_text_at(res, 0), want);
    assert_null(modmta_dns_text_at(res, 1));
    assert_false(modmta_dns_nxdomain(res));
    /* no trust anchor: never validated */
    assert_false(modmta_dns_secure(res));
    modmta_dns_result_free(res);
}

static void
test_records(void **state)
{
    struct env *e = *state;

    text_is(e->dns, "mx1.multi.test", MODMTA_DNS_A, "127.0.0.31");
    text_is(e->dns, "mx1.multi.test.", MODMTA_DNS_A, "127.0.0.31");
    text_is(e->dns, "v6.test", MODMTA_DNS_AAAA, "2001:db8::6");
    text_is(e->dns, "txt.test", MODMTA_DNS_TXT, "v=spf1 -all");
    /* several character-strings: concatenated */
    text_is(e->dns, "long.test", MODMTA_DNS_TXT, "part onepart two");
    text_is(e->dns, "31.0.0.10.in-addr.arpa", MODMTA_DNS_PTR,
            "mx1.multi.test");
    text_is(e->dns, "alias.test", MODMTA_DNS_CNAME, "mx1.multi.test");
}

/* An A lookup follows the CNAME; the canonical name is its target. */
static void
test_cname_followed(void **state)
{
    struct env *e = *state;
    modmta_dns_result *res = lookup(e->dns, "alias.test", MODMTA_DNS_A, 1);

    assert_int_equal(modmta_dns_count(res), 1);
    assert_string_equal(modmta_dns_text_at(res, 0), "127.0.0.31");
    assert_string_equal(modmta_dns_canonical(res), "mx1.multi.test");
    modmta_dns_result_free(res);
    res = lookup(e->dns, "mx1.multi.test", MODMTA_DNS_A, 1);
    assert_string_equal(modmta_dns_canonical(res), "mx1.multi.test");
    modmta_dns_result_free(res);
}

/* NXDOMAIN and NODATA are both 0, told apart by modmta_dns_nxdomain. */
static void
test_nxdomain_nodata(void **state)
{
    struct env *e = *state;
    modmta_dns_result *res = lookup(e->dns, "nosuch.test", MODMTA_DNS_A, 0);

    assert_int_equal(modmta_dns_count(res), 0);
    assert_true(modmta_dns_nxdomain(res));
    assert_null(modmta_dns_text_at(res, 0));
    modmta_dns_result_free(res);
    res = lookup(e->dns, "mx1.multi.test", MODMTA_DNS_TXT, 0);
    assert_int_equal(modmta_dns_count(res), 0);
    assert_false(modmta_dns_nxdomain(res));
    modmta_dns_result_free(res);
}

static void
test_tlsa(void **state)
{
    struct env *e = *state;
    modmta_dns_result *res =
        lookup(e->dns, "_25._tcp.mx1.multi.test", MODMTA_DNS_TLSA, 1);
    const unsigned char *data;
    int usage, selector, mtype;
    size_t len;

    assert_int_equal(modmta_dns_count(res), 1);
    assert_int_equal(modmta_dns_tlsa_at(res, 0, &usage, &selector, &mtype,
                                        &data, &len), 0);
    assert_int_equal(usage, 3);
    assert_int_equal(selector, 1);
    assert_int_equal(mtype, 1);
    assert_int_equal(len, 32);
    assert_int_equal(data[0], 0x2b);
    assert_int_equal(data[1], 0x01);
    assert_int_equal(data[31], 0x80);
    assert_false(modmta_dns_secure(res));
    assert_true(modmta_dns_tlsa_at(res, 1, &usage, &selector, &mtype,
                                   &data, &len) < 0);
    modmta_dns_result_free(res);
}

static void
test_mx_records(void **state)
{
    struct env *e = *state;
    modmta_dns_result *res = lookup(e->dns, "multi.test", MODMTA_DNS_MX, 1);
    int seen = 0;

    assert_int_equal(modmta_dns_count(res), 3);
    for (size_t i = 0; i < 3; i++) {
        const char *host = NULL;
        int pref = modmta_dns_mx_at(res, i, &host);

        assert_non_null(host);
        if (strcmp(host, "mx1.multi.test") == 0 && pref == 10)
            seen |= 1;
        else if (strcmp(host, "mx2.multi.test") == 0 && pref == 10)
            seen |= 2;
        else if (strcmp(host, "mx3.multi.test") == 0 && pref == 20)
            seen |= 4;
    }
    assert_int_equal(seen, 7);
    assert_null(modmta_dns_text_at(res, 0));
    modmta_dns_result_free(res);
}

/* The list's entry i. */
static void
entry_is(const modmta_mx_list *l, size_t i, const char *host, int pref,
         const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len = modmta_mx_addr(l, i, 25, &ss);

    assert_string_equal(modmta_mx_host(l, i), host);
    assert_int_equal(modmta_mx_pref(l, i), pref);
    assert_string_equal(modmta_mx_addr_text(l, i), addr);
    assert_false(modmta_mx_secure(l, i));
    if (strchr(addr, ':') != NULL) {
        assert_int_equal(len, sizeof(struct sockaddr_in6));
        assert_int_equal(ss.ss_family, AF_INET6);
        assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 25);
    } else {
        assert_int_equal(len, sizeof(struct sockaddr_in));
        assert_int_equal(ss.ss_family, AF_INET);
        assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 25);
    }
}

static modmta_mx_list *
mx_list(modmta_dns *r, const char *domain, int want)
{
    modmta_mx_list *l = (modmta_mx_list *)1;

    assert_int_equal(modmta_dns_mx_list(r, domain, &l), want);
    if (want == MODMTA_MX_OK)
        assert_non_null(l);
    else
        assert_null(l);
    return l;
}

/* Preference order; the equal ones in both orders over repeated calls
 * (each call shuffles: the chance that 200 calls give one order is
 * 2^-199); IPv6 before IPv4. */
static void
test_mx_list_order(void **state)
{
    struct env *e = *state;
    int orders = 0;

    for (int i = 0; i < 200 && orders != 3; i++) {
        modmta_mx_list *l = mx_list(e->dns, "multi.test", MODMTA_MX_OK);
        int first_is_mx1;

        assert_int_equal(modmta_mx_count(l), 4);
        first_is_mx1 = strcmp(modmta_mx_host(l, 0), "mx1.multi.test") == 0;
        if (first_is_mx1) {
            entry_is(l, 0, "mx1.multi.test", 10, "127.0.0.31");
            entry_is(l, 1, "mx2.multi.test", 10, "127.0.0.32");
        } else {
            entry_is(l, 0, "mx2.multi.test", 10, "127.0.0.32");
            entry_is(l, 1, "mx1.multi.test", 10, "127.0.0.31");
        }
        orders |= first_is_mx1 ? 1 : 2;
        entry_is(l, 2, "mx3.multi.test", 20, "2001:db8::33");
        entry_is(l, 3, "mx3.multi.test", 20, "127.0.0.33");
        assert_null(modmta_mx_host(l, 4));
        assert_null(modmta_mx_addr_text(l, 4));
        modmta_mx_list_free(l);
    }
    assert_int_equal(orders, 3);
}

static void
test_mx_list_outcomes(void **state)
{
    struct env *e = *state;
    modmta_mx_list *l;

    mx_list(e->dns, "nullmx.test", MODMTA_MX_NULL);
    mx_list(e->dns, "nosuch.test", MODMTA_MX_NODOMAIN);
    /* the MX host has no address */
    mx_list(e->dns, "noaddr.test", MODMTA_MX_NOHOST);
    /* "10 192.0.2.1" names no host (looked up, the name would be refused
     * by dnsmasq: a temporary failure) */
    mx_list(e->dns, "iplit.test", MODMTA_MX_NOHOST);
    /* no MX: the domain itself, IPv6 first */
    l = mx_list(e->dns, "implicit.test.", MODMTA_MX_OK);
    assert_int_equal(modmta_mx_count(l), 2);
    entry_is(l, 0, "implicit.test", 0, "2001:db8::40");
    entry_is(l, 1, "implicit.test", 0, "127.0.0.40");
    modmta_mx_list_free(l);
    /* neither MX nor address */
    mx_list(e->dns, "txt.test", MODMTA_MX_NOHOST);
    /* the MX target is a CNAME: followed */
    l = mx_list(e->dns, "cnamemx.test", MODMTA_MX_OK);
    assert_int_equal(modmta_mx_count(l), 1);
    entry_is(l, 0, "alias.test", 10, "127.0.0.31");
    modmta_mx_list_free(l);
}

/* At most DNS_MX_HOSTS_MAX hosts: the lowest preferences. */
static void
test_mx_list_cap(void **state)
{
    struct env *e = *state;
    modmta_mx_list *l = mx_list(e->dns, "many.test", MODMTA_MX_OK);

    assert_int_equal(modmta_mx_count(l), DNS_MX_HOSTS_MAX);
    for (size_t i = 0; i < modmta_mx_count(l); i++) {
        char want[32];

        snprintf(want, sizeof(want), "h%02zu.many.test", i + 1);
        entry_is(l, i, want, (int)i + 1, "127.0.0.50");
    }
    modmta_mx_list_free(l);
}

/* A host whose address lookups time out is left out; nothing left is a
 * temporary failure, never "no host". */
static void
test_mx_list_temp(void **state)
{
    struct env *e = *state;
    modmta_mx_list *l;

    mx_list(e->quick, "tempmx.test", MODMTA_E_TEMP);
    l = mx_list(e->quick, "halftemp.test", MODMTA_MX_OK);
    assert_int_equal(modmta_mx_count(l), 1);
    entry_is(l, 0, "mx1.multi.test", 20, "127.0.0.31");
    modmta_mx_list_free(l);
}

/* A server that never answers: MODMTA_E_TEMP after about the timeout
 * (the bound only shows it does not hang). */
static void
test_timeout(void **state)
{
    struct env *e = *state;
    modmta_dns *r = resolver(e->silent, 1, NULL);
    modmta_mx_list *l = (modmta_mx_list *)1;
    double t0 = now_s();

    lookup(r, "mx1.multi.test", MODMTA_DNS_A, MODMTA_E_TEMP);
    assert_true(now_s() - t0 < 10);
    assert_int_equal(modmta_dns_mx_list(r, "multi.test", &l), MODMTA_E_TEMP);
    assert_null(l);
    modmta_dns_free(r);
}

/* Inside a hook's budget a lookup (and an MX list) ends by the hook's
 * deadline, not the resolver's timeout (longer than the test may run),
 * and says the budget stopped it. */
static void
test_hook_budget(void **state)
{
    struct env *e = *state;
    modmta_dns *r = resolver(e->silent, 600, NULL);
    modmta_ctx *ctx = modmta_ctx_new(NULL);
    modmta_mx_list *l = (modmta_mx_list *)1;

    budget_begin(ctx, budget_now_ms() + 200);
    lookup(r, "mx1.multi.test", MODMTA_DNS_A, MODMTA_E_TEMP);
    assert_int_equal(budget_end(ctx), 1);
    budget_begin(ctx, budget_now_ms() + 200);
    assert_int_equal(modmta_dns_mx_list(r, "multi.test", &l), MODMTA_E_TEMP);
    assert_null(l);
    assert_int_equal(budget_end(ctx), 1);
    /* a lookup that ends in time: the budget is not spent */
    budget_begin(ctx, budget_now_ms() + 60000);
    text_is(e->dns, "mx1.multi.test", MODMTA_DNS_A, "127.0.0.31");
    assert_int_equal(budget_end(ctx), 0);
    modmta_ctx_free(ctx);
    modmta_dns_free(r);
}

static void
test_domain_literal(void **state)
{
    struct env *e = *state;
    modmta_mx_list *l = mx_list(e->dns, "[192.0.2.1]", MODMTA_MX_OK);

    assert_int_equal(modmta_mx_count(l), 1);
    entry_is(l, 0, "192.0.2.1", 0, "192.0.2.1");
    modmta_mx_list_free(l);
    l = mx_list(e->dns, "[IPv6:2001:DB8::1]", MODMTA_MX_OK);
    entry_is(l, 0, "2001:db8::1", 0, "2001:db8::1");
    modmta_mx_list_free(l);
    mx_list(e->dns, "[192.0.2.300]", MODMTA_E_INVAL);
    mx_list(e->dns, "[2001:db8::1]", MODMTA_E_INVAL);
    mx_list(e->dns, "[IPv6:192.0.2.1", MODMTA_E_INVAL);
    mx_list(e->dns, "[]", MODMTA_E_INVAL);
}

static void
test_invalid(void **state)
{
    struct env *e = *state;

    lookup(e->dns, "", MODMTA_DNS_A, MODMTA_E_INVAL);
    lookup(e->dns, ".", MODMTA_DNS_A, MODMTA_E_INVAL);
    lookup(e->dns, "a..test", MODMTA_DNS_A, MODMTA_E_INVAL);
    lookup(e->dns, "a b.test", MODMTA_DNS_A, MODMTA_E_INVAL);
    lookup(e->dns, "mx1.multi.test", 0, MODMTA_E_INVAL);
    lookup(e->dns, "mx1.multi.test", 255, MODMTA_E_INVAL);
    lookup(e->dns, "mx1.multi.test", 65536, MODMTA_E_INVAL);
    mx_list(e->dns, "multi..test", MODMTA_E_INVAL);
}

/* A trust anchor that cannot be read: no answer, a temporary failure. */
static void
test_bad_trust_anchor(void **state)
{
    struct env *e = *state;
    modmta_dns *r = resolver(e->server, 2, "/nonexistent/root.key");

    lookup(r, "mx1.multi.test", MODMTA_DNS_A, MODMTA_E_TEMP);
    modmta_dns_free(r);
}

/* With the zone's trust anchor: validated answers are secure, for MX
 * lists too; a forged signature is no answer; a name outside the anchor
 * is answered, not secure. */
static void
test_dnssec_validated(void **state)
{
    struct env *e = *state;
    modmta_dns *r = resolver(e->signed_server, 5, e->anchor);
    modmta_dns_result *res = lookup(r, "mx.secure.test", MODMTA_DNS_A, 1);
    modmta_mx_list *l;

    assert_string_equal(modmta_dns_text_at(res, 0), "127.0.0.61");
    assert_true(modmta_dns_secure(res));
    modmta_dns_result_free(res);
    res = lookup(r, "_25._tcp.mx.secure.test", MODMTA_DNS_TLSA, 1);
    assert_true(modmta_dns_secure(res));
    modmta_dns_result_free(res);
    l = mx_list(r, "secure.test", MODMTA_MX_OK);
    assert_int_equal(modmta_mx_count(l), 2);
    assert_string_equal(modmta_mx_addr_text(l, 0), "2001:db8::61");
    assert_string_equal(modmta_mx_addr_text(l, 1), "127.0.0.61");
    assert_true(modmta_mx_secure(l, 0));
    assert_true(modmta_mx_secure(l, 1));
    modmta_mx_list_free(l);
    lookup(r, "bogus.secure.test", MODMTA_DNS_A, MODMTA_E_TEMP);
    res = lookup(r, "other.test", MODMTA_DNS_A, 1);
    assert_false(modmta_dns_secure(res));
    modmta_dns_result_free(res);
    modmta_dns_free(r);
}

/* The same server without a trust anchor: nothing is validated, so
 * nothing is secure and the forged record passes. */
static void
test_dnssec_no_anchor(void **state)
{
    struct env *e = *state;
    modmta_dns *r = resolver(e->signed_server, 5, NULL);
    modmta_dns_result *res = lookup(r, "mx.secure.test", MODMTA_DNS_A, 1);
    modmta_mx_list *l;

    assert_false(modmta_dns_secure(res));
    modmta_dns_result_free(res);
    res = lookup(r, "bogus.secure.test", MODMTA_DNS_A, 1);
    assert_string_equal(modmta_dns_text_at(res, 0), "127.0.0.62");
    assert_false(modmta_dns_secure(res));
    modmta_dns_result_free(res);
    l = mx_list(r, "secure.test", MODMTA_MX_OK);
    assert_false(modmta_mx_secure(l, 0));
    modmta_mx_list_free(l);
    modmta_dns_free(r);
}

static size_t
threads_now(void)
{
    DIR *d = opendir("/proc/self/task");
    size_t n = 0;

    assert_non_null(d);
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* Nothing runs until the first lookup; everything stops at free. */
static void
test_lazy_start(void **state)
{
    struct env *e = *state;
    size_t before = threads_now();
    modmta_dns *r = resolver(e->server, 5, NULL);

    assert_int_equal(threads_now(), before);
    text_is(r, "mx1.multi.test", MODMTA_DNS_A, "127.0.0.31");
    assert_true(threads_now() > before);
    modmta_dns_free(r);
    assert_int_equal(threads_now(), before);
}

struct worker {
    modmta_dns *r;
    int id;
    int failures;
};

static void *
worker_run(void *arg)
{
    struct worker *w = arg;

    for (int i = 0; i < 40; i++) {
        modmta_dns_result *res = NULL;
        modmta_mx_list *l = NULL;
        const char *t;

        if ((i + w->id) % 2 == 0) {
            if (modmta_dns_lookup(w->r, "mx2.multi.test", MODMTA_DNS_A,
                                  &res) != 1 ||
                (t = modmta_dns_text_at(res, 0)) == NULL ||
                strcmp(t, "127.0.0.32") != 0)
                w->failures++;
            modmta_dns_result_free(res);
        } else {
            if (modmta_dns_mx_list(w->r, "multi.test", &l) != MODMTA_MX_OK ||
                modmta_mx_count(l) != 4)
                w->failures++;
            modmta_mx_list_free(l);
        }
    }
    return NULL;
}

/* Lookups from several threads at once, on a fresh resolver (the first
 * lookups race to start it). */
static void
test_concurrent(void **state)
{
    struct env *e = *state;
    modmta_dns *r = resolver(e->server, 5, NULL);
    struct worker w[8];
    pthread_t t[8];

    for (int i = 0; i < 8; i++) {
        w[i] = (struct worker){ .r = r, .id = i };
        assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    modmta_dns_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records),
        cmocka_unit_test(test_cname_followed),
        cmocka_unit_test(test_nxdomain_nodata),
        cmocka_unit_test(test_tlsa),
        cmocka_unit_test(test_mx_records),
        cmocka_unit_test(test_mx_list_order),
        cmocka_unit_test(test_mx_list_outcomes),
        cmocka_unit_test(test_mx_list_cap),
        cmocka_unit_test(test_mx_list_temp),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_hook_budget),
        cmocka_unit_test(test_domain_literal),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_bad_trust_anchor),
        cmocka_unit_test(test_dnssec_validated),
        cmocka_unit_test(test_dnssec_no_anchor),
        cmocka_unit_test(test_lazy_start),
        cmocka_unit_test(test_concurrent),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
