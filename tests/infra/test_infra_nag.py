"""cdk-nag (AWS Solutions): no open findings, and every acknowledgment is justified and needed.

cdk-nag 3 is a CDK policy-validation plugin: findings are written to the cloud
assembly's `validation-report.json` (and fail `cdk synth`), and acknowledgments are
`Validations.of(construct).acknowledge(...)` entries in the construct tree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct
from synthesized_app import SynthesizedApp

from infra.cdk.app import build_app

pytestmark = pytest.mark.infra

MINIMUM_REASON_LENGTH = 40


def _acknowledgments(synthesized: SynthesizedApp) -> list[tuple[str, str, str]]:
    """(construct path, rule id, reason) of every acknowledgment in the app's construct tree."""
    found = []
    for construct in synthesized.app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                for rule_id, reason in entry.data.items():
                    found.append((construct.node.path, rule_id, reason))
    return found


def _describe(violations: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{violation['ruleName']} ({violation['severity']}) at "
        f"{', '.join(item['constructPath'] for item in violation['violatingConstructs'])}: "
        f"{violation['description'][:160]}"
        for violation in violations
    )


def test_no_unacknowledged_aws_solutions_errors_or_warnings(synthesized: SynthesizedApp) -> None:
    report = synthesized.validation_report()
    violations = [
        violation
        for plugin in report["pluginReports"]
        if plugin["pluginName"] == "AwsSolutions"
        for violation in plugin["violations"]
    ]

    assert violations == [], _describe(violations)
    # The same check, asked of cdk-nag directly rather than through the CDK report.
    direct = AwsSolutionsChecks(verbose=True).validate_scope(synthesized.app)
    assert [violation.rule_name for violation in direct.violations] == []


def test_every_acknowledgment_gives_a_reason(synthesized: SynthesizedApp) -> None:
    acknowledgments = _acknowledgments(synthesized)

    assert acknowledgments, "expected the stack's cdk-nag acknowledgments to be found"
    short = [
        (path, rule, reason) for path, rule, reason in acknowledgments if len(reason) < MINIMUM_REASON_LENGTH
    ]
    assert short == []


def test_acknowledgments_are_written_to_the_template_for_audit(synthesized: SynthesizedApp) -> None:
    function = synthesized.resources[synthesized.logical_id(synthesized.stack.api.inference.function)]

    suppressed = {rule["id"]: rule["reason"] for rule in function["Metadata"]["cdk_nag"]["rules_to_suppress"]}

    assert set(suppressed) == {"AwsSolutions-L1", "AwsSolutions-IAM5[Resource::*]"}


class _RecordingValidations:
    """Stands in for `Validations.of(scope)`: records acknowledgments instead of applying them."""

    def __init__(self, scope: IConstruct, real: Validations, recorded: list[tuple[str, str]]) -> None:
        self._scope, self._real, self._recorded = scope, real, recorded

    def acknowledge(self, *rules: Any) -> None:
        self._recorded.extend((self._scope.node.path, rule.id) for rule in rules)

    def add_plugins(self, *plugins: Any) -> None:
        self._real.add_plugins(*plugins)


def test_every_acknowledgment_silences_a_real_finding(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without its acknowledgments the stack must fail exactly where they were placed.

    This proves the checks really run on the app that `build_app` returns, and that
    no acknowledgment is stale (silencing nothing) or placed on the wrong construct.
    """
    recorded: list[tuple[str, str]] = []
    real_of = Validations.of
    monkeypatch.setattr(
        Validations,
        "of",
        classmethod(lambda cls, scope: _RecordingValidations(scope, real_of(scope), recorded)),
    )
    app, _ = build_app(
        outdir=str(tmp_path),
        # Findings are the point here; and the layers' content is irrelevant, so skip bundling.
        context={"@aws-cdk/core:failSynthOnValidationErrors": False, "aws:cdk:bundling-stacks": []},
    )
    monkeypatch.undo()
    app.synth()
    report = SynthesizedApp.read_validation_report(tmp_path)
    findings = {
        (violation["ruleName"], item["constructPath"])
        for plugin in report["pluginReports"]
        if plugin["pluginName"] == "AwsSolutions"
        for violation in plugin["violations"]
        for item in violation["violatingConstructs"]
    }

    assert recorded, "build_app placed no acknowledgments"
    unmatched = [
        (path, rule_id)
        for path, rule_id in recorded
        if not any(
            rule == rule_id and (found == path or found.startswith(path + "/")) for rule, found in findings
        )
    ]
    assert unmatched == []
    acknowledged_rules = {rule_id for _, rule_id in recorded}
    assert {rule for rule, _ in findings} <= acknowledged_rules
