"""Baselines learned on demand are never replaced by a run that was already under way.

``make incident`` freezes baselines through ``POST /baselines/learn``. A scheduler run that had
loaded the (empty) baselines just before, and learned its own (auto-baseline), saved them just
after: newer, so in force, and the incident's baselines were silently replaced (nothing paged).
``DriftScheduler.learn_baselines`` takes the evaluation lock, so the on-demand baselines are saved
after the run's and stay the newest. The run is held half-way by a stand-in ``evaluate``.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from types import SimpleNamespace

from routerwatch.config import CanarySettings, SchedulerSettings
from routerwatch.scheduler import evaluate as evaluate_module
from routerwatch.scheduler import service
from routerwatch.scheduler.evaluate import Evaluation

NOW = datetime(2026, 12, 8, 1, 0, tzinfo=timezone.utc)


class Store:
    """Reads answer nothing; inserts are recorded."""

    def query(self, sql, params=None, **kwargs):
        return SimpleNamespace(rows=[], as_dicts=lambda: [], scalar=lambda: 0)

    def insert_columns(self, table, columns, **kwargs):
        pass


def test_learning_on_demand_waits_for_a_run_under_way_and_its_baselines_stay_newest(monkeypatch, tmp_path):
    saved: list[str] = []
    entered, release = threading.Event(), threading.Event()

    def slow_evaluate(store, known, now, cfg):
        entered.set()
        assert release.wait(30)
        return Evaluation(now=now, learned={"escalation_drift": ["auto"]})

    monkeypatch.setattr(service, "evaluate", slow_evaluate)
    monkeypatch.setattr(service.baseline_store, "load", lambda store, unreadable=None: {})
    monkeypatch.setattr(service.baseline_store, "save", lambda store, signal, items: saved.extend(items) or len(items))
    monkeypatch.setattr(evaluate_module, "learn_all", lambda store, since, until, min_trials: {"escalation_drift": ["frozen"]})
    monkeypatch.setattr(service.DriftScheduler, "_canaries", lambda self, until: [])
    cfg = SchedulerSettings(auto_baseline=True, state_file=tmp_path / "state.json", design_cache_file=tmp_path / "designs.json")
    scheduler = service.DriftScheduler(SimpleNamespace(scheduler=cfg, canary=CanarySettings()), Store())

    run = threading.Thread(target=scheduler.run_once, args=(NOW,))
    run.start()
    assert entered.wait(30)
    learned: dict = {}
    learn = threading.Thread(target=lambda: learned.update(scheduler.learn_baselines(NOW.replace(hour=0), NOW)))
    learn.start()
    learn.join(0.5)
    assert learn.is_alive() and saved == []  # held by the run under way: nothing saved yet
    release.set()
    run.join(30)
    learn.join(30)
    assert not run.is_alive() and not learn.is_alive()
    assert saved == ["auto", "frozen"] and learned == {"escalation_drift": 1}  # the on-demand ones last: in force
