"""Delivery to mbox through the real daemon: smtplib and swaks."""

import harness
from harness import Raw, header, headers_of, make_message, send_mail, smtp


class Delivery(harness.TestCase):

    def test_one_message_to_mbox(self):
        d = self.daemon()
        msg = make_message('one@e2e.test', subject='first',
                           body='line one\r\nline two\r\n')
        with smtp(d.port()) as s:
            qid = send_mail(s, 'alice@localhost', ['bob@localhost'], msg)
        msgs = d.wait_messages('bob', 1)
        d.wait_queue_empty()
        msgs = d.messages('bob')
        self.assertEqual(len(msgs), 1, 'exactly one message in the mbox')
        m = msgs[0]
        from_line, hdrs, body = headers_of(m)
        self.assertRegex(from_line, r'^From alice@localhost ')
        self.assertEqual([v.strip('<>') for v in header(m, 'Return-Path')],
                         ['alice@localhost'])
        self.assertEqual(header(m, 'Delivered-To'), ['bob@localhost'])
        received = header(m, 'Received')
        self.assertTrue(received, 'a Received: header')
        self.assertRegex(received[0], r'\bid %s\b' % qid)
        self.assertRegex(received[0], r'\bwith ESMTP\b')
        self.assertIn('bob@localhost', received[0])
        self.assertEqual(header(m, 'Message-ID'), ['<one@e2e.test>'])
        self.assertEqual(header(m, 'Subject'), ['first'])
        self.assertEqual(body.rstrip(b'\n'), b'line one\nline two')
        # mbox lines end in LF; no CR may be stored
        self.assertNotIn(b'\r', m)

    def test_dot_stuffing(self):
        d = self.daemon()
        body = ('before\r\n.hidden line\r\n..\r\n.\tdot tab\r\n'
                '...three\r\nafter\r\n')
        with smtp(d.port()) as s:
            # smtplib stuffs the leading dots on the wire
            send_mail(s, 'a@localhost', ['bob@localhost'],
                      make_message('dots1@e2e.test', body=body))
        # and the same stuffing done by hand, on a raw socket
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd('EHLO client.test'), 250)
        self.assertReply(c.cmd('MAIL FROM:<a@localhost>'), 250)
        self.assertReply(c.cmd('RCPT TO:<carol@localhost>'), 250)
        self.assertReply(c.cmd('DATA'), 354)
        c.send(b'Subject: raw\r\n\r\nbefore\r\n..hidden line\r\n...\r\n'
               b'..\tdot tab\r\n....three\r\nafter\r\n.\r\n')
        self.assertReply(c.reply(), 250, '2.0.0')
        self.assertReply(c.cmd('QUIT'), 221)
        c.close()
        want = b'before\n.hidden line\n..\n.\tdot tab\n...three\nafter'
        for user in ('bob', 'carol'):
            m = d.wait_messages(user, 1)[0]
            self.assertEqual(headers_of(m)[2].rstrip(b'\n'), want, user)

    def test_from_quoting(self):
        d = self.daemon()
        body = 'first\r\nFrom me\r\n>From you\r\nFromage\r\n From x\r\n'
        with smtp(d.port()) as s:
            send_mail(s, 'a@localhost', ['bob@localhost'],
                      make_message('from@e2e.test', body=body))
        msgs = d.wait_messages('bob', 1)
        d.wait_queue_empty()
        msgs = d.messages('bob')
        self.assertEqual(len(msgs), 1, 'the body From line split the mbox')
        body = headers_of(msgs[0])[2]
        self.assertEqual(body.rstrip(b'\n'),
                         b'first\n>From me\n>>From you\nFromage\n From x')

    def test_multiple_recipients_and_case(self):
        d = self.daemon()
        with smtp(d.port()) as s:
            send_mail(s, 'a@localhost', ['Bob@localhost', 'carol@LOCALHOST'],
                      make_message('two@e2e.test'))
        for user in ('bob', 'carol'):
            m = d.wait_messages(user, 1)[0]
            self.assertEqual(header(m, 'Message-ID'), ['<two@e2e.test>'])

    def test_swaks(self):
        d = self.daemon()
        r = harness.swaks(d, '--from', 'sender@localhost',
                          '--to', 'dave@localhost',
                          '--header', 'Subject: via swaks',
                          '--header', 'Message-Id: <swaks@e2e.test>',
                          '--body', 'swaks body line')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r'<[-~]\s+250 2\.0\.0 Ok: queued as \S+')
        m = d.wait_messages('dave', 1)[0]
        self.assertEqual(header(m, 'Message-ID'), ['<swaks@e2e.test>'])
        self.assertEqual(header(m, 'Subject'), ['via swaks'])
        self.assertIn(b'swaks body line', headers_of(m)[2])

    def test_unknown_domain_relay_denied(self):
        d = self.daemon()
        with smtp(d.port()) as s:
            s.ehlo()
            self.assertEqual(s.mail('a@localhost')[0], 250)
            code, text = s.rcpt('someone@example.org')
            self.assertEqual(code, 554, text)
            self.assertTrue(text.startswith(b'5.7.1'), text)
            # the session goes on: a local recipient is still accepted
            self.assertEqual(s.rcpt('bob@localhost')[0], 250)

    def test_bad_local_parts_refused(self):
        d = self.daemon()
        with smtp(d.port()) as s:
            s.ehlo()
            self.assertEqual(s.mail('a@localhost')[0], 250)
            for rcpt in ('"../etc"@localhost', '.hidden@localhost',
                         '"a/b"@localhost'):
                code, text = s.rcpt(rcpt)
                self.assertGreaterEqual(code, 500, '%s: %d %r'
                                        % (rcpt, code, text))


if __name__ == '__main__':
    harness.main()
