"""RoutingDecision events generated from the published JSON Schema (hypothesis-jsonschema).

The JSON Schema carries the per-field contract (types, ranges, patterns, enums) but not the
cross-field rules (indexes in order, one accepted attempt on a served request, ...), so events
drawn from it straight are nearly all rejected by the model. :func:`repair` keeps every value
the schema drew (the extremes are the point) and fixes only those cross-field relations, so most
repaired events are accepted; the property tests use both.
"""

from __future__ import annotations

import copy
import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "schemas/RoutingDecision.v1.schema.json"


def load_schema() -> dict[str, Any]:
    schema = json.loads(SCHEMA_FILE.read_text())
    # A relative $id makes the $defs references look remote to the resolver; they are local.
    schema.pop("$id", None)
    return schema


SCHEMA = load_schema()
VALIDATOR = jsonschema.validators.validator_for(SCHEMA)(SCHEMA)


def decisions() -> st.SearchStrategy[dict[str, Any]]:
    """Raw RoutingDecision JSON objects valid against the JSON Schema."""
    return from_schema(SCHEMA, custom_formats={"uuid": st.uuids().map(str)})


def _fix_outcome_fields(a: dict[str, Any]) -> None:
    outcome = a["outcome"]
    gate = a.get("gate")
    if outcome != "escalated":
        a.pop("escalation_reason", None)
    if outcome == "accepted":
        a.pop("failure_mode", None)
        if gate:
            gate["passed"] = True
    elif outcome == "escalated":
        if a.get("escalation_reason") is None:
            a["escalation_reason"] = "low_confidence"
        if gate:
            gate["passed"] = False
    elif outcome == "failed" and a.get("failure_mode") is None:
        a["failure_mode"] = "timeout"
    ttft = a.get("ttft_ms")
    if ttft is not None and ttft > a["latency_ms"]:
        a["ttft_ms"] = a["latency_ms"]


def _declared_time_range() -> tuple[datetime, datetime] | None:
    """The accepted event-time range, when the schema declares one (``x-routerwatch-range``)."""
    text = SCHEMA["properties"]["occurred_at"].get("x-routerwatch-range", "")
    found = re.findall(r"\d{4}-\d{2}-\d{2}T[0-9:.]+Z", text)
    if len(found) != 2:
        return None
    low, high = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in found)
    return low, high


TIME_RANGE = _declared_time_range()


def _into_range(value: str) -> str:
    """A generated time moved into the declared range by its year (month, day, time and zone kept)."""
    if TIME_RANGE is None:
        return value
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value  # not a time Python reads: left for the contract to judge
    low, high = TIME_RANGE
    if low <= when.astimezone(UTC) < high:
        return value
    years = high.year - low.year - 1
    year = low.year + 1 + when.year % years
    try:
        moved = when.replace(year=year)
    except ValueError:  # 29 February
        moved = when.replace(year=year, day=28)
    return moved.isoformat()


def repair(raw: dict[str, Any], *, keep_time: bool = False) -> dict[str, Any]:
    """``raw`` with its cross-field relations made consistent; every other value kept.

    The event time is moved into the range the schema declares for it (``x-routerwatch-range``,
    a limit JSON Schema cannot express), unless ``keep_time``: the unrepaired events test the edges.
    """
    d = copy.deepcopy(raw)
    if not keep_time:
        d["occurred_at"] = _into_range(d["occurred_at"])
    attempts = d["attempts"]
    for i, a in enumerate(attempts):
        a["index"] = i
    if all(a["outcome"] == "shadow" for a in attempts):
        attempts[-1]["outcome"] = "failed"
    if any(a["outcome"] == "shadow" for a in attempts):
        d["shadow"] = True
    counted = [a for a in attempts if a["outcome"] != "shadow"]
    last = counted[-1]
    for a in counted[:-1]:
        if a["outcome"] == "accepted":
            a["outcome"] = "escalated"
    final = d["final"]
    if final["served"]:
        last["outcome"] = "accepted"
    elif last["outcome"] == "accepted":
        last["outcome"] = "failed"
    for a in attempts:
        _fix_outcome_fields(a)
    if final["served"]:
        final["tier"], final["model"] = last["tier"], last["model"]
        end = last.get("offset_ms", 0.0) + last["latency_ms"]
        if not math.isfinite(end):
            last["offset_ms"] = 0.0
            end = last["latency_ms"]
        final["latency_ms"] = max(final["latency_ms"], end)
    else:
        final["tier"] = final["model"] = None
    return d
