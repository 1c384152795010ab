"""The one place where domain exceptions become HTTP responses.

Every REST handler calls ``register_error_handlers(app, logger)`` and answers through
``resolve(app, event, context)``. Response bodies are ``{"message": ..., "code": ...,
"detail": [...]}``; nothing ever carries a stack trace.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from mlops_core.errors import Conflict, IntegrityError, Invalid, MlopsError, NotFound, Unavailable


def error_response(
    status: HTTPStatus,
    message: str,
    *,
    detail: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {"message": message, "code": status.phrase.lower().replace(" ", "_")}
    if detail:
        body["detail"] = detail
    if extra:
        body.update(extra)
    return Response(
        status_code=status.value, content_type=content_types.APPLICATION_JSON, body=body, headers=headers
    )


def resolve(app: APIGatewayRestResolver, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``app.resolve(event, context)``, refusing bodies that are not JSON first (415).

    Powertools would also parse form and multipart bodies (this API takes neither), and a
    multipart type without a boundary raises a bare ``ValueError`` there.
    """
    content_type = next(
        (str(v) for k, v in (event.get("headers") or {}).items() if k.lower() == "content-type"), ""
    )
    media_type = content_type.split(";", 1)[0].strip().lower()
    if event.get("body") and media_type not in ("", "application/json"):
        body = {
            "message": f"unsupported Content-Type '{content_type[:100]}': send application/json",
            "code": "unsupported_media_type",
        }
        return {
            "statusCode": HTTPStatus.UNSUPPORTED_MEDIA_TYPE.value,
            "multiValueHeaders": {"Content-Type": [content_types.APPLICATION_JSON]},
            "body": json.dumps(body),
            "isBase64Encoded": False,
        }
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
    def _unsupported_content_type(error: RequestUnsupportedContentType) -> Response:
        return error_response(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported Content-Type: send application/json"
        )

    @app.exception_handler(UnicodeDecodeError)
    def _not_utf8(error: UnicodeDecodeError) -> Response:
        return error_response(HTTPStatus.BAD_REQUEST, "malformed body: not UTF-8 text")

    @app.exception_handler(RecursionError)
    def _too_deep(error: RecursionError) -> Response:
        # json.loads gives up near 1000 levels of nesting; no request here needs more than 3.
        return error_response(HTTPStatus.BAD_REQUEST, "malformed JSON body: nested too deeply")

    @app.not_found
    def _no_route(error: NotFoundError) -> Response:
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
    def _unexpected(error: Exception) -> Response:
        # A bug: log it with its trace, answer without one.
        logger.exception("unhandled error")
        return error_response(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            "internal error",
            extra={"request_id": app.lambda_context.aws_request_id if app.lambda_context else None},
        )
