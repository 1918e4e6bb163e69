"""Pure mapping of LiteLLM's callback payloads (routerwatch.integrations.litellm_mapping)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routerwatch.events.vocabulary import FailureMode
from routerwatch.integrations import litellm_mapping as m


def _litellm_exceptions():
    from routerwatch.integrations import litellm as _integration  # noqa: F401  (offline-safe import first)
    import litellm

    return litellm


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("RateLimitError", "rate_limited"),
        ("Timeout", "timeout"),
        ("ServiceUnavailableError", "provider_error"),
        ("InternalServerError", "provider_error"),
        ("BadGatewayError", "provider_error"),
        ("APIConnectionError", "provider_error"),
        ("ContextWindowExceededError", "context_overflow"),
        ("ContentPolicyViolationError", "refusal"),
        ("AuthenticationError", "provider_error"),
        ("PermissionDeniedError", "provider_error"),
        ("NotFoundError", "provider_error"),
        ("BadRequestError", "other"),
        ("UnprocessableEntityError", "other"),
        ("UnsupportedParamsError", "other"),
        ("JSONSchemaValidationError", "format_drift"),
        ("MidStreamFallbackError", "provider_error"),
        ("BudgetExceededError", "other"),
    ],
)
def test_litellm_exception_classes_map_onto_the_failure_vocabulary(name, mode):
    _litellm_exceptions()
    import litellm.exceptions

    klass = getattr(litellm.exceptions, name)
    exc = klass.__new__(klass)  # the mapping reads the class only: no constructor arguments needed
    assert m.failure_mode(exc) == mode


def test_a_subclass_maps_by_its_most_derived_known_class():
    litellm = _litellm_exceptions()
    # ContextWindowExceededError and ContentPolicyViolationError are BadRequestErrors.
    assert m.failure_mode(litellm.ContextWindowExceededError("x", model="m", llm_provider="openai")) == "context_overflow"
    assert m.failure_mode(litellm.BadRequestError("x", model="m", llm_provider="openai")) == "other"

    class MyRateLimit(litellm.RateLimitError):
        pass

    assert m.failure_mode(MyRateLimit.__new__(MyRateLimit)) == "rate_limited"


def test_every_mapped_mode_is_in_the_vocabulary():
    assert set(m.EXCEPTION_FAILURE_MODES.values()) <= {mode.value for mode in FailureMode}


@given(st.integers(min_value=100, max_value=599))
def test_an_unknown_exception_with_a_status_maps_by_status(status):
    class Unknown(Exception):
        status_code = status

    mode = m.failure_mode(Unknown())
    assert mode in {f.value for f in FailureMode}
    expected = {408: "timeout", 504: "timeout", 429: "rate_limited"}.get(status)
    if expected is None:
        expected = "provider_error" if status in (401, 402, 403, 404) or status >= 500 else "other"
    assert mode == expected


def test_plain_exceptions():
    assert m.failure_mode(TimeoutError()) == "timeout"
    assert m.failure_mode(ConnectionRefusedError()) == "provider_error"
    assert m.failure_mode(ValueError()) == "other"
    assert m.failure_mode(None) == "other"


NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]*$")


@given(st.text(max_size=300))
def test_clean_name_always_gives_a_contract_name(text):
    name = m.clean_name(text)
    assert NAME.match(name) and len(name) <= 128


def test_clean_name_keeps_litellm_model_names():
    assert m.clean_name("openai/gpt-4o-mini") == "openai/gpt-4o-mini"
    assert m.clean_name("bedrock/anthropic.claude-3 haiku") == "bedrock/anthropic.claude-3_haiku"
    assert m.clean_name(None) == "unknown"


@given(st.text(min_size=1, max_size=40), st.integers(min_value=0, max_value=255))
def test_model_info_keys_give_tier_and_rank(tier, rank):
    got_tier, got_rank = m.tier_from_model_info({"routerwatch_tier": tier, "routerwatch_tier_rank": rank, "id": "x"})
    assert got_rank == rank
    assert got_tier == m.clean_name(tier)


@pytest.mark.parametrize("rank", [-1, 256, 1.5, True, "two", None])
def test_an_unusable_rank_is_left_for_the_request_to_decide(rank):
    assert m.tier_from_model_info({"routerwatch_tier": "small", "routerwatch_tier_rank": rank}) == ("small", None)


def test_model_info_without_keys_names_nothing():
    assert m.tier_from_model_info({"id": "abc"}) == (None, None)
    assert m.tier_from_model_info(None) == (None, None)
    assert m.tier_from_model_info({"routerwatch_tier_rank": "3"}) == (None, 3)


def test_tiers_argument():
    assert m.tier_ranks(["small", "medium", "large"]) == {"small": 0, "medium": 1, "large": 2}
    assert m.tier_ranks({"small": 0, "large": 2}) == {"small": 0, "large": 2}
    assert m.tier_ranks(None) == {}
    with pytest.raises(ValueError, match="rank"):
        m.tier_ranks({"small": -1})
    with pytest.raises(ValueError):
        m.tier_ranks("small")


ROUTING_DECISION = {
    "router_model_name": "smart",
    "router_type": "complexity",
    "routed_model": "big",
    "cause": "heuristic_scorer",
    "tier": "REASONING",
    "score": 0.615,
    "escalated": False,
    "signals": ["reasoning (step by step)"],  # quotes the prompt: never copied
}


def test_auto_router_decision_becomes_the_route():
    route = m.route_from_routing_decision(ROUTING_DECISION)
    assert route == {
        "rule": "heuristic_scorer",
        "features": {
            "litellm.tier": "REASONING",
            "litellm.routed_model": "big",
            "litellm.router_model_name": "smart",
            "litellm.router_type": "complexity",
            "litellm.score": 0.615,
            "litellm.escalated": False,
        },
    }
    from routerwatch.events.models import Route

    Route.model_validate(route)  # the contract accepts it
    assert m.route_from_routing_decision(None) is None
    assert m.route_from_routing_decision({"classifier_confidence": 0.8}) == {"confidence": 0.8}
    assert m.route_from_routing_decision({"classifier_confidence": 3.0}) is None


def test_auto_router_tier_only_for_the_routed_model_group():
    assert m.auto_router_tier(ROUTING_DECISION, "big") == ("REASONING", 3)
    assert m.auto_router_tier(ROUTING_DECISION, "smart") == ("REASONING", 3)  # the auto-router's own group
    assert m.auto_router_tier(ROUTING_DECISION, "fallback-group") == (None, None)
    assert m.auto_router_tier({**ROUTING_DECISION, "tier": "gold"}, "big") == ("gold", None)


def _payload(**overrides):
    kwargs = {
        "litellm_call_id": "call-1",
        "litellm_trace_id": "trace-1",
        "model": "gpt-4o-mini",
        "custom_llm_provider": "openai",
        "response_cost": 0.000225,
        "stream": False,
        "litellm_params": {
            "metadata": {"model_group": "small", "attempted_fallbacks": 0, "routerwatch_category": "billing"},
            "model_info": {"id": "d1", "routerwatch_tier": "small", "routerwatch_tier_rank": 0},
        },
        "standard_logging_object": {"prompt_tokens": 10, "completion_tokens": 20, "metadata": {}},
    }
    kwargs.update(overrides)
    return kwargs


T0 = datetime(2026, 12, 7, 12, 0, 0)


def test_a_success_payload_becomes_an_accepted_attempt_s_material():
    record = m.call_record(_payload(), T0, T0 + timedelta(milliseconds=250), ok=True)
    assert (record.call_id, record.trace_id, record.ok) == ("call-1", "trace-1", True)
    assert (record.tier, record.tier_rank, record.model, record.provider) == ("small", 0, "gpt-4o-mini", "openai")
    assert (record.input_tokens, record.output_tokens, record.cost_usd) == (10, 20, 0.000225)
    assert record.latency_ms == pytest.approx(250.0)
    assert record.ttft_ms is None  # not streamed
    assert record.hints == {"category": "billing"}


def test_a_streamed_success_has_ttft_from_the_completion_start_time():
    payload = _payload(stream=True, completion_start_time=T0 + timedelta(milliseconds=40))
    record = m.call_record(payload, T0, T0 + timedelta(milliseconds=300), ok=True)
    assert record.ttft_ms == pytest.approx(40.0)


@given(st.integers(min_value=-5_000, max_value=5_000), st.integers(min_value=0, max_value=5_000))
@settings(max_examples=50)
def test_ttft_never_exceeds_latency(first_ms, latency_ms):
    payload = _payload(stream=True, completion_start_time=T0 + timedelta(milliseconds=first_ms))
    record = m.call_record(payload, T0, T0 + timedelta(milliseconds=latency_ms), ok=True)
    assert 0.0 <= record.ttft_ms <= record.latency_ms


def test_a_failure_payload_carries_its_failure_mode_and_no_tokens():
    litellm = _litellm_exceptions()
    payload = _payload(exception=litellm.RateLimitError("slow down", model="gpt-4o-mini", llm_provider="openai"), response_cost=0)
    record = m.call_record(payload, T0, T0 + timedelta(milliseconds=5), ok=False)
    assert (record.ok, record.failure_mode, record.cost_usd, record.input_tokens) == (False, "rate_limited", 0.0, 0)


def test_tier_falls_back_to_the_tiers_argument_then_the_model_group():
    payload = _payload(litellm_params={"metadata": {"model_group": "medium", "attempted_fallbacks": 1}, "model_info": {"id": "d"}})
    assert (m.call_record(payload, T0, T0, ok=True, tiers={"medium": 4}).tier_rank) == 4
    record = m.call_record(payload, T0, T0, ok=True)
    assert (record.tier, record.tier_rank, record.fallback_depth) == ("medium", None, 1)


def test_end_before_start_is_a_zero_latency_not_a_negative_one():
    record = m.call_record(_payload(), T0, T0 - timedelta(seconds=1), ok=True)
    assert record.latency_ms == 0.0


@given(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(max_size=5)))
def test_odd_costs_and_token_counts_never_break_the_record(value):
    payload = _payload(response_cost=value, standard_logging_object={"prompt_tokens": value, "completion_tokens": value})
    record = m.call_record(payload, T0, T0, ok=True)
    assert record.cost_usd >= 0.0 and record.cost_usd == record.cost_usd
    assert 0 <= record.input_tokens <= 2**32 - 1
