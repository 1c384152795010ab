"""Training past one function in the template: both trainers in each Map behind a Choice on
the item's ``compute``, the ``createTrainingJob.sync`` state (framework image by region,
code asset, same entry point), the job's least-privilege role, and the code it runs."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from synthesized_app import SynthesizedApp

from infra.cdk.constructs import sagemaker_training
from infra.cdk.constructs.training import SAGEMAKER_THRESHOLD_BYTES
from tests.support import ROOT

pytestmark = pytest.mark.infra


def _definition(synthesized: SynthesizedApp) -> tuple[dict[str, Any], str]:
    """The training machine's definition (tokens as ``<token>``) and its raw rendering."""
    machine = synthesized.stack.training.state_machine
    raw = synthesized.resources[synthesized.logical_id(machine)]["Properties"]["DefinitionString"]
    parts = raw["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else "<token>" for p in parts)
    return json.loads(text), json.dumps(parts)


@pytest.mark.parametrize(("map_state", "what"), [("TrainCandidates", "Candidate"), ("TrainTrials", "Trial")])
def test_each_map_chooses_between_the_lambda_trainer_and_a_sagemaker_training_job(
    synthesized: SynthesizedApp, map_state: str, what: str
) -> None:
    definition, _ = _definition(synthesized)
    processor = definition["States"][map_state]["ItemProcessor"]
    states = processor["States"]

    assert processor["StartAt"] == f"{what}Compute"
    choice = states[f"{what}Compute"]
    assert choice["Type"] == "Choice"
    assert choice["Choices"] == [
        {"Variable": "$.compute", "StringEquals": "sagemaker", "Next": f"Train{what}OnSageMaker"}
    ]
    assert choice["Default"] == f"Train{what}"  # the Lambda trainer: the default
    assert states[f"Train{what}"]["Resource"].endswith(":states:::lambda:invoke")
    job = states[f"Train{what}OnSageMaker"]
    assert job["Resource"].endswith(":states:::sagemaker:createTrainingJob.sync")
    assert job["Next"] == f"Collect{what}Job" and job["ResultPath"] == "$.training_job"
    assert states[f"Collect{what}Job"]["End"] is True


def test_the_training_job_runs_the_launcher_from_the_code_asset_in_the_sklearn_image(
    synthesized: SynthesizedApp,
) -> None:
    definition, raw = _definition(synthesized)
    job = definition["States"]["TrainCandidates"]["ItemProcessor"]["States"]["TrainCandidateOnSageMaker"]
    parameters = job["Parameters"]

    assert parameters["HyperParameters"]["sagemaker_program"] == "launcher.py"
    assert parameters["HyperParameters"]["run_id.$"] == "$.run_id"
    assert parameters["HyperParameters"]["candidate_id.$"] == "$.candidate_id"
    assert parameters["ResourceConfig"] == {
        "InstanceCount": 1,
        "InstanceType": "ml.m5.large",
        "VolumeSizeInGB": 30,
    }
    assert parameters["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert parameters["TrainingJobName.$"] == "States.Format('mlops-{}', States.UUID())"
    image = parameters["AlgorithmSpecification"]["TrainingImage"]
    assert image.endswith("/sagemaker-scikit-learn:1.2-1-cpu-py3")
    # The image's account comes from the region mapping; the code from the asset bucket.
    mapping_id = next(iter(synthesized.template_json["Mappings"]))
    assert f'"Fn::FindInMap": ["{mapping_id}", {{"Ref": "AWS::Region"}}, "account"]' in raw
    mapping = synthesized.template_json["Mappings"][mapping_id]
    assert mapping["us-east-1"] == {"account": "683313688378"}
    assert mapping["eu-west-1"] == {"account": "141502667606"}
    assert "cdk-hnb659fds-assets-" in raw


def test_the_job_role_reads_datasets_and_runs_writes_runs_and_pulls_only_the_sklearn_image(
    synthesized: SynthesizedApp,
) -> None:
    role = synthesized.stack.training.sagemaker.role
    trust = synthesized.resources[synthesized.logical_id(role)]["Properties"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    granted: dict[str, list[str]] = {}
    for statement in synthesized.role_policy_statements(role):
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        for action in actions:
            granted.setdefault(action, []).extend(json.dumps(r) for r in resources)

    assert set(granted) == {
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:PutObject",
        "logs:CreateLogGroup",
        "logs:DescribeLogStreams",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:GetAuthorizationToken",
    }
    assert all("/runs/*" in r for r in granted["s3:PutObject"])  # no delete, nothing outside runs/
    reads = granted["s3:GetObject"]
    assert any("/datasets/*" in r for r in reads) and any("/runs/*" in r for r in reads)
    assert any(".gz" in r and "cdk-hnb659fds-assets" in r for r in reads)  # the code object only
    assert not any(r.endswith('/*"]]}') and "cdk-hnb659fds-assets" in r for r in reads)
    assert all("repository/sagemaker-scikit-learn" in r for r in granted["ecr:BatchGetImage"])
    assert "dynamodb:PutItem" not in granted  # CollectTrainingJob records the candidate


def test_the_state_machine_may_pass_only_the_job_role_to_sagemaker(synthesized: SynthesizedApp) -> None:
    machine = synthesized.stack.training.state_machine
    statements = synthesized.role_policy_statements(machine.role)
    passes = [s for s in statements if s["Action"] == "iam:PassRole"]
    job_role = synthesized.logical_id(synthesized.stack.training.sagemaker.role)

    assert passes == [
        {
            "Action": "iam:PassRole",
            "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [job_role, "Arn"]},
        }
    ]
    sagemaker = next(s for s in statements if "sagemaker:CreateTrainingJob" in s["Action"])
    assert set(sagemaker["Action"]) == {
        "sagemaker:AddTags",
        "sagemaker:CreateTrainingJob",
        "sagemaker:DescribeTrainingJob",
        "sagemaker:StopTrainingJob",
    }


def test_validate_data_gets_the_size_threshold_and_the_api_does_not_decide_by_size(
    synthesized: SynthesizedApp,
) -> None:
    training = synthesized.stack.training
    validate = synthesized.resources[synthesized.logical_id(training.validate_data.function)]
    variables = validate["Properties"]["Environment"]["Variables"]
    assert variables["SAGEMAKER_THRESHOLD_BYTES"] == str(SAGEMAKER_THRESHOLD_BYTES)
    # The local stack's "no SageMaker here" is never in the template (it is the local stack's own).
    for resource in synthesized.resources_of_type("AWS::Lambda::Function").values():
        assert "MLOPS_SAGEMAKER_UNAVAILABLE" not in resource["Properties"].get("Environment", {}).get(
            "Variables", {}
        )


def test_the_code_asset_holds_the_launcher_the_layers_pins_and_mlops_core(tmp_path: Path) -> None:
    tarball = sagemaker_training.build_source_tarball(ROOT, tmp_path / "a")
    again = sagemaker_training.build_source_tarball(ROOT, tmp_path / "b")
    assert tarball.read_bytes() == again.read_bytes()  # same sources, same asset

    with tarfile.open(fileobj=io.BytesIO(tarball.read_bytes()), mode="r:gz") as archive:
        names = archive.getnames()
        requirements = archive.extractfile("pins.txt").read().decode()  # type: ignore[union-attr]
        pins = json.loads(archive.extractfile("launcher.json").read())  # type: ignore[union-attr]
    assert "launcher.py" in names
    assert "requirements.txt" not in names  # the toolkit would install it into the container's Python
    assert "mlops_core/training/training_job.py" in names and "mlops_core/training/steps.py" in names
    for layer in ("core", "science"):
        for line in (ROOT / "layers" / layer / "requirements.txt").read_text().splitlines():
            if line and not line.startswith("#"):
                assert line in requirements.splitlines()
    assert pins == {"python": "3.12", "uv": "0.13.8"}
