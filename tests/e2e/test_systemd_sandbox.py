"""The systemd unit's sandbox (etc/modmta.service.in) fits modmta, applied
to the real daemon as systemd applies it to a root service:

- CapabilityBoundingSet and NoNewPrivileges, with setpriv(1);
- MemoryDenyWriteExecute, with prctl(PR_SET_MDWE) (Linux 6.3 and later;
  left out, saying so, on an older kernel);
- ProtectSystem=strict with ReadWritePaths: the whole file system
  read-only in the daemon's mount namespace but the test's spool and
  mail directory, which stand for /var/spool/modmta and /var/mail.

So confined, modmta starts as root, binds a port below 1024, gives the
spool (created by root, as `mkdir` would) to "user", becomes that user
and delivers mail, and ends with no capability left; without any one
capability of the set it cannot start; and the read-only file system is
in effect (without the writable spool it cannot start). Needs root and
setpriv (util-linux); skipped otherwise.

MODMTA_UNIT: the unit file (meson test sets it, with the e2e variables).
"""

import ctypes
import os
import pwd
import random
import shlex
import shutil
import stat
import sys
import unittest

import harness
from harness import make_message, send_mail, smtp

UNIT = os.environ.get('MODMTA_UNIT', '')
REAL_MODMTA = harness.MODMTA
PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1
# What the unit may write, and what stands for it in a test's daemon.
WRITABLE = {'/var/spool/modmta': 'spool', '-/var/mail': 'maildir'}


def unit_settings():
    """{key: [values]} of the unit's [Service] section."""
    out = {}
    with open(UNIT) as f:
        for line in f:
            key, eq, value = line.strip().partition('=')
            if eq and not key.startswith('#'):
                out.setdefault(key, []).extend(value.split())
    return out


def cap_mask(caps):
    """The kernel's bit mask of CAP_* names (linux/capability.h)."""
    bits = {'CAP_CHOWN': 0, 'CAP_DAC_OVERRIDE': 1, 'CAP_SETGID': 6,
            'CAP_SETUID': 7, 'CAP_NET_BIND_SERVICE': 10}
    return sum(1 << bits[c] for c in caps)


def mdwe_supported():
    """PR_SET_MDWE works here (tried in a child, which exits)."""
    pid = os.fork()
    if pid == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        ok = libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) == 0
        os._exit(0 if ok else 1)
    return os.waitpid(pid, 0)[1] == 0


def proc_status(pid):
    out = {}
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            key, _, value = line.partition(':')
            out[key] = value.strip()
    return out


def privileged_port():
    """A free loopback port below 1024 (no other test binds one)."""
    ports = list(range(600, 1024))
    random.shuffle(ports)
    for port in ports:
        if harness.port_bindable(port):
            return port
    raise AssertionError('no free loopback port below 1024')


@unittest.skipUnless(os.geteuid() == 0, 'needs root')
@unittest.skipUnless(shutil.which('setpriv'), 'needs setpriv (util-linux)')
class UnitSandbox(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        s = unit_settings()
        cls.caps = s['CapabilityBoundingSet']
        cls.nnp = s.get('NoNewPrivileges') == ['yes']
        cls.mdwe = s.get('MemoryDenyWriteExecute') == ['yes']
        cls.strict = s.get('ProtectSystem') == ['strict']
        cls.writable = s.get('ReadWritePaths', [])
        if cls.mdwe and not mdwe_supported():
            sys.stderr.write('MemoryDenyWriteExecute not applied: no '
                             'PR_SET_MDWE in this kernel\n')
            cls.mdwe = False

    def setUp(self):
        super().setUp()
        # nobody must reach the spool and the mail dir under the temp dir
        os.chmod(self.tmp, 0o755)

    def tearDown(self):
        harness.MODMTA = REAL_MODMTA
        super().tearDown()

    def confine(self, d, caps, writable=True):
        """Make harness start d's modmta as the unit would, with caps.
        The wrapper runs in the daemon's own mount namespace (harness
        starts it under unshare -m)."""
        lines = ['#!/bin/sh', 'set -e']
        if self.strict:
            lines.append('mount -o remount,bind,ro /')
            for path in self.writable if writable else ():
                mine = getattr(d, WRITABLE[path])
                lines.append('mount --bind {0} {0}'.format(shlex.quote(mine)))
                lines.append('mount -o remount,bind,rw {0}'.format(
                    shlex.quote(mine)))
        argv = ['setpriv', '--inh-caps=-all', '--bounding-set=-all' + ''.join(
            ',+' + c[len('CAP_'):].lower() for c in caps)]
        if self.nnp:
            argv.append('--no-new-privs')
        argv += ['--', REAL_MODMTA]
        if self.mdwe:
            argv = [sys.executable, '-c',
                    'import ctypes, os, sys\n'
                    'if ctypes.CDLL(None).prctl(%d, %d, 0, 0, 0) != 0:\n'
                    '    sys.exit("PR_SET_MDWE failed")\n'
                    'os.execvp(sys.argv[1], sys.argv[1:])'
                    % (PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)] + argv
        lines.append('exec %s "$@"' % ' '.join(shlex.quote(a) for a in argv))
        wrapper = os.path.join(d.dir, 'confined-modmta')
        with open(wrapper, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        os.chmod(wrapper, stat.S_IRWXU)
        harness.MODMTA = wrapper

    def start(self, caps=None, writable=True):
        nobody = pwd.getpwnam('nobody')
        d = self.daemon(start=False, user='nobody')
        os.chown(d.maildir, nobody.pw_uid, nobody.pw_gid)
        # made by root, as by a plain mkdir: the daemon gives it away
        os.makedirs(d.spool, mode=0o700)
        self.confine(d, self.caps if caps is None else caps, writable)
        d.ports = {'smtp': privileged_port()}
        d.start(keep_ports=True)
        return d

    def test_settings_emulated(self):
        """The settings this test applies are the unit's."""
        self.assertTrue(self.nnp)
        self.assertTrue(self.strict)
        self.assertEqual(set(self.writable), set(WRITABLE))

    def test_confined_daemon_serves_and_keeps_no_capability(self):
        d = self.start()
        self.assertLess(d.port(), 1024)
        st = proc_status(d.pid)
        nobody = pwd.getpwnam('nobody')
        self.assertEqual(set(st['Uid'].split()), {str(nobody.pw_uid)})
        self.assertEqual(int(st['CapPrm'], 16), 0)
        self.assertEqual(int(st['CapEff'], 16), 0)
        self.assertEqual(int(st['CapBnd'], 16), cap_mask(self.caps))
        self.assertEqual(st['NoNewPrivs'], '1')
        self.assertEqual(os.stat(d.spool).st_uid, nobody.pw_uid)
        with smtp(d.port()) as s:
            send_mail(s, 'a@localhost', ['carol@localhost'],
                      make_message('sandbox@e2e.test'))
        d.wait_messages('carol', 1)
        r = d.ctl('stats')
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_each_capability_is_needed(self):
        # what start-up says without each one
        why = {'CAP_NET_BIND_SERVICE': r'Permission denied',
               'CAP_SETUID': r'cannot become "nobody"',
               'CAP_SETGID': r'cannot become "nobody"',
               'CAP_CHOWN': r'cannot chown'}
        self.assertEqual(set(self.caps), set(why))
        for cap in self.caps:
            with self.subTest(without=cap):
                with self.assertRaises(AssertionError) as e:
                    self.start([c for c in self.caps if c != cap])
                self.assertRegex(str(e.exception), why[cap])

    def test_file_system_is_read_only(self):
        with self.assertRaises(AssertionError) as e:
            self.start(writable=False)
        self.assertRegex(str(e.exception), r'Read-only file system')


if __name__ == '__main__':
    if not UNIT:
        raise SystemExit('set MODMTA_UNIT (meson test does)')
    harness.main()
