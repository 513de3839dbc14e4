/* Helpers shared by the harnesses (fuzz_input.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_input.h"

char *
fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (s != NULL) {
        memcpy(s, data, size);
        s[size] = '\0';
    }
    return s;
}

void
fuzz_each_line(char *s, void (*fn)(char *line, void *arg), void *arg)
{
    while (s != NULL) {
        char *nl = strchr(s, '\n'), *next = NULL;

        if (nl != NULL) {
            next = nl + 1;
            if (nl > s && nl[-1] == '\r')
                nl--;
            *nl = '\0';
        }
        fn(s, arg);
        s = next;
    }
}

static char tmpdir[64];

static void
tmpdir_remove(void)
{
    char cmd[96];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
}

const char *
fuzz_tmpdir(const char *name)
{
    if (tmpdir[0] == '\0') {
        /* tmpfs where there is one: a queue commit's fsyncs cost nothing */
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

        snprintf(tmpdir, sizeof(tmpdir), "%s/modmta-fuzz-%s-XXXXXX", base,
                 name);
        if (mkdtemp(tmpdir) == NULL) {
            perror("mkdtemp");
            abort();
        }
        atexit(tmpdir_remove);
    }
    return tmpdir;
}

int
fuzz_write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    int rc = 0;

    if (f == NULL)
        return -1;
    if (size != 0 && fwrite(data, 1, size, f) != size)
        rc = -1;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}
