"""Verdicts become Alertmanager alerts with the labels, annotations and runbooks on-call needs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from routerwatch.alerting.runbooks import SCHEDULER_ALERT_NAMES
from routerwatch.drift.verdict import ALERT_NAMES, Severity, Signal, Verdict
from routerwatch.scheduler.alerts import to_alert
from routerwatch.scheduler.evaluate import RATE_SERIES

RUNBOOKS = (Path(__file__).resolve().parents[2] / "alerts/runbooks/README.md").read_text()
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
# Pipeline signals the Prometheus rules already cover from metrics; the scheduler must not page twice.
RULE_COVERED = {Signal.PIPELINE_INGEST_LAG, Signal.PIPELINE_DLQ_RATE, Signal.PIPELINE_SDK_DROPS}


def verdict(signal: Signal, **labels: str) -> Verdict:
    return Verdict(
        signal=signal, labels=labels, firing=True, severity=Severity.CRITICAL, statistic=14.0, threshold=11.0,
        baseline_value=0.16, observed_value=0.59, magnitude=0.43, change_start=datetime(2026, 11, 22, 11, 10, tzinfo=timezone.utc),
        evaluated_at=NOW, baseline_version="b1-x", summary="escalation rate rose", description="CUSUM crossed",
        extra={"mix_effect": 0.01, "within_effect": 0.42},
    )


def test_every_signal_the_scheduler_raises_has_a_runbook_and_a_registered_name():
    for signal, name in ALERT_NAMES.items():
        if signal in RULE_COVERED:
            assert to_alert(verdict(signal, router="r")) is None, f"{name} is a Prometheus rule, not a scheduler alert"
            continue
        assert name in SCHEDULER_ALERT_NAMES, name
        assert f"## {name}\n" in RUNBOOKS, f"no runbook section for {name}"
        assert to_alert(verdict(signal, router="r")) is not None


def test_category_alert_carries_labels_figures_and_a_reproducing_query():
    alert = to_alert(verdict(Signal.ESCALATION_DRIFT, router="r1", tier="small", category="bill'ing", direction="up"))
    assert alert.labels == {
        "alertname": "RouterwatchEscalationDrift", "severity": "critical", "signal": "escalation_drift",
        "router": "r1", "tier": "small", "category": "bill'ing", "direction": "up", "scope": "category",
    }
    notes = alert.annotations
    assert notes["baseline"] == "0.16" and notes["observed"] == "0.59" and notes["magnitude"] == "0.43"
    assert notes["mix_effect"] == "0.01" and notes["within_effect"] == "0.42"
    assert notes["change_start"].startswith("2026-11-22T11:10")
    assert "escalation_series(" in notes["query"] and "category = 'bill\\'ing'" in notes["query"], "quoted safely"
    assert "router_id = 'r1' AND tier = 'small'" in notes["query"], "the alert's router only (the views split by router)"
    assert alert.starts_at == datetime(2026, 11, 22, 11, 10, tzinfo=timezone.utc)


def test_tier_wide_alert_is_scoped_to_the_tier():
    alert = to_alert(verdict(Signal.ESCALATION_DRIFT, router="r1", tier="small", direction="up", scope="tier"))
    assert alert.labels["scope"] == "tier" and "category" not in alert.labels


def test_quiet_verdicts_raise_nothing():
    quiet = verdict(Signal.ESCALATION_DRIFT, router="r").model_copy(update={"firing": False})
    assert to_alert(quiet) is None


def test_rate_series_registry_names_learnable_signals():
    assert set(RATE_SERIES) == {Signal.ESCALATION_DRIFT, Signal.FAILURE_SHIFT}


# ---- one series never stops the run ------------------------------------------------------------

class _Result:
    def __init__(self, rows: list[tuple]) -> None:
        self.rows = rows


class FakeStore:
    """Answers the scheduler's reads from plain data: escalation rollup rows and stored baselines; nothing else."""

    def __init__(self, escalations: list[tuple], baselines: list[tuple[str, str, str]] = ()) -> None:
        self.escalations, self.baselines = escalations, list(baselines)

    def query(self, sql: str, params: dict | None = None) -> _Result:
        if "sumIf(m.attempts, outcome = 'escalated')" in sql:
            return _Result(self.escalations)
        if "FROM baselines" in sql:
            return _Result(self.baselines)
        return _Result([])


class FakeAlertmanager:
    def __init__(self) -> None:
        self.sent: list = []

    def sync(self, alerts, now) -> None:
        self.sent = list(alerts)

    def stats(self) -> dict:
        return {}


def _poisoned_fleet():
    """Router ``good`` (one category drifting up, one steady), ``saturated`` (every request escalates,
    baseline 0.9999+) and ``bad`` (a rollup row with more escalations than attempts: impossible)."""
    from routerwatch.drift import MinuteCount, learn_baseline
    from routerwatch.scheduler.baselines import series_key

    minute = timedelta(minutes=1)
    start = NOW - 60 * minute
    spec = {  # (router, tier, category): (baseline rate per 100, current escalations per 100)
        ("good", "small", "billing"): (10, 45),
        ("good", "large", "code"): (30, 30),
        ("saturated", "small", "disk"): (100, 100),
        ("bad", "small", "disk"): (10, 10),
    }
    rows, baselines = [], {}
    for (router, tier, category), (before, after) in spec.items():
        labels = {"router": router, "tier": tier, "category": category}
        history = [MinuteCount(start - (i + 1) * minute, before, 100) for i in range(120)]
        baselines[(Signal.ESCALATION_DRIFT.value, series_key(labels))] = learn_baseline(history, labels=labels)
        tier_labels = {"router": router, "tier": tier}  # one category per tier here: the tier's own history
        baselines[(Signal.ESCALATION_SURGE.value, series_key(tier_labels))] = learn_baseline(history, labels=tier_labels)
        for i in range(60):
            esc = after if router != "bad" or i != 30 else 150  # 150 of 100: the poisoned minute
            rows.append(((start + i * minute).replace(tzinfo=None), router, tier, category, esc, 100))
    return rows, baselines


def _settings():
    from routerwatch.config import SchedulerSettings

    return SchedulerSettings(auto_baseline=False, lookback_minutes=60, min_volume=1.0)


def _errors_counted(signal: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("routerwatch_detector_series_errors_total", {"signal": signal}) or 0.0


def test_one_poisoned_series_is_reported_and_every_other_series_is_still_judged(caplog):
    from routerwatch.drift.verdict import Status
    from routerwatch.scheduler.evaluate import evaluate

    rows, baselines = _poisoned_fleet()
    before = _errors_counted("escalation_drift")
    evaluation = evaluate(FakeStore(rows), dict(baselines), NOW, _settings())

    failed = {(e.signal, e.series) for e in evaluation.errors}
    assert ("escalation_drift", "category=disk,router=bad,tier=small") in failed
    assert ("escalation_drift", "router=bad,scope=tier,tier=small") in failed
    assert ("escalation_surge", "router=bad,tier=small") in failed
    assert all(e.signal.startswith("escalation") and "router=bad" in e.series for e in evaluation.errors)
    assert all("impossible count" in e.error for e in evaluation.errors)
    assert _errors_counted("escalation_drift") == before + 2
    assert "category=disk,router=bad,tier=small" in caplog.text

    firing = [v for v in evaluation.firing if v.labels.get("router") == "good"]
    assert {(v.labels.get("category"), v.labels.get("scope"), v.labels.get("direction")) for v in firing
            if v.signal is Signal.ESCALATION_DRIFT} >= {("billing", None, "up"), (None, "tier", "up")}
    # The tier escalating every request (baseline rate above 0.9999) is judged, in both directions.
    saturated = [v for v in evaluation.verdicts
                 if v.labels.get("router") == "saturated" and v.labels.get("category") == "disk"]
    assert len(saturated) == 2 and all(v.status is Status.OK and not v.firing for v in saturated)


def test_scheduler_run_sends_the_healthy_alerts_and_lists_the_failed_series_in_its_status():
    from types import SimpleNamespace

    from routerwatch.config import CanarySettings
    from routerwatch.scheduler.service import DriftScheduler

    rows, baselines = _poisoned_fleet()
    stored = [(signal, key, b.model_dump_json()) for (signal, key), b in baselines.items()]
    scheduler = DriftScheduler(SimpleNamespace(scheduler=_settings(), canary=CanarySettings()), FakeStore(rows, stored))
    scheduler.client = FakeAlertmanager()
    scheduler.run_once(NOW)

    sent = {(a.labels["alertname"], a.labels["router"], a.labels.get("category")) for a in scheduler.client.sent}
    assert ("RouterwatchEscalationDrift", "good", "billing") in sent
    assert not [a for a in scheduler.client.sent if a.labels["router"] == "bad"]
    status = scheduler.status()
    assert {"signal": "escalation_drift", "series": "category=disk,router=bad,tier=small",
            "error": status["series_errors"][0]["error"]} in status["series_errors"]
    assert all("impossible count" in e["error"] for e in status["series_errors"])
    assert any(f["labels"].get("router") == "good" for f in status["firing"])


def test_an_unreadable_stored_baseline_and_a_failing_canary_read_stop_nothing_else():
    # Before: a stored baseline that failed validation raised in baselines.load and the canary
    # detectors ran unguarded: either stopped the whole run, so no alert at all was sent.
    from types import SimpleNamespace

    from routerwatch.config import CanarySettings
    from routerwatch.scheduler.service import DriftScheduler

    rows, baselines = _poisoned_fleet()
    stored = [(signal, key, b.model_dump_json()) for (signal, key), b in baselines.items()]
    stored.append(("escalation_drift", "category=x,router=hand,tier=small", '{"p0": 2.5}'))

    class CanaryReadFails(FakeStore):
        def query(self, sql, params=None):
            if "canary_results" in sql or "canary_outcomes" in sql:
                raise RuntimeError("canary_results unreadable")
            return super().query(sql, params)

    scheduler = DriftScheduler(SimpleNamespace(scheduler=_settings(), canary=CanarySettings()), CanaryReadFails(rows, stored))
    scheduler.client = FakeAlertmanager()
    scheduler.run_once(NOW)
    assert ("RouterwatchEscalationDrift", "good", "billing") in {
        (a.labels["alertname"], a.labels["router"], a.labels.get("category")) for a in scheduler.client.sent
    }
    errors = {(e["signal"], e["series"]): e["error"] for e in scheduler.status()["series_errors"]}
    assert errors[("escalation_drift", "category=x,router=hand,tier=small")].startswith("unreadable baseline")
    assert "canary_results unreadable" in errors[("canary", "*")]


# ---- a fresh deployment starts judging on its own ----------------------------------------------

def _fresh_fleet(started: datetime, until: datetime, rng) -> list[tuple]:
    """Escalation rollup rows of traffic that began at ``started``: 100 trials a minute per category."""
    rates = {("r1", "small", "billing"): 0.10, ("r1", "small", "code"): 0.30, ("r1", "large", "chat"): 0.05,
             ("r2", "small", "billing"): 0.20}
    rows, at = [], started
    while at < until:
        for (router, tier, category), p in rates.items():
            rows.append((at.replace(tzinfo=None), router, tier, category, sum(rng.random() < p for _ in range(100)), 100))
        at += timedelta(minutes=1)
    return rows


def _judged(evaluation) -> dict:
    rate_signals = (Signal.ESCALATION_DRIFT, Signal.ESCALATION_SURGE)
    return {(v.signal.value, tuple(sorted(v.labels.items()))): v.status for v in evaluation.verdicts
            if v.signal in rate_signals}


def test_a_three_hour_old_deployment_is_judged_without_a_manual_baseline():
    # Before: the auto-baseline spread a series' trials over the whole 168-hour window (18,000
    # trials in 3 hours -> 1.8 a minute, below min_volume 5): every verdict said insufficient_volume
    # and the frozen baseline kept saying so. The volume is per minute of the series' own history.
    import random

    from routerwatch.config import SchedulerSettings
    from routerwatch.drift.verdict import Status
    from routerwatch.scheduler.evaluate import evaluate

    cfg = SchedulerSettings()  # auto_baseline on, 168-hour window, min_volume 5, 1,000 trials
    started = NOW - timedelta(hours=3)
    store = FakeStore(_fresh_fleet(started, NOW, random.Random(15)))
    evaluation = evaluate(store, {}, NOW, cfg)
    statuses = _judged(evaluation)
    assert len(statuses) == 4 * 2 + 3 * 2 + 3  # categories (2 sides), tiers (2 sides), tier surges
    assert set(statuses.values()) == {Status.OK}, statuses
    for learned in evaluation.learned[Signal.ESCALATION_DRIFT.value]:
        assert 99 <= learned.volume <= 101 and learned.observed_minutes == 180


def test_a_fresh_deployment_ticking_every_few_minutes_is_judged_three_hours_in():
    # The live path: serve and traffic start together, the scheduler ticks and saves what it
    # learns; the first baseline of a series is frozen as soon as it has enough history.
    import random

    from routerwatch.config import SchedulerSettings
    from routerwatch.drift.verdict import Status
    from routerwatch.scheduler.baselines import series_key
    from routerwatch.scheduler.evaluate import evaluate

    cfg = SchedulerSettings()
    started = NOW - timedelta(hours=3)
    store = FakeStore(_fresh_fleet(started, NOW, random.Random(16)))
    known: dict = {}
    for minutes in range(5, 181, 5):
        evaluation = evaluate(store, dict(known), started + timedelta(minutes=minutes), cfg)
        for signal, learned in evaluation.learned.items():
            for b in learned:
                known[(signal, series_key(b.labels))] = b
    statuses = _judged(evaluation)
    assert set(statuses.values()) == {Status.OK}, statuses
    category = [b for (s, _), b in known.items() if s == Signal.ESCALATION_DRIFT.value]
    assert len(category) == 4
    # Frozen once there was enough history (an hour of it), at the series' real volume.
    assert all(b.observed_minutes >= 60 and 99 <= b.volume <= 101 for b in category), category
    assert not evaluation.firing
