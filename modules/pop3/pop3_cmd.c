/*
 * pop3: command parsing (see pop3_cmd.h).
 */
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <modmta/err.h>

#include "pop3_cmd.h"

static const struct {
    const char *name;
    enum pop3_verb verb;
} pop3_cmd_verbs[] = {
    {"USER", POP3_USER}, {"PASS", POP3_PASS}, {"QUIT", POP3_QUIT},
    {"STAT", POP3_STAT}, {"LIST", POP3_LIST}, {"RETR", POP3_RETR},
    {"DELE", POP3_DELE}, {"NOOP", POP3_NOOP}, {"RSET", POP3_RSET},
    {"TOP", POP3_TOP},   {"UIDL", POP3_UIDL}, {"CAPA", POP3_CAPA},
    {"STLS", POP3_STLS}, {"AUTH", POP3_AUTH}, {"APOP", POP3_APOP},
};

static int
pop3_cmd_copy(char *dst, const char *src, size_t n)
{
    if (n == 0)
        return MODMTA_E_INVAL;
    if (n > POP3_ARG_MAX)
        return MODMTA_E_LIMIT;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

int
pop3_cmd_parse(const char *line, size_t len, struct pop3_cmd *c)
{
    size_t i, kw, start;
    int rc;

    memset(c, 0, sizeof(*c));
    for (i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            return MODMTA_E_INVAL;
    for (kw = 0; kw < len && line[kw] != ' '; kw++)
        ;
    if (kw == 0 || kw > 4)
        return kw == 0 ? MODMTA_E_INVAL : 0; /* > 4: unknown */
    for (i = 0; i < sizeof(pop3_cmd_verbs) / sizeof(pop3_cmd_verbs[0]); i++)
        if (strlen(pop3_cmd_verbs[i].name) == kw &&
            strncasecmp(line, pop3_cmd_verbs[i].name, kw) == 0)
            c->verb = pop3_cmd_verbs[i].verb;
    if (kw == len)
        return 0;
    start = kw + 1;
    if (c->verb == POP3_PASS) { /* a password may hold spaces */
        rc = pop3_cmd_copy(c->arg[0], line + start, len - start);
        c->nargs = rc == 0;
        return rc;
    }
    while (start <= len) {
        for (i = start; i < len && line[i] != ' '; i++)
            ;
        if (c->nargs == 2)
            return MODMTA_E_INVAL;
        rc = pop3_cmd_copy(c->arg[c->nargs], line + start, i - start);
        if (rc < 0)
            return rc;
        c->nargs++;
        start = i + 1;
        if (i == len)
            break;
    }
    return 0;
}

static long
pop3_cmd_decimal(const char *s)
{
    long v = 0;
    size_t i;

    if (s[0] == '\0' || strlen(s) > 9)
        return -1;
    for (i = 0; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

unsigned long
pop3_cmd_num(const char *s)
{
    long v = pop3_cmd_decimal(s);

    return v > 0 ? (unsigned long)v : 0;
}

long
pop3_cmd_lines(const char *s)
{
    return pop3_cmd_decimal(s);
}

int
pop3_cmd_mailbox_name(const char *user, char *name)
{
    static const char extra[] = "!#$%&'*+-=?^_`{|}~.";
    const char *at = strchr(user, '@');
    size_t len = at != NULL ? (size_t)(at - user) : strlen(user), i;

    if (len == 0 || len > 64 || user[0] == '.')
        return MODMTA_E_INVAL;
    for (i = 0; i < len; i++) {
        char ch = user[i];

        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        else if (!(ch >= 'a' && ch <= 'z') && !(ch >= '0' && ch <= '9') &&
                 (ch == '\0' || strchr(extra, ch) == NULL))
            return MODMTA_E_INVAL;
        name[i] = ch;
    }
    name[len] = '\0';
    if (strstr(name, "..") != NULL ||
        (len >= 5 && strcmp(name + len - 5, ".lock") == 0))
        return MODMTA_E_INVAL;
    return 0;
}

/* 1 if digest is the lower-case hex of the len octets of mac. */
static int
pop3_cmd_hex_equal(const unsigned char *mac, unsigned len,
                   const char *digest)
{
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    unsigned i;

    if (strlen(digest) != 2 * len)
        return 0; /* the length is no secret */
    for (i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    return CRYPTO_memcmp(hex, digest, 2 * len) == 0;
}

int
pop3_cmd_apop_check(const char *stamp, const char *secret,
                    const char *digest)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md != NULL && EVP_DigestInit_ex(md, EVP_md5(), NULL) == 1 &&
             EVP_DigestUpdate(md, stamp, strlen(stamp)) == 1 &&
             EVP_DigestUpdate(md, secret, strlen(secret)) == 1 &&
             EVP_DigestFinal_ex(md, mac, &len) == 1;

    EVP_MD_CTX_free(md);
    if (!ok || len != 16)
        return MODMTA_E_TEMP;
    return pop3_cmd_hex_equal(mac, len, digest);
}
