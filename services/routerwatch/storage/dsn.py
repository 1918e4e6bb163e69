"""Parse ``ROUTERWATCH_CLICKHOUSE_URL`` into what clickhouse-connect needs.

* ``chdb:///abs/path`` or ``chdb://relative/path`` (relative to the working
  directory): the embedded ClickHouse engine in this process. Only one process
  may open a path at a time; `routerwatch sql` therefore asks a running
  ``serve`` to run read-only queries for it (see :mod:`routerwatch.storage.reader`).
* ``http(s)://user:password@host:8123``: a ClickHouse server. ``https://user:password@host:8443``
  encrypts the traffic; a password with reserved characters is percent-encoded
  (``p%40ss`` for ``p@ss``); query parameters go to clickhouse-connect's client,
  e.g. ``?ca_cert=/etc/ssl/clickhouse-ca.pem`` (a private CA) or ``?verify=false``
  (no certificate check: testing only). Credentials never appear in
  :meth:`StoreTarget.describe`, in ``repr`` or in error messages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlparse

from routerwatch.errors import ConfigError


@dataclass(frozen=True)
class StoreTarget:
    kind: str  # "chdb" or "http"
    path: str | None = None  # chdb: absolute engine directory
    url: str | None = field(default=None, repr=False)  # http: the DSN as given (may hold a password)

    def describe(self) -> str:
        """A printable identity without credentials."""
        if self.kind == "chdb":
            return f"chdb://{self.path}"
        parsed = urlparse(self.url or "")
        return f"{parsed.scheme}://{parsed.hostname}:{parsed.port or (8443 if parsed.scheme == 'https' else 8123)}"


def parse_dsn(dsn: str) -> StoreTarget:
    """Parse a store DSN; raises :class:`ConfigError` naming ROUTERWATCH_CLICKHOUSE_URL."""
    if dsn.startswith("chdb:"):
        rest = dsn[len("chdb:") :]
        if rest.startswith("//"):
            rest = rest[2:]
        if not rest:
            raise ConfigError("ROUTERWATCH_CLICKHOUSE_URL: chdb needs a path, e.g. chdb:///var/lib/routerwatch")
        return StoreTarget(kind="chdb", path=os.path.realpath(rest))
    if dsn.startswith(("http://", "https://")):
        parsed = urlparse(dsn)
        if not parsed.hostname:
            raise ConfigError(f"ROUTERWATCH_CLICKHOUSE_URL: no host in the {parsed.scheme}:// URL")
        try:
            parsed.port
        except ValueError:
            raise ConfigError(f"ROUTERWATCH_CLICKHOUSE_URL: the port of {parsed.hostname} is not a number") from None
        return StoreTarget(kind="http", url=dsn)
    scheme = dsn.partition(":")[0] if ":" in dsn else ""
    raise ConfigError(  # the DSN itself is left out: it may hold a password
        f"ROUTERWATCH_CLICKHOUSE_URL: unsupported scheme {scheme[:20]!r}; use chdb:///path or http(s)://host:8123"
    )
