"""A real Alertmanager on loopback, and a webhook receiver that records what it delivers.

Alertmanager is the Debian package's ``prometheus-alertmanager`` (or an ``alertmanager``
binary on PATH); there is no fake. Clustering is off (``--cluster.listen-address=``) so a test
instance never gossips with anything. Import the fixtures into a test module to use them::

    from alertkit import alertmanager, webhook  # noqa: F401
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pytest
from servicekit import free_port

INSTALL_HINT = "install the Debian package prometheus-alertmanager (deploy/install-system-deps.sh)"


def alertmanager_binary() -> str:
    """Path of the Alertmanager binary; fails the test (never skips) when there is none."""
    for name in ("prometheus-alertmanager", "alertmanager"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(f"no Alertmanager binary on PATH: {INSTALL_HINT}")


class Webhook:
    """An HTTP server on 127.0.0.1 that records every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {"unparsed": body.decode(errors="replace")}
                payload["_path"] = self.path
                with hook._lock:
                    hook.payloads.append(payload)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook", daemon=True)

    def start(self) -> Webhook:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def received(self, predicate: Callable[[dict[str, Any]], bool] = lambda p: True) -> list[dict[str, Any]]:
        with self._lock:
            return [p for p in self.payloads if predicate(p)]

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15, count: int = 1) -> list[dict[str, Any]]:
        """Wait until ``count`` payloads match; fail with everything received otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.received(predicate)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"webhook got no matching notification in {timeout}s; got:\n{json.dumps(self.received(), indent=1)[-4000:]}")


def webhook_config(webhook_url: str, *, group_by: str = "[alertname, router, tier]") -> str:
    """Route everything to one webhook, flushing groups after a second and never repeating."""
    return f"""
route:
  receiver: hook
  group_by: {group_by}
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true
"""


class Alertmanager:
    """One Alertmanager process on 127.0.0.1 with its own config and storage directory."""

    def __init__(self, workdir: Path, config: str, port: int | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "alertmanager.yml"
        self.config_path.write_text(config)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "alertmanager.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> Alertmanager:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                alertmanager_binary(),
                f"--config.file={self.config_path}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=info",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"alertmanager exited {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"alertmanager not ready in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        """Terminate the process. Safe twice."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


@pytest.fixture(scope="session")
def webhook() -> Webhook:
    hook = Webhook().start()
    yield hook
    hook.stop()


@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory: pytest.TempPathFactory, webhook: Webhook) -> Alertmanager:
    """One real Alertmanager for the session, delivering every group to ``webhook``.

    Tests share it: give each test's alerts a unique ``router`` label (grouping is by
    alertname, router and tier) and filter on it.
    """
    am = Alertmanager(tmp_path_factory.mktemp("alertmanager"), webhook_config(webhook.url + "/hook")).start()
    yield am
    am.stop()
