"""Virtual alias domains are inbound for relay_access (security review
of issue 3 point 1): with relay_access first, then virtual, then
store_mbox, and a client outside mynetworks, a virtual domain's address
is rewritten and delivered, an unknown one gets virtual's 550 5.1.1, and
a remote domain is still refused 554 5.7.1 - even when relay_domains
lists the virtual domain, which must not turn it into a relay."""
import os

import harness
from harness import make_message, send_mail


class InboundDomains(harness.TestCase):

    def start(self, relay_domains=()):
        self.virtual = os.path.join(self.tmp, 'virtusertable')
        with open(self.virtual, 'w') as f:
            f.write('virt.test virtual\n'
                    'info@virt.test bob@localhost\n')
        d = self.daemon(start=False, modules=[
            {'module': 'relay_access', 'mynetworks': ['127.0.0.1/32'],
             'relay_domains': list(relay_domains)},
            {'module': 'virtual', 'map': 'file:' + self.virtual},
            {'module': 'store_mbox', 'users': 'any'}])
        d.overrides['modules'][2]['directory'] = d.maildir
        return d.start()

    def check(self, d):
        with harness.smtp(d.port(), source_address=('127.0.7.1', 0)) as s:
            s.ehlo()
            self.assertEqual(s.mail('a@sender.test')[0], 250)
            code, text = s.rcpt('nosuch@virt.test')
            self.assertEqual(code, 550)
            self.assertIn(b'5.1.1', text)
            code, text = s.rcpt('other@remote.test')
            self.assertEqual(code, 554)
            self.assertIn(b'5.7.1', text)
            s.rset()
            send_mail(s, 'a@sender.test', ['info@virt.test'],
                      make_message('<inbound@e2e>'))
        d.wait_messages('bob', 1)
        d.wait_queue_empty()
        self.assertFalse(os.path.exists(d.mailbox('info')))
        self.assertIn(b'<inbound@e2e>', d.messages('bob')[0])

    def test_virtual_domain_is_inbound(self):
        self.check(self.start())

    def test_relay_domains_does_not_bypass_virtual(self):
        self.check(self.start(relay_domains=['virt.test']))


if __name__ == '__main__':
    harness.main()
