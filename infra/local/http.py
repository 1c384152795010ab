"""The WSGI app in front of the local gateway."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from infra.local.gateway import LocalGateway


def gateway_app(gateway: LocalGateway) -> Callable[[dict[str, Any], Any], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        query: dict[str, list[str]] = {k: request.args.getlist(k) for k in request.args}
        result = gateway.handle(
            method=request.method,
            path=request.path,
            query=query,
            headers={k: v for k, v in request.headers.items()},
            body=request.get_data(),
            source_ip=request.remote_addr or "127.0.0.1",
        )
        response = Response(result.body, status=result.status)
        response.headers.clear()
        for name, value in result.headers:
            response.headers.add(name, value)
        return response(environ, start_response)

    return app
