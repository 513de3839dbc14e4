/*
 * alias: local aliases, aliases(5). A recipient in a local domain whose
 * local part the map knows is rewritten into the alias's targets; the
 * core runs the chain again on each (nested aliases, loop and count
 * limits, duplicates removed are the core's work, see docs/sdk.md).
 * Unknown names fall through (CONTINUE) to the modules that claim real
 * users. A "|command" target from a trusted file, allowed, goes to
 * deliver_pipe (pipe_alias.h); "/file" targets are refused: modmta has
 * no file transport (README.md). A map whose values anyone who can reach
 * a shared store may write (redis:) may name addresses only: any other
 * target defers the recipient (alias_shared_check).
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <modmta/modmta.h>

#include "pipe_alias.h"

/* Nesting of :include: files inside one expansion. */
#define ALIAS_INCLUDE_DEPTH 8
/* An include file larger than this is refused (a list, not a mailbox). */
#define ALIAS_INCLUDE_MAX (1024 * 1024)

struct alias_conf {
    modmta_map *map;
    int allow_commands;
    int allow_files;
    int propagate_extension;
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
    /* Found without its extension: the delimiter and the extension,
     * given on to local targets ("" when found as is). */
    char delim;
    char ext[MODMTA_ADDR_LOCAL_MAX * 2 + 1];
    size_t base_len; /* the local part's length without them */
};

static const modmta_option alias_opts[] = {
    MODMTA_OPTION_MAP("map", struct alias_conf, map, MODMTA_OPT_REQUIRED),
    MODMTA_OPTION_BOOL("allow_commands", struct alias_conf, allow_commands, 0),
    MODMTA_OPTION_BOOL("allow_files", struct alias_conf, allow_files, 0),
    MODMTA_OPTION_BOOL("propagate_extension", struct alias_conf,
                       propagate_extension, 0),
    MODMTA_OPTION_END
};

static int alias_items(struct alias_exp *e, char **items, const char *src,
                       int trusted, int depth);

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
    modmta_conf_free_options(alias_opts, &a->c);
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
    /* Postfix's propagate_unmatched_extensions leaves alias out by default */
    a->c.propagate_extension = 0;
    if (modmta_conf_parse_options(conf, host, alias_opts, &a->c, err_r) < 0) {
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

/* "|command" from a trusted source, allowed: handed to deliver_pipe
 * (its "alias_commands") as a recipient of its own and a note holding
 * the command line (pipe_alias.h). */
static int
alias_command(struct alias_exp *e, const char *cmd)
{
    char addr[64], note[64];
    int rc;

    cmd += strspn(cmd, " \t");
    if (*cmd == '\0' || strlen(cmd) > MODMTA_NOTE_VALUE_MAX) {
        modmta_log(e->ctx, MODMTA_LOG_WARN, "rcpt=<%s> bad command target "
                   "in %s: empty or over %d octets", e->rcpt,
                   modmta_map_name(e->a->c.map), MODMTA_NOTE_VALUE_MAX);
        return MODMTA_E_CONFIG;
    }
    pipe_alias_names(cmd, addr, note);
    if ((rc = modmta_note_set_str(e->ctx, note, cmd)) < 0 ||
        (rc = modmta_rcpt_rewrite(e->ctx, addr)) < 0)
        return rc;
    e->ntargets++;
    return 0;
}

/* "|command" or "/file": a command goes to deliver_pipe when allowed
 * and trusted; there is no file transport. */
static int
alias_special(struct alias_exp *e, const char *item, const char *src,
              int trusted)
{
    int cmd = item[0] == '|';
    int allowed = cmd ? e->a->c.allow_commands : e->a->c.allow_files;
    const char *kind = cmd ? "command" : "file";

    if (cmd && allowed && trusted)
        return alias_command(e, item + 1);
    if (!allowed || !trusted) {
        modmta_log(e->ctx, MODMTA_LOG_NOTICE, "reject rcpt=<%s> "
                   "reason=\"%s target not permitted\" source=%s", e->rcpt,
                   kind, src != NULL ? src : modmta_map_name(e->a->c.map));
        modmta_reply(e->ctx, 550, "5.7.1", "<%s>: delivery to a %s is not "
                     "permitted", e->rcpt, kind);
    } else {
        modmta_log(e->ctx, MODMTA_LOG_NOTICE, "reject rcpt=<%s> "
                   "reason=\"no file transport\"", e->rcpt);
        modmta_reply(e->ctx, 550, "5.7.1", "<%s>: delivery to a file needs "
                     "a file transport, which modmta does not have",
                     e->rcpt);
    }
    return MODMTA_E_PERM;
}

/* The whole of s as one address: a parse that stops early ("john
 * smith@x" read as "john") is an error, not a shorter address. */
static int
alias_parse(const char *s, modmta_addr *addr)
{
    const char *end = NULL;
    int rc = modmta_addr_parse(s, MODMTA_ADDR_NO_BRACKETS |
                               MODMTA_ADDR_ALLOW_NODOMAIN | MODMTA_ADDR_UTF8,
                               addr, &end);

    return rc == 0 && *end != '\0' ? MODMTA_E_INVAL : rc;
}

/* "user+ext" found as "user": a local target "bob" becomes "bob+ext"
 * (Postfix's propagate_unmatched_extensions), unless it has an
 * extension of its own or the extension a routing character ('%', '!',
 * '@'), which must not turn a target into a relay path. */
static int
alias_target_extension(const struct alias_exp *e, modmta_addr *addr)
{
    const char *delims = modmta_host_recipient_delimiter(e->a->host);
    size_t n = strlen(addr->local);

    if (e->ext[0] == '\0' || !e->a->c.propagate_extension ||
        strpbrk(e->ext, "%!@") != NULL ||
        (addr->domain[0] != '\0' &&
         !modmta_host_is_local_domain(e->a->host, addr->domain)) ||
        strpbrk(addr->local, delims) != NULL)
        return 0;
    if (n + 1 + strlen(e->ext) > MODMTA_ADDR_LOCAL_MAX)
        return MODMTA_E_LIMIT;
    snprintf(addr->local + n, sizeof(addr->local) - n, "%c%s", e->delim,
             e->ext);
    return 0;
}

/* item as a canonical address into buf: "user" is qualified with the
 * domain being expanded; a domain-less local part holding an '@'
 * ("\"x@evil.test\"") is refused, as later splits would see a domain. */
static int
alias_target(struct alias_exp *e, const char *item, char *buf, size_t len)
{
    modmta_addr addr;
    int rc = alias_parse(item, &addr);

    if (rc == 0 && addr.domain[0] == '\0' &&
        strchr(addr.local, '@') != NULL)
        rc = MODMTA_E_INVAL;
    if (rc == 0 && addr.domain[0] == '\0' && e->domain[0] != '\0') {
        rc = modmta_addr_format(&addr, buf, len);
        if (rc >= 0 && (size_t)snprintf(buf + rc, len - (size_t)rc, "@%s",
                                        e->domain) >= len - (size_t)rc)
            rc = MODMTA_E_LIMIT;
        if (rc >= 0)
            rc = alias_parse(buf, &addr);
    }
    if (rc >= 0)
        rc = alias_target_extension(e, &addr);
    if (rc >= 0)
        rc = modmta_addr_format(&addr, buf, len);
    return rc < 0 ? rc : 0;
}

/* An address target ("\user" is a plain user, its backslash dropped). */
static int
alias_address(struct alias_exp *e, const char *item)
{
    char buf[MODMTA_ADDR_PATH_MAX * 2];
    int rc;

    if (item[0] == '\\')
        item++;
    if (alias_target(e, item, buf, sizeof(buf)) < 0) {
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

/* 1 if an include file may hold more than addresses (Sendmail's rule):
 * owned by root or the daemon's user, writable by its owner only. */
static int
alias_include_trusted(const struct stat *st)
{
    return (st->st_uid == 0 || st->st_uid == geteuid()) &&
           (st->st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

/* The null device: an empty include, as /dev/null reads. */
static int
alias_is_dev_null(const struct stat *st)
{
    return S_ISCHR(st->st_mode) && st->st_rdev == makedev(1, 3);
}

/* Read all of fd, at most ALIAS_INCLUDE_MAX octets, NUL-terminated; NULL
 * with err_r's message "PATH: why". */
static char *
alias_read_fd(int fd, const char *path, modmta_err *err_r)
{
    const size_t max = ALIAS_INCLUDE_MAX;
    char *text = malloc(max + 1), *fit;
    size_t got = 0;
    ssize_t n = 0;

    if (text == NULL) {
        modmta_err_set(err_r, NULL, "%s: out of memory", path);
        return NULL;
    }
    while (got <= max && (n = read(fd, text + got, max + 1 - got)) > 0)
        got += (size_t)n;
    if (n < 0)
        modmta_err_set(err_r, NULL, "%s: %s", path, strerror(errno));
    else if (got > max)
        modmta_err_set(err_r, NULL, "%s: larger than %d octets", path,
                       ALIAS_INCLUDE_MAX);
    else {
        text[got] = '\0';
        fit = realloc(text, got + 1); /* a list is short, the cap is not */
        return fit != NULL ? fit : text;
    }
    free(text);
    return NULL;
}

/* The whole of an include file, with its trust in *trusted_r; NULL with
 * err_r's message "PATH: why". Opened without blocking (a FIFO would
 * hang the session), a regular file (or /dev/null, an empty one), read
 * up to the cap whatever its size says (a procfs file says 0 and never
 * ends, a file may grow); its trust from the descriptor read, not from the path again.
 * Read here rather than through modmta/reload.h for the 1 MiB cap on
 * the octets read (a reload stream is bounded at open only). */
static char *
alias_slurp(const char *path, int *trusted_r, modmta_err *err_r)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct stat st;
    char *text = NULL;

    if (fd < 0) {
        modmta_err_set(err_r, NULL, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) < 0)
        modmta_err_set(err_r, NULL, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode) && !alias_is_dev_null(&st))
        modmta_err_set(err_r, NULL, "%s: not a regular file", path);
    else if ((text = alias_read_fd(fd, path, err_r)) != NULL)
        *trusted_r = alias_include_trusted(&st);
    close(fd);
    return text;
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

/* ":include:PATH" found in src: only the map and trusted include files
 * may name further ones. */
static int
alias_include(struct alias_exp *e, const char *path, const char *src,
              int trusted, int depth)
{
    modmta_err err = {"", ""};
    char **items, *text = NULL;
    int rc;

    if (depth > 0 && !trusted) {
        modmta_log(e->ctx, MODMTA_LOG_NOTICE, "reject rcpt=<%s> "
                   "reason=\"include target not permitted\" source=%s",
                   e->rcpt, src);
        modmta_reply(e->ctx, 550, "5.7.1", "<%s>: an include is not "
                     "permitted here", e->rcpt);
        return MODMTA_E_PERM;
    }
    if (depth >= ALIAS_INCLUDE_DEPTH) {
        modmta_log(e->ctx, MODMTA_LOG_WARN, "rcpt=<%s> include=%s: nested "
                   "too deep", e->rcpt, path);
        return MODMTA_E_CONFIG;
    }
    if (path[0] != '/') {
        modmta_log(e->ctx, MODMTA_LOG_WARN, "rcpt=<%s> include=%s: not an "
                   "absolute path", e->rcpt, path);
        return MODMTA_E_TEMP;
    }
    if ((text = alias_slurp(path, &trusted, &err)) == NULL) {
        modmta_log(e->ctx, MODMTA_LOG_WARN, "rcpt=<%s> include=%s",
                   e->rcpt, err.msg);
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
    rc = alias_items(e, items, path, trusted, depth + 1);
    modmta_strlist_free(items);
    return rc;
}

/* Expand the items of a list found in src (a file path, NULL for a map
 * that is no file), trusted if it may hold command and file targets;
 * depth 0 is the map. */
static int
alias_items(struct alias_exp *e, char **items, const char *src,
            int trusted, int depth)
{
    int rc = 0;
    size_t i;

    for (i = 0; items[i] != NULL && rc == 0; i++) {
        if (strncmp(items[i], ":include:", 9) == 0)
            rc = alias_include(e, items[i] + 9, src, trusted, depth);
        else if (items[i][0] == '|' || items[i][0] == '/')
            rc = alias_special(e, items[i], src, trusted);
        else
            rc = alias_address(e, items[i]);
    }
    return rc;
}

/* A value from a shared map (redis:) names addresses only: whoever can
 * write to Redis must never get a command run, a file written or read.
 * Such a target is the site's configuration error, not the sender's:
 * the recipient is deferred (4xx; Postfix defers an alias from a table
 * without a trusted owner the same way) and the log names it, so the
 * entry can be fixed while the message waits. 0, or MODMTA_E_PERM with
 * the reply set. */
static int
alias_shared_check(struct alias_exp *e, char *const *items)
{
    const char *kind = NULL;
    size_t i;

    if (!modmta_map_is_shared(e->a->c.map))
        return 0;
    for (i = 0; items[i] != NULL && kind == NULL; i++) {
        if (items[i][0] == '|')
            kind = "command";
        else if (items[i][0] == '/')
            kind = "file";
        else if (strncmp(items[i], ":include:", 9) == 0)
            kind = "include";
    }
    if (kind == NULL)
        return 0;
    modmta_log(e->ctx, MODMTA_LOG_ERR, "defer rcpt=<%s> map=%s reason=\"%s "
               "target from a shared map refused\" target=\"%s\"", e->rcpt,
               modmta_map_name(e->a->c.map), kind, items[i - 1]);
    modmta_reply(e->ctx, 451, "4.3.0", "<%s>: mail system configuration "
                 "error", e->rcpt);
    return MODMTA_E_PERM;
}

static modmta_verdict
alias_expand(struct alias_exp *e, const char *value)
{
    modmta_err err = {"", ""};
    char **items = modmta_map_list_split(value, &err);
    int rc;

    if (items == NULL)
        return alias_tempfail(e, err.msg);
    if (alias_shared_check(e, items) < 0) {
        modmta_strlist_free(items);
        return MODMTA_TEMPFAIL;
    }
    rc = alias_items(e, items, e->a->map_path,
                     alias_file_trusted(e->a->map_path), 0);
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

/* A list NAME with an alias owner-NAME: its members are delivered with
 * the envelope sender owner-NAME@domain, so their bounces go to the
 * owner (Sendmail, Postfix). Only the map is asked: a lookup failure
 * leaves the message's sender. */
static int
alias_owner(struct alias_exp *e, const char *local)
{
    modmta_addr owner = {0};
    char buf[MODMTA_ADDR_PATH_MAX * 2];
    const char *domain = e->domain[0] != '\0' ? e->domain :
                         modmta_host_hostname(e->a->host);
    char *value = NULL;
    int r;

    if (strncasecmp(local, "owner-", 6) == 0 ||
        (size_t)snprintf(owner.local, sizeof(owner.local), "owner-%s",
                         local) >= sizeof(owner.local))
        return 0;
    r = modmta_map_lookup(e->a->c.map, owner.local, &value);
    modmta_free(value);
    if (r <= 0)
        return r;
    /* the local part as it means ("john smith"): re-quoted */
    snprintf(owner.domain, sizeof(owner.domain), "%s", domain);
    if (modmta_addr_format(&owner, buf, sizeof(buf)) < 0)
        return 0;
    return modmta_rcpt_rewrite_sender(e->ctx, buf);
}

/* The alias of local: as is (an exact entry wins), else without its
 * extension (recipient_delimiter), kept in e. The canonical address is
 * cut, not the unquoted local part: one that needs quotes (a space, an
 * '@') is never cut, as in every other module. 1, 0, or <0. */
static int
alias_lookup(struct alias_exp *e, const char *local, char **value_r)
{
    char base[MODMTA_ADDR_PATH_MAX + 1];
    const char *at;
    int r = modmta_map_lookup(e->a->c.map, local, value_r);

    if (r != 0 ||
        modmta_addr_split_extension(e->rcpt,
                                    modmta_host_recipient_delimiter(
                                        e->a->host),
                                    base, sizeof(base), e->ext,
                                    sizeof(e->ext)) != 1)
        return r;
    at = strrchr(base, '@');
    e->base_len = at != NULL ? (size_t)(at - base) : strlen(base);
    e->delim = e->rcpt[e->base_len];
    base[e->base_len] = '\0';
    r = modmta_map_lookup(e->a->c.map, base, value_r);
    if (r <= 0)
        e->ext[0] = '\0';
    return r;
}

static modmta_verdict
alias_on_rcpt(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    struct alias *a = inst;
    struct alias_exp e = {a, ctx, rcpt, "", 0, '\0', "", 0};
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
    r = alias_lookup(&e, addr.local, &value);
    if (r < 0)
        return alias_tempfail(&e, modmta_strerror(r));
    if (r == 0)
        return MODMTA_CONTINUE;
    v = alias_expand(&e, value);
    modmta_free(value);
    if (e.ext[0] != '\0') /* the list's name: its owner is owner-NAME */
        addr.local[e.base_len] = '\0';
    if (v == MODMTA_ACCEPT && (r = alias_owner(&e, addr.local)) < 0)
        return alias_tempfail(&e, modmta_strerror(r));
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
