/* Unit tests of the "aliases:" map backend (sdk/src/map_aliases.c) and
 * modmta_map_list_split(): the how-tos' aliases files verbatim, the
 * aliases(5) syntax, file:line errors, re-read on change. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include <modmta/modmta.h>
#include <files.h>

struct fx {
    char dir[256];
    char path[512];
};

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));

    if (fx == NULL)
        return -1;
    modmta_test_tmpdir(fx->dir, sizeof(fx->dir), "test_map_aliases");
    snprintf(fx->path, sizeof(fx->path), "%s/aliases", fx->dir);
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;

    modmta_test_rmtree(fx->dir);
    free(fx);
    return 0;
}

static modmta_map *
open_map(const struct fx *fx, modmta_err *err)
{
    char spec[600];
    json_t *j;
    modmta_map *m;

    snprintf(spec, sizeof(spec), "aliases:%s", fx->path);
    j = json_string(spec);
    memset(err, 0, sizeof(*err));
    m = modmta_map_open(j, "$.modules[0].map", err);
    json_decref(j);
    return m;
}

static void
assert_value(modmta_map *m, const char *key, const char *want)
{
    char *v = NULL;
    int r = modmta_map_lookup(m, key, &v);

    if (want == NULL) {
        assert_int_equal(r, 0);
        return;
    }
    assert_int_equal(r, 1);
    assert_string_equal(v, want);
    modmta_free(v);
}

/* ---- the how-tos, verbatim ---- */

static void
test_howto_sendmail(void **state)
{
    struct fx *fx = *state;
    modmta_err err;
    modmta_map *m;

    /* 000: "为user1账号设置别名为toto,为user2账号设置别名为popo" */
    modmta_test_replace_file(fx->path, "toto:   user1\n"
                             "popo:   user2\n"
                             "group: net1,ne2,net3\n");
    m = open_map(fx, &err);
    assert_non_null(m);
    assert_value(m, "toto", "user1");
    assert_value(m, "popo", "user2");
    assert_value(m, "group", "net1, ne2, net3");
    assert_value(m, "user1", NULL);
    modmta_map_close(m);
}

static void
test_howto_nested(void **state)
{
    struct fx *fx = *state;
    modmta_err err;
    modmta_map *m;

    /* 002: white space before the colon, and nested lists. */
    modmta_test_replace_file(fx->path, "user2: user1,user2\n"
                             "user3: user1,user3\n"
                             "user4: user1,user4\n"
                             "it : it1,it2,it3\n"
                             "hr : hr1,hr2,hr3\n"
                             "cw : cw1,cw2,cw3\n"
                             "all : it,hr,cw\n");
    m = open_map(fx, &err);
    assert_non_null(m);
    assert_value(m, "user2", "user1, user2");
    assert_value(m, "all", "it, hr, cw");
    assert_value(m, "it", "it1, it2, it3");
    assert_value(m, "cw", "cw1, cw2, cw3");
    modmta_map_close(m);
}

static void
test_howto_system(void **state)
{
    struct fx *fx = *state;
    modmta_err err;
    modmta_map *m;

    /* 004: the system aliases, blank lines between them. */
    modmta_test_replace_file(fx->path, "MAILER-DAEMON: postmaster\n\n"
                             "postmaster: root\n\n"
                             "bin: root\n\n"
                             "daemon: root\n\n"
                             "nobody: root\n");
    m = open_map(fx, &err);
    assert_non_null(m);
    assert_value(m, "mailer-daemon", "postmaster");
    assert_value(m, "MAILER-DAEMON", "postmaster");
    assert_value(m, "Postmaster", "root");
    assert_value(m, "nobody", "root");
    modmta_map_close(m);
}

/* ---- syntax ---- */

static void
test_syntax(void **state)
{
    struct fx *fx = *state;
    modmta_err err;
    modmta_map *m;

    modmta_test_replace_file(fx->path,
               "# staff lists\n"
               "staff: alice,\n"
               "  bob,\n"
               "\tcarol@example.org\n"
               "   # an indented comment\n"
               "\n"
               "\"foo bar\": x\n"
               "\"odd\\\"name\" : y\n"
               "prog: \"|/usr/bin/vacation -a x\", /var/log/mail.copy\n"
               "inc: :include:/etc/modmta/lists/inc, \\me\n"
               "First: one\n"
               "first: two\n");
    m = open_map(fx, &err);
    assert_non_null(m);
    assert_value(m, "staff", "alice, bob, carol@example.org");
    assert_value(m, "foo bar", "x");
    assert_value(m, "odd\"name", "y");
    assert_value(m, "prog",
                 "\"|/usr/bin/vacation -a x\", /var/log/mail.copy");
    assert_value(m, "inc", ":include:/etc/modmta/lists/inc, \\me");
    /* duplicate: the first one stays (and a warning is logged) */
    assert_value(m, "FIRST", "one");
    modmta_map_close(m);
}

static void
check_error(const struct fx *fx, const char *text, unsigned line,
            const char *what)
{
    char want[600];
    modmta_err err;
    modmta_map *m;

    modmta_test_replace_file(fx->path, text);
    m = open_map(fx, &err);
    assert_null(m);
    snprintf(want, sizeof(want), "%s:%u: ", fx->path, line);
    if (strstr(err.msg, want) == NULL || strstr(err.msg, what) == NULL)
        fail_msg("got \"%s\", want \"%s...%s\"", err.msg, want, what);
    assert_string_equal(err.path, "$.modules[0].map");
}

static void
test_errors(void **state)
{
    struct fx *fx = *state;

    check_error(fx, "a: b\n\nno colon here\n", 3, "colon");
    check_error(fx, "  leading: b\n", 1, "continuation");
    check_error(fx, "# c\nempty:\n", 2, "no targets");
    check_error(fx, "a: b\nq: \"|cmd x\n", 2, "unbalanced");
    check_error(fx, "a: b\n\"q: c\n", 2, "unbalanced");
    check_error(fx, "x: a,\n   b\ny: :include:lists/x\n", 3, "absolute");
    check_error(fx, ": b\n", 1, "colon");
}

static void
test_missing_file(void **state)
{
    struct fx *fx = *state;
    modmta_err err;

    assert_null(open_map(fx, &err));
    assert_non_null(strstr(err.msg, fx->path));
}

/* ---- re-read on change ---- */

/* The file is looked at at most once a second, on the test's clock
 * (modmta_test_reload_clock): make the next lookup look. */
static void
due(void)
{
    modmta_test_reload_advance(MODMTA_RELOAD_INTERVAL_MS);
}

static void
test_reload(void **state)
{
    struct fx *fx = *state;
    modmta_err err;
    modmta_map *m;

    modmta_test_replace_file(fx->path, "list: a, b\n");
    modmta_test_reload_clock();
    m = open_map(fx, &err);
    assert_non_null(m);
    assert_value(m, "list", "a, b");
    modmta_test_replace_file(fx->path, "list: a, b, c\nnew: x\n");
    assert_value(m, "list", "a, b");
    due();
    assert_value(m, "list", "a, b, c");
    assert_value(m, "new", "x");

    /* A broken edit: the old table stays, however long we look. */
    modmta_test_replace_file(fx->path, "list: a\nbroken line\n");
    due();
    assert_value(m, "list", "a, b, c");
    due();
    assert_value(m, "new", "x");

    /* The file removed: the old table stays too. */
    unlink(fx->path);
    due();
    assert_value(m, "new", "x");
    due();
    assert_value(m, "new", "x");

    modmta_test_replace_file(fx->path, "list: z\n");
    due();
    assert_value(m, "list", "z");
    assert_value(m, "new", NULL);
    modmta_map_close(m);
}

/* ---- list splitting ---- */

static void
assert_split(const char *in, const char *const *want)
{
    modmta_err err;
    char **l = modmta_map_list_split(in, &err);
    size_t i;

    assert_non_null(l);
    for (i = 0; want[i] != NULL; i++) {
        assert_non_null(l[i]);
        assert_string_equal(l[i], want[i]);
    }
    assert_null(l[i]);
    modmta_strlist_free(l);
}

static void
test_split(void **state)
{
    modmta_err err;

    (void)state;
    assert_split("a, b,c", (const char *const[]){"a", "b", "c", NULL});
    assert_split("  ,, a ,,", (const char *const[]){"a", NULL});
    assert_split("", (const char *const[]){NULL});
    assert_split("\"|cmd a, b\", x",
                 (const char *const[]){"|cmd a, b", "x", NULL});
    assert_split("\"a\\\"b\\\\c\"",
                 (const char *const[]){"a\"b\\c", NULL});
    assert_split("\\user, user@example.com",
                 (const char *const[]){"\\user", "user@example.com", NULL});
    assert_split("a\nb\tc", (const char *const[]){"a", "b", "c", NULL});
    /* quotes around a part only are the address's: kept as written */
    assert_split("\"john smith\"@example.org, \"a\\\"b\"@x, \"p\"q\"r\"",
                 (const char *const[]){"\"john smith\"@example.org",
                 "\"a\\\"b\"@x", "\"p\"q\"r\"", NULL});
    assert_null(modmta_map_list_split("a, \"b", &err));
    assert_non_null(strstr(err.msg, "unbalanced"));
}

/* An include file's worth of 200,000 addresses, one a line: every one
 * in order (the list grows geometrically; grown by one element at a
 * time it took minutes under ASan). */
static void
test_split_large(void **state)
{
    enum { N = 200000 };
    char *text = malloc((size_t)N * 24), *p = text, name[24];
    char **l;
    modmta_err err;
    size_t i;

    (void)state;
    assert_non_null(text);
    for (i = 0; i < N; i++)
        p += sprintf(p, "u%zu@example.test\n", i);
    l = modmta_map_list_split(text, &err);
    assert_non_null(l);
    for (i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "u%zu@example.test", i);
        assert_non_null(l[i]);
        assert_string_equal(l[i], name);
    }
    assert_null(l[N]);
    modmta_strlist_free(l);
    free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_howto_sendmail, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_howto_nested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_howto_system, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_split_large),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
