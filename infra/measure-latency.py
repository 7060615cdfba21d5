#!/usr/bin/env python3
"""End-to-end latency of the local environment, against a running `infra/local.sh up`.

    infra/measure-latency.py [RUNS]

Each run creates one task and polls every 50 ms until
  - GET /dashboard/stats shows tasks_total one higher than before the POST
    (task-api -> outbox -> SNS -> dashboard queue -> dashboard consumer), and
  - GET /tasks/{id} shows the task Classified
    (task-api -> outbox -> SNS -> ml-classifier queue -> ml-classifier).
Both times are measured from just before the POST; it prints each run, then
median, min and max in milliseconds. Assumes nobody else creates tasks
meanwhile (the dashboard counts every user's tasks). The tasks it creates stay
in the local tables.

Settings: BASE_URL (http://127.0.0.1:3000), RUNS (10, at most 100),
TIMEOUT_SECS per run (30), USER_ID sent as X-User-Id (latency-probe).
Exits 1 if a measurement timed out, 2 if the server cannot be reached or fails.
"""

import argparse
import json
import os
import statistics
import sys
import time
import urllib.error
import urllib.request

POLL_SECS = 0.05
REQUEST_TIMEOUT_SECS = 5
# What a failing or unreachable server raises.
SERVER_ERRORS = (OSError, urllib.error.URLError, KeyError, ValueError)


def bounded(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        sys.exit(f"measure-latency: {name} must be a whole number, not {raw!r}")
    if not low <= value <= high:
        sys.exit(f"measure-latency: {name} must be from {low} to {high}, not {value}")
    return value


class Probe:
    def __init__(self, base_url: str, user_id: str, timeout_secs: int) -> None:
        self.base_url, self.user_id, self.timeout_secs = base_url, user_id, timeout_secs

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("X-User-Id", self.user_id)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECS) as response:
            return response.status, json.load(response)

    def tasks_total(self) -> int:
        return self.call("GET", "/dashboard/stats")[1]["tasks_total"]

    def status(self, task_id: str) -> str:
        return self.call("GET", f"/tasks/{task_id}")[1]["status"]

    def one_run(self, number: int) -> tuple[float | None, float | None]:
        """Milliseconds until the dashboard counted the task and until it was classified."""
        before = self.tasks_total()
        started = time.monotonic()
        status, task = self.call(
            "POST",
            "/tasks",
            {"title": f"Fix latency probe {number}", "description": "Measures the event flow."},
        )
        if status != 201:
            raise RuntimeError(f"POST /tasks answered {status}")
        dashboard_ms = classified_ms = None
        deadline = started + self.timeout_secs
        next_poll = time.monotonic()
        while dashboard_ms is None or classified_ms is None:
            if dashboard_ms is None and self.tasks_total() > before:
                dashboard_ms = (time.monotonic() - started) * 1000
            if classified_ms is None and self.status(task["id"]) == "Classified":
                classified_ms = (time.monotonic() - started) * 1000
            if time.monotonic() >= deadline:
                break
            next_poll += POLL_SECS
            time.sleep(max(0.0, next_poll - time.monotonic()))
        return dashboard_ms, classified_ms


def show(ms: float | None) -> str:
    return "timeout" if ms is None else f"{ms:.0f}"


def summary(label: str, values: list[float]) -> str:
    if not values:
        return f"{label}: no run finished"
    return (
        f"{label}: median {statistics.median(values):.0f} ms, "
        f"min {min(values):.0f} ms, max {max(values):.0f} ms (n={len(values)})"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="measure-latency.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="?", metavar="RUNS", help="number of runs (default: $RUNS, or 10)")
    args = parser.parse_args(argv)
    base_url = (os.environ.get("BASE_URL") or "http://127.0.0.1:3000").rstrip("/")
    runs = bounded("RUNS", args.runs or os.environ.get("RUNS") or "10", 1, 100)
    timeout_secs = bounded("TIMEOUT_SECS", os.environ.get("TIMEOUT_SECS") or "30", 1, 600)
    probe = Probe(base_url, os.environ.get("USER_ID") or "latency-probe", timeout_secs)
    try:
        probe.tasks_total()
    except SERVER_ERRORS as err:
        print(
            f"measure-latency: cannot read {base_url}/dashboard/stats ({err}); "
            "is `infra/local.sh up` running?",
            file=sys.stderr,
        )
        return 2
    print(
        f"{runs} run(s) against {base_url}, polling every {POLL_SECS * 1000:.0f} ms, "
        f"{timeout_secs} s timeout per run"
    )
    print(f"{'run':>4}  {'dashboard_ms':>12}  {'classified_ms':>13}")
    dashboard: list[float] = []
    classified: list[float] = []
    timed_out = 0
    for number in range(1, runs + 1):
        try:
            dashboard_ms, classified_ms = probe.one_run(number)
        except (*SERVER_ERRORS, RuntimeError) as err:
            print(f"measure-latency: run {number} failed: {err}", file=sys.stderr)
            return 2
        print(f"{number:>4}  {show(dashboard_ms):>12}  {show(classified_ms):>13}", flush=True)
        for values, ms in ((dashboard, dashboard_ms), (classified, classified_ms)):
            if ms is None:
                timed_out += 1
            else:
                values.append(ms)
    print(summary("POST /tasks -> dashboard tasks_total +1", dashboard))
    print(summary("POST /tasks -> task Classified        ", classified))
    if timed_out:
        print(
            f"measure-latency: {timed_out} measurement(s) timed out after {timeout_secs} s; "
            "are the consumers running (see the `up` log)?",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
