"""RFC 2920 pipelining: commands in one write, replies in order."""

import harness
from harness import QUEUED_RE, Raw, header


class Pipelining(harness.TestCase):

    def test_group_then_message(self):
        d = self.daemon()
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd('EHLO client.test'), 250)
        c.send('MAIL FROM:<a@localhost>\r\nRCPT TO:<bob@localhost>\r\n'
               'RCPT TO:<nobody@example.org>\r\nRCPT TO:<carol@localhost>\r\n'
               'DATA\r\n')
        self.assertReply(c.reply(), 250, '2.1.0')
        self.assertReply(c.reply(), 250, '2.1.5')
        self.assertReply(c.reply(), 554, '5.7.1')
        self.assertReply(c.reply(), 250, '2.1.5')
        self.assertReply(c.reply(), 354)
        c.send('Subject: pipelined\r\nMessage-ID: <p1@e2e.test>\r\n\r\n'
               'body\r\n.\r\nQUIT\r\n')
        r = c.reply()
        self.assertReply(r, 250, '2.0.0')
        self.assertRegex(r[1][0], QUEUED_RE)
        self.assertReply(c.reply(), 221)
        self.assertClosed(c)
        for user in ('bob', 'carol'):
            m = d.wait_messages(user, 1)[0]
            self.assertEqual(header(m, 'Message-ID'), ['<p1@e2e.test>'])

    def test_batch_of_transactions_in_one_write(self):
        d = self.daemon()
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        batch = 'EHLO client.test\r\n'
        for i in range(3):
            batch += ('MAIL FROM:<a@localhost>\r\nRCPT TO:<bob@localhost>\r\n'
                      'DATA\r\nSubject: batch %d\r\n'
                      'Message-ID: <batch%d@e2e.test>\r\n\r\n'
                      'message %d\r\n.\r\nRSET\r\n' % (i, i, i))
        batch += 'QUIT\r\n'
        c.send(batch)
        self.assertReply(c.reply(), 250)
        ids = []
        for i in range(3):
            for code in (250, 250, 354):
                self.assertReply(c.reply(), code, msg=None)
            r = c.reply()
            self.assertReply(r, 250, '2.0.0')
            ids.append(QUEUED_RE.search(r[1][0]).group(1))
            self.assertReply(c.reply(), 250)      # RSET
        self.assertReply(c.reply(), 221)
        self.assertClosed(c)
        self.assertEqual(len(set(ids)), 3, ids)
        d.wait_messages('bob', 3)
        d.wait_queue_empty()
        got = sorted(header(m, 'Message-ID')[0] for m in d.messages('bob'))
        self.assertEqual(got, ['<batch%d@e2e.test>' % i for i in range(3)])


if __name__ == '__main__':
    harness.main()
