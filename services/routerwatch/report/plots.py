"""The report's charts as inline SVG: five plots, and the canary pass-rate sparkline."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from typing import Any

from routerwatch.report.scoreboard import Report
from routerwatch.report.svg import (
    Svg, draw_legend, legend_height, line_swatch, linear_ticks, swatch, text_width, time_ticks,
)
from routerwatch.report.values import data_num, esc, minute_key, num, parse_minute, pct, section_rows, usd
from routerwatch.report.whisker import WhiskerGroup, WhiskerSeries, quantile_legend, whisker_plot

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


def _quantiles(value: Any) -> list[float | None]:
    values = list(value) if isinstance(value, (list, tuple)) else []
    values = (values + [None, None, None])[:3]
    return [num(v) for v in values]


def _rank(value: Any) -> float:
    rank = num(value)
    return rank if rank is not None else math.inf


def _segment_label(segment: Any) -> str:
    return str(segment) if segment not in (None, "") else ""


def _segment_of(row: dict[str, Any]) -> Any:
    """The row's segment; a row of a section split by router (several routers, no --by) has router_id instead."""
    return row["segment"] if "segment" in row else row.get("router_id")


def tier_colours(report: Report) -> dict[str, str]:
    """A colour per tier of the report, in tier-rank order (tiers without a rank after, by name); one map for
    every plot so a tier has one colour on the page."""
    ranks: dict[str, float] = {}
    for key, tier_col, rank_col in (("tiers", "tier", "tier_rank"), ("routing_mix", "final_tier", "final_tier_rank")):
        for row in section_rows(report, key):
            tier = row.get(tier_col)
            if tier is None or tier == NOT_SERVED:
                continue
            rank = num(row.get(rank_col))
            ranks[str(tier)] = min(ranks.get(str(tier), math.inf), rank if rank is not None else math.inf)
    others: set[str] = set()
    for key, col in (("escalation_series", "tier"), ("failure_modes", "tier"), ("quality", "tier"), ("experiment_mix", "final_tier")):
        for row in section_rows(report, key):
            if row.get(col) is not None and str(row[col]) not in ranks and row[col] != NOT_SERVED:
                others.add(str(row[col]))
    ordered = sorted(ranks, key=lambda t: (ranks[t], t)) + sorted(others)
    colours = {tier: TIER_PALETTE[i % len(TIER_PALETTE)] for i, tier in enumerate(ordered)}
    colours[NOT_SERVED] = NOT_SERVED_COLOUR
    return colours


def plot_tier_latency(report: Report, colours: dict[str, str]) -> str:
    """Terminal and passthrough attempt latency per tier (the ``tiers`` section) as an SVG element."""
    rows = section_rows(report, "tiers")
    rows.sort(key=lambda r: (str(_segment_of(r) or ""), _rank(r.get("tier_rank")), str(r.get("tier"))))
    groups = []
    for row in rows:
        tier = str(row.get("tier"))
        segment = _segment_label(_segment_of(row))
        colour = colours.get(tier, "#555555")
        base = {"tier": tier, "segment": segment}
        groups.append(WhiskerGroup(tier, segment, colour, [
            WhiskerSeries("terminal", "terminal", colour, True, _quantiles(row.get("terminal_latency_ms")),
                    {**base, "population": "terminal"}, "term."),
            WhiskerSeries("passthrough", "passthrough", colour, False, _quantiles(row.get("passthrough_latency_ms")),
                    {**base, "population": "passthrough"}, "pass."),
        ]))
    legend = [(swatch("#4a5464"), "terminal: accepted, answer served"),
              (swatch("#4a5464", hollow=True), "passthrough: escalated, answer rejected")] + quantile_legend()
    return whisker_plot(
        "tier-latency",
        "Attempt latency per tier: terminal vs passthrough",
        "For each tier, the latency of attempts whose answer was served (terminal) and of attempts whose answer was "
        "rejected and escalated (passthrough): p50, p95 and p99 in milliseconds on a log scale.",
        groups, legend, "attempt latency (ms, log scale)",
    )


def plot_request_latency(report: Report) -> str:
    """Kept, escalated and all request latency per segment (the ``request_latency`` section) as an SVG element."""
    rows = section_rows(report, "request_latency")
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
            requests = num(paths[path].get("requests"))
            label = f"{path} ({requests:,.0f})" if requests is not None else path
            series.append(WhiskerSeries(path, label, colour, filled, _quantiles(paths[path].get("latency_ms")),
                                  {"segment": segment, "path": path}, path[:4] + "." if len(path) > 5 else path))
        groups.append(WhiskerGroup(segment or "all requests", "", "#1d2430", series))
    legend = [(swatch(PATH_STYLE["kept"][0]), "kept (served by its entry tier)"),
              (swatch(PATH_STYLE["escalated"][0]), "escalated (at least one escalation)"),
              (swatch(PATH_STYLE["all"][0], hollow=True), "all (blended)")] + quantile_legend()
    return whisker_plot(
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
    rows = section_rows(report, "escalation_series")
    several = len({str(r.get("router_id") or "") for r in rows}) > 1
    sums: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
    for row in rows:
        key = (str(row.get("router_id") or "") if several else "", str(row.get("tier")))
        minute = minute_key(row.get("minute"))
        cell = sums[key][minute]
        cell[0] += num(row.get("escalated")) or 0.0
        cell[1] += num(row.get("accepted")) or 0.0
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


def _bucket_name(step: int) -> str:
    return "minute" if step == 1 else f"{step}-minute bucket"


def series_bucket(report: Report) -> str:
    """What one point of the escalation series covers: ``minute``, or ``N-minute bucket`` at the report's wider step."""
    return _bucket_name(report.step("escalation_series"))


def _covers_part(report: Report, start: datetime, end: datetime, step: int) -> bool:
    """Whether buckets from ``start`` to ``end`` (the last one's start) leave a good part of the range out."""
    span = (report.until - report.since).total_seconds()
    covered = (end - start).total_seconds() + step * 60
    return span > 0 and covered < 0.9 * span


def plot_escalation_series(report: Report, colours: dict[str, str]) -> str:
    """The escalation rate per tier (per router and tier with several routers) and bucket, as an SVG element."""
    title = "Escalation rate over time per tier"
    bucket = series_bucket(report)
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

    legend = [(line_swatch(colours.get(k[1], "#555555"), dash.get(k[0], "")), label(k)) for k in order]
    svg = Svg("escalation-series", width, height, title, desc, f' data-step-minutes="{step}"')
    if not lines:
        svg.no_data()
        return svg.render()
    legend_bottom = draw_legend(svg, legend, left, 46, width - left - right)
    top = legend_bottom + 8
    bottom = height - 58
    parsed = {m: parse_minute(m) for pts in lines.values() for m, _, _ in pts}
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
    y_top, ticks = linear_ticks(min(max(max_rate, 0.05), 1.0), 5)
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
        tick_times, fmt = time_ticks(start, end)
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
        router_attr = f' data-router="{esc(router)}"' if router else ""
        svg.add(
            f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="2.2" stroke-linejoin="round"{dashes} '
            f'data-tier="{esc(tier)}"{router_attr} data-minutes="{esc(" ".join(m for m, _, _ in pts))}" '
            f'data-rates="{" ".join(data_num(r) for _, r, _ in pts)}" points="{coords}">'
            f"<title>{esc(label(key))}: escalation rate per {bucket}</title></polyline>"
        )
        if total_points <= 400 or len(pts) == 1:
            for m, r, n in pts:
                svg.add(f'<circle cx="{x_of(m):.1f}" cy="{y_of(r):.1f}" r="2.6" fill="{colour}">'
                        f"<title>{esc(label(key))} {esc(m)}: {pct(r)} of {n} attempts</title></circle>")
    return svg.render()


def plot_routing_mix(report: Report, colours: dict[str, str]) -> str:
    """The share of requests per final tier, one stacked bar per segment, as an SVG element."""
    title = "Routing mix: share of requests by final tier"
    desc = "For each segment, the share of requests that ended at each tier (the tier that served the answer)."
    rows = section_rows(report, "routing_mix")
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
    legend = [(swatch(colours.get(t, "#555555")), t) for t in order]
    if not by_segment:
        svg = Svg("routing-mix", width, 200, title, desc)
        svg.no_data()
        return svg.render()
    top = 46 + legend_height(order, width - left - right) + 6
    height = int(top + len(by_segment) * (bar_h + gap) + 50)
    svg = Svg("routing-mix", width, height, title, desc)
    draw_legend(svg, legend, left, 46, width - left - right)
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
        total = sum(num(r.get("requests")) or 0 for r in seg_rows)
        svg.text(left - 10, y + bar_h / 2 + 4, segment or "all requests", size=12.5, anchor="end", weight="600")
        x = left
        for row in sorted(seg_rows, key=lambda r: rank.get(str(r.get("final_tier")), len(rank))):
            tier = str(row.get("final_tier"))
            share = num(row.get("share"))
            requests = num(row.get("requests")) or 0
            if share is None:
                share = requests / total if total else 0.0
            w = share * plot_w
            colour = colours.get(tier, "#555555")
            svg.add(
                f'<rect class="bar" x="{x:.1f}" y="{y}" width="{max(w, 0):.1f}" height="{bar_h}" fill="{colour}" stroke="#ffffff" '
                f'data-segment="{esc(segment)}" data-tier="{esc(tier)}" data-value="{data_num(share)}" data-requests="{requests:.0f}">'
                f"<title>{esc(tier)}: {pct(share)} ({requests:,.0f} requests)</title></rect>"
            )
            label = f"{tier} {pct(share)}"
            if text_width(label, 12) + 10 <= w:
                text_fill = "#1d2430" if colour in ("#E69F00", "#56B4E9", "#9a9a9a", "#CC79A7") else "#ffffff"
                svg.text(x + w / 2, y + bar_h / 2 + 4, label, size=12, anchor="middle", fill=text_fill, weight="600")
            elif text_width(pct(share), 11) + 6 <= w:
                text_fill = "#1d2430" if colour in ("#E69F00", "#56B4E9", "#9a9a9a", "#CC79A7") else "#ffffff"
                svg.text(x + w / 2, y + bar_h / 2 + 4, pct(share), size=11, anchor="middle", fill=text_fill)
            x += w
    return svg.render()


def plot_cost(report: Report) -> str:
    """Actual against counterfactual cost per segment, with the savings share, as an SVG element."""
    title = "Cost: actual vs counterfactual (flagship tier for every request)"
    desc = ("Actual model and verifier spend of the routed traffic against the counterfactual cost of sending every "
            "request to the flagship tier; the savings share is 1 - actual / counterfactual.")
    rows = section_rows(report, "cost")
    width = 1160
    left, right = 150, 230
    bar_h, inner_gap, gap = 24, 4, 22
    actual_colour, cf_colour = "#3b4a5e", "#b9c2cf"
    legend = [(swatch(actual_colour), "actual cost (routed)"), (swatch(cf_colour), "counterfactual cost (flagship everywhere)")]
    if not rows:
        svg = Svg("cost", width, 200, title, desc)
        svg.no_data()
        return svg.render()
    top = 46 + 20 + 10
    block = 2 * bar_h + inner_gap + gap
    bottom = top + len(rows) * block
    height = int(bottom + 50)
    svg = Svg("cost", width, height, title, desc)
    draw_legend(svg, legend, left, 46, width - left - right)
    plot_w = width - left - right
    hi = max([num(r.get(k)) or 0.0 for r in rows for k in ("actual_cost_usd", "counterfactual_cost_usd")] + [0.0])
    top_val, ticks = linear_ticks(hi if hi > 0 else 1.0, 6)
    for t in ticks:
        x = left + t / top_val * plot_w
        svg.add(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{bottom - gap + 4}" stroke="#e3e6eb"/>')
        svg.text(x, bottom - gap + 20, usd(t) if t else "$0", size=11.5, anchor="middle", fill="#4a5464")
    svg.text(left + plot_w / 2, bottom - gap + 42, "cost (USD)", size=12.5, anchor="middle")
    for i, row in enumerate(rows):
        segment = _segment_label(_segment_of(row))
        y = top + i * block
        svg.text(left - 10, y + bar_h + 4, segment or "all requests", size=12.5, anchor="end", weight="600")
        for j, (key, label, colour) in enumerate((("actual_cost_usd", "actual", actual_colour),
                                                  ("counterfactual_cost_usd", "counterfactual", cf_colour))):
            value = num(row.get(key))
            by = y + j * (bar_h + inner_gap)
            w = (value or 0.0) / top_val * plot_w
            svg.add(
                f'<rect class="bar" x="{left}" y="{by}" width="{w:.1f}" height="{bar_h}" fill="{colour}" '
                f'data-segment="{esc(segment)}" data-series="{label}" data-value="{data_num(value) if value is not None else ""}">'
                f"<title>{label}: {usd(value)}</title></rect>"
            )
            svg.text(left + w + 6, by + bar_h / 2 + 4, f"{label} {usd(value)}", size=12, fill="#1d2430", extra=' class="value-label"')
        savings = num(row.get("savings_share"))
        text = f"savings {pct(savings)}" if savings is not None else "savings n/a"
        svg.text(width - right + 20, y + bar_h + 6, text, size=15, weight="650", fill="#00704a" if (savings or 0) >= 0 else "#B2182B",
                 extra=f' class="savings" data-segment="{esc(segment)}" data-value="{data_num(savings) if savings is not None else ""}"')
    return svg.render()


def _canary_buckets(report: Report) -> tuple[float, float]:
    """First and last bucket start (epoch seconds) of the canary series, every router and side together.

    The sparklines span the buckets with probes, not the whole range, so probes over part of the
    range are drawn across the sparkline, and every side's sparkline has the same time axis.
    """
    times = [w.timestamp() for w in (parse_minute(r.get("bucket")) for r in section_rows(report, "canary_series")) if w is not None]
    return (min(times), max(times)) if times else (report.since.timestamp(), report.until.timestamp())


def sparkline(report: Report, router: str, side: str) -> str:
    """Pass rate per bucket of one router and side (0% at the bottom, 100% at the top), with the latest value.

    Buckets are the report's canary step (:meth:`Report.step`). Several points are joined by a line;
    a single point is drawn as a large dot in the middle, its value written beside it.
    """
    points = []
    for row in section_rows(report, "canary_series"):
        if str(row.get("router_id") or "") != router or str(row.get("side") or "") != side:
            continue
        when, rate = parse_minute(row.get("bucket")), num(row.get("pass_rate"))
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
        f'data-router="{esc(router)}" data-side="{esc(side)}" '
        f'data-buckets="{esc(" ".join(minute_key(w) for w, _ in points))}" '
        f'data-rates="{" ".join(data_num(r) for _, r in points)}" data-step-minutes="{report.step("canary_series")}">',
        f"<title>{esc(label)}: {esc(', '.join(f'{minute_key(w)} {pct(r)}' for w, r in points[-6:]))}</title>",
        f'<line x1="{pad}" y1="{y_of(1.0):.1f}" x2="{width - pad}" y2="{y_of(1.0):.1f}" stroke="#d5dae1" stroke-dasharray="3 2"/>',
        f'<line x1="{pad}" y1="{y_of(0.0):.1f}" x2="{width - pad}" y2="{y_of(0.0):.1f}" stroke="#d5dae1"/>',
    ]
    if len(points) > 1:
        # A path, not a polyline: polylines on this page are the escalation-series lines.
        parts.append(f'<path class="spark" fill="none" stroke="#0072B2" stroke-width="1.6" stroke-linejoin="round" d="M{coords}"/>')
        last_when, last_rate = points[-1]
        parts.append(f'<circle cx="{x_of(last_when):.1f}" cy="{y_of(last_rate):.1f}" r="2.4" fill="#0072B2"/>')
        value = f"latest {pct(last_rate)}"
    else:
        # One bucket with probes: a point, not a line; large enough to read as a mark, with its value.
        ((when, rate),) = points
        parts.append(f'<circle class="spark-point" cx="{x_of(when):.1f}" cy="{y_of(rate):.1f}" r="4" fill="#0072B2" '
                     'stroke="#ffffff" stroke-width="1"/>')
        value = f"{pct(rate)} (one {bucket})"
    parts.append("</svg>")
    return "".join(parts) + f'<span class="spark-value">{esc(value)}</span>'
