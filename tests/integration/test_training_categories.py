"""Text in a dataset: a text target is a classifier over its values, text features are
categories. Every family trains on them (one-hot for the linear ones, the code for the trees)
and exports what scikit-learn predicts; the prediction, feedback, batch and retraining paths
take and give the names, while the graph, the capture and the counts keep codes.

Found by trying the textbook CSVs (iris with species names, penguins with islands): `mlops
datasets upload` refused them ("every column must be numeric")."""

from __future__ import annotations

import io
from types import ModuleType
from typing import Any

import numpy as np
import onnxruntime
import pytest

from infra.cli.datasets import PreparedDataset, prepare
from mlops_core.batch.rows import parse_csv, parse_jsonl
from mlops_core.batch.scoring import score_object
from mlops_core.data.schema import load_csv
from mlops_core.registry.service import ModelRegistry
from mlops_core.retraining.dataset import build_dataset, retraining_schema
from mlops_core.serving.capture import CAPTURE_MARKER
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.estimators import FAMILIES, build
from mlops_core.training.export import export_sklearn
from mlops_core.training.steps import evaluate, register_model, select_best, train_candidate, validate_data
from mlops_core.training.tracking import RunTracker
from tests.integration.conftest import call
from tests.support import BUCKET, FakeLambdaContext, body, load_event, subscription_event, upload

SPECIES = ["Adelie", "Chinstrap", "Gentoo"]
ISLANDS = ["Biscoe", "Dream", "Torgersen"]
FEATURES = ["island", "bill_length_mm", "sex"]


def _csv(rows: int = 300, seed: int = 5, *, task: str = "classification") -> bytes:
    """Penguins-like rows: the species follows the bill length and the island; 'sex' is
    blank-ish (NA) in about 10 % of the rows."""
    rng = np.random.default_rng(seed)
    out = io.StringIO()
    out.write("species,island,bill_length_mm,sex,body_mass_g\n")
    for _ in range(rows):
        species = int(rng.integers(0, 3))
        island = species if rng.random() < 0.7 else int(rng.integers(0, 3))
        bill = (38.0, 48.0, 46.0)[species] + rng.normal(0, 1.5)
        sex = "NA" if rng.random() < 0.1 else str(rng.choice(["female", "male"]))
        mass = 3500 + 800 * (species == 2) + 300 * (sex == "male") + rng.normal(0, 100)
        out.write(f"{SPECIES[species]},{ISLANDS[island]},{bill:.1f},{sex},{mass:.0f}\n")
    return out.getvalue().encode()


def _prepared(task: str = "classification") -> PreparedDataset:
    if task == "classification":
        return prepare(_csv(), name="penguins", version="v1", target="species", drop=["body_mass_g"])
    return prepare(_csv(), name="penguin-mass", version="v1", target="body_mass_g", drop=["species"])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_exports_category_features_as_scikit_learn_predicts_them(family: str) -> None:
    task = FAMILIES[family][1]
    prepared = _prepared(task)
    table = load_csv(prepared.data, prepared.schema)
    columns = {c.name: c for c in prepared.schema.columns}
    target = prepared.schema.target
    features = [c.name for c in prepared.schema.features]
    categories = [columns[f].categories for f in features]
    nullable = [columns[f].nullable for f in features]
    x, y = table.matrix(features), table.columns[target]
    if task == "classification":
        y = y.astype(np.int64)
    coded = {i: len(c) for i, c in enumerate(categories) if c is not None}
    params = FAMILIES[family][0]().model_dump()
    estimator = build(family, params, seed=1, missing_values=True, categories=coded, nullable=nullable)
    estimator.fit(x, y)
    onnx_bytes, signature = export_sklearn(
        estimator,
        features,
        feature_types=[columns[f].type for f in features],
        nullable=nullable,
        categories=categories,
        class_names=columns[target].categories,
    )

    session = onnxruntime.InferenceSession(onnx_bytes)
    outputs = session.run(None, {"input": x.astype(np.float32)})
    if task == "classification":
        assert (outputs[0] == estimator.predict(x)).all()
        np.testing.assert_allclose(outputs[1], estimator.predict_proba(x), atol=1e-4)
        assert (signature.classes, signature.class_names) == ([0, 1, 2], SPECIES)
    else:
        np.testing.assert_allclose(outputs[0].ravel(), estimator.predict(x), rtol=1e-4, atol=1e-2)
        assert signature.class_names is None
    assert [(f.name, f.type, f.categories) for f in signature.features if f.type == "category"] == [
        ("island", "category", ISLANDS),
        ("sex", "category", ["female", "male"]),
    ]


def test_the_linear_families_one_hot_encode_and_learn_what_a_code_cannot_say() -> None:
    """An island in the middle of the code order that means the opposite of its neighbours:
    a linear model on the code cannot fit it, one-hot can."""
    rng = np.random.default_rng(0)
    island = rng.integers(0, 3, 600).astype(np.float64)
    x = np.column_stack([island, rng.normal(size=600)])
    y = (island == 1).astype(np.int64)
    params = FAMILIES["logistic_regression"][0]().model_dump()
    one_hot = build("logistic_regression", params, 1, categories={0: 3}, nullable=[False, False])
    on_codes = build("logistic_regression", params, 1)
    assert one_hot.fit(x, y).score(x, y) == 1.0
    assert on_codes.fit(x, y).score(x, y) < 0.8


@pytest.fixture
def services(aws: None) -> tuple[ArtifactStore, ModelRegistry, RunTracker]:
    from functions.registry import handler

    return handler.registry.store, handler.registry, RunTracker(handler.registry.repository.table)


@pytest.fixture
def penguins(services: tuple[ArtifactStore, ModelRegistry, RunTracker]) -> PreparedDataset:
    """The dataset trained by the workflow's steps (the task's default candidates) and promoted."""
    store, registry, tracker = services
    prepared = _prepared()
    for key, data in prepared.files.items():
        upload(key, data)
    request: dict[str, Any] = {
        "run_id": "run-penguins",
        "model_name": "penguins",
        "dataset_key": prepared.dataset_key,
    }
    state = validate_data(request, store, tracker)
    state["results"] = [train_candidate(c, store, tracker) for c in state["candidates"]]
    state = evaluate(select_best(state, tracker), store, registry, tracker)
    assert state["evaluation"]["passed"], state["evaluation"]
    registered = register_model(state, registry, tracker)
    registry.set_alias("penguins", "production", registered["version"])
    return prepared


def _predict(inference: ModuleType, instances: list[Any]) -> dict[str, Any]:
    event = load_event(
        "inference/predict.json", body={"instances": instances}, path_params={"name": "penguins"}
    )
    return call(inference, event)


def test_a_trained_model_takes_category_names_and_answers_class_names(
    penguins: PreparedDataset,
    inference: ModuleType,
    services: tuple[ArtifactStore, ModelRegistry, RunTracker],
) -> None:
    signature = services[1].resolve_alias("penguins", "production").signature
    assert (signature.classes, signature.class_names) == ([0, 1, 2], SPECIES)

    answered = _predict(
        inference,
        [
            {"island": "Dream", "bill_length_mm": 48.5, "sex": "male"},
            ["Biscoe", 37.0, None],  # sex is nullable: it had NA in training
        ],
    )

    assert answered["statusCode"] == 200, answered["body"]
    result = body(answered)
    assert result["classes"] == SPECIES
    assert result["predictions"] == ["Chinstrap", "Adelie"]
    assert all(len(p) == 3 for p in result["probabilities"])


@pytest.mark.parametrize(
    ("instance", "loc", "kind", "message"),
    [
        (
            {"island": "Mars", "bill_length_mm": 40.0, "sex": "male"},
            "island",
            "category",
            "'island' must be one of the model's categories (Biscoe, Dream, Torgersen), got 'Mars'",
        ),
        ({"island": 1, "bill_length_mm": 40.0, "sex": "male"}, "island", "string_type", "got int"),
        (
            {"island": "Dream", "bill_length_mm": "long", "sex": "male"},
            "bill_length_mm",
            "number_type",
            "got string",
        ),
        ({"island": None, "bill_length_mm": 40.0, "sex": "male"}, "island", "missing_value", "is null"),
    ],
)
def test_a_value_a_category_feature_does_not_have_is_a_422_at_its_location(
    penguins: PreparedDataset,
    inference: ModuleType,
    instance: dict[str, Any],
    loc: str,
    kind: str,
    message: str,
) -> None:
    refused = _predict(inference, [instance])

    assert refused["statusCode"] == 422, refused["body"]
    problem = body(refused)["detail"][0]
    assert (problem["loc"], problem["type"]) == (["body", "instances", 0, loc], kind)
    assert message in problem["msg"]
    assert BUCKET not in refused["body"]


def test_feedback_takes_the_class_name_and_counts_it_as_its_class(
    penguins: PreparedDataset, inference: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    from functions.capture import handler as capture
    from functions.feedback import handler as feedback

    feedback.service._signatures.clear()
    answered = body(_predict(inference, [{"island": "Dream", "bill_length_mm": 48.5, "sex": "male"}] * 3))
    lines = [line for line in capsys.readouterr().out.splitlines() if f'"{CAPTURE_MARKER}"' in line]
    capture.lambda_handler(subscription_event(lines), FakeLambdaContext())
    ids = answered["prediction_ids"]

    def send(payload: dict[str, Any]) -> dict[str, Any]:
        return call(feedback, load_event("feedback/label.json", body=payload))

    right, wrong = (
        send({"prediction_id": ids[0], "label": "Chinstrap"}),
        send({"prediction_id": ids[1], "label": "Adelie"}),
    )
    assert right["statusCode"] == 200, right["body"]
    assert (body(right)["label"], body(right)["prediction"], body(right)["reward"]) == (
        "Chinstrap",
        "Chinstrap",
        1,
    )
    assert (body(wrong)["label"], body(wrong)["reward"]) == ("Adelie", 0)

    again, changed = (
        send({"prediction_id": ids[0], "label": "Chinstrap"}),
        send({"prediction_id": ids[0], "label": "Dream"}),
    )
    assert body(again)["duplicate"] is True and body(again)["matches_original"] is True
    assert body(again)["label"] == "Chinstrap"
    assert body(changed)["matches_original"] is False

    unknown = send({"prediction_id": ids[2], "label": 2})  # the code is not a name: callers use names
    assert unknown["statusCode"] == 422, unknown["body"]
    assert "one of the model's classes: 'Adelie', 'Chinstrap', 'Gentoo'" in unknown["body"]


def test_batch_rows_take_category_names_in_csv_and_json_lines_and_write_class_names(
    penguins: PreparedDataset, services: tuple[ArtifactStore, ModelRegistry, RunTracker]
) -> None:
    from functions.inference import handler

    version = services[1].resolve_alias("penguins", "production")
    model = handler.predictor.load(version)
    signature = version.signature
    csv_object = (
        b"id,sex,bill_length_mm,island\n"
        b'1,male,48.5,"Dream"\n'
        b"2,NA,37.0, Biscoe \n"
        b"3,male,40.0,Mars\n"
        b"4,male,forty,Dream\n"
        b"5,male,40.0\n"
    )
    parsed = parse_csv(csv_object, signature)
    assert parsed.lines.tolist() == [2, 3]
    assert [(row.line, row.reason) for row in parsed.bad] == [
        (4, "field 4: 'island' must be one of the model's categories (Biscoe, Dream, Torgersen), got 'Mars'"),
        (5, "field 3 is not a number: 'forty'"),
        (6, "expected 4 fields, got 3"),
    ]
    headerless = parse_csv(b"Dream,48.5,male\nBiscoe,37.0,NA\n", signature)
    np.testing.assert_array_equal(headerless.matrix, parsed.matrix)
    jsonl = parse_jsonl(
        b'{"island": "Dream", "bill_length_mm": 48.5, "sex": "male"}\n'
        b'["Biscoe", 37.0, null]\n[1, 2.0, "male"]\n',
        signature,
    )
    np.testing.assert_array_equal(jsonl.matrix, parsed.matrix)
    assert [row.reason for row in jsonl.bad] == ["'island' must be a string (a category), got int"]

    scored = score_object(model, csv_object, "csv")
    lines = scored.predictions.decode().splitlines()
    assert (
        lines[0]
        == "line,prediction,probability_Adelie,probability_Chinstrap,probability_Gentoo,model_version"
    )
    assert [line.split(",")[1] for line in lines[1:]] == ["Chinstrap", "Adelie"]


def test_a_retraining_dataset_writes_category_names_that_load_back_as_the_same_codes(
    penguins: PreparedDataset, services: tuple[ArtifactStore, ModelRegistry, RunTracker]
) -> None:
    from mlops_core.feedback.entities import FeedbackRecord
    from mlops_core.serving.capture import CapturedPrediction

    schema = retraining_schema(penguins.schema, FEATURES, "penguins-retraining")
    training = load_csv(penguins.data, penguins.schema)
    captured = CapturedPrediction.model_validate(
        {
            "prediction_id": "p-1",
            "model_name": "penguins",
            "model_version": 1,
            "at_ms": 1,
            "features": FEATURES,
            "inputs": [2.0, 41.5, None],
            "prediction": 0,
            "alias": "production",
            "probabilities": [0.9, 0.05, 0.05],
        }
    )
    label = FeedbackRecord(
        prediction_id="p-1",
        model_name="penguins",
        model_version=1,
        reward=1.0,
        label=0,
        prediction=0,
        at_ms=2,
        prediction_at_ms=1,
    )

    built = build_dataset(schema, [captured], [label], training=training)

    assert built.data.decode().splitlines()[-1] == "Torgersen,41.5,,Adelie"
    reloaded = load_csv(built.data, built.schema)
    assert reloaded.rows == training.rows + 1
    for name in ("species", "island", "sex"):
        np.testing.assert_array_equal(reloaded.columns[name][:-1], training.columns[name])


# ---- through the feature store: a text feature of a view, text labels -------------------------------
PENGUIN_VIEW = "penguin_traits"
VIEW_NOW_MS = 1_796_126_400_000  # 2026-12-01T12:00:00Z


def _iso(at_ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(at_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_views_text_feature_trains_as_a_category_and_serves_by_entity_id(
    services: tuple[ArtifactStore, ModelRegistry, RunTracker], inference: ModuleType
) -> None:
    """A view with a string feature and labels that are text: BuildTrainingSet makes the
    feature a category of the joined values and the label a text target; the registered
    version reads the view, and a prediction by entity id answers the class name."""
    from functions.materialize import handler as materialize
    from functions.training import build_training_set
    from mlops_core.features.entities import FeatureViewDefinition
    from tests.support import FakeLambdaContext as Context

    store, registry, tracker = services
    rng = np.random.default_rng(11)
    rows = 240
    species = rng.integers(0, 3, rows)
    island = np.where(rng.random(rows) < 0.8, species, rng.integers(0, 3, rows))
    bill = np.asarray([(38.0, 48.0, 46.0)[s] for s in species]) + rng.normal(0, 1.5, rows)
    source = io.StringIO()
    source.write("penguin_id,event_time,created_at,island,bill_length_mm\n")
    labels = io.StringIO()
    labels.write("penguin_id,event_timestamp,species\n")
    for i in range(rows):
        at = _iso(VIEW_NOW_MS - (rows - i) * 60_000)
        source.write(f"{i + 1},{at},{at},{ISLANDS[island[i]]},{bill[i]:.2f}\n")
        labels.write(f"{i + 1},{_iso(VIEW_NOW_MS - (rows - i) * 60_000 + 30_000)},{SPECIES[species[i]]}\n")
    upload("feature-sources/penguins/part-0.csv", source.getvalue().encode())
    upload("datasets/penguins/labels/labels.csv", labels.getvalue().encode())
    saved = materialize.service.clock
    materialize.service.clock = lambda: VIEW_NOW_MS / 1000 + 60
    try:
        view = FeatureViewDefinition.model_validate(
            {
                "name": PENGUIN_VIEW,
                "owner": "tests",
                "entity": {"name": "penguin_id", "type": "int64"},
                "source": {
                    "format": "csv",
                    "path": "feature-sources/penguins/",
                    "event_timestamp": "event_time",
                    "created_timestamp": "created_at",
                },
                "ttl": "30d",
                "features": [
                    {"name": "island", "type": "string"},
                    {"name": "bill_length_mm", "type": "float64"},
                ],
            }
        )
        materialize.service.apply(view, actor="tests")
        assert materialize.service.materialize(PENGUIN_VIEW, trigger="on_demand").items_written == rows
    finally:
        materialize.service.clock = saved

    request = build_training_set.lambda_handler(
        {
            "run_id": "run-penguin-view",
            "model_name": "penguins-by-id",
            "labels": "datasets/penguins/labels/labels.csv",
            "feature_views": [PENGUIN_VIEW],
            "training_set": {"label_column": "species", "task": "classification"},
        },
        Context(),
    )
    state = validate_data(request, store, tracker)
    state["results"] = [train_candidate(c, store, tracker) for c in state["candidates"]]
    state = evaluate(select_best(state, tracker), store, registry, tracker)
    assert state["evaluation"]["passed"], state["evaluation"]
    version = register_model(state, registry, tracker)["version"]
    registry.set_alias("penguins-by-id", "production", version)
    signature = registry.get_version("penguins-by-id", version).signature
    assert signature.class_names == SPECIES
    assert [(f.name, f.categories) for f in signature.features] == [
        ("island", ISLANDS),
        ("bill_length_mm", None),
    ]
    assert signature.feature_views[0].view == PENGUIN_VIEW

    saved_clock = inference.entity_features.clock
    inference.entity_features.clock = lambda: VIEW_NOW_MS / 1000 + 3600
    try:
        by_entity = call(
            inference,
            load_event(
                "inference/predict_by_entity.json",
                body={"entity_ids": [{PENGUIN_VIEW: 1}, {PENGUIN_VIEW: 2}]},
                path_params={"name": "penguins-by-id"},
            ),
        )
        direct = call(
            inference,
            load_event(
                "inference/predict.json",
                body={
                    "instances": [
                        [ISLANDS[island[0]], round(bill[0], 2)],
                        [ISLANDS[island[1]], round(bill[1], 2)],
                    ]
                },
                path_params={"name": "penguins-by-id"},
            ),
        )
    finally:
        inference.entity_features.clock = saved_clock
    assert by_entity["statusCode"] == 200, by_entity["body"]
    assert body(by_entity)["classes"] == SPECIES
    assert body(by_entity)["predictions"] == body(direct)["predictions"]
    assert body(by_entity)["probabilities"] == body(direct)["probabilities"]
    assert set(body(by_entity)["predictions"]) <= set(SPECIES)
