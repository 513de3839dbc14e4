"""SMTP smuggling: only CRLF.CRLF ends DATA; bare CR/LF gets a 5xx."""

import harness
from harness import Raw, header, make_message, send_mail, smtp

# Ends of data that some server somewhere took for the real one.
VARIANTS = {
    'lf-dot-lf': b'\n.\n',
    'crlf-dot-lf': b'\r\n.\n',
    'lf-dot-crlf': b'\n.\r\n',
    'cr-dot-crlf': b'\r.\r\n',
    'crlf-dot-cr': b'\r\n.\r',
    'cr-dot-cr': b'\r.\r',
}

SMUGGLED = (b'MAIL FROM:<evil@localhost>\r\n'
            b'RCPT TO:<smuggled@localhost>\r\n'
            b'DATA\r\n'
            b'Subject: smuggled\r\n\r\nsmuggled body')
# ... and the real end of data, CRLF.CRLF, follows it.


class Smuggling(harness.TestCase):

    def start_data(self, c):
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd('EHLO client.test'), 250)
        self.assertReply(c.cmd('MAIL FROM:<a@localhost>'), 250)
        self.assertReply(c.cmd('RCPT TO:<bob@localhost>'), 250)
        self.assertReply(c.cmd('DATA'), 354)

    def test_variants(self):
        d = self.daemon()
        for name, end in VARIANTS.items():
            with self.subTest(variant=name):
                c = Raw(d.port())
                self.start_data(c)
                c.send(b'Subject: outer ' + name.encode() + b'\r\n\r\n'
                       b'outer body' + end + SMUGGLED + b'\r\n.\r\n')
                r = c.reply()
                self.assertIsNotNone(r, 'closed without a reply')
                self.assertTrue(500 <= r[0] < 600,
                                'message with %s accepted: %r' % (name, r))
                # the smuggled commands were data, not commands: the
                # next reply answers our QUIT (or the server has closed)
                try:
                    r = c.cmd('QUIT')
                except OSError:
                    r = None
                if r is not None:
                    self.assertReply(r, 221, msg='smuggled command ran: %r'
                                     % (r,))
                c.close()
        # a clean message afterwards: delivery works, and when it is in,
        # nothing else may be
        with smtp(d.port()) as s:
            send_mail(s, 'a@localhost', ['carol@localhost'],
                      make_message('clean@e2e.test'))
        m = d.wait_messages('carol', 1)[0]
        self.assertEqual(header(m, 'Message-ID'), ['<clean@e2e.test>'])
        d.wait_queue_empty()
        self.assertEqual(d.messages('smuggled'), [])
        self.assertEqual(d.messages('bob'), [])

    def test_bare_lf_in_command(self):
        d = self.daemon()
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd('EHLO client.test'), 250)
        c.send('NOOP\nRSET\r\n')
        self.assertReply(c.reply(), 500, '5.5.2')
        try:
            r = c.cmd('QUIT')
        except OSError:
            r = None
        if r is not None:
            self.assertReply(r, 221, msg='bare LF split the line: %r' % (r,))
        c.close()

    def test_bare_cr_in_command(self):
        d = self.daemon()
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd('EHLO client.test'), 250)
        c.send('NOOP\rRSET\r\n')
        self.assertReply(c.reply(), 500, '5.5.2')
        try:
            r = c.cmd('QUIT')
        except OSError:
            r = None
        if r is not None:
            self.assertReply(r, 221, msg='bare CR split the line: %r' % (r,))
        c.close()

    def test_smuggled_mail_from_after_bare_lf_end(self):
        """The classic attack in one write, pipelined: the smuggled
        transaction must not be queued."""
        d = self.daemon()
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        c.send(b'EHLO client.test\r\nMAIL FROM:<a@localhost>\r\n'
               b'RCPT TO:<bob@localhost>\r\nDATA\r\n')
        for code in (250, 250, 250, 354):
            self.assertReply(c.reply(), code)
        c.send(b'Subject: x\r\n\r\nx\n.\n' + SMUGGLED + b'\r\n.\r\nQUIT\r\n')
        r = c.reply()
        self.assertTrue(r is not None and 500 <= r[0] < 600, r)
        r = c.reply()
        if r is not None:
            self.assertReply(r, 221, msg='smuggled command ran: %r' % (r,))
        c.close()
        with smtp(d.port()) as s:
            send_mail(s, 'a@localhost', ['carol@localhost'],
                      make_message('clean@e2e.test'))
        d.wait_messages('carol', 1)
        d.wait_queue_empty()
        self.assertEqual(d.messages('smuggled'), [])


if __name__ == '__main__':
    harness.main()
