"""Every query of the Grafana dashboards (deploy/grafana) runs in the real engine.

No Grafana runs here. Each ClickHouse panel's SQL and each variable's query is expanded the way
Grafana and the ClickHouse data source plugin would (tests/grafanakit.py re-implements the
variable interpolation and the plugin's macros) for a fixed time range and interval, and run on an
embedded chDB store migrated with every migration and filled with known traffic of two routers,
canary probes and a dead letter. Each must return rows, with the time column first for a time
series, and the series must add up to what the report's views say over the same range. Every
Prometheus panel's PromQL is parsed by promtool (as recording rules) and uses only metrics that
routerwatch exports.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from datetime import datetime, timezone
from uuid import uuid4

import pytest
import yaml
from grafanakit import CLICKHOUSE, DASHBOARDS, PROMETHEUS, TimeRange, load, queries, run_sql, variable_queries

from routerwatch.events.models import CanaryResult, RoutingDecision
from routerwatch.ingest.sink import ClickHouseSink
from routerwatch.prices import default_prices_file, load_prices
from routerwatch.simulate import Profile, events
from routerwatch.storage import migrations
from routerwatch.storage.client import Store
from routerwatch.storage.migrations import default_sql_dir
from routerwatch.storage.rows import Located

pytestmark = pytest.mark.integration
NOW = float(int(time.time()) // 60 * 60)
# The traffic is stamped up to NOW, fixed when pytest collects this module; the store stamps what
# it receives (received_at: the pipeline panels) when the test runs, which in a full suite is
# many minutes later. The range ends hours after NOW so that it holds both.
WINDOW = TimeRange(datetime.fromtimestamp(NOW - 3 * 3600, timezone.utc),
                   datetime.fromtimestamp(NOW + 6 * 3600, timezone.utc), interval_s=300)
# The same range as the views take it (the macros' toDateTime is UTC).
SINCE = WINDOW.start.strftime("%Y-%m-%d %H:%M:%S")
UNTIL = WINDOW.end.strftime("%Y-%m-%d %H:%M:%S")
RANGE = f"since = '{SINCE}', until = '{UNTIL}'"
EAST, WEST = "router-east", "router-west"
BOARDS = {p.stem: load(p) for p in DASHBOARDS}
SLO = {"kept_slo_ms": "5000", "escalated_slo_ms": "13000"}


@pytest.fixture(scope="module")
def store(tmp_path_factory, request):
    session_path = request.getfixturevalue("session_chdb_path")
    database = f"grafana_{uuid4().hex[:8]}"
    with Store(f"chdb://{session_path}", database) as s:
        migrations.migrate_up(s, default_sql_dir() / "migrations")
        sink = ClickHouseSink(s, load_prices(default_prices_file()))
        evs = events(Profile(router_id=EAST), 600, seed=91, now=NOW) + events(Profile(router_id=WEST), 300, seed=92, now=NOW)
        decisions = [RoutingDecision.model_validate(e) for e in evs]
        sink.store_batch("decision", [Located(d, 0, i) for i, d in enumerate(decisions)])
        probes = []
        for i in range(24):
            router = EAST if i % 3 else WEST
            side, canary, expected = (("cheap", "refund-policy", "small") if i % 2 else ("strong", "contract-clause", "large"))
            answered = i % 5 != 0
            probes.append(CanaryResult.model_validate({
                "event_id": str(uuid4()), "canary_id": canary, "run_id": f"run-{i}", "router_id": router,
                "occurred_at": datetime.fromtimestamp(NOW - 7200 + i * 300, timezone.utc).isoformat(),
                "category": "billing", "side": side, "expected_tier": expected,
                "observed_tier": (expected if i % 4 else "medium") if answered else None,
                "tier_source": "header" if answered else None, "check_kind": "regex",
                "answer_passed": (i % 3 != 1) if answered else None, "latency_ms": 200.0 + i,
                "error": None if answered else "timeout after 30 s", "request_id": f"canary-{i}"}))
        sink.store_batch("canary", [Located(p, 0, i) for i, p in enumerate(probes)])
        s.command(f"INSERT INTO dead_letters (received_at, topic, partition, offset, reason, detail, size_bytes) "
                  f"VALUES (toDateTime64({NOW - 600}, 3, 'UTC'), 'routing.decisions', 0, 7, 'schema_invalid', 'test', 12)")
        yield {"store": s, "decisions": decisions}
        s.command(f"DROP DATABASE IF EXISTS `{database}`")


def query(store, sql: str) -> tuple[list[str], list[tuple]]:
    result = store.query(sql)
    return result.columns, result.rows


def variables(store) -> dict[str, str]:
    """The overview's variables as Grafana would offer them: the router and environment from their
    own queries (EAST chosen), the SLO constants."""
    board = BOARDS["routerwatch-overview"]
    qs = dict(variable_queries(board, CLICKHOUSE))
    _, rows = query(store, run_sql(qs["router"], {}, WINDOW))
    routers = [r[0] for r in rows]
    assert routers == sorted([EAST, WEST]), routers
    _, rows = query(store, run_sql(qs["environment"], {"router": EAST}, WINDOW))
    environments = [r[0] for r in rows]
    assert environments, "the environment variable offers no value"
    return {"router": EAST, "environment": "__all", **SLO, "_environments": environments}


def panel_rows(store, values: dict[str, str]) -> dict[tuple[str, str, str], tuple[list[str], list[tuple]]]:
    out = {}
    for name, board in BOARDS.items():
        for title, ref, target in queries(board, CLICKHOUSE):
            sql = run_sql(target["rawSql"], values, WINDOW)
            try:
                out[(name, title, ref)] = query(store, sql)
            except Exception as exc:  # noqa: BLE001 - the message names the panel
                raise AssertionError(f"{name} / {title} / {ref} failed in the engine: {exc}\n{sql}") from exc
    return out


def test_every_clickhouse_query_runs_and_returns_what_its_panel_shows(store) -> None:
    s = store["store"]
    values = variables(s)
    trace_request = next(d for d in store["decisions"] if d.router.id == EAST and len(d.attempts) >= 2)
    values["request_id"] = trace_request.request_id
    results = panel_rows(s, values)
    assert len(results) >= 20
    for (name, title, ref), (columns, rows) in results.items():
        assert rows, f"{name} / {title} / {ref} returned no rows"
        target = next(t for ti, r, t in queries(BOARDS[name], CLICKHOUSE) if (ti, r) == (title, ref))
        if target["format"] == 0:
            assert columns[0] == "time", f"{name} / {title}: the time column comes first, got {columns}"
            assert all(isinstance(r[0], datetime) for r in rows), f"{name} / {title}"
            assert [r[0] for r in rows] == sorted(r[0] for r in rows), f"{name} / {title}: not sorted by time"
            assert any(isinstance(v, (int, float)) for r in rows for v in r[1:]), f"{name} / {title}: no value column"
    # The trace: one row per attempt of the request, in order.
    _, trace = results[("routerwatch-request", "Decision trace: every attempt", "A")]
    assert [r[0] for r in trace] == list(range(len(trace_request.attempts)))
    # One environment chosen instead of all: the queries still run (and the env filter applies).
    for env in values["_environments"]:
        panel_rows(s, {**values, "environment": env})


def test_the_series_add_up_to_the_report_views(store) -> None:
    """The time series and the report's range views are one definition: summed over the range,
    each series equals the view's figure for the router."""
    s = store["store"]
    values = variables(s)
    values["request_id"] = "none"
    results = panel_rows(s, values)
    for router in (EAST, WEST):
        per_router = panel_rows(s, {**values, "router": router}) if router != EAST else results

        def series(title):
            return per_router[("routerwatch-overview", title, "A")]

        _, reasons = series("Escalations by reason")
        _, view = query(s, f"SELECT sum(escalations) FROM escalation_reasons({RANGE}) WHERE router_id = '{router}'")
        assert sum(r[2] for r in reasons) == view[0][0] > 0, router
        _, tiers = query(s, f"SELECT sum(escalated) FROM tier_scoreboard({RANGE}, by = 'router') WHERE segment = '{router}'")
        assert tiers[0][0] == view[0][0]
        _, spend = series("Spend against the flagship counterfactual")
        _, cost = query(s, f"SELECT actual_cost_usd, counterfactual_cost_usd FROM cost_summary({RANGE}, by = 'router') "
                           f"WHERE segment = '{router}'")
        assert sum(r[1] for r in spend) == pytest.approx(cost[0][0], rel=1e-9)
        assert sum(r[2] for r in spend) == pytest.approx(cost[0][1], rel=1e-9)
        _, mix = series("Routing mix: requests by final tier")
        _, view_mix = query(s, f"SELECT final_tier, requests FROM routing_mix({RANGE}, by = 'router') WHERE segment = '{router}'")
        by_tier: dict[str, int] = {}
        for _, tier, n in mix:
            by_tier[tier] = by_tier.get(tier, 0) + n
        assert by_tier == dict(view_mix), router
        # The escalation-rate series is escalation_series_step's; over its buckets its counts are the view's.
        _, step = query(s, f"SELECT sum(escalated) FROM escalation_series_step({RANGE}, step_minutes = 5) WHERE router_id = '{router}'")
        assert step[0][0] == view[0][0]
    # The range tables are the views' rows for the router.
    _, tier_table = results[("routerwatch-overview", "Per tier", "A")]
    _, view_tiers = query(s, f"SELECT tier, escalated FROM tier_scoreboard({RANGE}, by = 'router') WHERE segment = '{EAST}' ORDER BY tier_rank, tier")
    assert [(r[0], r[3]) for r in tier_table] == view_tiers
    # Canary pass rate per side is canary_series's.
    _, sides = results[("routerwatch-overview", "Canary pass rate per side", "A")]
    _, view_sides = query(s, f"SELECT bucket, side, pass_rate FROM canary_series({RANGE}, step_minutes = 5) WHERE router_id = '{EAST}' ORDER BY bucket, side")
    assert [tuple(r) for r in sides] == [tuple(r) for r in view_sides]


def _metric_names() -> set[str]:
    """Every sample name routerwatch's registries expose: serve's (routerwatch.metrics) and the SDK's."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import REGISTRY

    import routerwatch.metrics  # noqa: F401 - registers the metrics
    from routerwatch.sdk.prometheus import SdkCollector

    class _Stub:
        class config:  # noqa: N801
            router_id = "r"

        @staticmethod
        def stats() -> dict[str, int]:
            return {"enqueued": 1, "sent": 1, "retried": 0, "dropped_queue_full": 0, "queued": 0, "in_flight": 0}

    sdk = CollectorRegistry()
    sdk.register(SdkCollector(_Stub()))
    names = set()
    for registry in (REGISTRY, sdk):
        for family in registry.collect():
            if family.type == "counter":
                names |= {family.name + "_total"}
            elif family.type == "histogram":
                names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
            else:
                names.add(family.name)
    return names


def _promql() -> list[tuple[str, str]]:
    out = []
    for name, board in BOARDS.items():
        for title, ref, target in queries(board, PROMETHEUS):
            # Grafana's own interval variables, as Grafana would set them for a 15 s scrape interval.
            expr = target["expr"].replace("$__rate_interval", "1m").replace("$__interval", "30s")
            out.append((f"{name} / {title} / {ref}", expr))
    return out


def test_every_prometheus_query_parses_and_uses_exported_metrics(tmp_path) -> None:
    exprs = _promql()
    assert len(exprs) >= 6
    known = _metric_names()
    for where, expr in exprs:
        used = set(re.findall(r"\brouterwatch_\w+", expr))
        assert used and used <= known, f"{where}: {used - known} is not a routerwatch metric"
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.fail("promtool not found: install the Debian package prometheus (deploy/install-system-deps.sh)")
    rules = {"groups": [{"name": "grafana-panels", "rules": [
        {"record": f"grafana:panel_{i}", "expr": expr} for i, (_, expr) in enumerate(exprs)]}]}
    path = tmp_path / "grafana-panels.rules.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"promtool check rules:\n{done.stdout}\n{done.stderr}"
    assert f"SUCCESS: {len(exprs)} rules found" in done.stdout
