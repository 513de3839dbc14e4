/*
 * Unit tests of the durable queue (core/queue.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <jansson.h>

#include <files.h>

#include <modmta/ctx.h>

#include "queue.h"

#define BODY "From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n"

struct fixture {
    char spool[64];
};

static int
setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    modmta_test_tmpdir(fx->spool, sizeof(fx->spool), "modmta-qtest");
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *fx = *state;

    modmta_test_rmtree(fx->spool);
    free(fx);
    return 0;
}

static queue *
open_q(const struct fixture *fx)
{
    modmta_err err;
    queue *q = queue_open(fx->spool, &err);

    if (q == NULL)
        fail_msg("queue_open: %s", err.msg);
    return q;
}

/* The subdirectory character of an ID (queue.c's rule). */
static char
sub_of(const char *id)
{
    size_t n = strlen(id);

    return id[n > 14 ? 14 : n - 1];
}

/* <spool>/<top>/X/<id><suffix> */
static void
qpath(char *buf, size_t len, const struct fixture *fx, const char *top,
      const char *id, const char *suffix)
{
    snprintf(buf, len, "%s/%s/%c/%s%s", fx->spool, top, sub_of(id), id,
             suffix);
}

/* Files (not directories) in <spool>/<sub> and one level below. */
static int
count_files_in(const char *path, int depth)
{
    struct dirent *de;
    char sub[512];
    int n = 0;
    DIR *d = opendir(path);

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        struct stat st;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
        assert_int_equal(lstat(sub, &st), 0);
        if (!S_ISDIR(st.st_mode))
            n++;
        else if (depth > 0)
            n += count_files_in(sub, depth - 1);
    }
    closedir(d);
    return n;
}

static int
count_dir(const struct fixture *fx, const char *sub)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s", fx->spool, sub);
    return count_files_in(path, 1);
}

static int
file_exists(const struct fixture *fx, const char *sub, const char *name)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s/%s", fx->spool, sub, name);
    return access(path, F_OK) == 0;
}

/* Does <top>/X/<id><suffix> exist? */
static int
qfile_exists(const struct fixture *fx, const char *top, const char *id,
             const char *suffix)
{
    char path[256];

    qpath(path, sizeof(path), fx, top, id, suffix);
    return access(path, F_OK) == 0;
}

static void
touch_path(const char *path, const char *content)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

/* <spool>/<sub>/<name>, for files at the top of a spool directory. */
static void
touch(const struct fixture *fx, const char *sub, const char *name,
      const char *content)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s/%s", fx->spool, sub, name);
    touch_path(path, content);
}

/* <spool>/<top>/X/<id><suffix> */
static void
qtouch(const struct fixture *fx, const char *top, const char *id,
       const char *suffix, const char *content)
{
    char path[256];

    qpath(path, sizeof(path), fx, top, id, suffix);
    touch_path(path, content);
}

/* Does this file system take user xattrs (then the fast path must)? */
static int
fs_has_xattrs(const struct fixture *fx)
{
    char path[256];
    int ok;

    snprintf(path, sizeof(path), "%s/xattr-probe", fx->spool);
    touch_path(path, "");
    ok = setxattr(path, "user.probe", "1", 1, 0) == 0;
    unlink(path);
    return ok;
}

/* The committed envelope as stored: ID.env, else the xattr. */
static json_t *
envelope_json(const struct fixture *fx, const char *id)
{
    char path[256], buf[65536];
    ssize_t n;

    qpath(path, sizeof(path), fx, "queue", id, ".env");
    if (access(path, F_OK) == 0)
        return json_load_file(path, 0, NULL);
    qpath(path, sizeof(path), fx, "queue", id, ".msg");
    n = getxattr(path, "user.modmta.env", buf, sizeof(buf));
    return n > 0 ? json_loadb(buf, (size_t)n, 0, NULL) : NULL;
}

static int count_cb(const queue_env *env, void *arg);

/* Commit BODY with two recipients; the ID goes to id_r. */
static void
commit_msg(queue *q, time_t arrival, char id_r[QUEUE_ID_MAX])
{
    modmta_err err;
    queue_writer *w = queue_writer_new(q, &err);
    queue_rcpt rcpts[2] = {
        {.addr = "bob@example.com", .orcpt = "bob@example.com"},
        {.addr = "carol@example.com", .orcpt = "c@example.com"},
    };
    queue_env env = {
        .sender = "alice@example.org", .rcpts = rcpts, .nrcpts = 2,
        .arrival = arrival, .client_addr = "127.0.0.1",
        .client_name = "localhost", .helo = "client.example.org",
        .protocol = "ESMTP",
    };

    assert_non_null(w);
    assert_int_equal(queue_writer_write(w, BODY, strlen(BODY)), 0);
    assert_int_equal(queue_writer_commit(w, &env), 0);
    assert_true(queue_id_valid(env.id));
    snprintf(id_r, QUEUE_ID_MAX, "%s", env.id);
}

static void
test_roundtrip(void **state)
{
    struct fixture *fx = *state;
    queue *q = open_q(fx);
    modmta_err err;
    queue_writer *w = queue_writer_new(q, &err);
    queue_rcpt rcpts[2] = {
        {.addr = "bob@example.com", .orcpt = "b@example.com",
         .state = QRCPT_DELIVERED, .status = "250 2.0.0 ok"},
        {.addr = "carol@example.com", .orcpt = "carol@example.com",
         .state = QRCPT_FAILED, .status = "550 5.1.1 no", .dsn_sent = 1,
         .no_dsn = 1, .sender = "owner-list@example.com"},
    };
    queue_env env = {
        .sender = "alice@example.org", .rcpts = rcpts, .nrcpts = 2,
        .arrival = 1700000000, .client_addr = "127.0.0.1",
        .client_name = "localhost", .helo = "client.example.org",
        .protocol = "ESMTPS", .auth_user = "alice", .quarantine = "spam",
        .attempts = 3, .next_retry = 1700000600, .held = 1,
    };
    char path[256], id[QUEUE_ID_MAX];
    queue_env *got;
    json_t *o;
    char *content;

    assert_non_null(w);
    snprintf(id, sizeof(id), "%s", queue_writer_id(w));
    assert_int_equal(queue_writer_write(w, BODY, strlen(BODY)), 0);
    assert_int_equal(queue_writer_size(w), (off_t)strlen(BODY));
    assert_int_equal(queue_writer_commit(w, &env), 0);
    assert_string_equal(env.id, id);
    assert_int_equal(env.size, (off_t)strlen(BODY));

    assert_int_equal(queue_load(q, id, &got), 0);
    assert_string_equal(got->id, id);
    assert_string_equal(got->sender, "alice@example.org");
    assert_int_equal(got->nrcpts, 2);
    assert_string_equal(got->rcpts[0].addr, "bob@example.com");
    assert_string_equal(got->rcpts[0].orcpt, "b@example.com");
    assert_int_equal(got->rcpts[0].state, QRCPT_DELIVERED);
    assert_string_equal(got->rcpts[0].status, "250 2.0.0 ok");
    assert_int_equal(got->rcpts[0].dsn_sent, 0);
    assert_int_equal(got->rcpts[1].state, QRCPT_FAILED);
    assert_int_equal(got->rcpts[1].dsn_sent, 1);
    assert_int_equal(got->rcpts[0].no_dsn, 0);
    assert_int_equal(got->rcpts[1].no_dsn, 1);
    assert_null(got->rcpts[0].sender);
    assert_string_equal(got->rcpts[1].sender, "owner-list@example.com");
    assert_int_equal(got->arrival, 1700000000);
    assert_string_equal(got->client_addr, "127.0.0.1");
    assert_string_equal(got->client_name, "localhost");
    assert_string_equal(got->helo, "client.example.org");
    assert_string_equal(got->protocol, "ESMTPS");
    assert_string_equal(got->auth_user, "alice");
    assert_string_equal(got->quarantine, "spam");
    assert_int_equal(got->attempts, 3);
    assert_int_equal(got->next_retry, 1700000600);
    assert_int_equal(got->held, 1);
    assert_int_equal(got->size, (off_t)strlen(BODY));
    assert_int_equal(got->recovered, 0);
    queue_env_free(got);

    assert_int_equal(queue_content_path(q, id, path, sizeof(path)), 0);
    content = modmta_test_read_file(path, NULL);
    assert_non_null(content);
    assert_string_equal(content, BODY);
    free(content);
    /* Nothing left behind in tmp/, files private, envelope versioned:
     * in the content file's xattr (one file per message) where the file
     * system takes xattrs, else in ID.env beside it. */
    assert_int_equal(count_dir(fx, "tmp"), 0);
    char expect[256];
    qpath(expect, sizeof(expect), fx, "queue", id, ".msg");
    assert_string_equal(path, expect);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    o = envelope_json(fx, id);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "version")), 1);
    /* a recipient without its own sender has no "sender" key */
    assert_null(json_object_get(json_array_get(json_object_get(o, "rcpts"),
                                               0), "sender"));
    json_decref(o);
    assert_int_equal(count_dir(fx, "queue"), fs_has_xattrs(fx) ? 1 : 2);
    snprintf(path, sizeof(path), "%s/queue", fx->spool);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/queue/%c", fx->spool, sub_of(id));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    assert_int_equal(queue_load(q, "NOSUCHID", &got), MODMTA_E_NOTFOUND);
    assert_null(got);
    assert_int_equal(queue_load(q, "../queue/x", &got), MODMTA_E_INVAL);
    queue_close(q);
}

struct seen {
    char ids[8][QUEUE_ID_MAX];
    time_t arrivals[8];
    int n, stop_at;
};

static int
collect(const queue_env *env, void *arg)
{
    struct seen *s = arg;

    snprintf(s->ids[s->n], QUEUE_ID_MAX, "%s", env->id);
    s->arrivals[s->n++] = env->arrival;
    return s->n == s->stop_at;
}

static void
test_foreach_order(void **state)
{
    struct fixture *fx = *state;
    queue *q = open_q(fx);
    char a[QUEUE_ID_MAX], b[QUEUE_ID_MAX], c[QUEUE_ID_MAX];
    struct seen s = {.stop_at = 0};

    commit_msg(q, 3000, a);
    commit_msg(q, 1000, b);
    commit_msg(q, 2000, c);
    assert_int_equal(queue_foreach(q, collect, &s), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.ids[0], b);
    assert_string_equal(s.ids[1], c);
    assert_string_equal(s.ids[2], a);
    assert_int_equal(s.arrivals[0], 1000);

    memset(&s, 0, sizeof(s));
    s.stop_at = 2;
    assert_int_equal(queue_foreach(q, collect, &s), 0);
    assert_int_equal(s.n, 2);
    queue_close(q);
}

/* Each interrupted state of the spool, at open. */
static void
test_recovery(void **state)
{
    struct fixture *fx = *state;
    queue *q = open_q(fx);
    char old[QUEUE_ID_MAX], fresh[QUEUE_ID_MAX];
    queue_env *env;
    struct seen s = {.stop_at = 0};

    commit_msg(q, 1000, old);
    queue_close(q);
    /* Mid-receive, mid-commit (fallback envelope), mid-update, an
     * earlier version's rebuild (ID.new), a stray tmp file; a content
     * file without any envelope (damage: to corrupt/); an envelope
     * without its content (an interrupted removal: dropped). */
    qtouch(fx, "tmp", "BBBBRECEIVING", ".msg", BODY);
    qtouch(fx, "tmp", "BBBBRECEIVING", ".env", "{}");
    qtouch(fx, "tmp", old, ".u7", "{}");
    qtouch(fx, "tmp", "BBBBHEAD", ".new", BODY);
    touch(fx, "tmp", "BBBBFLAT.msg", BODY);
    qtouch(fx, "queue", "AAAANOENVELOPE", ".msg", BODY);
    qtouch(fx, "queue", "CCCCREMOVED", ".env",
           "{\"sender\":\"\",\"rcpts\":[]}");

    q = open_q(fx);
    assert_int_equal(count_dir(fx, "tmp"), 0);
    assert_false(qfile_exists(fx, "queue", "AAAANOENVELOPE", ".msg"));
    assert_true(file_exists(fx, "corrupt", "AAAANOENVELOPE.msg"));
    assert_false(qfile_exists(fx, "queue", "CCCCREMOVED", ".env"));
    assert_false(file_exists(fx, "corrupt", "CCCCREMOVED.env"));
    assert_int_equal(queue_load(q, "CCCCREMOVED", &env), MODMTA_E_NOTFOUND);
    assert_int_equal(count_dir(fx, "queue"), fs_has_xattrs(fx) ? 1 : 2);

    assert_int_equal(queue_load(q, old, &env), 0);
    assert_int_equal(env->recovered, 1);
    queue_env_free(env);
    commit_msg(q, 2000, fresh);
    assert_int_equal(queue_load(q, fresh, &env), 0);
    assert_int_equal(env->recovered, 0);
    queue_env_free(env);
    assert_int_equal(queue_foreach(q, collect, &s), 0);
    assert_int_equal(s.n, 2);
    queue_close(q);
}

/* A committed message whose envelope no longer parses (damage, a hand
 * edit; the fuzzers feed the decoder any text) is moved to corrupt/ by
 * the scan that meets it, envelope file too, and the others are listed;
 * an envelope of a newer version (a downgrade) is left where it is. */
static void
test_bad_envelope_quarantined(void **state)
{
    struct fixture *fx = *state;
    queue *q = open_q(fx);
    char bad[QUEUE_ID_MAX], newer[QUEUE_ID_MAX], good[QUEUE_ID_MAX];
    char name[QUEUE_ID_MAX + 8];
    struct seen s = {.stop_at = 0};
    queue_env *env;

    commit_msg(q, 1000, bad);
    commit_msg(q, 2000, newer);
    commit_msg(q, 3000, good);
    queue_close(q);
    qtouch(fx, "queue", bad, ".env", "{\"sender\":\"\",\"rcpts\":[5]}");
    qtouch(fx, "queue", newer, ".env",
           "{\"version\":99,\"sender\":\"\",\"rcpts\":[]}");

    q = open_q(fx);
    assert_int_equal(queue_load(q, bad, &env), MODMTA_E_INVAL);
    assert_int_equal(queue_foreach(q, collect, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.ids[0], good);
    assert_false(qfile_exists(fx, "queue", bad, ".msg"));
    assert_false(qfile_exists(fx, "queue", bad, ".env"));
    snprintf(name, sizeof(name), "%s.msg", bad);
    assert_true(file_exists(fx, "corrupt", name));
    snprintf(name, sizeof(name), "%s.env", bad);
    assert_true(file_exists(fx, "corrupt", name));
    assert_true(qfile_exists(fx, "queue", newer, ".msg"));
    assert_int_equal(queue_load(q, newer, &env), MODMTA_E_UNSUPPORTED);
    /* the next scan finds nothing more to move */
    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_foreach(q, collect, &s), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(count_dir(fx, "corrupt"), 2);
    queue_close(q);
}

/* A committed message with an ID.env from queue_update: after a restart
 * the .env still supersedes the envelope written at commit, and an
 * update interrupted before its rename changes nothing. */
static void
test_recovery_env_supersedes(void **state)
{
    struct fixture *fx = *state;
    queue *q = open_q(fx);
    char id[QUEUE_ID_MAX];
    queue_env *env;
    json_t *o;

    commit_msg(q, 1000, id);
    assert_int_equal(queue_load(q, id, &env), 0);
    env->held = 1;
    env->attempts = 4;
    assert_int_equal(queue_update(q, env), 0);
    queue_env_free(env);
    assert_true(qfile_exists(fx, "queue", id, ".env"));
    queue_close(q);
    /* the newer envelope of an update that never got renamed */
    qtouch(fx, "tmp", id, ".u3", "{\"sender\":\"x@example.org\","
           "\"rcpts\":[],\"attempts\":9}");

    q = open_q(fx);
    assert_int_equal(count_dir(fx, "tmp"), 0);
    assert_int_equal(queue_load(q, id, &env), 0);
    assert_int_equal(env->held, 1);
    assert_int_equal(env->attempts, 4);
    assert_int_equal(env->recovered, 1);
    assert_string_equal(env->sender, "alice@example.org");
    queue_env_free(env);
    if (fs_has_xattrs(fx)) {
        char path[256], buf[4096];
        ssize_t n;

        /* the envelope written at commit is untouched, and ignored */
        qpath(path, sizeof(path), fx, "queue", id, ".msg");
        n = getxattr(path, "user.modmta.env", buf, sizeof(buf));
        assert_true(n > 0);
        o = json_loadb(buf, (size_t)n, 0, NULL);
        assert_non_null(o);
        assert_int_equal(json_integer_value(json_object_get(o, "attempts")),
                         0);
        json_decref(o);
    }
    assert_int_equal(queue_remove(q, id), 0);
    assert_int_equal(count_dir(fx, "queue"), 0);
    queue_close(q);
}

#define OLD_ENV "{\"version\":1,\"sender\":\"old@example.org\"," \
    "\"rcpts\":[{\"addr\":\"bob@example.com\"}],\"arrival\":500}"

/* Envelopes this version cannot read are reported and skipped. */
static void
test_bad_envelopes(void **state)
{
    struct fixture *fx = *state;
    queue *q = open_q(fx);
    char good[QUEUE_ID_MAX];
    queue_env *env;
    struct seen s = {.stop_at = 0};

    commit_msg(q, 1000, good);
    qtouch(fx, "queue", "DDDDFUTURE", ".msg", BODY);
    qtouch(fx, "queue", "DDDDFUTURE", ".env",
          "{\"version\":4,\"sender\":\"\",\"rcpts\":[]}");
    qtouch(fx, "queue", "EEEEBROKEN", ".msg", BODY);
    qtouch(fx, "queue", "EEEEBROKEN", ".env", "{\"sender\":");
    qtouch(fx, "queue", "FFFFBADRCPT", ".msg", BODY);
    qtouch(fx, "queue", "FFFFBADRCPT", ".env",
          "{\"sender\":\"\",\"rcpts\":[{\"state\":\"pending\"}]}");
    assert_int_equal(queue_load(q, "DDDDFUTURE", &env), MODMTA_E_UNSUPPORTED);
    assert_null(env);
    assert_int_equal(queue_load(q, "EEEEBROKEN", &env), MODMTA_E_INVAL);
    assert_int_equal(queue_load(q, "FFFFBADRCPT", &env), MODMTA_E_INVAL);
    assert_int_equal(queue_foreach(q, collect, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.ids[0], good);
    queue_close(q);
}

static void
test_update_remove(void **state)
{
    struct fixture *fx = *state;
    queue *q = open_q(fx);
    char id[QUEUE_ID_MAX];
    queue_env *env, *got;

    commit_msg(q, 1000, id);
    assert_int_equal(queue_load(q, id, &env), 0);
    env->rcpts[0].state = QRCPT_DELIVERED;
    free(env->rcpts[1].status);
    env->rcpts[1].status = strdup("deferred: mailbox locked");
    env->attempts = 2;
    env->next_retry = 5000;
    env->held = 1;
    assert_int_equal(queue_update(q, env), 0);
    assert_int_equal(count_dir(fx, "tmp"), 0);
    /* the update is a separate file that supersedes the commit's */
    assert_true(qfile_exists(fx, "queue", id, ".env"));

    assert_int_equal(queue_load(q, id, &got), 0);
    assert_int_equal(got->rcpts[0].state, QRCPT_DELIVERED);
    assert_int_equal(got->rcpts[1].state, QRCPT_PENDING);
    assert_string_equal(got->rcpts[1].status, "deferred: mailbox locked");
    assert_int_equal(got->attempts, 2);
    assert_int_equal(got->next_retry, 5000);
    assert_int_equal(got->held, 1);
    assert_int_equal(got->arrival, 1000);
    queue_env_free(got);

    /* release */
    env->held = 0;
    assert_int_equal(queue_update(q, env), 0);
    assert_int_equal(queue_load(q, id, &got), 0);
    assert_int_equal(got->held, 0);
    queue_env_free(got);

    assert_int_equal(queue_remove(q, id), 0);
    assert_int_equal(queue_load(q, id, &got), MODMTA_E_NOTFOUND);
    assert_int_equal(count_dir(fx, "queue"), 0);
    /* An update after removal must not resurrect the envelope. */
    assert_int_equal(queue_update(q, env), MODMTA_E_NOTFOUND);
    assert_false(qfile_exists(fx, "queue", id, ".env"));
    assert_int_equal(count_dir(fx, "tmp"), 0);
    assert_int_equal(queue_remove(q, id), MODMTA_E_NOTFOUND);
    assert_int_equal(queue_remove(q, "../../etc/passwd"), MODMTA_E_INVAL);
    queue_env_free(env);
    queue_close(q);
}

/* Every update of id fails: the temporary names queue.c gives its
 * first updates (tmp/X/ID.uN, N counting from 0 at open) taken. */
static void
break_updates(const struct fixture *fx, const char *id)
{
    char path[256];

    for (int n = 0; n < 64; n++) {
        char suffix[16];

        snprintf(suffix, sizeof(suffix), ".u%d", n);
        qpath(path, sizeof(path), fx, "tmp", id, suffix);
        touch_path(path, "");
    }
}

/* attempts and held as queue_load gives them, and the recovered flag */
static void
assert_loads(queue *q, const char *id, int attempts, int held,
             int recovered)
{
    queue_env *got;

    assert_int_equal(queue_load(q, id, &got), 0);
    assert_int_equal(got->attempts, attempts);
    assert_int_equal(got->held, held);
    assert_int_equal(got->recovered, recovered);
    queue_env_free(got);
}

/* A failed update keeps its envelope in memory (the message loads as
 * recovered), up to a cap past which only the flag is kept; a failed
 * queue_update_or_fail keeps nothing. */
static void
test_update_failure_stale(void **state)
{
    struct fixture *fx = *state;
    queue *q = open_q(fx);
    char id[5][QUEUE_ID_MAX];
    size_t big = 9u * 1024 * 1024; /* two of them pass the 16 MiB cap */
    queue_env *env;

    for (int i = 0; i < 5; i++) {
        commit_msg(q, 1000, id[i]);
        assert_loads(q, id[i], 0, 0, 0);
    }
    for (int i = 0; i < 5; i++)
        break_updates(fx, id[i]);
    /* out of ID order, so that the kept list is kept sorted */
    for (int i = 2; i >= 0; i -= 2) {
        assert_int_equal(queue_load(q, id[i], &env), 0);
        env->attempts = 7;
        assert_true(queue_update(q, env) < 0);
        queue_env_free(env);
        assert_loads(q, id[i], 7, 0, 1);
    }
    assert_loads(q, id[1], 0, 0, 0);

    /* a failed hold changes nothing: neither a file... */
    assert_int_equal(queue_load(q, id[1], &env), 0);
    env->held = 1;
    assert_true(queue_update_or_fail(q, env) < 0);
    queue_env_free(env);
    assert_loads(q, id[1], 0, 0, 0);
    /* ...nor an envelope kept before */
    assert_int_equal(queue_load(q, id[0], &env), 0);
    env->held = 1;
    env->attempts = 8;
    assert_true(queue_update_or_fail(q, env) < 0);
    queue_env_free(env);
    assert_loads(q, id[0], 7, 0, 1);

    /* the cap: the second big envelope is not kept, its flag is */
    for (int i = 3; i < 5; i++) {
        assert_int_equal(queue_load(q, id[i], &env), 0);
        env->attempts = 9;
        free(env->rcpts[1].status);
        assert_non_null(env->rcpts[1].status = malloc(big + 1));
        memset(env->rcpts[1].status, 'x', big);
        env->rcpts[1].status[big] = '\0';
        assert_true(queue_update(q, env) < 0);
        queue_env_free(env);
    }
    assert_loads(q, id[3], 9, 0, 1);
    assert_loads(q, id[4], 0, 0, 1);

    /* removal forgets the message, and only it */
    assert_int_equal(queue_remove(q, id[0]), 0);
    assert_int_equal(queue_remove(q, id[3]), 0);
    assert_loads(q, id[2], 7, 0, 1);
    assert_loads(q, id[4], 0, 0, 1);
    queue_close(q);
}

static void
test_hold_at_commit(void **state)
{
    struct fixture *fx = *state;
    queue *q = open_q(fx);
    modmta_err err;
    queue_writer *w = queue_writer_new(q, &err);
    queue_rcpt r = {.addr = "bob@example.com"};
    queue_env env = {.sender = "", .rcpts = &r, .nrcpts = 1, .held = 1};
    queue_env *got;

    assert_non_null(w);
    assert_int_equal(queue_writer_commit(w, &env), 0);
    assert_int_equal(queue_load(q, env.id, &got), 0);
    assert_int_equal(got->held, 1);
    assert_string_equal(got->sender, "");
    assert_null(got->rcpts[0].orcpt);
    assert_null(got->auth_user);
    assert_int_equal(got->size, 0);
    assert_true(got->arrival > 0); /* 0 means "now" at commit */
    queue_env_free(got);
    queue_close(q);
}

static void
test_id_valid(void **state)
{
    char id[QUEUE_ID_MAX], prev[QUEUE_ID_MAX] = "";

    assert_false(queue_id_valid("../x"));
    assert_false(queue_id_valid(""));
    assert_false(queue_id_valid(NULL));
    assert_false(queue_id_valid("ABCDEFGHIJKLMNOPQRSTU")); /* 21 */
    assert_true(queue_id_valid("ABCDEFGHIJKLMNOPQRST"));   /* 20 */
    assert_false(queue_id_valid("abc"));
    assert_false(queue_id_valid("A/B"));
    assert_false(queue_id_valid("A.msg"));
    assert_false(queue_id_valid("AB\nC"));
    for (int i = 0; i < 1000; i++) {
        queue_new_id(id);
        assert_true(queue_id_valid(id));
        assert_true(strlen(id) <= 20);
        assert_string_not_equal(id, prev);
        memcpy(prev, id, sizeof(id));
    }
}

static void
test_writer_path_and_head(void **state)
{
    struct fixture *fx = *state;
    queue *q = open_q(fx);
    modmta_err err;
    queue_writer *w = queue_writer_new(q, &err);
    queue_rcpt r = {.addr = "bob@example.com"};
    queue_env env = {.sender = "a@example.org", .rcpts = &r, .nrcpts = 1};
    char path[256];
    char *content;

    assert_non_null(w);
    assert_int_equal(queue_writer_write(w, "A: 1\r\n\r\nbody\r\n", 14), 0);
    /* What hooks read through the path is everything written so far. */
    content = modmta_test_read_file(queue_writer_path(w), NULL);
    assert_non_null(content);
    assert_string_equal(content, "A: 1\r\n\r\nbody\r\n");
    free(content);
    assert_int_equal(queue_writer_rebuild(w, 6, "A: 2\r\n", 6, -1), 0);
    assert_int_equal(queue_writer_rebuild(w, 6, "B: 3\r\nA: 2\r\n", 12, -1),
                     0);
    assert_int_equal(queue_writer_size(w), 20);
    assert_int_equal(queue_writer_write(w, "more\r\n", 6), 0);
    assert_int_equal(queue_writer_rebuild(w, 100, "x", 1, -1),
                     MODMTA_E_INVAL);
    assert_int_equal(queue_writer_commit(w, &env), 0);
    assert_int_equal(env.size, 26);
    assert_int_equal(queue_content_path(q, env.id, path, sizeof(path)), 0);
    content = modmta_test_read_file(path, NULL);
    assert_non_null(content);
    assert_string_equal(content, "B: 3\r\nA: 2\r\n\r\nbody\r\nmore\r\n");
    free(content);
    assert_int_equal(count_dir(fx, "tmp"), 0);
    assert_int_equal(queue_content_path(q, env.id, path, 10),
                     MODMTA_E_LIMIT);

    /* abort leaves nothing */
    w = queue_writer_new(q, &err);
    assert_non_null(w);
    assert_int_equal(queue_writer_write(w, BODY, strlen(BODY)), 0);
    queue_writer_abort(w);
    assert_int_equal(count_dir(fx, "tmp"), 0);
    assert_int_equal(count_dir(fx, "queue"), fs_has_xattrs(fx) ? 1 : 2);
    queue_close(q);
}

/* A header block that grows, then shrinks, over a body larger than the
 * writer's buffer: the body moves in several pieces, both ways, intact,
 * in the same file; a write after it appends. */
static void
test_writer_rebuild_moves_body(void **state)
{
    struct fixture *fx = *state;
    queue *q = open_q(fx);
    modmta_err err;
    queue_writer *w = queue_writer_new(q, &err);
    queue_rcpt r = {.addr = "bob@example.com"};
    queue_env env = {.sender = "a@example.org", .rcpts = &r, .nrcpts = 1};
    size_t blen = 200 * 1024 + 7, i;
    char *body = malloc(blen), *content, path[256];
    struct stat st0, st1;
    size_t clen;

    assert_non_null(w);
    assert_non_null(body);
    for (i = 0; i < blen; i++)
        body[i] = (char)('a' + (i * 7 + i / 1000) % 26);
    assert_int_equal(queue_writer_write(w, "A: 1\r\n\r\n", 8), 0);
    assert_int_equal(queue_writer_write(w, body, blen), 0);
    assert_int_equal(stat(queue_writer_path(w), &st0), 0);
    assert_int_equal(queue_writer_rebuild(w, 6, "B: 22\r\nA: 1\r\n", 13,
                                          -1), 0);
    assert_int_equal(queue_writer_size(w), (off_t)(15 + blen));
    assert_int_equal(queue_writer_rebuild(w, 13, "C:\r\n", 4, -1), 0);
    assert_int_equal(queue_writer_size(w), (off_t)(6 + blen));
    assert_int_equal(stat(queue_writer_path(w), &st1), 0);
    assert_int_equal(st0.st_ino, st1.st_ino); /* no new file */
    assert_int_equal(st1.st_size, (off_t)(6 + blen));
    assert_int_equal(queue_writer_write(w, "end\r\n", 5), 0);
    assert_int_equal(queue_writer_commit(w, &env), 0);
    assert_int_equal(queue_content_path(q, env.id, path, sizeof(path)), 0);
    content = modmta_test_read_file(path, &clen);
    assert_non_null(content);
    assert_int_equal(clen, 6 + blen + 5);
    assert_memory_equal(content, "C:\r\n\r\n", 6);
    assert_memory_equal(content + 6, body, blen);
    assert_memory_equal(content + 6 + blen, "end\r\n", 5);
    free(content);
    free(body);
    assert_int_equal(count_dir(fx, "tmp"), 0);
    queue_close(q);
}

/* A replaced body: the new headers, an empty line, the new body, in one
 * rebuild. */
static void
test_writer_rebuild_body(void **state)
{
    struct fixture *fx = *state;
    queue *q = open_q(fx);
    modmta_err err;
    queue_writer *w = queue_writer_new(q, &err);
    queue_rcpt r = {.addr = "bob@example.com"};
    queue_env env = {.sender = "a@example.org", .rcpts = &r, .nrcpts = 1};
    char body[] = "/tmp/modmta-test-body-XXXXXX", path[256];
    char body2[] = "/tmp/modmta-test-body-XXXXXX";
    char *content;
    int fd = mkstemp(body);

    assert_true(fd >= 0);
    unlink(body);
    assert_int_equal(write(fd, "new\r\nbody\r\n", 11), 11);
    assert_non_null(w);
    assert_int_equal(queue_writer_write(w, "A: 1\r\n\r\nold\r\n", 13), 0);
    assert_int_equal(queue_writer_rebuild(w, 6, "A: 1\r\n", 6, fd), 0);
    close(fd);
    assert_int_equal(queue_writer_size(w), 19);
    /* a shorter one after it: the file is cut to its end */
    fd = mkstemp(body2);
    assert_true(fd >= 0);
    unlink(body2);
    assert_int_equal(write(fd, "x\r\n", 3), 3);
    assert_int_equal(queue_writer_rebuild(w, 6, "B: 2\r\n", 6, fd), 0);
    close(fd);
    assert_int_equal(queue_writer_size(w), 11);
    assert_int_equal(queue_writer_commit(w, &env), 0);
    assert_int_equal(queue_content_path(q, env.id, path, sizeof(path)), 0);
    content = modmta_test_read_file(path, NULL);
    assert_non_null(content);
    assert_string_equal(content, "B: 2\r\n\r\nx\r\n");
    free(content);
    assert_int_equal(count_dir(fx, "tmp"), 0);
    queue_close(q);
}

/* queue/X vanishes after open (an operator's mistake, a broken disk): the
 * rename fails and the commit must leave nothing behind. */
static void
test_commit_failure_rename(void **state)
{
    struct fixture *fx = *state;
    queue *q = open_q(fx);
    modmta_err err;
    queue_writer *w = queue_writer_new(q, &err);
    queue_rcpt r = {.addr = "bob@example.com"};
    queue_env env = {.sender = "a@example.org", .rcpts = &r, .nrcpts = 1};
    char path[256];
    struct seen s = {.stop_at = 0};

    assert_non_null(w);
    assert_int_equal(queue_writer_write(w, BODY, strlen(BODY)), 0);
    snprintf(path, sizeof(path), "%s/queue/%c", fx->spool,
             sub_of(queue_writer_id(w)));
    assert_int_equal(rmdir(path), 0);
    assert_true(queue_writer_commit(w, &env) < 0);
    assert_int_equal(count_dir(fx, "tmp"), 0);
    queue_close(q);
    q = open_q(fx);
    assert_int_equal(queue_foreach(q, collect, &s), 0);
    assert_int_equal(s.n, 0);
    queue_close(q);
}

/* A real write error (the file size limit: EFBIG, MODMTA_E_LIMIT as
 * modmta_err_from_errno maps it) during receive or commit: the commit
 * fails and nothing is committed. */
static void
test_commit_failure_write(void **state)
{
    struct fixture *fx = *state;
    queue *q = open_q(fx);
    modmta_err err;
    queue_writer *w = queue_writer_new(q, &err);
    queue_rcpt r = {.addr = "bob@example.com"};
    queue_env env = {.sender = "a@example.org", .rcpts = &r, .nrcpts = 1};
    struct rlimit old, lim = {.rlim_cur = 100000};
    char chunk[4096];
    int wrc = 0;

    assert_non_null(w);
    memset(chunk, 'x', sizeof(chunk));
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim.rlim_max = old.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    for (int i = 0; i < 50 && wrc == 0; i++)
        wrc = queue_writer_write(w, chunk, sizeof(chunk));
    assert_int_equal(wrc, MODMTA_E_LIMIT);
    /* sticky */
    assert_int_equal(queue_writer_write(w, "x", 1), MODMTA_E_LIMIT);
    assert_int_equal(queue_writer_commit(w, &env), MODMTA_E_LIMIT);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_equal(count_dir(fx, "tmp"), 0);
    assert_int_equal(count_dir(fx, "queue"), 0);
    queue_close(q);
}

/* Many committers at once, so that they share directory fsyncs (group
 * commit): every commit succeeds, is loadable, and its envelope belongs
 * to its own content. */
#define NTHREADS 24
#define PER_THREAD 20

struct worker {
    queue *q;
    pthread_barrier_t *start;
    int t;
    char ids[PER_THREAD][QUEUE_ID_MAX];
    int failed;
};

static void *
worker_run(void *arg)
{
    struct worker *wk = arg;

    pthread_barrier_wait(wk->start);
    for (int i = 0; i < PER_THREAD; i++) {
        modmta_err err;
        queue_writer *w = queue_writer_new(wk->q, &err);
        queue_rcpt r = {.addr = "bob@example.com"};
        char tag[64], body[128];
        queue_env env = {.sender = tag, .rcpts = &r, .nrcpts = 1,
                         .arrival = 1000};

        snprintf(tag, sizeof(tag), "t%d-%d@example.org", wk->t, i);
        snprintf(body, sizeof(body), "X-Tag: %s\r\n\r\nhello\r\n", tag);
        if (w == NULL || queue_writer_write(w, body, strlen(body)) != 0 ||
            queue_writer_commit(w, &env) != 0) {
            wk->failed++;
            continue;
        }
        snprintf(wk->ids[i], QUEUE_ID_MAX, "%s", env.id);
    }
    return NULL;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

static int
count_cb(const queue_env *env, void *arg)
{
    (*(int *)arg)++;
    return 0;
}

/* The content of a committed message carries its envelope's sender. */
static void
check_pairing(queue *q, const char *id)
{
    char path[256], want[128];
    queue_env *env;
    char *content;

    assert_int_equal(queue_load(q, id, &env), 0);
    assert_int_equal(queue_content_path(q, id, path, sizeof(path)), 0);
    content = modmta_test_read_file(path, NULL);
    assert_non_null(content);
    snprintf(want, sizeof(want), "X-Tag: %s\r\n\r\nhello\r\n", env->sender);
    assert_string_equal(content, want);
    assert_int_equal(env->size, (off_t)strlen(want));
    free(content);
    queue_env_free(env);
}

static void
test_concurrent_commits(void **state)
{
    struct fixture *fx = *state;
    queue *q = open_q(fx);
    static struct worker wk[NTHREADS];
    static char all[NTHREADS * PER_THREAD][QUEUE_ID_MAX];
    pthread_t th[NTHREADS];
    pthread_barrier_t start;
    int n = 0;

    memset(wk, 0, sizeof(wk));
    pthread_barrier_init(&start, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++) {
        wk[i].q = q;
        wk[i].t = i;
        wk[i].start = &start;
        assert_int_equal(pthread_create(&th[i], NULL, worker_run, &wk[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(wk[i].failed, 0);
        memcpy(all[i * PER_THREAD], wk[i].ids, sizeof(wk[i].ids));
    }
    pthread_barrier_destroy(&start);
    qsort(all, NTHREADS * PER_THREAD, QUEUE_ID_MAX, cmp_str);
    for (int i = 1; i < NTHREADS * PER_THREAD; i++)
        assert_string_not_equal(all[i - 1], all[i]);
    for (int i = 0; i < NTHREADS * PER_THREAD; i++)
        check_pairing(q, all[i]);
    assert_int_equal(queue_foreach(q, count_cb, &n), 0);
    assert_int_equal(n, NTHREADS * PER_THREAD);
    assert_int_equal(count_dir(fx, "tmp"), 0);
    queue_close(q);
    /* and all of them are there after a restart */
    q = open_q(fx);
    n = 0;
    assert_int_equal(queue_foreach(q, count_cb, &n), 0);
    assert_int_equal(n, NTHREADS * PER_THREAD);
    queue_close(q);
}

/* An envelope larger than any file system takes in an xattr (64 KiB on
 * Linux): the commit falls back to ID.env, and all else is the same. */
#define BIG_NRCPTS 1200

static void
test_large_envelope_fallback(void **state)
{
    struct fixture *fx = *state;
    queue *q = open_q(fx);
    modmta_err err;
    queue_writer *w = queue_writer_new(q, &err);
    static queue_rcpt rcpts[BIG_NRCPTS];
    static char addrs[BIG_NRCPTS][48];
    queue_env env = {.sender = "a@example.org", .rcpts = rcpts,
                     .nrcpts = BIG_NRCPTS};
    queue_env *got;
    int n = 0;

    for (int i = 0; i < BIG_NRCPTS; i++) {
        snprintf(addrs[i], sizeof(addrs[i]), "recipient-%04d@example.com", i);
        rcpts[i] = (queue_rcpt){.addr = addrs[i], .orcpt = addrs[i]};
    }
    assert_non_null(w);
    assert_int_equal(queue_writer_write(w, BODY, strlen(BODY)), 0);
    assert_int_equal(queue_writer_commit(w, &env), 0);
    assert_true(qfile_exists(fx, "queue", env.id, ".env"));
    assert_int_equal(count_dir(fx, "tmp"), 0);
    queue_close(q);

    q = open_q(fx);
    assert_int_equal(queue_load(q, env.id, &got), 0);
    assert_int_equal(got->nrcpts, BIG_NRCPTS);
    assert_string_equal(got->rcpts[BIG_NRCPTS - 1].addr,
                        addrs[BIG_NRCPTS - 1]);
    assert_int_equal(got->recovered, 1);
    queue_env_free(got);
    assert_int_equal(queue_foreach(q, count_cb, &n), 0);
    assert_int_equal(n, 1);
    /* and the small ones still take the fast path */
    commit_msg(q, 1000, env.id);
    assert_int_equal(count_dir(fx, "queue"), fs_has_xattrs(fx) ? 3 : 4);
    queue_close(q);
}

/* A transaction's notes go to disk with the message and come back
 * after a restart (recovery), through an update too: as many and as
 * large as ctx.h allows, which no xattr holds (ID.env then), and a
 * small set in the xattr. */
static void
test_notes(void **state)
{
    struct fixture *fx = *state;
    queue *q = open_q(fx);
    modmta_err err;
    queue_writer *w = queue_writer_new(q, &err);
    queue_rcpt rcpt = {.addr = "bob@example.com"};
    static queue_note notes[MODMTA_NOTES_MAX];
    static char names[MODMTA_NOTES_MAX][MODMTA_NOTE_NAME_MAX + 1];
    static char value[MODMTA_NOTE_VALUE_MAX + 1];
    queue_env env = {.sender = "a@example.org", .rcpts = &rcpt, .nrcpts = 1,
                     .notes = notes, .nnotes = MODMTA_NOTES_MAX};
    queue_env one = {.sender = "a@example.org", .rcpts = &rcpt, .nrcpts = 1,
                     .notes = notes, .nnotes = 1};
    queue_env *got;
    int i;

    memset(value, 'v', MODMTA_NOTE_VALUE_MAX);
    for (i = 0; i < MODMTA_NOTES_MAX; i++) {
        memset(names[i], 'n', MODMTA_NOTE_NAME_MAX);
        snprintf(names[i], sizeof(names[i]), "%02d", i);
        names[i][2] = 'n';
        notes[i] = (queue_note){.name = names[i], .num = i};
        if (i % 2 == 0)
            notes[i].str = value;
    }
    assert_non_null(w);
    assert_int_equal(queue_writer_write(w, BODY, strlen(BODY)), 0);
    assert_int_equal(queue_writer_commit(w, &env), 0);
    assert_true(qfile_exists(fx, "queue", env.id, ".env"));
    w = queue_writer_new(q, &err);
    assert_non_null(w);
    assert_int_equal(queue_writer_write(w, BODY, strlen(BODY)), 0);
    assert_int_equal(queue_writer_commit(w, &one), 0);
    queue_close(q);

    q = open_q(fx);
    assert_int_equal(queue_load(q, env.id, &got), 0);
    assert_int_equal(got->recovered, 1);
    assert_int_equal(got->nnotes, MODMTA_NOTES_MAX);
    for (i = 0; i < MODMTA_NOTES_MAX; i++) {
        assert_string_equal(got->notes[i].name, names[i]);
        if (i % 2 == 0)
            assert_string_equal(got->notes[i].str, value);
        else
            assert_true(got->notes[i].num == i && got->notes[i].str == NULL);
    }
    /* a delivery attempt's update keeps them */
    got->attempts = 1;
    assert_int_equal(queue_update(q, got), 0);
    queue_env_free(got);
    assert_int_equal(queue_load(q, env.id, &got), 0);
    assert_int_equal(got->nnotes, MODMTA_NOTES_MAX);
    assert_int_equal(got->attempts, 1);
    queue_env_free(got);
    assert_int_equal(queue_load(q, one.id, &got), 0);
    assert_int_equal(got->nnotes, 1);
    assert_string_equal(got->notes[0].str, value);
    queue_env_free(got);
    queue_close(q);
}

/* Consecutive messages spread over the subdirectories, and foreach
 * finds every message in all 36, in arrival order. */
#define SPREAD 40

static void
test_foreach_subdirs(void **state)
{
    struct fixture *fx = *state;
    queue *q = open_q(fx);
    static char ids[SPREAD][QUEUE_ID_MAX];
    char subs[QUEUE_ID_MAX * 2] = "";
    struct seen s = {.stop_at = 0};
    queue_env *env;
    int n = 0;

    for (int i = 0; i < SPREAD; i++) {
        commit_msg(q, 10000 - i, ids[i]);
        if (strchr(subs, sub_of(ids[i])) == NULL)
            subs[strlen(subs)] = sub_of(ids[i]);
    }
    assert_int_equal(strlen(subs), 32);
    /* a valid ID outside base32hex lives in queue/Z */
    qtouch(fx, "queue", "ZZZZ", ".msg", BODY);
    qtouch(fx, "queue", "ZZZZ", ".env", OLD_ENV);
    assert_int_equal(queue_load(q, "ZZZZ", &env), 0);
    queue_env_free(env);
    assert_int_equal(queue_foreach(q, count_cb, &n), 0);
    assert_int_equal(n, SPREAD + 1);
    s.stop_at = 3;
    assert_int_equal(queue_foreach(q, collect, &s), 0);
    assert_string_equal(s.ids[0], "ZZZZ");          /* arrival 500 */
    assert_string_equal(s.ids[1], ids[SPREAD - 1]); /* arrival 9961 */
    assert_string_equal(s.ids[2], ids[SPREAD - 2]);
    queue_close(q);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreach_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_envelopes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold_at_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_failure_stale, setup,
                                        teardown),
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test_setup_teardown(test_writer_rebuild_moves_body,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_rebuild_body, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_writer_path_and_head, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_commit_failure_rename, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_commit_failure_write, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_commits, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_recovery_env_supersedes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_large_envelope_fallback, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_envelope_quarantined, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_foreach_subdirs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_notes, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
