"""The model console: read-only HTML pages (inline SVG charts, no script) over the registry,
training runs, routing and drift monitoring, rendered by the console function for CloudWatch
custom widgets and for the local stack's ``/_local/console/``.

``links`` makes the links between pages (``cwdb-action`` calls inside CloudWatch, plain
hrefs on the local stack), ``charts`` draws the SVG, ``pages`` reads through the domains'
services and renders one page per request.
"""
