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

An alert's identity is its label set (Alertmanager fingerprints alerts by labels), so keep
figures out of labels. Usage from a scheduler job::

    client = AlertManagerClient(["http://127.0.0.1:9093"], state_path=".run/alerting.json").start()
    scheduler.add_job(lambda: client.sync(detect_all(), datetime.now(timezone.utc)), "interval", minutes=1)
    ...
    client.stop()   # delivers pending resolves once more, saves the state
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import random
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from routerwatch.alerting.errors import (
    AlertingError,
    AlertmanagerUnavailable,
    AlertRejected,
    AlertStateError,
    ClientNotStarted,
)
from routerwatch.alerting.models import Alert, format_time, label_key, parse_time
from routerwatch.alerting.runbooks import check_runbook_base_url, runbook_url

log = logging.getLogger("routerwatch.alerting")

STATE_VERSION = 1
_MAX_BATCH = 500  # alerts per POST; Alertmanager has no hard limit, this keeps bodies small


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class _Record:
    """One alert the client knows: its labels, last annotations and times."""

    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime  # the endsAt last sent (firing) or the resolve time
    generator_url: str | None = None

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": format_time(self.starts_at),
            "endsAt": format_time(self.ends_at),
        }
        if self.generator_url:
            body["generatorURL"] = self.generator_url
        return body

    def to_json(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "annotations": self.annotations,
            "starts_at": format_time(self.starts_at),
            "ends_at": format_time(self.ends_at),
            "generator_url": self.generator_url,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Record:
        return cls(
            labels={str(k): str(v) for k, v in data["labels"].items()},
            annotations={str(k): str(v) for k, v in data.get("annotations", {}).items()},
            starts_at=parse_time(data["starts_at"]),
            ends_at=parse_time(data["ends_at"]),
            generator_url=data.get("generator_url"),
        )


@dataclass
class _Resolving:
    """A resolve not yet delivered everywhere: kept (and persisted) until delivered or pointless."""

    record: _Record  # ends_at = the resolve time
    expires_at: datetime  # the endsAt last sent while firing: Alertmanager resolves it by then
    urls: set[str]


@dataclass
class _Pending:
    payload: dict[str, Any]
    expires_at: datetime
    resolve: bool


@dataclass(frozen=True)
class SyncResult:
    """What one :meth:`AlertManagerClient.sync` changed."""

    firing: int
    started: tuple[dict[str, str], ...] = ()
    resolved: tuple[dict[str, str], ...] = ()


@dataclass
class TargetStats:
    url: str
    pending: int = 0
    sent: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    rejected: int = 0
    expired: int = 0
    retry_in_s: float = 0.0
    last_error: str = ""


def _redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _split_auth(url: str) -> tuple[str, dict[str, str]]:
    """Move ``user:password@`` out of the URL into a basic Authorization header."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url.rstrip("/"), {}
    token = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
    header = {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}
    return _redact(url).rstrip("/"), header


class _Target:
    """One Alertmanager: a queue holding the newest entry per alert, and a sender thread."""

    def __init__(self, client: AlertManagerClient, url: str) -> None:
        self.client = client
        self.url = url  # as configured (may carry credentials): the identity in the state file
        self.base, self.headers = _split_auth(url)
        self.name = _redact(url)
        self.pending: dict[str, _Pending] = {}
        self.stats = TargetStats(url=self.name)
        self._cond = threading.Condition()
        self._next_try = 0.0  # time.monotonic() before which nothing is sent (back-off)
        self._stopping = False
        self._deadline = 0.0
        self._thread: threading.Thread | None = None

    # -- called by the client --------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"alertmanager-sender {self.name}", daemon=True)
        self._thread.start()

    def enqueue(self, entries: dict[str, _Pending]) -> None:
        if not entries:
            return
        with self._cond:
            self.pending.update(entries)
            self._cond.notify()

    def stop(self, deadline: float) -> None:
        with self._cond:
            self._stopping = True
            self._deadline = deadline
            self._cond.notify()

    def join(self, deadline: float) -> None:
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
            if self._thread.is_alive():
                log.warning("alertmanager %s: sender still busy at stop; pending resolves stay in the state", self.name)
            self._thread = None

    def idle(self) -> bool:
        with self._cond:
            return not self.pending

    def snapshot(self) -> TargetStats:
        with self._cond:
            self.stats.pending = len(self.pending)
            self.stats.retry_in_s = max(0.0, self._next_try - time.monotonic()) if self.pending else 0.0
            return TargetStats(**vars(self.stats))

    # -- sender thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    wait = self._next_try - time.monotonic()
                    if self.pending and wait <= 0:
                        break
                    self._cond.wait(wait if self.pending else None)
                batch = dict(self.pending)
                final = self._stopping
            try:
                if final:
                    # stop(): one last attempt, back-off ignored, so resolves are not left behind.
                    if batch and time.monotonic() < self._deadline:
                        self._deliver(batch, timeout=min(self.client.timeout_s, self._deadline - time.monotonic()))
                    return
                self._deliver(batch, timeout=self.client.timeout_s)
            except Exception as exc:  # noqa: BLE001 - the sender thread must outlive any bug
                log.exception("alertmanager %s: unexpected error while sending", self.name)
                self._failed(exc)

    def _forget(self, entries: dict[str, _Pending]) -> None:
        """Remove entries from the queue unless a newer one replaced them meanwhile."""
        with self._cond:
            for key, entry in entries.items():
                if self.pending.get(key) is entry:
                    del self.pending[key]

    def _deliver(self, batch: dict[str, _Pending], timeout: float) -> None:
        now = self.client._clock()
        expired = {k: p for k, p in batch.items() if p.expires_at <= now}
        live = {k: p for k, p in batch.items() if p.expires_at > now}
        if expired:
            self._forget(expired)
            with self._cond:
                self.stats.expired += len(expired)
            self.client._done(self.url, [k for k, p in expired.items() if p.resolve])
        items = list(live.items())
        for start in range(0, len(items), _MAX_BATCH):
            chunk = dict(items[start : start + _MAX_BATCH])
            try:
                self._post(chunk, timeout)
            except AlertmanagerUnavailable as exc:
                self._failed(exc)
                return
        if live:
            self._recovered()

    def _post(self, chunk: dict[str, _Pending], timeout: float) -> None:
        try:
            self.client._request("POST", self.base, "/api/v2/alerts", self.headers, [p.payload for p in chunk.values()], timeout)
        except AlertRejected as exc:
            if len(chunk) == 1:
                # Alert validates its labels, so this is a bug or a version mismatch: say so, drop it.
                log.error("alertmanager %s rejected alert %s: %s", self.name, next(iter(chunk.values())).payload["labels"], exc)
                with self._cond:
                    self.stats.rejected += 1
                self._forget(chunk)
                self.client._done(self.url, [k for k, p in chunk.items() if p.resolve])
                return
            # One bad alert must not hold back the others: send them one by one.
            for key, entry in chunk.items():
                self._post({key: entry}, timeout)
            return
        with self._cond:
            self.stats.sent += len(chunk)
        self._forget(chunk)
        self.client._done(self.url, [k for k, p in chunk.items() if p.resolve])

    def _failed(self, exc: Exception) -> None:
        with self._cond:
            self.stats.failures += 1
            self.stats.consecutive_failures += 1
            self.stats.last_error = str(exc)
            n = self.stats.consecutive_failures
            delay = min(self.client.retry_max_s, self.client.retry_initial_s * 2.0 ** min(n - 1, 32))
            delay *= random.uniform(0.8, 1.2)  # jitter, so several clients do not retry in step
            self._next_try = time.monotonic() + delay
        if n == 1:
            log.warning("alertmanager %s unavailable (%s); retrying with back-off", self.name, exc)
        else:
            log.debug("alertmanager %s still unavailable after %d attempts: %s", self.name, n, exc)

    def _recovered(self) -> None:
        with self._cond:
            if self.stats.consecutive_failures:
                log.info("alertmanager %s reachable again after %d failed attempts", self.name, self.stats.consecutive_failures)
            self.stats.consecutive_failures = 0
            self._next_try = 0.0


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
                raise AlertingError(f"Alertmanager URL {_redact(url)!r} is not http(s)")
        if resend_ttl <= timedelta(0):
            raise AlertingError("resend_ttl must be positive")
        if runbook_base_url is not None:
            try:
                check_runbook_base_url(runbook_base_url)
            except ValueError as exc:
                raise AlertingError(str(exc)) from None
        self.urls = urls
        self.state_path = Path(state_path) if state_path is not None else None
        self.resend_ttl = resend_ttl
        self.timeout_s = timeout_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.stop_timeout_s = stop_timeout_s
        self.runbook_base_url = runbook_base_url
        self.generator_url = generator_url
        self._clock = clock
        handlers: list[Any] = [] if use_env_proxy else [urllib.request.ProxyHandler({})]
        self._opener = urllib.request.build_opener(*handlers)
        self._lock = threading.RLock()
        self._running = False
        self._targets: dict[str, _Target] = {}
        self._firing: dict[str, _Record] = {}
        self._resolving: dict[str, _Resolving] = {}

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
            self._load()
            self._targets = {url: _Target(self, url) for url in self.urls}
            now = self._clock()
            for key, res in list(self._resolving.items()):
                res.urls &= set(self.urls)
                if res.expires_at <= now or not res.urls:
                    del self._resolving[key]
                    continue
                entry = {key: _Pending(res.record.payload(), res.expires_at, True)}
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
            new_firing: dict[str, _Record] = {}
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
                new_firing[key] = _Record(
                    labels=dict(alert.labels),
                    annotations=annotations,
                    starts_at=starts_at,
                    ends_at=ends_at,
                    generator_url=alert.generator_url or self.generator_url,
                )
                self._resolving.pop(key, None)  # fires again: the firing entry replaces the resolve
            resolved: dict[str, _Resolving] = {}
            for key, record in self._firing.items():
                if key in new_firing:
                    continue
                done = _Record(record.labels, record.annotations, record.starts_at, max(now, record.starts_at), record.generator_url)
                resolved[key] = _Resolving(done, expires_at=record.ends_at, urls=set(self.urls))
            self._firing = new_firing
            self._resolving.update(resolved)
            self._save()
            entries = {key: _Pending(rec.payload(), rec.ends_at, False) for key, rec in new_firing.items()}
            entries.update({key: _Pending(res.record.payload(), res.expires_at, True) for key, res in resolved.items()})
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
        base, headers = _split_auth(url or self.urls[0])
        return self._request("GET", base, "/api/v2/alerts?" + urllib.parse.urlencode(query), headers, None, self.timeout_s)

    def status(self, url: str | None = None) -> dict[str, Any]:
        """GET /api/v2/status of one Alertmanager (default: the first): version, cluster, config."""
        base, headers = _split_auth(url or self.urls[0])
        return self._request("GET", base, "/api/v2/status", headers, None, self.timeout_s)

    # -- internals -------------------------------------------------------------------------

    def _request(self, method: str, base: str, path: str, headers: dict[str, str], body: Any, timeout: float) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "routerwatch-alerting", **headers},
        )
        try:
            with self._opener.open(request, timeout=max(timeout, 0.1)) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode(errors="replace").strip()
            message = f"{method} {_redact(base)}{path.split('?')[0]}: HTTP {exc.code} {detail}".rstrip()
            if exc.code in (400, 422):
                # The payload itself is refused: sending it again cannot succeed.
                raise AlertRejected(message) from exc
            # 5xx and 429, but also 401/403/404: credentials or a route prefix can be fixed
            # while the alerts wait in the queue, so keep them and retry.
            raise AlertmanagerUnavailable(message) from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise AlertmanagerUnavailable(f"{method} {_redact(base)}{path.split('?')[0]}: {reason}") from exc
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise AlertmanagerUnavailable(f"{method} {_redact(base)}{path}: not JSON: {raw[:200]!r}") from exc

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

    def _load(self) -> None:
        if self.state_path is None:
            return  # in memory only: a start() after stop() keeps what the client knew
        self._firing, self._resolving = {}, {}
        by_name = {_redact(url): url for url in self.urls}
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AlertStateError(f"cannot create the directory of the alerting state {self.state_path}: {exc}") from exc
        if not self.state_path.exists():
            return
        try:
            data = json.loads(self.state_path.read_text())
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"state version {data.get('version')!r}, expected {STATE_VERSION}")
            for item in data.get("firing", []):
                record = _Record.from_json(item)
                self._firing[label_key(record.labels)] = record
            for item in data.get("resolving", []):
                record = _Record.from_json(item)
                self._resolving[label_key(record.labels)] = _Resolving(
                    record, expires_at=parse_time(item["expires_at"]), urls={by_name[u] for u in item.get("urls", []) if u in by_name}
                )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            aside = self.state_path.with_name(self.state_path.name + ".corrupt")
            log.error("alerting state %s unreadable (%s); moved to %s, starting empty", self.state_path, exc, aside)
            self._firing, self._resolving = {}, {}
            try:
                os.replace(self.state_path, aside)
            except OSError:
                pass

    def _save(self) -> None:
        """Write the state atomically (temp file, fsync, rename): a crash leaves old or new, never half."""
        if self.state_path is None:
            return
        data = {
            "version": STATE_VERSION,
            "firing": [r.to_json() for r in self._firing.values()],
            "resolving": [
                # URLs without credentials: the state file is not a secret store.
                {**res.record.to_json(), "expires_at": format_time(res.expires_at), "urls": sorted(_redact(u) for u in res.urls)}
                for res in self._resolving.values()
            ],
        }
        try:
            fd, tmp = tempfile.mkstemp(prefix=self.state_path.name + ".", suffix=".tmp", dir=self.state_path.parent)
            try:
                with os.fdopen(fd, "w") as fh:
                    json.dump(data, fh, indent=1, sort_keys=True)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.state_path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError as exc:
            # Alerting must go on: the cost of a lost state is at worst a re-page after a restart.
            log.error("cannot write the alerting state %s: %s", self.state_path, exc)
