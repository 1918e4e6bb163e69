"""Migrations, the ClickHouse sink and the store-outage path, on the real embedded ClickHouse (chDB).

chDB opens one path per process, so these tests share the session path and
each uses a fresh database.
"""

from __future__ import annotations

import asyncio
import shutil

import pytest
from pydantic_core import to_json

from routerwatch.events import decode
from routerwatch.events.models import RoutingDecision
from routerwatch.ingest.processor import BatchProcessor, RawMessage
from routerwatch.ingest.sink import ClickHouseSink
from routerwatch.prices import default_prices_file, load_prices
from routerwatch.simulate import Profile, events
from routerwatch.storage import migrations
from routerwatch.storage.client import Store
from routerwatch.storage.errors import MigrationError, QueryError
from routerwatch.storage.migrations import default_sql_dir
from routerwatch.storage.rows import Located

pytestmark = pytest.mark.integration
MIGRATIONS = default_sql_dir() / "migrations"


@pytest.fixture
def store(session_chdb_path, names):
    with Store(f"chdb://{session_chdb_path}", names["database"]) as s:
        yield s
        s.command(f"DROP DATABASE IF EXISTS `{names['database']}`")


def decision_bytes(n: int, seed: int) -> list[bytes]:
    """``n`` valid RoutingDecision payloads, built by the SDK's own recorder."""
    return [to_json(event) for event in events(Profile(router_id="store-test"), n, seed)]


def test_migrations_apply_once_record_themselves_and_revert(store):
    ran = migrations.migrate_up(store, MIGRATIONS)
    assert [m.version for m in ran] == [m.version for m in migrations.load(MIGRATIONS)]
    assert migrations.migrate_up(store, MIGRATIONS) == []  # safe to re-run
    tables = {r[0] for r in store.query("SHOW TABLES").rows}
    assert {"decisions", "attempts", "feedback", "canary_results", "requests", "schema_migrations"} <= tables
    reverted = migrations.migrate_down(store, MIGRATIONS, 0)
    assert [m.version for m in reverted] == sorted((m.version for m in ran), reverse=True)
    assert {r[0] for r in store.query("SHOW TABLES").rows} == {"schema_migrations"}
    assert [m.version for m in migrations.migrate_up(store, MIGRATIONS)] == [m.version for m in ran]


def _sorting_keys(store) -> dict[str, str]:
    raw = ("decisions", "attempts", "feedback", "canary_results")
    rows = store.query("SELECT name, sorting_key FROM system.tables WHERE database = currentDatabase()").rows
    return {name: key for name, key in rows if name in raw}


def test_0012_rekeys_the_raw_tables_by_minute_keeping_rows_and_rollups_and_reverts(store):
    migrations.migrate_up(store, MIGRATIONS, 11)
    sink = ClickHouseSink(store, load_prices(default_prices_file()))
    from routerwatch.storage.rows import Located

    batch = [Located(decode(RoutingDecision, raw), 0, i) for i, raw in enumerate(decision_bytes(40, seed=12))]
    sink.store_batch("decision", batch[:20])
    assert set(_sorting_keys(store).values()) <= {"toStartOfHour(occurred_at), event_id", "toStartOfHour(occurred_at), event_id, attempt_index"}
    migrations.migrate_up(store, MIGRATIONS)
    assert _sorting_keys(store)["attempts"] == "toStartOfMinute(occurred_at), event_id, attempt_index"
    assert {k for n, k in _sorting_keys(store).items() if n != "attempts"} == {"toStartOfMinute(occurred_at), event_id"}
    # The rows moved, and the materialized views still fire on the exchanged tables.
    assert sink.store_batch("decision", batch).inserted["decisions"] == 20
    attempts = sum(len(e.event.attempts) for e in batch)
    assert store.query("SELECT count() FROM attempts").scalar() == attempts
    assert store.query("SELECT sum(attempts) FROM attempt_minute").scalar() == attempts
    migrations.migrate_down(store, MIGRATIONS, 11)
    assert _sorting_keys(store)["decisions"] == "toStartOfHour(occurred_at), event_id"
    assert store.query("SELECT count() FROM decisions").scalar() == 40


def test_an_edited_shipped_migration_is_refused(store, tmp_path):
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, copy)
    migrations.migrate_up(store, copy)
    first = sorted(copy.glob("0001_*.up.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited after shipping\n")
    with pytest.raises(MigrationError, match="edited after it was applied"):
        migrations.migrate_up(store, copy)


def test_a_failing_migration_names_the_file_and_statement(store, tmp_path):
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, copy)
    (copy / "0999_broken.up.sql").write_text("CREATE TABLE ok_table (x UInt8) ENGINE = Memory;\nCREATE TABLE nonsense (;\n")
    (copy / "0999_broken.down.sql").write_text("DROP TABLE IF EXISTS ok_table;\n")
    with pytest.raises(MigrationError, match=r"0999_broken, statement 2"):
        migrations.migrate_up(store, copy)


def test_sink_skips_event_ids_already_stored(store):
    migrations.migrate_up(store, MIGRATIONS)
    sink = ClickHouseSink(store, load_prices(default_prices_file()))
    from routerwatch.storage.rows import Located

    events = [Located(decode(RoutingDecision, raw), 0, i) for i, raw in enumerate(decision_bytes(50, seed=9))]
    first = sink.store_batch("decision", events[:30])
    assert first.inserted["decisions"] == 30
    second = sink.store_batch("decision", events[20:] + events[20:25])  # overlap plus in-batch duplicates
    assert second.inserted["decisions"] == 20
    assert second.duplicates["decisions"] == 10 + 5
    assert store.query("SELECT count() FROM decisions").scalar() == 50
    expected_attempts = sum(len(e.event.attempts) for e in events)
    assert store.query("SELECT count() FROM attempts").scalar() == expected_attempts

    # Edges of the lookup's time condition: a lone stored event (the batch's earliest time is its
    # own, to the millisecond) and one batched with an event a day later are still found.
    from datetime import timedelta
    from uuid import uuid4

    assert any(e.event.occurred_at.microsecond for e in events), "times with milliseconds test the bound's precision"
    for e in events[:5]:
        lone = sink.store_batch("decision", [e])
        assert (lone.inserted.get("decisions", 0), lone.duplicates["decisions"]) == (0, 1)
    later = events[0].event.model_copy(update={"event_id": uuid4(), "occurred_at": events[0].event.occurred_at + timedelta(days=1)})
    mixed = sink.store_batch("decision", [Located(later, 0, 99), events[3]])
    assert (mixed.inserted["decisions"], mixed.duplicates["decisions"]) == (1, 1)
    assert store.query("SELECT count() FROM decisions").scalar() == 51

    # A router recording an event again under its event_id at a new time: recognised within the
    # re-emission window (60 s by default) either side of the stored copy, stored again beyond it.
    def again(e, shift):
        return Located(e.event.model_copy(update={"occurred_at": e.event.occurred_at + shift}), 0, 0)

    within = sink.store_batch("decision", [again(events[6], timedelta(seconds=59)), again(events[7], -timedelta(seconds=45))])
    assert (within.inserted.get("decisions", 0), within.duplicates["decisions"]) == (0, 2)
    assert within.duplicates["attempts"] == 2  # found complete through the decisions table
    beyond = sink.store_batch("decision", [again(events[8], timedelta(seconds=61))])
    assert (beyond.inserted["decisions"], beyond.duplicates["decisions"]) == (1, 0)
    assert store.query("SELECT count() FROM decisions").scalar() == 52


def test_sink_completes_an_event_a_crash_left_half_stored(store):
    """Attempts stored, decision not (a crash between the two inserts): the redelivery adds only the decision."""
    migrations.migrate_up(store, MIGRATIONS)
    sink = ClickHouseSink(store, load_prices(default_prices_file()))
    from routerwatch.storage.rows import Located

    events = [Located(decode(RoutingDecision, raw), 0, i) for i, raw in enumerate(decision_bytes(10, seed=13))]
    store.insert_columns("attempts", sink.builders["attempts"](events[:4]))
    report = sink.store_batch("decision", events)
    half = sum(len(e.event.attempts) for e in events[:4])
    assert report.duplicates["attempts"] == 4 and report.inserted["decisions"] == 10
    assert report.inserted["attempts"] == sum(len(e.event.attempts) for e in events) - half
    assert store.query("SELECT count() FROM attempts").scalar() == sum(len(e.event.attempts) for e in events)


def _grades_for(decisions, passed_every: int = 2) -> list:
    """Served-answer grades (QualityFeedback events) of ``decisions``, through the contract's model."""
    from datetime import timedelta
    from uuid import uuid4

    from routerwatch.events.models import QualityFeedback

    return [
        QualityFeedback.model_validate({
            "event_id": str(uuid4()), "request_id": d.request_id,
            "occurred_at": d.occurred_at + timedelta(minutes=5), "router_id": d.router.id,
            "target": "served", "score": 1.0 if i % passed_every == 0 else 0.0, "passed": i % passed_every == 0,
            "source": "grader", "grader": "test"})
        for i, d in enumerate(decisions)
    ]


def test_grades_are_resolved_to_their_attempt_in_either_arrival_order(store):
    """resolved_grades (0011) is filled by the sink: a grade stored after its decision is resolved
    at once; one stored before its decision is resolved when the decision arrives. The report's
    graded_summary over it equals quality_by_tier (the query-time join), duplicates included."""
    migrations.migrate_up(store, MIGRATIONS)
    sink = ClickHouseSink(store, load_prices(default_prices_file()))
    from routerwatch.storage.rows import Located

    located = [Located(decode(RoutingDecision, raw), 0, i) for i, raw in enumerate(decision_bytes(60, seed=21))]
    served = [e.event for e in located if e.event.final.served]
    late, early = _grades_for(served[:12]), _grades_for(served[12:20])
    early_ids = {g.request_id for g in early}
    first_half = [e for e in located if e.event.request_id not in early_ids]
    second_half = [e for e in located if e.event.request_id in early_ids]

    sink.store_batch("decision", first_half)
    report = sink.store_batch("feedback", [Located(g, 0, i) for i, g in enumerate(late + early)])
    assert report.resolved_grades == 12  # the early grades' decisions are not stored yet
    report = sink.store_batch("decision", second_half)
    assert report.resolved_grades == 8  # resolved as their decisions arrive
    assert store.query("SELECT count() FROM resolved_grades").scalar() == 20
    # A redelivered grade batch is skipped as a duplicate; the same attempts stored again before a
    # merge (a redelivery racing the dedup lookup) do not double a grade either.
    assert sink.store_batch("feedback", [Located(g, 0, i) for i, g in enumerate(late)]).resolved_grades == 0
    store.command("INSERT INTO attempts SELECT * FROM attempts WHERE request_id IN {ids:Array(String)}",
                  {"ids": [d.request_id for d in served[:5]]})

    first = min(e.event.occurred_at for e in located).strftime("%Y-%m-%d %H:%M:%S")
    rng = f"since = '{first}', until = '2100-01-01 00:00:00'"
    summary = store.query(f"SELECT tier, graded, pass_rate FROM graded_summary({rng}, by = '') "
                          "WHERE section = 'quality' ORDER BY tier").rows
    quality = store.query(f"SELECT tier, graded, pass_rate FROM quality_by_tier({rng}, by = '') "
                          "WHERE target = 'served' ORDER BY tier").rows
    assert sum(r[1] for r in summary) == 20
    assert summary == quality


def test_resolved_grades_migration_resolves_the_grades_already_stored(store):
    """An existing store: grades stored before 0011 are resolved by the migration itself."""
    migrations.migrate_up(store, MIGRATIONS, target=10)
    sink = ClickHouseSink(store, load_prices(default_prices_file()))
    from routerwatch.storage.rows import Located

    located = [Located(decode(RoutingDecision, raw), 0, i) for i, raw in enumerate(decision_bytes(30, seed=22))]
    sink.store_batch("decision", located)
    grades = _grades_for([e.event for e in located if e.event.final.served][:9])
    from routerwatch.storage.rows import feedback_columns

    # Stored as the sink of 0010 stored grades (the sink of 0011 also resolves them).
    store.insert_columns("feedback", feedback_columns([Located(g, 0, i) for i, g in enumerate(grades)]))
    migrations.migrate_up(store, MIGRATIONS)
    assert store.query("SELECT count() FROM resolved_grades").scalar() == 9


def test_readonly_queries_cannot_write(store):
    migrations.migrate_up(store, MIGRATIONS)
    with pytest.raises(QueryError, match="(?i)readonly"):
        store.query("INSERT INTO decisions (event_id) VALUES (generateUUIDv4())", readonly=True)


def test_store_outage_pauses_the_batch_until_the_store_is_back_and_loses_nothing(store):
    """The schema vanishing under the ingest service stands in for an outage on the embedded engine:
    every insert fails until it is back, and the batch must neither be dropped nor stored twice."""
    migrations.migrate_up(store, MIGRATIONS)
    sent: list = []

    async def send_dead_letter(letter):
        sent.append(letter)

    processor = BatchProcessor("decision", ClickHouseSink(store, load_prices(default_prices_file())), send_dead_letter, retry_initial_s=0.05, retry_max_s=0.2)
    payloads = decision_bytes(40, seed=10)
    messages = [RawMessage("t", 0, i, None, raw) for i, raw in enumerate(payloads)]
    messages.append(RawMessage("t", 0, 40, None, b"{not json"))

    store.command("RENAME TABLE attempts TO attempts_offline")

    async def scenario():
        task = asyncio.create_task(processor.process(messages))
        while processor.last_error is None:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # several retries happen while the store is "down"
        assert not task.done(), "the batch must wait for the store, not give up"
        error = processor.last_error
        await asyncio.to_thread(store.command, "RENAME TABLE attempts_offline TO attempts")
        report = await asyncio.wait_for(task, timeout=30)
        return error, report

    error, report = asyncio.run(scenario())
    assert "attempts" in error
    expected_attempts = sum(len(decode(RoutingDecision, raw).attempts) for raw in payloads)
    assert report.inserted == {"attempts": expected_attempts, "decisions": 40}
    assert store.query("SELECT count() FROM decisions").scalar() == 40
    assert store.query("SELECT count(), uniqExact(event_id, attempt_index) FROM attempts").rows == [
        (expected_attempts, expected_attempts)
    ]
    assert len(sent) == 1 and sent[0].reason == "invalid_json"
    assert processor.last_error is None


def test_arrow_inserts_round_trip_every_column_type_the_sink_uses(store):
    import uuid
    from datetime import UTC, datetime

    store.command(
        "CREATE TABLE typed (id UUID, name LowCardinality(String), note String, at DateTime64(3, 'UTC'), "
        "flag Bool, maybe Nullable(Bool), score Nullable(Float64), small UInt8, count UInt32, part Int32, "
        "offset Int64, idx Nullable(UInt8), tags Array(String)) ENGINE = MergeTree ORDER BY id"
    )
    ids = [uuid.UUID(int=1), uuid.UUID(int=2)]
    at_ms = [1_795_328_486_077, 1_700_000_000_001]
    columns = {
        "id": [ids[0], str(ids[1])],  # UUID objects or their text, as the builders pass them
        "name": ["small", "large"],
        "note": ["", "é ünïcode"],
        "at": at_ms,
        "flag": [True, False],
        "maybe": [None, True],
        "score": [None, 0.25],
        "small": [0, 255],
        "count": [7, 4_000_000_000],
        "part": [-1, 3],
        "offset": [2**40, 0],
        "idx": [None, 3],
    }
    store.insert_columns("typed", columns)
    # A column Arrow is not given a type for here (Array) takes the clickhouse-connect path.
    store.insert_columns("typed", {"id": [uuid.UUID(int=3)], "tags": [["a", "b"]], "at": [at_ms[0]]})
    rows = store.query("SELECT id, name, note, at, flag, maybe, score, small, count, part, offset, idx, tags FROM typed ORDER BY id").rows
    assert [r[0] for r in rows] == [*ids, uuid.UUID(int=3)]
    first, second, third = rows

    def utc(ms: int) -> datetime:  # clickhouse-connect reads DateTime64(3, 'UTC') back as naive UTC
        return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)

    assert first[1:12] == ("small", "", utc(at_ms[0]), True, None, None, 0, 7, -1, 2**40, None)
    assert second[1:12] == ("large", "é ünïcode", utc(at_ms[1]), False, True, 0.25, 255, 4_000_000_000, 3, 0, 3)
    assert third[12] == ["a", "b"]


def test_query_column_reads_one_column_as_text_with_parameters(store):
    store.command("CREATE TABLE ids (id UUID, at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY id")
    store.command(
        "INSERT INTO ids VALUES ('00000000-0000-0000-0000-000000000001', '2026-01-01 00:00:00.000'), "
        "('00000000-0000-0000-0000-000000000002', '2026-01-02 00:00:00.000')"
    )
    from datetime import UTC, datetime

    found = store.query_column(
        "SELECT id FROM ids WHERE at >= {since:DateTime64(3, 'UTC')} AND id IN "
        "(SELECT toUUID(arrayJoin(splitByChar(',', {ids:String}))))",
        {"since": datetime(2026, 1, 1, 12, tzinfo=UTC), "ids": "00000000-0000-0000-0000-000000000002,00000000-0000-0000-0000-000000000009"},
    )
    assert found == ["00000000-0000-0000-0000-000000000002"]
    assert store.query_column("SELECT id FROM ids WHERE 0") == []


def test_an_insert_the_engine_refuses_raises_instead_of_reporting_rows_written(store):
    # chDB's streaming insert returned without error and reported the rows written when the engine
    # had refused them (a constraint, too many partitions): the sink then committed offsets of rows
    # it never stored.
    from routerwatch.storage.errors import is_retryable

    store.command(
        "CREATE TABLE checked (at DateTime64(3, 'UTC'), x UInt8, CONSTRAINT small CHECK x < 200) "
        "ENGINE = MergeTree PARTITION BY toYYYYMM(at) ORDER BY at"
    )
    with pytest.raises(QueryError, match="VIOLATED_CONSTRAINT") as refused:
        store.insert_columns("checked", {"at": [1_700_000_000_000], "x": [250]})
    assert not is_retryable(refused.value), "the rows' fault: isolate and dead-letter, not retry"
    assert store.query("SELECT count() FROM checked").scalar() == 0
    assert store.insert_columns("checked", {"at": [1_700_000_000_000], "x": [7]}) == 1
    assert store.query("SELECT count() FROM checked").scalar() == 1


def test_a_value_its_column_cannot_hold_is_refused_before_anything_is_sent(store):
    from routerwatch.storage.errors import RowsRejected

    store.command("CREATE TABLE narrow (at DateTime64(3, 'UTC'), rank UInt8) ENGINE = MergeTree ORDER BY at")
    with pytest.raises(RowsRejected, match=r"narrow\.rank"):
        store.insert_columns("narrow", {"at": [1_700_000_000_000], "rank": [300]})
    assert store.query("SELECT count() FROM narrow").scalar() == 0, "not wrapped to 44 by a cast"


def test_a_batch_spread_over_more_than_100_months_is_stored_whole(store):
    # 101 valid events, one per month: the engine's default refuses an insert touching more than
    # 100 partitions, which chDB's streaming insert swallowed (0 of them stored, offsets committed).
    from datetime import UTC, datetime

    migrations.migrate_up(store, MIGRATIONS)
    sink = ClickHouseSink(store, load_prices(default_prices_file()))
    events_ = [decode(RoutingDecision, raw) for raw in decision_bytes(101, seed=31)]
    spread = []
    for k, event in enumerate(events_):
        month = datetime(2010 + k // 12, k % 12 + 1, 15, tzinfo=UTC)
        spread.append(Located(event.model_copy(update={"occurred_at": month}), 0, k))
    report = sink.store_batch("decision", spread)
    assert report.inserted["decisions"] == 101
    assert store.query("SELECT count(), uniqExact(toYYYYMM(occurred_at)) FROM decisions").rows == [(101, 101)]
    attempts = sum(len(e.attempts) for e in events_)
    assert store.query("SELECT count() FROM attempts").scalar() == attempts


def test_a_re_recording_beyond_the_window_is_a_second_row_whichever_batch_it_lands_in(store):
    # Before: the same re-recording was 1 row when it shared the original's batch, 2 otherwise.
    from datetime import timedelta

    migrations.migrate_up(store, MIGRATIONS)
    sink = ClickHouseSink(store, load_prices(default_prices_file()), timedelta(seconds=60))
    a, b = [decode(RoutingDecision, raw) for raw in decision_bytes(2, seed=32)]
    a_again = a.model_copy(update={"occurred_at": a.occurred_at + timedelta(hours=2)})
    a_near = a.model_copy(update={"occurred_at": a.occurred_at + timedelta(seconds=30)})
    sink.store_batch("decision", [Located(a, 0, 0), Located(a_again, 0, 1), Located(a_near, 0, 2)])  # one batch
    sink.store_batch("decision", [Located(b, 0, 3)])
    b_again = b.model_copy(update={"occurred_at": b.occurred_at + timedelta(hours=2)})
    b_near = b.model_copy(update={"occurred_at": b.occurred_at + timedelta(seconds=30)})
    sink.store_batch("decision", [Located(b_again, 0, 4)])  # a later batch
    sink.store_batch("decision", [Located(b_near, 0, 5)])
    counts = dict(store.query("SELECT toString(event_id), count() FROM decisions GROUP BY event_id").rows)
    assert counts == {str(a.event_id): 2, str(b.event_id): 2}
    assert store.query("SELECT count() FROM attempts WHERE event_id = {e:UUID}", {"e": a.event_id}).scalar() == 2 * len(a.attempts)
