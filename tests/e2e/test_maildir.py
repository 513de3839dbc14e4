"""store_maildir end to end, read by a real Dovecot (dovecot-imapd,
dovecot-pop3d; tests/e2e/dovecot.py) started by the test on loopback
ports with mail_location pointing at modmta's Maildirs: messages sent
with smtplib come back over IMAP (imaplib) and POP3 (poplib) byte for
byte after the headers modmta adds, with the sizes in their file names
right; the Maildirs belong to the "owner" account Dovecot reads them as.
Maildir++ quota shared with Dovecot's own: Dovecot's IMAP QUOTA reports
what modmta counted, a full mailbox is refused at RCPT with 552 5.2.2,
Dovecot's expunge makes room again, a message that does not fit is
bounced (552 5.2.2 in the DSN); two deliveries rebuilding maildirsize at
once (one rename held back by faultinject.c) are both counted, once. A
crash (SIGKILL) right after a message is linked into new/: after the
restart it is there exactly once."""

import glob
import imaplib
import os
import poplib
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from dovecot import Dovecot, PASSWORD, NOBODY  # noqa: E402
from harness import fault_env, make_message, send_mail, smtp  # noqa: E402

SENDER = 'alice@localhost'
QUOTA_RULE = '*:bytes=1M:messages=3'        # Dovecot's, the same as ours
BODY = ('a body line\r\n'
        '.a line that starts with a dot\r\n'
        'From the start of a line\r\n'
        '\r\n'
        'last line\r\n')


class Maildir(harness.TestCase):

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest('needs root (Maildirs owned by nobody, Dovecot)')
        os.chmod(self.tmp, 0o755)       # Dovecot reads as "nobody"
        self.vmail = os.path.join(self.tmp, 'vmail')
        os.mkdir(self.vmail)
        os.chmod(self.vmail, 0o755)     # the daemon's umask is 077
        resolv = os.path.join(self.tmp, 'dovecot-resolv.conf')
        harness.write_resolv(resolv)
        self.imap_port = harness.free_port()
        self.pop3_port = harness.free_port()
        self.dovecot = Dovecot(
            os.path.join(self.tmp, 'dc'),
            {u: os.path.join(self.vmail, u) for u in ('bob', 'carol')},
            imap_port=self.imap_port, pop3_port=self.pop3_port,
            mail_location='maildir:%s/%%n' % self.vmail, quota=QUOTA_RULE,
            wrap=lambda argv: harness.loopback_dns_argv(resolv, argv))
        self.dovecot.start()

    def tearDown(self):
        if hasattr(self, 'dovecot'):
            self.dovecot.stop()
            if self._failed():
                sys.stderr.write('\n----- dovecot log -----\n%s\n'
                                 % self.dovecot.log())
        super().tearDown()

    def mta(self, **extra):
        d = self.daemon(start=False)
        entry = {'module': 'store_maildir', 'directory': self.vmail,
                 'owner': 'nobody', 'quota': '1M', 'quota_messages': 3}
        entry.update(extra)
        d.overrides['modules'] = [entry]
        return d

    def files(self, user, subs=('new', 'cur')):
        out = []
        for sub in subs:
            out += glob.glob(os.path.join(self.vmail, user, sub, '*'))
        return sorted(out)

    def wait_files(self, user, n):
        return harness.wait_for(
            lambda: (lambda f: f if len(f) >= n else None)(
                self.files(user)),
            what='%d message(s) in %s\'s Maildir' % (n, user))

    def imap(self, user):
        c = imaplib.IMAP4('127.0.0.1', self.imap_port, timeout=30)
        c.login(user, PASSWORD)
        return c

    def quota(self, c):
        """{resource: (used, limit)} of the INBOX's quota root."""
        typ, data = c.getquotaroot('INBOX')
        self.assertEqual(typ, 'OK', data)
        text = b' '.join(d for d in data[1] if d).decode()
        return {m.group(1): (int(m.group(2)), int(m.group(3)))
                for m in re.finditer(r'(\w+) (\d+) (\d+)', text)}

    def test_read_by_imap_and_pop3(self):
        d = self.mta().start()
        sent = [make_message('m%d@e2e.test' % i, body=BODY,
                             subject='maildir %d' % i, sender=SENDER)
                for i in range(2)]
        with smtp(d.port()) as s:
            for msg in sent:
                send_mail(s, SENDER, ['bob@localhost'], msg)
        files = self.wait_files('bob', 2)
        d.wait_queue_empty()
        sizes = {}
        for path in files:
            st = os.stat(path)
            self.assertEqual(st.st_uid, NOBODY, path)
            self.assertEqual(st.st_mode & 0o777, 0o600, path)
            m = re.search(r',S=(\d+),W=(\d+)', os.path.basename(path))
            self.assertIsNotNone(m, path)
            self.assertEqual(int(m.group(1)), st.st_size)
            sizes[int(m.group(2))] = path
        self.assertEqual(os.stat(os.path.join(self.vmail, 'bob')).st_uid,
                         NOBODY)

        c = self.imap('bob')
        try:
            typ, data = c.select('INBOX')
            self.assertEqual((typ, data[0]), ('OK', b'2'))
            fetched = []
            for i in (1, 2):
                typ, data = c.fetch(str(i), '(RFC822.SIZE BODY.PEEK[])')
                self.assertEqual(typ, 'OK', data)
                meta, raw = data[0]
                fetched.append(raw)
                size = int(re.search(rb'RFC822.SIZE (\d+)', meta).group(1))
                self.assertEqual(size, len(raw))
                self.assertIn(size, sizes)     # W= is the size with CRLF
            quota = self.quota(c)
        finally:
            c.logout()
        # Deliveries run in parallel: the mailbox order is not the order
        # the messages were sent in (no promise), so match each to its own.
        self.assertEqual(sorted(sum(raw.endswith(m) for raw in fetched)
                                for m in sent), [1, 1], 'not the messages sent')
        for raw in fetched:
            self.assertTrue(raw.startswith(b'Return-Path: <%s>\r\n'
                                           % SENDER.encode()), raw[:200])
            head = raw.split(b'\r\n\r\n', 1)[0]
            self.assertIn(b'\r\nDelivered-To: bob@localhost\r\n', head)
            self.assertIn(b'\r\nX-Original-To: bob@localhost\r\n', head)
            self.assertIn(b'\r\nReceived: ', head)
        # Dovecot counts what modmta counted in maildirsize
        self.assertEqual(quota['MESSAGE'], (2, 3))

        p = poplib.POP3('127.0.0.1', self.pop3_port, timeout=30)
        try:
            p.user('bob')
            p.pass_(PASSWORD)
            self.assertEqual(p.stat()[0], 2)
            for i, raw in enumerate(fetched, 1):
                _, lines, _ = p.retr(i)
                self.assertEqual(b'\r\n'.join(lines) + b'\r\n', raw)
        finally:
            p.quit()

    def test_quota_with_dovecot(self):
        d = self.mta(quotas={'dave': 'bytes=2000'}).start()
        with smtp(d.port()) as s:
            for i in range(3):
                send_mail(s, SENDER, ['carol@localhost'],
                          make_message('q%d@e2e.test' % i, sender=SENDER))
        self.wait_files('carol', 3)
        d.wait_queue_empty()
        size = open(os.path.join(self.vmail, 'carol', 'maildirsize')).read()
        self.assertTrue(size.startswith('1048576S,3C\n'), size)
        # known full: refused at RCPT
        self.assertReply(self.rcpt_reply(d, 'carol@localhost'), 552, '5.2.2')
        self.assertReply(self.rcpt_reply(d, 'bob@localhost'), 250)

        c = self.imap('carol')
        try:
            c.select('INBOX')
            self.assertEqual(self.quota(c)['MESSAGE'], (3, 3))
            c.store('1', '+FLAGS', '\\Deleted')
            c.expunge()
            self.assertEqual(self.quota(c)['MESSAGE'], (2, 3))
        finally:
            c.logout()
        # Dovecot wrote its change into maildirsize: room again
        self.assertReply(self.rcpt_reply(d, 'carol@localhost'), 250)
        with smtp(d.port()) as s:
            send_mail(s, SENDER, ['carol@localhost'],
                      make_message('q3@e2e.test', sender=SENDER))
        harness.wait_for(lambda: any('q3@e2e.test' in open(f).read()
                                     for f in self.files('carol')),
                         what='the fourth message')
        self.assertEqual(len(self.files('carol')), 3)

        # not known full, but the message does not fit: bounced
        big = make_message('big@e2e.test', body='x' * 3000, sender=SENDER)
        with smtp(d.port()) as s:
            send_mail(s, SENDER, ['dave@localhost'], big)
        dsn = harness.wait_for(
            lambda: [open(f, 'rb').read() for f in self.files('alice')],
            what='a DSN to the sender')[0]
        self.assertIn(b'5.2.2', dsn)
        self.assertIn(b'dave@localhost', dsn)
        self.assertEqual(self.files('dave'), [])
        self.assertEqual(self.files('dave', ('tmp',)), [])

    def test_quota_rebuild_racing_a_delivery(self):
        """Two deliveries into one Maildir without a maildirsize: both
        rebuild it, the first one's rename held back a second (a fault
        rule); the second waits for the Maildir's lock until that rename
        is done. No count line may be lost (a file renamed over it) or
        counted twice."""
        d = self.mta()
        d.env = fault_env(['rename:/carol/maildirsize$:0:1:delay'])
        d.start()
        with smtp(d.port()) as s:
            for i in range(2):
                send_mail(s, SENDER, ['carol@localhost'],
                          make_message('r%d@e2e.test' % i, sender=SENDER))
        files = self.wait_files('carol', 2)
        d.wait_queue_empty()
        self.assertIn('faultinject: rename', d.log_text())
        self.assertNotIn("counted without the Maildir's lock", d.log_text())
        lines = open(os.path.join(self.vmail, 'carol',
                                  'maildirsize')).read().splitlines()
        used = [sum(int(v) for v in col)
                for col in zip(*(ln.split() for ln in lines[1:]))]
        self.assertEqual(used, [sum(os.stat(f).st_size for f in files), 2],
                         lines)

    def test_kill_right_after_link(self):
        d = self.mta()
        os.environ['LD_PRELOAD'] = os.environ['KILL_AFTER_LINK']
        asan = os.environ.get('ASAN_OPTIONS')
        # the shim is not built with ASan: let an ASan daemon load it
        os.environ['ASAN_OPTIONS'] = (asan + ':' if asan else '') + (
            'verify_asan_link_order=0')
        try:
            d.start()
        finally:
            del os.environ['LD_PRELOAD']
            if asan is None:
                del os.environ['ASAN_OPTIONS']
            else:
                os.environ['ASAN_OPTIONS'] = asan
        msg = make_message('once@e2e.test', body=BODY, sender=SENDER)
        with smtp(d.port()) as s:
            send_mail(s, SENDER, ['bob@localhost'], msg)
        harness.wait_for(lambda: not d.running(), what='the crash')
        d.kill()
        self.assertEqual(len(self.files('bob')), 1)
        d.start(keep_ports=True)
        d.wait_queue_empty()
        self.assertIn('duplicate maildir=', d.log_text())
        self.assertEqual(len(self.files('bob')), 1)
        self.assertEqual(self.files('bob', ('tmp',)), [])
        c = self.imap('bob')
        try:
            typ, data = c.select('INBOX')
            self.assertEqual((typ, data[0]), ('OK', b'1'))
        finally:
            c.logout()


if __name__ == '__main__':
    harness.main()
