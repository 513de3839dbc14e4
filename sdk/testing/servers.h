/*
 * libmodmta-test: ports and servers for unit tests that start a real
 * peer on loopback (dnsmasq, a script). The helpers fail the running
 * cmocka test when the machine cannot give what they promise.
 *
 *   int port = modmta_test_free_port(NULL);
 *   char a_port[32];
 *   char *argv[] = { "/usr/sbin/dnsmasq", "-d", a_port, ..., NULL };
 *   snprintf(a_port, sizeof(a_port), "--port=%d", port);
 *   pid_t pid = modmta_test_spawn(argv, port);
 *   ...
 *   modmta_test_stop(pid);
 */
#ifndef MODMTA_TESTING_SERVERS_H
#define MODMTA_TESTING_SERVERS_H

#include <stdint.h>
#include <sys/types.h>

/* A socket of type (SOCK_STREAM, SOCK_DGRAM) bound to addr (host order:
 * INADDR_LOOPBACK, or INADDR_ANY for every local address) and port (0:
 * any). Its port, with the socket in *fd_r; -1 if it cannot be bound.
 * A TCP socket that never listens refuses every connection. */
int modmta_test_bind(int type, uint32_t addr, int port, int *fd_r);

/* A port of 127.0.0.1 free for both UDP and TCP. With keep, both
 * sockets stay bound in keep[0] (UDP) and keep[1] (TCP): a server that
 * never answers; else they are closed for a server to take. */
int modmta_test_free_port(int keep[2]);

/* 1 if a TCP connection to 127.0.0.1:port is accepted. */
int modmta_test_tcp_connects(int port);

/* Run argv (argv[0] a path) in a child that dies with this process; with
 * port > 0, wait until it accepts TCP connections on 127.0.0.1:port (up
 * to 10 s; the test fails if it exits first). Its pid. */
pid_t modmta_test_spawn(char *const argv[], int port);

/* In a child made by hand: die with the parent, as modmta_test_spawn's
 * children do. */
void modmta_test_child_dies_with_parent(void);

/* SIGTERM pid and reap it (pid <= 0: nothing). */
void modmta_test_stop(pid_t pid);

#endif
