/*
 * The module loader (see modload.h). The checks before dlopen follow
 * Postfix's dynamicmaps.c (refuse a file others could have written); the
 * checks after follow nginx's ngx_add_module() (version, signature).
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "modload.h"

#define MODLOAD_NAME_MAX 64

/* ABI 1.0's descriptor ends with unload: every module has at least that. */
#define MODLOAD_MIN_SIZE                                                   \
    (offsetof(modmta_module, unload) + sizeof(((modmta_module *)0)->unload))

struct modload_entry {
    char *path;           /* realpath of the .so: the cache key */
    char *dir;            /* the module_path entry it was found through */
    modmta_module desc;   /* the module's descriptor, fields past size 0;
                           * desc.verbs is built from desc.commands (ABI
                           * 1.6) when the module has them */
    int loaded;           /* load() has run and unload() has not */
};

/* Owned by this file: guards the table and every load()/unload() call. */
static pthread_mutex_t modload_lock = PTHREAD_MUTEX_INITIALIZER;
static struct modload_entry **modload_table;
static size_t modload_n, modload_cap;

static char *const modload_default_path[] = { MODMTA_MODULEDIR, NULL };

static int modload_name_ok(const char *name);
static int modload_find(char *const *dirs, const char *name, char *path_r,
                        size_t *dir_r, const char *jpath,
                        struct config_errors *errs);
static struct modload_entry *modload_lookup_named(char *const *dirs,
                                                  const char *name);
static void modload_not_found(char *const *dirs, const char *name,
                              const char *jpath, struct config_errors *errs);
static int modload_check_file(const char *path, const char *jpath,
                              struct config_errors *errs);
static const modmta_module *modload_open(const char *path, const char *name,
                                         const char *jpath,
                                         struct config_errors *errs);
static void modload_dlopen_failed(const char *path, const char *name,
                                  const char *jpath,
                                  struct config_errors *errs);
static int modload_check_desc(const modmta_module *d, const char *path,
                              const char *name, const char *jpath,
                              struct config_errors *errs);
static struct modload_entry *modload_lookup(const char *path);
static struct modload_entry *modload_insert(const char *path,
                                            const char *dir,
                                            const modmta_module *d);
static int modload_run_load(struct modload_entry *e, const char *jpath,
                            struct config_errors *errs);

const modmta_module *
modload_load(char *const *module_path, const char *name, const char *jpath,
             struct config_errors *errs)
{
    char found[PATH_MAX], real[PATH_MAX];
    struct modload_entry *e;
    const modmta_module *d;
    size_t dir;

    if (!modload_name_ok(name)) {
        config_errors_add(errs, jpath, "invalid module name \"%s\" (expected "
                          "1 to %d characters a-z, 0-9, _)", name,
                          MODLOAD_NAME_MAX);
        return NULL;
    }
    if (module_path == NULL || module_path[0] == NULL)
        module_path = modload_default_path;
    /* Loaded before, through the same directory: no file access at all.
     * This is how the daemon, having loaded its modules as root, builds
     * generations after the privilege drop even where the module files
     * are out of its user's reach (a build tree under /root). */
    pthread_mutex_lock(&modload_lock);
    e = modload_lookup_named(module_path, name);
    if (e != NULL && modload_run_load(e, jpath, errs) < 0)
        e = NULL;
    pthread_mutex_unlock(&modload_lock);
    if (e != NULL)
        return &e->desc;
    if (modload_find(module_path, name, found, &dir, jpath, errs) < 0)
        return NULL;
    if (realpath(found, real) == NULL) {
        config_errors_add(errs, jpath, "%s: %s", found, strerror(errno));
        return NULL;
    }

    pthread_mutex_lock(&modload_lock);
    e = modload_lookup(real);
    if (e == NULL) {
        d = NULL;
        if (modload_check_file(real, jpath, errs) == 0)
            d = modload_open(real, name, jpath, errs);
        if (d != NULL &&
            (e = modload_insert(real, module_path[dir], d)) == NULL)
            config_errors_add(errs, jpath, "%s: out of memory", real);
    } else if (strcmp(e->desc.name, name) != 0) {
        /* Same file under another name, e.g. through a symlink. */
        config_errors_add(errs, jpath, "%s: descriptor name \"%s\" does not "
                          "match module name \"%s\"", real, e->desc.name,
                          name);
        e = NULL;
    }
    if (e != NULL && modload_run_load(e, jpath, errs) < 0)
        e = NULL;
    pthread_mutex_unlock(&modload_lock);
    return e != NULL ? &e->desc : NULL;
}

size_t
modload_preload(const struct config *cfg, struct config_errors *errs)
{
    size_t i, before = errs->n;
    const json_t *m, *name;
    char jpath[64];

    json_array_foreach(cfg->modules, i, m) {
        name = json_object_get(m, "module");
        if (!json_is_string(name))
            continue;
        snprintf(jpath, sizeof(jpath), "$.modules[%zu].module", i);
        modload_load(cfg->module_path, json_string_value(name), jpath, errs);
    }
    return errs->n - before;
}

void
modload_unload_all(void)
{
    size_t i;

    pthread_mutex_lock(&modload_lock);
    for (i = modload_n; i > 0; i--) {
        struct modload_entry *e = modload_table[i - 1];

        if (e->loaded && e->desc.unload != NULL)
            e->desc.unload();
        e->loaded = 0;
    }
    pthread_mutex_unlock(&modload_lock);
}

static int
modload_name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > MODLOAD_NAME_MAX)
        return 0;
    return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

/* First DIR/NAME.so or DIR/NAME/NAME.so that exists, in module_path
 * order. A file that exists but cannot be examined is an error, not a
 * reason to look further. */
static int
modload_find(char *const *dirs, const char *name, char *path_r,
             size_t *dir_r, const char *jpath, struct config_errors *errs)
{
    struct stat st;
    size_t i;
    int j, n;

    for (i = 0; dirs[i] != NULL; i++) {
        for (j = 0; j < 2; j++) {
            if (j == 0)
                n = snprintf(path_r, PATH_MAX, "%s/%s.so", dirs[i], name);
            else
                n = snprintf(path_r, PATH_MAX, "%s/%s/%s.so", dirs[i], name,
                             name);
            if (n < 0 || n >= PATH_MAX)
                continue;
            if (stat(path_r, &st) == 0) {
                *dir_r = i;
                return 0;
            }
            if (errno != ENOENT && errno != ENOTDIR) {
                config_errors_add(errs, jpath, "%s: %s", path_r,
                                  strerror(errno));
                return -1;
            }
        }
    }
    modload_not_found(dirs, name, jpath, errs);
    return -1;
}

static void
modload_not_found(char *const *dirs, const char *name, const char *jpath,
                  struct config_errors *errs)
{
    char *list = NULL;
    size_t len = 0, i;
    FILE *f = open_memstream(&list, &len);

    for (i = 0; f != NULL && dirs[i] != NULL; i++)
        fprintf(f, "%s%s", i > 0 ? ", " : "", dirs[i]);
    if (f != NULL)
        fclose(f);
    config_errors_add(errs, jpath, "module \"%s\" not found in module_path "
                      "(%s)", name, list != NULL ? list : "?");
    free(list);
}

/* Refuse what another user could have written: the file itself, or a
 * world-writable directory without the sticky bit where it can be
 * replaced. */
static int
modload_check_file(const char *path, const char *jpath,
                   struct config_errors *errs)
{
    char dir[PATH_MAX];
    struct stat st;
    char *slash;

    if (stat(path, &st) < 0) {
        config_errors_add(errs, jpath, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        config_errors_add(errs, jpath, "%s: refused: not a regular file",
                          path);
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        config_errors_add(errs, jpath, "%s: refused: %s-writable", path,
                          (st.st_mode & S_IWOTH) ? "world" : "group");
        return -1;
    }
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        config_errors_add(errs, jpath, "%s: refused: owned by uid %lu, "
                          "neither root nor uid %lu", path,
                          (unsigned long)st.st_uid,
                          (unsigned long)geteuid());
        return -1;
    }
    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (slash == NULL)
        return 0;
    *(slash == dir ? slash + 1 : slash) = '\0';
    if (stat(dir, &st) == 0 && (st.st_mode & S_IWOTH) &&
        !(st.st_mode & S_ISVTX)) {
        config_errors_add(errs, jpath, "%s: refused: directory %s is "
                          "world-writable", path, dir);
        return -1;
    }
    return 0;
}

/* dlopen and check; the handle is never closed, even on failure, since
 * the module's constructors have run. */
static const modmta_module *
modload_open(const char *path, const char *name, const char *jpath,
             struct config_errors *errs)
{
    const modmta_module *d;
    void *h;

    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        modload_dlopen_failed(path, name, jpath, errs);
        return NULL;
    }
    dlerror();
    d = dlsym(h, MODMTA_DESCRIPTOR_SYMBOL);
    if (d == NULL) {
        config_errors_add(errs, jpath, "%s: no symbol %s: not a modmta "
                          "module", path, MODMTA_DESCRIPTOR_SYMBOL);
        return NULL;
    }
    if (modload_check_desc(d, path, name, jpath, errs) < 0)
        return NULL;
    return d;
}

/* dlopen's reason, and what it means when the module wants a modmta_
 * function this daemon does not export: a private one of libmodmta
 * (only the installed headers' functions are the ABI), or one of a
 * newer ABI ("version `MODMTA_1.9' not found"). */
static void
modload_dlopen_failed(const char *path, const char *name, const char *jpath,
                      struct config_errors *errs)
{
    static const char undefined[] = "undefined symbol: modmta_";
    const char *why = dlerror();
    char hint[160] = "";

    if (why == NULL)
        why = "unknown error";
    if (strstr(why, undefined) != NULL)
        snprintf(hint, sizeof(hint), " (not in the ABI %d.%d this modmta "
                 "exports: a module may call only the functions of "
                 "<modmta/*.h>)", MODMTA_ABI_MAJOR, MODMTA_ABI_MINOR);
    else if (strstr(why, "version `MODMTA_") != NULL)
        snprintf(hint, sizeof(hint), " (built against a newer libmodmta: "
                 "this modmta has ABI %d.%d)", MODMTA_ABI_MAJOR,
                 MODMTA_ABI_MINOR);
    config_errors_add(errs, jpath, "%s: module \"%s\" cannot be loaded: "
                      "%s%s", path, name, why, hint);
}

static int
modload_check_desc(const modmta_module *d, const char *path,
                   const char *name, const char *jpath,
                   struct config_errors *errs)
{
    unsigned major = MODMTA_ABI_GET_MAJOR(d->abi);
    unsigned minor = MODMTA_ABI_GET_MINOR(d->abi);

    if (major != MODMTA_ABI_MAJOR || minor > MODMTA_ABI_MINOR) {
        config_errors_add(errs, jpath, "%s: module \"%s\" has ABI %u.%u, "
                          "this modmta has ABI %d.%d (%s)", path, name,
                          major, minor, MODMTA_ABI_MAJOR, MODMTA_ABI_MINOR,
                          major != MODMTA_ABI_MAJOR
                              ? "major versions differ: rebuild the module"
                              : "the module is newer than modmta");
        return -1;
    }
    if (d->sig != MODMTA_BUILD_SIG) {
        config_errors_add(errs, jpath, "%s: module \"%s\" is not binary "
                          "compatible (build signature 0x%08lx, expected "
                          "0x%08lx)", path, name, (unsigned long)d->sig,
                          (unsigned long)MODMTA_BUILD_SIG);
        return -1;
    }
    if (d->size < MODLOAD_MIN_SIZE) {
        config_errors_add(errs, jpath, "%s: module \"%s\": descriptor size "
                          "%lu is smaller than ABI %d.0's %zu", path, name,
                          (unsigned long)d->size, MODMTA_ABI_MAJOR,
                          MODLOAD_MIN_SIZE);
        return -1;
    }
    if (d->name == NULL || strcmp(d->name, name) != 0) {
        config_errors_add(errs, jpath, "%s: descriptor name \"%s\" does not "
                          "match module name \"%s\"", path,
                          d->name != NULL ? d->name : "(null)", name);
        return -1;
    }
    if (d->create == NULL) {
        config_errors_add(errs, jpath, "%s: module \"%s\" has no create()",
                          path, name);
        return -1;
    }
    /* A transport claims with route() what it delivers in deliver_msg():
     * one without the other would claim and never deliver, or never be
     * asked. (Read only when the descriptor is that long.) */
    if (d->size >= offsetof(modmta_module, deliver_msg) +
                       sizeof(d->deliver_msg) &&
        (d->route == NULL) != (d->deliver_msg == NULL)) {
        config_errors_add(errs, jpath, "%s: module \"%s\" has %s() without "
                          "%s()", path, name,
                          d->route != NULL ? "route" : "deliver_msg",
                          d->route != NULL ? "deliver_msg" : "route");
        return -1;
    }
    return 0;
}

/* The entry for name found through the first directory of dirs that
 * has one (lock held). */
static struct modload_entry *
modload_lookup_named(char *const *dirs, const char *name)
{
    size_t i, j;

    for (i = 0; dirs[i] != NULL; i++)
        for (j = 0; j < modload_n; j++)
            if (strcmp(modload_table[j]->desc.name, name) == 0 &&
                strcmp(modload_table[j]->dir, dirs[i]) == 0)
                return modload_table[j];
    return NULL;
}

static struct modload_entry *
modload_lookup(const char *path)
{
    size_t i;

    for (i = 0; i < modload_n; i++)
        if (strcmp(modload_table[i]->path, path) == 0)
            return modload_table[i];
    return NULL;
}

/* The sized command table (ABI 1.6) as the 1.0 verb table the chain
 * reads: an entry from a newer SDK is longer, its stride its size. NULL
 * if out of memory. */
static modmta_verb *
modload_verbs_of(const modmta_command *c)
{
    const modmta_command *p;
    modmta_verb *v;
    size_t n = 0, i = 0;

    for (p = c; p->size != 0 && p->name != NULL;
         p = (const modmta_command *)((const char *)p + p->size))
        n++;
    if ((v = calloc(n + 1, sizeof(*v))) == NULL)
        return NULL;
    for (p = c; i < n;
         p = (const modmta_command *)((const char *)p + p->size), i++) {
        v[i].name = p->name;
        v[i].handler = p->size >= offsetof(modmta_command, handler) +
                                      sizeof(p->handler)
                           ? p->handler
                           : NULL;
    }
    return v;
}

/* Entries are never freed: descriptors handed out stay valid for the
 * process's life, as the modules stay mapped. */
static struct modload_entry *
modload_insert(const char *path, const char *dir, const modmta_module *d)
{
    struct modload_entry *e;
    size_t n = d->size < sizeof(*d) ? d->size : sizeof(*d);

    if (modload_n == modload_cap) {
        size_t cap = modload_cap ? modload_cap * 2 : 8;
        struct modload_entry **t;

        t = realloc(modload_table, cap * sizeof(*t));
        if (t == NULL)
            return NULL;
        modload_table = t;
        modload_cap = cap;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL || (e->path = strdup(path)) == NULL ||
        (e->dir = strdup(dir)) == NULL) {
        if (e != NULL)
            free(e->path);
        free(e);
        return NULL;
    }
    /* Fields the module does not know about (past its size) stay 0. */
    memcpy(&e->desc, d, n);
    if (e->desc.commands != NULL &&
        (e->desc.verbs = modload_verbs_of(e->desc.commands)) == NULL) {
        free(e->dir);
        free(e->path);
        free(e);
        return NULL;
    }
    modload_table[modload_n++] = e;
    return e;
}

static int
modload_run_load(struct modload_entry *e, const char *jpath,
                 struct config_errors *errs)
{
    modmta_err err;

    if (e->loaded)
        return 0;
    if (e->desc.load != NULL) {
        memset(&err, 0, sizeof(err));
        if (e->desc.load(&err) != 0) {
            config_errors_add(errs, jpath, "%s: module \"%s\": load() "
                              "failed: %s", e->path, e->desc.name,
                              err.msg[0] ? err.msg : "no reason given");
            return -1;
        }
    }
    e->loaded = 1;
    return 0;
}
