"""Pure mapping from LiteLLM's callback payloads to routerwatch attempt fields.

Nothing here imports LiteLLM: exceptions are recognised by class name along their MRO (LiteLLM's
exception classes and the OpenAI SDK's share their names), payloads are read as plain mappings.
That keeps the mapping testable on its own and tolerant of LiteLLM versions that move classes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# model_info keys a deployment may carry to name its routerwatch tier and rank.
TIER_KEY = "routerwatch_tier"
RANK_KEY = "routerwatch_tier_rank"
# Request metadata keys (``metadata={...}`` on the LiteLLM call) read into a fallback-mode decision.
CATEGORY_KEY = "routerwatch_category"
TENANT_KEY = "routerwatch_tenant"

# Exception class name -> failure mode. Looked up along the exception's MRO, most derived first,
# so ContextWindowExceededError (a BadRequestError) maps to context_overflow, not to "other".
EXCEPTION_FAILURE_MODES: dict[str, str] = {
    "Timeout": "timeout",
    "APITimeoutError": "timeout",
    "TimeoutError": "timeout",
    "RateLimitError": "rate_limited",
    "ContextWindowExceededError": "context_overflow",
    "ContentPolicyViolationError": "refusal",
    "RejectedRequestError": "refusal",
    "JSONSchemaValidationError": "format_drift",
    "APIResponseValidationError": "format_drift",
    "ServiceUnavailableError": "provider_error",
    "MidStreamFallbackError": "provider_error",
    "InternalServerError": "provider_error",
    "BadGatewayError": "provider_error",
    "APIConnectionError": "provider_error",
    "AuthenticationError": "provider_error",
    "PermissionDeniedError": "provider_error",
    "NotFoundError": "provider_error",
    "PaymentRequiredError": "provider_error",
    "BadRequestError": "other",
    "UnprocessableEntityError": "other",
    "UnsupportedParamsError": "other",
    "BudgetExceededError": "other",
}

# Auto-router (complexity router) default tier names, cheapest first.
AUTO_ROUTER_TIERS = ("SIMPLE", "MEDIUM", "COMPLEX", "REASONING")

_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.:/@+-]")


def failure_mode(exc: object) -> str:
    """The routerwatch failure mode for an exception LiteLLM reported (``other`` when unknown).

    The class name decides first (see :data:`EXCEPTION_FAILURE_MODES`); an unknown class with an
    HTTP ``status_code`` is mapped by status (408/504 timeout, 429 rate_limited, 401-404 and 5xx
    provider_error).
    """
    if exc is None:
        return "other"
    for klass in type(exc).__mro__:
        mode = EXCEPTION_FAILURE_MODES.get(klass.__name__)
        if mode is not None:
            return mode
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status_failure_mode(status)
    if isinstance(exc, ConnectionError):
        return "provider_error"
    return "other"


def status_failure_mode(status: int) -> str:
    """The failure mode of an HTTP error status from a provider."""
    if status in (408, 504):
        return "timeout"
    if status == 429:
        return "rate_limited"
    if status in (401, 402, 403, 404) or status >= 500:
        return "provider_error"
    return "other"


def clean_name(value: object, default: str = "unknown") -> str:
    """``value`` as a contract ``Name`` (letters, digits, ``_.:/@+-``; at most 128 characters)."""
    if value is None:
        return default
    text = _BAD_NAME_CHARS.sub("_", str(value).strip())[:128]
    text = text.lstrip("_.:/@+-")
    return text or default


def tier_from_model_info(model_info: Mapping[str, Any] | None) -> tuple[str | None, int | None]:
    """``(tier, rank)`` from a deployment's ``model_info`` keys ``routerwatch_tier`` / ``routerwatch_tier_rank``.

    Either may be ``None`` (absent or unusable); a rank must be an integer 0..255 (a numeric
    string is accepted).
    """
    if not isinstance(model_info, Mapping):
        return None, None
    tier = model_info.get(TIER_KEY)
    rank = _rank(model_info.get(RANK_KEY))
    return (clean_name(tier) if tier not in (None, "") else None), rank


def _rank(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= 255:
        return value
    return None


def tier_ranks(tiers: Mapping[str, int] | Sequence[str] | None) -> dict[str, int]:
    """Normalise a logger's ``tiers`` argument: model group -> rank (a sequence ranks by position)."""
    if tiers is None:
        return {}
    if isinstance(tiers, Mapping):
        ranks = {}
        for name, rank in tiers.items():
            checked = _rank(rank)
            if checked is None:
                raise ValueError(f"tiers[{name!r}]: rank must be an integer 0..255, got {rank!r}")
            ranks[str(name)] = checked
        return ranks
    if isinstance(tiers, str):
        raise ValueError("tiers: give a list of model groups (cheapest first) or a mapping group -> rank")
    return {str(name): position for position, name in enumerate(tiers)}


def route_from_routing_decision(decision: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The decision's ``route`` from a LiteLLM auto-router ``routing_decision``.

    ``cause`` becomes the route's rule, ``classifier_confidence`` (when in [0, 1]) its confidence,
    and tier, score, escalated, router name and routed model become ``litellm.*`` features. The
    auto-router's ``escalated`` is a pre-call tier bump, not a gate rejecting an answer, so it
    never makes an escalated attempt.
    """
    if not isinstance(decision, Mapping) or not decision:
        return None
    route: dict[str, Any] = {}
    cause = decision.get("cause")
    if isinstance(cause, str) and cause:
        route["rule"] = cause[:256]
    confidence = decision.get("classifier_confidence")
    if _finite(confidence) and 0.0 <= confidence <= 1.0:
        route["confidence"] = float(confidence)
    features: dict[str, Any] = {}
    for key in ("tier", "routed_model", "router_model_name", "router_type"):
        value = decision.get(key)
        if isinstance(value, str) and value:
            features[f"litellm.{key}"] = value[:256]
    score = decision.get("score")
    if _finite(score):
        features["litellm.score"] = float(score)
    for key in ("escalated", "context_escalated"):
        value = decision.get(key)
        if isinstance(value, bool):
            features[f"litellm.{key}"] = value
    if features:
        route["features"] = features
    return route or None


def auto_router_tier(decision: Mapping[str, Any] | None, model_group: str | None) -> tuple[str | None, int | None]:
    """``(tier, rank)`` named by an auto-router's decision for the attempt it routed.

    The attempt's model group is then the auto-router's own name (``router_model_name``) or the
    group it routed to (``routed_model``); a fallback hop to another group is not that tier:
    ``(None, None)``. The rank is the default complexity ladder's (SIMPLE 0 .. REASONING 3), else ``None``.
    """
    if not isinstance(decision, Mapping):
        return None, None
    tier = decision.get("tier")
    if not isinstance(tier, str) or not tier:
        return None, None
    own = {decision.get("routed_model"), decision.get("router_model_name")} - {None}
    if model_group and own and model_group not in own:
        return None, None
    rank = AUTO_ROUTER_TIERS.index(tier.upper()) if tier.upper() in AUTO_ROUTER_TIERS else None
    return clean_name(tier), rank


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def epoch_seconds(value: object) -> float | None:
    """LiteLLM's times (naive local ``datetime``, or epoch seconds) as epoch seconds."""
    if isinstance(value, datetime):
        return value.timestamp()
    if _finite(value):
        return float(value)
    return None


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return 0
    return min(int(value), 2**32 - 1)


def _cost(value: object) -> float:
    return float(value) if _finite(value) and value > 0 else 0.0


@dataclass
class CallRecord:
    """One deployment call LiteLLM reported: the material of one attempt."""

    call_id: str
    trace_id: str | None
    ok: bool
    start: float  # epoch seconds
    end: float
    model: str
    provider: str
    model_group: str | None
    tier: str | None
    tier_rank: int | None
    fallback_depth: int | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    ttft_ms: float | None = None
    failure_mode: str | None = None
    cache_hit: bool = False
    routing_decision: dict[str, Any] | None = None
    hints: dict[str, str] = field(default_factory=dict)

    @property
    def latency_ms(self) -> float:
        return max(0.0, (self.end - self.start) * 1000.0)


def call_record(
    kwargs: Mapping[str, Any],
    start_time: object,
    end_time: object,
    *,
    ok: bool,
    tiers: Mapping[str, int] | None = None,
) -> CallRecord:
    """Read one success or failure callback's ``kwargs`` (LiteLLM's model call details) into a record.

    Tier: ``model_info`` keys, else ``tiers`` (model group -> rank), else an auto-router decision,
    else the model group with its rank left for the request to decide (``tier_rank`` ``None``).
    """
    params = kwargs.get("litellm_params") or {}
    metadata = params.get("metadata") or {} if isinstance(params, Mapping) else {}
    if not isinstance(metadata, Mapping):
        metadata = {}
    slo = kwargs.get("standard_logging_object") or {}
    if not isinstance(slo, Mapping):
        slo = {}
    slo_meta = slo.get("metadata") if isinstance(slo.get("metadata"), Mapping) else {}

    start = epoch_seconds(start_time)
    if start is None:
        start = epoch_seconds(slo.get("startTime"))
    end = epoch_seconds(end_time)
    if end is None:
        end = epoch_seconds(slo.get("endTime"))
    if start is None:
        start = end if end is not None else 0.0
    if end is None or end < start:
        end = start

    model_group = metadata.get("model_group") or slo.get("model_group")
    model_group = str(model_group) if model_group else None
    model_info = params.get("model_info") if isinstance(params, Mapping) else None
    routing = slo_meta.get("routing_decision") or metadata.get("routing_decision")
    routing = dict(routing) if isinstance(routing, Mapping) and routing else None

    tier, rank = tier_from_model_info(model_info)
    if tier is None and model_group is not None and tiers and model_group in tiers:
        tier, rank = clean_name(model_group), (rank if rank is not None else tiers[model_group])
    if tier is None and routing is not None:
        tier, auto_rank = auto_router_tier(routing, model_group)
        rank = rank if rank is not None else auto_rank
    if tier is None:
        tier = clean_name(model_group or kwargs.get("model"))
        if rank is None and tiers and tier in tiers:
            rank = tiers[tier]

    depth = metadata.get("attempted_fallbacks")
    provider = kwargs.get("custom_llm_provider") or slo.get("custom_llm_provider") or params.get("custom_llm_provider")
    record = CallRecord(
        call_id=str(kwargs.get("litellm_call_id") or slo.get("id") or id(kwargs)),
        trace_id=_text(kwargs.get("litellm_trace_id") or slo.get("trace_id")),
        ok=ok,
        start=start,
        end=end,
        model=clean_name(kwargs.get("model") or slo.get("model")),
        provider=clean_name(provider),
        model_group=model_group,
        tier=tier,
        tier_rank=rank,
        fallback_depth=depth if isinstance(depth, int) and not isinstance(depth, bool) and depth >= 0 else None,
        routing_decision=routing,
        cache_hit=bool(kwargs.get("cache_hit") or slo.get("cache_hit")),
    )
    for key, target in ((CATEGORY_KEY, "category"), (TENANT_KEY, "tenant")):
        value = metadata.get(key)
        if isinstance(value, str) and value:
            record.hints[target] = value
    if ok:
        record.input_tokens = _count(slo.get("prompt_tokens"))
        record.output_tokens = _count(slo.get("completion_tokens"))
        if not record.input_tokens and not record.output_tokens:
            usage = _usage(kwargs)
            record.input_tokens, record.output_tokens = usage
        cost = kwargs.get("response_cost")
        record.cost_usd = _cost(cost if cost is not None else slo.get("response_cost"))
        if kwargs.get("stream") or slo.get("stream"):
            first = epoch_seconds(kwargs.get("completion_start_time"))
            if first is None:
                first = epoch_seconds(slo.get("completionStartTime"))
            if first is not None:
                record.ttft_ms = min(max(0.0, (first - start) * 1000.0), record.latency_ms)
    else:
        record.failure_mode = failure_mode(kwargs.get("exception"))
        # Some providers bill a failed call (e.g. a stream cut mid-way): count what LiteLLM priced.
        record.cost_usd = _cost(kwargs.get("response_cost"))
    return record


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _usage(kwargs: Mapping[str, Any]) -> tuple[int, int]:
    for key in ("complete_streaming_response", "original_response"):
        response = kwargs.get(key)
        usage = getattr(response, "usage", None)
        if usage is not None:
            return _count(getattr(usage, "prompt_tokens", 0)), _count(getattr(usage, "completion_tokens", 0))
    return 0, 0
