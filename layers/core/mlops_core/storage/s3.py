"""The artifact store adapter: objects in the private, versioned artifacts bucket.

Every read names the S3 object version recorded in the registry, so a later overwrite
of the same key can never change what a registered model version serves.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mlops_core.errors import Conflict, NotFound, Unavailable
from mlops_core.storage.clients import client, reader, translate_errors


@dataclass(frozen=True)
class StoredObject:
    key: str
    version_id: str | None
    data: bytes


class ArtifactStore:
    what = "artifact store"

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    @property
    def _client(self) -> Any:
        return client("s3")

    def get(self, key: str, version_id: str | None = None) -> StoredObject:
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            request["VersionId"] = version_id
        # Messages name the store, never the bucket or the key: they can reach callers.
        with translate_errors(self.what):
            response = reader("s3").get_object(**request)
            data = response["Body"].read()
        return StoredObject(key=key, version_id=response.get("VersionId"), data=data)

    def size(self, key: str) -> int:
        """The size in bytes of the current object at ``key`` (``NotFound`` if there is none)."""
        with translate_errors(self.what):
            response = self._client.head_object(Bucket=self.bucket, Key=key)
        return int(response["ContentLength"])

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> StoredObject:
        with translate_errors(self.what):
            response = self._client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
            )
        return StoredObject(key=key, version_id=response.get("VersionId"), data=data)

    def put_once(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> StoredObject:
        """Write a content-addressed object unless it is there already (S3 conditional write).

        The key names the content, so an existing object holds these bytes: it is kept and its
        version returned. Concurrent writers of one key make one object version, not one each.
        """
        for _ in range(3):
            try:
                with translate_errors(self.what):
                    response = self._client.put_object(
                        Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, IfNoneMatch="*"
                    )
                return StoredObject(key=key, version_id=response.get("VersionId"), data=data)
            except Conflict:  # 412: it exists; 409: a concurrent write of it is in flight
                try:
                    with translate_errors(self.what):
                        head = self._client.head_object(Bucket=self.bucket, Key=key)
                    return StoredObject(key=key, version_id=head.get("VersionId"), data=data)
                except NotFound:
                    continue  # the in-flight write failed: write it ourselves
        raise Unavailable(
            f"{self.what}: concurrent writes of one object kept conflicting", retry_after_seconds=1
        )

    def keys(self, prefix: str, *, start_after: str | None = None) -> Iterator[str]:
        """Keys under ``prefix`` in key order (after ``start_after``), following pagination lazily."""
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if start_after:
            request["StartAfter"] = start_after
        while True:
            with translate_errors(self.what):
                response = self._client.list_objects_v2(**request)
            for item in response.get("Contents", []):
                yield str(item["Key"])
            token = response.get("NextContinuationToken")
            if not response.get("IsTruncated") or not token:
                return
            request = {"Bucket": self.bucket, "Prefix": prefix, "ContinuationToken": token}

    def objects(self, prefix: str) -> Iterator[ListedObject]:
        """Objects under ``prefix`` in key order with their ETag and size (pagination followed)."""
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        while True:
            with translate_errors(self.what):
                response = self._client.list_objects_v2(**request)
            for item in response.get("Contents", []):
                yield ListedObject(
                    key=str(item["Key"]), etag=str(item.get("ETag", "")).strip('"'), size=int(item["Size"])
                )
            token = response.get("NextContinuationToken")
            if not response.get("IsTruncated") or not token:
                return
            request = {"Bucket": self.bucket, "Prefix": prefix, "ContinuationToken": token}


@dataclass(frozen=True)
class ListedObject:
    key: str
    etag: str
    size: int
