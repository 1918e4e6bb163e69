"""A tier whose escalated path gets slow burns its latency budget and pages, per tier and path."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from datetime import datetime, timezone

import pytest

from routerwatch.sdk import RouterWatch, SdkConfig
from routerwatch.simulate import Profile, emit

pytestmark = pytest.mark.integration


def test_slow_strong_tier_pages_on_the_escalated_path_only(env, serve):
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    base = Profile(router_id="burn-router", experiment_id=None, feedback_share=0.0, shadow_share=0.0, minutes=60,
                   categories={"billing": 1.0}, entry_rank_by_category={})
    small, medium, large = base.tiers
    # Escalated requests served by the large tier now take ~30 s, far above the 13 s p95 target.
    slow = base.model_copy(update={"tiers": [small, medium, large.model_copy(update={"latency_median_ms": 30_000.0})]})
    rw = RouterWatch(SdkConfig(bootstrap_servers=env.kafka, router_id="burn-router", decisions_topic=env.names["decisions"],
                               feedback_topic=env.names["feedback"], max_queue=100_000, close_timeout_s=60))
    emit(rw, slow, 6000, seed=91, now=now.timestamp())
    assert rw.close()["dropped"] == 0
    env.cli("wait", "--timeout", "180")
    query = urllib.parse.urlencode({"now": now.isoformat()})
    req = urllib.request.Request(f"http://127.0.0.1:{env.port}/alerts/evaluate?{query}", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=120) as r:
        status = json.loads(r.read())
    burns = [a for a in status["firing"] if a["alertname"] == "RouterwatchLatencyBudgetBurn"]
    paged = {(a["labels"]["tier"], a["labels"]["path"]) for a in burns if a["severity"] == "critical"}
    assert ("large", "escalated") in paged, status["firing"]
    assert not any(path == "kept" for _, path in paged), "kept requests are fast: their budget is intact"
