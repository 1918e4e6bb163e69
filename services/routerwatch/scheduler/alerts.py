"""Firing verdicts -> Alertmanager alerts, with the SQL that reproduces each figure."""

from __future__ import annotations

from datetime import timedelta

from routerwatch.alerting.models import Alert
from routerwatch.alerting.runbooks import SCHEDULER_ALERT_NAMES
from routerwatch.drift.verdict import Signal, Verdict, window_text

# The per-minute figure behind each signal, as an analyst would re-run it (``routerwatch sql``).
# The three figure views have a router_id column (migration 0016): the query keeps to the alert's router.
_QUERIES: dict[Signal, str] = {
    Signal.ESCALATION_DRIFT: (
        "SELECT * FROM escalation_series(since = '{since}', until = '{until}') "
        "WHERE {router_where}tier = '{tier}' AND category = '{category}'"
    ),
    Signal.ESCALATION_SURGE: (
        "SELECT * FROM escalation_reasons(since = '{since}', until = '{until}') WHERE {router_where}tier = '{tier}'"
    ),
    Signal.FAILURE_SHIFT: (
        "SELECT * FROM failure_modes(since = '{since}', until = '{until}') WHERE {router_where}tier = '{tier}'"
    ),
}
_CANARY_QUERY = (
    "SELECT occurred_at, canary_id, side, expected_tier, observed_tier, answer_passed, check_detail, error "
    "FROM canary_results FINAL WHERE router_id = '{router}' AND occurred_at >= '{since}'{where} "
    "ORDER BY occurred_at DESC LIMIT 50"
)
for _signal in (Signal.CANARY_TIER_FLIP, Signal.CANARY_ANSWER_FAILURE, Signal.CANARY_NO_ANSWER):
    _QUERIES[_signal] = _CANARY_QUERY


def _sql_literal(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _baseline_annotations(verdict: Verdict) -> dict[str, str]:
    """``baseline_version`` and ``baseline_window`` (its real start and end, UTC, ISO minutes) when known."""
    out: dict[str, str] = {}
    if verdict.baseline_version:
        out["baseline_version"] = verdict.baseline_version
    if verdict.baseline_window is not None:
        out["baseline_window"] = window_text(*verdict.baseline_window)
    return out


def to_alert(verdict: Verdict) -> Alert | None:
    """The alert of a firing verdict, or None when its signal is not one the scheduler raises.

    ``runbook_url`` is left to the Alertmanager client, which adds it from its runbook base.
    """
    name = verdict.alertname
    if not verdict.firing or name not in SCHEDULER_ALERT_NAMES:
        return None
    labels = dict(verdict.labels)
    since = (verdict.change_start or verdict.evaluated_at - timedelta(hours=1)) - timedelta(hours=1)
    template = _QUERIES.get(verdict.signal)
    query = None
    if template:
        query = template.format(
            since=since.strftime("%Y-%m-%d %H:%M:%S"),
            until=verdict.evaluated_at.strftime("%Y-%m-%d %H:%M:%S"),
            tier=_sql_literal(labels.get("tier", "")),
            category=_sql_literal(labels.get("category", "")),
            router=_sql_literal(labels.get("router", "")),
            router_where=f"router_id = '{_sql_literal(labels['router'])}' AND " if labels.get("router") else "",
            where="".join(
                f" AND {column} = '{_sql_literal(labels[key])}'"
                for key, column in (("canary", "canary_id"), ("side", "side"))
                if key in labels
            ),
        )
    mix = verdict.extra.get("mix_effect")
    within = verdict.extra.get("within_effect")
    return Alert.build(
        name,
        severity=verdict.severity.value,
        summary=verdict.summary,
        description=verdict.description,
        signal=verdict.signal.value,
        router=labels.pop("router", None),
        tier=labels.pop("tier", None),
        category=labels.pop("category", None),
        direction=labels.pop("direction", None),
        scope=labels.pop("scope", None) or ("category" if verdict.labels.get("category") else None),
        labels=labels,
        query=query,
        baseline=verdict.baseline_value,
        observed=verdict.observed_value,
        magnitude=verdict.magnitude,
        change_start=verdict.change_start,
        mix_effect=mix,
        within_effect=within,
        annotations=_baseline_annotations(verdict) or None,
        starts_at=verdict.change_start,
    )
