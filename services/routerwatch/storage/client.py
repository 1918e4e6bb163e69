"""One long-lived ClickHouse client per process, for chDB and servers alike.

A query on chDB costs about a millisecond of fixed overhead and opening the
engine far more, so the process keeps one :class:`Store` and serialises calls
through a lock (the embedded engine's session is not shared between threads).

Inserts into the embedded engine go in as one Arrow table per block, read by
the engine in place (``INSERT ... SELECT FROM Python(table)``): pyarrow turns
the Python column lists into Arrow in C++, where clickhouse-connect's Native
encoder (LowCardinality dictionaries in particular) would spend more Python
time than the engine spends storing the rows. Servers, and any block pyarrow
cannot type, take the clickhouse-connect path. Every insert is verified: the
engine's errors are raised and the rows it reports written are checked.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Sequence

from routerwatch.storage.dsn import StoreTarget, parse_dsn
from routerwatch.storage import sqlguard
from routerwatch.storage.errors import (
    InsertNotVerified,
    QueryError,
    QueryLimitExceeded,
    RowsRejected,
    StoreUnavailable,
)

# Every insert may touch as many monthly partitions as the contract's time range holds (one batch of
# stragglers from many months is valid); the engine's default of 100 would refuse such a batch.
INSERT_SETTINGS = {"max_partitions_per_insert_block": 0}
_INSERT_SETTINGS_SQL = ", ".join(f"{k} = {v}" for k, v in INSERT_SETTINGS.items())


@dataclass(frozen=True)
class Block:
    """Columns typed for one table's insert (:meth:`Store.prepare`); ``arrow`` is None on the
    clickhouse-connect path."""

    table: str
    names: list[str]
    columns: dict[str, Sequence[Any]]
    rows: int
    arrow: Any = None


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows of a read query."""

    columns: list[str]
    rows: list[tuple[Any, ...]]

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None


class Store:
    """A ClickHouse connection bound to the routerwatch database.

    Methods raise :class:`StoreUnavailable` when the store cannot be reached
    (retry later) and :class:`QueryError` when ClickHouse rejects the statement.
    ``start()`` opens the connection and creates the database; ``stop()`` is
    safe without ``start()`` and safe twice.
    """

    def __init__(self, dsn: str, database: str, query_limits: Any = None) -> None:
        self.target: StoreTarget = parse_dsn(dsn)
        self.database = database
        self.query_limits = query_limits if query_limits is not None else _default_query_limits()
        # One read query (readonly=True) at a time: the others wait here, not on the store's lock,
        # so ingest waits behind at most one of them.
        self._read_gate = threading.Lock()
        self._client: Any = None
        self._reader: Any = None
        self._raw: Any = None  # chDB's own connection to the same engine, for Arrow inserts
        self._arrow_types: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def start(self) -> Store:
        if self._client is not None:
            return self
        import clickhouse_connect
        from clickhouse_connect.driver.exceptions import ClickHouseError

        try:
            if self.target.kind == "chdb":
                client = clickhouse_connect.get_client(interface="chdb", path=self.target.path)
            else:
                client = clickhouse_connect.get_client(dsn=self.target.url, connect_timeout=5, send_receive_timeout=60)
            client.command(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
            client.database = self.database
        except ClickHouseError as exc:
            raise StoreUnavailable(f"cannot open ClickHouse at {self.target.describe()}: {exc}") from exc
        self._client = client
        if self.target.kind == "chdb":
            # Open the Arrow insert path now (chdb and pyarrow imports, second engine handle),
            # not on the first batch.
            with self._lock:
                try:
                    import pyarrow  # noqa: F401

                    self._raw_connection()
                except Exception:  # noqa: BLE001 - the inserts fall back to clickhouse-connect
                    pass
        return self

    def stop(self) -> None:
        clients = (self._client, self._reader, self._raw)
        self._client = self._reader = self._raw = None
        self._arrow_types.clear()
        for client in clients:
            if client is not None:
                try:
                    client.close()
                except Exception:  # noqa: BLE001 - closing a dead connection is not an error
                    pass

    def __enter__(self) -> Store:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def set_query_limits(self, limits: Any) -> None:
        """Use ``limits`` (:class:`routerwatch.config.QuerySettings`) for the read queries from now on."""
        with self._lock:
            self.query_limits = limits
            reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def _readonly_settings(self) -> dict[str, Any]:
        """The read-only query settings: the limits, then ``readonly=1`` (which freezes them: the
        engine refuses SET and SETTINGS from then on)."""
        limits = self.query_limits
        return {
            "max_execution_time": limits.max_execution_time_s,
            "timeout_overflow_mode": "throw",
            "max_memory_usage": limits.max_memory_bytes,
            "max_result_rows": limits.max_result_rows,
            "max_result_bytes": limits.max_result_bytes,
            "result_overflow_mode": "throw",
            "readonly": 1,
        }

    def _readonly_client(self) -> Any:
        # On chDB a per-query readonly setting is applied to the session and stays
        # there when the query fails, which would turn the ingest writer read-only.
        # A second handle opened read-only keeps the two apart. Its settings are applied
        # in order when it opens, readonly last, so no query on it can change them.
        if self._reader is None:
            import clickhouse_connect

            self._reader = clickhouse_connect.get_client(
                interface="chdb", path=self.target.path, database=self.database, settings=self._readonly_settings()
            )
        return self._reader

    def _call(self, method: str, *args: Any, readonly: bool = False, **kwargs: Any) -> Any:
        from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

        if self._client is None:
            self.start()
        with self._lock:
            try:
                if readonly and self.target.kind == "chdb":
                    return getattr(self._readonly_client(), method)(*args, **kwargs)
                if readonly:
                    kwargs["settings"] = self._readonly_settings()
                return getattr(self._client, method)(*args, **kwargs)
            except OperationalError as exc:
                raise StoreUnavailable(f"ClickHouse at {self.target.describe()} unavailable: {exc}") from exc
            except DatabaseError as exc:
                raise QueryError(str(exc).strip()) from exc

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        """Run a statement that returns no rows (DDL, INSERT ... SELECT)."""
        return self._call("command", sql, parameters=parameters)

    def query(
        self, sql: str, parameters: dict[str, Any] | None = None, *, readonly: bool = False
    ) -> QueryResult:
        """Run a read query.

        ``readonly=True`` is the path for SQL from outside (``/query``, ``routerwatch sql``, ``report``):
        the statement must pass :func:`routerwatch.storage.sqlguard.check_read_only` (else
        :class:`~routerwatch.storage.errors.UnsafeQuery`), and runs with ClickHouse's ``readonly=1``
        and the limits of :attr:`query_limits` (exceeding one raises :class:`QueryLimitExceeded`).
        One such query runs at a time; another waits for it at most the time limit, then gets
        :class:`StoreUnavailable`.
        """
        if readonly:
            return self._query_read_only(sql, parameters)
        result = self._call("query", sql, parameters=parameters)
        return QueryResult(columns=list(result.column_names), rows=[tuple(r) for r in result.result_rows])

    def _query_read_only(self, sql: str, parameters: dict[str, Any] | None) -> QueryResult:
        limits = self.query_limits
        if not self._read_gate.acquire(timeout=limits.max_execution_time_s + 1.0):
            raise StoreUnavailable(
                f"another read query has been running for {limits.max_execution_time_s:g} s; try again"
            )
        try:
            statement = sqlguard.check_read_only(sql, parameters, self._parse)
            bound = sqlguard.bound_parameters(statement, parameters)
            try:
                result = self._call("query", statement, parameters=bound, readonly=True)
            except QueryError as exc:
                raise _limit_error(exc, limits) from exc
        finally:
            self._read_gate.release()
        return QueryResult(columns=list(result.column_names), rows=[tuple(r) for r in result.result_rows])

    def _parse(self, statement: str, parameters: Any = None) -> str:
        """Run one of sqlguard's parse statements on the read-only handle (no FORMAT is appended:
        the engine's TabSeparated text comes back)."""
        raw = self._call("raw_query", statement, parameters=parameters, fmt=None, readonly=True)
        return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)

    def query_column(self, sql: str, parameters: dict[str, Any] | None = None) -> list[str]:
        """The first column of a read query, as text (the ingest dedup lookup).

        On chDB the query goes through chDB's own connection with text parameters: for the
        tens of thousands of ids one lookup carries, clickhouse-connect's binding and result
        decoding cost several times what the engine spends on the query. Datetime parameters
        are bound as UTC text on both backends: declare them ``DateTime64(3, 'UTC')``.
        """
        if self.target.kind != "chdb":
            # Datetimes as UTC text too: clickhouse-connect would bind them in the server's zone.
            bound = {k: _param_text(v) if isinstance(v, datetime) else v for k, v in (parameters or {}).items()}
            return [str(row[0]) for row in self.query(sql, bound).rows]
        params = {name: _param_text(value) for name, value in (parameters or {}).items()}
        with self._lock:
            try:
                raw = self._raw_connection()
                text = raw.query(sql, "TabSeparated", params=params).data()
            except Exception as exc:  # chDB raises RuntimeError subclasses with the server's message
                raise QueryError(str(exc).strip()) from exc
        return text.split("\n")[:-1] if text else []

    def _raw_connection(self) -> Any:
        # Callers hold self._lock. One more handle on the engine clickhouse-connect opened.
        if self._client is None:
            self.start()
        if self._raw is None:
            import chdb

            self._raw = chdb.connect(os.path.realpath(self.target.path))
            self._raw.query(f"USE `{self.database}`", "TabSeparated")
        return self._raw

    def insert_columns(self, table: str, columns: dict[str, Sequence[Any]]) -> int:
        """Insert one block, column-oriented (the fast path for both backends), and verify it.

        Values are Python objects as the clickhouse-connect client takes them (UUIDs as
        ``uuid.UUID`` or text, DateTime64(3) as integer milliseconds, None for NULL).
        Returns the number of rows inserted. Raises what :meth:`prepare` and
        :meth:`insert_prepared` raise.
        """
        return self.insert_prepared(self.prepare(table, columns))

    def prepare(self, table: str, columns: dict[str, Sequence[Any]]) -> Block:
        """Type ``columns`` for ``table`` without sending them.

        Raises :class:`RowsRejected` when a value cannot be typed for its column (a rank of 300
        in a UInt8 column): building every block of a batch first means such a batch fails before
        any of its tables has rows.
        """
        names = list(columns)
        rows = len(columns[names[0]]) if names else 0
        arrow = None
        if rows and self.target.kind == "chdb":
            arrow = self._arrow_block(table, names, columns)
        return Block(table, names, columns, rows, arrow)

    def insert_prepared(self, block: Block) -> int:
        """Insert a block from :meth:`prepare` and verify it; returns the rows inserted.

        Raises :class:`QueryError` when the engine refused the insert (its ``retryable`` says
        whether the store's state or the rows are at fault) and :class:`InsertNotVerified` when
        the engine returned without error but reported fewer rows written than sent: an insert
        is done only when the engine says its rows are written.
        """
        if not block.rows:
            return 0
        if block.arrow is not None:
            _verify(block.table, block.rows, self._insert_arrow(block.table, block.names, block.arrow))
            return block.rows
        summary = self._call(
            "insert", block.table, [block.columns[n] for n in block.names], column_names=block.names,
            column_oriented=True, settings=INSERT_SETTINGS,
        )
        written = getattr(summary, "written_rows", None)
        if isinstance(written, int) and written > 0:
            _verify(block.table, block.rows, written)
        return block.rows

    def _arrow_block(self, table: str, names: list[str], columns: dict[str, Sequence[Any]]) -> Any:
        """The columns as one Arrow table typed exactly as the ClickHouse columns are; None when a
        column has no Arrow type here (that block takes the clickhouse-connect path).

        Raises :class:`RowsRejected` when a value does not fit its column (a rank of 300 in a UInt8):
        Arrow refuses it, where a cast on the engine's side would silently wrap it.
        """
        try:
            import pyarrow as pa
        except ImportError:  # pragma: no cover - pyarrow ships with chdb
            return None
        if self._client is None:
            self.start()
        types = self._arrow_types.get(table)
        if types is None:
            types = self._arrow_types[table] = self._table_arrow_types(table)
        arrays = []
        for name in names:
            kind = types.get(name)
            if kind is None:
                return None  # a column pyarrow cannot type (or unknown): let clickhouse-connect handle it
            values = columns[name]
            if kind is _UUID:
                values = [v if v is None or type(v) is str else str(v) for v in values]
                kind = pa.string()
            try:
                arrays.append(pa.array(values, type=kind))
            except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
                raise RowsRejected(f"{table}.{name}: a value does not fit the column ({exc})") from exc
        return pa.Table.from_arrays(arrays, names=names)

    def _insert_arrow(self, table: str, names: list[str], block: Any) -> int:
        """Insert an Arrow table through chDB's own query path; returns the rows the engine wrote.

        ``INSERT ... SELECT FROM Python(block)`` reads the Arrow table in place and raises every
        error the engine raises. (chDB's streaming insert, ``send_insert``, returns without error and
        reports the rows as written when the engine rejected them: a constraint, more partitions
        than allowed, a full disk.)
        """
        quoted = ", ".join(f"`{n}`" for n in names)
        # chDB's Python() table function finds the table by this local variable's name.
        _routerwatch_block = block  # read by the engine through the frame
        sql = (
            f"INSERT INTO `{self.database}`.`{table}` ({quoted}) "
            f"SELECT {quoted} FROM Python(_routerwatch_block) SETTINGS {_INSERT_SETTINGS_SQL}"
        )
        with self._lock:
            try:
                result = self._raw_connection().query(sql, "TabSeparated")
            except Exception as exc:  # chDB raises RuntimeError subclasses with the server's message
                self._arrow_types.pop(table, None)  # the table may have changed (migration): look it up again
                raise QueryError(str(exc).strip()) from exc
        return int(result.rows_written())

    def _table_arrow_types(self, table: str) -> dict[str, Any]:
        import pyarrow as pa

        result = self.query(
            "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String}",
            {"db": self.database, "t": table},
        )
        types: dict[str, Any] = {}
        for name, ch_type in result.rows:
            kind = _arrow_type(pa, ch_type)
            if kind is not None:
                types[name] = kind
        return types


# ClickHouse's codes for a read query stopped by one of its limits, and the setting that raises it.
_LIMIT_CODES = {
    159: ("ran longer than the time limit of {max_execution_time_s:g} s", "ROUTERWATCH_QUERY__MAX_EXECUTION_TIME_S"),
    241: ("needed more memory than {max_memory_bytes} bytes", "ROUTERWATCH_QUERY__MAX_MEMORY_BYTES"),
    396: (
        "has a result larger than {max_result_rows} rows or {max_result_bytes} bytes (add a LIMIT or aggregate)",
        "ROUTERWATCH_QUERY__MAX_RESULT_ROWS / __MAX_RESULT_BYTES",
    ),
}


def _limit_error(exc: QueryError, limits: Any) -> QueryError:
    """``exc`` as :class:`QueryLimitExceeded` naming the limit and its setting, when a limit stopped the query."""
    found = _LIMIT_CODES.get(exc.code or 0)
    if found is None:
        return exc
    what, setting = found
    text = what.format(**{k: getattr(limits, k) for k in ("max_execution_time_s", "max_memory_bytes", "max_result_rows", "max_result_bytes")})
    return QueryLimitExceeded(f"query stopped: it {text}; the limit is {setting}. {exc}")


def _default_query_limits() -> Any:
    from routerwatch.config import QuerySettings

    return QuerySettings()


def _verify(table: str, sent: int, written: int) -> None:
    # Materialized views add their own rows to the count: fewer than sent is the only sure sign.
    if written < sent:
        raise InsertNotVerified(f"insert into {table}: {sent} rows sent, the engine reports {written} written")


def _param_text(value: Any) -> str:
    """A query parameter as the text chDB binds (datetimes in UTC, to the millisecond)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return str(value)


_UUID = object()  # marker: UUID columns travel as text, which ClickHouse parses


def _arrow_type(pa: Any, ch_type: str) -> Any:
    """The Arrow type a ClickHouse column is sent as, or None when it has no simple mapping."""
    inner = ch_type
    for wrapper in ("LowCardinality(", "Nullable("):
        if inner.startswith(wrapper):
            inner = inner[len(wrapper) : -1]
    if inner in ("String",):
        return pa.string()
    if inner == "UUID":
        return _UUID
    if inner.startswith("DateTime64(3"):
        return pa.timestamp("ms", tz="UTC")
    return {
        "Bool": pa.bool_(),
        "Float64": pa.float64(),
        "Float32": pa.float32(),
        "UInt8": pa.uint8(),
        "UInt16": pa.uint16(),
        "UInt32": pa.uint32(),
        "UInt64": pa.uint64(),
        "Int8": pa.int8(),
        "Int16": pa.int16(),
        "Int32": pa.int32(),
        "Int64": pa.int64(),
    }.get(inner)
