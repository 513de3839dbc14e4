/*
 * A damaged envelope as the queue scan meets it (core/queue.c): a
 * message is committed, then its envelope is replaced by the input as an
 * ID.env file (what queue_update writes), and the queue is scanned as the
 * scheduler's load at start scans it. The message must come out exactly
 * one way: listed (the envelope parses), moved to corrupt/ (it does
 * not), or left in place when it is of a newer version.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <modmta/log.h>

#include "fuzz_input.h"
#include "log_priv.h"
#include "queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static queue *q;
static const char *dir;

struct found {
    const char *id;
    int listed;
};

static int
seen(const queue_env *env, void *arg)
{
    struct found *f = arg;

    if (strcmp(env->id, f->id) == 0)
        f->listed++;
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char body[] = "Subject: x\r\n\r\nhi\r\n";
    char msg[512], env_path[520], corrupt[600];
    queue_rcpt rcpt = {.addr = "bob@example.com"};
    queue_env env = {.sender = "a@example.org", .rcpts = &rcpt, .nrcpts = 1};
    queue_env *loaded = NULL;
    struct found f;
    modmta_err err;
    queue_writer *w;
    int in_corrupt, in_queue, rc;

    if (q == NULL) {
        modmta_log_setup(MODMTA_LOG_ERR - 1, 0, NULL); /* quiet */
        dir = fuzz_tmpdir("queue_recovery");
        if ((q = queue_open(dir, &err)) == NULL)
            abort();
    }
    if ((w = queue_writer_new(q, &err)) == NULL ||
        queue_writer_write(w, body, sizeof(body) - 1) < 0 ||
        queue_writer_commit(w, &env) < 0)
        abort();
    if (queue_content_path(q, env.id, msg, sizeof(msg)) < 0)
        abort();
    snprintf(env_path, sizeof(env_path), "%.*s.env",
             (int)(strlen(msg) - 4), msg);
    if (fuzz_write_file(env_path, data, size) < 0)
        abort();
    rc = queue_load(q, env.id, &loaded);
    queue_env_free(loaded);
    f.id = env.id;
    f.listed = 0;
    if (queue_foreach(q, seen, &f) < 0)
        abort();
    snprintf(corrupt, sizeof(corrupt), "%s/corrupt/%s.msg", dir, env.id);
    in_corrupt = access(corrupt, F_OK) == 0;
    in_queue = access(msg, F_OK) == 0;
    if (rc == 0 ? f.listed != 1 || in_corrupt || !in_queue
        : rc == MODMTA_E_INVAL ? f.listed != 0 || !in_corrupt || in_queue
        : rc == MODMTA_E_UNSUPPORTED ? f.listed != 0 || !in_queue : 0)
        abort();
    if (in_queue)
        queue_remove(q, env.id);
    unlink(corrupt);
    snprintf(corrupt, sizeof(corrupt), "%s/corrupt/%s.env", dir, env.id);
    unlink(corrupt);
    return 0;
}
