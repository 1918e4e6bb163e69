"""``routerwatch report``: the per-tier scoreboard for a time range.

Every section is a call of a named view from ``sql/migrations/0004_figures`` (over the
hour and day rollups since ``0008``; canary sections: ``0007_canary_figures``; the same
views analysts query by hand), run through a :class:`routerwatch.storage.reader.Reader`.
The three sections from graded answers (quality, gate calibration, gate thresholds) share
one ``graded_summary`` query (``0009``): one scan of the graded attempts instead of three.
:func:`build` returns plain data (``Report``); the renderers turn it into a terminal
table, JSON or HTML.
"""

from __future__ import annotations

import json
import math
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
TEXT_SECTIONS = (
    "tiers", "request_latency", "routing_mix", "cost", "failure_modes", "gate_thresholds", "experiment_mix_test", "tenants",
    "canaries",
)
NO_CANARIES = "no canary probes in this range"
# Bucket widths (minutes) of the canary pass-rate series; the report picks the first giving <= 48 buckets.
CANARY_STEPS = (1, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 10080)
# The escalation series is per minute up to a day; longer ranges take the first of these whole-hour
# widths giving <= 720 buckets, so the hourly rollup does the work and the plot keeps ~1 point a pixel.
SERIES_STEPS = (60, 120, 180, 360, 720, 1440, 10080)


@dataclass
class Report:
    since: datetime
    until: datetime
    by: str
    sections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "by": self.by or None,
            **{k: [_clean_row(r) for r in v] for k, v in self.sections.items()},
        }


def parse_range(since: str | None, until: str | None, now: datetime | None = None) -> tuple[datetime, datetime]:
    """``since`` is an ISO time or a duration back from now (``90m``, ``6h``, ``7d``); default 24h."""
    now = now or datetime.now(timezone.utc)
    end = _parse_time(until, now) if until else now
    start = _parse_time(since or "24h", end)
    if start >= end:
        raise ValueError(f"empty time range: since {start.isoformat()} is not before until {end.isoformat()}")
    return start, end


def _parse_time(text: str, now: datetime) -> datetime:
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text[-1:] in units and text[:-1].isdigit():
        return now - timedelta(**{units[text[-1]]: int(text[:-1])})
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def build(reader: Any, since: datetime, until: datetime, by: str = "", target_error: float = 0.1) -> Report:
    """Run every section for [since, until) and return the report's data.

    ``target_error`` is the error rate the gate-threshold section solves for.
    """
    report = Report(since, until, by)
    rows: dict[str, list[dict[str, Any]]] = {}
    for key, sql, parameters in queries(since, until, by):
        if key == "canary_series" and not rows["canaries"]:
            # Over time, per router and side; only asked for when the range has canary results.
            rows[key] = []
            continue
        rows[key] = reader.query(sql, parameters).as_dicts()
    rows.update(split_graded(rows.pop("graded")))
    report.sections = {key: rows[key] for key, *_ in SECTIONS}
    report.sections["experiment_mix_test"] = mix_tests(rows["experiment_mix"])
    report.sections["canary_series"] = rows["canary_series"]
    report.sections["gate_thresholds"] = gate_thresholds(rows["gate_scores"], target_error)
    # The unpriced flag (migration 0014): present only when some attempt of the range had no price,
    # so the report's keys change exactly when there is something to flag.
    start, end = _minute_range(since, until)
    unpriced = reader.query(
        f"SELECT deployment, attempts, requests FROM unpriced_models(since = '{_fmt_time(start)}', until = '{_fmt_time(end)}')",
        None,
    ).as_dicts()
    if unpriced:
        report.sections[UNPRICED] = unpriced
    return report


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


def queries(since: datetime, until: datetime, by: str = "") -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every query :func:`build` runs for [since, until): (key, SQL, parameters), in order.

    ``canary_series`` is run only when ``canaries`` has rows; ``graded`` is split into the quality
    and gate_calibration sections and the scores of the gate-threshold section (:func:`split_graded`).
    Raises ValueError for an unknown ``by``.
    """
    if by not in BY_CHOICES:
        raise ValueError(f"--by must be one of {', '.join(b or repr('') for b in BY_CHOICES)}")
    start, end = _minute_range(since, until)
    args = f"since = '{_fmt_time(start)}', until = '{_fmt_time(end)}'"
    by_arg = ", by = '{}'".format("" if by == "tenant" else by)
    step_arg = f", step_minutes = {series_step(since, until)}"
    out: list[tuple[str, str, dict[str, Any] | None]] = [
        (key, f"SELECT * FROM {view}({args}{by_arg if takes_by else ''}{step_arg if view == 'escalation_series_step' else ''})", None)
        for key, _, view, takes_by in SECTIONS if key not in GRADED_SECTIONS
    ]
    out.append(("canary_series", f"SELECT * FROM canary_series({args}, step_minutes = {canary_step(start, end)})", None))
    # quality, gate_calibration and the gate-threshold scores share one scan of the graded attempts.
    out.append(("graded", f"SELECT * FROM graded_summary({args}{by_arg})", None))
    return out


def _minute_range(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """Rollups are per minute: the range widens to whole minutes (since down, until up)."""
    start = since.replace(second=0, microsecond=0)
    end = until if until == until.replace(second=0, microsecond=0) else until.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return start, end


def series_step(since: datetime, until: datetime) -> int:
    """Bucket width in minutes of the escalation series over [since, until): 1 up to a day, then whole hours."""
    start, end = _minute_range(since, until)
    minutes = (end - start).total_seconds() / 60
    if minutes <= 1440:
        return 1
    return next((step for step in SERIES_STEPS if minutes / step <= 720), SERIES_STEPS[-1])


def canary_step(since: datetime, until: datetime) -> int:
    """Bucket width in minutes for the canary series over [since, until): at most 48 buckets."""
    minutes = (until - since).total_seconds() / 60
    return next((step for step in CANARY_STEPS if minutes / step <= 48), CANARY_STEPS[-1])


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


def _fmt_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def mix_tests(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per experiment: do its variants differ in routing mix (the confound that makes A/B tests lie)?"""
    by_experiment: dict[str, dict[str, dict[str, int]]] = {}
    for row in rows:
        variants = by_experiment.setdefault(row["experiment_id"], {})
        variants.setdefault(row["experiment_variant"], {})[row["final_tier"]] = int(row["requests"])
    out = []
    for experiment, counts in sorted(by_experiment.items()):
        test = routing_mix_test(counts)
        out.append(
            {
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


def render_text(report: Report) -> str:
    """Aligned plain-text tables of the headline sections."""
    titles = {key: title for key, title, _, _ in SECTIONS}
    titles["experiment_mix_test"] = "Experiments: does routing mix differ between variants? (chi-square, alpha 0.01)"
    titles["gate_thresholds"] = "Gate thresholds that meet the target error on graded answers"
    out = [f"routerwatch report  {_fmt_time(report.since)} .. {_fmt_time(report.until)} UTC" + (f"  by {report.by}" if report.by else ""), ""]
    unpriced = report.sections.get(UNPRICED, [])
    if unpriced:
        out += [terminal_safe(unpriced_line(unpriced)), ""]
    for key in TEXT_SECTIONS:
        rows = report.sections.get(key, [])
        if key == "tiers":
            rows = [_flatten_quantiles(r, ("terminal_latency_ms", "passthrough_latency_ms")) for r in rows]
            rows = [_pick(r, ["segment", "tier", "attempts", "accepted", "escalated", "failed", "shadow", "escalation_rate",
                              "failure_rate", "terminal_latency_ms_p50", "terminal_latency_ms_p95", "passthrough_latency_ms_p50",
                              "passthrough_latency_ms_p95", "model_cost_usd", "verify_cost_usd"]) for r in rows]
        elif key == "request_latency":
            rows = [_flatten_quantiles(r, ("latency_ms",)) for r in rows]
        elif key == "tenants":
            rows = rows[:10]
        elif key == "canaries":
            out.append(titles[key])
            out.extend(_canary_text(rows))
            out.append("")
            continue
        elif key == "cost" and unpriced:
            out += [UNPRICED_TITLE, _table(unpriced), ""]
        if report.by in ("", "tenant"):
            rows = [{k: v for k, v in r.items() if k != "segment"} for r in rows]
        out.append(titles[key])
        out.append(_table(rows))
        out.append("")
    return "\n".join(out)


CANARY_TEXT_COLUMNS = ["router_id", "side", "canary_id", "probes", "answered", "no_answer", "pass_rate", "tier_flip_rate",
                       "expected_tier", "most_common_observed_tier", "latency_p95_ms", "last_error"]


def _canary_text(rows: list[dict[str, Any]]) -> list[str]:
    """Per side, then per canary; one line saying so when the range has no canary results."""
    if not rows:
        return [f"  {NO_CANARIES}"]
    sides = canary_sides(rows)
    drop = set() if len({r.get("router_id") for r in rows}) > 1 else {"router_id"}
    if not any(r.get("last_error") for r in rows):
        drop.add("last_error")
    side_columns = ["router_id", "side", "canaries", "probes", "answered", "no_answer", "pass_rate", "tier_flip_rate"]
    return [
        "  per side (rates over answered probes; a tier flip is an answer from another tier than expected)",
        _table([{k: r[k] for k in side_columns if k not in drop} for r in sides]),
        "",
        "  per canary",
        _table([{k: _shorten(r.get(k)) for k in CANARY_TEXT_COLUMNS if k not in drop} for r in rows]),
    ]


def _shorten(value: Any, limit: int = 60) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[: limit - 3] + "..."
    return value


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


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _clean_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _clean(v) for k, v in row.items()}


def _fmt(value: Any) -> str:
    value = _clean(value)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    if isinstance(value, list):
        return "/".join(_fmt(v) for v in value)
    return terminal_safe(str(value))


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "  (no data)"
    columns = [terminal_safe(str(c)) for c in rows[0]]
    cells = [columns] + [[_fmt(r.get(c)) for c in rows[0]] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  " + "  ".join(c.rjust(w) if n and i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)
