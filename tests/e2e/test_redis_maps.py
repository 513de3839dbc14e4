"""redis: maps and passdbs through two real daemons sharing one
redis-server started by the test (on a UNIX socket): an alias and a
virtual entry set with `modmtactl map set` against node 1's config take
effect on node 2 at its next lookup, without a reload; `map del` makes
the recipient unknown again (550); `map import` loads an aliases(5)
file, all or nothing, and with --replace deletes the map's other keys
in the same write; a virtusertable and an access file (`file:`, "key
value" lines) that node 2 then applies; relay_access's access table and
store_mbox's users in Redis; SMTP AUTH against a redis: passdb on both
nodes, a password changed on one counting on the other; a value naming
a command is deferred, never run; Redis stopped: 451 4.3.0 at RCPT (the
client keeps the message), `modmtactl map` exits 2, and once Redis is
back the same daemon delivers again.
"""

import base64
import os

import harness
from harness import Raw, make_message, send_mail, smtp, wait_for
from redisserver import RedisTestCase

USERS = ['bob', 'carol', 'dave', 'erin', 'frank']


def plain(user, password):
    return base64.b64encode(b'\0' + user.encode() + b'\0'
                            + password.encode()).decode()


class RedisMaps(RedisTestCase):

    def node(self, *modules, users=USERS):
        """A daemon on the shared Redis: modules, then store_mbox for
        users only (an unknown recipient gets 550)."""
        d = self.daemon(start=False)
        d.overrides['redis'] = {'address': self.redis.socket, 'timeout': 1}
        d.overrides['modules'] = list(modules) + [
            {'module': 'store_mbox', 'directory': d.maildir,
             'users': users}]
        return d.start()

    def alias_nodes(self, virtual=True):
        mods = ({'module': 'virtual', 'map': 'redis:virtual:'},) * virtual
        mods += ({'module': 'alias', 'map': 'redis:alias:'},)
        return self.node(*mods), self.node(*mods)

    def ctl_ok(self, d, *args):
        r = d.ctl(*args)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout

    def test_set_on_one_node_seen_on_the_other(self):
        d1, d2 = self.alias_nodes()
        self.assertEqual(
            self.ctl_ok(d1, 'map', 'set', 'redis:alias:', 'List',
                        'bob,carol'), 'List: set\n')
        self.ctl_ok(d1, 'map', 'set', 'redis:virtual:', 'sales@localhost',
                    'dave@localhost')
        # the key schema: redis.prefix, the map's prefix, the key in
        # lower case
        self.assertEqual(self.redis.cli('GET', 'modmta:alias:list'),
                         'bob,carol')
        self.assertEqual(self.ctl_ok(d2, 'map', 'get', 'redis:alias:',
                                     'LIST'), 'bob,carol\n')
        with smtp(d2.port()) as s:
            send_mail(s, 'sender@localhost',
                      ['list@localhost', 'sales@localhost'],
                      make_message('set1@e2e.test'))
        for user in ('bob', 'carol', 'dave'):
            d2.wait_messages(user, 1)
        d2.wait_queue_empty()
        self.assertEqual(d1.messages('bob'), [])

        self.assertEqual(self.ctl_ok(d1, 'map', 'del', 'redis:alias:',
                                     'list'), 'list: deleted\n')
        self.assertReply(self.rcpt_reply(d2, 'list@localhost'), 550,
                         '5.1.1')
        self.assertReply(self.rcpt_reply(d1, 'list@localhost'), 550,
                         '5.1.1')
        r = d1.ctl('map', 'del', 'redis:alias:', 'list')
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn('not found', r.stderr)
        r = d1.ctl('map', 'get', 'redis:alias:', 'list')
        self.assertEqual(r.returncode, 1, r.stderr)
        # only redis: maps are written
        r = d1.ctl('map', 'set', 'file:/etc/aliases', 'x', 'y')
        self.assertEqual(r.returncode, 2, r.stderr)
        # the shared state's own keys are no map's (here the cluster's
        # registry), and a prefix ends with ':' so that no map reaches
        # into another's keys
        nodes = self.redis.cli('GET', 'modmta:ctl:nodes')
        r = d1.ctl('map', 'set', 'redis:ctl:', 'nodes', 'x')
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn('"ctl:" is reserved', r.stderr)
        self.assertEqual(self.redis.cli('GET', 'modmta:ctl:nodes'), nodes)
        r = d1.ctl('map', 'get', 'redis:alias', 'es:x')
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("ending with ':'", r.stderr)
        # never an empty value, which no file: line can hold either
        r = d1.ctl('map', 'set', 'redis:alias:', 'empty', '')
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn('the value is empty', r.stderr)
        self.assertEqual(self.redis.cli('EXISTS', 'modmta:alias:empty'),
                         '0')

    def test_import(self):
        d1, d2 = self.alias_nodes()
        path = os.path.join(self.tmp, 'aliases')
        with open(path, 'w') as f:
            f.write('# lists\n'
                    'staff: erin,\n'
                    '   frank\n'
                    'Team: staff, bob\n')
        out = self.ctl_ok(d1, 'map', 'import', 'redis:alias:',
                          'aliases:' + path)
        self.assertEqual(out, 'redis:alias:: 2 entries imported from '
                              'aliases:%s\n' % path)
        self.assertEqual(self.redis.cli('GET', 'modmta:alias:staff'),
                         'erin, frank')
        with smtp(d2.port()) as s:
            send_mail(s, 'sender@localhost', ['team@localhost'],
                      make_message('imp1@e2e.test'))
        for user in ('erin', 'frank', 'bob'):
            d2.wait_messages(user, 1)

        # an error anywhere (a syntax error, a target alias would not
        # take from Redis): FILE:LINE, and nothing is loaded
        bad = os.path.join(self.tmp, 'bad')
        for text, line in (('first: bob\nsecond carol\n', 2),
                           ('first: bob\nsecond: carol\n'
                            'run: "|/bin/sh -c x"\n', 3)):
            with open(bad, 'w') as f:
                f.write(text)
            r = d1.ctl('map', 'import', 'redis:alias:', 'aliases:' + bad)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn('%s:%d: ' % (bad, line), r.stderr)
            self.assertEqual(self.redis.cli('EXISTS', 'modmta:alias:first'),
                             '0')

    def test_import_replace(self):
        """--replace deletes the map's keys the file does not have, in
        the same atomic write; a prefix's glob characters match only
        themselves; without it the other keys stay."""
        d = self.node({'module': 'alias', 'map': 'redis:al*s:'})
        self.ctl_ok(d, 'map', 'set', 'redis:al*s:', 'old', 'bob')
        self.ctl_ok(d, 'map', 'set', 'redis:alias:', 'other', 'erin')
        # a key no lookup can reach (upper case): not the file's either
        self.redis.cli('SET', 'modmta:al*s:Upper', 'x')
        nodes = self.redis.cli('GET', 'modmta:ctl:nodes')
        path = os.path.join(self.tmp, 'aliases')
        with open(path, 'w') as f:
            f.write('keep: bob\nnew: carol\n')
        out = self.ctl_ok(d, 'map', 'import', '--replace', 'redis:al*s:',
                          'aliases:' + path)
        self.assertEqual(out, 'redis:al*s:: 2 entries imported from '
                              'aliases:%s, 2 other keys deleted\n' % path)
        self.assertEqual(self.redis.cli('GET', 'modmta:al*s:old'), '')
        self.assertEqual(self.redis.cli('GET', 'modmta:al*s:Upper'), '')
        self.assertEqual(self.redis.cli('GET', 'modmta:al*s:keep'), 'bob')
        self.assertEqual(self.redis.cli('GET', 'modmta:alias:other'), 'erin')
        self.assertEqual(self.redis.cli('GET', 'modmta:ctl:nodes'), nodes)
        self.assertReply(self.rcpt_reply(d, 'new@localhost'), 250)
        # merge (the default): what the file lacks stays
        with open(path, 'w') as f:
            f.write('third: dave\n')
        self.ctl_ok(d, 'map', 'import', 'redis:al*s:', 'aliases:' + path)
        self.assertEqual(self.redis.cli('GET', 'modmta:al*s:keep'), 'bob')
        self.assertEqual(self.redis.cli('GET', 'modmta:al*s:third'), 'dave')
        r = d.ctl('map', 'import', '--replace', 'redis:al*s:')
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn('usage:', r.stderr)

    def test_import_virtusertable_and_access(self):
        mods = ({'module': 'relay_access', 'access': 'redis:access:'},
                {'module': 'virtual', 'map': 'redis:virtual:'})
        d1, d2 = self.node(*mods), self.node(*mods)
        virt = os.path.join(self.tmp, 'virtusertable')
        with open(virt, 'w') as f:
            f.write('# Sendmail virtusertable\n'
                    'sales@localhost\tdave@localhost\n'
                    'Support@localhost  erin@localhost\n')
        access = os.path.join(self.tmp, 'access')
        with open(access, 'w') as f:
            f.write('To:blocked@localhost REJECT\n'
                    'From:spam@evil.test ERROR:5.7.1:550 Go away\n')
        self.assertEqual(
            self.ctl_ok(d1, 'map', 'import', 'redis:virtual:',
                        'file:' + virt),
            'redis:virtual:: 2 entries imported from file:%s\n' % virt)
        self.assertEqual(
            self.ctl_ok(d1, 'map', 'import', 'redis:access:',
                        'file:' + access),
            'redis:access:: 2 entries imported from file:%s\n' % access)
        self.assertEqual(self.redis.cli('GET', 'modmta:virtual:support@'
                                        'localhost'), 'erin@localhost')
        # node 2 applies both at its next lookups
        with smtp(d2.port()) as s:
            send_mail(s, 'sender@localhost',
                      ['sales@localhost', 'support@localhost'],
                      make_message('virt1@e2e.test'))
        for user in ('dave', 'erin'):
            d2.wait_messages(user, 1)
        r = self.rcpt_reply(d2, 'blocked@localhost')
        self.assertReply(r, 550, '5.7.1')
        self.assertIn('Recipient address rejected', r[1][0])
        c = Raw(d2.port())
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd('EHLO client.test'), 250)
        self.assertReply(c.cmd('MAIL FROM:<spam@evil.test>'), 550, '5.7.1')
        c.cmd('QUIT')
        c.close()

    def test_command_from_redis_deferred(self):
        d1, d2 = self.alias_nodes()
        marker = os.path.join(self.tmp, 'ran')
        # written around modmtactl, as anyone who can reach Redis could
        self.redis.cli('SET', 'modmta:alias:evil',
                       'bob, "|/bin/touch %s"' % marker)
        self.assertReply(self.rcpt_reply(d2, 'evil@localhost'), 451,
                         '4.3.0')
        self.assertIn('command target from a shared map refused',
                      d2.log_text())
        self.assertFalse(os.path.exists(marker))

    def test_access_and_mailboxes(self):
        """The maps modules open by hand: relay_access's access table
        and store_mbox's users."""
        d = self.node({'module': 'relay_access', 'access': 'redis:access:'},
                      users='redis:users:')
        self.ctl_ok(d, 'map', 'set', 'redis:users:', 'erin', 'yes')
        self.ctl_ok(d, 'map', 'set', 'redis:access:', 'Connect:127.0.0.1',
                    'REJECT')
        c = Raw(d.port())
        self.assertReply(c.reply(), 554, '5.7.1')
        c.close()
        self.ctl_ok(d, 'map', 'del', 'redis:access:', 'connect:127.0.0.1')
        self.assertReply(self.rcpt_reply(d, 'frank@localhost'), 550)
        with smtp(d.port()) as s:
            send_mail(s, 'sender@localhost', ['erin@localhost'],
                      make_message('acc1@e2e.test'))
        d.wait_messages('erin', 1)

    def test_auth_redis_passdb(self):
        def passwd(pw):
            return harness.passwd_entry('alice', pw)

        # (failed logins count across the nodes: room for this test's)
        auth = {'module': 'auth_sasl', 'passdb': 'redis:passwd:',
                'mechanisms': ['PLAIN'], 'allow_plaintext_loopback': True,
                'max_failures': 20}
        d1, d2 = self.node(auth), self.node(auth)
        self.ctl_ok(d1, 'map', 'set', 'redis:passwd:', 'alice',
                    passwd('first pw'))

        def auth_reply(d, user, pw):
            c = Raw(d.port())
            self.assertReply(c.reply(), 220)
            self.assertReply(c.cmd('EHLO client.test'), 250)
            r = c.cmd('AUTH PLAIN ' + plain(user, pw))
            c.cmd('QUIT')
            c.close()
            return r

        for d in (d1, d2):
            self.assertReply(auth_reply(d, 'alice', 'first pw'), 235)
            self.assertReply(auth_reply(d, 'alice', 'wrong'), 535, '5.7.8')
            self.assertReply(auth_reply(d, 'nobody', 'first pw'), 535,
                             '5.7.8')
        # changed through node 1's config: node 2 knows at once
        self.ctl_ok(d1, 'map', 'set', 'redis:passwd:', 'alice',
                    passwd('second pw'))
        self.assertReply(auth_reply(d2, 'alice', 'second pw'), 235)
        self.assertReply(auth_reply(d2, 'alice', 'first pw'), 535)

    def test_redis_down(self):
        d1, d2 = self.alias_nodes(virtual=False)
        self.ctl_ok(d1, 'map', 'set', 'redis:alias:', 'list', 'bob,carol')
        self.redis.stop()
        with smtp(d2.port()) as s:
            s.ehlo()
            self.assertEqual(s.mail('sender@localhost')[0], 250)
            code, text = s.rcpt('list@localhost')
            self.assertEqual(code, 451, text)
            self.assertTrue(text.startswith(b'4.3.0 '), text)
            # not "unknown user" for anyone while the map cannot answer
            self.assertEqual(s.rcpt('bob@localhost')[0], 451)
        r = d1.ctl('map', 'get', 'redis:alias:', 'list')
        self.assertEqual(r.returncode, 2, r.stderr)
        path = os.path.join(self.tmp, 'aliases')
        with open(path, 'w') as f:
            f.write('list: erin\n')
        r = d1.ctl('map', 'import', 'redis:alias:', 'aliases:' + path)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn('import failed', r.stderr)
        self.assertTrue(d2.running())

        # back (empty: nothing is saved): the same daemons answer again
        self.redis.start()
        self.ctl_ok(d1, 'map', 'set', 'redis:alias:', 'list', 'bob,carol')

        def accepted():
            with smtp(d2.port()) as s:
                s.ehlo()
                s.mail('sender@localhost')
                if s.rcpt('list@localhost')[0] != 250:
                    return False
                code, text = s.data(make_message('down1@e2e.test'))
                self.assertEqual(code, 250, text)
                return True
        wait_for(accepted, 30, 'RCPT accepted once Redis is back',
                 interval=0.2)
        d2.wait_messages('bob', 1)
        d2.wait_messages('carol', 1)


if __name__ == '__main__':
    harness.main()
