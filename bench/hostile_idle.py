#!/usr/bin/env python3
"""Ten thousand idle sessions (issue 14, point 3): what they cost modmta
and what a legitimate client sees meanwhile.

    bench/hostile_idle.py [--build build] [--idle 10000] [--probes 50]

Starts modmta from BUILD (max_sessions raised, store_mbox to a temp dir,
DNS confined to loopback as in the e2e tests), opens IDLE connections
that read their banner and say nothing (tests/e2e/test_hostile.py's
open_idle), then prints one Markdown table: the time to open them, RSS,
PSS, threads and descriptors of the daemon with them held, the banner
latency of PROBES fresh clients (median, 95th percentile, max), the time
one message takes from connect to the mailbox, and the threads once the
idle clients are gone. Not run by CI."""

import argparse
import json
import os
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'e2e'))
from test_hostile import close_all, open_idle, proc_status  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def pss_kb(pid):
    with open('/proc/%d/smaps_rollup' % pid) as f:
        for line in f:
            if line.startswith('Pss:'):
                return int(line.split()[1])
    return 0


def start(build, work, port, idle):
    resolv = os.path.join(work, 'resolv.conf')
    with open(resolv, 'w') as f:
        f.write('nameserver 127.0.0.1\noptions timeout:1 attempts:1\n')
    cfg = {'hostname': 'bench.test', 'spool': os.path.join(work, 'spool'),
           'module_path': [os.path.join(build, 'modules')],
           'local_domains': ['localhost'], 'log': {'level': 'warn'},
           'limits': {'max_sessions': idle + 1000,
                      'max_sessions_per_client': idle + 1000},
           'listen': [{'name': 'smtp', 'address': '127.0.0.1:%d' % port}],
           'modules': [{'module': 'store_mbox',
                        'directory': os.path.join(work, 'mail'),
                        'users': 'any'}]}
    if os.geteuid() == 0:
        cfg['run_as_root'] = True
    os.makedirs(os.path.join(work, 'mail'))
    conf = os.path.join(work, 'modmta.json')
    with open(conf, 'w') as f:
        json.dump(cfg, f)
    log = open(os.path.join(work, 'modmta.log'), 'wb')
    proc = subprocess.Popen(
        ['unshare', '-m', '--propagation', 'private', 'sh', '-c',
         'mount --bind "$0" /etc/resolv.conf && exec "$@"', resolv,
         os.path.join(build, 'core', 'modmta'), '-c', conf],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(('127.0.0.1', port), 1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit('modmta did not start; see %s' % log.name)


def banner_ms(port):
    t0 = time.monotonic()
    with socket.create_connection(('127.0.0.1', port), 30) as s:
        buf = b''
        while b'\n' not in buf:
            data = s.recv(512)
            if not data:
                raise RuntimeError('closed before the banner')
            buf += data
    if not buf.startswith(b'220'):
        raise RuntimeError('banner %r' % buf)
    return (time.monotonic() - t0) * 1000


def delivery_ms(port, work):
    box = os.path.join(work, 'mail', 'bob')
    t0 = time.monotonic()
    with smtplib.SMTP('127.0.0.1', port, 'client.test', timeout=60) as s:
        s.sendmail('a@localhost', ['bob@localhost'],
                   'Subject: bench\r\n\r\nhello\r\n')
    while not os.path.exists(box) or os.path.getsize(box) == 0:
        if time.monotonic() - t0 > 60:
            raise RuntimeError('not delivered in 60 s')
        time.sleep(0.01)
    return (time.monotonic() - t0) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build', default='build')
    ap.add_argument('--idle', type=int, default=10000)
    ap.add_argument('--probes', type=int, default=50)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    work = tempfile.mkdtemp(prefix='modmta-bench-idle-')
    port = free_port()
    proc = start(build, work, port, a.idle)
    try:
        base = proc_status(proc.pid)
        t0 = time.monotonic()
        socks, replies = open_idle(port, a.idle, timeout=300)
        open_s = time.monotonic() - t0
        if replies != {'220': a.idle}:
            sys.exit('not every idle client was greeted: %r' % replies)
        held = proc_status(proc.pid)
        pss = pss_kb(proc.pid)
        fds = len(os.listdir('/proc/%d/fd' % proc.pid))
        lat = sorted(banner_ms(port) for _ in range(a.probes))
        dlv = delivery_ms(port, work)
        close_all(socks)
        t1 = time.monotonic()
        while proc_status(proc.pid)['Threads'] > 100:
            if time.monotonic() - t1 > 120:
                break
            time.sleep(0.1)
        leave_s = time.monotonic() - t1
        after = proc_status(proc.pid)
    finally:
        t2 = time.monotonic()
        proc.terminate()
        proc.wait(60)
        stop_s = time.monotonic() - t2
    per = (held['VmRSS'] - base['VmRSS']) / a.idle
    rows = [
        ('idle sessions held', '%d (all greeted)' % a.idle),
        ('time to open them (window of 200)', '%.1f s' % open_s),
        ('RSS before / with them', '%.1f MiB / %.1f MiB'
         % (base['VmRSS'] / 1024, held['VmRSS'] / 1024)),
        ('RSS per idle session', '%.1f KiB' % per),
        ('PSS with them', '%.1f MiB' % (pss / 1024)),
        ('threads with them', '%d' % held['Threads']),
        ('descriptors with them', '%d' % fds),
        ('banner latency, %d fresh clients' % a.probes,
         'median %.1f ms, p95 %.1f ms, max %.1f ms'
         % (statistics.median(lat), lat[int(len(lat) * 0.95) - 1],
            lat[-1])),
        ('one message, connect to mailbox', '%.0f ms' % dlv),
        ('stop (SIGTERM to exit)', '%.1f s' % stop_s),
        ('threads after they left', '%d (%.1f s after the close)'
         % (after['Threads'], leave_s)),
    ]
    print('| figure | value |\n|---|---|')
    for k, v in rows:
        print('| %s | %s |' % (k, v))
    subprocess.run(['rm', '-rf', work])


if __name__ == '__main__':
    main()
