/* Unit tests of the resolver's pure parts (sdk/src/dns_wire.c,
 * dns_result.c, dns_mx.c): names, record data as libunbound gives it,
 * MX ordering, domain literals. No server. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <modmta/dns.h>

#include "dns_priv.h"

/* Wire data from a string literal (its final NUL not counted). */
#define W(s) (const unsigned char *)(s), sizeof(s) - 1

static void
name_ok(const char *name, const char *want)
{
    char buf[DNS_NAME_MAX + 1];

    assert_int_equal(dns_wire_name_check(name, buf), 0);
    assert_string_equal(buf, want);
}

static void
name_bad(const char *name)
{
    char buf[DNS_NAME_MAX + 1];

    assert_int_equal(dns_wire_name_check(name, buf), MODMTA_E_INVAL);
}

static void
test_name_check(void **state)
{
    char label64[70];

    name_ok("example.org", "example.org");
    name_ok("Example.ORG.", "Example.ORG");
    name_ok("_25._tcp.mx.example.org", "_25._tcp.mx.example.org");
    name_ok("sel._domainkey.example.org", "sel._domainkey.example.org");
    name_ok("1.2.0.192.in-addr.arpa", "1.2.0.192.in-addr.arpa");
    name_ok("localhost", "localhost");
    name_bad(NULL);
    name_bad("");
    name_bad(".");
    name_bad("..");
    name_bad("a..b");
    name_bad(".a");
    name_bad("a.b..");
    name_bad("a b");
    name_bad("a\\.b");
    name_bad("bücher.example");
    name_bad("[192.0.2.1]");
    name_bad("a:b");
    /* 63 octets a label */
    memset(label64, 'a', 64);
    label64[64] = '\0';
    name_bad(label64);
    label64[63] = '\0';
    name_ok(label64, label64);
}

static void
test_name_length(void **state)
{
    char name[300], buf[DNS_NAME_MAX + 1];

    memset(name, 'a', 253);
    for (int i = 63; i < 253; i += 64)
        name[i] = '.';
    name[253] = '\0';
    assert_int_equal(dns_wire_name_check(name, buf), 0);
    assert_int_equal(strlen(buf), 253);
    /* a final dot is not counted */
    strcpy(name + 253, ".");
    assert_int_equal(dns_wire_name_check(name, buf), 0);
    assert_int_equal(strlen(buf), 253);
    strcpy(name + 253, "a");
    assert_int_equal(dns_wire_name_check(name, buf), MODMTA_E_INVAL);
}

static void
test_name_text(void **state)
{
    char out[DNS_TEXT_MAX];
    unsigned char big[300];

    assert_int_equal(dns_wire_name_text(W("\2mx\7example\3org\0"), out), 16);
    assert_string_equal(out, "mx.example.org");
    assert_int_equal(dns_wire_name_text(W("\0"), out), 1);
    assert_string_equal(out, "");
    /* a dot, a backslash, a space, a control octet inside a label */
    assert_int_equal(dns_wire_name_text(W("\4a.b\\\3c d\0"), out), 10);
    assert_string_equal(out, "a\\046b\\092.c\\032d");
    assert_int_equal(dns_wire_name_text(W("\2\x01_\0"), out), 4);
    assert_string_equal(out, "\\001_");
    /* stops after the name: the caller checks the length taken */
    assert_int_equal(dns_wire_name_text(W("\1a\0junk"), out), 3);
    /* malformed: cut short, no end, a compression pointer, label > 63 */
    assert_int_equal(dns_wire_name_text(W("\3ab"), out), -1);
    assert_int_equal(dns_wire_name_text(W("\1a"), out), -1);
    assert_int_equal(dns_wire_name_text(W(""), out), -1);
    assert_int_equal(dns_wire_name_text(W("\xc0\x0c"), out), -1);
    assert_int_equal(dns_wire_name_text(W("\x40"), out), -1);
    /* over 255 octets */
    for (size_t i = 0; i < 256; i += 64) {
        big[i] = 63;
        memset(big + i + 1, 'x', 63);
    }
    big[256] = 0;
    assert_int_equal(dns_wire_name_text(big, sizeof(big), out), -1);
    /* 255 octets exactly: the longest, every octet escaped */
    for (size_t i = 0; i < 256; i += 64) {
        big[i] = 63;
        memset(big + i + 1, 0xff, 63);
    }
    big[192] = 61;
    big[254] = 0;
    assert_int_equal(dns_wire_name_text(big, 255, out), 255);
    assert_int_equal(strlen(out), 4 * 250 + 3);
}

static void
rdata_text(int type, const unsigned char *p, size_t len, const char *want)
{
    struct dns_rr rr;

    assert_int_equal(dns_wire_rdata(type, p, len, &rr), 0);
    assert_string_equal(rr.text, want);
    dns_wire_rr_clear(&rr);
}

static void
rdata_bad(int type, const unsigned char *p, size_t len)
{
    struct dns_rr rr;

    assert_int_equal(dns_wire_rdata(type, p, len, &rr), MODMTA_E_TEMP);
    dns_wire_rr_clear(&rr);
}

static void
test_rdata(void **state)
{
    struct dns_rr rr;

    rdata_text(MODMTA_DNS_A, W("\xc0\x00\x02\x01"), "192.0.2.1");
    rdata_bad(MODMTA_DNS_A, W("\xc0\x00\x02"));
    rdata_text(MODMTA_DNS_AAAA,
               W("\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"),
               "2001:db8::1");
    rdata_bad(MODMTA_DNS_AAAA, W("\xc0\x00\x02\x01"));
    rdata_text(MODMTA_DNS_PTR, W("\4host\4test\0"), "host.test");
    rdata_bad(MODMTA_DNS_PTR, W("\4host\4test\0\0"));
    rdata_text(MODMTA_DNS_CNAME, W("\1a\0"), "a");
    rdata_text(MODMTA_DNS_TXT, W("\13v=spf1 -all"), "v=spf1 -all");
    rdata_text(MODMTA_DNS_TXT, W("\3abc\0\3def"), "abcdef");
    rdata_bad(MODMTA_DNS_TXT, W("\4abc"));
    rdata_bad(MODMTA_DNS_TXT, W(""));
    /* MX: preference, then the host */
    assert_int_equal(dns_wire_rdata(MODMTA_DNS_MX,
                                    W("\x01\x02\2mx\4test\0"), &rr), 0);
    assert_int_equal(rr.pref, 258);
    assert_string_equal(rr.text, "mx.test");
    dns_wire_rr_clear(&rr);
    assert_int_equal(dns_wire_rdata(MODMTA_DNS_MX, W("\0\0\0"), &rr), 0);
    assert_int_equal(rr.pref, 0);
    assert_string_equal(rr.text, "");
    dns_wire_rr_clear(&rr);
    rdata_bad(MODMTA_DNS_MX, W("\0\x0a"));
    rdata_bad(MODMTA_DNS_MX, W("\0\x0a\2mx\0x"));
    /* TLSA: usage, selector, matching type, data */
    assert_int_equal(dns_wire_rdata(MODMTA_DNS_TLSA, W("\3\1\1\xab\xcd"),
                                    &rr), 0);
    assert_int_equal(rr.usage, 3);
    assert_int_equal(rr.selector, 1);
    assert_int_equal(rr.mtype, 1);
    assert_int_equal(rr.len, 2);
    assert_memory_equal(rr.data, "\xab\xcd", 2);
    dns_wire_rr_clear(&rr);
    rdata_bad(MODMTA_DNS_TLSA, W("\3\1"));
    /* another type: counted, nothing to read */
    assert_int_equal(dns_wire_rdata(99, W("whatever"), &rr), 0);
    assert_null(rr.text);
    dns_wire_rr_clear(&rr);
}

static void
test_result(void **state)
{
    char *data[] = { "\0\x0a\3mx1\4test\0", "\0\x14\3mx2\4test\0", NULL };
    int len[] = { 12, 12 };
    char *bad[] = { "\0\x0a\3mx1\4test\0", "\0\x14\3mx2", NULL };
    modmta_dns_result *res;
    const char *host;
    const unsigned char *d;
    int u, s, m;
    size_t l;

    assert_int_equal(dns_result_build(MODMTA_DNS_MX, "Example.test.", 0, 1,
                                      data, len, &res), 1);
    assert_int_equal(modmta_dns_count(res), 2);
    assert_string_equal(modmta_dns_canonical(res), "Example.test");
    assert_true(modmta_dns_secure(res));
    assert_false(modmta_dns_nxdomain(res));
    assert_int_equal(modmta_dns_mx_at(res, 1, &host), 20);
    assert_string_equal(host, "mx2.test");
    assert_true(modmta_dns_mx_at(res, 2, &host) < 0);
    assert_null(modmta_dns_text_at(res, 0));
    assert_true(modmta_dns_tlsa_at(res, 0, &u, &s, &m, &d, &l) < 0);
    assert_false(dns_mx_is_null(res));
    modmta_dns_result_free(res);
    /* one malformed record spoils the answer (and leaks nothing) */
    assert_int_equal(dns_result_build(MODMTA_DNS_MX, "x.test", 0, 0, bad,
                                      (int[]){ 12, 6 }, &res),
                     MODMTA_E_TEMP);
    assert_null(res);
    /* no records */
    assert_int_equal(dns_result_build(MODMTA_DNS_A, "x.test", 1, 0, NULL,
                                      NULL, &res), 0);
    assert_true(modmta_dns_nxdomain(res));
    assert_int_equal(modmta_dns_count(res), 0);
    assert_null(modmta_dns_text_at(res, 0));
    modmta_dns_result_free(res);
    assert_int_equal(modmta_dns_count(NULL), 0);
}

static void
null_mx_is(const char *rdata, size_t len, int n, int want)
{
    char *data[] = { (char *)rdata, (char *)rdata, NULL };
    int lens[] = { (int)len, (int)len };
    modmta_dns_result *res;

    data[n] = NULL;
    assert_int_equal(dns_result_build(MODMTA_DNS_MX, "x.test", 0, 0, data,
                                      lens, &res), 1);
    assert_int_equal(dns_mx_is_null(res), want);
    modmta_dns_result_free(res);
}

/* RFC 7505: one MX, ".", preference 0. */
static void
test_null_mx(void **state)
{
    null_mx_is("\0\0\0", 3, 1, 1);
    null_mx_is("\0\x0a\0", 3, 1, 0);
    null_mx_is("\0\0\0", 3, 2, 0);
    null_mx_is("\0\0\1a\0", 5, 1, 0);
}

static void
test_mx_pick(void **state)
{
    struct dns_mx_host h[] = {
        { "c.test", 20, 5 },
        { "b.test", 10, 9 },
        { "a.test", 10, 3 },
        { "", 0, 0 },                /* the root */
        { "192.0.2.1", 5, 0 },       /* an address, not a name */
        { "B.TEST", 5, 7 },          /* b again, lower preference */
        { "bad\\032name", 1, 0 },    /* not a host name */
        { "d.test", 30, 0 },
    };
    size_t n = dns_mx_pick(h, sizeof(h) / sizeof(h[0]), 10);

    assert_int_equal(n, 4);
    assert_string_equal(h[0].name, "B.TEST");
    assert_int_equal(h[0].pref, 5);
    assert_string_equal(h[1].name, "a.test");     /* key 3 before 9 */
    assert_string_equal(h[2].name, "c.test");
    assert_string_equal(h[3].name, "d.test");
}

/* Equal preferences follow the random key; the cap keeps the lowest. */
static void
test_mx_pick_keys_and_cap(void **state)
{
    struct dns_mx_host h[] = {
        { "x.test", 10, 200 }, { "y.test", 10, 100 }, { "z.test", 10, 300 },
        { "w.test", 5, 999 },
    };

    assert_int_equal(dns_mx_pick(h, 4, 3), 3);
    assert_string_equal(h[0].name, "w.test");
    assert_string_equal(h[1].name, "y.test");
    assert_string_equal(h[2].name, "x.test");
}

/* Domain literals need no lookup: a resolver never started will do. */
static void
test_domain_literal(void **state)
{
    modmta_err err;
    modmta_dns *r = modmta_dns_new(NULL, 1, NULL, &err);
    struct sockaddr_storage ss;
    modmta_mx_list *l;

    assert_non_null(r);
    assert_int_equal(modmta_dns_mx_list(r, "[192.0.2.1]", &l), MODMTA_MX_OK);
    assert_int_equal(modmta_mx_count(l), 1);
    assert_string_equal(modmta_mx_host(l, 0), "192.0.2.1");
    assert_string_equal(modmta_mx_addr_text(l, 0), "192.0.2.1");
    assert_int_equal(modmta_mx_pref(l, 0), 0);
    assert_false(modmta_mx_secure(l, 0));
    assert_int_equal(modmta_mx_addr(l, 0, 587, &ss),
                     sizeof(struct sockaddr_in));
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 587);
    assert_int_equal(modmta_mx_addr(l, 1, 587, &ss), 0);
    assert_true(modmta_mx_pref(l, 1) < 0);
    modmta_mx_list_free(l);
    assert_int_equal(modmta_dns_mx_list(r, "[ipv6:2001:DB8:0::1]", &l),
                     MODMTA_MX_OK);
    assert_string_equal(modmta_mx_addr_text(l, 0), "2001:db8::1");
    assert_int_equal(modmta_mx_addr(l, 0, 25, &ss),
                     sizeof(struct sockaddr_in6));
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 25);
    modmta_mx_list_free(l);
    assert_int_equal(modmta_dns_mx_list(r, "[192.0.2.1", &l),
                     MODMTA_E_INVAL);
    assert_null(l);
    assert_int_equal(modmta_dns_mx_list(r, "[IPv6:192.0.2.1]", &l),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_dns_mx_list(r, "[tag:x]", &l), MODMTA_E_INVAL);
    modmta_dns_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_check),
        cmocka_unit_test(test_name_length),
        cmocka_unit_test(test_name_text),
        cmocka_unit_test(test_rdata),
        cmocka_unit_test(test_result),
        cmocka_unit_test(test_null_mx),
        cmocka_unit_test(test_mx_pick),
        cmocka_unit_test(test_mx_pick_keys_and_cap),
        cmocka_unit_test(test_domain_literal),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
