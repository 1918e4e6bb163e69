"""Every per-tier figure, through the real pipeline, against ground truth computed here.

The simulator is deterministic for (profile, requests, seed, now): the test
emits the traffic through the SDK into the real service, and independently
recomputes each figure in plain Python from the very events the simulator
built. Counts and rates must match exactly; quantiles (t-digest) must be
within their documented rank error: the estimate's rank in the exact data is
within q +/- (0.01 + 1/n).
"""

from __future__ import annotations

import math
import time
import tomllib
from collections import Counter, defaultdict
from datetime import datetime, timezone

import pytest
from servicekit import REPO, Env

from routerwatch.sdk import RouterWatch, SdkConfig
from routerwatch.simulate import Profile, emit, events, plan

pytestmark = pytest.mark.integration

NOW = float(int(time.time()) // 60 * 60)  # whole minute: windows below cut on minute edges
SINCE = datetime.fromtimestamp(NOW - 3 * 3600, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
UNTIL = datetime.fromtimestamp(NOW + 3600, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
RANGE = f"since = '{SINCE}', until = '{UNTIL}'"
PRICES = tomllib.loads((REPO / "deploy/prices.toml").read_text())


def send(env: Env, profile: Profile, requests: int, seed: int, now: float = NOW) -> dict:
    rw = RouterWatch(SdkConfig(bootstrap_servers=env.kafka, router_id=profile.router_id,
                               decisions_topic=env.names["decisions"], feedback_topic=env.names["feedback"],
                               max_queue=500_000, close_timeout_s=60))
    summary = emit(rw, profile, requests, seed, now=now)
    assert rw.close()["dropped"] == 0
    env.cli("wait", "--timeout", "180")
    return summary


def exact_rank(values: list[float], estimate: float) -> float:
    return sum(1 for v in values if v <= estimate) / len(values)


def assert_quantiles(values: list[float], estimates: list[float], what: str) -> None:
    assert values, what
    n = len(values)
    for q, est in zip((0.5, 0.95, 0.99), estimates):
        rank = exact_rank(values, est)
        tolerance = 0.01 + 1 / n
        assert abs(rank - q) <= tolerance, f"{what}: p{int(q * 100)} estimate {est} has rank {rank:.4f} in {n} values"


def assert_close(actual: float, expected: float, what: str, tol: float = 1e-9) -> None:
    assert math.isclose(actual, expected, rel_tol=tol, abs_tol=tol), f"{what}: {actual} != {expected}"


def graded_attempt(p, index):
    """The attempt a grade is about: the accepted one for a served grade, else the indexed one."""
    return next(a for a in p.attempts if a.outcome == "accepted") if index is None else p.attempts[index]


def rows_by(rows: list[dict], *keys: str) -> dict:
    return {tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]: r for r in rows}


def test_every_figure_matches_ground_truth(env, serve):
    profile = Profile(router_id="figures-router", feedback_share=0.4, shadow_share=0.08)
    n, seed = 4000, 31
    send(env, profile, n, seed)
    evs = events(profile, n, seed, now=NOW)
    plans = plan(profile, n, seed, now=NOW)

    attempts = [(e, a) for e in evs for a in e["attempts"]]
    tiers = sorted({a["tier"] for _, a in attempts})

    # 1-2, 4-5: per tier outcomes, rates, the two latency populations, ttft-free here.
    board = rows_by(serve.query_dicts(f"SELECT * FROM tier_scoreboard({RANGE}, by = '')"), "tier")
    for tier in tiers:
        at = [a for _, a in attempts if a["tier"] == tier]
        count = Counter(a["outcome"] for a in at)
        row = board[tier]
        for outcome in ("accepted", "escalated", "failed", "shadow"):
            assert row[outcome] == count[outcome], (tier, outcome)
        assert row["attempts"] == len(at)
        gated = count["accepted"] + count["escalated"]
        assert_close(row["escalation_rate"], count["escalated"] / gated, f"{tier} escalation rate")
        assert_close(row["failure_rate"], count["failed"] / (len(at) - count["shadow"]), f"{tier} failure rate")
        assert_quantiles([a["latency_ms"] for a in at if a["outcome"] == "accepted"], row["terminal_latency_ms"], f"{tier} terminal")
        if count["escalated"]:
            assert_quantiles([a["latency_ms"] for a in at if a["outcome"] == "escalated"], row["passthrough_latency_ms"], f"{tier} passthrough")
        assert_close(row["model_cost_usd"], sum(a.get("cost_usd", 0) for a in at if a["outcome"] != "shadow"), f"{tier} cost")
        assert_close(row["verify_cost_usd"], sum(a.get("verify_cost_usd", 0) for a in at if a["outcome"] != "shadow"), f"{tier} verify cost")

    # Escalation rate by tier x category.
    by_cat = rows_by(serve.query_dicts(f"SELECT * FROM tier_scoreboard({RANGE}, by = 'category')"), "segment", "tier")
    truth = Counter((e["category"], a["tier"], a["outcome"]) for e, a in attempts)
    for (category, tier), row in by_cat.items():
        assert row["escalated"] == truth[(category, tier, "escalated")]
        assert row["accepted"] == truth[(category, tier, "accepted")]

    # Escalation rate as a time series: exact per minute.
    series = serve.query_dicts(f"SELECT * FROM escalation_series({RANGE})")
    minute_truth = Counter()
    for e, a in attempts:
        if a["outcome"] in ("accepted", "escalated"):
            minute = datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")).strftime("%Y-%m-%dT%H:%M:00")
            minute_truth[(minute, a["tier"], e["category"], a["outcome"])] += 1
    assert len(series) == len({k[:3] for k in minute_truth})
    for row in series:
        key = (row["minute"][:19], row["tier"], row["category"])
        assert row["escalated"] == minute_truth[(*key, "escalated")], key
        assert row["accepted"] == minute_truth[(*key, "accepted")], key

    # Escalation reasons.
    reasons = rows_by(serve.query_dicts(f"SELECT * FROM escalation_reasons({RANGE})"), "tier", "category", "escalation_reason")
    reason_truth = Counter((a["tier"], e["category"], a["escalation_reason"]) for e, a in attempts if a["outcome"] == "escalated")
    assert {k: r["escalations"] for k, r in reasons.items()} == dict(reason_truth)

    # Failure modes by tier, rate against the tier's non-shadow attempts.
    failures = rows_by(serve.query_dicts(f"SELECT * FROM failure_modes({RANGE})"), "tier", "failure_mode")
    fail_truth = Counter((a["tier"], a["failure_mode"]) for _, a in attempts if a["outcome"] == "failed")
    assert {k: r["failures"] for k, r in failures.items()} == dict(fail_truth)
    for (tier, mode), row in failures.items():
        denominator = sum(1 for _, a in attempts if a["tier"] == tier and a["outcome"] != "shadow")
        assert_close(row["rate"], fail_truth[(tier, mode)] / denominator, f"{tier}/{mode} failure rate")

    # 3: kept vs escalated request latency, blended only beside them.
    def path(e):
        escalations = sum(a["outcome"] == "escalated" for a in e["attempts"])
        if escalations:
            return "escalated"
        entry = next(a for a in e["attempts"] if a["outcome"] != "shadow")
        return "kept" if e["final"]["served"] and e["final"]["tier"] == entry["tier"] else "other"

    latency = rows_by(serve.query_dicts(f"SELECT * FROM request_latency({RANGE}, by = '')"), "path_group")
    for group in ("kept", "escalated", "all"):
        values = [e["final"]["latency_ms"] for e in evs if group == "all" or path(e) == group]
        assert latency[group]["requests"] == len(values)
        assert_quantiles(values, latency[group]["latency_ms"], f"{group} request latency")

    # 6: routing mix.
    mix = rows_by(serve.query_dicts(f"SELECT * FROM routing_mix({RANGE}, by = '')"), "final_tier")
    mix_truth = Counter(e["final"]["tier"] if e["final"]["served"] else "(not served)" for e in evs)
    assert {k: r["requests"] for k, r in mix.items()} == dict(mix_truth)
    for tier, row in mix.items():
        assert_close(row["share"], mix_truth[tier] / n, f"{tier} share")

    # 7: cost against flagship-everywhere, priced here from the price file's numbers.
    flagship = PRICES["models"][PRICES["flagship"]]
    top_rank = flagship["tier_rank"]

    def counterfactual(e):
        served_path = [a for a in e["attempts"] if a["outcome"] != "shadow"]
        answered = next((a for a in served_path if a["outcome"] == "accepted"), served_path[-1])
        return (served_path[0].get("input_tokens", 0) * flagship["input_usd_per_mtok"]
                + answered.get("output_tokens", 0) * flagship["output_usd_per_mtok"]) / 1e6

    (cost,) = serve.query_dicts(f"SELECT * FROM cost_summary({RANGE}, by = '')")
    actual = sum(e["final"]["cost_usd"] for e in evs)
    cf = sum(counterfactual(e) for e in evs)
    assert_close(cost["actual_cost_usd"], actual, "actual cost")
    assert_close(cost["counterfactual_cost_usd"], cf, "counterfactual cost")
    assert_close(cost["savings_share"], 1 - actual / cf, "savings")
    tier_rank = {t.name: t.rank for t in profile.tiers}
    routable = sum(1 for e in evs if e["final"]["served"] and tier_rank[e["final"]["tier"]] < top_rank)
    assert_close(cost["routable_share"], routable / n, "routable share")
    for tier, row in mix.items():
        spend = sum(e["final"]["cost_usd"] for e in evs if (e["final"]["tier"] if e["final"]["served"] else "(not served)") == tier)
        assert_close(row["cost_per_request_usd"], spend / mix_truth[tier], f"{tier} cost per request")

    # 8: quality per tier from late grades (served answers and the shadow slice).
    grades = [(p, g) for p in plans for g in p.feedback]
    quality = rows_by(serve.query_dicts(f"SELECT * FROM quality_by_tier({RANGE}, by = '')"), "tier", "target")
    q_truth: dict = defaultdict(list)
    for p, (target, score, passed, index) in grades:
        attempt = graded_attempt(p, index)
        q_truth[(attempt.tier.name, target)].append(passed)
    assert {k: r["graded"] for k, r in quality.items()} == {k: len(v) for k, v in q_truth.items()}
    for key, row in quality.items():
        assert_close(row["pass_rate"], sum(q_truth[key]) / len(q_truth[key]), f"{key} pass rate")
    assert ("small", "shadow") in quality, "the shadow slice measures the cheap tier on the full distribution"

    # 9: gate calibration: false accepts and false escalates per tier.
    calibration = serve.query_dicts(f"SELECT * FROM gate_calibration({RANGE})")
    fa, fe = Counter(), Counter()
    for p, (target, score, passed, index) in grades:
        attempt = graded_attempt(p, index)
        if attempt.gate:
            fa[attempt.tier.name] += attempt.gate["passed"] and not passed
            fe[attempt.tier.name] += (not attempt.gate["passed"]) and passed
    got_fa, got_fe = Counter(), Counter()
    for row in calibration:
        got_fa[row["tier"]] += row["false_accepts"]
        got_fe[row["tier"]] += row["false_escalates"]
    assert +got_fa == +fa and +got_fe == +fe

    # 11: tenants.
    tenants = rows_by(serve.query_dicts(f"SELECT * FROM tenant_scoreboard({RANGE})"), "tenant")
    for tenant in {e["tenant"] for e in evs}:
        te = [e for e in evs if e["tenant"] == tenant]
        esc = sum(a["outcome"] == "escalated" for e in te for a in e["attempts"])
        acc = sum(a["outcome"] == "accepted" for e in te for a in e["attempts"])
        assert tenants[tenant]["requests"] == len(te)
        if esc + acc:
            assert_close(tenants[tenant]["escalation_rate"], esc / (esc + acc), f"{tenant} escalation rate")
        assert_close(tenants[tenant]["cost_usd"], sum(e["final"]["cost_usd"] for e in te), f"{tenant} spend")

    # 9b: the threshold meeting a target error, from the same grades.
    report = __import__("json").loads(env.cli("report", "--since", SINCE, "--until", UNTIL, "--format", "json", "--target-error", "0.1").stdout)
    # The report's quality section reads the grades resolved at ingest (resolved_grades): the same counts.
    assert {(r["tier"], r["target"]): r["graded"] for r in report["quality"]} == {k: len(v) for k, v in q_truth.items()}
    small_gate = next(r for r in report["gate_thresholds"] if r["tier"] == "small")
    graded_small = [
        (round(graded_attempt(p, i).gate["score"], 2), passed)
        for p, (_, _, passed, i) in grades
        if graded_attempt(p, i).tier.name == "small" and graded_attempt(p, i).gate
    ]
    accepted_at = [ok for s, ok in graded_small if s >= small_gate["threshold"]]
    assert 1 - sum(accepted_at) / len(accepted_at) <= 0.1
    assert small_gate["graded"] == len(graded_small)
    lower = max(s for s, _ in graded_small if s < small_gate["threshold"])
    below = [ok for s, ok in graded_small if s >= lower]
    assert 1 - sum(below) / len(below) > 0.1, "the chosen threshold is the lowest that meets the target"

    # 10: experiment slices partition each variant's requests.
    slices = serve.query_dicts(f"SELECT * FROM experiment_slices({RANGE})")
    per_variant = Counter(e["experiment"]["variant"] for e in evs)
    got = Counter()
    for row in slices:
        got[row["experiment_variant"]] += row["requests"]
    assert got == per_variant

    # 12: pipeline health sees every stored request.
    health = serve.query_dicts(
        "SELECT * FROM pipeline_health(since = {s:String}, until = {u:String})",
        {"s": "2000-01-01 00:00:00", "u": "2100-01-01 00:00:00"},
    )
    assert sum(r["requests_stored"] for r in health) == n


def test_bimodal_latency_blended_p50_falls_while_escalated_p95_rises(env, serve):
    """Window A: many escalations. Window B: fewer escalations, but the strong tier (reached only
    by escalation) got slower. The blended p50 improves in B and kept users are no worse off,
    yet escalated users wait longer: only the split shows it."""
    base = Profile(router_id="bimodal-router", experiment_id=None, shadow_share=0.0, feedback_share=0.0, minutes=60)
    small, medium, large = base.tiers
    a = base.model_copy(update={"tiers": [small.model_copy(update={"escalation_rate": {c: 0.5 for c in base.categories}}), medium, large]})
    slow_large = large.model_copy(update={"latency_median_ms": large.latency_median_ms * 2})
    b = base.model_copy(update={"tiers": [small.model_copy(update={"escalation_rate": {c: 0.15 for c in base.categories}}), medium, slow_large]})
    # B first, then the older A: out-of-order events must land in their own minutes.
    send(env, b, 2500, seed=42, now=NOW)          # window B: the last hour
    send(env, a, 2500, seed=41, now=NOW - 3600)  # window A: the hour before, arriving late

    def window(since: float, until: float) -> dict:
        s = datetime.fromtimestamp(since, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        u = datetime.fromtimestamp(until, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        return rows_by(serve.query_dicts(f"SELECT * FROM request_latency(since = '{s}', until = '{u}', by = '')"), "path_group")

    wa, wb = window(NOW - 7200, NOW - 3600), window(NOW - 3600, NOW)
    assert wa["all"]["requests"] == 2500 and wb["all"]["requests"] == 2500
    assert wb["all"]["latency_ms"][0] < wa["all"]["latency_ms"][0], "blended p50 drops"
    assert wb["escalated"]["latency_ms"][1] > wa["escalated"]["latency_ms"][1] * 1.1, "escalated p95 rises"
    assert wb["kept"]["latency_ms"][1] <= wa["kept"]["latency_ms"][1] * 1.05, "kept p95 does not rise"
    for w, profile, seed, now in ((wa, a, 41, NOW - 3600), (wb, b, 42, NOW)):
        evs = events(profile, 2500, seed, now=now)
        escalated = [e["final"]["latency_ms"] for e in evs if any(x["outcome"] == "escalated" for x in e["attempts"])]
        assert w["escalated"]["requests"] == len(escalated)
        assert_quantiles(escalated, w["escalated"]["latency_ms"], "escalated window")


def test_variants_differing_only_in_routing_mix_are_flagged(env, serve):
    """Treatment sends coding straight to the medium tier; nothing else differs. The per-variant
    routing mix differs significantly, while within the entry-tier slice the small tier behaves the same."""
    profile = Profile(router_id="ab-router", experiment_id="router-ab", feedback_share=0.0, shadow_share=0.0,
                      entry_rank_by_variant={"treatment": {"coding": 1}})
    send(env, profile, 4000, seed=51)
    env.cli("wait", "--timeout", "120")
    report = __import__("json").loads(env.cli("report", "--since", SINCE, "--until", UNTIL, "--format", "json").stdout)
    (test,) = [t for t in report["experiment_mix_test"] if t["experiment_id"] == "router-ab"]
    assert test["mix_differs"] is True and test["p_value"] < 1e-6

    same = Profile(router_id="aa-router", experiment_id="router-aa", feedback_share=0.0, shadow_share=0.0)
    send(env, same, 4000, seed=52)
    report = __import__("json").loads(env.cli("report", "--since", SINCE, "--until", UNTIL, "--format", "json").stdout)
    (aa,) = [t for t in report["experiment_mix_test"] if t["experiment_id"] == "router-aa"]
    assert aa["mix_differs"] is False

    # Within the entry-tier slice of the small tier, the variants' escalation rates agree.
    by_variant = rows_by(serve.query_dicts(f"SELECT * FROM tier_scoreboard({RANGE}, by = 'variant')"), "segment", "tier")
    control, treatment = by_variant[("router-ab/control", "small")], by_variant[("router-ab/treatment", "small")]
    evs = events(profile, 4000, 51, now=NOW)
    for variant, row in (("control", control), ("treatment", treatment)):
        at = [a for e in evs if e["experiment"]["variant"] == variant for a in e["attempts"] if a["tier"] == "small"]
        assert row["escalated"] == sum(a["outcome"] == "escalated" for a in at)


def test_cookbook_queries_run_and_answer(env, serve):
    profile = Profile(router_id="cookbook-router")
    send(env, profile, 800, seed=61)
    # Absolute windows (issue 17): the simulated traffic's hours, the baseline the two hours before.
    baseline_since = datetime.fromtimestamp(NOW - 5 * 3600, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    defaults = {"since": SINCE, "until": UNTIL, "baseline_since": baseline_since, "request_id": "req-61-0000005"}
    queries = sorted((REPO / "sql/queries").glob("*.sql"))
    assert len(queries) >= 8
    for path in queries:
        text = path.read_text()
        assert text.startswith("--"), f"{path.name} starts with a comment saying what it answers"
        params = {k: v for k, v in defaults.items() if "{" + k + ":" in text}
        serve.query_dicts(text, params)
    steps = serve.query_dicts((REPO / "sql/queries/what_did_this_request_do.sql").read_text(), {"request_id": "req-61-0000005"})
    (planned,) = [p for p in plan(profile, 800, 61) if p.request_id == "req-61-0000005"]
    assert [s["outcome"] for s in steps] == [a.outcome for a in planned.attempts]
    assert [s["tier"] for s in steps] == [a.tier.name for a in planned.attempts]


def test_report_text_and_json_show_the_scoreboard(env, serve):
    send(env, Profile(router_id="report-router"), 600, seed=71)
    text = env.cli("report", "--since", SINCE, "--until", UNTIL).stdout
    for heading in ("Per tier", "Request latency: kept vs escalated", "Routing mix", "Cost against flagship-everywhere", "Failure modes"):
        assert heading in text
    for by in ("category", "variant", "tenant"):
        out = env.cli("report", "--since", SINCE, "--until", UNTIL, "--by", by, "--format", "json").stdout
        data = __import__("json").loads(out)
        assert data["by"] == by and sum(r["requests"] for r in data["routing_mix"]) == 600
