"""Redis Sentinel failover under a real daemon (issue 10, point 8;
docs/cluster.md): a master, a replica and three sentinels on loopback
ports of the test's own (redisserver.py), and one modmta whose "redis"
section names the sentinels. Every message needs Redis twice: ratelimit
counts the sender at MAIL, the recipient is an alias in a redis: map.

The master is killed (SIGKILL) while two threads send mail; the
sentinels promote the replica, and the same daemon (same PID, never
restarted) accepts mail again. Meanwhile only 250 or 4xx was answered
(4xx is allowed, not required), never 5xx; every message acknowledged
with 250 is in the aliased mailbox exactly once. After the failover,
through the new master: the alias lookup, `modmtactl map get|set`
through the sentinels, a counter of ratelimit (its exact count, its
expiry, and its limit refusing at the count the new master holds), and
`reload --cluster`."""

import os
import smtplib
import threading
import time

import harness
from harness import make_message, send_mail, smtp, wait_for
from redisserver import RedisServer, Sentinel
from test_ratelimit import window_room

MASTER_NAME = 'mymaster'
LIMIT = 100000              # messages per hour: never reached by traffic
THREADS = 2
# generous: sentinels vote and promote in seconds, but this machine may
# be loaded
FAILOVER_TIMEOUT = 180


class SentinelFailover(harness.TestCase):

    def start_redis(self):
        """Master, replica, three sentinels; returns once every sentinel
        sees the replica and the two other sentinels."""
        def where(name):
            return os.path.join(self.tmp, name)
        self.master = RedisServer(where('master'), 'master', tcp=True)
        self.replica = RedisServer(where('replica'), 'replica', tcp=True,
                                   replicaof=self.master)
        self.sentinels = [Sentinel(where('sentinel%d' % i), 'sentinel%d' % i,
                                   self.master, MASTER_NAME,
                                   down_after=1000, failover_timeout=3000)
                          for i in range(3)]
        servers = [self.master, self.replica] + self.sentinels
        # stopped even when a start fails, after harness' tearDown
        for s in servers:
            self.addCleanup(s.stop)
            self.peer_logs.append(s.logpath)
        for s in servers:
            s.start()
        wait_for(lambda: all(s.sees(1, 3) for s in self.sentinels),
                 timeout=FAILOVER_TIMEOUT,
                 what='every sentinel to see 1 replica and 3 sentinels')

    def node(self):
        d = self.daemon(start=False)
        d.overrides['redis'] = {
            'sentinels': [s.address for s in self.sentinels],
            'master': MASTER_NAME, 'timeout': 1, 'connect_timeout': 1}
        d.overrides['modules'] = [
            {'module': 'ratelimit', 'sender_messages_per_hour': LIMIT},
            {'module': 'alias', 'map': 'redis:alias:'},
            # only bob: a lookup wrongly taken as "no alias" is a 550
            {'module': 'store_mbox', 'directory': d.maildir,
             'users': ['bob']}]
        return d.start()

    def ctl_ok(self, d, *args):
        r = d.ctl(*args)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout

    @staticmethod
    def transaction(d, sender, rcpt, msgid):
        """One message on a connection of its own: the code that ended
        it (the 250 after DATA, or the first refusal), 0 for anything
        but an SMTP reply."""
        try:
            s = smtp(d.port())
        except (smtplib.SMTPException, OSError):
            return 0
        try:
            s.ehlo()
            code, _ = s.mail(sender)
            if code == 250:
                code, _ = s.rcpt(rcpt)
            if code == 250:
                code, _ = s.data(make_message(msgid, sender=sender,
                                              to=rcpt))
        except smtplib.SMTPResponseException as e:
            code = e.smtp_code
        except (smtplib.SMTPException, OSError):
            code = 0
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            s.close()
        return code

    def test_failover_during_traffic(self):
        self.start_redis()
        d = self.node()
        pid = d.pid
        self.assertEqual(self.ctl_ok(d, 'map', 'set', 'redis:alias:',
                                     'team', 'bob'), 'team: set\n')
        # on the replica before the master dies (replication is
        # asynchronous: what it has not got yet would be lost)
        wait_for(lambda: self.replica.cli('GET', 'modmta:alias:team')
                 == 'bob', what='the alias on the replica')

        stop = threading.Event()
        lock = threading.Lock()
        log = []                    # (code, msgid) per transaction

        def traffic(tag):
            n = 0
            while not stop.is_set():
                n += 1
                msgid = 'f%s-%d@e2e.test' % (tag, n)
                code = self.transaction(d, 'alice@localhost',
                                        'team@localhost', msgid)
                with lock:
                    log.append((code, msgid))
                time.sleep(0.02)

        def codes(since=0):
            with lock:
                return [c for c, _ in log[since:]]

        threads = [threading.Thread(target=traffic, args=(t,))
                   for t in range(THREADS)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: codes().count(250) >= 10,
                     what='mail before the failover')
            self.master.stop(kill=True)
            wait_for(lambda: all(s.master_port() == self.replica.port
                                 for s in self.sentinels),
                     timeout=FAILOVER_TIMEOUT,
                     what='the sentinels to promote the replica')
            mark = len(codes())
            wait_for(lambda: codes(mark).count(250) >= 10,
                     timeout=FAILOVER_TIMEOUT,
                     what='mail accepted after the failover')
        finally:
            stop.set()
            for t in threads:
                t.join()

        # the same daemon all along
        self.assertTrue(d.running(), 'the daemon died')
        self.assertEqual(d.pid, pid)
        self.assertEqual(d.log_text().count('=== e2e: starting modmta'), 1)
        # 250 or 4xx, nothing else
        all_codes = codes()
        self.assertEqual([c for c in all_codes
                          if c != 250 and not 400 <= c < 500], [],
                         all_codes)
        if any(400 <= c < 500 for c in all_codes):
            # what the admin sees: the failure, then the recovery
            self.assertRegex(d.log_text(), r'\berr\b.*redis: ')
            self.assertIn('answering again', d.log_text())
        acked = [m for c, m in log if c == 250]

        # the new master is the replica; the alias and counter work on it
        self.assertEqual(self.replica.cli('ROLE').split('\n')[0], 'master')
        self.assertEqual(self.ctl_ok(d, 'map', 'get', 'redis:alias:',
                                     'team'), 'bob\n')
        self.ctl_ok(d, 'map', 'set', 'redis:alias:', 'crew', 'bob')
        self.assertEqual(self.replica.cli('GET', 'modmta:alias:crew'),
                         'bob')
        self.assertEqual(self.ctl_ok(d, 'map', 'get', 'redis:alias:',
                                     'crew'), 'bob\n')
        # the three messages must count in the hour the key names
        window_room(3600, 120)
        key = ('modmta:ratelimit:ratelimit:msg:%d:from:carol@localhost'
               % (time.time() // 3600))
        for i in range(3):
            msgid = 'after-%d@e2e.test' % i
            with smtp(d.port()) as s:
                send_mail(s, 'carol@localhost', ['crew@localhost'],
                          make_message(msgid, sender='carol@localhost',
                                       to='crew@localhost'))
            acked.append(msgid)
        self.assertEqual(self.replica.cli('GET', key), '3')
        self.assertGreater(int(self.replica.cli('TTL', key)), 0)
        # the limit is decided on the new master's count
        self.replica.cli('SET', key, str(LIMIT), 'KEEPTTL')
        with smtp(d.port()) as s:
            s.ehlo()
            self.assertEqual(s.mail('carol@localhost'),
                             (450, b'4.7.1 Error: sender carol@localhost '
                              b'exceeded %d messages per hour' % LIMIT))

        # every acknowledged message once in the aliased mailbox
        d.wait_messages('bob', len(acked))
        d.wait_queue_empty()
        got = sorted(harness.header(m, 'Message-ID')[0].strip('<>')
                     for m in d.messages('bob'))
        self.assertEqual(got, sorted(acked))

        # the daemon's own subscription and registration followed too
        def reloaded():
            r = d.ctl('reload', '--cluster', '--timeout', '5')
            return (r.returncode == 0 and
                    r.stdout == 'mx.e2e.test: reloaded\n')
        wait_for(reloaded, timeout=FAILOVER_TIMEOUT,
                 what='reload --cluster after the failover', interval=1)


if __name__ == '__main__':
    harness.main()
