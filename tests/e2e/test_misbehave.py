"""Modules that misbehave (core/tests/modules/misbehave.c and script.c):
a hook that sleeps past its budget gets its on_hook_timeout action and a
log line; out-of-range verdicts and delivery statuses, and actions
without their capability, get an error and a log line, never a crash;
a module that crashes takes the daemon down (one process), and after a
restart, as systemd's Restart=on-failure does, nothing acknowledged is
lost or delivered twice (docs/sdk.md, "When a module crashes")."""

import glob
import os
import re
import smtplib

import harness
from harness import Raw, send_mail, smtp, wait_for
from mailcheck import check_exact, mbox_messages, message

TEST_MODULE_DIR = os.environ.get('TEST_MODULE_DIR', '')


class Misbehave(harness.TestCase):

    def mta(self, *entries):
        if not TEST_MODULE_DIR:
            self.fail('set TEST_MODULE_DIR (meson test does)')
        d = self.daemon(start=False, queue={'retry_min': 3600,
                                            'retry_max': 3600})
        d.overrides['module_path'] = [harness.MODULE_DIR, TEST_MODULE_DIR]
        d.overrides['modules'] = list(entries) + [
            {'module': 'store_mbox', 'directory': d.maildir,
             'users': 'any'}]
        return d.start()

    def logged(self, d, pattern):
        wait_for(lambda: re.search(pattern, d.log_text()),
                 what='a log line matching %r' % pattern)

    def serves(self, d, tag):
        """A message still goes through, and is delivered."""
        msg = message('%s@e2e.test' % tag, 500, tag)
        with smtp(d.port()) as s:
            send_mail(s, 'a@localhost', ['carol@localhost'], msg)
        d.wait_messages('carol', 1)

    # ---- time budgets

    def test_sleeping_rcpt_hook(self):
        """on_rcpt sleeps 3 s with a 1 s budget: tempfail answers 451
        4.3.0 for that recipient, continue lets the next module decide."""
        for action, code in (('tempfail', 451), ('continue', 250)):
            with self.subTest(on_hook_timeout=action):
                d = self.mta({'module': 'script', 'name': 'sleepy',
                              'hook_timeout': '1s',
                              'on_hook_timeout': action,
                              'sleep': {'rcpt': 3000}})
                r = self.rcpt_reply(d, 'bob@localhost')
                self.assertReply(r, code, '4.3.0' if code == 451 else None)
                self.logged(d, r'sleepy: hook timed out: hook=on_rcpt '
                            r'elapsed=\d+ms timeout=1000ms .*action=%s'
                            % action)
                d.stop()

    # ---- garbage

    def test_garbage_verdicts(self):
        """Values no enum has, at MAIL, RCPT and DATA: 451 4.3.0 and a
        log line each; the session goes on."""
        d = self.mta({'module': 'misbehave', 'name': 'garbage',
                      'verdict': {'mail': 99}})
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd('EHLO client.test'), 250)
        self.assertReply(c.cmd('MAIL FROM:<a@localhost>'), 451, '4.3.0')
        c.cmd('QUIT')
        c.close()
        self.logged(d, r'garbage.*unknown verdict=99')
        d.stop()
        d = self.mta({'module': 'misbehave', 'name': 'garbage',
                      'verdict': {'rcpt': -7}})
        self.assertReply(self.rcpt_reply(d, 'bob@localhost'), 451, '4.3.0')
        self.logged(d, r'garbage.*unknown verdict=-7')
        d.stop()
        d = self.mta({'module': 'misbehave', 'name': 'garbage',
                      'verdict': {'data': 2147483647}})
        with smtp(d.port()) as s:
            s.ehlo()
            self.assertEqual(s.mail('a@localhost')[0], 250)
            self.assertEqual(s.rcpt('bob@localhost')[0], 250)
            code, text = s.data(message('g@e2e.test', 300, 'g'))
            self.assertEqual(code, 451, text)
            self.assertEqual(s.noop()[0], 250)
        self.logged(d, r'garbage.*unknown verdict=2147483647')
        self.assertEqual(d.queue_ids(), set())

    def test_garbage_delivery_status(self):
        """deliver() returns 77: the recipient is deferred, logged, and
        delivered by the next attempt once the module behaves (here: a
        restart without it)."""
        d = self.mta({'module': 'misbehave', 'name': 'garbage',
                      'verdict': {'deliver': 77}})
        msg = message('gd@e2e.test', 300, 'gd')
        with smtp(d.port()) as s:
            send_mail(s, 'a@localhost', ['bob@localhost'], msg)
        self.logged(d, r'garbage.*unknown delivery status=77: deferred')
        self.logged(d, r'status=deferred')
        self.assertEqual(len(d.queue_ids()), 1)
        d.stop()
        d.overrides['modules'] = d.overrides['modules'][1:]
        d.start(keep_ports=True)
        d.ctl('flush')
        d.wait_queue_empty()
        check_exact(self, mbox_messages(d.mailbox('bob')),
                    {'gd@e2e.test': msg}, 'bob')

    def test_actions_without_capability(self):
        """A module with no capability calls every guarded action at
        RCPT and at DATA: each is refused (those of the phase for want of
        the capability, the others for the phase), logged, and nothing
        changes: the message is delivered as sent to the recipient
        given."""
        actions = ('hdr_add', 'hdr_change', 'hdr_delete', 'sender_set',
                   'rcpt_add', 'rcpt_remove', 'rcpt_rewrite', 'quarantine',
                   'body_replace')
        in_phase = {'rcpt': ('rcpt_add', 'rcpt_rewrite'),
                    'data': tuple(a for a in actions
                                  if a != 'rcpt_rewrite')}
        for hook in ('rcpt', 'data'):
            with self.subTest(hook=hook):
                d = self.mta({'module': 'misbehave', 'name': 'nocaps',
                              'actions': hook})
                msg = message('caps-%s@e2e.test' % hook, 500, hook)
                with smtp(d.port()) as s:
                    send_mail(s, 'a@localhost', ['bob@localhost'], msg)
                d.wait_queue_empty()
                for action in actions:
                    self.logged(d, r'nocaps: misbehave: %s=%s' % (
                        action, 'not permitted' if action in in_phase[hook]
                        else 'not allowed in this phase'))
                msgs = mbox_messages(d.mailbox('bob'))
                check_exact(self, msgs, {'caps-%s@e2e.test' % hook: msg},
                            'bob')
                self.assertNotIn(b'X-Bad', msgs[0])
                self.assertFalse(os.path.exists(d.mailbox('evil')))
                d.stop()

    # ---- a crash

    def crash_mta(self):
        self.flag = os.path.join(self.tmp, 'crash-now')
        return self.mta({'module': 'misbehave', 'name': 'crashy',
                         'crash': {'rcpt': self.flag + '.rcpt',
                                   'data': self.flag + '.data',
                                   'deliver': self.flag + '.deliver'}})

    def crash(self, hook):
        open('%s.%s' % (self.flag, hook), 'w').close()

    def restart(self, d, hook):
        """Wait for the crash, then do what a supervisor does, with the
        crash's cause gone."""
        wait_for(lambda: not d.running(), what='the crash')
        d.kill()
        os.unlink('%s.%s' % (self.flag, hook))
        d.start(keep_ports=True)

    def test_crash_after_250_in_deliver(self):
        """The message is acknowledged, then the deliver hook crashes the
        daemon: after the restart it is delivered, once."""
        d = self.crash_mta()
        msg = message('dlv@e2e.test', 5000, 'dlv')
        self.crash('deliver')
        with smtp(d.port()) as s:
            send_mail(s, 'a@localhost', ['bob@localhost'], msg)
        self.restart(d, 'deliver')
        d.wait_queue_empty()
        check_exact(self, mbox_messages(d.mailbox('bob')),
                    {'dlv@e2e.test': msg}, 'bob')
        self.serves(d, 'dlv-after')

    def test_crash_before_250(self):
        """Messages acknowledged on an earlier session, some perhaps
        still queued, then on_rcpt, or on_data, of a later session
        crashes the daemon: the crashing session gets no 250 (its
        connection drops) and the acknowledged ones are all delivered
        after the restart, once each."""
        for hook in ('rcpt', 'data'):
            with self.subTest(hook=hook):
                d = self.crash_mta()
                acked = {}
                with smtp(d.port()) as s:
                    for i in range(5):
                        mid = '%s-%d@e2e.test' % (hook, i)
                        acked[mid] = message(mid, 20000, mid)
                        send_mail(s, 'a@localhost', ['bob@localhost'],
                                  acked[mid])
                self.crash(hook)
                doomed = message('doomed-%s@e2e.test' % hook, 300, 'x')
                with self.assertRaises((smtplib.SMTPException, OSError,
                                        AssertionError)) as cm:
                    with smtp(d.port()) as s:
                        send_mail(s, 'a@localhost', ['bob@localhost'],
                                  doomed)
                self.assertNotIsInstance(cm.exception, AssertionError,
                                         'a reply, not a crash')
                self.restart(d, hook)
                d.wait_queue_empty()
                check_exact(self, mbox_messages(d.mailbox('bob')), acked,
                            'bob')
                # what the crash interrupted was cleared at the restart
                self.assertEqual(glob.glob(os.path.join(d.spool, 'tmp',
                                                        '*', '*')), [])
                self.serves(d, 'after-%s' % hook)
                d.stop()


if __name__ == '__main__':
    harness.main()
