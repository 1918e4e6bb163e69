"""The whisker plot of the latency charts: p50, p95 and p99 per series on a log axis."""

from __future__ import annotations

import math
from dataclasses import dataclass

from routerwatch.report.svg import LegendItem, Svg, draw_legend, log_domain, text_width, tick_label
from routerwatch.report.values import QUANTILES, data_num, esc, ms


def _marker(shape: str, x: float, y: float, colour: str, filled: bool, attrs: str = "", tip: str = "") -> str:
    """p50: circle, p95: diamond, p99: triangle; filled or hollow, with an optional hover title."""
    fill = colour if filled else "#ffffff"
    common = f'fill="{fill}" stroke="{colour}" stroke-width="2"' + (f" {attrs}" if attrs else "")
    inner = f"<title>{esc(tip)}</title>" if tip else ""
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
class WhiskerSeries:
    """One whisker: the p50, p95 and p99 of a population, with ``attrs`` as ``data-*`` attributes of its marks."""

    key: str  # e.g. "terminal"
    label: str  # axis label under the whisker
    colour: str
    filled: bool
    quantiles: list[float | None]
    attrs: dict[str, str]
    short: str = ""  # axis label when ``label`` does not fit the slot


@dataclass
class WhiskerGroup:
    """Whiskers side by side under one label (a tier, a segment), with a gap before the next group."""

    label: str
    sublabel: str
    colour: str
    series: list[WhiskerSeries]


def whisker_plot(plot_id: str, title: str, desc: str, groups: list[WhiskerGroup], legend: list[LegendItem],
                  y_label: str) -> str:
    """Groups of whiskers on one log latency axis, as an SVG element with id ``plot-{plot_id}``.

    Values are written beside the marks when the slots are wide enough, else only in the marks' titles.
    """
    width = 1160
    svg_top = 40
    left, right = 86, 24
    values = [v for g in groups for s in g.series for v in s.quantiles if v is not None]
    slots = sum(len(g.series) for g in groups)
    if not values:
        svg = Svg(plot_id, width, 260, title, desc)
        draw_legend(svg, legend, left, svg_top + 6, width - left - right)
        svg.no_data()
        return svg.render()
    plot_w = width - left - right
    slot_w = plot_w / max(slots + (len(groups) - 1) * 0.5, 1)
    show_labels = slot_w >= 95
    height = 470
    svg = Svg(plot_id, width, height, title, desc)
    legend_bottom = draw_legend(svg, legend, left, svg_top + 6, plot_w)
    top = legend_bottom + 8
    bottom = height - 78
    lo, hi, ticks = log_domain(values)

    def y_of(v: float) -> float:
        v = max(v, lo)
        return bottom - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (bottom - top)

    for t in ticks:
        y = y_of(t)
        svg.add(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e3e6eb" stroke-width="1"/>')
        svg.text(left - 8, y + 4, tick_label(t), size=11.5, anchor="end", fill="#4a5464")
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
            attrs = " ".join(f'data-{k}="{esc(v)}"' for k, v in series.attrs.items())
            svg.add(f'<g class="series" {attrs}>')
            if present:
                ys = [y_of(v) for _, v in present]
                dash = "" if series.filled else ' stroke-dasharray="5 3"'
                svg.add(f'<line x1="{cx:.1f}" y1="{min(ys):.1f}" x2="{cx:.1f}" y2="{max(ys):.1f}" '
                        f'stroke="{series.colour}" stroke-width="2.5"{dash}/>')
                for q, v in present:
                    tip = f"{series.label} {q}: {ms(v)} ms"
                    svg.add(_marker(q, cx, y_of(v), series.colour, series.filled,
                                    f'class="q" data-quantile="{q}" data-value="{data_num(v)}"', tip))
                if show_labels:
                    label_ys = _spread_labels([y + 4 for y in ys], 14, top + 4, bottom - 2)
                    for (q, v), ly in zip(present, label_ys):
                        svg.text(cx + 11, ly, f"{q} {ms(v)}", size=11.5, fill="#1d2430", extra=' class="value-label"')
            else:
                svg.text(cx, bottom - 10, "none", size=11.5, anchor="middle", fill="#8a93a3", extra=' font-style="italic"')
            svg.add("</g>")
            axis_label = series.label if text_width(series.label, 11.5) <= slot_w - 6 else (series.short or series.key)
            if text_width(axis_label, 11.5) > slot_w - 2:
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


def quantile_legend() -> list[LegendItem]:
    """Legend items for the three quantile marker shapes."""
    grey = "#4a5464"
    return [
        ((lambda q: lambda x, y: _marker(q, x + 8, y, grey, True))(q), label)
        for q, label in (("p50", "p50 (median)"), ("p95", "p95"), ("p99", "p99"))
    ]
