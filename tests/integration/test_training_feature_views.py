"""Training on feature views against moto: BuildTrainingSet (its handler fed
events/training/build_training_set.json) joins the sample labels with the sample view's
offline source point-in-time, the steps train on the result, and the run record, the
registered signature and the model card name the views and their versions; POST /training
refuses what it can tell is wrong before starting."""

from __future__ import annotations

import csv
import io
import json
from types import ModuleType
from typing import Any

import pytest

from infra.cli.features import load_definitions
from infra.local.sample_data import (
    FEATURE_SOURCE_KEY,
    LABEL_BEFORE_FEATURES_EVERY,
    LABELS_KEY,
    breast_cancer_features,
    breast_cancer_labels,
)
from mlops_core.features.online import OnlineStore
from mlops_core.features.repository import FeatureViewRepository
from mlops_core.features.service import FeatureStoreService
from mlops_core.registry.model_card import build_model_card, render_markdown
from mlops_core.registry.service import ModelRegistry
from mlops_core.storage.dynamo import KeyedTable, MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.requests import InvalidTrainingRequest
from mlops_core.training.steps import evaluate, register_model, select_best, train_candidate, validate_data
from mlops_core.training.tracking import RunTracker
from tests.integration.conftest import call
from tests.support import (
    BUCKET,
    EVENTS,
    FEATURES_TABLE,
    ROOT,
    TABLE,
    FakeLambdaContext,
    body,
    load_event,
    upload,
)

NOW_MS = 1_796_126_400_000  # 2026-12-01T12:00:00Z
ROWS = 569
DROPPED = ROWS // LABEL_BEFORE_FEATURES_EVERY
VIEW = "tumour_measurements"


def _event(**changes: Any) -> dict[str, Any]:
    return dict(json.loads((EVENTS / "training" / "build_training_set.json").read_text())) | changes


@pytest.fixture
def feature_store(aws: None) -> MetadataTable:
    table = MetadataTable(TABLE)
    upload(FEATURE_SOURCE_KEY, breast_cancer_features(NOW_MS))
    upload(LABELS_KEY, breast_cancer_labels(NOW_MS))
    service = FeatureStoreService(
        FeatureViewRepository(table), OnlineStore(KeyedTable(FEATURES_TABLE)), ArtifactStore(BUCKET)
    )
    for definition in load_definitions([ROOT / "features"]):
        service.apply(definition, actor="test")
    return table


def _build(event: dict[str, Any]) -> dict[str, Any]:
    from functions.training import build_training_set

    return dict(build_training_set.lambda_handler(event, FakeLambdaContext()))


def test_a_run_on_feature_views_trains_on_the_point_in_time_set_and_records_its_lineage(
    feature_store: MetadataTable,
) -> None:
    store, tracker = ArtifactStore(BUCKET), RunTracker(feature_store)
    registry = ModelRegistry(feature_store, store)
    request = _build(_event())

    assert request["dataset_key"].startswith("datasets/training-sets/")
    [ref] = request["feature_view_versions"]
    assert (ref["name"], ref["version"], ref["entity"], ref["entity_type"]) == (
        VIEW,
        1,
        "patient_id",
        "int64",
    )

    state = validate_data(request, store, tracker)
    state["results"] = [train_candidate(c, store, tracker) for c in state["candidates"]]
    state = evaluate(select_best(state, tracker), store, registry, tracker)
    result = register_model(state, registry, tracker)

    run = tracker.get(request["run_id"])
    assert run["status"] == "SUCCEEDED"
    assert [(v["name"], v["version"]) for v in run["feature_views"]] == [(VIEW, 1)]
    report = run["training_set"]["report"]
    assert (report["rows"], report["rows_dropped"], report["rows_kept"]) == (ROWS, DROPPED, ROWS - DROPPED)
    assert report["views"][0]["missing"] == DROPPED and report["views"][0]["expired"] == 0
    assert run["dataset"]["rows"] == ROWS - DROPPED
    # Every label row is in the full set, with its status; the dataset holds the kept ones.
    full = list(csv.DictReader(io.StringIO(store.get(run["training_set"]["training_set_key"]).data.decode())))
    assert len(full) == ROWS
    assert sum(r[f"{VIEW}__status"] == "missing" for r in full) == DROPPED
    assert full[LABEL_BEFORE_FEATURES_EVERY - 1]["mean_radius"] == ""

    version = registry.get_version("breast-cancer-features", result["version"])
    [signature_view] = version.signature.feature_views
    assert (signature_view.view, signature_view.version, signature_view.entity) == (VIEW, 1, "patient_id")
    assert signature_view.inputs == version.signature.feature_names
    card = render_markdown(
        build_model_card(
            registry.get_model("breast-cancer-features"),
            version,
            [],
            tracker.get_with_candidates(run["run_id"]),
            {},
        )
    )
    assert f"- **Feature views:** `{VIEW}` v1" in card
    assert f"{ROWS} label rows, {DROPPED} dropped" in card


def test_a_feature_row_after_the_label_time_never_reaches_the_training_set(
    feature_store: MetadataTable,
) -> None:
    store = ArtifactStore(BUCKET)
    # Patient 1's label is dated 30 s after its row; a newer row 1 s after the label is added.
    source = breast_cancer_features(NOW_MS).decode().splitlines()
    header, first = source[0], source[1].split(",")
    label_ms = NOW_MS - ROWS * 60_000 + 30_000
    late = [first[0], _iso(label_ms + 1000), _iso(label_ms + 1000), *["999.0"] * 10]
    upload("feature-sources/breast-cancer/late.csv", f"{header}\n{','.join(late)}\n".encode())

    request = _build(_event())
    rows = list(csv.DictReader(io.StringIO(store.get(request["dataset_key"]).data.decode())))
    assert rows[0]["mean_radius"] == first[3]
    assert all(r["mean_radius"] != "999.0" for r in rows)


def test_more_missing_features_than_allowed_fail_the_run_with_the_report_on_its_record(
    feature_store: MetadataTable,
) -> None:
    event = _event(training_set={"label_column": "benign", "max_incomplete_fraction": 0.01})
    with pytest.raises(
        InvalidTrainingRequest, match=rf"{DROPPED} of {ROWS} label rows \(1.9%\) lack features"
    ):
        _build(event)
    run = RunTracker(feature_store).get(event["run_id"])
    assert run["training_set"]["report"]["incomplete"] == DROPPED
    assert not list(ArtifactStore(BUCKET).objects(f"datasets/training-sets/{event['run_id']}/"))


def test_policy_fail_refuses_any_incomplete_row(feature_store: MetadataTable) -> None:
    with pytest.raises(InvalidTrainingRequest, match="policy fail"):
        _build(_event(training_set={"label_column": "benign", "on_missing": "fail"}))


def _start(training_api: ModuleType, **changes: Any) -> dict[str, Any]:
    event = load_event("training/start_training_feature_views.json")
    request = json.loads(event["body"]) | changes
    return call(training_api, load_event("training/start_training_feature_views.json", body=request))


def test_post_training_starts_a_run_on_feature_views(
    training_api: ModuleType, feature_store: MetadataTable
) -> None:
    response = _start(training_api)
    assert response["statusCode"] == 202, response["body"]


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"feature_views": ["nope"]}, 422, "feature view(s) not registered: nope"),
        ({"labels": "datasets/none.csv"}, 422, "labels s3 key 'datasets/none.csv' not found"),
        ({"dataset_key": "datasets/breast-cancer/v1/data.csv"}, 422, "not both"),
        ({"training_set": {"label_column": "diagnosis"}}, 422, "lacks the column(s) diagnosis"),
        ({"training_set": {"label_column": "benign", "task": "regression"}}, 422, "dataset is regression"),
        ({"feature_view_versions": []}, 422, "feature_view_versions"),
    ],
)
def test_post_training_refuses_a_bad_run_on_feature_views(
    training_api: ModuleType, feature_store: MetadataTable, change: dict[str, Any], status: int, message: str
) -> None:
    response = _start(training_api, **change)
    assert response["statusCode"] == status, response["body"]
    assert message in json.dumps(body(response)), body(response)


def _iso(at_ms: int) -> str:
    from mlops_core.features.entities import iso_ms

    return iso_ms(at_ms)
