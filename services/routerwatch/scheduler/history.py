"""The live scheduler's history in ClickHouse: alert transitions and CUSUM statistics (migration 0017).

Every live run (never a dry run or a replay) writes:

- ``alert_events``: one row per alert transition, ``started`` when an alert first fires and
  ``resolved`` when it stops, with its labels, annotations (runbook and reproducing query
  included), ``starts_at``, ``ends_at`` and the Alertmanager client's key of the alert (its label
  set as canonical JSON). The transitions are computed here from the previous and the new firing
  set, with or without Alertmanager URLs, by the client's own rule (``starts_at`` is the first
  sight's ``min(change start, now)``). The firing set survives restarts through the table
  itself: the first run of a process takes the alerts whose last transition is ``started`` as
  firing, so a restart neither records a second start nor forgets what stopped meanwhile.
- ``detector_statistics``: one row per evaluated series of the CUSUM detectors
  (:data:`CUSUM_SIGNALS`) with the statistic against its threshold, baseline, observed value and
  whether it fired, for the chart under the escalation series.

A failed write never stops the run: :meth:`History.record` logs it, counts it in
``routerwatch_detector_history_write_errors_total{table}`` and returns. Transitions not written
are kept (at most :data:`MAX_PENDING`) and written with the next run's; a missed minute of
statistics stays a gap.

Every ``serve`` runs the scheduler over the same store, so a transition may be recorded once
per serve; readers (:mod:`routerwatch.console.now`) take one row per alert, state and start.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from routerwatch import metrics
from routerwatch.alerting.models import Alert
from routerwatch.alerting.runbooks import runbook_url
from routerwatch.drift.verdict import Signal, Verdict
from routerwatch.scheduler.baselines import series_key

log = logging.getLogger("routerwatch.scheduler")

ALERT_EVENTS = "alert_events"
DETECTOR_STATISTICS = "detector_statistics"
STARTED, RESOLVED = "started", "resolved"

#: The detectors whose statistic is a CUSUM compared with its threshold: their series are written
#: to ``detector_statistics`` every live run.
CUSUM_SIGNALS: frozenset[Signal] = frozenset(
    {Signal.ESCALATION_DRIFT, Signal.ESCALATION_SURGE, Signal.FAILURE_SHIFT, Signal.SHADOW_QUALITY}
)

#: Transitions kept for the next run when their write failed; the oldest go first beyond this.
MAX_PENDING = 1000

#: How far back the first run of a process looks for alerts still firing (the tables' TTL).
OPEN_LOOKBACK_DAYS = 35

# The alerts whose last recorded transition is 'started': what fired when the last process stopped.
# A resolve recorded at the same instant as a start wins (the tuple orders it last).
OPEN_SQL = f"""
SELECT alert_key, labels, annotations, starts_at
FROM
(
    SELECT alert_key,
           argMax(state, (at, state = '{RESOLVED}'))       AS last_state,
           argMax(labels, (at, state = '{RESOLVED}'))      AS labels,
           argMax(annotations, (at, state = '{RESOLVED}')) AS annotations,
           argMax(starts_at, (at, state = '{RESOLVED}'))   AS starts_at
    FROM {ALERT_EVENTS}
    WHERE at >= now64(3) - INTERVAL {OPEN_LOOKBACK_DAYS} DAY
    GROUP BY alert_key
)
WHERE last_state = '{STARTED}'
"""


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(_utc(value).timestamp() * 1000)


@dataclass(frozen=True)
class Transition:
    """One alert transition: ``state`` is ``started`` or ``resolved`` (then ``ends_at`` is the resolve time)."""

    state: str
    key: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    at: datetime
    evaluated_at: datetime


@dataclass
class _Firing:
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime


@dataclass
class Recorded:
    """What one :meth:`History.record` did: the transitions found, the rows written, the failed tables."""

    transitions: list[Transition] = field(default_factory=list)
    events_written: int = 0
    statistics_written: int = 0
    failed: list[str] = field(default_factory=list)


def statistic_rows(verdicts: Iterable[Verdict], evaluated_at: datetime) -> dict[str, list[Any]]:
    """The ``detector_statistics`` columns of the evaluated CUSUM series among ``verdicts``."""
    columns: dict[str, list[Any]] = {name: [] for name in (
        "evaluated_at", "signal", "router_id", "tier", "category", "direction", "series_key", "statistic",
        "threshold", "baseline_value", "observed_value", "firing")}
    at = _ms(evaluated_at)
    for v in verdicts:
        if v.signal not in CUSUM_SIGNALS or not v.evaluated or v.statistic is None or v.threshold is None:
            continue
        columns["evaluated_at"].append(at)
        columns["signal"].append(v.signal.value)
        columns["router_id"].append(v.labels.get("router", ""))
        columns["tier"].append(v.labels.get("tier", ""))
        columns["category"].append(v.labels.get("category", ""))
        columns["direction"].append(v.labels.get("direction", ""))
        columns["series_key"].append(series_key(v.labels))
        columns["statistic"].append(float(v.statistic))
        columns["threshold"].append(float(v.threshold))
        columns["baseline_value"].append(None if v.baseline_value is None else float(v.baseline_value))
        columns["observed_value"].append(None if v.observed_value is None else float(v.observed_value))
        columns["firing"].append(bool(v.firing))
    return columns


def event_rows(transitions: Iterable[Transition]) -> dict[str, list[Any]]:
    """The ``alert_events`` columns of these transitions."""
    columns: dict[str, list[Any]] = {name: [] for name in (
        "at", "evaluated_at", "state", "alertname", "severity", "router", "labels", "annotations", "starts_at",
        "ends_at", "alert_key")}
    for t in transitions:
        columns["at"].append(_ms(t.at))
        columns["evaluated_at"].append(_ms(t.evaluated_at))
        columns["state"].append(t.state)
        columns["alertname"].append(t.labels.get("alertname", ""))
        columns["severity"].append(t.labels.get("severity", ""))
        columns["router"].append(t.labels.get("router", ""))
        columns["labels"].append(json.dumps(t.labels, sort_keys=True, ensure_ascii=False))
        columns["annotations"].append(json.dumps(t.annotations, sort_keys=True, ensure_ascii=False))
        columns["starts_at"].append(_ms(t.starts_at))
        columns["ends_at"].append(_ms(t.ends_at))
        columns["alert_key"].append(t.key)
    return columns


class History:
    """The scheduler's writer of ``alert_events`` and ``detector_statistics`` (one per scheduler)."""

    def __init__(self, store: Any, runbook_base_url: str | None = None) -> None:
        self.store = store
        self.runbook_base_url = runbook_base_url
        self._firing: dict[str, _Firing] | None = None  # None until read from the store
        self._pending: list[Transition] = []

    def _failed(self, table: str, what: str, exc: BaseException, recorded: Recorded) -> None:
        metrics.DETECTOR_HISTORY_WRITE_ERRORS.labels(table).inc()
        recorded.failed.append(table)
        log.error("could not %s (%s: %s); the run goes on", what, type(exc).__name__, exc)

    def _load_firing(self) -> dict[str, _Firing]:
        """The alerts still firing by the table (their last transition is ``started``)."""
        found: dict[str, _Firing] = {}
        for key, labels, notes, starts_at in self.store.query(OPEN_SQL).rows:
            found[str(key)] = _Firing(json.loads(labels), json.loads(notes), _utc(starts_at))
        return found

    def started_at(self, key: str) -> datetime | None:
        """When the alert with this key (:attr:`Alert.key`) started firing, as recorded; None if it does not fire."""
        record = (self._firing or {}).get(key)
        return record.starts_at if record is not None else None

    def _annotations(self, alert: Alert) -> dict[str, str]:
        annotations = dict(alert.annotations)
        if "runbook_url" not in annotations:
            try:
                annotations["runbook_url"] = runbook_url(alert.name, self.runbook_base_url)
            except ValueError:
                pass
        return annotations

    def transitions(self, alerts: Iterable[Alert], wall: datetime, evaluated_at: datetime) -> list[Transition]:
        """The alerts that started and stopped since the previous run; the firing set becomes ``alerts``.

        The first call of a process reads the firing set from ``alert_events`` (and raises what the
        store raises; the next call reads it again). Alerts with the same labels are one alert.
        """
        if self._firing is None:
            self._firing = self._load_firing()
        wall = _utc(wall)
        out: list[Transition] = []
        firing: dict[str, _Firing] = {}
        for alert in alerts:
            key = alert.key
            annotations = self._annotations(alert)
            previous = self._firing.get(key) or firing.get(key)
            if previous is not None:
                firing[key] = _Firing(dict(alert.labels), annotations, previous.starts_at)
                continue
            starts_at = min(_utc(alert.starts_at), wall) if alert.starts_at is not None else wall
            firing[key] = _Firing(dict(alert.labels), annotations, starts_at)
            out.append(Transition(STARTED, key, dict(alert.labels), annotations, starts_at, None, wall, evaluated_at))
        for key, record in self._firing.items():
            if key not in firing:
                out.append(Transition(RESOLVED, key, record.labels, record.annotations, record.starts_at,
                                      max(wall, record.starts_at), wall, evaluated_at))
        self._firing = firing
        return out

    def record(self, verdicts: Iterable[Verdict], alerts: Iterable[Alert], evaluated_at: datetime,
               wall: datetime | None = None) -> Recorded:
        """Write this live run's transitions and CUSUM statistics. Never raises."""
        recorded = Recorded()
        wall = wall or datetime.now(timezone.utc)
        try:
            recorded.transitions = self.transitions(alerts, wall, evaluated_at)
        except Exception as exc:  # noqa: BLE001 - history must never stop the run
            self._failed(ALERT_EVENTS, "read the alerts still firing from alert_events", exc, recorded)
        self._pending = (self._pending + recorded.transitions)[-MAX_PENDING:]
        if self._pending:
            try:
                recorded.events_written = self.store.insert_columns(ALERT_EVENTS, event_rows(self._pending))
                self._pending = []
            except Exception as exc:  # noqa: BLE001
                self._failed(ALERT_EVENTS, f"write {len(self._pending)} alert transition(s) to alert_events "
                             "(kept for the next run)", exc, recorded)
        try:
            columns = statistic_rows(verdicts, evaluated_at)
            if columns["signal"]:
                recorded.statistics_written = self.store.insert_columns(DETECTOR_STATISTICS, columns)
        except Exception as exc:  # noqa: BLE001
            self._failed(DETECTOR_STATISTICS, "write this run's CUSUM statistics to detector_statistics", exc, recorded)
        return recorded
