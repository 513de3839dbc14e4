/* A module built against ABI 1.0: its descriptor ends at unload. The
 * bytes past its size are set here to what a newer field would hold, so
 * the loader must read the newer fields as NULL, not copy them. */
#include <stddef.h>
#include <stdlib.h>

#include <modmta/modmta.h>

static void *
abi10_create(const json_t *conf, const modmta_host *host, modmta_err *err_r)
{
    return calloc(1, 1);
}

static int
abi10_owns_domain(void *inst, const char *domain)
{
    return 1;
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_MAJOR << 16,
    .size = offsetof(modmta_module, owns_domain),
    .sig = MODMTA_BUILD_SIG,
    .name = "abi10",
    .version = "1.0.0",
    .create = abi10_create,
    .destroy = free,
    .owns_domain = abi10_owns_domain,
};
