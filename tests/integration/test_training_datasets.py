"""Datasets as they come: more than two classes, regression, column names as real CSVs
have them. Through the training steps, the registry and the prediction route (against
moto), and through ``POST /training`` for what is refused before any run starts."""

from __future__ import annotations

from dataclasses import replace
from types import ModuleType
from typing import Any

import boto3
import numpy as np
import pytest
from sklearn import metrics as skm

from mlops_core.registry.service import ModelRegistry
from mlops_core.serving.sessions import LoadedModel
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.requests import InvalidTrainingRequest
from mlops_core.training.splits import split_indices
from mlops_core.training.steps import evaluate, register_model, select_best, train_candidate, validate_data
from mlops_core.training.tracking import RunTracker
from tests.integration.conftest import call
from tests.integration.sklearn_datasets import Dataset, sklearn_dataset
from tests.support import BUCKET, CSV_COLUMN_NAMES, REGION, STATE_MACHINE_ARN, TABLE, body, load_event, upload

CLASSIFIERS = [
    {"family": "logistic_regression", "params": {}},
    {"family": "random_forest", "params": {"n_estimators": 30}},
    {"family": "hist_gradient_boosting", "params": {"max_iter": 30}},
]
REGRESSORS = [
    {"family": "ridge", "params": {}},
    {"family": "random_forest_regressor", "params": {"n_estimators": 30}},
    {"family": "hist_gradient_boosting_regressor", "params": {"max_iter": 30}},
]


def _store() -> ArtifactStore:
    return ArtifactStore(BUCKET)


def _registry() -> ModelRegistry:
    return ModelRegistry(MetadataTable(TABLE), _store())


def _tracker() -> RunTracker:
    return RunTracker(MetadataTable(TABLE))


def _request(dataset: Dataset, run_id: str, **changes: Any) -> dict[str, Any]:
    candidates = CLASSIFIERS if dataset.task == "classification" else REGRESSORS
    return {
        "run_id": run_id,
        "model_name": dataset.name,
        "dataset_key": dataset.data_key,
        "candidates": candidates,
    } | changes


def _train(dataset: Dataset, run_id: str = "run-1", **changes: Any) -> dict[str, Any]:
    """Every step of the workflow in order, as the state machine runs them."""
    for key, data in dataset.files().items():
        upload(key, data)
    store, registry, tracker = _store(), _registry(), _tracker()
    state = validate_data(_request(dataset, run_id, **changes), store, tracker)
    state["results"] = [train_candidate(c, store, tracker) for c in state["candidates"]]
    evaluated = evaluate(select_best(state, tracker), store, registry, tracker)
    assert evaluated["evaluation"]["passed"], evaluated["evaluation"]
    return register_model(evaluated, registry, tracker)


def _predict(inference: ModuleType, model: str, instances: list[Any]) -> dict[str, Any]:
    event = load_event("inference/predict.json", path_params={"name": model}, body={"instances": instances})
    response = call(inference, event)
    assert response["statusCode"] == 200, response["body"]
    return dict(body(response))


def _holdout(dataset: Dataset, seed: int = 42) -> np.ndarray:
    _, _, holdout = split_indices(
        dataset.y, task=dataset.task, seed=seed, holdout_fraction=0.2, validation_fraction=0.2
    )
    return holdout


@pytest.mark.parametrize(
    ("loader", "features"),
    [("wine", None), ("iris", None), ("wine", [f"f{i}" for i in range(13)])],
    ids=["wine", "iris", "wine-plain-names"],
)
def test_multiclass_training_with_default_metric_succeeds(
    aws: None, loader: str, features: list[str] | None
) -> None:
    dataset = sklearn_dataset(loader, features=features)  # type: ignore[arg-type]

    registered = _train(dataset)  # no target_metric: the default (roc_auc)

    assert registered["version"] == 1
    run = _tracker().get_with_candidates("run-1")
    assert run["status"] == "SUCCEEDED"
    assert run["target_metric"] == "roc_auc"
    for candidate in run["candidates"]:
        assert set(candidate["validation_metrics"]) == {"accuracy", "f1", "roc_auc", "log_loss"}
    # The registered holdout metrics are scikit-learn's multiclass metrics of the ONNX outputs.
    version = _registry().get_version(dataset.name, 1)
    stored = _store().get(version.artifact.key, version.artifact.s3_version_id).data
    holdout = _holdout(dataset)
    labels, probabilities = LoadedModel.from_bytes(version, stored).run(dataset.x[holdout].astype(np.float32))
    # float32 outputs: Evaluate (like scikit-learn's estimators) scores rows rescaled to sum to 1.
    p = np.asarray(probabilities, dtype=np.float64)
    y, p, classes = dataset.y[holdout], p / p.sum(axis=1, keepdims=True), [0, 1, 2]
    expected = {
        "accuracy": skm.accuracy_score(y, labels),
        "f1": skm.f1_score(y, labels, average="macro"),
        "roc_auc": skm.roc_auc_score(y, probabilities, multi_class="ovr", average="macro", labels=classes),
        "log_loss": skm.log_loss(y, p, labels=classes),
    }
    assert version.signature.classes == classes
    assert version.metrics.keys() == expected.keys()
    for name, value in expected.items():
        assert version.metrics[name] == pytest.approx(value, abs=1e-9), name


@pytest.mark.parametrize("metric", ["accuracy", "f1", "log_loss"])
def test_multiclass_training_with_each_classification_metric_succeeds(aws: None, metric: str) -> None:
    registered = _train(sklearn_dataset("wine"), target_metric=metric)

    assert registered["version"] == 1
    assert _tracker().get("run-1")["evaluation"]["metric"] == metric


def test_real_csv_column_names_train_register_and_predict(aws: None, inference: ModuleType) -> None:
    wine = sklearn_dataset("wine")
    assert "od280/od315_of_diluted_wines" in wine.features
    iris = sklearn_dataset("iris")
    assert "sepal length (cm)" in iris.features
    unusual = sklearn_dataset("wine", name="unusual-names", features=CSV_COLUMN_NAMES)

    for dataset in (wine, iris, unusual):
        _train(dataset, run_id=f"run-{dataset.name}")
        _registry().set_alias(dataset.name, "production", 1)
        version = _registry().get_version(dataset.name, 1)
        assert version.signature.feature_names == dataset.features

        rows = dataset.x[:5]
        by_name = _predict(
            inference, dataset.name, [dict(zip(dataset.features, r, strict=True)) for r in rows]
        )
        by_position = _predict(inference, dataset.name, rows.tolist())
        assert by_name["predictions"] == by_position["predictions"]
        assert by_name["probabilities"] == by_position["probabilities"]
        assert by_name["predictions"] == dataset.y[:5].tolist()  # the first rows are easy ones


def test_regression_dataset_trains_registers_and_predicts(aws: None, inference: ModuleType) -> None:
    dataset = sklearn_dataset("diabetes")

    _train(dataset)  # the default metric: rmse

    version = _registry().get_version(dataset.name, 1)
    assert set(version.metrics) == {"rmse", "r2"}
    assert version.signature.task == "regression"
    stored = _store().get(version.artifact.key, version.artifact.s3_version_id).data
    holdout = _holdout(dataset)
    predicted, _ = LoadedModel.from_bytes(version, stored).run(dataset.x[holdout].astype(np.float32))
    y, predicted = dataset.y[holdout], np.asarray(predicted, dtype=np.float64).ravel()
    assert version.metrics["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, predicted)), abs=1e-9)
    assert version.metrics["r2"] == pytest.approx(skm.r2_score(y, predicted), abs=1e-9)
    assert 0.3 < version.metrics["r2"] < 0.7  # diabetes is a hard dataset; a model that learned something

    _registry().set_alias(dataset.name, "production", 1)
    rows = dataset.x[holdout[:3]]
    result = _predict(inference, dataset.name, [dict(zip(dataset.features, r, strict=True)) for r in rows])
    np.testing.assert_allclose(result["predictions"], predicted[:3], rtol=1e-6)


# ---- Refused before any run starts (POST /training) and, as a second line, in ValidateData --
def _start(training_api: ModuleType, dataset: Dataset, **changes: Any) -> dict[str, Any]:
    request = {"model_name": dataset.name, "dataset_key": dataset.data_key, "candidates": CLASSIFIERS}
    if dataset.task == "regression":
        request["candidates"] = REGRESSORS
    return call(training_api, load_event("training/start_training.json", body=request | changes))


def _no_execution_started() -> bool:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    return sfn.list_executions(stateMachineArn=STATE_MACHINE_ARN)["executions"] == []


def _upload(dataset: Dataset, **schema_changes: Any) -> None:
    for key, data in dataset.files(**schema_changes).items():
        upload(key, data)


@pytest.mark.parametrize(
    ("loader", "changes", "schema_changes", "message"),
    [
        ("diabetes", {"target_metric": "roc_auc"}, {}, "'roc_auc' is not defined for regression"),
        ("diabetes", {"target_metric": "f1"}, {}, "'f1' is not defined for regression"),
        ("wine", {"target_metric": "rmse"}, {}, "'rmse' is not defined for classification"),
        ("wine", {"target_metric": "auc"}, {}, "unknown target_metric 'auc'"),
        (
            "wine",
            {},
            {"columns": [{"name": "alcohol"}, {"name": "target", "type": "integer", "allowed": [1]}]},
            "target 'target' allows one class",
        ),
        (
            "wine",
            {"candidates": [{"family": "ridge"}]},
            {},
            "'ridge' is a regression family, the dataset is classification",
        ),
    ],
)
def test_metric_undefined_for_the_dataset_is_422_before_any_run_starts(
    training_api: ModuleType,
    loader: str,
    changes: dict[str, Any],
    schema_changes: dict[str, Any],
    message: str,
) -> None:
    dataset = sklearn_dataset(loader)  # type: ignore[arg-type]
    _upload(dataset, **schema_changes)

    response = _start(training_api, dataset, **changes)

    assert response["statusCode"] == 422, response["body"]
    assert message in body(response)["message"]
    assert body(response)["detail"][0]["loc"][0] == "body"
    assert _no_execution_started()
    # ValidateData, given the same request, fails with the same named reason.
    request = _request(dataset, "run-1") | changes
    with pytest.raises(InvalidTrainingRequest, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_data(request, _store(), _tracker())


def test_a_dataset_without_its_schema_is_422_before_any_run_starts(training_api: ModuleType) -> None:
    dataset = sklearn_dataset("wine")
    upload(dataset.data_key, dataset.csv())

    response = _start(training_api, dataset)

    assert response["statusCode"] == 422, response["body"]
    assert body(response)["message"] == f"schema s3 key '{dataset.prefix}/schema.json' not found"
    assert body(response)["detail"][0]["loc"] == ["body", "dataset_key"]
    assert _no_execution_started()


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["", "b"], "columns[0].name: column names cannot be empty"),
        (["a", "a"], "column name 'a' is declared twice"),
        (["a\tb", "c"], "column name 'a\\tb' contains the control character U+0009"),
        (["a\nb", "c"], "column name 'a\\nb' contains the control character U+000A"),
        (["x" * 129, "c"], f"column name '{'x' * 20}…' is 129 characters long; at most 128"),
        ([" padded", "c"], "column name ' padded' starts or ends with whitespace"),
    ],
)
def test_column_names_that_cannot_work_are_422_naming_the_column(
    training_api: ModuleType, names: list[str], message: str
) -> None:
    dataset = sklearn_dataset("wine")
    columns = [{"name": n} for n in names] + [{"name": "target", "type": "integer"}]
    _upload(dataset, columns=columns)

    response = _start(training_api, dataset)

    assert response["statusCode"] == 422, response["body"]
    assert message in body(response)["message"]
    assert "pydantic" not in response["body"] and "Value error" not in response["body"]
    assert _no_execution_started()
    with pytest.raises(InvalidTrainingRequest) as raised:
        validate_data(_request(dataset, "run-1"), _store(), _tracker())
    assert message in str(raised.value)
    assert "pydantic" not in str(raised.value)


def test_a_target_with_one_class_in_the_data_fails_validate_data_by_name(aws: None) -> None:
    dataset = sklearn_dataset("wine")
    columns = [*dataset.schema["columns"][:-1], {"name": "target", "type": "integer"}]
    one_class = replace(dataset, y=np.zeros_like(dataset.y), schema=dataset.schema | {"columns": columns})
    _upload(one_class)

    with pytest.raises(InvalidTrainingRequest, match="the target 'target' has one class"):
        validate_data(_request(one_class, "run-1"), _store(), _tracker())


def test_a_champion_with_other_classes_is_not_compared(aws: None) -> None:
    """A binary champion cannot be scored on three classes: noted, not a KeyError in Evaluate."""
    wine = sklearn_dataset("wine")
    two_classes = wine.y < 2
    binary = replace(wine, x=wine.x[two_classes], y=wine.y[two_classes])
    _train(binary, run_id="run-binary")
    _registry().set_alias(wine.name, "production", 1)

    registered = _train(wine, run_id="run-three-classes")

    assert registered["version"] == 2
    champion = _tracker().get("run-three-classes")["evaluation"]["champion"]
    assert champion == {
        "version": 1,
        "comparable": False,
        "reason": "the champion's classes [0, 1] are not the candidate's [0, 1, 2]",
    }
