"""Closed value sets of the event contract (docs/design-notes.md section 2).

They are ``StrEnum`` so that the wire format is the plain lowercase string and
so that ClickHouse, Prometheus labels and the docs all spell them the same way.
Adding a member is a contract change: bump the schema and the docs together.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """What became of one attempt."""

    ACCEPTED = "accepted"  # answer served; the tier is terminal for the request
    ESCALATED = "escalated"  # a gate rejected the answer; the tier is passthrough (quality-triggered)
    FAILED = "failed"  # the call errored and the router retried or fell back (reliability-triggered)
    SHADOW = "shadow"  # forced attempt in the shadow slice, never served, never in served figures


class FailureMode(StrEnum):
    """Why an attempt failed (or, on escalated/shadow attempts, what was wrong with it)."""

    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    PROVIDER_ERROR = "provider_error"
    CONTEXT_OVERFLOW = "context_overflow"
    TRUNCATION = "truncation"
    REFUSAL = "refusal"
    INVALID_TOOL_CALL = "invalid_tool_call"
    FORMAT_DRIFT = "format_drift"
    HEDGING = "hedging"
    OVER_ELABORATION = "over_elaboration"
    EMPTY = "empty"
    OTHER = "other"


class EscalationReason(StrEnum):
    """Which gate decision moved a request up a tier."""

    LOW_CONFIDENCE = "low_confidence"
    VERIFIER_REJECTED = "verifier_rejected"
    SCHEMA_INVALID = "schema_invalid"
    JUDGE_REJECTED = "judge_rejected"
    RULE = "rule"
    OTHER = "other"


class GateKind(StrEnum):
    """The kind of check that accepted or rejected an answer."""

    CONFIDENCE = "confidence"
    VERIFIER = "verifier"
    SCHEMA_CHECK = "schema_check"
    JUDGE = "judge"
    RULE = "rule"


class Strategy(StrEnum):
    """How the router chooses a tier."""

    RULES = "rules"
    CASCADE = "cascade"
    CLASSIFIER = "classifier"
    FALLBACK = "fallback"
    HYBRID = "hybrid"


class FeedbackSource(StrEnum):
    """Who graded an answer."""

    GRADER = "grader"
    HUMAN = "human"
    USER = "user"


class FeedbackTarget(StrEnum):
    """Which answer of a request a grade is about."""

    SERVED = "served"  # the answer the user got
    SHADOW = "shadow"  # a shadow attempt's answer (forced, never served)
    REJECTED = "rejected"  # an escalated attempt's answer, graded to measure false escalations


class CheckKind(StrEnum):
    """How a canary's answer is checked."""

    EXACT = "exact"
    REGEX = "regex"
    JSON_SCHEMA = "json_schema"
    NUMERIC = "numeric"
