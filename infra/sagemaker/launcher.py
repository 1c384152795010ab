"""The SageMaker training job's entry point (``sagemaker_program``), run by the scikit-learn
framework container's own Python.

That container gives the job its SageMaker plumbing (the code download from
``sagemaker_submit_directory``, hyper-parameters, logs, the exit status) but its
scikit-learn and Python are older than the project's pins. Models must come out exactly
as the Lambda trainer makes them, so this script installs the layers' pinned versions
(``pins.txt``, built by CDK from layers/*/requirements.txt) into a uv-managed
CPython of the Lambda runtime's version, then runs the same fitting code there:
``python -m mlops_core.training.training_job RUN_ID CANDIDATE_ID``.

Standard library only, and Python 3.8-compatible syntax: it runs before anything is installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
HYPERPARAMETERS = Path("/opt/ml/input/config/hyperparameters.json")
#: Not ``requirements.txt``: the framework's toolkit pip-installs a file of that name into the
#: container's own (older) Python before the entry point runs, and these pins need 3.12.
PINS = "pins.txt"
VENV = Path(tempfile.gettempdir()) / "mlops-training"


def _run(command: list[str], **kwargs: object) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)  # type: ignore[call-overload]  # noqa: S603 - fixed commands


def _hyperparameter(values: dict[str, str], name: str) -> str:
    value = values[name]
    try:  # SageMaker hands every hyper-parameter over as a string (the SDK JSON-encodes them)
        decoded = json.loads(value)
    except ValueError:
        return value
    return str(decoded)


def main() -> int:
    pins = json.loads((HERE / "launcher.json").read_text())
    values = json.loads(HYPERPARAMETERS.read_text())
    run_id, candidate_id = _hyperparameter(values, "run_id"), _hyperparameter(values, "candidate_id")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"uv=={pins['uv']}",
        ]
    )
    _run([sys.executable, "-m", "uv", "venv", "--python", pins["python"], str(VENV)])
    python = str(VENV / "bin" / "python")
    _run(
        [
            sys.executable,
            "-m",
            "uv",
            "pip",
            "install",
            "--python",
            python,
            "-r",
            str(HERE / PINS),
        ]
    )
    environment = dict(os.environ, PYTHONPATH=str(HERE))
    command = [python, "-m", "mlops_core.training.training_job", run_id, candidate_id]
    print("+", " ".join(command), flush=True)
    return subprocess.call(command, env=environment)  # noqa: S603 - a fixed command and the job's ids


if __name__ == "__main__":
    raise SystemExit(main())
