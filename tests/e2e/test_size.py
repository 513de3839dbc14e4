"""RFC 1870 SIZE: declared size at MAIL, real size while reading."""

import harness
from harness import Raw, header, make_message, send_mail, smtp

LIMIT = 10000


class Size(harness.TestCase):

    def test_size_advertised(self):
        d = self.daemon(limits={'message_size': LIMIT})
        with smtp(d.port()) as s:
            s.ehlo()
            self.assertTrue(s.has_extn('size'))
            self.assertEqual(s.esmtp_features['size'].strip(), str(LIMIT))

    def test_declared_size_too_big(self):
        d = self.daemon(limits={'message_size': LIMIT})
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd('EHLO client.test'), 250)
        self.assertReply(c.cmd('MAIL FROM:<a@localhost> SIZE=%d'
                               % (LIMIT + 1)), 552, '5.3.4')
        self.assertReply(c.cmd('MAIL FROM:<a@localhost> SIZE=%d'
                               % (LIMIT // 2)), 250)
        c.close()

    def test_declared_size_beyond_64_bits(self):
        d = self.daemon(limits={'message_size': LIMIT})
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd('EHLO client.test'), 250)
        # 20 digits is RFC 1870's longest size-value: valid syntax, a
        # number too big for 64 bits, and a message too big for us
        self.assertReply(c.cmd('MAIL FROM:<a@localhost> SIZE=99999999999999'
                               '999999'), 552, '5.3.4')
        c.close()

    def test_real_size_too_big(self):
        d = self.daemon(limits={'message_size': LIMIT})
        big = make_message('big@e2e.test', body=('y' * 70 + '\r\n') * 300)
        self.assertGreater(len(big), LIMIT)
        with smtp(d.port()) as s:
            s.ehlo()
            # declare a small size, send a big message
            self.assertEqual(s.mail('a@localhost', ['SIZE=100'])[0], 250)
            self.assertEqual(s.rcpt('bob@localhost')[0], 250)
            code, text = s.data(big)
            self.assertEqual(code, 552, text)
            self.assertTrue(text.startswith(b'5.3.4'), text)
            # the session survives and the next message goes through
            send_mail(s, 'a@localhost', ['carol@localhost'],
                      make_message('small@e2e.test'))
        m = d.wait_messages('carol', 1)[0]
        self.assertEqual(header(m, 'Message-ID'), ['<small@e2e.test>'])
        d.wait_queue_empty()
        self.assertEqual(d.messages('bob'), [], 'the big one was delivered')


if __name__ == '__main__':
    harness.main()
