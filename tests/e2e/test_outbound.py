"""Outbound delivery over SMTP with real peers on loopback.

Daemon A is the relay of its client (relay_access for 127.0.0.0/8,
deliver_smtp, store_mbox for its own mail and the DSNs to the sender
a@localhost); daemon B is another modmta on 127.0.0.31 that receives for
remote.test (store_mbox; in some tests the scriptable test module
core/tests/modules/script.c answers RCPT for it, or auth_sasl guards a
submission-like listener). A finds B through its transport table, its
relayhost, or MX records that a dnsmasq on a loopback port serves
(dnsserver.py). Mail goes to A with python3's smtplib; what arrives at B,
A's log, A's queue (`modmtactl queue`) and the DSNs in A's mailbox are
checked. What a real server does not do on request (a reply lost after
".", a 421 greeting, a broken STARTTLS, no EHLO) comes from a scripted
server (smtppeer.py) in place of B.
"""

import email
import email.policy
import os
import re
import signal
import socket
import subprocess
import threading

import harness
from dnsserver import DnsServer
from smtppeer import SmtpPeer
from harness import make_message, send_mail, smtp, wait_for

TEST_MODULE_DIR = os.environ.get('TEST_MODULE_DIR', '')

B_HOST = '127.0.0.31'
DEAD_HOST = '127.0.0.32'        # nothing listens there
SENDER = 'a@localhost'


def raw_headers(msg):
    """(header block, body) of a stored mbox message (bytes), the From_
    line dropped; the header block keeps its folding."""
    _, _, rest = msg.partition(b'\n')
    head, _, body = rest.partition(b'\n\n')
    return head + b'\n', body


def drop_headers(head, names):
    """The header block without the fields in names (lower case),
    continuation lines included."""
    out, skip = [], False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b' ', b'\t'):
            if not skip:
                out.append(line)
            continue
        skip = line.split(b':', 1)[0].strip().lower() in names
        if not skip:
            out.append(line)
    return b''.join(out)


def parse_dsn(msg):
    """A stored DSN as an email.message, with its per-recipient blocks
    keyed by final recipient."""
    _, _, rest = msg.partition(b'\n')
    m = email.message_from_bytes(rest, policy=email.policy.compat32)
    parts = m.get_payload()
    status = [p for p in parts
              if p.get_content_type() == 'message/delivery-status'][0]
    blocks = status.get_payload()
    rcpts = {b['Final-Recipient'].split(';', 1)[1].strip(): b
             for b in blocks[1:]}
    return m, rcpts


class OutboundCase(harness.TestCase):
    """The peers and checks of the tests below (no tests of its own)."""

    # ---- peers

    def dns(self):
        d = DnsServer(os.path.join(self.tmp, 'dns'))
        self.addCleanup(d.stop)
        self.peer_logs.append(d.logpath)
        return d

    def relay_a(self, dns=None, start=True, queue=None, **dsmtp):
        """Daemon A: relays for 127.0.0.0/8 through deliver_smtp with the
        given settings; its own mail (a@localhost, DSNs) in mbox."""
        conf = {'module': 'deliver_smtp', 'connect_timeout': 5,
                'command_timeout': 30, 'data_timeout': 30}
        conf.update(dsmtp)
        a = self.daemon(start=False)
        a.overrides['queue'] = dict({'retry_min': 3600, 'retry_max': 3600},
                                    **(queue or {}))
        a.overrides['modules'] = [
            {'module': 'relay_access', 'mynetworks': ['127.0.0.0/8']},
            conf,
            {'module': 'store_mbox', 'directory': a.maildir, 'users': 'any'},
        ]
        if dns is not None:
            a.overrides['dns'] = dns.config()
        else:
            # nothing to resolve: a server that would answer nothing
            a.overrides['dns'] = {'servers': ['127.0.0.1:9'], 'timeout': 1}
        if start:
            a.start()
        return a

    def remote_b(self, listeners=None, script=None, start=True,
                 modules=None, **overrides):
        """Daemon B on 127.0.0.31, final destination of remote.test; with
        script, the test module answers RCPT as it says."""
        specs = listeners or [{'name': 'smtp', 'tls': 'none'}]
        for spec in specs:
            spec.setdefault('host', B_HOST)
        b = self.daemon(specs, start=False, **overrides)
        b.overrides['hostname'] = 'mx1.remote.test'
        b.overrides['local_domains'] = ['remote.test']
        mods = list(modules or [])
        if script is not None:
            self.need_test_modules()
            b.overrides['module_path'] = [harness.MODULE_DIR,
                                          TEST_MODULE_DIR]
            mods.append({'module': 'script', 'name': 'answers',
                         'rcpt': script})
        mods.append({'module': 'store_mbox', 'directory': b.maildir,
                     'users': 'any'})
        b.overrides['modules'] = mods
        if start:
            b.start()
        return b

    def need_test_modules(self):
        if not TEST_MODULE_DIR:
            self.fail('set TEST_MODULE_DIR (meson test does)')

    def send(self, a, rcpts, msgid='out@e2e.test', body='hello\r\n',
             sender=SENDER, mail_options=()):
        msg = make_message(msgid, body=body, sender=sender, to=rcpts[0])
        with smtp(a.port()) as s:
            qid = send_mail(s, sender, rcpts, msg, mail_options)
        return qid, msg

    def via_transport(self, b, **dsmtp):
        """A with a transport entry for remote.test pointing at B."""
        return self.relay_a(transport={
            'remote.test': 'smtp:[%s]:%d' % (B_HOST, b.port())}, **dsmtp)

    def remote_dns(self):
        """dnsmasq with remote.test's MX mx1.remote.test on B's address."""
        dns = self.dns()
        dns.mx('remote.test', 'mx1.remote.test', 10)
        dns.host('mx1.remote.test', B_HOST)
        return dns

    def tls_peers(self):
        """A CA, and B with STARTTLS and a certificate for
        mx1.remote.test signed by it."""
        ca = harness.make_ca(self.tmp)
        cert, key = harness.make_signed_cert(self.tmp, ca,
                                             ['mx1.remote.test'])
        b = self.remote_b([{'name': 'smtp', 'tls': 'starttls'}],
                          tls={'cert': cert, 'key': key})
        return ca, b

    def auth_peers(self, password):
        """B with a submission-like listener (STARTTLS required, AUTH
        required, bob:pw) and A relaying to it (TLS verified against the
        test CA) with the given password in an auth map file."""
        ca = harness.make_ca(self.tmp)
        # the relay host is named by its address: the certificate too
        cert, key = harness.make_signed_cert(self.tmp, ca,
                                             ['mx1.remote.test',
                                              'IP:' + B_HOST])
        passdb = os.path.join(self.tmp, 'passdb')
        with open(passdb, 'w') as f:
            f.write('bob:{PLAIN}pw\n')
        b = self.remote_b([{'name': 'submission', 'tls': 'starttls-required',
                            'auth': 'required'}],
                          modules=[{'module': 'auth_sasl',
                                    'passdb': 'file:' + passdb,
                                    'mechanisms': ['PLAIN', 'LOGIN']}],
                          tls={'cert': cert, 'key': key})
        relay = '[%s]:%d' % (B_HOST, b.port('submission'))
        creds = os.path.join(self.tmp, 'credentials')
        fd = os.open(creds, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write('# next hop -> user:password\n%s bob:%s\n'
                    % (relay, password))
        a = self.relay_a(relayhost=relay, auth='file:' + creds,
                         tls='verify', tls_ca_file=ca[0], start=False)
        return a, b, creds

    @staticmethod
    def accept(sock):
        """A connection waiting on a listening socket, or None."""
        sock.settimeout(0.1)
        try:
            return sock.accept()
        except socket.timeout:
            return None

    # ---- checks

    def ctl_ok(self, d, *args):
        r = d.ctl(*args)
        self.assertEqual(r.returncode, 0, '%s: %s%s'
                         % (' '.join(args), r.stdout, r.stderr))
        return r.stdout

    def queue_text(self, a):
        return self.ctl_ok(a, 'queue')

    def log_lines(self, d, pattern):
        return [l for l in d.log_text().splitlines() if re.search(pattern, l)]

    def wait_log(self, d, pattern, n=1, what=None):
        return harness.wait_for(
            lambda: (lambda l: l if len(l) >= n else None)(
                self.log_lines(d, pattern)),
            what=what or '%d log line(s) matching %r' % (n, pattern))

    def wait_sessions_closed(self, d):
        """Until every session d logged has ended."""
        harness.wait_for(lambda: len(self.log_lines(d, r': connect from='))
                         == len(self.log_lines(d, r': disconnect from=')),
                         what='the sessions at %s to end' % d.dir)

    def arrived(self, a, b, user, n=1):
        """Wait for n messages in user's mailbox at B and return them;
        fail at once, with the reason, if A defers or bounces a message
        to that user meanwhile."""
        start = len(a.log_text())
        bad = re.compile(r'to=<%s@[^>]*> .*status=(deferred|bounced)'
                         % re.escape(user))

        def done():
            m = bad.search(a.log_text()[start:])
            if m:
                self.fail('A did not deliver: ' + m.group(0))
            msgs = b.messages(user)
            return msgs if len(msgs) >= n else None
        return harness.wait_for(done, what='%d message(s) for %s at B'
                                % (n, user), interval=0.1)

    def assertSameMessage(self, stored, sent):
        """The message arrived as sent: body, and every header but the
        trace fields the hops added, byte for byte (mbox stores LF)."""
        head, body = raw_headers(stored)
        want_head, _, want_body = sent.replace(b'\r\n', b'\n').partition(
            b'\n\n')
        self.assertEqual(drop_headers(head, (b'received', b'return-path',
                                             b'delivered-to',
                                             b'x-original-to')),
                         want_head + b'\n')
        # store_mbox ends each message with an empty line
        self.assertEqual(body, want_body + b'\n')

    def dsns(self, a):
        return [m for m in a.messages('a') if b'\nReturn-Path: <>' in m]


class Outbound(OutboundCase):
    """Delivery from A to B, a real modmta."""

    def test_transport_entry(self):
        b = self.remote_b()
        a = self.via_transport(b)
        # leading dots (stuffed again on the way out), a 998-octet line,
        # 8-bit text sent with BODY=8BITMIME, more than any one buffer
        body = ('line one\r\n.leading dot\r\n..two dots\r\n.\r\n'
                + 'x' * 998 + '\r\ntabs\there, gr\u00fc\u00dfe\r\n'
                + ''.join('filler line %06d\r\n' % i for i in range(8000))
                + 'last\r\n')
        rcpts = ['one@remote.test', 'two@remote.test', 'three@remote.test']
        qid, sent = self.send(a, rcpts, body=body,
                              mail_options=['BODY=8BITMIME'])
        for user in ('one', 'two', 'three'):
            got = self.arrived(a, b, user)
            self.assertEqual(len(got), 1)
            self.assertSameMessage(got[0], sent)
        a.wait_queue_empty()
        relayed = self.log_lines(a, r'%s: to=<\S+@remote\.test> '
                                 r'relay=%s\[%s\]:%d .*status=sent'
                                 % (qid, re.escape(B_HOST),
                                    re.escape(B_HOST), b.port()))
        self.assertEqual(len(relayed), 3, a.log_text())
        # one transaction: B queued one message for the three of them
        self.assertEqual(len(self.log_lines(b, r'nrcpt=3\b')), 1,
                         b.log_text())
        self.assertEqual(self.dsns(a), [])

    def assertDeliveredByMx(self, b, dns):
        """A message from A through dns's MX for remote.test arrives at B
        whole, from mx1.remote.test, with nothing to the sender."""
        a = self.relay_a(dns, port=b.port())
        qid, sent = self.send(a, ['bob@remote.test'])
        self.assertSameMessage(self.arrived(a, b, 'bob')[0], sent)
        a.wait_queue_empty()
        self.assertTrue(self.log_lines(
            a, r'%s: to=<bob@remote\.test> relay=mx1\.remote\.test\[%s\]:%d'
            r' .*status=sent' % (qid, re.escape(B_HOST), b.port())),
            a.log_text())
        self.assertEqual(self.dsns(a), [])

    def test_mx(self):
        b = self.remote_b()
        self.assertDeliveredByMx(b, self.remote_dns().start())

    def test_dead_first_mx(self):
        b = self.remote_b()
        # the better MX has an address where nothing listens
        dns = self.remote_dns()
        dns.mx('remote.test', 'mx0.remote.test', 5)
        dns.host('mx0.remote.test', DEAD_HOST)
        self.assertDeliveredByMx(b, dns.start())

    def test_null_mx(self):
        dns = self.dns()
        dns.null_mx('nullmx.test')
        dns.start()
        a = self.relay_a(dns)
        qid, _ = self.send(a, ['bob@nullmx.test'])
        a.wait_messages('a', 1)
        a.wait_queue_empty()
        dsns = self.dsns(a)
        self.assertEqual(len(dsns), 1)
        m, rcpts = parse_dsn(dsns[0])
        self.assertEqual(list(rcpts), ['bob@nullmx.test'])
        self.assertEqual(rcpts['bob@nullmx.test']['Action'], 'failed')
        self.assertEqual(rcpts['bob@nullmx.test']['Status'], '5.1.10')
        # failed once, never deferred or tried again
        self.assertEqual(len(self.log_lines(a, r'%s: to=<bob@nullmx\.test>'
                                            % qid)), 1, a.log_text())
        self.assertFalse(self.log_lines(a, r'status=deferred'))

    def test_tempfail_then_flush(self):
        answers = {'bob@remote.test': {
            'verdict': 'tempfail',
            'reply': [451, '4.7.1', 'greylisted, come back later']}}
        b = self.remote_b(script=answers)
        a = self.via_transport(b)
        qid, sent = self.send(a, ['bob@remote.test'])
        self.wait_log(a, r'%s: to=<bob@remote\.test> .*status=deferred'
                      % qid)
        self.assertEqual(a.queue_ids(), {qid})
        q = self.queue_text(a)
        self.assertIn('bob@remote.test', q)
        self.assertIn('(host %s[%s] said: 451 4.7.1 greylisted, come back '
                      'later (in reply to RCPT TO command))'
                      % (B_HOST, B_HOST), q)
        self.assertEqual(b.messages('bob'), [])
        # B now takes it (the script module gone), A flushed
        b.overrides['modules'] = [m for m in b.overrides['modules']
                                  if m['module'] != 'script']
        b.write_config()
        self.ctl_ok(b, 'reload')
        self.wait_log(b, r'generation=2 .*installed')
        # a session keeps the configuration it started with: let A's
        # cached one (cache_idle) end first
        self.wait_sessions_closed(b)
        self.ctl_ok(a, 'flush')
        self.assertSameMessage(self.arrived(a, b, 'bob')[0], sent)
        a.wait_queue_empty()
        self.assertEqual(len(b.messages('bob')), 1)
        self.assertEqual(a.messages('a'), [], 'mail to the sender')
        self.assertEqual(len(self.log_lines(
            a, r'%s: to=<bob@remote\.test> .*status=sent' % qid)), 1)

    def test_permanent_failure_dsn(self):
        answers = {'bad@remote.test': {
            'verdict': 'reject', 'reply': [550, '5.1.1', 'no such user']}}
        b = self.remote_b(script=answers)
        dns = self.remote_dns().start()
        a = self.relay_a(dns, port=b.port())
        qid, _ = self.send(a, ['bad@remote.test'], msgid='bad@e2e.test')
        a.wait_messages('a', 1)
        a.wait_queue_empty()
        dsns = self.dsns(a)
        self.assertEqual(len(dsns), 1)
        m, rcpts = parse_dsn(dsns[0])
        self.assertEqual(m['To'], '<%s>' % SENDER)
        self.assertEqual(list(rcpts), ['bad@remote.test'])
        r = rcpts['bad@remote.test']
        self.assertEqual(r['Action'], 'failed')
        self.assertEqual(r['Status'], '5.1.1')
        self.assertEqual(r['Remote-MTA'], 'dns; mx1.remote.test')
        self.assertEqual(r['Diagnostic-Code'], 'smtp; 550 5.1.1 no such user')
        # the headers of the message come back
        self.assertIn(b'Message-ID: <bad@e2e.test>', dsns[0])
        self.assertEqual(b.messages('bad'), [])

    def test_mixed_results(self):
        answers = {
            'later@remote.test': {'verdict': 'tempfail',
                                  'reply': [452, '4.2.2', 'mailbox full']},
            'bad@remote.test': {'verdict': 'reject',
                                'reply': [550, '5.1.1', 'no such user']},
        }
        b = self.remote_b(script=answers)
        a = self.via_transport(b)
        qid, sent = self.send(a, ['ok@remote.test', 'later@remote.test',
                                  'bad@remote.test'])
        self.assertSameMessage(self.arrived(a, b, 'ok')[0], sent)
        a.wait_messages('a', 1)
        self.wait_log(a, r'%s: to=<later@remote\.test> .*status=deferred'
                      % qid)
        # one transaction, in which B accepted only ok@
        self.assertEqual(len(self.log_lines(
            b, r'from=<a@localhost> size=\d+ nrcpt=1\b')), 1, b.log_text())
        # the bounce's own queue files go just after its delivery
        harness.wait_for(lambda: a.queue_ids() == {qid},
                         what='only %s left in the queue' % qid)
        q = self.queue_text(a)
        self.assertIn('later@remote.test', q)
        self.assertIn('452 4.2.2 mailbox full', q)
        self.assertNotIn('ok@remote.test', q)
        self.assertNotIn('bad@remote.test', q)
        dsns = self.dsns(a)
        self.assertEqual(len(dsns), 1)
        _, rcpts = parse_dsn(dsns[0])
        self.assertEqual(list(rcpts), ['bad@remote.test'])
        self.assertEqual(rcpts['bad@remote.test']['Diagnostic-Code'],
                         'smtp; 550 5.1.1 no such user')

    def test_starttls_verify(self):
        ca, b = self.tls_peers()
        dns = self.remote_dns()
        # another domain whose MX host is B under a name its certificate
        # does not carry
        dns.mx('other.test', 'mx.other.test', 10)
        dns.host('mx.other.test', B_HOST)
        dns.start()
        a = self.relay_a(dns, port=b.port(), tls='verify',
                         tls_ca_file=ca[0])
        qid, sent = self.send(a, ['bob@remote.test'])
        self.assertSameMessage(self.arrived(a, b, 'bob')[0], sent)
        self.wait_log(a, r'%s: to=<bob@remote\.test> relay=mx1\.remote\.test'
                      r'\[%s\]:%d .*status=sent .* tls=TLSv1\.[23]/'
                      % (qid, re.escape(B_HOST), b.port()))
        self.assertRegex(harness.header(b.messages('bob')[0],
                                        'Received')[0], r'\bwith ESMTPS\b')
        qid2, _ = self.send(a, ['carol@other.test'], msgid='o@e2e.test')
        self.wait_log(a, r'%s: to=<carol@other\.test> .*status=deferred'
                      % qid2)
        q = self.queue_text(a)
        self.assertIn('carol@other.test', q)
        self.assertIn('Server certificate not verified', q)
        self.assertIn('mx.other.test', q)
        self.assertEqual(a.queue_ids(), {qid2})

    def test_relayhost_auth(self):
        a, b, _ = self.auth_peers('pw')
        a.start()
        qid, sent = self.send(a, ['bob@remote.test'])
        self.assertSameMessage(self.arrived(a, b, 'bob')[0], sent)
        a.wait_queue_empty()
        self.assertTrue(self.log_lines(b, r'auth ok client=\[127\.0\.0\.1\] '
                                       r'user="bob"'), b.log_text())
        self.assertRegex(harness.header(b.messages('bob')[0],
                                        'Received')[0], r'\bwith ESMTPSA\b')
        self.assertTrue(self.log_lines(
            a, r'%s: to=<bob@remote\.test> relay=%s\[%s\]:%d .*status=sent'
            % (qid, re.escape(B_HOST), re.escape(B_HOST),
               b.port('submission'))), a.log_text())

    def test_relayhost_wrong_password(self):
        a, b, _ = self.auth_peers('not the password')
        a.start()
        qid, _ = self.send(a, ['bob@remote.test'])
        self.wait_log(a, r'%s: to=<bob@remote\.test> .*status=deferred'
                      % qid)
        q = self.queue_text(a)
        self.assertIn('535 5.7.8', q)
        self.assertIn('SASL authentication failed', q)
        self.assertNotIn('not the password', a.log_text() + q)
        self.assertEqual(b.messages('bob'), [])

    def test_world_readable_credentials(self):
        a, _, creds = self.auth_peers('pw')
        os.chmod(creds, 0o644)
        a.ports = {'smtp': harness.free_port()}
        a.write_config()
        argv = harness.loopback_dns_argv(
            a.resolv, [harness.MODMTA, '--check-config', '-c', a.conf])
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        out = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0, out)
        self.assertRegex(out, r'modules.*1.*auth')
        self.assertIn('readable by everyone', out)

    def test_mail_loop(self):
        dns = self.remote_dns()
        # an MX pointing at A itself
        dns.mx('loop.test', 'mx.loop.test', 10)
        dns.host('mx.loop.test', '127.0.0.1')
        dns.start()
        # A on 127.0.0.1:P and B on 127.0.0.31:P, the same port number
        for _ in range(5):
            port = harness.free_port()
            a = self.relay_a(dns, port=port, start=False)
            b = self.remote_b(start=False)
            a.ports = {'smtp': port}
            b.ports = {'smtp': port}
            a.start(keep_ports=True)
            b.start(keep_ports=True)
            if a.port() == b.port() == port:
                break
            a.stop()        # a port was taken: new ones, new daemons
            b.stop()
        else:
            self.fail('no port free on both addresses')
        qid, _ = self.send(a, ['bob@loop.test'], msgid='loop@e2e.test')
        a.wait_messages('a', 1)
        dsns = self.dsns(a)
        self.assertEqual(len(dsns), 1)
        m, rcpts = parse_dsn(dsns[0])
        self.assertEqual(rcpts['bob@loop.test']['Action'], 'failed')
        self.assertEqual(rcpts['bob@loop.test']['Status'], '5.4.6')
        # no server replied: the reason is in the human-readable part
        self.assertIn('<bob@loop.test>: mail for loop.test loops back to '
                      'myself', m.get_payload()[0].get_payload())
        # another server on another loopback address is not this host
        qid2, sent = self.send(a, ['bob@remote.test'])
        self.assertSameMessage(self.arrived(a, b, 'bob')[0], sent)
        a.wait_queue_empty()
        self.assertEqual(len(self.dsns(a)), 1)
        self.assertTrue(self.log_lines(
            a, r'%s: to=<bob@remote\.test> relay=mx1\.remote\.test\[%s\]:%d'
            r' .*status=sent' % (qid2, re.escape(B_HOST), port)))

    def relay_ten(self, **dsmtp):
        """Ten messages relayed to B one after the other; the number of
        connections B saw from A."""
        b = self.remote_b()
        before = len(self.log_lines(b, r': connect from='))  # the probe
        dns = self.remote_dns().start()
        a = self.relay_a(dns, port=b.port(),
                         queue={'destination_concurrency': 1}, **dsmtp)
        users = ['user%d' % i for i in range(10)]
        with smtp(a.port()) as s:
            for u in users:
                send_mail(s, SENDER, [u + '@remote.test'],
                          make_message('%s@e2e.test' % u,
                                       to=u + '@remote.test'))
        for u in users:
            self.assertEqual(len(self.arrived(a, b, u)), 1, u)
        a.wait_queue_empty()
        self.assertEqual(len(self.log_lines(b, r'from=<a@localhost> .*'
                                            r'nrcpt=1')), 10)
        return len(self.log_lines(b, r': connect from=')) - before

    def test_connection_reuse(self):
        self.assertEqual(self.relay_ten(cache_idle=30), 1,
                         'connections A opened at B')

    def test_no_connection_cache(self):
        # the count above means something: without the cache, one each
        self.assertEqual(self.relay_ten(connection_cache=False), 10,
                         'connections A opened at B')

    def test_kill_during_delivery(self):
        # B greets only after 3 s: A's delivery is in flight meanwhile
        b = self.remote_b(limits={'greet_pause': 3000})
        before = len(self.log_lines(b, r': connect from='))
        a = self.via_transport(b)
        qid, sent = self.send(a, ['bob@remote.test'])
        harness.wait_for(lambda: len(self.log_lines(b, r': connect from='))
                         > before, what='A connecting to B')
        a.signal(signal.SIGKILL)
        a.proc.wait()
        a.proc = None
        self.assertEqual(a.queue_ids(), {qid}, 'the message left the spool')
        a.start()
        # At least once: a kill after B took "." and before A removed
        # the message would send it twice, which RFC 5321 6.1 accepts (a
        # duplicate, never a loss). Here B had not greeted yet.
        got = self.arrived(a, b, 'bob')
        a.wait_queue_empty()
        self.assertSameMessage(got[0], sent)
        self.assertTrue(self.log_lines(
            a, r'%s: to=<bob@remote\.test> .*status=sent' % qid))
        self.assertEqual(self.dsns(a), [])

    def test_destination_down(self):
        dns = self.remote_dns().start()
        # B's port is known, but B is not started yet: nothing answers
        b = self.remote_b(start=False)
        b.ports = {'smtp': harness.free_port()}
        a = self.relay_a(dns, port=b.port(),
                         queue={'destination_concurrency': 1})
        ids = []
        for i in range(4):
            ids.append(self.send(a, ['u%d@remote.test' % i],
                                 msgid='down%d@e2e.test' % i)[0])
        for qid in ids:
            self.wait_log(a, r'%s: to=<\S+> .*status=deferred' % qid)
        self.assertTrue(self.log_lines(a, r'destination \S*remote\.test '
                                       r'down for'), a.log_text())
        suspended = self.log_lines(a, r'status=deferred \(delivery '
                                   r'temporarily suspended: ')
        self.assertTrue(suspended, a.log_text())
        self.assertEqual(a.queue_ids(), set(ids))
        self.assertIn('delivery temporarily suspended', self.queue_text(a))
        # B comes up (on another port if that one was taken meanwhile)
        b.start(keep_ports=True)
        if b.port() != a.config()['modules'][1]['port']:
            a.overrides['modules'][1]['port'] = b.port()
            a.write_config()
            self.ctl_ok(a, 'reload')
            self.wait_log(a, r'generation=2 .*installed')
        self.ctl_ok(a, 'flush')
        for i in range(4):
            self.assertEqual(len(self.arrived(a, b, 'u%d' % i)), 1)
        a.wait_queue_empty()
        self.assertEqual(self.dsns(a), [])

    def test_stop_during_delivery(self):
        # a peer that accepts connections (the kernel does, from the
        # backlog) and never greets: A's delivery waits for a greeting
        tarpit = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(tarpit.close)
        tarpit.bind((B_HOST, 0))
        tarpit.listen(8)
        port = tarpit.getsockname()[1]
        a = self.relay_a(transport={
            'remote.test': 'smtp:[%s]:%d' % (B_HOST, port)},
            command_timeout=600)
        qid, sent = self.send(a, ['bob@remote.test'])
        conn, _ = harness.wait_for(lambda: self.accept(tarpit),
                                   what='A connecting to the peer')
        self.addCleanup(conn.close)
        # SIGTERM: the delivery is interrupted (harness.STOP_TIMEOUT, far
        # below the 600 s A would wait for a greeting), the message kept
        self.assertEqual(a.stop(), 0)
        self.assertEqual(a.queue_ids(), {qid})
        self.assertEqual(self.dsns(a), [])
        # back with the real B as next hop: delivered once
        b = self.remote_b()
        a.overrides['modules'][1]['transport'] = {
            'remote.test': 'smtp:[%s]:%d' % (B_HOST, b.port())}
        a.start()
        self.ctl_ok(a, 'flush')
        self.assertSameMessage(self.arrived(a, b, 'bob')[0], sent)
        a.wait_queue_empty()
        self.assertEqual(len(b.messages('bob')), 1)

    def test_tls_required_not_offered(self):
        b = self.remote_b()            # no STARTTLS
        a = self.via_transport(b, tls='encrypt')
        qid, _ = self.send(a, ['bob@remote.test'])
        self.wait_log(a, r'%s: to=<bob@remote\.test> .*status=deferred'
                      % qid)
        self.assertIn('TLS is required, but was not offered by host',
                      self.queue_text(a))
        self.assertEqual(b.messages('bob'), [])

    def test_cached_connection_closed_by_peer(self):
        # B ends an idle session after 5 s (421; long enough for A's
        # commands under ASan); A keeps it cached for 30 s: the next
        # delivery finds it dead and opens another
        b = self.remote_b(limits={'command_timeout': 5})
        a = self.via_transport(b, cache_idle=30)
        self.send(a, ['r1@remote.test'])
        self.arrived(a, b, 'r1')
        self.wait_sessions_closed(b)
        qid, sent = self.send(a, ['r2@remote.test'], msgid='r2@e2e.test')
        self.assertSameMessage(self.arrived(a, b, 'r2')[0], sent)
        a.wait_queue_empty()
        self.assertFalse(self.log_lines(a, r'status=deferred'), a.log_text())

    def test_concurrent_destinations(self):
        # three destinations (all B) with three connections each, fed by
        # four clients at once: every recipient gets its message once
        domains = ('remote.test', 'r2.test', 'r3.test')
        b = self.remote_b(start=False)
        b.overrides['local_domains'] = list(domains)
        b.start()
        a = self.relay_a(transport={
            d: 'smtp:[%s]:%d' % (B_HOST, b.port()) for d in domains},
            queue={'destination_concurrency': 3})
        errors = []

        def client(n):
            try:
                with smtp(a.port()) as s:
                    for i in range(10):
                        send_mail(s, SENDER, ['c%d@remote.test' % n,
                                              'c%d@r2.test' % n,
                                              'm%d.%d@r3.test' % (n, i)],
                                  make_message('c%d.%d@e2e.test' % (n, i)))
            except Exception as e:      # reported below
                errors.append(e)
        threads = [threading.Thread(target=client, args=(n,))
                   for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        for n in range(4):
            self.arrived(a, b, 'c%d' % n, 20)
        a.wait_queue_empty()
        b.wait_queue_empty()    # B's own deliveries of the m* messages
        for n in range(4):
            self.assertEqual(len(b.messages('c%d' % n)), 20)
            for i in range(10):
                self.assertEqual(len(b.messages('m%d.%d' % (n, i))), 1)
        self.assertEqual(self.dsns(a), [])


class ScriptedPeer(OutboundCase):
    """Delivery from A to a scripted server (smtppeer.py) for what B does
    not do on request."""

    def peer(self, **replies):
        p = SmtpPeer(B_HOST, **replies).start()
        self.addCleanup(p.stop)
        return p

    def to_peer(self, p, **dsmtp):
        return self.relay_a(transport={
            'remote.test': 'smtp:[%s]:%d' % (B_HOST, p.port)}, **dsmtp)

    def assertDeferred(self, a, qid, reason):
        self.wait_log(a, r'%s: to=<\S+> .*status=deferred' % qid)
        self.assertIn(reason, self.queue_text(a))
        self.assertEqual(a.queue_ids(), {qid})

    def test_reply_lost_after_dot(self):
        # the peer has the message, A never heard so: deferred, and sent
        # again later (a duplicate, as RFC 5321 6.1 accepts)
        p = self.peer(end_of_data=None)
        a = self.to_peer(p)
        qid, sent = self.send(a, ['x@remote.test'])
        self.assertDeferred(a, qid, '(lost connection with %s[%s] while '
                            'sending end of DATA)' % (B_HOST, B_HOST))
        self.assertEqual(len(p.messages), 1)
        p.replies['end_of_data'] = '250 2.0.0 Ok: queued'
        self.ctl_ok(a, 'flush')
        a.wait_queue_empty()
        self.assertEqual(len(p.messages), 2)
        self.assertEqual(p.messages[0][2], p.messages[1][2])
        self.assertEqual(self.dsns(a), [])

    def test_too_many_recipients(self):
        # "452 4.5.3 too many recipients": the others go in the next
        # transaction of the same attempt, not after a retry delay
        p = self.peer(max_rcpts=2)
        a = self.to_peer(p)
        rcpts = ['r%d@remote.test' % i for i in range(5)]
        qid, _ = self.send(a, rcpts)
        a.wait_queue_empty()
        self.assertEqual(sorted(len(m[1]) for m in p.messages), [1, 2, 2])
        got = sorted(r for m in p.messages for r in m[1])
        self.assertEqual(got, sorted('RCPT TO:<%s>' % r for r in rcpts))
        self.assertEqual(p.sessions, 1)
        self.assertEqual(self.log_lines(a, r'%s: .*status=deferred' % qid),
                         [])
        self.assertEqual(self.dsns(a), [])

    def test_soft_failure_tries_next_mx(self):
        # a 4xx from the better MX (greylisting): the recipient goes to
        # the next MX in the same attempt, as Postfix's smtp does
        port = harness.free_port()
        mx1 = SmtpPeer(B_HOST, rcpt='451 4.7.1 greylisted, try later')
        mx1.start(port)
        self.addCleanup(mx1.stop)
        mx2 = SmtpPeer('127.0.0.33').start(port)
        self.addCleanup(mx2.stop)
        dns = self.dns()
        dns.mx('remote.test', 'mx1.remote.test', 10)
        dns.host('mx1.remote.test', B_HOST)
        dns.mx('remote.test', 'mx2.remote.test', 20)
        dns.host('mx2.remote.test', '127.0.0.33')
        dns.start()
        a = self.relay_a(dns, port=port)
        qid, _ = self.send(a, ['x@remote.test'])
        a.wait_queue_empty()
        # mx1 refused the recipient: a pipelined DATA got nothing there
        self.assertEqual([m for m in mx1.messages if m[2]], [])
        self.assertEqual(len(mx2.messages), 1)
        self.assertTrue(self.log_lines(
            a, r'%s: to=<x@remote\.test> relay=mx2\.remote\.test.*'
            r'status=sent' % qid))

    def test_smtputf8_asked_not_needed(self):
        # SMTPUTF8 asked for an all-ASCII message: a server without
        # SMTPUTF8 gets it as plain mail; one that needs it (a UTF-8
        # recipient) fails with 5.6.7 there
        p = self.peer()
        a = self.relay_a(transport={
            'remote.test': 'smtp:[%s]:%d' % (B_HOST, p.port),
            'xn--bcher-kva.test': 'smtp:[%s]:%d' % (B_HOST, p.port)})
        self.send(a, ['x@remote.test'], mail_options=['SMTPUTF8'])
        wait_for(lambda: p.messages, what='the ASCII message at the peer')
        self.assertNotIn('SMTPUTF8', p.messages[0][0])
        # a UTF-8 domain is routed by its A-label
        msg = make_message('utf8@e2e.test', sender=SENDER,
                           to='b@b\u00fccher.test')
        with smtp(a.port()) as s:
            s.ehlo('client.test')
            s.sendmail(SENDER, ['b@b\u00fccher.test'], msg,
                       mail_options=['SMTPUTF8'])
        a.wait_queue_empty()
        self.assertEqual(len(p.messages), 1)
        # (the report quotes the UTF-8 address as it is: no RFC 6533
        # message/global-delivery-status yet, so no parsing it here)
        dsns = self.dsns(a)
        self.assertEqual(len(dsns), 1)
        self.assertIn(b'\nStatus: 5.6.7\n', dsns[0])

    def test_greeting_421(self):
        p = self.peer(greeting='421 4.3.2 System not accepting messages')
        a = self.to_peer(p, queue={'destination_concurrency': 1})
        qid, _ = self.send(a, ['x@remote.test'])
        self.assertDeferred(a, qid, 'refused to talk to me: 421 4.3.2 '
                            'System not accepting messages')
        self.wait_log(a, r'destination deliver_smtp/\[%s\]:%d down'
                      % (re.escape(B_HOST), p.port))
        # the next message waits without a connection
        qid2, _ = self.send(a, ['y@remote.test'], msgid='y@e2e.test')
        self.wait_log(a, r'%s: to=<y@remote\.test> .*status=deferred '
                      r'\(delivery temporarily suspended: ' % qid2)
        self.assertEqual(p.sessions, 1)

    def test_bad_starttls_at_may(self):
        # STARTTLS offered and accepted, then no TLS: at level "may" the
        # same server is tried again in clear
        p = self.peer()
        p.extensions.append('STARTTLS')
        a = self.to_peer(p)
        qid, sent = self.send(a, ['x@remote.test'])
        a.wait_queue_empty()
        self.assertEqual(p.sessions, 2)
        self.assertEqual(p.commands.count('STARTTLS'), 1)
        self.assertEqual(len(p.messages), 1)
        self.assertTrue(self.log_lines(a, r'%s: to=<x@remote\.test> '
                                       r'.*status=sent' % qid))

    def test_lock_step_and_helo(self):
        # EHLO refused (HELO then), so no PIPELINING: one command at a
        # time; multi-line replies
        p = self.peer(ehlo='502 5.5.2 Error: command not recognized',
                      helo='250-peer.test\n250 peer.test',
                      rcpt='250-2.1.5 Ok\n250 2.1.5 Recipient ok')
        a = self.to_peer(p)
        qid, sent = self.send(a, ['x@remote.test', 'y@remote.test'])
        a.wait_queue_empty()
        self.assertEqual(p.commands[:6],
                         ['EHLO mx.e2e.test', 'HELO mx.e2e.test',
                          'MAIL FROM:<a@localhost>',
                          'RCPT TO:<x@remote.test>',
                          'RCPT TO:<y@remote.test>', 'DATA'])
        self.assertEqual(len(p.messages), 1)
        # A's Received field, then the message as the client sent it
        content = p.messages[0][2]
        self.assertTrue(content.startswith(b'Received: from client.test'),
                        content[:200])
        self.assertTrue(content.endswith(sent), content[-200:])

    def test_552_at_end_of_data(self):
        p = self.peer(end_of_data='552 5.3.4 Message size exceeds limit')
        a = self.to_peer(p)
        qid, _ = self.send(a, ['x@remote.test', 'y@remote.test'])
        a.wait_messages('a', 1)
        a.wait_queue_empty()
        dsns = self.dsns(a)
        self.assertEqual(len(dsns), 1)
        _, rcpts = parse_dsn(dsns[0])
        self.assertEqual(sorted(rcpts), ['x@remote.test', 'y@remote.test'])
        for r in rcpts.values():
            self.assertEqual(r['Status'], '5.3.4')
            self.assertEqual(r['Diagnostic-Code'],
                             'smtp; 552 5.3.4 Message size exceeds limit')


if __name__ == '__main__':
    harness.main()
