/* libmodmta-test: ports and servers on loopback (servers.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "servers.h"

int
modmta_test_bind(int type, uint32_t addr, int port, int *fd_r)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);

    sa.sin_addr.s_addr = htonl(addr);
    sa.sin_port = htons((uint16_t)port);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *fd_r = fd;
    return ntohs(sa.sin_port);
}

int
modmta_test_free_port(int keep[2])
{
    for (int tries = 0; tries < 50; tries++) {
        int u, t, port = modmta_test_bind(SOCK_DGRAM, INADDR_LOOPBACK, 0, &u);

        assert_true(port > 0);
        if (modmta_test_bind(SOCK_STREAM, INADDR_LOOPBACK, port, &t) ==
            port) {
            if (keep != NULL) {
                keep[0] = u;
                keep[1] = t;
            } else {
                close(u);
                close(t);
            }
            return port;
        }
        close(u);
    }
    fail_msg("no free loopback port");
    return -1;
}

int
modmta_test_tcp_connects(int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

void
modmta_test_child_dies_with_parent(void)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1)
        _exit(1);
}

pid_t
modmta_test_spawn(char *const argv[], int port)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        /* a server must not outlive a test that crashed */
        modmta_test_child_dies_with_parent();
        execv(argv[0], argv);
        fprintf(stderr, "%s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    for (int i = 0; port > 0 && i < 1000 && !modmta_test_tcp_connects(port);
         i++) {
        int st;

        if (waitpid(pid, &st, WNOHANG) == pid)
            fail_msg("%s exited (status %d)", argv[0], st);
        usleep(10000);
    }
    if (port > 0 && !modmta_test_tcp_connects(port))
        fail_msg("%s does not accept connections on port %d", argv[0],
                 port);
    return pid;
}

void
modmta_test_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}
