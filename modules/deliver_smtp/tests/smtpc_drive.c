/*
 * smtpc_drive: a test-only driver of the smtpc engine. It reads commands
 * from stdin, one per line, runs them, and answers each with tab-separated
 * lines ending with a line "." (the text of a reply has its line ends
 * written as "\n"):
 *
 *   opts role=smtp|lmtp helo=NAME [T=MS...]   T: connect greeting helo
 *                              starttls auth mail rcpt data block end rset
 *   cache IDLE_MS AGE_MS       a connection cache
 *   open NAME ADDR PORT        -> open ok EXT SIZE | open fail REPLY
 *   open-unix PATH             the same over a UNIX socket
 *   starttls encrypt|verify PEER [CAFILE] -> starttls RC VERIFIED [REPLY]
 *   auth USER PASS             -> auth RC REPLY
 *   rset                       -> rset RC REPLY
 *   txn from=A file=F [8bit] [smtputf8] [ret=R] [envid=E] [auth=X]
 *       rcpt=ADDR[,notify=N][,orcpt=O]...
 *                              -> rcpt ADDR REPLY (each), txn DATA USABLE
 *   put KEY / get KEY          -> put / get hit|miss
 *   stats                      -> stats OPENED REUSED
 *   close                      QUIT and close the session
 * REPLY is CODE ESC STAGE TEXT ("-" for an empty esc or stage).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpc.h"

#define DRIVE_MAX_RCPTS 1000

static struct smtpc_opts opts;
static char helo[256] = "client.test";
static smtpc_session *sess;
static smtpc_cache *cache;
static modmta_tls_client *tls;

static const char *
rc_name(smtpc_rc rc)
{
    static const char *const names[] = {
        "ok", "refused", "failed", "not-offered", "tls-failed",
        "tls-unverified", "not-allowed",
    };

    return (size_t)rc < sizeof(names) / sizeof(names[0]) ? names[rc] : "?";
}

static void
print_reply(const struct smtpc_reply *r)
{
    const char *p;

    printf("\t%d\t%s\t%s\t", r->code, r->esc[0] != '\0' ? r->esc : "-",
           r->stage != NULL ? r->stage : "-");
    for (p = r->text != NULL ? r->text : ""; *p != '\0'; p++)
        if (*p == '\n')
            fputs("\\n", stdout);
        else if (*p == '\t')
            fputs("\\t", stdout);
        else
            putchar(*p);
    putchar('\n');
}

static int *
timeout_slot(const char *name)
{
    static const struct {
        const char *name;
        size_t off;
    } slots[] = {
        {"connect", offsetof(struct smtpc_timeouts, connect_ms)},
        {"greeting", offsetof(struct smtpc_timeouts, greeting_ms)},
        {"helo", offsetof(struct smtpc_timeouts, helo_ms)},
        {"starttls", offsetof(struct smtpc_timeouts, starttls_ms)},
        {"auth", offsetof(struct smtpc_timeouts, auth_ms)},
        {"mail", offsetof(struct smtpc_timeouts, mail_ms)},
        {"rcpt", offsetof(struct smtpc_timeouts, rcpt_ms)},
        {"data", offsetof(struct smtpc_timeouts, data_ms)},
        {"block", offsetof(struct smtpc_timeouts, data_block_ms)},
        {"end", offsetof(struct smtpc_timeouts, data_end_ms)},
        {"rset", offsetof(struct smtpc_timeouts, rset_ms)},
    };
    size_t i;

    for (i = 0; i < sizeof(slots) / sizeof(slots[0]); i++)
        if (strcmp(name, slots[i].name) == 0)
            return (int *)((char *)&opts.timeouts + slots[i].off);
    return NULL;
}

static void
cmd_opts(char *args)
{
    char *w, *v;
    int *slot;

    for (w = strtok(args, " "); w != NULL; w = strtok(NULL, " ")) {
        if ((v = strchr(w, '=')) == NULL)
            continue;
        *v++ = '\0';
        if (strcmp(w, "role") == 0)
            opts.role = strcmp(v, "lmtp") == 0 ? SMTPC_LMTP : SMTPC_SMTP;
        else if (strcmp(w, "helo") == 0)
            snprintf(helo, sizeof(helo), "%s", v);
        else if ((slot = timeout_slot(w)) != NULL)
            *slot = atoi(v);
        else
            printf("error\tunknown option %s\n", w);
    }
}

static void
opened(smtpc_session *s, const struct smtpc_reply *r)
{
    static const char *const exts[] = {
        "PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "DSN", "STARTTLS",
        "AUTH", "ENHANCEDSTATUSCODES",
    };
    const struct smtpc_ehlo *e;
    size_t i;
    int n = 0;

    if (s == NULL) {
        printf("open\tfail");
        print_reply(r);
        return;
    }
    sess = s;
    e = smtpc_ehlo(s);
    printf("open\tok\t");
    for (i = 0; i < sizeof(exts) / sizeof(exts[0]); i++)
        if (e->ext & (1u << i))
            printf("%s%s", n++ ? "," : "", exts[i]);
    printf("\t%llu\t%s%s\n", e->size_max,
           e->auth & SMTPC_AUTH_PLAIN ? "PLAIN " : "",
           e->auth & SMTPC_AUTH_LOGIN ? "LOGIN" : "");
}

static void
cmd_open(char *args)
{
    char *name = strtok(args, " "), *addr = strtok(NULL, " ");
    char *port = strtok(NULL, " ");
    struct sockaddr_storage ss;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    struct smtpc_reply r;
    socklen_t len;

    memset(&ss, 0, sizeof(ss));
    if (name == NULL || addr == NULL || port == NULL) {
        printf("error\tusage: open NAME ADDR PORT\n");
        return;
    }
    if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((unsigned short)atoi(port));
        len = sizeof(*s4);
    } else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((unsigned short)atoi(port));
        len = sizeof(*s6);
    } else {
        printf("error\tbad address %s\n", addr);
        return;
    }
    opts.helo = helo;
    opts.cache = cache;
    opened(smtpc_open(NULL, &opts, name, (struct sockaddr *)&ss, len, &r),
           &r);
    smtpc_reply_clear(&r);
}

static void
cmd_open_unix(char *args)
{
    struct smtpc_reply r;

    opts.helo = helo;
    opts.cache = cache;
    opened(smtpc_open_unix(NULL, &opts, strtok(args, " "), &r), &r);
    smtpc_reply_clear(&r);
}

static void
cmd_starttls(char *args)
{
    char *level = strtok(args, " "), *peer = strtok(NULL, " ");
    char *ca = strtok(NULL, " ");
    struct smtpc_reply r;
    modmta_err err;
    smtpc_rc rc;

    if (level == NULL || peer == NULL) {
        printf("error\tusage: starttls encrypt|verify PEER [CAFILE]\n");
        return;
    }
    modmta_tls_client_free(tls);
    if ((tls = modmta_tls_client_new(ca, NULL, &err)) == NULL) {
        printf("error\t%s\n", err.msg);
        return;
    }
    rc = smtpc_starttls(sess, tls, strcmp(peer, "-") == 0 ? NULL : peer,
                        strcmp(level, "verify") == 0 ? MODMTA_TLS_VERIFY
                                                     : MODMTA_TLS_ENCRYPT,
                        &r);
    printf("starttls\t%s\t%d\t%s", rc_name(rc),
           modmta_conn_tls_verified(smtpc_conn(sess)),
           rc == SMTPC_OK ? modmta_conn_tls_version(smtpc_conn(sess)) : "-");
    print_reply(&r);
    smtpc_reply_clear(&r);
}

static void
cmd_simple(const char *what, char *args)
{
    struct smtpc_reply r;
    smtpc_rc rc;

    if (strcmp(what, "auth") == 0) {
        char *user = strtok(args, " "), *pass = strtok(NULL, " ");

        rc = smtpc_auth(sess, user != NULL ? user : "",
                        pass != NULL ? pass : "", &r);
    } else {
        memset(&r, 0, sizeof(r));
        rc = smtpc_rset(sess, &r);
    }
    printf("%s\t%s", what, rc_name(rc));
    print_reply(&r);
    smtpc_reply_clear(&r);
}

/* rcpt=ADDR[,notify=N][,orcpt=O] */
static void
parse_rcpt(char *v, struct smtpc_rcpt *r)
{
    char *p;

    memset(r, 0, sizeof(*r));
    r->addr = strtok_r(v, ",", &p);
    while ((v = strtok_r(NULL, ",", &p)) != NULL) {
        if (strncmp(v, "notify=", 7) == 0)
            r->notify = v + 7;
        else if (strncmp(v, "orcpt=", 6) == 0)
            r->orcpt = v + 6;
    }
    /* NOTIFY lists are comma-separated: written with '+' here */
    for (p = (char *)r->notify; p != NULL && *p != '\0'; p++)
        if (*p == '+')
            *p = ',';
}

static void
cmd_txn(char *args)
{
    static struct smtpc_rcpt rcpts[DRIVE_MAX_RCPTS];
    struct smtpc_msg m;
    const struct smtpc_reply *r;
    smtpc_txn *t;
    char *w, *save;
    size_t i;

    memset(&m, 0, sizeof(m));
    m.sender = "";
    m.rcpts = rcpts;
    for (w = strtok_r(args, " ", &save); w != NULL;
         w = strtok_r(NULL, " ", &save)) {
        if (strncmp(w, "from=", 5) == 0)
            m.sender = w + 5;
        else if (strncmp(w, "file=", 5) == 0)
            m.path = w + 5;
        else if (strcmp(w, "8bit") == 0)
            m.need_8bit = 1;
        else if (strcmp(w, "smtputf8") == 0)
            m.need_smtputf8 = 1;
        else if (strncmp(w, "ret=", 4) == 0)
            m.ret = w + 4;
        else if (strncmp(w, "envid=", 6) == 0)
            m.envid = w + 6;
        else if (strncmp(w, "auth=", 5) == 0)
            m.auth = w + 5;
        else if (strncmp(w, "rcpt=", 5) == 0 && m.nrcpts < DRIVE_MAX_RCPTS)
            parse_rcpt(w + 5, &rcpts[m.nrcpts++]);
    }
    if ((t = smtpc_txn_run(sess, &m)) == NULL) {
        printf("error\tout of memory\n");
        return;
    }
    for (i = 0; i < m.nrcpts; i++) {
        r = smtpc_txn_result(t, i);
        printf("rcpt\t%s", rcpts[i].addr);
        print_reply(r);
    }
    printf("txn\t%d\t%d\n", smtpc_txn_data_sent(t), smtpc_usable(sess));
    smtpc_txn_free(t);
}

static void
run(char *line)
{
    char *args = line + strcspn(line, " "), *end;
    unsigned long o, u;

    if (*args != '\0')
        *args++ = '\0';
    if (strcmp(line, "opts") == 0) {
        cmd_opts(args);
    } else if (strcmp(line, "cache") == 0) {
        smtpc_cache_free(cache);
        o = strtoul(args, &end, 10);
        cache = smtpc_cache_new((int)o, atoi(end));
    } else if (strcmp(line, "open") == 0) {
        cmd_open(args);
    } else if (strcmp(line, "open-unix") == 0) {
        cmd_open_unix(args);
    } else if (cache == NULL
               && (strcmp(line, "get") == 0 || strcmp(line, "put") == 0
                   || strcmp(line, "stats") == 0)) {
        printf("error\tno cache\n");
    } else if (sess == NULL && strcmp(line, "get") != 0
               && strcmp(line, "stats") != 0) {
        printf("error\tno session\n");
    } else if (strcmp(line, "starttls") == 0) {
        cmd_starttls(args);
    } else if (strcmp(line, "auth") == 0 || strcmp(line, "rset") == 0) {
        cmd_simple(line, args);
    } else if (strcmp(line, "txn") == 0) {
        cmd_txn(args);
    } else if (strcmp(line, "put") == 0) {
        smtpc_cache_put(cache, args, sess);
        sess = NULL;
        printf("put\n");
    } else if (strcmp(line, "get") == 0) {
        smtpc_close(sess);
        sess = smtpc_cache_get(cache, args);
        printf("get\t%s\n", sess != NULL ? "hit" : "miss");
    } else if (strcmp(line, "stats") == 0) {
        smtpc_cache_stats(cache, &o, &u);
        printf("stats\t%lu\t%lu\n", o, u);
    } else if (strcmp(line, "close") == 0) {
        smtpc_close(sess);
        sess = NULL;
    } else {
        printf("error\tunknown command %s\n", line);
    }
}

int
main(void)
{
    char line[65536];
    size_t n;

    signal(SIGPIPE, SIG_IGN);
    smtpc_timeouts_default(&opts.timeouts);
    while (fgets(line, sizeof(line), stdin) != NULL) {
        n = strcspn(line, "\r\n");
        line[n] = '\0';
        if (n > 0)
            run(line);
        printf(".\n");
        fflush(stdout);
    }
    smtpc_close(sess);
    smtpc_cache_free(cache);
    modmta_tls_client_free(tls);
    return 0;
}
