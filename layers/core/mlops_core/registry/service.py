"""The model registry's use cases: register versions, move aliases (promotion, rollback)
under the model's policy, keep stage labels and the audit trail, build model cards.

Every change is one DynamoDB transaction whose conditions are exactly what was checked
before it (the alias revision, the policy revision, the target's stage), so concurrent
changes cannot both win and a check cannot go stale between reading and writing. Events
are published after the commit; the audit trail, not the event, is the record of truth.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from mlops_core.clock import now_iso
from mlops_core.errors import Conflict, Invalid, NotFound, Unavailable
from mlops_core.events import DomainEvent
from mlops_core.registry import policy as promotion_policy
from mlops_core.registry import registration
from mlops_core.registry.entities import (
    MAX_ALIAS_HISTORY,
    PRODUCTION,
    STAGE_OF_ALIAS,
    Alias,
    AuditAction,
    AuditRecord,
    FeaturePolicy,
    ModelVersion,
    PromotionPolicy,
    RegisteredModel,
    RegisterVersionRequest,
    Stage,
    check_alias,
    check_model_name,
)
from mlops_core.registry.events import ModelPromoted, ModelRolledBack
from mlops_core.registry.lookup import RegistryLookup
from mlops_core.registry.model_card import ModelCard, build_model_card, render_markdown
from mlops_core.registry.repository import Operation
from mlops_core.registry.signature import ModelSignature
from mlops_core.storage import keys
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.eventbridge import EventPublisher
from mlops_core.storage.s3 import ArtifactStore

LOGGER = logging.getLogger(__name__)
#: Checks that an artifact loads and matches its signature (the serving layer's loader).
ModelValidator = Callable[[bytes, ModelSignature], None]
#: The training run a version names, as the run tracker returns it; raises NotFound.
RunLookup = Callable[[str], Mapping[str, Any]]
#: Checks the feature views a signature names against their definitions in force and returns
#: the signature with each view's version, entity key and its type filled in (raises Invalid or
#: NotFound naming what does not fit): ``mlops_core.features.usage.FeatureViewResolver``.
FeatureViewCheck = Callable[[ModelSignature], ModelSignature]


class ModelRegistry(RegistryLookup):
    """The registry's writes, on top of its reads (``RegistryLookup``)."""

    def __init__(
        self,
        table: MetadataTable,
        store: ArtifactStore,
        publisher: EventPublisher | None = None,
        *,
        runs: RunLookup | None = None,
        feature_views: FeatureViewCheck | None = None,
    ) -> None:
        super().__init__(table)
        self.store = store
        self.publisher = publisher
        self.runs = runs
        self.feature_views = feature_views

    def announce(self, event: DomainEvent) -> None:
        if self.publisher is None:
            return
        try:
            self.publisher.publish(event)
        except Unavailable as error:
            LOGGER.warning("event %s not published: %s", event.detail_type(), error.message)

    # ---- models -------------------------------------------------------------------------
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
            self.repository.create_model(model)
        except Conflict as error:
            raise Conflict(f"model '{name}' already exists") from error
        return model

    # ---- versions -----------------------------------------------------------------------
    def register_version(
        self,
        name: str,
        request: RegisterVersionRequest,
        *,
        actor: str | None = None,
        validate_model: ModelValidator | None = None,
    ) -> ModelVersion:
        """Register an uploaded artifact as the model's next version (``registration``)."""
        return registration.register_version(self, name, request, actor=actor, validate_model=validate_model)

    # ---- aliases, promotion, rollback ----------------------------------------------------
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
        Promotions to production must satisfy the model's policy, and the transaction is
        conditioned on the policy and the target's stage being those checked; rollbacks
        return to a version that already served and are not re-checked. Moving an alias
        to the version it already names changes nothing (a retried call is harmless).
        """
        check_alias(alias)
        target = self.get_version(name, version)
        model = self.get_model(name)
        current = self.repository.alias(name, alias, consistent=True)
        current_revision = current.revision if current else 0
        if expected_revision is not None and expected_revision != current_revision:
            raise Conflict(
                f"alias '{alias}' of model '{name}' is at revision {current_revision}, "
                f"not {expected_revision}",
                current=current.model_dump() if current else None,
            )
        if current is not None and current.version == version:
            return current
        guards: list[Operation] = []
        if alias == PRODUCTION and action == "promote":
            promotion_policy.enforce(name, model.policy, target)
            guards.append(self.repository.policy_unchanged_op(name, model.policy_revision))

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
        operations = [
            self.repository.alias_op(updated, expected_revision=current.revision if current else None),
            self.repository.audit_op(record),
            *guards,
            *self._stage_ops(name, alias, target, current.version if current else None),
        ]
        try:
            self.repository.transact(operations)
        except Conflict as error:
            latest = self.repository.alias(name, alias, consistent=True)
            raise Conflict(
                f"alias '{alias}' of model '{name}' (or its policy, or the version's stage) changed "
                "concurrently; read it again and retry",
                current=latest.model_dump() if latest else None,
            ) from error
        event_type = ModelRolledBack if action == "rollback" else ModelPromoted
        self.announce(
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
    ) -> list[Operation]:
        """Stage labels follow the production and staging aliases.

        Production wins over Staging on a version that holds both aliases. A version that
        production leaves goes back to Staging if the staging alias still names it, else to
        Archived; one that staging leaves goes back to None (unless production holds it).
        The staging alias is a condition of the change, so the label cannot go stale.
        Other aliases only check that their target exists.
        """
        stage = STAGE_OF_ALIAS.get(alias)
        if stage is None or (stage == "Staging" and target.stage == "Production"):
            return [self.repository.version_exists_op(name, target.version)]
        # Conditioned on the stage read: the policy's staging-first rule was checked on it.
        operations = [self.repository.stage_op(name, target.version, stage, only_if=target.stage)]
        if from_version is None or from_version == target.version:
            return operations
        leaving = self.get_version(name, from_version)
        if stage == "Production":
            staging = self.repository.alias(name, "staging", consistent=True)
            held_by_staging = staging is not None and staging.version == from_version
            demoted: Stage = "Staging" if held_by_staging else "Archived"
            operations.append(self.repository.stage_op(name, from_version, demoted, only_if=leaving.stage))
            operations.append(
                self.repository.alias_unchanged_op(name, "staging", staging.revision if staging else None)
            )
        elif leaving.stage == "Staging":
            # Only undo what this alias labelled: a version production holds stays Production.
            operations.append(self.repository.stage_op(name, from_version, "None", only_if="Staging"))
        return operations

    # ---- policy, descriptions, tags -------------------------------------------------------
    def set_policy(self, name: str, policy: PromotionPolicy, *, actor: str | None = None) -> RegisteredModel:
        """Replace the promotion policy, audited; concurrent promotions see it or fail."""
        model = self.get_model(name)
        at = now_iso()
        changed = model.model_copy(
            update={"policy": policy, "policy_revision": model.policy_revision + 1, "updated_at": at}
        )
        record = AuditRecord(
            model_name=name,
            at=at,
            action="set_policy",
            alias=None,
            from_version=None,
            to_version=None,
            revision=changed.policy_revision,
            actor=actor,
            policy=policy,
        )
        try:
            self.repository.transact([self.repository.policy_op(changed), self.repository.audit_op(record)])
        except Conflict as error:
            raise Conflict(
                f"the policy of model '{name}' was changed concurrently; read it again and retry"
            ) from error
        return self.get_model(name)

    def set_feature_policy(
        self, name: str, policy: FeaturePolicy, *, actor: str | None = None
    ) -> RegisteredModel:
        """Replace what serving does with missing or stale online features (audited)."""
        self.get_model(name)
        at = now_iso()
        record = AuditRecord(
            model_name=name,
            at=at,
            action="set_feature_policy",
            alias=None,
            from_version=None,
            to_version=None,
            revision=0,
            actor=actor,
            feature_policy=policy,
        )
        self.repository.transact(
            [self.repository.set_feature_policy_op(name, policy, at), self.repository.audit_op(record)]
        )
        return self.get_model(name)

    def update_model(
        self, name: str, *, description: str | None = None, tags: dict[str, str] | None = None
    ) -> RegisteredModel:
        self.get_model(name)  # a 404 naming the model, before any write
        self.repository.update_model_fields(name, {"description": description, "tags": tags})
        return self.get_model(name)

    def update_version(
        self, name: str, version: int, *, description: str | None = None, tags: dict[str, str] | None = None
    ) -> ModelVersion:
        self.get_version(name, version)
        self.repository.update_version_fields(name, version, {"description": description, "tags": tags})
        return self.get_version(name, version)

    # ---- model cards ---------------------------------------------------------------------
    def model_card(self, name: str, version: int) -> ModelCard:
        """The card of a version, built from current metadata (reads only)."""
        model = self.get_model(name)
        model_version = self.get_version(name, version)
        aliases = [a.alias for a in self.list_aliases(name) if a.version == version]
        run = None
        if model_version.run_id and self.runs is not None:
            try:
                run = self.runs(model_version.run_id)
            except (NotFound, Invalid):
                run = None  # the run record is gone; the card keeps the run id
        thresholds = model.policy.model_dump()["thresholds"]
        try:
            return build_model_card(model, model_version, aliases, run, thresholds)
        except ValueError as error:
            # A run record that contradicts the version (registered before lineage was
            # checked): the card keeps the version's own facts rather than failing.
            LOGGER.warning("model card of %s v%s without its run: %s", name, version, error)
            return build_model_card(model, model_version, aliases, None, thresholds)

    def store_model_card(self, name: str, version: int) -> None:
        """Keep the card beside the artifact at registration (regenerable: a failure is logged)."""
        try:
            card = self.model_card(name, version)
            self.store.put(
                keys.model_card(name, version, "md"),
                render_markdown(card).encode(),
                content_type="text/markdown",
            )
            self.store.put(
                keys.model_card(name, version, "json"),
                card.model_dump_json(indent=2).encode(),
                content_type="application/json",
            )
        except (Unavailable, ValueError) as error:
            LOGGER.warning("model card of %s v%s not stored: %s", name, version, error)
