"""The milter action set at on_data, through the real daemon: header add,
change and delete, recipient add and remove, sender change, quarantine.

The actions come from the test module core/tests/modules/script.c (its
"milter" key, chosen by the envelope sender), loaded from TEST_MODULE_DIR
ahead of store_mbox. Everything is checked in the real mailboxes and with
modmtactl."""

import os
import re

import harness
from harness import header, headers_of, send_mail, smtp

TEST_MODULE_DIR = os.environ.get('TEST_MODULE_DIR', '')

# As the daemon writes it (core/smtp_data.c), LF line ends once in mbox:
# two recipients at DATA, so no "for <...>" line.
RECEIVED_RE = (rb'Received: from client\.test \(\S+ \[127\.0\.0\.1\]\)\n'
               rb'\tby mx\.e2e\.test \(modmta\) with ESMTP id %s; '
               rb'[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} '
               rb'\d\d:\d\d:\d\d [+-]\d{4}\n')

ACTIONS = {
    'add_header': [['X-Milter-Added', 'yes'],
                   ['X-Milter-Folded', 'first\r\n\tsecond']],
    'change_header': [['subject', 0, 'changed by milter'],
                      ['X-Twice', 1, 'second changed']],
    'delete_header': [['X-Delete-Me', 0]],
    'add_rcpt': ['carol@localhost'],
    'remove_rcpt': ['dave@localhost'],
    'sender': 'changed@localhost',
}


def message(msgid, extra=''):
    return ('From: <alice@localhost>\r\n'
            'To: <bob@localhost>, <dave@localhost>\r\n'
            'Subject: original subject\r\n'
            'X-Delete-Me: secret\r\n'
            'X-Twice: first\r\n'
            'X-Twice: second\r\n'
            '%s'
            'Message-ID: <%s>\r\n'
            'Date: Mon, 24 Nov 2025 12:00:00 +0000\r\n'
            '\r\n'
            'body line one\r\n'
            'body line two\r\n' % (extra, msgid)).encode()


def raw_headers(msg):
    """The header lines of a stored message (bytes), without its From
    line and with LF line ends."""
    _, _, rest = msg.partition(b'\n')
    head, _, _ = rest.partition(b'\n\n')
    return head + b'\n'


class Milter(harness.TestCase):

    def milter_daemon(self, milter):
        if not TEST_MODULE_DIR:
            self.fail('set TEST_MODULE_DIR (meson test does)')
        d = self.daemon(start=False,
                        queue={'retry_min': 3600, 'retry_max': 3600})
        d.overrides['module_path'] = [harness.MODULE_DIR, TEST_MODULE_DIR]
        d.overrides['modules'] = [
            {'module': 'script', 'name': 'milter', 'milter': milter},
            {'module': 'store_mbox', 'directory': d.maildir,
             'users': 'any'},
        ]
        return d.start()

    def ctl_ok(self, d, *args):
        r = d.ctl(*args)
        self.assertEqual(r.returncode, 0, '%s: %s%s'
                         % (' '.join(args), r.stdout, r.stderr))
        return r.stdout

    def test_header_and_envelope_actions(self):
        d = self.milter_daemon({'alice@localhost': ACTIONS})
        with smtp(d.port()) as s:
            qid = send_mail(s, 'alice@localhost',
                            ['bob@localhost', 'dave@localhost'],
                            message('actions@e2e.test'))
        d.wait_messages('bob', 1)
        d.wait_messages('carol', 1)
        d.wait_queue_empty()

        # the removed recipient got nothing, the others one copy each
        self.assertEqual(d.messages('dave'), [],
                         'removed recipient dave got a copy')
        for user in ('bob', 'carol'):
            msgs = d.messages(user)
            self.assertEqual(len(msgs), 1, '%s: %d copies'
                             % (user, len(msgs)))
            self.check_edited(msgs[0], qid, user)

    def check_edited(self, m, qid, user):
        from_line, hdrs, body = headers_of(m)
        names = [n.lower() for n, _ in hdrs]
        # the changed sender, in the envelope the mailbox records
        self.assertRegex(from_line, r'^From changed@localhost ', user)
        self.assertEqual(header(m, 'Return-Path'), ['<changed@localhost>'],
                         user)
        self.assertEqual(header(m, 'Delivered-To'), ['%s@localhost' % user])
        # the Received header is the first of the message's own, intact
        own = [n for n in names
               if n not in ('return-path', 'x-original-to', 'delivered-to')]
        self.assertEqual(own[0], 'received', '%s: headers %r' % (user, own))
        self.assertEqual(names.count('received'), 1)
        raw = raw_headers(m)
        rcvd = re.search(rb'^Received:.*\n(?:[ \t].*\n)*', raw, re.M)
        self.assertIsNotNone(rcvd)
        self.assertRegex(rcvd.group(0),
                         RECEIVED_RE % re.escape(qid.encode()),
                         '%s: Received changed' % user)
        # header actions
        self.assertEqual(header(m, 'X-Milter-Added'), ['yes'])
        self.assertIn(b'\nX-Milter-Folded: first\n\tsecond\n', raw)
        self.assertEqual(header(m, 'Subject'), ['changed by milter'])
        self.assertNotIn(b'original subject', m)
        self.assertEqual(header(m, 'X-Delete-Me'), [])
        self.assertNotIn(b'secret', m)
        self.assertEqual(header(m, 'X-Twice'), ['first', 'second changed'])
        # untouched headers keep their place and bytes
        self.assertIn(b'\nFrom: <alice@localhost>\n'
                      b'To: <bob@localhost>, <dave@localhost>\n'
                      b'Subject: changed by milter\n'
                      b'X-Twice: first\nX-Twice: second changed\n'
                      b'Message-ID: <actions@e2e.test>\n'
                      b'Date: Mon, 24 Nov 2025 12:00:00 +0000\n'
                      b'X-Milter-Added: yes\n', raw)
        # mbox ends each message with an empty line
        self.assertEqual(body.rstrip(b'\n'), b'body line one\nbody line two')

    def test_no_actions_leaves_message_alone(self):
        """A sender with no entry: nothing changed (control for the
        test above)."""
        d = self.milter_daemon({'alice@localhost': ACTIONS})
        with smtp(d.port()) as s:
            qid = send_mail(s, 'other@localhost',
                            ['bob@localhost', 'dave@localhost'],
                            message('plain@e2e.test'))
        d.wait_messages('bob', 1)
        d.wait_messages('dave', 1)
        d.wait_queue_empty()
        self.assertEqual(d.messages('carol'), [])
        m = d.messages('bob')[0]
        self.assertEqual(header(m, 'Return-Path'), ['<other@localhost>'])
        self.assertEqual(header(m, 'Subject'), ['original subject'])
        self.assertEqual(header(m, 'X-Delete-Me'), ['secret'])
        self.assertEqual(header(m, 'X-Milter-Added'), [])
        # after the mailbox's Return-Path, X-Original-To, Delivered-To
        self.assertRegex(raw_headers(m).split(b'\n', 3)[3],
                         b'^' + RECEIVED_RE % re.escape(qid.encode()))

    def test_same_length_change(self):
        """A change that keeps the header block's length (the spool file
        is rewritten in place rather than replaced)."""
        d = self.milter_daemon({'alice@localhost': {
            'change_header': [['Subject', 0, 'ORIGINAL SUBJECT']]}})
        with smtp(d.port()) as s:
            send_mail(s, 'alice@localhost', ['bob@localhost'],
                      message('same@e2e.test'))
        m = d.wait_messages('bob', 1)[0]
        self.assertEqual(header(m, 'Subject'), ['ORIGINAL SUBJECT'])
        self.assertEqual(header(m, 'X-Delete-Me'), ['secret'])
        self.assertEqual(headers_of(m)[2].rstrip(b'\n'),
                         b'body line one\nbody line two')

    def test_quarantine_then_release(self):
        d = self.milter_daemon({
            'quar@localhost': {'quarantine': 'e2e says hold it'},
        })
        with smtp(d.port()) as s:
            qid = send_mail(s, 'quar@localhost', ['bob@localhost'],
                            harness.make_message('quar@e2e.test',
                                                 sender='quar@localhost'))
        self.assertIn(qid, d.queue_ids())
        listing = self.ctl_ok(d, 'queue')
        self.assertIn(qid, listing)
        self.assertIn('quarantined: e2e says hold it', listing)
        self.assertIn('bob@localhost', listing)
        self.ctl_ok(d, 'flush')

        # a message sent after it is delivered; the quarantined one stays
        with smtp(d.port()) as s:
            send_mail(s, 'plain@localhost', ['bob@localhost'],
                      harness.make_message('plain@e2e.test',
                                           sender='plain@localhost'))
        harness.wait_for(lambda: d.queue_ids() == {qid},
                         what='only %s left in the queue' % qid)
        msgs = d.wait_messages('bob', 1)
        self.assertEqual(len(msgs), 1)
        self.assertEqual(header(msgs[0], 'Message-ID'), ['<plain@e2e.test>'])
        self.assertIn(qid, self.ctl_ok(d, 'queue'))

        # release delivers it
        self.ctl_ok(d, 'release', qid)
        msgs = d.wait_messages('bob', 2)
        d.wait_queue_empty()
        msgs = d.messages('bob')
        self.assertEqual(len(msgs), 2)
        self.assertEqual(header(msgs[1], 'Message-ID'), ['<quar@e2e.test>'])
        self.assertEqual(header(msgs[1], 'Return-Path'),
                         ['<quar@localhost>'])
        self.assertNotIn(qid, self.ctl_ok(d, 'queue'))

    def test_quarantine_survives_restart(self):
        d = self.milter_daemon({'quar@localhost': {'quarantine': 'kept'}})
        with smtp(d.port()) as s:
            qid = send_mail(s, 'quar@localhost', ['bob@localhost'],
                            harness.make_message('quar2@e2e.test'))
        self.assertEqual(d.stop(), 0)
        d.start()
        self.assertIn('quarantined: kept', self.ctl_ok(d, 'queue'))
        with smtp(d.port()) as s:
            send_mail(s, 'plain@localhost', ['bob@localhost'],
                      harness.make_message('plain2@e2e.test'))
        harness.wait_for(lambda: d.queue_ids() == {qid},
                         what='only %s left in the queue' % qid)
        msgs = d.wait_messages('bob', 1)
        self.assertEqual([header(m, 'Message-ID') for m in msgs],
                         [['<plain2@e2e.test>']])
        self.ctl_ok(d, 'release', qid)
        d.wait_messages('bob', 2)
        d.wait_queue_empty()

    def test_null_sender_and_only_rcpt_replaced(self):
        """The sender set to <>, the only recipient removed and another
        added in its place."""
        d = self.milter_daemon({'alice@localhost': {
            'sender': '', 'remove_rcpt': ['BOB@localhost'],
            'add_rcpt': ['carol@localhost']}})
        with smtp(d.port()) as s:
            send_mail(s, 'alice@localhost', ['bob@localhost'],
                      harness.make_message('null@e2e.test'))
        m = d.wait_messages('carol', 1)[0]
        d.wait_queue_empty()
        self.assertEqual(d.messages('bob'), [])
        self.assertEqual(header(m, 'Return-Path'), ['<>'])
        self.assertEqual(header(m, 'Message-ID'), ['<null@e2e.test>'])

    def test_failed_action_tempfails(self):
        """An action the SDK refuses (header injection) reaches the client
        as the module's 451, and nothing is queued."""
        evil = [['X-Evil', 'a\r\nX-Injected: 1']]
        d = self.milter_daemon({'bad@localhost': {'add_header': evil}})
        with smtp(d.port()) as s:
            s.ehlo()
            self.assertEqual(s.mail('bad@localhost')[0], 250)
            self.assertEqual(s.rcpt('bob@localhost')[0], 250)
            code, text = s.data(harness.make_message('bad@e2e.test'))
        self.assertEqual(code, 451, text)
        self.assertIn(b'add_header', text)
        self.assertEqual(d.queue_ids(), set())
        self.assertEqual(d.messages('bob'), [])


if __name__ == '__main__':
    harness.main()
