"""STARTTLS (RFC 3207) and implicit TLS, with a certificate made now."""

import shutil
import smtplib
import socket
import tempfile

import harness
from harness import (Raw, header, make_message, no_verify_context,
                     send_mail, smtp)


class StartTLS(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.mkdtemp(prefix='modmta-e2e-cert-')
        cls.cert, cls.key = harness.make_cert(cls.certdir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certdir, ignore_errors=True)

    def tls_daemon(self, listeners=None, **overrides):
        return self.daemon(listeners or [{'name': 'smtp',
                                          'tls': 'starttls'}],
                           tls={'cert': self.cert, 'key': self.key},
                           **overrides)

    def test_starttls_smtplib(self):
        d = self.tls_daemon()
        with smtp(d.port()) as s:
            s.ehlo()
            self.assertTrue(s.has_extn('starttls'))
            code, text = s.starttls(context=no_verify_context())
            self.assertEqual(code, 220, text)
            self.assertTrue(text.startswith(b'2.'), text)
            s.ehlo()
            self.assertFalse(s.has_extn('starttls'),
                             'STARTTLS offered again inside TLS')
            qid = send_mail(s, 'a@localhost', ['bob@localhost'],
                            make_message('tls@e2e.test'))
        m = d.wait_messages('bob', 1)[0]
        self.assertEqual(header(m, 'Message-ID'), ['<tls@e2e.test>'])
        received = header(m, 'Received')[0]
        self.assertRegex(received, r'\bwith ESMTPS\b')
        self.assertRegex(received, r'\bid %s\b' % qid)

    def test_starttls_swaks(self):
        d = self.tls_daemon()
        r = harness.swaks(d, '--tls', '--from', 'a@localhost',
                          '--to', 'carol@localhost',
                          '--header', 'Message-Id: <swaks-tls@e2e.test>',
                          '--body', 'over tls')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('TLS started', r.stdout)
        m = d.wait_messages('carol', 1)[0]
        self.assertEqual(header(m, 'Message-ID'), ['<swaks-tls@e2e.test>'])
        self.assertRegex(header(m, 'Received')[0], r'\bwith ESMTPS\b')

    def test_state_discarded_after_starttls(self):
        # With HELO required, MAIL shows whether the EHLO survived.
        d = self.tls_daemon(smtp={'helo_required': True})
        with smtp(d.port()) as s:
            s.ehlo()
            s.starttls(context=no_verify_context())
            code, text = s.docmd('MAIL FROM:<a@localhost>')
            self.assertEqual(code, 503, 'EHLO survived STARTTLS: %r' % text)
            s.ehlo()
            code, text = s.docmd('MAIL FROM:<a@localhost>')
            self.assertEqual(code, 250, text)

    def test_starttls_twice(self):
        d = self.tls_daemon()
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd('EHLO client.test'), 250)
        self.assertReply(c.cmd('STARTTLS'), 220)
        c.sock = no_verify_context().wrap_socket(c.sock,
                                                 server_hostname='localhost')
        r = c.cmd('STARTTLS')
        self.assertTrue(r is not None and 500 <= r[0] < 600,
                        'STARTTLS inside TLS: %r' % (r,))
        self.assertReply(c.cmd('EHLO client.test'), 250)
        c.close()

    def test_pipelined_input_after_starttls(self):
        d = self.tls_daemon()
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd('EHLO client.test'), 250)
        c.send('STARTTLS\r\nNOOP\r\n')
        r = c.reply()
        self.assertReply(r, 554, msg='pipelined STARTTLS: %r' % (r,))
        self.assertClosed(c)

    def test_starttls_required(self):
        d = self.tls_daemon([{'name': 'smtp', 'tls': 'starttls-required'}])
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd('EHLO client.test'), 250)
        self.assertReply(c.cmd('MAIL FROM:<a@localhost>'), 530, '5.7.0')
        c.close()
        with smtp(d.port()) as s:
            s.ehlo()
            s.starttls(context=no_verify_context())
            s.ehlo()
            send_mail(s, 'a@localhost', ['bob@localhost'],
                      make_message('req@e2e.test'))
        m = d.wait_messages('bob', 1)[0]
        self.assertEqual(header(m, 'Message-ID'), ['<req@e2e.test>'])

    def test_implicit_tls(self):
        d = self.tls_daemon([{'name': 'smtp', 'tls': 'none'},
                             {'name': 'smtps', 'tls': 'implicit'}])
        with smtplib.SMTP_SSL('127.0.0.1', d.port('smtps'),
                              local_hostname='client.test',
                              context=no_verify_context(),
                              timeout=harness.IO_TIMEOUT) as s:
            s.ehlo()
            self.assertFalse(s.has_extn('starttls'))
            send_mail(s, 'a@localhost', ['dave@localhost'],
                      make_message('smtps@e2e.test'))
        m = d.wait_messages('dave', 1)[0]
        self.assertEqual(header(m, 'Message-ID'), ['<smtps@e2e.test>'])
        self.assertRegex(header(m, 'Received')[0], r'\bwith ESMTPS\b')
        # a listener with tls "none" offers no STARTTLS
        with smtp(d.port('smtp')) as s:
            s.ehlo()
            self.assertFalse(s.has_extn('starttls'))


    def test_handshake_cut_under_stress(self):
        """A TLS handshake started under stress waits stress_timeout,
        not command_timeout: a client that connects to the implicit TLS
        port and never says hello is closed."""
        d = self.tls_daemon([{'name': 'smtp', 'tls': 'none'},
                             {'name': 'smtps', 'tls': 'implicit'}],
                            limits={'max_sessions': 10,
                                    'max_sessions_per_client': 10,
                                    'command_timeout': 300,
                                    'stress_threshold': 20,
                                    'stress_timeout': 2})
        # the harness's start-up probe is gone first: it would count
        harness.wait_for(lambda: 'disconnect' in d.log_text(),
                         what='the probe to leave')
        silent = []
        for _ in range(2):
            c = socket.create_connection(('127.0.0.1', d.port('smtps')))
            self.addCleanup(c.close)
            silent.append(c)
        harness.wait_for(lambda: 'stress: on' in d.log_text(),
                         what='stress mode')
        # the second session was admitted under stress (the first was
        # not: its handshake keeps command_timeout)
        silent[1].settimeout(60)
        try:
            self.assertEqual(silent[1].recv(1), b'')
        except ConnectionResetError:
            pass
        harness.wait_for(lambda: 'TLS handshake failed' in d.log_text(),
                         what='the handshake failure in the log')
        for c in silent:
            c.close()


if __name__ == '__main__':
    harness.main()
