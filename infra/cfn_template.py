"""Reads a CloudFormation / SAM template and evaluates its intrinsic functions.

The YAML loader keeps short tags (!Ref, !GetAtt, !Sub, ...) as the long forms
they stand for; the Resolver evaluates them against local values.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


class TemplateError(Exception):
    pass


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
        raise TemplateError(f"cannot read the template: {e}") from e
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise TemplateError(f"{path} has no Resources")
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
        stack_name: str,
        region: str,
        account_id: str,
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
            raise TemplateError(f"unknown template parameters: {', '.join(sorted(unknown))}")
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/local",
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
            raise TemplateError(f"parameter {name} has no default; pass --param {name}=VALUE")
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
        raise TemplateError(f"Ref to unknown name {name}")

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.template.get("Conditions") or {}
            if name not in conditions:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(conditions[name]))
        return self._conditions[name]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = (self.resolve(v) for v in value)
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
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
        raise TemplateError(f"Fn::{name} is not supported locally")

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
