"""The milter module with real milters from Debian (realmilters.py):
opendkim signs mail submitted from loopback, and opendkim in verify
mode reports dkim=pass on the delivered message (dkim=fail once it is
altered); opendmarc adds its Authentication-Results and rejects a
message with two From: headers."""

import os
import re
import smtplib

import harness
from harness import header, send_mail, smtp
from realmilters import (CountingProxy, LibmilterCounter, OpenDKIM,
                         OpenDMARC, dkim_key)

DELIVERY_HEADERS = (b'return-path:', b'x-original-to:', b'delivered-to:')


def message(msgid, sender='alice@example.org', extra=''):
    return ('From: Alice <%s>\r\n'
            'To: <bob@localhost>\r\n'
            'Subject: a signed message\r\n'
            '\tfolded onto a second line\r\n'
            'Date: Mon, 24 Nov 2025 12:00:00 +0000\r\n'
            '%s'
            'Message-ID: <%s>\r\n'
            '\r\n'
            'Hello Bob,\r\n'
            '\r\n'
            '  a line with leading spaces and trailing ones  \r\n'
            'the end.\r\n' % (sender, extra, msgid)).encode()


def resubmittable(stored):
    """A message as stored in mbox, as it would go out again: without
    the mbox From line and the headers of the local delivery, CRLF."""
    lines = stored.split(b'\n')[1:]
    out, in_head, skipping = [], True, False
    for line in lines:
        if in_head:
            if line == b'':
                in_head = False
            elif line[:1] in (b' ', b'\t'):
                if skipping:
                    continue
            else:
                skipping = line.lower().startswith(DELIVERY_HEADERS)
                if skipping:
                    continue
        out.append(line)
    return b'\r\n'.join(out).rstrip(b'\r\n') + b'\r\n'


class RealMilterTest(harness.TestCase):

    def with_milters(self, *milters):
        d = self.daemon(start=False)
        for m in milters:
            m.resolv = d.resolv
            self.peer_logs.append(m.log)
            m.start()
            self.addCleanup(m.stop)
        d.overrides['modules'] = [
            {'module': 'milter', 'hook_timeout': '60s',
             'milters': [{'socket': m.socket_spec(), 'name': m.name,
                          'timeouts': {'command': '20s', 'message': '50s'}}
                         for m in milters]},
            {'module': 'store_mbox', 'directory': d.maildir, 'users': 'any'},
        ]
        return d.start()

    def dkim(self, sub, mode, key=None):
        return OpenDKIM(os.path.join(self.tmp, sub), resolv=None, mode=mode,
                        key=key)

    def test_opendkim_signs_and_verifies(self):
        keydir = os.path.join(self.tmp, 'key')
        os.makedirs(keydir)
        key = dkim_key(keydir)
        signer = self.with_milters(self.dkim('signer', 'sv', key))
        with smtp(signer.port()) as s:
            send_mail(s, 'alice@example.org', ['bob@localhost'],
                      message('signed@e2e.test'))
        stored = signer.wait_messages('bob', 1)[0]
        sig = header(stored, 'DKIM-Signature')
        self.assertEqual(len(sig), 1, stored)
        self.assertIn('d=example.org', sig[0])
        self.assertIn('s=test', sig[0])

        verifier = self.with_milters(self.dkim('verifier', 'v', key))
        signed = resubmittable(stored)
        altered = signed.replace(b'Subject: a signed message',
                                 b'Subject: a changed message')
        self.assertNotEqual(signed, altered)
        with smtp(verifier.port()) as s:
            send_mail(s, 'alice@example.org', ['bob@localhost'], signed)
            send_mail(s, 'alice@example.org', ['carol@localhost'], altered)
        good = verifier.wait_messages('bob', 1)[0]
        bad = verifier.wait_messages('carol', 1)[0]
        results = ' '.join(header(good, 'Authentication-Results'))
        self.assertRegex(results, r'^mx\.e2e\.test;.*dkim=pass', good)
        self.assertIn('header.d=example.org', results)
        results = ' '.join(header(bad, 'Authentication-Results'))
        self.assertRegex(results, r'dkim=fail', bad)

    def reusing(self, milter):
        """A daemon running milter with \"reuse\", through a counting
        relay: (daemon, relay)."""
        d = self.daemon(start=False)
        milter.resolv = d.resolv
        self.peer_logs.append(milter.log)
        milter.start()
        self.addCleanup(milter.stop)
        proxy = CountingProxy(milter.port).start()
        self.addCleanup(proxy.stop)
        d.overrides['modules'] = [
            {'module': 'milter', 'milters': [
                {'socket': proxy.socket_spec(), 'name': milter.name,
                 'reuse': True}]},
            {'module': 'store_mbox', 'directory': d.maildir,
             'users': 'any'}]
        return d.start(), proxy

    def sessions_after_the_first(self, d, proxy, n):
        """n sessions of a message each, one after the other; the
        connections the milter was asked for after the first."""
        before = None
        for i in range(n):
            with smtp(d.port()) as s:
                send_mail(s, 'alice@example.org', ['bob@localhost'],
                          message('reuse%d@e2e.test' % i))
            # the session ended with QUIT_NC and its connection is pooled
            # (on_disconnect, which pools it, runs before the core logs
            # the disconnect: the next session can only then reuse it)
            harness.wait_for(lambda: proxy.quit_nc > i,
                             what='QUIT_NC after session %d' % i)
            harness.wait_for(
                lambda: d.log_text().count(' disconnect from=') > i + 1,
                what='end of session %d' % i)
            if before is None:
                # every connection so far (the start probe's, if it made
                # one, and this session's) was answered through the
                # proxy, so it is counted by now
                before = proxy.connections
        return proxy.connections - before

    def test_opendkim_reused_after_accept_at_end_of_message(self):
        """opendkim answers ACCEPT at the end of message, which sends
        libmilter back to its HELO state, where it ignores QUIT_NC (and
        then the next CONNECT); it wants no unknown commands, so libmilter
        answers one itself: modmta sends one to bring it to rest, then
        QUIT_NC, and the later sessions use the same connection, every
        message signed."""
        keydir = os.path.join(self.tmp, 'key')
        os.makedirs(keydir)
        key = dkim_key(keydir)
        signer, proxy = self.reusing(self.dkim('signer', 'sv', key))
        # the two later sessions opened no connection
        self.assertEqual(self.sessions_after_the_first(signer, proxy, 3), 0)
        stored = signer.wait_messages('bob', 3)
        verifier = self.with_milters(self.dkim('verifier', 'v', key))
        with smtp(verifier.port()) as s:
            for m in stored:
                send_mail(s, 'alice@example.org', ['carol@localhost'],
                          resubmittable(m))
        for good in verifier.wait_messages('carol', 3):
            results = ' '.join(header(good, 'Authentication-Results'))
            self.assertRegex(results, r'dkim=pass', good)

    def test_libmilter_reused_connection_serves_every_session(self):
        """A libmilter milter that answers CONTINUE at the end of message
        (Debian's pymilter): the connection is kept (QUIT_NC) and serves
        the next sessions, each a new session for libmilter."""
        d, proxy = self.reusing(LibmilterCounter(
            os.path.join(self.tmp, 'counter'), resolv=None))
        # the three later sessions opened no connection: each reused it
        self.assertEqual(self.sessions_after_the_first(d, proxy, 4), 0)
        seen = [header(m, 'X-Libmilter') for m in d.wait_messages('bob', 4)]
        sessions = [int(v[0].split('=')[1]) for v in seen]
        self.assertEqual(len(set(sessions)), 4, seen)

    def test_opendmarc_results_and_two_from_headers(self):
        dmarc = OpenDMARC(os.path.join(self.tmp, 'dmarc'), resolv=None)
        d = self.with_milters(dmarc)
        with smtp(d.port()) as s:
            send_mail(s, 'alice@example.org', ['bob@localhost'],
                      message('dmarc@e2e.test'))
            s.mail('alice@example.org')
            s.rcpt('bob@localhost')
            try:
                r = s.data(message('twofrom@e2e.test',
                                   extra='From: <mallory@example.net>\r\n'))
            except smtplib.SMTPDataError as e:
                r = (e.smtp_code, e.smtp_error)
        self.assertEqual(r[0] // 100, 5, r)
        stored = d.wait_messages('bob', 1)
        self.assertEqual(len(stored), 1)
        results = ' '.join(header(stored[0], 'Authentication-Results'))
        self.assertRegex(results, r'^mx\.e2e\.test;.*dmarc=\w+', stored[0])
        self.assertIn('header.from=example.org', results)


if __name__ == '__main__':
    harness.main()
