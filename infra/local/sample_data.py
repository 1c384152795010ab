"""The sample dataset: scikit-learn's bundled breast-cancer data as a CSV with its schema.

Used by the demo (`mlops up --demo`), the training workflow's tests and the docs. Ten
"mean_*" measurements of a tumour, and the target ``benign`` (1) or malignant (0).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

SAMPLE_MODEL = "breast-cancer"
DATASET_PREFIX = "datasets/breast-cancer/v1"
N_FEATURES = 10


@dataclass(frozen=True)
class SampleDataset:
    csv: bytes
    schema: dict
    expectations: dict

    @property
    def files(self) -> dict[str, bytes]:
        """S3 key -> bytes, as the workflow expects them laid out."""
        return {
            f"{DATASET_PREFIX}/data.csv": self.csv,
            f"{DATASET_PREFIX}/schema.json": json.dumps(self.schema, indent=2).encode(),
            f"{DATASET_PREFIX}/expectations.json": json.dumps(self.expectations, indent=2).encode(),
        }


def breast_cancer() -> SampleDataset:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names[:N_FEATURES]]
    x = data.data[:, :N_FEATURES]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*names, "benign"])
    for row, target in zip(x, data.target, strict=True):
        writer.writerow([*(repr(float(v)) for v in row), int(target)])
    columns = [
        # Ranges are generous physical bounds (measurements are positive), not the sample's min/max.
        {"name": n, "type": "double", "min": 0.0, "max": float(10 ** len(str(int(x[:, i].max()))))}
        for i, n in enumerate(names)
    ]
    columns.append({"name": "benign", "type": "integer", "allowed": [0, 1]})
    schema = {"name": "breast-cancer", "task": "classification", "target": "benign", "columns": columns}
    expectations = {
        "name": "breast-cancer-basics",
        "expectations": [
            {"type": "expect_table_row_count_to_be_between", "min": 200},
            {"type": "expect_column_values_to_not_be_null", "column": "benign"},
            {"type": "expect_column_unique_value_count_to_be_at_least", "column": "benign", "min": 2},
            {"type": "expect_column_mean_to_be_between", "column": "mean_radius", "min": 5, "max": 30},
        ],
    }
    return SampleDataset(csv=out.getvalue().encode(), schema=schema, expectations=expectations)


#: The sample feature view's source (features/breast_cancer.toml reads this prefix).
FEATURE_VIEW = "tumour_measurements"
FEATURE_SOURCE_KEY = "feature-sources/breast-cancer/tumours.csv"


def breast_cancer_features(now_ms: int) -> bytes:
    """The sample's ten measurements as a feature source: one row per tumour, keyed by a
    ``patient_id`` (1 to 569, in the dataset's order), with an ``event_time`` in the last ten
    hours before ``now_ms`` (one row a minute, the last one a minute ago) and a ``created_at``."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names[:N_FEATURES]]
    rows = data.data[:, :N_FEATURES]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["patient_id", "event_time", "created_at", *names])
    for index, row in enumerate(rows):
        at_ms = now_ms - (len(rows) - index) * 60_000
        stamp = _iso_ms(at_ms)
        writer.writerow([index + 1, stamp, stamp, *(repr(float(v)) for v in row)])
    return out.getvalue().encode()


def _iso_ms(at_ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(at_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: Labels for a point-in-time training set on the sample view (README, "Training on feature views").
LABELS_KEY = "datasets/breast-cancer/labels/labels.csv"
LABEL_COLUMN = "benign"
#: Every this many patients, the label is dated a second before the patient's feature row:
#: that label row finds no features (missing) and the default policy drops it, counted.
LABEL_BEFORE_FEATURES_EVERY = 50


def breast_cancer_labels(now_ms: int) -> bytes:
    """The sample's diagnoses as labels of ``breast_cancer_features(now_ms)``'s patients:
    ``patient_id``, ``event_timestamp`` (30 s after the patient's feature row; a second before
    it for every ``LABEL_BEFORE_FEATURES_EVERY``-th patient) and ``benign``."""
    from sklearn.datasets import load_breast_cancer

    targets = load_breast_cancer().target
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["patient_id", "event_timestamp", LABEL_COLUMN])
    for index, target in enumerate(targets):
        feature_ms = now_ms - (len(targets) - index) * 60_000
        early = (index + 1) % LABEL_BEFORE_FEATURES_EVERY == 0
        writer.writerow(
            [index + 1, _iso_ms(feature_ms - 1000 if early else feature_ms + 30_000), int(target)]
        )
    return out.getvalue().encode()
