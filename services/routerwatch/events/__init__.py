"""The event contract: pydantic models, closed vocabularies, raw-bytes validation.

Imports only pydantic, so router processes can use it through the SDK.
"""

from routerwatch.events.models import (
    SCHEMA_VERSION,
    Attempt,
    CanaryResult,
    Experiment,
    Final,
    Gate,
    Prompt,
    Quality,
    QualityFeedback,
    Route,
    Router,
    RoutingDecision,
    now_utc,
)
from routerwatch.events.validation import EVENT_TYPES, InvalidEventError, decode, describe
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

__all__ = [
    "EVENT_TYPES",
    "SCHEMA_VERSION",
    "Attempt",
    "CanaryResult",
    "CheckKind",
    "EscalationReason",
    "Experiment",
    "FailureMode",
    "FeedbackSource",
    "FeedbackTarget",
    "Final",
    "Gate",
    "GateKind",
    "InvalidEventError",
    "Outcome",
    "Prompt",
    "Quality",
    "QualityFeedback",
    "Route",
    "Router",
    "RoutingDecision",
    "Strategy",
    "decode",
    "describe",
    "now_utc",
]
