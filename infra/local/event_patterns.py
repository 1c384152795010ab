"""Lambda event filter patterns (the EventBridge pattern language), the part the template uses.

An event source mapping's ``FilterCriteria`` holds up to five patterns; a record that
matches none of them never reaches the function. Understood here: nested objects, and
lists of literal values (a string, number, boolean or null), which match when the
record's value equals one of them (or, for a list value, shares one). Content filters
(``prefix``, ``suffix``, ``numeric``, ``exists``, ``anything-but``, ``equals-ignore-case``,
``wildcard``, ``cidr``, ``$or``) are refused when the stack starts, so a template that
needs them fails loudly rather than filtering differently from Lambda.
"""

from __future__ import annotations

import json
from typing import Any

Pattern = dict[str, Any]
_LITERALS = (str, int, float, bool, type(None))


class UnsupportedEventPattern(Exception):
    """A filter pattern the local stack cannot evaluate the way Lambda does."""


def parse_pattern(text: str) -> Pattern:
    """A pattern from its JSON text, checked to use only what ``matches`` evaluates."""
    try:
        pattern = json.loads(text)
    except ValueError as error:
        raise UnsupportedEventPattern(f"filter pattern {text!r} is not JSON: {error}") from None
    if not isinstance(pattern, dict) or not pattern:
        raise UnsupportedEventPattern(f"filter pattern {text!r}: a pattern is a non-empty JSON object")
    _check(pattern, text, [])
    return pattern


def _check(pattern: Pattern, text: str, path: list[str]) -> None:
    for key, rule in pattern.items():
        where = ".".join([*path, key])
        if key.startswith("$"):
            raise UnsupportedEventPattern(f"filter pattern {text!r}: {where} ('$or') is not run locally")
        if isinstance(rule, dict):
            if not rule:
                raise UnsupportedEventPattern(f"filter pattern {text!r}: {where} is an empty object")
            _check(rule, text, [*path, key])
        elif isinstance(rule, list) and rule and all(isinstance(value, _LITERALS) for value in rule):
            continue
        else:
            raise UnsupportedEventPattern(
                f"filter pattern {text!r}: {where} is {json.dumps(rule)}; the local stack runs only "
                "lists of literal values (content filters such as prefix, numeric or exists are not run)"
            )


def matches(pattern: Pattern, event: Any) -> bool:
    """Whether ``event`` (a stream record, as the function would receive it) matches."""
    if not isinstance(event, dict):
        return False
    for key, rule in pattern.items():
        if key not in event:
            return False
        value = event[key]
        if isinstance(rule, dict):
            if not matches(rule, value):
                return False
        elif isinstance(value, list):
            if not any(_equal(item, allowed) for item in value for allowed in rule):
                return False
        elif not any(_equal(value, allowed) for allowed in rule):
            return False
    return True


def _equal(value: Any, allowed: Any) -> bool:
    # EventBridge compares numbers by value and never equates true with 1.
    if isinstance(value, bool) or isinstance(allowed, bool):
        return value is allowed
    return bool(value == allowed)


def matches_any(patterns: list[Pattern], event: Any) -> bool:
    """Lambda's rule: no patterns lets everything through; otherwise one must match."""
    return not patterns or any(matches(pattern, event) for pattern in patterns)
