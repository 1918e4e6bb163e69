"""A synthetic cascade router: realistic routing traffic with known parameters.

:func:`plan` is pure: a seeded generator of request plans (tiers, outcomes,
latencies, tokens, prices) from a :class:`Profile`. :func:`emit` plays the plans
through the real SDK (``RouterWatch.decision`` / ``attempt`` / ``accept``...),
adds feedback, invalid messages and duplicates on request, and returns a summary
of exactly what it sent, so a test or the demo can check the store against it.

Replaying is safe at any distance in time. The simulated timeline is anchored by ``start`` (its
first instant) or ``now`` (its end); the same profile, request count, seed and anchor give
byte-identical events (event ids and ``occurred_at`` included), whatever the wall clock says, so
ingest recognises a replay as exact copies and stores nothing twice, an hour or a month later.
Without an anchor the timeline ends at the wall clock's now, and the event ids are derived from
the timeline as well as the seed: a later unanchored run is new traffic with new event ids, never
an event id re-sent at another time (which ingest would store again once it is more than the
re-emission window away from the first copy). Request ids (``req-<seed>-<n>``) do not depend on
the anchor.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json

from routerwatch.sdk.client import RouterWatch
from routerwatch.sdk.recorder import DecisionRecorder


class TierProfile(BaseModel):
    """One rung of the simulated cascade."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    rank: int
    model: str
    provider: str
    fallback_provider: str
    price_in_per_1k: float
    price_out_per_1k: float
    latency_median_ms: float
    latency_sigma: float = 0.35
    failure_rate: float = 0.02
    failure_modes: dict[str, float] = Field(default_factory=lambda: {"timeout": 1.0})
    escalation_rate: dict[str, float] = Field(default_factory=dict, description="By category; top tier ignores it.")
    escalation_reasons: dict[str, float] = Field(default_factory=lambda: {"low_confidence": 1.0})
    gate_kind: str = "confidence"
    gate_threshold: float = 0.7
    verify_latency_ms: float = 0.0
    verify_cost_usd: float = 0.0
    quality: float = 0.9


class Profile(BaseModel):
    """Traffic shape of the simulated router. The defaults are a three-tier support cascade."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    router_id: str = "sim-router"
    tiers: list[TierProfile] = Field(
        default_factory=lambda: [
            TierProfile(
                name="small", rank=0, model="small-8b", provider="acme", fallback_provider="acme-eu",
                price_in_per_1k=0.00015, price_out_per_1k=0.0006, latency_median_ms=450,
                failure_rate=0.03,
                failure_modes={"format_drift": 0.4, "truncation": 0.2, "rate_limited": 0.3, "timeout": 0.1},
                escalation_rate={"billing": 0.15, "coding": 0.45, "chitchat": 0.05, "legal": 0.6},
                escalation_reasons={"low_confidence": 0.8, "schema_invalid": 0.2},
                gate_kind="confidence", gate_threshold=0.7, verify_latency_ms=0.0, quality=0.78,
            ),
            TierProfile(
                name="medium", rank=1, model="medium-70b", provider="acme", fallback_provider="globex",
                price_in_per_1k=0.0009, price_out_per_1k=0.0027, latency_median_ms=1400,
                failure_rate=0.02,
                failure_modes={"rate_limited": 0.4, "provider_error": 0.3, "timeout": 0.3},
                escalation_rate={"billing": 0.1, "coding": 0.3, "chitchat": 0.02, "legal": 0.4},
                escalation_reasons={"verifier_rejected": 1.0},
                gate_kind="verifier", gate_threshold=0.5, verify_latency_ms=300, verify_cost_usd=0.0004,
                quality=0.88,
            ),
            TierProfile(
                name="large", rank=2, model="large-frontier", provider="initech", fallback_provider="globex",
                price_in_per_1k=0.005, price_out_per_1k=0.015, latency_median_ms=4200,
                failure_rate=0.01,
                failure_modes={"timeout": 0.5, "provider_error": 0.3, "context_overflow": 0.2},
                quality=0.95,
            ),
        ]
    )
    categories: dict[str, float] = Field(
        default_factory=lambda: {"billing": 0.35, "coding": 0.25, "chitchat": 0.3, "legal": 0.1}
    )
    # Categories the classifier sends straight past the cheapest tier.
    entry_rank_by_category: dict[str, int] = Field(default_factory=lambda: {"legal": 1})
    # Per experiment variant, overrides of entry_rank_by_category (a variant that routes differently).
    entry_rank_by_variant: dict[str, dict[str, int]] = Field(default_factory=dict)
    tenants: int = 20
    shadow_share: float = 0.05
    experiment_id: str | None = "gate-threshold-test"
    variants: dict[str, float] = Field(default_factory=lambda: {"control": 0.5, "treatment": 0.5})
    feedback_share: float = 0.3
    minutes: float = Field(default=60.0, gt=0, description="Requests are spread over the last N minutes.")


@dataclass
class AttemptPlan:
    tier: TierProfile
    provider: str
    offset_ms: float
    latency_ms: float
    input_tokens: int
    output_tokens: int
    cost_usd: float
    outcome: str
    reason: str | None = None
    failure_mode: str | None = None
    gate: dict[str, Any] | None = None
    verify_latency_ms: float = 0.0
    verify_cost_usd: float = 0.0


@dataclass
class RequestPlan:
    event_id: str
    request_id: str
    occurred_at: float
    category: str
    tenant: str
    variant: str | None
    shadow: bool
    attempts: list[AttemptPlan] = field(default_factory=list)
    latency_ms: float = 0.0
    served: bool = False
    final_tier: str | None = None
    # Grades: (target, score, passed, attempt_index or None for the served answer).
    feedback: list[tuple[str, float, bool, int | None]] = field(default_factory=list)


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    names = list(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


def _uuid(rng: random.Random, salt: int = 0) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128) ^ salt, version=4))


def timeline(profile: Profile, now: float | None = None, start: float | None = None) -> tuple[float, float]:
    """The simulated timeline ``(start, end)`` in epoch seconds: ``profile.minutes`` long.

    Anchored by ``start`` or by its end ``now``; with neither it ends at the wall clock's now.
    Raises ``ValueError`` when both are given.
    """
    span = profile.minutes * 60
    if start is not None:
        if now is not None:
            raise ValueError("anchor the timeline by its start or by its end (now), not both")
        return start, start + span
    end = time.time() if now is None else now
    return end - span, end


def _identity_salt(profile: Profile, requests: int, start: float) -> int:
    """Mixed into every event id: the same seed on another timeline (anchor, length, request
    count or profile) sends other event ids, never the same ids at other times."""
    key = f"{round(start * 1000)}|{requests}|{profile.model_dump_json()}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=16).digest(), "big")


def plan(
    profile: Profile, requests: int, seed: int, now: float | None = None, *, start: float | None = None
) -> list[RequestPlan]:
    """Generate ``requests`` request plans over the timeline anchored by ``start`` or ``now``
    (see :func:`timeline`). The same profile, request count, seed and anchor give the same plans,
    event ids and times at any wall-clock time."""
    rng = random.Random(seed)
    # Whole milliseconds (what events carry): an anchor read back from the summary's ISO time
    # gives the same plans as the float it was printed from.
    start = round(timeline(profile, now, start)[0] * 1000) / 1000
    salt = _identity_salt(profile, requests, start)
    tiers = sorted(profile.tiers, key=lambda t: t.rank)
    plans = []
    for i in range(requests):
        category = _pick(rng, profile.categories)
        variant = _pick(rng, profile.variants) if profile.experiment_id else None
        # Pareto-ish tenants: a few tenants send most of the traffic.
        tenant = f"tenant-{min(int(rng.paretovariate(1.2)), profile.tenants):03d}"
        entry_rank = profile.entry_rank_by_variant.get(variant or "", {}).get(
            category, profile.entry_rank_by_category.get(category, tiers[0].rank)
        )
        p = RequestPlan(
            event_id=_uuid(rng, salt),
            request_id=f"req-{seed}-{i:07d}",
            occurred_at=start + (i + rng.random()) * (profile.minutes * 60 / max(requests, 1)),
            category=category,
            tenant=tenant,
            variant=variant,
            shadow=rng.random() < profile.shadow_share,
        )
        clock = rng.uniform(2, 15)  # routing overhead before the first call
        input_tokens = int(rng.uniform(150, 2500))
        for tier in (t for t in tiers if t.rank >= entry_rank):
            is_top = tier is tiers[-1]
            for provider in (tier.provider, tier.fallback_provider):
                attempt = _call(rng, tier, provider, clock, input_tokens)
                clock += attempt.latency_ms
                if rng.random() < tier.failure_rate:
                    attempt.outcome = "failed"
                    attempt.failure_mode = _pick(rng, tier.failure_modes)
                    attempt.output_tokens = 0
                    attempt.cost_usd = round(input_tokens * tier.price_in_per_1k / 1000, 8)
                    p.attempts.append(attempt)
                    continue  # retry once on the fallback provider, then move up
                escalate = not is_top and rng.random() < tier.escalation_rate.get(category, 0.0)
                if tier.gate_kind and not is_top:
                    score = rng.uniform(0.05, tier.gate_threshold - 0.01) if escalate else rng.uniform(
                        tier.gate_threshold, 0.99
                    )
                    attempt.gate = {
                        "kind": tier.gate_kind,
                        "score": round(score, 4),
                        "threshold": tier.gate_threshold,
                        "passed": not escalate,
                    }
                    attempt.verify_latency_ms = tier.verify_latency_ms * rng.uniform(0.7, 1.3) if tier.verify_latency_ms else 0.0
                    attempt.verify_cost_usd = tier.verify_cost_usd
                    clock += attempt.verify_latency_ms
                if escalate:
                    attempt.outcome = "escalated"
                    attempt.reason = _pick(rng, tier.escalation_reasons)
                    p.attempts.append(attempt)
                    break  # this tier is finished; go up
                attempt.outcome = "accepted"
                p.attempts.append(attempt)
                p.served, p.final_tier = True, tier.name
                break
            if p.served:
                break
        p.latency_ms = clock + rng.uniform(1, 5)
        if p.shadow:
            cheap = tiers[0]
            if p.final_tier != cheap.name or not p.served:
                shadow = _call(rng, cheap, cheap.provider, clock, input_tokens)
                shadow.outcome = "shadow"
                p.attempts.append(shadow)
            else:
                p.shadow = False  # the cheap tier served it: nothing to shadow
        _grade(rng, profile, tiers, p)
        plans.append(p)
    return plans


def _grade(rng: random.Random, profile: Profile, tiers: list[TierProfile], p: RequestPlan) -> None:
    """Grade a share of the answers: served, rejected (escalated) and shadow ones.

    A gated answer is correct with probability equal to its gate score (a
    calibrated gate); an ungated one with its tier's quality.
    """
    for index, a in enumerate(p.attempts):
        if a.outcome not in ("accepted", "escalated", "shadow") or rng.random() >= profile.feedback_share:
            continue
        p_correct = a.gate["score"] if a.gate else a.tier.quality
        passed = rng.random() < p_correct
        score = round(rng.uniform(0.6, 1.0) if passed else rng.uniform(0.0, 0.5), 3)
        if a.outcome == "accepted":
            p.feedback.append(("served", score, passed, None))
        else:
            p.feedback.append(("rejected" if a.outcome == "escalated" else "shadow", score, passed, index))


def _call(rng: random.Random, tier: TierProfile, provider: str, clock: float, input_tokens: int) -> AttemptPlan:
    latency = tier.latency_median_ms * math.exp(rng.gauss(0, tier.latency_sigma))
    output_tokens = int(rng.uniform(40, 600))
    cost = input_tokens * tier.price_in_per_1k / 1000 + output_tokens * tier.price_out_per_1k / 1000
    return AttemptPlan(
        tier=tier,
        provider=provider,
        offset_ms=round(clock, 3),
        latency_ms=round(latency, 3),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=round(cost, 8),
        outcome="",
    )


# Invalid messages the simulator can add, each with the DLQ reason it must get.
INVALID_KINDS: list[tuple[str, str]] = [
    ("undecodable", "undecodable"),
    ("truncated_json", "invalid_json"),
    ("negative_latency", "schema"),
    ("two_accepted", "schema"),
    ("unknown_outcome", "schema"),
    ("missing_escalation_reason", "schema"),
]


def invalid_payload(kind: str, base: dict[str, Any], event_id: str | None = None) -> bytes:
    """A message that breaks the contract in the named way (with ``event_id``, or a random one)."""
    if kind == "undecodable":
        return b"\xff\xfe\x00routerwatch\x80"
    if kind == "truncated_json":
        return to_json(base)[:40]
    doc = json.loads(to_json(base))
    doc["event_id"] = event_id or str(uuid.uuid4())
    first = doc["attempts"][0]
    if kind == "negative_latency":
        first["latency_ms"] = -5.0
    elif kind == "two_accepted":
        doc["attempts"] = [dict(first, index=0, outcome="accepted"), dict(first, index=1, outcome="accepted")]
        for a in doc["attempts"]:
            a.pop("escalation_reason", None)
            a.pop("failure_mode", None)
        doc["final"].update(served=True, tier=first["tier"], model=first["model"])
    elif kind == "unknown_outcome":
        first["outcome"] = "maybe"
    elif kind == "missing_escalation_reason":
        first["outcome"] = "escalated"
        first.pop("escalation_reason", None)
        first.pop("failure_mode", None)
    return json.dumps(doc).encode()


def record(rw: RouterWatch, profile: Profile, p: RequestPlan) -> DecisionRecorder:
    """Record one plan through the SDK's recorder API; the caller finishes (emits) it."""
    experiment = (profile.experiment_id, p.variant) if profile.experiment_id and p.variant else None
    d = rw.decision(
        request_id=p.request_id,
        category=p.category,
        tenant=p.tenant,
        experiment=experiment,
        shadow=p.shadow,
        event_id=p.event_id,
        occurred_at=p.occurred_at,
        source="support-chat",
    )
    for a in p.attempts:
        rec = d.attempt(a.tier.name, tier_rank=a.tier.rank, model=a.tier.model, provider=a.provider, offset_ms=a.offset_ms)
        common = {"latency_ms": a.latency_ms, "input_tokens": a.input_tokens, "output_tokens": a.output_tokens, "cost_usd": a.cost_usd}
        verify = {"verify_latency_ms": a.verify_latency_ms or None, "verify_cost_usd": a.verify_cost_usd or None}
        if a.outcome == "accepted":
            rec.accept(gate=a.gate, **verify, **common)
        elif a.outcome == "escalated":
            rec.escalate(a.reason or "low_confidence", gate=a.gate, **verify, **common)
        elif a.outcome == "failed":
            rec.fail(a.failure_mode or "other", **common)
        else:
            rec.shadow(**common)
    d.latency_ms = p.latency_ms
    return d


def events(
    profile: Profile, requests: int, seed: int, now: float | None = None, *, start: float | None = None
) -> list[dict[str, Any]]:
    """The RoutingDecision events :func:`emit` would send, as dicts, without sending anything."""
    offline = RouterWatch(bootstrap_servers="127.0.0.1:1", router_id=profile.router_id)
    return [record(offline, profile, p).to_event() for p in plan(profile, requests, seed, now, start=start)]


def emit(
    rw: RouterWatch,
    profile: Profile,
    requests: int,
    seed: int,
    *,
    invalid: int = 0,
    duplicates: int = 0,
    now: float | None = None,
    start: float | None = None,
) -> dict[str, Any]:
    """Play ``requests`` plans through the SDK and return a summary of what was handed to it.

    The timeline is anchored by ``start`` or ``now`` (see :func:`timeline`); the summary gives it
    back as ``start`` and ``end`` (ISO, UTC), so that a run can be replayed exactly with
    ``start=``. Everything sent (duplicates and invalid messages included) is a function of the
    arguments and the anchor, never of the wall clock once the anchor is fixed.
    """
    if invalid and not requests:
        raise ValueError("invalid messages are variations of simulated requests: --requests must be >= 1")
    first = round(timeline(profile, now, start)[0] * 1000) / 1000
    last = first + profile.minutes * 60
    plans = plan(profile, requests, seed, start=first)
    summary: Counter[str] = Counter()
    by_final: Counter[str] = Counter()
    by_outcome: Counter[str] = Counter()
    emitted: list[tuple[str, bytes]] = []
    for p in plans:
        d = record(rw, profile, p)
        d.finish(latency_ms=p.latency_ms)
        for a in p.attempts:
            by_outcome[a.outcome] += 1
        emitted.append((p.request_id, to_json(d.to_event())))
        by_final[p.final_tier or "not_served"] += 1
        summary["attempts"] += len(p.attempts)
        summary["shadow_requests"] += int(p.shadow)
        for k, (target, score, passed, index) in enumerate(p.feedback, start=1):
            rw.feedback(
                p.request_id, score=score, passed=passed, source="grader", target=target,
                attempt_index=index, grader="sim-grader-v1",
                event_id=str(uuid.UUID(int=uuid.UUID(p.event_id).int ^ k)),
                occurred_at=p.occurred_at + 30,
            )
            summary["feedback"] += 1
    rng = random.Random(seed + 1)
    for i in range(duplicates):
        key, value = emitted[rng.randrange(len(emitted))]
        rw.emit_raw(rw.config.decisions_topic, value, key.encode())
    invalid_by_reason: Counter[str] = Counter()
    for i in range(invalid):
        kind, reason = INVALID_KINDS[i % len(INVALID_KINDS)]
        base = json.loads(emitted[i % len(emitted)][1])
        # Not a valid event's id (the top bit flipped; feedback flips low bits): a replay sends the same bytes.
        event_id = str(uuid.UUID(int=uuid.UUID(base["event_id"]).int ^ (1 << 127) ^ i, version=4))
        rw.emit_raw(rw.config.decisions_topic, invalid_payload(kind, base, event_id), f"invalid-{i}".encode())
        invalid_by_reason[reason] += 1
    return {
        "seed": seed,
        "start": _iso(first),
        "end": _iso(last),
        "requests": requests,
        "valid": requests,
        "invalid": invalid,
        "invalid_by_reason": dict(invalid_by_reason),
        "duplicates": duplicates,
        "attempts": summary["attempts"],
        "feedback": summary["feedback"],
        "shadow_requests": summary["shadow_requests"],
        "served": requests - by_final.get("not_served", 0),
        "by_final_tier": dict(sorted(by_final.items())),
        "attempts_by_outcome": dict(sorted(by_outcome.items())),
    }


def _iso(at: float) -> str:
    """Epoch seconds as ISO UTC with milliseconds: what ``routerwatch simulate --start`` reads back."""
    return datetime.fromtimestamp(round(at, 3), timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
