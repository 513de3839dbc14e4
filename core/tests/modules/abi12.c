/* A module built against ABI 1.2, as store_mbox was before 1.3: its
 * descriptor ends at route. It delivers every recipient with deliver();
 * the bytes past its size hold a route()/deliver_msg() pair that the
 * loader must read as NULL, so that the 1.3 core keeps calling
 * deliver() once per recipient. */
#include <stddef.h>
#include <stdlib.h>

#include <modmta/modmta.h>

static void *
abi12_create(const json_t *conf, const modmta_host *host, modmta_err *err_r)
{
    return calloc(1, 1);
}

static modmta_dstatus
abi12_deliver(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    modmta_reply(ctx, 250, "2.0.0", "stored by abi12");
    return MODMTA_DELIVERED;
}

static modmta_verdict
abi12_route(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    abort();        /* never called: past the descriptor's size */
}

static void
abi12_deliver_msg(void *inst, modmta_ctx *ctx, const char *dest)
{
    abort();
}

MODMTA_MODULE = {
    .abi = (MODMTA_ABI_MAJOR << 16) | 2,
    .size = offsetof(modmta_module, route),
    .sig = MODMTA_BUILD_SIG,
    .name = "abi12",
    .version = "1.2.0",
    .create = abi12_create,
    .destroy = free,
    .deliver = abi12_deliver,
    .route = abi12_route,
    .deliver_msg = abi12_deliver_msg,
};
