"""A client of Alertmanager's API v2 that keeps a set of firing alerts in sync.

The scheduler calls :meth:`AlertManagerClient.sync` once per tick with every alert whose
condition holds now. The client then does what Prometheus does for its own rules (design
notes, section 8):

- an alert in the list is (re)sent with ``endsAt = now + resend_ttl`` and the ``startsAt`` of
  the first tick it was seen, so Alertmanager keeps it active between ticks and lets it expire
  by itself if the scheduler dies;
- an alert that was firing and is no longer in the list is resolved: sent once more with
  ``endsAt = now``;
- every alert goes to every configured Alertmanager (they deduplicate among themselves, as
  Prometheus expects); each Alertmanager has its own queue and sender thread, so one that is
  down delays nothing else, and ``sync`` itself never does network I/O;
- an Alertmanager that fails is retried with exponential back-off (bounded by
  ``retry_max_s``); its queue holds at most one entry per alert (the newest), and an entry is
  dropped once sending it is pointless: a firing entry after its ``endsAt``, a resolve after the
  ``endsAt`` last sent for that alert (Alertmanager has resolved it on its own by then);
- the firing set, and the resolves not yet delivered, live in a small JSON state file
  (written atomically), so a restarted scheduler resumes each alert with the same ``startsAt``
  (same labels, same alert: no new page) and resolves what stopped while it was down.

The state file is :mod:`routerwatch.alerting.state`, the queues and sender threads
:mod:`routerwatch.alerting.delivery`, the HTTP requests :mod:`routerwatch.alerting.api`;
this module decides which alerts start, stay and resolve.

An alert's identity is its label set (Alertmanager fingerprints alerts by labels), so keep
figures out of labels. Usage from a scheduler job::

    client = AlertManagerClient(["http://127.0.0.1:9093"], state_path=".run/alerting.json").start()
    scheduler.add_job(lambda: client.sync(detect_all(), datetime.now(timezone.utc)), "interval", minutes=1)
    ...
    client.stop()   # delivers pending resolves once more, saves the state
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from routerwatch.alerting.api import build_opener, redact_url, request, split_auth
from routerwatch.alerting.delivery import DeliverySettings, Pending, Target, TargetStats
from routerwatch.alerting.errors import AlertingError, ClientNotStarted
from routerwatch.alerting.models import Alert
from routerwatch.alerting.runbooks import check_runbook_base_url, runbook_url
from routerwatch.alerting.state import Record, Resolving, StateFile

__all__ = ["AlertManagerClient", "SyncResult", "TargetStats"]

log = logging.getLogger("routerwatch.alerting")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class SyncResult:
    """What one :meth:`AlertManagerClient.sync` changed."""

    firing: int
    started: tuple[dict[str, str], ...] = ()
    resolved: tuple[dict[str, str], ...] = ()


class AlertManagerClient:
    """Keep Alertmanager(s) in line with the alerts that fire now; see the module docstring.

    ``urls`` are Alertmanager base URLs (``http://host:9093``, with any route prefix; basic
    auth as ``http://user:password@host``). ``state_path`` is the JSON file that makes restarts
    safe; without it the firing set lives in memory only. ``resend_ttl`` is how far ahead of
    each send ``endsAt`` is set: longer than the interval between syncs (and a restart), shorter
    than you can tolerate an orphaned alert. ``runbook_base_url`` (an absolute http(s) URL;
    default: the runbooks' page in the project's repository) fills the ``runbook_url``
    annotation of alerts that have none. Environment proxies are ignored unless
    ``use_env_proxy`` is true (Alertmanagers are usually on the local network).

    ``start()`` loads the state and starts one sender thread per Alertmanager (idempotent);
    ``stop()`` gives every queue one last delivery attempt within ``stop_timeout_s``, saves the
    state and is safe without ``start()`` and safe twice. ``sync()`` is thread-safe and does no
    network I/O, so it may run in an APScheduler job.
    """

    def __init__(
        self,
        urls: Sequence[str] | str,
        *,
        state_path: str | os.PathLike[str] | None = None,
        resend_ttl: timedelta = timedelta(minutes=5),
        timeout_s: float = 5.0,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 60.0,
        stop_timeout_s: float = 10.0,
        runbook_base_url: str | None = None,
        generator_url: str | None = None,
        use_env_proxy: bool = False,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        urls = [urls] if isinstance(urls, str) else list(urls)
        if not urls:
            raise AlertingError("at least one Alertmanager URL is needed")
        if len(set(urls)) != len(urls):
            raise AlertingError("duplicate Alertmanager URLs")
        for url in urls:
            if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                raise AlertingError(f"Alertmanager URL {redact_url(url)!r} is not http(s)")
        if resend_ttl <= timedelta(0):
            raise AlertingError("resend_ttl must be positive")
        if runbook_base_url is not None:
            try:
                check_runbook_base_url(runbook_base_url)
            except ValueError as exc:
                raise AlertingError(str(exc)) from None
        self.urls = urls
        self.state_path = Path(state_path) if state_path is not None else None
        self._state = StateFile(self.state_path) if self.state_path is not None else None
        self.resend_ttl = resend_ttl
        self.timeout_s = timeout_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.stop_timeout_s = stop_timeout_s
        self.runbook_base_url = runbook_base_url
        self.generator_url = generator_url
        self._clock = clock
        self._opener = build_opener(use_env_proxy)
        self._lock = threading.RLock()
        self._running = False
        self._targets: dict[str, Target] = {}
        self._firing: dict[str, Record] = {}
        self._resolving: dict[str, Resolving] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> AlertManagerClient:
        """Load the state file and start the senders. Idempotent.

        Raises :class:`AlertStateError` when the state file's directory cannot be created. A
        state file that cannot be parsed is moved aside (``.corrupt``) and the client starts
        empty: its alerts then expire in Alertmanager within ``resend_ttl``.
        """
        with self._lock:
            if self._running:
                return self
            if self._state is not None:  # without one, a start() after stop() keeps what the client knew
                self._firing, self._resolving = {}, {}  # emptied first: a load that raises leaves nothing stale
                self._firing, self._resolving = self._state.load(self.urls)
            settings = DeliverySettings(self._opener, self._clock, self.timeout_s, self.retry_initial_s, self.retry_max_s)
            self._targets = {url: Target(url, settings, on_done=self._done) for url in self.urls}
            now = self._clock()
            for key, res in list(self._resolving.items()):
                res.urls &= set(self.urls)
                if res.expires_at <= now or not res.urls:
                    del self._resolving[key]
                    continue
                entry = {key: Pending(res.record.payload(), res.expires_at, True)}
                for url in res.urls:
                    self._targets[url].enqueue(dict(entry))
            for target in self._targets.values():
                target.start()
            self._running = True
            return self

    def stop(self) -> None:
        """Try once more to deliver everything queued, then save the state. Safe twice.

        Firing alerts are deliberately *not* resolved: a restarted scheduler picks them up
        with the same ``startsAt``; if it stays down, Alertmanager expires them at ``endsAt``.
        """
        with self._lock:
            if not self._running:
                return
            self._running = False
            targets = list(self._targets.values())
        deadline = time.monotonic() + self.stop_timeout_s
        for target in targets:
            target.stop(deadline)
        for target in targets:
            target.join(deadline + 1.0)
        with self._lock:
            self._save()

    def __enter__(self) -> AlertManagerClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the one call a scheduler makes ----------------------------------------------------

    def sync(self, firing: Iterable[Alert], now: datetime | None = None) -> SyncResult:
        """Make the alerts in ``firing`` the set that fires now, as of ``now`` (default: the clock).

        Each alert in ``firing`` is queued for every Alertmanager with ``endsAt = now +
        resend_ttl``; each alert that fired at the previous sync and is absent now is queued as
        resolved (``endsAt = now``). Alerts with the same labels are one alert (the last wins).
        Returns at once; delivery happens on the sender threads. ``now`` should be the wall
        clock: Alertmanager compares ``endsAt`` with its own.

        Raises :class:`ClientNotStarted` outside ``start()`` .. ``stop()``.
        """
        now = now or self._clock()
        if now.tzinfo is None:
            raise AlertingError("sync(now=...) needs a timezone-aware datetime")
        with self._lock:
            if not self._running:
                raise ClientNotStarted("call start() before sync()")
            wanted: dict[str, Alert] = {}
            for alert in firing:
                wanted[alert.key] = alert
            ends_at = now + self.resend_ttl
            new_firing: dict[str, Record] = {}
            started: list[dict[str, str]] = []
            for key, alert in wanted.items():
                previous = self._firing.get(key)
                if previous is not None:
                    starts_at = previous.starts_at
                else:
                    starts_at = min(alert.starts_at or now, now)
                    started.append(alert.labels)
                annotations = dict(alert.annotations)
                annotations.setdefault("runbook_url", runbook_url(alert.name, self.runbook_base_url))
                new_firing[key] = Record(
                    labels=dict(alert.labels),
                    annotations=annotations,
                    starts_at=starts_at,
                    ends_at=ends_at,
                    generator_url=alert.generator_url or self.generator_url,
                )
                self._resolving.pop(key, None)  # fires again: the firing entry replaces the resolve
            resolved: dict[str, Resolving] = {}
            for key, record in self._firing.items():
                if key in new_firing:
                    continue
                done = Record(record.labels, record.annotations, record.starts_at, max(now, record.starts_at), record.generator_url)
                resolved[key] = Resolving(done, expires_at=record.ends_at, urls=set(self.urls))
            self._firing = new_firing
            self._resolving.update(resolved)
            self._save()
            entries = {key: Pending(rec.payload(), rec.ends_at, False) for key, rec in new_firing.items()}
            entries.update({key: Pending(res.record.payload(), res.expires_at, True) for key, res in resolved.items()})
            for target in self._targets.values():
                target.enqueue(dict(entries))
            if started or resolved:
                log.info(
                    "alerts: %d firing, %d new (%s), %d resolved (%s)",
                    len(new_firing),
                    len(started),
                    ", ".join(sorted({labels["alertname"] for labels in started})),
                    len(resolved),
                    ", ".join(sorted({res.record.labels["alertname"] for res in resolved.values()})),
                )
            return SyncResult(
                firing=len(new_firing),
                started=tuple(started),
                resolved=tuple(res.record.labels for res in resolved.values()),
            )

    # -- introspection ---------------------------------------------------------------------

    def firing(self) -> list[Alert]:
        """The alerts firing as of the last sync, with the ``starts_at`` the client keeps."""
        with self._lock:
            return [
                Alert(labels=r.labels, annotations=r.annotations, starts_at=r.starts_at, generator_url=r.generator_url)
                for r in self._firing.values()
            ]

    def stats(self) -> dict[str, Any]:
        """Counts for logs and metrics: firing, resolves in flight, and per-Alertmanager queues."""
        with self._lock:
            targets = list(self._targets.values())
            firing, resolving = len(self._firing), len(self._resolving)
        return {"firing": firing, "resolving": resolving, "alertmanagers": [t.snapshot() for t in targets]}

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for every queue to empty; True when all did (for tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                targets = list(self._targets.values())
            if all(t.idle() for t in targets):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    # -- direct API calls ------------------------------------------------------------------

    def alerts(
        self,
        url: str | None = None,
        *,
        active: bool = True,
        silenced: bool = True,
        inhibited: bool = True,
        unprocessed: bool = True,
        filters: Sequence[str] = (),
        receiver: str | None = None,
    ) -> list[dict[str, Any]]:
        """GET /api/v2/alerts of one Alertmanager (default: the first); ``filters`` are matchers
        such as ``'alertname="RouterwatchEscalationDrift"'``. Raises AlertmanagerUnavailable."""
        query: list[tuple[str, str]] = [
            ("active", str(active).lower()),
            ("silenced", str(silenced).lower()),
            ("inhibited", str(inhibited).lower()),
            ("unprocessed", str(unprocessed).lower()),
        ]
        query += [("filter", f) for f in filters]
        if receiver:
            query.append(("receiver", receiver))
        base, headers = split_auth(url or self.urls[0])
        return request(self._opener, "GET", base, "/api/v2/alerts?" + urllib.parse.urlencode(query), headers, None, self.timeout_s)

    def status(self, url: str | None = None) -> dict[str, Any]:
        """GET /api/v2/status of one Alertmanager (default: the first): version, cluster, config."""
        base, headers = split_auth(url or self.urls[0])
        return request(self._opener, "GET", base, "/api/v2/status", headers, None, self.timeout_s)

    # -- internals -------------------------------------------------------------------------

    def _done(self, url: str, keys: list[str]) -> None:
        """A target delivered (or gave up on) these resolves: forget them once every target has."""
        if not keys:
            return
        with self._lock:
            changed = False
            for key in keys:
                res = self._resolving.get(key)
                if res is not None and url in res.urls:
                    res.urls.discard(url)
                    changed = True
                    if not res.urls:
                        del self._resolving[key]
            if changed:
                self._save()

    def _save(self) -> None:
        """Persist the firing set and the resolves in flight (no-op without a state file); call under the lock."""
        if self._state is not None:
            self._state.save(self._firing, self._resolving)
