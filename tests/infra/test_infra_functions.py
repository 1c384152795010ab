"""The inference and registry functions: configuration, and roles that allow only what each needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack, aws_lambda
from synthesized_app import SynthesizedApp

from infra.cdk.constructs.functions import CODE_EXCLUDES, SOURCE_TAG, ServiceFunction

pytestmark = pytest.mark.infra

FUNCTIONS = {
    # name: (memory MiB, timeout s, layers)
    "inference": (1024, 10, ("core", "serving")),
    "registry": (1024, 29, ("core", "serving")),  # API Gateway stops waiting at 29 s
}


def _service_function(synthesized: SynthesizedApp, name: str) -> ServiceFunction:
    service_function: ServiceFunction = getattr(synthesized.stack.api, name)
    return service_function


def _grants(statements: list[dict[str, Any]]) -> set[tuple[tuple[str, ...], str]]:
    """(sorted actions, resource as canonical JSON) for each Allow statement, for exact comparison."""
    grants = set()
    for statement in statements:
        assert statement["Effect"] == "Allow", statement
        assert "NotAction" not in statement and "NotResource" not in statement, statement
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        for resource in resources:
            grants.add((tuple(sorted(actions)), json.dumps(resource, sort_keys=True)))
    return grants


def _arn(logical_id: str) -> str:
    return json.dumps({"Fn::GetAtt": [logical_id, "Arn"]}, sort_keys=True)


def _arn_with_suffix(logical_id: str, suffix: str) -> str:
    return json.dumps({"Fn::Join": ["", [{"Fn::GetAtt": [logical_id, "Arn"]}, suffix]]}, sort_keys=True)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_runs_python_3_12_on_x86_64_with_tracing(synthesized: SynthesizedApp, name: str) -> None:
    memory, timeout, _ = FUNCTIONS[name]
    properties = synthesized.resources[synthesized.logical_id(_service_function(synthesized, name).function)][
        "Properties"
    ]

    assert properties["Runtime"] == "python3.12"
    assert properties["Architectures"] == ["x86_64"]
    assert properties["Handler"] == "handler.lambda_handler"
    assert properties["MemorySize"] == memory
    assert properties["Timeout"] == timeout
    assert properties["TracingConfig"] == {"Mode": "Active"}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_code_comes_from_its_folder(synthesized: SynthesizedApp, name: str) -> None:
    properties = synthesized.resources[synthesized.logical_id(_service_function(synthesized, name).function)][
        "Properties"
    ]
    staged = synthesized.asset_dir(properties["Code"])
    source = Path(__file__).resolve().parents[2] / "functions" / name

    staged_files = sorted(path.relative_to(staged).as_posix() for path in staged.rglob("*") if path.is_file())
    source_files = sorted(
        path.relative_to(source).as_posix()
        for path in source.rglob("*")
        if path.is_file()
        and not {"__pycache__", ".pytest_cache", "tests"} & set(path.relative_to(source).parts)
        and path.suffix != ".pyc"
    )
    assert staged_files == source_files


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_is_tagged_with_its_source_folder(synthesized: SynthesizedApp, name: str) -> None:
    properties = synthesized.resources[synthesized.logical_id(_service_function(synthesized, name).function)][
        "Properties"
    ]

    assert {"Key": SOURCE_TAG, "Value": f"functions/{name}"} in properties["Tags"]


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_uses_exactly_its_layers(synthesized: SynthesizedApp, name: str) -> None:
    _, _, layer_names = FUNCTIONS[name]
    properties = synthesized.resources[synthesized.logical_id(_service_function(synthesized, name).function)][
        "Properties"
    ]

    expected = [
        {"Ref": synthesized.logical_id(getattr(synthesized.stack.layers, layer))} for layer in layer_names
    ]
    assert properties["Layers"] == expected


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_environment_names_its_resources_and_service(synthesized: SynthesizedApp, name: str) -> None:
    storage = synthesized.stack.storage
    properties = synthesized.resources[synthesized.logical_id(_service_function(synthesized, name).function)][
        "Properties"
    ]

    publishes_events = {"EVENT_BUS_NAME": {"Ref": synthesized.logical_id(synthesized.stack.events.bus)}}
    # predictions by entity id read the online feature store
    reads_features = {"FEATURES_TABLE": {"Ref": synthesized.logical_id(synthesized.stack.features.table)}}
    assert properties["Environment"]["Variables"] == {
        "ARTIFACTS_BUCKET": {"Ref": synthesized.logical_id(storage.artifacts_bucket)},
        "METADATA_TABLE": {"Ref": synthesized.logical_id(storage.metadata_table)},
        "POWERTOOLS_SERVICE_NAME": name,
        "POWERTOOLS_METRICS_NAMESPACE": "ServerlessMLOps",
        "LOG_LEVEL": "INFO",
        "PYDANTIC_DISABLE_PLUGINS": "__all__",
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
    } | (publishes_events if name == "registry" else {}) | (reads_features if name == "inference" else {})


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_logs_to_its_own_log_group_with_retention(synthesized: SynthesizedApp, name: str) -> None:
    service_function = _service_function(synthesized, name)
    log_group_id = synthesized.logical_id(service_function.log_group)
    properties = synthesized.resources[synthesized.logical_id(service_function.function)]["Properties"]

    assert properties["LoggingConfig"] == {"LogGroup": {"Ref": log_group_id}}
    assert synthesized.resources[log_group_id]["Properties"]["RetentionInDays"] == 90


def test_each_function_has_its_own_role_without_managed_policies(synthesized: SynthesizedApp) -> None:
    role_ids = set()
    for name in FUNCTIONS:
        service_function = _service_function(synthesized, name)
        role_id = synthesized.logical_id(service_function.role)
        function = synthesized.resources[synthesized.logical_id(service_function.function)]
        role = synthesized.resources[role_id]

        assert function["Properties"]["Role"] == {"Fn::GetAtt": [role_id, "Arn"]}
        assert "ManagedPolicyArns" not in role["Properties"], name
        assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
            {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}
        ]
        role_ids.add(role_id)
    assert len(role_ids) == len(FUNCTIONS)


def _baseline_grants(
    synthesized: SynthesizedApp, service_function: ServiceFunction
) -> set[tuple[tuple[str, ...], str]]:
    """Logs to its own log group, and X-Ray traces (which have no resource-level permissions)."""
    return {
        (
            ("logs:CreateLogStream", "logs:PutLogEvents"),
            _arn(synthesized.logical_id(service_function.log_group)),
        ),
        (("xray:PutTelemetryRecords", "xray:PutTraceSegments"), json.dumps("*")),
    }


def test_inference_role_can_only_read_metadata_and_model_artifacts(synthesized: SynthesizedApp) -> None:
    inference = synthesized.stack.api.inference
    table_id = synthesized.logical_id(synthesized.stack.storage.metadata_table)
    bucket_id = synthesized.logical_id(synthesized.stack.storage.artifacts_bucket)
    features_id = synthesized.logical_id(synthesized.stack.features.table)

    grants = _grants(synthesized.role_policy_statements(inference.role))

    assert grants == _baseline_grants(synthesized, inference) | {
        (("dynamodb:GetItem", "dynamodb:Query"), _arn(table_id)),
        (("s3:GetObject", "s3:GetObjectVersion"), _arn_with_suffix(bucket_id, "/models/*")),
        (("dynamodb:BatchGetItem",), _arn(features_id)),  # predictions by entity id
    }
    granted_actions = {action for actions, _ in grants for action in actions}
    assert (
        not {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "s3:PutObject"}
        & granted_actions
    )


def test_registry_role_writes_metadata_and_models_but_never_deletes_anything(
    synthesized: SynthesizedApp,
) -> None:
    registry = synthesized.stack.api.registry
    table_id = synthesized.logical_id(synthesized.stack.storage.metadata_table)
    bucket_id = synthesized.logical_id(synthesized.stack.storage.artifacts_bucket)

    grants = _grants(synthesized.role_policy_statements(registry.role))

    assert grants == _baseline_grants(synthesized, registry) | {
        (
            (
                "dynamodb:ConditionCheckItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
                "dynamodb:UpdateItem",
            ),
            _arn(table_id),
        ),
        (("dynamodb:Query",), _arn_with_suffix(table_id, "/index/gsi1")),
        *(
            (("s3:GetObject", "s3:GetObjectVersion"), _arn_with_suffix(bucket_id, f"/{prefix}*"))
            for prefix in ("uploads/", "runs/", "models/")
        ),
        (("s3:ListBucket",), _arn(bucket_id)),
        (("s3:PutObject",), _arn_with_suffix(bucket_id, "/models/*")),
        (("events:PutEvents",), _arn(synthesized.logical_id(synthesized.stack.events.bus))),
    }


def test_register_model_reads_runs_and_models_and_writes_models_only(synthesized: SynthesizedApp) -> None:
    # It reads the candidate under runs/, writes the version's files under models/ once, and
    # reads an existing content-addressed file back for its version id (HeadObject).
    role = synthesized.stack.training.register_model.role
    bucket_id = synthesized.logical_id(synthesized.stack.storage.artifacts_bucket)
    s3_grants = {
        grant for grant in _grants(synthesized.role_policy_statements(role)) if grant[0][0].startswith("s3:")
    }

    assert s3_grants == {
        (("s3:GetObject", "s3:GetObjectVersion"), _arn_with_suffix(bucket_id, "/runs/*")),
        (("s3:GetObject", "s3:GetObjectVersion"), _arn_with_suffix(bucket_id, "/models/*")),
        (("s3:PutObject",), _arn_with_suffix(bucket_id, "/models/*")),
    }


def test_function_code_excludes_caches_and_tests(tmp_path: Path) -> None:
    code_dir = tmp_path / "function"
    for relative in (
        "handler.py",
        "routes/models.py",
        "__pycache__/handler.cpython-311.pyc",
        "routes/__pycache__/models.cpython-311.pyc",
        "tests/test_handler.py",
        ".pytest_cache/v",
    ):
        (code_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (code_dir / relative).write_text("")
    app = App(outdir=str(tmp_path / "cdk.out"))
    stack = Stack(app, "Probe")
    aws_lambda.Function(
        stack,
        "Probe",
        runtime=aws_lambda.Runtime.PYTHON_3_12,
        handler="handler.lambda_handler",
        code=aws_lambda.Code.from_asset(str(code_dir), exclude=CODE_EXCLUDES),
    )
    staged = next((tmp_path / "cdk.out").glob("asset.*"))

    assert sorted(path.relative_to(staged).as_posix() for path in staged.rglob("*") if path.is_file()) == [
        "handler.py",
        "routes/models.py",
    ]


def test_validate_data_may_list_only_the_datasets_prefix(synthesized: SynthesizedApp) -> None:
    # Listing lets S3 answer a missing dataset with 404 (a named InvalidTrainingRequest),
    # not 403 (which would look like a dependency failure).
    role = synthesized.stack.training.validate_data.role
    listing = [s for s in synthesized.role_policy_statements(role) if s["Action"] == "s3:ListBucket"]
    bucket_id = synthesized.logical_id(synthesized.stack.storage.artifacts_bucket)
    assert listing == [
        {
            "Action": "s3:ListBucket",
            "Condition": {"StringLike": {"s3:prefix": ["datasets/*"]}},
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [bucket_id, "Arn"]},
        }
    ]


def test_registry_lists_only_the_prefixes_it_registers_from(synthesized: SynthesizedApp) -> None:
    statements = synthesized.role_policy_statements(synthesized.stack.api.registry.role)
    listing = [s for s in statements if s["Action"] in ("s3:ListBucket", ["s3:ListBucket"])]
    prefixes = sorted(p for s in listing for p in s["Condition"]["StringLike"]["s3:prefix"])
    assert prefixes == ["models/*", "runs/*", "uploads/*"]


def test_training_api_role_reads_runs_and_writes_no_data(synthesized: SynthesizedApp) -> None:
    api = synthesized.stack.training.api
    actions = {
        action
        for statement in synthesized.role_policy_statements(api.role)
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }
    assert {"dynamodb:GetItem", "dynamodb:Query", "states:StartExecution", "s3:GetObject"} <= actions
    assert not actions & {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "s3:PutObject"}


def test_no_function_records_responses_in_its_traces(synthesized: SynthesizedApp) -> None:
    functions = synthesized.template.find_resources("AWS::Lambda::Function")
    ours = {
        logical_id: resource
        for logical_id, resource in functions.items()
        if "LOG_LEVEL" in resource["Properties"].get("Environment", {}).get("Variables", {})
    }
    assert len(ours) >= 9  # inference, registry, the training API and its six steps
    for logical_id, resource in ours.items():
        variables = resource["Properties"]["Environment"]["Variables"]
        assert variables.get("POWERTOOLS_TRACER_CAPTURE_RESPONSE") == "false", logical_id
