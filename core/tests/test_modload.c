/*
 * The module loader against real .so files: the test modules built in
 * core/tests/modules (MODULE_DIR), and copies of good.so in temporary
 * directories for the file checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <modmta/modmta.h>

#include "ctx_priv.h"
#include "fake.h"
#include "files.h"
#include "modload.h"

#define JPATH "$.modules[3].module"

static const char *module_dir;

struct tmpdir {
    char path[64];
    char file[256];
};

static int
setup_env(void **state)
{
    module_dir = getenv("MODULE_DIR");
    return module_dir == NULL ? -1 : 0;
}

/* Load name from dirs; returns the descriptor, *err_r the single error
 * (or NULL). */
static const modmta_module *
load(const char *dir1, const char *dir2, const char *name,
     struct config_errors *errs)
{
    char *dirs[] = { (char *)dir1, (char *)dir2, NULL };

    return modload_load(dirs, name, JPATH, errs);
}

/* The one error of errs, which must carry the JSON path. */
static const char *
only_error(const struct config_errors *errs)
{
    assert_int_equal(errs->n, 1);
    assert_non_null(strstr(errs->msgs[0], JPATH));
    return errs->msgs[0];
}

static void
copy_file(const char *from, const char *to, mode_t mode)
{
    char buf[65536];
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    size_t n;

    assert_non_null(in);
    assert_non_null(out);
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(chmod(to, mode), 0);
}

/* A private directory holding a copy of good.so (at sub/good.so when sub
 * is not NULL) with the given mode. */
static void
tmp_good(struct tmpdir *t, const char *sub, mode_t mode)
{
    char src[512], d[128];

    modmta_test_tmpdir(t->path, sizeof(t->path), "modload");
    snprintf(src, sizeof(src), "%s/good.so", module_dir);
    if (sub != NULL) {
        snprintf(d, sizeof(d), "%s/%s", t->path, sub);
        assert_int_equal(mkdir(d, 0755), 0);
        snprintf(t->file, sizeof(t->file), "%s/good.so", d);
    } else {
        snprintf(t->file, sizeof(t->file), "%s/good.so", t->path);
    }
    copy_file(src, t->file, mode);
}

/* The "loads=N unloads=M" report of good's on_helo. */
static void
good_counts(const modmta_module *m, char *out, size_t len)
{
    modmta_host *h = modmta_test_host_new("good", NULL);
    modmta_ctx *ctx = modmta_test_ctx_new(h, "127.0.0.1");

    modmta_test_enter(ctx, MODMTA_PHASE_HELO, m, NULL);
    assert_int_equal(m->on_helo(NULL, ctx, "x"), MODMTA_ACCEPT);
    snprintf(out, len, "%s", modmta_test_reply_text(ctx));
    modmta_test_ctx_free(ctx);
    modmta_test_host_free(h);
}

static void
test_good_loads_once(void **state)
{
    struct config_errors errs = { 0 };
    const modmta_module *a, *b;
    char counts[128];

    a = load(module_dir, NULL, "good", &errs);
    assert_non_null(a);
    assert_int_equal(errs.n, 0);
    assert_string_equal(a->name, "good");
    assert_non_null(a->create);
    assert_non_null(a->on_helo);
    assert_null(a->on_rcpt);
    /* Found again through another directory list: same cached module. */
    b = load("/nonexistent", module_dir, "good", &errs);
    assert_ptr_equal(a, b);
    good_counts(a, counts, sizeof(counts));
    assert_string_equal(counts, "loads=1 unloads=0");

    modload_unload_all();
    good_counts(a, counts, sizeof(counts));
    assert_string_equal(counts, "loads=1 unloads=1");
    /* Used again after unload: load() runs again, still one mapping. */
    b = load(module_dir, NULL, "good", &errs);
    assert_ptr_equal(a, b);
    good_counts(a, counts, sizeof(counts));
    assert_string_equal(counts, "loads=2 unloads=1");
    assert_int_equal(errs.n, 0);
}

/* Once loaded through a directory, a module is found again without any
 * file access: the daemon loads as root and builds generations after the
 * privilege drop, when the files may be out of reach. */
static void
test_loaded_found_without_file_access(void **state)
{
    struct config_errors errs = { 0 };
    const modmta_module *a, *b;
    struct tmpdir t;

    tmp_good(&t, NULL, 0644);
    a = load(t.path, NULL, "good", &errs);
    assert_non_null(a);
    modmta_test_rmtree(t.path);
    b = load(t.path, NULL, "good", &errs);
    assert_ptr_equal(a, b);
    assert_int_equal(errs.n, 0);
    /* Any other directory is searched as usual. */
    assert_null(load("/nonexistent", NULL, "good", &errs));
    assert_non_null(strstr(only_error(&errs), "not found"));
    config_errors_free(&errs);
}

static void
test_build_tree_layout(void **state)
{
    struct config_errors errs = { 0 };
    struct tmpdir t;

    tmp_good(&t, "good", 0644);
    assert_non_null(load(t.path, NULL, "good", &errs));
    assert_int_equal(errs.n, 0);
    modmta_test_rmtree(t.path);
}

static void
test_wrong_major(void **state)
{
    struct config_errors errs = { 0 };
    char v1[32], v2[32];
    const char *e;

    assert_null(load(module_dir, NULL, "badmajor", &errs));
    e = only_error(&errs);
    snprintf(v1, sizeof(v1), "ABI %d.%d", MODMTA_ABI_MAJOR + 1,
             MODMTA_ABI_MINOR);
    snprintf(v2, sizeof(v2), "ABI %d.%d", MODMTA_ABI_MAJOR,
             MODMTA_ABI_MINOR);
    assert_non_null(strstr(e, "\"badmajor\""));
    assert_non_null(strstr(e, v1));
    assert_non_null(strstr(e, v2));
    config_errors_free(&errs);
}

static void
test_newer_minor(void **state)
{
    struct config_errors errs = { 0 };
    char v1[32], v2[32];
    const char *e;

    assert_null(load(module_dir, NULL, "newminor", &errs));
    e = only_error(&errs);
    snprintf(v1, sizeof(v1), "ABI %d.%d", MODMTA_ABI_MAJOR,
             MODMTA_ABI_MINOR + 1);
    snprintf(v2, sizeof(v2), "ABI %d.%d", MODMTA_ABI_MAJOR,
             MODMTA_ABI_MINOR);
    assert_non_null(strstr(e, "\"newminor\""));
    assert_non_null(strstr(e, v1));
    assert_non_null(strstr(e, v2));
    assert_non_null(strstr(e, "newer"));
    config_errors_free(&errs);
}

/* A module calling a function of libmodmta that is not in the installed
 * headers: the daemon does not export it, the module is refused with
 * the module and the function named. */
static void
test_private_symbol(void **state)
{
    struct config_errors errs = { 0 };
    const char *e;

    assert_null(load(module_dir, NULL, "privsym", &errs));
    e = only_error(&errs);
    assert_non_null(strstr(e, "/privsym.so"));
    assert_non_null(strstr(e, "module \"privsym\" cannot be loaded"));
    assert_non_null(strstr(e, "undefined symbol: modmta_ctx_enter"));
    assert_non_null(strstr(e, "not in the ABI"));
    config_errors_free(&errs);
}

/* onesdk (linked against libmodmta.so.1) binds to this program's SDK:
 * its create() checks where its calls go, and the map backend its
 * load() registered is in this program's registry. */
static void
test_one_sdk(void **state)
{
    struct config_errors errs = { 0 };
    const modmta_module *m;
    modmta_host *h = modmta_test_host_new("onesdk", NULL);
    json_t *spec = json_string("onesdk:ping=pong@example.org");
    modmta_map *map;
    modmta_err err;
    char *value = NULL;
    void *inst;

    memset(&err, 0, sizeof(err));
    m = load(module_dir, NULL, "onesdk", &errs);
    assert_int_equal(errs.n, 0);
    assert_non_null(m);
    inst = m->create(NULL, h, &err);
    if (inst == NULL)
        fail_msg("onesdk: %s", err.msg);
    m->destroy(inst);
    map = modmta_map_open(spec, "$.map", &err);
    if (map == NULL)
        fail_msg("%s", err.msg);
    assert_int_equal(modmta_map_lookup(map, "PING", &value), 1);
    assert_string_equal(value, "pong@example.org");
    modmta_free(value);
    modmta_map_close(map);
    json_decref(spec);
    modmta_test_host_free(h);
}

static void
test_bad_signature(void **state)
{
    struct config_errors errs = { 0 };

    assert_null(load(module_dir, NULL, "badsig", &errs));
    assert_non_null(strstr(only_error(&errs), "not binary compatible"));
    config_errors_free(&errs);
}

static void
test_missing_symbol(void **state)
{
    struct config_errors errs = { 0 };
    const char *e;

    assert_null(load(module_dir, NULL, "nosym", &errs));
    e = only_error(&errs);
    assert_non_null(strstr(e, "/nosym.so"));
    assert_non_null(strstr(e, "modmta_descriptor"));
    config_errors_free(&errs);
}

static void
test_name_mismatch(void **state)
{
    struct config_errors errs = { 0 };
    const char *e;

    assert_null(load(module_dir, NULL, "misname", &errs));
    e = only_error(&errs);
    assert_non_null(strstr(e, "\"other\""));
    assert_non_null(strstr(e, "\"misname\""));
    config_errors_free(&errs);
}

static void
test_small_descriptor(void **state)
{
    struct config_errors errs = { 0 };

    assert_null(load(module_dir, NULL, "small", &errs));
    assert_non_null(strstr(only_error(&errs), "descriptor size"));
    config_errors_free(&errs);
}

/* ABI 1.0 (a shorter descriptor) loads under 1.1; owns_domain, past its
 * size, reads as NULL whatever the bytes there hold. */
static void
test_abi10_descriptor(void **state)
{
    struct config_errors errs = { 0 };
    const modmta_module *m;

    m = load(module_dir, NULL, "abi10", &errs);
    assert_int_equal(errs.n, 0);
    assert_non_null(m);
    assert_non_null(m->create);
    assert_int_equal(m->size, offsetof(modmta_module, owns_domain));
    assert_null(m->owns_domain);
    config_errors_free(&errs);
}

/* ABI 1.2 (before transports) loads under 1.3 with route() and
 * deliver_msg() NULL: its deliver() is what the core calls; nor does it
 * get the streaming hooks, on_abort and on_unknown of 1.6. */
static void
test_abi12_descriptor(void **state)
{
    struct config_errors errs = { 0 };
    const modmta_module *m;

    m = load(module_dir, NULL, "abi12", &errs);
    assert_int_equal(errs.n, 0);
    assert_non_null(m);
    assert_non_null(m->deliver);
    assert_null(m->route);
    assert_null(m->deliver_msg);
    assert_null(m->on_header);
    assert_null(m->on_eoh);
    assert_null(m->on_body);
    assert_null(m->on_abort);
    assert_null(m->on_unknown);
    config_errors_free(&errs);
}

static void
test_route_without_deliver_msg(void **state)
{
    struct config_errors errs = { 0 };

    assert_null(load(module_dir, NULL, "halfxport", &errs));
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.msgs[0], "has route() without "
                                         "deliver_msg()"));
    config_errors_free(&errs);
}

static void
test_not_found_lists_dirs(void **state)
{
    struct config_errors errs = { 0 };
    char want[600];

    assert_null(load(module_dir, "/nonexistent/x", "nosuch", &errs));
    snprintf(want, sizeof(want), "module \"nosuch\" not found in "
             "module_path (%s, /nonexistent/x)", module_dir);
    assert_non_null(strstr(only_error(&errs), want));
    config_errors_free(&errs);
}

static void
test_bad_names(void **state)
{
    static const char *bad[] = { "../good", "good/good", "Good", "", ".so",
                                 "a b" };
    struct config_errors errs = { 0 };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(load(module_dir, NULL, bad[i], &errs));
        assert_non_null(strstr(only_error(&errs), "invalid module name"));
        config_errors_free(&errs);
    }
}

/* A copy of good.so with `mode` must be refused with `why`. */
static void
refused(mode_t mode, const char *why)
{
    struct config_errors errs = { 0 };
    struct tmpdir t;
    const char *e;

    tmp_good(&t, NULL, mode);
    assert_null(load(t.path, NULL, "good", &errs));
    e = only_error(&errs);
    assert_non_null(strstr(e, t.file));
    assert_non_null(strstr(e, why));
    config_errors_free(&errs);
    modmta_test_rmtree(t.path);
}

static void
test_group_writable(void **state)
{
    refused(0664, "group-writable");
}

static void
test_world_writable(void **state)
{
    refused(0646, "world-writable");
}

static void
test_other_owner(void **state)
{
    struct config_errors errs = { 0 };
    struct tmpdir t;

    if (geteuid() != 0)
        skip();
    tmp_good(&t, NULL, 0644);
    assert_int_equal(chown(t.file, 12345, 12345), 0);
    assert_null(load(t.path, NULL, "good", &errs));
    assert_non_null(strstr(only_error(&errs), "owned by uid 12345"));
    config_errors_free(&errs);
    modmta_test_rmtree(t.path);
}

static void
test_world_writable_dir(void **state)
{
    struct config_errors errs = { 0 };
    struct tmpdir t;

    tmp_good(&t, NULL, 0644);
    assert_int_equal(chmod(t.path, 0777), 0);
    assert_null(load(t.path, NULL, "good", &errs));
    assert_non_null(strstr(only_error(&errs), "directory"));
    config_errors_free(&errs);
    /* With the sticky bit (as /tmp) nobody else can replace the file. */
    assert_int_equal(chmod(t.path, 01777), 0);
    assert_non_null(load(t.path, NULL, "good", &errs));
    assert_int_equal(errs.n, 0);
    modmta_test_rmtree(t.path);
}

static void
test_not_regular(void **state)
{
    struct config_errors errs = { 0 };
    char dir[64], so[128];

    modmta_test_tmpdir(dir, sizeof(dir), "modload");
    snprintf(so, sizeof(so), "%s/good.so", dir);
    assert_int_equal(mkdir(so, 0755), 0);
    assert_null(load(dir, NULL, "good", &errs));
    assert_non_null(strstr(only_error(&errs), "not a regular file"));
    config_errors_free(&errs);
    modmta_test_rmtree(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_loads_once),
        cmocka_unit_test(test_build_tree_layout),
        cmocka_unit_test(test_loaded_found_without_file_access),
        cmocka_unit_test(test_wrong_major),
        cmocka_unit_test(test_newer_minor),
        cmocka_unit_test(test_private_symbol),
        cmocka_unit_test(test_one_sdk),
        cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_missing_symbol),
        cmocka_unit_test(test_name_mismatch),
        cmocka_unit_test(test_small_descriptor),
        cmocka_unit_test(test_abi10_descriptor),
        cmocka_unit_test(test_abi12_descriptor),
        cmocka_unit_test(test_route_without_deliver_msg),
        cmocka_unit_test(test_not_found_lists_dirs),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_group_writable),
        cmocka_unit_test(test_world_writable),
        cmocka_unit_test(test_other_owner),
        cmocka_unit_test(test_world_writable_dir),
        cmocka_unit_test(test_not_regular),
    };

    return cmocka_run_group_tests(tests, setup_env, NULL);
}
