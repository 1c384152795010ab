"""The column types and the column-name rules a dataset, a feature view and a model
signature share."""

from __future__ import annotations

import unicodedata
from typing import Literal

FeatureType = Literal["double", "float", "integer", "boolean"]

MAX_NAME_LENGTH = 128
# Control characters (tabs, newlines, NUL...), line and paragraph separators, and lone
# surrogates (which no UTF-8 text, so no CSV header or JSON key, can hold).
_REFUSED_CATEGORIES = {"Cc", "Zl", "Zp", "Cs"}


def check_column_name(name: str, what: str = "column") -> str:
    """``name`` if a CSV header and a JSON key can both carry it; ``ValueError`` naming it if not.

    Names are kept exactly as the CSV has them: spaces, ``/``, dots, parentheses, quotes,
    non-ASCII letters are all fine, since the ONNX graph takes one tensor and names live
    only in the signature. Refused: the empty name, names over ``MAX_NAME_LENGTH``
    characters, control characters and line breaks, and surrounding whitespace (CSV
    headers are read stripped, so such a name could never match its column).
    """
    if not name:
        raise ValueError(f"{what} names cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"{what} name '{name[:20]}…' is {len(name)} characters long; at most {MAX_NAME_LENGTH}"
        )
    for character in name:
        if unicodedata.category(character) in _REFUSED_CATEGORIES:
            raise ValueError(f"{what} name {name!r} contains the control character U+{ord(character):04X}")
    if name != name.strip():
        raise ValueError(
            f"{what} name {name!r} starts or ends with whitespace (CSV headers are read stripped)"
        )
    return name
