/*
 * The control-socket protocol (core/control.c) behind modmtactl: every
 * input line is one request, run by control_execute as the control
 * thread runs what it read, against a real queue holding two messages
 * and a started scheduler without workers (nothing is delivered). "$ID"
 * in a line stands for the first message's queue ID, so that show,
 * hold, release and delete reach a message; a deleted one is queued
 * again for the next input. The mailq listing runs after each input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/log.h>

#include "control.h"
#include "fuzz_input.h"
#include "log_priv.h"
#include "queue.h"
#include "scheduler.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static queue *q;
static scheduler *sched;
static char ids[2][QUEUE_ID_MAX];

static int
fail_reload(void *arg, char **errors_r)
{
    *errors_r = strdup("$.listen[0].address: in use\n$.spool: missing\n");
    return MODMTA_E_CONFIG;
}

static const struct control_ops ops = {fail_reload, NULL, NULL};

static void
commit(char id_r[QUEUE_ID_MAX], int held)
{
    static const char body[] = "From: a@example.org\r\n\r\nhello\r\n";
    modmta_err err;
    queue_writer *w = queue_writer_new(q, &err);
    queue_rcpt rcpts[2] = {
        {.addr = "bob@example.com", .orcpt = "bob@example.com",
         .status = "host mx.example.com said: 451 4.3.0 later"},
        {.addr = "carol@example.com", .state = QRCPT_FAILED},
    };
    queue_env env = {
        .sender = "alice@example.org", .rcpts = rcpts, .nrcpts = 2,
        .client_addr = "127.0.0.1", .client_name = "localhost",
        .helo = "client.example.org", .protocol = "ESMTP", .held = held,
        .quarantine = held ? "held by a rule" : NULL,
    };

    if (w == NULL || queue_writer_write(w, body, sizeof(body) - 1) < 0 ||
        queue_writer_commit(w, &env) < 0)
        abort();
    snprintf(id_r, QUEUE_ID_MAX, "%s", env.id);
}

static void
setup(void)
{
    modmta_err err;

    modmta_log_setup(MODMTA_LOG_ERR - 1, 0, NULL); /* quiet */
    if ((q = queue_open(fuzz_tmpdir("control"), &err)) == NULL)
        abort();
    commit(ids[0], 0);
    commit(ids[1], 1);
    if ((sched = scheduler_new(q, 0, &err)) == NULL ||
        scheduler_start(sched) < 0)
        abort();
}

static void
one_line(char *line, void *arg)
{
    char req[CONTROL_LINE_MAX + QUEUE_ID_MAX], *at = strstr(line, "$ID");

    (void)arg;
    if (strlen(line) >= CONTROL_LINE_MAX)
        return; /* the socket reads no more than that */
    if (at != NULL)
        snprintf(req, sizeof(req), "%.*s%s%s", (int)(at - line), line,
                 ids[0], at + 3);
    else
        snprintf(req, sizeof(req), "%s", line);
    free(control_execute(q, sched, &ops, req));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    queue_env *env;
    char *s;

    if (q == NULL)
        setup();
    if ((s = fuzz_cstr(data, size)) == NULL)
        return 0;
    fuzz_each_line(s, one_line, NULL);
    free(s);
    free(control_showq(q, 1));
    free(control_showq(q, 0));
    for (int i = 0; i < 2; i++) {
        if (queue_load(q, ids[i], &env) == MODMTA_E_NOTFOUND) {
            commit(ids[i], i);
            scheduler_submit(sched, ids[i]);
        } else {
            queue_env_free(env);
        }
    }
    return 0;
}
