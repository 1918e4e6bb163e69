"""The example router as a real process: HTTP in, RoutingDecisions out on a real Kafka topic."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from servicekit import REPO, create_topics, free_port

from routerwatch.events.validation import EVENT_TYPES, decode

pytestmark = pytest.mark.integration

MODULE = [sys.executable, "-m", "routerwatch.examplerouter.cli"]
REFUND = "How many days do I have to ask for a refund?"
HELLO = "Say hello in one word."
CONTRACT = "Return the governing-law clause of the attached contract as JSON."
FRANCE = "What is the capital of France?"
MATH = "What is 17 * 23?"
APOLOGY = "Sorry, I cannot answer that right now."


class Router:
    """``example-router`` in a subprocess, with its log kept for failure messages."""

    def __init__(self, kafka: str, topic: str, log_path: Path, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [*MODULE, "--port", str(self.port), "--kafka-bootstrap", kafka, "--decisions-topic", topic, *flags],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"example-router exited {self.proc.returncode}:\n{self.log()}")
            try:
                if get(f"{self.url}/health")[2] == {"status": "ok"}:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"example-router did not answer /health in 30s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def chat(self, content: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        body = {"model": "auto", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": content}]}
        return post(f"{self.url}/v1/chat/completions", body, headers)

    def switch(self, **patch: Any) -> dict[str, Any]:
        status, _, body = post(f"{self.url}/admin/switches", patch)
        assert status == 200, body
        return body

    def stop(self) -> int | None:
        """SIGTERM and wait; safe twice."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


def _send(request: urllib.request.Request) -> tuple[int, dict[str, str], Any]:
    try:
        with urllib.request.urlopen(request, timeout=20) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def get(url: str) -> tuple[int, dict[str, str], Any]:
    return _send(urllib.request.Request(url))


def post(url: str, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None) -> tuple[int, dict[str, str], Any]:
    data = raw if raw is not None else json.dumps(body).encode()
    return _send(urllib.request.Request(url, data=data, method="POST",
                                        headers={"Content-Type": "application/json", **(headers or {})}))


async def _read(kafka: str, topic: str, request_ids: set[str], timeout: float) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    found: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + timeout
        while not request_ids <= found.keys() and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for message in messages:
                    # Every decision the router emits must satisfy the contract, not only the ones asked for.
                    decision = decode(EVENT_TYPES["RoutingDecision"], message.value)
                    assert message.key == decision.request_id.encode()
                    assert decision.request_id not in found, f"two decisions for {decision.request_id}"
                    found[decision.request_id] = decision
    finally:
        await consumer.stop()
    missing = request_ids - found.keys()
    assert not missing, f"no RoutingDecision on {topic} for {sorted(missing)} after {timeout}s"
    return found


def read_decisions(kafka: str, topic: str, request_ids: set[str], timeout: float = 20) -> dict[str, Any]:
    """The RoutingDecisions on ``topic``, by request id, once all of ``request_ids`` have arrived."""
    return asyncio.run(_read(kafka, topic, request_ids, timeout))


@pytest.fixture
def router(kafka_bootstrap, names, tmp_path):
    asyncio.run(create_topics(kafka_bootstrap, [names["decisions"]]))
    r = Router(kafka_bootstrap, names["decisions"], tmp_path / "router.log")
    yield r
    r.stop()


def test_canary_queries_land_on_their_tiers_and_are_recorded(router, kafka_bootstrap, names):
    cases = [
        (REFUND, "small", "You have 30 days to ask for a refund.", "billing", "refund-window"),
        (HELLO, "small", "Hello", "chitchat", "greeting"),
        (CONTRACT, "large", '{"jurisdiction": "Delaware"}', "legal", "contract-clause"),
        (FRANCE, "small", "Paris", "geography", None),
        (MATH, "medium", "391", "math", None),
    ]
    models = {"small": "small-8b", "medium": "medium-70b", "large": "large-frontier"}
    sent: dict[str, tuple[str, str, str | None]] = {}
    for n, (prompt, tier, answer, category, canary) in enumerate(cases):
        headers = {"X-Request-Id": f"req-{names['group']}-{n}"} if n % 2 == 0 else {}
        if canary:
            headers["X-Routerwatch-Canary"] = canary
        status, h, body = router.chat(prompt, headers)
        assert status == 200, body
        assert h["X-Router-Tier"] == tier
        request_id = h["X-Request-Id"]
        if "X-Request-Id" in headers:
            assert request_id == headers["X-Request-Id"], "a given request id is kept"
        assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
        assert body["model"] == models[tier]
        choice = body["choices"][0]
        assert choice["message"] == {"role": "assistant", "content": answer}
        assert choice["finish_reason"] == "stop"
        usage = body["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
        assert body["router"] == {"tier": tier, "request_id": request_id, "attempts": ["small", "medium", "large"].index(tier) + 1}
        if category == "legal":
            assert json.loads(choice["message"]["content"]) == {"jurisdiction": "Delaware"}
        sent[request_id] = (tier, category, canary)

    stats = get(f"{router.url}/admin/stats")[2]
    assert stats["requests"] == 5
    assert stats["by_tier"] == {"small": 3, "medium": 1, "large": 1}
    probes = {p["canary_id"]: p for p in stats["canary_probes"]}
    assert set(probes) == {"refund-window", "greeting", "contract-clause"}
    assert probes["contract-clause"]["tier"] == "large" and probes["contract-clause"]["status"] == 200
    assert all(isinstance(p["received_at"], float) and p["request_id"] in sent for p in probes.values())

    decisions = read_decisions(kafka_bootstrap, names["decisions"], set(sent))
    assert set(decisions) == set(sent), "one decision per request, nothing else"
    for request_id, (tier, category, canary) in sent.items():
        d = decisions[request_id]
        assert d.final.served and d.final.tier == tier, "the decision's final tier matches X-Router-Tier"
        assert d.canary_id == canary
        assert d.category == category
        assert d.router.id == "sim-router" and d.router.policy_version == "gate-0.5-normal"
        assert d.attempts[0].tier == "small", "every request enters at small"
        assert [a.outcome.value for a in d.attempts][-1] == "accepted"
        assert all(a.escalation_reason.value == "low_confidence" for a in d.attempts[:-1])
        assert d.prompt is not None and len(d.prompt.hash) == 64
        # The latencies are measured, not invented: the sleeps of the simulated tiers are in them.
        assert d.final.latency_ms >= {"small": 30, "medium": 110, "large": 310}[tier]


def test_bad_requests_get_openai_errors_and_no_decision(router):
    url = f"{router.url}/v1/chat/completions"
    status, h, body = post(url, {"model": "auto"}, {"X-Request-Id": "bad-1"})
    assert status == 400 and h["X-Request-Id"] == "bad-1"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].lower() == "messages: field required"
    assert body["error"]["param"] == "messages"

    status, _, body = post(url, None, raw=b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]["message"]
    status, _, body = post(url, {"model": "auto", "messages": [{"role": "system", "content": "x"}]})
    assert status == 400 and "role 'user'" in body["error"]["message"]
    status, _, body = post(url, {"model": "auto", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    assert status == 400 and body["error"]["param"] == "stream"
    status, _, body = router.chat(HELLO, {"X-Routerwatch-Canary": "not a name!"})
    assert status == 400 and body["error"]["param"] == "X-Routerwatch-Canary"

    stats = get(f"{router.url}/admin/stats")[2]
    assert stats["bad_requests"] == 5 and stats["requests"] == 5
    assert stats["sdk"]["enqueued"] == 0, "bad requests are not routed, so no decision is recorded"


def test_switches_change_routing_and_the_decisions_show_it(router, kafka_bootstrap, names):
    assert get(f"{router.url}/admin/switches")[2] == {
        "gate_threshold": 0.5, "verifier": "normal", "slow_ms": {}, "fail_providers": [], "down": False,
        "expose_tier_header": True, "expose_tier_body": True,
    }
    ids: dict[str, str] = {}

    assert router.switch(gate_threshold=0.99)["gate_threshold"] == 0.99
    status, h, body = router.chat(REFUND)
    assert h["X-Router-Tier"] == "large" and body["model"] == "large-frontier"
    ids["strict_gate"] = h["X-Request-Id"]

    status, _, body = post(f"{router.url}/admin/switches", {"slow_ms": {"tiny": 5}})
    assert status == 422 and body["error"]["param"] == "slow_ms" and "slow_ms.tiny" in body["error"]["message"]
    status, _, body = post(f"{router.url}/admin/switches", {"gate_threshold": "high"})
    assert status == 422 and "gate_threshold" in body["error"]["message"]
    assert get(f"{router.url}/admin/switches")[2]["gate_threshold"] == 0.99, "a rejected patch changes nothing"

    status, _, reset = post(f"{router.url}/admin/reset", {})
    assert status == 200 and reset["gate_threshold"] == 0.5
    assert router.chat(REFUND)[1]["X-Router-Tier"] == "small"

    router.switch(verifier="reject_all")
    status, h, body = router.chat(HELLO, {"X-Routerwatch-Canary": "greeting"})
    assert status == 200 and h["X-Router-Tier"] == "large"
    assert body["choices"][0]["message"]["content"] == APOLOGY
    ids["reject_all"] = h["X-Request-Id"]

    router.switch(verifier="normal", fail_providers=["small"])
    status, h, body = router.chat(FRANCE)
    assert h["X-Router-Tier"] == "medium" and body["choices"][0]["message"]["content"] == "Paris"
    assert body["router"]["attempts"] == 2
    ids["fail_small"] = h["X-Request-Id"]

    router.switch(fail_providers=["small", "medium", "large"])
    status, h, body = router.chat(FRANCE)
    assert status == 502 and "X-Router-Tier" not in h
    assert body["error"]["code"] == "all_tiers_failed" and body["router"]["tier"] is None
    ids["all_fail"] = h["X-Request-Id"]

    router.switch(fail_providers=[], slow_ms={"medium": 400})
    started = time.monotonic()
    status, h, body = router.chat(MATH)
    assert h["X-Router-Tier"] == "medium" and time.monotonic() - started >= 0.45
    ids["slow_medium"] = h["X-Request-Id"]

    router.switch(slow_ms={}, expose_tier_header=False, expose_tier_body=False)
    status, h, body = router.chat(CONTRACT)
    assert status == 200 and "X-Router-Tier" not in h and "router" not in body
    assert body["model"] == "large-frontier"
    ids["hidden"] = h["X-Request-Id"]

    d = read_decisions(kafka_bootstrap, names["decisions"], set(ids.values()))
    strict = d[ids["strict_gate"]]
    assert strict.router.policy_version == "gate-0.99-normal"
    assert [a.outcome.value for a in strict.attempts] == ["escalated", "escalated", "accepted"]
    assert strict.attempts[0].gate.threshold == 0.99 and strict.attempts[0].gate.score == 0.8

    rejected = d[ids["reject_all"]]
    assert rejected.canary_id == "greeting" and rejected.final.tier == "large"
    assert [a.escalation_reason.value for a in rejected.attempts[:2]] == ["verifier_rejected"] * 2
    assert [a.gate.kind.value for a in rejected.attempts[:2]] == ["verifier"] * 2

    fallback = d[ids["fail_small"]]
    assert [(a.tier, a.outcome.value) for a in fallback.attempts] == [("small", "failed"), ("medium", "accepted")]
    assert fallback.attempts[0].failure_mode.value == "provider_error"

    unserved = d[ids["all_fail"]]
    assert not unserved.final.served and unserved.final.tier is None
    assert [a.outcome.value for a in unserved.attempts] == ["failed"] * 3

    slow = d[ids["slow_medium"]]
    assert slow.attempts[1].tier == "medium" and slow.attempts[1].latency_ms >= 480
    assert slow.attempts[0].latency_ms < 200
    assert d[ids["hidden"]].final.tier == "large"


def test_down_answers_503_and_records_nothing(router):
    router.switch(down=True)
    status, h, body = router.chat(REFUND, {"X-Routerwatch-Canary": "refund-window", "X-Request-Id": "down-1"})
    assert status == 503 and h["X-Request-Id"] == "down-1"
    assert body["error"]["code"] == "router_down"
    assert get(f"{router.url}/health")[0] == 200, "the process is alive; only the router is down"
    stats = get(f"{router.url}/admin/stats")[2]
    assert stats["down"] == 1 and stats["sdk"]["enqueued"] == 0
    assert stats["canary_probes"][-1]["status"] == 503 and stats["canary_probes"][-1]["request_id"] == "down-1"
    router.switch(down=False)
    assert router.chat(REFUND)[0] == 200


def test_flags_set_the_start_switches_and_the_switch_client_changes_them(kafka_bootstrap, names, tmp_path):
    bad = subprocess.run([*MODULE, "--port", "0", "--slow", "tiny=5"], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert bad.returncode == 2 and "--slow tiny" in bad.stderr

    asyncio.run(create_topics(kafka_bootstrap, [names["decisions"]]))
    r = Router(kafka_bootstrap, names["decisions"], tmp_path / "router.log",
               "--gate-threshold", "0.9", "--fail", "small", "--hide-tier-body", "--router-id", "flag-router")
    try:
        switches = get(f"{r.url}/admin/switches")[2]
        assert switches["gate_threshold"] == 0.9 and switches["fail_providers"] == ["small"]
        assert switches["expose_tier_body"] is False
        status, h, body = r.chat(REFUND)
        assert h["X-Router-Tier"] == "medium" and "router" not in body

        client = [*MODULE, "switch", "--url", r.url]
        done = subprocess.run([*client, "gate_threshold=0.99", "fail_providers="], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["gate_threshold"] == 0.99
        assert r.chat(REFUND)[1]["X-Router-Tier"] == "large"
        refused = subprocess.run([*client, "verifier=lenient"], capture_output=True, text=True, timeout=30)
        assert refused.returncode == 2 and "verifier" in refused.stderr
        shown = subprocess.run([*client, "--reset"], capture_output=True, text=True, timeout=30)
        assert shown.returncode == 0 and json.loads(shown.stdout)["gate_threshold"] == 0.5
        request_id = r.chat(REFUND)[1]["X-Request-Id"]
    finally:
        assert r.stop() == 0, r.log()
    log = r.log()
    assert f"listening on {r.url}" in log
    decision = read_decisions(kafka_bootstrap, names["decisions"], {request_id})[request_id]
    assert decision.router.id == "flag-router" and decision.final.tier == "small"
    unreachable = subprocess.run([*MODULE, "switch", "--url", r.url], capture_output=True, text=True, timeout=30)
    assert unreachable.returncode == 3


def test_serves_without_a_broker(tmp_path):
    r = Router("127.0.0.1:1", "nowhere.decisions", tmp_path / "router.log")
    try:
        started = time.monotonic()
        status, h, body = r.chat(FRANCE)
        assert status == 200 and body["choices"][0]["message"]["content"] == "Paris"
        assert time.monotonic() - started < 1.0, "the SDK must not hold the request up"
        assert get(f"{r.url}/admin/stats")[2]["sdk"]["enqueued"] == 1
    finally:
        assert r.stop() == 0, r.log()
    assert "'dropped': 1" in r.log(), "what could not be sent is counted and said at exit"
