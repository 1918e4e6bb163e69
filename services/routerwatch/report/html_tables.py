"""The report's sections as HTML tables; the canary section adds a pass-rate sparkline per side."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from routerwatch.report.plots import sparkline
from routerwatch.report.scoreboard import NO_CANARIES, POOL_REASON_BY, POOL_REASONS, Report, clean, fmt_value, canary_sides
from routerwatch.report.values import QUANTILES, esc, ms, num, pct, section_rows

# Tenants shown (the top by spend); tables longer than COLLAPSE_ROWS are folded behind a <details>.
TENANT_ROWS = 20
COLLAPSE_ROWS = 25
# Said beside an experiment whose variants differ in routing mix, here and at the top of the page.
MIX_WARNING = "variants differ in routing mix \u2014 compare within slices"
# The per-canary table's columns, few enough to fit the page at 1280 px: answered probes and the
# tier-flip count are in the per-side table and in observed_tiers; latency is one p50 / p95 column.
CANARY_COLUMNS = ["router_id", "side", "canary_id", "category", "probes", "no_answer", "pass_rate", "tier_flip_rate",
                  "expected_tier", "most_common_observed_tier", "observed_tiers", "latency_ms", "last_probe_at", "last_error",
                  "last_check_detail"]

PERCENT_COLUMNS = {"share", "rate", "accuracy", "pass_rate", "share_of_spend", "share_of_tier_escalations"}


def _is_percent(column: str) -> bool:
    return column in PERCENT_COLUMNS or column.endswith("_rate") or column.endswith("_share") or column.startswith("share_")


def text_cell(column: str, value: Any) -> tuple[str, bool]:
    """(escaped text, is numeric) of one cell."""
    value = clean(value)
    if isinstance(value, (list, tuple)):
        parts = [num(v) for v in value]
        if column.endswith("_ms"):
            return esc(" / ".join(ms(p) for p in parts)), True
        return esc(fmt_value(list(value))), True
    if isinstance(value, bool):
        return esc(fmt_value(value)), False
    if isinstance(value, datetime):
        return esc(value.isoformat()), False
    number = num(value) if isinstance(value, (int, float)) else None
    if number is not None and _is_percent(column):
        return esc(pct(number)), True
    if isinstance(value, int):
        return esc(f"{value:,}"), True
    if number is not None:
        return esc(fmt_value(number)), True
    return esc(fmt_value(value)), False


def _header(column: str, sample: Any) -> str:
    # The SQL column name, allowed to wrap after its underscores so wide tables fit the page.
    label = "_<wbr>".join(esc(part) for part in column.split("_"))
    if isinstance(sample, (list, tuple)) and len(sample) in (2, 3):
        label += f" <small>{' / '.join(QUANTILES[:len(sample)])}</small>"
    elif _is_percent(column):
        label += " <small>%</small>"
    return label


def text_table(rows: list[dict[str, Any]], *, row_class: Any = None, drop_empty_segment: bool = True, fit: bool = False) -> str:
    """The rows as an HTML table in a horizontal scroll container; ``fit`` lets its text cells wrap
    so that a wide table fits the page instead of scrolling."""
    if not rows:
        return '<p class="nodata">no data</p>'
    columns: list[str] = []
    for row in rows:
        for c in row:
            if c not in columns:
                columns.append(c)
    if drop_empty_segment and "segment" in columns and all(r.get("segment") in (None, "") for r in rows):
        columns.remove("segment")
    samples = {c: next((r.get(c) for r in rows if r.get(c) is not None), None) for c in columns}
    numeric = {c: all(text_cell(c, r.get(c))[1] or r.get(c) is None for r in rows) for c in columns}
    out = [f'<div class="table-wrap{" fit" if fit else ""}"><table>', "<thead><tr>"]
    for c in columns:
        cls = ' class="num"' if numeric[c] else ""
        out.append(f'<th scope="col"{cls}>{_header(c, samples[c])}</th>')
    out.append("</tr></thead><tbody>")
    for row in rows:
        cls = row_class(row) if row_class else ""
        out.append(f'<tr class="{cls}">' if cls else "<tr>")
        for c in columns:
            text, _ = text_cell(c, row.get(c))
            out.append(f'<td class="num">{text}</td>' if numeric[c] else f"<td>{text}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _observed_tiers(value: Any) -> str:
    """``{'small': 38, 'large': 2}`` -> ``small 38, large 2`` (most frequent first)."""
    if not isinstance(value, dict):
        return "" if value is None else str(value)
    counts = [(str(k), num(v) or 0) for k, v in value.items()]
    return ", ".join(f"{k} {v:,.0f}" for k, v in sorted(counts, key=lambda kv: (-kv[1], kv[0])))


def _canary_section(report: Report) -> str:
    rows = section_rows(report, "canaries")
    if not rows:
        return f'<p class="nodata">{esc(NO_CANARIES)}</p>'
    several_routers = len({r.get("router_id") for r in rows}) > 1
    sides = canary_sides(rows)
    side_columns = (["router_id"] if several_routers else []) + [
        "side", "canaries", "probes", "answered", "no_answer", "pass_rate", "tier_flip_rate"]
    out = ['<p class="note">Rates are over answered probes (no error from the router). A tier flip is an answered probe '
           "served by another tier than the canary expects. Probe traffic is excluded from every other figure.</p>",
           '<div class="table-wrap"><table class="canary-sides"><thead><tr>']
    for c in side_columns:
        cls = "" if c in ("router_id", "side") else ' class="num"'
        out.append(f'<th scope="col"{cls}>{_header(c, None)}</th>')
    out.append('<th scope="col">pass rate over time</th></tr></thead><tbody>')
    for side in sides:
        out.append(f'<tr data-router="{esc(side["router_id"])}" data-side="{esc(side["side"])}">')
        for c in side_columns:
            text, numeric = text_cell(c, side.get(c))
            out.append(f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>")
        out.append(f"<td>{sparkline(report, side['router_id'], side['side'])}</td></tr>")
    out.append("</tbody></table></div>")
    drop = set() if several_routers else {"router_id"}
    for optional in ("last_error", "last_check_detail"):
        if not any(r.get(optional) for r in rows):
            drop.add(optional)

    def cell(row: dict[str, Any], column: str) -> Any:
        if column == "observed_tiers":
            return _observed_tiers(row.get(column))
        if column == "latency_ms":
            return [row.get("latency_p50_ms"), row.get("latency_p95_ms")]
        return row.get(column)

    table_rows = [{c: cell(r, c) for c in CANARY_COLUMNS if c not in drop} for r in rows]

    def flagged(row: dict[str, Any]) -> str:
        bad = (num(row.get("no_answer")) or 0) > 0 or (num(row.get("tier_flip_rate")) or 0) > 0
        rate = num(row.get("pass_rate"))
        return "flag" if bad or (rate is not None and rate < 1) else ""

    out.append('<p class="note">Per canary (highlighted: failed checks, tier flips or probes without an answer)</p>')
    out.append(text_table(table_rows, row_class=flagged, fit=True))
    return "".join(out)


def _pool_note(report: Report, key: str) -> str:
    """A section that pools several routers says so, and which."""
    routers = report.pooled.get(key)
    if not routers:
        return ""
    return (f'<p class="note pooled" data-pools-routers="{esc(" ".join(routers))}"><strong>Pools routers '
            f'{esc(", ".join(routers))}:</strong> {esc(POOL_REASONS.get(key, POOL_REASON_BY).format(by=report.by))}.</p>')


def section_table(report: Report, key: str) -> str:
    """The body of section ``key``'s card: its table(s) and notes (pooled routers, warnings, truncation).

    With one router the router_id column is left out; long tables are collapsed behind a ``<details>``.
    """
    if key == "canaries":
        return _canary_section(report)
    rows = section_rows(report, key)
    if len(report.routers) <= 1:
        # One router (or none): its id on every row says nothing.
        rows = [{c: v for c, v in r.items() if c != "router_id"} for r in rows]
    parts = [_pool_note(report, key)]
    row_class = None
    if key == "experiment_mix_test":
        differing = [r for r in rows if r.get("mix_differs") is True]
        for r in differing:
            parts.append(f'<div class="warning" role="alert"><strong>&#9888; {esc(r.get("experiment_id"))}:</strong> {esc(MIX_WARNING)} '
                         f"(p = {esc(fmt_value(r.get('p_value')))}).</div>")
        rows = [{**r, "mix_differs": (f"yes \u2014 {MIX_WARNING}" if r.get("mix_differs") is True else r.get("mix_differs"))} for r in rows]
        row_class = lambda r: "warn" if str(r.get("mix_differs", "")).startswith("yes") else ""  # noqa: E731
    if key == "tenants" and len(rows) > TENANT_ROWS:
        parts.append(f'<p class="note">Top {TENANT_ROWS} of {len(rows)} tenants by spend.</p>')
        rows = rows[:TENANT_ROWS]
    if key == "tiers" and rows:
        # Twenty columns do not fit a page: outcomes and rates, then latency and cost, each with the tier.
        ident = ["router_id", "segment", "tier", "tier_rank"]
        latency = [c for c in rows[0] if c.endswith("_ms") or c.endswith("_usd")]
        first = [{c: v for c, v in r.items() if c not in latency} for r in rows]
        second = [{c: r.get(c) for c in ident + latency if c in r} for r in rows]
        parts.append('<p class="note">Outcomes and rates</p>' + text_table(first))
        parts.append('<p class="note">Latency (ms) and cost (USD)</p>' + text_table(second))
        return "".join(parts)
    table = text_table(rows, row_class=row_class)
    if len(rows) > COLLAPSE_ROWS:
        table = f"<details><summary>show all {len(rows)} rows</summary>{table}</details>"
    parts.append(table)
    return "".join(parts)
