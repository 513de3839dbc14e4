"""SMTP protocol conformance of the real daemon, over raw sockets."""

import signal

import harness
from harness import ENHANCED_RE, Raw, smtp


class Protocol(harness.TestCase):

    def session(self, d, ehlo=True):
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        if ehlo:
            self.assertReply(c.cmd('EHLO client.test'), 250)
        return c

    def test_ehlo_keywords(self):
        d = self.daemon()
        c = self.session(d, ehlo=False)
        code, lines = c.cmd('EHLO client.test')
        self.assertEqual(code, 250)
        words = {l.split()[0].upper() for l in lines[1:] if l.split()}
        for kw in ('PIPELINING', 'SIZE', '8BITMIME', 'ENHANCEDSTATUSCODES',
                   'SMTPUTF8'):
            self.assertIn(kw, words, lines)
        self.assertNotIn('STARTTLS', words, 'no certificate configured')
        c.close()

    def test_basic_verbs(self):
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd('NOOP'), 250, '2.0.0')
        self.assertReply(c.cmd('VRFY bob'), 252)
        self.assertReply(c.cmd('HELP'), 214)
        self.assertReply(c.cmd('RSET'), 250)
        r = c.cmd('FROB something')
        self.assertReply(r, 500)
        self.assertTrue(r[1][0].startswith('5.5.'), r)
        self.assertReply(c.cmd('QUIT'), 221)
        self.assertClosed(c)

    def test_connection_reuse_with_rset(self):
        """An MTA relaying through one connection sends RSET before each
        reuse (Postfix's smtp client does): hundreds of transactions must
        not run into the junk-command limit, because each message received
        forgives the junk and the errors before it, as Postfix's smtpd
        does. Junk without mail still ends the session."""
        n = 300
        d = self.daemon()
        c = self.session(d)
        for i in range(n):
            self.assertReply(c.cmd('RSET'), 250)
            self.assertReply(c.cmd('MAIL FROM:<a@localhost>'), 250)
            self.assertReply(c.cmd('RCPT TO:<bob@localhost>'), 250)
            self.assertReply(c.cmd('DATA'), 354)
            self.assertReply(c.cmd('Subject: reuse %d\r\n\r\nbody\r\n.'
                                   % i), 250, '2.0.0')
        self.assertReply(c.cmd('QUIT'), 221)
        d.wait_messages('bob', n)
        # the limit still holds for a client that sends no mail
        c = self.session(d)
        codes = []
        while len(codes) < 200 and 421 not in codes:
            codes.append(c.cmd('RSET')[0])
        self.assertEqual(codes[-1], 421, codes[95:])
        self.assertGreater(len(codes), 100)
        self.assertClosed(c)

    def test_howto_dialogue(self):
        """What the administrators' how-tos type into telnet (Postfix's
        and Sendmail's examples): no HELO, paths without brackets, a
        recipient without a domain, qualified with the host name."""
        d = self.daemon(local_domains=['localhost', 'mx.e2e.test'])
        c = self.session(d, ehlo=False)
        self.assertReply(c.cmd('MAIL FROM: youremail@gmail.com'), 250)
        self.assertReply(c.cmd('RCPT TO: root'), 250)
        self.assertReply(c.cmd('rcpt to:user2@localhost'), 250)
        self.assertReply(c.cmd('DATA'), 354)
        self.assertReply(c.cmd('this is a happy mail\r\n.'), 250, '2.0.0')
        self.assertReply(c.cmd('quit'), 221)
        root = d.wait_messages('root', 1)[0]
        self.assertIn(b'Delivered-To: root@mx.e2e.test', root)
        self.assertIn(b'Return-Path: <youremail@gmail.com>', root)
        self.assertIn(b'with SMTP id', root)
        self.assertIn(b'this is a happy mail', d.wait_messages('user2', 1)[0])

    def test_strict_dialogue(self):
        """smtp.helo_required and smtp.strict_envelopes: RFC 5321 to the
        letter, as Postfix's smtpd_helo_required and
        strict_rfc821_envelopes."""
        d = self.daemon(smtp={'helo_required': True,
                              'strict_envelopes': True})
        c = self.session(d, ehlo=False)
        self.assertReply(c.cmd('MAIL FROM:<a@localhost>'), 503, '5.5.1')
        self.assertReply(c.cmd('HELO client.test'), 250)
        self.assertReply(c.cmd('MAIL FROM: a@localhost'), 501, '5.1.7')
        self.assertReply(c.cmd('MAIL FROM:<a@localhost>'), 250)
        self.assertReply(c.cmd('RCPT TO: root'), 501, '5.1.3')
        self.assertReply(c.cmd('RCPT TO:<root>'), 501, '5.1.3')
        self.assertReply(c.cmd('RCPT TO:<root@localhost>'), 250)
        c.close()

    def test_sequence_errors(self):
        d = self.daemon(smtp={'helo_required': True})
        c = self.session(d, ehlo=False)
        self.assertReply(c.cmd('MAIL FROM:<a@localhost>'), 503, '5.5.1',
                         'MAIL before EHLO')
        self.assertReply(c.cmd('EHLO client.test'), 250)
        self.assertReply(c.cmd('RCPT TO:<bob@localhost>'), 503, '5.5.1')
        self.assertReply(c.cmd('DATA'), 503, '5.5.1')
        self.assertReply(c.cmd('MAIL FROM:<a@localhost>'), 250)
        self.assertReply(c.cmd('MAIL FROM:<a@localhost>'), 503, '5.5.1',
                         'nested MAIL')
        self.assertReply(c.cmd('DATA'), 503, '5.5.1', 'DATA before RCPT')
        self.assertReply(c.cmd('RCPT TO:<bob@localhost>'), 250)
        self.assertReply(c.cmd('RSET'), 250)
        self.assertReply(c.cmd('RCPT TO:<bob@localhost>'), 503, '5.5.1',
                         'RSET forgets the transaction')
        r = c.cmd('MAIL FROM:<a@localhost')
        self.assertReply(r, 501)
        self.assertTrue(r[1][0].startswith('5.'), r)
        c.close()

    def test_enhanced_codes_everywhere(self):
        d = self.daemon()
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        replies = []
        self.assertReply(c.cmd('EHLO client.test'), 250)
        for line in ('NOOP', 'VRFY bob', 'HELP', 'FROB', 'RCPT TO:<x>',
                     'MAIL FROM:<a@localhost> BODY=8BITMIME SMTPUTF8',
                     'RCPT TO:<bob@localhost>', 'RCPT TO:<x@example.org>',
                     'RCPT TO:<not an address>', 'MAIL FROM:<b@localhost>',
                     'DATA'):
            r = c.cmd(line)
            self.assertIsNotNone(r, line)
            replies.append((line, r))
        self.assertReply(replies[-1][1], 354)
        c.send('Subject: x\r\n\r\nbody\r\n.\r\n')
        replies.append(('<end of data>', c.reply()))
        replies.append(('RSET', c.cmd('RSET')))
        replies.append(('QUIT', c.cmd('QUIT')))
        c.close()
        for line, (code, lines) in replies:
            if code // 100 == 3:
                continue          # RFC 3463 has no class 3
            for text in lines:
                m = ENHANCED_RE.match(text)
                self.assertIsNotNone(m, '%s -> %d %r' % (line, code, text))
                self.assertEqual(m.group(1), str(code // 100),
                                 '%s -> %d %r' % (line, code, text))

    def test_utf8_and_8bit(self):
        d = self.daemon()
        with smtp(d.port()) as s:
            s.ehlo()
            code, text = s.mail('jos\u00e9@localhost',
                                ['SMTPUTF8', 'BODY=8BITMIME'])
            self.assertEqual(code, 250, text)
            code, text = s.rcpt('bob@localhost')
            self.assertEqual(code, 250, text)
            code, text = s.data('Subject: caf\u00e9\r\n\r\nna\u00efve\r\n'
                                .encode('utf-8'))
            self.assertEqual(code, 250, text)
        m = d.wait_messages('bob', 1)[0]
        self.assertIn('na\u00efve'.encode('utf-8'), m)

    def test_long_line(self):
        d = self.daemon()
        c = self.session(d)
        # 510 octets plus CRLF is the longest legal command line
        self.assertReply(c.cmd('NOOP ' + 'x' * 505), 250)
        self.assertReply(c.cmd('NOOP ' + 'x' * 600), 500, '5.5.2')
        # the tail of the long line is not read as a command
        self.assertReply(c.cmd('NOOP'), 250)
        c.close()

    def test_early_talker(self):
        """A client that talks before the greeting gets 554 and is
        closed. With a pause before the greeting the server is sure to
        see the early input; without one (greet_pause 0) it catches only
        input that is already there when the session starts, which a
        test cannot arrange on a loaded machine."""
        d = self.daemon(limits={'greet_pause': 3000})
        c = Raw(d.port())
        c.send('EHLO client.test\r\n')
        r = c.reply()
        self.assertReply(r, 554)
        self.assertClosed(c)

    def test_error_limit(self):
        d = self.daemon(limits={'errors': 3})
        c = self.session(d)
        codes = []
        for _ in range(6):
            try:
                r = c.cmd('FROB')
            except OSError:
                r = None
            if r is None:
                break
            codes.append(r[0])
            if r[0] == 421:
                break
        self.assertEqual(codes[0], 500, codes)
        self.assertIn(421, codes, 'no 421 after %d errors: %r'
                      % (len(codes), codes))
        self.assertLessEqual(len(codes), 4, codes)
        self.assertClosed(c)

    def test_command_timeout(self):
        d = self.daemon(limits={'command_timeout': 2})
        c = self.session(d)
        r = c.reply()          # send nothing; the server must give up
        self.assertReply(r, 421)
        self.assertTrue(r[1][0].startswith('4.'), r)
        self.assertClosed(c)

    def test_recipient_limit(self):
        d = self.daemon(limits={'recipients': 2})
        c = self.session(d)
        self.assertReply(c.cmd('MAIL FROM:<a@localhost>'), 250)
        self.assertReply(c.cmd('RCPT TO:<r1@localhost>'), 250)
        self.assertReply(c.cmd('RCPT TO:<r2@localhost>'), 250)
        self.assertReply(c.cmd('RCPT TO:<r3@localhost>'), 452, '4.5.3')
        self.assertReply(c.cmd('DATA'), 354)
        c.send('Subject: limit\r\n\r\nx\r\n.\r\n')
        self.assertReply(c.reply(), 250)
        c.close()
        d.wait_messages('r1', 1)
        d.wait_messages('r2', 1)
        d.wait_queue_empty()
        self.assertEqual(d.messages('r3'), [])

    def test_per_client_session_limit(self):
        d = self.daemon(limits={'max_sessions_per_client': 2})
        held = []
        # the start-up probe may still count for a moment: retry the
        # first two until each gets its greeting
        for _ in range(2):
            def open_one():
                c = Raw(d.port())
                r = c.reply()
                if r is not None and r[0] == 220:
                    return c
                c.close()
                return None
            held.append(harness.wait_for(open_one, 20, 'a greeting'))
        c = Raw(d.port())
        r = c.reply()
        self.assertReply(r, 421, '4.7.0')
        self.assertClosed(c)
        for h in held:
            self.assertReply(h.cmd('NOOP'), 250)
            h.close()

    def test_sigterm_gives_421(self):
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd('MAIL FROM:<a@localhost>'), 250)
        proc = d.proc
        d.signal(signal.SIGTERM)
        r = c.reply()
        self.assertReply(r, 421)
        self.assertClosed(c)
        proc.wait(harness.STOP_TIMEOUT)


if __name__ == '__main__':
    harness.main()
