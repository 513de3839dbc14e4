"""The smtpc engine as an LMTP client of a real Dovecot (dovecot-lmtpd) on
a UNIX socket in a temp dir: one reply per accepted recipient after DATA
(RFC 2033), here a delivery (250), a mailbox Dovecot cannot create (451)
and an unknown user refused at RCPT (550)."""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_server import Drive  # noqa: E402

START_TIMEOUT = 20
CONTENT = (b'From: <a@client.test>\r\nSubject: lmtp\r\n\r\n'
           b'.dotted\r\nbody\r\n')

CONF = '''base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
ssl = no
listen = 127.0.0.1
protocols = lmtp
default_login_user = nobody
default_internal_user = nobody
first_valid_uid = 1
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = {d}/users
}}
userdb {{
  driver = passwd-file
  args = {d}/users
}}
service lmtp {{
  unix_listener {d}/lmtp {{
    mode = 0666
  }}
}}
'''


class Dovecot(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='smtpc-dc-')
        os.chmod(self.dir, 0o755)       # Dovecot's users are "nobody"
        for sub, mode in (('mail', 0o777), ('ro', 0o555)):
            os.mkdir(os.path.join(self.dir, sub))
            os.chmod(os.path.join(self.dir, sub), mode)
        nobody = '65534:65534'
        with open(os.path.join(self.dir, 'users'), 'w') as f:
            f.write('bob:{PLAIN}x:%s::%s/mail/bob::\n'
                    'carol:{PLAIN}x:%s::%s/ro/carol::\n'
                    % (nobody, self.dir, nobody, self.dir))
        conf = os.path.join(self.dir, 'dovecot.conf')
        with open(conf, 'w') as f:
            f.write(CONF.format(d=self.dir))
        self.msg = os.path.join(self.dir, 'msg')
        with open(self.msg, 'wb') as f:
            f.write(CONTENT)
        self.sock = os.path.join(self.dir, 'lmtp')
        self.proc = subprocess.Popen(['dovecot', '-F', '-c', conf],
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.fail('dovecot did not start: %s' % self.log())
            time.sleep(0.05)
        self.drive = Drive()

    def tearDown(self):
        self.drive.close()
        self.proc.terminate()
        self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        try:
            with open(os.path.join(self.dir, 'dovecot.log')) as f:
                return f.read()
        except OSError:
            return ''

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
        new = glob.glob(os.path.join(self.dir, 'mail/bob/Maildir/new/*'))
        self.assertEqual(len(new), 1)
        with open(new[0], 'rb') as f:
            self.assertTrue(f.read().endswith(b'\n.dotted\nbody\n'))


if __name__ == '__main__':
    unittest.main(verbosity=2)
