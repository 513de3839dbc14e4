/*
 * modmtactl's parts: the control client (modmtactl.c) and the commands
 * that work without the daemon, such as map (modmtactl_map.c).
 */
#ifndef MODMTACTL_H
#define MODMTACTL_H

#include "config.h"

#define CTL_DEFAULT_CONFIG "/etc/modmta/modmta.json"

#define CTL_EXIT_OK 0
#define CTL_EXIT_ERROR 1
#define CTL_EXIT_USAGE 2

/* The name error messages start with ("modmtactl", "sendmail"...). */
extern const char *ctl_progname;

/* The configuration the daemon runs with when none is named:
 * CTL_DEFAULT_CONFIG when that file exists, else NULL, which stands for
 * the embedded default (modmta without -c). */
const char *ctl_config_default(void);

/* The configuration in the file config (NULL: the embedded default), or
 * NULL after printing every error it has. */
struct config *ctl_config_load(const char *config);
/* Its control socket, malloc'ed; NULL after printing why. */
char *ctl_socket_path(const char *config);

/* Connect to a daemon's UNIX socket; -1 after printing why. */
int ctl_connect(const char *path);
/* The same without printing: -1 with errno set. */
int ctl_connect_quiet(const char *path);
/* Send req (a line), read the whole answer, print it (body to stdout,
 * errors to stderr); returns a CTL_EXIT_* status. */
int ctl_run(const char *path, const char *req);
/* Print the body of an "ok"/"error: " answer; a CTL_EXIT_* status. */
int ctl_report(const char *resp);

/* The file of the first alias module's "aliases:PATH" map in config
 * (NULL: the embedded default), malloc'ed; NULL after printing why,
 * with the CTL_EXIT_* status in *rc_r (an error when the config cannot
 * be read, usage when it has no such map). */
char *ctl_aliases_default(const char *config, int *rc_r);
/* Parse file (NULL: the config's aliases file) as the alias module
 * does; errors name FILE:LINE. A CTL_EXIT_* status. */
int ctl_aliases_check(const char *file, const char *config);

/* "map get|set|del|import ...": argv[0] is "map". Returns the exit
 * status. */
int ctl_map(int argc, char **argv, const char *config);

#endif
