/* The hook chain the session harness links instead of core/chain.c
 * (session_chain.c). */
#ifndef MODMTA_FUZZ_SESSION_CHAIN_H
#define MODMTA_FUZZ_SESSION_CHAIN_H

#include <modmta/modmta.h>

/* Create the auth_sasl instance (passdb: a file of {PLAIN} entries in
 * dir) behind AUTH; the fuzzer dies if it cannot. */
void session_chain_init(const char *dir, const char *hostname);
/* Whether the streaming hooks are on for the next sessions. */
void session_chain_set_streams(int on);
/* 1 if a message was queued since the last call. */
int session_chain_queued(void);

#endif
