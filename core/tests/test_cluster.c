/*
 * Unit tests of the cluster's registry (core/cluster_registry.c) on the
 * process's memory store: joining, a name another owner holds, the live
 * list (sorted, expired nodes left out, the index pruned when a node
 * joins), leaving, request IDs and answer keys. The node's thread and
 * modmtactl are tested with Redis in tests/e2e/test_cluster.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <modmta/ctx.h>

#include "shared_priv.h"
#include "cluster.h"

static modmta_shared *
store(void)
{
    modmta_err err;
    modmta_shared *s = modmta_shared_new(NULL, &err);

    assert_non_null(s);
    /* the memory store is the process's: start each test empty */
    modmta_shared_del(s, "ctl:nodes");
    modmta_shared_del(s, "ctl:nodes:lock");
    modmta_shared_del(s, "ctl:node:a.test");
    modmta_shared_del(s, "ctl:node:b.test");
    modmta_shared_del(s, "ctl:node:c.test");
    return s;
}

/* The live names, joined with spaces ("" for none). */
static char *
live(modmta_shared *s)
{
    char **names, *out = calloc(1, 1024);
    size_t n;

    assert_non_null(out);
    assert_int_equal(cluster_registry_live(s, &names, &n), 0);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            strcat(out, " ");
        strcat(out, names[i]);
    }
    cluster_registry_free(names, n);
    return out;
}

static void
assert_live(modmta_shared *s, const char *want)
{
    char *got = live(s);

    assert_string_equal(got, want);
    free(got);
}

static void
join(modmta_shared *s, const char *host, const char *owner, int want)
{
    char *holder = NULL;

    assert_int_equal(cluster_registry_join(s, host, owner, &holder), want);
    if (want == 0) {
        assert_non_null(holder);
        modmta_free(holder);
    } else {
        assert_null(holder);
    }
}

static void
test_join_and_list(void **state)
{
    modmta_shared *s = store();
    char *holder = NULL;

    assert_live(s, "");
    join(s, "c.test", "node-c", 1);
    join(s, "a.test", "node-a", 1);
    join(s, "b.test", "node-b", 1);
    assert_live(s, "a.test b.test c.test");
    /* renewing changes nothing */
    join(s, "a.test", "node-a", 1);
    assert_live(s, "a.test b.test c.test");
    /* the name is a's: another owner is told who holds it */
    assert_int_equal(cluster_registry_join(s, "a.test", "other", &holder),
                     0);
    assert_string_equal(holder, "node-a");
    modmta_free(holder);
    /* the lock was given back after each change */
    assert_int_equal(modmta_shared_get(s, "ctl:nodes:lock", NULL), 0);
    modmta_shared_free(s);
}

static void
test_leave_and_expire(void **state)
{
    modmta_shared *s = store();
    char *index;

    join(s, "a.test", "node-a", 1);
    join(s, "b.test", "node-b", 1);
    join(s, "c.test", "node-c", 1);
    /* a clean stop frees the name at once; only its owner can */
    cluster_registry_leave(s, "b.test", "someone-else");
    assert_live(s, "a.test b.test c.test");
    cluster_registry_leave(s, "b.test", "node-b");
    assert_live(s, "a.test c.test");
    join(s, "b.test", "new-b", 1);
    assert_live(s, "a.test b.test c.test");
    /* a node whose registration expired is not listed; the next node
     * to join drops it from the index */
    assert_int_equal(modmta_shared_del(s, "ctl:node:c.test"), 1);
    assert_live(s, "a.test b.test");
    assert_int_equal(modmta_shared_del(s, "ctl:nodes"), 1);
    join(s, "a.test", "node-a", 1);       /* lists itself again */
    assert_int_equal(modmta_shared_get(s, "ctl:nodes", &index), 1);
    assert_string_equal(index, "a.test\n");
    modmta_free(index);
    assert_live(s, "a.test");
    join(s, "b.test", "new-b", 1);
    assert_live(s, "a.test b.test");
    modmta_shared_free(s);
}

static void
test_index_lock_busy(void **state)
{
    modmta_shared *s = store();

    /* another node is changing the index: joining still registers the
     * name, and lists it at a later beat */
    assert_int_equal(modmta_shared_lease(s, "ctl:nodes:lock", "busy", 60000),
                     1);
    join(s, "a.test", "node-a", 1);
    assert_live(s, "");
    assert_int_equal(modmta_shared_release(s, "ctl:nodes:lock", "busy"), 1);
    join(s, "a.test", "node-a", 1);
    assert_live(s, "a.test");
    modmta_shared_free(s);
}

static void
test_ids_and_keys(void **state)
{
    char key[64];
    char long_id[CLUSTER_ID_MAX + 2];

    assert_true(cluster_id_valid("0123456789abcdef0123456789abcdef"));
    assert_true(cluster_id_valid("A-b-9"));
    assert_false(cluster_id_valid(""));
    assert_false(cluster_id_valid("a b"));
    assert_false(cluster_id_valid("a:b"));
    assert_false(cluster_id_valid("a\nb"));
    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    assert_false(cluster_id_valid(long_id));
    long_id[CLUSTER_ID_MAX] = '\0';
    assert_true(cluster_id_valid(long_id));
    assert_int_equal(cluster_result_key(key, sizeof(key), "abc", "mx.test"),
                     0);
    assert_string_equal(key, "ctl:reload:abc:mx.test");
    assert_true(cluster_result_key(key, 10, "abc", "mx.test") < 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_and_list),
        cmocka_unit_test(test_leave_and_expire),
        cmocka_unit_test(test_index_lock_busy),
        cmocka_unit_test(test_ids_and_keys),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
