"""The Grafana dashboards of deploy/grafana, loaded and expanded the way Grafana would run them.

No Grafana runs in the tests. What Grafana and the ClickHouse data source plugin
(grafana-clickhouse-datasource 4.x) do to a panel's SQL before ClickHouse sees it is re-implemented
here, for a fixed time range and interval:

1. Grafana interpolates the dashboard variables: ``${name}`` and ``$name`` become the value as is,
   ``${name:sqlstring}`` the value quoted for SQL (``'`` doubled, the whole in single quotes).
   Names starting with ``__`` are the plugin's macros and are left to step 2.
2. The plugin's backend expands its macros (pkg/macros/macros.go of the plugin):
   ``$__fromTime`` / ``$__toTime`` -> ``toDateTime(<unix seconds>)``;
   ``$__fromTime_ms`` / ``$__toTime_ms`` -> ``fromUnixTimestamp64Milli(<unix ms>)``;
   ``$__timeFilter(col)`` -> ``col >= toDateTime(from) AND col <= toDateTime(to)`` (``_ms``: the
   millisecond forms); ``$__dateFilter(col)`` -> ``col >= toDate('YYYY-MM-DD') AND col <= toDate(...)``;
   ``$__timeInterval(col)`` -> ``toStartOfInterval(toDateTime(col), INTERVAL <s> second)``;
   ``$__interval_s`` -> the panel's interval in whole seconds (at least 1).

A macro this module does not know fails the expansion, as does a ``$`` left after it: a panel
cannot use a macro the tests do not run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "datasources.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "dashboards.yml"
CLICKHOUSE = "grafana-clickhouse-datasource"
PROMETHEUS = "prometheus"
# Variables Grafana itself defines (not the plugin's $__ macros).
BUILTIN_VARIABLES = {"__interval", "__interval_ms", "__rate_interval", "__range", "__range_s", "__range_ms",
                     "__dashboard", "__from", "__to", "__org", "__user", "timeFilter"}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included (rows themselves too)."""
    out = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def queries(dashboard: dict[str, Any], ds_type: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(panel title, refId, target) of every target on a data source of ``ds_type``."""
    return [(p["title"], t["refId"], t) for p in panels(dashboard) for t in p.get("targets", [])
            if t.get("datasource", p.get("datasource", {})).get("type") == ds_type]


def variable_queries(dashboard: dict[str, Any], ds_type: str) -> list[tuple[str, str]]:
    return [(v["name"], v["query"]) for v in dashboard.get("templating", {}).get("list", [])
            if v.get("type") == "query" and v.get("datasource", {}).get("type") == ds_type]


_VAR = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")


def referenced_variables(text: str) -> set[str]:
    """Dashboard variables a query uses (the plugin's $__ macros left out)."""
    names = {m.group(1) or m.group(3) for m in _VAR.finditer(text)}
    return {n for n in names if not n.startswith("__")}


def interpolate(text: str, values: dict[str, str]) -> str:
    """Grafana's variable interpolation (step 1 of the module docstring)."""

    def sub(m: re.Match[str]) -> str:
        name, fmt = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), None)
        if name.startswith("__"):
            return m.group(0)
        value = values[name]
        if fmt is None or fmt == "raw":
            return value
        if fmt == "sqlstring":
            return "'" + value.replace("'", "''") + "'"
        raise ValueError(f"variable format {fmt!r} of ${{{name}}} is not re-implemented by the tests")

    return _VAR.sub(sub, text)


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime
    interval_s: int

    def _dt(self, t: datetime) -> str:
        return f"toDateTime({int(t.timestamp())})"

    def _ms(self, t: datetime) -> str:
        return f"fromUnixTimestamp64Milli({int(t.timestamp() * 1000)})"

    def _date(self, t: datetime) -> str:
        return f"toDate('{t.astimezone(timezone.utc):%Y-%m-%d}')"

    def expand(self, sql: str) -> str:
        """The plugin's macro expansion (step 2 of the module docstring)."""
        f, t = self.start, self.end

        def with_arg(m: re.Match[str]) -> str:
            name, col = m.group(1), m.group(2).strip()
            if name == "timeFilter":
                return f"{col} >= {self._dt(f)} AND {col} <= {self._dt(t)}"
            if name == "timeFilter_ms":
                return f"{col} >= {self._ms(f)} AND {col} <= {self._ms(t)}"
            if name == "dateFilter":
                return f"{col} >= {self._date(f)} AND {col} <= {self._date(t)}"
            if name == "timeInterval":
                return f"toStartOfInterval(toDateTime({col}), INTERVAL {max(self.interval_s, 1)} second)"
            raise ValueError(f"macro $__{name}(...) is not re-implemented by the tests")

        sql = re.sub(r"\$__(timeFilter_ms|timeFilter|dateFilter|timeInterval)\(([^()]*)\)", with_arg, sql)
        plain = {"fromTime_ms": self._ms(f), "toTime_ms": self._ms(t), "fromTime": self._dt(f),
                 "toTime": self._dt(t), "interval_s": str(max(self.interval_s, 1))}

        def without_arg(m: re.Match[str]) -> str:
            if m.group(1) not in plain:
                raise ValueError(f"macro $__{m.group(1)} is not re-implemented by the tests")
            return plain[m.group(1)]

        sql = re.sub(r"\$__(\w+)", without_arg, sql)
        if "$" in sql:
            raise ValueError(f"a $ is left after expansion: {sql}")
        return sql


def run_sql(text: str, values: dict[str, str], window: TimeRange) -> str:
    """A panel's or a variable's SQL as ClickHouse receives it from Grafana."""
    return window.expand(interpolate(text, values))
