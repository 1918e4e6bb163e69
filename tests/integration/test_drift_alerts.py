"""An injected escalation incident pages through a real Alertmanager, then resolves.

The real `routerwatch serve` runs the scheduler; the test drives evaluations
(`POST /alerts/evaluate`, the same code the schedule runs) over traffic the simulator placed in
the past: a frozen baseline from normal traffic, then an incident, then the recovery. Only a live
evaluation (as of now) changes pages; one as of a past minute is a dry run that only reports.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from alertkit import alertmanager, webhook  # noqa: F401 - session fixtures
from servicekit import Env, Serve

from routerwatch.sdk import RouterWatch, SdkConfig
from routerwatch.simulate import Profile, emit
from routerwatch.alerting.runbooks import DEFAULT_RUNBOOK_BASE_URL

pytestmark = pytest.mark.integration

NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0)
T0 = NOW - timedelta(minutes=120)  # normal traffic before T0, the incident in [T0, T0 + 60 min)


def send(env: Env, profile: Profile, requests: int, seed: int, end: datetime) -> None:
    rw = RouterWatch(SdkConfig(bootstrap_servers=env.kafka, router_id=profile.router_id,
                               decisions_topic=env.names["decisions"], feedback_topic=env.names["feedback"],
                               max_queue=500_000, close_timeout_s=60))
    emit(rw, profile, requests, seed, now=end.timestamp())
    assert rw.close()["dropped"] == 0
    env.cli("wait", "--timeout", "180")


def evaluate(env: Env, at: datetime | None = None) -> dict:
    """Run the detectors live (``at`` None: as of now) or as of a past minute (a dry run)."""
    query = "?" + urllib.parse.urlencode({"now": at.isoformat()}) if at is not None else ""
    req = urllib.request.Request(f"http://127.0.0.1:{env.port}/alerts/evaluate{query}", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def active_alerts(am, router: str) -> list[dict]:
    with urllib.request.urlopen(f"{am.url}/api/v2/alerts?active=true&filter=router%3D%22{router}%22", timeout=5) as r:
        return json.loads(r.read())


def test_escalation_incident_pages_then_resolves(kafka_bootstrap, names, tmp_path, alertmanager, webhook):
    router = f"drift-{names['group']}"
    env = Env(kafka=kafka_bootstrap, names=names, store_url=f"chdb://{tmp_path / 'store'}", extra={
        "ROUTERWATCH_SCHEDULER__ALERTMANAGER_URLS": json.dumps([alertmanager.url]),
        "ROUTERWATCH_SCHEDULER__STATE_FILE": str(tmp_path / "alerts.json"),
        "ROUTERWATCH_SCHEDULER__INTERVAL_S": "3600",  # the test drives evaluations itself
        "ROUTERWATCH_SCHEDULER__BASELINE_WINDOW_HOURS": "2",
        # The live runs (up to an hour after NOW, should the machine be slow) must still see the incident.
        "ROUTERWATCH_SCHEDULER__LOOKBACK_MINUTES": "180",
        "ROUTERWATCH_SCHEDULER__AUTO_BASELINE": "false",  # the test freezes its baseline explicitly
    })
    env.cli("migrate")
    serve = Serve(env, tmp_path / "serve.log").start()
    try:
        normal = Profile(router_id=router, experiment_id=None, feedback_share=0.0, shadow_share=0.0, minutes=120,
                         categories={"billing": 1.0}, entry_rank_by_category={})
        send(env, normal, 12_000, seed=81, end=T0)  # 100 requests/minute for the two hours before T0
        env.cli("baseline", "learn", "--hours", "2", "--until", T0.isoformat())
        first = evaluate(env)
        assert first["firing"] == [] and first["series_evaluated"] >= 4, first

        small, medium, large = normal.tiers
        broken = normal.model_copy(update={"minutes": 60, "tiers": [
            small.model_copy(update={"escalation_rate": {"billing": 0.45}, "escalation_reasons": {"schema_invalid": 1.0}}),
            medium, large]})
        send(env, broken, 6_000, seed=82, end=T0 + timedelta(minutes=60))

        # As of the incident's end: a dry run reports the page and changes nothing in Alertmanager.
        replay = evaluate(env, T0 + timedelta(minutes=60))
        assert replay.get("dry_run") is True
        assert [a for a in replay["firing"] if a["alertname"] == "RouterwatchEscalationDrift"], replay
        assert active_alerts(alertmanager, router) == [], "a replay of a past minute pages no one"

        # Live: nothing has been seen since the incident, so the CUSUM still stands above its threshold.
        paged = evaluate(env)
        drift = [a for a in paged["firing"] if a["alertname"] == "RouterwatchEscalationDrift" and "category" in a["labels"]]
        assert drift, paged
        assert drift[0]["labels"] == {"router": router, "tier": "small", "category": "billing", "direction": "up"}
        change = datetime.fromisoformat(drift[0]["change_start"])
        assert T0 - timedelta(minutes=5) <= change <= T0 + timedelta(minutes=15), "the change start is estimated"

        deadline = time.monotonic() + 30
        alerts = []
        while time.monotonic() < deadline and not alerts:
            alerts = [a for a in active_alerts(alertmanager, router)
                      if a["labels"]["alertname"] == "RouterwatchEscalationDrift" and a["labels"].get("scope") == "category"]
            time.sleep(0.2)
        (alert,) = alerts
        assert alert["labels"]["severity"] == "critical" and alert["labels"]["signal"] == "escalation_drift"
        assert alert["labels"]["scope"] == "category"
        for key in ("summary", "description", "runbook_url", "query", "baseline", "observed", "magnitude", "change_start"):
            assert alert["annotations"].get(key), key
        assert alert["annotations"]["runbook_url"] == f"{DEFAULT_RUNBOOK_BASE_URL}#routerwatchescalationdrift"
        assert float(alert["annotations"]["observed"]) > float(alert["annotations"]["baseline"]) + 0.2
        webhook.wait_for(lambda p: p.get("status") == "firing" and p["commonLabels"].get("router") == router)

        # The tier-level, risk-adjusted detector fires too; with one category, all of it is within-category.
        tier_wide = [a for a in paged["firing"] if a["alertname"] == "RouterwatchEscalationDrift" and a["labels"].get("scope") == "tier"]
        assert tier_wide, paged
        # The jump (15% -> 45%) is also a surge, naming the dominant reason.
        surge = [a for a in paged["firing"] if a["alertname"] == "RouterwatchEscalationSurge"]
        assert surge and "schema_invalid" in surge[0]["summary"] + surge[0]["description"], paged

        # Re-evaluating re-sends, but pages once per alert.
        before = len(active_alerts(alertmanager, router))
        evaluate(env)
        assert len(active_alerts(alertmanager, router)) == before

        # The incident ends: an hour of normal traffic brings the CUSUM back under its clear level.
        send(env, normal.model_copy(update={"minutes": 60}), 6_000, seed=83, end=NOW)
        quiet = evaluate(env)
        assert not [a for a in quiet["firing"] if a["labels"].get("router") == router], quiet
        webhook.wait_for(lambda p: p.get("status") == "resolved" and p["commonLabels"].get("router") == router)
        assert active_alerts(alertmanager, router) == []
    finally:
        serve.stop()
