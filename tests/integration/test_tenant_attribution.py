"""Drift alarms carried by one tenant's batch are held, on the real embedded ClickHouse.

At a crossing, a category's escalation CUSUM asks for the window's attempts by
tenant (``series.tenant_breakdown``, read from the raw ``attempts`` table) and
holds the alarm when one tenant's batch carried the evidence
(``routerwatch.drift.attribution``). Checked here end to end, no fakes:

- the breakdown returns exactly the per-tenant (escalated, accepted + escalated)
  counts of the stored events of one router and tier, with the category filter and
  the ``[since, until)`` bounds, and agrees with the rollup ``escalation_series``
  (canary probes excluded from both);
- one scheduler tick (``evaluate``) over three routers with the same baseline
  (20 tenants, 40 requests a minute at 15 % escalations, two hours) and the same
  category-level rise in the incident hour (about 15 % -> 44 % at 3.5x the volume):
  carried by one tenant's batch it is held (and would page without the
  attribution); spread over every tenant it pages; spread over every tenant while one
  tenant sends three quarters of the traffic it still pages.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from routerwatch.config import SchedulerSettings
from routerwatch.drift.rate_drift import DriftConfig, detect_rate_drift
from routerwatch.events.models import RoutingDecision
from routerwatch.ingest.sink import ClickHouseSink
from routerwatch.prices import default_prices_file, load_prices
from routerwatch.scheduler import series
from routerwatch.scheduler.baselines import series_key
from routerwatch.scheduler.evaluate import evaluate, learn_all
from routerwatch.simulate import Profile, TierProfile, events
from routerwatch.storage import migrations
from routerwatch.storage.client import Store
from routerwatch.storage.migrations import default_sql_dir
from routerwatch.storage.rows import Located

pytestmark = pytest.mark.integration
MIGRATIONS = default_sql_dir() / "migrations"
MINUTE = timedelta(minutes=1)
GATED = ("accepted", "escalated")

# Scheduler scenario: baseline [T0 - 2 h, T0), incident [T0, NOW), the tick evaluates as of NOW.
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)
NOW = T0 + timedelta(minutes=60)
BASELINE_MINUTES = 120
NORMAL_PER_MINUTE = 40  # 20 tenants x 2 requests a minute
BATCH_PER_MINUTE = 100  # one tenant's batch: 2.5x the category's normal volume
NORMAL_RATE, BATCH_RATE = 0.15, 0.55
# The same category-level incident spread over every tenant: as many requests and escalations a minute.
SHARED_RATE = (NORMAL_PER_MINUTE * NORMAL_RATE + BATCH_PER_MINUTE * BATCH_RATE) / (NORMAL_PER_MINUTE + BATCH_PER_MINUTE)
BATCH_TENANT, HEAVY_TENANT = "t07", "t00"
CFG = SchedulerSettings(auto_baseline=False, lookback_minutes=90, min_volume=1.0)

# Breakdown scenario: its own routers and hour.
T_MIX = datetime(2026, 3, 3, 9, 0, tzinfo=timezone.utc)


# ---------------------------------------------------------------------------------------------
# Traffic
# ---------------------------------------------------------------------------------------------


def one_category(router: str, rate: float, minutes: int) -> Profile:
    """billing only, entering the small tier (escalation ``rate``) with the large one above it; no failures,
    shadow slice, experiment or grades: every request has exactly one gated attempt at the small tier."""
    small = TierProfile(name="small", rank=0, model="small-8b", provider="acme", fallback_provider="acme-eu",
                        price_in_per_1k=0.00015, price_out_per_1k=0.0006, latency_median_ms=450, failure_rate=0.0,
                        escalation_rate={"billing": rate})
    large = TierProfile(name="large", rank=1, model="large-frontier", provider="initech", fallback_provider="globex",
                        price_in_per_1k=0.005, price_out_per_1k=0.015, latency_median_ms=4200, failure_rate=0.0)
    return Profile(router_id=router, tiers=[small, large], categories={"billing": 1.0}, entry_rank_by_category={},
                   experiment_id=None, shadow_share=0.0, feedback_share=0.0, minutes=minutes)


def decisions(profile: Profile, n: int, seed: int, end: datetime,
              tenant_of: Callable[[int], str | None] | None = None) -> list[RoutingDecision]:
    """``n`` simulated decisions spread evenly over the profile's minutes before ``end``, tenants re-assigned."""
    out = [RoutingDecision.model_validate(e) for e in events(profile, n, seed, now=end.timestamp())]
    if tenant_of is None:
        return out
    return [d.model_copy(update={"tenant": tenant_of(i)}) for i, d in enumerate(out)]


def round_robin(i: int) -> str:
    return f"t{i % 20:02d}"


def heavy(i: int) -> str:
    """Three requests in four from HEAVY_TENANT, the rest round robin over 19 others."""
    return HEAVY_TENANT if i % 4 else f"t{1 + (i // 4) % 19:02d}"


def expected_breakdown(evs: list[RoutingDecision], router: str, tier: str, categories: list[str] | None,
                       since: datetime, until: datetime) -> dict[str, dict[str, tuple[int, int]]]:
    """tenant -> category -> (escalated, accepted + escalated) attempts at ``tier``, from the event objects."""
    out: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for d in evs:
        if d.router.id != router or d.canary_id or not since <= d.occurred_at < until:
            continue
        if categories is not None and d.category not in categories:
            continue
        for a in d.attempts:
            if a.tier == tier and a.outcome.value in GATED:
                cell = out[d.tenant or ""][d.category]
                cell[0] += a.outcome.value == "escalated"
                cell[1] += 1
    return {t: {c: (x, n) for c, (x, n) in cats.items()} for t, cats in out.items()}


def store_all(sink: ClickHouseSink, evs: list[RoutingDecision]) -> None:
    for start in range(0, len(evs), 5000):
        chunk = evs[start:start + 5000]
        sink.store_batch("decision", [Located(d, 0, i) for i, d in enumerate(chunk)])


@pytest.fixture(scope="module")
def store(session_chdb_path):
    database = f"db_{uuid.uuid4().hex[:10]}"
    with Store(f"chdb://{session_chdb_path}", database) as s:
        migrations.migrate_up(s, MIGRATIONS)
        yield s
        s.command(f"DROP DATABASE IF EXISTS `{database}`")


@pytest.fixture(scope="module")
def sink(store):
    return ClickHouseSink(store, load_prices(default_prices_file()))


@pytest.fixture(scope="module")
def tag() -> str:
    # Router names unique to this run: the scheduler caches breakdowns by router, tier and window.
    return uuid.uuid4().hex[:8]


# ---------------------------------------------------------------------------------------------
# 1. The breakdown itself
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mix(store, sink, tag):
    """Default three-tier, four-category traffic (failures, shadow slice, Pareto tenants) on two routers
    in the same half hour, some requests without a tenant, and four copies at the window's edges."""
    router, other = f"mix-{tag}", f"other-{tag}"
    since, until = T_MIX - timedelta(minutes=20), T_MIX - timedelta(minutes=5)
    evs = decisions(Profile(router_id=router, minutes=30, shadow_share=0.1), 1500, 41, T_MIX)
    evs = [d.model_copy(update={"tenant": None}) if i % 37 == 0 else d for i, d in enumerate(evs)]
    evs += decisions(Profile(router_id=other, minutes=30), 600, 42, T_MIX)
    gated_small = [d for d in evs if d.router.id == router and d.category == "billing"
                   and any(a.tier == "small" and a.outcome.value in GATED for a in d.attempts)]
    edges = [since - timedelta(milliseconds=1), since, until - timedelta(milliseconds=1), until]
    evs += [d.model_copy(update={"event_id": uuid.uuid4(), "request_id": f"edge-{k}", "occurred_at": at, "tenant": "edge"})
            for k, (d, at) in enumerate(zip(gated_small, edges))]
    store_all(sink, evs)
    return router, evs, since, until


@pytest.mark.parametrize("tier", ["small", "medium", "large"])
@pytest.mark.parametrize("categories", [None, ["billing"], ["billing", "legal"], ["no-such-category"]])
def test_tenant_breakdown_counts_the_gated_attempts_of_one_tier_by_tenant_and_category(store, mix, tier, categories):
    router, evs, since, until = mix
    got = series.tenant_breakdown(store, router, tier, categories, since, until)
    want = expected_breakdown(evs, router, tier, categories, since, until)
    assert got == want
    if categories == ["no-such-category"]:
        assert got == {}
        return
    assert got, "gated attempts of this tier in the window"
    if categories is None and tier != "large":
        assert len(got) >= 5, "Pareto tenants: several of them in the window"
    if tier != "large":
        assert any(x > 0 for cats in got.values() for x, _ in cats.values()), "some escalations at this tier"
    if tier == "small":
        # Copies at since - 1 ms, since, until - 1 ms and until: the two inside [since, until) only.
        assert got["edge"] == {"billing": expected_breakdown(
            [d for d in evs if d.tenant == "edge"], router, tier, None, since, until)["edge"]["billing"]}
        assert got["edge"]["billing"][1] == 2
    # The same attempts as the rollup series the CUSUM folds, per category.
    rollup = series.escalation_series(store, since, until)
    for (r, t, category), counts in rollup.items():
        if r != router or t != tier or (categories is not None and category not in categories):
            continue
        per_tenant = [cats[category] for cats in got.values() if category in cats]
        assert (sum(x for x, _ in per_tenant), sum(n for _, n in per_tenant)) == (
            sum(c.successes for c in counts), sum(c.trials for c in counts)), category


def test_the_hour_series_the_hourly_cusum_folds_sums_the_minute_series(store, mix):
    # escalation_hour_series (hourly rollup, what the scheduler passes the hourly CUSUM) must count the
    # same gated attempts as escalation_series (minute rollup), hour by hour.
    router, _evs, _since, _until = mix
    since, until = T_MIX - timedelta(hours=2), T_MIX + timedelta(hours=1)
    minutes = series.escalation_series(store, since, until)
    hours = series.escalation_hour_series(store, since, until)
    mine = {k: v for k, v in hours.items() if k[0] == router}
    assert mine, "the mix router's series are in the hourly rollup"
    for key, rows in mine.items():
        by_hour: dict = {}
        for c in minutes[key]:
            if c.trials:
                hr = c.minute.replace(minute=0)
                x, n = by_hour.get(hr, (0, 0))
                by_hour[hr] = (x + c.successes, n + c.trials)
        assert {hr: (x, n) for hr, x, n in rows} == by_hour, key


def test_tenant_breakdown_keeps_requests_without_a_tenant_and_reads_only_its_router(store, mix):
    router, evs, since, until = mix
    got = series.tenant_breakdown(store, router, "small", None, since, until)
    assert "" in got and got[""] == expected_breakdown(
        [d for d in evs if d.tenant is None], router, "small", None, since, until)[""]
    assert series.tenant_breakdown(store, router, "small", None, until + timedelta(hours=1),
                                   until + timedelta(hours=2)) == {}
    everything = series.tenant_breakdown(store, router, "small", None, since - timedelta(hours=1), until + timedelta(hours=1))
    assert sum(n for cats in everything.values() for _, n in cats.values()) == sum(
        1 for d in evs if d.router.id == router for a in d.attempts if a.tier == "small" and a.outcome.value in GATED)


def test_canary_probes_are_not_counted_in_the_breakdown(store, sink, tag):
    router = f"canary-{tag}"
    evs = decisions(Profile(router_id=router, minutes=30), 400, 43, T_MIX)
    probes = [d.model_copy(update={"event_id": uuid.uuid4(), "request_id": f"probe-{i}", "canary_id": "probe-billing"})
              for i, d in enumerate(evs[:60])]
    store_all(sink, evs + probes)
    since, until = T_MIX - timedelta(minutes=30), T_MIX
    got = series.tenant_breakdown(store, router, "small", None, since, until)
    assert got == expected_breakdown(evs + probes, router, "small", None, since, until)


# ---------------------------------------------------------------------------------------------
# 2. The scheduler: one tenant's batch is held, a shift of every tenant pages
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tick(store, sink, tag):
    """Three routers' baseline and incident stored; baselines learned (learn_all); one tick as of NOW."""
    routers = {"batch": f"batch-{tag}", "shared": f"shared-{tag}", "heavy": f"heavy-{tag}"}
    baseline_n = NORMAL_PER_MINUTE * BASELINE_MINUTES
    incident_n = NORMAL_PER_MINUTE * 60
    evs: dict[str, list[RoutingDecision]] = {}
    b = routers["batch"]
    evs["batch"] = (
        decisions(one_category(b, NORMAL_RATE, BASELINE_MINUTES), baseline_n, 101, T0, round_robin)
        + decisions(one_category(b, NORMAL_RATE, 60), incident_n, 102, NOW, round_robin)
        + decisions(one_category(b, BATCH_RATE, 60), BATCH_PER_MINUTE * 60, 103, NOW, lambda i: BATCH_TENANT)
    )
    total_n = (NORMAL_PER_MINUTE + BATCH_PER_MINUTE) * 60
    for name, seed, tenant_of in (("shared", 201, round_robin), ("heavy", 301, heavy)):
        r = routers[name]
        evs[name] = (
            decisions(one_category(r, NORMAL_RATE, BASELINE_MINUTES), baseline_n, seed, T0, tenant_of)
            + decisions(one_category(r, SHARED_RATE, 60), total_n, seed + 1, NOW, tenant_of)
        )
    store_all(sink, [d for v in evs.values() for d in v])
    learned = learn_all(store, T0 - timedelta(minutes=BASELINE_MINUTES), T0, CFG.baseline_min_trials)
    baselines = {(signal, series_key(b.labels)): b for signal, found in learned.items() for b in found}
    for r in routers.values():
        assert ("escalation_drift", series_key({"router": r, "tier": "small", "category": "billing"})) in baselines
    evaluation = evaluate(store, dict(baselines), NOW, CFG)
    assert evaluation.errors == []
    return routers, evs, baselines, evaluation


def verdict(evaluation, signal: str, **labels: str):
    (found,) = [v for v in evaluation.verdicts if v.signal.value == signal and v.labels == labels]
    return found


def category_up(routers, evaluation, name: str):
    return verdict(evaluation, "escalation_drift", router=routers[name], tier="small", category="billing", direction="up")


def test_the_incident_hours_carry_the_same_category_level_rise(store, tick):
    """Sanity of the scenario: the three routers show the same volume and rate in the incident hour."""
    routers, _, baselines, _ = tick
    incident = series.escalation_series(store, T0, NOW)
    rates = {}
    for name, r in routers.items():
        counts = incident[(r, "small", "billing")]
        x, n = sum(c.successes for c in counts), sum(c.trials for c in counts)
        assert n == (NORMAL_PER_MINUTE + BATCH_PER_MINUTE) * 60
        rates[name] = x / n
        p0 = baselines[("escalation_drift", series_key({"router": r, "tier": "small", "category": "billing"}))].p0
        assert abs(p0 - NORMAL_RATE) < 0.03
    assert all(abs(rate - SHARED_RATE) < 0.03 for rate in rates.values()), rates


def test_one_tenants_batch_is_held_not_paged(store, tick):
    routers, evs, baselines, evaluation = tick
    router = routers["batch"]
    v = category_up(routers, evaluation, "batch")
    assert v.status.value == "ok" and v.statistic is not None
    assert not v.firing, v.description
    held = v.extra["held_alarms"]
    assert held, "the crossings are reported as held"
    assert {h["tenant"] for h in held} == {BATCH_TENANT}
    assert f"tenant {BATCH_TENANT}" in v.description
    for h in held:
        at, since = datetime.fromisoformat(h["at"]), datetime.fromisoformat(h["since"])
        assert T0 - timedelta(minutes=10) <= since <= at < NOW
        assert h["tenant_share"] > 0.5
        assert h["provisional"] or h["rest_evidence"] < h["rest_needed"]
        # The hold was judged on the stored attempts of the window [since, at + 1 min).
        window = expected_breakdown(evs["batch"], router, "small", ["billing"], since, at + MINUTE)
        assert h["tenant_trials"] == window[BATCH_TENANT]["billing"][1]
        assert h["window_trials"] == sum(cats["billing"][1] for cats in window.values())

    # The same detector on the same counts without the breakdown pages: the hold is what keeps it quiet.
    key = series_key({"router": router, "tier": "small", "category": "billing"})
    baseline = baselines[("escalation_drift", key)]
    counts = series.escalation_series(store, NOW - timedelta(minutes=CFG.lookback_minutes), NOW)[(router, "small", "billing")]
    # With an hourly CUSUM beside it the minute CUSUM was designed for twice the series' ARL0 (half the budget).
    arl0 = v.extra["arl0_target"] / (2 if "hourly" in v.extra else 1)
    config = DriftConfig(delta=CFG.escalation_delta, arl0_minutes=arl0, min_volume=CFG.min_volume,
                         overdispersion=True)
    labels = {"router": router, "tier": "small", "category": "billing"}
    unattributed = {u.labels["direction"]: u for u in detect_rate_drift(baseline, counts, now=NOW, config=config, labels=labels)}
    assert unattributed["up"].threshold == v.threshold, "the control is the scheduler's design"
    assert unattributed["up"].firing and unattributed["up"].extra["held_alarms"] == []
    # ... and with the breakdown read straight from the store, the scheduler's verdict.
    direct = {u.labels["direction"]: u for u in detect_rate_drift(
        baseline, counts, now=NOW, config=config, labels=labels,
        tenants=lambda s, u: series.tenant_breakdown(store, router, "small", ["billing"], s, u))}
    assert not direct["up"].firing and direct["up"].extra["held_alarms"] == held


def test_the_batch_is_held_at_the_tier_and_surge_level_too_and_left_to_the_tenant_signal(tick):
    routers, _, _, evaluation = tick
    router = routers["batch"]
    for v in (verdict(evaluation, "escalation_drift", router=router, tier="small", scope="tier", direction="up"),
              verdict(evaluation, "escalation_surge", router=router, tier="small", direction="up")):
        assert not v.firing, (v.signal, v.description)
        assert v.extra["held_alarms"] and {h["tenant"] for h in v.extra["held_alarms"]} == {BATCH_TENANT}
    assert not [v for v in evaluation.firing if v.labels.get("router") == router and v.signal.value != "tenant_anomaly"]
    anomalies = [v for v in evaluation.firing if v.signal.value == "tenant_anomaly" and v.labels.get("router") == router]
    assert [v.labels.get("tenant") for v in anomalies] == [BATCH_TENANT]


def test_a_rise_shared_by_every_tenant_pages(tick):
    routers, _, _, evaluation = tick
    v = category_up(routers, evaluation, "shared")
    assert v.firing, v.description
    assert v.extra["held_alarms"] == []
    assert T0 - timedelta(minutes=5) <= v.change_start <= T0 + timedelta(minutes=5)
    router = routers["shared"]
    assert verdict(evaluation, "escalation_drift", router=router, tier="small", scope="tier", direction="up").firing
    assert verdict(evaluation, "escalation_surge", router=router, tier="small", direction="up").firing
    assert not [v for v in evaluation.firing if v.signal.value == "tenant_anomaly" and v.labels.get("router") == router]


def test_a_rise_shared_by_every_tenant_pages_when_one_tenant_sends_most_of_the_traffic(store, tick):
    routers, evs, _, evaluation = tick
    router = routers["heavy"]
    window = expected_breakdown(evs["heavy"], router, "small", ["billing"], T0, NOW)
    assert window[HEAVY_TENANT]["billing"][1] == 0.75 * sum(cats["billing"][1] for cats in window.values())
    v = category_up(routers, evaluation, "heavy")
    assert v.firing, v.description
    # At most a provisional hold (judged again on fresh evidence): never a hold of a shift the rest shows too.
    assert all(h["provisional"] and h["tenant"] == HEAVY_TENANT for h in v.extra["held_alarms"]), v.extra["held_alarms"]
    assert T0 - timedelta(minutes=5) <= v.change_start <= T0 + timedelta(minutes=10)
