"""``routerwatch report``: the per-tier scoreboard for a time range.

Every section is a call of a named view from ``sql/migrations/0004_figures`` (over the
hour and day rollups since ``0008``; canary sections: ``0007_canary_figures``; the same
views analysts query by hand), run through a :class:`routerwatch.storage.reader.Reader`.
The three sections from graded answers (quality, gate calibration, gate thresholds) share
one ``graded_summary`` query (``0009``): one scan of the graded attempts instead of three.
:func:`build` returns plain data (``Report``); the renderers turn it into a terminal
table, JSON or HTML.

Several routers are never pooled silently: the views without `by` have a router_id column
(``0016``), the views with `by` are run with by = 'router' when several routers sent traffic and
no other segment was asked for, and a section that still pools routers (``Report.pooled``) says
which in every format.
"""

from __future__ import annotations

import json
import math
import textwrap
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from routerwatch.stats import routing_mix_test, threshold_for_target
from routerwatch.textsafe import terminal_safe

BY_CHOICES = ("", "category", "variant", "router", "environment", "tenant")

# (key, title, view, takes `by`)
SECTIONS: tuple[tuple[str, str, str, bool], ...] = (
    ("tiers", "Per tier: outcomes, escalation and failure rates, terminal vs passthrough latency", "tier_scoreboard", True),
    ("request_latency", "Request latency: kept vs escalated (blended only beside them)", "request_latency", True),
    ("routing_mix", "Routing mix: requests by final tier", "routing_mix", True),
    ("cost", "Cost against flagship-everywhere", "cost_summary", True),
    ("escalation_reasons", "Escalation reasons", "escalation_reasons", False),
    ("failure_modes", "Failure modes by tier", "failure_modes", False),
    ("quality", "Quality from grades (served and shadow)", "quality_by_tier", True),
    ("gate_calibration", "Gate calibration (graded traffic)", "gate_calibration", False),
    ("experiment_slices", "Experiments, stratified by slice", "experiment_slices", False),
    ("experiment_mix", "Experiments: routing mix per variant", "experiment_mix", False),
    ("escalation_series", "Escalation rate over time", "escalation_series_step", False),
    ("tenants", "Tenants by spend", "tenant_scoreboard", False),
    ("dead_letters", "Dead letters by reason", "dead_letter_counts", False),
    ("canaries", "Canary probes: pass rate and tier flips per side and canary", "canary_scoreboard", False),
)
# The text report's sections, in order: every section of the JSON report.
TEXT_SECTIONS = (
    "tiers", "request_latency", "routing_mix", "cost", "escalation_reasons", "failure_modes", "quality",
    "gate_calibration", "gate_thresholds", "experiment_slices", "experiment_mix", "experiment_mix_test",
    "escalation_series", "tenants", "dead_letters", "canaries", "canary_series",
)
NO_CANARIES = "no canary probes in this range"
# Bucket widths (minutes) of every over-time figure: the report's escalation chart and canary
# sparklines and the console's charts (:func:`chart_step`). The first giving at most CHART_BUCKETS
# buckets: enough points to read a trend, about one a pixel or more on a page-wide plot.
CHART_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)
CHART_BUCKETS = 360
# The over-time sections: key -> (bucket column, view taking since, until and step_minutes).
SERIES_VIEWS = {"escalation_series": ("minute", "escalation_series_step"), "canary_series": ("bucket", "canary_series")}
# Per section, the counts whose sum a re-bucketed series must keep (see _fit_series).
SERIES_COUNTS = {"escalation_series": ("escalated", "accepted"), "canary_series": ("probes",)}


# Sections read from views with a `by` parameter: with several routers and no --by (or --by
# tenant) they are run with by = 'router' and their rows carry router_id instead of segment.
BY_SECTIONS = ("tiers", "request_latency", "routing_mix", "cost", "quality")
# Sections that pool routers whatever --by is: graded_summary's gate rows are per tier and gate only.
ALWAYS_POOLED = ("gate_calibration", "gate_thresholds")


@dataclass
class Report:
    since: datetime
    until: datetime
    by: str
    sections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Routers with traffic in the range (canary probes excluded), sorted.
    routers: list[str] = field(default_factory=list)
    # Section key -> the routers it pools; empty unless more than one router sent traffic.
    pooled: dict[str, list[str]] = field(default_factory=dict)
    # Over-time section key -> its bucket width in minutes (see :meth:`step`).
    steps: dict[str, int] = field(default_factory=dict)

    def step(self, key: str) -> int:
        """Bucket width in minutes of the over-time section ``key`` (``escalation_series``, ``canary_series``).

        :func:`build` records the width it queried; a report made by hand has the range's
        :func:`chart_step`.
        """
        return self.steps.get(key) or chart_step(self.since, self.until)

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "by": self.by or None,
            "routers": list(self.routers),
            "pools_routers": {k: list(v) for k, v in self.pooled.items()},
            **{k: [_clean_row(r) for r in v] for k, v in self.sections.items()},
        }


def parse_range(since: str | None, until: str | None, now: datetime | None = None) -> tuple[datetime, datetime]:
    """``since`` is an ISO time or a duration back from ``until`` (``90m``, ``6h``, ``7d``); default 24h.

    The times are read as the cookbook reads them (:func:`routerwatch.cookbook.parse_time`): a value
    that is not a time is a :class:`~routerwatch.errors.UsageError` saying what is accepted; an empty
    range is a ``ValueError``.
    """
    from routerwatch.cookbook import parse_time

    now = now or datetime.now(timezone.utc)
    end = parse_time(until, option="--until", anchor=now, anchor_name="now") if until else now
    start = parse_time(since or "24h", option="--since", anchor=end, anchor_name="--until")
    if start >= end:
        raise ValueError(f"empty time range: since {start.isoformat()} is not before until {end.isoformat()}")
    return start, end


def build(reader: Any, since: datetime, until: datetime, by: str = "", target_error: float = 0.1) -> Report:
    """Run every section for [since, until) and return the report's data.

    ``target_error`` is the error rate the gate-threshold section solves for.
    """
    report = Report(since, until, by)
    report.routers = routers_in_range(reader, since, until)
    several = len(report.routers) > 1
    # Several routers are never pooled silently: without a segment, the `by` views split by router.
    split = several and by in ("", "tenant")
    rows: dict[str, list[dict[str, Any]]] = {}
    for key, sql, parameters in queries(since, until, by, split_by_router=split):
        if key == "canary_series" and not rows["canaries"]:
            # Over time, per router and side; only asked for when the range has canary results.
            rows[key] = []
            continue
        rows[key] = reader.query(sql, parameters).as_dicts()
    rows.update(split_graded(rows.pop("graded")))
    for key in SERIES_VIEWS:
        rows[key], report.steps[key] = _fit_series(reader, key, rows[key], since, until)
    if split:
        for key in BY_SECTIONS:
            rows[key] = [_segment_as_router(r) for r in rows[key]]
    report.sections = {key: rows[key] for key, *_ in SECTIONS}
    report.sections["experiment_mix_test"] = mix_tests(rows["experiment_mix"])
    report.sections["canary_series"] = rows["canary_series"]
    report.sections["gate_thresholds"] = gate_thresholds(rows["gate_scores"], target_error)
    # The unpriced flag (migration 0014): present only when some attempt of the range had no price,
    # so the report's keys change exactly when there is something to flag.
    start, end = minute_range(since, until)
    unpriced = reader.query(
        f"SELECT deployment, attempts, requests FROM unpriced_models(since = '{fmt_time(start)}', until = '{fmt_time(end)}')",
        None,
    ).as_dicts()
    if unpriced:
        report.sections[UNPRICED] = unpriced
    if several:
        pooled = list(ALWAYS_POOLED) + (list(BY_SECTIONS) if by in ("category", "variant", "environment") else [])
        report.pooled = {key: list(report.routers) for key in pooled}
    return report


def routers_in_range(reader: Any, since: datetime, until: datetime) -> list[str]:
    """The routers that sent traffic (canary probes excluded) in [since, until), sorted."""
    start, end = minute_range(since, until)
    rows = reader.query(
        f"SELECT segment FROM cost_summary(since = '{fmt_time(start)}', until = '{fmt_time(end)}', by = 'router') "
        "WHERE requests > 0",
        None,
    ).as_dicts()
    return sorted(str(r["segment"]) for r in rows)


def _segment_as_router(row: dict[str, Any]) -> dict[str, Any]:
    """A row of a `by` view run with by = 'router': its segment is the router."""
    out = {"router_id": row.get("segment")}
    out.update((k, v) for k, v in row.items() if k != "segment")
    return out


UNPRICED = "unpriced"
UNPRICED_TITLE = "Models without a price: the table cannot price their attempts (counterfactual at the flagship tier's mean)"


def unpriced_line(rows: list[dict[str, Any]]) -> str:
    """One line naming the models without a price and their attempts, or '' when there are none."""
    if not rows:
        return ""
    attempts = sum(int(r.get("attempts") or 0) for r in rows)
    names = ", ".join(f"{r.get('deployment')} ({int(r.get('attempts') or 0):,} attempts)" for r in rows[:10])
    more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
    return (f"WARNING: {attempts:,} attempts of {len(rows)} model(s) had no price in the price table: {names}{more}. "
            "Add them to the table or import prices (routerwatch prices import --from litellm; docs/prices.md).")


# The sections read from one graded_summary query (migration 0009), with the columns of the views
# quality_by_tier and gate_calibration and of the gate-threshold scores.
GRADED_SECTIONS: dict[str, tuple[str, ...]] = {
    "quality": ("segment", "tier", "target", "graded", "pass_rate", "mean_score"),
    "gate_calibration": ("tier", "gate_kind", "score_bucket", "graded", "pass_rate", "false_accepts", "false_escalates",
                         "gate_passed_n", "gate_rejected_n"),
    "gate_scores": ("tier", "gate_kind", "score", "graded", "correct"),
}


def split_graded(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """graded_summary rows -> the quality, gate_calibration and gate_scores sections.

    Gate rows without a gate kind or score are the attempts gate_calibration leaves out.
    """
    out: dict[str, list[dict[str, Any]]] = {key: [] for key in GRADED_SECTIONS}
    for row in rows:
        section = row["section"]
        if section != "quality" and (row["gate_kind"] == "" or row["score_bucket" if section == "gate_calibration" else "score"] is None):
            continue
        out[section].append({("accuracy" if c == "pass_rate" and section == "gate_calibration" else c): row[c]
                             for c in GRADED_SECTIONS[section]})
    return out


def queries(since: datetime, until: datetime, by: str = "", split_by_router: bool = False) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every query :func:`build` runs for [since, until): (key, SQL, parameters), in order.

    ``canary_series`` is run only when ``canaries`` has rows; ``graded`` is split into the quality
    and gate_calibration sections and the scores of the gate-threshold section (:func:`split_graded`).
    ``split_by_router`` runs the views with a `by` parameter with by = 'router' (several routers, no
    segment asked for). Raises ValueError for an unknown ``by``.
    """
    if by not in BY_CHOICES:
        raise ValueError(f"--by must be one of {', '.join(b or repr('') for b in BY_CHOICES)}")
    start, end = minute_range(since, until)
    args = f"since = '{fmt_time(start)}', until = '{fmt_time(end)}'"
    by_arg = ", by = '{}'".format("router" if split_by_router else "" if by == "tenant" else by)
    step = chart_step(since, until)
    out: list[tuple[str, str, dict[str, Any] | None]] = [
        (key, _series_sql(key, since, until, step) if key in SERIES_VIEWS else f"SELECT * FROM {view}({args}{by_arg if takes_by else ''})", None)
        for key, _, view, takes_by in SECTIONS if key not in GRADED_SECTIONS
    ]
    out.append(("canary_series", _series_sql("canary_series", since, until, step), None))
    # quality, gate_calibration and the gate-threshold scores share one scan of the graded attempts.
    out.append(("graded", f"SELECT * FROM graded_summary({args}{by_arg})", None))
    return out


def minute_range(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """Rollups are per minute: the range widens to whole minutes (since down, until up)."""
    start = since.replace(second=0, microsecond=0)
    end = until if until == until.replace(second=0, microsecond=0) else until.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return start, end


def chart_step(since: datetime, until: datetime, max_buckets: int = CHART_BUCKETS) -> int:
    """Bucket width in minutes of an over-time chart of [since, until): one rule for every such chart.

    The first of CHART_STEPS giving at most ``max_buckets`` buckets (CHART_BUCKETS: 1 minute up to
    six hours, 2 up to twelve, 5 up to a day); beyond a day whole hours only, which the hourly
    rollup answers.
    """
    minutes = (until - since).total_seconds() / 60
    steps = CHART_STEPS if minutes <= 1440 else [s for s in CHART_STEPS if s % 60 == 0]
    return next((step for step in steps if minutes / step <= max_buckets), steps[-1])


def series_step(since: datetime, until: datetime) -> int:
    """Bucket width in minutes of the escalation series over [since, until): :func:`chart_step`."""
    return chart_step(since, until)


def canary_step(since: datetime, until: datetime) -> int:
    """Bucket width in minutes of the canary series over [since, until): :func:`chart_step`."""
    return chart_step(since, until)


def _series_sql(key: str, since: datetime, until: datetime, step: int) -> str:
    """The query of the over-time section ``key`` over [since, until) in buckets of ``step`` minutes."""
    start, end = minute_range(since, until)
    view = SERIES_VIEWS[key][1]
    return f"SELECT * FROM {view}(since = '{fmt_time(start)}', until = '{fmt_time(end)}', step_minutes = {step})"


def _as_utc(value: Any) -> datetime | None:
    """A bucket's start as an aware UTC datetime (the store answers naive UTC datetimes or strings)."""
    if not isinstance(value, datetime):
        try:
            value = datetime.fromisoformat(str(value).replace("Z", "+00:00").replace(" ", "T"))
        except ValueError:
            return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _fit_series(reader: Any, key: str, rows: list[dict[str, Any]], since: datetime,
                until: datetime) -> tuple[list[dict[str, Any]], int]:
    """The rows of the over-time section ``key`` and their bucket width in minutes.

    ``rows`` are the section at the range's :func:`chart_step`. When the data covers only part of
    the range (an hour of traffic in a 24-hour report), a handful of wide buckets would be all the
    chart has: the section is read again over the part with data, at that part's chart_step. The
    finer rows are kept only when they count what the wide ones did (the minute rollup may no
    longer hold what the hourly one does).
    """
    step = chart_step(since, until)
    column = SERIES_VIEWS[key][0]
    times = [t for t in (_as_utc(r.get(column)) for r in rows) if t is not None]
    if not times:
        return rows, step
    start = max(since, min(times))
    end = min(until, max(times) + timedelta(minutes=step))
    finer = chart_step(start, end) if start < end else step
    if finer >= step:
        return rows, step
    refined = reader.query(_series_sql(key, start, end, finer), None).as_dicts()

    def total(some: list[dict[str, Any]]) -> int:
        return sum(int(r.get(c) or 0) for r in some for c in SERIES_COUNTS[key])

    return (refined, finer) if total(refined) == total(rows) else (rows, step)


def canary_sides(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per router and side, the canary scoreboard rows summed: probes, answered, no answer, rates.

    Rates are over answered probes, None when none was answered (as in the views).
    """
    sums: dict[tuple[str, str], dict[str, int]] = {}
    canaries: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        key = (row.get("router_id") or "", row.get("side") or "")
        cell = sums.setdefault(key, {"probes": 0, "answered": 0, "no_answer": 0, "passed": 0, "tier_flips": 0})
        canaries.setdefault(key, set()).add(row.get("canary_id") or "")
        for column in cell:
            cell[column] += int(row.get(column) or 0)
    out = []
    for (router, side), cell in sorted(sums.items()):
        answered = cell["answered"]
        out.append({
            "router_id": router,
            "side": side,
            "canaries": len(canaries[(router, side)]),
            **cell,
            "pass_rate": cell["passed"] / answered if answered else None,
            "tier_flip_rate": cell["tier_flips"] / answered if answered else None,
        })
    return out


def gate_thresholds(rows: list[dict[str, Any]], target_error: float) -> list[dict[str, Any]]:
    """Per tier and gate: the lowest threshold whose accepted answers meet ``target_error``."""
    grouped: dict[tuple[str, str], list[tuple[float, int, int]]] = {}
    for row in rows:
        grouped.setdefault((row["tier"], row["gate_kind"]), []).append(
            (float(row["score"]), int(row["graded"]), int(row["correct"]))
        )
    out = []
    for (tier, gate), scored in sorted(grouped.items()):
        choice = threshold_for_target(scored, target_error)
        out.append(
            {
                "tier": tier,
                "gate_kind": gate,
                "target_error": target_error,
                "graded": choice.graded,
                "threshold": choice.threshold,
                "error_at_threshold": choice.error_rate,
                "coverage": choice.coverage,
            }
        )
    return out


def fmt_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def mix_tests(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per experiment: do its variants differ in routing mix (the confound that makes A/B tests lie)?"""
    by_experiment: dict[tuple[str, str], dict[str, dict[str, int]]] = {}
    for row in rows:
        # Per router (migration 0016): one router's traffic is never mixed into another's test.
        variants = by_experiment.setdefault((row.get("router_id") or "", row["experiment_id"]), {})
        variants.setdefault(row["experiment_variant"], {})[row["final_tier"]] = int(row["requests"])
    out = []
    per_router = any("router_id" in row for row in rows)
    for (router, experiment), counts in sorted(by_experiment.items()):
        test = routing_mix_test(counts)
        out.append(
            {
                **({"router_id": router} if per_router else {}),
                "experiment_id": experiment,
                "variants": len(counts),
                "chi2": test.chi2,
                "dof": test.dof,
                "p_value": test.p_value,
                "mix_differs": test.significant,
            }
        )
    return out


def render_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2, default=str)


TEXT_WIDTH = 120
ELLIPSIS = "\u2026"
TEXT_TITLES = {key: title for key, title, _, _ in SECTIONS}
TEXT_TITLES.update({
    "experiment_mix_test": "Experiments: does routing mix differ between variants? (chi-square, alpha 0.01)",
    "gate_thresholds": "Gate thresholds that meet the target error on graded answers",
    "canary_series": "Canary pass rate over time, per router and side",
    UNPRICED: UNPRICED_TITLE,
})
POOL_REASON_BY = "split by {by} here, not by router (--by router splits it by router)"
POOL_REASONS = {
    "gate_calibration": "gate calibration is per tier and gate over every router's graded answers",
    "gate_thresholds": "thresholds are solved per tier and gate over every router's graded answers",
}
# Long tables: the first rows in text, every row in JSON and HTML.
TEXT_MAX_ROWS = 40
TEXT_TENANTS = 10
PERCENT_COLUMNS = {"share", "rate", "accuracy", "pass_rate", "share_of_spend", "share_of_tier_escalations", "coverage",
                   "error_at_threshold", "target_error"}
# Column headers are the JSON keys, but for these (flattened quantiles and the longest names).
HEADERS = {
    "terminal_latency_ms_p50": "terminal_p50", "terminal_latency_ms_p95": "terminal_p95",
    "passthrough_latency_ms_p50": "passthru_p50", "passthrough_latency_ms_p95": "passthru_p95",
    "latency_ms_p50": "p50_ms", "latency_ms_p95": "p95_ms", "latency_ms_p99": "p99_ms",
    "share_of_tier_escalations": "share_of_tier", "cost_per_request_usd": "usd_per_request",
    "counterfactual_cost_usd": "counterfactual_usd", "actual_cost_usd": "actual_usd", "model_cost_usd": "model_usd",
    "verify_cost_usd": "verify_usd", "shadow_cost_usd": "shadow_usd", "tier_flip_rate": "flip_rate",
    "most_common_observed_tier": "observed", "expected_tier": "expected", "latency_p50_ms": "p50_ms",
    "latency_p95_ms": "p95_ms",
}
TIER_OUTCOME_COLUMNS = ["attempts", "accepted", "escalated", "failed", "shadow", "escalation_rate", "failure_rate"]
TIER_LATENCY_COLUMNS = ["terminal_latency_ms_p50", "terminal_latency_ms_p95", "passthrough_latency_ms_p50",
                        "passthrough_latency_ms_p95", "model_cost_usd", "verify_cost_usd", "shadow_cost_usd"]


def render_text(report: Report, width: int = TEXT_WIDTH) -> str:
    """The report as plain-text tables, every line at most ``width`` columns.

    Every section of the JSON report is here, in :data:`TEXT_SECTIONS` order. Rates are percent,
    money in USD rounded to what matters, latency in whole milliseconds. Names too long for a
    column are cut with an ellipsis; a table too wide for ``width`` is split into parts that repeat
    its name columns. With several routers, the rows carry the router; a section that pools
    routers says which.
    """
    several = len(report.routers) > 1
    out = [f"routerwatch report  {fmt_time(report.since)} .. {fmt_time(report.until)} UTC"
           + (f"  by {report.by}" if report.by else "")]
    if report.routers:
        names = ", ".join(terminal_safe(r) for r in report.routers)
        out += _wrap(f"routers: {names}" + (" (sections are split by router unless they say they pool)" if several else ""), width)
    out.append("")
    unpriced = report.sections.get(UNPRICED, [])
    if unpriced:
        out += _wrap(terminal_safe(unpriced_line(unpriced)), width) + [""]
    for key in TEXT_SECTIONS:
        if key == "cost" and unpriced:
            out += _wrap(TEXT_TITLES[UNPRICED], width)
            out += _fit_table(unpriced, width=width) + [""]
        out += _wrap(TEXT_TITLES[key], width)
        if key in report.pooled:
            out += _wrap(f"  pools routers {', '.join(terminal_safe(r) for r in report.pooled[key])}: "
                         + POOL_REASONS.get(key, POOL_REASON_BY).format(by=report.by), width, indent="  ")
        out += _section_text(report, key, several, width)
        out.append("")
    return "\n".join(_clip(line, width) for line in out)


def _is_percent(column: str) -> bool:
    return column in PERCENT_COLUMNS or column.endswith("_rate") or column.endswith("_share") or column.startswith("share_")


def _section_text(report: Report, key: str, several: bool, width: int) -> list[str]:
    if key == "canaries":
        # Canary routers are those probed, not those with traffic: their own rule for the router column.
        return _canary_text(report.sections.get(key, []), several, width)
    if key == "canary_series":
        return _canary_series_text(report.sections.get(key, []), width)
    rows = [dict(r) for r in report.sections.get(key, [])]
    drop = {"router_id"} if not several else set()
    if report.by in ("", "tenant"):
        drop.add("segment")
    rows = [{k: v for k, v in r.items() if k not in drop} for r in rows]
    ident = [c for c in ("router_id", "segment") if any(c in r for r in rows)]
    if key == "escalation_series":
        return _series_text(report, rows, width)
    if key == "tiers":
        rows = [_flatten_quantiles(r, ("terminal_latency_ms", "passthrough_latency_ms")) for r in rows]
        if not rows:
            return ["  (no data)"]
        ident = ident + ["tier"]
        out = ["  outcomes and rates (escalation rate: escalated / (accepted + escalated); failures and shadow excluded)"]
        out += _fit_table([_pick(r, ident + TIER_OUTCOME_COLUMNS) for r in rows], width=width)
        out += ["", "  latency of terminal (accepted) and passthrough (escalated) attempts, ms; cost, USD"]
        out += _fit_table([_pick(r, ident + TIER_LATENCY_COLUMNS) for r in rows], width=width)
        return out
    if key in ("request_latency", "experiment_slices"):
        rows = [_flatten_quantiles(r, ("latency_ms",)) for r in rows]
    if key == "routing_mix":
        rows = [{k: v for k, v in r.items() if k != "final_tier_rank"} for r in rows]
    note = []
    limit = TEXT_TENANTS if key == "tenants" else TEXT_MAX_ROWS
    if len(rows) > limit:
        what = "tenants by spend" if key == "tenants" else "rows"
        note = [f"  first {limit} of {len(rows)} {what} (JSON and HTML have them all)"]
        rows = rows[:limit]
    if key == "dead_letters" and not rows:
        return ["  no dead letters in this range"]
    return note + _fit_table(rows, width=width)


def _series_text(report: Report, rows: list[dict[str, Any]], width: int) -> list[str]:
    """Per (router and) tier: the range's rate and the lowest, highest and latest bucket rates."""
    if not rows:
        return ["  (no data)"]
    step = report.step("escalation_series")
    per: dict[tuple[str, ...], dict[str, list[int]]] = {}
    has_router = any("router_id" in r for r in rows)
    for row in rows:
        key = ((str(row.get("router_id") or ""),) if has_router else ()) + (str(row.get("tier")),)
        cell = per.setdefault(key, {}).setdefault(str(row.get("minute")), [0, 0])
        cell[0] += int(row.get("escalated") or 0)
        cell[1] += int(row.get("accepted") or 0)
    out_rows = []
    for key, buckets in sorted(per.items()):
        rates = [(m, e / (e + a)) for m, (e, a) in sorted(buckets.items()) if e + a]
        escalated = sum(e for e, _ in buckets.values())
        gated = escalated + sum(a for _, a in buckets.values())
        out_rows.append({
            **({"router_id": key[0]} if has_router else {}),
            "tier": key[-1],
            "buckets": len(rates),
            "escalated": escalated,
            "accepted": gated - escalated,
            "escalation_rate": escalated / gated if gated else None,
            "lowest_rate": min((r for _, r in rates), default=None),
            "highest_rate": max((r for _, r in rates), default=None),
            "latest_rate": rates[-1][1] if rates else None,
        })
    bucket = "minute" if step == 1 else f"{step}-minute bucket"
    return [f"  per tier, categories summed; lowest, highest and latest rate of a {bucket} (every point in JSON and HTML)"] \
        + _fit_table(out_rows, width=width)


def _canary_series_text(rows: list[dict[str, Any]], width: int) -> list[str]:
    if not rows:
        return [f"  {NO_CANARIES}"]
    per: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        per.setdefault((str(row.get("router_id") or ""), str(row.get("side") or "")), []).append(row)
    out_rows = []
    one_router = len({router for router, _ in per}) == 1
    for (router, side), points in sorted(per.items()):
        points.sort(key=lambda r: str(r.get("bucket")))
        rated = [r for r in points if clean(r.get("pass_rate")) is not None]
        worst = min(rated, key=lambda r: r["pass_rate"], default=None)
        out_rows.append({
            **({} if one_router else {"router_id": router}), "side": side, "buckets": len(points), "probes": sum(int(r.get("probes") or 0) for r in points),
            "lowest_pass_rate": worst["pass_rate"] if worst else None,
            "lowest_at": _when(worst.get("bucket")) if worst else None,
            "latest_pass_rate": rated[-1]["pass_rate"] if rated else None,
        })
    return _fit_table(out_rows, width=width)


CANARY_TEXT_COLUMNS = ["router_id", "side", "canary_id", "probes", "answered", "no_answer", "pass_rate", "tier_flip_rate",
                       "expected_tier", "most_common_observed_tier"]
CANARY_DETAIL_COLUMNS = ["router_id", "side", "canary_id", "latency_p50_ms", "latency_p95_ms", "last_error"]


def _canary_text(rows: list[dict[str, Any]], several: bool = False, width: int = TEXT_WIDTH) -> list[str]:
    """Per side, then per canary; one line saying so when the range has no canary results."""
    if not rows:
        return [f"  {NO_CANARIES}"]
    sides = canary_sides(rows)
    drop = set() if several or len({r.get("router_id") for r in rows}) > 1 else {"router_id"}
    if not any(r.get("last_error") for r in rows):
        drop.add("last_error")
    side_columns = ["router_id", "side", "canaries", "probes", "answered", "no_answer", "pass_rate", "tier_flip_rate"]
    return [
        "  per side (rates over answered probes; a tier flip is an answer from another tier than expected)",
        *_fit_table([{k: r[k] for k in side_columns if k not in drop} for r in sides], width=width),
        "",
        "  per canary (observed: the tier that answered most often)",
        *_fit_table([{k: r.get(k) for k in CANARY_TEXT_COLUMNS if k not in drop} for r in rows], width=width),
        "",
        "  per canary: latency of answered probes (ms)" + ("" if "last_error" in drop else " and the last error"),
        *_fit_table([{k: r.get(k) for k in CANARY_DETAIL_COLUMNS if k not in drop} for r in rows], width=width),
    ]


def _flatten_quantiles(row: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    flat = {}
    for k, v in row.items():
        if k in keys and isinstance(v, (list, tuple)):
            for label, value in zip(("p50", "p95", "p99"), v):
                flat[f"{k}_{label}"] = value
        else:
            flat[k] = v
    return flat


def _pick(row: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    return {k: row[k] for k in keys if k in row}


def clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def _clean_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: clean(v) for k, v in row.items()}


def fmt_value(value: Any) -> str:
    value = clean(value)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    if isinstance(value, list):
        return "/".join(fmt_value(v) for v in value)
    return terminal_safe(str(value))


def _pct(value: float) -> str:
    """A rate as percent: ``12.3 %``; below 0.1 % with two significant digits (``0.042 %``)."""
    p = value * 100
    if p != 0 and abs(p) < 0.1:
        return f"{p:.2g} %"
    return f"{p:.1f} %"


def _usd(value: float) -> str:
    """Money: whole dollars from 100, cents from 1, three significant digits below (``0.00123``)."""
    a = abs(value)
    if a >= 100:
        return f"{value:,.0f}"
    if a >= 1 or a == 0:
        return f"{value:,.2f}"
    digits = min(10, 2 - math.floor(math.log10(a)))
    return f"{value:.{digits}f}"


def _latency(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.1f}"


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")
    text = str(value)
    return text[:16].replace("T", " ") if len(text) >= 16 and text[4:5] == "-" and text[10:11] in ("T", " ") else text


def text_cell(column: str, value: Any) -> tuple[str, bool]:
    """(text, is a number) of one cell of the text report."""
    value = clean(value)
    if value is None:
        return "-", True
    if isinstance(value, bool):
        return ("yes" if value else "no"), False
    if isinstance(value, datetime):
        return _when(value), False
    if isinstance(value, dict):
        return terminal_safe(", ".join(f"{k}: {v}" for k, v in value.items())), False
    if isinstance(value, (list, tuple)):
        return "/".join(text_cell(column, v)[0] for v in value), True
    if isinstance(value, (int, float)):
        if _is_percent(column):
            return _pct(float(value)), True
        if column.endswith("_usd"):
            return _usd(float(value)), True
        if column.endswith("_ms") or "_ms_" in column:
            return _latency(float(value)), True
        if isinstance(value, int):
            return f"{value:,}", True
        return fmt_value(value), True
    if column in ("minute", "bucket", "last_received_at", "last_probe_at", "last_error_at", "lowest_at"):
        return _when(value), False
    return terminal_safe(str(value)), False


def _width(text: str) -> int:
    """Terminal columns of ``text``: wide (East Asian) characters take two, combining marks none."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` columns, cut with an ellipsis."""
    if _width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = _width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + ELLIPSIS


def _clip(line: str, width: int) -> str:
    return _cut(line, width)


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    """Prose (titles, notes, warnings) wrapped at ``width``; tables are never wrapped."""
    return textwrap.wrap(text, width=width, subsequent_indent=indent + "  ", break_on_hyphens=False) or [""]


# A text column is cut to this many columns first, then narrower (not below its header or
# TEXT_MIN_COLUMN) while the table is wider than the page.
TEXT_MAX_COLUMN = 32
TEXT_MIN_COLUMN = 10


def _fit_table(rows: list[dict[str, Any]], width: int = TEXT_WIDTH, indent: str = "  ") -> list[str]:
    """Aligned table lines, each at most ``width`` columns.

    Numbers are right-aligned, text left-aligned and cut with an ellipsis. When the columns do
    not fit even so, the table is split into parts, each repeating the leading name columns.
    """
    if not rows:
        return [indent + "(no data)"]
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    cells = {c: [text_cell(c, r.get(c)) for r in rows] for c in columns}
    numeric = {c: all(n for _, n in cells[c]) for c in columns}
    headers = {c: terminal_safe(HEADERS.get(c, str(c))) for c in columns}
    text = {c: [t for t, _ in cells[c]] for c in columns}
    widths = {c: max([_width(headers[c])] + [_width(t) for t in text[c]]) for c in columns}
    floor = {c: widths[c] if numeric[c] else max(min(_width(headers[c]), TEXT_MAX_COLUMN), TEXT_MIN_COLUMN) for c in columns}
    for c in columns:
        if not numeric[c]:
            widths[c] = min(widths[c], max(TEXT_MAX_COLUMN, floor[c]))

    def total(cols: list[str], w: dict[str, int]) -> int:
        return _width(indent) + sum(w[c] for c in cols) + 2 * (len(cols) - 1)

    def shrink(cols: list[str]) -> dict[str, int]:
        """Widths of ``cols`` with the widest text columns cut, one column at a time, until they fit."""
        w = dict(widths)
        while total(cols, w) > width:
            shrinkable = [c for c in cols if not numeric[c] and w[c] > floor[c]]
            if not shrinkable:
                break
            w[max(shrinkable, key=lambda c: w[c])] -= 1
        return w

    ident = []
    for c in columns:
        if numeric[c] or len(ident) == 3:
            break
        ident.append(c)
    rest = [c for c in columns if c not in ident]
    fitted = shrink(columns)
    if total(columns, fitted) <= width or not rest:
        parts = [(columns, fitted)]
    else:
        # Too many columns even with names cut: parts of the table, each with the name columns.
        groups: list[list[str]] = []
        current: list[str] = []
        for c in rest:
            if current and total(ident + current + [c], widths) > width:
                groups.append(ident + current)
                current = []
            current.append(c)
        groups.append(ident + current)
        parts = [(group, shrink(group)) for group in groups]
    lines: list[str] = []
    for n, (part, w) in enumerate(parts):
        if n:
            lines.append("")
        lines.append(indent + "  ".join(_pad(_cut(headers[c], w[c]), w[c], numeric[c] and c not in ident)
                                        for c in part).rstrip())
        lines.append(indent + "  ".join("-" * w[c] for c in part))
        for i in range(len(rows)):
            lines.append(indent + "  ".join(_pad(_cut(text[c][i], w[c]), w[c], numeric[c]) for c in part).rstrip())
    return [_clip(line, width) for line in lines]


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * max(width - _width(text), 0)
    return gap + text if right else text + gap


def text_table(rows: list[dict[str, Any]]) -> str:
    """The rows as one aligned table, nothing cut (``baseline show``: a window or series is read whole)."""
    if not rows:
        return "  (no data)"
    columns = [terminal_safe(str(c)) for c in rows[0]]
    cells = [columns] + [[fmt_value(r.get(c)) for c in rows[0]] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  " + "  ".join(c.rjust(w) if n and i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)
