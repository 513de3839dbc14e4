"""kill -9 during a burst, restart on the same spool: every message that
got its 250 is delivered exactly once, none twice, byte-exact in a
mailbox that still parses. Once in a big burst, then KILLS times in a
row at random points (seeded: CRASH_SEED repeats a run), some by the
test at a random moment, some by the daemon itself right after a chosen
call of the queue commit or of the mbox delivery (faultinject.c's
"kill")."""

import os
import random
import smtplib
import threading
import time
import zlib

import harness
from harness import fault_env, send_mail, smtp, wait_for
from mailcheck import check_exact, mbox_messages, message

THREADS = 4
PER_THREAD = 75
PER_CONNECTION = 5
KILL_AFTER = 100          # acknowledged messages before the kill
KILLS = int(os.environ.get('CRASH_KILLS', '50'))

# Where the daemon kills itself, right after the call: [call, pattern].
KILL_POINTS = [
    ['write', '/spool/tmp/'],        # content half received
    ['fsync', '/spool/tmp/'],        # durable, not yet committed
    ['rename', '.msg$'],             # committed, not yet synced: no 250
    ['fsync', '/spool/queue/'],      # synced, 250 not yet sent
    ['write', '/mail/bob$'],         # half appended to the mailbox
    ['fsync', '/mail/bob$'],         # appended, delivery not recorded
]


def burst_size(mid):
    """300 octets to 90 KB (more than the queue's 64 KiB buffer), by
    the Message-ID: the same message has the same size in every run."""
    return (300, 3000, 20000, 90000)[zlib.crc32(mid.encode()) % 4]


class Burst:
    """Sender threads, each sending messages over connections of
    PER_CONNECTION messages until stopped or out of messages. A
    connection that breaks once the daemon is (being) killed is what a
    kill does; any other failure is recorded and fails the test."""

    def __init__(self, d, tag, threads, per_thread, sizes):
        self.d, self.tag = d, tag
        self.proc = d.proc
        self.lock = threading.Lock()
        self.acked, self.sent = {}, {}
        self.errors = []
        self.stop = threading.Event()
        self.killed = threading.Event()
        self.sizes = sizes
        self.threads = [threading.Thread(target=self.run,
                                         args=(t, per_thread))
                        for t in range(threads)]

    def start(self):
        for th in self.threads:
            th.start()
        return self

    def alive(self):
        return any(th.is_alive() for th in self.threads)

    def dead(self):
        """Killed by the test, or by itself (its connections close a
        moment before it can be reaped: wait for that)."""
        deadline = time.monotonic() + 10
        while not self.killed.is_set() and self.proc.poll() is None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def kill_daemon(self):
        self.killed.set()
        self.d.kill()

    def join(self):
        self.stop.set()
        for th in self.threads:
            th.join(120)
        return self.errors

    def run(self, t, per_thread):
        n = 0
        try:
            while n < per_thread and not self.stop.is_set():
                with smtp(self.d.port()) as s:
                    for _ in range(min(PER_CONNECTION, per_thread - n)):
                        mid = '%s-%d-%d@e2e.test' % (self.tag, t, n)
                        msg = message(mid, self.sizes(mid), mid)
                        n += 1
                        with self.lock:
                            self.sent[mid] = msg
                        send_mail(s, 'a@localhost', ['bob@localhost'], msg)
                        with self.lock:
                            self.acked[mid] = msg
        except (OSError, smtplib.SMTPException) as e:
            # a broken connection is expected once the kill has come
            if not self.dead():
                self.errors.append('thread %d: %r' % (t, e))
        except AssertionError as e:
            # a refusal: no reply at all is what a kill gives
            self.errors.append('thread %d: %s' % (t, e))


class Crash(harness.TestCase):

    def test_kill9_mid_burst(self):
        d = self.daemon()
        b = Burst(d, 'c', THREADS, PER_THREAD, lambda mid: 200).start()
        while len(b.acked) < KILL_AFTER and b.alive():
            time.sleep(0.002)
        b.kill_daemon()
        self.assertEqual(b.join(), [], 'failures before the kill')
        acked, sent = dict(b.acked), dict(b.sent)
        self.assertGreaterEqual(len(acked), KILL_AFTER)
        d.start(keep_ports=True)
        self.wait_delivered(d, acked, sent)
        d.wait_queue_empty(120)
        self.check(d, acked, sent)
        print('\n%d acknowledged before the kill, %d sent'
              % (len(acked), len(sent)), flush=True)

    def test_kill9_many_times(self):
        seed = int(os.environ.get('CRASH_SEED', str(time.time_ns())))
        rnd = random.Random(seed)
        print('\nCRASH_SEED=%d' % seed, flush=True)
        d = self.daemon(start=False)
        acked, sent = {}, {}
        self_kills = 0
        for rnd_no in range(KILLS):
            point = rnd.choice(KILL_POINTS + [None] * 3)
            skip = rnd.randint(0, 4)
            if point is None:
                d.env, what = {}, 'the test'
            else:
                d.env = fault_env(['%s:%s:%d:1:kill'
                                   % (point[0], point[1], skip)])
                what = 'the daemon after %s %s (skip %d)' % (
                    point[0], point[1], skip)
            print('round %d: kill by %s' % (rnd_no, what), flush=True)
            if not self.restart(d):
                self_kills += 1         # recovery reached the kill point
                continue
            # what earlier rounds acknowledged is all delivered, unless
            # the recovery itself reaches this round's kill point (the
            # mailbox may end in half a message then, which the next
            # start cuts away: the next round checks it)
            self.wait_delivered(d, acked, sent, or_dead=True)
            try:
                self.check(d, acked, sent)
            except AssertionError:
                if not self.dying(d):
                    raise
            if not d.running():
                d.kill()
                self_kills += 1
                continue
            b = Burst(d, 'r%d' % rnd_no, 3, 8, burst_size).start()
            want = rnd.randint(0, 12)
            wait_for(lambda: len(b.acked) >= want or not b.alive() or
                     not d.running(), 60, 'acknowledgements or a kill',
                     interval=0.002)
            if point is None:
                time.sleep(rnd.uniform(0, 0.05))
            else:
                # until the daemon reaches its kill point, or the burst
                # ends without reaching it (the test kills it then)
                wait_for(lambda: not d.running() or not b.alive(), 60,
                         'the daemon killing itself', interval=0.005)
            self_kills += not d.running()
            b.kill_daemon()
            errors = b.join()
            self.assertEqual(errors, [], 'round %d: failures before the '
                             'kill' % rnd_no)
            acked.update(b.acked)
            sent.update(b.sent)
        d.env = {}
        d.start(keep_ports=True)
        self.wait_delivered(d, acked, sent)
        d.wait_queue_empty(120)
        self.check(d, acked, sent)
        with smtp(d.port()) as s:
            msg = message('after@e2e.test', 300, 'after')
            send_mail(s, 'a@localhost', ['bob@localhost'], msg)
        acked['after@e2e.test'] = msg
        self.wait_delivered(d, acked, sent)
        print('%d kills (%d by the daemon at a kill point), %d '
              'acknowledged, %d sent' % (KILLS, self_kills, len(acked),
                                         len(sent)), flush=True)

    def restart(self, d):
        """Start d on its ports; False if it killed itself (at its kill
        point) before its listeners answered."""
        mark = len(d.log_text())
        try:
            d.start(keep_ports=True)
        except AssertionError:
            if 'faultinject: ' not in d.log_text()[mark:]:
                raise
            d.kill()
            return False
        return True

    def dying(self, d):
        """True if d has died, or is dying: a process killed mid-append
        lets go of its mailbox lock a moment before it can be reaped."""
        try:
            wait_for(lambda: not d.running(), 5, 'the daemon dying')
        except AssertionError:
            return False
        return True

    def wait_delivered(self, d, acked, sent, or_dead=False):
        """Until every acknowledged message is in bob's mailbox (or the
        daemon died, with or_dead)."""
        def done():
            if or_dead and not d.running():
                return True
            have = set()
            for m in mbox_messages(d.mailbox('bob')):
                ids = harness.header(m, 'Message-ID')
                if len(ids) == 1:
                    have.add(ids[0].strip('<>'))
            return set(acked) <= have
        wait_for(done, 120, 'all %d acknowledged messages' % len(acked),
                 interval=0.1)

    def check(self, d, acked, sent):
        """bob's mailbox parses, holds every acknowledged message and
        nothing twice, all byte-exact."""
        maybe = {m: v for m, v in sent.items() if m not in acked}
        check_exact(self, mbox_messages(d.mailbox('bob')), acked, 'bob',
                    maybe=maybe)


if __name__ == '__main__':
    harness.main()
