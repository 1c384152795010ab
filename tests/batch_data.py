"""Input objects for batch scoring tests: breast-cancer-like rows (the sample's rows with 2 %
noise, 6 significant digits) as CSV, with chosen lines made malformed."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tests.support import FEATURES, breast_cancer_xy

#: The three ways a line goes bad, in turn: a field missing, a word, an empty field.
MALFORMATIONS = ("missing_field", "not_a_number", "empty_field")


@dataclass
class CsvObject:
    key: str
    data: bytes
    #: line number -> the row's values (every scored line), and the malformed line numbers.
    rows: dict[int, list[float]] = field(default_factory=dict)
    malformed: set[int] = field(default_factory=set)


def rows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x, _ = breast_cancer_xy()
    return x[rng.integers(0, len(x), n)] * rng.normal(1.0, 0.02, (n, x.shape[1]))


def csv_object(key: str, n_rows: int, *, seed: int, malformed_share: float = 0.0) -> CsvObject:
    """A CSV with a header (line 1) and ``n_rows`` rows (lines 2...), about ``malformed_share``
    of them malformed at random lines."""
    rng = np.random.default_rng(seed + 1)
    values = rows(n_rows, seed)
    bad = set((rng.choice(n_rows, round(n_rows * malformed_share), replace=False) + 2).tolist())
    lines = [",".join(FEATURES)]
    result = CsvObject(key=key, data=b"")
    for i, row in enumerate(values):
        number = i + 2
        fields = [f"{v:.6g}" for v in row]
        if number in bad:
            kind = MALFORMATIONS[number % len(MALFORMATIONS)]
            if kind == "missing_field":
                fields = fields[:-1]
            elif kind == "not_a_number":
                fields[number % len(fields)] = "abc"
            else:
                fields[number % len(fields)] = ""
            result.malformed.add(number)
        else:
            result.rows[number] = [float(f) for f in fields]
        lines.append(",".join(fields))
    result.data = ("\n".join(lines) + "\n").encode()
    return result
