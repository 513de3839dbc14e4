/*
 * modmta SDK: logging. One key=value line per event:
 *   modmta_log(ctx, MODMTA_LOG_INFO, "reject rcpt=<%s> reason=%s", ...)
 * is written as "<session-or-queue-id>: <instance>: reject rcpt=<...> ...".
 * Never log secrets: write them as ********. Control characters (CR, LF)
 * are written as '?', so client text cannot forge log lines.
 */
#ifndef MODMTA_LOG_H
#define MODMTA_LOG_H

#include <stdarg.h>

#include <modmta/module.h>

#ifdef __cplusplus
extern "C" {
#endif

/* syslog(3) priorities. */
enum {
    MODMTA_LOG_ERR = 3,
    MODMTA_LOG_WARN = 4,
    MODMTA_LOG_NOTICE = 5,
    MODMTA_LOG_INFO = 6,
    MODMTA_LOG_DEBUG = 7,
};

/* From a hook: prefixed with the session or queue ID and the instance. */
void modmta_log(const modmta_ctx *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Outside a session (create, map backends): prefixed with the instance
 * when host is not NULL. */
void modmta_log_host(const modmta_host *host, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Without context, e.g. from the core or a library. */
void modmta_logf(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void modmta_vlogf(int level, const char *fmt, va_list ap);
int modmta_log_enabled(int level);

#ifdef __cplusplus
}
#endif

#endif
