"""The column types and the column-name rules a dataset, a feature view and a model
signature share."""

from __future__ import annotations

import unicodedata
from typing import Literal

#: ``category``: text values from a fixed list (the column's ``categories``); a model takes
#: each as its position in that list (a code), and names live in the schema and signature.
FeatureType = Literal["double", "float", "integer", "boolean", "category"]

#: A category column or feature holds at most this many distinct values (more is an
#: identifier or free text, not a category).
MAX_CATEGORIES = 1000
#: Cells read as a missing value (case-insensitive), in datasets and in batch inputs.
MISSING_CELLS = frozenset({"", "na", "nan", "null", "none"})


def check_categories(categories: list[str], what: str) -> list[str]:
    """``categories`` if each is a distinct text a CSV cell can carry; ``ValueError`` naming the
    problem if not (cells are read stripped, and the missing-value words read as missing)."""
    if not categories:
        raise ValueError(f"{what}: a category column lists its categories")
    if len(categories) > MAX_CATEGORIES:
        raise ValueError(f"{what}: {len(categories)} categories; at most {MAX_CATEGORIES}")
    seen: set[str] = set()
    for category in categories:
        if category != category.strip() or category.lower() in MISSING_CELLS:
            raise ValueError(f"{what}: category {category!r} cannot be told from a missing or padded cell")
        if len(category) > MAX_NAME_LENGTH * 4:
            raise ValueError(f"{what}: category '{category[:20]}…' is over {MAX_NAME_LENGTH * 4} characters")
        if category in seen:
            raise ValueError(f"{what}: category {category!r} is listed twice")
        seen.add(category)
    return categories


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


def shown_categories(categories: list[str] | None, limit: int = 6) -> str:
    """The first categories, for a message."""
    values = categories or []
    return ", ".join(values[:limit]) + (f", … ({len(values)} in all)" if len(values) > limit else "")
