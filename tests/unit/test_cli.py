"""`mlops` as a user meets it: errors, `train --wait`, `--json`, tables, `--version`, predict targets.

The commands run through typer's CliRunner with the API client replaced by a fake (no
stack, no HTTP); the predict query string is checked at the HTTP layer of the real client.
"""

from __future__ import annotations

import io
import json
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import requests
from rich.console import Console
from typer.testing import CliRunner

from infra.cli import main, runs
from infra.cli.client import ApiClient, ApiError, Target
from infra.cli.tables import Rows

RUN_ID = "breast-cancer-20261201-084446-6808da-with-a-long-tail-0123456789"


def _run(status: str, **fields: Any) -> dict[str, Any]:
    """A run record as GET /runs/{id} answers it once the execution has ended."""
    execution_status = {"SUCCEEDED": "SUCCEEDED", "RUNNING": "RUNNING"}.get(status, "FAILED")
    return {
        "run_id": RUN_ID,
        "model_name": "breast-cancer",
        "status": status,
        "request": {"dataset_key": "datasets/breast-cancer/v1/data.csv", "promote_to": "staging"},
        "dataset": {"key": "datasets/breast-cancer/v1/data.csv", "rows": 569, "sha256": "86923b4fe2b9c940"},
        "target_metric": "roc_auc",
        "best_candidate": "c000",
        "duration_seconds": 0.5,
        "candidates": [
            {"candidate_id": "c000", "family": "random_forest", "validation_metrics": {"roc_auc": 0.9764}}
        ],
        "execution": {"status": execution_status, "current_step": None, "error": None},
        **fields,
    }


REJECTED = _run(
    "REJECTED",
    evaluation={
        "passed": False,
        "reason": "roc_auc 0.9663 is worse than the champion v1 (0.9762) beyond the tolerance 0.0",
        "holdout_metrics": {"roc_auc": 0.9663, "accuracy": 0.9469},
        "holdout_rows": 113,
        "champion": {"version": 1, "comparable": True, "holdout_metrics": {"roc_auc": 0.9762}},
    },
)
SUCCEEDED = _run(
    "SUCCEEDED",
    registered_version=2,
    evaluation={"passed": True, "reason": "passed the gate", "holdout_metrics": {"roc_auc": 0.9663}},
)
FAILED = _run(
    "FAILED",
    failure={"error": "InvalidTrainingRequest", "cause": "schema s3 key 'datasets/schema.json' not found"},
)


def _running(step: str | None) -> dict[str, Any]:
    return {"run_id": RUN_ID, "status": "RUNNING", "execution": {"status": "RUNNING", "current_step": step}}


class FakeClient:
    """The API client's routes, answered from memory; records every call."""

    def __init__(self, **answers: Any) -> None:
        self.answers = answers
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.run_sequence: list[dict[str, Any]] = list(answers.pop("run_sequence", []))

    def _answer(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((name, args, kwargs))
        answer = self.answers.get(name)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def run(self, run_id: str) -> Any:
        self.calls.append(("run", (run_id,), {}))
        return self.run_sequence.pop(0) if len(self.run_sequence) > 1 else self.run_sequence[0]

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self._answer(name, *args, **kwargs)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Invoke `mlops` with a fake client; stdout at 80 columns, as a narrow terminal."""
    monkeypatch.setattr(main, "out", Console(width=80))
    monkeypatch.setattr(runs, "POLL_SECONDS", 0)
    runner = CliRunner()

    def invoke(client: FakeClient | None, *args: str) -> Any:
        if client is not None:
            monkeypatch.setattr(main, "_client", lambda: client)
        return runner.invoke(main.app, list(args), prog_name="mlops")

    return invoke


# ---- users' mistakes: one line on stderr, exit 2 ---------------------------------------------
def _one_line_error(result: Any) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_malformed_instances_json_is_a_one_line_usage_error(cli: Any) -> None:
    client = FakeClient()
    line = _one_line_error(cli(client, "predict", "breast-cancer", "--instances", "[[1, 2"))
    assert "'--instances'" in line and "not valid JSON" in line and "line 1, column 7" in line
    assert client.calls == []  # nothing was sent


def test_missing_instances_file_is_a_one_line_usage_error(cli: Any, tmp_path: Path) -> None:
    line = _one_line_error(cli(FakeClient(), "predict", "m", "--instances", f"@{tmp_path / 'rows.json'}"))
    assert "rows.json" in line and "not found" in line


def test_instances_from_a_file_are_sent(cli: Any, tmp_path: Path) -> None:
    rows = tmp_path / "rows.json"
    rows.write_text("[[1.0, 2.0]]")
    client = FakeClient(predict={"predictions": [1]})
    result = cli(client, "predict", "m", "--instances", f"@{rows}")
    assert result.exit_code == 0, result.output
    assert client.calls == [
        ("predict", ("m", [[1.0, 2.0]]), {"alias": None, "version": None, "entity_ids": None})
    ]


def test_instances_that_are_not_a_list_of_rows_are_refused(cli: Any) -> None:
    line = _one_line_error(cli(FakeClient(), "predict", "m", "--instances", '{"a": 1}'))
    assert "non-empty JSON list of rows" in line


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        ('[{"family": "ridge"', "not valid JSON"),
        ('{"family": "ridge"}', "non-empty JSON list"),
        ("[]", "non-empty JSON list"),
        ('[{"params": {}}]', "non-empty JSON list"),
    ],
)
def test_bad_candidates_are_a_one_line_usage_error(cli: Any, candidates: str, expected: str) -> None:
    client = FakeClient()
    line = _one_line_error(cli(client, "train", "--model", "m", "--dataset", "k", "--candidates", candidates))
    assert "'--candidates'" in line and expected in line
    assert client.calls == []


def test_candidates_file_that_is_missing_is_a_usage_error(cli: Any) -> None:
    line = _one_line_error(
        cli(FakeClient(), "train", "--model", "m", "--dataset", "k", "--candidates", "@no-such.json")
    )
    assert "no-such.json" in line and "not found" in line


def test_typer_own_usage_errors_are_one_line_too(cli: Any) -> None:
    line = _one_line_error(cli(FakeClient(), "predict"))
    assert "Missing argument 'model'" in line and "mlops predict --help" in line
    # predict needs rows: --instances, --entity (by entity id), or both
    line = _one_line_error(cli(FakeClient(), "predict", "m"))
    assert "pass --instances, --entity, or both" in line


def test_a_bad_number_is_a_usage_error(cli: Any) -> None:
    line = _one_line_error(cli(FakeClient(), "models", "promote", "m", "two"))
    assert "'version'" in line and "valid integer" in line


# ---- API errors: the message and every detail item, exit 1 ----------------------------------
def test_policy_conflict_prints_every_failing_rule_and_no_none(cli: Any) -> None:
    body = {
        "message": "promotion policy of 'm': 2 rule(s) fail",
        "code": "conflict",
        "detail": [
            {"rule": "thresholds.roc_auc.min", "value": 0.9663, "limit": 0.99},
            {"rule": "require_staging", "value": "None"},
        ],
    }
    result = cli(FakeClient(promote=ApiError(409, body)), "models", "promote", "m", "2")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "Error: HTTP 409: promotion policy of 'm': 2 rule(s) fail",
        "  - thresholds.roc_auc.min: value 0.9663, limit 0.99",
        '  - require_staging: value "None"',
    ]


def test_validation_error_prints_each_location_and_message(cli: Any) -> None:
    body = {
        "message": "request validation failed",
        "code": "validation_error",
        "detail": [
            {"loc": ["body", "instances", 0], "msg": "expected 10 features, got 2", "type": "shape"},
            {"loc": ["body", "instances", 1, "[x]"], "msg": "not a number", "type": "type"},
        ],
    }
    result = cli(FakeClient(predict=ApiError(422, body)), "predict", "m", "--instances", "[[1, 2], [1]]")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[1:] == [
        "  - body.instances.0: expected 10 features, got 2",
        "  - body.instances.1.[x]: not a number",  # brackets are text, not rich markup
    ]


def test_an_error_without_a_body_says_so_rather_than_none(cli: Any) -> None:
    result = cli(FakeClient(models=ApiError(502, "")), "models", "list")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: HTTP 502: (no message)"


def test_an_unreachable_api_is_one_line_and_exit_1(cli: Any) -> None:
    result = cli(FakeClient(models=requests.ConnectionError("connection refused")), "models", "list")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: cannot reach the API: connection refused"


# ---- train --wait: progress, summary, exit codes --------------------------------------------
TRAIN = ("train", "--model", "breast-cancer", "--dataset", "datasets/breast-cancer/v1/data.csv")


@pytest.mark.parametrize(
    ("final", "code", "verdict"),
    [
        (SUCCEEDED, 0, "  registered  breast-cancer v2 (alias staging)"),
        (REJECTED, 3, "  rejected    roc_auc 0.9663 is worse than the champion v1 (0.9762) beyond the"),
        (FAILED, 4, "  failed      InvalidTrainingRequest: schema s3 key 'datasets/schema.json' not"),
    ],
)
def test_train_wait_exits_with_the_run_outcome_and_prints_a_summary(
    cli: Any, final: dict[str, Any], code: int, verdict: str
) -> None:
    client = FakeClient(
        start_training={"run_id": RUN_ID},
        run_sequence=[_running(None), _running("ValidateData"), _running("TrainCandidate"), final],
    )
    result = cli(client, *TRAIN, "--wait")

    assert result.exit_code == code, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"run {RUN_ID}: {final['status']} in 0.5 s"
    assert any(line.startswith(verdict) for line in lines), result.stdout
    assert len(lines) <= 8  # a summary, not the run record
    # Progress on stderr, one line per step change (stderr is not a terminal here).
    assert result.stderr.splitlines() == [
        f"started training run {RUN_ID}",
        f"run {RUN_ID}: RUNNING",
        f"run {RUN_ID}: ValidateData",
        f"run {RUN_ID}: TrainCandidate",
    ]


def test_train_wait_summary_has_best_candidate_and_metrics(cli: Any) -> None:
    client = FakeClient(start_training={"run_id": RUN_ID}, run_sequence=[REJECTED])
    result = cli(client, *TRAIN, "--wait")
    assert "  best        c000 random_forest (best of 1, validation roc_auc 0.9764)" in result.stdout
    assert "  holdout     roc_auc 0.9663, accuracy 0.9469 (113 rows)" in result.stdout
    assert "  champion    v1: roc_auc 0.9762" in result.stdout


@pytest.mark.parametrize("where", ["before", "after"])
def test_train_wait_json_prints_the_whole_run_and_still_exits_with_its_outcome(cli: Any, where: str) -> None:
    client = FakeClient(start_training={"run_id": RUN_ID}, run_sequence=[REJECTED])
    args = ("--json", *TRAIN, "--wait") if where == "before" else (*TRAIN, "--wait", "--json")
    result = cli(client, *args)
    assert result.exit_code == 3
    assert json.loads(result.stdout) == REJECTED


def test_train_wait_gives_up_after_its_timeout_with_exit_5(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(range(0, 10_000, 100))
    monkeypatch.setattr(runs.time, "monotonic", lambda: float(next(clock)))
    client = FakeClient(start_training={"run_id": RUN_ID}, run_sequence=[_running("TrainCandidate")])
    result = cli(client, *TRAIN, "--wait", "--timeout", "150")
    assert result.exit_code == 5
    assert f"mlops runs wait {RUN_ID}" in result.stderr


def test_train_sends_the_request_with_tolerance(cli: Any) -> None:
    client = FakeClient(start_training={"run_id": RUN_ID})
    result = cli(client, *TRAIN, "--tolerance", "0.02", "--threshold", "0.95", "--promote-to", "staging")
    assert result.exit_code == 0, result.output
    (name, (request,), _), *_ = client.calls
    assert name == "start_training"
    assert request == {
        "model_name": "breast-cancer",
        "dataset_key": "datasets/breast-cancer/v1/data.csv",
        "seed": 42,
        "threshold": 0.95,
        "tolerance": 0.02,
        "promote_to": "staging",
    }
    assert f"mlops runs wait {RUN_ID}" in result.stdout


def test_train_help_documents_the_exit_codes(cli: Any) -> None:
    result = cli(None, "train", "--help")
    text = " ".join(result.stdout.split())
    assert "0 the run succeeded" in text and "3 the run was rejected" in text and "4 the run failed" in text


def test_runs_wait_follows_an_existing_run(cli: Any) -> None:
    result = cli(FakeClient(run_sequence=[_running("Evaluate"), FAILED]), "runs", "wait", RUN_ID)
    assert result.exit_code == 4
    assert f"run {RUN_ID}: FAILED" in result.stdout


def test_a_transient_error_while_waiting_is_retried(cli: Any) -> None:
    client = FakeClient(start_training={"run_id": RUN_ID})
    answers: list[Any] = [ApiError(503, {"message": "throttled"}), _running("Evaluate"), SUCCEEDED]

    def run(run_id: str) -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    client.run = run  # type: ignore[method-assign]
    assert cli(client, *TRAIN, "--wait").exit_code == 0


def test_an_execution_that_ended_without_finishing_its_record_is_failed() -> None:
    aborted = {"status": "RUNNING", "execution": {"status": "ABORTED", "error": None}}
    assert runs.outcome(aborted) == "FAILED"
    assert runs.outcome({"status": "REJECTED", "execution": {"status": "FAILED"}}) == "REJECTED"
    assert runs.outcome(_running("Evaluate")) == "RUNNING"


# ---- --json anywhere, card's --json ---------------------------------------------------------
MODELS = [{"name": "breast-cancer", "latest_version": 2, "owner": "training-run/x", "description": "d"}]


@pytest.mark.parametrize("args", [("--json", "models", "list"), ("models", "list", "--json")])
def test_json_works_before_and_after_the_subcommand(cli: Any, args: tuple[str, ...]) -> None:
    result = cli(FakeClient(models=MODELS), *args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == MODELS


def test_without_json_a_table_is_printed(cli: Any) -> None:
    result = cli(FakeClient(models=MODELS), "models", "list")
    assert result.stdout.splitlines()[0].split() == ["model", "latest", "owner", "description"]


@pytest.mark.parametrize(
    "args", [("models", "card", "m", "2", "--json"), ("--json", "models", "card", "m", "2")]
)
def test_model_card_json_uses_the_shared_flag(cli: Any, args: tuple[str, ...]) -> None:
    client = FakeClient(model_card={"model_name": "m", "version": 2})
    result = cli(client, *args)
    assert result.exit_code == 0
    assert client.calls == [("model_card", ("m", 2, "json"), {})]
    assert json.loads(result.stdout) == {"model_name": "m", "version": 2}


def test_model_card_as_json_still_works_but_is_hidden_and_deprecated(cli: Any) -> None:
    client = FakeClient(model_card={"model_name": "m"})
    result = cli(client, "models", "card", "m", "2", "--as-json")
    assert client.calls == [("model_card", ("m", 2, "json"), {})]
    assert "deprecated" in result.stderr
    assert "--as-json" not in cli(None, "models", "card", "--help").stdout


def test_model_card_is_markdown_by_default(cli: Any) -> None:
    client = FakeClient(model_card="# Model card: m v2\n")
    result = cli(client, "models", "card", "m", "2")
    assert client.calls == [("model_card", ("m", 2, "markdown"), {})]
    assert result.stdout.startswith("# Model card: m v2")


# ---- tables never cut ids -------------------------------------------------------------------
LONG_RUN = "a-model-name-of-forty-characters-long-xx-20261201-084446-6808da"


def test_runs_table_keeps_run_ids_whole_at_80_columns(cli: Any) -> None:
    listed = [
        {
            "run_id": LONG_RUN,
            "status": "REJECTED",
            "started_at": "2026-12-01T08:44:46.677Z",
            "evaluation": {"reason": "roc_auc 0.9663 is worse than the champion v1 (0.9762) beyond 0.0"},
        },
        {
            "run_id": RUN_ID,
            "status": "SUCCEEDED",
            "started_at": "2026-12-01T08:43:52Z",
            "registered_version": 1,
        },
    ]
    result = cli(FakeClient(runs=listed), "runs", "list", "breast-cancer")
    assert result.exit_code == 0
    for run_id in (LONG_RUN, RUN_ID):
        assert any(run_id in line for line in result.stdout.splitlines()), result.stdout


def test_models_show_keeps_run_ids_whole_at_80_columns(cli: Any) -> None:
    version = {
        "version": 1,
        "stage": "Production",
        "run_id": LONG_RUN,
        "metrics": {"roc_auc": 0.97, "accuracy": 0.95, "log_loss": 0.17, "f1": 0.96},
        "created_at": "2026-12-01T08:43:53.805Z",
    }
    client = FakeClient(model={"aliases": [{"alias": "production", "version": 1}]}, versions=[version])
    result = cli(client, "models", "show", "breast-cancer")
    assert any(LONG_RUN in line for line in result.stdout.splitlines()), result.stdout


def test_rows_fit_the_width_by_wrapping_text_columns_only() -> None:
    rows = Rows("run", "reason", ids=("run",))
    rows.add_row(RUN_ID, "roc_auc 0.9663 is worse than the champion v1 (0.9762) beyond the tolerance 0.0")
    stream = io.StringIO()
    rows.print(Console(file=stream, width=80))
    lines = stream.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert lines[1].startswith(RUN_ID + "  ")
    assert len(lines) > 2  # the reason wrapped


def test_rows_that_cannot_fit_are_printed_as_records_with_whole_values() -> None:
    rows = Rows("run", "actor", ids=("run", "actor"))
    rows.add_row(RUN_ID, "arn:aws:sts::123456789012:assumed-role/LocalDeveloper/local")
    stream = io.StringIO()
    rows.print(Console(file=stream, width=80))
    assert stream.getvalue().splitlines() == [
        f"run    {RUN_ID}",
        "actor  arn:aws:sts::123456789012:assumed-role/LocalDeveloper/local",
    ]


def test_table_cells_are_text_not_markup() -> None:
    rows = Rows("reason")
    rows.add_row("[bold]not bold[/bold] features ['a']")
    stream = io.StringIO()
    rows.print(Console(file=stream, width=80))
    assert "[bold]not bold[/bold] features ['a']" in stream.getvalue()


# ---- --version --------------------------------------------------------------------------------
def test_version_prints_the_package_version(cli: Any) -> None:
    result = cli(None, "--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"mlops {metadata.version('serverless-mlops')}"


# ---- predict against an alias or a version ------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), {"alias": None, "version": None, "entity_ids": None}),
        (("--alias", "staging"), {"alias": "staging", "version": None, "entity_ids": None}),
    ],
)
def test_predict_passes_the_alias_or_version_to_the_client(
    cli: Any, args: tuple[str, ...], expected: dict[str, Any]
) -> None:
    client = FakeClient(predict={"model_version": 2})
    result = cli(client, "predict", "m", "--instances", "[[1]]", *args)
    assert result.exit_code == 0, result.output
    assert client.calls == [("predict", ("m", [[1]]), expected)]


def test_predict_by_entity_sends_one_row_per_option(cli: Any) -> None:
    client = FakeClient(predict={"model_version": 3})
    result = cli(client, "predict", "m", "--entity", "tumour_measurements=1", "--entity", "patient_id=2,v=x")
    assert result.exit_code == 0, result.output
    assert client.calls == [
        (
            "predict",
            ("m", None),
            {
                "alias": None,
                "version": None,
                "entity_ids": [{"tumour_measurements": 1}, {"patient_id": 2, "v": "x"}],
            },
        )
    ]
    assert "expected VIEW=ID" in _one_line_error(cli(FakeClient(), "predict", "m", "--entity", "patient_id"))


def test_predict_version_is_passed_as_a_number(cli: Any) -> None:
    client = FakeClient(predict={"model_version": 3})
    cli(client, "predict", "m", "--instances", "[[1]]", "--version", "3")
    assert client.calls == [("predict", ("m", [[1]]), {"alias": None, "version": 3, "entity_ids": None})]


def test_predict_alias_and_version_are_mutually_exclusive(cli: Any) -> None:
    client = FakeClient()
    line = _one_line_error(
        cli(client, "predict", "m", "--instances", "[[1]]", "--alias", "a", "--version", "3")
    )
    assert "'--alias' / '--version'" in line and "mutually exclusive" in line
    assert client.calls == []


class _Sent(Exception):
    pass


@pytest.mark.parametrize(
    ("kwargs", "query"),
    [({}, ""), ({"alias": "staging"}, "?alias=staging"), ({"version": 3}, "?version=3")],
)
def test_predict_sends_the_alias_or_version_as_a_query_parameter(
    monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any], query: str
) -> None:
    client = ApiClient(Target(api_url="https://api.example", api_key="key-1", region="us-east-1"))
    sent: list[requests.PreparedRequest] = []

    def send(request: requests.PreparedRequest, **_: Any) -> Any:
        sent.append(request)
        raise _Sent

    monkeypatch.setattr(client.session, "send", send)
    with pytest.raises(_Sent):
        client.predict("breast-cancer", [[1.0]], **kwargs)
    (request,) = sent
    assert request.method == "POST"
    assert request.url == f"https://api.example/models/breast-cancer/predict{query}"
    assert request.headers["x-api-key"] == "key-1"
    assert json.loads(request.body or b"") == {"instances": [[1.0]]}


def test_the_client_refuses_alias_and_version_together() -> None:
    client = ApiClient(Target(api_url="https://api.example", api_key=None, region="us-east-1"))
    with pytest.raises(ValueError, match="alias or version"):
        client.predict("m", [[1.0]], alias="staging", version=3)


# ---- the feature policy (predictions by entity id) -----------------------------------------------
def test_feature_policy_set_sends_the_policy_and_prints_it(cli: Any) -> None:
    policy = {"missing": "default", "stale": "serve", "defaults": {"mean_radius": 14.1, "flag": True}}
    client = FakeClient(set_feature_policy=policy)
    result = cli(
        client,
        "models",
        "feature-policy",
        "set",
        "m",
        "--missing",
        "default",
        "--stale",
        "serve",
        "--default",
        "mean_radius=14.1",
        "--default",
        "flag=true",
    )
    assert result.exit_code == 0, result.output
    assert client.calls == [("set_feature_policy", ("m", policy), {})]
    assert "missing: default" in result.output and "flag=True, mean_radius=14.1" in result.output
    bad = cli(FakeClient(), "models", "feature-policy", "set", "m", "--default", "mean_radius=big")
    assert bad.exit_code == 2 and "expected INPUT=NUMBER" in bad.output
