#!/usr/bin/env python3
"""Summary of one bench/redis_alias.sh results directory, as Markdown:
the load table, the redis/file ratios and the two targets of issue 10
point 10 (the Redis path costs at most 15 % of the end-to-end rate at
c=50; at most 64 KiB PSS per idle connection with Redis configured).

  redis_alias_summary.py RESULTS_DIR [--ref file] [--new redis]
"""
import argparse
import os

from summary import (fmt, idle_table, lines, load_table, ratio_table,
                     read_loads, verdict)

COST_TARGET = 0.15      # redis end-to-end >= (1 - 15 %) of file's at c=50
IDLE_TARGET_KB = 64     # PSS per idle connection, Redis configured


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--ref", default="file")
    ap.add_argument("--new", default="redis")
    a = ap.parse_args()
    groups, servers, concs = read_loads(a.results, a.ref)
    out = load_table(groups, servers, concs)
    ratios, ratio50 = ratio_table(groups, concs, a.new, a.ref, "end-to-end")
    out += ratios
    idle, idle_new = idle_table(
        lines(os.path.join(a.results, "idle.jsonl")), a.new)
    out += idle
    floor = 1.0 - COST_TARGET
    out += ["", "## Targets (issue 10, point 10)", "",
            "| target | measured | verdict |", "|---|---:|---|",
            "| %s end-to-end at c=50 ≥ %.2f× %s (same run) | %s× | %s |" % (
                a.new, floor, a.ref, fmt(ratio50, 2),
                verdict(None if ratio50 is None else ratio50 >= floor)),
            "| ≤ %d KiB PSS per idle connection (%s) | %s KiB | %s |" % (
                IDLE_TARGET_KB, a.new, fmt(idle_new),
                verdict(None if idle_new is None
                        else idle_new <= IDLE_TARGET_KB))]
    print("\n".join(out))


if __name__ == "__main__":
    main()
