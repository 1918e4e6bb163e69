"""Canary probes end to end: example router, `routerwatch serve` (prober, ingest, scheduler),
real Kafka, chDB and a real Alertmanager.

A healthy router raises nothing; raising the gate threshold flips the cheap-side canaries and
pages within the N-of-M window; a verifier that rejects everything fails the answer checks;
a stopped router raises the no-answer alert; restoring the router resolves everything; a
restarted `serve` neither loses the schedule nor doubles the probes; of two `serve`
processes only one probes.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest
from alertkit import alertmanager, webhook  # noqa: F401 - session fixtures
from routerkit import ExampleRouter
from servicekit import Env, Serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

EVERY_S = 2.0
RULE = {"n": 2, "m": 3}

CANARIES = """
version: "test-1"
router_id: {router}
canaries:
  - id: refund-window
    request: {{model: auto, messages: [{{role: user, content: "How many days do I have to ask for a refund?"}}]}}
    expected_tier: small
    check: {{kind: numeric, value: 30}}
    schedule: {{every_seconds: {every}, jitter_seconds: {jitter}, timeout_seconds: 3}}
    labels: {{category: billing, side: cheap}}
  - id: greeting
    request: {{model: auto, messages: [{{role: user, content: "Say hello in one word."}}]}}
    expected_tier: small
    check: {{kind: regex, pattern: "^\\\\s*hello", case_sensitive: false}}
    schedule: {{every_seconds: {every}, jitter_seconds: {jitter}, timeout_seconds: 3}}
    labels: {{category: chitchat, side: cheap}}
  - id: capital
    request: {{model: auto, messages: [{{role: user, content: "What is the capital of France?"}}]}}
    expected_tier: small
    check: {{kind: exact, expected: "Paris"}}
    schedule: {{every_seconds: {every}, jitter_seconds: {jitter}, timeout_seconds: 3}}
    labels: {{category: geography, side: cheap}}
  - id: contract-clause
    request: {{model: auto, messages: [{{role: user, content: "Return the governing-law clause as JSON."}}]}}
    expected_tier: large
    check: {{kind: json_schema, json_schema: {{type: object, required: [jurisdiction]}}}}
    schedule: {{every_seconds: {every}, jitter_seconds: {jitter}, timeout_seconds: 3}}
    labels: {{category: legal, side: strong}}
"""


def canary_file(tmp_path: Path, router: str, every: float = EVERY_S, jitter: float = 0.3) -> Path:
    path = tmp_path / "canaries.yml"
    path.write_text(CANARIES.format(router=router, every=every, jitter=jitter))
    return path


def make_env(kafka, names, tmp_path: Path, router: ExampleRouter, canaries: Path, am_url: str | None = None,
             suffix: str = "") -> Env:
    extra = {
        "ROUTERWATCH_CANARY__FILES": json.dumps([str(canaries)]),
        "ROUTERWATCH_CANARY__ROUTER_URL": router.chat_url,
        "ROUTERWATCH_CANARY__N": str(RULE["n"]),
        "ROUTERWATCH_CANARY__M": str(RULE["m"]),
        "ROUTERWATCH_CANARY__LEASE_TOPIC": f"{names['decisions']}.lease",
        "ROUTERWATCH_CANARY__LEASE_GROUP": f"{names['group']}-lease",
        "ROUTERWATCH_CANARY__LEASE_SESSION_TIMEOUT_S": "6",
        "ROUTERWATCH_CANARY__STATE_FILE": str(tmp_path / f"canary-state{suffix}.json"),
        "ROUTERWATCH_SCHEDULER__INTERVAL_S": "1",
        "ROUTERWATCH_SCHEDULER__LOOKBACK_MINUTES": "10",
        "ROUTERWATCH_SCHEDULER__STATE_FILE": str(tmp_path / f"alerts{suffix}.json"),
    }
    if am_url:
        extra["ROUTERWATCH_SCHEDULER__ALERTMANAGER_URLS"] = json.dumps([am_url])
    own = dict(names, group=names["group"] + suffix)
    env = Env(kafka=kafka, names=own, store_url=f"chdb://{tmp_path / ('store' + suffix)}", extra=extra)
    env.cli("migrate")
    return env


def canary_alerts(am, router: str) -> list[dict]:
    url = f"{am.url}/api/v2/alerts?active=true&filter=router%3D%22{router}%22"
    with urllib.request.urlopen(url, timeout=5) as r:
        return [a for a in json.loads(r.read()) if a["labels"]["alertname"].startswith("RouterwatchCanary")]


def wait_alerts(am, router: str, predicate, timeout: float, what: str, serve: Serve) -> tuple[list[dict], float]:
    started = time.monotonic()
    alerts: list[dict] = []
    while time.monotonic() - started < timeout:
        alerts = canary_alerts(am, router)
        if predicate(alerts):
            return alerts, time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout}s; active: {[a['labels'] for a in alerts]}\n{serve.log()}")


def named(alerts: list[dict], alertname: str, **labels: str) -> list[dict]:
    return [a for a in alerts if a["labels"]["alertname"] == alertname
            and all(a["labels"].get(k) == v for k, v in labels.items())]


@pytest.fixture
def router(kafka_bootstrap, names, tmp_path):
    r = ExampleRouter(kafka_bootstrap, names["decisions"], f"canary-{names['group']}", tmp_path / "router.log").start()
    yield r
    r.stop()


def test_canaries_page_on_flip_failure_and_silence_then_resolve(kafka_bootstrap, names, tmp_path, router, alertmanager):
    rid = router.router_id
    env = make_env(kafka_bootstrap, names, tmp_path, router, canary_file(tmp_path, rid), alertmanager.url)
    serve = Serve(env, tmp_path / "serve.log").start()
    try:
        # Healthy: every canary probed at least M times, all on their expected tier, all passing.
        serve.wait_for(
            "SELECT min(c) >= 3 AND count() = 4 FROM (SELECT canary_id, count() AS c FROM canary_results GROUP BY canary_id)",
            1, timeout=60,
        )
        rows = serve.query_dicts(
            "SELECT canary_id, side, expected_tier, observed_tier, tier_source, answer_passed, error "
            "FROM canary_results FINAL"
        )
        bad = [r for r in rows if r["observed_tier"] != r["expected_tier"] or not r["answer_passed"] or r["error"]]
        assert not bad, bad
        assert {r["tier_source"] for r in rows} == {"header"}
        assert {(r["canary_id"], r["side"]) for r in rows} >= {("refund-window", "cheap"), ("contract-clause", "strong")}
        # Probe traffic is marked: the router's decisions for it carry canary_id and stay out of production views.
        serve.wait_for("SELECT count() > 0 FROM decisions WHERE canary_id != ''", 1, timeout=30)
        assert serve.scalar("SELECT count() FROM requests") == 0
        time.sleep(2)
        assert canary_alerts(alertmanager, rid) == []

        # The gate threshold rises: the cheap-side canaries escalate to the strong tier and page.
        router.switch(gate_threshold=0.99)
        alerts, waited = wait_alerts(
            alertmanager, rid, lambda a: named(a, "RouterwatchCanaryTierFlip", scope="side", side="cheap"),
            timeout=45, what="tier flip page", serve=serve,
        )
        # N-of-M: N probes at EVERY_S (+ jitter), a scheduler tick, ingest and Alertmanager in between.
        assert waited < RULE["n"] * (EVERY_S + 0.3) + 15, waited
        flips = named(alerts, "RouterwatchCanaryTierFlip", scope="canary")
        assert {a["labels"]["canary"] for a in flips} <= {"refund-window", "greeting", "capital"}
        assert not named(alerts, "RouterwatchCanaryTierFlip", canary="contract-clause")
        page = named(alerts, "RouterwatchCanaryTierFlip", scope="side")[0]
        assert page["labels"]["severity"] == "critical"
        assert "runbook_url" in page["annotations"] and "canary_results" in page["annotations"]["query"]

        # Restored: the flips resolve once N-of-M no longer holds.
        router.reset()
        wait_alerts(alertmanager, rid, lambda a: not a, timeout=45, what="resolve after reset", serve=serve)

        # The verifier rejects everything: answers are the router's apology and fail their checks.
        router.switch(verifier="reject_all")

        def strong_fails_too(a) -> bool:
            failing = {x["labels"].get("canary") for x in named(a, "RouterwatchCanaryAnswerFailure", scope="canary")}
            return "contract-clause" in failing or bool(named(a, "RouterwatchCanaryAnswerFailure", side="strong"))

        # Each canary reaches N failures of M on its own (jittered) schedule: the cheap side's page
        # can come a probe before the strong-side canary's, so wait for both.
        alerts, _ = wait_alerts(
            alertmanager, rid,
            lambda a: named(a, "RouterwatchCanaryAnswerFailure", scope="side", side="cheap") and strong_fails_too(a),
            timeout=45, what="answer failure pages (cheap side and the strong-side canary)", serve=serve,
        )
        assert strong_fails_too(alerts)
        detail = serve.scalar(
            "SELECT any(check_detail) FROM canary_results FINAL WHERE canary_id = 'capital' AND answer_passed = false"
        )
        assert "expected 'Paris'" in detail
        router.reset()
        wait_alerts(alertmanager, rid, lambda a: not a, timeout=45, what="resolve after verifier reset", serve=serve)

        # The router stops: one no-answer alert for the router.
        router.stop()
        alerts, _ = wait_alerts(
            alertmanager, rid, lambda a: named(a, "RouterwatchCanaryNoAnswer"), timeout=45, what="no-answer page",
            serve=serve,
        )
        assert named(alerts, "RouterwatchCanaryNoAnswer")[0]["labels"]["scope"] == "router"
        errors = serve.scalar("SELECT count() FROM canary_results FINAL WHERE error != '' AND observed_tier = ''")
        assert errors >= RULE["n"]
        router.start()
        wait_alerts(alertmanager, rid, lambda a: not a, timeout=45, what="resolve after restart", serve=serve)
    finally:
        serve.stop()


def gaps_by_canary(probes: list[dict]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = defaultdict(list)
    for p in probes:
        times[p["canary_id"]].append(p["received_at"])
    return {c: [b - a for a, b in zip(sorted(t), sorted(t)[1:])] for c, t in times.items()}


def test_restart_keeps_the_schedule_and_one_of_two_serves_probes(kafka_bootstrap, names, tmp_path, router):
    every = 6.0
    canaries = canary_file(tmp_path, router.router_id, every=every, jitter=0.0)
    a = Serve(make_env(kafka_bootstrap, names, tmp_path, router, canaries, suffix="-a"), tmp_path / "a.log").start()
    b = None
    try:
        # Restart after the first round: the schedule continues where it was, no immediate re-probe.
        deadline = time.monotonic() + 40
        while len(router.probes()) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(router.probes()) >= 4, a.log()
        a.stop()
        a = Serve(a.env, tmp_path / "a2.log").start()
        time.sleep(every * 2.5)

        # A second serve (own store, same Kafka, same lease group) stands by; probes are not doubled.
        b = Serve(make_env(kafka_bootstrap, names, tmp_path, router, canaries, suffix="-b"), tmp_path / "b.log").start()
        time.sleep(every * 2.5)
        # The holder stops; the other takes over and the schedule goes on.
        a.stop()
        time.sleep(every * 3)
        probes = router.probes()
        gaps = gaps_by_canary(probes)
        assert set(gaps) == {"refund-window", "greeting", "capital", "contract-clause"}
        for canary, canary_gaps in gaps.items():
            # Never doubled: no two probes of a canary closer than its interval (1 s dispatch granularity).
            assert min(canary_gaps) >= every - 1.0, (canary, canary_gaps)
            # Never lost: no gap beyond the interval plus a serve restart (process start, group join,
            # ingest catching up) or a lease hand-over; generous for a loaded 2-core machine.
            assert max(canary_gaps) <= every + 30, (canary, canary_gaps)
        # Both instances probed at some point (the second after the handover), never both at once.
        fired = {p["request_id"] for p in probes}
        assert len(fired) == len(probes)
        with urllib.request.urlopen(f"http://127.0.0.1:{b.env.port}/canaries", timeout=5) as r:
            status = json.loads(r.read())
        assert status["lease_held"] is True and status["fired"] >= 2, status

        # A router that names no tier: the prober joins the probe's own RoutingDecision in ClickHouse.
        router.switch(expose_tier_header=False, expose_tier_body=False)
        b.wait_for(
            "SELECT count() >= 2 FROM canary_results FINAL WHERE tier_source = 'decision' "
            "AND observed_tier = expected_tier AND answer_passed", 1, timeout=60,
        )
        assert b.scalar("SELECT countIf(tier_source = 'decision' AND error != '') FROM canary_results FINAL") == 0
    finally:
        a.stop()
        if b is not None:
            b.stop()
