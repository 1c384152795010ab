"""Reading the registry: models, versions, aliases and the audit trail.

The read side on its own, so that the inference function loads only what it needs to
resolve an alias (no registration, promotion or model-card code on its cold path).
"""

from __future__ import annotations

from mlops_core.errors import NotFound
from mlops_core.registry.entities import (
    Alias,
    AuditRecord,
    ModelVersion,
    RegisteredModel,
    check_alias,
    check_model_name,
)
from mlops_core.registry.repository import RegistryRepository
from mlops_core.storage.dynamo import MetadataTable


class RegistryLookup:
    def __init__(self, table: MetadataTable) -> None:
        self.repository = RegistryRepository(table)

    def get_model(self, name: str) -> RegisteredModel:
        check_model_name(name)
        model = self.repository.model(name)
        if model is None:
            raise NotFound(f"model '{name}' not found")
        return model

    def list_models(self) -> list[RegisteredModel]:
        return self.repository.models()

    def get_version(self, name: str, version: int) -> ModelVersion:
        check_model_name(name)
        found = self.repository.version(name, version)
        if found is None:
            self.get_model(name)  # a 404 that names what is missing: the model or the version
            raise NotFound(f"model '{name}' has no version {version}")
        return found

    def list_versions(
        self, name: str, *, newest_first: bool = True, limit: int | None = None
    ) -> list[ModelVersion]:
        self.get_model(name)
        return self.repository.versions(name, newest_first=newest_first, limit=limit)

    def get_alias(self, name: str, alias: str, *, consistent: bool = False) -> Alias:
        check_model_name(name)
        check_alias(alias)
        found = self.repository.alias(name, alias, consistent=consistent)
        if found is None:
            self.get_model(name)
            raise NotFound(f"model '{name}' has no alias '{alias}'")
        return found

    def list_aliases(self, name: str) -> list[Alias]:
        return self.repository.aliases(name)

    def resolve_alias(self, name: str, alias: str) -> ModelVersion:
        return self.get_version(name, self.get_alias(name, alias).version)

    def list_audit(self, name: str, *, limit: int = 100) -> list[AuditRecord]:
        """The model's audit trail, newest first."""
        self.get_model(name)
        return self.repository.audit(name, limit=limit)
