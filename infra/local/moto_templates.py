"""moto's CloudFormation reads a JSON template body with ``json``, not pure-Python YAML.

moto parses every stack's template body with PyYAML's pure-Python ``yaml.Loader`` first
(JSON being YAML) and falls back to ``json.loads`` only if that fails: for this stack's
synthesized template that is ~0.9 s of CPU of the ~2.3 s a ``deploy_template`` takes, paid
by every `mlops up` and every infra test that deploys the template, for the same dictionary
that ``json.loads`` makes in milliseconds (``tests/infra/test_local_fidelity.py`` checks that
both parse the deployed template alike). A body that is not JSON (a YAML template) still
goes to moto's own parser.
"""

from __future__ import annotations

import json
from typing import Any


def patch_moto() -> None:
    """Make moto's ``Stack`` parse JSON template bodies with ``json`` (idempotent;
    ``deploy_template`` calls it, next to ``event_rules.patch_moto``)."""
    from moto.cloudformation.models import Stack

    if getattr(Stack, "_mlops_original_parse_template", None) is not None:
        return
    original = Stack.parse_template

    def parse_template(template: str) -> dict[str, Any]:
        try:
            parsed = json.loads(template)
        except ValueError:
            return original(template)
        if not isinstance(parsed, dict):
            return original(template)
        return parsed

    Stack._mlops_original_parse_template = staticmethod(original)  # type: ignore[attr-defined]
    Stack.parse_template = staticmethod(parse_template)  # type: ignore[method-assign]
