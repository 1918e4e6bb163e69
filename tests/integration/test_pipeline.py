"""SDK -> real Kafka -> faust ingest -> ClickHouse (chDB), end to end.

Each test gets fresh topics, a fresh consumer group and a fresh store, and
runs the real `routerwatch serve` in a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from servicekit import Env, Serve

from routerwatch.ingest.dlq import read_dead_letters
from routerwatch.sdk import RouterWatch, SdkConfig
from routerwatch.simulate import Profile, emit

pytestmark = pytest.mark.integration


def sdk(env: Env, **overrides) -> RouterWatch:
    config = dict(
        bootstrap_servers=env.kafka,
        router_id="test-router",
        decisions_topic=env.names["decisions"],
        feedback_topic=env.names["feedback"],
        max_queue=200_000,
        close_timeout_s=60,
    )
    config.update(overrides)
    return RouterWatch(SdkConfig(**config)).start()


def simulate(env: Env, requests: int, seed: int, **kwargs) -> dict:
    rw = sdk(env)
    summary = emit(rw, Profile(router_id="test-router"), requests, seed, **kwargs)
    stats = rw.close()
    assert stats["dropped"] == 0, stats
    return summary


def test_events_emitted_through_the_sdk_are_stored_exactly_once(env, serve):
    summary = simulate(env, 600, seed=1)
    serve.wait_for("SELECT count() FROM decisions", 600)
    assert serve.scalar("SELECT uniqExact(event_id) FROM decisions") == 600
    assert serve.scalar("SELECT count() FROM attempts") == summary["attempts"]
    assert serve.wait_for("SELECT count() FROM feedback", summary["feedback"]) == summary["feedback"]
    by_outcome = dict(serve.query("SELECT outcome, count() FROM attempts GROUP BY outcome"))
    assert by_outcome == summary["attempts_by_outcome"]
    by_final = dict(serve.query("SELECT if(served, final_tier, 'not_served'), count() FROM decisions GROUP BY 1"))
    assert by_final == summary["by_final_tier"]
    # The exploded attempts agree with the decision rows they came from.
    assert serve.scalar(
        "SELECT count() FROM decisions d INNER JOIN "
        "(SELECT event_id, count() n, sumIf(cost_usd + verify_cost_usd, outcome != 'shadow') c "
        " FROM attempts GROUP BY event_id) a USING event_id "
        "WHERE d.attempt_count = a.n AND abs(d.cost_usd - a.c) < 1e-9"
    ) == 600


def test_invalid_messages_are_dead_lettered_with_reason_and_origin(env, serve):
    summary = simulate(env, 50, seed=2, invalid=12)
    serve.wait_for("SELECT count() FROM decisions", 50)
    deadline = time.monotonic() + 60
    letters = []
    while time.monotonic() < deadline and len(letters) < 12:
        letters = asyncio.run(read_dead_letters(env.kafka, env.names["dlq"]))
        time.sleep(0.5)
    assert len(letters) == 12
    reasons: dict[str, int] = {}
    for letter in letters:
        reasons[letter.reason] = reasons.get(letter.reason, 0) + 1
        assert letter.headers["routerwatch.topic"] == env.names["decisions"]
        assert letter.headers["routerwatch.detail"], "a dead letter says what was wrong"
        original = asyncio.run(_read_one(env.kafka, env.names["decisions"], int(letter.headers["routerwatch.partition"]), int(letter.headers["routerwatch.offset"])))
        assert original == letter.value, "the DLQ keeps the raw bytes unchanged"
    assert reasons == summary["invalid_by_reason"]
    recorded = serve.query(
        "SELECT reason, sum(messages) FROM dead_letter_counts(since = '2000-01-01', until = '2100-01-01') GROUP BY reason"
    )
    assert dict(recorded) == summary["invalid_by_reason"], "dead letters are also queryable in ClickHouse"
    metrics = serve.metrics()
    assert f'routerwatch_ingest_dead_lettered_total{{reason="schema",topic="{env.names["decisions"]}"}} 8.0' in metrics
    assert serve.scalar("SELECT count() FROM decisions") == 50


async def _read_one(bootstrap: str, topic: str, partition: int, offset: int) -> bytes:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        message = await consumer.getone()
        return message.value
    finally:
        await consumer.stop()


def test_duplicates_and_a_replay_from_offset_zero_do_not_change_counts(env, serve, tmp_path):
    summary = simulate(env, 400, seed=3, duplicates=150)
    serve.wait_for("SELECT count() FROM decisions", 400)
    attempts = serve.scalar("SELECT count() FROM attempts")
    assert attempts == summary["attempts"]
    # Replay: a new consumer group reads both topics again from offset 0 into the same store.
    serve.stop()
    replay_env = Env(kafka=env.kafka, names=dict(env.names, group=env.names["group"] + "-replay"), store_url=env.store_url, port=env.port)
    replay = Serve(replay_env, tmp_path / "replay.log").start()
    try:
        replay_env.cli("wait", "--timeout", "120")
        assert replay.scalar("SELECT count() FROM decisions") == 400
        assert replay.scalar("SELECT count() FROM attempts") == attempts
        assert replay.scalar("SELECT count() FROM feedback") == summary["feedback"]
        dupes = [line for line in replay.metrics().splitlines() if line.startswith('routerwatch_ingest_duplicates_total{table="decisions"}')]
        assert dupes and float(dupes[0].split()[-1]) >= 400 + 150, dupes
    finally:
        replay.stop()


def test_killing_ingest_mid_stream_loses_nothing(env, serve, tmp_path):
    total = 30_000
    rw = sdk(env)
    emit(rw, Profile(router_id="test-router"), total, seed=4)
    assert rw.close()["dropped"] == 0
    # Kill -9 once part of the stream is stored, while the rest is still in flight.
    deadline = time.monotonic() + 120
    stored = 0
    while time.monotonic() < deadline:
        stored = serve.scalar("SELECT count() FROM decisions")
        if stored > 0:
            break
        time.sleep(0.05)
    serve.stop(signal.SIGKILL)
    assert 0 < stored < total, f"kill came too late to test anything: {stored} of {total} stored"
    restarted = Serve(env, tmp_path / "restart.log").start()
    try:
        restarted.wait_for("SELECT count() FROM decisions", total, timeout=180)
        assert restarted.scalar("SELECT uniqExact(event_id) FROM decisions") == total
    finally:
        restarted.stop()


def test_a_re_emitted_event_with_the_same_event_id_is_stored_once(env, serve):
    rw = sdk(env)
    event_id = str(uuid.uuid4())
    for _ in range(3):
        with rw.decision(request_id="same-request", event_id=event_id, category="billing") as d:
            d.attempt("small", tier_rank=0, model="m-small", provider="p").accept(latency_ms=12.0)
            d.finish(latency_ms=14.0)
    with rw.decision(request_id="other", category="billing") as d:
        d.attempt("small", tier_rank=0, model="m-small", provider="p").accept(latency_ms=10.0)
        d.finish(latency_ms=11.0)
    stats = rw.close()
    assert stats["sent"] == 4 and stats["dropped"] == 0, stats
    env.cli("wait", "--timeout", "60")
    assert serve.scalar("SELECT count() FROM decisions") == 2
    assert serve.scalar(f"SELECT count() FROM attempts WHERE event_id = '{event_id}'") == 1


def test_sql_and_report_work_while_serve_holds_the_embedded_store(env, serve):
    simulate(env, 200, seed=5)
    env.cli("wait", "--timeout", "60")
    out = env.cli("sql", "SELECT count() FROM requests").stdout.strip()
    assert out == "200"
    as_json = json.loads(env.cli("sql", "SELECT final_tier, count() AS n FROM requests GROUP BY final_tier ORDER BY final_tier", "--format", "json").stdout)
    assert sum(row["n"] for row in as_json) == 200
    denied = env.cli("sql", "DROP TABLE decisions", check=False)
    assert denied.returncode == 1
    assert "readonly" in denied.stderr.lower()
    assert serve.scalar("SELECT count() FROM decisions") == 200
    # A rejected read-only query must leave the ingest writer able to write.
    simulate(env, 50, seed=55)
    serve.wait_for("SELECT count() FROM decisions", 250)
    report = env.cli("report").stdout
    assert "Per tier" in report and "small" in report
    report_json = json.loads(env.cli("report", "--format", "json").stdout)
    assert sum(r["requests"] for r in report_json["routing_mix"]) == 250


def test_sql_opens_the_store_itself_when_serve_is_not_running(env):
    out = env.cli("sql", "SELECT count() FROM decisions").stdout.strip()
    assert out == "0"
