/* A transport with route() and no deliver_msg(): refused at load (it
 * would claim recipients and never deliver them). */
#include <stdlib.h>

#include <modmta/modmta.h>

static void *
halfxport_create(const json_t *conf, const modmta_host *host,
                 modmta_err *err_r)
{
    return calloc(1, 1);
}

static modmta_verdict
halfxport_route(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    return MODMTA_ACCEPT;
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "halfxport",
    .version = "1.0.0",
    .create = halfxport_create,
    .destroy = free,
    .route = halfxport_route,
};
