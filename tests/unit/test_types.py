"""The type checker runs with the tests: ``mypy --strict`` passes on the pure statistical core
(``routerwatch.drift``) and the event contract (``routerwatch.events``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STRICT = ("services/routerwatch/drift", "services/routerwatch/events")


def test_mypy_strict_on_the_core_and_the_contract(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), *STRICT],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
