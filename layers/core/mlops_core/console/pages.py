"""The console's pages: each reads what it shows through the domains' services (reads only)
and renders one HTML fragment with inline SVG and no script.

Pages (``page`` and its parameters, validated by ``ConsoleRequest``):

- ``models`` — every model, its latest version and aliases;
- ``model`` (``model``, ``version``) — versions with stages, aliases and metrics; aliases with
  their history; the card of one version (default: production's, else the latest);
- ``runs`` (``model``, ``sort``, ``order``) — the model's training runs, their gate metric
  charted, sortable by column;
- ``run`` (``run``, ``sort``, ``order``) — one run's steps, its dataset, and its candidates'
  parameters and validation metrics side by side (sortable), with a metric-comparison chart;
- ``routing`` (``model``) — the policy in force, traffic share and Beta posterior per
  variant, both over time (the routing history's buckets), and the policy's weights after
  each change;
- ``drift`` (``model``, ``run``) — the drift-run history (drift share over time) and the
  latest (or chosen) run's report: the feature table and per-feature plots;
- ``batch`` (``model``) — batch scoring jobs, when a ``BatchJobs`` source is given.

Everything a user typed (model names, parameters, reasons, tags) is escaped where it is
written into the page.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from html import escape
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlops_core.clock import parse_iso
from mlops_core.console import charts
from mlops_core.console.links import Links, Params
from mlops_core.errors import Invalid, NotFound, Unavailable
from mlops_core.monitoring.records import DriftRunSummary
from mlops_core.monitoring.report import DriftReport, report_key
from mlops_core.monitoring.report_html import REPORT_STYLE, render_sections
from mlops_core.monitoring.service import MonitoringService
from mlops_core.registry.entities import MODEL_NAME_PATTERN
from mlops_core.registry.service import ModelRegistry
from mlops_core.routing.policy import SplitPolicy
from mlops_core.routing.service import RoutingService
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.tracking import RUN_ID_PATTERN, RunTracker

PageName = Literal["models", "model", "runs", "run", "routing", "drift", "batch"]
#: How many training runs and drift runs a page lists (newest first).
RUNS_LISTED = 50
DRIFT_RUNS_LISTED = 50
#: How many of the routing history's newest buckets the routing page charts: 6 hours of
#: 5-minute buckets (the API reads up to a week). A page reads each bucket once, and the
#: local stack's emulator costs per item read: 288 buckets (a day) took the page past 300 ms.
ROUTING_BUCKETS_CHARTED = 72
#: What the runs page reads of each run (not its request, dataset or package versions).
RUN_SUMMARY_FIELDS = (
    "run_id",
    "status",
    "started_at",
    "duration_seconds",
    "target_metric",
    "best_candidate",
    "evaluation",
    "registered_version",
    "triggered_by",
)
_SORT = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")

STYLE = """
.console{font:13px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1d2329}
.console h1{font-size:19px;margin:4px 0 6px}.console h2{font-size:15px;margin:18px 0 6px}
.console nav{margin:0 0 10px;padding:6px 0;border-bottom:1px solid #dee2e6}
.console nav a,.console nav .here{margin-right:14px}.console nav .here{font-weight:600}
.console table{border-collapse:collapse;font-size:12.5px;margin:4px 0}
.console th,.console td{border-bottom:1px solid #e9ecef;padding:3px 8px;text-align:left;white-space:nowrap}
.console td.num,.console th.num{text-align:right}.console tr.best td{background:#ebfbee}
.console .note{color:#56616d}.console .error{color:#c92a2a;font-weight:600}
.console .pill{display:inline-block;padding:0 7px;border-radius:9px;background:#e9ecef;margin-right:4px}
.console .SUCCEEDED,.console .done,.console .no_drift{background:#d3f9d8}
.console .FAILED,.console .failed,.console .drift{background:#ffe3e3}
.console .REJECTED{background:#fff3bf}.console .RUNNING,.console .running{background:#d0ebff}
.console .legend .key{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
.console svg text{font-size:10px;fill:#56616d}.console svg text.on-bar{fill:#fff;font-weight:600}
.console .wide{overflow-x:auto}.console dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}
.console dt{color:#56616d}.console dd{margin:0}
.console a.cwdb-link{color:#0073bb;cursor:pointer;text-decoration:underline}
"""


class ConsoleRequest(BaseModel):
    """The page asked for: a widget's parameters, or the local stack's query string."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    page: PageName = "models"
    model: str | None = Field(default=None, pattern=MODEL_NAME_PATTERN, max_length=128)
    version: int | None = Field(default=None, ge=1)
    run: str | None = Field(default=None, pattern=RUN_ID_PATTERN)
    drift_run: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,80}$")
    sort: str | None = Field(default=None, pattern=_SORT.pattern)
    order: Literal["asc", "desc"] = "desc"

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> ConsoleRequest:
        """``params`` validated; a precise ``Invalid`` (one line per problem) otherwise."""
        try:
            return cls.model_validate({k: v for k, v in params.items() if v not in (None, "")})
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in error.errors()
            )
            raise Invalid(f"bad console request: {problems}") from None

    def needs_model(self) -> str:
        if self.model is None:
            raise Invalid(f"the {self.page} page needs a model (parameter 'model')")
        return self.model


@dataclass(frozen=True)
class BatchJobView:
    """One batch scoring job as the batch page lists it."""

    job_id: str
    status: str
    model_version: int | None
    created_at: str | None
    rows: int | None
    message: str | None = None


class BatchJobs(Protocol):
    """Where the batch page reads a model's jobs, newest first (``console.batch_jobs`` reads
    ``mlops_core.batch``'s records); without one the page says batch scoring is not deployed."""

    def list_jobs(self, model_name: str, *, limit: int) -> Sequence[BatchJobView]: ...


@dataclass
class Page:
    title: str
    body: str
    status: int = 200


class Console:
    """Renders the pages from the domains' read paths; holds no state between requests."""

    def __init__(
        self,
        registry: ModelRegistry,
        runs: RunTracker,
        routing: RoutingService,
        monitoring: MonitoringService,
        reports: ArtifactStore,
        *,
        batch: BatchJobs | None = None,
    ) -> None:
        self.registry = registry
        self.runs = runs
        self.routing = routing
        self.monitoring = monitoring
        self.reports = reports
        self.batch = batch

    def render(self, params: Mapping[str, Any], links: Links) -> Page:
        """The page ``params`` ask for, as a fragment; a bad request or a missing model is a
        page that says so (status 400 / 404), never an exception."""
        try:
            request = ConsoleRequest.parse(params)
            renderer: Callable[[ConsoleRequest, Links], Page] = getattr(self, f"_page_{request.page}")
            page = renderer(request, links)
        except Invalid as error:
            return Page("Bad request", _nav(links, None, None) + _error(error.message), 400)
        except NotFound as error:
            model = params.get("model")
            known = model if isinstance(model, str) and re.match(MODEL_NAME_PATTERN, model) else None
            return Page("Not found", _nav(links, known, None) + _error(error.message), 404)
        except Unavailable as error:
            message = f"{error.message}; try again in {error.retry_after_seconds} s"
            return Page("Unavailable", _nav(links, None, None) + _error(message), 503)
        return page

    # ---- models -------------------------------------------------------------------------
    def _page_models(self, _request: ConsoleRequest, links: Links) -> Page:
        models = sorted(self.registry.list_models(), key=lambda m: m.name)
        rows = []
        for model in models:
            aliases = sorted(self.registry.list_aliases(model.name), key=lambda a: a.alias)
            alias_text = ", ".join(f"{a.alias} → v{a.version}" for a in aliases) or "—"
            rows.append(
                [
                    links.link(model.name, "model", {"model": model.name}),
                    _num(model.latest_version),
                    escape(alias_text),
                    escape(model.owner or "—"),
                    escape(_short(model.description, 80) or "—"),
                    links.link("runs", "runs", {"model": model.name})
                    + " · "
                    + links.link("routing", "routing", {"model": model.name})
                    + " · "
                    + links.link("drift", "drift", {"model": model.name}),
                    escape(model.updated_at[:19]),
                ]
            )
        body = _nav(links, None, "models") + "<h1>Models</h1>"
        if not rows:
            body += '<p class="note">No models registered yet.</p>'
        else:
            body += _table(
                ["model", "latest", "aliases", "owner", "description", "pages", "updated"], rows, numeric={1}
            )
        return Page("Models", body)

    # ---- one model ------------------------------------------------------------------------
    def _page_model(self, request: ConsoleRequest, links: Links) -> Page:
        name = request.needs_model()
        model = self.registry.get_model(name)
        versions = self.registry.list_versions(name, newest_first=True, limit=RUNS_LISTED)
        aliases = sorted(self.registry.list_aliases(name), key=lambda a: a.alias)
        by_version: dict[int, list[str]] = {}
        for alias in aliases:
            by_version.setdefault(alias.version, []).append(alias.alias)
        metric_names = sorted({m for v in versions for m in v.metrics})
        rows = []
        for v in versions:
            rows.append(
                [
                    links.link(f"v{v.version}", "model", {"model": name, "version": v.version}),
                    f'<span class="pill">{escape(v.stage)}</span>',
                    escape(", ".join(by_version.get(v.version, [])) or "—"),
                    *(_num(v.metrics.get(m)) for m in metric_names),
                    links.link(v.run_id, "run", {"run": v.run_id}) if v.run_id else "—",
                    escape(v.created_at[:19]),
                ]
            )
        body = _nav(links, name, "model") + f"<h1>{escape(name)}</h1>"
        if model.description:
            body += f'<p class="note">{escape(model.description)}</p>'
        body += _facts(
            [
                ("owner", model.owner or "—"),
                ("latest version", str(model.latest_version)),
                ("tags", ", ".join(f"{k}={v}" for k, v in sorted(model.tags.items())) or "—"),
                ("promotion policy", _policy_text(model.policy.model_dump())),
            ]
        )
        body += "<h2>Versions</h2>"
        if metric_names:
            # The metric most versions report (ties: by name), version by version.
            charted = max(
                metric_names, key=lambda m: (sum(m in v.metrics for v in versions), -metric_names.index(m))
            )
            chronological = sorted(versions, key=lambda v: v.version)
            body += charts.line_chart(
                [(f"v{v.version}", _finite(v.metrics.get(charted))) for v in chronological],
                label=f"{charted} of each version",
            )
            body += f'<p class="note">{escape(charted)} of each version, oldest first.</p>'
        if rows:
            numeric = set(range(3, 3 + len(metric_names)))
            body += _table(
                ["version", "stage", "aliases", *metric_names, "run", "created"], rows, numeric=numeric
            )
        else:
            body += '<p class="note">No versions yet.</p>'
        body += "<h2>Aliases</h2>"
        if aliases:
            body += _table(
                ["alias", "version", "revision", "previously", "updated", "by"],
                [
                    [
                        escape(a.alias),
                        links.link(f"v{a.version}", "model", {"model": name, "version": a.version}),
                        _num(a.revision),
                        escape(", ".join(f"v{p}" for p in a.previous_versions[:8]) or "—"),
                        escape(a.updated_at[:19]),
                        escape(a.updated_by or "—"),
                    ]
                    for a in aliases
                ],
                numeric={2},
            )
        else:
            body += '<p class="note">No aliases.</p>'
        chosen = request.version or next((a.version for a in aliases if a.alias == "production"), None)
        if chosen is None and versions:
            chosen = versions[0].version
        if chosen is not None:
            body += self._card(name, chosen, links)
        return Page(f"Model {name}", body)

    def _card(self, name: str, version: int, links: Links) -> str:
        card = self.registry.model_card(name, version)
        out = f"<h2>Model card: v{card.version}</h2>"
        facts = [
            ("stage", card.stage),
            ("aliases", ", ".join(card.aliases) or "—"),
            ("task", card.task),
            ("target", card.target or "—"),
            ("intended use", card.intended_use),
            ("created", f"{card.created_at[:19]} by {card.created_by or '—'}"),
            ("artifact sha256", card.artifact.sha256),
        ]
        if card.training is not None:
            facts.append(("training run", card.training.run_id or "—"))
            if card.training.dataset is not None:
                facts.append(("dataset sha256", card.training.dataset.sha256 or "—"))
        out += _facts(facts)
        if card.training is not None and card.training.run_id:
            out += "<p>" + links.link("the training run", "run", {"run": card.training.run_id}) + "</p>"
        features = ", ".join(f"{f.name} ({f.type})" for f in card.features)
        out += f'<p class="note">Features ({len(card.features)}): {escape(_short(features, 600))}</p>'
        if card.metrics:
            out += _table(
                ["metric", "value"],
                [[escape(k), _num(v)] for k, v in sorted(card.metrics.items())],
                numeric={1},
            )
        if card.gate:
            out += "<h2>Gate</h2>" + _table(
                ["metric", "value", "bound", "source", "passed"],
                [
                    [
                        escape(g.metric),
                        _num(g.value),
                        f"{'≥' if g.direction == 'min' else '≤'} {_num(g.threshold)}",
                        escape(g.source),
                        "yes" if g.passed else "no",
                    ]
                    for g in card.gate
                ],
                numeric={1},
            )
        if card.limitations:
            out += f'<p class="note">Limitations: {escape(card.limitations)}</p>'
        return out

    # ---- training runs ----------------------------------------------------------------------
    def _page_runs(self, request: ConsoleRequest, links: Links) -> Page:
        name = request.needs_model()
        self.registry.get_model(name)
        runs = self.runs.list_for_model(name, limit=RUNS_LISTED, attributes=RUN_SUMMARY_FIELDS)
        columns = {
            "started": lambda r: str(r.get("started_at", "")),
            "status": lambda r: str(r.get("status", "")),
            "metric": _gate_value,
            "duration": lambda r: r.get("duration_seconds"),
            "version": lambda r: r.get("registered_version"),
        }
        sort = request.sort or "started"
        if sort not in columns:
            raise Invalid(f"cannot sort runs by '{sort}': sort by one of {', '.join(columns)}")
        ordered = _sorted(runs, columns[sort], descending=request.order == "desc")
        header = [
            "run",
            _sort_link(links, "started", "runs", {"model": name}, request, sort),
            _sort_link(links, "status", "runs", {"model": name}, request, sort),
            "gate metric",
            _sort_link(links, "metric", "runs", {"model": name}, request, sort, label="holdout value"),
            "best candidate",
            _sort_link(links, "version", "runs", {"model": name}, request, sort, label="registered"),
            _sort_link(links, "duration", "runs", {"model": name}, request, sort, label="seconds"),
            "triggered by",
        ]
        rows = []
        for run in ordered:
            evaluation = run.get("evaluation") or {}
            version = run.get("registered_version")
            trigger = run.get("triggered_by") or {}
            rows.append(
                [
                    links.link(str(run.get("run_id")), "run", {"run": str(run.get("run_id"))}),
                    escape(str(run.get("started_at", ""))[:19]),
                    _status(str(run.get("status", ""))),
                    escape(str(evaluation.get("metric") or run.get("target_metric") or "—")),
                    _num(_gate_value(run)),
                    escape(str(run.get("best_candidate") or "—")),
                    links.link(f"v{version}", "model", {"model": name, "version": int(version)})
                    if version is not None
                    else "—",
                    _num(run.get("duration_seconds")),
                    escape(
                        "drift run " + str(trigger.get("drift_run_id"))
                        if trigger.get("drift_run_id")
                        else "—"
                    ),
                ]
            )
        body = _nav(links, name, "runs") + f"<h1>Training runs of {escape(name)}</h1>"
        if not runs:
            return Page(f"Runs of {name}", body + '<p class="note">No training runs yet.</p>')
        chronological = sorted(runs, key=lambda r: str(r.get("started_at", "")))
        points = [(str(r.get("started_at", ""))[:19], _finite(_gate_value(r))) for r in chronological]
        body += "<h2>Holdout value of the gate metric, run by run</h2>"
        body += charts.line_chart(
            points,
            label=f"holdout gate metric of the last {len(runs)} runs",
            marks=[r.get("status") != "SUCCEEDED" for r in chronological],
        )
        body += '<p class="note">Red: runs that were rejected by the gate or failed.</p>'
        body += f'<p class="note">The {len(runs)} newest runs (at most {RUNS_LISTED}).</p>'
        body += _table(header, rows, numeric={4, 7})
        return Page(f"Runs of {name}", body)

    def _page_run(self, request: ConsoleRequest, links: Links) -> Page:
        if request.run is None:
            raise Invalid("the run page needs a run (parameter 'run')")
        run = self.runs.get_with_candidates(request.run)
        name = str(run.get("model_name", ""))
        candidates: list[dict[str, Any]] = list(run.get("candidates", []))
        param_names = sorted({p for c in candidates for p in (c.get("params") or {})})
        metric_names = sorted({m for c in candidates for m in (c.get("validation_metrics") or {})})
        columns: dict[str, Callable[[Mapping[str, Any]], Any]] = {
            "candidate": lambda c: str(c.get("candidate_id")),
            "family": lambda c: str(c.get("family")),
            "seconds": lambda c: c.get("duration_seconds"),
        }
        for p in param_names:
            columns[f"param:{p}"] = partial(_field, "params", p)
        for m in metric_names:
            columns[f"metric:{m}"] = partial(_field, "validation_metrics", m)
        target = str(run.get("target_metric") or "")
        default_sort = f"metric:{target}" if f"metric:{target}" in columns else "candidate"
        sort = request.sort or default_sort
        if sort not in columns:
            raise Invalid(f"cannot sort candidates by '{sort}': sort by one of {', '.join(columns)}")
        ordered = _sorted(candidates, columns[sort], descending=request.order == "desc")
        best = run.get("best_candidate")
        keep = {"run": request.run}
        header = [
            _sort_link(links, "candidate", "run", keep, request, sort),
            _sort_link(links, "family", "run", keep, request, sort),
            *(_sort_link(links, f"param:{p}", "run", keep, request, sort, label=p) for p in param_names),
            *(_sort_link(links, f"metric:{m}", "run", keep, request, sort, label=m) for m in metric_names),
            _sort_link(links, "seconds", "run", keep, request, sort),
        ]
        rows = []
        for c in ordered:
            params = c.get("params") or {}
            values = c.get("validation_metrics") or {}
            rows.append(
                [
                    escape(str(c.get("candidate_id"))) + (" ★" if c.get("candidate_id") == best else ""),
                    escape(str(c.get("family"))),
                    *(escape(_value(params.get(p))) for p in param_names),
                    *(_num(values.get(m)) for m in metric_names),
                    _num(c.get("duration_seconds")),
                ]
            )
        first_metric = 2 + len(param_names)
        numeric = set(range(first_metric, first_metric + len(metric_names) + 1))
        status = str(run.get("status", ""))
        body = (
            _nav(links, name or None, "runs")
            + f"<h1>Run {escape(str(run.get('run_id')))} {_status(status)}</h1>"
        )
        body += _facts(
            [
                ("model", name),
                ("started", str(run.get("started_at", ""))[:19]),
                ("ended", str(run.get("ended_at") or "—")[:19]),
                ("target metric", target or "—"),
                ("code version", str(run.get("code_version") or "—")),
            ]
        )
        body += "<h2>Steps</h2>" + _steps(run, len(candidates), links)
        body += "<h2>Dataset</h2>" + _dataset(run)
        body += f"<h2>Candidates ({len(candidates)})</h2>"
        if candidates:
            body += (
                '<p class="note">Validation metrics; ★ the candidate SelectBest chose. '
                "Sort by a column header.</p>"
            )
            body += (
                '<div class="wide">'
                + _table(header, rows, numeric=numeric, highlight=_best_rows(ordered, best))
                + "</div>"
            )
            series = {
                str(c.get("candidate_id")): [(c.get("validation_metrics") or {}).get(m) for m in metric_names]
                for c in sorted(candidates, key=lambda c: str(c.get("candidate_id")))
            }
            body += "<h2>Metric comparison</h2>"
            body += charts.grouped_bars(metric_names, series, label="validation metrics per candidate")
            body += '<p class="note">Each metric scaled to its largest value; hover a bar for its value.</p>'
        else:
            body += '<p class="note">No candidate has finished training yet.</p>'
        return Page(f"Run {request.run}", body)

    # ---- routing ------------------------------------------------------------------------------
    def _page_routing(self, request: ConsoleRequest, links: Links) -> Page:
        name = request.needs_model()
        summary = self.routing.summary(name)
        policy = summary.routing.policy
        body = _nav(links, name, "routing") + f"<h1>Routing of {escape(name)}</h1>"
        body += _facts(
            [
                ("policy", _policy_document(policy.model_dump(mode="json"))),
                ("revision", str(summary.routing.revision)),
                (
                    "set",
                    f"{summary.routing.updated_at or 'never (the default)'} "
                    f"by {summary.routing.actor or '—'}",
                ),
                ("reason", summary.routing.reason or "—"),
            ]
        )
        variants = summary.variants
        body += "<h2>Traffic share (predictions served)</h2>"
        body += charts.share_bar(
            [(f"v{v.version}", float(v.totals.requests)) for v in variants],
            label="share of predictions served",
        )
        if isinstance(policy, SplitPolicy):
            body += (
                '<p class="note">Split weights: '
                + escape(", ".join(f"v{w.version} {w.weight:.0%}" for w in policy.weights))
                + "</p>"
            )
        body += "<h2>Reward rate: posterior mean and 95% credible interval</h2>"
        body += charts.intervals(
            [(f"v{v.version}", v.posterior.mean, v.posterior.lower, v.posterior.upper) for v in variants],
            label="Beta posterior of each variant's reward rate",
        )
        body += self._routing_over_time(
            name, [v.version for v in summary.variants], getattr(policy, "shadow", None)
        )
        rows = [
            [
                links.link(f"v{v.version}", "model", {"model": name, "version": v.version}),
                escape(v.role),
                _num(v.weight),
                _num(v.totals.requests),
                _num(v.totals.calls),
                _share(v.error_rate),
                _num(v.p99_ms),
                _num(v.totals.feedback),
                _num(v.reward_rate),
                _num(v.posterior.successes),
                _num(v.posterior.failures),
                _num(v.posterior.mean),
                f"[{_num(v.posterior.lower)}, {_num(v.posterior.upper)}]",
                _share(v.posterior.p_best),
            ]
            for v in variants
        ]
        if rows:
            body += (
                '<div class="wide">'
                + _table(
                    [
                        "variant",
                        "role",
                        "weight",
                        "predictions",
                        "calls",
                        "errors",
                        "p99 ms",
                        "feedback",
                        "reward rate",
                        "successes",
                        "failures",
                        "posterior mean",
                        "95% interval",
                        "P(best)",
                    ],
                    rows,
                    numeric=set(range(2, 14)),
                )
                + "</div>"
            )
        else:
            body += '<p class="note">No variant has served or been counted yet.</p>'
        history = list(reversed(summary.history))
        body += "<h2>Policy over time (weights after each change)</h2>"
        body += charts.stacked_history(
            [(h.at[:19], _policy_shares(h.routing or {})) for h in history], label="routing weights over time"
        )
        if summary.history:
            body += _table(
                ["at", "policy", "by", "reason"],
                [
                    [
                        escape(h.at[:19]),
                        escape(_policy_document(h.routing or {})),
                        escape(h.actor or "—"),
                        escape(h.reason or "—"),
                    ]
                    for h in summary.history
                ],
            )
        body += (
            '<p class="note">Bandit shares move with every feedback: the chart shows the policy set, '
            "the bar above what each variant actually served.</p>"
        )
        return Page(f"Routing of {name}", body)

    def _routing_over_time(self, name: str, versions: Sequence[int], shadow: int | None) -> str:
        """Traffic share per variant per time bucket, and each arm's posterior (mean and
        credible band) at the end of each bucket, from the routing history (only the counters
        the charts show, of the versions the summary knows)."""
        timeline = self.routing.routing_history(
            name, limit=ROUTING_BUCKETS_CHARTED, only=(versions, ("requests", "shadow_requests"))
        )
        names = [f"v{v}" for v in timeline.versions]
        starts = [(bucket, parse_iso(bucket.start).timestamp()) for bucket in timeline.buckets]
        minutes = (
            f"{timeline.bucket_seconds / 60:g}-minute"
            if timeline.bucket_seconds >= 60
            else (f"{timeline.bucket_seconds}-second")
        )
        body = (
            f"<h2>Traffic share over time ({minutes} buckets, predictions served; "
            f"the last {ROUTING_BUCKETS_CHARTED} buckets with any)</h2>"
        )
        body += charts.shares_over_time(
            [(t, b.seconds, {f"v{p.version}": float(p.requests) for p in b.variants}) for b, t in starts],
            label="share of predictions served per variant over time",
            names=names,
        )
        if shadow is not None:
            scored = sum(
                p.shadow_requests for b in timeline.buckets for p in b.variants if p.version == shadow
            )
            body += (
                f'<p class="note">Shadow v{shadow} scored {scored} predictions in the window '
                "(never returned; not part of the share).</p>"
            )
        level = f"{timeline.posterior_level:.0%}"
        body += f"<h2>Posterior over time: mean and {level} credible band</h2>"
        series: dict[str, list[tuple[float, float, float, float]]] = {}
        for bucket, t in starts:
            for p in bucket.variants:
                if p.posterior is not None:
                    end = t + bucket.seconds
                    series.setdefault(f"v{p.version}", []).append(
                        (end, p.posterior.mean, p.posterior.lower, p.posterior.upper)
                    )
        body += charts.bands_over_time(
            series,
            label="Beta posterior of each variant's reward rate over time",
            level=timeline.posterior_level,
            names=names,
        )
        return body

    # ---- drift --------------------------------------------------------------------------------
    def _page_drift(self, request: ConsoleRequest, links: Links) -> Page:
        name = request.needs_model()
        overview = self.monitoring.overview(name, limit=DRIFT_RUNS_LISTED)
        monitoring = overview.monitoring
        body = _nav(links, name, "drift") + f"<h1>Drift of {escape(name)}</h1>"
        body += _facts(
            [
                (
                    "monitoring",
                    "scheduled"
                    if monitoring.scheduled
                    else "configured"
                    if monitoring.configured
                    else "not configured",
                ),
                ("every", f"{monitoring.config.every_minutes} minutes"),
                ("last scheduled run", monitoring.last_run_at or "—"),
                ("next run", monitoring.next_run_at or "—"),
            ]
        )
        history = overview.history
        if not history:
            return Page(f"Drift of {name}", body + '<p class="note">No drift runs yet.</p>')
        finished = [r for r in reversed(history) if r.status != "running"]
        body += "<h2>Share of drifted features, run by run</h2>"
        body += charts.line_chart(
            [(r.started_at[:19], r.drift_share) for r in finished],
            label="drift share per run",
            y_max=1.0,
            marks=[r.dataset_drift for r in finished],
        )
        body += '<p class="note">Red: dataset drift.</p>'
        body += _table(
            [
                "run",
                "started",
                "trigger",
                "status",
                "version",
                "window rows",
                "drifted features",
                "share",
                "seconds",
            ],
            [
                [
                    links.link(r.run_id, "drift", {"model": name, "drift_run": r.run_id}),
                    escape(r.started_at[:19]),
                    escape(r.trigger),
                    _status(r.status),
                    _num(r.model_version),
                    _num(r.window_rows),
                    escape(_short(", ".join(r.drifted_features), 60) or "—"),
                    _share(r.drift_share),
                    _num(r.seconds),
                ]
                for r in history
            ],
            numeric={4, 5, 7, 8},
        )
        chosen: DriftRunSummary | None = overview.latest
        if request.drift_run is not None:
            chosen = self.monitoring.get_run(name, request.drift_run)
        if chosen is not None:
            report = self._report(chosen)
            if report is None:
                body += (
                    f'<p class="note">Run {escape(chosen.run_id)} has no report '
                    f"({escape(chosen.status)}).</p>"
                )
            else:
                body += (
                    f'<div class="report"><style>{REPORT_STYLE}</style>'
                    + "\n".join(render_sections(report))
                    + "</div>"
                )
        return Page(f"Drift of {name}", body)

    def _report(self, run: DriftRunSummary) -> DriftReport | None:
        if run.status == "running" or run.window_start is None:
            return None
        try:
            return DriftReport.model_validate_json(self.reports.get(report_key(run, "json")).data)
        except NotFound:
            return None

    # ---- batch --------------------------------------------------------------------------------
    def _page_batch(self, request: ConsoleRequest, links: Links) -> Page:
        name = request.needs_model()
        self.registry.get_model(name)
        body = _nav(links, name, "batch") + f"<h1>Batch jobs of {escape(name)}</h1>"
        if self.batch is None:
            return Page(
                f"Batch jobs of {name}",
                body + '<p class="note">Batch scoring is not part of this deployment yet: the console '
                "shows its jobs once a <code>BatchJobs</code> source is given to it.</p>",
            )
        jobs = self.batch.list_jobs(name, limit=RUNS_LISTED)
        if not jobs:
            return Page(f"Batch jobs of {name}", body + '<p class="note">No batch jobs yet.</p>')
        body += _table(
            ["job", "status", "version", "created", "rows", "message"],
            [
                [
                    escape(j.job_id),
                    _status(j.status),
                    _num(j.model_version),
                    escape((j.created_at or "—")[:19]),
                    _num(j.rows),
                    escape(j.message or "—"),
                ]
                for j in jobs
            ],
            numeric={2, 4},
        )
        return Page(f"Batch jobs of {name}", body)


# ---- pieces ----------------------------------------------------------------------------------
NAV_PAGES = (
    ("model", "versions"),
    ("runs", "runs"),
    ("routing", "routing"),
    ("drift", "drift"),
    ("batch", "batch"),
)


def _nav(links: Links, model: str | None, here: str | None) -> str:
    items = [links.link("Models", "models") if here != "models" else '<span class="here">Models</span>']
    if model is not None:
        items.append(f"<b>{escape(model)}</b>:")
        for page, label in NAV_PAGES:
            if page == here:
                items.append(f'<span class="here">{escape(label)}</span>')
            else:
                items.append(links.link(label, page, {"model": model}))
    return "<nav>" + " ".join(items) + "</nav>"


def _error(message: str) -> str:
    return f'<p class="error">{escape(message)}</p>'


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    numeric: set[int] | None = None,
    highlight: set[int] | None = None,
) -> str:
    """A table of cells that are already HTML (escaped by the caller)."""
    numeric = numeric or set()
    head = "".join(
        f'<th class="num">{h}</th>' if i in numeric else f"<th>{h}</th>" for i, h in enumerate(header)
    )
    body = []
    for r, row in enumerate(rows):
        cells = "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row)
        )
        css = ' class="best"' if highlight and r in highlight else ""
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _facts(facts: Sequence[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts) + "</dl>"


def _sort_link(  # noqa: PLR0917 - read as a header: the column, its page, what it keeps
    links: Links,
    column: str,
    page: str,
    keep: Params,
    request: ConsoleRequest,
    current: str,
    *,
    label: str | None = None,
) -> str:
    """A column header that sorts by it (descending first; again: the other way)."""
    order = "asc" if column == current and request.order == "desc" else "desc"
    arrow = (" ▼" if request.order == "desc" else " ▲") if column == current else ""
    return links.link(f"{label or column}{arrow}", page, {**keep, "sort": column, "order": order})


def _sorted(
    rows: Sequence[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], Any], *, descending: bool
) -> list[Any]:
    """Rows by ``key``; rows without a value last, whichever the order."""
    present = [r for r in rows if _sortable(key(r))]
    missing = [r for r in rows if not _sortable(key(r))]
    numbers = all(isinstance(key(r), int | float) for r in present)
    ordered = sorted(
        present, key=(lambda r: float(key(r))) if numbers else (lambda r: str(key(r))), reverse=descending
    )
    return [*ordered, *missing]


def _sortable(value: Any) -> bool:
    if value is None or value == "":
        return False
    return not (isinstance(value, float) and math.isnan(value))


def _best_rows(ordered: Sequence[Mapping[str, Any]], best: Any) -> set[int]:
    return {i for i, c in enumerate(ordered) if best is not None and c.get("candidate_id") == best}


def _field(group: str, name: str, row: Mapping[str, Any]) -> Any:
    return (row.get(group) or {}).get(name)


def _gate_value(run: Mapping[str, Any]) -> float | None:
    evaluation = run.get("evaluation") or {}
    metric = evaluation.get("metric") or run.get("target_metric")
    value = (evaluation.get("holdout_metrics") or {}).get(metric)
    return float(value) if isinstance(value, int | float) else None


def _finite(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _steps(run: Mapping[str, Any], trained: int, links: Links) -> str:
    request = run.get("request") or {}
    asked = len(request.get("candidates") or []) or None
    evaluation = run.get("evaluation") or {}
    failure = run.get("failure") or {}
    status = str(run.get("status", ""))
    best = run.get("best_candidate")
    version = run.get("registered_version")
    name = str(run.get("model_name", ""))

    def state(done: bool, later_done: bool) -> str:
        if done:
            return "done"
        if status == "FAILED" and not later_done:
            return "failed"
        return "running" if status == "RUNNING" else "not run"

    validated = run.get("dataset") is not None
    selected = best is not None
    evaluated = bool(evaluation)
    steps = [
        (
            "ValidateData",
            state(validated, selected),
            "schema and expectations checked; dataset hashed; reference profile written" if validated else "",
        ),
        (
            "TrainCandidate",
            state(trained > 0 and (asked is None or trained >= asked), selected),
            f"{trained} of {asked if asked is not None else '?'} candidates trained",
        ),
        ("SelectBest", state(selected, evaluated), f"best: {best}" if selected else ""),
        (
            "Evaluate",
            state(evaluated, version is not None),
            f"{'passed' if evaluation.get('passed') else 'rejected'}: {evaluation.get('reason', '')}"
            if evaluated
            else "",
        ),
        (
            "RegisterModel",
            "done"
            if version is not None
            else ("not run" if status in ("REJECTED", "FAILED") else state(False, False)),
            f"registered v{version}" if version is not None else "",
        ),
    ]
    rows = []
    failed_once = False
    for step, declared, detail_text in steps:
        step_state = "not run" if declared == "failed" and failed_once else declared
        failed_once = failed_once or declared == "failed"
        rows.append(
            [
                escape(step),
                f'<span class="pill {step_state.replace(" ", "_")}">{escape(step_state)}</span>',
                escape(detail_text),
            ]
        )
    out = _table(["step", "state", "detail"], rows)
    if failure:
        out += _error(f"Failed: {failure.get('error', '')}: {failure.get('cause', '')}")
    if version is not None and name:
        out += (
            "<p>"
            + links.link(f"v{version} in the registry", "model", {"model": name, "version": int(version)})
            + "</p>"
        )
    return out


def _dataset(run: Mapping[str, Any]) -> str:
    dataset = run.get("dataset")
    request = run.get("request") or {}
    if not dataset:
        asked = escape(str(request.get("dataset_key", "—")))
        return f'<p class="note">Not validated yet (asked for {asked}).</p>'
    return _facts(
        [
            ("key", str(dataset.get("key"))),
            ("S3 version", str(dataset.get("version_id") or "—")),
            ("sha256", str(dataset.get("sha256"))),
            ("rows", f"{int(dataset.get('rows', 0)):,}"),
            ("schema", str(dataset.get("schema_key"))),
            ("split seed", str(request.get("seed", "—"))),
        ]
    )


def _status(status: str) -> str:
    return f'<span class="pill {escape(status)}">{escape(status.replace("_", " "))}</span>'


def _num(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return "—" if value is None else escape(str(value))
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "∞" if value > 0 else "—"
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return escape(str(value))


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _policy_text(policy: Mapping[str, Any]) -> str:
    thresholds = policy.get("thresholds") or {}
    bounds = [
        f"{metric} {'≥' if kind == 'min' else '≤'} {bound}"
        for metric, limits in sorted(thresholds.items())
        for kind, bound in sorted((limits or {}).items())
        if bound is not None
    ]
    return ", ".join(bounds) or "none"


def _policy_document(policy: Mapping[str, Any]) -> str:
    kind = policy.get("type", "single")
    shadow = f" (shadow v{policy['shadow']})" if policy.get("shadow") else ""
    if kind == "split":
        weights = ", ".join(
            f"v{w.get('version')} {float(w.get('weight', 0)):.0%}" for w in policy.get("weights", [])
        )
        return f"split: {weights}{shadow}"
    if kind == "bandit":
        versions = ", ".join(f"v{v}" for v in policy.get("versions", []))
        return f"bandit (Thompson sampling) over {versions}{shadow}"
    target = f"alias {policy['alias']}" if policy.get("alias") else f"v{policy.get('version')}"
    return f"single: {target}{shadow}"


def _policy_shares(policy: Mapping[str, Any]) -> dict[str, float]:
    kind = policy.get("type", "single")
    if kind == "split":
        return {f"v{w.get('version')}": float(w.get("weight", 0)) for w in policy.get("weights", [])}
    if kind == "bandit":
        versions = policy.get("versions", [])
        return {f"v{v}": 1.0 / len(versions) for v in versions} if versions else {}
    target = f"alias {policy['alias']}" if policy.get("alias") else f"v{policy.get('version')}"
    return {target: 1.0}


def page_html(page: Page, *, standalone: bool) -> str:
    """The fragment in its wrapper: inside CloudWatch a ``div`` (the widget is the page), on
    the local stack a whole document."""
    inner = f'<style>{STYLE}</style><div class="console">{page.body}</div>'
    if not standalone:
        return inner
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(page.title)} · MLOps console</title>"
        "<style>body{margin:16px 24px}</style></head><body>"
        f"{inner}</body></html>"
    )
