"""The built layers: sizes within Lambda's limits, clean content, caching, and a real import check.

Sizes are measured on the staged assets in cdk.out, i.e. exactly what `cdk deploy`
uploads; run with `-s` to see the table.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
from synthesized_app import SynthesizedApp

from infra.cdk.bundling import (
    BYTECODE_PYTHON_ENV,
    RUNTIME_PROVIDED_DISTRIBUTIONS,
    LayerBuilder,
    LayerSpec,
    canonical_name,
    directory_size,
    find_bytecode_interpreter,
)
from infra.cdk.constructs.layers import LOCKED_EXTRAS

pytestmark = pytest.mark.infra

REPO_ROOT = Path(__file__).resolve().parents[2]
MIB = 2**20
#: Lambda's limit for a function's code plus all its layers, unzipped.
LAMBDA_UNZIPPED_LIMIT = 250 * MIB
#: Every function carries core, so it must leave room for serving or science.
CORE_LAYER_BUDGET = 160 * MIB
LAYER_NAMES = ("core", "serving", "science", "parquet")


def _layer_dirs(synthesized: SynthesizedApp) -> dict[str, Path]:
    return {
        name: synthesized.asset_dir(
            synthesized.resources[synthesized.logical_id(getattr(synthesized.stack.layers, name))][
                "Properties"
            ]["Content"]
        )
        for name in LAYER_NAMES
    }


def _function_footprints(synthesized: SynthesizedApp) -> dict[str, list[Path]]:
    """Function name -> its code directory followed by its layers' directories."""
    layer_dir_by_id = {
        synthesized.logical_id(getattr(synthesized.stack.layers, name)): path
        for name, path in _layer_dirs(synthesized).items()
    }
    footprints = {}
    functions = {name: getattr(synthesized.stack.api, name).function for name in ("inference", "registry")}
    functions["batch scoring"] = synthesized.stack.batch.score.function  # core + serving + parquet
    for name, function in functions.items():
        properties = synthesized.resources[synthesized.logical_id(function)]["Properties"]
        footprints[name] = [
            synthesized.asset_dir(properties["Code"]),
            *(layer_dir_by_id[layer["Ref"]] for layer in properties["Layers"]),
        ]
    return footprints


def _distributions(site_dir: Path) -> set[str]:
    names = set()
    for dist_info in site_dir.glob("*.dist-info"):
        for line in (dist_info / "METADATA").read_text(encoding="utf-8").splitlines():
            if line.startswith("Name:"):
                names.add(canonical_name(line.removeprefix("Name:").strip()))
                break
    return names


def test_functions_and_layers_fit_lambda_size_limits(
    synthesized: SynthesizedApp, record_property: pytest.RecordProperty
) -> None:
    layers = {name: directory_size(path) for name, path in _layer_dirs(synthesized).items()}
    functions = {
        name: sum(map(directory_size, paths)) for name, paths in _function_footprints(synthesized).items()
    }
    # Training and drift (not deployed yet) will run on core + science: keep that room now.
    combinations = {"core + science (training, drift)": layers["core"] + layers["science"]}

    table = [f"{'layer ' + name:<36}{size / MIB:8.1f} MiB" for name, size in layers.items()]
    table += [
        f"{'function ' + name + ' + its layers':<36}{size / MIB:8.1f} MiB" for name, size in functions.items()
    ]
    table += [f"{name:<36}{size / MIB:8.1f} MiB" for name, size in combinations.items()]
    print("\nUnzipped sizes (what Lambda counts):\n  " + "\n  ".join(table))
    record_property(
        "unzipped_sizes_mib",
        json.dumps(
            {key: round(size / MIB, 1) for key, size in {**layers, **functions, **combinations}.items()}
        ),
    )

    assert layers["core"] <= CORE_LAYER_BUDGET
    assert {
        name: size for name, size in {**functions, **combinations}.items() if size > LAMBDA_UNZIPPED_LIMIT
    } == {}


def test_the_parquet_layer_goes_to_the_batch_scoring_function_only(synthesized: SynthesizedApp) -> None:
    parquet = {"Ref": synthesized.logical_id(synthesized.stack.layers.parquet)}
    holders = [
        logical_id
        for logical_id, resource in synthesized.resources.items()
        if resource["Type"] == "AWS::Lambda::Function" and parquet in resource["Properties"].get("Layers", [])
    ]

    assert holders == [synthesized.logical_id(synthesized.stack.batch.score.function)]


def test_layers_ship_no_foreign_bytecode_and_no_aws_sdk(synthesized: SynthesizedApp) -> None:
    for name, layer_dir in _layer_dirs(synthesized).items():
        site_dir = layer_dir / "python"
        foreign_bytecode = [
            path.relative_to(site_dir).as_posix()
            for path in site_dir.rglob("*.py[co]")
            if ".cpython-312." not in path.name or path.parent.name != "__pycache__"
        ]
        assert foreign_bytecode == [], name
        assert not RUNTIME_PROVIDED_DISTRIBUTIONS & _distributions(site_dir), name
        assert not [
            package for package in ("boto3", "botocore", "s3transfer") if (site_dir / package).exists()
        ], name
        assert not (site_dir / "bin").exists(), name
        assert not [path for path in site_dir.rglob("tests") if path.is_dir()], name


def test_no_distribution_is_shipped_twice_to_a_function(synthesized: SynthesizedApp) -> None:
    for name, (_, *layer_dirs) in _function_footprints(synthesized).items():
        seen: dict[str, int] = {}
        for layer_dir in layer_dirs:
            for distribution in _distributions(layer_dir / "python"):
                seen[distribution] = seen.get(distribution, 0) + 1
        assert {distribution for distribution, count in seen.items() if count > 1} == set(), name


def test_numpy_comes_from_the_core_layer_only(synthesized: SynthesizedApp) -> None:
    holders = [
        name for name, path in _layer_dirs(synthesized).items() if "numpy" in _distributions(path / "python")
    ]

    assert holders == ["core"]


def test_core_layer_ships_the_current_mlops_core_sources(synthesized: SynthesizedApp) -> None:
    source = REPO_ROOT / "layers" / "core" / "mlops_core"
    shipped = _layer_dirs(synthesized)["core"] / "python" / "mlops_core"

    def python_sources(root: Path) -> dict[str, bytes]:
        return {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in root.rglob("*.py")
            if "__pycache__" not in path.parts
        }

    assert python_sources(shipped) == python_sources(source)


def _runtime_sdk_dir(tmp_path: Path) -> Path:
    """Stand-in for the SDK that the Lambda runtime provides (pure Python, so any 3.x build works)."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    for module in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py"):
        origin = __import__(module.removesuffix(".py")).__file__
        assert origin is not None
        source = Path(origin).parent if not module.endswith(".py") else Path(origin)
        (runtime / module).symlink_to(source)
    return runtime


@pytest.mark.skipif(
    find_bytecode_interpreter() is None,
    reason=f"needs CPython 3.12 (python3.12 on PATH or ${BYTECODE_PYTHON_ENV})",
)
def test_layers_import_and_run_models_under_the_lambda_python(
    synthesized: SynthesizedApp, tmp_path: Path
) -> None:
    """Stripped binaries, deduplicated numpy and the runtime's SDK work together on CPython 3.12."""
    interpreter = find_bytecode_interpreter()
    assert interpreter is not None
    layers = _layer_dirs(synthesized)
    runtime = _runtime_sdk_dir(tmp_path)

    def run(layer_names: tuple[str, ...], code: str) -> str:
        # -S -s: nothing from the interpreter's own site-packages; only the layers and the SDK.
        path = [str(layers[name] / "python") for name in layer_names] + [str(runtime)]
        bootstrap = f"import sys; sys.path[1:1] = {path!r}\n" + textwrap.dedent(code)
        result = subprocess.run(
            [str(interpreter[0]), "-S", "-s", "-c", bootstrap],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    model = tmp_path / "model.onnx"
    training = f"""
        import numpy as np, scipy.stats, mlops_core
        from sklearn.ensemble import HistGradientBoostingClassifier
        from skl2onnx import to_onnx
        features = np.random.default_rng(7).normal(size=(300, 4)).astype(np.float32)
        labels = (features[:, 0] + features[:, 1] > 0).astype(np.int64)
        model = HistGradientBoostingClassifier(max_iter=20).fit(features, labels)
        open({str(model)!r}, "wb").write(to_onnx(model, features[:1]).SerializeToString())
        import sys, optuna  # the search's ask-and-tell, without the RDB storage's packages
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1))
        study.tell(study.ask({{"x": optuna.distributions.FloatDistribution(0, 1)}}), 0.5)
        assert "sqlalchemy" not in sys.modules and len(study.trials) == 1
        print(np.__file__)
        """
    serving = f"""
        import numpy as np, onnxruntime, pydantic, mlops_core
        from aws_lambda_powertools import Logger, Metrics, Tracer
        from aws_lambda_powertools.event_handler import APIGatewayRestResolver
        import boto3
        session = onnxruntime.InferenceSession({str(model)!r})
        label = session.run(None, {{session.get_inputs()[0].name: np.ones((1, 4), np.float32)}})[0]
        print(int(label[0]), np.__file__, boto3.__file__)
        """

    parquet = """
        import io, numpy as np
        from arro3.core import Array, Table
        from arro3.io import read_parquet, write_parquet
        out = io.BytesIO()
        write_parquet(Table.from_pydict({"a": Array.from_numpy(np.arange(3.0))}), out)
        print(read_parquet(out.getvalue()).read_all().column("a").to_numpy().sum(), np.__file__)
        """

    numpy_origin = run(("core", "science"), training).split()[-1]
    label, serving_numpy, boto3_origin = run(("core", "serving"), serving).split()

    assert numpy_origin.startswith(str(layers["core"])) and serving_numpy.startswith(str(layers["core"]))
    assert boto3_origin.startswith(str(runtime))
    assert label == "1"
    total, parquet_numpy = run(("core", "serving", "parquet"), parquet).split()
    assert total == "3.0" and parquet_numpy.startswith(str(layers["core"]))


# -- the builder's cache -------------------------------------------------------------


@pytest.fixture
def probe_spec(tmp_path: Path) -> LayerSpec:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy==2.4.6\n")
    package = tmp_path / "probe_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("VALUE = 1\n")
    return LayerSpec(name="probe", requirements=requirements, local_packages=(package,))


def test_layer_key_changes_with_requirements_and_sources_but_not_caches(
    probe_spec: LayerSpec, tmp_path: Path
) -> None:
    def key() -> str:
        return LayerBuilder(REPO_ROOT, lock_extras=LOCKED_EXTRAS, cache_dir=tmp_path / "cache").key(
            probe_spec
        )

    original = key()
    package = probe_spec.local_packages[0]
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"\0")
    assert key() == original

    (package / "__init__.py").write_text("VALUE = 2\n")
    changed_source = key()
    assert changed_source != original

    probe_spec.requirements.write_text("numpy==2.4.6\npydantic==2.14.3\n")
    assert key() not in {original, changed_source}


def test_cached_layer_is_reused_without_installing_anything(
    probe_spec: LayerSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builder = LayerBuilder(REPO_ROOT, lock_extras=LOCKED_EXTRAS, cache_dir=tmp_path / "cache")
    key = builder.key(probe_spec)
    entry = tmp_path / "cache" / f"probe-{key[:16]}"
    (entry / "python").mkdir(parents=True)
    (entry / "build-info.json").write_text("{}")

    def no_subprocess(*args: object, **kwargs: object) -> str:
        raise AssertionError("a cached layer must not be rebuilt")

    monkeypatch.setattr(LayerBuilder, "_run", staticmethod(no_subprocess))
    built = builder.build(probe_spec)

    assert built.path == entry and built.key == key


def test_built_layers_share_no_files_with_the_package_cache(synthesized: SynthesizedApp) -> None:
    # The build strips extension modules in place: a hard link into uv's cache would strip
    # (and, while mapped, corrupt) the same file in every environment linked to it.
    cache = synthesized.stack.layers.builder.cache_dir
    linked = [p for p in cache.rglob("*.so*") if p.is_file() and p.stat().st_nlink > 1]
    assert cache.exists()
    assert linked == []
