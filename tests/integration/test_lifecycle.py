"""Every component's start()/stop() contract: stop is safe without start and safe twice, start is
idempotent, and stop flushes (what was handed to the component is out when stop returns).

Components with async start()/stop() (the lease, the canary prober) and sync ones (store, SDK)
run through the same test; each case says how to build the component, what to do with it while
it runs, and what "flushed" means for it once stopped.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from servicekit import create_topics, free_port

from routerwatch.canary.prober import CanaryProber
from routerwatch.config import CanarySettings, TopicSettings, load_settings
from routerwatch.events.validation import EVENT_TYPES, decode
from routerwatch.scheduler.lease import KafkaLease
from routerwatch.sdk import RouterWatch
from routerwatch.storage.client import Store

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# The prober's canaries: one at a closed port (refused at once), one at a socket that accepts
# and never answers (in flight until its timeout), so stop() has a probe to wait for.
SILENT_TIMEOUT_S = 3
CANARY_SET = """\
version: "lifecycle-1"
router_id: {router}
endpoint: {url}
canaries:
  - id: ping
    request: {{model: auto, messages: [{{role: user, content: "Say hello in one word."}}]}}
    expected_tier: small
    check: {{kind: regex, pattern: "(?i)hello"}}
    schedule: {{every_seconds: 60, jitter_seconds: 0, timeout_seconds: {timeout}}}
"""


@dataclass
class Ctx:
    """What the cases share within one test: fresh topics and group, the temp dir, the broker."""

    tmp_path: Path
    kafka: str
    names: dict[str, str]
    chdb_path: Path
    silent_url: str
    lease_changes: list[bool] = field(default_factory=list)

    @property
    def lease_topic(self) -> str:
        return f"{self.names['decisions']}.lease"

    @property
    def lease_group(self) -> str:
        return f"{self.names['group']}-lease"


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Ctx], Any]
    use: Callable[[Any, Ctx], Awaitable[None]] | None = None
    flushed: Callable[[Any, Ctx], Awaitable[None]] | None = None


async def call(method: Callable[[], Any]) -> Any:
    """``start``/``stop`` of either kind: await it when it is a coroutine."""
    result = method()
    return await result if inspect.isawaitable(result) else result


# -- store -------------------------------------------------------------------------------------


def make_store(ctx: Ctx) -> Store:
    return Store(f"chdb://{ctx.chdb_path}", "lifecycle")


async def use_store(store: Store, ctx: Ctx) -> None:
    assert store.query("SELECT 1").rows == [(1,)]


# -- SDK ---------------------------------------------------------------------------------------


def make_sdk(ctx: Ctx) -> RouterWatch:
    return RouterWatch(bootstrap_servers=ctx.kafka, router_id="lifecycle", close_timeout_s=10)


async def use_sdk(sdk: RouterWatch, ctx: Ctx) -> None:
    for n in range(3):
        sdk.emit_raw(ctx.names["feedback"], f"lifecycle-{n}".encode())


async def sdk_flushed(sdk: RouterWatch, ctx: Ctx) -> None:
    stats = sdk.stats()
    assert (stats["sent"], stats["dropped"], stats["queued"], stats["in_flight"]) == (3, 0, 0, 0), stats


# -- Kafka lease -------------------------------------------------------------------------------


def make_lease(ctx: Ctx) -> KafkaLease:
    return KafkaLease(
        ctx.kafka, ctx.lease_topic, ctx.lease_group, session_timeout_s=6, on_change=ctx.lease_changes.append
    )


async def use_lease(lease: KafkaLease, ctx: Ctx) -> None:
    assert await lease.wait_held(30), "the only member never got the lease"
    assert ctx.lease_changes == [True]
    assert await group_members(ctx.kafka, ctx.lease_group) == 1


async def lease_flushed(lease: KafkaLease, ctx: Ctx) -> None:
    # Released, told, and out of the group at once (not after the session timeout): the next
    # member gets the lease without waiting for this one to be declared dead.
    assert not lease.held
    assert ctx.lease_changes == [True, False]
    assert await group_members(ctx.kafka, ctx.lease_group) == 0


# -- canary prober -----------------------------------------------------------------------------


def make_prober(ctx: Ctx) -> CanaryProber:
    closed = ctx.tmp_path / "closed.yml"
    closed_url = f"http://127.0.0.1:{free_port()}/v1/chat/completions"
    closed.write_text(CANARY_SET.format(router="lc-closed", url=closed_url, timeout=2))
    silent = ctx.tmp_path / "silent.yml"
    silent.write_text(CANARY_SET.format(router="lc-silent", url=ctx.silent_url, timeout=SILENT_TIMEOUT_S))
    settings = load_settings(
        kafka_bootstrap=ctx.kafka,
        topics=TopicSettings(canary=ctx.names["canary"]),
        canary=CanarySettings(
            files=[closed, silent],
            state_file=ctx.tmp_path / "canary-schedule.json",
            lease_topic=ctx.lease_topic,
            lease_group=ctx.lease_group,
            lease_session_timeout_s=6,
        ),
    )
    return CanaryProber(settings, None, use_lease=True)  # results through the SDK to Kafka


async def use_prober(prober: CanaryProber, ctx: Ctx) -> None:
    assert await prober.lease.wait_held(30), "the prober never got the lease"
    # Both canaries fire on the first tick after the schedule is read; the closed port answers
    # at once, the silent socket keeps its probe in flight.
    await until(lambda: len(prober.last_fired) == 2 and prober.fired == 1, 15, "both canaries fired, one answered")
    # The schedule is written down when probes are fired, not only at stop.
    assert (ctx.tmp_path / "canary-schedule.json").exists()


async def prober_flushed(prober: CanaryProber, ctx: Ctx) -> None:
    # stop() waited for the silent probe's timeout rather than dropping it...
    assert prober.fired == 2
    # ...wrote down when each canary was probed...
    state = json.loads((ctx.tmp_path / "canary-schedule.json").read_text())
    assert state["version"] == 1 and set(state["last_probe"]) == {"lc-closed/ping", "lc-silent/ping"}
    # ...and flushed the SDK: both results are on the canary topic.
    results = await read_canary_results(ctx.kafka, ctx.names["canary"], 2)
    assert len(results) == 2, results
    errors = {r.router_id: r.error for r in results}
    assert errors["lc-closed"].startswith("request to http://127.0.0.1:") and " failed: " in errors["lc-closed"]
    assert errors["lc-silent"] == f"no response from {ctx.silent_url} within {SILENT_TIMEOUT_S}s"


CASES = [
    Case("store", make_store, use_store),
    Case("sdk", make_sdk, use_sdk, sdk_flushed),
    Case("lease", make_lease, use_lease, lease_flushed),
    Case("canary-prober", make_prober, use_prober, prober_flushed),
]


@pytest.fixture
async def ctx(tmp_path, kafka_bootstrap, names, session_chdb_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("ROUTERWATCH_"):
            monkeypatch.delenv(name)
    await create_topics(kafka_bootstrap, [f"{names['decisions']}.lease", names["feedback"], names["canary"]])
    # Listens, so connections succeed, but never accepts or answers: requests hang until their timeout.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        yield Ctx(tmp_path, kafka_bootstrap, names, session_chdb_path,
                  f"http://127.0.0.1:{silent.getsockname()[1]}/v1/chat/completions")
    finally:
        silent.close()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_stop_is_safe_without_start_twice_and_flushes(case, ctx):
    component = case.make(ctx)
    await call(component.stop)
    await call(component.stop)

    component = case.make(ctx)
    assert await call(component.start) is component
    assert await call(component.start) is component
    if case.use is not None:
        await case.use(component, ctx)
    await call(component.stop)
    if case.flushed is not None:
        await case.flushed(component, ctx)
    await call(component.stop)
    if case.flushed is not None:
        await case.flushed(component, ctx)  # a second stop undoes nothing and adds nothing


# -- helpers -----------------------------------------------------------------------------------


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)


async def group_members(kafka: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    (described,) = response.groups
    members = described[5]
    return len(members)


async def read_canary_results(kafka: str, topic: str, expected: int, timeout: float = 15) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(found) < expected and asyncio.get_running_loop().time() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(decode(EVENT_TYPES["CanaryResult"], m.value) for m in messages)
    finally:
        await consumer.stop()
    return found
