"""The milter module (modules/milter) against the fake milter of this
suite (fakemilter.py): negotiation, macros, every reply, every
modification action, misbehaving and dead milters, SKIP, one connection
per session, and the relay rule (a milter's ACCEPT never claims a
recipient)."""

import os
import re
import smtplib
import time

import harness
from harness import header, headers_of, send_mail, smtp
import fakemilter as fm
from fakemilter import FakeMilter


def message(msgid, extra='', body='body line one\r\nbody line two\r\n'):
    return ('From: <alice@localhost>\r\n'
            'To: <bob@localhost>\r\n'
            'Subject: original subject\r\n'
            'X-Twice: first\r\n'
            'X-Twice: second\r\n'
            '%s'
            'Message-ID: <%s>\r\n'
            '\r\n%s' % (extra, msgid, body)).encode()


class MilterModuleTest(harness.TestCase):

    def milter(self, **kw):
        m = FakeMilter(**kw).start()
        self.addCleanup(m.stop)
        return m

    def start(self, milters, after=(), listeners=None, daemon=None,
              **entry):
        """A daemon whose chain is [milter, after..., store_mbox]."""
        d = self.daemon(listeners, start=False,
                        queue={'retry_min': 3600, 'retry_max': 3600},
                        **(daemon or {}))
        specs = []
        for m in milters:
            spec = {'socket': m.socket_spec(), 'name': 'fake%d' % len(specs)}
            spec.update(getattr(m, 'spec_extra', {}))
            specs.append(spec)
        d.overrides['modules'] = [
            dict({'module': 'milter', 'milters': specs}, **entry)] + list(
            after) + [
            {'module': 'store_mbox', 'directory': d.maildir, 'users': 'any'}]
        return d.start()

    def send(self, d, msgid='m@e2e.test', rcpts=('bob@localhost',),
             msg=None, sender='alice@localhost'):
        with smtp(d.port()) as s:
            return send_mail(s, sender, list(rcpts), msg or message(msgid))

    # -- negotiation, steps, macros

    def test_steps_macros_and_delivery(self):
        m = self.milter()
        d = self.start([m])
        qid = self.send(d)
        d.wait_messages('bob', 1)
        self.assertTrue(m.wait_for('Q', 2))
        [conn] = m.connections_with('M')
        cmds = m.commands(conn=conn)
        self.assertEqual(cmds[:4], ['O', 'C', 'H', 'M'])
        self.assertEqual(cmds[4:6], ['R', 'T'])
        self.assertIn('N', cmds)
        self.assertEqual(cmds[-2:], ['E', 'Q'])
        # every header, the core's Received: first, then EOH and the body
        names = [s[0] for s in m.strings_of('L')]
        self.assertEqual(names[0], 'Received')
        self.assertIn('Subject', names)
        self.assertEqual(m.strings_of('L')[names.index('Subject')][1],
                         'original subject')
        self.assertEqual(b''.join(m.data_of('B')),
                         b'body line one\r\nbody line two\r\n')
        # version 6, every action and step offered
        self.assertEqual(m.offered[0], 6)
        self.assertEqual(m.offered[1] & fm.A_ALL, fm.A_ALL)
        self.assertTrue(m.offered[2] & fm.P_SKIP)
        # connect: the client and the host
        conn = m.data_of('C')[-1]
        self.assertTrue(conn.startswith(b'localhost\x004'), conn)
        self.assertTrue(conn.endswith(b'127.0.0.1\x00'), conn)
        cm = m.macros_for('C')
        self.assertEqual(cm['j'], 'mx.e2e.test')
        self.assertEqual(cm['{client_addr}'], '127.0.0.1')
        self.assertEqual(cm['{daemon_name}'], 'smtp')
        self.assertEqual(m.strings_of('H')[0], ['client.test'])
        mm = m.macros_for('M')
        self.assertEqual(mm['i'], qid)
        self.assertEqual(mm['{mail_addr}'], 'alice@localhost')
        self.assertEqual(m.strings_of('M')[0][0], '<alice@localhost>')
        self.assertEqual(m.macros_for('R')['{rcpt_addr}'], 'bob@localhost')
        self.assertEqual(m.macros_for('R')['{rcpt_mailer}'], 'local')
        self.assertEqual(m.macros_for('E')['i'], qid)

    def test_setsymlist_and_noreply_steps(self):
        m = self.milter(
            symlists={2: '{mail_addr} {client_addr}', 3: 'i'},
            proto=(fm.P_NOHELO | fm.P_NR_CONN | fm.P_NR_HDR | fm.P_NR_BODY
                   | fm.P_NR_EOH | fm.P_NR_DATA))
        d = self.start([m])
        qid = self.send(d)
        d.wait_messages('bob', 1)
        self.assertTrue(m.wait_for('Q', 2))
        self.assertNotIn('H', m.commands())
        self.assertEqual(m.macros_for('M'),
                         {'{mail_addr}': 'alice@localhost',
                          '{client_addr}': '127.0.0.1'})
        self.assertEqual(m.macros_for('R'), {'i': qid})

    def test_protocol_steps_config(self):
        m = self.milter()
        m.spec_extra = {'protocol_steps': ['connect', 'mail', 'rcpt',
                                           'header', 'eoh']}
        d = self.start([m])
        self.send(d)
        d.wait_messages('bob', 1)
        self.assertTrue(m.wait_for('Q', 2))
        cmds = m.commands()
        for left_out in ('H', 'T', 'B'):
            self.assertNotIn(left_out, cmds)
        self.assertIn('L', cmds)
        self.assertIn('E', cmds)

    def test_one_connection_per_session_abort_between(self):
        m = self.milter()
        d = self.start([m])
        with smtp(d.port()) as s:
            send_mail(s, 'alice@localhost', ['bob@localhost'],
                      message('one@e2e.test'))
            s.mail('alice@localhost')
            s.rcpt('bob@localhost')
            s.rset()
            send_mail(s, 'alice@localhost', ['bob@localhost'],
                      message('two@e2e.test'))
        d.wait_messages('bob', 2)
        # one session, one connection for its three transactions
        [conn] = m.connections_with('M')
        harness.wait_for(lambda: 'Q' in m.commands(conn=conn),
                         what='QUIT at the end of the session')
        cmds = m.commands(conn=conn)
        self.assertEqual(cmds.count('O'), 1)
        self.assertEqual(cmds.count('E'), 2)
        # the abandoned transaction was aborted before the next MAIL
        third = [i for i, c in enumerate(cmds) if c == 'M'][1]
        self.assertIn('A', cmds[third:])
        self.assertLess(cmds.index('A', third),
                        [i for i, c in enumerate(cmds) if c == 'M'][2])

    # -- connection reuse (QUIT_NC)

    def test_reuse_quit_nc_next_session_same_connection(self):
        m = self.milter()
        m.spec_extra = {'reuse': True}
        d = self.start([m])
        for i in range(3):
            self.send(d, msgid='reuse%d@e2e.test' % i)
            # the session is pooled after its QUIT: wait for QUIT_NC, and
            # for the end of the session (the connection is back in the
            # pool once the core logs the disconnect; the start probe's
            # session is one more)
            self.assertTrue(m.wait_for('K', i + 1))
            harness.wait_for(
                lambda: d.log_text().count(' disconnect from=') > i + 1,
                what='end of session %d' % i)
        d.wait_messages('bob', 3)
        # three sessions, one connection, one negotiation
        [conn] = m.connections_with('M')
        cmds = m.commands(conn=conn)
        self.assertEqual(cmds.count('O'), 1)
        self.assertEqual(cmds.count('C'), 3)
        self.assertEqual(cmds.count('K'), 3)
        self.assertNotIn('Q', cmds)
        # each session: CONNECT ... end of message, QUIT_NC
        ends = [i for i, c in enumerate(cmds) if c == 'K']
        for k in ends:
            self.assertEqual(cmds[k - 1], 'E')
        self.assertEqual(cmds[ends[0] + 1], 'C')

    def test_reuse_not_after_an_aborted_or_empty_session(self):
        m = self.milter()
        m.spec_extra = {'reuse': True}
        d = self.start([m])
        with smtp(d.port()) as s:
            s.mail('alice@localhost')
            s.rcpt('bob@localhost')
        # libmilter takes QUIT_NC only after an end of message: QUIT
        [conn] = m.connections_with('M')
        harness.wait_for(lambda: 'Q' in m.commands(conn=conn),
                         what='QUIT after an aborted transaction')
        self.assertNotIn('K', m.commands())

    def test_reuse_after_accept_through_an_unknown_command(self):
        """A milter that wants no unknown commands (NOUNKNOWN: libmilter
        answers them itself) and ACCEPTs at the end of message (libmilter
        back at HELO, where it ignores QUIT_NC), or whose transaction was
        aborted: an UNKNOWN brings it to rest, then QUIT_NC, and the next
        session reuses the connection."""
        m = self.milter(proto=fm.P_NOUNKNOWN, on={
            'E': [fm.reply('a')],
            'M': lambda data: [fm.reply('r')] if b'mallory' in data
            else None})
        m.spec_extra = {'reuse': True}
        d = self.start([m])
        self.send(d, msgid='accepted@e2e.test')
        with smtp(d.port()) as s:  # aborted: MAIL, RCPT, then QUIT
            s.mail('alice@localhost')
            s.rcpt('bob@localhost')
        with smtp(d.port()) as s:  # the milter rejects MAIL, then QUIT
            self.assertEqual(s.mail('mallory@localhost')[0], 550)
        d.wait_messages('bob', 1)
        # one connection for every session (the start probe's, without a
        # message, was kept the same way), negotiated once
        [conn] = m.connections_with('M')
        harness.wait_for(lambda: m.commands(conn=conn).count('M') == 3 and
                         m.commands(conn=conn)[-1] == 'K',
                         what='QUIT_NC after the rejected session')
        cmds = m.commands(conn=conn)
        self.assertEqual(len(m.connections_with('O')), 1, cmds)
        self.assertEqual(cmds.count('O'), 1)
        self.assertNotIn('Q', cmds)
        ends = [i for i, c in enumerate(cmds) if c == 'K']
        self.assertEqual({cmds[k - 1] for k in ends}, {'U'}, cmds)
        first = cmds.index('E')
        self.assertEqual(cmds[first + 1:first + 3], ['U', 'K'], cmds)
        self.assertIn('A', cmds[first:])  # the second session's ABORT
        # the rejected MAIL: its transaction is ABORTed, as before a QUIT
        last = len(cmds) - 1 - cmds[::-1].index('M')
        self.assertEqual(cmds[last + 1:], ['A', 'U', 'K'], cmds)
        self.assertEqual({tuple(u) for u in m.strings_of('U')}, {('QUIT',)})

    def settle_off(self, on_unknown, failures):
        """A milter (not libmilter) that does not answer the unknown
        command it said it did not want with CONTINUE: QUIT, the
        connection is not kept; after `failures` such session ends in
        a row (the start probe's first), later sessions' ends send it
        no unknown command (MILTER_SETTLE_OFF_MS), only QUIT."""
        m = self.milter(proto=fm.P_NOUNKNOWN,
                        on={'E': [fm.reply('a')], 'U': on_unknown})
        m.spec_extra = {'reuse': True}
        d = self.start([m])
        sent = failures + 1
        for i in range(sent):
            self.send(d, msgid='accepted%d@e2e.test' % i)
        d.wait_messages('bob', sent)
        conns = sorted(m.connections_with('C'))
        self.assertEqual(len(conns), sent + 1)    # and the probe's
        for n, conn in enumerate(conns):
            harness.wait_for(lambda: 'Q' in m.commands(conn=conn),
                             what='QUIT at the end of session %d' % n)
            self.assertEqual(m.commands(conn=conn)[-2:],
                             ['U', 'Q'] if n < failures else ['E', 'Q'],
                             'session %d' % n)
        self.assertNotIn('K', m.commands())

    def test_reuse_not_when_the_unknown_command_is_refused(self):
        self.settle_off([fm.reply('t')], 1)

    def test_reuse_not_when_the_unknown_command_is_not_answered(self):
        # the release's deadline (1 s) passes first, three times
        self.settle_off(('sleep', 3), 3)

    def test_reuse_at_rest_while_the_unknown_command_is_off(self):
        """Off after the probe's refusal, a milter at rest (CONTINUE at
        the end of message) is still pooled: one connection for the
        sessions with a message; a session without one then ends with
        QUIT, no unknown command."""
        m = self.milter(proto=fm.P_NOUNKNOWN, on={'U': [fm.reply('t')]})
        m.spec_extra = {'reuse': True}
        d = self.start([m])
        for i in range(2):
            self.send(d, msgid='rest%d@e2e.test' % i)
            self.assertTrue(m.wait_for('K', i + 1))
        d.wait_messages('bob', 2)
        with smtp(d.port()) as s:
            s.ehlo()
        # the probe's connection, and one for the three sessions after it
        self.assertEqual(len(m.connections_with('C')), 2)
        [conn] = m.connections_with('M')
        harness.wait_for(lambda: 'Q' in m.commands(conn=conn),
                         what='QUIT after the session without a message')
        cmds = m.commands(conn=conn)
        self.assertEqual(cmds.count('K'), 2, cmds)
        self.assertEqual(cmds[-1], 'Q', cmds)
        self.assertNotIn('U', cmds)
        self.assertEqual(len(m.connections_with('U')), 1)   # the probe's

    def test_reuse_unknown_command_not_sent_without_time_left(self):
        """Two milters wanting the unknown command at every session end;
        the first never answers it and uses up the release's second: the
        second is sent none (under 100 ms left) and that is not held
        against it. Once the first is off (three late answers), the
        second gets its unknown command and is pooled."""
        silent = self.milter(proto=fm.P_NOUNKNOWN,
                             on={'E': [fm.reply('a')], 'U': ('sleep', 3)})
        other = self.milter(proto=fm.P_NOUNKNOWN, on={'E': [fm.reply('a')]})
        silent.spec_extra = other.spec_extra = {'reuse': True}
        d = self.start([silent, other])
        for i in range(3):     # after the harness's start probe's session
            self.send(d, msgid='late%d@e2e.test' % i)
        d.wait_messages('bob', 3)
        conns = sorted(other.connections_with('C'))
        # sessions 0-2: the first milter waited out, the other one QUIT;
        # session 3: the first is off, the other settled and pooled
        self.assertEqual(len(conns), 4, conns)
        for conn in conns[:3]:
            harness.wait_for(lambda: 'Q' in other.commands(conn=conn),
                             what='QUIT to the other milter')
            self.assertNotIn('U', other.commands(conn=conn))
        harness.wait_for(lambda: 'K' in other.commands(conn=conns[3]),
                         what='the other milter pooled')
        self.assertEqual(other.commands(conn=conns[3])[-2:], ['U', 'K'])
        self.assertEqual(len(silent.connections_with('U')), 3)

    def test_reuse_idle_connection_closed_by_milter(self):
        m = self.milter(on={'K': 'close'})
        m.spec_extra = {'reuse': True}
        d = self.start([m])
        self.send(d, msgid='first@e2e.test')
        self.assertTrue(m.wait_for('K', 1))
        before = m.connections
        harness.wait_for(lambda: m.closed >= before,
                         what='the milter closing the pooled connection')
        time.sleep(0.2)  # its end of file reaches the pooled socket
        self.send(d, msgid='second@e2e.test')
        d.wait_messages('bob', 2)
        # the dead pooled connection was replaced by a new one
        self.assertEqual(len(m.connections_with('M')), 2)
        self.assertEqual(len(m.connections_with('O')), m.connections)

    # -- unknown commands (SMFIC_UNKNOWN)

    def test_unknown_command_heard_and_refused(self):
        m = self.milter(on={'U': lambda data: [fm.replycode(
            '554 5.7.1 no ' + data.rstrip(b'\0').decode())]
            if data.startswith(b'XVETO') else None})
        m.spec_extra = {'reuse': True}
        d = self.start([m])
        with smtp(d.port()) as s:
            s.ehlo('client.example')
            code, text = s.docmd('XYZZY plugh')
            self.assertEqual(code, 500)  # the core's: the milter continued
            code, text = s.docmd('XVETO me')
            self.assertEqual((code, text), (554, b'5.7.1 no XVETO me'))
        self.assertEqual(m.strings_of('U'), [['XYZZY plugh'], ['XVETO me']])
        # libmilter rests after UNKNOWN: the connection is pooled
        self.assertTrue(m.wait_for('K'))
        self.assertNotIn('Q', m.commands(conn=m.connections_with('U')[0]))

    def test_unknown_command_not_sent_with_nounknown(self):
        m = self.milter(proto=fm.P_NOUNKNOWN)
        d = self.start([m])
        with smtp(d.port()) as s:
            s.ehlo('client.example')
            self.assertEqual(s.docmd('XYZZY')[0], 500)
            self.assertEqual(s.noop()[0], 250)
        self.assertNotIn('U', m.commands())

    def test_tls_and_local_address_macros(self):
        cert, key = harness.make_cert(self.tmp)
        m = self.milter()
        d = self.start([m], listeners=[{'name': 'smtp', 'tls': 'starttls'}],
                       daemon={'tls': {'cert': cert, 'key': key}})
        with smtp(d.port()) as s:
            s.ehlo()
            s.starttls(context=harness.no_verify_context())
            s.ehlo()
            send_mail(s, 'alice@localhost', ['bob@localhost'],
                      message('tls@e2e.test'))
        d.wait_messages('bob', 1)
        # HELO again after STARTTLS, with the TLS macros
        helo = m.macros_for('H')
        self.assertRegex(helo['{tls_version}'], r'^TLSv1\.[23]$')
        self.assertTrue(helo['{cipher}'])
        self.assertGreaterEqual(int(helo['{cipher_bits}']), 128)
        conn = m.macros_for('C')
        self.assertEqual(conn['{daemon_addr}'], '127.0.0.1')
        self.assertEqual(conn['{if_addr}'], '127.0.0.1')
        self.assertEqual(int(conn['{daemon_port}']), d.port())

    def test_auth_macros(self):
        passwd = os.path.join(self.tmp, 'passwd')
        with open(passwd, 'w') as f:
            f.write('bob:{PLAIN}pw\n')
        m = self.milter()
        d = self.start([m], after=({'module': 'auth_sasl',
                                    'passdb': 'file:' + passwd,
                                    'mechanisms': ['PLAIN'],
                                    'allow_plaintext_loopback': True},))
        with smtp(d.port()) as s:
            s.login('bob', 'pw')
            qid = send_mail(s, 'bob@localhost', ['erin@localhost'],
                            message('auth@e2e.test'))
        d.wait_messages('erin', 1)
        mail = m.macros_for('M')
        self.assertEqual(mail['{auth_type}'], 'PLAIN')
        self.assertEqual(mail['{auth_authen}'], 'bob')
        self.assertEqual(mail['i'], qid)

    def test_unix_and_inet6_sockets(self):
        m1 = self.milter(unix=os.path.join(self.tmp, 'milter.sock'))
        m2 = self.milter(inet6=True)
        d = self.start([m1, m2])
        self.send(d)
        d.wait_messages('bob', 1)
        self.assertTrue(m1.wait_for('E'))
        self.assertTrue(m2.wait_for('E'))

    def test_host_name_sockets(self):
        # Postfix's inet:HOST:PORT and Sendmail's inet:PORT@HOST with a
        # name: localhost comes from /etc/hosts (DNS is loopback only)
        m1 = self.milter()
        m1.spec_extra = {'socket': 'inet:localhost:%d' % m1.port}
        m2 = self.milter()
        m2.spec_extra = {'socket': 'inet:%d@localhost' % m2.port}
        d = self.start([m1, m2])
        self.send(d)
        d.wait_messages('bob', 1)
        self.assertTrue(m1.wait_for('E'))
        self.assertTrue(m2.wait_for('E'))

    # -- replies

    def assert_refused(self, d, stage, code, text=None):
        with smtp(d.port()) as s:
            s.ehlo()
            r = s.mail('alice@localhost')
            if stage == 'mail':
                self.assertEqual(r[0], code, r)
                return r
            r = s.rcpt('bob@localhost')
            if stage == 'rcpt':
                self.assertEqual(r[0], code, r)
                return r
            self.assertEqual(r[0], 250, r)
            try:
                r = s.data(message('refused@e2e.test'))
            except smtplib.SMTPDataError as e:
                r = (e.smtp_code, e.smtp_error)
            self.assertEqual(r[0], code, r)
            return r

    def test_reject_tempfail_replycode(self):
        m = self.milter(on={'R': [fm.reply('r')]})
        r = self.assert_refused(self.start([m]), 'rcpt', 550)
        self.assertIn(b'5.7.1', r[1])
        m = self.milter(on={'M': [fm.reply('t')]})
        r = self.assert_refused(self.start([m]), 'mail', 451)
        self.assertIn(b'4.7.1', r[1])
        m = self.milter(on={'E': [fm.replycode(
            '554-5.7.0 first line\r\n554 5.7.0 second line')]})
        r = self.assert_refused(self.start([m]), 'data', 554)
        self.assertIn(b'first line', r[1])
        self.assertIn(b'second line', r[1])
        self.assertIn(b'5.7.0', r[1])
        m = self.milter(on={'R': [fm.replycode('452 4.2.2 mailbox full')]})
        r = self.assert_refused(self.start([m]), 'rcpt', 452)
        self.assertIn(b'4.2.2 mailbox full', r[1])

    def test_discard_at_rcpt_discards_the_message(self):
        def second_discards(data, seen=[]):
            seen.append(data)
            return [fm.reply('d')] if len(seen) == 2 else None
        m = self.milter(on={'R': second_discards})
        d = self.start([m])
        with smtp(d.port()) as s:
            qid = send_mail(s, 'alice@localhost',
                            ['bob@localhost', 'carol@localhost',
                             'dave@localhost'],
                            message('discard@e2e.test'))
            send_mail(s, 'alice@localhost', ['bob@localhost'],
                      message('after@e2e.test'))
        msgs = d.wait_messages('bob', 1)
        d.wait_queue_empty()
        self.assertEqual(len(msgs), 1)
        self.assertEqual(header(msgs[0], 'Message-ID'), ['<after@e2e.test>'])
        self.assertEqual(d.messages('carol') + d.messages('dave'), [])
        self.assertIn('%s: discard' % qid, d.log_text())

    def test_discard_at_connect_discards_every_message(self):
        m = self.milter(on={'C': [fm.reply('d')]})
        d = self.start([m])
        with smtp(d.port()) as s:
            q1 = send_mail(s, 'alice@localhost', ['bob@localhost'],
                           message('d1@e2e.test'))
            q2 = send_mail(s, 'alice@localhost', ['bob@localhost'],
                           message('d2@e2e.test'))
        for qid in (q1, q2):
            harness.wait_for(lambda: '%s: discard' % qid in d.log_text(),
                             what='discard of %s logged' % qid)
        self.assertEqual(d.messages('bob'), [])
        # nothing of the messages was sent to it
        self.assertNotIn('M', m.commands())

    def test_header_leading_space(self):
        m = self.milter(proto=fm.P_HDR_LEADSPC)
        d = self.start([m])
        self.send(d)
        d.wait_messages('bob', 1)
        self.assertIn(['Subject', ' original subject'], m.strings_of('L'))

    def test_discard_at_eom(self):
        m = self.milter(on={'E': [fm.reply('d')]})
        d = self.start([m])
        qid = self.send(d)
        harness.wait_for(lambda: '%s: discard' % qid in d.log_text(),
                         what='discard logged')
        self.assertEqual(d.messages('bob'), [])

    def test_accept_is_no_claim_and_stops_the_message(self):
        # ACCEPT at MAIL: nothing more of this message is sent to it
        m = self.milter(on={'M': [fm.reply('a')]})
        d = self.start([m])
        self.send(d)
        d.wait_messages('bob', 1)
        self.assertTrue(m.wait_for('Q', 2))
        self.assertNotIn('R', m.commands())
        self.assertNotIn('E', m.commands())

    def test_accepting_milter_before_relay_access_opens_no_relay(self):
        closed = ({'module': 'relay_access', 'mynetworks': ['192.0.2.0/24']},)
        # ACCEPT at every step before DATA, then ACCEPT at RCPT only
        for on in ({c: [fm.reply('a')] for c in 'CHMR'},
                   {'R': [fm.reply('a')]}):
            m = self.milter(on=on)
            d = self.start([m], after=closed)
            with smtp(d.port()) as s:
                s.ehlo()
                self.assertEqual(s.mail('alice@localhost')[0], 250)
                r = s.rcpt('victim@remote.test')
                self.assertEqual(r[0], 554, r)
                self.assertIn(b'5.7.1', r[1])
                # a local recipient is still claimed by its store
                self.assertEqual(s.rcpt('bob@localhost')[0], 250)

    def test_progress_then_continue(self):
        m = self.milter(on={'E': [fm.reply('p'), fm.reply('p'),
                                  fm.reply('c')]})
        d = self.start([m])
        self.send(d)
        d.wait_messages('bob', 1)

    def test_skip_stops_the_body(self):
        m = self.milter(proto=fm.P_SKIP, on={'B': [fm.reply('s')]})
        d = self.start([m])
        body = ('x' * 998 + '\r\n') * 300     # about 300 KB: 5 chunks
        self.send(d, msg=message('skip@e2e.test', body=body))
        d.wait_messages('bob', 1)
        self.assertTrue(m.wait_for('E'))
        self.assertEqual(m.commands().count('B'), 1)
        self.assertEqual(len(m.data_of('B')[0]), 65535)

    def test_large_chunks_when_negotiated(self):
        m = self.milter(proto=fm.P_MDS_1M | fm.P_NR_BODY)
        d = self.start([m])
        body = ('y' * 998 + '\r\n') * 1100    # 1.1 MB
        self.send(d, msg=message('big@e2e.test', body=body))
        d.wait_messages('bob', 1)
        self.assertTrue(m.wait_for('E'))
        self.assertEqual(len(m.data_of('B')), 2)
        self.assertEqual(len(m.data_of('B')[0]), 1024 * 1024 - 1)
        self.assertEqual(b''.join(m.data_of('B')), body.encode())

    # -- modifications

    def test_every_modification_action(self):
        m = self.milter(on={'E': [
            fm.addheader('X-Added', 'added value'),
            fm.insheader(0, 'X-Inserted', 'at the top'),
            fm.chgheader(2, 'X-Twice', 'second changed'),
            fm.chgheader(1, 'Subject', ''),
            fm.chgfrom('<new-sender@localhost>'),
            fm.addrcpt('<carol@localhost>'),
            fm.addrcpt_par('<erin@localhost>', 'NOTIFY=NEVER'),
            fm.delrcpt('<dave@localhost>'),
            fm.replbody(b'new body\r\n'),
            fm.reply('c')]})
        d = self.start([m])
        self.send(d, rcpts=('bob@localhost', 'dave@localhost'))
        for user in ('bob', 'carol', 'erin'):
            d.wait_messages(user, 1)
        d.wait_queue_empty()
        self.assertEqual(d.messages('dave'), [])
        msg = d.messages('bob')[0]
        from_line, hdrs, body = headers_of(msg)
        self.assertIn('new-sender@localhost', from_line)
        # index 0: above the core's Received: (store_mbox's Return-Path: and
        # X-Original-To: are written at delivery)
        names = [n for n, _ in hdrs if n not in ('Return-Path',
                                                 'X-Original-To',
                                                 'Delivered-To')]
        self.assertEqual(names[:2], ['X-Inserted', 'Received'])
        self.assertEqual(header(msg, 'X-Added'), ['added value'])
        self.assertEqual(header(msg, 'X-Twice'), ['first', 'second changed'])
        self.assertEqual(header(msg, 'Subject'), [])
        self.assertEqual(body.rstrip(b'\n'), b'new body')

    def test_quarantine(self):
        m = self.milter(on={'E': [fm.quarantine('held by milter'),
                                  fm.reply('c')]})
        d = self.start([m])
        qid = self.send(d)
        self.assertIn(qid, d.queue_ids())
        r = d.ctl('queue')
        self.assertIn('quarantined: held by milter', r.stdout)
        self.assertEqual(d.messages('bob'), [])

    def test_action_not_negotiated_is_misbehaviour(self):
        m = self.milter(actions=fm.A_ADDHDRS,
                        on={'E': [fm.addrcpt('<carol@localhost>'),
                                  fm.reply('c')]})
        d = self.start([m])
        self.assert_refused(d, 'data', 451)
        self.assertIn('milter=fake0', d.log_text())

    def test_envelope_address_with_line_break_is_misbehaviour(self):
        """CHGFROM/ADDRCPT with CR/LF, '<' or '>' inside: the SDK refuses
        the address, the milter module logs it and takes the milter as
        misbehaving (default_action), so nothing is injected."""
        m = self.milter(on={'E': [
            fm.chgfrom('<evil@x.test>\nX-Injected: yes'),
            fm.reply('c')]})
        m.spec_extra = {'default_action': 'accept'}
        d = self.start([m])
        self.send(d)
        d.wait_messages('bob', 1)
        msg = d.messages('bob')[0]
        from_line, _, _ = headers_of(msg)
        self.assertIn('alice@localhost', from_line)
        self.assertNotIn(b'X-Injected', msg)
        self.assertNotIn(b'evil@x.test', msg)
        log = d.log_text()
        self.assertIn('milter sent an envelope address', log)
        self.assertIn('default_action=accept', log)
        for bad in ('<carol@localhost>\r\nX-Injected: yes',
                    '<carol@localhost\r>'):
            m = self.milter(on={'E': [fm.addrcpt(bad), fm.reply('c')]})
            d = self.start([m])
            self.assert_refused(d, 'data', 451)
            self.assertEqual(d.messages('carol'), [])
            self.assertIn('milter sent an envelope address', d.log_text())

    # -- failures and default_action

    def failing(self, on, default=None, timeouts=None):
        m = self.milter(on=on)
        m.spec_extra = {}
        if default:
            m.spec_extra['default_action'] = default
        if timeouts:
            m.spec_extra['timeouts'] = timeouts
        return m

    def test_malformed_packets(self):
        for bad in ('garbage', 'huge'):
            m = self.failing({'R': bad})
            d = self.start([m])
            r = self.assert_refused(d, 'rcpt', 451)
            self.assertIn(b'4.7.1', r[1])
            self.assertRegex(d.log_text(), r'milter=fake0 error="malformed '
                             r'packet" default_action=tempfail')
        m = self.failing({'M': [fm.replycode('250 fine')]})
        self.assert_refused(self.start([m]), 'mail', 451)
        # a negotiation modmta cannot accept: protocol version 1
        m = self.milter(version=1)
        d = self.start([m])
        self.assert_refused(d, 'mail', 451)
        self.assertIn('milter=fake0 error="malformed option negotiation"',
                      d.log_text())

    def test_disconnect_mid_message(self):
        for default, code in (('tempfail', 451), ('reject', 550)):
            m = self.failing({'B': 'close'}, default=default)
            d = self.start([m])
            self.assert_refused(d, 'data', code)
            self.assertIn('milter=fake0 error="read', d.log_text())
            # the daemon is fine: a new session works the same
            self.assert_refused(d, 'data', code)
        m = self.failing({'B': 'close'}, default='accept')
        d = self.start([m])
        self.send(d)
        self.send(d, msgid='again@e2e.test')
        d.wait_messages('bob', 2)
        self.assertIn('default_action=accept', d.log_text())

    def test_timeouts(self):
        # (each timeout bounds every exchange of its kind, the fake
        # milter's answers to the others too: not shorter than a busy
        # machine's pause)
        m = self.failing({'R': ('sleep', 15)},
                         timeouts={'command': '3s'})
        d = self.start([m])
        r = self.assert_refused(d, 'rcpt', 451)
        self.assertIn('milter=fake0 error="read: ', d.log_text())
        # the message timeout at the end of message
        m = self.failing({'E': ('sleep', 15)},
                         timeouts={'message': '3s'})
        d = self.start([m])
        self.assert_refused(d, 'data', 451)
        self.assertIn('milter=fake0 error="read: ', d.log_text())
        # a dead milter: nothing listens
        dead = FakeMilter().start()
        dead.stop()
        d2 = self.start([dead])
        with smtp(d2.port()) as s:
            r = s.ehlo()
            self.assertEqual(s.mail('alice@localhost')[0], 451)
        self.assertRegex(d2.log_text(), r'milter=fake0 error="connect')
        # accept: mail flows without it
        dead.spec_extra = {'default_action': 'accept',
                           'timeouts': {'connect': '1s'}}
        d3 = self.start([dead])
        self.send(d3)
        d3.wait_messages('bob', 1)

    def test_config_errors(self):
        d = self.daemon(start=False)
        d.overrides['modules'] = [
            {'module': 'milter', 'milters': [
                {'socket': 'inet:localhost:99999'}]},
            {'module': 'store_mbox', 'directory': d.maildir, 'users': 'any'}]
        for bad, path in (
                ({'socket': 'tcp:1.2.3.4:25'}, 'milters[0].socket'),
                ({'socket': 'inet:8891@'}, 'milters[0].socket'),
                ({'socket': 'inet:127.0.0.1:25', 'default_action': 'x'},
                 'milters[0].default_action'),
                ({'socket': 'inet:127.0.0.1:25',
                  'timeouts': {'connect': '2 days'}},
                 'milters[0].timeouts.connect'),
                ({'socket': 'inet:127.0.0.1:25',
                  'protocol_steps': ['helo', 'bogus']},
                 'milters[0].protocol_steps[1]'),
                ({'socket': 'inet:127.0.0.1:25', 'colour': 1},
                 'milters[0].colour'),
                ({'socket': 'inet:127.0.0.1:25', 'reuse': 'yes'},
                 'milters[0].reuse'),
                ({'socket': 'inet:127.0.0.1:25', 'pool_size': 0},
                 'milters[0].pool_size'),
                ({'socket': 'inet:127.0.0.1:25', 'idle_timeout': '2h'},
                 'milters[0].idle_timeout')):
            d.overrides['modules'][0]['milters'] = [bad]
            d.ports = {'smtp': harness.free_port()}
            d.write_config()
            r = harness.subprocess.run(
                [harness.MODMTA, '--check-config', '-c', d.conf],
                capture_output=True, text=True, timeout=60)
            self.assertNotEqual(r.returncode, 0, bad)
            self.assertIn('$.modules[0].' + path, r.stdout + r.stderr)
        # a name that does not resolve (RFC 6761 .invalid), looked up in
        # the harness's namespace where DNS is loopback only
        for sock in ('inet:no-such-host.invalid:8891',
                     'inet6:8891@[no-such-host.invalid]'):
            d.overrides['modules'][0]['milters'] = [{'socket': sock}]
            d.write_config()
            r = harness.subprocess.run(
                harness.loopback_dns_argv(
                    d.resolv, [harness.MODMTA, '--check-config', '-c',
                               d.conf]),
                capture_output=True, text=True, timeout=60)
            self.assertNotEqual(r.returncode, 0, sock)
            self.assertRegex(
                r.stdout + r.stderr,
                r'\$\.modules\[0\]\.milters\[0\]\.socket: '
                r'"no-such-host\.invalid" did not resolve to an IPv[46] '
                r'address: \S')
        # every milter's error is listed
        d.overrides['modules'][0]['milters'] = [
            {'socket': 'inet:127.0.0.1:25', 'default_action': 'x'},
            {'socket': 'unix:relative'}]
        d.write_config()
        r = harness.subprocess.run(
            [harness.MODMTA, '--check-config', '-c', d.conf],
            capture_output=True, text=True, timeout=60)
        self.assertIn('$.modules[0].milters[0].default_action',
                      r.stdout + r.stderr)
        self.assertIn('$.modules[0].milters[1].socket', r.stdout + r.stderr)


if __name__ == '__main__':
    harness.main()
