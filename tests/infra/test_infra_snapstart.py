"""SnapStart as a deploy option (`-c serverless-mlops:snapstart=true`): off, the inference
function is invoked as before; on, it snapshots published versions and API Gateway invokes
its `live` alias (which alone is allowed to be invoked by the API), and cdk-nag stays clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template
from synthesized_app import SynthesizedApp

from infra.cdk.app import build_app
from infra.cdk.stack import ServerlessMlopsStack

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def snapstart(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedApp:
    outdir = tmp_path_factory.mktemp("cdk.out.snapstart")
    app, stack = build_app(
        outdir=str(outdir),
        context={
            "serverless-mlops:snapstart": "true",  # as `-c` passes it: a string
            "serverless-mlops:snapstart_models": "breast-cancer",
            "@aws-cdk/core:failSynthOnValidationErrors": False,
            "aws:cdk:bundling-stacks": [],  # the layers' content is irrelevant here
        },
    )
    assert isinstance(stack, ServerlessMlopsStack)
    app.synth()
    return SynthesizedApp(app=app, stack=stack, template=Template.from_stack(stack), outdir=outdir)


def _function(synthesized: SynthesizedApp, name: str) -> dict[str, Any]:
    construct = getattr(synthesized.stack.api, name).function
    return synthesized.resources[synthesized.logical_id(construct)]["Properties"]  # type: ignore[no-any-return]


def _integration_targets(synthesized: SynthesizedApp) -> dict[str, str]:
    """Each inference route (`GET /health`, `POST /predict`) -> the JSON of what its integration invokes."""
    resources = synthesized.resources
    targets = {}
    for method in synthesized.resources_of_type("AWS::ApiGateway::Method").values():
        uri = json.dumps(method["Properties"]["Integration"]["Uri"])
        path_part = resources[method["Properties"]["ResourceId"]["Ref"]]["Properties"]["PathPart"]
        if path_part in ("health", "predict"):
            targets[f"{method['Properties']['HttpMethod']} /{path_part}"] = uri
    return targets


def _api_invoke_permissions(synthesized: SynthesizedApp) -> list[str]:
    return [
        json.dumps(permission["Properties"]["FunctionName"], sort_keys=True)
        for permission in synthesized.resources_of_type("AWS::Lambda::Permission").values()
        if permission["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]


def test_by_default_the_inference_function_is_invoked_as_it_is(synthesized: SynthesizedApp) -> None:
    inference = synthesized.logical_id(synthesized.stack.api.inference.function)
    assert "SnapStart" not in _function(synthesized, "inference")
    assert "SNAPSTART_MODELS" not in _function(synthesized, "inference")["Environment"]["Variables"]
    assert synthesized.resources_of_type("AWS::Lambda::Alias") == {}
    assert synthesized.resources_of_type("AWS::Lambda::Version") == {}
    targets = _integration_targets(synthesized)
    assert set(targets) == {"GET /health", "POST /predict"}
    assert all(json.dumps({"Fn::GetAtt": [inference, "Arn"]}) in uri for uri in targets.values())
    assert synthesized.stack.api.inference_alias is None


def test_with_snapstart_published_versions_are_snapshotted(snapstart: SynthesizedApp) -> None:
    inference = _function(snapstart, "inference")
    assert inference["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert inference["Environment"]["Variables"]["SNAPSTART_MODELS"] == "breast-cancer"
    assert inference["Runtime"] == "python3.12"  # SnapStart for Python needs 3.12 or later
    assert "SnapStart" not in _function(snapstart, "registry")  # the option is the inference function's
    assert "FileSystemConfigs" not in inference  # SnapStart supports no EFS
    assert inference.get("EphemeralStorage", {"Size": 512})["Size"] <= 512  # nor more than 512 MB of /tmp


def test_with_snapstart_the_api_invokes_the_live_alias_of_the_current_version(
    snapstart: SynthesizedApp,
) -> None:
    api = snapstart.stack.api
    function_id = snapstart.logical_id(api.inference.function)
    assert api.inference_alias is not None
    alias_id = snapstart.logical_id(api.inference_alias)
    (version_id, version), *more = snapstart.resources_of_type("AWS::Lambda::Version").items()
    assert more == []
    assert version["Properties"]["FunctionName"] == {"Ref": function_id}
    # Replaced versions are deleted, not retained: each one's snapshot is charged while it exists.
    assert version.get("DeletionPolicy", "Delete") == "Delete"
    alias = snapstart.resources[alias_id]["Properties"]
    assert alias["Name"] == "live"
    assert alias["FunctionName"] == {"Ref": function_id}
    assert alias["FunctionVersion"] == {"Fn::GetAtt": [version_id, "Version"]}

    targets = _integration_targets(snapstart)
    assert set(targets) == {"GET /health", "POST /predict"}
    for uri in targets.values():
        assert json.dumps({"Ref": alias_id}) in uri
        assert function_id not in uri  # never the unqualified function ($LATEST has no snapshot)

    permissions = _api_invoke_permissions(snapstart)
    assert json.dumps({"Ref": alias_id}) in permissions  # the alias may be invoked by the API
    assert not any(function_id in permission for permission in permissions)


def test_with_snapstart_cdk_nag_finds_nothing_unacknowledged(snapstart: SynthesizedApp) -> None:
    report = SynthesizedApp.read_validation_report(snapstart.outdir)
    violations = [
        (violation["ruleName"], [item["constructPath"] for item in violation["violatingConstructs"]])
        for plugin in report["pluginReports"]
        if plugin["pluginName"] == "AwsSolutions"
        for violation in plugin["violations"]
    ]
    assert violations == []


@pytest.mark.parametrize("value", ["yes", "1", "on"])
def test_a_snapstart_setting_other_than_true_or_false_fails_the_synthesis(value: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="serverless-mlops:snapstart="):
        build_app(
            outdir=str(tmp_path),
            context={"serverless-mlops:snapstart": value, "aws:cdk:bundling-stacks": []},
        )
