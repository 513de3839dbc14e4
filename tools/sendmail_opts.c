/*
 * sendmail(8) options, as Sendmail and Postfix take them: flags may be
 * grouped (-ti), an option's argument may be attached (-fuser) or be the
 * next word (-f user). Options Postfix accepts and ignores are ignored
 * here too; any other is a usage error.
 */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "sendmail.h"

/* Ignored, with an argument: -B body type, -h hop count, -L label,
 * -N DSN notify, -O option, -p protocol, -R DSN return, -V envid,
 * -X log file, -e error mode (old form). */
static const char sm_ignored_arg[] = "BhLNOpRVXe";
/* Ignored, alone: -c, -G, -m, -n, -U, -x. */
static const char sm_ignored_flag[] = "cGmnUx";

static const char *
sm_base(const char *argv0)
{
    const char *slash = strrchr(argv0, '/');

    return slash != NULL ? slash + 1 : argv0;
}

/* -b MODE. */
static int
sm_opt_b(struct sm_opts *o, const char *v, char *err, size_t errlen)
{
    if (strcmp(v, "m") == 0)
        o->mode = SM_DELIVER;
    else if (strcmp(v, "s") == 0)
        o->mode = SM_SMTP;
    else if (strcmp(v, "p") == 0)
        o->mode = SM_MAILQ;
    else if (strcmp(v, "i") == 0)
        o->mode = SM_NEWALIASES;
    else {
        snprintf(err, errlen, "-b%s: unsupported mode (modmta-sendmail "
                 "knows -bm, -bs, -bp and -bi)", v);
        return EX_USAGE;
    }
    return 0;
}

/* -o OPTION: -oi, -oem, -oep, -oA FILE; the others are ignored. */
static int
sm_opt_o(struct sm_opts *o, const char *v)
{
    if (strcmp(v, "i") == 0)
        o->ignore_dots = 1;
    else if (strcmp(v, "em") == 0 || strcmp(v, "ew") == 0)
        o->mail_errors = 1;
    else if (strcmp(v, "ep") == 0 || strcmp(v, "eq") == 0)
        o->mail_errors = 0;
    else if (v[0] == 'A' && v[1] != '\0')
        o->aliases = v + 1;
    return 0;
}

/* An option with its argument v. */
static int
sm_opt_arg(struct sm_opts *o, char c, const char *v, char *err,
           size_t errlen)
{
    switch (c) {
    case 'b': return sm_opt_b(o, v, err, errlen);
    case 'C': o->config = v; return 0;
    case 'f':
    case 'r': o->sender = v; return 0;
    case 'F': o->fullname = v; return 0;
    case 'o': return sm_opt_o(o, v);
    default: return 0; /* sm_ignored_arg */
    }
}

/* -q[VALUE]: a queue run. -q and -qR/-qS (every message) flush; an
 * interval (-q30m) is accepted and does nothing, as in Postfix. */
static void
sm_opt_q(struct sm_opts *o, const char *v)
{
    if (v[0] == '\0' || v[0] == 'R' || v[0] == 'S' || v[0] == 'I')
        o->mode = SM_FLUSH;
    else
        o->mode = SM_IGNORE;
}

/* One word starting with '-': its flags, or one option and its
 * argument. *i moves past a separate argument. */
static int
sm_word(int argc, char **argv, int *i, struct sm_opts *o, char *err,
        size_t errlen)
{
    const char *w = argv[*i] + 1;

    for (; *w != '\0'; w++) {
        char c = *w;

        if (strchr("bCfrFo", c) != NULL || strchr(sm_ignored_arg, c)) {
            const char *v = w[1] != '\0' ? w + 1 : NULL;

            if (v == NULL) {
                if (*i + 1 >= argc) {
                    snprintf(err, errlen, "option -%c needs an argument",
                             c);
                    return EX_USAGE;
                }
                v = argv[++*i];
            }
            return sm_opt_arg(o, c, v, err, errlen);
        }
        if (c == 'q') {
            sm_opt_q(o, w + 1);
            return 0;
        }
        if (c == 't')
            o->extract = 1;
        else if (c == 'i')
            o->ignore_dots = 1;
        else if (c == 'v')
            o->verbose = 1;
        else if (c == 'I')
            o->mode = SM_NEWALIASES;
        else if (strchr(sm_ignored_flag, c) == NULL) {
            snprintf(err, errlen, "unknown option -%c", c);
            return EX_USAGE;
        }
    }
    return 0;
}

int
sm_parse_opts(int argc, char **argv, struct sm_opts *o, char *err,
              size_t errlen)
{
    const char *name = argc > 0 ? sm_base(argv[0]) : "sendmail";
    int i, rc;

    memset(o, 0, sizeof(*o));
    if (strcmp(name, "mailq") == 0)
        o->mode = SM_MAILQ;
    else if (strcmp(name, "newaliases") == 0)
        o->mode = SM_NEWALIASES;
    for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if ((rc = sm_word(argc, argv, &i, o, err, errlen)) != 0)
            return rc;
    }
    o->rcpts = argv + i;
    o->nrcpts = (size_t)(argc - i);
    if (o->mode == SM_DELIVER && o->nrcpts == 0 && !o->extract) {
        snprintf(err, errlen, "no recipients given (name them, or use -t "
                 "to read them from the message)");
        return EX_USAGE;
    }
    return 0;
}
