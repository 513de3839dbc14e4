"""The systemd unit (etc/modmta.service.in, installed by etc/meson.build):

- it is installed, and its ExecStart and ExecReload name exactly where
  modmta and modmtactl are installed, with the configuration modmtactl
  reads by default;
- `systemd-analyze verify` accepts it without a word: every directive
  known, the commands executable, the Documentation= pages found by man(1)
  (in a tree laid out as installed);
- `systemd-analyze security --offline=yes` rates its exposure at most
  MAX_EXPOSURE, so a hardening option cannot be dropped unnoticed; the
  score is printed.

Skipped (exit 77, meson's SKIP), saying so, when systemd-analyze is
missing; the exposure check is skipped when it is too old for
--offline. Environment: BUILD_ROOT (meson test sets it).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

BUILD = os.environ.get('BUILD_ROOT', '')
MAX_EXPOSURE = 3.0      # systemd-analyze's scale: 0 (locked) to 10
CONFIG = '/etc/modmta/modmta.json'


def installed():
    with open(os.path.join(BUILD, 'meson-info', 'intro-installed.json')) as f:
        return json.load(f)


def analyze(*args, env=None):
    return subprocess.run(['systemd-analyze'] + list(args),
                          capture_output=True, text=True, timeout=120,
                          env=env)


class Unit(unittest.TestCase):

    def setUp(self):
        self.inst = installed()
        units = {s: d for s, d in self.inst.items()
                 if d.endswith('/modmta.service')}
        self.assertEqual(len(units), 1, 'modmta.service is not installed')
        (self.unit, self.unit_dst), = units.items()
        with open(self.unit) as f:
            self.text = f.read()
        self.by_dst = {d: s for s, d in self.inst.items()}
        self.tmp = tempfile.mkdtemp(prefix='modmta-unit-')

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def installed_as(self, name):
        """The install path of the built executable NAME."""
        dsts = [d for s, d in self.inst.items()
                if os.path.basename(s) == os.path.basename(d) == name and
                os.path.basename(os.path.dirname(d)) in ('bin', 'sbin')]
        self.assertEqual(len(dsts), 1, name)
        return dsts[0]

    def test_commands_are_the_installed_ones(self):
        self.assertRegex(self.text, r'(?m)^ExecStart=%s -c %s$'
                         % (re.escape(self.installed_as('modmta')),
                            re.escape(CONFIG)))
        self.assertRegex(self.text, r'(?m)^ExecReload=\+%s -c %s reload$'
                         % (re.escape(self.installed_as('modmtactl')),
                            re.escape(CONFIG)))
        self.assertIn('/lib/systemd/system/', self.unit_dst)

    def laid_out(self):
        """A copy of the unit whose commands are the built ones, and a
        man tree as installed: what verify checks, without installing."""
        text = self.text
        for name in ('modmta', 'modmtactl'):
            dst = self.installed_as(name)
            text = text.replace('=%s ' % dst, '=%s ' % self.by_dst[dst])
            text = text.replace('=+%s ' % dst, '=+%s ' % self.by_dst[dst])
        unit = os.path.join(self.tmp, 'modmta.service')
        with open(unit, 'w') as f:
            f.write(text)
        man = os.path.join(self.tmp, 'man')
        for src, dst in self.inst.items():
            m = re.search(r'/share/man/(man[1-9])/([^/]+)$', dst)
            if m:
                os.makedirs(os.path.join(man, m.group(1)), exist_ok=True)
                shutil.copy(src, os.path.join(man, m.group(1), m.group(2)))
        # the trailing ':' keeps the system's pages too
        return unit, dict(os.environ, MANPATH=man + ':')

    def test_verify(self):
        unit, env = self.laid_out()
        r = analyze('verify', unit, env=env)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ''))

    def test_verify_fails_on_a_broken_unit(self):
        """The check above can fail: an unknown directive is reported."""
        unit, env = self.laid_out()
        with open(unit, 'a') as f:
            f.write('ProtectSystm=strict\n')
        r = analyze('verify', unit, env=env)
        self.assertIn('ProtectSystm', r.stdout + r.stderr)

    def test_security_exposure(self):
        unit, env = self.laid_out()
        r = analyze('security', '--offline=yes', unit, env=env)
        if r.returncode != 0 and '--offline' in r.stderr:
            self.skipTest('systemd-analyze security has no --offline '
                          '(systemd < 250)')
        m = re.search(r'Overall exposure level for modmta\.service: '
                      r'([0-9.]+)', r.stdout)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        sys.stderr.write('systemd-analyze security: exposure %s\n'
                         % m.group(1))
        self.assertLessEqual(float(m.group(1)), MAX_EXPOSURE, r.stdout)


if __name__ == '__main__':
    if not BUILD:
        sys.exit('test_unit: set BUILD_ROOT (meson test does)')
    if shutil.which('systemd-analyze') is None:
        print('SKIP: systemd-analyze is not installed (package systemd)')
        sys.exit(77)
    unittest.main(verbosity=2)
