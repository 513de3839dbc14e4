/* Unit tests of sdk/src/conf.c: declarative module options. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <modmta/conf.h>
#include <modmta/map.h>

#include "ctx_priv.h"

struct test_conf {
    char *directory;
    int fsync;
    long long limit;
    char **domains;
    modmta_map *users;
    json_t *extra;
};

static const modmta_opt test_opts[] = {
    {"directory", MODMTA_OPT_STRING, offsetof(struct test_conf, directory),
     MODMTA_OPT_REQUIRED},
    {"fsync", MODMTA_OPT_BOOL, offsetof(struct test_conf, fsync), 0},
    {"limit", MODMTA_OPT_INT, offsetof(struct test_conf, limit), 0},
    {"domains", MODMTA_OPT_STRLIST, offsetof(struct test_conf, domains), 0},
    {"users", MODMTA_OPT_MAP, offsetof(struct test_conf, users), 0},
    {"extra", MODMTA_OPT_JSON, offsetof(struct test_conf, extra), 0},
    {NULL, 0, 0, 0},
};

static int
setup(void **state)
{
    *state = modmta_host_new("mbox", "$.modules[2]", "mx.test", ".", NULL,
                             0);
    return *state == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
    modmta_host_free(*state);
    return 0;
}

/* Parse text into c (defaults set first); returns the result. */
static int
parse(void **state, const char *text, struct test_conf *c, modmta_err *err)
{
    json_t *j = json_loads(text, 0, NULL);
    int rc;

    assert_non_null(j);
    memset(c, 0, sizeof(*c));
    c->fsync = 1;
    c->limit = 42;
    memset(err, 0, sizeof(*err));
    rc = modmta_conf_parse(j, *state, test_opts, c, err);
    json_decref(j);
    return rc;
}

static void
test_all_types(void **state)
{
    struct test_conf c;
    modmta_err err;
    char *v;

    assert_int_equal(parse(state,
                           "{\"module\": \"store_mbox\", \"name\": \"m1\","
                           " \"hook_timeout\": \"2s\","
                           " \"on_hook_timeout\": \"continue\","
                           " \"directory\": \"/var/mail\", \"fsync\": false,"
                           " \"limit\": 1000000000000,"
                           " \"domains\": [\"a.example\", \"b.example\"],"
                           " \"users\": {\"bob\": \"1000\"},"
                           " \"extra\": {\"x\": [1, 2]}}",
                           &c, &err), 0);
    assert_string_equal(c.directory, "/var/mail");
    assert_int_equal(c.fsync, 0);
    assert_true(c.limit == 1000000000000LL);
    assert_non_null(c.domains);
    assert_string_equal(c.domains[0], "a.example");
    assert_string_equal(c.domains[1], "b.example");
    assert_null(c.domains[2]);
    assert_int_equal(modmta_map_lookup(c.users, "bob", &v), 1);
    assert_string_equal(v, "1000");
    modmta_free(v);
    assert_int_equal(json_array_size(json_object_get(c.extra, "x")), 2);
    modmta_conf_free(test_opts, &c);
    assert_null(c.directory);
    assert_null(c.domains);
    assert_null(c.users);
    assert_null(c.extra);
}

static void
test_defaults_kept(void **state)
{
    struct test_conf c;
    modmta_err err;

    assert_int_equal(parse(state, "{\"directory\": \"d\", \"domains\": []}",
                           &c, &err), 0);
    assert_int_equal(c.fsync, 1);
    assert_true(c.limit == 42);
    assert_non_null(c.domains);
    assert_null(c.domains[0]);
    assert_null(c.users);
    modmta_conf_free(test_opts, &c);
}

/* One rejected config: the path and message it gets. */
struct bad_case {
    const char *json;
    const char *path;
    const char *msg;
};

static const struct bad_case bad_cases[] = {
    {"{\"directory\": \"d\", \"fsynk\": true}", "$.modules[2].fsynk",
     "unknown key"},
    {"{\"fsync\": true}", "$.modules[2]",
     "missing required key \"directory\""},
    {"{\"directory\": 7}", "$.modules[2].directory", "expected a string"},
    {"{\"directory\": \"d\", \"fsync\": 1}", "$.modules[2].fsync",
     "expected true or false"},
    {"{\"directory\": \"d\", \"limit\": -1}", "$.modules[2].limit",
     "expected a non-negative integer"},
    {"{\"directory\": \"d\", \"limit\": 1.5}", "$.modules[2].limit",
     "expected a non-negative integer"},
    {"{\"directory\": \"d\", \"limit\": \"10\"}", "$.modules[2].limit",
     "expected a non-negative integer"},
    {"{\"directory\": \"d\", \"domains\": \"a.example\"}",
     "$.modules[2].domains", "expected an array of strings"},
    {"{\"directory\": \"d\", \"domains\": [\"a\", 2]}",
     "$.modules[2].domains[1]", "expected a string"},
    {"{\"directory\": \"d\", \"users\": {\"bob\": 1}}",
     "$.modules[2].users.bob", "expected a string or an array of strings"},
    {"[\"directory\"]", "$.modules[2]", "expected an object"},
};

static void
test_errors(void **state)
{
    struct test_conf c;
    modmta_err err;
    size_t i;

    for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        assert_int_equal(parse(state, bad_cases[i].json, &c, &err),
                         MODMTA_E_CONFIG);
        assert_string_equal(err.path, bad_cases[i].path);
        assert_string_equal(err.msg, bad_cases[i].msg);
        /* Nothing stored is left behind (ASan/valgrind check leaks). */
        assert_null(c.directory);
        assert_null(c.domains);
        assert_null(c.users);
        modmta_conf_free(test_opts, &c);
    }
}

static void
test_map_errors_name_key(void **state)
{
    struct test_conf c;
    modmta_err err;

    assert_int_equal(parse(state,
                           "{\"directory\": \"d\", \"users\": \"bogus:x\"}",
                           &c, &err), MODMTA_E_CONFIG);
    assert_string_equal(err.path, "$.modules[2].users");
    assert_non_null(strstr(err.msg, "unknown map type \"bogus\""));
    assert_int_equal(parse(state,
                           "{\"directory\": \"d\","
                           " \"users\": \"file:/nonexistent/users\"}",
                           &c, &err), MODMTA_E_CONFIG);
    assert_string_equal(err.path, "$.modules[2].users");
    assert_non_null(strstr(err.msg, "/nonexistent/users"));
}

/* A stored value replaces (and frees) a malloc'ed default. */
static void
test_replaces_default(void **state)
{
    struct test_conf c;
    modmta_err err;
    json_t *j = json_loads("{\"directory\": \"new\"}", 0, NULL);

    memset(&c, 0, sizeof(c));
    c.directory = strdup("old");
    assert_int_equal(modmta_conf_parse(j, *state, test_opts, &c, &err), 0);
    assert_string_equal(c.directory, "new");
    modmta_conf_free(test_opts, &c);
    json_decref(j);
}

/* Freeing nothing is a no-op: NULL lists and configs, a config whose
 * fields are all unset (nothing freed, other fields left as they are),
 * and a config freed twice (the first free set its pointers to NULL;
 * ASan would report a double free). */
static void
test_strlist_free_null(void **state)
{
    struct test_conf c, before;
    modmta_err err;

    modmta_strlist_free(NULL);
    modmta_conf_free(test_opts, NULL);
    memset(&c, 0, sizeof(c));
    modmta_conf_free(NULL, &c);
    c.fsync = 7;
    c.limit = 9;
    memcpy(&before, &c, sizeof(c));
    modmta_conf_free(test_opts, &c);
    assert_memory_equal(&c, &before, sizeof(c));

    assert_int_equal(parse(state, "{\"directory\": \"d\", \"domains\": []}",
                           &c, &err), 0);
    assert_non_null(c.domains);
    assert_null(c.domains[0]);
    modmta_conf_free(test_opts, &c);
    assert_null(c.directory);
    assert_null(c.domains);
    assert_int_equal(c.fsync, 1);
    assert_true(c.limit == 42);
    memcpy(&before, &c, sizeof(c));
    modmta_conf_free(test_opts, &c);
    assert_memory_equal(&c, &before, sizeof(c));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_types),
        cmocka_unit_test(test_defaults_kept),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_map_errors_name_key),
        cmocka_unit_test(test_replaces_default),
        cmocka_unit_test(test_strlist_free_null),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
