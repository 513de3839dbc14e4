/*
 * The mbox reader pop3 serves mailboxes with (modules/pop3/pop3_mbox.c):
 * the input is a mailbox file. It is loaded as a session loads it (lock,
 * cut a half-written last message, index), then every message is sent
 * whole and as TOP 0 and TOP 2 would send it.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <modmta/log.h>

#include "../modules/pop3/pop3_mbox.h"
#include "fuzz_input.h"
#include "log_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[256];

/* What a session writes: counted, and checked for a lone LF. */
static int
put(const char *buf, size_t len, void *arg)
{
    *(size_t *)arg += len;
    for (size_t i = 0; i < len; i++)
        if (buf[i] == '\n' && (i == 0 ? 0 : buf[i - 1] != '\r'))
            abort();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pop3_index ix;
    off_t cut = 0;
    int fd = -1;

    if (path[0] == '\0') {
        modmta_log_setup(MODMTA_LOG_ERR - 1, 0, NULL); /* quiet */
        snprintf(path, sizeof(path), "%s/mbox", fuzz_tmpdir("mbox"));
    }
    if (fuzz_write_file(path, data, size) < 0)
        return 0;
    memset(&ix, 0, sizeof(ix));
    if (pop3_mbox_load(path, 1000, 60, &fd, &ix, &cut) == 0) {
        for (size_t i = 0; i < ix.n; i++) {
            const struct pop3_msg *m = &ix.msgs[i];
            size_t sent = 0;

            if (m->off > m->body || m->body > m->end || m->end > m->next ||
                m->next > ix.len)
                abort();
            pop3_mbox_send(fd, m, -1, put, &sent);
            pop3_mbox_send(fd, m, 0, put, &sent);
            pop3_mbox_send(fd, m, 2, put, &sent);
        }
        pop3_mbox_index_free(&ix);
    }
    if (fd >= 0)
        close(fd);
    return 0;
}
