"""The smtpc engine as an LMTP client of a real Dovecot (dovecot-lmtpd) on
a UNIX socket in a temp dir: one reply per accepted recipient after DATA
(RFC 2033), here a delivery (250), a mailbox Dovecot cannot create (451)
and an unknown user refused at RCPT (550)."""

import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..', '..', '..', 'tests', 'e2e'))
from dovecot import Dovecot  # noqa: E402
from fake_server import Drive  # noqa: E402

CONTENT = (b'From: <a@client.test>\r\nSubject: lmtp\r\n\r\n'
           b'.dotted\r\nbody\r\n')


class SmtpcDovecot(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='smtpc-dc-')
        os.chmod(self.dir, 0o755)       # Dovecot's users are "nobody"
        for sub, mode in (('mail', 0o777), ('ro', 0o555)):
            os.mkdir(os.path.join(self.dir, sub))
            os.chmod(os.path.join(self.dir, sub), mode)
        self.msg = os.path.join(self.dir, 'msg')
        with open(self.msg, 'wb') as f:
            f.write(CONTENT)
        self.dovecot = Dovecot(
            os.path.join(self.dir, 'dc'),
            {'bob': os.path.join(self.dir, 'mail', 'bob'),
             'carol': os.path.join(self.dir, 'ro', 'carol')}).start()
        self.sock = self.dovecot.socket
        self.drive = Drive()

    def tearDown(self):
        self.drive.close()
        self.dovecot.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        return self.dovecot.log()

    def test_reply_per_recipient(self):
        self.drive.cmd('opts role=lmtp helo=client.test')
        r = self.drive.one('open-unix ' + self.sock)
        self.assertEqual(r[:2], ['open', 'ok'], r)
        self.assertIn('PIPELINING', r[2])
        out = self.drive.cmd('txn from=a@client.test file=%s rcpt=bob '
                             'rcpt=carol rcpt=nobody2' % self.msg)
        res = {row[1]: row[2:] for row in out if row[0] == 'rcpt'}
        self.assertEqual(res['bob'][:3], ['250', '2.0.0', 'end of DATA'],
                         self.log())
        self.assertRegex(res['bob'][3], r'^<bob> \S+ Saved$')
        self.assertEqual(res['carol'][:3], ['451', '4.2.0', 'end of DATA'])
        self.assertEqual(res['nobody2'][:3], ['550', '5.1.1', 'RCPT TO'])
        self.assertEqual(out[-1], ['txn', '1', '1'])
        self.drive.cmd('close')
        new = self.dovecot.maildir_messages('bob')
        self.assertEqual(len(new), 1)
        self.assertTrue(new[0].endswith(b'\n.dotted\nbody\n'))


if __name__ == '__main__':
    unittest.main(verbosity=2)
