#!/usr/bin/env python3
"""Medians of bench/tenants.sh output: one row per (tenants, connections) with keystored and
nginx requests/s, their ratio, and the number of rounds.  Usage: bench/summarize.py FILE..."""
import re
import statistics
import sys

rows = {}
for path in sys.argv[1:]:
    for line in open(path):
        m = re.match(r"(keystored|nginx)\s+tenants=(\d+)\s+connections=(\d+)\s+requests/s=([\d.]+)", line)
        if m:
            who, n, c, rps = m.group(1), int(m.group(2)), int(m.group(3)), float(m.group(4))
            rows.setdefault((n, c), {"keystored": [], "nginx": []})[who].append(rps)
print("| tenants | connections | keystored req/s (median) | nginx req/s (median) | ratio | rounds | keystored range |")
print("|---|---|---|---|---|---|---|")
for (n, c), v in sorted(rows.items()):
    k, g = statistics.median(v["keystored"]), statistics.median(v["nginx"])
    print(f"| {n:,} | {c} | {k:,.0f} | {g:,.0f} | {k / g:.2f} | {len(v['keystored'])} | "
          f"{min(v['keystored']):,.0f}-{max(v['keystored']):,.0f} |")
