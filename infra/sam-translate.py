"""Prints template.yaml as CloudFormation receives it, after the SAM transform, as JSON.

Runs offline with the SAM CLI's own translator (its virtualenv's python): local code
paths become placeholder S3 URIs, as `sam validate` does, and the managed policies named
in a function's Policies come from the map the translator bundles. What the transform
adds on its own (roles, managed policies, permissions, event source mappings) is what
the IAM checks of tests/tests/template.rs read.
"""

import argparse
import json
import sys
from pathlib import Path

from samcli.yamlhelper import yaml_parse
from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
PLACEHOLDER_CODE = "s3://placeholder-bucket/code.zip"
PSEUDO_PARAMETERS = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "task-orchestration",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/task-orchestration/0",
    "AWS::URLSuffix": "amazonaws.com",
}


def translate(template: dict, parameters: dict[str, str]) -> dict:
    for spec in template.get("Resources", {}).values():
        if spec.get("Type") == "AWS::Serverless::Function":
            spec.setdefault("Properties", {})["CodeUri"] = PLACEHOLDER_CODE
    values = {**PSEUDO_PARAMETERS, **parameters}
    translator = Translator(None, Parser(), plugins=[])
    return translator.translate(
        sam_template=template,
        parameter_values=values,
        get_managed_policy_map=lambda: get_bundled_managed_policy_map("aws") or {},
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    parameters = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--param {item}: expected NAME=VALUE")
        parameters[name] = value
    try:
        template = yaml_parse(args.template.read_text())
        transformed = translate(template, parameters)
    except Exception as e:  # YAML's and the translator's errors say where and why
        print(f"sam-translate.py: {e}", file=sys.stderr)
        return 1
    json.dump(transformed, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
