"""Links between console pages, in the form each host understands.

Inside CloudWatch a custom widget runs no script and has no URL of its own: a link is an
element followed by ``<cwdb-action action="call" display="widget">`` whose content is the
JSON event to call the console function with; the widget then shows what that call
returns (AWS docs: "Interactivity in the custom widget"). On the local stack a link is a
plain ``href`` under ``/_local/console/`` with the same parameters as its query string.
Both are built from the same ``(page, params)``, so the pages never know where they run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from typing import Protocol
from urllib.parse import urlencode

#: The parameters a page is addressed by (every one a short string; validated by the page).
Params = Mapping[str, str | int | None]


class Links(Protocol):
    def link(self, text: str, page: str, params: Params | None = None, *, css: str = "") -> str:
        """An HTML element that, chosen, shows ``page`` with ``params``; ``text`` is escaped."""
        ...


def _clean(page: str, params: Params | None) -> dict[str, str]:
    query = {"page": page}
    for name, value in (params or {}).items():
        if value is not None and value != "":
            query[name] = str(value)
    return query


class HrefLinks:
    """``<a href="/_local/console/?page=...">``: the local stack (a browser)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def link(self, text: str, page: str, params: Params | None = None, *, css: str = "") -> str:
        href = f"{self.base}?{urlencode(_clean(page, params))}"
        cls = f' class="{escape(css)}"' if css else ""
        return f'<a href="{escape(href)}"{cls}>{escape(text)}</a>'


class WidgetLinks:
    """``<a>`` + ``<cwdb-action>`` calling the console function itself (``endpoint``, its ARN)
    and replacing the widget's content with the page."""

    def __init__(self, endpoint: str, *, widget_params: Params | None = None) -> None:
        self.endpoint = endpoint
        #: Parameters the dashboard gave the widget that every page keeps (none today).
        self.widget_params = dict(widget_params or {})

    def link(self, text: str, page: str, params: Params | None = None, *, css: str = "") -> str:
        event = json.dumps(_clean(page, {**self.widget_params, **(params or {})}), sort_keys=True)
        cls = escape(f"cwdb-link {css}".strip())
        return (
            f'<a class="{cls}">{escape(text)}</a>'
            f'<cwdb-action action="call" display="widget" endpoint="{escape(self.endpoint)}">'
            f"{escape(event, quote=False)}</cwdb-action>"
        )
