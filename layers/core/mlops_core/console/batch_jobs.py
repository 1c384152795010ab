"""The batch page's source: the batch scoring jobs' records (``mlops_core.batch``)."""

from __future__ import annotations

from collections.abc import Sequence

from mlops_core.batch.repository import BatchJobRepository
from mlops_core.console.pages import BatchJobView


class RecordedBatchJobs:
    """A model's batch jobs, newest first, as the registry records them (``BATCH#{id}``)."""

    def __init__(self, repository: BatchJobRepository) -> None:
        self.repository = repository

    def list_jobs(self, model_name: str, *, limit: int) -> Sequence[BatchJobView]:
        return [
            BatchJobView(
                job_id=job.job_id,
                status=job.status,
                model_version=job.version,
                created_at=job.created_at,
                rows=job.rows,
                message=job.error or (f"{job.rows_failed} row(s) refused" if job.rows_failed else None),
            )
            for job in self.repository.recent(limit=limit, model_name=model_name)
        ]
