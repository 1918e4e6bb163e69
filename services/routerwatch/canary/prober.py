"""The canary prober inside ``routerwatch serve``: fires each canary on its schedule, once.

- **Schedule.** Each canary is due ``every_seconds`` after its last probe, plus a random
  jitter in ``[0, jitter_seconds]`` so probes do not arrive at the router in lock-step. One
  APScheduler job ticks every second and fires what is due; probes run concurrently up to
  ``concurrency``, each bounded by its canary's ``timeout_seconds``.
- **One prober.** Only the holder of the Kafka lease (:class:`~routerwatch.scheduler.lease.KafkaLease`)
  fires; other ``serve`` processes stand by and take over when the holder stops or dies.
- **Restarts.** The last probe time of every canary is written to a state file after each
  probe and also read back from ``canary_results`` in ClickHouse when the lease is gained; the
  later of the two wins. A restarted or newly elected prober therefore continues the schedule
  where it stopped: no burst of probes on restart, no canary skipped.
- **Results.** Every probe becomes one CanaryResult sent through the SDK to Kafka, and from
  there through ingest into ``canary_results`` like any other event.

``start(loop)`` / ``stop()`` follow the component contract (stop is safe without start and
twice; it waits for probes in flight and flushes the SDK).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from routerwatch import metrics
from routerwatch.canary.config import Canary, CanaryConfigError, CanarySet, load_canary_set
from routerwatch.canary.probe import ProbeSettings, probe
from routerwatch.sdk.recorder import iso_ms  # the contract's UTC millisecond text, as the SDK writes it

log = logging.getLogger("routerwatch.canary")

STATE_VERSION = 1


@dataclass(frozen=True)
class Target:
    """One canary of one set, with the URL it is sent to."""

    router_id: str
    canary: Canary
    url: str

    @property
    def key(self) -> str:
        return f"{self.router_id}/{self.canary.id}"


def load_targets(files: list[Path], router_url: str | None) -> list[Target]:
    """Every canary of every file, each with its router URL; errors name the file."""
    targets: list[Target] = []
    seen: dict[str, Path] = {}
    for path in files:
        canary_set: CanarySet = load_canary_set(Path(path))
        url = router_url or canary_set.endpoint
        if not url:
            raise CanaryConfigError(
                f"{path}: no router URL: set `endpoint` in the file or ROUTERWATCH_CANARY__ROUTER_URL"
            )
        for canary in canary_set.canaries:
            target = Target(canary_set.router_id, canary, url)
            if target.key in seen:
                raise CanaryConfigError(f"{path}: canary {canary.id!r} of router {canary_set.router_id} is also in {seen[target.key]}")
            seen[target.key] = Path(path)
            targets.append(target)
    return targets


def result_kind(result: dict[str, Any]) -> str:
    """passed, failed_check, tier_flip or no_answer: the metric label of one probe's result."""
    if result.get("error"):
        return "no_answer"
    if result.get("observed_tier") != result.get("expected_tier"):
        return "tier_flip"
    return "passed" if result.get("answer_passed") else "failed_check"


class CanaryProber:
    """Fires the canaries of ``settings.canary.files`` while holding the lease.

    ``emit(result)`` sends one CanaryResult dict (by default through the SDK to the canary
    topic); ``store`` (optional) answers the RoutingDecision join and the last-probe times.
    """

    def __init__(self, settings: Any, store: Any = None, *, emit: Any = None, use_lease: bool = True) -> None:
        self.settings = settings
        self.cfg = settings.canary
        self.store = store
        self.targets = load_targets(list(self.cfg.files), self.cfg.router_url)
        self._given_emit = emit
        self._emit = emit
        self._sdk: Any = None
        self.use_lease = use_lease
        self.lease: Any = None
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self.next_due: dict[str, float] = {}
        self.last_fired: dict[str, float] = {}
        self._ready = not use_lease
        self._scheduler: Any = None
        self._session: Any = None
        self._semaphore: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.fired = 0

    # -- lifecycle -----------------------------------------------------------------

    async def start(self, schedule: bool = True) -> CanaryProber:
        """Join the lease group and start the dispatch job on the running loop.

        ``schedule=False`` only opens the HTTP session and the emitter, for :meth:`run_all_once`.
        """
        if self._scheduler is not None or self._session is not None:
            return self
        import aiohttp
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self._loop = asyncio.get_running_loop()
        self._semaphore = asyncio.Semaphore(self.cfg.concurrency)
        self._session = aiohttp.ClientSession()
        self._emit = self._given_emit
        if self._emit is None:
            from routerwatch.kafka_client import sdk_options
            from routerwatch.sdk import RouterWatch, SdkConfig

            self._sdk = RouterWatch(
                SdkConfig(
                    **sdk_options(self.settings),
                    router_id="routerwatch-canary",
                    canary_topic=self.settings.topics.canary,
                    strict=True,  # a malformed result is a bug here: fail loudly, not into the DLQ
                )
            ).start()
            self._emit = self._sdk.canary_result
        if not schedule:
            return self
        if not self.use_lease:
            await self._resume()
        # APScheduler logs every run at INFO: with jobs every second that drowns the service log.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        self._scheduler = AsyncIOScheduler(event_loop=self._loop, timezone="UTC")
        self._scheduler.add_job(
            self.dispatch, "interval", seconds=1.0, max_instances=1, coalesce=True, id="canary-dispatch"
        )
        self._scheduler.start()
        if self.use_lease:
            from routerwatch.kafka_client import settings_kwargs
            from routerwatch.scheduler.lease import KafkaLease

            self.lease = KafkaLease(
                self.settings.kafka_bootstrap,
                self.cfg.lease_topic,
                self.cfg.lease_group,
                session_timeout_s=self.cfg.lease_session_timeout_s,
                on_change=self._lease_changed,
                security=settings_kwargs(self.settings.kafka_security),
            )
            await self.lease.start()
        log.info(
            "canary prober: %d canaries of %d router(s); instance %s",
            len(self.targets),
            len({t.router_id for t in self.targets}),
            self.instance,
        )
        return self

    async def stop(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        if self.lease is not None:
            await self.lease.stop()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=30)
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        sdk, self._sdk = self._sdk, None
        if sdk is not None:
            await sdk.aclose()
        self._save_state()

    # -- scheduling ----------------------------------------------------------------

    def _lease_changed(self, held: bool) -> None:
        metrics.CANARY_LEASE_HELD.set(1 if held else 0)
        self._ready = False
        if held and self._loop is not None:
            # Read where the schedule stands before firing anything: the previous holder may
            # have probed seconds ago.
            task = self._loop.create_task(self._resume())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _resume(self) -> None:
        if self.store is not None and self.use_lease:
            await self._wait_ingest_caught_up()
        last = self._load_state()
        for key, ts in (await self._stored_last_probes()).items():
            last[key] = max(ts, last.get(key, 0.0))
        now = time.time()
        for target in self.targets:
            schedule = target.canary.schedule
            previous = last.get(target.key)
            if previous is None:
                self.next_due[target.key] = now + random.uniform(0, schedule.jitter_seconds)
            else:
                self.last_fired[target.key] = previous
                self.next_due[target.key] = max(now, previous + schedule.every_seconds)
        self._ready = True
        log.info("canary schedule resumed for %d canaries (%d seen before)", len(self.targets), len(last))

    async def _wait_ingest_caught_up(self, timeout_s: float = 30.0) -> None:
        """Let ingest store every canary result already on Kafka: the previous holder's last
        probes must be in ClickHouse before the schedule is read back from it."""
        from routerwatch.ingest.lag import wait_caught_up

        topic = self.settings.topics.canary
        try:
            lag = (await wait_caught_up(self.settings, timeout_s, topics=[topic])).get(topic, 0)
        except Exception as exc:  # noqa: BLE001 - fall back on what is stored
            log.warning("could not measure the canary topic's lag: %s", exc)
            return
        if lag:
            log.warning("ingest still %d canary results behind after %.0fs; resuming the schedule anyway", lag, timeout_s)

    async def dispatch(self) -> list[asyncio.Task[Any]]:
        """The every-second job: fire the canaries that are due. Returns the probe tasks started."""
        if not self._ready or (self.lease is not None and not self.lease.held):
            return []
        now = time.time()
        due = [t for t in self.targets if self.next_due.get(t.key, now) <= now]
        if not due:
            return []
        run_id = f"{self.instance}@{int(now * 1000)}"
        started = []
        for target in due:
            schedule = target.canary.schedule
            self.next_due[target.key] = now + schedule.every_seconds + random.uniform(0, schedule.jitter_seconds)
            self.last_fired[target.key] = now
            task = asyncio.create_task(self._probe(target, run_id, now))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started.append(task)
        self._save_state()
        return started

    async def run_all_once(self) -> list[dict[str, Any]]:
        """Probe every canary once now, regardless of schedule and lease (``routerwatch canary run``)."""
        now = time.time()
        run_id = f"{self.instance}@{int(now * 1000)}"
        return list(await asyncio.gather(*(self._probe(t, run_id, now) for t in self.targets)))

    async def _probe(self, target: Target, run_id: str, fired_at: float) -> dict[str, Any]:
        assert self._semaphore is not None and self._session is not None
        async with self._semaphore:
            result = await probe(
                self._session,
                target.canary,
                router_id=target.router_id,
                settings=ProbeSettings(
                    url=target.url,
                    tier_header=self.cfg.tier_header,
                    tier_field=self.cfg.tier_field,
                    decision_wait_s=self.cfg.decision_wait_s,
                ),
                run_id=run_id,
                lookup=self._lookup_decision if self.store is not None else None,
            )
        # occurred_at is when the probe was sent: the schedule and the N-of-M order use it.
        result["occurred_at"] = iso_ms(fired_at)
        kind = result_kind(result)
        metrics.CANARY_PROBES.labels(target.router_id, target.canary.id, kind).inc()
        metrics.CANARY_LAST_PROBE.labels(target.router_id, target.canary.id).set(fired_at)
        self.fired += 1
        if kind != "passed":
            log.info("canary %s: %s %s", target.key, kind, result.get("error") or result.get("check_detail") or result.get("observed_tier"))
        try:
            self._emit(result)
        except Exception:  # one bad result must not stop the schedule
            log.exception("canary %s: could not emit its result", target.key)
        return result

    async def _lookup_decision(self, canary_id: str, request_id: str) -> str | None:
        sql = (
            "SELECT final_tier FROM decisions WHERE canary_id = {c:String} AND request_id = {r:String} "
            "AND served LIMIT 1"
        )
        try:
            rows = (await asyncio.to_thread(self.store.query, sql, {"c": canary_id, "r": request_id}, readonly=True)).rows
        except Exception as exc:  # noqa: BLE001 - the join is best effort; the probe records why it failed
            log.warning("canary %s: decision lookup failed: %s", canary_id, exc)
            return None
        return rows[0][0] if rows and rows[0][0] else None

    async def _stored_last_probes(self) -> dict[str, float]:
        if self.store is None:
            return {}
        sql = (
            "SELECT router_id, canary_id, toFloat64(max(occurred_at)) FROM canary_results "
            "WHERE occurred_at > now() - INTERVAL 7 DAY GROUP BY router_id, canary_id"
        )
        try:
            rows = (await asyncio.to_thread(self.store.query, sql, None, readonly=True)).rows
        except Exception as exc:  # noqa: BLE001 - fall back on the state file
            log.warning("could not read the last probe times from ClickHouse: %s", exc)
            return {}
        return {f"{router}/{canary}": float(ts) for router, canary, ts in rows}

    # -- state file ------------------------------------------------------------------

    def _load_state(self) -> dict[str, float]:
        """Last probe time per canary key from the state file; anything unreadable is ignored
        (with a warning): the store's ``canary_results`` still tells where the schedule stands."""
        path = Path(self.cfg.state_file)
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise ValueError(f"not a JSON object but {type(data).__name__}")
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"of version {data.get('version')!r}, expected {STATE_VERSION}")
            return {str(k): float(v) for k, v in data["last_probe"].items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, AttributeError, KeyError) as exc:
            log.warning("ignoring unreadable canary state file %s: %s", path, exc)
            return {}

    def _save_state(self) -> None:
        if not self.last_fired:
            return
        path = Path(self.cfg.state_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"version": STATE_VERSION, "last_probe": self.last_fired}, sort_keys=True)
        # Atomic replace: a crash mid-write leaves the previous state, never half a file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("could not save the canary state file %s: %s", path, exc)
            Path(tmp).unlink(missing_ok=True)

