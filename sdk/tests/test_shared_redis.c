/*
 * The Redis backend of the shared state, what only Redis has: nothing
 * connects before the first call; the command timeout against a server
 * that never answers, and a deadline that ends calls sooner: a hook's
 * time budget, or a thread's own (budget_set); AUTH with the right, a
 * wrong and no password (and the password never in the log); SELECT; an
 * outage (Redis stopped, Redis hung) that answers MODMTA_E_TEMP within
 * about the timeout and heals by itself once Redis is back; a
 * subscriber that resumes after a restart, and whose thread waits for a
 * retry after a failure; a replica refusing writes (READONLY) without a
 * storm of connects, and a caller held back after it connecting when
 * the delay ends; a lease in one round trip; listing keys and writing
 * many at once (map import); many threads through a pool of two
 * connections.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <modmta/modmta.h>

#include <files.h>
#include <servers.h>

#include "budget_priv.h"
#include "ctx_priv.h"
#include "shared_priv.h"
#include "shared_test.h"

/* A call must end within the timeout (1 s here); this bound only tells
 * a hang from an answer. */
#define SLOW_MS 3000

static char dir[256];

/* Log lines (stderr) go to a file between log_start and log_end, which
 * returns what was written (free it). */
static int log_saved = -1;

static void
log_start(void)
{
    char path[300];
    int fd;

    snprintf(path, sizeof(path), "%s/log", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    log_saved = dup(2);
    dup2(fd, 2);
    close(fd);
}

static char *
log_end(void)
{
    char path[300], *text;

    dup2(log_saved, 2);
    close(log_saved);
    snprintf(path, sizeof(path), "%s/log", dir);
    text = modmta_test_read_file(path, NULL);
    assert_non_null(text);
    fprintf(stderr, "%s", text);        /* for the test's own log */
    return text;
}

/* Call get until it succeeds (the store heals by itself), at most 15 s. */
static void
wait_healed(modmta_shared *s)
{
    int rc = MODMTA_E_TEMP;

    for (int i = 0; i < 300 && rc < 0; i++) {
        rc = modmta_shared_set(s, "healed", "yes", 0);
        if (rc < 0)
            sleep_ms(50);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(modmta_shared_get(s, "healed", NULL), 1);
}

/* A loopback listener that never accepts: connections complete (the
 * kernel's queue), commands are never answered. Its fd; "IP:port" into
 * address. */
static int
silent_server(char address[64])
{
    int fd, port = modmta_test_bind(SOCK_STREAM, INADDR_LOOPBACK, 0, &fd);

    assert_true(port > 0);
    assert_int_equal(listen(fd, 16), 0);
    snprintf(address, 64, "127.0.0.1:%d", port);
    return fd;
}

/* Nothing connects before the first call; a server that takes the
 * connection and never answers costs a call its timeout, no more. */
static void
test_lazy_and_timeout(void **state)
{
    struct pollfd p = {.events = POLLIN};
    modmta_shared *s;
    char address[64], *log;
    long long t;

    (void)state;
    p.fd = silent_server(address);
    s = redis_store("{\"address\": \"%s\", \"timeout\": 1, "
                    "\"prefix\": \"lz:\"}", address);
    assert_int_equal(poll(&p, 1, 0), 0);        /* no connection yet */
    log_start();
    t = now_ms();
    assert_int_equal(modmta_shared_get(s, "k", NULL), MODMTA_E_TEMP);
    t = now_ms() - t;
    log = log_end();
    assert_true(t < SLOW_MS);
    assert_int_equal(poll(&p, 1, 0), 1);        /* it did connect */
    assert_non_null(strstr(log, "timed out"));
    free(log);
    modmta_shared_free(s);
    close(p.fd);
}

/* A thread's own deadline (budget_set, outside any hook) ends its calls
 * before their timeout (30 s here): what keeps modmtactl reload
 * --cluster within its --timeout. */
static void
test_thread_deadline(void **state)
{
    modmta_shared *s;
    char address[64];
    long long t;
    int fd;

    (void)state;
    fd = silent_server(address);
    s = redis_store("{\"address\": \"%s\", \"timeout\": 30, "
                    "\"prefix\": \"td:\"}", address);
    t = now_ms();
    budget_set(t + 200);
    assert_int_equal(modmta_shared_get(s, "k", NULL), MODMTA_E_TEMP);
    assert_true(now_ms() - t < SLOW_MS);
    /* passed: at once */
    assert_int_equal(modmta_shared_get(s, "k", NULL), MODMTA_E_TEMP);
    assert_true(now_ms() - t < SLOW_MS);
    budget_set(0);
    modmta_shared_free(s);
    close(fd);
}

/* A call inside a hook ends by the hook's deadline, far before the
 * store's own timeout (longer than the test may run), says the budget
 * stopped it, and is not logged as the server's failure: the chain
 * logs the hook, and the next call is not held back. */
static void
test_hook_budget(void **state)
{
    modmta_ctx *ctx = modmta_ctx_new(NULL);
    modmta_shared *s;
    char address[64], *log;
    int fd;

    (void)state;
    fd = silent_server(address);
    s = redis_store("{\"address\": \"%s\", \"timeout\": 600, "
                    "\"connect_timeout\": 600, \"prefix\": \"hb:\"}",
                    address);
    log_start();
    for (int i = 0; i < 2; i++) {
        budget_begin(ctx, budget_now_ms() + 200);
        assert_int_equal(modmta_shared_get(s, "k", NULL), MODMTA_E_TEMP);
        assert_int_equal(budget_end(ctx), 1);
    }
    log = log_end();
    assert_null(strstr(log, "redis:"));
    free(log);
    modmta_shared_free(s);
    close(fd);
    modmta_ctx_free(ctx);
}

static void
test_password(void **state)
{
    static const char *const extra[] = {"--requirepass", "sesame-42x", NULL};
    struct redis_server srv;
    modmta_shared *good, *bad, *none;
    modmta_shared_sub *sub;
    struct inbox in = INBOX_INIT;
    char *v, *log;

    (void)state;
    redis_server_start(&srv, dir, "auth", 0, extra);
    good = redis_store("{\"address\": \"%s\", \"password\": \"sesame-42x\"}",
                       srv.address);
    bad = redis_store("{\"address\": \"%s\", \"password\": \"wrong-pass-77\"}",
                      srv.address);
    none = redis_store("{\"address\": \"%s\"}", srv.address);
    assert_int_equal(modmta_shared_set(good, "k", "v", 0), 0);
    assert_int_equal(modmta_shared_get(good, "k", &v), 1);
    assert_string_equal(v, "v");
    modmta_free(v);
    log_start();
    assert_int_equal(modmta_shared_get(bad, "k", NULL), MODMTA_E_TEMP);
    assert_int_equal(modmta_shared_subscribe(bad, "c", inbox_cb, &in, &sub),
                     MODMTA_E_TEMP);
    assert_int_equal(modmta_shared_get(none, "k", NULL), MODMTA_E_TEMP);
    log = log_end();
    assert_non_null(strstr(log, "AUTH: WRONGPASS"));
    assert_non_null(strstr(log, "NOAUTH"));
    assert_null(strstr(log, "wrong-pass-77"));
    assert_null(strstr(log, "sesame-42x"));
    free(log);
    modmta_shared_free(good);
    modmta_shared_free(bad);
    modmta_shared_free(none);
    redis_server_stop(&srv, 0);
}

/* Stores on different databases of one server see different keys. */
static void
test_db(void **state)
{
    static const char *const get[] = {"GET", "d:k", NULL};
    struct redis_server srv;
    modmta_shared *one, *two, *zero;
    redisReply *r;

    (void)state;
    redis_server_start(&srv, dir, "db", 0, NULL);
    one = redis_store("{\"address\": \"%s\", \"db\": 1, \"prefix\": \"d:\"}",
                      srv.address);
    two = redis_store("{\"address\": \"%s\", \"db\": 2, \"prefix\": \"d:\"}",
                      srv.address);
    zero = redis_store("{\"address\": \"%s\", \"prefix\": \"d:\"}",
                       srv.address);
    assert_int_equal(modmta_shared_set(one, "k", "one", 0), 0);
    assert_int_equal(modmta_shared_get(one, "k", NULL), 1);
    assert_int_equal(modmta_shared_get(two, "k", NULL), 0);
    assert_int_equal(modmta_shared_get(zero, "k", NULL), 0);
    r = redis_server_cmd(&srv, NULL, 1, get);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "one");
    freeReplyObject(r);
    modmta_shared_free(one);
    modmta_shared_free(two);
    modmta_shared_free(zero);
    redis_server_stop(&srv, 0);
}

/* Every kind of call during an outage: MODMTA_E_TEMP, within about the
 * timeout. */
static void
check_down(modmta_shared *s)
{
    struct inbox in = INBOX_INIT;
    modmta_shared_sub *sub;
    long long t, v;

    t = now_ms();
    assert_int_equal(modmta_shared_get(s, "k", NULL), MODMTA_E_TEMP);
    assert_true(now_ms() - t < SLOW_MS);
    t = now_ms();
    assert_int_equal(modmta_shared_set(s, "k", "v", 0), MODMTA_E_TEMP);
    assert_true(now_ms() - t < SLOW_MS);
    t = now_ms();
    assert_int_equal(modmta_shared_incr(s, "c", 1, 60, &v), MODMTA_E_TEMP);
    assert_true(now_ms() - t < SLOW_MS);
    t = now_ms();
    assert_int_equal(modmta_shared_lease(s, "l", "me", 1000), MODMTA_E_TEMP);
    assert_true(now_ms() - t < SLOW_MS);
    t = now_ms();
    assert_int_equal(modmta_shared_publish(s, "c", "m"), MODMTA_E_TEMP);
    assert_true(now_ms() - t < SLOW_MS);
    t = now_ms();
    assert_int_equal(modmta_shared_subscribe(s, "c", inbox_cb, &in, &sub),
                     MODMTA_E_TEMP);
    assert_true(now_ms() - t < 2 * SLOW_MS);
}

/* Redis stopped, then hung (SIGSTOP): calls fail fast and the same store
 * works again once Redis is back. */
static void
test_outage(void **state)
{
    struct redis_server srv;
    modmta_shared *s;
    long long v;

    (void)state;
    redis_server_start(&srv, dir, "outage", 1, NULL);
    s = redis_store("{\"address\": \"%s\", \"timeout\": 1, "
                    "\"connect_timeout\": 1, \"pool\": 2, \"prefix\": \"o:\"}",
                    srv.address);
    assert_int_equal(modmta_shared_incr(s, "c", 1, 60, &v), 0);
    assert_int_equal(v, 1);
    /* a restart while the pool is idle costs no failed call */
    redis_server_stop(&srv, 0);
    redis_server_restart(&srv);
    assert_int_equal(modmta_shared_incr(s, "c", 1, 60, &v), 0);
    assert_int_equal(v, 1);
    redis_server_stop(&srv, 0);
    check_down(s);
    check_down(s);                  /* with the connect held back */
    redis_server_restart(&srv);
    wait_healed(s);
    assert_int_equal(modmta_shared_incr(s, "c", 1, 60, &v), 0);
    assert_int_equal(v, 1);         /* a new, empty Redis */
    kill(srv.pid, SIGSTOP);
    check_down(s);
    kill(srv.pid, SIGCONT);
    wait_healed(s);
    /* the increment that timed out may have been done after all, once
     * Redis woke up: a timeout is no proof that nothing happened */
    assert_int_equal(modmta_shared_incr(s, "c", 1, 60, &v), 0);
    assert_true(v == 2 || v == 3);
    modmta_shared_free(s);
    redis_server_stop(&srv, 0);
}

/* The threads of this process. */
static int
thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A subscription that fails (Redis down) leaves the subscriber's thread
 * waiting for the retry (the cluster retries every second): not a
 * thread started and joined at each attempt. */
static void
test_subscribe_retry(void **state)
{
    struct inbox in = INBOX_INIT;
    modmta_shared *s;
    modmta_shared_sub *sub;
    char address[64];
    int before, after;

    (void)state;
    snprintf(address, sizeof(address), "127.0.0.1:%d",
             modmta_test_free_port(NULL));
    s = redis_store("{\"address\": \"%s\", \"timeout\": 1, "
                    "\"prefix\": \"sr:\"}", address);
    before = thread_count();
    assert_int_equal(modmta_shared_subscribe(s, "c", inbox_cb, &in, &sub),
                     MODMTA_E_TEMP);
    after = thread_count();
    assert_int_equal(after, before + 1);
    assert_int_equal(modmta_shared_subscribe(s, "c", inbox_cb, &in, &sub),
                     MODMTA_E_TEMP);
    assert_int_equal(thread_count(), after);
    modmta_shared_free(s);
    assert_int_equal(thread_count(), before);
}

/* A subscription lives through a restart of Redis. */
static void
test_subscriber_resumes(void **state)
{
    struct redis_server srv;
    struct inbox in = INBOX_INIT;
    modmta_shared *sub_store, *pub_store;
    modmta_shared_sub *sub;

    (void)state;
    redis_server_start(&srv, dir, "resume", 1, NULL);
    sub_store = redis_store("{\"address\": \"%s\", \"timeout\": 1, "
                            "\"prefix\": \"r:\"}", srv.address);
    pub_store = redis_store("{\"address\": \"%s\", \"timeout\": 1, "
                            "\"prefix\": \"r:\"}", srv.address);
    assert_int_equal(modmta_shared_subscribe(sub_store, "ctl", inbox_cb, &in,
                                             &sub), 0);
    assert_int_equal(modmta_shared_publish(pub_store, "ctl", "one"), 1);
    inbox_wait(&in, 1);
    redis_server_stop(&srv, 0);
    redis_server_restart(&srv);
    /* published before the subscriber is back: lost, counted 0 */
    publish_until_heard(pub_store, 1, "ctl", "two");
    inbox_wait(&in, 2);
    assert_string_equal(in.last, "two");
    assert_string_equal(in.channel, "ctl");
    modmta_shared_unsubscribe(sub);
    publish_until_heard(pub_store, 0, "ctl", "three");
    modmta_shared_free(sub_store);
    modmta_shared_free(pub_store);
    redis_server_stop(&srv, 0);
}

/* A store pointed at a replica reads, and refuses to write: READONLY is
 * MODMTA_E_TEMP (the connection is dropped, so that with Sentinel the
 * next call asks for the master again). */
static void
test_readonly(void **state)
{
    static const char *const set[] = {"SET", "ro:k", "v", NULL};
    static const char *const wait[] = {"WAIT", "1", "5000", NULL};
    struct redis_server master, replica;
    modmta_shared *s, *s2;
    redisReply *r;
    char *v, *log;

    (void)state;
    redis_server_start(&master, dir, "rw", 1, NULL);
    redis_server_start_replica(&replica, dir, "ro", &master);
    r = redis_server_cmd(&master, NULL, 0, set);
    assert_non_null(r);
    freeReplyObject(r);
    assert_true(redis_server_int(&master, wait) >= 1);
    s = redis_store("{\"address\": \"%s\", \"prefix\": \"ro:\"}",
                    replica.address);
    assert_int_equal(modmta_shared_get(s, "k", &v), 1);
    assert_string_equal(v, "v");
    modmta_free(v);
    s2 = redis_store("{\"address\": \"%s\", \"prefix\": \"ro:\"}",
                     replica.address);
    log_start();
    assert_int_equal(modmta_shared_set(s, "k", "w", 0), MODMTA_E_TEMP);
    /* (another store: s makes no new connection for a second now) */
    assert_int_equal(modmta_shared_incr(s2, "n", 1, 60, NULL),
                     MODMTA_E_TEMP);
    log = log_end();
    assert_non_null(strstr(log, "SET: READONLY"));
    assert_non_null(strstr(log, "EVAL: READONLY"));
    free(log);
    modmta_shared_free(s);
    modmta_shared_free(s2);
    redis_server_stop(&replica, 0);
    redis_server_stop(&master, 0);
}

/* The integer field of INFO section on srv ("name:N", or "name=N" in
 * a line of commandstats); 0 when INFO does not show it. */
static long long
info_int(const struct redis_server *srv, const char *section,
         const char *field)
{
    const char *argv[] = {"INFO", section, NULL};
    redisReply *r = redis_server_cmd(srv, NULL, 0, argv);
    const char *at;
    long long n;

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    at = strstr(r->str, field);
    n = at != NULL ? atoll(at + strlen(field) + 1) : 0;
    freeReplyObject(r);
    return n;
}

/* A lease is one call to Redis (one script), whether it is taken,
 * renewed or held by another: no SET NX first, after which the key
 * could expire before a renewal and be reported held by someone else.
 * (commandstats counts the commands a script runs too.) */
static void
test_lease_one_call(void **state)
{
    struct redis_server srv;
    modmta_shared *s;
    long long evals, sets;

    (void)state;
    redis_server_start(&srv, dir, "lease", 0, NULL);
    s = redis_store("{\"address\": \"%s\", \"prefix\": \"ls:\"}",
                    srv.address);
    evals = info_int(&srv, "commandstats", "cmdstat_eval:calls");
    sets = info_int(&srv, "commandstats", "cmdstat_set:calls");
    assert_int_equal(modmta_shared_lease(s, "box", "a", 60000), 1);
    assert_int_equal(modmta_shared_lease(s, "box", "a", 60000), 1);
    assert_int_equal(modmta_shared_lease(s, "box", "b", 60000), 0);
    assert_int_equal(info_int(&srv, "commandstats", "cmdstat_eval:calls"),
                     evals + 3);
    assert_int_equal(info_int(&srv, "commandstats", "cmdstat_set:calls"),
                     sets + 1);
    modmta_shared_free(s);
    redis_server_stop(&srv, 0);
}

/* A replica refuses every write: a connection that got READONLY is
 * dropped, but the store does not connect again for every call (200
 * calls once opened 201 connections). */
static void
test_readonly_no_storm(void **state)
{
    struct redis_server master, replica;
    modmta_shared *s;
    long long before, after;

    (void)state;
    redis_server_start(&master, dir, "st-rw", 1, NULL);
    redis_server_start_replica(&replica, dir, "st-ro", &master);
    s = redis_store("{\"address\": \"%s\", \"prefix\": \"st:\"}",
                    replica.address);
    before = info_int(&replica, "stats", "total_connections_received");
    for (int i = 0; i < 200; i++)
        assert_int_equal(modmta_shared_set(s, "k", "v", 0), MODMTA_E_TEMP);
    after = info_int(&replica, "stats", "total_connections_received");
    /* the calls, and the INFO connection of "after" */
    assert_true(after - before <= 100);
    modmta_shared_free(s);
    redis_server_stop(&replica, 0);
    redis_server_stop(&master, 0);
}

struct paused_call {
    modmta_shared *s;
    pthread_mutex_t lock;
    int done;
};

static void *
paused_incr(void *arg)
{
    struct paused_call *p = arg;

    (void)modmta_shared_incr(p->s, "n", 1, 60, NULL);
    pthread_mutex_lock(&p->lock);
    p->done = 1;
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* A caller held back by the delay after a refusal connects when the
 * delay ends, not only when a connection in use comes back: one
 * connection is stuck in a call the replica postpones (CLIENT PAUSE
 * WRITE holds EVAL back) until its timeout, 5 s; a read made after a
 * READONLY gets through while that call still waits. */
static void
test_held_back_caller(void **state)
{
    static const char *const pause[] = {"CLIENT", "PAUSE", "20000", "WRITE",
                                        NULL};
    static const char *const unpause[] = {"CLIENT", "UNPAUSE", NULL};
    struct redis_server master, replica;
    struct paused_call p = {NULL, PTHREAD_MUTEX_INITIALIZER, 0};
    modmta_shared *s;
    redisReply *r;
    pthread_t t;
    int done;

    (void)state;
    redis_server_start(&master, dir, "hb-rw", 1, NULL);
    redis_server_start_replica(&replica, dir, "hb-ro", &master);
    s = redis_store("{\"address\": \"%s\", \"pool\": 2, \"timeout\": 5, "
                    "\"prefix\": \"hb:\"}", replica.address);
    p.s = s;
    r = redis_server_cmd(&replica, NULL, 0, pause);
    assert_non_null(r);
    freeReplyObject(r);
    assert_int_equal(pthread_create(&t, NULL, paused_incr, &p), 0);
    redis_server_wait_info(&replica, "clients", "blocked_clients:1");
    /* the second connection: refused, dropped, connects held back */
    assert_int_equal(modmta_shared_set(s, "k", "v", 0), MODMTA_E_TEMP);
    assert_int_equal(modmta_shared_get(s, "k", NULL), 0);
    pthread_mutex_lock(&p.lock);
    done = p.done;
    pthread_mutex_unlock(&p.lock);
    assert_false(done);
    r = redis_server_cmd(&replica, NULL, 0, unpause);
    assert_non_null(r);
    freeReplyObject(r);
    pthread_join(t, NULL);
    modmta_shared_free(s);
    redis_server_stop(&replica, 0);
    redis_server_stop(&master, 0);
}

/* What modmtactl map import uses: the keys under a start (whose glob
 * characters are no pattern), and an atomic delete-and-set that writes
 * nothing when one of its keys is bad; neither in memory. */
static void
test_keys_and_write_all(void **state)
{
    struct redis_server srv;
    modmta_shared *s, *mem;
    modmta_err err;
    char **keys, *v;
    char *del[] = {"g[1]*:a"}, *set[] = {"g[1]*:n", "g1x:new"};
    char *bad[] = {"g[1]*:ok", "g[1]*: bad"};
    const char *values[] = {"N", "X"};
    size_t n;

    (void)state;
    redis_server_start(&srv, dir, "keys", 0, NULL);
    s = redis_store("{\"address\": \"%s\", \"prefix\": \"kw:\"}",
                    srv.address);
    assert_int_equal(modmta_shared_set(s, "g[1]*:b", "2", 0), 0);
    assert_int_equal(modmta_shared_set(s, "g[1]*:a", "1", 0), 0);
    assert_int_equal(modmta_shared_set(s, "g1x:c", "3", 0), 0);
    assert_int_equal(shared_keys(s, "g[1]*:", &keys, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(keys[0], "g[1]*:a");
    assert_string_equal(keys[1], "g[1]*:b");
    assert_null(keys[2]);
    modmta_strlist_free(keys);

    assert_int_equal(shared_write_all(s, bad, 0, bad, values, 2),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_shared_get(s, "g[1]*:ok", NULL), 0);
    assert_int_equal(shared_write_all(s, del, 1, set, values, 2), 0);
    assert_int_equal(modmta_shared_get(s, "g[1]*:a", NULL), 0);
    assert_int_equal(modmta_shared_get(s, "g[1]*:b", NULL), 1);
    assert_int_equal(modmta_shared_get(s, "g1x:new", &v), 1);
    assert_string_equal(v, "X");
    modmta_free(v);
    assert_int_equal(shared_keys(s, "nothing:", &keys, &n), 0);
    assert_int_equal(n, 0);
    modmta_strlist_free(keys);
    modmta_shared_free(s);

    /* Redis down: a temporary failure */
    redis_server_stop(&srv, 0);
    s = redis_store("{\"address\": \"%s\", \"prefix\": \"kw:\"}",
                    srv.address);
    assert_int_equal(shared_keys(s, "g", &keys, &n), MODMTA_E_TEMP);
    assert_int_equal(shared_write_all(s, del, 1, set, values, 2),
                     MODMTA_E_TEMP);
    modmta_shared_free(s);
    mem = shared_new_mem("kw:", &err);
    assert_non_null(mem);
    assert_int_equal(shared_keys(mem, "g", &keys, &n), MODMTA_E_UNSUPPORTED);
    assert_int_equal(shared_write_all(mem, del, 1, set, values, 2),
                     MODMTA_E_UNSUPPORTED);
    modmta_shared_free(mem);
}

#define POOL_THREADS 8
#define POOL_INCRS 500

static void *
pool_thread(void *arg)
{
    modmta_shared *s = arg;

    for (int i = 0; i < POOL_INCRS; i++)
        if (modmta_shared_incr(s, "n", 1, 60, NULL) < 0)
            return (void *)1;
    return NULL;
}

/* Eight threads through two connections: every increment counted, and
 * no more than two connections made. */
static void
test_pool_of_two(void **state)
{
    static const char *const info[] = {"INFO", "clients", NULL};
    struct redis_server srv;
    pthread_t t[POOL_THREADS];
    modmta_shared *s;
    redisReply *r;
    const char *clients;
    long long v;
    void *ret;
    int n;

    (void)state;
    redis_server_start(&srv, dir, "pool", 0, NULL);
    s = redis_store("{\"address\": \"%s\", \"pool\": 2, \"prefix\": \"p:\"}",
                    srv.address);
    for (int i = 0; i < POOL_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, pool_thread, s), 0);
    for (int i = 0; i < POOL_THREADS; i++) {
        pthread_join(t[i], &ret);
        assert_null(ret);
    }
    assert_int_equal(modmta_shared_incr(s, "n", 0, 60, &v), 0);
    assert_int_equal(v, POOL_THREADS * POOL_INCRS);
    /* at most the pool's two, and this one */
    r = redis_server_cmd(&srv, NULL, 0, info);
    assert_non_null(r);
    assert_non_null(clients = strstr(r->str, "connected_clients:"));
    n = atoi(clients + strlen("connected_clients:"));
    assert_true(n >= 2 && n <= 3);
    freeReplyObject(r);
    modmta_shared_free(s);
    redis_server_stop(&srv, 0);
}

static int
group_setup(void **state)
{
    (void)state;
    modmta_test_tmpdir(dir, sizeof(dir), "test_shared_redis");
    return 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    modmta_test_rmtree(dir);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lazy_and_timeout),
        cmocka_unit_test(test_thread_deadline),
        cmocka_unit_test(test_hook_budget),
        cmocka_unit_test(test_password),
        cmocka_unit_test(test_db),
        cmocka_unit_test(test_outage),
        cmocka_unit_test(test_subscribe_retry),
        cmocka_unit_test(test_subscriber_resumes),
        cmocka_unit_test(test_readonly),
        cmocka_unit_test(test_readonly_no_storm),
        cmocka_unit_test(test_held_back_caller),
        cmocka_unit_test(test_lease_one_call),
        cmocka_unit_test(test_keys_and_write_all),
        cmocka_unit_test(test_pool_of_two),
    };

    signal(SIGPIPE, SIG_IGN);           /* as the daemon: see redis_priv.h */
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
