"""Pages read as people think: the false-alarm budget as "1 false page per month across the N watched
series", and the baseline a page judged against by the real start and end of its window (UTC, ISO minutes).

Before: the descriptions said "Threshold sized for one false alarm per 4,383,000 minutes" (one
CUSUM's in-control run length, not the budget anyone set), the baseline window was two dates
without times, and the page carried no window at all.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from routerwatch.drift import MinuteCount, learn_baseline
from routerwatch.drift.cusum_design import arl0_for_budget
from routerwatch.drift.rate_drift import FalseAlarmBudget, pages_text, spacing_text, threshold_text
from routerwatch.drift.verdict import Signal, iso_minute, window_text
from routerwatch.scheduler.alerts import to_alert
from routerwatch.scheduler.baselines import series_key

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)
WINDOW = "2026-11-22T09:00Z to 2026-11-22T11:00Z"  # the baselines below: 120 minutes ending an hour ago


class _Result:
    def __init__(self, rows: list[tuple]) -> None:
        self.rows = rows


class FakeStore:
    """Escalation rollup rows and stored baselines; every other read is empty."""

    def __init__(self, escalations: list[tuple], baselines: list[tuple[str, str, str]] = ()) -> None:
        self.escalations, self.baselines = escalations, list(baselines)

    def query(self, sql: str, params: dict | None = None) -> _Result:
        if "sumIf(m.attempts, outcome = 'escalated')" in sql:
            return _Result(self.escalations)
        if "FROM baselines" in sql:
            return _Result(self.baselines)
        return _Result([])


def _fleet():
    """Router ``r``: billing (small tier) jumps from 10% to 45% escalations; code (large tier) stays at 30%."""
    start = NOW - 60 * MINUTE
    spec = {("r", "small", "billing"): (10, 45), ("r", "large", "code"): (30, 30)}
    rows, baselines = [], {}
    for (router, tier, category), (before, after) in spec.items():
        labels = {"router": router, "tier": tier, "category": category}
        history = [MinuteCount(start - (i + 1) * MINUTE, before, 100) for i in range(120)]
        baselines[(Signal.ESCALATION_DRIFT.value, series_key(labels))] = learn_baseline(history, labels=labels)
        tier_labels = {"router": router, "tier": tier}
        baselines[(Signal.ESCALATION_SURGE.value, series_key(tier_labels))] = learn_baseline(history, labels=tier_labels)
        for i in range(60):
            rows.append(((start + i * MINUTE).replace(tzinfo=None), router, tier, category, after, 100))
    return rows, baselines


def _settings(**kw):
    from routerwatch.config import SchedulerSettings

    return SchedulerSettings(auto_baseline=False, lookback_minutes=60, min_volume=1.0, **kw)


def test_budget_sentence() -> None:
    assert str(FalseAlarmBudget(1.0, 400, 1_000)) == "1 false page per month across the 400 watched series"
    assert str(FalseAlarmBudget(2, 1_200, 3_000)) == "2 false pages per month across the 1,200 watched series"
    assert pages_text(0.5) == "0.5 false pages per month"
    budget = FalseAlarmBudget(1.0, 400, 1_000)
    assert budget.arl0_minutes == arl0_for_budget(1.0, series=1_000, sides=1)
    assert budget.share_text() == ("1 false page per month across the 400 watched series (each of their 1,000 "
                                   "one-sided CUSUMs may false-alarm once per 83 years)")
    assert budget.share_text(2 * budget.arl0_minutes).endswith("once per 83 years; this threshold: once per 167 years)")
    assert threshold_text(90.0, None) == "one false alarm per 90 minutes"
    assert spacing_text(3 * 24 * 60) == "3.0 days" and spacing_text(float("inf")).startswith("never")
    with pytest.raises(ValueError):
        FalseAlarmBudget(0, 1, 1)


def test_window_text_is_utc_iso_minutes() -> None:
    start = datetime(2026, 11, 22, 10, 0, 59, tzinfo=timezone(timedelta(hours=1)))  # 09:00 UTC
    assert iso_minute(start) == "2026-11-22T09:00Z"
    assert window_text(start, start + timedelta(hours=2)) == WINDOW


def test_pages_state_the_fleet_budget_and_the_baseline_window() -> None:
    from routerwatch.scheduler.evaluate import evaluate

    rows, baselines = _fleet()
    evaluation = evaluate(FakeStore(rows), dict(baselines), NOW, _settings())
    # Watched: 2 category series and 2 tiers; their one-sided CUSUMs: 2 x 2 + 3 x 2 = 10.
    assert evaluation.budget == FalseAlarmBudget(1.0, series=4, cusums=10)
    budget_text = "1 false page per month across the 4 watched series"
    [category] = [v for v in evaluation.firing if v.labels.get("category") == "billing"]
    assert budget_text in category.description, category.description
    assert f"learned from {WINDOW}" in category.description, category.description
    assert "minutes at" not in category.description  # no bare ARL0 in minutes
    assert category.baseline_window == (NOW - 180 * MINUTE, NOW - 60 * MINUTE)

    [tier] = [v for v in evaluation.firing if v.labels.get("scope") == "tier"]
    assert budget_text in tier.description and f"learned from {WINDOW}" in tier.description, tier.description

    alert = to_alert(category)
    assert alert.annotations["baseline_window"] == WINDOW
    assert budget_text in alert.annotations["description"]
    assert to_alert(tier).annotations["baseline_window"] == WINDOW

    surges = [v for v in evaluation.firing if v.signal is Signal.ESCALATION_SURGE]
    assert surges and all(budget_text in v.description and v.baseline_window is not None for v in surges)


def test_the_budget_follows_the_setting() -> None:
    from routerwatch.scheduler.evaluate import evaluate

    rows, baselines = _fleet()
    evaluation = evaluate(FakeStore(rows), dict(baselines), NOW, _settings(false_pages_per_month=3.0))
    assert str(evaluation.budget) == "3 false pages per month across the 4 watched series"
    assert any("3 false pages per month across the 4 watched series" in v.description for v in evaluation.firing)


def test_the_scheduler_status_states_the_budget_and_each_page_s_baseline_window() -> None:
    from types import SimpleNamespace

    from routerwatch.config import CanarySettings
    from routerwatch.scheduler.service import DriftScheduler

    rows, baselines = _fleet()
    stored = [(signal, key, b.model_dump_json()) for (signal, key), b in baselines.items()]
    scheduler = DriftScheduler(SimpleNamespace(scheduler=_settings(), canary=CanarySettings()), FakeStore(rows, stored))
    scheduler.run_once(NOW)
    status = scheduler.status()
    assert status["false_alarm_budget"] == "1 false page per month across the 4 watched series"
    [page] = [f for f in status["firing"] if f["labels"].get("category") == "billing"]
    assert page["baseline_window"] == WINDOW


def test_routerwatch_alerts_and_baseline_learn_print_the_budget_and_real_times(monkeypatch, capsys) -> None:
    from routerwatch import cli

    status = {
        "evaluated_at": NOW.isoformat(), "series_evaluated": 4,
        "false_alarm_budget": "1 false page per month across the 4 watched series",
        "firing": [{"alertname": "RouterwatchEscalationDrift", "severity": "critical", "labels": {"router": "r"},
                    "summary": "escalation rate rose", "description": "CUSUM crossed", "baseline_window": WINDOW}],
        "silent": {},
    }
    monkeypatch.setattr(cli, "_serve_call", lambda settings, path, method="GET": status)
    assert cli.main(["alerts"]) == 0
    out = capsys.readouterr().out
    assert "false-alarm budget: 1 false page per month across the 4 watched series" in out
    assert f"baseline window: {WINDOW}" in out

    monkeypatch.setattr(cli, "_serve_call", lambda settings, path, method="GET": {"escalation_drift": 3})
    assert cli.main(["baseline", "learn", "--hours", "2", "--until", "2026-11-22T11:00:00+00:00"]) == 0
    out = capsys.readouterr().out
    assert "learned 3 new escalation_drift baseline(s) from 2026-11-22T09:00Z to 2026-11-22T11:00Z" in out
    assert "last 2h" not in out
