/* Unit tests of the alias module: config, one level of expansion at RCPT
 * (the core does the nesting), includes, command and file targets,
 * outage; a redis: map on a redis-server the test starts, whose values
 * may name addresses only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include <modmta/modmta.h>
#include <fake.h>
#include <files.h>

#include "ctx_priv.h"
#include "pipe_alias.h"
#include "shared_priv.h"
#include "shared_test.h"

extern const modmta_module modmta_descriptor;

struct fx {
    char dir[256];
    char aliases[512];
    char inc[512];
    modmta_host *host;
    void *inst;
    modmta_ctx *ctx;
};

/* ---- helpers ---- */

static void
write_file(const char *path, const char *data, mode_t mode)
{
    modmta_test_write_file(path, data);
    assert_int_equal(chmod(path, mode), 0);
}

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));

    if (fx == NULL)
        return -1;
    modmta_test_tmpdir(fx->dir, sizeof(fx->dir), "test_alias");
    snprintf(fx->aliases, sizeof(fx->aliases), "%s/aliases", fx->dir);
    snprintf(fx->inc, sizeof(fx->inc), "%s/list.inc", fx->dir);
    fx->host = modmta_test_host_new("alias", "localhost", "example.com",
                                    NULL);
    fx->ctx = modmta_test_ctx_new(fx->host, "192.0.2.1");
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;

    modmta_test_release(&modmta_descriptor, fx->inst, fx->ctx, fx->host);
    modmta_test_rmtree(fx->dir);
    free(fx);
    return 0;
}

/* create() with conf (a JSON text); NULL and err filled on failure. */
static void *
create(struct fx *fx, const char *conf, modmta_err *err)
{
    return modmta_test_create(&modmta_descriptor, conf, fx->host, err);
}

static void
create_file(struct fx *fx, const char *text, const char *extra)
{
    char conf[1200];

    write_file(fx->aliases, text, 0644);
    snprintf(conf, sizeof(conf), "{\"module\": \"alias\", \"map\": "
             "\"aliases:%s\"%s}", fx->aliases, extra);
    fx->inst = modmta_test_create_ok(&modmta_descriptor, conf, fx->host);
}

static modmta_verdict
rcpt(struct fx *fx, const char *addr)
{
    modmta_test_enter(fx->ctx, MODMTA_PHASE_RCPT, &modmta_descriptor,
                      fx->inst);
    return modmta_descriptor.on_rcpt(fx->inst, fx->ctx, addr);
}

/* The rewrites of the last rcpt() are exactly `want`. */
static void
assert_targets(struct fx *fx, const char *const *want)
{
    size_t i;

    for (i = 0; want[i] != NULL; i++) {
        assert_true(i < modmta_test_rewrite_count(fx->ctx));
        assert_string_equal(modmta_test_rewrite_at(fx->ctx, i), want[i]);
    }
    assert_int_equal(modmta_test_rewrite_count(fx->ctx), i);
}

/* ---- config ---- */

static void
check_create_error(struct fx *fx, const char *conf, const char *path,
                   const char *what)
{
    modmta_err err;

    assert_null(create(fx, conf, &err));
    assert_string_equal(err.path, path);
    if (strstr(err.msg, what) == NULL)
        fail_msg("got \"%s\", want \"%s\"", err.msg, what);
}

static void
test_config_errors(void **state)
{
    struct fx *fx = *state;
    char conf[1200];

    check_create_error(fx, "{\"module\": \"alias\"}", "$.modules[0]",
                       "missing required key \"map\"");
    check_create_error(fx, "{\"module\": \"alias\", \"map\": {}, "
                       "\"bogus\": 1}", "$.modules[0].bogus", "unknown");
    check_create_error(fx, "{\"module\": \"alias\", \"map\": {\"a\": "
                       "\"|x\"}, \"allow_commands\": true}",
                       "$.modules[0].allow_commands", "from a file");
    write_file(fx->aliases, "a: b\n", 0666);
    snprintf(conf, sizeof(conf), "{\"module\": \"alias\", \"map\": "
             "\"aliases:%s\", \"allow_files\": true}", fx->aliases);
    check_create_error(fx, conf, "$.modules[0].allow_files",
                       "owned by root and not writable");
    write_file(fx->aliases, "a b\n", 0644);
    snprintf(conf, sizeof(conf), "{\"module\": \"alias\", \"map\": "
             "\"aliases:%s\"}", fx->aliases);
    check_create_error(fx, conf, "$.modules[0].map", ":1: ");
}

/* ---- expansion ---- */

static void
test_expand(void **state)
{
    struct fx *fx = *state;

    create_file(fx, "toto:   user1\n"
                    "popo:   user2\n"
                    "all : it,hr,cw\n"
                    "postmaster: root\n"
                    "ext: bob@remote.example, \\me\n"
                    "\"foo bar\": carol\n", "");
    assert_int_equal(rcpt(fx, "toto@localhost"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"user1@localhost", NULL});
    /* case-insensitive local part; the domain of the alias is kept */
    assert_int_equal(rcpt(fx, "ALL@Example.COM"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"it@example.com",
                   "hr@example.com", "cw@example.com", NULL});
    /* no domain: targets stay unqualified */
    assert_int_equal(rcpt(fx, "postmaster"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"root", NULL});
    assert_int_equal(rcpt(fx, "ext@localhost"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"bob@remote.example",
                   "me@localhost", NULL});
    assert_int_equal(rcpt(fx, "\"foo bar\"@localhost"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"carol@localhost", NULL});
}

/* recipient_delimiter: an exact entry wins, else the name without its
 * extension, which goes on to local targets without one. */
static void
test_extension(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(modmta_test_host_set_delimiter(fx->host, "+-"), 0);
    create_file(fx, "team: ann\n"
                    "team+exact: carol\n", "");
    assert_int_equal(rcpt(fx, "team+exact@localhost"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"carol@localhost", NULL});
    modmta_descriptor.destroy(fx->inst);
    create_file(fx, "team: ann, bob+x, out@remote.example, me@example.com\n"
                    "list: dave\n", ", \"propagate_extension\": true");
    assert_int_equal(rcpt(fx, "team+news@localhost"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"ann+news@localhost",
                   "bob+x@localhost", "out@remote.example",
                   "me+news@example.com", NULL});
    /* routing characters in an extension are not given on */
    assert_int_equal(rcpt(fx, "team+x%evil.test@localhost"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"ann@localhost",
                   "bob+x@localhost", "out@remote.example",
                   "me@example.com", NULL});
    assert_int_equal(rcpt(fx, "team+evil.test!x@localhost"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"ann@localhost",
                   "bob+x@localhost", "out@remote.example",
                   "me@example.com", NULL});
    assert_int_equal(rcpt(fx, "team-a-b@localhost"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"ann-a-b@localhost",
                   "bob+x@localhost", "out@remote.example",
                   "me-a-b@example.com", NULL});
    /* a local part needing quotes is never cut, as relay_access does
     * not cut it: a rule on team@ cannot be walked round this way */
    assert_int_equal(rcpt(fx, "\"team+a b\"@localhost"), MODMTA_CONTINUE);
    assert_int_equal(rcpt(fx, "\"team+a@b\"@localhost"), MODMTA_CONTINUE);
    /* at the start: a name of its own */
    assert_int_equal(rcpt(fx, "+team@localhost"), MODMTA_CONTINUE);
    assert_int_equal(rcpt(fx, "nobody+team@localhost"), MODMTA_CONTINUE);
    modmta_descriptor.destroy(fx->inst);
    create_file(fx, "list: dave\n", "");
    assert_int_equal(rcpt(fx, "list+x@localhost"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"dave@localhost", NULL});
    /* no delimiter: found as is only */
    assert_int_equal(modmta_test_host_set_delimiter(fx->host, NULL), 0);
    assert_int_equal(rcpt(fx, "list+x@localhost"), MODMTA_CONTINUE);
}

static void
test_fall_through(void **state)
{
    struct fx *fx = *state;

    create_file(fx, "toto: user1\n", "");
    /* unknown name, and a domain that is not local */
    assert_int_equal(rcpt(fx, "user1@localhost"), MODMTA_CONTINUE);
    assert_int_equal(rcpt(fx, "toto@remote.example"), MODMTA_CONTINUE);
    assert_int_equal(modmta_test_rewrite_count(fx->ctx), 0);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 0);
}

static void
test_include(void **state)
{
    struct fx *fx = *state;
    char text[1200];

    write_file(fx->inc, "# the list\nann, ben\n  # members\ncid@x.example\n",
               0644);
    snprintf(text, sizeof(text), "list: boss, :include:%s\n"
             "gone: :include:%s.missing\n", fx->inc, fx->inc);
    create_file(fx, text, "");
    assert_int_equal(rcpt(fx, "list@localhost"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"boss@localhost",
                   "ann@localhost", "ben@localhost", "cid@x.example",
                   NULL});
    /* a missing include is the administrator's to fix: 4xx, no bounce */
    assert_int_equal(rcpt(fx, "gone@localhost"), MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 451);
    assert_string_equal(modmta_test_reply_esc(fx->ctx), "4.3.0");
}

/* A FIFO would block the session in open(): only regular files. */
static void
test_include_fifo(void **state)
{
    struct fx *fx = *state;
    char text[1200];

    assert_int_equal(mkfifo(fx->inc, 0644), 0);
    snprintf(text, sizeof(text), "list: :include:%s\n", fx->inc);
    create_file(fx, text, "");
    assert_int_equal(rcpt(fx, "list@localhost"), MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 451);
}

/* A device that never ends, and a file over the 1 MiB cap: 451 too,
 * before any of it is read. */
static void
test_include_dev_zero_and_oversize(void **state)
{
    struct fx *fx = *state;
    char text[1200];

    assert_int_equal(symlink("/dev/zero", fx->inc), 0);
    snprintf(text, sizeof(text), "list: :include:%s\n", fx->inc);
    create_file(fx, text, "");
    assert_int_equal(rcpt(fx, "list@localhost"), MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 451);
    assert_int_equal(unlink(fx->inc), 0);
    write_file(fx->inc, "ann\n", 0644);
    assert_int_equal(rcpt(fx, "list@localhost"), MODMTA_ACCEPT);
    assert_int_equal(truncate(fx->inc, 1024 * 1024 + 1), 0);
    assert_int_equal(rcpt(fx, "list@localhost"), MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 451);
}

/* An include file others may write names addresses only: no further
 * :include: (nor command or file targets). */
static void
test_include_untrusted(void **state)
{
    struct fx *fx = *state;
    char text[1200], nested[600];

    snprintf(nested, sizeof(nested), "%s/nested.inc", fx->dir);
    write_file(nested, "bob\n", 0644);
    snprintf(text, sizeof(text), "ann, :include:%s\n", nested);
    write_file(fx->inc, text, 0666);
    snprintf(text, sizeof(text), "list: :include:%s\n", fx->inc);
    create_file(fx, text, "");
    assert_int_equal(rcpt(fx, "list@localhost"), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 550);
    assert_string_equal(modmta_test_reply_esc(fx->ctx), "5.7.1");
    assert_non_null(strstr(modmta_test_reply_text(fx->ctx),
                           "include is not permitted"));
    assert_int_equal(chmod(fx->inc, 0644), 0);
    if (geteuid() == 0) {
        /* writable by its owner only, but the owner is not root */
        assert_int_equal(chown(fx->inc, 65534, (gid_t)-1), 0);
        assert_int_equal(rcpt(fx, "list@localhost"), MODMTA_REJECT);
        assert_int_equal(chown(fx->inc, 0, (gid_t)-1), 0);
    }
    assert_int_equal(rcpt(fx, "list@localhost"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"ann@localhost",
                   "bob@localhost", NULL});
    unlink(nested);
}

static void
test_include_empty(void **state)
{
    struct fx *fx = *state;
    char text[1200];

    write_file(fx->inc, "# nobody yet\n", 0644);
    snprintf(text, sizeof(text), "empty: :include:%s\n", fx->inc);
    create_file(fx, text, "");
    assert_int_equal(rcpt(fx, "empty@localhost"), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 550);
    assert_string_equal(modmta_test_reply_esc(fx->ctx), "5.1.1");
}

static void
test_command_refused(void **state)
{
    struct fx *fx = *state;

    create_file(fx, "prog: bob, \"|/usr/bin/vacation bob\"\n"
                    "log: /var/log/copy\n", "");
    assert_int_equal(rcpt(fx, "prog@localhost"), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 550);
    assert_string_equal(modmta_test_reply_esc(fx->ctx), "5.7.1");
    assert_non_null(strstr(modmta_test_reply_text(fx->ctx),
                           "command is not permitted"));
    assert_int_equal(rcpt(fx, "log@localhost"), MODMTA_REJECT);
    assert_non_null(strstr(modmta_test_reply_text(fx->ctx),
                           "file is not permitted"));
}

/* Allowed in a trusted file: the command goes to deliver_pipe as a
 * recipient of its own, the command line in the transaction's note. */
static void
test_command_allowed(void **state)
{
    struct fx *fx = *state;
    char addr[64], note[64];
    const char *cmd = NULL;

    if (geteuid() != 0)
        skip(); /* a root-owned map needs root */
    create_file(fx, "prog: bob, \"|/usr/bin/vacation bob\"\n"
                    "log: /tmp/copy\n",
                ", \"allow_commands\": true, \"allow_files\": true");
    pipe_alias_names("/usr/bin/vacation bob", addr, note);
    assert_int_equal(rcpt(fx, "prog@localhost"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"bob@localhost", addr, NULL});
    assert_int_equal(modmta_note_get_str(fx->ctx, note, &cmd), 1);
    assert_string_equal(cmd, "/usr/bin/vacation bob");
    assert_int_equal(rcpt(fx, "log@localhost"), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 550);
    assert_string_equal(modmta_test_reply_esc(fx->ctx), "5.7.1");
    assert_non_null(strstr(modmta_test_reply_text(fx->ctx),
                           "file transport"));
    /* made writable by others later: refused as not permitted */
    assert_int_equal(chmod(fx->aliases, 0666), 0);
    assert_int_equal(rcpt(fx, "prog@localhost"), MODMTA_REJECT);
    assert_non_null(strstr(modmta_test_reply_text(fx->ctx),
                           "not permitted"));
}

static void
test_outage(void **state)
{
    struct fx *fx = *state;
    modmta_err err;

    assert_int_equal(modmta_test_register_failing_map(), 0);
    fx->inst = create(fx, "{\"module\": \"alias\", \"map\": "
                      "\"failtest:x\"}", &err);
    assert_non_null(fx->inst);
    assert_int_equal(rcpt(fx, "anyone@localhost"), MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 451);
    /* not ours: not even looked up */
    assert_int_equal(rcpt(fx, "anyone@remote.example"), MODMTA_CONTINUE);
}

static void
test_inline_map(void **state)
{
    struct fx *fx = *state;
    modmta_err err;

    fx->inst = create(fx, "{\"module\": \"alias\", \"map\": {\"team\": "
                      "[\"a\", \"b@x.example\"], \"p\": \"|cmd\"}}", &err);
    assert_non_null(fx->inst);
    assert_int_equal(rcpt(fx, "Team@localhost"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"a@localhost", "b@x.example",
                   NULL});
    assert_int_equal(rcpt(fx, "p@localhost"), MODMTA_REJECT);
    assert_string_equal(modmta_test_reply_esc(fx->ctx), "5.7.1");
}

static void
redis_set(const struct redis_server *srv, const char *key,
          const char *value)
{
    const char *argv[] = {"SET", key, value, NULL};
    redisReply *r = redis_server_cmd(srv, NULL, 0, argv);

    assert_non_null(r);
    freeReplyObject(r);
}

/* A value read from Redis never yields a command, a file or an include:
 * the recipient is deferred (the site's error: the message waits while
 * it is fixed), nothing is rewritten; addresses expand as from a file;
 * Redis down: 451 too. */
static void
test_shared_map(void **state)
{
    struct fx *fx = *state;
    struct redis_server srv;
    static const char *const special[] = {"cmd", "file", "inc", "quoted"};
    modmta_err err;
    size_t i;

    redis_server_start(&srv, fx->dir, "redis", 0, NULL);
    modmta_shared_free(modmta_host_shared(fx->host));
    modmta_host_set_shared(fx->host, redis_store("{\"address\": \"%s\", "
                                                 "\"timeout\": 1}",
                                                 srv.address));
    redis_set(&srv, "modmta:alias:list", "bob, carol@x.example");
    redis_set(&srv, "modmta:alias:cmd", "bob, |/bin/sh");
    redis_set(&srv, "modmta:alias:file", "bob, /var/mail/copy");
    redis_set(&srv, "modmta:alias:inc", ":include:/etc/passwd");
    redis_set(&srv, "modmta:alias:quoted", "\"|/usr/bin/vacation bob\"");
    check_create_error(fx, "{\"module\": \"alias\", \"map\": "
                       "\"redis:alias:\", \"allow_commands\": true}",
                       "$.modules[0].allow_commands", "from a file");
    fx->inst = create(fx, "{\"module\": \"alias\", \"map\": "
                      "\"redis:alias:\"}", &err);
    assert_non_null(fx->inst);
    assert_int_equal(rcpt(fx, "List@localhost"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"bob@localhost",
                   "carol@x.example", NULL});
    for (i = 0; i < sizeof(special) / sizeof(special[0]); i++) {
        char addr[64];

        snprintf(addr, sizeof(addr), "%s@localhost", special[i]);
        assert_int_equal(rcpt(fx, addr), MODMTA_TEMPFAIL);
        assert_int_equal(modmta_test_reply_code(fx->ctx), 451);
        assert_string_equal(modmta_test_reply_esc(fx->ctx), "4.3.0");
        assert_non_null(strstr(modmta_test_reply_text(fx->ctx),
                               "configuration error"));
        assert_int_equal(modmta_test_rewrite_count(fx->ctx), 0);
    }
    assert_int_equal(rcpt(fx, "nobody@localhost"), MODMTA_CONTINUE);
    redis_server_stop(&srv, 0);
    assert_int_equal(rcpt(fx, "list@localhost"), MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 451);
    assert_int_equal(modmta_test_rewrite_count(fx->ctx), 0);
}

/* owner-NAME: the list's targets get owner-NAME@domain as envelope
 * sender; a list without an owner, and owner-NAME itself, get none. */
static void
test_owner(void **state)
{
    struct fx *fx = *state;

    create_file(fx, "staff: ann, ben\n"
                    "owner-staff: ann\n"
                    "plain: carl\n", "");
    assert_int_equal(rcpt(fx, "Staff@Example.com"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"ann@example.com",
                   "ben@example.com", NULL});
    assert_string_equal(modmta_test_rewrite_sender(fx->ctx),
                        "owner-Staff@example.com");
    assert_int_equal(rcpt(fx, "plain@localhost"), MODMTA_ACCEPT);
    assert_null(modmta_test_rewrite_sender(fx->ctx));
    assert_int_equal(rcpt(fx, "owner-staff@localhost"), MODMTA_ACCEPT);
    assert_null(modmta_test_rewrite_sender(fx->ctx));
    /* no domain: the host name */
    assert_int_equal(rcpt(fx, "staff"), MODMTA_ACCEPT);
    assert_string_equal(modmta_test_rewrite_sender(fx->ctx),
                        "owner-staff@mx.test");
}

/* Quoted local parts are delivered as written, never cut at a space;
 * a domain-less target whose local part holds an '@' is refused. */
static void
test_quoted_target(void **state)
{
    struct fx *fx = *state;
    const char *bad[] = {"evil@localhost", "junk@localhost",
                         "cut@localhost", NULL};
    size_t i;

    create_file(fx, "list: \"john smith\"@example.org, \"\\\"jane doe\\\"\"\n"
                    "evil: \"\\\"x@evil.test\\\"\"\n"
                    "junk: \"a b\"c@example.org\n"
                    "cut: \"john smith@example.org\"\n", "");
    assert_int_equal(rcpt(fx, "list@localhost"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"\"john smith\"@example.org",
                   "\"jane doe\"@localhost", NULL});
    for (i = 0; bad[i] != NULL; i++) {
        assert_int_equal(rcpt(fx, bad[i]), MODMTA_TEMPFAIL);
        assert_int_equal(modmta_test_rewrite_count(fx->ctx), 0);
    }
}

/* The owner of a list with a quoted name: a well-formed sender. */
static void
test_owner_quoted(void **state)
{
    struct fx *fx = *state;

    create_file(fx, "\"john smith\": ann\n"
                    "\"owner-john smith\": ann\n", "");
    assert_int_equal(rcpt(fx, "\"john smith\"@example.com"), MODMTA_ACCEPT);
    assert_string_equal(modmta_test_rewrite_sender(fx->ctx),
                        "\"owner-john smith\"@example.com");
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_config_errors),
        T(test_expand),
        T(test_extension),
        T(test_fall_through),
        T(test_include),
        T(test_include_empty),
        T(test_include_fifo),
        T(test_include_dev_zero_and_oversize),
        T(test_include_untrusted),
        T(test_quoted_target),
        T(test_owner_quoted),
        T(test_command_refused),
        T(test_command_allowed),
        T(test_outage),
        T(test_inline_map),
        T(test_owner),
        T(test_shared_map),
    };
#undef T

    signal(SIGPIPE, SIG_IGN);           /* hiredis, as in the daemon */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
