"""Delivery to one Alertmanager: a queue holding the newest entry per alert, and a sender thread.

Each configured Alertmanager gets its own :class:`Target`, so one that is down delays nothing
else. A target sends what is queued in batches of at most 500 alerts; when the Alertmanager is
unreachable it retries with exponential back-off (``retry_initial_s`` doubling up to
``retry_max_s``, with jitter), and it drops an entry once sending it is pointless (its
``expires_at`` has passed: Alertmanager has expired or resolved the alert on its own). A batch
that Alertmanager rejects is sent again one alert at a time, so one bad alert does not hold
back the others; an alert rejected alone is logged and dropped.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from routerwatch.alerting.api import redact_url, request, split_auth
from routerwatch.alerting.errors import AlertmanagerUnavailable, AlertRejected

log = logging.getLogger("routerwatch.alerting")

_MAX_BATCH = 500  # alerts per POST; Alertmanager has no hard limit, this keeps bodies small


@dataclass
class Pending:
    """One queued send: the alert's payload, and when sending it becomes pointless."""

    payload: dict[str, Any]  # as POST /api/v2/alerts takes it
    expires_at: datetime  # a firing entry's endsAt; for a resolve, the endsAt last sent while firing
    resolve: bool  # reported to ``on_done`` once delivered, rejected or expired


@dataclass
class TargetStats:
    """One Alertmanager's queue and delivery counts (its URL without credentials)."""

    url: str
    pending: int = 0
    sent: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    rejected: int = 0
    expired: int = 0
    retry_in_s: float = 0.0
    last_error: str = ""


@dataclass(frozen=True)
class DeliverySettings:
    """How every :class:`Target` sends: the opener of :func:`~routerwatch.alerting.api.request`,
    the wall clock entries expire by, the timeout of each request and the back-off bounds."""

    opener: urllib.request.OpenerDirector
    clock: Callable[[], datetime]
    timeout_s: float
    retry_initial_s: float
    retry_max_s: float

    def retry_delay(self, consecutive_failures: int) -> float:
        """Seconds to wait after that many failures in a row: doubling from ``retry_initial_s``
        up to ``retry_max_s``, then ±20 % jitter so several clients do not retry in step."""
        delay = min(self.retry_max_s, self.retry_initial_s * 2.0 ** min(consecutive_failures - 1, 32))
        return delay * random.uniform(0.8, 1.2)


class Target:
    """One Alertmanager at ``url`` (as configured, may carry credentials) and its sender thread.

    ``on_done(url, keys)`` is called, from the sender thread, with the keys of resolve entries
    that are finished with here: delivered, rejected or expired (not with those replaced in the
    queue before that).
    """

    def __init__(self, url: str, settings: DeliverySettings, on_done: Callable[[str, list[str]], None]) -> None:
        self.url = url  # as configured (may carry credentials): the identity in the state file
        self.base, self.headers = split_auth(url)
        self.name = redact_url(url)
        self.pending: dict[str, Pending] = {}
        self.stats = TargetStats(url=self.name)
        self._settings = settings
        self._on_done = on_done
        self._cond = threading.Condition()
        self._next_try = 0.0  # time.monotonic() before which nothing is sent (back-off)
        self._stopping = False
        self._deadline = 0.0
        self._thread: threading.Thread | None = None

    # -- called by the client --------------------------------------------------------------

    def start(self) -> None:
        """Start the sender thread (a daemon)."""
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"alertmanager-sender {self.name}", daemon=True)
        self._thread.start()

    def enqueue(self, entries: dict[str, Pending]) -> None:
        """Queue ``entries`` (keyed by alert), each replacing any entry queued for the same alert."""
        if not entries:
            return
        with self._cond:
            self.pending.update(entries)
            self._cond.notify()

    def stop(self, deadline: float) -> None:
        """Have the sender make one last attempt, back-off ignored, before ``deadline`` (time.monotonic()), then end."""
        with self._cond:
            self._stopping = True
            self._deadline = deadline
            self._cond.notify()

    def join(self, deadline: float) -> None:
        """Wait until ``deadline`` (time.monotonic()) for the sender to end; a warning if it has not."""
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
            if self._thread.is_alive():
                log.warning("alertmanager %s: sender still busy at stop; pending resolves stay in the state", self.name)
            self._thread = None

    def idle(self) -> bool:
        """True when nothing is queued."""
        with self._cond:
            return not self.pending

    def snapshot(self) -> TargetStats:
        """A copy of the counts as of now."""
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
                        self._deliver(batch, timeout=min(self._settings.timeout_s, self._deadline - time.monotonic()))
                    return
                self._deliver(batch, timeout=self._settings.timeout_s)
            except Exception as exc:  # the sender thread must outlive any bug (logged with its traceback)
                log.exception("alertmanager %s: unexpected error while sending", self.name)
                self._failed(exc)

    def _forget(self, entries: dict[str, Pending]) -> None:
        """Remove entries from the queue unless a newer one replaced them meanwhile."""
        with self._cond:
            for key, entry in entries.items():
                if self.pending.get(key) is entry:
                    del self.pending[key]

    def _deliver(self, batch: dict[str, Pending], timeout: float) -> None:
        now = self._settings.clock()
        expired = {k: p for k, p in batch.items() if p.expires_at <= now}
        live = {k: p for k, p in batch.items() if p.expires_at > now}
        if expired:
            self._forget(expired)
            with self._cond:
                self.stats.expired += len(expired)
            self._on_done(self.url, [k for k, p in expired.items() if p.resolve])
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

    def _post(self, chunk: dict[str, Pending], timeout: float) -> None:
        try:
            request(self._settings.opener, "POST", self.base, "/api/v2/alerts", self.headers, [p.payload for p in chunk.values()], timeout)
        except AlertRejected as exc:
            if len(chunk) == 1:
                # Alert validates its labels, so this is a bug or a version mismatch: say so, drop it.
                log.error("alertmanager %s rejected alert %s: %s", self.name, next(iter(chunk.values())).payload["labels"], exc)
                with self._cond:
                    self.stats.rejected += 1
                self._forget(chunk)
                self._on_done(self.url, [k for k, p in chunk.items() if p.resolve])
                return
            # One bad alert must not hold back the others: send them one by one.
            for key, entry in chunk.items():
                self._post({key: entry}, timeout)
            return
        with self._cond:
            self.stats.sent += len(chunk)
        self._forget(chunk)
        self._on_done(self.url, [k for k, p in chunk.items() if p.resolve])

    def _failed(self, exc: Exception) -> None:
        with self._cond:
            self.stats.failures += 1
            self.stats.consecutive_failures += 1
            self.stats.last_error = str(exc)
            n = self.stats.consecutive_failures
            self._next_try = time.monotonic() + self._settings.retry_delay(n)
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
