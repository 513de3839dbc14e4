"""modmtatest, the plugin test runner, on a chain of bundled modules
(relay_access, alias, masquerade, deliver_smtp, store_mbox) and the
scriptable test module (core/tests/modules/script.c) as a policy:

- a relay attempt from a client outside mynetworks: relay_access's
  554 5.7.1 in its hook line and as the reply, exit status 1;
- an alias expansion: the rewrite actions, the recipients it gave, each
  claimed by store_mbox, in the text and in --json;
- the script module's REJECT and TEMPFAIL with their replies, a note it
  sets, its header edits; masquerade's rewrite of the sender and From:;
- --route: a remote recipient claimed by deliver_smtp's route(), a local
  one offered to store_mbox's deliver(), which is not called;
- nothing is delivered, the configured spool is never created, the temp
  spool is removed; usage and config errors exit with 2;
- every option of --help is in modmtatest(8).

modmtatest runs in a private mount namespace whose resolv.conf names
only 127.0.0.1 (harness.loopback_dns_argv), like the daemon in the
other tests; the config's "dns" points at a port where nothing answers.
"""

import json
import os
import re
import subprocess

import harness

MODMTATEST = os.environ.get('MODMTATEST', '')
TEST_MODULE_DIR = os.environ.get('TEST_MODULE_DIR', '')
MANPAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       '..', '..', 'man', 'modmtatest.8')


class Runner(harness.TestCase):

    def setUp(self):
        super().setUp()
        if not MODMTATEST or not TEST_MODULE_DIR:
            self.fail('set MODMTATEST and TEST_MODULE_DIR (meson test does)')
        self.maildir = os.path.join(self.tmp, 'mail')
        self.spool = os.path.join(self.tmp, 'spool')
        self.tmpdir = os.path.join(self.tmp, 'runner-tmp')
        os.makedirs(self.maildir)
        os.makedirs(self.tmpdir)
        self.resolv = os.path.join(self.tmp, 'resolv.conf')
        harness.write_resolv(self.resolv)
        self.policy = {
            'module': 'script', 'name': 'policy',
            'rcpt': {'spam@example.org': {
                'verdict': 'reject',
                'reply': [550, '5.7.1', 'no spam here']}},
            'notes': {'data': {'policy.score': 7}},
            'milter': {'*': {'add_header': [['X-Policy', 'seen']]}}}
        aliases = os.path.join(self.tmp, 'aliases')
        with open(aliases, 'w') as f:
            f.write('postmaster: root\nteam: alice, bob\n')
        self.cfg = {
            'hostname': 'mx.e2e.test',
            'spool': self.spool,
            'module_path': [harness.MODULE_DIR, TEST_MODULE_DIR],
            'local_domains': ['localhost', 'example.org'],
            'log': {'level': 'notice'},
            'dns': {'servers': ['127.0.0.1:%d' % harness.free_port()]},
            'listen': [{'name': 'mx', 'protocol': 'smtp',
                        'address': '127.0.0.1:%d' % harness.free_port()}],
            'modules': [
                {'module': 'relay_access', 'mynetworks': ['127.0.0.0/8']},
                {'module': 'alias', 'map': 'aliases:' + aliases},
                {'module': 'masquerade', 'as': 'example.org',
                 'envelope': True},
                {'module': 'deliver_smtp'},
                {'module': 'store_mbox', 'directory': self.maildir,
                 'users': ['a', 'alice', 'bob', 'joe', 'root']},
                # after store_mbox: it sees what no mailbox claims, and
                # its deliver() (which declines) comes last
                self.policy,
            ],
        }
        if os.geteuid() == 0:
            self.cfg['run_as_root'] = True

    def run_mt(self, *args, cfg=None, stdin=None):
        path = os.path.join(self.tmp, 'modmta.json')
        with open(path, 'w') as f:
            json.dump(cfg if cfg is not None else self.cfg, f)
        argv = harness.loopback_dns_argv(
            self.resolv, [MODMTATEST, '-c', path] + list(args))
        r = subprocess.run(argv, cwd=self.tmp, input=stdin,
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, TMPDIR=self.tmpdir))
        # nothing delivered, the configured spool untouched, the temp
        # spool gone: whatever the run did
        self.assertEqual(os.listdir(self.maildir), [], r.stdout)
        self.assertFalse(os.path.exists(self.spool), r.stdout)
        self.assertEqual(os.listdir(self.tmpdir), [], r.stdout)
        return r

    def run_json(self, *args, **kw):
        r = self.run_mt('--json', *args, **kw)
        try:
            return r, json.loads(r.stdout)
        except ValueError:
            self.fail('not JSON: %r %r' % (r.stdout, r.stderr))

    def call(self, out, instance, hook, arg=None):
        """The JSON record of instance's hook call on arg (the last)."""
        found = [c for s in out['steps'] for c in s['calls']
                 if c['instance'] == instance and c['hook'] == hook
                 and (arg is None or c['arg'] == arg)]
        self.assertTrue(found, '%s %s %s not called' % (instance, hook, arg))
        return found[-1]

    def step(self, out, command):
        found = [s for s in out['steps'] if s['command'] == command]
        self.assertTrue(found, 'no step %r' % command)
        return found[0]

    # -- relay_access

    def test_relay_refused_from_outside(self):
        r = self.run_mt('--client', '192.0.2.7', '-f', 'a@remote.test',
                        '-r', 'x@other.test')
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r'\[relay_access\] on_rcpt '
                         r'<x@other\.test>: REJECT 554 5\.7\.1 ')
        self.assertIn('S: 554 5.7.1 <x@other.test>: Relay access denied',
                      r.stdout)
        self.assertIn('Result: refused at RCPT TO:<x@other.test>',
                      r.stdout)
        # no recipient, no DATA
        self.assertNotIn('C: DATA', r.stdout)

    def test_relay_allowed_from_mynetworks(self):
        r, out = self.run_json('-f', 'a@localhost', '-r', 'x@other.test',
                               '--route')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(out['result'], 'accepted')
        c = self.call(out, 'relay_access', 'on_rcpt', 'x@other.test')
        self.assertEqual(c['verdict'], 'ACCEPT')
        self.assertIn({'action': 'claim', 'value': '<x@other.test>'},
                      c['actions'])
        rcpt = out['envelope']['recipients'][0]
        self.assertEqual(rcpt['claimed_by'], 'relay_access')
        self.assertEqual(rcpt['route'], {'status': 'claimed',
                                         'instance': 'deliver_smtp',
                                         'destination': 'other.test'})

    # -- alias, claims, routes

    def test_alias_expansion(self):
        r = self.run_mt('-f', 'a@localhost', '-r', 'team@example.org')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r'\[alias\] on_rcpt <team@example\.org>: '
                         r'ACCEPT .*\n +rewrite <alice@example\.org>\n'
                         r' +rewrite <bob@example\.org>\n')
        for who in ('alice', 'bob'):
            self.assertRegex(
                r.stdout, r'recipient <%s@example\.org> \(for '
                r'<team@example\.org>\), claimed by store_mbox' % who)

    def test_alias_expansion_json_and_route(self):
        r, out = self.run_json('-f', 'a@localhost', '-r', 'team@example.org',
                               '--route')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        acts = self.call(out, 'alias', 'on_rcpt',
                         'team@example.org')['actions']
        self.assertEqual(acts, [
            {'action': 'rewrite', 'value': '<alice@example.org>'},
            {'action': 'rewrite', 'value': '<bob@example.org>'}])
        rcpts = out['envelope']['recipients']
        self.assertEqual([x['address'] for x in rcpts],
                         ['alice@example.org', 'bob@example.org'])
        for x in rcpts:
            self.assertEqual(x['original'], 'team@example.org')
            self.assertEqual(x['claimed_by'], 'store_mbox')
            # deliver_smtp's route() passes; store_mbox's deliver() is
            # named, never called (the mail dir stays empty)
            self.assertEqual(x['route']['status'], 'deliver')
            self.assertEqual(x['route']['instance'], 'store_mbox')
        route = self.call(out, 'deliver_smtp', 'route', 'alice@example.org')
        self.assertEqual(route['verdict'], 'CONTINUE')

    # -- the script module: verdicts, replies, actions

    def test_script_reject(self):
        r = self.run_mt('-f', 'a@localhost', '-r', 'spam@example.org',
                        '-r', 'bob@example.org')
        # one recipient refused: exit 1, the message queued for the other
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn('[policy] on_rcpt <spam@example.org>: REJECT 550 '
                      '5.7.1 no spam here', r.stdout)
        self.assertIn('S: 550 5.7.1 no spam here', r.stdout)
        self.assertRegex(r.stdout, r'Result: accepted, queued as \S+; but '
                         r'RCPT TO:<spam@example\.org>: 550 5\.7\.1 no spam '
                         r'here')
        self.assertIn('recipient <bob@example.org>, claimed by store_mbox',
                      r.stdout)
        # no mailbox, nobody else claims it: the core's own refusal
        r = self.run_mt('-f', 'a@localhost', '-r', 'nobody@example.org')
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r'\[policy\] on_rcpt '
                         r'<nobody@example\.org>: CONTINUE .*\n'
                         r'S: 550 5\.1\.1 <nobody@example\.org>: '
                         r'Recipient address rejected')
        self.assertNotIn('recipient <spam@example.org>', r.stdout)

    def test_script_tempfail_at_data(self):
        self.policy['data'] = 'tempfail'
        self.policy['reply'] = [451, '4.7.1', 'come back later']
        r, out = self.run_json('-f', 'a@localhost', '-r', 'bob@example.org')
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(out['result'], 'deferred')
        c = self.call(out, 'policy', 'on_data')
        self.assertEqual(c['verdict'], 'TEMPFAIL')
        self.assertEqual(c['reply'], {'code': 451, 'esc': '4.7.1',
                                      'text': 'come back later'})
        self.assertEqual(self.step(out, '.')['reply'],
                         {'code': 451, 'lines': ['4.7.1 come back later']})
        self.assertIsNone(out['envelope'])

    def test_masquerade_note_and_headers(self):
        r, out = self.run_json('-f', 'joe@localhost', '-r', 'bob@example.org')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        acts = self.call(out, 'masquerade', 'on_data')['actions']
        self.assertIn({'action': 'sender', 'value': '<joe@example.org>'},
                      acts)
        self.assertIn({'action': 'change_header',
                       'value': 'From: <joe@example.org>'}, acts)
        acts = self.call(out, 'policy', 'on_data')['actions']
        self.assertIn({'action': 'add_header', 'value': 'X-Policy: seen'},
                      acts)
        self.assertIn({'action': 'note', 'value': 'policy.score=7'}, acts)
        env = out['envelope']
        self.assertEqual(env['sender'], 'joe@example.org')
        self.assertEqual(env['notes'], {'policy.score': 7})
        self.assertIn('\r\nFrom: <joe@example.org>\r\n', out['headers'])
        self.assertIn('\r\nX-Policy: seen\r\n', out['headers'])

    def test_message_from_stdin(self):
        msg = ('From: <joe@localhost>\nSubject: lf only\n\n'
               '.leading dot\nbody\n')
        r, out = self.run_json('-f', 'joe@localhost', '-r', 'bob@example.org',
                               '-m', '-', stdin=msg)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('\r\nSubject: lf only\r\n', out['headers'])
        mail = self.step(out, 'MAIL FROM:<joe@localhost> SIZE=%d'
                         % (len(msg) + msg.count('\n')))
        self.assertEqual(mail['reply']['code'], 250)

    def test_stream_hooks_and_new_actions(self):
        """ABI 1.6: the streaming hooks are traced calls; a header
        inserted at an index and a replaced body are actions
        (core/tests/modules/stream.c acts on the Subject)."""
        self.cfg['modules'].insert(0, {'module': 'stream'})
        for subject, action in (('insert', {'action': 'insert_header',
                                            'value': '1 X-Inserted: at-one'}),
                                ('replace', {'action': 'replace_body',
                                             'value': '(a new body)'})):
            msg = 'Subject: %s\nX-Two: 2\n\nbody\n' % subject
            r, out = self.run_json('-f', 'joe@localhost', '-r',
                                   'bob@example.org', '-m', '-', stdin=msg)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            hooks = [c['hook'] for s in out['steps'] for c in s['calls']
                     if c['instance'] == 'stream']
            self.assertEqual(hooks, ['on_header'] * 3 + [
                'on_eoh', 'on_body', 'on_body', 'on_data'])
            self.assertEqual(self.call(out, 'stream', 'on_data')['actions'],
                             [action])

    def test_auth(self):
        r, out = self.run_json('-f', 'a@localhost', '-r', 'bob@example.org',
                               '--auth', 'alice')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(' with ESMTPA id ', out['headers'])
        self.assertEqual(out['client']['auth'], 'alice')
        # on_auth runs once the EHLO is accepted, in that step
        ehlo = self.step(out, 'EHLO [127.0.0.1]')
        auth = [c for c in ehlo['calls'] if c['hook'] == 'on_auth']
        self.assertEqual([(c['instance'], c['arg'], c['success'])
                          for c in auth], [('policy', 'alice', True)])

    # -- errors

    def test_usage_and_config_errors(self):
        r = self.run_mt('-r', 'bob@example.org')
        self.assertEqual(r.returncode, 2)
        self.assertIn('-f SENDER is required', r.stderr)
        r = self.run_mt('-f', 'a@localhost')
        self.assertEqual(r.returncode, 2)
        r = self.run_mt('-f', 'a@localhost', '-r', 'b@localhost',
                        '--client', 'not-an-address')
        self.assertEqual(r.returncode, 2)
        r = self.run_mt('-f', 'a@localhost', '-r', 'b@localhost',
                        '--listener', 'nosuch')
        self.assertEqual(r.returncode, 2)
        self.assertIn('no listener "nosuch"', r.stderr)
        self.cfg['modules'][0]['no_such_key'] = 1
        r = self.run_mt('-f', 'a@localhost', '-r', 'b@localhost')
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r'\$\.modules\[0\]')

    def test_options_documented(self):
        r = subprocess.run([MODMTATEST, '--help'], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0)
        with open(MANPAGE) as f:
            man = f.read()
        opts = set(re.findall(r'--([a-z]+)', r.stdout))
        self.assertGreater(len(opts), 8)
        for o in sorted(opts):
            self.assertTrue(re.search(r'\bFl -%s\b' % o, man),
                            '--%s not in modmtatest.8' % o)
        for o in re.findall(r'(?m)^  -([a-zA-Z]),', r.stdout):
            self.assertTrue(re.search(r'\bFl %s\b' % o, man),
                            '-%s not in modmtatest.8' % o)


if __name__ == '__main__':
    harness.main()
