"""``routerwatch report --format html``: the scoreboard as one self-contained page.

:func:`render_html` turns a :class:`~routerwatch.report.scoreboard.Report` into a
single HTML document: inline CSS, five plots drawn here as inline SVG, and a
table for every section (the canary section adds a pass-rate sparkline per
side, also inline SVG). Nothing is fetched when the page is opened (no
scripts, fonts, images or style sheets from elsewhere), so the file can be
mailed, attached to an incident or opened offline.

Every string that comes from the data (tier names, tenants, categories,
experiment ids, dead-letter reasons) is escaped. Plotted marks carry
``data-*`` attributes with the value they show, so tests (and curious readers)
can check a mark against the table below it.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from routerwatch.report.scoreboard import (
    NO_CANARIES, POOL_REASON_BY, POOL_REASONS, SECTIONS, UNPRICED, UNPRICED_TITLE, Report, unpriced_line, _clean, _fmt,
    _fmt_time, canary_sides,
)

__all__ = ["render_html"]

# Okabe-Ito (colour-blind safe), in tier-rank order; the same tier has the same colour in every plot.
TIER_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#8C6D31", "#6B6ECF")
NOT_SERVED = "(not served)"
NOT_SERVED_COLOUR = "#9a9a9a"
# Request paths are not tiers: neutral colours so they never read as one.
PATH_STYLE = {
    "kept": ("#333333", True),
    "escalated": ("#B2182B", True),
    "all": ("#777777", False),
}
QUANTILES = ("p50", "p95", "p99")
TENANT_ROWS = 20
COLLAPSE_ROWS = 25
MIX_WARNING = "variants differ in routing mix \u2014 compare within slices"

TITLES = {key: title for key, title, _, _ in SECTIONS}
TITLES[UNPRICED] = UNPRICED_TITLE
TITLES["experiment_mix_test"] = "Experiments: does routing mix differ between variants? (chi-square, alpha 0.01)"
SECTION_ORDER = [key for key, _, _, _ in SECTIONS]
SECTION_ORDER.insert(SECTION_ORDER.index("experiment_mix") + 1, "experiment_mix_test")
TITLES["gate_thresholds"] = "Gate thresholds that meet the target error on graded answers"
SECTION_ORDER.insert(SECTION_ORDER.index("gate_calibration") + 1, "gate_thresholds")
# Drawn inside the canary section (sparklines), not as a table of its own.
EMBEDDED_SECTIONS = {"canary_series"}
# The per-canary table's columns, few enough to fit the page at 1280 px: answered probes and the
# tier-flip count are in the per-side table and in observed_tiers; latency is one p50 / p95 column.
CANARY_COLUMNS = ["router_id", "side", "canary_id", "category", "probes", "no_answer", "pass_rate", "tier_flip_rate",
                  "expected_tier", "most_common_observed_tier", "observed_tiers", "latency_ms", "last_probe_at", "last_error",
                  "last_check_detail"]

PERCENT_COLUMNS = {"share", "rate", "accuracy", "pass_rate", "share_of_spend", "share_of_tier_escalations"}

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, 'Liberation Sans', 'DejaVu Sans', sans-serif"

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font-family: %(font)s; margin: 0; background: #f6f7f9; color: #1d2430; line-height: 1.45; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 60px; }
header.page { background: #1d2430; color: #fff; padding: 20px 28px; }
header.page .inner { max-width: 1240px; margin: 0 auto; }
header.page h1 { margin: 0 0 6px; font-size: 24px; font-weight: 650; }
header.page .meta { font-size: 15px; opacity: .92; }
header.page .meta span { margin-right: 22px; white-space: nowrap; }
h2 { font-size: 19px; margin: 34px 0 10px; border-bottom: 2px solid #dde1e7; padding-bottom: 4px; }
h3 { font-size: 15.5px; margin: 22px 0 6px; }
section.card, figure.plot { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 14px 18px; margin: 14px 0; }
figure.plot { margin: 16px 0; }
figure.plot figcaption { font-size: 13.5px; color: #4a5464; margin-top: 6px; }
svg { max-width: 100%%; height: auto; display: block; font-family: %(font)s; }
dl.vocab { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; font-size: 14px; }
dl.vocab dt { font-weight: 650; }
dl.vocab dd { margin: 0; }
.kpis { display: flex; flex-wrap: wrap; gap: 12px; margin: 10px 0 0; }
.kpi { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 10px 16px; min-width: 170px; }
.kpi .v { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums; }
.kpi .l { font-size: 12.5px; color: #4a5464; }
nav.toc { font-size: 13.5px; columns: 3; margin: 8px 0 0; }
nav.toc a { color: #0b5cad; text-decoration: none; }
nav.toc a:hover { text-decoration: underline; }
.table-wrap { overflow-x: auto; }
/* The per-canary table has ~18 columns: its text cells wrap (long errors anywhere) so it fits the page. */
.table-wrap.fit td { white-space: normal; overflow-wrap: anywhere; min-width: 4.5em; }
.table-wrap.fit td.num { white-space: nowrap; min-width: 0; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 4px; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 8px; border-bottom: 1px solid #e6e9ee; text-align: left; white-space: nowrap; }
th { background: #eef1f5; font-weight: 600; white-space: normal; vertical-align: bottom; max-width: 11em; }
th small { font-weight: 400; color: #5b6575; }
td.num, th.num { text-align: right; }
tbody tr:nth-child(even) td { background: #fafbfc; }
tr.warn td { background: #fff3cd !important; }
tr.flag td { background: #fde8e6 !important; }
svg.sparkline { display: inline-block; vertical-align: middle; }
.spark-value { font-size: 12px; color: #1d2430; margin-left: 6px; vertical-align: middle; font-variant-numeric: tabular-nums; }
.nodata { color: #6b7585; font-style: italic; margin: 6px 0; }
.note { color: #4a5464; font-size: 13px; margin: 4px 0; }
.warning { background: #fff3cd; border: 1px solid #e0b84c; border-left: 5px solid #d39e00; border-radius: 4px;
           padding: 8px 12px; margin: 8px 0; font-size: 14px; }
details > summary { cursor: pointer; color: #0b5cad; font-size: 13.5px; margin: 4px 0; }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
footer { color: #6b7585; font-size: 12.5px; margin-top: 40px; }
""" % {"font": FONT}


# ---------------------------------------------------------------------------- values


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any) -> float | None:
    """A finite float, or None (NaN, missing, not a number). Accepts numeric strings (JSON transports)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _quantiles(value: Any) -> list[float | None]:
    values = list(value) if isinstance(value, (list, tuple)) else []
    values = (values + [None, None, None])[:3]
    return [_num(v) for v in values]


def _data_num(value: float) -> str:
    return f"{value:.10g}"


def _pct(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    p = value * 100
    if p != 0 and abs(p) < 0.1:
        return f"{p:.2g}%"
    return f"{p:.{digits}f}%"


def _usd(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"${value:,.0f}"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${value:.3g}"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _rows(report: Report, key: str) -> list[dict[str, Any]]:
    return [{k: _clean(v) for k, v in row.items()} for row in (report.sections.get(key) or [])]


def _rank(value: Any) -> float:
    rank = _num(value)
    return rank if rank is not None else math.inf


def _segment_label(segment: Any) -> str:
    return str(segment) if segment not in (None, "") else ""


def _segment_of(row: dict[str, Any]) -> Any:
    """The row's segment; a row of a section split by router (several routers, no --by) has router_id instead."""
    return row["segment"] if "segment" in row else row.get("router_id")


def _parse_minute(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _minute_key(value: Any) -> str:
    parsed = _parse_minute(value)
    if parsed is None:
        return str(value)
    return parsed.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def _text_width(text: str, size: float = 12) -> float:
    """Rough rendered width of ``text`` in px (no font metrics in Python; errs wide)."""
    return len(text) * size * 0.6


# ---------------------------------------------------------------------------- tier colours


def _tier_colours(report: Report) -> dict[str, str]:
    ranks: dict[str, float] = {}
    for key, tier_col, rank_col in (("tiers", "tier", "tier_rank"), ("routing_mix", "final_tier", "final_tier_rank")):
        for row in _rows(report, key):
            tier = row.get(tier_col)
            if tier is None or tier == NOT_SERVED:
                continue
            rank = _num(row.get(rank_col))
            ranks[str(tier)] = min(ranks.get(str(tier), math.inf), rank if rank is not None else math.inf)
    others: set[str] = set()
    for key, col in (("escalation_series", "tier"), ("failure_modes", "tier"), ("quality", "tier"), ("experiment_mix", "final_tier")):
        for row in _rows(report, key):
            if row.get(col) is not None and str(row[col]) not in ranks and row[col] != NOT_SERVED:
                others.add(str(row[col]))
    ordered = sorted(ranks, key=lambda t: (ranks[t], t)) + sorted(others)
    colours = {tier: TIER_PALETTE[i % len(TIER_PALETTE)] for i, tier in enumerate(ordered)}
    colours[NOT_SERVED] = NOT_SERVED_COLOUR
    return colours


# ---------------------------------------------------------------------------- SVG helpers


class _Svg:
    """An SVG document with an accessible title and description."""

    def __init__(self, plot_id: str, width: int, height: int, title: str, desc: str, attrs: str = "") -> None:
        self.plot_id, self.width, self.height = plot_id, width, height
        self.parts: list[str] = [
            f'<svg id="plot-{plot_id}" class="plot" data-plot="{plot_id}"{attrs} '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-labelledby="plot-{plot_id}-title plot-{plot_id}-desc">',
            f'<title id="plot-{plot_id}-title">{_esc(title)}</title>',
            f'<desc id="plot-{plot_id}-desc">{_esc(desc)}</desc>',
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
            f'<text x="{width / 2:.1f}" y="22" text-anchor="middle" font-size="16" font-weight="650" fill="#1d2430">{_esc(title)}</text>',
        ]

    def add(self, part: str) -> None:
        self.parts.append(part)

    def text(self, x: float, y: float, content: str, *, size: float = 12, anchor: str = "start", fill: str = "#1d2430",
             weight: str = "normal", extra: str = "") -> None:
        self.parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
            f'font-weight="{weight}"{extra}>{_esc(content)}</text>'
        )

    def y_label(self, mid: float, content: str) -> None:
        """A vertical axis title centred on ``mid``."""
        self.parts.append(f'<text x="20" y="{mid:.1f}" font-size="12.5" text-anchor="middle" fill="#1d2430" '
                          f'transform="rotate(-90 20 {mid:.1f})">{_esc(content)}</text>')

    def no_data(self, message: str = "no data") -> None:
        self.text(self.width / 2, self.height / 2 + 6, message, size=16, anchor="middle", fill="#6b7585", extra=' class="nodata"')

    def render(self) -> str:
        return "\n".join(self.parts + ["</svg>"])


def _nice_step(span: float, target_ticks: int) -> float:
    raw = span / max(target_ticks, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for mult in (1, 2, 2.5, 5, 10):
        if raw <= mult * magnitude:
            return mult * magnitude
    return 10 * magnitude


def _linear_ticks(hi: float, target: int = 5) -> tuple[float, list[float]]:
    """A 0-based domain end (>= hi) and ticks for it."""
    if hi <= 0:
        hi = 1.0
    step = _nice_step(hi, target)
    top = math.ceil(hi / step - 1e-9) * step
    ticks = [i * step for i in range(int(round(top / step)) + 1)]
    return top, ticks


def _log_domain(values: Iterable[float]) -> tuple[float, float, list[float]]:
    positive = [v for v in values if v is not None and v > 0]
    if not positive:
        return 1.0, 10.0, [1.0, 10.0]
    lo = 10 ** math.floor(math.log10(min(positive)))
    hi = 10 ** math.ceil(math.log10(max(positive)))
    if hi <= lo:
        hi = lo * 10
    # Trim to the 1-2-5 tick just outside the data, so the data uses the height.
    candidates = []
    decade = lo
    while decade <= hi * 1.0001:
        for mult in (1, 2, 5):
            candidates.append(decade * mult)
        decade *= 10
    lo = max(c for c in candidates if c <= min(positive) * 1.0001)
    hi = min(c for c in candidates if c >= max(positive) * 0.9999)
    if hi <= lo:
        hi = next(c for c in candidates if c > lo)
    ticks = [c for c in candidates if lo * 0.9999 <= c <= hi * 1.0001]
    decades = math.log10(hi / lo)
    if decades > 2.5:  # many decades: 1s only, or 1s and 5s, keep the axis legible
        ticks = [c for c in ticks if round(c / 10 ** math.floor(math.log10(c) + 1e-9)) in ((1,) if decades > 4 else (1, 5))]
        ticks = sorted(set(ticks) | {lo, hi})
    return lo, hi, ticks


def _tick_label(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:g}"
    return f"{value:.2g}"


# A legend item: a function drawing its 16 px swatch centred vertically on (x, y), and its label.
LegendItem = tuple[Callable[[float, float], str], str]


def _legend(svg: _Svg, items: Sequence[LegendItem], x: float, y: float, max_width: float) -> float:
    """Swatch + label items flowing left to right from (x, y); returns the y below the legend."""
    cx, cy = x, y
    svg.add('<g class="legend">')
    for draw, label in items:
        width = 22 + _text_width(label, 12) + 18
        if cx + width > x + max_width and cx > x:
            cx, cy = x, cy + 20
        svg.add(draw(cx, cy))
        svg.text(cx + 20, cy + 4, label, size=12)
        cx += width
    svg.add("</g>")
    return cy + 20


def _legend_height(labels: Sequence[str], max_width: float) -> float:
    rows, used = 1, 0.0
    for label in labels:
        width = 22 + _text_width(label, 12) + 18
        if used + width > max_width and used > 0:
            rows, used = rows + 1, 0.0
        used += width
    return rows * 20


def _swatch(colour: str, *, hollow: bool = False) -> Callable[[float, float], str]:
    fill = "#ffffff" if hollow else colour
    return lambda x, y: (f'<rect x="{x + 1:.1f}" y="{y - 6:.1f}" width="13" height="12" rx="2" fill="{fill}" '
                         f'stroke="{colour}" stroke-width="2"/>')


def _line_swatch(colour: str, dash: str = "") -> Callable[[float, float], str]:
    dashes = f' stroke-dasharray="{dash}"' if dash else ""
    return lambda x, y: (f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x + 16:.1f}" y2="{y:.1f}" stroke="{colour}" '
                         f'stroke-width="3"{dashes}/>')


# ---------------------------------------------------------------------------- quantile markers


def _marker(shape: str, x: float, y: float, colour: str, filled: bool, attrs: str = "", tip: str = "") -> str:
    """p50: circle, p95: diamond, p99: triangle; filled or hollow, with an optional hover title."""
    fill = colour if filled else "#ffffff"
    common = f'fill="{fill}" stroke="{colour}" stroke-width="2"' + (f" {attrs}" if attrs else "")
    inner = f"<title>{_esc(tip)}</title>" if tip else ""
    if shape == "p50":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5.5" {common}>{inner}</circle>'
    if shape == "p95":
        return (f'<rect x="{x - 4.5:.1f}" y="{y - 4.5:.1f}" width="9" height="9" transform="rotate(45 {x:.1f} {y:.1f})" '
                f"{common}>{inner}</rect>")
    return f'<path d="M{x - 6:.1f},{y + 5:.1f} L{x + 6:.1f},{y + 5:.1f} L{x:.1f},{y - 6:.1f} Z" {common}>{inner}</path>'


def _spread_labels(ys: list[float], gap: float, lo: float, hi: float) -> list[float]:
    """Move label baselines apart (keeping order) so none are closer than ``gap``."""
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    placed = [ys[i] for i in order]
    for i in range(1, len(placed)):
        placed[i] = max(placed[i], placed[i - 1] + gap)
    overflow = placed[-1] - hi if placed else 0
    if overflow > 0:
        placed = [p - overflow for p in placed]
        for i in range(len(placed) - 2, -1, -1):
            placed[i] = min(placed[i], placed[i + 1] - gap)
    if placed and placed[0] < lo:
        shift = lo - placed[0]
        placed = [p + shift for p in placed]
    out = [0.0] * len(ys)
    for rank, i in enumerate(order):
        out[i] = placed[rank]
    return out


@dataclass
class _Series:
    key: str  # e.g. "terminal"
    label: str  # axis label under the whisker
    colour: str
    filled: bool
    quantiles: list[float | None]
    attrs: dict[str, str]
    short: str = ""  # axis label when ``label`` does not fit the slot


@dataclass
class _Group:
    label: str
    sublabel: str
    colour: str
    series: list[_Series]


def _whisker_plot(plot_id: str, title: str, desc: str, groups: list[_Group], legend: list[LegendItem],
                  y_label: str) -> str:
    width = 1160
    svg_top = 40
    left, right = 86, 24
    values = [v for g in groups for s in g.series for v in s.quantiles if v is not None]
    slots = sum(len(g.series) for g in groups)
    if not values:
        svg = _Svg(plot_id, width, 260, title, desc)
        _legend(svg, legend, left, svg_top + 6, width - left - right)
        svg.no_data()
        return svg.render()
    plot_w = width - left - right
    slot_w = plot_w / max(slots + (len(groups) - 1) * 0.5, 1)
    show_labels = slot_w >= 95
    height = 470
    svg = _Svg(plot_id, width, height, title, desc)
    legend_bottom = _legend(svg, legend, left, svg_top + 6, plot_w)
    top = legend_bottom + 8
    bottom = height - 78
    lo, hi, ticks = _log_domain(values)

    def y_of(v: float) -> float:
        v = max(v, lo)
        return bottom - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (bottom - top)

    for t in ticks:
        y = y_of(t)
        svg.add(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e3e6eb" stroke-width="1"/>')
        svg.text(left - 8, y + 4, _tick_label(t), size=11.5, anchor="end", fill="#4a5464")
    svg.add(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#8a93a3"/>')
    svg.add(f'<line x1="{left}" y1="{bottom}" x2="{width - right}" y2="{bottom}" stroke="#8a93a3"/>')
    mid = (top + bottom) / 2
    svg.y_label(mid, y_label)

    x = left
    for gi, group in enumerate(groups):
        if gi:
            x += slot_w * 0.5
            svg.add(f'<line x1="{x - slot_w * 0.25:.1f}" y1="{top}" x2="{x - slot_w * 0.25:.1f}" y2="{bottom + 52}" stroke="#eef0f3"/>')
        group_start = x
        for series in group.series:
            cx = x + (slot_w * 0.32 if show_labels else slot_w / 2)
            qs = series.quantiles
            present = [(q, v) for q, v in zip(QUANTILES, qs) if v is not None]
            attrs = " ".join(f'data-{k}="{_esc(v)}"' for k, v in series.attrs.items())
            svg.add(f'<g class="series" {attrs}>')
            if present:
                ys = [y_of(v) for _, v in present]
                dash = "" if series.filled else ' stroke-dasharray="5 3"'
                svg.add(f'<line x1="{cx:.1f}" y1="{min(ys):.1f}" x2="{cx:.1f}" y2="{max(ys):.1f}" '
                        f'stroke="{series.colour}" stroke-width="2.5"{dash}/>')
                for q, v in present:
                    tip = f"{series.label} {q}: {_ms(v)} ms"
                    svg.add(_marker(q, cx, y_of(v), series.colour, series.filled,
                                    f'class="q" data-quantile="{q}" data-value="{_data_num(v)}"', tip))
                if show_labels:
                    label_ys = _spread_labels([y + 4 for y in ys], 14, top + 4, bottom - 2)
                    for (q, v), ly in zip(present, label_ys):
                        svg.text(cx + 11, ly, f"{q} {_ms(v)}", size=11.5, fill="#1d2430", extra=' class="value-label"')
            else:
                svg.text(cx, bottom - 10, "none", size=11.5, anchor="middle", fill="#8a93a3", extra=' font-style="italic"')
            svg.add("</g>")
            axis_label = series.label if _text_width(series.label, 11.5) <= slot_w - 6 else (series.short or series.key)
            if _text_width(axis_label, 11.5) > slot_w - 2:
                axis_label = axis_label[: max(1, int((slot_w - 2) / (11.5 * 0.6)) - 1)] + "."
            svg.text(cx, bottom + 16, axis_label, size=11.5, anchor="middle", fill="#4a5464")
            x += slot_w
        gx = (group_start + x) / 2
        svg.text(gx, bottom + 36, group.label, size=13, anchor="middle", fill=group.colour, weight="650")
        if group.sublabel:
            svg.text(gx, bottom + 53, group.sublabel, size=11.5, anchor="middle", fill="#4a5464")
    if not show_labels:
        svg.text(width - right, height - 6, "values in the table below (hover a mark for its value)", size=11, anchor="end", fill="#6b7585")
    return svg.render()


def _quantile_legend() -> list[LegendItem]:
    grey = "#4a5464"
    return [
        ((lambda q: lambda x, y: _marker(q, x + 8, y, grey, True))(q), label)
        for q, label in (("p50", "p50 (median)"), ("p95", "p95"), ("p99", "p99"))
    ]


# ---------------------------------------------------------------------------- the five plots


def _plot_tier_latency(report: Report, colours: dict[str, str]) -> str:
    rows = _rows(report, "tiers")
    rows.sort(key=lambda r: (str(_segment_of(r) or ""), _rank(r.get("tier_rank")), str(r.get("tier"))))
    groups = []
    for row in rows:
        tier = str(row.get("tier"))
        segment = _segment_label(_segment_of(row))
        colour = colours.get(tier, "#555555")
        base = {"tier": tier, "segment": segment}
        groups.append(_Group(tier, segment, colour, [
            _Series("terminal", "terminal", colour, True, _quantiles(row.get("terminal_latency_ms")),
                    {**base, "population": "terminal"}, "term."),
            _Series("passthrough", "passthrough", colour, False, _quantiles(row.get("passthrough_latency_ms")),
                    {**base, "population": "passthrough"}, "pass."),
        ]))
    legend = [(_swatch("#4a5464"), "terminal: accepted, answer served"),
              (_swatch("#4a5464", hollow=True), "passthrough: escalated, answer rejected")] + _quantile_legend()
    return _whisker_plot(
        "tier-latency",
        "Attempt latency per tier: terminal vs passthrough",
        "For each tier, the latency of attempts whose answer was served (terminal) and of attempts whose answer was "
        "rejected and escalated (passthrough): p50, p95 and p99 in milliseconds on a log scale.",
        groups, legend, "attempt latency (ms, log scale)",
    )


def _plot_request_latency(report: Report) -> str:
    rows = _rows(report, "request_latency")
    by_segment: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_segment.setdefault(_segment_label(_segment_of(row)), {})[str(row.get("path_group"))] = row
    groups = []
    for segment, paths in by_segment.items():
        series = []
        for path in list(PATH_STYLE) + sorted(set(paths) - set(PATH_STYLE)):
            if path not in paths:
                continue
            colour, filled = PATH_STYLE.get(path, ("#555555", True))
            requests = _num(paths[path].get("requests"))
            label = f"{path} ({requests:,.0f})" if requests is not None else path
            series.append(_Series(path, label, colour, filled, _quantiles(paths[path].get("latency_ms")),
                                  {"segment": segment, "path": path}, path[:4] + "." if len(path) > 5 else path))
        groups.append(_Group(segment or "all requests", "", "#1d2430", series))
    legend = [(_swatch(PATH_STYLE["kept"][0]), "kept (served by its entry tier)"),
              (_swatch(PATH_STYLE["escalated"][0]), "escalated (at least one escalation)"),
              (_swatch(PATH_STYLE["all"][0], hollow=True), "all (blended)")] + _quantile_legend()
    return _whisker_plot(
        "request-latency",
        "Request latency: kept vs escalated vs all",
        "End-to-end request latency p50, p95 and p99 in milliseconds (log scale) for requests kept by the entry tier, "
        "requests that escalated, and all requests blended; request counts in parentheses.",
        groups, legend, "request latency (ms, log scale)",
    )


def _escalation_lines(report: Report) -> dict[tuple[str, str], list[tuple[str, float, int]]]:
    """Per (router, tier): (minute, rate, attempts) sorted by minute; categories summed per minute.

    The router is '' unless the series has more than one router (migration 0016 splits it by router):
    one router's tier is never pooled with another's.
    """
    rows = _rows(report, "escalation_series")
    several = len({str(r.get("router_id") or "") for r in rows}) > 1
    sums: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
    for row in rows:
        key = (str(row.get("router_id") or "") if several else "", str(row.get("tier")))
        minute = _minute_key(row.get("minute"))
        cell = sums[key][minute]
        cell[0] += _num(row.get("escalated")) or 0.0
        cell[1] += _num(row.get("accepted")) or 0.0
    lines: dict[tuple[str, str], list[tuple[str, float, int]]] = {}
    for key, minutes in sums.items():
        points = []
        for minute in sorted(minutes):
            escalated, accepted = minutes[minute]
            total = escalated + accepted
            if total > 0:
                points.append((minute, escalated / total, int(total)))
        if points:
            lines[key] = points
    return lines


# Line styles of the routers in the escalation series (the colour is the tier's).
ROUTER_DASHES = ("", "7 4", "2 3", "10 3 2 3", "4 4")


def _time_ticks(start: datetime, end: datetime, max_ticks: int = 9) -> tuple[list[datetime], str]:
    span_min = max((end - start).total_seconds() / 60, 1)
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080):
        if span_min / step <= max_ticks:
            break
    epoch = int(start.timestamp() // 60)
    first = -(-epoch // step) * step
    ticks = []
    t = first
    while t * 60 <= end.timestamp():
        ticks.append(datetime.fromtimestamp(t * 60, tz=timezone.utc))
        t += step
    fmt = "%H:%M" if start.date() == end.date() else "%m-%d %H:%M"
    return ticks, fmt


def _bucket_name(step: int) -> str:
    return "minute" if step == 1 else f"{step}-minute bucket"


def _series_bucket(report: Report) -> str:
    """What one point of the escalation series covers: a minute, or the report's wider bucket."""
    return _bucket_name(report.step("escalation_series"))


def _covers_part(report: Report, start: datetime, end: datetime, step: int) -> bool:
    """Whether buckets from ``start`` to ``end`` (the last one's start) leave a good part of the range out."""
    span = (report.until - report.since).total_seconds()
    covered = (end - start).total_seconds() + step * 60
    return span > 0 and covered < 0.9 * span


def _plot_escalation_series(report: Report, colours: dict[str, str]) -> str:
    title = "Escalation rate over time per tier"
    bucket = _series_bucket(report)
    desc = (f"Per tier (per router and tier when several routers sent traffic) and {bucket}, "
            "escalated / (escalated + accepted) attempts, all categories together. "
            f"Tiers with no accepted or escalated attempts in a {bucket} have no point in that {bucket}.")
    width, height = 1160, 380
    left, right = 86, 24
    step = report.step("escalation_series")
    lines = _escalation_lines(report)
    routers = sorted({router for router, _ in lines})
    tier_order = {t: i for i, t in enumerate(colours)}
    order = sorted(lines, key=lambda k: (k[0], tier_order.get(k[1], len(tier_order)), k[1]))
    dash = {router: ROUTER_DASHES[i % len(ROUTER_DASHES)] for i, router in enumerate(routers)}

    def label(key: tuple[str, str]) -> str:
        return f"{key[0]}: {key[1]}" if key[0] else key[1]

    legend = [(_line_swatch(colours.get(k[1], "#555555"), dash.get(k[0], "")), label(k)) for k in order]
    svg = _Svg("escalation-series", width, height, title, desc, f' data-step-minutes="{step}"')
    if not lines:
        svg.no_data()
        return svg.render()
    legend_bottom = _legend(svg, legend, left, 46, width - left - right)
    top = legend_bottom + 8
    bottom = height - 58
    parsed = {m: _parse_minute(m) for pts in lines.values() for m, _, _ in pts}
    use_time = all(v is not None for v in parsed.values())
    minutes = sorted(parsed)
    if use_time:
        t0 = min(parsed.values()).timestamp()
        t1 = max(parsed.values()).timestamp()
    else:
        t0, t1 = 0.0, float(len(minutes) - 1)
    index = {m: i for i, m in enumerate(minutes)}

    def x_of(minute: str) -> float:
        pos = parsed[minute].timestamp() if use_time else float(index[minute])
        if t1 <= t0:
            return (left + width - right) / 2
        return left + (pos - t0) / (t1 - t0) * (width - left - right)

    max_rate = max(r for pts in lines.values() for _, r, _ in pts)
    y_top, ticks = _linear_ticks(min(max(max_rate, 0.05), 1.0), 5)
    y_top = min(y_top, 1.0) if max_rate <= 1.0 else y_top
    ticks = [t for t in ticks if t <= y_top + 1e-9]

    def y_of(rate: float) -> float:
        return bottom - rate / y_top * (bottom - top)

    for t in ticks:
        y = y_of(t)
        svg.add(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e3e6eb"/>')
        svg.text(left - 8, y + 4, f"{t * 100:g}%", size=11.5, anchor="end", fill="#4a5464")
    svg.add(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#8a93a3"/>')
    svg.add(f'<line x1="{left}" y1="{bottom}" x2="{width - right}" y2="{bottom}" stroke="#8a93a3"/>')
    mid = (top + bottom) / 2
    svg.y_label(mid, "escalation rate (% of accepted + escalated attempts)")
    if use_time:
        start = min(parsed.values())
        end = max(parsed.values())
        tick_times, fmt = _time_ticks(start, end)
        for tt in tick_times:
            x = left + ((tt.timestamp() - t0) / (t1 - t0) * (width - left - right) if t1 > t0 else (width - left - right) / 2)
            svg.add(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 5}" stroke="#8a93a3"/>')
            svg.text(x, bottom + 19, tt.strftime(fmt), size=11.5, anchor="middle", fill="#4a5464")
        # The axis spans the buckets with traffic: when that is part of the range, say so.
        part = "traffic only " if _covers_part(report, start, end, step) else ""
        axis = f"time (UTC, per {bucket}; {part}{start.strftime('%Y-%m-%d %H:%M')} .. {end.strftime('%Y-%m-%d %H:%M')})"
    else:
        for m in minutes[:: max(1, len(minutes) // 8)]:
            svg.text(x_of(m), bottom + 19, m, size=11, anchor="middle", fill="#4a5464")
        axis = "minute"
    svg.text((left + width - right) / 2, height - 12, axis, size=12.5, anchor="middle")
    total_points = sum(len(p) for p in lines.values())
    for key in order:
        router, tier = key
        pts = lines[key]
        colour = colours.get(tier, "#555555")
        coords = " ".join(f"{x_of(m):.1f},{y_of(r):.1f}" for m, r, _ in pts)
        dashes = f' stroke-dasharray="{dash[router]}"' if dash.get(router) else ""
        router_attr = f' data-router="{_esc(router)}"' if router else ""
        svg.add(
            f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="2.2" stroke-linejoin="round"{dashes} '
            f'data-tier="{_esc(tier)}"{router_attr} data-minutes="{_esc(" ".join(m for m, _, _ in pts))}" '
            f'data-rates="{" ".join(_data_num(r) for _, r, _ in pts)}" points="{coords}">'
            f"<title>{_esc(label(key))}: escalation rate per {bucket}</title></polyline>"
        )
        if total_points <= 400 or len(pts) == 1:
            for m, r, n in pts:
                svg.add(f'<circle cx="{x_of(m):.1f}" cy="{y_of(r):.1f}" r="2.6" fill="{colour}">'
                        f"<title>{_esc(label(key))} {_esc(m)}: {_pct(r)} of {n} attempts</title></circle>")
    return svg.render()


def _plot_routing_mix(report: Report, colours: dict[str, str]) -> str:
    title = "Routing mix: share of requests by final tier"
    desc = "For each segment, the share of requests that ended at each tier (the tier that served the answer)."
    rows = _rows(report, "routing_mix")
    by_segment: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_segment.setdefault(_segment_label(_segment_of(row)), []).append(row)
    width = 1160
    left, right = 150, 30
    bar_h, gap = 34, 16
    tiers_present = []
    for row in rows:
        tier = str(row.get("final_tier"))
        if tier not in tiers_present:
            tiers_present.append(tier)
    order = [t for t in colours if t in tiers_present] + [t for t in tiers_present if t not in colours]
    legend = [(_swatch(colours.get(t, "#555555")), t) for t in order]
    if not by_segment:
        svg = _Svg("routing-mix", width, 200, title, desc)
        svg.no_data()
        return svg.render()
    top = 46 + _legend_height(order, width - left - right) + 6
    height = int(top + len(by_segment) * (bar_h + gap) + 50)
    svg = _Svg("routing-mix", width, height, title, desc)
    _legend(svg, legend, left, 46, width - left - right)
    plot_w = width - left - right
    bottom = top + len(by_segment) * (bar_h + gap)
    for t in range(0, 101, 20):
        x = left + t / 100 * plot_w
        svg.add(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{bottom}" stroke="#e3e6eb"/>')
        svg.text(x, bottom + 16, f"{t}%", size=11.5, anchor="middle", fill="#4a5464")
    svg.text(left + plot_w / 2, bottom + 38, "share of requests (%)", size=12.5, anchor="middle")
    rank = {t: i for i, t in enumerate(order)}
    for si, (segment, seg_rows) in enumerate(by_segment.items()):
        y = top + si * (bar_h + gap)
        total = sum(_num(r.get("requests")) or 0 for r in seg_rows)
        svg.text(left - 10, y + bar_h / 2 + 4, segment or "all requests", size=12.5, anchor="end", weight="600")
        x = left
        for row in sorted(seg_rows, key=lambda r: rank.get(str(r.get("final_tier")), len(rank))):
            tier = str(row.get("final_tier"))
            share = _num(row.get("share"))
            requests = _num(row.get("requests")) or 0
            if share is None:
                share = requests / total if total else 0.0
            w = share * plot_w
            colour = colours.get(tier, "#555555")
            svg.add(
                f'<rect class="bar" x="{x:.1f}" y="{y}" width="{max(w, 0):.1f}" height="{bar_h}" fill="{colour}" stroke="#ffffff" '
                f'data-segment="{_esc(segment)}" data-tier="{_esc(tier)}" data-value="{_data_num(share)}" data-requests="{requests:.0f}">'
                f"<title>{_esc(tier)}: {_pct(share)} ({requests:,.0f} requests)</title></rect>"
            )
            label = f"{tier} {_pct(share)}"
            if _text_width(label, 12) + 10 <= w:
                text_fill = "#1d2430" if colour in ("#E69F00", "#56B4E9", "#9a9a9a", "#CC79A7") else "#ffffff"
                svg.text(x + w / 2, y + bar_h / 2 + 4, label, size=12, anchor="middle", fill=text_fill, weight="600")
            elif _text_width(_pct(share), 11) + 6 <= w:
                text_fill = "#1d2430" if colour in ("#E69F00", "#56B4E9", "#9a9a9a", "#CC79A7") else "#ffffff"
                svg.text(x + w / 2, y + bar_h / 2 + 4, _pct(share), size=11, anchor="middle", fill=text_fill)
            x += w
    return svg.render()


def _plot_cost(report: Report) -> str:
    title = "Cost: actual vs counterfactual (flagship tier for every request)"
    desc = ("Actual model and verifier spend of the routed traffic against the counterfactual cost of sending every "
            "request to the flagship tier; the savings share is 1 - actual / counterfactual.")
    rows = _rows(report, "cost")
    width = 1160
    left, right = 150, 230
    bar_h, inner_gap, gap = 24, 4, 22
    actual_colour, cf_colour = "#3b4a5e", "#b9c2cf"
    legend = [(_swatch(actual_colour), "actual cost (routed)"), (_swatch(cf_colour), "counterfactual cost (flagship everywhere)")]
    if not rows:
        svg = _Svg("cost", width, 200, title, desc)
        svg.no_data()
        return svg.render()
    top = 46 + 20 + 10
    block = 2 * bar_h + inner_gap + gap
    bottom = top + len(rows) * block
    height = int(bottom + 50)
    svg = _Svg("cost", width, height, title, desc)
    _legend(svg, legend, left, 46, width - left - right)
    plot_w = width - left - right
    hi = max([_num(r.get(k)) or 0.0 for r in rows for k in ("actual_cost_usd", "counterfactual_cost_usd")] + [0.0])
    top_val, ticks = _linear_ticks(hi if hi > 0 else 1.0, 6)
    for t in ticks:
        x = left + t / top_val * plot_w
        svg.add(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{bottom - gap + 4}" stroke="#e3e6eb"/>')
        svg.text(x, bottom - gap + 20, _usd(t) if t else "$0", size=11.5, anchor="middle", fill="#4a5464")
    svg.text(left + plot_w / 2, bottom - gap + 42, "cost (USD)", size=12.5, anchor="middle")
    for i, row in enumerate(rows):
        segment = _segment_label(_segment_of(row))
        y = top + i * block
        svg.text(left - 10, y + bar_h + 4, segment or "all requests", size=12.5, anchor="end", weight="600")
        for j, (key, label, colour) in enumerate((("actual_cost_usd", "actual", actual_colour),
                                                  ("counterfactual_cost_usd", "counterfactual", cf_colour))):
            value = _num(row.get(key))
            by = y + j * (bar_h + inner_gap)
            w = (value or 0.0) / top_val * plot_w
            svg.add(
                f'<rect class="bar" x="{left}" y="{by}" width="{w:.1f}" height="{bar_h}" fill="{colour}" '
                f'data-segment="{_esc(segment)}" data-series="{label}" data-value="{_data_num(value) if value is not None else ""}">'
                f"<title>{label}: {_usd(value)}</title></rect>"
            )
            svg.text(left + w + 6, by + bar_h / 2 + 4, f"{label} {_usd(value)}", size=12, fill="#1d2430", extra=' class="value-label"')
        savings = _num(row.get("savings_share"))
        text = f"savings {_pct(savings)}" if savings is not None else "savings n/a"
        svg.text(width - right + 20, y + bar_h + 6, text, size=15, weight="650", fill="#00704a" if (savings or 0) >= 0 else "#B2182B",
                 extra=f' class="savings" data-segment="{_esc(segment)}" data-value="{_data_num(savings) if savings is not None else ""}"')
    return svg.render()


# ---------------------------------------------------------------------------- tables


def _is_percent(column: str) -> bool:
    return column in PERCENT_COLUMNS or column.endswith("_rate") or column.endswith("_share") or column.startswith("share_")


def _cell(column: str, value: Any) -> tuple[str, bool]:
    """(escaped text, is numeric) of one cell."""
    value = _clean(value)
    if isinstance(value, (list, tuple)):
        parts = [_num(v) for v in value]
        if column.endswith("_ms"):
            return _esc(" / ".join(_ms(p) for p in parts)), True
        return _esc(_fmt(list(value))), True
    if isinstance(value, bool):
        return _esc(_fmt(value)), False
    if isinstance(value, datetime):
        return _esc(value.isoformat()), False
    number = _num(value) if isinstance(value, (int, float)) else None
    if number is not None and _is_percent(column):
        return _esc(_pct(number)), True
    if isinstance(value, int):
        return _esc(f"{value:,}"), True
    if number is not None:
        return _esc(_fmt(number)), True
    return _esc(_fmt(value)), False


def _header(column: str, sample: Any) -> str:
    # The SQL column name, allowed to wrap after its underscores so wide tables fit the page.
    label = "_<wbr>".join(_esc(part) for part in column.split("_"))
    if isinstance(sample, (list, tuple)) and len(sample) in (2, 3):
        label += f" <small>{' / '.join(QUANTILES[:len(sample)])}</small>"
    elif _is_percent(column):
        label += " <small>%</small>"
    return label


def _table(rows: list[dict[str, Any]], *, row_class: Any = None, drop_empty_segment: bool = True, fit: bool = False) -> str:
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
    numeric = {c: all(_cell(c, r.get(c))[1] or r.get(c) is None for r in rows) for c in columns}
    out = [f'<div class="table-wrap{" fit" if fit else ""}"><table>', "<thead><tr>"]
    for c in columns:
        cls = ' class="num"' if numeric[c] else ""
        out.append(f'<th scope="col"{cls}>{_header(c, samples[c])}</th>')
    out.append("</tr></thead><tbody>")
    for row in rows:
        cls = row_class(row) if row_class else ""
        out.append(f'<tr class="{cls}">' if cls else "<tr>")
        for c in columns:
            text, _ = _cell(c, row.get(c))
            out.append(f'<td class="num">{text}</td>' if numeric[c] else f"<td>{text}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _canary_buckets(report: Report) -> tuple[float, float]:
    """First and last bucket start (epoch seconds) of the canary series, every router and side together.

    The sparklines span the buckets with probes, not the whole range, so probes over part of the
    range are drawn across the sparkline, and every side's sparkline has the same time axis.
    """
    times = [w.timestamp() for w in (_parse_minute(r.get("bucket")) for r in _rows(report, "canary_series")) if w is not None]
    return (min(times), max(times)) if times else (report.since.timestamp(), report.until.timestamp())


def _sparkline(report: Report, router: str, side: str) -> str:
    """Pass rate per bucket of one router and side (0% at the bottom, 100% at the top), with the latest value.

    Buckets are the report's canary step (:meth:`Report.step`). Several points are joined by a line;
    a single point is drawn as a large dot in the middle, its value written beside it.
    """
    points = []
    for row in _rows(report, "canary_series"):
        if str(row.get("router_id") or "") != router or str(row.get("side") or "") != side:
            continue
        when, rate = _parse_minute(row.get("bucket")), _num(row.get("pass_rate"))
        if when is not None and rate is not None:
            points.append((when, rate))
    if not points:
        return '<span class="note">-</span>'
    points.sort()
    width, height, pad = 160, 34, 4
    t0, t1 = _canary_buckets(report)
    bucket = _bucket_name(report.step("canary_series"))

    def x_of(when: datetime) -> float:
        span = t1 - t0
        return pad + (min(max(when.timestamp(), t0), t1) - t0) / span * (width - 2 * pad) if span > 0 else width / 2

    def y_of(rate: float) -> float:
        return height - pad - rate * (height - 2 * pad)

    label = f"pass rate per {bucket}, {side or 'no side'}" + (f" ({router})" if router else "")
    coords = " L".join(f"{x_of(w):.1f},{y_of(r):.1f}" for w, r in points)
    parts = [
        f'<svg class="sparkline" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'data-router="{_esc(router)}" data-side="{_esc(side)}" '
        f'data-buckets="{_esc(" ".join(_minute_key(w) for w, _ in points))}" '
        f'data-rates="{" ".join(_data_num(r) for _, r in points)}" data-step-minutes="{report.step("canary_series")}">',
        f"<title>{_esc(label)}: {_esc(', '.join(f'{_minute_key(w)} {_pct(r)}' for w, r in points[-6:]))}</title>",
        f'<line x1="{pad}" y1="{y_of(1.0):.1f}" x2="{width - pad}" y2="{y_of(1.0):.1f}" stroke="#d5dae1" stroke-dasharray="3 2"/>',
        f'<line x1="{pad}" y1="{y_of(0.0):.1f}" x2="{width - pad}" y2="{y_of(0.0):.1f}" stroke="#d5dae1"/>',
    ]
    if len(points) > 1:
        # A path, not a polyline: polylines on this page are the escalation-series lines.
        parts.append(f'<path class="spark" fill="none" stroke="#0072B2" stroke-width="1.6" stroke-linejoin="round" d="M{coords}"/>')
        last_when, last_rate = points[-1]
        parts.append(f'<circle cx="{x_of(last_when):.1f}" cy="{y_of(last_rate):.1f}" r="2.4" fill="#0072B2"/>')
        value = f"latest {_pct(last_rate)}"
    else:
        # One bucket with probes: a point, not a line; large enough to read as a mark, with its value.
        ((when, rate),) = points
        parts.append(f'<circle class="spark-point" cx="{x_of(when):.1f}" cy="{y_of(rate):.1f}" r="4" fill="#0072B2" '
                     'stroke="#ffffff" stroke-width="1"/>')
        value = f"{_pct(rate)} (one {bucket})"
    parts.append("</svg>")
    return "".join(parts) + f'<span class="spark-value">{_esc(value)}</span>'


def _observed_tiers(value: Any) -> str:
    """``{'small': 38, 'large': 2}`` -> ``small 38, large 2`` (most frequent first)."""
    if not isinstance(value, dict):
        return "" if value is None else str(value)
    counts = [(str(k), _num(v) or 0) for k, v in value.items()]
    return ", ".join(f"{k} {v:,.0f}" for k, v in sorted(counts, key=lambda kv: (-kv[1], kv[0])))


def _canary_section(report: Report) -> str:
    rows = _rows(report, "canaries")
    if not rows:
        return f'<p class="nodata">{_esc(NO_CANARIES)}</p>'
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
        out.append(f'<tr data-router="{_esc(side["router_id"])}" data-side="{_esc(side["side"])}">')
        for c in side_columns:
            text, numeric = _cell(c, side.get(c))
            out.append(f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>")
        out.append(f"<td>{_sparkline(report, side['router_id'], side['side'])}</td></tr>")
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
        bad = (_num(row.get("no_answer")) or 0) > 0 or (_num(row.get("tier_flip_rate")) or 0) > 0
        rate = _num(row.get("pass_rate"))
        return "flag" if bad or (rate is not None and rate < 1) else ""

    out.append('<p class="note">Per canary (highlighted: failed checks, tier flips or probes without an answer)</p>')
    out.append(_table(table_rows, row_class=flagged, fit=True))
    return "".join(out)


def _pool_note(report: Report, key: str) -> str:
    """A section that pools several routers says so, and which."""
    routers = report.pooled.get(key)
    if not routers:
        return ""
    return (f'<p class="note pooled" data-pools-routers="{_esc(" ".join(routers))}"><strong>Pools routers '
            f'{_esc(", ".join(routers))}:</strong> {_esc(POOL_REASONS.get(key, POOL_REASON_BY).format(by=report.by))}.</p>')


def _section_table(report: Report, key: str) -> str:
    if key == "canaries":
        return _canary_section(report)
    rows = _rows(report, key)
    if len(report.routers) <= 1:
        # One router (or none): its id on every row says nothing.
        rows = [{c: v for c, v in r.items() if c != "router_id"} for r in rows]
    parts = [_pool_note(report, key)]
    row_class = None
    if key == "experiment_mix_test":
        differing = [r for r in rows if r.get("mix_differs") is True]
        for r in differing:
            parts.append(f'<div class="warning" role="alert"><strong>&#9888; {_esc(r.get("experiment_id"))}:</strong> {_esc(MIX_WARNING)} '
                         f"(p = {_esc(_fmt(r.get('p_value')))}).</div>")
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
        parts.append('<p class="note">Outcomes and rates</p>' + _table(first))
        parts.append('<p class="note">Latency (ms) and cost (USD)</p>' + _table(second))
        return "".join(parts)
    table = _table(rows, row_class=row_class)
    if len(rows) > COLLAPSE_ROWS:
        table = f"<details><summary>show all {len(rows)} rows</summary>{table}</details>"
    parts.append(table)
    return "".join(parts)


# ---------------------------------------------------------------------------- page


def _kpis(report: Report) -> str:
    rows = _rows(report, "cost")
    if not rows:
        return ""
    requests = sum(_num(r.get("requests")) or 0 for r in rows)
    actual = sum(_num(r.get("actual_cost_usd")) or 0 for r in rows)
    counterfactual = sum(_num(r.get("counterfactual_cost_usd")) or 0 for r in rows)
    items = [(f"{requests:,.0f}", "requests"), (_usd(actual), "actual cost"), (_usd(counterfactual), "counterfactual cost")]
    if counterfactual > 0:
        items.append((_pct(1 - actual / counterfactual), "savings"))
    kept = [r for r in _rows(report, "request_latency") if r.get("path_group") == "kept"]
    everyone = [r for r in _rows(report, "request_latency") if r.get("path_group") == "all"]
    total = sum(_num(r.get("requests")) or 0 for r in everyone)
    if total:
        items.append((_pct(sum(_num(r.get("requests")) or 0 for r in kept) / total), "kept by the entry tier"))
    return '<div class="kpis">' + "".join(
        f'<div class="kpi"><div class="v">{_esc(v)}</div><div class="l">{_esc(label)}</div></div>' for v, label in items
    ) + "</div>"


def _top_warnings(report: Report) -> str:
    out = ""
    unpriced = _rows(report, UNPRICED)
    if unpriced:
        out = (f'<p class="warning">&#9888; {_esc(unpriced_line(unpriced).removeprefix("WARNING: "))} '
               f'<a href="#section-{UNPRICED}">See the models.</a></p>')
    differing = [r for r in _rows(report, "experiment_mix_test") if r.get("mix_differs") is True]
    if not differing:
        return out
    names = ", ".join(_esc(r.get("experiment_id")) for r in differing)
    return out + (f'<p class="warning">&#9888; Experiments {names}: {_esc(MIX_WARNING)}. '
                  '<a href="#section-experiment_mix_test">See the routing-mix test.</a></p>')


VOCABULARY = (
    ("terminal", "a tier whose attempt was <em>accepted</em>: its answer was served to the user."),
    ("passthrough", "a tier whose attempt was <em>escalated</em>: a gate or verifier rejected the answer and the request moved up a tier."),
    ("kept", "a request served by its entry tier (the first tier it tried), with no escalation."),
    ("escalated", "a request with at least one escalation. <em>all</em> also counts requests that are neither "
                  "(fallbacks after failures, unserved)."),
    ("escalation rate", "of a tier: escalated / (accepted + escalated) attempts at that tier. Failed attempts (errors, "
                        "retries, fallbacks: reliability, not quality) and shadow attempts (never served) are excluded."),
    ("counterfactual cost", "what the same requests would have cost on the flagship tier alone."),
    ("tier flip", "a canary probe answered by another tier than the canary expects. Canary pass and tier-flip rates "
                  "are over answered probes; canary traffic is kept out of every other figure."),
    ("p50 / p95 / p99", "latency quantiles in milliseconds (t-digest estimates merged over the range)."),
)


def render_html(report: Report) -> str:
    """One self-contained HTML page (inline CSS and SVG, no scripts) for ``report``."""
    colours = _tier_colours(report)
    since, until = _fmt_time(report.since), _fmt_time(report.until)
    by = report.by or "none"
    plots = [
        ("tier-latency", "Terminal vs passthrough latency per tier", _plot_tier_latency(report, colours),
         "Filled marks: attempts whose answer was served; hollow marks with a dashed whisker: attempts whose answer was "
         "rejected (the request then escalated). Passthrough latency is paid on top of the next tier's."),
        ("request-latency", "Request latency", _plot_request_latency(report),
         "Kept and escalated requests are two populations with two SLOs; the blended figure is shown only beside them."),
        ("escalation-series", "Escalation rate over time", _plot_escalation_series(report, colours),
         f"Categories are summed per tier and {_series_bucket(report)} before the rate is taken."),
        ("routing-mix", "Routing mix", _plot_routing_mix(report, colours), "Where requests ended: the tier that served the answer."),
        ("cost", "Cost", _plot_cost(report), "Savings share = 1 - actual / counterfactual."),
    ]
    section_keys = [k for k in SECTION_ORDER if k in report.sections or k in TITLES]
    section_keys += [k for k in report.sections if k not in section_keys]
    section_keys = [k for k in section_keys if k not in EMBEDDED_SECTIONS]

    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>routerwatch report {_esc(since)} .. {_esc(until)} UTC</title>",
        f"<style>{CSS}</style>",
        "</head><body>",
        '<header class="page"><div class="inner">',
        "<h1>routerwatch report</h1>",
        f'<div class="meta"><span>from <strong>{_esc(since)}</strong> to <strong>{_esc(until)}</strong> UTC</span>'
        f'<span>split by: <strong>{_esc(by)}</strong></span>'
        + (f'<span>routers: <strong>{_esc(", ".join(report.routers))}</strong></span>' if report.routers else "")
        + "</div>",
        "</div></header><main>",
        _kpis(report),
        _top_warnings(report),
        '<section class="card" id="vocabulary"><h3>Vocabulary</h3><dl class="vocab">',
        "".join(f"<dt>{_esc(term)}</dt><dd>{text}</dd>" for term, text in VOCABULARY),
        "</dl></section>",
        '<nav class="toc" aria-label="contents">',
        "".join(f'<div><a href="#fig-{pid}">{_esc(name)}</a></div>' for pid, name, _, _ in plots),
        "".join(f'<div><a href="#section-{_esc(k)}">{_esc(TITLES.get(k, k))}</a></div>' for k in section_keys),
        "</nav>",
        "<h2>Plots</h2>",
    ]
    plot_sections = {"tier-latency": "tiers", "request-latency": "request_latency", "routing-mix": "routing_mix", "cost": "cost"}
    for pid, _, svg, caption in plots:
        pooled = report.pooled.get(plot_sections.get(pid, ""))
        if pooled:
            caption += f" Pools routers {', '.join(pooled)} (split by {by}, not by router)."
        out.append(f'<figure class="plot" id="fig-{pid}">{svg}<figcaption>{_esc(caption)}</figcaption></figure>')
    out.append("<h2>Tables</h2>")
    for key in section_keys:
        out.append(f'<section class="card" id="section-{_esc(key)}"><h3>{_esc(TITLES.get(key, key))}</h3>')
        out.append(_section_table(report, key))
        out.append("</section>")
    out.append('<footer>Generated by <code>routerwatch report --format html</code>. Self-contained: no scripts, no network.</footer>')
    out.append("</main></body></html>")
    return "\n".join(out)
