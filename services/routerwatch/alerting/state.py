"""The alerting state file: the firing set and the resolves in flight, kept across restarts.

With it a restarted scheduler resumes each alert with the same ``startsAt`` (same labels, same
alert: no new page) and still delivers the resolves it had not delivered when it stopped. The
file is JSON, written atomically::

    {"version": 1,
     "firing": [{"labels": ..., "annotations": ..., "starts_at": ..., "ends_at": ...,
                 "generator_url": ...}],
     "resolving": [{<the same keys>, "expires_at": ..., "urls": [<Alertmanager URLs>]}]}

Times are RFC 3339; URLs are stored without credentials (the state file is not a secret
store). A change of this format needs a new :data:`STATE_VERSION`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from routerwatch.alerting.api import redact_url
from routerwatch.alerting.errors import AlertStateError
from routerwatch.alerting.models import format_time, label_key, parse_time

log = logging.getLogger("routerwatch.alerting")

STATE_VERSION = 1


@dataclass
class Record:
    """One alert the client knows: its labels, last annotations and times."""

    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime  # the endsAt last sent (firing) or the resolve time
    generator_url: str | None = None

    def payload(self) -> dict[str, Any]:
        """The alert as Alertmanager's ``POST /api/v2/alerts`` takes it."""
        body: dict[str, Any] = {
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": format_time(self.starts_at),
            "endsAt": format_time(self.ends_at),
        }
        if self.generator_url:
            body["generatorURL"] = self.generator_url
        return body

    def to_json(self) -> dict[str, Any]:
        """The record as the state file holds it."""
        return {
            "labels": self.labels,
            "annotations": self.annotations,
            "starts_at": format_time(self.starts_at),
            "ends_at": format_time(self.ends_at),
            "generator_url": self.generator_url,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        """The record :meth:`to_json` wrote; raises KeyError, ValueError or AttributeError on bad data."""
        return cls(
            labels={str(k): str(v) for k, v in data["labels"].items()},
            annotations={str(k): str(v) for k, v in data.get("annotations", {}).items()},
            starts_at=parse_time(data["starts_at"]),
            ends_at=parse_time(data["ends_at"]),
            generator_url=data.get("generator_url"),
        )


@dataclass
class Resolving:
    """A resolve not yet delivered everywhere: kept (and persisted) until delivered or pointless."""

    record: Record  # ends_at = the resolve time
    expires_at: datetime  # the endsAt last sent while firing: Alertmanager resolves it by then
    urls: set[str]  # the Alertmanagers (as configured) still to deliver it to


class StateFile:
    """The JSON file at ``path`` that holds the firing set and the resolves in flight.

    Both are dicts keyed by the alert's :func:`~routerwatch.alerting.models.label_key`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self, urls: Sequence[str]) -> tuple[dict[str, Record], dict[str, Resolving]]:
        """The firing set and the resolves in flight saved last, both empty when there is no file.

        ``urls`` are the Alertmanager URLs as configured: a resolve's URLs are matched to them
        (the file has them without credentials) and those no longer configured are dropped.
        Creates the file's directory; raises :class:`AlertStateError` when it cannot. A file
        that cannot be read or parsed is moved aside (``<name>.corrupt``), logged, and loads
        as empty.
        """
        firing: dict[str, Record] = {}
        resolving: dict[str, Resolving] = {}
        by_name = {redact_url(url): url for url in urls}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AlertStateError(f"cannot create the directory of the alerting state {self.path}: {exc}") from exc
        if not self.path.exists():
            return firing, resolving
        try:
            data = json.loads(self.path.read_text())
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"state version {data.get('version')!r}, expected {STATE_VERSION}")
            for item in data.get("firing", []):
                record = Record.from_json(item)
                firing[label_key(record.labels)] = record
            for item in data.get("resolving", []):
                record = Record.from_json(item)
                resolving[label_key(record.labels)] = Resolving(
                    record, expires_at=parse_time(item["expires_at"]), urls={by_name[u] for u in item.get("urls", []) if u in by_name}
                )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            aside = self.path.with_name(self.path.name + ".corrupt")
            log.error("alerting state %s unreadable (%s); moved to %s, starting empty", self.path, exc, aside)
            try:
                os.replace(self.path, aside)
            except OSError:
                pass
            return {}, {}
        return firing, resolving

    def save(self, firing: dict[str, Record], resolving: dict[str, Resolving]) -> None:
        """Write the state atomically (temp file, fsync, rename): a crash leaves old or new, never half.

        A failed write is logged, never raised: alerting must go on, and the cost of a lost
        state is at worst a re-page after a restart.
        """
        data = {
            "version": STATE_VERSION,
            "firing": [r.to_json() for r in firing.values()],
            "resolving": [
                # URLs without credentials: the state file is not a secret store.
                {**res.record.to_json(), "expires_at": format_time(res.expires_at), "urls": sorted(redact_url(u) for u in res.urls)}
                for res in resolving.values()
            ],
        }
        try:
            fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w") as fh:
                    json.dump(data, fh, indent=1, sort_keys=True)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError as exc:
            log.error("cannot write the alerting state %s: %s", self.path, exc)
