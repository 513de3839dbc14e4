/*
 * Shared by the local stores: a delivery that failed for a local reason
 * (a refused or unwritable mailbox, a full disk) is deferred, logged and
 * answered the same way by each.
 */
#ifndef MODULES_COMMON_STORE_RESULT_H
#define MODULES_COMMON_STORE_RESULT_H

#include <modmta/modmta.h>

/* Log and answer a failed write of the mailbox at path (kind: "mailbox",
 * "maildir"), rc a MODMTA_E_* code: MODMTA_E_PERM (refused, left for
 * the administrator) is a warning and 451 4.2.0, anything else an error
 * and 451 4.3.0; why is the reply's text. Returns MODMTA_DEFERRED. */
modmta_dstatus store_result_deferred(modmta_ctx *ctx, const char *kind,
                                     const char *path, int rc,
                                     const char *why);

#endif
