#!/usr/bin/env python3
"""Summary of one bench/milter_dkim.sh results directory, as Markdown.

Reads load.jsonl, peak.jsonl (as summary.py), signed.jsonl (milter_dkim.sh:
messages delivered and DKIM-Signature fields in the mailbox after each
load) and opendkim.jsonl (opendkim's CPU seconds over each load), and
prints the load table, the modmta/Postfix ratios and the target of issue
12 point 6 (end-to-end at c=50 with opendkim signing >= 2x Postfix's,
same run) with PASS or MISS.

  milter_dkim_summary.py RESULTS_DIR [--ref postfix] [--new modmta]
"""
import os

from summary import args, fmt, lines, load_table, ratio_table, read_loads

TARGET = 2.0


def main():
    a = args()
    groups, servers, concs = read_loads(a.results, a.ref)
    out = ["# Through opendkim (signing), both servers on the same "
           "opendkim", ""]
    out += load_table(groups, servers, concs)
    ratios, ratio50 = ratio_table(groups, concs, a.new, a.ref, "end-to-end")
    out += ratios
    signed = lines(os.path.join(a.results, "signed.jsonl"))
    dkim = lines(os.path.join(a.results, "opendkim.jsonl"))
    out += ["", "## Signed, and opendkim's CPU", "",
            "| server | conc | delivered | with DKIM-Signature "
            "| opendkim CPU s |", "|---|---:|---:|---:|---:|"]
    for i, r in enumerate(signed):
        cpu = dkim[i]["cpu_s"] if i < len(dkim) else None
        out.append("| %s | %d | %d | %d | %s |" % (
            r["label"], r["concurrency"], r["delivered"], r["signed"],
            fmt(cpu, 2)))
    verdict = "–" if ratio50 is None else (
        "PASS" if ratio50 >= TARGET else "MISS")
    out += ["", "## Target (issue 12, point 6)", "",
            "| target | measured | verdict |", "|---|---:|---|",
            "| end-to-end at c=50 through opendkim ≥ %.0f× %s (same run) "
            "| %s× | %s |" % (TARGET, a.ref, fmt(ratio50, 2), verdict)]
    print("\n".join(out))


if __name__ == "__main__":
    main()
