"""SnapStart runtime hooks of ``mlops_core.storage.clients``: registered only under SnapStart,
in the order Lambda runs them, and what a restore refreshes (seed, connections, credentials).

``snapshot_restore_py`` ships with Lambda's runtimes only: a fake module stands in for it,
and runs the hooks as Lambda does (before-snapshot in reverse order of registration,
after-restore in order).
"""

from __future__ import annotations

import random
import sys
import types
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from mlops_core.storage import clients
from mlops_core.storage.aws_http import HttpResponse, HttpTransport
from mlops_core.storage.container_credentials import ContainerCredentials
from mlops_core.storage.signed_reads import DynamoDBReader
from mlops_core.storage.sigv4 import Credentials


class FakeRuntime(types.ModuleType):
    """``snapshot_restore_py`` as Lambda's runtime provides it."""

    def __init__(self) -> None:
        super().__init__("snapshot_restore_py")
        self.before: list[Callable[[], None]] = []
        self.after: list[Callable[[], None]] = []

    def register_before_snapshot(self, func: Callable[[], None]) -> Callable[[], None]:
        self.before.append(func)
        return func

    def register_after_restore(self, func: Callable[[], None]) -> Callable[[], None]:
        self.after.append(func)
        return func

    def take_snapshot(self) -> None:
        for hook in reversed(self.before):
            hook()

    def restore(self) -> None:
        for hook in self.after:
            hook()


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRuntime]:
    fake = FakeRuntime()
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", fake)
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    clients.reset_clients()
    yield fake
    clients.reset_clients()


def test_nothing_is_registered_or_imported_outside_snapstart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "snapshot_restore_py", raising=False)
    for value in (None, "on-demand", "provisioned-concurrency"):
        if value is None:
            monkeypatch.delenv("AWS_LAMBDA_INITIALIZATION_TYPE", raising=False)
        else:
            monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", value)
        assert clients.register_snapstart_hooks(lambda: None, lambda: None) is False
    assert "snapshot_restore_py" not in sys.modules


def test_without_the_runtime_library_it_warns_and_registers_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # import fails
    assert clients.register_snapstart_hooks(lambda: None, lambda: None) is False
    assert "snapshot_restore_py is missing" in caplog.text


def test_hooks_run_around_the_callers_in_lambdas_order(
    runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(clients, "_before_snapshot", lambda: calls.append("storage: forget, disconnect"))
    monkeypatch.setattr(clients, "refresh_after_restore", lambda: calls.append("storage: refresh"))

    assert clients.register_snapstart_hooks(lambda: calls.append("warm"), lambda: calls.append("caller"))
    runtime.take_snapshot()
    runtime.restore()

    assert calls == ["warm", "storage: forget, disconnect", "storage: refresh", "caller"]


class CountingCredentials(ContainerCredentials):
    """Endpoint credentials whose fetches are counted (and never leave the process)."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9/creds")
        self.fetches = 0

    def _fetch(self) -> tuple[Credentials, datetime]:
        self.fetches += 1
        return Credentials(f"ASIA{self.fetches}", "s", "t"), datetime.now(UTC) + timedelta(hours=6)


def test_a_restore_reseeds_reconnects_and_refreshes_credentials(
    runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = CountingCredentials()
    transport = HttpTransport()
    reader = DynamoDBReader(region="eu-west-1", credentials=credentials, transport=transport)
    monkeypatch.setitem(clients._readers, "dynamodb", reader)
    monkeypatch.setitem(clients._readers, "s3", None)
    sentinel_client = object()
    monkeypatch.setitem(clients._clients, "dynamodb", sentinel_client)
    assert clients.register_snapstart_hooks(lambda: None, lambda: None)

    assert credentials.current().access_key == "ASIA1"  # what warming before the snapshot fetched
    generation = transport._generation
    runtime.take_snapshot()
    assert credentials._cached is None  # no credentials kept in the snapshot
    assert transport._generation == generation + 1

    random.seed(1234)
    frozen = random.random()
    random.seed(1234)  # every restored environment starts from the same generator state
    runtime.restore()
    assert random.random() != frozen  # re-seeded from the OS
    assert transport._generation == generation + 2  # connections opened before are dropped
    assert "dynamodb" not in clients._clients  # boto3 clients are created again on first use
    assert credentials.fetches == 2 and credentials._cached is not None  # fetched during the restore
    assert credentials.current().access_key == "ASIA2"


def test_a_failed_credentials_refresh_does_not_fail_the_restore(
    runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    credentials = ContainerCredentials(
        "http://127.0.0.1:9/creds", transport=lambda _: HttpResponse(503, {}, b""), sleep=lambda _: None
    )
    monkeypatch.setitem(
        clients._readers, "dynamodb", DynamoDBReader(region="eu-west-1", credentials=credentials)
    )
    clients.refresh_after_restore()
    assert "credentials not refreshed after restore" in caplog.text


def test_stale_connections_are_closed_and_replaced_after_a_reset() -> None:
    transport = HttpTransport()
    first = transport._connection("http", "127.0.0.1:9")
    assert transport._connection("http", "127.0.0.1:9") is first
    transport.reset()
    second = transport._connection("http", "127.0.0.1:9")
    assert second is not first
    assert first.sock is None  # closed
