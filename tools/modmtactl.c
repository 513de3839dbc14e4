/*
 * modmtactl: send one request to the daemon's control socket and print
 * the answer (protocol in core/control.h, usage in docs/operations.md);
 * a few commands work without the daemon (aliases, passwd, map).
 * Exit status: 0 ok, 1 the daemon answered an error, 2 usage, config or
 * connection problem.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <jansson.h>
#include <modmta/map.h>
#include <modmta/passdb.h>

#include "modmtactl.h"
#include "modmtactl_cluster.h"

struct ctl_cmd {
    const char *name;
    int takes_id;
};

static const struct ctl_cmd ctl_cmds[] = {
    {"queue", 0}, {"show", 1}, {"flush", 0}, {"delete", 1},
    {"hold", 1}, {"release", 1}, {"reload", 0}, {"stats", 0},
};

static void
ctl_usage(FILE *f)
{
    fprintf(f,
        "usage: modmtactl [-c FILE] [-s SOCKET] COMMAND [ID]\n"
        "\n"
        "Commands:\n"
        "  queue        list the queue (like mailq)\n"
        "  show ID      print a message's envelope and headers\n"
        "  flush        retry every deferred message now\n"
        "  delete ID    remove a message from the queue\n"
        "  hold ID      keep a message from being delivered\n"
        "  release ID   deliver a held or quarantined message\n"
        "  reload       re-read the configuration\n"
        "  reload --cluster [--timeout SECONDS]\n"
        "               make every node sharing the config's Redis reload\n"
        "               its own configuration; one line per node, waiting\n"
        "               up to SECONDS (default 30) for the answers\n"
        "  stats        print counters as JSON\n"
        "  aliases check [FILE]\n"
        "               check an aliases(5) file (default: the map of the\n"
        "               config's alias module); no daemon needed\n"
        "  passwd [-6] USER\n"
        "               print a passdb line USER:{CRYPT}$y$... (-6: $6$)\n"
        "               for the password read from the terminal (no echo)\n"
        "               or the first line of standard input\n"
        "  map get SPEC KEY\n"
        "               look KEY up in the map SPEC (redis:alias:, file:...)\n"
        "  map set SPEC KEY VALUE | map del SPEC KEY\n"
        "               write or remove an entry of a redis: map\n"
        "  map import [--replace] SPEC SOURCE\n"
        "               load every entry of SOURCE (aliases:FILE or\n"
        "               file:FILE) into the redis: map SPEC, all or\n"
        "               nothing; --replace also deletes the map's keys\n"
        "               SOURCE does not have\n"
        "               (map: Redis from the config's \"redis\" section;\n"
        "               no daemon needed)\n"
        "\n"
        "Options:\n"
        "  -c FILE      configuration that names the control socket and\n"
        "               Redis (default " CTL_DEFAULT_CONFIG ", or the\n"
        "               embedded default when that file does not exist)\n"
        "  -s SOCKET    talk to this control socket, ignoring -c\n"
        "  -h, --help   this text\n"
        "\n"
        "Exit status: 0 done, 1 the daemon reported an error, 2 usage or\n"
        "connection problem.\n");
}

static const struct ctl_cmd *
ctl_find(const char *name)
{
    for (size_t i = 0; i < sizeof(ctl_cmds) / sizeof(*ctl_cmds); i++)
        if (strcmp(ctl_cmds[i].name, name) == 0)
            return &ctl_cmds[i];
    return NULL;
}

/* Check COMMAND [ID] and build the request line; NULL after a message. */
static char *
ctl_request(int argc, char **argv)
{
    const struct ctl_cmd *cmd = ctl_find(argv[0]);
    char *req;

    if (cmd == NULL) {
        fprintf(stderr, "modmtactl: unknown command \"%s\" (see "
                "modmtactl --help)\n", argv[0]);
        return NULL;
    }
    if (argc != 1 + cmd->takes_id) {
        fprintf(stderr, cmd->takes_id ? "modmtactl: usage: modmtactl %s ID\n"
                : "modmtactl: usage: modmtactl %s\n", cmd->name);
        return NULL;
    }
    if (strpbrk(argv[argc - 1], " \r\n") != NULL) {
        fprintf(stderr, "modmtactl: invalid queue ID\n");
        return NULL;
    }
    if (asprintf(&req, "%s%s%s\n", cmd->name, cmd->takes_id ? " " : "",
                 cmd->takes_id ? argv[1] : "") < 0)
        return NULL;
    return req;
}

/* "aliases check [FILE]": parse the file as the alias module does (like
 * newaliases, without a database); errors name FILE:LINE. */
static int
ctl_aliases(int argc, char **argv, const char *config)
{
    if (argc < 2 || argc > 3 || strcmp(argv[1], "check") != 0) {
        fprintf(stderr, "modmtactl: usage: modmtactl aliases check "
                "[FILE]\n");
        return CTL_EXIT_USAGE;
    }
    return ctl_aliases_check(argc == 3 ? argv[2] : NULL, config);
}

/* Read one line from stdin, without echo on a terminal; NULL at EOF. */
static char *
ctl_passwd_read(const char *prompt)
{
    struct termios old, quiet;
    int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    if (tty) {
        fprintf(stderr, "%s", prompt);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    n = getline(&line, &cap, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    return line;
}

static void
ctl_passwd_free(char *pw)
{
    if (pw != NULL)
        memset(pw, 0, strlen(pw));
    free(pw);
}

/* "passwd [-6] USER": a file: passdb line for auth_sasl and pop3. */
static int
ctl_passwd(int argc, char **argv)
{
    int sha = argc == 3 && strcmp(argv[1], "-6") == 0;
    const char *user = argv[argc - 1];
    char *pw, *again = NULL, *hash;
    modmta_err err = {"", ""};
    int rc = CTL_EXIT_ERROR;

    if (argc != 2 + sha || user[0] == '\0' || user[0] == '-'
        || strpbrk(user, ": \t\r\n#") != NULL) {
        fprintf(stderr, "modmtactl: usage: modmtactl passwd [-6] USER "
                "(no ':', '#' or white space in USER)\n");
        return CTL_EXIT_USAGE;
    }
    pw = ctl_passwd_read("Password: ");
    if (pw != NULL && isatty(STDIN_FILENO))
        again = ctl_passwd_read("Again: ");
    if (pw == NULL || pw[0] == '\0') {
        fprintf(stderr, "modmtactl: no password given\n");
    } else if (isatty(STDIN_FILENO)
               && (again == NULL || strcmp(pw, again) != 0)) {
        fprintf(stderr, "modmtactl: the passwords differ\n");
    } else if ((hash = modmta_passdb_hash(pw, sha ? "$6$" : "$y$",
                                          &err)) == NULL) {
        fprintf(stderr, "modmtactl: %s\n", err.msg);
    } else {
        printf("%s:%s\n", user, hash);
        free(hash);
        rc = CTL_EXIT_OK;
    }
    ctl_passwd_free(pw);
    ctl_passwd_free(again);
    return rc;
}

/* "reload --cluster ...": through Redis, not the control socket. */
static int
ctl_reload_cluster(int argc, char **argv, const char *config)
{
    struct config *cfg = ctl_config_load(config);
    int rc;

    if (cfg == NULL)
        return CTL_EXIT_USAGE;
    rc = ctl_cluster_reload(cfg, argc, argv);
    config_free(cfg);
    return rc;
}

int
main(int argc, char **argv)
{
    const char *config = ctl_config_default(), *sock = NULL;
    char *path = NULL, *req;
    int i, rc;

    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        const char *opt = argv[i];

        if (!strcmp(opt, "-h") || !strcmp(opt, "--help")) {
            ctl_usage(stdout);
            return CTL_EXIT_OK;
        }
        if (!strcmp(opt, "--")) {
            i++;
            break;
        }
        if (strcmp(opt, "-c") != 0 && strcmp(opt, "-s") != 0) {
            fprintf(stderr, "modmtactl: unknown option %s\n", opt);
            return CTL_EXIT_USAGE;
        }
        if (++i == argc) {
            fprintf(stderr, "modmtactl: %s needs an argument\n", opt);
            return CTL_EXIT_USAGE;
        }
        *(opt[1] == 'c' ? &config : &sock) = argv[i];
    }
    if (i >= argc) {
        ctl_usage(stderr);
        return CTL_EXIT_USAGE;
    }
    if (strcmp(argv[i], "aliases") == 0)
        return ctl_aliases(argc - i, argv + i, config);
    if (strcmp(argv[i], "passwd") == 0)
        return ctl_passwd(argc - i, argv + i);
    if (strcmp(argv[i], "map") == 0)
        return ctl_map(argc - i, argv + i, config);
    if (strcmp(argv[i], "reload") == 0 && argc - i > 1)
        return ctl_reload_cluster(argc - i, argv + i, config);
    if ((req = ctl_request(argc - i, argv + i)) == NULL)
        return CTL_EXIT_USAGE;
    if (sock == NULL && (path = ctl_socket_path(config)) == NULL) {
        free(req);
        return CTL_EXIT_USAGE;
    }
    rc = ctl_run(sock != NULL ? sock : path, req);
    free(req);
    free(path);
    return rc;
}
