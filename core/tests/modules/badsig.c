/* A module with another build signature (other type sizes):
 * the loader must refuse it. */
#include <stddef.h>
#include <stdlib.h>

#include <modmta/modmta.h>

static void *
badsig_create(const json_t *conf, const modmta_host *host, modmta_err *err_r)
{
    return calloc(1, 1);
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG ^ 0xffu,
    .name = "badsig",
    .version = "1.0.0",
    .create = badsig_create,
    .destroy = free,
};
