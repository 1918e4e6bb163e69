"""Verdicts become Alertmanager alerts with the labels, annotations and runbooks on-call needs."""

from __future__ import annotations

from datetime import datetime, timezone
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
    assert alert.starts_at == datetime(2026, 11, 22, 11, 10, tzinfo=timezone.utc)


def test_tier_wide_alert_is_scoped_to_the_tier():
    alert = to_alert(verdict(Signal.ESCALATION_DRIFT, router="r1", tier="small", direction="up", scope="tier"))
    assert alert.labels["scope"] == "tier" and "category" not in alert.labels


def test_quiet_verdicts_raise_nothing():
    quiet = verdict(Signal.ESCALATION_DRIFT, router="r").model_copy(update={"firing": False})
    assert to_alert(quiet) is None


def test_rate_series_registry_names_learnable_signals():
    assert set(RATE_SERIES) == {Signal.ESCALATION_DRIFT, Signal.FAILURE_SHIFT}
