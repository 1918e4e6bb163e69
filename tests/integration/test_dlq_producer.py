"""The dead-letter producer on the real broker: record batches per partition, one result per letter."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest
from servicekit import Env, create_topics

from routerwatch.ingest.dlq import read_dead_letters
from routerwatch.ingest.dlq_producer import DeadLetterProducer
from routerwatch.ingest.processor import BatchProcessor, RawMessage

pytestmark = pytest.mark.integration


def test_a_burst_of_dead_letters_is_delivered_whole_and_an_oversized_one_goes_bounded(kafka_bootstrap, names, tmp_path):
    env = Env(kafka=kafka_bootstrap, names=names, store_url=f"chdb://{tmp_path / 'store'}")
    settings = env.settings()
    # The broker's default limit (about 1 MB) on this topic: a 1.5 MB letter cannot go whole.
    asyncio.run(create_topics(kafka_bootstrap, [names["dlq"]], partitions=3))
    messages = [RawMessage("decisions", i % 4, i, f"k{i % 50}".encode() if i % 3 else None, b'{"bad": %d}' % i) for i in range(3000)]
    messages.append(RawMessage("decisions", 0, 3000, None, None))  # neither key nor value
    huge = os.urandom(1_500_000)  # incompressible: the broker judges the compressed batch
    messages.append(RawMessage("decisions", 0, 3001, b"big", huge))

    class Sink:
        def store_dead_letters(self, letters):
            self.recorded = list(letters)

        def store_batch(self, kind, items):
            raise AssertionError("nothing valid in this batch")

    async def scenario():
        producer = DeadLetterProducer(settings, names["dlq"])
        try:
            sink = Sink()
            await BatchProcessor("decision", sink, producer, retry_initial_s=0.05).process(messages)
            return sink
        finally:
            await producer.stop()
            await producer.stop()  # safe twice

    sink = asyncio.run(scenario())
    assert len(sink.recorded) == len(messages)
    records = asyncio.run(read_dead_letters(kafka_bootstrap, names["dlq"]))
    assert sorted(int(r.headers["routerwatch.offset"]) for r in records) == list(range(3002)), "each letter exactly once"
    by_offset = {int(r.headers["routerwatch.offset"]): r for r in records}
    assert by_offset[17].value == b'{"bad": 17}' and by_offset[17].reason == "schema"
    assert by_offset[3000].value == b"" and by_offset[3000].reason == "undecodable"
    big = by_offset[3001]
    assert big.headers["routerwatch.truncated"] == str(len(huge))
    assert big.headers["routerwatch.sha256"] == hashlib.sha256(huge).hexdigest()
    assert huge.startswith(big.value) and len(big.value) < len(huge)
    # Keyed letters keep their key's partition: every k7 letter is on one partition.
    k7 = {str(i) for i in range(7, 3000, 50) if i % 3}
    assert len(k7) > 30 and len({r.partition for r in records if r.headers["routerwatch.offset"] in k7}) == 1
