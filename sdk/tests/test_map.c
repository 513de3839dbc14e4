/* Unit tests of sdk/src/map*.c: registry, inline, file: and cidr: maps. */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <files.h>

#include <modmta/ctx.h>
#include <modmta/map.h>
#include <modmta/reload.h>

#ifndef TEST_DATA_DIR
#error TEST_DATA_DIR must name sdk/tests/data
#endif

/* ---- helpers ---- */

static modmta_map *
open_spec(const char *spec, modmta_err *err)
{
    json_t *j = json_string(spec);
    modmta_map *m;

    memset(err, 0, sizeof(*err));
    m = modmta_map_open(j, "$.modules[1].map", err);
    json_decref(j);
    return m;
}

static modmta_map *
open_json(const char *text, modmta_err *err)
{
    json_t *j = json_loads(text, 0, NULL);
    modmta_map *m;

    assert_non_null(j);
    memset(err, 0, sizeof(*err));
    m = modmta_map_open(j, "$.m", err);
    json_decref(j);
    return m;
}

/* Assert that key is found with value (or not found when value is NULL). */
static void
expect(modmta_map *m, const char *key, const char *value)
{
    char *v = (char *)"unset";
    int rc = modmta_map_lookup(m, key, &v);

    if (value == NULL) {
        if (rc != 0)
            fail_msg("%s: \"%s\": rc %d, expected not found",
                     modmta_map_name(m), key, rc);
        assert_null(v);
        return;
    }
    if (rc != 1)
        fail_msg("%s: \"%s\": rc %d, expected \"%s\"", modmta_map_name(m),
                 key, rc, value);
    assert_string_equal(v, value);
    modmta_free(v);
}

static void
data_path(char *buf, size_t size, const char *name, const char *ext)
{
    snprintf(buf, size, "%s/%s%s", TEST_DATA_DIR, name, ext);
}

/* Check every "key<TAB>=value" / "key<TAB>-" line of NAME.ref against the
 * map TYPE:NAME.in. */
static void
golden_lookups(const char *type, const char *name)
{
    char in[512], ref[512], spec[600], line[512], *tab;
    modmta_err err;
    modmta_map *m;
    FILE *f;
    int n = 0;

    data_path(in, sizeof(in), name, ".in");
    data_path(ref, sizeof(ref), name, ".ref");
    snprintf(spec, sizeof(spec), "%s:%s", type, in);
    m = open_spec(spec, &err);
    if (m == NULL)
        fail_msg("%s: %s", err.path, err.msg);
    assert_string_equal(modmta_map_name(m), spec);
    assert_non_null(f = fopen(ref, "r"));
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        assert_non_null(tab = strchr(line, '\t'));
        *tab++ = '\0';
        expect(m, line, *tab == '=' ? tab + 1 : NULL);
        n++;
    }
    fclose(f);
    assert_true(n > 5);
    modmta_map_close(m);
}

/* TYPE:NAME.in must fail to open with "PATH:" + the line of NAME.ref. */
static void
golden_error(const char *type, const char *name)
{
    char in[512], ref[512], spec[600], line[512], want[1100];
    modmta_err err;
    FILE *f;

    data_path(in, sizeof(in), name, ".in");
    data_path(ref, sizeof(ref), name, ".ref");
    snprintf(spec, sizeof(spec), "%s:%s", type, in);
    assert_non_null(f = fopen(ref, "r"));
    assert_non_null(fgets(line, sizeof(line), f));
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    snprintf(want, sizeof(want), "%s:%s", in, line);
    assert_null(open_spec(spec, &err));
    assert_string_equal(err.path, "$.modules[1].map");
    assert_string_equal(err.msg, want);
}

/* ---- golden files ---- */

static void
test_file_golden(void **state)
{
    golden_lookups("file", "file_table");
}

static void
test_cidr_golden(void **state)
{
    golden_lookups("cidr", "cidr_table");
}

static void
test_golden_errors(void **state)
{
    static const char *const cases[][2] = {
        {"file", "file_novalue"},  {"file", "file_novalue_eof"},
        {"file", "file_orphan"},   {"cidr", "cidr_hostbits"},
        {"cidr", "cidr_hostbits6"}, {"cidr", "cidr_prefix"},
        {"cidr", "cidr_prefix6"},  {"cidr", "cidr_prefix_junk"},
        {"cidr", "cidr_network"},  {"cidr", "cidr_novalue"},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        golden_error(cases[i][0], cases[i][1]);
}

/* ---- specs and errors ---- */

static void
test_missing_file(void **state)
{
    modmta_err err;

    assert_null(open_spec("file:/nonexistent/modmta-map", &err));
    assert_string_equal(err.path, "$.modules[1].map");
    assert_non_null(strstr(err.msg, "/nonexistent/modmta-map"));
    assert_non_null(strstr(err.msg, "No such file"));
    assert_null(open_spec("cidr:/nonexistent/modmta-cidr", &err));
    assert_non_null(strstr(err.msg, "/nonexistent/modmta-cidr"));
    assert_null(open_spec("file:", &err));
    assert_string_equal(err.path, "$.modules[1].map");
}

static void
test_bad_spec(void **state)
{
    modmta_err err;
    json_t *j;

    assert_null(open_spec("nosuch:/etc/x", &err));
    assert_string_equal(err.path, "$.modules[1].map");
    assert_non_null(strstr(err.msg, "unknown map type \"nosuch\""));
    assert_non_null(strstr(err.msg, "file, cidr"));
    assert_null(open_spec("/etc/modmta/access", &err));
    assert_non_null(strstr(err.msg, "no type"));
    assert_null(open_spec(":x", &err));
    assert_non_null(strstr(err.msg, "no type"));
    j = json_integer(3);
    memset(&err, 0, sizeof(err));
    assert_null(modmta_map_open(j, "$.x", &err));
    assert_string_equal(err.path, "$.x");
    json_decref(j);
}

static void
test_inline_object(void **state)
{
    modmta_err err;
    modmta_map *m;

    m = open_json("{\"Postmaster@Example.com\": \"root\","
                  " \"staff\": [\"alice\", \"bob\", \"carol\"],"
                  " \"empty\": [], \"blank\": \"\"}", &err);
    assert_non_null(m);
    assert_string_equal(modmta_map_name(m), "inline");
    expect(m, "postmaster@example.com", "root");
    expect(m, "POSTMASTER@EXAMPLE.COM", "root");
    expect(m, "staff", "alice, bob, carol");
    expect(m, "empty", "");
    expect(m, "blank", "");
    expect(m, "nobody", NULL);
    assert_int_equal(modmta_map_lookup(m, "staff", NULL), 1);
    assert_int_equal(modmta_map_lookup(m, "nobody", NULL), 0);
    assert_int_equal(modmta_map_lookup(m, NULL, NULL), MODMTA_E_INVAL);
    modmta_map_close(m);
}

static void
test_inline_set(void **state)
{
    modmta_err err;
    modmta_map *m;

    m = open_json("[\"example.com\", \"Example.ORG\"]", &err);
    assert_non_null(m);
    expect(m, "example.com", "");
    expect(m, "example.org", "");
    expect(m, "example.net", NULL);
    modmta_map_close(m);
    m = open_json("[]", &err);
    assert_non_null(m);
    expect(m, "", NULL);
    modmta_map_close(m);
}

static void
test_inline_errors(void **state)
{
    modmta_err err;

    assert_null(open_json("{\"a\": \"x\", \"b\": 1}", &err));
    assert_string_equal(err.path, "$.m.b");
    assert_string_equal(err.msg, "expected a string or an array of strings");
    assert_null(open_json("{\"k\": [\"a\", null]}", &err));
    assert_string_equal(err.path, "$.m.k[1]");
    assert_string_equal(err.msg, "expected a string");
    assert_null(open_json("[\"a\", \"b\", {}]", &err));
    assert_string_equal(err.path, "$.m[2]");
    assert_string_equal(err.msg, "expected a string");
}

/* ---- custom backends ---- */

static void *
echo_open(const char *arg, const char *json_path, modmta_err *err_r)
{
    if (strcmp(arg, "fail") == 0) {
        modmta_err_set(err_r, json_path, "echo refuses");
        return NULL;
    }
    return strdup(arg);
}

static int
echo_lookup(void *state, const char *key, char **value_r)
{
    if (strcmp(key, "down") == 0)
        return MODMTA_E_TEMP;
    if (value_r != NULL && asprintf(value_r, "%s/%s", (char *)state, key) < 0)
        return MODMTA_E_NOMEM;
    return 1;
}

static void
test_register(void **state)
{
    static const modmta_map_backend echo = {
        .type = "echo", .open = echo_open, .lookup = echo_lookup,
        .close = free,
    };
    modmta_map_backend dup = echo;
    modmta_err err;
    modmta_map *m;

    assert_int_equal(modmta_map_register(&echo), 0);
    assert_int_equal(modmta_map_register(&echo), MODMTA_E_INVAL);
    dup.type = "file";
    assert_int_equal(modmta_map_register(&dup), MODMTA_E_INVAL);
    dup.type = "a:b";
    assert_int_equal(modmta_map_register(&dup), MODMTA_E_INVAL);
    dup.type = "partial";
    dup.lookup = NULL;
    assert_int_equal(modmta_map_register(&dup), MODMTA_E_INVAL);

    assert_non_null(m = open_spec("echo:pre:fix", &err));
    assert_string_equal(modmta_map_name(m), "echo:pre:fix");
    expect(m, "k", "pre:fix/k");
    assert_int_equal(modmta_map_lookup(m, "down", NULL), MODMTA_E_TEMP);
    modmta_map_close(m);
    assert_null(open_spec("echo:fail", &err));
    assert_string_equal(err.msg, "echo refuses");
    assert_null(open_spec("nosuch:x", &err));
    assert_non_null(strstr(err.msg, "echo"));
}

/* ---- re-reading a changed file ---- */

/* The stat() of a file: map is at most once a second, on the test's
 * clock (modmta_test_reload_clock): make the next lookup look. */
static void
wait_recheck(void)
{
    modmta_test_reload_advance(MODMTA_RELOAD_INTERVAL_MS);
}

/* Run one lookup with stderr captured in buf. */
static void
lookup_capturing(modmta_map *m, const char *key, const char *value,
                 char *buf, size_t size)
{
    char path[] = "/tmp/modmta-test-map-log-XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    ssize_t n;

    assert_true(fd >= 0 && saved >= 0);
    fflush(stderr);
    dup2(fd, 2);
    expect(m, key, value);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    n = pread(fd, buf, size - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
}

static void
test_file_reload(void **state)
{
    char dir[64], path[128], spec[140];
    char log[4096], want[200];
    modmta_err err;
    modmta_map *m;

    modmta_test_tmpdir(dir, sizeof(dir), "modmta-test-map");
    snprintf(path, sizeof(path), "%s/access", dir);
    snprintf(spec, sizeof(spec), "file:%s", path);
    modmta_test_replace_file(path, "alpha one\nbeta two\n");
    modmta_test_reload_clock();
    assert_non_null(m = open_spec(spec, &err));
    expect(m, "alpha", "one");

    /* A good new version replaces the table, not before it is due. */
    modmta_test_replace_file(path, "alpha uno\ngamma tres\n");
    expect(m, "alpha", "one");
    wait_recheck();
    expect(m, "alpha", "uno");
    expect(m, "gamma", "tres");
    expect(m, "beta", NULL);

    /* A broken version is refused: the old table stays, with a warning
     * naming file:line. */
    modmta_test_replace_file(path, "alpha eins\n# two\nbroken\n");
    wait_recheck();
    lookup_capturing(m, "alpha", "uno", log, sizeof(log));
    snprintf(want, sizeof(want), "%s:3: key \"broken\" has no value", path);
    if (strstr(log, want) == NULL)
        fail_msg("log \"%s\" lacks \"%s\"", log, want);
    expect(m, "gamma", "tres");

    /* Fixed again: picked up. */
    modmta_test_replace_file(path, "alpha ein\n");
    wait_recheck();
    expect(m, "alpha", "ein");
    expect(m, "gamma", NULL);

    /* The file disappears: the last table stays. */
    assert_int_equal(unlink(path), 0);
    wait_recheck();
    lookup_capturing(m, "alpha", "ein", log, sizeof(log));
    assert_non_null(strstr(log, path));

    modmta_map_close(m);
    assert_int_equal(rmdir(dir), 0);
}

/* ---- threads ---- */

static void *
lookup_thread(void *arg)
{
    modmta_map *m = arg;
    char *v;
    int i, bad = 0;

    for (i = 0; i < 2000; i++) {
        if (modmta_map_lookup(m, "example.com", &v) != 1 ||
            strcmp(v, "OK") != 0)
            bad++;
        modmta_free(v);
        if (modmta_map_lookup(m, "nope", NULL) != 0)
            bad++;
    }
    return (void *)(intptr_t)bad;
}

static void
test_threads(void **state)
{
    char spec[600];
    pthread_t t[4];
    modmta_err err;
    modmta_map *m;
    void *bad;
    int i;

    snprintf(spec, sizeof(spec), "file:%s/file_table.in", TEST_DATA_DIR);
    assert_non_null(m = open_spec(spec, &err));
    for (i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, lookup_thread, m), 0);
    for (i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], &bad), 0);
        assert_int_equal((intptr_t)bad, 0);
    }
    modmta_map_close(m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_golden),
        cmocka_unit_test(test_cidr_golden),
        cmocka_unit_test(test_golden_errors),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_bad_spec),
        cmocka_unit_test(test_inline_object),
        cmocka_unit_test(test_inline_set),
        cmocka_unit_test(test_inline_errors),
        cmocka_unit_test(test_register),
        cmocka_unit_test(test_file_reload),
        cmocka_unit_test(test_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
