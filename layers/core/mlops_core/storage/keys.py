"""Every key the project stores things under: the metadata table's partition and sort
keys, its index, and the artifacts bucket's prefixes.

One module owns them so that two domains can never disagree about where an item lives,
and a reader sees the whole storage layout in one place (docs/architecture.md lists it
as a table). ``tests/unit/test_storage_keys.py`` checks that no other module spells a
key pattern of its own.
"""

from __future__ import annotations

import time

# ---- the metadata table (single-table design) ------------------------------------------
PARTITION_KEY = "pk"
SORT_KEY = "sk"
#: The one global secondary index: models by name, a model's runs by start time.
LIST_INDEX = "gsi1"
LIST_INDEX_PARTITION_KEY = "gsi1pk"
LIST_INDEX_SORT_KEY = "gsi1sk"
KEY_ATTRIBUTES = frozenset({PARTITION_KEY, SORT_KEY, LIST_INDEX_PARTITION_KEY, LIST_INDEX_SORT_KEY})

# Models, versions, aliases, audit records and registration markers share the model's partition.
MODEL_SK = "MODEL"
ALL_MODELS = "MODELS"  # LIST_INDEX partition of every model item
VERSION_PREFIX = "VERSION#"
ALIAS_PREFIX = "ALIAS#"
AUDIT_PREFIX = "AUDIT#"
REGISTERED_PREFIX = "REGISTERED#"

# Routing: the policy in force, the bandit's posterior counts, and per version the plain
# totals (requests, feedback, rewards) — all in the model's partition.
ROUTING_SK = "ROUTING"
ARMS_SK = "ARMS"
VARIANT_PREFIX = "VARIANT#"
#: Routing over time: one item per model and time bucket (traffic and feedback per version,
#: the bandit's posterior at the bucket's end), sorted by the bucket's start; TTL ``expires_at``.
ROUTING_HISTORY_PREFIX = "ROUTING_HISTORY#"
# Guarded rollouts: the marker of the one rollout in progress (its id; absent or without an
# id when none runs), and one record per rollout, sorted by id (ids begin with their time).
ROLLOUT_SK = "ROLLOUT"
ROLLOUT_PREFIX = "ROLLOUT#"

# Monitoring: the model's configuration and its drift runs (time first: history in order);
# the list index holds every monitored model (the scheduled dispatcher reads it).
MONITORING_SK = "MONITORING"
DRIFT_RUN_PREFIX = "DRIFT#"
MONITORED_MODELS = "MONITORED"  # LIST_INDEX partition of every MONITORING item
#: Concept drift's streaming detector (ADWIN) between drift runs, with its watermark.
CONCEPT_SK = "CONCEPT"
#: The retraining loop: the model's claim on a retraining run (cooldown, one at a time) and
#: every decision it made on a DriftDetected event (time first: history in order).
RETRAINING_SK = "RETRAINING"
RETRAIN_DECISION_PREFIX = "RETRAIN#"

# Training runs: the run item and its candidates share the run's partition.
RUN_SK = "RUN"
CANDIDATE_PREFIX = "CANDIDATE#"


def model_pk(name: str) -> str:
    return f"MODEL#{name}"


def version_sk(version: int) -> str:
    # Zero-padded so that sort-key order is version order.
    return f"{VERSION_PREFIX}{version:06d}"


def alias_sk(alias: str) -> str:
    return f"{ALIAS_PREFIX}{alias}"


def audit_sk(at: str, alias: str | None, revision: int, action: str) -> str:
    """Time first, so that a model's audit trail reads in order; the rest keeps two
    records of the same millisecond apart."""
    return f"{AUDIT_PREFIX}{at}#{alias or '-'}#{revision:06d}#{action}"


def registered_sk(sha256: str, run_id: str | None) -> str:
    """The marker that makes registration idempotent on (artifact sha256, run id)."""
    return f"{REGISTERED_PREFIX}{sha256}#{run_id or '-'}"


def variant_sk(version: int) -> str:
    """One version's routing totals (zero-padded: sort-key order is version order)."""
    return f"{VARIANT_PREFIX}{version:06d}"


def routing_history_sk(bucket_start: str) -> str:
    """One time bucket of a model's routing history (``bucket_start``: fixed-width ISO 8601,
    so that sort-key order is time order)."""
    return f"{ROUTING_HISTORY_PREFIX}{bucket_start}"


def drift_run_sk(at: str, run_id: str) -> str:
    return f"{DRIFT_RUN_PREFIX}{at}#{run_id}"


def rollout_sk(rollout_id: str) -> str:
    return f"{ROLLOUT_PREFIX}{rollout_id}"


def retrain_decision_sk(at: str, event_id: str) -> str:
    return f"{RETRAIN_DECISION_PREFIX}{at}#{event_id}"


def run_pk(run_id: str) -> str:
    return f"RUN#{run_id}"


def candidate_sk(candidate_id: str) -> str:
    return f"{CANDIDATE_PREFIX}{candidate_id}"


def model_runs(model_name: str) -> str:
    """LIST_INDEX partition of a model's runs (sorted by start time)."""
    return f"RUNS#{model_name}"


# ---- the prediction log (its own table, with a TTL) ----------------------------------------
#: A prediction and the feedback on it share the prediction id's partition: the captured
#: prediction is written in bulk (no conditions needed), the feedback under a condition.
PREDICTION_SK = "PREDICTION"
FEEDBACK_SK = "FEEDBACK"
#: The TTL attribute (Unix seconds) of the prediction log.
EXPIRES_AT = "expires_at"


def prediction_pk(prediction_id: str) -> str:
    return f"PREDICTION#{prediction_id}"


#: A delivery of capture lines that has been counted (its first log event id): the capture
#: function adds a delivery's request counts in the transaction that writes this marker,
#: so a redelivered batch is counted once.
CAPTURE_BATCH_SK = "CAPTURE_BATCH"


def capture_batch_pk(batch_id: str) -> str:
    return f"CAPTURE_BATCH#{batch_id}"


# ---- feature views (the metadata table) and the online store (the features table) --------
#: A feature view's partition in the metadata table holds its definition (``VIEW``), every
#: applied version (``VERSION#000003``), the materializer's state (``STATE``: watermark and
#: freshness), its writer lease (``LEASE``), the source objects already read (``SOURCE#{key}``)
#: and its materialization runs (``MATERIALIZATION#{run}``, run ids are time-ordered).
FEATURE_VIEW_SK = "VIEW"
FEATURE_STATE_SK = "STATE"
FEATURE_LEASE_SK = "LEASE"
FEATURE_SOURCE_PREFIX = "SOURCE#"
MATERIALIZATION_PREFIX = "MATERIALIZATION#"
FEATURE_VIEWS = "FEATURE_VIEWS"  # LIST_INDEX partition of every VIEW item (list, dispatcher)


def feature_view_pk(view: str) -> str:
    return f"FEATURE_VIEW#{view}"


def feature_source_sk(object_key: str) -> str:
    return f"{FEATURE_SOURCE_PREFIX}{object_key}"


def materialization_sk(run_id: str) -> str:
    return f"{MATERIALIZATION_PREFIX}{run_id}"


#: The features table (its own table, TTL ``expires_at``): one item per view and entity,
#: keyed ``{view}#{entity}`` alone (no sort key), so one BatchGetItem reads up to 100
#: entities of any views in one round trip (docs/features.md, "The online read API").
FEATURE_KEY = "pk"
#: Attributes of an online item: the event time (Unix ms), the created time (Unix ms or
#: absent), the view version that wrote it, the feature values (one JSON object) and the
#: time it was written (Unix ms). ``EXPIRES_AT`` (Unix s: event time + the view's TTL).
FEATURE_EVENT_TIME = "t"
FEATURE_CREATED_TIME = "c"
FEATURE_VIEW_VERSION = "ver"
FEATURE_VALUES = "v"
FEATURE_WRITTEN_AT = "w"


def feature_item_key(view: str, entity_id: str) -> str:
    """The online item of one entity of one view: ``{view}#{entity}``. View names cannot
    contain ``#``; the entity id is its canonical text (an int64 key as ``str(int)``)."""
    return f"{view}#{entity_id}"


# ---- the artifacts bucket ----------------------------------------------------------------
MODELS_PREFIX = "models/"
RUNS_PREFIX = "runs/"
DATASETS_PREFIX = "datasets/"
#: Where callers upload artifacts to register (the registry also registers training
#: candidates from RUNS_PREFIX and existing artifacts from MODELS_PREFIX).
UPLOADS_PREFIX = "uploads/"
REGISTRABLE_PREFIXES = (UPLOADS_PREFIX, RUNS_PREFIX, MODELS_PREFIX)
MODEL_FILE = "model.onnx"
SIGNATURE_FILE = "signature.json"


def registered_artifact(model_name: str, sha256: str, filename: str = MODEL_FILE) -> str:
    """A registered version's files, addressed by the model bytes' sha256.

    Content-addressed, so a key is only ever written with the bytes its name promises:
    a registration that loses the race for a version number cannot overwrite the bytes
    a winner points at, with or without bucket versioning (the same artifact registered
    twice writes the same bytes again).
    """
    return f"{MODELS_PREFIX}{model_name}/sha256/{sha256}/{filename}"


def model_card(model_name: str, version: int, extension: str) -> str:
    """A version's model card (regenerated documentation, not an artifact anything pins)."""
    return f"{MODELS_PREFIX}{model_name}/cards/{version}/model_card.{extension}"


CAPTURE_PREFIX = "capture/"


def capture_object(model_name: str, at_ms: int, batch_id: str) -> str:
    """Captured predictions of one delivery, partitioned by model and hour (UTC), like
    SageMaker's data capture: ``capture/{model}/{yyyy}/{mm}/{dd}/{hh}/{batch}.jsonl``."""
    hour = time.strftime("%Y/%m/%d/%H", time.gmtime(at_ms / 1000))
    return f"{CAPTURE_PREFIX}{model_name}/{hour}/{batch_id}.jsonl"


def capture_hours(model_name: str, start_ms: int, end_ms: int) -> list[str]:
    """The hour prefixes of ``capture_object`` that can hold predictions made in
    [start_ms, end_ms): one per UTC hour, oldest first."""
    hour_ms = 3_600_000
    first, last = start_ms - start_ms % hour_ms, max(start_ms, end_ms - 1)
    return [
        f"{CAPTURE_PREFIX}{model_name}/{time.strftime('%Y/%m/%d/%H', time.gmtime(at / 1000))}/"
        for at in range(first, last + 1, hour_ms)
    ]


DRIFT_REPORTS_PREFIX = "drift-reports/"
FEEDBACK_CAPTURE_PREFIX = "feedback/"


def drift_report(model_name: str, at_ms: int, run_id: str, extension: str) -> str:
    """A drift run's report: ``drift-reports/{model}/{yyyy}/{mm}/{dd}/{run}/report.{json,html}``."""
    day = time.strftime("%Y/%m/%d", time.gmtime(at_ms / 1000))
    return f"{DRIFT_REPORTS_PREFIX}{model_name}/{day}/{run_id}/report.{extension}"


def feedback_object(model_name: str, at_ms: int, batch_id: str) -> str:
    """Counted feedback of one stream batch, by model and hour, like the capture:
    ``feedback/{model}/{yyyy}/{mm}/{dd}/{hh}/{batch}.jsonl`` (concept drift and retraining
    datasets read it in bulk)."""
    hour = time.strftime("%Y/%m/%d/%H", time.gmtime(at_ms / 1000))
    return f"{FEEDBACK_CAPTURE_PREFIX}{model_name}/{hour}/{batch_id}.jsonl"


def feedback_hours(model_name: str, start_ms: int, end_ms: int) -> list[str]:
    """The hour prefixes of ``feedback_object`` for feedback recorded in [start_ms, end_ms)."""
    return [
        prefix.replace(CAPTURE_PREFIX, FEEDBACK_CAPTURE_PREFIX, 1)
        for prefix in capture_hours(model_name, start_ms, end_ms)
    ]


#: Where feature views' sources live (CSV or JSON Lines objects): the materializer may read
#: and list only under this prefix.
FEATURE_SOURCES_PREFIX = "feature-sources/"


def training_set_object(run_id: str, filename: str) -> str:
    """A point-in-time training set built for a run (its dataset, schema, every label row with
    its status, the report): ``datasets/training-sets/{run_id}/{filename}``. Under datasets/,
    so every step that reads a run's dataset reads it there as it reads a flat CSV."""
    return f"{DATASETS_PREFIX}training-sets/{run_id}/{filename}"


TRAINING_SETS_PREFIX = f"{DATASETS_PREFIX}training-sets/"


def uploaded_labels(sha256: str) -> str:
    """A labels file `mlops train --labels FILE` uploaded, addressed by its bytes' sha256 (the
    same file twice is one object; a run's labels are never overwritten)."""
    return f"{DATASETS_PREFIX}labels/sha256/{sha256}/labels.csv"


def reference_profile(run_id: str) -> str:
    return f"{RUNS_PREFIX}{run_id}/reference_profile.json"


def candidate_artifact(run_id: str, candidate_id: str, filename: str) -> str:
    return f"{RUNS_PREFIX}{run_id}/candidates/{candidate_id}/{filename}"


def sibling(key: str, filename: str) -> str:
    """``filename`` in the same folder as ``key`` (schema.json beside data.csv, and so on)."""
    return f"{key.rsplit('/', 1)[0]}/{filename}" if "/" in key else filename


# ---- feature view usage by model versions (inference by entity id) ---------------------------
#: ``FEATURE_VIEW#{view} / USED_BY#{model}#{version:06d}``: a registered version's signature reads
#: this view (written in the registration's transaction; ``apply`` queries them).
FEATURE_USED_BY_PREFIX = "USED_BY#"


def feature_used_by_sk(model_name: str, version: int) -> str:
    return f"{FEATURE_USED_BY_PREFIX}{model_name}#{version:06d}"


def search_study(run_id: str) -> str:
    """A search run's Optuna study between rounds: every trial asked and told (JSON)."""
    return f"{RUNS_PREFIX}{run_id}/search/study.json"


#: What a SageMaker training job writes beside its candidate's model: the candidate's result.
TRAINING_JOB_RESULT_FILE = "result.json"
#: ...and the candidate it reads (the Map item, written by ValidateData or SearchRound).
TRAINING_JOB_INPUT_FILE = "candidate.json"
#: A SageMaker training job's own output (model.tar.gz of /opt/ml/model: empty, the job writes
#: its candidate's files itself) goes under this prefix, one folder per job.
TRAINING_JOB_OUTPUT_PREFIX = f"{RUNS_PREFIX}training-jobs/"

# ---- batch scoring ------------------------------------------------------------------------
#: A batch job's record (its own partition); the list index holds every job, newest first.
BATCH_JOB_SK = "BATCH_JOB"
ALL_BATCH_JOBS = "BATCH_JOBS"  # LIST_INDEX partition of every batch job
#: Where users put the objects a batch job scores (the scoring function reads nothing else).
BATCH_INPUT_PREFIX = "batch-input/"
#: A job's outputs: predictions and refused rows per input object.
BATCH_PREFIX = "batch/"
#: The Distributed Map's ResultWriter prefix: Step Functions writes
#: ``{prefix}/{map run id}/manifest.json`` and the SUCCEEDED/FAILED result files beside it.
BATCH_MAP_RUNS_PREFIX = "batch/map-runs"


def batch_job_pk(job_id: str) -> str:
    return f"BATCH#{job_id}"


def batch_output_prefix(job_id: str) -> str:
    return f"{BATCH_PREFIX}{job_id}/"


def batch_predictions(job_id: str, relative_key: str) -> str:
    """An input object's predictions (CSV): its key below the input prefix, under the job's
    output (``part-01.csv`` -> ``predictions/part-01.csv``, ``a.jsonl`` -> ``predictions/a.jsonl.csv``)."""
    return f"{batch_output_prefix(job_id)}predictions/{_with_suffix(relative_key, '.csv')}"


def batch_errors(job_id: str, relative_key: str) -> str:
    """An input object's refused rows (JSON Lines of line and reason), written only when there
    are some (``part-01.csv`` -> ``errors/part-01.csv.jsonl``)."""
    return f"{batch_output_prefix(job_id)}errors/{_with_suffix(relative_key, '.jsonl')}"


def _with_suffix(key: str, suffix: str) -> str:
    return key if key.endswith(suffix) else f"{key}{suffix}"


#: Every search run's study (``search_study``), as an IAM key pattern: what a pruned trial reads.
SEARCH_STUDIES_PATTERN = f"{RUNS_PREFIX}*/search/"

#: Partitioned feature materialization: the Distributed Map's ResultWriter prefix (as batch's).
FEATURE_MAP_RUNS_PREFIX = "feature-map-runs"
