"""Model cards: what a registered version is, where it came from, and how it fared at the gate.

A card is assembled from records the platform already keeps (the model, the version, its
aliases, the training run with its candidates, the promotion policy) and states only what
those records say: anything nobody declared reads "Not declared.", never a guess. The
module is pure: callers fetch the records, this turns them into a ``ModelCard`` and
renders it as Markdown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlops_core.clock import iso
from mlops_core.registry.entities import HIGHER_IS_BETTER, ModelVersion, RegisteredModel
from mlops_core.registry.signature import ClassLabel, FeatureSpec, FeatureViewInput

NOT_DECLARED = "Not declared."


Direction = Literal["min", "max"]


class GateRow(BaseModel):
    """One bound a metric had to respect: ``value >= threshold`` (min) or ``<=`` (max)."""

    model_config = ConfigDict(frozen=True)

    metric: str
    value: float | None = Field(description="None when the version does not report the metric")
    threshold: float
    direction: Direction
    passed: bool = Field(description="An unreported metric does not pass")
    source: Literal["policy", "training"] = Field(
        description="The model's promotion policy, or the threshold the training run was gated on"
    )


class ArtifactSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    sha256: str
    size_bytes: int
    s3_version_id: str | None
    format: str


class TrainingDataset(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str | None = None
    sha256: str | None = None
    s3_version_id: str | None = None
    rows: int | None = None
    time_range: dict[str, Any] | None = Field(
        default=None, description="The run's dataset.time_range, verbatim, when it recorded one"
    )
    labels: str | None = Field(default=None, description="A point-in-time training set's labels")
    label_rows: int | None = Field(default=None, description="Its label rows (every one joined)")
    label_rows_dropped: int | None = Field(
        default=None, description="Label rows left out for lacking features (missing, expired, null)"
    )


class TrainingRecord(BaseModel):
    """Lineage from the training run; fields the run did not record stay None."""

    model_config = ConfigDict(frozen=True)

    run_id: str | None = None
    status: str | None = None
    code_version: str | None = None
    dataset: TrainingDataset | None = None
    trained_at: str | None = Field(default=None, description="When the run ended (or started, if running)")
    candidate_id: str | None = None
    family: str | None = None
    params: dict[str, Any] | None = None
    seed: int | None = None
    package_versions: dict[str, str] | None = None
    gate_passed: bool | None = None
    gate_reason: str | None = None
    triggered_by: dict[str, Any] | None = Field(
        default=None, description="The drift run and event that started the run (the retraining loop)"
    )


class ModelCard(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_name: str
    version: int
    description: str
    owner: str | None
    intended_use: str
    created_at: str
    created_by: str | None
    stage: str
    aliases: list[str]
    task: str
    features: list[FeatureSpec]
    feature_views: list[FeatureViewInput] = Field(
        default_factory=list, description="The feature views its inputs are read from (the signature's)"
    )
    classes: list[ClassLabel] | None
    target: str | None
    artifact: ArtifactSummary
    training: TrainingRecord | None = Field(description="None when no training run is linked")
    metrics: dict[str, float]
    gate: list[GateRow]
    limitations: str
    generated_at: str


def build_model_card(
    model: RegisteredModel,
    version: ModelVersion,
    aliases: list[str],
    run: Mapping[str, Any] | None,
    policy_thresholds: Mapping[str, Mapping[str, float | None]] | None,
    *,
    now: datetime | None = None,
) -> ModelCard:
    """Assemble the card of ``version`` of ``model``.

    ``run`` is the tracked run (as ``RunTracker.get_with_candidates`` returns it) or None;
    ``policy_thresholds`` maps a metric to its bounds, ``{"roc_auc": {"min": 0.9}}``; a bound
    that is None is absent (so a dumped ``PromotionPolicy.thresholds`` can be passed as is).
    Records that contradict each other (another model's version, another version's run)
    are refused rather than merged into a card that would misstate lineage.
    """
    if version.model_name != model.name:
        raise ValueError(f"version belongs to model '{version.model_name}', not '{model.name}'")
    if run is not None:
        if run.get("model_name") not in (None, model.name):
            raise ValueError(f"run '{run.get('run_id')}' trained model '{run.get('model_name')}'")
        if version.run_id is not None and run.get("run_id") != version.run_id:
            raise ValueError(
                f"version {version.version} came from run '{version.run_id}', not '{run.get('run_id')}'"
            )
    generated = now or datetime.now(UTC)
    if generated.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    signature = version.signature
    return ModelCard(
        model_name=model.name,
        version=version.version,
        description=version.description.strip() or model.description.strip(),
        owner=model.owner,
        intended_use=_declared(model.tags.get("intended_use")) or model.description.strip() or NOT_DECLARED,
        created_at=version.created_at,
        created_by=version.created_by,
        stage=version.stage,
        aliases=sorted(set(aliases)),
        task=signature.task,
        features=list(signature.features),
        feature_views=list(signature.feature_views),
        classes=signature.shown_classes,
        target=signature.target,
        artifact=ArtifactSummary(
            key=version.artifact.key,
            sha256=version.artifact.sha256,
            size_bytes=version.artifact.size_bytes,
            s3_version_id=version.artifact.s3_version_id,
            format=version.artifact.format,
        ),
        training=_training(version, run),
        metrics=dict(version.metrics),
        gate=_policy_gate(version.metrics, policy_thresholds or {}) + _training_gate(version.metrics, run),
        limitations=_declared(model.tags.get("limitations")) or NOT_DECLARED,
        generated_at=iso(generated),
    )


def _declared(value: str | None) -> str | None:
    return (value.strip() or None) if value is not None else None


def _training(version: ModelVersion, run: Mapping[str, Any] | None) -> TrainingRecord | None:
    if run is None:
        # The run record may be gone while the version still names it: keep that lineage.
        return TrainingRecord(run_id=version.run_id) if version.run_id else None
    candidate_id = run.get("best_candidate") or version.tags.get("candidate")
    candidate: dict[str, Any] = next(
        (c for c in run.get("candidates") or [] if c.get("candidate_id") == candidate_id),
        {},
    )
    dataset = run.get("dataset")
    training_set = run.get("training_set") or {}
    report = training_set.get("report") or {}
    evaluation = run.get("evaluation") or {}
    return TrainingRecord(
        run_id=run.get("run_id"),
        status=run.get("status"),
        code_version=run.get("code_version"),
        dataset=TrainingDataset(
            key=dataset.get("key"),
            sha256=dataset.get("sha256"),
            s3_version_id=dataset.get("version_id"),
            rows=dataset.get("rows"),
            time_range=dataset.get("time_range"),
            labels=training_set.get("labels"),
            label_rows=report.get("rows"),
            label_rows_dropped=report.get("rows_dropped"),
        )
        if dataset
        else None,
        trained_at=run.get("ended_at") or run.get("started_at"),
        candidate_id=candidate_id,
        family=candidate.get("family"),
        params=candidate.get("params"),
        seed=candidate.get("seed"),
        package_versions=candidate.get("package_versions"),
        gate_passed=evaluation.get("passed"),
        gate_reason=evaluation.get("reason"),
        triggered_by=run.get("triggered_by"),
    )


def _gate_row(
    metric: str,
    value: float | None,
    threshold: float,
    direction: Direction,
    source: Literal["policy", "training"],
) -> GateRow:
    passed = value is not None and (value >= threshold if direction == "min" else value <= threshold)
    return GateRow(
        metric=metric, value=value, threshold=threshold, direction=direction, passed=passed, source=source
    )


def _policy_gate(
    metrics: dict[str, float], thresholds: Mapping[str, Mapping[str, float | None]]
) -> list[GateRow]:
    rows = []
    for metric, bounds in thresholds.items():
        unknown = set(bounds) - {"min", "max"}
        if unknown:
            raise ValueError(f"policy bound(s) {sorted(unknown)} on '{metric}': only 'min' and 'max' exist")
        for direction in ("min", "max"):
            threshold = bounds.get(direction)
            if threshold is not None:
                rows.append(_gate_row(metric, metrics.get(metric), threshold, direction, "policy"))
    return rows


def _training_gate(metrics: dict[str, float], run: Mapping[str, Any] | None) -> list[GateRow]:
    evaluation = (run or {}).get("evaluation") or {}
    metric = evaluation.get("metric")
    threshold = evaluation.get("threshold")
    if metric is None or threshold is None:
        return []
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"the run was gated on '{metric}', whose direction is unknown")
    value = (evaluation.get("holdout_metrics") or {}).get(metric, metrics.get(metric))
    return [_gate_row(metric, value, threshold, "min" if HIGHER_IS_BETTER[metric] else "max", "training")]


# ---- Markdown ---------------------------------------------------------------------------
def _cell(value: object) -> str:
    """A table cell: pipes escaped, line breaks flattened, so one value cannot split a row."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _text(value: object | None) -> str:
    return "—" if value is None or value == "" else str(value)


def _size(size_bytes: int) -> str:
    if size_bytes < 1024:
        return f"{size_bytes} bytes"
    scaled, unit = size_bytes / 1024, "KiB"
    for larger in ("MiB", "GiB"):
        if scaled < 1024:
            break
        scaled, unit = scaled / 1024, larger
    return f"{size_bytes:,} bytes ({scaled:.1f} {unit})"


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _metrics_rows(card: ModelCard) -> list[list[object]]:
    rows: list[list[object]] = []
    gated = set()
    for row in card.gate:
        gated.add(row.metric)
        bound = f"{'≥' if row.direction == 'min' else '≤'} {_number(row.threshold)} ({row.source})"
        rows.append([row.metric, _number(row.value), bound, "yes" if row.passed else "no"])
    rows += [[m, _number(v), "—", "—"] for m, v in sorted(card.metrics.items()) if m not in gated]
    return rows


def _training_data_section(training: TrainingRecord | None, card: ModelCard) -> list[str]:
    dataset = training.dataset if training else None
    views = [
        f"`{v.view}`" + (f" v{v.version}" if v.version is not None else "") + f" ({len(v.features)} features)"
        for v in card.feature_views
    ]
    lines = [f"- **Feature views:** {', '.join(views)}"] if views else []
    if dataset is None:
        return [*lines, "The training data is not recorded for this version."]
    if dataset.labels:
        dropped = dataset.label_rows_dropped or 0
        lines.append(
            f"- **Labels:** `{dataset.labels}`, joined point-in-time: "
            f"{_text(dataset.label_rows)} label rows, {dropped} dropped for lacking features"
        )
    time_range = ", ".join(f"{k}: {v}" for k, v in dataset.time_range.items()) if dataset.time_range else None
    return [
        *lines,
        f"- **Dataset:** {_text(dataset.key and f'`{dataset.key}`')}",
        f"- **S3 version:** {_text(dataset.s3_version_id)}",
        f"- **sha256:** {_text(dataset.sha256 and f'`{dataset.sha256}`')}",
        f"- **Rows:** {_text(dataset.rows and f'{dataset.rows:,}')}",
        f"- **Time range:** {_text(time_range)}",
    ]


def _training_section(training: TrainingRecord | None) -> list[str]:
    if training is None:
        return ["No training run is linked to this version."]
    lines = [
        f"- **Run:** {_text(training.run_id and f'`{training.run_id}`')}",
        f"- **Status:** {_text(training.status)}",
        f"- **Trained at:** {_text(training.trained_at)}",
        f"- **Code version:** {_text(training.code_version)}",
        f"- **Candidate:** {_text(training.candidate_id)}",
        f"- **Family:** {_text(training.family)}",
        f"- **Seed:** {_text(training.seed)}",
    ]
    if training.triggered_by:
        lines.append(f"- **Triggered by:** {_trigger(training.triggered_by)}")
    if training.gate_passed is not None:
        # A failed gate says why (threshold, champion); a passed one has nothing to add.
        verdict = "passed" if training.gate_passed else f"failed ({_text(training.gate_reason)})"
        lines.append(f"- **Training gate:** {verdict}")
    if training.package_versions:
        packages = ", ".join(f"{name}=={v}" for name, v in sorted(training.package_versions.items()))
        lines.append(f"- **Packages:** {packages}")
    if training.params is not None:
        lines += [
            "",
            "Hyper-parameters:",
            "",
            "```json",
            json.dumps(training.params, indent=2, sort_keys=True),
            "```",
        ]
    return lines


def _trigger(triggered_by: Mapping[str, Any]) -> str:
    """``drift run `r-1` (DriftDetected: concept, event `e-1`)``: where the run came from."""
    event = triggered_by.get("event") or {}
    kinds = ", ".join(str(k) for k in event.get("kinds") or [])
    about = ": ".join(part for part in (str(event.get("type") or "event"), kinds) if part)
    served = f", on v{event['model_version']}" if event.get("model_version") is not None else ""
    event_id = f", event `{event['id']}`" if event.get("id") else ""
    return f"drift run `{triggered_by.get('drift_run_id', '—')}` ({about}{served}{event_id})"


def render_markdown(card: ModelCard) -> str:
    """The card as a Markdown document, one section per concern."""
    classes = ", ".join(str(c) for c in card.classes) if card.classes else None
    lines = [
        f"# Model card: {card.model_name} v{card.version}",
        "",
        f"_Generated {card.generated_at}._",
        "",
        "## Overview",
        "",
        f"- **Model:** {card.model_name}",
        f"- **Version:** {card.version}",
        f"- **Description:** {_text(card.description)}",
        f"- **Owner:** {_text(card.owner)}",
        f"- **Stage:** {card.stage}",
        f"- **Aliases:** {', '.join(card.aliases) if card.aliases else '—'}",
        f"- **Registered:** {card.created_at}" + (f" by {card.created_by}" if card.created_by else ""),
        "",
        "## Intended use",
        "",
        card.intended_use,
        "",
        "## Training data",
        "",
        *_training_data_section(card.training, card),
        "",
        "## Training",
        "",
        *_training_section(card.training),
        "",
        "## Metrics",
        "",
        *(
            _table(["metric", "value", "threshold", "passes"], _metrics_rows(card))
            if card.metrics or card.gate
            else ["No metrics were recorded for this version."]
        ),
        "",
        "## Signature",
        "",
        f"- **Task:** {card.task}",
        f"- **Target:** {_text(card.target)}",
        f"- **Classes:** {_text(classes)}",
        "",
        *_table(
            ["#", "feature", "type"], [[i, f.name, _feature_type(f)] for i, f in enumerate(card.features, 1)]
        ),
        "",
        "## Artifact",
        "",
        f"- **Key:** `{card.artifact.key}`",
        f"- **Format:** {card.artifact.format}",
        f"- **sha256:** `{card.artifact.sha256}`",
        f"- **Size:** {_size(card.artifact.size_bytes)}",
        f"- **S3 version:** {_text(card.artifact.s3_version_id)}",
        "",
        "## Limitations",
        "",
        card.limitations,
        "",
    ]
    return "\n".join(lines)


def _feature_type(feature: FeatureSpec) -> str:
    if feature.categories is None:
        return feature.type
    return f"category ({len(feature.categories)} values)"
