"""Several routers are never pooled silently in `routerwatch report` (issue 17).

Two routers with tiers of the same names send traffic into one embedded store. Every section of
the report that pools tiers (scoreboard, latency, routing mix, cost, escalation reasons, failure
modes, quality, experiments, escalation series, tenants) is split by router, in text, JSON and
HTML, with each router's figures equal to its own events; the sections that cannot split say
which routers they pool. With one router nothing is split and nothing is said.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from uuid import uuid4

import pytest

from routerwatch.events.models import QualityFeedback, RoutingDecision
from routerwatch.ingest.sink import ClickHouseSink
from routerwatch.prices import default_prices_file, load_prices
from routerwatch.report.html import render_html
from routerwatch.report.scoreboard import TEXT_TITLES, build, render_json, render_text
from routerwatch.simulate import Profile, events
from routerwatch.storage import migrations
from routerwatch.storage.client import Store
from routerwatch.storage.migrations import default_sql_dir
from routerwatch.storage.rows import Located

pytestmark = pytest.mark.integration
MIGRATIONS = default_sql_dir() / "migrations"
NOW = float(int(time.time()) // 60 * 60)
SINCE = datetime.fromtimestamp(NOW - 2 * 3600, timezone.utc)
UNTIL = datetime.fromtimestamp(NOW + 600, timezone.utc)
EAST, WEST = "router-east", "router-west"
# The sections whose rows pool tiers: each is split by router (a router_id on every row).
SPLIT = ("tiers", "request_latency", "routing_mix", "cost", "escalation_reasons", "failure_modes", "quality",
         "experiment_slices", "experiment_mix", "experiment_mix_test", "escalation_series", "tenants")
ALWAYS_POOLED = {"gate_calibration", "gate_thresholds"}


@pytest.fixture
def store(session_chdb_path, names):
    with Store(f"chdb://{session_chdb_path}", names["database"]) as s:
        migrations.migrate_up(s, MIGRATIONS)
        yield s
        s.command(f"DROP DATABASE IF EXISTS `{names['database']}`")


def west_profile() -> Profile:
    """Same tier names as the default cascade, failing and escalating differently."""
    base = Profile(router_id=WEST, experiment_id="west-only-test")
    tiers = [t.model_copy(update={"failure_rate": 0.2, "failure_modes": {"rate_limited": 1.0},
                                  "escalation_reasons": {"schema_invalid": 1.0}}) for t in base.tiers]
    return base.model_copy(update={"tiers": tiers})


def store_events(store, evs: list[dict]) -> None:
    """The decisions and a served-answer grade of every third served one (quality, gate calibration)."""
    sink = ClickHouseSink(store, load_prices(default_prices_file()))
    decisions = [RoutingDecision.model_validate(e) for e in evs]
    sink.store_batch("decision", [Located(d, 0, i) for i, d in enumerate(decisions)])
    served = [d for d in decisions if d.final.served][::3]
    grades = [
        QualityFeedback.model_validate({
            "event_id": str(uuid4()), "request_id": d.request_id, "occurred_at": d.occurred_at + timedelta(minutes=5),
            "router_id": d.router.id, "target": "served", "score": float(i % 2), "passed": i % 2 == 1,
            "source": "grader", "grader": "test"})
        for i, d in enumerate(served)
    ]
    sink.store_batch("feedback", [Located(g, 0, i) for i, g in enumerate(grades)])


@pytest.fixture
def two_routers(store):
    east = events(Profile(router_id=EAST), 700, seed=81, now=NOW)
    west = events(west_profile(), 500, seed=82, now=NOW)
    store_events(store, east + west)
    return {EAST: east, WEST: west}


def attempt_counts(evs: list[dict]) -> Counter:
    return Counter((a["tier"], a["outcome"]) for e in evs for a in e["attempts"])


def test_every_pooling_section_is_split_by_router_with_each_routers_own_figures(store, two_routers):
    report = build(store, SINCE, UNTIL)
    assert report.routers == [EAST, WEST]
    assert set(report.pooled) == ALWAYS_POOLED and all(v == [EAST, WEST] for v in report.pooled.values())
    for key in SPLIT:
        rows = report.sections[key]
        assert rows, key
        assert {r["router_id"] for r in rows} == {EAST, WEST}, key
        assert all("segment" not in r for r in rows), key

    for router, evs in two_routers.items():
        truth = attempt_counts(evs)
        tiers = {r["tier"]: r for r in report.sections["tiers"] if r["router_id"] == router}
        for (tier, outcome), n in truth.items():
            assert tiers[tier][outcome] == n, (router, tier, outcome)
        cost = [r for r in report.sections["cost"] if r["router_id"] == router]
        assert [r["requests"] for r in cost] == [len(evs)]
        mix = [r for r in report.sections["routing_mix"] if r["router_id"] == router]
        assert sum(r["requests"] for r in mix) == len(evs)
        assert sum(r["share"] for r in mix) == pytest.approx(1.0)
        latency = {r["path_group"]: r for r in report.sections["request_latency"] if r["router_id"] == router}
        assert latency["all"]["requests"] == len(evs)

        failures = {(r["tier"], r["failure_mode"]): r for r in report.sections["failure_modes"] if r["router_id"] == router}
        fail_truth = Counter((a["tier"], a["failure_mode"]) for e in evs for a in e["attempts"] if a["outcome"] == "failed")
        assert {k: r["failures"] for k, r in failures.items()} == dict(fail_truth)
        for (tier, mode), row in failures.items():
            served_path = sum(n for (t, o), n in truth.items() if t == tier and o != "shadow")
            assert row["rate"] == pytest.approx(fail_truth[(tier, mode)] / served_path)

        reasons = Counter()
        for r in report.sections["escalation_reasons"]:
            if r["router_id"] == router:
                reasons[(r["tier"], r["escalation_reason"])] += r["escalations"]
        assert reasons == Counter((a["tier"], a["escalation_reason"]) for e in evs for a in e["attempts"]
                                  if a["outcome"] == "escalated")

        tenants = {r["tenant"]: r for r in report.sections["tenants"] if r["router_id"] == router}
        assert {t: r["requests"] for t, r in tenants.items()} == dict(Counter(e["tenant"] for e in evs))

        series = [r for r in report.sections["escalation_series"] if r["router_id"] == router]
        assert sum(r["escalated"] for r in series) == sum(n for (_, o), n in truth.items() if o == "escalated")

    # Rates are within a router: west's small tier fails far more often than east's.
    small = {r["router_id"]: r for r in report.sections["tiers"] if r["tier"] == "small"}
    assert small[WEST]["failure_rate"] > 3 * small[EAST]["failure_rate"]
    # The experiment of one router is tested on that router's traffic alone.
    assert {(r["router_id"], r["experiment_id"]) for r in report.sections["experiment_mix_test"]} == {
        (EAST, "gate-threshold-test"), (WEST, "west-only-test")}


def test_text_json_and_html_split_by_router_or_say_they_pool(store, two_routers):
    report = build(store, SINCE, UNTIL)
    data = json.loads(render_json(report))
    assert data["routers"] == [EAST, WEST]
    assert data["pools_routers"] == {key: [EAST, WEST] for key in ALWAYS_POOLED}
    for key in SPLIT:
        assert all(r["router_id"] in (EAST, WEST) for r in data[key]), key

    text = render_text(report)
    lines = text.splitlines()
    assert all(len(line) <= 120 for line in lines), max(lines, key=len)
    sections = _text_sections(text)
    for key in SPLIT:
        body = "\n".join(sections[TEXT_TITLES[key]])
        assert "router_id" in body and EAST in body and WEST in body, key
        assert "pools routers" not in body, key
    for key in ALWAYS_POOLED:
        assert f"pools routers {EAST}, {WEST}" in "\n".join(sections[TEXT_TITLES[key]]), key

    # Every section of the JSON report is in the text, under its title.
    for key in set(data) - {"since", "until", "by", "routers", "pools_routers"}:
        assert TEXT_TITLES[key] in sections, key

    page = render_html(report)
    assert page.count('class="note pooled"') == len(ALWAYS_POOLED)
    assert f'data-router="{EAST}"' in page and f'data-router="{WEST}"' in page  # escalation series lines


def test_a_segment_other_than_router_pools_routers_and_says_so(store, two_routers):
    report = build(store, SINCE, UNTIL, by="category")
    pooled = {"tiers", "request_latency", "routing_mix", "cost", "quality"} | ALWAYS_POOLED
    assert set(report.pooled) == pooled
    text = render_text(report)
    sections = _text_sections(text)
    for key in pooled:
        assert f"pools routers {EAST}, {WEST}" in "\n".join(sections[TEXT_TITLES[key]]), key
    # The views without `by` are split by router whatever the segment.
    assert {r["router_id"] for r in report.sections["failure_modes"]} == {EAST, WEST}
    assert all(len(line) <= 120 for line in text.splitlines())

    by_router = build(store, SINCE, UNTIL, by="router")
    assert set(by_router.pooled) == ALWAYS_POOLED
    assert {r["segment"] for r in by_router.sections["tiers"]} == {EAST, WEST}


def test_one_router_is_not_split_and_says_nothing_of_pooling(store):
    evs = events(Profile(router_id=EAST), 300, seed=83, now=NOW)
    store_events(store, evs)
    report = build(store, SINCE, UNTIL)
    assert report.routers == [EAST] and report.pooled == {}
    assert all("segment" in r for r in report.sections["tiers"])
    text = render_text(report)
    assert "pools routers" not in text and "router_id" not in text
    assert sum(r["requests"] for r in report.sections["routing_mix"]) == 300


def _text_sections(text: str) -> dict[str, list[str]]:
    """Title line -> the lines under it, up to the next blank-line-separated title."""
    titles = set(TEXT_TITLES.values())
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line in titles:
            current = line
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return out

