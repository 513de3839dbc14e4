"""POP3 (modules/pop3) with python's poplib and fetchmail over mail
delivered through SMTP: plain, STLS and POP3S; list, retrieve byte-exact,
TOP, delete and QUIT, RSET, a dropped connection, UIDL stability across a
delivery and a restart, [IN-USE], wrong passwords and AUTH PLAIN."""

import base64
import hashlib
import hmac
import os
import poplib
import shutil
import socket
import ssl
import subprocess
import tempfile
import unittest

import harness
from harness import make_message, no_verify_context, send_mail, smtp

BODY = 'line one\r\n.starts with a dot\r\nFrom the start of a line\r\n' \
       '>From quoted already\r\n..two dots\r\n\r\nlast\r\n'


class Pop3Daemon(harness.Daemon):
    """A Daemon whose POP3 listeners are probed with POP3."""

    def _probe(self, spec):
        if spec.get('protocol') != 'pop3':
            return super()._probe(spec)
        try:
            s = socket.create_connection(('127.0.0.1',
                                          self.ports[spec['name']]), 5)
        except OSError:
            return False
        try:
            if spec.get('tls') == 'implicit':
                s = no_verify_context().wrap_socket(
                    s, server_hostname='localhost')
            ok = s.recv(512).startswith(b'+OK')
            if ok:
                s.sendall(b'QUIT\r\n')
                s.recv(512)
            return ok
        except (OSError, ssl.SSLError):
            return False
        finally:
            s.close()


def pop_form(mbox_msg):
    """What POP3 must send for one mbox message (before dot-stuffing):
    no From_ line, no separator, '>From' unquoted, CRLF line ends."""
    lines = mbox_msg.split(b'\n')[1:]
    assert lines[-1] == b'' and lines[-2] == b''
    out = []
    for line in lines[:-2]:
        stripped = line.lstrip(b'>')
        if line.startswith(b'>') and stripped.startswith(b'From '):
            line = line[1:]
        out.append(line + b'\r\n')
    return b''.join(out)


class Pop3(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.mkdtemp(prefix='modmta-e2e-pop3-')
        cls.cert, cls.key = harness.make_cert(cls.certdir)
        cls.passwd = os.path.join(cls.certdir, 'passwd')
        with open(cls.passwd, 'w') as f:
            f.write('bob:{PLAIN}pw\nalice:{PLAIN}secret\n')

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certdir, ignore_errors=True)

    def pop_daemon(self, **pop_conf):
        listeners = [{'name': 'smtp', 'tls': 'none'},
                     {'name': 'pop3', 'protocol': 'pop3', 'tls': 'starttls'},
                     {'name': 'pop3plain', 'protocol': 'pop3',
                      'tls': 'none'},
                     {'name': 'pop3s', 'protocol': 'pop3',
                      'tls': 'implicit'}]
        d = Pop3Daemon(os.path.join(self.tmp, 'd%d' % len(self._daemons)),
                       listeners, {'tls': {'cert': self.cert,
                                           'key': self.key}})
        self._daemons.append(d)
        conf = {'module': 'pop3', 'directory': d.maildir,
                'passdb': 'file:' + self.passwd}
        conf.update(pop_conf)
        d.overrides['modules'] = [
            {'module': 'store_mbox', 'directory': d.maildir,
             'users': 'any'}, conf]
        return d.start()

    def deliver(self, d, n, user='bob', first=0):
        sent = []
        s = smtp(d.port())
        for i in range(first, first + n):
            msg = make_message('m%d@e2e' % i, subject='msg %d' % i,
                               body=BODY, to='%s@localhost' % user)
            send_mail(s, 'a@localhost', ['%s@localhost' % user], msg)
            sent.append(msg)
        s.quit()
        d.wait_messages(user, first + n)
        return sent

    def pop(self, d, user='bob', password='pw', listener='pop3plain'):
        p = poplib.POP3('127.0.0.1', d.port(listener), timeout=30)
        try:
            p.user(user)
            p.pass_(password)
        except poplib.error_proto:
            p.close()
            raise
        return p

    def retr(self, p, i):
        resp, lines, octets = p.retr(i)
        self.assertTrue(resp.startswith(b'+OK'))
        return b''.join(line + b'\r\n' for line in lines)

    def test_list_retrieve_byte_exact(self):
        d = self.pop_daemon()
        sent = self.deliver(d, 2)
        mbox = d.messages('bob')
        p = self.pop(d)
        count, size = p.stat()
        self.assertEqual(count, 2)
        listing = p.list()[1]
        found = []
        for i in (1, 2):
            data = self.retr(p, i)
            self.assertEqual(data, pop_form(mbox[i - 1]))
            # the mailbox order of parallel deliveries is no promise
            found += [j for j, m in enumerate(sent) if data.endswith(m)]
            self.assertTrue(data.startswith(b'Return-Path: <a@localhost>'))
            self.assertEqual(listing[i - 1], b'%d %d' % (i, len(data)))
        self.assertEqual(sorted(found), [0, 1])
        self.assertEqual(size, sum(len(pop_form(m)) for m in mbox))
        top = p.top(1, 1)[1]
        hdr_end = top.index(b'')
        self.assertEqual(top[hdr_end + 1:], [b'line one'])
        self.assertEqual(p.uidl(2).split()[2], p.uidl()[1][1].split()[1])
        with self.assertRaises(poplib.error_proto):
            p.retr(3)
        p.quit()

    def test_delete_quit_and_rset(self):
        d = self.pop_daemon()
        self.deliver(d, 3)
        p = self.pop(d)
        uids = p.uidl()[1]
        p.dele(2)
        with self.assertRaises(poplib.error_proto):
            p.retr(2)
        self.assertEqual(p.stat()[0], 2)
        p.rset()
        self.assertEqual(p.stat()[0], 3)
        p.dele(1)
        p.quit()
        mode = os.stat(d.mailbox('bob')).st_mode
        self.assertEqual(len(d.messages('bob')), 2)
        p = self.pop(d)
        self.assertEqual([u.split()[1] for u in p.uidl()[1]],
                         [u.split()[1] for u in uids[1:]])
        p.quit()
        self.assertEqual(os.stat(d.mailbox('bob')).st_mode, mode)
        self.assertFalse(os.path.exists(d.mailbox('bob') + '.lock'))

    def test_delivery_during_session_survives_quit(self):
        d = self.pop_daemon()
        self.deliver(d, 2)
        before = d.messages('bob')  # in either order: parallel deliveries
        p = self.pop(d)
        p.dele(1)
        sent = self.deliver(d, 1, first=2)  # not blocked by the session
        self.assertEqual(p.stat()[0], 1)    # numbering fixed
        p.quit()
        left = d.messages('bob')
        self.assertEqual(len(left), 2)
        self.assertEqual(left[0], before[1])
        self.assertTrue(pop_form(left[1]).endswith(sent[0]))

    def test_dropped_connection_deletes_nothing(self):
        d = self.pop_daemon()
        self.deliver(d, 2)
        p = self.pop(d)
        p.dele(1)
        p.dele(2)
        p.sock.close()
        p.file.close()
        harness.wait_for(lambda: self._login_ok(d), what='mailbox free')
        self.assertEqual(len(d.messages('bob')), 2)

    def _login_ok(self, d):
        try:
            p = self.pop(d)
        except poplib.error_proto:
            return False
        self.assertEqual(p.stat()[0], 2)
        p.quit()
        return True

    def test_uidl_stable_across_delivery_and_restart(self):
        d = self.pop_daemon()
        self.deliver(d, 2)
        p = self.pop(d)
        before = p.uidl()[1]
        p.quit()
        self.deliver(d, 1, first=2)
        p = self.pop(d)
        after = p.uidl()[1]
        p.quit()
        self.assertEqual(after[:2], before)
        self.assertEqual(len(set(u.split()[1] for u in after)), 3)
        d.stop()
        d.start(keep_ports=True)
        p = self.pop(d)
        self.assertEqual(p.uidl()[1], after)
        p.quit()

    def test_in_use(self):
        d = self.pop_daemon()
        self.deliver(d, 1)
        p = self.pop(d)
        with self.assertRaises(poplib.error_proto) as cm:
            self.pop(d)
        self.assertIn(b'[IN-USE]', cm.exception.args[0])
        p.quit()
        self.pop(d).quit()

    def test_wrong_password_and_limit(self):
        d = self.pop_daemon(max_failures=3)
        for _ in range(2):
            with self.assertRaises(poplib.error_proto) as cm:
                self.pop(d, password='nope')
            self.assertTrue(cm.exception.args[0].startswith(b'-ERR [AUTH]'))
        with self.assertRaises(poplib.error_proto):
            self.pop(d, user='nobody', password='pw')
        with self.assertRaises(poplib.error_proto) as cm:
            self.pop(d)  # locked out now, even with the right password
        self.assertIn(b'[SYS/TEMP]', cm.exception.args[0])
        with self.assertRaises(poplib.error_proto):
            self.pop(d, user='../bob', password='pw')

    def test_good_login_does_not_reset_failures(self):
        # one account the guesser holds, logged into between guesses at
        # other accounts, must not lift the limit
        d = self.pop_daemon(max_failures=3)
        for _ in range(2):
            with self.assertRaises(poplib.error_proto) as cm:
                self.pop(d, user='alice', password='guess')
            self.assertTrue(cm.exception.args[0].startswith(b'-ERR [AUTH]'))
        self.pop(d).quit()
        with self.assertRaises(poplib.error_proto) as cm:
            self.pop(d, user='alice', password='guess')
        self.assertTrue(cm.exception.args[0].startswith(b'-ERR [AUTH]'))
        with self.assertRaises(poplib.error_proto) as cm:
            self.pop(d)  # locked out, the good account too
        self.assertIn(b'Too many failed logins', cm.exception.args[0])
        self.assertIn('pop3 login failed client=[127.0.0.1] user="alice" '
                      'mech=USER locked=yes', d.log_text())

    def test_stls(self):
        d = self.pop_daemon(allow_plaintext_loopback=False)
        self.deliver(d, 1)
        p = poplib.POP3('127.0.0.1', d.port('pop3'), timeout=30)
        caps = p.capa()
        self.assertIn('STLS', caps)
        self.assertNotIn('USER', caps)
        with self.assertRaises(poplib.error_proto):
            p.user('bob')
        p.stls(no_verify_context())
        caps = p.capa()
        self.assertIn('USER', caps)
        self.assertNotIn('STLS', caps)
        p.user('bob')
        p.pass_('pw')
        self.assertEqual(p.stat()[0], 1)
        p.quit()

    def test_pop3s_and_auth_plain(self):
        d = self.pop_daemon(allow_plaintext_loopback=False)
        sent = self.deliver(d, 1)
        p = poplib.POP3_SSL('127.0.0.1', d.port('pop3s'), timeout=30,
                            context=no_verify_context())
        self.assertIn('SASL', p.capa())
        with self.assertRaises(poplib.error_proto) as cm:
            p._shortcmd('AUTH PLAIN ' + base64.b64encode(
                b'\0bob\0wrong').decode())
        self.assertIn(b'[AUTH]', cm.exception.args[0])
        p._shortcmd('AUTH PLAIN ' + base64.b64encode(b'\0bob\0pw').decode())
        self.assertTrue(self.retr(p, 1).endswith(sent[0]))
        p.quit()

    def test_auth_login(self):
        d = self.pop_daemon()
        self.deliver(d, 1)
        p = poplib.POP3('127.0.0.1', d.port('pop3plain'), timeout=30)
        # libmodmta's strict base64, as SMTP AUTH's: "Ym9=" is "bo"
        # with the unused bits set (only "Ym8=" is), padding mid-way, a
        # stray space
        for bad in ('Ym9=', 'Yh==', 'Ym9i====', 'Ym9i Ym9i'):
            self.assertEqual(p._shortcmd('AUTH LOGIN'), b'+ VXNlcm5hbWU6')
            with self.assertRaises(poplib.error_proto) as cm:
                p._shortcmd(bad)
            self.assertEqual(cm.exception.args[0],
                             b'-ERR Invalid base64 data', bad)
        r = p._shortcmd('AUTH LOGIN')
        self.assertEqual(r, b'+ VXNlcm5hbWU6')
        r = p._shortcmd(base64.b64encode(b'bob').decode())
        self.assertEqual(r, b'+ UGFzc3dvcmQ6')
        r = p._shortcmd(base64.b64encode(b'pw').decode())
        self.assertTrue(r.startswith(b'+OK'))
        self.assertEqual(p.stat()[0], 1)
        p.quit()

    def test_apop(self):
        d = self.pop_daemon(allow_plaintext_loopback=False, max_failures=3)
        self.deliver(d, 1)
        # the password does not cross the wire: no STLS needed
        p = poplib.POP3('127.0.0.1', d.port('pop3'), timeout=30)
        self.assertRegex(p.getwelcome(), rb'^\+OK .* <[^<>@ ]+@[^<>@ ]+>$')
        p.apop('bob', 'pw')
        self.assertEqual(p.stat()[0], 1)
        p.quit()
        # a fresh timestamp for every connection
        p1 = poplib.POP3('127.0.0.1', d.port('pop3'), timeout=30)
        p2 = poplib.POP3('127.0.0.1', d.port('pop3'), timeout=30)
        self.assertNotEqual(p1.getwelcome(), p2.getwelcome())
        for p, user, pw in ((p1, 'bob', 'wrong'), (p2, 'nobody', 'pw')):
            with self.assertRaises(poplib.error_proto) as cm:
                p.apop(user, pw)
            self.assertTrue(cm.exception.args[0].startswith(b'-ERR [AUTH]'))
            p.close()
        p = poplib.POP3('127.0.0.1', d.port('pop3'), timeout=30)
        with self.assertRaises(poplib.error_proto) as cm:
            p.apop('bob', 'nope')  # the third failure: locked out now
        self.assertTrue(cm.exception.args[0].startswith(b'-ERR [AUTH]'))
        p.close()
        p = poplib.POP3('127.0.0.1', d.port('pop3'), timeout=30)
        with self.assertRaises(poplib.error_proto) as cm:
            p.apop('bob', 'pw')
        self.assertIn(b'[SYS/TEMP]', cm.exception.args[0])
        p.close()

    def test_no_apop_without_secrets(self):
        d = self.pop_daemon(passdb='saslauthd:' +
                            os.path.join(self.tmp, 'no-saslauthd'))
        p = poplib.POP3('127.0.0.1', d.port('pop3plain'), timeout=30)
        self.assertNotIn(b'<', p.getwelcome())
        caps = p.capa()
        self.assertEqual(caps['SASL'], ['PLAIN', 'LOGIN'])
        self.assertNotIn('LOGIN-DELAY', caps)  # login_delay is off
        with self.assertRaises(poplib.error_proto) as cm:
            p._shortcmd('APOP bob 0123456789abcdef0123456789abcdef')
        self.assertEqual(cm.exception.args[0], b'-ERR APOP not supported')
        with self.assertRaises(poplib.error_proto):
            p._shortcmd('AUTH CRAM-MD5')
        p.quit()

    def test_auth_cram_md5(self):
        d = self.pop_daemon(allow_plaintext_loopback=False)
        self.deliver(d, 1)
        sock = socket.create_connection(('127.0.0.1', d.port('pop3')), 30)
        f = sock.makefile('rb')
        self.addCleanup(sock.close)
        self.addCleanup(f.close)
        self.assertTrue(f.readline().startswith(b'+OK'))
        sock.sendall(b'CAPA\r\n')
        caps = []
        while True:
            line = f.readline()
            if line == b'.\r\n':
                break
            caps.append(line)
        # no TLS: only the mechanism that keeps the password secret
        self.assertIn(b'SASL CRAM-MD5\r\n', caps)
        self.assertNotIn(b'USER\r\n', caps)

        def cram(user, secret):
            sock.sendall(b'AUTH CRAM-MD5\r\n')
            chal = f.readline()
            self.assertTrue(chal.startswith(b'+ '))
            chal = base64.b64decode(chal[2:].strip())
            self.assertRegex(chal, rb'^<[^<>@ ]+@[^<>@ ]+>$')
            digest = hmac.new(secret, chal, hashlib.md5).hexdigest()
            sock.sendall(base64.b64encode(user + b' ' + digest.encode()) +
                         b'\r\n')
            return f.readline()
        self.assertTrue(cram(b'bob', b'nope').startswith(b'-ERR [AUTH]'))
        self.assertTrue(cram(b'nobody', b'pw').startswith(b'-ERR [AUTH]'))
        sock.sendall(b'AUTH CRAM-MD5\r\n')
        self.assertTrue(f.readline().startswith(b'+ '))
        sock.sendall(b'*\r\n')
        self.assertTrue(f.readline().startswith(b'-ERR'))
        self.assertTrue(cram(b'bob', b'pw').startswith(b'+OK'))
        sock.sendall(b'STAT\r\n')
        self.assertTrue(f.readline().startswith(b'+OK 1 '))
        sock.sendall(b'QUIT\r\n')
        self.assertTrue(f.readline().startswith(b'+OK'))

    def test_login_delay(self):
        d = self.pop_daemon(login_delay=3600)
        p = self.pop(d)
        self.assertEqual(p.capa()['LOGIN-DELAY'], ['3600'])
        p.quit()
        with self.assertRaises(poplib.error_proto) as cm:
            self.pop(d)
        self.assertTrue(cm.exception.args[0].startswith(
            b'-ERR [LOGIN-DELAY]'))
        # a wrong password still gets [AUTH]: the delay tells nothing
        with self.assertRaises(poplib.error_proto) as cm:
            self.pop(d, password='nope')
        self.assertTrue(cm.exception.args[0].startswith(b'-ERR [AUTH]'))
        self.pop(d, user='alice', password='secret').quit()

    def test_raw_protocol_limits_and_pipelining(self):
        d = self.pop_daemon()
        self.deliver(d, 1)
        sock = socket.create_connection(('127.0.0.1', d.port('pop3plain')),
                                        30)
        f = sock.makefile('rb')
        self.addCleanup(sock.close)
        self.addCleanup(f.close)

        def line():
            return f.readline()
        self.assertTrue(line().startswith(b'+OK'))
        sock.sendall(b'STAT\r\n')
        self.assertTrue(line().startswith(b'-ERR'))  # not logged in
        sock.sendall(b'X' * 3000 + b'\r\n')
        self.assertEqual(line(), b'-ERR Line too long\r\n')
        sock.sendall(b'NO\nOP\r\n')
        self.assertTrue(line().startswith(b'-ERR Bare'))
        sock.sendall(b'APOP bob 0123456789abcdef0123456789abcdef\r\n')
        self.assertTrue(line().startswith(b'-ERR'))
        sock.sendall(b'USER bob\r\nPASS pw\r\nSTAT\r\nLIST 1\r\n'
                     b'UIDL 1\r\nDELE 1\r\nDELE 1\r\nRSET\r\n'
                     b'LIST 0\r\nTOP 1 x\r\nNOOP\r\nQUIT\r\n')
        replies = [line() for _ in range(12)]
        ok = [r.startswith(b'+OK') for r in replies]
        self.assertEqual(ok, [True, True, True, True, True, True, False,
                              True, False, False, True, True], replies)
        self.assertEqual(line(), b'')  # closed after QUIT
        self.assertEqual(len(d.messages('bob')), 1)

    @unittest.skipUnless(shutil.which('fetchmail'), 'fetchmail not installed')
    def test_fetchmail(self):
        d = self.pop_daemon()
        sent = self.deliver(d, 3)
        home = os.path.join(self.tmp, 'fmhome')
        os.makedirs(home)
        out = os.path.join(home, 'inbox')
        mda = os.path.join(home, 'mda.sh')
        with open(mda, 'w') as f:
            f.write('#!/bin/sh\n{ echo "From fetchmail Thu Jan  1 00:00:00'
                    ' 1970"; sed \'s/^\\(>*From \\)/>\\1/\'; echo; }'
                    ' >> "%s"\n' % out)
        os.chmod(mda, 0o700)
        rc = os.path.join(home, '.fetchmailrc')
        with open(rc, 'w') as f:
            f.write('set no syslog\n'
                    'poll 127.0.0.1 service %d protocol POP3 uidl\n'
                    '  user "bob" password "pw" is "%s" here\n'
                    '  mda "%s" fetchall no keep sslproto ""\n'
                    % (d.port('pop3plain'), os.environ.get('USER', 'root'),
                       mda))
        os.chmod(rc, 0o600)
        env = dict(os.environ, HOME=home, FETCHMAILHOME=home)
        r = subprocess.run(['fetchmail', '-f', rc, '--invisible', '-v',
                            '--nodetach', '--pidfile',
                            os.path.join(home, 'pid')],
                           env=env, capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(out, 'rb') as f:
            got = harness.split_mbox(f.read())
        self.assertEqual(len(got), 3)
        # Delivery workers run in parallel: the mailbox order of the three
        # messages is not promised, only that each arrived once, intact.
        bodies = [pop_form(g) for g in got]
        for s in sent:
            self.assertEqual(sum(b.endswith(s) for b in bodies), 1,
                             (s, bodies))
        self.assertEqual(d.messages('bob'), [])


if __name__ == '__main__':
    harness.main()
