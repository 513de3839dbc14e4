/*
 * milter: packet codec. A packet is a 4-octet length in network order
 * (counting the code and the data), a one-octet code, then the data.
 * Building appends to a growable buffer; reading walks the data of one
 * received packet and never reads past it.
 */
#ifndef MILTER_CODEC_H
#define MILTER_CODEC_H

#include <stddef.h>
#include <stdint.h>

struct milter_buf {
    unsigned char *data;
    size_t len;
    size_t cap;
    size_t start; /* offset of the packet being built */
};

void milter_buf_free(struct milter_buf *b);
/* Begin a packet with code `cmd` (after what the buffer holds, so
 * several packets go out in one write). 0, or -1 out of memory. */
int milter_pkt_begin(struct milter_buf *b, int cmd);
int milter_pkt_u32(struct milter_buf *b, uint32_t v);
int milter_pkt_u16(struct milter_buf *b, uint16_t v);
/* A string and its NUL. */
int milter_pkt_str(struct milter_buf *b, const char *s);
int milter_pkt_bytes(struct milter_buf *b, const void *p, size_t n);
/* Write the length of the packet begun last. */
void milter_pkt_end(struct milter_buf *b);

/* A packet with no data (ABORT, QUIT, EOH...). */
int milter_pkt_empty(struct milter_buf *b, int cmd);

/* Reading one packet's data. */
struct milter_rd {
    const unsigned char *p;
    size_t left;
};

/* 0, or -1 when the data is too short. */
int milter_rd_u32(struct milter_rd *r, uint32_t *v_r);
/* A NUL-terminated string inside the data; -1 when there is no NUL. */
int milter_rd_str(struct milter_rd *r, const char **s_r);

/* The length field of a packet header; -1 if 0 or over max. */
long milter_pkt_length(const unsigned char hdr[4], size_t max);

#endif
