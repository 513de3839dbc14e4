/* One SDK in the process. This module, like any built against the
 * installed SDK, has DT_NEEDED libmodmta.so.1; loaded into modmta it
 * must bind to the program's SDK, never to a second copy of the library
 * with state of its own (map registry, log setup):
 *   - create() fails unless modmta_map_register, as this module calls
 *     it, lies in the main program and no libmodmta.so is mapped;
 *   - load() registers the map backend "onesdk:KEY=VALUE" (one entry),
 *     which another module or the core must then find.
 * create() logs "onesdk: modmta_map_register in the program" when it
 * succeeds, for a test to see. */
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <modmta/modmta.h>

/* Where an address lies among the loaded objects. */
struct onesdk_where {
    uintptr_t addr;
    long object;            /* its object's index (0: the program), -1 */
    char name[256];         /* that object's file name */
    char libmodmta[256];    /* a libmodmta.so* mapped, or "" */
    long index;
};

static int
onesdk_phdr(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct onesdk_where *w = arg;
    const char *base = strrchr(info->dlpi_name, '/');
    int i;

    base = base != NULL ? base + 1 : info->dlpi_name;
    if (strncmp(base, "libmodmta.so", 12) == 0)
        snprintf(w->libmodmta, sizeof(w->libmodmta), "%s", info->dlpi_name);
    for (i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *p = &info->dlpi_phdr[i];

        if (p->p_type == PT_LOAD &&
            w->addr - (info->dlpi_addr + p->p_vaddr) < p->p_memsz) {
            w->object = w->index;
            snprintf(w->name, sizeof(w->name), "%s",
                     w->index == 0 ? "the program" : info->dlpi_name);
        }
    }
    w->index++;
    return 0;
}

static void
onesdk_locate(const void *fn, struct onesdk_where *w)
{
    memset(w, 0, sizeof(*w));
    w->addr = (uintptr_t)fn;
    w->object = -1;
    snprintf(w->name, sizeof(w->name), "no object");
    dl_iterate_phdr(onesdk_phdr, w);
}

/* ---- the map backend "onesdk:KEY=VALUE" ---- */

static void *
onesdk_map_open(const char *arg, const char *json_path, modmta_err *err_r)
{
    if (strchr(arg, '=') == NULL) {
        modmta_err_set(err_r, json_path, "onesdk: expected KEY=VALUE");
        return NULL;
    }
    return strdup(arg);
}

static int
onesdk_map_lookup(void *state, const char *key, char **value_r)
{
    const char *entry = state, *eq = strchr(entry, '=');

    if (strlen(key) != (size_t)(eq - entry) ||
        strncasecmp(key, entry, eq - entry) != 0)
        return 0;
    if (value_r != NULL && (*value_r = strdup(eq + 1)) == NULL)
        return MODMTA_E_NOMEM;
    return 1;
}

static const modmta_map_backend onesdk_backend = {
    .type = "onesdk",
    .open = onesdk_map_open,
    .lookup = onesdk_map_lookup,
    .close = free,
};

/* A registry that has it already (a test loading twice) is fine. */
static int
onesdk_load(modmta_err *err_r)
{
    int rc = modmta_map_register(&onesdk_backend);

    if (rc < 0 && rc != MODMTA_E_INVAL) {
        modmta_err_set(err_r, NULL, "modmta_map_register: %s",
                       modmta_strerror(rc));
        return -1;
    }
    return 0;
}

static void *
onesdk_create(const json_t *conf, const modmta_host *host,
              modmta_err *err_r)
{
    struct onesdk_where w;

    onesdk_locate((const void *)modmta_map_register, &w);
    if (w.libmodmta[0] != '\0') {
        modmta_err_set(err_r, modmta_host_path(host), "%s is mapped: a "
                       "second copy of the SDK", w.libmodmta);
        return NULL;
    }
    if (w.object != 0) {
        modmta_err_set(err_r, modmta_host_path(host), "modmta_map_register "
                       "bound to %s, not to the program", w.name);
        return NULL;
    }
    modmta_log_host(host, MODMTA_LOG_INFO, "onesdk: modmta_map_register in "
                    "%s", w.name);
    return calloc(1, 1);
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "onesdk",
    .version = "1.0.0",
    .create = onesdk_create,
    .destroy = free,
    .load = onesdk_load,
};
