"""The ABI 1.6 hooks and actions through the real daemon, driven with
smtplib: on_abort (RSET, EHLO, QUIT, a disconnect in DATA), the
streaming hooks (headers, end of headers, body and its size, ACCEPT
retiring one module, a REJECT at on_eoh), header insertion at an index,
body replacement, a multi-line reply, ESMTP parameters on a sender
change and on an added recipient, and the cost of a header edit on a
20 MB message (one extra copy, read from /proc/PID/io).

The module is core/tests/modules/stream.c, loaded from TEST_MODULE_DIR."""

import json
import os
import re
import shutil
import socket
import tempfile

import harness
from harness import header, headers_of, send_mail, smtp

TEST_MODULE_DIR = os.environ.get('TEST_MODULE_DIR', '')


def message(subject, body='body one\r\nbody two\r\n', extra=''):
    return ('From: <alice@localhost>\r\n'
            'To: <bob@localhost>\r\n'
            'Subject: %s\r\n'
            'X-Folded: first\r\n\tsecond\r\n'
            '%s'
            'Message-ID: <%s@e2e.test>\r\n'
            '\r\n%s' % (subject, extra, subject, body)).encode()


def wchar(pid):
    with open('/proc/%d/io' % pid) as f:
        for line in f:
            if line.startswith('wchar:'):
                return int(line.split()[1])
    raise AssertionError('no wchar in /proc/%d/io' % pid)


class Stream(harness.TestCase):

    def stream_daemon(self, stream=None, first=None, store=True,
                      listeners=None, **over):
        """stream, then (first: another instance before it), then
        store_mbox, or (store False) a script module that claims every
        recipient and defers its delivery (the message stays queued)."""
        if not TEST_MODULE_DIR:
            self.fail('set TEST_MODULE_DIR (meson test does)')
        d = self.daemon(listeners, start=False,
                        queue={'retry_min': 3600, 'retry_max': 3600}, **over)
        d.overrides['module_path'] = [harness.MODULE_DIR, TEST_MODULE_DIR]
        mods = [dict({'module': 'stream'}, **(stream or {}))]
        if first is not None:  # another instance (of stream by default)
            mods.insert(0, dict({'module': 'stream'}, **first))
        if store:
            mods.append({'module': 'store_mbox', 'directory': d.maildir,
                         'users': 'any'})
        else:
            mods.append({'module': 'script', 'rcpt': {'*': 'accept'},
                         'deliver': {'*': 'deferred'}})
        d.overrides['modules'] = mods
        return d.start()

    def lines(self, d, what):
        return re.findall(r'stream: (%s.*)' % what, d.log_text())

    def test_abort(self):
        d = self.stream_daemon()
        with smtp(d.port()) as s:
            s.ehlo('client.test')
            s.rset()                       # no transaction: nothing
            s.mail('one@localhost')
            s.rset()
            s.mail('two@localhost')
            s.rcpt('bob@localhost')
            s.ehlo('client.test')          # EHLO resets it too
            send_mail(s, 'three@localhost', ['bob@localhost'],
                      message('plain'))    # queued: no abort
            s.mail('four@localhost')
            s.quit()
        harness.wait_for(lambda: len(self.lines(d, 'abort')) == 3,
                         what='three aborts')
        # a client that goes away in the middle of DATA
        c = socket.create_connection(('127.0.0.1', d.port()))
        f = c.makefile('rwb')
        for cmd in (None, b'EHLO client.test', b'MAIL FROM:<five@localhost>',
                    b'RCPT TO:<bob@localhost>', b'DATA'):
            if cmd:
                f.write(cmd + b'\r\n')
                f.flush()
            line = f.readline()
            while line[3:4] == b'-':
                line = f.readline()
        self.assertTrue(line.startswith(b'354'), line)
        f.write(b'Subject: cut\r\n')
        f.flush()
        f.close()  # the file holds the socket open too
        c.close()
        harness.wait_for(lambda: len(self.lines(d, 'abort')) == 4,
                         what='the abort of the cut message')
        self.assertEqual(self.lines(d, 'abort'),
                         ['abort sender=<one@localhost>',
                          'abort sender=<two@localhost>',
                          'abort sender=<four@localhost>',
                          'abort sender=<five@localhost>'])

    def test_stream_hooks(self):
        d = self.stream_daemon(first={'name': 'acc', 'accept_stream': True})
        with smtp(d.port()) as s:
            send_mail(s, 'alice@localhost', ['bob@localhost'],
                      message('plain'))
        d.wait_messages('bob', 1)
        log = d.log_text()
        self.assertEqual(re.findall(r' stream: (header \S+ folded=\d)', log),
                         ['header Received folded=1',
                          'header From folded=0', 'header To folded=0',
                          'header Subject folded=0',
                          'header X-Folded folded=1',
                          'header Message-ID folded=0'])
        self.assertEqual(len(re.findall(r' stream: eoh', log)), 1)
        self.assertIn('stream: body size=20 end=20', log)
        # acc returned ACCEPT at its first header: nothing more for it
        self.assertEqual(re.findall(r' acc: (\w+)', log),
                         ['header', 'data'])
        self.assertRegex(log, r' stream: data local=127\.0\.0\.1:%d '
                         r'mech=- tls=-/-/0' % d.port())

    def test_tls_and_auth_details(self):
        """The TLS and AUTH macros' getters after STARTTLS and AUTH
        PLAIN (auth_sasl)."""
        certdir = tempfile.mkdtemp(prefix='modmta-e2e-cert-')
        self.addCleanup(shutil.rmtree, certdir, ignore_errors=True)
        cert, key = harness.make_cert(certdir)
        passwd = os.path.join(certdir, 'passwd')
        with open(passwd, 'w') as f:
            f.write('bob:{PLAIN}pw\n')
        d = self.stream_daemon(listeners=[{'name': 'smtp',
                                           'tls': 'starttls'}],
                               tls={'cert': cert, 'key': key},
                               first={'module': 'auth_sasl',
                                      'passdb': 'file:' + passwd,
                                      'mechanisms': ['PLAIN']})
        with smtp(d.port()) as s:
            s.ehlo('client.test')
            s.starttls(context=harness.no_verify_context())
            s.ehlo('client.test')
            s.login('bob', 'pw')
            send_mail(s, 'alice@localhost', ['bob@localhost'],
                      message('plain'))
        m = re.search(r' stream: data local=127\.0\.0\.1:\d+ mech=PLAIN '
                      r'tls=(TLSv1\.[23])/(\S+)/(\d+)', d.log_text())
        self.assertIsNotNone(m, d.log_tail())
        self.assertGreaterEqual(int(m.group(3)), 128)

    def test_stream_reject(self):
        d = self.stream_daemon(stream={'eoh': 'reject'})
        with smtp(d.port()) as s:
            s.ehlo('client.test')
            s.mail('alice@localhost')
            s.rcpt('bob@localhost')
            code, text = s.data(message('plain'))
        self.assertEqual((code, text), (554, b'5.7.0 stream says no'))
        self.assertNotIn('stream: body', d.log_text())
        self.assertNotIn('stream: data', d.log_text())
        self.assertEqual(d.queue_ids(), set())

    def test_insert_header_and_replace_body(self):
        d = self.stream_daemon()
        with smtp(d.port()) as s:
            send_mail(s, 'alice@localhost', ['bob@localhost'],
                      message('insert'))
            send_mail(s, 'alice@localhost', ['bob@localhost'],
                      message('replace', body='old body\r\n' * 1000))
        msgs = d.wait_messages('bob', 2)
        own = [n for n, _ in headers_of(msgs[0])[1]
               if n not in ('Return-Path', 'X-Original-To', 'Delivered-To')]
        self.assertEqual(own[:3], ['Received', 'X-Inserted', 'From'])
        self.assertEqual(header(msgs[0], 'X-Inserted'), ['at-one'])
        self.assertEqual(headers_of(msgs[0])[2].rstrip(b'\n'),
                         b'body one\nbody two')
        self.assertEqual(header(msgs[1], 'Subject'), ['replace'])
        self.assertEqual(header(msgs[1], 'X-Folded'), ['first second'])
        self.assertEqual(headers_of(msgs[1])[2].rstrip(b'\n'),
                         b'replaced body\nline two')
        self.assertNotIn(b'old body', msgs[1])

    def test_multi_line_reply(self):
        d = self.stream_daemon()
        with smtp(d.port()) as s:
            s.ehlo('client.test')
            s.mail('alice@localhost')
            s.rcpt('bob@localhost')
            code, text = s.data(message('lines'))
        # smtplib joins the lines of a multi-line reply with "\n"
        self.assertEqual(code, 550)
        self.assertEqual(text, b'5.7.1 first line of three\n'
                               b'5.7.1 second line\n'
                               b'5.7.1 third and last line')

    def test_params_on_sender_change_and_added_rcpt(self):
        d = self.stream_daemon(store=False)
        with smtp(d.port()) as s:
            qid = send_mail(s, 'alice@localhost', ['bob@localhost'],
                            message('params'),
                            mail_options=['RET=FULL', 'ENVID=client-id'])
        r = d.ctl('show', qid)
        self.assertEqual(r.returncode, 0, r.stderr)
        env, _ = json.JSONDecoder().raw_decode(r.stdout)
        self.assertEqual(env['sender'], 'new@localhost')
        # the new sender's parameters replaced the client's
        self.assertEqual(env['params'], {'RET': 'HDRS',
                                         'ENVID': 'e2e-envid'})
        rcpts = {r['addr']: r for r in env['rcpts']}
        self.assertEqual(set(rcpts), {'bob@localhost', 'carol@localhost'})
        self.assertEqual(rcpts['carol@localhost']['notify'], ['NEVER'])
        self.assertEqual(rcpts['carol@localhost']['orcpt_param'],
                         'rfc822;carol+40orig.test')
        self.assertNotIn('notify', rcpts['bob@localhost'])

    def test_header_edit_costs_one_copy(self):
        """A header edit that changes the header block's length on a
        20 MB message writes it once more, not more (the bytes the daemon
        writes, /proc/PID/io wchar; delivery only defers)."""
        d = self.stream_daemon(store=False,
                               limits={'message_size': 64 * 1024 * 1024})
        body = ('x' * 998 + '\r\n') * (20 * 1024 * 1024 // 1000)
        sizes = {}
        with smtp(d.port(), timeout=120) as s:
            for subject in ('plain', 'longer'):
                before = wchar(d.pid)
                send_mail(s, 'alice@localhost', ['bob@localhost'],
                          message(subject, body=body))
                sizes[subject] = wchar(d.pid) - before
        n = len(body)
        # plain: the message once (and envelopes, logs: a little)
        self.assertLess(sizes['plain'], n * 1.2, sizes)
        # longer: one extra copy of it
        self.assertGreater(sizes['longer'] - sizes['plain'], n * 0.8, sizes)
        self.assertLess(sizes['longer'] - sizes['plain'], n * 1.2, sizes)


if __name__ == '__main__':
    harness.main()
