"""The receiver's HTTP surface and lifecycle without a broker: a recording producer stands in for Kafka here
(the real broker path is tests/integration/test_otlp_receiver.py)."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from routerwatch.config import Settings
from routerwatch.otlp.receiver import OtlpReceiver


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, topic, value, key=None):
        self.sent.append((topic, key, value))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def _span(trace: str, sid: str, parent: str = "", **attributes) -> dict:
    return {"traceId": trace, "spanId": sid, "parentSpanId": parent, "name": "s", "startTimeUnixNano": "1767000000000000000",
            "endTimeUnixNano": "1767000000100000000",
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attributes.items()]}


async def test_stop_is_safe_without_start_and_twice_and_flushes_open_traces():
    letters: list = []

    async def dead(batch):
        letters.extend(batch)

    settings = Settings(otlp={"enabled": True, "port": 0, "grace_s": 600, "max_open_traces": 1})
    idle = OtlpReceiver(settings, dead, producer=RecordingProducer())
    await idle.stop()
    await idle.stop()

    producer = RecordingProducer()
    receiver = OtlpReceiver(settings, dead, producer=producer)
    await receiver.start()
    url = f"http://127.0.0.1:{receiver.port}/v1/traces"
    a, b = "a" * 32, "b" * 32
    body = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [
        _span(a, "1" * 16, **{"routerwatch.router.id": "r"}),
        _span(a, "2" * 16, "1" * 16, **{"gen_ai.operation.name": "chat", "gen_ai.request.model": "small-8b"}),
        _span(b, "3" * 16, **{"gen_ai.operation.name": "chat", "gen_ai.request.model": "small-8b"}),  # over capacity
        {"traceId": "12", "spanId": "4" * 16},  # unusable
    ]}]}]}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=json.dumps(body), headers={"Content-Type": "application/json"}) as r:
            assert r.status == 200
            answer = await r.json()
        assert answer["partialSuccess"]["rejectedSpans"] == "2"
        assert "otlp_capacity" in answer["partialSuccess"]["errorMessage"]
        async with session.get(url) as r:
            assert r.status == 405
        async with session.post(url.replace("traces", "logs"), data=b"{}", headers={"Content-Type": "application/json"}) as r:
            assert r.status == 404 and "POST /v1/traces" in (await r.json())["message"]
    await receiver.stop()  # the open trace (grace of 10 minutes) is assembled and sent now
    await receiver.stop()
    assert [(topic, key) for topic, key, _ in producer.sent] == [(settings.topics.decisions, a.encode())]
    assert json.loads(producer.sent[0][2])["attempts"][0]["model"] == "small-8b"
    assert [(letter.reason, letter.trace_id) for letter in letters] == [("otlp_capacity", b)]
