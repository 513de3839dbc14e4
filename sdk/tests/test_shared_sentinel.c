/*
 * The Redis backend behind Sentinel: a master, a replica and three
 * sentinels on loopback. The store finds the master through the
 * sentinels (the first one it is given is dead); the master is killed
 * while a loop increments a counter; after the failover the same store
 * increments again, reads what was replicated before, and its
 * subscriber gets messages from the new master, with nothing recreated.
 * Increments not yet replicated when the master died may be lost (Redis
 * replication is asynchronous): the test asserts that the counter works
 * and goes on, not an exact value. And a sentinel that hangs does not
 * keep the store from the master.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <modmta/modmta.h>

#include <files.h>
#include <servers.h>

#include "shared_priv.h"
#include "shared_test.h"

#define NSENTINELS 3

/* The store: the sentinels, a dead one first. */
static modmta_shared *
sentinel_store(const struct redis_server *sentinels)
{
    json_t *list = json_array(), *redis;
    char dead[64];
    modmta_err err;
    modmta_shared *s;

    snprintf(dead, sizeof(dead), "127.0.0.1:%d",
             modmta_test_free_port(NULL));
    json_array_append_new(list, json_string(dead));
    for (int i = 0; i < NSENTINELS; i++)
        json_array_append_new(list, json_string(sentinels[i].address));
    redis = json_pack("{s:o, s:s, s:i, s:i, s:s}", "sentinels", list,
                      "master", "mymaster", "timeout", 1,
                      "connect_timeout", 1, "prefix", "sen:");
    s = modmta_shared_new(redis, &err);
    json_decref(redis);
    if (s == NULL)
        fail_msg("modmta_shared_new: %s: %s", err.path, err.msg);
    return s;
}

/* The master's port as the sentinel s says. */
static int
sentinel_master_port(const struct redis_server *s)
{
    static const char *const argv[] = {"SENTINEL", "get-master-addr-by-name",
                                       "mymaster", NULL};
    redisReply *r = redis_server_cmd(s, NULL, 0, argv);
    int port;

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    port = atoi(r->element[1]->str);
    freeReplyObject(r);
    return port;
}

static void
test_failover(void **state)
{
    static const char *const wait[] = {"WAIT", "1", "5000", NULL};
    struct redis_server master, replica, sentinels[NSENTINELS];
    struct inbox in = INBOX_INIT;
    modmta_shared *s, *pub;
    modmta_shared_sub *sub;
    char dir[256], name[16], *v;
    long long value = 0, before, last;
    int failures = 0, ok_after = 0, nsucc = 0, rc;

    (void)state;
    modmta_test_tmpdir(dir, sizeof(dir), "test_shared_sentinel");
    redis_server_start(&master, dir, "master", 1, NULL);
    redis_server_start_replica(&replica, dir, "replica", &master);
    for (int i = 0; i < NSENTINELS; i++) {
        snprintf(name, sizeof(name), "sentinel%d", i);
        redis_server_start_sentinel(&sentinels[i], dir, name, master.port);
    }
    for (int i = 0; i < NSENTINELS; i++)
        redis_server_wait_info(&sentinels[i], "sentinel",
                               "status=ok,address=127.0.0.1:");
    for (int i = 0; i < NSENTINELS; i++)
        redis_server_wait_info(&sentinels[i], "sentinel",
                               "slaves=1,sentinels=3");

    s = sentinel_store(sentinels);
    pub = sentinel_store(sentinels);
    assert_int_equal(modmta_shared_set(s, "k", "before", 0), 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(modmta_shared_incr(s, "n", 1, 0, &value), 0);
    assert_int_equal(value, 20);
    assert_int_equal(modmta_shared_subscribe(s, "ctl", inbox_cb, &in, &sub),
                     0);
    assert_int_equal(modmta_shared_publish(pub, "ctl", "one"), 1);
    inbox_wait(&in, 1);
    /* what is written so far is on the replica */
    assert_true(redis_server_int(&master, wait) >= 1);

    redis_server_stop(&master, 1);
    before = value;
    for (int i = 0; i < 3000 && ok_after < 20; i++) {
        rc = modmta_shared_incr(s, "n", 1, 0, &value);
        if (rc == MODMTA_E_TEMP) {      /* until the failover is done */
            failures++;
            ok_after = 0;
            sleep_ms(20);
            continue;
        }
        assert_int_equal(rc, 0);
        nsucc++;
        /* unreplicated increments could be lost, none counted twice */
        if (ok_after == 0)
            assert_true(value >= 1 && value <= before + nsucc);
        else
            assert_int_equal(value, last + 1);
        last = value;
        ok_after++;
    }
    assert_true(failures > 0);
    assert_int_equal(ok_after, 20);
    assert_int_equal(sentinel_master_port(&sentinels[0]), replica.port);
    assert_int_equal(modmta_shared_get(s, "k", &v), 1);
    assert_string_equal(v, "before");
    modmta_free(v);

    /* the subscriber followed the master too */
    publish_until_heard(pub, 1, "ctl", "two");
    inbox_wait(&in, 2);
    assert_string_equal(in.last, "two");
    modmta_shared_unsubscribe(sub);
    modmta_shared_free(s);
    modmta_shared_free(pub);
    for (int i = 0; i < NSENTINELS; i++)
        redis_server_stop(&sentinels[i], 0);
    redis_server_stop(&replica, 0);
    modmta_test_rmtree(dir);
}

/* The number of connections waiting on the listening socket fd (each
 * accepted and closed). */
static int
drain(int fd)
{
    int n = 0, c;

    while ((c = accept4(fd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
        close(c);
        n++;
    }
    return n;
}

/* The first sentinel takes connections and never answers (as one that
 * is SIGSTOPped): it costs a share of the call's time, not all of it,
 * so calls and the subscriber still reach the master through the
 * second; and the next connect does not start at the hung one again. */
static void
test_hung_sentinel(void **state)
{
    static const char *const kill_all[] = {"CLIENT", "KILL", "TYPE",
                                           "normal", NULL};
    struct redis_server master, sentinel;
    struct inbox in = INBOX_INIT;
    modmta_shared *s, *pub;
    modmta_shared_sub *sub = NULL;
    char dir[256], hung[64], json[512];
    int port, fd, rc = MODMTA_E_TEMP;

    (void)state;
    modmta_test_tmpdir(dir, sizeof(dir), "test_shared_sentinel_hung");
    redis_server_start(&master, dir, "master", 1, NULL);
    redis_server_start_sentinel(&sentinel, dir, "sentinel", master.port);
    port = modmta_test_bind(SOCK_STREAM, INADDR_LOOPBACK, 0, &fd);
    assert_true(port > 0);
    assert_int_equal(listen(fd, 64), 0);        /* never accepted */
    fcntl(fd, F_SETFL, O_NONBLOCK);
    snprintf(hung, sizeof(hung), "127.0.0.1:%d", port);
    snprintf(json, sizeof(json), "{\"sentinels\": [\"%s\", \"%%s\"], "
             "\"master\": \"mymaster\", \"timeout\": 2, "
             "\"connect_timeout\": 2, \"pool\": 1, \"prefix\": \"hs:\"}",
             hung);
    s = redis_store(json, sentinel.address);
    pub = redis_store(json, sentinel.address);
    /* the first call, not a later one */
    assert_int_equal(modmta_shared_set(s, "k", "v", 0), 0);
    assert_int_equal(modmta_shared_get(s, "k", NULL), 1);
    assert_true(drain(fd) >= 1);                /* it was asked first */
    /* a new connection asks the sentinel that answered */
    assert_true(redis_server_int(&master, kill_all) >= 1);
    assert_int_equal(modmta_shared_get(s, "k", NULL), 1);
    assert_int_equal(drain(fd), 0);
    /* the subscriber's thread too; before the fix every attempt of it
     * started at the hung sentinel and none succeeded */
    for (int i = 0; i < 5 && rc != 0; i++)
        rc = modmta_shared_subscribe(s, "ctl", inbox_cb, &in, &sub);
    assert_int_equal(rc, 0);
    publish_until_heard(pub, 1, "ctl", "hello");
    inbox_wait(&in, 1);
    modmta_shared_unsubscribe(sub);
    modmta_shared_free(s);
    modmta_shared_free(pub);
    close(fd);
    redis_server_stop(&sentinel, 0);
    redis_server_stop(&master, 0);
    modmta_test_rmtree(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hung_sentinel),
        cmocka_unit_test(test_failover),
    };

    signal(SIGPIPE, SIG_IGN);           /* as the daemon: see redis_priv.h */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
