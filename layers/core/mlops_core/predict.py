"""Loading ONNX models and serving predictions for the live version of a model.

Imports numpy and onnxruntime only (never scipy or scikit-learn): this module is on the
inference function's cold-start path.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort

from mlops_core.artifacts import ModelSignature, verify_checksum
from mlops_core.errors import IntegrityError, Invalid, detail
from mlops_core.instances import MAX_REPORTED_PROBLEMS, instances_to_matrix
from mlops_core.registry import ModelRegistry, ModelVersion
from mlops_core.s3 import ArtifactStore

Clock = Callable[[], float]


def _session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    # One thread: Lambda gives a fraction of a vCPU per 1.8 GB, and thread wake-ups cost
    # more than they save on the small batches a request carries.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return options


def load_session(data: bytes, signature: ModelSignature) -> ort.InferenceSession:
    """An ONNX Runtime session for ``data``, checked against ``signature``.

    Raises ``Invalid`` when the graph is not ONNX or does not take and return what the
    signature says (used by the registry to refuse a bad upload before it is registered).
    """
    try:
        session = ort.InferenceSession(
            data, sess_options=_session_options(), providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises its own untyped errors for bad graphs
        raise Invalid(
            "the artifact is not a loadable ONNX model",
            details=[detail(["body", "artifact_key"], str(error)[:300], "onnx")],
        ) from error
    problems = []
    inputs = {i.name: i for i in session.get_inputs()}
    graph_input = inputs.get(signature.input_name)
    if graph_input is None:
        problems.append(f"graph has no input '{signature.input_name}' (inputs: {sorted(inputs)})")
    else:
        width = graph_input.shape[-1] if graph_input.shape else None
        if isinstance(width, int) and width != len(signature.features):
            problems.append(f"graph input takes {width} features, signature lists {len(signature.features)}")
    outputs = {o.name for o in session.get_outputs()}
    for name in (signature.label_output, signature.probabilities_output):
        if name and name not in outputs:
            problems.append(f"graph has no output '{name}' (outputs: {sorted(outputs)})")
    if problems:
        raise Invalid(
            "the ONNX graph does not match the signature",
            details=[detail(["body", "signature"], p, "signature_mismatch") for p in problems],
        )
    return session


@dataclass
class LoadedModel:
    """A registered version ready to predict."""

    version: ModelVersion
    session: ort.InferenceSession
    output_names: list[str] = field(default_factory=list)

    @classmethod
    def from_bytes(cls, version: ModelVersion, data: bytes) -> LoadedModel:
        verify_checksum(
            data, version.artifact.sha256, what=f"model '{version.model_name}' v{version.version}"
        )
        session = load_session(data, version.signature)
        signature = version.signature
        names = [signature.label_output]
        if signature.probabilities_output:
            names.append(signature.probabilities_output)
        return cls(version=version, session=session, output_names=names)

    def run(self, matrix: np.ndarray) -> tuple[list[Any], list[list[float]] | None]:
        outputs = self.session.run(self.output_names, {self.version.signature.input_name: matrix})
        labels = np.asarray(outputs[0]).reshape(len(matrix), -1)
        scores = np.asarray(outputs[1], dtype=np.float64) if len(outputs) > 1 else None
        numeric = [
            a.reshape(len(matrix), -1) for a in (labels, scores) if a is not None and a.dtype.kind == "f"
        ]
        bad_rows = sorted({int(i) for a in numeric for i in np.flatnonzero(~np.isfinite(a).all(axis=1))})
        if bad_rows:
            # Finite inputs far outside what the model was trained on can overflow inside it
            # (a linear model's logit, say): refuse those rows rather than answer NaN.
            raise Invalid(
                f"model '{self.version.model_name}' v{self.version.version} cannot score "
                f"{len(bad_rows)} instance(s): its output is not finite (values far outside the "
                "training range?)",
                details=[
                    detail(
                        ["body", "instances", i],
                        "the model's output for this instance is not finite",
                        "non_finite_output",
                    )
                    for i in bad_rows[:MAX_REPORTED_PROBLEMS]
                ],
            )
        predictions = labels[:, 0].tolist() if labels.shape[1] == 1 else labels.tolist()
        return predictions, scores.tolist() if scores is not None else None


@dataclass(frozen=True)
class Prediction:
    model_name: str
    model_version: int
    alias: str
    predictions: list[Any]
    probabilities: list[list[float]] | None
    classes: list[Any] | None


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
        registry: ModelRegistry,
        store: ArtifactStore,
        *,
        alias_ttl: float,
        cache_size: int,
        max_batch_size: int,
        clock: Clock = time.monotonic,
        on_integrity_failure: Callable[[ModelVersion, IntegrityError], None] | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.alias_ttl = alias_ttl
        self.cache_size = cache_size
        self.max_batch_size = max_batch_size
        self.clock = clock
        self.on_integrity_failure = on_integrity_failure
        self._aliases: dict[tuple[str, str], _Resolved] = {}
        self._models: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._last_good: dict[tuple[str, str], LoadedModel] = {}
        self._refused: dict[tuple[str, int], float] = {}

    def clear(self) -> None:
        """Forget every cached alias and model (as a new container would)."""
        self._aliases.clear()
        self._models.clear()
        self._last_good.clear()
        self._refused.clear()

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

    def model_for(self, name: str, alias: str) -> LoadedModel:
        version = self.resolve(name, alias)
        key = (name, version.version)
        loaded = self._models.get(key)
        if loaded is not None:
            self._models.move_to_end(key)
            self._last_good[(name, alias)] = loaded
            return loaded
        refused_at = self._refused.get(key)
        if refused_at is not None and self.clock() - refused_at < self.alias_ttl:
            return self._fallback(name, alias, version, None)
        try:
            stored = self.store.get(version.artifact.key, version.artifact.s3_version_id)
            loaded = LoadedModel.from_bytes(version, stored.data)
        except IntegrityError as error:
            self._refused[key] = self.clock()
            return self._fallback(name, alias, version, error)
        self._refused.pop(key, None)
        self._models[key] = loaded
        if len(self._models) > self.cache_size:
            self._models.popitem(last=False)
        self._last_good[(name, alias)] = loaded
        return loaded

    def _fallback(
        self, name: str, alias: str, version: ModelVersion, error: IntegrityError | None
    ) -> LoadedModel:
        failure = error or IntegrityError(
            f"integrity check failed for model '{name}' v{version.version}; the artifact is refused",
            retry_after_seconds=30,
        )
        if self.on_integrity_failure is not None:
            self.on_integrity_failure(version, failure)
        last_good = self._last_good.get((name, alias))
        if last_good is None:
            raise failure
        return last_good

    def predict(self, name: str, instances: Sequence[Any], *, alias: str = "production") -> Prediction:
        model = self.model_for(name, alias)
        signature = model.version.signature
        matrix = instances_to_matrix(instances, signature, max_batch_size=self.max_batch_size)
        predictions, probabilities = model.run(matrix)
        return Prediction(
            model_name=name,
            model_version=model.version.version,
            alias=alias,
            predictions=predictions,
            probabilities=probabilities,
            classes=signature.classes,
        )
