"""Faults around serve: the broker stopped and restarted while the SDK records, and a full disk
under the embedded store. Exact accounting in each.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from faults.faultkit import (
    PROFILE,
    Expected,
    account,
    caught_up,
    dead_event_ids,
    dead_letters,
    health_status,
    scaled,
    wait_until,
)
from integration.test_pipeline import sdk
from servicekit import REPO, Env, Serve, free_port

from routerwatch.simulate import emit

pytestmark = [pytest.mark.fault, pytest.mark.integration, pytest.mark.timeout(scaled(600, 3600))]


def _record_chunk(rw, expected: Expected, n: int, seed: int, now: float) -> None:
    expected.add_plan(n, seed, now)
    emit(rw, PROFILE, n, seed, now=now)


def test_broker_stop_and_restart_while_the_sdk_records_loses_nothing(names, tmp_path):
    kafka_env = dict(os.environ, KAFKA_PORT=str(free_port()), KAFKA_CONTROLLER_PORT=str(free_port()),
                     KAFKA_DATA_DIR=str(tmp_path / "kafka"), KAFKA_NUM_PARTITIONS="1")
    start, stop = [str(REPO / "deploy/kafka/start.sh")], [str(REPO / "deploy/kafka/stop.sh")]
    started = subprocess.run(start, env=kafka_env, capture_output=True, text=True, timeout=300)
    assert started.returncode == 0, f"local broker did not start:\n{started.stderr[-3000:]}"
    bootstrap = started.stdout.split()[-1]
    env = Env(kafka=bootstrap, names=names, store_url=f"chdb://{tmp_path / 'store'}")
    env.cli("migrate")
    serve = Serve(env, tmp_path / "serve.log").start()
    rw = None
    try:
        now = time.time()
        expected = Expected()
        chunk, outage_s = scaled(500, 2_000), scaled(10, 30)
        rw = sdk(env)
        _record_chunk(rw, expected, scaled(3_000, 30_000), seed=70, now=now)
        wait_until(lambda: serve.scalar("SELECT count() FROM decisions") > 0, 120, "the first events stored")

        subprocess.run(stop, env=kafka_env, capture_output=True, check=True, timeout=120)
        # The outage: the router keeps recording (a chunk at a time) for outage_s seconds.
        seed, down_since = 1000, time.monotonic()
        while time.monotonic() - down_since < outage_s:
            _record_chunk(rw, expected, chunk, seed=seed, now=now)
            seed += 1
            time.sleep(0.25)  # pacing of the router's traffic, not a wait for a condition
        during = rw.stats()
        restarted = subprocess.run(start, env=kafka_env, capture_output=True, text=True, timeout=300)
        assert restarted.returncode == 0, f"broker did not restart:\n{restarted.stderr[-3000:]}"
        _record_chunk(rw, expected, scaled(2_000, 20_000), seed=71, now=now)
        final = rw.close(timeout=180)
        rw = None
        problems = []
        if final["dropped"]:
            problems.append(f"the SDK dropped {final['dropped']} events across a {outage_s}s outage "
                            f"(stats during it: {during}; at close: {final})")
        lag = caught_up(env, scaled(240, 600))
        if serve.proc.poll() is not None:
            problems.append(f"serve exited {serve.proc.returncode} across the broker outage")
        if lag:
            problems.append(lag)
        account(serve, expected, problems=problems, context="broker outage")
        assert not dead_letters(env), "valid events were dead-lettered"
    finally:
        if rw is not None:
            rw.close(timeout=1)
        serve.stop()
        subprocess.run(stop + ["--wipe"], env=kafka_env, capture_output=True, timeout=120)


def _free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(
            f"the full-disk case needs a small tmpfs for the store: `mount -t tmpfs -o size={size} tmpfs {path}` "
            f"failed ({done.returncode}): {done.stderr.strip()}. Run the fault suite as root (as CI does) "
            "or with CAP_SYS_ADMIN.",
            pytrace=False,
        )


def _unmount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_full_disk_then_space_freed_stores_or_dead_letters_every_event(kafka_bootstrap, names, tmp_path):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "64m")
    serve = None
    try:
        env = Env(kafka=kafka_bootstrap, names=names, store_url=f"chdb://{disk / 'store'}")
        env.cli("migrate")
        serve = Serve(env, tmp_path / "serve.log").start()
        # Leave only a little room, so that a few batches fill it.
        headroom = scaled(6, 12) * 1024 * 1024
        filler = disk / "filler"
        with open(filler, "wb") as f:
            remaining = max(_free_bytes(disk) - headroom, 0)
            block = b"\0" * (1 << 20)
            while remaining > 0:
                f.write(block[: min(len(block), remaining)])
                remaining -= len(block)
        now = time.time()
        expected = Expected()
        rw = sdk(env)
        chunk, seed = scaled(2_000, 5_000), 2000

        def store_is_full() -> bool:
            return _free_bytes(disk) < 1024 * 1024 or health_status(serve) not in (200, None)

        full = False
        deadline = time.monotonic() + scaled(180, 600)
        while time.monotonic() < deadline:
            _record_chunk(rw, expected, chunk, seed=seed, now=now)
            seed += 1
            try:
                wait_until(lambda: store_is_full() or serve.scalar("SELECT count() FROM decisions") >= len(expected.decisions),
                           60, "the chunk to be stored or the disk to fill")
            except AssertionError:
                full = True  # the store took nothing more for a minute with room nominally left: full for it
                break
            if store_is_full():
                full = True
                break
        assert full, f"the disk never filled: {_free_bytes(disk)} bytes free after {len(expected.decisions)} events"
        # Events keep arriving while the disk is full.
        _record_chunk(rw, expected, chunk, seed=seed, now=now)
        assert rw.close(timeout=120)["dropped"] == 0
        problems = []
        try:
            wait_until(lambda: health_status(serve) not in (200, None), 60, "/health to stop answering 200 while the store is full")
        except AssertionError as exc:
            problems.append(f"{exc}: serve reports healthy while it cannot store")
        filler.unlink()
        lag = caught_up(env, scaled(240, 600))
        if lag:
            problems.append(lag)
        if serve.proc.poll() is not None:
            problems.append(f"serve exited {serve.proc.returncode} on the full disk")
        letters = dead_letters(env)
        dead = dead_event_ids(letters)
        unexplained = [l.headers for l in letters if l.reason == ""]
        if unexplained:
            problems.append(f"{len(unexplained)} dead letters without a reason")
        account(serve, expected, dead=set(dead), problems=problems, context="full disk")
        wait_until(lambda: health_status(serve) == 200, 60, "/health 200 once space is freed and ingest caught up")
    finally:
        if serve is not None:
            serve.stop()
        _unmount(disk)
