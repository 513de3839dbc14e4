"""The masquerade module through the real daemon: what the mailbox stores.

Sendmail's MASQUERADE_AS with masquerade_envelope and an exception (the
config of DESIGN.md): a local sender's From: and envelope sender are
masqueraded, root is not, an unqualified From: is qualified with the host
name, recipients and remote senders are left alone.
"""

import harness
from harness import header, send_mail, smtp


def message(msgid, from_, to='bob@localhost', extra=''):
    return ('From: %s\r\nTo: %s\r\n%sSubject: masq\r\n'
            'Message-ID: <%s>\r\n\r\nbody\r\n'
            % (from_, to, extra, msgid)).encode()


class Masquerade(harness.TestCase):

    def masq_daemon(self):
        d = self.daemon(start=False)
        d.overrides['local_domains'] = ['localhost', 'example.com',
                                     'mx.e2e.test']
        d.overrides['modules'] = [
            {'module': 'masquerade', 'as': 'example.com', 'envelope': True,
             'entire_domain': True, 'exceptions': ['root']},
            {'module': 'store_mbox', 'directory': d.maildir, 'users': 'any'},
        ]
        return d.start()

    def test_masquerade_with_exception(self):
        d = self.masq_daemon()
        with smtp(d.port()) as s:
            send_mail(s, 'alice@localhost', ['bob@localhost'],
                      message('m1@e2e.test', '"Alice A." <alice@localhost>',
                              to='Bob <bob@localhost>',
                              extra='Reply-To: alice@host.localhost '
                                    '(home)\r\n'))
            send_mail(s, 'root@localhost', ['bob@localhost'],
                      message('m2@e2e.test', 'Charlie Root <root@localhost>'))
            send_mail(s, 'carol@localhost', ['bob@localhost'],
                      message('m3@e2e.test', 'carol, root'))
            send_mail(s, 'x@remote.test', ['bob@localhost'],
                      message('m4@e2e.test', 'x@remote.test, '
                              'alice@localhost'))
        msgs = d.wait_messages('bob', 4)
        d.wait_queue_empty()
        self.assertEqual(len(d.messages('bob')), 4)
        by_id = {header(m, 'Message-ID')[0]: m for m in msgs}

        m = by_id['<m1@e2e.test>']
        self.assertEqual(header(m, 'From'), ['"Alice A." <alice@example.com>'])
        self.assertEqual(header(m, 'Reply-To'), ['alice@example.com (home)'])
        self.assertEqual(header(m, 'To'), ['Bob <bob@localhost>'])
        self.assertEqual([v.strip('<>') for v in header(m, 'Return-Path')],
                         ['alice@example.com'])
        self.assertTrue(m.startswith(b'From alice@example.com '))

        m = by_id['<m2@e2e.test>']       # the exception: untouched
        self.assertEqual(header(m, 'From'), ['Charlie Root <root@localhost>'])
        self.assertEqual([v.strip('<>') for v in header(m, 'Return-Path')],
                         ['root@localhost'])

        m = by_id['<m3@e2e.test>']       # unqualified: myorigin = hostname
        self.assertEqual(header(m, 'From'),
                         ['carol@example.com, root@mx.e2e.test'])

        m = by_id['<m4@e2e.test>']       # a remote sender: left alone
        self.assertEqual(header(m, 'From'),
                         ['x@remote.test, alice@localhost'])
        self.assertEqual([v.strip('<>') for v in header(m, 'Return-Path')],
                         ['x@remote.test'])
        self.assertIn('rewrite sender=<alice@localhost> '
                      'new=<alice@example.com>', d.log_text())


if __name__ == '__main__':
    harness.main()
