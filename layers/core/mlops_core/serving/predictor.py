"""Serving predictions for the live version of a model: aliases resolved through a short
cache, loaded versions kept in an LRU, integrity failures answered by the last good one.

Imports numpy and onnxruntime only (never scipy or scikit-learn): this module is on the
inference function's cold-start path.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mlops_core.errors import IntegrityError, NotFound
from mlops_core.registry.entities import PRODUCTION, FeaturePolicy, ModelVersion
from mlops_core.registry.lookup import RegistryLookup
from mlops_core.routing.policy import BanditPolicy
from mlops_core.routing.router import route
from mlops_core.serving.instances import instances_to_matrix
from mlops_core.serving.routing_cache import RoutingCache
from mlops_core.serving.sessions import LoadedModel
from mlops_core.storage.s3 import ArtifactStore

Clock = Callable[[], float]
#: How the answering version was chosen: the caller named an alias or a version, the model's
#: routing policy chose it (single, split, bandit), or the policy's version was refused by
#: its integrity check and the production alias answered instead (fallback).
RoutedBy = Literal["alias", "version", "single", "split", "bandit", "fallback"]


@dataclass(frozen=True)
class Prediction:
    model_name: str
    model_version: int
    alias: str | None
    predictions: list[Any]
    probabilities: list[list[float]] | None
    classes: list[Any] | None
    #: The rows as the model saw them (signature order), for the capture.
    inputs: np.ndarray
    features: list[str]
    routed_by: RoutedBy = "alias"
    #: The routing policy's revision when one decided (0: the default policy).
    policy_revision: int | None = None
    #: The version to score as a shadow of this request (never returned to the caller).
    shadow_version: int | None = None
    #: A text target's class names, one per class: what the caller sees (``shown_*``). The
    #: predictions and classes above stay the graph's codes, as captured and compared.
    class_names: list[str] | None = None

    @property
    def shown_classes(self) -> list[Any] | None:
        return self.class_names if self.class_names is not None else self.classes

    @property
    def shown_predictions(self) -> list[Any]:
        if self.class_names is None or self.classes is None:
            return self.predictions
        names = dict(zip(self.classes, self.class_names, strict=True))
        return [names[p] for p in self.predictions]


@dataclass(frozen=True)
class Choice:
    """The version chosen to answer a request, and how (before any row is scored)."""

    model: LoadedModel
    alias: str | None
    routed_by: RoutedBy
    policy_revision: int | None = None
    shadow_version: int | None = None


@dataclass
class _Resolved:
    version: ModelVersion
    at: float


class Predictor:
    """Resolves a model's alias, keeps loaded sessions, and predicts.

    Aliases are re-read from the registry at most every ``alias_ttl`` seconds (so a
    promotion or rollback reaches every warm container within that time); loaded
    versions are immutable and kept in an LRU of ``cache_size`` entries. A version
    whose artifact fails its checksum is refused; if the alias previously served a
    good version, that one keeps serving and ``on_integrity_failure`` is called.
    """

    def __init__(
        self,
        registry: RegistryLookup,
        store: ArtifactStore,
        *,
        alias_ttl: float,
        cache_size: int,
        max_batch_size: int,
        clock: Clock = time.monotonic,
        on_integrity_failure: Callable[[ModelVersion, IntegrityError], None] | None = None,
        routing: RoutingCache | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.alias_ttl = alias_ttl
        self.cache_size = cache_size
        self.max_batch_size = max_batch_size
        self.clock = clock
        self.on_integrity_failure = on_integrity_failure
        #: Without one, requests that name neither alias nor version go to ``production``.
        self.routing = routing
        self.rng = rng or np.random.default_rng()
        self._aliases: dict[tuple[str, str], _Resolved] = {}
        self._models: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._last_good: dict[tuple[str, str], ModelVersion] = {}
        self._refused: dict[tuple[str, int], float] = {}
        self._versions: dict[tuple[str, int], ModelVersion] = {}
        self._feature_policies: dict[str, tuple[float, FeaturePolicy]] = {}

    def clear(self) -> None:
        """Forget every cached alias and model (as a new container would)."""
        self._aliases.clear()
        self._models.clear()
        self._last_good.clear()
        self._refused.clear()
        self._versions.clear()
        self._feature_policies.clear()
        if self.routing is not None:
            self.routing.clear()

    @property
    def loaded_count(self) -> int:
        return len(self._models)

    def resolve(self, name: str, alias: str) -> ModelVersion:
        cached = self._aliases.get((name, alias))
        now = self.clock()
        if cached is not None and now - cached.at < self.alias_ttl:
            return cached.version
        version = self.registry.resolve_alias(name, alias)
        self._aliases[(name, alias)] = _Resolved(version, now)
        return version

    def feature_policy(self, name: str) -> FeaturePolicy:
        """The model's policy for missing or stale online features, re-read at most every
        ``alias_ttl`` seconds (only requests by entity id need it)."""
        cached = self._feature_policies.get(name)
        now = self.clock()
        if cached is not None and now - cached[0] < self.alias_ttl:
            return cached[1]
        policy = self.registry.get_model(name).feature_policy
        self._feature_policies[name] = (now, policy)
        return policy

    def resolve_version(self, name: str, number: int) -> ModelVersion:
        """A pinned version's record (immutable where serving is concerned), cached."""
        key = (name, number)
        found = self._versions.get(key)
        if found is None:
            found = self.registry.get_version(name, number)
            if len(self._versions) >= self.cache_size * 8:
                self._versions.clear()
            self._versions[key] = found
        return found

    def model_for(self, name: str, alias: str) -> LoadedModel:
        """The version ``alias`` names, loaded; the alias's last good version if it is refused."""
        version = self.resolve(name, alias)
        try:
            loaded = self.load(version)
        except IntegrityError as error:
            return self._fallback(name, alias, version, error)
        self._last_good[(name, alias)] = version
        return loaded

    def load(self, version: ModelVersion) -> LoadedModel:
        """A verified session for ``version``: from the LRU, or read from S3 and checked.

        Raises ``IntegrityError`` when the artifact is missing or fails its checksum (and,
        for ``alias_ttl`` seconds after that, without reading it again).
        """
        name = version.model_name
        key = (name, version.version)
        loaded = self._models.get(key)
        if loaded is not None:
            self._models.move_to_end(key)
            return loaded
        refused_at = self._refused.get(key)
        if refused_at is not None and self.clock() - refused_at < self.alias_ttl:
            raise IntegrityError(
                f"integrity check failed for model '{name}' v{version.version}; the artifact is refused",
                retry_after_seconds=30,
            )
        load_started = time.perf_counter()
        try:
            try:
                stored = self.store.get(version.artifact.key, version.artifact.s3_version_id)
            except NotFound:
                # The version exists but its pinned bytes do not: an integrity failure of
                # the registry's state, not a caller's mistake (and never a 404 naming keys).
                raise IntegrityError(
                    f"the artifact of model '{name}' v{version.version} is missing; it is refused",
                    retry_after_seconds=30,
                ) from None
            loaded = LoadedModel.from_bytes(version, stored.data)
        except IntegrityError:
            self._refused[key] = self.clock()
            raise
        loaded.loaded_at = time.perf_counter()
        loaded.load_ms = (loaded.loaded_at - load_started) * 1000
        self._refused.pop(key, None)
        self._models[key] = loaded
        if len(self._models) > self.cache_size:
            self._models.popitem(last=False)
        return loaded

    def _fallback(self, name: str, alias: str, version: ModelVersion, failure: IntegrityError) -> LoadedModel:
        if self.on_integrity_failure is not None:
            self.on_integrity_failure(version, failure)
        last_good = self._last_good.get((name, alias))
        if last_good is None or last_good.version == version.version:
            raise failure
        try:
            # Reloaded (and verified again) if the LRU evicted it: the fallback is bounded
            # by the cache like every other session.
            return self.load(last_good)
        except IntegrityError:
            raise failure from None

    def predict(
        self,
        name: str,
        instances: Sequence[Any],
        *,
        alias: str | None = None,
        version: int | None = None,
        key: str | None = None,
    ) -> Prediction:
        """``score(choose(...))``: the version chosen, then the instances scored with it."""
        return self.score(self.choose(name, alias=alias, version=version, key=key), instances)

    def choose(
        self, name: str, *, alias: str | None = None, version: int | None = None, key: str | None = None
    ) -> Choice:
        """The version that answers: the one ``alias`` names, the pinned ``version`` (no fallback
        then: the caller asked for exactly that one), or, with neither, the one the model's
        routing policy chooses (by ``key`` for a split, when given)."""
        if version is not None:
            return Choice(self.load(self.resolve_version(name, version)), None, "version")
        if alias is not None or self.routing is None:
            alias = alias or PRODUCTION
            return Choice(self.model_for(name, alias), alias, "alias")
        return self._routed(self.routing, name, key)

    def score(self, choice: Choice, instances: Sequence[Any]) -> Prediction:
        model = choice.model
        signature = model.version.signature
        matrix = instances_to_matrix(instances, signature, max_batch_size=self.max_batch_size)
        predictions, probabilities = model.run(matrix)
        return Prediction(
            model_name=model.version.model_name,
            model_version=model.version.version,
            alias=choice.alias,
            predictions=predictions,
            probabilities=probabilities,
            classes=signature.classes,
            class_names=signature.class_names,
            inputs=matrix,
            features=signature.feature_names,
            routed_by=choice.routed_by,
            policy_revision=choice.policy_revision,
            shadow_version=choice.shadow_version,
        )

    def _routed(self, routing: RoutingCache, name: str, key: str | None) -> Choice:
        stored = routing.policy(name)
        policy = stored.policy
        arms = routing.arms(name).arms if isinstance(policy, BanditPolicy) else ()
        decision = route(policy, model_name=name, rng=self.rng, key=key, arms=arms)
        revision, shadow = stored.revision, decision.shadow
        if decision.version is None:
            alias = decision.alias or PRODUCTION
            return Choice(self.model_for(name, alias), alias, policy.type, revision, shadow)
        try:
            return Choice(
                self.load(self.resolve_version(name, decision.version)), None, policy.type, revision, shadow
            )
        except IntegrityError as error:
            # A routed variant that fails its check must not fail its share of the traffic
            # while production can answer: the caller sees routed_by "fallback".
            if self.on_integrity_failure is not None:
                self.on_integrity_failure(self.resolve_version(name, decision.version), error)
            return Choice(self.model_for(name, PRODUCTION), PRODUCTION, "fallback", revision, shadow)
