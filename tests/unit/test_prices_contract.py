"""docs/contract.md lists every cross-field rule the event validators enforce (checked against
their source), and the timing rule is tested at its boundary."""

from __future__ import annotations

import ast
import json
import uuid
from pathlib import Path

import pytest

from routerwatch.events.validation import InvalidEventError, decode
from routerwatch.events import RoutingDecision

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "services/routerwatch/events/models.py"
CONTRACT = REPO / "docs/contract.md"


def validator_messages() -> list[tuple[int, str]]:
    """(line, the longest literal piece) of each message a validator in events/models.py raises."""
    found = []
    for node in ast.walk(ast.parse(MODELS.read_text())):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        if not ((isinstance(func, ast.Name) and func.id == "ValueError") or (isinstance(func, ast.Attribute) and func.attr == "_broken")):
            continue
        pieces = [n.value for n in ast.walk(node.args[0]) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        longest = max(pieces, key=len, default="").strip()
        if len(longest) >= 12:  # `_broken`'s own "attempt {i} (tier {t}): " prefix has no rule of its own
            found.append((node.lineno, longest))
    return found


def test_every_rule_a_validator_raises_is_in_docs_contract_md():
    text = CONTRACT.read_text()
    messages = validator_messages()
    assert len(messages) >= 18, "the validators' messages were not found: has events/models.py moved?"
    missing = [f"models.py:{line}: {message!r}" for line, message in messages if message not in text]
    assert not missing, "rules enforced but not documented in docs/contract.md:\n" + "\n".join(missing)


def _decision(final_latency_ms: float, offset_ms: float = 100.0, latency_ms: float = 400.0) -> bytes:
    return json.dumps({
        "event_id": str(uuid.uuid4()), "request_id": "r", "occurred_at": "2026-12-01T00:00:00Z",
        "router": {"id": "rt", "strategy": "fallback"},
        "attempts": [
            {"index": 0, "tier": "large", "tier_rank": 2, "model": "gpt-4o", "provider": "openai", "offset_ms": 0.0,
             "latency_ms": 90.0, "outcome": "failed", "failure_mode": "rate_limited"},
            {"index": 1, "tier": "large", "tier_rank": 2, "model": "gpt-4o", "provider": "azure", "offset_ms": offset_ms,
             "latency_ms": latency_ms, "outcome": "accepted"},
        ],
        "final": {"served": True, "tier": "large", "model": "gpt-4o", "latency_ms": final_latency_ms, "cost_usd": 0.01},
    }).encode()


@pytest.mark.parametrize("final_latency_ms", [500.0, 499.0, 800.0])
def test_the_timing_rule_admits_a_request_that_ends_when_its_answer_does(final_latency_ms):
    # offset 100 + latency 400 = 500; 1 ms of tolerance for the router's rounding.
    assert isinstance(decode(RoutingDecision, _decision(final_latency_ms)), RoutingDecision)


@pytest.mark.parametrize("final_latency_ms", [498.9, 400.0, 0.0])
def test_the_timing_rule_rejects_a_request_that_ends_before_its_answer(final_latency_ms):
    with pytest.raises(InvalidEventError) as caught:
        decode(RoutingDecision, _decision(final_latency_ms))
    assert caught.value.reason == "schema"
    assert "is shorter than the accepted attempt ends (100.0 + 400.0)" in caught.value.detail
    assert "is shorter than the accepted attempt ends (" in CONTRACT.read_text()
