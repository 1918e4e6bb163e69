"""The example router's routing logic: prompt and switches in, planned attempts out."""

from __future__ import annotations

import argparse

import pytest
from pydantic import ValidationError

from routerwatch.examplerouter.cli import parse_assignments, register, switches_from_args
from routerwatch.examplerouter.router import (
    APOLOGY,
    KNOWLEDGE,
    TIERS,
    TIERS_BY_NAME,
    WRONG_ANSWER,
    Switches,
    confidence,
    hashed_difficulty,
    lookup,
    route,
)

# The canary prompts of deploy/canaries/example.yml and the other known prompts, with the tier
# that serves them at the default threshold and what it answers.
KNOWN = [
    ("How many days do I have to ask for a refund?", "small", "You have 30 days to ask for a refund.", "billing"),
    ("Say hello in one word.", "small", "Hello", "chitchat"),
    ("What is the capital of France?", "small", "Paris", "geography"),
    ("What is 17 * 23?", "medium", "391", "math"),
    ("what is 17 times 23", "medium", "391", "math"),
    ("Return the governing-law clause of the attached contract as JSON.", "large", '{"jurisdiction": "Delaware"}', "legal"),
    ("Which GOVERNING   LAW applies?", "large", '{"jurisdiction": "Delaware"}', "legal"),
]


@pytest.mark.parametrize(("prompt", "tier", "answer", "category"), KNOWN)
def test_known_prompts_land_on_their_tier_at_the_default_threshold(prompt, tier, answer, category):
    plan = route(prompt, Switches())
    assert plan.tier == tier
    assert plan.answer == answer
    assert plan.category == category
    rank = TIERS_BY_NAME[tier].rank
    # Entered at small, escalated on low confidence up to the serving tier, nothing after it.
    assert [a.tier.name for a in plan.attempts] == [t.name for t in TIERS[: rank + 1]]
    assert [a.outcome for a in plan.attempts] == ["escalated"] * rank + ["accepted"]
    for a in plan.attempts[:-1]:
        assert a.escalation_reason == "low_confidence"
        assert a.gate == {"kind": "confidence", "score": a.confidence, "threshold": 0.5, "passed": False}
        assert a.confidence < 0.5
        assert a.answer == WRONG_ANSWER, "a tier below the question's difficulty answers wrongly"


def test_the_gate_is_what_keeps_wrong_answers_from_being_served():
    hard = "Return the governing-law clause as JSON."
    plan = route(hard, Switches(gate_threshold=0.0))
    assert plan.tier == "small" and plan.answer == WRONG_ANSWER
    assert plan.attempts[0].gate["passed"] is True


def test_every_tier_is_right_above_the_gate_and_wrong_below_it():
    # The default gate separates right from wrong answers exactly, for any difficulty.
    for step in range(101):
        difficulty = step / 100
        for tier in TIERS:
            right = difficulty <= tier.capability
            assert (confidence(tier, difficulty) >= 0.5) == right, (tier.name, difficulty)


def test_raising_the_threshold_moves_easy_prompts_off_small():
    easy = "How many days do I have to ask for a refund?"
    assert route(easy, Switches(gate_threshold=0.9)).tier == "medium"
    plan = route(easy, Switches(gate_threshold=0.99))
    assert plan.tier == "large"
    assert [a.outcome for a in plan.attempts] == ["escalated", "escalated", "accepted"]
    # Right answers rejected for want of confidence: the escalations are false escalations.
    assert plan.attempts[0].answer == "You have 30 days to ask for a refund."
    assert plan.answer == "You have 30 days to ask for a refund."


def test_reject_all_serves_the_apology_from_large():
    plan = route("Say hello in one word.", Switches(verifier="reject_all"))
    assert plan.tier == "large"
    assert plan.answer == APOLOGY
    assert [a.outcome for a in plan.attempts] == ["escalated", "escalated", "accepted"]
    for a in plan.attempts[:2]:
        assert a.escalation_reason == "verifier_rejected"
        assert a.gate == {"kind": "verifier", "passed": False}
    assert plan.attempts[-1].gate is None


def test_a_failing_provider_falls_back_to_the_next_tier():
    plan = route("What is the capital of France?", Switches(fail_providers=["small"]))
    assert plan.tier == "medium" and plan.answer == "Paris"
    failed, served = plan.attempts
    assert failed.tier.name == "small" and failed.outcome == "failed"
    assert failed.failure_mode == "provider_error"
    assert failed.output_tokens == 0 and failed.cost_usd == 0.0 and failed.gate is None
    assert served.outcome == "accepted"


def test_all_tiers_failing_leaves_the_request_unserved():
    plan = route("What is the capital of France?", Switches(fail_providers=["large", "small", "medium"]))
    assert plan.unserved and not plan.served
    assert plan.tier is None and plan.answer is None
    assert [(a.tier.name, a.outcome, a.failure_mode) for a in plan.attempts] == [
        ("small", "failed", "provider_error"),
        ("medium", "failed", "provider_error"),
        ("large", "failed", "provider_error"),
    ]


def test_a_hard_prompt_is_unserved_when_only_large_fails():
    plan = route("governing law?", Switches(fail_providers=["large"]))
    assert plan.unserved
    assert [a.outcome for a in plan.attempts] == ["escalated", "escalated", "failed"]


def test_slow_adds_latency_to_that_tier_only():
    base = route("17 * 23", Switches())
    slow = route("17 * 23", Switches(slow_ms={"medium": 500}))
    assert [a.latency_ms for a in base.attempts] == [30.0, 80.0]
    assert [a.latency_ms for a in slow.attempts] == [30.0, 580.0]


def test_tokens_and_cost_follow_the_price_of_the_tier():
    plan = route("What is 17 * 23?", Switches(), input_tokens=100)
    small, medium = plan.attempts
    assert small.input_tokens == medium.input_tokens == 100
    assert medium.cost_usd == pytest.approx((100 * 0.90 + medium.output_tokens * 2.70) / 1e6)
    assert small.cost_usd == pytest.approx((100 * 0.15 + small.output_tokens * 0.60) / 1e6)


def test_unknown_prompts_are_general_and_stable():
    prompt = "Write a limerick about cascades."
    assert lookup(prompt) is None
    first, second = route(prompt, Switches()), route(prompt, Switches())
    assert first == second
    assert first.category == "general"
    # Pinned: the hash must not depend on the process (no salted hash()).
    assert hashed_difficulty(prompt) == pytest.approx(hashed_difficulty("  write a LIMERICK about   cascades. "))
    assert 0.0 <= first.difficulty < 1.0


def test_keywords_match_whole_words_only():
    assert lookup("Othello is a play") is None
    assert lookup("HELLO there").key == "hello"
    assert lookup("117 * 234") is None


def test_the_knowledge_table_holds_what_the_canaries_need():
    keys = {k.key for k in KNOWLEDGE}
    assert {"refund", "hello", "governing-law", "capital-of-france", "17x23"} <= keys


def test_switches_validation_names_the_field():
    cases = [
        ({"gate_threshold": 1.5}, "gate_threshold"),
        ({"gate_threshold": float("nan")}, "gate_threshold"),
        ({"verifier": "lenient"}, "verifier"),
        ({"slow_ms": {"tiny": 5}}, "slow_ms"),
        ({"slow_ms": {"small": -1}}, "slow_ms"),
        ({"fail_providers": ["openai"]}, "fail_providers"),
        ({"colour": "red"}, "colour"),
    ]
    for patch, field in cases:
        with pytest.raises(ValidationError) as info:
            Switches().merged(patch)
        assert info.value.errors()[0]["loc"][0] == field, patch
    with pytest.raises(TypeError):
        Switches().merged([1, 2])  # type: ignore[arg-type]


def test_merge_replaces_given_fields_and_keeps_the_others():
    current = Switches(gate_threshold=0.9, slow_ms={"small": 100})
    merged = current.merged({"slow_ms": {"large": 50}, "fail_providers": ["large", "small", "small"]})
    assert merged.gate_threshold == 0.9
    assert merged.slow_ms == {"large": 50}
    assert merged.fail_providers == ["small", "large"]
    with pytest.raises(ValidationError):
        merged.gate_threshold = 0.1  # frozen


def _cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["example-router", *argv])


def test_cli_flags_set_the_starting_switches():
    args = _cli("--gate-threshold", "0.9", "--verifier", "reject_all", "--slow", "small=500", "--fail", "small",
                "--fail", "medium", "--down", "--hide-tier-header")
    assert switches_from_args(args) == Switches(
        gate_threshold=0.9, verifier="reject_all", slow_ms={"small": 500}, fail_providers=["small", "medium"],
        down=True, expose_tier_header=False,
    )
    assert switches_from_args(_cli()) == Switches()
    with pytest.raises(ValueError, match=r"--slow tiny"):
        switches_from_args(_cli("--slow", "tiny=5"))
    with pytest.raises(ValueError, match=r"--gate-threshold"):
        switches_from_args(_cli("--gate-threshold", "2"))
    with pytest.raises(ValueError, match=r"--slow wants TIER=MS"):
        switches_from_args(_cli("--slow", "500"))


def test_switch_client_assignments():
    assert parse_assignments(["gate_threshold=0.99", "down=true", "verifier=reject_all"]) == {
        "gate_threshold": 0.99, "down": True, "verifier": "reject_all",
    }
    assert parse_assignments(["fail_providers=small,medium", "slow_ms.large=800"]) == {
        "fail_providers": ["small", "medium"], "slow_ms": {"large": 800},
    }
    assert parse_assignments(["fail_providers="]) == {"fail_providers": []}
    with pytest.raises(ValueError):
        parse_assignments(["gate_threshold"])
    args = _cli("switch", "--url", "http://127.0.0.1:1", "down=true")
    assert args.func.__name__ == "cmd_switch" and args.assignments == ["down=true"]
