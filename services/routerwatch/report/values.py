"""The report's values as the HTML page shows them: parsed, formatted and escaped."""

from __future__ import annotations

import html
import math
from datetime import datetime, timezone
from typing import Any

from routerwatch.report.scoreboard import Report, clean

# The latency quantiles a [p50, p95, p99] cell holds, in that order.
QUANTILES = ("p50", "p95", "p99")


def esc(value: Any) -> str:
    """``value`` as text safe in HTML content and quoted attributes; None is the empty string."""
    return html.escape("" if value is None else str(value), quote=True)


def num(value: Any) -> float | None:
    """A finite float, or None (NaN, missing, not a number). Accepts numeric strings (JSON transports)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def data_num(value: float) -> str:
    """A number for a ``data-*`` attribute: ten significant digits, no grouping."""
    return f"{value:.10g}"


def pct(value: float | None, digits: int = 1) -> str:
    """A fraction as a percentage (0.123 -> ``12.3%``; under 0.1% two significant digits); None is ``-``."""
    if value is None:
        return "-"
    p = value * 100
    if p != 0 and abs(p) < 0.1:
        return f"{p:.2g}%"
    return f"{p:.{digits}f}%"


def usd(value: float | None) -> str:
    """Dollars, rounded to their size (``$1,234``, ``$12.34``, ``$0.0123``); None is ``-``."""
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"${value:,.0f}"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${value:.3g}"


def ms(value: float | None) -> str:
    """Milliseconds without the unit, rounded to their size; None is ``-``."""
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.0f}"
    return f"{value:.3g}"


def section_rows(report: Report, key: str) -> list[dict[str, Any]]:
    """The rows of section ``key`` (none if it is missing), each a new dict with its values cleaned for display."""
    return [{k: clean(v) for k, v in row.items()} for row in (report.sections.get(key) or [])]


def parse_minute(value: Any) -> datetime | None:
    """A bucket start (datetime or ISO text) as an aware datetime (naive means UTC), or None if unreadable."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def minute_key(value: Any) -> str:
    """A bucket start as ``YYYY-MM-DDTHH:MM:SS`` UTC, the form of the plots' ``data-*`` attributes; unreadable values as given."""
    parsed = parse_minute(value)
    if parsed is None:
        return str(value)
    return parsed.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
