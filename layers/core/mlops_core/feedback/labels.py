"""Comparing a caller's label with a model's classes and with its captured prediction.

A signature keeps classes as integers or strings (``registry.signature.ClassLabel``: a
boolean target is stored as 0/1, a float target's integral values as ints), and the
captured prediction is what the ONNX label output held (int64 -> int, strings -> str).
A caller writes JSON: ``1``, ``1.0`` and ``true`` are the class ``1``; ``"1"`` is the class
``"1"``, never the class ``1`` (a string is compared with strings only, so a label's type
is never guessed from its text).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def same_value(value: Any, recorded: Any) -> bool:
    """Whether ``value`` (as a caller sent it) is ``recorded`` (a class, a captured prediction,
    or a label recorded before): strings equal as strings, numbers as numbers (a boolean as
    0/1); anything else (lists, objects, null) only when equal as they are."""
    if isinstance(recorded, str) or isinstance(value, str):
        return isinstance(value, str) and isinstance(recorded, str) and value == recorded
    if _is_number(recorded) and _is_number(value):
        if isinstance(value, int) and isinstance(recorded, int):
            return int(value) == int(recorded)  # exactly, however large
        return _finite(value) and _finite(recorded) and float(value) == float(recorded)
    return bool(value == recorded) and type(value) is type(recorded)


def class_of(value: Any, classes: Sequence[int | str]) -> int | str | None:
    """The class of ``classes`` that ``value`` names, as the signature spells it; None if none."""
    return next((c for c in classes if same_value(value, c)), None)


def is_number(value: Any) -> bool:
    """A finite int or float (not a boolean): what a regression label must be."""
    return _is_number(value) and not isinstance(value, bool) and _finite(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float)  # bool is an int: True is 1


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False
