"""AWS Signature Version 4 for the signed reads: credentials, endpoints of the known
partitions, and the signer (checked against botocore's, request by request, in the tests).

Only the standard library: this module is on the inference cold path.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import quote

USER_AGENT = "serverless-mlops/signed-reads"


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


# Regions of the partitions this client knows the endpoints of. Anything else (ISO
# partitions, the European Sovereign Cloud, a region added later) is left to boto3.
_PARTITIONS = (
    (re.compile(r"^cn-[a-z]+-\d+$"), "amazonaws.com.cn"),
    (re.compile(r"^us-gov-[a-z]+-\d+$"), "amazonaws.com"),
    (re.compile(r"^(us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-\d+$"), "amazonaws.com"),
)


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None

    def current(self) -> Credentials:
        """Static credentials are their own source (see ``CredentialSource``)."""
        return self

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Credentials | None:
        """The credentials Lambda puts in every function's environment, if present."""
        access_key = environ.get("AWS_ACCESS_KEY_ID")
        secret_key = environ.get("AWS_SECRET_ACCESS_KEY")
        if not access_key or not secret_key:
            return None
        return cls(access_key, secret_key, environ.get("AWS_SESSION_TOKEN") or None)


class CredentialSource(Protocol):
    """Where a reader gets the credentials to sign each attempt with."""

    def current(self) -> Credentials: ...


def dns_suffix(region: str) -> str | None:
    """The endpoint domain of ``region``'s partition, or None for partitions left to boto3."""
    for pattern, suffix in _PARTITIONS:
        if pattern.match(region):
            return suffix
    return None


def configured_endpoint(service_env_name: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """``AWS_ENDPOINT_URL_<SERVICE>`` or ``AWS_ENDPOINT_URL``, as boto3 reads them."""
    if environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return None
    return environ.get(f"AWS_ENDPOINT_URL_{service_env_name}") or environ.get("AWS_ENDPOINT_URL") or None


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def sign(
    *,
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_sha256: str,
    service: str,
    region: str,
    credentials: Credentials,
    now: datetime,
) -> dict[str, str]:
    """The headers to send: ``headers`` plus host, date, token and ``Authorization``.

    ``path`` is the URI-encoded path sent. S3 signs it as it is; every other service signs
    it normalized (dot segments and empty segments removed) and encoded once more, as
    SigV4 specifies and botocore does. Every header passed in is signed, so callers pass
    only what AWS must see unaltered.
    """
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    signed = {name.lower(): " ".join(str(value).split()) for name, value in headers.items()}
    signed["host"] = host
    signed["x-amz-date"] = amz_date
    if credentials.token:
        signed["x-amz-security-token"] = credentials.token
    names = sorted(signed)
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
    )
    canonical_request = "\n".join(
        [
            method,
            path if service == "s3" else quote(_remove_dot_segments(path) or "/", safe="/~"),
            canonical_query,
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = _hmac(
        _hmac(_hmac(_hmac(f"AWS4{credentials.secret_key}".encode(), day), region), service), "aws4_request"
    )
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    signed["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return signed


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4, with consecutive slashes collapsed too (botocore's ``remove_dot_segments``)."""
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    leading = "/" if path.startswith("/") else ""
    trailing = "/" if path.endswith("/") and kept else ""
    return leading + "/".join(kept) + trailing
