"""relay_access over real SMTP: the how-tos' access table on 127.0.0.0/8
(clients bind to 127.0.5.1, 127.0.6.x...), relay from a trusted network
and denial from an untrusted one, DISCARD, ERROR with its own text, the
address-trick battery, and a malformed access file at start and at
reload. No outbound transport exists yet: a relayed recipient is checked
at RCPT and in the queue, not delivered."""
import os
import re
import smtplib
import socket

import harness

ACCESS = ('# the how-tos\' example, moved to loopback\n'
          'Connect:127.0.5 RELAY\n'
          'Connect:127.0.6 REJECT\n'
          'Connect:127.0.6.101 OK\n'
          'Connect:127.0.9 ERROR:4.7.1:421 come back later\n'
          'From:spam@spam.test DISCARD\n'
          'To:nobody@ ERROR:5.7.1:550 bad name\n'
          'To:blocked.test REJECT\n')


def client(d, source):
    return harness.smtp(d.port(), source_address=(source, 0))


class RelayAccessTest(harness.TestCase):

    def start(self, access=ACCESS, **extra):
        path = os.path.join(self.tmp, 'access')
        with open(path, 'w') as f:
            f.write(access)
        d = self.daemon(start=False, modules=[
            dict({'module': 'relay_access', 'mynetworks': ['127.0.0.1/32'],
                  'access': 'file:' + path}, **extra),
            {'module': 'store_mbox', 'directory': None, 'users': 'any'}])
        d.overrides['modules'][1]['directory'] = d.maildir
        d.access = path
        return d

    def rcpt(self, source, rcpt, d, sender='a@sender.test'):
        with client(d, source) as s:
            s.ehlo()
            self.assertEqual(s.mail(sender)[0], 250)
            return s.rcpt(rcpt)

    def test_howto_table(self):
        d = self.start().start()
        # 127.0.5.0/24 may relay: accepted at RCPT, then queued (deferred:
        # nothing delivers remote mail yet)
        with client(d, '127.0.5.1') as s:
            qid = harness.send_mail(s, 'a@sender.test', ['far@remote.test'],
                                    harness.make_message('<r1@e2e>'))
        harness.wait_for(lambda: qid in d.queue_ids(), what='queued')
        # 127.0.6.0/24 is refused at connect, and only QUIT works
        c = socket.create_connection(('127.0.0.1', d.port()),
                                             source_address=('127.0.6.5', 0))
        f = c.makefile('rb')
        self.assertTrue(f.readline().startswith(b'554 5.7.1 '))
        c.sendall(b'EHLO client.test\r\n')
        self.assertTrue(f.readline().startswith(b'503 '))
        c.sendall(b'QUIT\r\n')
        self.assertTrue(f.readline().startswith(b'221 '))
        c.close()
        # ...except 127.0.6.101: OK, a normal client (no relaying)
        code, text = self.rcpt('127.0.6.101', 'far@remote.test', d)
        self.assertEqual(code, 554)
        self.assertIn(b'5.7.1 <far@remote.test>: Relay access denied', text)
        self.assertEqual(self.rcpt('127.0.6.101', 'bob@localhost', d)[0],
                         250)
        # untrusted, no entry: denied, and logged with the rule
        self.assertEqual(self.rcpt('127.0.7.1', 'far@remote.test', d)[0],
                         554)
        log = d.log_text()
        self.assertRegex(log, r'reject: client=\S+\[127\.0\.6\.5\] .* '
                         r'rule=access:Connect:127\.0\.6\b')
        self.assertRegex(log, r'reject: client=\S+\[127\.0\.7\.1\] '
                         r'from=<a@sender\.test> to=<far@remote\.test> '
                         r'rule=relay')

    def test_trusted_network_and_swaks(self):
        d = self.start().start()
        self.assertEqual(self.rcpt('127.0.0.1', 'far@remote.test', d)[0],
                         250)
        r = harness.swaks(d, '--local-interface', '127.0.7.1',
                          '--from', 'a@sender.test', '--to',
                          'far@remote.test', '--quit-after', 'RCPT')
        self.assertIn('554 5.7.1 <far@remote.test>: Relay access denied',
                      r.stdout + r.stderr)

    def test_discard_and_error(self):
        d = self.start().start()
        with client(d, '127.0.7.1') as s:
            harness.send_mail(s, 'spam@spam.test', ['bob@localhost'],
                              harness.make_message('<spam@e2e>',
                                                   subject='spam'))
            harness.send_mail(s, 'good@sender.test', ['bob@localhost'],
                              harness.make_message('<good@e2e>',
                                                   subject='good'))
        msgs = d.wait_messages('bob', 1)
        d.wait_queue_empty()
        self.assertEqual(len(d.messages('bob')), 1)
        self.assertEqual(harness.header(msgs[0], 'Subject'), ['good'])
        code, text = self.rcpt('127.0.7.1', 'nobody@localhost', d)
        self.assertEqual((code, text), (550, b'5.7.1 bad name'))
        code, text = self.rcpt('127.0.7.1', 'x@blocked.test', d)
        self.assertEqual(code, 550)
        with self.assertRaises(smtplib.SMTPConnectError) as cm:
            client(d, '127.0.9.1')
        self.assertEqual(cm.exception.smtp_code, 421)
        self.assertIn(b'come back later', cm.exception.smtp_error)

    def test_address_tricks(self):
        d = self.start(relay_domains=[]).start()
        tricks = ['user%far.test@localhost', 'USER%FAR.TEST@LOCALHOST',
                  'far.test!user@localhost', 'FAR.TEST!user@localhost.',
                  '"user@far.test"@localhost', '"user%far.test"@localhost',
                  '"user!x"@localhost', '@localhost:user@far.test',
                  '@LOCALHOST,@x.test:user@far.test', 'user@[192.0.2.1]',
                  'user@[127.0.0.1]', 'user@far.test.', 'USER@FAR.TEST',
                  'user@localhost@far.test', 'user%localhost@far.test',
                  '"user@localhost"@far.test']
        for t in tricks:
            code, text = self.rcpt('127.0.7.1', t, d)
            self.assertGreaterEqual(code, 500, '%s: %d %r' % (t, code, text))
        self.assertEqual(d.queue_ids(), set())

    def test_malformed_at_start(self):
        d = self.start(access='Connect:127.0.5 RELAY\n'
                       'Connect:127.0.6 PERMIT\n')
        with self.assertRaises(AssertionError):
            d.start()
        self.assertRegex(d.log_text(), r'modules\[0\]\.access.*'
                         + re.escape(d.access) + r':2: unknown action')

    def test_malformed_at_reload(self):
        d = self.start().start()
        with open(d.access, 'a') as f:
            f.write('To:x.test NOPE\n')
        before = len(d.log_text())
        d.reload()
        harness.wait_for(lambda: re.search(
            re.escape(d.access) + r':9: unknown action',
            d.log_text()[before:]), what='the access error in the log')
        # still serving, with the old table
        self.assertEqual(self.rcpt('127.0.5.1', 'far@remote.test', d)[0],
                         250)
        with self.assertRaises(smtplib.SMTPConnectError):
            client(d, '127.0.6.5')


if __name__ == '__main__':
    harness.main()
