"""The drift scheduler inside ``routerwatch serve`` (APScheduler on the ingest event loop).

Every ``interval_s`` it runs :func:`routerwatch.scheduler.evaluate.evaluate` for
the last complete minute in a worker thread (the store is synchronous), saves
newly learned baselines, exports each detector's statistic to Prometheus,
hands the firing verdicts to the Alertmanager client, which re-sends them with
``endsAt`` ahead and resolves the ones that stopped, and records the alert
transitions and the CUSUM statistics in ClickHouse (:mod:`routerwatch.scheduler.history`).
``start()`` / ``stop()`` follow the component contract: stop is safe without start and twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from routerwatch import metrics
from routerwatch.alerting.client import AlertManagerClient
from routerwatch.canary.detect import NofM, detect_canaries
from routerwatch.drift import overdispersion
from routerwatch.drift.verdict import window_text
from routerwatch.scheduler import baselines as baseline_store
from routerwatch.scheduler import series
from routerwatch.scheduler.alerts import to_alert
from routerwatch.scheduler.evaluate import Evaluation, SeriesError, evaluate
from routerwatch.scheduler.history import History

log = logging.getLogger("routerwatch.scheduler")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    return str(value)


def _subject(labels: dict[str, str]) -> str:
    """The series a detector statistic is about, below router and tier."""
    for key in ("category", "failure_mode", "canary", "side"):
        if key in labels:
            return labels[key]
    return ""


def floor_minute(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(second=0, microsecond=0)


class DriftScheduler:
    """Runs the detectors on a schedule and keeps Alertmanager in sync with what fires."""

    def __init__(self, settings: Any, store: Any) -> None:
        self.cfg = settings.scheduler
        self.canary = settings.canary
        self.canary_rule = NofM(n=self.canary.n, m=self.canary.m, side_fraction=self.canary.side_fraction)
        self.store = store
        self.client: AlertManagerClient | None = None
        if self.cfg.alertmanager_urls:
            self.cfg.state_file.parent.mkdir(parents=True, exist_ok=True)
            self.client = AlertManagerClient(
                self.cfg.alertmanager_urls,
                state_path=self.cfg.state_file,
                resend_ttl=timedelta(seconds=max(180.0, 4 * self.cfg.interval_s)),
                runbook_base_url=self.cfg.runbook_base_url,
            )
        self.last: Evaluation | None = None
        # alert_events and detector_statistics (migration 0017): written by live runs only.
        self.history = History(store, getattr(self.cfg, "runbook_base_url", None))
        self._designs_saved = self._load_designs()
        self._scheduler: Any = None
        self._lock = threading.Lock()  # one evaluation at a time (scheduled or on demand)

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> DriftScheduler:
        if self._scheduler is not None:
            return self
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        if self.client is not None:
            self.client.start()
        # APScheduler logs every run at INFO: with jobs every second that drowns the service log.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        self._scheduler = AsyncIOScheduler(event_loop=loop or asyncio.get_event_loop(), timezone="UTC")
        self._scheduler.add_job(
            self.tick,
            "interval",
            seconds=self.cfg.interval_s,
            next_run_time=datetime.now(timezone.utc),
            max_instances=1,  # a slow run is never doubled up...
            coalesce=True,  # ...and missed runs collapse into one
            id="drift-detectors",
        )
        self._scheduler.start()
        log.info(
            "drift scheduler every %.0fs; alerts to %s",
            self.cfg.interval_s,
            ", ".join(self.cfg.alertmanager_urls) or "nowhere (no ROUTERWATCH_SCHEDULER__ALERTMANAGER_URLS)",
        )
        return self

    def _load_designs(self) -> int:
        """Load the CUSUM designs a previous process computed; returns how many designs the process holds.

        A missing file is a first start; an unreadable one is logged and ignored
        (the designs are computed again, which only costs time).
        """
        path = getattr(self.cfg, "design_cache_file", None)
        if path is None or not Path(path).exists():
            return overdispersion.design_count()
        try:
            loaded = overdispersion.import_designs(json.loads(Path(path).read_text()))
            log.info("loaded %d CUSUM designs from %s", loaded, path)
        except (OSError, ValueError, TypeError) as exc:
            log.warning("ignoring the CUSUM design cache %s (%s): designs are computed again", path, exc)
        return overdispersion.design_count()

    def _save_designs(self) -> None:
        """Write the design cache when this process computed new designs (atomically; a failure only logs)."""
        path = getattr(self.cfg, "design_cache_file", None)
        count = overdispersion.design_count()
        if path is None or count == self._designs_saved:
            return
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")  # several processes may share the file
            tmp.write_text(json.dumps(overdispersion.export_designs()))
            tmp.replace(target)
            self._designs_saved = count
        except OSError as exc:
            log.warning("could not save the CUSUM design cache %s (%s)", path, exc)

    def stop(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        if self.client is not None:
            self.client.stop()

    async def tick(self) -> None:
        """The scheduled job: never raises (a failed run is logged and retried next interval)."""
        try:
            wall = datetime.now(timezone.utc)
            await asyncio.to_thread(self.run_once, floor_minute(wall), wall)
        except asyncio.CancelledError:
            # serve is stopping mid-run. Not an error: the run's thread finishes on its own
            # (the interpreter joins it at exit), so its baselines and alert sync still land.
            # Not re-raised: APScheduler would log a cancelled job as a crash with a traceback.
            log.info("drift run at %s interrupted by shutdown; it finishes in the background", wall.isoformat(timespec="seconds"))
        except Exception:  # the schedule must survive a bad run
            log.exception("drift detectors failed this run")

    def run_once(self, now: datetime, canary_until: datetime | None = None, *, dry_run: bool = False) -> Evaluation:
        """Evaluate every detector at ``now`` (a whole minute), save baselines, sync alerts.

        The rate detectors judge whole minutes up to ``now``; the canary detectors judge every
        result up to ``canary_until`` (the wall clock when live, default ``now``): a probe is
        an event, not a per-minute count, and waiting for the minute to close would only
        delay the page.

        ``dry_run``: only return the evaluation (a replay of a past minute): no baseline is
        saved, Alertmanager is not synced, nothing is written to ``alert_events`` or
        ``detector_statistics`` (:mod:`routerwatch.scheduler.history`), the exported statistics
        and :meth:`status` keep the last live run. A replay must never resolve or raise a live page.
        """
        with self._lock:
            unreadable: list[tuple[str, str, str]] = []
            known = baseline_store.load(self.store, unreadable)
            evaluation = evaluate(self.store, known, now, self.cfg)
            for signal, key, error in unreadable:
                metrics.DETECTOR_SERIES_ERRORS.labels(signal).inc()
                evaluation.errors.append(SeriesError(signal, key, error))
            try:
                evaluation.verdicts += self._canaries(canary_until or now)
            except Exception as exc:  # the rate detectors' verdicts and alerts still stand
                log.exception("canary detectors failed this run; the rate detectors' alerts are still sent")
                metrics.DETECTOR_SERIES_ERRORS.labels("canary").inc()
                evaluation.errors.append(SeriesError("canary", "*", f"{type(exc).__name__}: {exc}"))
            if dry_run:
                return evaluation
            self._save_designs()
            for signal, learned in evaluation.learned.items():
                baseline_store.save(self.store, signal, learned)
                log.info("learned %d %s baseline(s)", len(learned), signal)
            alerts = [a for v in evaluation.firing if (a := to_alert(v)) is not None]
            if self.client is not None:
                # Alertmanager times are wall-clock: a replayed minute still fires (and expires) from now.
                self.client.sync(alerts, datetime.now(timezone.utc))
            self._export(evaluation)
            # The transitions and CUSUM statistics into the store; a failed write is logged and counted.
            self.history.record(evaluation.verdicts, alerts, evaluation.now)
            self.last = evaluation
            return evaluation

    def learn_baselines(self, since: datetime, until: datetime) -> dict[str, int]:
        """Learn and save new baseline versions from [since, until) (``POST /baselines/learn``, the
        demo's incident script); returns how many per signal.

        Holds the evaluation lock: a run that loaded the baselines before this call could otherwise
        save the ones it learned on its own (auto-baseline) just after, newer, and so replace these
        (a race `make incident` lost: its frozen baselines overwritten, nothing paged)."""
        from routerwatch.scheduler.evaluate import learn_all

        with self._lock:
            found = learn_all(self.store, since, until, self.cfg.baseline_min_trials)
            return {signal: baseline_store.save(self.store, signal, items) for signal, items in found.items()}

    def _canaries(self, until: datetime) -> list[Any]:
        since = until - timedelta(minutes=self.canary.lookback_minutes)
        return detect_canaries(series.canary_outcomes(self.store, since, until), now=until, config=self.canary_rule)

    def status(self, evaluation: Evaluation | None = None) -> dict[str, Any]:
        """What fires now and why, how many series each detector could not judge, and the series it failed on.

        ``series_errors`` lists ``{signal, series, error}`` for every series whose
        detector raised in the last run (the run judged all the others). ``evaluation``:
        describe that one (a dry run's) instead of the last live run.
        """
        evaluation = evaluation or self.last
        if evaluation is None:
            return {"evaluated_at": None, "firing": [], "silent": {}}
        silent: dict[str, int] = {}
        for v in evaluation.verdicts:
            if not v.evaluated:
                key = f"{v.signal.value}:{v.status.value}"
                silent[key] = silent.get(key, 0) + 1
        return {
            "evaluated_at": evaluation.now.isoformat(),
            "series_evaluated": sum(1 for v in evaluation.verdicts if v.evaluated),
            # "1 false page per month across the 400 watched series": the budget as people state it.
            "false_alarm_budget": str(evaluation.budget) if evaluation.budget is not None else None,
            "firing": [
                {
                    "alertname": v.alertname,
                    "severity": v.severity.value,
                    "labels": v.labels,
                    "summary": v.summary,
                    "description": v.description,
                    "change_start": v.change_start.isoformat() if v.change_start else None,
                    "baseline_window": window_text(*v.baseline_window) if v.baseline_window else None,
                    "statistic": v.statistic,
                    "threshold": v.threshold,
                }
                for v in evaluation.firing
            ],
            "silent": silent,
            "series_errors": [dataclasses.asdict(e) for e in evaluation.errors],
            # The client's stats hold datetimes and dataclasses: make them plain JSON.
            "alertmanager": json.loads(json.dumps(self.client.stats(), default=_plain)) if self.client else None,
        }

    def _export(self, evaluation: Evaluation) -> None:
        metrics.DETECTOR_STATISTIC.clear()
        metrics.DETECTOR_THRESHOLD.clear()
        firing: dict[str, int] = {}
        for v in evaluation.verdicts:
            if v.statistic is None:
                continue
            labels = (v.signal.value, v.labels.get("router", ""), v.labels.get("tier", ""),
                      _subject(v.labels), v.labels.get("direction", ""))
            metrics.DETECTOR_STATISTIC.labels(*labels).set(v.statistic)
            if v.threshold is not None:
                metrics.DETECTOR_THRESHOLD.labels(*labels).set(v.threshold)
            if v.firing:
                firing[v.alertname] = firing.get(v.alertname, 0) + 1
        metrics.ALERTS_FIRING.clear()
        for name, n in firing.items():
            metrics.ALERTS_FIRING.labels(name).set(n)
        metrics.DETECTOR_LAST_RUN.set(evaluation.now.timestamp())
