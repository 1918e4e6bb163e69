"""The dead-letter producer: a batch of dead letters goes out as record batches, one per partition.

Sending each dead letter as its own ``send()`` made a burst of bad events cost far more than the
same number of valid ones: a future, a callback and a wake-up per message, and every send in
flight waiting on the accumulator's one batch per partition. Here a whole batch of dead letters
is appended to record batches (aiokafka's ``create_batch`` / ``send_batch``) and the broker's
acknowledgements are awaited once per record batch; each letter still gets its own result, so a
letter the topic refuses (too large) is retried on its own as a bounded copy by the processor.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any, Sequence

from routerwatch.ingest.processor import DeadLetter
from routerwatch.kafka_client import client_kwargs, start_client

# What one produce request may carry: a dead letter is its message's whole value plus headers.
MAX_REQUEST_BYTES = 64 * 1024 * 1024
# Record batches are filled up to this size (one request may hold several).
BATCH_BYTES = 1024 * 1024


class DeadLetterProducer:
    """Sends dead letters to ``topic``; :meth:`send_many` returns one result (None or the error) per letter.

    ``start()`` connects (raises on a refused login, like every client); ``stop()`` flushes and is
    safe without ``start()`` and twice. Not started, the first send starts it.
    """

    def __init__(self, settings: Any, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self._producer: Any = None
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        async with self._starting:
            if self._producer is not None:
                return
            from aiokafka import AIOKafkaProducer

            kwargs = client_kwargs(
                self.settings,
                client_id=f"{self.settings.ingest.app_id}-dlq",
                acks="all",
                compression_type="lz4",
                max_request_size=MAX_REQUEST_BYTES,
                max_batch_size=BATCH_BYTES,
                linger_ms=5,
            )
            producer = AIOKafkaProducer(**kwargs)
            await start_client(producer, self.settings.kafka_bootstrap, kwargs)
            self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def __call__(self, letter: DeadLetter) -> None:
        """Send one dead letter and wait for its acknowledgement (raises what the send raised)."""
        (result,) = await self.send_many([letter])
        if result is not None:
            raise result

    async def send_many(self, letters: Sequence[DeadLetter]) -> list[BaseException | None]:
        """Send ``letters``; returns, in their order, None for each acknowledged one and the error for the others."""
        if self._producer is None:
            await self.start()
        producer = self._producer
        partitions = sorted(await producer.partitions_for(self.topic))
        by_partition: dict[int, list[int]] = {}
        for i, letter in enumerate(letters):
            key = letter.message.key
            # Keyed letters stay together per key (as the input topic kept them); the others are
            # spread by their origin, so a replay reads them in a stable order.
            spread = zlib.crc32(key) if key is not None else letter.message.partition * 7919 + letter.message.offset
            by_partition.setdefault(partitions[spread % len(partitions)], []).append(i)
        results: list[BaseException | None] = [None] * len(letters)
        sends: list[tuple[list[int], Any]] = []
        for partition, indexes in by_partition.items():
            batch, members = producer.create_batch(), []
            for i in indexes:
                letter = letters[i]
                if batch.append(key=letter.message.key, value=letter.value, timestamp=None, headers=letter.headers()) is None:
                    if members:  # full: send it and start the next one with this letter
                        sends.append((members, await producer.send_batch(batch, self.topic, partition=partition)))
                        batch, members = producer.create_batch(), []
                    if batch.append(key=letter.message.key, value=letter.value, timestamp=None, headers=letter.headers()) is None:
                        results[i] = _too_large(letter)
                        continue
                members.append(i)
            if members:
                sends.append((members, await producer.send_batch(batch, self.topic, partition=partition)))
        acks = await asyncio.gather(*(future for _, future in sends), return_exceptions=True)
        for (members, _), ack in zip(sends, acks):
            if isinstance(ack, BaseException):
                for i in members:
                    results[i] = ack
        return results


def _too_large(letter: DeadLetter) -> BaseException:
    from aiokafka.errors import MessageSizeTooLargeError

    return MessageSizeTooLargeError(f"a dead letter of {len(letter.value or b'')} bytes does not fit a record batch")
