"""The WSGI app in front of the local gateway, and the local-only documentation pages.

Everything under ``/_local/`` belongs to the local stack, not to the deployed API:
``/_local/openapi.json`` (docs/openapi.json, pointed at this server) and
``/_local/docs/`` (Swagger UI from the pinned npm package ``swagger-ui-dist``) and
``/_local/console/`` (the model console: the template's console function, invoked in-process
with the query string as its page's parameters).
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request, Response

from infra.local.gateway import LocalGateway

REPO_ROOT = Path(__file__).resolve().parents[2]
OPENAPI_FILE = REPO_ROOT / "docs" / "openapi.json"
SWAGGER_UI_DIR = REPO_ROOT / "node_modules" / "swagger-ui-dist"
LOCAL_PREFIX = "/_local/"
CONSOLE_PREFIX = "/_local/console/"
#: Renders a console page: its parameters -> the function's answer (statusCode, headers, body).
ConsolePages = Callable[[dict[str, str]], dict[str, Any]]

_SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Serverless MLOps API (local)</title>
  <link rel="stylesheet" href="/_local/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/_local/docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/_local/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
  </script>
</body>
</html>
"""


def _local_page(path: str, api_url: str) -> Response:
    if path == "/_local/openapi.json":
        if not OPENAPI_FILE.exists():
            return Response("docs/openapi.json is missing: run `make openapi`", status=404)
        document = json.loads(OPENAPI_FILE.read_text())
        document["servers"] = [{"url": api_url, "description": "the local stack"}]
        return Response(json.dumps(document), mimetype="application/json")
    if path in {"/_local/docs", "/_local/docs/"}:
        return Response(_SWAGGER_PAGE, mimetype="text/html")
    if path.startswith("/_local/docs/"):
        name = path.removeprefix("/_local/docs/")
        asset = (SWAGGER_UI_DIR / name).resolve()
        if not asset.is_relative_to(SWAGGER_UI_DIR.resolve()) or not asset.is_file():
            hint = "" if SWAGGER_UI_DIR.exists() else " (Swagger UI is not installed: run `npm ci`)"
            return Response(f"not found: {name}{hint}", status=404)
        return Response(
            asset.read_bytes(), mimetype=mimetypes.guess_type(asset.name)[0] or "application/octet-stream"
        )
    body = {"message": f"no local page {path[:200]}", "code": "not_found"}
    return Response(json.dumps(body), status=404, mimetype="application/json")


def _console_page(request: Request, console: ConsolePages | None) -> Response:
    if console is None:
        return Response("the template has no console function", status=404, mimetype="text/plain")
    if request.method not in {"GET", "HEAD"}:
        return Response("the console only reads: GET", status=405, headers={"Allow": "GET, HEAD"})
    answer = console({name: request.args.get(name, "") for name in request.args})
    response = Response(str(answer.get("body", "")), status=int(answer.get("statusCode", 500)))
    response.headers["Content-Type"] = str(
        (answer.get("headers") or {}).get("Content-Type", "text/html; charset=utf-8")
    )
    # No script, no frames, nothing fetched: the pages are self-contained HTML and inline SVG.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
    )
    return response


def gateway_app(
    gateway: LocalGateway, api_url: str, console: ConsolePages | None = None
) -> Callable[[dict[str, Any], Any], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        if request.path in {CONSOLE_PREFIX, CONSOLE_PREFIX.rstrip("/")}:
            return _console_page(request, console)(environ, start_response)
        if request.path.startswith(LOCAL_PREFIX) or request.path == LOCAL_PREFIX.rstrip("/"):
            return _local_page(request.path, api_url)(environ, start_response)
        query: dict[str, list[str]] = {k: request.args.getlist(k) for k in request.args}
        result = gateway.handle(
            method=request.method,
            path=request.path,
            query=query,
            headers=dict(request.headers.items()),
            body=request.get_data(),
            source_ip=request.remote_addr or "127.0.0.1",
        )
        response = Response(result.body, status=result.status)
        response.headers.clear()
        for name, value in result.headers:
            response.headers.add(name, value)
        return response(environ, start_response)

    return app
