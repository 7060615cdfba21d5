#!/usr/bin/env bash
# End-to-end latency of the local environment, against a running `infra/local.sh up`.
#
#   infra/measure-latency.sh [RUNS]
#
# Each run creates one task and polls every 50 ms until
#   - GET /dashboard/stats shows tasks_total one higher than before the POST
#     (task-api -> outbox -> SNS -> dashboard queue -> dashboard consumer), and
#   - GET /tasks/{id} shows the task Classified
#     (task-api -> outbox -> SNS -> ml-classifier queue -> ml-classifier).
# Both times are measured from just before the POST; it prints each run, then
# median, min and max in milliseconds. Assumes nobody else creates tasks
# meanwhile (the dashboard counts every user's tasks). The tasks it creates stay
# in the local tables.
#
# Settings: BASE_URL (http://127.0.0.1:3000), RUNS (10, at most 100),
# TIMEOUT_SECS per run (30), USER_ID sent as X-User-Id (latency-probe).
# Exits 1 if a measurement timed out, 2 if the server cannot be reached or fails.
set -euo pipefail

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi

export BASE_URL=${BASE_URL:-http://127.0.0.1:3000}
export RUNS=${1:-${RUNS:-10}}
export TIMEOUT_SECS=${TIMEOUT_SECS:-30}
export USER_ID=${USER_ID:-latency-probe}

command -v python3 >/dev/null || {
  echo "measure-latency: python3 is needed" >&2
  exit 2
}

exec python3 - <<'PY'
import json
import os
import statistics
import sys
import time
import urllib.error
import urllib.request

BASE_URL = os.environ["BASE_URL"].rstrip("/")
USER_ID = os.environ["USER_ID"]
POLL_SECS = 0.05
REQUEST_TIMEOUT_SECS = 5


def bounded(name, low, high):
    raw = os.environ[name]
    try:
        value = int(raw)
    except ValueError:
        sys.exit(f"measure-latency: {name} must be a whole number, not {raw!r}")
    if not low <= value <= high:
        sys.exit(f"measure-latency: {name} must be from {low} to {high}, not {value}")
    return value


RUNS = bounded("RUNS", 1, 100)
TIMEOUT_SECS = bounded("TIMEOUT_SECS", 1, 600)


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE_URL + path, data=data, method=method)
    request.add_header("X-User-Id", USER_ID)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECS) as response:
        return response.status, json.load(response)


def tasks_total():
    return call("GET", "/dashboard/stats")[1]["tasks_total"]


def one_run(number):
    """Milliseconds until the dashboard counted the task and until it was classified."""
    before = tasks_total()
    started = time.monotonic()
    status, task = call(
        "POST",
        "/tasks",
        {"title": f"Fix latency probe {number}", "description": "Measures the event flow."},
    )
    if status != 201:
        raise RuntimeError(f"POST /tasks answered {status}")
    dashboard_ms = classified_ms = None
    deadline = started + TIMEOUT_SECS
    next_poll = time.monotonic()
    while dashboard_ms is None or classified_ms is None:
        if dashboard_ms is None and tasks_total() > before:
            dashboard_ms = (time.monotonic() - started) * 1000
        if classified_ms is None and call("GET", f"/tasks/{task['id']}")[1]["status"] == "Classified":
            classified_ms = (time.monotonic() - started) * 1000
        if time.monotonic() >= deadline:
            break
        next_poll += POLL_SECS
        time.sleep(max(0.0, next_poll - time.monotonic()))
    return dashboard_ms, classified_ms


def show(ms):
    return "timeout" if ms is None else f"{ms:.0f}"


def summary(label, values):
    if not values:
        return f"{label}: no run finished"
    return (
        f"{label}: median {statistics.median(values):.0f} ms, "
        f"min {min(values):.0f} ms, max {max(values):.0f} ms (n={len(values)})"
    )


def main():
    try:
        tasks_total()
    except (OSError, urllib.error.URLError, KeyError, ValueError) as err:
        print(f"measure-latency: cannot read {BASE_URL}/dashboard/stats ({err}); "
              "is `infra/local.sh up` running?", file=sys.stderr)
        return 2
    print(f"{RUNS} run(s) against {BASE_URL}, polling every {POLL_SECS * 1000:.0f} ms, "
          f"{TIMEOUT_SECS} s timeout per run")
    print(f"{'run':>4}  {'dashboard_ms':>12}  {'classified_ms':>13}")
    dashboard, classified, timed_out = [], [], 0
    for number in range(1, RUNS + 1):
        try:
            dashboard_ms, classified_ms = one_run(number)
        except (OSError, urllib.error.URLError, RuntimeError, KeyError, ValueError) as err:
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
        print(f"measure-latency: {timed_out} measurement(s) timed out after {TIMEOUT_SECS} s; "
              "are the consumers running (see the `up` log)?", file=sys.stderr)
        return 1
    return 0


sys.exit(main())
PY
