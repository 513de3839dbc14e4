"""Real milters from Debian for tests and benchmarks: opendkim (signing
and verifying with a key of the test's own, no DNS: TestPublicKeys) and
opendmarc, each on a free loopback port, in the foreground, in a private
mount namespace whose resolver is loopback only (harness.py), stopped
with their process group.

    dk = OpenDKIM(directory, mode='sv', resolv=daemon.resolv).start()
    ... {'socket': dk.socket_spec()} in the milter module's config ...
    dk.stop()
"""

import os
import re
import signal
import socket
import subprocess
import threading
import time

import harness

START_TIMEOUT = 20


class RealMilter:
    name = None

    def __init__(self, directory, resolv):
        self.dir = directory
        self.resolv = resolv
        self.port = None
        self.proc = None
        self.log = os.path.join(directory, '%s.log' % self.name)
        os.makedirs(directory, exist_ok=True)

    def socket_spec(self):
        return 'inet:127.0.0.1:%d' % self.port

    def argv(self):
        raise NotImplementedError

    def write_config(self):
        raise NotImplementedError

    def start(self):
        for _ in range(5):
            self.port = harness.free_port()
            self.write_config()
            with open(self.log, 'ab') as log:
                self.proc = subprocess.Popen(
                    harness.loopback_dns_argv(self.resolv, self.argv()),
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    start_new_session=True)
            if self._wait():
                return self
            self.stop()
        raise AssertionError('%s did not start:\n%s'
                             % (self.name, harness.read_text(self.log)))

    def _wait(self):
        end = time.time() + START_TIMEOUT
        while time.time() < end:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(('127.0.0.1', self.port), 1).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)


def dkim_key(directory, domain='example.org', selector='test'):
    """A key pair made by opendkim-genkey; returns (private key path,
    the TestPublicKeys line of its public key)."""
    subprocess.run(['opendkim-genkey', '-D', directory, '-d', domain,
                    '-s', selector], check=True, capture_output=True)
    with open(os.path.join(directory, selector + '.txt')) as f:
        record = ''.join(re.findall(r'"([^"]*)"', f.read()))
    return (os.path.join(directory, selector + '.private'),
            '%s._domainkey.%s %s\n' % (selector, domain, record))


class OpenDKIM(RealMilter):
    """mode 'sv': signs mail from 127.0.0.1 (InternalHosts) for domain;
    'v': verifies only. key: (private, public line) shared by a signer
    and a verifier."""
    name = 'opendkim'

    def __init__(self, directory, resolv, mode='sv', key=None,
                 domain='example.org', canon='simple/simple'):
        super().__init__(directory, resolv)
        self.mode = mode
        self.domain = domain
        self.canon = canon
        self.key = key or dkim_key(directory, domain)
        self.conf = os.path.join(directory, 'opendkim.conf')

    def write_config(self):
        keys = os.path.join(self.dir, 'testkeys')
        with open(keys, 'w') as f:
            f.write(self.key[1])
        with open(self.conf, 'w') as f:
            f.write('Syslog no\nMode %s\nDomain %s\nSelector test\n'
                    'KeyFile %s\nSocket inet:%d@127.0.0.1\n'
                    'InternalHosts %s\nRequireSafeKeys no\n'
                    'TestPublicKeys %s\nCanonicalization %s\n'
                    'AuthservID mx.e2e.test\n'
                    % (self.mode, self.domain, self.key[0], self.port,
                       # a verifier checks mail from loopback too
                       '127.0.0.1' if 's' in self.mode else '192.0.2.1',
                       keys, self.canon))

    def argv(self):
        return ['opendkim', '-f', '-x', self.conf]


class OpenDMARC(RealMilter):
    """opendmarc checking every client (no IgnoreHosts entry matches
    loopback), rejecting messages without exactly one From:
    (RequiredHeaders)."""
    name = 'opendmarc'

    def write_config(self):
        self.conf = os.path.join(self.dir, 'opendmarc.conf')
        ignore = os.path.join(self.dir, 'ignore')
        with open(ignore, 'w') as f:
            f.write('192.0.2.1\n')
        with open(self.conf, 'w') as f:
            f.write('Syslog false\nSocket inet:%d@127.0.0.1\n'
                    'AuthservID mx.e2e.test\nIgnoreHosts %s\n'
                    'RequiredHeaders true\nRejectFailures false\n'
                    'SPFSelfValidate false\nSPFIgnoreResults true\n'
                    'DNSTimeout 1\nFailureReports false\n'
                    'PidFile %s/opendmarc.pid\n'
                    % (self.port, ignore, self.dir))

    def argv(self):
        return ['opendmarc', '-f', '-c', self.conf]


class LibmilterCounter(RealMilter):
    """libmilter_counter.py on Debian's pymilter (python3-milter, the
    system python): a libmilter milter that answers CONTINUE at the end
    of message and numbers the sessions it serves."""
    name = 'libmilter-counter'

    def write_config(self):
        pass

    def argv(self):
        return ['/usr/bin/python3', os.path.join(
            os.path.dirname(os.path.abspath(__file__)),
            'libmilter_counter.py'), str(self.port)]


class CountingProxy:
    """A loopback TCP relay in front of a milter that counts the
    connections the MTA opens through it and the QUIT_NC packets it sends
    (connection reuse tests).

        p = CountingProxy(dk.port).start()
        ... {'socket': p.socket_spec()} ...  p.connections, p.quit_nc
    """

    QUIT_NC = b'\0\0\0\x01K'

    def __init__(self, port):
        self.target = port
        self.connections = 0
        self.quit_nc = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(('127.0.0.1', 0))
        self.port = self.sock.getsockname()[1]

    def socket_spec(self):
        return 'inet:127.0.0.1:%d' % self.port

    def start(self):
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self):
        self.sock.close()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            server = socket.create_connection(('127.0.0.1', self.target))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b, a is client),
                                 daemon=True).start()

    def _pump(self, src, dst, from_mta):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                if from_mta and data.endswith(self.QUIT_NC):
                    self.quit_nc += 1
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
