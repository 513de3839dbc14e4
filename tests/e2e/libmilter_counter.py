"""A libmilter milter for the connection reuse test, on Debian's pymilter
(python3-milter, a binding of libmilter itself): it answers CONTINUE
at the end of message, as libmilter needs for QUIT_NC, and adds
X-Libmilter: session=N, N counting the sessions (CONNECT) this process
served.

    /usr/bin/python3 libmilter_counter.py PORT
"""

import sys

import Milter

SESSIONS = [0]


class Counter(Milter.Base):

    def __init__(self):
        self.session = 0

    @Milter.noreply
    def connect(self, hostname, family, hostaddr):
        SESSIONS[0] += 1
        self.session = SESSIONS[0]
        return Milter.CONTINUE

    def eom(self):
        self.addheader('X-Libmilter', 'session=%d' % self.session)
        return Milter.CONTINUE


def main():
    Milter.factory = Counter
    Milter.set_flags(Milter.ADDHDRS)
    sys.stdout.write('ready\n')
    sys.stdout.flush()
    Milter.runmilter('counter', 'inet:%s@127.0.0.1' % sys.argv[1], 60)


if __name__ == '__main__':
    main()
