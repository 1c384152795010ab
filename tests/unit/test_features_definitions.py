"""Feature view definitions: the repository's TOML files as the CLI loads them, durations, the
diff between versions, and the digest that makes an unchanged apply a no-op."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.cli.features import BadDefinition, load_definitions
from infra.cli.main import app
from mlops_core.features.entities import (
    EntityKeyType,
    FeatureViewDefinition,
    canonical_entity_id,
    describe_seconds,
    diff,
)
from tests.support import ROOT

VIEW = """
[[view]]
name = "customers"
owner = "team"
entity = { name = "customer_id", type = "string" }
source = { format = "jsonl", path = "feature-sources/customers/", event_timestamp = "at" }
ttl = "7d"
features = [{ name = "spend", type = "float64" }, { name = "visits", type = "int64" }]
"""


def test_the_repository_definitions_load() -> None:
    (view,) = load_definitions([ROOT / "features"])
    assert view.name == "tumour_measurements" and len(view.features) == 10
    assert (view.ttl, view.freshness_target, view.schedule) == (30 * 86400, 86400, 3600)


def test_durations_read_units_and_print_back() -> None:
    view = load_definitions_text(VIEW)
    assert view.ttl == 7 * 86400 and describe_seconds(view.ttl) == "7d"
    assert describe_seconds(5400) == "90m" and describe_seconds(61) == "61s" and describe_seconds(None) == "-"


def load_definitions_text(text: str, tmp: Path | None = None) -> FeatureViewDefinition:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "v.toml"
        path.write_text(text)
        (view,) = load_definitions([path])
    return view


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[view]]\nname = 'x'", "owner: Field required"),
        (VIEW.replace('"7d"', '"a week"'), "ttl"),
        (VIEW.replace("jsonl", "parquet"), "pyarrow"),
        (VIEW + VIEW, "also defined"),
        ("[view\n", "not valid TOML"),
        ("[other]\nx = 1\n", "tables only"),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(BadDefinition, match=message) as raised:
        load_definitions([path])
    assert str(path) in str(raised.value)


def test_apply_with_a_bad_file_exits_2_before_any_call(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(VIEW.replace('"7d"', '"a week"'))
    result = CliRunner().invoke(app, ["features", "apply", str(path)])
    assert result.exit_code == 2
    assert "ttl" in result.output


def test_the_digest_ignores_nothing_and_the_diff_names_each_change() -> None:
    before = load_definitions_text(VIEW)
    after = before.model_copy(
        update={
            "ttl": 86400,
            "features": [before.features[0], before.features[1].model_copy(update={"type": "float64"})],
        }
    )
    assert before.digest() == load_definitions_text(VIEW).digest()
    assert before.digest() != after.digest()
    assert diff(before, after) == ["~ feature visits: int64 -> float64", "~ ttl: 7d -> 1d"]
    assert diff(None, before) == ["new view: 2 features, entity customer_id (string)"]


@pytest.mark.parametrize(
    ("raw", "kind", "expected"),
    [
        ("007", EntityKeyType.int64, "7"),
        (7, EntityKeyType.int64, "7"),
        ("-3", EntityKeyType.int64, "-3"),
        ("1.5", EntityKeyType.int64, None),
        ("", EntityKeyType.int64, None),
        (True, EntityKeyType.int64, None),
        (str(2**63), EntityKeyType.int64, None),
        ("a b", EntityKeyType.string, "a b"),
        ("", EntityKeyType.string, None),
    ],
)
def test_entity_ids_are_keyed_canonically(raw: object, kind: EntityKeyType, expected: str | None) -> None:
    assert canonical_entity_id(raw, kind) == expected
