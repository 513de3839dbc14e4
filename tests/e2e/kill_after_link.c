/*
 * A crash at the worst moment, on purpose: preloaded into the daemon by
 * tests/e2e/test_maildir.py, this linkat() kills the process (SIGKILL,
 * as kill -9) right after a message has been linked into a Maildir's
 * new/ and before the daemon can record the delivery. The restarted
 * daemon must find the message there and not deliver it again.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

int linkat(int olddirfd, const char *oldpath, int newdirfd,
           const char *newpath, int flags);

int
linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
       int flags)
{
    int (*real)(int, const char *, int, const char *, int) =
        (int (*)(int, const char *, int, const char *, int))dlsym(
            RTLD_NEXT, "linkat");
    int rc = real(olddirfd, oldpath, newdirfd, newpath, flags);

    /* store_maildir links "<base>,S=<size>,W=<size>" into new/ */
    if (rc == 0 && strstr(newpath, ",S=") != NULL)
        kill(getpid(), SIGKILL);
    return rc;
}
