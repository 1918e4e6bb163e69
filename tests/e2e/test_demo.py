"""`make demo`'s script, run twice, then `make stop`'s: the README's front door."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from servicekit import REPO
from test_demo_console import demo_env  # the demo's environment with this test's ports, topics and store

pytestmark = pytest.mark.integration


def test_demo_runs_twice_with_exact_counts_and_stops(kafka_bootstrap, names, tmp_path):
    env = demo_env(kafka_bootstrap, names, tmp_path)
    try:
        for run in (1, 2):
            done = subprocess.run([str(REPO / "deploy/demo.sh")], env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
            assert done.returncode == 0, f"demo run {run} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            out = done.stdout
            assert "Per tier" in out and "Routing mix" in out
            assert re.search(r"^stored:\s+1500 requests", out, re.M), out[-2000:]
            assert re.search(rf"^DLQ:\s+12 message\(s\) dead-lettered by this run \({12 * run} in total\)", out, re.M), out[-2000:]
            assert re.search(r"^canaries:\s+5 of 5 canaries probed; 0 bad probe", out, re.M), out[-2000:]
            assert "Canary probes" in out and "contract-clause" in out
            if run == 2:
                assert "already running" in out
        # The documented switch: the example router's canaries page in the demo's Alertmanager, then resolve.
        broken = subprocess.run([str(REPO / "deploy/canary.sh"), "break"], env=env, capture_output=True, text=True,
                                timeout=400, cwd=REPO)
        assert broken.returncode == 0, f"{broken.stdout[-3000:]}\n{broken.stderr[-3000:]}"
        assert re.search(r"RouterwatchCanaryTierFlip \[critical, active\] scope=side, side=cheap", broken.stdout), broken.stdout
        healed = subprocess.run([str(REPO / "deploy/canary.sh"), "heal"], env=env, capture_output=True, text=True,
                                timeout=400, cwd=REPO)
        assert healed.returncode == 0 and "0 active canary alert(s)" in healed.stdout, healed.stdout[-3000:]
        sql = subprocess.run(
            [sys.executable, "-m", "routerwatch.cli", "sql", "SELECT count() FROM requests"],
            env=env, capture_output=True, text=True, timeout=120, cwd=REPO,
        )
        assert sql.stdout.strip() == "1500", sql.stderr
    finally:
        stopped = subprocess.run([str(REPO / "deploy/demo-stop.sh")], env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped routerwatch serve" in stopped.stdout and "stopped the example router" in stopped.stdout
    again = subprocess.run([str(REPO / "deploy/demo-stop.sh")], env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert again.returncode == 0, "stop is safe twice"
