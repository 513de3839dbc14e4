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
