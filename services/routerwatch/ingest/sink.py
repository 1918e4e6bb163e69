"""Store validated events in ClickHouse exactly once per event_id.

Before each insert the sink asks ClickHouse which of the batch's event_ids
are already stored and inserts only the others, table by table. So a Kafka
redelivery after a crash, a replay from offset 0 or a router re-sending an
event never adds a second row, and the materialized rollups fed by these
tables never double-count. The lookup reads only the rows near the batch's
own event times (:mod:`routerwatch.ingest.dedup`): a copy with the same
``occurred_at`` is found at any age, one recorded again at a new time within
the re-emission window. The tables are ReplacingMergeTree as well, as a backstop.
"""

from __future__ import annotations

import time
from datetime import timedelta
from functools import partial
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from routerwatch import metrics
from routerwatch.ingest.dedup import lookup_ranges
from routerwatch.ingest.observe import LabelCap
from routerwatch.prices import PriceTable
from routerwatch.storage.client import Store
from routerwatch.storage.rows import (
    Located,
    epoch_ms,
    attempt_columns,
    canary_columns,
    decision_columns,
    feedback_columns,
)

Columns = Callable[[Sequence[Located]], dict[str, list[Any]]]

# Per event kind, the tables it fills, in insert order.
TABLES: dict[str, tuple[str, ...]] = {
    "decision": ("attempts", "decisions"),
    "feedback": ("feedback",),
    "canary": ("canary_results",),
}


@dataclass
class StoreReport:
    """What one :meth:`ClickHouseSink.store` call did, per table."""

    inserted: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    # The RoutingDecisions the "decisions" table pass inserted (not already stored), for the metrics.
    fresh_decisions: list = field(default_factory=list)
    # Grades resolved to their attempt by this call (resolved_grades rows inserted).
    resolved_grades: int = 0


class ClickHouseSink:
    """Writes batches of one event kind. Raises :class:`StoreUnavailable` / :class:`QueryError` unchanged."""

    def __init__(self, store: Store, prices: PriceTable, reemission_window: timedelta = timedelta(minutes=1)) -> None:
        self.store = store
        self.prices = prices
        self.reemission_window = reemission_window
        self._unpriced_column = False
        self.builders: dict[str, Columns] = {
            "attempts": attempt_columns,
            # Decisions are enriched on the way in: counterfactual cost from the price table.
            "decisions": partial(decision_columns, prices=prices),
            "feedback": feedback_columns,
            "canary_results": canary_columns,
        }

    def store_batch(self, kind: str, items: Sequence[Located]) -> StoreReport:
        """Insert ``items`` (validated events of ``kind``) that are not stored yet.

        Every table's block is built and typed before the first insert, so a value a column cannot
        hold fails the call (:class:`~routerwatch.storage.errors.RowsRejected`) before any table
        has rows of this batch. Storage errors are raised unchanged: the caller retries the
        retryable ones (nothing of a failed insert is counted stored; a retry skips the tables
        that were stored) and isolates the rows of the others.
        """
        report = StoreReport()
        window_ms = _ms(self.reemission_window)
        batch = _distinct(items, window_ms)
        in_batch_dupes = len(items) - len(batch)
        if not batch:
            return report
        ids = [str(item[0].event_id) for item in batch]
        times = [item[0].occurred_at for item in batch]
        stamps = [epoch_ms(t) for t in times]
        # The ids as one comma-separated text parameter, built once for every table's lookup.
        joined = ",".join(ids) if self.store.target.kind == "chdb" else ""
        # An event found in the table its kind writes last is in all of them: only that lookup
        # spans the re-emission window. The earlier tables are asked only for exact copies, which
        # is what a crash between two inserts leaves (its redelivery repeats occurred_at). This
        # halves the rows a decision batch's lookups read: attempts outnumber decisions.
        last = TABLES[kind][-1]
        started = time.perf_counter()
        complete = self._stored_times(last, ids, joined, lookup_ranges(times, self.reemission_window))
        lookup_s = {last: time.perf_counter() - started}
        exact = lookup_ranges(times, timedelta(0)) if len(TABLES[kind]) > 1 else []
        # (event, id, time) of the events not stored within the window: the same for every table.
        unstored = list(zip(batch, ids, stamps))
        if complete:
            unstored = [e for e in unstored if not _has_copy(complete.get(e[1]), e[2], window_ms)]
        plan: list[tuple[str, list[Located]]] = []
        for table in TABLES[kind]:
            candidates = unstored
            if table != last and candidates:
                started = time.perf_counter()
                copies = self._stored_times(table, ids, joined, exact)
                lookup_s[table] = time.perf_counter() - started
                if copies:
                    candidates = [e for e in candidates if not _has_copy(copies.get(e[1]), e[2], 1)]
            plan.append((table, [e[0] for e in candidates]))
        # Every block built and typed first: a row that cannot be stored fails here, not after the
        # first table of a decision + attempts pair is written.
        built = [(table, fresh, self.builders[table](fresh) if fresh else None) for table, fresh in plan]
        unpriced: Sequence[str] = ()
        for table, _, cols in built:
            if table == "decisions" and cols is not None and "unpriced_models" in cols:
                unpriced = cols["unpriced_models"]
                if not self._has_unpriced_column():
                    del cols["unpriced_models"]  # a store not migrated to 0014 yet: the metric still counts
        blocks = [(table, fresh, self.store.prepare(table, cols) if cols is not None else None) for table, fresh, cols in built]
        for table, fresh, block in blocks:
            started = time.perf_counter()
            if block is not None:
                rows = self.store.insert_prepared(block)
                if table == "decisions":
                    report.fresh_decisions = [item[0] for item in fresh]
                    count_unpriced(unpriced)
                elif table == "feedback":
                    report.resolved_grades = self._resolve([str(item[0].event_id) for item in fresh])
                report.inserted[table] = rows
                metrics.INGEST_STORED.labels(table).inc(rows)
            report.duplicates[table] = len(batch) - len(fresh) + in_batch_dupes
            metrics.INGEST_DUPLICATES.labels(table).inc(report.duplicates[table])
            metrics.INGEST_STORE_SECONDS.labels(table).observe(time.perf_counter() - started + lookup_s.get(table, 0.0))
        if report.fresh_decisions:
            report.resolved_grades = self._resolve_early_grades(report.fresh_decisions)
        metrics.INGEST_LAST_STORED.set_to_current_time()
        return report

    def _has_unpriced_column(self) -> bool:
        """Whether ``decisions`` has 0014's ``unpriced_models`` column. A yes is kept; a no is asked
        again on the next batch (a store migrated while this sink runs gains the column)."""
        if not self._unpriced_column:
            result = self.store.query(
                "SELECT count() FROM system.columns WHERE database = {db:String} AND table = 'decisions' "
                "AND name = 'unpriced_models'",
                {"db": self.store.database},
            )
            self._unpriced_column = bool(result.rows and result.rows[0][0])
        return self._unpriced_column

    # Grades are resolved to their attempt as they are stored (resolved_grades, migration 0011), in
    # both arrival orders: each side inserts first and then looks for the other, so of a grade and
    # its decision stored at the same time, at least one side sees both.
    def _resolve(self, grade_ids: list[str]) -> int:
        """Insert the resolved_grades rows of these grades whose attempt is stored; returns their number.

        A grade resolves to the decision of its own router (migration 0013). One without a router_id
        whose request id several routers recorded is ambiguous and resolves to none; a row it got
        while only one of those decisions was stored is removed here. Both sides (grades, decisions)
        call this after storing, so whichever stores last removes it, in any arrival order.
        """
        if not grade_ids:
            return 0
        before = self._resolved_count()
        # The ids are UUIDs from validated events: safe to pass as the views' literal argument.
        ids = ",".join(grade_ids)
        self.store.command(f"INSERT INTO resolved_grades SELECT * FROM resolve_grades(ids = '{ids}')")
        ambiguous = self.store.query_column(f"SELECT toString(grade_event_id) FROM ambiguous_grades(ids = '{ids}')")
        if ambiguous:
            # Rare (a request id reused across routers, graded without router_id): a lightweight delete.
            listed = ",".join(f"'{g}'" for g in ambiguous)
            self.store.command(f"DELETE FROM resolved_grades WHERE grade_event_id IN ({listed})")
        return max(0, self._resolved_count() - before)

    def _resolve_early_grades(self, decisions: Sequence[Any]) -> int:
        """Resolve the grades that were stored before these (just stored) decisions."""
        # Clock-skew tolerance: a grade may be stamped before its request. The grader's clock is not
        # the router's, and a grade can be given while the request's decision event is still on its
        # way (a user rating a streamed answer, a router that stamps the decision before it sends
        # it, a cascade that escalates for minutes). Grades stamped up to this long before the
        # batch's first request are looked at; one stamped earlier still and stored before its
        # decision is not resolved (stored after its decision, a grade is resolved whatever its
        # time: the resolve_grades view compares no times). 10 minutes covers the slowest request
        # and a badly synchronised clock many times over, and adds only 10 minutes of feedback
        # (a few % of the traffic) to the key range read below.
        clock_skew = timedelta(minutes=10)
        since = min(d.occurred_at for d in decisions) - clock_skew
        # Only feedback since then can be about these requests (the feedback table's sorting key
        # starts with that time). Counting it first is a key-range lookup; the request-id match
        # below costs ~40 ms per 10k-decision batch (the ids' set) and is skipped when there is no
        # such feedback at all.
        recent = self.store.query_column(
            "SELECT count() FROM feedback WHERE occurred_at >= {since:DateTime64(3, 'UTC')}", {"since": since})
        if not recent or recent[0] == "0":
            return 0
        early = self.store.query_column(
            "SELECT toString(event_id) FROM feedback WHERE occurred_at >= {since:DateTime64(3, 'UTC')} "
            "AND request_id IN (SELECT arrayJoin(splitByChar(',', {ids:String})))",
            {"since": since, "ids": ",".join(d.request_id for d in decisions)},
        )
        return self._resolve(list(early)) if early else 0

    def _resolved_count(self) -> int:
        return int(self.store.query_column("SELECT count() FROM resolved_grades")[0])

    def store_dead_letters(self, letters: Sequence[Any]) -> None:
        """Record dead letters' origin and reason (not their bytes: those stay on the DLQ topic).

        Keyed by (topic, partition, offset), so a redelivered bad message is one row after merge;
        the ``dead_letter_counts`` view reads it with FINAL.
        """
        self.store.insert_columns(
            "dead_letters",
            {
                "topic": [d.message.topic for d in letters],
                "partition": [d.message.partition for d in letters],
                "offset": [d.message.offset for d in letters],
                "reason": [d.reason for d in letters],
                "detail": [d.detail[:2000] for d in letters],
                "size_bytes": [len(d.message.value or b"") for d in letters],
            },
        )

    def _stored_times(self, table: str, ids: list[str], joined: str, ranges: list[tuple[Any, Any]]) -> dict[str, list[int]]:
        """The stored event times (epoch ms) of the ``ids`` already in ``table``, looked up within ``ranges`` only."""
        # One BETWEEN per range: the engine turns each into a range of the sorting key's minutes
        # and skips the parts and granules outside all of them.
        within = " OR ".join(
            f"occurred_at BETWEEN {{a{k}:DateTime64(3, 'UTC')}} AND {{b{k}:DateTime64(3, 'UTC')}}" for k in range(len(ranges))
        )
        parameters: dict[str, Any] = {}
        for k, (start, end) in enumerate(ranges):
            parameters[f"a{k}"], parameters[f"b{k}"] = start, end
        if joined:
            # chDB: the ids travel as one text parameter, split by the engine (no per-id binding);
            # query_column passes the times as UTC text.
            ids_sql = "(SELECT toUUID(arrayJoin(splitByChar(',', {ids:String}))))"
            parameters["ids"] = joined
        else:
            ids_sql = "{ids:Array(UUID)}"
            parameters["ids"] = ids
        sql = (
            f"SELECT DISTINCT concat(toString(event_id), ' ', toString(toUnixTimestamp64Milli(occurred_at))) "
            f"FROM {table} WHERE ({within}) AND event_id IN {ids_sql}"
        )
        found: dict[str, list[int]] = {}
        for line in self.store.query_column(sql, parameters):
            event_id, _, stamp = line.partition(" ")
            found.setdefault(event_id, []).append(int(stamp))
        return found


# provider/model pairs the unpriced metric may label, per process (names come from routers).
UNPRICED_LABELS = LabelCap(100)


def count_unpriced(column: Sequence[str]) -> None:
    """Count the attempts of a stored decisions block's ``unpriced_models`` column in
    ``routerwatch_unpriced_attempts_total`` (called once per inserted block: a redelivered
    decision is never stored, so never counted, twice)."""
    counts: dict[str, int] = {}
    for text in column:
        if text:
            for name in text.split(","):
                counts[name] = counts.get(name, 0) + 1
    for name, n in counts.items():
        label = UNPRICED_LABELS(name)
        # provider/model: providers carry no '/' in practice; a model name may (openai/gpt-4o).
        provider, _, model = label.partition("/") if label != UNPRICED_LABELS.overflow else (label, "", label)
        metrics.UNPRICED_ATTEMPTS.labels(provider, model).inc(n)


def _ms(span: timedelta) -> int:
    return int(span.total_seconds() * 1000)


def _has_copy(stored: list[int] | None, at: int, window_ms: int) -> bool:
    """True when one of the ``stored`` times of an event id is within ``window_ms`` of ``at``."""
    return stored is not None and any(abs(s - at) <= window_ms for s in stored)


def _distinct(items: Sequence[Located], window_ms: int) -> list[Located]:
    """The batch without its repeats: an event id again within the re-emission window of a kept copy.

    The same rule as against the store, so whether a re-recording is stored a second time does
    not depend on whether it arrives in the original's batch or in a later one.
    """
    kept: dict[Any, list[int]] = {}
    out: list[Located] = []
    for item in items:
        event = item[0]
        times = kept.get(event.event_id)
        at = epoch_ms(event.occurred_at)
        if times is None:
            kept[event.event_id] = [at]
        elif _has_copy(times, at, window_ms):
            continue
        else:
            times.append(at)
        out.append(item)
    return out
