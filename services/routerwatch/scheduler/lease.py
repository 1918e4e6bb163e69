"""A lease held through Kafka's group membership: at most one ``serve`` fires canary probes.

Every ``serve`` joins one consumer group on a one-partition topic; the group coordinator
assigns that partition to exactly one live member, and that member holds the lease. This is
the leader election Kafka Connect and Kafka Streams lean on, with no extra service:

- a holder that stops cleanly leaves the group and the lease moves at once;
- a holder that dies (kill -9, lost host) stops heartbeating and loses the lease after
  ``session_timeout_s``; a restarted ``serve`` simply rejoins, so the lease survives restarts
  and is never stuck on a stale lock file;
- the lease is sticky: a ``serve`` that joins does not take it from the current holder (the
  assignor gives the partition to the member that held it in the previous generation, and only
  when there is none to the first member by id), so a rolling restart moves it at most once;
- the holder learns it lost the lease in ``on_partitions_revoked``, before anyone else is
  given it (the coordinator waits for revocation during a rebalance). A holder cut off from
  the broker notices when its heartbeats fail; until then, at most one probe round can
  overlap, which the probe schedule (last probe time per canary, shared through ClickHouse)
  keeps from turning into a doubled schedule.

No message is ever produced to or read from the topic; only membership matters.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("routerwatch.lease")


def _sticky_assignor(lease: KafkaLease) -> type:
    """A one-partition assignor that leaves the lease with its holder across rebalances.

    Each member says in its join metadata whether it held the lease in the previous generation;
    the group leader gives every partition to that member (the first by id if several claim it,
    e.g. a holder cut off and replaced), else to the first member by id.
    """
    from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata

    class StickyLeaseAssignor(AbstractPartitionAssignor):
        name = "routerwatch-sticky-lease"
        version = 0

        @classmethod
        def metadata(cls, topics: Any) -> Any:
            return ConsumerProtocolMemberMetadata(cls.version, list(topics), b"held" if lease.held_last_generation else b"")

        @classmethod
        def assign(cls, cluster: Any, members: Any) -> dict[str, Any]:
            claimants = sorted(m for m, meta in members.items() if meta.user_data == b"held")
            winner = claimants[0] if claimants else sorted(members)[0]
            topics = sorted({t for meta in members.values() for t in meta.subscription})
            owned = [(t, sorted(cluster.partitions_for_topic(t) or ())) for t in topics]
            return {
                member: ConsumerProtocolMemberAssignment(cls.version, owned if member == winner else [], b"")
                for member in members
            }

        @classmethod
        def on_assignment(cls, assignment: Any) -> None:
            pass

    return StickyLeaseAssignor


class KafkaLease:
    """``start()`` joins the group; :attr:`held` says whether this process holds the lease now.

    ``on_change(held)`` is called (from the event loop) whenever the lease is gained or lost;
    it must not block. ``stop()`` leaves the group (handing the lease over) and is safe
    without ``start()`` and twice.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        *,
        session_timeout_s: float = 10.0,
        on_change: Callable[[bool], None] | None = None,
        security: Mapping[str, Any] | None = None,
    ) -> None:
        """``security``: aiokafka's TLS / SASL arguments (:func:`routerwatch.kafka_client.settings_kwargs`)."""
        self.bootstrap = bootstrap
        self.security = dict(security or {})
        self.topic = topic
        self.group = group
        self.session_timeout_s = session_timeout_s
        self.on_change = on_change
        self.held = False
        # Survives the revoke that precedes every rebalance: what this member claims when rejoining.
        self.held_last_generation = False
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> KafkaLease:
        if self._consumer is not None:
            return self
        from aiokafka import AIOKafkaConsumer
        from aiokafka.abc import ConsumerRebalanceListener

        lease = self

        class _Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked: Any) -> None:
                lease._set(False)

            async def on_partitions_assigned(self, assigned: Any) -> None:
                held = any(tp.topic == lease.topic for tp in assigned)
                lease.held_last_generation = held
                lease._set(held)

        session_ms = int(self.session_timeout_s * 1000)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            enable_auto_commit=False,
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(500, session_ms // 5),
            # Polling is only for membership: nothing is read, so a long poll interval is harmless.
            max_poll_interval_ms=max(60_000, session_ms * 2),
            auto_offset_reset="latest",
            partition_assignment_strategy=(_sticky_assignor(self),),
            **self.security,
        )
        self._consumer.subscribe([self.topic], listener=_Listener())
        await self._consumer.start()
        self._task = asyncio.create_task(self._poll(), name=f"lease:{self.group}")
        log.info("joined lease group %s on %s", self.group, self.topic)
        return self

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping anyway
                pass
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()  # leaves the group: the lease moves without waiting for the timeout
        self.held_last_generation = False
        self._set(False)

    async def wait_held(self, timeout: float) -> bool:
        """Wait until this process holds the lease (tests, tools); False on timeout."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.held:
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def _poll(self) -> None:
        # getmany drives the group protocol (joins, rebalances); there are never records to read.
        while True:
            try:
                await self._consumer.getmany(timeout_ms=1000)
                # Re-read after every poll: after a failed poll this is what brings ``held`` back.
                self._set(any(tp.topic == self.topic for tp in self._consumer.assignment()))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a broker hiccup must not end membership for good
                log.warning("lease group %s: %s; retrying", self.group, exc)
                self.held_last_generation = False
                self._set(False)
                await asyncio.sleep(1.0)

    def _set(self, held: bool) -> None:
        if held == self.held:
            return
        self.held = held
        log.info("canary prober lease %s (group %s)", "acquired" if held else "released", self.group)
        if self.on_change is not None:
            self.on_change(held)
