"""Shared pieces of the drift detector tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from routerwatch.drift.baseline import Baseline


def frozen_baseline(p0: float, volume: float, hour_sd: float | None, *, end: datetime, days: int = 7,
                    labels: dict[str, str] | None = None, tag: str = "test") -> Baseline:
    """A frozen baseline ending at ``end``: ``days`` of ``volume`` trials a minute at rate ``p0``."""
    minutes = days * 1440
    trials = round(volume * minutes)
    successes = round(trials * p0)
    return Baseline(
        labels=labels or {},
        p0=p0,
        observed_rate=successes / trials,
        successes=successes,
        trials=trials,
        volume=volume,
        minutes=minutes,
        observed_minutes=minutes,
        active_minutes=minutes,
        dispersion=1.0,
        hour_sd=hour_sd,
        hour_sd_hours=None if hour_sd is None else days * 24,
        window_start=end - timedelta(minutes=minutes),
        window_end=end,
        version=f"{tag}-{p0}-{volume}-{hour_sd}",
    )
