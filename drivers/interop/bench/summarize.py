"""Markdown table of `ganglion bench transport` reports.

Reports named `<config>-run<N>.json` are grouped by config; each cell is the
median over the runs of that run's value (p50, p99, max of its samples), and
sent / received / malformed counts are summed.

Usage: python3 summarize.py REPORT.json...
"""

import json
import re
import statistics
import sys
from collections import defaultdict

runs = defaultdict(list)
for path in sys.argv[1:]:
    name = re.sub(r"-run\d+$", "", path.rsplit("/", 1)[-1].removesuffix(".json"))
    runs[name].append(json.load(open(path)))


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


print("| config | stream | payload B | runs | sent | received | p50 µs | p99 µs | max µs |")
print("|--------|--------|----------:|-----:|-----:|---------:|-------:|-------:|-------:|")
for name, ds in runs.items():
    for key in ("joint_state", "frame"):
        label = "joint state" if key == "joint_state" else f"frame {ds[0]['width']}x{ds[0]['height']}"
        ss = [d[key] for d in ds]
        lat = [s["latency_us"] or {} for s in ss]
        print(
            f"| {name} | {label} | {ss[0]['payload_bytes']} | {len(ss)} | {sum(s['sent'] for s in ss)} "
            f"| {sum(s['received'] for s in ss)} | {med([l.get('p50') for l in lat]):.0f} "
            f"| {med([l.get('p99') for l in lat]):.0f} | {med([l.get('max') for l in lat]):.0f} |"
        )
print()
print("| config | topic | malformed sent | decode errors | valid message after it landed | corpus cases not sendable |")
print("|--------|-------|---------------:|--------------:|---|---|")
for name, ds in runs.items():
    ms = [d["malformed"] for d in ds if d.get("malformed")]
    if not ms:
        continue
    for topic in ms[0]["topics"]:
        ts = [m["topics"][topic] for m in ms]
        print(
            f"| {name} | {topic} | {sum(t['sent'] for t in ts)} | {sum(t['decode_errors'] for t in ts)} "
            f"| {all(t['valid_after_landed'] for t in ts)} | {len(ms[0]['skipped_over_dds'])} |"
        )
