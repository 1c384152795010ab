"""scipy's Kolmogorov tails at the large n where scipy itself is slow, recorded once.

``test_kolmogorov_tail_agrees_with_scipy_in_every_regime`` compares ``ks_sf(d, n)`` with
``scipy.stats.kstwo.sf(d, n)`` at 103 points per n. For n around 1e5 and above, scipy's
one-sided sum (``scipy.special.smirnov``) costs ~0.4 s a point: the n = 400 000 case alone
took ~18 s of CPU and the two n = 1e5 cases ~4 s each, for values that depend on nothing but
(d, n) and scipy's version. Those values are recorded in ``kolmogorov_reference.json``, next
to this file, with the scipy version that computed them; the test compares ours with the
recorded values at every point (the same points, the same tolerance), and checks against the
installed scipy, live, one point of each regime of every recorded n, so that the file cannot
drift from what scipy answers.

Regenerate (after changing the points or upgrading scipy)::

    PYTHONPATH=layers/core:. python -m tests.unit.kolmogorov_reference
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE_FILE = Path(__file__).with_name("kolmogorov_reference.json")
COMMAND = "PYTHONPATH=layers/core:. python -m tests.unit.kolmogorov_reference"
#: The n whose scipy reference takes more than a second to compute.
RECORDED_N = (99_999, 100_001, 400_000)


def reference_points(n: int) -> list[float]:
    """The test's points for ``n``: 40 anywhere in (0, 1), 60 around the bulk of D_n
    (n d^2 in [0.01, 8]), and the ends of the closed forms."""
    rng = np.random.default_rng(n)
    points = np.r_[rng.uniform(0, 1, 40), np.sqrt(rng.uniform(0.01, 8, 60) / n), [0.6 / n, 1 / n, 1 - 1 / n]]
    return [float(d) for d in points]


def regime(d: float, n: int) -> str:
    """Which branch of scipy's ``_kolmogn`` (scipy.stats._ksstats) answers P(D_n >= d), for n > 140."""
    t, n_d_squared = n * d, n * d * d
    if d >= 1.0 or d <= 0.0:
        return "outside"
    if t <= 1.0:
        return "lower end"
    if t >= n - 1:
        return "upper end"
    if d >= 0.5:
        return "one-sided, d >= 1/2"
    if n_d_squared >= 370.0:
        return "zero"
    if n_d_squared >= 2.2:
        return "one-sided sum"
    if n <= 100_000 and n * d**1.5 <= 1.4:
        return "lower tail, Durbin matrix"
    return "lower tail, Pelz-Good"


def load() -> dict[str, Any]:
    """``{"scipy": version, "command": ..., "values": {str(n): [[d, sf], ...]}}``."""
    recorded: dict[str, Any] = json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))
    return recorded


def main() -> None:
    import scipy
    from scipy import stats

    values = {str(n): [[d, float(stats.kstwo.sf(d, n))] for d in reference_points(n)] for n in RECORDED_N}
    head = {"scipy": scipy.__version__, "command": COMMAND}
    lines = [json.dumps(head)[:-1] + ', "values": {']
    for index, (n, pairs) in enumerate(values.items()):
        lines.append(f"  {json.dumps(n)}: [")
        lines += [f"    {json.dumps(pair)}," for pair in pairs]
        lines[-1] = lines[-1].removesuffix(",")
        lines.append("  ]" + ("," if index < len(values) - 1 else ""))
    lines.append("}}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == head | {"values": values}
    REFERENCE_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {REFERENCE_FILE} (scipy {scipy.__version__})")


if __name__ == "__main__":
    main()
