"""The Lambda layers every function composes: `core`, `serving`, `science` and `parquet`.

Layers split the dependencies so that each function takes only what it needs and
stays under Lambda's 250 MiB (code plus all layers, unzipped):
  * core    — `mlops_core` + numpy + pydantic + Powertools; every function;
  * serving — onnxruntime; inference and any step that runs an exported model;
  * science — scipy + scikit-learn + skl2onnx + onnx + optuna; training and drift;
  * parquet — arro3-io + arro3-core (arrow-rs's Parquet reader); batch scoring only, beside
    core and serving (docs/batch.md: pyarrow would not fit there).
`serving`, `science` and `parquet` are stacked on `core`: what core installs (numpy) is removed
from them, so a function never ships two copies.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import AssetHashType, BundlingOptions, aws_lambda
from constructs import Construct

from infra.cdk.bundling import (
    PLACEHOLDER_BUNDLING_IMAGE,
    LayerBuilder,
    LayerSpec,
    LocalLayerBundler,
)

#: The runtime every layer is built for; functions must use the same one.
LAYER_RUNTIME = aws_lambda.Runtime.PYTHON_3_12
LAYER_ARCHITECTURE = aws_lambda.Architecture.X86_64

#: Project extras in uv.lock whose versions the layers must match (see pyproject.toml).
LOCKED_EXTRAS = ("serving", "science", "parquet")


def layer_specs(repo_root: Path) -> dict[str, LayerSpec]:
    """The layers, keyed by name; paths are resolved against the repository."""
    layers_dir = repo_root / "layers"
    core = LayerSpec(
        name="core",
        requirements=layers_dir / "core" / "requirements.txt",
        local_packages=(layers_dir / "core" / "mlops_core",),
    )
    serving = LayerSpec(
        name="serving",
        requirements=layers_dir / "serving" / "requirements.txt",
        base_layers=(core,),
    )
    science = LayerSpec(
        name="science",
        requirements=layers_dir / "science" / "requirements.txt",
        base_layers=(core,),
        # onnx's conformance-test data (15 MiB); only onnx's doc generator imports it.
        prune=("onnx/backend/test",),
        # Optuna's relational storage (SQLAlchemy, Alembic and Mako's templates): the search
        # keeps its study in memory between S3 snapshots (docs/decision_log.md), and without
        # these 24 MB, core + science stay clear of Lambda's 250 MiB.
        unused=tuple(
            (name, "Optuna's RDB storage, never used (in-memory studies)")
            for name in ("sqlalchemy", "alembic", "mako", "markupsafe")
        ),
    )
    parquet = LayerSpec(
        name="parquet",
        requirements=layers_dir / "parquet" / "requirements.txt",
        base_layers=(core,),
    )
    return {spec.name: spec for spec in (core, serving, science, parquet)}


class LayersConstruct(Construct):
    """Publishes the core, serving, science and parquet layers, built locally and cached."""

    def __init__(self, scope: Construct, construct_id: str, *, repo_root: Path) -> None:
        super().__init__(scope, construct_id)
        self.builder = LayerBuilder(repo_root, lock_extras=LOCKED_EXTRAS)
        self.specs = layer_specs(repo_root)
        self.core = self._layer("Core", self.specs["core"], "mlops_core, numpy, pydantic, Powertools")
        self.serving = self._layer("Serving", self.specs["serving"], "onnxruntime (stacked on core)")
        self.science = self._layer(
            "Science", self.specs["science"], "scipy, scikit-learn, skl2onnx, onnx (stacked on core)"
        )
        self.parquet = self._layer("Parquet", self.specs["parquet"], "arro3-io, arro3-core (stacked on core)")

    def _layer(self, construct_id: str, spec: LayerSpec, contents: str) -> aws_lambda.LayerVersion:
        code = aws_lambda.Code.from_asset(
            str(spec.requirements.parent),
            # The builder's key covers every input (and no stray __pycache__), so CDK
            # reuses cdk.out/asset.<key> without bundling again when nothing changed.
            asset_hash=self.builder.key(spec),
            asset_hash_type=AssetHashType.CUSTOM,
            display_name=f"{spec.name} layer",
            bundling=BundlingOptions(
                image=PLACEHOLDER_BUNDLING_IMAGE,
                local=LocalLayerBundler(self.builder, spec),
            ),
        )
        return aws_lambda.LayerVersion(
            self,
            construct_id,
            code=code,
            compatible_runtimes=[LAYER_RUNTIME],
            compatible_architectures=[LAYER_ARCHITECTURE],
            description=f"serverless-mlops {spec.name}: {contents}",
        )
