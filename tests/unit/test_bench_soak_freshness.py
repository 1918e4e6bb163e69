"""The soak benchmark's freshness arithmetic (pure: synthetic emitter progress and polls)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.perf.soak import Phase  # noqa: E402


def phase_with_lag(lags: list[float], rate: int = 1_000, seconds: int = 180) -> Phase:
    """``rate``/s emitted for ``seconds``; what was emitted at t is counted by serve at t + lag(t),
    the lag of each minute taken from ``lags``."""
    phase = Phase(rate, float(seconds))
    phase.progress = [(t / 10, rate * t // 10) for t in range(seconds * 10 + 1)]
    phase.emitted = rate * seconds
    polls = []
    for k in range(int(seconds * 5 + max(lags) * 5) + 5):  # a poll every 0.2 s
        at = k / 5
        # Rows counted at poll time `at`: everything emitted at or before (at - lag of that moment).
        emitted_until = max((e for e in (x / 10 for x in range(seconds * 10 + 1))
                             if e + lags[min(int(e // 60), len(lags) - 1)] <= at), default=0.0)
        polls.append((at, int(rate * emitted_until)))
    phase.polls = polls
    return phase


def test_freshness_is_the_lag_between_emit_and_count_within_one_poll():
    phase = phase_with_lag([2.0, 2.0, 2.0])
    values = phase.freshness()
    assert values and all(1.9 <= v <= 2.0 + 0.2 + 0.1 for v in values)


def test_window_p99s_give_one_p99_per_whole_minute_and_see_a_slow_minute():
    phase = phase_with_lag([1.0, 4.0, 1.0], seconds=185)
    p99s = phase.window_p99s()
    assert len(p99s) == 3  # the last 5 s are a partial window and are left out
    assert p99s[0] < 1.5 and p99s[2] < 1.5 and 3.9 <= p99s[1] <= 4.4


def test_rss_windows_give_mean_and_max_per_window_from_the_first_sample():
    from bench.perf.soak import _windows

    points = [(100.0, 10.0), (130.0, 20.0), (219.0, 30.0), (220.0, 50.0), (400.0, 7.0)]
    assert _windows(points, 120) == [(0.0, 20.0, 30.0), (2.0, 50.0, 50.0), (4.0, 7.0, 7.0)]
    assert _windows([], 120) == []
