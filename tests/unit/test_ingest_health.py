"""/health's verdict (routerwatch.ingest.app.health) from plain fakes of its inputs.

Before: /health answered 200 while the ingest consumer was dead or Kafka unreachable, because it
looked only at the processors' retry errors.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

from routerwatch.ingest.app import KAFKA_LIMIT_S, KafkaStatus, health
from routerwatch.ingest.consumer import IngestConsumer


class Consumer:
    def __init__(self, running: bool = True, stalled: float = 0.0, failure: str | None = None) -> None:
        self.running, self.failure, self._stalled = running, failure, stalled

    def stalled_seconds(self) -> float:
        return self._stalled


def processors(error: str | None = None) -> dict:
    return {"decision": SimpleNamespace(last_error=error), "feedback": SimpleNamespace(last_error=None)}


def test_healthy_when_running_progressing_and_kafka_answers():
    assert health(processors(), Consumer(), KafkaStatus(), 60.0) == (200, {})


def test_a_dead_consumer_is_unhealthy_and_says_why():
    status, errors = health(processors(), Consumer(running=False, failure="KeyError: 'x'"), KafkaStatus(), 60.0)
    assert status == 503
    assert "not running" in errors["ingest"] and "KeyError" in errors["ingest"]


def test_no_progress_beyond_the_limit_is_unhealthy():
    assert health(processors(), Consumer(stalled=59.0), KafkaStatus(), 60.0)[0] == 200
    status, errors = health(processors(), Consumer(stalled=61.0), KafkaStatus(), 60.0)
    assert status == 503 and "no batch committed for 61s" in errors["progress"]


def test_kafka_unreachable_beyond_the_limit_is_unhealthy_and_recovers():
    kafka = KafkaStatus()
    kafka.failed("KafkaConnectionError: Unable to bootstrap")
    assert health(processors(), Consumer(), kafka, 60.0)[0] == 200, "one failed measurement is not an outage"
    kafka.failing_since = time.monotonic() - KAFKA_LIMIT_S - 1
    kafka.failed("KafkaConnectionError: Unable to bootstrap")
    status, errors = health(processors(), Consumer(), kafka, 60.0)
    assert status == 503 and "Unable to bootstrap" in errors["kafka"]
    kafka.answered()
    assert health(processors(), Consumer(), kafka, 60.0) == (200, {})


def test_a_retrying_processor_is_unhealthy():
    status, errors = health(processors("store 10 decision events: disk full"), Consumer(), KafkaStatus(), 60.0)
    assert status == 503 and errors == {"decision": "store 10 decision events: disk full"}


def test_the_consumer_counts_commits_and_an_empty_lag_as_progress():
    settings = SimpleNamespace(ingest=SimpleNamespace(batch_size=10, batch_seconds=1.0))
    consumer = IngestConsumer(settings, {})  # type: ignore[arg-type]
    consumer.progress_at -= 100
    assert consumer.stalled_seconds() >= 100
    consumer.note_lag(5)
    assert consumer.stalled_seconds() >= 100, "messages waiting: no progress"
    consumer.note_lag(0)
    assert consumer.stalled_seconds() < 5
