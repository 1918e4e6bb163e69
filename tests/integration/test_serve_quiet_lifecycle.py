"""A normal start and stop of `routerwatch serve` logs no ERROR and no traceback, and leaves nothing behind.

What a newcomer's first `make demo` does: serve starts against a broker that has just come up
(its group coordinator is not elected yet: aiokafka retries, and used to log each retry at
ERROR), the drift scheduler runs, and SIGTERM stops everything (a scheduler run cut short used
to log a CancelledError traceback). faust used to leave an empty "<app id>-data" folder in
whatever directory serve was started from.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request

from servicekit import REPO, Env, Serve, free_port

# Lines a normal start and stop must not log, at any level.
NOT_NORMAL = re.compile(r"\bERROR\b|\bCRITICAL\b|Traceback|CancelledError")


class ServeIn(Serve):
    """serve started from a folder of the test's own, so that what it leaves there shows."""

    def __init__(self, env: Env, log_path, cwd) -> None:
        super().__init__(env, log_path)
        self.cwd = cwd

    def command(self):
        argv, variables, _ = super().command()
        return argv, variables, self.cwd

    def evaluated_at(self) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.env.port}/alerts", timeout=5) as response:
                return json.load(response).get("evaluated_at")
        except OSError:
            return None


def test_a_normal_start_and_stop_on_a_fresh_broker_logs_no_error(tmp_path, names):
    kafka_env = dict(
        os.environ, KAFKA_PORT=str(free_port()), KAFKA_CONTROLLER_PORT=str(free_port()),
        KAFKA_DATA_DIR=str(tmp_path / "kafka"), KAFKA_NUM_PARTITIONS="1",
    )
    started = subprocess.run(
        [str(REPO / "deploy/kafka/start.sh")], env=kafka_env, capture_output=True, text=True, timeout=300
    )
    assert started.returncode == 0, started.stderr[-3000:]
    bootstrap = started.stdout.split()[-1]
    try:
        env = Env(
            kafka=bootstrap, names=names, store_url=f"chdb://{tmp_path / 'store'}",
            # The scheduler runs every second, so SIGTERM finds it mid-run most of the time.
            extra={"ROUTERWATCH_SCHEDULER__INTERVAL_S": "1"},
        )
        env.cli("migrate")
        cwd = tmp_path / "cwd"
        cwd.mkdir()
        serve = ServeIn(env, tmp_path / "serve.log", cwd).start(timeout=180)
        try:
            # Running, consuming and judging: the scheduler has finished a run.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and serve.evaluated_at() is None:
                time.sleep(0.2)
            assert serve.evaluated_at() is not None, serve.log()
            # Not a wait for a condition: runs are a second apart, so after this the stop
            # usually lands inside one (tests/unit/test_scheduler_shutdown.py makes sure).
            time.sleep(1.5)
        finally:
            code = serve.stop(signal.SIGTERM, timeout=90)
        log = serve.log_text()
        assert code == 0, log[-4000:]
        assert "Closing event loop" in log, log[-4000:]
        bad = [line for line in log.splitlines() if NOT_NORMAL.search(line)]
        assert not bad, "\n".join(bad[:20])
        assert list(cwd.iterdir()) == [], "serve left files in its working directory"
    finally:
        subprocess.run([str(REPO / "deploy/kafka/stop.sh"), "--wipe"], env=kafka_env, capture_output=True, timeout=120)
