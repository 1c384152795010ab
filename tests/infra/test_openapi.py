"""docs/openapi.json documents exactly the template's routes, with their authorisation."""

from __future__ import annotations

import json

import pytest
from synthesized_app import SynthesizedApp

from infra.cdk.openapi import build_openapi
from infra.local.gateway import routes_from_template
from tests.support import ROOT

pytestmark = pytest.mark.infra


def test_openapi_covers_exactly_the_template_routes(synthesized: SynthesizedApp) -> None:
    routes = routes_from_template(synthesized.template_json)
    document = build_openapi(routes)

    documented = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    assert documented == {(r.method, r.resource) for r in routes}
    predict = document["paths"]["/models/{name}/predict"]["post"]
    assert predict["security"] == [{"apiKey": []}]
    assert document["paths"]["/training"]["post"]["security"] == [{"sigv4": []}]
    assert "PredictRequest" in document["components"]["schemas"]
    assert document["paths"]["/feedback"]["post"]["security"] == [{"apiKey": []}]
    assert {"FeedbackRequest", "FeedbackResult", "FeedbackBatchResponse"} <= set(
        document["components"]["schemas"]
    )


def test_committed_openapi_document_is_up_to_date(synthesized: SynthesizedApp) -> None:
    generated = build_openapi(routes_from_template(synthesized.template_json))
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert committed == json.loads(json.dumps(generated)), "docs/openapi.json is stale: run `make openapi`"
