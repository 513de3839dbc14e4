/* A module with a descriptor smaller than ABI 1.0's:
 * the loader must refuse it. */
#include <stddef.h>
#include <stdlib.h>

#include <modmta/modmta.h>

static void *
small_create(const json_t *conf, const modmta_host *host, modmta_err *err_r)
{
    return calloc(1, 1);
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = offsetof(modmta_module, load),
    .sig = MODMTA_BUILD_SIG,
    .name = "small",
    .version = "1.0.0",
    .create = small_create,
    .destroy = free,
};
