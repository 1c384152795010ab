"""`SynthesizedApp`: the synthesized CDK app as the infra tests see it, with query helpers.

A module of its own (not conftest.py) so that test modules can import the type.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from aws_cdk import App, CfnElement, Stack
from aws_cdk.assertions import Template
from constructs import IConstruct

from infra.cdk.stack import ServerlessMlopsStack


@dataclass(frozen=True)
class SynthesizedApp:
    """The synthesized app, its stack and template, and helpers to query them."""

    app: App
    stack: ServerlessMlopsStack
    template: Template
    outdir: Path

    @cached_property
    def template_json(self) -> dict[str, Any]:
        template: dict[str, Any] = self.template.to_json()
        return template

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.template_json["Resources"]
        return resources

    def logical_id(self, construct: IConstruct) -> str:
        """The template's logical id of an L2 construct (its default child) or an L1 element."""
        element = construct if isinstance(construct, CfnElement) else construct.node.default_child
        assert isinstance(element, CfnElement), f"{construct.node.path} has no CloudFormation element"
        return Stack.of(construct).resolve(element.logical_id)  # type: ignore[no-any-return]

    def resources_of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {key: value for key, value in self.resources.items() if value["Type"] == resource_type}

    def asset_dir(self, s3_location: dict[str, Any]) -> Path:
        """The staged directory of a Lambda code or layer asset, from its `S3Key` (`<hash>.zip`)."""
        asset_hash = s3_location["S3Key"].removesuffix(".zip")
        manifest = json.loads((self.outdir / f"{self.stack.artifact_id}.assets.json").read_text())
        source = manifest["files"][asset_hash]["source"]
        assert source["packaging"] == "zip", source
        return self.outdir / source["path"]

    def validation_report(self) -> dict[str, Any]:
        return self.read_validation_report(self.outdir)

    @staticmethod
    def read_validation_report(outdir: Path) -> dict[str, Any]:
        """The policy-validation report (cdk-nag findings) of a synthesized cloud assembly."""
        report: dict[str, Any] = json.loads((outdir / "validation-report.json").read_text())
        return report

    def role_policy_statements(self, role: IConstruct) -> list[dict[str, Any]]:
        """Every statement granted to a role: inline policies and attached AWS::IAM::Policy."""
        role_id = self.logical_id(role)
        statements: list[dict[str, Any]] = []
        for inline in self.resources[role_id]["Properties"].get("Policies", []):
            statements.extend(inline["PolicyDocument"]["Statement"])
        for policy in self.resources_of_type("AWS::IAM::Policy").values():
            if {"Ref": role_id} in policy["Properties"].get("Roles", []):
                statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
        return statements

    def state_machine_definition(self, machine: IConstruct) -> dict[str, Any]:
        """A state machine's definition as JSON (its tokens, as CloudFormation writes them)."""
        parts = self.resources[self.logical_id(machine)]["Properties"]["DefinitionString"]["Fn::Join"][1]
        text = "".join(
            part if isinstance(part, str) else json.dumps(json.dumps(part))[1:-1] for part in parts
        )
        definition: dict[str, Any] = json.loads(text)
        return definition
