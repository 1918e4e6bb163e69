"""The console's routes on a real `routerwatch serve` (loopback, no token): the page and its assets are
served from the package, and the JSON endpoints answer bad parameters with 400 and a message."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

pytestmark = pytest.mark.integration


def get(port: int, path: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def test_the_page_and_the_endpoints(env, serve):
    port = env.port
    status, ctype, body = get(port, "/")
    assert status == 200 and ctype.startswith("text/html") and b"/console/console.js" in body
    for path, kind in (("/console/console.js", "text/javascript"), ("/console/console.css", "text/css")):
        status, ctype, body = get(port, path)
        assert status == 200 and ctype.startswith(kind) and body, path

    for path, message in (
        ("/console/api/escalation?since=yesterday", "since/until must be ISO times"),
        ("/console/api/canaries?since=40d", "at most 31 days"),
        ("/console/api/latency_cost?since=2026-12-07T11:00:00Z&until=2026-12-07T10:00:00Z", "empty time range"),
        ("/console/api/request", "id is required"),
        ("/console/api/request?" + urllib.parse.urlencode({"id": "x" * 201}), "longer than 200"),
        ("/console/api/escalation?" + urllib.parse.urlencode({"router": "a b"}), "printable ASCII"),
    ):
        status, ctype, body = get(port, path)
        assert status == 400 and ctype.startswith("application/json"), (path, status, body)
        assert message in json.loads(body)["error"], (path, body)

    # Empty store: every endpoint answers, with nothing in it.
    status, _, body = get(port, "/console/api/escalation?since=1h")
    data = json.loads(body)
    assert status == 200 and data["tiers"] == [] and data["series"] == [] and data["step_minutes"] == 1
    status, _, body = get(port, "/console/api/request?id=req-none")
    assert status == 200 and json.loads(body)["attempts"] == []
    for name in ("now", "routers", "latency_cost", "canaries"):
        status, _, body = get(port, f"/console/api/{name}")
        assert status == 200, (name, body)
