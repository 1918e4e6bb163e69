"""Authenticated, CSRF-proof control of the real `routerwatch serve` and of the example router's admin API.

Each test is an attack that worked before (issue 14, defects 1 and 4): unauthenticated calls to every
endpoint, a text/plain cross-origin POST to /query that wrote a file, a replayed evaluation that
resolved a live page in a real Alertmanager, a cross-origin ``down=true`` to the example router.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from alertkit import alertmanager, webhook  # noqa: F401 - session fixtures
from routerkit import ExampleRouter
from servicekit import CLI, REPO, Env, Serve, free_port

from routerwatch.sdk import RouterWatch, SdkConfig
from routerwatch.simulate import Profile, emit

pytestmark = pytest.mark.integration

TOKEN = "test-token-" + os.urandom(12).hex()
EVIL = "https://evil.example"


def call(port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
         raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if method == "POST" and data is None:
        data = b"{}"
    given = {"Content-Type": "application/json"} if data is not None else {}
    given.update(headers or {})
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=given)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            text = r.read()
            status = r.status
    except urllib.error.HTTPError as exc:
        text, status = exc.read(), exc.code
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text.decode(errors="replace")


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wait_until(condition, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def send(env: Env, profile: Profile, requests: int, seed: int, end: datetime) -> None:
    rw = RouterWatch(SdkConfig(bootstrap_servers=env.kafka, router_id=profile.router_id,
                               decisions_topic=env.names["decisions"], feedback_topic=env.names["feedback"],
                               max_queue=500_000, close_timeout_s=60))
    emit(rw, profile, requests, seed, now=end.timestamp())
    assert rw.close()["dropped"] == 0
    env.cli("wait", "--timeout", "180")


def active_alerts(am, router: str) -> list[dict]:
    with urllib.request.urlopen(f"{am.url}/api/v2/alerts?active=true&filter=router%3D%22{router}%22", timeout=5) as r:
        return [a for a in json.loads(r.read()) if a["status"]["state"] == "active"]


@pytest.fixture
def guarded(kafka_bootstrap, names, tmp_path, alertmanager):
    """A serve with a token, the detectors (alerts to a real Alertmanager) and the canary prober."""
    env = Env(kafka=kafka_bootstrap, names=names, store_url=f"chdb://{tmp_path / 'store'}", extra={
        "ROUTERWATCH_HTTP__TOKEN": TOKEN,
        "ROUTERWATCH_SCHEDULER__ALERTMANAGER_URLS": json.dumps([alertmanager.url]),
        "ROUTERWATCH_SCHEDULER__STATE_FILE": str(tmp_path / "alerts.json"),
        "ROUTERWATCH_SCHEDULER__INTERVAL_S": "3600",  # the test drives evaluations itself
        "ROUTERWATCH_SCHEDULER__BASELINE_WINDOW_HOURS": "2",
        "ROUTERWATCH_SCHEDULER__LOOKBACK_MINUTES": "120",
        "ROUTERWATCH_CANARY__FILES": json.dumps([str(REPO / "deploy/canaries/example.yml")]),
        "ROUTERWATCH_CANARY__ROUTER_URL": f"http://127.0.0.1:{free_port()}/v1/chat/completions",
        "ROUTERWATCH_CANARY__LEASE_TOPIC": f"{names['decisions']}.lease",
        "ROUTERWATCH_CANARY__LEASE_GROUP": f"{names['group']}-lease",
        "ROUTERWATCH_CANARY__STATE_FILE": str(tmp_path / "canary-state.json"),
    })
    env.cli("migrate")
    serve = Serve(env, tmp_path / "serve.log").start()
    try:
        yield env, serve
    finally:
        serve.stop()


def test_every_endpoint_but_health_and_metrics_needs_the_token(guarded):
    env, serve = guarded
    port = env.port
    until = (datetime.now(timezone.utc) - timedelta(hours=1)).replace(second=0, microsecond=0).isoformat()
    endpoints = [
        ("POST", "/query", {"sql": "SELECT 1"}),
        ("GET", "/alerts", None),
        ("POST", "/alerts/evaluate", None),
        ("POST", "/baselines/learn?" + urllib.parse.urlencode({"hours": 1, "until": until}), None),
        ("GET", "/canaries", None),
        # The console's data (routerwatch.console.routes); its static page is open, checked below.
        ("GET", "/console/api/now", None),
        ("GET", "/console/api/routers?since=1h", None),
        ("GET", "/console/api/escalation?since=1h", None),
        ("GET", "/console/api/latency_cost?since=1h", None),
        ("GET", "/console/api/canaries?since=1h", None),
        ("GET", "/console/api/request?id=req-1", None),
    ]
    for method, path, body in endpoints:
        status, answer = call(port, method, path, body)
        assert status == 401, (path, status, answer)
        assert "Authorization: Bearer" in answer["error"] and "ROUTERWATCH_HTTP__TOKEN" in answer["error"]
        status, answer = call(port, method, path, body, headers=bearer("wrong-" + TOKEN))
        assert status == 401 and TOKEN not in json.dumps(answer), (path, answer)
    for method, path, body in endpoints:
        status, answer = call(port, method, path, body, headers=bearer())
        assert status == 200, (path, status, answer)
    # The probes and the scraper need nothing; nor does the console's page (it holds no data).
    assert call(port, "GET", "/health")[0] == 200
    status, page = call(port, "GET", "/")
    assert status == 200 and "<title>routerwatch console</title>" in page
    status, text = call(port, "GET", "/metrics")
    assert status == 200 and "routerwatch_" in text
    # A learned baseline from minutes yet to come is refused.
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    status, answer = call(port, "POST", "/baselines/learn?" + urllib.parse.urlencode({"hours": 1, "until": future}),
                          headers=bearer())
    assert status == 400 and "future" in answer["error"]
    # The CLI sends the token it is configured with (routerwatch sql goes through serve's /query)...
    assert env.cli("sql", "SELECT 41 + 1").stdout.strip() == "42"
    assert env.cli("alerts").returncode == 0
    # ...and says what is wrong without it (exit 2: configuration), never printing the token.
    no_token = Env(kafka=env.kafka, names=env.names, store_url=env.store_url, port=env.port,
                   extra={k: v for k, v in env.extra.items() if k != "ROUTERWATCH_HTTP__TOKEN"})
    refused = no_token.cli("sql", "SELECT 1", check=False)
    assert refused.returncode == 2 and "ROUTERWATCH_HTTP__TOKEN" in refused.stderr, refused.stderr
    refused = no_token.cli("alerts", "--evaluate", check=False)
    assert refused.returncode == 2 and "ROUTERWATCH_HTTP__TOKEN" in refused.stderr, refused.stderr
    assert TOKEN not in serve.log_text()


def test_a_replayed_evaluation_never_resolves_a_live_page(guarded, alertmanager):
    env, serve = guarded
    port = env.port
    router = f"sec-{env.names['group']}"
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    normal = Profile(router_id=router, experiment_id=None, feedback_share=0.0, shadow_share=0.0, minutes=120,
                     categories={"billing": 1.0}, entry_rank_by_category={})
    send(env, normal, 12_000, seed=91, end=now - timedelta(minutes=60))
    # The baseline is learned from a past window on purpose (a token holder's call, via the CLI).
    env.cli("baseline", "learn", "--hours", "2", "--until", (now - timedelta(minutes=60)).isoformat())
    small, medium, large = normal.tiers
    broken = normal.model_copy(update={"minutes": 60, "tiers": [
        small.model_copy(update={"escalation_rate": {"billing": 0.45}, "escalation_reasons": {"schema_invalid": 1.0}}),
        medium, large]})
    send(env, broken, 6_000, seed=92, end=now)

    # A live evaluation (the current minute) pages.
    status, live = call(port, "POST", "/alerts/evaluate", headers=bearer())
    assert status == 200 and live["dry_run"] is False, live
    assert [a for a in live["firing"] if a["alertname"] == "RouterwatchEscalationDrift"
            and a["labels"].get("router") == router], live
    paging = wait_until(lambda: active_alerts(alertmanager, router), 60, "the page in Alertmanager")
    page_names = sorted(a["labels"]["alertname"] for a in paging)

    # The attack: evaluate as of five hours ago, when nothing fired. It only reports.
    past = (now - timedelta(hours=5)).isoformat()
    status, replay = call(port, "POST", "/alerts/evaluate?" + urllib.parse.urlencode({"now": past}), headers=bearer())
    assert status == 200 and replay["dry_run"] is True, replay
    assert not [a for a in replay["firing"] if a["labels"].get("router") == router], replay
    assert replay["alertmanager"]["resolving"] == 0 and replay["alertmanager"]["firing"] >= 1, replay["alertmanager"]

    def delivered() -> dict | None:
        code, body = call(port, "GET", "/alerts", headers=bearer())
        assert code == 200
        return body if all(t["pending"] == 0 for t in body["alertmanager"]["alertmanagers"]) else None

    after = wait_until(delivered, 30, "the Alertmanager queue to drain")
    # /alerts still describes the live run, and the page is still active in the real Alertmanager.
    assert after["evaluated_at"] == live["evaluated_at"], after["evaluated_at"]
    assert after["alertmanager"]["firing"] == live["alertmanager"]["firing"]
    assert after["alertmanager"]["resolving"] == 0
    assert sorted(a["labels"]["alertname"] for a in active_alerts(alertmanager, router)) == page_names
    with open(env.extra["ROUTERWATCH_SCHEDULER__STATE_FILE"]) as f:
        state = json.load(f)
    assert router in json.dumps(state["firing"]), "the kept firing set still holds the page"

    # A time yet to come is refused, not evaluated.
    future = (now + timedelta(hours=2)).isoformat()
    status, answer = call(port, "POST", "/alerts/evaluate?" + urllib.parse.urlencode({"now": future}), headers=bearer())
    assert status == 400 and "future" in answer["error"]


def test_a_cross_origin_text_plain_query_is_refused_and_nothing_runs(kafka_bootstrap, names, tmp_path):
    # The realistic victim: a serve on loopback without a token, and a web page the user visits.
    env = Env(kafka=kafka_bootstrap, names=names, store_url=f"chdb://{tmp_path / 'store'}",
              extra={"ROUTERWATCH_SCHEDULER__ENABLED": "false"})
    env.cli("migrate")
    serve = Serve(env, tmp_path / "serve.log").start()
    target = tmp_path / "written-by-a-web-page.txt"
    sql = json.dumps({"sql": f"SELECT 'x' INTO OUTFILE '{target}' APPEND"}).encode()
    try:
        attacks = [
            {"Content-Type": "text/plain", "Origin": EVIL},  # what fetch(..., {mode: "no-cors"}) sends
            {"Content-Type": "text/plain", "Origin": EVIL, "Sec-Fetch-Site": "cross-site"},
            {"Content-Type": "text/plain"},  # an old browser that sends no Origin
            {"Content-Type": "application/x-www-form-urlencoded"},  # a form post
            {"Content-Type": "application/json", "Origin": EVIL},  # would need a preflight: still refused
            {"Content-Type": "application/json", "Host": f"attacker.example:{env.port}"},  # DNS rebinding
        ]
        for headers in attacks:
            status, answer = call(env.port, "POST", "/query", raw=sql, headers=headers)
            assert status == 403, (headers, status, answer)
            assert isinstance(answer, dict) and answer["error"], answer
        assert not target.exists()
        # The same for the control endpoints.
        status, _ = call(env.port, "POST", "/baselines/learn?hours=1", raw=b"x",
                         headers={"Content-Type": "text/plain", "Origin": EVIL})
        assert status == 403
        # The serve's own clients still work: JSON, no foreign origin, loopback (no token needed there).
        assert serve.scalar("SELECT 1 + 1") == 2
        assert env.cli("sql", "SELECT 7").stdout.strip() == "7"
    finally:
        serve.stop()


def test_listening_beyond_loopback_without_a_token_refuses_to_start(kafka_bootstrap, names, tmp_path):
    for host in ("0.0.0.0", "::"):
        env = Env(kafka=kafka_bootstrap, names=names, store_url=f"chdb://{tmp_path / 'store'}",
                  extra={"ROUTERWATCH_HTTP__HOST": host})
        done = subprocess.run([*CLI, "serve"], env=env.vars(), capture_output=True, text=True, timeout=120, cwd=REPO)
        assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
        assert "ROUTERWATCH_HTTP__TOKEN" in done.stderr and "127.0.0.1" in done.stderr, done.stderr[-2000:]
        assert not (tmp_path / "store").exists(), "nothing was opened before the refusal"


def test_example_router_admin_refuses_cross_origin_and_non_json(kafka_bootstrap, names, tmp_path):
    router = ExampleRouter(kafka_bootstrap, names["decisions"], "sec-router", tmp_path / "router.log").start()
    try:
        attacks = [
            {"Content-Type": "text/plain", "Origin": EVIL},
            {"Content-Type": "text/plain"},
            {"Content-Type": "application/x-www-form-urlencoded", "Origin": EVIL},
            {"Content-Type": "application/json", "Origin": EVIL},
            {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
        ]
        for headers in attacks:
            status, answer = call(router.port, "POST", "/admin/switches", raw=b'{"down": true}', headers=headers)
            assert status == 403, (headers, status, answer)
        status, _ = call(router.port, "POST", "/admin/reset", raw=b"", headers={"Origin": EVIL})
        assert status == 403
        assert router.get("/admin/switches")["down"] is False
        # The chat endpoint is the router's public API: browsers and clients of any origin may call it.
        status, _ = call(router.port, "POST", "/v1/chat/completions",
                         body={"model": "m", "messages": [{"role": "user", "content": "hello"}]},
                         headers={"Origin": EVIL})
        assert status == 200
        # Its own CLI still flips switches.
        flip = subprocess.run([*CLI, "example-router", "switch", "--url", router.url, "down=true"],
                              capture_output=True, text=True, timeout=60, cwd=REPO)
        assert flip.returncode == 0, flip.stderr
        assert router.get("/admin/switches")["down"] is True
    finally:
        router.stop()


def test_example_router_admin_token(kafka_bootstrap, names, tmp_path):
    port = free_port()
    base = [*CLI, "example-router", "--port", str(port), "--kafka-bootstrap", kafka_bootstrap,
            "--decisions-topic", names["decisions"]]
    clean = {k: v for k, v in os.environ.items() if k != "EXAMPLE_ROUTER_TOKEN"}
    refused = subprocess.run([*CLI, "example-router", "--host", "0.0.0.0", "--port", str(port)],
                             env=clean, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert refused.returncode == 2 and "EXAMPLE_ROUTER_TOKEN" in refused.stderr, refused.stderr
    log = open(tmp_path / "router.log", "wb")
    proc = subprocess.Popen(base, env={**clean, "EXAMPLE_ROUTER_TOKEN": TOKEN}, stdout=log, stderr=subprocess.STDOUT,
                            cwd=REPO)
    try:
        def up() -> bool:
            if proc.poll() is not None:
                pytest.fail((tmp_path / "router.log").read_text())
            try:
                return call(port, "GET", "/health")[0] == 200
            except OSError:
                return False

        wait_until(up, 30, "the example router")
        status, answer = call(port, "POST", "/admin/switches", body={"down": True})
        assert status == 401 and "EXAMPLE_ROUTER_TOKEN" in answer["error"]
        assert call(port, "GET", "/admin/stats")[0] == 401
        status, answer = call(port, "POST", "/admin/switches", body={"down": True}, headers=bearer())
        assert status == 200 and answer["down"] is True
        url = f"http://127.0.0.1:{port}"
        denied = subprocess.run([*CLI, "example-router", "switch", "--url", url, "down=false"],
                                env=clean, capture_output=True, text=True, timeout=60, cwd=REPO)
        assert denied.returncode == 2 and "EXAMPLE_ROUTER_TOKEN" in denied.stderr, denied.stderr
        allowed = subprocess.run([*CLI, "example-router", "switch", "--url", url, "down=false"],
                                 env={**clean, "EXAMPLE_ROUTER_TOKEN": TOKEN}, capture_output=True, text=True,
                                 timeout=60, cwd=REPO)
        assert allowed.returncode == 0 and json.loads(allowed.stdout)["down"] is False, allowed.stderr
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
