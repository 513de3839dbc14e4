"""The core's recipient_delimiter through the real daemon: user+ext@ is
found as user by relay_access (a local recipient from an untrusted
client; its access entries), virtual, alias (the extension given on to
the target) and store_mbox, an exact entry for user+ext winning each
time; without the setting user+ext is a name of its own. store_maildir
files user+lists into the Maildir++ folder .lists, which a real Dovecot
(tests/e2e/dovecot.py) lists as "lists" over IMAP; a hostile extension
lands in INBOX."""

import glob
import imaplib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from dovecot import Dovecot, PASSWORD, NOBODY  # noqa: E402
from harness import make_message, send_mail, smtp  # noqa: E402

ACCESS = ('To:blocked@localhost REJECT\n'
          'To:blocked+ok@localhost OK\n')
VIRTUAL = ('virt.test virtual\n'
           'sales@virt.test team@localhost\n')
ALIASES = ('team: carol\n'
           'bob+exact: carol\n'
           'blocked: carol\n')
USERS = ['bob', 'carol', 'blocked', 'bob+own']


class Delimiter(harness.TestCase):

    def start(self, delimiter='+'):
        files = {}
        for name, text in (('access', ACCESS), ('virtual', VIRTUAL),
                           ('aliases', ALIASES)):
            files[name] = os.path.join(self.tmp, name)
            with open(files[name], 'w') as f:
                f.write(text)
        over = {'modules': [
            # 127.0.0.1 (every client here) is not trusted: only what is
            # received here passes
            {'module': 'relay_access', 'mynetworks': ['127.0.5.0/24'],
             'access': 'file:' + files['access']},
            {'module': 'virtual', 'map': 'file:' + files['virtual']},
            {'module': 'alias', 'map': 'aliases:' + files['aliases'],
             'propagate_extension': True},
            {'module': 'store_mbox', 'users': USERS}]}
        if delimiter is not None:
            over['recipient_delimiter'] = delimiter
        d = self.daemon(start=False, **over)
        d.overrides['modules'][3]['directory'] = d.maildir
        return d.start()

    def deliver(self, d, rcpts, msgid):
        with smtp(d.port()) as s:
            send_mail(s, 'sender@localhost', rcpts, make_message(msgid))
        d.wait_queue_empty()

    def boxes(self, d):
        return {u: len(d.messages(u)) for u in os.listdir(d.maildir)
                if not u.startswith('.') and not u.endswith('.lock')}

    def test_found_without_extension(self):
        d = self.start()
        for rcpt in ('bob+lists@localhost', 'sales+x@virt.test',
                     'team+y@localhost', 'blocked+ok@localhost'):
            self.assertReply(self.rcpt_reply(d, rcpt), 250, msg=rcpt)
        self.assertReply(self.rcpt_reply(d, 'nobody+x@localhost'), 550,
                         '5.1.1')
        self.assertReply(self.rcpt_reply(d, 'someone+x@virt.test'), 550,
                         '5.1.1')
        # relay_access's "To:blocked@" entry covers blocked+x@
        self.assertEqual(self.rcpt_reply(d, 'blocked+x@localhost')[0] // 100,
                         5)
        self.deliver(d, ['bob+lists@localhost', 'sales+x@virt.test',
                         'team+y@localhost'], 'ext@e2e')
        self.assertEqual(self.boxes(d), {'bob': 1, 'carol': 2})
        bob = d.messages('bob')[0]
        self.assertEqual(harness.header(bob, 'Delivered-To'),
                         ['bob+lists@localhost'])
        # alias and virtual gave the extension on to their targets
        self.assertEqual(sorted(harness.header(m, 'Delivered-To')[0]
                                for m in d.messages('carol')),
                         ['carol+x@localhost', 'carol+y@localhost'])

    def test_quoted_local_part_not_cut(self):
        # relay_access sees "blocked+a b" (quoted) and alias the unquoted
        # local part: neither cuts it, so the alias of blocked (whose
        # REJECT covers blocked+x@) is not reached round the rule
        d = self.start()
        for rcpt in ('"blocked+a b"@localhost', '"blocked+a@b"@localhost'):
            self.assertEqual(self.rcpt_reply(d, rcpt)[0] // 100, 5,
                             msg=rcpt)

    def test_exact_entry_wins(self):
        d = self.start()
        # alias bob+exact, user bob+own: as themselves, not as bob
        self.deliver(d, ['bob+exact@localhost', 'bob+own@localhost',
                         'bob+other@localhost'], 'exact@e2e')
        self.assertEqual(self.boxes(d), {'carol': 1, 'bob+own': 1,
                                         'bob': 1})

    def test_no_delimiter(self):
        d = self.start(delimiter=None)
        self.assertReply(self.rcpt_reply(d, 'bob+lists@localhost'), 550,
                         '5.1.1')
        self.assertReply(self.rcpt_reply(d, 'bob+own@localhost'), 250)


class MaildirFolders(harness.TestCase):

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
        self.dovecot = Dovecot(
            os.path.join(self.tmp, 'dc'),
            {'bob': os.path.join(self.vmail, 'bob')},
            imap_port=self.imap_port,
            mail_location='maildir:%s/%%n' % self.vmail,
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
        entry = {'module': 'store_maildir', 'directory': self.vmail,
                 'owner': 'nobody'}
        entry.update(extra)
        return self.daemon(start=False, recipient_delimiter='+-',
                           modules=[entry]).start()

    def count(self, *parts):
        return len(glob.glob(os.path.join(self.vmail, 'bob', *parts)))

    def test_extension_folder_read_by_dovecot(self):
        d = self.mta()
        with smtp(d.port()) as s:
            send_mail(s, 'alice@localhost',
                      ['bob+lists@localhost', 'bob+x/y@localhost',
                       'bob+.hidden@localhost'],
                      make_message('f1@e2e.test'))
            send_mail(s, 'alice@localhost', ['bob-Lists@localhost'],
                      make_message('f2@e2e.test'))
        harness.wait_for(lambda: self.count('.lists', 'new', '*') == 2 and
                         self.count('new', '*') == 2,
                         what='2 messages in .lists, 2 in INBOX')
        d.wait_queue_empty()
        folder = os.path.join(self.vmail, 'bob', '.lists')
        self.assertEqual(os.stat(folder).st_uid, NOBODY)
        self.assertTrue(os.path.isfile(os.path.join(folder,
                                                    'maildirfolder')))
        # the hostile extensions made nothing but INBOX mail
        self.assertEqual(sorted(os.listdir(os.path.join(self.vmail, 'bob'))),
                         ['.lists', 'cur', 'new', 'tmp'])

        c = imaplib.IMAP4('127.0.0.1', self.imap_port, timeout=30)
        try:
            c.login('bob', PASSWORD)
            typ, data = c.list()
            self.assertEqual(typ, 'OK', data)
            names = [line.rsplit(b' ', 1)[-1].strip(b'"') for line in data]
            self.assertIn(b'lists', names)
            typ, data = c.select('lists')
            self.assertEqual((typ, data[0]), ('OK', b'2'))
            typ, data = c.fetch('1:2', '(BODY.PEEK[HEADER.FIELDS '
                                '(DELIVERED-TO MESSAGE-ID)])')
            self.assertEqual(typ, 'OK', data)
            heads = b''.join(d[1] for d in data if isinstance(d, tuple))
            self.assertIn(b'Delivered-To: bob+lists@localhost', heads)
            self.assertIn(b'Delivered-To: bob-Lists@localhost', heads)
            typ, data = c.select('INBOX')
            self.assertEqual((typ, data[0]), ('OK', b'2'))
        finally:
            c.logout()

    def test_existing_folder_any_case(self):
        # a folder made over IMAP as "Spam" takes bob+spam; bob+INBOX is
        # the INBOX, never a folder of its own
        d = self.mta()
        with smtp(d.port()) as s:
            send_mail(s, 'alice@localhost', ['bob@localhost'],
                      make_message('c0@e2e.test'))
        harness.wait_for(lambda: self.count('new', '*') == 1,
                         what='the Maildir made')
        c = imaplib.IMAP4('127.0.0.1', self.imap_port, timeout=30)
        try:
            c.login('bob', PASSWORD)
            self.assertEqual(c.create('Spam')[0], 'OK')
            with smtp(d.port()) as s:
                send_mail(s, 'alice@localhost',
                          ['bob+spam@localhost', 'bob+INBOX@localhost'],
                          make_message('c1@e2e.test'))
            harness.wait_for(lambda: self.count('.Spam', 'new', '*') == 1
                             and self.count('new', '*') == 2,
                             what='one in Spam, two in INBOX')
            d.wait_queue_empty()
            self.assertEqual(self.count('.spam'), 0)
            self.assertEqual(self.count('.inbox'), 0)
            typ, data = c.select('Spam')
            self.assertEqual((typ, data[0]), ('OK', b'1'))
        finally:
            c.logout()

    def test_extension_folders_off(self):
        d = self.mta(extension_folders=False)
        with smtp(d.port()) as s:
            send_mail(s, 'alice@localhost', ['bob+lists@localhost'],
                      make_message('off@e2e.test'))
        harness.wait_for(lambda: self.count('new', '*') == 1,
                         what='the message in INBOX')
        d.wait_queue_empty()
        self.assertEqual(self.count('.lists'), 0)


if __name__ == '__main__':
    harness.main()
