/*
 * The addresses this daemon's SMTP listeners answer on (own_addrs.c), for
 * mail-loop detection (modmta_host_is_own_address): an MX that points
 * at one of them would deliver the message back to us.
 */
#ifndef MODMTA_CORE_OWN_ADDRS_H
#define MODMTA_CORE_OWN_ADDRS_H

#include <stddef.h>
#include <sys/socket.h>

#include "config.h"

/* Every SMTP listener's address and port; a wildcard listener (0.0.0.0,
 * ::) also as each address of the machine's interfaces of its family
 * (getifaddrs), with its port. Malloc'ed array, *n_r entries; NULL with
 * *n_r 0 when there is none or memory ran out (loop detection then sees
 * no own address: a wildcard listener's loop is still caught by its
 * 0.0.0.0 entry for mail to 0.0.0.0 only). */
struct sockaddr_storage *own_addrs_build(const struct config *cfg,
                                         size_t *n_r);

#endif
