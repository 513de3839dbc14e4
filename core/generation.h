/*
 * A config generation: one config, its module instances, its hook chain
 * and its TLS context. Sessions hold a reference to the generation they
 * started on; reload builds a new one and swaps the current pointer; the
 * old one is freed when its last session releases it (nginx's cycle).
 * The current pointer is the only global here; its lock is private to
 * generation.c.
 */
#ifndef MODMTA_CORE_GENERATION_H
#define MODMTA_CORE_GENERATION_H

#include <openssl/ssl.h>

#include "config.h"

struct chain;

typedef struct generation {
    unsigned long serial;
    struct config *cfg;
    struct chain *chain;
    SSL_CTX *tls;        /* NULL when no certificate is configured */
    struct modmta_host *host; /* the core's own host (hostname, domains) */
    int refs;            /* under generation.c's lock */
} generation;

/* Build a generation from a config file (NULL: the embedded default).
 * On failure return NULL with every error in errs. */
generation *generation_build(const char *path, int is_root,
                             struct config_errors *errs);
/* The same from a loaded config, whose ownership passes to the result
 * (freed on failure too). */
generation *generation_from_config(struct config *cfg, int is_root,
                                   struct config_errors *errs);
/* Make g current (takes over the caller's reference). */
void generation_install(generation *g);
/* The current generation with one more reference; NULL before install. */
generation *generation_acquire(void);
/* One more reference on g, which the caller holds one of. */
void generation_ref(generation *g);
void generation_release(generation *g);

#endif
