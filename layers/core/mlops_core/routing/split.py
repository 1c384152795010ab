"""Weighted splits: which version of a ``split`` policy answers a request.

With a request key (a user id, a session id) the choice is a function of the model name
and the key: the pair's BLAKE2b digest is a point in [0, 1), and the version is the one
whose cumulative range holds it, with ranges laid out in ascending version order. So one
key always sees one version while the weights stay, and a change of weights moves only
the keys whose point changes range: from 90/10 to 80/20, exactly the keys between 0.8
and 0.9 move, all from the first version to the second. Without a key the point is drawn
from the caller's random generator.

The point depends on the model name, not on the policy, so every split of one model
puts a key at the same place: a key that saw the candidate at a 10 % step keeps seeing it
at 50 %.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right

import numpy as np

from mlops_core.routing.policy import SplitPolicy

_TWO_TO_MINUS_53 = 2.0**-53


def key_point(model_name: str, key: str) -> float:
    """Where ``key`` falls in [0, 1) for ``model_name``: uniform, stable across processes
    and releases (BLAKE2b, not Python's salted ``hash``)."""
    digest = hashlib.blake2b(f"{model_name}\x00{key}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) * _TWO_TO_MINUS_53  # 53 bits: exact in a float


def pick(policy: SplitPolicy, point: float) -> int:
    """The version whose range holds ``point`` (in [0, 1))."""
    versions, bounds = policy.table
    return versions[bisect_right(bounds, point)]


def choose(policy: SplitPolicy, model_name: str, key: str | None, rng: np.random.Generator) -> int:
    """The version that answers: by ``key`` if there is one, at random from ``rng`` if not."""
    return pick(policy, rng.random() if key is None else key_point(model_name, key))
