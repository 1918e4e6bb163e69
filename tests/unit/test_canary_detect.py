"""N-of-M canary detection: per canary, per side, per router."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from routerwatch.canary.detect import NofM, ProbeOutcome, detect_canaries
from routerwatch.drift.verdict import Signal, Status

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
NOW = T0 + timedelta(hours=1)
RULE = NofM(n=2, m=3)


def probes(canary: str, observed: list[str | None], *, expected: str = "small", side: str = "cheap",
           passed: list[bool] | None = None, router: str = "r1", start: int = 0) -> list[ProbeOutcome]:
    out = []
    for i, tier in enumerate(observed):
        ok = True if passed is None else passed[i]
        out.append(
            ProbeOutcome(
                canary_id=canary, router=router, occurred_at=T0 + timedelta(seconds=10 * (start + i)),
                expected_tier=expected, observed_tier=tier, passed=None if tier is None else ok, side=side,
                category="billing", detail="" if ok else "pattern '30' not found", error="refused" if tier is None else "",
            )
        )
    return out


def verdict(verdicts, signal, **labels):
    found = [v for v in verdicts if v.signal is signal and all(v.labels.get(k) == x for k, x in labels.items())]
    assert len(found) == 1, (signal, labels, [v.labels for v in verdicts if v.signal is signal])
    return found[0]


def test_healthy_canaries_fire_nothing():
    verdicts = detect_canaries(probes("a", ["small"] * 5) + probes("b", ["small"] * 5), now=NOW, config=RULE)
    assert not [v for v in verdicts if v.firing]
    assert verdict(verdicts, Signal.CANARY_TIER_FLIP, canary="a").evaluated


def test_one_odd_probe_is_not_a_flip_but_n_of_the_last_m_is():
    one = detect_canaries(probes("a", ["small", "large", "small"]), now=NOW, config=RULE)
    assert not verdict(one, Signal.CANARY_TIER_FLIP, canary="a").firing
    two = detect_canaries(probes("a", ["small", "large", "small", "large"]), now=NOW, config=RULE)
    v = verdict(two, Signal.CANARY_TIER_FLIP, canary="a")
    assert v.firing and v.statistic == 2 and v.threshold == 2
    assert v.labels == {"router": "r1", "canary": "a", "side": "cheap", "scope": "canary"}
    assert "large x2" in v.description and "expects tier small" in v.description
    assert v.change_start == T0 + timedelta(seconds=10)  # the first flip inside the window


def test_old_flips_roll_out_of_the_window():
    # Two flips, then three good probes: the last 3 hold no flip, so the alert resolves.
    verdicts = detect_canaries(probes("a", ["large", "large", "small", "small", "small"]), now=NOW, config=RULE)
    assert not verdict(verdicts, Signal.CANARY_TIER_FLIP, canary="a").firing


def test_answer_failures_are_counted_apart_from_flips():
    verdicts = detect_canaries(probes("a", ["small"] * 3, passed=[False, True, False]), now=NOW, config=RULE)
    assert verdict(verdicts, Signal.CANARY_ANSWER_FAILURE, canary="a").firing
    assert not verdict(verdicts, Signal.CANARY_TIER_FLIP, canary="a").firing
    assert "pattern '30' not found (x2)" in verdict(verdicts, Signal.CANARY_ANSWER_FAILURE, canary="a").description


def test_no_answer_is_one_router_alert_and_not_a_flip_or_failure():
    outcomes = probes("a", ["small", None, None]) + probes("b", ["small", None], start=1)
    verdicts = detect_canaries(outcomes, now=NOW, config=RULE)
    no_answer = verdict(verdicts, Signal.CANARY_NO_ANSWER, router="r1")
    assert no_answer.firing and no_answer.labels == {"router": "r1", "scope": "router"}
    assert "refused" in no_answer.description
    # Unanswered probes count neither as flips nor as failures; too few answers to judge.
    assert verdict(verdicts, Signal.CANARY_TIER_FLIP, canary="a").status is Status.INSUFFICIENT_VOLUME
    assert not any(v.firing for v in verdicts if v.signal is not Signal.CANARY_NO_ANSWER)


def test_no_answer_looks_at_the_latest_m_probes_of_the_router():
    outcomes = probes("a", [None, None, "small", "small", "small"])
    assert not verdict(detect_canaries(outcomes, now=NOW, config=RULE), Signal.CANARY_NO_ANSWER, router="r1").firing


def test_side_fires_when_enough_of_its_canaries_flip():
    flipping = probes("a", ["large"] * 3) + probes("b", ["large"] * 3)
    steady = probes("c", ["small"] * 3) + probes("d", ["large"] * 3, expected="large", side="strong")
    verdicts = detect_canaries(flipping + steady, now=NOW, config=RULE)
    cheap = verdict(verdicts, Signal.CANARY_TIER_FLIP, side="cheap", scope="side")
    assert cheap.firing and cheap.statistic == 2 and cheap.threshold == 2  # 2 of 3, need max(2, ceil(1.5))
    assert "a, b" in cheap.description
    # One canary per side is too few for a side-level judgement.
    strong = verdict(verdicts, Signal.CANARY_TIER_FLIP, side="strong", scope="side")
    assert strong.status is Status.INSUFFICIENT_VOLUME and not strong.firing


def test_one_flipping_canary_does_not_make_a_side_alert():
    outcomes = probes("a", ["large"] * 3) + probes("b", ["small"] * 3) + probes("c", ["small"] * 3)
    verdicts = detect_canaries(outcomes, now=NOW, config=RULE)
    assert verdict(verdicts, Signal.CANARY_TIER_FLIP, canary="a").firing
    assert not verdict(verdicts, Signal.CANARY_TIER_FLIP, side="cheap", scope="side").firing


def test_routers_are_judged_apart():
    outcomes = probes("a", ["large"] * 3, router="r1") + probes("a", ["small"] * 3, router="r2")
    verdicts = detect_canaries(outcomes, now=NOW, config=RULE)
    assert verdict(verdicts, Signal.CANARY_TIER_FLIP, canary="a", router="r1").firing
    assert not verdict(verdicts, Signal.CANARY_TIER_FLIP, canary="a", router="r2").firing


def test_order_of_input_does_not_matter():
    outcomes = probes("a", ["small", "small", "large", "large"])
    assert detect_canaries(outcomes[::-1], now=NOW, config=RULE) == detect_canaries(outcomes, now=NOW, config=RULE)


def test_rule_needs_n_within_m():
    with pytest.raises(ValidationError, match=r"n \(4\) cannot exceed m \(3\)"):
        NofM(n=4, m=3)


def test_verdicts_become_alerts_with_the_canary_query():
    from routerwatch.scheduler.alerts import to_alert

    verdicts = detect_canaries(probes("a", ["large"] * 3), now=NOW, config=RULE)
    alert = to_alert(verdict(verdicts, Signal.CANARY_TIER_FLIP, canary="a"))
    assert alert.labels["alertname"] == "RouterwatchCanaryTierFlip"
    assert alert.labels["canary"] == "a" and alert.labels["side"] == "cheap" and alert.labels["scope"] == "canary"
    assert "canary_id = 'a'" in alert.annotations["query"] and "router_id = 'r1'" in alert.annotations["query"]
