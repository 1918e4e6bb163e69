"""Tolerance CUSUM designs survive a restart (overdispersion.export_designs / import_designs, the scheduler's cache file)."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from routerwatch.config import Settings
from routerwatch.drift import overdispersion as od
from routerwatch.scheduler.service import DriftScheduler

ARGS = (0.3, 120, "up", 2.0e6, 0.03, None, 0.12)


@pytest.fixture(autouse=True)
def fresh_cache():
    saved = dict(od._DESIGNS)
    od._DESIGNS.clear()
    yield
    od._DESIGNS.clear()
    od._DESIGNS.update(saved)


def test_a_design_is_computed_once_and_restored_from_its_export_without_computing():
    t0 = time.process_time()
    first = od.tolerance_design(*ARGS)
    cold = time.process_time() - t0
    assert first is not None and first.h > 0
    data = json.loads(json.dumps(od.export_designs()))  # what the scheduler writes and reads back
    od._DESIGNS.clear()
    assert od.import_designs(data) == 1
    calls = []
    real = od._compute_design
    od._compute_design = lambda *a: calls.append(a) or real(*a)  # type: ignore[assignment]
    try:
        again = od.tolerance_design(*ARGS)
    finally:
        od._compute_design = real  # type: ignore[assignment]
    assert calls == [] and again == first
    assert cold > 0  # the cold design did real work (the cache is what saves it)


def test_designs_of_another_model_are_ignored_and_garbage_is_refused():
    od.tolerance_design(*ARGS)
    data = od.export_designs()
    od._DESIGNS.clear()
    assert od.import_designs({**data, "model": "something-else"}) == 0 and od.design_count() == 0
    with pytest.raises(ValueError, match="not a tolerance-design cache"):
        od.import_designs(["not", "a", "cache"])


def _scheduler(tmp_path, name="designs.json") -> DriftScheduler:
    settings = Settings()
    cfg = settings.scheduler.model_copy(update={"design_cache_file": tmp_path / name, "alertmanager_urls": []})
    return DriftScheduler(SimpleNamespace(scheduler=cfg, canary=settings.canary), store=None)


def test_the_scheduler_saves_new_designs_and_a_restarted_one_loads_them(tmp_path):
    first = _scheduler(tmp_path)
    od.tolerance_design(*ARGS)
    first._save_designs()
    saved = json.loads((tmp_path / "designs.json").read_text())
    assert len(saved["designs"]) == 1
    od._DESIGNS.clear()
    _scheduler(tmp_path)  # a new process: loads at construction
    assert od.design_count() == 1 and next(iter(od._DESIGNS))[:len(ARGS)] == ARGS


def test_an_unreadable_cache_file_is_ignored_not_fatal(tmp_path, caplog):
    (tmp_path / "designs.json").write_text("{ not json")
    _scheduler(tmp_path)
    assert od.design_count() == 0
    assert "ignoring the CUSUM design cache" in caplog.text


def test_baseline_show_lists_the_wobble_and_the_incidents_left_out():
    from datetime import datetime, timedelta, timezone

    from routerwatch.drift.baseline import Baseline, ExcludedStretch
    from routerwatch.scheduler.baselines import describe

    t0 = datetime(2026, 1, 5, tzinfo=timezone.utc)
    b = Baseline(labels={"router": "r", "tier": "small", "category": "billing"}, p0=0.3, observed_rate=0.3,
                 successes=300, trials=1000, volume=10.0, minutes=600, active_minutes=600, hour_sd=0.12,
                 excluded=[ExcludedStretch(start=t0 + timedelta(hours=2), end=t0 + timedelta(hours=5), hours=3,
                                           statistic=7.25, direction="up", successes=90, trials=180)],
                 window_start=t0, window_end=t0 + timedelta(hours=10), version="b1-x")
    row = describe(b)
    assert row["hour_sd"] == 0.12
    assert row["window"] == "2026-01-05T00:00Z to 2026-01-05T10:00Z"  # its real start and end, UTC
    assert row["excluded"] == "2026-01-05T02:00Z to 2026-01-05T05:00Z up (scan 7.2)"
    assert describe(b.model_copy(update={"excluded": []}))["excluded"] == "-"
