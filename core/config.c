/*
 * The configuration loader: JSON text in, a validated struct config out.
 *
 * Every object is checked for unknown keys first (in document order), then
 * its known keys are read in a fixed order. Each problem is added to the
 * error list with its JSON path and loading goes on, so one run reports
 * every mistake. Names in addresses are never resolved: only IP literals.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <modmta/conf.h>
#include <modmta/log.h>

#include "file_open_priv.h"

#ifndef MODMTA_MODULEDIR
#error "MODMTA_MODULEDIR must be defined by the build"
#endif

#define CONFIG_PATH_MAX 512
#define CONFIG_DEFAULT_NAME "(default)"
#define CONFIG_DAY 86400LL
#define CONFIG_YEAR (365 * CONFIG_DAY)

struct config_loader {
    struct config *cfg;
    struct config_errors *errs;
    int failed;
};

/* One integer of "limits" or "queue". */
struct config_num {
    const char *key;
    size_t offset;
    int wide;                      /* long long, else long */
    long long def;
    long long min;
    long long max;
    int seconds;                   /* a time: "30s", "5m", "4h", "2d" too */
    int bytes;                     /* a size: "512k", "20M" too */
};

#define CONFIG_NUM(type, field, wide, def, min, max) \
    { #field, offsetof(type, field), wide, def, min, max, 0, 0 }
#define CONFIG_TIME(type, field, def, min, max) \
    { #field, offsetof(type, field), 0, def, min, max, 1, 0 }
#define CONFIG_SIZE(type, field, def, min, max) \
    { #field, offsetof(type, field), 1, def, min, max, 0, 1 }

static const struct config_num config_limits_nums[] = {
    CONFIG_NUM(struct config_limits, max_sessions, 0, 1000, 1, INT_MAX),
    CONFIG_NUM(struct config_limits, max_sessions_per_client, 0, 50, 1,
               INT_MAX),
    CONFIG_SIZE(struct config_limits, message_size, 20000000, 0, LLONG_MAX),
    CONFIG_NUM(struct config_limits, recipients, 0, 100, 1, INT_MAX),
    CONFIG_TIME(struct config_limits, command_timeout, 300, 1, CONFIG_DAY),
    CONFIG_TIME(struct config_limits, data_timeout, 600, 1, CONFIG_DAY),
    CONFIG_NUM(struct config_limits, errors, 0, 10, 1, INT_MAX),
    CONFIG_NUM(struct config_limits, rewrite_depth, 0, 10, 1, 1000),
    CONFIG_NUM(struct config_limits, rewrite_max, 0, 1000, 1, INT_MAX),
    CONFIG_NUM(struct config_limits, greet_pause, 0, 0, 0, 60000),
    CONFIG_NUM(struct config_limits, max_hops, 0, 50, 1, 1000),
    CONFIG_TIME(struct config_limits, data_total_timeout, 0, 0,
                CONFIG_DAY),
    CONFIG_NUM(struct config_limits, stress_threshold, 0, 80, 0, 100),
    CONFIG_TIME(struct config_limits, stress_timeout, 10, 1, CONFIG_DAY),
    { NULL, 0, 0, 0, 0, 0, 0, 0 }
};

static const struct config_num config_queue_nums[] = {
    CONFIG_TIME(struct config_queue, lifetime, 432000, 1, CONFIG_YEAR),
    CONFIG_TIME(struct config_queue, retry_min, 300, 1, CONFIG_YEAR),
    CONFIG_TIME(struct config_queue, retry_max, 4000, 1, CONFIG_YEAR),
    CONFIG_NUM(struct config_queue, workers, 0, 4, 1, 1024),
    CONFIG_NUM(struct config_queue, outbound_workers, 0, 100, 1, 4096),
    CONFIG_NUM(struct config_queue, destination_concurrency, 0, 20, 1,
               1000),
    CONFIG_NUM(struct config_queue, destination_recipients, 0, 50, 1,
               1000),
    CONFIG_TIME(struct config_queue, delay_warning, 0, 0, CONFIG_YEAR),
    CONFIG_NUM(struct config_queue, active_limit, 0, 10000, 1, 1000000),
    { NULL, 0, 0, 0, 0, 0, 0, 0 }
};

static const char *const config_top_keys[] = {
    "hostname", "user", "run_as_root", "daemonize", "pid_file", "spool",
    "control_socket", "module_path", "local_domains", "recipient_delimiter",
    "log", "limits", "smtp", "queue", "dns", "tls", "redis", "listen",
    "modules", "local_submission", NULL
};
static const char *const config_local_keys[] = {
    "socket", "maildrop", "domain", "pickup_interval", NULL
};
static const char *const config_dns_keys[] = {
    "servers", "timeout", "trust_anchor", NULL
};
static const char *const config_smtp_keys[] = {
    "helo_required", "strict_envelopes", NULL
};
static const char *const config_log_keys[] = {
    "level", "syslog", "facility", NULL
};
static const char *const config_tls_keys[] = {
    "cert", "key", "min_version", "ciphers", "sni", NULL
};
static const char *const config_sni_keys[] = {
    "names", "cert", "key", NULL
};
static const char *const config_redis_keys[] = {
    "address", "db", "prefix", "password", "pool", "timeout",
    "connect_timeout", "sentinels", "master", NULL
};
static const char *const config_listen_keys[] = {
    "name", "address", "protocol", "tls", "auth", NULL
};

static const char *const config_log_levels[] = {
    "err", "warn", "notice", "info", "debug", NULL
};
static const int config_log_values[] = {
    MODMTA_LOG_ERR, MODMTA_LOG_WARN, MODMTA_LOG_NOTICE, MODMTA_LOG_INFO,
    MODMTA_LOG_DEBUG
};
static const char *const config_facilities[] = {
    "mail", "daemon", "user", "local0", "local1", "local2", "local3",
    "local4", "local5", "local6", "local7", NULL
};
static const char *const config_tls_versions[] = {
    "TLSv1.2", "TLSv1.3", NULL
};
/* Indexed by enum config_tls_mode and enum config_auth_mode. */
static const char *const config_tls_modes[] = {
    "none", "starttls", "starttls-required", "implicit", NULL
};
static const char *const config_auth_modes[] = {
    "optional", "required", NULL
};

static void config_errors_vadd(struct config_errors *e, const char *path,
                               const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void config_err(struct config_loader *ld, const char *path,
                       const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- error list ---- */

static void
config_errors_vadd(struct config_errors *e, const char *path,
                   const char *fmt, va_list ap)
{
    char *msg, *line, **msgs;

    if (vasprintf(&msg, fmt, ap) < 0)
        return;
    if (path != NULL && *path != '\0') {
        if (asprintf(&line, "%s: %s", path, msg) < 0)
            line = NULL;
        free(msg);
    } else {
        line = msg;
    }
    if (line == NULL)
        return;
    msgs = realloc(e->msgs, (e->n + 1) * sizeof(*msgs));
    if (msgs == NULL) {
        free(line);
        return;
    }
    msgs[e->n++] = line;
    e->msgs = msgs;
}

void
config_errors_add(struct config_errors *e, const char *path,
                  const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    config_errors_vadd(e, path, fmt, ap);
    va_end(ap);
}

void
config_errors_free(struct config_errors *e)
{
    size_t i;

    if (e == NULL)
        return;
    for (i = 0; i < e->n; i++)
        free(e->msgs[i]);
    free(e->msgs);
    e->msgs = NULL;
    e->n = 0;
}

/* Record an error; the load fails even if the list could not grow. */
static void
config_err(struct config_loader *ld, const char *path, const char *fmt, ...)
{
    va_list ap;

    ld->failed = 1;
    va_start(ap, fmt);
    config_errors_vadd(ld->errs, path, fmt, ap);
    va_end(ap);
}

/* ---- small helpers ---- */

/* Paths only grow as deep as the document; a cut one ends in "...". */
static void
config_path_key(char *buf, const char *parent, const char *key)
{
    if (snprintf(buf, CONFIG_PATH_MAX, "%s.%s", parent, key) >=
        CONFIG_PATH_MAX)
        strcpy(buf + CONFIG_PATH_MAX - 4, "...");
}

static void
config_path_index(char *buf, const char *parent, size_t i)
{
    if (snprintf(buf, CONFIG_PATH_MAX, "%s[%zu]", parent, i) >=
        CONFIG_PATH_MAX)
        strcpy(buf + CONFIG_PATH_MAX - 4, "...");
}

static char *
config_strdup(struct config_loader *ld, const char *s)
{
    char *d = strdup(s);

    if (d == NULL)
        config_err(ld, NULL, "out of memory");
    return d;
}

static void
config_strlist_free(char **list)
{
    size_t i;

    if (list == NULL)
        return;
    for (i = 0; list[i] != NULL; i++)
        free(list[i]);
    free(list);
}

static int
config_in_list(const char *s, const char *const *list)
{
    size_t i;

    for (i = 0; list[i] != NULL; i++)
        if (strcmp(s, list[i]) == 0)
            return (int)i;
    return -1;
}

/* "a, b, c" for messages; the caller frees. */
static char *
config_join(const char *const *list)
{
    size_t i, len = 1;
    char *s;

    for (i = 0; list[i] != NULL; i++)
        len += strlen(list[i]) + 2;
    s = malloc(len);
    if (s == NULL)
        return NULL;
    *s = '\0';
    for (i = 0; list[i] != NULL; i++) {
        if (i > 0)
            strcat(s, ", ");
        strcat(s, list[i]);
    }
    return s;
}

/* Letters, digits, '-' and '.' in non-empty labels of at most 63. */
static int
config_is_domain(const char *s)
{
    size_t label = 0, total = 0;

    for (; *s != '\0'; s++, total++) {
        if (*s == '.') {
            if (label == 0)
                return 0;
            label = 0;
        } else if (isalnum((unsigned char)*s) || *s == '-') {
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return label > 0 && total <= 253;
}

/* Letters, digits and the given punctuation, at least one character. */
static int
config_is_word(const char *s, const char *punct)
{
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; s++)
        if (!isalnum((unsigned char)*s) && strchr(punct, *s) == NULL)
            return 0;
    return 1;
}

static void
config_lower(char *s)
{
    for (; *s != '\0'; s++)
        *s = (char)tolower((unsigned char)*s);
}

static void
config_strip_dot(char *s)
{
    size_t n = strlen(s);

    if (n > 1 && s[n - 1] == '.')
        s[n - 1] = '\0';
}

/* ---- typed getters: 1 set, 0 absent, -1 wrong (reported) ---- */

static void
config_unknown_keys(struct config_loader *ld, const json_t *obj,
                    const char *path, const char *const *known)
{
    char p[CONFIG_PATH_MAX];
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)obj, key, v) {
        if (config_in_list(key, known) < 0) {
            config_path_key(p, path, key);
            config_err(ld, p, "unknown key");
        }
    }
}

/* An object at obj.key; absent is fine. */
static const json_t *
config_object(struct config_loader *ld, const json_t *obj, const char *path,
              const char *key, const char *const *known)
{
    char p[CONFIG_PATH_MAX];
    const json_t *v = json_object_get(obj, key);

    if (v == NULL)
        return NULL;
    config_path_key(p, path, key);
    if (!json_is_object(v)) {
        config_err(ld, p, "expected an object");
        return NULL;
    }
    config_unknown_keys(ld, v, p, known);
    return v;
}

static int
config_str(struct config_loader *ld, const json_t *obj, const char *path,
           const char *key, const char *def, char **out)
{
    char p[CONFIG_PATH_MAX];
    const json_t *v = json_object_get(obj, key);

    if (v == NULL) {
        *out = def != NULL ? config_strdup(ld, def) : NULL;
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) == 0) {
        config_path_key(p, path, key);
        config_err(ld, p, "expected a non-empty string");
        *out = NULL;
        return -1;
    }
    *out = config_strdup(ld, json_string_value(v));
    return 1;
}

static int
config_bool(struct config_loader *ld, const json_t *obj, const char *path,
            const char *key, int *out)
{
    char p[CONFIG_PATH_MAX];
    const json_t *v = json_object_get(obj, key);

    if (v == NULL)
        return 0;
    if (!json_is_boolean(v)) {
        config_path_key(p, path, key);
        config_err(ld, p, "expected true or false");
        return -1;
    }
    *out = json_is_true(v);
    return 1;
}

static int
config_int(struct config_loader *ld, const json_t *obj, const char *path,
           const char *key, long long min, long long max, long long *out)
{
    char p[CONFIG_PATH_MAX];
    const json_t *v = json_object_get(obj, key);
    long long n;

    if (v == NULL)
        return 0;
    n = json_is_integer(v) ? json_integer_value(v) : 0;
    if (!json_is_integer(v) || n < min || n > max) {
        config_path_key(p, path, key);
        if (max == LLONG_MAX)
            config_err(ld, p, "expected an integer >= %lld", min);
        else
            config_err(ld, p, "expected an integer from %lld to %lld",
                       min, max);
        return -1;
    }
    *out = n;
    return 1;
}

/* A string of digits and a unit (modmta_parse_duration_ms: "90", "90s",
 * "15m", "4h", "2d", "1w"; modmta_parse_size: "512k", "20M"), in whole
 * seconds or in octets; -1 if malformed or over max. */
static long long
config_units(const char *s, int bytes, long long max)
{
    long long n;

    if (bytes ? modmta_parse_size(s, &n) < 0
              : modmta_parse_duration_ms(s, &n) < 0 || n % 1000 != 0)
        return -1;
    n = bytes ? n : n / 1000;
    return n > max ? -1 : n;
}

/* A time in seconds (an integer, or a string with a unit: s m h d w),
 * or with bytes a size in octets (an integer, or with a unit: k M G T). */
static int
config_quantity(struct config_loader *ld, const json_t *obj, const char *path,
                const char *key, long long min, long long max, int bytes,
                long long *out)
{
    char p[CONFIG_PATH_MAX];
    const json_t *v = json_object_get(obj, key);
    long long n;

    if (v == NULL || !json_is_string(v))
        return config_int(ld, obj, path, key, min, max, out);
    n = config_units(json_string_value(v), bytes, max);
    if (n < min) {
        config_path_key(p, path, key);
        if (bytes)
            config_err(ld, p, "\"%s\": expected a size of bytes, as an "
                       "integer or with a unit (\"512k\", \"20M\", \"1G\")",
                       json_string_value(v));
        else
            config_err(ld, p, "\"%s\": expected a time from %lld to %lld "
                       "seconds, as an integer or with a unit (\"30s\", "
                       "\"15m\", \"4h\", \"5d\")", json_string_value(v),
                       min, max);
        return -1;
    }
    *out = n;
    return 1;
}

/* A string from names; *out is its index. */
static int
config_enum(struct config_loader *ld, const json_t *obj, const char *path,
            const char *key, const char *const *names, int *out)
{
    char p[CONFIG_PATH_MAX], *all;
    const json_t *v = json_object_get(obj, key);
    int i;

    if (v == NULL)
        return 0;
    i = json_is_string(v) ? config_in_list(json_string_value(v), names) : -1;
    if (i < 0) {
        config_path_key(p, path, key);
        all = config_join(names);
        config_err(ld, p, "expected one of %s", all ? all : "(no memory)");
        free(all);
        return -1;
    }
    *out = i;
    return 1;
}

/* Normalises an element of a string list in place, reporting at path. */
typedef void config_item_fn(struct config_loader *ld, char *s,
                            const char *path);

/* An array of non-empty strings, NULL-terminated in *out; each element
 * goes through check (may be NULL). */
static int
config_strlist(struct config_loader *ld, const json_t *obj, const char *path,
               const char *key, config_item_fn *check, char ***out)
{
    char p[CONFIG_PATH_MAX], pi[CONFIG_PATH_MAX], **list;
    const json_t *v = json_object_get(obj, key), *s;
    size_t i, n = 0;
    int bad = 0;

    *out = NULL;
    if (v == NULL)
        return 0;
    config_path_key(p, path, key);
    if (!json_is_array(v)) {
        config_err(ld, p, "expected an array of strings");
        return -1;
    }
    list = calloc(json_array_size(v) + 1, sizeof(*list));
    if (list == NULL) {
        config_err(ld, NULL, "out of memory");
        return -1;
    }
    json_array_foreach(v, i, s) {
        config_path_index(pi, p, i);
        if (!json_is_string(s) || json_string_length(s) == 0) {
            config_err(ld, pi, "expected a non-empty string");
            bad = 1;
        } else if ((list[n] = config_strdup(ld, json_string_value(s)))) {
            if (check != NULL)
                check(ld, list[n], pi);
            n++;
        }
    }
    *out = list;
    return bad ? -1 : 1;
}

/* ---- addresses ---- */

static int
config_parse_port(const char *s, in_port_t *port_r)
{
    long n = 0;

    if (*s == '\0' || strlen(s) > 5)
        return -1;
    for (; *s != '\0'; s++) {
        if (!isdigit((unsigned char)*s))
            return -1;
        n = n * 10 + (*s - '0');
    }
    if (n < 1 || n > 65535)
        return -1;
    *port_r = htons((in_port_t)n);
    return 0;
}

/*
 * "IPv4:port" or "[IPv6]:port" into ss, without any name resolution.
 * On failure, why holds what is wrong.
 */
static int
config_parse_address(const char *s, struct sockaddr_storage *ss,
                     socklen_t *len_r, char *why, size_t whylen)
{
    char host[INET6_ADDRSTRLEN];
    const char *start, *end, *port;
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    in_port_t nport;
    int v6 = s[0] == '[';

    if (v6) {
        start = s + 1;
        end = strchr(start, ']');
        if (end == NULL || end[1] != ':') {
            snprintf(why, whylen, "expected \"[IPv6]:port\"");
            return -1;
        }
        port = end + 2;
    } else {
        start = s;
        end = strrchr(s, ':');
        if (end == NULL) {
            snprintf(why, whylen,
                     "expected \"IPv4:port\" or \"[IPv6]:port\"");
            return -1;
        }
        if (memchr(s, ':', (size_t)(end - s)) != NULL) {
            snprintf(why, whylen,
                     "an IPv6 address goes in brackets: \"[IPv6]:port\"");
            return -1;
        }
        port = end + 1;
    }
    if (config_parse_port(port, &nport) < 0) {
        snprintf(why, whylen, "expected a port from 1 to 65535");
        return -1;
    }
    if (end == start || (size_t)(end - start) >= sizeof(host)) {
        snprintf(why, whylen, "expected an IP address before the port");
        return -1;
    }
    memcpy(host, start, (size_t)(end - start));
    host[end - start] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (v6 && inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = nport;
        *len_r = sizeof(*sin6);
        return 0;
    }
    if (!v6 && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = nport;
        *len_r = sizeof(*sin);
        return 0;
    }
    if (!v6 && config_is_domain(host) && strspn(host, "0123456789.") <
        strlen(host))
        snprintf(why, whylen, "\"%s\" is a host name, expected an IP "
                 "address (names are never resolved)", host);
    else
        snprintf(why, whylen, "\"%s\" is not an IPv%d address", host,
                 v6 ? 6 : 4);
    return -1;
}

static int
config_sa_equal(const struct config_listener *a,
                const struct config_listener *b)
{
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)&a->sa;
    const struct sockaddr_in *b4 = (const struct sockaddr_in *)&b->sa;
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&a->sa;
    const struct sockaddr_in6 *b6 = (const struct sockaddr_in6 *)&b->sa;

    if (a->salen == 0 || a->sa.ss_family != b->sa.ss_family)
        return 0;
    if (a->sa.ss_family == AF_INET)
        return a4->sin_port == b4->sin_port &&
               a4->sin_addr.s_addr == b4->sin_addr.s_addr;
    return a6->sin6_port == b6->sin6_port &&
           memcmp(&a6->sin6_addr, &b6->sin6_addr, sizeof(a6->sin6_addr)) == 0;
}

/* ---- sections ---- */

static char *
config_system_hostname(struct config_loader *ld)
{
    char buf[256];

    if (gethostname(buf, sizeof(buf)) < 0 || buf[0] == '\0')
        return config_strdup(ld, "localhost");
    buf[sizeof(buf) - 1] = '\0';
    return config_strdup(ld, buf);
}

static void
config_load_hostname(struct config_loader *ld, const json_t *root)
{
    struct config *cfg = ld->cfg;

    if (config_str(ld, root, "$", "hostname", NULL, &cfg->hostname) == 0) {
        cfg->hostname = config_system_hostname(ld);
        return;
    }
    if (cfg->hostname == NULL)
        return;
    config_strip_dot(cfg->hostname);
    if (!config_is_domain(cfg->hostname))
        config_err(ld, "$.hostname", "\"%s\" is not a valid host name",
                   cfg->hostname);
}

static void
config_load_paths(struct config_loader *ld, const json_t *root)
{
    struct config *cfg = ld->cfg;
    struct sockaddr_un sun;
    int set;

    config_str(ld, root, "$", "user", NULL, &cfg->user);
    config_bool(ld, root, "$", "run_as_root", &cfg->run_as_root);
    config_bool(ld, root, "$", "daemonize", &cfg->daemonize);
    config_str(ld, root, "$", "pid_file", NULL, &cfg->pid_file);
    config_str(ld, root, "$", "spool", "/var/spool/modmta", &cfg->spool);
    set = config_str(ld, root, "$", "control_socket", NULL,
                     &cfg->control_socket);
    if (set == 0 && cfg->spool != NULL &&
        asprintf(&cfg->control_socket, "%s/control.sock", cfg->spool) < 0) {
        cfg->control_socket = NULL;
        config_err(ld, NULL, "out of memory");
    }
    if (cfg->control_socket != NULL &&
        strlen(cfg->control_socket) >= sizeof(sun.sun_path))
        config_err(ld, "$.control_socket", "\"%s\"%s is longer than %zu "
                   "bytes, the limit of a socket path", cfg->control_socket,
                   set ? "" : " (from spool)", sizeof(sun.sun_path) - 1);
    if (config_strlist(ld, root, "$", "module_path", NULL,
                       &cfg->module_path) == 0) {
        cfg->module_path = calloc(2, sizeof(char *));
        if (cfg->module_path == NULL)
            config_err(ld, NULL, "out of memory");
        else
            cfg->module_path[0] = config_strdup(ld, MODMTA_MODULEDIR);
    }
}

/* A path under the spool unless set; a socket path must fit sun_path. */
static void
config_spool_path(struct config_loader *ld, const json_t *obj,
                  const char *key, const char *name, char **out)
{
    struct sockaddr_un sun;
    int set = config_str(ld, obj, "$.local_submission", key, NULL, out);

    if (set == 0 && ld->cfg->spool != NULL &&
        asprintf(out, "%s/%s", ld->cfg->spool, name) < 0) {
        *out = NULL;
        config_err(ld, NULL, "out of memory");
    }
    if (strcmp(key, "socket") == 0 && *out != NULL &&
        strlen(*out) >= sizeof(sun.sun_path))
        config_err(ld, "$.local_submission.socket", "\"%s\"%s is longer "
                   "than %zu bytes, the limit of a socket path", *out,
                   set ? "" : " (from spool)", sizeof(sun.sun_path) - 1);
}

static void
config_load_local(struct config_loader *ld, const json_t *root)
{
    struct config_local *l = &ld->cfg->local;
    const json_t *o = config_object(ld, root, "$", "local_submission",
                                    config_local_keys);
    long long v = 60;

    config_spool_path(ld, o, "socket", "public/submit.sock", &l->socket);
    config_spool_path(ld, o, "maildrop", "maildrop", &l->maildrop);
    if (config_str(ld, o, "$.local_submission", "domain", NULL,
                   &l->domain) > 0) {
        config_lower(l->domain);
        if (!config_is_domain(l->domain))
            config_err(ld, "$.local_submission.domain", "\"%s\" is not a "
                       "domain name", l->domain);
    } else if (ld->cfg->hostname != NULL) {
        l->domain = config_strdup(ld, ld->cfg->hostname);
    }
    if (o != NULL)
        config_quantity(ld, o, "$.local_submission", "pickup_interval", 1,
                        CONFIG_DAY, 0, &v);
    l->pickup_interval = (long)v;
}

static void
config_domain(struct config_loader *ld, char *s, const char *path)
{
    config_lower(s);
    config_strip_dot(s);
    if (!config_is_domain(s))
        config_err(ld, path, "\"%s\" is not a domain name", s);
}

/* The default is "localhost" and the host name, which is not checked:
 * the system's name is what it is. */
static void
config_load_domains(struct config_loader *ld, const json_t *root)
{
    struct config *cfg = ld->cfg;

    if (config_strlist(ld, root, "$", "local_domains", config_domain,
                       &cfg->local_domains) != 0)
        return;
    cfg->local_domains = calloc(3, sizeof(char *));
    if (cfg->local_domains == NULL) {
        config_err(ld, NULL, "out of memory");
        return;
    }
    cfg->local_domains[0] = config_strdup(ld, "localhost");
    if (cfg->hostname != NULL &&
        strcasecmp(cfg->hostname, "localhost") != 0) {
        cfg->local_domains[1] = config_strdup(ld, cfg->hostname);
        if (cfg->local_domains[1] != NULL) {
            config_lower(cfg->local_domains[1]);
            config_strip_dot(cfg->local_domains[1]);
        }
    }
}

/* Characters that cannot cut a local part: letters and digits (names),
 * what RFC 5322 gives a meaning (quotes, specials), and '.', the
 * Maildir++ folder separator. */
#define CONFIG_DELIM_MAX 8
static void
config_load_delimiter(struct config_loader *ld, const json_t *root)
{
    const char *d;
    size_t i;

    if (config_str(ld, root, "$", "recipient_delimiter", NULL,
                   &ld->cfg->recipient_delimiter) == 0 ||
        (d = ld->cfg->recipient_delimiter) == NULL)
        return;
    for (i = 0; d[i] != '\0'; i++)
        if (!isgraph((unsigned char)d[i]) || isalnum((unsigned char)d[i]) ||
            strchr("@\"\\.()<>,;:[]", d[i]) != NULL)
            break;
    if (i == 0 || d[i] != '\0' || i > CONFIG_DELIM_MAX)
        config_err(ld, "$.recipient_delimiter", "expected 1 to %d "
                   "delimiter characters (\"+\", \"+-\"): no letter, "
                   "digit, space, control character or any of "
                   "@ \" \\ . ( ) < > , ; : [ ]", CONFIG_DELIM_MAX);
}

static void
config_load_log(struct config_loader *ld, const json_t *root)
{
    struct config *cfg = ld->cfg;
    const json_t *log = config_object(ld, root, "$", "log", config_log_keys);
    int level = 3;   /* index of "info" */
    int facility = 0;

    if (log != NULL) {
        config_enum(ld, log, "$.log", "level", config_log_levels, &level);
        config_bool(ld, log, "$.log", "syslog", &cfg->log_syslog);
        config_enum(ld, log, "$.log", "facility", config_facilities,
                    &facility);
    }
    cfg->log_level = config_log_values[level];
    cfg->log_facility = config_strdup(ld, config_facilities[facility]);
}

/* Both off by default, as in Postfix (smtpd_helo_required,
 * strict_rfc821_envelopes) and Sendmail: the dialogue an administrator
 * types into telnet ("mail from:user@host", no HELO) works. */
static void
config_load_smtp(struct config_loader *ld, const json_t *root)
{
    struct config *cfg = ld->cfg;
    const json_t *smtp = config_object(ld, root, "$", "smtp",
                                       config_smtp_keys);

    if (smtp != NULL) {
        config_bool(ld, smtp, "$.smtp", "helo_required",
                    &cfg->smtp.helo_required);
        config_bool(ld, smtp, "$.smtp", "strict_envelopes",
                    &cfg->smtp.strict_envelopes);
    }
}

static void
config_load_nums(struct config_loader *ld, const json_t *root,
                 const char *key, const struct config_num *nums, void *out)
{
    char path[CONFIG_PATH_MAX];
    const char *known[16];
    const json_t *obj;
    long long v;
    size_t i;

    for (i = 0; nums[i].key != NULL; i++)
        known[i] = nums[i].key;
    known[i] = NULL;
    obj = config_object(ld, root, "$", key, known);
    config_path_key(path, "$", key);
    for (i = 0; nums[i].key != NULL; i++) {
        v = nums[i].def;
        if (obj != NULL && (nums[i].seconds || nums[i].bytes))
            config_quantity(ld, obj, path, nums[i].key, nums[i].min,
                            nums[i].max, nums[i].bytes, &v);
        else if (obj != NULL)
            config_int(ld, obj, path, nums[i].key, nums[i].min, nums[i].max,
                       &v);
        if (nums[i].wide)
            *(long long *)((char *)out + nums[i].offset) = v;
        else
            *(long *)((char *)out + nums[i].offset) = (long)v;
    }
}

static void
config_load_queue(struct config_loader *ld, const json_t *root)
{
    struct config_queue *q = &ld->cfg->queue;

    config_load_nums(ld, root, "queue", config_queue_nums, q);
    if (q->retry_max < q->retry_min)
        config_err(ld, "$.queue.retry_max", "%ld is less than retry_min "
                   "(%ld)", q->retry_max, q->retry_min);
}

/* "mail.example.org" or "*.example.net" (lower-cased in place). */
static void
config_sni_name(struct config_loader *ld, char *s, const char *path)
{
    config_lower(s);
    config_strip_dot(s);
    if (!config_is_domain(strncmp(s, "*.", 2) == 0 ? s + 2 : s))
        config_err(ld, path, "\"%s\" is neither a host name nor "
                   "\"*.domain\"", s);
}

/* The entry where names[b] of entry j already appears (before it, or
 * earlier in j itself), or -1 when it is new. */
static long
config_sni_seen(const struct config_tls *t, size_t j, size_t b)
{
    const char *name = t->sni[j].names[b];
    size_t i, a;

    for (i = 0; i <= j; i++)
        for (a = 0; t->sni[i].names != NULL && t->sni[i].names[a] != NULL
                    && (i < j || a < b); a++)
            if (strcmp(t->sni[i].names[a], name) == 0)
                return (long)i;
    return -1;
}

/* A name in two places would make the choice depend on their order. */
static void
config_sni_duplicates(struct config_loader *ld, size_t j)
{
    const struct config_tls *t = &ld->cfg->tls;
    char p[CONFIG_PATH_MAX];
    size_t b;
    long i;

    for (b = 0; t->sni[j].names != NULL && t->sni[j].names[b] != NULL; b++) {
        i = config_sni_seen(t, j, b);
        if (i < 0)
            continue;
        snprintf(p, sizeof(p), "$.tls.sni[%zu].names[%zu]", j, b);
        config_err(ld, p, "\"%s\" is already in $.tls.sni[%ld]",
                   t->sni[j].names[b], i);
    }
}

static void
config_load_sni(struct config_loader *ld, const json_t *tls)
{
    struct config_tls *t = &ld->cfg->tls;
    const json_t *arr = json_object_get(tls, "sni"), *e;
    char p[CONFIG_PATH_MAX], pk[CONFIG_PATH_MAX];
    size_t i;

    if (arr == NULL)
        return;
    if (!json_is_array(arr)) {
        config_err(ld, "$.tls.sni", "expected an array of objects");
        return;
    }
    if (t->cert == NULL)
        config_err(ld, "$.tls.sni", "needs a default certificate in "
                   "tls.cert (for clients that send no name or another)");
    t->sni = calloc(json_array_size(arr) + 1, sizeof(*t->sni));
    if (t->sni == NULL) {
        config_err(ld, NULL, "out of memory");
        return;
    }
    json_array_foreach(arr, i, e) {
        struct config_tls_sni *n = &t->sni[t->nsni++];

        config_path_index(p, "$.tls.sni", i);
        if (!json_is_object(e)) {
            config_err(ld, p, "expected an object");
            continue;
        }
        config_unknown_keys(ld, e, p, config_sni_keys);
        config_path_key(pk, p, "names");
        if (config_strlist(ld, e, p, "names", config_sni_name, &n->names) == 0
            || (n->names != NULL && n->names[0] == NULL))
            config_err(ld, pk, "required, expected an array of host names");
        config_path_key(pk, p, "cert");
        if (config_str(ld, e, p, "cert", NULL, &n->cert) == 0)
            config_err(ld, pk, "required, expected a PEM file name");
        config_str(ld, e, p, "key", n->cert, &n->key);
        config_sni_duplicates(ld, i);
    }
}

static void
config_load_tls(struct config_loader *ld, const json_t *root)
{
    struct config_tls *t = &ld->cfg->tls;
    const json_t *tls = config_object(ld, root, "$", "tls", config_tls_keys);
    int version = 0;

    if (tls != NULL) {
        config_str(ld, tls, "$.tls", "cert", NULL, &t->cert);
        /* The key may sit in the certificate's PEM file. */
        config_str(ld, tls, "$.tls", "key", t->cert, &t->key);
        config_enum(ld, tls, "$.tls", "min_version", config_tls_versions,
                    &version);
        config_str(ld, tls, "$.tls", "ciphers", NULL, &t->ciphers);
        if (t->cert == NULL && json_object_get(tls, "key") != NULL)
            config_err(ld, "$.tls.key", "set without tls.cert");
        config_load_sni(ld, tls);
    }
    t->min_version = config_strdup(ld, config_tls_versions[version]);
}

/* A "dns.servers" entry, "IP" or "IP:port" / "[IPv6]:port", rewritten
 * in place as unbound's forwarder "IP" or "IP@port". */
static void
config_dns_server(struct config_loader *ld, char *s, const char *path)
{
    struct sockaddr_storage ss;
    struct in6_addr a6;
    struct in_addr a4;
    socklen_t len;
    char why[256], host[INET6_ADDRSTRLEN];
    int port;

    if (inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1)
        return;
    if (config_parse_address(s, &ss, &len, why, sizeof(why)) < 0) {
        config_err(ld, path, "\"%s\": %s", s, why);
        return;
    }
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host,
                  sizeof(host));
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    } else {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host,
                  sizeof(host));
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    /* Shorter than what it replaces: "[" "]" ":" become one "@". */
    snprintf(s, strlen(s) + 1, "%s@%d", host, port);
}

static void
config_load_dns(struct config_loader *ld, const json_t *root)
{
    struct config_dns *d = &ld->cfg->dns;
    const json_t *o = config_object(ld, root, "$", "dns", config_dns_keys);
    long long t = 10;
    struct stat st;

    d->timeout = 10;
    if (o == NULL)
        return;
    if (config_strlist(ld, o, "$.dns", "servers", config_dns_server,
                       &d->servers) > 0 && d->servers[0] == NULL)
        config_err(ld, "$.dns.servers", "expected at least one server");
    if (config_quantity(ld, o, "$.dns", "timeout", 1, 300, 0, &t) > 0)
        d->timeout = (long)t;
    if (config_str(ld, o, "$.dns", "trust_anchor", NULL,
                   &d->trust_anchor) > 0 && d->trust_anchor != NULL &&
        stat(d->trust_anchor, &st) < 0)
        config_err(ld, "$.dns.trust_anchor", "%s: %s", d->trust_anchor,
                   strerror(errno));
}

/* A Redis server's address (s: NULL if not a string): "IP:port",
 * "[IPv6]:port" or, with socket_ok, the absolute path of a UNIX socket. */
static void
config_redis_address(struct config_loader *ld, const char *s,
                     const char *path, int socket_ok)
{
    const char *expect = socket_ok ? "expected \"IP:port\", \"[IPv6]:port\" "
                                     "or the absolute path of a socket"
                                   : "expected \"IP:port\" or "
                                     "\"[IPv6]:port\"";
    size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
    struct sockaddr_storage ss;
    socklen_t len;
    char why[256];

    if (s == NULL)
        config_err(ld, path, "%s", expect);
    else if (s[0] != '/' && strchr(s, ':') == NULL)
        config_err(ld, path, "\"%s\": %s", s, expect);
    else if (s[0] == '/' && !socket_ok)
        config_err(ld, path, "\"%s\": %s", s, expect);
    else if (s[0] == '/' && strlen(s) > max)
        config_err(ld, path, "\"%s\" is longer than %zu bytes, the limit "
                   "of a socket path", s, max);
    else if (s[0] != '/' &&
             config_parse_address(s, &ss, &len, why, sizeof(why)) < 0)
        config_err(ld, path, "\"%s\": %s", s, why);
}

/* A "redis.sentinels" entry. */
static void
config_redis_sentinel(struct config_loader *ld, char *s, const char *path)
{
    config_redis_address(ld, s, path, 0);
}

/* "address", or "sentinels" with "master". */
static void
config_redis_server(struct config_loader *ld, json_t *r)
{
    const json_t *addr = json_object_get(r, "address");
    const json_t *master = json_object_get(r, "master");
    char **sentinels = NULL;
    int has = config_strlist(ld, r, "$.redis", "sentinels",
                             config_redis_sentinel, &sentinels);

    if (has > 0 && sentinels[0] == NULL)
        config_err(ld, "$.redis.sentinels", "expected at least one "
                   "\"IP:port\"");
    config_strlist_free(sentinels);
    if (has != 0 && addr != NULL)
        config_err(ld, "$.redis.address", "either \"address\" or "
                   "\"sentinels\", not both");
    else if (addr != NULL)
        config_redis_address(ld, json_string_value(addr), "$.redis.address",
                             1);
    else if (has == 0)
        json_object_set_new(r, "address", json_string("127.0.0.1:6379"));
    if (has == 0 && master != NULL)
        config_err(ld, "$.redis.master", "only with \"sentinels\"");
    else if (has != 0 && master == NULL)
        config_err(ld, "$.redis.master", "required with \"sentinels\": "
                   "the name the sentinels monitor");
    else if (master != NULL && (!json_is_string(master) ||
                                json_string_length(master) == 0))
        config_err(ld, "$.redis.master", "expected a non-empty string");
}

/* A time in seconds, written back as an integer (the backend reads
 * integers). */
static void
config_redis_time(struct config_loader *ld, json_t *r, const char *key,
                  long long def)
{
    long long t = def;

    if (config_quantity(ld, r, "$.redis", key, 1, 3600, 0, &t) >= 0)
        json_object_set_new(r, key, json_integer(t));
}

/*
 * Fill the defaults into the "redis" object itself, so that the modules
 * and the shared-state backend reading it later see every key.
 */
static void
config_load_redis(struct config_loader *ld, json_t *root)
{
    json_t *r = (json_t *)config_object(ld, root, "$", "redis",
                                        config_redis_keys);
    const json_t *prefix, *password;
    long long n = 0;

    if (r == NULL)
        return;
    config_redis_server(ld, r);
    if (config_int(ld, r, "$.redis", "db", 0, INT_MAX, &n) == 0)
        json_object_set_new(r, "db", json_integer(0));
    prefix = json_object_get(r, "prefix");
    if (prefix == NULL)
        json_object_set_new(r, "prefix", json_string("modmta:"));
    else if (!json_is_string(prefix))
        config_err(ld, "$.redis.prefix", "expected a string");
    password = json_object_get(r, "password");
    if (password != NULL && (!json_is_string(password) ||
                             json_string_length(password) == 0))
        config_err(ld, "$.redis.password", "expected a non-empty string");
    if (config_int(ld, r, "$.redis", "pool", 1, 64, &n) == 0)
        json_object_set_new(r, "pool", json_integer(4));
    config_redis_time(ld, r, "timeout", 2);
    config_redis_time(ld, r, "connect_timeout", 2);
    ld->cfg->redis = r;
}

static void
config_load_listener(struct config_loader *ld, const json_t *obj,
                     const char *path, struct config_listener *l)
{
    char p[CONFIG_PATH_MAX], why[256];
    int mode = ld->cfg->tls.cert != NULL ? TLS_STARTTLS : TLS_NONE;
    int auth = AUTH_OPTIONAL;

    config_unknown_keys(ld, obj, path, config_listen_keys);
    config_path_key(p, path, "name");
    if (config_str(ld, obj, path, "name", NULL, &l->name) == 0)
        config_err(ld, p, "required, expected a non-empty string");
    else if (l->name != NULL && !config_is_word(l->name, "-_."))
        config_err(ld, p, "\"%s\": expected letters, digits, '-', '_' "
                   "and '.'", l->name);
    config_path_key(p, path, "address");
    if (config_str(ld, obj, path, "address", NULL, &l->address) == 0)
        config_err(ld, p, "required, expected \"IPv4:port\" or "
                   "\"[IPv6]:port\"");
    else if (l->address != NULL &&
             config_parse_address(l->address, &l->sa, &l->salen, why,
                                  sizeof(why)) < 0)
        config_err(ld, p, "\"%s\": %s", l->address, why);
    config_str(ld, obj, path, "protocol", "smtp", &l->protocol);
    if (config_enum(ld, obj, path, "tls", config_tls_modes, &mode) == 1 &&
        mode != TLS_NONE && ld->cfg->tls.cert == NULL) {
        config_path_key(p, path, "tls");
        config_err(ld, p, "\"%s\" needs a certificate in tls.cert",
                   config_tls_modes[mode]);
    }
    config_enum(ld, obj, path, "auth", config_auth_modes, &auth);
    l->tls = (enum config_tls_mode)mode;
    l->auth = (enum config_auth_mode)auth;
}

static void
config_check_duplicates(struct config_loader *ld)
{
    const struct config *cfg = ld->cfg;
    char pi[CONFIG_PATH_MAX], pj[CONFIG_PATH_MAX], p[CONFIG_PATH_MAX];
    size_t i, j;

    for (j = 1; j < cfg->nlisteners; j++) {
        const struct config_listener *b = &cfg->listeners[j];

        config_path_index(pj, "$.listen", j);
        for (i = 0; i < j; i++) {
            const struct config_listener *a = &cfg->listeners[i];

            config_path_index(pi, "$.listen", i);
            if (a->name && b->name && strcmp(a->name, b->name) == 0) {
                config_path_key(p, pj, "name");
                config_err(ld, p, "\"%s\" is already the name of %s",
                           b->name, pi);
            }
            if (config_sa_equal(a, b)) {
                config_path_key(p, pj, "address");
                config_err(ld, p, "\"%s\" is already the address of %s",
                           b->address, pi);
            }
        }
    }
}

static void
config_load_listeners(struct config_loader *ld, const json_t *root)
{
    struct config *cfg = ld->cfg;
    const json_t *list = json_object_get(root, "listen"), *l;
    json_t *def = NULL;
    char p[CONFIG_PATH_MAX];
    size_t i;

    if (list == NULL)
        list = def = json_pack("[{s:s, s:s}]", "name", "smtp",
                               "address", "127.0.0.1:2525");
    if (list == NULL) {
        config_err(ld, NULL, "out of memory");
        return;
    }
    if (!json_is_array(list) || json_array_size(list) == 0) {
        config_err(ld, "$.listen", "expected a non-empty array of objects");
        json_decref(def);
        return;
    }
    cfg->listeners = calloc(json_array_size(list), sizeof(*cfg->listeners));
    if (cfg->listeners == NULL) {
        config_err(ld, NULL, "out of memory");
        json_decref(def);
        return;
    }
    cfg->nlisteners = json_array_size(list);
    json_array_foreach(list, i, l) {
        config_path_index(p, "$.listen", i);
        if (json_is_object(l))
            config_load_listener(ld, l, p, &cfg->listeners[i]);
        else
            config_err(ld, p, "expected an object");
    }
    json_decref(def);
    config_check_duplicates(ld);
}

static void
config_load_modules(struct config_loader *ld, json_t *root)
{
    json_t *mods = json_object_get(root, "modules"), *m, *name;
    char pi[CONFIG_PATH_MAX], p[CONFIG_PATH_MAX];
    size_t i;

    if (mods == NULL) {
        mods = json_array();
        if (mods == NULL || json_object_set_new(root, "modules", mods) < 0) {
            config_err(ld, NULL, "out of memory");
            return;
        }
    }
    if (!json_is_array(mods)) {
        config_err(ld, "$.modules", "expected an array of objects");
        return;
    }
    json_array_foreach(mods, i, m) {
        config_path_index(pi, "$.modules", i);
        if (!json_is_object(m)) {
            config_err(ld, pi, "expected an object");
            continue;
        }
        config_path_key(p, pi, "module");
        name = json_object_get(m, "module");
        if (name == NULL)
            config_err(ld, p, "required, expected a module name");
        else if (!json_is_string(name) ||
                 !config_is_word(json_string_value(name), "-_"))
            config_err(ld, p, "expected a module name (letters, digits, "
                       "'-' and '_')");
    }
    ld->cfg->modules = mods;
}

/* ---- entry points ---- */

static json_t *
config_parse(struct config_loader *ld, const char *path)
{
    modmta_err err = {"", ""};
    json_error_t jerr;
    struct stat st;
    json_t *root;
    FILE *fp;

    if (path == NULL) {
        root = json_loads(config_default_text(), JSON_REJECT_DUPLICATES,
                          &jerr);
    } else {
        fp = file_open_read(path, FILE_OPEN_MAX, &st, &err);
        if (fp == NULL) {
            config_err(ld, NULL, "%s", err.msg);
            return NULL;
        }
        root = json_loadf(fp, JSON_REJECT_DUPLICATES, &jerr);
        /* jansson takes a read error for the end of the text */
        if (ferror(fp)) {
            config_err(ld, NULL, "%s: %s", path, strerror(errno));
            json_decref(root);
            fclose(fp);
            return NULL;
        }
        fclose(fp);
    }
    if (root == NULL) {
        config_err(ld, NULL, "%s:%d:%d: %s", ld->cfg->path, jerr.line,
                   jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        config_err(ld, "$", "expected an object");
        json_decref(root);
        return NULL;
    }
    return root;
}

struct config *
config_load(const char *path, struct config_errors *errs)
{
    struct config_errors local = { NULL, 0 };
    struct config_loader ld = { NULL, errs ? errs : &local, 0 };
    struct config *cfg;
    json_t *root;

    cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        config_err(&ld, NULL, "out of memory");
        config_errors_free(&local);
        return NULL;
    }
    ld.cfg = cfg;
    cfg->path = config_strdup(&ld, path ? path : CONFIG_DEFAULT_NAME);
    root = cfg->path != NULL ? config_parse(&ld, path) : NULL;
    if (root != NULL) {
        cfg->root = root;
        config_unknown_keys(&ld, root, "$", config_top_keys);
        config_load_hostname(&ld, root);
        config_load_paths(&ld, root);
        config_load_domains(&ld, root);
        config_load_local(&ld, root);
        config_load_delimiter(&ld, root);
        config_load_log(&ld, root);
        config_load_nums(&ld, root, "limits", config_limits_nums,
                         &cfg->limits);
        config_load_smtp(&ld, root);
        config_load_queue(&ld, root);
        config_load_dns(&ld, root);
        config_load_tls(&ld, root);
        config_load_redis(&ld, root);
        config_load_listeners(&ld, root);
        config_load_modules(&ld, root);
    }
    config_errors_free(&local);
    if (ld.failed) {
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

void
config_free(struct config *cfg)
{
    size_t i;

    if (cfg == NULL)
        return;
    for (i = 0; i < cfg->nlisteners; i++) {
        free(cfg->listeners[i].name);
        free(cfg->listeners[i].address);
        free(cfg->listeners[i].protocol);
    }
    free(cfg->listeners);
    free(cfg->tls.cert);
    free(cfg->tls.key);
    free(cfg->tls.min_version);
    free(cfg->tls.ciphers);
    for (i = 0; i < cfg->tls.nsni; i++) {
        config_strlist_free(cfg->tls.sni[i].names);
        free(cfg->tls.sni[i].cert);
        free(cfg->tls.sni[i].key);
    }
    free(cfg->tls.sni);
    free(cfg->log_facility);
    config_strlist_free(cfg->dns.servers);
    free(cfg->dns.trust_anchor);
    config_strlist_free(cfg->local_domains);
    free(cfg->recipient_delimiter);
    config_strlist_free(cfg->module_path);
    free(cfg->local.socket);
    free(cfg->local.maildrop);
    free(cfg->local.domain);
    free(cfg->pid_file);
    free(cfg->control_socket);
    free(cfg->spool);
    free(cfg->user);
    free(cfg->hostname);
    free(cfg->path);
    json_decref(cfg->root);
    free(cfg);
}
