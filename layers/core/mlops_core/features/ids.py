"""Entity ids as the online store keys them: light enough for the inference cold path
(no pydantic models are built on import; ``features.entities`` re-exports both names)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any


class EntityKeyType(StrEnum):
    int64 = "int64"
    string = "string"


def canonical_entity_id(value: Any, key_type: EntityKeyType) -> str | None:
    """The entity id as the online store keys it (an int64 id as ``str(int)``), or None if unusable."""
    if value is None or isinstance(value, bool):
        return None
    if key_type is EntityKeyType.int64:
        if isinstance(value, int):
            return str(value) if -(2**63) <= value < 2**63 else None
        text = str(value).strip()
        if not text or not (text.lstrip("+-").isdigit() and text.count("-") + text.count("+") <= 1):
            return None
        number = int(text)
        return str(number) if -(2**63) <= number < 2**63 else None
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value)
        if not isinstance(value, int | float)
        else str(value)
    )
    return text if text and len(text) <= 1024 else None
