"""Files an administrator names that are not regular files (issue 14,
point 6): a FIFO nobody writes to, /dev/zero, a procfs file. Every such file is opened
without blocking and refused with its path named: `--check-config` and
`modmtactl` end with an error, and a live map or include file replaced
by one costs the client a reply, never a hung session.

A hang would show as a subprocess or SMTP timeout (generous: this runs
under ASan on a slow machine), never as a measured duration."""

import json
import os
import subprocess

import harness
from harness import make_message, send_mail, smtp, wait_for

TOOL_TIMEOUT = 120   # seconds a tool may take before we call it hung


class HostileFiles(harness.TestCase):

    def fifo(self, name):
        path = os.path.join(self.tmp, name)
        os.mkfifo(path)
        return path

    def run_tool(self, argv):
        d = self.probe
        return subprocess.run(harness.loopback_dns_argv(d.resolv, argv),
                              stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=TOOL_TIMEOUT)

    def check_config(self, cfg, path=None):
        """modmta --check-config on cfg (written to path unless it is
        given): (returncode, stdout + stderr)."""
        if path is None:
            path = os.path.join(self.tmp, 'check.json')
            with open(path, 'w') as f:
                f.write(json.dumps(cfg))
        r = self.run_tool([harness.MODMTA, '--check-config', '-c', path])
        return r.returncode, r.stdout + r.stderr

    def config(self, modules=None, **extra):
        self.probe = self.daemon(start=False)
        self.probe.ports = {'smtp': harness.free_port()}
        cfg = self.probe.config()
        if modules is not None:
            cfg['modules'] = modules + cfg['modules']
        cfg.update(extra)
        return cfg

    def assertRefused(self, cfg, path, why='not a regular file'):
        rc, out = self.check_config(cfg)
        self.assertNotEqual(rc, 0, out)
        self.assertIn('%s: %s' % (path, why), out)

    # -- at startup: --check-config and modmtactl

    def test_check_config_fifo_and_dev_zero_maps(self):
        fifo = self.fifo('map.fifo')
        for spec in ('file:' + fifo, 'file:/dev/zero', 'cidr:' + fifo,
                     'file:/proc/self/pagemap'):
            with self.subTest(spec=spec):
                self.assertRefused(self.config([
                    {'module': 'virtual', 'map': spec,
                     'qualify_domain': 'localhost'}]), spec.split(':', 1)[1])
        self.assertRefused(self.config([
            {'module': 'alias', 'map': 'aliases:' + fifo}]), fifo)
        self.assertRefused(self.config([
            {'module': 'relay_access', 'access': 'file:' + fifo}]), fifo)
        self.assertRefused(self.config([
            {'module': 'auth_sasl', 'passdb': 'file:/dev/zero'}]),
            '/dev/zero')

    def test_check_config_fifo_config_file(self):
        fifo = self.fifo('modmta.json')
        self.config()
        rc, out = self.check_config(None, path=fifo)
        self.assertNotEqual(rc, 0, out)
        self.assertIn('%s: not a regular file' % fifo, out)

    def test_check_config_fifo_certificate(self):
        cert, key = harness.make_cert(self.tmp)
        fifo = self.fifo('cert.fifo')
        for c, k, bad in ((fifo, key, fifo), (cert, '/dev/zero', '/dev/zero')):
            with self.subTest(cert=c, key=k):
                cfg = self.config(tls={'cert': c, 'key': k})
                self.assertRefused(cfg, bad)

    def test_modmtactl_aliases_check(self):
        fifo = self.fifo('aliases.fifo')
        self.config()
        r = self.run_tool([harness.MODMTACTL, 'aliases', 'check', fifo])
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn('%s: not a regular file' % fifo, r.stderr)
        # procfs: "regular", size 0, and pagemap never ends
        r = self.run_tool([harness.MODMTACTL, 'aliases', 'check',
                           '/proc/self/pagemap'])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn('/proc/self/pagemap: not a regular file', r.stderr)
        # the aliases file found through a config file that is a FIFO:
        # that error alone, with the error status (not the usage one)
        r = self.run_tool([harness.MODMTACTL, '-c', fifo, 'aliases',
                           'check'])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn('%s: not a regular file' % fifo, r.stderr)
        self.assertNotIn('no alias module', r.stderr)
        # a config that is not JSON: where the parser stopped
        bad = os.path.join(self.tmp, 'bad.json')
        with open(bad, 'w') as f:
            f.write('{\n  "modules": [\n}\n')
        r = self.run_tool([harness.MODMTACTL, '-c', bad, 'aliases', 'check'])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stderr, '%s:3:[0-9]+: ' % bad)
        self.assertNotIn('no alias module', r.stderr)

    # -- at run time

    def start_aliases(self, aliases, members):
        self.aliases = os.path.join(self.tmp, 'aliases')
        self.members = os.path.join(self.tmp, 'members')
        with open(self.aliases, 'w') as f:
            f.write(aliases % {'members': self.members})
        with open(self.members, 'w') as f:
            f.write(members)
        d = self.daemon(start=False, modules=[
            {'module': 'alias', 'map': 'aliases:' + self.aliases},
            {'module': 'store_mbox', 'users': 'any'}])
        d.overrides['modules'][1]['directory'] = d.maildir
        return d.start()

    def replace_by_fifo(self, path):
        tmp = path + '.fifo'
        os.mkfifo(tmp)
        os.rename(tmp, path)

    def test_live_map_replaced_by_fifo(self):
        """The map keeps its last table (the reload rule), says why, and
        every session gets its reply."""
        d = self.start_aliases('team: ann, ben\n', '')
        self.assertReply(self.rcpt_reply(d, 'team@localhost'), 250)
        self.replace_by_fifo(self.aliases)
        # a map looks at its file when it is used: keep using it
        wait_for(lambda: self.rcpt_reply(d, 'team@localhost')[0] == 250
                 and '%s: not a regular file' % self.aliases
                 in d.log_text(), what='the FIFO to be refused and logged')
        self.assertIn('keeping the previous table', d.log_text())
        with smtp(d.port()) as s:
            send_mail(s, 'a@localhost', ['team@localhost'],
                      make_message('fifo-map@e2e'))
        d.wait_messages('ann', 1)
        d.wait_messages('ben', 1)

    def test_live_include_replaced_by_fifo(self):
        """An include file read at each expansion: a FIFO or /dev/zero in
        its place is a temporary failure (4xx) naming the file."""
        d = self.start_aliases('list: :include:%(members)s\n', 'ann, ben\n')
        self.assertReply(self.rcpt_reply(d, 'list@localhost'), 250)
        self.replace_by_fifo(self.members)
        r = self.rcpt_reply(d, 'list@localhost')
        self.assertIsNotNone(r, 'connection closed')
        self.assertEqual(r[0] // 100, 4, r)
        wait_for(lambda: 'include=%s: not a regular file' % self.members
                 in d.log_text(), what='the refused include in the log')
        os.unlink(self.members)
        os.symlink('/dev/zero', self.members)
        r = self.rcpt_reply(d, 'list@localhost')
        self.assertIsNotNone(r, 'connection closed')
        self.assertEqual(r[0] // 100, 4, r)
        # a regular file again: served again
        os.unlink(self.members)
        with open(self.members, 'w') as f:
            f.write('ann\n')
        self.assertReply(self.rcpt_reply(d, 'list@localhost'), 250)

    def test_reload_with_fifo_config(self):
        """A reload whose config file is now a FIFO fails, logged with the
        path; the running generation serves on."""
        d = self.daemon()
        before = len(d.log_text())
        self.replace_by_fifo(d.conf)
        d.reload()
        wait_for(lambda: '%s: not a regular file' % d.conf
                 in d.log_text()[before:], what='the refused config')
        self.assertTrue(d.running())
        with smtp(d.port()) as s:
            send_mail(s, 'a@localhost', ['bob@localhost'],
                      make_message('fifo-conf@e2e'))
        d.wait_messages('bob', 1)


if __name__ == '__main__':
    harness.main()
