"""Pure statistics: chi-square tail, routing-mix confound test, gate threshold choice."""

from __future__ import annotations

import math
import random

import pytest

from routerwatch.stats import chi2_sf, routing_mix_test, threshold_for_target


@pytest.mark.parametrize(
    ("x", "dof", "expected"),
    [
        (3.841458820694124, 1, 0.05),  # the familiar 5% critical values
        (5.991464547107979, 2, 0.05),
        (11.070497693516351, 5, 0.05),
        (6.6348966010212145, 1, 0.01),
        (0.0, 3, 1.0),
        (2.0, 2, math.exp(-1.0)),  # dof 2 is an exponential: sf = e^(-x/2)
        (10.0, 2, math.exp(-5.0)),
    ],
)
def test_chi2_tail_matches_known_values(x, dof, expected):
    assert chi2_sf(x, dof) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_identical_mixes_are_not_flagged_and_shifted_ones_are():
    same = {"a": {"small": 700, "large": 300}, "b": {"small": 700, "large": 300}}
    assert routing_mix_test(same).chi2 == 0 and not routing_mix_test(same).significant
    shifted = {"a": {"small": 700, "large": 300}, "b": {"small": 600, "large": 400}}
    verdict = routing_mix_test(shifted)
    # 2x2 table by hand: expected 650/350 per cell, chi2 = sum (o-e)^2/e.
    by_hand = 2 * (50**2 / 650) + 2 * (50**2 / 350)
    assert verdict.chi2 == pytest.approx(by_hand) and verdict.dof == 1 and verdict.significant


def test_mix_test_false_alarm_rate_is_near_alpha():
    rng = random.Random(5)
    alarms = 0
    for _ in range(2000):
        counts = {v: {"small": 0, "medium": 0, "large": 0} for v in ("a", "b")}
        for v in counts:
            for _ in range(300):
                counts[v][rng.choices(["small", "medium", "large"], [0.6, 0.3, 0.1])[0]] += 1
        alarms += routing_mix_test(counts, alpha=0.05).significant
    assert 0.03 < alarms / 2000 < 0.07


def test_threshold_is_the_lowest_that_meets_the_target():
    # score -> (graded, correct): a calibrated gate, accuracy rising with score.
    scored = [(0.3, 100, 30), (0.5, 100, 50), (0.7, 100, 70), (0.9, 100, 90)]
    choice = threshold_for_target(scored, target_error=0.2)
    # Accepting >= 0.7: 160 correct of 200 -> error 0.2 (meets); >= 0.5: 210/300 -> 0.3 (misses).
    assert choice.threshold == 0.7 and choice.error_rate == pytest.approx(0.2) and choice.coverage == 0.5
    assert threshold_for_target(scored, target_error=0.05).threshold is None
    assert threshold_for_target([], 0.1).graded == 0
