"""The one place where requests are read and domain exceptions become HTTP responses.

Every REST handler gets its resolver from ``rest_app(logger)`` and answers through
``resolve(app, event, context)``. Response bodies are ``{"message": ..., "code": ...,
"detail": [...]}``; nothing ever carries a stack trace.

Request bodies (the same rules behind API Gateway and behind the local gateway, which
builds the event as API Gateway does):

- a body must say ``Content-Type: application/json`` (the media type is case-insensitive;
  a ``charset`` parameter, if any, must be UTF-8); no Content-Type, or another type: 415;
- it may have been sent compressed (``Content-Encoding: gzip`` or ``deflate``): API Gateway
  decompresses such a body before the integration (keeping the header) and answers 415
  itself to any other coding, and the local gateway does the same, so a function only
  ever sees the decoded text;
- it is parsed once, by ``json_body``: JSON that does not parse, text that is not UTF-8,
  nesting past the parser's depth: 400; an integer literal longer than Python converts
  (``sys.get_int_max_str_digits()``, 4,300 digits): 422 naming where it is.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
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

from mlops_core.errors import Conflict, IntegrityError, Invalid, MlopsError, NotFound, Unavailable, detail
from mlops_core.storage import deadline


class ErrorBody(BaseModel):
    """The body of every 4xx/5xx answer from the functions."""

    message: str = Field(description="What went wrong, for a person")
    code: str = Field(
        description="The status phrase in snake_case (not_found, conflict, unsupported_media_type…), "
        "or integrity_failure; API Gateway's own answers: forbidden, not_found, throttled, "
        "quota_exceeded, request_too_large, client_error, gateway_error…"
    )
    detail: list[dict[str, Any]] | None = Field(
        default=None, description="One entry per problem: loc (where), msg, type"
    )
    current: dict[str, Any] | None = Field(default=None, description="409: the state the request ran into")


_ERROR_DESCRIPTIONS = {
    400: "Malformed request: JSON that does not parse, a body that is not UTF-8",
    403: "Refused by API Gateway: missing or invalid API key, or IAM credentials that may not call this",
    404: "The model, version, alias, run or object does not exist (or, from API Gateway, no route "
    "matches the method and path)",
    409: "The request contradicts the current state (exists already, stale revision, promotion policy)",
    415: "The body is not application/json (or has no Content-Type); or, from API Gateway, its "
    "Content-Encoding is not gzip, deflate or identity, or the body is not encoded as it says",
    422: "Validation failed: detail lists each problem with its location",
    429: "Throttled by API Gateway (stage or usage-plan limits)",
    503: "A dependency is throttled or unavailable, or an artifact failed its checksum; see Retry-After",
}
# Error statuses of the usual kinds of route (422 covers path and query parameters too).
READ_ERRORS = (403, 404, 422, 503)
WRITE_ERRORS = (400, 403, 404, 409, 415, 422, 503)


def responses(
    errors: Iterable[int], *, success: int = 200, description: str = "Success"
) -> dict[int, OpenAPIResponse]:
    """The OpenAPI ``responses`` of a route: its success (schema from the return annotation)
    and each error status it can answer, all with ``ErrorBody`` (API Gateway's own 403/429
    too: the API's gateway responses give them the same shape)."""
    documented: dict[int, OpenAPIResponse] = {success: {"description": description}}
    for status in errors:
        documented[status] = {
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
        if status == HTTPStatus.UNSUPPORTED_MEDIA_TYPE:
            documented[status]["headers"] = {
                "Accept-Encoding": {
                    "description": "From API Gateway, on a body it cannot decode: the codings accepted",
                    "schema": {"type": "string"},
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
) -> Response[Any]:
    body = error_body(status, message, detail=detail, extra=extra)
    return Response(
        status_code=status.value, content_type=content_types.APPLICATION_JSON, body=body, headers=headers
    )


#: The status each domain error is answered with (the exception handlers below), most specific first.
_ERROR_STATUSES: tuple[tuple[type[MlopsError], HTTPStatus], ...] = (
    (Invalid, HTTPStatus.UNPROCESSABLE_ENTITY),
    (NotFound, HTTPStatus.NOT_FOUND),
    (Conflict, HTTPStatus.CONFLICT),
    (Unavailable, HTTPStatus.SERVICE_UNAVAILABLE),
)


def item_error(error: MlopsError) -> dict[str, Any]:
    """A domain error as one item's outcome, for batch routes that answer 200 with a status per
    item: ``status``, the ``ErrorBody`` the same error gets as a whole response, and
    ``retry_after_seconds`` where that response has a ``Retry-After`` header.
    (tests/unit/test_http_item_errors.py checks both answers agree.)"""
    status = next((s for kind, s in _ERROR_STATUSES if isinstance(error, kind)), None)
    if status is None:
        status = HTTPStatus.INTERNAL_SERVER_ERROR
    extra: dict[str, Any] = {}
    if isinstance(error, IntegrityError):
        extra["code"] = "integrity_failure"
    if isinstance(error, Conflict) and error.current is not None:
        extra["current"] = error.current
    outcome: dict[str, Any] = {
        "status": status.value,
        **error_body(status, error.message, detail=error.details or None, extra=extra),
    }
    retry_after = getattr(error, "retry_after_seconds", None)
    if retry_after:
        outcome["retry_after_seconds"] = retry_after
    return outcome


JSON_MEDIA_TYPE = "application/json"


def rest_app(logger: Logger) -> APIGatewayRestResolver:
    """The resolver of every REST handler: request validation on, bodies parsed by
    ``json_body``, the error handlers below registered."""
    app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=json_body)
    _register_error_handlers(app, logger)
    return app


def resolve(app: APIGatewayRestResolver, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``app.resolve(event, context)`` within the request's deadline (derived from the
    function's remaining time), refusing first (415) a body that is not JSON text.

    Powertools would also parse form and multipart bodies (this API takes neither; a
    multipart type without a boundary raises a bare ``ValueError`` there), treats a body
    with no Content-Type as JSON, and compares media types case-sensitively; it is given
    the accepted type as plain ``application/json``.
    """
    headers = event.get("headers") or {}
    if event.get("body"):
        refusal = _refuse_body(headers)
        if refusal is not None:
            status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
            return {
                "statusCode": status.value,
                "multiValueHeaders": {"Content-Type": [content_types.APPLICATION_JSON]},
                "body": json.dumps(error_body(status, refusal)),
                "isBase64Encoded": False,
            }
    if _header(headers, "content-type") not in (None, JSON_MEDIA_TYPE):
        event = _with_json_content_type(event)
    remaining_ms = context.get_remaining_time_in_millis() if context is not None else None
    with deadline.request_deadline(deadline.seconds_for_request(remaining_ms)):
        return app.resolve(event, context)


def _header(headers: dict[str, Any], name: str) -> str | None:
    return next((str(v) for k, v in headers.items() if k.lower() == name), None)


def _refuse_body(headers: dict[str, Any]) -> str | None:
    """Why a request body cannot be read as JSON, or None.

    ``Content-Encoding`` is not looked at: it describes the body as the client sent it,
    and the gateway in front (API Gateway, or the local one) has decoded it already.
    """
    content_type = _header(headers, "content-type")
    if content_type is None or not content_type.strip():
        return f"the body has no Content-Type: send {JSON_MEDIA_TYPE}"
    media_type, _, parameters = content_type.partition(";")
    if media_type.strip().lower() != JSON_MEDIA_TYPE:
        return f"unsupported Content-Type '{content_type[:100]}': send {JSON_MEDIA_TYPE}"
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"')
        if name.strip().lower() == "charset" and charset.lower() not in ("utf-8", "utf8"):
            return f"unsupported charset '{charset[:40]}': JSON bodies are UTF-8"
    return None


def _with_json_content_type(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its Content-Type (accepted by ``_refuse_body``) as plain application/json."""
    normalized = dict(event)
    for field, value in (("headers", JSON_MEDIA_TYPE), ("multiValueHeaders", [JSON_MEDIA_TYPE])):
        if event.get(field):
            normalized[field] = {k: v for k, v in event[field].items() if k.lower() != "content-type"}
            normalized[field]["Content-Type"] = value
    return normalized


_TOO_LONG = "int_parsing_size"  # pydantic's name for the same refusal


class _Oversized:
    """An integer literal too long for ``int()``, in place of its value."""

    def __init__(self, digits: int) -> None:
        self.digits = digits


def json_body(text: str) -> Any:
    """A request body's JSON (Powertools' ``json_body_deserializer``), parsed once.

    ``JSONDecodeError`` is Powertools' 400. An integer literal longer than Python converts
    (``sys.get_int_max_str_digits()``) makes ``json.loads`` raise a bare ``ValueError``; that
    is the caller's number, so it is a 422 naming each such literal.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except ValueError:
        oversized = list(_oversized_integers(json.loads(text, parse_int=_int_or_oversized), ["body"]))
        if not oversized:
            raise
        limit = sys.get_int_max_str_digits()
        raise Invalid(
            f"request validation failed: an integer has more than {limit} digits",
            details=[
                detail(
                    loc,
                    f"integer literal of {digits} digits: at most {limit} are accepted",
                    _TOO_LONG,
                )
                for loc, digits in oversized
            ],
        ) from None


def _int_or_oversized(literal: str) -> int | _Oversized:
    try:
        return int(literal)
    except ValueError:
        return _Oversized(len(literal.lstrip("-")))


def _oversized_integers(value: Any, loc: list[str | int]) -> Iterator[tuple[list[str | int], int]]:
    """Where the oversized literals are, depth-first without recursion (bodies can nest deep)."""
    pending: list[tuple[Any, list[str | int]]] = [(value, loc)]
    while pending:
        node, where = pending.pop()
        if isinstance(node, _Oversized):
            yield where, node.digits
        elif isinstance(node, dict):
            pending.extend((child, [*where, key]) for key, child in reversed(node.items()))
        elif isinstance(node, list):
            pending.extend((child, [*where, index]) for index, child in reversed(list(enumerate(node))))


def _validation_detail(errors: Any) -> list[dict[str, Any]]:
    # pydantic's messages name the field and the rule, never our code; the offending
    # input is left out so a response never echoes a large or sensitive payload.
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors
    ]


def _register_error_handlers(app: APIGatewayRestResolver, logger: Logger) -> None:
    @app.exception_handler(RequestValidationError)
    def _request_validation(error: RequestValidationError) -> Response[Any]:
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
    def _unsupported_content_type(_error: RequestUnsupportedContentType) -> Response[Any]:
        return error_response(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported Content-Type: send application/json"
        )

    @app.exception_handler(UnicodeDecodeError)
    def _not_utf8(_error: UnicodeDecodeError) -> Response[Any]:
        return error_response(HTTPStatus.BAD_REQUEST, "malformed body: not UTF-8 text")

    @app.exception_handler(RecursionError)
    def _too_deep(_error: RecursionError) -> Response[Any]:
        # json.loads gives up near 1000 levels of nesting; no request here needs more than 3.
        return error_response(HTTPStatus.BAD_REQUEST, "malformed JSON body: nested too deeply")

    @app.not_found
    def _no_route(_error: NotFoundError) -> Response[Any]:
        # A path API Gateway routed here that no route of this function matches (a path
        # parameter with characters the routes do not accept, say).
        event = app.current_event
        return error_response(
            HTTPStatus.NOT_FOUND, f"no such resource: {event.http_method} {event.path[:200]}"
        )

    @app.exception_handler(Invalid)
    def _invalid(error: Invalid) -> Response[Any]:
        return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, error.message, detail=error.details)

    @app.exception_handler(NotFound)
    def _not_found(error: NotFound) -> Response[Any]:
        return error_response(HTTPStatus.NOT_FOUND, error.message)

    @app.exception_handler(Conflict)
    def _conflict(error: Conflict) -> Response[Any]:
        extra = {"current": error.current} if error.current is not None else None
        retry = {"Retry-After": str(error.retry_after_seconds)} if error.retry_after_seconds else None
        return error_response(
            HTTPStatus.CONFLICT, error.message, detail=error.details, headers=retry, extra=extra
        )

    @app.exception_handler(Unavailable)
    def _unavailable(error: Unavailable) -> Response[Any]:
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
    def _other_domain_error(error: MlopsError) -> Response[Any]:
        logger.error("unmapped domain error", extra={"type": type(error).__name__})
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, error.message)

    @app.exception_handler(Exception)
    def _unexpected(_error: Exception) -> Response[Any]:
        # A bug: log it with its trace, answer without one.
        logger.exception("unhandled error")
        return error_response(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            "internal error",
            extra={"request_id": app.lambda_context.aws_request_id if app.lambda_context else None},
        )
