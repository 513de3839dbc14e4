#!/usr/bin/env python3
"""Issue 14, point 5: a steady mixed load for an hour, sampled over time.

    soak_load.py --port P --pid PID --user U --password PW --domain D
                 --duration S --rate R --clients C --reload-every S
                 --reload-cmd "modmtactl -c ... reload" --out DIR

Each of C client threads runs transactions at its share of R per second,
each one of these kinds, in a fixed rotation:

  plain       EHLO, MAIL, RCPT, DATA (accepted: counted as sent)
  tls         STARTTLS, EHLO, then as plain
  auth        STARTTLS, AUTH PLAIN, then as plain (an authenticated sender)
  rset        a transaction abandoned with RSET, then a whole one
  errors      a relay attempt (5xx), an unknown command (500), a bad MAIL
              (501): each must get its 5xx, then a whole transaction

A transaction "fails" when any reply is not the one expected. Every
--sample seconds a row goes to DIR/samples.csv: elapsed seconds, messages
accepted in the interval, their rate, latency p50/p90/p99 (ms, connect to
QUIT), failures, the daemon's RSS (kB), threads and open descriptors
(from /proc). Every --reload-every seconds --reload-cmd runs; its exit
status is counted. DIR/accepted.txt: the Message-IDs the server accepted,
to check the mailbox against at the end.
"""

import argparse
import csv
import os
import smtplib
import ssl
import subprocess
import threading
import time

KINDS = ('plain', 'tls', 'auth', 'rset', 'errors')


class Totals:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = []
        self.accepted = []
        self.failures = []
        self.reloads = 0
        self.reload_failures = 0

    def take(self):
        with self.lock:
            lat, self.latencies = self.latencies, []
            acc, self.accepted = self.accepted, []
            fail, self.failures = self.failures, []
        return lat, acc, fail


def expect(code, reply, what):
    if reply[0] != code:
        raise AssertionError('%s: expected %d, got %r' % (what, code, reply))


def message(domain, mid):
    return ('From: soak <soak@%s>\r\nTo: <bench@%s>\r\n'
            'Subject: soak\r\nMessage-ID: <%s>\r\n\r\n%s\r\n'
            % (domain, domain, mid, 'x' * 1000)).encode()


def whole(s, a, mid):
    expect(250, s.mail('soak@%s' % a.domain), 'MAIL')
    expect(250, s.rcpt('bench@%s' % a.domain), 'RCPT')
    expect(250, s.data(message(a.domain, mid)), 'DATA')


def transaction(a, kind, mid, ctx):
    s = smtplib.SMTP('127.0.0.1', a.port, timeout=60)
    try:
        expect(250, s.ehlo('soak.client'), 'EHLO')
        if kind in ('tls', 'auth'):
            expect(220, s.starttls(context=ctx), 'STARTTLS')
            expect(250, s.ehlo('soak.client'), 'EHLO after STARTTLS')
        if kind == 'auth':
            s.login(a.user, a.password)  # raises on anything but 235
        if kind == 'rset':
            expect(250, s.mail('soak@%s' % a.domain), 'MAIL')
            expect(250, s.rset(), 'RSET')
        if kind == 'errors':
            r = s.mail('soak@%s' % a.domain)
            expect(250, r, 'MAIL')
            r = s.rcpt('someone@elsewhere.invalid')
            if r[0] // 100 != 5:
                raise AssertionError('relay attempt answered %r' % (r,))
            expect(250, s.rset(), 'RSET')
            expect(500, s.docmd('FROBNICATE'), 'unknown command')
            expect(501, s.docmd('MAIL', 'FROM:<a@b'), 'bad MAIL')
        whole(s, a, mid)
        s.quit()
    finally:
        s.close()


def client(a, n, totals, stop):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    period = a.clients / a.rate
    next_at = time.monotonic() + period * n / a.clients
    seq = 0
    while not stop.is_set():
        delay = next_at - time.monotonic()
        if delay > 0:
            stop.wait(delay)
            if stop.is_set():
                break
        next_at += period
        kind = KINDS[(seq + n) % len(KINDS)]
        mid = 'soak.%d.%d.%d@%s' % (os.getpid(), n, seq, a.domain)
        seq += 1
        t0 = time.monotonic()
        try:
            transaction(a, kind, mid, ctx)
        except (OSError, smtplib.SMTPException, AssertionError) as e:
            with totals.lock:
                totals.failures.append('%s %s: %s' % (kind, mid, e))
            continue
        with totals.lock:
            totals.latencies.append((time.monotonic() - t0) * 1000.0)
            totals.accepted.append(mid)


def proc_sample(pid):
    rss = threads = 0
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                rss = int(line.split()[1])
            elif line.startswith('Threads:'):
                threads = int(line.split()[1])
    return rss, threads, len(os.listdir('/proc/%d/fd' % pid))


def percentile(values, p):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100.0))]


def reload(a, totals):
    r = subprocess.run(a.reload_cmd, shell=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    totals.reloads += 1
    if r.returncode != 0:
        totals.reload_failures += 1


def main():
    p = argparse.ArgumentParser()
    for k in ('port', 'pid', 'clients', 'duration', 'sample',
              'reload_every'):
        p.add_argument('--' + k.replace('_', '-'), type=int, required=True)
    p.add_argument('--rate', type=float, required=True)
    for k in ('user', 'password', 'domain', 'reload_cmd', 'out'):
        p.add_argument('--' + k.replace('_', '-'), required=True)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    totals = Totals()
    stop = threading.Event()
    threads = [threading.Thread(target=client, args=(a, n, totals, stop))
               for n in range(a.clients)]
    for t in threads:
        t.start()
    start = time.monotonic()
    next_reload = start + a.reload_every
    total_acc = total_fail = 0
    with open(os.path.join(a.out, 'samples.csv'), 'w', newline='') as sf, \
            open(os.path.join(a.out, 'accepted.txt'), 'w') as af, \
            open(os.path.join(a.out, 'failures.txt'), 'w') as ff:
        w = csv.writer(sf)
        w.writerow(['seconds', 'accepted', 'msgs_per_s', 'p50_ms', 'p90_ms',
                    'p99_ms', 'failures', 'rss_kb', 'threads', 'fds',
                    'reloads'])
        last = start
        while time.monotonic() - start < a.duration:
            time.sleep(min(a.sample, max(0.1, next_reload - time.monotonic())))
            now = time.monotonic()
            if now >= next_reload:
                reload(a, totals)
                next_reload += a.reload_every
            if now - last < a.sample:
                continue
            lat, acc, fail = totals.take()
            rss, nthr, fds = proc_sample(a.pid)
            total_acc += len(acc)
            total_fail += len(fail)
            w.writerow([round(now - start), len(acc),
                        round(len(acc) / (now - last), 2),
                        round(percentile(lat, 50), 1),
                        round(percentile(lat, 90), 1),
                        round(percentile(lat, 99), 1), len(fail), rss, nthr,
                        fds, totals.reloads])
            sf.flush()
            af.writelines(m + '\n' for m in acc)
            ff.writelines(x + '\n' for x in fail)
            last = now
        stop.set()
        for t in threads:
            t.join()
        lat, acc, fail = totals.take()
        af.writelines(m + '\n' for m in acc)
        ff.writelines(x + '\n' for x in fail)
        total_acc += len(acc)
        total_fail += len(fail)
    print('accepted %d failed %d reloads %d reload_failures %d'
          % (total_acc, total_fail, totals.reloads, totals.reload_failures))
    return 1 if total_fail or totals.reload_failures else 0


if __name__ == '__main__':
    raise SystemExit(main())
