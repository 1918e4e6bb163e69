"""The synthetic cascade: deterministic plans, valid events, shares that follow the profile."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic_core import to_json

from routerwatch.events import InvalidEventError, RoutingDecision, decode
from routerwatch.sdk import RouterWatch
from routerwatch.simulate import INVALID_KINDS, Profile, RequestPlan, TierProfile, emit, invalid_payload, plan

MakeRw = Callable[..., RouterWatch]
NOW = 1_700_000_000.0
EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"


def _signature(plans: list[RequestPlan]) -> list[tuple[object, ...]]:
    return [
        (
            p.event_id, p.request_id, p.occurred_at, p.category, p.tenant, p.variant, p.shadow, p.served,
            p.final_tier, p.latency_ms, p.feedback,
            tuple((a.tier.name, a.provider, a.outcome, a.reason, a.failure_mode, a.latency_ms, a.cost_usd) for a in p.attempts),
        )
        for p in plans
    ]


def _harsh_profile() -> Profile:
    """Failure-heavy traffic, so unserved requests, fallbacks and shadows all occur in a small sample."""
    base = Profile()
    tiers = [t.model_copy(update={"failure_rate": 0.5}) for t in base.tiers]
    return base.model_copy(update={"tiers": tiers, "shadow_share": 0.5, "feedback_share": 0.8})


# -- plan() ---------------------------------------------------------------------------------


def test_plan_is_deterministic_for_a_seed() -> None:
    first = plan(Profile(), 500, seed=11, now=NOW)
    again = plan(Profile(), 500, seed=11, now=NOW)
    assert _signature(first) == _signature(again)
    assert len(first) == 500
    assert len({p.event_id for p in first}) == 500


def test_plan_differs_for_another_seed() -> None:
    first = plan(Profile(), 500, seed=11, now=NOW)
    other = plan(Profile(), 500, seed=12, now=NOW)
    assert not {p.event_id for p in first} & {p.event_id for p in other}
    assert [[a.outcome for a in p.attempts] for p in first] != [[a.outcome for a in p.attempts] for p in other]
    assert [p.category for p in first] != [p.category for p in other]


def test_plan_spreads_requests_over_the_window_in_order() -> None:
    profile = Profile(minutes=10)
    plans = plan(profile, 200, seed=3, now=NOW)
    times = [p.occurred_at for p in plans]
    assert times == sorted(times)
    assert NOW - 600 <= times[0] and times[-1] <= NOW


@pytest.mark.parametrize("profile", [Profile(), _harsh_profile()], ids=["default", "harsh"])
def test_plans_follow_the_cascade_rules(profile: Profile) -> None:
    top = max(t.rank for t in profile.tiers)
    for p in plan(profile, 3000, seed=5, now=NOW):
        live = [a for a in p.attempts if a.outcome != "shadow"]
        assert live, p.request_id
        for a in p.attempts:
            if a.outcome == "escalated":
                assert a.tier.rank < top, "the top tier has nowhere to escalate to"
                assert a.reason is not None and a.gate is not None and a.gate["passed"] is False
            if a.outcome == "failed":
                assert a.failure_mode is not None and a.output_tokens == 0
        for before, after in zip(live, live[1:]):
            if before.outcome == "escalated":
                assert after.tier.rank > before.tier.rank
            assert after.offset_ms >= before.offset_ms + before.latency_ms - 0.002  # each rounded to 3 decimals
        accepted = [a for a in p.attempts if a.outcome == "accepted"]
        assert p.served == bool(accepted) and len(accepted) <= 1
        if accepted:
            assert live[-1] is accepted[0] and p.final_tier == accepted[0].tier.name
            assert p.latency_ms >= accepted[0].offset_ms + accepted[0].latency_ms
        shadows = [a for a in p.attempts if a.outcome == "shadow"]
        assert p.shadow == bool(shadows)
        assert all(a.tier.rank == 0 for a in shadows)  # the shadow slice measures the cheapest tier
        entry = profile.entry_rank_by_category.get(p.category, 0)
        assert live[0].tier.rank == entry


def test_shares_follow_the_profile_for_a_large_sample() -> None:
    profile = Profile()
    plans = plan(profile, 20_000, seed=2024, now=NOW)
    small = next(t for t in profile.tiers if t.rank == 0)
    decided: Counter[str] = Counter()
    escalated: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    for p in plans:
        categories[p.category] += 1
        for a in p.attempts:
            if a.tier.name == small.name and a.outcome in ("accepted", "escalated"):
                decided[p.category] += 1
                escalated[p.category] += a.outcome == "escalated"
    for category, rate in small.escalation_rate.items():
        if profile.entry_rank_by_category.get(category, 0) > small.rank:
            assert decided[category] == 0, f"{category} skips the small tier"
            continue
        assert decided[category] > 1000
        assert escalated[category] / decided[category] == pytest.approx(rate, abs=0.02), category
    total = sum(categories.values())
    for category, share in profile.categories.items():
        assert categories[category] / total == pytest.approx(share, abs=0.02)
    shadow_share = sum(p.shadow for p in plans) / len(plans)
    # Requests the cheap tier served are taken out of the slice: nothing to shadow.
    assert 0 < shadow_share <= profile.shadow_share + 0.01
    failed_small = sum(a.tier.name == small.name and a.outcome == "failed" for p in plans for a in p.attempts)
    tried_small = sum(a.tier.name == small.name and a.outcome != "shadow" for p in plans for a in p.attempts)
    assert failed_small / tried_small == pytest.approx(small.failure_rate, abs=0.01)


# -- played through the SDK -------------------------------------------------------------------


@pytest.mark.parametrize("profile", [Profile(), _harsh_profile()], ids=["default", "harsh"])
def test_every_planned_request_is_a_valid_event_in_strict_mode(make_rw: MakeRw, profile: Profile) -> None:
    rw = make_rw(strict=True, max_queue=100_000)
    requests = 2000
    summary = emit(rw, profile, requests, seed=9, now=NOW)  # strict mode raises on the first invalid event
    plans = plan(profile, requests, seed=9, now=NOW)
    stats = rw.stats()
    assert stats["enqueued"] == requests + summary["feedback"]
    assert stats["dropped"] == 0
    assert summary["feedback"] == sum(len(p.feedback) for p in plans)
    assert summary["served"] == sum(p.served for p in plans)
    assert summary["attempts"] == sum(len(p.attempts) for p in plans)
    assert summary["by_final_tier"] == dict(sorted(Counter(p.final_tier or "not_served" for p in plans).items()))
    assert set(summary["attempts_by_outcome"]) == {"accepted", "escalated", "failed", "shadow"}
    # The queued decisions are the planned ones, with the planned ids and outcomes.
    queued = [payload for _, _, payload in rw._queue if not isinstance(payload, dict)]
    assert len(queued) == requests
    for p, recorder in zip(plans, queued):
        event = decode(RoutingDecision, to_json(recorder.to_event()))
        assert str(event.event_id) == p.event_id
        assert [a.outcome for a in event.attempts] == [a.outcome for a in p.attempts]
        assert event.final.served == p.served and event.final.tier == p.final_tier


def test_harsh_profile_produces_unserved_requests(make_rw: MakeRw) -> None:
    rw = make_rw(strict=True, max_queue=100_000)
    summary = emit(rw, _harsh_profile(), 2000, seed=9, now=NOW)
    assert summary["by_final_tier"].get("not_served", 0) > 0
    assert summary["served"] < 2000


def test_emit_adds_duplicates_and_invalid_messages(make_rw: MakeRw) -> None:
    rw = make_rw(max_queue=100_000)
    summary = emit(rw, Profile(), 50, seed=4, invalid=len(INVALID_KINDS) * 2, duplicates=5, now=NOW)
    assert summary["invalid_by_reason"] == dict(Counter(reason for _, reason in INVALID_KINDS * 2))
    raw = [payload for _, _, payload in rw._queue if isinstance(payload, bytes)]
    assert len(raw) == 5 + len(INVALID_KINDS) * 2
    duplicates, invalid = raw[:5], raw[5:]
    planned_ids = {p.event_id for p in plan(Profile(), 50, seed=4, now=NOW)}
    for value in duplicates:
        assert str(decode(RoutingDecision, value).event_id) in planned_ids
    for value, (_, reason) in zip(invalid, INVALID_KINDS * 2):
        with pytest.raises(InvalidEventError) as caught:
            decode(RoutingDecision, value)
        assert caught.value.reason == reason


def test_emit_refuses_invalid_without_requests(make_rw: MakeRw) -> None:
    with pytest.raises(ValueError, match="--requests"):
        emit(make_rw(), Profile(), 0, seed=1, invalid=1)


# -- invalid_payload() ----------------------------------------------------------------------------

BASES = sorted((EXAMPLES / "valid").glob("decision_*.json"))


@pytest.mark.parametrize(("kind", "reason"), INVALID_KINDS, ids=[k for k, _ in INVALID_KINDS])
@pytest.mark.parametrize("base_path", BASES, ids=[p.stem for p in BASES])
def test_invalid_payload_fails_with_the_listed_reason(kind: str, reason: str, base_path: Path) -> None:
    base = json.loads(base_path.read_bytes())
    decode(RoutingDecision, json.dumps(base))  # the base itself is valid
    with pytest.raises(InvalidEventError) as caught:
        decode(RoutingDecision, invalid_payload(kind, base))
    assert caught.value.reason == reason


def test_invalid_payload_does_not_modify_its_base() -> None:
    base = json.loads((EXAMPLES / "valid" / "decision_cascade_escalated_to_large.json").read_bytes())
    snapshot = json.dumps(base, sort_keys=True)
    for kind, _ in INVALID_KINDS:
        invalid_payload(kind, base)
    assert json.dumps(base, sort_keys=True) == snapshot


def test_tier_profile_forbids_unknown_settings() -> None:
    with pytest.raises(ValueError):
        TierProfile(name="x", rank=0, model="m", provider="p", fallback_provider="q", price_in_per_1k=0,
                    price_out_per_1k=0, latency_median_ms=1, escalation_rte={})  # type: ignore[call-arg]
