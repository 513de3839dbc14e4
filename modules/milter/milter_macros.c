/* milter: the macros sent before each event (milter_session.h). The
 * default lists are Postfix's, with the client's address and name at
 * connect; a milter's SETSYMLIST replaces the list of a stage. */
#include <stdio.h>
#include <string.h>

#include "milter_session.h"

static const char *const milter_default_macros[MILTER_M_COUNT] = {
    [MILTER_M_CONNECT] = "j {daemon_name} {daemon_addr} {daemon_port} "
                         "{if_addr} v _ {client_addr} {client_port} "
                         "{client_name} {client_ptr}",
    [MILTER_M_HELO] = "{tls_version} {cipher} {cipher_bits}",
    [MILTER_M_MAIL] = "i {auth_type} {auth_authen} {mail_addr} {mail_host} "
                      "{mail_mailer}",
    [MILTER_M_RCPT] = "{rcpt_addr} {rcpt_host} {rcpt_mailer}",
    [MILTER_M_DATA] = "i",
    [MILTER_M_EOH] = "i",
    [MILTER_M_EOM] = "i",
};

/* The macro stage of an event, or -1 for events that have none. */
static int
milter_macro_stage(enum milter_stage st)
{
    switch (st) {
    case MILTER_ST_CONNECT: return MILTER_M_CONNECT;
    case MILTER_ST_HELO: return MILTER_M_HELO;
    case MILTER_ST_MAIL: return MILTER_M_MAIL;
    case MILTER_ST_RCPT: return MILTER_M_RCPT;
    case MILTER_ST_DATA: return MILTER_M_DATA;
    case MILTER_ST_EOH: return MILTER_M_EOH;
    case MILTER_ST_EOM: return MILTER_M_EOM;
    default: return -1;
    }
}

/* The command code a stage's macros are sent for. */
static int
milter_macro_cmd(enum milter_stage st)
{
    static const int cmds[] = {
        [MILTER_ST_CONNECT] = MILTER_C_CONNECT,
        [MILTER_ST_HELO] = MILTER_C_HELO,
        [MILTER_ST_MAIL] = MILTER_C_MAIL,
        [MILTER_ST_RCPT] = MILTER_C_RCPT,
        [MILTER_ST_DATA] = MILTER_C_DATA,
        [MILTER_ST_EOH] = MILTER_C_EOH,
        [MILTER_ST_EOM] = MILTER_C_BODYEOB,
    };

    return cmds[st];
}

static const char *
milter_domain_of(const char *addr)
{
    const char *at = addr ? strrchr(addr, '@') : NULL;

    return at ? at + 1 : NULL;
}

static const char *
milter_mailer(modmta_ctx *ctx, const char *addr)
{
    const char *d = milter_domain_of(addr);

    return d && modmta_is_inbound_domain(ctx, d) ? "local" : "smtp";
}

/* The value of macro `name`, or NULL when it has none here. buf holds
 * values that are built. */
static const char *
milter_macro_value(modmta_ctx *ctx, const char *name, const char *rcpt,
                   char *buf, size_t len)
{
    const modmta_host *h = modmta_ctx_host(ctx);

    if (strcmp(name, "j") == 0)
        return modmta_host_hostname(h);
    if (strcmp(name, "i") == 0)
        return modmta_queue_id(ctx);
    if (strcmp(name, "v") == 0)
        return "modmta";
    if (strcmp(name, "_") == 0) {
        snprintf(buf, len, "%s [%s]", modmta_client_name(ctx),
                 modmta_client_addr(ctx));
        return buf;
    }
    if (strcmp(name, "{daemon_name}") == 0)
        return modmta_listener_name(ctx);
    if (strcmp(name, "{client_addr}") == 0)
        return modmta_client_addr(ctx);
    if (strcmp(name, "{client_port}") == 0) {
        snprintf(buf, len, "%d", modmta_client_port(ctx));
        return buf;
    }
    if (strcmp(name, "{client_name}") == 0 ||
        strcmp(name, "{client_ptr}") == 0)
        return modmta_client_name(ctx);
    if (strcmp(name, "{daemon_addr}") == 0 || strcmp(name, "{if_addr}") == 0)
        return modmta_local_addr(ctx);
    if (strcmp(name, "{daemon_port}") == 0) {
        if (modmta_local_port(ctx) <= 0)
            return NULL;
        snprintf(buf, len, "%d", modmta_local_port(ctx));
        return buf;
    }
    if (strcmp(name, "{auth_type}") == 0)
        return modmta_auth_mech(ctx);
    if (strcmp(name, "{auth_authen}") == 0)
        return modmta_auth_user(ctx);
    if (strcmp(name, "{tls_version}") == 0)
        return modmta_tls_version(ctx);
    if (strcmp(name, "{cipher}") == 0)
        return modmta_tls_cipher(ctx);
    if (strcmp(name, "{cipher_bits}") == 0) {
        if (modmta_tls_cipher_bits(ctx) <= 0)
            return NULL;
        snprintf(buf, len, "%d", modmta_tls_cipher_bits(ctx));
        return buf;
    }
    if (strcmp(name, "{mail_addr}") == 0)
        return modmta_sender(ctx);
    if (strcmp(name, "{mail_host}") == 0)
        return milter_domain_of(modmta_sender(ctx));
    if (strcmp(name, "{mail_mailer}") == 0)
        return milter_mailer(ctx, modmta_sender(ctx));
    if (strcmp(name, "{rcpt_addr}") == 0)
        return rcpt;
    if (strcmp(name, "{rcpt_host}") == 0)
        return milter_domain_of(rcpt);
    if (strcmp(name, "{rcpt_mailer}") == 0)
        return rcpt ? milter_mailer(ctx, rcpt) : NULL;
    return NULL;
}

int
milter_macros_put(modmta_ctx *ctx, struct milter_peer *p,
                  enum milter_stage st, const char *arg)
{
    int stage = milter_macro_stage(st);
    const char *list, *end, *v;
    char name[64], buf[320];
    size_t n;

    if (stage < 0)
        return 0;
    list = p->macros[stage] ? p->macros[stage] : milter_default_macros[stage];
    if (milter_pkt_begin(&p->conn.out, MILTER_C_MACRO) < 0 ||
        milter_pkt_bytes(&p->conn.out, &(char){(char)milter_macro_cmd(st)},
                         1) < 0)
        return -1;
    for (; *list; list = end) {
        list += strspn(list, " \t,");
        end = list + strcspn(list, " \t,");
        n = (size_t)(end - list);
        if (n == 0 || n >= sizeof(name))
            continue;
        memcpy(name, list, n);
        name[n] = '\0';
        /* "{i}" and "i" name the same one-letter macro. */
        if (n == 3 && name[0] == '{' && name[2] == '}') {
            name[0] = name[1];
            name[1] = '\0';
        }
        v = milter_macro_value(ctx, name, arg, buf, sizeof(buf));
        if (v != NULL && (milter_pkt_str(&p->conn.out, name) < 0 ||
                          milter_pkt_str(&p->conn.out, v) < 0))
            return -1;
    }
    milter_pkt_end(&p->conn.out);
    return 0;
}
