/*
 * The ABI 1.0 option table (modmta_opt): converted to a sized table and
 * run through the one parser (conf.c).
 */
#include <stdlib.h>

#include <modmta/conf.h>

#include "conf_priv.h"

/* A malloc'ed modmta_option copy of opts, or NULL (out of memory). */
static modmta_option *
conf_compat_table(const modmta_opt *opts)
{
    size_t n = 0, i;
    modmta_option *t;

    while (opts[n].key != NULL)
        n++;
    if ((t = calloc(n + 1, sizeof(*t))) == NULL)
        return NULL;
    for (i = 0; i <= n; i++) {
        t[i].size = sizeof(*t);
        t[i].key = opts[i].key;
        t[i].offset = opts[i].offset;
        t[i].flags = opts[i].flags & MODMTA_OPT_REQUIRED;
        /* Types past JSON need a sized entry's bounds or names. */
        t[i].type = opts[i].type <= MODMTA_OPT_JSON ? opts[i].type
                                                    : (modmta_opt_type)0;
    }
    return t;
}

int
modmta_conf_parse(const json_t *conf, const modmta_host *host,
                  const modmta_opt *opts, void *out, modmta_err *err_r)
{
    modmta_option *t = conf_compat_table(opts);
    int rc;

    if (t == NULL)
        return modmta_conf_error(host, err_r, NULL, "out of memory");
    rc = modmta_conf_parse_options(conf, host, t, out, err_r);
    free(t);
    return rc;
}

void
modmta_conf_free(const modmta_opt *opts, void *out)
{
    modmta_option one[2] = {{0}, MODMTA_OPTION_END};

    if (opts == NULL || out == NULL)
        return;
    for (; opts->key != NULL; opts++) {
        one[0] = (modmta_option){sizeof(one[0]), opts->key, opts->type,
                                 opts->offset, 0, 0, 0, NULL};
        modmta_conf_free_options(one, out);
    }
}
