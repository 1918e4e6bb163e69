"""Faults of `routerwatch serve` itself: kill -9, SIGSTOP past the session timeout, and an insert
the engine refuses (a batch over more than 100 monthly partitions). Exact accounting in each.
"""

from __future__ import annotations

import json
import signal
import time

import pytest
from faults.faultkit import (
    PROFILE,
    Expected,
    account,
    caught_up,
    dead_letters,
    group_state,
    health_status,
    scaled,
    wait_until,
)
from integration.test_pipeline import sdk
from pydantic_core import to_json
from servicekit import Serve

from routerwatch.simulate import emit, events

pytestmark = [pytest.mark.fault, pytest.mark.integration, pytest.mark.timeout(scaled(600, 3600))]


def stored(serve: Serve) -> int:
    return int(serve.scalar("SELECT count() FROM decisions"))


def test_kill_9_mid_stream_then_restart_loses_and_doubles_nothing(env, tmp_path):
    # Small batches: many inserts in flight, so a kill lands between a batch's two inserts
    # (attempts, then decisions) or between its insert and its offset commit.
    env.extra["ROUTERWATCH_INGEST__BATCH_SIZE"] = "1500"
    total, kills = scaled(10_000, 200_000), scaled(1, 4)
    now = time.time()
    expected = Expected()
    expected.add_plan(total, seed=41, now=now)
    serve = Serve(env, tmp_path / "serve-0.log").start()
    try:
        rw = sdk(env)
        emit(rw, PROFILE, total, seed=41, now=now)
        assert rw.close()["dropped"] == 0
        for k in range(kills):
            target = total * (k + 1) // (kills + 2)
            seen = wait_until(lambda: (n := stored(serve)) >= target and n, 180, f"{target} decisions stored", interval=0.05)
            serve.stop(signal.SIGKILL)
            assert seen < total, f"kill {k + 1} came too late to test anything: {seen} of {total} stored"
            serve = Serve(env, tmp_path / f"serve-{k + 1}.log").start()
        lag = caught_up(env, scaled(240, 900))
        account(serve, expected, context=lag)
        assert not lag, lag
        assert not dead_letters(env), "valid events were dead-lettered"
    finally:
        serve.stop()


def test_sigstop_past_the_session_timeout_then_sigcont_is_exact(env, tmp_path):
    """A stopped serve is evicted from the group while its batch is in hand; after SIGCONT it must
    rejoin, and whatever it held is stored once (its commit is refused, the batch redelivered)."""
    env.extra["ROUTERWATCH_INGEST__BATCH_SIZE"] = "1000"
    first, second = scaled(6_000, 60_000), scaled(4_000, 40_000)
    hold_s = scaled(0, 60)  # the long form keeps it stopped a minute past the eviction
    now = time.time()
    expected = Expected()
    expected.add_plan(first, seed=51, now=now)
    expected.add_plan(second, seed=52, now=now)
    serve = Serve(env, tmp_path / "serve.log").start()
    stopped = False
    try:
        rw = sdk(env)
        emit(rw, PROFILE, first, seed=51, now=now)
        assert rw.close()["dropped"] == 0
        wait_until(lambda: stored(serve) >= first // 4, 120, "a quarter of the first wave stored", interval=0.05)
        serve.proc.send_signal(signal.SIGSTOP)
        stopped = True
        stopped_at = time.monotonic()
        rw = sdk(env)
        emit(rw, PROFILE, second, seed=52, now=now)
        assert rw.close()["dropped"] == 0
        # Past the session timeout (6 s in the test env): the coordinator has evicted it.
        wait_until(lambda: group_state(env.kafka, env.names["group"])[1] == 0
                   and time.monotonic() - stopped_at >= hold_s, 120 + hold_s,
                   "the stopped serve to be evicted from its consumer group", interval=0.5)
        serve.proc.send_signal(signal.SIGCONT)
        stopped = False
        lag = caught_up(env, scaled(240, 600))
        assert serve.proc.poll() is None, f"serve exited {serve.proc.returncode} after SIGCONT:\n{serve.log()}"
        account(serve, expected, context=lag)
        assert not lag, lag
        assert not dead_letters(env), "valid events were dead-lettered"
    finally:
        if stopped:
            serve.proc.send_signal(signal.SIGCONT)
        serve.stop()


def test_a_batch_over_more_than_100_monthly_partitions_is_stored(env, tmp_path):
    """ClickHouse refuses an insert touching more than 100 partitions (max_partitions_per_insert_block):
    valid events spread over 101+ months must be stored all the same, not lost with offsets committed."""
    months = scaled(101, 240)
    n = months + 15
    expected = Expected()
    payloads = []
    for i, event in enumerate(events(PROFILE, n, seed=61)):
        body = json.loads(to_json(event))
        month = i % months
        body["occurred_at"] = f"{2000 + month // 12:04d}-{month % 12 + 1:02d}-15T12:00:00.250Z"
        payloads.append((body["request_id"].encode(), json.dumps(body).encode()))
        expected.decisions[body["event_id"]] = len(body["attempts"])
    # Sent before serve starts, so that its first batch holds all of them: one insert, 101+ partitions.
    rw = sdk(env)
    for key, value in payloads:
        rw.emit_raw(env.names["decisions"], value, key)
    assert rw.close()["dropped"] == 0
    serve = Serve(env, tmp_path / "serve.log").start()
    try:
        lag = caught_up(env, scaled(120, 300))
        account(serve, expected, context=lag)
        assert not lag, lag
        assert not dead_letters(env), "valid, storable events were dead-lettered"
        wait_until(lambda: health_status(serve) == 200, 30, "/health 200 once everything is stored")
        months_stored = serve.scalar("SELECT uniqExact(toYYYYMM(occurred_at)) FROM decisions")
        assert months_stored == months
    finally:
        serve.stop()
