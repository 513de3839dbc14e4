/*
 * The access table of relay_access: Sendmail's access(5) format checked
 * and compiled into a lookup map, and the lookups in the order of
 * specificity Sendmail uses (README.md, "The access table").
 */
#ifndef ACCESS_TABLE_H
#define ACCESS_TABLE_H

#include <modmta/modmta.h>

typedef enum access_tag {
    ACCESS_CONNECT = 0,
    ACCESS_FROM = 1,
    ACCESS_TO = 2,
} access_tag;

typedef enum access_action {
    ACCESS_NONE = 0, /* no entry (or SKIP): no opinion */
    ACCESS_OK = 1,
    ACCESS_RELAY = 2,
    ACCESS_REJECT = 3,
    ACCESS_DISCARD = 4,
    ACCESS_ERROR = 5,
} access_action;

#define ACCESS_TEXT_MAX 256
#define ACCESS_RULE_MAX 320

typedef struct access_result {
    access_action action;
    int code;                    /* ERROR: the reply code */
    char esc[16];                /* ERROR: x.y.z, or "" */
    char text[ACCESS_TEXT_MAX];  /* ERROR: the text, or "" */
    char rule[ACCESS_RULE_MAX];  /* "Connect:192.168.123", "" if none */
    int user_key;                /* the entry was a "user@" key: it names
                                  * no domain, so it never allows relaying */
} access_result;

typedef struct access_table access_table;

/* Parse one action ("REJECT", "ERROR:5.7.1:550 go away"). SKIP gives
 * ACCESS_NONE. 0, or MODMTA_E_CONFIG with err_r->msg set. */
int access_action_parse(const char *value, access_result *r,
                        modmta_err *err_r);

/* Open the table `spec` names: "file:PATH" and inline JSON objects are
 * checked entry by entry now (errors name PATH:LINE or the JSON key);
 * any other "TYPE:ARG" goes to modmta_map_open_host with host (redis:
 * needs it; may be NULL otherwise) and its values are checked at
 * lookup. A file: table is re-read when the file changes, by the rule
 * of modmta/reload.h: looked at at most once a second, a file that no
 * longer parses logged with PATH:LINE and the previous table kept. */
access_table *access_table_open(const json_t *spec, const modmta_host *host,
                                const char *json_path, modmta_err *err_r);
void access_table_close(access_table *t);

/* Connect: the confirmed host name (NULL or "unknown": none) and its
 * parent domains, then the client IP and its shorter prefixes.
 * 1 found (r filled), 0 not found, <0 lookup error. */
int access_table_client(access_table *t, const char *name, const char *ip,
                        access_result *r);
/* From: or To: the address, its domain and parent domains, then
 * "user@". addr is "" for the null sender. */
int access_table_address(access_table *t, access_tag tag, const char *addr,
                         access_result *r);

#endif
