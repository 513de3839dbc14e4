/* A well-formed module. load() and unload() count their calls, and
 * on_helo reports the counts so that a test can see them. */
#include <stdlib.h>

#include <modmta/modmta.h>

static int good_loads, good_unloads;

static int
good_load(modmta_err *err_r)
{
    good_loads++;
    return 0;
}

static void
good_unload(void)
{
    good_unloads++;
}

static void *
good_create(const json_t *conf, const modmta_host *host, modmta_err *err_r)
{
    return calloc(1, 1);
}

static void
good_destroy(void *inst)
{
    free(inst);
}

static modmta_verdict
good_on_helo(void *inst, modmta_ctx *ctx, const char *helo)
{
    modmta_reply(ctx, 250, NULL, "loads=%d unloads=%d", good_loads,
                 good_unloads);
    return MODMTA_ACCEPT;
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "good",
    .version = "1.0.0",
    .create = good_create,
    .destroy = good_destroy,
    .on_helo = good_on_helo,
    .load = good_load,
    .unload = good_unload,
};
