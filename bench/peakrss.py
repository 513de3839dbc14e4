#!/usr/bin/env python3
"""Peak resident memory of a server while a load runs.

Samples, every --interval seconds until SIGTERM/SIGINT, the sum of VmRSS over
the server's processes (the pids in --cgroup, or the process tree of
--server-pid), then prints one JSON object:

  peak_rss_kb      highest sampled sum of RSS over all processes
  peak_procs       number of processes at that sample
  max_hwm_kb       highest VmHWM of any single process (exact kernel peak
                   since start or since `echo 5 > /proc/PID/clear_refs`)

For a one-process server (modmta) max_hwm_kb is the exact peak; for a
process-per-session server (Postfix) only the sampled sum is meaningful.

  peakrss.py --server-pid 1234 --json peak.jsonl --label modmta/c50 &
  ...; kill -TERM $!
"""
import argparse
import json
import os
import signal
import sys
import time


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def pids_of(a):
    if a.cgroup:
        procs = read(os.path.join(a.cgroup, "cgroup.procs"))
        return [int(x) for x in procs.split()]
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            s = read(f"/proc/{d}/stat")
            if s:
                ppid = int(s[s.rindex(")") + 2:].split()[1])
                kids.setdefault(ppid, []).append(int(d))
    out, pending = [], list(a.server_pid)
    while pending:
        p = pending.pop()
        out.append(p)
        pending.extend(kids.get(p, []))
    return out


def status_kb(pid, keys):
    got = {}
    for line in read(f"/proc/{pid}/status").splitlines():
        k, _, v = line.partition(":")
        if k in keys:
            got[k] = int(v.split()[0])
    return got


def main():
    ap = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cgroup")
    ap.add_argument("--server-pid", type=int, action="append", default=[])
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--label", default="")
    ap.add_argument("--json")
    a = ap.parse_args()
    if not (a.cgroup or a.server_pid):
        sys.exit("need --cgroup or --server-pid")

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    peak = procs = hwm = 0
    while not stop:
        total = n = 0
        for p in pids_of(a):
            v = status_kb(p, ("VmRSS", "VmHWM"))
            if "VmRSS" in v:
                total += v["VmRSS"]
                n += 1
                hwm = max(hwm, v.get("VmHWM", 0))
        if total > peak:
            peak, procs = total, n
        time.sleep(a.interval)
    r = {"label": a.label, "peak_rss_kb": peak, "peak_procs": procs,
         "max_hwm_kb": hwm, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    line = json.dumps(r)
    print(line)
    if a.json:
        with open(a.json, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
