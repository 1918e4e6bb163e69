"""The event contract against the committed examples and JSON Schema files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from routerwatch.events import (
    EVENT_TYPES,
    CanaryResult,
    InvalidEventError,
    Outcome,
    QualityFeedback,
    RoutingDecision,
    decode,
)
from routerwatch.events.schema_export import SCHEMA_FILE, drift

# Located from this file, not the working directory: pytest may run from anywhere.
REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = REPO_ROOT / "schemas"
EXAMPLES = SCHEMAS / "examples"
# An example's file name prefix says which event type it is.
MODEL_BY_PREFIX: dict[str, type] = {
    "decision": RoutingDecision,
    "feedback": QualityFeedback,
    "canary": CanaryResult,
}


def model_for(path: Path) -> type:
    return MODEL_BY_PREFIX[path.name.split("_", 1)[0]]


VALID = sorted((EXAMPLES / "valid").glob("*.json"))
DECISIONS = [p for p in VALID if p.name.startswith("decision_")]
INVALID = sorted(p for p in (EXAMPLES / "invalid").glob("*.json") if p.name != "expected.json")
EXPECTED = json.loads((EXAMPLES / "invalid" / "expected.json").read_text(encoding="utf-8"))
SCHEMA_NAME_BY_PREFIX = {prefix: model.__name__ for prefix, model in MODEL_BY_PREFIX.items()}


def _validator(path: Path) -> Draft202012Validator:
    name = SCHEMA_NAME_BY_PREFIX[path.name.split("_", 1)[0]]
    schema = json.loads((SCHEMAS / SCHEMA_FILE.format(name=name)).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


# -- the example set itself --------------------------------------------------------


def test_example_sets_cover_every_event_type_and_are_listed_in_expected() -> None:
    for prefix in MODEL_BY_PREFIX:
        assert any(p.name.startswith(prefix + "_") for p in VALID), f"no valid {prefix} example"
    assert len(DECISIONS) >= 5
    assert len(INVALID) >= 10
    # Every invalid file has an expected message and every expectation has a file.
    assert sorted(EXPECTED) == _ids(INVALID)


def test_valid_examples_cover_the_documented_situations() -> None:
    events = [decode(RoutingDecision, p.read_bytes()) for p in DECISIONS]
    outcomes = {a.outcome for e in events for a in e.attempts}
    assert outcomes == set(Outcome)
    assert any(not e.final.served for e in events)
    assert any(e.shadow for e in events)
    assert any(a.failure_mode == "rate_limited" and a.outcome is Outcome.FAILED for e in events for a in e.attempts)
    assert any(
        e.experiment and e.route and e.prompt and e.quality for e in events
    ), "one example should carry experiment, route, prompt and quality"
    # A cascade small -> escalated -> large, gated on confidence.
    assert any(
        e.attempts[0].tier == "small"
        and e.attempts[0].outcome is Outcome.ESCALATED
        and e.attempts[0].gate is not None
        and e.attempts[0].gate.kind == "confidence"
        and e.final.tier == "large"
        for e in events
    )


# -- decode() ------------------------------------------------------------------------


@pytest.mark.parametrize("path", VALID, ids=_ids(VALID))
def test_valid_example_decodes(path: Path) -> None:
    model = model_for(path)
    event = decode(model, path.read_bytes())
    assert isinstance(event, model)
    raw = json.loads(path.read_bytes())
    assert str(event.event_id) == raw["event_id"]


@pytest.mark.parametrize("path", DECISIONS, ids=_ids(DECISIONS))
def test_valid_decision_final_cost_is_the_sum_of_non_shadow_attempts(path: Path) -> None:
    # The model does not check this sum; the examples still show what final.cost_usd means.
    event = decode(RoutingDecision, path.read_bytes())
    spent = sum(a.cost_usd + a.verify_cost_usd for a in event.attempts if a.outcome is not Outcome.SHADOW)
    assert event.final.cost_usd == pytest.approx(spent, abs=1e-9)


@pytest.mark.parametrize("path", INVALID, ids=_ids(INVALID))
def test_invalid_example_is_rejected_with_its_reason(path: Path) -> None:
    with pytest.raises(InvalidEventError) as caught:
        decode(model_for(path), path.read_bytes())
    assert caught.value.reason == "schema"
    assert EXPECTED[path.name] in caught.value.detail
    assert str(caught.value) == f"schema: {caught.value.detail}"


@pytest.mark.parametrize("model", list(EVENT_TYPES.values()), ids=list(EVENT_TYPES))
def test_non_utf8_bytes_are_undecodable(model: type) -> None:
    with pytest.raises(InvalidEventError) as caught:
        decode(model, b'{"event_id": "\xff\xfe"}')
    assert caught.value.reason == "undecodable"
    assert "not UTF-8" in caught.value.detail


def test_truncated_json_is_invalid_json() -> None:
    raw = (EXAMPLES / "valid" / "decision_kept_cheap_tier.json").read_bytes()
    with pytest.raises(InvalidEventError) as caught:
        decode(RoutingDecision, raw[: len(raw) // 2])
    assert caught.value.reason == "invalid_json"


@pytest.mark.parametrize("raw", [b"", b"not json", b'{"event_id": '], ids=["empty", "text", "cut"])
def test_non_json_is_invalid_json(raw: bytes) -> None:
    with pytest.raises(InvalidEventError) as caught:
        decode(QualityFeedback, raw)
    assert caught.value.reason == "invalid_json"


def test_json_that_is_not_an_object_is_a_schema_error() -> None:
    with pytest.raises(InvalidEventError) as caught:
        decode(RoutingDecision, b"[1, 2, 3]")
    assert caught.value.reason == "schema"


def test_detail_lists_at_most_five_problems_and_counts_the_rest() -> None:
    doc = json.loads((EXAMPLES / "valid" / "decision_kept_cheap_tier.json").read_bytes())
    for key in ("event_id", "request_id", "occurred_at", "router", "attempts", "final"):
        del doc[key]
    doc["extra_a"] = doc["extra_b"] = 1
    with pytest.raises(InvalidEventError) as caught:
        decode(RoutingDecision, json.dumps(doc))
    detail = caught.value.detail
    assert detail.count("; ") == 5  # five clauses plus the "... and N more" tail
    assert detail.endswith("... and 3 more")
    assert "event_id: Field required" in detail


def test_str_input_is_accepted_like_bytes() -> None:
    path = EXAMPLES / "valid" / "decision_kept_cheap_tier.json"
    assert decode(RoutingDecision, path.read_text(encoding="utf-8")) == decode(RoutingDecision, path.read_bytes())


# -- occurred_at normalisation ----------------------------------------------------------


def _with_time(stamp: str) -> bytes:
    doc = json.loads((EXAMPLES / "valid" / "decision_kept_cheap_tier.json").read_bytes())
    doc["occurred_at"] = stamp
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2024-11-20T15:03:16.123456+01:00", datetime(2024, 11, 20, 14, 3, 16, 123000, tzinfo=UTC)),
        ("2024-11-20T09:03:16.999999-05:00", datetime(2024, 11, 20, 14, 3, 16, 999000, tzinfo=UTC)),
        ("2024-11-20T14:03:16Z", datetime(2024, 11, 20, 14, 3, 16, tzinfo=UTC)),
        ("2024-11-21T00:30:00.5+10:30", datetime(2024, 11, 20, 14, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_occurred_at_is_normalised_to_utc_milliseconds(stamp: str, expected: datetime) -> None:
    event = decode(RoutingDecision, _with_time(stamp))
    assert event.occurred_at == expected
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert event.occurred_at.microsecond % 1000 == 0
    # The serialised form keeps the normalised value: what ClickHouse stores.
    assert json.loads(event.model_dump_json())["occurred_at"] == expected.isoformat().replace("+00:00", "Z")


def test_example_with_offset_and_microseconds_is_normalised() -> None:
    event = decode(
        RoutingDecision, (EXAMPLES / "valid" / "decision_experiment_route_prompt_quality.json").read_bytes()
    )
    assert event.occurred_at == datetime(2024, 11, 20, 14, 3, 16, 123000, tzinfo=UTC)


def test_naive_timestamp_is_rejected() -> None:
    with pytest.raises(InvalidEventError, match="timezone"):
        decode(RoutingDecision, _with_time("2024-11-20T14:03:16.123"))


def test_decoded_event_round_trips() -> None:
    for path in VALID:
        model = model_for(path)
        event = decode(model, path.read_bytes())
        assert decode(model, event.model_dump_json()) == event


# -- JSON Schema ------------------------------------------------------------------------


@pytest.mark.parametrize("path", VALID, ids=_ids(VALID))
def test_valid_example_matches_committed_json_schema(path: Path) -> None:
    errors = [e.message for e in _validator(path).iter_errors(json.loads(path.read_bytes()))]
    assert errors == []


# Field-level rules are in the JSON Schema too; cross-field rules (outcome needs a reason,
# one accepted attempt, ...) are pydantic validators and only decode() enforces them.
SCHEMA_LEVEL = [
    "decision_negative_latency.json",
    "decision_unknown_outcome.json",
    "decision_unknown_failure_mode.json",
    "decision_unknown_field.json",
]


@pytest.mark.parametrize("name", SCHEMA_LEVEL)
def test_field_level_invalid_example_also_breaks_json_schema(name: str) -> None:
    path = EXAMPLES / "invalid" / name
    assert list(_validator(path).iter_errors(json.loads(path.read_bytes()))) != []


def test_committed_schema_files_match_the_models() -> None:
    assert drift(SCHEMAS) == []


def test_drift_notices_a_stale_schema_file(tmp_path: Path) -> None:
    for name in EVENT_TYPES:
        target = tmp_path / SCHEMA_FILE.format(name=name)
        target.write_text((SCHEMAS / target.name).read_text(encoding="utf-8"), encoding="utf-8")
    assert drift(tmp_path) == []
    stale = tmp_path / SCHEMA_FILE.format(name="CanaryResult")
    stale.write_text(stale.read_text(encoding="utf-8").replace('"title"', '"titel"', 1), encoding="utf-8")
    (tmp_path / SCHEMA_FILE.format(name="QualityFeedback")).unlink()
    assert drift(tmp_path) == ["QualityFeedback", "CanaryResult"]


# -- storage limits are contract limits (issue: contract-valid values wedged ingest) ---------


def _decision_with(**attempt_fields: object) -> bytes:
    doc = json.loads((EXAMPLES / "valid" / "decision_cascade_escalated_to_large.json").read_bytes())
    doc["attempts"][0].update(attempt_fields)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("field", "largest"),
    [("tier_rank", 2**8 - 1), ("input_tokens", 2**32 - 1), ("output_tokens", 2**32 - 1)],
)
def test_the_largest_value_a_column_holds_is_accepted_one_more_is_a_schema_error(field: str, largest: int) -> None:
    assert getattr(decode(RoutingDecision, _decision_with(**{field: largest})).attempts[0], field) == largest
    for beyond in (largest + 1, 5 * 10**9, 2**65):
        if beyond <= largest:
            continue
        with pytest.raises(InvalidEventError, match=rf"attempts\.0\.{field}: Input should be less than or equal to {largest}"):
            decode(RoutingDecision, _decision_with(**{field: beyond}))


def test_prompt_length_and_feedback_attempt_index_are_bounded_by_their_columns() -> None:
    doc = json.loads((EXAMPLES / "valid" / "decision_experiment_route_prompt_quality.json").read_bytes())
    doc["prompt"]["length"] = 2**40
    with pytest.raises(InvalidEventError, match=r"prompt\.length: Input should be less than or equal to 4294967295"):
        decode(RoutingDecision, json.dumps(doc).encode())
    grade = json.loads((EXAMPLES / "valid" / "feedback_shadow_human.json").read_bytes())
    grade["attempt_index"] = 1000
    with pytest.raises(InvalidEventError, match=r"attempt_index: Input should be less than or equal to 31"):
        decode(QualityFeedback, json.dumps(grade).encode())


def test_the_json_schema_carries_the_storage_limits() -> None:
    schema = json.loads((SCHEMAS / SCHEMA_FILE.format(name="RoutingDecision")).read_text())
    attempt = schema["$defs"]["Attempt"]["properties"]
    assert attempt["tier_rank"]["maximum"] == 255
    assert attempt["input_tokens"]["maximum"] == attempt["output_tokens"]["maximum"] == 2**32 - 1
    assert attempt["index"]["maximum"] == 31
    assert "2000-01-01T00:00:00Z <= time < 2100-01-01T00:00:00Z" in schema["properties"]["occurred_at"]["description"]


@pytest.mark.parametrize(
    "stamp",
    ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59-05:00",
     "1999-12-31T23:59:59.999Z", "2100-01-01T00:00:00Z"],
)
def test_times_outside_the_accepted_range_are_schema_errors_naming_the_field(stamp: str) -> None:
    with pytest.raises(InvalidEventError, match=r"^schema: occurred_at: Value error, time .* is outside the accepted range"):
        decode(RoutingDecision, _with_time(stamp))


def test_the_edges_of_the_accepted_time_range() -> None:
    assert decode(RoutingDecision, _with_time("2000-01-01T00:00:00Z")).occurred_at == datetime(2000, 1, 1, tzinfo=UTC)
    assert decode(RoutingDecision, _with_time("2099-12-31T23:59:59.999Z")).occurred_at.year == 2099


def test_json_is_validated_strictly_as_the_json_schema_is() -> None:
    # Lax coercion stored "510" as a latency and an epoch integer as a time; the JSON Schema rejects both.
    with pytest.raises(InvalidEventError, match=r"attempts\.0\.latency_ms: Input should be a valid number"):
        decode(RoutingDecision, _decision_with(latency_ms="510"))
    with pytest.raises(InvalidEventError, match=r"occurred_at: Input should be a valid datetime"):
        decode(RoutingDecision, _with_time(1_700_000_000))  # type: ignore[arg-type]
    assert decode(RoutingDecision, _decision_with(latency_ms=510)).attempts[0].latency_ms == 510.0


def test_route_features_are_short_values_not_free_text() -> None:
    # Before: a 5 MB string in route.features was stored and served to every reader of the store.
    doc = json.loads((EXAMPLES / "valid" / "decision_experiment_route_prompt_quality.json").read_bytes())
    doc["route"]["features"]["note"] = "x" * 256
    assert decode(RoutingDecision, json.dumps(doc).encode()).route.features["note"] == "x" * 256
    doc["route"]["features"]["note"] = "x" * 257
    with pytest.raises(InvalidEventError, match=r"route\.features\.note.*at most 256 characters"):
        decode(RoutingDecision, json.dumps(doc).encode())
    schema = json.loads((SCHEMAS / SCHEMA_FILE.format(name="RoutingDecision")).read_text())
    assert "256" in json.dumps(schema["$defs"]["Route"]["properties"]["features"])
