"""The module ABI in the real daemon (docs/sdk.md "ABI stability").

- frozen10, built against the frozen ABI 1.0 headers (sdk/tests/abi10),
  loads into today's daemon and works: its option table, EHLO keyword,
  verb with a connection exchange, session data, map lookup with a
  reply, header and log line. Linked with libmodmta (every reference
  MODMTA_1.0) and without (no versions, as modules built before 1.5).
- onesdk, linked against libmodmta.so.1 like any module, binds to the
  daemon's own SDK: no second copy is mapped, and the map backend it
  registers is the one alias then opens.
- A module calling a private function of libmodmta (privsym) and one
  asking for a newer ABI minor (newminor) are refused, the error naming
  the module and the function, or both versions.
- A hook's unknown verdict gives 451 4.3.0 and a log line.

The test modules are in TEST_MODULE_DIR (core/tests/modules).
"""

import os
import re
import subprocess

import harness
from harness import Raw, header, make_message, send_mail, smtp

TEST_MODULE_DIR = os.environ.get('TEST_MODULE_DIR', '')


def readelf(*args):
    return subprocess.run(['readelf', '--wide'] + list(args),
                          capture_output=True, text=True,
                          check=True).stdout


class Abi(harness.TestCase):

    def setUp(self):
        super().setUp()
        if not TEST_MODULE_DIR:
            self.fail('set TEST_MODULE_DIR (meson test does)')

    def abi_daemon(self, modules, directory=TEST_MODULE_DIR):
        """A started daemon with modules (from directory), then
        store_mbox."""
        d = self.daemon(start=False)
        d.overrides['module_path'] = [harness.MODULE_DIR, directory]
        d.overrides['modules'] = modules + [
            {'module': 'store_mbox', 'directory': d.maildir,
             'users': 'any'}]
        return d.start()

    def check_config(self, module):
        """modmta --check-config on a config loading module: (rc, out)."""
        d = self.daemon(start=False)
        d.ports = {'smtp': harness.free_port()}
        d.overrides['module_path'] = [harness.MODULE_DIR, TEST_MODULE_DIR]
        d.overrides['modules'] = [{'module': module}]
        d.write_config()
        argv = harness.loopback_dns_argv(
            d.resolv, [harness.MODMTA, '--check-config', '-c', d.conf])
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        return r.returncode, r.stdout + r.stderr

    def test_frozen_abi10_module_works(self):
        self.frozen10_session(TEST_MODULE_DIR, '@MODMTA_1.0')

    # linked without libmodmta: no versions, as modules built before 1.5
    def test_unversioned_module_works(self):
        self.frozen10_session(os.path.join(TEST_MODULE_DIR, 'unversioned'),
                              None)

    def frozen10_session(self, directory, version):
        """A session through frozen10 from directory, whose references
        to the SDK carry version (None: none)."""
        so = os.path.join(directory, 'frozen10.so')
        needs = [l for l in readelf('--dyn-syms', so).splitlines()
                 if ' UND ' in l and 'modmta_' in l]
        self.assertTrue(needs)
        for line in needs:
            if version is None:
                self.assertNotIn('@', line)
            else:
                self.assertIn(version, line)

        d = self.abi_daemon([{'module': 'frozen10', 'tag': 't1',
                              'reject': {'blocked': 'no mail for blocked'}}],
                            directory)
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        r = c.cmd('EHLO client.test')
        self.assertReply(r, 250)
        self.assertIn('XFROZEN', r[1])
        self.assertReply(c.cmd('XFROZEN one'), 334)
        r = c.cmd('two')
        self.assertReply(r, 250, '2.0.0')
        self.assertIn('frozen10 one two', r[1][-1])
        self.assertReply(c.cmd('MAIL FROM:<sender@localhost>'), 250)
        r = c.cmd('RCPT TO:<blocked@localhost>')
        self.assertReply(r, 550, '5.7.1')
        self.assertIn('no mail for blocked', r[1][-1])
        self.assertReply(c.cmd('RCPT TO:<user@localhost>'), 250)
        self.assertReply(c.cmd('DATA'), 354)
        c.send(make_message('frozen10@e2e.test'))
        self.assertReply(c.cmd('.'), 250)
        c.cmd('QUIT')
        c.close()

        d.wait_messages('user', 1)
        self.assertEqual(header(d.messages('user')[0], 'X-Frozen10'),
                         ['tag=t1 helo=client.test rcpts=1'])
        self.assertIn('frozen10 tagged from=<sender@localhost>',
                      d.log_text())

    def test_one_sdk_in_the_daemon(self):
        so = os.path.join(TEST_MODULE_DIR, 'onesdk.so')
        self.assertRegex(readelf('--dynamic', so),
                         r'\(NEEDED\).*\[libmodmta\.so\.1\]')
        # onesdk's create() refuses to run bound to a second copy
        d = self.abi_daemon([
            {'module': 'onesdk'},
            {'module': 'alias', 'map': 'onesdk:ping=pong@localhost'}])
        self.assertIn('onesdk: modmta_map_register in the program',
                      d.log_text())
        # alias (the daemon's SDK) opens the backend onesdk registered
        with smtp(d.port()) as s:
            send_mail(s, 'sender@localhost', ['ping@localhost'],
                      make_message('onesdk@e2e.test'))
        d.wait_messages('pong', 1)

    def test_private_function_refused(self):
        rc, out = self.check_config('privsym')
        self.assertNotEqual(rc, 0, out)
        self.assertIn('module "privsym" cannot be loaded', out)
        self.assertIn('undefined symbol: modmta_ctx_enter', out)
        self.assertIn('not in the ABI', out)

    def test_newer_minor_refused(self):
        rc, out = self.check_config('newminor')
        self.assertNotEqual(rc, 0, out)
        m = re.search(r'module "newminor" has ABI (\d+)\.(\d+), this modmta '
                      r'has ABI (\d+)\.(\d+)', out)
        self.assertIsNotNone(m, out)
        major, minor, our_major, our_minor = map(int, m.groups())
        self.assertEqual((major, minor), (our_major, our_minor + 1), out)

    def test_unknown_verdict_451(self):
        d = self.abi_daemon([{'module': 'script', 'name': 'weird',
                               'rcpt': {'odd@localhost': 'bogus'}}])
        r = self.rcpt_reply(d, 'odd@localhost')
        self.assertReply(r, 451, '4.3.0')
        harness.wait_for(lambda: 'unknown verdict=42' in d.log_text(),
                         what='the unknown verdict logged')
        line = [l for l in d.log_text().splitlines()
                if 'unknown verdict=42' in l][0]
        self.assertIn('weird', line)


if __name__ == '__main__':
    harness.main()
