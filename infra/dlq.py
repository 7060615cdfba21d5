"""Inspects and redrives a consumer's dead-letter queue on the local emulators.

    dlq.py list    --consumer NAME --prefix P [--max N] [--template PATH]
    dlq.py redrive --consumer NAME --prefix P [--template PATH]

NAME is a consumer as its function directory names it (ml-classifier,
dashboard, cicd-monitor). Its queue is the template's `<Name>Queue` and its
dead-letter queue the one that queue's RedrivePolicy names, both under the
physical names provision.py gives them. `list` prints one JSON object per
dead letter (id, first sent, receive count, message attributes, body) and
leaves them where they are; `redrive` moves them all back to the consumer's
queue with SQS's own message move task, and prints how many it moved.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from provision import DEFAULT_TEMPLATE, PREFIX_PATTERN, Clients, ProvisionError, load_template, physical_name

# How long a listed message stays hidden while the listing runs; each is made
# visible again as soon as it is printed.
LIST_VISIBILITY_SECS = 30
MOVE_TIMEOUT_SECS = 60


class DlqError(Exception):
    pass


def queue_logical_ids(template: dict, consumer: str) -> tuple[str, str]:
    """The consumer's queue and dead-letter queue, by logical id."""
    stem = "".join(part.capitalize() for part in consumer.split("-"))
    queue_id = f"{stem}Queue"
    resources = template["Resources"]
    queue = resources.get(queue_id)
    if not queue or queue.get("Type") != "AWS::SQS::Queue":
        consumers = sorted(
            lid.removesuffix("Queue")
            for lid, spec in resources.items()
            if spec.get("Type") == "AWS::SQS::Queue" and "RedrivePolicy" in (spec.get("Properties") or {})
        )
        raise DlqError(f"the template has no queue {queue_id}; queues with a DLQ: {', '.join(consumers)}")
    target = ((queue.get("Properties") or {}).get("RedrivePolicy") or {}).get("deadLetterTargetArn")
    if not (isinstance(target, dict) and "Fn::GetAtt" in target):
        raise DlqError(f"{queue_id} names no dead-letter queue of the template (RedrivePolicy)")
    return queue_id, target["Fn::GetAtt"][0]


def queue_url_and_arn(clients: Clients, name: str) -> tuple[str, str]:
    url = clients.sqs.get_queue_url(QueueName=name)["QueueUrl"]
    arn = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def describe(message: dict) -> dict:
    attributes = message.get("Attributes", {})
    try:
        body = json.loads(message["Body"])
    except ValueError:
        body = message["Body"]
    sent_ms = int(attributes.get("SentTimestamp", "0"))
    return {
        "message_id": message["MessageId"],
        "sent_at": datetime.fromtimestamp(sent_ms / 1000, UTC).isoformat(timespec="seconds"),
        "receive_count": int(attributes.get("ApproximateReceiveCount", "0")),
        "attributes": {
            name: value.get("StringValue", value.get("BinaryValue"))
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "body": body,
    }


def list_dead_letters(clients: Clients, dlq_url: str, limit: int) -> int:
    """Prints up to `limit` dead letters, then makes them all visible again."""
    receipts: list[str] = []
    try:
        while len(receipts) < limit:
            # Received messages stay hidden until the listing ends, so none is listed twice.
            messages = clients.sqs.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=min(10, limit - len(receipts)),
                VisibilityTimeout=LIST_VISIBILITY_SECS,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                print(json.dumps(describe(message)), flush=True)
                receipts.append(message["ReceiptHandle"])
    finally:
        for start in range(0, len(receipts), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": receipt, "VisibilityTimeout": 0}
                for i, receipt in enumerate(receipts[start : start + 10])
            ]
            failed = clients.sqs.change_message_visibility_batch(QueueUrl=dlq_url, Entries=entries).get(
                "Failed"
            )
            if failed:
                raise DlqError(f"could not make listed messages visible again: {failed}")
    return len(receipts)


def redrive(clients: Clients, dlq_arn: str, queue_arn: str) -> int:
    """Moves every dead letter back to the consumer's queue; returns how many moved."""
    handle = clients.sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=queue_arn)["TaskHandle"]
    deadline = time.monotonic() + MOVE_TIMEOUT_SECS
    while True:
        tasks = clients.sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10)["Results"]
        task = next((t for t in tasks if t.get("TaskHandle", handle) == handle), None)
        status = task["Status"] if task else "RUNNING"
        if status == "COMPLETED":
            return int(task.get("ApproximateNumberOfMessagesMoved", 0))
        if status in ("FAILED", "CANCELLED", "CANCELLING"):
            raise DlqError(f"the move task ended {status}: {task.get('FailureReason', 'no reason given')}")
        if time.monotonic() > deadline:
            raise DlqError(f"the move task is still {status} after {MOVE_TIMEOUT_SECS}s")
        time.sleep(0.2)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["list", "redrive"])
    parser.add_argument("--consumer", required=True, help="ml-classifier, dashboard, cicd-monitor, ...")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--max", type=int, default=100, help="list at most this many (default 100)")
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    args = parser.parse_args(argv)
    if not PREFIX_PATTERN.fullmatch(args.prefix):
        parser.error("--prefix: letters, digits, '-' or '_', starting with a letter or digit")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    try:
        queue_id, dlq_id = queue_logical_ids(load_template(args.template), args.consumer)
        clients = Clients(region)
        dlq_url, dlq_arn = queue_url_and_arn(clients, physical_name(args.prefix, dlq_id))
        if args.action == "list":
            count = list_dead_letters(clients, dlq_url, args.max)
            print(f"[dlq] {count} dead letter(s) in {dlq_id}", file=sys.stderr)
        else:
            _, queue_arn = queue_url_and_arn(clients, physical_name(args.prefix, queue_id))
            moved = redrive(clients, dlq_arn, queue_arn)
            print(json.dumps({"moved": moved, "from": dlq_id, "to": queue_id}))
    except (DlqError, ProvisionError, ClientError) as e:
        print(f"dlq.py: {e}", file=sys.stderr)
        return 1
    except BotoCoreError as e:
        print(f"dlq.py: {e} (are the emulators running? infra/local.sh start)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
