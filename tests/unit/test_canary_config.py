"""Canary sets load with clear errors, and answer checks judge answers correctly."""

from __future__ import annotations

from pathlib import Path

import pytest

from routerwatch.canary.checks import check_answer
from routerwatch.canary.config import CanaryConfigError, Check, load_canary_set

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy/canaries/example.yml"


def test_the_shipped_example_loads():
    canaries = load_canary_set(EXAMPLE)
    assert canaries.router_id == "example-router"
    assert canaries.endpoint == "http://127.0.0.1:8088/v1/chat/completions"
    assert {c.labels["side"] for c in canaries.canaries} == {"cheap", "strong"}
    assert [c.id for c in canaries.canaries] == [
        "refund-window", "greeting", "capital-of-france", "contract-clause", "multiplication"
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("version: v1\nrouter_id: r\ncanaries:\n  - id: a\n    request: {messages: [{role: user, content: hi}]}\n"
         "    expected_tier: small\n    check: {kind: regex}\n", "canary 'a': check: Value error, a regex check needs 'pattern'"),
        ("version: v1\nrouter_id: r\ncanaries:\n  - id: b\n    request: {messages: []}\n    expected_tier: small\n"
         "    check: {kind: exact, expected: x}\n", "canary 'b': <canary>: Value error, request needs a non-empty 'messages' list"),
        ("version: v1\nrouter_id: r\ncanaries:\n  - id: c\n    request: {messages: [{role: user, content: x}]}\n"
         "    expected_tier: small\n    check: {kind: regex, pattern: '('}\n", "pattern is not a valid regular expression"),
        ("version: v1\nrouter_id: r\ncanaries:\n  - id: d\n    request: {messages: [{role: user, content: x}]}\n"
         "    expected_tier: small\n    check: {kind: json_schema, json_schema: {type: 12}}\n", "json_schema is not a valid JSON Schema"),
        ("version: v1\nrouter_id: r\ncanaries:\n  - id: e\n    request: {messages: [{role: user, content: x}]}\n"
         "    expected_tier: small\n    check: {kind: exact, expected: x}\n    colour: red\n", "canary 'e': colour: Extra inputs are not permitted"),
        ("version: v1\nrouter_id: r\ncanaries: [\n", "not valid YAML"),
    ],
)
def test_mistakes_name_the_file_the_canary_and_the_field(tmp_path, body, expected):
    path = tmp_path / "canaries.yml"
    path.write_text(body)
    with pytest.raises(CanaryConfigError) as caught:
        load_canary_set(path)
    assert str(path) in str(caught.value) and expected in str(caught.value)


def test_duplicate_ids_are_rejected(tmp_path):
    one = "  - id: same\n    request: {messages: [{role: user, content: x}]}\n    expected_tier: s\n    check: {kind: exact, expected: x}\n"
    path = tmp_path / "c.yml"
    path.write_text("version: v1\nrouter_id: r\ncanaries:\n" + one + one)
    with pytest.raises(CanaryConfigError, match="canary id 'same' appears twice"):
        load_canary_set(path)


@pytest.mark.parametrize(
    ("check", "answer", "passed"),
    [
        ({"kind": "exact", "expected": "Paris"}, "  Paris \n", True),
        ({"kind": "exact", "expected": "Paris"}, "paris", False),
        ({"kind": "exact", "expected": "Paris", "case_sensitive": False}, "paris", True),
        ({"kind": "regex", "pattern": r"\b30 days\b"}, "You have 30 days.", True),
        ({"kind": "regex", "pattern": r"\b30 days\b"}, "You have 14 days.", False),
        ({"kind": "numeric", "value": 30, "tolerance": 0.5}, "about 30.4 days", True),
        ({"kind": "numeric", "value": 30, "tolerance": 0.5}, "about 31 days", False),
        ({"kind": "numeric", "value": 30}, "no idea", False),
        ({"kind": "json_schema", "json_schema": {"type": "object", "required": ["a"]}}, '{"a": 1}', True),
        ({"kind": "json_schema", "json_schema": {"type": "object", "required": ["a"]}}, '{"b": 1}', False),
        ({"kind": "json_schema", "json_schema": {"type": "object"}}, "not json", False),
    ],
)
def test_answer_checks(check, answer, passed):
    ok, reason = check_answer(Check.model_validate(check), answer)
    assert ok is passed
    assert (reason == "") is passed, reason
