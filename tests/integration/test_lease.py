"""The canary prober lease on a real broker: exactly one holder, handed over on stop and on death."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from servicekit import create_topics

from routerwatch.scheduler.lease import KafkaLease

pytestmark = pytest.mark.timeout(120)


async def _until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return predicate()


def test_one_holder_and_clean_handover(kafka_bootstrap, names):
    topic, group = f"{names['decisions']}.lease", f"{names['group']}-lease"

    async def scenario() -> None:
        await create_topics(kafka_bootstrap, [topic])
        changes: list[tuple[str, bool]] = []
        a = KafkaLease(kafka_bootstrap, topic, group, session_timeout_s=6, on_change=lambda h: changes.append(("a", h)))
        b = KafkaLease(kafka_bootstrap, topic, group, session_timeout_s=6, on_change=lambda h: changes.append(("b", h)))
        await a.start()
        assert await a.wait_held(30), "the only member never got the lease"
        await b.start()
        # b joining forces a rebalance; the lease is sticky: a keeps it, b stands by.
        await asyncio.sleep(4)
        assert await _until(lambda: a.held and not b.held, 20), (a.held, b.held)
        await asyncio.sleep(2)
        assert a.held and not b.held, "the newcomer took the lease"
        assert ("b", True) not in changes
        holder, other = a, b
        await holder.stop()
        assert not holder.held
        assert await other.wait_held(20), "the lease did not move when its holder left the group"
        await holder.stop()  # safe twice
        await other.stop()
        assert ("a", True) in changes or ("b", True) in changes

    asyncio.run(scenario())


def test_lease_moves_when_the_holder_dies(kafka_bootstrap, names, tmp_path):
    """kill -9 of the holder: no clean leave, the lease moves after the session timeout."""
    topic, group = f"{names['decisions']}.lease", f"{names['group']}-lease"
    asyncio.run(create_topics(kafka_bootstrap, [topic]))
    flag = tmp_path / "held"
    script = textwrap.dedent(
        f"""
        import asyncio, pathlib
        from routerwatch.scheduler.lease import KafkaLease
        async def main():
            lease = KafkaLease({kafka_bootstrap!r}, {topic!r}, {group!r}, session_timeout_s=6)
            await lease.start()
            await lease.wait_held(60)
            pathlib.Path({str(flag)!r}).write_text("held")
            await asyncio.Event().wait()
        asyncio.run(main())
        """
    )
    holder = subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert flag.exists(), "the subprocess never got the lease"

        async def standby() -> float:
            lease = KafkaLease(kafka_bootstrap, topic, group, session_timeout_s=6)
            await lease.start()
            try:
                await asyncio.sleep(3)
                assert not lease.held, "two holders at once"
                holder.send_signal(signal.SIGKILL)
                killed = time.monotonic()
                assert await lease.wait_held(40), "the lease never moved off the dead holder"
                return time.monotonic() - killed
            finally:
                await lease.stop()

        waited = asyncio.run(standby())
        # Not before the dead member's session could expire, and not much after.
        assert 1.0 < waited < 30, waited
    finally:
        holder.kill()
        holder.wait()
