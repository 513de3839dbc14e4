/* A module that calls a private function of libmodmta, as a module
 * bypassing the capability gate would (modmta_ctx_enter, from
 * sdk/src/ctx_priv.h, declared here by hand): the daemon does not
 * export it, and the loader must refuse the module naming it. */
#include <stdlib.h>

#include <modmta/modmta.h>

void modmta_ctx_enter(modmta_ctx *ctx, modmta_phase phase,
                      const modmta_module *mod, const void *inst,
                      const modmta_host *host);

static void *
privsym_create(const json_t *conf, const modmta_host *host,
               modmta_err *err_r)
{
    return calloc(1, 1);
}

static modmta_verdict
privsym_on_rcpt(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    modmta_ctx_enter(ctx, MODMTA_PHASE_DATA, NULL, inst, NULL);
    return MODMTA_CONTINUE;
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "privsym",
    .version = "1.0.0",
    .create = privsym_create,
    .destroy = free,
    .on_rcpt = privsym_on_rcpt,
};
