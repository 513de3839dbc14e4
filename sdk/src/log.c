/*
 * Logging: one line per event, written with a single write(2) so lines
 * from concurrent threads never interleave. stderr by default (systemd and
 * containers collect it), syslog(3) when configured.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <modmta/log.h>

#include "ctx_priv.h"
#include "log_priv.h"

static atomic_int log_level = MODMTA_LOG_INFO;
static atomic_int log_syslog;

static const char *const level_names[] = {
    [MODMTA_LOG_ERR] = "err",   [MODMTA_LOG_WARN] = "warn",
    [MODMTA_LOG_NOTICE] = "notice", [MODMTA_LOG_INFO] = "info",
    [MODMTA_LOG_DEBUG] = "debug",
};

static const struct {
    const char *name;
    int facility;
} facilities[] = {
    {"mail", LOG_MAIL},     {"daemon", LOG_DAEMON}, {"user", LOG_USER},
    {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2},
    {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
    {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
};

int
modmta_log_level_parse(const char *name)
{
    int i;

    for (i = MODMTA_LOG_ERR; i <= MODMTA_LOG_DEBUG; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

int
modmta_log_setup(int level, int use_syslog, const char *facility)
{
    size_t i;

    if (use_syslog) {
        for (i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
            if (strcmp(facility ? facility : "mail", facilities[i].name) == 0)
                break;
        if (i == sizeof(facilities) / sizeof(facilities[0]))
            return MODMTA_E_INVAL;
        openlog("modmta", LOG_PID | LOG_NDELAY, facilities[i].facility);
    }
    atomic_store(&log_level, level);
    atomic_store(&log_syslog, use_syslog);
    return 0;
}

int
modmta_log_enabled(int level)
{
    return level <= atomic_load(&log_level);
}

/* Client-supplied text must not start a new log line. */
static void
log_sanitize(char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 && s[i] != '\t')
            s[i] = '?';
}

static void
log_emit(int level, const char *prefix, const char *fmt, va_list ap)
{
    char line[2048];
    size_t n = 0;
    int r;
    struct timespec ts;
    struct tm tm;

    if (!modmta_log_enabled(level))
        return;
    if (level < MODMTA_LOG_ERR || level > MODMTA_LOG_DEBUG)
        level = MODMTA_LOG_ERR;
    if (!atomic_load(&log_syslog)) {
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        r = snprintf(line + n, sizeof(line) - n, ".%03ldZ modmta[%ld]: %s: ",
                     ts.tv_nsec / 1000000L, (long)getpid(),
                     level_names[level]);
        n += r > 0 ? (size_t)r : 0;
    }
    if (prefix != NULL && n < sizeof(line)) {
        r = snprintf(line + n, sizeof(line) - n, "%s", prefix);
        n += r > 0 ? (size_t)r : 0;
    }
    if (n < sizeof(line)) {
        r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        n += r > 0 ? (size_t)r : 0;
    }
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    log_sanitize(line, n);
    if (atomic_load(&log_syslog)) {
        line[n] = '\0';
        syslog(level, "%s", line);
        return;
    }
    line[n++] = '\n';
    /* One write per line: lines of concurrent threads stay whole. */
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}

void
modmta_vlogf(int level, const char *fmt, va_list ap)
{
    log_emit(level, NULL, fmt, ap);
}

void
modmta_logf(int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_emit(level, NULL, fmt, ap);
    va_end(ap);
}

void
modmta_log_host(const modmta_host *host, int level, const char *fmt, ...)
{
    char prefix[160];
    va_list ap;

    snprintf(prefix, sizeof(prefix), "%s: ",
             host != NULL ? host->instance : "core");
    va_start(ap, fmt);
    log_emit(level, prefix, fmt, ap);
    va_end(ap);
}

void
modmta_log(const modmta_ctx *ctx, int level, const char *fmt, ...)
{
    char prefix[192];
    const char *id = "-";
    va_list ap;

    if (ctx != NULL)
        id = ctx->queue_id[0] ? ctx->queue_id : ctx->session_id;
    snprintf(prefix, sizeof(prefix), "%s: %s: ", id,
             ctx != NULL && ctx->host != NULL ? ctx->host->instance : "core");
    va_start(ap, fmt);
    log_emit(level, prefix, fmt, ap);
    va_end(ap);
}
