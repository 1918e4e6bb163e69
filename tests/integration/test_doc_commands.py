"""Every ``<!-- cli -->`` block of README.md and docs/*.md runs, line by line, against a real store.

The store is a fresh embedded ClickHouse (chDB) path, migrated first; no serve runs, so ``sql`` and
``report`` open it themselves, read-only. The commands run in a scratch directory holding a copy of
the price table (``ROUTERWATCH_PRICES_FILE``), so what they write stays there. Each must exit 0.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys

import pytest
from docblocks import REPO, all_blocks

pytestmark = pytest.mark.integration

CLI_BLOCKS = [b for b in all_blocks() if b.kind == "cli"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("doc-commands")
    (work / "deploy").mkdir()
    shutil.copy(REPO / "deploy" / "prices.toml", work / "deploy" / "prices.toml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTERWATCH_")}
    env.update(
        ROUTERWATCH_CLICKHOUSE_URL=f"chdb://{work / 'store'}",
        ROUTERWATCH_HTTP__PORT=str(_closed_port()),  # no serve answers: the commands open the store
        ROUTERWATCH_KAFKA_BOOTSTRAP=f"127.0.0.1:{_closed_port()}",
        ROUTERWATCH_PRICES_FILE=str(work / "deploy" / "prices.toml"),
    )
    done = subprocess.run([sys.executable, "-m", "routerwatch.cli", "migrate"], env=env, cwd=work,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return work, env


def test_there_are_cli_blocks():
    assert {b.path.name for b in CLI_BLOCKS} >= {"README.md", "figures.md"}


@pytest.mark.parametrize("block", CLI_BLOCKS, ids=[b.where for b in CLI_BLOCKS])
def test_the_documented_commands_run(block, workdir):
    work, env = workdir
    for line in block.body.splitlines():
        argv = shlex.split(line, comments=True)
        if not argv:
            continue
        assert argv[0] in ("routerwatch", ".venv/bin/routerwatch"), f"{block.where}: {line}"
        done = subprocess.run([sys.executable, "-m", "routerwatch.cli", *argv[1:]], env=env, cwd=work,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{block.where}: {line}\nexit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
