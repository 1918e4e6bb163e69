"""The console's charts over time hold the figures of the report's views (one definition of each figure).

Two routers with tiers of the same names, each in two environments, go into a migrated chDB store.
For every range the page offers a step for, the console's series (``attempt_series``,
``attempt_latency_series``, ``request_series``, ``canary_history`` read through the endpoints'
functions) sum, bucket by bucket, to the figure views over the same range: escalated and accepted
attempts per router and tier (``tier_scoreboard``, ``escalation_series_step``), requests per path
(``request_latency``), spend and counterfactual (``cost_summary``), requests per final tier
(``routing_mix``). The router and environment filters keep exactly that router's or environment's
events, and a p95 over one bucket covering the whole range is the figure view's p95.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from routerwatch.console import routes
from routerwatch.simulate import Profile, events
from routerwatch.storage import migrations
from routerwatch.storage.client import Store
from routerwatch.storage.migrations import default_sql_dir

from test_report_routers import store_events  # the decisions and some grades through the real sink

pytestmark = pytest.mark.integration
MIGRATIONS = default_sql_dir() / "migrations"
ROUTERS = ("series-east", "series-west")
ENVIRONMENTS = ("production", "staging")


@pytest.fixture
def store(session_chdb_path, names):
    with Store(f"chdb://{session_chdb_path}", names["database"]) as s:
        migrations.migrate_up(s, MIGRATIONS)
        yield s
        s.command(f"DROP DATABASE IF EXISTS `{names['database']}`")


@pytest.fixture
def traffic(store):
    """Two routers over the last ~90 minutes (now taken when the test runs, not at collection)."""
    now = float(int(time.time()) // 60 * 60)
    evs = []
    for seed, router in enumerate(ROUTERS, start=41):
        for i, e in enumerate(events(Profile(router_id=router), 400, seed=seed, now=now)):
            e["environment"] = ENVIRONMENTS[i % 3 == 0]  # a third in staging
            evs.append(e)
    store_events(store, evs)
    return evs


def window(evs) -> dict[str, str]:
    times = [datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")) for e in evs]
    since = min(times).replace(second=0, microsecond=0) - timedelta(minutes=3)
    until = max(times).replace(second=0, microsecond=0) + timedelta(minutes=3)
    return {"since": since.isoformat(), "until": until.isoformat()}


def attempts_truth(evs, **keep) -> Counter:
    return Counter((e["router"]["id"], a["tier"], a["outcome"]) for e in evs for a in e["attempts"]
                   if all(_field(e, k) == v for k, v in keep.items()))


def _field(e, name):
    return e["router"]["id"] if name == "router" else e[name]


@pytest.mark.parametrize("filters", [{}, {"router": "series-west"}, {"environment": "staging"},
                                     {"router": "series-east", "environment": "production"}])
def test_escalation_series_sum_to_the_events_and_the_views(store, traffic, filters):
    reader = routes.Reader(store)
    query = {**window(traffic), **filters}
    answer = routes.escalation(reader, query)
    got = Counter()
    for row in answer["series"]:
        got[(row["router_id"], row["tier"], "escalated")] += row["escalated"]
        got[(row["router_id"], row["tier"], "accepted")] += row["accepted"]
    truth = attempts_truth(traffic, **filters)
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in truth.items() if k[2] in ("escalated", "accepted")}
    reasons = Counter()
    for row in answer["reasons"]:
        reasons[row["escalation_reason"]] += row["escalations"]
    assert reasons == Counter(a["escalation_reason"] for e in traffic for a in e["attempts"] if a["outcome"] == "escalated"
                              and all(_field(e, k) == v for k, v in filters.items()))
    assert len({row["minute"] for row in answer["series"]}) > 10  # a line, not two points


def test_every_step_gives_the_same_totals_as_escalation_series_step(store, traffic):
    reader = routes.Reader(store)
    q = window(traffic)
    since, until = routes.parse_window(q)
    args = routes._args(since, until)
    for step in (1, 5, 60):
        ours = reader.rows(f"SELECT router_id, tier, category, sumIf(attempts, outcome = 'escalated') AS e, "
                           f"sumIf(attempts, outcome = 'accepted') AS a FROM attempt_series({args}, step_minutes = {step}) "
                           "GROUP BY bucket, router_id, tier, category HAVING e + a > 0 ORDER BY bucket, router_id, tier, category")
        theirs = reader.rows(f"SELECT router_id, tier, category, escalated AS e, accepted AS a "
                             f"FROM escalation_series_step({args}, step_minutes = {step}) ORDER BY minute, router_id, tier, category")
        assert ours == theirs, step


@pytest.mark.parametrize("filters", [{}, {"router": "series-east"}, {"environment": "staging"}])
def test_latency_cost_series_sum_to_the_figure_views(store, traffic, filters):
    reader = routes.Reader(store)
    q = {**window(traffic), **filters}
    answer = routes.latency_cost(reader, q, slo={"kept_p95_ms": 5000.0, "escalated_p95_ms": 13000.0})
    assert answer["slo"] == {"kept_p95_ms": 5000.0, "escalated_p95_ms": 13000.0}
    kept = [e for e in traffic if all(_field(e, k) == v for k, v in filters.items())]
    by = "environment" if filters == {"environment": "staging"} else "router"
    segment = (lambda e: e["environment"]) if by == "environment" else (lambda e: e["router"]["id"])
    assert answer["tables_by"] == by
    # Requests per router and path, spend and counterfactual per router, requests per final tier.
    paths = Counter()
    for row in answer["request_series"]:
        paths[(row["router_id"], row["path"])] += row["requests"]
    since, until = routes.parse_window(q)
    args = routes._args(since, until)
    table = {r["segment"]: r for r in reader.rows(f"SELECT * FROM cost_summary({args}, by = '{by}')")}
    spend = Counter()
    for row in answer["spend_series"]:
        spend[row["router_id"]] += row["requests"]
        assert row["actual_cost_usd"] <= row["counterfactual_cost_usd"] + 1e-9
    assert sum(spend.values()) == len(kept)
    for seg in {segment(e) for e in kept}:
        assert table[seg]["requests"] == sum(1 for e in kept if segment(e) == seg)
    assert sum(r["actual_cost_usd"] for r in answer["spend_series"]) == pytest.approx(
        sum(r["actual_cost_usd"] for r in answer["cost"]), rel=1e-9)
    mix = Counter()
    for row in answer["mix_series"]:
        mix[(row["router_id"], row["final_tier"])] += row["requests"]
    assert sum(mix.values()) == len(kept)
    assert sum(r["requests"] for r in answer["mix"]) == len(kept)
    latency = {r["path_group"]: r["requests"] for r in answer["latency"]} if by == "environment" or filters else None
    if latency:
        assert latency["kept"] == sum(v for (_, p), v in paths.items() if p == "kept")
        assert latency["escalated"] == sum(v for (_, p), v in paths.items() if p == "escalated")
    # Terminal and passthrough attempts per router and tier equal the events'.
    tiers = Counter()
    for row in answer["tier_latency_series"]:
        tiers[(row["router_id"], row["tier"], row["outcome"])] += row["attempts"]
        assert row["latency_ms"][0] <= row["latency_ms"][1] <= row["latency_ms"][2]
    truth = attempts_truth(traffic, **filters)
    assert {k: v for k, v in tiers.items() if v} == {k: v for k, v in truth.items() if k[2] in ("accepted", "escalated")}


def test_a_p95_over_the_whole_range_is_the_figure_views(store, traffic):
    reader = routes.Reader(store)
    since, until = routes.parse_window(window(traffic))
    args = routes._args(since, until)
    minutes = int((until - since).total_seconds() // 60) + 120  # one bucket holds the range
    ours = {r["path"]: r["p"] for r in reader.rows(
        f"SELECT path, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_q) AS p FROM request_series({args}, step_minutes = {minutes}) "
        "WHERE router_id = 'series-west' AND path IN ('kept', 'escalated') GROUP BY path")}
    theirs = {r["path_group"]: r["latency_ms"] for r in reader.rows(f"SELECT * FROM request_latency({args}, by = 'router')")
              if r["segment"] == "series-west"}
    for path in ("kept", "escalated"):
        assert ours[path] == pytest.approx(theirs[path], rel=0.02), path


def test_the_filters_choices_list_the_routers_and_environments(store, traffic):
    answer = routes.routers(routes.Reader(store), window(traffic))
    assert answer["routers"] == list(ROUTERS) and answer["environments"] == list(ENVIRONMENTS)


def test_day_steps_read_the_daily_rollup_with_the_same_totals(store):
    """A page over more than a week draws whole days from the daily rollup: its buckets hold the same
    counts, spend and requests as the hourly ones summed to days (and escalation_series_step's)."""
    now = float(int(time.time()) // 60 * 60)
    evs = events(Profile(router_id="series-days", minutes=3 * 1440), 900, seed=47, now=now)
    store_events(store, evs)
    reader = routes.Reader(store)
    since, until = routes.parse_window({"since": "8d"})
    assert routes.console_step(since, until) == 1440
    args = routes._args(since, until)

    def by_day(view: str, columns: str, step: int) -> list[dict]:
        return reader.rows(f"SELECT toStartOfDay(bucket) AS day, {columns} FROM {view}({args}, step_minutes = {step}) "
                           "GROUP BY day ORDER BY day")

    for view, columns in (("attempt_series", "sum(attempts) AS n, round(sum(cost_usd), 9) AS c"),
                          ("request_series", "sum(requests) AS n, round(sum(counterfactual_cost_usd), 9) AS c"),
                          ("attempt_latency_series", "sum(attempts) AS n, 0 AS c")):
        days, hours = by_day(view, columns, 1440), by_day(view, columns, 60)
        assert days == hours and len(days) >= 3, view
    assert sum(r["n"] for r in by_day("request_series", "sum(requests) AS n", 1440)) == len(evs)
    ours = reader.rows(f"SELECT bucket, router_id, tier, category, sumIf(attempts, outcome = 'escalated') AS e, "
                       f"sumIf(attempts, outcome = 'accepted') AS a FROM attempt_series({args}, step_minutes = 1440) "
                       "GROUP BY bucket, router_id, tier, category HAVING e + a > 0 ORDER BY bucket, router_id, tier, category")
    theirs = reader.rows(f"SELECT minute AS bucket, router_id, tier, category, escalated AS e, accepted AS a "
                         f"FROM escalation_series_step({args}, step_minutes = 1440) ORDER BY minute, router_id, tier, category")
    assert ours == theirs


def test_the_per_side_canary_history_is_canary_series(store):
    """The console reads the raw canary results once (per canary) and sums them per side: the same
    rows as the canary_series view, rates NULL where nothing was answered."""
    import uuid

    from routerwatch.events.models import CanaryResult
    from routerwatch.ingest.sink import ClickHouseSink
    from routerwatch.prices import default_prices_file, load_prices
    from routerwatch.storage.rows import Located

    now = datetime.now(timezone.utc).replace(microsecond=0)
    results = []
    for i in range(90):
        error = "timeout" if i % 7 == 0 else None
        results.append(CanaryResult.model_validate({
            "event_id": str(uuid.uuid4()), "canary_id": f"c-{i % 3}", "run_id": f"run-{i // 3}",
            "occurred_at": (now - timedelta(minutes=90 - i)).isoformat(), "router_id": ROUTERS[i % 2], "category": "coding",
            "side": ("cheap", "strong")[i % 3 == 2], "expected_tier": "small", "observed_tier": None if error else ("small", "large")[i % 5 == 0],
            "tier_source": None if error else "header", "check_kind": "regex", "answer_passed": None if error else i % 4 != 0,
            "check_detail": None, "latency_ms": None if error else 100.0 + i, "error": error, "request_id": f"canary-{i}"}))
    ClickHouseSink(store, load_prices(default_prices_file())).store_batch("canary", [Located(r, 0, i) for i, r in enumerate(results)])
    reader = routes.Reader(store)
    query = {"since": (now - timedelta(hours=2)).isoformat(), "until": (now + timedelta(minutes=1)).isoformat()}
    answer = routes.canaries(reader, query)
    since, until = routes.parse_window(query)
    step = routes.console_step(since, until)
    view = reader.rows(f"SELECT * FROM canary_series({routes._args(since, until)}, step_minutes = {step}) ORDER BY bucket, router_id, side")
    assert len(view) > 10 and sum(r["probes"] for r in view) == len(results)
    assert answer["series"] == [{k: r[k] for k in answer["series"][0]} for r in view]
