"""The HTML report's over-time charts have buckets that fit their range, on a real store.

Known traffic goes into an embedded store; `build` and `render_html` make the page the CLI writes.
The escalation chart must have one point per (tier, non-empty bucket) of the step the one chart
rule (:func:`chart_step`, the console's rule too) gives: 5 minutes over the default 24 hours,
1 minute over an hour, and, when traffic covers only the last hour of a 24-hour report (the demo),
the step of that hour rather than two hourly buckets stretched across the plot. Canary probes
over a few minutes of a 24-hour report draw a sparkline, not one dot.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from routerwatch.events.models import CanaryResult, RoutingDecision
from routerwatch.ingest.sink import ClickHouseSink
from routerwatch.prices import default_prices_file, load_prices
from routerwatch.report.html import render_html
from routerwatch.report.scoreboard import build, chart_step, parse_range
from routerwatch.simulate import Profile, events
from routerwatch.storage import migrations
from routerwatch.storage.client import Store
from routerwatch.storage.migrations import default_sql_dir
from routerwatch.storage.rows import Located

pytestmark = pytest.mark.integration
MIGRATIONS = default_sql_dir() / "migrations"
# "Now" as the CLI sees it: seconds past the minute, as `report` run by hand has.
NOW = datetime.fromtimestamp(int(time.time()) // 60 * 60 - 60 + 17.5, timezone.utc)
ROUTER = "steps-router"


@pytest.fixture
def store(session_chdb_path, names):
    with Store(f"chdb://{session_chdb_path}", names["database"]) as s:
        migrations.migrate_up(s, MIGRATIONS)
        yield s
        s.command(f"DROP DATABASE IF EXISTS `{names['database']}`")


def store_traffic(store, minutes: float, requests: int, seed: int) -> list[RoutingDecision]:
    """``requests`` simulated decisions over the ``minutes`` before NOW."""
    evs = events(Profile(router_id=ROUTER, minutes=minutes), requests, seed=seed, now=NOW.timestamp() - 1)
    decisions = [RoutingDecision.model_validate(e) for e in evs]
    ClickHouseSink(store, load_prices(default_prices_file())).store_batch(
        "decision", [Located(d, 0, i) for i, d in enumerate(decisions)])
    return decisions


def non_empty_buckets(decisions: list[RoutingDecision], step: int) -> dict[str, set[int]]:
    """Per tier, the epoch-aligned buckets of ``step`` minutes with an accepted or escalated attempt."""
    out: dict[str, set[int]] = defaultdict(set)
    for d in decisions:
        bucket = int(d.occurred_at.timestamp()) // (step * 60)
        for a in d.attempts:
            if a.outcome in ("accepted", "escalated"):
                out[a.tier].add(bucket)
    return out


def escalation_chart(page: str) -> tuple[str, dict[str, list[tuple[float, float]]], int]:
    """The escalation plot's <svg> tag, its vertices per tier and its point marks (circles)."""
    start = page.index('data-plot="escalation-series"')
    body = page[page.rindex("<svg", 0, start):page.index("</svg>", start)]
    lines = {}
    for attrs in re.findall(r"<polyline\b([^>]*)>", body):
        tier = re.search(r'data-tier="([^"]*)"', attrs).group(1)
        points = re.search(r'points="([^"]*)"', attrs).group(1).split()
        lines[tier] = [tuple(map(float, p.split(","))) for p in points]
    return body[: body.index(">") + 1], lines, len(re.findall(r"<circle\b", body))


def assert_points_match(page: str, decisions: list[RoutingDecision], step: int) -> None:
    svg, lines, circles = escalation_chart(page)
    assert f'data-step-minutes="{step}"' in svg, svg
    want = non_empty_buckets(decisions, step)
    assert {tier: len(points) for tier, points in lines.items()} == {tier: len(b) for tier, b in want.items()}
    total = sum(len(b) for b in want.values())
    assert circles in (0, total), "point marks, when drawn, are one per point"
    for points in lines.values():
        xs = [x for x, _ in points]
        assert xs == sorted(xs) and len(set(xs)) == len(xs)


def test_24_hours_of_traffic_over_the_default_range_in_5_minute_buckets(store):
    decisions = store_traffic(store, minutes=24 * 60 - 2, requests=1500, seed=11)
    since, until = parse_range(None, None, now=NOW)  # the CLI's default: the last 24 hours
    assert chart_step(since, until) == 5
    report = build(store, since, until)
    assert report.step("escalation_series") == 5
    assert_points_match(render_html(report), decisions, 5)
    # Enough buckets to read a trend: the 24 hours give about 288 of them.
    assert 250 <= len(non_empty_buckets(decisions, 5)["small"]) <= 290


def test_1_hour_of_traffic_over_an_hour_in_1_minute_buckets(store):
    decisions = store_traffic(store, minutes=58, requests=600, seed=12)
    since, until = parse_range("1h", None, now=NOW)
    assert chart_step(since, until) == 1
    report = build(store, since, until)
    assert report.step("escalation_series") == 1
    assert_points_match(render_html(report), decisions, 1)


def test_an_hour_of_traffic_in_a_24_hour_report_is_drawn_at_that_hours_step(store):
    """The demo: one hour of traffic, the default 24-hour range. Not two hourly buckets across the plot."""
    decisions = store_traffic(store, minutes=58, requests=600, seed=13)
    since, until = parse_range(None, None, now=NOW)
    report = build(store, since, until)
    assert report.step("escalation_series") == 1
    page = render_html(report)
    assert_points_match(page, decisions, 1)
    assert "traffic only" in page[page.index('data-plot="escalation-series"'):]
    # Every figure still counts all of the range's traffic.
    escalated = sum(a.outcome == "escalated" for d in decisions for a in d.attempts)
    assert sum(r["escalated"] for r in report.sections["escalation_series"]) == escalated


def test_canary_probes_over_a_few_minutes_draw_a_sparkline(store):
    """Probes every 15 s for 4 minutes (the demo's first minutes) in a 24-hour report: several buckets, a line."""
    sink = ClickHouseSink(store, load_prices(default_prices_file()))
    first = NOW.replace(second=0, microsecond=0) - timedelta(minutes=5)
    probes = []
    for i in range(16):
        at = first + timedelta(seconds=15 * i)
        probes.append(CanaryResult.model_validate({
            "event_id": str(uuid.uuid4()), "canary_id": "greeting", "run_id": f"run-{i}", "occurred_at": at,
            "router_id": ROUTER, "category": "chitchat", "side": "cheap", "expected_tier": "small",
            "observed_tier": "small", "tier_source": "header", "check_kind": "regex", "answer_passed": i % 5 != 0,
            "latency_ms": 300.0, "request_id": f"canary-{i}"}))
    sink.store_batch("canary", [Located(p, 0, i) for i, p in enumerate(probes)])
    since, until = parse_range(None, None, now=NOW)
    report = build(store, since, until)
    assert report.step("canary_series") == 1
    page = render_html(report)
    (spark,) = re.findall(r'<svg class="sparkline"[^>]*>.*?</svg>', page, re.S)
    assert re.search(r'data-buckets="([^"]*)"', spark).group(1).split() == [
        (first + timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%S") for m in range(4)]
    (path,) = re.findall(r'<path class="spark"[^>]*\bd="M([^"]*)"', spark)
    xs = [float(p.split(",")[0]) for p in path.split(" L")]
    assert len(xs) == 4 and xs == sorted(xs) and xs[-1] - xs[0] > 100, "a line across the sparkline"
