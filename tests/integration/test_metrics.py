"""Per-tier Prometheus metrics of the real `routerwatch serve`, read from its /metrics.

Traffic goes SDK -> real Kafka -> ingest -> ClickHouse (chDB); the expected
figures come from the simulator's own events for the same profile, size and
seed (outcomes do not depend on the emit time), computed here without the code
under test. Re-sending the same events must not move any of the counters.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from servicekit import Env, Serve

from routerwatch.sdk import RouterWatch, SdkConfig
from routerwatch.simulate import Profile, emit, events

pytestmark = pytest.mark.integration

ROUTER = "metrics-router"
REQUESTS, SEED, DUPLICATES, CANARIES = 400, 31, 60, 5

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def env(env: Env) -> Env:
    # Both sends replay one timeline (START): the re-send is byte for byte the first send. The window
    # is kept wide anyway, as before; its edges are tested in test_storage.
    env.extra["ROUTERWATCH_INGEST__REEMISSION_WINDOW_S"] = "3600"
    return env


# One simulated hour for both sends (a fixed-seed simulation's ids depend on its timeline).
START = round(time.time() - 3600, 3)


def sdk(env: Env) -> RouterWatch:
    return RouterWatch(
        SdkConfig(
            bootstrap_servers=env.kafka,
            router_id=ROUTER,
            decisions_topic=env.names["decisions"],
            feedback_topic=env.names["feedback"],
            max_queue=200_000,
            close_timeout_s=60,
        )
    ).start()


def send(env: Env, *, duplicates: int = 0, canaries: int = 0) -> dict[str, Any]:
    rw = sdk(env)
    summary = emit(rw, Profile(router_id=ROUTER), REQUESTS, SEED, duplicates=duplicates, start=START)
    for i in range(canaries):
        with rw.decision(request_id=f"probe-{i}", category="billing", canary_id="probe-billing",
                         event_id=f"00000000-0000-4000-8000-{i:012d}") as d:
            d.attempt("small", tier_rank=0, model="small-8b", provider="acme").accept(latency_ms=40.0, cost_usd=0.5)
            d.finish(latency_ms=45.0)
    stats = rw.close()
    assert stats["dropped"] == 0, stats
    return summary


def scrape(serve: Serve) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(serve.metrics()):
        for s in family.samples:
            if s.name.startswith("routerwatch_") and not s.name.endswith("_created"):
                out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get(("routerwatch_" + name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == "routerwatch_" + name)


PER_TIER = (
    "attempt_duration_seconds", "attempts_total", "escalations_total", "attempt_failures_total",
    "model_cost_usd_total", "verifier_cost_usd_total", "request_duration_seconds", "requests_total",
    "canary_decisions_total", "metrics_label_overflow_total",
)


def per_tier(samples: Samples) -> Samples:
    """Every sample of the per-tier telemetry (histograms with their buckets, sums and counts)."""
    return {k: v for k, v in samples.items() if k[0].removeprefix("routerwatch_").startswith(PER_TIER)}


def expected() -> dict[str, Counter]:
    exp = {k: Counter() for k in ("attempts", "escalations", "failures", "requests", "paths", "model_cost")}
    for e in events(Profile(router_id=ROUTER), REQUESTS, SEED, start=START):
        served = [a for a in e["attempts"] if a["outcome"] != "shadow"]
        for a in e["attempts"]:
            exp["attempts"][(a["tier"], e["category"], a["outcome"])] += 1
        for a in served:
            exp["model_cost"][a["tier"]] += a["cost_usd"]
            if a["outcome"] == "escalated":
                exp["escalations"][(a["tier"], e["category"], a["escalation_reason"])] += 1
            elif a["outcome"] == "failed":
                exp["failures"][(a["tier"], a["failure_mode"])] += 1
        final = e["final"]
        exp["requests"][final["tier"] if final["served"] else "not_served"] += 1
        # README vocabulary: escalated = at least one escalation, served in the end or not.
        if any(a["outcome"] == "escalated" for a in served):
            path = "escalated"
        elif final["served"] and served[0]["tier"] == final["tier"]:
            path = "kept"
        else:
            path = "other"
        exp["paths"][path] += 1
    return exp


def scrape_when(serve: Serve, ready, timeout: float = 90) -> Samples:
    """Scrape until ``ready(samples)``: rows become queryable a moment before the batch is observed."""
    deadline = time.monotonic() + timeout
    samples = scrape(serve)
    while not ready(samples):
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics not ready: {per_tier(samples)}\n{serve.log()}")
        time.sleep(0.3)
        samples = scrape(serve)
    return samples


def test_per_tier_metrics_match_the_simulated_traffic_and_ignore_duplicates(env, serve):
    exp = expected()
    summary = send(env, duplicates=DUPLICATES, canaries=CANARIES)
    serve.wait_for("SELECT count() FROM decisions", REQUESTS + CANARIES)
    env.cli("wait", "--timeout", "120")  # the in-run duplicates are consumed too
    samples = scrape_when(
        serve, lambda s: total(s, "requests_total") >= REQUESTS and total(s, "canary_decisions_total") >= CANARIES
    )

    assert total(samples, "requests_total") == REQUESTS
    assert get(samples, "canary_decisions_total") == CANARIES
    for tier, n in exp["requests"].items():
        assert get(samples, "requests_total", final_tier=tier) == n, tier
    assert {t: n for t, n in exp["requests"].items() if t != "not_served"} == summary["by_final_tier"]
    for path in ("kept", "escalated", "other"):
        assert get(samples, "request_duration_seconds_count", path=path) == exp["paths"][path], path
    for (tier, category, outcome), n in exp["attempts"].items():
        assert get(samples, "attempts_total", tier=tier, category=category, outcome=outcome) == n
    assert total(samples, "attempts_total") == summary["attempts"]
    for (tier, category, reason), n in exp["escalations"].items():
        assert get(samples, "escalations_total", tier=tier, category=category, reason=reason) == n
    assert total(samples, "escalations_total") == summary["attempts_by_outcome"]["escalated"]
    for (tier, mode), n in exp["failures"].items():
        assert get(samples, "attempt_failures_total", tier=tier, failure_mode=mode) == n
    assert total(samples, "attempt_failures_total") == summary["attempts_by_outcome"].get("failed", 0)
    for tier, usd in exp["model_cost"].items():
        assert get(samples, "model_cost_usd_total", tier=tier) == pytest.approx(usd, abs=1e-9), tier
    shadows = summary["attempts_by_outcome"].get("shadow", 0)
    assert shadows > 0
    assert get(samples, "attempt_duration_seconds_count", tier="small", outcome="shadow") == shadows
    # The canary probes' 0.5 USD attempts are nowhere in the per-tier figures.
    assert total(samples, "model_cost_usd_total") == pytest.approx(sum(exp["model_cost"].values()), abs=1e-9)
    # The store agrees with the counters.
    by_tier = dict(serve.query("SELECT final_tier, count() FROM requests WHERE served GROUP BY final_tier"))
    assert by_tier == {t: get(samples, "requests_total", final_tier=t) for t in by_tier}

    # Re-send everything (same seed and timeline: the same events) plus more duplicates: nothing may move.
    dupes_before = get(samples, "ingest_duplicates_total", table="decisions")
    send(env, duplicates=DUPLICATES, canaries=CANARIES)
    resent = REQUESTS + CANARIES + DUPLICATES
    env.cli("wait", "--timeout", "120")
    again = scrape_when(serve, lambda s: get(s, "ingest_duplicates_total", table="decisions") >= dupes_before + resent)
    assert get(again, "ingest_duplicates_total", table="decisions") == dupes_before + resent
    assert per_tier(again) == per_tier(samples)
    assert serve.scalar("SELECT count() FROM decisions") == REQUESTS + CANARIES
