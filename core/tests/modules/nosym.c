/* A module that exports its descriptor under the wrong symbol name: the
 * loader must refuse it. */
#include <stdlib.h>

#include <modmta/modmta.h>

static void *
nosym_create(const json_t *conf, const modmta_host *host, modmta_err *err_r)
{
    return calloc(1, 1);
}

MODMTA_EXPORT const modmta_module nosym_descriptor = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "nosym",
    .version = "1.0.0",
    .create = nosym_create,
    .destroy = free,
};
