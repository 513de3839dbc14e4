/*
 * modmtactl's parts: the control client (modmtactl.c) and the commands
 * that work without the daemon, such as map (modmtactl_map.c).
 */
#ifndef MODMTACTL_H
#define MODMTACTL_H

#include "config.h"

#define CTL_EXIT_OK 0
#define CTL_EXIT_ERROR 1
#define CTL_EXIT_USAGE 2

/* The configuration in the file config, or NULL after printing every
 * error it has. */
struct config *ctl_config_load(const char *config);

/* "map get|set|del|import ...": argv[0] is "map". Returns the exit
 * status. */
int ctl_map(int argc, char **argv, const char *config);

#endif
