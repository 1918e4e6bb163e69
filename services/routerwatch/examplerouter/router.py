"""Routing logic of the example router: a prompt and the switches in, a plan of attempts out.

Pure and deterministic: no I/O, no clock, no randomness. :mod:`.server` carries
the plan out (sleeps each attempt's latency, records it with the SDK, answers
over HTTP); the unit tests call :func:`route` directly.

The model of the simulation
---------------------------

* Three tiers (:data:`TIERS`): ``small`` (rank 0), ``medium`` (rank 1) and
  ``large`` (rank 2, terminal). Each has a capability in [0, 1]; model names
  and prices match ``deploy/prices.toml`` so cost and savings figures of the
  traffic make sense.
* Each prompt has a difficulty in [0, 1]: from the built-in knowledge table
  (:data:`KNOWLEDGE`, first entry whose keyword occurs in the last user
  message, case-insensitive, whole words) or, for an unknown prompt, from a
  SHA-256 hash of its normalised text (same text, same difficulty, in every
  process).
* A tier answers correctly when ``difficulty <= capability``, with confidence
  ``min(0.95, 0.55 + (capability - difficulty))``, so at least 0.55. Otherwise
  it answers wrongly (:data:`WRONG_ANSWER`, a generic non-answer) with
  confidence ``max(0.05, 0.45 - (difficulty - capability))``, so at most 0.45.
  The default gate threshold 0.5 therefore separates right from wrong exactly;
  at threshold 0 every wrong cheap answer is served, which is what a gate is for.
* A request enters at ``small``. After ``small`` and ``medium`` the confidence
  gate accepts (confidence >= threshold) or escalates. ``large`` is terminal:
  its answer is served without a gate (its attempt carries no gate).

At the default threshold: easy prompts (difficulty 0.1) are served by small
(confidence 0.80), medium ones (0.5) by medium (0.70), hard ones (0.9) by large.
At 0.9 easy prompts move to medium (0.95); at 0.99 everything goes to large.

Switches (:class:`Switches`) break the router on purpose; see that class.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

TierName = Literal["small", "medium", "large"]

WRONG_ANSWER = "I am not sure."
"""What a tier says about a question above its capability: a generic non-answer."""

GENERIC_ANSWER = "Here is a short, general answer to your question."
"""What a capable tier says about a prompt that is not in the knowledge table."""

APOLOGY = "Sorry, I cannot answer that right now."
"""Served from the terminal tier when the verifier rejects its answer (``verifier: reject_all``)."""


@dataclass(frozen=True)
class Tier:
    """One rung of the cascade. Prices are USD per million tokens."""

    name: str
    rank: int
    model: str
    provider: str
    capability: float
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    base_latency_ms: float
    # A provider error comes back fast: the call is refused, not computed.
    error_latency_ms: float = 10.0

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok) / 1_000_000


# Capabilities sit between the knowledge table's difficulty levels (0.1, 0.5, 0.9) with a
# margin, so that the default threshold puts each level on its own tier.
TIERS: tuple[Tier, ...] = (
    Tier("small", 0, "small-8b", "acme", 0.35, 0.15, 0.60, 30.0),
    Tier("medium", 1, "medium-70b", "globex", 0.65, 0.90, 2.70, 80.0),
    Tier("large", 2, "large-frontier", "initech", 1.0, 5.00, 15.00, 200.0),
)
TIERS_BY_NAME: dict[str, Tier] = {t.name: t for t in TIERS}

EASY, MEDIUM, HARD = 0.1, 0.5, 0.9


@dataclass(frozen=True)
class Knowledge:
    """A known prompt: any of ``keywords`` in the last user message selects it."""

    key: str
    keywords: tuple[str, ...]
    answer: str
    difficulty: float
    category: str


KNOWLEDGE: tuple[Knowledge, ...] = (
    # Order matters: the first entry with a matching keyword wins.
    Knowledge("governing-law", ("governing-law", "governing law"), '{"jurisdiction": "Delaware"}', HARD, "legal"),
    Knowledge("refund", ("refund",), "You have 30 days to ask for a refund.", EASY, "billing"),
    Knowledge("hello", ("hello",), "Hello", EASY, "chitchat"),
    Knowledge("capital-of-france", ("capital of france",), "Paris", EASY, "geography"),
    Knowledge("17x23", ("17 * 23", "17*23", "17 times 23", "17 x 23"), "391", MEDIUM, "math"),
)

GENERAL_CATEGORY = "general"


def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    # Whole words only ("hello" must not match "Othello"); the lookarounds work for
    # keywords that start or end with a non-word character too ("17 * 23").
    return re.compile(r"(?<!\w)" + re.escape(keyword) + r"(?!\w)", re.IGNORECASE)


_PATTERNS: tuple[tuple[Knowledge, tuple[re.Pattern[str], ...]], ...] = tuple(
    (k, tuple(_keyword_pattern(w) for w in k.keywords)) for k in KNOWLEDGE
)


def normalise(text: str) -> str:
    """Lowercase with runs of whitespace collapsed: what matching and hashing see."""
    return " ".join(text.lower().split())


def lookup(prompt: str) -> Knowledge | None:
    """The knowledge-table entry for ``prompt`` (the last user message), or None."""
    text = normalise(prompt)
    for entry, patterns in _PATTERNS:
        if any(p.search(text) for p in patterns):
            return entry
    return None


def hashed_difficulty(prompt: str) -> float:
    """Difficulty of an unknown prompt: the first 32 bits of SHA-256 of its normalised text, in [0, 1)."""
    digest = hashlib.sha256(normalise(prompt).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def confidence(tier: Tier, difficulty: float) -> float:
    """How sure ``tier`` is of its answer to a question of ``difficulty`` (rounded to 4 places)."""
    if difficulty <= tier.capability:
        value = min(0.95, 0.55 + (tier.capability - difficulty))
    else:
        value = max(0.05, 0.45 - (difficulty - tier.capability))
    return round(value, 4)


def estimate_tokens(text: str) -> int:
    """About four characters per token, at least one: enough for plausible usage and cost."""
    return max(1, math.ceil(len(text) / 4))


class Switches(BaseModel):
    """Switches that break the router on purpose. Defaults: a healthy router.

    ``gate_threshold``: minimum confidence for small and medium to serve their answer.
    ``verifier``: ``normal``, or ``reject_all``: every answer at every tier is rejected
    (small and medium escalate with reason ``verifier_rejected``; large, having nowhere
    to go, serves :data:`APOLOGY`).
    ``slow_ms``: extra latency per tier in milliseconds (up to 60 s), on every attempt there.
    ``fail_providers``: tiers whose provider errors (attempt ``failed``, failure mode
    ``provider_error``); the request falls back to the next tier, and is not served when
    no tier is left.
    ``down``: the server answers 503 to every chat request (and records no decision).
    ``expose_tier_header`` / ``expose_tier_body``: whether responses name the final tier
    in the ``X-Router-Tier`` header / the ``router`` body object.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    gate_threshold: float = Field(default=0.5, ge=0.0, le=1.0, allow_inf_nan=False)
    verifier: Literal["normal", "reject_all"] = "normal"
    slow_ms: dict[TierName, Annotated[float, Field(ge=0.0, le=60_000.0, allow_inf_nan=False)]] = Field(
        default_factory=dict
    )
    fail_providers: list[TierName] = Field(default_factory=list)
    down: bool = False
    expose_tier_header: bool = True
    expose_tier_body: bool = True

    @field_validator("fail_providers")
    @classmethod
    def _unique_in_rank_order(cls, value: list[str]) -> list[str]:
        return sorted(set(value), key=lambda name: TIERS_BY_NAME[name].rank)

    def merged(self, patch: dict[str, object]) -> Switches:
        """These switches with the top-level fields of ``patch`` replaced, validated.

        A field in ``patch`` replaces the whole field (``slow_ms`` too). Raises
        ``pydantic.ValidationError`` naming the bad field; ``TypeError`` when
        ``patch`` is not a dict.
        """
        if not isinstance(patch, dict):
            raise TypeError(f"switches must be a JSON object, got {type(patch).__name__}")
        return Switches.model_validate({**self.model_dump(), **patch})


@dataclass(frozen=True)
class PlannedAttempt:
    """One attempt the server will carry out, in order.

    ``outcome`` is ``accepted``, ``escalated`` or ``failed``. ``gate`` is the
    contract's gate dict (None on the terminal tier and on failed attempts).
    ``latency_ms`` is simulated: the server sleeps that long.
    """

    tier: Tier
    outcome: Literal["accepted", "escalated", "failed"]
    answer: str | None
    confidence: float | None
    gate: dict[str, object] | None
    escalation_reason: str | None
    failure_mode: str | None
    latency_ms: float
    input_tokens: int
    output_tokens: int
    cost_usd: float


@dataclass(frozen=True)
class Routing:
    """The whole plan for one request. ``tier`` and ``answer`` are None when not served."""

    attempts: tuple[PlannedAttempt, ...]
    category: str
    difficulty: float
    knowledge: Knowledge | None

    @property
    def served_attempt(self) -> PlannedAttempt | None:
        last = self.attempts[-1]
        return last if last.outcome == "accepted" else None

    @property
    def served(self) -> bool:
        return self.served_attempt is not None

    @property
    def unserved(self) -> bool:
        """Every tier failed or was left: the server answers 502."""
        return self.served_attempt is None

    @property
    def tier(self) -> str | None:
        attempt = self.served_attempt
        return attempt.tier.name if attempt else None

    @property
    def answer(self) -> str | None:
        attempt = self.served_attempt
        return attempt.answer if attempt else None


def route(prompt: str, switches: Switches, *, input_tokens: int | None = None, tiers: tuple[Tier, ...] = TIERS) -> Routing:
    """Plan the attempts for a request whose last user message is ``prompt``.

    ``input_tokens`` is the size of the whole conversation sent to each tier
    (default: estimated from ``prompt``). The plan always has at least one
    attempt; the last one is ``accepted`` when the request is served.
    """
    knowledge = lookup(prompt)
    difficulty = knowledge.difficulty if knowledge else hashed_difficulty(prompt)
    category = knowledge.category if knowledge else GENERAL_CATEGORY
    right_answer = knowledge.answer if knowledge else GENERIC_ANSWER
    tokens_in = estimate_tokens(prompt) if input_tokens is None else input_tokens
    failing = set(switches.fail_providers)
    attempts: list[PlannedAttempt] = []
    for position, tier in enumerate(tiers):
        extra = switches.slow_ms.get(tier.name, 0.0)  # type: ignore[call-overload]
        if tier.name in failing:
            attempts.append(
                PlannedAttempt(tier, "failed", None, None, None, None, "provider_error",
                               tier.error_latency_ms + extra, tokens_in, 0, 0.0)
            )
            continue
        conf = confidence(tier, difficulty)
        answer = right_answer if difficulty <= tier.capability else WRONG_ANSWER
        terminal = position == len(tiers) - 1
        if switches.verifier == "reject_all":
            if terminal:
                # Nowhere left to escalate: the router serves an apology instead of the rejected answer.
                answer = APOLOGY
                gate = None
                outcome, reason = "accepted", None
            else:
                gate = {"kind": "verifier", "passed": False}
                outcome, reason = "escalated", "verifier_rejected"
        elif terminal:
            gate, outcome, reason = None, "accepted", None
        else:
            passed = conf >= switches.gate_threshold
            gate = {"kind": "confidence", "score": conf, "threshold": switches.gate_threshold, "passed": passed}
            outcome, reason = ("accepted", None) if passed else ("escalated", "low_confidence")
        tokens_out = estimate_tokens(answer)
        attempts.append(
            PlannedAttempt(tier, outcome, answer, conf, gate, reason, None, tier.base_latency_ms + extra,
                           tokens_in, tokens_out, tier.cost_usd(tokens_in, tokens_out))
        )
        if outcome == "accepted":
            break
    return Routing(tuple(attempts), category, difficulty, knowledge)
