"""Redaction of dead-lettered payloads: pure function and the processor's use of it.

Before: raw rejected payloads stayed on the dead-letter topic whole, with no way to blank a field.
"""

from __future__ import annotations

import asyncio
import hashlib
import json

from routerwatch.ingest.processor import BatchProcessor, DeadLetter, RawMessage
from routerwatch.ingest.redact import REDACTED, redact_payload
from routerwatch.ingest.sink import StoreReport

PAYLOAD = {
    "tenant": "acme-secret-customer",
    "route": {"features": {"prompt_snippet": "my card number is ...", "n": 3}},
    "attempts": [{"model": "m1", "tier": "small"}, {"model": "m2", "tier": "large"}],
}


def test_named_fields_are_blanked_and_the_rest_kept():
    raw = json.dumps(PAYLOAD).encode()
    value, what = redact_payload(raw, ["tenant", "route.features.*", "attempts.*.model", "absent.path"])
    doc = json.loads(value)
    assert doc["tenant"] == REDACTED
    assert doc["route"]["features"] == {"prompt_snippet": REDACTED, "n": REDACTED}
    assert [a["model"] for a in doc["attempts"]] == [REDACTED, REDACTED]
    assert [a["tier"] for a in doc["attempts"]] == ["small", "large"]
    assert what == "tenant,route.features.*,attempts.*.model"
    assert b"acme-secret-customer" not in value and b"card number" not in value


def test_star_alone_keeps_no_payload_and_non_json_travels_without_bytes():
    assert redact_payload(b'{"tenant": "x"}', ["*"]) == (b"", "all")
    assert redact_payload(b"\xff\xfe tenant=acme", ["tenant"]) == (b"", "all (not JSON)")
    assert redact_payload(b"[1, 2]", ["tenant"]) == (b"", "all (not a JSON object)")
    assert redact_payload(b'{"a": 1}', []) == (b'{"a": 1}', "")


def test_the_processor_sends_redacted_copies_with_size_and_digest_of_the_original():
    sent: list[DeadLetter] = []

    async def dlq(letter: DeadLetter) -> None:
        sent.append(letter)

    class Sink:
        def store_dead_letters(self, letters):
            pass

        def store_batch(self, kind, items):
            return StoreReport()

    raw = json.dumps({**PAYLOAD, "event_id": "not-a-uuid"}).encode()
    processor = BatchProcessor("decision", Sink(), dlq, redact=["tenant"])
    asyncio.run(processor.process([RawMessage("decisions", 0, 7, b"k", raw)]))
    (letter,) = sent
    assert b"acme-secret-customer" not in letter.value
    assert json.loads(letter.value)["tenant"] == REDACTED
    headers = dict(letter.headers())
    assert headers["routerwatch.redacted"] == b"tenant"
    assert headers["routerwatch.size"] == str(len(raw)).encode()
    assert headers["routerwatch.sha256"] == hashlib.sha256(raw).hexdigest().encode()
    assert headers["routerwatch.reason"] == b"schema"
