/* Command templates and environment of deliver_pipe (see pipe_argv.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipe_argv.h"

#define PIPE_MACRO_MAX 32

struct pipe_macro {
    const char *name;
    size_t off;
};

#define PIPE_VAR(f) { #f, offsetof(struct pipe_vars, f) }

static const struct pipe_macro pipe_macros[] = {
    PIPE_VAR(sender), PIPE_VAR(recipient), PIPE_VAR(original_recipient),
    PIPE_VAR(mailbox), PIPE_VAR(user), PIPE_VAR(extension),
    PIPE_VAR(domain), PIPE_VAR(nexthop), PIPE_VAR(queue_id),
    PIPE_VAR(size),
};

static const struct pipe_macro *
pipe_macro_find(const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < sizeof(pipe_macros) / sizeof(pipe_macros[0]); i++)
        if (strlen(pipe_macros[i].name) == len &&
            memcmp(pipe_macros[i].name, name, len) == 0)
            return &pipe_macros[i];
    return NULL;
}

static int
pipe_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || c == '_';
}

/* At t (a "$"): the macro name in *name_r, *len_r and the length of
 * the whole reference (2 for "$$", name NULL); 0 when malformed. */
static size_t
pipe_macro_ref(const char *t, const char **name_r, size_t *len_r)
{
    size_t n = 0;

    *name_r = NULL;
    *len_r = 0;
    if (t[1] == '$')
        return 2;
    if (t[1] == '{') {
        while (pipe_name_char(t[2 + n]))
            n++;
        if (t[2 + n] != '}' || n == 0)
            return 0;
        *name_r = t + 2;
        *len_r = n;
        return n + 3;
    }
    while (pipe_name_char(t[1 + n]))
        n++;
    if (n == 0)
        return 0;
    *name_r = t + 1;
    *len_r = n;
    return n + 1;
}

int
pipe_tmpl_check(const char *t, char *why, size_t len)
{
    const char *name;
    size_t n, nlen;

    for (; *t != '\0'; t++) {
        if (*t != '$')
            continue;
        n = pipe_macro_ref(t, &name, &nlen);
        if (n == 0) {
            snprintf(why, len, "a \"$\" must start ${name}, $name or $$");
            return -1;
        }
        if (name != NULL && pipe_macro_find(name, nlen) == NULL) {
            snprintf(why, len, "unknown macro \"%.*s\" (known: sender, "
                     "recipient, original_recipient, mailbox, user, "
                     "extension, domain, nexthop, queue_id, size)",
                     (int)(nlen < PIPE_MACRO_MAX ? nlen : PIPE_MACRO_MAX),
                     name);
            return -1;
        }
        t += n - 1;
    }
    return 0;
}

char *
pipe_tmpl_expand(const char *t, const struct pipe_vars *v)
{
    char *out = malloc(PIPE_ARG_MAX + 1);
    size_t o = 0, n, nlen, vlen;
    const struct pipe_macro *m;
    const char *name, *val;

    if (out == NULL)
        return NULL;
    while (*t != '\0') {
        if (*t != '$') {
            val = t;
            vlen = 1;
            n = 1;
        } else if ((n = pipe_macro_ref(t, &name, &nlen)) == 0) {
            goto fail; /* pipe_tmpl_check refused it at create */
        } else if (name == NULL) {
            val = "$";
            vlen = 1;
        } else if ((m = pipe_macro_find(name, nlen)) == NULL) {
            goto fail;
        } else {
            val = *(const char *const *)((const char *)v + m->off);
            val = val != NULL ? val : "";
            vlen = strlen(val);
        }
        if (vlen > PIPE_ARG_MAX - o)
            goto fail;
        memcpy(out + o, val, vlen);
        o += vlen;
        t += n;
    }
    out[o] = '\0';
    return out;
fail:
    free(out);
    return NULL;
}

void
pipe_strv_free(char **v)
{
    size_t i;

    for (i = 0; v != NULL && v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

char **
pipe_argv_new(char *const *tmpl, const struct pipe_vars *v)
{
    size_t n = 0, i;
    char **argv;

    while (tmpl[n] != NULL)
        n++;
    if ((argv = calloc(n + 1, sizeof(*argv))) == NULL)
        return NULL;
    for (i = 0; i < n; i++)
        if ((argv[i] = pipe_tmpl_expand(tmpl[i], v)) == NULL) {
            pipe_strv_free(argv);
            return NULL;
        }
    return argv;
}

char **
pipe_env_new(const struct pipe_vars *v)
{
    const struct { const char *name; const char *val; } env[] = {
        { "PATH", "/usr/bin:/bin" },
        { "SHELL", v->shell },
        { "HOME", v->home },
        { "USER", v->logname },
        { "LOGNAME", v->logname },
        { "SENDER", v->sender },
        { "RECIPIENT", v->recipient },
        { "ORIGINAL_RECIPIENT", v->original_recipient },
        { "LOCAL", v->mailbox },
        { "EXTENSION", v->extension },
        { "DOMAIN", v->domain },
        { "QUEUE_ID", v->queue_id },
    };
    size_t n = sizeof(env) / sizeof(env[0]), i;
    char **out = calloc(n + 1, sizeof(*out));

    if (out == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        const char *val = env[i].val != NULL ? env[i].val : "";
        size_t len = strlen(env[i].name) + 1 + strlen(val) + 1;

        if (len > PIPE_ARG_MAX || (out[i] = malloc(len)) == NULL) {
            pipe_strv_free(out);
            return NULL;
        }
        snprintf(out[i], len, "%s=%s", env[i].name, val);
    }
    return out;
}
