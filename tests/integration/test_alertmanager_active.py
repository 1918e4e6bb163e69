"""The demo scripts count only active alerts: one under a silence or an inhibition is not counted.

Against a real Alertmanager (tests/alertkit.py) with the demo's own configuration
(deploy/alertmanager/local.yml, whose inhibition rules hold back per-canary pages under a
side-wide one): alerts are posted to its API, one is silenced, and the counting functions of
``deploy/canary.sh`` and ``deploy/incident.sh`` are run through bash, as the scripts run them.
Alertmanager's plain ``GET /api/v2/alerts`` (what the scripts queried before) lists the
suppressed alerts too; the scripts must not count them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alertkit import Alertmanager
from servicekit import REPO

from routerwatch.alerting import active

pytestmark = pytest.mark.integration


def _post(url: str, path: str, body: Any) -> Any:
    request = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read()
    return json.loads(text) if text else None


def _get(url: str, path: str) -> Any:
    with urllib.request.urlopen(f"{url}{path}", timeout=5) as response:
        return json.loads(response.read())


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _alert(router: str, name: str, **labels: str) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    return {
        "labels": {"alertname": name, "severity": "critical", "router": router, **labels},
        "annotations": {"summary": f"{name} {labels}", "runbook_url": f"https://runbooks.example/#{name.lower()}"},
        "startsAt": _iso(now - timedelta(minutes=1)),
        "endsAt": _iso(now + timedelta(minutes=30)),
    }


def _silence(url: str, **labels: str) -> str:
    now = datetime.now(timezone.utc)
    body = {
        "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in labels.items()],
        "startsAt": _iso(now - timedelta(seconds=5)),
        "endsAt": _iso(now + timedelta(hours=1)),
        "createdBy": "test",
        "comment": "a silenced alert is not counted as active",
    }
    return _post(url, "/api/v2/silences", body)["silenceID"]


def _states(url: str, router: str, want: dict[str, str], timeout: float = 10) -> list[dict[str, Any]]:
    """Wait until the API shows each alert (by a label key) in the wanted state; returns every alert of the router."""
    deadline = time.monotonic() + timeout
    while True:
        matcher = urllib.parse.quote('router="' + router + '"')
        alerts = _get(url, f"/api/v2/alerts?filter={matcher}")
        got = {_key(a["labels"]): a["status"]["state"] for a in alerts}
        if all(got.get(k) == v for k, v in want.items()):
            return alerts
        if time.monotonic() > deadline:
            raise AssertionError(f"alert states {got}, wanted {want}")
        time.sleep(0.1)


def _key(labels: dict[str, str]) -> str:
    return "/".join(labels.get(k, "-") for k in ("alertname", "scope", "side", "canary", "category"))


def _script_function(script: str, function: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run one shell function of a deploy script through bash, defined from the script's own text."""
    text = (REPO / "deploy" / script).read_text()
    start = text.index(f"\n{function}() {{") + 1
    end = text.index("\n}\n", start) + 3
    program = text[start:end] + f'\n{function} "$@"\n'
    return subprocess.run(["bash", "-c", program, function, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def demo_alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Alertmanager:
    """A real Alertmanager with the demo's configuration (its inhibition rules included)."""
    config = (REPO / "deploy/alertmanager/local.yml").read_text()
    am = Alertmanager(tmp_path_factory.mktemp("demo-alertmanager"), config).start()
    yield am
    am.stop()


def _env(url: str, router: str) -> dict[str, str]:
    import os

    return {**os.environ, "BIN": str(Path(sys.executable).parent), "AM_URL": url, "ROUTER": router}


def test_a_silenced_canary_page_is_not_counted_by_canary_sh(demo_alertmanager: Alertmanager) -> None:
    url, router = demo_alertmanager.url, f"r-{uuid.uuid4().hex[:8]}"
    _post(url, "/api/v2/alerts", [_alert(router, "RouterwatchCanaryTierFlip", scope="side", side="cheap")])
    _states(url, router, {"RouterwatchCanaryTierFlip/side/cheap/-/-": "active"})
    paging = _script_function("canary.sh", "alerts", "paging", env=_env(url, router))
    assert paging.returncode == 0, paging.stdout + paging.stderr
    assert "1 active canary alert(s)" in paging.stdout
    assert "RouterwatchCanaryTierFlip [critical, active] scope=side, side=cheap" in paging.stdout

    _silence(url, router=router, alertname="RouterwatchCanaryTierFlip")
    raw = _states(url, router, {"RouterwatchCanaryTierFlip/side/cheap/-/-": "suppressed"})
    assert len(raw) == 1  # what the scripts used to count: the API lists the silenced alert
    clear = _script_function("canary.sh", "alerts", "clear", env=_env(url, router))
    assert clear.returncode == 0, clear.stdout + clear.stderr
    assert "0 active canary alert(s)" in clear.stdout
    assert "not counted: 1 suppressed" in clear.stdout
    paging = _script_function("canary.sh", "alerts", "paging", env=_env(url, router))
    assert paging.returncode == 1, paging.stdout


def test_an_inhibited_page_is_not_counted_but_its_source_is(demo_alertmanager: Alertmanager) -> None:
    url, router = demo_alertmanager.url, f"r-{uuid.uuid4().hex[:8]}"
    _post(url, "/api/v2/alerts", [
        _alert(router, "RouterwatchCanaryTierFlip", scope="side", side="cheap"),
        _alert(router, "RouterwatchCanaryTierFlip", scope="canary", side="cheap", canary="c1"),
        _alert(router, "RouterwatchCanaryTierFlip", scope="canary", side="cheap", canary="c2"),
    ])
    _states(url, router, {
        "RouterwatchCanaryTierFlip/side/cheap/-/-": "active",
        "RouterwatchCanaryTierFlip/canary/cheap/c1/-": "suppressed",
        "RouterwatchCanaryTierFlip/canary/cheap/c2/-": "suppressed",
    })
    listed = active.fetch(url, {"router": router})
    assert [a["labels"]["scope"] for a in listed.active] == ["side"]
    assert sorted(a["labels"]["canary"] for a in listed.suppressed) == ["c1", "c2"]
    paging = _script_function("canary.sh", "alerts", "paging", env=_env(url, router))
    assert paging.returncode == 0 and "1 active canary alert(s)" in paging.stdout, paging.stdout + paging.stderr
    assert "not counted: 2 suppressed" in paging.stdout


def test_incident_sh_counts_only_active_alerts(demo_alertmanager: Alertmanager) -> None:
    url, router = demo_alertmanager.url, f"r-{uuid.uuid4().hex[:8]}"
    _post(url, "/api/v2/alerts", [
        _alert(router, "RouterwatchEscalationDrift", scope="category", tier="small", category="math", direction="up"),
        _alert(router, "RouterwatchEscalationDrift", scope="category", tier="small", category="code", direction="up"),
    ])
    _silence(url, router=router, category="code")
    _states(url, router, {
        "RouterwatchEscalationDrift/category/-/-/math": "active",
        "RouterwatchEscalationDrift/category/-/-/code": "suppressed",
    })
    shown = _script_function("incident.sh", "show_alertmanager", env=_env(url, router))
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"1 active alert(s) for router={router}" in shown.stdout
    assert "runbook: https://runbooks.example/#routerwatchescalationdrift" in shown.stdout
    counted, _, rest = shown.stdout.partition("not counted:")
    assert "category=math" in counted and "category=code" not in counted
    assert "1 suppressed" in rest and "category=code" in rest


def test_an_unreachable_alertmanager_is_one_line_and_exit_3(tmp_path: Path) -> None:
    from servicekit import free_port

    done = subprocess.run([sys.executable, "-m", "routerwatch.alerting.active", f"http://127.0.0.1:{free_port()}",
                           "router=x", "--timeout", "1"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 3 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "did not answer" in done.stderr
