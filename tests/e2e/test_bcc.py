"""The bcc module through the real daemon: who received what, exactly once.

always_bcc plus recipient bcc on a list expansion (with the alias
module): the archive and the boss get one copy each, no header names
them. A copy that fails permanently never sends a DSN to the sender,
while the same failure for a recipient the sender chose does.
"""

import os
import re

import harness
from harness import header, headers_of, send_mail, smtp


def message(msgid, to, extra=''):
    return ('From: Alice <alice@localhost>\r\nTo: %s\r\n%sSubject: bcc\r\n'
            'Message-ID: <%s>\r\n\r\nbody\r\n' % (to, extra, msgid)).encode()


def have_alias():
    return os.path.exists(os.path.join(harness.MODULE_DIR, 'alias',
                                       'alias.so'))


class Bcc(harness.TestCase):

    def bcc_daemon(self, bcc, alias=None):
        d = self.daemon(start=False,
                        queue={'retry_min': 3600, 'retry_max': 3600})
        mods = []
        if alias is not None:
            mods.append({'module': 'alias', 'map': alias})
        mods.append(dict({'module': 'bcc'}, **bcc))
        mods.append({'module': 'store_mbox', 'directory': d.maildir,
                     'users': 'any'})
        d.overrides['modules'] = mods
        return d.start()

    def test_always_and_recipient_bcc_on_list(self):
        alias = {'staff': 'bob, carol'} if have_alias() else None
        d = self.bcc_daemon({'always': 'archive@localhost',
                             'recipient_map': {
                                 'bob@localhost': 'boss@localhost',
                                 'carol': 'boss@localhost'}}, alias)
        rcpts = (['staff@localhost', 'bob@localhost'] if alias
                 else ['bob@localhost', 'carol@localhost'])
        with smtp(d.port()) as s:
            send_mail(s, 'alice@localhost', rcpts,
                      message('b1@e2e.test', 'Staff <staff@localhost>'))
        for user in ('bob', 'carol', 'archive', 'boss'):
            d.wait_messages(user, 1)
        d.wait_queue_empty()
        for user in ('bob', 'carol', 'archive', 'boss'):
            msgs = d.messages(user)
            self.assertEqual(len(msgs), 1, 'one copy for %s' % user)
            m = msgs[0]
            self.assertEqual(header(m, 'Message-ID'), ['<b1@e2e.test>'])
            self.assertEqual(header(m, 'To'), ['Staff <staff@localhost>'])
            self.assertEqual(header(m, 'Bcc'), [], user)
            self.assertEqual(header(m, 'Delivered-To'),
                             ['%s@localhost' % user])
            # nobody's headers name the hidden copies, except the copy's
            # own Delivered-To
            _, hdrs, _ = headers_of(m)
            for n, v in hdrs:
                if n.lower() == 'delivered-to':
                    continue
                self.assertNotRegex(v, r'archive|boss', '%s: %s' % (user, n))
        self.assertEqual(d.messages('alice'), [])
        log = d.log_text()
        self.assertEqual(len(re.findall(r'bcc rcpt=<archive@localhost>',
                                        log)), 1)
        self.assertEqual(len(re.findall(r'bcc rcpt=<boss@localhost>',
                                        log)), 1)

    def test_failed_copy_sends_no_dsn(self):
        d = self.bcc_daemon({'always': 'archive@localhost'})
        # store_mbox fails a recipient the message was already delivered
        # to (a Delivered-To loop, 554 5.4.6): a permanent failure.
        loop = 'Delivered-To: archive@localhost\r\n'
        with smtp(d.port()) as s:
            qid = send_mail(s, 'alice@localhost', ['bob@localhost'],
                            message('f1@e2e.test', 'bob@localhost', loop))
        d.wait_messages('bob', 1)
        d.wait_queue_empty()
        self.assertEqual(d.messages('archive'), [])
        self.assertEqual(d.messages('alice'), [], 'no DSN for a bcc copy')
        log = d.log_text()
        self.assertRegex(log, r'%s: to=<archive@localhost> .*status=bounced'
                         % qid)
        self.assertIn('%s: to=<archive@localhost> no DSN' % qid, log)

        # the control: the same failure for a recipient alice chose
        with smtp(d.port()) as s:
            send_mail(s, 'alice@localhost',
                      ['bob@localhost', 'archive@localhost'],
                      message('f2@e2e.test', 'archive@localhost', loop))
        dsn = d.wait_messages('alice', 1)
        d.wait_queue_empty()
        self.assertEqual(len(d.messages('alice')), 1)
        self.assertEqual(len(d.messages('bob')), 2)
        self.assertIn(b'archive@localhost', dsn[0])
        self.assertIn(b'5.4.6', dsn[0])
        self.assertEqual([v.strip('<>') for v in header(dsn[0],
                                                        'Return-Path')],
                         [''])


if __name__ == '__main__':
    harness.main()
