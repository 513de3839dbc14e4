/* A module with an ABI minor newer than the core's:
 * the loader must refuse it. */
#include <stddef.h>
#include <stdlib.h>

#include <modmta/modmta.h>

static void *
newminor_create(const json_t *conf, const modmta_host *host, modmta_err *err_r)
{
    return calloc(1, 1);
}

MODMTA_MODULE = {
    .abi = (MODMTA_ABI_MAJOR << 16) | (MODMTA_ABI_MINOR + 1),
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "newminor",
    .version = "1.0.0",
    .create = newminor_create,
    .destroy = free,
};
