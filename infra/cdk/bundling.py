"""Docker-free builds of the Lambda layers, cached by the hash of their inputs.

CDK stages every layer asset through `LocalLayerBundler.try_bundle`, which asks a
`LayerBuilder` for the finished layer and copies it into the asset directory. The
builder installs manylinux wheels for the Lambda runtime (CPython 3.12, x86_64) with
uv, cleans the result so that each function's code plus its layers fit Lambda's
250 MiB limit, and keeps the finished layer under `.cache/layers/<name>-<key>/`:
the first synthesis pays for the build, later ones copy a directory.

Cleaning, in order, and why:
  * distributions the Lambda runtime already ships (boto3, botocore and the packages
    only botocore needs) are uninstalled: ~30 MiB that the runtime provides anyway;
  * distributions that a lower layer already provides (numpy from `core`, pulled in
    again by onnxruntime and scipy) are uninstalled: layers overlay each other in
    /opt/python, and Lambda counts every copy against the 250 MiB limit;
  * console scripts (`bin/`), `tests` directories and `__pycache__` are dropped;
  * extension modules are stripped of symbols, except the vendored libraries in
    `*.libs/` directories: auditwheel patches those with patchelf and `strip`
    corrupts them (a stripped `numpy.libs/` makes numpy fail to import);
  * `*.dist-info` is kept: onnx, onnxruntime and pydantic read their own metadata
    through importlib.metadata at import time, and it weighs ~2 MiB.
Finally, if a CPython 3.12 interpreter is available, everything is compiled to
bytecode with hash-based, unchecked `.pyc` files (see `_compile_bytecode`).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import DockerImage, ILocalBundling

LOGGER = logging.getLogger(__name__)

#: The Lambda runtime the layers are built for.
LAMBDA_PYTHON_VERSION = "3.12"
#: Amazon Linux 2023 (the python3.12 runtime) has glibc 2.34, so manylinux_2_28 wheels run there.
LAMBDA_PYTHON_PLATFORM = "x86_64-manylinux_2_28"
#: Where Lambda mounts a layer's `python/` directory (it is on sys.path).
LAMBDA_LAYER_SITE_DIR = "/opt/python"
#: The directory inside a layer archive that Lambda puts on sys.path.
LAYER_PYTHON_DIR = "python"

#: Distributions the Lambda Python runtime provides. boto3, botocore and s3transfer are
#: the AWS SDK; urllib3, python-dateutil and six are only here because botocore needs
#: them, and must come from the same place as the botocore that imports them. jmespath
#: is deliberately *not* listed: Powertools imports it directly, so the layer keeps the
#: locked version.
RUNTIME_PROVIDED_DISTRIBUTIONS = frozenset(
    {"boto3", "botocore", "s3transfer", "urllib3", "python-dateutil", "six"}
)

#: Names of directories that hold a package's own test suite.
TEST_DIRECTORY_NAMES = frozenset({"tests"})

#: Environment variable naming a CPython 3.12 interpreter used to precompile bytecode
#: when `python3.12` on PATH is missing or broken (e.g. a pyenv shim).
BYTECODE_PYTHON_ENV = "MLOPS_LAYER_PYTHON312"

#: Placeholder required by CDK's BundlingOptions; local bundling always succeeds or
#: raises, so Docker never runs.
PLACEHOLDER_BUNDLING_IMAGE = DockerImage.from_registry("public.ecr.aws/sam/build-python3.12")

#: How many builds of each layer to keep in the cache (the current one included).
CACHE_ENTRIES_KEPT = 3

_STRIP_BATCH = 200
_IGNORED_SOURCE_PARTS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
_IGNORED_SOURCE_SUFFIXES = (".pyc", ".pyo", ".egg-info")


class LayerBuildError(RuntimeError):
    """A layer could not be built; the message says which step failed and why."""


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """What goes into one layer.

    Attributes:
        name: short name, used in cache paths and log lines (`core`, `serving`, ...).
        requirements: pip requirements file with the layer's top-level pins.
        local_packages: package directories copied as-is into `python/<dir name>`.
        base_layers: layers that every function using this one also has; whatever
            they install is removed from this layer instead of being shipped twice.
        prune: extra paths, relative to `python/`, removed after installation
            (large test-data trees that are not named `tests`).
        unused: distributions installed as dependencies that nothing in the layer's
            functions imports, uninstalled after installation (name -> why unused).
    """

    name: str
    requirements: Path
    local_packages: tuple[Path, ...] = ()
    base_layers: tuple[LayerSpec, ...] = ()
    prune: tuple[str, ...] = ()
    unused: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class BuiltLayer:
    """A finished layer in the cache: `path / "python"` is the layer content."""

    spec: LayerSpec
    key: str
    path: Path

    @property
    def python_dir(self) -> Path:
        return self.path / LAYER_PYTHON_DIR


def canonical_name(name: str) -> str:
    """PEP 503 normalisation, so `Python_DateUtil` and `python-dateutil` compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def directory_size(path: Path) -> int:
    """Apparent size in bytes of every regular file below `path` (what Lambda counts)."""
    return sum(
        entry.stat().st_size for entry in path.rglob("*") if entry.is_file() and not entry.is_symlink()
    )


def find_uv() -> Path:
    """The uv executable: the one installed next to this interpreter, else the one on PATH."""
    beside_interpreter = Path(sys.executable).parent / ("uv.exe" if os.name == "nt" else "uv")
    if beside_interpreter.is_file():
        return beside_interpreter
    on_path = shutil.which("uv")
    if on_path:
        return Path(on_path)
    raise LayerBuildError(
        "uv is needed to build the Lambda layers but was found neither next to "
        f"{sys.executable} nor on PATH; install the project's dev extra (`uv sync --all-extras`)."
    )


def find_bytecode_interpreter() -> tuple[Path, str] | None:
    """A CPython 3.12 interpreter to precompile the layers with, and its full version.

    `$MLOPS_LAYER_PYTHON312` wins over `python3.12` on PATH, then over pyenv's installed
    3.12 versions (newest first). Each candidate is run, because a pyenv shim exists on
    PATH even when it cannot start an interpreter.
    """
    candidates: list[str] = []
    if os.environ.get(BYTECODE_PYTHON_ENV):
        candidates.append(os.environ[BYTECODE_PYTHON_ENV])
    on_path = shutil.which(f"python{LAMBDA_PYTHON_VERSION}")
    if on_path:
        candidates.append(on_path)
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    installed = sorted(
        pyenv_root.glob(f"versions/{LAMBDA_PYTHON_VERSION}.*/bin/python{LAMBDA_PYTHON_VERSION}"),
        key=lambda path: [int(part) for part in path.parents[1].name.split(".") if part.isdigit()],
        reverse=True,
    )
    candidates.extend(str(path) for path in installed)
    probe = "import platform, sys; print(platform.python_implementation(), *sys.version_info[:3])"
    for candidate in candidates:
        try:
            result = subprocess.run(  # noqa: S603 - the interpreter path is the operator's choice
                [candidate, "-c", probe], capture_output=True, text=True, timeout=30, check=False
            )
        except OSError as error:
            LOGGER.info("bytecode: %s cannot run (%s)", candidate, error)
            continue
        fields = result.stdout.split()
        if result.returncode == 0 and len(fields) == 4 and fields[0] == "CPython":
            version = ".".join(fields[1:])
            if version.startswith(f"{LAMBDA_PYTHON_VERSION}."):
                return Path(candidate), version
        LOGGER.info("bytecode: %s is not a working CPython %s", candidate, LAMBDA_PYTHON_VERSION)
    return None


def find_elf_strip() -> str | None:
    """A `strip` that understands Linux ELF files: GNU binutils or LLVM.

    macOS's own `strip` only handles Mach-O and would fail on every manylinux binary,
    so there the layers are built unstripped (a few MiB larger) rather than not at all.
    """
    for name in ("strip", "llvm-strip"):
        tool = shutil.which(name)
        if tool is None:
            continue
        try:
            result = subprocess.run(  # noqa: S603 - a tool found on PATH, fixed arguments
                [tool, "--version"], capture_output=True, text=True, timeout=30, check=False
            )
        except OSError:
            continue
        if result.returncode == 0 and ("GNU" in result.stdout or "LLVM" in result.stdout):
            return tool
    return None


def _iter_source_files(package_dir: Path) -> Iterator[Path]:
    """Files of a local package that belong in the layer (no caches, no build metadata)."""
    for path in sorted(package_dir.rglob("*")):
        relative = path.relative_to(package_dir)
        if any(
            part in _IGNORED_SOURCE_PARTS or part.endswith(_IGNORED_SOURCE_SUFFIXES)
            for part in relative.parts
        ):
            continue
        if path.is_file():
            yield path


def _installed_distributions(site_dir: Path) -> dict[str, tuple[str, Path]]:
    """Canonical name -> (version, dist-info directory) for every distribution in `site_dir`."""
    found: dict[str, tuple[str, Path]] = {}
    for dist_info in sorted(site_dir.glob("*.dist-info")):
        metadata = HeaderParser().parsestr((dist_info / "METADATA").read_text(encoding="utf-8"))
        found[canonical_name(metadata["Name"])] = (metadata["Version"], dist_info)
    return found


def _uninstall(site_dir: Path, dist_info: Path) -> None:
    """Remove every file a distribution's RECORD lists, then its empty directories."""
    site_root = site_dir.resolve()
    touched_dirs: set[Path] = set()
    with (dist_info / "RECORD").open(newline="", encoding="utf-8") as record:
        for row in csv.reader(record):
            if not row:
                continue
            target = (site_dir / row[0]).resolve()
            # Console scripts are recorded outside the site dir (../bin); bin/ is removed whole.
            if not target.is_relative_to(site_root) or not target.is_file():
                continue
            target.unlink()
            touched_dirs.add(target.parent)
    shutil.rmtree(dist_info, ignore_errors=True)
    for touched in sorted(touched_dirs, key=lambda path: len(path.parts), reverse=True):
        shutil.rmtree(touched / "__pycache__", ignore_errors=True)
        directory = touched
        while directory != site_root and directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
            directory = directory.parent


def _remove_directories_named(root: Path, names: Iterable[str]) -> int:
    wanted = frozenset(names)
    doomed = sorted(path for path in root.rglob("*") if path.is_dir() and path.name in wanted)
    removed = 0
    for path in doomed:
        if path.exists():  # an enclosing match may already have taken it
            shutil.rmtree(path)
            removed += 1
    return removed


def _extension_modules(site_dir: Path) -> list[Path]:
    """Shared objects that are safe to strip: everything outside auditwheel's `*.libs/`."""
    return sorted(
        path
        for path in site_dir.rglob("*.so*")
        if path.is_file()
        and (path.suffix == ".so" or ".so." in path.name)
        and not any(part.endswith(".libs") for part in path.relative_to(site_dir).parts[:-1])
    )


def _chunks(items: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextlib.contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Serialise builds of one layer across processes (pytest-xdist workers, parallel synths)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; concurrent builds still end consistent
        yield
        return
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class LayerBuilder:
    """Builds layers from `LayerSpec`s and caches them by the hash of their inputs.

    The cache key covers everything that decides the content: this module's source
    (the recipe), the target platform, the requirements of the layer and of its base
    layers, the versions locked in uv.lock, the local package sources, and whether
    bytecode was compiled (and by which interpreter) and binaries stripped.
    """

    def __init__(
        self, repo_root: Path, *, lock_extras: Sequence[str] = (), cache_dir: Path | None = None
    ) -> None:
        """
        Args:
            repo_root: the project directory (holds uv.lock).
            lock_extras: the project extras whose locked versions constrain the layers;
                the project's main dependencies are always included.
            cache_dir: where finished layers are kept; `<repo_root>/.cache/layers` by default.
        """
        self.repo_root = repo_root.resolve()
        self.lock_extras = tuple(lock_extras)
        self.cache_dir = cache_dir or self.repo_root / ".cache" / "layers"
        self._uv: Path | None = None
        self._constraints: str | None = None
        self._bytecode_probe_done = False
        self._bytecode_python: tuple[Path, str] | None = None
        self._strip_probe_done = False
        self._strip_tool: str | None = None
        self._keys: dict[LayerSpec, str] = {}

    # -- inputs ---------------------------------------------------------------------

    @property
    def uv(self) -> Path:
        if self._uv is None:
            self._uv = find_uv()
        return self._uv

    @property
    def bytecode_python(self) -> tuple[Path, str] | None:
        if not self._bytecode_probe_done:
            self._bytecode_python = find_bytecode_interpreter()
            self._bytecode_probe_done = True
            if self._bytecode_python is None:
                LOGGER.warning(
                    "layers: no CPython %s found (python%s on PATH or $%s); layers ship without "
                    "bytecode, so imports on a cold start are slower",
                    LAMBDA_PYTHON_VERSION,
                    LAMBDA_PYTHON_VERSION,
                    BYTECODE_PYTHON_ENV,
                )
        return self._bytecode_python

    @property
    def strip_tool(self) -> str | None:
        if not self._strip_probe_done:
            self._strip_tool = find_elf_strip()
            self._strip_probe_done = True
        return self._strip_tool

    def constraints(self) -> str:
        """Every version in uv.lock, as pip constraints: the layers get exactly what the tests ran."""
        if self._constraints is None:
            self._constraints = self._run(
                [
                    str(self.uv),
                    "export",
                    "--frozen",
                    "--no-dev",
                    *(f"--extra={extra}" for extra in self.lock_extras),
                    "--no-emit-project",
                    "--no-hashes",
                    "--no-header",
                    "--no-annotate",
                    "--format",
                    "requirements-txt",
                ],
                step="export the locked versions from uv.lock",
                cwd=self.repo_root,
            )
        return self._constraints

    def _dependency_inputs(self, spec: LayerSpec) -> bytes:
        """Everything that decides which third-party files a layer contains."""
        inputs = [
            f"layer={spec.name}\n".encode(),
            spec.requirements.read_bytes(),
            "\n".join(spec.prune).encode(),
            "\n".join(name for name, _ in spec.unused).encode(),
        ]
        inputs += [b"\nbase:" + self._dependency_inputs(base) for base in spec.base_layers]
        return b"".join(inputs)

    def key(self, spec: LayerSpec) -> str:
        """The sha256 of every input of `spec`; also used as the CDK asset hash."""
        if spec not in self._keys:
            digest = hashlib.sha256()
            digest.update(Path(__file__).read_bytes())
            digest.update(f"\n{LAMBDA_PYTHON_VERSION}\n{LAMBDA_PYTHON_PLATFORM}\n".encode())
            digest.update(self.constraints().encode())
            bytecode = self.bytecode_python
            digest.update(f"\nbytecode={bytecode[1] if bytecode else 'none'}\n".encode())
            digest.update(f"strip={'yes' if self.strip_tool else 'no'}\n".encode())
            digest.update(self._dependency_inputs(spec))
            for package_dir in spec.local_packages:
                digest.update(f"\npackage:{package_dir.name}\n".encode())
                for source in _iter_source_files(package_dir):
                    digest.update(source.relative_to(package_dir).as_posix().encode() + b"\0")
                    digest.update(hashlib.sha256(source.read_bytes()).digest())
            self._keys[spec] = digest.hexdigest()
        return self._keys[spec]

    # -- building -------------------------------------------------------------------

    def build(self, spec: LayerSpec) -> BuiltLayer:
        """The finished layer for `spec`, from the cache or freshly built."""
        key = self.key(spec)
        entry = self.cache_dir / f"{spec.name}-{key[:16]}"
        if (entry / "build-info.json").is_file():
            LOGGER.info("layer %s: cached in %s", spec.name, self._display(entry))
            os.utime(entry)  # recently used: eviction keeps the newest entries
            return BuiltLayer(spec, key, entry)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with _exclusive_lock(self.cache_dir / f"{spec.name}.lock"):
            if not (entry / "build-info.json").is_file():  # another process may have built it
                self._build_into(spec, key, entry)
        self._prune_cache(spec.name, keep=entry)
        return BuiltLayer(spec, key, entry)

    def _build_into(self, spec: LayerSpec, key: str, entry: Path) -> None:
        started = time.monotonic()
        staging = entry.with_name(f"{entry.name}.partial-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        site_dir = staging / LAYER_PYTHON_DIR
        site_dir.mkdir(parents=True)
        constraints = staging / "constraints.txt"
        try:
            LOGGER.info("layer %s: building (key %s) ...", spec.name, key[:16])
            constraints.write_text(self.constraints(), encoding="utf-8")
            self._install(spec, site_dir, constraints)
            removed = self._remove_provided_distributions(spec, site_dir, constraints)
            constraints.unlink()
            shutil.rmtree(site_dir / "bin", ignore_errors=True)
            self._prune(spec, site_dir)
            stripped = self._strip_extension_modules(spec, site_dir)
            for package_dir in spec.local_packages:
                self._copy_package(package_dir, site_dir / package_dir.name)
            bytecode = self._compile_bytecode(spec, site_dir)
            size_bytes = directory_size(site_dir)
            build_seconds = round(time.monotonic() - started, 1)
            info = {
                "layer": spec.name,
                "key": key,
                "python_version": LAMBDA_PYTHON_VERSION,
                "python_platform": LAMBDA_PYTHON_PLATFORM,
                "bytecode_compiled_by": bytecode,
                "stripped_extension_modules": stripped,
                "removed_distributions": removed,
                "distributions": {
                    name: version for name, (version, _) in _installed_distributions(site_dir).items()
                },
                "local_packages": [package_dir.name for package_dir in spec.local_packages],
                "size_bytes": size_bytes,
                "build_seconds": build_seconds,
            }
            (staging / "build-info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
            shutil.rmtree(entry, ignore_errors=True)
            staging.rename(entry)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        LOGGER.info(
            "layer %s: built in %.1f s, %.1f MiB unzipped", spec.name, build_seconds, size_bytes / 2**20
        )

    def _install(self, spec: LayerSpec, site_dir: Path, constraints: Path) -> None:
        self._run(
            [
                str(self.uv),
                "pip",
                "install",
                "--quiet",
                # Copies, not uv's default hard links into its cache: the build strips these
                # files in place, and a hard link would strip the cache's copy, and through
                # it every environment linked to it (a running Python with the same abi3
                # extension mapped, e.g. onnx or protobuf, then crashes).
                "--link-mode",
                "copy",
                "--target",
                str(site_dir),
                "--python-platform",
                LAMBDA_PYTHON_PLATFORM,
                "--python-version",
                LAMBDA_PYTHON_VERSION,
                "--only-binary",
                ":all:",
                "--constraint",
                str(constraints),
                "--requirement",
                str(spec.requirements),
            ],
            step=f"install {self._display(spec.requirements)} for {spec.name}",
            cwd=self.repo_root,
        )

    def _base_distributions(self, spec: LayerSpec, constraints: Path) -> dict[str, str]:
        """Canonical name -> version of everything the base layers install (resolved, not built)."""
        resolved: dict[str, str] = {}
        for base in spec.base_layers:
            command = [
                str(self.uv),
                "pip",
                "compile",
                "--quiet",
                "--no-header",
                "--no-annotate",
                "--python-platform",
                LAMBDA_PYTHON_PLATFORM,
                "--python-version",
                LAMBDA_PYTHON_VERSION,
                "--constraint",
                str(constraints),
                str(base.requirements),
            ]
            step = f"resolve the {base.name} layer to deduplicate {spec.name}"
            try:
                # The base layer was just installed, so uv's cache answers offline in
                # well under a second; online revalidation of the index takes ~10 s.
                output = self._run([*command, "--offline"], step=step, cwd=self.repo_root)
            except LayerBuildError:
                output = self._run(command, step=step, cwd=self.repo_root)
            for line in output.splitlines():
                name, separator, version = line.strip().partition("==")
                if separator:
                    resolved[canonical_name(name.split("[")[0])] = version.split(";")[0].strip()
            resolved.update(self._base_distributions(base, constraints))
        return resolved

    def _remove_provided_distributions(
        self, spec: LayerSpec, site_dir: Path, constraints: Path
    ) -> dict[str, str]:
        """Uninstall what the runtime or a base layer provides; returns name -> reason."""
        installed = _installed_distributions(site_dir)
        base = self._base_distributions(spec, constraints)
        unused = {canonical_name(name): why for name, why in spec.unused}
        missing = sorted(set(unused) - set(installed))
        if missing:  # the recipe is stale: say so rather than keep a reason for nothing
            LOGGER.warning("layer %s: %s not installed, nothing to remove", spec.name, ", ".join(missing))
        removed: dict[str, str] = {}
        for name, (version, dist_info) in installed.items():
            if name in unused:
                reason = f"unused: {unused[name]}"
            elif name in RUNTIME_PROVIDED_DISTRIBUTIONS:
                reason = "provided by the Lambda runtime"
            elif name in base:
                if base[name] != version:
                    raise LayerBuildError(
                        f"layer {spec.name} installs {name} {version} but its base layer has "
                        f"{base[name]}: one would shadow the other in /opt/python; align the pins"
                    )
                reason = "provided by a base layer"
            else:
                continue
            _uninstall(site_dir, dist_info)
            removed[name] = reason
        if removed:
            LOGGER.info("layer %s: removed %s", spec.name, ", ".join(sorted(removed)))
        return removed

    def _prune(self, spec: LayerSpec, site_dir: Path) -> None:
        removed = _remove_directories_named(site_dir, TEST_DIRECTORY_NAMES | {"__pycache__"})
        for relative in spec.prune:
            target = site_dir / relative
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            else:  # the recipe is stale: say so rather than silently shipping more
                LOGGER.warning("layer %s: nothing to prune at %s", spec.name, relative)
        for stray in site_dir.rglob("*.py[co]"):
            stray.unlink()
        LOGGER.info("layer %s: dropped %d tests/__pycache__ directories", spec.name, removed)

    def _strip_extension_modules(self, spec: LayerSpec, site_dir: Path) -> int:
        tool = self.strip_tool
        if tool is None:
            LOGGER.warning(
                "layer %s: no ELF-capable strip (GNU binutils or llvm-strip); extension modules keep "
                "their symbols",
                spec.name,
            )
            return 0
        modules = _extension_modules(site_dir)
        for batch in _chunks(modules, _STRIP_BATCH):
            self._run(
                [tool, "--strip-unneeded", *map(str, batch)],
                step=f"strip extension modules of {spec.name}",
                cwd=site_dir,
            )
        return len(modules)

    @staticmethod
    def _copy_package(source: Path, destination: Path) -> None:
        for path in _iter_source_files(source):
            target = destination / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)

    def _compile_bytecode(self, spec: LayerSpec, site_dir: Path) -> str | None:
        """Precompile with CPython 3.12, if one is available; returns its version.

        Lambda cannot write `__pycache__` under /opt, so without shipped bytecode every
        cold start compiles every imported module again. The `.pyc` files are hash-based
        and *unchecked*: CDK zips assets with a fixed 1980 timestamp, which would make
        timestamp-based `.pyc` files look stale, and a layer never changes after
        publishing. `-s/-p` record `/opt/python/...` as the source path for tracebacks.
        """
        interpreter = self.bytecode_python
        if interpreter is None:
            LOGGER.info("layer %s: bytecode not compiled (no CPython %s)", spec.name, LAMBDA_PYTHON_VERSION)
            return None
        path, version = interpreter
        result = subprocess.run(  # noqa: S603 - fixed argument list
            [
                str(path),
                "-m",
                "compileall",
                "-q",
                "-j",
                "0",
                "--invalidation-mode",
                "unchecked-hash",
                "-s",
                str(site_dir),
                "-p",
                LAMBDA_LAYER_SITE_DIR,
                str(site_dir),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            # A file that does not compile here would not import on Lambda either; the
            # rest of the layer still benefits, so report it and carry on.
            LOGGER.warning("layer %s: some files did not compile:\n%s", spec.name, result.stdout[-4000:])
        LOGGER.info("layer %s: bytecode compiled by CPython %s", spec.name, version)
        return version

    # -- housekeeping -----------------------------------------------------------------

    def _prune_cache(self, name: str, keep: Path) -> None:
        """Keep the newest builds of a layer so that switching branches stays cheap."""
        entries = sorted(
            (
                path
                for path in self.cache_dir.glob(f"{name}-*")
                if path.is_dir() and ".partial-" not in path.name
            ),
            key=lambda path: path.stat().st_mtime,
            reverse=True,
        )
        for stale in [path for path in entries if path != keep][CACHE_ENTRIES_KEPT - 1 :]:
            LOGGER.info("layer %s: evicting %s from the cache", name, stale.name)
            shutil.rmtree(stale, ignore_errors=True)

    def _display(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.repo_root))
        except ValueError:
            return str(path)

    @staticmethod
    def _run(command: list[str], *, step: str, cwd: Path) -> str:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise LayerBuildError(
                f"could not {step}: `{' '.join(command)}` exited with {result.returncode}\n"
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        return result.stdout


@jsii.implements(ILocalBundling)
class LocalLayerBundler:
    """CDK local bundling for one layer: copies the (cached) build into the asset directory.

    It never returns False: falling back to Docker would run the placeholder image with
    no command, so a failed build raises instead and synthesis stops with its message.
    """

    def __init__(self, builder: LayerBuilder, spec: LayerSpec) -> None:
        self._builder = builder
        self._spec = spec

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: Any) -> bool:
        del image  # the placeholder CDK requires; nothing runs in Docker
        try:
            built = self._builder.build(self._spec)
            shutil.copytree(built.python_dir, Path(output_dir) / LAYER_PYTHON_DIR, symlinks=True)
        except Exception:
            LOGGER.exception("layer %s: local bundling failed", self._spec.name)
            raise
        return True
