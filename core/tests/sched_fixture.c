#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <files.h>

#include "sched_fixture.h"

int
fix_setup(void **state)
{
    struct fix *fx = calloc(1, sizeof(*fx));
    modmta_err err;

    assert_non_null(fx);
    modmta_test_tmpdir(fx->dir, sizeof(fx->dir), "modmta-sched");
    snprintf(fx->spool, sizeof(fx->spool), "%s/spool", fx->dir);
    fx->q = queue_open(fx->spool, &err);
    if (fx->q == NULL)
        fail_msg("queue_open: %s", err.msg);
    *state = fx;
    return 0;
}

int
fix_teardown(void **state)
{
    struct fix *fx = *state;

    queue_close(fx->q);
    modmta_test_rmtree(fx->dir);
    free(fx);
    return 0;
}

void
fix_put(struct fix *fx, const struct fix_msg *m, char id_r[QUEUE_ID_MAX])
{
    queue_rcpt r[FIX_RCPTS];
    queue_env env;
    queue_writer *w;
    modmta_err err;
    size_t n = 0;

    memset(&env, 0, sizeof(env));
    memset(r, 0, sizeof(r));
    for (; n < FIX_RCPTS && m->rcpts[n] != NULL; n++) {
        r[n].addr = (char *)m->rcpts[n];
        r[n].orcpt = (char *)m->rcpts[n];
        r[n].status = (char *)m->status[n];
        r[n].state = m->state[n];
        r[n].notify = m->notify[n];
    }
    env.sender = (char *)m->sender;
    env.rcpts = r;
    env.nrcpts = n;
    env.arrival = m->arrival;
    env.next_retry = m->next_retry;
    env.held = m->held;
    env.quarantine = (char *)m->quarantine;
    env.client_addr = (char *)"127.0.0.1";
    env.protocol = (char *)"ESMTP";
    w = queue_writer_new(fx->q, &err);
    if (w == NULL)
        fail_msg("queue_writer_new: %s", err.msg);
    assert_int_equal(queue_writer_write(w, FIX_BODY, strlen(FIX_BODY)), 0);
    assert_int_equal(queue_writer_commit(w, &env), 0);
    memcpy(id_r, env.id, QUEUE_ID_MAX);
}

int
fix_exists(struct fix *fx, const char *id)
{
    queue_env *env = NULL;
    int rc = queue_load(fx->q, id, &env);

    queue_env_free(env);
    return rc == 0;
}
