"""Outbound delivery and DSNs across hops (RFC 3461 section 4.1), and a
reload while a delivery is in flight.

A relays for its client with deliver_smtp through a transport table
entry (no DNS). The next hop is another modmta (it offers DSN: A passes
NOTIFY/ORCPT/RET/ENVID on and sends no notice itself; the next hop
reports the final delivery) or python3's standard smtpd server (it does
not offer DSN: A tells the sender the message was relayed)."""

import email
import os
import smtplib
import threading
import warnings

import harness
from harness import make_message, smtp, wait_for

with warnings.catch_warnings():
    warnings.simplefilter('ignore', DeprecationWarning)
    import asyncore
    import smtpd


class Sink(smtpd.SMTPServer):
    """python3's own SMTP server: ESMTP without DSN. Keeps what arrives."""

    def __init__(self, port):
        super().__init__(('127.0.0.1', port), None, decode_data=False)
        self.got = []

    def process_message(self, peer, mailfrom, rcpttos, data, **kw):
        self.got.append((mailfrom, rcpttos, data))


def dsn_parts(msg_bytes):
    """The message/delivery-status fields of a DSN: (per-message,
    [per-recipient]) as dicts."""
    m = email.message_from_bytes(msg_bytes)
    for part in m.walk():
        if part.get_content_type() == 'message/delivery-status':
            blocks = part.get_payload()
            heads = [dict(b.items()) for b in blocks]
            return heads[0], heads[1:]
    raise AssertionError('no delivery-status part in %r' % msg_bytes[:300])


class OutboundDsn(harness.TestCase):

    def next_hop(self, **overrides):
        """B: another modmta on 127.0.0.31, local for remote.test and
        localhost."""
        cfg = {'hostname': 'mx1.remote.test',
               'local_domains': ['remote.test', 'localhost']}
        cfg.update(overrides)
        return self.daemon(listeners=[{'name': 'smtp', 'tls': 'none',
                                       'host': '127.0.0.31'}], **cfg)

    def relay(self, dest, **overrides):
        """A: relays for 127.0.0.0/8 to dest through a transport entry."""
        modules = [
            {'module': 'relay_access', 'mynetworks': ['127.0.0.0/8']},
            {'module': 'deliver_smtp',
             'transport': {'remote.test': 'smtp:' + dest}},
            {'module': 'store_mbox', 'directory': None, 'users': 'any'},
        ]
        d = self.daemon(start=False, **overrides)
        modules[2]['directory'] = d.maildir
        d.overrides['modules'] = modules
        d.overrides.setdefault('queue', {})['retry_min'] = 2
        d.start()
        return d

    def send(self, d, rcpt_options=(), mail_options=()):
        msg = make_message('dsn-hop@e2e.test', sender='a@localhost',
                           to='bob@remote.test')
        with smtp(d.port()) as s:
            s.ehlo('client.test')
            s.sendmail('a@localhost', ['bob@remote.test'], msg,
                       mail_options=list(mail_options),
                       rcpt_options=list(rcpt_options))
        return msg

    def test_next_hop_with_dsn_reports(self):
        """B offers DSN: A passes NOTIFY, ORCPT, RET and ENVID on, sends
        no notice itself, and B reports the delivery."""
        b = self.next_hop()
        a = self.relay('[127.0.0.31]:%d' % b.port())
        self.send(a, rcpt_options=['NOTIFY=SUCCESS,FAILURE',
                                   'ORCPT=rfc822;bob+2Blist@remote.test'],
                  mail_options=['RET=HDRS', 'ENVID=hop+2D1'])
        b.wait_messages('bob', 1)
        # B's notice to the sender (local to B here)
        dsn = b.wait_messages('a', 1)[0]
        head, rcpts = dsn_parts(dsn)
        self.assertEqual(head.get('Original-Envelope-Id'), 'hop+2D1')
        self.assertEqual(len(rcpts), 1)
        self.assertEqual(rcpts[0]['Action'], 'delivered')
        self.assertEqual(rcpts[0]['Original-Recipient'],
                         'rfc822; bob+list@remote.test')
        a.wait_queue_empty()
        self.assertIn('relay=127.0.0.31[127.0.0.31]:%d' % b.port(),
                      a.log_text())
        self.assertNotIn('notification', a.log_text())
        self.assertEqual(a.messages('a'), [])

    def test_next_hop_without_dsn_gets_relayed_notice(self):
        """The next hop does not offer DSN: A sends the sender a notice
        with Action: relayed (RFC 3461 section 4.1)."""
        port = harness.free_port()
        sink = Sink(port)
        t = threading.Thread(target=asyncore.loop,
                             kwargs={'timeout': 0.1}, daemon=True)
        t.start()
        self.addCleanup(sink.close)
        a = self.relay('[127.0.0.1]:%d' % port)
        self.send(a, rcpt_options=['NOTIFY=SUCCESS'])
        wait_for(lambda: sink.got, what='the message at the sink')
        mailfrom, rcpttos, data = sink.got[0]
        self.assertEqual(mailfrom, 'a@localhost')
        self.assertEqual(rcpttos, ['bob@remote.test'])
        self.assertIn(b'Message-ID: <dsn-hop@e2e.test>', data)
        dsn = a.wait_messages('a', 1)[0]
        head, rcpts = dsn_parts(dsn)
        self.assertEqual(rcpts[0]['Action'], 'relayed')
        self.assertEqual(rcpts[0]['Final-Recipient'],
                         'rfc822; bob@remote.test')
        a.wait_queue_empty()

    def test_reload_during_delivery(self):
        """A reload while a delivery waits for a slow greeting: the
        delivery finishes on its generation, once; the queue empties."""
        b = self.next_hop(limits={'greet_pause': 3000})
        a = self.relay('[127.0.0.31]:%d' % b.port())
        probes = b.log_text().count(': connect from=')  # the start probe
        self.send(a)
        wait_for(lambda: b.log_text().count(': connect from=') > probes,
                 what='a delivery in flight')
        a.overrides['hostname'] = 'reloaded.e2e.test'
        a.write_config()
        r = a.ctl('reload')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        msgs = b.wait_messages('bob', 1)
        a.wait_queue_empty()
        self.assertEqual(len(b.messages('bob')), 1)
        self.assertIn(b'Message-ID: <dsn-hop@e2e.test>', msgs[0])
        self.assertNotIn('status=deferred', a.log_text())


if __name__ == '__main__':
    harness.main()
