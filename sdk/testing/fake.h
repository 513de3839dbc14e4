/*
 * libmodmta-test: fakes for module unit tests (STYLE.md "Tests").
 *
 *   modmta_host *h = modmta_test_host_new("store_mbox", "localhost");
 *   void *inst = modmta_descriptor.create(conf, h, &err);
 *   modmta_ctx *ctx = modmta_test_ctx_new(h, "192.0.2.1");
 *   modmta_test_enter(ctx, MODMTA_PHASE_RCPT, &modmta_descriptor, inst);
 *   assert_int_equal(modmta_descriptor.on_rcpt(inst, ctx, "a@b"),
 *                    MODMTA_REJECT);
 *   assert_int_equal(modmta_test_reply_code(ctx), 550);
 */
#ifndef MODMTA_TESTING_FAKE_H
#define MODMTA_TESTING_FAKE_H

#include <modmta/modmta.h>

/* A host for instance `instance` at "$.modules[0]" with the given local
 * domains (NULL-terminated list after `first_domain`; may be NULL). Spool
 * is "." and hostname "mx.test". Free with modmta_test_host_free. */
modmta_host *modmta_test_host_new(const char *instance,
                                  const char *first_domain, ...);
void modmta_test_host_free(modmta_host *h);
void modmta_test_host_set_root(modmta_host *h, int is_root);
/* The core's recipient_delimiter as h tells it (NULL: none). 0 or
 * MODMTA_E_NOMEM. */
int modmta_test_host_set_delimiter(modmta_host *h, const char *delims);

/* A session from client_ip (IPv4 or IPv6 text), port 40000. */
modmta_ctx *modmta_test_ctx_new(const modmta_host *h, const char *client_ip);
void modmta_test_ctx_free(modmta_ctx *ctx);

/* A connection over fd (one end of a socketpair, say) as the core hands
 * serve() one, without TLS; it owns fd from now. NULL out of memory.
 * modmta_test_conn_close closes it. (modmta_test_conn_new below gives
 * one with the client's side played by the fake instead.) */
modmta_conn *modmta_test_conn_from_fd(int fd);
void modmta_test_conn_close(modmta_conn *c);

/* Put ctx in `phase` with `mod`'s instance running (caps are checked
 * against mod->caps, as in the daemon); clears the reply. */
void modmta_test_enter(modmta_ctx *ctx, modmta_phase phase,
                       const modmta_module *mod, const void *inst);

/* The session's ID (modmta_session_id): "TESTSESSION" until set. Give
 * sessions that must be told apart in the shared state (leases, gauges)
 * IDs of their own. */
void modmta_test_set_session_id(modmta_ctx *ctx, const char *id);
void modmta_test_set_helo(modmta_ctx *ctx, const char *helo);
void modmta_test_set_auth(modmta_ctx *ctx, const char *user);
void modmta_test_set_tls(modmta_ctx *ctx, int tls);
void modmta_test_set_sender(modmta_ctx *ctx, const char *queue_id,
                            const char *sender);
void modmta_test_add_rcpt(modmta_ctx *ctx, const char *rcpt);
void modmta_test_add_header(modmta_ctx *ctx, const char *name,
                            const char *value);
void modmta_test_set_message(modmta_ctx *ctx, const char *path);
/* For deliver(): queue ID, sender, whether the attempt follows a crash. */
void modmta_test_set_delivery(modmta_ctx *ctx, const char *queue_id,
                              const char *sender, int maybe_done);

/* ---- time budgets (ABI 1.5) ----
 * Give the hook call you are about to make a budget of ms milliseconds,
 * as the daemon's chain does: modmta_ctx_deadline() reports it, and the
 * SDK's waits (Redis, the shared state, DNS, connections) made on this
 * thread end by it. After the call, modmta_test_budget_end() removes it
 * and returns 1 if one of those waits ran out of it, else 0. */
void modmta_test_budget_begin(modmta_ctx *ctx, long ms);
int modmta_test_budget_end(modmta_ctx *ctx);

/* ---- message-level delivery (ABI 1.3: route, deliver_msg) ----
 * modmta_test_enter(ctx, MODMTA_PHASE_ROUTE, ...) before route(),
 * MODMTA_PHASE_DELIVER before deliver_msg(). */
/* A MAIL FROM parameter as the queue gives it at delivery ("BODY",
 * "RET", "ENVID", "SMTPUTF8", "AUTH"). */
void modmta_test_add_mail_param(modmta_ctx *ctx, const char *name,
                                const char *value);
/* The group deliver_msg() sees: n recipients (their results cleared). */
void modmta_test_set_dlv_group(modmta_ctx *ctx, const char *const *rcpts,
                               size_t n);
/* Recipient i's RCPT parameter ("NOTIFY", "ORCPT") as the client gave
 * it, or its original address (name "original"). */
void modmta_test_set_dlv_param(modmta_ctx *ctx, size_t i, const char *name,
                               const char *value);
/* The destination route() set with modmta_dlv_route, or NULL. */
const char *modmta_test_route(const modmta_ctx *ctx);
/* Recipient i's result: 1 with the fields (each pointer may be NULL),
 * 0 when deliver_msg() reported none for it. */
int modmta_test_dlv_result(const modmta_ctx *ctx, size_t i,
                           modmta_dstatus *status_r, int *code_r,
                           const char **esc_r, const char **stage_r,
                           const char **text_r);
/* The server recipient i's result came from (modmta_dlv_remote), NULL
 * for none; its address and port through addr_r / port_r. */
const char *modmta_test_dlv_remote(const modmta_ctx *ctx, size_t i,
                                   const char **addr_r, int *port_r);
/* 1 if deliver_msg() called modmta_dlv_dest_down. */
int modmta_test_dlv_dest_down(const modmta_ctx *ctx);

/* ---- streaming hooks and milter actions (ABI 1.6) ----
 * modmta_test_enter(ctx, MODMTA_PHASE_STREAM, ...) before on_header,
 * on_eoh and on_body; MODMTA_PHASE_ABORT before on_abort. */
/* The connection's local end (modmta_local_addr, modmta_local_port). */
void modmta_test_set_local(modmta_ctx *ctx, const char *ip, int port);
/* The SASL mechanism of the session's AUTH (set the user too). */
void modmta_test_set_auth_mech(modmta_ctx *ctx, const char *mech);
/* TLS on with these parameters (version NULL: TLS off). */
void modmta_test_set_tls_info(modmta_ctx *ctx, const char *version,
                              const char *cipher, int bits);
/* What modmta_body_size reports (the core sets it at the end of the
 * body). */
void modmta_test_set_body_size(modmta_ctx *ctx, off_t size);
/* Where modmta_body_replace writes the new body: read the file after
 * the hook to check it (until then, modmta_body_replace fails with
 * MODMTA_E_STATE). The ctx removes it with the transaction. */
void modmta_test_set_body_path(modmta_ctx *ctx, const char *path);
/* 1 if the hook replaced the body. */
int modmta_test_body_replaced(const modmta_ctx *ctx);
/* The reply's lines: their number (0: no reply), the text through
 * text_r, lines joined with "\n". */
size_t modmta_test_reply_lines(const modmta_ctx *ctx, const char **text_r);
/* The RCPT parameters given to an added recipient
 * (modmta_rcpt_add_params): 1 with NOTIFY and ORCPT (NULL when not
 * given), 0 when none were. */
int modmta_test_added_params(const modmta_ctx *ctx, const char *addr,
                             const char **notify_r, const char **orcpt_r);

/* create() of mod from a JSON text; NULL with err_r filled on failure
 * (a text that is not JSON fails too, with err_r saying so). */
void *modmta_test_create(const modmta_module *mod, const char *conf,
                         const modmta_host *h, modmta_err *err_r);
/* The same, failing the running test with err_r's path and message when
 * create() fails. */
void *modmta_test_create_ok(const modmta_module *mod, const char *conf,
                            const modmta_host *h);
/* Check that create() refuses conf (a JSON text) with err_r->path equal
 * to path; fails the running test otherwise. */
void modmta_test_create_fails(const modmta_module *mod, const char *conf,
                              const modmta_host *h, const char *path);
/* The same, and err_r->msg must contain what. */
void modmta_test_create_fails_with(const modmta_module *mod,
                                   const char *conf, const modmta_host *h,
                                   const char *path, const char *what);
/* A test's teardown: destroy inst (if not NULL) with mod, then free ctx
 * and h (either may be NULL). */
void modmta_test_release(const modmta_module *mod, void *inst,
                         modmta_ctx *ctx, modmta_host *h);

/* Register the map backend "failtest:": every lookup fails with
 * MODMTA_E_TEMP, a backend outage (rule 10: every hook is tested with
 * one). Idempotent; 0 on success. */
int modmta_test_register_failing_map(void);

/* Make h's shared state (modmta_host_shared) a store that is down
 * (fail 1: every call returns MODMTA_E_TEMP, as when Redis cannot be
 * reached), or the process's memory store again (fail 0), whose keys
 * were kept meanwhile. The store's pointer stays the same: whoever holds
 * it (a module's thread too) sees the change at once. Returns 0. */
int modmta_test_host_fail_shared(modmta_host *h, int fail);

int modmta_test_reply_code(const modmta_ctx *ctx);
const char *modmta_test_reply_esc(const modmta_ctx *ctx);
const char *modmta_test_reply_text(const modmta_ctx *ctx);
/* Rewrite targets, added recipients and EHLO keywords recorded so far. */
size_t modmta_test_rewrite_count(const modmta_ctx *ctx);
const char *modmta_test_rewrite_at(const modmta_ctx *ctx, size_t i);
size_t modmta_test_added_count(const modmta_ctx *ctx);
const char *modmta_test_added_at(const modmta_ctx *ctx, size_t i);
size_t modmta_test_ehlo_count(const modmta_ctx *ctx);
const char *modmta_test_ehlo_at(const modmta_ctx *ctx, size_t i);
/* 1 if addr was added with MODMTA_RCPT_NO_DSN (its failures are never
 * reported to the sender). */
int modmta_test_added_no_dsn(const modmta_ctx *ctx, const char *addr);
/* The envelope sender the last hook gave its rewrite targets
 * (modmta_rcpt_rewrite_sender), or NULL. */
const char *modmta_test_rewrite_sender(const modmta_ctx *ctx);

/* Make an instance of another module an owner of domains for h, as the
 * chain does for every instance with owns_domain: modmta_is_inbound_domain
 * on a ctx running with h then asks it. 0 or MODMTA_E_NOMEM. */
int modmta_test_host_add_owner(modmta_host *h,
                               int (*owns_domain)(void *inst,
                                                  const char *domain),
                               void *inst);

/* A fake host has no resolver (modmta_host_dns gives NULL) and no
 * listeners until a test gives them; modmta_test_host_free frees both.
 * set_dns: a resolver asking only `server` (libunbound's "IP@port": a
 * DNS server the test started on loopback), giving up after timeout_s.
 * add_own: ip (text) and port are one of this daemon's SMTP listeners
 * for modmta_host_is_own_address. 0, MODMTA_E_INVAL or MODMTA_E_NOMEM. */
int modmta_test_host_set_dns(modmta_host *h, const char *server,
                             long timeout_s);
int modmta_test_host_add_own(modmta_host *h, const char *ip, int port);

/* ---- a client connection (verb handlers, serve()) ----
 * A real modmta_conn, the server's end of a socketpair; the test is the
 * client at the other end. Input the client sends before the call waits
 * in the socket; a handler run on another thread can hold a dialogue:
 *
 *   modmta_test_conn *tc = modmta_test_conn_new("AGJvYgBwdw==\r\n");
 *   modmta_test_enter(ctx, MODMTA_PHASE_VERB, &modmta_descriptor, inst);
 *   v = modmta_descriptor.commands[0].handler(inst, ctx,
 *                                             modmta_test_conn_get(tc),
 *                                             "PLAIN");
 *   assert_string_equal(modmta_test_conn_output(tc), "334 \r\n");
 *   modmta_test_conn_free(tc);
 *
 * Each call fails the running test on an error. */
typedef struct modmta_test_conn modmta_test_conn;

/* A connection whose client has sent `input` already (NULL: nothing). */
modmta_test_conn *modmta_test_conn_new(const char *input);
/* The server's side, to hand to a verb handler or serve(). */
modmta_conn *modmta_test_conn_get(modmta_test_conn *tc);
/* The client sends text (to a handler waiting on another thread). At
 * most a socket buffer's worth (some 100 KiB) may wait unread. */
void modmta_test_conn_send(modmta_test_conn *tc, const char *text);
/* The client is done sending: the server reads end of file from now on
 * (the client can still read). */
void modmta_test_conn_hangup(modmta_test_conn *tc);
/* The next line the server sent, CRLF included, waiting for it (a
 * server flushes its output before it waits for input; the test fails
 * if none comes in 30 s or the server closes). Safe while a handler runs
 * on another thread. Valid until the next call on tc. */
const char *modmta_test_conn_read_line(modmta_test_conn *tc);
/* Flush the server's side and return everything it wrote that the
 * client has not read ("" for nothing): call it when no handler runs
 * on tc. Valid until the next call on tc. */
const char *modmta_test_conn_output(modmta_test_conn *tc);
/* Close both sides (a NULL tc is ignored). */
void modmta_test_conn_free(modmta_test_conn *tc);

#endif
