"""Poison messages of every class on every input topic, each between valid events.

Classes: contract-valid extremes (ranks, token counts and lengths past the columns' integer
widths, event times at the ends of the calendar), lax coercions the JSON Schema rejects (a number
as a string, an epoch integer as a time), a message larger than the DLQ producer's default request
size, a tombstone and bytes that are not UTF-8.

What each must become is derived from the published JSON Schema (``schemas/``) at run time:
- the schema rejects it (or it is not JSON): dead-lettered, with ``routerwatch.reason`` and a
  ``routerwatch.detail`` naming the field;
- the schema accepts it: stored exactly once with the value intact, or dead-lettered (reason
  ``schema`` when the contract itself refuses the value, ``store_rejected`` when the engine does)
  with the field named. Never stored with a different value, never lost, never wedging ingest.
Every valid event is stored once; serve stays alive and keeps storing; after a restart nothing
wedges and nothing is stored or counted twice.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from faults.faultkit import (
    Expected,
    account,
    caught_up,
    check_dead_letter_copy,
    dead_letter_rows,
    dead_letters,
    health_status,
    letters_by_origin,
    scaled,
    wait_until,
)
from servicekit import REPO, Serve

pytestmark = [pytest.mark.fault, pytest.mark.integration, pytest.mark.timeout(scaled(600, 3600))]

BIG_TOPIC_BYTES = 8 * 1024 * 1024
BIG_MESSAGE_BYTES = 1_500_000  # above aiokafka's default max_request_size (1 MiB)
SCHEMAS = {
    "decisions": "RoutingDecision.v1.schema.json",
    "feedback": "QualityFeedback.v1.schema.json",
    "canary": "CanaryResult.v1.schema.json",
}
EXAMPLES = REPO / "schemas/examples/valid"


def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((REPO / "schemas" / name).read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def valid_event(kind: str, i: int) -> dict[str, Any]:
    """A fresh valid event of ``kind`` (decisions, feedback, canary): an example with new ids and time."""
    example = {
        "decisions": "decision_kept_cheap_tier.json",
        "feedback": "feedback_served_grader.json",
        "canary": "canary_answer_checked.json",
    }[kind]
    body = json.loads((EXAMPLES / example).read_text())
    body["event_id"] = str(uuid.uuid4())
    body["occurred_at"] = _now_iso()
    if "request_id" in body:
        body["request_id"] = f"poison-{kind}-{i}"
    return body


@dataclass
class Poison:
    """One poison message: its bytes, the field a dead letter must name, and how to read it back if stored."""

    name: str
    value: bytes | None
    field: str | None  # named in routerwatch.detail when dead-lettered for a field
    readback: str | None = None  # SQL ({id}: event id) returning the stored value as text
    stored_as: str | None = None  # that value, when the event is stored intact
    event_id: str | None = None
    attempts: int = 1


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def _padding(n: int) -> str:
    # Not compressible, so the message stays larger than the DLQ producer's request size on the wire.
    rng = random.Random(7)
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


def poisons(kind: str) -> list[Poison]:
    out: list[Poison] = []

    def variant(name: str, field: str, change, readback: str | None = None, stored_as: str | None = None) -> None:
        body = valid_event(kind, len(out) + 1000)
        change(body)
        out.append(Poison(name, _json(body), field, readback, stored_as, body["event_id"], len(body.get("attempts", [])) or 1))

    def attempt(key: str, value: Any):
        return lambda b: b["attempts"][0].__setitem__(key, value)

    def top(key: str, value: Any):
        return lambda b: b.__setitem__(key, value)

    table = {"decisions": "decisions", "feedback": "feedback", "canary": "canary_results"}[kind]
    year = f"SELECT toString(toYear(occurred_at)) FROM {table} WHERE event_id = '{{id}}'"
    if kind == "decisions":
        rank = "SELECT toString(tier_rank) FROM attempts WHERE event_id = '{id}'"
        tokens = "SELECT toString(input_tokens) FROM attempts WHERE event_id = '{id}'"
        variant("tier_rank 255", "tier_rank", attempt("tier_rank", 255), rank, "255")
        variant("tier_rank 256", "tier_rank", attempt("tier_rank", 256), rank, "256")
        for value in (2**32 - 1, 5_000_000_000, 2**65):
            variant(f"input_tokens {value}", "input_tokens", attempt("input_tokens", value), tokens, str(value))
        variant("prompt.length 2^40", "length", top("prompt", {"hash": "h", "length": 2**40}),
                "SELECT toString(prompt_length) FROM decisions WHERE event_id = '{id}'", str(2**40))
        variant("latency_ms as a string", "latency_ms", attempt("latency_ms", "510"))
    if kind == "feedback":
        variant("attempt_index 1000", "attempt_index",
                lambda b: b.update(target="shadow", attempt_index=1000, tier="small"),
                "SELECT toString(attempt_index) FROM feedback WHERE event_id = '{id}'", "1000")
        variant("score as a string", "score", top("score", "0.9"))
    if kind == "canary":
        variant("latency_ms as a string", "latency_ms", top("latency_ms", "510"))
    variant("occurred_at 0001-01-01", "occurred_at", top("occurred_at", "0001-01-01T00:00:00Z"), year, "1")
    variant("occurred_at 9999-12-31", "occurred_at", top("occurred_at", "9999-12-31T23:59:59Z"), year, "9999")
    variant("occurred_at as an epoch integer", "occurred_at", top("occurred_at", 1_764_000_000))
    variant("1.5 MB with an unknown field", "padding", top("padding", _padding(BIG_MESSAGE_BYTES)))
    out.append(Poison("tombstone", None, None))
    out.append(Poison("not UTF-8", b'{"event_id": "\xff\xfe\xfd", "request_id": "\xc3\x28"}', None))
    return out


async def _create_topics(kafka: str, names: list[str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        await admin.create_topics([
            NewTopic(t, num_partitions=2, replication_factor=1, topic_configs={"max.message.bytes": str(BIG_TOPIC_BYTES)})
            for t in names
        ])
    finally:
        await admin.close()


async def _produce(kafka: str, messages: list[tuple[str, bytes, bytes | None]]) -> list[tuple[str, int, int]]:
    """Send in order to partition 0 (so "before" and "after" hold); return each one's (topic, partition, offset)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=kafka, max_request_size=BIG_TOPIC_BYTES, linger_ms=0)
    await producer.start()
    try:
        out = []
        for topic, key, value in messages:
            meta = await producer.send_and_wait(topic, value=value, key=key, partition=0)
            out.append((topic, meta.partition, meta.offset))
        return out
    finally:
        await producer.stop()


def _send_valid(env, expected: Expected, tag: str) -> None:
    """One more valid event on every input topic, recorded in ``expected``."""
    messages = []
    for kind in SCHEMAS:
        body = valid_event(kind, 0)
        body.get("request_id") and body.update(request_id=f"{tag}-{kind}")
        _expect(expected, kind, body)
        messages.append((env.names[kind], f"{tag}-{kind}".encode(), _json(body)))
    asyncio.run(_produce(env.kafka, messages))


def _expect(expected: Expected, kind: str, body: dict[str, Any], attempts: int | None = None) -> None:
    if kind == "decisions":
        expected.decisions[body["event_id"]] = attempts or len(body["attempts"])
    elif kind == "feedback":
        expected.feedback.add(body["event_id"])
    else:
        expected.canary.add(body["event_id"])


def test_poison_messages_on_every_topic_are_stored_or_dead_lettered_and_never_stop_ingest(env, tmp_path):
    asyncio.run(_create_topics(env.kafka, [env.names[k] for k in SCHEMAS]))
    validators = {kind: _validator(name) for kind, name in SCHEMAS.items()}
    expected = Expected()
    plan: list[tuple[str, Poison | None, bytes, bytes | None]] = []
    rounds = scaled(1, 5)  # the long form repeats every poison, with fresh ids, between more valid events
    for kind in SCHEMAS:
        for r in range(rounds):
            for i, poison in enumerate(poisons(kind)):
                body = valid_event(kind, r * 100 + i)
                _expect(expected, kind, body)
                plan.append((kind, None, f"valid-{kind}-{r}-{i}".encode(), _json(body)))
                plan.append((kind, poison, f"poison-{kind}-{r}-{i}".encode(), poison.value))
        body = valid_event(kind, 9999)  # and one after the last poison
        _expect(expected, kind, body)
        plan.append((kind, None, f"valid-{kind}-last".encode(), _json(body)))

    serve = Serve(env, tmp_path / "serve.log").start()
    try:
        origins = asyncio.run(_produce(env.kafka, [(env.names[k], key, value) for k, _, key, value in plan]))
        lag = caught_up(env, scaled(120, 300))
        assert serve.proc.poll() is None, f"serve exited {serve.proc.returncode} on a poison message:\n{serve.log()}"

        letters = letters_by_origin(dead_letters(env))
        rows = dead_letter_rows(serve)
        problems: list[str] = []
        for (kind, poison, _, value), origin in zip(plan, origins):
            if poison is None:
                if origin in letters:
                    problems.append(f"{kind}: a valid event at {origin} was dead-lettered: {letters[origin][0].headers}")
                continue
            label = f"{kind} / {poison.name}"
            found = letters.get(origin, [])
            stored = None
            if poison.event_id:
                table = {"decisions": "decisions", "feedback": "feedback", "canary": "canary_results"}[kind]
                n = int(serve.scalar(f"SELECT count() FROM {table} WHERE event_id = '{poison.event_id}'"))
                if n and poison.readback:
                    stored = [r[0] for r in serve.query(poison.readback.format(id=poison.event_id))]
                elif n:
                    stored = [f"{n} row(s)"]
            try:
                parsed = json.loads(value) if value is not None else None
                schema_ok = parsed is not None and validators[kind].is_valid(parsed)
            except (ValueError, UnicodeDecodeError):
                schema_ok = False
            if stored and found:
                problems.append(f"{label}: both stored ({stored}) and dead-lettered")
            elif stored:
                if not schema_ok:
                    problems.append(f"{label}: stored although the JSON Schema rejects it")
                elif stored != [poison.stored_as]:
                    problems.append(f"{label}: stored as {stored}, sent {poison.stored_as} (a value changed on the way in)")
                else:
                    _expect(expected, kind, json.loads(value), poison.attempts)
            elif not found:
                outcome = "not stored, not dead-lettered" if poison.readback or not schema_ok else "not dead-lettered"
                problems.append(f"{label}: {outcome} (lost{', offsets committed' if not lag else ''})")
            else:
                reasons = {letter.reason for letter in found}
                detail = found[0].headers.get("routerwatch.detail", "")
                allowed = {"schema", "store_rejected"} if schema_ok else {"schema", "invalid_json", "undecodable", "empty", "tombstone"}
                if poison.name == "not UTF-8":
                    allowed = {"undecodable"}
                if len(reasons) != 1 or not reasons <= allowed:
                    problems.append(f"{label}: dead-lettered with reason {sorted(reasons)}, expected one of {sorted(allowed)}")
                if not detail:
                    problems.append(f"{label}: dead letter without routerwatch.detail")
                elif poison.field and poison.field not in detail:
                    problems.append(f"{label}: detail does not name {poison.field!r}: {detail[:300]!r}")
                copy_problem = check_dead_letter_copy(found[0], value)
                if copy_problem:
                    problems.append(f"{label}: {copy_problem}")
                row = rows.get(origin)
                if row is None:
                    problems.append(f"{label}: dead-lettered on the topic but no dead_letters row for {origin}")
                elif row[0] not in reasons:
                    problems.append(f"{label}: dead_letters row says {row[0]!r}, the DLQ header {sorted(reasons)}")
        if problems or lag:
            raise AssertionError("poison messages not accounted for:\n- " + "\n- ".join(problems + ([lag] if lag else []))
                                 + f"\nserve log:\n{serve.log()}")
        account(serve, expected, context="valid events around the poison")
        wait_until(lambda: health_status(serve) == 200, 60, "/health 200 after the poison messages")

        # Restart: nothing the poison left behind wedges ingest, and nothing is stored or dead-lettered twice.
        serve.stop()
        restarted = Serve(env, tmp_path / "restart.log").start()
        try:
            _send_valid(env, expected, "after-restart")
            lag = caught_up(env, scaled(120, 300))
            account(restarted, expected, context=lag or "after a restart")
            assert not lag, lag
            after = dead_letter_rows(restarted)
            assert after.keys() == rows.keys(), "dead letters appeared or vanished across the restart"
            wait_until(lambda: health_status(restarted) == 200, 60, "/health 200 after the restart")
        finally:
            restarted.stop()
    finally:
        serve.stop()
