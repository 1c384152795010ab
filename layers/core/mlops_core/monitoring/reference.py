"""What a drift run compares the window with: the reference profile of the training run
that produced the version serving in ``production``."""

from __future__ import annotations

from pydantic import ValidationError

from mlops_core.data.profiles import ReferenceProfile
from mlops_core.errors import NotFound, Unavailable
from mlops_core.registry.entities import ModelVersion
from mlops_core.registry.lookup import RegistryLookup
from mlops_core.storage import keys
from mlops_core.storage.s3 import ArtifactStore


class NoReference(Exception):
    """There is nothing to compare the window with."""

    def __init__(self, message: str, *, version: int | None = None, run_id: str | None = None) -> None:
        super().__init__(message)
        self.version, self.run_id = version, run_id


def production_reference(
    registry: RegistryLookup, artifacts: ArtifactStore, name: str
) -> tuple[ModelVersion, ReferenceProfile]:
    """The production version and its training run's reference profile (``NoReference``
    when there is none; ``Unavailable`` when the stored profile cannot be read)."""
    try:
        version = registry.resolve_alias(name, "production")
    except NotFound as missing:
        raise NoReference(f"{missing.message}: no production version to compare for") from None
    if version.run_id is None:
        raise NoReference(
            f"version {version.version} was registered without a training run: it has no reference profile",
            version=version.version,
        )
    try:
        stored = artifacts.get(keys.reference_profile(version.run_id))
    except NotFound:
        raise NoReference(
            f"training run {version.run_id} (version {version.version}) has no reference profile",
            version=version.version,
            run_id=version.run_id,
        ) from None
    try:
        return version, ReferenceProfile.model_validate_json(stored.data)
    except ValidationError as error:
        raise Unavailable(
            f"the reference profile of training run {version.run_id} cannot be read "
            f"({error.error_count()} problem(s))"
        ) from None
