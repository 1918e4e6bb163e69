"""SVG primitives and axes for the report's plots: the document, ticks, legends and swatches."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone

from routerwatch.report.values import esc


def text_width(text: str, size: float = 12) -> float:
    """Rough rendered width of ``text`` in px (no font metrics in Python; errs wide)."""
    return len(text) * size * 0.6


class Svg:
    """An SVG document with an accessible title and description."""

    def __init__(self, plot_id: str, width: int, height: int, title: str, desc: str, attrs: str = "") -> None:
        self.plot_id, self.width, self.height = plot_id, width, height
        self.parts: list[str] = [
            f'<svg id="plot-{plot_id}" class="plot" data-plot="{plot_id}"{attrs} '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-labelledby="plot-{plot_id}-title plot-{plot_id}-desc">',
            f'<title id="plot-{plot_id}-title">{esc(title)}</title>',
            f'<desc id="plot-{plot_id}-desc">{esc(desc)}</desc>',
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
            f'<text x="{width / 2:.1f}" y="22" text-anchor="middle" font-size="16" font-weight="650" fill="#1d2430">{esc(title)}</text>',
        ]

    def add(self, part: str) -> None:
        """Append raw SVG markup (the caller escapes what it interpolates)."""
        self.parts.append(part)

    def text(self, x: float, y: float, content: str, *, size: float = 12, anchor: str = "start", fill: str = "#1d2430",
             weight: str = "normal", extra: str = "") -> None:
        """A ``<text>`` element; ``content`` is escaped, ``extra`` is raw attributes with a leading space."""
        self.parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
            f'font-weight="{weight}"{extra}>{esc(content)}</text>'
        )

    def y_label(self, mid: float, content: str) -> None:
        """A vertical axis title centred on ``mid``."""
        self.parts.append(f'<text x="20" y="{mid:.1f}" font-size="12.5" text-anchor="middle" fill="#1d2430" '
                          f'transform="rotate(-90 20 {mid:.1f})">{esc(content)}</text>')

    def no_data(self, message: str = "no data") -> None:
        """``message`` centred in the plot, for a plot without data."""
        self.text(self.width / 2, self.height / 2 + 6, message, size=16, anchor="middle", fill="#6b7585", extra=' class="nodata"')

    def render(self) -> str:
        """The closed ``<svg>`` element as markup."""
        return "\n".join(self.parts + ["</svg>"])


def _nice_step(span: float, target_ticks: int) -> float:
    raw = span / max(target_ticks, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for mult in (1, 2, 2.5, 5, 10):
        if raw <= mult * magnitude:
            return mult * magnitude
    return 10 * magnitude


def linear_ticks(hi: float, target: int = 5) -> tuple[float, list[float]]:
    """A 0-based domain end (>= hi) and ticks for it."""
    if hi <= 0:
        hi = 1.0
    step = _nice_step(hi, target)
    top = math.ceil(hi / step - 1e-9) * step
    ticks = [i * step for i in range(int(round(top / step)) + 1)]
    return top, ticks


def log_domain(values: Iterable[float]) -> tuple[float, float, list[float]]:
    """(low, high, ticks) of a log axis over the positive ``values``, on 1-2-5 steps just outside the data.

    Over many decades only 1s (or 1s and 5s) are ticked. Without positive values: 1 to 10.
    """
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


def tick_label(value: float) -> str:
    """An axis tick's text: grouped thousands, plain from 1, two significant digits below 1."""
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:g}"
    return f"{value:.2g}"


# A legend item: a function drawing its 16 px swatch centred vertically on (x, y), and its label.
LegendItem = tuple[Callable[[float, float], str], str]


def draw_legend(svg: Svg, items: Sequence[LegendItem], x: float, y: float, max_width: float) -> float:
    """Swatch + label items flowing left to right from (x, y); returns the y below the legend."""
    cx, cy = x, y
    svg.add('<g class="legend">')
    for draw, label in items:
        width = 22 + text_width(label, 12) + 18
        if cx + width > x + max_width and cx > x:
            cx, cy = x, cy + 20
        svg.add(draw(cx, cy))
        svg.text(cx + 20, cy + 4, label, size=12)
        cx += width
    svg.add("</g>")
    return cy + 20


def legend_height(labels: Sequence[str], max_width: float) -> float:
    """The height :func:`draw_legend` takes for items with these labels in ``max_width``."""
    rows, used = 1, 0.0
    for label in labels:
        width = 22 + text_width(label, 12) + 18
        if used + width > max_width and used > 0:
            rows, used = rows + 1, 0.0
        used += width
    return rows * 20


def swatch(colour: str, *, hollow: bool = False) -> Callable[[float, float], str]:
    """A legend swatch: a square in ``colour``, white inside when ``hollow``."""
    fill = "#ffffff" if hollow else colour
    return lambda x, y: (f'<rect x="{x + 1:.1f}" y="{y - 6:.1f}" width="13" height="12" rx="2" fill="{fill}" '
                         f'stroke="{colour}" stroke-width="2"/>')


def line_swatch(colour: str, dash: str = "") -> Callable[[float, float], str]:
    """A legend swatch for a line: a short stroke in ``colour``, dashed by ``dash`` (an SVG dash array) if given."""
    dashes = f' stroke-dasharray="{dash}"' if dash else ""
    return lambda x, y: (f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x + 16:.1f}" y2="{y:.1f}" stroke="{colour}" '
                         f'stroke-width="3"{dashes}/>')


def time_ticks(start: datetime, end: datetime, max_ticks: int = 9) -> tuple[list[datetime], str]:
    """At most ``max_ticks`` round UTC times from ``start`` to ``end``, and the strftime format for their labels
    (the date too when the span crosses midnight)."""
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
