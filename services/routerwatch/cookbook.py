"""The on-call cookbook (``sql/queries/*.sql``) and what ``routerwatch sql`` / ``routerwatch cookbook`` bind.

Each cookbook query starts with comments: the question it answers, then its parameters. A query
over time takes its window as absolute ``{since:DateTime('UTC')}`` / ``{until:DateTime('UTC')}``
placeholders ([since, until)); a query comparing against a baseline also takes
``{baseline_since:DateTime('UTC')}`` (the baseline is [baseline_since, since)). On-call looks at
the incident's window hours later, so the window is a pair of times, not "the last N minutes".

:func:`bind` turns the command line into those parameters and refuses what cannot be meant:

- ``--since`` / ``--until`` / ``--baseline-since``: an ISO 8601 time (UTC when no zone), or a
  duration back from an anchor: ``--until`` from now, ``--since`` from ``--until``,
  ``--baseline-since`` from ``--since`` (``90m``, ``6h``, ``7d``, ``30s``). Defaults: until now,
  since one hour before until, the baseline the window of the same length before since. Times
  are widened to whole minutes (since and baseline_since down, until up), as the rollups count
  per minute;
- ``--param NAME=VALUE`` for the other placeholders (``request_id``); a name the query has no
  placeholder for, a placeholder left without a value, a window option for a query without a
  window, an empty or reversed window: each a :class:`~routerwatch.errors.UsageError` (exit 2)
  saying what is accepted.

Nothing here opens a store: the CLI (:mod:`routerwatch.cli`) runs the query and prints it
through :mod:`routerwatch.tabular`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

from routerwatch.errors import UsageError

WINDOW = ("since", "until", "baseline_since")
DEFAULT_SINCE = "1h"
FORMATS = ("table", "tsv", "csv", "json")

# Cookbook parameters that were durations before the windows were absolute.
_OLD_DURATIONS = {
    "minutes": "--since 60m",
    "recent_minutes": "--since 15m",
    "baseline_minutes": "--baseline-since 120m",
}

ACCEPTED_TIME = (
    "an ISO 8601 time in UTC such as 2026-12-07T10:00 (or 2026-12-07T10:00Z, 2026-12-07T11:00+01:00), "
    "or a duration back from {anchor} such as 90m, 6h, 7d"
)

# A string, a comment or a {name:Type} placeholder, whichever starts first: placeholders inside
# strings and comments are not placeholders.
_TOKENS = re.compile(
    r"'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`|\"(?:[^\"\\]|\\.)*\"|--[^\n]*|/\*.*?\*/"
    r"|\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([^{}]*?)\s*\}",
    re.DOTALL,
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def placeholders(sql: str) -> dict[str, str]:
    """``{name: type}`` of every ``{name:Type}`` placeholder of ``sql`` (outside strings and comments)."""
    found: dict[str, str] = {}
    for match in _TOKENS.finditer(sql):
        if match.group(1):
            found.setdefault(match.group(1), match.group(2))
    return found


def parse_time(text: str, *, option: str, anchor: datetime, anchor_name: str) -> datetime:
    """``text`` as an aware UTC datetime: an ISO time (UTC when no zone) or a duration back from ``anchor``."""
    found = _DURATION.match(text)
    if found:
        return anchor - timedelta(**{_UNITS[found.group(2)]: float(found.group(1))})
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a time: give {ACCEPTED_TIME.format(anchor=anchor_name)}") from None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def _ceil_minute(t: datetime) -> datetime:
    floor = _floor_minute(t)
    return floor if floor == t else floor + timedelta(minutes=1)


def param_text(t: datetime) -> str:
    """A UTC time as a ClickHouse ``DateTime`` parameter: ``YYYY-MM-DD HH:MM:SS``."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime
    baseline_since: datetime

    def describe(self, with_baseline: bool) -> str:
        text = f"{param_text(self.since)[:16]} .. {param_text(self.until)[:16]} UTC"
        if with_baseline:
            text += f", baseline from {param_text(self.baseline_since)[:16]}"
        return text


def resolve_window(since: str | None, until: str | None, baseline_since: str | None,
                   now: datetime | None = None) -> Window:
    """The window the options mean (see the module's docstring); UsageError for an empty or reversed one."""
    now = now or datetime.now(timezone.utc)
    end = parse_time(until, option="--until", anchor=now, anchor_name="now") if until else now
    start = parse_time(since or DEFAULT_SINCE, option="--since", anchor=end, anchor_name="--until")
    if start >= end:
        raise UsageError(f"--since ({param_text(start)}) must be before --until ({param_text(end)}): "
                         "the window is [since, until), in UTC")
    start, end = _floor_minute(start), _ceil_minute(end)
    if baseline_since:
        base = _floor_minute(parse_time(baseline_since, option="--baseline-since", anchor=start, anchor_name="--since"))
        if base >= start:
            raise UsageError(f"--baseline-since ({param_text(base)}) must be before --since ({param_text(start)}): "
                             "the baseline is [baseline_since, since)")
    else:
        base = start - (end - start)
    return Window(start, end, base)


@dataclass
class Bound:
    """What :func:`bind` found: the parameters for the engine, and the window when the query has one."""

    parameters: dict[str, str] = field(default_factory=dict)
    window: Window | None = None
    with_baseline: bool = False


def bind(sql: str, params: list[str] | None = None, *, since: str | None = None, until: str | None = None,
         baseline_since: str | None = None, now: datetime | None = None) -> Bound:
    """The parameters to run ``sql`` with, from ``--param NAME=VALUE`` items and the window options.

    ``--param since=...`` (until, baseline_since) is the same as ``--since ...``. Raises UsageError
    for a malformed ``--param``, a name the query has no placeholder for, a placeholder without a
    value, a window option the query does not take, and a time that is not one.
    """
    wanted = placeholders(sql)
    given: dict[str, str] = {}
    window_opts = {"since": since, "until": until, "baseline_since": baseline_since}
    for item in params or []:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"--param wants NAME=VALUE, got {item!r}")
        if name in given or (name in window_opts and window_opts[name] is not None):
            raise UsageError(f"{name} is given twice")
        if name in WINDOW:
            window_opts[name] = value
            continue
        if name not in wanted:
            hint = ""
            if name in _OLD_DURATIONS:
                hint = (f"; the cookbook's windows are absolute now: instead of --param {name}=N, "
                        f"give the window, e.g. {_OLD_DURATIONS[name]} or --since 2026-12-07T10:00 --until 2026-12-07T11:00")
            raise UsageError(f"--param {name}: the query has no {{{name}:Type}} placeholder "
                             f"(its parameters: {_names(wanted)}){hint}")
        given[name] = value
    takes_window = any(n in wanted for n in WINDOW)
    window = None
    if takes_window or any(v is not None for v in window_opts.values()):
        # Times are checked first: "--since banana" says what a time is, whatever the query.
        window = resolve_window(window_opts["since"], window_opts["until"], window_opts["baseline_since"], now)
    for name, value in window_opts.items():
        if value is not None and name not in wanted:
            option = "--" + name.replace("_", "-")
            raise UsageError(f"{option}: this query takes no {name} (its parameters: {_names(wanted)})")
    missing = [n for n in wanted if n not in WINDOW and n not in given]
    if missing:
        raise UsageError("the query needs " + ", ".join(f"--param {n}=VALUE ({wanted[n]})" for n in missing))
    bound = Bound(parameters=given)
    if takes_window and window is not None:
        bound.window = window
        bound.with_baseline = "baseline_since" in wanted
        for name in WINDOW:
            if name in wanted:
                bound.parameters[name] = param_text(getattr(bound.window, name))
    return bound


def _names(wanted: dict[str, str]) -> str:
    return ", ".join(wanted) if wanted else "none"


# --- the packaged queries ---


@dataclass(frozen=True)
class Query:
    name: str
    path: Path
    text: str

    @property
    def header(self) -> list[str]:
        """The leading comment lines, without ``--``."""
        out = []
        for line in self.text.splitlines():
            if not line.startswith("--"):
                break
            out.append(line[2:].strip())
        return out

    @property
    def question(self) -> str:
        """The first sentence of the header: the question the query answers."""
        words = []
        for line in self.header:
            if not line or line.lower().startswith("parameters:"):
                break
            words.append(line)
        text = " ".join(words)
        found = re.search(r"^.*?[?.](?=\s|$)", text)
        return found.group(0) if found else text

    @property
    def parameters(self) -> dict[str, str]:
        return placeholders(self.text)


def queries_dir() -> Path:
    """``sql/queries``: the package's copy (a wheel install) or the source tree's."""
    from routerwatch import packagedata

    return packagedata.sql_dir() / "queries"


def available(directory: Path | None = None) -> list[Query]:
    directory = directory or queries_dir()
    return [Query(p.stem, p, p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.sql"))]


def find(name: str, directory: Path | None = None) -> Query:
    """The cookbook query ``name`` (with or without ``.sql``); UsageError naming the known ones."""
    directory = directory or queries_dir()
    stem = name[:-4] if name.endswith(".sql") else name
    known = available(directory)
    for query in known:
        if query.name == stem:
            return query
    raise UsageError(f"no cookbook query {name!r} in {directory}; known: {', '.join(q.name for q in known) or 'none'}")


def listing(queries: list[Query]) -> list[tuple[str, str, str]]:
    """(name, parameters, question) per query, for ``routerwatch cookbook``."""
    rows = []
    for q in queries:
        params = q.parameters
        shown = []
        if "since" in params:
            shown.append("--since --until" + (" --baseline-since" if "baseline_since" in params else ""))
        shown += [f"--param {n}=..." for n in params if n not in WINDOW]
        rows.append((q.name, " ".join(shown) or "-", q.question))
    return rows


# --- output ---

_THROW_IF = re.compile(r"DB::Exception: (.*?)(?:: while executing '?FUNCTION throwIf.*)?\s*\(FUNCTION_THROW_IF_VALUE_IS_NON_ZERO\)",
                       re.DOTALL)


def engine_refusal(message: str) -> str | None:
    """The message a view's ``throwIf`` check raised (a parameter value it refuses), else None."""
    found = _THROW_IF.search(message)
    if not found:
        return None
    text = " ".join(found.group(1).split())
    return re.sub(r"\s*:?\s*while executing.*$", "", text) or None


def default_format(stream: TextIO) -> str:
    """``table`` on a terminal, ``tsv`` when the output goes to a pipe or a file (scripts keep working)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return "table" if isatty is not None and isatty() else "tsv"
    except ValueError:  # a closed stream
        return "tsv"


def render(columns: list[str], rows: list[tuple[Any, ...]], fmt: str, *, header: bool = False) -> str:
    """``rows`` as a table, TSV or CSV (JSON is :func:`routerwatch.cli.json_safe`'s)."""
    from routerwatch import tabular

    if fmt == "table":
        return tabular.render_table(columns, rows)
    if fmt == "csv":
        return tabular.render_csv(columns, rows)
    if fmt == "tsv":
        return tabular.render_tsv(columns, rows, header=header)
    raise UsageError(f"--format {fmt!r}: give one of {', '.join(FORMATS)}")
