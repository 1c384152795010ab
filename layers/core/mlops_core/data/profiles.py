"""The reference profile written at training, which drift monitoring compares live traffic with."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlops_core.data.schema import DatasetSchema, Table


def profile(table: Table, schema: DatasetSchema, *, bins: int = 10) -> dict[str, Any]:
    """The reference profile drift monitoring compares live traffic with.

    Numeric features: count, nulls, mean, std, min, max, quantiles, and a histogram on
    quantile bin edges (equal-mass bins make PSI stable). Features with allowed values:
    category frequencies.
    """
    features: dict[str, Any] = {}
    for column in schema.features:
        values = table.columns[column.name]
        present = values[~np.isnan(values)]
        entry: dict[str, Any] = {
            "type": column.type,
            "count": int(present.size),
            "nulls": int(values.size - present.size),
        }
        if column.allowed is not None or column.type == "boolean":
            categories, counts = np.unique(present, return_counts=True)
            entry["kind"] = "categorical"
            entry["frequencies"] = {f"{c:g}": int(n) for c, n in zip(categories, counts, strict=True)}
        elif present.size:
            quantiles = np.quantile(present, np.linspace(0, 1, 11))
            edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)))
            counts, _ = (
                np.histogram(present, bins=edges) if edges.size > 1 else (np.asarray([present.size]), edges)
            )
            entry |= {
                "kind": "numeric",
                "mean": float(present.mean()),
                "std": float(present.std()),
                "min": float(present.min()),
                "max": float(present.max()),
                "quantiles": [float(q) for q in quantiles],
                "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
            }
        else:
            entry["kind"] = "numeric"
        features[column.name] = entry
    return {"rows": table.rows, "target": schema.target, "features": features}
