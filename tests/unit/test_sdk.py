"""The router-side SDK without a broker: events built, validated, queued, dropped, closed."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from pydantic_core import to_json

from routerwatch.events import InvalidEventError, Outcome, QualityFeedback, RoutingDecision, decode
from routerwatch.sdk import DECISIONS_TOPIC, FEEDBACK_TOPIC, DecisionRecorder, RouterWatch

MakeRw = Callable[..., RouterWatch]


def _decode(recorder: DecisionRecorder) -> RoutingDecision:
    return decode(RoutingDecision, to_json(recorder.to_event()))


def _queued(rw: RouterWatch) -> list[tuple[str, bytes | None, object]]:
    return list(rw._queue)


def _drop_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    # The sender also warns that it cannot reach Kafka; only the drop lines are rate-limited.
    return [
        r for r in caplog.records
        if r.name == "routerwatch.sdk" and r.levelno == logging.WARNING and "dropped" in r.getMessage()
    ]


# -- building the event ---------------------------------------------------------------------


def test_cascade_event_final_summary_and_cost(make_rw: MakeRw) -> None:
    rw = make_rw(router_version="1.2.3", policy_version="p7", strategy="hybrid", environment="staging")
    with rw.decision(
        request_id="req-1", category="billing", tenant="t-1", source="chat", experiment=("exp", "treatment"),
        route={"confidence": 0.6, "rule": "r1"}, prompt={"hash": "abc", "length": 10},
        quality={"score": 0.9, "passed": True}, occurred_at=1_700_000_000.25,
        event_id="00000000-0000-4000-8000-000000000001",
    ) as d:
        a = d.attempt("small", tier_rank=0, model="small-8b", provider="acme", offset_ms=5.0)
        a.escalate(
            "low_confidence", latency_ms=100.0, cost_usd=0.001, verify_cost_usd=0.0004, verify_latency_ms=20.0,
            gate={"kind": "confidence", "score": 0.4, "threshold": 0.7, "passed": False},
        )
        b = d.attempt("large", tier_rank=2, model="large-x", provider="initech", offset_ms=130.0)
        b.accept(latency_ms=800.0, input_tokens=500, output_tokens=90, cost_usd=0.01, ttft_ms=150.0)
        s = d.attempt("small", tier_rank=0, model="small-8b", provider="acme", offset_ms=931.0)
        s.shadow(latency_ms=90.0, cost_usd=0.5)
        d.finish(latency_ms=1000.0)

    event = d.to_event()
    assert event["final"] == {
        "served": True, "tier": "large", "model": "large-x", "latency_ms": 1000.0,
        "cost_usd": pytest.approx(0.001 + 0.0004 + 0.01),  # the shadow attempt's 0.5 is not spent on the user
    }
    assert event["shadow"] is True  # a shadow attempt puts the request in the shadow slice
    assert event["occurred_at"] == "2023-11-14T22:13:20.250Z"
    assert [a["index"] for a in event["attempts"]] == [0, 1, 2]
    assert [a["offset_ms"] for a in event["attempts"]] == [5.0, 130.0, 931.0]

    decoded = decode(RoutingDecision, to_json(event))
    assert str(decoded.event_id) == "00000000-0000-4000-8000-000000000001"
    assert decoded.request_id == "req-1"
    assert decoded.router.id == "r" and decoded.router.version == "1.2.3"
    assert decoded.router.policy_version == "p7" and decoded.router.strategy == "hybrid"
    assert decoded.environment == "staging" and decoded.category == "billing" and decoded.tenant == "t-1"
    assert decoded.experiment is not None and (decoded.experiment.id, decoded.experiment.variant) == ("exp", "treatment")
    assert decoded.route is not None and decoded.route.rule == "r1"
    assert decoded.prompt is not None and decoded.prompt.length == 10
    assert decoded.quality is not None and decoded.quality.score == 0.9
    assert [a.outcome for a in decoded.attempts] == [Outcome.ESCALATED, Outcome.ACCEPTED, Outcome.SHADOW]
    assert decoded.attempts[0].escalation_reason == "low_confidence"
    assert decoded.attempts[0].verify_latency_ms == 20.0
    assert decoded.attempts[1].ttft_ms == 150.0 and decoded.attempts[1].output_tokens == 90
    assert decoded.occurred_at == datetime(2023, 11, 14, 22, 13, 20, 250000, tzinfo=UTC)


def test_kept_request_with_defaults(make_rw: MakeRw) -> None:
    rw = make_rw()
    with rw.decision() as d:
        d.attempt("small", tier_rank=0, model="m", provider="p").accept(latency_ms=12.5, cost_usd=0.002)
        d.finish(latency_ms=14.0)
    event = _decode(d)
    assert event.final.served and event.final.tier == "small" and event.final.model == "m"
    assert event.final.cost_usd == pytest.approx(0.002)
    assert event.attempts[0].latency_ms == 12.5
    assert event.shadow is False and event.environment == "production" and event.category == "default"
    uuid.UUID(event.request_id)  # a fresh id when the router gives none
    # Each decision gets its own ids.
    with rw.decision() as d2:
        d2.attempt("small", tier_rank=0, model="m", provider="p").accept(latency_ms=0.0)
    other = _decode(d2)
    assert other.event_id != event.event_id and other.request_id != event.request_id


def test_latency_and_offsets_are_measured_when_not_given(make_rw: MakeRw) -> None:
    rw = make_rw()
    before = time.time()
    with rw.decision() as d:
        time.sleep(0.01)
        a = d.attempt("small", tier_rank=0, model="m", provider="p")
        time.sleep(0.02)
        a.fail("timeout")
        b = d.attempt("small", tier_rank=0, model="m", provider="p-eu")
        time.sleep(0.02)
        b.accept()
    event = _decode(d)
    first, second = event.attempts
    # Lower bounds only: sleep() guarantees at least the time asked for.
    assert first.offset_ms >= 10.0
    assert first.latency_ms >= 20.0
    assert second.offset_ms >= first.offset_ms + first.latency_ms
    assert second.latency_ms >= 20.0
    assert event.final.latency_ms >= second.offset_ms + second.latency_ms
    assert event.final.tier == "small" and event.attempts[1].provider == "p-eu"
    assert event.occurred_at.timestamp() == pytest.approx(before, abs=5.0)


def test_explicit_latency_is_honoured(make_rw: MakeRw) -> None:
    rw = make_rw()
    with rw.decision() as d:
        time.sleep(0.01)
        d.attempt("small", tier_rank=0, model="m", provider="p", offset_ms=0.0).accept(latency_ms=0.5)
        d.finish(latency_ms=2.0)
    event = _decode(d)
    assert event.attempts[0].offset_ms == 0.0
    assert event.attempts[0].latency_ms == 0.5
    assert event.final.latency_ms == 2.0  # finish() inside the block wins; leaving the block does not re-finish


def test_unserved_request_has_null_final_tier(make_rw: MakeRw) -> None:
    rw = make_rw()
    with rw.decision() as d:
        d.attempt("small", tier_rank=0, model="m", provider="p").fail("rate_limited", latency_ms=3.0, cost_usd=0.001)
        d.attempt("large", tier_rank=1, model="l", provider="q").fail("timeout", latency_ms=5.0, cost_usd=0.002)
    event = _decode(d)
    assert event.final.served is False and event.final.tier is None and event.final.model is None
    assert event.final.cost_usd == pytest.approx(0.003)
    assert [a.failure_mode for a in event.attempts] == ["rate_limited", "timeout"]


def test_finishing_an_attempt_twice_raises(make_rw: MakeRw) -> None:
    rw = make_rw()
    with rw.decision() as d:
        a = d.attempt("small", tier_rank=0, model="m", provider="p")
        a.accept(latency_ms=1.0)
        with pytest.raises(RuntimeError, match="already finished as 'accepted'"):
            a.fail("timeout")
        with pytest.raises(RuntimeError, match="attempt 0 at tier 'small'"):
            a.accept()
    assert a.fields["outcome"] == "accepted"
    assert "failure_mode" not in a.fields
    assert _decode(d).final.served


# -- strict mode ------------------------------------------------------------------------------


def test_strict_mode_raises_at_the_call_site_for_an_unknown_reason(make_rw: MakeRw) -> None:
    rw = make_rw(strict=True)
    with pytest.raises(InvalidEventError) as caught:
        with rw.decision() as d:
            d.attempt("small", tier_rank=0, model="m", provider="p").escalate("felt_like_it", latency_ms=1.0)
            d.attempt("large", tier_rank=1, model="l", provider="p").accept(latency_ms=1.0)
    assert caught.value.reason == "schema"
    assert "attempts.0.escalation_reason" in caught.value.detail
    assert "low_confidence" in caught.value.detail  # the message lists what is allowed
    assert rw.stats()["enqueued"] == 0  # a rejected event is not queued


def test_strict_mode_rejects_two_accepted_attempts(make_rw: MakeRw) -> None:
    rw = make_rw(strict=True)
    with pytest.raises(InvalidEventError, match="exactly one accepted attempt, found 2"):
        with rw.decision() as d:
            d.attempt("small", tier_rank=0, model="m", provider="p").accept(latency_ms=1.0)
            d.attempt("large", tier_rank=1, model="l", provider="p").accept(latency_ms=1.0)


def test_an_attempt_never_finished_is_named_as_such_not_as_missing_fields(make_rw: MakeRw) -> None:
    rw = make_rw(strict=True)
    with pytest.raises(InvalidEventError) as caught:
        with rw.decision() as d:
            d.attempt("small", tier_rank=0, model="m", provider="p")  # no accept(): a router bug
    detail = caught.value.detail
    assert "attempt 0 (tier 'small') was never finished" in detail and "accept()" in detail, detail
    assert "Field required" not in detail, detail


def test_strict_mode_accepts_a_valid_decision(make_rw: MakeRw) -> None:
    rw = make_rw(strict=True)
    with rw.decision() as d:
        d.attempt("small", tier_rank=0, model="m", provider="p").accept(latency_ms=1.0)
    assert rw.stats()["enqueued"] == 1


def test_non_strict_mode_queues_an_invalid_decision_without_raising(make_rw: MakeRw) -> None:
    rw = make_rw()
    with rw.decision() as d:
        d.attempt("small", tier_rank=0, model="m", provider="p").escalate("felt_like_it", latency_ms=1.0)
    assert rw.stats()["enqueued"] == 1  # the ingest service dead-letters it, the router never sees an error
    with pytest.raises(InvalidEventError):
        _decode(d)


# -- the router's own exceptions ---------------------------------------------------------------


class RouterBug(Exception):
    pass


def test_router_exception_propagates_and_the_decision_is_queued_not_served(make_rw: MakeRw) -> None:
    rw = make_rw()
    boom = RouterBug("provider SDK blew up")
    with pytest.raises(RouterBug) as caught:
        with rw.decision(request_id="req-err") as d:
            d.attempt("small", tier_rank=0, model="m", provider="p").fail("timeout", latency_ms=1.0)
            d.attempt("large", tier_rank=1, model="l", provider="p")  # the call itself raises
            raise boom
    assert caught.value is boom
    queued = _queued(rw)
    assert len(queued) == 1
    topic, key, payload = queued[0]
    assert topic == DECISIONS_TOPIC and key == b"req-err" and payload is d
    event = _decode(d)  # still a valid event: the interrupted attempt is recorded as failed
    assert event.final.served is False and event.final.tier is None
    assert [a.outcome for a in event.attempts] == [Outcome.FAILED, Outcome.FAILED]
    assert event.attempts[1].failure_mode == "other"


def test_router_exception_wins_over_a_strict_mode_error(make_rw: MakeRw) -> None:
    rw = make_rw(strict=True)
    with pytest.raises(RouterBug):
        with rw.decision() as d:
            d.attempt("small", tier_rank=0, model="m", provider="p").escalate("nonsense", latency_ms=1.0)
            raise RouterBug()


async def test_async_with(make_rw: MakeRw) -> None:
    rw = make_rw(strict=True)
    async with rw.decision(category="coding") as d:
        d.attempt("small", tier_rank=0, model="m", provider="p").accept(latency_ms=3.0)
        d.finish(latency_ms=4.0)
    assert _queued(rw)[0][2] is d
    event = _decode(d)
    assert event.category == "coding" and event.final.latency_ms == 4.0
    with pytest.raises(RouterBug):
        async with rw.decision() as failing:
            failing.attempt("small", tier_rank=0, model="m", provider="p")
            raise RouterBug()
    assert rw.stats()["enqueued"] == 2
    assert _queued(rw)[1][2] is failing
    assert _decode(failing).final.served is False


async def test_async_client_context_and_aclose(make_rw: MakeRw) -> None:
    async with make_rw(close_timeout_s=0.5) as rw:
        with rw.decision() as d:
            d.attempt("small", tier_rank=0, model="m", provider="p").accept(latency_ms=1.0)
    stats = rw.stats()
    assert stats["queued"] == 0 and stats["dropped_closed"] == 1 and stats["sent"] == 0


# -- bounded queue and drop logging ------------------------------------------------------------


def test_queue_is_bounded_and_drops_are_counted_and_logged_once(
    make_rw: MakeRw, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="routerwatch.sdk")
    rw = make_rw(max_queue=100, drop_log_interval_s=60.0)
    for i in range(1000):
        with rw.decision(request_id=f"req-{i}") as d:
            d.attempt("small", tier_rank=0, model="m", provider="p").accept(latency_ms=1.0)
    stats = rw.stats()
    # The broker is unreachable, so the sender never takes anything off the queue.
    assert stats["enqueued"] == 100
    assert stats["queued"] == 100
    assert stats["dropped_queue_full"] == 900
    assert stats["dropped"] == 900
    assert stats["sent"] == 0
    # The oldest events are kept; later ones are dropped.
    assert [key for _, key, _ in _queued(rw)] == [f"req-{i}".encode() for i in range(100)]
    lines = _drop_lines(caplog)
    assert len(lines) == 1
    assert "queue_full" in lines[0].getMessage() and "queue limit 100" in lines[0].getMessage()


def test_drop_log_is_repeated_after_the_interval(make_rw: MakeRw, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="routerwatch.sdk")
    rw = make_rw(max_queue=1, drop_log_interval_s=0.0)
    for _ in range(3):
        rw.emit_raw(DECISIONS_TOPIC, b"{}")
    assert rw.stats()["dropped_queue_full"] == 2
    assert len(_drop_lines(caplog)) == 2


# -- close -------------------------------------------------------------------------------------


def test_close_without_start_and_twice(make_rw: MakeRw) -> None:
    rw = make_rw()
    first = rw.close()
    assert (first["enqueued"], first["sent"], first["dropped"], first["queued"]) == (0, 0, 0, 0)
    assert not [key for key in first if key.startswith("dropped_")]
    assert rw._thread is None  # closing did not start anything
    assert rw.close() == first
    rw.start()
    assert rw._thread is None  # a closed client does not start again


def test_close_returns_within_its_timeout_when_the_broker_is_unreachable(
    make_rw: MakeRw, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="routerwatch.sdk")
    rw = make_rw(close_timeout_s=0.5)
    for _ in range(7):
        with rw.decision() as d:
            d.attempt("small", tier_rank=0, model="m", provider="p").accept(latency_ms=1.0)
    rw.feedback("req-x", score=0.5, passed=True)
    assert rw.stats()["queued"] == 8
    started = time.monotonic()
    stats = rw.close()
    assert time.monotonic() - started < 0.5 + 1.5
    assert stats["dropped_closed"] == 8
    assert stats["queued"] == 0 and stats["sent"] == 0 and stats["dropped"] == 8
    assert any("closed" in r.getMessage() for r in _drop_lines(caplog))  # leftovers are always logged
    # Second close: same numbers, nothing more dropped.
    assert rw.close() == stats


def test_close_honours_an_explicit_timeout(make_rw: MakeRw) -> None:
    rw = make_rw(close_timeout_s=60.0)
    rw.emit_raw(DECISIONS_TOPIC, b"{}")
    started = time.monotonic()
    rw.close(timeout=0.2)
    assert time.monotonic() - started < 0.2 + 1.5


def test_events_after_close_are_dropped_not_queued(make_rw: MakeRw) -> None:
    rw = make_rw()
    rw.close()
    with rw.decision() as d:
        d.attempt("small", tier_rank=0, model="m", provider="p").accept(latency_ms=1.0)
    rw.feedback("req", score=1.0, passed=True)
    stats = rw.stats()
    assert stats["dropped_closed"] == 2 and stats["enqueued"] == 0 and stats["queued"] == 0


def test_client_context_manager_closes(make_rw: MakeRw) -> None:
    with make_rw(close_timeout_s=0.2) as rw:
        rw.emit_raw(DECISIONS_TOPIC, b"raw", b"k")
        assert _queued(rw) == [(DECISIONS_TOPIC, b"k", b"raw")]
    assert rw.stats()["dropped_closed"] == 1
    assert rw.stats()["queued"] == 0


# -- feedback ----------------------------------------------------------------------------------


def test_feedback_builds_a_valid_quality_feedback(make_rw: MakeRw) -> None:
    rw = make_rw(strict=True, router_id="support-router")
    rw.feedback(
        "req-42", score=0.25, passed=False, source="human", target="shadow", attempt_index=2, tier="small",
        grader="rubric-v1", event_id="00000000-0000-4000-8000-0000000000aa", occurred_at=1_700_000_060.0,
    )
    (topic, key, payload), = _queued(rw)
    assert topic == FEEDBACK_TOPIC and key == b"req-42"
    event = decode(QualityFeedback, to_json(payload))
    assert str(event.event_id) == "00000000-0000-4000-8000-0000000000aa"
    assert event.request_id == "req-42" and event.router_id == "support-router"
    assert event.target == "shadow" and event.attempt_index == 2 and event.tier == "small"
    assert event.score == 0.25 and event.passed is False and event.source == "human"
    assert event.grader == "rubric-v1"
    assert event.occurred_at == datetime(2023, 11, 14, 22, 14, 20, tzinfo=UTC)


def test_feedback_defaults_leave_optional_fields_out(make_rw: MakeRw) -> None:
    rw = make_rw()
    rw.feedback("req-1", score=1.0, passed=True)
    (_, _, payload), = _queued(rw)
    assert set(payload) == {
        "event_id", "schema_version", "request_id", "occurred_at", "router_id", "target", "score", "passed", "source"
    }
    event = decode(QualityFeedback, json.dumps(payload))
    assert event.target == "served" and event.source == "grader"


def test_strict_feedback_rejects_a_shadow_grade_without_attempt_index(make_rw: MakeRw) -> None:
    rw = make_rw(strict=True)
    with pytest.raises(InvalidEventError, match="attempt_index"):
        rw.feedback("req-1", score=0.1, passed=False, target="shadow")
    assert rw.stats()["enqueued"] == 0


# -- ids, partitioning and the sender's batches -------------------------------------------------


def test_ids_are_version_4_uuids_made_once(make_rw: MakeRw) -> None:
    from routerwatch.sdk.recorder import new_id

    ids = {new_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    for text in list(ids)[:100]:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text

    rw = make_rw()
    with rw.decision() as d:
        d.attempt("small", tier_rank=0, model="m", provider="p").accept(latency_ms=1.0)
    # No id given: the queue has no key yet; the sender derives it from the request id it makes.
    assert _queued(rw)[0][1] is None
    first = d.to_event()
    assert d.to_event()["event_id"] == first["event_id"]  # built twice, same event
    assert d.request_id == first["request_id"] == d.to_event()["request_id"]

    # Read by the router first: the event carries that id, and the key is known at enqueue.
    with rw.decision() as read:
        rid = read.request_id
        read.attempt("small", tier_rank=0, model="m", provider="p").accept(latency_ms=1.0)
    assert _queued(rw)[1][1] == rid.encode()
    assert read.to_event()["request_id"] == rid


def test_murmur2_and_partition_choice_match_aiokafka() -> None:
    import random

    from aiokafka.partitioner import DefaultPartitioner
    from aiokafka.partitioner import murmur2 as reference

    from routerwatch.sdk.partition import choose_partition, murmur2

    rng = random.Random(7)
    for length in range(0, 70):
        for _ in range(20):
            data = rng.randbytes(length)
            assert murmur2(data) == reference(data)
    default = DefaultPartitioner()
    for n in (1, 2, 3, 7, 12):
        partitions = list(range(n))
        for _ in range(200):
            key = str(uuid.uuid4()).encode()
            assert choose_partition(key, partitions, partitions) == default(key, partitions, partitions)
    assert choose_partition(None, [0, 1, 2], [2]) == 2  # no key: an available partition


class _FakeBuilder:
    def __init__(self, limit: int) -> None:
        self.records: list[tuple[bytes | None, bytes]] = []
        self.size = 0
        self.limit = limit
        self.closed = False

    def append(self, *, timestamp: None, key: bytes | None, value: bytes, headers: list) -> object | None:
        assert not self.closed and timestamp is None and headers == []
        if self.size + len(value) > self.limit:
            return None
        self.records.append((key, value))
        self.size += len(value)
        return object()

    def close(self) -> None:
        self.closed = True


class _FakeProducer:
    """Just what the sender uses of AIOKafkaProducer; acknowledges every batch at once."""

    def __init__(self, partitions: int, limit: int = 10_000) -> None:
        self.n = partitions
        self.limit = limit
        self.sent: list[tuple[str, int, _FakeBuilder]] = []
        cluster = type("Cluster", (), {"available_partitions_for_topic": lambda _, topic: set(range(partitions))})
        self.client = type("Client", (), {"cluster": cluster()})()

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.n))

    def create_batch(self) -> _FakeBuilder:
        return _FakeBuilder(self.limit)

    async def send_batch(self, builder: _FakeBuilder, topic: str, *, partition: int) -> object:
        import asyncio

        assert builder.closed  # closed batches go out at once instead of lingering again
        self.sent.append((topic, partition, builder))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


async def test_sender_batches_per_partition_by_key_and_counts_every_event(make_rw: MakeRw) -> None:
    import asyncio

    from aiokafka.partitioner import DefaultPartitioner

    from routerwatch.sdk.client import _Sender

    rw = make_rw(max_batch=10_000)
    rw._thread = object()  # type: ignore[assignment]  # keep the real sender out of it
    for i in range(300):
        with rw.decision(request_id=f"req-{i}") as d:
            d.attempt("small", tier_rank=0, model="m", provider="p").accept(latency_ms=1.0)
    for _ in range(5):
        with rw.decision() as d:  # ids made by the sender
            d.attempt("small", tier_rank=0, model="m", provider="p").accept(latency_ms=1.0)
    rw.feedback("req-7", score=1.0, passed=True)
    rw.emit_raw(DECISIONS_TOPIC, b"x" * 5_000, b"too-big")  # larger than a whole batch
    with rw.decision(route={"tags": {"a"}}) as d:  # a set: orjson refuses it, to_json writes a list
        d.attempt("small", tier_rank=0, model="m", provider="p").accept(latency_ms=1.0)
    with rw.decision(route={"bad": object()}) as d:  # nothing can write this one
        d.attempt("small", tier_rank=0, model="m", provider="p").accept(latency_ms=1.0)

    producer = _FakeProducer(partitions=3, limit=4_000)
    sender = _Sender(rw)
    taken = await sender._drain(producer)
    await asyncio.sleep(0)  # run the delivery callbacks
    assert taken == 309
    stats = rw.stats()
    assert stats["sent"] == 307
    assert stats["dropped_too_large"] == 1 and stats["dropped_unserialisable"] == 1
    assert stats["in_flight"] == 0 and stats["queued"] == 0

    default = DefaultPartitioner()
    seen = 0
    for topic, partition, builder in producer.sent:
        assert builder.size <= 4_000  # a full batch is sent and a new one started
        for key, value in builder.records:
            assert key is not None and partition == default(key, [0, 1, 2], [0, 1, 2])
            seen += 1
            if topic == DECISIONS_TOPIC:
                event = json.loads(value)
                assert event["request_id"].encode() == key
                if "route" not in event:
                    decode(RoutingDecision, value)
            else:
                assert topic == FEEDBACK_TOPIC and decode(QualityFeedback, value).request_id == "req-7"
    assert seen == 307
    assert len({p for _, p, _ in producer.sent}) == 3
    with_set = [v for _, _, b in producer.sent for _, v in b.records if b'"tags"' in v]
    assert json.loads(with_set[0])["route"]["tags"] == ["a"]
    rw._thread = None


def test_a_recorded_decision_is_freed_without_the_garbage_collector(make_rw: MakeRw) -> None:
    # No reference cycles: once the sender drops a decision it is freed at once, instead of piling
    # up for full collections that would pause the router (they cost more than recording does).
    import gc

    rw = make_rw()
    gc.collect()
    gc.disable()
    try:
        for _ in range(100):
            with rw.decision() as d:
                d.attempt("small", tier_rank=0, model="m", provider="p").escalate("low_confidence", latency_ms=1.0)
                d.attempt("large", tier_rank=1, model="l", provider="p").shadow(latency_ms=1.0)
                d.attempt("large", tier_rank=1, model="l", provider="p").accept(latency_ms=1.0)
            d.to_event()
        del d
        rw._queue.clear()
        assert gc.collect() == 0
    finally:
        gc.enable()


# -- delivery failures: kept and retried, or dropped for a reason --------------------------------


class _AnsweringProducer(_FakeProducer):
    """A producer whose broker answers each batch as ``answer(keys)`` says: None (acknowledged),
    an exception (the delivery fails with it) or "hang" (no answer at all)."""

    def __init__(self, answer: Callable[[list[bytes | None]], object], partitions: int = 1) -> None:
        super().__init__(partitions)
        self.answer = answer
        self.attempts: list[tuple[float, list[bytes | None], object]] = []  # (when, keys, answer)
        self.hung: list[object] = []
        self.up = threading.Event()  # the sender connects once the test has queued its events

    async def send_batch(self, builder: _FakeBuilder, topic: str, *, partition: int) -> object:
        import asyncio

        keys = [key for key, _ in builder.records]
        outcome = self.answer(keys)
        self.attempts.append((time.monotonic(), keys, outcome))
        fut = asyncio.get_running_loop().create_future()
        if outcome == "hang":
            self.hung.append(fut)
        elif outcome is None:
            fut.set_result(None)
        else:
            fut.set_exception(outcome)  # type: ignore[arg-type]
        return fut

    async def stop(self) -> None:
        pass


def _fake_broker(monkeypatch: pytest.MonkeyPatch, producer: _AnsweringProducer) -> None:
    from routerwatch.sdk.client import _Sender

    async def connect(self: _Sender) -> _AnsweringProducer:
        import asyncio

        while not producer.up.is_set():
            await asyncio.sleep(0.005)
        return producer

    monkeypatch.setattr(_Sender, "_connect", connect)


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_a_batch_that_fails_while_the_broker_is_down_is_retried_with_backoff_and_in_order(
    make_rw: MakeRw, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiokafka.errors import KafkaConnectionError, NodeNotReadyError

    from routerwatch.sdk import client

    monkeypatch.setattr(client, "RETRY_BACKOFF_FIRST_S", 0.05)
    monkeypatch.setattr(client, "RETRY_BACKOFF_MAX_S", 0.2)
    # Six failed sends, as a broker that went away gives them: the connection closes, then the
    # node is not ready. The producer has already retried each batch for request_timeout_ms.
    failures = [KafkaConnectionError("closed"), *[NodeNotReadyError("node 1") for _ in range(5)]]
    producer = _AnsweringProducer(lambda keys: failures.pop(0) if failures else None)
    _fake_broker(monkeypatch, producer)
    rw = make_rw(max_batch=20, max_queue=1_000, linger_ms=50)
    keys = [f"req-{i}".encode() for i in range(50)]
    for key in keys:
        rw.emit_raw(DECISIONS_TOPIC, b"{}", key)
    producer.up.set()
    _wait(lambda: rw.stats()["sent"] == 50)
    stats = rw.close(timeout=5)

    assert stats["sent"] == stats["enqueued"] == 50 and stats["dropped"] == 0
    assert stats["queued"] == stats["in_flight"] == 0
    assert stats["retried"] == sum(len(k) for _, k, outcome in producer.attempts if outcome is not None)
    # Every event reached the broker once, in the order recorded, although six sends failed.
    delivered = [key for _, batch, outcome in producer.attempts if outcome is None for key in batch]
    assert delivered == keys
    # The first cycles went out before any answer came back; all three failed. From then on the
    # sender probes with one cycle (max_batch events, from the head of the queue: the failed
    # events first) at a time, and waits longer after each failed probe: 0.05 s doubling,
    # capped at 0.2 s. The fourth probe is acknowledged and the rest follows at full rate.
    wave, probes = producer.attempts[:3], producer.attempts[3:]
    assert [len(batch) for _, batch, _ in wave] == [20, 20, 10]
    assert all(outcome is not None for _, _, outcome in wave)
    assert [batch for _, batch, _ in probes[:4]] == [keys[:20]] * 4
    assert [outcome is None for _, _, outcome in probes] == [False, False, False, True, True, True]
    when = [wave[-1][0]] + [at for at, _, _ in probes[:4]]
    gaps = [later - earlier for earlier, later in zip(when, when[1:])]
    for gap, backoff in zip(gaps, [0.05, 0.1, 0.2, 0.2]):
        assert gap >= backoff * 0.95, (gaps, backoff)


def test_only_what_the_broker_refuses_for_good_is_dropped(make_rw: MakeRw, monkeypatch: pytest.MonkeyPatch) -> None:
    from aiokafka.errors import MessageSizeTooLargeError, TopicAuthorizationFailedError

    def answer(keys: list[bytes | None]) -> object:
        if b"big" in keys:  # refused as too large with others, and alone
            return MessageSizeTooLargeError()
        if keys == [b"secret"]:
            return TopicAuthorizationFailedError()
        return None

    producer = _AnsweringProducer(answer)
    _fake_broker(monkeypatch, producer)
    rw = make_rw(max_queue=100)
    for key in (b"a", b"big", b"b"):
        rw.emit_raw(DECISIONS_TOPIC, b"{}", key)
    producer.up.set()
    _wait(lambda: rw.stats()["sent"] == 2 and rw.stats()["dropped"] == 1)
    rw.emit_raw("secret-topic", b"{}", b"secret")
    _wait(lambda: rw.stats()["dropped"] == 2)
    stats = rw.close(timeout=5)
    # The batch of three was refused; sent one by one, only the event too large on its own is lost.
    assert [keys for _, keys, _ in producer.attempts[:4]] == [[b"a", b"big", b"b"], [b"a"], [b"big"], [b"b"]]
    assert stats["sent"] == 2 and stats["dropped_too_large"] == 1 and stats["dropped_rejected"] == 1
    assert stats["enqueued"] == 4 and stats["queued"] == stats["in_flight"] == 0


def test_close_counts_events_the_broker_never_answered_as_dropped_at_close(
    make_rw: MakeRw, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer = _AnsweringProducer(lambda keys: "hang")
    _fake_broker(monkeypatch, producer)
    rw = make_rw(max_batch=10, max_queue=100)
    for i in range(25):
        rw.emit_raw(DECISIONS_TOPIC, b"{}", f"req-{i}".encode())
    producer.up.set()
    _wait(lambda: rw.stats()["in_flight"] == 25)
    assert rw.stats()["queued"] == 0
    started = time.monotonic()
    stats = rw.close(timeout=0.3)
    assert time.monotonic() - started < 0.3 + 1.5
    assert stats["dropped_closed"] == 25 and stats["sent"] == 0
    assert stats["queued"] == stats["in_flight"] == 0 and stats["enqueued"] == 25
    # A late answer changes nothing: close() settled the books.
    for fut in producer.hung:
        fut.get_loop().call_soon_threadsafe(lambda f=fut: f.done() or f.set_result(None))
    time.sleep(0.1)
    assert rw.stats() == stats
