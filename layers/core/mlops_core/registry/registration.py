"""Registering a version: check everything, write the artifact under its content
address, then take the next version number in one transaction."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pydantic import ValidationError

from mlops_core.clock import now_iso
from mlops_core.errors import Conflict, Invalid, NotFound, detail
from mlops_core.registry.entities import (
    ArtifactRef,
    AuditRecord,
    ModelVersion,
    RegisteredModel,
    RegisterVersionRequest,
    check_model_name,
)
from mlops_core.registry.events import ModelVersionRegistered
from mlops_core.registry.signature import ModelSignature, sha256_hex
from mlops_core.storage import keys

if TYPE_CHECKING:
    from mlops_core.registry.service import ModelRegistry, ModelValidator

_MAX_REGISTER_ATTEMPTS = 5
#: Largest artifact a version may have: it is read whole here and by the inference
#: function (1 GiB of memory), where an ONNX session needs about twice its size.
MAX_ARTIFACT_BYTES = 256 * 1024 * 1024


def register_version(
    registry: ModelRegistry,
    name: str,
    request: RegisterVersionRequest,
    *,
    actor: str | None = None,
    validate_model: ModelValidator | None = None,
) -> ModelVersion:
    """Copy an uploaded artifact to its content-addressed key and record a new version.

    The model is created on its first version. The artifact's sha256 is computed from
    the bytes read (and must equal ``request.sha256`` when given); the S3 object version
    written is recorded so that what a version serves never changes. Everything is
    checked before anything is written: the artifact (size, checksum, that it loads and
    matches its signature) and the run it names (if this registry tracked that run, it
    must have trained this model).

    Idempotent: the same artifact (sha256) from the same run registered again — a
    client retrying after a timeout — returns the version already registered. A
    marker item written in the registration's transaction makes this race-free.
    """
    check_model_name(name)
    try:
        size = registry.store.size(request.artifact_key)
        if size > MAX_ARTIFACT_BYTES:
            raise Invalid(
                f"the artifact is {size} bytes; the limit is {MAX_ARTIFACT_BYTES} "
                "(the inference function loads it into memory)",
                details=[
                    detail(["body", "artifact_key"], f"at most {MAX_ARTIFACT_BYTES} bytes", "too_large")
                ],
            )
        source = registry.store.get(request.artifact_key)
    except NotFound:
        raise NotFound(
            f"no uploaded artifact at artifact_key '{request.artifact_key}'",
            details=[detail(["body", "artifact_key"], "no object at this key", "missing")],
        ) from None
    checksum = sha256_hex(source.data)
    if request.sha256 and request.sha256.lower() != checksum:
        raise Invalid(
            "the uploaded artifact does not match the sha256 given",
            details=[detail(["body", "sha256"], f"object's sha256 is {checksum}", "checksum_mismatch")],
        )
    signature = request.signature or _read_signature_beside(registry, request.artifact_key)
    if signature.feature_views and registry.feature_views is not None:
        # The views exist, hold these features with fitting types; their versions and entity
        # keys are filled in (serving keys entity ids without reading the definitions).
        signature = registry.feature_views(signature)
    if validate_model is not None:
        validate_model(source.data, signature)
    _check_run(registry, name, request.run_id)

    already = registry.repository.registered_version(name, checksum, request.run_id)
    if already is not None:
        return registry.get_version(name, already)
    # Content-addressed keys, written once: a losing concurrent registration can never change
    # what a winner's version points at, and registering the same bytes again writes nothing.
    stored = registry.store.put_once(keys.registered_artifact(name, checksum), source.data)
    signature_bytes = signature.model_dump_json(indent=2).encode()
    signature_key = keys.registered_artifact(name, sha256_hex(signature_bytes), keys.SIGNATURE_FILE)
    registry.store.put_once(signature_key, signature_bytes, content_type="application/json")
    artifact = ArtifactRef(
        key=stored.key,
        s3_version_id=stored.version_id,
        sha256=checksum,
        size_bytes=len(source.data),
        signature_key=signature_key,
    )
    for _ in range(_MAX_REGISTER_ATTEMPTS):
        already = registry.repository.registered_version(name, checksum, request.run_id)
        if already is not None:
            return registry.get_version(name, already)
        existing = registry.repository.model(name, consistent=True)
        previous = existing.latest_version if existing else 0
        created = now_iso()
        version = ModelVersion(
            model_name=name,
            version=previous + 1,
            artifact=artifact,
            signature=signature,
            metrics=request.metrics,
            run_id=request.run_id,
            tags=request.tags,
            description=request.description,
            created_at=created,
            created_by=actor,
        )
        new_model = (
            None
            if existing
            else RegisteredModel(
                name=name,
                owner=actor,
                latest_version=version.version,
                created_at=created,
                updated_at=created,
            )
        )
        audit = AuditRecord(
            model_name=name,
            at=created,
            action="register",
            alias=None,
            from_version=None,
            to_version=version.version,
            revision=0,
            actor=actor,
            reason=request.description,
        )
        try:
            registry.repository.register(version, audit, new_model=new_model, previous=previous)
        except Conflict:
            continue  # another registration took this number (or registered this artifact)
        registry.announce(
            ModelVersionRegistered(
                model_name=name,
                version=version.version,
                run_id=request.run_id,
                artifact_sha256=checksum,
                metrics=request.metrics,
                actor=actor,
            )
        )
        registry.store_model_card(name, version.version)
        return version
    raise Conflict(f"model '{name}' is being registered concurrently; retry")


def _check_run(registry: ModelRegistry, name: str, run_id: str | None) -> None:
    """A run this registry tracked must have trained this model (or the card, the audit
    and the lineage would contradict each other). A run id it does not know is kept as
    an external reference: models trained elsewhere keep their own run ids."""
    if run_id is None or registry.runs is None:
        return
    try:
        run = registry.runs(run_id)
    except (NotFound, Invalid):
        return
    if run.get("model_name") != name:
        raise Invalid(
            f"run '{run_id}' trained model '{run.get('model_name')}', not '{name}'",
            details=[detail(["body", "run_id"], "the run trained another model", "run_of_other_model")],
        )


def _read_signature_beside(registry: ModelRegistry, artifact_key: str) -> ModelSignature:
    signature_key = keys.sibling(artifact_key, keys.SIGNATURE_FILE)
    try:
        raw = registry.store.get(signature_key).data
    except NotFound as error:
        raise Invalid(
            f"no signature given and no {keys.SIGNATURE_FILE} next to the artifact",
            details=[detail(["body", "signature"], f"{keys.SIGNATURE_FILE} not found beside it", "missing")],
        ) from error
    try:
        return ModelSignature.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as error:
        raise Invalid(
            f"the {keys.SIGNATURE_FILE} beside the artifact is not a valid model signature",
            details=[detail(["body", "signature"], str(error)[:500], "signature")],
        ) from error
