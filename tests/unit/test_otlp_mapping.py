"""The span -> RoutingDecision mapping (routerwatch.otlp.mapping) and the OTLP decoders (routerwatch.otlp.spans)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from routerwatch.otlp.errors import BadPayload, TraceRejected
from routerwatch.otlp.mapping import (
    ERROR_RULES,
    TABLE,
    build_decision,
    event_id,
    failure_mode,
    price_lookup,
    render_markdown,
    roles,
)
from routerwatch.otlp.spans import STATUS_ERROR, Span, decode_json, decode_protobuf, to_otlp_json
from routerwatch.prices import default_prices_file, load_prices

REPO = Path(__file__).resolve().parents[2]
TRACE = "0af7651916cd43dd8448eb211c80319c"
PRICES = price_lookup(load_prices(default_prices_file()))
T0 = 1_767_000_000_000_000_000  # ns


def span(sid: int, parent: int | None, start_ms: float, end_ms: float, name: str = "s", status: int = 0,
         resource: dict | None = None, **attributes) -> Span:
    return Span(TRACE, f"{sid:016x}", f"{parent:016x}" if parent else "", name,
                T0 + int(start_ms * 1e6), T0 + int(end_ms * 1e6), {k.replace("__", "."): v for k, v in attributes.items()},
                resource or {"service.name": "svc"}, status)


def chat(sid, parent, start, end, model="small-8b", **attributes):
    return span(sid, parent, start, end, "chat", **{"gen_ai.operation.name": "chat", "gen_ai.request.model": model,
                                                   "gen_ai.provider.name": "vllm", **attributes})


def decision(spans, prices=PRICES) -> dict:
    key, raw = build_decision(TRACE, spans, prices)
    out = json.loads(raw)
    assert key == out["request_id"].encode()
    return out


def test_the_doc_shows_exactly_the_table():
    doc = (REPO / "docs" / "otlp.md").read_text()
    block = re.search(r"<!-- mapping:start -->\n(.*?)<!-- mapping:end -->", doc, re.S)
    assert block, "docs/otlp.md needs the mapping block"
    assert block.group(1) == render_markdown(), "docs/otlp.md's table differs from routerwatch.otlp.mapping: re-render it"


def test_every_contract_field_a_router_can_set_is_in_the_table():
    targets = {row.target for row in TABLE}
    for field in ("request_id", "router.id", "category", "tenant", "attempts[].tier", "attempts[].model",
                  "attempts[].provider", "attempts[].input_tokens", "attempts[].output_tokens", "attempts[].outcome",
                  "attempts[].gate.kind", "attempts[].escalation_reason", "attempts[].failure_mode", "final.latency_ms"):
        assert field in targets
    sources = {s for row in TABLE for s in row.sources}
    for attribute in ("gen_ai.provider.name", "gen_ai.request.model", "gen_ai.response.model", "gen_ai.usage.input_tokens",
                      "gen_ai.usage.output_tokens", "error.type", "routing.original_model", "routing.selected_model",
                      "routing.reason", "category.name", "litellm.model_group", "litellm.cost.total"):
        assert attribute in sources


@pytest.mark.parametrize("error_type, mode", [
    ("429", "rate_limited"), ("litellm.RateLimitError", "rate_limited"), ("openai.APITimeoutError", "timeout"),
    ("TimeoutError", "timeout"), ("504", "timeout"), ("ContextWindowExceededError", "context_overflow"),
    ("InternalServerError", "provider_error"), ("503", "provider_error"), ("APIConnectionError", "provider_error"),
    ("ContentPolicyViolationError", "refusal"), ("refusal", "refusal"), ("format_drift", "format_drift"),
    ("_OTHER", "other"), ("ValueError", "other"),
])
def test_error_type_is_classified_into_the_failure_taxonomy(error_type, mode):
    assert failure_mode(error_type) == mode


def test_error_rules_name_only_failure_modes():
    from routerwatch.events.vocabulary import FailureMode

    assert {mode for mode, _ in ERROR_RULES} <= {m.value for m in FailureMode}


def test_a_cascade_with_escalation_and_fallback():
    spans = [
        span(1, None, 0, 900, "route", **{"routerwatch.router.id": "r1", "routerwatch.category": "math", "routerwatch.tenant": "acme"}),
        chat(2, 1, 10, 200, "small-8b", **{"routerwatch.tier": "small", "gen_ai.usage.input_tokens": 100,
                                           "gen_ai.usage.output_tokens": 10, "routerwatch.gate.kind": "verifier"}),
        chat(3, 1, 210, 300, "large-frontier", status=STATUS_ERROR, **{"routerwatch.tier": "large", "error.type": "429"}),
        chat(4, 1, 310, 850, "large-frontier", **{"routerwatch.tier": "large", "gen_ai.usage.input_tokens": 100,
                                                  "gen_ai.usage.output_tokens": 50, "routerwatch.cost_usd": 0.5}),
    ]
    d = decision(list(reversed(spans)))  # order of arrival does not matter
    assert d["event_id"] == event_id(TRACE)
    assert d["router"] == {"id": "r1", "strategy": "cascade"}
    assert (d["category"], d["tenant"], d["request_id"]) == ("math", "acme", TRACE)
    a = d["attempts"]
    assert [(x["tier"], x["tier_rank"], x["outcome"]) for x in a] == [("small", 0, "escalated"), ("large", 2, "failed"), ("large", 2, "accepted")]
    assert a[0]["escalation_reason"] == "verifier_rejected" and a[0]["gate"] == {"kind": "verifier", "passed": False}
    assert a[1]["failure_mode"] == "rate_limited"
    assert a[0]["cost_usd"] == pytest.approx((100 * 0.15 + 10 * 0.60) / 1e6)  # from the price table
    assert a[2]["cost_usd"] == 0.5  # as the router reported it
    assert (a[1]["offset_ms"], a[1]["latency_ms"]) == (210, 90)
    assert d["final"] == {"served": True, "tier": "large", "model": "large-frontier", "latency_ms": 900,
                          "cost_usd": pytest.approx(a[0]["cost_usd"] + 0.5)}
    assert d["occurred_at"] == "2025-12-29T09:20:00.000Z"


def test_vllm_semantic_router_and_litellm_attributes():
    resource = {"service.name": "vllm-semantic-router", "service.version": "0.4", "deployment.environment.name": "staging"}
    spans = [
        span(1, None, 0, 500, "semantic_router.request.received", resource=resource, **{"request.id": "req-9"}),
        span(2, 1, 1, 5, "semantic_router.classification", resource=resource, **{"category.name": "physics"}),
        span(3, 1, 5, 8, "semantic_router.routing.decision", resource=resource, **{
            "routing.original_model": "auto", "routing.selected_model": "medium-70b", "routing.reason": "domain:physics"}),
        chat(4, 1, 10, 400, "medium-70b", **{"litellm.model_group": "medium", "litellm.cost.total": 0.002,
                                             "litellm.cache_hit": False, "gen_ai.usage.prompt_tokens": 30}),
        # LiteLLM's raw request span inside its litellm_request span: part of the same attempt.
        chat(5, 4, 20, 390, "medium-70b"),
        # A call LiteLLM makes for itself (its auto-router's classifier) is not an attempt.
        chat(6, 1, 2, 4, "small-8b", **{"litellm.request.purpose": "autorouter_classifier"}),
    ]
    d = decision(spans)
    assert d["request_id"] == "req-9"
    assert d["router"] == {"id": "vllm-semantic-router", "version": "0.4", "strategy": "cascade"}
    assert (d["environment"], d["category"]) == ("staging", "physics")
    assert d["route"] == {"rule": "domain:physics", "features": {"original_model": "auto", "selected_model": "medium-70b"}}
    [a] = d["attempts"]
    assert (a["tier"], a["tier_rank"], a["cost_usd"], a["input_tokens"], a["cache_hit"]) == ("medium", 1, 0.002, 30, False)


def test_roles_pick_the_outer_inference_span_and_the_router_span():
    spans = [span(9, None, 0, 100, "http"), span(1, 9, 1, 99, "route", **{"routerwatch.router.id": "r"}),
             chat(2, 1, 2, 50), chat(3, 2, 3, 40), chat(4, 1, 51, 90)]
    request, attempts, others = roles(spans)
    assert request.span_id == f"{1:016x}"
    assert [s.span_id for s in attempts] == [f"{2:016x}", f"{4:016x}"]


def test_clock_skew_never_puts_an_attempt_before_its_request():
    spans = [span(1, None, 100, 400, "route", **{"routerwatch.router.id": "r"}), chat(2, 1, 90, 420)]
    d = decision(spans)
    assert d["attempts"][0]["offset_ms"] == 0
    assert d["final"]["latency_ms"] == 330


def test_strings_for_numbers_are_read_as_numbers():
    d = decision([chat(1, None, 0, 10, **{"routerwatch.tier_rank": "3", "gen_ai.usage.input_tokens": "12", "routerwatch.gate.kind": "confidence",
                                          "routerwatch.gate.score": "0.9", "routerwatch.gate.passed": "true"})])
    a = d["attempts"][0]
    assert (a["tier_rank"], a["input_tokens"], a["gate"]["score"], a["gate"]["passed"], a["outcome"]) == (3, 12, 0.9, True, "accepted")


def test_explicit_shadow_and_outcomes_are_kept():
    spans = [span(1, None, 0, 100, "route", **{"routerwatch.router.id": "r", "routerwatch.shadow": True}),
             chat(2, 1, 1, 50, **{"routerwatch.outcome": "shadow"}), chat(3, 1, 2, 60, "large-frontier")]
    d = decision(spans)
    assert [a["outcome"] for a in d["attempts"]] == ["shadow", "accepted"]
    assert d["final"]["cost_usd"] == d["attempts"][1]["cost_usd"]


@pytest.mark.parametrize("spans, reason, words", [
    ([span(1, None, 0, 10, "route", **{"routerwatch.router.id": "r"})], "otlp_no_attempts", "none of them a model call"),
    ([chat(1, None, 0, 10, **{"routerwatch.outcome": "maybe"})], "otlp_invalid", "attempts.0.outcome"),
    ([chat(1, None, 0, 10, **{"routerwatch.tier": "has space"})], "otlp_invalid", "attempts.0.tier"),
    ([span(1, None, 0, 10, "x", **{"gen_ai.operation.name": "chat"})], "otlp_invalid", "no gen_ai.request.model"),
    ([chat(1, None, 0, 10, **{"routerwatch.escalation_reason": "rule"})], "otlp_invalid", "escalation_reason"),
])
def test_traces_that_cannot_be_decisions_are_rejected_with_reason_and_trace_id(spans, reason, words):
    with pytest.raises(TraceRejected) as caught:
        build_decision(TRACE, spans, PRICES)
    assert caught.value.reason == reason
    assert TRACE in caught.value.detail and words in caught.value.detail


def _sdk_spans():
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import StatusCode

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-router"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("route", attributes={"routerwatch.router.id": "r", "routerwatch.experiment.id": "e1",
                                                           "routerwatch.experiment.variant": "b", "tags": ["a", "b"]}):
        with tracer.start_as_current_span("chat", attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "small-8b",
                                                              "gen_ai.usage.input_tokens": 7, "x.flag": True, "x.f": 0.5}) as s:
            s.set_status(StatusCode.ERROR)
            s.set_attribute("error.type", "timeout")
        with tracer.start_as_current_span("chat", attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "medium-70b"}):
            pass
    return memory.get_finished_spans()


def test_protobuf_and_json_decode_to_the_same_spans_and_decision():
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    body = encode_spans(_sdk_spans()).SerializeToString()
    decoded = decode_protobuf(body)
    assert decoded.rejected == 0 and len(decoded.spans) == 3
    again = decode_json(to_otlp_json(decoded.spans))
    assert [(s.span_id, s.attributes, s.resource, s.status_code) for s in again.spans] == \
        [(s.span_id, s.attributes, s.resource, s.status_code) for s in decoded.spans]
    trace = decoded.spans[0].trace_id
    assert build_decision(trace, decoded.spans, PRICES) == build_decision(trace, again.spans, PRICES)
    d = json.loads(build_decision(trace, decoded.spans, PRICES)[1])
    assert d["experiment"] == {"id": "e1", "variant": "b"}
    assert [(a["outcome"], a.get("failure_mode")) for a in d["attempts"]] == [("failed", "timeout"), ("accepted", None)]


def test_unusable_spans_are_rejected_one_by_one_and_garbage_is_a_bad_payload():
    good = {"traceId": TRACE, "spanId": "00f067aa0ba902b7", "name": "x", "startTimeUnixNano": "10", "endTimeUnixNano": "20"}
    body = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [
        good,
        {**good, "spanId": "abc"},  # wrong length
        {**good, "spanId": "00f067aa0ba902b8", "endTimeUnixNano": "5"},  # ends before it starts
        {**good, "spanId": "zz"},  # not hex
        {**good, "spanId": "00f067aa0ba902b9", "status": {"code": "STATUS_CODE_ERROR"}, "kind": "SPAN_KIND_CLIENT",
         "attributes": [{"key": "n", "value": {"intValue": "5"}}, {"key": "a", "value": {"arrayValue": {"values": [{"boolValue": True}]}}}]},
    ]}]}]}
    decoded = decode_json(json.dumps(body).encode())
    assert len(decoded.spans) == 2 and decoded.rejected == 3 and len(decoded.errors) == 3
    assert decoded.spans[1].status_code == STATUS_ERROR and decoded.spans[1].attributes == {"n": 5, "a": [True]}
    for garbage in (b"[1]", b"{", '{"resourceSpans": 5}'.encode()):
        with pytest.raises(BadPayload):
            decode_json(garbage)
    with pytest.raises(BadPayload):
        decode_protobuf(b"\x0a\xff\xff\xff")
