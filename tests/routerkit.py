"""The example router (`routerwatch example-router`) as a subprocess on loopback, for tests."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from servicekit import CLI, REPO, free_port


class ExampleRouter:
    """One example router process; ``stop()`` and ``start()`` again keep the same port."""

    def __init__(self, kafka: str, decisions_topic: str, router_id: str, log_path: Path, port: int | None = None) -> None:
        self.kafka = kafka
        self.decisions_topic = decisions_topic
        self.router_id = router_id
        self.log_path = log_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def chat_url(self) -> str:
        return f"{self.url}/v1/chat/completions"

    def start(self, timeout: float = 30) -> ExampleRouter:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [*CLI, "example-router", "--port", str(self.port), "--kafka-bootstrap", self.kafka,
             "--decisions-topic", self.decisions_topic, "--router-id", self.router_id],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"example router exited {self.proc.returncode}:\n{self.log()}")
            try:
                self.get("/health")
                return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"example router not ready in {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM and wait. Safe twice."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as r:
            return json.loads(r.read())

    def post(self, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(self.url + path, data=json.dumps(body or {}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def switch(self, **switches: Any) -> Any:
        return self.post("/admin/switches", switches)

    def reset(self) -> Any:
        return self.post("/admin/reset")

    def probes(self) -> list[dict[str, Any]]:
        """Canary probes the router received: canary_id, request_id, received_at (epoch seconds)."""
        return self.get("/admin/stats")["canary_probes"]
