"""The schema-generated property end to end: batches of generated RoutingDecisions through Kafka
into `routerwatch serve`, accounted per event id.

Each example sends N events in one go (straight from the JSON Schema and repaired, see
eventgen.py), waits until ingest has caught up, then checks each one: the contract accepts it ->
stored exactly once with all its attempts; it rejects it -> dead-lettered with the contract's
reason. Nothing lost, nothing doubled, nothing wedged (later examples go through the same serve).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import pytest
from eventgen import decisions, repair
from hypothesis import HealthCheck, Phase, given, settings

from routerwatch.events import InvalidEventError, RoutingDecision, decode
from routerwatch.ingest.dlq import read_dead_letters

pytestmark = [pytest.mark.property, pytest.mark.integration]

LONG = os.environ.get("ROUTERWATCH_FAULTS", "").strip().lower() == "long"
BATCHES, PER_BATCH = (6, 60) if LONG else (2, 25)


async def _produce(kafka: str, topic: str, values: list[bytes]) -> list[tuple[int, int]]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=kafka, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=str(i).encode()) for i, v in enumerate(values)]
        return [(m.partition, m.offset) for m in [await f for f in futures]]
    finally:
        await producer.stop()


def _generated(n: int) -> list[dict]:
    """``n`` RoutingDecisions drawn from the JSON Schema (one draw each: a list of them in a single
    draw overruns Hypothesis' buffer and takes minutes to generate)."""
    out: list[dict] = []

    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(raw=decisions())
    def collect(raw):
        out.append(raw)

    collect()
    return out


@pytest.mark.timeout(900 if LONG else 420)
def test_generated_decisions_through_serve_are_stored_once_or_dead_lettered_with_the_contracts_reason(env, serve):
    generated = _generated(BATCHES * PER_BATCH)
    for b in range(BATCHES):
        _send_and_account(env, serve, generated[b * PER_BATCH:(b + 1) * PER_BATCH])


def _send_and_account(env, serve, batch: list[dict]) -> None:
    topic = env.names["decisions"]
    sent: list[tuple[str, bytes, str | None, int]] = []  # event id, bytes, contract's rejection reason, attempts
    for raw in batch:
        for body in (raw, repair(raw)):
            body = dict(body, event_id=str(uuid.uuid4()))
            value = json.dumps(body).encode()
            try:
                decode(RoutingDecision, value)
                reason = None
            except InvalidEventError as exc:
                reason = exc.reason
            sent.append((body["event_id"], value, reason, len(body["attempts"])))
    origins = asyncio.run(_produce(env.kafka, topic, [v for _, v, _, _ in sent]))
    done = env.cli("wait", "--timeout", "180", check=False, timeout=300)
    ids = ",".join(f"'{eid}'" for eid, *_ in sent)
    stored = {e: int(n) for e, n in serve.query(f"SELECT toString(event_id), count() FROM decisions WHERE event_id IN ({ids}) GROUP BY event_id")}
    attempts = {e: int(n) for e, n in serve.query(f"SELECT toString(event_id), count() FROM attempts WHERE event_id IN ({ids}) GROUP BY event_id")}
    letters = {}
    for letter in asyncio.run(read_dead_letters(env.kafka, env.names["dlq"])):
        h = letter.headers
        if h.get("routerwatch.topic") == topic:
            letters.setdefault((int(h["routerwatch.partition"]), int(h["routerwatch.offset"])), []).append(letter)
    problems = []
    for (eid, value, reason, n_attempts), origin in zip(sent, origins):
        found = letters.get(origin, [])
        if reason is None:
            if stored.get(eid) != 1 or attempts.get(eid) != n_attempts:
                problems.append(f"accepted by the contract but stored {stored.get(eid, 0)}x with "
                                f"{attempts.get(eid, 0)}/{n_attempts} attempts, dead letters {[l.headers for l in found]}: {value[:300]!r}")
        else:
            if eid in stored or eid in attempts:
                problems.append(f"rejected by the contract ({reason}) but stored: {value[:300]!r}")
            if [l.reason for l in found] != [reason]:
                problems.append(f"rejected by the contract ({reason}) but dead-lettered as {[l.reason for l in found]}: {value[:300]!r}")
    if done.returncode != 0:
        problems.append(f"ingest did not catch up: {(done.stdout + done.stderr)[-1000:]}")
    assert serve.proc.poll() is None, f"serve exited {serve.proc.returncode}:\n{serve.log()}"
    assert not problems, f"{len(problems)} of {len(sent)} generated events not accounted for:\n- " + "\n- ".join(problems[:20]) + f"\n{serve.log()[-3000:]}"
