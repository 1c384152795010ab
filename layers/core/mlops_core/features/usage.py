"""Which model versions read which feature views, checked both ways.

- At **registration** (``FeatureViewResolver``, the registry's ``feature_views`` hook): every
  view a signature names exists, holds the features it names with a type that fits the input
  they feed, and the signature gets each view's version in force, entity key and key type
  (serving keys entity ids with them, without reading the definitions).
- At **apply** (``breaking_users``): a new definition that removes or retypes a feature, or
  changes the entity key, that a deployed version reads is refused, naming the versions.
  The registry records the usage as ``FEATURE_VIEW#{view} / USED_BY#{model}#{version}`` items
  in the registration's transaction (one Query finds a view's users).

Not atomic across the two: an apply and a registration racing within one read of each other
can both pass (the registration checked the old definition). The window is the time of one
request; the next apply of that view sees the usage.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlops_core.errors import Invalid, NotFound, detail
from mlops_core.features.entities import FeatureType, FeatureViewDefinition
from mlops_core.features.repository import FeatureViewRepository
from mlops_core.registry.repository import RegistryRepository
from mlops_core.registry.signature import FeatureViewInput, ModelSignature
from mlops_core.routing.repository import RoutingRepository

#: Which signature input types a view feature of each type may feed (text feeds a category
#: input: serving turns the value into its code, as it does a request's text).
FITS: dict[FeatureType, frozenset[str]] = {
    FeatureType.int64: frozenset({"integer", "double", "float"}),
    FeatureType.float64: frozenset({"double", "float"}),
    FeatureType.bool: frozenset({"boolean"}),
    FeatureType.string: frozenset({"category"}),
}


class FeatureViewResolver:
    """The registry's ``feature_views`` hook: check a signature's views and fill them in."""

    def __init__(self, views: FeatureViewRepository) -> None:
        self.views = views

    def __call__(self, signature: ModelSignature) -> ModelSignature:
        types = {f.name: f.type for f in signature.features}
        resolved: list[FeatureViewInput] = []
        problems: list[dict[str, object]] = []
        for i, wanted in enumerate(signature.feature_views):
            loc: list[str | int] = ["body", "signature", "feature_views", i]
            stored = self.views.get(wanted.view)
            if stored is None:
                raise NotFound(
                    f"feature view {wanted.view} not found (named by the signature's feature_views)",
                    details=[detail([*loc, "view"], "no such feature view", "missing")],
                )
            definition = stored.definition
            declared = {f.name: f.type for f in definition.features}
            for j, feature in enumerate(wanted.features):
                where = [*loc, "features", j]
                kind = declared.get(feature.name)
                if kind is None:
                    problems.append(
                        detail(where, f"view {wanted.view} has no feature {feature.name}", "unknown_feature")
                    )
                elif types[feature.input_name] not in FITS[kind]:
                    problems.append(
                        detail(
                            where,
                            f"{wanted.view}.{feature.name} is {kind.value}; it cannot feed input "
                            f"{feature.input_name!r} ({types[feature.input_name]})",
                            "feature_type",
                        )
                    )
            if wanted.entity is not None and wanted.entity != definition.entity.name:
                problems.append(
                    detail(
                        [*loc, "entity"],
                        f"view {wanted.view} is keyed by {definition.entity.name}, not {wanted.entity}",
                        "entity",
                    )
                )
            resolved.append(
                wanted.model_copy(
                    update={
                        "version": wanted.version or stored.version,
                        "entity": definition.entity.name,
                        "entity_type": definition.entity.type.value,
                    }
                )
            )
        if problems:
            raise Invalid(
                f"the signature's feature_views do not fit the views in force: {problems[0]['msg']}",
                details=problems,
            )
        return signature.model_copy(update={"feature_views": resolved})


@dataclass(frozen=True)
class BreakingUse:
    model_name: str
    version: int
    #: Why it counts as deployed ("alias production", "routing policy (split)", "Staging").
    deployed_by: str
    features: list[str]

    def describe(self) -> str:
        return f"{self.model_name} v{self.version} ({self.deployed_by}; reads {', '.join(self.features)})"


def broken_features(before: FeatureViewDefinition, after: FeatureViewDefinition) -> dict[str, str]:
    """Feature -> what happens to it, for the features ``after`` removes or retypes."""
    new = {f.name: f.type for f in after.features}
    changes: dict[str, str] = {}
    for feature in before.features:
        if feature.name not in new:
            changes[feature.name] = "removed"
        elif new[feature.name] != feature.type:
            changes[feature.name] = f"{feature.type.value} -> {new[feature.name].value}"
    return changes


def deployed_versions(registry: RegistryRepository, model_name: str) -> dict[int, str]:
    """The versions of ``model_name`` that may serve a request, with why: every version an alias
    names, or the routing policy names (split, bandit, pinned, shadow), or labelled Production
    or Staging. A version none of these names (never promoted, or retired) is not deployed."""
    found: dict[int, str] = {}
    for alias in registry.aliases(model_name):
        found.setdefault(alias.version, f"alias {alias.alias}")
    routing = RoutingRepository(registry.table).routing(model_name)
    if routing is not None:
        for number in routing.policy.named_versions:
            found.setdefault(number, f"routing policy ({routing.policy.type})")
    return found


def breaking_users(
    registry: RegistryRepository, before: FeatureViewDefinition, after: FeatureViewDefinition
) -> list[BreakingUse]:
    """The deployed versions (``deployed_versions``) that read a feature ``after`` removes or
    retypes (every deployed user of the view when its entity key changes: their ids would no
    longer be keyed alike)."""
    broken = broken_features(before, after)
    entity_changed = before.entity != after.entity
    if not broken and not entity_changed:
        return []
    found = []
    deployed: dict[str, dict[int, str]] = {}
    for use in registry.feature_view_users(before.name):
        hit = [f for f in use.features if f in broken]
        if entity_changed:
            hit = hit or [f"entity {before.entity.name}"]
        if not hit:
            continue
        if use.model_name not in deployed:
            deployed[use.model_name] = deployed_versions(registry, use.model_name)
        why = deployed[use.model_name].get(use.version)
        if why is None:
            version = registry.version(use.model_name, use.version)
            if version is None or version.stage not in ("Production", "Staging"):
                continue
            why = version.stage
        found.append(BreakingUse(use.model_name, use.version, why, hit))
    return found
