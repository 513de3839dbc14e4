"""The smtpc engine against scripted servers (fake_server.py), through the
test driver smtpc_drive: pipelined and lock-step transactions, per
recipient results, refusals at every stage, LMTP, lost and slow servers,
STARTTLS, AUTH, and the connection cache."""

import base64
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_server import Drive, FakeServer, make_pki  # noqa: E402

NAME = 'mx1.remote.test'
PEER = NAME + '[127.0.0.1]'
CONTENT = (b'From: <a@client.test>\r\nSubject: t\r\n\r\n'
           b'.leading dot\r\n..two\r\nmiddle . dot\r\n.\r\nlast line')
STUFFED = (b'From: <a@client.test>\r\nSubject: t\r\n\r\n'
           b'..leading dot\r\n...two\r\nmiddle . dot\r\n..\r\nlast line'
           b'\r\n.\r\n')
EXT = ['PIPELINING', 'SIZE 1000000', '8BITMIME', 'DSN',
       'ENHANCEDSTATUSCODES']


def ehlo_reply(ext, code=250):
    lines = [NAME] + list(ext)
    return '\n'.join('%d%s%s' % (code, '-' if i < len(lines) - 1 else ' ', l)
                     for i, l in enumerate(lines))


def greet(ext=EXT, verb='EHLO'):
    return [('send', '220 %s ESMTP fake' % NAME),
            ('expect', '%s client.test' % verb),
            ('send', ehlo_reply(ext))]


def rcpts(result):
    """{addr: (code, esc, stage, text)} of a txn answer."""
    out = {}
    for row in result:
        if row[0] == 'rcpt':
            out[row[1]] = (int(row[2]), row[3], row[4], row[5])
    return out


class Engine(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix='smtpc-fake-')
        cls.msg = os.path.join(cls.dir, 'msg')
        with open(cls.msg, 'wb') as f:
            f.write(CONTENT)
        cls.size = len(CONTENT)
        cls.ca, cls.cert, cls.key = make_pki(cls.dir, NAME)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.servers = []
        self.drive = Drive()

    def tearDown(self):
        self.drive.close()
        for s in self.servers:
            s.close()

    def server(self, *scripts, unix_path=None):
        s = FakeServer(scripts, unix_path=unix_path)
        self.servers.append(s)
        return s

    def finish(self, s):
        """The scripts ran to their end without a difference."""
        s.wait()
        self.assertEqual(s.errors, [], s.transcripts)

    def open(self, s, opts='role=smtp'):
        self.drive.cmd('opts helo=client.test ' + opts)
        r = self.drive.one('open %s 127.0.0.1 %d' % (NAME, s.port))
        self.assertEqual(r[:2], ['open', 'ok'], r)
        return r

    def txn(self, *words):
        out = self.drive.cmd('txn from=a@client.test file=%s %s'
                             % (self.msg, ' '.join(words)))
        self.assertEqual(out[-1][0], 'txn', out)
        return rcpts(out), out[-1]

    def tls(self, ext):
        """A greeting offering STARTTLS, the handshake, the EHLO after
        it offering ext."""
        return greet(EXT + ['STARTTLS']) + [
            ('expect', 'STARTTLS'), ('send', '220 2.0.0 go ahead'),
            ('starttls', self.cert, self.key),
            ('expect', 'EHLO client.test'), ('send', ehlo_reply(ext))]

    def mail(self, params=''):
        return ('expect', 'MAIL FROM:<a@client.test> SIZE=%d%s'
                % (self.size, params))

    def envelope(self, rcpts, replies, mail=None):
        """MAIL, RCPT for each of rcpts, DATA, all read before the
        replies go: a pipelined envelope."""
        return ([mail or self.mail()]
                + [('expect', 'RCPT TO:<%s>' % r) for r in rcpts]
                + [('expect', 'DATA'), ('send', replies)])

    def accept(self, rcpt, mail=None):
        """A pipelined transaction for rcpt that the server takes."""
        return self.envelope([rcpt], '250 ok\n250 ok\n354 go', mail) + [
            ('data',), ('send', '250 ok')]

    # ---- transactions

    def test_pipelined(self):
        s = self.server(greet() + [
            self.mail(' BODY=8BITMIME RET=HDRS ENVID=e+2Bx'),
            ('expect', 'RCPT TO:<b@remote.test> NOTIFY=SUCCESS,DELAY '
                       'ORCPT=rfc822;b@remote.test'),
            ('expect', 'RCPT TO:<c@remote.test>'),
            ('expect', 'DATA'),
            # every command above was read before any reply: pipelined
            ('send', '250 2.1.0 Ok\n250 2.1.5 Ok\n250 2.1.5 Ok\n'
                     '354 End data with <CR><LF>.<CR><LF>'),
            ('data',),
            ('send', '250 2.0.0 Ok: queued as 4XyZ'),
            ('eof',)])
        r = self.open(s)
        self.assertEqual(r[2], 'PIPELINING,SIZE,8BITMIME,DSN,'
                               'ENHANCEDSTATUSCODES')
        self.assertEqual(r[3], '1000000')
        res, end = self.txn('8bit', 'ret=HDRS', 'envid=e+2Bx',
                            'rcpt=b@remote.test,notify=SUCCESS+DELAY,'
                            'orcpt=rfc822;b@remote.test',
                            'rcpt=c@remote.test')
        want = (250, '2.0.0', 'end of DATA', 'Ok: queued as 4XyZ')
        self.assertEqual(res, {'b@remote.test': want,
                               'c@remote.test': want})
        self.assertEqual(end, ['txn', '1', '1'])
        self.drive.cmd('close')
        self.finish(s)
        self.assertEqual(s.messages, [STUFFED])

    def test_lockstep(self):
        s = self.server(greet(['SIZE', '8BITMIME']) + [
            self.mail(),
            ('send', '250 ok'),
            ('expect', 'RCPT TO:<b@remote.test>'),
            ('send', '250 ok'),
            ('expect', 'RCPT TO:<c@remote.test>'),
            ('send', '550 5.1.1 <c@remote.test>: no such user'),
            ('expect', 'DATA'),
            ('send', '354 go'),
            ('data',),
            ('send', '250 queued'),
            ('eof',)])
        self.open(s)
        # no DSN offered: NOTIFY and ORCPT are not sent; nor RET, ENVID
        res, end = self.txn('ret=FULL', 'envid=x',
                            'rcpt=b@remote.test,notify=NEVER',
                            'rcpt=c@remote.test')
        self.assertEqual(res['b@remote.test'],
                         (250, '-', 'end of DATA', 'queued'))
        self.assertEqual(res['c@remote.test'],
                         (550, '5.1.1', 'RCPT TO',
                          '<c@remote.test>: no such user'))
        self.drive.cmd('close')
        self.finish(s)
        self.assertEqual(s.messages, [STUFFED])

    def test_mixed_recipients_multiline(self):
        s = self.server(greet() + [
            self.mail(),
            ('expect', 'RCPT TO:<ok@remote.test>'),
            ('expect', 'RCPT TO:<full@remote.test>'),
            ('expect', 'RCPT TO:<gone@remote.test>'),
            ('expect', 'DATA'),
            ('send', '250 2.1.0 Ok\n250 2.1.5 Ok\n'
                     '452-4.2.2 Mailbox full\n452-4.2.2 try later\n'
                     '452 4.2.2 (quota)\n'
                     '550-5.1.1 The email account that you tried to reach\n'
                     '550-5.1.1 does not exist.\n'
                     '550 5.1.1 https://support.test/x\n'
                     '354 go'),
            ('data',),
            ('send', '250-2.0.0 Ok\n250 2.0.0 queued as A1'),
            ('eof',)])
        self.open(s)
        res, _ = self.txn('rcpt=ok@remote.test', 'rcpt=full@remote.test',
                          'rcpt=gone@remote.test')
        self.assertEqual(res['ok@remote.test'],
                         (250, '2.0.0', 'end of DATA', 'Ok\\nqueued as A1'))
        self.assertEqual(res['full@remote.test'],
                         (452, '4.2.2', 'RCPT TO',
                          'Mailbox full\\ntry later\\n(quota)'))
        self.assertEqual(res['gone@remote.test'],
                         (550, '5.1.1', 'RCPT TO',
                          'The email account that you tried to reach\\n'
                          'does not exist.\\nhttps://support.test/x'))
        self.drive.cmd('close')
        self.finish(s)

    def test_mail_refused_pipelined(self):
        s = self.server(greet() + self.envelope(
            ['b@remote.test', 'c@remote.test'],
            '452 4.3.1 Insufficient system storage\n'
            '503 5.5.1 Error: need MAIL command\n'
            '503 5.5.1 Error: need MAIL command\n'
            '503 5.5.1 Error: need MAIL command') + [
            # nothing open: the next transaction needs no RSET
            ] + self.accept('d@remote.test') + [('eof',)])
        self.open(s)
        res, end = self.txn('rcpt=b@remote.test', 'rcpt=c@remote.test')
        want = (452, '4.3.1', 'MAIL FROM', 'Insufficient system storage')
        self.assertEqual(res, {'b@remote.test': want, 'c@remote.test': want})
        self.assertEqual(end, ['txn', '0', '1'])
        res, end = self.txn('rcpt=d@remote.test')
        self.assertEqual(res['d@remote.test'][0], 250)
        self.drive.cmd('close')
        self.finish(s)

    def test_mail_refused_lockstep(self):
        s = self.server(greet([]) + [
            ('expect', 'MAIL FROM:<a@client.test>'),
            ('send', '550 5.7.1 sender rejected'),
            ('eof',)])
        self.open(s)
        res, _ = self.txn('rcpt=b@remote.test', 'rcpt=c@remote.test')
        want = (550, '5.7.1', 'MAIL FROM', 'sender rejected')
        self.assertEqual(res, {'b@remote.test': want, 'c@remote.test': want})
        self.drive.cmd('close')
        self.finish(s)

    def test_data_refused_then_rset(self):
        s = self.server(greet() + self.envelope(
            ['b@remote.test', 'c@remote.test'],
            '250 ok\n250 ok\n550 5.1.1 no\n451 4.3.0 try again later') + [
            # MAIL was accepted: the next transaction starts with RSET
            ('expect', 'RSET'), ('send', '250 2.0.0 Ok')]
            + self.accept('b@remote.test') + [('eof',)])
        self.open(s)
        res, end = self.txn('rcpt=b@remote.test', 'rcpt=c@remote.test')
        self.assertEqual(res['b@remote.test'],
                         (451, '4.3.0', 'DATA', 'try again later'))
        self.assertEqual(res['c@remote.test'][:3], (550, '5.1.1', 'RCPT TO'))
        self.assertEqual(end, ['txn', '0', '1'])
        res, end = self.txn('rcpt=b@remote.test')
        self.assertEqual(res['b@remote.test'][0], 250)
        self.drive.cmd('close')
        self.finish(s)

    def test_no_recipient_pipelined_354(self):
        """RFC 2920 3.1: DATA accepted though no RCPT was: send "."."""
        s = self.server(greet() + self.envelope(
            ['b@remote.test'], '250 ok\n550 5.1.1 no\n354 go') + [
            ('expect', '.'),
            ('send', '554 5.5.1 no valid recipients'),
            ('eof',)])
        self.open(s)
        res, end = self.txn('rcpt=b@remote.test')
        self.assertEqual(res['b@remote.test'][:3], (550, '5.1.1', 'RCPT TO'))
        self.assertEqual(end, ['txn', '0', '1'])
        self.drive.cmd('close')
        self.finish(s)

    def test_no_recipient_lockstep(self):
        """No DATA; the open transaction is left to the next RSET, and a
        session that closes says only QUIT."""
        s = self.server(greet([]) + [
            ('expect', 'MAIL FROM:<a@client.test>'),
            ('send', '250 ok'),
            ('expect', 'RCPT TO:<b@remote.test>'),
            ('send', '450 4.2.1 later'),
            ('eof',)])
        self.open(s)
        res, end = self.txn('rcpt=b@remote.test')
        self.assertEqual(res['b@remote.test'],
                         (450, '4.2.1', 'RCPT TO', 'later'))
        self.drive.cmd('close')
        self.finish(s)
        self.assertEqual(s.transcripts[0][-1], 'QUIT')

    def test_many_recipients_window(self):
        """More recipients than the pipelining window, with a server that
        answers each command as it comes."""
        n = 250
        script = greet() + [self.mail(), ('send', '250 ok')]
        for i in range(n):
            script += [('expect', 'RCPT TO:<r%d@remote.test>' % i),
                       ('send', '250 ok' if i % 2 else '550 5.1.1 no')]
        script += [('expect', 'DATA'), ('send', '354 go'), ('data',),
                   ('send', '250 2.0.0 done'), ('eof',)]
        s = self.server(script)
        self.open(s)
        res, _ = self.txn(*['rcpt=r%d@remote.test' % i for i in range(n)])
        for i in range(n):
            self.assertEqual(res['r%d@remote.test' % i][0],
                             250 if i % 2 else 550)
        self.drive.cmd('close')
        self.finish(s)

    # ---- session start

    def test_greeting_refused(self):
        for code in ('554 5.7.1 go away', '421 4.3.2 busy'):
            s = self.server([('send', code), ('eof',)])
            r = self.drive.one('open %s 127.0.0.1 %d' % (NAME, s.port))
            self.assertEqual(r[:5], ['open', 'fail', code[:3], code[4:9],
                                     'greeting'])
            self.finish(s)

    def test_ehlo_5xx_helo(self):
        s = self.server([('send', '220-' + NAME + '\n220 multi-line hello'),
                         ('expect', 'EHLO client.test'),
                         ('send', '502 5.5.2 Error: command not recognized'),
                         ('expect', 'HELO client.test'),
                         ('send', '250 ' + NAME),
                         ('expect', 'MAIL FROM:<a@client.test>'),
                         ('send', '250 ok'),
                         ('expect', 'RCPT TO:<b@remote.test>'),
                         ('send', '250 ok'),
                         ('expect', 'DATA'),
                         ('send', '354 go'),
                         ('data',),
                         ('send', '250 ok'),
                         ('eof',)])
        r = self.open(s)
        self.assertEqual(r[2], '')
        res, _ = self.txn('8bit', 'rcpt=b@remote.test')
        self.assertEqual(res['b@remote.test'][0], 250)
        self.drive.cmd('close')
        self.finish(s)

    def test_ehlo_4xx_and_lhlo_5xx(self):
        s = self.server([('send', '220 hi'), ('expect', 'EHLO client.test'),
                         ('send', '421 4.7.0 too busy'), ('eof',)])
        r = self.drive.one('open %s 127.0.0.1 %d' % (NAME, s.port))
        self.assertEqual(r[:5], ['open', 'fail', '421', '4.7.0', 'EHLO'])
        self.finish(s)
        # LMTP has no HELO to fall back to
        s = self.server([('send', '220 hi'), ('expect', 'LHLO client.test'),
                         ('send', '500 5.5.1 what'), ('eof',)])
        self.drive.cmd('opts role=lmtp')
        r = self.drive.one('open %s 127.0.0.1 %d' % (NAME, s.port))
        self.assertEqual(r[:5], ['open', 'fail', '500', '5.5.1', 'LHLO'])
        self.finish(s)

    def test_connect_refused(self):
        s = self.server()
        port = s.port
        s.close()
        r = self.drive.one('open %s 127.0.0.1 %d' % (NAME, port))
        self.assertEqual(r[:5], ['open', 'fail', '0', '4.4.1', '-'])
        self.assertIn('connect to %s[127.0.0.1]:%d: ' % (NAME, port), r[5])

    # ---- checks before sending

    def test_size_too_small(self):
        s = self.server(greet(['PIPELINING', 'SIZE 20']) + [('eof',)])
        self.open(s)
        res, end = self.txn('rcpt=b@remote.test', 'rcpt=c@remote.test')
        want = (0, '5.3.4', 'MAIL FROM',
                'message size %d exceeds the size limit 20 of %s'
                % (self.size, PEER))
        self.assertEqual(res, {'b@remote.test': want, 'c@remote.test': want})
        self.assertEqual(end, ['txn', '0', '1'])
        self.drive.cmd('close')
        self.finish(s)
        self.assertEqual(s.transcripts[0], ['EHLO client.test', 'QUIT'])

    def test_smtputf8_missing_and_offered(self):
        s = self.server(greet() + [('eof',)],
                        greet(EXT + ['SMTPUTF8']) + [
                            self.mail(' SMTPUTF8'),
                            ('expect', 'RCPT TO:<j\u00f6rg@remote.test>'),
                            ('expect', 'DATA'),
                            ('send', '250 ok\n250 ok\n354 go'),
                            ('data',), ('send', '250 ok'), ('eof',)])
        self.open(s)
        res, _ = self.txn('smtputf8', 'rcpt=j\u00f6rg@remote.test')
        self.assertEqual(res['j\u00f6rg@remote.test'],
                         (0, '5.6.7', 'MAIL FROM',
                          'SMTPUTF8 is required, but was not offered by '
                          + PEER))
        self.drive.cmd('close')
        self.open(s)
        res, _ = self.txn('smtputf8', 'rcpt=j\u00f6rg@remote.test')
        self.assertEqual(res['j\u00f6rg@remote.test'][0], 250)
        self.drive.cmd('close')
        self.finish(s)

    def test_unreadable_message(self):
        s = self.server(greet() + [('eof',)])
        self.open(s)
        out = self.drive.cmd('txn from=a@x file=%s/none rcpt=b@remote.test'
                             % self.dir)
        r = rcpts(out)['b@remote.test']
        self.assertEqual(r[:2], (0, '4.3.0'))
        self.assertIn('cannot read the queued message', r[3])
        self.drive.cmd('close')
        self.finish(s)

    # ---- LMTP

    def test_lmtp_reply_per_recipient(self):
        path = os.path.join(self.dir, 'lmtp.sock')
        s = self.server(greet(['PIPELINING', 'ENHANCEDSTATUSCODES'],
                              verb='LHLO') + [
            ('expect', 'MAIL FROM:<a@client.test>'),
            ('expect', 'RCPT TO:<a1@local.test>'),
            ('expect', 'RCPT TO:<a2@local.test>'),
            ('expect', 'RCPT TO:<a3@local.test>'),
            ('expect', 'RCPT TO:<a4@local.test>'),
            ('expect', 'DATA'),
            ('send', '250 2.1.0 ok\n250 2.1.5 ok\n250 2.1.5 ok\n'
                     '550 5.1.1 <a3@local.test> User doesn\'t exist\n'
                     '250 2.1.5 ok\n354 go'),
            ('data',),
            ('send', '250 2.0.0 <a1@local.test> Saved\n'
                     '452 4.2.2 <a2@local.test> Quota exceeded\n'
                     '552 5.2.2 <a4@local.test> Mailbox full'),
            ('eof',)], unix_path=path)
        self.drive.cmd('opts role=lmtp')
        r = self.drive.one('open-unix ' + path)
        self.assertEqual(r[:3], ['open', 'ok', 'PIPELINING,'
                                               'ENHANCEDSTATUSCODES'])
        res, end = self.txn(*['rcpt=a%d@local.test' % i for i in (1, 2, 3,
                                                                  4)])
        self.assertEqual(res['a1@local.test'],
                         (250, '2.0.0', 'end of DATA',
                          '<a1@local.test> Saved'))
        self.assertEqual(res['a2@local.test'][:3],
                         (452, '4.2.2', 'end of DATA'))
        self.assertEqual(res['a3@local.test'][:3], (550, '5.1.1', 'RCPT TO'))
        self.assertEqual(res['a4@local.test'][:3],
                         (552, '5.2.2', 'end of DATA'))
        self.assertEqual(end, ['txn', '1', '1'])
        self.drive.cmd('close')
        self.finish(s)

    def test_lmtp_lost_after_some_replies(self):
        s = self.server(greet(['PIPELINING'], verb='LHLO') + [
            ('expect', 'MAIL FROM:<a@client.test>'),
            ('expect', 'RCPT TO:<a1@local.test>'),
            ('expect', 'RCPT TO:<a2@local.test>'),
            ('expect', 'DATA'),
            ('send', '250 ok\n250 ok\n250 ok\n354 go'),
            ('data',),
            ('send', '250 2.0.0 saved'),
            ('close',)])
        self.open(s, 'role=lmtp')
        res, end = self.txn('rcpt=a1@local.test', 'rcpt=a2@local.test')
        self.assertEqual(res['a1@local.test'][0], 250)
        self.assertEqual(res['a2@local.test'],
                         (0, '4.4.2', 'end of DATA',
                          'lost connection with %s while sending end of DATA'
                          % PEER))
        self.assertEqual(end, ['txn', '1', '0'])
        self.finish(s)

    # ---- failures mid-way

    def test_dropped_mid_data(self):
        big = os.path.join(self.dir, 'big')
        with open(big, 'wb') as f:
            f.write((b'x' * 998 + b'\r\n') * 900)
        s = self.server(greet() + [
            ('expect_re', 'MAIL FROM:<a@client.test> SIZE=\\d+'),
            ('expect', 'RCPT TO:<b@remote.test>'),
            ('expect', 'RCPT TO:<c@remote.test>'),
            ('expect', 'DATA'),
            ('send', '250 ok\n250 ok\n550 5.1.1 no\n354 go'),
            ('data_part', 5000)])
        self.open(s)
        out = self.drive.cmd('txn from=a@client.test file=%s '
                             'rcpt=b@remote.test rcpt=c@remote.test' % big)
        res = rcpts(out)
        self.assertEqual(res['b@remote.test'][:3],
                         (0, '4.4.2', 'end of DATA'))
        self.assertRegex(res['b@remote.test'][3],
                         '^lost connection with %s while sending '
                         '(message body|end of DATA)$'
                         % PEER.replace('[', '\\[').replace(']', '\\]'))
        self.assertEqual(res['c@remote.test'][:3], (550, '5.1.1', 'RCPT TO'))
        self.assertEqual(out[-1], ['txn', '0', '0'])
        self.finish(s)

    def test_slow_server_timeouts(self):
        s = self.server(greet() + self.envelope(
            ['b@remote.test'], '250 ok\n250 ok\n354 go') + [
            ('data',), ('hang',)],
            [('hang',)])
        self.open(s, 'end=300')
        t0 = time.monotonic()
        res, end = self.txn('rcpt=b@remote.test')
        self.assertEqual(res['b@remote.test'],
                         (0, '4.4.2', 'end of DATA',
                          'conversation with %s timed out while sending '
                          'end of DATA' % PEER))
        self.assertEqual(end, ['txn', '0', '0'])
        self.assertLess(time.monotonic() - t0, 60)
        self.drive.cmd('close')
        # the greeting's own time-out
        self.drive.cmd('opts greeting=300')
        r = self.drive.one('open %s 127.0.0.1 %d' % (NAME, s.port))
        self.assertEqual(r, ['open', 'fail', '0', '4.4.2', 'greeting',
                             'conversation with %s timed out while '
                             'receiving the initial server greeting' % PEER])
        self.finish(s)

    def test_malformed_and_421(self):
        two = ['b@remote.test', 'c@remote.test']
        s = self.server(
            greet() + self.envelope(two, '250 ok\n250-ok\n251 mixed codes')
            + [('hang',)],
            greet() + self.envelope(
                two, '250 ok\n421 4.4.2 closing, idle too long')
            + [('close',)])
        self.open(s)
        res, end = self.txn('rcpt=b@remote.test', 'rcpt=c@remote.test')
        want = (0, '4.5.0', 'RCPT TO',
                'protocol error with %s while sending RCPT TO: reply lines '
                'with different codes' % PEER)
        self.assertEqual(res, {'b@remote.test': want, 'c@remote.test': want})
        self.assertEqual(end, ['txn', '0', '0'])
        self.drive.cmd('close')
        self.open(s)
        res, end = self.txn('rcpt=b@remote.test', 'rcpt=c@remote.test')
        want = (421, '4.4.2', 'RCPT TO', 'closing, idle too long')
        self.assertEqual(res, {'b@remote.test': want, 'c@remote.test': want})
        self.assertEqual(end, ['txn', '0', '0'])
        self.drive.cmd('close')
        self.finish(s)

    # ---- STARTTLS and AUTH

    def test_starttls(self):
        s = self.server(
            self.tls(['PIPELINING', 'AUTH LOGIN'])
            + self.accept('b@remote.test',
                          ('expect', 'MAIL FROM:<a@client.test>'))
            + [('eof',)],
            greet(EXT) + [('eof',)],
            greet(EXT + ['STARTTLS']) + [
                ('expect', 'STARTTLS'), ('send', '454 4.7.0 TLS not now')]
            + self.accept('b@remote.test') + [('eof',)],
            greet(EXT + ['STARTTLS']) + [
                ('expect', 'STARTTLS'), ('send', '220 go ahead'),
                ('starttls_abort', self.cert, self.key)],
            greet(EXT + ['STARTTLS']) + [
                ('expect', 'STARTTLS'), ('send', '220 go ahead'),
                ('recv',), ('send', 'this is not TLS'), ('eof',)])
        # encrypt, the CA unknown: not verified; the new EHLO counts
        self.open(s)
        r = self.drive.one('starttls encrypt ' + NAME)
        self.assertEqual(r[:3], ['starttls', 'ok', '0'])
        self.assertTrue(r[3].startswith('TLSv1.'), r)
        res, _ = self.txn('rcpt=b@remote.test')
        self.assertEqual(res['b@remote.test'][0], 250)
        self.drive.cmd('close')
        # not offered
        self.open(s)
        r = self.drive.one('starttls encrypt ' + NAME)
        self.assertEqual(r, ['starttls', 'not-offered', '0', '-', '0',
                             '4.7.4', 'STARTTLS',
                             'STARTTLS not offered by ' + PEER])
        self.drive.cmd('close')
        # refused: the session goes on in clear
        self.open(s)
        r = self.drive.one('starttls encrypt ' + NAME)
        self.assertEqual(r, ['starttls', 'refused', '0', '-', '454', '4.7.0',
                             'STARTTLS', 'TLS not now'])
        res, _ = self.txn('rcpt=b@remote.test')
        self.assertEqual(res['b@remote.test'][0], 250)
        self.drive.cmd('close')
        # verify: a name the certificate does not have
        self.open(s)
        r = self.drive.one('starttls verify other.remote.test ' + self.ca)
        self.assertEqual(r[:7], ['starttls', 'tls-unverified', '0', '-', '0',
                                 '4.7.5', 'STARTTLS'])
        self.assertEqual(r[7], 'TLS with %s: certificate name mismatch: the '
                               'certificate does not name other.remote.test'
                         % PEER)
        self.drive.cmd('close')
        # the handshake fails
        self.open(s)
        r = self.drive.one('starttls encrypt ' + NAME)
        self.assertEqual(r[:7], ['starttls', 'tls-failed', '0', '-', '0',
                                 '4.7.5', 'STARTTLS'])
        self.assertIn('TLS handshake failed: ', r[7])
        self.drive.cmd('close')
        self.finish(s)

    def test_auth(self):
        b64 = (lambda t: base64.b64encode(t.encode()).decode())
        s = self.server(
            greet(EXT + ['AUTH PLAIN LOGIN', 'STARTTLS']) + [('eof',)],
            self.tls(['AUTH LOGIN CRAM-MD5']) + [
                ('expect', 'AUTH LOGIN'), ('send', '334 VXNlcm5hbWU6'),
                ('expect', b64('bob')), ('send', '334 UGFzc3dvcmQ6'),
                ('expect', b64('s3cret')),
                ('send', '235 2.7.0 Authentication successful'),
                ('eof',)],
            self.tls(['AUTH PLAIN LOGIN']) + [
                ('expect', 'AUTH PLAIN ' + b64('\0bob\0wrong')),
                ('send', '535 5.7.8 Error: authentication failed'),
                ('eof',)])
        # never in clear: nothing is sent
        self.open(s)
        r = self.drive.one('auth bob s3cret')
        self.assertEqual(r, ['auth', 'not-allowed', '0', '4.7.11', 'AUTH',
                             'refusing to send credentials to %s without '
                             'TLS' % PEER])
        self.drive.cmd('close')
        for pw, want in (('s3cret', ['ok', '235', '2.7.0', 'AUTH',
                                     'Authentication successful']),
                         ('wrong', ['refused', '535', '5.7.8', 'AUTH',
                                    'Error: authentication failed'])):
            self.open(s)
            self.assertEqual(self.drive.one('starttls encrypt ' + NAME)[1],
                             'ok')
            self.assertEqual(self.drive.one('auth bob ' + pw),
                             ['auth'] + want)
            self.drive.cmd('close')
        self.finish(s)
        self.assertEqual(s.transcripts[0], ['EHLO client.test', 'QUIT'])

    # ---- the connection cache

    def test_cache_rset_before_reuse(self):
        one = self.accept('b@remote.test')
        s = self.server(greet() + one + [
            ('expect', 'RSET'), ('send', '250 2.0.0 Ok')] + one + [
            ('expect', 'RSET'), ('send', '421 4.4.2 idle too long'),
            ('eof',)])
        self.drive.cmd('cache 60000 300000')
        self.open(s)
        self.txn('rcpt=b@remote.test')
        self.assertEqual(self.drive.cmd('put remote.test'), [['put']])
        self.assertEqual(self.drive.one('get other.test'), ['get', 'miss'])
        self.assertEqual(self.drive.one('get remote.test'), ['get', 'hit'])
        res, _ = self.txn('rcpt=b@remote.test')
        self.assertEqual(res['b@remote.test'][0], 250)
        self.drive.cmd('put remote.test')
        # the RSET fails: the session is closed, not handed out
        self.assertEqual(self.drive.one('get remote.test'), ['get', 'miss'])
        self.assertEqual(self.drive.one('stats'), ['stats', '1', '1'])
        self.finish(s)

    def test_cache_idle_expiry(self):
        s = self.server(greet() + [('eof',)])
        self.drive.cmd('cache 200 300000')
        self.open(s)
        self.drive.cmd('put remote.test')
        # the reaper closes it (QUIT) without anyone asking
        deadline = time.monotonic() + 30
        while not s.closed and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(s.closed, [0])
        self.assertEqual(self.drive.one('get remote.test'), ['get', 'miss'])
        self.assertEqual(self.drive.one('stats'), ['stats', '1', '0'])
        self.finish(s)
        self.assertEqual(s.transcripts[0], ['EHLO client.test', 'QUIT'])

    def test_cache_max_age(self):
        s = self.server(greet() + [('eof',)])
        self.drive.cmd('cache 60000 0')
        self.open(s)
        # connected longer ago than the age limit: closed at once
        self.drive.cmd('put remote.test')
        self.assertEqual(self.drive.one('get remote.test'), ['get', 'miss'])
        self.finish(s)


if __name__ == '__main__':
    unittest.main(verbosity=2)
