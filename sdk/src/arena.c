/*
 * Arenas: memory tied to a transaction or a session (nginx pools). One
 * free releases everything; allocations are 16-byte aligned.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctx_priv.h"

#define ARENA_CHUNK 4096

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char mem[];
};

struct modmta_arena {
    struct arena_chunk *head;
};

struct modmta_arena *
modmta_arena_new(void)
{
    return calloc(1, sizeof(struct modmta_arena));
}

void *
modmta_arena_alloc(struct modmta_arena *a, size_t n)
{
    struct arena_chunk *c;
    size_t need, cap;

    if (a == NULL || n > SIZE_MAX / 2)
        return NULL;
    need = (n + 15) & ~(size_t)15;
    c = a->head;
    if (c == NULL || c->cap - c->used < need) {
        cap = need > ARENA_CHUNK ? need : ARENA_CHUNK;
        c = malloc(sizeof(*c) + cap);
        if (c == NULL)
            return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    c->used += need;
    return memset(c->mem + c->used - need, 0, n);
}

char *
modmta_arena_strdup(struct modmta_arena *a, const char *s)
{
    size_t n;
    char *p;

    if (s == NULL)
        return NULL;
    n = strlen(s) + 1;
    p = modmta_arena_alloc(a, n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

void
modmta_arena_free(struct modmta_arena *a)
{
    struct arena_chunk *c, *next;

    if (a == NULL)
        return;
    for (c = a->head; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    free(a);
}
