"""Prices imported from LiteLLM's map, through the real broker, serve and chDB.

A mixed cascade (cheap tier on two providers, an unpriced middle tier, a flagship tier on two
deployments at different LiteLLM prices, 429s that report 0 input tokens) is sent through the
SDK; serve prices it with the table `routerwatch prices import --from litellm` wrote. The savings
figure must equal the one computed here from LiteLLM's per-token prices, and the unpriced model
must show in pipeline_health, the metric and the report with its exact attempt count.
"""

from __future__ import annotations

import json
import math
import random
import time
import uuid
from datetime import datetime, timezone

import pytest
from servicekit import Env, Serve

from routerwatch.events import RoutingDecision
from routerwatch.prices import litellm as source
from routerwatch.sdk import RouterWatch, SdkConfig

pytestmark = pytest.mark.integration

NOW = float(int(time.time()) // 60 * 60)
SINCE = datetime.fromtimestamp(NOW - 3 * 3600, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
UNTIL = datetime.fromtimestamp(NOW + 3600, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")

TABLE = {
    "version": "litellm-cascade-1",
    "flagship_tier_rank": 2,
    "models": {
        "openai/gpt-4o-mini": {"tier_rank": 0},
        "azure/gpt-4o-mini": {"tier_rank": 0},
        "openai/gpt-4o": {"tier_rank": 2},
        "azure/eu/gpt-4o": {"tier_rank": 2},
    },
}
# (tier, rank, [(model, provider) as the router reports them: primary, fallback])
TIERS = [
    ("small", 0, [("gpt-4o-mini", "openai"), ("azure/gpt-4o-mini", "azure")]),
    ("medium", 1, [("mystery-70b", "initech"), ("mystery-70b", "initech")]),  # LiteLLM has no price for it
    ("large", 2, [("openai/gpt-4o", "openai"), ("eu/gpt-4o", "azure")]),
]
LITELLM_KEY = {"gpt-4o-mini": "gpt-4o-mini", "azure/gpt-4o-mini": "azure/gpt-4o-mini", "openai/gpt-4o": "gpt-4o",
               "eu/gpt-4o": "azure/eu/gpt-4o"}


def cascade(n: int, seed: int) -> list[dict]:
    """Requests of a three-tier cascade with fallbacks; costs from LiteLLM's own per-token prices."""
    cost_map, _ = source.read_cost_map()
    rng = random.Random(seed)
    out = []
    for i in range(n):
        prompt = rng.randint(200, 3000)
        attempts, clock, cost = [], 5.0, 0.0
        served = None
        for tier, rank, deployments in TIERS[rng.choice([0, 0, 0, 1, 2]):]:
            for model, provider in deployments:
                latency = rng.uniform(50, 900)
                a = {"index": len(attempts), "tier": tier, "tier_rank": rank, "model": model, "provider": provider,
                     "offset_ms": round(clock, 3), "latency_ms": round(latency, 3)}
                clock += latency
                if rng.random() < 0.15:  # a 429: the provider counted nothing
                    a.update(outcome="failed", failure_mode="rate_limited", input_tokens=0, output_tokens=0, cost_usd=0.0)
                    attempts.append(a)
                    continue
                output = rng.randint(20, 800)
                row = cost_map.get(LITELLM_KEY.get(model, ""), {})
                a_cost = prompt * row.get("input_cost_per_token", 0.0) + output * row.get("output_cost_per_token", 0.0)
                a.update(input_tokens=prompt, output_tokens=output, cost_usd=a_cost)
                cost += a_cost
                if rank < 2 and rng.random() < 0.4:
                    a.update(outcome="escalated", escalation_reason="low_confidence")
                    attempts.append(a)
                    break
                a["outcome"] = "accepted"
                attempts.append(a)
                served = a
                break
            if served:
                break
        final = {"served": served is not None, "latency_ms": round(clock + 3, 3), "cost_usd": cost}
        if served:
            final.update(tier=served["tier"], model=served["model"])
        event = {"event_id": str(uuid.UUID(int=rng.getrandbits(128))), "request_id": f"lite-{seed}-{i}",
                 "occurred_at": datetime.fromtimestamp(NOW - 600 + i * 0.05, timezone.utc).isoformat(timespec="milliseconds"),
                 "router": {"id": "litellm-cascade", "strategy": "cascade"}, "category": "default",
                 "attempts": attempts, "final": final}
        out.append(json.loads(RoutingDecision.model_validate(event).model_dump_json(exclude_none=True)))
    return out


def hand_counterfactual(e: dict, cost_map: dict) -> float:
    """Flagship everywhere, from LiteLLM's per-token prices: the answering flagship deployment's own
    price when the request was answered there, else the two flagship deployments' mean."""
    flagship = {("openai/gpt-4o", "openai"): cost_map["gpt-4o"], ("eu/gpt-4o", "azure"): cost_map["azure/eu/gpt-4o"]}
    tried = e["attempts"]
    prompt = next((a.get("input_tokens", 0) for a in tried if a.get("input_tokens", 0)), 0)
    answered = next((a for a in tried if a["outcome"] == "accepted"), tried[-1])
    own = flagship.get((answered["model"], answered["provider"]))
    if own is not None:
        price_in, price_out = own["input_cost_per_token"], own["output_cost_per_token"]
    else:
        price_in = sum(r["input_cost_per_token"] for r in flagship.values()) / 2
        price_out = sum(r["output_cost_per_token"] for r in flagship.values()) / 2
    return prompt * price_in + answered.get("output_tokens", 0) * price_out


def test_savings_from_litellm_prices_and_unpriced_models_are_visible(kafka_bootstrap, names, tmp_path, store_backend):
    url = f"chdb://{tmp_path / 'store'}" if store_backend == "chdb" else store_backend
    table_file = tmp_path / "prices.toml"
    table_file.write_text(source.render_toml(TABLE))
    env = Env(kafka=kafka_bootstrap, names=names, store_url=url)
    env.cli("prices", "import", "--from", "litellm", "--table", str(table_file))
    env.extra["ROUTERWATCH_PRICES_FILE"] = str(tmp_path / "prices.litellm.toml")
    env.cli("migrate")
    serve = Serve(env, tmp_path / "serve.log").start()
    try:
        evs = cascade(1500, seed=16)
        rw = RouterWatch(SdkConfig(bootstrap_servers=env.kafka, router_id="litellm-cascade",
                                   decisions_topic=env.names["decisions"], feedback_topic=env.names["feedback"],
                                   max_queue=100_000, close_timeout_s=60))
        for e in evs:
            rw.emit_raw(env.names["decisions"], json.dumps(e).encode(), e["request_id"].encode())
        assert rw.close()["dropped"] == 0
        env.cli("wait", "--timeout", "180")
        serve.wait_for("SELECT count() FROM decisions", len(evs))

        cost_map, label = source.read_cost_map()
        unpriced = sum(1 for e in evs for a in e["attempts"] if a["model"] == "mystery-70b")
        first_failed = sum(1 for e in evs if e["attempts"][0]["outcome"] == "failed")
        assert unpriced > 50 and first_failed > 50, "the sample must hold unpriced attempts and 429s first"

        # Savings equal the figure computed by hand from LiteLLM's prices.
        (cost,) = serve.query_dicts(f"SELECT * FROM cost_summary(since = '{SINCE}', until = '{UNTIL}', by = '')")
        actual = math.fsum(e["final"]["cost_usd"] for e in evs)
        counterfactual = math.fsum(hand_counterfactual(e, cost_map) for e in evs)
        assert math.isclose(cost["actual_cost_usd"], actual, rel_tol=1e-9)
        assert math.isclose(cost["counterfactual_cost_usd"], counterfactual, rel_tol=1e-9)
        assert math.isclose(cost["savings_share"], 1 - actual / counterfactual, rel_tol=1e-9)
        assert serve.query("SELECT DISTINCT price_version FROM decisions") == [[f"litellm-cascade-1+{label}"]]

        # The unpriced model: pipeline_health, the metric and the report, with the exact attempt count.
        health = serve.query_dicts(f"SELECT * FROM pipeline_health(since = '{SINCE}', until = '{UNTIL}')")
        assert sum(r["unpriced_attempts"] for r in health) == unpriced
        assert sum(r["unpriced_attempts_by_model"].get("initech/mystery-70b", 0) for r in health) == unpriced
        assert {k for r in health for k in r["unpriced_attempts_by_model"]} == {"initech/mystery-70b"}
        metric = 'routerwatch_unpriced_attempts_total{model="mystery-70b",provider="initech"}'
        line = next(l for l in serve.metrics().splitlines() if l.startswith(metric))
        assert float(line.split()[-1]) == unpriced
        report = json.loads(env.cli("report", "--since", SINCE, "--until", UNTIL, "--format", "json").stdout)
        assert report["unpriced"] == [{"deployment": "initech/mystery-70b", "attempts": unpriced,
                                       "requests": sum(1 for e in evs if any(a["model"] == "mystery-70b" for a in e["attempts"]))}]
        text = env.cli("report", "--since", SINCE, "--until", UNTIL).stdout
        assert f"WARNING: {unpriced:,} attempts of 1 model(s) had no price in the price table: initech/mystery-70b" in text
    finally:
        serve.stop()
