"""Query results as text a person reads, or a spreadsheet imports: aligned tables, TSV and CSV.

``routerwatch sql`` and ``routerwatch cookbook`` print through here. Nothing here talks to a
store: a result is a list of column names and a list of row tuples, as
:class:`routerwatch.storage.client.QueryResult` holds them.

- :func:`render_table`: for a person. A header and a rule, numbers right-aligned and rounded
  (:func:`format_value`: three significant digits, integers kept whole), text left-aligned and
  cut to a width with an ellipsis, NULL and NaN shown as ``-``, a row count last.
- :func:`render_tsv`: for scripts (``cut``, ``awk``, shell ``$(...)``). Values as ClickHouse
  spells them in its TabSeparated output: ``\\N`` for NULL, ``nan``, ``inf``; never rounded.
- :func:`render_csv`: for spreadsheets. Always a header row; values unrounded; NULL and NaN
  are empty cells.

Text from routers and providers (tenant names, errors, details) is shown through
:func:`routerwatch.textsafe.terminal_safe` in every format: an escape sequence in a tenant name
cannot rewrite what on-call reads, and a tab or newline in a value cannot break a row.
"""

from __future__ import annotations

import csv
import io
import math
import unicodedata
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from routerwatch.textsafe import terminal_safe

NULL = "-"
ELLIPSIS = "…"
DEFAULT_MAX_WIDTH = 40
SIGNIFICANT = 3
GAP = "  "


def is_number(value: Any) -> bool:
    """A value shown right-aligned: int, float or Decimal (``bool`` is not a number here)."""
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def is_null(value: Any) -> bool:
    """NULL or NaN: both shown as ``-`` in a table."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, Decimal):
        return value.is_nan()
    return False


def format_number(value: int | float | Decimal) -> str:
    """A number rounded for reading.

    Integers (and floats holding a whole number below 1e15) are printed whole, never rounded.
    A fraction keeps three significant digits (``0.0029587000000000003`` -> ``0.00296``); a
    larger value keeps three significant digits but never loses a digit of its integer part
    (``12.3456`` -> ``12.3``, ``4567.89`` -> ``4568``). Trailing zeros are dropped.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if is_null(value):
        return NULL
    number = float(value)
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    if isinstance(value, Decimal) and value == value.to_integral_value() and abs(value) < Decimal(10) ** 15:
        return str(int(value))
    if number == 0:
        return "0"
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    magnitude = abs(number)
    if magnitude >= 1e15 or magnitude < 1e-4:
        text = f"{number:.{SIGNIFICANT}g}"
        return text if "e" in text else _strip_zeros(text)
    if magnitude >= 1:
        digits = len(str(int(magnitude)))
        text = f"{number:.{max(0, SIGNIFICANT - digits)}f}"
    else:
        # Leading zeros after the point do not count as significant digits.
        zeros = -math.floor(math.log10(magnitude)) - 1
        text = f"{number:.{zeros + SIGNIFICANT}f}"
    text = _strip_zeros(text)
    return "0" if text in ("-0", "0") else text


def _strip_zeros(text: str) -> str:
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_value(value: Any) -> str:
    """One cell of a table: numbers rounded (:func:`format_number`), NULL and NaN as ``-``,
    times as ``YYYY-MM-DD HH:MM:SS``, arrays and tuples element by element, text made terminal-safe."""
    if is_null(value):
        return NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_number(value):
        return format_number(value)
    if isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        if value.microsecond:
            text += f".{value.microsecond // 1000:03d}"
        return text
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(format_value(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{format_value(k)}: {format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return terminal_safe(str(value))


def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: wide (East Asian) characters two, combining marks none."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def truncate(text: str, max_width: int) -> str:
    """``text`` cut to at most ``max_width`` columns, ending in ``…`` when cut."""
    if max_width < 1 or display_width(text) <= max_width:
        return text
    out, width = [], 0
    for ch in text:
        w = 0 if unicodedata.combining(ch) else (2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1)
        if width + w > max_width - 1:
            break
        out.append(ch)
        width += w
    return "".join(out) + ELLIPSIS


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - display_width(text))
    return fill + text if right else text + fill


def render_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, max_width: int = DEFAULT_MAX_WIDTH,
                 count: bool = True) -> str:
    """``rows`` as an aligned table: the column names, a rule, one line a row, ``(N rows)`` last.

    A column whose values (NULL and NaN aside) are all numbers is right-aligned, header included;
    every other column is left-aligned. A cell wider than ``max_width`` columns is cut with an
    ellipsis (numbers never are: a cut number would read as another number). Trailing spaces are
    dropped. ``count=False`` leaves the row count out.
    """
    headers = [truncate(terminal_safe(str(c)), max_width) for c in columns]
    # A column of NULLs only is taken for numbers (most NULLs of a figure are a rate over nothing).
    numeric = [all(is_number(row[i]) or is_null(row[i]) for row in rows) for i in range(len(columns))]
    cells = [
        [format_value(v) if is_number(v) else truncate(format_value(v), max_width) for i, v in enumerate(row)]
        for row in rows
    ]
    widths = [max([display_width(h)] + [display_width(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return GAP.join(_pad(v, widths[i], numeric[i]) for i, v in enumerate(values)).rstrip()

    out = [line(headers), GAP.join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    if count:
        out.append(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")
    return "\n".join(out)


def _tsv_value(value: Any) -> str:
    return "\\N" if value is None else terminal_safe(str(value))


def render_tsv(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, header: bool = False) -> str:
    """Tab-separated lines, values unrounded as Python prints them (``nan``, ``inf``), ``\\N`` for
    NULL; the column names first when ``header``. No trailing newline; empty for no rows and no header."""
    out = ["\t".join(terminal_safe(str(c)) for c in columns)] if header else []
    out += ["\t".join(_tsv_value(v) for v in row) for row in rows]
    return "\n".join(out)


def _csv_value(value: Any) -> str:
    if is_null(value):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") + (f".{value.microsecond:06d}" if value.microsecond else "")
    return terminal_safe(str(value))


def render_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """RFC 4180 CSV: a header row, then the rows; values unrounded, NULL and NaN as empty cells."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([terminal_safe(str(c)) for c in columns])
    for row in rows:
        writer.writerow([_csv_value(v) for v in row])
    return buffer.getvalue().rstrip("\n")
