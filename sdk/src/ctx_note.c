/*
 * Transaction notes (ABI 1.5, ctx.h): named strings and integers one
 * module sets and later ones read, kept in the transaction arena (RSET,
 * a new MAIL and the end of the transaction drop them with it) and in
 * the queue envelope (the core's commit writes them, a delivery ctx is
 * given them back with modmta_ctx_note_put).
 */
#include <string.h>

#include <jansson.h>

#include "ctx_priv.h"

/* Letters, digits and these: safe as a JSON key and in a log line. */
static const char ctx_note_punct[] = "_-.:";

int
modmta_ctx_note_check(const char *name, const char *str)
{
    size_t i, len;
    json_t *j;

    if (name == NULL || (len = strlen(name)) == 0 ||
        len > MODMTA_NOTE_NAME_MAX)
        return MODMTA_E_INVAL;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
            !(c >= '0' && c <= '9') && strchr(ctx_note_punct, c) == NULL)
            return MODMTA_E_INVAL;
    }
    if (str == NULL)
        return 0;
    if (strlen(str) > MODMTA_NOTE_VALUE_MAX)
        return MODMTA_E_INVAL;
    /* The envelope is JSON: a string its encoder refuses (not UTF-8)
     * would fail the commit later. */
    if ((j = json_string(str)) == NULL)
        return MODMTA_E_INVAL;
    json_decref(j);
    return 0;
}

static struct ctx_note *
ctx_note_find(const modmta_ctx *ctx, const char *name)
{
    for (size_t i = 0; i < ctx->nnotes; i++)
        if (strcmp(ctx->notes[i].name, name) == 0)
            return &ctx->notes[i];
    return NULL;
}

int
modmta_ctx_note_put(modmta_ctx *ctx, const char *name, const char *str,
                    long long num)
{
    struct ctx_note *n;
    char *copy = NULL;
    int rc;

    if ((rc = modmta_ctx_note_check(name, str)) < 0)
        return rc;
    if (str != NULL &&
        (copy = modmta_arena_strdup(ctx->txn_arena, str)) == NULL)
        return MODMTA_E_NOMEM;
    if ((n = ctx_note_find(ctx, name)) == NULL) {
        if (ctx->nnotes == MODMTA_NOTES_MAX)
            return MODMTA_E_LIMIT;
        if (ctx->notes == NULL &&
            (ctx->notes = modmta_arena_alloc(ctx->txn_arena,
                                             MODMTA_NOTES_MAX *
                                             sizeof(*ctx->notes))) == NULL)
            return MODMTA_E_NOMEM;
        n = &ctx->notes[ctx->nnotes];
        if ((n->name = modmta_arena_strdup(ctx->txn_arena, name)) == NULL)
            return MODMTA_E_NOMEM;
        ctx->nnotes++;
    }
    /* A replaced string stays in the arena: a reader's pointer to it
     * remains valid. */
    n->str = copy;
    n->num = copy != NULL ? 0 : num;
    return 0;
}

/* Notes are written while the transaction is open, before the commit. */
static int
ctx_note_writable(const modmta_ctx *ctx)
{
    if (ctx == NULL)
        return MODMTA_E_INVAL;
    switch (ctx->phase) {
    case MODMTA_PHASE_MAIL:
    case MODMTA_PHASE_RCPT:
    case MODMTA_PHASE_DATA:
        return 0;
    default:
        return MODMTA_E_STATE;
    }
}

int
modmta_note_set_str(modmta_ctx *ctx, const char *name, const char *value)
{
    int rc = ctx_note_writable(ctx);

    if (rc < 0)
        return rc;
    if (value == NULL)
        return MODMTA_E_INVAL;
    return modmta_ctx_note_put(ctx, name, value, 0);
}

int
modmta_note_set_int(modmta_ctx *ctx, const char *name, long long value)
{
    int rc = ctx_note_writable(ctx);

    return rc < 0 ? rc : modmta_ctx_note_put(ctx, name, NULL, value);
}

/* The note called name: 1 (in *n_r), 0 if none, MODMTA_E_INVAL for a
 * bad argument. */
static int
ctx_note_get(const modmta_ctx *ctx, const char *name,
             const struct ctx_note **n_r)
{
    if (ctx == NULL || modmta_ctx_note_check(name, NULL) < 0)
        return MODMTA_E_INVAL;
    *n_r = ctx_note_find(ctx, name);
    return *n_r != NULL;
}

int
modmta_note_get_str(const modmta_ctx *ctx, const char *name,
                    const char **value_r)
{
    const struct ctx_note *n;
    int rc = ctx_note_get(ctx, name, &n);

    if (rc <= 0)
        return rc;
    if (n->str == NULL)
        return MODMTA_E_INVAL;
    if (value_r != NULL)
        *value_r = n->str;
    return 1;
}

int
modmta_note_get_int(const modmta_ctx *ctx, const char *name,
                    long long *value_r)
{
    const struct ctx_note *n;
    int rc = ctx_note_get(ctx, name, &n);

    if (rc <= 0)
        return rc;
    if (n->str != NULL)
        return MODMTA_E_INVAL;
    if (value_r != NULL)
        *value_r = n->num;
    return 1;
}
