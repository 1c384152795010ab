"""The console function fed the sample events in events/console/, against moto, with a world
written by the domains' own services and a real drift run: every page renders its data,
links call the function itself (widgets) or stay under /_local/console/ (local), what users
typed is escaped, and bad requests are pages that say what is wrong."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from types import ModuleType
from typing import Any, ClassVar

import pytest

from mlops_core.registry.service import ModelRegistry
from tests.integration.console_world import CANDIDATES, DEMO_RUN, HOSTILE, build_world
from tests.support import FakeLambdaContext, load_event

ARN = FakeLambdaContext().invoked_function_arn


@pytest.fixture
def console(aws: None) -> ModuleType:
    from functions.console import handler

    return handler


@pytest.fixture
def world(aws: None, registry: ModelRegistry) -> dict[str, Any]:
    from functions.drift import handler as drift

    return build_world(registry, drift=drift)


def widget(console: ModuleType, name: str, **changes: Any) -> str:
    event = load_event(f"console/{name}.json")
    event.update(changes)
    html = console.lambda_handler(event, FakeLambdaContext())
    assert isinstance(html, str)
    return html


class _Checker(HTMLParser):
    """Well-formed enough: every opened non-void element is closed, no script, no handlers."""

    VOID: ClassVar[set[str]] = {
        "br",
        "hr",
        "img",
        "meta",
        "link",
        "input",
        "line",
        "circle",
        "rect",
        "polyline",
        "path",
    }

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.problems.append("a script element")
        self.problems.extend(f"handler attribute {name}" for name, _ in attrs if name.startswith("on"))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.problems.extend(f"handler attribute {name}" for name, _ in attrs if name.startswith("on"))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
            return
        self.stack.pop()


def assert_safe(html: str) -> None:
    checker = _Checker()
    checker.feed(html)
    checker.close()
    assert checker.problems == [], checker.problems[:5]
    assert checker.stack == [], checker.stack
    assert HOSTILE not in html


def test_the_models_page_lists_the_model_with_its_aliases_and_escapes_its_description(
    console: ModuleType, world: dict[str, Any]
) -> None:
    html = widget(console, "widget_models")

    assert_safe(html)
    assert "breast-cancer" in html
    assert f"production → v{world['v1']}" in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    # A link to the model page is a call of this very function, replacing the widget.
    actions = re.findall(
        r'<cwdb-action action="call" display="widget" endpoint="([^"]+)">([^<]+)</cwdb-action>', html
    )
    assert actions and {endpoint for endpoint, _ in actions} == {ARN}
    assert {"model": "breast-cancer", "page": "model"} in [json.loads(_unescape(a)) for _, a in actions]


def test_the_model_page_shows_versions_stages_aliases_and_the_production_card(
    console: ModuleType, world: dict[str, Any]
) -> None:
    html = widget(console, "widget_model")

    assert_safe(html)
    assert f"v{world['v1']}" in html and f"v{world['v2']}" in html
    assert "Model card: v1" in html  # production's card by default
    assert world["training_run"] in html
    assert "mean_radius" in html  # the signature's features


def test_the_model_page_shows_the_card_of_the_version_asked_for(
    console: ModuleType, world: dict[str, Any]
) -> None:
    html = widget(console, "widget_model", version=world["v2"])

    assert f"Model card: v{world['v2']}" in html
    assert DEMO_RUN in html


def test_the_runs_page_lists_every_run_with_its_gate_metric_and_a_chart(
    console: ModuleType, world: dict[str, Any]
) -> None:
    html = widget(console, "widget_runs")

    assert_safe(html)
    assert DEMO_RUN in html and "breast-cancer-rejected" in html
    assert "REJECTED" in html and "SUCCEEDED" in html
    assert "0.995" in html and "0.85" in html
    assert html.count("<circle") >= 2  # one point per run


def test_the_run_page_lists_every_candidate_side_by_side_with_steps_dataset_and_chart(
    console: ModuleType, world: dict[str, Any]
) -> None:
    html = widget(console, "widget_run")

    assert_safe(html)
    for candidate in CANDIDATES:
        assert candidate["candidate_id"] in html
        assert f"{candidate['roc_auc']:.4g}" in html
    for step in ("ValidateData", "TrainCandidate", "SelectBest", "Evaluate", "RegisterModel"):
        assert step in html
    assert "4 of 4 candidates trained" in html
    assert "ab" * 32 in html  # the dataset's sha256
    assert "&lt;script&gt;" in html  # a hyper-parameter value, escaped
    assert html.count("<rect") >= 2 * len(CANDIDATES)  # a bar per candidate and metric
    # Sorted by the gate metric, best first: c2 0.995, c3 0.993, c0 0.991, c1 0.987.
    rows = re.findall(r"<tr[^>]*><td>(c\d)", html)
    assert rows == ["c2", "c3", "c0", "c1"]


def test_the_run_page_sorts_by_a_parameter_ascending(console: ModuleType, world: dict[str, Any]) -> None:
    html = widget(console, "widget_run", sort="metric:accuracy", order="asc")

    assert re.findall(r"<tr[^>]*><td>(c\d)", html) == ["c1", "c0", "c3", "c2"]


def test_an_unknown_sort_column_is_a_page_that_names_the_columns(
    console: ModuleType, world: dict[str, Any]
) -> None:
    html = widget(console, "widget_run", sort="metric:nope")

    assert "cannot sort candidates by &#x27;metric:nope&#x27;" in html
    assert "metric:roc_auc" in html


def test_the_routing_page_shows_traffic_share_and_posteriors_and_escapes_the_reason(
    console: ModuleType, world: dict[str, Any]
) -> None:
    html = widget(console, "widget_routing")

    assert_safe(html)
    assert "split: v1 80%, v2 20%" in html
    assert "v1: 80.0%" in html and "v2: 20.0%" in html  # share of predictions (tooltips)
    # Beta(1 + 30, 1 + 10) and Beta(1 + 9, 1 + 1): posterior means 31/42 and 10/12.
    assert "0.7381" in html and "0.8333" in html
    assert "canary &lt;script&gt;" in html


def test_the_drift_page_shows_the_history_and_the_latest_reports_plots(
    console: ModuleType, world: dict[str, Any]
) -> None:
    html = widget(console, "widget_drift")

    assert_safe(html)
    assert world["drift"]["status"] == "drift"
    assert world["drift"]["run_id"] in html
    assert "Drift report: breast-cancer" in html
    for feature in ("mean_radius", "mean_texture", "mean_smoothness"):
        assert feature in html
    assert html.count("<svg") >= 10


def test_the_batch_page_lists_the_models_recorded_jobs_newest_first(
    console: ModuleType, world: dict[str, Any]
) -> None:
    from mlops_core.batch.entities import BatchJob
    from mlops_core.batch.repository import BatchJobRepository
    from mlops_core.storage.dynamo import MetadataTable
    from tests.support import TABLE

    assert "No batch jobs yet." in widget(console, "widget_batch")
    jobs = BatchJobRepository(MetadataTable(TABLE))
    common = {"input_prefix": "batch-input/x/", "output_prefix": "batch/j/"}
    jobs.create(
        BatchJob(
            job_id="batch-20261201T100000Z-aaaaaaaa", model_name="breast-cancer", version=1,
            created_at="2026-12-01T10:00:00.000Z", status="succeeded", rows=1000, rows_failed=10, **common,
        )
    )  # fmt: skip
    jobs.create(
        BatchJob(
            job_id="batch-20261201T110000Z-bbbbbbbb", model_name="breast-cancer", version=1,
            created_at="2026-12-01T11:00:00.000Z", status="failed", error="<no input>", **common,
        )
    )  # fmt: skip
    jobs.create(
        BatchJob(
            job_id="batch-20261201T120000Z-cccccccc", model_name="another-model", version=3,
            created_at="2026-12-01T12:00:00.000Z", **common,
        )
    )  # fmt: skip

    html = widget(console, "widget_batch")
    assert_safe(html)
    newer, older = (
        html.index("batch-20261201T110000Z-bbbbbbbb"),
        html.index("batch-20261201T100000Z-aaaaaaaa"),
    )
    assert newer < older
    assert "10 row(s) refused" in html and "&lt;no input&gt;" in html and "<no input>" not in html
    assert "cccccccc" not in html  # another model's job


def test_describe_answers_the_widgets_documentation(console: ModuleType) -> None:
    answer = console.lambda_handler(load_event("console/widget_describe.json"), FakeLambdaContext())

    assert "page: models | model | runs | run | routing | drift | batch" in answer


def test_the_local_event_answers_a_document_with_links_under_the_local_prefix(
    console: ModuleType, world: dict[str, Any]
) -> None:
    answer = console.lambda_handler(load_event("console/local_runs.json"), FakeLambdaContext())

    assert answer["statusCode"] == 200
    assert answer["headers"]["Content-Type"].startswith("text/html")
    html = answer["body"]
    assert html.startswith("<!DOCTYPE html>")
    assert_safe(html)
    assert "cwdb-action" not in html
    hrefs = re.findall(r'href="([^"]+)"', html)
    assert hrefs and all(h.startswith("/_local/console/?page=") for h in hrefs)
    # Ascending by the gate metric: the rejected run (0.85) first.
    assert html.index("breast-cancer-rejected") < html.index(DEMO_RUN)


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"page": "nope"}, 400, "page: Input should be"),
        ({"page": "runs"}, 400, "the runs page needs a model"),
        ({"page": "model", "model": "no-such-model"}, 404, "model &#x27;no-such-model&#x27; not found"),
        ({"page": "model", "model": "<b>x</b>"}, 400, "model: String should match pattern"),
        ({"page": "run", "run": "missing-run"}, 404, "run &#x27;missing-run&#x27; not found"),
        ({"page": "model", "model": "breast-cancer", "version": "zero"}, 400, "version: Input should be"),
    ],
)
def test_bad_requests_are_pages_that_say_what_is_wrong(
    console: ModuleType, world: dict[str, Any], params: dict[str, Any], status: int, message: str
) -> None:
    answer = console.lambda_handler({"local_console": {"params": params}}, FakeLambdaContext())

    assert answer["statusCode"] == status
    assert message in answer["body"], answer["body"][-600:]
    assert "<b>x</b>" not in answer["body"]
    assert "Traceback" not in answer["body"]


def _unescape(text: str) -> str:
    import html

    return html.unescape(text)


def test_a_models_runs_are_read_with_only_the_fields_the_runs_page_shows(world: dict[str, Any]) -> None:
    from mlops_core.console.pages import RUN_SUMMARY_FIELDS
    from mlops_core.storage.dynamo import MetadataTable
    from mlops_core.training.tracking import RunTracker
    from tests.support import TABLE

    runs = RunTracker(MetadataTable(TABLE)).list_for_model("breast-cancer", attributes=RUN_SUMMARY_FIELDS)

    assert {r["run_id"] for r in runs} == {DEMO_RUN, "breast-cancer-rejected"}
    assert all(set(r) <= set(RUN_SUMMARY_FIELDS) for r in runs)
    assert all("request" not in r and "evaluation" in r for r in runs)
