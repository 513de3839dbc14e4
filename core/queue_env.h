/*
 * The envelope's stored form (queue_env.c): one JSON object, what
 * queue.c keeps in the content file's xattr or in ID.env.
 *
 *   {"version": 2, "id": "...", "sender": "a@b" ("" for <>),
 *    "rcpts": [{"addr", "orcpt", "state": "pending|delivered|failed",
 *               "status", "dsn_sent", "no_dsn", "sender",
 *               "notify": ["SUCCESS", "FAILURE", "DELAY"] or ["NEVER"],
 *               "orcpt_param", "code", "esc", "text", "stage", "remote",
 *               "remote_addr", "delay_sent", "relayed"}, ...],
 *    "arrival", "client_addr", "client_name", "helo", "protocol",
 *    "auth_user", "auth_param", "quarantine", "attempts", "next_retry",
 *    "held", "size", "params": {"BODY": "8BITMIME", "RET": "HDRS", ...},
 *    "notes": {"spamcheck.score": 7, "spamcheck.verdict": "ham", ...}}
 *
 * Version 2 added "params" and the recipient fields from "notify" on;
 * version 3 added "notes" (a string or an integer each, the bounds and
 * names of ctx.h). New fields are written only when set (non-NULL,
 * non-zero), and "version" is the lowest that holds what is written: an
 * envelope without notes is still version 2 (or 1), which an older
 * modmta reads. An older envelope reads as one with the newer fields
 * absent. A version above 3 is refused: updating it here could drop
 * fields this code does not know.
 */
#ifndef MODMTA_CORE_QUEUE_ENV_H
#define MODMTA_CORE_QUEUE_ENV_H

#include <stddef.h>

#include <modmta/err.h>

#include "queue.h"

#define QUEUE_ENV_VERSION 3

/* env as compact JSON, NUL-terminated (caller frees), its length in
 * *len_r. NULL when out of memory. */
char *queue_env_dump(const queue_env *env, size_t *len_r);

/* Parse text[0..len) into a new envelope (*env_r, freed with
 * queue_env_free; env->id is left empty and recovered 0: the caller
 * knows which message it read).
 * 0; MODMTA_E_INVAL for text that is not an envelope (a field of the
 * wrong type, a missing sender or address, an unknown state or NOTIFY
 * keyword); MODMTA_E_UNSUPPORTED for a newer version; MODMTA_E_NOMEM.
 * On error err_r holds the reason. */
int queue_env_parse(const char *text, size_t len, queue_env **env_r,
                    modmta_err *err_r);

/* RFC 3461 NOTIFY keywords, one table for the SMTP parser, the codec
 * and whoever passes NOTIFY on. The QNOTIFY_* bit of the keyword
 * word[0..len), any case; 0 when it is none. */
unsigned queue_env_notify_bit(const char *word, size_t len);
/* notify as the parameter's value ("SUCCESS,DELAY", "NEVER"; "" for 0)
 * into buf (48 octets hold any). Returns buf. */
const char *queue_env_notify_str(unsigned notify, char *buf, size_t len);

#endif
