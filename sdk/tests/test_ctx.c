/*
 * Unit tests of sdk/src/ctx.c and sdk/src/arena.c: the milter actions'
 * capability and phase checks, header editing and its serialization,
 * header injection, replies, transaction reset, recipients, per-session
 * data and the arenas; sdk/src/ctx_note.c: transaction notes, their
 * types, bounds, names, phases and end with the transaction.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <modmta/modmta.h>

#include "ctx_priv.h"
#include "fake.h"

#define ALL_CAPS                                                           \
    (MODMTA_CAP_ADDHDRS | MODMTA_CAP_CHGHDRS | MODMTA_CAP_CHGFROM |        \
     MODMTA_CAP_ADDRCPT | MODMTA_CAP_DELRCPT | MODMTA_CAP_QUARANTINE |     \
     MODMTA_CAP_REWRITE)

#define PHASE_MAX MODMTA_PHASE_SERVE
#define PH(p) (1u << MODMTA_PHASE_##p)

/* Descriptors differ only by caps: the ctx looks at nothing else. */
#define TEST_MOD(c)                                                        \
    {                                                                      \
        .abi = MODMTA_ABI_VERSION, .size = sizeof(modmta_module),          \
        .sig = MODMTA_BUILD_SIG, .name = "t", .version = "0", .caps = (c), \
    }

static const modmta_module test_mod_all = TEST_MOD(ALL_CAPS);
static const modmta_module test_mod_none = TEST_MOD(0);

struct test_env {
    modmta_host *host;
    modmta_ctx *ctx;
};

static int
setup(void **state)
{
    struct test_env *e = calloc(1, sizeof(*e));

    if (e == NULL)
        return -1;
    e->host = modmta_test_host_new("t", "localhost", NULL);
    e->ctx = modmta_test_ctx_new(e->host, "192.0.2.1");
    if (e->host == NULL || e->ctx == NULL)
        return -1;
    *state = e;
    return 0;
}

static int
teardown(void **state)
{
    struct test_env *e = *state;

    modmta_test_ctx_free(e->ctx);
    modmta_test_host_free(e->host);
    free(e);
    return 0;
}

static modmta_ctx *
ctx_of(void **state)
{
    return ((struct test_env *)*state)->ctx;
}

/* ---- capability and phase checks ---- */

/* Each action, called with arguments valid for it, so that only the
 * checks can make it fail. */
static int
act_hdr_add(modmta_ctx *ctx)
{
    return modmta_hdr_add(ctx, "X-Test", "v");
}

static int
act_hdr_change(modmta_ctx *ctx)
{
    modmta_ctx_add_header(ctx, "X-Old", "v");
    return modmta_hdr_change(ctx, "X-Old", 0, "w");
}

static int
act_hdr_delete(modmta_ctx *ctx)
{
    modmta_ctx_add_header(ctx, "X-Old", "v");
    return modmta_hdr_delete(ctx, "X-Old", 0);
}

static int
act_sender_set(modmta_ctx *ctx)
{
    return modmta_sender_set(ctx, "new@example.org");
}

static int
act_rcpt_add(modmta_ctx *ctx)
{
    return modmta_rcpt_add(ctx, "added@example.org");
}

static int
act_rcpt_add_flags(modmta_ctx *ctx)
{
    return modmta_rcpt_add_flags(ctx, "bcc@example.org", MODMTA_RCPT_NO_DSN);
}

static int
act_rcpt_remove(modmta_ctx *ctx)
{
    return modmta_rcpt_remove(ctx, "gone@example.org");
}

static int
act_rcpt_rewrite(modmta_ctx *ctx)
{
    return modmta_rcpt_rewrite(ctx, "target@example.org");
}

static int
act_rcpt_rewrite_sender(modmta_ctx *ctx)
{
    return modmta_rcpt_rewrite_sender(ctx, "owner-list@example.org");
}

static int
act_quarantine(modmta_ctx *ctx)
{
    return modmta_quarantine(ctx, "suspicious");
}

static int
act_set_auth_user(modmta_ctx *ctx)
{
    return modmta_set_auth_user(ctx, "alice");
}

static int
act_ehlo_add(modmta_ctx *ctx)
{
    return modmta_ehlo_add(ctx, "XFOO BAR");
}

struct action {
    const char *name;
    int (*fn)(modmta_ctx *ctx);
    unsigned cap;
    unsigned phases;
};

static const struct action actions[] = {
    { "hdr_add", act_hdr_add, MODMTA_CAP_ADDHDRS, PH(DATA) },
    { "hdr_change", act_hdr_change, MODMTA_CAP_CHGHDRS, PH(DATA) },
    { "hdr_delete", act_hdr_delete, MODMTA_CAP_CHGHDRS, PH(DATA) },
    { "sender_set", act_sender_set, MODMTA_CAP_CHGFROM,
      PH(MAIL) | PH(DATA) },
    { "rcpt_add", act_rcpt_add, MODMTA_CAP_ADDRCPT, PH(RCPT) | PH(DATA) },
    { "rcpt_add_flags", act_rcpt_add_flags, MODMTA_CAP_ADDRCPT,
      PH(RCPT) | PH(DATA) },
    { "rcpt_remove", act_rcpt_remove, MODMTA_CAP_DELRCPT, PH(DATA) },
    { "rcpt_rewrite", act_rcpt_rewrite, MODMTA_CAP_REWRITE, PH(RCPT) },
    { "rcpt_rewrite_sender", act_rcpt_rewrite_sender, MODMTA_CAP_REWRITE,
      PH(RCPT) },
    { "quarantine", act_quarantine, MODMTA_CAP_QUARANTINE, PH(DATA) },
    { "set_auth_user", act_set_auth_user, 0, PH(VERB) | PH(AUTH) },
    { "ehlo_add", act_ehlo_add, 0, PH(EHLO) },
};

#define NACTIONS (sizeof(actions) / sizeof(actions[0]))

static void
test_phase_checks(void **state)
{
    modmta_ctx *ctx = ctx_of(state);
    size_t i;
    int p, want, got;

    for (i = 0; i < NACTIONS; i++) {
        for (p = 0; p <= PHASE_MAX; p++) {
            modmta_test_enter(ctx, (modmta_phase)p, &test_mod_all, "inst");
            want = actions[i].phases & (1u << p) ? 0 : MODMTA_E_STATE;
            got = actions[i].fn(ctx);
            if (got != want)
                fail_msg("%s in phase %d: got %d, want %d", actions[i].name,
                         p, got, want);
        }
    }
}

/* In an allowed phase: without its capability an action is refused, with
 * only its capability it is done. */
static void
test_cap_checks(void **state)
{
    modmta_ctx *ctx = ctx_of(state);
    modmta_module without = test_mod_all, only = test_mod_none;
    size_t i;
    int p, got;

    for (i = 0; i < NACTIONS; i++) {
        for (p = 0; !(actions[i].phases & (1u << p)); p++)
            ;
        without.caps = ALL_CAPS & ~actions[i].cap;
        only.caps = actions[i].cap;
        modmta_test_enter(ctx, (modmta_phase)p, &without, "inst");
        got = actions[i].fn(ctx);
        if (got != (actions[i].cap != 0 ? MODMTA_E_PERM : 0))
            fail_msg("%s without its cap: got %d", actions[i].name, got);
        modmta_test_enter(ctx, (modmta_phase)p, &only, "inst");
        got = actions[i].fn(ctx);
        if (got != 0)
            fail_msg("%s with only its cap: got %d", actions[i].name, got);
    }
}

/* A refused action leaves no trace. */
static void
test_refused_actions_record_nothing(void **state)
{
    modmta_ctx *ctx = ctx_of(state);

    modmta_test_set_sender(ctx, "Q1", "orig@example.org");
    modmta_test_add_header(ctx, "Subject", "s");
    modmta_test_enter(ctx, MODMTA_PHASE_DATA, &test_mod_none, "inst");
    assert_int_equal(modmta_hdr_add(ctx, "X-A", "a"), MODMTA_E_PERM);
    assert_int_equal(modmta_hdr_change(ctx, "Subject", 0, "t"),
                     MODMTA_E_PERM);
    assert_int_equal(modmta_hdr_delete(ctx, "Subject", 0), MODMTA_E_PERM);
    assert_int_equal(modmta_sender_set(ctx, "x@y"), MODMTA_E_PERM);
    assert_int_equal(modmta_rcpt_add(ctx, "x@y"), MODMTA_E_PERM);
    assert_int_equal(modmta_rcpt_remove(ctx, "x@y"), MODMTA_E_PERM);
    assert_int_equal(modmta_quarantine(ctx, "r"), MODMTA_E_PERM);
    assert_int_equal(modmta_hdr_count(ctx), 1);
    assert_string_equal(modmta_hdr_get(ctx, "Subject", 0), "s");
    assert_int_equal(ctx->hdrs_dirty, 0);
    assert_string_equal(modmta_sender(ctx), "orig@example.org");
    assert_int_equal(ctx->sender_changed, 0);
    assert_int_equal(modmta_test_added_count(ctx), 0);
    assert_int_equal(ctx->nremoved, 0);
    assert_null(ctx->quarantine);
}

/* The core itself (no module running) is not bound by caps. */
static void
test_core_has_every_cap(void **state)
{
    modmta_ctx *ctx = ctx_of(state);

    modmta_ctx_enter(ctx, MODMTA_PHASE_DATA, NULL, NULL, NULL);
    assert_int_equal(modmta_hdr_add(ctx, "X-Core", "1"), 0);
    assert_int_equal(modmta_quarantine(ctx, "core"), 0);
    /* ... but still by the phase */
    modmta_ctx_enter(ctx, MODMTA_PHASE_RCPT, NULL, NULL, NULL);
    assert_int_equal(modmta_hdr_add(ctx, "X-Core", "2"), MODMTA_E_STATE);
}

static void
test_actions_record(void **state)
{
    modmta_ctx *ctx = ctx_of(state);

    modmta_test_set_sender(ctx, "Q1", "orig@example.org");
    modmta_test_add_rcpt(ctx, "a@example.org");
    modmta_test_enter(ctx, MODMTA_PHASE_DATA, &test_mod_all, "inst");
    assert_int_equal(modmta_sender_set(ctx, ""), 0);
    assert_string_equal(modmta_sender(ctx), "");
    assert_int_equal(ctx->sender_changed, 1);
    assert_int_equal(modmta_rcpt_add(ctx, "b@example.org"), 0);
    assert_int_equal(modmta_rcpt_add(ctx, ""), MODMTA_E_INVAL);
    assert_int_equal(modmta_test_added_count(ctx), 1);
    assert_string_equal(modmta_test_added_at(ctx, 0), "b@example.org");
    assert_int_equal(modmta_rcpt_remove(ctx, "a@example.org"), 0);
    assert_int_equal(ctx->nremoved, 1);
    assert_string_equal(ctx->removed[0], "a@example.org");
    assert_int_equal(modmta_quarantine(ctx, "looks bad"), 0);
    assert_string_equal(ctx->quarantine, "looks bad");

    modmta_test_enter(ctx, MODMTA_PHASE_RCPT, &test_mod_all, "inst");
    assert_int_equal(modmta_rcpt_rewrite(ctx, "t1@example.org"), 0);
    assert_int_equal(modmta_rcpt_rewrite(ctx, "t2@example.org"), 0);
    assert_int_equal(modmta_test_rewrite_count(ctx), 2);
    assert_string_equal(modmta_test_rewrite_at(ctx, 1), "t2@example.org");
    assert_int_equal(modmta_rcpt_rewrite_sender(ctx, NULL), MODMTA_E_INVAL);
    assert_int_equal(modmta_rcpt_rewrite_sender(ctx, "o1@example.org"), 0);
    assert_int_equal(modmta_rcpt_rewrite_sender(ctx, ""), 0);
    assert_string_equal(modmta_test_rewrite_sender(ctx), "");
    /* the next hook starts with no rewrite targets and no sender */
    modmta_test_enter(ctx, MODMTA_PHASE_RCPT, &test_mod_all, "inst");
    assert_int_equal(modmta_test_rewrite_count(ctx), 0);
    assert_null(modmta_test_rewrite_sender(ctx));

    modmta_test_enter(ctx, MODMTA_PHASE_EHLO, &test_mod_none, "inst");
    assert_int_equal(modmta_ehlo_add(ctx, "AUTH PLAIN"), 0);
    assert_int_equal(modmta_ehlo_add(ctx, "BAD\r\n250 X"), MODMTA_E_INVAL);
    assert_int_equal(modmta_test_ehlo_count(ctx), 1);
    assert_string_equal(modmta_test_ehlo_at(ctx, 0), "AUTH PLAIN");
}

/* ---- headers ---- */

static char *
serialized(const modmta_ctx *ctx)
{
    char *buf = NULL;
    long n = modmta_ctx_headers_serialize(ctx, &buf);

    assert_true(n >= 0);
    assert_non_null(buf);
    assert_int_equal((size_t)n, strlen(buf));
    return buf;
}

static void
assert_serialized(const modmta_ctx *ctx, const char *want)
{
    char *got = serialized(ctx);

    assert_string_equal(got, want);
    free(got);
}

static void
test_hdr_edit_serialize(void **state)
{
    modmta_ctx *ctx = ctx_of(state);

    modmta_test_add_header(ctx, "Received", "from a\r\n\tby b; date");
    modmta_test_add_header(ctx, "From", "<a@example.org>");
    modmta_test_add_header(ctx, "To", "<b@example.org>");
    modmta_test_add_header(ctx, "Subject", "hello");
    assert_serialized(ctx, "Received: from a\r\n\tby b; date\r\n"
                           "From: <a@example.org>\r\n"
                           "To: <b@example.org>\r\n"
                           "Subject: hello\r\n");
    assert_int_equal(ctx->hdrs_dirty, 0);

    modmta_test_enter(ctx, MODMTA_PHASE_DATA, &test_mod_all, "inst");
    assert_int_equal(modmta_hdr_add(ctx, "X-Added", "yes"), 0);
    assert_int_equal(ctx->hdrs_dirty, 1); /* the core rewrites the head */
    assert_int_equal(modmta_hdr_change(ctx, "subject", 0, "changed"), 0);
    assert_int_equal(modmta_hdr_delete(ctx, "TO", 0), 0);
    assert_int_equal(ctx->hdrs_dirty, 1);
    assert_serialized(ctx, "Received: from a\r\n\tby b; date\r\n"
                           "From: <a@example.org>\r\n"
                           "Subject: changed\r\n"
                           "X-Added: yes\r\n");
    assert_string_equal(modmta_hdr_get(ctx, "Subject", 0), "changed");
    assert_string_equal(modmta_hdr_get(ctx, "x-added", 0), "yes");
    assert_null(modmta_hdr_get(ctx, "To", 0));
    /* a header that is not there (any more) */
    assert_int_equal(modmta_hdr_change(ctx, "To", 0, "x"),
                     MODMTA_E_NOTFOUND);
    assert_int_equal(modmta_hdr_delete(ctx, "To", 0), MODMTA_E_NOTFOUND);
    assert_int_equal(modmta_hdr_delete(ctx, "Subject", 1), MODMTA_E_NOTFOUND);
}

static void
test_hdr_repeated(void **state)
{
    modmta_ctx *ctx = ctx_of(state);

    modmta_test_add_header(ctx, "Received", "one");
    modmta_test_add_header(ctx, "X-Other", "o");
    modmta_test_add_header(ctx, "received", "two");
    modmta_test_add_header(ctx, "RECEIVED", "three");
    assert_string_equal(modmta_hdr_get(ctx, "Received", 0), "one");
    assert_string_equal(modmta_hdr_get(ctx, "rEcEiVeD", 1), "two");
    assert_string_equal(modmta_hdr_get(ctx, "received", 2), "three");
    assert_null(modmta_hdr_get(ctx, "Received", 3));
    assert_null(modmta_hdr_get(ctx, "Receive", 0));

    modmta_test_enter(ctx, MODMTA_PHASE_DATA, &test_mod_all, "inst");
    assert_int_equal(ctx->hdrs_dirty, 0);
    assert_int_equal(modmta_hdr_change(ctx, "Received", 1, "TWO"), 0);
    assert_int_equal(ctx->hdrs_dirty, 1);
    ctx->hdrs_dirty = 0;
    assert_int_equal(modmta_hdr_delete(ctx, "Received", 0), 0);
    assert_int_equal(ctx->hdrs_dirty, 1);
    /* idx counts the live headers of that name */
    assert_string_equal(modmta_hdr_get(ctx, "Received", 0), "TWO");
    assert_string_equal(modmta_hdr_get(ctx, "Received", 1), "three");
    assert_serialized(ctx, "X-Other: o\r\n"
                           "received: TWO\r\n"
                           "RECEIVED: three\r\n");
}

static void
test_hdr_injection(void **state)
{
    static const char *bad_names[] = {
        "", "X Bad", "X:Bad", "X-Bad:", "X\tBad", "X\r\nBad", "X\x7f",
    };
    static const char *bad_values[] = {
        "a\nb",              /* bare LF */
        "a\rb",              /* bare CR */
        "a\r\nb",            /* CRLF starting a new line */
        "a\r\nX-Evil: 1",    /* a smuggled header */
        "a\r\n",             /* CRLF at the end */
        "a\r\n\r\nbody",     /* end of headers */
        "a\r\n \r\nX: 1",    /* folded, then a new line */
        "\n",
    };
    modmta_ctx *ctx = ctx_of(state);
    size_t i;

    modmta_test_add_header(ctx, "Subject", "s");
    modmta_test_enter(ctx, MODMTA_PHASE_DATA, &test_mod_all, "inst");
    for (i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
        if (modmta_hdr_add(ctx, bad_names[i], "v") != MODMTA_E_INVAL)
            fail_msg("name %zu accepted", i);
    for (i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
        if (modmta_hdr_add(ctx, "X-Ok", bad_values[i]) != MODMTA_E_INVAL)
            fail_msg("value %zu accepted by hdr_add", i);
        if (modmta_hdr_change(ctx, "Subject", 0, bad_values[i])
            != MODMTA_E_INVAL)
            fail_msg("value %zu accepted by hdr_change", i);
    }
    assert_int_equal(modmta_hdr_add(ctx, NULL, "v"), MODMTA_E_INVAL);
    assert_int_equal(modmta_hdr_add(ctx, "X-Ok", NULL), MODMTA_E_INVAL);
    assert_int_equal(modmta_hdr_change(ctx, NULL, 0, "v"), MODMTA_E_INVAL);
    assert_int_equal(ctx->hdrs_dirty, 0);
    assert_serialized(ctx, "Subject: s\r\n");

    /* folding is allowed */
    assert_int_equal(modmta_hdr_add(ctx, "X-Folded", "a\r\n b\r\n\tc"), 0);
    assert_int_equal(modmta_hdr_change(ctx, "Subject", 0, "x\r\n y"), 0);
    assert_int_equal(modmta_hdr_add(ctx, "X-Empty", ""), 0);
    assert_serialized(ctx, "Subject: x\r\n y\r\n"
                           "X-Folded: a\r\n b\r\n\tc\r\n"
                           "X-Empty: \r\n");
}

/* ---- replies ---- */

static void
test_reply_validation(void **state)
{
    modmta_ctx *ctx = ctx_of(state);

    modmta_test_enter(ctx, MODMTA_PHASE_RCPT, &test_mod_none, "inst");
    assert_int_equal(modmta_reply(ctx, 550, "5.7.1", "no %s", "relay"), 0);
    assert_int_equal(modmta_test_reply_code(ctx), 550);
    assert_string_equal(modmta_test_reply_esc(ctx), "5.7.1");
    assert_string_equal(modmta_test_reply_text(ctx), "no relay");

    /* refused replies leave the previous one */
    assert_int_equal(modmta_reply(ctx, 199, NULL, "x"), MODMTA_E_INVAL);
    assert_int_equal(modmta_reply(ctx, 600, NULL, "x"), MODMTA_E_INVAL);
    assert_int_equal(modmta_reply(ctx, 0, NULL, "x"), MODMTA_E_INVAL);
    assert_int_equal(modmta_reply(ctx, 250, "5.7.1", "x"), MODMTA_E_INVAL);
    assert_int_equal(modmta_reply(ctx, 451, "5.7.1", "x"), MODMTA_E_INVAL);
    assert_int_equal(modmta_reply(ctx, 550, "4.7.1", "x"), MODMTA_E_INVAL);
    assert_int_equal(modmta_reply(ctx, 550, "1.0.0", "x"), MODMTA_E_INVAL);
    assert_int_equal(modmta_test_reply_code(ctx), 550);
    assert_string_equal(modmta_test_reply_esc(ctx), "5.7.1");
    assert_string_equal(modmta_test_reply_text(ctx), "no relay");

    assert_int_equal(modmta_reply(ctx, 200, NULL, "lo"), 0);
    assert_int_equal(modmta_test_reply_code(ctx), 200);
    assert_string_equal(modmta_test_reply_esc(ctx), "");
    assert_int_equal(modmta_reply(ctx, 599, "5.0.0", "hi"), 0);
    assert_int_equal(modmta_reply(ctx, 421, "4.3.2", "x"), 0);
    assert_string_equal(modmta_test_reply_esc(ctx), "4.3.2");

    /* one line only: CR and LF become spaces */
    assert_int_equal(modmta_reply(ctx, 550, NULL, "a\r\n250 b\nc\rd"), 0);
    assert_string_equal(modmta_test_reply_text(ctx), "a  250 b c d");

    /* the next hook starts with no reply */
    modmta_test_enter(ctx, MODMTA_PHASE_RCPT, &test_mod_none, "inst");
    assert_int_equal(modmta_test_reply_code(ctx), 0);
}

static void
test_reply_default(void **state)
{
    modmta_ctx *ctx = ctx_of(state);

    modmta_ctx_reply_default(ctx, 451, "4.3.0", "default one");
    assert_int_equal(modmta_test_reply_code(ctx), 451);
    assert_string_equal(modmta_test_reply_esc(ctx), "4.3.0");
    assert_string_equal(modmta_test_reply_text(ctx), "default one");
    /* a reply already set (by a module or a default) wins */
    modmta_ctx_reply_default(ctx, 550, "5.0.0", "default two");
    assert_int_equal(modmta_test_reply_code(ctx), 451);
    assert_string_equal(modmta_test_reply_text(ctx), "default one");

    modmta_ctx_reply_clear(ctx);
    assert_int_equal(modmta_reply(ctx, 554, "5.7.1", "module"), 0);
    modmta_ctx_reply_default(ctx, 550, "5.0.0", "core");
    assert_int_equal(modmta_test_reply_code(ctx), 554);
    assert_string_equal(modmta_test_reply_esc(ctx), "5.7.1");
    assert_string_equal(modmta_test_reply_text(ctx), "module");
}

/* ---- transaction ---- */

/* Fill fresh transaction memory, so that session data wrongly kept in the
 * freed transaction arena is overwritten (ASan reports it directly). */
static void
scribble_txn(modmta_ctx *ctx)
{
    int i;
    void *p;

    for (i = 0; i < 8; i++) {
        p = modmta_txn_alloc(ctx, 4000);
        assert_non_null(p);
        memset(p, 'Z', 4000);
    }
}

static void
test_txn_reset(void **state)
{
    modmta_ctx *ctx = ctx_of(state);
    char *sess, *txn;

    modmta_test_set_helo(ctx, "client.example.org");
    modmta_test_enter(ctx, MODMTA_PHASE_AUTH, &test_mod_none, "inst");
    assert_int_equal(modmta_set_auth_user(ctx, "alice"), 0);
    sess = modmta_sess_strdup(ctx, "session data");
    modmta_test_set_sender(ctx, "Q1", "s@example.org");
    assert_int_equal(modmta_ctx_add_param(ctx, "SIZE", "100"), 0);
    modmta_test_add_rcpt(ctx, "r@example.org");
    modmta_test_add_header(ctx, "Subject", "s");
    modmta_ctx_set_message(ctx, "/nonexistent/Q1.msg", 123);
    modmta_ctx_set_rcpt_eval(ctx, "orig@example.org", 1);
    modmta_test_enter(ctx, MODMTA_PHASE_DATA, &test_mod_all, "inst");
    assert_int_equal(modmta_hdr_add(ctx, "X-A", "a"), 0);
    assert_int_equal(modmta_rcpt_add(ctx, "b@example.org"), 0);
    assert_int_equal(modmta_rcpt_remove(ctx, "r@example.org"), 0);
    assert_int_equal(modmta_sender_set(ctx, "t@example.org"), 0);
    assert_int_equal(modmta_quarantine(ctx, "q"), 0);
    assert_int_equal(modmta_reply(ctx, 550, NULL, "no"), 0);
    txn = modmta_txn_strdup(ctx, "txn data");
    assert_non_null(txn);

    modmta_ctx_txn_reset(ctx);
    scribble_txn(ctx);

    assert_null(modmta_queue_id(ctx));
    assert_null(modmta_sender(ctx));
    assert_null(modmta_mail_param(ctx, "SIZE"));
    assert_int_equal(modmta_rcpt_count(ctx), 0);
    assert_null(modmta_rcpt_at(ctx, 0));
    assert_int_equal(modmta_hdr_count(ctx), 0);
    assert_null(modmta_hdr_get(ctx, "Subject", 0));
    assert_null(modmta_message_path(ctx));
    assert_int_equal(modmta_message_size(ctx), 0);
    assert_null(modmta_rcpt_original(ctx));
    assert_int_equal(modmta_rcpt_is_rewritten(ctx), 0);
    assert_int_equal(modmta_test_added_count(ctx), 0);
    assert_int_equal(ctx->nremoved, 0);
    assert_null(ctx->quarantine);
    assert_int_equal(ctx->sender_changed, 0);
    assert_int_equal(ctx->hdrs_dirty, 0);
    assert_int_equal(modmta_test_reply_code(ctx), 0);
    /* the session stays */
    assert_string_equal(modmta_helo(ctx), "client.example.org");
    assert_int_equal(modmta_is_esmtp(ctx), 1);
    assert_string_equal(modmta_auth_user(ctx), "alice");
    assert_string_equal(modmta_session_id(ctx), "TESTSESSION");
    assert_string_equal(modmta_client_addr(ctx), "192.0.2.1");
    assert_int_equal(modmta_client_port(ctx), 40000);
    assert_string_equal(sess, "session data");

    /* and the next transaction starts clean */
    modmta_test_set_sender(ctx, "Q2", "s2@example.org");
    modmta_test_add_rcpt(ctx, "r2@example.org");
    assert_string_equal(modmta_queue_id(ctx), "Q2");
    assert_int_equal(modmta_rcpt_count(ctx), 1);
    assert_string_equal(modmta_rcpt_at(ctx, 0), "r2@example.org");
}

static void
test_rcpt_dedupe_remove(void **state)
{
    modmta_ctx *ctx = ctx_of(state);

    modmta_test_set_sender(ctx, "Q1", "s@example.org");
    assert_int_equal(modmta_ctx_add_rcpt(ctx, "Bob@Example.ORG"), 1);
    assert_int_equal(modmta_ctx_add_rcpt(ctx, "bob@example.org"), 0);
    assert_int_equal(modmta_ctx_add_rcpt(ctx, "carol@example.org"), 1);
    assert_int_equal(modmta_ctx_add_rcpt(ctx, "dave@example.org"), 1);
    assert_int_equal(modmta_rcpt_count(ctx), 3);
    assert_string_equal(modmta_rcpt_at(ctx, 0), "Bob@Example.ORG");
    assert_true(modmta_ctx_has_rcpt(ctx, "BOB@EXAMPLE.ORG"));
    assert_false(modmta_ctx_has_rcpt(ctx, "bob@example.com"));

    modmta_ctx_remove_rcpt(ctx, "bOb@example.org");
    assert_int_equal(modmta_rcpt_count(ctx), 2);
    assert_string_equal(modmta_rcpt_at(ctx, 0), "carol@example.org");
    assert_string_equal(modmta_rcpt_at(ctx, 1), "dave@example.org");
    assert_null(modmta_rcpt_at(ctx, 2));
    assert_false(modmta_ctx_has_rcpt(ctx, "bob@example.org"));
    modmta_ctx_remove_rcpt(ctx, "nobody@example.org");
    assert_int_equal(modmta_rcpt_count(ctx), 2);
    modmta_ctx_remove_rcpt(ctx, "dave@example.org");
    assert_int_equal(modmta_rcpt_count(ctx), 1);
    assert_string_equal(modmta_rcpt_at(ctx, 0), "carol@example.org");
    /* removed, it may come back */
    assert_int_equal(modmta_ctx_add_rcpt(ctx, "bob@example.org"), 1);
    assert_int_equal(modmta_rcpt_count(ctx), 2);

    /* many: the array grows */
    for (int i = 0; i < 50; i++) {
        char a[32];

        snprintf(a, sizeof(a), "u%d@example.org", i);
        assert_int_equal(modmta_ctx_add_rcpt(ctx, a), 1);
    }
    assert_int_equal(modmta_rcpt_count(ctx), 52);
    assert_string_equal(modmta_rcpt_at(ctx, 51), "u49@example.org");
}

static void
test_mail_params(void **state)
{
    modmta_ctx *ctx = ctx_of(state);

    modmta_test_set_sender(ctx, "Q1", "");
    assert_string_equal(modmta_sender(ctx), "");
    assert_int_equal(modmta_ctx_add_param(ctx, "SIZE", "1000"), 0);
    assert_int_equal(modmta_ctx_add_param(ctx, "BODY", "8BITMIME"), 0);
    assert_int_equal(modmta_ctx_add_param(ctx, "SMTPUTF8", NULL), 0);
    assert_string_equal(modmta_mail_param(ctx, "size"), "1000");
    assert_string_equal(modmta_mail_param(ctx, "Body"), "8BITMIME");
    assert_string_equal(modmta_mail_param(ctx, "SMTPUTF8"), "");
    assert_string_equal(modmta_mail_param(ctx, "smtputf8"), "");
    assert_null(modmta_mail_param(ctx, "AUTH"));
    assert_null(modmta_mail_param(ctx, "SIZ"));
}

/* ---- per-session data ---- */

static int freed_count;
static void *freed_last;

static void
count_free(void *p)
{
    freed_count++;
    freed_last = p;
}

static void
test_data(void **state)
{
    struct test_env *e = *state;
    modmta_ctx *ctx = modmta_test_ctx_new(e->host, "::1");
    int a = 1, b = 2, c = 3, inst1, inst2, inst3;

    freed_count = 0;
    freed_last = NULL;
    assert_null(modmta_ctx_get_data(ctx, &inst1));
    assert_int_equal(modmta_ctx_set_data(ctx, &inst1, &a, count_free), 0);
    assert_int_equal(modmta_ctx_set_data(ctx, &inst2, &b, count_free), 0);
    assert_ptr_equal(modmta_ctx_get_data(ctx, &inst1), &a);
    assert_ptr_equal(modmta_ctx_get_data(ctx, &inst2), &b);
    assert_null(modmta_ctx_get_data(ctx, &inst3));
    assert_int_equal(freed_count, 0);

    /* replaced: the old data is freed once */
    assert_int_equal(modmta_ctx_set_data(ctx, &inst1, &c, count_free), 0);
    assert_int_equal(freed_count, 1);
    assert_ptr_equal(freed_last, &a);
    assert_ptr_equal(modmta_ctx_get_data(ctx, &inst1), &c);
    /* set again to the same pointer: not freed */
    assert_int_equal(modmta_ctx_set_data(ctx, &inst1, &c, count_free), 0);
    assert_int_equal(freed_count, 1);

    /* a transaction reset keeps session data */
    modmta_ctx_txn_reset(ctx);
    assert_ptr_equal(modmta_ctx_get_data(ctx, &inst2), &b);
    assert_int_equal(freed_count, 1);

    /* data without a destructor */
    assert_int_equal(modmta_ctx_set_data(ctx, &inst3, &a, NULL), 0);

    modmta_test_ctx_free(ctx);
    assert_int_equal(freed_count, 3); /* c and b, not a again */
}

static void
test_data_many_instances(void **state)
{
    struct test_env *e = *state;
    modmta_ctx *ctx = modmta_test_ctx_new(e->host, NULL);
    static char insts[40];
    int i;

    freed_count = 0;
    for (i = 0; i < 40; i++)
        assert_int_equal(modmta_ctx_set_data(ctx, &insts[i], &insts[i],
                                             count_free), 0);
    for (i = 0; i < 40; i++)
        assert_ptr_equal(modmta_ctx_get_data(ctx, &insts[i]), &insts[i]);
    modmta_test_ctx_free(ctx);
    assert_int_equal(freed_count, 40);
}

/* ---- arenas ---- */

static void
test_arena_alignment(void **state)
{
    static const size_t sizes[] = { 1, 3, 15, 16, 17, 100, 1000, 4095 };
    modmta_ctx *ctx = ctx_of(state);
    unsigned char *p[sizeof(sizes) / sizeof(sizes[0])];
    size_t i, j;

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        p[i] = modmta_txn_alloc(ctx, sizes[i]);
        assert_non_null(p[i]);
        assert_int_equal((uintptr_t)p[i] % 16, 0);
        for (j = 0; j < sizes[i]; j++)
            assert_int_equal(p[i][j], 0); /* zeroed */
        memset(p[i], (int)i + 1, sizes[i]);
    }
    /* no block overlaps another */
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        for (j = 0; j < sizes[i]; j++)
            assert_int_equal(p[i][j], (int)i + 1);
    p[0] = modmta_sess_alloc(ctx, 7);
    assert_non_null(p[0]);
    assert_int_equal((uintptr_t)p[0] % 16, 0);
}

static void
test_arena_large(void **state)
{
    static const size_t sizes[] = { 4096, 4097, 10000, 100000, 5 };
    modmta_ctx *ctx = ctx_of(state);
    unsigned char *p[sizeof(sizes) / sizeof(sizes[0])];
    size_t i, j;

    assert_non_null(modmta_txn_alloc(ctx, 100)); /* a chunk in use */
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        p[i] = modmta_txn_alloc(ctx, sizes[i]);
        assert_non_null(p[i]);
        assert_int_equal((uintptr_t)p[i] % 16, 0);
        memset(p[i], (int)i + 1, sizes[i]);
    }
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        for (j = 0; j < sizes[i]; j++)
            if (p[i][j] != (unsigned char)(i + 1))
                fail_msg("block %zu byte %zu overwritten", i, j);
    p[0] = modmta_sess_alloc(ctx, 50000);
    assert_non_null(p[0]);
    memset(p[0], 0xaa, 50000);
    assert_null(modmta_txn_alloc(ctx, SIZE_MAX));
}

static void
test_arena_strdup(void **state)
{
    modmta_ctx *ctx = ctx_of(state);
    char big[6000];
    const char *s = "hello arena";
    char *t, *u, *v;

    t = modmta_txn_strdup(ctx, s);
    assert_non_null(t);
    assert_ptr_not_equal(t, s);
    assert_string_equal(t, s);
    u = modmta_sess_strdup(ctx, "");
    assert_non_null(u);
    assert_string_equal(u, "");
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    v = modmta_sess_strdup(ctx, big);
    assert_non_null(v);
    assert_string_equal(v, big);
    assert_null(modmta_txn_strdup(ctx, NULL));
    assert_string_equal(t, s);
}

static void
test_arena_direct(void **state)
{
    struct modmta_arena *a = modmta_arena_new();
    char *p[200];
    int i;

    assert_non_null(a);
    /* enough to take several chunks */
    for (i = 0; i < 200; i++) {
        p[i] = modmta_arena_alloc(a, 100);
        assert_non_null(p[i]);
        assert_int_equal((uintptr_t)p[i] % 16, 0);
        memset(p[i], i, 100);
    }
    for (i = 0; i < 200; i++)
        assert_int_equal((unsigned char)p[i][99], i);
    assert_string_equal(modmta_arena_strdup(a, "abc"), "abc");
    modmta_arena_free(a);
    assert_null(modmta_arena_alloc(NULL, 1));
    modmta_arena_free(NULL);
}

/* MODMTA_RCPT_NO_DSN: recorded for new recipients only; a plain add of
 * the same address wins; unknown flags refused; cleared with the
 * transaction. */
/* Per-recipient senders (core setters): set, replace, dropped with the
 * recipient and at the end of the transaction. */
static void
test_rcpt_sender(void **state)
{
    modmta_ctx *ctx = ctx_of(state);

    modmta_test_add_rcpt(ctx, "m1@example.org");
    modmta_test_add_rcpt(ctx, "m2@example.org");
    assert_null(modmta_ctx_rcpt_sender(ctx, "m1@example.org"));
    assert_int_equal(modmta_ctx_set_rcpt_sender(ctx, "m1@example.org",
                                                "o1@example.org"), 0);
    assert_int_equal(modmta_ctx_set_rcpt_sender(ctx, "m2@example.org",
                                                "o1@example.org"), 0);
    assert_int_equal(modmta_ctx_set_rcpt_sender(ctx, "M1@example.org",
                                                "o2@example.org"), 0);
    assert_string_equal(modmta_ctx_rcpt_sender(ctx, "m1@example.org"),
                        "o2@example.org");
    modmta_ctx_remove_rcpt(ctx, "m1@example.org");
    assert_null(modmta_ctx_rcpt_sender(ctx, "m1@example.org"));
    assert_string_equal(modmta_ctx_rcpt_sender(ctx, "m2@example.org"),
                        "o1@example.org");
    modmta_ctx_txn_reset(ctx);
    assert_null(modmta_ctx_rcpt_sender(ctx, "m2@example.org"));
}

/* Every envelope setter refuses what could break a line of the queue
 * file, an SMTP command or a pipe's prefix. */
static void
test_envelope_setters_check(void **state)
{
    modmta_ctx *ctx = ctx_of(state);
    char longaddr[MODMTA_ADDR_ENVELOPE_MAX + 8];
    static const char *const bad[] = {
        "a@x.test\r\nX-Injected: yes", "a@x.test\n", "a\t@x.test",
        "<a@x.test>", "a@x.test>", "a\x7f@x.test",
    };

    memset(longaddr, 'a', sizeof(longaddr) - 1);
    longaddr[sizeof(longaddr) - 1] = '\0';
    modmta_test_set_sender(ctx, "Q1", "orig@example.org");
    modmta_test_add_rcpt(ctx, "a@example.org");
    for (size_t i = 0; i <= sizeof(bad) / sizeof(bad[0]); i++) {
        const char *a = i < sizeof(bad) / sizeof(bad[0]) ? bad[i] : longaddr;

        assert_false(modmta_addr_envelope_ok(a));
        modmta_test_enter(ctx, MODMTA_PHASE_DATA, &test_mod_all, "inst");
        assert_int_equal(modmta_sender_set(ctx, a), MODMTA_E_INVAL);
        assert_int_equal(modmta_rcpt_add(ctx, a), MODMTA_E_INVAL);
        assert_int_equal(modmta_rcpt_add_flags(ctx, a, MODMTA_RCPT_NO_DSN),
                         MODMTA_E_INVAL);
        modmta_test_enter(ctx, MODMTA_PHASE_RCPT, &test_mod_all, "inst");
        assert_int_equal(modmta_rcpt_rewrite(ctx, a), MODMTA_E_INVAL);
        assert_int_equal(modmta_rcpt_rewrite_sender(ctx, a), MODMTA_E_INVAL);
    }
    assert_string_equal(modmta_sender(ctx), "orig@example.org");
    assert_int_equal(ctx->sender_changed, 0);
    assert_int_equal(modmta_test_added_count(ctx), 0);
    assert_int_equal(modmta_test_rewrite_count(ctx), 0);
    /* the longest allowed, and UTF-8, pass */
    longaddr[MODMTA_ADDR_ENVELOPE_MAX - 1] = '\0';
    assert_true(modmta_addr_envelope_ok(longaddr));
    assert_true(modmta_addr_envelope_ok("\xc3\xa9@x.test"));
    assert_true(modmta_addr_envelope_ok(""));
}

static void
test_rcpt_no_dsn(void **state)
{
    modmta_ctx *ctx = ctx_of(state);

    modmta_test_set_sender(ctx, "Q1", "s@example.org");
    modmta_test_add_rcpt(ctx, "given@example.org");
    modmta_test_enter(ctx, MODMTA_PHASE_DATA, &test_mod_all, "inst");
    assert_int_equal(modmta_rcpt_add_flags(ctx, "x@example.org", 1u << 7),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_test_added_count(ctx), 0);
    assert_int_equal(modmta_rcpt_add_flags(ctx, "Bcc@example.org",
                                           MODMTA_RCPT_NO_DSN), 0);
    assert_int_equal(modmta_rcpt_add_flags(ctx, "GIVEN@example.org",
                                           MODMTA_RCPT_NO_DSN), 0);
    assert_int_equal(modmta_rcpt_add_flags(ctx, "plain@example.org", 0), 0);
    assert_int_equal(modmta_test_added_count(ctx), 3);
    assert_string_equal(modmta_test_added_at(ctx, 0), "Bcc@example.org");
    assert_true(modmta_test_added_no_dsn(ctx, "bcc@example.org"));
    assert_false(modmta_test_added_no_dsn(ctx, "given@example.org"));
    assert_false(modmta_test_added_no_dsn(ctx, "plain@example.org"));
    /* a plain add of the bcc address: the sender asked for it after all */
    assert_int_equal(modmta_rcpt_add(ctx, "bcc@example.org"), 0);
    assert_false(modmta_test_added_no_dsn(ctx, "bcc@example.org"));
    assert_int_equal(modmta_rcpt_add_flags(ctx, "b2@example.org",
                                           MODMTA_RCPT_NO_DSN), 0);
    assert_true(modmta_test_added_no_dsn(ctx, "b2@example.org"));
    modmta_ctx_txn_reset(ctx);
    assert_false(modmta_test_added_no_dsn(ctx, "b2@example.org"));
}

/* An owner of "virt.test" that records what it was asked. */
static int
owner_virt(void *inst, const char *domain)
{
    snprintf(inst, 64, "%s", domain);
    return strcmp(domain, "virt.test") == 0;
}

static int
owner_never(void *inst, const char *domain)
{
    (void)inst;
    (void)domain;
    return 0;
}

static void
test_inbound_domain(void **state)
{
    struct test_env *e = *state;
    char asked[64] = "";

    /* local_domains alone, before any owner */
    assert_int_equal(modmta_is_inbound_domain(e->ctx, "LocalHost."), 1);
    assert_int_equal(modmta_is_inbound_domain(e->ctx, "virt.test"), 0);
    assert_int_equal(modmta_is_inbound_domain(e->ctx, ""), 0);
    assert_int_equal(modmta_is_inbound_domain(e->ctx, NULL), 0);
    assert_int_equal(modmta_is_inbound_domain(NULL, "localhost"), 0);
    assert_int_equal(modmta_test_host_add_owner(e->host, owner_never, NULL),
                     0);
    assert_int_equal(modmta_test_host_add_owner(e->host, owner_virt, asked),
                     0);
    /* every owner is asked, with the domain lowered and undotted */
    assert_int_equal(modmta_is_inbound_domain(e->ctx, "Virt.TEST."), 1);
    assert_string_equal(asked, "virt.test");
    assert_int_equal(modmta_is_inbound_domain(e->ctx, "other.test"), 0);
    assert_string_equal(asked, "other.test");
    /* a local domain never reaches the owners */
    asked[0] = '\0';
    assert_int_equal(modmta_is_inbound_domain(e->ctx, "localhost"), 1);
    assert_string_equal(asked, "");
    assert_int_equal(modmta_is_inbound_domain(e->ctx, "."), 0);
    assert_string_equal(asked, "");
}

/* ---- transaction notes (ctx_note.c) ---- */

/* The ctx in a transaction, at on_data. */
static modmta_ctx *
note_ctx(void **state)
{
    modmta_ctx *ctx = ctx_of(state);

    modmta_test_set_sender(ctx, "Q1", "a@example.org");
    modmta_test_enter(ctx, MODMTA_PHASE_DATA, &test_mod_none, NULL);
    return ctx;
}

static void
test_note_set_get(void **state)
{
    modmta_ctx *ctx = note_ctx(state);
    const char *s = NULL;
    long long n = 0;

    assert_int_equal(modmta_note_get_int(ctx, "spam.score", &n), 0);
    assert_int_equal(modmta_note_set_int(ctx, "spam.score", -7), 0);
    assert_int_equal(modmta_note_set_str(ctx, "spam:verdict", "ham"), 0);
    assert_int_equal(modmta_note_get_int(ctx, "spam.score", &n), 1);
    assert_int_equal(n, -7);
    assert_int_equal(modmta_note_get_str(ctx, "spam:verdict", &s), 1);
    assert_string_equal(s, "ham");
    /* value_r may be NULL: is it there? */
    assert_int_equal(modmta_note_get_int(ctx, "spam.score", NULL), 1);
    /* names are case-sensitive */
    assert_int_equal(modmta_note_get_int(ctx, "SPAM.score", &n), 0);
    /* "" is a string like any other */
    assert_int_equal(modmta_note_set_str(ctx, "empty", ""), 0);
    assert_int_equal(modmta_note_get_str(ctx, "empty", &s), 1);
    assert_string_equal(s, "");
}

/* Setting again replaces, and may change the type; a string read
 * before stays valid for the call. */
static void
test_note_replace_and_types(void **state)
{
    modmta_ctx *ctx = note_ctx(state);
    const char *s = NULL, *old;
    long long n = 0;

    assert_int_equal(modmta_note_set_str(ctx, "x", "first"), 0);
    assert_int_equal(modmta_note_get_str(ctx, "x", &old), 1);
    assert_int_equal(modmta_note_set_str(ctx, "x", "second"), 0);
    assert_int_equal(modmta_note_get_str(ctx, "x", &s), 1);
    assert_string_equal(s, "second");
    assert_string_equal(old, "first");
    /* the other type: MODMTA_E_INVAL, the value untouched */
    n = 99;
    assert_int_equal(modmta_note_get_int(ctx, "x", &n), MODMTA_E_INVAL);
    assert_int_equal(n, 99);
    assert_int_equal(modmta_note_set_int(ctx, "x", 42), 0);
    assert_int_equal(modmta_note_get_str(ctx, "x", &s), MODMTA_E_INVAL);
    assert_int_equal(modmta_note_get_int(ctx, "x", &n), 1);
    assert_int_equal(n, 42);
    /* one note, replaced: it counts once */
    assert_int_equal(ctx->nnotes, 1);
}

static void
test_note_bounds(void **state)
{
    modmta_ctx *ctx = note_ctx(state);
    char name[MODMTA_NOTE_NAME_MAX + 2], value[MODMTA_NOTE_VALUE_MAX + 2];
    const char *s;
    int i;

    memset(name, 'n', sizeof(name));
    name[MODMTA_NOTE_NAME_MAX] = '\0';
    memset(value, 'v', sizeof(value));
    value[MODMTA_NOTE_VALUE_MAX] = '\0';
    /* exactly at the bounds */
    assert_int_equal(modmta_note_set_str(ctx, name, value), 0);
    assert_int_equal(modmta_note_get_str(ctx, name, &s), 1);
    assert_int_equal(strlen(s), MODMTA_NOTE_VALUE_MAX);
    /* one over */
    name[MODMTA_NOTE_NAME_MAX] = 'n';
    name[MODMTA_NOTE_NAME_MAX + 1] = '\0';
    assert_int_equal(modmta_note_set_int(ctx, name, 1), MODMTA_E_INVAL);
    assert_int_equal(modmta_note_get_int(ctx, name, NULL), MODMTA_E_INVAL);
    value[MODMTA_NOTE_VALUE_MAX] = 'v';
    value[MODMTA_NOTE_VALUE_MAX + 1] = '\0';
    assert_int_equal(modmta_note_set_str(ctx, "big", value),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_note_get_str(ctx, "big", NULL), 0);
    /* MODMTA_NOTES_MAX names, then no new one; replacing still works */
    for (i = 1; i < MODMTA_NOTES_MAX; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        assert_int_equal(modmta_note_set_int(ctx, name, i), 0);
    }
    assert_int_equal(modmta_note_set_int(ctx, "one.more", 1),
                     MODMTA_E_LIMIT);
    assert_int_equal(modmta_note_set_int(ctx, "n5", 55), 0);
    assert_int_equal(ctx->nnotes, MODMTA_NOTES_MAX);
}

static void
test_note_bad_names_and_values(void **state)
{
    modmta_ctx *ctx = note_ctx(state);
    static const char *const bad[] = {
        "", "with space", "new\nline", "quote\"", "slash/", "é", NULL,
    };

    for (int i = 0; bad[i] != NULL; i++) {
        assert_int_equal(modmta_note_set_int(ctx, bad[i], 1),
                         MODMTA_E_INVAL);
        assert_int_equal(modmta_note_get_int(ctx, bad[i], NULL),
                         MODMTA_E_INVAL);
    }
    assert_int_equal(modmta_note_set_int(ctx, NULL, 1), MODMTA_E_INVAL);
    assert_int_equal(modmta_note_set_str(ctx, "ok", NULL), MODMTA_E_INVAL);
    /* not UTF-8: the envelope could not hold it */
    assert_int_equal(modmta_note_set_str(ctx, "ok", "\xff\xfe"),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_note_set_str(ctx, "ok", "caf\xc3\xa9"), 0);
    assert_int_equal(modmta_note_set_int(NULL, "ok", 1), MODMTA_E_INVAL);
    assert_int_equal(modmta_note_get_int(NULL, "ok", NULL), MODMTA_E_INVAL);
    assert_int_equal(ctx->nnotes, 1);
}

/* Set at on_mail, on_rcpt and on_data; read everywhere. */
static void
test_note_phases(void **state)
{
    modmta_ctx *ctx = note_ctx(state);
    long long n;

    for (int p = MODMTA_PHASE_NONE; p <= MODMTA_PHASE_ROUTE; p++) {
        int ok = p == MODMTA_PHASE_MAIL || p == MODMTA_PHASE_RCPT ||
                 p == MODMTA_PHASE_DATA;

        modmta_test_enter(ctx, (modmta_phase)p, &test_mod_none, NULL);
        assert_int_equal(modmta_note_set_int(ctx, "p", p),
                         ok ? 0 : MODMTA_E_STATE);
        assert_int_equal(modmta_note_set_str(ctx, "q", "x"),
                         ok ? 0 : MODMTA_E_STATE);
    }
    modmta_test_enter(ctx, MODMTA_PHASE_DELIVER, &test_mod_none, NULL);
    assert_int_equal(modmta_note_get_int(ctx, "p", &n), 1);
    assert_int_equal(n, MODMTA_PHASE_DATA);
}

/* RSET, a new MAIL, the end of the transaction: gone. */
static void
test_note_txn_reset(void **state)
{
    modmta_ctx *ctx = note_ctx(state);

    assert_int_equal(modmta_note_set_int(ctx, "gone", 1), 0);
    modmta_ctx_txn_reset(ctx);
    assert_int_equal(modmta_note_get_int(ctx, "gone", NULL), 0);
    assert_int_equal(ctx->nnotes, 0);
    modmta_test_set_sender(ctx, "Q2", "b@example.org");
    modmta_test_enter(ctx, MODMTA_PHASE_MAIL, &test_mod_none, NULL);
    assert_int_equal(modmta_note_set_int(ctx, "back", 2), 0);
    assert_int_equal(modmta_note_get_int(ctx, "back", NULL), 1);
}

/* The core's put: any phase, the same checks. */
static void
test_note_core_put(void **state)
{
    modmta_ctx *ctx = note_ctx(state);
    const char *s;

    modmta_test_enter(ctx, MODMTA_PHASE_DELIVER, &test_mod_none, NULL);
    assert_int_equal(modmta_ctx_note_put(ctx, "from.env", "v", 0), 0);
    assert_int_equal(modmta_note_get_str(ctx, "from.env", &s), 1);
    assert_string_equal(s, "v");
    assert_int_equal(modmta_ctx_note_put(ctx, "bad name", NULL, 1),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_ctx_note_check("fine", NULL), 0);
    assert_int_equal(modmta_ctx_note_check("fine", "\xc0\x80"),
                     MODMTA_E_INVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_phase_checks),
        T(test_cap_checks),
        T(test_refused_actions_record_nothing),
        T(test_core_has_every_cap),
        T(test_actions_record),
        T(test_hdr_edit_serialize),
        T(test_hdr_repeated),
        T(test_hdr_injection),
        T(test_reply_validation),
        T(test_reply_default),
        T(test_txn_reset),
        T(test_rcpt_dedupe_remove),
        T(test_envelope_setters_check),
        T(test_rcpt_no_dsn),
        T(test_rcpt_sender),
        T(test_mail_params),
        T(test_data),
        T(test_data_many_instances),
        T(test_arena_alignment),
        T(test_arena_large),
        T(test_arena_strdup),
        T(test_arena_direct),
        T(test_inbound_domain),
        T(test_note_set_get),
        T(test_note_replace_and_types),
        T(test_note_bounds),
        T(test_note_bad_names_and_values),
        T(test_note_phases),
        T(test_note_txn_reset),
        T(test_note_core_put),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
