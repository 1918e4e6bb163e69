"""Read-only SQL for the CLI (``routerwatch sql``, ``routerwatch report``).

With a ClickHouse server the CLI queries it directly. With the embedded chDB
store only one process may open the path, and while ``routerwatch serve`` runs
that process is the server: the CLI then sends the query to serve's ``/query``
endpoint, which runs it with ClickHouse's own ``readonly=1``. When no serve
answers, the CLI opens the store itself, still read-only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from routerwatch.errors import ConfigError
from routerwatch.ingest.webguard import client_headers
from routerwatch.storage.client import QueryResult, Store
from routerwatch.storage.errors import QueryError, StoreUnavailable


class Reader:
    """Runs read-only queries against the configured store, wherever it is open."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self._store: Store | None = None
        self.via = "direct"

    def _serve_url(self) -> str:
        host = self.settings.http.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{host}:{self.settings.http.port}/query"

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult:
        """Run ``sql`` read-only, binding ``{name:Type}`` placeholders from ``parameters``.

        Raises :class:`QueryError` for bad SQL or a write attempt.
        """
        if self._store is None:
            store = Store(self.settings.store_dsn(), self.settings.database, self.settings.query)
            if store.target.kind == "chdb":
                answered = self._query_serve(sql, parameters, store)
                if answered is not None:
                    self.via = "serve"
                    return answered
            self._store = store.start()
        return self._store.query(sql, parameters, readonly=True)

    def _query_serve(self, sql: str, parameters: dict[str, Any] | None, store: Store) -> QueryResult | None:
        request = urllib.request.Request(
            self._serve_url(),
            data=json.dumps({"sql": sql, "parameters": parameters}).encode(),
            headers=client_headers(self.settings.http.token),
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read() or b"{}"
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"error": raw[:500].decode(errors="replace")}
            if exc.code in (401, 403):
                raise ConfigError(
                    f"routerwatch serve refused the query ({exc.code}: {body.get('error')}); "
                    "set ROUTERWATCH_HTTP__TOKEN to the token serve was started with"
                ) from exc
            if exc.code == 503:
                raise StoreUnavailable(body.get("error", "serve could not reach its store")) from exc
            raise QueryError(body.get("error", f"HTTP {exc.code}")) from exc
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None  # no serve on this port: open the store directly
        if body.get("store") != store.target.describe() or body.get("database") != store.database:
            raise QueryError(
                f"the routerwatch serve on {self._serve_url()} uses {body.get('store')} database "
                f"{body.get('database')}, not {store.target.describe()} database {store.database}; "
                "check ROUTERWATCH_HTTP__PORT and ROUTERWATCH_CLICKHOUSE_URL"
            )
        return QueryResult(columns=body["columns"], rows=[tuple(r) for r in body["rows"]])

    def close(self) -> None:
        if self._store is not None:
            self._store.stop()
            self._store = None
