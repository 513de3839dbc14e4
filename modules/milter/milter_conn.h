/*
 * milter: one connection to a milter. Non-blocking socket, every wait
 * bounded by a time limit (poll), TCP_NODELAY on TCP (a milter
 * conversation is many small request/reply pairs). Output is queued in
 * `out` and written by milter_conn_flush, so a macro packet and its
 * command go out in one write.
 */
#ifndef MILTER_CONN_H
#define MILTER_CONN_H

#include <stddef.h>
#include <sys/socket.h>

#include "milter_codec.h"

#define MILTER_CONN_INBUF 4096

struct milter_conn {
    int fd;
    struct milter_buf out;
    unsigned char in[MILTER_CONN_INBUF]; /* read ahead: one recv() takes
                                          * a whole short reply */
    size_t in_pos;
    size_t in_len;
    int code;            /* of the last packet read */
    unsigned char *data; /* its data (NUL-terminated for safety) */
    size_t len;
    size_t cap;
};

/* Connect within timeout_ms. 0, or a MODMTA_E_* with err (a message). */
int milter_conn_open(struct milter_conn *c, const struct sockaddr *sa,
                     socklen_t salen, int timeout_ms, char *err,
                     size_t errlen);
/* Write what `out` holds. 0, MODMTA_E_IO or MODMTA_E_TIMEOUT. */
int milter_conn_flush(struct milter_conn *c, int timeout_ms);
/* Read one packet. 0, MODMTA_E_IO (closed, error), MODMTA_E_TIMEOUT,
 * MODMTA_E_INVAL (a length of 0 or over MILTER_PACKET_MAX). */
int milter_conn_read(struct milter_conn *c, int timeout_ms);
/* Close and free; the struct can be opened again. */
void milter_conn_close(struct milter_conn *c);

#endif
