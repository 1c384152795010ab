"""Where batch jobs live: one record per job (``BATCH#{id} / BATCH_JOB``), listed newest first
through the list index (``gsi1pk = BATCH_JOBS``, ``gsi1sk = {created_at}#{id}``)."""

from __future__ import annotations

from typing import Any

from mlops_core.batch.entities import BatchJob
from mlops_core.storage import keys
from mlops_core.storage.dynamo import MetadataTable


class BatchJobRepository:
    def __init__(self, table: MetadataTable) -> None:
        self.table = table

    def create(self, job: BatchJob) -> None:
        self.table.put(_item(job), condition="attribute_not_exists(pk)")

    def save(self, job: BatchJob) -> None:
        """The job as it is now (the workflow's steps write it; a retried step writes the same)."""
        self.table.put(_item(job))

    def get(self, job_id: str) -> BatchJob | None:
        item = self.table.get(keys.batch_job_pk(job_id), keys.BATCH_JOB_SK, consistent=True)
        return None if item is None else _job(item)

    def recent(self, *, limit: int, model_name: str | None = None) -> list[BatchJob]:
        found: list[BatchJob] = []
        for item in self.table.query(keys.ALL_BATCH_JOBS, index=keys.LIST_INDEX, newest_first=True):
            job = _job(item)
            if model_name is None or job.model_name == model_name:
                found.append(job)
                if len(found) >= limit:
                    break
        return found


def _item(job: BatchJob) -> dict[str, Any]:
    return {
        keys.PARTITION_KEY: keys.batch_job_pk(job.job_id),
        keys.SORT_KEY: keys.BATCH_JOB_SK,
        keys.LIST_INDEX_PARTITION_KEY: keys.ALL_BATCH_JOBS,
        keys.LIST_INDEX_SORT_KEY: f"{job.created_at}#{job.job_id}",
        **job.model_dump(mode="json", exclude_none=True),
    }


def _job(item: dict[str, Any]) -> BatchJob:
    return BatchJob.model_validate({k: v for k, v in item.items() if k not in keys.KEY_ATTRIBUTES})
