"""A run on feature views through the template's state machine (moto's interpreter, the real
handlers in-process): TrainingData chooses BuildTrainingSet, the run trains on the
point-in-time set, and its record and registered signature name the view and its version."""

from __future__ import annotations

import json

import pytest
from synthesized_app import SynthesizedApp

from infra.cli.features import load_definitions
from infra.local.sample_data import (
    FEATURE_SOURCE_KEY,
    LABEL_BEFORE_FEATURES_EVERY,
    LABELS_KEY,
    breast_cancer_features,
    breast_cancer_labels,
)
from infra.local.stack import DeployedResources
from mlops_core.features.online import OnlineStore
from mlops_core.features.repository import FeatureViewRepository
from mlops_core.features.service import FeatureStoreService
from mlops_core.storage.dynamo import KeyedTable, MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from tests.infra import test_training_workflow as workflow
from tests.support import BUCKET, FEATURES_TABLE, ROOT, TABLE, upload

pytestmark = pytest.mark.infra
NOW_MS = 1_796_126_400_000


# The workflow tests' fixture: the template deployed on moto with the sample dataset.
stack = workflow.stack


def test_a_run_naming_feature_views_builds_its_training_set_first(stack: DeployedResources) -> None:
    upload(FEATURE_SOURCE_KEY, breast_cancer_features(NOW_MS))
    upload(LABELS_KEY, breast_cancer_labels(NOW_MS))
    service = FeatureStoreService(
        FeatureViewRepository(MetadataTable(TABLE)),
        OnlineStore(KeyedTable(FEATURES_TABLE)),
        ArtifactStore(BUCKET),
    )
    for definition in load_definitions([ROOT / "features"]):
        service.apply(definition, actor="test")

    result = workflow._execute(
        stack,
        "run-views",
        model_name="breast-cancer-features",
        dataset_key=None,
        expectations_key=None,
        labels=LABELS_KEY,
        feature_views=["tumour_measurements"],
        training_set={"label_column": "benign"},
        candidates=workflow.CANDIDATES[:2],
    )

    assert result["status"] == "SUCCEEDED", result
    assert result["states"][:3] == ["TrainingData", "BuildTrainingSet", "ValidateData"]
    run = workflow._run_record("run-views")
    assert [(v["name"], v["version"]) for v in run["feature_views"]] == [("tumour_measurements", 1)]
    assert run["training_set"]["report"]["rows_dropped"] == 569 // LABEL_BEFORE_FEATURES_EVERY
    version = workflow._registry().get_version(
        "breast-cancer-features", json.loads(result["output"])["version"]
    )
    assert [(v.view, v.version) for v in version.signature.feature_views] == [("tumour_measurements", 1)]


def test_build_training_set_writes_only_training_sets_and_reads_labels_and_sources(
    synthesized: SynthesizedApp,
) -> None:
    role = synthesized.stack.training.build_training_set.role
    statements = synthesized.role_policy_statements(role)
    listed = sorted(
        p
        for s in statements
        if s["Action"] == "s3:ListBucket"
        for p in s["Condition"]["StringLike"]["s3:prefix"]
    )
    assert listed == ["datasets/*", "feature-sources/*"]
    written = [
        json.dumps(s["Resource"])
        for s in statements
        if "s3:PutObject" in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]
    assert len(written) == 1 and "/datasets/training-sets/*" in written[0], written
    assert not any("Delete" in json.dumps(s["Action"]) for s in statements)
