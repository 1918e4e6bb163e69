"""The prober's schedule without a router or a broker: resuming from the state file, firing only
what is due, moving each canary's next probe by its interval plus jitter, and keeping the state
file whole.

The router URL is a closed local port, so a probe that does run comes back at once as a
no-answer result; the lease is off (``use_lease=False``) and results go to a list.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from routerwatch.canary import prober as prober_module
from routerwatch.canary.prober import STATE_VERSION, CanaryProber, result_kind
from routerwatch.config import CanarySettings, load_settings

# Nothing listens on port 1: connections are refused at once.
CLOSED_URL = "http://127.0.0.1:1/v1/chat/completions"
ROUTER = "sched-router"

# every_seconds, jitter_seconds of each canary.
SCHEDULES = {"alpha": (60.0, 5.0), "beta": (60.0, 5.0), "gamma": (30.0, 0.0)}

CANARY = """\
  - id: {id}
    request: {{model: auto, messages: [{{role: user, content: "probe {id}"}}]}}
    expected_tier: small
    check: {{kind: regex, pattern: "."}}
    schedule: {{every_seconds: {every}, jitter_seconds: {jitter}, timeout_seconds: 2}}
"""


def key(canary: str) -> str:
    return f"{ROUTER}/{canary}"


@pytest.fixture(autouse=True)
def _no_routerwatch_environment(monkeypatch):
    # The settings come from the arguments only, whatever the developer's shell exports.
    for name in list(os.environ):
        if name.startswith("ROUTERWATCH_"):
            monkeypatch.delenv(name)


@pytest.fixture
def canaries(tmp_path) -> Path:
    path = tmp_path / "canaries.yml"
    body = "".join(CANARY.format(id=c, every=e, jitter=j) for c, (e, j) in SCHEDULES.items())
    path.write_text(f'version: "v1"\nrouter_id: {ROUTER}\ncanaries:\n{body}')
    return path


@pytest.fixture
def state_file(tmp_path) -> Path:
    # A directory that does not exist yet: saving creates it.
    return tmp_path / "run" / "canary-schedule.json"


@pytest.fixture
def emitted() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def make_prober(canaries, state_file, emitted):
    def factory(**overrides: Any) -> CanaryProber:
        cfg = CanarySettings(files=[canaries], state_file=state_file, router_url=CLOSED_URL, **overrides)
        return CanaryProber(load_settings(canary=cfg), None, emit=emitted.append, use_lease=False)

    return factory


def write_state(path: Path, last_probe: dict[str, float], version: Any = STATE_VERSION) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": version, "last_probe": last_probe}))


@pytest.fixture
def upper_jitter(monkeypatch):
    """Every random jitter at its upper bound: the jitter's effect becomes exact."""
    monkeypatch.setattr(prober_module.random, "uniform", lambda low, high: high)


# -- resuming ----------------------------------------------------------------------------------


async def test_resume_continues_each_canary_from_its_last_probe(make_prober, state_file):
    now = time.time()
    probed = {key("alpha"): now - 2.0, key("gamma"): now - 100.0, "gone-router/gone": now - 1.0}
    write_state(state_file, probed)
    prober = make_prober()
    before = time.time()
    await prober._resume()
    after = time.time()

    # Probed 2 s ago, every 60 s: due 58 s from now, not now (no burst on restart).
    assert prober.next_due[key("alpha")] == pytest.approx(probed[key("alpha")] + 60.0, abs=1e-6)
    assert 57.0 < prober.next_due[key("alpha")] - after <= 58.0
    # Overdue (probed 100 s ago, every 30 s): due now, once; not once per missed interval.
    assert before <= prober.next_due[key("gamma")] <= after
    # Never probed: due within its jitter.
    assert before <= prober.next_due[key("beta")] <= after + SCHEDULES["beta"][1]
    # What was probed is remembered as fired; what was not, is not.
    assert prober.last_fired == {key("alpha"): probed[key("alpha")], key("gamma"): probed[key("gamma")]}
    # A canary no longer in the files is not scheduled.
    assert set(prober.next_due) == {key(c) for c in SCHEDULES}


async def test_a_never_probed_canary_is_spread_by_its_jitter(make_prober, upper_jitter):
    prober = make_prober()
    before = time.time()
    await prober._resume()
    after = time.time()
    # At the jitter's upper bound each canary lands exactly that far out; gamma has none.
    for canary, (_, jitter) in SCHEDULES.items():
        assert before + jitter <= prober.next_due[key(canary)] <= after + jitter, canary
    assert prober.last_fired == {}


async def test_resume_without_a_state_file_warns_about_nothing(make_prober, state_file, caplog):
    caplog.set_level(logging.WARNING, logger="routerwatch.canary")
    prober = make_prober()
    await prober._resume()
    assert not state_file.exists()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert set(prober.next_due) == {key(c) for c in SCHEDULES}


@pytest.mark.parametrize(
    ("content", "warning"),
    [
        ('{"version": 1, "last_probe": {', "ignoring unreadable canary state file"),
        ("", "ignoring unreadable canary state file"),
        (json.dumps({"version": 2, "last_probe": {"sched-router/alpha": 0}}), "of version 2"),
        (json.dumps({"last_probe": {"sched-router/alpha": 0}}), "of version None"),
        (json.dumps({"version": "1", "last_probe": {"sched-router/alpha": 0}}), "of version '1'"),
    ],
    ids=["truncated", "empty", "newer-version", "no-version", "version-as-string"],
)
async def test_a_corrupt_or_other_version_state_file_is_ignored_with_a_warning(
    make_prober, state_file, caplog, content, warning
):
    state_file.parent.mkdir(parents=True)
    # Where the file does give a time, it is recent: honouring it would push alpha ~60 s out.
    state_file.write_text(content.replace('"sched-router/alpha": 0', f'"sched-router/alpha": {time.time() - 2}'))
    caplog.set_level(logging.WARNING, logger="routerwatch.canary")
    prober = make_prober()
    before = time.time()
    await prober._resume()
    after = time.time()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(warning in w and str(state_file) in w for w in warnings), warnings
    # Every canary starts afresh: due within its jitter, none remembered as fired.
    assert prober.last_fired == {}
    for canary, (_, jitter) in SCHEDULES.items():
        assert before <= prober.next_due[key(canary)] <= after + jitter, canary


@pytest.mark.parametrize(
    "content",
    [
        "[]",
        "null",
        '{"version": 1, "last_probe": {"sched-router/alpha": "soon"}}',
        '{"version": 1, "last_probe": [1]}',
    ],
    ids=["list", "null", "time-not-a-number", "last-probe-not-an-object"],
)
async def test_a_state_file_of_the_wrong_shape_is_ignored_with_a_warning(make_prober, state_file, caplog, content):
    state_file.parent.mkdir(parents=True)
    state_file.write_text(content)
    caplog.set_level(logging.WARNING, logger="routerwatch.canary")
    prober = make_prober()
    await prober._resume()
    assert any(str(state_file) in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert prober.last_fired == {} and set(prober.next_due) == {key(c) for c in SCHEDULES}


# -- dispatching -------------------------------------------------------------------------------


async def test_dispatch_fires_only_due_canaries_and_moves_them_by_their_interval(make_prober, state_file, emitted):
    prober = await make_prober().start()
    try:
        now = time.time()
        # No await between here and dispatch(): the every-second job cannot run in between.
        prober.next_due.update({key("alpha"): now - 1.0, key("beta"): now + 30.0, key("gamma"): now})
        before = time.time()
        tasks = await prober.dispatch()
        after = time.time()
        assert len(tasks) == 2

        # alpha and gamma were due; beta was not and keeps its slot.
        assert set(prober.last_fired) == {key("alpha"), key("gamma")}
        assert prober.next_due[key("beta")] == now + 30.0
        for canary in ("alpha", "gamma"):
            every, jitter = SCHEDULES[canary]
            fired = prober.last_fired[key(canary)]
            assert before <= fired <= after
            assert every <= prober.next_due[key(canary)] - fired <= every + jitter, canary
        # gamma has no jitter: exactly one interval later.
        assert prober.next_due[key("gamma")] == prober.last_fired[key("gamma")] + 30.0

        # The state file is written when probes are fired, before they finish.
        saved = json.loads(state_file.read_text())
        assert saved == {"version": STATE_VERSION, "last_probe": prober.last_fired}

        # Nothing is due any more: a second tick fires nothing.
        assert await prober.dispatch() == []

        results = await asyncio.gather(*tasks)
        assert sorted(r["canary_id"] for r in results) == ["alpha", "gamma"]
        for r in results:
            # The router URL is a closed port: a no-answer result, naming the URL.
            assert result_kind(r) == "no_answer" and r["error"].startswith(f"request to {CLOSED_URL} failed:"), r
            assert r["router_id"] == ROUTER
        assert len({r["run_id"] for r in results}) == 1, "one tick, one run"
        assert sorted(emitted, key=lambda r: r["canary_id"]) == sorted(results, key=lambda r: r["canary_id"])
        assert prober.fired == 2
    finally:
        await prober.stop()


async def test_dispatch_adds_at_most_the_jitter(make_prober, upper_jitter):
    prober = await make_prober().start()
    try:
        now = time.time()
        prober.next_due.update({key(c): now - 1 for c in SCHEDULES})
        await asyncio.gather(*(await prober.dispatch()))
        for canary, (every, jitter) in SCHEDULES.items():
            assert prober.next_due[key(canary)] == prober.last_fired[key(canary)] + every + jitter, canary
    finally:
        await prober.stop()


async def test_dispatch_waits_for_the_schedule_and_the_lease(make_prober, canaries, state_file, emitted):
    # With the lease on, nothing fires before the lease is held and the schedule is read back.
    cfg = CanarySettings(files=[canaries], state_file=state_file, router_url=CLOSED_URL)
    leased = CanaryProber(load_settings(canary=cfg), None, emit=emitted.append, use_lease=True)
    assert await leased.dispatch() == []
    assert leased.last_fired == {} and leased.next_due == {}

    class Lease:
        held = False

    prober = make_prober()
    await prober._resume()
    prober.next_due.update({key(c): 0.0 for c in SCHEDULES})
    prober.lease = Lease()
    assert await prober.dispatch() == []
    assert prober.last_fired == {} and not state_file.exists() and emitted == []


async def test_a_failing_emit_is_logged_and_the_other_results_still_go_out(canaries, state_file, caplog):
    sent: list[dict[str, Any]] = []

    def emit(result: dict[str, Any]) -> None:
        if result["canary_id"] == "beta":
            raise RuntimeError("broker gone")
        sent.append(result)

    cfg = CanarySettings(files=[canaries], state_file=state_file, router_url=CLOSED_URL)
    prober = await CanaryProber(load_settings(canary=cfg), None, emit=emit, use_lease=False).start()
    try:
        prober.next_due.update({key(c): 0.0 for c in SCHEDULES})
        results = await asyncio.gather(*(await prober.dispatch()))
    finally:
        await prober.stop()
    assert len(results) == 3
    assert sorted(r["canary_id"] for r in sent) == ["alpha", "gamma"]
    assert any("sched-router/beta: could not emit its result" in r.getMessage() for r in caplog.records)


async def test_run_all_once_probes_everything_and_leaves_the_schedule_alone(make_prober, state_file, emitted):
    prober = await make_prober().start()
    try:
        far = time.time() + 3600
        prober.next_due.update({key(c): far for c in SCHEDULES})
        results = await prober.run_all_once()
        assert sorted(r["canary_id"] for r in results) == sorted(SCHEDULES)
        assert all(result_kind(r) == "no_answer" for r in results)
        assert len(emitted) == 3
        assert prober.next_due == {key(c): far for c in SCHEDULES}
        assert prober.last_fired == {}
    finally:
        await prober.stop()
    assert not state_file.exists()


# -- the state file ----------------------------------------------------------------------------


def test_the_state_file_is_replaced_atomically(make_prober, state_file, monkeypatch):
    prober = make_prober()
    prober.last_fired.update({key("alpha"): 1000.5, key("gamma"): 2000.25})
    replaced: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def spy(src: Any, dst: Any) -> None:
        # At the moment of the swap the new content is complete, in a file next to the target.
        assert json.loads(Path(src).read_text())["last_probe"] == prober.last_fired
        replaced.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(prober_module.os, "replace", spy)
    prober._save_state()
    ((src, dst),) = replaced
    assert dst == state_file and src.parent == state_file.parent and src != dst
    assert json.loads(state_file.read_text()) == {"version": STATE_VERSION, "last_probe": prober.last_fired}
    assert list(state_file.parent.iterdir()) == [state_file], "no temporary file left behind"


def test_a_failed_save_leaves_the_previous_state_whole(make_prober, state_file, monkeypatch, caplog):
    write_state(state_file, {key("alpha"): 1000.0})
    previous = state_file.read_text()
    prober = make_prober()
    prober.last_fired.update({key("alpha"): 5000.0, key("beta"): 5000.0})

    def crash(src: Any, dst: Any) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(prober_module.os, "replace", crash)
    caplog.set_level(logging.WARNING, logger="routerwatch.canary")
    prober._save_state()  # a full disk must not stop the schedule: warn and go on
    assert state_file.read_text() == previous
    assert any("disk gone" in r.getMessage() for r in caplog.records)
    assert [p.name for p in state_file.parent.iterdir()] == [state_file.name]  # no temporary file left


async def test_a_saved_state_is_what_the_next_prober_resumes_from(make_prober, state_file):
    first = make_prober()
    fired = time.time() - 5.0
    first.last_fired.update({key("alpha"): fired, key("gamma"): fired})
    await first.stop()  # never started: stop still saves what was fired
    second = make_prober()
    await second._resume()
    assert second.last_fired == {key("alpha"): fired, key("gamma"): fired}
    assert second.next_due[key("alpha")] == pytest.approx(fired + 60.0)
    assert second.next_due[key("gamma")] == pytest.approx(fired + 30.0)


async def test_stop_without_anything_fired_writes_no_state(make_prober, state_file):
    prober = make_prober()
    await prober.stop()
    await prober.stop()
    assert not state_file.exists()
