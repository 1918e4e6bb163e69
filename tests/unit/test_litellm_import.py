"""Importing the LiteLLM integration makes ``import litellm`` offline-safe (no cost-map download).

Each import runs in a fresh interpreter whose HTTP(S) proxy is a local socket that accepts
connections and never answers: the network a laptop on a captive Wi-Fi or a locked-down cluster
sees. A bare ``import litellm`` tries to download its model cost map there, waits for its 5 s
timeout, logs the failed fetch and retries in the background; after
``import routerwatch.integrations.litellm`` it reads the bundled map and never tries.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

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


@pytest.fixture(scope="module")
def black_hole() -> Iterator[str]:
    """A proxy URL whose connections are accepted by the kernel and never answered."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def _run(imports: str, proxy: str) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITELLM_") and "proxy" not in k.lower()}
    env.update(HTTPS_PROXY=proxy, HTTP_PROXY=proxy, ALL_PROXY=proxy)
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(imports=imports)], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_importing_the_integration_never_fetches_the_cost_map(black_hole):
    result, stderr = _run("import routerwatch.integrations.litellm\nimport litellm", black_hole)
    assert FETCH_WARNING not in stderr, stderr[-2000:]
    assert result["source"] == "local" and result["forced"] is True
    assert result["retry_thread"] is False
    # What loading LiteLLM costs, with no network wait on top; generous for a loaded 2-core machine.
    assert result["elapsed"] < 60, result


def test_a_bare_litellm_import_would_stall_on_the_download(black_hole):
    """The control: without the integration the same import waits for the fetch's timeout, then warns."""
    result, stderr = _run("import litellm", black_hole)
    assert FETCH_WARNING in stderr
    assert result["forced"] is False
    assert result["elapsed"] >= 5.0, result  # LiteLLM's fetch timeout
