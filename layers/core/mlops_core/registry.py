"""The model registry: models, immutable numbered versions, and movable aliases.

Storage (single metadata table):

- ``MODEL#{name} / MODEL`` — the model: description, tags, owner, ``latest_version``;
  also indexed under ``gsi1pk = "MODELS"`` so models can be listed.
- ``MODEL#{name} / VERSION#{000007}`` — one version: artifact (key, S3 version id,
  sha256, size), signature, metrics, run id, stage, tags. Never rewritten in place
  except for governance fields (stage, tags, description).
- ``MODEL#{name} / ALIAS#{alias}`` — alias -> version, with a ``revision`` that every
  change increments, so concurrent moves are serialized by conditional writes.

Version numbers come from a conditional update of ``latest_version`` in the same
transaction that writes the version item: no gaps, no duplicates, nothing half-written.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from mlops_core.artifacts import (
    ARTIFACT_FORMAT,
    SIGNATURE_FILE,
    ModelSignature,
    model_key,
    sha256_hex,
)
from mlops_core.dynamo import Item, MetadataTable
from mlops_core.errors import Conflict, Invalid, NotFound, Unavailable, detail
from mlops_core.events import (
    DomainEvent,
    EventPublisher,
    ModelPromoted,
    ModelRolledBack,
    ModelVersionRegistered,
)
from mlops_core.s3 import ArtifactStore

LOGGER = logging.getLogger(__name__)
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
# Keys of caller-supplied maps must not be empty (DynamoDB refuses empty map keys), and
# are bounded like AWS resource tags.
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=128)]
TagValue = Annotated[str, StringConstraints(max_length=256)]
Tags = dict[TagKey, TagValue]
MetricName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)
_ALIAS = re.compile(ALIAS_PATTERN)
MODELS_INDEX = "gsi1"
PRODUCTION = "production"
STAGE_OF_ALIAS = {"production": "Production", "staging": "Staging"}
MAX_ALIAS_HISTORY = 20
_MAX_REGISTER_ATTEMPTS = 5

Stage = Literal["None", "Staging", "Production", "Archived"]
ModelValidator = Callable[[bytes, ModelSignature], None]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def model_pk(name: str) -> str:
    return f"MODEL#{name}"


def version_sk(version: int) -> str:
    return f"VERSION#{version:06d}"


def alias_sk(alias: str) -> str:
    return f"ALIAS#{alias}"


def check_model_name(name: str) -> str:
    if not _MODEL_NAME.match(name):
        raise Invalid(
            f"invalid model name {name!r}",
            details=[detail(["path", "name"], f"must match {MODEL_NAME_PATTERN}", "pattern")],
        )
    return name


def check_alias(alias: str) -> str:
    if not _ALIAS.match(alias):
        raise Invalid(
            f"invalid alias {alias!r}",
            details=[detail(["path", "alias"], f"must match {ALIAS_PATTERN}", "pattern")],
        )
    return alias


class ArtifactRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    s3_version_id: str | None
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int
    format: str = ARTIFACT_FORMAT
    signature_key: str | None = None


class MetricBound(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min: float | None = None
    max: float | None = None


class PromotionPolicy(BaseModel):
    """What a version needs before it may become production."""

    model_config = ConfigDict(extra="forbid")

    thresholds: dict[MetricName, MetricBound] = Field(
        default_factory=dict, description='e.g. {"roc_auc": {"min": 0.9}, "log_loss": {"max": 0.3}}'
    )
    require_staging: bool = Field(default=False, description="The version must be in Staging first")


class RegisteredModel(BaseModel):
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    owner: str | None = None
    latest_version: int = 0
    policy: PromotionPolicy = Field(default_factory=PromotionPolicy)
    created_at: str
    updated_at: str


class ModelVersion(BaseModel):
    model_name: str
    version: int
    artifact: ArtifactRef
    signature: ModelSignature
    metrics: dict[str, float] = Field(default_factory=dict)
    run_id: str | None = None
    stage: Stage = "None"
    tags: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    created_at: str
    created_by: str | None = None


class Alias(BaseModel):
    model_name: str
    alias: str
    version: int
    revision: int
    updated_at: str
    updated_by: str | None = None
    previous_versions: list[int] = Field(
        default_factory=list, description="Versions this alias named before, newest first (rollback targets)"
    )


AuditAction = Literal["register", "promote", "rollback"]


class AuditRecord(BaseModel):
    """Who moved what, when, from where to where, and why."""

    model_name: str
    at: str
    action: AuditAction
    alias: str | None
    from_version: int | None
    to_version: int
    revision: int
    actor: str | None
    reason: str = ""


class RegisterVersionRequest(BaseModel):
    """Register an ONNX artifact already uploaded to the artifacts bucket."""

    model_config = ConfigDict(extra="forbid")

    artifact_key: str = Field(min_length=1, max_length=1024, description="S3 key of the uploaded model.onnx")
    sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-fA-F]{64}$", description="If given, the upload must match it"
    )
    signature: ModelSignature | None = Field(
        default=None, description="Defaults to signature.json next to the artifact"
    )
    metrics: dict[MetricName, float] = Field(default_factory=dict, max_length=100)
    run_id: str | None = Field(default=None, max_length=128)
    tags: Tags = Field(default_factory=dict, max_length=50)
    description: str = Field(default="", max_length=2000)

    @field_validator("artifact_key")
    @classmethod
    def _relative_key(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError(
                "artifact_key is a key inside the artifacts bucket, without '/' or '..' prefixes"
            )
        return value


class ModelRegistry:
    def __init__(
        self, table: MetadataTable, store: ArtifactStore, publisher: EventPublisher | None = None
    ) -> None:
        self.table = table
        self.store = store
        self.publisher = publisher

    def _announce(self, event: DomainEvent) -> None:
        """Publish after the commit; the audit trail, not the event, is the record of truth."""
        if self.publisher is None:
            return
        try:
            self.publisher.publish(event)
        except Unavailable as error:
            LOGGER.warning("event %s not published: %s", event.detail_type(), error.message)

    # ---- models -------------------------------------------------------------------
    def get_model(self, name: str) -> RegisteredModel:
        check_model_name(name)
        item = self.table.get(model_pk(name), "MODEL")
        if item is None:
            raise NotFound(f"model '{name}' not found")
        return RegisteredModel.model_validate(item)

    def create_model(
        self,
        name: str,
        *,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str | None = None,
    ) -> RegisteredModel:
        check_model_name(name)
        created = now_iso()
        model = RegisteredModel(
            name=name,
            description=description,
            tags=tags or {},
            owner=owner,
            created_at=created,
            updated_at=created,
        )
        try:
            self.table.put(self._model_item(model), condition="attribute_not_exists(pk)")
        except Conflict as error:
            raise Conflict(f"model '{name}' already exists") from error
        return model

    def list_models(self) -> list[RegisteredModel]:
        return [
            RegisteredModel.model_validate(item) for item in self.table.query("MODELS", index=MODELS_INDEX)
        ]

    @staticmethod
    def _model_item(model: RegisteredModel) -> Item:
        return {
            "pk": model_pk(model.name),
            "sk": "MODEL",
            "gsi1pk": "MODELS",
            "gsi1sk": model.name,
            **model.model_dump(),
        }

    # ---- versions -----------------------------------------------------------------
    def get_version(self, name: str, version: int) -> ModelVersion:
        check_model_name(name)
        item = self.table.get(model_pk(name), version_sk(version))
        if item is None:
            self.get_model(name)  # a 404 that names what is missing: the model or the version
            raise NotFound(f"model '{name}' has no version {version}")
        return ModelVersion.model_validate(item)

    def list_versions(
        self, name: str, *, newest_first: bool = True, limit: int | None = None
    ) -> list[ModelVersion]:
        self.get_model(name)
        items = self.table.query(model_pk(name), sk_prefix="VERSION#", newest_first=newest_first, limit=limit)
        return [ModelVersion.model_validate(item) for item in items]

    def register_version(
        self,
        name: str,
        request: RegisterVersionRequest,
        *,
        actor: str | None = None,
        validate_model: ModelValidator | None = None,
    ) -> ModelVersion:
        """Copy an uploaded artifact under ``models/{name}/{version}/`` and record the version.

        The model is created on its first version. The artifact's sha256 is computed here
        from the bytes read (and must equal ``request.sha256`` when given); the S3 object
        version written is recorded so that later overwrites never change what is served.

        Idempotent: the same artifact (sha256) from the same run registered again — a
        client retrying after a timeout — returns the version already registered. A
        marker item written in the registration's transaction makes this race-free.
        """
        check_model_name(name)
        source = self.store.get(request.artifact_key)
        checksum = sha256_hex(source.data)
        if request.sha256 and request.sha256.lower() != checksum:
            raise Invalid(
                "the uploaded artifact does not match the sha256 given",
                details=[detail(["body", "sha256"], f"object's sha256 is {checksum}", "checksum_mismatch")],
            )
        signature = request.signature or self._read_signature_beside(request.artifact_key)
        if validate_model is not None:
            validate_model(source.data, signature)

        marker_sk = f"REGISTERED#{checksum}#{request.run_id or '-'}"
        for _ in range(_MAX_REGISTER_ATTEMPTS):
            already = self.table.get(model_pk(name), marker_sk, consistent=True)
            if already is not None:
                return self.get_version(name, int(already["version"]))
            existing = self.table.get(model_pk(name), "MODEL", consistent=True)
            previous = int(existing["latest_version"]) if existing else 0
            version = previous + 1
            stored = self.store.put(model_key(name, version), source.data)
            signature_key = model_key(name, version, SIGNATURE_FILE)
            self.store.put(
                signature_key, signature.model_dump_json(indent=2).encode(), content_type="application/json"
            )
            created = now_iso()
            model_version = ModelVersion(
                model_name=name,
                version=version,
                artifact=ArtifactRef(
                    key=stored.key,
                    s3_version_id=stored.version_id,
                    sha256=checksum,
                    size_bytes=len(source.data),
                    signature_key=signature_key,
                ),
                signature=signature,
                metrics=request.metrics,
                run_id=request.run_id,
                tags=request.tags,
                description=request.description,
                created_at=created,
                created_by=actor,
            )
            version_item = {"pk": model_pk(name), "sk": version_sk(version), **model_version.model_dump()}
            if existing:
                bump = self.table.update_op(
                    model_pk(name),
                    "MODEL",
                    update="SET latest_version = :v, updated_at = :t",
                    condition="latest_version = :prev",
                    values={":v": version, ":t": created, ":prev": previous},
                )
            else:
                model = RegisteredModel(
                    name=name, owner=actor, latest_version=version, created_at=created, updated_at=created
                )
                bump = self.table.put_op(self._model_item(model), condition="attribute_not_exists(pk)")
            audit = AuditRecord(
                model_name=name,
                at=created,
                action="register",
                alias=None,
                from_version=None,
                to_version=version,
                revision=0,
                actor=actor,
                reason=request.description,
            )
            try:
                self.table.transact(
                    [
                        bump,
                        self.table.put_op(version_item, condition="attribute_not_exists(pk)"),
                        self._audit_op(audit),
                        self.table.put_op(
                            {"pk": model_pk(name), "sk": marker_sk, "version": version},
                            condition="attribute_not_exists(pk)",
                        ),
                    ]
                )
            except Conflict:
                # Another registration took this number (or registered this very artifact):
                # the loop reads again; the object version we wrote stays unreferenced.
                continue
            self._announce(
                ModelVersionRegistered(
                    model_name=name,
                    version=version,
                    run_id=request.run_id,
                    artifact_sha256=checksum,
                    metrics=request.metrics,
                    actor=actor,
                )
            )
            return model_version
        raise Conflict(f"model '{name}' is being registered concurrently; retry")

    def _read_signature_beside(self, artifact_key: str) -> ModelSignature:
        signature_key = (
            f"{artifact_key.rsplit('/', 1)[0]}/{SIGNATURE_FILE}" if "/" in artifact_key else SIGNATURE_FILE
        )
        try:
            raw = self.store.get(signature_key).data
        except NotFound as error:
            raise Invalid(
                f"no signature given and no {SIGNATURE_FILE} next to the artifact",
                details=[detail(["body", "signature"], f"s3 key {signature_key} not found", "missing")],
            ) from error
        try:
            return ModelSignature.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as error:
            raise Invalid(
                f"{signature_key} is not a valid model signature",
                details=[detail(["body", "signature"], str(error)[:500], "signature")],
            ) from error

    # ---- aliases, promotion, rollback ----------------------------------------------
    def get_alias(self, name: str, alias: str, *, consistent: bool = False) -> Alias:
        check_model_name(name)
        check_alias(alias)
        item = self.table.get(model_pk(name), alias_sk(alias), consistent=consistent)
        if item is None:
            self.get_model(name)
            raise NotFound(f"model '{name}' has no alias '{alias}'")
        return Alias.model_validate(item)

    def list_aliases(self, name: str) -> list[Alias]:
        return [Alias.model_validate(i) for i in self.table.query(model_pk(name), sk_prefix="ALIAS#")]

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        expected_revision: int | None = None,
        actor: str | None = None,
        reason: str = "",
    ) -> Alias:
        """Point ``alias`` at ``version`` (a promotion: the model's policy applies to production)."""
        return self.move_alias(
            name, alias, version, expected_revision=expected_revision, actor=actor, reason=reason
        )

    def move_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        expected_revision: int | None = None,
        actor: str | None = None,
        reason: str = "",
        action: AuditAction = "promote",
    ) -> Alias:
        """Move an alias in one transaction with the stage labels and an audit record.

        The alias put is conditioned on the revision read (or on not existing), so of
        concurrent moves exactly one wins each revision; with ``expected_revision`` the
        caller's own read must still be current (0: the alias must not exist yet).
        Promotions to production must satisfy the model's policy; rollbacks return to a
        version that already served and are not re-checked. Moving an alias to the
        version it already names changes nothing (a retried call is harmless).
        """
        check_alias(alias)
        target = self.get_version(name, version)
        model = self.get_model(name)
        current_item = self.table.get(model_pk(name), alias_sk(alias), consistent=True)
        current = Alias.model_validate(current_item) if current_item else None
        current_revision = current.revision if current else 0
        if expected_revision is not None and expected_revision != current_revision:
            raise Conflict(
                f"alias '{alias}' of model '{name}' is at revision {current_revision}, "
                f"not {expected_revision}",
                current=current.model_dump() if current else None,
            )
        if current is not None and current.version == version:
            return current
        if alias == PRODUCTION and action == "promote":
            self._check_policy(model, target)

        # Rollback pops the history; any other move pushes the version it replaces.
        previous = current.previous_versions if current else []
        pushed = [current.version] if current else []
        history = previous[1:] if action == "rollback" else pushed + previous
        at = now_iso()
        updated = Alias(
            model_name=name,
            alias=alias,
            version=version,
            revision=current_revision + 1,
            updated_at=at,
            updated_by=actor,
            previous_versions=history[:MAX_ALIAS_HISTORY],
        )
        record = AuditRecord(
            model_name=name,
            at=at,
            action=action,
            alias=alias,
            from_version=current.version if current else None,
            to_version=version,
            revision=updated.revision,
            actor=actor,
            reason=reason,
        )
        alias_condition, alias_values = (
            ("revision = :rev", {":rev": current_revision}) if current else ("attribute_not_exists(pk)", None)
        )
        operations = [
            self.table.put_op(
                {"pk": model_pk(name), "sk": alias_sk(alias), **updated.model_dump()},
                condition=alias_condition,
                values=alias_values,
            ),
            self._audit_op(record),
            *self._stage_ops(name, alias, target, current.version if current else None),
        ]
        try:
            self.table.transact(operations)
        except Conflict as error:
            latest = self.table.get(model_pk(name), alias_sk(alias), consistent=True)
            raise Conflict(
                f"alias '{alias}' of model '{name}' was moved concurrently; read it again and retry",
                current=_public_alias(latest),
            ) from error
        event_type = ModelRolledBack if action == "rollback" else ModelPromoted
        self._announce(
            event_type(
                model_name=name,
                alias=alias,
                from_version=record.from_version,
                to_version=version,
                revision=updated.revision,
                actor=actor,
                reason=reason,
            )
        )
        return updated

    def rollback(
        self,
        name: str,
        alias: str = PRODUCTION,
        *,
        expected_revision: int | None = None,
        actor: str | None = None,
        reason: str = "",
    ) -> Alias:
        """Move ``alias`` back to the version it named before its last move."""
        current = self.get_alias(name, alias, consistent=True)
        if not current.previous_versions:
            raise Conflict(
                f"alias '{alias}' of model '{name}' has no previous version to roll back to",
                current=current.model_dump(),
            )
        return self.move_alias(
            name,
            alias,
            current.previous_versions[0],
            expected_revision=current.revision if expected_revision is None else expected_revision,
            actor=actor,
            reason=reason,
            action="rollback",
        )

    def _stage_ops(
        self, name: str, alias: str, target: ModelVersion, from_version: int | None
    ) -> list[dict[str, Any]]:
        """Stage labels follow the production and staging aliases; other aliases only
        check that their target exists."""
        stage = STAGE_OF_ALIAS.get(alias)
        exists = "attribute_exists(pk)"
        if stage is None or (stage == "Staging" and target.stage == "Production"):
            return [self.table.check_op(model_pk(name), version_sk(target.version), condition=exists)]
        set_stage = "SET #stage = :stage"
        operations = [
            self.table.update_op(
                model_pk(name),
                version_sk(target.version),
                update=set_stage,
                condition=exists,
                names={"#stage": "stage"},
                values={":stage": stage},
            )
        ]
        if from_version is not None and from_version != target.version:
            demoted = "Archived" if stage == "Production" else "None"
            operations.append(
                self.table.update_op(
                    model_pk(name),
                    version_sk(from_version),
                    update=set_stage,
                    # Only demote what this alias had labelled (a staging move leaves production alone).
                    condition="#stage = :was",
                    names={"#stage": "stage"},
                    values={":stage": demoted, ":was": stage},
                )
            )
        return operations

    def _audit_op(self, record: AuditRecord) -> dict[str, Any]:
        key = f"AUDIT#{record.at}#{record.alias or '-'}#{record.revision:06d}#{record.action}"
        return self.table.put_op(
            {"pk": model_pk(record.model_name), "sk": key, **record.model_dump()},
            condition="attribute_not_exists(pk)",
        )

    def list_audit(self, name: str, *, limit: int = 100) -> list[AuditRecord]:
        """The model's audit trail, newest first."""
        self.get_model(name)
        items = self.table.query(model_pk(name), sk_prefix="AUDIT#", newest_first=True, limit=limit)
        return [AuditRecord.model_validate(item) for item in items]

    def resolve_alias(self, name: str, alias: str) -> ModelVersion:
        return self.get_version(name, self.get_alias(name, alias).version)

    # ---- policy, descriptions, tags ------------------------------------------------
    def _check_policy(self, model: RegisteredModel, version: ModelVersion) -> None:
        policy = model.policy
        for metric, bound in policy.thresholds.items():
            value = version.metrics.get(metric)
            if value is None:
                raise Conflict(
                    f"promotion policy of '{model.name}': v{version.version} has no '{metric}' "
                    "metric recorded",
                    details=[{"rule": f"thresholds.{metric}", "value": None}],
                )
            if bound.min is not None and value < bound.min:
                raise Conflict(
                    f"promotion policy of '{model.name}': {metric} {value:.4f} of v{version.version} "
                    f"is below the minimum {bound.min}",
                    details=[{"rule": f"thresholds.{metric}.min", "value": value, "limit": bound.min}],
                )
            if bound.max is not None and value > bound.max:
                raise Conflict(
                    f"promotion policy of '{model.name}': {metric} {value:.4f} of v{version.version} "
                    f"is above the maximum {bound.max}",
                    details=[{"rule": f"thresholds.{metric}.max", "value": value, "limit": bound.max}],
                )
        if policy.require_staging and version.stage != "Staging":
            raise Conflict(
                f"promotion policy of '{model.name}': v{version.version} must be in Staging first "
                f"(it is {version.stage})",
                details=[{"rule": "require_staging", "value": version.stage}],
            )

    def set_policy(self, name: str, policy: PromotionPolicy, *, actor: str | None = None) -> RegisteredModel:
        self.get_model(name)
        self.table.update(
            model_pk(name),
            "MODEL",
            update="SET #policy = :policy, updated_at = :t",
            condition="attribute_exists(pk)",
            names={"#policy": "policy"},
            values={":policy": policy.model_dump(), ":t": now_iso()},
        )
        return self.get_model(name)

    def update_model(
        self, name: str, *, description: str | None = None, tags: dict[str, str] | None = None
    ) -> RegisteredModel:
        self.get_model(name)  # a 404 naming the model, before any write
        self._update_fields(model_pk(name), "MODEL", description=description, tags=tags)
        return self.get_model(name)

    def update_version(
        self, name: str, version: int, *, description: str | None = None, tags: dict[str, str] | None = None
    ) -> ModelVersion:
        self.get_version(name, version)
        self._update_fields(model_pk(name), version_sk(version), description=description, tags=tags)
        return self.get_version(name, version)

    def _update_fields(self, pk: str, sk: str, **fields: Any) -> None:
        changes = {k: v for k, v in fields.items() if v is not None}
        if not changes:
            return
        names = {f"#f{i}": k for i, k in enumerate(changes)}
        values = {f":v{i}": v for i, v in enumerate(changes.values())}
        assignments = ", ".join(f"#f{i} = :v{i}" for i in range(len(changes)))
        # Callers check that the item exists first; the condition only keeps a concurrent
        # delete from turning this update into a stray partial item.
        self.table.update(
            pk, sk, update=f"SET {assignments}", condition="attribute_exists(pk)", names=names, values=values
        )


def _public_alias(item: Item | None) -> dict[str, Any] | None:
    return Alias.model_validate(item).model_dump() if item else None
