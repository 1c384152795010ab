"""The demo's stack for a module of e2e tests that needs a trained model, not the demo's training.

    from tests.e2e import demo_stack

    state_dir = demo_stack.state_dir  # the module's MLOPS_STATE_DIR (its endpoint.json)
    local_stack = demo_stack.local_stack  # its running stack (tests/e2e/stack_process.py)

The module's own stack (module-scoped fixtures), started from a copy of the run's trained demo
(``stack_process.restored_demo_stack``): breast-cancer v1 trained by the demo's run and in
production, as right after `mlops up --demo`, without training it again. The modules that
test the demo itself (test_local_stack.py, test_readme_commands.py) run `mlops up --demo`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack_process import restored_demo_stack, running_stack


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with restored_demo_stack(tmp_path_factory, "demo-stack") as stack:
        yield stack


@pytest.fixture(scope="module")
def state_dir(local_stack: dict[str, Any]) -> Path:
    return Path(local_stack["state_dir"])


@contextmanager
def demo_stack(state_dir: Path, *options: str, ready_within: float = 300) -> Iterator[dict[str, Any]]:
    """`mlops up --demo *options` in ``state_dir`` (kept for modules written against this name)."""
    with running_stack(state_dir, "--demo", *options, ready_within=ready_within) as stack:
        yield stack
