/* A module with a descriptor name that is not its file's:
 * the loader must refuse it. */
#include <stddef.h>
#include <stdlib.h>

#include <modmta/modmta.h>

static void *
misname_create(const json_t *conf, const modmta_host *host, modmta_err *err_r)
{
    return calloc(1, 1);
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "other",
    .version = "1.0.0",
    .create = misname_create,
    .destroy = free,
};
