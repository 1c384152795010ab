"""scikit-learn's bundled datasets as the training workflow takes them: a CSV with the
dataset's own column names (``od280/od315_of_diluted_wines``, ``sepal length (cm)``),
its schema, laid out under ``datasets/<name>/v1/``."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np


@dataclass(frozen=True)
class Dataset:
    name: str
    task: Literal["classification", "regression"]
    features: list[str]
    target: str
    x: np.ndarray
    y: np.ndarray
    schema: dict[str, Any]

    @property
    def prefix(self) -> str:
        return f"datasets/{self.name}/v1"

    @property
    def data_key(self) -> str:
        return f"{self.prefix}/data.csv"

    def csv(self) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*self.features, self.target])
        for row, target in zip(self.x, self.y, strict=True):
            label = int(target) if self.task == "classification" else repr(float(target))
            writer.writerow([*(repr(float(v)) for v in row), label])
        return out.getvalue().encode()

    def files(self, **schema_changes: Any) -> dict[str, bytes]:
        """S3 key -> bytes; ``schema_changes`` replace top-level schema fields."""
        return {
            self.data_key: self.csv(),
            f"{self.prefix}/schema.json": json.dumps(self.schema | schema_changes).encode(),
        }


def sklearn_dataset(
    loader: Literal["wine", "iris", "diabetes"], *, name: str | None = None, features: list[str] | None = None
) -> Dataset:
    """The dataset with its own feature names (or ``features``, to try other names)."""
    import sklearn.datasets

    data = getattr(sklearn.datasets, f"load_{loader}")()
    task: Literal["classification", "regression"] = "regression" if loader == "diabetes" else "classification"
    names = features or [str(n) for n in data.feature_names]
    target = "target"
    columns: list[dict[str, Any]] = [{"name": n, "type": "double"} for n in names]
    if task == "classification":
        columns.append({"name": target, "type": "integer", "allowed": sorted({int(v) for v in data.target})})
    else:
        columns.append({"name": target, "type": "double"})
    schema = {"name": loader, "task": task, "target": target, "columns": columns}
    return Dataset(name or loader, task, names, target, data.data, data.target, schema)
