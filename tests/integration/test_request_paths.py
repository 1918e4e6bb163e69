"""One definition of an escalated request in /metrics and in SQL (issue 13, defect 6).

docs/design-notes.md section 2: "escalated request: at least one escalation". A request escalated and then
left unserved (the stronger tier failed too) is escalated. The SQL rollups always counted it so;
/metrics counted it under path="other". Here one batch, stored by the sink and observed as ingest
observes it, must give the same kept / escalated / other counts in both.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from routerwatch.events.models import RoutingDecision
from routerwatch.ingest.observe import observe_stored
from routerwatch.ingest.sink import ClickHouseSink
from routerwatch.prices import default_prices_file, load_prices
from routerwatch.simulate import Profile, events
from routerwatch.storage import migrations
from routerwatch.storage.client import Store
from routerwatch.storage.migrations import default_sql_dir
from routerwatch.storage.rows import Located

pytestmark = pytest.mark.integration
MIGRATIONS = default_sql_dir() / "migrations"
PATHS = ("kept", "escalated", "other")


@pytest.fixture
def store(session_chdb_path, names):
    with Store(f"chdb://{session_chdb_path}", names["database"]) as s:
        migrations.migrate_up(s, MIGRATIONS)
        yield s
        s.command(f"DROP DATABASE IF EXISTS `{names['database']}`")


def harsh_profile() -> Profile:
    """The default cascade with failures frequent enough that escalated requests go unserved."""
    base = Profile(router_id="paths-test")
    return base.model_copy(update={"tiers": [t.model_copy(update={"failure_rate": 0.35}) for t in base.tiers]})


def path_counts() -> dict[str, float]:
    return {p: REGISTRY.get_sample_value("routerwatch_request_duration_seconds_count", {"path": p}) or 0.0 for p in PATHS}


def test_metrics_and_sql_count_the_same_escalated_requests(store):
    decisions = [RoutingDecision.model_validate(e) for e in events(harsh_profile(), 600, seed=41)]
    escalated_unserved = [d for d in decisions if not d.final.served
                          and any(a.outcome.value == "escalated" for a in d.attempts)]
    assert escalated_unserved, "the batch must hold requests escalated and then not served"

    before = path_counts()
    sink = ClickHouseSink(store, load_prices(default_prices_file()))
    report = sink.store_batch("decision", [Located(d, 0, i) for i, d in enumerate(decisions)])
    observe_stored("decision", report)  # what the batch processor does after a store
    after = path_counts()
    metrics = {p: int(after[p] - before[p]) for p in PATHS}

    since = (min(d.occurred_at for d in decisions) - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S")
    rng = f"since = '{since}', until = '2100-01-01 00:00:00'"
    latency = {r[0]: r[1] for r in store.query(f"SELECT path_group, requests FROM request_latency({rng}, by = '')").rows}
    mix = store.query(f"SELECT sum(requests), sum(kept), sum(escalated) FROM routing_mix({rng}, by = '')").rows[0]
    tenants = store.query(f"SELECT sum(escalated_requests) FROM tenant_scoreboard({rng})").scalar()
    raw = dict(store.query("SELECT multiIf(escalation_count > 0, 'escalated', served AND final_tier = entry_tier, "
                           "'kept', 'other'), count() FROM requests GROUP BY ALL").rows)

    assert sum(metrics.values()) == len(decisions) == mix[0] == latency["all"]
    assert metrics["escalated"] == latency["escalated"] == mix[2] == tenants == raw["escalated"]
    assert metrics["kept"] == latency["kept"] == mix[1] == raw["kept"]
    assert metrics["other"] == raw["other"]
    # The escalated-then-unserved requests are among the escalated ones, in both.
    assert metrics["escalated"] >= len(escalated_unserved)
    unserved_escalated = store.query(
        f"SELECT sum(escalated) FROM routing_mix({rng}, by = '') WHERE final_tier = '(not served)'").scalar()
    assert unserved_escalated == len(escalated_unserved)
