"""A LiteLLM auto-router's routing_decision becomes the request's route (real LiteLLM, offline)."""

from __future__ import annotations

import asyncio
import json

from routerwatch.integrations.litellm import RouterWatchLogger  # before litellm: offline-safe

import litellm

from routerwatch.events.models import RoutingDecision

PROMPT = (
    "Think step by step: first prove the theorem, then derive the algorithm complexity of this "
    "distributed consensus protocol implementation in rust with class function"
)


def test_complexity_router_decision_fills_route_and_names_the_tier(make_rw):
    rw = make_rw(router_id="auto", strategy="classifier")
    events = []
    rw._submit_decision = lambda d: events.append(RoutingDecision.model_validate_json(json.dumps(d.to_event())))
    logger = RouterWatchLogger(rw)
    litellm.callbacks.append(logger)
    try:
        router = litellm.Router(
            model_list=[
                {"model_name": "smart", "litellm_params": {"model": "auto_router/complexity_router",
                 "complexity_router_config": {"tiers": {"SIMPLE": "mini", "MEDIUM": "big", "COMPLEX": "big", "REASONING": "big"}}}},
                {"model_name": "mini", "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "mock_response": "4"}},
                {"model_name": "big", "litellm_params": {"model": "openai/gpt-4o", "api_key": "sk-test", "mock_response": "proof"}},
            ],
            num_retries=0,
        )

        async def call() -> None:
            await router.acompletion(model="smart", messages=[{"role": "user", "content": PROMPT}])
            await logger.aflush(timeout=10)

        asyncio.run(call())
    finally:
        logger.close(timeout=5)
    [event] = events
    attempt = event.attempts[0]
    assert (attempt.tier, attempt.tier_rank, attempt.outcome.value) == ("REASONING", 3, "accepted")
    assert event.route is not None and event.route.rule == "heuristic_scorer"
    features = event.route.features
    assert features["litellm.tier"] == "REASONING" and features["litellm.routed_model"] == "big"
    assert features["litellm.router_model_name"] == "smart" and isinstance(features["litellm.score"], float)
