"""Starting a training run: what ``POST /training`` and the retraining loop both do.

The request is checked in full before anything starts (``requests.check_before_start``:
candidates, hyper-parameters, the dataset's schema, the target metric; for a run on feature
views ``training_sets.check_feature_view_request``: the views, the labels), so a bad request
is an ``InvalidTrainingRequest`` and no execution exists; then the execution named after
the run id starts (a second start of the same name is a ``Conflict``).
"""

from __future__ import annotations

from mlops_core.storage.s3 import ArtifactStore
from mlops_core.storage.stepfunctions import TrainingWorkflow
from mlops_core.training.requests import InvalidTrainingRequest, TrainingRequest, check_before_start
from mlops_core.training.training_sets import FeatureViews, check_feature_view_request


def start_training_run(
    request: TrainingRequest,
    store: ArtifactStore,
    workflow: TrainingWorkflow,
    views: FeatureViews | None = None,
) -> str:
    """Check ``request`` against its dataset's schema (or its feature views and labels) and
    start its execution; its ARN."""
    if request.feature_views is not None:
        if views is None:
            raise InvalidTrainingRequest("runs on feature views are started through POST /training")
        check_feature_view_request(request, store, views)
    else:
        check_before_start(request, store)
    return workflow.start(request.run_id, request.model_dump(mode="json", exclude_none=True))
