"""modmta-sendmail (sendmail, mailq, newaliases) against the real daemon:
s-nail through -Smta=, -t with Bcc, -bs, submission by an unprivileged
user (made here with useradd, run with setpriv) recorded with its uid,
the maildrop while the daemon is stopped, mailq for everyone and -q for
root only, newaliases with a broken file, and modmtactl finding the
embedded default's sockets without -c.

Runs as root (it creates a user); skipped otherwise."""

import os
import pwd
import re
import shutil
import subprocess
import unittest

import harness

SENDMAIL = os.environ.get('MODMTA_SENDMAIL', '')
USER = 'modmta-e2e-sm'
EX_DATAERR, EX_NOPERM = 65, 77


def uid_of(name):
    return pwd.getpwnam(name).pw_uid


def text(msg):
    return msg.decode('utf-8', 'replace')


def one(msg, name):
    """The value of the header name of a stored message; None if none."""
    v = harness.header(msg, name)
    return v[0] if v else None


@unittest.skipUnless(os.geteuid() == 0, 'needs root (useradd, setpriv)')
@unittest.skipUnless(shutil.which('setpriv') and shutil.which('useradd'),
                     'needs setpriv and useradd')
class Sendmail(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        try:
            pwd.getpwnam(USER)
            cls.made_user = False
        except KeyError:
            subprocess.run(['useradd', '--system', '--no-create-home',
                            '--shell', '/usr/sbin/nologin', USER],
                           check=True, capture_output=True)
            cls.made_user = True

    @classmethod
    def tearDownClass(cls):
        if cls.made_user:
            subprocess.run(['userdel', USER], capture_output=True)

    def setUp(self):
        super().setUp()
        # Others must reach the config and the spool under the test dir.
        os.chmod(self.tmp, 0o711)

    def sendmail(self, d, *args, user=None, input='', argv0=None):
        argv = [SENDMAIL, '-C', d.conf] + list(args)
        if user is not None:
            argv = ['setpriv', '--reuid', user, '--regid', user,
                    '--clear-groups'] + argv
        return subprocess.run(argv, input=input, capture_output=True,
                              text=True, timeout=60,
                              executable=None if argv0 is None else argv[0])

    def link(self, name):
        """SENDMAIL under another name (argv[0] decides)."""
        path = os.path.join(self.tmp, name)
        if not os.path.exists(path):
            os.symlink(SENDMAIL, path)
        return path

    def test_snail(self):
        if not shutil.which('s-nail'):
            self.skipTest('needs s-nail')
        d = self.daemon(local_domains=['localhost', 'mx.e2e.test'])
        home = os.path.join(self.tmp, 'home')
        os.mkdir(home)
        r = subprocess.run(
            ['s-nail', '-n', '-S', 'mta=' + SENDMAIL,
             '-S', 'mta-arguments=-C ' + d.conf, '-s', 'from s-nail',
             'ann@localhost'],
            input='written with s-nail\n', capture_output=True, text=True,
            timeout=60, env=dict(os.environ, HOME=home, MAILRC='/dev/null'))
        self.assertEqual(r.returncode, 0, r.stderr)
        msg = d.wait_messages('ann', 1)[0]
        self.assertEqual(one(msg, 'Subject'), 'from s-nail')
        self.assertIn('written with s-nail', text(msg))
        self.assertIn('(modmta invoked by uid 0)', text(msg))
        self.assertTrue(one(msg, 'Message-ID'))
        self.assertTrue(one(msg, 'Date'))

    def test_extract_with_bcc(self):
        d = self.daemon(local_domains=['localhost', 'mx.e2e.test'])
        r = self.sendmail(d, '-t', '-oi', input=(
            'To: Ann <ann@localhost>\n'
            'Bcc: bob@localhost,\n carl@localhost\n'
            'Subject: t\n\n.\nthe dot above stays (-oi)\n'))
        self.assertEqual(r.returncode, 0, r.stderr)
        for user in ('ann', 'bob', 'carl'):
            msg = d.wait_messages(user, 1)[0]
            self.assertIsNone(one(msg, 'Bcc'), user)
            if user != 'carl':
                self.assertNotIn('carl', text(msg).split('\n\n')[0])
            self.assertIn('the dot above stays', text(msg))
        self.assertEqual(one(d.messages('ann')[0], 'From'),
                         'root@mx.e2e.test')

    def test_tls_required_listener(self):
        """A local session borrows the first SMTP listener's settings but
        not its TLS: STARTTLS required on the network is not asked of a
        UNIX socket."""
        cert, key = harness.make_cert(self.tmp)
        d = self.daemon(listeners=[{'name': 'smtp',
                                    'tls': 'starttls-required'}],
                        tls={'cert': cert, 'key': key})
        r = self.sendmail(d, 'joe@localhost', user=USER,
                          input='Subject: tls\n\nx\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        d.wait_messages('joe', 1)

    def test_refused_recipient(self):
        """-oep (default): printed, exit 67, the others get it; -oem: the
        refusal mailed back to the sender, exit 0."""
        d = self.daemon(local_domains=['localhost', 'mx.e2e.test'])
        r = self.sendmail(d, 'ivy@localhost', 'z@elsewhere.test',
                          input='Subject: part\n\nx\n')
        self.assertEqual(r.returncode, 67, r.stderr)
        self.assertIn('<z@elsewhere.test>: 554', r.stderr)
        d.wait_messages('ivy', 1)
        r = self.sendmail(d, '-oem', 'ivy@localhost', 'z@elsewhere.test',
                          input='Subject: part two\n\nx\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        d.wait_messages('ivy', 2)
        note = d.wait_messages('root', 1)[0]
        self.assertEqual(one(note, 'Subject'), 'Undeliverable mail')
        self.assertIn('<z@elsewhere.test>: 554', text(note))
        self.assertIn('Subject: part two', text(note))

    def test_bare_cr_and_nul(self):
        """What the SMTP session would refuse (554 5.5.0) is made
        acceptable, as Postfix's sendmail takes it: a bare CR becomes a
        line end, a NUL is dropped."""
        d = self.daemon(local_domains=['localhost', 'mx.e2e.test'])
        r = self.sendmail(d, 'ivy@localhost',
                          input='Subject: cr\n\nold\rmac\nn\x00ul\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        body = text(d.wait_messages('ivy', 1)[0])
        self.assertIn('old\nmac\nnul\n', body.replace('\r\n', '\n'))

    def test_long_or_multiline_full_name(self):
        """-F: a long name is cut (256 octets) without losing the line
        end or the Date: field; CR/LF in it cannot add a header."""
        d = self.daemon(local_domains=['localhost', 'mx.e2e.test'])
        r = self.sendmail(d, '-F', 'é' * 550, 'ivy@localhost',
                          input='Subject: long\n\nx\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        msg = d.wait_messages('ivy', 1)[0]
        frm = one(msg, 'From')
        self.assertEqual(frm, '"%s" <root@mx.e2e.test>' % ('é' * 128))
        self.assertIsNotNone(one(msg, 'Date'))
        self.assertEqual(one(msg, 'Subject'), 'long')
        r = self.sendmail(d, '-F', 'Eve\r\nX-Injected: yes', 'ivy@localhost',
                          input='Subject: inject\n\nx\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        msg = d.wait_messages('ivy', 2)[1]
        self.assertIsNone(one(msg, 'X-Injected'))
        self.assertEqual(one(msg, 'From'),
                         '"EveX-Injected: yes" <root@mx.e2e.test>')

    def test_local_auth_mech(self):
        """A local session's login is marked: modmta_auth_mech() says
        LOCAL (the stream test module logs it at DATA)."""
        d = self.daemon(local_domains=['localhost', 'mx.e2e.test'],
                        start=False)
        d.overrides['module_path'] = [harness.MODULE_DIR,
                                      os.environ['TEST_MODULE_DIR']]
        d.overrides['modules'] = [
            {'module': 'stream'},
            {'module': 'store_mbox', 'directory': d.maildir,
             'users': 'any'}]
        d.start()
        r = self.sendmail(d, 'ivy@localhost', user=USER,
                          input='Subject: mech\n\nx\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        d.wait_messages('ivy', 1)
        self.assertRegex(d.log_text(), r'stream: data local=-:0 mech=LOCAL ')

    def test_bs(self):
        d = self.daemon(local_domains=['localhost', 'mx.e2e.test'])
        r = self.sendmail(d, '-bs', input=(
            'EHLO me\nMAIL FROM:<root@localhost>\nRCPT TO:<dan@localhost>\n'
            'DATA\nSubject: bs\n\nover -bs\n.\nQUIT\n'))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r'^220 ')
        self.assertRegex(r.stdout, r'250 2\.0\.0 Ok: queued as ')
        msg = d.wait_messages('dan', 1)[0]
        self.assertIn('over -bs', text(msg))
        self.assertIn('(modmta invoked by uid 0)', text(msg))

    def test_unprivileged_user(self):
        d = self.daemon(local_domains=['localhost', 'mx.e2e.test'])
        uid = uid_of(USER)
        r = self.sendmail(d, '-F', 'Test "User"', 'eve', user=USER,
                          input='Subject: as user\n\nhi\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        msg = d.wait_messages('eve', 1)[0]
        self.assertIn('(modmta invoked by uid %d)' % uid, text(msg))
        self.assertEqual(one(msg, 'Return-Path'),
                         '<%s@mx.e2e.test>' % USER)
        self.assertEqual(one(msg, 'From'),
                         '"Test \\"User\\"" <%s@mx.e2e.test>' % USER)
        log = d.log_text()
        self.assertRegex(log, r'local submission uid=%d user=%s'
                         % (uid, re.escape(USER)))
        self.assertRegex(log, r'from=<%s@mx\.e2e\.test> .*uid=%d'
                         % (re.escape(USER), uid))
        # -f is allowed, and the uid stays on record beside it
        r = self.sendmail(d, '-f', 'boss@example.org', 'eve', user=USER,
                          input='Subject: f\n\nhi\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        msg = d.wait_messages('eve', 2)[1]
        self.assertEqual(one(msg, 'Return-Path'),
                         '<boss@example.org>')
        self.assertIn('(modmta invoked by uid %d)' % uid, text(msg))
        self.assertRegex(d.log_text(), r'from=<boss@example\.org> .*uid=%d'
                         % uid)

    def test_local_submission_relays(self):
        """relay_access refuses the network client that is not in
        mynetworks, and lets a local user relay (as Postfix's pickup)."""
        from smtppeer import SmtpPeer
        peer = SmtpPeer('127.0.0.1')
        peer.start()
        self.addCleanup(peer.stop)
        d = self.daemon(local_domains=['localhost', 'mx.e2e.test'],
                        dns={'servers': ['127.0.0.1:9'], 'timeout': 1},
                        modules=[
                            {'module': 'relay_access', 'mynetworks': []},
                            {'module': 'deliver_smtp', 'connect_timeout': 5,
                             'relayhost': '[127.0.0.1]:%d' % peer.port},
                            {'module': 'store_mbox', 'directory': os.path.join(
                                self.tmp, 'd0', 'mail'), 'users': 'any'}])
        with harness.smtp(d.port()) as s:
            code, _ = s.docmd('MAIL FROM:<a@localhost>')
            self.assertEqual(code, 250)
            code, _ = s.docmd('RCPT TO:<x@remote.test>')
            self.assertEqual(code, 554)
        r = self.sendmail(d, 'x@remote.test', user=USER,
                          input='Subject: out\n\nto the world\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        harness.wait_for(lambda: peer.messages, what='the relayed message')
        sender, rcpts, content = peer.messages[0]
        self.assertEqual(len(rcpts), 1)
        self.assertIn('<x@remote.test>', rcpts[0])
        self.assertIn(b'(modmta invoked by uid %d)' % uid_of(USER), content)

    def test_maildrop_while_stopped(self):
        d = self.daemon(local_domains=['localhost', 'mx.e2e.test'])
        d.stop()
        uid = uid_of(USER)
        r = self.sendmail(d, 'fay@localhost', user=USER,
                          input='Subject: while down\n\nkept\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        drop = os.path.join(d.spool, 'maildrop')
        files = os.listdir(drop)
        self.assertEqual(len(files), 1)
        # -bs has no maildrop to fall back on: 421 and EX_TEMPFAIL
        r = self.sendmail(d, '-bs', user=USER, input='QUIT\n')
        self.assertEqual(r.returncode, 75)
        self.assertRegex(r.stdout, r'^421 4\.3\.0 ')
        # mailq says the daemon is down
        r = self.sendmail(d, '-bp', user=USER)
        self.assertEqual(r.returncode, 69)
        st = os.stat(os.path.join(drop, files[0]))
        self.assertEqual(st.st_uid, uid)
        self.assertEqual(st.st_mode & 0o777, 0o640)
        # the user cannot list the maildrop, nor read others' files
        r2 = subprocess.run(['setpriv', '--reuid', USER, '--regid', USER,
                             '--clear-groups', 'ls', drop],
                            capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r2.returncode, 0)
        d.start()
        msg = d.wait_messages('fay', 1)[0]
        self.assertIn('kept', text(msg))
        self.assertIn('(modmta invoked by uid %d)' % uid, text(msg))
        harness.wait_for(lambda: not os.listdir(drop), what='empty maildrop')

    def test_maildrop_refuses_links(self):
        """A hard link to someone else's file is not taken as theirs."""
        d = self.daemon(local_domains=['localhost', 'mx.e2e.test'])
        d.stop()
        drop = os.path.join(d.spool, 'maildrop')
        r = self.sendmail(d, 'gil@localhost', input='Subject: x\n\nx\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        name = os.listdir(drop)[0]
        os.link(os.path.join(drop, name), os.path.join(self.tmp, 'other'))
        d.start()
        harness.wait_for(lambda: name + '.bad' in os.listdir(drop),
                         what='the linked file set aside')
        self.assertEqual(d.messages('gil'), [])

    def test_pickup_refused_recipients(self):
        """Pickup, as Postfix's: a recipient refused with a 5xx is bounced
        to the sender (a DSN), one refused with a 4xx is kept in a new
        maildrop file, tried again, and delivered once it can be."""
        aliases = os.path.join(self.tmp, 'aliases')
        include = os.path.join(self.tmp, 'later.inc')
        with open(aliases, 'w') as f:
            f.write('later: :include:%s\n' % include)
        d = self.daemon(local_domains=['localhost', 'mx.e2e.test'],
                        local_submission={'pickup_interval': 1},
                        modules=[
                            {'module': 'alias', 'map': 'aliases:' + aliases},
                            {'module': 'store_mbox', 'directory': os.path.join(
                                self.tmp, 'd0', 'mail'), 'users': 'any'}])
        d.stop()
        r = self.sendmail(d, 'ivy@localhost', 'later@localhost',
                          'z@elsewhere.test',
                          input='Subject: three ways\n\nx\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        drop = os.path.join(d.spool, 'maildrop')
        first = os.listdir(drop)[0]
        d.start()
        self.assertIn('three ways', text(d.wait_messages('ivy', 1)[0]))
        dsn = text(d.wait_messages('root', 1)[0])
        self.assertIn('report-type=delivery-status', dsn)
        self.assertIn('Final-Recipient: rfc822; z@elsewhere.test', dsn)
        self.assertIn('Action: failed', dsn)
        self.assertIn('Subject: three ways', dsn)
        self.assertNotIn('later@localhost', dsn)
        # the deferred recipient waits in a file of its own, on the
        # submitter's behalf; the first file is gone
        harness.wait_for(lambda: os.listdir(drop) and
                         first not in os.listdir(drop),
                         what='the file for the deferred recipient')
        kept = os.path.join(drop, os.listdir(drop)[0])
        with open(kept) as f:
            body = f.read()
        self.assertIn('R later@localhost\n', body)
        self.assertNotIn('ivy@localhost', body)
        self.assertNotIn('z@elsewhere.test', body)
        with open(include, 'w') as f:
            f.write('kim\n')
        self.assertIn('three ways', text(d.wait_messages('kim', 1)[0]))
        harness.wait_for(lambda: not os.listdir(drop), what='empty maildrop')
        self.assertEqual(len(d.messages('ivy')), 1)
        self.assertEqual(len(d.messages('root')), 1)

    def test_pickup_message_refused(self):
        """A maildrop message refused as a whole (5xx at DATA) is bounced
        to its sender for every recipient, and the file goes."""
        rules = os.path.join(self.tmp, 'header_checks')
        with open(rules, 'w') as f:
            f.write('/^Subject: refuse me/ REJECT not this one\n')
        d = self.daemon(local_domains=['localhost', 'mx.e2e.test'],
                        start=False)
        d.overrides['module_path'] = [os.environ['PLUGIN_DIR'],
                                      harness.MODULE_DIR]
        d.overrides['modules'] = [
            {'module': 'header_checks', 'header_checks': rules},
            {'module': 'store_mbox', 'directory': d.maildir,
             'users': 'any'}]
        d.start()
        d.stop()
        r = self.sendmail(d, 'ivy@localhost', 'kim@localhost',
                          input='Subject: refuse me\n\nx\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        drop = os.path.join(d.spool, 'maildrop')
        self.assertEqual(len(os.listdir(drop)), 1)
        d.start()
        dsn = text(d.wait_messages('root', 1)[0])
        self.assertIn('Final-Recipient: rfc822; ivy@localhost', dsn)
        self.assertIn('Final-Recipient: rfc822; kim@localhost', dsn)
        self.assertIn('not this one', dsn)
        harness.wait_for(lambda: not os.listdir(drop), what='empty maildrop')
        self.assertEqual(d.messages('ivy'), [])

    def test_mailq_and_flush(self):
        d = self.daemon(queue={'retry_min': 3600, 'retry_max': 3600})
        shutil.rmtree(d.maildir)
        with open(d.maildir, 'w') as f:
            f.write('not a directory: deliveries defer\n')
        r = self.sendmail(d, 'hal@localhost', user=USER,
                          input='Subject: q\n\nq\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        harness.wait_for(lambda: d.queue_ids(), what='a queued message')
        qid = next(iter(d.queue_ids()))
        # the caller's uid is in the envelope (a transaction note)
        shown = d.ctl('show', qid).stdout
        self.assertRegex(shown, r'"local_uid"[^}]*\b%d\b' % uid_of(USER))
        mailq = self.link('mailq')
        r = subprocess.run(['setpriv', '--reuid', USER, '--regid', USER,
                            '--clear-groups', mailq, '-C', d.conf],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(qid, r.stdout)
        self.assertIn('hal@localhost', r.stdout)
        r = self.sendmail(d, '-bp', user=USER)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(qid, r.stdout)
        # flushing is privileged
        r = self.sendmail(d, '-q', user=USER)
        self.assertEqual(r.returncode, EX_NOPERM, r.stderr)
        self.assertIn('permission denied', r.stderr)
        os.unlink(d.maildir)
        os.mkdir(d.maildir)
        r = self.sendmail(d, '-q')
        self.assertEqual(r.returncode, 0, r.stderr)
        d.wait_messages('hal', 1)
        d.wait_queue_empty()

    def test_per_user_share_and_private_reasons(self):
        """One user holds at most 10 connections of the submission socket
        (the 11th is closed: sendmail falls back to the maildrop) while
        others still get in; mailq shows users a quarantined message's
        "!" but not the reason, which root sees."""
        import socket
        rules = os.path.join(self.tmp, 'header_checks')
        with open(rules, 'w') as f:
            f.write('/^Subject: hold me/ HOLD private reason\n')
        d = self.daemon(start=False)
        d.overrides['module_path'] = [os.environ['PLUGIN_DIR'],
                                      harness.MODULE_DIR]
        d.overrides['modules'] = [
            {'module': 'header_checks', 'header_checks': rules},
            {'module': 'store_mbox', 'directory': d.maildir,
             'users': 'any'}]
        d.start()
        sock = os.path.join(d.spool, 'public', 'submit.sock')
        uid = uid_of(USER)
        held = []

        def connect():
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.settimeout(30)
            c.connect(sock)
            held.append(c)
            return c

        os.seteuid(uid)
        try:
            for _ in range(10):
                connect()
            extra = connect()
        finally:
            os.seteuid(0)
        try:
            # the daemon closes the 11th at once, before any request
            self.assertEqual(extra.recv(16), b'')
            r = self.sendmail(d, 'ivy@localhost',
                              input='Subject: hold me\n\nx\n')
            self.assertEqual(r.returncode, 0, r.stderr)
            harness.wait_for(lambda: d.queue_ids(), what='the held message')
            self.assertIn('uid=%d holds 10 connections' % uid, d.log_text())
        finally:
            for c in held:
                c.close()
        r = self.sendmail(d, '-bp')
        self.assertIn('quarantined: private reason', r.stdout)
        harness.wait_for(
            lambda: self.sendmail(d, '-bp', user=USER).returncode == 0,
            what="the user's connections released")
        r = self.sendmail(d, '-bp', user=USER)
        self.assertIn(next(iter(d.queue_ids())), r.stdout)
        self.assertNotIn('private reason', r.stdout)
        self.assertNotIn('quarantined', r.stdout)

    def test_newaliases(self):
        aliases = os.path.join(self.tmp, 'aliases')
        with open(aliases, 'w') as f:
            f.write('team: ann, bob\n')
        d = self.daemon(modules=[
            {'module': 'alias', 'map': 'aliases:' + aliases},
            {'module': 'store_mbox', 'directory': os.path.join(
                self.tmp, 'd0', 'mail'), 'users': 'any'}])
        with open(aliases, 'w') as f:
            f.write('team: ann, bob\nthis line is broken\n')
        newaliases = self.link('newaliases')
        r = subprocess.run([newaliases, '-C', d.conf], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, EX_DATAERR, r.stdout + r.stderr)
        self.assertIn('%s:2:' % aliases, r.stderr)
        with open(aliases, 'w') as f:
            f.write('team: ann, cy\n')
        r = self.sendmail(d, '-bi')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('%s: ok' % aliases, r.stdout)
        self.assertIn('reloaded', r.stdout)
        r = self.sendmail(d, 'team@localhost', input='Subject: a\n\na\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        d.wait_messages('cy', 1)

    def test_ctl_finds_embedded_default(self):
        if os.path.exists('/etc/modmta/modmta.json'):
            self.skipTest('/etc/modmta/modmta.json exists here')
        r = subprocess.run([harness.MODMTACTL, 'queue'], cwd=self.tmp,
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn('/etc/modmta', r.stderr)
        self.assertIn('./var/spool/control.sock', r.stderr)


if __name__ == '__main__':
    unittest.main()
