/*
 * modmtatest --json: the report as one JSON object (its members are
 * listed in modmtatest(8)).
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "modmtatest.h"

static json_t *mt_json_call(const struct mt_call *c);
static json_t *mt_json_step(const struct mt_step *st);
static json_t *mt_json_route(const struct mt_route *rt);
static json_t *mt_json_envelope(const struct mt *t);
static json_t *mt_json_str(const char *s);

/* A string or null. */
static json_t *
mt_json_str(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static json_t *
mt_json_call(const struct mt_call *c)
{
    json_t *o = json_pack("{s:s, s:s, s:o, s:s, s:b, s:f}",
                          "instance", c->instance, "hook", c->hook,
                          "arg", mt_json_str(c->arg),
                          "verdict", mt_verdict_name(c->verdict),
                          "timed_out", c->timed_out, "ms", c->ms);
    json_t *acts = json_array();

    if (o == NULL || acts == NULL) {
        json_decref(o);
        json_decref(acts);
        return NULL;
    }
    if (strcmp(c->hook, "on_auth") == 0)
        json_object_set_new(o, "success", json_boolean(c->success));
    if (c->returned != c->verdict || c->timed_out)
        json_object_set_new(o, "returned", json_integer(c->returned));
    json_object_set_new(o, "reply", c->code == 0 ? json_null()
                        : json_pack("{s:i, s:s, s:s}", "code", c->code,
                                    "esc", c->esc, "text", c->text));
    for (size_t i = 0; i < c->nactions; i++)
        json_array_append_new(acts, json_pack("{s:s, s:s}", "action",
                                              c->actions[i].kind, "value",
                                              c->actions[i].value));
    json_object_set_new(o, "actions", acts);
    return o;
}

static json_t *
mt_json_step(const struct mt_step *st)
{
    json_t *calls = json_array(), *lines = json_array(), *reply;

    for (size_t i = 0; calls != NULL && i < st->ncalls; i++)
        json_array_append_new(calls, mt_json_call(&st->calls[i]));
    for (size_t i = 0; lines != NULL && i < st->nlines; i++)
        json_array_append_new(lines, json_string(st->lines[i]));
    if (st->code != 0) {
        reply = json_pack("{s:i, s:o}", "code", st->code, "lines", lines);
    } else {
        json_decref(lines);
        reply = json_null();
    }
    return json_pack("{s:o, s:o, s:o}", "command", mt_json_str(st->command),
                     "calls", calls, "reply", reply);
}

static json_t *
mt_json_route(const struct mt_route *rt)
{
    json_t *o = json_pack("{s:s, s:o, s:o}", "status", mt_route_status(rt),
                          "instance", mt_json_str(rt->instance),
                          "destination", mt_json_str(rt->dest));

    if (o != NULL && !rt->r.claimed && !rt->r.offered)
        json_object_set_new(o, "reply", json_pack("{s:i, s:s, s:s}", "code",
                            rt->code, "esc", rt->esc, "text",
                            rt->text != NULL ? rt->text : ""));
    return o;
}

static json_t *
mt_json_envelope(const struct mt *t)
{
    const queue_env *env = t->env;
    json_t *rcpts = json_array(), *notes = json_object(), *r;

    for (size_t i = 0; rcpts != NULL && i < env->nrcpts; i++) {
        const queue_rcpt *q = &env->rcpts[i];

        r = json_pack("{s:s, s:o, s:o, s:o, s:o}", "address", q->addr,
                      "original", mt_json_str(q->orcpt),
                      "sender", mt_json_str(q->sender),
                      "claimed_by", mt_json_str(mt_actor(t, "claim",
                                                         q->addr)),
                      "added_by", mt_json_str(mt_actor(t, "add_rcpt",
                                                       q->addr)));
        if (r != NULL && t->routes != NULL && t->routes[i].done)
            json_object_set_new(r, "route", mt_json_route(&t->routes[i]));
        json_array_append_new(rcpts, r);
    }
    for (size_t i = 0; notes != NULL && i < env->nnotes; i++)
        json_object_set_new(notes, env->notes[i].name,
                            env->notes[i].str != NULL
                                ? json_string(env->notes[i].str)
                                : json_integer(env->notes[i].num));
    return json_pack("{s:s, s:o, s:o, s:o}", "sender", env->sender,
                     "recipients", rcpts, "notes", notes,
                     "quarantine", mt_json_str(env->quarantine));
}

int
mt_report_json(const struct mt *t, const struct config *cfg,
               const struct mt_outcome *out)
{
    json_t *steps = json_array(), *o;

    for (size_t i = 0; steps != NULL && i < t->nsteps; i++)
        json_array_append_new(steps, mt_json_step(&t->steps[i]));
    o = json_pack("{s:s, s:s, s:{s:s, s:s, s:o}, s:o, s:s, s:i, s:o, "
                  "s:o, s:o}",
                  "config", cfg->path, "listener", t->listener->name,
                  "client", "address", t->o.client, "helo", t->o.helo,
                  "auth", mt_json_str(t->o.auth),
                  "steps", steps, "result", out->result,
                  "exit", out->status,
                  "queue_id", mt_json_str(t->env != NULL ? t->env->id
                                                         : NULL),
                  "envelope", t->env != NULL ? mt_json_envelope(t)
                                             : json_null(),
                  "headers", mt_json_str(t->headers));
    if (o == NULL || json_dumpf(o, stdout, JSON_INDENT(2) |
                                           JSON_REAL_PRECISION(6)) < 0) {
        fprintf(stderr, "modmtatest: cannot write the JSON report\n");
        json_decref(o);
        return MT_EXIT_USAGE;
    }
    printf("\n");
    fflush(stdout);
    json_decref(o);
    return out->status;
}
