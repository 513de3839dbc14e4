/*
 * The "cidr:" map backend, after Postfix's cidr_table(5): lines
 * "network/prefix value" (IPv4 or IPv6, the network optionally in
 * brackets, no prefix meaning a single host), searched in file order,
 * first match wins. The table is read once, at open.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/map.h>
#include <modmta/reload.h>

#include "file_open_priv.h"
#include "map_priv.h"

struct map_cidr_entry {
    int family;
    unsigned char net[16];
    unsigned prefix;
    char *value;
};

struct map_cidr {
    struct map_cidr_entry *entries;
    size_t count, cap;
};

static void *map_cidr_open(const char *arg, const char *json_path,
                           modmta_err *err_r);
static int map_cidr_lookup(void *state, const char *key, char **value_r);
static void map_cidr_close(void *state);

const modmta_map_backend map_cidr_backend = {
    .type = "cidr",
    .open = map_cidr_open,
    .lookup = map_cidr_lookup,
    .close = map_cidr_close,
};

/* Parse an address, "[...]" allowed; an IPv4-mapped IPv6 address is taken
 * as the IPv4 address (dual-stack sockets report clients that way).
 * Returns the address length (4 or 16) or 0. */
static size_t
map_cidr_addr(const char *s, size_t len, unsigned char *out, int *family_r)
{
    char buf[INET6_ADDRSTRLEN + 2];

    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof(buf))
        return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, out) == 1) {
        *family_r = AF_INET;
        return 4;
    }
    if (inet_pton(AF_INET6, buf, out) != 1)
        return 0;
    if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)out)) {
        memmove(out, out + 12, 4);
        *family_r = AF_INET;
        return 4;
    }
    *family_r = AF_INET6;
    return 16;
}

/* 1 if addr lies in net/prefix. */
static int
map_cidr_match(const unsigned char *addr, const unsigned char *net,
               unsigned prefix)
{
    unsigned bytes = prefix / 8, bits = prefix % 8;
    unsigned char mask;

    if (memcmp(addr, net, bytes) != 0)
        return 0;
    if (bits == 0)
        return 1;
    mask = (unsigned char)(0xFF << (8 - bits));
    return (addr[bytes] & mask) == net[bytes];
}

/* Clear the host bits of net; 1 if some were set. */
static int
map_cidr_mask(unsigned char *net, size_t len, unsigned prefix)
{
    int dirty = 0;
    unsigned char mask;
    size_t i;

    for (i = 0; i < len; i++) {
        if (prefix >= 8 * (i + 1))
            continue;
        mask = prefix > 8 * i ? (unsigned char)(0xFF << (8 - (prefix - 8 * i)))
                              : 0;
        dirty |= (net[i] & ~mask) != 0;
        net[i] &= mask;
    }
    return dirty;
}

/* "N" with 0 <= N <= max, digits only. */
static int
map_cidr_prefix(const char *s, unsigned max, unsigned *prefix_r)
{
    unsigned long v = 0;

    if (*s == '\0' || strlen(s) > 3)
        return MODMTA_E_INVAL;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return MODMTA_E_INVAL;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    if (v > max)
        return MODMTA_E_INVAL;
    *prefix_r = (unsigned)v;
    return 0;
}

static int
map_cidr_parse(const char *key, struct map_cidr_entry *e, modmta_err *err_r)
{
    const char *slash = strchr(key, '/');
    size_t alen = slash != NULL ? (size_t)(slash - key) : strlen(key);
    size_t len = map_cidr_addr(key, alen, e->net, &e->family);
    char shown[INET6_ADDRSTRLEN];

    if (len == 0) {
        modmta_err_set(err_r, NULL, "bad network address \"%.*s\"",
                       (int)alen, key);
        return MODMTA_E_CONFIG;
    }
    e->prefix = (unsigned)len * 8;
    if (slash != NULL &&
        map_cidr_prefix(slash + 1, (unsigned)len * 8, &e->prefix) < 0) {
        modmta_err_set(err_r, NULL, "bad prefix length in \"%s\" "
                       "(expected 0 to %zu)", key, len * 8);
        return MODMTA_E_CONFIG;
    }
    if (map_cidr_mask(e->net, len, e->prefix)) {
        inet_ntop(e->family, e->net, shown, sizeof(shown));
        modmta_err_set(err_r, NULL, "host bits set in \"%s\": "
                       "did you mean \"%s/%u\"?", key, shown, e->prefix);
        return MODMTA_E_CONFIG;
    }
    return 0;
}

static int
map_cidr_entry(void *arg, const char *key, const char *value,
               unsigned lineno, modmta_err *err_r)
{
    struct map_cidr *c = arg;
    struct map_cidr_entry e, *p;

    if (value[0] == '\0') {
        modmta_err_set(err_r, NULL, "network \"%s\" has no value", key);
        return MODMTA_E_CONFIG;
    }
    memset(&e, 0, sizeof(e));
    if (map_cidr_parse(key, &e, err_r) < 0)
        return MODMTA_E_CONFIG;
    if (c->count == c->cap) {
        p = realloc(c->entries, (c->cap * 2 + 16) * sizeof(*p));
        if (p == NULL)
            goto nomem;
        c->entries = p;
        c->cap = c->cap * 2 + 16;
    }
    if ((e.value = strdup(value)) == NULL)
        goto nomem;
    c->entries[c->count++] = e;
    return 0;
nomem:
    modmta_err_set(err_r, NULL, "out of memory");
    return MODMTA_E_NOMEM;
}

static void *
map_cidr_open(const char *arg, const char *json_path, modmta_err *err_r)
{
    struct map_cidr *c;
    struct stat st;
    FILE *f;
    int rc;

    if (arg[0] == '\0') {
        modmta_err_set(err_r, json_path, "cidr: map without a path");
        return NULL;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        modmta_err_set(err_r, json_path, "out of memory");
        return NULL;
    }
    if ((f = file_open_read(arg, MODMTA_RELOAD_SIZE_MAX, &st, err_r))
        == NULL) {
        snprintf(err_r->path, sizeof(err_r->path), "%s", json_path);
        map_cidr_close(c);
        return NULL;
    }
    rc = map_file_read(f, arg, json_path, map_cidr_entry, c, err_r);
    fclose(f);
    if (rc < 0) {
        map_cidr_close(c);
        return NULL;
    }
    return c;
}

static int
map_cidr_lookup(void *state, const char *key, char **value_r)
{
    const struct map_cidr *c = state;
    unsigned char addr[16];
    int family;
    size_t i;

    if (map_cidr_addr(key, strlen(key), addr, &family) == 0)
        return 0; /* not an address: in no network */
    for (i = 0; i < c->count; i++) {
        if (c->entries[i].family != family ||
            !map_cidr_match(addr, c->entries[i].net, c->entries[i].prefix))
            continue;
        if (value_r != NULL &&
            (*value_r = strdup(c->entries[i].value)) == NULL)
            return MODMTA_E_NOMEM;
        return 1;
    }
    return 0;
}

static void
map_cidr_close(void *state)
{
    struct map_cidr *c = state;
    size_t i;

    for (i = 0; i < c->count; i++)
        free(c->entries[i].value);
    free(c->entries);
    free(c);
}
