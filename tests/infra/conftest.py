"""Synthesizes the CDK app once per test run and shares the result with every infra test.

The first run builds the Lambda layers (a few seconds with a warm uv cache); later
runs copy them from `.cache/layers/`. cdk-nag findings do not abort the synthesis
here: they land in the validation report, where `test_infra_nag` reports them one by
one instead of erroring every test in the directory.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aws_cdk.assertions import Template
from synthesized_app import SynthesizedApp

from infra.cdk.app import build_app
from infra.cdk.stack import ServerlessMlopsStack

#: Context key that makes an in-process synthesis report validation failures instead of raising.
FAIL_SYNTH_ON_VALIDATION_ERRORS = "@aws-cdk/core:failSynthOnValidationErrors"


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynthesizedApp]:
    outdir = tmp_path_factory.mktemp("cdk.out")
    app, stack = build_app(outdir=str(outdir), context={FAIL_SYNTH_ON_VALIDATION_ERRORS: False})
    assert isinstance(stack, ServerlessMlopsStack)
    app.synth()
    yield SynthesizedApp(app=app, stack=stack, template=Template.from_stack(stack), outdir=outdir)


@pytest.fixture(scope="session")
def template(synthesized: SynthesizedApp) -> Template:
    return synthesized.template
