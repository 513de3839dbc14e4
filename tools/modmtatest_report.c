/*
 * modmtatest's report (see modmtatest.h): the dialogue as a transcript
 * ("C:" the client, "S:" the session) with each hook call under the
 * command that caused it, then the outcome, the envelope as queued, the
 * notes and the stored header block. --json prints the same data
 * (modmtatest_json.c).
 */
#include <stdio.h>
#include <string.h>

#include "modmtatest.h"

static int mt_is_address(const char *hook);
static void mt_text_call(const struct mt_call *c);
static int mt_after_reply(const struct mt_call *c);
static void mt_text_step(const struct mt_step *st);
static void mt_text_route(const struct mt_route *rt);
static int mt_names(const char *value, const char *addr);
static const char *mt_step_name(const struct mt_step *st);
static void mt_text_envelope(const struct mt *t);
static void mt_text(const struct mt *t, const struct config *cfg,
                    const struct mt_outcome *out);

const char *
mt_verdict_name(modmta_verdict v)
{
    static const char *const names[] = {
        [MODMTA_CONTINUE] = "CONTINUE", [MODMTA_ACCEPT] = "ACCEPT",
        [MODMTA_REJECT] = "REJECT",     [MODMTA_TEMPFAIL] = "TEMPFAIL",
        [MODMTA_DISCARD] = "DISCARD",
    };

    return (unsigned)v < sizeof(names) / sizeof(names[0]) ? names[v]
                                                          : "(unknown)";
}

const char *
mt_route_status(const struct mt_route *rt)
{
    if (rt->r.claimed)
        return "claimed";
    if (rt->r.offered)
        return "deliver";
    if (rt->r.discarded)
        return "discarded";
    return rt->r.status == MODMTA_FAILED ? "failed" : "deferred";
}

int
mt_is_route(const struct mt_step *st)
{
    return st->command != NULL && strncmp(st->command, "route <", 7) == 0;
}

/* "<addr>" alone or followed by " (...)". */
static int
mt_names(const char *value, const char *addr)
{
    size_t n = strlen(addr);

    return value[0] == '<' && strncmp(value + 1, addr, n) == 0 &&
           value[n + 1] == '>' && (value[n + 2] == '\0' ||
                                   value[n + 2] == ' ');
}

const char *
mt_actor(const struct mt *t, const char *kind, const char *addr)
{
    const char *who = NULL;

    for (size_t i = 0; i < t->nsteps; i++)
        for (size_t j = 0; j < t->steps[i].ncalls; j++) {
            const struct mt_call *c = &t->steps[i].calls[j];

            for (size_t k = 0; k < c->nactions; k++)
                if (strcmp(c->actions[k].kind, kind) == 0 &&
                    mt_names(c->actions[k].value, addr))
                    who = c->instance;
        }
    return who;
}

/* Accepted: the end of data got a 2xx and nothing was refused on the
 * way (QUIT's reply does not count). */
void
mt_outcome(const struct mt *t, struct mt_outcome *out)
{
    int end = 0;

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < t->nsteps; i++) {
        const struct mt_step *st = &t->steps[i];
        const char *cmd = st->command != NULL ? st->command : "";

        if (strcmp(cmd, ".") == 0)
            end = st->code;
        if (out->failed == NULL && strcmp(cmd, "QUIT") != 0 &&
            !mt_is_route(st) && (st->code == 0 || st->code >= 400))
            out->failed = st;
    }
    out->status = out->failed == NULL && end / 100 == 2 ? MT_EXIT_ACCEPTED
                                                        : MT_EXIT_REFUSED;
    if (end / 100 == 2)
        out->result = t->env != NULL ? "accepted" : "discarded";
    else
        out->result = out->failed != NULL && out->failed->code / 100 == 5
                          ? "refused" : "deferred";
}

/* The hook's argument is a mail address. */
static int
mt_is_address(const char *hook)
{
    return strcmp(hook, "on_mail") == 0 || strcmp(hook, "on_rcpt") == 0 ||
           strcmp(hook, "route") == 0;
}

static void
mt_text_call(const struct mt_call *c)
{
    printf("     [%s] %s", c->instance, c->hook);
    if (c->arg != NULL)
        printf(mt_is_address(c->hook) ? " <%s>" : " %s", c->arg);
    if (strcmp(c->hook, "on_auth") == 0)
        printf(c->success ? " (success)" : " (failure)");
    printf(": %s", mt_verdict_name(c->verdict));
    if (c->timed_out)
        printf(" (over its hook_timeout; returned %s)",
               mt_verdict_name(c->returned));
    else if (c->returned != c->verdict)
        printf(" (returned %d)", (int)c->returned);
    if (c->code != 0)
        printf(" %d%s%s %s", c->code, c->esc[0] ? " " : "", c->esc,
               c->text);
    printf(" (%.3f ms)\n", c->ms);
    for (size_t i = 0; i < c->nactions; i++)
        printf("         %s %s\n", c->actions[i].kind, c->actions[i].value);
}

/* on_queued runs once the client has its 250, on_disconnect once the
 * session has ended. */
static int
mt_after_reply(const struct mt_call *c)
{
    return strcmp(c->hook, "on_queued") == 0 ||
           strcmp(c->hook, "on_disconnect") == 0;
}

static void
mt_text_step(const struct mt_step *st)
{
    if (st->command == NULL)
        printf("   (connection)\n");
    else if (strcmp(st->command, ".") == 0)
        printf("C: [the message]\nC: .\n");
    else if (mt_is_route(st))
        printf("   (%s)\n", st->command);
    else
        printf("C: %s\n", st->command);
    for (size_t i = 0; i < st->ncalls; i++)
        if (!mt_after_reply(&st->calls[i]))
            mt_text_call(&st->calls[i]);
    for (size_t i = 0; i < st->nlines; i++)
        printf("S: %d%c%s\n", st->code, i + 1 < st->nlines ? '-' : ' ',
               st->lines[i]);
    if (st->command != NULL && !mt_is_route(st) && st->nlines == 0)
        printf("S: (connection closed)\n");
    for (size_t i = 0; i < st->ncalls; i++)
        if (mt_after_reply(&st->calls[i]))
            mt_text_call(&st->calls[i]);
}

static void
mt_text_route(const struct mt_route *rt)
{
    const char *st = mt_route_status(rt);

    if (rt->r.claimed)
        printf("%s to %s", rt->instance, rt->dest);
    else if (rt->r.offered)
        printf("%s deliver() (not called offline)", rt->instance);
    else
        printf("%s%s%s: %d %s %s", st, rt->instance ? " by " : "",
               rt->instance ? rt->instance : "", rt->code, rt->esc,
               rt->text != NULL ? rt->text : "");
}

static void
mt_text_envelope(const struct mt *t)
{
    const queue_env *env = t->env;
    const char *who;

    printf("Envelope:\n  sender <%s>\n", env->sender);
    for (size_t i = 0; i < env->nrcpts; i++) {
        const queue_rcpt *r = &env->rcpts[i];

        printf("  recipient <%s>", r->addr);
        if (r->orcpt != NULL && strcmp(r->orcpt, r->addr) != 0)
            printf(" (for <%s>)", r->orcpt);
        if (r->sender != NULL)
            printf(", sender <%s>", r->sender);
        if ((who = mt_actor(t, "claim", r->addr)) != NULL)
            printf(", claimed by %s", who);
        else if ((who = mt_actor(t, "add_rcpt", r->addr)) != NULL)
            printf(", added by %s", who);
        if (t->routes != NULL && t->routes[i].done) {
            printf(", route: ");
            mt_text_route(&t->routes[i]);
        }
        printf("\n");
    }
    if (env->nnotes > 0)
        printf("Notes:\n");
    for (size_t i = 0; i < env->nnotes; i++) {
        if (env->notes[i].str != NULL)
            printf("  %s = \"%s\"\n", env->notes[i].name, env->notes[i].str);
        else
            printf("  %s = %lld\n", env->notes[i].name, env->notes[i].num);
    }
    if (env->quarantine != NULL)
        printf("Quarantine: %s\n", env->quarantine);
    printf("Headers:\n%s", t->headers != NULL ? t->headers : "");
}

/* A step in a sentence. */
static const char *
mt_step_name(const struct mt_step *st)
{
    if (st->command == NULL)
        return "the greeting";
    return strcmp(st->command, ".") == 0 ? "the end of data" : st->command;
}

static void
mt_text(const struct mt *t, const struct config *cfg,
        const struct mt_outcome *out)
{
    printf("modmtatest: %s, listener %s, client %s, EHLO %s%s%s\n\n",
           cfg->path, t->listener->name, t->o.client, t->o.helo,
           t->o.auth != NULL ? ", AUTH " : "",
           t->o.auth != NULL ? t->o.auth : "");
    for (size_t i = 0, r = 0; i < t->nsteps; i++) {
        mt_text_step(&t->steps[i]);
        if (mt_is_route(&t->steps[i]) && t->routes != NULL) {
            printf("     => ");
            mt_text_route(&t->routes[r++]);
            printf("\n");
        }
    }
    printf("\nResult: %s", out->result);
    if (t->env != NULL)
        printf(", queued as %s", t->env->id);
    if (out->failed != NULL)
        printf("%s %s: %d %s", t->env != NULL ? "; but" : " at",
               mt_step_name(out->failed), out->failed->code,
               out->failed->nlines > 0 ? out->failed->lines[0]
                                       : "(connection closed)");
    printf("\n");
    if (t->env != NULL)
        mt_text_envelope(t);
}

int
mt_report(const struct mt *t, const struct config *cfg)
{
    struct mt_outcome out;

    mt_outcome(t, &out);
    if (t->o.json)
        return mt_report_json(t, cfg, &out);
    mt_text(t, cfg, &out);
    fflush(stdout);
    return out.status;
}
