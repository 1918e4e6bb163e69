"""What serve logs when it stops mid-run, and aiokafka's retries at start: never an ERROR for a normal event.

The whole process is checked in tests/integration/test_serve_quiet_lifecycle.py; these pin the
two pieces with plain stand-ins (a drift run that blocks; aiokafka's own log records).
"""

from __future__ import annotations

import asyncio
import logging
import threading

from aiokafka import errors

from routerwatch.config import Settings
from routerwatch.kafka_client import _CoordinatorRetries, quiet_coordinator_retries
from routerwatch.scheduler.service import DriftScheduler


def test_a_drift_run_cut_short_by_shutdown_is_not_an_error(caplog, tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTERWATCH_SCHEDULER__DESIGN_CACHE_FILE", str(tmp_path / "designs.json"))
    scheduler = DriftScheduler(Settings(), store=None)
    release = threading.Event()
    running = threading.Event()

    def slow_run(now, wall):
        running.set()
        release.wait(10)

    scheduler.run_once = slow_run

    async def main():
        task = asyncio.create_task(scheduler.tick())
        await asyncio.to_thread(running.wait, 10)
        task.cancel()  # what the worker does to its tasks on SIGTERM
        await asyncio.wait([task], timeout=10)
        release.set()
        return task

    with caplog.at_level(logging.INFO, logger="routerwatch"):
        task = asyncio.run(main())
    # The job coroutine returned: APScheduler has no exception to log with a traceback.
    assert task.done() and not task.cancelled() and task.exception() is None
    [record] = [r for r in caplog.records if "interrupted by shutdown" in r.getMessage()]
    assert record.levelno == logging.INFO
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def _record(level: int, msg: str, *args) -> logging.LogRecord:
    return logging.LogRecord(_CoordinatorRetries.LOGGER, level, "group_coordinator.py", 1, msg, args, None)


def test_retriable_coordinator_lookups_are_info_and_real_errors_keep_their_level():
    chatter = _CoordinatorRetries()
    not_yet = _record(logging.ERROR, "Group Coordinator Request failed: %s", errors.GroupCoordinatorNotAvailableError())
    dead = _record(logging.WARNING, "Marking the coordinator dead (node %s)for group %s.", 1, "routerwatch-ingest")
    denied = _record(logging.ERROR, "Group Coordinator Request failed: %s", errors.GroupAuthorizationFailedError())
    other = _record(logging.ERROR, "Error sending JoinGroupRequest_v2 to node %s [%s]", 1, "boom")
    for record in (not_yet, dead, denied, other):
        assert chatter.filter(record) is True  # nothing is dropped: only the level changes
    assert (not_yet.levelno, not_yet.levelname) == (logging.INFO, "INFO")
    assert dead.levelno == logging.INFO
    assert denied.levelno == logging.ERROR  # not retriable: an operator must act
    assert other.levelno == logging.ERROR


def test_quiet_coordinator_retries_installs_one_filter():
    logger = logging.getLogger(_CoordinatorRetries.LOGGER)
    before = [f for f in logger.filters if isinstance(f, _CoordinatorRetries)]
    quiet_coordinator_retries()
    quiet_coordinator_retries()
    assert len([f for f in logger.filters if isinstance(f, _CoordinatorRetries)]) == 1
    for f in [f for f in logger.filters if isinstance(f, _CoordinatorRetries)][len(before):]:
        logger.removeFilter(f)
