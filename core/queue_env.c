/*
 * The envelope's JSON codec: see queue_env.h for the format.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "ctx_priv.h"
#include "queue_env.h"

static const char *const queue_env_states[] = {"pending", "delivered",
                                               "failed"};

/* NOTIFY keywords (RFC 3461 4.1) and their QNOTIFY_* bits. */
static const struct {
    unsigned bit;
    const char *name;
} queue_env_notify[] = {
    {QNOTIFY_NEVER, "NEVER"},
    {QNOTIFY_SUCCESS, "SUCCESS"},
    {QNOTIFY_FAILURE, "FAILURE"},
    {QNOTIFY_DELAY, "DELAY"},
};

#define QUEUE_ENV_NNOTIFY \
    (sizeof(queue_env_notify) / sizeof(queue_env_notify[0]))

unsigned
queue_env_notify_bit(const char *word, size_t len)
{
    for (size_t i = 0; i < QUEUE_ENV_NNOTIFY; i++)
        if (strlen(queue_env_notify[i].name) == len &&
            strncasecmp(word, queue_env_notify[i].name, len) == 0)
            return queue_env_notify[i].bit;
    return 0;
}

const char *
queue_env_notify_str(unsigned notify, char *buf, size_t len)
{
    size_t n = 0;

    if (len > 0)
        buf[0] = '\0';
    for (size_t i = 0; i < QUEUE_ENV_NNOTIFY; i++)
        if ((notify & queue_env_notify[i].bit) != 0 && n < len)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", n > 0 ? "," : "",
                                  queue_env_notify[i].name);
    return buf;
}

/* ---- writing ---- */

static json_t *
queue_env_jstr(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/* 1 if r holds a version 2 field. */
static int
queue_env_rcpt_v2(const queue_rcpt *r)
{
    return r->notify != 0 || r->orcpt_param != NULL || r->code != 0 ||
           r->esc != NULL || r->text != NULL || r->stage != NULL ||
           r->remote != NULL || r->remote_addr != NULL || r->delay_sent ||
           r->relayed;
}

static int
queue_env_version(const queue_env *env)
{
    if (env->nnotes > 0)
        return 3;
    if (env->nparams > 0)
        return 2;
    for (size_t i = 0; i < env->nrcpts; i++)
        if (queue_env_rcpt_v2(&env->rcpts[i]))
            return 2;
    return 1;
}

/* Set o[key] to new (which is consumed); 0, or -1 if new is NULL or the
 * set failed. */
static int
queue_env_set(json_t *o, const char *key, json_t *new)
{
    return new != NULL && json_object_set_new(o, key, new) == 0 ? 0 : -1;
}

/* The optional string s as o[key]: nothing when NULL. */
static int
queue_env_set_str(json_t *o, const char *key, const char *s)
{
    return s == NULL ? 0 : queue_env_set(o, key, json_string(s));
}

static json_t *
queue_env_notify_json(unsigned notify)
{
    json_t *a = json_array();

    for (size_t i = 0; a != NULL && i < QUEUE_ENV_NNOTIFY; i++) {
        if ((notify & queue_env_notify[i].bit) != 0 &&
            json_array_append_new(a,
                json_string(queue_env_notify[i].name)) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* The version 2 fields of r, those that are set. */
static int
queue_env_rcpt_v2_json(json_t *o, const queue_rcpt *r)
{
    if ((r->notify != 0 &&
         queue_env_set(o, "notify", queue_env_notify_json(r->notify)) < 0) ||
        queue_env_set_str(o, "orcpt_param", r->orcpt_param) < 0 ||
        (r->code != 0 &&
         queue_env_set(o, "code", json_integer(r->code)) < 0) ||
        queue_env_set_str(o, "esc", r->esc) < 0 ||
        queue_env_set_str(o, "text", r->text) < 0 ||
        queue_env_set_str(o, "stage", r->stage) < 0 ||
        queue_env_set_str(o, "remote", r->remote) < 0 ||
        queue_env_set_str(o, "remote_addr", r->remote_addr) < 0 ||
        (r->delay_sent &&
         queue_env_set(o, "delay_sent", json_true()) < 0) ||
        (r->relayed && queue_env_set(o, "relayed", json_true()) < 0))
        return -1;
    return 0;
}

static json_t *
queue_env_rcpt_json(const queue_rcpt *r)
{
    unsigned st = (unsigned)r->state <= QRCPT_FAILED ? r->state : 0;
    json_t *o = json_pack("{s:o, s:o, s:s, s:o, s:b, s:b, s:s*}",
        "addr", queue_env_jstr(r->addr), "orcpt", queue_env_jstr(r->orcpt),
        "state", queue_env_states[st], "status", queue_env_jstr(r->status),
        "dsn_sent", r->dsn_sent, "no_dsn", r->no_dsn, "sender", r->sender);

    if (o != NULL && queue_env_rcpt_v2_json(o, r) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *
queue_env_params_json(const queue_env *env)
{
    json_t *o = json_object();

    for (size_t i = 0; o != NULL && i < env->nparams; i++) {
        const queue_param *p = &env->params[i];

        if (queue_env_set(o, p->name, json_string(p->value != NULL ?
                                                  p->value : "")) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static json_t *
queue_env_notes_json(const queue_env *env)
{
    json_t *o = json_object();

    for (size_t i = 0; o != NULL && i < env->nnotes; i++) {
        const queue_note *n = &env->notes[i];

        if (queue_env_set(o, n->name, n->str != NULL ? json_string(n->str)
                                      : json_integer(n->num)) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static json_t *
queue_env_json(const queue_env *env)
{
    json_t *rcpts = json_array();
    json_t *o;

    for (size_t i = 0; rcpts != NULL && i < env->nrcpts; i++)
        json_array_append_new(rcpts, queue_env_rcpt_json(&env->rcpts[i]));
    if (rcpts == NULL || json_array_size(rcpts) != env->nrcpts) {
        json_decref(rcpts);
        return NULL;
    }
    o = json_pack("{s:i, s:s, s:s, s:o, s:I, s:o, s:o, s:o, s:o, s:o,"
                  " s:o, s:o, s:i, s:I, s:b, s:I}",
        "version", queue_env_version(env), "id", env->id,
        "sender", env->sender != NULL ? env->sender : "", "rcpts", rcpts,
        "arrival", (json_int_t)env->arrival,
        "client_addr", queue_env_jstr(env->client_addr),
        "client_name", queue_env_jstr(env->client_name),
        "helo", queue_env_jstr(env->helo),
        "protocol", queue_env_jstr(env->protocol),
        "auth_user", queue_env_jstr(env->auth_user),
        "auth_param", queue_env_jstr(env->auth_param),
        "quarantine", queue_env_jstr(env->quarantine),
        "attempts", env->attempts, "next_retry", (json_int_t)env->next_retry,
        "held", env->held, "size", (json_int_t)env->size);
    if (o != NULL && ((env->nparams > 0 &&
                       queue_env_set(o, "params",
                                     queue_env_params_json(env)) < 0) ||
                      (env->nnotes > 0 &&
                       queue_env_set(o, "notes",
                                     queue_env_notes_json(env)) < 0))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

char *
queue_env_dump(const queue_env *env, size_t *len_r)
{
    json_t *o = queue_env_json(env);
    char *s;

    if (o == NULL)
        return NULL;
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s != NULL)
        *len_r = strlen(s);
    return s;
}

/* ---- reading ---- */

/* A string field: absent or null gives NULL; a non-string is an error. */
static int
queue_env_get_str(const json_t *o, const char *key, char **out)
{
    const json_t *v = json_object_get(o, key);

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return MODMTA_E_INVAL;
    *out = strdup(json_string_value(v));
    return *out != NULL ? 0 : MODMTA_E_NOMEM;
}

/* An integer or boolean field; absent gives 0. */
static int
queue_env_get_int(const json_t *o, const char *key, json_int_t *out)
{
    const json_t *v = json_object_get(o, key);

    *out = 0;
    if (v == NULL)
        return 0;
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (!json_is_integer(v))
        return MODMTA_E_INVAL;
    *out = json_integer_value(v);
    return 0;
}

static int
queue_env_get_flag(const json_t *o, const char *key, int *out)
{
    json_int_t v;
    int rc = queue_env_get_int(o, key, &v);

    *out = v != 0;
    return rc;
}

static int
queue_env_get_notify(const json_t *o, unsigned *out)
{
    const json_t *a = json_object_get(o, "notify"), *v;
    size_t i;

    *out = 0;
    if (a == NULL)
        return 0;
    if (!json_is_array(a))
        return MODMTA_E_INVAL;
    json_array_foreach(a, i, v) {
        const char *s = json_string_value(v);
        unsigned bit = s != NULL ? queue_env_notify_bit(s, strlen(s)) : 0;

        if (bit == 0)
            return MODMTA_E_INVAL;
        *out |= bit;
    }
    return 0;
}

/* Absent, or not a string, reads as pending (as version 1 always did). */
static int
queue_env_get_state(const json_t *o, queue_rcpt_state *out)
{
    const char *st = json_string_value(json_object_get(o, "state"));

    *out = QRCPT_PENDING;
    if (st == NULL)
        return 0;
    for (size_t i = 0; i <= QRCPT_FAILED; i++) {
        if (strcmp(st, queue_env_states[i]) == 0) {
            *out = (queue_rcpt_state)i;
            return 0;
        }
    }
    return MODMTA_E_INVAL;
}

static int
queue_env_rcpt_v2_parse(const json_t *o, queue_rcpt *r)
{
    json_int_t code;
    int rc;

    if ((rc = queue_env_get_notify(o, &r->notify)) < 0 ||
        (rc = queue_env_get_str(o, "orcpt_param", &r->orcpt_param)) < 0 ||
        (rc = queue_env_get_int(o, "code", &code)) < 0 ||
        (rc = queue_env_get_str(o, "esc", &r->esc)) < 0 ||
        (rc = queue_env_get_str(o, "text", &r->text)) < 0 ||
        (rc = queue_env_get_str(o, "stage", &r->stage)) < 0 ||
        (rc = queue_env_get_str(o, "remote", &r->remote)) < 0 ||
        (rc = queue_env_get_str(o, "remote_addr", &r->remote_addr)) < 0 ||
        (rc = queue_env_get_flag(o, "delay_sent", &r->delay_sent)) < 0 ||
        (rc = queue_env_get_flag(o, "relayed", &r->relayed)) < 0)
        return rc;
    if (code < 0 || code > 999)
        return MODMTA_E_INVAL;
    r->code = (int)code;
    return 0;
}

static int
queue_env_rcpt_parse(const json_t *o, queue_rcpt *r)
{
    int rc;

    if (!json_is_object(o))
        return MODMTA_E_INVAL;
    if ((rc = queue_env_get_str(o, "addr", &r->addr)) < 0 ||
        (rc = queue_env_get_str(o, "orcpt", &r->orcpt)) < 0 ||
        (rc = queue_env_get_str(o, "status", &r->status)) < 0 ||
        (rc = queue_env_get_str(o, "sender", &r->sender)) < 0 ||
        (rc = queue_env_get_flag(o, "dsn_sent", &r->dsn_sent)) < 0 ||
        (rc = queue_env_get_flag(o, "no_dsn", &r->no_dsn)) < 0 ||
        (rc = queue_env_get_state(o, &r->state)) < 0 ||
        (rc = queue_env_rcpt_v2_parse(o, r)) < 0)
        return rc;
    return r->addr != NULL ? 0 : MODMTA_E_INVAL;
}

static int
queue_env_params_parse(const json_t *o, queue_env *env)
{
    const json_t *params = json_object_get(o, "params"), *v;
    const char *name;

    if (params == NULL)
        return 0;
    if (!json_is_object(params))
        return MODMTA_E_INVAL;
    if (json_object_size(params) == 0)
        return 0;
    env->params = calloc(json_object_size(params), sizeof(*env->params));
    if (env->params == NULL)
        return MODMTA_E_NOMEM;
    json_object_foreach((json_t *)params, name, v) {
        queue_param *p = &env->params[env->nparams];

        if (!json_is_string(v))
            return MODMTA_E_INVAL;
        p->name = strdup(name);
        p->value = strdup(json_string_value(v));
        env->nparams++;
        if (p->name == NULL || p->value == NULL)
            return MODMTA_E_NOMEM;
    }
    return 0;
}

/* "notes": names and values as ctx.h bounds them (a decoded envelope
 * must be one the commit could have written). */
static int
queue_env_notes_parse(const json_t *o, queue_env *env)
{
    const json_t *notes = json_object_get(o, "notes"), *v;
    const char *name;
    queue_note *n;

    if (notes == NULL)
        return 0;
    if (!json_is_object(notes) || json_object_size(notes) > MODMTA_NOTES_MAX)
        return MODMTA_E_INVAL;
    if (json_object_size(notes) == 0)
        return 0;
    env->notes = calloc(json_object_size(notes), sizeof(*env->notes));
    if (env->notes == NULL)
        return MODMTA_E_NOMEM;
    json_object_foreach((json_t *)notes, name, v) {
        if (!json_is_string(v) && !json_is_integer(v))
            return MODMTA_E_INVAL;
        if (modmta_ctx_note_check(name, json_string_value(v)) < 0)
            return MODMTA_E_INVAL;
        n = &env->notes[env->nnotes++];
        n->num = json_integer_value(v);
        if ((n->name = strdup(name)) == NULL ||
            (json_is_string(v) &&
             (n->str = strdup(json_string_value(v))) == NULL))
            return MODMTA_E_NOMEM;
    }
    return 0;
}

static int
queue_env_rcpts_parse(const json_t *rcpts, queue_env *env)
{
    int rc;

    if (json_array_size(rcpts) == 0)
        return 0;
    env->rcpts = calloc(json_array_size(rcpts), sizeof(*env->rcpts));
    if (env->rcpts == NULL)
        return MODMTA_E_NOMEM;
    /* Counted as filled, so that queue_env_free frees what was read. */
    env->nrcpts = json_array_size(rcpts);
    for (size_t i = 0; i < env->nrcpts; i++) {
        rc = queue_env_rcpt_parse(json_array_get(rcpts, i),
                                  &env->rcpts[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int
queue_env_from_json(const json_t *o, queue_env *env)
{
    const json_t *rcpts = json_object_get(o, "rcpts");
    json_int_t version, arrival, attempts, next_retry, size;
    int rc;

    if (!json_is_object(o))
        return MODMTA_E_INVAL;
    /* A newer format could hold fields an update here would drop, or
     * shape the known ones otherwise: looked at before anything else. */
    if (json_is_integer(json_object_get(o, "version")) &&
        json_integer_value(json_object_get(o, "version")) > QUEUE_ENV_VERSION)
        return MODMTA_E_UNSUPPORTED;
    if ((rc = queue_env_get_int(o, "version", &version)) < 0)
        return rc;
    if (!json_is_array(rcpts))
        return MODMTA_E_INVAL;
    if ((rc = queue_env_get_str(o, "sender", &env->sender)) < 0 ||
        (rc = queue_env_get_str(o, "client_addr", &env->client_addr)) < 0 ||
        (rc = queue_env_get_str(o, "client_name", &env->client_name)) < 0 ||
        (rc = queue_env_get_str(o, "helo", &env->helo)) < 0 ||
        (rc = queue_env_get_str(o, "protocol", &env->protocol)) < 0 ||
        (rc = queue_env_get_str(o, "auth_user", &env->auth_user)) < 0 ||
        (rc = queue_env_get_str(o, "auth_param", &env->auth_param)) < 0 ||
        (rc = queue_env_get_str(o, "quarantine", &env->quarantine)) < 0 ||
        (rc = queue_env_get_int(o, "arrival", &arrival)) < 0 ||
        (rc = queue_env_get_int(o, "attempts", &attempts)) < 0 ||
        (rc = queue_env_get_int(o, "next_retry", &next_retry)) < 0 ||
        (rc = queue_env_get_flag(o, "held", &env->held)) < 0 ||
        (rc = queue_env_get_int(o, "size", &size)) < 0 ||
        (rc = queue_env_params_parse(o, env)) < 0 ||
        (rc = queue_env_notes_parse(o, env)) < 0)
        return rc;
    if (env->sender == NULL)
        return MODMTA_E_INVAL;
    env->arrival = (time_t)arrival;
    env->attempts = (int)attempts;
    env->next_retry = (time_t)next_retry;
    env->size = (off_t)size;
    return queue_env_rcpts_parse(rcpts, env);
}

int
queue_env_parse(const char *text, size_t len, queue_env **env_r,
                modmta_err *err_r)
{
    json_error_t jerr;
    queue_env *env;
    json_t *o;
    int rc;

    *env_r = NULL;
    o = json_loadb(text, len, 0, &jerr);
    if (o == NULL) {
        modmta_err_set(err_r, NULL, "%s", jerr.text);
        /* want of memory is no damage: never quarantined for it */
        return json_error_code(&jerr) == json_error_out_of_memory
                   ? MODMTA_E_NOMEM
                   : MODMTA_E_INVAL;
    }
    env = calloc(1, sizeof(*env));
    if (env == NULL) {
        json_decref(o);
        modmta_err_set(err_r, NULL, "%s", modmta_strerror(MODMTA_E_NOMEM));
        return MODMTA_E_NOMEM;
    }
    rc = queue_env_from_json(o, env);
    json_decref(o);
    if (rc < 0) {
        modmta_err_set(err_r, NULL, "%s", modmta_strerror(rc));
        queue_env_free(env);
        return rc;
    }
    *env_r = env;
    return 0;
}

static void
queue_env_rcpt_free(queue_rcpt *r)
{
    free(r->addr);
    free(r->orcpt);
    free(r->status);
    free(r->sender);
    free(r->orcpt_param);
    free(r->esc);
    free(r->text);
    free(r->stage);
    free(r->remote);
    free(r->remote_addr);
}

void
queue_env_free(queue_env *env)
{
    if (env == NULL)
        return;
    for (size_t i = 0; i < env->nrcpts; i++)
        queue_env_rcpt_free(&env->rcpts[i]);
    free(env->rcpts);
    for (size_t i = 0; i < env->nparams; i++) {
        free(env->params[i].name);
        free(env->params[i].value);
    }
    free(env->params);
    for (size_t i = 0; i < env->nnotes; i++) {
        free(env->notes[i].name);
        free(env->notes[i].str);
    }
    free(env->notes);
    free(env->sender);
    free(env->client_addr);
    free(env->client_name);
    free(env->helo);
    free(env->protocol);
    free(env->auth_user);
    free(env->auth_param);
    free(env->quarantine);
    free(env);
}
