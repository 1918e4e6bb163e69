"""Dead-letter throughput: `routerwatch serve` on invalid messages against the same serve on valid ones.

One router sending bad events must not slow everyone: the dead-letter path (validate, send each
message with its reason to the DLQ topic and wait for the acknowledgement, record it in the
`dead_letters` table, commit) has to keep up with the valid path (validate, dedup, store, commit).

On one broker, two topics of 4 partitions are pre-filled with N messages each:

- valid: N simulated RoutingDecisions with distinct event ids (ingest.py's ``distinct_decisions``);
- invalid: N messages of mixed kinds, in turn: the four schema errors of ``routerwatch.simulate``
  (each a whole decision with one field wrong, so the validation error names it), truncated JSON
  and non-UTF-8 bytes, with one tombstone (no value) in every 100.

Each topic is read from offset 0 by `routerwatch serve` on a fresh embedded store with a fresh
consumer group and DLQ topic (ingest.py's ``serve_env``/``Serve``), timed from the moment its
consumer has its partitions ("Worker ready") until every message is stored (valid: N decisions and
their attempts queryable through serve's /query) or dead-lettered (invalid: N rows in
`dead_letters` through /query; that table is written only after the DLQ topic acknowledged the
whole batch). The DLQ topic's end offset and the reasons recorded are checked after each invalid
run. Runs alternate (valid, invalid, valid, invalid) so both share the machine's noise. CPU is the
serve process's user + system time from /proc, so it includes the embedded engine's threads.

Full mode: 50,000 messages per topic (two ingest batches), 2 runs of each path: about 2 minutes on
the 2-core development machine (one run of each took 1.0 min at a load average of 3; both, 3.3 min
with other test runs sharing the cores at a load average of 6-9); serve's start-up and migrations
take ~10 s a run. Quick mode: 3,000 messages, one run each, under a minute (the smoke test's
2,000 took 45 s, the test broker's start-up included, on the shared machine).

Usage: python -m bench.perf.dlq [--quick] [--kafka HOST:PORT] [--messages N] [--repeats R] [--note TEXT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.perf.common import Comparison, Context, Measure, Section
from bench.perf.ingest import Serve, _free_port, _produce, distinct_decisions, query, serve_env, time_until_drained

NAME = "dlq"
TITLE = "Dead-letter throughput: invalid messages against valid ones, same serve"
FULL_MESSAGES = 50_000
QUICK_MESSAGES = 3_000
PARTITIONS = 4
TOMBSTONE_EVERY = 100  # one message in this many of the invalid topic is a tombstone
GOAL_RATIO = 1.0


# ---------------------------------------------------------------------------------------- topics
def invalid_messages(n: int, seed: int = 17) -> tuple[list[tuple[bytes | None, bytes | None]], Counter[str]]:
    """``n`` invalid messages (key, value) of mixed kinds and how many of each dead-letter reason they must get.

    Kinds in turn: ``routerwatch.simulate.INVALID_KINDS`` (non-UTF-8, truncated JSON, four schema
    errors each naming one field), with every ``TOMBSTONE_EVERY``-th message a tombstone: a key and
    no value, as a compacting producer writes one. (A record with neither key nor value cannot be
    dead-lettered at all: the producer refuses to send it; see the section's details.)
    """
    from routerwatch.simulate import INVALID_KINDS, Profile, events, invalid_payload

    base = events(Profile(), min(n, 2_000), seed=seed)
    messages: list[tuple[bytes | None, bytes | None]] = []
    reasons: Counter[str] = Counter()
    k = 0
    for i in range(n):
        if i % TOMBSTONE_EVERY == TOMBSTONE_EVERY // 2:
            messages.append((f"tombstone-{i}".encode(), None))
            reasons["undecodable"] += 1  # the processor's reason for a message without a value
            continue
        kind, reason = INVALID_KINDS[k % len(INVALID_KINDS)]
        messages.append((None, invalid_payload(kind, base[k % len(base)])))
        reasons[reason] += 1
        k += 1
    return messages, reasons


def prefill_valid(bootstrap: str, topic: str, n: int, *, seed: int = 11) -> dict[str, Any]:
    """Produce ``n`` valid decisions; returns what serve must store."""
    base, payloads = distinct_decisions(n, seed)
    attempts = [len(e["attempts"]) for e in base]
    expect: dict[str, Any] = {"decisions": n, "attempts": 0, "invalid": 0}

    def values() -> Iterator[bytes]:
        for k, value in payloads:
            expect["attempts"] += attempts[k]
            yield value

    asyncio.run(_produce(bootstrap, topic, values(), PARTITIONS))
    return expect


def prefill_invalid(bootstrap: str, topic: str, n: int) -> dict[str, Any]:
    """Produce ``n`` invalid messages; returns what serve must dead-letter (count and reasons)."""
    messages, reasons = invalid_messages(n)
    asyncio.run(_produce_keyed(bootstrap, topic, messages))
    sizes = [len(v) for _, v in messages if v is not None]
    return {"decisions": 0, "attempts": 0, "invalid": n, "reasons": dict(reasons),
            "avg_bytes": sum(sizes) / max(1, len(sizes))}


async def _produce_keyed(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes | None]]) -> None:
    """ingest.py's ``_produce`` for (key, value) pairs: batches round-robin over the partitions."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type="lz4", linger_ms=20,
                                max_batch_size=1 << 20, acks=1)
    await producer.start()
    try:
        pending: list[Any] = []
        part = 0
        batch = producer.create_batch()
        for key, value in messages:
            if batch.append(key=key, value=value, timestamp=None) is None:
                pending.append(await producer.send_batch(batch, topic, partition=part))
                part = (part + 1) % PARTITIONS
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
            if len(pending) >= 64:
                await asyncio.gather(*pending)
                pending = []
        pending.append(await producer.send_batch(batch, topic, partition=part))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


# ------------------------------------------------------------------------------------------ runs
def run_serve(kafka: str, topic: str, expect: dict[str, Any], workdir: Path, *, timeout: float) -> dict[str, Any]:
    """One `routerwatch serve` from offset 0 on a fresh store, group and DLQ topic, until every
    message of ``topic`` is stored or dead-lettered; returns wall, CPU, peak RSS, and for an invalid
    topic the reasons recorded and the DLQ topic's message count."""
    from routerwatch.ingest.dlq import count_dead_letters

    tag = uuid.uuid4().hex[:8]
    run_dir = Path(tempfile.mkdtemp(prefix=f"dlq-{tag}-", dir=workdir))
    env = serve_env(kafka, topic, run_dir / "store", tag, _free_port())
    serve = Serve(env, run_dir, "serve.log")
    serve.migrate()
    serve.start()
    try:
        figures, done = time_until_drained(serve, expect, timeout, who="serve")
        if done != [expect["decisions"], expect["attempts"], expect["invalid"]]:
            raise RuntimeError(f"serve stored/dead-lettered {done}, expected {expect}")
        result: dict[str, Any] = dict(figures)
        if expect["invalid"]:
            rows = query(serve.port, "SELECT reason, count() FROM dead_letters GROUP BY reason ORDER BY reason") or []
            result["reasons"] = {reason: int(count) for reason, count in rows}
            if result["reasons"] != expect["reasons"]:
                raise RuntimeError(f"dead letters by reason {result['reasons']}, expected {expect['reasons']}")
            result["dlq_topic"] = asyncio.run(count_dead_letters(kafka, env["ROUTERWATCH_TOPICS__DLQ"]))
            if result["dlq_topic"] != expect["invalid"]:
                raise RuntimeError(f"DLQ topic holds {result['dlq_topic']} messages, expected {expect['invalid']}")
        return result
    finally:
        serve.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------- section
def run(ctx: Context, *, messages: int | None = None, repeats: int | None = None, note: str = "") -> Section:
    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    n = messages or (QUICK_MESSAGES if ctx.quick else FULL_MESSAGES)
    repeats = repeats or (1 if ctx.quick else 2)
    timeout = 120 if ctx.quick else 600
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    prefix = f"bench.dlq.{uuid.uuid4().hex[:8]}"
    valid_topic, invalid_topic = f"{prefix}.valid", f"{prefix}.invalid"
    t = time.perf_counter()
    expect_valid = prefill_valid(ctx.kafka, valid_topic, n)
    expect_invalid = prefill_invalid(ctx.kafka, invalid_topic, n)
    fill_s = time.perf_counter() - t

    valid: list[dict[str, Any]] = []
    dead: list[dict[str, Any]] = []
    for _ in range(repeats):  # alternating, so both paths share the machine's noise
        valid.append(run_serve(ctx.kafka, valid_topic, expect_valid, ctx.workdir, timeout=timeout))
        dead.append(run_serve(ctx.kafka, invalid_topic, expect_invalid, ctx.workdir, timeout=timeout))

    def rate(runs: list[dict[str, Any]]) -> Measure:
        return Measure([n / r["wall"] for r in runs], "messages/s")

    def cpu_per_thousand(runs: list[dict[str, Any]]) -> Measure:
        return Measure([r["cpu"] / n * 1000 for r in runs], "CPU-s per 1,000 messages")

    def peak(runs: list[dict[str, Any]]) -> Measure:
        return Measure([r["rss_max"] for r in runs], "MiB")

    valid_name = "valid path (the same serve storing valid RoutingDecisions)"
    dead_rate, valid_rate = rate(dead), rate(valid)
    pair_ratios = [(n / d["wall"]) / (n / v["wall"]) for v, d in zip(valid, dead)]
    ratio = dead_rate.median / valid_rate.median
    section = Section(NAME, TITLE)
    section.comparisons = [
        Comparison("dead-letter throughput from offset 0 (invalid messages dead-lettered per second)", dead_rate,
                   valid_name, valid_rate, True, goal=f">= {GOAL_RATIO:.1f}x the valid path",
                   met=ratio >= GOAL_RATIO,
                   note="ratio dead-letter / valid per alternating pair: "
                        + ", ".join(f"{r:.2f}" for r in pair_ratios)),
        Comparison("CPU-seconds of serve per 1,000 messages", cpu_per_thousand(dead), valid_name,
                   cpu_per_thousand(valid), False),
        Comparison("peak resident memory of serve", peak(dead), valid_name, peak(valid), False),
    ]
    reasons = ", ".join(f"{r} {c:,}" for r, c in sorted(expect_invalid["reasons"].items()))
    section.setup = (
        f"Two 4-partition topics (lz4) pre-filled in {fill_s:.0f} s on one broker: {n:,} valid RoutingDecisions "
        f"({expect_valid['attempts'] / n:.2f} attempts each on average) and {n:,} invalid messages of mixed kinds "
        f"(by dead-letter reason: {reasons}; schema errors are whole decisions with one field wrong, "
        f"~{expect_invalid['avg_bytes']:.0f} bytes on average over the non-empty ones; one tombstone in "
        f"{TOMBSTONE_EVERY}). Each is read from offset 0 by `routerwatch serve` with the shipped ingest settings "
        f"(batch 25,000, dedup, DLQ, metrics; drift scheduler off) on a fresh embedded store, consumer group and "
        f"DLQ topic, timed from its consumer's partition assignment until the {n:,} decisions and "
        f"{expect_valid['attempts']:,} attempts (valid) or the {n:,} `dead_letters` rows (invalid, written after "
        f"the DLQ topic acknowledged them) are queryable through /query, polled every 0.1 s. After each invalid run "
        f"the reasons recorded and the DLQ topic's message count are checked against what was produced. "
        f"CPU: user+system of serve from /proc. {repeats} run(s) of each path, alternating."
    )
    section.details = [
        *(f"valid run {i + 1}: {r['wall']:.2f} s wall, {r['cpu']:.1f} CPU-s, peak RSS {r['rss_max']:.0f} MiB"
          for i, r in enumerate(valid)),
        *(f"dead-letter run {i + 1}: {r['wall']:.2f} s wall, {r['cpu']:.1f} CPU-s, peak RSS {r['rss_max']:.0f} MiB, "
          f"DLQ topic {r['dlq_topic']:,} messages, dead_letters by reason {json.dumps(r['reasons'], sort_keys=True)}"
          for i, r in enumerate(dead)),
        f"load average (1 min) at start / end of the section: {load_start:.2f} / {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} cores",
        *([note] if note else []),
    ]
    section.seconds = time.perf_counter() - started
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--kafka", default=os.environ.get("ROUTERWATCH_KAFKA_BOOTSTRAP"))
    parser.add_argument("--messages", type=int, help="messages per topic")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--note", default="", help="a line about the run (e.g. other load on the machine)")
    args = parser.parse_args(argv)
    stop = None
    workdir = Path(tempfile.mkdtemp(prefix="bench-dlq-"))
    kafka = args.kafka
    if not kafka:
        from bench.perf.common import local_broker

        kafka, stop = local_broker(workdir)
    try:
        section = run(Context(kafka=kafka, workdir=workdir, quick=args.quick), messages=args.messages,
                      repeats=args.repeats, note=args.note)
    finally:
        if stop:
            stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(section.to_json(), indent=1))
    print(f"saved {section.save()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
