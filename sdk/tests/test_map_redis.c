/*
 * redis: maps and passdbs against a redis-server the test starts: what
 * opening them needs (the host's shared state, Redis, a key prefix);
 * the key schema (the config's prefix, the map's, the key in lower
 * case); not found, and values no file could hold; the writes modmtactl
 * makes; a store that is down (MODMTA_E_TEMP, never "not found" or
 * "wrong password") and heals; passwords right, wrong, unknown.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/modmta.h>

#include <fake.h>
#include <files.h>

#include "ctx_priv.h"
#include "map_priv.h"
#include "shared_priv.h"
#include "shared_test.h"

/* A call must end within the timeout (1 s here); this bound only tells
 * a hang from an answer. */
#define SLOW_MS 3000

static char dir[256];
static struct redis_server srv;

/* A host whose shared state is Redis at srv with prefix ("" for none). */
static modmta_host *
redis_host(const char *prefix)
{
    modmta_host *h = modmta_test_host_new("t", "localhost", NULL);
    char json[256];

    snprintf(json, sizeof(json), "{\"address\": \"%%s\", \"timeout\": 1, "
             "\"connect_timeout\": 1%s%s%s}", prefix[0] ? ", \"prefix\": \""
             : "", prefix, prefix[0] ? "\"" : "");
    assert_non_null(h);
    modmta_shared_free(modmta_host_shared(h));
    modmta_host_set_shared(h, redis_store(json, srv.address));
    return h;
}

static void
rset(const char *key, const char *value)
{
    const char *argv[] = {"SET", key, value, NULL};
    redisReply *r = redis_server_cmd(&srv, NULL, 0, argv);

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
}

/* The value of key in Redis, NULL when there is none (free it). */
static char *
rget(const char *key)
{
    const char *argv[] = {"GET", key, NULL};
    redisReply *r = redis_server_cmd(&srv, NULL, 0, argv);
    char *v = NULL;

    assert_non_null(r);
    if (r->type == REDIS_REPLY_STRING)
        v = strdup(r->str);
    freeReplyObject(r);
    return v;
}

static modmta_map *
open_map(const char *spec, const modmta_host *h, modmta_err *err)
{
    json_t *j = json_string(spec);
    modmta_map *m;

    memset(err, 0, sizeof(*err));
    m = modmta_map_open_host(j, h, "$.m", err);
    json_decref(j);
    return m;
}

static void
expect(modmta_map *m, const char *key, const char *value)
{
    char *v = NULL;
    int rc = modmta_map_lookup(m, key, &v);

    if (value == NULL) {
        assert_int_equal(rc, 0);
        assert_null(v);
        return;
    }
    assert_int_equal(rc, 1);
    assert_string_equal(v, value);
    free(v);
}

/* ---- maps ---- */

struct opt_conf {
    modmta_map *map;
};

static const modmta_opt opt_table[] = {
    {"map", MODMTA_OPT_MAP, offsetof(struct opt_conf, map), 0},
    {NULL, 0, 0, 0},
};

/* A backend that would take the type "redis" (it may not). */
static void *
dup_open(const char *arg, const char *json_path, modmta_err *err_r)
{
    return NULL;
}

static int
dup_lookup(void *state, const char *key, char **value_r)
{
    return 0;
}

/* What a redis: map needs to open, and the errors when it lacks it. */
static void
test_map_open(void **state)
{
    modmta_host *mem = modmta_test_host_new("t", "localhost", NULL);
    modmta_host *h = redis_host("");
    static const modmta_map_backend dup = {
        .type = "redis", .open = dup_open, .lookup = dup_lookup,
        .close = free,
    };
    struct opt_conf c = {NULL};
    json_t *conf = json_pack("{ss}", "map", "redis:alias:");
    modmta_err err;
    modmta_map *m;

    (void)state;
    assert_null(open_map("redis:alias:", mem, &err));
    assert_string_equal(err.path, "$.m");
    assert_string_equal(err.msg, "redis: maps need the \"redis\" section");
    /* opened without a host it cannot find the generation's store */
    assert_null(modmta_map_open(json_object_get(conf, "map"), "$.m", &err));
    assert_non_null(strstr(err.msg, "modmta_map_open_host"));
    assert_null(open_map("redis:", h, &err));
    assert_non_null(strstr(err.msg, "key prefix"));
    assert_null(open_map("redis:a b", h, &err));
    assert_non_null(strstr(err.msg, "key prefix"));
    /* ending with ':': "redis:alias" + "es:x" would be "redis:aliases:"
     * + "x" */
    assert_null(open_map("redis:alias", h, &err));
    assert_string_equal(err.path, "$.m");
    assert_non_null(strstr(err.msg, "ending with ':'"));
    /* the shared state's own namespaces, at any depth below them */
    assert_null(open_map("redis:ctl:", h, &err));
    assert_string_equal(err.path, "$.m");
    assert_string_equal(err.msg, "redis:ctl:: \"ctl:\" is reserved for "
                        "modmta's own shared state (see docs/sdk.md); "
                        "choose another prefix");
    assert_null(open_map("redis:lockout:auth_sasl:", h, &err));
    assert_non_null(strstr(err.msg, "\"lockout:\" is reserved"));
    assert_null(open_map("redis:popb4smtp:", h, &err));
    assert_null(open_map("redis:ratelimit:", h, &err));
    assert_null(open_map("redis:pop3:", h, &err));
    m = open_map("redis:ctlx:", h, &err);
    assert_non_null(m);
    modmta_map_close(m);
    assert_int_equal(modmta_map_register(&dup), MODMTA_E_INVAL);

    /* MODMTA_OPT_MAP opens it with the host: the module's JSON path */
    assert_int_equal(modmta_conf_parse(conf, mem, opt_table, &c, &err),
                     MODMTA_E_CONFIG);
    assert_string_equal(err.path, "$.modules[0].map");
    assert_string_equal(err.msg, "redis: maps need the \"redis\" section");
    assert_int_equal(modmta_conf_parse(conf, h, opt_table, &c, &err), 0);
    assert_string_equal(modmta_map_name(c.map), "redis:alias:");
    assert_int_equal(modmta_map_is_shared(c.map), 1);
    modmta_conf_free(opt_table, &c);

    /* nothing but redis: is shared */
    m = open_map("redis:alias:", h, &err);
    assert_non_null(m);
    assert_int_equal(modmta_map_is_shared(m), 1);
    modmta_map_close(m);
    json_decref(conf);
    conf = json_pack("{ss}", "a", "b");
    m = modmta_map_open_host(conf, h, "$.m", &err);
    assert_non_null(m);
    assert_int_equal(modmta_map_is_shared(m), 0);
    assert_int_equal(modmta_map_is_shared(NULL), 0);
    modmta_map_close(m);
    json_decref(conf);
    modmta_test_host_free(h);
    modmta_test_host_free(mem);
}

/* The key schema: <redis.prefix><KEYPREFIX><key in lower case>. */
static void
test_map_lookup(void **state)
{
    modmta_host *h = redis_host(""), *other = redis_host("other:");
    const char *lpush[] = {"LPUSH", "modmta:alias:list", "x", NULL};
    /* a NUL octet inside a value (a Lua string can hold one) */
    const char *set_nul[] = {"EVAL", "return redis.call('SET', KEYS[1], "
                             "'bob\\0|/bin/sh')", "1", "modmta:alias:nul",
                             NULL};
    modmta_err err;
    modmta_map *m, *o;
    char **items;
    redisReply *r;

    (void)state;
    rset("modmta:alias:root", "alice, \"|not a cmd\", bob@example.org");
    rset("modmta:alias:list@localhost", "bob,carol");
    rset("modmta:alias:Upper", "never found: keys are lower case");
    rset("modmta:alias:ctl", "a\r\n250 injected");
    rset("modmta:alias:tab", "a\tb");
    rset("other:alias:root", "theirs");
    r = redis_server_cmd(&srv, NULL, 0, lpush);
    assert_non_null(r);
    freeReplyObject(r);
    r = redis_server_cmd(&srv, NULL, 0, set_nul);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    assert_non_null(m = open_map("redis:alias:", h, &err));
    assert_non_null(o = open_map("redis:alias:", other, &err));

    expect(m, "ROOT", "alice, \"|not a cmd\", bob@example.org");
    expect(m, "List@LocalHost", "bob,carol");
    expect(m, "nobody", NULL);
    expect(m, "Upper", NULL);
    expect(m, "tab", "a\tb");
    assert_int_equal(modmta_map_lookup(m, "root", NULL), 1);
    assert_int_equal(modmta_map_lookup(m, "nobody", NULL), 0);
    /* keys no entry can have are not found (not an error) */
    expect(m, "a b", NULL);
    expect(m, "a\rb", NULL);
    expect(m, "", NULL);
    /* a value no file map could hold, or no string at all: an error */
    assert_int_equal(modmta_map_lookup(m, "ctl", NULL), MODMTA_E_TEMP);
    assert_int_equal(modmta_map_lookup(m, "list", NULL), MODMTA_E_TEMP);
    /* never read as the part before the NUL ("bob") */
    assert_int_equal(modmta_map_lookup(m, "nul", NULL), MODMTA_E_TEMP);
    /* another redis.prefix, another set of keys */
    expect(o, "root", "theirs");
    expect(o, "list@localhost", NULL);

    /* list values as aliases(5) writes them */
    items = modmta_map_list_split("bob,carol", &err);
    assert_non_null(items);
    assert_string_equal(items[0], "bob");
    assert_string_equal(items[1], "carol");
    assert_null(items[2]);
    modmta_strlist_free(items);

    modmta_map_close(m);
    modmta_map_close(o);
    modmta_test_host_free(h);
    modmta_test_host_free(other);
}

/* What modmtactl map set/del write, as the daemon reads it. */
static void
test_map_write(void **state)
{
    modmta_host *h = redis_host("w:");
    modmta_err err;
    modmta_map *m, *file;
    void *st;
    char *v;

    (void)state;
    assert_non_null(m = open_map("redis:virt:", h, &err));
    assert_non_null(file = open_map("aliases:/dev/null", h, &err));
    assert_null(map_redis_state(file));
    assert_non_null(st = map_redis_state(m));
    assert_int_equal(map_redis_put(st, "Sales@Example.COM", "ann, ben"), 0);
    v = rget("w:virt:sales@example.com");
    assert_non_null(v);
    assert_string_equal(v, "ann, ben");
    free(v);
    expect(m, "sales@example.com", "ann, ben");
    assert_int_equal(map_redis_put(st, "sales@example.com", "carl"), 0);
    expect(m, "SALES@example.com", "carl");
    assert_int_equal(map_redis_put(st, "a b", "x"), MODMTA_E_INVAL);
    assert_int_equal(map_redis_put(st, "k", "x\ny"), MODMTA_E_INVAL);
    assert_int_equal(map_redis_del(st, "Sales@example.com"), 1);
    assert_int_equal(map_redis_del(st, "sales@example.com"), 0);
    expect(m, "sales@example.com", NULL);
    modmta_map_close(file);
    modmta_map_close(m);
    modmta_test_host_free(h);
}

/* Redis stopped: every lookup answers MODMTA_E_TEMP within the
 * timeout, never "not found"; Redis back: the same map works again. */
static void
test_map_outage(void **state)
{
    modmta_host *h;
    modmta_err err;
    modmta_map *m;
    long long t;
    int rc = MODMTA_E_TEMP;

    (void)state;
    h = redis_host("");
    rset("modmta:alias:root", "alice");
    assert_non_null(m = open_map("redis:alias:", h, &err));
    expect(m, "root", "alice");
    redis_server_stop(&srv, 0);
    for (int i = 0; i < 2; i++) {   /* the second with the connect held */
        t = now_ms();
        assert_int_equal(modmta_map_lookup(m, "root", NULL), MODMTA_E_TEMP);
        assert_int_equal(modmta_map_lookup(m, "nobody", NULL),
                         MODMTA_E_TEMP);
        assert_true(now_ms() - t < SLOW_MS);
    }
    redis_server_restart(&srv);
    rset("modmta:alias:root", "alice");
    for (int i = 0; i < 300 && rc < 0; i++) {
        rc = modmta_map_lookup(m, "root", NULL);
        if (rc < 0)
            sleep_ms(50);
    }
    assert_int_equal(rc, 1);
    modmta_map_close(m);
    modmta_test_host_free(h);
}

/* ---- passdb ---- */

static modmta_passdb *
open_passdb(const char *spec, const modmta_host *h, modmta_err *err)
{
    memset(err, 0, sizeof(*err));
    return modmta_passdb_open_host(spec, h, "$.modules[0].passdb", err);
}

static int
verify(modmta_passdb *db, const char *user, const char *pw)
{
    return modmta_passdb_verify(db, user, pw, strlen(pw));
}

static void
test_passdb_open(void **state)
{
    modmta_host *mem = modmta_test_host_new("t", "localhost", NULL);
    modmta_host *h = redis_host("");
    modmta_passdb *db;
    modmta_err err;

    (void)state;
    assert_null(open_passdb("redis:passwd:", mem, &err));
    assert_string_equal(err.path, "$.modules[0].passdb");
    assert_string_equal(err.msg,
                        "redis: passdbs need the \"redis\" section");
    assert_null(modmta_passdb_open("redis:passwd:", "$.p", &err));
    assert_non_null(strstr(err.msg, "modmta_passdb_open_host"));
    assert_null(open_passdb("redis:a\tb", h, &err));
    assert_non_null(strstr(err.msg, "key prefix"));
    assert_null(open_passdb("redis:passwd", h, &err));
    assert_non_null(strstr(err.msg, "ending with ':'"));
    assert_null(open_passdb("redis:lockout:", h, &err));
    assert_string_equal(err.path, "$.modules[0].passdb");
    assert_non_null(strstr(err.msg, "\"lockout:\" is reserved"));
    assert_non_null(db = open_passdb("redis:passwd:", h, &err));
    assert_string_equal(modmta_passdb_name(db), "redis:passwd:");
    assert_int_equal(modmta_passdb_has_secrets(db), 1);
    modmta_passdb_close(db);
    modmta_test_host_free(h);
    modmta_test_host_free(mem);
}

/* Right, wrong, unknown; the secret schemes of a file: line; a value
 * that is no secret; the store down (MODMTA_E_TEMP) and back. */
static void
test_passdb_verify(void **state)
{
    modmta_host *h = redis_host("");
    modmta_err err;
    modmta_passdb *db;
    char *hash, *secret = NULL;
    int rc = MODMTA_E_TEMP;

    (void)state;
    hash = modmta_passdb_hash("s3cret pw", "$6$", &err);
    assert_non_null(hash);
    rset("modmta:passwd:alice@example.org", hash);
    rset("modmta:passwd:bare", hash + 7);           /* without {CRYPT} */
    rset("modmta:passwd:plain", "{PLAIN}clear");
    rset("modmta:passwd:broken", "{MD5}abc");
    free(hash);
    assert_non_null(db = open_passdb("redis:passwd:", h, &err));

    assert_int_equal(verify(db, "alice@example.org", "s3cret pw"), 1);
    assert_int_equal(verify(db, "alice@example.org", "s3cret pW"), 0);
    /* the key is the user name in lower case, as for the map */
    assert_int_equal(verify(db, "Alice@Example.org", "s3cret pw"), 1);
    assert_int_equal(verify(db, "bare", "s3cret pw"), 1);
    assert_int_equal(verify(db, "nobody", "s3cret pw"), 0);
    assert_int_equal(verify(db, "no body", "s3cret pw"), 0);
    assert_int_equal(verify(db, "plain", "clear"), 1);
    assert_int_equal(verify(db, "plain", "clea"), 0);
    assert_int_equal(verify(db, "broken", "abc"), MODMTA_E_TEMP);
    assert_int_equal(modmta_passdb_secret(db, "plain", &secret), 1);
    assert_string_equal(secret, "clear");
    modmta_passdb_secret_free(secret);
    assert_int_equal(modmta_passdb_secret(db, "alice@example.org",
                                          &secret), 0);
    assert_int_equal(modmta_passdb_secret(db, "nobody", &secret), 0);

    redis_server_stop(&srv, 0);
    assert_int_equal(verify(db, "alice@example.org", "s3cret pw"),
                     MODMTA_E_TEMP);
    assert_int_equal(verify(db, "nobody", "x"), MODMTA_E_TEMP);
    assert_int_equal(modmta_passdb_secret(db, "plain", &secret),
                     MODMTA_E_TEMP);
    redis_server_restart(&srv);
    rset("modmta:passwd:plain", "{PLAIN}clear");
    for (int i = 0; i < 300 && rc < 0; i++) {
        rc = verify(db, "plain", "clear");
        if (rc < 0)
            sleep_ms(50);
    }
    assert_int_equal(rc, 1);
    modmta_passdb_close(db);
    modmta_test_host_free(h);
}

static int
group_setup(void **state)
{
    (void)state;
    modmta_test_tmpdir(dir, sizeof(dir), "test_map_redis");
    redis_server_start(&srv, dir, "maps", 1, NULL);
    return 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    redis_server_stop(&srv, 0);
    modmta_test_rmtree(dir);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_open),
        cmocka_unit_test(test_map_lookup),
        cmocka_unit_test(test_map_write),
        cmocka_unit_test(test_map_outage),
        cmocka_unit_test(test_passdb_open),
        cmocka_unit_test(test_passdb_verify),
    };

    signal(SIGPIPE, SIG_IGN);           /* as the daemon: see redis_priv.h */
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
