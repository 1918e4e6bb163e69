"""Pipeline health: ingest lag, dead letters, SDK drops, routers gone silent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from routerwatch.drift import (
    MinuteCount,
    Status,
    check_dlq_rate,
    check_ingest_lag,
    check_sdk_drops,
    detect_silent_routers,
    learn_baseline,
)

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def traffic(per_minute, last_age, first_age=120):
    """Events every minute from ``first_age`` minutes ago until ``last_age`` minutes ago."""
    return [MinuteCount(NOW - age * MIN, 0, per_minute) for age in range(first_age, last_age - 1, -1)]


def test_silent_router_is_detected_and_busy_ones_are_not():
    history = [MinuteCount(NOW - timedelta(days=1) + i * MIN, 0, 50) for i in range(600)]
    baselines = {
        "busy": learn_baseline(history),  # 50 events/min
        "dead": 50.0,
        "trickle": 0.2,  # too quiet to judge
        "slow": 2.0,
        "new": None,
    }
    counts = {
        "busy": traffic(50, 1),
        "dead": traffic(50, 10),  # last event 10 minutes ago
        "slow": traffic(2, 9),  # 8 empty minutes at 2/min happen by chance 1e-7 of the time
    }
    verdicts = {v.labels["router"]: v for v in detect_silent_routers(baselines, counts, now=NOW, silent_minutes=5)}
    assert not verdicts["busy"].firing and verdicts["busy"].status is Status.OK
    dead = verdicts["dead"]
    assert dead.firing and dead.severity.value == "critical" and dead.alertname == "RouterwatchRouterSilent"
    assert dead.change_start == NOW - 9 * MIN and dead.extra["quiet_minutes"] == 9
    assert verdicts["trickle"].status is Status.INSUFFICIENT_VOLUME
    assert verdicts["new"].status is Status.NO_BASELINE
    assert not verdicts["slow"].firing and verdicts["slow"].extra["minutes_required"] == 11
    later = detect_silent_routers({"slow": 2.0}, {"slow": counts["slow"]}, now=NOW + 5 * MIN)
    assert later[0].firing
    # A router with no rows at all in the window is silent too.
    assert detect_silent_routers({"gone": 50.0}, {}, now=NOW)[0].firing


def test_ingest_lag_dlq_and_sdk_drops():
    assert check_ingest_lag(600, now=NOW, threshold_seconds=300).firing
    assert not check_ingest_lag(20, now=NOW).firing
    assert check_ingest_lag(None, now=NOW).status is Status.INSUFFICIENT_VOLUME
    dlq = check_dlq_rate(50, 1000, now=NOW, threshold=0.01, reasons={"schema": 45, "json": 5})
    assert dlq.firing and "schema" in dlq.description
    assert not check_dlq_rate(5, 1000, now=NOW).firing
    assert check_dlq_rate(5, 10, now=NOW).status is Status.INSUFFICIENT_VOLUME
    assert check_sdk_drops(3, now=NOW, labels={"router": "r"}).firing
    assert not check_sdk_drops(0, now=NOW).firing
