"""Starting a training run: what ``POST /training`` and the retraining loop both do.

The request is checked in full before anything starts (``requests.check_before_start``:
candidates, hyper-parameters, the dataset's schema, the target metric), so a bad request
is an ``InvalidTrainingRequest`` and no execution exists; then the execution named after
the run id starts (a second start of the same name is a ``Conflict``).
"""

from __future__ import annotations

from mlops_core.storage.s3 import ArtifactStore
from mlops_core.storage.stepfunctions import TrainingWorkflow
from mlops_core.training.requests import TrainingRequest, check_before_start


def start_training_run(request: TrainingRequest, store: ArtifactStore, workflow: TrainingWorkflow) -> str:
    """Check ``request`` against its dataset's schema and start its execution; its ARN."""
    check_before_start(request, store)
    return workflow.start(request.run_id, request.model_dump(mode="json", exclude_none=True))
