"""`mlops feedback send` as a user meets it: one feedback or a JSON Lines file, labels as typed,
malformed lines refused before anything is sent, predictions not captured yet retried, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from rich.console import Console
from typer.testing import CliRunner

from infra.cli import feedback, main
from infra.cli.client import ApiClient, ApiError, Target

ID = "0193a8f2-51c4-7d3e-8a9b-0c1d2e3f4a5b"


def _ok(entry: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"prediction_id": entry["prediction_id"], "status": 200, "duplicate": False, "reward": 1, **fields}


class FeedbackClient:
    """Answers POST /feedback from a script: for each call, a function of what was sent."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.sent: list[Any] = []

    def _next(self, body: Any) -> Any:
        self.sent.append(body)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer(body)

    def feedback(self, entry: dict[str, Any]) -> Any:
        return self._next(entry)

    def feedback_batch(self, entries: list[dict[str, Any]]) -> Any:
        return self._next(entries)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(main, "out", Console(width=100))
    monkeypatch.setattr(feedback.time, "sleep", lambda _: None)
    runner = CliRunner()

    def invoke(client: FeedbackClient | None, *args: str) -> Any:
        if client is not None:
            monkeypatch.setattr(main, "_client", lambda: client)
        return runner.invoke(main.app, list(args), prog_name="mlops")

    return invoke


@pytest.mark.parametrize(
    ("args", "sent"),
    [
        (("--reward", "1"), {"prediction_id": ID, "reward": 1}),
        (("--label", "1"), {"prediction_id": ID, "label": 1}),
        (("--label", "true"), {"prediction_id": ID, "label": True}),
        (("--label", '"1"'), {"prediction_id": ID, "label": "1"}),
        (("--label", "benign"), {"prediction_id": ID, "label": "benign"}),
        (("--label", "[1]"), {"prediction_id": ID, "label": "[1]"}),
    ],
)
def test_one_feedback_is_sent_as_typed(cli: Any, args: tuple[str, ...], sent: dict[str, Any]) -> None:
    client = FeedbackClient(_ok)
    result = cli(client, "feedback", "send", "--prediction-id", ID, *args)
    assert result.exit_code == 0, result.output
    assert client.sent == [sent]
    assert json.loads(result.stdout)["status"] == 200


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--prediction-id", ID), "exactly one of them"),
        (("--prediction-id", ID, "--reward", "1", "--label", "1"), "exactly one of them"),
        (("--reward", "1"), "--prediction-id"),
        (("--prediction-id", ID, "--reward", "2"), "--reward"),
        (("--prediction-id", "x" * 65, "--reward", "1"), "at most 64 characters"),
    ],
)
def test_a_malformed_feedback_is_a_usage_error_and_sends_nothing(
    cli: Any, args: tuple[str, ...], expected: str
) -> None:
    client = FeedbackClient(_ok)
    result = cli(client, "feedback", "send", *args)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr and "Traceback" not in result.output
    assert client.sent == []


def test_an_api_refusal_prints_its_message_and_exits_1(cli: Any) -> None:
    refused = ApiError(404, {"message": f"unknown or expired prediction '{ID}'", "code": "not_found"})
    result = cli(FeedbackClient(refused), "feedback", "send", "--prediction-id", ID, "--reward", "1")
    assert result.exit_code == 1
    assert "HTTP 404: unknown or expired prediction" in result.stderr


def test_a_prediction_not_captured_yet_is_sent_again(cli: Any) -> None:
    waiting = ApiError(409, {"message": "not captured yet", "code": "conflict"}, retry_after=5)
    client = FeedbackClient(waiting, waiting, _ok)
    result = cli(client, "feedback", "send", "--prediction-id", ID, "--reward", "1")
    assert result.exit_code == 0, result.output
    assert len(client.sent) == 3


def test_without_wait_not_captured_yet_is_an_error(cli: Any) -> None:
    waiting = ApiError(409, {"message": "not captured yet", "code": "conflict"}, retry_after=5)
    client = FeedbackClient(waiting)
    result = cli(client, "feedback", "send", "--prediction-id", ID, "--reward", "1", "--wait", "0")
    assert result.exit_code == 1 and len(client.sent) == 1


def _batch(statuses: dict[str, int]) -> Any:
    def answer(entries: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "results": [
                _ok(e)
                if statuses.get(e["prediction_id"], 200) == 200
                else {
                    "prediction_id": e["prediction_id"],
                    "status": statuses[e["prediction_id"]],
                    "message": "no",
                }
                for e in entries
            ]
        }

    return answer


def _file(tmp_path: Path, lines: list[Any]) -> str:
    path = tmp_path / "feedback.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return str(path)


def test_a_file_is_sent_in_batches_of_100(cli: Any, tmp_path: Path) -> None:
    lines = [{"prediction_id": f"id-{i}", "reward": i % 2} for i in range(150)]
    client = FeedbackClient(_batch({}))
    result = cli(client, "--json", "feedback", "send", "--file", _file(tmp_path, lines))
    assert result.exit_code == 0, result.output
    assert [len(batch) for batch in client.sent] == [100, 50]
    assert client.sent[0][0] == lines[0]
    summary = json.loads(result.stdout)
    assert (summary["recorded"], summary["duplicates"], summary["failed"]) == (150, 0, 0)


def test_a_file_with_failed_items_prints_them_by_line_and_exits_1(cli: Any, tmp_path: Path) -> None:
    lines = [{"prediction_id": "a", "reward": 1}, "", {"prediction_id": "b", "label": 3}]
    client = FeedbackClient(_batch({"b": 422}))
    result = cli(client, "feedback", "send", "--file", _file(tmp_path, lines))
    assert result.exit_code == 1
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [(row[0], row[1], row[2]) for row in rows] == [("1", "a", "200"), ("3", "b", "422")]


def test_only_items_not_captured_yet_are_sent_again(cli: Any, tmp_path: Path) -> None:
    lines = [{"prediction_id": "a", "reward": 1}, {"prediction_id": "b", "reward": 0}]
    client = FeedbackClient(_batch({"b": 409}), _batch({}))
    result = cli(client, "feedback", "send", "--file", _file(tmp_path, lines))
    assert result.exit_code == 0, result.output
    assert [[e["prediction_id"] for e in batch] for batch in client.sent] == [["a", "b"], ["b"]]


def test_malformed_lines_are_named_and_nothing_is_sent(cli: Any, tmp_path: Path) -> None:
    lines = [{"prediction_id": "a", "reward": 1}, "{not json", {"prediction_id": "c", "reward": 0.5}]
    client = FeedbackClient(_batch({}))
    result = cli(client, "feedback", "send", "--file", _file(tmp_path, lines))
    assert result.exit_code == 2
    assert "line 2: not JSON" in result.stderr and "line 3: reward: a reward is 0 or 1" in result.stderr
    assert client.sent == []


def test_a_file_and_a_prediction_id_together_are_refused(cli: Any, tmp_path: Path) -> None:
    path = _file(tmp_path, [{"prediction_id": "a", "reward": 1}])
    result = cli(FeedbackClient(_batch({})), "feedback", "send", "--file", path, "--reward", "1")
    assert result.exit_code == 2 and "--file alone" in result.stderr


def test_the_client_posts_feedback_with_the_api_key_and_reads_retry_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = ApiClient(Target(api_url="https://api.example", api_key="key-1", region="us-east-1"))
    sent: list[requests.PreparedRequest] = []

    def send(request: requests.PreparedRequest, **_: Any) -> Any:
        sent.append(request)
        response = requests.Response()
        response.status_code = 409
        response.headers["Retry-After"] = "5"
        response._content = b'{"message": "not captured yet", "code": "conflict"}'
        return response

    monkeypatch.setattr(client.session, "send", send)
    with pytest.raises(ApiError) as refused:
        client.feedback_batch([{"prediction_id": ID, "reward": 1}])
    (request,) = sent
    assert (request.method, request.url) == ("POST", "https://api.example/feedback")
    assert request.headers["x-api-key"] == "key-1"
    assert json.loads(request.body or b"") == {"feedback": [{"prediction_id": ID, "reward": 1}]}
    assert (refused.value.status, refused.value.retry_after) == (409, 5.0)
