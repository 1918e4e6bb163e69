"""Accounting helpers of the fault suite: what was sent, what is stored, what was dead-lettered.

Every case ends with :func:`account`: per event id, sent = stored once + dead-lettered (with a
reason) + the documented dedups (a redelivered or re-sent copy of a stored event adds nothing).
Stored ids are read back through serve's ``/query`` endpoint; dead letters from the DLQ topic
(their ``routerwatch.*`` headers) and from the ``dead_letters`` table.

The scale is chosen by ``ROUTERWATCH_FAULTS``: ``short`` (the default, run by ``make test``) or
``long`` (``make faults``): more events, longer faults.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from servicekit import Env, Serve

from routerwatch.ingest.dlq import DeadLetterRecord, read_dead_letters
from routerwatch.simulate import Profile, plan

LONG = os.environ.get("ROUTERWATCH_FAULTS", "short").strip().lower() == "long"


def scaled(short: Any, long: Any) -> Any:
    """``short`` in the default run, ``long`` under ``ROUTERWATCH_FAULTS=long``."""
    return long if LONG else short


PROFILE = Profile(router_id="fault-router")


@dataclass
class Expected:
    """Events handed to Kafka: decision event id -> attempt count, and feedback event ids."""

    decisions: dict[str, int] = field(default_factory=dict)
    feedback: set[str] = field(default_factory=set)
    canary: set[str] = field(default_factory=set)

    def add_plan(self, requests: int, seed: int, now: float) -> None:
        """The ids ``simulate.emit(rw, PROFILE, requests, seed, now=now)`` sends (same plan, same ids)."""
        import uuid

        for p in plan(PROFILE, requests, seed, now):
            self.decisions[p.event_id] = len(p.attempts)
            for k in range(1, len(p.feedback) + 1):
                self.feedback.add(str(uuid.UUID(int=uuid.UUID(p.event_id).int ^ k)))


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``condition`` until it returns a truthy value; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def caught_up(env: Env, timeout: float) -> str:
    """Run ``routerwatch wait``: '' when the consumer group has no lag, else what it printed."""
    done = env.cli("wait", "--timeout", str(int(timeout)), check=False, timeout=timeout + 120)
    return "" if done.returncode == 0 else f"routerwatch wait exited {done.returncode}: {(done.stdout + done.stderr)[-1500:]}"


def counts_by_id(serve: Serve, table: str) -> dict[str, int]:
    """Rows per event id in ``table``, without FINAL: a doubled insert shows as 2 until a merge."""
    return {eid: int(n) for eid, n in serve.query(f"SELECT toString(event_id), count() FROM {table} GROUP BY event_id")}


def dead_letters(env: Env) -> list[DeadLetterRecord]:
    return asyncio.run(read_dead_letters(env.kafka, env.names["dlq"]))


def dead_event_ids(letters: list[DeadLetterRecord]) -> dict[str, str]:
    """event id -> reason, for dead letters whose value is an event with an id."""
    out = {}
    for letter in letters:
        body = jsonable(letter.value)
        if isinstance(body, dict) and isinstance(body.get("event_id"), str):
            out[body["event_id"]] = letter.reason
    return out


def dead_letter_rows(serve: Serve) -> dict[tuple[str, int, int], tuple[str, str]]:
    """The ``dead_letters`` table (FINAL: its documented dedup by source coordinates)."""
    rows = serve.query("SELECT topic, partition, offset, reason, detail FROM dead_letters FINAL")
    return {(t, int(p), int(o)): (r, d) for t, p, o, r, d in rows}


def letters_by_origin(letters: list[DeadLetterRecord]) -> dict[tuple[str, int, int], list[DeadLetterRecord]]:
    out: dict[tuple[str, int, int], list[DeadLetterRecord]] = {}
    for letter in letters:
        h = letter.headers
        key = (h.get("routerwatch.topic", "?"), int(h.get("routerwatch.partition", -1)), int(h.get("routerwatch.offset", -1)))
        out.setdefault(key, []).append(letter)
    return out


def account(serve: Serve, expected: Expected, *, context: str = "", dead: set[str] = frozenset(),
            problems: list[str] | None = None) -> None:
    """Exact accounting of valid events: each stored once, with all its attempts; nothing else stored.

    ``dead``: event ids that were dead-lettered instead (each must then not be stored at all).
    ``problems``: earlier findings of the case, reported together with these.
    Fails with every discrepancy listed (lost, doubled, unexpected, half-stored) and serve's log.
    """
    problems = list(problems or [])
    decisions = counts_by_id(serve, "decisions")
    attempts = {eid: (int(n), int(u)) for eid, n, u in serve.query(
        "SELECT toString(event_id), count(), uniqExact(attempt_index) FROM attempts GROUP BY event_id")}
    both = [e for e in dead if e in decisions]
    if both:
        problems.append(f"{len(both)} decisions both stored and dead-lettered, e.g. {both[:3]}")
    lost = [e for e in expected.decisions if e not in decisions and e not in dead]
    doubled = {e: n for e, n in decisions.items() if n != 1}
    unexpected = [e for e in decisions if e not in expected.decisions]
    if lost:
        problems.append(f"{len(lost)} of {len(expected.decisions)} decisions lost, e.g. {lost[:3]}")
    if doubled:
        problems.append(f"{len(doubled)} decisions stored more than once, e.g. {list(doubled.items())[:3]}")
    if unexpected:
        problems.append(f"{len(unexpected)} decisions stored that were never sent, e.g. {unexpected[:3]}")
    half = [e for e in attempts if e not in decisions]
    if half:
        problems.append(f"{len(half)} requests have attempt rows but no decision row (half-stored), e.g. {half[:3]}")
    wrong = {e: (attempts.get(e), n) for e, n in expected.decisions.items() if e in decisions and attempts.get(e) != (n, n)}
    if wrong:
        problems.append(f"{len(wrong)} decisions with missing or doubled attempt rows (stored, expected), e.g. {list(wrong.items())[:3]}")
    for table, ids in (("feedback", expected.feedback), ("canary_results", expected.canary)):
        stored = counts_by_id(serve, table)
        missing = [e for e in ids if e not in stored and e not in dead]
        extra = {e: n for e, n in stored.items() if n != 1 or e not in ids}
        if missing:
            problems.append(f"{table}: {len(missing)} of {len(ids)} lost, e.g. {missing[:3]}")
        if extra:
            problems.append(f"{table}: {len(extra)} doubled or never sent, e.g. {list(extra.items())[:3]}")
    if problems:
        raise AssertionError(
            f"accounting is not exact{(' (' + context + ')') if context else ''}:\n- " + "\n- ".join(problems)
            + f"\nserve log:\n{serve.log()}"
        )


def health_status(serve: Serve) -> int | None:
    """HTTP status of /health (None when serve does not answer)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{serve.env.port}/health", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_dead_letter_copy(letter: DeadLetterRecord, original: bytes | None) -> str | None:
    """None when the DLQ record carries the original bytes, or a bounded copy that says so.

    A bounded copy has ``routerwatch.truncated`` = the original size in bytes and a header whose
    name mentions sha256 with the original's hex digest (optionally prefixed ``sha256:``); its
    value is a prefix of the original.
    """
    if letter.value == original:
        return None
    if original is None:
        return f"a tombstone's dead letter carries {len(letter.value or b'')} bytes"
    truncated = letter.headers.get("routerwatch.truncated")
    if truncated is None:
        return f"dead letter value differs from the original ({len(letter.value or b'')} vs {len(original)} bytes) and has no routerwatch.truncated header"
    if truncated.strip() != str(len(original)):
        return f"routerwatch.truncated is {truncated!r}, the original was {len(original)} bytes"
    digests = [v for k, v in letter.headers.items() if "sha256" in k.lower()]
    if not digests:
        return f"a truncated dead letter has no sha256 header (headers: {sorted(letter.headers)})"
    if sha256_hex(original) not in {d.strip().removeprefix("sha256:") for d in digests}:
        return f"sha256 header {digests} does not match the original's digest"
    if letter.value and not original.startswith(letter.value):
        return "the bounded copy is not a prefix of the original"
    return None


def jsonable(raw: bytes | None) -> Any:
    try:
        return json.loads(raw) if raw is not None else None
    except (ValueError, UnicodeDecodeError):
        return None


async def _group_state(kafka: str, group: str) -> tuple[str, int]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        for response in await admin.describe_consumer_groups([group]):
            for g in response.groups:
                return str(g[2]), len(g[5])
        return "Unknown", 0
    finally:
        await admin.close()


def group_state(kafka: str, group: str) -> tuple[str, int]:
    """(state, member count) of a consumer group, as its coordinator reports it."""
    return asyncio.run(_group_state(kafka, group))
