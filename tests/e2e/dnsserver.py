"""A test DNS server for the e2e tests: dnsmasq (package dnsmasq-base) on
a free loopback port, serving only the records a test gives it.

    dns = DnsServer(directory)
    dns.mx('remote.test', 'mx1.remote.test', 10)
    dns.host('mx1.remote.test', '127.0.0.31')
    dns.null_mx('nullmx.test')
    dns.start()                 # and dns.stop() (addCleanup)
    daemon.overrides['dns'] = dns.config()

Nothing leaves the machine: --no-resolv (no upstream servers),
--no-hosts (no /etc/hosts), --local=/test/ (names under test. that have
no record are answered NXDOMAIN here, never forwarded). Records can be
changed with restart() (the port is kept).
"""

import os
import shutil
import socket
import struct
import subprocess
import time

import harness

DNSMASQ = shutil.which('dnsmasq') or '/usr/sbin/dnsmasq'


def _query(port, name, qtype=15, timeout=1.0):
    """One UDP query to 127.0.0.1:port; the reply's rcode, or None."""
    qid = os.getpid() & 0xffff
    q = struct.pack('>HHHHHH', qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip('.').split('.'):
        q += bytes([len(label)]) + label.encode()
    q += b'\0' + struct.pack('>HH', qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(q, ('127.0.0.1', port))
        data, _ = s.recvfrom(4096)
    except OSError:
        return None
    finally:
        s.close()
    if len(data) < 12 or struct.unpack('>H', data[:2])[0] != qid:
        return None
    return data[3] & 0x0f


class DnsServer:
    """dnsmasq with the records added before start()."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.logpath = os.path.join(directory, 'dnsmasq.log')
        self.records = []
        self.port = None
        self.proc = None

    # -- records (dnsmasq options)
    def mx(self, domain, host, pref):
        self.records.append('--mx-host=%s,%s,%d' % (domain, host, pref))
        return self

    def null_mx(self, domain):
        """RFC 7505: one MX with preference 0 and the root as host."""
        return self.mx(domain, '.', 0)

    def host(self, name, *addrs):
        self.records.append('--host-record=%s,%s' % (name, ','.join(addrs)))
        return self

    def config(self):
        """The daemon's top-level "dns" section pointing at this server."""
        return {'servers': ['127.0.0.1:%d' % self.port], 'timeout': 5}

    # -- life cycle
    def argv(self):
        return [DNSMASQ, '-k', '--conf-file=/dev/null',
                '--port=%d' % self.port, '--listen-address=127.0.0.1',
                '--bind-interfaces', '--no-resolv', '--no-hosts',
                '--local=/test/', '--log-queries', '--log-facility=-',
                '--pid-file='] + _user() + self.records

    def start(self, keep_port=False):
        """Start and wait until it answers; a taken port (dnsmasq needs
        it for UDP and TCP) gives another one."""
        if not os.path.exists(DNSMASQ):
            raise AssertionError('no %s (package dnsmasq-base)' % DNSMASQ)
        for attempt in range(6):
            if not keep_port or self.port is None or attempt > 0:
                self.port = harness.free_port()
            if self._spawn_and_wait():
                return self
        raise AssertionError('dnsmasq did not start:\n' + self.log_text())

    def _spawn_and_wait(self):
        log = open(self.logpath, 'ab')
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + harness.START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                if 'in use' in self.log_text():
                    return False
                raise AssertionError('dnsmasq exited:\n' + self.log_text())
            # any answer (NXDOMAIN included) means it serves
            if _query(self.port, 'ready.probe.test', timeout=0.2) is not None:
                return True
            time.sleep(0.05)
        self.stop()
        raise AssertionError('dnsmasq does not answer:\n' + self.log_text())

    def restart(self):
        """Stop and start again on the same port with the records as
        they are now."""
        self.stop()
        return self.start(keep_port=True)

    def stop(self):
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(harness.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def log_text(self):
        return harness.read_text(self.logpath)


def _user():
    """As root dnsmasq drops to a user of its own, which a machine with
    only dnsmasq-base may lack: nobody is always there."""
    return ['--user=nobody'] if os.geteuid() == 0 else []
