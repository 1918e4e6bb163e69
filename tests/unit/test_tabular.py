"""routerwatch.tabular: tables a person reads (aligned, rounded, NULL as '-'), TSV and CSV."""

from __future__ import annotations

import csv
import io
import math
from datetime import datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from routerwatch.tabular import (
    ELLIPSIS,
    NULL,
    display_width,
    format_number,
    format_value,
    render_csv,
    render_table,
    render_tsv,
    truncate,
)


def test_the_issue_examples():
    assert format_value(0.0029587000000000003) == "0.00296"
    assert format_value(None) == NULL == "-"
    assert format_value(math.nan) == "-"


def test_rounding_by_magnitude():
    assert [format_number(v) for v in (0.5, 0.125, 0.1234, 1.23456, 12.3456, 123.456, 4567.89, 2.0, -0.0)] == [
        "0.5", "0.125", "0.123", "1.23", "12.3", "123", "4568", "2", "0"]
    assert format_number(1e-7) == "1e-07" and format_number(2.5e20) == "2.5e+20"
    assert format_number(math.inf) == "inf" and format_number(-math.inf) == "-inf"
    assert format_number(Decimal("0.0029587")) == "0.00296" and format_number(Decimal("12")) == "12"
    assert format_value(True) == "true" and format_value(datetime(2026, 12, 7, 10, 5)) == "2026-12-07 10:05:00"
    assert format_value(["small", math.nan, 0.33333]) == "[small, -, 0.333]"


def test_table_aligns_numbers_right_text_left_with_a_header_rule_and_count():
    table = render_table(["tier", "rate", "n"], [("small", 0.0029587000000000003, 12), ("medium", None, 1234)])
    assert table.splitlines() == [
        "tier       rate     n",
        "------  -------  ----",
        "small   0.00296    12",
        "medium        -  1234",
        "(2 rows)",
    ]


def test_long_text_is_cut_with_an_ellipsis_and_escapes_are_shown():
    table = render_table(["detail"], [("x" * 100,), ("\x1b[2Jcleared",)], max_width=10)
    lines = table.splitlines()
    assert lines[2] == "x" * 9 + ELLIPSIS
    assert "\x1b" not in table and lines[3].startswith("\\x1b[2Jcl")
    assert truncate("中文中文中文", 5) == "中文" + ELLIPSIS and display_width(truncate("中文中文中文", 5)) <= 5


def test_wide_characters_keep_the_columns_aligned():
    table = render_table(["tenant", "n"], [("中文名", 1), ("abc", 22)])
    rows = table.splitlines()[:-1]
    assert {display_width(r) for r in rows} == {display_width(rows[0])}


def test_empty_result_keeps_the_header():
    assert render_table(["a", "b"], []).splitlines() == ["a  b", "-  -", "(0 rows)"]


def test_tsv_keeps_clickhouse_spelling_and_csv_leaves_null_empty():
    rows = [(None, math.nan, 0.0029587000000000003, "a\tb")]
    assert render_tsv(["x", "y", "z", "t"], rows, header=True).splitlines() == [
        "x\ty\tz\tt", "\\N\tnan\t0.0029587000000000003\ta\\x09b"]
    parsed = list(csv.reader(io.StringIO(render_csv(["x", "y", "z", "t"], [(None, math.nan, 0.25, "a,b")]))))
    assert parsed == [["x", "y", "z", "t"], ["", "", "0.25", "a,b"]]


# --- properties ---

TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
CELL = st.one_of(st.none(), st.integers(-10**12, 10**12), st.floats(allow_infinity=False), TEXT)


@st.composite
def results(draw):
    ncols = draw(st.integers(1, 5))
    columns = draw(st.lists(st.text(alphabet="abcdefghij_", min_size=1, max_size=12), min_size=ncols, max_size=ncols))
    kinds = draw(st.lists(st.sampled_from(["num", "text", "mixed"]), min_size=ncols, max_size=ncols))
    strategies = {"num": st.one_of(st.none(), st.just(math.nan), st.integers(-10**9, 10**9), st.floats(-1e9, 1e9)),
                  "text": st.one_of(st.none(), TEXT), "mixed": CELL}
    rows = draw(st.lists(st.tuples(*[strategies[k] for k in kinds]), max_size=12))
    return columns, rows


def _cells(line: str, widths: list[int]) -> list[str]:
    """Split a table line (ASCII here) at the columns' positions: every gap must be two spaces."""
    line = line.ljust(sum(widths) + 2 * (len(widths) - 1))
    out, at = [], 0
    for i, w in enumerate(widths):
        out.append(line[at:at + w])
        at += w
        if i < len(widths) - 1:
            assert line[at:at + 2] == "  ", (line, widths)
            at += 2
    assert at == len(line)
    return out


@settings(max_examples=200, deadline=None)
@given(results(), st.integers(3, 50))
def test_every_row_is_rendered_in_aligned_columns_with_nulls_as_dashes(result, max_width):
    columns, rows = result
    lines = render_table(columns, rows, max_width=max_width).splitlines()
    assert len(lines) == len(rows) + 3 and lines[-1] == f"({len(rows)} row{'' if len(rows) == 1 else 's'})"
    widths = [len(part) for part in lines[1].split("  ")]
    assert len(widths) == len(columns) and set(lines[1]) <= {"-", " "}
    for line, row in zip(lines[2:-1], rows):
        for cell, value in zip(_cells(line, widths), row):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                assert cell.strip() == NULL
            elif isinstance(value, (int, float)):
                assert cell.strip() == format_value(value)
            else:
                shown = cell.rstrip()
                assert shown == format_value(value).rstrip() or (shown.endswith(ELLIPSIS) and len(shown) <= max_width)
    # A numeric column is right-aligned: its cells end at the column's right edge.
    for i in range(len(columns)):
        values = [r[i] for r in rows]
        if any(isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)) for v in values) and all(
                v is None or isinstance(v, (int, float)) for v in values):
            for line in lines[2:-1]:
                assert not _cells(line, widths)[i].endswith(" ")


@given(st.integers())
def test_rounding_never_changes_an_integer(n):
    assert format_value(n) == str(n)
    if abs(n) < 10**15:
        assert format_value(float(n)) == str(n)


@given(st.floats(-1e300, 1e300))
def test_rounding_keeps_three_significant_digits(x):
    shown = format_value(x)
    assert abs(float(shown) - x) <= 0.005 * abs(x)
