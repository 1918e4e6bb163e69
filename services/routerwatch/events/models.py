"""Event contract v1: RoutingDecision, QualityFeedback, CanaryResult.

These pydantic models are the source of truth; ``routerwatch schemas export``
writes their JSON Schema to ``schemas/`` and a test fails when the committed
files drift from them.  Every model forbids unknown fields, so a typo in a
router's payload is a clear validation error instead of silently lost data.

Field meanings that overlap OpenTelemetry's ``gen_ai`` semantic conventions
reuse them (README, "The event contract"):
``Attempt.provider`` = ``gen_ai.provider.name``, ``Attempt.model`` =
``gen_ai.request.model``, ``input_tokens`` / ``output_tokens`` =
``gen_ai.usage.input_tokens`` / ``gen_ai.usage.output_tokens``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from routerwatch.events.vocabulary import (
    CheckKind,
    EscalationReason,
    FailureMode,
    FeedbackSource,
    FeedbackTarget,
    GateKind,
    Outcome,
    Strategy,
)

SCHEMA_VERSION: Literal[1] = 1

# Names that become ClickHouse keys and Prometheus label values: short, no spaces.
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]*$", max_length=128)]
# Free identifiers chosen by the router (request ids, tenants): any non-blank text, bounded.
Ident = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"\S")]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Score = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
# A routing feature is a number, a flag or a short label: never free text (a prompt pasted into a
# feature would be stored and shown to everyone who reads the store).
FeatureValue = Annotated[float, Field(allow_inf_nan=False)] | int | bool | Annotated[str, StringConstraints(max_length=256)]

# Storage limits are contract limits: every value the contract admits fits its column (a value
# outside is dead-lettered with the reason, never retried). The columns are UInt8 for ranks and
# attempt indexes, UInt32 for token counts and prompt lengths.
UINT8_MAX = 2**8 - 1
UINT32_MAX = 2**32 - 1
MAX_ATTEMPTS = 32
Rank = Annotated[int, Field(ge=0, le=UINT8_MAX)]
AttemptIndex = Annotated[int, Field(ge=0, le=MAX_ATTEMPTS - 1)]
Count32 = Annotated[int, Field(ge=0, le=UINT32_MAX)]

# The event times the contract accepts: [2000-01-01, 2100-01-01) UTC. ClickHouse's DateTime64(3)
# holds 1900..2299, but a time outside this range is a broken clock (Go's zero time 0001-01-01, a
# sentinel 9999-12-31, seconds read as milliseconds), and every such event would open a monthly
# partition of its own.
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2100, 1, 1, tzinfo=UTC)
TIME_RANGE = "2000-01-01T00:00:00Z <= time < 2100-01-01T00:00:00Z"


def _to_utc_ms(value: datetime) -> datetime:
    # ClickHouse stores DateTime64(3, 'UTC'): normalise here so that the model
    # and the stored row agree to the millisecond.
    try:
        value = value.astimezone(UTC)
        inside = EARLIEST_TIME <= value < LATEST_TIME
    except OverflowError:  # 0001-01-01 with a positive offset, 9999-12-31 with a negative one
        inside = False
    if not inside:
        raise ValueError(f"time {value.isoformat()} is outside the accepted range {TIME_RANGE}")
    micro = value.microsecond
    # Most timestamps already are whole milliseconds: skip the second copy then.
    return value.replace(microsecond=micro - micro % 1000) if micro % 1000 else value


UtcTime = Annotated[
    AwareDatetime,
    AfterValidator(_to_utc_ms),
    Field(json_schema_extra={"x-routerwatch-range": TIME_RANGE}),
]


# Members bound once: the validators below compare identities per attempt, per event.
_ACCEPTED, _ESCALATED, _FAILED, _SHADOW = Outcome.ACCEPTED, Outcome.ESCALATED, Outcome.FAILED, Outcome.SHADOW


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class Router(_Model):
    """Which router made the decision."""

    id: Name = Field(description="Stable name of the router deployment.")
    version: Ident | None = Field(default=None, description="Router build or release.")
    strategy: Strategy = Field(description="How the router chooses a tier.")
    policy_version: Ident | None = Field(
        default=None, description="Version of the routing policy (thresholds, rules) in force."
    )


class Experiment(_Model):
    """The A/B test this request belongs to, if any."""

    id: Name
    variant: Name


class Route(_Model):
    """What the router saw when it chose the entry tier."""

    confidence: Score | None = Field(default=None, description="Classifier confidence of the chosen route.")
    rule: Ident | None = Field(default=None, description="Name of the rule that matched, for rule routers.")
    features: dict[Name, FeatureValue] = Field(
        default_factory=dict,
        max_length=32,
        description="Small, non-sensitive routing features: at most 32, text values at most 256 characters.",
    )


class Gate(_Model):
    """The check that accepted or rejected an attempt's answer."""

    kind: GateKind
    score: float | None = Field(default=None, allow_inf_nan=False)
    threshold: float | None = Field(default=None, allow_inf_nan=False)
    passed: bool


class Attempt(_Model):
    """One call of one model at one tier inside a request."""

    index: AttemptIndex = Field(description="Position in the request, 0-based, in order (at most 31).")
    tier: Name = Field(description="Tier name, e.g. cache, small, large.")
    tier_rank: Rank = Field(description="0 = cheapest tier; at most 255.")
    model: Name = Field(description="gen_ai.request.model")
    provider: Name = Field(description="gen_ai.provider.name")
    offset_ms: NonNegFloat = Field(default=0.0, description="Start of the attempt after the request began.")
    latency_ms: NonNegFloat = Field(description="Wall time of the model call, verifier excluded.")
    ttft_ms: NonNegFloat | None = Field(default=None, description="Time to first token, when streamed.")
    input_tokens: Count32 = Field(default=0, description="gen_ai.usage.input_tokens (at most 2^32-1)")
    output_tokens: Count32 = Field(default=0, description="gen_ai.usage.output_tokens (at most 2^32-1)")
    cost_usd: NonNegFloat = Field(default=0.0, description="Price of the model call.")
    outcome: Outcome
    gate: Gate | None = None
    escalation_reason: EscalationReason | None = Field(
        default=None, description="Required when outcome is escalated, forbidden otherwise."
    )
    failure_mode: FailureMode | None = Field(
        default=None, description="Required when outcome is failed; optional on escalated and shadow."
    )
    verify_latency_ms: NonNegFloat = Field(default=0.0, description="Time spent in the gate or verifier.")
    verify_cost_usd: NonNegFloat = Field(default=0.0, description="Price of the gate or verifier.")
    cache_hit: bool = False

    @model_validator(mode="before")
    @classmethod
    def _finished(cls, data: Any) -> Any:
        # An attempt with no outcome is one the router started and never finished (with the SDK:
        # no accept / escalate / fail / shadow); say that, instead of "outcome: Field required"
        # and "latency_ms: Field required" about fields the router never sets by hand.
        if isinstance(data, dict) and "outcome" not in data:
            raise ValueError(
                f"attempt {data.get('index', '?')} (tier {data.get('tier')!r}) was never finished: it has no "
                "outcome (with the SDK, call accept(), escalate(), fail() or shadow() on every attempt)"
            )
        return data

    @model_validator(mode="after")
    def _outcome_rules(self) -> Attempt:
        # Runs once per attempt on the ingest hot path: the checks are ordered so that a
        # valid attempt costs a few identity tests, and the message is built only on error.
        outcome = self.outcome
        gate = self.gate
        if outcome is _ACCEPTED:
            if self.escalation_reason is not None:
                self._broken("escalation_reason is only allowed when outcome is 'escalated'")
            if self.failure_mode is not None:
                self._broken("an accepted attempt cannot carry a failure_mode")
            if gate is not None and not gate.passed:
                self._broken("accepted although its gate rejected it (gate.passed is false)")
        elif outcome is _ESCALATED:
            if self.escalation_reason is None:
                self._broken("outcome 'escalated' needs an escalation_reason")
            if gate is not None and gate.passed:
                self._broken("escalated although its gate passed (gate.passed is true)")
        else:
            if self.escalation_reason is not None:
                self._broken("escalation_reason is only allowed when outcome is 'escalated'")
            if outcome is _FAILED and self.failure_mode is None:
                self._broken("outcome 'failed' needs a failure_mode")
        ttft = self.ttft_ms
        if ttft is not None and ttft > self.latency_ms:
            self._broken(f"ttft_ms {ttft} exceeds latency_ms {self.latency_ms}")
        return self

    def _broken(self, rule: str) -> None:
        raise ValueError(f"attempt {self.index} (tier {self.tier!r}): {rule}")


class Final(_Model):
    """What the user got."""

    served: bool = Field(description="False when every attempt failed or was rejected.")
    tier: Name | None = Field(default=None, description="Tier of the accepted attempt; null when not served.")
    model: Name | None = None
    latency_ms: NonNegFloat = Field(description="End-to-end request latency.")
    cost_usd: NonNegFloat = Field(description="Total spend: every non-shadow attempt plus its verifier.")


class Quality(_Model):
    """An inline grade of the served answer, when the router has one at decision time."""

    score: Score
    passed: bool | None = None


class Prompt(_Model):
    """A fingerprint of the prompt; never its text."""

    hash: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    length: Count32 = Field(description="Prompt length (characters or tokens, the router's choice); at most 2^32-1.")


class RoutingDecision(_Model):
    """One routing decision: exactly one per user request."""

    event_id: uuid.UUID = Field(description="Idempotency key: a replayed event with this id is stored once.")
    schema_version: Literal[1] = SCHEMA_VERSION
    request_id: Ident
    occurred_at: UtcTime = Field(
        description=f"When the request arrived, UTC, millisecond precision; {TIME_RANGE}."
    )
    router: Router
    environment: Name = "production"
    category: Name = Field(default="default", description="Request category or intent.")
    tenant: Ident | None = Field(default=None, description="Opaque tenant id.")
    source: Name | None = Field(default=None, description="Feature or product surface that sent the request.")
    experiment: Experiment | None = None
    shadow: bool = Field(default=False, description="The request is in the shadow slice.")
    canary_id: Name | None = Field(default=None, description="Set on canary probes; excluded from production figures.")
    route: Route | None = None
    attempts: list[Attempt] = Field(min_length=1, max_length=MAX_ATTEMPTS)
    final: Final
    quality: Quality | None = None
    prompt: Prompt | None = None

    @model_validator(mode="after")
    def _cross_field_rules(self) -> RoutingDecision:
        # One pass over the attempts (this runs for every event ingested); the rules and
        # their messages are those of the contract, checked in the same order.
        attempts = self.attempts
        served_attempts = []
        accepted = []
        for position, attempt in enumerate(attempts):
            if attempt.index != position:
                raise ValueError(
                    f"attempts[{position}] has index {attempt.index}: indexes must be 0..n-1 in order"
                )
            outcome = attempt.outcome
            if outcome is not _SHADOW:
                served_attempts.append(attempt)
                if outcome is _ACCEPTED:
                    accepted.append(attempt)
        if not served_attempts:
            raise ValueError("a request needs at least one non-shadow attempt")
        if not self.shadow and len(served_attempts) != len(attempts):
            raise ValueError("shadow attempts are only allowed when the request's shadow flag is true")
        if self.final.served:
            if len(accepted) != 1:
                raise ValueError(
                    f"a served request needs exactly one accepted attempt, found {len(accepted)}"
                )
            winner = accepted[0]
            if served_attempts[-1] is not winner:
                raise ValueError(
                    f"attempt {winner.index} was accepted but a later non-shadow attempt follows it"
                )
            if self.final.tier != winner.tier or self.final.model != winner.model:
                raise ValueError(
                    f"final tier/model {self.final.tier!r}/{self.final.model!r} do not match the accepted "
                    f"attempt {winner.index} ({winner.tier!r}/{winner.model!r})"
                )
            # A tolerance of 1 ms absorbs clock rounding in the router.
            if self.final.latency_ms + 1.0 < winner.offset_ms + winner.latency_ms:
                raise ValueError(
                    f"final latency_ms {self.final.latency_ms} is shorter than the accepted attempt ends "
                    f"({winner.offset_ms} + {winner.latency_ms})"
                )
        else:
            if accepted:
                raise ValueError("a request that was not served cannot have an accepted attempt")
            if self.final.tier is not None or self.final.model is not None:
                raise ValueError("final tier and model must be null when the request was not served")
        return self


class QualityFeedback(_Model):
    """A late grade of a served or shadow answer, joined to its decision by request_id."""

    event_id: uuid.UUID
    schema_version: Literal[1] = SCHEMA_VERSION
    request_id: Ident
    occurred_at: UtcTime = Field(description=f"When the grade was given; {TIME_RANGE}.")
    router_id: Name | None = None
    target: FeedbackTarget = FeedbackTarget.SERVED
    attempt_index: AttemptIndex | None = Field(
        default=None, description="The graded attempt (0..31); required for shadow and rejected grades."
    )
    tier: Name | None = None
    score: Score
    passed: bool
    source: FeedbackSource
    grader: Ident | None = Field(default=None, description="Grader model or rubric version.")

    @model_validator(mode="after")
    def _shadow_needs_attempt(self) -> QualityFeedback:
        if self.target is not FeedbackTarget.SERVED and self.attempt_index is None:
            raise ValueError(
                f"a {self.target.value} grade needs attempt_index: which unserved attempt was graded"
            )
        return self


class CanaryResult(_Model):
    """One probe of one canary query against the router."""

    event_id: uuid.UUID
    schema_version: Literal[1] = SCHEMA_VERSION
    canary_id: Name
    run_id: Ident
    occurred_at: UtcTime = Field(description=f"When the probe was sent; {TIME_RANGE}.")
    router_id: Name
    category: Name | None = None
    side: Name | None = Field(
        default=None, description="Which side of the routing boundary the canary sits on (e.g. cheap, strong)."
    )
    expected_tier: Name
    observed_tier: Name | None = Field(default=None, description="Null when the router did not answer.")
    tier_source: Literal["header", "body", "decision"] | None = Field(
        default=None,
        description="Where observed_tier came from: a response header, a response body field, or the "
        "RoutingDecision the router emitted for this probe (joined on canary_id and request_id).",
    )
    check_kind: CheckKind
    answer_passed: bool | None = Field(default=None, description="Null when there was no answer to check.")
    check_detail: Annotated[str, StringConstraints(max_length=500)] | None = Field(
        default=None, description="Why the answer check failed."
    )
    latency_ms: NonNegFloat | None = None
    error: Annotated[str, StringConstraints(max_length=2000)] | None = Field(
        default=None, description="Set when the router gave no usable answer (connection refused, timeout, HTTP 5xx)."
    )
    request_id: Ident | None = None

    @model_validator(mode="after")
    def _error_or_answer(self) -> CanaryResult:
        if self.error is None and (self.observed_tier is None or self.answer_passed is None):
            raise ValueError("a canary result without an error needs observed_tier and answer_passed")
        return self


def now_utc() -> datetime:
    """The current time as the contract wants it: aware, UTC, millisecond precision."""
    return _to_utc_ms(datetime.now(UTC))
