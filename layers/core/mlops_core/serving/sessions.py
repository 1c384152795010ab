"""ONNX Runtime sessions for registered versions, checked against their signature.

Imports numpy and onnxruntime only (never scipy or scikit-learn): this module is on the
inference function's cold-start path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort

from mlops_core.errors import Invalid, detail
from mlops_core.registry.entities import ModelVersion
from mlops_core.registry.signature import ModelSignature, verify_checksum
from mlops_core.serving.instances import MAX_REPORTED_PROBLEMS


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
    #: When the predictor finished loading it (``time.perf_counter()``) and how long the
    #: fetch, checksum and session took: a call that loaded its model reports that part of
    #: its latency apart (a rollout's p99 guardrail judges serving, not first loads).
    loaded_at: float = 0.0
    load_ms: float = 0.0

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

    def outputs(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, list[int]]:
        """The graph's labels (one row per instance), its probabilities (float64, or None) and
        the rows whose output is not finite, as arrays (batch scoring writes them in bulk)."""
        outputs = self.session.run(self.output_names, {self.version.signature.input_name: matrix})
        labels = np.asarray(outputs[0]).reshape(len(matrix), -1)
        scores = np.asarray(outputs[1], dtype=np.float64) if len(outputs) > 1 else None
        numeric = [
            a.reshape(len(matrix), -1) for a in (labels, scores) if a is not None and a.dtype.kind == "f"
        ]
        bad_rows = sorted({int(i) for a in numeric for i in np.flatnonzero(~np.isfinite(a).all(axis=1))})
        return labels, scores, bad_rows

    def run(self, matrix: np.ndarray) -> tuple[list[Any], list[list[float]] | None]:
        labels, scores, bad_rows = self.outputs(matrix)
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
