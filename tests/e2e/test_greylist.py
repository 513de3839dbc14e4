"""The greylist plugin (plugins/greylist) through the real daemon, on the
process's memory store.

A first RCPT of a triplet gets 450 4.7.1 and so does a retry before the
delay; once the delay has passed the retry gets 250 and the message is
delivered (polled, never timed); an exempt network and an authenticated
client get 250 at once; a bad "delay" is a config error naming its key.
With two nodes sharing a redis-server of the test's own, a triplet first
seen by one node passes on the other after the delay, and with the
redis-server stopped a new triplet gets 451 4.3.0 (on_error tempfail).

The plugin is found in PLUGIN_DIR (the build's plugins/, or, from
tests/sdk/test_plugins_out_of_tree.sh, the plugin built out of tree).
"""

import os
import subprocess
import tempfile

import harness
from harness import make_message, smtp, wait_for
from redisserver import RedisServer

PLUGIN_DIR = os.environ.get('PLUGIN_DIR', '')


class Greylist(harness.TestCase):

    def greylisted(self, greylist, before=(), **overrides):
        d = self.daemon(start=False, **overrides)
        d.overrides['module_path'] = [PLUGIN_DIR, harness.MODULE_DIR]
        d.overrides['modules'] = list(before) + [
            dict({'module': 'greylist'}, **greylist),
            {'module': 'store_mbox', 'directory': d.maildir,
             'users': 'any'}]
        return d.start()

    def rcpt(self, d, rcpt, sender='alice@remote.test', source='127.0.0.1',
             login=None):
        with smtp(d.port(), source_address=(source, 0)) as s:
            s.ehlo('client.test')
            if login is not None:
                s.login(*login)
            self.assertEqual(s.mail(sender)[0], 250)
            code, text = s.rcpt(rcpt)
            if code == 250:
                s.data(make_message('gl-%s@e2e.test' % rcpt,
                                    sender=sender, to=rcpt))
            return code, text.decode()

    def test_first_retry_and_exempt(self):
        d = self.greylisted({'delay': '1h', 'exempt': ['127.0.0.2']})
        code, text = self.rcpt(d, 'bob@localhost')
        self.assertEqual(code, 450, text)
        self.assertTrue(text.startswith('4.7.1 '), text)
        self.assertIn('try again', text)
        # the retry before the delay is refused again
        code, text = self.rcpt(d, 'bob@localhost')
        self.assertEqual(code, 450, text)
        # from the exempt address: at once
        self.assertEqual(self.rcpt(d, 'carol@localhost',
                                   source='127.0.0.2')[0], 250)
        d.wait_messages('carol', 1)
        self.assertIn('greylisted rcpt=<bob@localhost>', d.log_text())

    def test_retry_after_delay_passes(self):
        d = self.greylisted({'delay': '1s'})
        self.assertEqual(self.rcpt(d, 'dave@localhost')[0], 450)
        # the sender retries until the delay has passed
        wait_for(lambda: self.rcpt(d, 'dave@localhost')[0] == 250,
                 what='the retry passes')
        d.wait_messages('dave', 1)
        # remembered: passes at once from then on
        self.assertEqual(self.rcpt(d, 'dave@localhost')[0], 250)
        # another sender is another triplet
        self.assertEqual(self.rcpt(d, 'dave@localhost',
                                   sender='eve@remote.test')[0], 450)

    def test_authenticated_not_greylisted(self):
        tmp = tempfile.mkdtemp(dir=self.tmp)
        passwd = os.path.join(tmp, 'passwd')
        with open(passwd, 'w') as f:
            f.write('frank:{PLAIN}pw\n')
        auth = {'module': 'auth_sasl', 'passdb': 'file:' + passwd,
                'mechanisms': ['PLAIN'], 'allow_plaintext_loopback': True}
        d = self.greylisted({'delay': '1h'}, before=[auth])
        self.assertEqual(self.rcpt(d, 'gina@localhost',
                                   login=('frank', 'pw'))[0], 250)
        d.wait_messages('gina', 1)
        self.assertEqual(self.rcpt(d, 'gina@localhost')[0], 450)

    def test_cluster_retry_on_another_node(self):
        redis = RedisServer(os.path.join(self.tmp, 'redis'))
        self.peer_logs.append(redis.logpath)
        redis.start()
        try:
            a, b = [self.greylisted({'delay': '1s'}, hostname=n,
                                    redis=redis.config())
                    for n in ('a.e2e.test', 'b.e2e.test')]
            self.assertEqual(self.rcpt(a, 'hank@localhost')[0], 450)
            wait_for(lambda: self.rcpt(b, 'hank@localhost')[0] == 250,
                     what='the retry passes on the other node')
            b.wait_messages('hank', 1)
            self.assertEqual(self.rcpt(a, 'hank@localhost')[0], 250)
            # the store down: a new triplet is tempfailed, not let through
            redis.stop()
            code, text = self.rcpt(a, 'ivy@localhost')
            self.assertEqual(code, 451, text)
            self.assertTrue(text.startswith('4.3.0 '), text)
        finally:
            redis.stop()

    def test_bad_delay_is_a_config_error(self):
        d = self.daemon(start=False)
        d.ports = {'smtp': harness.free_port()}
        cfg = d.config()
        cfg['module_path'] = [PLUGIN_DIR, harness.MODULE_DIR]
        cfg['modules'].insert(0, {'module': 'greylist', 'delay': '5 min'})
        d.write_config(cfg)
        r = subprocess.run([harness.MODMTA, '--check-config', '-c', d.conf],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn('$.modules[0].delay', r.stdout + r.stderr)


if __name__ == '__main__':
    harness.main()
