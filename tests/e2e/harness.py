"""Harness for modmta's end-to-end tests.

Each test gets a temp dir (spool, mail dir, config, daemon log) and a
daemon of its own on free loopback ports. The daemon and every peer that
might resolve a name (swaks) run in a private mount namespace whose
/etc/resolv.conf names only 127.0.0.1 and whose /etc/nsswitch.conf looks
hosts up in files and DNS only, so nothing can query the machine's
resolver (nor mDNS, nor systemd-resolved). The temp dir is removed when
the test passes; when it fails the daemon log is printed and the dir is
kept.

Environment (meson sets it): MODMTA, MODMTACTL, MODULE_DIR; E2E_KEEP=1
keeps every temp dir.
"""

import atexit
import copy
import fcntl
import glob
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import smtplib
import subprocess
import sys
import tempfile
import time
import unittest

MODMTA = os.environ.get('MODMTA', '')
MODMTACTL = os.environ.get('MODMTACTL', '')
MODULE_DIR = os.environ.get('MODULE_DIR', '')

START_TIMEOUT = 20      # seconds for a listener to accept
STOP_TIMEOUT = 10       # seconds between SIGTERM and SIGKILL
WAIT_TIMEOUT = 60       # seconds to wait for mail to arrive
IO_TIMEOUT = 30         # seconds for one client read

QUEUED_RE = re.compile(r'queued as (\S+)')
ENHANCED_RE = re.compile(r'^([245])\.\d{1,3}\.\d{1,3}(\s|$)')


def need_env():
    missing = [n for n in ('MODMTA', 'MODMTACTL', 'MODULE_DIR')
               if not os.environ.get(n)]
    if missing:
        sys.exit('e2e: set %s (meson test does)' % ', '.join(missing))


def _port_range():
    """Ports just below the kernel's ephemeral range: a client socket
    (ours, or another test's) is never given one of them."""
    try:
        with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return max(1024, low - 12000), low


_reserved_ports = {}    # port -> lock file held for the life of the process


@atexit.register
def _release_ports():
    for f in _reserved_ports.values():
        f.close()


def port_bindable(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(('127.0.0.1', port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port():
    """A loopback port that is free and that no other test of this run
    holds: meson runs tests in parallel, and "bind 0, close" can hand two
    of them (or one test twice) the same port. Each port is reserved with
    an flock on a file under the temp dir, kept until this process ends,
    so it is never handed out twice."""
    lockdir = os.path.join(tempfile.gettempdir(),
                           'modmta-e2e-ports-%d' % os.getuid())
    os.makedirs(lockdir, exist_ok=True)
    lo, hi = _port_range()
    rng = random.SystemRandom()
    for _ in range(2000):
        port = rng.randrange(lo, hi)
        if port in _reserved_ports:
            continue
        f = open(os.path.join(lockdir, str(port)), 'a')
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            continue
        if port_bindable(port):
            _reserved_ports[port] = f
            return port
        f.close()
    raise RuntimeError('no free loopback port in %d-%d' % (lo, hi))


def wait_for(pred, timeout=WAIT_TIMEOUT, what='condition', interval=0.05):
    """Poll pred() until it returns a true value; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError('timed out after %ss waiting for %s'
                                 % (timeout, what))
        time.sleep(interval)


def deep_merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def read_text(path):
    """A log file's text ('' when it does not exist yet)."""
    try:
        with open(path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')
    except FileNotFoundError:
        return ''


def loopback_dns_argv(resolv, argv):
    """argv run in a private mount namespace with only loopback DNS:
    resolv as /etc/resolv.conf, and an nsswitch.conf whose hosts line
    is "files dns" (no mdns, no systemd-resolved: nothing that could
    ask past loopback), written beside resolv."""
    nss = resolv + '.nsswitch'
    if not os.path.exists(nss):
        write_nsswitch(nss)
    # (without an /etc/nsswitch.conf, glibc's own order has neither)
    return ['unshare', '-m', '--propagation', 'private', 'sh', '-c',
            'mount --bind "$0" /etc/resolv.conf && '
            '{ [ ! -e /etc/nsswitch.conf ] || '
            'mount --bind "$1" /etc/nsswitch.conf; } && shift && exec "$@"',
            resolv, nss] + list(argv)


def write_nsswitch(path):
    """The machine's nsswitch.conf with its hosts line "files dns"."""
    try:
        with open('/etc/nsswitch.conf') as f:
            lines = [ln for ln in f if not ln.lstrip().startswith('hosts:')]
    except FileNotFoundError:
        lines = []
    if lines and not lines[-1].endswith('\n'):
        lines[-1] += '\n'
    with open(path, 'w') as f:
        f.writelines(lines)
        f.write('hosts: files dns\n')


def write_resolv(path):
    with open(path, 'w') as f:
        f.write('# e2e: DNS may only go to loopback\n'
                'nameserver 127.0.0.1\n'
                'options timeout:1 attempts:1\n')


# ---------------------------------------------------------------- mbox

def split_mbox(data):
    """Messages of an mbox (bytes), each starting with its 'From ' line.
    Body lines starting with 'From ' are quoted ('>From '), so every
    line starting with 'From ' begins a message."""
    msgs = []
    cur = None
    for line in data.splitlines(keepends=True):
        if line.startswith(b'From '):
            if cur is not None:
                msgs.append(b''.join(cur))
            cur = [line]
        elif cur is not None:
            cur.append(line)
        else:
            raise AssertionError('mbox does not start with a From line: %r'
                                 % line[:80])
    if cur is not None:
        msgs.append(b''.join(cur))
    return msgs


def read_locked(path):
    """Read a mailbox under a shared fcntl lock (as mail readers do), so a
    delivery in progress is never seen half written."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.lockf(fd, fcntl.LOCK_SH)
        chunks = []
        while True:
            b = os.read(fd, 1 << 16)
            if not b:
                break
            chunks.append(b)
        return b''.join(chunks)
    finally:
        os.close(fd)


def headers_of(msg):
    """(from_line, [(name, value)], body) of one stored message (bytes).
    Header values are unfolded, str."""
    from_line, _, rest = msg.partition(b'\n')
    head, sep, body = rest.partition(b'\n\n')
    if not sep:
        head, body = rest, b''
    hdrs = []
    for line in head.decode('utf-8', 'replace').split('\n'):
        if line[:1] in (' ', '\t') and hdrs:
            name, val = hdrs[-1]
            hdrs[-1] = (name, val + ' ' + line.strip())
        elif ':' in line:
            name, val = line.split(':', 1)
            hdrs.append((name, val.strip()))
    return from_line.decode('utf-8', 'replace'), hdrs, body


def header(msg, name):
    """All values of header `name` (case-insensitive) in a stored message."""
    _, hdrs, _ = headers_of(msg)
    return [v for n, v in hdrs if n.lower() == name.lower()]


def make_message(msgid, subject='e2e', body='hello\r\n', sender='a@localhost',
                 to='bob@localhost'):
    """An RFC 5322 message as bytes with CRLF line ends."""
    if not body.endswith('\r\n'):
        body += '\r\n'
    text = ('From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n'
            'Message-ID: <%s>\r\nDate: Mon, 24 Nov 2025 12:00:00 +0000\r\n'
            '\r\n%s' % (sender, to, subject, msgid, body))
    return text.encode('utf-8')


# ---------------------------------------------------------------- clients

class Raw:
    """A raw SMTP client over a socket: exact bytes out, replies parsed.
    Every one still open is closed at the end of the test."""

    opened = []

    def __init__(self, port, timeout=IO_TIMEOUT, tls_context=None,
                 host='127.0.0.1'):
        self.buf = b''
        self.sock = socket.create_connection((host, port), timeout=timeout)
        Raw.opened.append(self)
        if tls_context is not None:
            self.sock = tls_context.wrap_socket(self.sock,
                                                server_hostname='localhost')

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self):
        while b'\n' not in self.buf:
            try:
                b = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                b = b''
            if not b:
                return None
            self.buf += b
        line, _, self.buf = self.buf.partition(b'\n')
        return line.rstrip(b'\r').decode('utf-8', 'replace')

    def reply(self):
        """(code, [text lines]) of the next reply, or None at EOF."""
        lines = []
        while True:
            line = self._line()
            if line is None:
                if lines:
                    raise AssertionError('EOF inside a reply: %r' % lines)
                return None
            if len(line) < 3 or not line[:3].isdigit():
                raise AssertionError('malformed reply line %r' % line)
            lines.append(line[4:])
            if len(line) == 3 or line[3] == ' ':
                return int(line[:3]), lines
            if line[3] != '-':
                raise AssertionError('malformed reply line %r' % line)

    def cmd(self, line):
        self.send(line + '\r\n')
        return self.reply()

    def eof(self):
        """True if the server closed the connection (no more data)."""
        r = self.reply()
        return r is None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    @classmethod
    def close_all(cls):
        while cls.opened:
            cls.opened.pop().close()


def smtp(port, **kw):
    kw.setdefault('timeout', IO_TIMEOUT)
    return smtplib.SMTP('127.0.0.1', port, local_hostname='client.test', **kw)


def no_verify_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def send_mail(s, sender, rcpts, msg, mail_options=()):
    """One transaction on an smtplib connection; returns the queue ID.
    Fails unless every step is accepted."""
    s.ehlo_or_helo_if_needed()
    code, text = s.mail(sender, list(mail_options))
    if code != 250:
        raise AssertionError('MAIL: %d %r' % (code, text))
    for r in rcpts:
        code, text = s.rcpt(r)
        if code != 250:
            raise AssertionError('RCPT %s: %d %r' % (r, code, text))
    code, text = s.data(msg)
    if code != 250:
        raise AssertionError('DATA: %d %r' % (code, text))
    m = QUEUED_RE.search(text.decode('utf-8', 'replace'))
    if not m:
        raise AssertionError('no "queued as ID" in %r' % text)
    return m.group(1)


def make_cert(directory):
    """A self-signed certificate for localhost, made now."""
    cert = os.path.join(directory, 'cert.pem')
    key = os.path.join(directory, 'key.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048',
                    '-nodes', '-subj', '/CN=localhost', '-days', '1',
                    '-keyout', key, '-out', cert],
                   check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return cert, key


def _openssl(*args):
    subprocess.run(['openssl'] + list(args), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_ca(directory):
    """A test certificate authority made now: (ca_cert, ca_key)."""
    cert = os.path.join(directory, 'ca.pem')
    key = os.path.join(directory, 'ca.key')
    _openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes',
             '-subj', '/CN=modmta e2e test CA', '-days', '2',
             '-addext', 'basicConstraints=critical,CA:TRUE',
             '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
             '-keyout', key, '-out', cert)
    return cert, key


def make_signed_cert(directory, ca, names, stem='server'):
    """A server certificate signed by ca (make_ca's pair) whose subject
    alternative names are names (DNS names, or IP addresses given as
    'IP:a.b.c.d'): (cert, key)."""
    cert = os.path.join(directory, stem + '.pem')
    key = os.path.join(directory, stem + '.key')
    csr = os.path.join(directory, stem + '.csr')
    ext = os.path.join(directory, stem + '.ext')
    san = ','.join(n if n.startswith('IP:') else 'DNS:' + n for n in names)
    with open(ext, 'w') as f:
        f.write('subjectAltName=%s\nextendedKeyUsage=serverAuth\n' % san)
    _openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes',
             '-subj', '/CN=' + names[0].replace('IP:', ''),
             '-keyout', key, '-out', csr)
    _openssl('x509', '-req', '-in', csr, '-CA', ca[0], '-CAkey', ca[1],
             '-CAcreateserial', '-days', '1', '-extfile', ext, '-out', cert)
    return cert, key


# ---------------------------------------------------------------- daemon

class StartError(Exception):
    pass


class Daemon:
    """One modmta in a temp dir. listeners: [{'name', 'tls', ...}] without
    addresses (ports are picked at start; 'host' names another loopback
    address than 127.0.0.1). overrides: merged into the config."""

    def __init__(self, directory, listeners=None, overrides=None):
        self.dir = directory
        self.spool = os.path.join(directory, 'spool')
        self.maildir = os.path.join(directory, 'mail')
        self.conf = os.path.join(directory, 'modmta.json')
        self.logpath = os.path.join(directory, 'modmta.log')
        self.resolv = os.path.join(directory, 'resolv.conf')
        os.makedirs(self.maildir, exist_ok=True)
        write_resolv(self.resolv)
        self.listeners = listeners or [{'name': 'smtp', 'tls': 'none'}]
        self.overrides = overrides or {}
        self.ports = {}
        self.proc = None
        self.env = {}           # added to the daemon's environment

    # -- config
    def config(self):
        listen = []
        for spec in self.listeners:
            entry = {'protocol': 'smtp'}
            entry.update(spec)
            entry.pop('host', None)
            entry['address'] = '%s:%d' % (spec.get('host', '127.0.0.1'),
                                          self.ports[spec['name']])
            listen.append(entry)
        cfg = {
            'hostname': 'mx.e2e.test',
            'spool': self.spool,
            'module_path': [MODULE_DIR],
            'local_domains': ['localhost'],
            'log': {'level': 'info'},
            'limits': {'command_timeout': 60, 'data_timeout': 60},
            'listen': listen,
            'modules': [{'module': 'store_mbox', 'directory': self.maildir,
                         'users': 'any'}],
        }
        if os.geteuid() == 0:
            cfg['run_as_root'] = True
        return deep_merge(cfg, self.overrides)

    def write_config(self, cfg=None):
        text = cfg if isinstance(cfg, str) else json.dumps(
            cfg if cfg is not None else self.config(), indent=2)
        tmp = self.conf + '.tmp'
        with open(tmp, 'w') as f:
            f.write(text)
        os.rename(tmp, self.conf)

    # -- life cycle
    def start(self, keep_ports=False):
        """Start and wait until every listener accepts. New ports are
        picked (and the start retried) when a port turns out taken."""
        for attempt in range(6):
            if not keep_ports or not self.ports or attempt > 0:
                self.ports = {l['name']: free_port() for l in self.listeners}
            self.write_config()
            try:
                self._spawn_and_wait()
                return self
            except StartError as e:
                if 'in use' not in str(e).lower() or attempt == 5:
                    raise AssertionError('modmta did not start: %s\n%s'
                                         % (e, self.log_text()))

    def _spawn_and_wait(self):
        log = open(self.logpath, 'ab')
        log.write(b'=== e2e: starting modmta -c %s\n' % self.conf.encode())
        log.flush()
        argv = loopback_dns_argv(self.resolv, [MODMTA, '-c', self.conf])
        env = dict(os.environ, **self.env) if self.env else None
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log, env=env)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        pending = list(self.listeners)
        while pending:
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                raise StartError('exited with %d: %s'
                                 % (rc, self.log_tail()))
            spec = pending[0]
            if self._probe(spec):
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                self.kill()
                raise StartError('listener %s not accepting after %ss'
                                 % (spec['name'], START_TIMEOUT))
            time.sleep(0.05)

    def _probe(self, spec):
        """True once the listener answers with modmta's greeting (a bare
        accept could come from whoever else holds the port)."""
        tls = no_verify_context() if spec.get('tls') == 'implicit' else None
        try:
            c = Raw(self.ports[spec['name']], timeout=5, tls_context=tls,
                    host=spec.get('host', '127.0.0.1'))
        except (OSError, ssl.SSLError):
            return False
        try:
            r = c.reply()
            if r is not None and r[0] == 220:
                c.send('QUIT\r\n')
                c.reply()
                return True
            return False
        except (OSError, AssertionError):
            return False
        finally:
            c.close()

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self):
        self.signal(signal.SIGHUP)

    def stop(self):
        """SIGTERM, wait; SIGKILL after STOP_TIMEOUT. Returns exit code."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError('modmta ignored SIGTERM for %ss'
                                     % STOP_TIMEOUT)
        return proc.returncode

    def kill(self):
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    # -- logs, control
    def log_text(self):
        return read_text(self.logpath)

    def log_tail(self, n=20):
        return '\n'.join(self.log_text().splitlines()[-n:])

    def ctl(self, *args, timeout=60):
        argv = [MODMTACTL, '-c', self.conf] + list(args)
        return subprocess.run(loopback_dns_argv(self.resolv, argv),
                              stdin=subprocess.DEVNULL,
                              capture_output=True, text=True,
                              timeout=timeout)

    def port(self, name='smtp'):
        return self.ports[name]

    # -- mail
    def mailbox(self, user):
        return os.path.join(self.maildir, user)

    def messages(self, user):
        data = read_locked(self.mailbox(user))
        return [] if data is None else split_mbox(data)

    def wait_messages(self, user, n, timeout=WAIT_TIMEOUT):
        """Wait until user's mailbox holds at least n messages; return
        them all."""
        return wait_for(lambda: (lambda m: m if len(m) >= n else None)(
            self.messages(user)), timeout,
            '%d message(s) in mailbox %s' % (n, user), interval=0.1)

    def queue_ids(self):
        """IDs of committed messages (<spool>/queue/X/ID.msg)."""
        return {os.path.basename(p)[:-4]
                for p in glob.glob(os.path.join(self.spool, 'queue', '*',
                                                '*.msg'))}

    def wait_queue_empty(self, timeout=WAIT_TIMEOUT):
        wait_for(lambda: not self.queue_ids(), timeout,
                 'an empty queue (left: %s)' % ' '.join(
                     sorted(self.queue_ids())), interval=0.1)


def fault_env(rules):
    """The environment that preloads tests/e2e/faultinject.c into a
    daemon with these rules (see that file); FAULTINJECT names it."""
    asan = os.environ.get('ASAN_OPTIONS')
    return {'LD_PRELOAD': os.environ['FAULTINJECT'],
            'MODMTA_FAULTS': ';'.join(rules),
            # the shim is not built with ASan: let an ASan daemon load it
            'ASAN_OPTIONS': (asan + ':' if asan else '')
            + 'verify_asan_link_order=0'}


def swaks(daemon, *args, timeout=60):
    """swaks against the daemon's first listener, in the loopback-DNS
    namespace, with no name to look up."""
    argv = ['swaks', '--server', '127.0.0.1:%d' % daemon.port(),
            '--helo', 'client.test', '--local-interface', '127.0.0.1',
            '--timeout', '30'] + list(args)
    return subprocess.run(loopback_dns_argv(daemon.resolv, argv),
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def passwd_entry(user, password):
    """The passdb value `modmtactl passwd USER` makes of password (its
    line without "USER:")."""
    r = subprocess.run([MODMTACTL, 'passwd', user], input=password + '\n',
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError('modmtactl passwd: %s' % r.stderr)
    return r.stdout.strip().split(':', 1)[1]


# ---------------------------------------------------------------- tests

class TestCase(unittest.TestCase):
    """Gives each test self.tmp and daemon(); cleans up, or on failure
    prints the daemon logs and keeps the dir."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='modmta-e2e-')
        self._daemons = []
        self.peer_logs = []     # other peers' log files, shown on failure

    def daemon(self, listeners=None, start=True, **overrides):
        d = Daemon(os.path.join(self.tmp, 'd%d' % len(self._daemons)),
                   listeners, overrides)
        self._daemons.append(d)
        if start:
            d.start()
        return d

    def _failed(self):
        outcome = getattr(self, '_outcome', None)
        if outcome is None:
            return True
        if hasattr(outcome, 'success') and not outcome.success:
            return True
        result = getattr(outcome, 'result', None)
        if result is not None:
            for test, _ in list(result.failures) + list(result.errors):
                if test is self:
                    return True
        return False

    def tearDown(self):
        Raw.close_all()
        stop_errors = []
        for d in self._daemons:
            try:
                rc = d.stop()
            except AssertionError as e:
                stop_errors.append(str(e))
                continue
            # non-zero: a crash, or a sanitizer's report at exit
            if rc:
                stop_errors.append('modmta exited with %d on SIGTERM' % rc)
        if os.environ.get('E2E_KEEP'):
            sys.stderr.write('e2e: kept %s (E2E_KEEP)\n' % self.tmp)
        elif self._failed() or stop_errors:
            for d in self._daemons:
                sys.stderr.write('\n----- daemon log %s -----\n%s\n'
                                 % (d.logpath, d.log_text()))
            for path in self.peer_logs:
                sys.stderr.write('\n----- peer log %s -----\n%s\n'
                                 % (path, read_text(path)))
            sys.stderr.write('e2e: kept %s\n' % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if stop_errors:
            self.fail('; '.join(stop_errors))

    def rcpt_reply(self, d, rcpt):
        """The reply to RCPT TO:<rcpt> (after EHLO and MAIL) from d."""
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd('EHLO client.test'), 250)
        self.assertReply(c.cmd('MAIL FROM:<sender@localhost>'), 250)
        r = c.cmd('RCPT TO:<%s>' % rcpt)
        c.cmd('QUIT')
        c.close()
        return r

    # -- assertions
    def assertReply(self, r, code, enhanced=None, msg=None):
        self.assertIsNotNone(r, msg or 'connection closed, expected %d'
                             % code)
        self.assertEqual(r[0], code, msg or 'reply %r' % (r,))
        if enhanced is not None:
            self.assertTrue(r[1][0].startswith(enhanced + ' ')
                            or r[1][0] == enhanced,
                            msg or 'expected %d %s, got %r'
                            % (code, enhanced, r))

    def assertClosed(self, c, msg=None):
        r = c.reply()
        self.assertIsNone(r, msg or 'expected the server to close, got %r'
                          % (r,))


def main():
    need_env()
    unittest.main(verbosity=2)
