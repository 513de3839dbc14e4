"""The ratelimit module through the real daemon, on the process's memory
store (one node; two nodes sharing Redis are tested with the cluster),
and on a Redis of the test's own for what it leaves there.

The N+1-th message of a sender within the hour is refused at MAIL with
450 4.7.1 and a transaction abandoned before DATA does not count; the
recipients over the sender's limit get 450 4.7.1 at RCPT while the
message goes to the others; a client over its concurrent connections is
greeted with 421 4.7.0 and the socket is closed, and a session that ends
frees its place; a reload keeps every count (the store belongs to the
process, not to a config generation). Each refusal logs one line naming
the limit, the key and the count.

With Redis: a client naming recipients that are refused (unknown users,
relaying denied) and abandoning transactions leaves no key behind, only
those of the message it got queued.

The windows are on the clock (the hour from :00, the minute from second
0): a test that counts waits, if need be, until enough of the window is
left for it (window_room).
"""

import time

import harness
from harness import Raw, make_message, send_mail, smtp
from redisserver import RedisTestCase


def window_room(window_s, need_s):
    """Wait until need_s seconds at least are left in the clock's window
    of window_s seconds, so that the counts a test makes fall in one."""
    harness.wait_for(lambda: window_s - time.time() % window_s >= need_s,
                     timeout=need_s + 5,
                     what='%d s left in a %d s window' % (need_s, window_s))


class RateLimit(harness.TestCase):

    def limited(self, **limits):
        window_room(3600, 60)
        d = self.daemon(start=False)
        d.overrides['modules'] = [
            dict({'module': 'ratelimit'}, **limits),
            {'module': 'store_mbox', 'directory': d.maildir,
             'users': 'any'}]
        return d.start()

    def greet(self, d):
        r = Raw(d.port())
        code, text = r.reply()
        return r, code, text

    def test_messages_per_hour_survive_reload(self):
        d = self.limited(sender_messages_per_hour=3)
        with smtp(d.port()) as s:
            send_mail(s, 'alice@localhost', ['bob@localhost'],
                      make_message('m1@e2e.test'))
            # a transaction given up before DATA gives its message back
            s.ehlo_or_helo_if_needed()
            self.assertEqual(s.mail('alice@localhost')[0], 250)
            self.assertEqual(s.rcpt('bob@localhost')[0], 250)
            self.assertEqual(s.rset()[0], 250)
            send_mail(s, 'alice@localhost', ['bob@localhost'],
                      make_message('m2@e2e.test'))
        # the count survives a reload into a new generation
        d.overrides['hostname'] = 'mx2.e2e.test'
        d.write_config()
        r = d.ctl('reload')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with smtp(d.port()) as s:
            code, text = s.ehlo()
            self.assertTrue(text.startswith(b'mx2.e2e.test'), text)
            send_mail(s, 'alice@localhost', ['bob@localhost'],
                      make_message('m3@e2e.test'))
            code, text = s.mail('alice@localhost')
            self.assertEqual(code, 450, text)
            self.assertEqual(text.decode(),
                             '4.7.1 Error: sender alice@localhost exceeded '
                             '3 messages per hour')
            # the session goes on; another sender has a quota of its own
            self.assertEqual(s.rset()[0], 250)
            send_mail(s, 'carol@localhost', ['bob@localhost'],
                      make_message('c1@e2e.test'))
        d.wait_messages('bob', 4)
        d.wait_queue_empty()
        self.assertEqual(len(d.messages('bob')), 4)
        self.assertRegex(d.log_text(),
                         'refuse: limit=sender_messages_per_hour '
                         'key=ratelimit:ratelimit:msg:[0-9]+:'
                         'from:alice@localhost count=4 max=3')

    def test_recipients_per_hour(self):
        d = self.limited(sender_recipients_per_hour=3)
        with smtp(d.port()) as s:
            send_mail(s, 'alice@localhost', ['r1@localhost', 'r2@localhost'],
                      make_message('r1@e2e.test'))
            s.ehlo_or_helo_if_needed()
            self.assertEqual(s.mail('alice@localhost')[0], 250)
            self.assertEqual(s.rcpt('r3@localhost')[0], 250)
            code, text = s.rcpt('r4@localhost')
            self.assertEqual(code, 450, text)
            self.assertEqual(text.decode(),
                             '4.7.1 Error: sender alice@localhost exceeded '
                             '3 recipients per hour')
            code, text = s.data(make_message('r2@e2e.test'))
            self.assertEqual(code, 250, text)
        for user in ('r1', 'r2', 'r3'):
            d.wait_messages(user, 1)
        d.wait_queue_empty()
        self.assertEqual(d.messages('r4'), [])

    def test_concurrent_connections(self):
        d = self.limited(client_connections=2)
        first, code, _ = self.greet(d)
        self.assertEqual(code, 220)
        second, code, _ = self.greet(d)
        self.assertEqual(code, 220)
        third, code, text = self.greet(d)
        self.assertEqual(code, 421)
        self.assertEqual(text, ['4.7.0 mx.e2e.test Error: too many '
                                'connections from 127.0.0.1 (at most 2 at '
                                'once)'])
        self.assertTrue(third.eof(), 'the socket stays open after 421')
        # a session that ends frees its place (the server runs the
        # module's disconnect before it closes the socket)
        self.assertEqual(first.cmd('QUIT')[0], 221)
        self.assertTrue(first.eof())
        fourth, code, _ = self.greet(d)
        self.assertEqual(code, 220)
        self.assertEqual(fourth.cmd('EHLO client.test')[0], 250)
        self.assertEqual(second.cmd('QUIT')[0], 221)
        self.assertIn('refuse: limit=client_connections '
                      'key=ratelimit:ratelimit:conn:127.0.0.1 count=3 max=2',
                      d.log_text())


class RateLimitRedis(RedisTestCase):

    def keys(self):
        return sorted(self.redis.cli('--scan', '--pattern',
                                     'modmta:ratelimit:ratelimit:*')
                      .split())

    def test_refused_recipients_leave_no_keys(self):
        window_room(3600, 60)
        d = self.daemon(start=False)
        d.overrides.update({
            'redis': self.redis.config(),
            'limits': {'errors': 1000, 'recipients': 1000},
            'modules': [
                {'module': 'ratelimit', 'client_connections': 5,
                 'sender_messages_per_hour': 100,
                 'sender_recipients_per_hour': 1000,
                 'domain_recipients_per_hour': 1000},
                {'module': 'store_mbox', 'directory': d.maildir,
                 'users': ['bob']}]})
        d.start()
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd('EHLO client.test'), 250)
        self.assertReply(c.cmd('MAIL FROM:<alice@localhost>'), 250)
        self.assertReply(c.cmd('RCPT TO:<bob@localhost>'), 250)
        for i in range(150):
            # relaying denied, then an unknown user
            self.assertEqual(c.cmd('RCPT TO:<u@d%d.example>' % i)[0], 554)
            self.assertEqual(c.cmd('RCPT TO:<nobody%d@localhost>' % i)[0],
                             550)
        self.assertTrue(any(k.startswith('modmta:ratelimit:ratelimit:conn:')
                            for k in self.keys()), self.keys())
        # the transaction is given up: what it counted goes too
        self.assertReply(c.cmd('RSET'), 250)
        self.assertReply(c.cmd('MAIL FROM:<carol@localhost>'), 250)
        self.assertReply(c.cmd('RCPT TO:<bob@localhost>'), 250)
        self.assertEqual(c.cmd('RCPT TO:<x@last.example>')[0], 554)
        self.assertReply(c.cmd('DATA'), 354)
        c.send(make_message('kept@e2e.test') + b'.\r\n')
        self.assertReply(c.reply(), 250)
        self.assertReply(c.cmd('QUIT'), 221)
        self.assertTrue(c.eof())
        window = int(time.time()) // 3600
        self.assertEqual(self.keys(), sorted(
            'modmta:ratelimit:ratelimit:%s:%d:%s' % (tag, window, subject)
            for tag, subject in (('msg', 'from:carol@localhost'),
                                 ('rcpt', 'from:carol@localhost'),
                                 ('domain', 'localhost'))))
        self.assertEqual(self.redis.cli(
            'GET', 'modmta:ratelimit:ratelimit:rcpt:%d:from:carol@localhost'
            % window), '1')
        d.wait_messages('bob', 1)


if __name__ == '__main__':
    harness.main()
