"""The registry's data access: its entities as items of the single metadata table.

Items (keys from ``mlops_core.storage.keys``):

- ``MODEL#{name} / MODEL`` — the model: description, tags, owner, policy and its revision,
  ``latest_version``; also under the list index (``MODELS``) so models can be listed.
- ``MODEL#{name} / VERSION#{000007}`` — one version: artifact (key, S3 version id,
  sha256, size), signature, metrics, run id, stage, tags. Never rewritten in place
  except for governance fields (stage, tags, description).
- ``MODEL#{name} / ALIAS#{alias}`` — alias -> version, with a ``revision`` that every
  change increments, so concurrent moves are serialized by conditional writes.
- ``MODEL#{name} / AUDIT#...`` — the audit trail; ``REGISTERED#{sha256}#{run}`` — the
  marker that makes a registration idempotent.

Reads return entities (or None); writes take entities and the conditions that keep them
consistent. Which writes go together, and why, is the service's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlops_core.registry.entities import (
    Alias,
    AuditRecord,
    FeaturePolicy,
    ModelVersion,
    RegisteredModel,
    Stage,
)
from mlops_core.storage import keys
from mlops_core.storage.dynamo import Item, MetadataTable

Operation = dict[str, Any]
# Models written before policies had revisions have none: that is revision 0.
_POLICY_AT_REVISION = (
    "attribute_exists(pk) AND (policy_revision = :rev OR attribute_not_exists(policy_revision))"
)


class RegistryRepository:
    def __init__(self, table: MetadataTable) -> None:
        self.table = table

    # ---- reads ------------------------------------------------------------------------
    def model(self, name: str, *, consistent: bool = False) -> RegisteredModel | None:
        item = self.table.get(keys.model_pk(name), keys.MODEL_SK, consistent=consistent)
        return RegisteredModel.model_validate(item) if item else None

    def models(self) -> list[RegisteredModel]:
        items = self.table.query(keys.ALL_MODELS, index=keys.LIST_INDEX)
        return [RegisteredModel.model_validate(item) for item in items]

    def version(self, name: str, version: int) -> ModelVersion | None:
        item = self.table.get(keys.model_pk(name), keys.version_sk(version))
        return ModelVersion.model_validate(item) if item else None

    def versions(self, name: str, *, newest_first: bool, limit: int | None) -> list[ModelVersion]:
        items = self.table.query(
            keys.model_pk(name), sk_prefix=keys.VERSION_PREFIX, newest_first=newest_first, limit=limit
        )
        return [ModelVersion.model_validate(item) for item in items]

    def alias(self, name: str, alias: str, *, consistent: bool = False) -> Alias | None:
        item = self.table.get(keys.model_pk(name), keys.alias_sk(alias), consistent=consistent)
        return Alias.model_validate(item) if item else None

    def aliases(self, name: str) -> list[Alias]:
        items = self.table.query(keys.model_pk(name), sk_prefix=keys.ALIAS_PREFIX)
        return [Alias.model_validate(item) for item in items]

    def audit(self, name: str, *, limit: int) -> list[AuditRecord]:
        items = self.table.query(
            keys.model_pk(name), sk_prefix=keys.AUDIT_PREFIX, newest_first=True, limit=limit
        )
        return [AuditRecord.model_validate(item) for item in items]

    def registered_version(self, name: str, sha256: str, run_id: str | None) -> int | None:
        """The version this (artifact, run) was registered as, if it was."""
        marker = self.table.get(keys.model_pk(name), keys.registered_sk(sha256, run_id), consistent=True)
        return int(marker["version"]) if marker else None

    # ---- writes -----------------------------------------------------------------------
    def create_model(self, model: RegisteredModel) -> None:
        """Raises ``Conflict`` if the model exists."""
        self.table.put(_model_item(model), condition="attribute_not_exists(pk)")

    def register(
        self, version: ModelVersion, audit: AuditRecord, *, new_model: RegisteredModel | None, previous: int
    ) -> None:
        """Write a version, its audit record and its idempotency marker, and take its number.

        One transaction: the model's ``latest_version`` moves from ``previous`` to this
        version's number only if no one else took it (``Conflict`` otherwise), so numbers
        have no gaps and no duplicates and nothing is half-written.
        """
        name, number, created = version.model_name, version.version, version.created_at
        pk = keys.model_pk(name)
        if new_model is not None:
            take_number = self.table.put_op(_model_item(new_model), condition="attribute_not_exists(pk)")
        else:
            take_number = self.table.update_op(
                pk,
                keys.MODEL_SK,
                update="SET latest_version = :v, updated_at = :t",
                condition="latest_version = :prev",
                values={":v": number, ":t": created, ":prev": previous},
            )
        marker = {
            "pk": pk,
            "sk": keys.registered_sk(version.artifact.sha256, version.run_id),
            "version": number,
        }
        self.table.transact(
            [
                take_number,
                self.table.put_op(_version_item(version), condition="attribute_not_exists(pk)"),
                self.audit_op(audit),
                self.table.put_op(marker, condition="attribute_not_exists(pk)"),
                *(self.table.put_op(item) for item in _usage_items(version)),
            ]
        )

    def feature_view_users(self, view: str) -> list[FeatureViewUse]:
        """The versions whose signatures read ``view`` (``USED_BY#`` items, one Query)."""
        items = self.table.query(keys.feature_view_pk(view), sk_prefix=keys.FEATURE_USED_BY_PREFIX)
        return [
            FeatureViewUse(
                model_name=str(item["model_name"]),
                version=int(item["version"]),
                features=[str(f) for f in item.get("features", [])],
                view_version=None if item.get("view_version") is None else int(item["view_version"]),
            )
            for item in items
        ]

    def set_feature_policy_op(self, name: str, policy: FeaturePolicy, at: str) -> Operation:
        return self.table.update_op(
            keys.model_pk(name),
            keys.MODEL_SK,
            update="SET feature_policy = :p, updated_at = :t",
            condition="attribute_exists(pk)",
            values={":p": policy.model_dump(), ":t": at},
        )

    def alias_op(self, alias: Alias, *, expected_revision: int | None) -> Operation:
        """Put ``alias`` if it is still at ``expected_revision`` (None: it must not exist yet)."""
        item = {"pk": keys.model_pk(alias.model_name), "sk": keys.alias_sk(alias.alias), **alias.model_dump()}
        if expected_revision is None:
            return self.table.put_op(item, condition="attribute_not_exists(pk)")
        return self.table.put_op(item, condition="revision = :rev", values={":rev": expected_revision})

    def alias_unchanged_op(self, name: str, alias: str, revision: int | None) -> Operation:
        """A condition that ``alias`` is still at ``revision`` (None: still absent)."""
        if revision is None:
            return self.table.check_op(
                keys.model_pk(name), keys.alias_sk(alias), condition="attribute_not_exists(pk)"
            )
        return self.table.check_op(
            keys.model_pk(name), keys.alias_sk(alias), condition="revision = :rev", values={":rev": revision}
        )

    def policy_unchanged_op(self, name: str, policy_revision: int) -> Operation:
        """A condition that the model's promotion policy is still the one checked."""
        return self.table.check_op(
            keys.model_pk(name),
            keys.MODEL_SK,
            condition=_POLICY_AT_REVISION,
            values={":rev": policy_revision},
        )

    def version_exists_op(self, name: str, version: int) -> Operation:
        return self.table.check_op(
            keys.model_pk(name), keys.version_sk(version), condition="attribute_exists(pk)"
        )

    def stage_op(self, name: str, version: int, stage: Stage, *, only_if: Stage | None = None) -> Operation:
        """Label ``version`` with ``stage``; with ``only_if``, only while it has that stage."""
        condition, values = "attribute_exists(pk)", {":stage": stage}
        if only_if is not None:
            condition += " AND #stage = :was"
            values[":was"] = only_if
        return self.table.update_op(
            keys.model_pk(name),
            keys.version_sk(version),
            update="SET #stage = :stage",
            condition=condition,
            names={"#stage": "stage"},
            values=values,
        )

    def policy_op(self, model: RegisteredModel) -> Operation:
        """Write ``model``'s policy and revision if no one changed the policy since it was read."""
        return self.table.update_op(
            keys.model_pk(model.name),
            keys.MODEL_SK,
            update="SET #policy = :policy, policy_revision = :new, updated_at = :t",
            condition=_POLICY_AT_REVISION,
            names={"#policy": "policy"},
            values={
                ":policy": model.policy.model_dump(),
                ":new": model.policy_revision,
                ":rev": model.policy_revision - 1,
                ":t": model.updated_at,
            },
        )

    def audit_op(self, record: AuditRecord) -> Operation:
        key = keys.audit_sk(record.at, record.alias, record.revision, record.action)
        item = {"pk": keys.model_pk(record.model_name), "sk": key, **record.model_dump()}
        return self.table.put_op(item, condition="attribute_not_exists(pk)")

    def transact(self, operations: list[Operation]) -> None:
        self.table.transact(operations)

    def update_model_fields(self, name: str, fields: Mapping[str, Any]) -> None:
        self._update_fields(keys.model_pk(name), keys.MODEL_SK, fields)

    def update_version_fields(self, name: str, version: int, fields: Mapping[str, Any]) -> None:
        self._update_fields(keys.model_pk(name), keys.version_sk(version), fields)

    def _update_fields(self, pk: str, sk: str, fields: Mapping[str, Any]) -> None:
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


@dataclass(frozen=True)
class FeatureViewUse:
    """One registered version reading one feature view."""

    model_name: str
    version: int
    features: list[str]
    view_version: int | None


def _usage_items(version: ModelVersion) -> list[Item]:
    return [
        {
            "pk": keys.feature_view_pk(view.view),
            "sk": keys.feature_used_by_sk(version.model_name, version.version),
            "model_name": version.model_name,
            "version": version.version,
            "features": [f.name for f in view.features],
            **({"view_version": view.version} if view.version is not None else {}),
        }
        for view in version.signature.feature_views
    ]


def _model_item(model: RegisteredModel) -> Item:
    return {
        "pk": keys.model_pk(model.name),
        "sk": keys.MODEL_SK,
        keys.LIST_INDEX_PARTITION_KEY: keys.ALL_MODELS,
        keys.LIST_INDEX_SORT_KEY: model.name,
        **model.model_dump(),
    }


def _version_item(version: ModelVersion) -> Item:
    return {
        "pk": keys.model_pk(version.model_name),
        "sk": keys.version_sk(version.version),
        **version.model_dump(),
    }
