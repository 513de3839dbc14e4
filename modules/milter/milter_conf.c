/* milter: the module's configuration (milter_conf.h). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <modmta/conf.h>
#include <modmta/err.h>

#include "milter_conf.h"
#include "milter_proto.h"

#define MILTER_HOUR_MS (3600LL * 1000)

static const struct {
    const char *name;
    uint32_t flag;
} milter_steps[] = {
    {"connect", MILTER_P_NOCONNECT}, {"helo", MILTER_P_NOHELO},
    {"mail", MILTER_P_NOMAIL},       {"rcpt", MILTER_P_NORCPT},
    {"data", MILTER_P_NODATA},       {"header", MILTER_P_NOHDRS},
    {"eoh", MILTER_P_NOEOH},         {"body", MILTER_P_NOBODY},
};

static const char *const milter_defaults[] = {
    [MILTER_DEFAULT_TEMPFAIL] = "tempfail",
    [MILTER_DEFAULT_ACCEPT] = "accept",
    [MILTER_DEFAULT_REJECT] = "reject",
};

/* path + "." + key, or path + key when key is "[N]" or starts with a
 * dot; cut short rather than overflow. */
static void
milter_conf_key(char *out, size_t n, const char *path, const char *key)
{
    int r = snprintf(out, n, key[0] == '[' || key[0] == '.' ? "%s%s"
                                                              : "%s.%s",
                     path, key);

    (void)r;
}

static int
milter_conf_port(const char *s, size_t n, in_port_t *port_r)
{
    char buf[8], *end;
    long p;

    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    p = strtol(buf, &end, 10);
    if (*buf < '0' || *buf > '9' || *end != '\0' || p < 1 || p > 65535)
        return -1;
    *port_r = htons((uint16_t)p);
    return 0;
}

/* A host name: dot-separated labels of letters, digits, hyphens and
 * underscores, each with a letter or digit, the last not all digits (no
 * top-level domain is), one final dot allowed ("dkim.example."); and
 * nothing inet_aton takes for an address ("0x7f000001", "0x7f.1"):
 * getaddrinfo would read it as one, where only a dotted quad is
 * accepted. */
static int
milter_conf_is_name(const char *h)
{
    int letter = 0, alnum = 0;
    struct in_addr a;

    if (inet_aton(h, &a) != 0)
        return 0;
    for (;; h++) {
        if (*h == '.' || *h == '\0') {
            if (!alnum)
                return 0; /* an empty label, or only '-' and '_' */
            if (*h == '\0' || (h[1] == '\0' && h[-1] != '.'))
                return letter;
            alnum = letter = 0;
        } else if (isalpha((unsigned char)*h) || *h == '-' || *h == '_') {
            letter = 1;
            alnum |= isalpha((unsigned char)*h) != 0;
        } else if (isdigit((unsigned char)*h)) {
            alnum = 1;
        } else {
            return 0;
        }
    }
}

/* A numeric address of family into ss (port 0): IPv4 only in dotted
 * quad (inet_pton: not getaddrinfo's inet_aton, to which "010.0.0.1"
 * is 8.0.0.1 and "127.1" 127.0.0.1), IPv6 with getaddrinfo (a scope
 * as in "fe80::1%eth0"). 0, or -1 if h is no such address. */
static int
milter_conf_numeric(int family, const char *h, struct sockaddr_storage *ss,
                    socklen_t *len_r)
{
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct addrinfo hints, *res;

    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        if (inet_pton(AF_INET, h, &in->sin_addr) != 1)
            return -1;
        in->sin_family = AF_INET;
        *len_r = sizeof(*in);
        return 0;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET6;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST;
    if (getaddrinfo(h, NULL, &hints, &res) != 0)
        return -1;
    if (res->ai_addrlen > sizeof(*ss)) {
        freeaddrinfo(res);
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len_r = (socklen_t)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* The name h's first address of family into ss (a lookup). 0 or an
 * EAI_* code. */
static int
milter_conf_lookup(int family, const char *h, struct sockaddr_storage *ss,
                   socklen_t *len_r)
{
    struct addrinfo hints, *res;
    int r;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    r = getaddrinfo(h, NULL, &hints, &res);
    if (r != 0)
        return r;
    if (res->ai_addrlen > sizeof(*ss)) {
        freeaddrinfo(res);
        return EAI_FAMILY;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len_r = (socklen_t)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* host (n bytes, brackets stripped) into sp->host: a name, or a numeric
 * address of sp->family. */
static int
milter_conf_host(const char *h, size_t n, struct milter_sockspec *sp)
{
    struct sockaddr_storage ss;
    socklen_t len;

    if (n == 0 || n >= sizeof(sp->host))
        return -1;
    memcpy(sp->host, h, n);
    sp->host[n] = '\0';
    if (sp->family == AF_INET && strchr(sp->host, ':') != NULL)
        sp->family = AF_INET6; /* Postfix's inet:[::1]:PORT */
    if (milter_conf_is_name(sp->host))
        return 0;
    return milter_conf_numeric(sp->family, sp->host, &ss, &len);
}

int
milter_conf_socket_split(const char *s, struct milter_sockspec *sp)
{
    const char *at, *colon, *host, *end;

    memset(sp, 0, sizeof(*sp));
    if (strncmp(s, "unix:", 5) == 0 || strncmp(s, "local:", 6) == 0) {
        s = strchr(s, ':') + 1;
        if (s[0] != '/' ||
            strlen(s) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return -1;
        sp->family = AF_UNIX;
        strcpy(sp->host, s);
        return 0;
    }
    if (strncmp(s, "inet:", 5) == 0) {
        sp->family = AF_INET;
        s += 5;
    } else if (strncmp(s, "inet6:", 6) == 0) {
        sp->family = AF_INET6;
        s += 6;
    } else {
        return -1;
    }
    if ((at = strchr(s, '@')) != NULL) {
        /* Sendmail's PORT@HOST, PORT@ADDR or PORT@[ADDR] */
        if (milter_conf_port(s, (size_t)(at - s), &sp->port) < 0)
            return -1;
        host = at + 1;
        end = host + strlen(host);
        if (host[0] == '[') {
            if (end - host < 2 || end[-1] != ']')
                return -1;
            host++;
            end--;
        }
        return milter_conf_host(host, (size_t)(end - host), sp);
    }
    if (s[0] == '[') {
        /* [ADDR]:PORT (inet: too, as Postfix: an IPv6 ADDR makes it
         * IPv6) */
        colon = strstr(s, "]:");
        if (colon == NULL)
            return -1;
        host = s + 1;
        end = colon + 2;
    } else if (sp->family == AF_INET) {
        /* HOST:PORT; an IPv6 address only in brackets */
        colon = strchr(s, ':');
        if (colon == NULL || strchr(colon + 1, ':') != NULL)
            return -1;
        host = s;
        end = colon + 1;
    } else {
        return -1; /* inet6: ADDR:PORT would be ambiguous */
    }
    if (milter_conf_port(end, strlen(end), &sp->port) < 0)
        return -1;
    return milter_conf_host(host, (size_t)(colon - host), sp);
}

int
milter_conf_resolve(const struct milter_sockspec *sp,
                    struct sockaddr_storage *ss, socklen_t *len_r)
{
    int r;

    memset(ss, 0, sizeof(*ss));
    if (sp->family == AF_UNIX) {
        struct sockaddr_un *un = (struct sockaddr_un *)ss;

        un->sun_family = AF_UNIX;
        /* split checked it fits; the rest of host is zeros */
        memcpy(un->sun_path, sp->host, sizeof(un->sun_path) - 1);
        *len_r = sizeof(*un);
        return 0;
    }
    if (!milter_conf_is_name(sp->host)) {
        if (milter_conf_numeric(sp->family, sp->host, ss, len_r) < 0)
            return EAI_NONAME; /* split checked it: not reached */
    } else if ((r = milter_conf_lookup(sp->family, sp->host, ss,
                                       len_r)) != 0) {
        return r;
    }
    if (sp->family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = sp->port;
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = sp->port;
    return 0;
}

long long
milter_conf_duration(const json_t *v)
{
    long long ms;

    if (json_is_integer(v)) {
        ms = json_integer_value(v);
        return ms >= 1 && ms <= 3600 ? ms * 1000 : -1;
    }
    if (!json_is_string(v) ||
        modmta_parse_duration_ms(json_string_value(v), &ms) < 0)
        return -1;
    return ms >= 1 && ms <= MILTER_HOUR_MS ? ms : -1;
}

static int
milter_conf_timeouts(const json_t *t, const char *path, struct milter_spec *m,
                     modmta_err *err_r)
{
    char kpath[512];
    const char *key;
    json_t *v;
    long long ms;

    if (!json_is_object(t)) {
        modmta_err_set(err_r, path, "expected an object");
        return MODMTA_E_CONFIG;
    }
    json_object_foreach((json_t *)t, key, v) {
        int *slot = strcmp(key, "connect") == 0   ? &m->connect_ms
                    : strcmp(key, "command") == 0 ? &m->command_ms
                    : strcmp(key, "message") == 0 ? &m->message_ms
                                                  : NULL;

        milter_conf_key(kpath, sizeof(kpath), path, key[0] ? key : "");
        if (slot == NULL) {
            modmta_err_set(err_r, kpath, "unknown key (connect, command, "
                           "message)");
            return MODMTA_E_CONFIG;
        }
        ms = milter_conf_duration(v);
        if (ms < 0) {
            modmta_err_set(err_r, kpath, "expected a time from 1ms to 1h "
                           "(\"500ms\", \"30s\", \"5m\", or an integer of "
                           "seconds)");
            return MODMTA_E_CONFIG;
        }
        *slot = (int)ms;
    }
    return 0;
}

static int
milter_conf_steps(const json_t *a, const char *path, struct milter_spec *m,
                  modmta_err *err_r)
{
    size_t i, j, nsteps = sizeof(milter_steps) / sizeof(milter_steps[0]);
    json_t *v;

    if (!json_is_array(a)) {
        modmta_err_set(err_r, path, "expected an array of steps");
        return MODMTA_E_CONFIG;
    }
    for (j = 0; j < nsteps; j++)
        m->steps_off |= milter_steps[j].flag;
    json_array_foreach(a, i, v) {
        for (j = 0; j < nsteps; j++)
            if (json_is_string(v) &&
                strcmp(json_string_value(v), milter_steps[j].name) == 0)
                break;
        if (j == nsteps) {
            char kpath[512];

            char idx[32];

            snprintf(idx, sizeof(idx), "[%zu]", i);
            milter_conf_key(kpath, sizeof(kpath), path, idx);
            modmta_err_set(err_r, kpath, "expected one of connect, helo, "
                           "mail, rcpt, data, header, eoh, body");
            return MODMTA_E_CONFIG;
        }
        m->steps_off &= ~milter_steps[j].flag;
    }
    return 0;
}

static int
milter_conf_default(const json_t *v, const char *path, struct milter_spec *m,
                    modmta_err *err_r)
{
    for (size_t i = 0; i < sizeof(milter_defaults) / sizeof(*milter_defaults);
         i++)
        if (json_is_string(v) &&
            strcmp(json_string_value(v), milter_defaults[i]) == 0) {
            m->def = (enum milter_default)i;
            return 0;
        }
    modmta_err_set(err_r, path, "expected \"tempfail\", \"accept\" or "
                   "\"reject\"");
    return MODMTA_E_CONFIG;
}

/* reuse, pool_size, idle_timeout: connection reuse across sessions. */
static int
milter_conf_reuse(const char *key, const json_t *v, const char *kpath,
                  struct milter_spec *m, modmta_err *err_r)
{
    long long ms;

    if (strcmp(key, "reuse") == 0) {
        if (!json_is_boolean(v)) {
            modmta_err_set(err_r, kpath, "expected true or false");
            return MODMTA_E_CONFIG;
        }
        m->reuse = json_is_true(v);
    } else if (strcmp(key, "pool_size") == 0) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > MILTER_POOL_MAX) {
            modmta_err_set(err_r, kpath, "expected an integer from 1 to %d",
                           MILTER_POOL_MAX);
            return MODMTA_E_CONFIG;
        }
        m->pool_size = (int)json_integer_value(v);
    } else {
        ms = milter_conf_duration(v);
        if (ms < 0) {
            modmta_err_set(err_r, kpath, "expected a time from 1ms to 1h "
                           "(\"500ms\", \"30s\", \"5m\", or an integer of "
                           "seconds)");
            return MODMTA_E_CONFIG;
        }
        m->idle_ms = (int)ms;
    }
    return 0;
}

static int
milter_conf_one(const json_t *o, const char *path, struct milter_spec *m,
                modmta_err *err_r)
{
    char kpath[512];
    const char *key, *sock = NULL;
    struct milter_sockspec sp;
    json_t *v;
    int r = 0;

    m->connect_ms = 30000;
    m->command_ms = 30000;
    m->message_ms = 300000;
    m->def = MILTER_DEFAULT_TEMPFAIL;
    m->pool_size = 16;
    m->idle_ms = 60000;
    if (!json_is_object(o)) {
        modmta_err_set(err_r, path, "expected an object with a \"socket\"");
        return MODMTA_E_CONFIG;
    }
    json_object_foreach((json_t *)o, key, v) {
        milter_conf_key(kpath, sizeof(kpath), path, key[0] ? key : "");
        if (strcmp(key, "socket") == 0) {
            sock = json_string_value(v);
            if (sock == NULL || milter_conf_socket_split(sock, &sp) < 0) {
                modmta_err_set(err_r, kpath, "expected \"inet:HOST:PORT\","
                               " \"inet:[HOST]:PORT\", \"inet:PORT@HOST\","
                               " \"inet:PORT@[HOST]\","
                               " \"inet6:[ADDRESS]:PORT\","
                               " \"inet6:PORT@ADDRESS\","
                               " \"inet6:PORT@[ADDRESS]\", \"unix:/path\""
                               " or \"local:/path\"");
                return MODMTA_E_CONFIG;
            }
            r = milter_conf_resolve(&sp, &m->addr, &m->addrlen);
            if (r != 0) {
                modmta_err_set(err_r, kpath, "\"%s\" did not resolve to an %s"
                               " address: %s",
                               sp.host, sp.family == AF_INET ? "IPv4" : "IPv6",
                               r == EAI_SYSTEM ? strerror(errno)
                                               : gai_strerror(r));
                return MODMTA_E_CONFIG;
            }
        } else if (strcmp(key, "name") == 0) {
            if (!json_is_string(v) || json_string_length(v) == 0 ||
                json_string_length(v) >= sizeof(m->name)) {
                modmta_err_set(err_r, kpath, "expected a non-empty string");
                return MODMTA_E_CONFIG;
            }
            snprintf(m->name, sizeof(m->name), "%s", json_string_value(v));
        } else if (strcmp(key, "timeouts") == 0) {
            r = milter_conf_timeouts(v, kpath, m, err_r);
        } else if (strcmp(key, "default_action") == 0) {
            r = milter_conf_default(v, kpath, m, err_r);
        } else if (strcmp(key, "protocol_steps") == 0) {
            r = milter_conf_steps(v, kpath, m, err_r);
        } else if (strcmp(key, "reuse") == 0 ||
                   strcmp(key, "pool_size") == 0 ||
                   strcmp(key, "idle_timeout") == 0) {
            r = milter_conf_reuse(key, v, kpath, m, err_r);
        } else {
            modmta_err_set(err_r, kpath, "unknown key");
            return MODMTA_E_CONFIG;
        }
        if (r < 0)
            return r;
    }
    if (sock == NULL) {
        milter_conf_key(kpath, sizeof(kpath), path, ".socket");
        modmta_err_set(err_r, kpath, "required");
        return MODMTA_E_CONFIG;
    }
    if (m->name[0] == '\0')
        snprintf(m->name, sizeof(m->name), "%s", sock);
    return 0;
}

struct milter_conf_top {
    json_t *milters;
};

static const modmta_option milter_conf_options[] = {
    MODMTA_OPTION_JSON("milters", struct milter_conf_top, milters,
                       MODMTA_OPT_REQUIRED),
    MODMTA_OPTION_END
};

/* Every milter of the list; each one's first error is recorded, so
 * --check-config lists them all. */
static int
milter_conf_list(const json_t *list, const modmta_host *host,
                 struct milter_conf *out, modmta_err *err_r)
{
    const char *base = modmta_host_path(host);
    modmta_err one, more;
    char path[256];
    json_t *v;
    size_t i;
    int r = 0;

    snprintf(path, sizeof(path), "%s.milters", base);
    if (!json_is_array(list) || json_array_size(list) == 0)
        return modmta_conf_error(host, err_r, path, "expected a non-empty "
                                 "array of milters");
    out->milters = calloc(json_array_size(list), sizeof(*out->milters));
    if (out->milters == NULL) {
        modmta_err_set(err_r, path, "out of memory");
        return MODMTA_E_NOMEM;
    }
    json_array_foreach(list, i, v) {
        snprintf(path, sizeof(path), "%s.milters[%zu]", base, i);
        if (milter_conf_one(v, path, &out->milters[out->n], &one) < 0) {
            r = modmta_conf_error(host, r < 0 ? &more : err_r, one.path,
                                  "%s", one.msg);
            continue;
        }
        out->n++;
    }
    return r;
}

int
milter_conf_parse(const json_t *conf, const modmta_host *host,
                  struct milter_conf *out, modmta_err *err_r)
{
    struct milter_conf_top top = {0};
    int r;

    memset(out, 0, sizeof(*out));
    r = modmta_conf_parse_options(conf, host, milter_conf_options, &top,
                                  err_r);
    if (r == 0)
        r = milter_conf_list(top.milters, host, out, err_r);
    modmta_conf_free_options(milter_conf_options, &top);
    if (r < 0)
        milter_conf_free(out);
    return r;
}

void
milter_conf_free(struct milter_conf *c)
{
    free(c->milters);
    memset(c, 0, sizeof(*c));
}
