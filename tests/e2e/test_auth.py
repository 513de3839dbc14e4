"""SMTP AUTH (auth_sasl): submission with STARTTLS and implicit TLS,
PLAIN/LOGIN/CRAM-MD5 with swaks and smtplib, relaying only after AUTH,
wrong passwords and the failure limit, listener policies, modmtactl
passwd, and a real saslauthd (sasl2-bin) with a private sasldb."""

import base64
import os
import shutil
import signal
import smtplib
import subprocess
import tempfile
import time
import unittest

import harness
from harness import (Raw, header, make_message, no_verify_context,
                     send_mail, smtp)

PLAIN_BOB = base64.b64encode(b'\0bob\0pw').decode()
PLAIN_BAD = base64.b64encode(b'\0bob\0nope').decode()


def have_module(name):
    return os.path.exists(os.path.join(harness.MODULE_DIR, name,
                                       name + '.so'))


class Auth(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.mkdtemp(prefix='modmta-e2e-auth-')
        cls.cert, cls.key = harness.make_cert(cls.certdir)
        cls.passwd = os.path.join(cls.certdir, 'passwd')
        r = subprocess.run([harness.MODMTACTL, 'passwd', 'alice'],
                           input='alice pw\n', capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        cls.alice_line = r.stdout.strip()
        with open(cls.passwd, 'w') as f:
            f.write('# test users\nbob:{PLAIN}pw\n%s\n' % cls.alice_line)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certdir, ignore_errors=True)

    def auth_daemon(self, listeners=None, passdb=None, modules=(),
                    **auth_conf):
        conf = {'module': 'auth_sasl',
                'passdb': passdb or 'file:' + self.passwd,
                'mechanisms': ['PLAIN', 'LOGIN', 'CRAM-MD5']}
        conf.update(auth_conf)
        mods = [conf] + list(modules) + [
            {'module': 'store_mbox', 'directory': 'MAILDIR',
             'users': 'any'}]
        d = self.daemon(listeners or [{'name': 'smtp', 'tls': 'starttls'}],
                        start=False, tls={'cert': self.cert,
                                          'key': self.key})
        for m in mods:
            if m.get('directory') == 'MAILDIR':
                m['directory'] = d.maildir
        d.overrides['modules'] = mods
        return d.start()

    def tls_session(self, d):
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd('EHLO client.test'), 250)
        self.assertReply(c.cmd('STARTTLS'), 220)
        c.sock = no_verify_context().wrap_socket(c.sock,
                                                 server_hostname='localhost')
        r = c.cmd('EHLO client.test')
        self.assertReply(r, 250)
        return c, r

    def test_not_offered_without_tls(self):
        d = self.auth_daemon()
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        r = c.cmd('EHLO client.test')
        self.assertFalse([l for l in r[1] if l.startswith('AUTH')], r)
        self.assertReply(c.cmd('AUTH PLAIN ' + PLAIN_BOB), 538, '5.7.11')
        c2, r = self.tls_session(d)
        self.assertIn('AUTH PLAIN LOGIN CRAM-MD5', r[1])

    def test_smtplib_submission(self):
        d = self.auth_daemon()
        with smtp(d.port()) as s:
            s.starttls(context=no_verify_context())
            s.ehlo()
            s.login('alice', 'alice pw')   # smtplib picks CRAM-MD5 first
            send_mail(s, 'alice@localhost', ['bob@localhost'],
                      make_message('auth1@e2e.test'))
        m = d.wait_messages('bob', 1)[0]
        self.assertRegex(header(m, 'Received')[0], r'\bwith ESMTPSA\b')

    def test_smtplib_plain_and_login(self):
        d = self.auth_daemon(mechanisms=['PLAIN', 'LOGIN'])
        for mech in ('PLAIN', 'LOGIN'):
            with smtp(d.port()) as s:
                s.starttls(context=no_verify_context())
                s.ehlo()
                s.user, s.password = 'alice', 'alice pw'
                code, text = s.auth(mech, getattr(s, 'auth_' + mech.lower()),
                                    initial_response_ok=(mech == 'PLAIN'))
                self.assertEqual(code, 235, text)

    def test_swaks_mechanisms(self):
        d = self.auth_daemon()
        for mech in ('PLAIN', 'LOGIN', 'CRAM-MD5'):
            r = harness.swaks(d, '--tls', '--auth', mech,
                              '--auth-user', 'bob', '--auth-password', 'pw',
                              '--from', 'bob@localhost',
                              '--to', 'carol@localhost')
            self.assertEqual(r.returncode, 0, mech + r.stdout + r.stderr)
        msgs = d.wait_messages('carol', 3)
        for m in msgs:
            self.assertRegex(header(m, 'Received')[0], r'\bwith ESMTPSA\b')

    def test_swaks_tls_on_connect(self):
        d = self.auth_daemon([{'name': 'smtp', 'tls': 'implicit'}])
        r = harness.swaks(d, '--tls-on-connect', '--auth', 'PLAIN',
                          '--auth-user', 'alice', '--auth-password',
                          'alice pw', '--from', 'alice@localhost',
                          '--to', 'dave@localhost')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        m = d.wait_messages('dave', 1)[0]
        self.assertRegex(header(m, 'Received')[0], r'\bwith ESMTPSA\b')

    def test_wrong_password_and_limit(self):
        d = self.auth_daemon(max_failures=3, lockout=3600)
        c, _ = self.tls_session(d)
        self.assertReply(c.cmd('AUTH PLAIN ' + PLAIN_BAD), 535, '5.7.8')
        self.assertReply(c.cmd('AUTH PLAIN ' + PLAIN_BAD), 535, '5.7.8')
        self.assertReply(c.cmd('AUTH PLAIN ' + PLAIN_BAD), 421, '4.7.0')
        self.assertClosed(c)
        c, _ = self.tls_session(d)
        self.assertReply(c.cmd('AUTH PLAIN ' + PLAIN_BOB), 421, '4.7.0')
        log = d.log_text()
        self.assertIn('auth failed client=[127.0.0.1] user="bob"', log)
        self.assertNotIn('nope', log)

    def test_protocol_errors(self):
        d = self.auth_daemon()
        c, _ = self.tls_session(d)
        self.assertReply(c.cmd('AUTH PLAIN AGJvYgBwdw='), 501, '5.5.2')
        self.assertReply(c.cmd('AUTH LOGIN'), 334)
        self.assertReply(c.cmd('*'), 501)
        self.assertReply(c.cmd('AUTH PLAIN ' + PLAIN_BOB), 235, '2.7.0')
        self.assertReply(c.cmd('AUTH PLAIN ' + PLAIN_BOB), 503)
        self.assertReply(c.cmd('MAIL FROM:<bob@localhost> AUTH=<>'), 250)

    def test_auth_required_listener(self):
        d = self.auth_daemon([{'name': 'smtp', 'tls': 'starttls-required',
                               'auth': 'required'}])
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd('EHLO client.test'), 250)
        self.assertReply(c.cmd('MAIL FROM:<a@localhost>'), 530, '5.7.0')
        c, _ = self.tls_session(d)
        self.assertReply(c.cmd('MAIL FROM:<a@localhost>'), 530, '5.7.0')
        self.assertReply(c.cmd('AUTH PLAIN ' + PLAIN_BOB), 235)
        self.assertReply(c.cmd('MAIL FROM:<a@localhost>'), 250)

    def test_loopback_plaintext_allowed(self):
        d = self.auth_daemon(allow_plaintext_loopback=True)
        with smtp(d.port()) as s:
            s.login('bob', 'pw')
            send_mail(s, 'bob@localhost', ['erin@localhost'],
                      make_message('auth-lo@e2e.test'))
        m = d.wait_messages('erin', 1)[0]
        self.assertRegex(header(m, 'Received')[0], r'\bwith ESMTPA\b')

    @unittest.skipUnless(have_module('relay_access'), 'no relay_access')
    def test_relay_only_after_auth(self):
        d = self.auth_daemon(modules=[{'module': 'relay_access',
                                       'mynetworks': ['192.0.2.0/24']}])
        c, _ = self.tls_session(d)
        self.assertReply(c.cmd('MAIL FROM:<bob@localhost>'), 250)
        self.assertReply(c.cmd('RCPT TO:<x@example.net>'), 554, '5.7.1')
        self.assertReply(c.cmd('RSET'), 250)
        self.assertReply(c.cmd('AUTH PLAIN ' + PLAIN_BOB), 235)
        self.assertReply(c.cmd('MAIL FROM:<bob@localhost>'), 250)
        self.assertReply(c.cmd('RCPT TO:<x@example.net>'), 250)
        self.assertReply(c.cmd('RSET'), 250)

    @unittest.skipUnless(shutil.which('saslauthd') and os.geteuid() == 0,
                         'needs saslauthd (sasl2-bin) and root')
    def test_real_saslauthd(self):
        sdir = os.path.join(self.tmp, 'sasl')
        os.makedirs(sdir)
        db = os.path.join(sdir, 'sasldb2')
        subprocess.run(['saslpasswd2', '-p', '-f', db, '-c', '-u',
                        'example.org', 'bob'], input=b'sasl pw',
                       check=True, timeout=30)
        if not os.path.exists('/etc/sasldb2'):
            self.skipTest('no /etc/sasldb2 to bind over')
        p = subprocess.Popen(
            ['setsid', 'unshare', '-m', '--propagation', 'private', 'sh',
             '-c', 'mount --bind "$0" /etc/sasldb2 && exec saslauthd -d '
             '-a sasldb -m "$1" -n 0', db, sdir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            harness.wait_for(lambda: os.path.exists(
                os.path.join(sdir, 'mux')), what='saslauthd socket')
            d = self.auth_daemon(passdb='saslauthd:' + sdir,
                                 mechanisms=['PLAIN', 'LOGIN'])
            c, _ = self.tls_session(d)
            bad = base64.b64encode(b'\0bob@example.org\0wrong').decode()
            self.assertReply(c.cmd('AUTH PLAIN ' + bad), 535, '5.7.8')
            good = base64.b64encode(b'\0bob@example.org\0sasl pw').decode()
            self.assertReply(c.cmd('AUTH PLAIN ' + good), 235)
        finally:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            p.wait(timeout=30)

    def test_saslauthd_down_is_tempfail(self):
        d = self.auth_daemon(passdb='saslauthd:' + os.path.join(
            self.tmp, 'no-such-mux'), mechanisms=['PLAIN'])
        c, _ = self.tls_session(d)
        self.assertReply(c.cmd('AUTH PLAIN ' + PLAIN_BOB), 454, '4.7.0')


if __name__ == '__main__':
    harness.main()
