"""Grouping LiteLLM calls into requests (routerwatch.integrations.litellm_collect), and the SDK's
collector hooks it relies on (current_decision, attach, reject, settle before emission)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from routerwatch.events.models import RoutingDecision
from routerwatch.integrations.litellm_collect import Tracker
from routerwatch.integrations.litellm_mapping import CallRecord
from routerwatch.sdk import current_decision


@pytest.fixture
def captured(make_rw):
    """A RouterWatch whose decisions are validated against the contract and kept, not sent."""
    rw = make_rw(router_id="litellm-router")
    events: list[dict] = []

    def submit(decision):
        event = decision.to_event()
        RoutingDecision.model_validate_json(json.dumps(event))
        events.append(event)

    rw._submit_decision = submit
    rw.events = events
    return rw


def record(call: str, trace: str, ok: bool, start: float, ms: float, tier: str = "small", rank: int | None = 0, **extra) -> CallRecord:
    fields = dict(
        call_id=call, trace_id=trace, ok=ok, start=start, end=start + ms / 1000.0, model="m-" + tier,
        provider="openai", model_group=tier, tier=tier, tier_rank=rank,
    )
    if ok:
        fields.update(input_tokens=10, output_tokens=5, cost_usd=0.001)
    else:
        fields.update(failure_mode="rate_limited")
    fields.update(extra)
    return CallRecord(**fields)


def test_a_fallback_walk_is_one_request_emitted_when_its_served_call_reports(captured):
    tracker = Tracker(captured, unserved_after_s=60)
    t0 = time.time()
    tracker.started("c1", "t")
    tracker.finished(record("c1", "t", False, t0, 20))
    tracker.started("c2", "t")
    assert captured.events == []
    tracker.finished(record("c2", "t", True, t0 + 0.03, 100, tier="large", rank=2))
    [event] = captured.events
    assert event["request_id"] == "t"
    assert [(a["tier"], a["outcome"], a.get("failure_mode")) for a in event["attempts"]] == [
        ("small", "failed", "rate_limited"), ("large", "accepted", None)]
    served = event["attempts"][1]
    assert served["offset_ms"] == pytest.approx(30.0)
    assert event["final"]["latency_ms"] == pytest.approx(130.0)
    assert event["final"]["latency_ms"] >= served["offset_ms"] + served["latency_ms"]
    assert event["final"]["cost_usd"] == pytest.approx(0.001)
    tracker.close(0)


def test_a_success_waits_for_the_walk_s_other_calls_still_in_flight(captured):
    tracker = Tracker(captured)
    t0 = time.time()
    tracker.started("c1", "t")
    tracker.started("c2", "t")
    tracker.finished(record("c2", "t", True, t0 + 0.01, 10))
    assert captured.events == []
    tracker.finished(record("c1", "t", False, t0, 5))
    assert [a["outcome"] for a in captured.events[0]["attempts"]] == ["failed", "accepted"]
    tracker.close(0)


def test_an_outcome_reported_twice_is_one_attempt(captured):
    tracker = Tracker(captured)
    t0 = time.time()
    tracker.started("c1", "t")
    tracker.finished(record("c1", "t", False, t0, 5))
    tracker.finished(record("c1", "t", False, t0, 5))
    tracker.finished(record("c2", "t", True, t0 + 0.01, 5))
    assert len(captured.events[0]["attempts"]) == 2
    assert tracker.stats()["duplicate_events"] == 1
    tracker.close(0)


def test_a_walk_that_only_failed_is_emitted_not_served_once_quiet(captured):
    tracker = Tracker(captured, unserved_after_s=30)
    t0 = time.time()
    tracker.started("c1", "t")
    tracker.finished(record("c1", "t", False, t0, 5))
    assert tracker.reap(now=time.monotonic() + 29) == 0
    assert tracker.reap(now=time.monotonic() + 31) == 1
    [event] = captured.events
    assert event["final"]["served"] is False and event["attempts"][0]["outcome"] == "failed"
    # A straggler of the emitted walk never becomes a second request.
    tracker.finished(record("c9", "t", True, t0 + 40, 5))
    assert len(captured.events) == 1 and tracker.stats()["late_events"] == 1
    tracker.close(0)


def test_a_call_that_never_reports_does_not_hold_its_walk_forever(captured):
    tracker = Tracker(captured, unserved_after_s=1, max_call_s=60)
    t0 = time.time()
    tracker.started("c1", "t")
    tracker.finished(record("c1", "t", False, t0, 5))
    tracker.started("c2", "t")
    assert tracker.reap(now=time.monotonic() + 30) == 0
    assert tracker.reap(now=time.monotonic() + 61) == 1
    assert tracker.stats()["unsettled_calls"] == 1
    tracker.close(0)


def test_calls_inside_a_with_block_join_its_decision_and_the_exit_waits_for_late_outcomes(captured):
    tracker = Tracker(captured, settle_timeout_s=5)
    with captured.decision(request_id="req-1", category="billing") as d:
        assert current_decision() is d
        t0 = time.time()
        tracker.started("a1", "small-call")
        tracker.finished(record("a1", "small-call", True, t0, 10))
        d.reject("low_confidence", score=0.3, threshold=0.7)
        tracker.started("b1", "large-call")
        tracker.finished(record("b1", "large-call", False, t0 + 0.02, 5, tier="large", rank=2))
        tracker.started("b2", "large-call")
        # LiteLLM reports a sync success from its thread pool, after the call returned.
        late = record("b2", "large-call", True, t0 + 0.03, 40, tier="large", rank=2)
        threading.Timer(0.3, tracker.finished, args=(late,)).start()
    assert current_decision() is None
    [event] = captured.events
    assert event["request_id"] == "req-1"
    assert [(a["index"], a["tier"], a["outcome"]) for a in event["attempts"]] == [
        (0, "small", "escalated"), (1, "large", "failed"), (2, "large", "accepted")]
    rejected = event["attempts"][0]
    assert rejected["escalation_reason"] == "low_confidence"
    assert rejected["gate"] == {"kind": "confidence", "score": 0.3, "threshold": 0.7, "passed": False}
    served = event["attempts"][2]
    assert event["final"]["latency_ms"] + 1.0 >= served["offset_ms"] + served["latency_ms"]
    assert event["final"]["tier"] == "large"
    assert tracker.stats()["requests_settled"] == 1
    assert tracker.stats().get("requests_emitted", 0) == 0
    tracker.close(0)


def test_the_wait_at_the_end_of_a_block_is_bounded(captured):
    tracker = Tracker(captured, settle_timeout_s=0.2)
    started = time.monotonic()
    with captured.decision() as d:
        tracker.started("a1", "call")
        tracker.finished(record("a1", "call", False, time.time(), 1))
        tracker.started("a2", "call")  # never reports (e.g. a stream left unread)
    assert time.monotonic() - started < 2.0
    [event] = captured.events
    assert event["final"]["served"] is False and len(event["attempts"]) == 1
    assert tracker.stats()["unsettled_calls"] == 1
    # Its outcome arriving later is counted, never a new request.
    tracker.finished(record("a2", "call", True, time.time(), 1))
    assert tracker.stats()["late_events"] == 1 and len(captured.events) == 1
    assert d.collectors
    tracker.close(0)


def test_an_answer_the_router_moved_on_from_without_a_verdict_is_an_unexplained_escalation(captured):
    tracker = Tracker(captured)
    with captured.decision():
        t0 = time.time()
        for n, tier in enumerate(["small", "large"]):
            tracker.started(f"c{n}", f"t{n}")
            tracker.finished(record(f"c{n}", f"t{n}", True, t0 + n, 5, tier=tier, rank=None))
    [event] = captured.events
    assert [(a["tier"], a["tier_rank"], a["outcome"], a.get("escalation_reason")) for a in event["attempts"]] == [
        ("small", 0, "escalated", "other"), ("large", 1, "accepted", None)]
    assert tracker.stats()["unexplained_escalations"] == 1
    tracker.close(0)


def test_async_block_waits_on_the_event_loop_for_outcomes_delivered_as_tasks(captured):
    tracker = Tracker(captured, settle_timeout_s=5)

    async def deliver_later(rec: CallRecord) -> None:
        await asyncio.sleep(0.2)
        tracker.finished(rec)

    async def request() -> None:
        async with captured.decision(request_id="r") as d:
            tracker.started("a1", "call")
            task = asyncio.get_running_loop().create_task(deliver_later(record("a1", "call", True, time.time(), 3)))
            assert current_decision() is d
        await task

    asyncio.run(request())
    [event] = captured.events
    assert event["final"]["served"] is True
    tracker.close(0)


def test_concurrent_async_blocks_keep_their_calls_apart(captured):
    tracker = Tracker(captured, settle_timeout_s=5)

    async def request(i: int) -> None:
        async with captured.decision(request_id=f"r{i}"):
            for hop in range(i % 3 + 1):
                await asyncio.sleep(0.001)
                tracker.started(f"c{i}-{hop}", f"t{i}-{hop}")
                tracker.finished(record(f"c{i}-{hop}", f"t{i}-{hop}", True, time.time(), 1, tier=f"tier{hop}", rank=hop))
                if hop < i % 3:
                    current_decision().reject("low_confidence", score=0.1, threshold=0.5)

    async def main() -> None:
        await asyncio.gather(*(request(i) for i in range(30)))

    asyncio.run(main())
    by_id = {e["request_id"]: e for e in captured.events}
    assert len(by_id) == 30
    for i in range(30):
        outcomes = [a["outcome"] for a in by_id[f"r{i}"]["attempts"]]
        assert outcomes == ["escalated"] * (i % 3) + ["accepted"]
    tracker.close(0)


def test_scoped_only_ignores_calls_outside_blocks():
    tracker = Tracker(None, scoped_only=True)
    tracker.started("c", "t")
    tracker.finished(record("c", "t", True, time.time(), 1))
    assert tracker.stats()["unscoped_calls"] == 2
    with pytest.raises(ValueError):
        Tracker(None)


def test_reject_without_an_integration_escalates_the_open_attempt(captured):
    with captured.decision() as d:
        d.attempt("small", tier_rank=0, model="m", provider="p")
        d.reject("schema_invalid", kind="schema_check", verify_latency_ms=3.0)
        d.attempt("large", tier_rank=1, model="m2", provider="p").accept()
    small = captured.events[0]["attempts"][0]
    assert small["outcome"] == "escalated" and small["gate"] == {"kind": "schema_check", "passed": False}
    assert small["verify_latency_ms"] == 3.0
    with pytest.raises(RuntimeError, match="open attempt"):
        with captured.decision() as d:
            d.reject("low_confidence")


def test_the_logger_hooks_swallow_and_count_their_errors(captured):
    from routerwatch.integrations.litellm import RouterWatchLogger

    logger = RouterWatchLogger(captured)
    logger.log_success_event({"litellm_params": 42, "litellm_call_id": object()}, None, "bad", object())
    logger.log_failure_event(None, None, None, None)
    asyncio.run(logger.async_log_success_event(None, None, None, None))
    logger.log_pre_api_call("m", [], {"litellm_call_id": "c", "litellm_trace_id": "t"})
    assert logger.stats()["errors"] >= 2
    logger.close(0)
    logger.close(0)
