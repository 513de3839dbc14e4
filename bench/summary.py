#!/usr/bin/env python3
"""Summary of one bench/run.sh results directory, as Markdown.

Reads load.jsonl (loadgen.py), peak.jsonl (peakrss.py, one line per load
line, in the same order) and idle.jsonl (idleconns.py) and prints the load
table (medians over repetitions), the modmta/Postfix ratios and the two
targets of issue 2 point 10 with PASS or MISS.

  summary.py RESULTS_DIR [--ref postfix] [--new modmta]
"""
import argparse
import json
import os
import statistics

E2E_TARGET = 2.0        # modmta end-to-end at c=50 >= 2x Postfix's
IDLE_TARGET_KB = 64     # PSS per idle connection


def lines(path):
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]
    except OSError:
        return []


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, nd=1):
    if v is None:
        return "–"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def spread(vals, nd=1):
    """median, with (min–max) when there is more than one value."""
    vals = [v for v in vals if v is not None]
    if not vals:
        return "–"
    m = fmt(float(statistics.median(vals)), nd)
    if len(vals) > 1:
        lo, hi = fmt(float(min(vals)), nd), fmt(float(max(vals)), nd)
        return f"{m} ({lo}–{hi})"
    return m


def args():
    """RESULTS_DIR [--ref postfix] [--new modmta]"""
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--ref", default="postfix")
    ap.add_argument("--new", default="modmta")
    return ap.parse_args()


def read_loads(results, ref):
    """The loads of a results directory, each with its peak_rss_mib (from
    peak.jsonl, paired by position), grouped by (label, concurrency); the
    labels (ref first) and the concurrencies."""
    loads = lines(os.path.join(results, "load.jsonl"))
    peaks = lines(os.path.join(results, "peak.jsonl"))
    groups = {}
    for i, r in enumerate(loads):
        p = peaks[i] if i < len(peaks) else {}
        r["peak_rss_mib"] = (p["peak_rss_kb"] / 1024.0
                             if p.get("peak_rss_kb") else None)
        groups.setdefault((r["label"], r["concurrency"]), []).append(r)
    servers = sorted({k[0] for k in groups}, key=lambda s: (s != ref, s))
    concs = sorted({k[1] for k in groups})
    return groups, servers, concs


def ratio_table(groups, concs, new, ref, e2e_name):
    """The Markdown lines of the new/ref ratios of the medians per
    concurrency (accept, end-to-end, server CPU), and the end-to-end ratio
    at c=50 (None without one)."""
    out = ["", f"## Ratio {new} / {ref} (medians)", "",
           f"| conc | accept | {e2e_name} | server CPU per message |",
           "|---:|---:|---:|---:|"]
    ratio50 = None
    for c in concs:
        gn, gr = groups.get((new, c)), groups.get((ref, c))
        if not gn or not gr:
            continue

        def ratio(key):
            x, y = med([r[key] for r in gn]), med([r[key] for r in gr])
            return x / y if x and y else None
        e2e = ratio("e2e_rate")
        if c == 50:
            ratio50 = e2e
        out.append("| %d | %s× | %s× | %s× |" % (
            c, fmt(ratio("accept_rate"), 2), fmt(e2e, 2),
            fmt(ratio("server_cpu_s"), 2)))
    return out, ratio50


def load_table(groups, servers, concs):
    """The Markdown lines of the load table: medians over repetitions."""
    out = ["## Load (smtp-source, 4 KiB messages, one connection per message)",
           "",
           "| server | conc | msgs | reps | accept msg/s | end-to-end msg/s "
           "| peak RSS MiB | server CPU s | machine busy % | all ok |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for s in servers:
        for c in concs:
            g = groups.get((s, c))
            if not g:
                continue
            out.append("| %s | %d | %d | %d | %s | %s | %s | %s | %s | %s |" % (
                s, c, g[0]["messages"], len(g),
                spread([r["accept_rate"] for r in g]),
                spread([r["e2e_rate"] for r in g]),
                spread([r["peak_rss_mib"] for r in g]),
                spread([r["server_cpu_s"] for r in g], 2),
                spread([r["machine_busy_pct"] for r in g], 0),
                "yes" if all(r["ok"] for r in g) else "NO"))
    return out


def idle_table(idles, new):
    """The Markdown lines of the idle-connection table, and new's PSS per
    connection (None without it)."""
    out = ["", "## Idle connections", "",
           "| server | connections (failed) | processes | PSS before MiB "
           "| PSS during MiB | PSS KiB/conn | RSS KiB/conn |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    idle_new = None
    for r in idles:
        if r["label"] == new:
            idle_new = r["pss_kb_per_conn"]
        out.append("| %s | %d (%d) | %d | %.1f | %.1f | %.1f | %.1f |" % (
            r["label"], r["connections_ok"], r["connections_failed"],
            r["procs_during"], r["pss_kb_before"] / 1024.0,
            r["pss_kb_during"] / 1024.0, r["pss_kb_per_conn"],
            r["rss_kb_per_conn"]))
    return out, idle_new


def verdict(ok):
    return "–" if ok is None else ("PASS" if ok else "MISS")


def main():
    a = args()
    groups, servers, concs = read_loads(a.results, a.ref)
    idles = lines(os.path.join(a.results, "idle.jsonl"))

    out = load_table(groups, servers, concs)
    ratios, ratio50 = ratio_table(groups, concs, a.new, a.ref, "end-to-end")
    out += ratios
    idle, idle_new = idle_table(idles, a.new)
    out += idle
    out += ["", "## Targets (issue 2, point 10)", "",
            "| target | measured | verdict |", "|---|---:|---|",
            "| end-to-end at c=50 ≥ %.0f× %s (same run) | %s× | %s |" % (
                E2E_TARGET, a.ref, fmt(ratio50, 2),
                verdict(None if ratio50 is None else ratio50 >= E2E_TARGET)),
            "| ≤ %d KiB PSS per idle connection | %s KiB | %s |" % (
                IDLE_TARGET_KB, fmt(idle_new),
                verdict(None if idle_new is None
                        else idle_new <= IDLE_TARGET_KB))]
    print("\n".join(out))


if __name__ == "__main__":
    main()
