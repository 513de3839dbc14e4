"""Hostile clients at scale (issue 14, point 3): ten thousand idle
connections, the descriptor limit, slowloris, stress mode, command floods,
an endless DATA, pre-greeting talkers. Timing figures belong to
bench/hostile_idle.py; these tests only wait for conditions."""

import os
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import harness
from harness import Raw, smtp

IDLE = 10000


def proc_status(pid):
    """{'VmRSS': kB, 'Threads': n} of a running process."""
    out = {}
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            key, _, value = line.partition(':')
            if key in ('VmRSS', 'Threads'):
                out[key] = int(value.split()[0])
    return out


def open_idle(port, n, timeout=120, window=200):
    """n connections that read their greeting and then say nothing,
    opened at most window at a time (a server that speaks first never
    sees the handshake of a client whose final ACK the kernel dropped
    with a full accept queue). Returns (sockets, {first reply: count})."""
    socks, pending, replies = [], {}, {}
    poller = select.poll()
    deadline = time.monotonic() + timeout
    while (len(socks) < n or pending) and time.monotonic() < deadline:
        while len(socks) < n and len(pending) < window:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(('127.0.0.1', port))
            socks.append(s)
            pending[s.fileno()] = [s, b'']
            poller.register(s, select.POLLIN)
        for fd, _ in poller.poll(1000):
            entry = pending.get(fd)
            if entry is None:
                continue
            try:
                data = entry[0].recv(512)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b''
            entry[1] += data
            if b'\n' in entry[1] or not data:
                line = entry[1].split(b'\r\n')[0][:3].decode() or 'EOF'
                replies[line] = replies.get(line, 0) + 1
                poller.unregister(fd)
                del pending[fd]
    if pending or len(socks) < n:
        replies['none'] = len(pending) + n - len(socks)
    return socks, replies


def close_all(socks):
    for s in socks:
        s.close()


class Hostile(harness.TestCase):

    def session(self, d):
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd('EHLO client.test'), 250)
        return c

    def test_ten_thousand_idle_sessions(self):
        """10,000 idle clients hold sessions (one descriptor each) while
        a legitimate client is greeted and its mail delivered."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = IDLE + 1000
        if hard != resource.RLIM_INFINITY and hard < need:
            self.skipTest('the hard descriptor limit (%d) is below the '
                          '%d this test opens' % (hard, need))
        if soft != resource.RLIM_INFINITY and soft < need:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE,
                            (soft, hard))
        d = self.daemon(limits={'max_sessions': 15000,
                                'max_sessions_per_client': 15000,
                                'command_timeout': 600})
        socks, replies = open_idle(d.port(), IDLE)
        try:
            self.assertEqual(replies, {'220': IDLE}, replies)
            st = proc_status(d.pid)
            sys_note = 'sessions=%d rss_kb=%d threads=%d' % (
                IDLE, st['VmRSS'], st['Threads'])
            sys.stderr.write('e2e: %s\n' % sys_note)
            self.assertGreaterEqual(st['Threads'], IDLE, sys_note)
            with smtp(d.port(), timeout=120) as s:
                harness.send_mail(s, 'a@localhost', ['bob@localhost'],
                                  harness.make_message('<idle@e2e>'))
            d.wait_messages('bob', 1)
            self.assertNotIn('too many', d.log_text())
        finally:
            close_all(socks)
        # the sessions end with their clients (slowly under ASan)
        harness.wait_for(lambda: proc_status(d.pid)['Threads'] < 100, 180,
                         'the idle sessions to end')
        # the exit of a daemon that held 10,000 threads takes longer than
        # the harness's stop allows under ASan (the leak check at exit)
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        self.assertEqual(d.proc.wait(180), 0)
        sys.stderr.write('e2e: exit took %.1f s\n' % (time.monotonic() - t0))

    def test_descriptor_limit_named_in_log(self):
        """With few descriptors the refusal names the descriptor limit,
        not max_sessions, and the clients let in are served."""
        d = self.daemon(limits={'max_sessions': 1000,
                                'max_sessions_per_client': 1000},
                        queue={'workers': 1, 'outbound_workers': 1})
        subprocess.run(['prlimit', '--pid', str(d.pid),
                        '--nofile=400:400'], check=True)
        socks, replies = open_idle(d.port(), 400)
        try:
            self.assertGreater(replies.get('220', 0), 100, replies)
            self.assertGreater(replies.get('421', 0), 0, replies)
            log = d.log_text()
            self.assertIn('421 4.7.0 too many open files (descriptor', log)
            self.assertNotIn('too many connections (max_sessions=', log)
        finally:
            close_all(socks)
        # the sessions end, the descriptors come back
        harness.wait_for(lambda: proc_status(d.pid)['Threads'] < 50,
                         what='the idle sessions to end')
        with smtp(d.port()) as s:
            harness.send_mail(s, 'a@localhost', ['bob@localhost'],
                              harness.make_message('<fd@e2e>'))
        d.wait_messages('bob', 1)

    def test_idle_transactions_keep_the_reserve(self):
        """Idle sessions that each sent MAIL hold a spool file too: past
        the descriptor budget MAIL gets 452 4.3.1 (the log names the
        limit), so the reserve stays for a transaction already open to
        commit and deliver and for the control socket."""
        d = self.daemon(limits={'max_sessions': 1000,
                                'max_sessions_per_client': 1000,
                                'command_timeout': 600,
                                'stress_threshold': 0},
                        queue={'workers': 1, 'outbound_workers': 1})
        subprocess.run(['prlimit', '--pid', str(d.pid),
                        '--nofile=400:400'], check=True)
        legit = self.session(d)
        self.assertReply(legit.cmd('MAIL FROM:<a@localhost>'), 250)
        self.assertReply(legit.cmd('RCPT TO:<bob@localhost>'), 250)
        idle, codes = [], {}
        try:
            # first the sessions, up to the budget; then MAIL in each
            for _ in range(400):
                c = Raw(d.port())
                r = c.reply()
                if r[0] != 220:
                    self.assertReply(r, 421, '4.7.0')
                    c.close()
                    break
                idle.append(c)
                self.assertReply(c.cmd('EHLO idle.test'), 250)
            threads = proc_status(d.pid)['Threads']
            for c in idle:
                r = c.cmd('MAIL FROM:<idle@localhost>')
                codes[r[0]] = codes.get(r[0], 0) + 1
                if r[0] != 250:
                    self.assertReply(r, 452, '4.3.1')
            self.assertGreater(codes.get(452, 0), 100, codes)
            log = d.log_text()
            self.assertIn('cannot start a message: too many open files '
                          '(descriptor', log)
            # the budget, not a broken spool: fewer sessions, MAIL again
            for c in idle[:20]:
                c.close()
            harness.wait_for(lambda: proc_status(d.pid)['Threads'] <
                             threads - 10, what='sessions to end')
            self.assertReply(idle[20].cmd('MAIL FROM:<idle@localhost>'),
                             250)
            r = d.ctl('queue')
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertReply(legit.cmd('DATA'), 354)
            legit.send(harness.make_message('reserve@e2e') + b'.\r\n')
            self.assertReply(legit.reply(), 250)
            d.wait_messages('bob', 1)
            self.assertNotIn('Too many open files', d.log_text())
        finally:
            legit.close()
            for c in idle:
                c.close()

    def slow_send(self, c, data, interval):
        """Send data one octet per interval until the server answers;
        returns its reply (None at EOF)."""
        deadline = time.monotonic() + 120
        for i in range(len(data)):
            ready, _, _ = select.select([c.sock], [], [], interval)
            if ready:
                return c.reply()
            try:
                c.send(data[i:i + 1])
            except OSError:
                return c.reply()
            self.assertLess(time.monotonic(), deadline,
                            'the server never cut the slow client')
        self.fail('the server took the whole slow input')

    def test_slowloris_command_line(self):
        """A command line that never ends is cut at command_timeout: it
        is a deadline for the whole line, not for each read."""
        d = self.daemon(limits={'command_timeout': 3})
        c = self.session(d)
        r = self.slow_send(c, b'X' * 600, 0.5)
        self.assertReply(r, 421, '4.4.2')
        self.assertClosed(c)

    def test_slowloris_header_never_ends(self):
        """One octet at a time in a header that never ends: each read
        arrives well within data_timeout, data_total_timeout ends it."""
        d = self.daemon(limits={'data_timeout': 30,
                                'data_total_timeout': 3})
        c = self.session(d)
        self.assertReply(c.cmd('MAIL FROM:<a@localhost>'), 250)
        self.assertReply(c.cmd('RCPT TO:<bob@localhost>'), 250)
        self.assertReply(c.cmd('DATA'), 354)
        r = self.slow_send(c, b'Subject: ' + b'x' * 600, 0.5)
        self.assertReply(r, 421, '4.4.2')
        self.assertClosed(c)
        harness.wait_for(lambda: 'timeout DATA' in d.log_text(),
                         what='the DATA timeout in the log')
        d.wait_queue_empty()
        self.assertEqual(d.messages('bob'), [])

    def test_stress_shrinks_timeouts(self):
        """At stress_threshold percent of max_sessions the daemon enters
        stress mode (logged once), idle sessions are cut at
        stress_timeout instead of command_timeout, and it leaves stress
        mode (below 90 % of the threshold) as they go."""
        d = self.daemon(limits={'max_sessions': 10,
                                'max_sessions_per_client': 10,
                                'command_timeout': 300,
                                'stress_threshold': 20,
                                'stress_timeout': 2})
        # the harness's start-up probe is gone first: it would count
        harness.wait_for(lambda: 'disconnect' in d.log_text(),
                         what='the probe to leave')
        idle = [self.session(d) for _ in range(4)]
        harness.wait_for(lambda: 'stress: on' in d.log_text(),
                         what='stress mode')
        cut = 0
        for c in idle:
            # the last one may outlive the stress: it then waits its
            # command_timeout, and the test closes it
            c.sock.settimeout(20)
            try:
                r = c.reply()
            except OSError:
                continue
            self.assertReply(r, 421, '4.4.2')
            self.assertClosed(c)
            cut += 1
        self.assertGreaterEqual(cut, 3)
        for c in idle:
            c.close()
        harness.wait_for(lambda: 'stress: off' in d.log_text(),
                         what='the end of stress mode')
        log = d.log_text()
        # each transition logged once: on and off alternate
        marks = [l.split('stress: ')[1][:3].strip() for l in
                 log.splitlines() if 'stress: ' in l]
        self.assertEqual(marks, ['on', 'off'] * (len(marks) // 2), log)
        self.assertIn('timeout waiting for a command', log)
        self.assertIn('stress=on', log)
        with smtp(d.port()) as s:
            harness.send_mail(s, 'a@localhost', ['bob@localhost'],
                              harness.make_message('<stress@e2e>'))
        d.wait_messages('bob', 1)

    def flood(self, d, line, count):
        """Send count copies of line in the background; return the
        replies read until the server closes."""
        c = self.session(d)

        def writer():
            chunk = (line + '\r\n').encode() * 1000
            try:
                for _ in range(count // 1000):
                    c.sock.sendall(chunk)
            except OSError:
                pass     # the server closed: what the test expects
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        codes = []
        while True:
            try:
                r = c.reply()
            except OSError:
                r = None
            if r is None:
                break
            codes.append(r)
        t.join(60)
        return codes

    def test_noop_flood(self):
        """100,000 NOOPs: junk past 100 counts as errors, and the session
        ends with 421 at the error limit."""
        d = self.daemon(limits={'errors': 10})
        codes = self.flood(d, 'NOOP', 100000)
        self.assertEqual(codes[-1][0], 421, codes[-3:])
        self.assertIn('too many errors', codes[-1][1][0])
        self.assertLess(len(codes), 200, len(codes))

    def test_junk_flood(self):
        d = self.daemon(limits={'errors': 10})
        codes = self.flood(d, 'FROB ' + 'x' * 60, 100000)
        self.assertEqual({r[0] for r in codes[:-1]}, {500}, codes)
        self.assertLessEqual(len(codes), 11, codes)
        self.assertReply(codes[-1], 421, '4.7.0')

    def test_endless_data_and_line(self):
        """64 MiB of DATA past a 1 MB message_size: 552 at the dot and
        no growth of the daemon's memory with the input; likewise a
        16 MiB command line."""
        d = self.daemon(limits={'message_size': 1000000})
        c = self.session(d)
        before = proc_status(d.pid)['VmRSS']
        self.assertReply(c.cmd('MAIL FROM:<a@localhost>'), 250)
        self.assertReply(c.cmd('RCPT TO:<bob@localhost>'), 250)
        self.assertReply(c.cmd('DATA'), 354)
        block = (b'y' * 998 + b'\r\n') * 1024
        for _ in range(64):
            c.send(block)
        c.send(b'.\r\n')
        self.assertReply(c.reply(), 552, '5.3.4')
        c.send(b'z' * (16 << 20))
        self.assertReply(c.cmd(''), 500, '5.5.2')
        self.assertReply(c.cmd('NOOP'), 250)
        grown = proc_status(d.pid)['VmRSS'] - before
        self.assertLess(grown, 32 * 1024, 'RSS grew by %d kB' % grown)
        c.close()
        d.wait_queue_empty()
        self.assertEqual(d.messages('bob'), [])

    def test_pregreet_talkers(self):
        """With greet_pause, clients that talk before the banner get 554
        and are closed; a client that waits is greeted and served."""
        d = self.daemon(limits={'greet_pause': 2000})
        talkers = []
        for _ in range(20):
            c = Raw(d.port())
            c.send('EHLO early.test\r\nMAIL FROM:<a@localhost>\r\n')
            talkers.append(c)
        with smtp(d.port()) as s:
            harness.send_mail(s, 'a@localhost', ['bob@localhost'],
                              harness.make_message('<patient@e2e>'))
        for c in talkers:
            self.assertReply(c.reply(), 554, '5.5.0')
            self.assertClosed(c)
        d.wait_messages('bob', 1)
        self.assertEqual(d.log_text().count('early talker'), 20)


if __name__ == '__main__':
    harness.main()
