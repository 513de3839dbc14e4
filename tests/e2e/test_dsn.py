"""Delivery status notifications (RFC 3461, RFC 3464) through the real
daemon, with python's smtplib (mail_options / rcpt_options) and swaks:
a success notice for NOTIFY=SUCCESS, silence for NOTIFY=NEVER, a bounce
returning the whole message for RET=FULL, one delay warning while
delivery keeps deferring, and the hop count. Every report is read back
from the sender's mailbox and parsed with python's email package.

Recipients that fail or defer at delivery come from the test module
core/tests/modules/script.c (its "deliver" key), loaded from
TEST_MODULE_DIR ahead of store_mbox, which delivers everything else
(the reports to the sender included)."""

import email
import os
import re
from email import policy

import harness
from harness import smtp, swaks

TEST_MODULE_DIR = os.environ.get('TEST_MODULE_DIR', '')
SENDER = 'alice@localhost'


def message(msgid, subject='dsn', body='the body text\r\n', extra=''):
    return ('From: Alice <alice@localhost>\r\nTo: someone\r\n%s'
            'Subject: %s\r\nMessage-ID: <%s>\r\n\r\n%s'
            % (extra, subject, msgid, body)).encode()


def transaction(s, rcpts, msg, mail_options=(), sender=SENDER):
    """One transaction: rcpts is [(address, [RCPT parameters])]."""
    s.ehlo_or_helo_if_needed()
    code, text = s.mail(sender, list(mail_options))
    if code != 250:
        raise AssertionError('MAIL: %d %r' % (code, text))
    for addr, options in rcpts:
        code, text = s.rcpt(addr, list(options))
        if code != 250:
            raise AssertionError('RCPT %s: %d %r' % (addr, code, text))
    code, text = s.data(msg)
    if code != 250:
        raise AssertionError('DATA: %d %r' % (code, text))
    return harness.QUEUED_RE.search(text.decode()).group(1)


def parse(stored):
    """A stored mbox message as an email.message.Message."""
    _, _, rest = stored.partition(b'\n')
    return email.message_from_bytes(rest, policy=policy.compat32)


class Report:
    """The parts of an RFC 3464 report."""

    def __init__(self, test, stored):
        self.raw = stored
        self.msg = parse(stored)
        test.assertEqual(self.msg.get_content_type(), 'multipart/report')
        test.assertEqual(self.msg.get_param('report-type'),
                         'delivery-status')
        test.assertEqual(self.msg['Return-Path'], '<>')
        test.assertEqual(self.msg['To'], '<%s>' % SENDER)
        parts = self.msg.get_payload()
        test.assertEqual(len(parts), 3)
        self.text, status, self.orig = parts
        test.assertEqual(self.text.get_content_type(), 'text/plain')
        test.assertEqual(status.get_content_type(),
                         'message/delivery-status')
        blocks = status.get_payload()
        self.per_message = blocks[0]
        self.rcpts = {b['Final-Recipient'].split(';', 1)[1].strip(): b
                      for b in blocks[1:]}
        test.assertEqual(len(self.rcpts), len(blocks) - 1)

    @property
    def subject(self):
        return self.msg['Subject']


class Dsn(harness.TestCase):

    def dsn_daemon(self, deliver=None, queue=None):
        if not TEST_MODULE_DIR:
            self.fail('set TEST_MODULE_DIR (meson test does)')
        d = self.daemon(start=False, queue=queue or {'retry_min': 3600,
                                                     'retry_max': 3600})
        d.overrides['module_path'] = [harness.MODULE_DIR, TEST_MODULE_DIR]
        d.overrides['modules'] = [
            {'module': 'script', 'name': 'outcomes',
             'deliver': deliver or {}},
            {'module': 'store_mbox', 'directory': d.maildir,
             'users': 'any'},
        ]
        return d.start()

    def reports(self, d, n):
        """Wait for n reports in the sender's mailbox, then for the
        queue to drain; exactly n there."""
        d.wait_messages('alice', n)
        d.wait_queue_empty()
        msgs = d.messages('alice')
        self.assertEqual(len(msgs), n, [parse(m)['Subject'] for m in msgs])
        return [Report(self, m) for m in msgs]

    def test_success_notice_for_local_delivery(self):
        d = self.dsn_daemon()
        with smtp(d.port()) as s:
            s.ehlo()
            self.assertTrue(s.has_extn('dsn'))
            transaction(s, [('bob@localhost',
                             ['NOTIFY=SUCCESS,FAILURE',
                              'ORCPT=rfc822;bob+2Bold@example.org']),
                            ('carol@localhost', [])],
                        message('s1@e2e.test', 'tell me'),
                        ['RET=HDRS', 'ENVID=QQ314159+2Bs1'])
        d.wait_messages('bob', 1)
        d.wait_messages('carol', 1)
        [r] = self.reports(d, 1)
        self.assertEqual(r.subject, 'Successful Mail Delivery Report')
        self.assertEqual(r.msg['From'],
                         'MAILER-DAEMON@mx.e2e.test (Mail Delivery System)')
        self.assertEqual(r.per_message['Original-Envelope-Id'],
                         'QQ314159+2Bs1')
        self.assertEqual(r.per_message['Reporting-MTA'], 'dns; mx.e2e.test')
        self.assertEqual(r.per_message['Received-From-MTA'],
                         'dns; client.test')
        self.assertIsNotNone(r.per_message['Arrival-Date'])
        # only bob asked; carol was delivered without a word
        self.assertEqual(list(r.rcpts), ['bob@localhost'])
        bob = r.rcpts['bob@localhost']
        self.assertEqual(bob['Action'], 'delivered')
        self.assertEqual(bob['Status'], '2.0.0')
        self.assertEqual(bob['Original-Recipient'],
                         'rfc822; bob+old@example.org')
        self.assertIn('<bob@localhost>', r.text.get_payload())
        self.assertEqual(r.orig.get_content_type(), 'text/rfc822-headers')
        self.assertIn('Subject: tell me', r.orig.get_payload())
        self.assertNotIn('the body text', r.orig.get_payload())

        # the same delivery without NOTIFY, sent by swaks: no notice
        p = swaks(d, '--from', SENDER, '--to', 'bob@localhost',
                  '--header', 'Subject: quiet')
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        d.wait_messages('bob', 2)
        self.reports(d, 1)

    def test_never_is_silent(self):
        d = self.dsn_daemon({'gone@localhost': 'failed'})
        with smtp(d.port()) as s:
            transaction(s, [('gone@localhost', ['NOTIFY=NEVER'])],
                        message('n1@e2e.test', 'never'),
                        ['ENVID=never'])
            transaction(s, [('gone@localhost', ['NOTIFY=SUCCESS'])],
                        message('n2@e2e.test', 'success only'),
                        ['ENVID=success'])
        d.wait_queue_empty()
        self.assertIn('status=bounced', d.log_text())
        # the same failure without NOTIFY is reported: the one report
        with smtp(d.port()) as s:
            transaction(s, [('gone@localhost', [])],
                        message('n3@e2e.test', 'plain'), ['ENVID=plain'])
        [r] = self.reports(d, 1)
        self.assertEqual(r.per_message['Original-Envelope-Id'], 'plain')
        self.assertEqual(r.rcpts['gone@localhost']['Action'], 'failed')

    def test_ret_full_returns_the_message(self):
        d = self.dsn_daemon({'gone@localhost': 'failed'})
        body = 'line one of the body\r\nline two\r\n'
        with smtp(d.port()) as s:
            transaction(s, [('gone@localhost', ['NOTIFY=FAILURE'])],
                        message('f1@e2e.test', 'full', body),
                        ['RET=FULL', 'ENVID=full'])
        [r] = self.reports(d, 1)
        self.assertEqual(r.subject, 'Undelivered Mail Returned to Sender')
        gone = r.rcpts['gone@localhost']
        self.assertEqual(gone['Action'], 'failed')
        self.assertTrue(gone['Status'].startswith('5.'), gone['Status'])
        self.assertEqual(r.orig.get_content_type(), 'message/rfc822')
        [orig] = r.orig.get_payload()
        self.assertEqual(orig['Subject'], 'full')
        self.assertEqual(orig['Message-ID'], '<f1@e2e.test>')
        self.assertEqual(orig.get_payload().replace('\r\n', '\n'),
                         body.replace('\r\n', '\n'))

        # RET=HDRS: the headers only
        with smtp(d.port()) as s:
            transaction(s, [('gone@localhost', [])],
                        message('f2@e2e.test', 'headers', body),
                        ['RET=HDRS'])
        r = self.reports(d, 2)[1]
        self.assertEqual(r.orig.get_content_type(), 'text/rfc822-headers')
        self.assertIn('Subject: headers', r.orig.get_payload())
        self.assertNotIn('line one of the body', r.orig.get_payload())

    def test_delay_warning_once(self):
        d = self.dsn_daemon({'slow@localhost': 'deferred'},
                            {'retry_min': 1, 'retry_max': 1,
                             'delay_warning': '2s'})
        with smtp(d.port()) as s:
            qid = transaction(s, [('slow@localhost', [])],
                              message('d1@e2e.test', 'slow'))
        [stored] = d.wait_messages('alice', 1)
        r = Report(self, stored)
        self.assertEqual(r.subject, 'Delayed Mail (still being retried)')
        slow = r.rcpts['slow@localhost']
        self.assertEqual(slow['Action'], 'delayed')
        self.assertTrue(slow['Status'].startswith('4.'), slow['Status'])
        self.assertIsNotNone(slow['Will-Retry-Until'])
        self.assertIn('warning only', r.text.get_payload())
        self.assertIn('%s: sender delay notification' % qid, d.log_text())

        # more attempts, each deferred again: never a second warning
        deferred = re.compile(r'%s: to=<slow@localhost> .*status=deferred'
                              % qid)
        seen = len(deferred.findall(d.log_text()))
        harness.wait_for(
            lambda: len(deferred.findall(d.log_text())) >= seen + 3,
            what='three more attempts')
        # (a report is queued within the attempt that decides it, so one
        # from an earlier attempt would be logged by now)
        self.assertEqual(d.log_text().count('sender delay notification'), 1)
        # retried every second: a delete may meet an attempt in flight
        # ("being delivered right now; try again"), then it is tried again
        def deleted():
            r = d.ctl('delete', qid)
            if r.returncode != 0 and 'being delivered right now' not in \
                    r.stderr:
                self.fail('delete: ' + r.stderr)
            return r.returncode == 0
        harness.wait_for(deleted, what='%s deleted' % qid)
        d.wait_queue_empty()
        self.assertEqual(len(d.messages('alice')), 1)

    def test_hop_count(self):
        d = self.dsn_daemon()
        hops = ''.join('Received: from hop%d.example by hop%d.example; '
                       'Sat, 5 Dec 2026 10:00:00 +0000\r\n' % (i, i + 1)
                       for i in range(51))
        with smtp(d.port()) as s:
            s.ehlo()
            s.mail(SENDER)
            s.rcpt('bob@localhost')
            code, text = s.data(message('h1@e2e.test', 'loop', extra=hops))
            self.assertEqual(code, 554, text)
            self.assertEqual(text, b'5.4.6 Too many hops')
        # swaks: 49 hops and ours are 50, the limit: delivered
        path = os.path.join(self.tmp, 'hops.eml')
        with open(path, 'wb') as f:
            f.write(''.join(hops.splitlines(True)[:49]).encode()
                    + message('h2@e2e.test', 'far'))
        p = swaks(d, '--from', SENDER, '--to', 'bob@localhost',
                  '--data', path)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        [m] = d.wait_messages('bob', 1)
        self.assertEqual(harness.header(m, 'Subject'), ['far'])
        self.assertEqual(len(harness.header(m, 'Received')), 50)
        # and 50 of them are one too many
        with open(path, 'wb') as f:
            f.write(''.join(hops.splitlines(True)[:50]).encode()
                    + message('h3@e2e.test', 'too far'))
        p = swaks(d, '--from', SENDER, '--to', 'bob@localhost',
                  '--data', path)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('554 5.4.6 Too many hops', p.stdout)


if __name__ == '__main__':
    harness.main()
