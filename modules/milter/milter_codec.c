/* milter: packet codec (milter_codec.h). */
#include <stdlib.h>
#include <string.h>

#include "milter_codec.h"

static int
milter_buf_grow(struct milter_buf *b, size_t n)
{
    size_t cap;
    unsigned char *p;

    if (n <= b->cap - b->len)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap - b->len < n) {
        if (cap > ((size_t)-1) / 2)
            return -1;
        cap *= 2;
    }
    p = realloc(b->data, cap);
    if (p == NULL)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

void
milter_buf_free(struct milter_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

int
milter_pkt_bytes(struct milter_buf *b, const void *p, size_t n)
{
    if (milter_buf_grow(b, n) < 0)
        return -1;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int
milter_pkt_begin(struct milter_buf *b, int cmd)
{
    unsigned char hdr[5] = {0, 0, 0, 0, (unsigned char)cmd};

    b->start = b->len;
    return milter_pkt_bytes(b, hdr, sizeof(hdr));
}

int
milter_pkt_u32(struct milter_buf *b, uint32_t v)
{
    unsigned char o[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};

    return milter_pkt_bytes(b, o, sizeof(o));
}

int
milter_pkt_u16(struct milter_buf *b, uint16_t v)
{
    unsigned char o[2] = {(unsigned char)(v >> 8), (unsigned char)v};

    return milter_pkt_bytes(b, o, sizeof(o));
}

int
milter_pkt_str(struct milter_buf *b, const char *s)
{
    return milter_pkt_bytes(b, s, strlen(s) + 1);
}

void
milter_pkt_end(struct milter_buf *b)
{
    size_t n = b->len - b->start - 4;
    unsigned char *h = b->data + b->start;

    h[0] = (unsigned char)(n >> 24);
    h[1] = (unsigned char)(n >> 16);
    h[2] = (unsigned char)(n >> 8);
    h[3] = (unsigned char)n;
}

int
milter_pkt_empty(struct milter_buf *b, int cmd)
{
    if (milter_pkt_begin(b, cmd) < 0)
        return -1;
    milter_pkt_end(b);
    return 0;
}

int
milter_rd_u32(struct milter_rd *r, uint32_t *v_r)
{
    if (r->left < 4)
        return -1;
    *v_r = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 |
           (uint32_t)r->p[2] << 8 | r->p[3];
    r->p += 4;
    r->left -= 4;
    return 0;
}

int
milter_rd_str(struct milter_rd *r, const char **s_r)
{
    const unsigned char *nul = memchr(r->p, '\0', r->left);

    if (nul == NULL)
        return -1;
    *s_r = (const char *)r->p;
    r->left -= (size_t)(nul - r->p) + 1;
    r->p = nul + 1;
    return 0;
}

long
milter_pkt_length(const unsigned char hdr[4], size_t max)
{
    uint32_t n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
                 (uint32_t)hdr[2] << 8 | hdr[3];

    if (n == 0 || n > max)
        return -1;
    return (long)n;
}
