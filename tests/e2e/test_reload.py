"""Hot reload (SIGHUP, modmtactl reload) under traffic, and broken
configs that must leave the old generation serving."""

import json
import re
import smtplib
import threading
import time

import harness
from harness import header, make_message, send_mail, smtp

THREADS = 2
PER_THREAD = 100
PER_CONNECTION = 10


def received_by(msg):
    m = re.search(r'\bby\s+(\S+)', header(msg, 'Received')[0])
    return m.group(1) if m else None


class Reload(harness.TestCase):

    def sender(self, d, t, acked, errors, lock):
        try:
            n = 0
            while n < PER_THREAD:
                with smtp(d.port()) as s:
                    for _ in range(min(PER_CONNECTION, PER_THREAD - n)):
                        mid = 't%d-%d@e2e.test' % (t, n)
                        qid = send_mail(s, 'a@localhost', ['bob@localhost'],
                                        make_message(mid))
                        with lock:
                            acked.append((mid, qid))
                        n += 1
        except (AssertionError, OSError, smtplib.SMTPException) as e:
            with lock:
                errors.append('thread %d: %r' % (t, e))

    def test_reload_during_traffic(self):
        d = self.daemon()
        acked, errors, lock = [], [], threading.Lock()
        threads = [threading.Thread(target=self.sender,
                                    args=(d, t, acked, errors, lock))
                   for t in range(THREADS)]
        for th in threads:
            th.start()
        # reload at points of progress (not of time), alternating the two
        # ways, each time with a different host name in the config
        points = [10, 30, 50, 70, 90, 110, 130, 150, 170]
        for i, point in enumerate(points):
            while len(acked) < point and any(t.is_alive() for t in threads):
                time.sleep(0.005)
            d.overrides['hostname'] = 'mx%d.e2e.test' % i
            d.write_config()
            if i % 3 == 2:
                r = d.ctl('reload')
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            else:
                d.reload()
        for th in threads:
            th.join(300)
        self.assertEqual(errors, [])
        self.assertEqual(len(acked), THREADS * PER_THREAD)
        self.assertTrue(d.running(), 'daemon died')
        d.wait_messages('bob', THREADS * PER_THREAD, timeout=120)
        d.wait_queue_empty()
        got = [header(m, 'Message-ID')[0].strip('<>')
               for m in d.messages('bob')]
        want = [mid for mid, _ in acked]
        self.assertEqual(len(got), len(want), 'duplicates or extras')
        self.assertEqual(sorted(got), sorted(want))
        # the last generation serves new sessions
        r = d.ctl('reload')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with smtp(d.port()) as s:
            send_mail(s, 'a@localhost', ['carol@localhost'],
                      make_message('last@e2e.test'))
        m = d.wait_messages('carol', 1)[0]
        self.assertEqual(received_by(m), 'mx%d.e2e.test' % (len(points) - 1))

    def test_session_in_flight_keeps_its_generation(self):
        d = self.daemon(hostname='old.e2e.test')
        old = smtp(d.port())
        old.ehlo()
        self.assertEqual(old.mail('a@localhost')[0], 250)
        d.overrides['hostname'] = 'new.e2e.test'
        d.write_config()
        r = d.ctl('reload')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with smtp(d.port()) as s:
            send_mail(s, 'a@localhost', ['carol@localhost'],
                      make_message('new@e2e.test'))
        self.assertEqual(old.rcpt('bob@localhost')[0], 250)
        code, text = old.data(make_message('old@e2e.test'))
        self.assertEqual(code, 250, text)
        old.quit()
        self.assertEqual(received_by(d.wait_messages('carol', 1)[0]),
                         'new.e2e.test')
        self.assertEqual(received_by(d.wait_messages('bob', 1)[0]),
                         'old.e2e.test')

    def test_broken_config(self):
        d = self.daemon(hostname='good.e2e.test')
        # invalid JSON, by signal: reported in the log, old config serves
        before = len(d.log_text())
        d.write_config('{"hostname": "broken.e2e.test", ')
        d.reload()
        harness.wait_for(
            lambda: re.search(r'error|fail|invalid',
                              d.log_text()[before:], re.I),
            what='the reload error in the log')
        self.assertTrue(d.running())
        with smtp(d.port()) as s:
            send_mail(s, 'a@localhost', ['bob@localhost'],
                      make_message('b1@e2e.test'))
        m = d.wait_messages('bob', 1)[0]
        self.assertEqual(received_by(m), 'good.e2e.test')
        # valid JSON modmtactl can read, but a config the daemon cannot
        # build: the ctl reply carries the error, exit non-zero
        cfg = d.config()
        cfg['hostname'] = 'broken.e2e.test'
        cfg['modules'].insert(0, {'module': 'no_such_module_e2e'})
        d.write_config(cfg)
        r = d.ctl('reload')
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('no_such_module_e2e', r.stdout + r.stderr)
        self.assertTrue(d.running())
        with smtp(d.port()) as s:
            send_mail(s, 'a@localhost', ['bob@localhost'],
                      make_message('b2@e2e.test'))
        m = d.wait_messages('bob', 2)[1]
        self.assertEqual(received_by(m), 'good.e2e.test')
        # an unknown key is an error too
        cfg = d.config()
        cfg['no_such_key_e2e'] = 1
        d.write_config(json.dumps(cfg))
        r = d.ctl('reload')
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        # and a good config is taken
        d.overrides['hostname'] = 'fixed.e2e.test'
        d.write_config()
        r = d.ctl('reload')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with smtp(d.port()) as s:
            send_mail(s, 'a@localhost', ['bob@localhost'],
                      make_message('b3@e2e.test'))
        m = d.wait_messages('bob', 3)[2]
        self.assertEqual(received_by(m), 'fixed.e2e.test')


if __name__ == '__main__':
    harness.main()
