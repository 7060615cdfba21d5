"""Creates on the local emulators the resources that template.yaml declares.

template.yaml stays the single source of truth: this reads it, resolves its
intrinsic functions the way CloudFormation would (parameters take their
defaults), and creates its DynamoDB tables, SNS topics, SQS queues, queue
policies and subscriptions under physical names `<prefix>-<LogicalId>`, so that
every test can have its own set. Resources that only matter in AWS (functions,
APIs, alarms, IAM) are skipped; a resource type it does not know is an error.

    provision.py up   --prefix P [--template PATH] [--param NAME=VALUE ...]
    provision.py down --prefix P [--template PATH]

`up` is idempotent and prints one JSON document on stdout:
    {"prefix", "env": the functions' environment variables, resolved,
     "resources": {LogicalId: {name, arn, url, ...}},
     "event_sources": [{function, code_uri, queue_url, batch_size}]}
Endpoints come only from the SDK's AWS_ENDPOINT_URL_<SERVICE> variables (or
AWS_ENDPOINT_URL); without them it refuses to run rather than touch real AWS.
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

import boto3
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

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


class ProvisionError(Exception):
    pass


def log(message: str) -> None:
    print(f"[provision] {message}", file=sys.stderr, flush=True)


# --- reading the template ---------------------------------------------------------

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CfnLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """YAML loader that reads CloudFormation short tags (!Ref, !GetAtt, ...) as data."""


def _construct_short_tag(loader: yaml.Loader, tag_suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


CfnLoader.add_multi_constructor("!", _construct_short_tag)


def load_template(path: Path) -> dict:
    try:
        with path.open() as f:
            template = yaml.load(f, Loader=CfnLoader)  # noqa: S506 - CfnLoader is a SafeLoader
    except OSError as e:
        raise ProvisionError(f"cannot read the template: {e}") from e
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise ProvisionError(f"{path} has no Resources")
    return template


# --- resolving intrinsic functions -------------------------------------------------

NO_VALUE = object()  # AWS::NoValue: the property is dropped


class Resolver:
    """Evaluates CloudFormation intrinsic functions against local values.

    `ref` and `get_att` are called for resource references, so the caller can
    create a resource the first time something refers to it.
    """

    def __init__(
        self,
        template: dict,
        prefix: str,
        region: str,
        overrides: dict[str, str],
        ref: Callable[[str], Any],
        get_att: Callable[[str, str], Any],
    ) -> None:
        self.template = template
        self.ref_resource = ref
        self.get_att = get_att
        self.parameters = template.get("Parameters") or {}
        self.overrides = overrides
        unknown = set(overrides) - set(self.parameters)
        if unknown:
            raise ProvisionError(f"unknown template parameters: {', '.join(sorted(unknown))}")
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": prefix,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/{prefix}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }
        self._conditions: dict[str, bool] = {}

    def parameter(self, name: str) -> Any:
        spec = self.parameters[name] or {}
        if name in self.overrides:
            value = self.overrides[name]
        elif "Default" in spec:
            value = spec["Default"]
        else:
            raise ProvisionError(f"parameter {name} has no default; pass --param {name}=VALUE")
        if str(spec.get("Type", "")).startswith(("CommaDelimitedList", "List<")):
            return [v.strip() for v in str(value).split(",")] if value != "" else []
        return str(value)

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameter(name)
        if name in self.template["Resources"]:
            return self.ref_resource(name)
        raise ProvisionError(f"Ref to unknown name {name}")

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.template.get("Conditions") or {}
            if name not in conditions:
                raise ProvisionError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(conditions[name]))
        return self._conditions[name]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = (self.resolve(v) for v in value)
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key.startswith("Fn::"):
                return self._function(key[4:], arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _function(self, name: str, arg: Any) -> Any:
        if name == "GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.get_att(logical_id, self.resolve(attribute))
        if name == "Sub":
            return self._sub(arg)
        if name == "Join":
            delimiter, items = arg
            return self.resolve(delimiter).join(str(v) for v in self.resolve(items))
        if name == "Select":
            index, items = self.resolve(arg)
            return items[int(index)]
        if name == "Split":
            delimiter, text = self.resolve(arg)
            return text.split(delimiter)
        if name == "If":
            condition, if_true, if_false = arg
            return self.resolve(if_true if self.condition(condition) else if_false)
        if name == "Equals":
            a, b = self.resolve(arg)
            return a == b
        if name == "Not":
            return not self.resolve(arg[0])
        if name == "And":
            return all(self.resolve(arg))
        if name == "Or":
            return any(self.resolve(arg))
        if name == "FindInMap":
            mapping, first, second = self.resolve(arg)[:3]
            return self.template["Mappings"][mapping][first][second]
        if name == "Base64":
            return base64.b64encode(str(self.resolve(arg)).encode()).decode()
        if name == "ToJsonString":
            return json.dumps(self.resolve(arg), separators=(",", ":"))
        if name == "GetAZs":
            region = self.resolve(arg) or self.pseudo["AWS::Region"]
            return [f"{region}{zone}" for zone in "abc"]
        raise ProvisionError(f"Fn::{name} is not supported locally")

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}

        def replace(match: re.Match) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if expression in variables:
                return str(variables[expression])
            if "." in expression and expression.split(".", 1)[0] in self.template["Resources"]:
                return str(self.get_att(*expression.split(".", 1)))
            value = self.ref(expression)
            return ",".join(value) if isinstance(value, list) else str(value)

        return re.sub(r"\$\{([^}]+)\}", replace, text)


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

    def __getattr__(self, service: str) -> Any:
        if service not in SERVICE_ENDPOINT_VARIABLES:
            raise AttributeError(service)
        if service not in self._clients:
            variable = SERVICE_ENDPOINT_VARIABLES[service]
            if not (os.environ.get(variable) or os.environ.get("AWS_ENDPOINT_URL")):
                raise ProvisionError(
                    f"{variable} is not set: refusing to provision anything but a local emulator"
                )
            self._clients[service] = self.session.client(service, config=self.config)
        return self._clients[service]


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

# Properties that shape behaviour the emulators do not have (billing, backups,
# encryption at rest, tags): accepted and left out.
TABLE_IGNORED = {
    "BillingMode", "PointInTimeRecoverySpecification", "SSESpecification", "Tags",
    "ContributorInsightsSpecification", "DeletionProtectionEnabled", "TableClass",
    "ProvisionedThroughput", "KinesisStreamSpecification", "ResourcePolicy",
    "OnDemandThroughput", "WarmThroughput",
}
TABLE_HANDLED = {
    "TableName", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes", "StreamSpecification", "TimeToLiveSpecification",
}
QUEUE_ATTRIBUTES = {
    "DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds", "VisibilityTimeout", "RedrivePolicy",
    "RedriveAllowPolicy", "FifoQueue", "ContentBasedDeduplication",
    "DeduplicationScope", "FifoThroughputLimit", "SqsManagedSseEnabled",
}
QUEUE_IGNORED = {"QueueName", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds", "Tags"}
TOPIC_ATTRIBUTES = {"DisplayName", "FifoTopic", "ContentBasedDeduplication"}
TOPIC_IGNORED = {
    "TopicName", "KmsMasterKeyId", "Tags", "SignatureVersion", "TracingConfig",
    "ArchivePolicy", "DataProtectionPolicy", "DeliveryStatusLogging", "FifoThroughputScope",
}
SUBSCRIPTION_ATTRIBUTES = {
    "RawMessageDelivery", "FilterPolicy", "FilterPolicyScope", "RedrivePolicy",
    "DeliveryPolicy", "SubscriptionRoleArn", "ReplayPolicy",
}
SUBSCRIPTION_HANDLED = {"TopicArn", "Protocol", "Endpoint", "Region"}


class Provisioner:
    """Creates each resource once, the first time it is needed, dependencies first."""

    def __init__(self, template: dict, prefix: str, region: str, overrides: dict[str, str]) -> None:
        self.template = template
        self.resources_spec: dict = template["Resources"]
        self.prefix = prefix
        self.region = region
        self.clients = Clients(region)
        self.resolver = Resolver(template, prefix, region, overrides, self.ref, self.get_att)
        self.created: dict[str, dict] = {}  # logical id -> physical attributes
        self._in_progress: set[str] = set()

    # - naming and references -

    def physical_name(self, logical_id: str, fifo: bool = False) -> str:
        return f"{self.prefix}-{logical_id}" + (".fifo" if fifo else "")

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
        handler = self.HANDLERS.get(kind)
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
        check_properties(logical_id, props, SUBSCRIPTION_HANDLED, SUBSCRIPTION_ATTRIBUTES)
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

    # - the whole template -

    def up(self) -> dict:
        for logical_id, spec in self.resources_spec.items():
            kind = spec.get("Type")
            if kind in SKIPPED_TYPES:
                continue
            if not self.included(logical_id):
                log(f"{logical_id}: condition false, skipped")
                continue
            self.ensure(logical_id)
        functions = [
            (logical_id, spec.get("Properties") or {})
            for logical_id, spec in self.resources_spec.items()
            if spec.get("Type") == "AWS::Serverless::Function" and self.included(logical_id)
        ]
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

    def function_environment(self, functions: list[tuple[str, dict]]) -> dict[str, str]:
        """The union of every function's variables (Globals first), one value per name."""
        global_function = (self.template.get("Globals") or {}).get("Function") or {}
        global_variables = (global_function.get("Environment") or {}).get("Variables") or {}
        env: dict[str, str] = {}
        origin: dict[str, str] = {}
        for logical_id, props in functions:
            own = (props.get("Environment") or {}).get("Variables") or {}
            variables = self.resolver.resolve({**global_variables, **own})
            for name, value in variables.items():
                value = as_attribute(value)
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
                sources.append({
                    "function": logical_id,
                    "code_uri": props.get("CodeUri"),
                    "queue_url": queue["url"],
                    "batch_size": int(self.resolver.resolve(event_props.get("BatchSize", 10))),
                })
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
        for logical_id, name in deleted.items():
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

PREFIX_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--prefix", required=True, help="physical names are PREFIX-LogicalId")
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE",
        help="template parameter value (default: the parameter's Default)",
    )
    args = parser.parse_args(argv)
    if not PREFIX_PATTERN.fullmatch(args.prefix):
        parser.error("--prefix: 1 to 40 letters, digits, '-' or '_', starting with a letter or digit")
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
        provisioner = Provisioner(template, args.prefix, region, overrides)
        result = provisioner.up() if args.action == "up" else provisioner.down()
    except ProvisionError as e:
        print(f"provision.py: {e}", file=sys.stderr)
        return 1
    except ClientError as e:
        print(f"provision.py: {e}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    log(f"{args.action} {args.prefix} done in {time.monotonic() - started:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
