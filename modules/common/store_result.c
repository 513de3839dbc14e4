/*
 * The local stores' deferred deliveries (store_result.h).
 */
#include "store_result.h"

modmta_dstatus
store_result_deferred(modmta_ctx *ctx, const char *kind, const char *path,
                      int rc, const char *why)
{
    if (rc == MODMTA_E_PERM) {
        modmta_log(ctx, MODMTA_LOG_WARN, "refused %s=%s reason=\"%s\"", kind,
                   path, why);
        modmta_reply(ctx, 451, "4.2.0", "%s", why);
    } else {
        modmta_log(ctx, MODMTA_LOG_ERR, "failed %s=%s reason=\"%s\"", kind,
                   path, why);
        modmta_reply(ctx, 451, "4.3.0", "%s", why);
    }
    return MODMTA_DEFERRED;
}
