"""LMTP end to end: modmta (relay_access, deliver_lmtp for dove.test,
store_mbox for the sender's notices) hands mail to a real Dovecot
(dovecot-lmtpd) started by the test, over its UNIX socket and over TCP;
the message read back from Dovecot's maildir is the one sent, byte for
byte but for the headers each side adds. One transaction for several
recipients, each with its own answer: a user Dovecot delivers to (250),
an unknown user (550 at RCPT: a DSN to the sender), a mailbox Dovecot
cannot create (451 after DATA: deferred, in `modmtactl queue`). Dovecot
stopped: the mail waits in the queue with the connect error and arrives
once Dovecot is back and the queue flushed. LMTP through deliver_smtp's
transport table (`lmtp:unix:/path`)."""

import email
import os
import re
import sys
from email import policy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from dovecot import Dovecot  # noqa: E402
from harness import make_message, send_mail, smtp  # noqa: E402

SENDER = 'alice@localhost'
# deferred mail stays put until the test flushes the queue
QUEUE = {'retry_min': 3600, 'retry_max': 3600}
BODY = ('a body line\r\n'
        '.a line that starts with a dot\r\n'
        'From the start of a line\r\n'
        '\r\n'
        'last line\r\n')


def header_fields(data):
    """(fields, body) of a stored message (LF line ends): each field its
    raw lines, folding kept; body the bytes after the blank line."""
    head, _, body = data.partition(b'\n\n')
    fields = []
    for line in head.split(b'\n'):
        if line[:1] in (b' ', b'\t') and fields:
            fields[-1] += b'\n' + line
        else:
            fields.append(line)
    return fields, body


class Lmtp(harness.TestCase):

    def setUp(self):
        super().setUp()
        os.chmod(self.tmp, 0o755)       # Dovecot's users are "nobody"
        base = os.path.join(self.tmp, 'dc')
        for sub, mode in (('mail', 0o777), ('ro', 0o555)):
            os.makedirs(os.path.join(base, sub))
            os.chmod(os.path.join(base, sub), mode)
        resolv = os.path.join(self.tmp, 'dovecot-resolv.conf')
        harness.write_resolv(resolv)
        self.dovecot = Dovecot(
            base,
            {'bob': os.path.join(base, 'mail', 'bob'),
             'dave': os.path.join(base, 'mail', 'dave'),
             # a home under a directory nobody may write: 451
             'carol': os.path.join(base, 'ro', 'carol')},
            inet_port=harness.free_port(),
            wrap=lambda argv: harness.loopback_dns_argv(resolv, argv))
        self.dovecot.start()

    def tearDown(self):
        self.dovecot.stop()
        if self._failed():
            sys.stderr.write('\n----- dovecot log -----\n%s\n'
                             % self.dovecot.log())
        super().tearDown()

    def mta(self, server=None, extra=()):
        """modmta receiving for dove.test and handing it to Dovecot."""
        server = server or 'unix:' + self.dovecot.socket
        d = self.daemon(start=False, queue=QUEUE)
        d.overrides['local_domains'] = ['localhost', 'dove.test']
        d.overrides['modules'] = [
            {'module': 'relay_access', 'mynetworks': ['127.0.0.0/8']},
            {'module': 'deliver_lmtp', 'server': server,
             'domains': ['dove.test']},
        ] + list(extra) + [
            {'module': 'store_mbox', 'directory': d.maildir,
             'users': 'any'},
        ]
        return d.start()

    def wait_maildir(self, user, n):
        return harness.wait_for(
            lambda: (lambda m: m if len(m) >= n else None)(
                self.dovecot.maildir_messages(user)),
            what='%d message(s) in %s\'s maildir' % (n, user))

    def queue_listing(self, d):
        r = d.ctl('queue')
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    # -- the message, byte for byte

    def assert_stored(self, stored, sent, rcpt, qid):
        """stored = Dovecot's Return-Path and (for a transaction with
        one recipient, rcpt not None) Delivered-To, modmta's Received,
        then sent exactly (LF line ends in a maildir)."""
        fields, _ = header_fields(stored)
        self.assertEqual(fields.pop(0),
                         b'Return-Path: <%s>' % SENDER.encode())
        if rcpt is not None:
            self.assertEqual(fields.pop(0),
                             b'Delivered-To: %s' % rcpt.encode())
        received = fields[0]
        self.assertTrue(received.startswith(b'Received: '), received)
        self.assertIn(b'by mx.e2e.test', received)
        self.assertIn(qid.encode(), received)
        rest = stored.split(received + b'\n', 1)[1]
        self.assertEqual(rest, sent.replace(b'\r\n', b'\n'))

    def deliver_one(self, d, msgid):
        sent = make_message(msgid, subject='lmtp ' + msgid, body=BODY,
                            sender=SENDER, to='bob@dove.test')
        with smtp(d.port()) as s:
            qid = send_mail(s, SENDER, ['bob@dove.test'], sent)
        stored = self.wait_maildir('bob', 1)
        self.assertEqual(len(stored), 1)
        self.assert_stored(stored[0], sent, 'bob@dove.test', qid)
        d.wait_queue_empty()
        return qid

    def test_unix_socket(self):
        d = self.mta()
        qid = self.deliver_one(d, 'unix@e2e.test')
        self.assertRegex(d.log_text(),
                         r'%s: to=<bob@dove.test> '
                         r'relay=%s.*status=sent' % (qid, re.escape(
                             self.dovecot.socket)))

    def test_inet(self):
        d = self.mta(server='inet:127.0.0.1:%d' % self.dovecot.inet_port)
        qid = self.deliver_one(d, 'inet@e2e.test')
        self.assertRegex(d.log_text(),
                         r'%s: to=<bob@dove.test> '
                         r'relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d.*status=sent'
                         % (qid, self.dovecot.inet_port))

    # -- several recipients, one transaction, a reply each

    def test_reply_per_recipient(self):
        d = self.mta()
        sent = make_message('multi@e2e.test', subject='multi', body=BODY,
                            sender=SENDER, to='bob@dove.test')
        rcpts = ['bob@dove.test', 'nosuch@dove.test', 'carol@dove.test',
                 'dave@dove.test']
        with smtp(d.port()) as s:
            qid = send_mail(s, SENDER, rcpts, sent)
        # Dovecot names the recipient (Delivered-To) only when alone
        for user in ('bob', 'dave'):
            stored = self.wait_maildir(user, 1)
            self.assert_stored(stored[0], sent, None, qid)
        # one LMTP session delivered both (Dovecot names its sessions; its
        # log process may write the line after the mail is in the maildir)
        sessions = {}
        for user in ('bob', 'dave'):
            saved = re.compile(r'lmtp\(%s\)<\d+><([^>:]+)(:R\d+)?>: .*saved '
                               r'mail to INBOX' % user)
            m = harness.wait_for(lambda: saved.search(self.dovecot.log()),
                                 what="Dovecot's log of %s's mail" % user)
            sessions[user] = m.group(1)
        self.assertEqual(sessions['bob'], sessions['dave'])

        # the unknown user: a report to the sender, Dovecot's reply in it
        report = email.message_from_bytes(
            d.wait_messages('alice', 1)[0].partition(b'\n')[2],
            policy=policy.compat32)
        self.assertEqual(report.get_content_type(), 'multipart/report')
        status = report.get_payload()[1]
        self.assertEqual(status.get_content_type(),
                         'message/delivery-status')
        blocks = status.get_payload()[1:]
        self.assertEqual(len(blocks), 1, [b.as_string() for b in blocks])
        b = blocks[0]
        self.assertEqual(b['Final-Recipient'], 'rfc822; nosuch@dove.test')
        self.assertEqual(b['Action'], 'failed')
        self.assertEqual(b['Status'], '5.1.1')
        self.assertEqual(b['Remote-MTA'], 'x-unix; ' + self.dovecot.socket)
        self.assertRegex(b['Diagnostic-Code'], r'^smtp; 550 5\.1\.1 ')

        # the mailbox Dovecot cannot create: deferred, kept, shown
        harness.wait_for(lambda: '451 4.' in self.queue_listing(d),
                         what='carol deferred with 451 in the queue')
        listing = self.queue_listing(d)
        self.assertIn(qid, listing)
        self.assertIn('carol@dove.test', listing)
        for gone in ('bob@', 'dave@', 'nosuch@'):
            self.assertNotIn(gone, listing)
        self.assertEqual(d.queue_ids(), {qid})
        self.assertEqual(self.dovecot.maildir_messages('carol'), [])

    # -- Dovecot stopped

    def test_server_down(self):
        d = self.mta()
        self.dovecot.stop()
        sent = make_message('down@e2e.test', subject='down', body=BODY,
                            sender=SENDER, to='bob@dove.test')
        with smtp(d.port()) as s:
            qid = send_mail(s, SENDER, ['bob@dove.test'], sent)
        harness.wait_for(lambda: 'connect to' in self.queue_listing(d),
                         what='the connect error in the queue')
        listing = self.queue_listing(d)
        self.assertIn(qid, listing)
        self.assertIn(self.dovecot.socket, listing)
        self.assertEqual(d.queue_ids(), {qid})
        self.assertEqual(d.messages('alice'), [], 'a notice was sent')

        self.dovecot.start()
        self.assertEqual(d.ctl('flush').returncode, 0)
        stored = self.wait_maildir('bob', 1)
        self.assert_stored(stored[0], sent, 'bob@dove.test', qid)
        d.wait_queue_empty()
        self.assertEqual(len(self.dovecot.maildir_messages('bob')), 1)

    # -- deliver_smtp's transport table

    def test_transport_table(self):
        table = {'module': 'deliver_smtp',
                 'transport': {'tt.test':
                               'lmtp:unix:' + self.dovecot.socket}}
        d = self.mta(extra=[table])
        sent = make_message('table@e2e.test', subject='table', body=BODY,
                            sender=SENDER, to='bob@tt.test')
        with smtp(d.port()) as s:
            qid = send_mail(s, SENDER, ['bob@tt.test'], sent)
        stored = self.wait_maildir('bob', 1)
        self.assert_stored(stored[0], sent, 'bob@tt.test', qid)
        d.wait_queue_empty()
        self.assertRegex(d.log_text(),
                         r'%s: to=<bob@tt.test> relay=%s .*status=sent'
                         % (qid, re.escape(self.dovecot.socket)))


if __name__ == '__main__':
    harness.main()
