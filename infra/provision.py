"""Creates on the local emulators the tables, topic, queues and subscriptions of template.yaml.

template.yaml stays the single source of truth. Each resource is named
`<prefix>-<LogicalId>`, so every test can have its own set, and its ARN and URL
follow from that name: every action computes them the same way. Only what the
template uses is supported (resource types, properties, Ref, Fn::GetAtt and
Fn::If over the template's Conditions; parameters take their defaults unless
--param sets them); anything else is an error that names it. A resource whose
Condition is false is left out, as in AWS. Types that only matter in AWS are
skipped by an explicit list.

    provision.py up        --prefix P [--template PATH] [--param NAME=VALUE ...]
    provision.py down      --prefix P [--template PATH]
    provision.py functions --prefix P [--template PATH] [--param NAME=VALUE ...]
    provision.py template  --prefix P [--template PATH]

`up` is idempotent and prints
    {"prefix", "env": the functions' variables, resolved,
     "resources": {LogicalId: {name, arn, url, ...}}  (string values only),
     "event_sources": [{function, code_uri, queue_url, batch_size}]}
`functions` touches no emulator; it prints each function's variables, Globals
merged in: {"functions": {LogicalId: {"code_uri", "env": {NAME: value}}}}.
`template` touches no emulator either; it prints the template itself as JSON, short
tags in their long form (`!Ref X` as {"Ref": "X"}), nothing resolved.
`down` deletes the prefix's topics, queues, tables and secrets. Endpoints come only from
AWS_ENDPOINT_URL_<SERVICE> (or AWS_ENDPOINT_URL); without them nothing is
created, rather than touch real AWS. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

ACCOUNT_ID = "000000000000"
DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
PREFIX_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
MAX_NAME_LENGTH = 80  # SQS's limit, the shortest of the three services

TABLE, TOPIC, QUEUE = "AWS::DynamoDB::Table", "AWS::SNS::Topic", "AWS::SQS::Queue"
QUEUE_POLICY, SUBSCRIPTION = "AWS::SQS::QueuePolicy", "AWS::SNS::Subscription"
TOPIC_POLICY = "AWS::SNS::TopicPolicy"
SECRET = "AWS::SecretsManager::Secret"
POLICIES = (QUEUE_POLICY, TOPIC_POLICY)
FUNCTION = "AWS::Serverless::Function"

# The properties of each provisioned type, in the order `up` creates the types.
# A queue's properties are its attributes, and so are a subscription's but the
# first three; a table's billing, backups and encryption, and a topic's tracing,
# encryption and display name, only matter in AWS.
PROPERTIES = {
    TABLE: {"AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "TimeToLiveSpecification",
            "BillingMode", "PointInTimeRecoverySpecification", "SSESpecification",
            "DeletionProtectionEnabled"},
    TOPIC: {"TracingConfig", "KmsMasterKeyId", "DisplayName"},
    TOPIC_POLICY: {"Topics", "PolicyDocument"},
    QUEUE: {"VisibilityTimeout", "MessageRetentionPeriod", "SqsManagedSseEnabled", "RedrivePolicy",
            "QueueName", "RedriveAllowPolicy"},
    QUEUE_POLICY: {"Queues", "PolicyDocument"},
    SUBSCRIPTION: {"TopicArn", "Protocol", "Endpoint",
                   "RawMessageDelivery", "FilterPolicyScope", "FilterPolicy"},
    # Created as in AWS, without a value (one is set with put-secret-value).
    SECRET: {"Description"},
}  # fmt: skip
# Properties that only matter in AWS, left out locally before anything is resolved: local
# names come from the prefix, so a queue's own name, and the ARNs a dead-letter queue's
# redrive allow policy builds from it, would name no local queue.
AWS_ONLY = {TABLE: {"DeletionProtectionEnabled"}, QUEUE: {"QueueName", "RedriveAllowPolicy"}}
RESOURCE_KEYS = {"Type", "Properties", "Condition", "DeletionPolicy", "UpdateReplacePolicy"}
# What Ref gives of each type; of a secret its name, which Secrets Manager takes as its id
# (its ARN ends in a suffix known only once it exists).
REF = {TABLE: "name", TOPIC: "arn", QUEUE: "url", SECRET: "name"}
GET_ATT = {(QUEUE, "Arn"): "arn"}

SECRET_TYPES = ("AWS::SSM::Parameter",)
# Types with no local counterpart: the functions run in the dev server or the tests.
SKIPPED_TYPES = {
    FUNCTION, "AWS::Serverless::HttpApi", "AWS::Serverless::Api",
    "AWS::Lambda::Function", "AWS::Lambda::Permission", "AWS::Lambda::EventSourceMapping",
    "AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Stage", "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::Integration", "AWS::ApiGatewayV2::Authorizer",
    "AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm", "AWS::CloudWatch::Dashboard",
    "AWS::Logs::LogGroup", "AWS::Logs::MetricFilter",
    "AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy",
    "AWS::Events::Rule", "AWS::Scheduler::Schedule", "AWS::KMS::Key", "AWS::KMS::Alias",
    # A parameter's value would come from the variable it stands for; a Ref to one is an
    # error here, which the template never makes.
    *SECRET_TYPES,
}  # fmt: skip
NO_VALUE = object()  # what Ref AWS::NoValue gives: the key or item that holds it is dropped


class ProvisionError(Exception):
    pass


def log(message: str) -> None:
    print(f"[provision] {message}", file=sys.stderr, flush=True)


# --- the template ------------------------------------------------------------------------


class CfnLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Reads the short tags (!Ref, !GetAtt, ...) as the long forms they stand for."""


def _short_tag(loader: yaml.Loader, tag: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.SequenceNode):
        value: Any = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    if tag == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {tag if tag in ("Ref", "Condition") else f"Fn::{tag}": value}


CfnLoader.add_multi_constructor("!", _short_tag)


def load_template(path: Path) -> dict:
    try:
        with path.open() as f:
            template = yaml.load(f, Loader=CfnLoader)  # noqa: S506 - a SafeLoader
    except (OSError, yaml.YAMLError) as e:
        raise ProvisionError(f"cannot read the template: {e}") from e
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise ProvisionError(f"{path} has no Resources")
    return template


def physical_name(prefix: str, logical_id: str) -> str:
    name = f"{prefix}-{logical_id}"
    if len(name) > MAX_NAME_LENGTH:
        raise ProvisionError(f"{name} is over the {MAX_NAME_LENGTH} characters SQS allows: shorten the prefix")
    return name


def as_attribute(value: Any) -> str:
    """Attributes and variables are strings; the template has richer YAML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def endpoint_url(service: str) -> str | None:
    """The endpoint of a boto3 service name, from the SDKs' variable of its service id."""
    variable = {"secretsmanager": "SECRETS_MANAGER"}.get(service, service.upper())
    return os.environ.get(f"AWS_ENDPOINT_URL_{variable}") or os.environ.get("AWS_ENDPOINT_URL")


class Stack:
    """The template's local resources under one prefix: their names, and their properties resolved."""

    def __init__(self, template: dict, prefix: str, region: str, overrides: dict[str, str]) -> None:
        self.template, self.prefix, self.region, self.overrides = template, prefix, region, overrides
        self.parameters = template.get("Parameters") or {}
        unknown = set(overrides) - set(self.parameters)
        if unknown:
            raise ProvisionError(f"unknown template parameters: {', '.join(sorted(unknown))}")
        self.conditions = template.get("Conditions") or {}
        self.kinds: dict[str, str] = {}  # logical id -> type, of the provisioned resources
        self.attributes: dict[str, dict[str, str]] = {}  # logical id -> name, arn, url
        self.functions: dict[str, dict] = {}  # logical id -> properties, unresolved
        self.left_out: set[str] = set()  # resources whose Condition is false
        for logical_id, spec in template["Resources"].items():
            kind = spec.get("Type")
            if kind == FUNCTION:
                self.check(logical_id, "Condition", "Condition" not in spec)
                self.functions[logical_id] = spec.get("Properties") or {}
            if "Condition" in spec and not self.condition(spec["Condition"], logical_id):
                self.left_out.add(logical_id)
                continue
            if kind in SKIPPED_TYPES:
                continue
            self.check(logical_id, f"resource type {kind}", kind in PROPERTIES)
            for key in spec:
                self.check(logical_id, key, key in RESOURCE_KEYS)
            for name in spec.get("Properties") or {}:
                self.check(logical_id, f"property {name} of {kind}", name in PROPERTIES[kind])
            self.kinds[logical_id] = kind
            self.attributes[logical_id] = self.physical(logical_id, kind)
        # Every name is known by now, so a property can refer to any resource.
        specs = template["Resources"]
        self.properties = {lid: self.resolve(self.local_properties(lid, specs[lid]), lid) for lid in self.kinds}

    def override_queue_visibility(self, secs: int) -> None:
        """The queues that set a VisibilityTimeout (the consumers') get `secs` instead."""
        for logical_id, kind in self.kinds.items():
            if kind == QUEUE and "VisibilityTimeout" in self.properties[logical_id]:
                self.properties[logical_id]["VisibilityTimeout"] = secs

    def local_properties(self, logical_id: str, spec: dict) -> dict:
        dropped = AWS_ONLY.get(self.kinds[logical_id], set())
        return {k: v for k, v in (spec.get("Properties") or {}).items() if k not in dropped}

    @staticmethod
    def check(logical_id: str, what: str, supported: bool) -> None:
        if not supported:
            raise ProvisionError(f"{logical_id}: {what} is not supported locally")

    def physical(self, logical_id: str, kind: str) -> dict[str, str]:
        if kind not in REF:
            return {}  # policies and subscriptions: named by what they join
        name = physical_name(self.prefix, logical_id)
        if kind == TABLE:
            return {"name": name, "arn": f"arn:aws:dynamodb:{self.region}:{ACCOUNT_ID}:table/{name}"}
        if kind == TOPIC:
            return {"name": name, "arn": f"arn:aws:sns:{self.region}:{ACCOUNT_ID}:{name}"}
        if kind == SECRET:
            return {"name": name}
        # LocalStack's path strategy, on local.sh's default port unless told otherwise.
        endpoint = (endpoint_url("sqs") or "http://127.0.0.1:4566").rstrip("/")
        return {
            "name": name,
            "url": f"{endpoint}/queue/{self.region}/{ACCOUNT_ID}/{name}",
            "arn": f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{name}",
        }

    def resolve(self, value: Any, where: str) -> Any:
        """Evaluates Ref, Fn::GetAtt, Fn::If and Fn::Join in `value`; any other intrinsic
        function is an error."""
        if isinstance(value, list):
            items = [self.resolve(v, where) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            try:
                if key == "Ref":
                    return self.ref(arg)
                if key == "Fn::GetAtt":
                    return self.get_att(*arg)
                if key == "Fn::If":
                    if not (isinstance(arg, list) and len(arg) == 3):
                        raise ProvisionError("Fn::If takes a condition and two values")
                    name, if_true, if_false = arg
                    return self.resolve(if_true if self.condition(name, where) else if_false, where)
                if key == "Fn::Join":
                    if not (isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str)):
                        raise ProvisionError("Fn::Join takes a delimiter and a list")
                    items = self.resolve(arg[1], where)
                    if not isinstance(items, list):
                        raise ProvisionError("Fn::Join takes a delimiter and a list")
                    return arg[0].join(as_attribute(item) for item in items)
                if key.startswith("Fn::"):
                    raise ProvisionError(f"{key} is not supported locally")
            except ProvisionError as e:
                if str(e).startswith(f"{where}: "):  # from a nested value
                    raise
                raise ProvisionError(f"{where}: {e}") from None
        resolved = {k: self.resolve(v, where) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def condition(self, name: str, where: str) -> bool:
        if name not in self.conditions:
            raise ProvisionError(f"{where}: unknown condition {name}")
        return self.evaluate(self.conditions[name], f"condition {name}")

    def evaluate(self, expression: Any, where: str) -> bool:
        """A condition's value: Fn::Equals, Fn::Not, Fn::And, Fn::Or and Condition, over parameters."""
        if isinstance(expression, dict) and len(expression) == 1:
            ((key, arg),) = expression.items()
            if key == "Condition":
                return self.condition(arg, where)
            if key == "Fn::Equals" and isinstance(arg, list) and len(arg) == 2:
                left, right = (as_attribute(self.resolve(v, where)) for v in arg)
                return left == right
            if key == "Fn::Not" and isinstance(arg, list) and len(arg) == 1:
                return not self.evaluate(arg[0], where)
            if key in ("Fn::And", "Fn::Or") and isinstance(arg, list):
                values = [self.evaluate(v, where) for v in arg]
                return all(values) if key == "Fn::And" else any(values)
        raise ProvisionError(f"{where}: {expression} is not a condition supported locally")

    def ref(self, name: str) -> Any:
        if name == "AWS::StackName":
            return self.prefix
        if name == "AWS::NoValue":
            return NO_VALUE
        if name == "AWS::AccountId":
            return ACCOUNT_ID
        if name == "AWS::Region":
            return self.region
        if name in self.parameters:
            return self.parameter(name)
        if name in self.left_out:
            raise ProvisionError(f"Ref to {name}, which its Condition leaves out")
        if name not in self.template["Resources"]:
            raise ProvisionError(f"Ref to unknown name {name}")
        kind = self.template["Resources"][name].get("Type")
        if kind in SECRET_TYPES:
            raise ProvisionError(
                f"Ref to {name} ({kind}) is not supported locally: "
                "set the variable it stands for instead"
            )
        if name not in self.kinds or kind not in REF:
            raise ProvisionError(f"Ref to {name} ({kind}) is not supported locally")
        return self.attributes[name][REF[kind]]

    def get_att(self, logical_id: str, attribute: str) -> str:
        key = GET_ATT.get((self.kinds.get(logical_id), attribute))
        if key is None:
            raise ProvisionError(f"Fn::GetAtt {logical_id}.{attribute} is not supported locally")
        return self.attributes[logical_id][key]

    def parameter(self, name: str) -> str | list[str]:
        """A parameter's value: a string, or for a CommaDelimitedList the list of its items."""
        spec = self.parameters[name] or {}
        kind = spec.get("Type", "String")
        if kind not in ("String", "Number", "CommaDelimitedList"):
            raise ProvisionError(f"parameter {name} of type {kind} is not supported locally")
        if name in self.overrides:
            value = self.overrides[name]
        elif "Default" not in spec:
            raise ProvisionError(f"parameter {name} has no default; pass --param {name}=VALUE")
        else:
            value = str(spec["Default"])
        if kind == "CommaDelimitedList":
            return [item.strip() for item in value.split(",")]
        return value

    def function_variables(self, logical_id: str) -> dict[str, str]:
        """One function's variables as Lambda would see them: Globals, then its own."""
        global_function = (self.template.get("Globals") or {}).get("Function") or {}
        variables = {
            **((global_function.get("Environment") or {}).get("Variables") or {}),
            **((self.functions[logical_id].get("Environment") or {}).get("Variables") or {}),
        }
        return {name: as_attribute(value) for name, value in self.resolve(variables, logical_id).items()}

    def environment(self) -> dict[str, str]:
        """Every function's variables: one local process serves them all, so they must agree."""
        env: dict[str, str] = {}
        origin: dict[str, str] = {}
        for logical_id in self.functions:
            for name, value in self.function_variables(logical_id).items():
                if name in env and env[name] != value:
                    raise ProvisionError(
                        f"{name} is {env[name]!r} for {origin[name]} but {value!r} for {logical_id}; "
                        "one local process serves them all, so they must agree"
                    )
                env[name], origin[name] = value, logical_id
        return env

    def event_sources(self) -> list[dict]:
        queues = {a["arn"]: a for lid, a in self.attributes.items() if self.kinds[lid] == QUEUE}
        sources = []
        for logical_id, props in self.functions.items():
            for event_id, event in (props.get("Events") or {}).items():
                if event.get("Type") != "SQS":
                    continue
                where = f"{logical_id}.{event_id}"
                event_props = event.get("Properties") or {}
                queue_arn = self.resolve(event_props.get("Queue"), where)
                if queue_arn not in queues:
                    raise ProvisionError(f"{where}: no provisioned queue has ARN {queue_arn}")
                sources.append({
                    "function": logical_id,
                    "code_uri": props.get("CodeUri"),
                    "queue_url": queues[queue_arn]["url"],
                    "batch_size": int(self.resolve(event_props.get("BatchSize", 10), where)),
                })  # fmt: skip
        return sources


# --- the emulators -----------------------------------------------------------------------


class Clients:
    """boto3 clients of the emulators (dynamodb, sns, sqs, secretsmanager), created on first use."""

    SERVICES = ("dynamodb", "sns", "sqs", "secretsmanager")

    def __init__(self, region: str) -> None:
        for service in self.SERVICES:
            if not endpoint_url(service):
                raise ProvisionError(
                    f"AWS_ENDPOINT_URL_{service.upper()} is not set: "
                    "refusing to provision anything but a local emulator"
                )
        self.region = region
        retries = {"mode": "standard", "max_attempts": 3}
        self.config = Config(connect_timeout=3, read_timeout=30, retries=retries)
        self._clients: dict[str, Any] = {}

    def __getattr__(self, service: str) -> Any:
        if service not in self.SERVICES:
            raise AttributeError(service)
        if service not in self._clients:
            self._clients[service] = boto3.client(service, region_name=self.region, config=self.config)
        return self._clients[service]


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def up(stack: Stack, clients: Clients) -> dict:
    """Creates what is missing and converges the rest."""
    types = list(PROPERTIES)

    def order(lid: str) -> tuple[int, bool]:  # by type; dead-letter queues before the queues naming them
        return types.index(stack.kinds[lid]), "RedrivePolicy" in stack.properties[lid]

    for logical_id in sorted(stack.kinds, key=order):
        kind, props = stack.kinds[logical_id], stack.properties[logical_id]
        attributes = stack.attributes[logical_id]
        if kind == TABLE:
            create_table(clients.dynamodb, attributes["name"], props)
        elif kind == TOPIC:
            clients.sns.create_topic(Name=attributes["name"])
            log(f"topic {attributes['name']} ready")
        elif kind == QUEUE:
            create_queue(clients.sqs, attributes, {k: as_attribute(v) for k, v in props.items()})
        elif kind == SECRET:
            create_secret(clients.secretsmanager, attributes["name"], props)
        elif kind == QUEUE_POLICY:
            policy = {"Policy": as_attribute(props["PolicyDocument"])}
            for url in props["Queues"]:
                clients.sqs.set_queue_attributes(QueueUrl=url, Attributes=policy)
            log(f"queue policy {logical_id} set")
        elif kind == TOPIC_POLICY:
            for arn in props["Topics"]:
                clients.sns.set_topic_attributes(
                    TopicArn=arn, AttributeName="Policy", AttributeValue=as_attribute(props["PolicyDocument"])
                )
            log(f"topic policy {logical_id} set")
        else:
            attributes["arn"] = subscribe(clients.sns, logical_id, props)
    skipped = [lid for lid in stack.template["Resources"] if lid not in stack.kinds]
    if skipped:
        log(f"not provisioned locally (AWS only, or left out by their Condition): {', '.join(skipped)}")
    return {
        "prefix": stack.prefix,
        "env": stack.environment(),
        "resources": {lid: a for lid, a in stack.attributes.items() if stack.kinds[lid] not in POLICIES},
        "event_sources": stack.event_sources(),
    }


def create_table(ddb: Any, name: str, props: dict) -> None:
    keys = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes")
    request = {k: props[k] for k in keys if k in props}
    try:
        ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **request)
    except ClientError as e:
        if error_code(e) != "ResourceInUseException":
            raise
        log(f"table {name} exists")
        return
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        ddb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
        )
    log(f"created table {name}")


def create_queue(sqs: Any, attributes: dict[str, str], wanted: dict[str, str]) -> None:
    try:
        sqs.create_queue(QueueName=attributes["name"], Attributes=wanted)
    except ClientError as e:
        if error_code(e) not in ("QueueAlreadyExists", "QueueNameExists"):
            raise
        # The template changed since this prefix was provisioned: converge.
        sqs.set_queue_attributes(QueueUrl=attributes["url"], Attributes=wanted)
    log(f"queue {attributes['name']} ready")


def create_secret(secrets: Any, name: str, props: dict) -> None:
    """Creates the secret without a value, as CloudFormation does; one that exists keeps its value."""
    try:
        secrets.create_secret(Name=name, Description=props.get("Description", ""))
    except ClientError as e:
        if error_code(e) != "ResourceExistsException":
            raise
    log(f"secret {name} ready")


def subscribe(sns: Any, logical_id: str, props: dict) -> str:
    """Subscribes, or converges the existing subscription; returns its ARN."""
    target = {k: props[k] for k in ("TopicArn", "Protocol", "Endpoint")}
    wanted = {k: as_attribute(v) for k, v in props.items() if k not in target}
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=target["TopicArn"]):
        for sub in page["Subscriptions"]:
            if (sub["Protocol"], sub["Endpoint"]) == (target["Protocol"], target["Endpoint"]):
                for key, value in wanted.items():
                    sns.set_subscription_attributes(
                        SubscriptionArn=sub["SubscriptionArn"], AttributeName=key, AttributeValue=value
                    )
                log(f"subscription {logical_id} ready")
                return sub["SubscriptionArn"]
    arn = sns.subscribe(**target, Attributes=wanted, ReturnSubscriptionArn=True)["SubscriptionArn"]
    log(f"subscription {logical_id} created")
    return arn


def down(stack: Stack, clients: Clients) -> dict:
    """Deletes topics first, so nothing is delivered to queues that are going away."""

    def delete_topic(topic: dict[str, str]) -> None:
        for page in clients.sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic["arn"]):
            for sub in page["Subscriptions"]:
                clients.sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
        clients.sns.delete_topic(TopicArn=topic["arn"])

    steps = [  # type, delete, the error codes of a resource already gone
        (TOPIC, delete_topic, {"NotFound"}),
        (QUEUE, lambda queue: clients.sqs.delete_queue(QueueUrl=queue["url"]),
         {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}),
        (TABLE, lambda table: clients.dynamodb.delete_table(TableName=table["name"]),
         {"ResourceNotFoundException"}),
        (SECRET, lambda secret: clients.secretsmanager.delete_secret(
            SecretId=secret["name"], ForceDeleteWithoutRecovery=True), {"ResourceNotFoundException"}),
    ]  # fmt: skip
    deleted: dict[str, str] = {}
    for kind, delete, gone in steps:
        for logical_id in [lid for lid in stack.kinds if stack.kinds[lid] == kind]:
            attributes = stack.attributes[logical_id]
            try:
                delete(attributes)
            except ClientError as e:
                if error_code(e) not in gone:
                    raise
                continue
            deleted[logical_id] = attributes["name"]
            log(f"deleted {attributes['name']}")
    return {"prefix": stack.prefix, "deleted": deleted}


def functions(stack: Stack) -> dict:
    return {
        "functions": {
            lid: {"code_uri": props.get("CodeUri"), "env": stack.function_variables(lid)}
            for lid, props in stack.functions.items()
        }
    }


# --- command line ------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down", "functions", "template"])
    parser.add_argument("--prefix", required=True, help="physical names are PREFIX-LogicalId")
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="template parameter value (default: the parameter's Default)")  # fmt: skip
    parser.add_argument("--queue-visibility-secs", type=int, metavar="SECS",
                        help="the consumer queues' VisibilityTimeout in place of the template's "
                             "(a fault run: what a killed server had received returns sooner)")  # fmt: skip
    args = parser.parse_args(argv)
    if not PREFIX_PATTERN.fullmatch(args.prefix):
        parser.error("--prefix: letters, digits, '-' or '_', starting with a letter or digit")
    overrides = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--param {item}: expected NAME=VALUE")
        overrides[name] = value
    if args.queue_visibility_secs is not None and not 0 <= args.queue_visibility_secs <= 43200:
        parser.error("--queue-visibility-secs: 0 to 43200 seconds, as SQS allows")
    started = time.monotonic()
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    try:
        template = load_template(args.template)
        if args.action == "template":
            json.dump(template, sys.stdout, indent=2)
            sys.stdout.write("\n")
            return 0
        stack = Stack(template, args.prefix, region, overrides)
        if args.action == "functions":
            result = functions(stack)
        else:
            if args.queue_visibility_secs is not None:
                stack.override_queue_visibility(args.queue_visibility_secs)
            result = (up if args.action == "up" else down)(stack, Clients(region))
    except (ProvisionError, ClientError) as e:
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
