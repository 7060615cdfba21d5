#!/usr/bin/env python3
"""Prints the traces of one task as trees, from the spans the dev server writes.

    infra/trace.py TASK_ID [--file SPANS_FILE]

`infra/local.sh up` has the dev server write its spans as JSON lines to
`OTEL_SPANS_FILE` (by default spans.jsonl in the run directory). Every trace
with a span about the task (attribute `task.id`) is printed as a tree: each
span with its duration, status and the attributes that say what it did.
Spans reach the file a few seconds after they end. Exits 1 when no span
names the task.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

SHOWN = (
    "task.id",
    "http.response.status_code",
    "event.type",
    "event.count",
    "event.published_count",
    "event.failed_count",
    "consumer",
    "cloudevents.event_type",
    "rpc.method",
    "server.address",
)


def read(path: Path) -> list[dict]:
    spans = []
    with path.open() as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    spans.append(json.loads(line))
                except json.JSONDecodeError as err:
                    print(f"{path}:{number}: skipped, not JSON: {err}", file=sys.stderr)
    return spans


def describe(span: dict) -> str:
    took = (span["end_us"] - span["start_us"]) / 1000
    status = "" if span["status"] != "error" else f"  ERROR {span['status_message']}".rstrip()
    shown = ", ".join(
        f"{key}={span['attributes'][key]}" for key in SHOWN if key in span["attributes"]
    )
    return f"{span['name']}  {took:.1f} ms{status}" + (f"  ({shown})" if shown else "")


def print_tree(span: dict, children: dict[str, list[dict]], depth: int) -> None:
    print("  " * depth + describe(span))
    for child in sorted(children[span["span_id"]], key=lambda s: s["start_us"]):
        print_tree(child, children, depth + 1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task_id")
    parser.add_argument("--file", type=Path, required=True, help="the spans file")
    args = parser.parse_args(argv)
    if not args.file.exists():
        print(f"{args.file} does not exist: is `infra/local.sh up` running?", file=sys.stderr)
        return 1
    spans = read(args.file)
    traces = {s["trace_id"] for s in spans if s["attributes"].get("task.id") == args.task_id}
    if not traces:
        print(f"no span names task {args.task_id} in {args.file}", file=sys.stderr)
        return 1
    for trace_id in sorted(traces, key=lambda t: min(s["start_us"] for s in spans if s["trace_id"] == t)):
        in_trace = [s for s in spans if s["trace_id"] == trace_id]
        ids = {s["span_id"] for s in in_trace}
        children: dict[str, list[dict]] = defaultdict(list)
        for span in in_trace:
            children[span["parent_span_id"]].append(span)
        roots = sorted((s for s in in_trace if s["parent_span_id"] not in ids), key=lambda s: s["start_us"])
        print(f"trace {trace_id}")
        for root in roots:
            print_tree(root, children, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
