#!/usr/bin/env python3
"""Summary of one bench/relay.sh results directory, as Markdown.

Reads load.jsonl (loadgen.py with --sink-log; the label smtp-sink marks
the ceiling: smtp-source straight into the sink, its CPU the sink's),
peak.jsonl (peakrss.py, one line per server load line, in the same
order), check.jsonl (relay.sh: what each server's log and queue say) and
env.txt (the number of CPUs), and prints the load table (medians over
repetitions), the modmta/Postfix ratios and the target of issue 9 point 9
(relay end-to-end at c=50 >= 2x Postfix's) with PASS or MISS.

  relay_summary.py RESULTS_DIR [--ref postfix] [--new modmta]
"""
import os

from summary import args, fmt, lines, ratio_table, read_loads, spread

TARGET = 2.0            # modmta relay end-to-end at c=50 >= 2x Postfix's


def main():
    a = args()
    groups, servers, concs = read_loads(a.results, a.ref)
    checks = lines(os.path.join(a.results, "check.jsonl"))
    ncpu = os.cpu_count()
    with open(os.path.join(a.results, "env.txt")) as f:
        for line in f:
            if line.startswith("cpus "):
                ncpu = int(line.split()[1])
    for g in groups.values():
        for r in g:
            r["cpu_ms_per_msg"] = 1000.0 * r["server_cpu_s"] / r["messages"]
            # CPUs busy with neither the server nor the client: the sink,
            # loadgen.py, the RSS sampler (~0.2-0.4 here) and whatever
            # else ran on the machine; more means the run was disturbed.
            r["others_cpus"] = (r["machine_busy_pct"] / 100.0 * ncpu -
                                (r["server_cpu_s"] + r["client_cpu_s"]) /
                                r["e2e_s"]) if r["e2e_s"] else None

    out = ["## Relay (smtp-source → server → smtp-sink, 4 KiB messages, "
           "one inbound connection per message)",
           "",
           "| server | conc | msgs | reps | accept msg/s "
           "| relay end-to-end msg/s | server CPU s | CPU ms/msg "
           "| client CPU s | peak RSS MiB | sink conn/msg | machine busy % "
           "| others' CPUs | all ok |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:"
           "|---|"]
    for s in servers:
        for c in concs:
            g = groups.get((s, c))
            if not g:
                continue
            out.append("| %s | %d | %d | %d | %s | %s | %s | %s | %s | %s "
                       "| %s | %s | %s | %s |" % (
                           s, c, g[0]["messages"], len(g),
                           spread([r["accept_rate"] for r in g]),
                           spread([r["e2e_rate"] for r in g]),
                           spread([r["server_cpu_s"] for r in g], 2),
                           spread([r["cpu_ms_per_msg"] for r in g], 2),
                           spread([r["client_cpu_s"] for r in g], 2),
                           spread([r["peak_rss_mib"] for r in g]),
                           spread([r.get("sink_conn_per_msg") for r in g], 3),
                           spread([r["machine_busy_pct"] for r in g], 0),
                           spread([r["others_cpus"] for r in g], 2),
                           "yes" if all(r["ok"] for r in g) else "NO"))

    ratios, ratio50 = ratio_table(groups, concs, a.new, a.ref,
                                  "relay end-to-end")
    out += ratios

    out += ["", "## What the servers' logs and queues say", "",
            "| server | messages injected | status=sent | deferred | bounced "
            "| warning/error lines | left in queue |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for r in checks:
        out.append("| %s | %d | %d | %d | %d | %d | %d |" % (
            r["label"], r["injected"], r["sent"], r["deferred"],
            r["bounced"], r["problem_lines"], r["queued_after"]))

    verdict = "–" if ratio50 is None else (
        "PASS" if ratio50 >= TARGET else "MISS")
    out += ["", "## Target (issue 9, point 9)", "",
            "| target | measured | verdict |", "|---|---:|---|",
            "| relay end-to-end at c=50 ≥ %.0f× %s (same run) | %s× | %s |"
            % (TARGET, a.ref, fmt(ratio50, 2), verdict)]
    print("\n".join(out))


if __name__ == "__main__":
    main()
