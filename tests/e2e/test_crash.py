"""kill -9 during a burst, restart on the same spool: every message that
got its 250 is delivered exactly once, none twice."""

import collections
import smtplib
import threading
import time

import harness
from harness import header, make_message, send_mail, smtp

THREADS = 4
PER_THREAD = 75
PER_CONNECTION = 5
KILL_AFTER = 100          # acknowledged messages before the kill


def end_marker(mid):
    return ('end-of-%s' % mid).encode()


class Crash(harness.TestCase):

    def sender(self, d, t, acked, lock, stop):
        n = 0
        try:
            while n < PER_THREAD and not stop.is_set():
                with smtp(d.port()) as s:
                    for _ in range(min(PER_CONNECTION, PER_THREAD - n)):
                        mid = 'c%d-%d@e2e.test' % (t, n)
                        body = 'message %s\r\n%s\r\n' % (
                            mid, end_marker(mid).decode())
                        n += 1
                        qid = send_mail(s, 'a@localhost', ['bob@localhost'],
                                        make_message(mid, body=body))
                        with lock:
                            acked[mid] = qid
        except (AssertionError, OSError, smtplib.SMTPException):
            pass                    # the daemon died under us: expected

    def test_kill9_mid_burst(self):
        d = self.daemon()
        acked, lock, stop = {}, threading.Lock(), threading.Event()
        threads = [threading.Thread(target=self.sender,
                                    args=(d, t, acked, lock, stop))
                   for t in range(THREADS)]
        for th in threads:
            th.start()
        while len(acked) < KILL_AFTER and any(t.is_alive() for t in threads):
            time.sleep(0.002)
        d.kill()
        stop.set()
        for th in threads:
            th.join(120)
        with lock:
            acked = dict(acked)
        self.assertGreaterEqual(len(acked), KILL_AFTER)
        sent_all = len(acked) == THREADS * PER_THREAD
        d.start(keep_ports=True)
        # every acknowledged message arrives
        def all_in():
            have = self.copies(d)
            missing = [m for m in acked if have.get(m, 0) == 0]
            return not missing
        harness.wait_for(all_in, 120, 'all %d acknowledged messages'
                         % len(acked), interval=0.2)
        d.wait_queue_empty(120)
        copies = self.copies(d)
        twice = {m: n for m, n in copies.items() if n > 1}
        self.assertEqual(twice, {}, 'delivered more than once')
        for mid in acked:
            self.assertEqual(copies.get(mid), 1, mid)
        print('\n%d acknowledged before the kill, %d delivered in all%s'
              % (len(acked), len(copies),
                 ' (the kill came after the last one)' if sent_all else ''),
              flush=True)

    def copies(self, d):
        """Message-ID -> number of complete copies in bob's mailbox."""
        count = collections.Counter()
        for m in d.messages('bob'):
            ids = header(m, 'Message-ID')
            if len(ids) != 1:
                continue
            mid = ids[0].strip('<>')
            if end_marker(mid) in m:
                count[mid] += 1
        return count


if __name__ == '__main__':
    harness.main()
