#!/usr/bin/env python3
"""asyncapi.yaml must describe the subscriptions template.yaml declares: for each
queue, the same raw delivery, filter policy scope and filter policy. Exits 1 on a
difference, naming it."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provision import load_template  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def from_template() -> dict[str, dict]:
    resources = load_template(ROOT / "template.yaml")["Resources"]
    found = {}
    for props in (r["Properties"] for r in resources.values() if r["Type"] == "AWS::SNS::Subscription"):
        # The events' queues; the alarm topic's e-mail subscription is no part of the contract.
        if props.get("Protocol") != "sqs":
            continue
        queue = props["Endpoint"]["Fn::GetAtt"][0]
        found[queue] = {
            "rawMessageDelivery": props.get("RawMessageDelivery", False),
            "filterPolicyScope": props.get("FilterPolicyScope", "MessageAttributes"),
            "filterPolicy": props.get("FilterPolicy"),
        }
    return found


def from_asyncapi() -> dict[str, dict]:
    document = yaml.safe_load((ROOT / "asyncapi.yaml").read_text())
    found = {}
    for operation in document["operations"].values():
        for consumer in operation.get("bindings", {}).get("sns", {}).get("consumers", []):
            found[consumer["endpoint"]["name"]] = {
                "rawMessageDelivery": consumer.get("rawMessageDelivery", False),
                "filterPolicyScope": consumer.get("filterPolicyScope", "MessageAttributes"),
                "filterPolicy": consumer.get("filterPolicy"),
            }
    channels = {c["bindings"]["sqs"]["queue"]["name"] for c in document["channels"].values() if "sqs" in c.get("bindings", {})}
    for queue in found.keys() - channels:
        found[queue]["channel"] = "missing"
    return found


def main() -> int:
    template, asyncapi = from_template(), from_asyncapi()
    problems = [
        f"{queue}: template.yaml {template.get(queue)} but asyncapi.yaml {asyncapi.get(queue)}"
        for queue in sorted(template.keys() | asyncapi.keys())
        if template.get(queue) != asyncapi.get(queue)
    ]
    for problem in problems:
        print(f"[check-asyncapi] {problem}", file=sys.stderr)
    if not problems:
        print(f"[check-asyncapi] asyncapi.yaml has the template's {len(template)} subscriptions", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
