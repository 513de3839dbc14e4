/*
 * Every configuration error of an instance, kept on its host so the core
 * lists them all (modmta --check-config) rather than the first.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "conf_priv.h"
#include "ctx_priv.h"

struct conf_errors {
    modmta_err *v;
    size_t n, cap, dropped;
};

/* The host is the module's to read, the SDK's to write: its error list
 * is the one part create() adds to. */
static struct conf_errors *
conf_errors_of(const modmta_host *host)
{
    modmta_host *h = (modmta_host *)host;

    if (h->errors == NULL)
        h->errors = calloc(1, sizeof(*h->errors));
    return h->errors;
}

void
conf_error_record(const modmta_host *host, modmta_err *err_r,
                  const char *path, const char *msg)
{
    struct conf_errors *e;
    modmta_err *slot;

    if (path == NULL)
        path = host != NULL ? modmta_host_path(host) : "$";
    modmta_err_set(err_r, path, "%s", msg);
    if (host == NULL || (e = conf_errors_of(host)) == NULL)
        return;
    if (e->n == CONF_ERRORS_MAX) {
        e->dropped++;
        return;
    }
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 8;
        modmta_err *v = realloc(e->v, cap * sizeof(*v));
        if (v == NULL) {
            e->dropped++;
            return;
        }
        e->v = v;
        e->cap = cap;
    }
    slot = &e->v[e->n++];
    modmta_err_set(slot, path, "%s", msg);
}

int
modmta_conf_error(const modmta_host *host, modmta_err *err_r,
                  const char *path, const char *fmt, ...)
{
    char msg[sizeof(((modmta_err *)0)->msg)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    conf_error_record(host, err_r, path, msg);
    return MODMTA_E_CONFIG;
}

size_t
conf_errors_count(const modmta_host *host)
{
    return host != NULL && host->errors != NULL ? host->errors->n : 0;
}

const modmta_err *
conf_errors_get(const modmta_host *host, size_t i)
{
    return i < conf_errors_count(host) ? &host->errors->v[i] : NULL;
}

size_t
conf_errors_dropped(const modmta_host *host)
{
    return host != NULL && host->errors != NULL ? host->errors->dropped : 0;
}

void
conf_errors_free(struct conf_errors *e)
{
    if (e == NULL)
        return;
    free(e->v);
    free(e);
}
