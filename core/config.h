/*
 * The daemon's configuration: one JSON file, validated as a whole.
 * Every error is collected with its JSON path; nothing stops at the first.
 * A config is immutable once loaded and owned by one generation.
 */
#ifndef MODMTA_CORE_CONFIG_H
#define MODMTA_CORE_CONFIG_H

#include <sys/socket.h>
#include <jansson.h>

enum config_tls_mode { TLS_NONE = 0, TLS_STARTTLS, TLS_STARTTLS_REQUIRED,
                       TLS_IMPLICIT };
enum config_auth_mode { AUTH_OPTIONAL = 0, AUTH_REQUIRED };

struct config_listener {
    char *name;
    char *address;                 /* as written: "127.0.0.1:2525" */
    struct sockaddr_storage sa;
    socklen_t salen;
    char *protocol;                /* "smtp" or a module that serves */
    enum config_tls_mode tls;
    enum config_auth_mode auth;
};

struct config_limits {
    long max_sessions;             /* 1000 */
    long max_sessions_per_client;  /* 50 */
    long long message_size;        /* 20000000 octets; 0 = no limit */
    long recipients;               /* 100 per message */
    long command_timeout;          /* 300 s */
    long data_timeout;             /* 600 s */
    long errors;                   /* 10 per session, then disconnect */
    long rewrite_depth;            /* 10: rcpt rewriting levels */
    long rewrite_max;              /* 1000: targets of one client rcpt */
    long greet_pause;              /* 0 ms: watch for early talkers */
    long max_hops;                 /* 50 Received: fields, then 554 */
    long data_total_timeout;       /* 3600 s for a whole DATA; 0 = none */
    long stress_threshold;         /* 80 % of the session table; 0 = off */
    long stress_timeout;           /* 10 s: the timeouts under stress */
};

struct config_queue {
    long lifetime;                 /* 432000 s (5 days) */
    long retry_min;                /* 300 s */
    long retry_max;                /* 4000 s */
    long workers;                  /* 4 delivery threads */
    long outbound_workers;         /* 100 threads for route()d groups */
    long destination_concurrency;  /* 20 deliveries per destination */
    long destination_recipients;   /* 50 recipients per deliver_msg */
    long delay_warning;            /* 0 s: off; else warn once after */
    long active_limit;             /* 10000 messages in delivery at once */
};

/* "dns": the resolver modules reach with modmta_host_dns(). */
struct config_dns {
    char **servers;                /* NULL: the system's resolv.conf;
                                      else "IP" or "IP@port" (unbound's
                                      forwarder syntax), NULL-terminated */
    long timeout;                  /* 10 s per lookup */
    char *trust_anchor;            /* NULL: no DNSSEC validation */
};

/* One more certificate, chosen when the client's SNI names one of names
 * ("mail.example.org" exactly, "*.example.net" one label deep). */
struct config_tls_sni {
    char **names;                  /* NULL-terminated, lower case */
    char *cert;
    char *key;                     /* default: cert (key in the same PEM) */
};

struct config_tls {
    char *cert;                    /* NULL: no STARTTLS offered */
    char *key;
    char *min_version;             /* "TLSv1.2" */
    char *ciphers;                 /* NULL: OpenSSL's default */
    struct config_tls_sni *sni;    /* "tls": {"sni": [...]}, in order */
    size_t nsni;
};

/* "smtp": how strictly the dialogue is read. */
struct config_smtp {
    int helo_required;             /* MAIL before HELO/EHLO: 503 */
    int strict_envelopes;          /* paths only in <>, fully qualified */
};

/* "local_submission": sendmail(8) and mailq for local users (docs/config.md). */
struct config_local {
    char *socket;                  /* <spool>/public/submit.sock */
    char *maildrop;                /* <spool>/maildrop */
    char *domain;                  /* appended to bare addresses: hostname */
    long pickup_interval;          /* 60 s between maildrop scans */
};

struct config {
    json_t *root;                  /* the whole document (owned) */
    char *path;                    /* file it came from, or "(default)" */
    char *hostname;
    char *user;                    /* NULL: none */
    int run_as_root;
    int daemonize;
    char *spool;
    char *control_socket;          /* default <spool>/control.sock */
    char *pid_file;                /* NULL: none */
    char **module_path;            /* NULL-terminated */
    char **local_domains;          /* NULL-terminated, lower case */
    char *recipient_delimiter;     /* NULL: none */
    int log_level;                 /* MODMTA_LOG_* */
    int log_syslog;                /* "log": {"syslog": true} */
    char *log_facility;            /* "mail" */
    struct config_limits limits;
    struct config_smtp smtp;
    struct config_queue queue;
    struct config_dns dns;
    struct config_tls tls;
    struct config_local local;
    struct config_listener *listeners;
    size_t nlisteners;
    json_t *modules;               /* the "modules" array (borrowed from root) */
    json_t *redis;                 /* the "redis" object with its defaults
                                      filled in, or NULL (borrowed) */
};

/* A list of "path: message" strings. */
struct config_errors {
    char **msgs;
    size_t n;
};

void config_errors_add(struct config_errors *e, const char *path,
                       const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void config_errors_free(struct config_errors *e);

/* Load and validate. path NULL: the embedded default. Returns NULL when
 * any error was found (all of them are in errs). Module sections are
 * validated later, by the modules' create(). */
struct config *config_load(const char *path, struct config_errors *errs);
void config_free(struct config *cfg);
/* The embedded default as JSON text (for --print-default-config). */
const char *config_default_text(void);

#endif
