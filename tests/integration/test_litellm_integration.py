"""The LiteLLM callback on the real LiteLLM package, through the real broker into chDB.

LiteLLM's ``mock_response`` keeps every deployment call offline; failures are injected per
deployment (``"litellm.RateLimitError"`` and friends), so the Router walks its real retry and
fallback chain. A second, plain LiteLLM callback counts what LiteLLM itself reports (deployment
calls, exception classes, ``response_cost``); the stored figures must equal those numbers.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from servicekit import Env

from routerwatch.integrations.litellm import RouterWatchLogger  # sets LITELLM_LOCAL_MODEL_COST_MAP first

import litellm  # (after the integration, which makes its import offline-safe)
from litellm.integrations.custom_logger import CustomLogger

from routerwatch.sdk import RouterWatch, SdkConfig

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "How many days do I have to ask for a refund?"}]


class LiteLLMCount(CustomLogger):
    """LiteLLM's own account: one entry per deployment call it reports (deduplicated by call id)."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.calls: dict[str, tuple[bool, str | None, float, str | None]] = {}

    def _add(self, kwargs: dict[str, Any], ok: bool) -> None:
        exc = kwargs.get("exception")
        group = ((kwargs.get("litellm_params") or {}).get("metadata") or {}).get("model_group")
        with self.lock:
            self.calls.setdefault(
                kwargs["litellm_call_id"],
                (ok, None if ok else type(exc).__name__, float(kwargs.get("response_cost") or 0.0), group),
            )

    def log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._add(kwargs, True)

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._add(kwargs, False)

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._add(kwargs, True)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._add(kwargs, False)

    def failures(self) -> collections.Counter[str]:
        return collections.Counter(cls for ok, cls, _, _ in self.calls.values() if not ok)

    def successes(self) -> int:
        return sum(1 for ok, *_ in self.calls.values() if ok)

    def spend(self) -> float:
        return sum(cost for _, _, cost, _ in self.calls.values())


def deployment(name: str, model: str, mock: str, tier: str | None = None, rank: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"model_name": name, "litellm_params": {"model": model, "api_key": "sk-test", "mock_response": mock}}
    if tier is not None:
        entry["model_info"] = {"routerwatch_tier": tier, "routerwatch_tier_rank": rank}
    return entry


@pytest.fixture
def rw(env: Env) -> Iterator[RouterWatch]:
    client = RouterWatch(
        SdkConfig(
            bootstrap_servers=env.kafka,
            router_id="litellm-router",
            strategy="fallback",
            decisions_topic=env.names["decisions"],
            feedback_topic=env.names["feedback"],
            max_queue=100_000,
            close_timeout_s=60,
        )
    ).start()
    yield client
    client.close()


@pytest.fixture
def loggers(rw: RouterWatch) -> Iterator[tuple[RouterWatchLogger, LiteLLMCount]]:
    """Both callbacks registered as a user would (litellm.callbacks), removed afterwards."""
    logger = RouterWatchLogger(rw, unserved_after_s=10.0)
    count = LiteLLMCount()
    litellm.callbacks.extend([logger, count])
    yield logger, count
    # LiteLLM copies litellm.callbacks into its success/failure lists (and skips a second
    # instance of a class already there): take both out of every list for the next test.
    for callback in (logger, count):
        litellm.logging_callback_manager.remove_callback_from_all_lists(callback)
    logger.close()


def store_figures(serve) -> dict[str, Any]:
    return {
        "requests": serve.scalar("SELECT count() FROM decisions"),
        "served": serve.scalar("SELECT countIf(served) FROM decisions"),
        "attempts": serve.scalar("SELECT count() FROM attempts"),
        "by_outcome": dict(serve.query("SELECT outcome, count() FROM attempts GROUP BY outcome")),
        "failure_modes": dict(serve.query("SELECT failure_mode, count() FROM attempts WHERE outcome = 'failed' GROUP BY failure_mode")),
        "spend_attempts": serve.scalar("SELECT sum(cost_usd) FROM attempts"),
        "spend_requests": serve.scalar("SELECT sum(cost_usd) FROM decisions"),
        "ranks": sorted(map(tuple, serve.query("SELECT DISTINCT tier, tier_rank FROM attempts"))),
    }


# -- (a) a fallback router: one Router call per user request ---------------------------------

FALLBACK_MODELS = [
    deployment("small-ok", "openai/gpt-4o-mini", "Thirty days.", "small", 0),
    deployment("small-429", "openai/gpt-4o-mini", "litellm.RateLimitError", "small", 0),
    deployment("small-500", "openai/gpt-4o-mini", "litellm.InternalServerError", "small", 0),
    deployment("medium-cw", "openai/gpt-4o", "litellm.ContextWindowExceededError", "medium", 1),
    deployment("large", "openai/gpt-4o", "Thirty days, counted from delivery.", "large", 2),
]
FALLBACKS = [{"small-429": ["large"]}, {"small-500": ["medium-cw"]}]
CONTEXT_WINDOW_FALLBACKS = [{"medium-cw": ["large"]}]
# Request i enters at ENTRIES[i % 4]: kept; 429 -> large; 500 -> context overflow -> large; the
# last one's walk fails entirely (429 is the group's only deployment, no fallback).
ENTRIES = ["small-ok", "small-429", "small-500", "small-429-alone"]
FALLBACK_REQUESTS = 160


def fallback_router() -> litellm.Router:
    models = [*FALLBACK_MODELS, deployment("small-429-alone", "openai/gpt-4o-mini", "litellm.RateLimitError", "small", 0)]
    return litellm.Router(
        model_list=models,
        fallbacks=FALLBACKS,
        context_window_fallbacks=CONTEXT_WINDOW_FALLBACKS,
        num_retries=0,
        disable_cooldowns=True,
    )


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_fallback_router_figures_equal_litellm_s_own(mode, env, serve, loggers):
    logger, count = loggers
    router = fallback_router()
    outcomes: collections.Counter[str] = collections.Counter()

    def handle(i: int) -> None:
        try:
            router.completion(model=ENTRIES[i % 4], messages=MESSAGES)
            outcomes["served"] += 1
        except litellm.RateLimitError:
            outcomes["raised"] += 1

    async def ahandle(i: int) -> None:
        try:
            await router.acompletion(model=ENTRIES[i % 4], messages=MESSAGES)
            outcomes["served"] += 1
        except litellm.RateLimitError:
            outcomes["raised"] += 1

    if mode == "sync":
        for i in range(FALLBACK_REQUESTS):
            handle(i)
        logger.flush(timeout=30)
    else:

        async def run() -> None:
            gate = asyncio.Semaphore(16)

            async def one(i: int) -> None:
                async with gate:
                    await ahandle(i)

            await asyncio.gather(*(one(i) for i in range(FALLBACK_REQUESTS)))
            await logger.aflush(timeout=30)

        asyncio.run(run())

    n = FALLBACK_REQUESTS
    assert outcomes == {"served": 3 * n // 4, "raised": n // 4}
    serve.wait_for("SELECT count() FROM decisions", n)
    figures = store_figures(serve)
    failures = count.failures()
    # What was injected, and what LiteLLM reported, are the same walk.
    assert failures == {"RateLimitError": n // 2, "InternalServerError": n // 4, "ContextWindowExceededError": n // 4}
    assert count.successes() == 3 * n // 4
    assert figures["requests"] == n
    assert figures["served"] == outcomes["served"] == count.successes()
    assert figures["attempts"] == len(count.calls)
    assert figures["by_outcome"] == {"accepted": count.successes(), "failed": sum(failures.values())}
    assert figures["failure_modes"] == {
        "rate_limited": failures["RateLimitError"],
        "provider_error": failures["InternalServerError"],
        "context_overflow": failures["ContextWindowExceededError"],
    }
    assert count.spend() > 0
    assert figures["spend_attempts"] == pytest.approx(count.spend(), rel=1e-12, abs=1e-15)
    assert figures["spend_requests"] == pytest.approx(count.spend(), rel=1e-12, abs=1e-15)
    assert figures["ranks"] == [("large", 2), ("medium", 1), ("small", 0)]
    # One request per Router call, keyed by LiteLLM's trace id; attempts per request as walked.
    walks = dict(serve.query("SELECT attempt_count, count() FROM decisions GROUP BY attempt_count"))
    assert walks == {1: n // 2, 2: n // 4, 3: n // 4}
    assert serve.scalar("SELECT countIf(escalation_count > 0) FROM decisions") == 0
    stats = logger.stats()
    assert stats.get("errors", 0) == 0 and stats.get("late_events", 0) == 0, stats
    assert stats["requests_emitted"] == n


# -- (b) a three-tier cascade: several Router calls per user request ----------------------------

CASCADE_MODELS = [
    deployment("small", "openai/gpt-4o-mini", "Maybe thirty days?", "small", 0),
    deployment("small-flaky", "openai/gpt-4o-mini", "litellm.RateLimitError", "small", 0),
    deployment("small-backup", "anthropic/claude-3-haiku-20240307", "Maybe thirty days?", "small", 0),
    deployment("medium", "openai/gpt-4o", "Thirty days, I think.", "medium", 1),
    deployment("large", "anthropic/claude-3-opus-20240229", "Thirty days from delivery.", "large", 2),
    deployment("large-flaky", "anthropic/claude-3-opus-20240229", "litellm.InternalServerError", "large", 2),
    deployment("large-backup", "openai/gpt-4o", "Thirty days from delivery.", "large", 2),
]
CASCADE_FALLBACKS = [{"small-flaky": ["small-backup"]}, {"large-flaky": ["large-backup"]}]
CASCADE_REQUESTS = 120


def confidence(i: int, tier: str) -> float:
    """The router's own gate (a stand-in for a verifier): small passes 1 in 3, medium 1 in 2 of the rest."""
    if tier == "small":
        return 0.9 if i % 3 == 0 else 0.3
    return 0.9 if i % 3 == 1 else 0.5


def cascade_router() -> litellm.Router:
    return litellm.Router(model_list=CASCADE_MODELS, fallbacks=CASCADE_FALLBACKS, num_retries=0, disable_cooldowns=True)


def run_cascade_sync(rw: RouterWatch, router: litellm.Router, i: int) -> None:
    small = "small-flaky" if i % 5 == 0 else "small"
    large = "large-flaky" if i % 4 == 0 else "large"
    with rw.decision(request_id=f"req-{i}", category="billing") as d:
        router.completion(model=small, messages=MESSAGES)
        score = confidence(i, "small")
        if score < 0.7:
            d.reject("low_confidence", score=score, threshold=0.7)
            router.completion(model="medium", messages=MESSAGES)
            score = confidence(i, "medium")
            if score < 0.8:
                d.reject("verifier_rejected", score=score, threshold=0.8, kind="verifier")
                stream = router.completion(model=large, messages=MESSAGES, stream=i % 2 == 0)
                if i % 2 == 0:
                    for _chunk in stream:
                        pass


async def run_cascade_async(rw: RouterWatch, router: litellm.Router, i: int) -> None:
    small = "small-flaky" if i % 5 == 0 else "small"
    large = "large-flaky" if i % 4 == 0 else "large"
    async with rw.decision(request_id=f"req-{i}", category="billing") as d:
        await router.acompletion(model=small, messages=MESSAGES)
        score = confidence(i, "small")
        if score < 0.7:
            d.reject("low_confidence", score=score, threshold=0.7)
            await router.acompletion(model="medium", messages=MESSAGES)
            score = confidence(i, "medium")
            if score < 0.8:
                d.reject("verifier_rejected", score=score, threshold=0.8, kind="verifier")
                stream = await router.acompletion(model=large, messages=MESSAGES, stream=i % 2 == 0)
                if i % 2 == 0:
                    async for _chunk in stream:
                        pass


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_cascade_figures_equal_litellm_s_own(mode, env, serve, loggers):
    logger, count = loggers
    router = cascade_router()
    n = CASCADE_REQUESTS
    if mode == "sync":
        for i in range(n):
            run_cascade_sync(logger.tracker.rw, router, i)
    else:

        async def run() -> None:
            gate = asyncio.Semaphore(16)

            async def one(i: int) -> None:
                async with gate:
                    await run_cascade_async(logger.tracker.rw, router, i)

            await asyncio.gather(*(one(i) for i in range(n)))

        asyncio.run(run())

    serve.wait_for("SELECT count() FROM decisions", n)
    figures = store_figures(serve)
    reach_medium = [i for i in range(n) if i % 3 != 0]
    reach_large = [i for i in range(n) if i % 3 == 2]
    failures = count.failures()
    assert failures == {
        "RateLimitError": sum(1 for i in range(n) if i % 5 == 0),
        "InternalServerError": sum(1 for i in reach_large if i % 4 == 0),
    }
    assert count.successes() == n + len(reach_medium) + len(reach_large)
    assert figures["requests"] == figures["served"] == n
    assert figures["attempts"] == len(count.calls)
    assert figures["by_outcome"] == {
        "accepted": n,
        "escalated": len(reach_medium) + len(reach_large),
        "failed": sum(failures.values()),
    }
    assert figures["failure_modes"] == {
        "rate_limited": failures["RateLimitError"],
        "provider_error": failures["InternalServerError"],
    }
    assert figures["spend_attempts"] == pytest.approx(count.spend(), rel=1e-12, abs=1e-15)
    assert figures["spend_requests"] == pytest.approx(count.spend(), rel=1e-12, abs=1e-15)
    assert figures["ranks"] == [("large", 2), ("medium", 1), ("small", 0)]
    # Escalations per tier, with the gate the router stated, and the routing mix.
    escalations = sorted(map(tuple, serve.query(
        "SELECT tier, escalation_reason, gate_kind, gate_score, gate_threshold, count() FROM attempts "
        "WHERE outcome = 'escalated' GROUP BY ALL ORDER BY ALL")))
    assert escalations == [
        ("medium", "verifier_rejected", "verifier", 0.5, 0.8, len(reach_large)),
        ("small", "low_confidence", "confidence", 0.3, 0.7, len(reach_medium)),
    ]
    mix = dict(serve.query("SELECT final_tier, count() FROM decisions GROUP BY final_tier"))
    assert mix == {"small": n - len(reach_medium), "medium": len(reach_medium) - len(reach_large), "large": len(reach_large)}
    assert serve.scalar("SELECT sum(escalation_count) FROM decisions") == len(reach_medium) + len(reach_large)
    assert serve.scalar("SELECT countIf(request_id LIKE 'req-%') FROM decisions") == n
    # Streamed answers carry LiteLLM's time to first token, within the attempt.
    streamed = [i for i in reach_large if i % 2 == 0]
    assert serve.scalar("SELECT countIf(ttft_ms IS NOT NULL) FROM attempts") == len(streamed)
    assert serve.scalar("SELECT countIf(ttft_ms > latency_ms) FROM attempts") == 0
    # The contract's timing rule held for every request (none was dead-lettered: all n stored).
    assert serve.scalar(
        "SELECT count() FROM decisions d INNER JOIN attempts a USING event_id "
        "WHERE a.outcome = 'accepted' AND d.latency_ms + 1 < a.offset_ms + a.latency_ms") == 0
    stats = logger.stats()
    assert stats.get("errors", 0) == 0 and stats.get("unsettled_calls", 0) == 0, stats
    assert stats.get("late_events", 0) == 0 and stats.get("unexplained_escalations", 0) == 0, stats
    assert stats["requests_settled"] == n
    assert stats.get("requests_emitted", 0) == 0, "no call escaped its with-block"
