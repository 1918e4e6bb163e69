"""Frozen, versioned baselines in ClickHouse (table ``baselines``).

A baseline is written once per (signal, series) and version; the newest
version is the one in force. Re-baselining after an intended change
(``routerwatch baseline learn``) writes new versions; nothing is updated in place,
so the history of baselines is kept for review.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from pydantic import ValidationError

from routerwatch.drift.baseline import Baseline
from routerwatch.drift.verdict import window_text

log = logging.getLogger("routerwatch.scheduler")


def series_key(labels: Mapping[str, str]) -> str:
    """Canonical text of a series' labels: ``category=billing,router=r,tier=small``."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def load(reader: Any, unreadable: list[tuple[str, str, str]] | None = None) -> dict[tuple[str, str], Baseline]:
    """(signal, series_key) -> the newest baseline of that series.

    A stored baseline that no longer validates (written by hand, or by a version with other
    rules) is left out and logged, and ``(signal, series_key, error)`` appended to ``unreadable``
    when given: its series is judged as one without a baseline, and every other series as usual.
    """
    result = reader.query(
        "SELECT signal, series_key, argMax(body, created_at) FROM baselines FINAL GROUP BY signal, series_key"
    )
    known: dict[tuple[str, str], Baseline] = {}
    for signal, key, body in result.rows:
        try:
            known[(signal, key)] = Baseline.model_validate_json(body)
        except ValidationError as exc:
            log.error("baseline of %s series %s is unreadable, left out: %s", signal, key, exc)
            if unreadable is not None:
                unreadable.append((signal, key, f"unreadable baseline: {exc.error_count()} error(s): {exc.errors()[0]['msg']}"))
    return known


def save(store: Any, signal: str, baselines: list[Baseline]) -> int:
    """Insert these baselines as the newest versions of their series; returns how many."""
    if not baselines:
        return 0
    store.insert_columns(
        "baselines",
        {
            "signal": [signal] * len(baselines),
            "series_key": [series_key(b.labels) for b in baselines],
            "version": [b.version for b in baselines],
            "window_start": [int(b.window_start.timestamp() * 1000) for b in baselines],
            "window_end": [int(b.window_end.timestamp() * 1000) for b in baselines],
            "body": [b.model_dump_json() for b in baselines],
        },
    )
    return len(baselines)


def describe(baseline: Baseline) -> dict[str, Any]:
    """A flat row for review tables."""
    return {
        "series": series_key(baseline.labels),
        "p0": baseline.p0,
        "trials_per_minute": baseline.volume,
        "dispersion": baseline.dispersion,
        "hour_sd": baseline.hour_sd,
        # The real start and end of the history it was learned from (UTC, ISO minutes).
        "window": window_text(baseline.window_start, baseline.window_end),
        # Incidents left out of p0 and hour_sd: reviewable, so a wrong exclusion can be seen and re-learned.
        "excluded": "; ".join(f"{window_text(e.start, e.end)} {e.direction} (scan {e.statistic:.1f})"
                              for e in baseline.excluded) or "-",
        "version": baseline.version,
    }
