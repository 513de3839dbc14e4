#!/usr/bin/python3
"""soak.sh's report: DIR/summary.md and DIR/soak.png from DIR/samples.csv,
and the mailbox checked against DIR/accepted.txt.

    soak_summary.py DIR MBOX

Run with Debian's python3 (python3-matplotlib). The mailbox check: every
accepted Message-ID delivered exactly once, with its body intact. Growth
is judged on the samples after a warm-up (the first tenth of the run):
the mean of the last tenth against the mean of the first tenth after the
warm-up. Exit status 1 when a message is missing or doubled, a body
differs, or a transaction failed.
"""

import csv
import mailbox
import os
import sys

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (after the backend)

BODY = b'x' * 1000


def check_mailbox(path, accepted):
    seen = {}
    bad = 0
    for msg in mailbox.mbox(path, create=False):
        mid = (msg['Message-ID'] or '').strip('<> ')
        seen[mid] = seen.get(mid, 0) + 1
        if msg.get_payload(decode=True).rstrip(b'\r\n') != BODY:
            bad += 1
    missing = [m for m in accepted if m not in seen]
    doubled = [m for m, n in seen.items() if n > 1]
    return len(seen), missing, doubled, bad


def mean(rows, key):
    return sum(float(r[key]) for r in rows) / len(rows) if rows else 0.0


def plot(rows, out):
    t = [int(r['seconds']) / 60.0 for r in rows]
    fig, ax = plt.subplots(4, 1, figsize=(10, 12), sharex=True)
    ax[0].plot(t, [float(r['msgs_per_s']) for r in rows])
    ax[0].set_ylabel('messages/s')
    for k in ('p50_ms', 'p90_ms', 'p99_ms'):
        ax[1].plot(t, [float(r[k]) for r in rows], label=k[:-3])
    ax[1].set_ylabel('latency (ms)')
    ax[1].legend()
    ax[2].plot(t, [int(r['rss_kb']) / 1024.0 for r in rows])
    ax[2].set_ylabel('RSS (MiB)')
    ax[2].set_ylim(bottom=0)
    ax[3].plot(t, [int(r['threads']) for r in rows], label='threads')
    ax[3].plot(t, [int(r['fds']) for r in rows], label='open files')
    ax[3].set_ylabel('count')
    ax[3].set_ylim(bottom=0)
    ax[3].legend()
    ax[3].set_xlabel('minutes')
    fig.suptitle('modmta soak: TLS, AUTH, errors, RSET, reload every minute')
    fig.tight_layout()
    fig.savefig(out, dpi=80)


def main():
    d, mbox = sys.argv[1], sys.argv[2]
    with open(os.path.join(d, 'samples.csv')) as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(d, 'accepted.txt')) as f:
        accepted = [line.strip() for line in f if line.strip()]
    failures = sum(int(r['failures']) for r in rows)
    n, missing, doubled, bad = check_mailbox(mbox, accepted)
    tenth = max(1, len(rows) // 10)
    early, late = rows[tenth:2 * tenth], rows[-tenth:]
    lines = [
        '| figure | value |', '|---|---|',
        '| duration | %d min |' % (int(rows[-1]['seconds']) // 60),
        '| messages accepted | %d |' % len(accepted),
        '| failed transactions | %d |' % failures,
        '| reloads | %s |' % rows[-1]['reloads'],
        '| in the mailbox | %d (missing %d, doubled %d, body differs %d) |'
        % (n, len(missing), len(doubled), bad),
        '| rate, early / late | %.1f / %.1f msg/s |'
        % (mean(early, 'msgs_per_s'), mean(late, 'msgs_per_s')),
        '| p50 / p99, late | %.1f / %.1f ms |'
        % (mean(late, 'p50_ms'), mean(late, 'p99_ms')),
        '| RSS, early / late / max | %.1f / %.1f / %.1f MiB |'
        % (mean(early, 'rss_kb') / 1024, mean(late, 'rss_kb') / 1024,
           max(int(r['rss_kb']) for r in rows) / 1024),
        '| threads, min / max | %d / %d |'
        % (min(int(r['threads']) for r in rows),
           max(int(r['threads']) for r in rows)),
        '| open files, min / max, late mean | %d / %d / %.1f |'
        % (min(int(r['fds']) for r in rows), max(int(r['fds']) for r in rows),
           mean(late, 'fds')),
    ]
    with open(os.path.join(d, 'summary.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    plot(rows, os.path.join(d, 'soak.png'))
    return 1 if missing or doubled or bad or failures else 0


if __name__ == '__main__':
    raise SystemExit(main())
