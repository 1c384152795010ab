"""Entry point of the CDK app: `python infra/cdk/app.py` (what cdk.json runs) synthesizes it.

`build_app` builds the app without synthesizing it, so that tests can synthesize it
in-process into a directory of their choosing.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]

# Run as a script, Python puts infra/cdk/ first on sys.path, where the project's
# infra/cdk/constructs/ package would shadow the `constructs` library that aws-cdk-lib
# imports. Put the repository root there instead, so `infra.*` imports resolve.
if sys.path and Path(sys.path[0] or ".").resolve() == REPO_ROOT / "infra" / "cdk":
    sys.path[0] = str(REPO_ROOT)

from aws_cdk import App, Environment, Stack, Validations  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.cdk.stack import ServerlessMlopsStack  # noqa: E402

STACK_NAME = "ServerlessMlops"

#: What the CDK CLI sets by default, so that an in-process synthesis writes the same
#: template: each resource's construct path, and the local path of each asset
#: (`aws:asset:path`), which tells a reader which folder a function's code comes from.
CLI_DEFAULT_CONTEXT: dict[str, Any] = {
    "aws:cdk:enable-path-metadata": True,
    "aws:cdk:enable-asset-metadata": True,
}


def cdk_json_context() -> dict[str, Any]:
    """The context in cdk.json: feature flags and this project's settings.

    The CDK CLI passes it to the app itself; an in-process synthesis (the tests) must
    pass it explicitly, or it would run with different feature flags than `cdk synth`.
    """
    context: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]
    return context


def build_app(outdir: str | None = None, context: dict[str, Any] | None = None) -> tuple[App, Stack]:
    """The app with the `ServerlessMlops` stack and the AWS Solutions checks (cdk-nag).

    `context` adds to (and overrides) the context in cdk.json.

    cdk-nag 3 runs as a policy-validation plugin: at synthesis every unacknowledged
    finding lands in the cloud assembly's validation report and fails the synthesis.
    Acknowledgments are also written into the template's resource metadata
    (`cdk_nag.rules_to_suppress`), so the deployed template carries its audit trail.
    """
    # Context given to the constructor is the lowest layer: when the CLI runs the app,
    # its own context (cdk.json, cdk.context.json, `-c`) overrides these values.
    app = App(
        outdir=outdir,
        context={**CLI_DEFAULT_CONTEXT, **cdk_json_context(), **(context or {})},
    )
    Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, verbose=True, write_suppressions_to_cloud_formation=True)
    )
    stack = ServerlessMlopsStack(
        app,
        STACK_NAME,
        repo_root=REPO_ROOT,
        description="Serverless MLOps: model registry, real-time inference and training on AWS Lambda",
        # Environment-agnostic unless the CLI knows the target account and region.
        env=Environment(
            account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
        ),
    )
    return app, stack


def main() -> None:
    # Layer builds report progress on stderr, which the CDK CLI shows as it synthesizes.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="[infra] %(message)s")
    app, _ = build_app()
    app.synth()


if __name__ == "__main__":
    main()
