/* A module with an ABI major one above the core's:
 * the loader must refuse it. */
#include <stddef.h>
#include <stdlib.h>

#include <modmta/modmta.h>

static void *
badmajor_create(const json_t *conf, const modmta_host *host, modmta_err *err_r)
{
    return calloc(1, 1);
}

MODMTA_MODULE = {
    .abi = ((MODMTA_ABI_MAJOR + 1) << 16) | MODMTA_ABI_MINOR,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "badmajor",
    .version = "1.0.0",
    .create = badmajor_create,
    .destroy = free,
};
