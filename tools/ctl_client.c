/*
 * What modmtactl and modmta-sendmail share: finding the configuration
 * the daemon runs with, one request to a daemon socket (the control
 * socket, or the submission socket's "showq"), and the aliases check.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <modmta/map.h>

#include "file_open_priv.h"
#include "modmtactl.h"

const char *ctl_progname = "modmtactl";

const char *
ctl_config_default(void)
{
    return access(CTL_DEFAULT_CONFIG, F_OK) == 0 ? CTL_DEFAULT_CONFIG : NULL;
}

struct config *
ctl_config_load(const char *config)
{
    struct config_errors errs = {0};
    struct config *cfg = config_load(config, &errs);

    if (cfg == NULL) {
        fprintf(stderr, "%s: %s: invalid configuration\n", ctl_progname,
                config != NULL ? config : "(embedded default)");
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "  %s\n", errs.msgs[i]);
        config_errors_free(&errs);
    }
    return cfg;
}

/* The control socket named by the config file; NULL after printing why. */
char *
ctl_socket_path(const char *config)
{
    struct config *cfg = ctl_config_load(config);
    char *path;

    if (cfg == NULL)
        return NULL;
    path = strdup(cfg->control_socket);
    config_free(cfg);
    if (path == NULL)
        fprintf(stderr, "%s: out of memory\n", ctl_progname);
    return path;
}

int
ctl_connect_quiet(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int e = errno;

        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int
ctl_connect(const char *path)
{
    int fd = ctl_connect_quiet(path);

    if (fd < 0)
        fprintf(stderr, "%s: cannot connect to %s: %s (is modmta "
                "running?)\n", ctl_progname, path, strerror(errno));
    return fd;
}

static int
ctl_send(int fd, const char *req)
{
    size_t len = strlen(req);

    while (len > 0) {
        ssize_t n = send(fd, req, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        req += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Read the whole response; NULL after printing why. */
static char *
ctl_receive(int fd, const char *path)
{
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);

    while (buf != NULL) {
        ssize_t n;

        if (len + 1 == cap) {
            char *p = realloc(buf, cap * 2);

            if (p == NULL)
                break;
            buf = p;
            cap *= 2;
        }
        n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "%s: %s: %s\n", ctl_progname, path,
                    strerror(errno));
            free(buf);
            return NULL;
        }
        if (n == 0) {
            buf[len] = '\0';
            return buf;
        }
        len += (size_t)n;
    }
    free(buf);
    fprintf(stderr, "%s: out of memory\n", ctl_progname);
    return NULL;
}

/* Print the body and turn the status line into an exit code. */
int
ctl_report(const char *resp)
{
    const char *nl = strchr(resp, '\n');
    const char *body = nl != NULL ? nl + 1 : "";
    size_t status_len = nl != NULL ? (size_t)(nl - resp) : strlen(resp);

    if (status_len == 2 && strncmp(resp, "ok", 2) == 0) {
        fputs(body, stdout);
        return fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_USAGE;
    }
    if (strncmp(resp, "error: ", 7) == 0) {
        fprintf(stderr, "%s: %.*s\n", ctl_progname, (int)(status_len - 7),
                resp + 7);
        fputs(body, stderr);
        return CTL_EXIT_ERROR;
    }
    fprintf(stderr, "%s: unexpected answer from the daemon: %.*s\n",
            ctl_progname, (int)(status_len < 80 ? status_len : 80), resp);
    return CTL_EXIT_USAGE;
}

int
ctl_run(const char *path, const char *req)
{
    int fd = ctl_connect(path);
    char *resp;
    int rc;

    if (fd < 0)
        return CTL_EXIT_USAGE;
    if (ctl_send(fd, req) < 0) {
        fprintf(stderr, "%s: %s: %s\n", ctl_progname, path,
                strerror(errno));
        close(fd);
        return CTL_EXIT_USAGE;
    }
    shutdown(fd, SHUT_WR);
    resp = ctl_receive(fd, path);
    close(fd);
    if (resp == NULL)
        return CTL_EXIT_USAGE;
    if (resp[0] == '\0') {
        fprintf(stderr, "%s: %s: the daemon closed the connection "
                "without an answer\n", ctl_progname, path);
        rc = CTL_EXIT_USAGE;
    } else {
        rc = ctl_report(resp);
    }
    free(resp);
    return rc;
}

/* The config file's JSON, or NULL with the error printed (opened
 * without blocking: a FIFO named as the config must not hang
 * modmtactl). */
static json_t *
ctl_config_json(const char *config)
{
    modmta_err err = {"", ""};
    json_error_t jerr;
    struct stat st;
    FILE *f = file_open_read(config, FILE_OPEN_MAX, &st, &err);
    json_t *root;

    if (f == NULL) {
        fprintf(stderr, "%s: %s\n", ctl_progname, err.msg);
        return NULL;
    }
    root = json_loadf(f, 0, &jerr);
    if (ferror(f)) { /* jansson takes it for the end of the text */
        fprintf(stderr, "%s: %s: %s\n", ctl_progname, config,
                strerror(errno));
        json_decref(root);
        root = NULL;
    } else if (root == NULL) {
        fprintf(stderr, "%s: %s:%d:%d: %s\n", ctl_progname, config,
                jerr.line, jerr.column, jerr.text);
    }
    fclose(f);
    return root;
}

/* The file of the first alias module's "aliases:PATH" map in config. */
char *
ctl_aliases_default(const char *config, int *rc_r)
{
    json_t *root = config != NULL ? ctl_config_json(config)
                   : json_loads(config_default_text(), 0, NULL);
    json_t *mods, *m;
    const char *spec, *mod;
    char *path = NULL;
    size_t i;

    *rc_r = CTL_EXIT_ERROR;
    if (root == NULL)
        return NULL;
    mods = json_object_get(root, "modules");
    json_array_foreach(mods, i, m) {
        spec = json_string_value(json_object_get(m, "map"));
        mod = json_string_value(json_object_get(m, "module"));
        if (path == NULL && spec != NULL && mod != NULL &&
            strcmp(mod, "alias") == 0 && strncmp(spec, "aliases:", 8) == 0)
            path = strdup(spec + 8);
    }
    json_decref(root);
    if (path == NULL) {
        fprintf(stderr, "%s: %s: no alias module with an "
                "\"aliases:PATH\" map; name the file\n", ctl_progname,
                config != NULL ? config : "(embedded default)");
        *rc_r = CTL_EXIT_USAGE;
    }
    return path;
}


int
ctl_aliases_check(const char *file, const char *config)
{
    char *path, *spec;
    modmta_err err = {"", ""};
    modmta_map *m;
    json_t *j;
    int rc = CTL_EXIT_ERROR;

    path = file != NULL ? strdup(file) : ctl_aliases_default(config, &rc);
    if (path == NULL || asprintf(&spec, "aliases:%s", path) < 0) {
        free(path);
        return rc;
    }
    j = json_string(spec);
    m = j != NULL ? modmta_map_open(j, path, &err) : NULL;
    if (m == NULL)
        fprintf(stderr, "%s: %s\n", ctl_progname, err.msg);
    else
        printf("%s: ok\n", path);
    modmta_map_close(m);
    json_decref(j);
    free(spec);
    free(path);
    return m != NULL ? CTL_EXIT_OK : CTL_EXIT_ERROR;
}
