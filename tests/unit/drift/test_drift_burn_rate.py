"""Multi-window burn rates on a latency SLO: page and ticket boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from routerwatch.drift import BurnRule, MinuteCount, Severity, Status, evaluate_burn_rate
from routerwatch.drift.verdict import Verdict

NOW = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def minutes(bad_per_minute, span=4320, total=100):
    """``span`` minutes ending at NOW, ``bad_per_minute(age)`` slow requests of ``total`` (age 1 = newest)."""
    return [MinuteCount(NOW - age * MIN, total - bad_per_minute(age), total) for age in range(1, span + 1)]


def by_severity(verdicts: list[Verdict]) -> dict[Severity, Verdict]:
    return {v.severity: v for v in verdicts}


@pytest.mark.parametrize(("bad", "pages"), [(71, False), (73, True)])
def test_fast_burn_pages_just_above_14_4x_over_both_windows(bad, pages):
    # Budget 5 %: 72 slow requests in 100 is a burn of exactly 14.4; the last hour sits either side.
    counts = minutes(lambda age: bad if age <= 60 else 0)
    page = by_severity(evaluate_burn_rate(counts, now=NOW, objective=0.95, labels={"slo": "kept_p95"}))[
        Severity.CRITICAL
    ]
    assert page.firing is pages
    assert page.statistic == pytest.approx(bad / 100 / 0.05)
    assert page.threshold == 14.4 and page.labels == {"slo": "kept_p95"}
    fast = next(r for r in page.extra["rules"] if r["rule"] == "1h/5m")
    assert fast["long_burn"] == pytest.approx(bad / 5) and fast["short_burn"] == pytest.approx(bad / 5)
    slow = next(r for r in page.extra["rules"] if r["rule"] == "6h/30m")
    assert not slow["firing"]  # 1 bad hour in 6 is a burn of ~2.4 there


def test_one_window_alone_does_not_page():
    # Only the last 5 minutes are bad: the short window burns, the hour does not (a blip).
    blip = minutes(lambda age: 100 if age <= 5 else 0)
    assert not by_severity(evaluate_burn_rate(blip, now=NOW))[Severity.CRITICAL].firing
    # The hour burned but the last 5 minutes are clean: already recovered, no page.
    recovered = minutes(lambda age: 100 if 5 < age <= 60 else 0)
    verdict = by_severity(evaluate_burn_rate(recovered, now=NOW))[Severity.CRITICAL]
    fast = next(r for r in verdict.extra["rules"] if r["rule"] == "1h/5m")
    assert fast["long_burn"] > 14.4 and fast["short_burn"] == 0 and not verdict.firing


def test_slow_burn_pages_through_the_6h_rule():
    counts = minutes(lambda age: 35 if age <= 360 else 0)  # burn 7 for six hours
    page = by_severity(evaluate_burn_rate(counts, now=NOW))[Severity.CRITICAL]
    assert page.firing and page.extra["worst_rule"] == "6h/30m" and page.threshold == 6.0


@pytest.mark.parametrize(("bad", "tickets"), [(4, False), (6, True)])
def test_ticket_over_three_days(bad, tickets):
    counts = minutes(lambda age: bad)  # 4 % or 6 % slow for three days: burn 0.8 or 1.2
    verdicts = by_severity(evaluate_burn_rate(counts, now=NOW))
    assert verdicts[Severity.WARNING].firing is tickets
    assert not verdicts[Severity.CRITICAL].firing


def test_rules_are_configurable_and_volume_is_guarded():
    rules = (BurnRule(30, 5, 2.0, Severity.CRITICAL),)
    counts = minutes(lambda age: 20, span=30)  # burn 4 against budget 5 %
    (v,) = evaluate_burn_rate(counts, now=NOW, rules=rules)
    assert v.firing and v.extra["rules"][0]["rule"] == "30m/5m"
    (quiet,) = evaluate_burn_rate([], now=NOW, rules=rules)
    assert quiet.status is Status.INSUFFICIENT_VOLUME and not quiet.firing
    sparse = minutes(lambda age: 1, span=30, total=2)  # 50 % slow, but only 60 requests
    (guarded,) = evaluate_burn_rate(sparse, now=NOW, rules=rules, min_requests=100)
    assert not guarded.firing
    # Minutes at or after `now` (the current, still-filling minute) are not counted.
    future = [MinuteCount(NOW, 0, 100)]
    (ignored,) = evaluate_burn_rate(future, now=NOW, rules=rules)
    assert ignored.status is Status.INSUFFICIENT_VOLUME
