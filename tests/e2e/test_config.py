"""modmta --check-config and --print-default-config."""

import json
import os
import subprocess

import harness

SEP = r'[./\[\]"\' ]*'     # whatever joins the parts of a JSON path


class Config(harness.TestCase):

    def run_modmta(self, *args):
        # confined like the daemon: the default host name must not be
        # looked up in the machine's DNS
        resolv = os.path.join(self.tmp, 'resolv.conf')
        harness.write_resolv(resolv)
        argv = harness.loopback_dns_argv(resolv,
                                         [harness.MODMTA] + list(args))
        return subprocess.run(argv, cwd=self.tmp,
                              stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=60)

    def check(self, cfg):
        path = os.path.join(self.tmp, 'check.json')
        with open(path, 'w') as f:
            f.write(cfg if isinstance(cfg, str) else json.dumps(cfg))
        return self.run_modmta('--check-config', '-c', path)

    def good(self):
        d = self.daemon(start=False)
        d.ports = {'smtp': harness.free_port()}
        return d.config()

    def test_good_config_passes(self):
        r = self.check(self.good())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_recipient_delimiter(self):
        for good in ('+', '+-', '-_=~'):
            cfg = self.good()
            cfg['recipient_delimiter'] = good
            r = self.check(cfg)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for bad in ('', 'a', '7', '@', '+.', ' ', '+"', '+' * 9, 3):
            cfg = self.good()
            cfg['recipient_delimiter'] = bad
            r = self.check(cfg)
            out = r.stdout + r.stderr
            self.assertNotEqual(r.returncode, 0, out)
            self.assertRegex(out, 'recipient_delimiter', bad)

    def test_three_errors_three_paths(self):
        cfg = self.good()
        cfg['limits']['message_size'] = 'big'
        cfg['listen'][0]['address'] = 'not an address'
        cfg['no_such_key'] = True
        r = self.check(cfg)
        out = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0, out)
        self.assertRegex(out, 'limits' + SEP + 'message_size')
        self.assertRegex(out, 'listen' + SEP + '0' + SEP + 'address')
        self.assertRegex(out, 'no_such_key')

    def test_unknown_key_in_module_section(self):
        cfg = self.good()
        cfg['modules'][0]['no_such_option'] = 1
        r = self.check(cfg)
        out = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0, out)
        self.assertIn('no_such_option', out)
        self.assertRegex(out, 'modules' + SEP + '0')

    def test_missing_module(self):
        cfg = self.good()
        cfg['modules'].append({'module': 'no_such_module_e2e'})
        r = self.check(cfg)
        out = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0, out)
        self.assertIn('no_such_module_e2e', out)

    def many_errors(self):
        """A config with errors in several modules' sections (and in the
        core's part of a module entry): each listed with its JSON path."""
        cfg = self.good()
        cfg['module_path'] = [os.environ.get('PLUGIN_DIR', ''),
                              harness.MODULE_DIR]
        first = len(cfg['modules'])
        cfg['modules'] += [
            {'module': 'pop3', 'directory': '/nonexistent',
             'passdb': 'file:/nonexistent', 'timeout': 5,
             'lockout': '1y', 'max_failures': -1},
            {'module': 'auth_sasl', 'passdb': 'file:/nonexistent',
             'mechanisms': ['PLAIN', 'NTLM'], 'timeout': '2h'},
            {'module': 'greylist', 'delay': '0s', 'on_error': 'maybe',
             'expire': '1500ms'},
            {'module': 'deliver_smtp', 'port': 0, 'cache_idle': '2h',
             'hook_timeout': '2h'},
        ]
        m = ['$.modules[%d]' % (first + i) for i in range(4)]
        want = [
            (m[0] + '.timeout', '5s is out of range 10m..1d'),
            (m[0] + '.lockout', 'expected a duration'),
            (m[0] + '.max_failures', '-1 is out of range 0..1000000'),
            (m[1] + '.mechanisms[1]', '"NTLM": expected one of "PLAIN", '
                                      '"LOGIN", "CRAM-MD5"'),
            (m[1] + '.timeout', '2h is out of range 1s..1h'),
            (m[2] + '.delay', '0s is out of range 1s..366d'),
            (m[2] + '.on_error', '"maybe": expected one of "tempfail", '
                                 '"continue"'),
            (m[2] + '.expire', '1500ms is not a whole number of seconds'),
            (m[3] + '.port', '0 is out of range 1..65535'),
            (m[3] + '.cache_idle', '2h is out of range 1s..1h'),
            (m[3] + '.hook_timeout', 'expected a time from 1ms to 1h'),
        ]
        return cfg, want

    def assert_listed(self, out, want):
        for path, msg in want:
            self.assertIn('%s: %s' % (path, msg), out)

    def test_every_error_of_every_module_listed(self):
        cfg, want = self.many_errors()
        r = self.check(cfg)
        out = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0, out)
        self.assert_listed(out, want)
        self.assertIn('modmta: %d errors' % len(want), out)

    def test_start_fails_with_every_error(self):
        cfg, want = self.many_errors()
        path = os.path.join(self.tmp, 'start.json')
        with open(path, 'w') as f:
            json.dump(cfg, f)
        resolv = os.path.join(self.tmp, 'resolv.conf')
        harness.write_resolv(resolv)
        argv = harness.loopback_dns_argv(resolv,
                                         [harness.MODMTA, '-c', path])
        r = subprocess.run(argv, cwd=self.tmp, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=60)
        out = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0, out)
        self.assert_listed(out, want)

    def test_durations_and_sizes_accepted(self):
        cfg = self.good()
        cfg['limits']['message_size'] = '10M'
        cfg['limits']['data_timeout'] = '10m'
        cfg.setdefault('queue', {})['lifetime'] = '5d'
        cfg['queue']['retry_min'] = 300        # integers stay seconds
        cfg['modules'][0]['hook_timeout'] = '500ms'
        cfg['modules'].append({'module': 'deliver_smtp', 'port': 2525,
                               'cache_idle': '5s', 'data_timeout': 600,
                               'connect_timeout': '1m'})
        r = self.check(cfg)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_bad_size(self):
        cfg = self.good()
        cfg['limits']['message_size'] = '10 MB'
        r = self.check(cfg)
        out = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0, out)
        self.assertIn('$.limits.message_size: "10 MB": expected a size', out)

    def test_invalid_json(self):
        r = self.check('{"hostname": "x",\n "spool": }\n')
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue((r.stdout + r.stderr).strip())

    def test_print_default_config(self):
        r = self.run_modmta('--print-default-config')
        self.assertEqual(r.returncode, 0, r.stderr)
        cfg = json.loads(r.stdout)
        self.assertIsInstance(cfg, dict)
        for key in ('spool', 'listen', 'modules'):
            self.assertIn(key, cfg)
        addrs = [l.get('address') for l in cfg['listen']]
        self.assertIn('127.0.0.1:2525', addrs)
        # the default passes its own check once it can find the modules
        cfg['module_path'] = [harness.MODULE_DIR]
        cfg['spool'] = os.path.join(self.tmp, 'var', 'spool')
        r = self.check(cfg)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == '__main__':
    harness.main()
