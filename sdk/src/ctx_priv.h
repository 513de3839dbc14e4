/*
 * The context's data model, shared by libmodmta, the core and the test
 * fakes (not installed: modules only see sdk/modmta/ctx.h).
 *
 * The core fills the session and transaction fields with the setters
 * below, calls modmta_ctx_enter() before each hook, and reads back the
 * reply, the rewrite targets and the milter actions afterwards.
 * A ctx belongs to one thread at a time.
 */
#ifndef MODMTA_CTX_PRIV_H
#define MODMTA_CTX_PRIV_H

#include <signal.h>
#include <sys/socket.h>

#include <modmta/ctx.h>

struct modmta_arena;

/* An instance that declared owns_domain (module.h). */
struct modmta_owner {
    int (*owns_domain)(void *inst, const char *domain);
    void *inst;
};

struct modmta_host {
    char *instance;
    char *path;          /* "$.modules[3]" */
    char *hostname;
    char *spool;
    char **local_domains; /* NULL-terminated, lower case, no trailing dot */
    int is_root;
    char *recipient_delimiter; /* "" when none */
    /* The domain owners of the host's chain: borrowed from the chain,
     * which sets them on every host it builds once all its instances
     * exist (modmta_host_set_owners). */
    const struct modmta_owner *owners;
    size_t nowners;
    /* Borrowed from the chain too (modmta_host_set_net): the
     * generation's resolver and the addresses (with ports) of this
     * daemon's SMTP listeners, wildcards expanded to the interfaces'. */
    struct modmta_dns *dns;
    const struct sockaddr_storage *own;
    size_t nown;
    struct modmta_shared *shared; /* the generation's (modmta_host_set_
                                   * shared), borrowed too */
    struct conf_errors *errors;   /* create()'s config errors (conf_error.c) */
};

struct ctx_param {
    char *name;          /* upper case */
    char *value;         /* "" when none */
};

struct ctx_hdr {
    char *name;
    char *value;         /* after the colon, leading WSP dropped, inner
                          * folding (CRLF WSP) kept, no final CRLF */
    int deleted;
    int changed;         /* added or changed by a module */
};

/* A recipient delivered with its own envelope sender (owner-NAME). */
struct ctx_rsender {
    char *rcpt;
    char *sender;        /* "" for <> */
};

/* The server a deliver_msg() reports results from (txn arena). */
struct ctx_dlv_remote {
    char *name;
    char *addr;                   /* NULL for a UNIX socket */
    int port;
    char *tls_version;            /* NULL: not TLS */
    char *tls_cipher;
};

/* One recipient of a deliver_msg() group: what the core gives (borrowed
 * from its envelope for the call) and the result the module sets. */
struct ctx_dlv_rcpt {
    const char *addr;
    const char *original;         /* the client's address, or NULL */
    const char *notify;           /* "SUCCESS,DELAY", "NEVER", or NULL */
    const char *orcpt_param;      /* ORCPT as given, or NULL */
    int has_result;
    modmta_dstatus status;
    int code;                     /* 0: no reply */
    char esc[16];
    char *stage;                  /* txn arena, or NULL */
    char *text;                   /* txn arena, or NULL */
    const struct ctx_dlv_remote *remote; /* at the time of the result */
};

/* A transaction note (ctx_note.c): a string (str) or an integer (num,
 * str NULL). */
struct ctx_note {
    char *name;
    char *str;
    long long num;
};

/* RCPT TO parameters of a recipient a module added
 * (modmta_rcpt_add_params), checked: NULL when not given. */
struct ctx_rparam {
    char *rcpt;
    char *notify;        /* "SUCCESS,DELAY", "NEVER" */
    char *orcpt;         /* "rfc822;bob+40example.org" */
};

struct ctx_data {
    const void *inst;
    void *data;
    void (*free_fn)(void *);
};

struct modmta_ctx {
    modmta_phase phase;
    const modmta_module *mod;     /* module whose hook is running */
    const void *inst;
    const modmta_host *host;      /* that instance's host (or the core's) */

    /* session (session arena) */
    char session_id[32];
    char client_addr[64];
    int client_port;
    struct sockaddr_storage client_sa;
    socklen_t client_salen;
    char *client_name;
    char *listener;
    char *helo;
    size_t helo_cap;              /* size of the helo buffer */
    int esmtp;
    int tls;
    char *auth_user;
    char *auth_tried;             /* failed AUTH identity, for on_auth */

    /* transaction (txn arena) */
    char queue_id[32];
    char *sender;                 /* NULL before MAIL */
    struct ctx_param *params;
    size_t nparams;
    char **rcpts;
    size_t nrcpts, rcpts_cap;

    /* rcpt evaluation */
    const char *rcpt_original;
    int rcpt_rewritten;
    char **rewrites;              /* targets set by modmta_rcpt_rewrite */
    size_t nrewrites, rewrites_cap;
    char **added;                 /* modmta_rcpt_add at on_rcpt/on_data */
    size_t nadded, added_cap;
    char **removed;               /* modmta_rcpt_remove at on_data */
    size_t nremoved, removed_cap;
    char **nodsn;                 /* added with MODMTA_RCPT_NO_DSN */
    size_t nnodsn, nodsn_cap;
    const char *rewrite_sender;   /* modmta_rcpt_rewrite_sender, this call */
    struct ctx_rsender *rsenders; /* final recipients' own senders */
    size_t nrsenders, rsenders_cap;

    /* message */
    struct ctx_hdr *hdrs;
    size_t nhdrs, hdrs_cap;
    int hdrs_dirty;               /* a header was added/changed/deleted */
    char *message_path;
    off_t message_size;
    char *quarantine;
    int sender_changed;

    /* delivery */
    const char *decided_by;       /* instance that decided the last step */
    char *dlv_orcpt;              /* the recipient as the client gave it */
    int maybe_done;
    time_t arrival;

    /* message-level delivery (ctx_dlv.c, ABI 1.3) */
    char *dlv_route;              /* route(): destination set (txn arena) */
    struct ctx_dlv_rcpt *dlv;     /* deliver_msg(): the group (txn arena) */
    size_t ndlv;
    struct ctx_dlv_remote *dlv_remote; /* the server results come from */
    int dlv_dest_down;            /* modmta_dlv_dest_down() was called */

    /* reply to the current step */
    int reply_code;               /* 0: none set */
    char reply_esc[16];
    char reply_text[512];

    /* EHLO keywords from modules (session arena) */
    char **ehlo;
    size_t nehlo, ehlo_cap;

    struct modmta_arena *txn_arena;
    struct modmta_arena *sess_arena;
    struct ctx_data *data;
    size_t ndata, data_cap;

    /* the daemon is stopping (set by the core for deliveries) */
    const volatile sig_atomic_t *interrupt;

    /* the running hook call's deadline, CLOCK_MONOTONIC ms, 0: none
     * (budget.c) */
    long long deadline_ms;

    /* transaction notes (ctx_note.c; txn arena): MODMTA_NOTES_MAX
     * slots once one is set, in the order they were first set */
    struct ctx_note *notes;
    size_t nnotes;

    /* ABI 1.6 (ctx_stream.c) */
    char local_addr[64];          /* "" when unknown */
    int local_port;
    char *auth_mech;              /* session arena, NULL */
    char *tls_version;            /* session arena, NULL: no TLS */
    char *tls_cipher;
    int tls_bits;
    off_t body_size;              /* -1: not known yet */
    char *body_path;              /* modmta_body_replace writes here
                                   * (txn arena), NULL: nowhere */
    int body_fd;                  /* the new body, -1: not replaced */
    int body_err;                 /* a write of it failed (MODMTA_E_*) */
    struct ctx_rparam *rparams;   /* params of added recipients */
    size_t nrparams, rparams_cap;
    /* a multi-line reply (modmta_reply_lines): its lines joined with
     * '\n', the first one also in reply_text; reply_nlines 0: none */
    size_t reply_nlines;
    char reply_multi[MODMTA_REPLY_LINES_MAX * (MODMTA_REPLY_LINE_MAX + 1)];
};

/* ---- life ---- */
modmta_ctx *modmta_ctx_new(const modmta_host *core_host);
/* Runs every data destructor, frees both arenas. */
void modmta_ctx_free(modmta_ctx *ctx);
/* End of transaction (RSET, after DATA, new MAIL): frees the txn arena and
 * clears every transaction field; session fields stay. */
void modmta_ctx_txn_reset(modmta_ctx *ctx);

/* Before each hook: set phase and running instance, clear the reply and
 * the rewrite targets. mod/inst/host NULL when the core itself acts. */
void modmta_ctx_enter(modmta_ctx *ctx, modmta_phase phase,
                      const modmta_module *mod, const void *inst,
                      const modmta_host *host);
void modmta_ctx_reply_clear(modmta_ctx *ctx);
/* Set the reply only if none is set (the core's default). */
void modmta_ctx_reply_default(modmta_ctx *ctx, int code, const char *esc,
                              const char *text);

/* ---- setters used by the core (strings are copied) ---- */
void modmta_ctx_set_session(modmta_ctx *ctx, const char *id,
                            const struct sockaddr *sa, socklen_t salen,
                            const char *client_name, const char *listener);
void modmta_ctx_set_helo(modmta_ctx *ctx, const char *helo, int esmtp);
void modmta_ctx_set_tls(modmta_ctx *ctx, int tls);
/* Sender "" for <>; clears recipients. */
void modmta_ctx_set_sender(modmta_ctx *ctx, const char *queue_id,
                           const char *sender);
int modmta_ctx_add_param(modmta_ctx *ctx, const char *name,
                         const char *value);
/* Append an accepted recipient (txn arena); duplicates are ignored and
 * return 0, a new one returns 1. */
int modmta_ctx_add_rcpt(modmta_ctx *ctx, const char *rcpt);
int modmta_ctx_has_rcpt(const modmta_ctx *ctx, const char *rcpt);
void modmta_ctx_remove_rcpt(modmta_ctx *ctx, const char *rcpt);
/* 1 if rcpt was added with MODMTA_RCPT_NO_DSN (queue_rcpt.no_dsn). */
int modmta_ctx_rcpt_no_dsn(const modmta_ctx *ctx, const char *rcpt);
/* The envelope sender of one accepted recipient (queue_rcpt.sender):
 * NULL when it is the message's. Set replaces; a removed recipient loses
 * it. */
int modmta_ctx_set_rcpt_sender(modmta_ctx *ctx, const char *rcpt,
                               const char *sender);
const char *modmta_ctx_rcpt_sender(const modmta_ctx *ctx, const char *rcpt);
/* The recipient under evaluation at on_rcpt. */
void modmta_ctx_set_rcpt_eval(modmta_ctx *ctx, const char *original,
                              int rewritten);
/* Append a parsed header (used by the core after DATA). */
int modmta_ctx_add_header(modmta_ctx *ctx, const char *name,
                          const char *value);
void modmta_ctx_set_message(modmta_ctx *ctx, const char *path, off_t size);
void modmta_ctx_set_dlv_orcpt(modmta_ctx *ctx, const char *orcpt);
void modmta_ctx_set_delivery(modmta_ctx *ctx, const char *queue_id,
                             const char *sender, time_t arrival,
                             int maybe_done);
/* ABI 1.6 session details: the local end of the connection, the AUTH
 * mechanism that succeeded, the TLS parameters (NULL: none). */
void modmta_ctx_set_local(modmta_ctx *ctx, const struct sockaddr *sa,
                          socklen_t salen);
void modmta_ctx_set_auth_mech(modmta_ctx *ctx, const char *mech);
void modmta_ctx_set_tls_info(modmta_ctx *ctx, const char *version,
                             const char *cipher, int bits);
/* Where modmta_body_replace writes the new body this transaction (the
 * core: next to the queue file); the file is removed at the end of the
 * transaction. */
void modmta_ctx_set_body_path(modmta_ctx *ctx, const char *path);
void modmta_ctx_set_body_size(modmta_ctx *ctx, off_t size);
/* The RCPT TO parameters a module gave an added recipient, or NULL. */
const struct ctx_rparam *modmta_ctx_rcpt_params(const modmta_ctx *ctx,
                                                const char *rcpt);
/* Close and remove the replaced body, if any (txn reset does it). */
void modmta_ctx_body_drop(modmta_ctx *ctx);
/* Check ESMTP parameters ("KEY=value KEY2") against what a module may
 * set: mail 1 for MAIL FROM's, 0 for RCPT TO's. 0 or MODMTA_E_INVAL. */
int modmta_ctx_params_check(const char *params, int mail);

/* Message-level delivery: a group of n recipients for deliver_msg(),
 * zeroed, in the txn arena (the core fills addr... and reads the
 * results back); NULL when out of memory. */
struct ctx_dlv_rcpt *modmta_ctx_dlv_group(modmta_ctx *ctx, size_t n);
/* Serialize the live headers ("Name: value\r\n" each) into a malloc'ed
 * buffer; returns its length or <0. */
long modmta_ctx_headers_serialize(const modmta_ctx *ctx, char **buf_r);

/* Set a note without the phase check (the core: notes read back from
 * the envelope for a delivery). str NULL: the integer num. 0, or as
 * modmta_note_set_str. */
int modmta_ctx_note_put(modmta_ctx *ctx, const char *name, const char *str,
                        long long num);
/* 0 if name (and str, unless NULL) make a valid note, else
 * MODMTA_E_INVAL (the envelope decoder checks with it too). */
int modmta_ctx_note_check(const char *name, const char *str);

/* ---- arenas ---- */
struct modmta_arena *modmta_arena_new(void);
void *modmta_arena_alloc(struct modmta_arena *a, size_t n);
char *modmta_arena_strdup(struct modmta_arena *a, const char *s);
void modmta_arena_free(struct modmta_arena *a);

/* ---- hosts (the core builds one per instance, and its own) ---- */
modmta_host *modmta_host_new(const char *instance, const char *path,
                             const char *hostname, const char *spool,
                             char *const *local_domains, int is_root);
void modmta_host_free(modmta_host *h);
/* The core's recipient_delimiter (NULL or "": none); 0 or
 * MODMTA_E_NOMEM. */
int modmta_host_set_recipient_delimiter(modmta_host *h, const char *delims);
/* Borrow the chain's domain owners (they must outlive h). */
void modmta_host_set_owners(modmta_host *h, const struct modmta_owner *owners,
                            size_t n);
/* Borrow the generation's shared state (it must outlive h). */
void modmta_host_set_shared(modmta_host *h, struct modmta_shared *shared);
/* Borrow the chain's resolver and own listener addresses (they must
 * outlive h). */
void modmta_host_set_net(modmta_host *h, struct modmta_dns *dns,
                         const struct sockaddr_storage *own, size_t nown);
/* local_domains, or a domain one of the owners claims. */
int modmta_host_is_inbound_domain(const modmta_host *h, const char *domain);

#endif
