/*
 * alias: local aliases, aliases(5). A recipient in a local domain whose
 * local part the map knows is rewritten into the alias's targets; the
 * core runs the chain again on each (nested aliases, loop and count
 * limits, duplicates removed are the core's work, see docs/sdk.md).
 * Unknown names fall through (CONTINUE) to the modules that claim real
 * users. "|command" and "/file" targets are refused: modmta has no pipe
 * or file transport (README.md).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <modmta/modmta.h>

/* Nesting of :include: files inside one expansion. */
#define ALIAS_INCLUDE_DEPTH 8
/* An include file larger than this is refused (a list, not a mailbox). */
#define ALIAS_INCLUDE_MAX (1024 * 1024)

struct alias_conf {
    modmta_map *map;
    int allow_commands;
    int allow_files;
};

struct alias {
    struct alias_conf c;
    const modmta_host *host;
    char *map_path; /* the map's file, NULL unless "aliases:" or "file:" */
};

/* One expansion in progress. */
struct alias_exp {
    const struct alias *a;
    modmta_ctx *ctx;
    const char *rcpt;   /* the recipient being expanded */
    const char *domain; /* its domain, "" when it has none */
    size_t ntargets;
};

static const modmta_opt alias_opts[] = {
    {"map", MODMTA_OPT_MAP, offsetof(struct alias_conf, map),
     MODMTA_OPT_REQUIRED},
    {"allow_commands", MODMTA_OPT_BOOL,
     offsetof(struct alias_conf, allow_commands), 0},
    {"allow_files", MODMTA_OPT_BOOL, offsetof(struct alias_conf, allow_files),
     0},
    {NULL, 0, 0, 0},
};

static int alias_items(struct alias_exp *e, char **items, const char *src,
                       int depth);

/* ---- create ---- */

/* A file from which "|cmd" and "/file" targets may be honoured: owned by
 * root and writable by nobody else (as sendmail demands of aliases). */
static int
alias_file_trusted(const char *path)
{
    struct stat st;

    return path != NULL && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
           st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

/* The file behind "aliases:PATH" or "file:PATH", else NULL. */
static char *
alias_map_path(const modmta_map *m)
{
    const char *name = modmta_map_name(m);

    if (strncmp(name, "aliases:", 8) == 0)
        return strdup(name + 8);
    if (strncmp(name, "file:", 5) == 0)
        return strdup(name + 5);
    return NULL;
}

static int
alias_check_trust(struct alias *a, modmta_err *err_r)
{
    char path[300];

    if (!a->c.allow_commands && !a->c.allow_files)
        return 0;
    snprintf(path, sizeof(path), "%s.%s", modmta_host_path(a->host),
             a->c.allow_commands ? "allow_commands" : "allow_files");
    if (a->map_path == NULL) {
        modmta_err_set(err_r, path, "only a map read from a file "
                       "(\"aliases:PATH\") may allow command or file "
                       "targets, not %s", modmta_map_name(a->c.map));
        return MODMTA_E_CONFIG;
    }
    if (!alias_file_trusted(a->map_path)) {
        modmta_err_set(err_r, path, "%s must be owned by root and not "
                       "writable by group or others to allow command or "
                       "file targets", a->map_path);
        return MODMTA_E_CONFIG;
    }
    return 0;
}

static void
alias_destroy(void *inst)
{
    struct alias *a = inst;

    if (a == NULL)
        return;
    modmta_conf_free(alias_opts, &a->c);
    free(a->map_path);
    free(a);
}

static void *
alias_create(const json_t *conf, const modmta_host *host, modmta_err *err_r)
{
    struct alias *a = calloc(1, sizeof(*a));

    if (a == NULL) {
        modmta_err_set(err_r, modmta_host_path(host), "out of memory");
        return NULL;
    }
    a->host = host;
    if (modmta_conf_parse(conf, host, alias_opts, &a->c, err_r) < 0) {
        free(a);
        return NULL;
    }
    a->map_path = alias_map_path(a->c.map);
    if (alias_check_trust(a, err_r) < 0) {
        alias_destroy(a);
        return NULL;
    }
    return a;
}

/* ---- expansion ---- */

static modmta_verdict
alias_tempfail(struct alias_exp *e, const char *what)
{
    modmta_log(e->ctx, MODMTA_LOG_WARN, "defer rcpt=<%s> map=%s "
               "error=\"%s\"", e->rcpt, modmta_map_name(e->a->c.map), what);
    modmta_reply(e->ctx, 451, "4.3.0", "<%s>: temporary alias lookup "
                 "failure", e->rcpt);
    return MODMTA_TEMPFAIL;
}

/* "|command" or "/file": there is no transport for them. */
static int
alias_special(struct alias_exp *e, const char *item, const char *src)
{
    int cmd = item[0] == '|';
    int allowed = cmd ? e->a->c.allow_commands : e->a->c.allow_files;
    const char *kind = cmd ? "command" : "file";

    if (!allowed || !alias_file_trusted(src)) {
        modmta_log(e->ctx, MODMTA_LOG_NOTICE, "reject rcpt=<%s> "
                   "reason=\"%s target not permitted\" source=%s", e->rcpt,
                   kind, src != NULL ? src : modmta_map_name(e->a->c.map));
        modmta_reply(e->ctx, 550, "5.7.1", "<%s>: delivery to a %s is not "
                     "permitted", e->rcpt, kind);
    } else {
        modmta_log(e->ctx, MODMTA_LOG_NOTICE, "reject rcpt=<%s> "
                   "reason=\"no %s transport\"", e->rcpt,
                   cmd ? "pipe" : "file");
        modmta_reply(e->ctx, 550, "5.7.1", "<%s>: delivery to a %s needs "
                     "a %s transport, which modmta does not have", e->rcpt,
                     kind, cmd ? "pipe" : "file");
    }
    return MODMTA_E_PERM;
}

/* An address target: "user" is qualified with the domain being expanded
 * ("\user" is a plain user, its backslash dropped). */
static int
alias_address(struct alias_exp *e, const char *item)
{
    modmta_addr addr;
    char buf[MODMTA_ADDR_PATH_MAX * 2];
    int rc;

    if (item[0] == '\\')
        item++;
    if (strchr(item, '@') == NULL && e->domain[0] != '\0')
        snprintf(buf, sizeof(buf), "%s@%s", item, e->domain);
    else
        snprintf(buf, sizeof(buf), "%s", item);
    if (modmta_addr_parse(buf, MODMTA_ADDR_NO_BRACKETS |
                          MODMTA_ADDR_ALLOW_NODOMAIN | MODMTA_ADDR_UTF8,
                          &addr, NULL) < 0 ||
        modmta_addr_format(&addr, buf, sizeof(buf)) < 0) {
        modmta_log(e->ctx, MODMTA_LOG_WARN, "rcpt=<%s> bad target "
                   "\"%s\" in %s", e->rcpt, item,
                   modmta_map_name(e->a->c.map));
        return MODMTA_E_CONFIG;
    }
    if ((rc = modmta_rcpt_rewrite(e->ctx, buf)) < 0)
        return rc;
    e->ntargets++;
    return 0;
}

/* The whole of an include file, NULL with errno set. */
static char *
alias_slurp(const char *path)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t n = 0;
    long len;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 &&
        len <= ALIAS_INCLUDE_MAX && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)len + 1)) != NULL) {
        n = fread(buf, 1, (size_t)len, f);
        buf[n] = '\0';
    } else if (errno == 0) {
        errno = EFBIG;
    }
    fclose(f);
    return buf;
}

/* An include file is a list like an alias's value, one or more items a
 * line; '#' starts a comment line. */
static void
alias_strip_comments(char *s)
{
    char *line = s, *p;

    while (*line != '\0') {
        p = line + strspn(line, " \t");
        if (*p == '#')
            while (*p != '\0' && *p != '\n')
                *p++ = ' ';
        line = strchr(line, '\n');
        if (line == NULL)
            break;
        line++;
    }
}

static int
alias_include(struct alias_exp *e, const char *path, int depth)
{
    modmta_err err = {"", ""};
    char **items, *text;
    int rc;

    if (depth >= ALIAS_INCLUDE_DEPTH) {
        modmta_log(e->ctx, MODMTA_LOG_WARN, "rcpt=<%s> include=%s: nested "
                   "too deep", e->rcpt, path);
        return MODMTA_E_CONFIG;
    }
    errno = 0;
    if (path[0] != '/' || (text = alias_slurp(path)) == NULL) {
        modmta_log(e->ctx, MODMTA_LOG_WARN, "rcpt=<%s> include=%s: %s",
                   e->rcpt, path, path[0] != '/' ? "not an absolute path"
                   : strerror(errno));
        return MODMTA_E_TEMP;
    }
    alias_strip_comments(text);
    items = modmta_map_list_split(text, &err);
    free(text);
    if (items == NULL) {
        modmta_log(e->ctx, MODMTA_LOG_WARN, "rcpt=<%s> include=%s: %s",
                   e->rcpt, path, err.msg);
        return MODMTA_E_CONFIG;
    }
    rc = alias_items(e, items, path, depth + 1);
    modmta_strlist_free(items);
    return rc;
}

/* Expand the items of a list found in src (a file path, NULL for a map
 * that is no file). */
static int
alias_items(struct alias_exp *e, char **items, const char *src, int depth)
{
    int rc = 0;
    size_t i;

    for (i = 0; items[i] != NULL && rc == 0; i++) {
        if (strncmp(items[i], ":include:", 9) == 0)
            rc = alias_include(e, items[i] + 9, depth);
        else if (items[i][0] == '|' || items[i][0] == '/')
            rc = alias_special(e, items[i], src);
        else
            rc = alias_address(e, items[i]);
    }
    return rc;
}

static modmta_verdict
alias_expand(struct alias_exp *e, const char *value)
{
    modmta_err err = {"", ""};
    char **items = modmta_map_list_split(value, &err);
    int rc;

    if (items == NULL)
        return alias_tempfail(e, err.msg);
    rc = alias_items(e, items, e->a->map_path, 0);
    modmta_strlist_free(items);
    if (rc == MODMTA_E_PERM)
        return MODMTA_REJECT;
    if (rc < 0)
        return alias_tempfail(e, "cannot expand");
    if (e->ntargets == 0) {
        modmta_reply(e->ctx, 550, "5.1.1", "<%s>: alias has no "
                     "recipients", e->rcpt);
        return MODMTA_REJECT;
    }
    modmta_log(e->ctx, MODMTA_LOG_INFO, "expand rcpt=<%s> targets=%zu",
               e->rcpt, e->ntargets);
    return MODMTA_ACCEPT;
}

static modmta_verdict
alias_on_rcpt(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    struct alias *a = inst;
    struct alias_exp e = {a, ctx, rcpt, "", 0};
    modmta_addr addr;
    char *value = NULL;
    modmta_verdict v;
    int r;

    if (modmta_addr_parse(rcpt, MODMTA_ADDR_NO_BRACKETS |
                          MODMTA_ADDR_ALLOW_NODOMAIN | MODMTA_ADDR_UTF8,
                          &addr, NULL) < 0)
        return MODMTA_CONTINUE;
    if (addr.domain[0] != '\0' &&
        !modmta_host_is_local_domain(a->host, addr.domain))
        return MODMTA_CONTINUE;
    e.domain = addr.domain;
    r = modmta_map_lookup(a->c.map, addr.local, &value);
    if (r < 0)
        return alias_tempfail(&e, modmta_strerror(r));
    if (r == 0)
        return MODMTA_CONTINUE;
    v = alias_expand(&e, value);
    modmta_free(value);
    return v;
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "alias",
    .version = "1.0.0",
    .caps = MODMTA_CAP_REWRITE,
    .create = alias_create,
    .destroy = alias_destroy,
    .on_rcpt = alias_on_rcpt,
};
