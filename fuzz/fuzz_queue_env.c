/*
 * The queue envelope decoder (core/queue_env.c) as recovery meets it
 * after a crash or a hand edit: any text as ID.env. A text it accepts
 * must dump and parse back to the same dump (what queue_update writes
 * is what the next queue_load reads).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"
#include "queue_env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    queue_env *env = NULL, *again = NULL;
    modmta_err err;
    char *dump, *dump2;
    size_t len = 0, len2 = 0;

    if (queue_env_parse((const char *)data, size, &env, &err) < 0)
        return 0;
    dump = queue_env_dump(env, &len);
    if (dump == NULL)
        abort();
    if (queue_env_parse(dump, len, &again, &err) < 0)
        abort();
    dump2 = queue_env_dump(again, &len2);
    if (dump2 == NULL || len2 != len || memcmp(dump, dump2, len) != 0)
        abort();
    free(dump);
    free(dump2);
    queue_env_free(env);
    queue_env_free(again);
    return 0;
}
