"""The smtpc engine against a real server: this tree's modmta (started by
tests/e2e/harness.py on a free loopback port), through the test driver:
a transaction in clear and under STARTTLS (ENCRYPT; VERIFY against the
test CA with the right and a wrong name), AUTH PLAIN and LOGIN over TLS
with auth_sasl and refused in clear, and the server's SIZE."""

import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..', '..', '..', 'tests', 'e2e'))
import harness  # noqa: E402
from harness import header  # noqa: E402
from fake_server import Drive, make_pki  # noqa: E402

NAME = 'mx1.remote.test'
BODY = (b'From: <a@client.test>\r\nTo: <bob@localhost>\r\nSubject: smtpc\r\n'
        b'Message-ID: <smtpc-%d@e2e.test>\r\n\r\n'
        b'.a line that starts with a dot\r\nlast line without an end')


class Modmta(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.mkdtemp(prefix='smtpc-modmta-')
        cls.ca, cls.cert, cls.key = make_pki(cls.certdir, NAME)
        cls.passwd = os.path.join(cls.certdir, 'passwd')
        with open(cls.passwd, 'w') as f:
            f.write('bob:{PLAIN}pw\n')

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certdir, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.drive = Drive()
        self.n = 0

    def tearDown(self):
        self.drive.close()
        super().tearDown()

    def start(self, auth=None, **overrides):
        d = self.daemon([{'name': 'smtp', 'tls': 'starttls'}], start=False,
                        tls={'cert': self.cert, 'key': self.key},
                        **overrides)
        if auth is not None:
            d.overrides['modules'] = [
                {'module': 'auth_sasl', 'passdb': 'file:' + self.passwd,
                 'mechanisms': auth},
                {'module': 'store_mbox', 'directory': d.maildir,
                 'users': 'any'}]
        return d.start()

    def open(self, d):
        self.drive.cmd('opts helo=client.test role=smtp')
        r = self.drive.one('open %s 127.0.0.1 %d' % (NAME, d.port()))
        self.assertEqual(r[:2], ['open', 'ok'], r)
        return r[2].split(',')

    def message(self):
        self.n += 1
        path = os.path.join(self.tmp, 'msg%d' % self.n)
        with open(path, 'wb') as f:
            f.write(BODY % self.n)
        return path

    def txn(self, *rcpts):
        out = self.drive.cmd('txn from=a@client.test file=%s %s'
                             % (self.message(), ' '.join(
                                 'rcpt=' + r for r in rcpts)))
        return {row[1]: row[2:] for row in out if row[0] == 'rcpt'}, out[-1]

    def check_delivered(self, d, user, with_):
        m = d.wait_messages(user, 1)[-1]
        self.assertEqual(header(m, 'Message-ID'),
                         ['<smtpc-%d@e2e.test>' % self.n])
        self.assertRegex(header(m, 'Received')[0], r'\bwith %s\b' % with_)
        # unstuffed by the server, the last line ended
        self.assertIn(b'\n.a line that starts with a dot\n'
                      b'last line without an end\n', m)

    def test_plain(self):
        d = self.start()
        ext = self.open(d)
        self.assertIn('PIPELINING', ext)
        self.assertIn('STARTTLS', ext)
        res, end = self.txn('bob@localhost', 'carol@localhost')
        for r in ('bob@localhost', 'carol@localhost'):
            self.assertEqual(res[r][:3], ['250', '2.0.0', 'end of DATA'])
            self.assertIn('queued as', res[r][3])
        self.assertEqual(end, ['txn', '1', '1'])
        self.drive.cmd('close')
        self.check_delivered(d, 'bob', 'ESMTP')
        self.check_delivered(d, 'carol', 'ESMTP')

    def test_starttls_encrypt(self):
        d = self.start()
        self.open(d)
        r = self.drive.one('starttls encrypt ' + NAME)
        self.assertEqual(r[:3], ['starttls', 'ok', '0'])  # the CA unknown
        self.assertTrue(r[3].startswith('TLSv1.'), r)
        res, _ = self.txn('bob@localhost')
        self.assertEqual(res['bob@localhost'][0], '250')
        self.drive.cmd('close')
        self.check_delivered(d, 'bob', 'ESMTPS')

    def test_starttls_verify(self):
        d = self.start()
        self.open(d)
        r = self.drive.one('starttls verify %s %s' % (NAME, self.ca))
        self.assertEqual(r[:3], ['starttls', 'ok', '1'])
        res, _ = self.txn('bob@localhost')
        self.assertEqual(res['bob@localhost'][0], '250')
        self.drive.cmd('close')
        self.check_delivered(d, 'bob', 'ESMTPS')
        # a name the certificate does not carry
        self.open(d)
        r = self.drive.one('starttls verify mx2.remote.test ' + self.ca)
        self.assertEqual(r[1], 'tls-unverified', r)
        self.assertIn('certificate name mismatch', r[7])
        self.drive.cmd('close')
        # the system's store does not know the test CA
        self.open(d)
        r = self.drive.one('starttls verify ' + NAME)
        self.assertEqual(r[1], 'tls-unverified', r)
        self.assertIn('unable to get local issuer certificate', r[7])
        self.drive.cmd('close')

    def test_auth(self):
        d = self.start(auth=['PLAIN', 'LOGIN'])
        self.open(d)
        r = self.drive.one('auth bob pw')
        self.assertEqual(r[1], 'not-allowed', r)
        self.assertEqual(self.drive.one('starttls encrypt ' + NAME)[1], 'ok')
        r = self.drive.one('auth bob nope')
        self.assertEqual(r[1:4], ['refused', '535', '5.7.8'])
        r = self.drive.one('auth bob pw')
        self.assertEqual(r[1:4], ['ok', '235', '2.7.0'])
        res, _ = self.txn('carol@localhost')
        self.assertEqual(res['carol@localhost'][0], '250')
        self.drive.cmd('close')
        self.check_delivered(d, 'carol', 'ESMTPSA')

    def test_auth_login(self):
        d = self.start(auth=['LOGIN'])
        self.open(d)
        self.assertEqual(self.drive.one('starttls verify %s %s'
                                        % (NAME, self.ca))[1], 'ok')
        r = self.drive.one('auth bob pw')
        self.assertEqual(r[1:4], ['ok', '235', '2.7.0'])
        self.drive.cmd('close')

    def test_size(self):
        d = self.start(limits={'message_size': 100})
        self.open(d)
        res, end = self.txn('bob@localhost')
        self.assertEqual(res['bob@localhost'][:3],
                         ['0', '5.3.4', 'MAIL FROM'])
        self.assertEqual(end, ['txn', '0', '1'])
        self.drive.cmd('close')


if __name__ == '__main__':
    unittest.main(verbosity=2)
