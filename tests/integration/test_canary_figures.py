"""Canary figures (migration 0007), through the real pipeline, against ground truth computed here.

Canary results and the routing decisions of the probes go through the SDK, Kafka and the real
`routerwatch serve` into chDB, beside ordinary production traffic of the same router. Every
figure of the canary views is recomputed in plain Python from the very events sent: counts,
rates, modes and (exact) quantiles must match exactly. The probes' routing decisions must be
visible in the canary views and in none of the production figures.
"""

from __future__ import annotations

import html
import json
import math
import random
import re
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
from servicekit import REPO, Env

from routerwatch.report.scoreboard import SECTIONS, text_cell, fmt_value, canary_step
from routerwatch.sdk import RouterWatch, SdkConfig
from routerwatch.simulate import Profile, emit, events

pytestmark = pytest.mark.integration

NOW = float(int(time.time()) // 60 * 60)  # whole minute: windows below cut on minute edges
SINCE_TS, UNTIL_TS = NOW - 4 * 3600, NOW + 3600
SINCE = datetime.fromtimestamp(SINCE_TS, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
UNTIL = datetime.fromtimestamp(UNTIL_TS, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
RANGE = f"since = '{SINCE}', until = '{UNTIL}'"

ROUTER, OTHER_ROUTER = "canary-router", "canary-router-b"
RANK = {"small": 0, "medium": 1, "large": 2}
MODEL = {"small": "small-8b", "medium": "medium-70b", "large": "large-frontier"}
# (router, canary_id, side, category, expected tier, chance of no answer)
CANARIES = [
    (ROUTER, "refund-policy", "cheap", "billing", "small", 0.1),
    (ROUTER, "greeting", "cheap", "chitchat", "small", 0.05),
    (ROUTER, "contract-clause", "strong", "legal", "large", 0.1),
    (ROUTER, "proof-sketch", "strong", "coding", "large", 0.1),
    (ROUTER, "dead-endpoint", "strong", "coding", "large", 1.0),  # never answered: rates are NULL
    (OTHER_ROUTER, "refund-policy", "cheap", "billing", "small", 0.2),
]
# Keys of `routerwatch report --format json` before the canary section: they must not change.
REPORT_KEYS = {"since", "until", "by", "routers", "pools_routers", "experiment_mix_test", "gate_thresholds"} | {
    key for key, *_ in SECTIONS if key != "canaries"
}


@dataclass
class Probe:
    router: str
    canary_id: str
    side: str
    category: str
    expected: str
    ms: int  # occurred_at, epoch milliseconds
    observed: str | None
    passed: bool | None
    latency: float | None
    error: str
    detail: str
    request_id: str
    event: dict


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def plan_probes(seed: int) -> tuple[list[Probe], list[Probe]]:
    """Probes in the report range (every 5 minutes over the last 150), and older ones outside it."""
    rng = random.Random(seed)
    inside, outside = [], []
    for run in range(30):
        for router, canary_id, side, category, expected, no_answer in CANARIES:
            probes = [(NOW - 150 * 60 + run * 300, inside)]
            if run < 3:
                probes.append((SINCE_TS - 3600 + run * 300, outside))
            for start, bucket in probes:
                ms = int((start + rng.uniform(0, 240)) * 1000)
                request_id = f"canary-{router}-{canary_id}-{ms}"
                if rng.random() < no_answer:
                    error = rng.choice(["timeout after 30 s", "HTTP 503 from router", "connection refused"])
                    observed = passed = None
                    latency = 30000.0 if error.startswith("timeout") else None
                    detail = ""
                else:
                    error = ""
                    other = [t for t in RANK if t != expected]
                    observed = expected if rng.random() < 0.8 else rng.choice(other)
                    passed = rng.random() < 0.85
                    detail = "" if passed else rng.choice(["regex did not match", "expected 42, got 41"])
                    latency = None if rng.random() < 0.05 else round(rng.lognormvariate(6, 0.6), 3)
                event = {
                    "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "canary_id": canary_id, "run_id": f"run-{run}", "occurred_at": iso(ms), "router_id": router,
                    "category": category, "side": side, "expected_tier": expected, "observed_tier": observed,
                    "tier_source": "header" if observed else None, "check_kind": "regex", "answer_passed": passed,
                    "check_detail": detail or None, "latency_ms": latency, "error": error or None, "request_id": request_id,
                }
                bucket.append(Probe(router, canary_id, side, category, expected, ms, observed, passed, latency, error,
                                    detail, request_id, event))
    return inside, outside


def record_decision(rw: RouterWatch, p: Probe) -> list[str] | None:
    """The router's own RoutingDecision for a probe (as the canary's request_id); None when it emitted none.

    Returns the attempt outcomes. Cheap-side probes enter at small and escalate when another tier
    answered; strong-side probes go straight to the tier that answered. A 503 is a failed, unserved request.
    """
    if p.error.startswith("timeout") or p.error.startswith("connection"):
        return None
    d = rw.decision(request_id=p.request_id, category=p.category, canary_id=p.canary_id, occurred_at=p.ms / 1000)
    latency = p.latency if p.latency is not None else 250.0
    entry = "small" if p.side == "cheap" else (p.observed or p.expected)
    outcomes = []
    if p.error:
        d.attempt(entry, tier_rank=RANK[entry], model=MODEL[entry], provider="acme", offset_ms=1.0).fail(
            "provider_error", latency_ms=latency)
        outcomes.append("failed")
    else:
        tiers = [entry] if p.observed == entry else [entry, p.observed]
        for i, tier in enumerate(tiers):
            attempt = d.attempt(tier, tier_rank=RANK[tier], model=MODEL[tier], provider="acme", offset_ms=1.0 + i)
            if tier != p.observed:
                attempt.escalate("low_confidence", latency_ms=latency / 2, cost_usd=0.0001)
                outcomes.append("escalated")
            else:
                attempt.accept(latency_ms=latency / 2, cost_usd=0.001 * (RANK[tier] + 1))
                outcomes.append("accepted")
    d.finish(latency_ms=latency)
    return outcomes


def send(env: Env, seed: int):
    inside, outside = plan_probes(seed)
    config = dict(bootstrap_servers=env.kafka, decisions_topic=env.names["decisions"], feedback_topic=env.names["feedback"],
                  canary_topic=env.names["canary"], max_queue=100_000, close_timeout_s=60)
    clients = {router: RouterWatch(SdkConfig(router_id=router, **config)) for router in (ROUTER, OTHER_ROUTER)}
    decisions = {}
    for p in inside + outside:
        clients[p.router].canary_result(p.event)
        outcomes = record_decision(clients[p.router], p)
        if outcomes is not None:
            decisions[p.request_id] = (p, outcomes)
    clients[ROUTER].canary_result(inside[7].event)  # a redelivered result: stored once
    production = Profile(router_id=ROUTER, feedback_share=0.0, minutes=150)
    emit(clients[ROUTER], production, 400, seed, now=NOW)
    for rw in clients.values():
        assert rw.close()["dropped"] == 0
    env.cli("wait", "--timeout", "180")
    return inside, outside, decisions, events(production, 400, seed, now=NOW)


def quantile_exact(values: list[float], level: float) -> float:
    """ClickHouse quantileExact: the sorted value at index floor(level * n)."""
    ordered = sorted(values)
    return ordered[min(int(level * len(ordered)), len(ordered) - 1)]


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def figures(probes: list[Probe]) -> dict:
    """What every canary figure must be for ``probes``: the scoreboard columns, by its key."""
    groups = defaultdict(list)
    for p in probes:
        groups[(p.router, p.side, p.canary_id, p.category, p.expected)].append(p)
    out = {}
    for key, ps in groups.items():
        answered = [p for p in ps if not p.error]
        failed = [p for p in ps if p.error]
        observed = Counter(p.observed for p in answered)
        top = max(observed.values(), default=0)
        mode = None if not answered else (key[4] if observed[key[4]] == top else min(t for t, n in observed.items() if n == top))
        timed = [p.latency for p in answered if p.latency is not None]
        last_failed_check = max((p for p in answered if p.passed is False), key=lambda p: p.ms, default=None)
        out[key] = {
            "probes": len(ps),
            "answered": len(answered),
            "no_answer": len(failed),
            "passed": sum(p.passed for p in answered),
            "pass_rate": rate(sum(p.passed for p in answered), len(answered)),
            "tier_flips": sum(p.observed != p.expected for p in answered),
            "tier_flip_rate": rate(sum(p.observed != p.expected for p in answered), len(answered)),
            "observed_tiers": dict(observed),
            "most_common_observed_tier": mode,
            "timed": len(timed),
            "latency_p50_ms": quantile_exact(timed, 0.5) if timed else None,
            "latency_p95_ms": quantile_exact(timed, 0.95) if timed else None,
            "last_probe_at": max(p.ms for p in ps),
            "last_error_at": max((p.ms for p in failed), default=None),
            "last_error": max(failed, key=lambda p: p.ms).error if failed else "",
            "last_check_detail": last_failed_check.detail if last_failed_check else "",
        }
    return out


def series(probes: list[Probe], step_minutes: int) -> dict:
    step = step_minutes * 60
    groups = defaultdict(list)
    for p in probes:
        bucket = datetime.fromtimestamp(p.ms // 1000 // step * step, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        groups[(bucket, p.router, p.side)].append(p)
    out = {}
    for key, ps in groups.items():
        answered = [p for p in ps if not p.error]
        passed = sum(p.passed for p in answered)
        flips = sum(p.observed != p.expected for p in answered)
        out[key] = {"probes": len(ps), "answered": len(answered), "no_answer": len(ps) - len(answered), "passed": passed,
                    "pass_rate": rate(passed, len(answered)), "tier_flips": flips, "tier_flip_rate": rate(flips, len(answered))}
    return out


def ms_of(value) -> int | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value).replace(" ", "T").replace("Z", "+00:00"))
    return round((parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp() * 1000)


def assert_finite(rows: list[dict], what: str) -> None:
    for row in rows:
        for k, v in row.items():
            assert not (isinstance(v, float) and not math.isfinite(v)), f"{what}: {k} = {v} in {row}"


def test_canary_figures_match_ground_truth_and_stay_out_of_production(env, serve, tmp_path):
    inside, outside, decisions, production = send(env, seed=83)
    truth = figures(inside)
    assert any(v["answered"] == 0 for v in truth.values()) and any(v["tier_flips"] for v in truth.values())

    # 1. canary_scoreboard: one row per router, side, canary (category, expected tier), every column exact.
    board = serve.query_dicts(f"SELECT * FROM canary_scoreboard({RANGE})")
    assert_finite(board, "canary_scoreboard")
    got = {(r["router_id"], r["side"], r["canary_id"], r["category"], r["expected_tier"]): r for r in board}
    assert set(got) == set(truth)
    for key, expected in truth.items():
        row = dict(got[key])
        for column in ("last_probe_at", "last_error_at"):
            row[column] = ms_of(row[column])
        assert {k: row[k] for k in expected} == expected, key
    dead = got[(ROUTER, "strong", "dead-endpoint", "coding", "large")]
    assert dead["pass_rate"] is None and dead["tier_flip_rate"] is None and dead["most_common_observed_tier"] is None
    # Outside the range: older probes only.
    old = serve.query_dicts("SELECT * FROM canary_scoreboard(since = {s:String}, until = {u:String})",
                            {"s": "2000-01-01 00:00:00", "u": SINCE})
    assert sum(r["probes"] for r in old) == len(outside)

    # 2. canary_series: per bucket, router and side, for an hour and for an odd step.
    for step in (60, 7):
        rows = serve.query_dicts(f"SELECT * FROM canary_series({RANGE}, step_minutes = {step})")
        assert_finite(rows, f"canary_series step {step}")
        got_series = {(r["bucket"][:19], r["router_id"], r["side"]): {k: r[k] for k in
                      ("probes", "answered", "no_answer", "passed", "pass_rate", "tier_flips", "tier_flip_rate")} for r in rows}
        assert got_series == series(inside, step), step

    # 3. The probes' routing decisions are visible on request...
    in_range = {rid: v for rid, v in decisions.items() if SINCE_TS * 1000 <= v[0].ms < UNTIL_TS * 1000}
    assert serve.scalar("SELECT count() FROM canary_decisions") == len(decisions)
    assert serve.scalar("SELECT count() FROM canary_attempts") == sum(len(o) for _, o in decisions.values())
    traffic = serve.query_dicts(f"SELECT * FROM canary_tier_traffic({RANGE})")
    assert_finite(traffic, "canary_tier_traffic")
    groups = defaultdict(list)
    for p, outcomes in in_range.values():
        final = p.observed if not p.error else "(not served)"
        groups[(p.router, p.canary_id, final)].append((p, outcomes))
    assert {(r["router_id"], r["canary_id"], r["final_tier"]) for r in traffic} == set(groups)
    for row in traffic:
        members = groups[(row["router_id"], row["canary_id"], row["final_tier"])]
        per_canary = sum(len(v) for k, v in groups.items() if k[:2] == (row["router_id"], row["canary_id"]))
        assert row["requests"] == len(members)
        assert row["share"] == len(members) / per_canary
        assert row["escalated"] == sum("escalated" in o for _, o in members)
        latencies = [p.latency if p.latency is not None else 250.0 for p, _ in members]
        assert row["latency_p50_ms"] == quantile_exact(latencies, 0.5)

    # ... and in none of the production figures.
    prod_attempts = [a for e in production for a in e["attempts"]]
    assert serve.scalar("SELECT count() FROM decisions") == len(production) + len(decisions)
    assert serve.scalar("SELECT count() FROM requests") == len(production)
    assert serve.scalar("SELECT count() FROM request_attempts") == len(prod_attempts)
    assert serve.scalar("SELECT count() FROM requests WHERE request_id LIKE 'canary-%'") == 0
    tiers = serve.query_dicts(f"SELECT * FROM tier_scoreboard({RANGE}, by = '')")
    assert {(r["tier"], o): r[o] for r in tiers for o in ("accepted", "escalated", "failed", "shadow")} == {
        (t, o): sum(1 for a in prod_attempts if a["tier"] == t and a["outcome"] == o)
        for t in {a["tier"] for a in prod_attempts} for o in ("accepted", "escalated", "failed", "shadow")
    }
    mix = serve.query_dicts(f"SELECT * FROM routing_mix({RANGE}, by = 'router')")
    assert {r["segment"] for r in mix} == {ROUTER}, "the probe-only router has no production figures"
    assert sum(r["requests"] for r in mix) == len(production)

    # 4. The cookbook query answers per canary over its window [since, until) (the in-range probes, not the old ones).
    health = serve.query_dicts((REPO / "sql/queries/canary_health.sql").read_text(), {"since": SINCE, "until": UNTIL})
    assert_finite(health, "canary_health")
    assert {(r["router_id"], r["side"], r["canary_id"]): r["probes"] for r in health} == {k[:3]: v["probes"] for k, v in truth.items()}
    for r in health:
        (expected,) = [v for k, v in truth.items() if k[:3] == (r["router_id"], r["side"], r["canary_id"])]
        assert r["pass_rate"] == expected["pass_rate"] and r["tier_flip_rate"] == expected["tier_flip_rate"]
    assert not health[0]["last_probe_ok"] and health[-1]["last_probe_ok"], "worst first"

    # 5. `routerwatch report`: JSON keeps its keys and adds the canary ones...
    report = json.loads(env.cli("report", "--since", SINCE, "--until", UNTIL, "--format", "json").stdout)
    assert set(report) == REPORT_KEYS | {"canaries", "canary_series"}
    json_rows = {(r["router_id"], r["side"], r["canary_id"], r["category"], r["expected_tier"]): r for r in report["canaries"]}
    assert set(json_rows) == set(truth)
    for key, expected in truth.items():
        for column in ("probes", "answered", "no_answer", "passed", "pass_rate", "tier_flips", "tier_flip_rate",
                       "most_common_observed_tier", "observed_tiers"):
            assert json_rows[key][column] == expected[column], (key, column)
    step = canary_step(datetime.fromtimestamp(SINCE_TS, timezone.utc), datetime.fromtimestamp(UNTIL_TS, timezone.utc))
    expected_series = series(inside, step)
    assert {(r["bucket"].replace(" ", "T")[:19], r["router_id"], r["side"]): r["pass_rate"] for r in report["canary_series"]} == {
        k: v["pass_rate"] for k, v in expected_series.items()}

    # ... text shows per side and per canary ...
    sides = defaultdict(lambda: Counter())
    for key, v in truth.items():
        for column in ("probes", "answered", "no_answer", "passed", "tier_flips"):
            sides[key[:2]][column] += v[column]
        sides[key[:2]]["canaries"] += 1
    text = env.cli("report", "--since", SINCE, "--until", UNTIL).stdout

    def pct(value) -> list[str]:
        """A rate as the text report shows it (``90.0 %``, ``-``), split as the line is."""
        return text_cell("pass_rate", value)[0].split()

    section = text[text.index("Canary probes"):]
    lines = [line.split() for line in section.splitlines()]
    for (router, side), c in sides.items():
        row = [router, side, str(c["canaries"]), str(c["probes"]), str(c["answered"]), str(c["no_answer"]),
               *pct(rate(c["passed"], c["answered"])), *pct(rate(c["tier_flips"], c["answered"]))]
        assert row in lines, (row, section)
    for key, v in truth.items():
        router, side, canary_id, _, expected_tier = key
        row = [router, side, canary_id, str(v["probes"]), str(v["answered"]), str(v["no_answer"]), *pct(v["pass_rate"]),
               *pct(v["tier_flip_rate"]), expected_tier, fmt_value(v["most_common_observed_tier"])]
        assert any(line[: len(row)] == row for line in lines), (row, section)
    empty = env.cli("report", "--since", "2000-01-01T00:00:00", "--until", "2000-01-02T00:00:00").stdout
    assert "no canary probes in this range" in empty
    assert json.loads(env.cli("report", "--since", "2000-01-01T00:00:00", "--until", "2000-01-02T00:00:00",
                              "--format", "json").stdout)["canaries"] == []

    # ... and HTML a per-side table with a pass-rate sparkline, and a per-canary table.
    page_path = tmp_path / "report.html"
    env.cli("report", "--since", SINCE, "--until", UNTIL, "--format", "html", "--output", str(page_path))
    page = page_path.read_text()
    canary_section = page[page.index('id="section-canaries"'):]
    canary_section = canary_section[: canary_section.index("</section>")]
    side_rows = re.findall(r'<tr data-router="([^"]*)" data-side="([^"]*)">(.*?)</tr>', canary_section, re.S)
    assert {(r, s) for r, s, _ in side_rows} == set(sides)
    for router, side, cells in side_rows:
        values = [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", cells, re.S)]
        c = sides[(router, side)]
        assert values[:6] == [router, side, str(c["canaries"]), str(c["probes"]), str(c["answered"]), str(c["no_answer"])]
    sparks = re.findall(r'<svg class="sparkline"[^>]*data-router="([^"]*)" data-side="([^"]*)" data-buckets="([^"]*)" '
                        r'data-rates="([^"]*)"', canary_section)
    for router, side, buckets, rates in sparks:
        want = sorted((k[0], v["pass_rate"]) for k, v in expected_series.items()
                      if k[1:] == (router, side) and v["pass_rate"] is not None)
        assert buckets.split() == [b for b, _ in want]
        assert [float(x) for x in rates.split()] == pytest.approx([r for _, r in want], rel=1e-9)
    assert {(r, s) for r, s, *_ in sparks} == {k for k, c in sides.items() if c["answered"]}
    for canary_id in {k[2] for k in truth}:
        assert f"<td>{canary_id}</td>" in canary_section
