"""Counting Alertmanager's alerts: only status.state == "active" counts (the real API: tests/integration/test_alertmanager_active.py)."""

from __future__ import annotations

import pytest

from routerwatch.alerting.active import parse_matchers, render, split


def _a(name: str, state: str, **labels: str) -> dict:
    return {"labels": {"alertname": name, "severity": "critical", **labels}, "annotations": {"summary": "s"},
            "status": {"state": state, "silencedBy": [], "inhibitedBy": []}}


def test_only_active_alerts_are_counted() -> None:
    alerts = [_a("RouterwatchCanaryTierFlip", "active", scope="side"),
              _a("RouterwatchCanaryTierFlip", "suppressed", scope="canary", canary="c1"),
              _a("RouterwatchCanaryNoAnswer", "unprocessed"),
              _a("RouterwatchEscalationDrift", "active")]
    listed = split(alerts, "RouterwatchCanary")
    assert [a["labels"]["scope"] for a in listed.active] == ["side"]
    assert len(listed.suppressed) == 2
    text = render("http://am", listed, {"router": "r"}, "canary alert")
    assert text.splitlines()[0] == "Alertmanager http://am: 1 active canary alert(s) for router=r"
    assert "RouterwatchCanaryTierFlip [critical, active] scope=side" in text
    assert "not counted: 2 suppressed" in text
    assert split([{"labels": {"alertname": "RouterwatchX"}}]).active == []  # no status: not active


def test_matchers() -> None:
    assert parse_matchers(["router=a", "tier=small=x"]) == {"router": "a", "tier": "small=x"}
    for bad in ("router", "=a", " router=a"):
        with pytest.raises(ValueError):
            parse_matchers([bad])
