"""The Alertmanager client against a real Alertmanager (Debian's prometheus-alertmanager).

Each test gives its alerts a unique ``router`` label, so tests can share the session's
Alertmanager and webhook: grouping is by alertname, router and tier, and every check filters on
the router.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alertkit import Alertmanager, Webhook, alertmanager, webhook, webhook_config  # noqa: F401
from servicekit import REPO, free_port

from routerwatch.alerting import Alert, AlertManagerClient
from routerwatch.alerting.models import parse_time
from routerwatch.alerting.runbooks import DEFAULT_RUNBOOK_BASE_URL

pytestmark = pytest.mark.integration

QUERY = (
    "SELECT minute, escalated, accepted, escalation_rate FROM escalation_series("
    "since = '2026-01-01 10:00:00', until = '2026-01-01 12:00:00') WHERE tier = 'small' AND category = 'math'"
)


def drift(router: str, *, tier: str = "small", category: str | None = "math", scope: str = "category", name: str = "RouterwatchEscalationDrift") -> Alert:
    return Alert.build(
        name,
        severity="warning",
        summary=f"Escalation rate of tier {tier} drifted up",
        description=f"Escalation rate of {tier}/{category} rose from 10.0% to 13.2% since 10:42.",
        signal="escalation_rate",
        router=router,
        tier=tier,
        category=category,
        direction="up",
        scope=scope,
        query=QUERY,
        baseline=0.1,
        observed=0.132,
        magnitude=0.032,
        change_start=datetime(2026, 1, 1, 10, 42, tzinfo=timezone.utc),
        mix_effect=0.004,
        within_effect=0.028,
    )


def now() -> datetime:
    return datetime.now(timezone.utc)


def router_name() -> str:
    return f"it-{uuid.uuid4().hex[:10]}"


def api_alerts(client: AlertManagerClient, router: str, url: str | None = None, **flags: Any) -> list[dict[str, Any]]:
    return client.alerts(url, filters=[f'router="{router}"'], **flags)


def wait_api(client: AlertManagerClient, router: str, count: int, url: str | None = None, timeout: float = 10) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = api_alerts(client, router, url)
        if len(found) == count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"expected {count} alerts for {router} at {url or client.urls[0]}, got {json.dumps(found, indent=1)}")


def for_router(router: str, status: str | None = None):
    def match(payload: dict[str, Any]) -> bool:
        return payload.get("groupLabels", {}).get("router") == router and (status is None or payload.get("status") == status)

    return match


@pytest.fixture
def clients():
    made: list[AlertManagerClient] = []

    def make(urls: list[str], state_path: Path | None, **kw: Any) -> AlertManagerClient:
        kw.setdefault("retry_initial_s", 0.1)
        kw.setdefault("retry_max_s", 0.5)
        kw.setdefault("timeout_s", 2.0)
        kw.setdefault("stop_timeout_s", 3.0)
        client = AlertManagerClient(urls, state_path=state_path, **kw).start()
        made.append(client)
        return client

    yield make
    for client in made:
        client.stop()


def test_status_answers(alertmanager: Alertmanager, clients) -> None:
    client = clients([alertmanager.url], None)
    status = client.status()
    assert status["cluster"]["status"] == "disabled"
    assert "route" in status["config"]["original"]


def test_fire_resend_resolve(alertmanager: Alertmanager, webhook: Webhook, clients, tmp_path: Path) -> None:
    router = router_name()
    client = clients([alertmanager.url], tmp_path / "state.json")
    alert = drift(router)
    first = now()
    result = client.sync([alert], first)
    assert result.firing == 1 and len(result.started) == 1
    assert client.flush(10)

    # In the API: the same labels, the annotations (runbook filled in by the client), active.
    [got] = wait_api(client, router, 1)
    assert got["labels"] == alert.labels
    assert got["status"]["state"] == "active"
    assert got["annotations"]["runbook_url"] == f"{DEFAULT_RUNBOOK_BASE_URL}#routerwatchescalationdrift"
    assert got["annotations"]["runbook_url"].startswith("https://")
    for key in ("summary", "description", "query", "baseline", "observed", "magnitude", "change_start", "mix_effect", "within_effect"):
        assert got["annotations"][key] == alert.annotations[key], key
    assert got["annotations"]["query"] == QUERY
    assert abs(parse_time(got["startsAt"]) - first) < timedelta(milliseconds=2)
    assert parse_time(got["endsAt"]) - first > timedelta(minutes=4)

    # At the webhook: one firing notification for the group.
    [note] = webhook.wait_for(for_router(router, "firing"))
    assert note["groupLabels"] == {"alertname": "RouterwatchEscalationDrift", "router": router, "tier": "small"}
    assert [a["labels"] for a in note["alerts"]] == [alert.labels]
    assert note["alerts"][0]["annotations"]["summary"] == alert.annotations["summary"]

    # Re-sending (each tick) neither duplicates the alert nor notifies again, and keeps startsAt.
    for _ in range(3):
        time.sleep(0.4)
        client.sync([alert], now())
    assert client.flush(10)
    time.sleep(2.5)  # more than group_interval (1s): a new notification would have gone out
    [again] = api_alerts(client, router)
    assert again["fingerprint"] == got["fingerprint"]
    assert again["startsAt"] == got["startsAt"]
    assert parse_time(again["endsAt"]) > parse_time(got["endsAt"])
    assert len(webhook.received(for_router(router))) == 1

    # Resolving: endsAt = now, the webhook gets "resolved", the API shows no active alert.
    result = client.sync([], now())
    assert [labels["alertname"] for labels in result.resolved] == ["RouterwatchEscalationDrift"]
    assert client.flush(10)
    [done] = webhook.wait_for(for_router(router, "resolved"))
    assert done["alerts"][0]["status"] == "resolved"
    assert parse_time(done["alerts"][0]["startsAt"]) == parse_time(got["startsAt"])
    wait_api(client, router, 0)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["firing"] == [] and state["resolving"] == []


def test_one_alertmanager_down_does_not_block_the_other_and_is_retried(
    alertmanager: Alertmanager, webhook: Webhook, clients, tmp_path: Path
) -> None:
    router = router_name()
    down = Alertmanager(tmp_path / "am2", webhook_config(webhook.url + "/second"), port=free_port())
    client = clients([down.url, alertmanager.url], tmp_path / "state.json")
    alert = drift(router)
    client.sync([alert], now())

    # The reachable one has it at once, although the other is listed first and refuses.
    wait_api(client, router, 1, url=alertmanager.url, timeout=5)
    webhook.wait_for(for_router(router, "firing"))

    # The down one is retried with back-off, and its queue keeps the alert.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        stats = {s.url: s for s in client.stats()["alertmanagers"]}
        if stats[down.url].failures >= 3:
            break
        time.sleep(0.05)
    stats = {s.url: s for s in client.stats()["alertmanagers"]}
    assert stats[down.url].failures >= 3, stats
    assert stats[down.url].pending == 1
    assert stats[alertmanager.url].pending == 0 and stats[alertmanager.url].failures == 0

    # When it comes up it gets the alert from the queue, without another sync.
    down.start()
    try:
        [got] = wait_api(client, router, 1, url=down.url, timeout=10)
        assert got["labels"] == alert.labels
        assert client.flush(5)
        assert {s.url: s for s in client.stats()["alertmanagers"]}[down.url].consecutive_failures == 0
    finally:
        client.stop()
        down.stop()


def test_restart_keeps_starts_at_and_resolves_what_stopped_meanwhile(
    alertmanager: Alertmanager, webhook: Webhook, clients, tmp_path: Path
) -> None:
    router = router_name()
    state_path = tmp_path / "alerting" / "state.json"
    stays = drift(router)
    stops = drift(router, tier="large", category=None, scope="tier", name="RouterwatchFailureModeShift")

    first = clients([alertmanager.url], state_path)
    first.sync([stays, stops], now())
    assert first.flush(10)
    before = {a["labels"]["alertname"]: a for a in wait_api(first, router, 2)}
    webhook.wait_for(for_router(router, "firing"), count=2)
    first.stop()  # the scheduler restarts; `stops` ends while it is down
    assert len(json.loads(state_path.read_text())["firing"]) == 2

    time.sleep(0.5)
    second = clients([alertmanager.url], state_path)
    # A detector that rebuilds its alert may pass a new starts_at: the first one is kept.
    rebuilt = Alert(labels=stays.labels, annotations=stays.annotations, starts_at=now())
    result = second.sync([rebuilt], now())
    assert result.started == ()
    assert [labels["alertname"] for labels in result.resolved] == ["RouterwatchFailureModeShift"]
    assert second.flush(10)

    [after] = wait_api(second, router, 1)
    assert after["labels"] == stays.labels
    assert after["fingerprint"] == before["RouterwatchEscalationDrift"]["fingerprint"]
    assert after["startsAt"] == before["RouterwatchEscalationDrift"]["startsAt"]
    [resolved] = webhook.wait_for(lambda p: for_router(router, "resolved")(p) and p["groupLabels"]["alertname"] == "RouterwatchFailureModeShift")
    assert parse_time(resolved["alerts"][0]["startsAt"]) == parse_time(before["RouterwatchFailureModeShift"]["startsAt"])

    # No duplicate page: the alert that kept firing was notified once, before the restart.
    time.sleep(2.5)
    firing_notes = [p for p in webhook.received(for_router(router, "firing")) if p["groupLabels"]["alertname"] == "RouterwatchEscalationDrift"]
    assert len(firing_notes) == 1


def test_example_config_inhibits_per_category_alerts_under_a_tier_wide_one(webhook: Webhook, clients, tmp_path: Path) -> None:
    config = (REPO / "alerts/alertmanager.example.yml").read_text()
    # Deliveries go to the test's webhook instead of the placeholder receivers.
    config = config.replace("http://127.0.0.1:5001/", webhook.url + "/example/")
    am = Alertmanager(tmp_path / "example", config).start()
    try:
        router = router_name()
        client = clients([am.url], None)
        tier_wide = drift(router, category=None, scope="tier")
        per_category = drift(router, category="math", scope="category")
        other_tier = drift(router, tier="large", category="math", scope="category")
        client.sync([tier_wide, per_category, other_tier], now())
        assert client.flush(10)
        deadline = time.monotonic() + 10
        while True:
            by_key = {(a["labels"]["tier"], a["labels"]["scope"]): a for a in api_alerts(client, router)}
            if len(by_key) == 3 and by_key[("small", "category")]["status"]["state"] == "suppressed":
                break
            assert time.monotonic() < deadline, json.dumps(by_key, indent=1)
            time.sleep(0.1)
        assert by_key[("small", "category")]["status"]["inhibitedBy"] == [by_key[("small", "tier")]["fingerprint"]]
        assert by_key[("small", "tier")]["status"]["state"] == "active"
        assert by_key[("large", "category")]["status"]["state"] == "active"
    finally:
        am.stop()
