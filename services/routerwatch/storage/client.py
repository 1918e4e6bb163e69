"""One long-lived ClickHouse client per process, for chDB and servers alike.

A query on chDB costs about a millisecond of fixed overhead and opening the
engine far more, so the process keeps one :class:`Store` and serialises calls
through a lock (the embedded engine's session is not shared between threads).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Sequence

from routerwatch.storage.dsn import StoreTarget, parse_dsn
from routerwatch.storage.errors import QueryError, StoreUnavailable


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

    def __init__(self, dsn: str, database: str) -> None:
        self.target: StoreTarget = parse_dsn(dsn)
        self.database = database
        self._client: Any = None
        self._reader: Any = None
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
        return self

    def stop(self) -> None:
        clients = (self._client, self._reader)
        self._client = self._reader = None
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

    def _readonly_client(self) -> Any:
        # On chDB a per-query readonly setting is applied to the session and stays
        # there when the query fails, which would turn the ingest writer read-only.
        # A second handle opened read-only keeps the two apart.
        if self._reader is None:
            import clickhouse_connect

            self._reader = clickhouse_connect.get_client(
                interface="chdb", path=self.target.path, database=self.database, settings={"readonly": 1}
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
                    kwargs["settings"] = {"readonly": 1}
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
        """Run a read query. ``readonly=True`` makes ClickHouse itself refuse writes and DDL."""
        result = self._call("query", sql, parameters=parameters, readonly=readonly)
        return QueryResult(columns=list(result.column_names), rows=[tuple(r) for r in result.result_rows])

    def insert_columns(self, table: str, columns: dict[str, Sequence[Any]]) -> None:
        """Insert one block, column-oriented (the fast path for both backends)."""
        if not columns:
            return
        names = list(columns)
        self._call("insert", table, [columns[n] for n in names], column_names=names, column_oriented=True)


def open_store(settings: Any) -> Store:
    """The process's store, from :class:`routerwatch.config.Settings`."""
    return Store(settings.store_dsn(), settings.database).start()
