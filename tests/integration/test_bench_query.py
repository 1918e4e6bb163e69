"""The query benchmark (bench/perf/query.py) on a tiny generated store: its shape, not its figures.

The generator must produce the traffic the report reads (routers, tiers with ranks, categories,
outcomes, failure modes, experiments, grades, canary probes kept out of the rollups) with every
rollup level agreeing with the raw tables; the benchmark must time every report query and
cookbook query over each range, with a raw-scan baseline where a rollup does the work.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.perf import query  # noqa: E402
from bench.perf.common import Context  # noqa: E402
from routerwatch.report import scoreboard  # noqa: E402
from routerwatch.storage.client import Store  # noqa: E402
from routerwatch.storage.migrations import default_sql_dir, migrate_up  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    store = Store(f"chdb://{tmp_path_factory.mktemp('gen') / 'store'}", "routerwatch").start()
    try:
        migrate_up(store, default_sql_dir() / "migrations")
        gen = query.generate(store, 20_000, log=lambda _: None)
        facts = {
            "attempts": store.query(
                "SELECT uniqExact(router_id), uniqExact(category), groupUniqArray((tier, tier_rank)), "
                "groupUniqArray(outcome), uniqExact(failure_mode), groupUniqArray((experiment_id, experiment_variant)), "
                "countIf(canary_id != ''), min(occurred_at), max(occurred_at) FROM attempts").rows[0],
            "decisions": store.query(
                "SELECT count(), sum(attempt_count), countIf(served), countIf(escalation_count > 0) FROM decisions").rows[0],
            "grades": store.query("SELECT groupUniqArray(target), count() FROM feedback").rows[0],
            "levels": store.query(
                "SELECT (SELECT sum(attempts) FROM attempt_minute), (SELECT sum(attempts) FROM attempt_hour), "
                "(SELECT sum(attempts) FROM attempt_day), (SELECT count() FROM attempts WHERE canary_id = ''), "
                "(SELECT sum(requests) FROM request_day), (SELECT count() FROM decisions WHERE canary_id = ''), "
                "(SELECT sum(requests) FROM tenant_day)").rows[0],
            "canaries": store.query("SELECT uniqExact(canary_id), uniqExact(side) FROM canary_results").rows[0],
        }
    finally:
        store.stop()
    return gen, facts


def test_generated_traffic_has_the_shape_the_report_reads(generated):
    gen, facts = generated
    routers, categories, tiers, outcomes, modes, experiments, canary_attempts, first, last = facts["attempts"]
    assert routers == len(query.ROUTERS) and categories == len(query.CATEGORIES)
    assert sorted(tiers, key=lambda t: t[1]) == [("small", 0), ("medium", 1), ("large", 2)]
    assert set(outcomes) == {"accepted", "escalated", "failed", "shadow"}
    assert modes >= 6  # '' plus the tiers' failure modes
    assert {e for e, _ in experiments} == {"", "gate-threshold-test", "entry-rank-test"}
    assert canary_attempts > 0
    assert (last - first).days >= query.DAYS - 1
    requests, attempt_sum, served, escalated = facts["decisions"]
    assert requests == gen.decisions and attempt_sum == gen.attempts > requests
    assert 0.9 < served / requests <= 1 and 0.05 < escalated / requests < 0.6
    targets, grades = facts["grades"]
    assert set(targets) == {"served", "rejected", "shadow"} and grades == gen.feedback > 0
    assert facts["canaries"] == (len(query.CANARIES), 2)


def test_every_rollup_level_holds_the_raw_counts(generated):
    minute, hour, day, raw, requests_day, raw_requests, tenant_day = generated[1]["levels"]
    assert minute == hour == day == raw
    assert requests_day == raw_requests == tenant_day


@pytest.fixture(scope="module")
def section(tmp_path_factory):
    ctx = Context(kafka="", workdir=tmp_path_factory.mktemp("bench-query"), quick=True, repeats=1)
    return query.run(ctx, rows=20_000)


def test_every_report_query_and_cookbook_query_is_timed_over_each_range(section):
    figures = {c.figure for c in section.comparisons}
    keys = [key for key, _, _ in scoreboard.queries(datetime(2026, 1, 2), datetime(2026, 1, 3))]
    for label, _ in query.RANGES:
        for key in keys:
            assert f"report {key}, {label}" in figures
    for path in sorted((ROOT / "sql/queries").glob("*.sql")):
        assert any(f.startswith(f"cookbook {path.stem}, ") for f in figures), path.stem
    assert sum(f.startswith("routerwatch report (text") for f in figures) == 2
    assert section.name == "query" and section.setup and section.details


def test_rollup_figures_have_a_raw_scan_baseline_and_the_one_second_goal(section):
    for c in section.comparisons:
        assert c.routerwatch.unit == "ms" and len(c.routerwatch.values) == 1 and c.routerwatch.median > 0
        assert c.higher_is_better is False and c.met in (True, False)
        raw_by_design = any(name in c.figure for name in ("dead_letter", "canar"))
        assert (c.baseline is None) == raw_by_design, c.figure
        if c.baseline is not None:
            assert c.ratio is not None and c.ratio > 0
