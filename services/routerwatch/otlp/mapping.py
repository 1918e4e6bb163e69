"""The one mapping from OpenTelemetry spans to a RoutingDecision: a table, and the function that applies it.

:data:`TABLE` says, for every field of the decision, which span attributes fill it (the first one
present wins) and what is used when none is: OpenTelemetry's GenAI conventions first, then
``routerwatch.*`` attributes for what GenAI has no convention for yet (tier, outcome, gate...), then
what real routers already emit (vLLM Semantic Router's ``routing.*`` and ``category.name``,
LiteLLM's ``litellm.*``). docs/otlp.md shows :func:`render_markdown` of it; a test keeps the two equal.

Which spans are what (:func:`roles`):

- an **attempt** is an inference span: ``gen_ai.operation.name`` is an inference operation
  (:data:`INFERENCE_OPERATIONS`), or it is absent and the span has ``gen_ai.request.model`` or
  ``routerwatch.tier``; ``routerwatch.attempt`` (bool) overrides both ways; a span with
  ``litellm.request.purpose`` (a call LiteLLM makes for itself, e.g. its auto-router's classifier)
  is not one. An inference span inside another (LiteLLM's ``raw_gen_ai_request`` under its
  ``litellm_request``, a client library's span under a framework's) belongs to the outer one.
  Attempts are ordered by start time.
- the **request span** is the span with ``routerwatch.router.id``, else the trace's root (no
  parent), else the longest span that is not an attempt. Request fields are read from it, then
  from the trace's other spans (vLLM Semantic Router puts ``routing.*`` and ``category.name`` on
  child spans), first start first; resource fields from its resource.

:func:`build_decision` is pure: spans in, the decision's JSON bytes out (validated against the
contract), or :class:`TraceRejected` with a reason from :data:`DEAD_LETTER_REASONS`.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable

from pydantic import ValidationError

from routerwatch.events.models import RoutingDecision
from routerwatch.events.validation import describe, json_validator
from routerwatch.events.vocabulary import FailureMode
from routerwatch.otlp.errors import TraceRejected
from routerwatch.otlp.spans import STATUS_ERROR, Span

# event_id = uuid5(EVENT_NAMESPACE, trace id in hex): a re-sent trace is one event (ingest dedups by it).
EVENT_NAMESPACE = uuid.UUID("6f0b6c2e-1b1e-5c3a-9d7e-0a7f3e2f9b11")

INFERENCE_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "completion"})

DEAD_LETTER_REASONS = {
    "otlp_invalid": "the assembled decision breaks the event contract (the detail names the field)",
    "otlp_no_attempts": "the trace has a router span but no inference span",
    "otlp_trace_too_large": "the trace has more spans than ROUTERWATCH_OTLP__MAX_SPANS_PER_TRACE",
    "otlp_capacity": "ROUTERWATCH_OTLP__MAX_OPEN_TRACES traces were open when the trace's first span arrived",
    "otlp_late_span": "a span arrived after its trace was assembled (its grace or window had passed)",
}


@lru_cache(maxsize=4096)  # asked for twice per trace (the decision, and the assembler's record of it)
def event_id(trace_id: str) -> str:
    """The decision's event_id for a trace (lowercase hex id): deterministic, so a re-sent trace is stored once."""
    return str(uuid.uuid5(EVENT_NAMESPACE, trace_id))


@dataclass(frozen=True)
class Row:
    """One field of the decision: ``target`` (a dotted RoutingDecision path; ``attempts[].x`` per attempt),
    ``scope`` (request, resource or attempt), ``sources`` (attribute keys, first present wins) and
    ``otherwise`` (what is used when none is present)."""

    target: str
    scope: str
    sources: tuple[str, ...]
    otherwise: str


TABLE: tuple[Row, ...] = (
    Row("event_id", "trace", (), "uuid5 of the trace id: a re-sent trace is stored once"),
    Row("request_id", "request", ("routerwatch.request_id", "request.id"), "the trace id (32 hex digits)"),
    Row("occurred_at", "trace", (), "start of the request span (or of the first attempt, when earlier)"),
    Row("router.id", "request", ("routerwatch.router.id",), "resource `service.name`, else `unknown`"),
    Row("router.version", "request", ("routerwatch.router.version",), "resource `service.version`"),
    Row("router.strategy", "request", ("routerwatch.router.strategy",), "`cascade`"),
    Row("router.policy_version", "request", ("routerwatch.router.policy_version",), "none"),
    Row("environment", "request", ("routerwatch.environment",),
        "resource `deployment.environment.name`, `deployment.environment`, else `production`"),
    Row("category", "request", ("routerwatch.category", "category.name"), "`default`"),
    Row("tenant", "request", ("routerwatch.tenant",), "none"),
    Row("source", "request", ("routerwatch.source",), "none"),
    Row("shadow", "request", ("routerwatch.shadow",), "false"),
    Row("canary_id", "request", ("routerwatch.canary_id",), "none"),
    Row("experiment.id", "request", ("routerwatch.experiment.id",), "none (both or neither)"),
    Row("experiment.variant", "request", ("routerwatch.experiment.variant",), "none"),
    Row("route.rule", "request", ("routerwatch.route.rule", "routing.reason"), "none"),
    Row("route.confidence", "request", ("routerwatch.route.confidence",), "none"),
    Row("route.features.original_model", "request", ("routing.original_model",), "none"),
    Row("route.features.selected_model", "request", ("routing.selected_model",), "none"),
    Row("attempts[].index", "attempt", (), "position of the span among the attempts, by start time"),
    Row("attempts[].tier", "attempt", ("routerwatch.tier", "litellm.model_group"), "the attempt's model"),
    Row("attempts[].tier_rank", "attempt", ("routerwatch.tier_rank",), "the price table's `tier_rank` of the model at that provider, else 0"),
    Row("attempts[].model", "attempt", ("gen_ai.request.model", "gen_ai.response.model"), "none: dead-lettered"),
    Row("attempts[].provider", "attempt", ("gen_ai.provider.name", "gen_ai.system"), "`unknown`"),
    Row("attempts[].offset_ms", "attempt", (), "span start minus the request's start"),
    Row("attempts[].latency_ms", "attempt", (), "span end minus span start"),
    Row("attempts[].ttft_ms", "attempt", ("routerwatch.ttft_ms",), "none"),
    Row("attempts[].input_tokens", "attempt", ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"), "0"),
    Row("attempts[].output_tokens", "attempt", ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"), "0"),
    Row("attempts[].cost_usd", "attempt",
        ("routerwatch.cost_usd", "litellm.cost.total", "gen_ai.usage.cost", "gen_ai.cost.total_cost"),
        "tokens x the price table's price of the model at that provider, else 0"),
    Row("attempts[].outcome", "attempt", ("routerwatch.outcome",),
        "`failed` if the span's status is ERROR or it has `error.type`; else `escalated` if "
        "`routerwatch.gate.passed` is false or a later attempt follows; else `accepted`"),
    Row("attempts[].gate.kind", "attempt", ("routerwatch.gate.kind",), "no gate"),
    Row("attempts[].gate.score", "attempt", ("routerwatch.gate.score",), "none"),
    Row("attempts[].gate.threshold", "attempt", ("routerwatch.gate.threshold",), "none"),
    Row("attempts[].gate.passed", "attempt", ("routerwatch.gate.passed",), "true unless the attempt escalated"),
    Row("attempts[].escalation_reason", "attempt", ("routerwatch.escalation_reason",),
        "escalated attempts: from the gate kind (confidence: `low_confidence`, verifier: `verifier_rejected`, "
        "schema_check: `schema_invalid`, judge: `judge_rejected`, rule: `rule`), else `other`"),
    Row("attempts[].failure_mode", "attempt", ("routerwatch.failure_mode", "error.type"),
        "failed attempts: `other`; `error.type` is classified by the error rules below"),
    Row("attempts[].verify_latency_ms", "attempt", ("routerwatch.verify_latency_ms",), "0"),
    Row("attempts[].verify_cost_usd", "attempt", ("routerwatch.verify_cost_usd",), "0"),
    Row("attempts[].cache_hit", "attempt", ("routerwatch.cache_hit", "litellm.cache_hit", "cache.hit"), "false"),
    Row("final.served", "trace", (), "an attempt was accepted"),
    Row("final.tier / final.model", "trace", (), "the accepted attempt's"),
    Row("final.latency_ms", "trace", (), "end of the request span (or of the last attempt, when later) minus the request's start"),
    Row("final.cost_usd", "trace", (), "sum of the non-shadow attempts' cost_usd + verify_cost_usd"),
)

# error.type -> failure mode: the first rule with a fragment found in the normalised value wins
# (lowercase, the part after the last '.', without '_', '-' and spaces). A value that already is a
# failure mode is taken as it is.
ERROR_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("timeout", ("timeout", "timedout", "deadline", "408", "504")),
    ("rate_limited", ("ratelimit", "429", "toomanyrequests", "resourceexhausted", "quota")),
    ("context_overflow", ("contextwindow", "contextlength", "contextoverflow", "maximumcontext", "toolong")),
    ("refusal", ("contentpolicy", "contentfilter", "refusal", "safety")),
    ("invalid_tool_call", ("toolcall", "functioncall")),
    ("truncation", ("truncat",)),
    ("empty", ("empty",)),
    ("provider_error", ("500", "502", "503", "internalserver", "serviceunavailable", "apiconnection", "badgateway",
                        "overloaded", "connection", "unavailable", "apierror", "servererror")),
)
_FAILURE_MODES = frozenset(m.value for m in FailureMode)
_ESCALATION_FROM_GATE = {
    "confidence": "low_confidence", "verifier": "verifier_rejected", "schema_check": "schema_invalid",
    "judge": "judge_rejected", "rule": "rule",
}


def failure_mode(error_type: Any) -> str:
    """The failure mode of an ``error.type`` value (see :data:`ERROR_RULES`); ``other`` when no rule matches."""
    text = str(error_type).strip()
    if text in _FAILURE_MODES:
        return text
    norm = text.rsplit(".", 1)[-1].lower().replace("_", "").replace("-", "").replace(" ", "")
    for mode, fragments in ERROR_RULES:
        for fragment in fragments:
            if fragment in norm:
                return mode
    return "other"


# -- which span is what -------------------------------------------------------------------------


def is_inference(span: Span) -> bool:
    """True when ``span`` is a model call by the rules in this module's docstring (nesting aside)."""
    a = span.attributes
    explicit = a.get("routerwatch.attempt")
    if explicit is not None:
        return _bool(explicit)
    if "litellm.request.purpose" in a:
        return False
    op = a.get("gen_ai.operation.name")
    if op is not None:
        return op in INFERENCE_OPERATIONS
    return "gen_ai.request.model" in a or "routerwatch.tier" in a


def is_trigger(span: Span) -> bool:
    """A span whose arrival means the request is over: the trace's root, or a router span."""
    return not span.parent_span_id or "routerwatch.router.id" in span.attributes


def roles(spans: Iterable[Span]) -> tuple[Span | None, list[Span], list[Span]]:
    """(request span or None, attempts in order, the other spans first start first)."""
    spans = list(spans)
    by_id = {s.span_id: s for s in spans}
    inference = {s.span_id for s in spans if is_inference(s)}
    attempts: list[Span] = []
    others: list[Span] = []
    for s in spans:
        if s.span_id in inference:
            # The outermost inference span is the attempt: walk up (bounded: a cycle of parents stops).
            parent, steps, nested = s.parent_span_id, 0, False
            while parent and steps < len(spans):
                if parent in inference:
                    nested = True
                    break
                up = by_id.get(parent)
                parent = up.parent_span_id if up is not None else ""
                steps += 1
            if not nested:
                attempts.append(s)
        else:
            others.append(s)
    attempts.sort(key=lambda s: (s.start_ns, s.end_ns, s.span_id))
    others.sort(key=lambda s: (s.start_ns, s.span_id))
    request = next((s for s in others if "routerwatch.router.id" in s.attributes), None)
    if request is None:
        request = next((s for s in others if not s.parent_span_id), None)
    if request is None and others:
        request = max(others, key=lambda s: (s.end_ns - s.start_ns, -s.start_ns))
    return request, attempts, others


def is_routing_trace(spans: Iterable[Span]) -> bool:
    """False for a trace with neither an inference span nor a router span: not ours to judge (ignored)."""
    return any(is_inference(s) or "routerwatch.router.id" in s.attributes for s in spans)


# -- values ---------------------------------------------------------------------------------------


def _bool(value: Any) -> Any:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _int(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # left for the contract to refuse with a message naming the field


def _float(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _text(value: Any) -> Any:
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _first(sources: tuple[str, ...], *attribute_sets: dict[str, Any]) -> Any:
    for attributes in attribute_sets:
        for key in sources:
            value = attributes.get(key)
            if value is not None:
                return value
    return None


_SOURCES = {row.target: row.sources for row in TABLE}


def _iso(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    try:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    except (OverflowError, OSError, ValueError) as exc:
        raise TraceRejected("otlp_invalid", f"span start {ns} ns is not a representable time") from exc
    return f"{stamp}.{rest // 1_000_000:03d}Z"


Prices = Callable[[str, str], tuple[int | None, float | None, float | None] | None]
"""(model, provider) -> (tier_rank, USD per million input tokens, per million output tokens); None parts unknown."""


def build_decision(trace_id: str, spans: list[Span], prices: Prices | None = None) -> tuple[bytes, bytes]:
    """The RoutingDecision of one trace: (Kafka key = its request id, the JSON bytes the SDK would send),
    validated against the contract.

    Raises :class:`TraceRejected` (``otlp_no_attempts``, ``otlp_invalid``) when the spans cannot make one.
    """
    request_span, attempt_spans, others = roles(spans)
    if not attempt_spans:
        raise TraceRejected("otlp_no_attempts", f"trace {trace_id}: {len(spans)} spans, none of them a model call "
                            "(gen_ai.operation.name chat/text_completion/generate_content, or gen_ai.request.model)")
    price = prices or (lambda model, provider: None)
    req_attrs = [request_span.attributes] if request_span is not None else []
    req_attrs += [s.attributes for s in others if s is not request_span]
    req_attrs += [s.attributes for s in attempt_spans]
    resource = (request_span or attempt_spans[0]).resource

    def req(target: str) -> Any:
        return _first(_SOURCES[target], *req_attrs)

    start_ns = min([s.start_ns for s in attempt_spans] + ([request_span.start_ns] if request_span else []))
    end_ns = max([s.end_ns for s in attempt_spans] + ([request_span.end_ns] if request_span else []))

    attempts: list[dict[str, Any]] = []
    last_live = max((i for i, s in enumerate(attempt_spans) if s.attributes.get("routerwatch.outcome") != "shadow"), default=-1)
    for index, span in enumerate(attempt_spans):
        attempts.append(_attempt(index, span, start_ns, index < last_live, price, trace_id))

    served = [a for a in attempts if a.get("outcome") == "accepted"]
    winner = served[-1] if served else None
    cost = 0.0
    for a in attempts:
        if a.get("outcome") != "shadow":
            cost += float(a.get("cost_usd") or 0) + float(a.get("verify_cost_usd") or 0)

    router: dict[str, Any] = {
        "id": _text(req("router.id") or resource.get("service.name") or "unknown"),
        "strategy": req("router.strategy") or "cascade",
    }
    version = req("router.version") or resource.get("service.version")
    if version is not None:
        router["version"] = _text(version)
    policy = req("router.policy_version")
    if policy is not None:
        router["policy_version"] = _text(policy)
    decision: dict[str, Any] = {
        "event_id": event_id(trace_id),
        "schema_version": 1,
        "request_id": _text(req("request_id") or trace_id),
        "occurred_at": _iso(start_ns),
        "router": router,
        "environment": _text(req("environment") or resource.get("deployment.environment.name")
                             or resource.get("deployment.environment") or "production"),
        "category": _text(req("category") or "default"),
        "shadow": _bool(req("shadow") or False),
        "attempts": attempts,
        "final": {
            "served": winner is not None,
            "tier": winner["tier"] if winner else None,
            "model": winner["model"] if winner else None,
            "latency_ms": (end_ns - start_ns) / 1e6,
            "cost_usd": cost,
        },
    }
    for target in ("tenant", "source", "canary_id"):
        value = req(target)
        if value is not None:
            decision[target] = _text(value)
    exp_id, exp_variant = req("experiment.id"), req("experiment.variant")
    if exp_id is not None or exp_variant is not None:
        decision["experiment"] = {"id": exp_id, "variant": exp_variant}
    route: dict[str, Any] = {}
    rule, confidence = req("route.rule"), req("route.confidence")
    if rule is not None:
        route["rule"] = _text(rule)
    if confidence is not None:
        route["confidence"] = _float(confidence)
    features = {}
    for name in ("original_model", "selected_model"):
        value = req(f"route.features.{name}")
        if value is not None:
            features[name] = _text(value)
    if features:
        route["features"] = features
    if route:
        decision["route"] = route
    raw = json.dumps(decision, separators=(",", ":"), allow_nan=False, default=str).encode()
    try:
        _validate(raw)
    except ValidationError as exc:
        raise TraceRejected("otlp_invalid", f"trace {trace_id}: {describe(exc)}") from exc
    return str(decision["request_id"]).encode(), raw


_validate = json_validator(RoutingDecision)


def _attempt(index: int, span: Span, start_ns: int, followed: bool, price: Prices, trace_id: str) -> dict[str, Any]:
    a = span.attributes

    def get(target: str) -> Any:
        return _first(_SOURCES["attempts[]." + target], a)

    model = get("model")
    if model is None:
        raise TraceRejected("otlp_invalid", f"trace {trace_id}: attempt span {span.span_id} ({span.name!r}) "
                            "has no gen_ai.request.model")
    model = _text(model)
    provider = _text(get("provider") or "unknown")
    priced = price(model, provider) if isinstance(model, str) and isinstance(provider, str) else None
    tier = get("tier")
    rank = get("tier_rank")
    out: dict[str, Any] = {
        "index": index,
        "tier": _text(tier) if tier is not None else model,
        "tier_rank": _int(rank) if rank is not None else (priced[0] if priced and priced[0] is not None else 0),
        "model": model,
        "provider": provider,
        "offset_ms": (span.start_ns - start_ns) / 1e6,
        "latency_ms": (span.end_ns - span.start_ns) / 1e6,
        "input_tokens": _int(get("input_tokens") or 0),
        "output_tokens": _int(get("output_tokens") or 0),
    }
    cost = get("cost_usd")
    if cost is None and priced is not None and priced[1] is not None and priced[2] is not None and isinstance(out["input_tokens"], int) and isinstance(out["output_tokens"], int):
        cost = (out["input_tokens"] * priced[1] + out["output_tokens"] * priced[2]) / 1_000_000
    out["cost_usd"] = _float(cost) if cost is not None else 0.0

    gate_kind = a.get("routerwatch.gate.kind")
    gate_passed = _bool(a.get("routerwatch.gate.passed")) if "routerwatch.gate.passed" in a else None
    errored = span.status_code == STATUS_ERROR or "error.type" in a
    outcome = get("outcome")
    if outcome is None:
        if errored:
            outcome = "failed"
        elif gate_passed is False or followed:
            outcome = "escalated"
        else:
            outcome = "accepted"
    out["outcome"] = outcome
    if gate_kind is not None:
        gate: dict[str, Any] = {"kind": gate_kind, "passed": gate_passed if gate_passed is not None else outcome != "escalated"}
        for key in ("score", "threshold"):
            value = a.get(f"routerwatch.gate.{key}")
            if value is not None:
                gate[key] = _float(value)
        out["gate"] = gate
    reason = get("escalation_reason")
    if reason is None and outcome == "escalated":
        reason = _ESCALATION_FROM_GATE.get(str(gate_kind), "other")
    if reason is not None:
        out["escalation_reason"] = reason
    mode = a.get("routerwatch.failure_mode")
    if mode is None and outcome == "failed":
        error_type = a.get("error.type")
        mode = failure_mode(error_type) if error_type is not None else "other"
    if mode is not None:
        out["failure_mode"] = mode
    for key in ("ttft_ms", "verify_latency_ms", "verify_cost_usd"):
        value = get(key)
        if value is not None:
            out[key] = _float(value)
    cache_hit = get("cache_hit")
    if cache_hit is not None:
        out["cache_hit"] = _bool(cache_hit)
    return out


def price_lookup(table: Any) -> Prices:
    """A :data:`Prices` function over a :class:`routerwatch.prices.PriceTable` (its ``resolve(model, provider)``)."""

    def lookup(model: str, provider: str) -> tuple[int | None, float | None, float | None] | None:
        try:
            found = table.resolve(model, provider)
        except Exception:  # noqa: BLE001 - an unknown model is unpriced, never an error
            return None
        return found.tier_rank, found.input_usd_per_mtok, found.output_usd_per_mtok

    return lookup


# -- the table, as docs/otlp.md shows it -----------------------------------------------------------

SCOPE_WORDS = {
    "trace": "(from the trace)",
    "request": "request span, then the trace's other spans",
    "attempt": "the attempt's span",
}


def _code(keys: Iterable[str]) -> str:
    return ", ".join(f"`{k}`" for k in keys) or "-"


def render_markdown() -> str:
    """The mapping table and the error rules as Markdown (docs/otlp.md holds exactly this)."""
    lines = [
        "| RoutingDecision field | read from | attributes (first present wins) | otherwise |",
        "|---|---|---|---|",
    ]
    for row in TABLE:
        lines.append(f"| `{row.target}` | {SCOPE_WORDS[row.scope]} | {_code(row.sources)} | {row.otherwise} |")
    lines += [
        "",
        "`error.type` -> `failure_mode` (lowercased, the part after the last `.`, without `_`, `-` and spaces; "
        "a value that already is a failure mode is kept; first match wins):",
        "",
        "| failure_mode | `error.type` containing |",
        "|---|---|",
    ]
    for mode, fragments in ERROR_RULES:
        lines.append(f"| `{mode}` | {_code(fragments)} |")
    lines.append("| `other` | anything else |")
    lines += ["", "Dead-letter reasons of traces:", "", "| reason | when |", "|---|---|"]
    for reason, when in DEAD_LETTER_REASONS.items():
        lines.append(f"| `{reason}` | {when} |")
    return "\n".join(lines) + "\n"
