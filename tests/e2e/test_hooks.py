"""Hook semantics of ABI 1.5 through the real daemon and smtplib, with
the scriptable test module core/tests/modules/script.c (loaded from
TEST_MODULE_DIR ahead of store_mbox):

- time budgets: a hook that sleeps 3 s with "hook_timeout": "1s" gets
  the client a 451 4.3.0 with "on_hook_timeout": "tempfail" (and a log
  line naming the instance and hook), and is passed over with
  "continue" (the message is accepted and delivered); a Redis lookup in
  a hook against a hung redis-server (SIGSTOP) ends with the hook's
  budget, far before the store's own 60 s; a bad "hook_timeout" is a
  config error with its JSON path;
- on_queued runs after the 250: a hook that waits for a file the test
  writes only once it has the 250;
- transaction notes: set by one module at DATA, read by a later one at
  DATA and at on_queued, and by a deliver-phase module after a restart
  of the daemon with the message still queued.

No timing is asserted: a budget that is not honoured shows as a client
timeout (shorter than what the hook would otherwise take), never as a
measured duration."""

import glob
import json
import os
import signal
import subprocess

import harness
from harness import make_message, send_mail, smtp, wait_for
from redisserver import RedisServer

TEST_MODULE_DIR = os.environ.get('TEST_MODULE_DIR', '')

# Shorter than anything a hook waits for when its budget is ignored (3 s
# of sleep is not: those tests assert the reply instead).
CLIENT_TIMEOUT = 20


class HookTestCase(harness.TestCase):

    def script_daemon(self, *scripts, start=True, **overrides):
        """A daemon whose chain is the script instances, then store_mbox
        for every local user."""
        if not TEST_MODULE_DIR:
            self.fail('set TEST_MODULE_DIR (meson test does)')
        d = self.daemon(start=False, **overrides)
        d.overrides['module_path'] = [harness.MODULE_DIR, TEST_MODULE_DIR]
        d.overrides['modules'] = [dict({'module': 'script'}, **s)
                                  for s in scripts] + [
            {'module': 'store_mbox', 'directory': d.maildir,
             'users': 'any'}]
        return d.start() if start else d

    def data_reply(self, d, msgid):
        """(code, text) of the reply to the end of DATA for one message
        to bob@localhost."""
        with smtp(d.port(), timeout=CLIENT_TIMEOUT) as s:
            s.ehlo()
            self.assertEqual(s.mail('alice@localhost')[0], 250)
            self.assertEqual(s.rcpt('bob@localhost')[0], 250)
            code, text = s.data(make_message(msgid))
        return code, text.decode()

    def wait_log(self, d, text, since=0):
        return wait_for(lambda: text in d.log_text()[since:], what=text)


class Budgets(HookTestCase):

    def slow_data(self, on_timeout, verdict):
        """A daemon whose on_data hook sleeps 3 s on a 1 s budget, then
        says verdict; the reply to a message's end of DATA."""
        d = self.script_daemon({'name': 'slowcheck', 'hook_timeout': '1s',
                                'on_hook_timeout': on_timeout,
                                'sleep': {'data': 3000}, 'data': verdict})
        return d, self.data_reply(d, '%s@e2e.test' % on_timeout)

    def test_overrun_tempfails(self):
        d, (code, text) = self.slow_data('tempfail', 'accept')
        self.assertEqual(code, 451, text)
        self.assertTrue(text.startswith('4.3.0 '), text)
        self.assertIn('time limit exceeded', text)
        log = d.log_text()
        self.assertRegex(log, r': slowcheck: hook timed out: hook=on_data '
                              r'elapsed=\d+ms timeout=1000ms '
                              r'action=tempfail')
        self.assertEqual(d.queue_ids(), set())
        self.assertEqual(d.messages('bob'), [])

    def test_overrun_continues(self):
        # its own verdict (reject) is discarded: the chain goes on
        d, (code, text) = self.slow_data('continue', 'reject')
        self.assertEqual(code, 250, text)
        self.assertEqual(len(d.wait_messages('bob', 1)), 1)
        self.assertRegex(d.log_text(), r': slowcheck: hook timed out: '
                                       r'hook=on_data .*action=continue')

    def test_redis_lookup_bounded(self):
        redis = RedisServer(os.path.join(self.tmp, 'redis'))
        self.peer_logs.append(redis.logpath)
        redis.start()
        try:
            self.redis_lookup(redis)
        finally:
            redis.proc.send_signal(signal.SIGCONT)
            redis.stop()

    def redis_lookup(self, redis):
        # the store would wait 60 s; the hook's budget is 1 s
        d = self.script_daemon({'name': 'lookup', 'hook_timeout': '1s',
                                'shared_get': {'rcpt': 'budget:key'}},
                               redis=redis.config(timeout=60))
        self.assertReply(self.rcpt_reply(d, 'bob@localhost'), 250)
        self.assertIn('lookup: shared_get key=budget:key rc=0', d.log_text())
        redis.proc.send_signal(signal.SIGSTOP)
        with smtp(d.port(), timeout=CLIENT_TIMEOUT) as s:
            s.ehlo()
            self.assertEqual(s.mail('alice@localhost')[0], 250)
            code, text = s.rcpt('bob@localhost')
        self.assertEqual(code, 451, text)
        self.assertTrue(text.decode().startswith('4.3.0 '), text)
        log = d.log_text()
        self.assertIn('lookup: shared_get key=budget:key rc=%d'
                      % -3, log)                      # MODMTA_E_TEMP
        self.assertRegex(log, r': lookup: hook timed out: hook=on_rcpt '
                              r'elapsed=\d+ms timeout=1000ms '
                              r'sdk_wait=spent action=tempfail')
        redis.proc.send_signal(signal.SIGCONT)
        # and the same daemon answers again once Redis does
        wait_for(lambda: self.rcpt_reply(d, 'bob@localhost')[0] == 250,
                 what='RCPT accepted again')

    def test_config_errors_have_paths(self):
        d = self.script_daemon({'name': 'a', 'hook_timeout': 'soon'},
                               {'name': 'b', 'on_hook_timeout': 'ignore'},
                               start=False)
        d.ports = {'smtp': harness.free_port()}
        d.write_config()
        r = subprocess.run(harness.loopback_dns_argv(
            d.resolv, [harness.MODMTA, '--check-config', '-c', d.conf]),
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=60)
        out = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0, out)
        self.assertIn('$.modules[0].hook_timeout: expected a time', out)
        self.assertIn('$.modules[1].on_hook_timeout: expected "tempfail" '
                      'or "continue"', out)


class QueuedOrder(HookTestCase):

    def test_250_before_on_queued(self):
        # on_queued waits (up to 30 s) for a file the test writes only
        # once it has the 250: were the 250 sent after on_queued, the
        # client would time out first
        marker = os.path.join(self.tmp, 'got-250')
        d = self.script_daemon({'name': 'notifier', 'queued_wait': marker})
        code, text = self.data_reply(d, 'order@e2e.test')
        self.assertEqual(code, 250, text)
        with open(marker, 'w'):
            pass
        self.wait_log(d, 'notifier: queued: marker seen')
        self.assertNotIn('queued: marker missing', d.log_text())
        self.assertEqual(len(d.wait_messages('bob', 1)), 1)


class Notes(HookTestCase):

    def modules(self, deliver):
        return [
            {'name': 'scorer',
             'notes': {'data': {'spam.score': 7, 'spam.verdict': 'ham'}}},
            {'name': 'reader',
             'notes_log': {'data': ['spam.score', 'spam.verdict'],
                           'queued': ['spam.score'],
                           'mail': ['spam.score']}},
            {'name': 'dlv', 'deliver': {'*': deliver},
             'notes_log': {'deliver': ['spam.score', 'spam.verdict',
                                       'other']}},
        ]

    def test_notes_reach_later_modules_and_delivery(self):
        # first run: the delivery is deferred, the message stays queued
        d = self.script_daemon(*self.modules('deferred'),
                               queue={'retry_min': 3600,
                                      'retry_max': 3600})
        with smtp(d.port(), timeout=CLIENT_TIMEOUT) as s:
            qid = send_mail(s, 'alice@localhost', ['bob@localhost'],
                            make_message('notes@e2e.test'))
        self.wait_log(d, '%s: dlv: note name=other absent' % qid)
        log = d.log_text()
        # a later module at DATA, and at on_queued
        self.assertIn('%s: reader: note name=spam.score int=7' % qid, log)
        self.assertIn('%s: reader: note name=spam.verdict str=<ham>' % qid,
                      log)
        # none yet at MAIL (set at DATA)
        self.assertIn('%s: reader: note name=spam.score absent' % qid, log)
        # and the deliver phase, from the envelope
        self.assertIn('%s: dlv: note name=spam.score int=7' % qid, log)
        self.assertIn(qid, d.queue_ids())
        with open(self.env_path(d, qid)) as f:
            env = json.load(f)
        self.assertEqual(env['notes'], {'spam.score': 7,
                                        'spam.verdict': 'ham'})

        # restart with the message queued: the notes come from disk
        self.assertEqual(d.stop(), 0)
        since = len(d.log_text())
        d.overrides['modules'][2]['deliver'] = {'*': 'declined'}
        d.start(keep_ports=True)
        r = d.ctl('flush')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(d.wait_messages('bob', 1)), 1)
        self.wait_log(d, '%s: dlv: note name=spam.verdict str=<ham>' % qid,
                      since)
        self.assertIn('%s: dlv: note name=spam.score int=7' % qid,
                      d.log_text()[since:])
        d.wait_queue_empty()

    def env_path(self, d, qid):
        """The envelope of a queued message, as JSON: ID.env once a
        delivery attempt updated it."""
        pattern = os.path.join(d.spool, 'queue', '*', qid + '.env')
        return wait_for(lambda: (glob.glob(pattern) or [None])[0],
                        what=pattern)


if __name__ == '__main__':
    harness.main()
