"""The linter runs with the tests: ``ruff check`` over the service, the tests and the benchmarks
passes with the rules of pyproject.toml's [tool.ruff] (unused imports and names, blind excepts
without a reason, `noqa` markers that silence nothing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "services", "tests", "bench"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
