/* Unit tests of sdk/src/addr.c: RFC 5321 paths. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <modmta/addr.h>
#include <modmta/err.h>

#define BR 0u
#define NUL MODMTA_ADDR_ALLOW_NULL
#define U8 MODMTA_ADDR_UTF8
#define BARE MODMTA_ADDR_NO_BRACKETS
#define NODOM MODMTA_ADDR_ALLOW_NODOMAIN

/* One accepted path: what it parses to and formats back as. */
struct good_case {
    const char *in;
    unsigned flags;
    const char *local;
    const char *domain;
    const char *formatted;
    const char *rest; /* what end_r points at */
};

static const struct good_case good_cases[] = {
    {"<user@example.com>", BR, "user", "example.com", "user@example.com",
     ""},
    {"<First.Last@Example.COM>", BR, "First.Last", "example.com",
     "First.Last@example.com", ""},
    {"<user@example.com> SIZE=100 BODY=8BITMIME", BR, "user", "example.com",
     "user@example.com", " SIZE=100 BODY=8BITMIME"},
    {"<a+tag!#$%&'*/=?^_`{|}~-@x.y>", BR, "a+tag!#$%&'*/=?^_`{|}~-", "x.y",
     "a+tag!#$%&'*/=?^_`{|}~-@x.y", ""},
    {"<user@example.com.>", BR, "user", "example.com", "user@example.com",
     ""},
    {"<user@localhost>", BR, "user", "localhost", "user@localhost", ""},
    {"<user@a-b.c0-9.example>", BR, "user", "a-b.c0-9.example",
     "user@a-b.c0-9.example", ""},
    {"<\"john doe\"@example.com>", BR, "john doe", "example.com",
     "\"john doe\"@example.com", ""},
    {"<\"a@b%c\"@example.com>", BR, "a@b%c", "example.com",
     "\"a@b%c\"@example.com", ""},
    {"<\"q\\\"uo\\\\te\"@example.com>", BR, "q\"uo\\te", "example.com",
     "\"q\\\"uo\\\\te\"@example.com", ""},
    {"<\"plain\"@example.com>", BR, "plain", "example.com",
     "plain@example.com", ""},
    {"<\"\"@example.com>", BR, "", "example.com", "\"\"@example.com", ""},
    {"<\"a..b\"@example.com>", BR, "a..b", "example.com",
     "\"a..b\"@example.com", ""},
    {"<@relay1.example,@relay2.example:user@example.com>", BR, "user",
     "example.com", "user@example.com", ""},
    {"<@[192.0.2.1]:user@example.com>", BR, "user", "example.com",
     "user@example.com", ""},
    {"<user@[192.0.2.1]>", BR, "user", "[192.0.2.1]", "user@[192.0.2.1]",
     ""},
    {"<user@[IPv6:2001:db8::1]>", BR, "user", "[IPv6:2001:db8::1]",
     "user@[IPv6:2001:db8::1]", ""},
    {"<user@[IPv6:::ffff:192.0.2.1]>", BR, "user", "[IPv6:::ffff:192.0.2.1]",
     "user@[IPv6:::ffff:192.0.2.1]", ""},
    {"user@example.com", BARE, "user", "example.com", "user@example.com",
     ""},
    {"user@example.com SIZE=1", BARE, "user", "example.com",
     "user@example.com", " SIZE=1"},
    {"<user@example.com>", BARE, "user", "example.com", "user@example.com",
     ""},
    {"<postmaster>", NODOM, "postmaster", "", "postmaster", ""},
    {"<Postmaster@Example.com>", NODOM, "Postmaster", "example.com",
     "Postmaster@example.com", ""},
    {"<j\xc3\xb6rg@b\xc3\xbcro.example>", U8, "j\xc3\xb6rg",
     "b\xc3\xbcro.example", "j\xc3\xb6rg@b\xc3\xbcro.example", ""},
    {"<\"\xe2\x82\xac uro\"@example.com>", U8, "\xe2\x82\xac uro",
     "example.com", "\"\xe2\x82\xac uro\"@example.com", ""},
    {"<\xf0\x9f\x93\xa7@example.com>", U8, "\xf0\x9f\x93\xa7",
     "example.com", "\xf0\x9f\x93\xa7@example.com", ""},
};

/* One rejected path and the error it gets. */
struct bad_case {
    const char *in;
    unsigned flags;
    int rc;
};

static const struct bad_case bad_cases[] = {
    {"", BR, MODMTA_E_INVAL},
    {"<>", BR, MODMTA_E_INVAL},
    {"user@example.com", BR, MODMTA_E_INVAL},
    {"<user@example.com", BR, MODMTA_E_INVAL},
    {"user@example.com>", BARE, MODMTA_E_INVAL},
    {"<user@example.com>>", BARE, 0}, /* '>' after the path is the rest */
    {"<user>", BR, MODMTA_E_INVAL},
    {"<@example.com>", BR, MODMTA_E_INVAL},
    {"<user@>", BR, MODMTA_E_INVAL},
    {"<.user@example.com>", BR, MODMTA_E_INVAL},
    {"<user.@example.com>", BR, MODMTA_E_INVAL},
    {"<us..er@example.com>", BR, MODMTA_E_INVAL},
    {"<us er@example.com>", BR, MODMTA_E_INVAL},
    {"<us(er@example.com>", BR, MODMTA_E_INVAL},
    {"<user@example..com>", BR, MODMTA_E_INVAL},
    {"<user@.example.com>", BR, MODMTA_E_INVAL},
    {"<user@example.com..>", BR, MODMTA_E_INVAL},
    {"<user@-example.com>", BR, MODMTA_E_INVAL},
    {"<user@example-.com>", BR, MODMTA_E_INVAL},
    {"<user@exa_mple.com>", BR, MODMTA_E_INVAL},
    {"<user@example.com >", BR, MODMTA_E_INVAL},
    {"<user@exa$mple.com>", BARE, MODMTA_E_INVAL},
    {"user@exa$mple.com", BARE, MODMTA_E_INVAL},
    {"<\"unterminated@example.com>", BR, MODMTA_E_INVAL},
    {"<\"a\tb\"@example.com>", BR, MODMTA_E_INVAL},
    {"<\"a\\\x01\"@example.com>", BR, MODMTA_E_INVAL},
    {"<us\x01er@example.com>", BR, MODMTA_E_INVAL},
    {"<user@exam\x7fple.com>", BR, MODMTA_E_INVAL},
    {"<user@[192.0.2.1>", BR, MODMTA_E_INVAL},
    {"<user@[192.0.2.256]>", BR, MODMTA_E_INVAL},
    {"<user@[2001:db8::1]>", BR, MODMTA_E_INVAL},
    {"<user@[IPv6:2001:db8:::1]>", BR, MODMTA_E_INVAL},
    {"<user@[IPv6:192.0.2.1]>", BR, MODMTA_E_INVAL},
    {"<user@[]>", BR, MODMTA_E_INVAL},
    {"<@relay.example user@example.com>", BR, MODMTA_E_INVAL},
    {"<@relay.example,user@example.com>", BR, MODMTA_E_INVAL},
    {"<@:user@example.com>", BR, MODMTA_E_INVAL},
    {"<j\xc3\xb6rg@example.com>", BR, MODMTA_E_INVAL},
    {"<user@b\xc3\xbcro.example>", BR, MODMTA_E_INVAL},
    {"<j\xc3rg@example.com>", U8, MODMTA_E_INVAL},      /* truncated */
    {"<j\xc0\xafrg@example.com>", U8, MODMTA_E_INVAL},  /* overlong */
    {"<j\xed\xa0\x80@example.com>", U8, MODMTA_E_INVAL}, /* surrogate */
    {"<j\xf4\x90\x80\x80@example.com>", U8, MODMTA_E_INVAL},
    {"<j\xffrg@example.com>", U8, MODMTA_E_INVAL},
};

static void
test_good(void **state)
{
    const struct good_case *c;
    char buf[MODMTA_ADDR_PATH_MAX * 2];
    const char *end;
    modmta_addr a;
    size_t i;
    int rc;

    for (i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++) {
        c = &good_cases[i];
        end = NULL;
        rc = modmta_addr_parse(c->in, c->flags, &a, &end);
        if (rc != 0)
            fail_msg("%s: rc %d", c->in, rc);
        assert_string_equal(a.local, c->local);
        assert_string_equal(a.domain, c->domain);
        assert_false(a.is_null);
        assert_string_equal(end, c->rest);
        rc = modmta_addr_format(&a, buf, sizeof(buf));
        assert_int_equal(rc, (int)strlen(c->formatted));
        assert_string_equal(buf, c->formatted);
    }
}

static void
test_bad(void **state)
{
    const struct bad_case *c;
    const char *end;
    modmta_addr a;
    size_t i;
    int rc;

    for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        c = &bad_cases[i];
        rc = modmta_addr_parse(c->in, c->flags, &a, &end);
        if (rc != c->rc)
            fail_msg("\"%s\" (case %zu): rc %d, expected %d", c->in, i, rc,
                     c->rc);
    }
}

static void
test_flags_recorded(void **state)
{
    modmta_addr a;
    const char *end;

    assert_int_equal(modmta_addr_parse("<\"x y\"@[10.0.0.1]>", 0, &a, &end),
                     0);
    assert_true(a.quoted);
    assert_true(a.is_literal);
    assert_false(a.had_route);
    assert_int_equal(modmta_addr_parse("<@a.example:x@b.example>", 0, &a,
                                       &end), 0);
    assert_true(a.had_route);
    assert_false(a.quoted);
    assert_false(a.is_literal);
    /* end_r may be NULL */
    assert_int_equal(modmta_addr_parse("<x@y>", 0, &a, NULL), 0);
}

static void
test_null_path(void **state)
{
    char buf[8] = "junk";
    const char *end;
    modmta_addr a;

    assert_int_equal(modmta_addr_parse("<> SIZE=10", NUL, &a, &end), 0);
    assert_true(a.is_null);
    assert_string_equal(a.local, "");
    assert_string_equal(a.domain, "");
    assert_string_equal(end, " SIZE=10");
    assert_int_equal(modmta_addr_format(&a, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    assert_int_equal(modmta_addr_parse("<>", 0, &a, &end), MODMTA_E_INVAL);
}

/* A string of n copies of c. */
static char *
fill(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

static void
test_local_limit(void **state)
{
    char local[200], in[400];
    modmta_addr a;

    snprintf(in, sizeof(in), "<%s@example.com>", fill(local, 'a', 64));
    assert_int_equal(modmta_addr_parse(in, 0, &a, NULL), 0);
    assert_int_equal(strlen(a.local), 64);
    snprintf(in, sizeof(in), "<%s@example.com>", fill(local, 'a', 65));
    assert_int_equal(modmta_addr_parse(in, 0, &a, NULL), MODMTA_E_LIMIT);
    /* Quotes count: 62 octets + 2 quotes = 64 fits, 63 + 2 does not. */
    snprintf(in, sizeof(in), "<\"%s\"@example.com>", fill(local, 'b', 62));
    assert_int_equal(modmta_addr_parse(in, 0, &a, NULL), 0);
    snprintf(in, sizeof(in), "<\"%s\"@example.com>", fill(local, 'b', 63));
    assert_int_equal(modmta_addr_parse(in, 0, &a, NULL), MODMTA_E_LIMIT);
    /* Escapes count as transmitted, and unescape in a.local. */
    snprintf(in, sizeof(in), "<\"%s\"@example.com>", fill(local, '\\', 62));
    assert_int_equal(modmta_addr_parse(in, 0, &a, NULL), 0);
    assert_int_equal(strlen(a.local), 31);
}

/* A domain of `labels` labels of `len` octets each. */
static char *
domain_of(char *buf, size_t labels, size_t len)
{
    size_t i, n = 0;

    for (i = 0; i < labels; i++) {
        if (i > 0)
            buf[n++] = '.';
        memset(buf + n, 'd', len);
        n += len;
    }
    buf[n] = '\0';
    return buf;
}

static void
test_domain_limit(void **state)
{
    char dom[600], in[700];
    modmta_addr a;

    snprintf(in, sizeof(in), "<u@%s>", domain_of(dom, 2, 63));
    assert_int_equal(modmta_addr_parse(in, 0, &a, NULL), 0);
    snprintf(in, sizeof(in), "<u@%s.com>", domain_of(dom, 1, 64));
    assert_int_equal(modmta_addr_parse(in, 0, &a, NULL), MODMTA_E_LIMIT);
    /* 4 * 63 + 3 dots = 255 octets: the domain fits, the path (259) not. */
    snprintf(in, sizeof(in), "<u@%s>", domain_of(dom, 4, 63));
    assert_int_equal(strlen(dom), 255);
    assert_int_equal(modmta_addr_parse(in, 0, &a, NULL), MODMTA_E_LIMIT);
    /* Bare, 2 + 255 = 257 octets still exceeds 256. */
    snprintf(in, sizeof(in), "u@%s", domain_of(dom, 4, 63));
    assert_int_equal(modmta_addr_parse(in, BARE, &a, NULL), MODMTA_E_LIMIT);
    /* 300 octets of domain. */
    snprintf(in, sizeof(in), "<u@%s>", domain_of(dom, 5, 59));
    assert_int_equal(modmta_addr_parse(in, 0, &a, NULL), MODMTA_E_LIMIT);
}

static void
test_path_limit(void **state)
{
    char local[100], dom[300], in[700];
    modmta_addr a;

    /* "<" + 64 + "@" + 189 + ">" = 256 octets: fits. */
    domain_of(dom, 3, 63);
    dom[189] = '\0';
    snprintf(in, sizeof(in), "<%s@%s>", fill(local, 'l', 64), dom);
    assert_int_equal(strlen(in), 256);
    assert_int_equal(modmta_addr_parse(in, 0, &a, NULL), 0);
    snprintf(in, sizeof(in), "<%s@%sx>", local, dom);
    assert_int_equal(strlen(in), 257);
    assert_int_equal(modmta_addr_parse(in, 0, &a, NULL), MODMTA_E_LIMIT);
}

static void
test_format_limit(void **state)
{
    char buf[17];
    modmta_addr a;

    assert_int_equal(modmta_addr_parse("<\"a b\"@example.com>", 0, &a,
                                       NULL), 0);
    /* "\"a b\"@example.com" is 17 octets: needs 18 with the NUL. */
    assert_int_equal(modmta_addr_format(&a, buf, sizeof(buf)),
                     MODMTA_E_LIMIT);
    assert_int_equal(modmta_addr_format(&a, buf, 0), MODMTA_E_LIMIT);
}

static void
test_split(void **state)
{
    char l[16], d[16];

    assert_int_equal(modmta_addr_split("a@b@example.com", l, sizeof(l), d,
                                       sizeof(d)), 0);
    assert_string_equal(l, "a@b");
    assert_string_equal(d, "example.com");
    assert_int_equal(modmta_addr_split("postmaster", l, sizeof(l), d,
                                       sizeof(d)), 0);
    assert_string_equal(l, "postmaster");
    assert_string_equal(d, "");
    /* an '@' inside quotes is the local part's */
    assert_int_equal(modmta_addr_split("\"a@b\"@ex.org", l, sizeof(l), d,
                                       sizeof(d)), 0);
    assert_string_equal(l, "\"a@b\"");
    assert_string_equal(d, "ex.org");
    assert_int_equal(modmta_addr_split("\"x@evil.test\"", l, sizeof(l), d,
                                       sizeof(d)), 0);
    assert_string_equal(l, "\"x@evil.test\"");
    assert_string_equal(d, "");
    assert_int_equal(modmta_addr_split("\"\\\"@x\"@y", l, sizeof(l), d,
                                       sizeof(d)), 0);
    assert_string_equal(l, "\"\\\"@x\"");
    assert_string_equal(d, "y");
    assert_int_equal(modmta_addr_split("averyverylonglocalpart@x", l,
                                       sizeof(l), d, sizeof(d)),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_addr_split("a@averyverylongdomain.example", l,
                                       sizeof(l), d, sizeof(d)),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_addr_split(NULL, l, sizeof(l), d, sizeof(d)),
                     MODMTA_E_INVAL);
}

static void
test_domain_equal(void **state)
{
    assert_true(modmta_domain_equal("Example.COM", "example.com"));
    assert_true(modmta_domain_equal("example.com.", "EXAMPLE.com"));
    assert_true(modmta_domain_equal("example.com", "example.com."));
    assert_false(modmta_domain_equal("example.com", "example.org"));
    assert_false(modmta_domain_equal("example.com", "xexample.com"));
    assert_false(modmta_domain_equal("example.com..", "example.com"));
    assert_false(modmta_domain_equal(NULL, "example.com"));
}

static void
splits(const char *addr, const char *delims, int rc, const char *base,
       const char *ext)
{
    char b[MODMTA_ADDR_PATH_MAX + 1], e[MODMTA_ADDR_LOCAL_MAX * 2 + 1];

    assert_int_equal(modmta_addr_split_extension(addr, delims, b, sizeof(b),
                                                 e, sizeof(e)), rc);
    assert_string_equal(b, base);
    assert_string_equal(e, ext);
}

static void
test_split_extension(void **state)
{
    char b[8], e[4];

    (void)state;
    splits("bob+lists@example.org", "+", 1, "bob@example.org", "lists");
    splits("bob+lists", "+", 1, "bob", "lists");
    /* the first delimiter cuts; several delimiter characters allowed */
    splits("bob+a+b@x.test", "+", 1, "bob@x.test", "a+b");
    splits("bob-x+y", "+-", 1, "bob", "x+y");
    splits("bob+x-y", "+-", 1, "bob", "x-y");
    /* none configured, none present */
    splits("bob+lists@x.test", NULL, 0, "bob+lists@x.test", "");
    splits("bob+lists@x.test", "", 0, "bob+lists@x.test", "");
    splits("bob@x.test", "+", 0, "bob@x.test", "");
    /* at the start: a name; at the end: an empty extension */
    splits("+bob@x.test", "+", 0, "+bob@x.test", "");
    splits("bob+@x.test", "+", 1, "bob@x.test", "");
    /* a delimiter in the domain does not count */
    splits("bob@a-b.test", "-", 0, "bob@a-b.test", "");
    /* quoted local parts and reserved names are never cut */
    splits("\"bob+x\"@x.test", "+", 0, "\"bob+x\"@x.test", "");
    /* nor a local part that needs quotes, in whatever form it comes:
     * quoted, unquoted with a space, a bare one holding an '@' */
    splits("team+a b@x.test", "+", 0, "team+a b@x.test", "");
    splits("\"team+a b\"@x.test", "+", 0, "\"team+a b\"@x.test", "");
    splits("a+b@c@x.test", "+", 0, "a+b@c@x.test", "");
    splits("a@b+c@x.test", "+", 0, "a@b+c@x.test", "");
    splits("a+b\\c@x.test", "+", 0, "a+b\\c@x.test", "");
    splits("b\xc3\xb6" "b+x@x.test", "+", 1, "b\xc3\xb6" "b@x.test", "x");
    splits("MAILER-DAEMON@x.test", "-", 0, "MAILER-DAEMON@x.test", "");
    splits("owner-list@x.test", "-", 0, "owner-list@x.test", "");
    splits("list-request@x.test", "-", 0, "list-request@x.test", "");
    splits("owner-list@x.test", "+", 0, "owner-list@x.test", "");
    splits("bob-x@x.test", "-", 1, "bob@x.test", "x");
    assert_int_equal(modmta_addr_split_extension("longername+x", "+", b,
                                                 sizeof(b), e, sizeof(e)),
                     MODMTA_E_LIMIT);
    assert_int_equal(modmta_addr_split_extension("a+long", "+", b,
                                                 sizeof(b), e, sizeof(e)),
                     MODMTA_E_LIMIT);
    assert_int_equal(modmta_addr_split_extension(NULL, "+", b, sizeof(b),
                                                 e, sizeof(e)),
                     MODMTA_E_INVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_flags_recorded),
        cmocka_unit_test(test_null_path),
        cmocka_unit_test(test_local_limit),
        cmocka_unit_test(test_domain_limit),
        cmocka_unit_test(test_path_limit),
        cmocka_unit_test(test_format_limit),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_split_extension),
        cmocka_unit_test(test_domain_equal),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
