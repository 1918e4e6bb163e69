"""Every query of the Grafana dashboards (deploy/grafana) runs in the real engine.

No Grafana runs here. Each ClickHouse panel's SQL and each variable's query is expanded the way
Grafana and the ClickHouse data source plugin would (tests/grafanakit.py re-implements the
variable interpolation and the plugin's macros) for a fixed time range and interval, and run on an
embedded chDB store migrated with every migration and filled with known traffic of two routers,
canary probes and a dead letter. Each must return rows, with the time column first for a time
series, and the series must hold what the report's views say over the same range (per router and
for one environment, at minute, hour and whole-range buckets). Every Prometheus panel's PromQL is
parsed by promtool (as recording rules) and uses only metrics that routerwatch exports; the
escalation-drift CUSUM panels are evaluated by promtool on detector series.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections import Counter
from datetime import datetime, timezone
from uuid import uuid4

import pytest
import yaml
from grafanakit import (CLICKHOUSE, DASHBOARDS, PROMETHEUS, TimeRange, interpolate, load, queries, run_sql,
                        variable_queries)

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
PRODUCTION, STAGING = "production", "staging"
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
        for i, e in enumerate(evs):
            # A third of EAST's traffic in staging; WEST only in production, so that the figure views
            # split by environment ('staging') hold EAST's staging traffic alone.
            e["environment"] = STAGING if e["router"]["id"] == EAST and i % 3 == 0 else PRODUCTION
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
        yield {"store": s, "decisions": decisions, "events": evs, "probes": probes}
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
    assert environments == [PRODUCTION, STAGING], environments
    return {"router": EAST, "environment": "__all", **SLO, "_environments": environments}


def panel_rows(store, values: dict[str, str], window: TimeRange = WINDOW,
               boards: tuple[str, ...] = tuple(BOARDS)) -> dict[tuple[str, str, str], tuple[list[str], list[tuple]]]:
    out = {}
    for name in boards:
        for title, ref, target in queries(BOARDS[name], CLICKHOUSE):
            sql = run_sql(target["rawSql"], values, window)
            try:
                out[(name, title, ref)] = query(store, sql)
            except Exception as exc:  # the message names the panel
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
    # One environment chosen instead of all, and the hourly and one-bucket intervals: every query
    # still runs and returns rows (test_one_environment_keeps_only_its_rows: which rows).
    for env in values["_environments"]:
        for window in (WINDOW, HOURLY, WHOLE):
            for key, (_, rows) in panel_rows(s, {**values, "environment": env}, window).items():
                assert rows, f"{key} returned no rows for environment {env}, interval {window.interval_s} s"


# --- The overview's series against the figure views ----------------------------------------------
#
# Each series panel is run for three scopes whose figures a view holds on its own: a router with
# every environment (the views' by = 'router'), and EAST in staging (by = 'environment': WEST has no
# staging traffic, see the fixture). Counts and sums are checked at three intervals: five minutes
# (minute buckets), one hour (whole hours: the series views read the hourly rollups) and one bucket
# holding the whole range, where rates, shares and p95s are the views' own figures.
SCOPES = [({"router": EAST, "environment": "__all"}, "router", EAST),
          ({"router": WEST, "environment": "__all"}, "router", WEST),
          ({"router": EAST, "environment": STAGING}, "environment", STAGING)]


def _one_bucket(window: TimeRange) -> TimeRange:
    """The same range with an interval whose step (whole hours) puts the range in one bucket."""
    start, end = int(window.start.timestamp()), int(window.end.timestamp())
    minutes = next(m for m in range(60, 200 * 24 * 60, 60) if start // (m * 60) == (end - 1) // (m * 60))
    return TimeRange(window.start, window.end, interval_s=minutes * 60)


HOURLY = TimeRange(WINDOW.start, WINDOW.end, interval_s=3600)
WHOLE = _one_bucket(WINDOW)
INTERVALS = {"5m": WINDOW, "1h": HOURLY, "whole": WHOLE}


def panel(s, title: str, values: dict[str, str], window: TimeRange) -> list[tuple]:
    (target,) = [t for ti, _, t in queries(BOARDS["routerwatch-overview"], CLICKHOUSE) if ti == title]
    sql = run_sql(target["rawSql"], {**SLO, "request_id": "none", **values}, window)
    columns, rows = query(s, sql)
    assert columns[0] == "time" and [r[0] for r in rows] == sorted(r[0] for r in rows), title
    return rows


def view(s, sql: str) -> list[tuple]:
    return query(s, sql)[1]


def keep(e: dict, values: dict[str, str]) -> bool:
    return e["router"]["id"] == values["router"] and values["environment"] in ("__all", e["environment"])


def test_the_scopes_are_what_the_views_split(store) -> None:
    """The premise of SCOPES: staging is EAST's alone, and each scope has traffic."""
    evs = store["events"]
    assert {e["router"]["id"] for e in evs if e["environment"] == STAGING} == {EAST}
    assert {e["environment"] for e in evs if e["router"]["id"] == EAST} == {PRODUCTION, STAGING}
    for values, _, _ in SCOPES:
        assert sum(keep(e, values) for e in evs) > 50, values


@pytest.mark.parametrize("interval", list(INTERVALS))
@pytest.mark.parametrize("scope", range(len(SCOPES)), ids=["east", "west", "east-staging"])
def test_the_series_sum_to_the_figure_views(store, scope, interval) -> None:
    s, window = store["store"], INTERVALS[interval]
    values, by, segment = SCOPES[scope]
    seg = f"by = '{by}') WHERE segment = '{segment}'"
    # Escalations by reason: their sum is tier_scoreboard's escalated, per reason the events'.
    reasons = panel(s, "Escalations by reason", values, window)
    (escalated,) = view(s, f"SELECT sum(escalated) FROM tier_scoreboard({RANGE}, {seg}")[0]
    assert sum(r[2] for r in reasons) == escalated > 0
    truth = Counter(a.get("escalation_reason") or "(none)" for e in store["events"] if keep(e, values)
                    for a in e["attempts"] if a["outcome"] == "escalated")
    got: Counter = Counter()
    for _, reason, n in reasons:
        got[reason] += n
    assert got == truth
    if by == "router":
        by_reason = Counter({(r or "(none)"): n for r, n in view(
            s, f"SELECT escalation_reason, sum(escalations) FROM escalation_reasons({RANGE}) "
               f"WHERE router_id = '{segment}' GROUP BY escalation_reason")})
        assert got == by_reason
    # Spend and the flagship counterfactual: cost_summary's.
    spend = panel(s, "Spend against the flagship counterfactual", values, window)
    actual, counterfactual = view(s, f"SELECT actual_cost_usd, counterfactual_cost_usd FROM cost_summary({RANGE}, {seg}")[0]
    assert sum(r[1] for r in spend) == pytest.approx(actual, rel=1e-9)
    assert sum(r[2] for r in spend) == pytest.approx(counterfactual, rel=1e-9)
    assert all(r[1] <= r[2] + 1e-12 for r in spend)
    # Requests per final tier: routing_mix's; the shares of a bucket are its requests over the bucket's.
    mix = panel(s, "Routing mix: requests by final tier", values, window)
    view_mix = view(s, f"SELECT final_tier, requests, share FROM routing_mix({RANGE}, {seg}")
    per_tier: Counter = Counter()
    per_bucket: dict = {}
    for t, tier, n in mix:
        per_tier[tier] += n
        per_bucket.setdefault(t, {})[tier] = n
    assert dict(per_tier) == {tier: n for tier, n, _ in view_mix}
    assert sum(per_tier.values()) == sum(keep(e, values) for e in store["events"])
    shares = panel(s, "Routing mix over time: share of requests by final tier", values, window)
    assert {(t, tier) for t, tier, _ in shares} == {(t, tier) for t, tier, _ in mix}
    for t, tier, share in shares:
        assert share == pytest.approx(per_bucket[t][tier] / sum(per_bucket[t].values()), rel=1e-12), (t, tier)
    if window is WHOLE:
        assert len(per_bucket) == 1
        assert {tier: share for _, tier, share in shares} == pytest.approx({tier: sh for tier, _, sh in view_mix}, rel=1e-12)


@pytest.mark.parametrize("interval", list(INTERVALS))
@pytest.mark.parametrize("scope", range(len(SCOPES)), ids=["east", "west", "east-staging"])
def test_the_escalation_rate_is_the_events_and_the_views(store, scope, interval) -> None:
    """Per tier x category and bucket, escalated / (accepted + escalated) of the scope's attempts;
    the events' counts per tier are tier_scoreboard's, per bucket (every environment)
    escalation_series_step's rates."""
    s, window = store["store"], INTERVALS[interval]
    values, by, segment = SCOPES[scope]
    rows = panel(s, "Escalation rate per tier x category", values, window)
    step = max(window.interval_s // 60, 1) * 60
    counts: dict = {}
    for e in store["events"]:
        if not keep(e, values):
            continue
        t = int(datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")).timestamp()) // 60 * 60
        bucket = datetime.fromtimestamp(t // step * step, timezone.utc)
        for a in e["attempts"]:
            if a["outcome"] in ("accepted", "escalated"):
                c = counts.setdefault((bucket, f"{a['tier']} / {e['category']}"), Counter())
                c[a["outcome"]] += 1
    truth = {k: c["escalated"] / (c["escalated"] + c["accepted"]) for k, c in counts.items()}
    got = {(t.replace(tzinfo=timezone.utc), key): rate for t, key, rate in rows}
    assert got == pytest.approx(truth, rel=1e-12)
    per_tier: dict = {}
    for (_, key), c in counts.items():
        per_tier.setdefault(key.split(" / ")[0], Counter()).update(c)
    board = view(s, f"SELECT tier, accepted, escalated FROM tier_scoreboard({RANGE}, by = '{by}') "
                    f"WHERE segment = '{segment}' AND accepted + escalated > 0")
    assert {tier: (c["accepted"], c["escalated"]) for tier, c in per_tier.items()} == {t: (a, x) for t, a, x in board}
    if by == "router":
        steps = view(s, f"SELECT minute, concat(tier, ' / ', category), escalation_rate FROM escalation_series_step("
                        f"{RANGE}, step_minutes = {step // 60}) WHERE router_id = '{segment}' AND escalation_rate IS NOT NULL")
        assert got == pytest.approx({(t.replace(tzinfo=timezone.utc), k): r for t, k, r in steps}, rel=1e-12)
    if window is WHOLE:
        assert len({t for t, _ in got}) == 1


@pytest.mark.parametrize("scope", range(len(SCOPES)), ids=["east", "west", "east-staging"])
def test_the_p95s_over_one_bucket_are_the_views(store, scope) -> None:
    """Over one bucket holding the range, the latency panels' p95s are tier_scoreboard's terminal and
    passthrough p95 per tier and request_latency's kept and escalated p95 (t-digest states merged in
    another grouping: within 2 %); at five minutes, one line per tier and kind the scope has."""
    s = store["store"]
    values, by, segment = SCOPES[scope]
    tiers = panel(s, "Terminal and passthrough attempt p95 per tier", values, WHOLE)
    board = view(s, f"SELECT tier, accepted, escalated, terminal_latency_ms[2], passthrough_latency_ms[2] "
                    f"FROM tier_scoreboard({RANGE}, by = '{by}') WHERE segment = '{segment}'")
    want = {}
    for tier, accepted, escalated, terminal, passthrough in board:
        if accepted:
            want[f"{tier} terminal"] = terminal
        if escalated:
            want[f"{tier} passthrough"] = passthrough
    assert len({r[0] for r in tiers}) == 1
    assert {k: v for _, k, v in tiers} == pytest.approx(want, rel=0.02)
    assert {k for _, k, _ in panel(s, "Terminal and passthrough attempt p95 per tier", values, WINDOW)} == set(want)
    paths = panel(s, "Request p95, kept and escalated, against the SLO targets", values, WHOLE)
    latency = {g: p for g, n, p in view(s, f"SELECT path_group, requests, latency_ms[2] FROM request_latency({RANGE}, by = '{by}') "
                                           f"WHERE segment = '{segment}' AND path_group != 'all' AND requests > 0")}
    assert len({r[0] for r in paths}) == 1 and set(latency) == {"kept", "escalated"}
    assert {k: v for _, k, v in paths} == pytest.approx(latency, rel=0.02)
    assert {k for _, k, _ in panel(s, "Request p95, kept and escalated, against the SLO targets", values, WINDOW)} == set(latency)


def test_one_environment_keeps_only_its_rows(store) -> None:
    """EAST's production and staging counts add up to EAST's, each short of it; an environment
    that has no traffic empties every panel that reads an environment column, and leaves the
    others (the range tables, the canaries: no environment column) as they are with All."""
    s = store["store"]
    east = {"router": EAST}
    for title, column in (("Escalations by reason", 2), ("Routing mix: requests by final tier", 2),
                          ("Spend against the flagship counterfactual", 1)):
        total = {env: sum(r[column] for r in panel(s, title, {**east, "environment": env}, WINDOW))
                 for env in ("__all", PRODUCTION, STAGING)}
        assert total[PRODUCTION] + total[STAGING] == pytest.approx(total["__all"], rel=1e-9), title
        assert 0 < total[STAGING] < total["__all"] and 0 < total[PRODUCTION] < total["__all"], title
    values = {**east, **SLO, "request_id": "none"}
    every = panel_rows(s, {**values, "environment": "__all"}, boards=("routerwatch-overview",))
    nowhere = panel_rows(s, {**values, "environment": "nowhere"}, boards=("routerwatch-overview",))
    filtered = []
    for (name, title, ref), target in ((k, t) for k in every for ti, r, t in queries(BOARDS[k[0]], CLICKHOUSE)
                                      if (ti, r) == k[1:]):
        sql = run_sql(target["rawSql"], {**values, "environment": "__all"}, WINDOW)
        if any("environment" in _columns(s, source) for source in _sources(sql)):
            filtered.append(title)
            assert every[(name, title, ref)][1] and not nowhere[(name, title, ref)][1], f"{title}: not filtered by environment"
        else:
            assert _no_nan(nowhere[(name, title, ref)]) == _no_nan(every[(name, title, ref)]), title
    assert sorted(filtered) == sorted([
        "Escalation rate per tier x category", "Escalations by reason", "Request p95, kept and escalated, against the SLO targets",
        "Terminal and passthrough attempt p95 per tier", "Spend against the flagship counterfactual",
        "Routing mix over time: share of requests by final tier", "Routing mix: requests by final tier"])


def _no_nan(result: tuple[list[str], list[tuple]]) -> tuple[list[str], list[tuple]]:
    """NaN (a p95 of no attempt) as None, so that equal results compare equal."""
    columns, rows = result
    return columns, [tuple(None if isinstance(v, float) and v != v else v for v in r) for r in rows]


def _sources(sql: str) -> list[str]:
    """The tables and table functions (a view with its arguments) a query reads FROM."""
    out = []
    for m in re.finditer(r"\bFROM\s+(\w+)", sql):
        end = m.end()
        if sql[end:end + 1] == "(":
            depth = 0
            for i in range(end, len(sql)):
                depth += {"(": 1, ")": -1}.get(sql[i], 0)
                if depth == 0:
                    end = i + 1
                    break
        out.append(sql[m.start(1):end])
    return out


def _columns(s, source: str) -> set[str]:
    return {r[0] for r in view(s, f"DESCRIBE (SELECT * FROM {source})")}


def test_the_per_canary_series_are_canary_history_and_the_scoreboard(store) -> None:
    """Per side and canary: at five minutes, canary_history's rows; over one bucket holding the
    range, canary_scoreboard's pass and tier-flip rates, which the probes the test stored give."""
    s = store["store"]
    for router in (EAST, WEST):
        values = {"router": router, "environment": "__all"}
        for title, column in (("Canary pass rate per canary", "pass_rate"), ("Canary tier-flip rate per canary", "tier_flip_rate")):
            rows = panel(s, title, values, WINDOW)
            history = view(s, f"SELECT bucket, concat(side, ' / ', canary_id), {column} FROM canary_history({RANGE}, step_minutes = 5) "
                              f"WHERE router_id = '{router}' ORDER BY bucket, side, canary_id")
            assert [tuple(r) for r in rows] == [tuple(r) for r in history] and rows
            whole = {k: v for _, k, v in panel(s, title, values, WHOLE)}
            board = {f"{side} / {canary}": v for side, canary, v in view(
                s, f"SELECT side, canary_id, {column} FROM canary_scoreboard({RANGE}) WHERE router_id = '{router}'")}
            assert whole == pytest.approx(board, rel=1e-12)
            probes = [p for p in store["probes"] if p.router_id == router]
            truth = {}
            for key in {f"{p.side} / {p.canary_id}" for p in probes}:
                answered = [p for p in probes if f"{p.side} / {p.canary_id}" == key and not p.error]
                hits = sum(bool(p.answer_passed) if column == "pass_rate" else p.observed_tier != p.expected_tier for p in answered)
                truth[key] = hits / len(answered) if answered else None
            assert whole == pytest.approx(truth, rel=1e-12)


def _metric_names() -> set[str]:
    """Every sample name routerwatch's registries expose: serve's (routerwatch.metrics) and the SDK's."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import REGISTRY

    import routerwatch.metrics  # noqa: F401 - registers the metrics
    from routerwatch.sdk.prometheus import SdkCollector

    class _Stub:
        class config:
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
            # Dashboard variables as Grafana interpolates them (the router chosen: EAST).
            expr = target["expr"].replace("$__rate_interval", "1m").replace("$__interval", "30s")
            expr = interpolate(expr, {"router": EAST})
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


# Detector series as the drift scheduler exports them (scheduler/service.py: signal, router, tier,
# subject = the category for escalation drift, direction), plus Prometheus' own job and instance:
# (signal, router, tier, subject, direction, statistic, threshold).
DETECTOR_SERIES = [
    ("escalation_drift", EAST, "small", "billing", "up", 2.0, 4.0),
    ("escalation_drift", EAST, "medium", "legal", "up", 6.0, 5.0),
    ("escalation_drift", EAST, "small", "legal", "down", 1.5, 6.0),
    ("escalation_surge", EAST, "small", "billing", "up", 9.0, 3.0),  # another signal: not on the panels
    ("escalation_drift", WEST, "small", "billing", "up", 7.0, 2.0),  # another router: not on the panels
]


def test_the_cusum_panels_show_the_escalation_drift_statistic_against_its_threshold(tmp_path) -> None:
    """promtool evaluates the detector panels' PromQL on series labelled as the scheduler exports
    them: per tier and category of the chosen router, the escalation-drift statistic, its threshold
    and their ratio, and nothing of another signal or router."""
    from routerwatch import metrics

    names = ("signal", "router", "tier", "subject", "direction")
    assert tuple(metrics.DETECTOR_STATISTIC._labelnames) == names == tuple(metrics.DETECTOR_THRESHOLD._labelnames)
    panels_exprs = {where: expr for where, expr in _promql() if "routerwatch_detector_" in expr}
    assert len(panels_exprs) == 3, panels_exprs
    series = []
    for *labels, statistic, threshold in DETECTOR_SERIES:
        selector = ", ".join(f'{k}="{v}"' for k, v in zip(names, labels)) + ', job="routerwatch", instance="serve:9464"'
        series += [{"series": f"routerwatch_detector_statistic{{{selector}}}", "values": f"{statistic}+0x10"},
                   {"series": f"routerwatch_detector_threshold{{{selector}}}", "values": f"{threshold}+0x10"}]
    shown = [(s, dict(zip(names[1:], labels[1:]))) for s in DETECTOR_SERIES for labels in [s[:5]]
             if s[0] == "escalation_drift" and s[1] == EAST]
    assert len(shown) == 3
    checks = []
    for where, expr in panels_exprs.items():
        has = ("routerwatch_detector_statistic" in expr, "routerwatch_detector_threshold" in expr)
        value = {(True, True): lambda s: s[5] / s[6], (True, False): lambda s: s[5], (False, True): lambda s: s[6]}[has]
        samples = [{"labels": "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}", "value": value(s)}
                   for s, labels in shown]
        checks.append({"expr": expr, "eval_time": "5m", "exp_samples": samples})
    assert {round(c["exp_samples"][0]["value"], 3) for c in checks} == {0.5, 2.0, 4.0}, "ratio, statistic, threshold"
    rules = tmp_path / "none.rules.yml"
    rules.write_text(yaml.safe_dump({"groups": []}))
    spec = tmp_path / "detector-panels.test.yml"
    spec.write_text(yaml.safe_dump({"rule_files": [rules.name], "evaluation_interval": "1m", "tests": [
        {"interval": "1m", "input_series": series, "promql_expr_test": checks}]}, sort_keys=False))
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.fail("promtool not found: install the Debian package prometheus (deploy/install-system-deps.sh)")
    done = subprocess.run([promtool, "test", "rules", spec.name], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"promtool test rules:\n{done.stdout}\n{done.stderr}"
    assert "SUCCESS" in done.stdout
