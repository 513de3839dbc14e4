/* Unit tests of next hops (nexthop.h): every form a transport table
 * entry, a relayhost or a destination string may take, every error, and
 * the destination strings route() makes, parsed back unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "nexthop.h"

/* s parses (with bare) into an SMTP or LMTP next hop of kind with host,
 * mx and port; returns it for more checks. */
static struct nexthop
parse_ok(const char *s, int bare, enum nexthop_kind kind, const char *host,
         int mx, int port)
{
    struct nexthop nh;
    char why[300] = "";

    if (nexthop_parse(s, bare, &nh, why, sizeof(why)) != 0)
        fail_msg("\"%s\" refused: %s", s, why);
    assert_int_equal(nh.kind, kind);
    assert_string_equal(nh.host, host);
    assert_int_equal(nh.mx, mx);
    assert_int_equal(nh.port, port);
    return nh;
}

/* s is refused, and the reason says `what`. */
static void
parse_bad(const char *s, int bare, const char *what)
{
    struct nexthop nh;
    char why[300] = "";

    if (nexthop_parse(s, bare, &nh, why, sizeof(why)) == 0)
        fail_msg("\"%s\" accepted (kind %d, host \"%s\")", s, nh.kind,
                 nh.host);
    if (strstr(why, what) == NULL)
        fail_msg("\"%s\": reason \"%s\" does not say \"%s\"", s, why, what);
}

/* nh's destination string for a recipient in domain is want, and it
 * parses back (as route() hands it to deliver_msg) into the same hop. */
static void
round_trip(const struct nexthop *nh, const char *domain, const char *want)
{
    struct nexthop back;
    char dest[300], again[300], why[300] = "";

    assert_int_equal(nexthop_format(nh, domain, dest, sizeof(dest)), 0);
    assert_string_equal(dest, want);
    if (nexthop_parse(dest, 1, &back, why, sizeof(why)) != 0)
        fail_msg("destination \"%s\" does not parse: %s", dest, why);
    assert_int_equal(back.kind, nh->kind);
    assert_string_equal(back.host, nh->host[0] || nh->kind !=
                        NEXTHOP_SMTP ? nh->host : domain);
    assert_int_equal(back.mx, nh->mx);
    assert_int_equal(back.port, nh->port);
    assert_string_equal(back.path, nh->path);
    assert_int_equal(nexthop_format(&back, "other.test", again,
                                    sizeof(again)), 0);
    assert_string_equal(again, dest);
}

/* ---- accepted forms ---- */

static const struct accepted {
    const char *in;
    int bare;                   /* a relayhost or destination string */
    enum nexthop_kind kind;
    const char *host;
    int mx, port;
    const char *dest;           /* its destination for rcpt.test */
} accepted[] = {
    /* a host without MX lookup, an address literal */
    { "smtp:[relay.example.net]:587", 0, NEXTHOP_SMTP, "relay.example.net",
      0, 587, "[relay.example.net]:587" },
    { "smtp:[192.0.2.1]", 0, NEXTHOP_SMTP, "192.0.2.1", 0, 0,
      "[192.0.2.1]" },
    { "smtp:[IPv6:2001:db8::1]:25", 0, NEXTHOP_SMTP, "IPv6:2001:db8::1", 0,
      25, "[IPv6:2001:db8::1]:25" },
    { "smtp:[::1]", 0, NEXTHOP_SMTP, "::1", 0, 0, "[::1]" },
    { "smtp:[a_b.example]:1", 0, NEXTHOP_SMTP, "a_b.example", 0, 1,
      "[a_b.example]:1" },
    { "smtp:[h.example]:65535", 0, NEXTHOP_SMTP, "h.example", 0, 65535,
      "[h.example]:65535" },
    /* the MX hosts of a host; of the recipient's domain */
    { "smtp:mail.example.net", 0, NEXTHOP_SMTP, "mail.example.net", 1, 0,
      "mail.example.net" },
    { "smtp:mail.example.net:2525", 0, NEXTHOP_SMTP, "mail.example.net", 1,
      2525, "mail.example.net:2525" },
    { "smtp:", 0, NEXTHOP_SMTP, "", 1, 0, "rcpt.test" },
    { "smtp", 0, NEXTHOP_SMTP, "", 1, 0, "rcpt.test" },
    /* a relayhost or a destination string: no "smtp:" needed */
    { "[relay.example.net]:587", 1, NEXTHOP_SMTP, "relay.example.net", 0,
      587, "[relay.example.net]:587" },
    { "relay.example.net", 1, NEXTHOP_SMTP, "relay.example.net", 1, 0,
      "relay.example.net" },
    { "relay.example.net:26", 1, NEXTHOP_SMTP, "relay.example.net", 1, 26,
      "relay.example.net:26" },
    { "smtp:[relay.example.net]", 1, NEXTHOP_SMTP, "relay.example.net", 0,
      0, "[relay.example.net]" },
    { "lmtp:inet:127.0.0.1:24", 1, NEXTHOP_LMTP_INET, "127.0.0.1", 0, 24,
      "lmtp:inet:127.0.0.1:24" },
    /* LMTP */
    { "lmtp:inet:lmtp.example.net:24", 0, NEXTHOP_LMTP_INET,
      "lmtp.example.net", 0, 24, "lmtp:inet:lmtp.example.net:24" },
    { "lmtp:inet:[::1]:24", 0, NEXTHOP_LMTP_INET, "::1", 0, 24,
      "lmtp:inet:[::1]:24" },
    { "lmtp:inet:[127.0.0.1]:2424", 0, NEXTHOP_LMTP_INET, "127.0.0.1", 0,
      2424, "lmtp:inet:127.0.0.1:2424" },
    { "lmtp:unix:/run/dovecot/lmtp", 0, NEXTHOP_LMTP_UNIX, "", 0, 0,
      "lmtp:unix:/run/dovecot/lmtp" },
};

static void
test_accepted(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
        const struct accepted *a = &accepted[i];
        struct nexthop nh = parse_ok(a->in, a->bare, a->kind, a->host,
                                     a->mx, a->port);

        round_trip(&nh, "rcpt.test", a->dest);
    }
}

static void
test_unix_path(void **state)
{
    struct nexthop nh;

    (void)state;
    nh = parse_ok("lmtp:unix:/run/dovecot/lmtp", 0, NEXTHOP_LMTP_UNIX, "",
                  0, 0);
    assert_string_equal(nh.path, "/run/dovecot/lmtp");
}

/* sun_path holds 108 octets with the NUL. */
static void
test_unix_path_long(void **state)
{
    char path[200];

    (void)state;
    memset(path, 'p', sizeof(path));
    memcpy(path, "lmtp:unix:/", 11);
    path[10 + 107] = '\0';
    parse_ok(path, 0, NEXTHOP_LMTP_UNIX, "", 0, 0);
    path[10 + 107] = 'p';
    path[10 + 108] = '\0';
    parse_bad(path, 0, "at most 107 octets");
}

/* ---- error: and local ---- */

static void
test_error(void **state)
{
    struct nexthop nh;
    char why[300], dest[300];

    (void)state;
    assert_int_equal(nexthop_parse("error:5.1.2 no such domain here", 0,
                                   &nh, why, sizeof(why)), 0);
    assert_int_equal(nh.kind, NEXTHOP_ERROR);
    assert_string_equal(nh.esc, "5.1.2");
    assert_string_equal(nh.text, "no such domain here");
    assert_int_equal(nexthop_format(&nh, "d.test", dest, sizeof(dest)), -1);
    assert_int_equal(nexthop_parse("error:4.4.1 x", 0, &nh, why,
                                   sizeof(why)), 0);
    assert_string_equal(nh.esc, "4.4.1");
    assert_string_equal(nh.text, "x");
    /* no text: a default one */
    assert_int_equal(nexthop_parse("error:5.7.1", 0, &nh, why, sizeof(why)),
                     0);
    assert_string_equal(nh.esc, "5.7.1");
    assert_string_equal(nh.text, "delivery refused by the transport table");
    /* three-digit parts; spaces between code and text */
    assert_int_equal(nexthop_parse("error:5.123.456   gone", 0, &nh, why,
                                   sizeof(why)), 0);
    assert_string_equal(nh.esc, "5.123.456");
    assert_string_equal(nh.text, "gone");
    /* a control character in the text cannot reach a reply */
    assert_int_equal(nexthop_parse("error:5.1.2 a\tb\rc", 0, &nh, why,
                                   sizeof(why)), 0);
    assert_string_equal(nh.text, "a b c");
}

static void
test_error_long_text(void **state)
{
    struct nexthop nh;
    char s[1000], why[300];

    (void)state;
    memset(s, 'x', sizeof(s));
    memcpy(s, "error:5.1.2 ", 12);
    s[sizeof(s) - 1] = '\0';
    assert_int_equal(nexthop_parse(s, 0, &nh, why, sizeof(why)), 0);
    assert_int_equal(strlen(nh.text), NEXTHOP_TEXT_MAX - 1);
}

static void
test_local(void **state)
{
    struct nexthop nh;
    char why[300], dest[300];

    (void)state;
    assert_int_equal(nexthop_parse("local", 0, &nh, why, sizeof(why)), 0);
    assert_int_equal(nh.kind, NEXTHOP_LOCAL);
    assert_int_equal(nexthop_format(&nh, "d.test", dest, sizeof(dest)), -1);
}

/* A host name of at most 255 octets. */
static void
test_host_long(void **state)
{
    char s[400], hs[300];

    (void)state;
    memset(hs, 'h', sizeof(hs) - 1);
    hs[sizeof(hs) - 1] = '\0';
    snprintf(s, sizeof(s), "smtp:%.255s", hs);
    parse_ok(s, 0, NEXTHOP_SMTP, s + 5, 1, 0);
    snprintf(s, sizeof(s), "smtp:%.256s", hs);
    parse_bad(s, 0, "not a host name");
    snprintf(s, sizeof(s), "smtp:[%.256s]", hs);
    parse_bad(s, 0, "not a host");
}

/* ---- refused forms (table entries: no bare) ---- */

static const struct refused {
    const char *in;
    const char *why;           /* the reason says this */
} refused[] = {
    /* a table entry must say its transport */
    { "relay.example.net", "expected smtp:" },
    { "[relay.example.net]:587", "expected smtp:" },
    { "SMTP:relay.example.net", "expected smtp:" },
    { "lmtp:inet:lmtp.example.net", "expected lmtp:inet:host:port" },
    { "lmtp:inet:[::1]", "expected lmtp:inet:host:port" },
    { "lmtp:inet:", "expected lmtp:inet:host:port" },
    { "lmtp:inet:h.example:0", "bad port" },
    { "lmtp:inet:[::1:24", "no closing ']'" },
    { "lmtp:unix:run/lmtp", "absolute socket path" },
    { "lmtp:unix:", "absolute socket path" },
    { "lmtp:/run/lmtp", "expected smtp:" },
    /* a destination is one printable word: no spaces or controls */
    { "lmtp:unix:/run/dove cot/lmtp", "absolute socket path" },
    { "lmtp:unix:/run/lmtp\n", "absolute socket path" },
    { "error:", "expected an enhanced status code" },
    { "error:no", "expected an enhanced status code" },
    { "error:5.1 x", "expected an enhanced status code" },
    { "error:2.0.0 fine", "expected an enhanced status code" },
    { "error:550 no", "expected an enhanced status code" },
    { "error:5.x.y text", "expected an enhanced status code" },
    { "error:5.1.2text", "expected an enhanced status code" },
    { "error:5.1234.1 x", "expected an enhanced status code" },
    { "error:5..1 x", "expected an enhanced status code" },
    { "error:5.1. x", "expected an enhanced status code" },
    { "local:", "expected smtp:" },
    { "Local", "expected smtp:" },
    /* ports */
    { "smtp:h.example:0", "bad port" },
    { "smtp:h.example:65536", "bad port" },
    { "smtp:h.example:99999999999999999999", "bad port" },
    { "smtp:h.example:-25", "bad port" },
    { "smtp:h.example:+25", "bad port" },
    { "smtp:h.example:25x", "bad port" },
    { "smtp:h.example:", "bad port" },
    { "smtp:h.example: 25", "bad port" },
    { "smtp:[h.example]:", "expected :port" },
    { "smtp:[h.example]:0", "expected :port" },
    { "smtp:[h.example]25", "expected :port" },
    { "smtp:[h.example]:25:26", "expected :port" },
    { "smtp:[h.example]:70000", "expected :port" },
    /* hosts: no spaces, controls or other punctuation */
    { "smtp:[h.example:25", "no closing ']'" },
    { "smtp:[h.example", "no closing ']'" },
    { "smtp:[]", "not a host" },
    { "smtp:[]:25", "not a host" },
    { "smtp:[h example]", "not a host" },
    { "smtp:[h\texample]", "not a host" },
    { "smtp:h example", "not a host name" },
    { "smtp: h.example", "not a host name" },
    { "smtp:h.example ", "not a host name" },
    { "smtp:h\x01.example", "not a host name" },
    { "smtp:h.example\n", "not a host name" },
    { "smtp:h/x", "not a host name" },
    { "smtp:bob@h.example", "not a host name" },
    { "smtp:[h.example]x]", "expected :port" },
    /* an IPv6 address must be in brackets */
    { "smtp:2001:db8::1", "IPv6 address goes in brackets" },
    { "smtp::25", "not a host name" },
};

static void
test_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        parse_bad(refused[i].in, 0, refused[i].why);
}

/* ---- destination strings ---- */

static void
test_format(void **state)
{
    struct nexthop nh;
    char dest[300], small[12];

    (void)state;
    nh = parse_ok("smtp:[192.0.2.1]:2525", 0, NEXTHOP_SMTP, "192.0.2.1", 0,
                  2525);
    assert_int_equal(nexthop_format(&nh, "d.test", small, sizeof(small)),
                     -1);
    assert_int_equal(nexthop_format(&nh, "d.test", dest, sizeof(dest)), 0);
    assert_string_equal(dest, "[192.0.2.1]:2525");
    /* exactly fits: 11 octets and the NUL */
    nh = parse_ok("smtp:[192.0.2.1]", 0, NEXTHOP_SMTP, "192.0.2.1", 0, 0);
    assert_int_equal(nexthop_format(&nh, "d.test", small, sizeof(small)), 0);
    assert_string_equal(small, "[192.0.2.1]");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_unix_path),
        cmocka_unit_test(test_unix_path_long),
        cmocka_unit_test(test_error),
        cmocka_unit_test(test_error_long_text),
        cmocka_unit_test(test_local),
        cmocka_unit_test(test_host_long),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_format),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
