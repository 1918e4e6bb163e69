"""One canary probe against the real example router: each way of learning the serving tier
(header, body field, the RoutingDecision read back from the real Kafka topic) and each way a
probe goes wrong (failed answer check, HTTP error, refused connection, timeout, tier unknown);
then `routerwatch canary run` as a subprocess, healthy and with the gate threshold raised.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer
from routerkit import ExampleRouter
from servicekit import CLI, create_topics, free_port

from routerwatch.canary.config import Canary, load_canary_set
from routerwatch.canary.probe import ProbeSettings, probe
from routerwatch.canary.prober import result_kind
from routerwatch.events.validation import EVENT_TYPES, decode

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# The example router's knowledge table puts these on the tiers named (at the default gate).
CANARIES = """\
version: "probe-test-1"
router_id: {router}
canaries:
  - id: refund-window
    request: {{model: auto, messages: [{{role: user, content: "How many days do I have to ask for a refund?"}}]}}
    expected_tier: small
    check: {{kind: numeric, value: 30}}
    schedule: {{every_seconds: 60, jitter_seconds: 0, timeout_seconds: {timeout}}}
    labels: {{category: billing, side: cheap}}
  - id: greeting
    request: {{model: auto, messages: [{{role: user, content: "Say hello in one word."}}]}}
    expected_tier: small
    check: {{kind: regex, pattern: "^\\\\s*hello", case_sensitive: false}}
    schedule: {{every_seconds: 60, jitter_seconds: 0, timeout_seconds: {timeout}}}
    labels: {{category: chitchat, side: cheap}}
  - id: capital
    request: {{model: auto, messages: [{{role: user, content: "What is the capital of France?"}}]}}
    expected_tier: small
    check: {{kind: exact, expected: "Paris"}}
    schedule: {{every_seconds: 60, jitter_seconds: 0, timeout_seconds: {timeout}}}
    labels: {{category: geography, side: cheap}}
  - id: contract-clause
    request: {{model: auto, messages: [{{role: user, content: "Return the governing-law clause as JSON."}}]}}
    expected_tier: large
    check: {{kind: json_schema, json_schema: {{type: object, required: [jurisdiction]}}}}
    schedule: {{every_seconds: 60, jitter_seconds: 0, timeout_seconds: {timeout}}}
    labels: {{category: legal, side: strong}}
"""
# Simulated latency of the tiers a request passes through before it is served there.
MIN_LATENCY_MS = {"small": 30, "large": 30 + 80 + 200}


def canary_file(tmp_path: Path, router_id: str, timeout: float = 5) -> Path:
    path = tmp_path / f"canaries-{timeout:g}.yml"
    path.write_text(CANARIES.format(router=router_id, timeout=timeout))
    return path


def load(tmp_path: Path, router_id: str, timeout: float = 5) -> dict[str, Canary]:
    return {c.id: c for c in load_canary_set(canary_file(tmp_path, router_id, timeout)).canaries}


@pytest.fixture
async def router(kafka_bootstrap, names, tmp_path):
    await create_topics(kafka_bootstrap, [names["decisions"]])
    r = ExampleRouter(kafka_bootstrap, names["decisions"], f"probe-{names['group']}", tmp_path / "router.log").start()
    yield r
    r.stop()


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def canaries(tmp_path, router) -> dict[str, Canary]:
    return load(tmp_path, router.router_id)


async def run(session, router: ExampleRouter, canary: Canary, lookup=None, **settings: Any) -> dict[str, Any]:
    return await probe(
        session, canary, router_id=router.router_id, settings=ProbeSettings(url=router.chat_url, **settings),
        run_id="probe-test", lookup=lookup,
    )


def seen_by_router(router: ExampleRouter, result: dict[str, Any]) -> dict[str, Any]:
    """The router's own record of the probe, found by the request id the probe sent."""
    matches = [p for p in router.probes() if p["request_id"] == result["request_id"]]
    assert len(matches) == 1, (result["request_id"], router.probes())
    return matches[0]


# -- the serving tier --------------------------------------------------------------------------


async def test_tier_from_the_header(session, router, canaries):
    for canary in canaries.values():
        result = await run(session, router, canary)
        assert "error" not in result, result
        assert result["observed_tier"] == canary.expected_tier and result["tier_source"] == "header", result
        assert result["answer_passed"] is True and result["check_detail"] is None, result
        assert result_kind(result) == "passed"
        assert result["latency_ms"] >= MIN_LATENCY_MS[canary.expected_tier], result
        assert (result["category"], result["side"]) == (canary.labels["category"], canary.labels["side"])
        # The router saw the probe as a canary, under the request id the result carries.
        record = seen_by_router(router, result)
        assert (record["canary_id"], record["status"], record["tier"]) == (canary.id, 200, canary.expected_tier)


async def test_tier_from_the_body_when_the_header_is_hidden(session, router, canaries):
    router.switch(expose_tier_header=False)
    for canary in (canaries["capital"], canaries["contract-clause"]):
        result = await run(session, router, canary)
        assert (result["observed_tier"], result["tier_source"]) == (canary.expected_tier, "body"), result
        assert result_kind(result) == "passed"
    # The header is not consulted when none is configured, even though the router sends one again.
    router.reset()
    result = await run(session, router, canaries["greeting"], tier_header=None)
    assert (result["observed_tier"], result["tier_source"]) == ("small", "body")


async def test_tier_from_the_routing_decision_on_kafka(session, router, canaries, kafka_bootstrap, names):
    router.switch(expose_tier_header=False, expose_tier_body=False)
    async with DecisionsOnKafka(kafka_bootstrap, names["decisions"]) as decisions:
        for canary in (canaries["refund-window"], canaries["contract-clause"]):
            result = await run(session, router, canary, lookup=decisions.lookup, decision_wait_s=20)
            assert "error" not in result, result
            assert (result["observed_tier"], result["tier_source"]) == (canary.expected_tier, "decision"), result
            assert result_kind(result) == "passed"
            # Joined on exactly the ids the probe sent, which are the ones the router recorded.
            asked = {call for call in decisions.calls if call[1] == result["request_id"]}
            assert asked == {(canary.id, result["request_id"])}
            assert seen_by_router(router, result)["canary_id"] == canary.id


async def test_no_decision_found_means_tier_unknown(session, router, canaries):
    router.switch(expose_tier_header=False, expose_tier_body=False)
    calls: list[tuple[str, str]] = []

    async def never(canary_id: str, request_id: str) -> str | None:
        calls.append((canary_id, request_id))
        return None

    started = time.monotonic()
    result = await run(session, router, canaries["capital"], lookup=never, decision_wait_s=1)
    waited = time.monotonic() - started
    error = result["error"]
    assert error.startswith("serving tier unknown:"), result
    assert f"no RoutingDecision for request_id {result['request_id']} within 1s" in error
    assert result_kind(result) == "no_answer" and "observed_tier" not in result
    # It kept asking until the wait was over, then gave up promptly.
    assert len(calls) >= 2 and set(calls) == {("capital", result["request_id"])}
    assert 1.0 <= waited < 3.0, waited


# -- probes that go wrong ----------------------------------------------------------------------


async def test_a_rejecting_verifier_fails_the_answer_checks(session, router, canaries):
    router.switch(verifier="reject_all")
    capital = await run(session, router, canaries["capital"])
    # Everything escalates to large, which serves an apology: a flip and a failed answer.
    assert capital["observed_tier"] == "large" and capital["answer_passed"] is False
    assert capital["check_detail"].startswith("expected 'Paris', got 'Sorry"), capital
    assert result_kind(capital) == "tier_flip"
    clause = await run(session, router, canaries["contract-clause"])
    assert clause["observed_tier"] == "large" and clause["answer_passed"] is False
    assert clause["check_detail"].startswith("answer is not JSON"), clause
    assert result_kind(clause) == "failed_check"


async def test_a_router_that_is_down_answers_503(session, router, canaries):
    router.switch(down=True)
    result = await run(session, router, canaries["greeting"])
    assert result["error"].startswith(f"HTTP 503 from {router.chat_url}: "), result
    assert "router_down" in result["error"]
    assert result_kind(result) == "no_answer" and "observed_tier" not in result
    assert seen_by_router(router, result)["status"] == 503


async def test_a_stopped_router_refuses_the_connection(session, router, canaries):
    router.stop()
    started = time.monotonic()
    result = await run(session, router, canaries["greeting"])
    refused = rf"request to {re.escape(router.chat_url)} failed: ClientConnector\w*Error: "
    assert re.match(refused, result["error"]), result
    assert result_kind(result) == "no_answer"
    assert time.monotonic() - started < 2.0, "refused at once, not after the 5 s timeout"
    # Any closed port, not only a stopped router.
    closed = f"http://127.0.0.1:{free_port()}/v1/chat/completions"
    result = await probe(session, canaries["greeting"], router_id="r", settings=ProbeSettings(url=closed), run_id="x")
    assert result["error"].startswith(f"request to {closed} failed: ")


async def test_a_slow_tier_times_the_probe_out(session, router, tmp_path):
    router.switch(slow_ms={"large": 4000})
    canaries = load(tmp_path, router.router_id, timeout=1)
    started = time.monotonic()
    result = await run(session, router, canaries["contract-clause"])
    waited = time.monotonic() - started
    assert result["error"] == f"no response from {router.chat_url} within 1s", result
    assert result_kind(result) == "no_answer"
    assert 1.0 <= waited < 2.5, "given up at the timeout, not when the 4 s answer came"
    # Only the slowed tier: a canary served by small still answers in time.
    fast = await run(session, router, canaries["capital"])
    assert result_kind(fast) == "passed", fast


# -- `routerwatch canary run` ------------------------------------------------------------------


def canary_run(tmp_path: Path, path: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTERWATCH_")}
    env["ROUTERWATCH_CANARY__STATE_FILE"] = str(tmp_path / "cli-state.json")
    return subprocess.run(
        [*CLI, "canary", "run", "--file", str(path), "--router-url", url],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )


def lines_by_canary(stdout: str, router_id: str) -> dict[str, list[str]]:
    rows = [line.split("\t") for line in stdout.splitlines() if line.startswith(f"{router_id}/")]
    by_canary = {row[0].removeprefix(f"{router_id}/"): row for row in rows}
    assert len(by_canary) == len(rows), stdout
    return by_canary


def test_canary_run_exits_0_when_healthy_and_1_on_tier_flips(tmp_path, router):
    path = canary_file(tmp_path, router.router_id)  # no endpoint in the file: --router-url supplies it
    done = canary_run(tmp_path, path, router.chat_url)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = lines_by_canary(done.stdout, router.router_id)
    assert set(rows) == {"refund-window", "greeting", "capital", "contract-clause"}, done.stdout
    for canary, row in rows.items():
        assert row[1] == "passed", row
    assert rows["contract-clause"][3].startswith("observed large (header)"), rows["contract-clause"]
    assert done.stdout.splitlines()[-1] == "4 of 4 canaries passed"
    assert {p["canary_id"] for p in router.probes()} == set(rows)

    router.switch(gate_threshold=0.99)
    done = canary_run(tmp_path, path, router.chat_url)
    assert done.returncode == 1, done.stdout + done.stderr
    rows = lines_by_canary(done.stdout, router.router_id)
    assert {c: row[1] for c, row in rows.items()} == {
        "refund-window": "tier_flip", "greeting": "tier_flip", "capital": "tier_flip", "contract-clause": "passed",
    }, done.stdout
    assert rows["capital"][2:4] == ["expected small", "observed large (header)"], rows["capital"]
    assert done.stdout.splitlines()[-1] == "1 of 4 canaries passed"
    assert not (tmp_path / "cli-state.json").exists(), "a one-off run does not touch the schedule"


# -- helpers -----------------------------------------------------------------------------------


class DecisionsOnKafka:
    """Reads the router's RoutingDecisions off its topic in the background; ``lookup`` is a
    :data:`~routerwatch.canary.probe.DecisionLookup` over what has arrived so far."""

    def __init__(self, kafka: str, topic: str) -> None:
        self.consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=kafka, auto_offset_reset="earliest", enable_auto_commit=False
        )
        self.tiers: dict[tuple[str, str], str | None] = {}
        self.calls: list[tuple[str, str]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> DecisionsOnKafka:
        await self.consumer.start()
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        await self.consumer.stop()

    async def _read(self) -> None:
        while True:
            for messages in (await self.consumer.getmany(timeout_ms=200)).values():
                for message in messages:
                    d = decode(EVENT_TYPES["RoutingDecision"], message.value)
                    if d.canary_id:
                        self.tiers[(d.canary_id, d.request_id)] = d.final.tier if d.final.served else None

    async def lookup(self, canary_id: str, request_id: str) -> str | None:
        self.calls.append((canary_id, request_id))
        return self.tiers.get((canary_id, request_id))
