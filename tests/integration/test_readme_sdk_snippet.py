"""The README's SDK snippet (``<!-- test: sdk -->``, the same block as docs/sdk.md's) runs as written
(only the broker address and topics point at the test broker) and the decision and grade it records
reach Kafka as valid events."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer
from docblocks import named_block
from servicekit import create_topics

from routerwatch.events import QualityFeedback, RoutingDecision
from routerwatch.events.validation import decode

pytestmark = pytest.mark.integration


def sdk_snippet() -> str:
    code = named_block("README.md", "sdk")
    assert named_block("docs/sdk.md", "sdk") == code, "docs/sdk.md's SDK snippet is the README's: keep them equal"
    return code


async def read_all(kafka: str, topic: str, expect: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out: list[bytes] = []
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while len(out) < expect and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                out.extend(r.value for r in records)
    finally:
        await consumer.stop()
    return out


@pytest.mark.parametrize("confidence", [0.4, 0.9])
def test_the_readme_sdk_snippet_runs_and_its_events_are_valid(kafka_bootstrap, names, confidence):
    code = sdk_snippet()
    target = 'bootstrap_servers="kafka:9092"'
    assert target in code, "the snippet's broker address moved: update this test"
    code = code.replace(target, f'bootstrap_servers="{kafka_bootstrap}", decisions_topic="{names["decisions"]}", '
                                f'feedback_topic="{names["feedback"]}"')
    asyncio.run(create_topics(kafka_bootstrap, [names["decisions"], names["feedback"]]))
    namespace = {
        "tenant_id": "acme", "prompt": "How many days do I have to ask for a refund?",
        "call_small": lambda prompt: ("30 days", confidence), "call_large": lambda prompt: "30 days.",
    }
    exec(compile(code, "README.md", "exec"), namespace)  # the README's own code
    (decision,) = [decode(RoutingDecision, v) for v in asyncio.run(read_all(kafka_bootstrap, names["decisions"], 1))]
    (grade,) = [decode(QualityFeedback, v) for v in asyncio.run(read_all(kafka_bootstrap, names["feedback"], 1))]
    assert decision.request_id == namespace["d"].request_id == grade.request_id
    assert [a.outcome.value for a in decision.attempts] == (["escalated", "accepted"] if confidence < 0.7 else ["accepted"])
    assert decision.experiment is not None and decision.tenant == "acme"
