"""A fake milter (Sendmail milter protocol, version 6) for modmta's
end-to-end tests, written for this suite: it records every packet the
MTA sends and answers as a test scripts it, including wrongly.

    m = FakeMilter(proto=P_NR_HDR, on={'R': [reply('r')]})
    m.start()                  # 127.0.0.1, a free port (or unix=, inet6=)
    ... m.socket_spec() in the module's config ...
    m.commands()               # ['O', 'C', 'H', 'M', 'R', ...] of all conns
    m.macros_for('M')          # {'i': 'ABC', '{mail_addr}': ...} (last)

`on` maps a command code to what to do instead of the default answer
(CONTINUE, or nothing for a step the milter said it would not answer):
a list of replies (reply(...)) sent in order; 'close' (disconnect);
'garbage' (a packet with a length of 0); 'huge' (a length over any
limit); ('sleep', seconds) then the default; a callable(data) returning
one of these. Replies to 'E' may start with modification packets.
'K' (QUIT_NC: a new session follows on this connection) is answered by
nothing; on={'K': 'close'} closes the connection after it instead.
m.connections counts the connections accepted, m.closed those ended.
"""

import os
import socket
import struct
import threading
import time

# Actions (SMFIF_*) and protocol flags (SMFIP_*).
A_ADDHDRS, A_CHGBODY, A_ADDRCPT, A_DELRCPT = 0x01, 0x02, 0x04, 0x08
A_CHGHDRS, A_QUARANTINE, A_CHGFROM = 0x10, 0x20, 0x40
A_ADDRCPT_PAR, A_SETSYMLIST = 0x80, 0x100
A_ALL = 0x1ff
P_NOCONNECT, P_NOHELO, P_NOMAIL, P_NORCPT = 0x1, 0x2, 0x4, 0x8
P_NOBODY, P_NOHDRS, P_NOEOH, P_NR_HDR = 0x10, 0x20, 0x40, 0x80
P_NOUNKNOWN, P_NODATA, P_SKIP, P_RCPT_REJ = 0x100, 0x200, 0x400, 0x800
P_NR_CONN, P_NR_HELO, P_NR_MAIL, P_NR_RCPT = 0x1000, 0x2000, 0x4000, 0x8000
P_NR_DATA, P_NR_UNKN, P_NR_EOH, P_NR_BODY = 0x10000, 0x20000, 0x40000, \
    0x80000
P_HDR_LEADSPC, P_MDS_256K, P_MDS_1M = 0x100000, 0x10000000, 0x20000000

# The no-reply flag of each command.
NOREPLY = {'C': P_NR_CONN, 'H': P_NR_HELO, 'M': P_NR_MAIL, 'R': P_NR_RCPT,
           'T': P_NR_DATA, 'L': P_NR_HDR, 'N': P_NR_EOH, 'B': P_NR_BODY}
# Commands answered by nothing.
SILENT = ('A', 'D', 'Q', 'K')


def packet(code, data=b''):
    return struct.pack('>I', len(data) + 1) + code.encode() + data


def z(*strings):
    return b''.join(s.encode() + b'\0' for s in strings)


def reply(code, data=b''):
    return packet(code, data)


def replycode(text):
    return packet('y', z(text))


def addheader(name, value):
    return packet('h', z(name, value))


def insheader(index, name, value):
    return packet('i', struct.pack('>I', index) + z(name, value))


def chgheader(index, name, value):
    return packet('m', struct.pack('>I', index) + z(name, value))


def chgfrom(addr, args=None):
    return packet('e', z(addr) if args is None else z(addr, args))


def addrcpt(addr):
    return packet('+', z(addr))


def addrcpt_par(addr, args):
    return packet('2', z(addr, args))


def delrcpt(addr):
    return packet('-', z(addr))


def replbody(data):
    return packet('b', data)


def quarantine(reason):
    return packet('q', z(reason))


def _recv_exact(conn, n):
    buf = b''
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def _strings(data):
    return [s.decode('utf-8', 'replace') for s in data.split(b'\0')[:-1]]


class FakeMilter:
    def __init__(self, version=6, actions=A_ALL, proto=0, symlists=None,
                 on=None, unix=None, inet6=False):
        self.version = version
        self.actions = actions
        self.proto = proto
        self.symlists = symlists or {}
        self.on = on or {}
        self.unix = unix
        self.inet6 = inet6
        self.lock = threading.Lock()
        self.events = []        # (connection number, code, data)
        self.connections = 0
        self.closed = 0
        self.offered = None     # (version, actions, proto) the MTA offered
        self.sock = None
        self.port = None
        self.stopping = False

    # -- life cycle
    def start(self):
        if self.unix:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if os.path.exists(self.unix):
                os.unlink(self.unix)
            self.sock.bind(self.unix)
        elif self.inet6:
            self.sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            self.sock.bind(('::1', 0))
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(('127.0.0.1', 0))
        if not self.unix:
            self.port = self.sock.getsockname()[1]
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass

    def socket_spec(self):
        if self.unix:
            return 'unix:' + self.unix
        if self.inet6:
            return 'inet6:[::1]:%d' % self.port
        return 'inet:127.0.0.1:%d' % self.port

    # -- what was received
    def commands(self, conn=None):
        with self.lock:
            return [c for n, c, _ in self.events
                    if c != 'D' and (conn is None or n == conn)]

    def connections_with(self, code):
        """The numbers of the connections that received code (the
        harness's start probe is a session too, with no MAIL)."""
        with self.lock:
            return sorted({n for n, c, _ in self.events if c == code})

    def data_of(self, code):
        with self.lock:
            return [d for _, c, d in self.events if c == code]

    def strings_of(self, code):
        return [_strings(d) for d in self.data_of(code)]

    def macros_for(self, cmd):
        """The macros sent for command cmd, the last time."""
        found = None
        for d in self.data_of('D'):
            if d[:1].decode() == cmd:
                s = _strings(d[1:])
                found = dict(zip(s[0::2], s[1::2]))
        return found

    def wait_for(self, code, count=1, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            if self.commands().count(code) >= count:
                return True
            time.sleep(0.02)
        return False

    # -- the protocol
    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                n = self.connections
            threading.Thread(target=self._serve, args=(conn, n),
                             daemon=True).start()

    def _optneg(self, data):
        self.offered = struct.unpack('>III', data[:12])
        out = struct.pack('>III', self.version,
                          self.actions & self.offered[1],
                          self.proto & self.offered[2])
        for stage, names in sorted(self.symlists.items()):
            out += struct.pack('>I', stage) + z(names)
        return packet('O', out)

    def _serve(self, conn, n):
        try:
            while True:
                hdr = _recv_exact(conn, 4)
                length = struct.unpack('>I', hdr)[0]
                body = _recv_exact(conn, length)
                code, data = chr(body[0]), body[1:]
                with self.lock:
                    self.events.append((n, code, data))
                if code == 'O':
                    conn.sendall(self._optneg(data))
                    continue
                if code == 'Q':
                    break
                if code == 'K' and self.on.get('K') == 'close':
                    break
                if code in SILENT:
                    continue
                if not self._answer(conn, code, data):
                    break
        except (EOFError, OSError):
            pass
        finally:
            conn.close()
            with self.lock:
                self.closed += 1

    def _answer(self, conn, code, data):
        """Answer one command; False to close the connection."""
        what = self.on.get(code)
        if callable(what):
            what = what(data)
        if isinstance(what, tuple) and what[0] == 'sleep':
            time.sleep(what[1])
            what = None
        if what == 'close':
            return False
        if what == 'garbage':
            conn.sendall(struct.pack('>I', 0))
            return True
        if what == 'huge':
            conn.sendall(struct.pack('>I', 0x7fffffff) + b'c')
            return True
        if what is not None:
            conn.sendall(b''.join(what))
            return True
        if self.proto & NOREPLY.get(code, 0):
            return True
        conn.sendall(packet('c'))
        return True
