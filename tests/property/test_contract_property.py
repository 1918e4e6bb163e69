"""Property: every RoutingDecision the JSON Schema admits is either rejected by the contract with a
reason, or storable: its columns (storage/rows.py) insert into the real embedded ClickHouse and
read back once, with the values it was sent with.

Events are generated from the published JSON Schema, straight and with their cross-field
relations repaired (tests/property/eventgen.py). Bounded: 100 examples by default, 1000 under
ROUTERWATCH_FAULTS=long (`make faults`).
"""

from __future__ import annotations

import json
import os
import uuid

import pytest
from eventgen import VALIDATOR, decisions, repair
from hypothesis import HealthCheck, Phase, given, note, settings

from routerwatch.events import InvalidEventError, RoutingDecision, decode
from routerwatch.prices import default_prices_file, load_prices
from routerwatch.storage import migrations
from routerwatch.storage.client import Store
from routerwatch.storage.migrations import default_sql_dir
from routerwatch.storage.rows import Located, attempt_columns, decision_columns

pytestmark = [pytest.mark.property, pytest.mark.integration]

REASONS = {"schema", "invalid_json", "undecodable"}


@pytest.fixture(scope="module")
def store(session_chdb_path):
    # The session's chDB path (one path per process), a database of its own.
    database = f"prop_{uuid.uuid4().hex[:10]}"
    with Store(f"chdb://{session_chdb_path}", database) as s:
        migrations.migrate_up(s, default_sql_dir() / "migrations")
        yield s
        s.command(f"DROP DATABASE IF EXISTS `{database}`")


PRICES = load_prices(default_prices_file())
# 100 keeps the default run near a minute on a loaded 2-core machine; `make faults` runs 1000.
EXAMPLES = 1000 if os.environ.get("ROUTERWATCH_FAULTS", "").strip().lower() == "long" else 100


def check_one(store: Store, body: dict) -> str:
    """Decode ``body``; if the contract accepts it, store it and read it back. Returns what happened."""
    body = dict(body, event_id=str(uuid.uuid4()))  # unique per insert: Hypothesis replays examples
    raw = json.dumps(body).encode()
    try:
        event = decode(RoutingDecision, raw)
    except InvalidEventError as exc:
        assert exc.reason in REASONS and exc.detail, (exc.reason, exc.detail)
        return "rejected"
    items = [Located(event, 0, 0)]
    note(f"accepted: {raw[:2000]!r}")
    store.insert_columns("attempts", attempt_columns(items))
    store.insert_columns("decisions", decision_columns(items, PRICES))
    eid = {"id": str(event.event_id)}
    rows = store.query(
        "SELECT count(), any(toUnixTimestamp64Milli(occurred_at)), any(prompt_length), any(attempt_count) "
        "FROM decisions WHERE event_id = {id:UUID}", eid).rows
    count, occurred_ms, prompt_length, attempt_count = rows[0]
    assert count == 1, f"stored {count} times"
    assert occurred_ms == round(event.occurred_at.timestamp() * 1000), ("occurred_at changed", occurred_ms, event.occurred_at)
    assert prompt_length == (event.prompt.length if event.prompt else 0)
    assert attempt_count == len(event.attempts)
    stored = store.query(
        "SELECT attempt_index, tier_rank, input_tokens, output_tokens FROM attempts WHERE event_id = {id:UUID} "
        "ORDER BY attempt_index", eid).rows
    sent = [(a.index, a.tier_rank, a.input_tokens, a.output_tokens) for a in event.attempts]
    assert [tuple(r) for r in stored] == sent, "attempt rows differ from the event (lost, doubled or changed values)"
    return "stored"


@pytest.mark.timeout(1800 if EXAMPLES > 100 else 600)
# No shrinking: each shrink step is an insert, and on a loaded machine a shrink of a storage failure
# outlasts any sensible timeout; the failing event is printed as generated (note() above).
# No example database: it would be written into the repository's working tree.
@settings(max_examples=EXAMPLES, deadline=None, database=None,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(raw=decisions())
def test_every_schema_valid_decision_is_rejected_with_a_reason_or_stored_exactly_once(store, raw):
    assert VALIDATOR.is_valid(raw)
    fixed = repair(raw)
    assert VALIDATOR.is_valid(fixed), "the repair must keep the event valid against the JSON Schema"
    check_one(store, raw)
    check_one(store, fixed)


def test_the_generator_reaches_the_store():
    """Guard against a vacuous property: most repaired events must be accepted by the contract."""
    accepted = 0
    seen = 0

    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(raw=decisions())
    def count(raw):
        nonlocal accepted, seen
        seen += 1
        try:
            decode(RoutingDecision, json.dumps(dict(repair(raw), event_id=str(uuid.uuid4()))).encode())
            accepted += 1
        except InvalidEventError:
            pass

    count()
    assert accepted >= seen // 2, f"only {accepted} of {seen} repaired events were accepted"
