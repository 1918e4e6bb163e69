"""Kafka's default partitioning (murmur2 of the key), as aiokafka's ``DefaultPartitioner`` does it.

The SDK fills record batches per partition itself, so it picks partitions itself,
and must pick the same ones ``producer.send(key=...)`` would: a request's events
stay on one partition whichever path sent them. This murmur2 returns exactly
``aiokafka.partitioner.murmur2``'s values at about half its cost (one ``unpack``
for all 4-byte words instead of byte-by-byte arithmetic).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence

_M = 0x5BD1E995
_unpackers: dict[int, Callable[[bytes], tuple[int, ...]]] = {}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (org.apache.kafka.common.utils.Utils.murmur2) of ``data``."""
    m = _M
    length = len(data)
    h = 0x9747B28C ^ length
    words = length >> 2
    unpack = _unpackers.get(words)
    if unpack is None:
        unpack = _unpackers.setdefault(words, struct.Struct(f"<{words}I").unpack_from)
    for k in unpack(data):
        k = k * m & 0xFFFFFFFF
        h = (h * m & 0xFFFFFFFF) ^ ((k ^ (k >> 24)) * m & 0xFFFFFFFF)
    tail = length & 3
    if tail:
        base = words << 2
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h = (h ^ data[base]) * m & 0xFFFFFFFF
    h = (h ^ (h >> 13)) * m & 0xFFFFFFFF
    return h ^ (h >> 15)


def choose_partition(key: bytes | None, partitions: Sequence[int], available: Sequence[int]) -> int:
    """The partition ``DefaultPartitioner`` picks: by key hash, or without a key at random (available ones first)."""
    if key is None:
        return random.choice(available or partitions)
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
