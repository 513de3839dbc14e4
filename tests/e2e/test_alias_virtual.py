"""alias and virtual through the real daemon: who receives what, exactly
once (nested aliases, loops, catch-all, %1, virtual to alias), limits,
refused command targets, re-read on change, `modmtactl aliases check`."""

import os
import subprocess

import harness
from harness import make_message, send_mail, smtp, wait_for


class AliasVirtual(harness.TestCase):

    def start(self, aliases='', virtual='', users='any', limits=None):
        """A daemon chaining virtual, alias, store_mbox; returns it."""
        self.aliases = os.path.join(self.tmp, 'aliases')
        self.virtual = os.path.join(self.tmp, 'virtusertable')
        with open(self.aliases, 'w') as f:
            f.write(aliases)
        with open(self.virtual, 'w') as f:
            f.write(virtual)
        over = {'modules': [
            {'module': 'virtual', 'map': 'file:' + self.virtual,
             'qualify_domain': 'localhost'},
            {'module': 'alias', 'map': 'aliases:' + self.aliases},
            {'module': 'store_mbox', 'users': users}]}
        if limits:
            over['limits'] = limits
        d = self.daemon(start=False, **over)
        d.overrides['modules'][2]['directory'] = d.maildir
        return d.start()

    def deliver(self, d, rcpts, msgid):
        with smtp(d.port()) as s:
            send_mail(s, 'sender@localhost', rcpts, make_message(msgid))
        d.wait_queue_empty()

    def assertBoxes(self, d, want):
        """Exactly the mailboxes in want exist, each with that many
        messages."""
        have = {u: len(d.messages(u)) for u in os.listdir(d.maildir)
                if not u.startswith('.') and not u.endswith('.lock')}
        self.assertEqual(have, want)

    # -- aliases

    def test_nested_once_each(self):
        d = self.start(aliases='# lists\n'
                               'all : it,hr,bob\n'
                               'it : it1,it2,\n'
                               '   bob\n'
                               'hr : hr1, IT\n')
        self.deliver(d, ['all@localhost', 'Bob@localhost'], 'nest@e2e')
        self.assertBoxes(d, {'it1': 1, 'it2': 1, 'hr1': 1, 'bob': 1})
        # each copy names the address the client gave (Postfix's local)
        self.assertEqual(harness.header(d.messages('it1')[0],
                                        'X-Original-To'), ['all@localhost'])

    def test_loops(self):
        # the how-to's "user2: user1,user2", and a two-step loop
        d = self.start(aliases='user2: user1,user2\n'
                               'x: y\n'
                               'y: x, z\n')
        self.deliver(d, ['user2@localhost'], 'loop1@e2e')
        self.deliver(d, ['x@localhost'], 'loop2@e2e')
        self.assertBoxes(d, {'user1': 1, 'user2': 1, 'x': 1, 'z': 1})

    def test_expansion_limit(self):
        d = self.start(aliases='big: ' + ', '.join(
            'u%d' % i for i in range(8)) + '\nsmall: u1, u2\n',
            limits={'rewrite_max': 5})
        r = self.rcpt_reply(d, 'big@localhost')
        self.assertReply(r, 554, '5.4.6')
        self.assertIn('too many recipients', r[1][0])
        self.assertReply(self.rcpt_reply(d, 'small@localhost'), 250)

    def test_command_target_refused(self):
        d = self.start(aliases='prog: bob, "|/bin/cat > /tmp/x"\n'
                               'file: /tmp/alias-e2e-copy\n')
        for name in ('prog', 'file'):
            r = self.rcpt_reply(d, name + '@localhost')
            self.assertReply(r, 550, '5.7.1')
            self.assertIn('not permitted', r[1][0])
        self.assertFalse(os.path.exists('/tmp/alias-e2e-copy'))

    # -- virtual

    def test_virtual_catch_all_and_percent1(self):
        d = self.start(virtual='info@virt.test info-desk\n'
                               '@virt.test catch@localhost\n'
                               '@old.test %1@localhost\n')
        self.deliver(d, ['info@virt.test', 'random@virt.test',
                         'other@VIRT.test', 'joe@old.test',
                         'Ann@old.test'], 'virt@e2e')
        self.assertBoxes(d, {'info-desk': 1, 'catch': 1, 'joe': 1,
                             'ann': 1})

    def test_virtual_domain_unknown_user(self):
        d = self.start(virtual='xyz.test virtual\n'
                               'admin@xyz.test bob\n')
        r = self.rcpt_reply(d, 'nobody@xyz.test')
        self.assertReply(r, 550, '5.1.1')
        self.assertReply(self.rcpt_reply(d, 'admin@xyz.test'), 250)
        # not a virtual domain: the core's relay rule answers
        self.assertReply(self.rcpt_reply(d, 'a@elsewhere.test'), 554,
                         '5.7.1')

    def test_virtual_to_alias(self):
        d = self.start(virtual='sales@virt.test team@localhost\n',
                       aliases='team: ann, ben\n')
        self.deliver(d, ['sales@virt.test'], 'chain@e2e')
        self.assertBoxes(d, {'ann': 1, 'ben': 1})

    def test_virtual_alias_loop(self):
        d = self.start(virtual='info@virt.test staff@localhost\n'
                               '@grow.test %1x@grow.test\n',
                       aliases='staff: info@virt.test, bob\n')
        self.deliver(d, ['staff@localhost'], 'vloop@e2e')
        self.assertBoxes(d, {'staff': 1, 'bob': 1})
        # a loop that never repeats an address: the depth limit
        r = self.rcpt_reply(d, 'a@grow.test')
        self.assertReply(r, 554, '5.4.6')

    # -- re-read on change

    def write(self, path, text):
        tmp = path + '.new'
        with open(tmp, 'w') as f:
            f.write(text)
        os.rename(tmp, path)

    def test_edit_takes_effect(self):
        d = self.start(aliases='old: ann\n',
                       users=['ann', 'ben', 'bob'])
        self.assertReply(self.rcpt_reply(d, 'new@localhost'), 550, '5.1.1')
        self.write(self.aliases, 'old: ann\nnew: ben\n')
        wait_for(lambda: self.rcpt_reply(d, 'new@localhost')[0] == 250,
                 what='the edited aliases file to be read')
        self.deliver(d, ['new@localhost'], 'edit@e2e')
        self.assertBoxes(d, {'ben': 1})

        # a broken edit: logged with file:line, the old table stays
        self.write(self.aliases, 'old: ann\nthis is broken\n')
        # (a map looks at its file when it is used: keep using it)
        wait_for(lambda: self.rcpt_reply(d, 'new@localhost')[0] == 250
                 and '%s:2:' % self.aliases in d.log_text(),
                 what='the broken edit to be logged')
        self.assertIn('keeping the previous table', d.log_text())
        self.assertReply(self.rcpt_reply(d, 'new@localhost'), 250)

        # the virtual table too
        self.write(self.virtual, 'x@virt.test bob@localhost\n')
        wait_for(lambda: self.rcpt_reply(d, 'x@virt.test')[0] == 250,
                 what='the edited virtual table to be read')

    # -- owner-NAME

    def test_owner_is_list_sender(self):
        # one transaction to a list that has an owner and to a plain user;
        # bad@ fails permanently at delivery (store_mbox: the message
        # already went through bad@, a Delivered-To loop, 554 5.4.6).
        # The DSN to owner-list is expanded like mail to it: boss.
        d = self.start(aliases='list: ann, bad\n'
                               'owner-list: boss\n')
        msg = (b'From: <sender@localhost>\r\nTo: <list@localhost>\r\n'
               b'Delivered-To: bad@localhost\r\nSubject: owner\r\n'
               b'Message-ID: <owner@e2e>\r\n\r\nhello\r\n')
        with smtp(d.port()) as s:
            send_mail(s, 'sender@localhost', ['list@localhost',
                                              'carl@localhost'], msg)
        dsn = d.wait_messages('boss', 1)
        d.wait_queue_empty()

        def return_path(user):
            return [harness.header(m, 'Return-Path')
                    for m in d.messages(user)]
        self.assertEqual(return_path('ann'), [['<owner-list@localhost>']])
        self.assertEqual(return_path('carl'), [['<sender@localhost>']])
        # the member's bounce went to the owner, not to the sender
        self.assertBoxes(d, {'ann': 1, 'carl': 1, 'boss': 1})
        self.assertEqual(harness.header(dsn[0], 'Return-Path'), ['<>'])
        self.assertIn(b'bad@localhost', dsn[0])
        self.assertIn(b'5.4.6', dsn[0])
        self.assertEqual(harness.header(dsn[0], 'To'),
                         ['<owner-list@localhost>'])

    # -- modmtactl aliases check

    def test_aliases_check(self):
        path = os.path.join(self.tmp, 'check')
        with open(path, 'w') as f:
            f.write('a: b,\n  c\n"quoted name": d\n')
        r = subprocess.run([harness.MODMTACTL, 'aliases', 'check', path],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('ok', r.stdout)
        with open(path, 'w') as f:
            f.write('a: b\n# fine\nbroken\n')
        r = subprocess.run([harness.MODMTACTL, 'aliases', 'check', path],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn('%s:3:' % path, r.stderr)
        # the file named by the config's alias module
        cfg = os.path.join(self.tmp, 'c.json')
        with open(cfg, 'w') as f:
            f.write('{"modules": [{"module": "alias", "map": "aliases:%s"}]}'
                    % path)
        r = subprocess.run([harness.MODMTACTL, '-c', cfg, 'aliases',
                            'check'], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn('%s:3:' % path, r.stderr)


if __name__ == '__main__':
    harness.main()
