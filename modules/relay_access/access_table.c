/*
 * The access table: Sendmail's access(5) entries checked when the table
 * is read, so that a bad line is a config error with PATH:LINE instead
 * of a surprise at the first matching client. Checked entries are stored
 * under a canonical key ("connect:192.168.0", "ipv6:2001:0db8",
 * "to:nobody@") in an inline map of the SDK. A file: table is read here,
 * not by the SDK's file: backend, because only a reader that knows the
 * format can refuse a bad file when it changes and keep the previous
 * table (README.md); the re-reading is the SDK's (modmta/reload.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "access_table.h"

#define ACCESS_KEY_MAX 600

struct access_table {
    modmta_reload *file;       /* file: tables, re-read on change */
    modmta_map *map;           /* the other tables */
    int checked_values;        /* values were checked when read */
    const char *delims;        /* the host's recipient_delimiter */
};

static const char *const access_tags[] = {"connect", "from", "to"};
static const char *const access_tag_names[] = {"Connect", "From", "To"};

/* ---- actions ---- */

static int
access_word(const char *value, const char *word)
{
    return strcasecmp(value, word) == 0;
}

/* "x.y.z" with x matching the reply code's class. */
static int
access_esc_valid(const char *esc, size_t len, int code)
{
    unsigned a, b, c;
    int n = 0;
    char buf[16];

    if (len == 0 || len >= sizeof(buf))
        return 0;
    memcpy(buf, esc, len);
    buf[len] = '\0';
    if (sscanf(buf, "%u.%u.%u%n", &a, &b, &c, &n) != 3 ||
        (size_t)n != len || b > 999 || c > 999)
        return 0;
    return (int)a == code / 100;
}

static int
access_text_valid(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

/* "ERROR:" followed by [x.y.z:]nnn [text], optionally in double quotes. */
static int
access_error_parse(const char *s, access_result *r, modmta_err *err_r)
{
    const char *colon = strchr(s, ':'), *p = s, *esc = NULL;
    size_t esc_len = 0, len;
    char buf[ACCESS_TEXT_MAX + 32];

    if ((len = strlen(s)) >= sizeof(buf))
        goto bad;
    if (s[0] == '"') {
        if (len < 2 || s[len - 1] != '"')
            goto bad;
        memcpy(buf, s + 1, len - 2);
        buf[len - 2] = '\0';
        return access_error_parse(buf, r, err_r);
    }
    /* An enhanced code before the reply code: no space before a colon. */
    if (colon != NULL && strcspn(s, " ") > (size_t)(colon - s) &&
        memchr(s, '.', (size_t)(colon - s)) != NULL) {
        esc = s;
        esc_len = (size_t)(colon - s);
        p = colon + 1;
    }
    if (p[0] < '4' || p[0] > '5' || p[1] < '0' || p[1] > '9' ||
        p[2] < '0' || p[2] > '9' || (p[3] != '\0' && p[3] != ' '))
        goto bad;
    r->code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    if (esc != NULL && !access_esc_valid(esc, esc_len, r->code)) {
        modmta_err_set(err_r, NULL, "ERROR: bad enhanced status code "
                       "\"%.*s\" for %d", (int)esc_len, esc, r->code);
        return MODMTA_E_CONFIG;
    }
    snprintf(r->esc, sizeof(r->esc), "%.*s", (int)esc_len,
             esc != NULL ? esc : "");
    p += 3;
    while (*p == ' ')
        p++;
    if (!access_text_valid(p))
        goto bad;
    snprintf(r->text, sizeof(r->text), "%s", p);
    r->action = ACCESS_ERROR;
    return 0;
bad:
    modmta_err_set(err_r, NULL, "malformed ERROR action \"ERROR:%s\" "
                   "(expected ERROR:nnn text or ERROR:x.y.z:nnn text, "
                   "nnn a 4xx or 5xx code)", s);
    return MODMTA_E_CONFIG;
}

int
access_action_parse(const char *value, access_result *r, modmta_err *err_r)
{
    r->action = ACCESS_NONE;
    r->code = 0;
    r->esc[0] = r->text[0] = '\0';
    if (strncasecmp(value, "ERROR:", 6) == 0)
        return access_error_parse(value + 6, r, err_r);
    if (access_word(value, "OK"))
        r->action = ACCESS_OK;
    else if (access_word(value, "RELAY"))
        r->action = ACCESS_RELAY;
    else if (access_word(value, "REJECT"))
        r->action = ACCESS_REJECT;
    else if (access_word(value, "DISCARD"))
        r->action = ACCESS_DISCARD;
    else if (!access_word(value, "SKIP")) {
        modmta_err_set(err_r, NULL, "unknown action \"%s\" (expected OK, "
                       "RELAY, REJECT, DISCARD, SKIP or ERROR:...)", value);
        return MODMTA_E_CONFIG;
    }
    return 0;
}

/* ---- keys ---- */

static void
access_lower(char *s)
{
    for (; *s != '\0'; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s + 32);
}

/* "192.168.0" (1 to 4 decimal octets) into canonical form. 1 if body is
 * such a prefix, 0 if it is not made of digits and dots, <0 if it is but
 * malformed. */
static int
access_ipv4_key(const char *body, char *out, size_t len)
{
    unsigned o[4], n = 0;
    const char *p = body;
    char *end;
    unsigned long v;

    if (strspn(body, "0123456789.") != strlen(body))
        return 0;
    while (n < 4) {
        if (*p < '0' || *p > '9')
            return MODMTA_E_INVAL;
        v = strtoul(p, &end, 10);
        if (v > 255 || end - p > 3)
            return MODMTA_E_INVAL;
        o[n++] = (unsigned)v;
        p = end;
        if (*p == '\0')
            break;
        p++; /* the dot */
    }
    if (*p != '\0')
        return MODMTA_E_INVAL;
    if (n == 1)
        snprintf(out, len, "%u", o[0]);
    else if (n == 2)
        snprintf(out, len, "%u.%u", o[0], o[1]);
    else if (n == 3)
        snprintf(out, len, "%u.%u.%u", o[0], o[1], o[2]);
    else
        snprintf(out, len, "%u.%u.%u.%u", o[0], o[1], o[2], o[3]);
    return 1;
}

/* "ipv6:" and the first n groups of g, as 4 hex digits each. */
static void
access_ipv6_format(const unsigned g[8], unsigned n, char *out, size_t len)
{
    size_t off = (size_t)snprintf(out, len, "ipv6:");
    unsigned i;

    for (i = 0; i < n && off < len; i++)
        off += (size_t)snprintf(out + off, len - off, "%s%04x",
                                i > 0 ? ":" : "", g[i]);
}

static void
access_ipv6_groups(const unsigned char a[16], unsigned g[8])
{
    unsigned i;

    for (i = 0; i < 8; i++)
        g[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
}

/* An IPv6 address ("2001:db8::1") or Sendmail-style prefix of whole
 * groups ("2001:db8" = 2001:db8::/32). */
static int
access_ipv6_key(const char *body, char *out, size_t len)
{
    unsigned char a[16];
    unsigned g[8], n = 0;
    const char *p = body;
    char *end = (char *)body;
    unsigned long v;

    if (inet_pton(AF_INET6, body, a) == 1) {
        access_ipv6_groups(a, g);
        access_ipv6_format(g, 8, out, len);
        return 0;
    }
    while (n < 7) {
        v = strtoul(p, &end, 16);
        if (end == p || end - p > 4 || v > 0xffff ||
            (*end != ':' && *end != '\0'))
            return MODMTA_E_INVAL;
        g[n++] = (unsigned)v;
        if (*end == '\0')
            break;
        p = end + 1;
    }
    if (*end != '\0')
        return MODMTA_E_INVAL;
    access_ipv6_format(g, n, out, len);
    return 0;
}

/* A host name, domain, "user@domain", "user@" or "<>". */
static int
access_name_key(access_tag tag, int tagged, const char *body, char *out,
                size_t len)
{
    const char *at = strchr(body, '@');
    size_t n;

    if (strcmp(body, "<>") == 0) {
        snprintf(out, len, "<>");
        return tagged && tag == ACCESS_FROM ? 0 : MODMTA_E_INVAL;
    }
    if (strpbrk(body, "<>\"") != NULL || body[0] == '@' || body[0] == '.')
        return MODMTA_E_INVAL;
    if (at != NULL && (strchr(at + 1, '@') != NULL ||
                       (tagged && tag == ACCESS_CONNECT)))
        return MODMTA_E_INVAL;
    snprintf(out, len, "%s", body);
    n = strlen(out);
    if (n > 1 && out[n - 1] == '.' && out[n - 2] != '@')
        out[n - 1] = '\0'; /* a trailing dot on the domain */
    return 0;
}

/* The canonical form of an access key, or <0 with err_r->msg set. */
static int
access_key_canon(const char *key, char *out, size_t len, modmta_err *err_r)
{
    char body[ACCESS_KEY_MAX], canon[ACCESS_KEY_MAX];
    const char *colon = strchr(key, ':');
    int tag = -1, rc = 0, i;

    for (i = 0; i < 3 && colon != NULL; i++)
        if (strlen(access_tags[i]) == (size_t)(colon - key) &&
            strncasecmp(key, access_tags[i], (size_t)(colon - key)) == 0)
            tag = i;
    if (strlen(key) >= sizeof(body)) {
        modmta_err_set(err_r, NULL, "key too long");
        return MODMTA_E_CONFIG;
    }
    snprintf(body, sizeof(body), "%s", tag >= 0 ? colon + 1 : key);
    access_lower(body);
    if (tag < 0 && colon != NULL && strncmp(body, "ipv6:", 5) != 0) {
        modmta_err_set(err_r, NULL, "unknown tag \"%.*s:\" in \"%s\" "
                       "(expected Connect:, From: or To:)",
                       (int)(colon - key), key, key);
        return MODMTA_E_CONFIG;
    }
    if (body[0] == '\0')
        rc = MODMTA_E_INVAL;
    else if (strncmp(body, "ipv6:", 5) == 0)
        rc = tag > ACCESS_CONNECT ? MODMTA_E_INVAL
                                  : access_ipv6_key(body + 5, canon,
                                                    sizeof(canon));
    else if (tag == ACCESS_CONNECT && strchr(body, ':') != NULL)
        rc = access_ipv6_key(body, canon, sizeof(canon));
    else if ((rc = access_ipv4_key(body, canon, sizeof(canon))) == 1)
        rc = tag > ACCESS_CONNECT ? MODMTA_E_INVAL : 0;
    else if (rc == 0)
        rc = access_name_key((access_tag)(tag < 0 ? 0 : tag), tag >= 0,
                             body, canon, sizeof(canon));
    if (rc < 0) {
        modmta_err_set(err_r, NULL, "malformed key \"%s\"", key);
        return MODMTA_E_CONFIG;
    }
    snprintf(out, len, "%s%s%s", tag >= 0 ? access_tags[tag] : "",
             tag >= 0 ? ":" : "", canon);
    return 0;
}

/* Check one entry and add it to obj. `where` prefixes warnings. */
static int
access_entry_add(json_t *obj, const char *key, const char *value,
                 const char *where, modmta_err *err_r)
{
    char canon[ACCESS_KEY_MAX];
    access_result r;
    int rc;

    if (value[0] == '\0') {
        modmta_err_set(err_r, NULL, "key \"%s\" has no action", key);
        return MODMTA_E_CONFIG;
    }
    if ((rc = access_key_canon(key, canon, sizeof(canon), err_r)) < 0 ||
        (rc = access_action_parse(value, &r, err_r)) < 0)
        return rc;
    if (json_object_get(obj, canon) != NULL) {
        modmta_logf(MODMTA_LOG_WARN, "access %s: duplicate key \"%s\" "
                    "ignored", where, key);
        return 0;
    }
    if (json_object_set_new(obj, canon, json_string(value)) < 0) {
        modmta_err_set(err_r, NULL, "out of memory");
        return MODMTA_E_NOMEM;
    }
    return 0;
}

/* ---- the file ---- */

static int
access_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
           c == '\v';
}

/* One logical line "KEY ACTION..." (trimmed, comments gone). */
static int
access_file_entry(json_t *obj, char *line, const char *where,
                  modmta_err *err_r)
{
    char *value = line;

    while (*value != '\0' && !access_is_space(*value))
        value++;
    if (*value != '\0')
        *value++ = '\0';
    while (access_is_space(*value))
        value++;
    return access_entry_add(obj, line, value, where, err_r);
}

/* Parsing state of one file: the pending logical line and its start. */
struct access_reader {
    json_t *obj;
    const char *path;
    char *pending;
    size_t len, cap;
    unsigned start;
};

static int
access_reader_add(struct access_reader *rd, const char *sep, const char *s)
{
    size_t n = strlen(sep) + strlen(s);
    char *p;

    if (rd->len + n + 1 > rd->cap) {
        if ((p = realloc(rd->pending, rd->len + n + 64)) == NULL)
            return MODMTA_E_NOMEM;
        rd->pending = p;
        rd->cap = rd->len + n + 64;
    }
    rd->len += (size_t)sprintf(rd->pending + rd->len, "%s%s", sep, s);
    return 0;
}

static int
access_reader_flush(struct access_reader *rd, unsigned *errline,
                    modmta_err *err_r)
{
    char where[300];
    int rc;

    if (rd->start == 0)
        return 0;
    snprintf(where, sizeof(where), "%s:%u", rd->path, rd->start);
    rc = access_file_entry(rd->obj, rd->pending, where, err_r);
    if (rc < 0)
        *errline = rd->start;
    rd->start = 0;
    rd->len = 0;
    return rc;
}

/* One physical line, right-trimmed; a line starting with white space
 * continues the previous one (the SDK's file: format). */
static int
access_reader_feed(struct access_reader *rd, const char *line,
                   unsigned lineno, unsigned *errline, modmta_err *err_r)
{
    const char *p = line;
    int rc;

    while (access_is_space(*p))
        p++;
    if (*p == '\0' || *p == '#')
        return 0;
    *errline = lineno;
    if (p != line) {
        if (rd->start == 0) {
            modmta_err_set(err_r, NULL,
                           "continuation line without a preceding key");
            return MODMTA_E_CONFIG;
        }
        rc = access_reader_add(rd, " ", p);
    } else {
        if ((rc = access_reader_flush(rd, errline, err_r)) < 0)
            return rc;
        rd->start = lineno;
        *errline = lineno;
        rc = access_reader_add(rd, "", p);
    }
    if (rc < 0)
        modmta_err_set(err_r, NULL, "out of memory");
    return rc;
}

static int
access_file_lines(FILE *f, struct access_reader *rd, unsigned *errline,
                  modmta_err *err_r)
{
    unsigned lineno = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;

    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (memchr(line, '\0', (size_t)len) != NULL) {
            *errline = lineno;
            modmta_err_set(err_r, NULL, "line contains a NUL octet");
            rc = MODMTA_E_CONFIG;
            break;
        }
        while (len > 0 && access_is_space(line[len - 1]))
            line[--len] = '\0';
        rc = access_reader_feed(rd, line, lineno, errline, err_r);
    }
    /* getline() failing for want of memory sets no error flag: short of
     * the end is an error too, not a shorter file */
    if (rc == 0 && (ferror(f) || !feof(f))) {
        *errline = 0;
        modmta_err_set(err_r, NULL, "%s", strerror(errno));
        rc = MODMTA_E_IO;
    }
    if (rc == 0)
        rc = access_reader_flush(rd, errline, err_r);
    free(line);
    return rc;
}

/* Read and check the file into a new inline map (modmta/reload.h's
 * load). Errors: "PATH:LINE: what". */
static void *
access_file_load(FILE *f, const char *path, void *arg, modmta_err *err_r)
{
    struct access_reader rd = {.path = path};
    modmta_err e = {"", ""};
    modmta_map *m = NULL;
    unsigned errline = 0;
    int rc;

    (void)arg;
    if ((rd.obj = json_object()) == NULL) {
        modmta_err_set(err_r, NULL, "out of memory");
        return NULL;
    }
    rc = access_file_lines(f, &rd, &errline, &e);
    free(rd.pending);
    if (rc < 0 && errline > 0)
        modmta_err_set(err_r, NULL, "%s:%u: %s", path, errline, e.msg);
    else if (rc < 0)
        modmta_err_set(err_r, NULL, "%s: %s", path, e.msg);
    else
        m = modmta_map_open(rd.obj, NULL, err_r);
    json_decref(rd.obj);
    return m;
}

static void
access_file_free(void *map)
{
    modmta_map_close(map);
}

/* ---- opening ---- */

static modmta_map *
access_inline_read(const json_t *spec, const char *json_path,
                   modmta_err *err_r)
{
    json_t *obj = json_object();
    const char *key;
    json_t *v;
    char path[300];
    modmta_map *m = NULL;
    int rc = 0;

    if (obj == NULL) {
        modmta_err_set(err_r, json_path, "out of memory");
        return NULL;
    }
    json_object_foreach((json_t *)spec, key, v) {
        snprintf(path, sizeof(path), "%s.%s", json_path, key);
        if (!json_is_string(v)) {
            modmta_err_set(err_r, path, "expected an action string");
            rc = MODMTA_E_CONFIG;
        } else if ((rc = access_entry_add(obj, key, json_string_value(v),
                                          path, err_r)) < 0) {
            snprintf(err_r->path, sizeof(err_r->path), "%.*s",
                     (int)sizeof(err_r->path) - 1, path);
        }
        if (rc < 0)
            break;
    }
    if (rc == 0)
        m = modmta_map_open(obj, json_path, err_r);
    json_decref(obj);
    return m;
}

static int
access_open_map(access_table *t, const json_t *spec, const modmta_host *host,
                const char *json_path, modmta_err *err_r)
{
    const char *s;

    if (json_is_object(spec)) {
        t->checked_values = 1;
        t->map = access_inline_read(spec, json_path, err_r);
        return t->map != NULL ? 0 : -1;
    }
    if (!json_is_string(spec)) {
        modmta_err_set(err_r, json_path, "expected \"file:PATH\", "
                       "\"TYPE:ARGUMENT\" or an object");
        return -1;
    }
    s = json_string_value(spec);
    if (strncmp(s, "file:", 5) != 0) {
        t->map = modmta_map_open_host(spec, host, json_path, err_r);
        return t->map != NULL ? 0 : -1;
    }
    if (s[5] == '\0') {
        modmta_err_set(err_r, json_path, "file: map without a path");
        return -1;
    }
    t->checked_values = 1;
    t->file = modmta_reload_open(s + 5, access_file_load, access_file_free,
                                 NULL, json_path, err_r);
    return t->file != NULL ? 0 : -1;
}

access_table *
access_table_open(const json_t *spec, const modmta_host *host,
                  const char *json_path, modmta_err *err_r)
{
    access_table *t = calloc(1, sizeof(*t));

    if (t == NULL) {
        modmta_err_set(err_r, json_path, "out of memory");
        return NULL;
    }
    if (access_open_map(t, spec, host, json_path, err_r) < 0) {
        free(t);
        return NULL;
    }
    t->delims = host != NULL ? modmta_host_recipient_delimiter(host) : "";
    return t;
}

void
access_table_close(access_table *t)
{
    if (t == NULL)
        return;
    modmta_map_close(t->map);
    modmta_reload_close(t->file);
    free(t);
}

/* ---- lookups ---- */

/* Display form of a canonical key: "Connect:192.168.0", "IPv6:...". */
static void
access_rule_name(const char *canon, char *out, size_t len)
{
    int i;

    for (i = 0; i < 3; i++) {
        size_t n = strlen(access_tags[i]);

        if (strncmp(canon, access_tags[i], n) == 0 && canon[n] == ':') {
            snprintf(out, len, "%s:", access_tag_names[i]);
            access_rule_name(canon + n + 1, out + n + 1,
                             len > n + 1 ? len - n - 1 : 0);
            return;
        }
    }
    if (strncmp(canon, "ipv6:", 5) == 0)
        snprintf(out, len, "IPv6:%s", canon + 5);
    else
        snprintf(out, len, "%s", canon);
}

/* The outcome of one key: 1 a decision, 2 SKIP, 0 none, <0 error. */
static int
access_try(modmta_map *m, int tag, const char *body, access_result *r)
{
    char key[ACCESS_KEY_MAX], *value = NULL;
    modmta_err err = {"", ""};
    int rc;

    snprintf(key, sizeof(key), "%s%s%s", tag >= 0 ? access_tags[tag] : "",
             tag >= 0 ? ":" : "", body);
    rc = modmta_map_lookup(m, key, &value);
    if (rc <= 0)
        return rc;
    access_rule_name(key, r->rule, sizeof(r->rule));
    rc = access_action_parse(value, r, &err);
    modmta_free(value);
    if (rc < 0) {
        modmta_logf(MODMTA_LOG_ERR, "access %s: key \"%s\": %s",
                    modmta_map_name(m), key, err.msg);
        return MODMTA_E_TEMP;
    }
    return r->action == ACCESS_NONE ? 2 : 1;
}

/* The tagged key, then the untagged one. */
static int
access_try_both(modmta_map *m, access_tag tag, const char *body,
                access_result *r)
{
    int rc = access_try(m, (int)tag, body, r);

    return rc != 0 ? rc : access_try(m, -1, body, r);
}

/* The domain and its parents, most specific first. */
static int
access_try_domain(modmta_map *m, access_tag tag, const char *domain,
                  access_result *r)
{
    const char *d = domain;
    int rc;

    while (d != NULL && *d != '\0') {
        if ((rc = access_try_both(m, tag, d, r)) != 0)
            return rc;
        if (d[0] == '[')
            break; /* an address literal has no parent */
        d = strchr(d, '.');
        if (d != NULL)
            d++;
    }
    return 0;
}

static int
access_try_ip(modmta_map *m, const char *ip, access_result *r)
{
    unsigned char a[16];
    unsigned g[8], n;
    char key[64];
    char *dot;
    int rc;

    if (strncasecmp(ip, "::ffff:", 7) == 0 && strchr(ip, '.') != NULL)
        ip += 7;
    if (inet_pton(AF_INET, ip, a) == 1) {
        snprintf(key, sizeof(key), "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
        do {
            if ((rc = access_try_both(m, ACCESS_CONNECT, key, r)) != 0)
                return rc;
            dot = strrchr(key, '.');
            if (dot != NULL)
                *dot = '\0';
        } while (dot != NULL);
        return 0;
    }
    if (inet_pton(AF_INET6, ip, a) != 1)
        return 0;
    access_ipv6_groups(a, g);
    for (n = 8; n > 0; n--) {
        access_ipv6_format(g, n, key, sizeof(key));
        if ((rc = access_try_both(m, ACCESS_CONNECT, key, r)) != 0)
            return rc;
    }
    return 0;
}

static void
access_result_clear(access_result *r)
{
    memset(r, 0, sizeof(*r));
}

/* 2 (SKIP) becomes "no decision". */
static int
access_done(int rc, access_result *r)
{
    if (rc == 2) {
        r->action = ACCESS_NONE;
        return 0;
    }
    return rc;
}

/* The table's map for a decision, held until access_map_release. */
static modmta_map *
access_map_acquire(access_table *t)
{
    return t->file != NULL ? modmta_reload_acquire(t->file) : t->map;
}

static void
access_map_release(access_table *t, modmta_map *m)
{
    if (t->file != NULL)
        modmta_reload_release(t->file, m);
}

static int
access_client(modmta_map *m, const char *name, const char *ip,
              access_result *r)
{
    char host[MODMTA_ADDR_DOMAIN_MAX + 1];
    size_t n;
    int rc = 0;

    if (name != NULL && name[0] != '\0' && strcmp(name, "unknown") != 0 &&
        name[0] != '.') {
        snprintf(host, sizeof(host), "%s", name);
        access_lower(host);
        n = strlen(host);
        if (n > 0 && host[n - 1] == '.')
            host[n - 1] = '\0';
        rc = access_try_domain(m, ACCESS_CONNECT, host, r);
    }
    if (rc == 0 && ip != NULL)
        rc = access_try_ip(m, ip, r);
    return rc;
}

int
access_table_client(access_table *t, const char *name, const char *ip,
                    access_result *r)
{
    modmta_map *m = access_map_acquire(t);
    int rc;

    access_result_clear(r);
    rc = access_client(m, name, ip, r);
    access_map_release(t, m);
    return access_done(rc, r);
}

/* key, then (with a recipient_delimiter) key without its extension:
 * Postfix's "user+foo@domain, user@domain" and "user+foo@, user@". */
static int
access_try_user(modmta_map *m, access_tag tag, const char *key,
                const char *delims, access_result *r)
{
    char base[ACCESS_KEY_MAX], ext[ACCESS_KEY_MAX];
    int rc = access_try_both(m, tag, key, r);

    if (rc != 0 || modmta_addr_split_extension(key, delims, base,
                                               sizeof(base), ext,
                                               sizeof(ext)) != 1)
        return rc;
    return access_try_both(m, tag, base, r);
}

static int
access_address(modmta_map *m, access_tag tag, const char *addr,
               const char *delims, access_result *r)
{
    char full[ACCESS_KEY_MAX], local[ACCESS_KEY_MAX];
    const char *at;
    size_t n;
    int rc;

    if (addr[0] == '\0')
        return access_try_both(m, tag, "<>", r);
    snprintf(full, sizeof(full), "%s", addr);
    access_lower(full);
    n = strlen(full);
    if (n > 1 && full[n - 1] == '.')
        full[n - 1] = '\0';
    if ((rc = access_try_user(m, tag, full, delims, r)) != 0)
        return rc;
    at = strrchr(full, '@');
    if (at != NULL && (rc = access_try_domain(m, tag, at + 1, r)) != 0)
        return rc;
    snprintf(local, sizeof(local), "%.*s@",
             (int)(at != NULL ? (size_t)(at - full) : strlen(full)), full);
    rc = access_try_user(m, tag, local, delims, r);
    r->user_key = rc == 1;
    return rc;
}

int
access_table_address(access_table *t, access_tag tag, const char *addr,
                     access_result *r)
{
    modmta_map *m = access_map_acquire(t);
    int rc;

    access_result_clear(r);
    rc = access_address(m, tag, addr, t->delims, r);
    access_map_release(t, m);
    return access_done(rc, r);
}
