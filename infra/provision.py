"""Creates on the local emulators the resources that template.yaml declares.

template.yaml stays the single source of truth: this reads it, resolves its
intrinsic functions the way CloudFormation would (parameters take their
defaults), and creates its DynamoDB tables, SNS topics, SQS queues, queue
policies and subscriptions under physical names `<prefix>-<LogicalId>`, so that
every test can have its own set. Resources that only matter in AWS (functions,
APIs, alarms, IAM) are skipped, by an explicit list of types; a resource type it
does not know is an error.

    provision.py up        --prefix P [--template PATH] [--param NAME=VALUE ...]
    provision.py down      --prefix P [--template PATH]
    provision.py functions --prefix P [--template PATH] [--param NAME=VALUE ...]

`up` is idempotent and prints one JSON document on stdout:
    {"prefix", "env": the functions' environment variables, resolved,
     "resources": {LogicalId: {name, arn, url, ...}}  (string values only),
     "event_sources": [{function, code_uri, queue_url, batch_size}]}
Endpoints come only from the SDK's AWS_ENDPOINT_URL_<SERVICE> variables (or
AWS_ENDPOINT_URL); without them it refuses to run rather than touch real AWS.

`functions` touches no emulator: it prints each function of the template with
its own variables, Globals merged in, resolved to the names `up` would create:
    {"functions": {LogicalId: {"code_uri", "env": {NAME: value}}}}
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from cfn_template import Resolver, TemplateError, load_template

ACCOUNT_ID = "000000000000"
DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"

# Resource types that have no local counterpart: the code they would run is
# started by the dev server or the tests themselves.
SKIPPED_TYPES = {
    "AWS::Serverless::Function",
    "AWS::Serverless::HttpApi",
    "AWS::Serverless::Api",
    "AWS::Serverless::LayerVersion",
    "AWS::Lambda::Function",
    "AWS::Lambda::Permission",
    "AWS::Lambda::EventSourceMapping",
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Stage",
    "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::Authorizer",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::CompositeAlarm",
    "AWS::CloudWatch::Dashboard",
    "AWS::Logs::LogGroup",
    "AWS::Logs::MetricFilter",
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::Events::Rule",
    "AWS::Scheduler::Schedule",
    "AWS::KMS::Key",
    "AWS::KMS::Alias",
}


class ProvisionError(TemplateError):
    pass


def log(message: str) -> None:
    print(f"[provision] {message}", file=sys.stderr, flush=True)


# --- talking to the emulators ---------------------------------------------------------

SERVICE_ENDPOINT_VARIABLES = {
    "dynamodb": "AWS_ENDPOINT_URL_DYNAMODB",
    "sns": "AWS_ENDPOINT_URL_SNS",
    "sqs": "AWS_ENDPOINT_URL_SQS",
}


class Clients:
    """boto3 clients, created on first use; endpoints come from the environment."""

    def __init__(self, region: str) -> None:
        self.session = boto3.session.Session(region_name=region)
        self.config = Config(
            connect_timeout=3,
            read_timeout=30,
            retries={"mode": "standard", "max_attempts": 3},
        )
        self._clients: dict[str, Any] = {}
        for variable in SERVICE_ENDPOINT_VARIABLES.values():
            if not (os.environ.get(variable) or os.environ.get("AWS_ENDPOINT_URL")):
                raise ProvisionError(
                    f"{variable} is not set: refusing to provision anything but a local emulator"
                )

    def __getattr__(self, service: str) -> Any:
        if service not in SERVICE_ENDPOINT_VARIABLES:
            raise AttributeError(service)
        if service not in self._clients:
            self._clients[service] = self.session.client(service, config=self.config)
        return self._clients[service]


# The shortest of the services' name limits: SQS allows 80 characters.
MAX_NAME_LENGTH = 80


def physical_name(prefix: str, logical_id: str, fifo: bool = False) -> str:
    """Every resource of a prefix is named `<prefix>-<LogicalId>`."""
    name = f"{prefix}-{logical_id}" + (".fifo" if fifo else "")
    if len(name) > MAX_NAME_LENGTH:
        raise ProvisionError(
            f"{name} is {len(name)} characters, over the {MAX_NAME_LENGTH} that SQS "
            "allows: use a shorter prefix"
        )
    return name


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def as_attribute(value: Any) -> str:
    """SNS and SQS attributes are strings; CloudFormation accepts richer YAML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def check_properties(logical_id: str, properties: dict, handled: set[str], ignored: set[str]) -> None:
    unknown = set(properties) - handled - ignored
    if unknown:
        raise ProvisionError(
            f"{logical_id}: provision.py does not handle {', '.join(sorted(unknown))}; "
            "teach it, or list the property as ignored if it does not matter locally"
        )


# --- resources -------------------------------------------------------------------------

# Ignored properties shape what the emulators do not have (billing, backups,
# encryption at rest, tags), or are names: physical names are always
# <prefix>-<LogicalId>, so that every prefix gets its own set.
TABLE_IGNORED = {
    "TableName",
    "BillingMode",
    "PointInTimeRecoverySpecification",
    "SSESpecification",
    "Tags",
    "ContributorInsightsSpecification",
    "DeletionProtectionEnabled",
    "TableClass",
    "ProvisionedThroughput",
    "KinesisStreamSpecification",
    "ResourcePolicy",
    "OnDemandThroughput",
    "WarmThroughput",
}
TABLE_HANDLED = {
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "StreamSpecification",
    "TimeToLiveSpecification",
}
QUEUE_ATTRIBUTES = {
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "SqsManagedSseEnabled",
}
QUEUE_IGNORED = {"QueueName", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds", "Tags"}
TOPIC_ATTRIBUTES = {"DisplayName", "FifoTopic", "ContentBasedDeduplication"}
TOPIC_IGNORED = {
    "TopicName",
    "KmsMasterKeyId",
    "Tags",
    "SignatureVersion",
    "TracingConfig",
    "ArchivePolicy",
    "DataProtectionPolicy",
    "DeliveryStatusLogging",
    "FifoThroughputScope",
}
SUBSCRIPTION_ATTRIBUTES = {
    "RawMessageDelivery",
    "FilterPolicy",
    "FilterPolicyScope",
    "RedrivePolicy",
    "DeliveryPolicy",
    "SubscriptionRoleArn",
    "ReplayPolicy",
}
SUBSCRIPTION_HANDLED = {"TopicArn", "Protocol", "Endpoint"} | SUBSCRIPTION_ATTRIBUTES
SUBSCRIPTION_IGNORED = {"Region"}


class Provisioner:
    """Creates each resource once, the first time it is needed, dependencies first."""

    def __init__(
        self,
        template: dict,
        prefix: str,
        region: str,
        overrides: dict[str, str],
        offline: bool = False,
    ) -> None:
        self.template = template
        self.resources_spec: dict = template["Resources"]
        self.prefix = prefix
        self.region = region
        # Offline, resources are not created: their attributes are predicted
        # from the names `up` would give them.
        self.offline = offline
        self._clients = None if offline else Clients(region)
        self.resolver = Resolver(
            template, prefix, region, ACCOUNT_ID, overrides, ref=self.ref, get_att=self.get_att
        )
        self.created: dict[str, dict] = {}  # logical id -> physical attributes
        self._in_progress: set[str] = set()

    @property
    def clients(self) -> Clients:
        if self._clients is None:
            raise ProvisionError("offline: no emulator is reached")
        return self._clients

    # - naming and references -

    def physical_name(self, logical_id: str, fifo: bool = False) -> str:
        return physical_name(self.prefix, logical_id, fifo)

    def included(self, logical_id: str) -> bool:
        condition = self.resources_spec[logical_id].get("Condition")
        return condition is None or self.resolver.condition(condition)

    def ensure(self, logical_id: str) -> dict:
        if logical_id in self.created:
            return self.created[logical_id]
        spec = self.resources_spec.get(logical_id)
        if spec is None:
            raise ProvisionError(f"unknown resource {logical_id}")
        kind = spec.get("Type")
        if kind in SKIPPED_TYPES or not self.included(logical_id):
            raise ProvisionError(f"{logical_id} ({kind}) is referenced but not provisioned locally")
        if logical_id in self._in_progress:
            raise ProvisionError(f"circular reference through {logical_id}")
        handler = (self.PREDICTORS if self.offline else self.HANDLERS).get(kind)
        if handler is None and self.offline:
            raise ProvisionError(f"{logical_id} ({kind}) has no attributes known without the emulators")
        if handler is None:
            raise ProvisionError(
                f"{logical_id}: provision.py does not know {kind}; "
                "teach it, or add the type to SKIPPED_TYPES if it is not needed locally"
            )
        self._in_progress.add(logical_id)
        properties = self.resolver.resolve(spec.get("Properties") or {})
        self.created[logical_id] = handler(self, logical_id, properties)
        self._in_progress.discard(logical_id)
        return self.created[logical_id]

    REF_ATTRIBUTE = {
        "AWS::DynamoDB::Table": "name",
        "AWS::SNS::Topic": "arn",
        "AWS::SQS::Queue": "url",
        "AWS::SNS::Subscription": "arn",
    }
    GET_ATT = {
        ("AWS::DynamoDB::Table", "Arn"): "arn",
        ("AWS::DynamoDB::Table", "StreamArn"): "stream_arn",
        ("AWS::SNS::Topic", "TopicArn"): "arn",
        ("AWS::SNS::Topic", "TopicName"): "name",
        ("AWS::SQS::Queue", "Arn"): "arn",
        ("AWS::SQS::Queue", "QueueName"): "name",
        ("AWS::SQS::Queue", "QueueUrl"): "url",
    }

    def ref(self, logical_id: str) -> Any:
        kind = self.resources_spec[logical_id].get("Type")
        attributes = self.ensure(logical_id)
        return attributes[self.REF_ATTRIBUTE[kind]]

    def get_att(self, logical_id: str, attribute: str) -> Any:
        kind = self.resources_spec.get(logical_id, {}).get("Type")
        key = self.GET_ATT.get((kind, attribute))
        if key is None:
            raise ProvisionError(f"Fn::GetAtt {logical_id}.{attribute} is not supported locally")
        value = self.ensure(logical_id).get(key)
        if value is None:
            raise ProvisionError(f"{logical_id} has no {attribute}")
        return value

    # - handlers: create (or find) one resource, return its physical attributes -

    def table(self, logical_id: str, props: dict) -> dict:
        check_properties(logical_id, props, TABLE_HANDLED, TABLE_IGNORED)
        name = self.physical_name(logical_id)
        ddb = self.clients.dynamodb
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": "PAY_PER_REQUEST",
        }
        index_keys = ("IndexName", "KeySchema", "Projection")
        if props.get("GlobalSecondaryIndexes"):
            request["GlobalSecondaryIndexes"] = [
                {k: index[k] for k in index_keys} for index in props["GlobalSecondaryIndexes"]
            ]
        if props.get("LocalSecondaryIndexes"):
            request["LocalSecondaryIndexes"] = [
                {k: index[k] for k in index_keys} for index in props["LocalSecondaryIndexes"]
            ]
        stream = props.get("StreamSpecification")
        if stream:
            request["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": stream["StreamViewType"],
            }
        try:
            description = ddb.create_table(**request)["TableDescription"]
            log(f"created table {name}")
            ttl = props.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled"):
                ddb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
                )
        except ClientError as e:
            if error_code(e) != "ResourceInUseException":
                raise
            description = ddb.describe_table(TableName=name)["Table"]
            log(f"table {name} exists")
        attributes = {"name": name, "arn": description["TableArn"]}
        if description.get("LatestStreamArn"):
            attributes["stream_arn"] = description["LatestStreamArn"]
        return attributes

    def topic(self, logical_id: str, props: dict) -> dict:
        check_properties(logical_id, props, TOPIC_ATTRIBUTES, TOPIC_IGNORED)
        fifo = as_attribute(props.get("FifoTopic", False)) == "true"
        name = self.physical_name(logical_id, fifo)
        wanted = {k: as_attribute(v) for k, v in props.items() if k in TOPIC_ATTRIBUTES}
        arn = self.clients.sns.create_topic(Name=name, Attributes=wanted)["TopicArn"]
        log(f"topic {name} ready")
        return {"name": name, "arn": arn}

    def queue(self, logical_id: str, props: dict) -> dict:
        check_properties(logical_id, props, QUEUE_ATTRIBUTES, QUEUE_IGNORED)
        fifo = as_attribute(props.get("FifoQueue", False)) == "true"
        name = self.physical_name(logical_id, fifo)
        wanted = {k: as_attribute(v) for k, v in props.items() if k in QUEUE_ATTRIBUTES}
        sqs = self.clients.sqs
        try:
            url = sqs.create_queue(QueueName=name, Attributes=wanted)["QueueUrl"]
        except ClientError as e:
            if error_code(e) not in ("QueueAlreadyExists", "QueueNameExists"):
                raise
            # The template changed since this prefix was provisioned: converge.
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            sqs.set_queue_attributes(QueueUrl=url, Attributes=wanted)
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        log(f"queue {name} ready")
        return {"name": name, "url": url, "arn": arn}

    def queue_policy(self, logical_id: str, props: dict) -> dict:
        check_properties(logical_id, props, {"Queues", "PolicyDocument"}, set())
        policy = as_attribute(props["PolicyDocument"])
        for url in props["Queues"]:
            self.clients.sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})
        log(f"queue policy {logical_id} set")
        return {"queues": props["Queues"]}

    def subscription(self, logical_id: str, props: dict) -> dict:
        check_properties(logical_id, props, SUBSCRIPTION_HANDLED, SUBSCRIPTION_IGNORED)
        sns = self.clients.sns
        topic_arn, protocol, endpoint = props["TopicArn"], props["Protocol"], props["Endpoint"]
        wanted = {k: as_attribute(v) for k, v in props.items() if k in SUBSCRIPTION_ATTRIBUTES}
        existing = self._find_subscription(topic_arn, protocol, endpoint)
        if existing is None:
            arn = sns.subscribe(
                TopicArn=topic_arn,
                Protocol=protocol,
                Endpoint=endpoint,
                Attributes=wanted,
                ReturnSubscriptionArn=True,
            )["SubscriptionArn"]
            log(f"subscribed {endpoint.rsplit(':', 1)[-1]} to {topic_arn.rsplit(':', 1)[-1]}")
        else:
            arn = existing
            current = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
            for key, value in wanted.items():
                if not _same_attribute(current.get(key), value):
                    sns.set_subscription_attributes(
                        SubscriptionArn=arn, AttributeName=key, AttributeValue=value
                    )
                    log(f"subscription {logical_id}: updated {key}")
        return {"arn": arn}

    def _find_subscription(self, topic_arn: str, protocol: str, endpoint: str) -> str | None:
        pages = self.clients.sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
        for page in pages:
            for sub in page["Subscriptions"]:
                if sub["Protocol"] == protocol and sub["Endpoint"] == endpoint:
                    return sub["SubscriptionArn"]
        return None

    HANDLERS: dict[str, Callable[..., dict]] = {
        "AWS::DynamoDB::Table": table,
        "AWS::SNS::Topic": topic,
        "AWS::SQS::Queue": queue,
        "AWS::SQS::QueuePolicy": queue_policy,
        "AWS::SNS::Subscription": subscription,
    }

    # - predictors: the attributes a handler would return, without an emulator -

    def endpoint(self, service: str) -> str | None:
        return os.environ.get(SERVICE_ENDPOINT_VARIABLES[service]) or os.environ.get("AWS_ENDPOINT_URL")

    def predict_table(self, logical_id: str, props: dict) -> dict:
        name = self.physical_name(logical_id)
        return {"name": name, "arn": f"arn:aws:dynamodb:{self.region}:{ACCOUNT_ID}:table/{name}"}

    def predict_topic(self, logical_id: str, props: dict) -> dict:
        name = self.physical_name(logical_id, as_attribute(props.get("FifoTopic", False)) == "true")
        return {"name": name, "arn": f"arn:aws:sns:{self.region}:{ACCOUNT_ID}:{name}"}

    def predict_queue(self, logical_id: str, props: dict) -> dict:
        name = self.physical_name(logical_id, as_attribute(props.get("FifoQueue", False)) == "true")
        endpoint = self.endpoint("sqs")
        # LocalStack's path strategy (see local.sh), or the form AWS uses.
        url = (
            f"{endpoint.rstrip('/')}/queue/{self.region}/{ACCOUNT_ID}/{name}"
            if endpoint
            else f"https://sqs.{self.region}.amazonaws.com/{ACCOUNT_ID}/{name}"
        )
        return {"name": name, "url": url, "arn": f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{name}"}

    PREDICTORS: dict[str, Callable[..., dict]] = {
        "AWS::DynamoDB::Table": predict_table,
        "AWS::SNS::Topic": predict_topic,
        "AWS::SQS::Queue": predict_queue,
    }

    # - the whole template -

    def functions_spec(self) -> list[tuple[str, dict]]:
        return [
            (logical_id, spec.get("Properties") or {})
            for logical_id, spec in self.resources_spec.items()
            if spec.get("Type") == "AWS::Serverless::Function" and self.included(logical_id)
        ]

    def up(self) -> dict:
        skipped = []
        for logical_id, spec in self.resources_spec.items():
            kind = spec.get("Type")
            if kind in SKIPPED_TYPES:
                skipped.append(logical_id)
                continue
            if not self.included(logical_id):
                log(f"{logical_id}: condition false, skipped")
                continue
            self.ensure(logical_id)
        if skipped:
            log(f"not provisioned locally (AWS only): {', '.join(skipped)}")
        functions = self.functions_spec()
        return {
            "prefix": self.prefix,
            "env": self.function_environment(functions),
            "resources": {
                logical_id: attributes
                for logical_id, attributes in self.created.items()
                if self.resources_spec[logical_id]["Type"] != "AWS::SQS::QueuePolicy"
            },
            "event_sources": self.event_sources(functions),
        }

    def functions(self) -> dict:
        """Each function's code and variables, without touching an emulator."""
        return {
            "functions": {
                logical_id: {"code_uri": props.get("CodeUri"), "env": self.function_variables(props)}
                for logical_id, props in self.functions_spec()
            }
        }

    def function_variables(self, props: dict) -> dict[str, str]:
        """One function's variables as Lambda would see them: Globals, then its own."""
        global_function = (self.template.get("Globals") or {}).get("Function") or {}
        global_variables = (global_function.get("Environment") or {}).get("Variables") or {}
        own = (props.get("Environment") or {}).get("Variables") or {}
        variables = self.resolver.resolve({**global_variables, **own})
        return {name: as_attribute(value) for name, value in variables.items()}

    def function_environment(self, functions: list[tuple[str, dict]]) -> dict[str, str]:
        """The union of every function's variables (Globals first), one value per name."""
        env: dict[str, str] = {}
        origin: dict[str, str] = {}
        for logical_id, props in functions:
            for name, value in self.function_variables(props).items():
                if name in env and env[name] != value:
                    raise ProvisionError(
                        f"{name} is {env[name]!r} for {origin[name]} but {value!r} for {logical_id}; "
                        "one local process serves them all, so they must agree"
                    )
                env[name], origin[name] = value, logical_id
        return env

    def event_sources(self, functions: list[tuple[str, dict]]) -> list[dict]:
        queues_by_arn = {
            attributes["arn"]: attributes
            for logical_id, attributes in self.created.items()
            if self.resources_spec[logical_id]["Type"] == "AWS::SQS::Queue"
        }
        sources = []
        for logical_id, props in functions:
            for event_id, event in (props.get("Events") or {}).items():
                if event.get("Type") != "SQS":
                    continue
                event_props = event.get("Properties") or {}
                queue_arn = self.resolver.resolve(event_props.get("Queue"))
                queue = queues_by_arn.get(queue_arn)
                if queue is None:
                    raise ProvisionError(f"{logical_id}.{event_id}: no provisioned queue has ARN {queue_arn}")
                sources.append(
                    {
                        "function": logical_id,
                        "code_uri": props.get("CodeUri"),
                        "queue_url": queue["url"],
                        "batch_size": int(self.resolver.resolve(event_props.get("BatchSize", 10))),
                    }
                )
        return sources

    # - tearing down: names follow from the template, nothing is created -

    def down(self) -> dict:
        deleted: dict[str, str] = {}
        kinds = {lid: spec.get("Type") for lid, spec in self.resources_spec.items()}
        # Topics first, so nothing is delivered to queues that are going away.
        for logical_id in [lid for lid, kind in kinds.items() if kind == "AWS::SNS::Topic"]:
            props = self.resources_spec[logical_id].get("Properties") or {}
            fifo = str(props.get("FifoTopic", "")).lower() == "true"
            name = self.physical_name(logical_id, fifo)
            arn = f"arn:aws:sns:{self.region}:{ACCOUNT_ID}:{name}"
            try:
                pages = self.clients.sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=arn)
                for page in pages:
                    for sub in page["Subscriptions"]:
                        self.clients.sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
                self.clients.sns.delete_topic(TopicArn=arn)
                deleted[logical_id] = name
            except ClientError as e:
                if error_code(e) != "NotFound":
                    raise
        for logical_id in [lid for lid, kind in kinds.items() if kind == "AWS::SQS::Queue"]:
            props = self.resources_spec[logical_id].get("Properties") or {}
            fifo = str(props.get("FifoQueue", "")).lower() == "true"
            name = self.physical_name(logical_id, fifo)
            try:
                url = self.clients.sqs.get_queue_url(QueueName=name)["QueueUrl"]
                self.clients.sqs.delete_queue(QueueUrl=url)
                deleted[logical_id] = name
            except ClientError as e:
                if error_code(e) not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                    raise
        for logical_id in [lid for lid, kind in kinds.items() if kind == "AWS::DynamoDB::Table"]:
            name = self.physical_name(logical_id)
            try:
                self.clients.dynamodb.delete_table(TableName=name)
                deleted[logical_id] = name
            except ClientError as e:
                if error_code(e) != "ResourceNotFoundException":
                    raise
        for name in deleted.values():
            log(f"deleted {name}")
        return {"prefix": self.prefix, "deleted": deleted}


def _same_attribute(current: str | None, wanted: str) -> bool:
    if current == wanted:
        return True
    try:  # policies come back re-serialised
        return current is not None and json.loads(current) == json.loads(wanted)
    except ValueError:
        return False


# --- command line ---------------------------------------------------------------------

PREFIX_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down", "functions"])
    parser.add_argument("--prefix", required=True, help="physical names are PREFIX-LogicalId")
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="template parameter value (default: the parameter's Default)",
    )
    args = parser.parse_args(argv)
    if not PREFIX_PATTERN.fullmatch(args.prefix):
        parser.error("--prefix: letters, digits, '-' or '_', starting with a letter or digit")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    overrides = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"provision.py: --param {item}: expected NAME=VALUE", file=sys.stderr)
            return 2
        overrides[name] = value
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    try:
        template = load_template(args.template)
        provisioner = Provisioner(template, args.prefix, region, overrides, offline=args.action == "functions")
        actions = {"up": provisioner.up, "down": provisioner.down, "functions": provisioner.functions}
        result = actions[args.action]()
    except (TemplateError, ClientError) as e:
        print(f"provision.py: {e}", file=sys.stderr)
        return 1
    except BotoCoreError as e:
        print(f"provision.py: {e} (are the emulators running? infra/local.sh start)", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    log(f"{args.action} {args.prefix} done in {time.monotonic() - started:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
