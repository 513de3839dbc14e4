/* Unit tests of the sized option tables (ABI 1.6): every type, good and
 * bad values, bounds, and every error of a section collected. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <modmta/conf.h>
#include <modmta/map.h>

#include "conf_priv.h"
#include "ctx_priv.h"

struct opts_conf {
    char *name;
    int on;
    long long count;
    long long conns;
    int mode;
    int level;
    unsigned mechs;
    long long wait_s;
    long long budget_ms;
    long long limit;
    char **list;
    json_t *extra;
};

static const modmta_option test_options[] = {
    MODMTA_OPTION_STRING("name", struct opts_conf, name, MODMTA_OPT_REQUIRED),
    MODMTA_OPTION_BOOL("on", struct opts_conf, on, 0),
    MODMTA_OPTION_INT("count", struct opts_conf, count, 0),
    MODMTA_OPTION_RANGE("conns", struct opts_conf, conns, 0, 1, 10000),
    MODMTA_OPTION_ENUM("mode", struct opts_conf, mode, 0, "fast", "safe"),
    MODMTA_OPTION_ENUM("level", struct opts_conf, level, MODMTA_OPT_ANYCASE,
                       "none", "may", "verify"),
    MODMTA_OPTION_ENUMSET("mechs", struct opts_conf, mechs,
                          MODMTA_OPT_ANYCASE, "PLAIN", "LOGIN", "CRAM-MD5"),
    MODMTA_OPTION_SECONDS("wait", struct opts_conf, wait_s, 0, 10, 86400),
    MODMTA_OPTION_MILLISECONDS("budget", struct opts_conf, budget_ms, 0, 1,
                               3600000),
    MODMTA_OPTION_SIZE("limit", struct opts_conf, limit, 0, 1024,
                       1LL << 30),
    MODMTA_OPTION_STRLIST("list", struct opts_conf, list, 0),
    MODMTA_OPTION_JSON("extra", struct opts_conf, extra, 0),
    MODMTA_OPTION_END
};

static int
setup(void **state)
{
    *state = modmta_host_new("t", "$.modules[2]", "mx.test", ".", NULL, 0);
    return *state == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
    modmta_host_free(*state);
    return 0;
}

/* Parse text into c with defaults; a fresh host each time, in *state. */
static int
parse(void **state, const char *text, struct opts_conf *c, modmta_err *err)
{
    json_t *j = json_loads(text, 0, NULL);
    int rc;

    assert_non_null(j);
    modmta_host_free(*state);
    *state = modmta_host_new("t", "$.modules[2]", "mx.test", ".", NULL, 0);
    assert_non_null(*state);
    memset(c, 0, sizeof(*c));
    memset(err, 0, sizeof(*err));
    c->conns = 100;
    c->mode = 1;
    c->mechs = 3;
    c->wait_s = 300;
    c->budget_ms = 30000;
    c->limit = 10 << 20;
    rc = modmta_conf_parse_options(j, *state, test_options, c, err);
    json_decref(j);
    return rc;
}

/* The error recorded on the host for path, or fail. */
static const char *
error_at(void **state, const char *path)
{
    for (size_t i = 0; i < conf_errors_count(*state); i++)
        if (strcmp(conf_errors_get(*state, i)->path, path) == 0)
            return conf_errors_get(*state, i)->msg;
    fail_msg("no error at %s", path);
    return NULL;
}

static void
test_good_values(void **state)
{
    struct opts_conf c;
    modmta_err err;

    assert_int_equal(parse(state, "{\"name\": \"x\", \"on\": true, "
                           "\"count\": 7, \"conns\": 10000, \"mode\": "
                           "\"fast\", \"level\": \"VERIFY\", \"mechs\": "
                           "[\"cram-md5\", \"PLAIN\", \"plain\"], \"wait\": "
                           "\"4h\", \"budget\": \"500ms\", \"limit\": "
                           "\"512k\", \"list\": [\"a\", \"b\"], \"extra\": "
                           "{\"k\": 1}, \"module\": \"t\", \"hook_timeout\": "
                           "\"2s\"}", &c, &err), 0);
    assert_string_equal(c.name, "x");
    assert_int_equal(c.on, 1);
    assert_int_equal(c.count, 7);
    assert_int_equal(c.conns, 10000);
    assert_int_equal(c.mode, 0);
    assert_int_equal(c.level, 2);
    assert_int_equal(c.mechs, 1u << 0 | 1u << 2);
    assert_int_equal(c.wait_s, 14400);
    assert_int_equal(c.budget_ms, 500);
    assert_int_equal(c.limit, 524288);
    assert_string_equal(c.list[1], "b");
    assert_non_null(json_object_get(c.extra, "k"));
    assert_int_equal(conf_errors_count(*state), 0);
    modmta_conf_free_options(test_options, &c);
    assert_null(c.name);
    assert_null(c.list);
    assert_null(c.extra);
}

/* Absent keys keep the defaults; integers are seconds or bytes. */
static void
test_defaults_and_integers(void **state)
{
    struct opts_conf c;
    modmta_err err;

    assert_int_equal(parse(state, "{\"name\": \"x\"}", &c, &err), 0);
    assert_int_equal(c.conns, 100);
    assert_int_equal(c.mode, 1);
    assert_int_equal(c.mechs, 3);
    assert_int_equal(c.wait_s, 300);
    assert_int_equal(c.limit, 10 << 20);
    modmta_conf_free_options(test_options, &c);
    assert_int_equal(parse(state, "{\"name\": \"x\", \"wait\": 10, "
                           "\"budget\": 2, \"limit\": 1024, \"conns\": 1}",
                           &c, &err), 0);
    assert_int_equal(c.wait_s, 10);
    assert_int_equal(c.budget_ms, 2000);
    assert_int_equal(c.limit, 1024);
    assert_int_equal(c.conns, 1);
    modmta_conf_free_options(test_options, &c);
    assert_int_equal(parse(state, "{\"name\": \"x\", \"wait\": \"1d\", "
                           "\"budget\": \"1h\", \"limit\": \"1G\"}", &c,
                           &err), 0);
    assert_int_equal(c.wait_s, 86400);
    assert_int_equal(c.budget_ms, 3600000);
    assert_int_equal(c.limit, 1LL << 30);
    modmta_conf_free_options(test_options, &c);
}

static const struct bad_value {
    const char *json;     /* the value of key */
    const char *key;
    const char *msg;
} bad_values[] = {
    {"\"yes\"", "on", "expected true or false"},
    {"-1", "count", "expected a non-negative integer"},
    {"1.5", "count", "expected a non-negative integer"},
    {"0", "conns", "0 is out of range 1..10000"},
    {"10001", "conns", "10001 is out of range 1..10000"},
    {"\"5\"", "conns", "expected an integer from 1 to 10000"},
    {"\"FAST\"", "mode", "\"FAST\": expected one of \"fast\", \"safe\""},
    {"1", "mode", "expected one of \"fast\", \"safe\""},
    {"\"PLAIN\"", "mechs", "expected an array of \"PLAIN\", \"LOGIN\", "
                           "\"CRAM-MD5\""},
    {"\"5x\"", "wait", "expected a duration (\"500ms\", \"30s\", \"15m\", "
                       "\"4h\", \"2d\", or an integer of seconds)"},
    {"-5", "wait", "expected a duration"},
    {"true", "wait", "expected a duration"},
    {"\"9s\"", "wait", "9s is out of range 10s..1d"},
    {"86401", "wait", "86401s is out of range 10s..1d"},
    {"\"1500ms\"", "wait", "1500ms is not a whole number of seconds"},
    {"\"0ms\"", "budget", "0s is out of range 1ms..1h"},
    {"\"2h\"", "budget", "2h is out of range 1ms..1h"},
    {"\"1023\"", "limit", "1023 is out of range 1k..1G"},
    {"\"2G\"", "limit", "2G is out of range 1k..1G"},
    {"\"10 M\"", "limit", "expected a size (\"512k\", \"10M\", \"1G\", or "
                          "an integer of bytes)"},
    {"{}", "list", "expected an array of strings"},
    {"7", "name", "expected a string"},
};

static void
test_bad_values(void **state)
{
    char text[300], path[100];
    struct opts_conf c;
    modmta_err err;

    for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
        const struct bad_value *b = &bad_values[i];

        snprintf(text, sizeof(text), "{\"name\": \"x\", \"%s\": %s}",
                 strcmp(b->key, "name") == 0 ? "list" : b->key,
                 strcmp(b->key, "name") == 0 ? "[]" : b->json);
        if (strcmp(b->key, "name") == 0)
            snprintf(text, sizeof(text), "{\"name\": %s}", b->json);
        assert_int_equal(parse(state, text, &c, &err), MODMTA_E_CONFIG);
        snprintf(path, sizeof(path), "$.modules[2].%s", b->key);
        assert_string_equal(err.path, path);
        if (strstr(err.msg, b->msg) == NULL)
            fail_msg("%s: \"%s\" lacks \"%s\"", text, err.msg, b->msg);
        assert_int_equal(conf_errors_count(*state), 1);
        /* Nothing the call stored is left. */
        assert_null(c.name);
        assert_null(c.list);
    }
}

/* Every error of the section, each with its path, the first in err. */
static void
test_several_errors(void **state)
{
    struct opts_conf c;
    modmta_err err;

    assert_int_equal(parse(state, "{\"bogus\": 1, \"on\": 1, \"conns\": 0, "
                           "\"mechs\": [\"PLAIN\", \"NTLM\", 3], \"wait\": "
                           "\"1y\", \"list\": [\"a\", 2, \"c\", {}], "
                           "\"extra\": [1]}", &c, &err), MODMTA_E_CONFIG);
    assert_string_equal(err.path, "$.modules[2].bogus");
    assert_string_equal(err.msg, "unknown key");
    assert_string_equal(error_at(state, "$.modules[2]"),
                        "missing required key \"name\"");
    assert_string_equal(error_at(state, "$.modules[2].on"),
                        "expected true or false");
    assert_string_equal(error_at(state, "$.modules[2].conns"),
                        "0 is out of range 1..10000");
    assert_non_null(strstr(error_at(state, "$.modules[2].mechs[1]"),
                           "\"NTLM\": expected one of"));
    assert_non_null(error_at(state, "$.modules[2].mechs[2]"));
    assert_non_null(error_at(state, "$.modules[2].wait"));
    assert_string_equal(error_at(state, "$.modules[2].list[1]"),
                        "expected a string");
    assert_string_equal(error_at(state, "$.modules[2].list[3]"),
                        "expected a string");
    assert_int_equal(conf_errors_count(*state), 9);
    /* The JSON option was stored, then undone. */
    assert_null(c.extra);
    assert_null(c.list);
    /* A module's own check adds to the list. */
    assert_int_equal(modmta_conf_error(*state, &err, NULL, "own check %d",
                                       1), MODMTA_E_CONFIG);
    assert_string_equal(err.path, "$.modules[2]");
    assert_string_equal(err.msg, "own check 1");
    assert_int_equal(conf_errors_count(*state), 10);
}

/* The 1.0 table goes through the same parser: all errors too. */
struct old_conf {
    char *dir;
    long long n;
};

static const modmta_opt old_opts[] = {
    {"dir", MODMTA_OPT_STRING, offsetof(struct old_conf, dir),
     MODMTA_OPT_REQUIRED},
    {"n", MODMTA_OPT_INT, offsetof(struct old_conf, n), 0},
    {NULL, 0, 0, 0},
};

static void
test_old_table(void **state)
{
    json_t *j = json_loads("{\"n\": -1, \"x\": 1}", 0, NULL);
    struct old_conf c = {NULL, 5};
    modmta_err err;

    assert_int_equal(modmta_conf_parse(j, *state, old_opts, &c, &err),
                     MODMTA_E_CONFIG);
    assert_int_equal(conf_errors_count(*state), 3);
    assert_string_equal(error_at(state, "$.modules[2].x"), "unknown key");
    assert_string_equal(error_at(state, "$.modules[2].n"),
                        "expected a non-negative integer");
    json_decref(j);
    j = json_loads("{\"dir\": \"/d\", \"n\": 3}", 0, NULL);
    assert_int_equal(modmta_conf_parse(j, NULL, old_opts, &c, &err), 0);
    assert_string_equal(c.dir, "/d");
    assert_int_equal(c.n, 3);
    modmta_conf_free(old_opts, &c);
    assert_null(c.dir);
    json_decref(j);
}

/* An entry written by an older SDK is shorter: its fields are read, the
 * newer ones count as 0; the table's stride is the entry's size. */
struct short_option {
    size_t size;
    const char *key;
    modmta_opt_type type;
    size_t offset;
    unsigned flags;
};

static void
test_short_entries(void **state)
{
    const struct short_option t[] = {
        {sizeof(t[0]), "name", MODMTA_OPT_STRING,
         offsetof(struct opts_conf, name), 0},
        {sizeof(t[0]), "on", MODMTA_OPT_BOOL, offsetof(struct opts_conf, on),
         0},
        {sizeof(t[0]), NULL, 0, 0, 0},
    };
    json_t *j = json_loads("{\"name\": \"n\", \"on\": true}", 0, NULL);
    struct opts_conf c = {0};
    modmta_err err;

    assert_int_equal(modmta_conf_parse_options(j, *state,
                                               (const modmta_option *)t, &c,
                                               &err), 0);
    assert_string_equal(c.name, "n");
    assert_int_equal(c.on, 1);
    modmta_conf_free_options((const modmta_option *)t, &c);
    assert_null(c.name);
    json_decref(j);
}

/* An entry shorter than any SDK wrote (no type, no offset): a clear
 * error naming the module, never its key read as garbage. */
struct broken_option {
    size_t size;
    const char *key;
};

static void
test_too_short_entries(void **state)
{
    const struct broken_option t[] = {
        {sizeof(t[0]), "name"},
        {sizeof(t[0]), NULL},
    };
    const struct short_option ok_then_bad[] = {
        {sizeof(ok_then_bad[0]), "name", MODMTA_OPT_STRING,
         offsetof(struct opts_conf, name), 0},
        {sizeof(size_t), NULL, 0, 0, 0},
    };
    json_t *j = json_loads("{\"name\": \"n\"}", 0, NULL);
    struct opts_conf c = {0};
    modmta_err err;

    assert_int_equal(modmta_conf_parse_options(j, *state,
                                               (const modmta_option *)t, &c,
                                               &err), MODMTA_E_CONFIG);
    assert_string_equal(err.path, "$.modules[2]");
    assert_non_null(strstr(err.msg, "module t: its option table's entry 0 "
                                    "has size 16"));
    assert_null(c.name);
    /* the second entry is the short one; nothing is stored */
    assert_int_equal(modmta_conf_parse_options(
                         j, *state, (const modmta_option *)ok_then_bad, &c,
                         &err), MODMTA_E_CONFIG);
    assert_non_null(strstr(err.msg, "entry 1 has size 8"));
    assert_null(c.name);
    /* freeing such a table touches nothing */
    modmta_conf_free_options((const modmta_option *)t, &c);
    json_decref(j);
}

/* No host: err_r alone, holding the first error. */
static void
test_no_host(void **state)
{
    json_t *j = json_loads("{\"on\": 2, \"conns\": 0}", 0, NULL);
    struct opts_conf c = {0};
    modmta_err err;

    (void)state;
    assert_int_equal(modmta_conf_parse_options(j, NULL, test_options, &c,
                                               &err), MODMTA_E_CONFIG);
    assert_string_equal(err.path, "$");
    assert_string_equal(err.msg, "missing required key \"name\"");
    json_decref(j);
}

/* A host records at most CONF_ERRORS_MAX errors and counts the rest. */
static void
test_error_cap(void **state)
{
    modmta_err err;

    for (int i = 0; i < CONF_ERRORS_MAX + 5; i++)
        modmta_conf_error(*state, &err, NULL, "e%d", i);
    assert_int_equal(conf_errors_count(*state), CONF_ERRORS_MAX);
    assert_int_equal(conf_errors_dropped(*state), 5);
    assert_string_equal(conf_errors_get(*state, 0)->msg, "e0");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults_and_integers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_several_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_short_entries, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_no_host, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_cap, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
