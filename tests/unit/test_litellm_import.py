"""Importing the LiteLLM integration makes ``import litellm`` offline-safe (no cost-map download).

Each import runs in a fresh interpreter without network (a new network namespace where
``unshare`` allows one, else the machine's own, which has none in CI): a bare ``import litellm``
tries to download its model cost map and logs the failed fetch (then retries in the background);
after ``import routerwatch.integrations.litellm`` it reads the bundled map and never tries.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

FETCH_WARNING = "model cost map"

PROBE = """
import json, sys, threading, time
started = time.monotonic()
{imports}
elapsed = time.monotonic() - started
from litellm.litellm_core_utils.get_model_cost_map import get_model_cost_map_source_info
info = get_model_cost_map_source_info()
print(json.dumps({{
    "elapsed": elapsed,
    "source": info["source"],
    "forced": info["is_env_forced"],
    "retry_thread": any(t.name == "litellm-model-cost-map-retry" for t in threading.enumerate()),
}}))
"""


def _offline(argv: list[str]) -> list[str]:
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0:
        return [unshare, "-rn", *argv]
    return argv


def _run(imports: str) -> tuple[dict, str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITELLM_")}
    started = time.monotonic()
    done = subprocess.run(
        _offline([sys.executable, "-c", PROBE.format(imports=imports)]),
        capture_output=True, text=True, timeout=300, env=env,
    )
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr, wall


def test_importing_the_integration_never_fetches_the_cost_map():
    result, stderr, wall = _run("import routerwatch.integrations.litellm\nimport litellm")
    assert FETCH_WARNING not in stderr, stderr[-2000:]
    assert result["source"] == "local" and result["forced"] is True
    assert result["retry_thread"] is False
    # The import costs what loading LiteLLM costs, with no network wait on top (the fetch's
    # timeout is 5 s and its retries wait 2-3 s each); generous for a loaded 2-core machine.
    assert result["elapsed"] < 60, result


def test_a_bare_litellm_import_would_try_to_download_it():
    """The control: without the integration, the same offline import does try (and warns)."""
    result, stderr, _ = _run("import litellm")
    assert FETCH_WARNING in stderr
    assert result["forced"] is False
