"""The routing policies and bandit counts the inference function decides with, read
through a short cache.

Each is re-read at most every ``ttl`` seconds (a policy change or a rollout step reaches
every warm container within that time; the bandit's posteriors are at most that stale,
which Thompson sampling tolerates: it was built for delayed feedback). A read that fails
when a copy is cached keeps the copy (a policy that stops being readable should not stop
the traffic it routes) and tries again after another ``ttl``; with nothing cached the
failure is the caller's 503. A model without a stored policy caches the default.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from mlops_core.errors import Unavailable
from mlops_core.routing.repository import RoutingRepository
from mlops_core.routing.state import ArmsState, StoredRouting

LOGGER = logging.getLogger(__name__)
T = TypeVar("T")


class _TtlCache(Generic[T]):
    def __init__(self, load: Callable[[str], T], ttl: float, clock: Callable[[], float]) -> None:
        self.load = load
        self.ttl = ttl
        self.clock = clock
        self.entries: dict[str, tuple[T, float]] = {}

    def get(self, name: str) -> T:
        now = self.clock()
        cached = self.entries.get(name)
        if cached is not None and now - cached[1] < self.ttl:
            return cached[0]
        try:
            value = self.load(name)
        except Unavailable as error:
            if cached is None:
                raise
            LOGGER.warning("serving a cached copy for %s: %s", name, error.message)
            self.entries[name] = (cached[0], now)
            return cached[0]
        self.entries[name] = (value, now)
        return value


class RoutingCache:
    def __init__(
        self, repository: RoutingRepository, *, ttl: float, clock: Callable[[], float] = time.monotonic
    ):
        self._policies = _TtlCache(self._load_policy, ttl, clock)
        self._arms = _TtlCache(repository.arms, ttl, clock)
        self.repository = repository

    def _load_policy(self, name: str) -> StoredRouting:
        return self.repository.routing(name) or StoredRouting(model_name=name)

    def policy(self, name: str) -> StoredRouting:
        return self._policies.get(name)

    def arms(self, name: str) -> ArmsState:
        return self._arms.get(name)

    def set_clock(self, clock: Callable[[], float]) -> None:
        self._policies.clock = clock
        self._arms.clock = clock

    def clear(self) -> None:
        self._policies.entries.clear()
        self._arms.entries.clear()
