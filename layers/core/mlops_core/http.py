"""The one place where domain exceptions become HTTP responses.

Every REST handler calls ``register_error_handlers(app, logger)`` and answers through
``resolve(app, event, context)``. Response bodies are ``{"message": ..., "code": ...,
"detail": [...]}``; nothing ever carries a stack trace.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, Field

from mlops_core.errors import Conflict, IntegrityError, Invalid, MlopsError, NotFound, Unavailable
from mlops_core.storage import deadline


class ErrorBody(BaseModel):
    """The body of every 4xx/5xx answer from the functions."""

    message: str = Field(description="What went wrong, for a person")
    code: str = Field(
        description="The status phrase in snake_case (not_found, conflict…), or integrity_failure, "
        "unsupported_media_type"
    )
    detail: list[dict[str, Any]] | None = Field(
        default=None, description="One entry per problem: loc (where), msg, type"
    )
    current: dict[str, Any] | None = Field(default=None, description="409: the state the request ran into")


_ERROR_DESCRIPTIONS = {
    400: "Malformed request: JSON that does not parse, a body that is not UTF-8",
    404: "The model, version, alias, run or object does not exist",
    409: "The request contradicts the current state (exists already, stale revision, promotion policy)",
    415: "The body is not application/json",
    422: "Validation failed: detail lists each problem with its location",
    503: "A dependency is throttled or unavailable, or an artifact failed its checksum; see Retry-After",
}
_GATEWAY_ERRORS: dict[int, OpenAPIResponse] = {
    403: {
        "description": "Refused by API Gateway: missing or invalid API key, or IAM credentials",
        "content": {
            "application/json": {"schema": {"type": "object", "properties": {"message": {"type": "string"}}}}
        },
    },
    429: {
        "description": "Throttled by API Gateway (stage or usage-plan limits)",
        "content": {
            "application/json": {"schema": {"type": "object", "properties": {"message": {"type": "string"}}}}
        },
    },
}
# Error statuses of the usual kinds of route (422 covers path and query parameters too).
READ_ERRORS = (403, 404, 422, 503)
WRITE_ERRORS = (400, 403, 404, 409, 415, 422, 503)


def responses(
    errors: Iterable[int], *, success: int = 200, description: str = "Success"
) -> dict[int, OpenAPIResponse]:
    """The OpenAPI ``responses`` of a route: its success (schema from the return annotation)
    and each error status it can answer, with ``ErrorBody`` (API Gateway's own for 403/429)."""
    documented: dict[int, OpenAPIResponse] = {success: {"description": description}}
    for status in errors:
        documented[status] = _GATEWAY_ERRORS.get(status) or {
            "description": _ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"model": ErrorBody}},
        }
        if status == HTTPStatus.SERVICE_UNAVAILABLE:
            documented[status]["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before retrying",
                    "schema": {"type": "integer"},
                }
            }
    return documented


def error_body(
    status: HTTPStatus,
    message: str,
    *,
    detail: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An ``ErrorBody``: the code is the status phrase in snake_case unless ``extra`` says otherwise."""
    body: dict[str, Any] = {"message": message, "code": status.phrase.lower().replace(" ", "_")}
    if detail:
        body["detail"] = detail
    if extra:
        body.update(extra)
    return body


def error_response(
    status: HTTPStatus,
    message: str,
    *,
    detail: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    body = error_body(status, message, detail=detail, extra=extra)
    return Response(
        status_code=status.value, content_type=content_types.APPLICATION_JSON, body=body, headers=headers
    )


def resolve(app: APIGatewayRestResolver, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``app.resolve(event, context)`` within the request's deadline (derived from the
    function's remaining time), refusing bodies that are not JSON first (415).

    Powertools would also parse form and multipart bodies (this API takes neither), and a
    multipart type without a boundary raises a bare ``ValueError`` there.
    """
    content_type = next(
        (str(v) for k, v in (event.get("headers") or {}).items() if k.lower() == "content-type"), ""
    )
    media_type = content_type.split(";", 1)[0].strip().lower()
    if event.get("body") and media_type not in ("", "application/json"):
        status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
        body = error_body(status, f"unsupported Content-Type '{content_type[:100]}': send application/json")
        return {
            "statusCode": status.value,
            "multiValueHeaders": {"Content-Type": [content_types.APPLICATION_JSON]},
            "body": json.dumps(body),
            "isBase64Encoded": False,
        }
    remaining_ms = context.get_remaining_time_in_millis() if context is not None else None
    with deadline.request_deadline(deadline.seconds_for_request(remaining_ms)):
        return app.resolve(event, context)


def _validation_detail(errors: Any) -> list[dict[str, Any]]:
    # pydantic's messages name the field and the rule, never our code; the offending
    # input is left out so a response never echoes a large or sensitive payload.
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors
    ]


def register_error_handlers(app: APIGatewayRestResolver, logger: Logger) -> None:
    @app.exception_handler(RequestValidationError)
    def _request_validation(error: RequestValidationError) -> Response:
        errors = list(error.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            reason = next(
                (e.get("ctx", {}).get("error") for e in errors if e.get("type") == "json_invalid"), ""
            )
            return error_response(HTTPStatus.BAD_REQUEST, f"malformed JSON body: {reason}".rstrip(": "))
        return error_response(
            HTTPStatus.UNPROCESSABLE_ENTITY, "request validation failed", detail=_validation_detail(errors)
        )

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported_content_type(_error: RequestUnsupportedContentType) -> Response:
        return error_response(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported Content-Type: send application/json"
        )

    @app.exception_handler(UnicodeDecodeError)
    def _not_utf8(_error: UnicodeDecodeError) -> Response:
        return error_response(HTTPStatus.BAD_REQUEST, "malformed body: not UTF-8 text")

    @app.exception_handler(RecursionError)
    def _too_deep(_error: RecursionError) -> Response:
        # json.loads gives up near 1000 levels of nesting; no request here needs more than 3.
        return error_response(HTTPStatus.BAD_REQUEST, "malformed JSON body: nested too deeply")

    @app.not_found
    def _no_route(_error: NotFoundError) -> Response:
        # A path API Gateway routed here that no route of this function matches (a path
        # parameter with characters the routes do not accept, say).
        event = app.current_event
        return error_response(
            HTTPStatus.NOT_FOUND, f"no such resource: {event.http_method} {event.path[:200]}"
        )

    @app.exception_handler(Invalid)
    def _invalid(error: Invalid) -> Response:
        return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, error.message, detail=error.details)

    @app.exception_handler(NotFound)
    def _not_found(error: NotFound) -> Response:
        return error_response(HTTPStatus.NOT_FOUND, error.message)

    @app.exception_handler(Conflict)
    def _conflict(error: Conflict) -> Response:
        extra = {"current": error.current} if error.current is not None else None
        return error_response(HTTPStatus.CONFLICT, error.message, detail=error.details, extra=extra)

    @app.exception_handler(Unavailable)
    def _unavailable(error: Unavailable) -> Response:
        if isinstance(error, IntegrityError):
            logger.error("artifact integrity failure", extra={"reason": error.message})
        else:
            logger.warning("dependency unavailable", extra={"reason": error.message})
        return error_response(
            HTTPStatus.SERVICE_UNAVAILABLE,
            error.message,
            headers={"Retry-After": str(error.retry_after_seconds)},
            extra={"code": "integrity_failure"} if isinstance(error, IntegrityError) else None,
        )

    @app.exception_handler(MlopsError)
    def _other_domain_error(error: MlopsError) -> Response:
        logger.error("unmapped domain error", extra={"type": type(error).__name__})
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, error.message)

    @app.exception_handler(Exception)
    def _unexpected(_error: Exception) -> Response:
        # A bug: log it with its trace, answer without one.
        logger.exception("unhandled error")
        return error_response(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            "internal error",
            extra={"request_id": app.lambda_context.aws_request_id if app.lambda_context else None},
        )
