"""A scripted SMTP/LMTP server for smtpc's tests, and a handle on the test
driver (smtpc_drive).

FakeServer listens on a free loopback port (or a UNIX socket) and plays one
script per accepted connection, in order. A script is a list of steps:

  ('send', TEXT)        send TEXT, its lines ended with CRLF
  ('expect', LINE)      read one line; it must be LINE
  ('expect_re', RE)     read one line; it must match RE
  ('data',)             read content up to CRLF.CRLF, kept in .messages
  ('data_part', N)      read N octets of content, then close at once
  ('starttls', CERT, KEY)  the TLS handshake, server side
  ('starttls_abort', CERT, KEY)  a handshake the client must abort (the
                        script's last step)
  ('recv',)             read what comes (a ClientHello) and drop it
  ('hang',)             answer nothing more: read until the client closes
  ('close',)            close the connection now
  ('eof',)              the client must close (QUIT may come first)

What went wrong (a line that differs, a time-out) is collected in .errors;
each connection's received lines in .transcripts.
"""

import os
import re
import socket
import ssl
import subprocess
import threading

STEP_TIMEOUT = 20     # seconds a step waits for the client


class ScriptError(Exception):
    pass


class _Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b''

    def recv(self):
        try:
            b = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            b = b''
        if not b:
            raise ScriptError('client closed')
        self.buf += b

    def line(self):
        while b'\r\n' not in self.buf:
            self.recv()
        line, _, self.buf = self.buf.partition(b'\r\n')
        return line.decode('utf-8', 'replace')

    def until(self, end):
        while end not in self.buf:
            self.recv()
        data, _, self.buf = self.buf.partition(end)
        return data

    def octets(self, n):
        while len(self.buf) < n:
            self.recv()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def send(self, text):
        lines = text.split('\n')
        self.sock.sendall(''.join(l + '\r\n' for l in lines).encode())


class FakeServer:
    def __init__(self, scripts, unix_path=None):
        self.scripts = list(scripts)
        self.errors = []
        self.transcripts = []
        self.messages = []
        self.done = threading.Event()
        self.closed = []          # connection numbers the client ended
        self.lock = threading.Lock()
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(unix_path)
            self.address = unix_path
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(('127.0.0.1', 0))
            self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        self.threads = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self):
        for n, script in enumerate(self.scripts):
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._play, args=(n, s, script),
                                 daemon=True)
            self.threads.append(t)
            t.start()

    def _play(self, n, s, script):
        s.settimeout(STEP_TIMEOUT)
        c = _Conn(s)
        lines = []
        step = None
        with self.lock:
            self.transcripts.append(lines)
        try:
            for step in script:
                self._step(c, step, lines)
        except ScriptError as e:
            self._error(n, '%s (step %r)' % (e, step))
        except socket.timeout:
            self._error(n, 'timed out at step %r' % (step,))
        except OSError as e:
            self._error(n, '%s at step %r' % (e, step))
        finally:
            try:
                c.sock.close()
            except OSError:
                pass
            with self.lock:
                self.closed.append(n)

    def _error(self, n, text):
        with self.lock:
            self.errors.append('connection %d: %s' % (n, text))

    def _step(self, c, step, lines):
        kind = step[0]
        if kind == 'send':
            c.send(step[1])
        elif kind in ('expect', 'expect_re'):
            line = c.line()
            lines.append(line)
            ok = (line == step[1] if kind == 'expect'
                  else re.fullmatch(step[1], line))
            if not ok:
                raise ScriptError('got %r' % line)
        elif kind == 'data':
            data = c.until(b'\r\n.\r\n')
            with self.lock:
                self.messages.append(data + b'\r\n.\r\n')
            lines.append('<content>')
        elif kind == 'data_part':
            c.octets(step[1])
            c.sock.close()
        elif kind in ('starttls', 'starttls_abort'):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(step[1], step[2])
            if c.buf:
                raise ScriptError('client sent %r before the handshake'
                                  % c.buf)
            try:
                c.sock = ctx.wrap_socket(c.sock, server_side=True)
            except (ssl.SSLError, ConnectionResetError):
                if kind == 'starttls_abort':
                    return
                raise
            if kind == 'starttls_abort':
                raise ScriptError('the handshake succeeded')
        elif kind == 'recv':
            c.recv()
            c.buf = b''
        elif kind in ('hang', 'eof'):
            while True:
                try:
                    line = c.line()
                except ScriptError:
                    return
                lines.append(line)
                if kind == 'eof' and line != 'QUIT':
                    raise ScriptError('got %r, wanted QUIT or EOF' % line)
        elif kind == 'close':
            c.sock.close()
        else:
            raise ScriptError('unknown step')

    def wait(self, timeout=STEP_TIMEOUT * 2):
        """Wait until every connection made has finished its script."""
        for t in list(self.threads):
            t.join(timeout)
            if t.is_alive():
                self._error(-1, 'a connection did not finish')

    def close(self):
        self.sock.close()


def make_pki(directory, name):
    """A test CA (ca.pem) and a certificate for name (DNS:name) it signed:
    (ca_file, cert_file, key_file)."""
    def path(f):
        return os.path.join(directory, f)

    def run(*argv):
        subprocess.run(['openssl'] + list(argv), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
    run('req', '-x509', *ec, '-subj', '/CN=modmta test CA', '-days', '1',
        '-keyout', path('ca.key'), '-out', path('ca.pem'),
        '-addext', 'basicConstraints=critical,CA:TRUE',
        '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
    run('req', *ec, '-subj', '/CN=' + name, '-keyout', path('leaf.key'),
        '-out', path('leaf.csr'))
    with open(path('leaf.ext'), 'w') as f:
        f.write('subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\n' % name)
    run('x509', '-req', '-in', path('leaf.csr'), '-CA', path('ca.pem'),
        '-CAkey', path('ca.key'), '-CAcreateserial', '-days', '1',
        '-extfile', path('leaf.ext'), '-out', path('leaf.pem'))
    return path('ca.pem'), path('leaf.pem'), path('leaf.key')


class Drive:
    """The smtpc_drive process: cmd() sends one command and returns its
    answer lines, each split on tabs."""

    def __init__(self, path=None):
        self.proc = subprocess.Popen([path or os.environ['SMTPC_DRIVE']],
                                     stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def cmd(self, line):
        self.proc.stdin.write(line + '\n')
        self.proc.stdin.flush()
        out = []
        while True:
            l = self.proc.stdout.readline()
            if l == '':
                raise AssertionError('smtpc_drive died at %r' % line)
            l = l.rstrip('\n')
            if l == '.':
                return out
            out.append(l.split('\t'))

    def one(self, line):
        out = self.cmd(line)
        if len(out) != 1:
            raise AssertionError('%r answered %r' % (line, out))
        return out[0]

    def close(self):
        self.proc.stdin.close()
        rc = self.proc.wait(60)
        self.proc.stdout.close()
        if rc != 0:
            raise AssertionError('smtpc_drive exited with %d' % rc)
