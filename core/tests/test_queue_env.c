/*
 * Unit tests of the envelope codec (core/queue_env.c): a version 2 round
 * trip of every field, version 1 envelopes read unchanged, the version
 * written, version 3's notes, and envelopes that must be refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <modmta/ctx.h>

#include "queue_env.h"

static queue_env *
parse_ok(const char *text)
{
    queue_env *env = NULL;
    modmta_err err;
    int rc = queue_env_parse(text, strlen(text), &env, &err);

    if (rc != 0)
        fail_msg("queue_env_parse: %d %s", rc, err.msg);
    assert_non_null(env);
    return env;
}

static int
parse_rc(const char *text)
{
    queue_env *env = (queue_env *)1;
    modmta_err err;
    int rc = queue_env_parse(text, strlen(text), &env, &err);

    assert_null(env);
    assert_true(err.msg[0] != '\0');
    return rc;
}

/* env dumped, then parsed back. */
static queue_env *
roundtrip(const queue_env *env, json_t **json_r)
{
    size_t len = 0;
    char *text = queue_env_dump(env, &len);
    queue_env *got;

    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    got = parse_ok(text);
    *json_r = json_loads(text, 0, NULL);
    assert_non_null(*json_r);
    free(text);
    return got;
}

static void
test_v2_roundtrip(void **state)
{
    queue_rcpt rcpts[2] = {
        {.addr = "bob@example.com", .orcpt = "b@example.com",
         .state = QRCPT_PENDING, .status = "host mx[192.0.2.1] said: 451",
         .sender = "owner-l@example.com",
         .notify = QNOTIFY_SUCCESS | QNOTIFY_FAILURE | QNOTIFY_DELAY,
         .orcpt_param = "rfc822;b+2Bx@example.com", .code = 451,
         .esc = "4.3.0", .text = "try later\nreally", .stage = "RCPT TO",
         .remote = "mx.example.com", .remote_addr = "192.0.2.1:25",
         .delay_sent = 1},
        {.addr = "carol@example.com", .state = QRCPT_DELIVERED,
         .dsn_sent = 1, .no_dsn = 1, .notify = QNOTIFY_NEVER,
         .relayed = 1},
    };
    queue_param params[4] = {
        {.name = "BODY", .value = "8BITMIME"}, {.name = "SMTPUTF8",
                                                .value = ""},
        {.name = "RET", .value = "HDRS"}, {.name = "ENVID",
                                           .value = "QQ+2B1"},
    };
    queue_env env = {
        .id = "ID1", .sender = "alice@example.org", .rcpts = rcpts,
        .nrcpts = 2, .arrival = 1700000000, .client_addr = "127.0.0.1",
        .client_name = "localhost", .helo = "c.example.org",
        .protocol = "ESMTP", .auth_user = "alice", .auth_param = "<>",
        .quarantine = "held", .attempts = 2, .next_retry = 1700000300,
        .held = 1, .size = 1234, .params = params, .nparams = 4,
    };
    json_t *o;
    queue_env *got = roundtrip(&env, &o);
    const queue_rcpt *r = &got->rcpts[0];

    assert_int_equal(json_integer_value(json_object_get(o, "version")), 2);
    json_decref(o);
    assert_string_equal(got->id, "");
    assert_string_equal(got->sender, "alice@example.org");
    assert_int_equal(got->arrival, 1700000000);
    assert_string_equal(got->client_addr, "127.0.0.1");
    assert_string_equal(got->client_name, "localhost");
    assert_string_equal(got->helo, "c.example.org");
    assert_string_equal(got->protocol, "ESMTP");
    assert_string_equal(got->auth_user, "alice");
    assert_string_equal(got->auth_param, "<>");
    assert_string_equal(got->quarantine, "held");
    assert_int_equal(got->attempts, 2);
    assert_int_equal(got->next_retry, 1700000300);
    assert_int_equal(got->held, 1);
    assert_int_equal(got->size, 1234);
    assert_int_equal(got->nparams, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(got->params[i].name, params[i].name);
        assert_string_equal(got->params[i].value, params[i].value);
    }
    assert_int_equal(got->nrcpts, 2);
    assert_string_equal(r->addr, "bob@example.com");
    assert_string_equal(r->orcpt, "b@example.com");
    assert_int_equal(r->state, QRCPT_PENDING);
    assert_string_equal(r->status, "host mx[192.0.2.1] said: 451");
    assert_string_equal(r->sender, "owner-l@example.com");
    assert_int_equal(r->notify,
                     QNOTIFY_SUCCESS | QNOTIFY_FAILURE | QNOTIFY_DELAY);
    assert_string_equal(r->orcpt_param, "rfc822;b+2Bx@example.com");
    assert_int_equal(r->code, 451);
    assert_string_equal(r->esc, "4.3.0");
    assert_string_equal(r->text, "try later\nreally");
    assert_string_equal(r->stage, "RCPT TO");
    assert_string_equal(r->remote, "mx.example.com");
    assert_string_equal(r->remote_addr, "192.0.2.1:25");
    assert_int_equal(r->delay_sent, 1);
    assert_int_equal(r->relayed, 0);
    assert_int_equal(r->dsn_sent, 0);
    assert_int_equal(r->no_dsn, 0);
    r = &got->rcpts[1];
    assert_int_equal(r->state, QRCPT_DELIVERED);
    assert_int_equal(r->notify, QNOTIFY_NEVER);
    assert_int_equal(r->dsn_sent, 1);
    assert_int_equal(r->no_dsn, 1);
    assert_int_equal(r->relayed, 1);
    assert_int_equal(r->delay_sent, 0);
    assert_int_equal(r->code, 0);
    assert_null(r->orcpt);
    assert_null(r->sender);
    assert_null(r->orcpt_param);
    assert_null(r->esc);
    assert_null(r->text);
    assert_null(r->stage);
    assert_null(r->remote);
    assert_null(r->remote_addr);
    queue_env_free(got);
}

/* Without any version 2 field the envelope is written as version 1 (an
 * older modmta reads it) and without the new keys; one field makes it
 * version 2. */
static void
test_version_written(void **state)
{
    queue_rcpt rcpt = {.addr = "bob@example.com"};
    queue_param param = {.name = "RET", .value = "FULL"};
    queue_env env = {.sender = "", .rcpts = &rcpt, .nrcpts = 1};
    json_t *o, *r;
    queue_env *got = roundtrip(&env, &o);

    assert_int_equal(json_integer_value(json_object_get(o, "version")), 1);
    assert_null(json_object_get(o, "params"));
    r = json_array_get(json_object_get(o, "rcpts"), 0);
    assert_non_null(r);
    assert_null(json_object_get(r, "notify"));
    assert_null(json_object_get(r, "code"));
    assert_null(json_object_get(r, "relayed"));
    json_decref(o);
    assert_int_equal(got->nparams, 0);
    assert_null(got->params);
    queue_env_free(got);

    rcpt.relayed = 1;
    got = roundtrip(&env, &o);
    assert_int_equal(json_integer_value(json_object_get(o, "version")), 2);
    json_decref(o);
    assert_int_equal(got->rcpts[0].relayed, 1);
    queue_env_free(got);

    rcpt.relayed = 0;
    env.params = &param;
    env.nparams = 1;
    got = roundtrip(&env, &o);
    assert_int_equal(json_integer_value(json_object_get(o, "version")), 2);
    json_decref(o);
    assert_int_equal(got->nparams, 1);
    assert_string_equal(got->params[0].value, "FULL");
    queue_env_free(got);
}

/* What modmta 1 wrote (and a hand-made minimal envelope) read as before,
 * every version 2 field absent. */
static void
test_v1_loads(void **state)
{
    queue_env *env = parse_ok(
        "{\"version\":1,\"id\":\"X\",\"sender\":\"a@example.org\","
        "\"rcpts\":[{\"addr\":\"b@example.com\",\"orcpt\":\"B@example.com\","
        "\"state\":\"failed\",\"status\":\"5.1.1 unknown\",\"dsn_sent\":true,"
        "\"no_dsn\":false},{\"addr\":\"c@example.com\",\"orcpt\":null,"
        "\"state\":\"delivered\",\"status\":null,\"dsn_sent\":false,"
        "\"no_dsn\":true,\"sender\":\"o@example.com\"}],"
        "\"arrival\":1600000000,\"client_addr\":\"::1\","
        "\"client_name\":\"localhost\",\"helo\":\"h\",\"protocol\":\"SMTP\","
        "\"auth_user\":null,\"auth_param\":null,\"quarantine\":null,"
        "\"attempts\":4,\"next_retry\":0,\"held\":false,\"size\":99}");

    assert_string_equal(env->sender, "a@example.org");
    assert_int_equal(env->nrcpts, 2);
    assert_int_equal(env->rcpts[0].state, QRCPT_FAILED);
    assert_int_equal(env->rcpts[0].dsn_sent, 1);
    assert_string_equal(env->rcpts[0].status, "5.1.1 unknown");
    assert_int_equal(env->rcpts[1].state, QRCPT_DELIVERED);
    assert_int_equal(env->rcpts[1].no_dsn, 1);
    assert_string_equal(env->rcpts[1].sender, "o@example.com");
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(env->rcpts[i].notify, 0);
        assert_null(env->rcpts[i].orcpt_param);
        assert_int_equal(env->rcpts[i].code, 0);
        assert_null(env->rcpts[i].esc);
        assert_null(env->rcpts[i].remote);
        assert_int_equal(env->rcpts[i].delay_sent, 0);
        assert_int_equal(env->rcpts[i].relayed, 0);
    }
    assert_int_equal(env->attempts, 4);
    assert_int_equal(env->size, 99);
    assert_int_equal(env->nparams, 0);
    queue_env_free(env);

    env = parse_ok("{\"sender\":\"\",\"rcpts\":[{\"addr\":\"x@y\"}]}");
    assert_string_equal(env->sender, "");
    assert_int_equal(env->rcpts[0].state, QRCPT_PENDING);
    queue_env_free(env);
}

#define ENV_WITH_RCPT(field) \
    "{\"version\":2,\"sender\":\"\",\"rcpts\":[{\"addr\":\"x@y\"," field \
    "}]}"

static void
test_bad_types(void **state)
{
    static const char *const bad[] = {
        ENV_WITH_RCPT("\"notify\":\"SUCCESS\""),
        ENV_WITH_RCPT("\"notify\":[\"SUCCESS\",\"SOMETIMES\"]"),
        ENV_WITH_RCPT("\"notify\":[1]"),
        ENV_WITH_RCPT("\"orcpt_param\":5"),
        ENV_WITH_RCPT("\"code\":\"451\""),
        ENV_WITH_RCPT("\"code\":-1"),
        ENV_WITH_RCPT("\"esc\":[]"),
        ENV_WITH_RCPT("\"text\":{}"),
        ENV_WITH_RCPT("\"stage\":1"),
        ENV_WITH_RCPT("\"remote\":true"),
        ENV_WITH_RCPT("\"remote_addr\":2"),
        ENV_WITH_RCPT("\"delay_sent\":\"yes\""),
        ENV_WITH_RCPT("\"relayed\":1.5"),
        ENV_WITH_RCPT("\"state\":\"lost\""),
        "{\"version\":2,\"sender\":\"\",\"rcpts\":[],\"params\":[]}",
        "{\"version\":2,\"sender\":\"\",\"rcpts\":[],"
        "\"params\":{\"RET\":1}}",
        "{\"sender\":\"\",\"rcpts\":[{\"orcpt\":\"x@y\"}]}",
        "{\"rcpts\":[]}",
        "{\"sender\":\"\",\"rcpts\":{}}",
        "{\"sender\":\"\",\"rcpts\":[5]}",
        "[]",
        "{\"sender\":",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse_rc(bad[i]);

        if (rc != MODMTA_E_INVAL)
            fail_msg("%s: %d", bad[i], rc);
    }
    assert_int_equal(parse_rc("{\"version\":4,\"sender\":\"\","
                              "\"rcpts\":[]}"), MODMTA_E_UNSUPPORTED);
}

/* Version 3: the transaction's notes, both types, in their order; an
 * envelope without notes stays version 2 or 1 (see above). */
static void
test_v3_notes(void **state)
{
    queue_rcpt rcpt = {.addr = "bob@example.com"};
    queue_note notes[3] = {
        {.name = "spam.score", .num = -7},
        {.name = "spam:verdict", .str = "ham \xc3\xa9"},
        {.name = "big", .num = 9007199254740993LL},
    };
    queue_env env = {.sender = "a@example.org", .rcpts = &rcpt, .nrcpts = 1,
                     .notes = notes, .nnotes = 3};
    json_t *o;
    queue_env *got = roundtrip(&env, &o);

    assert_int_equal(json_integer_value(json_object_get(o, "version")), 3);
    assert_true(json_is_integer(json_object_get(json_object_get(o, "notes"),
                                                "spam.score")));
    json_decref(o);
    assert_int_equal(got->nnotes, 3);
    assert_string_equal(got->notes[0].name, "spam.score");
    assert_null(got->notes[0].str);
    assert_true(got->notes[0].num == -7);
    assert_string_equal(got->notes[1].name, "spam:verdict");
    assert_string_equal(got->notes[1].str, "ham \xc3\xa9");
    assert_true(got->notes[2].num == 9007199254740993LL);
    queue_env_free(got);

    /* read back as written, with the version 2 fields */
    got = parse_ok("{\"version\":3,\"sender\":\"\",\"rcpts\":"
                   "[{\"addr\":\"x@y\",\"code\":250}],\"params\":"
                   "{\"RET\":\"FULL\"},\"notes\":{\"n\":\"v\"}}");
    assert_int_equal(got->rcpts[0].code, 250);
    assert_int_equal(got->nparams, 1);
    assert_int_equal(got->nnotes, 1);
    assert_string_equal(got->notes[0].str, "v");
    queue_env_free(got);
    got = parse_ok("{\"version\":3,\"sender\":\"\",\"rcpts\":[],"
                   "\"notes\":{}}");
    assert_int_equal(got->nnotes, 0);
    assert_null(got->notes);
    queue_env_free(got);
}

#define ENV_WITH_NOTES(notes) \
    "{\"version\":3,\"sender\":\"\",\"rcpts\":[],\"notes\":" notes "}"

/* Notes the commit could not have written are refused. */
static void
test_bad_notes(void **state)
{
    static const char *const bad[] = {
        ENV_WITH_NOTES("[]"),
        ENV_WITH_NOTES("{\"n\":1.5}"),
        ENV_WITH_NOTES("{\"n\":true}"),
        ENV_WITH_NOTES("{\"n\":null}"),
        ENV_WITH_NOTES("{\"n\":[1]}"),
        ENV_WITH_NOTES("{\"bad name\":1}"),
        ENV_WITH_NOTES("{\"\":1}"),
    };
    char *text;
    size_t i, n;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse_rc(bad[i]);

        if (rc != MODMTA_E_INVAL)
            fail_msg("%s: %d", bad[i], rc);
    }
    /* one note more than MODMTA_NOTES_MAX; a value one octet too long */
    text = malloc(64 * 1024);
    assert_non_null(text);
    n = (size_t)sprintf(text, "{\"sender\":\"\",\"rcpts\":[],\"notes\":{");
    for (i = 0; i <= MODMTA_NOTES_MAX; i++)
        n += (size_t)sprintf(text + n, "%s\"n%zu\":1", i ? "," : "", i);
    sprintf(text + n, "}}");
    assert_int_equal(parse_rc(text), MODMTA_E_INVAL);
    n = strlen(strcpy(text, "{\"sender\":\"\",\"rcpts\":[],\"notes\":"
                      "{\"n\":\""));
    memset(text + n, 'v', MODMTA_NOTE_VALUE_MAX + 1);
    strcpy(text + n + MODMTA_NOTE_VALUE_MAX + 1, "\"}}");
    assert_int_equal(parse_rc(text), MODMTA_E_INVAL);
    free(text);
}

/* The NOTIFY keywords both ways. */
static void
test_notify_words(void **state)
{
    char buf[48];

    assert_int_equal(queue_env_notify_bit("success", 7), QNOTIFY_SUCCESS);
    assert_int_equal(queue_env_notify_bit("DELAY,X", 5), QNOTIFY_DELAY);
    assert_int_equal(queue_env_notify_bit("NEVERMORE", 9), 0);
    assert_int_equal(queue_env_notify_bit("", 0), 0);
    assert_string_equal(queue_env_notify_str(QNOTIFY_NEVER, buf,
                                             sizeof(buf)), "NEVER");
    assert_string_equal(queue_env_notify_str(QNOTIFY_DELAY | QNOTIFY_SUCCESS
                                             | QNOTIFY_FAILURE, buf,
                                             sizeof(buf)),
                        "SUCCESS,FAILURE,DELAY");
    assert_string_equal(queue_env_notify_str(0, buf, sizeof(buf)), "");
    assert_string_equal(queue_env_notify_str(QNOTIFY_FAILURE |
                                             QNOTIFY_DELAY, buf, 10),
                        "FAILURE,D");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v2_roundtrip),
        cmocka_unit_test(test_version_written),
        cmocka_unit_test(test_v1_loads),
        cmocka_unit_test(test_bad_types),
        cmocka_unit_test(test_v3_notes),
        cmocka_unit_test(test_bad_notes),
        cmocka_unit_test(test_notify_words),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
