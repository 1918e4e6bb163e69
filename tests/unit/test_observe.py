"""Per-tier metrics of the ingest path (routerwatch.ingest.observe), read back from the registry.

The metrics are process-wide, so every assertion is on a delta: a sample read
with ``REGISTRY.get_sample_value`` before and after observing, compared with
figures computed here, independently, from the event dicts themselves.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic_core import to_json

from routerwatch.events import RoutingDecision
from routerwatch.ingest.observe import LabelCap, observe_decisions, observe_stored
from routerwatch.ingest.processor import BatchProcessor, RawMessage
from routerwatch.ingest.sink import StoreReport
from routerwatch.simulate import Profile, events

PREFIX = "routerwatch_"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(PREFIX + name, labels) or 0.0


def family_total(name: str) -> float:
    """Sum of every sample called ``name`` (all label sets), to catch increments where none belong."""
    return sum(
        s.value for family in REGISTRY.collect() for s in family.samples if s.name == PREFIX + name
    )


class Deltas:
    """Reads a set of samples before and after a block and hands out the differences."""

    def __init__(self, keys: list[tuple[str, dict[str, str]]], totals: list[str]) -> None:
        self.keys = keys
        self.totals = totals
        self.before = self._read()

    def _read(self) -> dict[Any, float]:
        out: dict[Any, float] = {(n, tuple(sorted(lb.items()))): value(n, **lb) for n, lb in self.keys}
        out.update({(n, "*"): family_total(n) for n in self.totals})
        return out

    def done(self) -> Deltas:
        after = self._read()
        self.delta = {k: after[k] - self.before[k] for k in after}
        return self

    def __call__(self, name: str, **labels: str) -> float:
        return self.delta[(name, tuple(sorted(labels.items())))]

    def total(self, name: str) -> float:
        return self.delta[(name, "*")]


def harsh_profile() -> Profile:
    """The default cascade with failures frequent enough that every path and 'not served' occur."""
    base = Profile()
    tiers = [t.model_copy(update={"failure_rate": 0.35}) for t in base.tiers]
    return base.model_copy(update={"tiers": tiers, "shadow_share": 0.4})


def path_of(event: dict[str, Any]) -> str:
    """kept / escalated / other, straight from docs/design-notes.md's definitions (section 2).

    escalated request: at least one escalation (served in the end or not); kept request: served by
    its entry tier with no escalation; other: the rest (unserved, or moved up by failures only).
    """
    attempts = [a for a in event["attempts"] if a["outcome"] != "shadow"]
    if any(a["outcome"] == "escalated" for a in attempts):
        return "escalated"
    if event["final"]["served"] and attempts[0]["tier"] == event["final"]["tier"]:
        return "kept"
    return "other"


def expected(evs: list[dict[str, Any]]) -> dict[str, Any]:
    """What observing ``evs`` must add, computed from the dicts without the code under test."""
    out: dict[str, Any] = {
        "attempts": Counter(), "escalations": Counter(), "failures": Counter(), "requests": Counter(),
        "paths": Counter(), "attempt_count": Counter(), "attempt_sum": Counter(), "path_sum": Counter(),
        "model_cost": Counter(), "verifier_cost": Counter(), "canaries": 0,
    }
    for e in evs:
        if e.get("canary_id"):
            out["canaries"] += 1
            continue
        for a in e["attempts"]:
            tier, outcome = a["tier"], a["outcome"]
            out["attempts"][(tier, e["category"], outcome)] += 1
            out["attempt_count"][(tier, outcome)] += 1
            out["attempt_sum"][(tier, outcome)] += (a["latency_ms"] + (a.get("verify_latency_ms") or 0.0)) / 1000
            if outcome == "shadow":
                continue
            out["model_cost"][tier] += a.get("cost_usd", 0.0)
            out["verifier_cost"][tier] += a.get("verify_cost_usd") or 0.0
            if outcome == "escalated":
                out["escalations"][(tier, e["category"], a["escalation_reason"])] += 1
            if outcome == "failed":
                out["failures"][(tier, a["failure_mode"])] += 1
        out["requests"][e["final"]["tier"] if e["final"]["served"] else "not_served"] += 1
        out["paths"][path_of(e)] += 1
        out["path_sum"][path_of(e)] += e["final"]["latency_ms"] / 1000
    return out


def keys_for(exp: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    keys: list[tuple[str, dict[str, str]]] = []
    keys += [("attempts_total", dict(tier=t, category=c, outcome=o)) for t, c, o in exp["attempts"]]
    keys += [("escalations_total", dict(tier=t, category=c, reason=r)) for t, c, r in exp["escalations"]]
    keys += [("attempt_failures_total", dict(tier=t, failure_mode=m)) for t, m in exp["failures"]]
    keys += [("requests_total", dict(final_tier=t)) for t in exp["requests"]]
    for p in ("kept", "escalated", "other"):
        keys += [("request_duration_seconds_count", dict(path=p)), ("request_duration_seconds_sum", dict(path=p))]
    for t, o in exp["attempt_count"]:
        keys += [("attempt_duration_seconds_count", dict(tier=t, outcome=o)),
                 ("attempt_duration_seconds_sum", dict(tier=t, outcome=o))]
    keys += [("model_cost_usd_total", dict(tier=t)) for t in exp["model_cost"]]
    keys += [("verifier_cost_usd_total", dict(tier=t)) for t in exp["verifier_cost"]]
    keys += [("canary_decisions_total", {})]
    return keys


TOTALS = [
    "attempts_total", "escalations_total", "attempt_failures_total", "requests_total",
    "request_duration_seconds_count", "attempt_duration_seconds_count", "model_cost_usd_total",
    "verifier_cost_usd_total", "canary_decisions_total",
]


def check(d: Deltas, exp: dict[str, Any]) -> None:
    for (t, c, o), n in exp["attempts"].items():
        assert d("attempts_total", tier=t, category=c, outcome=o) == n, (t, c, o)
    assert d.total("attempts_total") == sum(exp["attempts"].values())
    for (t, c, r), n in exp["escalations"].items():
        assert d("escalations_total", tier=t, category=c, reason=r) == n, (t, c, r)
    assert d.total("escalations_total") == sum(exp["escalations"].values())
    for (t, m), n in exp["failures"].items():
        assert d("attempt_failures_total", tier=t, failure_mode=m) == n, (t, m)
    assert d.total("attempt_failures_total") == sum(exp["failures"].values())
    for t, n in exp["requests"].items():
        assert d("requests_total", final_tier=t) == n, t
    assert d.total("requests_total") == sum(exp["requests"].values())
    for p in ("kept", "escalated", "other"):
        assert d("request_duration_seconds_count", path=p) == exp["paths"][p], p
        assert d("request_duration_seconds_sum", path=p) == pytest.approx(exp["path_sum"][p], abs=1e-9)
    assert d.total("request_duration_seconds_count") == sum(exp["paths"].values())
    for (t, o), n in exp["attempt_count"].items():
        assert d("attempt_duration_seconds_count", tier=t, outcome=o) == n, (t, o)
        assert d("attempt_duration_seconds_sum", tier=t, outcome=o) == pytest.approx(exp["attempt_sum"][(t, o)], abs=1e-9)
    assert d.total("attempt_duration_seconds_count") == sum(exp["attempt_count"].values())
    for t, usd in exp["model_cost"].items():
        assert d("model_cost_usd_total", tier=t) == pytest.approx(usd, abs=1e-9), t
    assert d.total("model_cost_usd_total") == pytest.approx(sum(exp["model_cost"].values()), abs=1e-9)
    for t, usd in exp["verifier_cost"].items():
        assert d("verifier_cost_usd_total", tier=t) == pytest.approx(usd, abs=1e-9), t
    assert d.total("verifier_cost_usd_total") == pytest.approx(sum(exp["verifier_cost"].values()), abs=1e-9)
    assert d("canary_decisions_total") == exp["canaries"]


def validated(evs: list[dict[str, Any]]) -> list[RoutingDecision]:
    return [RoutingDecision.model_validate(e) for e in evs]


def test_simulated_traffic_adds_exactly_what_the_events_hold():
    evs = events(harsh_profile(), 400, seed=11)
    exp = expected(evs)
    # The profile exercises every path, unserved requests, failures and shadow attempts.
    assert all(exp["paths"][p] > 0 for p in ("kept", "escalated", "other")), exp["paths"]
    assert exp["requests"]["not_served"] > 0
    escalated_unserved = [e for e in evs if not e["final"]["served"] and path_of(e) == "escalated"]
    assert escalated_unserved, "the batch must hold requests escalated and then not served"
    assert any(o == "shadow" for _, o in exp["attempt_count"])
    assert sum(exp["verifier_cost"].values()) > 0
    d = Deltas(keys_for(exp), TOTALS)
    observe_decisions(validated(evs))
    check(d.done(), exp)


def test_costs_add_up_to_the_requests_final_cost():
    evs = events(Profile(), 200, seed=12)
    d = Deltas([], ["model_cost_usd_total", "verifier_cost_usd_total"])
    observe_decisions(validated(evs))
    d.done()
    spent = d.total("model_cost_usd_total") + d.total("verifier_cost_usd_total")
    assert spent == pytest.approx(sum(e["final"]["cost_usd"] for e in evs), abs=1e-9)


def test_canary_probes_only_count_as_canary_decisions():
    evs = events(harsh_profile(), 120, seed=13)
    for e in evs[::3]:
        e["canary_id"] = "probe-billing"
    exp = expected(evs)
    assert exp["canaries"] == 40
    d = Deltas(keys_for(exp), TOTALS)
    observe_decisions(validated(evs))
    check(d.done(), exp)
    only_probes = events(Profile(), 10, seed=14)
    for e in only_probes:
        e["canary_id"] = "probe-x"
    d = Deltas([("canary_decisions_total", {})], [t for t in TOTALS if t != "canary_decisions_total"])
    observe_decisions(validated(only_probes))
    d.done()
    assert d("canary_decisions_total") == 10
    assert all(d.total(t) == 0 for t in d.totals)


def _decision(category: str, attempts: list[dict[str, Any]], final: dict[str, Any], **extra: Any) -> RoutingDecision:
    base = dict(tier_rank=0, model="m", provider="p", input_tokens=10, output_tokens=10)
    return RoutingDecision.model_validate(
        dict(
            event_id=str(uuid.uuid4()),
            request_id=str(uuid.uuid4()),
            occurred_at="2026-01-01T00:00:00Z",
            router={"id": "unit-router", "strategy": "cascade"},
            category=category,
            attempts=[dict(base, index=i, **a) for i, a in enumerate(attempts)],
            final=final,
            **extra,
        )
    )


def test_shadow_attempts_count_as_shadow_and_never_in_request_latency():
    category = f"shadowcat-{uuid.uuid4().hex[:8]}"
    # The shadow attempt is slow (100 s) and expensive; the request itself took 3 s.
    escalated = _decision(
        category,
        [
            dict(tier="small", latency_ms=400.0, cost_usd=0.001, outcome="escalated", escalation_reason="low_confidence"),
            dict(tier="large", latency_ms=2500.0, cost_usd=0.01, outcome="accepted"),
            dict(tier="small", latency_ms=100_000.0, cost_usd=5.0, outcome="shadow"),
        ],
        {"served": True, "tier": "large", "model": "m", "latency_ms": 3000.0, "cost_usd": 0.011},
        shadow=True,
    )
    # A shadow attempt ahead of the entry tier must not make the request look escalated or moved.
    shadow_first = _decision(
        category,
        [
            dict(tier="small", latency_ms=90_000.0, cost_usd=5.0, outcome="shadow"),
            dict(tier="medium", latency_ms=200.0, cost_usd=0.002, outcome="accepted"),
        ],
        {"served": True, "tier": "medium", "model": "m", "latency_ms": 210.0, "cost_usd": 0.002},
        shadow=True,
    )
    keys = [
        ("attempts_total", dict(tier="small", category=category, outcome="shadow")),
        ("attempt_duration_seconds_count", dict(tier="small", outcome="shadow")),
        ("attempt_duration_seconds_sum", dict(tier="small", outcome="shadow")),
        ("attempt_duration_seconds_bucket", dict(tier="small", outcome="shadow", le="120.0")),
        ("attempt_duration_seconds_bucket", dict(tier="small", outcome="shadow", le="60.0")),
        ("model_cost_usd_total", dict(tier="small")),
    ]
    for p in ("kept", "escalated", "other"):
        keys += [("request_duration_seconds_count", dict(path=p)), ("request_duration_seconds_sum", dict(path=p)),
                 ("request_duration_seconds_bucket", dict(path=p, le="60.0"))]
    d = Deltas(keys, ["requests_total"])
    observe_decisions([escalated, shadow_first])
    d.done()
    assert d("attempts_total", tier="small", category=category, outcome="shadow") == 2
    assert d("attempt_duration_seconds_count", tier="small", outcome="shadow") == 2
    assert d("attempt_duration_seconds_sum", tier="small", outcome="shadow") == pytest.approx(190.0)
    assert d("attempt_duration_seconds_bucket", tier="small", outcome="shadow", le="120.0") == 2
    assert d("attempt_duration_seconds_bucket", tier="small", outcome="shadow", le="60.0") == 0
    assert d("model_cost_usd_total", tier="small") == pytest.approx(0.001, abs=1e-12)  # shadow spend excluded
    assert d("request_duration_seconds_count", path="escalated") == 1
    assert d("request_duration_seconds_sum", path="escalated") == pytest.approx(3.0)
    assert d("request_duration_seconds_count", path="kept") == 1
    assert d("request_duration_seconds_sum", path="kept") == pytest.approx(0.21)
    assert d("request_duration_seconds_count", path="other") == 0
    for p in ("kept", "escalated"):
        assert d("request_duration_seconds_bucket", path=p, le="60.0") == 1  # no 90-100 s request
    assert d.total("requests_total") == 2


def test_paths_for_failures_then_fallback_and_unserved_requests():
    category = f"pathcat-{uuid.uuid4().hex[:8]}"
    same_tier_retry = _decision(  # failed, retried on the same tier: still served by the entry tier
        category,
        [dict(tier="small", latency_ms=100.0, outcome="failed", failure_mode="timeout"),
         dict(tier="small", latency_ms=100.0, outcome="accepted")],
        {"served": True, "tier": "small", "model": "m", "latency_ms": 205.0, "cost_usd": 0.0},
    )
    moved_by_failure = _decision(
        category,
        [dict(tier="small", latency_ms=100.0, outcome="failed", failure_mode="rate_limited"),
         dict(tier="large", latency_ms=900.0, outcome="accepted")],
        {"served": True, "tier": "large", "model": "m", "latency_ms": 1005.0, "cost_usd": 0.0},
    )
    escalated_unserved = _decision(
        category,
        [dict(tier="small", latency_ms=100.0, outcome="escalated", escalation_reason="schema_invalid"),
         dict(tier="large", latency_ms=900.0, outcome="failed", failure_mode="provider_error")],
        {"served": False, "latency_ms": 1005.0, "cost_usd": 0.0},
    )
    failed_unserved = _decision(
        category,
        [dict(tier="small", latency_ms=100.0, outcome="failed", failure_mode="timeout"),
         dict(tier="large", latency_ms=900.0, outcome="failed", failure_mode="provider_error")],
        {"served": False, "latency_ms": 1003.0, "cost_usd": 0.0},
    )
    keys = [("request_duration_seconds_count", dict(path=p)) for p in ("kept", "escalated", "other")]
    keys += [("request_duration_seconds_sum", dict(path="escalated"))]
    keys += [("requests_total", dict(final_tier=t)) for t in ("small", "large", "not_served")]
    keys += [("escalations_total", dict(tier="small", category=category, reason="schema_invalid")),
             ("attempt_failures_total", dict(tier="large", failure_mode="provider_error"))]
    d = Deltas(keys, [])
    observe_decisions([same_tier_retry, moved_by_failure, escalated_unserved, failed_unserved])
    d.done()
    assert d("request_duration_seconds_count", path="kept") == 1
    # Escalated and then not served is an escalated request (at least one escalation), as in SQL.
    assert d("request_duration_seconds_count", path="escalated") == 1
    assert d("request_duration_seconds_sum", path="escalated") == pytest.approx(1.005)
    assert d("request_duration_seconds_count", path="other") == 2
    assert [d("requests_total", final_tier=t) for t in ("small", "large", "not_served")] == [1, 1, 2]
    assert d("escalations_total", tier="small", category=category, reason="schema_invalid") == 1
    assert d("attempt_failures_total", tier="large", failure_mode="provider_error") == 2


def test_label_cap_passes_the_first_n_distinct_values_and_folds_the_rest():
    cap = LabelCap(5)
    values = [f"c{i}" for i in range(10)]
    assert [cap(v) for v in values] == values[:5] + ["other"] * 5
    assert [cap(v) for v in reversed(values)] == ["other"] * 5 + list(reversed(values[:5]))
    assert cap.admitted == frozenset(values[:5])
    assert [LabelCap(0)(v) for v in values[:2]] == ["other", "other"]
    with pytest.raises(ValueError):
        LabelCap(-1)


def test_label_cap_is_consistent_across_threads():
    cap = LabelCap(50)
    values = [f"v{i}" for i in range(400)]
    results: list[dict[str, str]] = []
    start = threading.Barrier(8)

    def work(offset: int) -> None:
        start.wait()
        seen = {}
        for i in range(len(values)):
            v = values[(i * 7 + offset * 53) % len(values)]
            seen[v] = cap(v)
        results.append(seen)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cap.admitted) == 50
    for v in values:
        got = {r[v] for r in results}
        assert got == ({v} if v in cap.admitted else {"other"}), (v, got)


def test_categories_beyond_the_cap_are_reported_as_other():
    n = 4
    tag = uuid.uuid4().hex[:8]
    categories = [f"capcat-{tag}-{i}" for i in range(n + 5)]
    base = events(Profile(), len(categories) * 3, seed=15)
    for i, e in enumerate(base):
        e["category"] = categories[i % len(categories)]
    per_category = Counter()
    for e in base:
        per_category[e["category"]] += len(e["attempts"])
    keys = [("attempts_total", dict(tier=t, category=c, outcome=o))
            for t in ("small", "medium", "large") for c in [*categories, "other"]
            for o in ("accepted", "escalated", "failed", "shadow")]
    keys.append(("metrics_label_overflow_total", dict(label="category")))
    d = Deltas(keys, [])
    observe_decisions(validated(base), categories=LabelCap(n))
    d.done()

    def attempts_of(category: str) -> float:
        return sum(d(name, **lb) for name, lb in keys if lb.get("category") == category)

    assert [attempts_of(c) for c in categories[:n]] == [per_category[c] for c in categories[:n]]
    assert [attempts_of(c) for c in categories[n:]] == [0] * 5
    assert attempts_of("other") == sum(per_category[c] for c in categories[n:])
    assert d("metrics_label_overflow_total", label="category") == 5 * 3  # decisions folded


def test_observe_stored_reads_fresh_decisions_of_decision_batches_only():
    evs = validated(events(Profile(), 30, seed=16))
    d = Deltas([], ["requests_total"])
    observe_stored("feedback", StoreReport(fresh_decisions=evs))  # wrong kind: ignored
    observe_stored("decision", StoreReport(inserted={"decisions": 0}))  # nothing fresh
    observe_stored("decision", StoreReport(fresh_decisions=evs[:7]))
    assert d.done().total("requests_total") == 7


def test_a_broken_event_is_logged_not_raised():
    observe_decisions([object()])  # type: ignore[list-item]


class DedupingSink:
    """Stores like the real sink at the level the processor sees: already-stored event_ids are skipped."""

    def __init__(self) -> None:
        self.stored: set = set()

    def store_batch(self, kind, items):
        fresh = [i.event for i in items if i.event.event_id not in self.stored]
        self.stored.update(e.event_id for e in fresh)
        return StoreReport(
            inserted={"decisions": len(fresh)},
            duplicates={"decisions": len(items) - len(fresh)},
            fresh_decisions=fresh,
        )


def test_the_processor_observes_only_what_the_sink_inserted():
    async def dead_letter(letter):  # pragma: no cover - every message here is valid
        raise AssertionError(letter)

    evs = events(Profile(), 50, seed=17)
    raw = [RawMessage("decisions", 0, i, b"k", to_json(e)) for i, e in enumerate(evs)]
    processor = BatchProcessor("decision", DedupingSink(), dead_letter)
    d = Deltas([], ["requests_total", "attempts_total"])
    asyncio.run(processor.process(raw[:30]))
    asyncio.run(processor.process(raw))  # 30 redelivered, 20 new
    asyncio.run(processor.process(raw))  # a replay: nothing new
    d.done()
    assert d.total("requests_total") == 50
    assert d.total("attempts_total") == sum(len(e["attempts"]) for e in evs)


def test_observe_many_matches_observing_one_by_one():
    from prometheus_client import CollectorRegistry, Histogram

    from routerwatch.ingest.observe import observe_many

    registry = CollectorRegistry()
    buckets = (0.1, 0.5, 1.0, 2.5)
    one = Histogram("one_by_one_seconds", "x", buckets=buckets, registry=registry)
    many = Histogram("bulk_seconds", "x", buckets=buckets, registry=registry)
    # Values on, between, below and above the bounds (the +Inf bucket included).
    values = [0.0, 0.1, 0.1000001, 0.3, 0.5, 0.99, 1.0, 2.5, 2.6, 40.0] * 7
    for v in values:
        one.observe(v)
    observe_many(many, values)
    observe_many(many, [])

    def samples(name: str) -> dict[str, float]:
        return {
            (s.name.removeprefix(name) + s.labels.get("le", "")): s.value
            for metric in registry.collect()
            if metric.name == name
            for s in metric.samples
            if not s.name.endswith("_created")
        }

    a, b = samples("one_by_one_seconds"), samples("bulk_seconds")
    assert a.keys() == b.keys() and len(a) == len(buckets) + 3
    for key in a:
        assert b[key] == pytest.approx(a[key], rel=1e-12), key
