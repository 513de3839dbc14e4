/*
 * virtual: Sendmail's virtusertable, Postfix's virtual_alias_maps. The
 * map is looked up with the full address, then without its extension
 * (the core's recipient_delimiter; the extension is given on to the
 * targets), then with "@domain" (the catch-all); a hit rewrites the recipient into its targets ("%1" is the
 * original local part) and the core runs the chain again on each, with
 * its loop and count limits. "error:5.1.1:550 text" entries reject. In a
 * virtual alias domain an address with no entry is refused (550 5.1.1).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/modmta.h>

struct virtual_conf {
    modmta_map *map;
    char **domains;
    char *qualify_domain;
    int propagate_extension;
};

struct virtual {
    struct virtual_conf c;
    const modmta_host *host;
};

static const modmta_option virtual_opts[] = {
    MODMTA_OPTION_MAP("map", struct virtual_conf, map, MODMTA_OPT_REQUIRED),
    MODMTA_OPTION_STRLIST("domains", struct virtual_conf, domains, 0),
    MODMTA_OPTION_STRING("qualify_domain", struct virtual_conf, qualify_domain,
                         0),
    MODMTA_OPTION_BOOL("propagate_extension", struct virtual_conf,
                       propagate_extension, 0),
    MODMTA_OPTION_END
};

/* ---- create ---- */

static void
virtual_destroy(void *inst)
{
    struct virtual *v = inst;

    if (v == NULL)
        return;
    modmta_conf_free_options(virtual_opts, &v->c);
    free(v);
}

static void *
virtual_create(const json_t *conf, const modmta_host *host,
               modmta_err *err_r)
{
    struct virtual *v = calloc(1, sizeof(*v));
    char path[300];

    if (v == NULL) {
        modmta_err_set(err_r, modmta_host_path(host), "out of memory");
        return NULL;
    }
    v->host = host;
    v->c.propagate_extension = 1;
    if (modmta_conf_parse_options(conf, host, virtual_opts, &v->c,
                                  err_r) < 0) {
        free(v);
        return NULL;
    }
    if (v->c.qualify_domain != NULL &&
        (v->c.qualify_domain[0] == '\0' ||
         strpbrk(v->c.qualify_domain, "@ \t") != NULL)) {
        snprintf(path, sizeof(path), "%s.qualify_domain",
                 modmta_host_path(host));
        modmta_err_set(err_r, path, "expected a domain name");
        virtual_destroy(v);
        return NULL;
    }
    return v;
}

/* ---- lookups ---- */

/* The extension of a recipient found without it (recipient_delimiter):
 * given on to the targets. */
struct virtual_ext {
    char delim;
    char ext[MODMTA_ADDR_LOCAL_MAX * 2 + 1]; /* "" when found as is */
};

/* 1 found, 0 not, <0 error: the full address, then without its
 * extension ("user@domain": an exact entry wins, as in Postfix; x
 * filled), then "@domain". */
static int
virtual_lookup(const struct virtual *v, const char *rcpt, const char *domain,
               char **value_r, struct virtual_ext *x)
{
    char key[MODMTA_ADDR_PATH_MAX * 2];
    int r = modmta_map_lookup(v->c.map, rcpt, value_r);

    x->ext[0] = '\0';
    if (r != 0)
        return r;
    if (modmta_addr_split_extension(rcpt,
                                    modmta_host_recipient_delimiter(v->host),
                                    key, sizeof(key), x->ext,
                                    sizeof(x->ext)) == 1) {
        x->delim = rcpt[strcspn(rcpt,
                                modmta_host_recipient_delimiter(v->host))];
        r = modmta_map_lookup(v->c.map, key, value_r);
        if (r != 0)
            return r;
        x->ext[0] = '\0';
    }
    snprintf(key, sizeof(key), "@%s", domain);
    return modmta_map_lookup(v->c.map, key, value_r);
}

/* Postfix's propagate_unmatched_extensions: "user+ext" found as "user"
 * makes a target "bob@x" "bob+ext@x", unless it has an extension, or
 * the extension holds a routing character ('%', '!', '@': a
 * "bob+x%other.test" must not turn a target into a relay path). */
static int
virtual_extend(const struct virtual *v, const struct virtual_ext *x,
               modmta_addr *addr)
{
    size_t n = strlen(addr->local);

    if (x->ext[0] == '\0' || !v->c.propagate_extension ||
        strpbrk(x->ext, "%!@") != NULL ||
        strpbrk(addr->local, modmta_host_recipient_delimiter(v->host)))
        return 0;
    if (n + 1 + strlen(x->ext) > MODMTA_ADDR_LOCAL_MAX)
        return MODMTA_E_LIMIT;
    snprintf(addr->local + n, sizeof(addr->local) - n, "%c%s", x->delim,
             x->ext);
    return 0;
}

/* A domain this module answers for: listed in "domains", or named by a
 * line of the map of its own ("example.com  anything", Postfix's
 * virtual alias domain convention). 1, 0, or <0 on a lookup error. */
static int
virtual_is_domain(const struct virtual *v, const char *domain)
{
    size_t i;

    for (i = 0; v->c.domains != NULL && v->c.domains[i] != NULL; i++)
        if (modmta_domain_equal(v->c.domains[i], domain))
            return 1;
    return modmta_map_lookup(v->c.map, domain, NULL);
}

/* ---- targets ---- */

/* "error:5.1.1:550 text", "error:550 text" or "error:nouser text". */
static modmta_verdict
virtual_error(modmta_ctx *ctx, const char *rcpt, const char *spec)
{
    char esc[16] = "";
    const char *p = spec, *text;
    int code = 0, n = 0;

    if (strncmp(p, "nouser", 6) == 0) {
        code = 550;
        snprintf(esc, sizeof(esc), "5.1.1");
        p += 6;
    } else {
        if (sscanf(p, "%15[0-9.]:%n", esc, &n) == 1 && strchr(esc, '.'))
            p += n;
        else
            esc[0] = '\0';
        if (sscanf(p, "%3d%n", &code, &n) == 1)
            p += n;
    }
    text = p + strspn(p, " \t");
    if (code < 400 || code > 599 || (esc[0] != '\0' && esc[0] - '0' !=
                                     code / 100)) {
        modmta_log(ctx, MODMTA_LOG_WARN, "defer rcpt=<%s> bad error entry "
                   "\"error:%s\"", rcpt, spec);
        modmta_reply(ctx, 451, "4.3.0", "<%s>: temporary virtual table "
                     "failure", rcpt);
        return MODMTA_TEMPFAIL;
    }
    modmta_log(ctx, MODMTA_LOG_INFO, "reject rcpt=<%s> code=%d entry=error",
               rcpt, code);
    modmta_reply(ctx, code, esc[0] != '\0' ? esc : NULL, "<%s>: %s", rcpt,
                 text[0] != '\0' ? text : "Recipient address rejected");
    return code / 100 == 4 ? MODMTA_TEMPFAIL : MODMTA_REJECT;
}

/* item with every "%1" replaced by the original local part, qualified
 * with qualify_domain when it has no domain, into buf. */
static int
virtual_target(const struct virtual *v, const char *item, const char *local,
               char *buf, size_t len)
{
    size_t n = 0, l;
    const char *dom;

    for (; *item != '\0'; item++) {
        if (item[0] == '%' && item[1] == '1') {
            l = strlen(local);
            if (n + l >= len)
                return MODMTA_E_LIMIT;
            memcpy(buf + n, local, l);
            n += l;
            item++;
        } else {
            if (n + 1 >= len)
                return MODMTA_E_LIMIT;
            buf[n++] = *item;
        }
    }
    buf[n] = '\0';
    if (strchr(buf, '@') != NULL)
        return 0;
    dom = v->c.qualify_domain != NULL ? v->c.qualify_domain
                                      : modmta_host_hostname(v->host);
    if (n + 1 + strlen(dom) >= len)
        return MODMTA_E_LIMIT;
    snprintf(buf + n, len - n, "@%s", dom);
    return 0;
}

static modmta_verdict
virtual_rewrite(const struct virtual *v, modmta_ctx *ctx, const char *rcpt,
                const char *local, const char *value,
                const struct virtual_ext *x)
{
    char target[MODMTA_ADDR_PATH_MAX * 2], **items;
    modmta_err err = {"", ""};
    const char *end = NULL;
    modmta_addr addr;
    int rc = 0;
    size_t i;

    if ((items = modmta_map_list_split(value, &err)) == NULL || !items[0]) {
        modmta_strlist_free(items);
        modmta_log(ctx, MODMTA_LOG_WARN, "defer rcpt=<%s> bad entry "
                   "\"%s\" %s", rcpt, value, err.msg);
        modmta_reply(ctx, 451, "4.3.0", "<%s>: temporary virtual table "
                     "failure", rcpt);
        return MODMTA_TEMPFAIL;
    }
    for (i = 0; items[i] != NULL && rc == 0; i++) {
        if (items[i][0] == '|' || items[i][0] == '/') {
            modmta_log(ctx, MODMTA_LOG_NOTICE, "reject rcpt=<%s> "
                       "reason=\"command or file target\"", rcpt);
            modmta_reply(ctx, 550, "5.7.1", "<%s>: a virtual alias may "
                         "not deliver to a command or a file", rcpt);
            modmta_strlist_free(items);
            return MODMTA_REJECT;
        }
        rc = virtual_target(v, items[i], local, target, sizeof(target));
        if (rc == 0)
            rc = modmta_addr_parse(target, MODMTA_ADDR_NO_BRACKETS |
                                   MODMTA_ADDR_UTF8, &addr, &end);
        /* all of it: "john smith@x" is no address, not "john" */
        if (rc == 0 && *end != '\0')
            rc = MODMTA_E_INVAL;
        if (rc == 0)
            rc = virtual_extend(v, x, &addr);
        if (rc == 0 && modmta_addr_format(&addr, target, sizeof(target)) < 0)
            rc = MODMTA_E_LIMIT;
        if (rc == 0)
            rc = modmta_rcpt_rewrite(ctx, target);
        else
            modmta_log(ctx, MODMTA_LOG_WARN, "defer rcpt=<%s> bad target "
                       "\"%s\"", rcpt, items[i]);
    }
    modmta_strlist_free(items);
    if (rc < 0) {
        modmta_reply(ctx, 451, "4.3.0", "<%s>: temporary virtual table "
                     "failure", rcpt);
        return MODMTA_TEMPFAIL;
    }
    modmta_log(ctx, MODMTA_LOG_INFO, "rewrite rcpt=<%s> targets=%zu", rcpt,
               i);
    return MODMTA_ACCEPT;
}

/* No entry: unknown in a virtual alias domain, else not our business. */
static modmta_verdict
virtual_miss(const struct virtual *v, modmta_ctx *ctx, const char *rcpt,
             const char *domain)
{
    int r;

    if (modmta_host_is_local_domain(v->host, domain))
        return MODMTA_CONTINUE;
    if ((r = virtual_is_domain(v, domain)) == 0)
        return MODMTA_CONTINUE;
    if (r < 0) {
        modmta_log(ctx, MODMTA_LOG_WARN, "lookup failed map=%s "
                   "error=\"%s\"", modmta_map_name(v->c.map),
                   modmta_strerror(r));
        return MODMTA_TEMPFAIL;
    }
    modmta_log(ctx, MODMTA_LOG_INFO, "reject rcpt=<%s> reason=\"no virtual "
               "alias\"", rcpt);
    modmta_reply(ctx, 550, "5.1.1", "<%s>: Recipient address rejected: "
                 "User unknown in virtual alias table", rcpt);
    return MODMTA_REJECT;
}

static modmta_verdict
virtual_on_rcpt(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    struct virtual *v = inst;
    char local[MODMTA_ADDR_LOCAL_MAX * 2 + 3];
    char domain[MODMTA_ADDR_DOMAIN_MAX + 1], *value = NULL;
    struct virtual_ext x;
    modmta_verdict verdict;
    int r;

    if (modmta_addr_split(rcpt, local, sizeof(local), domain,
                          sizeof(domain)) < 0 || domain[0] == '\0')
        return MODMTA_CONTINUE;
    r = virtual_lookup(v, rcpt, domain, &value, &x);
    if (r < 0) {
        modmta_log(ctx, MODMTA_LOG_WARN, "lookup failed map=%s "
                   "error=\"%s\"", modmta_map_name(v->c.map),
                   modmta_strerror(r));
        return MODMTA_TEMPFAIL;
    }
    if (r == 0)
        return virtual_miss(v, ctx, rcpt, domain);
    if (strncmp(value, "error:", 6) == 0)
        verdict = virtual_error(ctx, rcpt, value + 6);
    else
        verdict = virtual_rewrite(v, ctx, rcpt, local, value, &x);
    modmta_free(value);
    return verdict;
}

/* Its virtual alias domains are inbound (relay_access lets them through
 * to on_rcpt). On a lookup error say yes: on_rcpt then answers 4xx for
 * the outage instead of a relay check answering 554. */
static int
virtual_owns_domain(void *inst, const char *domain)
{
    return virtual_is_domain(inst, domain) != 0;
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "virtual",
    .version = "1.0.0",
    .caps = MODMTA_CAP_REWRITE,
    .create = virtual_create,
    .destroy = virtual_destroy,
    .on_rcpt = virtual_on_rcpt,
    .owns_domain = virtual_owns_domain,
};
