"""Test helpers that run the real CLI and the real `routerwatch serve` as subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def docker_available() -> bool:
    """True when a Docker engine answers (not just the client binary)."""
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

CLI = [sys.executable, "-m", "routerwatch.cli"]


@dataclass
class Env:
    """The ROUTERWATCH_* environment of one test's service."""

    kafka: str
    names: dict[str, str]
    store_url: str  # chdb:///path (one per test) or a ClickHouse server URL (fresh database per test)
    port: int = field(default_factory=free_port)
    extra: dict[str, str] = field(default_factory=dict)

    def vars(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTERWATCH_")}
        env.update(
            ROUTERWATCH_CLICKHOUSE_URL=self.store_url,
            ROUTERWATCH_DATABASE=self.names["database"],
            ROUTERWATCH_KAFKA_BOOTSTRAP=self.kafka,
            ROUTERWATCH_TOPICS__DECISIONS=self.names["decisions"],
            ROUTERWATCH_TOPICS__FEEDBACK=self.names["feedback"],
            ROUTERWATCH_TOPICS__CANARY=self.names["canary"],
            ROUTERWATCH_TOPICS__DLQ=self.names["dlq"],
            ROUTERWATCH_TOPICS__PARTITIONS="2",
            ROUTERWATCH_INGEST__APP_ID=self.names["group"],
            ROUTERWATCH_INGEST__SESSION_TIMEOUT_S="6",
            ROUTERWATCH_INGEST__BATCH_SECONDS="0.3",
            ROUTERWATCH_INGEST__RETRY_INITIAL_S="0.2",
            ROUTERWATCH_HTTP__PORT=str(self.port),
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra)
        return env

    def headers(self) -> dict[str, str]:
        """JSON content type, and the bearer token when this environment sets ROUTERWATCH_HTTP__TOKEN."""
        headers = {"Content-Type": "application/json"}
        token = self.extra.get("ROUTERWATCH_HTTP__TOKEN")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def settings(self) -> Any:
        from routerwatch.config import Settings

        saved = dict(os.environ)
        try:
            os.environ.clear()
            os.environ.update(self.vars())
            return Settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def cli(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*CLI, *args], env=self.vars(), capture_output=True, text=True, timeout=timeout, cwd=REPO
        )
        if check and done.returncode != 0:
            raise AssertionError(f"routerwatch {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}")
        return done


class Serve:
    """`routerwatch serve` in a subprocess, with its log kept for failure messages."""

    def __init__(self, env: Env, log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        """What runs serve: its argv, environment and working folder (a subclass runs another install)."""
        return [*CLI, "serve"], self.env.vars(), REPO

    def start(self, timeout: float = 90) -> Serve:
        self._log = open(self.log_path, "ab")
        argv, variables, cwd = self.command()
        self.proc = subprocess.Popen(argv, env=variables, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}:\n{self.log()}")
            if self.health() is not None and "Worker ready" in self.log_text():
                return self
            time.sleep(0.3)
        raise AssertionError(f"serve did not become ready in {timeout}s:\n{self.log()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log(self) -> str:
        return self.log_text()[-6000:]

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.env.port}/health", timeout=2) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())
        except OSError:
            return None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.env.port}/metrics", timeout=5) as r:
            return r.read().decode()

    def _post_query(self, sql: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.env.port}/query",
            data=json.dumps({"sql": sql, "parameters": parameters}).encode(),
            headers=self.env.headers(),
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"query failed ({exc.code}): {exc.read().decode()[:2000]}\n{sql}") from exc

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[list[Any]]:
        return self._post_query(sql, parameters)["rows"]

    def query_dicts(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        body = self._post_query(sql, parameters)
        return [dict(zip(body["columns"], row)) for row in body["rows"]]

    def scalar(self, sql: str) -> Any:
        return self.query(sql)[0][0]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        """Stop the process (SIGTERM: graceful; SIGKILL: crash). Safe twice."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()
        return self.proc.returncode

    def wait_for(self, sql: str, expected: Any, timeout: float = 90) -> Any:
        """Poll ``sql`` until it returns ``expected``; fail with the last value and the log."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.scalar(sql)
            if value == expected:
                return value
            time.sleep(0.3)
        raise AssertionError(f"{sql!r} returned {value!r}, expected {expected!r}\n{self.log()}")


async def create_topics(kafka: str, topics: list[str], partitions: int = 1) -> None:
    """Create fresh topics on the test broker (before anything produces to them)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics])
    finally:
        await admin.close()
