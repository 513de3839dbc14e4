/*
 * Hook time budgets (see chain_budget.h). Postfix bounds its milters and
 * policy services the same way (milter_*_timeout, milter_default_action;
 * smtpd_policy_service_timeout), never its delivery agents: deliver()
 * and deliver_msg() have no budget, their own protocol timeouts bound
 * them.
 */
#include <stdio.h>
#include <string.h>

#include <modmta/conf.h>
#include <modmta/log.h>

#include "budget_priv.h"
#include "chain_budget.h"
#include "ctx_priv.h"

/* A call is slow, and logged, from half its budget, or from this. */
#define CHAIN_BUDGET_SLOW_MS 1000LL

static const char *const chain_budget_actions[] = {
    [CHAIN_ON_TIMEOUT_TEMPFAIL] = "tempfail",
    [CHAIN_ON_TIMEOUT_CONTINUE] = "continue",
};

/* "250ms", "2s", "1m" or "2" (seconds) in ms (modmta_parse_duration_ms);
 * -1 if malformed. */
static long long
chain_budget_ms(const char *s)
{
    long long ms;

    return modmta_parse_duration_ms(s, &ms) < 0 ? -1 : ms;
}

int
chain_budget_parse(const json_t *el, const char *path,
                   struct chain_budget *b, struct config_errors *errs)
{
    const json_t *t = json_object_get(el, "hook_timeout");
    const json_t *a = json_object_get(el, "on_hook_timeout");
    char kpath[96];
    const char *s;
    long long ms;
    int failed = 0;

    b->timeout_ms = CHAIN_BUDGET_DEFAULT_MS;
    b->on_timeout = CHAIN_ON_TIMEOUT_TEMPFAIL;
    if (t != NULL) {
        ms = json_is_integer(t) && json_integer_value(t) > 0 &&
             json_integer_value(t) <= CHAIN_BUDGET_MAX_MS / 1000
                 ? json_integer_value(t) * 1000
             : json_is_string(t) ? chain_budget_ms(json_string_value(t))
                                 : -1;
        if (ms < 1 || ms > CHAIN_BUDGET_MAX_MS) {
            snprintf(kpath, sizeof(kpath), "%s.hook_timeout", path);
            config_errors_add(errs, kpath, "expected a time from 1ms to 1h "
                              "(\"500ms\", \"2s\", \"1m\", or an integer "
                              "of seconds)");
            failed = 1;
        } else {
            b->timeout_ms = ms;
        }
    }
    if (a != NULL) {
        s = json_string_value(a);
        if (s != NULL && strcmp(s, "continue") == 0) {
            b->on_timeout = CHAIN_ON_TIMEOUT_CONTINUE;
        } else if (s == NULL || strcmp(s, "tempfail") != 0) {
            snprintf(kpath, sizeof(kpath), "%s.on_hook_timeout", path);
            config_errors_add(errs, kpath, "expected \"tempfail\" or "
                              "\"continue\"");
            failed = 1;
        }
    }
    return failed ? -1 : 0;
}

void
chain_budget_start(const struct chain_budget *b, modmta_ctx *ctx,
                   struct chain_timer *t)
{
    t->start_ms = budget_now_ms();
    t->deadline_ms = t->start_ms + b->timeout_ms;
    budget_begin(ctx, t->deadline_ms);
}

int
chain_budget_stop(const struct chain_budget *b, modmta_ctx *ctx,
                  const struct chain_timer *t, const char *hook, int notify)
{
    long long now = budget_now_ms();
    long long elapsed = now - t->start_ms;
    long long slow = b->timeout_ms / 2 < CHAIN_BUDGET_SLOW_MS
                         ? b->timeout_ms / 2 : CHAIN_BUDGET_SLOW_MS;
    int spent = budget_end(ctx);

    if (spent || now > t->deadline_ms) {
        modmta_log(ctx, MODMTA_LOG_WARN, "hook timed out: hook=%s "
                   "elapsed=%lldms timeout=%lldms%s action=%s", hook,
                   elapsed, b->timeout_ms,
                   spent ? " sdk_wait=spent" : "",
                   notify ? "none" : chain_budget_actions[b->on_timeout]);
        return 1;
    }
    if (elapsed >= slow)
        modmta_log(ctx, MODMTA_LOG_NOTICE, "slow hook: hook=%s "
                   "elapsed=%lldms timeout=%lldms", hook, elapsed,
                   b->timeout_ms);
    return 0;
}

modmta_verdict
chain_budget_verdict(const struct chain_budget *b, modmta_ctx *ctx,
                     int notify)
{
    modmta_ctx_reply_clear(ctx);
    if (notify || b->on_timeout == CHAIN_ON_TIMEOUT_CONTINUE)
        return MODMTA_CONTINUE;
    modmta_ctx_reply_default(ctx, 451, "4.3.0",
                             "Try again later: time limit exceeded");
    return MODMTA_TEMPFAIL;
}
