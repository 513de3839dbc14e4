/*
 * Config generations (nginx's cycle): built whole or not at all, swapped
 * in under gen_lock, freed by whoever drops the last reference. gen_lock
 * guards gen_current and every generation's refs; nothing else.
 */
#include <pthread.h>
#include <stdlib.h>

#include <modmta/log.h>

#include "ctx_priv.h"
#include "chain.h"
#include "generation.h"
#include "tls.h"

static pthread_mutex_t gen_lock = PTHREAD_MUTEX_INITIALIZER;
static generation *gen_current;
static unsigned long gen_serial;

static void
generation_free(generation *g)
{
    if (g == NULL)
        return;
    chain_free(g->chain);
    if (g->tls != NULL)
        SSL_CTX_free(g->tls);
    modmta_host_free(g->host);
    config_free(g->cfg);
    free(g);
}

generation *
generation_from_config(struct config *cfg, int is_root,
                       struct config_errors *errs)
{
    generation *g;
    size_t nerr = errs->n;

    g = calloc(1, sizeof(*g));
    if (g == NULL) {
        config_free(cfg);
        config_errors_add(errs, "$", "out of memory");
        return NULL;
    }
    g->cfg = cfg;
    g->refs = 1;
    g->host = modmta_host_new("core", "$", cfg->hostname, cfg->spool,
                              cfg->local_domains, is_root);
    if (g->host == NULL || modmta_host_set_recipient_delimiter(
                              g->host, cfg->recipient_delimiter) < 0)
        config_errors_add(errs, "$", "out of memory");
    if (cfg->tls.cert != NULL)
        g->tls = tls_ctx_new(&cfg->tls, errs);
    g->chain = chain_build(cfg, is_root, errs);
    if (errs->n > nerr || g->chain == NULL || g->host == NULL) {
        if (errs->n == nerr)
            config_errors_add(errs, "$.modules", "cannot build the chain");
        generation_free(g);
        return NULL;
    }
    pthread_mutex_lock(&gen_lock);
    g->serial = ++gen_serial;
    pthread_mutex_unlock(&gen_lock);
    return g;
}

generation *
generation_build(const char *path, int is_root, struct config_errors *errs)
{
    struct config *cfg = config_load(path, errs);

    if (cfg == NULL)
        return NULL;
    return generation_from_config(cfg, is_root, errs);
}

void
generation_install(generation *g)
{
    generation *old;

    pthread_mutex_lock(&gen_lock);
    old = gen_current;
    gen_current = g;
    pthread_mutex_unlock(&gen_lock);
    modmta_logf(MODMTA_LOG_INFO, "generation=%lu config=%s installed",
                g->serial, g->cfg->path);
    if (old != NULL)
        generation_release(old);
}

generation *
generation_acquire(void)
{
    generation *g;

    pthread_mutex_lock(&gen_lock);
    g = gen_current;
    if (g != NULL)
        g->refs++;
    pthread_mutex_unlock(&gen_lock);
    return g;
}

void
generation_ref(generation *g)
{
    pthread_mutex_lock(&gen_lock);
    g->refs++;
    pthread_mutex_unlock(&gen_lock);
}

void
generation_release(generation *g)
{
    int last;

    if (g == NULL)
        return;
    pthread_mutex_lock(&gen_lock);
    last = --g->refs == 0;
    pthread_mutex_unlock(&gen_lock);
    if (last) {
        modmta_logf(MODMTA_LOG_DEBUG, "generation=%lu freed", g->serial);
        generation_free(g);
    }
}
